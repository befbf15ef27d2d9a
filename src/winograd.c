/*
 * winograd.c - 3x3 stride-1 pad-1 convolution as Winograd F(4x4, 3x3): 6x6
 * input tiles and 3x3 filters go to 36 transform points, are multiplied there
 * by 36 matrix products (gemm.h), and 4x4 output tiles come back with the
 * epilogue.
 * F(2x2, 3x3) (4x4 tiles, 16 points) follows the same plan at the end.
 */
#include "winograd.h"

#include "gemm.h"

#include <assert.h>
#include <limits.h>
#include <string.h>
#ifdef _OPENMP
#include <omp.h>
#endif

/*
 * F(4x4, 3x3) with interpolation points 0, 1, -1, 2, -2 and infinity
 * (Lavin & Gray, "Fast Algorithms for Convolutional Neural Networks"):
 *
 *   Y = A^T [ (G g G^T) .* (B^T d B) ] A
 *
 *   B^T = | 4  0 -5  0  1  0 |   G = |  1/4     0     0  |
 *         | 0 -4 -4  1  1  0 |       | -1/6  -1/6  -1/6  |
 *         | 0  4 -4 -1  1  0 |       | -1/6   1/6  -1/6  |
 *         | 0 -2 -1  2  1  0 |       |  1/24  1/12  1/6  |
 *         | 0  2 -1 -2  1  0 |       |  1/24 -1/12  1/6  |
 *         | 0  4  0 -5  0  1 |       |   0     0     1   |
 *
 *   A^T = | 1  1  1  1  1  0 |
 *         | 0  1 -1  2 -2  0 |
 *         | 0  1  1  4  4  0 |
 *         | 0  1 -1  8 -8  1 |
 *
 * d is a 6x6 input tile whose top-left corner is (4*ty - 1, 4*tx - 1) (the
 * -1 is the padding), Y the 4x4 output tile at (4*ty, 4*tx). Point
 * xi = 6*i + j of the transform is row i, column j of the 6x6 products.
 */

/*
 * The transforms work on WINO_VL tiles of one tile row at a time, as GCC
 * vector-extension values (one AVX register, or two SSE ones in the
 * baseline build). Vector types cannot be declared without a typedef.
 */
#define WINO_VL 8
typedef float wino_vf __attribute__((vector_size(WINO_VL * sizeof(float))));
typedef int wino_vi __attribute__((vector_size(WINO_VL * sizeof(int))));

/*
 * Clones of the transform loops for AVX-512, AVX2+FMA and baseline x86-64;
 * the loader picks one for the running CPU (ifunc), so binaries stay
 * portable. Helpers are always_inline so they are built for each clone.
 * -DWINO_NO_CLONES builds only the variant for the compiler's -march, which
 * is how the test suite exercises each of them on one machine.
 */
#if defined(__x86_64__) && defined(__GNUC__) && !defined(WINO_NO_CLONES)
#define WINO_CLONES __attribute__((target_clones("arch=x86-64-v4", "arch=x86-64-v3", "default")))
#else
#define WINO_CLONES
#endif
#define WINO_INLINE static inline __attribute__((always_inline))

/* How one call of either variant is cut up; derived from the sizes alone, so that
 * wino_scratch_floats() and wino_conv3x3() agree. */
struct wino_plan {
	int tw, th;     /* tiles per tile row, tile rows per image */
	int rows;       /* tile rows in the batch: n * th */
	int block_rows; /* tile rows per round of 36 (or 16) GEMMs */
	int hw;         /* tiles a tile row's vectors cover: tw rounded up to WINO_VL */
	size_t ldt;     /* row stride of V and M: block tiles plus overrun room */
	size_t xs;      /* stride of the matrix slots holding V ([c][ldt]) and M ([k][ldt]) */
};

/*
 * Bytes of matrix slots (transformed input and output tiles, see
 * wino_conv3x3) one block of tile rows should stay under, so that they are
 * still in the 2 MB L2 cache, next to U and the activations, when the GEMMs
 * and then the output transform read them. On that Xeon 64@56x56 runs
 * equally well with blocks of 5 to 16 tile rows (0.7 to 2 MB) and worse
 * outside. Fixed rather than probed, so a given shape always runs the same
 * way.
 */
#define WINO_BLOCK_BYTES ((size_t)1 << 20)

/*
 * The transforms write (or read) the same row of all 36 (or 16) matrices at once.
 * With power-of-two strides those 36 streams would all fall into one L1
 * set and evict each other on every vector; an odd number of cache lines
 * between matrices spreads them over 36 sets.
 */
static size_t wino_matrix_stride(size_t floats)
{
	size_t lines = (floats + 15) / 16;

	return 16 * (lines | 1);
}

/*
 * Plan a call for a transform with `points` points (36 for F(4x4), 16 for
 * F(2x2)) and `tile` x `tile` output tiles (4 or 2).
 */
