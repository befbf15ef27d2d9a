/* api.c - routes and handlers of the seerd HTTP API (API.md). */
#include "api.h"

#include <ctype.h>
#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "form.h"
#include "labels.h"
#include "log.h"
#include "resnet.h"

#define RETENTION_EVERY 100 /* inserts between two retention passes of a worker */

void api_resp_init(struct api_resp *r)
{
	memset(r, 0, sizeof(*r));
	r->status = 200;
	r->content_type = "application/json; charset=utf-8";
	json_buf_init(&r->text);
}

void api_resp_free(struct api_resp *r)
{
	json_buf_free(&r->text);
	free(r->bin);
	r->bin = NULL;
}

const char *api_reason(int status)
{
	switch (status) {
	case 200:
		return "OK";
	case 400:
		return "Bad Request";
	case 401:
		return "Unauthorized";
	case 403:
		return "Forbidden";
	case 404:
		return "Not Found";
	case 405:
		return "Method Not Allowed";
	case 413:
		return "Payload Too Large";
	case 415:
		return "Unsupported Media Type";
	case 422:
		return "Unprocessable Content";
	case 429:
		return "Too Many Requests";
	case 503:
		return "Service Unavailable";
	default:
		return "Internal Server Error";
	}
}

/* ------------------------------------------------------------ helpers */

/* "error": {"code": ..., "message": ...} as a member of an object being written. */
static void error_member(struct json_buf *b, const char *code, const char *message)
{
	json_raw(b, "\"error\": {\"code\": ");
	json_str(b, code);
	json_raw(b, ", \"message\": ");
	json_str(b, message);
	json_raw(b, "}");
}

static void error_body(struct json_buf *b, const char *code, const char *message)
{
	json_raw(b, "{");
	error_member(b, code, message);
	json_raw(b, "}");
}

static void fail(struct api_resp *r, int status, const char *code, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));

/* Replace the answer with an error. */
static void fail(struct api_resp *r, int status, const char *code, const char *fmt, ...)
{
	char msg[512];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	r->status = status;
	r->content_type = "application/json; charset=utf-8";
	json_buf_reset(&r->text);
	error_body(&r->text, code, msg);
}

static int64_t wall_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

double api_req_waited_s(const struct api_req *req)
{
	double w;

	if (req->start_s <= 0)
		return -1;
	w = (double)wall_ms() / 1e3 - req->start_s;
	return w > 0 ? w : 0;
}

static double mono_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

/*
 * An integer query parameter in [lo, hi]; *out keeps its default when the
 * parameter is absent. Returns 0, or -1 after answering 400.
 */
static int query_int(const struct api_req *req, struct api_resp *r, const char *key, int64_t lo, int64_t hi,
		     int64_t *out)
{
	char buf[32], *end;
	long long v;
	int found = form_query_get(req->query, key, buf, sizeof(buf));

	if (found == 0)
		return 0;
	errno = 0;
	v = found > 0 ? strtoll(buf, &end, 10) : 0;
	if (found < 0 || buf[0] == '\0' || *end != '\0' || errno != 0 || v < lo || v > hi) {
		fail(r, 400, "bad_parameter", "%s must be a whole number from %" PRId64 " to %" PRId64, key,
		     lo, hi);
		return -1;
	}
	*out = v;
	return 0;
}

static int is_admin(const struct api_req *req, struct api_resp *r)
{
	if (req->remote_user != NULL && req->remote_user[0] != '\0')
		return 1;
	fail(r, 403, "forbidden", "this endpoint is for the administrator; sign in through the web server");
	return 0;
}

/* Does the path start with prefix, followed by the end or '/'? Sets *rest to what follows. */
static int path_under(const char *path, const char *prefix, const char **rest)
{
	size_t n = strlen(prefix);

	if (strncmp(path, prefix, n) != 0 || (path[n] != '\0' && path[n] != '/'))
		return 0;
	*rest = path + n;
	return 1;
}

static int method_is(const struct api_req *req, const char *m)
{
	return req->method != NULL && strcmp(req->method, m) == 0;
}

