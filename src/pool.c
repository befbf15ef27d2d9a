/* pool.c - the seerd supervisor: socket, workers, signals, respawns, reloads. */
#include "pool.h"

#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <pwd.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "db.h"
#include "log.h"
#include "resnet.h"
#include "scoreboard.h"
#include "worker.h"

#define CRASH_RING 64	     /* crash times remembered per slot */
#define TICK_MS 100	     /* how often the supervisor looks at its workers */
#define RELOAD_TIMEOUT 120.0 /* seconds new workers get to come up at a reload */

/* The supervisor's view of one slot of the scoreboard. */
struct slot_ctl {
	pid_t pid;
	int gen;	   /* the configuration generation it runs */
	int wanted;	   /* keep a worker here */
	int stopping;	   /* told to finish (SIGTERM sent) */
	int timed_out;	   /* killed for a request over request_timeout */
	int disabled;	   /* crash loop: no more respawns */
	int consecutive;   /* crashes in a row, for the back-off */
	double started;	   /* when the current process was forked */
	double next_start; /* earliest (re)spawn */
	double stop_deadline;
	double crashes[CRASH_RING];
	int ncrash;
};

struct pool {
	const struct pool_args *args;
	struct seerd_conf conf, prev; /* prev: kept while a reload may still be rolled back */
	/*
	 * The model, loaded here once and inherited by every worker forked
	 * after: read-only memory the whole pool shares (and, unlike a mapped
	 * file, on huge pages; see wfile.c). prev_model is the old
	 * generation's, kept while a reload may still be rolled back.
	 */
	struct resnet *model, *prev_model;
	int fd;
	struct scoreboard *sb;
	int gen;
	int reload_gen; /* generation being brought up, 0 when none */
	double reload_deadline;
	int draining; /* SIGTERM received */
	int drop;
	uid_t uid;
	gid_t gid;
	struct slot_ctl s[SB_SLOTS];
};

static double now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

int pool_load_conf(const struct pool_args *a, struct seerd_conf *c, struct seer_err *err)
{
	int rc;

	conf_defaults(c);
	if (a->conf_path != NULL && (rc = conf_load(c, a->conf_path, err)) != 0)
		return rc;
	if ((rc = conf_apply_args(c, a->argc, a->argv, 0, err)) != 0)
		return rc;
	return conf_validate(c, err);
}

/* Load the model for the workers to come: a missing or damaged file is reported here, once. */
static int load_model(const struct seerd_conf *c, struct resnet **m, struct seer_err *err)
{
	int rc = resnet_open(c->model, m, err);

	if (rc == SEER_ENOENT)
		return seer_err_set(
			err, rc, "no model file at %s; get one with weights/fetch-resnet18.sh or set model",
			c->model);
	return rc;
}

static void set_model_id(struct pool *p)
{
	snprintf(p->sb->model_id, sizeof(p->sb->model_id), "%s", resnet_model_id(p->model));
}

/*
 * Bind the FastCGI socket with exactly the configured mode (the umask is set
 * around bind() so it is never, even briefly, more open). A stale socket file
 * is replaced; one a live process answers on is not.
 */
static int bind_socket(struct pool *p, struct seer_err *err)
{
	const struct seerd_conf *c = &p->conf;
	struct sockaddr_un sa;
	struct stat st;
	mode_t old;
	int fd, rc;

	memset(&sa, 0, sizeof(sa));
	sa.sun_family = AF_UNIX;
	if (strlen(c->socket) >= sizeof(sa.sun_path)) /* conf_validate checks it too */
		return seer_err_set(err, SEER_EINVAL, "socket path too long");
	memcpy(sa.sun_path, c->socket, strlen(c->socket) + 1);
	if (lstat(c->socket, &st) == 0) {
		if (!S_ISSOCK(st.st_mode))
			return seer_err_set(err, SEER_EINVAL, "%s exists and is not a socket", c->socket);
		fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
		rc = fd >= 0 ? connect(fd, (struct sockaddr *)&sa, sizeof(sa)) : -1;
		if (fd >= 0)
			close(fd);
		if (rc == 0)
			return seer_err_set(err, SEER_EINVAL, "%s is in use by another running seerd",
					    c->socket);
		unlink(c->socket);
	}
	fd = socket(AF_UNIX, SOCK_STREAM, 0); /* inherited by the workers */
	if (fd < 0)
		return seer_err_set(err, SEER_EIO, "socket: %s", strerror(errno));
	old = umask(0777 & ~(mode_t)c->socket_mode);
	rc = bind(fd, (struct sockaddr *)&sa, sizeof(sa));
	umask(old);
	/* no chmod(): the umask gave the mode, and chmod would follow a symlink */
	if (rc != 0 || (p->drop && lchown(c->socket, p->uid, p->gid) != 0) || listen(fd, c->backlog) != 0) {
		rc = seer_err_set(err, SEER_EIO, "%s: %s", c->socket, strerror(errno));
		close(fd);
		return rc;
	}
	/*
	 * Non-blocking: workers wait in poll() and then take whatever is queued
	 * without ever blocking in accept() (another worker may have been
	 * quicker). Accepted connections do not inherit the flag.
	 */
	if (fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK) != 0) {
		rc = seer_err_set(err, SEER_EIO, "%s: %s", c->socket, strerror(errno));
		close(fd);
		return rc;
	}
	p->fd = fd;
	return 0;
}

