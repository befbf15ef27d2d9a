/*
 * nn.c - convolution (im2col / 1x1 / Winograd, all on gemm_f32),
 * pooling, linear and softmax layers on CNHW activations.
 */
#include "nn.h"

#include <assert.h>
#include <math.h>
#include <string.h>

#include <cblas.h>
#ifdef __SSE2__
#include <immintrin.h>
#endif
#ifdef _OPENMP
#include <omp.h>
#endif

#include "gemm.h"
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

size_t nn_conv_scratch_floats(const struct nn_conv *cv, struct nn_shape in, int threads)
{
	struct nn_shape out = nn_conv_out_shape(cv, in);
	size_t cols = (size_t)out.n * out.h * out.w, chunk;

	switch (cv->algo) {
	case NN_CONV_WINOGRAD:
		return wino_scratch_floats(cv->k, cv->c, in.n, in.h, in.w, threads);
	case NN_CONV_WINOGRAD2:
		return wino2_scratch_floats(cv->k, cv->c, in.n, in.h, in.w, threads);
	case NN_CONV_1X1:
		return cv->stride == 1 ? 0 : (size_t)cv->c * cols;
	case NN_CONV_IM2COL:
		chunk = im2col_chunk_cols(cv, in, out);
		/* one shared matrix, or one piece per thread */
		return (size_t)cv->c * cv->kh * cv->kw * chunk * (chunk == cols ? 1 : (size_t)threads);
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
 * dst[ox] = src[ox * s] for ox in [ox0, ox1), 0 elsewhere in [0, ow). Rows
 * are short (7 to 112 floats), so plain loops beat memset/memcpy calls.
 */
static inline void copy_row(float *dst, const float *src, int s, int ox0, int ox1, int ow)
{
	int ox = 0;

	for (; ox < ox0; ox++)
		dst[ox] = 0.0f;
	if (s == 1) {
		for (; ox < ox1; ox++)
			dst[ox] = src[ox];
	} else if (s == 2) {
#ifdef __SSE2__
		/*
		 * The even lanes of two vectors: 4 outputs per shuffle (gcc leaves
		 * this loop scalar). `<` rather than `<=`: the loads reach src[2*ox + 7],
		 * which must not pass src[2*(ox1 - 1)], the last element of the row used.
		 */
		for (; ox + 4 < ox1; ox += 4) {
			__m128 lo = _mm_loadu_ps(src + 2 * ox), hi = _mm_loadu_ps(src + 2 * ox + 4);

			_mm_storeu_ps(dst + ox, _mm_shuffle_ps(lo, hi, _MM_SHUFFLE(2, 0, 2, 0)));
		}
#endif
		for (; ox < ox1; ox++)
			dst[ox] = src[2 * ox];
	} else {
		for (; ox < ox1; ox++)
			dst[ox] = src[ox * s];
	}
	for (; ox < ow; ox++)
		dst[ox] = 0.0f;
}

/*
 * col[(c*KH + i)*KW + j][((n - n0)*R + oy - oy0)*OW + ox] = in[c][n][oy*s - p + i][ox*s - p + j]
 * (0 outside the input) for input channels [c0, c1), images [n0, n1) and output rows
 * [oy0, oy1), R = oy1 - oy0. [C*KH*KW, (n1-n0)*R*OW]
 */
static void im2col(const struct nn_conv *cv, const float *in, struct nn_shape is, struct nn_shape os, int c0,
		   int c1, int n0, int n1, int oy0, int oy1, float *col)
{
	const int s = cv->stride, p = cv->pad, rows = oy1 - oy0;
	const size_t plane = (size_t)is.h * is.w, piece = (size_t)rows * os.w;
	const size_t ld = (size_t)(n1 - n0) * piece;

	for (int c = c0; c < c1; c++) {
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
						const float *srow =
							src + (size_t)(oy * s - p + i) * is.w + (j - p);
						float *drow = dst + (size_t)(oy - oy0) * os.w;

						copy_row(drow, srow, s, ox0, ox1, os.w);
					}
					memset(dst + (size_t)(vb - oy0) * os.w, 0,
					       (size_t)(oy1 - vb) * os.w * sizeof(float));
				}
			}
		}
	}
}

