/*
 * gemm.c - C = A * B for the convolutions: an AVX-512 kernel that reads the
 * weights (A) in place, with OpenBLAS as the portable path.
 */
#include "gemm.h"

#include <assert.h>
#include <cblas.h>
#include <string.h>

#if defined(__x86_64__) && defined(__GNUC__)
#define GEMM_HAVE_X86 1
#include <immintrin.h>
#endif

static enum gemm_impl gemm_chosen = GEMM_AUTO;

int gemm_have_avx512(void)
{
#ifdef GEMM_HAVE_X86
	return __builtin_cpu_supports("avx512f");
#else
	return 0;
#endif
}

int gemm_use(enum gemm_impl impl)
{
	if (impl == GEMM_AVX512 && !gemm_have_avx512())
		return -1;
	gemm_chosen = impl;
	return 0;
}

static int gemm_runs_avx512(void)
{
	return gemm_chosen == GEMM_AVX512 || (gemm_chosen == GEMM_AUTO && gemm_have_avx512());
}

const char *gemm_impl_name(void)
{
	return gemm_runs_avx512() ? "avx512" : "openblas";
}

static void gemm_blas(int m, int n, int k, const float *a, size_t lda, const float *b, size_t ldb, float *c,
		      size_t ldc)
{
	cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, m, n, k, 1.0f, a, (int)lda, b, (int)ldb, 0.0f,
		    c, (int)ldc);
}

#ifdef GEMM_HAVE_X86

/*
 * The kernel vectorises along the columns of C (the pixels or tiles of a
 * layer, contiguous in CNHW activations): a tile of C of MR rows by NV
 * vectors of 16 columns stays in registers while the depth runs, each step
 * loading NV vectors of one row of B and broadcasting MR weights, one from
 * each of MR rows of A. So A is read in its own row-major layout, every
 * weight exactly once per column block, and a column block of up to 64
 * columns (a whole 512@7x7 layer at batch 1) reads all of A only once.
 *
 * MR by NV: 16x1, 8x2, 8x3, 4x4, giving 16 to 24 accumulators (enough
 * independent FMAs to hide their latency on two FMA ports) and no more
 * loads per step than the FMAs can overlap.
 *
 * Depth is cut into blocks whose share of B (depth x NV x 16 floats) fits
 * in 32 KB. Each block is first copied into an aligned buffer, zero-padded
 * to whole vectors: the kernel then never reads past column n, and rows of
 * B whose stride is a multiple of 4 KB (an im2col chunk of 1024 columns)
 * no longer all fall into the same few L1 sets. The buffer stays in L1
 * while every row panel of A streams past; C's tile is reloaded and added
 * to after the first block, and only its first n columns are stored.
 *
 * While a tile runs, it prefetches the rows of A the next tile will read,
 * one cache line per step. Weights come cold from memory in a network
 * (tens of MB pass between two uses of a layer), and the hardware
 * prefetchers do not follow MR interleaved row streams well: this made a
 * 512x512 by 16-column product (a 512@7x7 Winograd point at batch 1)
 * some 30% faster with cold weights.
 */
#define GEMM_TARGET __attribute__((target("avx512f")))
#define GEMM_INLINE static inline __attribute__((always_inline)) GEMM_TARGET
#define GEMM_COLS 64	       /* columns per column block: NV <= 4 vectors */
#define GEMM_BLOCK_FLOATS 8192 /* floats of B per depth block (32 KB) */
#define GEMM_DOTS 4	       /* at most this many columns past whole vectors go as dot products */

/*
 * c[mr][nv*16, masked by last] (+)= a[mr][kc] * b[kc][nv*16] (b packed and
 * 64-byte aligned); next: the rows of A the following tile reads, or NULL.
 */
