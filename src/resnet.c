/*
 * resnet.c - ResNet-18 (torchvision layout, batch-norm folded) as a fixed
 * sequence of nn layers, with scratch owned by a per-caller context.
 */
#include "resnet.h"

#include <assert.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "winograd.h"

static const struct resnet_conv_spec specs[] = {
	{ "conv1", "conv1", "bn1", 64, 3, 7, 2, 3 },
	{ "layer1.0.conv1", "layer1.0.conv1", "layer1.0.bn1", 64, 64, 3, 1, 1 },
	{ "layer1.0.conv2", "layer1.0.conv2", "layer1.0.bn2", 64, 64, 3, 1, 1 },
	{ "layer1.1.conv1", "layer1.1.conv1", "layer1.1.bn1", 64, 64, 3, 1, 1 },
	{ "layer1.1.conv2", "layer1.1.conv2", "layer1.1.bn2", 64, 64, 3, 1, 1 },
	{ "layer2.0.conv1", "layer2.0.conv1", "layer2.0.bn1", 128, 64, 3, 2, 1 },
	{ "layer2.0.conv2", "layer2.0.conv2", "layer2.0.bn2", 128, 128, 3, 1, 1 },
	{ "layer2.0.downsample", "layer2.0.downsample.0", "layer2.0.downsample.1", 128, 64, 1, 2, 0 },
	{ "layer2.1.conv1", "layer2.1.conv1", "layer2.1.bn1", 128, 128, 3, 1, 1 },
	{ "layer2.1.conv2", "layer2.1.conv2", "layer2.1.bn2", 128, 128, 3, 1, 1 },
	{ "layer3.0.conv1", "layer3.0.conv1", "layer3.0.bn1", 256, 128, 3, 2, 1 },
	{ "layer3.0.conv2", "layer3.0.conv2", "layer3.0.bn2", 256, 256, 3, 1, 1 },
	{ "layer3.0.downsample", "layer3.0.downsample.0", "layer3.0.downsample.1", 256, 128, 1, 2, 0 },
	{ "layer3.1.conv1", "layer3.1.conv1", "layer3.1.bn1", 256, 256, 3, 1, 1 },
	{ "layer3.1.conv2", "layer3.1.conv2", "layer3.1.bn2", 256, 256, 3, 1, 1 },
	{ "layer4.0.conv1", "layer4.0.conv1", "layer4.0.bn1", 512, 256, 3, 2, 1 },
	{ "layer4.0.conv2", "layer4.0.conv2", "layer4.0.bn2", 512, 512, 3, 1, 1 },
	{ "layer4.0.downsample", "layer4.0.downsample.0", "layer4.0.downsample.1", 512, 256, 1, 2, 0 },
	{ "layer4.1.conv1", "layer4.1.conv1", "layer4.1.bn1", 512, 512, 3, 1, 1 },
	{ "layer4.1.conv2", "layer4.1.conv2", "layer4.1.bn2", 512, 512, 3, 1, 1 },
};

const struct resnet_conv_spec *resnet18_conv_specs(size_t *count)
{
	*count = sizeof(specs) / sizeof(specs[0]);
	return specs;
}

/* Find name with exactly the given dims, or fail with SEER_EMODEL. */
static int need(const struct wfile *f, const char *name, int ndim, const uint32_t *dims,
		const float **data, struct seer_err *err)
{
	const struct wfile_tensor *t = wfile_find(f, name);

	if (t == NULL)
		return seer_err_set(err, SEER_EMODEL, "not a ResNet-18 weight file: tensor '%s' is missing", name);
	if (t->ndim != ndim || memcmp(t->dims, dims, (size_t)ndim * sizeof(*dims)) != 0)
		return seer_err_set(err, SEER_EMODEL, "not a ResNet-18 weight file: tensor '%s' has the wrong shape",
				    name);
	*data = t->data;
	return SEER_OK;
}

/* Bind one convolution: Winograd weights when the file has them, plain ones otherwise. */
static int bind_conv(const struct wfile *f, const struct resnet_conv_spec *s, struct nn_conv *cv,
		     struct seer_err *err)
{
	char name[WFILE_NAME_MAX];
	uint32_t wdims[4] = { (uint32_t)s->k, (uint32_t)s->c, (uint32_t)s->ksize, (uint32_t)s->ksize };
	uint32_t udims[3] = { 36, (uint32_t)s->k, (uint32_t)s->c };
	uint32_t bdims[1] = { (uint32_t)s->k };
	int rc;

