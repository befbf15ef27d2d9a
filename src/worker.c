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
	FCGX_ShutdownPending(); /* only sets a flag: safe in a handler */
}

static void on_reopen(int sig)
{
	(void)sig;
	reopen_requested = 1;
}

/*
 * Handlers without SA_RESTART: a signal makes a blocking accept() return
 * EINTR, and FCGI_FAIL_ACCEPT_ON_INTR makes libfcgi hand that back to us
 * instead of retrying, so an idle worker notices a stop at once.
 */
static void install_signals(void)
{
	struct sigaction sa;
	sigset_t all;

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
	sigemptyset(&all);
	sigprocmask(SIG_SETMASK, &all, NULL); /* the supervisor blocks them; we take them */
}

static int drop_privileges(const struct worker_args *a, struct seer_err *err)
{
	if (!a->drop_privileges)
		return 0;
	if (setgroups(1, &a->gid) != 0 || setgid(a->gid) != 0 || setuid(a->uid) != 0)
		return seer_err_set(err, SEER_EIO, "cannot switch to uid %d: %s", (int)a->uid, strerror(errno));
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
		     "Status: %d %s\r\nContent-Type: %s\r\nContent-Length: %zu\r\nCache-Control: %s\r\n%s%s%s%s\r\n",
		     r->status, api_reason(r->status), r->content_type, len,
		     r->cache_control ? r->cache_control : "no-store", r->allow ? "Allow: " : "",
		     r->allow ? r->allow : "", r->allow ? "\r\n" : "", r->status == 503 ? "Retry-After: 2\r\n" : "");
	FCGX_PutStr(head, n < (int)sizeof(head) ? n : (int)sizeof(head) - 1, req->out);
	if (len > 0 && strcmp(ar->method, "HEAD") != 0)
		FCGX_PutStr(body, (int)len, req->out);
}

/* Answer one accepted request. */
static void serve(struct api_ctx *ctx, FCGX_Request *req)
{
	const struct seerd_conf *c = ctx->conf;
	char path[2048];
	const char *uri = FCGX_GetParam("DOCUMENT_URI", req->envp);
	const char *clen = FCGX_GetParam("CONTENT_LENGTH", req->envp);
	const char *start = FCGX_GetParam("REQUEST_START", req->envp);
	struct api_req ar;
	struct api_resp r;
	uint8_t *body = NULL;
	unsigned long long len = 0;
	double t0 = now_s();

	memset(&ar, 0, sizeof(ar));
	api_resp_init(&r);
	ar.method = FCGX_GetParam("REQUEST_METHOD", req->envp);
	if (ar.method == NULL)
		ar.method = "GET";
	if (uri == NULL) { /* no DOCUMENT_URI: the path part of REQUEST_URI */
		const char *ru = FCGX_GetParam("REQUEST_URI", req->envp);
		size_t n = ru ? strcspn(ru, "?") : 0;

		snprintf(path, sizeof(path), "%.*s", (int)(n < sizeof(path) ? n : sizeof(path) - 1), ru ? ru : "");
		uri = path;
	}
	ar.path = uri;
	ar.query = FCGX_GetParam("QUERY_STRING", req->envp);
	ar.content_type = FCGX_GetParam("CONTENT_TYPE", req->envp);
	ar.remote_addr = FCGX_GetParam("REMOTE_ADDR", req->envp);
	ar.remote_user = FCGX_GetParam("REMOTE_USER", req->envp);
	ar.file_name = FCGX_GetParam("HTTP_X_FILE_NAME", req->envp);
	ar.start_s = start ? strtod(start, NULL) : 0;
	if (clen != NULL && *clen != '\0') {
		char *end;

		errno = 0;
		len = strtoull(clen, &end, 10);
		if (*end != '\0' || errno != 0)
			len = ULLONG_MAX;
	}
	if (len > (unsigned long long)c->max_body || len > (1ull << 30)) {
		ar.body_too_large = 1;
	} else if (len > 0) {
		body = malloc((size_t)len);
		if (body == NULL) {
			r.status = 503;
			json_raw(&r.text, "{\"error\": {\"code\": \"overloaded\", \"message\": \"the server is out of "
					  "memory; try again shortly\"}}");
			goto answer;
		}
		if (read_body(req, body, len) != 0) {
			r.status = 400;
			json_raw(&r.text, "{\"error\": {\"code\": \"bad_request\", \"message\": \"the request body "
					  "ended early\"}}");
			goto answer;
		}
		ar.body = body;
		ar.body_len = len;
	}
	api_handle(ctx, &ar, &r);
answer:
	send_response(req, &ar, &r);
	sb_record(ctx->slot, r.status, r.is_classify, now_s() - t0);
	if (r.status >= 500)
		log_info("%s %s -> %d", ar.method, ar.path, r.status);
	api_resp_free(&r);
	free(body);
}

