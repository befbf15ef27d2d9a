/*
 * wino_layers.c - times ResNet-18's 3x3 stride-1 convolutions by Winograd
 * F(4x4, 3x3) and by im2col + one cblas_sgemm, on one thread.
 *
 * Run with OPENBLAS_NUM_THREADS=1 and, on CPUs that Debian's OpenBLAS 0.3.21
 * misdetects, OPENBLAS_CORETYPE=SkylakeX (or Haswell); the core in use is
 * printed first. Usage: wino_layers [min_runs [channels size batch]]; the
 * optional shape replaces the table's, e.g. for profiling one layer.
 */
#include "../src/winograd.h"

#include <cblas.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

struct layer {
	int ch, hw; /* k = c = ch, h = w = hw */
};

static const struct layer layers[] = { { 64, 56 }, { 128, 28 }, { 256, 14 }, { 512, 7 } };
static const int batches[] = { 1, 8 };
static const struct layer *layers_in_use = layers;
static const int *batches_in_use = batches;

/* the buffers of one layer shape */
struct bench_bufs {
	int k, c, n, h, w;
	float *wt, *bias, *in, *out, *u, *scratch, *col;
};

static double now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1e3 + ts.tv_nsec * 1e-6;
}

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return (x > y) - (x < y);
}

/*
 * col[c*9 + ky*3 + kx][(n*h + y)*w + x] = in[c][n][y + ky - 1][x + kx - 1],
 * zero outside the image: [9c][n*h*w], the B operand of the im2col GEMM.
 */
static void im2col_cnhw(const float *in, int c, int n, int h, int w, float *col)
{
	size_t plane = (size_t)n * h * w;

	for (int ci = 0; ci < c; ci++)
		for (int ky = 0; ky < 3; ky++)
			for (int kx = 0; kx < 3; kx++) {
				float *dst = col + ((size_t)ci * 9 + ky * 3 + kx) * plane;
				int x0 = kx == 0 ? 1 : 0, x1 = kx == 2 ? w - 1 : w;

				for (int ni = 0; ni < n; ni++)
					for (int y = 0; y < h; y++, dst += w) {
						int yy = y + ky - 1;
						const float *src;

						if (yy < 0 || yy >= h || x1 <= x0) {
							memset(dst, 0, w * sizeof(float));
							continue;
						}
						src = in + (((size_t)ci * n + ni) * h + yy) * w;
						dst[0] = 0;
						dst[w - 1] = 0;
						memcpy(dst + x0, src + x0 + kx - 1, (x1 - x0) * sizeof(float));
					}
			}
}

/* The baseline: out = relu(W [k][9c] x col [9c][n*h*w] + bias). */
static void conv_im2col(struct bench_bufs *b)
{
	int cols = b->n * b->h * b->w;

	im2col_cnhw(b->in, b->c, b->n, b->h, b->w, b->col);
	cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, b->k, cols, 9 * b->c, 1.0f,
		    b->wt, 9 * b->c, b->col, cols, 0.0f, b->out, cols);
	for (int ki = 0; ki < b->k; ki++) {
		float *o = b->out + (size_t)ki * cols;

		for (int i = 0; i < cols; i++) {
			float v = o[i] + b->bias[ki];

			o[i] = v > 0 ? v : 0;
		}
	}
}

static void conv_wino(struct bench_bufs *b)
{
	wino_conv3x3(b->u, b->bias, b->k, b->c, b->in, b->n, b->h, b->w, NULL, 1, b->out,
		     b->scratch, 1);
}

/* The 36 GEMMs alone, unblocked, on the same sizes: what the transforms add to. */
static void gemms_only(struct bench_bufs *b)
{
	int t = b->n * ((b->h + 3) / 4) * ((b->w + 3) / 4);
	size_t kc = (size_t)b->k * b->c;
	float *v = b->scratch, *m = b->col;

	for (int xi = 0; xi < 36; xi++)
		cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, b->k, t, b->c, 1.0f,
			    b->u + xi * kc, b->c, v + (size_t)xi * b->c * t, t, 0.0f,
			    m + (size_t)xi * b->k * t, t);
}

/*
 * Median times in ms of fa and fb over at least min_runs runs each (and
 * 0.3 s) after warm-up, alternating the two so that drifts in the machine's
 * speed (a shared VM) hit both alike. fb may be NULL.
 */
static void time_pair(void (*fa)(struct bench_bufs *), void (*fb)(struct bench_bufs *),
		      struct bench_bufs *b, int min_runs, double *ta, double *tb)
{
	enum { max_runs = 2048 };
	static double t[2][max_runs];
	double start;
	int runs = 0;

	for (int i = 0; i < 3; i++) {
		fa(b);
		if (fb)
			fb(b);
	}
	start = now_ms();
	while (runs < max_runs && (runs < min_runs || now_ms() - start < 300.0)) {
		double t0 = now_ms();

		fa(b);
		t[0][runs] = now_ms() - t0;
		if (fb) {
			t0 = now_ms();
			fb(b);
			t[1][runs] = now_ms() - t0;
		}
		runs++;
	}
	qsort(t[0], runs, sizeof(double), cmp_double);
	*ta = t[0][runs / 2];
	if (fb) {
		qsort(t[1], runs, sizeof(double), cmp_double);
		*tb = t[1][runs / 2];
	}
}