static void wino_plan_init(struct wino_plan *p, int points, int tile, int k, int c, int n, int h, int w)
{
	size_t per_row, u_bytes, fit, blocks, nvec;

	assert(k > 0 && c > 0 && n > 0 && h > 0 && w > 0);
	/* tile counts and GEMM leading dimensions are ints */
	assert((size_t)n * ((h + tile - 1) / tile) * ((w + tile - 1) / tile + WINO_VL) < INT_MAX / 16);
	p->tw = (w + tile - 1) / tile;
	p->th = (h + tile - 1) / tile;
	p->rows = n * p->th;
	nvec = (size_t)(p->tw + WINO_VL - 1) / WINO_VL;
	p->hw = (int)(nvec * WINO_VL);

	/*
	 * Every block streams all of U through the GEMMs again. Block only
	 * when that costs less than the round trip of V and M through L3
	 * which blocking saves: so 64@56x56 is blocked, and the deeper layers,
	 * whose U is large, are not (measured: blocking them is slower).
	 */
	per_row = (size_t)points * sizeof(float) * (size_t)(k > c ? k : c) * p->tw;
	u_bytes = (size_t)points * sizeof(float) * (size_t)k * c;
	fit = WINO_BLOCK_BYTES / per_row;
	if (fit < 1)
		fit = 1;
	blocks = ((size_t)p->rows + fit - 1) / fit;
	if ((blocks - 1) * u_bytes > (size_t)p->rows * per_row)
		blocks = 1;
	p->block_rows = (int)(((size_t)p->rows + blocks - 1) / blocks);
	/* the last row of a block writes up to a whole vector past its end */
	p->ldt = (size_t)(p->block_rows - 1) * p->tw + p->hw;
	p->ldt = (p->ldt + 15) & ~(size_t)15;
	p->xs = wino_matrix_stride((size_t)(k > c ? k : c) * p->ldt);
}

size_t wino_weight_floats(int k, int c)
{
	assert(k > 0 && c > 0);
	return 36 * (size_t)k * (size_t)c;
}

void wino_weight_transform(const float *w, int k, int c, float *u)
{
	static const double g_mat[6][3] = {
		{ 1.0 / 4, 0, 0 },
		{ -1.0 / 6, -1.0 / 6, -1.0 / 6 },
		{ -1.0 / 6, 1.0 / 6, -1.0 / 6 },
		{ 1.0 / 24, 1.0 / 12, 1.0 / 6 },
		{ 1.0 / 24, -1.0 / 12, 1.0 / 6 },
		{ 0, 0, 1 },
	};
	size_t kc = (size_t)k * (size_t)c;

	assert(k > 0 && c > 0);
	for (size_t f = 0; f < kc; f++) {
		const float *g = w + 9 * f;
		double tmp[6][3]; /* G g */

		for (int i = 0; i < 6; i++)
			for (int j = 0; j < 3; j++)
				tmp[i][j] = g_mat[i][0] * g[j] + g_mat[i][1] * g[3 + j] +
					    g_mat[i][2] * g[6 + j];
		for (int i = 0; i < 6; i++)
			for (int j = 0; j < 6; j++)
				u[(size_t)(6 * i + j) * kc + f] =
					(float)(tmp[i][0] * g_mat[j][0] + tmp[i][1] * g_mat[j][1] +
						tmp[i][2] * g_mat[j][2]);
	}
}

/* Floats of row work space one thread's transforms need. */
static size_t wino_work_floats(const struct wino_plan *p)
{
	/* the larger of the input's 4 * WINO_VL + 36 * hw and the output's 24 * hw + WINO_VL */
	return 36 * (size_t)p->hw + 4 * WINO_VL;
}

/* Unaligned vector load and store; macros, because passing or returning
 * vectors wider than SSE from functions trips GCC's ABI warning. */
#define WINO_LOAD(v, p) memcpy(&(v), (p), sizeof(v))
#define WINO_STORE(p, v) memcpy((p), &(v), sizeof(v))

/*
 * One 1-D step of B^T d B on vectors: o[l] = sum_m B^T[l][m] e[m], with
 * o[l] stored at dst + l * stride. Written out rather than looped: GCC -O2
 * does not unroll small loops and would go through the stack.
 */
WINO_INLINE void wino_bt6(const wino_vf *e, float *dst, size_t stride)
{
	wino_vf a = e[4] - 4 * e[2], b = e[3] - 4 * e[1];
	wino_vf c = e[4] - e[2], d = 2 * (e[3] - e[1]), o;

	o = 4 * e[0] - 5 * e[2] + e[4];
	WINO_STORE(dst, o);
	o = a + b;
	WINO_STORE(dst + stride, o);
	o = a - b;
	WINO_STORE(dst + 2 * stride, o);
	o = c + d;
	WINO_STORE(dst + 3 * stride, o);
	o = c - d;
	WINO_STORE(dst + 4 * stride, o);
	o = 4 * e[1] - 5 * e[3] + e[5];
	WINO_STORE(dst + 5 * stride, o);
}

/* One 1-D step of A^T m A on vectors: o[q] = sum_l A^T[q][l] e[l], o[q] to dst + q * stride. */
WINO_INLINE void wino_at6(const wino_vf *e, float *dst, size_t stride)
{
	wino_vf a = e[1] + e[2], b = e[1] - e[2], c = e[3] + e[4], d = e[3] - e[4], o;

	o = e[0] + a + c;
	WINO_STORE(dst, o);
	o = b + 2 * d;
	WINO_STORE(dst + stride, o);
	o = a + 4 * c;
	WINO_STORE(dst + 2 * stride, o);
	o = b + 8 * d + e[5];
	WINO_STORE(dst + 3 * stride, o);
}

/*
 * *v = the vector at x = WINO_VL * m - 1 of a row of w >= WINO_VL floats,
 * zero outside [0, w), without reading outside the row. The padded row is
 * built in registers: storing it and loading it back at another offset
 * would stall on failed store forwarding.
 */
