/*
 * test_nn.c - every nn layer against a naive reference written for clarity
 * (double accumulation, NCHW indexing), on several shapes and batch sizes.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "nn.h"
#include "winograd.h"
#include "tap.h"

static unsigned rng_state = 1;

static float rnd(void)
{
	rng_state = rng_state * 1664525u + 1013904223u;
	return (float)((rng_state >> 8) & 0xffffff) / 8388608.0f - 1.0f;
}

static float *rnd_buf(size_t n)
{
	float *p = malloc(n * sizeof(float));

	for (size_t i = 0; i < n; i++)
		p[i] = rnd();
	return p;
}

/* Index of (c, n, y, x) in a CNHW tensor. */
static size_t at(struct nn_shape s, int c, int n, int y, int x)
{
	return (((size_t)c * s.n + n) * s.h + y) * s.w + x;
}

/* Largest |a - b| relative to the largest |b|. */
static double rel_err(const float *a, const float *b, size_t n)
{
	double diff = 0, mag = 1e-30;

	for (size_t i = 0; i < n; i++) {
		diff = fmax(diff, fabs((double)a[i] - b[i]));
		mag = fmax(mag, fabs((double)b[i]));
	}
	return diff / mag;
}

static void naive_conv(const struct nn_conv *cv, const float *w, const float *in, struct nn_shape is,
		       const float *res, int relu, float *out)
{
	struct nn_shape os = nn_conv_out_shape(cv, is);

	for (int k = 0; k < os.c; k++)
		for (int n = 0; n < os.n; n++)
			for (int oy = 0; oy < os.h; oy++)
				for (int ox = 0; ox < os.w; ox++) {
					double acc = cv->bias[k];

					for (int c = 0; c < is.c; c++)
						for (int i = 0; i < cv->kh; i++)
							for (int j = 0; j < cv->kw; j++) {
								int y = oy * cv->stride - cv->pad + i;
								int x = ox * cv->stride - cv->pad + j;

								if (y < 0 || y >= is.h || x < 0 || x >= is.w)
									continue;
								acc += (double)w[((k * cv->c + c) * cv->kh + i) * cv->kw + j] *
								       in[at(is, c, n, y, x)];
							}
					if (res)
						acc += res[at(os, k, n, oy, ox)];
					if (relu && acc < 0)
						acc = 0;
					out[at(os, k, n, oy, ox)] = (float)acc;
				}
}

static void check_conv(enum nn_conv_algo algo, int k, int c, int ks, int stride, int pad,
		       int n, int h, int w, int with_res, int relu, int threads)
{
	struct nn_shape is = { c, n, h, w }, os;
	float *weight = rnd_buf((size_t)k * c * ks * ks), *bias = rnd_buf((size_t)k);
	struct nn_conv cv = { k, c, ks, ks, stride, pad, algo, weight, bias };
	float *u = NULL;
	float *in, *res, *out, *ref, *scratch;
	size_t on;

	if (algo == NN_CONV_WINOGRAD) {
		u = malloc(wino_weight_floats(k, c) * sizeof(float));
		wino_weight_transform(weight, k, c, u);
		cv.weight = u;
	} else if (algo == NN_CONV_WINOGRAD2) {
		u = malloc(wino2_weight_floats(k, c) * sizeof(float));
		wino2_weight_transform(weight, k, c, u);
		cv.weight = u;
	}
	os = nn_conv_out_shape(&cv, is);
	on = (size_t)os.c * os.n * os.h * os.w;
	in = rnd_buf((size_t)c * n * h * w);
	res = with_res ? rnd_buf(on) : NULL;
	out = malloc(on * sizeof(float));
	ref = malloc(on * sizeof(float));
	scratch = malloc(nn_conv_scratch_floats(&cv, is, threads) * sizeof(float) + 4);
	nn_conv_forward(&cv, in, is, res, relu, out, scratch, threads);
	naive_conv(&cv, weight, in, is, res, relu, ref);
	{
		double e = rel_err(out, ref, on);

		tap_ok(e < 1e-5 || (algo != NN_CONV_IM2COL && algo != NN_CONV_1X1 && e < 1e-4),
		       "conv algo %d K%d C%d %dx%d/s%d p%d N%d %dx%d res%d relu%d threads %d: rel err %.2e",
		       algo, k, c, ks, ks, stride, pad, n, h, w, with_res, relu, threads, e);
	}
	free(weight);
	free(bias);
	free(u);
	free(in);
	free(res);
	free(out);
	free(ref);
	free(scratch);
}

