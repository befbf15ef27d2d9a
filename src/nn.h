/*
 * nn.h - the layers of a convolutional network, on float32 activations in
 * CNHW layout: element (c, n, y, x) lives at ((c*N + n)*H + y)*W + x, so
 * one GEMM covers a whole batch and its output is already the next input.
 *
 * No function here allocates: callers pass scratch sized by the matching
 * *_scratch_floats() call. Shapes are trusted (assert), since they come from
 * the network definition, never from a request.
 */
#ifndef SEER_NN_H
#define SEER_NN_H

#include <stddef.h>

/* How a convolution is computed; chosen once when the layer is built. */
enum nn_conv_algo {
	NN_CONV_IM2COL,   /* im2col then one GEMM */
	NN_CONV_1X1,      /* 1x1: strided gather (stride > 1) or nothing, then one GEMM */
	NN_CONV_WINOGRAD, /* F(4x4,3x3), 3x3 stride 1 pad 1 only, transformed weights */
	NN_CONV_WINOGRAD2, /* F(2x2,3x3), likewise */
};

/* A convolution with folded batch-norm (weight and bias). Weights are borrowed. */
struct nn_conv {
	int k, c;              /* output and input channels */
	int kh, kw, stride, pad;
	enum nn_conv_algo algo;
	const float *weight;   /* [K][C][KH][KW], or [36][K][C] / [16][K][C] for the Winograd algos */
	const float *bias;     /* [K] */
};

/* Activation shape [C][N][H][W]. */
struct nn_shape {
	int c, n, h, w;
};

/* Output shape of cv applied to in. */
struct nn_shape nn_conv_out_shape(const struct nn_conv *cv, struct nn_shape in);

/* Scratch floats nn_conv_forward needs for this input shape on this many threads. */
size_t nn_conv_scratch_floats(const struct nn_conv *cv, struct nn_shape in, int threads);

/*
 * out = relu?(conv(in) + bias + residual?); residual (output-shaped) may be
 * NULL. in and out must not overlap; residual may not alias out. The work
 * is split over `threads` OpenMP threads, each calling gemm_f32 on its own
 * share, so OpenBLAS itself should run single-threaded (blas_set_threads(1)).
 */
void nn_conv_forward(const struct nn_conv *cv, const float *in, struct nn_shape in_shape,
		     const float *residual, int relu, float *out, float *scratch, int threads);

/* 3x3 stride 2 pad 1 max-pool of planes = C*N planes of h x w. */
struct nn_shape nn_maxpool_out_shape(struct nn_shape in);
void nn_maxpool3x3s2(const float *in, struct nn_shape in_shape, float *out, int threads);

/* Global average pool: in [C][N][H][W] -> out [C][N]. */
void nn_avgpool_global(const float *in, struct nn_shape in_shape, float *out);

/*
 * Fully connected: out[N][K] = W[K][C] * in[C][N] + bias[K]
 * (in is the [C][N] output of nn_avgpool_global).
 */
void nn_linear(const float *weight, const float *bias, int k, int c,
	       const float *in, int n, float *out);

/* Numerically stable softmax of each of n rows of k values, in place. */
void nn_softmax(float *x, int n, int k);

/*
 * The indices of the k largest of the n values at x, largest first (ties:
 * the lower index first). k <= n.
 */
void nn_topk(const float *x, int n, int k, int *idx);

#endif