WINO_INLINE void wino_row_vec(wino_vf *v, const float *src, int w, int m)
{
	int x0 = WINO_VL * m - 1;
	wino_vf a, zero = { 0 };

	if (x0 >= w) {
		*v = zero;
		return;
	}
	if (x0 < 0) {
		WINO_LOAD(a, src);
		*v = __builtin_shufflevector(zero, a, 0, 8, 9, 10, 11, 12, 13, 14);
		return;
	}
	if (x0 + WINO_VL <= w) {
		WINO_LOAD(a, src + x0);
		*v = a;
		return;
	}
	/* the last WINO_VL floats of the row, moved down by the lanes past w */
	WINO_LOAD(a, src + w - WINO_VL);
	switch (x0 + WINO_VL - w) {
	case 1:
		*v = __builtin_shufflevector(a, zero, 1, 2, 3, 4, 5, 6, 7, 8);
		break;
	case 2:
		*v = __builtin_shufflevector(a, zero, 2, 3, 4, 5, 6, 7, 8, 8);
		break;
	case 3:
		*v = __builtin_shufflevector(a, zero, 3, 4, 5, 6, 7, 8, 8, 8);
		break;
	case 4:
		*v = __builtin_shufflevector(a, zero, 4, 5, 6, 7, 8, 8, 8, 8);
		break;
	case 5:
		*v = __builtin_shufflevector(a, zero, 5, 6, 7, 8, 8, 8, 8, 8);
		break;
	case 6:
		*v = __builtin_shufflevector(a, zero, 6, 7, 8, 8, 8, 8, 8, 8);
		break;
	default:
		*v = __builtin_shufflevector(a, zero, 7, 8, 8, 8, 8, 8, 8, 8);
		break;
	}
}

/*
 * The four phases of tiles [WINO_VL * g, WINO_VL * (g + 1)) of one input row:
 * ph[p][t] = src[4 * (WINO_VL * g + t) + p - 1], zero outside [0, w). Two
 * rounds of two-input shuffles (one vpermt2ps each on AVX-512). Rows
 * narrower than a vector are read from line, 4 * WINO_VL floats holding
 * the row at 1 .. w and zeros elsewhere.
 */
WINO_INLINE void wino_row_phases(const float *src, int w, const float *line, int g,
				 wino_vf ph[4])
{
	wino_vf d[4], s0, s1, s2, s3;

	if (w >= WINO_VL) {
		wino_row_vec(&d[0], src, w, 4 * g);
		wino_row_vec(&d[1], src, w, 4 * g + 1);
		wino_row_vec(&d[2], src, w, 4 * g + 2);
		wino_row_vec(&d[3], src, w, 4 * g + 3);
	} else {
		WINO_LOAD(d[0], line + 4 * WINO_VL * g);
		WINO_LOAD(d[1], line + 4 * WINO_VL * g + WINO_VL);
		WINO_LOAD(d[2], line + 4 * WINO_VL * g + 2 * WINO_VL);
		WINO_LOAD(d[3], line + 4 * WINO_VL * g + 3 * WINO_VL);
	}
	s0 = __builtin_shufflevector(d[0], d[1], 0, 4, 8, 12, 1, 5, 9, 13);
	s1 = __builtin_shufflevector(d[0], d[1], 2, 6, 10, 14, 3, 7, 11, 15);
	s2 = __builtin_shufflevector(d[2], d[3], 0, 4, 8, 12, 1, 5, 9, 13);
	s3 = __builtin_shufflevector(d[2], d[3], 2, 6, 10, 14, 3, 7, 11, 15);
	ph[0] = __builtin_shufflevector(s0, s2, 0, 1, 2, 3, 8, 9, 10, 11);
	ph[1] = __builtin_shufflevector(s0, s2, 4, 5, 6, 7, 12, 13, 14, 15);
	ph[2] = __builtin_shufflevector(s1, s3, 0, 1, 2, 3, 8, 9, 10, 11);
	ph[3] = __builtin_shufflevector(s1, s3, 4, 5, 6, 7, 12, 13, 14, 15);
}

/*
 * B^T along one input row: hr[l][tx] = sum_m B^T[l][m] row[4*tx - 1 + m]
 * for tx < nvec * WINO_VL (hr is [6][nvec * WINO_VL]). e[m] of tile tx is
 * phase m % 4 of tile tx + m / 4; the shifted phases come from the next
 * group's, which exist only when tw fills its vectors (over) and otherwise
 * feed only lanes past the last tile.
 */
WINO_INLINE void wino_row_bt(const float *src, int w, const float *line, size_t nvec, int over,
			     float *hr)
{
	size_t hw = nvec * WINO_VL;
	wino_vf cur[4], next[4], e[6], zero = { 0 };

	wino_row_phases(src, w, line, 0, cur);
	for (size_t g = 0; g < nvec; g++) {
		if (g + 1 < nvec || over) {
			wino_row_phases(src, w, line, (int)g + 1, next);
		} else {
			next[0] = next[1] = next[2] = next[3] = zero;
		}
		e[0] = cur[0];
		e[1] = cur[1];
		e[2] = cur[2];
		e[3] = cur[3];
		e[4] = __builtin_shufflevector(cur[0], next[0], 1, 2, 3, 4, 5, 6, 7, 8);
		e[5] = __builtin_shufflevector(cur[1], next[1], 1, 2, 3, 4, 5, 6, 7, 8);
		wino_bt6(e, hr + g * WINO_VL, hw);
		cur[0] = next[0];
		cur[1] = next[1];
		cur[2] = next[2];
		cur[3] = next[3];
	}
}

/*
 * Input transform of tile rows [r0, r1) for every channel:
 * v[xi][c][t] = (B^T d B)[xi] for tile t = (r - r0) * tw + tx.
 *
 * B^T is applied along each input row first (wino_row_bt), on vectors of
 * consecutive tiles; then down the six rows of each tile row, straight into
 * v. A tile row needs input rows 4*ty - 1 .. 4*ty + 4; the last two are the
 * first two of the next tile row, so their results are kept. Vectors may
 * run up to WINO_VL - 1 tiles past the row; those columns of v are
 * overwritten by the next row or never read.
 */