GEMM_INLINE void gemm_tile(const int mr, const int nv, int kc, const float *a, size_t lda, const float *b,
			   size_t ldb, float *c, size_t ldc, __mmask16 last, int first, const float *next)
{
	__m512 acc[16][4];

#pragma GCC unroll 16
	for (int i = 0; i < mr; i++)
#pragma GCC unroll 4
		for (int j = 0; j < nv; j++)
			acc[i][j] = first ? _mm512_setzero_ps()
					  : _mm512_maskz_loadu_ps(j == nv - 1 ? last : 0xffff,
								  c + i * ldc + 16 * j);
	for (int p = 0; p < kc; p++) {
		__m512 bv[4];

		if (next != NULL) {
			int row = p % mr, col = p / mr * 16;

			if (col < kc)
				_mm_prefetch((const char *)(next + row * lda + col), _MM_HINT_T0);
		}
#pragma GCC unroll 4
		for (int j = 0; j < nv; j++)
			bv[j] = _mm512_load_ps(b + p * ldb + 16 * j);
#pragma GCC unroll 16
		for (int i = 0; i < mr; i++) {
			__m512 av = _mm512_set1_ps(a[i * lda + p]);

#pragma GCC unroll 4
			for (int j = 0; j < nv; j++)
				acc[i][j] = _mm512_fmadd_ps(av, bv[j], acc[i][j]);
		}
	}
#pragma GCC unroll 16
	for (int i = 0; i < mr; i++)
#pragma GCC unroll 4
		for (int j = 0; j < nv; j++)
			_mm512_mask_storeu_ps(c + i * ldc + 16 * j, j == nv - 1 ? last : 0xffff, acc[i][j]);
}

/*
 * c[i][q] (+)= dot(a[i][0:kc], column q of B) for the mr rows of a panel and
 * the `dots` columns past its vectors; bc holds those columns of B
 * contiguously ([dots][ldq], zero-padded to whole vectors). The panel's
 * rows of A are still in L1 from its tile, so this costs about 1/16 of a
 * vector column each, where a masked vector would cost a whole one.
 */
GEMM_INLINE void gemm_dots(const int mr, int dots, int kc, const float *a, size_t lda, const float *bc,
			   size_t ldq, float *c, size_t ldc, int first)
{
	const int whole = kc & ~15;
	const __mmask16 tail = (__mmask16)(0xffffu >> (16 - (kc - whole)));

	for (int q = 0; q < dots; q++) {
		const float *col = bc + q * ldq;
		__m512 acc[16];
		int p;

#pragma GCC unroll 16
		for (int i = 0; i < mr; i++)
			acc[i] = _mm512_setzero_ps();
		for (p = 0; p < whole; p += 16) {
			__m512 bv = _mm512_load_ps(col + p);

#pragma GCC unroll 16
			for (int i = 0; i < mr; i++)
				acc[i] = _mm512_fmadd_ps(_mm512_loadu_ps(a + i * lda + p), bv, acc[i]);
		}
		if (p < kc) {
			__m512 bv = _mm512_load_ps(col + p);

#pragma GCC unroll 16
			for (int i = 0; i < mr; i++)
				acc[i] = _mm512_fmadd_ps(_mm512_maskz_loadu_ps(tail, a + i * lda + p), bv,
							 acc[i]);
		}
#pragma GCC unroll 16
		for (int i = 0; i < mr; i++)
			c[i * ldc + q] = (first ? 0.0f : c[i * ldc + q]) + _mm512_reduce_add_ps(acc[i]);
	}
}

/* How one depth block of one column block is laid out for the panels. */
struct gemm_block {
	int kc;		 /* depth */
	const float *b;	 /* packed B: [kc][nv*16], 64-byte aligned */
	int dots;	 /* columns past the vectors, done as dot products (0 to GEMM_DOTS) */
	const float *bc; /* those columns: [dots][ldq] */
	size_t ldq;
	int first; /* the first depth block: store rather than add */
};

/* All rows of one depth block of one column block: panels of mr rows, then single rows. */
GEMM_INLINE void gemm_panels(const int mr, const int nv, int m, const struct gemm_block *blk, const float *a,
			     size_t lda, float *c, size_t ldc, __mmask16 last)
{
	int i = 0;

	for (; i + mr <= m; i += mr) {
		gemm_tile(mr, nv, blk->kc, a + i * lda, lda, blk->b, (size_t)16 * nv, c + i * ldc, ldc, last,
			  blk->first, i + 2 * mr <= m ? a + (i + mr) * lda : NULL);
		if (blk->dots)
			gemm_dots(mr, blk->dots, blk->kc, a + i * lda, lda, blk->bc, blk->ldq,
				  c + i * ldc + 16 * nv, ldc, blk->first);
	}
	for (; i < m; i++) {
		gemm_tile(1, nv, blk->kc, a + i * lda, lda, blk->b, (size_t)16 * nv, c + i * ldc, ldc, last,
			  blk->first, NULL);
		if (blk->dots)
			gemm_dots(1, blk->dots, blk->kc, a + i * lda, lda, blk->bc, blk->ldq,
				  c + i * ldc + 16 * nv, ldc, blk->first);
	}
}

