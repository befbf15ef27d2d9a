/*
 * engine.h - what a worker does with images: hash, decode + crop,
 * normalise, run the network on the whole batch, take the top K, and make
 * the thumbnails. It uses a model it is given (read-only, shared with the
 * other workers) and owns every buffer a batch needs, all allocated once by
 * engine_open().
 */
#ifndef SEER_ENGINE_H
#define SEER_ENGINE_H

#include <stddef.h>
#include <stdint.h>

#include "img.h"
#include "status.h"

#define ENGINE_TOPK_MAX 1000

struct engine;
struct resnet;

struct engine_opts {
	const struct resnet *model;    /* not owned: must outlive the engine */
	int max_batch;		       /* most images in one engine_run() */
	int topk_max;		       /* most classes asked of one image */
	struct img_decode_opts decode; /* limits, EXIF, fast path */
	int thumbnails;		       /* make a JPEG thumbnail of each crop */
};

/* One image of a batch. The caller fills data/len (and skip); engine_run() the rest. */
struct engine_item {
	const uint8_t *data;
	size_t len;
	int skip;	 /* set by the caller: do not run (e.g. answered from the cache) */
	char sha256[65]; /* filled by engine_hash() */
	int rc;		 /* 0, or the decoder's failure (SEER_ETRUNC, SEER_EUNSUPPORTED, ...) */
	struct seer_err err;
	struct img_size size;
	double t_decode, t_preprocess, t_inference; /* ms; inference is the batch's */
	int ntop;
	int top[ENGINE_TOPK_MAX];
	float prob[ENGINE_TOPK_MAX];
	uint8_t *thumb; /* JPEG, owned until engine_item_clear() */
	size_t thumb_len;
};

int engine_open(const struct engine_opts *o, struct engine **out, struct seer_err *err);
void engine_close(struct engine *e);
const char *engine_model_id(const struct engine *e);

/* Fill it->sha256 with the SHA-256 of the bytes, as lowercase hex. */
void engine_hash(struct engine_item *it);

/*
 * Classify the n (<= max_batch) items not marked skip (they may belong to
 * several requests, hence pointers): each is decoded on
 * its own (a failure stays in its rc/err and does not stop the others),
 * the ones that decoded run through the network together, and get their
 * top-k (k <= topk_max) and thumbnail. Returns 0, or SEER_EINVAL for a bad
 * n or k.
 */
int engine_run(struct engine *e, struct engine_item *const *items, int n, int k);

/* Free an item's thumbnail and reset its results. */
void engine_item_clear(struct engine_item *it);

#endif