WINO_CLONES
static void wino_input_block(const struct wino_plan *p, const float *in, int c, int n,
			     int h, int w, int r0, int r1, float *v, float *work)
{
	size_t xs = p->xs;
	size_t hw = (size_t)p->hw, nvec = hw / WINO_VL;
	int over = p->tw % WINO_VL == 0;
	float *line = work;                  /* [4 * WINO_VL]: a narrow row, padded */
	float *bufs = work + 4 * WINO_VL;    /* [6][6][hw]: rows after B^T */

	memset(line, 0, 4 * WINO_VL * sizeof(float));
	for (int ci = 0; ci < c; ci++) {
		float *hr[6];
		int prev_n = -1;

		for (int j = 0; j < 6; j++)
			hr[j] = bufs + (size_t)j * 6 * hw;
		for (int r = r0; r < r1; r++) {
			int ni = r / p->th, ty = r % p->th;
			float *dst = v + (size_t)ci * p->ldt + (size_t)(r - r0) * p->tw;
			int j0 = 0;

			if (ni == prev_n) {
				/* rows 4*ty - 1 and 4*ty were rows 4 and 5 of tile row ty - 1 */
				float *t0 = hr[0], *t1 = hr[1];

				hr[0] = hr[4];
				hr[1] = hr[5];
				hr[4] = t0;
				hr[5] = t1;
				j0 = 2;
			}
			prev_n = ni;
			for (int j = j0; j < 6; j++) {
				int y = 4 * ty - 1 + j;
				const float *src;

				if (y < 0 || y >= h) {
					memset(hr[j], 0, 6 * hw * sizeof(float));
					continue;
				}
				src = in + (((size_t)ci * n + ni) * h + y) * w;
				if (w < WINO_VL)
					for (int x = 0; x < w; x++)
						line[x + 1] = src[x];
				wino_row_bt(src, w, line, nvec, over, hr[j]);
			}
			for (size_t l = 0; l < 6; l++) {
				for (size_t tx = 0; tx < hw; tx += WINO_VL) {
					wino_vf col[6];

					WINO_LOAD(col[0], hr[0] + l * hw + tx);
					WINO_LOAD(col[1], hr[1] + l * hw + tx);
					WINO_LOAD(col[2], hr[2] + l * hw + tx);
					WINO_LOAD(col[3], hr[3] + l * hw + tx);
					WINO_LOAD(col[4], hr[4] + l * hw + tx);
					WINO_LOAD(col[5], hr[5] + l * hw + tx);
					/* point 6*i + l, for i = 0 .. 5 */
					wino_bt6(col, dst + l * xs + tx, 6 * xs);
				}
			}
		}
	}
}

/*
 * One output vector: dst[x .. x + WINO_VL) = relu?(*in + *bias + res?),
 * for the lanes inside the row [0, w); lanes past w go through a bounce
 * buffer. Vectors are passed by pointer: by value, GCC warns about the ABI.
 */
WINO_INLINE void wino_epilogue(const wino_vf *in, const wino_vf *bias, const float *res,
			       int relu, float *dst, int x, int w, float *bounce)
{
	wino_vf val = *in, bv = *bias, rv, zero = { 0 };

	if (x + WINO_VL <= w) {
		val += bv;
		if (res) {
			WINO_LOAD(rv, res + x);
			val += rv;
		}
		if (relu)
			val = (wino_vf)((wino_vi)val & (val > zero));
		WINO_STORE(dst + x, val);
		return;
	}
	WINO_STORE(bounce, val);
	for (int l = 0; l < w - x; l++) {
		float f = bounce[l] + bv[0];

		if (res)
			f += res[x + l];
		if (relu && f < 0)
			f = 0;
		dst[x + l] = f;
	}
}

/*
 * Output transform of tile rows [r0, r1) for every output channel, fused
 * with the epilogue: out = relu?((A^T m A) + bias + residual?), where m[xi]
 * of tile t is mm[xi][k][t]. Columns of mm past the block's last tile must
 * hold finite values (the vectors read past the row).
 *
 * Per tile row, A^T is applied along each row i of the 6x6 products into
 * s[i][qx] (qx the output column within the tile); then, per vector of
 * tiles, down the columns into the 16 outputs o[qy][qx], which are
 * interleaved back into x order and stored with the epilogue.
 */
