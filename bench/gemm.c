/*
 * gemm.c - how close gemm_f32 comes to this core's limits on the products a
 * forward pass at batch 1 runs: each shape timed with its weights cold
 * (read from memory: calls cycle through copies of A larger than the L3
 * cache) and hot (the same A every call, so it stays in L2 when it fits),
 * next to the core's peak rate of fused multiply-adds.
 *
 * Built by `make check` in build/ as build/bench/gemm (`make bench/gemm` alone), or
 * by hand from the source tree after `make` in build/:
 *   gcc -O2 -Isrc -Ibuild $(pkg-config --cflags openblas) bench/gemm.c \
 *       build/src/libseer.a $(pkg-config --libs openblas) -lm -o gemm-bench
 * Usage: gemm-bench [rounds]   (default 30; best of the rounds is printed)
 *
 * A product that is much slower cold than hot waits on memory; one that is
 * about as slow hot is bound by the core, and the peak says how much room
 * the kernel leaves.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "gemm.h"

#if defined(__x86_64__) && defined(__GNUC__)
#include <immintrin.h>
#define HAVE_X86 1
#endif

#define COLD_BYTES ((size_t)512 << 20) /* twice this machine's L3 */
#define CALLS 64		       /* products timed per round, each way */

static double now_ms(void)
{
	struct timespec t;

	clock_gettime(CLOCK_MONOTONIC, &t);
	return (double)t.tv_sec * 1e3 + (double)t.tv_nsec * 1e-6;
}

#ifdef HAVE_X86
/* GFLOP/s of 12 independent chains of 16-lane FMAs, registers only. */
__attribute__((target("avx512f"))) static double peak_gflops(void)
{
	const long steps = 20000000;
	__m512 acc[12], x = _mm512_set1_ps(0.999f), y = _mm512_set1_ps(1e-3f);
	double best = 0;
	float sink = 0;

	for (int r = 0; r < 3; r++) {
		double t0, ms;

		for (int j = 0; j < 12; j++)
			acc[j] = _mm512_set1_ps((float)j);
		t0 = now_ms();
		for (long i = 0; i < steps; i++)
#pragma GCC unroll 12
			for (int j = 0; j < 12; j++)
				acc[j] = _mm512_fmadd_ps(acc[j], x, y);
		ms = now_ms() - t0;
		for (int j = 0; j < 12; j++)
			sink += _mm512_reduce_add_ps(acc[j]);
		if (steps * 12.0 * 32 / ms / 1e6 > best)
			best = steps * 12.0 * 32 / ms / 1e6;
	}
	return sink == 12345.0f ? 0 : best; /* keeps the chains alive */
}
#endif

struct shape {
	int m, n, k;
	const char *use;
};

/* The products of one pass at batch 1 (nn.c, winograd.c), from the last stage back. */
static const struct shape shapes[] = {
	{512, 16, 512, "stage 4, 512@7x7 F(2x2): one of 16 points"},
	{512, 49, 2304, "stage 4, 256->512 stride 2, im2col"},
	{256, 49, 256, "stage 3, 256@14x14 F(2x2): one of 16"},
	{256, 196, 1152, "stage 3, 128->256 stride 2, im2col"},
	{128, 49, 128, "stage 2, 128@28x28 F(4x4): one of 36"},
	{128, 448, 576, "stage 2, 64->128 stride 2, im2col: a chunk"},
	{64, 98, 64, "stage 1, 64@56x56 F(4x4): one of 36 (half)"},
	{64, 1680, 147, "stem 7x7/2, im2col: a chunk (15 rows)"},
};

/* count floats in [-0.5, 0.5) from a xorshift generator (rand() is slow for 512 MB) */
static float *random_floats(size_t count)
{
	float *p = malloc(count * sizeof(float));
	uint32_t x = 2463534242u;

	for (size_t i = 0; p != NULL && i < count; i++) {
		x ^= x << 13;
		x ^= x >> 17;
		x ^= x << 5;
		p[i] = (float)(x >> 8) / 16777216.0f - 0.5f;
	}
	return p;
}

int main(int argc, char **argv)
{
	int rounds = argc > 1 ? atoi(argv[1]) : 30;

	if (rounds < 1) {
		fprintf(stderr, "usage: gemm-bench [rounds >= 1]\n");
		return 2;
	}
	printf("# gemm_f32 (%s), one thread, best of %d rounds\n", gemm_impl_name(), rounds);
#ifdef HAVE_X86
	if (gemm_have_avx512())
		printf("# peak of this core: %.0f GFLOP/s (16-lane FMAs, registers only)\n", peak_gflops());
#endif
	printf("%-14s %-42s %9s %8s %9s %8s\n", "m x n x k", "in the network", "cold ms", "GFLOP/s", "hot ms",
	       "GFLOP/s");
	for (size_t s = 0; s < sizeof(shapes) / sizeof(shapes[0]); s++) {
		const struct shape *sh = &shapes[s];
		size_t a_floats = (size_t)sh->m * sh->k;
		int copies = (int)(COLD_BYTES / (a_floats * sizeof(float))) + 1;
		float *a = random_floats(a_floats * (size_t)copies);
		float *b = random_floats((size_t)sh->k * sh->n),
		      *c = malloc((size_t)sh->m * sh->n * sizeof(float));
		double flop = 2.0 * sh->m * sh->n * sh->k, cold = 1e30, hot = 1e30;
		char dims[32];

		if (a == NULL || b == NULL || c == NULL) {
			fprintf(stderr, "gemm-bench: out of memory\n");
			return 1;
		}
		/* cold: the next copy each call, so a copy comes back only after COLD_BYTES of others */
		for (int r = 0, q = 0; r < rounds; r++) {
			double t0 = now_ms(), ms;

			for (int i = 0; i < CALLS; i++, q = (q + 1) % copies)
				gemm_f32(sh->m, sh->n, sh->k, a + (size_t)q * a_floats, (size_t)sh->k, b,
					 (size_t)sh->n, c, (size_t)sh->n);
			ms = (now_ms() - t0) / CALLS;
			if (ms < cold)
				cold = ms;
			t0 = now_ms();
			for (int i = 0; i < CALLS; i++)
				gemm_f32(sh->m, sh->n, sh->k, a, (size_t)sh->k, b, (size_t)sh->n, c,
					 (size_t)sh->n);
			ms = (now_ms() - t0) / CALLS;
			if (ms < hot)
				hot = ms;
		}
		snprintf(dims, sizeof(dims), "%dx%dx%d", sh->m, sh->n, sh->k);
		printf("%-14s %-42s %9.4f %8.0f %9.4f %8.0f\n", dims, sh->use, cold, flop / cold / 1e6, hot,
		       flop / hot / 1e6);
		free(a);
		free(b);
		free(c);
	}
	return 0;
}
