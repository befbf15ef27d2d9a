/*
 * resnet.h - torchvision's ResNet-18 over a seer weight file: the layer
 * table, binding of weights to layers, and the batched forward pass.
 */
#ifndef SEER_RESNET_H
#define SEER_RESNET_H

#include <stddef.h>

#include "nn.h"
#include "status.h"
#include "wfile.h"

#define RESNET_INPUT 224      /* input side in pixels */
#define RESNET_CLASSES 1000
#define RESNET_BLOCKS 8
#define RESNET18_ARCH "resnet18"

/* One convolution of the architecture, with the torchvision names it comes from. */
struct resnet_conv_spec {
	const char *name;  /* native tensor prefix, e.g. "layer2.0.downsample" */
	const char *conv;  /* torchvision conv weight prefix, e.g. "layer2.0.downsample.0" */
	const char *bn;    /* torchvision batch-norm prefix, e.g. "layer2.0.downsample.1" */
	int k, c, ksize, stride, pad;
};

/* ResNet-18's 20 convolutions in forward order; *count receives 20. */
const struct resnet_conv_spec *resnet18_conv_specs(size_t *count);

struct resnet_block {
	struct nn_conv a, b;
	struct nn_conv down;   /* valid when has_down */
	int has_down;
};

struct resnet {
	struct wfile *file;    /* owned; every weight pointer below points into it */
	struct nn_conv stem;
	struct resnet_block blocks[RESNET_BLOCKS];
	const float *fc_weight; /* [1000][512] */
	const float *fc_bias;   /* [1000] */
};

/*
 * Open a weight file and bind it to the ResNet-18 layers. Returns 0, or a
 * negative SEER_E* code with err filled: those of wfile_open(), or
 * SEER_EMODEL when the file holds another architecture or a tensor is
 * missing or has the wrong shape. Free with resnet_free().
 */
int resnet_open(const char *path, struct resnet **out, struct seer_err *err);

/* Bind an already open file; on success the model owns f, on failure the caller still does. */
int resnet_bind(struct wfile *f, struct resnet **out, struct seer_err *err);

/* The model id recorded in the weight file, e.g. "resnet18-f37072fd". */
const char *resnet_model_id(const struct resnet *m);

/* Free the model and close its file; accepts NULL. */
void resnet_free(struct resnet *m);

/*
 * Per-caller scratch for forward passes of up to max_batch images on
 * `threads` threads: every activation and im2col/Winograd buffer, allocated
 * once here so that resnet_forward() never allocates. NULL when out of
 * memory. A service worker uses one thread; the command line may use more.
 */
struct resnet_ctx *resnet_ctx_new(const struct resnet *m, int max_batch, int threads);
void resnet_ctx_free(struct resnet_ctx *ctx);

/* Floats of scratch the largest layer needs (nn_conv_scratch_floats) for n images on threads. */
size_t resnet_scratch_floats(const struct resnet *m, int n, int threads);
int resnet_ctx_max_batch(const struct resnet_ctx *ctx);

/*
 * Logits of n images (1 <= n <= max_batch): in is [n][3][224][224] floats
 * (normalised, NCHW), logits is [n][1000], both caller-owned.
 */
void resnet_forward(struct resnet_ctx *ctx, const float *in, int n, float *logits);

#endif