WINO_CLONES
static void wino_output_block(const struct wino_plan *p, const float *mm, const float *bias,
			      int k, int n, int h, int w, int r0, int r1,
			      const float *residual, int relu, float *out, float *work)
{
	size_t hw = (size_t)p->hw, xs = p->xs;
	float *s = work;                /* [6][4][hw]: A^T applied along the rows */
	float *bounce = work + 24 * hw; /* [WINO_VL]: a partial output vector */
	wino_vf zero = { 0 };

	for (int ki = 0; ki < k; ki++) {
		wino_vf bv = zero + (bias ? bias[ki] : 0.0f);

		for (int r = r0; r < r1; r++) {
			int ni = r / p->th, ty = r % p->th;
			int rows = h - 4 * ty < 4 ? h - 4 * ty : 4;
			const float *src = mm + (size_t)ki * p->ldt + (size_t)(r - r0) * p->tw;
			size_t row0 = (((size_t)ki * n + ni) * h + 4 * ty) * w;

			for (int i = 0; i < 6; i++) {
				const float *si = src + (size_t)(6 * i) * xs;

				for (size_t tx = 0; tx < hw; tx += WINO_VL) {
					wino_vf row[6];

					WINO_LOAD(row[0], si + tx);
					WINO_LOAD(row[1], si + xs + tx);
					WINO_LOAD(row[2], si + 2 * xs + tx);
					WINO_LOAD(row[3], si + 3 * xs + tx);
					WINO_LOAD(row[4], si + 4 * xs + tx);
					WINO_LOAD(row[5], si + 5 * xs + tx);
					wino_at6(row, s + (size_t)i * 4 * hw + tx, hw);
				}
			}
			for (size_t tx = 0; tx < hw; tx += WINO_VL) {
				wino_vf o[4][4]; /* [qy][qx] */

				/* A^T down the columns, kept in registers (same sums as wino_at6) */
				for (int qx = 0; qx < 4; qx++) {
					const float *sq = s + (size_t)qx * hw + tx;
					wino_vf e0, e1, e2, e3, e4, e5, a, b, c, d;

					WINO_LOAD(e0, sq);
					WINO_LOAD(e1, sq + 4 * hw);
					WINO_LOAD(e2, sq + 8 * hw);
					WINO_LOAD(e3, sq + 12 * hw);
					WINO_LOAD(e4, sq + 16 * hw);
					WINO_LOAD(e5, sq + 20 * hw);
					a = e1 + e2;
					b = e1 - e2;
					c = e3 + e4;
					d = e3 - e4;
					o[0][qx] = e0 + a + c;
					o[1][qx] = b + 2 * d;
					o[2][qx] = a + 4 * c;
					o[3][qx] = b + 8 * d + e5;
				}
				for (int qy = 0; qy < rows; qy++) {
					size_t row = row0 + (size_t)qy * w;
					const float *res = residual ? residual + row : NULL;
					int x = 4 * (int)tx;
					wino_vf s0, s1, s2, s3, v;

					if (x >= w)
						break;
					/* x order: tile t's four columns, then tile t + 1's */
					s0 = __builtin_shufflevector(o[qy][0], o[qy][1], 0, 1, 2, 3, 8, 9, 10, 11);
					s1 = __builtin_shufflevector(o[qy][2], o[qy][3], 0, 1, 2, 3, 8, 9, 10, 11);
					s2 = __builtin_shufflevector(o[qy][0], o[qy][1], 4, 5, 6, 7, 12, 13, 14, 15);
					s3 = __builtin_shufflevector(o[qy][2], o[qy][3], 4, 5, 6, 7, 12, 13, 14, 15);
					v = __builtin_shufflevector(s0, s1, 0, 4, 8, 12, 1, 5, 9, 13);
					wino_epilogue(&v, &bv, res, relu, out + row, x, w, bounce);
					if (x + WINO_VL >= w)
						continue;
					v = __builtin_shufflevector(s0, s1, 2, 6, 10, 14, 3, 7, 11, 15);
					wino_epilogue(&v, &bv, res, relu, out + row, x + WINO_VL, w, bounce);
					if (x + 2 * WINO_VL >= w)
						continue;
					v = __builtin_shufflevector(s2, s3, 0, 4, 8, 12, 1, 5, 9, 13);
					wino_epilogue(&v, &bv, res, relu, out + row, x + 2 * WINO_VL, w,
						      bounce);
					if (x + 3 * WINO_VL >= w)
						continue;
					v = __builtin_shufflevector(s2, s3, 2, 6, 10, 14, 3, 7, 11, 15);
					wino_epilogue(&v, &bv, res, relu, out + row, x + 3 * WINO_VL, w,
						      bounce);
				}
			}
		}
	}
}


/* ------------------------------------------------------------------------
 * F(2x2, 3x3): 4x4 input tiles, 16 transform points.
 *
 *   Y = A^T [ (G g G^T) .* (B^T d B) ] A
 *
 *   B^T = | 1  0 -1  0 |   G = |  1    0    0  |   A^T = | 1  1  1  0 |
 *         | 0  1  1  0 |       | 1/2  1/2  1/2 |         | 0  1 -1 -1 |
 *         | 0 -1  1  0 |       | 1/2 -1/2  1/2 |
 *         | 0  1  0 -1 |       |  0    0    1  |
 *
 * d is the 4x4 input tile whose top-left corner is (2*ty - 1, 2*tx - 1), Y
 * the 2x2 output tile at (2*ty, 2*tx), point xi = 4*i + j. Twice the
 * multiplications per output of F(4x4) but 16/36 of its transformed weight
 * bytes and four times the tiles of a small image: for the deep layers at
 * small batches, where streaming the weights costs more than the
 * arithmetic, that can be the better trade. The code mirrors F(4x4)'s.
 * ------------------------------------------------------------------------ */

size_t wino2_weight_floats(int k, int c)
{
	assert(k > 0 && c > 0);
	return 16 * (size_t)k * (size_t)c;
}

void wino2_weight_transform(const float *w, int k, int c, float *u)
{
	static const double g_mat[4][3] = {
		{ 1, 0, 0 },
		{ 0.5, 0.5, 0.5 },
		{ 0.5, -0.5, 0.5 },
		{ 0, 0, 1 },
	};
	size_t kc = (size_t)k * (size_t)c;

	assert(k > 0 && c > 0);
	for (size_t f = 0; f < kc; f++) {
		const float *g = w + 9 * f;
		double tmp[4][3]; /* G g */

		for (int i = 0; i < 4; i++)
			for (int j = 0; j < 3; j++)
				tmp[i][j] = g_mat[i][0] * g[j] + g_mat[i][1] * g[3 + j] +
					    g_mat[i][2] * g[6 + j];
		for (int i = 0; i < 4; i++)
			for (int j = 0; j < 4; j++)
				u[(size_t)(4 * i + j) * kc + f] =
					(float)(tmp[i][0] * g_mat[j][0] + tmp[i][1] * g_mat[j][1] +
						tmp[i][2] * g_mat[j][2]);
	}
}