/* GET (and HEAD, which the worker answers without a body) only. */
static int want_get(const struct api_req *req, struct api_resp *r)
{
	if (method_is(req, "GET") || method_is(req, "HEAD"))
		return 1;
	r->allow = "GET, HEAD";
	fail(r, 405, "method_not_allowed", "%s is not allowed here; use GET",
	     req->method ? req->method : "?");
	return 0;
}

/* ---------------------------------------------------------- classify */

/* One image of a classify request, and what became of it. */
struct upload {
	char file_name[FORM_FILENAME_MAX];
	char content_type[FORM_TYPE_MAX];
	int status;	   /* HTTP status of this image */
	const char *code;  /* error code, NULL on success */
	char message[320]; /* error message */
	int cached;
	char *cached_topk; /* the stored top-K JSON of a cache hit, malloc'd */
	int64_t id;
};

/* Does the buffer look like text (so we can say so instead of "unknown format")? */
static int looks_like_text(const uint8_t *p, size_t n)
{
	size_t m = n < 512 ? n : 512;

	if (m == 0)
		return 0;
	for (size_t i = 0; i < m; i++)
		if (p[i] < 0x09 || (p[i] > 0x0d && p[i] < 0x20) || p[i] == 0x7f)
			return 0;
	return 1;
}

/* Strip the "function: " prefix of a library message for users. */
static const char *plain(const char *msg)
{
	const char *c = strstr(msg, ": ");

	return c != NULL && (size_t)(c - msg) < 24 && strchr(msg, ' ') > c ? c + 2 : msg;
}

/* Turn a decoder failure into the answer for that image. */
static void decode_failure(struct upload *u, const struct engine_item *it)
{
	const char *seen = NULL;

	switch (it->rc) {
	case SEER_EUNSUPPORTED: {
		int known = img_sniff(it->data, it->len, &seen) != IMG_FORMAT_UNKNOWN;

		u->status = 415;
		u->code = "unsupported_format";
		if (known) /* a JPEG or PNG variant seer does not handle */
			snprintf(u->message, sizeof(u->message), "%s", plain(it->err.msg));
		else if (seen != NULL)
			snprintf(u->message, sizeof(u->message),
				 "%s images are not supported; upload a JPEG or PNG photo", seen);
		else if (looks_like_text(it->data, it->len))
			snprintf(u->message, sizeof(u->message),
				 "this file is text, not an image; upload a JPEG or PNG photo");
		else
			snprintf(u->message, sizeof(u->message),
				 "this file is not a JPEG or PNG image; upload a JPEG or PNG photo");
		break;
	}
	case SEER_ETOOLARGE:
		u->status = 422;
		u->code = "too_many_pixels";
		snprintf(u->message, sizeof(u->message), "the image is too large to process: %s",
			 plain(it->err.msg));
		break;
	case SEER_EEMPTY:
		u->status = 400;
		u->code = "no_image";
		snprintf(u->message, sizeof(u->message), "the file is empty");
		break;
	case SEER_ENOMEM:
		u->status = 503;
		u->code = "overloaded";
		snprintf(u->message, sizeof(u->message), "the server is out of memory; try again shortly");
		break;
	default:
		u->status = 422;
		u->code = "undecodable";
		snprintf(u->message, sizeof(u->message),
			 "the image could not be decoded (damaged or incomplete file): %s",
			 plain(it->err.msg));
		break;
	}
}

/*
 * The length of the first k elements of a JSON array text (without the
 * '['), or 0 when it has fewer. Strings are skipped so brackets in labels
 * cannot confuse it.
 */
static size_t json_array_prefix(const char *arr, int k, int *count)
{
	int depth = 0, n = 0, in_str = 0;
	const char *p = arr;

	*count = 0;
	if (*p++ != '[')
		return 0;
	for (; *p; p++) {
		if (in_str) {
			if (*p == '\\' && p[1] != '\0')
				p++;
			else if (*p == '"')
				in_str = 0;
			continue;
		}
		if (*p == '"')
			in_str = 1;
		else if (*p == '{' || *p == '[')
			depth++;
		else if (*p == '}' || *p == ']') {
			if (depth == 0) /* the closing bracket */
				break;
			if (--depth == 0 && ++n == k) {
				*count = n;
				return (size_t)(p + 1 - (arr + 1));
			}
		}
	}
	*count = n;
	return 0;
}

