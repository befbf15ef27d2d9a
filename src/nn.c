/*
 * nn.c - convolution (im2col / 1x1 / Winograd, all on OpenBLAS sgemm),
 * pooling, linear and softmax layers on CNHW activations.
 */
#include "nn.h"

#include <assert.h>
#include <math.h>
#include <string.h>

#include <cblas.h>

#include "winograd.h"

struct nn_shape nn_conv_out_shape(const struct nn_conv *cv, struct nn_shape in)
{
	struct nn_shape out = {
		.c = cv->k,
		.n = in.n,
		.h = (in.h + 2 * cv->pad - cv->kh) / cv->stride + 1,
		.w = (in.w + 2 * cv->pad - cv->kw) / cv->stride + 1,
	};
	return out;
}

/*
 * The im2col matrix is built and multiplied in pieces of at most this many
 * floats, so that it is still in L2 (2 MB here) when sgemm reads it: for the
 * 7x7 stem a whole image's matrix would be 7 MB, written to memory and read
 * back.
 */
#define IM2COL_CHUNK_FLOATS (256 * 1024)

/*
 * Columns of one im2col piece: the whole batch at once when it fits (one
 * big GEMM), else whole output rows of one image at a time.
 */
static size_t im2col_chunk_cols(const struct nn_conv *cv, struct nn_shape in, struct nn_shape out)
{
	size_t depth = (size_t)cv->c * cv->kh * cv->kw;
	size_t all = (size_t)out.n * out.h * out.w;
	size_t rows;

	if (depth * all <= IM2COL_CHUNK_FLOATS)
		return all;
	rows = IM2COL_CHUNK_FLOATS / (depth * out.w);
	if (rows < 1)
		rows = 1;
	if (rows > (size_t)out.h)
		rows = (size_t)out.h;
	return rows * out.w;
}

size_t nn_conv_scratch_floats(const struct nn_conv *cv, struct nn_shape in)
{
	struct nn_shape out = nn_conv_out_shape(cv, in);
	size_t cols = (size_t)out.n * out.h * out.w;

	switch (cv->algo) {
	case NN_CONV_WINOGRAD:
		return wino_scratch_floats(cv->k, cv->c, in.n, in.h, in.w);
	case NN_CONV_1X1:
		return cv->stride == 1 ? 0 : (size_t)cv->c * cols;
	case NN_CONV_IM2COL:
		return (size_t)cv->c * cv->kh * cv->kw * im2col_chunk_cols(cv, in, out);
	}
	return 0;
}

/* First output index whose input coordinate o*stride - pad + tap is >= 0. */
static int first_valid(int pad, int tap, int stride)
{
	int lead = pad - tap;

	return lead <= 0 ? 0 : (lead + stride - 1) / stride;
}

/* One past the last output index whose input coordinate is < size. */
static int end_valid(int size, int pad, int tap, int stride, int out_size)
{
	int lim = size + pad - tap; /* need o*stride < lim */
	int e;

	if (lim <= 0)
		return 0;
	e = (lim + stride - 1) / stride;
	return e < out_size ? e : out_size;
}

/*
 * col[(c*KH + i)*KW + j][((n - n0)*R + oy - oy0)*OW + ox] = in[c][n][oy*s - p + i][ox*s - p + j]
 * (0 outside the input) for images [n0, n1) and output rows [oy0, oy1), R = oy1 - oy0.
 * [C*KH*KW, (n1-n0)*R*OW]
 */
static void im2col(const struct nn_conv *cv, const float *in, struct nn_shape is, struct nn_shape os,
		   int n0, int n1, int oy0, int oy1, float *col)
{
	const int s = cv->stride, p = cv->pad, rows = oy1 - oy0;
	const size_t plane = (size_t)is.h * is.w, piece = (size_t)rows * os.w;
	const size_t ld = (size_t)(n1 - n0) * piece;

	for (int c = 0; c < is.c; c++) {
		for (int i = 0; i < cv->kh; i++) {
			/* output rows whose input row is inside the image, clipped to [oy0, oy1) */
			int va = first_valid(p, i, s), vb = end_valid(is.h, p, i, s, os.h);

			va = va > oy0 ? va : oy0;
			vb = vb < oy1 ? vb : oy1;
			for (int j = 0; j < cv->kw; j++) {
				int ox0 = first_valid(p, j, s), ox1 = end_valid(is.w, p, j, s, os.w);
				float *row = col + ((size_t)(c * cv->kh + i) * cv->kw + j) * ld;

				for (int n = n0; n < n1; n++) {
					const float *src = in + ((size_t)c * is.n + n) * plane;
					float *dst = row + (size_t)(n - n0) * piece;

					if (vb <= va || ox1 <= ox0) {
						memset(dst, 0, piece * sizeof(float));
						continue;
					}
					memset(dst, 0, (size_t)(va - oy0) * os.w * sizeof(float));
					for (int oy = va; oy < vb; oy++) {
						const float *srow = src + (size_t)(oy * s - p + i) * is.w + (j - p);
						float *drow = dst + (size_t)(oy - oy0) * os.w;

						memset(drow, 0, (size_t)ox0 * sizeof(float));
						if (s == 1) {
							memcpy(drow + ox0, srow + ox0, (size_t)(ox1 - ox0) * sizeof(float));
						} else {
							for (int ox = ox0; ox < ox1; ox++)
								drow[ox] = srow[ox * s];
						}
						memset(drow + ox1, 0, (size_t)(os.w - ox1) * sizeof(float));
					}
					memset(dst + (size_t)(vb - oy0) * os.w, 0, (size_t)(oy1 - vb) * os.w * sizeof(float));
				}
			}
		}
	}
}