int worker_main(const struct worker_args *a)
{
	const struct seerd_conf *c = a->conf;
	struct sb_slot *slot = &a->sb->slot[a->slot];
	struct engine_opts eo;
	struct api_ctx ctx;
	struct seer_err err = {0};
	FCGX_Request req;
	uint64_t limit = 0, served = 0;
	int rc, code = 0;

	prctl(PR_SET_PDEATHSIG, SIGTERM); /* never outlive the supervisor */
	install_signals();
	blas_set_threads(1);

	memset(&eo, 0, sizeof(eo));
	eo.model_path = c->model;
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
		log_error("worker: cannot load the model: %s", err.msg);
		return 3;
	}
	if ((rc = drop_privileges(a, &err)) != 0) {
		log_error("worker: %s", err.msg);
		return 3;
	}
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
	ctx.items = calloc((size_t)c->max_images, sizeof(*ctx.items));
	if (ctx.items == NULL || FCGX_Init() != 0 || FCGX_InitRequest(&req, a->listen_fd, FCGI_FAIL_ACCEPT_ON_INTR) != 0) {
		log_error("worker: out of memory at start");
		return 3;
	}
	if (c->max_requests > 0) {
		srand((unsigned)getpid() ^ (unsigned)time(NULL));
		limit = (uint64_t)c->max_requests +
			(c->max_requests_jitter > 0 ? (uint64_t)rand() % (uint64_t)(c->max_requests_jitter + 1) : 0);
	}
	log_debug("worker %d ready (model %s)", a->slot, engine_model_id(ctx.engine));
	sb_put(slot->state, SB_IDLE);

	while (!stop_requested) {
		if (reopen_requested) {
			reopen_requested = 0;
			if (c->log_file[0] && log_reopen(c->log_file) != 0)
				log_warn("cannot reopen %s: %s", c->log_file, strerror(errno));
		}
		rc = FCGX_Accept_r(&req);
		if (rc < 0) {
			if (rc == -EINTR || stop_requested)
				continue;
			log_error("worker: accept failed: %s", strerror(-rc));
			code = 1;
			break;
		}
		sb_put(slot->busy_since, sb_now_ms());
		sb_put(slot->state, SB_BUSY);
		serve(&ctx, &req);
		FCGX_Finish_r(&req);
		served++;
		sb_put(slot->served, served);
		sb_put(slot->busy_since, 0);
		sb_put(slot->state, stop_requested ? SB_DRAINING : SB_IDLE);
		if (limit > 0 && served >= limit) {
			log_info("worker %d: recycling after %" PRIu64 " requests", a->slot, served);
			break;
		}
	}
	/*
	 * At shutdown (not at a reload or a recycle, where other workers go on
	 * serving) connections already waiting in the queue are served too:
	 * the supervisor has removed the socket's name, so no new ones come,
	 * and whatever nginx had passed on is answered rather than dropped.
	 * poll() first so that a worker never blocks in accept() once the
	 * queue is empty (another worker may take the last connection; the
	 * supervisor's repeated SIGTERM then ends the wait).
	 */
	while (code == 0 && sb_get(a->sb->shutdown)) {
		struct pollfd pfd = {.fd = a->listen_fd, .events = POLLIN};

		if (poll(&pfd, 1, 0) <= 0 || FCGX_Accept_r(&req) < 0)
			break;
		sb_put(slot->busy_since, sb_now_ms());
		sb_put(slot->state, SB_BUSY);
		serve(&ctx, &req);
		FCGX_Finish_r(&req);
		sb_put(slot->busy_since, 0);
		sb_put(slot->state, SB_DRAINING);
	}
	sb_put(slot->state, SB_DRAINING);
	free(ctx.items);
	db_close(ctx.db);
	engine_close(ctx.engine);
	return code;
}