/* Write the top-k of an engine item as a JSON array. */
static void topk_json(struct json_buf *b, const struct engine_item *it, int k)
{
	json_raw(b, "[");
	for (int j = 0; j < k && j < it->ntop; j++) {
		json_printf(b, "%s{\"index\": %d, \"label\": ", j ? ", " : "", it->top[j]);
		json_str(b, labels_imagenet[it->top[j]]);
		json_printf(b, ", \"prob\": %.9g}", it->prob[j]);
	}
	json_raw(b, "]");
}

/* Fill the top-1 fields of a record from a stored top-K text (a cache hit). */
static void top1_from_json(const char *topk, struct db_record *rec)
{
	const char *p = strstr(topk, "\"index\":"), *q = strstr(topk, "\"prob\":");

	rec->top1_index = p ? atoi(p + 8) : -1;
	rec->top1_prob = q ? strtod(q + 7, NULL) : 0;
	if (rec->top1_index < 0 || rec->top1_index >= RESNET_CLASSES)
		rec->top1_index = -1;
	rec->top1_label = rec->top1_index >= 0 ? labels_imagenet[rec->top1_index] : NULL;
}

/* An upload's file name as JSON: null when the client gave none. */
static void file_name_json(struct json_buf *b, const struct upload *u)
{
	if (u->file_name[0])
		json_str(b, u->file_name);
	else
		json_raw(b, "null");
}

static void result_json(struct json_buf *b, const struct api_ctx *ctx, const struct upload *u,
			const struct engine_item *it, int k, double total_ms)
{
	int have;
	size_t n;

	if (u->code != NULL) {
		json_raw(b, "{\"file\": ");
		file_name_json(b, u);
		json_raw(b, ", ");
		json_printf(b, "\"status\": %d, ", u->status);
		error_member(b, u->code, u->message);
		json_raw(b, "}");
		return;
	}
	if (u->id > 0)
		json_printf(b, "{\"id\": %" PRId64 ", \"file\": ", u->id);
	else
		json_raw(b, "{\"id\": null, \"file\": ");
	file_name_json(b, u);
	json_raw(b, ", \"model\": ");
	json_str(b, ctx->model);
	json_raw(b, ", \"topk\": ");
	if (u->cached) {
		n = json_array_prefix(u->cached_topk, k, &have);
		json_raw(b, "[");
		/* the stored array has topk_max entries; keep the first k */
		json_printf(b, "%.*s", (int)n, u->cached_topk + 1);
		json_raw(b, "]");
	} else {
		topk_json(b, it, k);
	}
	json_printf(b,
		    ", \"width\": %u, \"height\": %u, \"bytes\": %zu, \"sha256\": \"%s\", \"cached\": %s, "
		    "\"timings_ms\": {\"decode\": %.3f, \"preprocess\": %.3f, \"inference\": %.3f, "
		    "\"total\": %.3f}}",
		    it->size.width, it->size.height, it->len, it->sha256, u->cached ? "true" : "false",
		    it->t_decode, it->t_preprocess, it->t_inference, total_ms);
}

/* "results": [...] with one entry per upload, as a member of an object being written. */
static void results_member(struct json_buf *b, const struct api_ctx *ctx, const struct upload *ups,
			   const struct engine_item *items, int n, int k, double total_ms)
{
	json_raw(b, "\"results\": [");
	for (int i = 0; i < n; i++) {
		if (i)
			json_raw(b, ", ");
		result_json(b, ctx, &ups[i], &items[i], k, total_ms);
	}
	json_raw(b, "]");
}

/* Split the body into uploads: one raw image or the "file" parts of a multipart body. */
static int collect(struct api_ctx *ctx, const struct api_req *req, struct api_resp *r, struct upload *ups,
		   struct engine_item *items, int *n, int *multipart)
{
	const struct seerd_conf *c = ctx->conf;
	char boundary[80];
	int rc;