/* Floats per row of the padded copy of the input (wino2_input_block). */
static size_t wino2_line_floats(const struct wino_plan *p)
{
	/* 2 * hw floats of tiles plus the vectors' reach past them */
	return 2 * (size_t)p->hw + 2 * WINO_VL;
}

/* Floats of one padded copy of the input rows of an image (wino2_input_block). */
static size_t wino2_pad_floats(const struct wino_plan *p)
{
	return (2 * (size_t)p->th + 2) * wino2_line_floats(p);
}

/* Floats of work space one thread's F(2x2) transforms need. */
static size_t wino2_work_floats(const struct wino_plan *p)
{
	/* input: a padded copy and [4][4][hw] rows after B^T (output: WINO_VL) */
	return wino2_pad_floats(p) + 16 * (size_t)p->hw;
}

/* One 1-D step of B^T d B on vectors: o[l] = sum_m B^T[l][m] e[m], o[l] to dst + l * stride. */
WINO_INLINE void wino2_bt4(const wino_vf *e, float *dst, size_t stride)
{
	wino_vf o;

	o = e[0] - e[2];
	WINO_STORE(dst, o);
	o = e[1] + e[2];
	WINO_STORE(dst + stride, o);
	o = e[2] - e[1];
	WINO_STORE(dst + 2 * stride, o);
	o = e[1] - e[3];
	WINO_STORE(dst + 3 * stride, o);
}

/*
 * B^T along one padded input row: hr[l][tx] = sum_m B^T[l][m] line[2*tx + m]
 * for tx < nvec * WINO_VL (hr is [4][nvec * WINO_VL]), where line[x + 1]
 * is input column x and zero outside the row. For the tiles of vector g,
 * e[0] and e[1] are the even and odd floats of the two vectors at
 * line + 2 * WINO_VL * g, e[2] and e[3] those of the two 2 floats on.
 */
WINO_INLINE void wino2_row_bt(const float *line, size_t nvec, float *hr)
{
	size_t hw = nvec * WINO_VL;

	for (size_t g = 0; g < nvec; g++) {
		const float *src = line + 2 * WINO_VL * g;
		wino_vf a, b, e[4];

		WINO_LOAD(a, src);
		WINO_LOAD(b, src + WINO_VL);
		e[0] = __builtin_shufflevector(a, b, 0, 2, 4, 6, 8, 10, 12, 14);
		e[1] = __builtin_shufflevector(a, b, 1, 3, 5, 7, 9, 11, 13, 15);
		WINO_LOAD(a, src + 2);
		WINO_LOAD(b, src + 2 + WINO_VL);
		e[2] = __builtin_shufflevector(a, b, 0, 2, 4, 6, 8, 10, 12, 14);
		e[3] = __builtin_shufflevector(a, b, 1, 3, 5, 7, 9, 11, 13, 15);
		wino2_bt4(e, hr + g * WINO_VL, hw);
	}
}

/*
 * Copies the input rows of channel ci that tile rows [r, e) need into pad,
 * row y to line y + 1 from column 1, and returns e: the end of r's image,
 * or r1 if that comes first.
 */
static int wino2_pad_rows(const struct wino_plan *p, const float *in, int n, int h, int w,
			  int ci, int r, int r1, float *pad)
{
	size_t lw = wino2_line_floats(p);
	int ni = r / p->th, ty0 = r % p->th;
	int e = (ni + 1) * p->th < r1 ? (ni + 1) * p->th : r1;
	int y0 = 2 * ty0 - 1 > 0 ? 2 * ty0 - 1 : 0;
	int y1 = 2 * (ty0 + e - r) + 1 < h ? 2 * (ty0 + e - r) + 1 : h;
	const float *src = in + ((size_t)ci * n + ni) * h * w;

	/* tile rows ty0 .. ty0 + e - r - 1 need input rows 2*ty0 - 1 .. 2*(ty0 + e - r) */
	for (int y = y0; y < y1; y++)
		memcpy(pad + (size_t)(y + 1) * lw + 1, src + (size_t)y * w, (size_t)w * sizeof(float));
	return e;
}

/*
 * F(2x2) input transform of tile rows [r0, r1) for every channel:
 * v[xi][c][t] = (B^T d B)[xi] for tile t = (r - r0) * tw + tx.
 *
 * The rows of one channel of one image are first copied into a padded
 * buffer, one line per row with zeros around, so that the transform's
 * vectors are plain loads (building them in registers, as wino_row_vec
 * does, measured slower here). B^T goes along each of a tile row's four
 * input rows 2*ty - 1 .. 2*ty + 2 and then down them into v; the last two
 * rows are the first two of the next tile row, so their results are kept.
 * Vectors run up to WINO_VL - 1 tiles past the row, as in wino_input_block.
 */
