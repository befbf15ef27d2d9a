/*
 * test_gemm.c - gemm_f32 against a double-precision reference, on both
 * implementations (OpenBLAS everywhere, the AVX-512 kernel where the CPU
 * has it), over shapes that cover every tile width, partial column blocks,
 * the few columns past whole vectors done as dot products (n = 17, 18,
 * 36, 49, 52, 113), row tails, depth blocks and padded leading dimensions.
 */
#include "../src/gemm.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "../src/blas.h"
#include "tap.h"

struct shape {
	int m, n, k;
	int pad; /* extra floats in every leading dimension */
};

static const struct shape shapes[] = {
	{1, 1, 1, 0},	   {3, 5, 7, 0},    {16, 16, 64, 0},   {17, 16, 64, 1},	 {33, 15, 513, 0},
	{8, 32, 100, 3},   {9, 31, 9, 0},   {8, 48, 200, 0},   {13, 47, 33, 5},	 {64, 49, 256, 0},
	{7, 49, 2304, 0},  {4, 64, 128, 0}, {5, 65, 129, 2},   {64, 196, 64, 0}, {30, 200, 147, 0},
	{512, 16, 512, 0}, {2, 1000, 3, 0}, {20, 17, 600, 16}, {6, 63, 1, 0},	 {3, 4, 0, 0},
};

static float frand(unsigned *seed)
{
	*seed = *seed * 1103515245u + 12345u;
	return (float)((*seed >> 8) & 0xffff) / 32768.0f - 1.0f;
}

/*
 * Floats placed so that the last one ends exactly where an inaccessible
 * page begins: a kernel that reads past the matrix faults.
 */
struct guarded {
	void *map;
	size_t len;
	float *data;
};

static float *guarded_alloc(struct guarded *g, size_t floats)
{
	size_t page = (size_t)sysconf(_SC_PAGESIZE);
	size_t bytes = (floats * sizeof(float) + page - 1) / page * page;

	g->len = bytes + page;
	g->map = mmap(NULL, g->len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (g->map == MAP_FAILED)
		return NULL;
	if (mprotect((char *)g->map + bytes, page, PROT_NONE) < 0)
		return NULL;
	g->data = (float *)((char *)g->map + bytes) - floats;
	return g->data;
}

/* One shape on the current implementation: returns the worst error relative to its bound. */
static double run_shape(const struct shape *s, int *pad_intact)
{
	size_t lda = (size_t)s->k + s->pad, ldb = (size_t)s->n + s->pad, ldc = (size_t)s->n + s->pad;
	struct guarded ga, gb;
	float *a = guarded_alloc(&ga, (size_t)s->m * lda + 1);
	float *b = guarded_alloc(&gb, (size_t)s->k * ldb + 1);
	float *c = malloc(((size_t)s->m * ldc + 1) * sizeof(float));
	double worst = 0;
	unsigned seed = (unsigned)(s->m * 131 + s->n * 7 + s->k);

	*pad_intact = 1;
	if (a == NULL || b == NULL || c == NULL) {
		tap_ok(0, "out of memory");
		exit(1);
	}
	for (size_t i = 0; i < (size_t)s->m * lda; i++)
		a[i] = frand(&seed);
	for (size_t i = 0; i < (size_t)s->k * ldb; i++)
		b[i] = frand(&seed);
	for (size_t i = 0; i < (size_t)s->m * ldc; i++)
		c[i] = 12345.0f; /* sentinel: padding must keep it, results must replace it */

	gemm_f32(s->m, s->n, s->k, a, lda, b, ldb, c, ldc);

	for (int i = 0; i < s->m; i++) {
		for (int j = 0; j < s->n; j++) {
			double ref = 0, mag = 0;

			for (int p = 0; p < s->k; p++) {
				double x = (double)a[i * lda + p] * b[p * ldb + j];

				ref += x;
				mag += fabs(x);
			}
			/* fp32 accumulation over k terms: well under 1e-6 * k of the magnitude */
			double bound = 1e-6 * (s->k + 1) * (mag + 1e-30);
			double err = fabs(c[i * ldc + j] - ref) / bound;

			if (!(err <= worst))
				worst = err; /* also catches NaN */
		}
		for (size_t j = (size_t)s->n; j < ldc; j++)
			if (c[i * ldc + j] != 12345.0f)
				*pad_intact = 0;
	}
	munmap(ga.map, ga.len);
	munmap(gb.map, gb.len);
	free(c);
	return worst;
}

static void run_all(enum gemm_impl impl, const char *name)
{
	if (gemm_use(impl) < 0) {
		printf("# %s: not available on this CPU\n", name);
		return;
	}
	tap_ok(strcmp(gemm_impl_name(), impl == GEMM_BLAS ? "openblas" : "avx512") == 0,
	       "%s: gemm_impl_name() says %s", name, gemm_impl_name());
	for (size_t i = 0; i < sizeof(shapes) / sizeof(shapes[0]); i++) {
		const struct shape *s = &shapes[i];
		int pad_intact;
		double worst = run_shape(s, &pad_intact);

		tap_ok(worst <= 1.0 && pad_intact,
		       "%s: %dx%d = %dx%d * %dx%d (ld +%d): error %.3f of bound%s", name, s->m, s->n, s->m,
		       s->k, s->k, s->n, s->pad, worst, pad_intact ? "" : ", wrote past n columns");
	}
}

int main(void)
{
	blas_set_threads(1);
	run_all(GEMM_BLAS, "openblas");
	if (gemm_have_avx512())
		run_all(GEMM_AVX512, "avx512");
	else
		tap_ok(gemm_use(GEMM_AVX512) < 0, "avx512 refused on a CPU without it");
	gemm_use(GEMM_AUTO);
	tap_ok(strcmp(gemm_impl_name(), gemm_have_avx512() ? "avx512" : "openblas") == 0, "auto picks %s",
	       gemm_impl_name());
	return tap_done();
}