	*n = 0;
	*multipart = 0;
	rc = req->content_type ? form_multipart_boundary(req->content_type, boundary, sizeof(boundary))
			       : SEER_EUNSUPPORTED;
	if (rc == SEER_ECORRUPT) {
		fail(r, 400, "bad_multipart", "the multipart/form-data request has no valid boundary");
		return -1;
	}
	if (rc == 0) {
		struct form_part parts[64];
		struct seer_err err = {0};
		int nparts = 0, files = 0;

		*multipart = 1;
		if (form_multipart_parse(req->body, req->body_len, boundary, parts, 64, &nparts, &err) != 0) {
			fail(r, 400, "bad_multipart", "the upload is malformed: %s", plain(err.msg));
			return -1;
		}
		for (int i = 0; i < nparts && i < 64; i++)
			files += strcmp(parts[i].name, "file") == 0;
		if (nparts > 64 || files > c->max_images) {
			fail(r, 413, "too_large", "%d images in one request; send at most %d at a time",
			     nparts > 64 ? nparts : files, c->max_images);
			return -1;
		}
		for (int i = 0; i < nparts; i++) {
			struct upload *u;

			if (strcmp(parts[i].name, "file") != 0)
				continue;
			u = &ups[(*n)++];
			snprintf(u->file_name, sizeof(u->file_name), "%s", parts[i].filename);
			snprintf(u->content_type, sizeof(u->content_type), "%s", parts[i].content_type);
			items[*n - 1].data = parts[i].data;
			items[*n - 1].len = parts[i].len;
		}
		if (*n == 0) {
			fail(r, 400, "no_image",
			     "the form has no part named \"file\"; send the image as \"file\"");
			return -1;
		}
		return 0;
	}
	if (req->body_len == 0) {
		fail(r, 400, "no_image",
		     "the request has no image; send the image bytes as the body or as multipart \"file\" "
		     "parts");
		return -1;
	}
	*n = 1;
	if (req->file_name != NULL && form_url_decode(req->file_name, strlen(req->file_name), 0,
						      ups[0].file_name, sizeof(ups[0].file_name)) < 0)
		ups[0].file_name[0] = '\0';
	snprintf(ups[0].content_type, sizeof(ups[0].content_type), "%s",
		 req->content_type ? req->content_type : "");
	items[0].data = req->body;
	items[0].len = req->body_len;
	return 0;
}

/* A classify request between api_begin() and api_finish(). */
struct api_job {
	struct upload ups[API_MAX_IMAGES];
	struct engine_item *items; /* the worker's, [0, n) */
	int n, multipart;
	int64_t k, now;
	double t0;
};

/*
 * The first half of a classify request: checks, the uploads, the cache.
 * Returns 1 with *job when images are waiting for engine_run(), 0 when the
 * request is answered already.
 */
static int classify_begin(struct api_ctx *ctx, const struct api_req *req, struct api_resp *r,
			  struct engine_item *items, struct api_job **jobp)
{
	const struct seerd_conf *c = ctx->conf;
	struct seer_err err = {0};
	struct api_job *job;
	int64_t k = c->topk_default, now = wall_ms();
	double waited;

	r->is_classify = 1;
	if (!method_is(req, "POST")) {
		r->allow = "POST";
		fail(r, 405, "method_not_allowed", "use POST with the image as the body");
		return 0;
	}
	if (query_int(req, r, "topk", 1, c->topk_max, &k) != 0)
		return 0;
	if (c->queue_timeout > 0 && (waited = api_req_waited_s(req)) > c->queue_timeout) {
		fail(r, 503, "overloaded",
		     "the server is busy (the request waited %.1f s for a free worker); try again in a "
		     "moment",
		     waited);
		return 0;
	}
	if (req->body_too_large) {
		fail(r, 413, "too_large", "the upload is over the %zu MiB limit", c->max_body >> 20);
		return 0;
	}
	job = calloc(1, sizeof(*job));
	if (job == NULL) {
		fail(r, 503, "overloaded", "the server is out of memory; try again shortly");
		return 0;
	}
	job->items = items;
	job->k = k;
	job->now = now;
	job->t0 = mono_ms();
	for (int i = 0; i < c->max_images; i++) {
		engine_item_clear(&items[i]);
		items[i].skip = 0;
		items[i].size = (struct img_size){0, 0};
		items[i].t_decode = items[i].t_preprocess = items[i].t_inference = 0;
	}
	if (collect(ctx, req, r, job->ups, items, &job->n, &job->multipart) != 0) {
		free(job);
		return 0;
	}

