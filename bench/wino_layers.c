/*
 * wino_layers.c - times ResNet-18's 3x3 stride-1 convolutions by im2col +
 * sgemm (nn.c's path), Winograd F(4x4, 3x3) and Winograd F(2x2, 3x3), with
 * the weights cold, as the network sees them.
 *
 * Built by `make check` in build/ as build/bench/wino_layers (`make bench/wino_layers` alone), or
 * by hand from the source tree after `make` in build/:
 *   gcc -O2 -fopenmp -Isrc $(pkg-config --cflags openblas) bench/wino_layers.c \
 *       build/src/libseer.a $(pkg-config --libs openblas) -lm -o wino_layers
 * On CPUs that Debian's OpenBLAS 0.3.21 misdetects, run with
 * OPENBLAS_CORETYPE=SkylakeX (or Haswell); the core in use is printed first.
 *
 * Usage: wino_layers [-m cold_mb] [-t threads] [min_runs [channels size batch]]
 * The optional shape replaces the table's, e.g. for profiling one layer;
 * -t runs one thread count instead of 1 and 2.
 *
 * Cold weights: in the network each layer's weights come back only after
 * the other layers' (some 80 MB) have streamed through the caches, and
 * this machine's share of L3 holds only a few tens of MB. So every method
 * cycles through enough distinct copies of its weights to cover cold_mb
 * (default 96; at least 4 copies), one copy per call. -m 0 uses one copy:
 * weights hot, for comparison.
 */
#include "../src/nn.h"
#include "../src/winograd.h"

#include <cblas.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

struct layer {
	int ch, hw; /* k = c = ch, h = w = hw */
};

static const struct layer layers[] = { { 64, 56 }, { 128, 28 }, { 256, 14 }, { 512, 7 } };
static const int batches[] = { 1, 8 };
static const int thread_counts[] = { 1, 2 };

enum { M_IM2COL, M_F4, M_F2, NMETHODS };
static const char *const method_names[NMETHODS] = { "im2col", "F4", "F2" };