	*cv = (struct nn_conv){ .k = s->k, .c = s->c, .kh = s->ksize, .kw = s->ksize,
				.stride = s->stride, .pad = s->pad };
	snprintf(name, sizeof(name), "%s.bias", s->name);
	rc = need(f, name, 1, bdims, &cv->bias, err);
	if (rc < 0)
		return rc;
	for (int variant = 0; variant < 2; variant++) {
		/* F(4x4,3x3) weights are "<name>.wino" [36][K][C], F(2x2,3x3) "<name>.wino2" [16][K][C] */
		snprintf(name, sizeof(name), "%s.wino%s", s->name, variant ? "2" : "");
		if (wfile_find(f, name) == NULL)
			continue;
		if (s->ksize != 3 || s->stride != 1 || s->pad != 1)
			return seer_err_set(err, SEER_EMODEL, "tensor '%s' on a layer Winograd cannot run", name);
		cv->algo = variant ? NN_CONV_WINOGRAD2 : NN_CONV_WINOGRAD;
		udims[0] = variant ? 16 : 36;
		return need(f, name, 3, udims, &cv->weight, err);
	}
	cv->algo = s->ksize == 1 ? NN_CONV_1X1 : NN_CONV_IM2COL;
	snprintf(name, sizeof(name), "%s.weight", s->name);
	return need(f, name, 4, wdims, &cv->weight, err);
}

int resnet_bind(struct wfile *f, struct resnet **out, struct seer_err *err)
{
	const uint32_t fcw[2] = { RESNET_CLASSES, 512 }, fcb[1] = { RESNET_CLASSES };
	struct nn_conv convs[sizeof(specs) / sizeof(specs[0])];
	struct resnet *m;
	size_t i;
	int rc;

	*out = NULL;
	if (strcmp(f->arch, RESNET18_ARCH) != 0)
		return seer_err_set(err, SEER_EMODEL, "weight file is for '%s', not %s", f->arch, RESNET18_ARCH);
	for (i = 0; i < sizeof(specs) / sizeof(specs[0]); i++) {
		rc = bind_conv(f, &specs[i], &convs[i], err);
		if (rc < 0)
			return rc;
	}
	m = calloc(1, sizeof(*m));
	if (m == NULL)
		return seer_err_set(err, SEER_ENOMEM, "resnet_bind: out of memory");
	rc = need(f, "fc.weight", 2, fcw, &m->fc_weight, err);
	if (rc == 0)
		rc = need(f, "fc.bias", 1, fcb, &m->fc_bias, err);
	if (rc < 0) {
		free(m);
		return rc;
	}
	/* specs order: stem, then per block conv1, conv2 and (first block of stages 2-4) downsample */
	m->stem = convs[0];
	i = 1;
	for (int b = 0; b < RESNET_BLOCKS; b++) {
		struct resnet_block *blk = &m->blocks[b];

		blk->a = convs[i++];
		blk->b = convs[i++];
		blk->has_down = b >= 2 && b % 2 == 0;
		if (blk->has_down)
			blk->down = convs[i++];
	}
	assert(i == sizeof(specs) / sizeof(specs[0]));
	m->file = f;
	*out = m;
	return SEER_OK;
}

int resnet_open(const char *path, struct resnet **out, struct seer_err *err)
{
	struct seer_err inner = { 0 };
	struct wfile *f;
	int rc;

	*out = NULL;
	rc = wfile_open(path, &f, err);
	if (rc < 0)
		return rc;
	rc = resnet_bind(f, out, &inner);
	if (rc < 0) {
		wfile_close(f);
		return seer_err_set(err, rc, "model file %s: %s", path, inner.msg);
	}
	return SEER_OK;
}

const char *resnet_model_id(const struct resnet *m)
{
	return m->file->model;
}

void resnet_free(struct resnet *m)
{
	if (m == NULL)
		return;
	wfile_close(m->file);
	free(m);
}

/* ------------------------------------------------------------- forward */

struct resnet_ctx {
	const struct resnet *model;
	int max_batch;
	int threads;
	float *stem_out;   /* [64][N][112][112] */
	float *act[4];     /* block activations, each sized for the largest: [64][N][56][56] */
	float *scratch;    /* im2col / Winograd buffers, the largest any layer needs */
	float *pooled;     /* [512][N] */
};