	/* the cache: the same bytes for the same model have a stored answer */
	for (int i = 0; i < job->n; i++) {
		struct engine_item *it = &items[i];
		struct upload *u = &job->ups[i];
		int w = 0, h = 0, hit;

		engine_hash(it);
		hit = db_cache_lookup(ctx->db, it->sha256, ctx->model, &u->cached_topk, &w, &h, &err);
		if (hit == 1) {
			struct db_record probe = {0};
			int have;

			json_array_prefix(u->cached_topk, (int)k, &have);
			top1_from_json(u->cached_topk, &probe);
			/* stored with a smaller topk_max, or unreadable: run it again */
			if (have < k || probe.top1_index < 0) {
				free(u->cached_topk);
				u->cached_topk = NULL;
				continue;
			}
			u->cached = 1;
			it->skip = 1;
			it->size.width = (uint32_t)w;
			it->size.height = (uint32_t)h;
			sb_add(ctx->slot->cache_hits, 1);
		} else if (hit < 0) {
			log_warn("cache lookup failed (running the network instead): %s", err.msg);
		}
	}
	*jobp = job;
	return 1;
}

/* The second half, once engine_run() has been over the job's images: history rows and the answer. */
static void classify_finish(struct api_ctx *ctx, const struct api_req *req, struct api_resp *r,
			    struct api_job *job)
{
	const struct seerd_conf *c = ctx->conf;
	struct upload *ups = job->ups;
	struct engine_item *items = job->items;
	struct db_record recs[API_MAX_IMAGES];
	int64_t ids[API_MAX_IMAGES], k = job->k, now = job->now;
	struct json_buf *tj = NULL;
	struct seer_err err = {0};
	int n = job->n, multipart = job->multipart, ok = 0, first_fail = 0, stored = 1;
	double total;

	sb_add(ctx->slot->images, (uint64_t)n);
	total = mono_ms() - job->t0;

	/* the rows, all in one transaction */
	tj = calloc((size_t)n, sizeof(*tj));
	for (int i = 0; i < n; i++) {
		struct engine_item *it = &items[i];
		struct db_record *rec = &recs[i];

		memset(rec, 0, sizeof(*rec));
		rec->time_ms = now;
		rec->client = req->remote_addr;
		rec->file_name = ups[i].file_name[0] ? ups[i].file_name : NULL;
		rec->content_type = ups[i].content_type[0] ? ups[i].content_type : NULL;
		rec->bytes = (int64_t)it->len;
		rec->sha256 = it->sha256[0] ? it->sha256 : NULL;
		rec->model = ctx->model;
		rec->t_decode = it->t_decode;
		rec->t_preprocess = it->t_preprocess;
		rec->t_inference = it->t_inference;
		rec->t_total = total;
		rec->top1_index = -1;
		if (!ups[i].cached && it->rc != 0) {
			decode_failure(&ups[i], it);
			rec->status = ups[i].status;
			rec->error_code = ups[i].code;
			rec->error_message = ups[i].message;
			if (first_fail == 0)
				first_fail = i + 1;
			continue;
		}
		ok++;
		ups[i].status = 200;
		rec->status = 200;
		rec->width = (int)it->size.width;
		rec->height = (int)it->size.height;
		rec->cached = ups[i].cached;
		if (ups[i].cached) {
			rec->topk_json = ups[i].cached_topk;
			top1_from_json(ups[i].cached_topk, rec);
		} else if (tj != NULL) {
			json_buf_init(&tj[i]);
			topk_json(&tj[i], it, c->topk_max);
			rec->topk_json = tj[i].failed ? NULL : tj[i].data;
			rec->top1_index = it->top[0];
			rec->top1_label = labels_imagenet[it->top[0]];
			rec->top1_prob = it->prob[0];
			rec->thumb = it->thumb;
			rec->thumb_len = it->thumb_len;
		}
	}
	if (tj == NULL || db_insert(ctx->db, recs, n, ids, &err) != 0) {
		stored = 0;
		sb_add(ctx->slot->storage_failures, 1);
		log_error("history write failed, %d image(s) from %s not recorded: %s", n,
			  req->remote_addr ? req->remote_addr : "?", tj == NULL ? "out of memory" : err.msg);
	} else {
		for (int i = 0; i < n; i++)
			ups[i].id = ids[i];
		ctx->inserts += (uint64_t)n;
		if (ctx->inserts / RETENTION_EVERY != (ctx->inserts - (uint64_t)n) / RETENTION_EVERY)
			ctx->retention_due = 1;
	}