/*
 * Hand a file the workers must write to the unprivileged user. lchown, not
 * chown: the directory may be writable by that user, who could otherwise
 * swap the file for a symlink to anything and have root hand it over.
 */
static void give(const struct pool *p, const char *path)
{
	if (p->drop && path[0] != '\0' && lchown(path, p->uid, p->gid) != 0 && errno != ENOENT)
		log_warn("cannot hand %s to uid %d: %s", path, (int)p->uid, strerror(errno));
}

static int prepare_db(const struct pool *p, struct seer_err *err)
{
	struct db_opts o;
	char side[CONF_PATH_MAX + 8];
	int rc;

	db_opts_default(&o);
	o.busy_timeout_ms = p->conf.db_busy_timeout;
	rc = db_migrate(p->conf.db, &o, err);
	if (rc != 0)
		return rc;
	give(p, p->conf.db);
	snprintf(side, sizeof(side), "%s-wal", p->conf.db);
	give(p, side);
	snprintf(side, sizeof(side), "%s-shm", p->conf.db);
	give(p, side);
	return 0;
}

static int resolve_user(struct pool *p, struct seer_err *err)
{
	struct passwd *pw;

	p->drop = 0;
	if (p->conf.user[0] == '\0')
		return 0;
	pw = getpwnam(p->conf.user);
	if (pw == NULL)
		return seer_err_set(err, SEER_EINVAL, "user: no user named \"%s\"", p->conf.user);
	if (getuid() != 0) {
		if (pw->pw_uid != getuid())
			log_warn("user = %s ignored: only root can switch users", p->conf.user);
		return 0;
	}
	if (pw->pw_uid == 0)
		return seer_err_set(err, SEER_EINVAL, "user: workers must not run as root");
	p->drop = 1;
	p->uid = pw->pw_uid;
	p->gid = pw->pw_gid;
	return 0;
}

/* ------------------------------------------------------------- workers */

static void update_nslots(struct pool *p)
{
	int n = 0;

	for (int i = 0; i < SB_SLOTS; i++)
		if (p->s[i].wanted || p->s[i].pid > 0)
			n = i + 1;
	/* never shrink below a slot a worker might still be writing */
	if (n > sb_get(p->sb->nslots))
		sb_put(p->sb->nslots, n);
}

static void spawn(struct pool *p, int i)
{
	struct slot_ctl *s = &p->s[i];
	struct sb_slot *sl = &p->sb->slot[i];
	struct worker_args a;
	pid_t pid;

	sb_put(sl->state, SB_STARTING);
	sb_put(sl->generation, s->gen);
	sb_put(sl->busy_since, 0);
	sb_put(sl->served, 0);
	pid = fork();
	if (pid < 0) {
		log_error("fork: %s (retrying)", strerror(errno));
		sb_put(sl->state, SB_EMPTY);
		s->next_start = now_s() + 1;
		return;
	}
	if (pid == 0) {
		/* during a reload the old generation keeps its own configuration and model */
		int old = p->reload_gen != 0 && s->gen != p->reload_gen;

		a.conf = old ? &p->prev : &p->conf;
		a.model = old ? p->prev_model : p->model;
		a.listen_fd = p->fd;
		a.sb = p->sb;
		a.slot = i;
		a.supervisor = getppid();
		a.drop_privileges = p->drop;
		a.uid = p->uid;
		a.gid = p->gid;
		_exit(worker_main(&a));
	}
	sb_put(sl->pid, pid);
	s->pid = pid;
	s->started = now_s();
	s->stopping = s->timed_out = 0;
	log_debug("worker %d started (pid %d, generation %d)", i, (int)pid, s->gen);
}