/* Walk the layers with shapes only, to size the scratch. */
size_t resnet_scratch_floats(const struct resnet *m, int n, int threads)
{
	struct nn_shape s = { 3, n, RESNET_INPUT, RESNET_INPUT };
	size_t need_floats = nn_conv_scratch_floats(&m->stem, s, threads);

	s = nn_maxpool_out_shape(nn_conv_out_shape(&m->stem, s));
	for (int b = 0; b < RESNET_BLOCKS; b++) {
		const struct resnet_block *blk = &m->blocks[b];
		size_t x = nn_conv_scratch_floats(&blk->a, s, threads);
		struct nn_shape mid = nn_conv_out_shape(&blk->a, s);

		if (x > need_floats)
			need_floats = x;
		if (blk->has_down && (x = nn_conv_scratch_floats(&blk->down, s, threads)) > need_floats)
			need_floats = x;
		if ((x = nn_conv_scratch_floats(&blk->b, mid, threads)) > need_floats)
			need_floats = x;
		s = nn_conv_out_shape(&blk->b, mid);
	}
	return need_floats;
}

struct resnet_ctx *resnet_ctx_new(const struct resnet *m, int max_batch, int threads)
{
	const size_t n = (size_t)max_batch;
	struct resnet_ctx *ctx;

	if (max_batch < 1 || threads < 1)
		return NULL;
	ctx = calloc(1, sizeof(*ctx));
	if (ctx == NULL)
		return NULL;
	ctx->model = m;
	ctx->max_batch = max_batch;
	ctx->threads = threads;
	ctx->stem_out = malloc(64 * n * 112 * 112 * sizeof(float));
	for (int i = 0; i < 4; i++) {
		ctx->act[i] = malloc(64 * n * 56 * 56 * sizeof(float));
		if (ctx->act[i] == NULL)
			goto fail;
	}
	ctx->scratch = malloc(resnet_scratch_floats(m, max_batch, threads) * sizeof(float) + 64);
	ctx->pooled = malloc(512 * n * sizeof(float));
	if (ctx->stem_out == NULL || ctx->scratch == NULL || ctx->pooled == NULL)
		goto fail;
	return ctx;
fail:
	resnet_ctx_free(ctx);
	return NULL;
}

void resnet_ctx_free(struct resnet_ctx *ctx)
{
	if (ctx == NULL)
		return;
	free(ctx->stem_out);
	for (int i = 0; i < 4; i++)
		free(ctx->act[i]);
	free(ctx->scratch);
	free(ctx->pooled);
	free(ctx);
}

int resnet_ctx_max_batch(const struct resnet_ctx *ctx)
{
	return ctx->max_batch;
}

void resnet_forward(struct resnet_ctx *ctx, const float *in, int n, float *logits)
{
	const struct resnet *m = ctx->model;
	const size_t plane = (size_t)RESNET_INPUT * RESNET_INPUT;
	struct nn_shape s = { 3, n, RESNET_INPUT, RESNET_INPUT };
	int cur = 0;

	assert(n >= 1 && n <= ctx->max_batch);
	/* NCHW -> CNHW: [N][3][224][224] -> [3][N][224][224] */
	for (int c = 0; c < 3; c++)
		for (int i = 0; i < n; i++)
			memcpy(ctx->act[0] + ((size_t)c * n + i) * plane, in + ((size_t)i * 3 + c) * plane,
			       plane * sizeof(float));

	nn_conv_forward(&m->stem, ctx->act[0], s, NULL, 1, ctx->stem_out, ctx->scratch, ctx->threads);
	s = nn_conv_out_shape(&m->stem, s);
	nn_maxpool3x3s2(ctx->stem_out, s, ctx->act[1], ctx->threads);
	s = nn_maxpool_out_shape(s);
	cur = 1;

	for (int b = 0; b < RESNET_BLOCKS; b++) {
		const struct resnet_block *blk = &m->blocks[b];
		float *x = ctx->act[cur];
		float *t = ctx->act[(cur + 1) % 4];
		float *r = ctx->act[(cur + 2) % 4];
		float *o = ctx->act[(cur + 3) % 4];
		struct nn_shape mid = nn_conv_out_shape(&blk->a, s);

		nn_conv_forward(&blk->a, x, s, NULL, 1, t, ctx->scratch, ctx->threads);
		if (blk->has_down)
			nn_conv_forward(&blk->down, x, s, NULL, 0, r, ctx->scratch, ctx->threads);
		else
			r = x;
		nn_conv_forward(&blk->b, t, mid, r, 1, o, ctx->scratch, ctx->threads);
		s = nn_conv_out_shape(&blk->b, mid);
		cur = (cur + 3) % 4;
	}
	nn_avgpool_global(ctx->act[cur], s, ctx->pooled);
	nn_linear(m->fc_weight, m->fc_bias, RESNET_CLASSES, 512, ctx->pooled, n, logits);
}