/* col[c][(n*OH + oy)*OW + ox] = in[c][n][oy*s][ox*s] for c in [c0, c1): the input of a strided 1x1. */
static void subsample(const float *in, struct nn_shape is, int s, struct nn_shape os, int c0, int c1,
		      float *col)
{
	for (int c = c0; c < c1; c++)
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
 * Elements per step of the epilogue loops. A fixed inner trip count lets
 * gcc -O2 (whose cheap cost model will not vectorise loops of unknown
 * length) turn them into branch-free vector code: scalar compare-and-jump
 * on ReLU's random signs mispredicts half the time.
 */
#define EPI_STEP 16

/* row[q] = relu?(row[q] + b + res?[q]) for q in [0, cols). */
static void epilogue_row(float *row, float b, const float *res, int relu, size_t cols)
{
	size_t q = 0;

	if (res && relu) {
		for (; q + EPI_STEP <= cols; q += EPI_STEP)
			for (int l = 0; l < EPI_STEP; l++)
				row[q + l] = relu_f(row[q + l] + b + res[q + l]);
		for (; q < cols; q++)
			row[q] = relu_f(row[q] + b + res[q]);
	} else if (res) {
		for (; q + EPI_STEP <= cols; q += EPI_STEP)
			for (int l = 0; l < EPI_STEP; l++)
				row[q + l] += b + res[q + l];
		for (; q < cols; q++)
			row[q] += b + res[q];
	} else if (relu) {
		for (; q + EPI_STEP <= cols; q += EPI_STEP)
			for (int l = 0; l < EPI_STEP; l++)
				row[q + l] = relu_f(row[q + l] + b);
		for (; q < cols; q++)
			row[q] = relu_f(row[q] + b);
	} else {
		for (; q + EPI_STEP <= cols; q += EPI_STEP)
			for (int l = 0; l < EPI_STEP; l++)
				row[q + l] += b;
		for (; q < cols; q++)
			row[q] += b;
	}
}

/*
 * out[k][q] = relu?(out[k][q] + bias[k] + residual?[k][q]) in one pass, for
 * q in [0, cols) of rows that are ld floats apart (in out and residual).
 */
static void epilogue(float *out, const float *bias, const float *residual, int relu, int k, size_t cols,
		     size_t ld)
{
	for (int o = 0; o < k; o++)
		epilogue_row(out + (size_t)o * ld, bias[o], residual ? residual + (size_t)o * ld : NULL, relu,
			     cols);
}

/*
 * Rows [k0, k1) of out[K][cols] (row stride ld) = W[k0:k1] x B[depth][cols]
 * (row stride ldb), then the epilogue on those rows while they are hot.
 */
static void gemm_rows(const struct nn_conv *cv, int k0, int k1, int depth, const float *b, size_t ldb,
		      size_t cols, const float *residual, int relu, float *out, size_t ld)
{
	if (k1 <= k0)
		return;
	gemm_f32(k1 - k0, (int)cols, depth, cv->weight + (size_t)k0 * depth, (size_t)depth, b, ldb,
		 out + (size_t)k0 * ld, ld);
	epilogue(out + (size_t)k0 * ld, cv->bias + k0, residual ? residual + (size_t)k0 * ld : NULL, relu,
		 k1 - k0, cols, ld);
}

/* Output channels [k0, k1) of thread t of threads: equal shares, multiples of 16 rows. */
static void split_rows(int k, int t, int threads, int *k0, int *k1)
{
	int share = ((k + threads - 1) / threads + 15) / 16 * 16;

	*k0 = t * share < k ? t * share : k;
	*k1 = (t + 1) * share < k ? (t + 1) * share : k;
}

/*
 * im2col convolution. A layer whose whole im2col matrix fits in L2 builds it
 * once (threads split the input channels) and multiplies it in one GEMM per
 * thread (threads split the output channels). A larger one goes in pieces
 * of whole output rows of one image, each thread building and multiplying
 * its own pieces, so the piece is still in L2 when the GEMM reads it.
 */
static void conv_im2col(const struct nn_conv *cv, const float *in, struct nn_shape is, struct nn_shape os,
			const float *residual, int relu, float *out, float *scratch, int threads)
{
	const int depth = cv->c * cv->kh * cv->kw;
	const size_t plane = (size_t)os.h * os.w, ld = (size_t)os.n * plane;
	const size_t chunk = im2col_chunk_cols(cv, is, os);
	const int rows = (int)(chunk / os.w);
	const int per_image = (os.h + rows - 1) / rows;

	if (chunk == ld) {
#pragma omp parallel num_threads(threads) if (threads > 1)
		{
#pragma omp for schedule(static)
			for (int c = 0; c < is.c; c++)
				im2col(cv, in, is, os, c, c + 1, 0, os.n, 0, os.h, scratch);
#pragma omp for schedule(static)
			for (int t = 0; t < threads; t++) {
				int k0, k1;

				split_rows(cv->k, t, threads, &k0, &k1);
				/* [k1-k0, C*KH*KW] x [C*KH*KW, N*OH*OW] -> rows [k0, k1) of [K, N*OH*OW] */
				gemm_rows(cv, k0, k1, depth, scratch, ld, ld, residual, relu, out, ld);
			}
		}
		return;
	}
#pragma omp parallel for num_threads(threads) schedule(static) if (threads > 1)
	for (int piece = 0; piece < os.n * per_image; piece++) {
		int n = piece / per_image, oy = piece % per_image * rows;
		int oy1 = oy + rows < os.h ? oy + rows : os.h;
		size_t cols = (size_t)(oy1 - oy) * os.w, off = n * plane + (size_t)oy * os.w;
		float *col = scratch;

#ifdef _OPENMP
		col += (size_t)omp_get_thread_num() * depth * chunk;
#endif
		im2col(cv, in, is, os, 0, is.c, n, n + 1, oy, oy1, col);
		/* [K, C*KH*KW] x [C*KH*KW, rows*OW] -> columns [off, off + rows*OW) of [K, N*OH*OW] */
		gemm_rows(cv, 0, cv->k, depth, col, cols, cols, residual ? residual + off : NULL, relu,
			  out + off, ld);
	}
}

/* 1x1 convolution: a gather for stride > 1, then one GEMM per thread over its output channels. */
static void conv_1x1(const struct nn_conv *cv, const float *in, struct nn_shape is, struct nn_shape os,
		     const float *residual, int relu, float *out, float *scratch, int threads)
{
	const size_t cols = (size_t)os.n * os.h * os.w;
	const float *b = cv->stride == 1 ? in : scratch;

#pragma omp parallel num_threads(threads) if (threads > 1)
	{
		if (cv->stride != 1) {
#pragma omp for schedule(static)
			for (int c = 0; c < is.c; c++)
				subsample(in, is, cv->stride, os, c, c + 1, scratch);
		}
#pragma omp for schedule(static)
		for (int t = 0; t < threads; t++) {
			int k0, k1;

			split_rows(cv->k, t, threads, &k0, &k1);
			/* [k1-k0, C] x [C, N*OH*OW] -> rows [k0, k1) of [K, N*OH*OW] */
			gemm_rows(cv, k0, k1, cv->c, b, cols, cols, residual, relu, out, cols);
		}
	}
}

void nn_conv_forward(const struct nn_conv *cv, const float *in, struct nn_shape is, const float *residual,
		     int relu, float *out, float *scratch, int threads)
{
	struct nn_shape os = nn_conv_out_shape(cv, is);

	assert(is.c == cv->c && threads >= 1);
	assert(in != out && residual != out);
	switch (cv->algo) {
	case NN_CONV_WINOGRAD:
		assert(cv->kh == 3 && cv->kw == 3 && cv->stride == 1 && cv->pad == 1);
		wino_conv3x3(cv->weight, cv->bias, cv->k, cv->c, in, is.n, is.h, is.w, residual, relu, out,
			     scratch, threads);
		return;
	case NN_CONV_WINOGRAD2:
		assert(cv->kh == 3 && cv->kw == 3 && cv->stride == 1 && cv->pad == 1);
		wino2_conv3x3(cv->weight, cv->bias, cv->k, cv->c, in, is.n, is.h, is.w, residual, relu, out,
			      scratch, threads);
		return;
	case NN_CONV_IM2COL:
		conv_im2col(cv, in, is, os, residual, relu, out, scratch, threads);
		return;
	case NN_CONV_1X1:
		assert(cv->kh == 1 && cv->kw == 1 && cv->pad == 0);
		conv_1x1(cv, in, is, os, residual, relu, out, scratch, threads);
		return;
	}
}

struct nn_shape nn_maxpool_out_shape(struct nn_shape in)
{
	struct nn_shape out = {in.c, in.n, (in.h + 2 - 3) / 2 + 1, (in.w + 2 - 3) / 2 + 1};
	return out;
}

/*
 * 3x3, stride-2 max-pool. Each output is max3(H(r0), H(r1), H(r2)) over its
 * three input rows, where H(r)[ox] = max3(r[2ox-1], r[2ox], r[2ox+1]) is the
 * horizontal window max. A window hanging over the edge (padding, which
 * never wins a max) is clamped onto its edge row or column instead: that
 * element is in the window anyway and max is idempotent. An odd input row
 * is the bottom row of one window and the top row of the next, so its H is
 * kept in a buffer (hp) for the next output row. Every path evaluates the
 * same maxes in the same order (`a > b ? a : b`, which is what MAXPS does),
 * so all give bit-identical results, signed zeros and NaNs included.
 *
 * Planes are pooled in strips of at most MAXPOOL_STRIP output columns so
 * that hp is a fixed-size stack array; ResNet-18's 112-wide input is one
 * strip. SSE2 (the x86-64 baseline) does four columns at a time: 0.13 ms
 * for 64 planes of 112x112 against 0.33 ms one at a time, and AVX-512 was
 * no faster (the pass is bound by memory).
 */
#define MAXPOOL_STRIP 128

static inline float max3(float a, float b, float c)
{
	float m = a > b ? a : b;

	return m > c ? m : c;
}

/* H(r)[ox] for a row of w floats, with the clamping at both ends */
static inline float maxpool_h1(const float *r, int w, int ox)
{
	int xa = ox > 0 ? 2 * ox - 1 : 0, xc = 2 * ox + 1 < w ? 2 * ox + 1 : w - 1;

	return max3(r[xa], r[2 * ox], r[xc]);
}

/* row y of a plane of h rows, clamped into [0, h) */
static inline const float *maxpool_row(const float *src, int h, int w, int y)
{
	y = y < 0 ? 0 : y < h ? y : h - 1;
	return src + (size_t)y * w;
}

#ifdef __SSE2__
/*
 * H(r)[ox .. ox+4), reading r[2ox .. 2ox+8); carry holds the odd elements of
 * the previous 4 (its lane 3 is r[2ox-1]) and is updated.
 */
static inline __m128 maxpool_h4(const float *r, int ox, __m128 *carry)
{
	__m128 lo = _mm_loadu_ps(r + 2 * ox), hi = _mm_loadu_ps(r + 2 * ox + 4);
	__m128 b = _mm_shuffle_ps(lo, hi, _MM_SHUFFLE(2, 0, 2, 0));
	__m128 c = _mm_shuffle_ps(lo, hi, _MM_SHUFFLE(3, 1, 3, 1));
	/* a = { carry[3], c[0], c[1], c[2] } */
	__m128 t = _mm_shuffle_ps(*carry, c, _MM_SHUFFLE(0, 0, 3, 3));
	__m128 a = _mm_shuffle_ps(t, c, _MM_SHUFFLE(2, 1, 2, 0));

	*carry = c;
	return _mm_max_ps(_mm_max_ps(a, b), c);
}
#endif

/*
 * Output columns [x0, x1) of one plane: src [h][w] -> dst [oh][ow]. Four
 * columns at a time with SSE2 while the windows lie inside the row, the
 * rest (and everything without SSE2) one at a time.
 */
static void maxpool_strip(const float *src, int h, int w, int x0, int x1, float *dst, int oh, int ow)
{
	float hp[MAXPOOL_STRIP]; /* [x1 - x0] H of the top row of the current output row */
	int ox = x0;

	assert(x1 - x0 <= MAXPOOL_STRIP);
#ifdef __SSE2__
	int xv = x1 < w / 2 ? x1 : w / 2; /* columns whose 2ox+1 is inside the row */
	__m128 carry = _mm_set1_ps(src[x0 > 0 ? 2 * x0 - 1 : 0]);

	for (; ox + 4 <= xv; ox += 4)
		_mm_storeu_ps(hp + ox - x0, maxpool_h4(src, ox, &carry));
#endif
	for (; ox < x1; ox++)
		hp[ox - x0] = maxpool_h1(src, w, ox);

	for (int oy = 0; oy < oh; oy++) {
		const float *r1 = maxpool_row(src, h, w, 2 * oy);
		const float *r2 = maxpool_row(src, h, w, 2 * oy + 1);
		float *d = dst + (size_t)oy * ow;

		ox = x0;
#ifdef __SSE2__
		int xa = x0 > 0 ? 2 * x0 - 1 : 0;
		__m128 c1 = _mm_set1_ps(r1[xa]), c2 = _mm_set1_ps(r2[xa]);

		for (; ox + 4 <= xv; ox += 4) {
			__m128 h1 = maxpool_h4(r1, ox, &c1), h2 = maxpool_h4(r2, ox, &c2);
			__m128 h0 = _mm_loadu_ps(hp + ox - x0);

			_mm_storeu_ps(d + ox, _mm_max_ps(_mm_max_ps(h0, h1), h2));
			_mm_storeu_ps(hp + ox - x0, h2);
		}
#endif
		for (; ox < x1; ox++) {
			float h2 = maxpool_h1(r2, w, ox);

			d[ox] = max3(hp[ox - x0], maxpool_h1(r1, w, ox), h2);
			hp[ox - x0] = h2;
		}
	}
}

void nn_maxpool3x3s2(const float *in, struct nn_shape is, float *out, int threads)
{
	struct nn_shape os = nn_maxpool_out_shape(is);
	const size_t planes = (size_t)is.c * is.n;

#pragma omp parallel for num_threads(threads) schedule(static) if (threads > 1)
	for (size_t pl = 0; pl < planes; pl++) {
		const float *src = in + pl * is.h * is.w;
		float *dst = out + pl * os.h * os.w;

		for (int x0 = 0; x0 < os.w; x0 += MAXPOOL_STRIP) {
			int x1 = os.w - x0 > MAXPOOL_STRIP ? x0 + MAXPOOL_STRIP : os.w;

			maxpool_strip(src, is.h, is.w, x0, x1, dst, os.h, os.w);
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

void nn_linear(const float *weight, const float *bias, int k, int c, const float *in, int n, float *out)
{
	/* [N, C] (in is [C][N], read transposed) x [C, K] (weight is [K][C]) -> [N, K] */
	cblas_sgemm(CblasRowMajor, CblasTrans, CblasTrans, n, k, c, 1.0f, in, n, weight, c, 0.0f, out, k);
	for (int i = 0; i < n; i++)
		for (int o = 0; o < k; o++)
			out[(size_t)i * k + o] += bias[o];
}

void nn_topk(const float *x, int n, int k, int *idx)
{
	int have = 0;

	/* insertion into a sorted list of k: k is small (<= 20), n is 1000 */
	for (int c = 0; c < n; c++) {
		int pos = have;

		while (pos > 0 && x[c] > x[idx[pos - 1]])
			pos--;
		if (pos == k)
			continue;
		if (have < k)
			have++;
		memmove(idx + pos + 1, idx + pos, (size_t)(have - pos - 1) * sizeof(*idx));
		idx[pos] = c;
	}
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
