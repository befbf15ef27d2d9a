/* engine.c - a batch of uploads through decode, the network and top-K. */
#include "engine.h"

#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <openssl/evp.h>

#include "nn.h"
#include "resnet.h"
#include "thumb.h"

struct engine {
	const struct resnet *model; /* not owned */
	struct resnet_ctx *ctx;
	struct engine_opts opts;
	uint8_t *crops; /* [max_batch][224][224][3] */
	float *input;	/* [max_batch][3][224][224] */
	float *logits;	/* [max_batch][1000] */
	int *slot_of;	/* [max_batch] item index of each batch row */
};

static double now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

int engine_open(const struct engine_opts *o, struct engine **out, struct seer_err *err)
{
	const size_t px = (size_t)IMG_CROP * IMG_CROP * 3;
	struct engine *e;

	*out = NULL;
	if (o->model == NULL || o->max_batch < 1 || o->topk_max < 1 || o->topk_max > RESNET_CLASSES)
		return seer_err_set(err, SEER_EINVAL, "engine_open: no model, or a bad batch or top-k size");
	e = calloc(1, sizeof(*e));
	if (e == NULL)
		return seer_err_set(err, SEER_ENOMEM, "engine_open: out of memory");
	e->opts = *o;
	e->model = o->model;
	e->ctx = resnet_ctx_new(e->model, o->max_batch, 1);
	e->crops = malloc(px * (size_t)o->max_batch);
	e->input = malloc(px * sizeof(float) * (size_t)o->max_batch);
	e->logits = malloc(sizeof(float) * RESNET_CLASSES * (size_t)o->max_batch);
	e->slot_of = malloc(sizeof(int) * (size_t)o->max_batch);
	if (e->ctx == NULL || e->crops == NULL || e->input == NULL || e->logits == NULL ||
	    e->slot_of == NULL) {
		engine_close(e);
		return seer_err_set(err, SEER_ENOMEM, "engine_open: out of memory for a batch of %d",
				    o->max_batch);
	}
	*out = e;
	return 0;
}

void engine_close(struct engine *e)
{
	if (e == NULL)
		return;
	resnet_ctx_free(e->ctx);
	free(e->crops);
	free(e->input);
	free(e->logits);
	free(e->slot_of);
	free(e);
}

const char *engine_model_id(const struct engine *e)
{
	return resnet_model_id(e->model);
}

void engine_hash(struct engine_item *it)
{
	static const char hex[] = "0123456789abcdef";
	unsigned char md[32];
	unsigned int mdlen = 0;

	if (EVP_Digest(it->data, it->len, md, &mdlen, EVP_sha256(), NULL) != 1 || mdlen != 32) {
		it->sha256[0] = '\0'; /* cannot happen with OpenSSL's built-in SHA-256 */
		return;
	}
	for (int i = 0; i < 32; i++) {
		it->sha256[2 * i] = hex[md[i] >> 4];
		it->sha256[2 * i + 1] = hex[md[i] & 15];
	}
	it->sha256[64] = '\0';
}

int engine_run(struct engine *e, struct engine_item *const *items, int n, int k)
{
	const size_t px = (size_t)IMG_CROP * IMG_CROP * 3;
	int rows = 0;
	double t0, t1;

	if (n < 0 || n > e->opts.max_batch || k < 1 || k > e->opts.topk_max)
		return SEER_EINVAL;
	for (int i = 0; i < n; i++) {
		struct engine_item *it = items[i];
		uint8_t *crop = e->crops + px * (size_t)rows;

		if (it->skip)
			continue;
		t0 = now_ms();
		it->err.msg[0] = '\0';
		it->rc = img_decode_crop(it->data, it->len, &e->opts.decode, crop, &it->size, &it->err);
		t1 = now_ms();
		it->t_decode = t1 - t0;
		if (it->rc != 0)
			continue;
		img_normalize(crop, e->input + px * (size_t)rows);
		it->t_preprocess = now_ms() - t1;
		e->slot_of[rows++] = i;
	}
	if (rows == 0)
		return 0;
	t0 = now_ms();
	resnet_forward(e->ctx, e->input, rows, e->logits);
	nn_softmax(e->logits, rows, RESNET_CLASSES);
	t1 = now_ms() - t0;
	for (int r = 0; r < rows; r++) {
		struct engine_item *it = items[e->slot_of[r]];
		const float *probs = e->logits + (size_t)r * RESNET_CLASSES;

		it->t_inference = t1;
		nn_topk(probs, RESNET_CLASSES, k, it->top);
		for (int j = 0; j < k; j++)
			it->prob[j] = probs[it->top[j]];
		it->ntop = k;
		if (e->opts.thumbnails) {
			struct seer_err terr;

			/* a thumbnail that fails is only a missing picture in the history */
			if (thumb_jpeg(e->crops + px * (size_t)r, &it->thumb, &it->thumb_len, &terr) != 0) {
				it->thumb = NULL;
				it->thumb_len = 0;
			}
		}
	}
	return 0;
}

void engine_item_clear(struct engine_item *it)
{
	free(it->thumb);
	it->thumb = NULL;
	it->thumb_len = 0;
	it->ntop = 0;
	it->rc = 0;
}