/* max |a - b| / max |b| over len floats: Winograd against the baseline */
static double rel_diff(const float *a, const float *b, size_t len)
{
	double max_diff = 0, max_b = 0;

	for (size_t i = 0; i < len; i++) {
		double d = a[i] > b[i] ? a[i] - b[i] : b[i] - a[i];

		if (d > max_diff)
			max_diff = d;
		if ((b[i] > 0 ? b[i] : -b[i]) > max_b)
			max_b = b[i] > 0 ? b[i] : -b[i];
	}
	return max_b > 0 ? max_diff / max_b : max_diff;
}

static float *alloc_filled(size_t len)
{
	float *a = aligned_alloc(64, (len * sizeof(float) + 63) & ~(size_t)63);

	if (a)
		for (size_t i = 0; i < len; i++)
			a[i] = (float)((i * 2654435761u) % 2001) / 1000.0f - 1.0f;
	return a;
}

int main(int argc, char **argv)
{
	int min_runs = argc > 1 ? atoi(argv[1]) : 20;
	const char *core = openblas_get_corename();
	int nl = (int)(sizeof(layers) / sizeof(layers[0]));
	int nb = (int)(sizeof(batches) / sizeof(batches[0]));
	struct layer one;
	int one_n;

	if (argc == 5) {
		one.ch = atoi(argv[2]);
		one.hw = atoi(argv[3]);
		one_n = atoi(argv[4]);
		if (one.ch < 1 || one.hw < 1 || one_n < 1) {
			fprintf(stderr, "usage: wino_layers [min_runs [channels size batch]]\n");
			return 2;
		}
		layers_in_use = &one;
		batches_in_use = &one_n;
		nl = nb = 1;
	}
	double total_best[2] = { 0, 0 };

	printf("# OpenBLAS core %s, %d thread(s)\n", core, openblas_get_num_threads());
	if (strstr(core, "Prescott") || strstr(core, "Core2") || strstr(core, "Nehalem"))
		printf("# warning: slow OpenBLAS kernel; set OPENBLAS_CORETYPE=SkylakeX or Haswell\n");
	printf("# ms per call, median of runs alternating the two methods; 'gemm36' is the\n"
	       "# 36 Winograd GEMMs alone; 'diff' is max|wino - im2col| / max|im2col|\n");
	printf("%-10s %2s %9s %9s %9s %8s %-8s %s\n", "layer", "n", "im2col", "winograd",
	       "gemm36", "speedup", "best", "diff");
	for (int bi = 0; bi < nb; bi++)
		for (int li = 0; li < nl; li++) {
			struct bench_bufs b = { 0 };
			size_t in_len, wt_len, col_len, m_len, out_len;
			double t_im, t_wi, t_g;

			b.k = b.c = layers_in_use[li].ch;
			b.h = b.w = layers_in_use[li].hw;
			b.n = batches_in_use[bi];
			in_len = (size_t)b.c * b.n * b.h * b.w;
			wt_len = (size_t)b.k * b.c * 9;
			col_len = 9 * in_len;
			/* col doubles as M for gemms_only */
			m_len = 36 * (size_t)b.k * b.n * ((b.h + 3) / 4) * ((b.w + 3) / 4);
			if (m_len > col_len)
				col_len = m_len;
			b.wt = alloc_filled(wt_len);
			b.bias = alloc_filled(b.k);
			b.in = alloc_filled(in_len);
			b.out = alloc_filled((size_t)b.k * b.n * b.h * b.w);
			b.u = alloc_filled(wino_weight_floats(b.k, b.c));
			b.scratch = alloc_filled(wino_scratch_floats(b.k, b.c, b.n, b.h, b.w, 1) +
						 36 * (size_t)b.c * b.n * ((b.h + 3) / 4) *
							 ((b.w + 3) / 4));
			b.col = alloc_filled(col_len);
			if (!b.wt || !b.bias || !b.in || !b.out || !b.u || !b.scratch || !b.col) {
				fprintf(stderr, "wino_layers: out of memory\n");
				return 1;
			}
			wino_weight_transform(b.wt, b.k, b.c, b.u);

			time_pair(conv_im2col, conv_wino, &b, min_runs, &t_im, &t_wi);
			time_pair(gemms_only, NULL, &b, min_runs, &t_g, NULL);
			out_len = (size_t)b.k * b.n * b.h * b.w;
			conv_im2col(&b);
			memcpy(b.col, b.out, out_len * sizeof(float));
			conv_wino(&b);
			printf("%3d@%2dx%-2d  %2d %9.3f %9.3f %9.3f %7.2fx %-8s %.1e\n", b.c, b.h, b.w,
			       b.n, t_im, t_wi, t_g, t_im / t_wi, t_wi < t_im ? "winograd" : "im2col",
			       rel_diff(b.out, b.col, out_len));
			total_best[bi] += t_wi < t_im ? t_wi : t_im;
			free(b.wt);
			free(b.bias);
			free(b.in);
			free(b.out);
			free(b.u);
			free(b.scratch);
			free(b.col);
		}
	for (int bi = 0; bi < nb; bi++)
		printf("# n=%d: one layer of each shape, best method: %.3f ms per image\n",
		       batches_in_use[bi], total_best[bi] / batches_in_use[bi]);
	return 0;
}
