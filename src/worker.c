/* worker.c - the FastCGI side of a seerd worker: accept, read, answer, account. */
#include "worker.h"

#include <errno.h>
#include <grp.h>
#include <inttypes.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <time.h>
#include <unistd.h>

#include <fcgiapp.h>

#include "api.h"
#include "blas.h"
#include "db.h"
#include "engine.h"
#include "log.h"

static volatile sig_atomic_t stop_requested, reopen_requested;

static void on_stop(int sig)
{
	(void)sig;
	stop_requested = 1;
}

static void on_reopen(int sig)
{
	(void)sig;
	reopen_requested = 1;
}

/*
 * The signals a worker acts on (TERM, INT, USR1) stay blocked except while
 * it waits for connections in ppoll(), which unblocks them atomically: no
 * read or write of a request can ever be cut short by one (libfcgi does not
 * retry them), and a signal sent just before the wait is not lost. The
 * handlers have no SA_RESTART, so an idle worker leaves its wait at once.
 */
static sigset_t wait_mask; /* the mask during ppoll(): those three unblocked */

static void install_signals(void)
{
	struct sigaction sa;
	sigset_t block;

	memset(&sa, 0, sizeof(sa));
	sigemptyset(&sa.sa_mask);
	sa.sa_handler = on_stop;
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGINT, &sa, NULL);
	sa.sa_handler = on_reopen;
	sigaction(SIGUSR1, &sa, NULL);
	sa.sa_handler = SIG_IGN;
	sigaction(SIGHUP, &sa, NULL); /* reloads are the supervisor's business */
	sigaction(SIGPIPE, &sa, NULL);
	sa.sa_handler = SIG_DFL;
	sigaction(SIGCHLD, &sa, NULL);
	sigemptyset(&wait_mask);
	sigemptyset(&block);
	sigaddset(&block, SIGTERM);
	sigaddset(&block, SIGINT);
	sigaddset(&block, SIGUSR1);
	sigprocmask(SIG_SETMASK, &block, NULL); /* from the supervisor: more were blocked */
}

static int drop_privileges(const struct worker_args *a, struct seer_err *err)
{
	if (!a->drop_privileges)
		return 0;
	if (setgroups(1, &a->gid) != 0 || setgid(a->gid) != 0 || setuid(a->uid) != 0)
		return seer_err_set(err, SEER_EIO, "cannot switch to uid %d: %s", (int)a->uid,
				    strerror(errno));
	if (setuid(0) == 0) /* must be impossible now */
		return seer_err_set(err, SEER_EIO, "privileges were not dropped");
	return 0;
}

static double now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* Read exactly len bytes of request body; returns 0 or -1 when the client went away early. */
static int read_body(FCGX_Request *req, uint8_t *buf, size_t len)
{
	size_t got = 0;

	while (got < len) {
		int want = len - got > (1u << 30) ? 1 << 30 : (int)(len - got);
		int n = FCGX_GetStr((char *)buf + got, want, req->in);

		if (n <= 0)
			return -1;
		got += (size_t)n;
	}
	return 0;
}

static void send_response(FCGX_Request *req, const struct api_req *ar, const struct api_resp *r)
{
	const void *body = r->bin ? r->bin : r->text.data;
	size_t len = r->bin ? r->bin_len : r->text.len;
	char head[512];
	int n;

	/* formatted here: libfcgi's own FCGX_FPrintF knows no %zu */
	n = snprintf(head, sizeof(head),
		     "Status: %d %s\r\nContent-Type: %s\r\nContent-Length: %zu\r\nCache-Control: "
		     "%s\r\n%s%s%s%s\r\n",
		     r->status, api_reason(r->status), r->content_type, len,
		     r->cache_control ? r->cache_control : "no-store", r->allow ? "Allow: " : "",
		     r->allow ? r->allow : "", r->allow ? "\r\n" : "",
		     r->status == 503 ? "Retry-After: 2\r\n" : "");
	FCGX_PutStr(head, n < (int)sizeof(head) ? n : (int)sizeof(head) - 1, req->out);
	if (len > 0 && strcmp(ar->method, "HEAD") != 0)
		FCGX_PutStr(body, (int)len, req->out);
}