static void stop_slot(struct pool *p, int i)
{
	struct slot_ctl *s = &p->s[i];

	s->wanted = 0;
	if (s->pid <= 0 || s->stopping)
		return;
	s->stopping = 1;
	s->stop_deadline = now_s() + p->conf.drain_timeout;
	kill(s->pid, SIGTERM);
}

static void recompute_ready(struct pool *p)
{
	int ready = 1;

	for (int i = 0; i < SB_SLOTS; i++)
		if (p->s[i].wanted && p->s[i].disabled)
			ready = 0;
	sb_put(p->sb->ready, ready);
}

/* A worker is gone: decide what comes next for its slot. */
static void reaped(struct pool *p, pid_t pid, int status)
{
	double now = now_s();
	int i, n = 0;

	for (i = 0; i < SB_SLOTS; i++)
		if (p->s[i].pid == pid)
			break;
	if (i == SB_SLOTS)
		return;
	struct slot_ctl *s = &p->s[i];
	struct sb_slot *sl = &p->sb->slot[i];

	int was_busy = sb_get(sl->state) == SB_BUSY;

	s->pid = 0;
	sb_put(sl->pid, 0);
	sb_put(sl->state, SB_EMPTY);
	sb_put(sl->busy_since, 0);
	if (s->stopping || !s->wanted) {
		log_debug("worker %d (pid %d) finished", i, (int)pid);
		return;
	}
	if (s->timed_out) {
		sb_add(p->sb->restarts, 1);
		s->next_start = now;
		return;
	}
	if (WIFEXITED(status) && WEXITSTATUS(status) == 0) { /* recycled itself after max_requests */
		s->next_start = now;
		s->consecutive = 0;
		return;
	}
	sb_add(p->sb->restarts, 1);
	if (WIFSIGNALED(status))
		log_error("worker %d (pid %d) died of signal %d (%s)%s; restarting", i, (int)pid,
			  WTERMSIG(status), strsignal(WTERMSIG(status)), was_busy ? " while serving" : "");
	else
		log_error("worker %d (pid %d) exited with status %d; restarting", i, (int)pid,
			  WEXITSTATUS(status));
	/*
	 * A worker that dies while serving was most likely killed by what it
	 * served: respawn it at once and do not count it towards a crash loop,
	 * or a client could switch the pool off by sending a few such requests.
	 * Crashes at start-up or while idle are the pool's own trouble.
	 */
	if (was_busy && WIFSIGNALED(status)) {
		s->next_start = now;
		return;
	}
	if (now - s->started > p->conf.crash_loop_window)
		s->consecutive = 0;
	s->consecutive++;
	s->crashes[s->ncrash++ % CRASH_RING] = now;
	for (int k = 0; k < CRASH_RING && k < s->ncrash; k++)
		n += now - s->crashes[k] <= p->conf.crash_loop_window;
	if (n >= p->conf.crash_loop_limit) {
		s->disabled = 1;
		log_error("worker %d crashed %d times within %.0f s: not restarting it; the pool reports not "
			  "ready until seerd is reloaded or restarted",
			  i, n, p->conf.crash_loop_window);
		recompute_ready(p);
		return;
	}
	s->next_start = now + fmin(p->conf.respawn_delay_max,
				   p->conf.respawn_delay_min * pow(2.0, s->consecutive - 1));
}

static void reap_all(struct pool *p)
{
	pid_t pid;
	int status;

	while ((pid = waitpid(-1, &status, WNOHANG)) > 0)
		reaped(p, pid, status);
}