/* The buffers of one layer shape: per method, `copies` weight sets of wlen floats. */
struct bench_bufs {
	int k, c, n, h, w, threads;
	float *bias, *in, *scratch;
	float *out[NMETHODS];
	float *weights[NMETHODS];
	size_t wlen[NMETHODS];
	int copies[NMETHODS];
	int next[NMETHODS]; /* the copy the next call uses */
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

/* One call of method m, out = relu(conv(in) + bias), on the next weight copy. */
static void run_method(struct bench_bufs *b, int m)
{
	const float *wt = b->weights[m] + (size_t)b->next[m] * b->wlen[m];

	b->next[m] = (b->next[m] + 1) % b->copies[m];
	switch (m) {
	case M_IM2COL: {
		struct nn_conv cv = { .k = b->k, .c = b->c, .kh = 3, .kw = 3, .stride = 1, .pad = 1,
				      .algo = NN_CONV_IM2COL, .weight = wt, .bias = b->bias };
		struct nn_shape is = { b->c, b->n, b->h, b->w };

		nn_conv_forward(&cv, b->in, is, NULL, 1, b->out[m], b->scratch, b->threads);
		break;
	}
	case M_F4:
		wino_conv3x3(wt, b->bias, b->k, b->c, b->in, b->n, b->h, b->w, NULL, 1, b->out[m],
			     b->scratch, b->threads);
		break;
	default:
		wino2_conv3x3(wt, b->bias, b->k, b->c, b->in, b->n, b->h, b->w, NULL, 1, b->out[m],
			      b->scratch, b->threads);
		break;
	}
}

/*
 * Median ms per call of every method over at least min_runs rounds (and
 * 0.5 s) after a warm-up round through all copies, the methods alternating
 * within each round so that drifts in the machine's speed (a shared VM) hit
 * all alike.
 */
static void time_methods(struct bench_bufs *b, int min_runs, double t_med[NMETHODS])
{
	enum { max_runs = 1024 };
	static double t[NMETHODS][max_runs];
	double start;
	int runs = 0;

	for (int m = 0; m < NMETHODS; m++)
		for (int i = 0; i < b->copies[m]; i++)
			run_method(b, m);
	start = now_ms();
	while (runs < max_runs && (runs < min_runs || now_ms() - start < 500.0)) {
		for (int m = 0; m < NMETHODS; m++) {
			double t0 = now_ms();

			run_method(b, m);
			t[m][runs] = now_ms() - t0;
		}
		runs++;
	}
	for (int m = 0; m < NMETHODS; m++) {
		qsort(t[m], runs, sizeof(double), cmp_double);
		t_med[m] = t[m][runs / 2];
	}
}

/* max |a - b| / max |b| over len floats: Winograd against im2col */
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

static float *alloc_floats(size_t len)
{
	return aligned_alloc(64, (len * sizeof(float) + 63) & ~(size_t)63);
}

static void fill(float *a, size_t len, unsigned seed)
{
	for (size_t i = 0; i < len; i++)
		a[i] = (float)(((i + seed) * 2654435761u) % 2001) / 1000.0f - 1.0f;
}

static void bufs_free(struct bench_bufs *b)
{
	free(b->bias);
	free(b->in);
	free(b->scratch);
	for (int m = 0; m < NMETHODS; m++) {
		free(b->out[m]);
		free(b->weights[m]);
	}
}

/* Allocates and fills b for its shape; returns 0, or -1 when out of memory. */
static int bufs_init(struct bench_bufs *b, double cold_mb)
{
	size_t in_len = (size_t)b->c * b->n * b->h * b->w;
	size_t out_len = (size_t)b->k * b->n * b->h * b->w, wt_len = (size_t)b->k * b->c * 9;
	struct nn_conv cv = { .k = b->k, .c = b->c, .kh = 3, .kw = 3, .stride = 1, .pad = 1,
			      .algo = NN_CONV_IM2COL };
	struct nn_shape is = { b->c, b->n, b->h, b->w };
	size_t scratch_len = nn_conv_scratch_floats(&cv, is, b->threads);
	size_t s4 = wino_scratch_floats(b->k, b->c, b->n, b->h, b->w, b->threads);
	size_t s2 = wino2_scratch_floats(b->k, b->c, b->n, b->h, b->w, b->threads);
	float *wt = alloc_floats(wt_len);

	if (s4 > scratch_len)
		scratch_len = s4;
	if (s2 > scratch_len)
		scratch_len = s2;
	b->bias = alloc_floats(b->k);
	b->in = alloc_floats(in_len);
	b->scratch = alloc_floats(scratch_len);
	b->wlen[M_IM2COL] = wt_len;
	b->wlen[M_F4] = wino_weight_floats(b->k, b->c);
	b->wlen[M_F2] = wino2_weight_floats(b->k, b->c);
	for (int m = 0; m < NMETHODS; m++) {
		double mb = b->wlen[m] * sizeof(float) / 1048576.0;
		int copies = cold_mb > 0 ? (int)(cold_mb / mb + 0.999) : 1;

		b->copies[m] = cold_mb > 0 && copies < 4 ? 4 : copies;
		b->next[m] = 0;
		b->out[m] = alloc_floats(out_len);
		b->weights[m] = alloc_floats(b->wlen[m] * b->copies[m]);
		if (!b->out[m] || !b->weights[m])
			goto fail;
	}
	if (!wt || !b->bias || !b->in || !b->scratch)
		goto fail;
	fill(b->bias, b->k, 7);
	fill(b->in, in_len, 11);
	fill(b->scratch, scratch_len, 13);
	/* the copies hold the same weights, so every call computes the same output */
	fill(wt, wt_len, 0);
	for (size_t i = 0; i < wt_len; i++)
		wt[i] *= 0.05f;
	for (int i = 0; i < b->copies[M_IM2COL]; i++)
		memcpy(b->weights[M_IM2COL] + i * wt_len, wt, wt_len * sizeof(float));
	for (int i = 0; i < b->copies[M_F4]; i++)
		wino_weight_transform(wt, b->k, b->c, b->weights[M_F4] + i * b->wlen[M_F4]);
	for (int i = 0; i < b->copies[M_F2]; i++)
		wino2_weight_transform(wt, b->k, b->c, b->weights[M_F2] + i * b->wlen[M_F2]);
	free(wt);
	return 0;
fail:
	free(wt);
	return -1;
}

int main(int argc, char **argv)
{
	const char *core = openblas_get_corename();
	const struct layer *ls = layers;
	const int *bs = batches, *ts = thread_counts;
	int nl = (int)(sizeof(layers) / sizeof(layers[0]));
	int nb = (int)(sizeof(batches) / sizeof(batches[0]));
	int nt = (int)(sizeof(thread_counts) / sizeof(thread_counts[0]));
	double cold_mb = 96;
	int min_runs = 20, one_threads = 0, opt;
	struct layer one;
	int one_n;

	while ((opt = getopt(argc, argv, "m:t:")) != -1) {
		if (opt == 'm')
			cold_mb = atof(optarg);
		else if (opt == 't')
			one_threads = atoi(optarg);
		else
			goto usage;
	}
	if (optind < argc)
		min_runs = atoi(argv[optind]);
	if (argc - optind == 4) {
		one.ch = atoi(argv[optind + 1]);
		one.hw = atoi(argv[optind + 2]);
		one_n = atoi(argv[optind + 3]);
		if (one.ch < 1 || one.hw < 1 || one_n < 1)
			goto usage;
		ls = &one;
		bs = &one_n;
		nl = nb = 1;
	} else if (argc - optind > 1) {
		goto usage;
	}
	if (one_threads > 0) {
		ts = &one_threads;
		nt = 1;
	} else if (one_threads < 0 || cold_mb < 0) {
		goto usage;
	}

	/* seer's threads each call a single-threaded sgemm (nn.h) */
	openblas_set_num_threads(1);
	printf("# OpenBLAS core %s, %d thread(s) per caller; weights cycled over >= %.0f MB per method\n",
	       core, openblas_get_num_threads(), cold_mb);
	if (strstr(core, "Prescott") || strstr(core, "Core2") || strstr(core, "Nehalem"))
		printf("# warning: slow OpenBLAS kernel; set OPENBLAS_CORETYPE=SkylakeX or Haswell\n");
	printf("# ms per call, medians of rounds alternating the methods; d4, d2: max|F - im2col| /\n"
	       "# max|im2col|; copies: weight sets cycled (im2col/F4/F2)\n");
	printf("%-10s %2s %2s %8s %8s %8s %7s %9s %-7s %7s %7s %s\n", "layer", "n", "t", "im2col", "F4",
	       "F2", "F2/F4", "F2/im2col", "best", "d4", "d2", "copies");
	for (int ti = 0; ti < nt; ti++)
		for (int bi = 0; bi < nb; bi++)
			for (int li = 0; li < nl; li++) {
				struct bench_bufs b = { 0 };
				size_t out_len;
				double t[NMETHODS];
				int best = 0;

				b.k = b.c = ls[li].ch;
				b.h = b.w = ls[li].hw;
				b.n = bs[bi];
				b.threads = ts[ti];
				if (bufs_init(&b, cold_mb) < 0) {
					fprintf(stderr, "wino_layers: out of memory\n");
					bufs_free(&b);
					return 1;
				}
				time_methods(&b, min_runs, t);
				for (int m = 1; m < NMETHODS; m++)
					if (t[m] < t[best])
						best = m;
				out_len = (size_t)b.k * b.n * b.h * b.w;
				printf("%3d@%2dx%-2d  %2d %2d %8.3f %8.3f %8.3f %6.2fx %8.2fx %-7s "
				       "%7.1e %7.1e %d/%d/%d\n",
				       b.c, b.h, b.w, b.n, b.threads, t[M_IM2COL], t[M_F4], t[M_F2],
				       t[M_F2] / t[M_F4], t[M_F2] / t[M_IM2COL], method_names[best],
				       rel_diff(b.out[M_F4], b.out[M_IM2COL], out_len),
				       rel_diff(b.out[M_F2], b.out[M_IM2COL], out_len), b.copies[M_IM2COL],
				       b.copies[M_F4], b.copies[M_F2]);
				fflush(stdout);
				bufs_free(&b);
			}
	return 0;
usage:
	fprintf(stderr, "usage: wino_layers [-m cold_mb] [-t threads] [min_runs [channels size batch]]\n");
	return 2;
}