/* One accepted request, from its parameters to its answer. */
struct pending {
	FCGX_Request req;
	struct api_req ar;
	struct api_resp resp;
	struct api_job *job; /* a classify request waiting for the network */
	uint8_t *body;
	char path[2048];
	int answered; /* resp is final before api_begin() (body errors) */
	int gone;     /* nginx closed the connection before the request was served */
	double t0;
};

/*
 * Whether nginx has closed the request's connection. It does so when the
 * client goes away (or nginx's own timeout gives up on the request): nobody
 * will read the answer, so a request still waiting is dropped rather than
 * run through the network. nginx never closes before it has read the whole
 * answer otherwise (seer's FastCGI connections are not kept alive).
 */
static int peer_gone(const FCGX_Request *req)
{
	struct pollfd pfd = {.fd = req->ipcFd, .events = POLLRDHUP};

	return poll(&pfd, 1, 0) == 1 && (pfd.revents & (POLLRDHUP | POLLHUP | POLLERR)) != 0;
}

/* Read what an accepted request sent: its parameters and its body. */
static void read_request(const struct seerd_conf *c, struct pending *p)
{
	FCGX_Request *req = &p->req;
	const char *uri = FCGX_GetParam("DOCUMENT_URI", req->envp);
	const char *clen = FCGX_GetParam("CONTENT_LENGTH", req->envp);
	const char *start = FCGX_GetParam("REQUEST_START", req->envp);
	struct api_req *ar = &p->ar;
	unsigned long long len = 0;

	p->t0 = now_s();
	p->job = NULL;
	p->body = NULL;
	p->answered = 0;
	memset(ar, 0, sizeof(*ar));
	api_resp_init(&p->resp);
	ar->method = FCGX_GetParam("REQUEST_METHOD", req->envp);
	if (ar->method == NULL)
		ar->method = "GET";
	if (uri == NULL) { /* no DOCUMENT_URI: the path part of REQUEST_URI */
		const char *ru = FCGX_GetParam("REQUEST_URI", req->envp);
		size_t n = ru ? strcspn(ru, "?") : 0;

		snprintf(p->path, sizeof(p->path), "%.*s",
			 (int)(n < sizeof(p->path) ? n : sizeof(p->path) - 1), ru ? ru : "");
		uri = p->path;
	}
	ar->path = uri;
	ar->query = FCGX_GetParam("QUERY_STRING", req->envp);
	ar->content_type = FCGX_GetParam("CONTENT_TYPE", req->envp);
	ar->remote_addr = FCGX_GetParam("REMOTE_ADDR", req->envp);
	ar->remote_user = FCGX_GetParam("REMOTE_USER", req->envp);
	ar->file_name = FCGX_GetParam("HTTP_X_FILE_NAME", req->envp);
	ar->start_s = start ? strtod(start, NULL) : 0;
	if (clen != NULL && *clen != '\0') {
		char *end;

		errno = 0;
		len = strtoull(clen, &end, 10);
		if (*end != '\0' || errno != 0)
			len = ULLONG_MAX;
	}
	if (len > (unsigned long long)c->max_body || len > (1ull << 30)) {
		ar->body_too_large = 1; /* not read: api answers 413 */
	} else if (len > 0) {
		p->body = malloc((size_t)len);
		if (p->body == NULL) {
			p->resp.status = 503;
			json_raw(&p->resp.text,
				 "{\"error\": {\"code\": \"overloaded\", \"message\": \"the server "
				 "is out of memory; try again shortly\"}}");
			p->answered = 1;
		} else if (read_body(req, p->body, len) != 0) {
			p->resp.status = 400;
			json_raw(&p->resp.text, "{\"error\": {\"code\": \"bad_request\", \"message\": \"the "
						"request body ended early\"}}");
			p->answered = 1;
		} else {
			ar->body = p->body;
			ar->body_len = len;
		}
	}
}