/* Look at every slot once: timeouts, drains, respawns, a reload in progress. */
static void tick(struct pool *p)
{
	double now = now_s();
	int64_t now_ms = sb_now_ms();

	for (int i = 0; i < SB_SLOTS; i++) {
		struct slot_ctl *s = &p->s[i];
		struct sb_slot *sl = &p->sb->slot[i];

		if (s->pid > 0) {
			int64_t since = sb_get(sl->busy_since);

			if (since > 0 && !s->timed_out &&
			    (double)(now_ms - since) > p->conf.request_timeout * 1e3) {
				log_warn("worker %d (pid %d): request running for %.1f s, over "
					 "request_timeout; "
					 "killing it",
					 i, (int)s->pid, (double)(now_ms - since) / 1e3);
				s->timed_out = 1;
				sb_add(p->sb->timeouts, 1);
				kill(s->pid, SIGKILL);
			} else if (s->stopping && now > s->stop_deadline) {
				log_warn("worker %d (pid %d) did not finish within drain_timeout; killing it",
					 i, (int)s->pid);
				kill(s->pid, SIGKILL);
				s->stop_deadline = now + 3600;
			}
		} else if (s->wanted && !s->disabled && !p->draining && now >= s->next_start) {
			spawn(p, i);
		}
	}
	if (p->reload_gen != 0) {
		int want = 0, up = 0, dead = 0;

		for (int i = 0; i < SB_SLOTS; i++) {
			int st = sb_get(p->sb->slot[i].state);

			if (p->s[i].gen != p->reload_gen || !p->s[i].wanted)
				continue;
			want++;
			up += p->s[i].pid > 0 && (st == SB_IDLE || st == SB_BUSY);
			dead += p->s[i].disabled;
		}
		if (want > 0 && up == want) {
			/* the old generation goes, crash-looped slots included: the way out of a crash loop
			 */
			for (int i = 0; i < SB_SLOTS; i++)
				if (p->s[i].gen != p->reload_gen && (p->s[i].wanted || p->s[i].pid > 0)) {
					stop_slot(p, i);
					p->s[i].disabled = 0;
				}
			log_info("reload: generation %d serving with %d workers; old workers finishing",
				 p->reload_gen, up);
			p->reload_gen = 0;
			/* the old workers have their own reference (fork); none will be spawned again */
			resnet_free(p->prev_model);
			p->prev_model = NULL;
			recompute_ready(p);
		} else if (dead > 0 || now > p->reload_deadline) {
			log_error("reload: the new workers did not come up; keeping the old ones");
			for (int i = 0; i < SB_SLOTS; i++)
				if (p->s[i].gen == p->reload_gen) {
					stop_slot(p, i);
					p->s[i].disabled = 0;
				}
			p->conf = p->prev;
			resnet_free(p->model);
			p->model = p->prev_model;
			p->prev_model = NULL;
			set_model_id(p);
			log_set_level(p->conf.log_level);
			p->gen--;
			p->reload_gen = 0;
			recompute_ready(p);
		}
	}
}

/* Bring up one generation of n workers in free slots. */
static int start_generation(struct pool *p, int n)
{
	int started = 0;

	p->gen++;
	for (int i = 0; i < SB_SLOTS && started < n; i++) {
		struct slot_ctl *s = &p->s[i];

		if (s->wanted || s->pid > 0)
			continue;
		memset(s, 0, sizeof(*s));
		s->wanted = 1;
		s->gen = p->gen;
		started++;
	}
	update_nslots(p);
	return started == n ? 0 : -1;
}

static void reload(struct pool *p)
{
	struct seerd_conf c;
	struct seer_err err = {0};
	struct resnet *m = NULL;

	if (p->reload_gen != 0) {
		log_warn("reload: one is already in progress; ignoring SIGHUP");
		return;
	}
	if (pool_load_conf(p->args, &c, &err) != 0 || load_model(&c, &m, &err) != 0) {
		log_error("reload refused, still running the old configuration: %s", err.msg);
		return;
	}
	if (strcmp(c.socket, p->conf.socket) != 0 || c.backlog != p->conf.backlog ||
	    c.socket_mode != p->conf.socket_mode || strcmp(c.user, p->conf.user) != 0 ||
	    strcmp(c.db, p->conf.db) != 0) {
		log_warn("reload: socket, socket_mode, backlog, user and db only change at a restart; "
			 "keeping the old values");
		memcpy(c.socket, p->conf.socket, sizeof(c.socket));
		memcpy(c.db, p->conf.db, sizeof(c.db));
		memcpy(c.user, p->conf.user, sizeof(c.user));
		c.backlog = p->conf.backlog;
		c.socket_mode = p->conf.socket_mode;
	}
	p->prev = p->conf;
	p->conf = c;
	log_set_level(c.log_level);
	if (strcmp(c.log_file, p->prev.log_file) != 0 && c.log_file[0] && log_reopen(c.log_file) != 0)
		log_warn("cannot open log file %s: %s", c.log_file, strerror(errno));
	if (start_generation(p, conf_worker_count(&c)) != 0) {
		log_error("reload: no free worker slots; keeping the old workers");
		for (int i = 0; i < SB_SLOTS; i++)
			if (p->s[i].gen == p->gen && p->s[i].pid <= 0)
				p->s[i].wanted = 0;
		p->conf = p->prev;
		p->gen--;
		resnet_free(m);
		return;
	}
	p->prev_model = p->model;
	p->model = m;
	set_model_id(p);
	p->reload_gen = p->gen;
	p->reload_deadline = now_s() + RELOAD_TIMEOUT;
	log_info("reload: starting generation %d (%d workers, model %s)", p->gen, conf_worker_count(&c),
		 resnet_model_id(m));
}