/* col[c][(n*OH + oy)*OW + ox] = in[c][n][oy*s][ox*s]: the input of a strided 1x1. */
static void subsample(const float *in, struct nn_shape is, int s, struct nn_shape os, float *col)
{
	for (int c = 0; c < is.c; c++)
		for (int n = 0; n < is.n; n++) {
			const float *src = in + ((size_t)c * is.n + n) * is.h * is.w;
			float *dst = col + ((size_t)c * is.n + n) * os.h * os.w;

			for (int oy = 0; oy < os.h; oy++)
				for (int ox = 0; ox < os.w; ox++)
					*dst++ = src[(size_t)oy * s * is.w + (size_t)ox * s];
		}
}

/* max(x, 0) without fmaxf, which gcc will not inline (NaN rules) */
static inline float relu_f(float x)
{
	return x > 0.0f ? x : 0.0f;
}

/*
 * out[k][q] = relu?(out[k][q] + bias[k] + residual?[k][q]) in one pass, for
 * q in [0, cols) of rows that are ld floats apart (in out and residual).
 */
static void epilogue(float *out, const float *bias, const float *residual, int relu, int k,
		     size_t cols, size_t ld)
{
	for (int o = 0; o < k; o++) {
		float *row = out + (size_t)o * ld;
		const float *res = residual ? residual + (size_t)o * ld : NULL;
		const float b = bias[o];

		if (res && relu) {
			for (size_t q = 0; q < cols; q++)
				row[q] = relu_f(row[q] + b + res[q]);
		} else if (res) {
			for (size_t q = 0; q < cols; q++)
				row[q] += b + res[q];
		} else if (relu) {
			for (size_t q = 0; q < cols; q++)
				row[q] = relu_f(row[q] + b);
		} else {
			for (size_t q = 0; q < cols; q++)
				row[q] += b;
		}
	}
}

/*
 * im2col convolution in pieces that stay in L2: each piece's GEMM writes
 * its columns of out, and the epilogue runs on them while they are hot.
 */
static void conv_im2col(const struct nn_conv *cv, const float *in, struct nn_shape is, struct nn_shape os,
			const float *residual, int relu, float *out, float *scratch)
{
	const int depth = cv->c * cv->kh * cv->kw;
	const size_t plane = (size_t)os.h * os.w, ld = (size_t)os.n * plane;
	const size_t chunk = im2col_chunk_cols(cv, is, os);

	if (chunk == ld) {
		im2col(cv, in, is, os, 0, os.n, 0, os.h, scratch);
		/* [K, C*KH*KW] x [C*KH*KW, N*OH*OW] -> [K, N*OH*OW] */
		cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, cv->k, (int)ld, depth,
			    1.0f, cv->weight, depth, scratch, (int)ld, 0.0f, out, (int)ld);
		epilogue(out, cv->bias, residual, relu, cv->k, ld, ld);
		return;
	}
	for (int n = 0; n < os.n; n++) {
		for (int oy = 0; oy < os.h; oy += (int)(chunk / os.w)) {
			int oy1 = oy + (int)(chunk / os.w) < os.h ? oy + (int)(chunk / os.w) : os.h;
			size_t cols = (size_t)(oy1 - oy) * os.w, off = n * plane + (size_t)oy * os.w;

			im2col(cv, in, is, os, n, n + 1, oy, oy1, scratch);
			/* [K, C*KH*KW] x [C*KH*KW, rows*OW] -> columns [off, off + rows*OW) of [K, N*OH*OW] */
			cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, cv->k, (int)cols, depth,
				    1.0f, cv->weight, depth, scratch, (int)cols, 0.0f, out + off, (int)ld);
			epilogue(out + off, cv->bias, residual ? residual + off : NULL, relu, cv->k, cols, ld);
		}
	}
}