	/* the answer */
	json_buf_reset(&r->text);
	if (!stored) {
		r->status = 503;
		json_raw(&r->text, "{");
		error_member(&r->text, "storage_failed",
			     "the result could not be saved to the history (the server's storage failed); "
			     "it is shown here but not recorded");
		json_raw(&r->text, ", ");
		results_member(&r->text, ctx, ups, items, n, (int)k, total);
		json_raw(&r->text, "}");
	} else if (!multipart) {
		r->status = ups[0].status;
		if (ups[0].code != NULL)
			error_body(&r->text, ups[0].code, ups[0].message);
		else
			result_json(&r->text, ctx, &ups[0], &items[0], (int)k, total);
	} else {
		r->status = ok > 0 ? 200 : ups[first_fail - 1].status;
		json_raw(&r->text, "{");
		results_member(&r->text, ctx, ups, items, n, (int)k, total);
		if (ok == 0) { /* nothing succeeded: the first failure is the request's */
			json_raw(&r->text, ", ");
			error_member(&r->text, ups[first_fail - 1].code, ups[first_fail - 1].message);
		}
		json_raw(&r->text, "}");
	}
	for (int i = 0; i < n; i++) {
		free(ups[i].cached_topk);
		if (tj != NULL)
			json_buf_free(&tj[i]);
		engine_item_clear(&items[i]);
	}
	free(tj);
	free(job);
}

/* ------------------------------------------------------------ history */

static void history(struct api_ctx *ctx, const struct api_req *req, struct api_resp *r, const char *rest)
{
	struct seer_err err = {0};
	char *end;
	long long id;
	int rc;

	if (!is_admin(req, r) || !want_get(req, r))
		return;
	if (*rest == '\0' || strcmp(rest, "/") == 0) {
		int64_t limit = 50, before = 0;
		char label[256];
		int has_label;

		if (query_int(req, r, "limit", 1, 200, &limit) != 0 ||
		    query_int(req, r, "before_id", 1, INT64_MAX, &before) != 0)
			return;
		has_label = form_query_get(req->query, "label", label, sizeof(label));
		if (has_label < 0) {
			fail(r, 400, "bad_parameter", "label is malformed or too long");
			return;
		}
		rc = db_history_json(ctx->db, (int)limit, before, has_label && label[0] ? label : NULL,
				     &r->text, &err);
	} else {
		errno = 0;
		id = strtoll(rest + 1, &end, 10);
		if (end == rest + 1 || errno != 0 || id <= 0 ||
		    (*end != '\0' && strcmp(end, "/thumb") != 0)) {
			fail(r, 404, "not_found", "no such history entry");
			return;
		}
		if (*end == '\0') {
			rc = db_row_json(ctx->db, id, &r->text, &err);
		} else {
			rc = db_thumb(ctx->db, id, &r->bin, &r->bin_len, &err);
			if (rc == 0) {
				r->content_type = "image/jpeg";
				r->cache_control = "private, max-age=86400";
			}
		}
		if (rc == SEER_ENOENT) {
			fail(r, 404, "not_found", "history entry %lld %s", id,
			     *end ? "has no thumbnail" : "does not exist");
			return;
		}
	}
	if (rc != 0) {
		log_error("history read failed: %s", err.msg);
		fail(r, 503, "storage_failed", "the history database could not be read; try again");
	}
}