/* Send the answer, account for it and let the request go. */
static void finish_request(struct api_ctx *ctx, struct pending *p)
{
	struct api_resp *r = &p->resp;

	if (p->gone) {
		sb_add(ctx->slot->abandoned, 1);
		log_info("%s %s: the client went away while it waited; dropped unserved", p->ar.method,
			 p->ar.path);
	} else {
		send_response(&p->req, &p->ar, r);
		sb_record(ctx->slot, r->status, r->is_classify, now_s() - p->t0);
		if (r->status >= 500) /* before FCGX_Finish_r(), which frees the strings */
			log_info("%s %s -> %d", p->ar.method, p->ar.path, r->status);
	}
	FCGX_Finish_r(&p->req);
	memset(&p->ar, 0, sizeof(p->ar));
	api_resp_free(r);
	free(p->body);
	p->body = NULL;
}

/*
 * Answer n accepted requests together. Each classify request gets its own
 * slice of max_images items; the images of all of them then go through
 * the network in as few batches as the engine allows (max_images each),
 * which under load reads the weights once for several requests.
 * Returns how many were classify requests with images to run; the rest
 * (abandoned, answered at once: errors, GETs) cost next to nothing.
 */
static int serve_batch(struct api_ctx *ctx, struct pending *pend, int n)
{
	const struct seerd_conf *c = ctx->conf;
	struct engine_item *batch[API_MAX_IMAGES];
	int m = 0, ran = 0;

	for (int i = 0; i < n; i++) {
		struct pending *p = &pend[i];
		struct engine_item *items;
		int k;

		p->gone = peer_gone(&p->req);
		if (p->gone || p->answered ||
		    !api_begin(ctx, &p->ar, &p->resp, ctx->items + (size_t)i * c->max_images, &p->job))
			continue;
		ran++;
		k = api_job_items(p->job, &items);
		for (int j = 0; j < k; j++) {
			batch[m++] = &items[j];
			if (m == c->max_images) {
				engine_run(ctx->engine, batch, m, c->topk_max);
				m = 0;
			}
		}
	}
	if (m > 0)
		engine_run(ctx->engine, batch, m, c->topk_max);
	for (int i = 0; i < n; i++) {
		if (pend[i].job != NULL)
			api_finish(ctx, &pend[i].ar, &pend[i].resp, pend[i].job);
		pend[i].job = NULL;
		finish_request(ctx, &pend[i]);
	}
	return ran;
}

/*
 * Batching pays where the network dominates (it reads the weights once for
 * the batch); a large upload is dominated by its own decoding, which
 * batching does not share, so gathering stops once the bodies reach this.
 */
#define GATHER_BYTES (1u << 20)

/* Whether a live worker other than slot self is waiting for requests. */
static int other_worker_idle(const struct scoreboard *sb, int self)
{
	int n = sb_get(sb->nslots);

	for (int i = 0; i < n && i < SB_SLOTS; i++)
		if (i != self && sb_get(sb->slot[i].state) == SB_IDLE)
			return 1;
	return 0;
}

/*
 * Take the requests already waiting, up to max (the listening socket is
 * non-blocking: an empty queue ends the gathering, and a connection another
 * worker took first is simply not ours). Stops early once the bodies read
 * reach GATHER_BYTES, which also bounds the memory of one round.
 *
 * A batch reads the weights once for all its images (about 10% less time
 * per image at 2 to 4 images), but every image in it is answered only when
 * the last is done. So a batch forms only when the queue is long: never
 * while another worker is idle (two cores answer two images sooner than
 * one batch of two), and only when the first request has already waited
 * for a worker more than twice `service_s` (this worker's recent time per
 * request). While fewer requests wait than there are workers, none waits
 * much longer than one service time for the next worker to free up; a
 * longer wait means a queue the pool cannot drain in one round.
 * The slot is marked busy at the first request, so that the others see it.
 */