static void reopen_logs(struct pool *p)
{
	if (p->conf.log_file[0] == '\0')
		return;
	if (log_reopen(p->conf.log_file) != 0) {
		log_warn("cannot reopen %s: %s", p->conf.log_file, strerror(errno));
		return;
	}
	give(p, p->conf.log_file);
	for (int i = 0; i < SB_SLOTS; i++)
		if (p->s[i].pid > 0)
			kill(p->s[i].pid, SIGUSR1);
	log_info("log file reopened");
}

static void write_pid_file(const struct seerd_conf *c)
{
	char tmp[CONF_PATH_MAX + 8];
	FILE *fp;
	int fd;

	if (c->pid_file[0] == '\0')
		return;
	snprintf(tmp, sizeof(tmp), "%s.tmp", c->pid_file);
	fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_NOFOLLOW | O_CLOEXEC, 0644);
	fp = fd >= 0 ? fdopen(fd, "w") : NULL;
	if (fp == NULL && fd >= 0)
		close(fd);
	if (fp == NULL || fprintf(fp, "%d\n", (int)getpid()) < 0 || fclose(fp) != 0 ||
	    rename(tmp, c->pid_file) != 0)
		log_warn("cannot write pid file %s: %s", c->pid_file, strerror(errno));
}

static int live_workers(const struct pool *p)
{
	int n = 0;

	for (int i = 0; i < SB_SLOTS; i++)
		n += p->s[i].pid > 0;
	return n;
}

int pool_run(const struct pool_args *a, const struct seerd_conf *c)
{
	static struct pool pool; /* large (slot table); one per process */
	struct pool *p = &pool;
	struct seer_err err = {0};
	struct timespec tick_ts = {0, TICK_MS * 1000000L};
	sigset_t set;
	int n, code = 0;

	memset(p, 0, sizeof(*p));
	p->args = a;
	p->conf = *c;
	p->fd = -1;
	if (resolve_user(p, &err) != 0 || load_model(&p->conf, &p->model, &err) != 0 ||
	    prepare_db(p, &err) != 0) {
		log_error("%s", err.msg);
		resnet_free(p->model);
		return 1;
	}
	if (p->conf.log_file[0])
		give(p, p->conf.log_file);
	sigemptyset(&set);
	sigaddset(&set, SIGCHLD);
	sigaddset(&set, SIGTERM);
	sigaddset(&set, SIGINT);
	sigaddset(&set, SIGHUP);
	sigaddset(&set, SIGUSR1);
	sigprocmask(SIG_BLOCK, &set, NULL); /* taken synchronously with sigtimedwait below */
	signal(SIGPIPE, SIG_IGN);
	if (bind_socket(p, &err) != 0) {
		log_error("%s", err.msg);
		resnet_free(p->model);
		return 1;
	}
	p->sb = sb_create();
	if (p->sb == NULL) {
		log_error("cannot map the scoreboard: %s", strerror(errno));
		resnet_free(p->model);
		return 1;
	}
	sb_put(p->sb->ready, 1);
	set_model_id(p);
	write_pid_file(&p->conf);
	n = conf_worker_count(&p->conf);
	start_generation(p, n);
	log_info("seerd: %d workers on %s, model %s, history %s", n, p->conf.socket,
		 resnet_model_id(p->model), p->conf.db);

	for (;;) {
		siginfo_t si;
		int sig;

		tick(p);
		if (p->draining && live_workers(p) == 0)
			break;
		sig = sigtimedwait(&set, &si, &tick_ts);
		if (sig < 0)
			continue; /* timeout: the next tick */
		switch (sig) {
		case SIGCHLD:
			reap_all(p);
			break;
		case SIGTERM:
		case SIGINT:
			if (!p->draining) {
				log_info("seerd: %s, finishing current and queued requests", strsignal(sig));
				/* no new connections from here on; the queued ones are served */
				unlink(p->conf.socket);
				sb_put(p->sb->shutdown, 1);
			}
			p->draining = 1;
			p->reload_gen = 0;
			for (int i = 0; i < SB_SLOTS; i++)
				stop_slot(p, i);
			break;
		case SIGHUP:
			if (!p->draining)
				reload(p);
			break;
		case SIGUSR1:
			reopen_logs(p);
			break;
		default:
			break;
		}
		reap_all(p);
	}
	close(p->fd); /* the socket's name went at the start of the drain */
	if (p->conf.pid_file[0])
		unlink(p->conf.pid_file);
	sb_destroy(p->sb);
	resnet_free(p->model);
	resnet_free(p->prev_model);
	log_info("seerd: stopped");
	return code;
}
