/*
 * gemm.h - the one matrix product every convolution goes through:
 * C = A * B on row-major float32 matrices, A being weights read in place.
 *
 * OpenBLAS packs both operands into its own buffers on every call. For the
 * shapes of a network at batch 1 (512 output channels times 16 to 64
 * columns, say) that packing is most of the work: every weight is copied
 * once and used only a few times. On CPUs with AVX-512 gemm_f32 therefore
 * runs its own kernel, which streams A straight from the loaded weight
 * file and keeps a small block of B in the L1 cache; elsewhere, or when
 * told to, it calls cblas_sgemm. Both give the same products up to the
 * order of summation.
 */
#ifndef SEER_GEMM_H
#define SEER_GEMM_H

#include <stddef.h>

/* Which implementation gemm_f32 uses. */
enum gemm_impl {
	GEMM_AUTO,   /* the AVX-512 kernel where the CPU has it, OpenBLAS otherwise (default) */
	GEMM_BLAS,   /* always cblas_sgemm */
	GEMM_AVX512, /* always the AVX-512 kernel; only valid where gemm_have_avx512() */
};

/* Non-zero when this CPU and build can run the AVX-512 kernel. */
int gemm_have_avx512(void);

/*
 * Choose the implementation for the whole process (tests and benchmarks
 * compare them). Returns 0, or -1 (and changes nothing) when GEMM_AVX512
 * is asked for where it cannot run. Not thread-safe: call before any
 * gemm_f32 runs.
 */
int gemm_use(enum gemm_impl impl);

/* Name of the implementation gemm_f32 runs now: "avx512" or "openblas". */
const char *gemm_impl_name(void);

/*
 * c[m][n] = a[m][k] * b[k][n], all row-major with leading dimensions lda,
 * ldb, ldc (in floats, at least k, n and n). c must not overlap a or b.
 * Runs on the calling thread only (OpenBLAS is expected to be set to one
 * thread, see blas.h); callers split bigger products across threads by
 * rows of c. Cannot fail; sizes are trusted (assert).
 */
void gemm_f32(int m, int n, int k, const float *a, size_t lda, const float *b, size_t ldb, float *c,
	      size_t ldc);

#endif