static int gather(const struct seerd_conf *c, struct scoreboard *sb, int self, double service_s,
		  struct pending *pend, int max)
{
	size_t bytes = 0;
	int n = 0;

	while (n < max && bytes < GATHER_BYTES) {
		int rc;

		if (n == 1) {
			double w = api_req_waited_s(&pend[0].ar);

			/* unknown (not behind seer's nginx): no way to tell, gather */
			if (w != -1 && (service_s <= 0 || w < 2 * service_s))
				break;
		}
		if (n > 0 && other_worker_idle(sb, self))
			break;
		rc = FCGX_Accept_r(&pend[n].req);
		if (rc < 0) {
			if (rc != -EAGAIN && rc != -EWOULDBLOCK && rc != -EINTR) {
				/* EMFILE, ENOMEM...: poll() would wake again at once */
				log_warn("worker: accept failed: %s", strerror(-rc));
				usleep(100000);
			}
			break;
		}
		if (n == 0)
			sb_put(sb->slot[self].state, SB_BUSY);
		read_request(c, &pend[n]);
		bytes += pend[n].ar.body_len;
		n++;
	}
	return n;
}

int worker_main(const struct worker_args *a)
{
	const struct seerd_conf *c = a->conf;
	struct sb_slot *slot = &a->sb->slot[a->slot];
	struct engine_opts eo;
	struct api_ctx ctx;
	struct seer_err err = {0};
	struct pending *pend;
	char model_key[96];
	uint64_t limit = 0, served = 0;
	double service_s = 0; /* moving average of the time per classify request, for gather() */
	int rc, code = 0;

	install_signals();
	blas_set_threads(1);

	memset(&eo, 0, sizeof(eo));
	eo.model = a->model;
	eo.max_batch = c->max_images;
	eo.topk_max = c->topk_max;
	img_decode_opts_default(&eo.decode);
	eo.decode.limits.max_pixels = c->max_pixels;
	eo.decode.limits.max_side = c->max_side;
	eo.decode.limits.max_bytes = c->max_body;
	eo.decode.exif_rotate = c->exif_rotate;
	eo.decode.fast = c->fast_decode;
	eo.thumbnails = c->thumbnails;

	memset(&ctx, 0, sizeof(ctx));
	ctx.conf = c;
	ctx.sb = a->sb;
	ctx.slot = slot;
	if ((rc = engine_open(&eo, &ctx.engine, &err)) != 0) {
		log_error("worker: cannot set up: %s", err.msg);
		return 3;
	}
	if ((rc = drop_privileges(a, &err)) != 0) {
		log_error("worker: %s", err.msg);
		return 3;
	}
	/*
	 * Never outlive the supervisor. Set after the switch of user, which
	 * clears it; the supervisor may have died in between, hence the check.
	 */
	prctl(PR_SET_PDEATHSIG, SIGTERM);
	if (getppid() != a->supervisor)
		return 1;
	{
		struct db_opts dbo;

		db_opts_default(&dbo);
		dbo.busy_timeout_ms = c->db_busy_timeout;
		if ((rc = db_open(c->db, &dbo, &ctx.db, &err)) != 0) {
			log_error("worker: cannot open the history database: %s", err.msg);
			engine_close(ctx.engine);
			return 3;
		}
	}
	snprintf(model_key, sizeof(model_key), "%s%s%s", engine_model_id(ctx.engine),
		 c->fast_decode ? "+fast" : "", c->exif_rotate ? "" : "+noexif");
	ctx.model = model_key;
	ctx.items = calloc((size_t)c->max_images * (size_t)c->batch_requests, sizeof(*ctx.items));
	pend = calloc((size_t)c->batch_requests, sizeof(*pend));
	if (ctx.items == NULL || pend == NULL || FCGX_Init() != 0) {
		log_error("worker: out of memory at start");
		return 3;
	}
	for (int i = 0; i < c->batch_requests; i++)
		FCGX_InitRequest(&pend[i].req, a->listen_fd, FCGI_FAIL_ACCEPT_ON_INTR);
	if (c->max_requests > 0) {
		srand((unsigned)getpid() ^ (unsigned)time(NULL));
		limit = (uint64_t)c->max_requests +
			(c->max_requests_jitter > 0
				 ? (uint64_t)rand() % (uint64_t)(c->max_requests_jitter + 1)
				 : 0);
	}
	log_debug("worker %d ready (model %s)", a->slot, engine_model_id(ctx.engine));
	sb_put(slot->state, SB_IDLE);

	/*
	 * Wait in ppoll() (the only place signals get through), then take
	 * what is queued. At shutdown (not at a reload or a recycle, where other
	 * workers go on serving) the queue is emptied before leaving: the
	 * supervisor has removed the socket's name, so nothing new comes, and
	 * what nginx had passed on is answered rather than dropped.
	 */
	for (;;) {
		static const struct timespec no_wait = {0, 0};
		struct pollfd pfd = {.fd = a->listen_fd, .events = POLLIN};
		sigset_t held;
		int n, shutdown = sb_get(a->sb->shutdown);

		/*
		 * A window for pending signals between two rounds: ppoll() only
		 * delivers them when it would have waited, and under steady load
		 * it never waits.
		 */
		sigprocmask(SIG_SETMASK, &wait_mask, &held);
		sigprocmask(SIG_SETMASK, &held, NULL);
		if (reopen_requested) {
			reopen_requested = 0;
			if (c->log_file[0] && log_reopen(c->log_file) != 0)
				log_warn("cannot reopen %s: %s", c->log_file, strerror(errno));
		}
		if (stop_requested && !shutdown)
			break;
		rc = ppoll(&pfd, 1, stop_requested ? &no_wait : NULL, &wait_mask);
		if (rc < 0 && errno != EINTR) {
			log_error("worker: poll failed: %s", strerror(errno));
			code = 1;
			break;
		}
		if (rc <= 0) {
			if (stop_requested) /* shutting down and the queue is empty */
				break;
			continue;
		}
		/* a recycling worker takes no more than it has left to serve */
		/* the watchdog covers reading the requests too: a stalled one is killed */
		sb_put(slot->busy_since, sb_now_ms());
		n = gather(c, a->sb, a->slot, service_s, pend,
			   limit > 0 && limit - served < (uint64_t)c->batch_requests ? (int)(limit - served)
										     : c->batch_requests);
		if (n == 0) {
			sb_put(slot->busy_since, 0);
			continue;
		}
		{
			double started = now_s(), per_request;
			int ran = serve_batch(&ctx, pend, n);

			/* the time of a classify request: the others would make one look quicker */
			if (ran > 0) {
				per_request = (now_s() - started) / ran;
				service_s = service_s > 0 ? 0.8 * service_s + 0.2 * per_request : per_request;
			}
		}
		/*
		 * The answers are out: retention and checkpoints no longer delay
		 * them. The slot stays busy meanwhile, so that no other worker
		 * takes it for one ready to take the queue (gather()).
		 */
		api_after(&ctx);
		served += (uint64_t)n;
		sb_put(slot->served, served);
		sb_put(slot->busy_since, 0);
		sb_put(slot->state, stop_requested ? SB_DRAINING : SB_IDLE);
		if (limit > 0 && served >= limit) {
			log_info("worker %d: recycling after %" PRIu64 " requests", a->slot, served);
			break;
		}
	}
	sb_put(slot->state, SB_DRAINING);
	free(pend);
	free(ctx.items);
	db_close(ctx.db);
	engine_close(ctx.engine);
	return code;
}