static void stats(struct api_ctx *ctx, const struct api_req *req, struct api_resp *r)
{
	struct seer_err err = {0};
	int64_t hours = 24;

	if (!is_admin(req, r) || !want_get(req, r) || query_int(req, r, "hours", 1, 168, &hours) != 0)
		return;
	if (db_stats_json(ctx->db, (int)hours, wall_ms(), &r->text, &err) != 0) {
		log_error("stats query failed: %s", err.msg);
		fail(r, 503, "storage_failed", "the history database could not be read; try again");
	}
}

/* ------------------------------------------------------ health, metrics */

static void ready(struct api_ctx *ctx, const struct api_req *req, struct api_resp *r)
{
	struct scoreboard *sb = ctx->sb;
	int serving = 0;

	if (!want_get(req, r))
		return;
	for (int i = 0; i < sb_get(sb->nslots); i++) {
		int st = sb_get(sb->slot[i].state);

		serving += st == SB_IDLE || st == SB_BUSY;
	}
	if (!sb_get(sb->ready)) {
		fail(r, 503, "not_ready",
		     "a worker is crashing repeatedly and was stopped; see the seerd log");
		return;
	}
	json_printf(&r->text, "{\"ready\": true, \"workers\": %d, \"model\": ", serving);
	json_str(&r->text, ctx->model);
	json_raw(&r->text, "}");
}

static void metrics(struct api_ctx *ctx, const struct api_req *req, struct api_resp *r)
{
	struct scoreboard *sb = ctx->sb;
	uint64_t status[SB_NSTATUS] = {0}, hist[SB_BUCKETS] = {0}, sum_us = 0, images = 0, hits = 0,
		 storage = 0, abandoned = 0, cum = 0;
	int states[5] = {0};
	struct json_buf *b = &r->text;

	if (!is_admin(req, r) || !want_get(req, r))
		return;
	for (int i = 0; i < sb_get(sb->nslots); i++) {
		struct sb_slot *s = &sb->slot[i];
		int st = sb_get(s->state);

		if (st >= 0 && st < 5)
			states[st]++;
		for (int j = 0; j < SB_NSTATUS; j++)
			status[j] += sb_get(s->status[j]);
		for (int j = 0; j < SB_BUCKETS; j++)
			hist[j] += sb_get(s->hist[j]);
		sum_us += sb_get(s->dur_us_sum);
		images += sb_get(s->images);
		hits += sb_get(s->cache_hits);
		storage += sb_get(s->storage_failures);
		abandoned += sb_get(s->abandoned);
	}
	r->content_type = "text/plain; version=0.0.4; charset=utf-8";
	json_raw(b, "# HELP seer_requests_total Requests answered by seerd workers, by HTTP status.\n"
		    "# TYPE seer_requests_total counter\n");
	for (int j = 0; j < SB_NSTATUS; j++)
		json_printf(b, "seer_requests_total{status=\"%d\"} %" PRIu64 "\n", sb_status_code(j),
			    status[j]);
	json_raw(b, "# HELP seer_request_duration_seconds Time in the worker of classify requests.\n"
		    "# TYPE seer_request_duration_seconds histogram\n");
	for (int j = 0; j < SB_BUCKETS; j++) {
		cum += hist[j];
		if (j == SB_BUCKETS - 1)
			json_printf(b, "seer_request_duration_seconds_bucket{le=\"+Inf\"} %" PRIu64 "\n",
				    cum);
		else
			json_printf(b, "seer_request_duration_seconds_bucket{le=\"%g\"} %" PRIu64 "\n",
				    sb_bucket_le[j], cum);
	}
	json_printf(b, "seer_request_duration_seconds_sum %.6f\n", (double)sum_us / 1e6);
	json_printf(b, "seer_request_duration_seconds_count %" PRIu64 "\n", cum);
	json_printf(b,
		    "# HELP seer_images_total Images received in classify requests.\n"
		    "# TYPE seer_images_total counter\nseer_images_total %" PRIu64 "\n"
		    "# HELP seer_cache_hits_total Images answered from the history without the network.\n"
		    "# TYPE seer_cache_hits_total counter\nseer_cache_hits_total %" PRIu64 "\n"
		    "# HELP seer_storage_failures_total Requests whose history rows could not be written.\n"
		    "# TYPE seer_storage_failures_total counter\nseer_storage_failures_total %" PRIu64 "\n"
		    "# HELP seer_requests_abandoned_total Requests dropped unserved because their client "
		    "had gone (nginx closed the connection).\n"
		    "# TYPE seer_requests_abandoned_total counter\nseer_requests_abandoned_total %" PRIu64
		    "\n",
		    images, hits, storage, abandoned);
	json_printf(b,
		    "# HELP seer_workers Worker processes by state.\n# TYPE seer_workers gauge\n"
		    "seer_workers{state=\"starting\"} %d\nseer_workers{state=\"idle\"} %d\n"
		    "seer_workers{state=\"busy\"} %d\nseer_workers{state=\"draining\"} %d\n",
		    states[SB_STARTING], states[SB_IDLE], states[SB_BUSY], states[SB_DRAINING]);
	json_printf(b,
		    "# HELP seer_worker_restarts_total Workers replaced after a crash or a kill.\n"
		    "# TYPE seer_worker_restarts_total counter\nseer_worker_restarts_total %" PRIu64 "\n"
		    "# HELP seer_worker_timeouts_total Requests killed for running past request_timeout.\n"
		    "# TYPE seer_worker_timeouts_total counter\nseer_worker_timeouts_total %" PRIu64 "\n"
		    "# HELP seer_ready 1 when the pool serves normally.\n# TYPE seer_ready gauge\n"
		    "seer_ready %d\n",
		    sb_get(sb->restarts), sb_get(sb->timeouts), sb_get(sb->ready));
}