void nn_conv_forward(const struct nn_conv *cv, const float *in, struct nn_shape is,
		     const float *residual, int relu, float *out, float *scratch)
{
	struct nn_shape os = nn_conv_out_shape(cv, is);
	const int cols = os.n * os.h * os.w;
	const float *b = in;

	assert(is.c == cv->c);
	assert(in != out && residual != out);
	switch (cv->algo) {
	case NN_CONV_WINOGRAD:
		assert(cv->kh == 3 && cv->kw == 3 && cv->stride == 1 && cv->pad == 1);
		wino_conv3x3(cv->weight, cv->bias, cv->k, cv->c, in, is.n, is.h, is.w,
			     residual, relu, out, scratch);
		return;
	case NN_CONV_IM2COL:
		conv_im2col(cv, in, is, os, residual, relu, out, scratch);
		return;
	case NN_CONV_1X1:
		assert(cv->kh == 1 && cv->kw == 1 && cv->pad == 0);
		if (cv->stride != 1) {
			subsample(in, is, cv->stride, os, scratch);
			b = scratch;
		}
		/* [K, C] x [C, N*OH*OW] -> [K, N*OH*OW] */
		cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, cv->k, cols, cv->c,
			    1.0f, cv->weight, cv->c, b, cols, 0.0f, out, cols);
		epilogue(out, cv->bias, residual, relu, cv->k, (size_t)cols, (size_t)cols);
		return;
	}
}

struct nn_shape nn_maxpool_out_shape(struct nn_shape in)
{
	struct nn_shape out = { in.c, in.n, (in.h + 2 - 3) / 2 + 1, (in.w + 2 - 3) / 2 + 1 };
	return out;
}

static inline float max3(float a, float b, float c)
{
	float m = a > b ? a : b;

	return m > c ? m : c;
}

void nn_maxpool3x3s2(const float *in, struct nn_shape is, float *out)
{
	struct nn_shape os = nn_maxpool_out_shape(is);
	const size_t planes = (size_t)is.c * is.n;

	/*
	 * A window that hangs over the edge (padding, which never wins a max)
	 * is clamped onto its edge row or column instead: that element is in
	 * the window anyway and max is idempotent, so the loops need no tests.
	 */
	for (size_t pl = 0; pl < planes; pl++) {
		const float *src = in + pl * is.h * is.w;
		float *dst = out + pl * os.h * os.w;

		for (int oy = 0; oy < os.h; oy++) {
			const float *r0 = src + (size_t)(oy > 0 ? 2 * oy - 1 : 0) * is.w;
			const float *r1 = src + (size_t)(2 * oy) * is.w;
			const float *r2 = src + (size_t)(2 * oy + 1 < is.h ? 2 * oy + 1 : is.h - 1) * is.w;
			float *d = dst + (size_t)oy * os.w;
			int last = os.w - 1;

			for (int ox = 0; ox < os.w; ox++) {
				int xa = ox > 0 ? 2 * ox - 1 : 0, xb = 2 * ox;
				int xc = ox < last || 2 * ox + 1 < is.w ? 2 * ox + 1 : is.w - 1;

				d[ox] = max3(max3(r0[xa], r0[xb], r0[xc]), max3(r1[xa], r1[xb], r1[xc]),
					     max3(r2[xa], r2[xb], r2[xc]));
			}
		}
	}
}

void nn_avgpool_global(const float *in, struct nn_shape is, float *out)
{
	const size_t hw = (size_t)is.h * is.w;
	const size_t planes = (size_t)is.c * is.n;

	for (size_t pl = 0; pl < planes; pl++) {
		const float *src = in + pl * hw;
		float sum = 0.0f;

		for (size_t i = 0; i < hw; i++)
			sum += src[i];
		out[pl] = sum / (float)hw;
	}
}

void nn_linear(const float *weight, const float *bias, int k, int c,
	       const float *in, int n, float *out)
{
	/* [N, C] (in is [C][N], read transposed) x [C, K] (weight is [K][C]) -> [N, K] */
	cblas_sgemm(CblasRowMajor, CblasTrans, CblasTrans, n, k, c,
		    1.0f, in, n, weight, c, 0.0f, out, k);
	for (int i = 0; i < n; i++)
		for (int o = 0; o < k; o++)
			out[(size_t)i * k + o] += bias[o];
}

void nn_softmax(float *x, int n, int k)
{
	for (int i = 0; i < n; i++) {
		float *row = x + (size_t)i * k;
		float m = row[0];
		double sum = 0.0;

		for (int o = 1; o < k; o++)
			m = row[o] > m ? row[o] : m;
		for (int o = 0; o < k; o++) {
			row[o] = expf(row[o] - m);
			sum += row[o];
		}
		for (int o = 0; o < k; o++)
			row[o] = (float)(row[o] / sum);
	}
}