WINO_CLONES
static void wino2_input_block(const struct wino_plan *p, const float *in, int c, int n,
			      int h, int w, int r0, int r1, float *v, float *work)
{
	size_t xs = p->xs, lw = wino2_line_floats(p), pf = wino2_pad_floats(p);
	size_t hw = (size_t)p->hw, nvec = hw / WINO_VL;
	const float *pad = work;     /* [2 * th + 2][lw]: input row y at line y + 1 */
	float *bufs = work + pf;     /* [4][4][hw]: rows after B^T */
	int ci = 0, r = r0;

	/* only rows 0 .. h - 1 at columns 1 .. w are ever written: the padding stays zero */
	memset(work, 0, pf * sizeof(float));
	while (ci < c) {
		int e = wino2_pad_rows(p, in, n, h, w, ci, r, r1, work);
		int ty0 = r % p->th, rot = 0;

		/*
		 * Row j of a tile row after B^T is at bufs + ((j + rot) & 3) * 4 * hw.
		 * An index, not a rotated array of pointers: GCC reloads such an
		 * array as one vector, which stalls on the pointers' stores.
		 */
		wino2_row_bt(pad + (size_t)(2 * ty0) * lw, nvec, bufs);
		wino2_row_bt(pad + (size_t)(2 * ty0 + 1) * lw, nvec, bufs + 4 * hw);
		for (int ty = ty0; r < e; ty++, r++) {
			float *dst = v + (size_t)ci * p->ldt + (size_t)(r - r0) * p->tw;
			const float *h0 = bufs + (size_t)(rot & 3) * 4 * hw;
			const float *h1 = bufs + (size_t)((rot + 1) & 3) * 4 * hw;
			float *h2 = bufs + (size_t)((rot + 2) & 3) * 4 * hw;
			float *h3 = bufs + (size_t)((rot + 3) & 3) * 4 * hw;

			/* padded lines 2*ty .. 2*ty + 3 hold input rows 2*ty - 1 .. 2*ty + 2 */
			wino2_row_bt(pad + (size_t)(2 * ty + 2) * lw, nvec, h2);
			wino2_row_bt(pad + (size_t)(2 * ty + 3) * lw, nvec, h3);
			for (size_t l = 0; l < 4; l++) {
				for (size_t tx = 0; tx < hw; tx += WINO_VL) {
					wino_vf col[4];

					WINO_LOAD(col[0], h0 + l * hw + tx);
					WINO_LOAD(col[1], h1 + l * hw + tx);
					WINO_LOAD(col[2], h2 + l * hw + tx);
					WINO_LOAD(col[3], h3 + l * hw + tx);
					/* point 4*i + l, for i = 0 .. 3 */
					wino2_bt4(col, dst + l * xs + tx, 4 * xs);
				}
			}
			/* rows 2 and 3 of this tile row are rows 0 and 1 of the next */
			rot += 2;
		}
		if (r == r1) {
			ci++;
			r = r0;
		}
	}
}

/*
 * F(2x2) output transform of tile rows [r0, r1) for every output channel,
 * fused with the epilogue: out = relu?((A^T m A) + bias + residual?), where
 * m[xi] of tile t is mm[xi][k][t]. Columns of mm past the block's last tile
 * must hold finite values (the vectors read past the row). Per vector of
 * tiles the 16 products are loaded, reduced to the 2x2 outputs in
 * registers and interleaved back into x order.
 */
WINO_CLONES
static void wino2_output_block(const struct wino_plan *p, const float *mm, const float *bias,
			       int k, int n, int h, int w, int r0, int r1,
			       const float *residual, int relu, float *out, float *work)
{
	size_t hw = (size_t)p->hw, xs = p->xs;
	float *bounce = work; /* [WINO_VL]: a partial output vector */
	wino_vf zero = { 0 };

	for (int ki = 0; ki < k; ki++) {
		wino_vf bv = zero + (bias ? bias[ki] : 0.0f);

		for (int r = r0; r < r1; r++) {
			int ni = r / p->th, ty = r % p->th;
			int rows = h - 2 * ty < 2 ? h - 2 * ty : 2;
			const float *src = mm + (size_t)ki * p->ldt + (size_t)(r - r0) * p->tw;
			size_t row0 = (((size_t)ki * n + ni) * h + 2 * ty) * w;

			for (size_t tx = 0; tx < hw; tx += WINO_VL) {
				wino_vf s[4][2], o[2][2]; /* A^T along rows; [qy][qx] */
				int x = 2 * (int)tx;

				if (x >= w)
					break;
				for (int i = 0; i < 4; i++) {
					const float *si = src + (size_t)(4 * i) * xs + tx;
					wino_vf e0, e1, e2, e3;

					WINO_LOAD(e0, si);
					WINO_LOAD(e1, si + xs);
					WINO_LOAD(e2, si + 2 * xs);
					WINO_LOAD(e3, si + 3 * xs);
					s[i][0] = e0 + e1 + e2;
					s[i][1] = e1 - e2 - e3;
				}
				for (int qx = 0; qx < 2; qx++) {
					o[0][qx] = s[0][qx] + s[1][qx] + s[2][qx];
					o[1][qx] = s[1][qx] - s[2][qx] - s[3][qx];
				}
				for (int qy = 0; qy < rows; qy++) {
					size_t row = row0 + (size_t)qy * w;
					const float *res = residual ? residual + row : NULL;
					wino_vf vv;

					/* x order: tile t's two columns, then tile t + 1's */
					vv = __builtin_shufflevector(o[qy][0], o[qy][1],
								     0, 8, 1, 9, 2, 10, 3, 11);
					wino_epilogue(&vv, &bv, res, relu, out + row, x, w, bounce);
					if (x + WINO_VL >= w)
						continue;
					vv = __builtin_shufflevector(o[qy][0], o[qy][1],
								     4, 12, 5, 13, 6, 14, 7, 15);
					wino_epilogue(&vv, &bv, res, relu, out + row, x + WINO_VL, w, bounce);
				}
			}
		}
	}
}

/* ------------------------------------------------------------------------
 * The driver both transforms share.
 * ------------------------------------------------------------------------ */

/* What differs between F(4x4) and F(2x2); everything else is wino_run(). */
struct wino_variant {
	int points, tile; /* transform points (36, 16) and output tile side (4, 2) */
	size_t (*work_floats)(const struct wino_plan *p);
	void (*input_block)(const struct wino_plan *p, const float *in, int c, int n, int h, int w,
			    int r0, int r1, float *v, float *work);
	void (*output_block)(const struct wino_plan *p, const float *mm, const float *bias, int k, int n,
			     int h, int w, int r0, int r1, const float *residual, int relu, float *out,
			     float *work);
};

