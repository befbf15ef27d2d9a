/*
 * winograd.h - 3x3, stride-1, pad-1 convolution by Winograd F(4x4, 3x3)
 * (wino_) and F(2x2, 3x3) (wino2_).
 *
 * Activations are CNHW: element (c, n, y, x) sits at ((c*N + n)*H + y)*W + x,
 * so a whole batch goes through one set of 36 GEMMs. Filters are transformed
 * once at load time (wino_weight_transform) and kept by the caller; each call
 * of wino_conv3x3 then transforms 6x6 input tiles, runs 36 matrix products
 * (gemm_f32) and transforms 4x4 output tiles back, with bias, residual and ReLU applied
 * in that last step. Nothing here allocates, logs or keeps state: every
 * buffer is the caller's. Sizes are programmer-chosen (they come from the
 * model definition), so bad sizes are broken invariants and assert.
 *
 * Numerics: on ResNet-like data (He-scaled weights, inputs in [-1, 1],
 * 64 to 512 channels) max |error| / max |output| against a double-precision
 * direct convolution is about 1e-5 (tests/test_winograd.c checks 1e-4),
 * some 15 times that of fp32 im2col + sgemm (about 5e-7): the transforms'
 * 1/6 and 1/24 filter factors and the 4 and 8 output factors cost bits.
 *
 * Speed: the tile transforms have AVX-512 and AVX2 builds chosen at load
 * time; on CPUs without AVX2 they still work but run about 6 times slower.
 * Winograd pays off where the GEMMs stay compute-bound; for 512 channels at
 * 7x7 and batch 1 its 36 weight matrices (4x the filter bytes) make the
 * GEMMs memory-bound and im2col + sgemm is faster (bench/wino_layers.c).
 *
 * The wino2_ functions do the same by F(2x2, 3x3): 4x4 input tiles, 16
 * transform points, 2x2 output tiles. Twice F(4x4)'s multiplications per
 * output, but 16/9 of the filter bytes instead of 4x, and four times the
 * tiles (GEMM columns) on a small image; numerically about as close to the
 * direct convolution as im2col (max relative error about 1e-6 in the
 * tests). Same layouts, threading and contracts. With cold weights
 * (bench/wino_layers.c) it is the fastest of the three for 256@14x14 at
 * batch 1 and for 512@7x7 at batches 1 and 8; F(4x4) stays ahead for the
 * larger images and for 256@14x14 at batch 8.
 */
#ifndef SEER_WINOGRAD_H
#define SEER_WINOGRAD_H

#include <stddef.h>

/* Floats needed for the transformed weights of a k-output, c-input conv: 36*k*c. */
size_t wino_weight_floats(int k, int c);

/*
 * Transform filters for wino_conv3x3: u[xi][k][c] = (G g G^T)[xi] for every
 * output channel k and input channel c, where g = w[k][c] is 3x3 and xi runs
 * over the 36 points of the 6x6 transform. w is [k][c][3][3] (PyTorch
 * layout); u (wino_weight_floats(k, c) floats) is written and stays the
 * caller's. w and u must not overlap.
 */
void wino_weight_transform(const float *w, int k, int c, float *u);

/*
 * Floats of scratch that wino_conv3x3 needs for these sizes on this many
 * threads (transformed input and output tiles for one block of the batch,
 * plus a few rows of work space per thread). Any alignment works; 64 bytes
 * is best.
 */
size_t wino_scratch_floats(int k, int c, int n, int h, int w, int threads);

/*
 * out[k][n][h][w] = relu?(conv3x3_pad1(in) + bias[k] + residual?)
 *
 * u: transformed weights from wino_weight_transform(.., k, c, u).
 * bias: k floats, or NULL for none.
 * in: [c][n][h][w]. residual: [k][n][h][w] or NULL. relu: 0 or 1.
 * out: [k][n][h][w]; it must not overlap in, and may be the same pointer
 * as residual (each element is read before it is written) but must not
 * otherwise overlap it.
 * scratch: wino_scratch_floats(k, c, n, h, w, threads) floats, contents
 * ignored and clobbered.
 * threads: OpenMP threads to split the work over (input channels, transform
 * points, output channels); each runs gemm_f32 on its own share, so
 * OpenBLAS should be set to one thread.
 * All buffers belong to the caller; the function cannot fail.
 */
void wino_conv3x3(const float *u, const float *bias, int k, int c,
		  const float *in, int n, int h, int w,
		  const float *residual, int relu, float *out, float *scratch, int threads);

/* Floats needed for the F(2x2) transformed weights of a k-output, c-input conv: 16*k*c. */
size_t wino2_weight_floats(int k, int c);

/*
 * Transform filters for wino2_conv3x3: u[xi][k][c] = (G g G^T)[xi], xi over
 * the 16 points of the 4x4 transform. w is [k][c][3][3]; u
 * (wino2_weight_floats(k, c) floats) is written and stays the caller's.
 * w and u must not overlap.
 */
void wino2_weight_transform(const float *w, int k, int c, float *u);

/* Floats of scratch that wino2_conv3x3 needs for these sizes on this many threads. */
size_t wino2_scratch_floats(int k, int c, int n, int h, int w, int threads);

/*
 * wino_conv3x3 by F(2x2, 3x3): the same result, arguments and contract,
 * with u from wino2_weight_transform and scratch of
 * wino2_scratch_floats(k, c, n, h, w, threads) floats.
 */
void wino2_conv3x3(const float *u, const float *bias, int k, int c,
		   const float *in, int n, int h, int w,
		   const float *residual, int relu, float *out, float *scratch, int threads);

#endif
