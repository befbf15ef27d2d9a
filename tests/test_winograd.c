/*
 * test_winograd.c - TAP test of the Winograd F(4x4, 3x3) and F(2x2, 3x3)
 * convolutions against a naive direct convolution accumulated in double.
 */
#include "../src/winograd.h"

#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* max |wino - ref| must stay under this times max |ref| */
#define TOLERANCE 1e-4
/* floats past the end of out and scratch that must come back untouched */
#define GUARD 64
#define GUARD_VALUE 12345.0f

struct shape {
	int k, c, n, h, w;
	int residual; /* 0 none, 1 separate buffer, 2 out == residual */
	int relu;
	int bias;
	const char *what;
};

static const struct shape shapes[] = {
	{ 64, 64, 1, 56, 56, 1, 1, 1, "resnet layer1 64@56x56, residual, relu" },
	{ 64, 64, 3, 56, 56, 0, 1, 1, "64@56x56 n=3, relu" },
	{ 128, 128, 1, 28, 28, 0, 1, 1, "resnet layer2 128@28x28, relu" },
	{ 128, 128, 3, 28, 28, 2, 1, 1, "128@28x28 n=3, residual in place, relu" },
	{ 256, 256, 1, 14, 14, 1, 1, 1, "resnet layer3 256@14x14 (partial tiles), residual, relu" },
	{ 256, 256, 3, 14, 14, 0, 0, 1, "256@14x14 n=3, no epilogue but bias" },
	{ 512, 512, 1, 7, 7, 1, 1, 1, "resnet layer4 512@7x7 (partial tiles), residual, relu" },
	{ 512, 512, 3, 7, 7, 0, 1, 1, "512@7x7 n=3, relu" },
	{ 5, 3, 3, 5, 9, 0, 0, 1, "k=5 c=3 5x9 n=3, plain" },
	{ 5, 3, 3, 5, 9, 1, 1, 1, "k=5 c=3 5x9 n=3, residual, relu" },
	{ 4, 7, 3, 1, 1, 0, 0, 1, "k=4 c=7 1x1 n=3, plain" },
	{ 4, 7, 1, 1, 1, 1, 1, 0, "k=4 c=7 1x1 n=1, residual, relu, no bias" },
	{ 1, 1, 1, 4, 4, 0, 0, 0, "k=1 c=1 4x4, one exact tile" },
	{ 3, 2, 2, 8, 8, 2, 1, 1, "k=3 c=2 8x8 n=2, residual in place, relu" },
	{ 6, 5, 2, 13, 6, 1, 0, 1, "k=6 c=5 13x6 n=2, residual" },
	{ 2, 9, 1, 3, 70, 0, 1, 1, "k=2 c=9 3x70 (one tile row, long), relu" },
	{ 16, 8, 2, 61, 2, 1, 1, 1, "k=16 c=8 61x2 n=2, residual, relu" },
	{ 8, 8, 5, 33, 33, 0, 1, 0, "k=8 c=8 33x33 n=5, relu, no bias" },
	{ 4, 3, 2, 9, 32, 1, 1, 1, "k=4 c=3 9x32 n=2 (8 tiles a row), residual, relu" },
	{ 3, 5, 1, 6, 64, 0, 1, 1, "k=3 c=5 6x64 (16 tiles a row), relu" },
	{ 5, 4, 2, 30, 29, 2, 0, 1, "k=5 c=4 30x29 n=2 (8 tiles, partial), residual in place" },
	{ 32, 32, 3, 40, 40, 1, 1, 1, "32@40x40 n=3, GEMM blocks straddle images" },
	{ 3, 4, 2, 2, 15, 1, 1, 1, "k=3 c=4 2x15 n=2 (F(2x2): one tile row, 8 tiles, partial)" },
	{ 5, 6, 3, 16, 16, 2, 1, 1, "k=5 c=6 16x16 n=3 (F(2x2): 8 tiles a row), residual in place" },
};

/* One Winograd variant's entry points (winograd.h). */
struct variant {
	const char *name;
	size_t (*weight_floats)(int k, int c);
	void (*weight_transform)(const float *w, int k, int c, float *u);
	size_t (*scratch_floats)(int k, int c, int n, int h, int w, int threads);
	void (*conv)(const float *u, const float *bias, int k, int c, const float *in, int n, int h,
		     int w, const float *residual, int relu, float *out, float *scratch, int threads);
};