static const struct wino_variant wino_f4 = { 36, 4, wino_work_floats, wino_input_block,
					     wino_output_block };
static const struct wino_variant wino_f2 = { 16, 2, wino2_work_floats, wino2_input_block,
					     wino2_output_block };

static size_t wino_run_scratch(const struct wino_variant *vr, int k, int c, int n, int h, int w,
			       int threads)
{
	struct wino_plan p;

	wino_plan_init(&p, vr->points, vr->tile, k, c, n, h, w);
	/* one thread shares matrix slots between V and M (points + 1); several keep them apart */
	return (size_t)(threads > 1 ? 2 * vr->points : vr->points + 1) * p.xs +
	       (size_t)threads * vr->work_floats(&p);
}

/* [lo, hi) of t's share of count items among nt threads. */
static void wino_share(int count, int t, int nt, int *lo, int *hi)
{
	*lo = (int)((long)count * t / nt);
	*hi = (int)((long)count * (t + 1) / nt);
}

static void wino_run(const struct wino_variant *vr, const float *u, const float *bias, int k, int c,
		     const float *in, int n, int h, int w, const float *residual, int relu, float *out,
		     float *scratch, int threads)
{
	const int np = vr->points;
	struct wino_plan p;
	size_t kc = (size_t)k * c, plane = (size_t)n * h * w;
	float *v, *m, *work;

	assert(threads >= 1);
	wino_plan_init(&p, np, vr->tile, k, c, n, h, w);
	/*
	 * One thread: points + 1 matrix slots, V[xi] in slot xi + 1, and GEMM
	 * xi writes M[xi] into slot xi, whose V[xi - 1] the previous GEMM has
	 * consumed: half the memory of separate V and M, so a block stays in
	 * L2. Several threads run the GEMMs out of order, so V and M get
	 * separate slots.
	 */
	m = scratch;                                       /* [np][k][ldt], matrices p.xs apart */
	v = scratch + (threads > 1 ? np : 1) * p.xs;       /* [np][c][ldt], matrices p.xs apart */
	work = scratch + (threads > 1 ? 2 * np : np + 1) * p.xs; /* row work space, one per thread */

	/*
	 * Threads split the input transform by input channel, the GEMMs by
	 * transform point and the output transform by output channel, with a
	 * barrier between the phases; each runs its GEMMs single-threaded.
	 */
#pragma omp parallel num_threads(threads) if (threads > 1)
	{
		int t = 0, nt = 1, c0, c1, k0, k1;
		float *my_work;

#ifdef _OPENMP
		t = omp_get_thread_num();
		nt = omp_get_num_threads();
#endif
		my_work = work + (size_t)t * vr->work_floats(&p);
		wino_share(c, t, nt, &c0, &c1);
		wino_share(k, t, nt, &k0, &k1);

		/*
		 * The output transform reads whole vectors past a block's last
		 * tile. The GEMMs never write those columns, and the input
		 * transform only writes finite values there, so zeroing them once
		 * keeps them finite.
		 */
#pragma omp for schedule(static)
		for (int xi = 0; xi < np; xi++)
			for (size_t row = 0; row < (size_t)k; row++)
				memset(m + xi * p.xs + row * p.ldt + (size_t)p.block_rows * p.tw, 0,
				       (p.ldt - (size_t)p.block_rows * p.tw) * sizeof(float));
		for (int r0 = 0; r0 < p.rows; r0 += p.block_rows) {
			int r1 = r0 + p.block_rows < p.rows ? r0 + p.block_rows : p.rows;
			int tiles = (r1 - r0) * p.tw;

			if (c1 > c0)
				vr->input_block(&p, in + c0 * plane, c1 - c0, n, h, w, r0, r1,
						v + (size_t)c0 * p.ldt, my_work);
#pragma omp barrier
#pragma omp for schedule(static)
			for (int xi = 0; xi < np; xi++)
				/* [k][tiles] = [k][c] x [c][tiles] */
				gemm_f32(k, tiles, c, u + xi * kc, (size_t)c, v + xi * p.xs, p.ldt, m + xi * p.xs,
					 p.ldt);
			if (k1 > k0)
				vr->output_block(&p, m + (size_t)k0 * p.ldt, bias ? bias + k0 : NULL, k1 - k0,
						 n, h, w, r0, r1, residual ? residual + k0 * plane : NULL, relu,
						 out + k0 * plane, my_work);
			/* the next block's input transform overwrites V (and, alone, M) */
#pragma omp barrier
		}
	}
}

size_t wino_scratch_floats(int k, int c, int n, int h, int w, int threads)
{
	return wino_run_scratch(&wino_f4, k, c, n, h, w, threads);
}

void wino_conv3x3(const float *u, const float *bias, int k, int c, const float *in, int n, int h, int w,
		  const float *residual, int relu, float *out, float *scratch, int threads)
{
	wino_run(&wino_f4, u, bias, k, c, in, n, h, w, residual, relu, out, scratch, threads);
}

size_t wino2_scratch_floats(int k, int c, int n, int h, int w, int threads)
{
	return wino_run_scratch(&wino_f2, k, c, n, h, w, threads);
}

void wino2_conv3x3(const float *u, const float *bias, int k, int c, const float *in, int n, int h, int w,
		   const float *residual, int relu, float *out, float *scratch, int threads)
{
	wino_run(&wino_f2, u, bias, k, c, in, n, h, w, residual, relu, out, scratch, threads);
}