static void check_maxpool(int c, int n, int h, int w, int threads)
{
	struct nn_shape is = { c, n, h, w }, os = nn_maxpool_out_shape(is);
	size_t on = (size_t)c * n * os.h * os.w;
	float *in = rnd_buf((size_t)c * n * h * w), *out = malloc(on * sizeof(float));
	int bad = 0;

	nn_maxpool3x3s2(in, is, out, threads);
	for (int p = 0; p < c; p++)
		for (int b = 0; b < n; b++)
			for (int oy = 0; oy < os.h; oy++)
				for (int ox = 0; ox < os.w; ox++) {
					float m = -INFINITY;

					for (int y = oy * 2 - 1; y <= oy * 2 + 1; y++)
						for (int x = ox * 2 - 1; x <= ox * 2 + 1; x++)
							if (y >= 0 && y < h && x >= 0 && x < w)
								m = fmaxf(m, in[at(is, p, b, y, x)]);
					bad += out[at(os, p, b, oy, ox)] != m;
				}
	tap_ok(bad == 0 && os.h == (h - 1) / 2 + 1, "maxpool C%d N%d %dx%d -> %dx%d (%d wrong)",
	       c, n, h, w, os.h, os.w, bad);
	free(in);
	free(out);
}

static void check_avgpool_linear(int c, int n, int hw, int k)
{
	struct nn_shape is = { c, n, hw, hw };
	float *in = rnd_buf((size_t)c * n * hw * hw), *pooled = malloc((size_t)c * n * sizeof(float));
	float *w = rnd_buf((size_t)k * c), *b = rnd_buf((size_t)k);
	float *out = malloc((size_t)n * k * sizeof(float)), *ref = malloc((size_t)n * k * sizeof(float));
	double pool_err = 0;

	nn_avgpool_global(in, is, pooled);
	for (int p = 0; p < c; p++)
		for (int i = 0; i < n; i++) {
			double s = 0;

			for (int y = 0; y < hw; y++)
				for (int x = 0; x < hw; x++)
					s += in[at(is, p, i, y, x)];
			pool_err = fmax(pool_err, fabs(s / (hw * hw) - pooled[(size_t)p * n + i]));
		}
	tap_ok(pool_err < 1e-6, "global average pool C%d N%d %dx%d: max err %.2e", c, n, hw, hw, pool_err);

	nn_linear(w, b, k, c, pooled, n, out);
	for (int i = 0; i < n; i++)
		for (int o = 0; o < k; o++) {
			double s = b[o];

			for (int p = 0; p < c; p++)
				s += (double)w[(size_t)o * c + p] * pooled[(size_t)p * n + i];
			ref[(size_t)i * k + o] = (float)s;
		}
	{
		double e = rel_err(out, ref, (size_t)n * k);

		tap_ok(e < 1e-5, "linear %d -> %d, N%d: rel err %.2e", c, k, n, e);
	}
	free(in);
	free(pooled);
	free(w);
	free(b);
	free(out);
	free(ref);
}

static void check_softmax(void)
{
	float x[2][4] = { { 1000.0f, 999.0f, 0.0f, -1000.0f }, { 0.5f, 0.5f, 0.5f, 0.5f } };
	double e1 = exp(-1.0), s = 1.0 + e1;

	nn_softmax(&x[0][0], 2, 4);
	tap_ok(fabs(x[0][0] - 1.0 / s) < 1e-6 && fabs(x[0][1] - e1 / s) < 1e-6 && x[0][3] == 0.0f,
	       "softmax is stable for large logits");
	tap_ok(fabs(x[1][0] - 0.25) < 1e-7 && fabs(x[1][3] - 0.25) < 1e-7, "softmax of equal logits is uniform");
}