static const struct variant variants[] = {
	{ "F(4x4)", wino_weight_floats, wino_weight_transform, wino_scratch_floats, wino_conv3x3 },
	{ "F(2x2)", wino2_weight_floats, wino2_weight_transform, wino2_scratch_floats, wino2_conv3x3 },
};

static uint64_t rng_state = 0x9e3779b97f4a7c15u;

/* uniform in [-1, 1) from xorshift64* */
static float rnd(void)
{
	rng_state ^= rng_state >> 12;
	rng_state ^= rng_state << 25;
	rng_state ^= rng_state >> 27;
	return (float)((rng_state * 0x2545f4914f6cdd1du >> 40) / (double)(1 << 23) - 1.0);
}

static void fill(float *a, size_t len, float scale)
{
	for (size_t i = 0; i < len; i++)
		a[i] = scale * rnd();
}

/* ref[k][n][h][w] = relu?(sum_c,ky,kx w * in + bias + res?), in double */
static void conv_ref(const float *wt, const float *bias, int k, int c, const float *in, int n,
		     int h, int w, const float *res, int relu, double *ref)
{
	for (int ki = 0; ki < k; ki++)
		for (int ni = 0; ni < n; ni++)
			for (int y = 0; y < h; y++)
				for (int x = 0; x < w; x++) {
					size_t o = (((size_t)ki * n + ni) * h + y) * w + x;
					double acc = bias ? bias[ki] : 0.0;

					for (int ci = 0; ci < c; ci++) {
						const float *g = wt + ((size_t)ki * c + ci) * 9;
						const float *plane = in + ((size_t)ci * n + ni) * h * w;

						for (int ky = 0; ky < 3; ky++) {
							int yy = y + ky - 1;

							if (yy < 0 || yy >= h)
								continue;
							for (int kx = 0; kx < 3; kx++) {
								int xx = x + kx - 1;

								if (xx < 0 || xx >= w)
									continue;
								acc += (double)g[3 * ky + kx] *
								       plane[(size_t)yy * w + xx];
							}
						}
					}
					if (res)
						acc += res[o];
					if (relu && acc < 0)
						acc = 0;
					ref[o] = acc;
				}
}

/* Runs one shape by variant va on this many threads; returns 1 if it passes. */
static int run_shape(int num, const struct variant *va, const struct shape *s, int threads)
{
	size_t in_len = (size_t)s->c * s->n * s->h * s->w;
	size_t out_len = (size_t)s->k * s->n * s->h * s->w;
	size_t scratch_len = va->scratch_floats(s->k, s->c, s->n, s->h, s->w, threads);
	size_t u_len = va->weight_floats(s->k, s->c);
	float *wt = malloc(sizeof(float) * (size_t)s->k * s->c * 9);
	float *bias = malloc(sizeof(float) * s->k);
	float *in = malloc(sizeof(float) * in_len);
	float *res = malloc(sizeof(float) * out_len);
	float *out = malloc(sizeof(float) * (out_len + GUARD));
	float *u = malloc(sizeof(float) * u_len);
	float *scratch = malloc(sizeof(float) * (scratch_len + GUARD));
	double *ref = malloc(sizeof(double) * out_len);
	double max_ref = 0, max_diff = 0;
	int ok = 1;

	if (!wt || !bias || !in || !res || !out || !u || !scratch || !ref) {
		printf("not ok %d - %s # out of memory\n", num, s->what);
		ok = 0;
		goto done;
	}
	/* He-style weights keep activations O(1) as in a trained ResNet */
	fill(wt, (size_t)s->k * s->c * 9, sqrtf(6.0f / (9.0f * s->c)));
	fill(bias, s->k, 0.1f);
	fill(in, in_len, 1.0f);
	fill(res, out_len, 1.0f);
	/* NaN scratch catches any read of scratch the call did not write first */
	for (size_t i = 0; i < scratch_len; i++)
		scratch[i] = NAN;
	for (size_t i = 0; i < GUARD; i++)
		scratch[scratch_len + i] = out[out_len + i] = GUARD_VALUE;

	conv_ref(wt, s->bias ? bias : NULL, s->k, s->c, in, s->n, s->h, s->w,
		 s->residual ? res : NULL, s->relu, ref);
	va->weight_transform(wt, s->k, s->c, u);
	if (s->residual == 2)
		memcpy(out, res, sizeof(float) * out_len);
	va->conv(u, s->bias ? bias : NULL, s->k, s->c, in, s->n, s->h, s->w,
		     s->residual == 1 ? res : s->residual == 2 ? out : NULL, s->relu, out,
		     scratch, threads);

	for (size_t i = 0; i < out_len; i++) {
		double d = fabs(out[i] - ref[i]);

		if (fabs(ref[i]) > max_ref)
			max_ref = fabs(ref[i]);
		if (!(d <= max_diff)) /* also catches NaN */
			max_diff = isnan(d) ? INFINITY : d;
	}
	for (size_t i = 0; i < GUARD; i++)
		if (out[out_len + i] != GUARD_VALUE || scratch[scratch_len + i] != GUARD_VALUE)
			ok = 0;
	if (!(max_diff <= TOLERANCE * max_ref))
		ok = 0;
	printf("%s %d - %s %s, %d thread%s # max|diff| %.3g, max|ref| %.3g, relative %.3g%s\n",
	       ok ? "ok" : "not ok", num, va->name, s->what, threads, threads > 1 ? "s" : "", max_diff,
	       max_ref,
	       max_ref > 0 ? max_diff / max_ref : 0.0, ok ? "" : " (or guard overwritten)");
done:
	free(wt);
	free(bias);
	free(in);
	free(res);
	free(out);
	free(u);
	free(scratch);
	free(ref);
	return ok;
}

