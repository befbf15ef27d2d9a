/*
 * api.h - the HTTP API of seerd (API.md), independent of FastCGI: a request
 * comes in as a struct api_req, an answer goes out as a struct api_resp.
 * worker.c does the FastCGI side; keeping it apart makes every route
 * testable from a plain C program and fuzzable.
 */
#ifndef SEER_API_H
#define SEER_API_H

#include <stddef.h>
#include <stdint.h>

#include "conf.h"
#include "db.h"
#include "engine.h"
#include "json.h"
#include "scoreboard.h"

#define API_MAX_IMAGES 64 /* most images in one request (max_images is at most this) */

/* What a worker holds while it serves: all owned by the worker. */
struct api_ctx {
	const struct seerd_conf *conf;
	struct engine *engine;
	/*
	 * The model id as answers and the history name it: the weight file's
	 * id, plus "+fast" / "+noexif" when the decoding differs from the
	 * exact default, so that the cache never answers for other settings.
	 */
	const char *model;
	struct db *db;
	struct scoreboard *sb;
	struct sb_slot *slot;
	struct engine_item *items; /* [batch_requests][max_images], the caller's slices for api_begin() */
	uint64_t inserts;	   /* rows written, for the retention cadence */
	int retention_due;	   /* a retention pass waits for api_after() */
};

struct api_req {
	const char *method;	  /* "GET", "POST", ... */
	const char *path;	  /* decoded path without the query, e.g. "/api/history/12" */
	const char *query;	  /* raw query string, may be NULL */
	const char *content_type; /* may be NULL */
	const char *remote_addr;  /* may be NULL */
	const char *remote_user;  /* set by nginx after auth_basic; NULL or "" otherwise */
	const char *file_name;	  /* X-File-Name header, percent-encoded; may be NULL */
	double start_s;		  /* when nginx got the request (Unix seconds), 0 if unknown */
	const uint8_t *body;
	size_t body_len;
	int body_too_large; /* CONTENT_LENGTH was over max_body: the body was not read */
};

struct api_resp {
	int status;
	const char *content_type;
	const char *cache_control; /* NULL: no-store */
	const char *allow;	   /* the Allow header of a 405 */
	struct json_buf text;	   /* the body, unless bin is set */
	void *bin;		   /* a binary body (thumbnail), malloc'd */
	size_t bin_len;
	int is_classify; /* counts in the latency histogram */
};

void api_resp_init(struct api_resp *r);
void api_resp_free(struct api_resp *r);

/*
 * Answer a request (never fails: every problem becomes an error answer), in
 * two halves, so that a worker holding several classify requests runs the
 * network once for all their images: api_begin() answers everything it can
 * at once and returns 0; for a classify request with
 * images it puts them in items[0, max_images) (the caller's, one slice per
 * request) and returns 1 with *job. The caller then runs engine_run() over
 * the job's images (api_job_items(), skipped ones included: engine_run
 * passes over them) and finishes with api_finish(), which frees the job.
 */
struct api_job;
int api_begin(struct api_ctx *ctx, const struct api_req *req, struct api_resp *resp,
	      struct engine_item *items, struct api_job **job);
int api_job_items(const struct api_job *job, struct engine_item **items);
void api_finish(struct api_ctx *ctx, const struct api_req *req, struct api_resp *resp, struct api_job *job);

/*
 * Housekeeping the requests left for after their answers went out: the
 * history's retention pass, due every RETENTION_EVERY rows a worker writes,
 * and its checkpoint (db_checkpoint()). Failures are logged: a failed
 * retention pass waits for the next RETENTION_EVERY rows, a failed
 * checkpoint for the next commit that leaves the log past its threshold.
 */
void api_after(struct api_ctx *ctx);

/*
 * Seconds since nginx received the request (its REQUEST_START), or exactly
 * -1 when unknown. Clamped at 0: clocks do not run backwards here, but a
 * forged parameter could claim so.
 */
double api_req_waited_s(const struct api_req *req);

/* The reason phrase of a status ("OK", "Payload Too Large", ...). */
const char *api_reason(int status);

#endif