/* nn_topk against a full sort on random values with ties. */
static void check_topk(void)
{
	float x[1000];
	int idx[20], bad = 0;

	srand(7);
	for (int round = 0; round < 50; round++) {
		for (int i = 0; i < 1000; i++)
			x[i] = (float)(rand() % 300); /* many ties */
		nn_topk(x, 1000, 20, idx);
		for (int j = 0; j < 20; j++) {
			/* idx[j] must be the j-th of (value desc, index asc) */
			int rank = 0;

			for (int i = 0; i < 1000; i++)
				rank += x[i] > x[idx[j]] || (x[i] == x[idx[j]] && i < idx[j]);
			bad += rank != j;
		}
	}
	nn_topk(x, 1000, 1, idx);
	for (int i = 0; i < 1000; i++)
		bad += x[i] > x[idx[0]];
	tap_ok(bad == 0, "nn_topk: the k largest, best first, ties by lower index (50 random rounds)");
}

int main(void)
{
	/* the convolutions ResNet-18 has, at reduced spatial size, plus odd shapes */
	check_conv(NN_CONV_IM2COL, 16, 3, 7, 2, 3, 1, 32, 32, 0, 1, 1);
	check_conv(NN_CONV_IM2COL, 16, 3, 7, 2, 3, 3, 31, 29, 0, 1, 1);
	check_conv(NN_CONV_IM2COL, 24, 16, 3, 1, 1, 2, 15, 9, 1, 1, 1);
	check_conv(NN_CONV_IM2COL, 32, 16, 3, 2, 1, 2, 14, 14, 0, 1, 1);
	check_conv(NN_CONV_IM2COL, 8, 8, 3, 2, 1, 1, 7, 7, 1, 0, 1);
	check_conv(NN_CONV_IM2COL, 8, 4, 3, 1, 1, 1, 1, 1, 0, 0, 1);
	check_conv(NN_CONV_1X1, 32, 16, 1, 2, 0, 2, 14, 14, 0, 0, 1);
	check_conv(NN_CONV_1X1, 32, 16, 1, 2, 0, 1, 7, 7, 0, 0, 1);
	check_conv(NN_CONV_1X1, 16, 8, 1, 1, 0, 3, 5, 6, 1, 1, 1);
	check_conv(NN_CONV_WINOGRAD, 16, 8, 3, 1, 1, 1, 14, 14, 0, 1, 1);
	check_conv(NN_CONV_WINOGRAD, 16, 24, 3, 1, 1, 3, 7, 7, 1, 1, 1);
	check_conv(NN_CONV_WINOGRAD, 8, 8, 3, 1, 1, 2, 9, 5, 1, 0, 1);
	check_conv(NN_CONV_IM2COL, 16, 3, 7, 2, 3, 2, 80, 80, 0, 1, 1); /* im2col in pieces */
	/* two threads: whole-matrix and piecewise im2col, 1x1, Winograd, maxpool */
	check_conv(NN_CONV_IM2COL, 16, 3, 7, 2, 3, 3, 64, 48, 1, 1, 2);
	check_conv(NN_CONV_IM2COL, 40, 16, 3, 1, 1, 2, 15, 9, 1, 1, 2);
	check_conv(NN_CONV_1X1, 40, 16, 1, 2, 0, 2, 14, 14, 1, 0, 2);
	check_conv(NN_CONV_WINOGRAD, 24, 16, 3, 1, 1, 2, 14, 14, 1, 1, 2);
	check_conv(NN_CONV_WINOGRAD2, 24, 16, 3, 1, 1, 1, 7, 7, 1, 1, 1);
	check_conv(NN_CONV_WINOGRAD2, 24, 16, 3, 1, 1, 3, 14, 13, 1, 0, 2);
	check_maxpool(5, 3, 31, 30, 2);
	check_maxpool(4, 2, 112, 112, 1);
	check_maxpool(3, 1, 7, 6, 1);
	check_maxpool(2, 1, 1, 1, 1);
	check_maxpool(3, 1, 7, 5, 1);
	check_maxpool(2, 2, 2, 3, 1);
	check_maxpool(1, 1, 1, 40, 1);
	check_maxpool(1, 1, 40, 1, 1);
	check_maxpool(2, 1, 5, 259, 2); /* more than one strip of output columns, odd width */
	check_avgpool_linear(64, 3, 7, 100);
	check_avgpool_linear(512, 1, 7, 1000);
	check_softmax();
	check_topk();
	return tap_done();
}