/* u of a single delta filter is G e G^T, known in closed form for the centre tap. */
static int check_weight_transform(int num)
{
	float w[9] = { 0, 0, 0, 0, 1, 0, 0, 0, 0 };
	/* G's middle column, (G e G^T)[i][j] = g1[i] * g1[j] */
	static const double g1[6] = { 0, -1.0 / 6, 1.0 / 6, 1.0 / 12, -1.0 / 12, 0 };
	float u[36];
	int ok = wino_weight_floats(1, 1) == 36 && wino_weight_floats(3, 5) == 36 * 15;

	wino_weight_transform(w, 1, 1, u);
	for (int i = 0; i < 6; i++)
		for (int j = 0; j < 6; j++)
			if (fabs(u[6 * i + j] - g1[i] * g1[j]) > 1e-7)
				ok = 0;
	printf("%s %d - F(4x4) weight transform of a centre delta filter\n", ok ? "ok" : "not ok", num);
	return ok;
}

/* The same for F(2x2), whose G has middle column (0, 1/2, -1/2, 0). */
static int check_weight_transform2(int num)
{
	float w[9] = { 0, 0, 0, 0, 1, 0, 0, 0, 0 };
	static const double g1[4] = { 0, 0.5, -0.5, 0 };
	float u[16];
	int ok = wino2_weight_floats(1, 1) == 16 && wino2_weight_floats(3, 5) == 16 * 15;

	wino2_weight_transform(w, 1, 1, u);
	for (int i = 0; i < 4; i++)
		for (int j = 0; j < 4; j++)
			if (u[4 * i + j] != g1[i] * g1[j]) /* exact: powers of two */
				ok = 0;
	printf("%s %d - F(2x2) weight transform of a centre delta filter\n", ok ? "ok" : "not ok", num);
	return ok;
}

int main(void)
{
	int nshapes = (int)(sizeof(shapes) / sizeof(shapes[0]));
	int nvariants = (int)(sizeof(variants) / sizeof(variants[0]));
	int failed = 0, num = 3;

	/* per variant, every shape on one thread, then on two (and three, for uneven shares) */
	printf("1..%d\n", 3 * nshapes * nvariants + 2);
	failed += !check_weight_transform(1);
	failed += !check_weight_transform2(2);
	for (int v = 0; v < nvariants; v++)
		for (int threads = 1; threads <= 3; threads++)
			for (int i = 0; i < nshapes; i++)
				failed += !run_shape(num++, &variants[v], &shapes[i], threads);
	return failed ? 1 : 0;
}