/* ------------------------------------------------------------- router */

/* Every route but classify, answered at once. */
static void route(struct api_ctx *ctx, const struct api_req *req, struct api_resp *r)
{
	const char *path = req->path ? req->path : "", *rest;

	if (path_under(path, "/api/history", &rest)) {
		history(ctx, req, r, rest);
	} else if (strcmp(path, "/api/stats") == 0) {
		stats(ctx, req, r);
	} else if (strcmp(path, "/api/health") == 0) {
		if (want_get(req, r))
			json_raw(&r->text, "{\"status\": \"ok\"}");
	} else if (strcmp(path, "/api/ready") == 0) {
		ready(ctx, req, r);
	} else if (strcmp(path, "/metrics") == 0) {
		metrics(ctx, req, r);
	} else {
		fail(r, 404, "not_found", "no such endpoint: %.200s", path);
	}
}

static void check_memory(struct api_resp *r)
{
	if (r->text.failed && r->bin == NULL)
		fail(r, 503, "overloaded", "the server ran out of memory building the answer");
}

int api_begin(struct api_ctx *ctx, const struct api_req *req, struct api_resp *r, struct engine_item *items,
	      struct api_job **job)
{
	*job = NULL;
	if (req->path != NULL && strcmp(req->path, "/api/classify") == 0) {
		if (classify_begin(ctx, req, r, items, job))
			return 1;
	} else {
		route(ctx, req, r);
	}
	check_memory(r);
	return 0;
}

int api_job_items(const struct api_job *job, struct engine_item **items)
{
	*items = job->items;
	return job->n;
}

void api_finish(struct api_ctx *ctx, const struct api_req *req, struct api_resp *r, struct api_job *job)
{
	classify_finish(ctx, req, r, job);
	check_memory(r);
}

void api_after(struct api_ctx *ctx)
{
	const struct seerd_conf *c = ctx->conf;
	struct seer_err err = {0};
	int64_t deleted = 0;

	if (ctx->retention_due && (c->retention_rows > 0 || c->retention_days > 0)) {
		int rc = db_retention(ctx->db, c->retention_rows, c->retention_days, wall_ms(), &deleted,
				      &err);

		if (rc != 0)
			log_warn("retention pass failed: %s", err.msg);
		else if (deleted > 0)
			log_info("retention: removed %" PRId64 " old rows", deleted);
	}
	ctx->retention_due = 0;
	if (db_checkpoint(ctx->db, &err) < 0)
		log_warn("history checkpoint failed: %s", err.msg);
}