GEMM_TARGET static void gemm_avx512(int m, int n, int k, const float *a, size_t lda, const float *b,
				    size_t ldb, float *c, size_t ldc)
{
	float packed[GEMM_BLOCK_FLOATS] __attribute__((aligned(64)));
	float packed_cols[GEMM_DOTS * GEMM_BLOCK_FLOATS / 16] __attribute__((aligned(64)));

	for (int n0 = 0; n0 < n; n0 += GEMM_COLS) {
		int cols = n - n0 < GEMM_COLS ? n - n0 : GEMM_COLS;
		int rest = cols % 16;
		/* a few columns past whole vectors (49 = 3 * 16 + 1) go as dot products */
		int dots = rest <= GEMM_DOTS && cols > 16 ? rest : 0;
		int nv = dots ? cols / 16 : (cols + 15) / 16;
		__mmask16 last = (__mmask16)(0xffffu >> (16 * nv + dots - cols));
		int depth = GEMM_BLOCK_FLOATS / (16 * nv);

		for (int k0 = 0; k0 < k; k0 += depth) {
			const size_t ldp = (size_t)16 * nv;
			struct gemm_block blk = {
				k - k0 < depth ? k - k0 : depth, packed, dots, packed_cols, 0, k0 == 0};
			const float *ab = a + k0;
			float *cb = c + n0;

			/* B[k0:k0+kc][n0:n0+cols] -> packed[kc][16*nv] (zeros past cols), and the dot columns
			 */
			for (int p = 0; p < blk.kc; p++)
				for (int j = 0; j < nv; j++)
					_mm512_store_ps(packed + p * ldp + 16 * j,
							_mm512_maskz_loadu_ps(j == nv - 1 ? last : 0xffff,
									      b + (size_t)(k0 + p) * ldb +
										      n0 + 16 * j));
			blk.ldq = ((size_t)blk.kc + 15) & ~(size_t)15;
			for (int q = 0; q < dots; q++)
				for (size_t p = 0; p < blk.ldq; p++)
					packed_cols[q * blk.ldq + p] =
						p < (size_t)blk.kc ? b[(k0 + p) * ldb + n0 + ldp + q] : 0.0f;

			switch (nv) {
			case 1:
				gemm_panels(16, 1, m, &blk, ab, lda, cb, ldc, last);
				break;
			case 2:
				gemm_panels(8, 2, m, &blk, ab, lda, cb, ldc, last);
				break;
			case 3:
				gemm_panels(8, 3, m, &blk, ab, lda, cb, ldc, last);
				break;
			default:
				gemm_panels(4, 4, m, &blk, ab, lda, cb, ldc, last);
				break;
			}
		}
	}
}

#endif /* GEMM_HAVE_X86 */

void gemm_f32(int m, int n, int k, const float *a, size_t lda, const float *b, size_t ldb, float *c,
	      size_t ldc)
{
	assert(m >= 0 && n >= 0 && k >= 0);
	assert(lda >= (size_t)k && ldb >= (size_t)n && ldc >= (size_t)n);
	if (m == 0 || n == 0)
		return;
	if (k == 0) {
		for (int i = 0; i < m; i++)
			memset(c + (size_t)i * ldc, 0, (size_t)n * sizeof(*c));
		return;
	}
#ifdef GEMM_HAVE_X86
	if (gemm_runs_avx512()) {
		gemm_avx512(m, n, k, a, lda, b, ldb, c, ldc);
		return;
	}
#endif
	gemm_blas(m, n, k, a, lda, b, ldb, c, ldc);
}
