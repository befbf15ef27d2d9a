/*
 * layers.c - where a forward pass of seer's ResNet-18 spends its time: each
 * layer timed inside real passes, in network order, so that every layer
 * finds its weights as cold as the network leaves them.
 *
 * Built by `make check` in build/ as build/bench/layers (`make bench/layers` alone), or
 * by hand from the source tree after `make` in build/:
 *   gcc -O2 -fopenmp -Isrc -Ibuild $(pkg-config --cflags openblas) bench/layers.c \
 *       build/src/libseer.a $(pkg-config --libs openblas) -lz -lm -o layers
 * Usage: layers MODEL.seer [batch [threads [passes]]]
 * Prints the median over the passes (the first 5 are warm-up) of each
 * layer's time per image, in ms, and their sum.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "blas.h"
#include "nn.h"
#include "resnet.h"

#define MAX_LAYERS 32
#define WARMUP 5

static double now_ms(void)
{
	struct timespec t;

	clock_gettime(CLOCK_MONOTONIC, &t);
	return (double)t.tv_sec * 1e3 + (double)t.tv_nsec * 1e-6;
}

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return (x > y) - (x < y);
}

struct timing {
	int count;
	char name[MAX_LAYERS][48];
	double *ms[MAX_LAYERS]; /* [passes] */
};

/* Run one step and record it as layer *li of pass p. */
#define TIMED(t, li, p, label, stmt)                                                                         \
	do {                                                                                                 \
		double t0_ = now_ms();                                                                       \
		stmt;                                                                                        \
		(t)->ms[*(li)][p] = now_ms() - t0_;                                                          \
		snprintf((t)->name[*(li)], sizeof((t)->name[0]), "%s", label);                               \
		(*(li))++;                                                                                   \
	} while (0)

int main(int argc, char **argv)
{
	struct seer_err err = {0};
	struct resnet *m;
	struct timing tm = {0};
	int n = argc > 2 ? atoi(argv[2]) : 1, threads = argc > 3 ? atoi(argv[3]) : 1;
	int passes = argc > 4 ? atoi(argv[4]) : 40;
	size_t plane = 224 * 224, big;
	float *act[5], *scratch, *pooled, *logits;
	double total = 0;
	char label[48];

	blas_ensure_core(argv);
	blas_set_threads(1);
	if (argc < 2 || n < 1 || threads < 1 || passes <= WARMUP) {
		fprintf(stderr, "usage: layers MODEL.seer [batch [threads [passes > %d]]]\n", WARMUP);
		return 2;
	}
	if (resnet_open(argv[1], &m, &err) < 0) {
		fprintf(stderr, "layers: %s\n", err.msg);
		return 1;
	}
	big = 64 * (size_t)n * 112 * 112;
	for (int i = 0; i < 5; i++)
		act[i] = calloc(big, sizeof(float));
	scratch = calloc(resnet_scratch_floats(m, n, threads) + 16, sizeof(float));
	pooled = calloc(512 * (size_t)n, sizeof(float));
	logits = calloc(RESNET_CLASSES * (size_t)n, sizeof(float));
	for (int i = 0; i < MAX_LAYERS; i++)
		tm.ms[i] = calloc((size_t)passes, sizeof(double));
	if (act[4] == NULL || scratch == NULL || pooled == NULL || logits == NULL ||
	    tm.ms[MAX_LAYERS - 1] == NULL) {
		fprintf(stderr, "layers: out of memory\n");
		return 1;
	}
	/* a deterministic input in [-1, 1], [3][n][224][224] (CNHW, as the layers take it) */
	for (size_t i = 0; i < 3 * (size_t)n * plane; i++)
		act[0][i] = (float)((i * 2654435761u) % 1000) / 500.0f - 1.0f;

	for (int p = 0; p < passes; p++) {
		struct nn_shape s = {3, n, 224, 224};
		int li = 0, cur = 1;

		TIMED(&tm, &li, p, "stem 7x7/2",
		      nn_conv_forward(&m->stem, act[0], s, NULL, 1, act[4], scratch, threads));
		s = nn_conv_out_shape(&m->stem, s);
		TIMED(&tm, &li, p, "max-pool", nn_maxpool3x3s2(act[4], s, act[1], threads));
		s = nn_maxpool_out_shape(s);
		for (int b = 0; b < RESNET_BLOCKS; b++) {
			const struct resnet_block *blk = &m->blocks[b];
			float *x = act[cur], *t = act[cur % 4 + 1], *r = act[(cur + 1) % 4 + 1];
			float *o = act[(cur + 2) % 4 + 1];
			struct nn_shape mid = nn_conv_out_shape(&blk->a, s);
			static const char *algo[] = {"im2col", "1x1", "F(4x4)", "F(2x2)"};

			snprintf(label, sizeof(label), "block %d conv1 %d->%d @%d %s", b, blk->a.c, blk->a.k,
				 mid.h, algo[blk->a.algo]);
			TIMED(&tm, &li, p, label,
			      nn_conv_forward(&blk->a, x, s, NULL, 1, t, scratch, threads));
			if (blk->has_down) {
				snprintf(label, sizeof(label), "block %d downsample 1x1/2", b);
				TIMED(&tm, &li, p, label,
				      nn_conv_forward(&blk->down, x, s, NULL, 0, r, scratch, threads));
			} else {
				r = x;
			}
			snprintf(label, sizeof(label), "block %d conv2 %d->%d @%d %s", b, blk->b.c, blk->b.k,
				 mid.h, algo[blk->b.algo]);
			TIMED(&tm, &li, p, label,
			      nn_conv_forward(&blk->b, t, mid, r, 1, o, scratch, threads));
			s = nn_conv_out_shape(&blk->b, mid);
			cur = (cur + 2) % 4 + 1;
		}
		TIMED(&tm, &li, p, "avg-pool + fc", {
			nn_avgpool_global(act[cur], s, pooled);
			nn_linear(m->fc_weight, m->fc_bias, RESNET_CLASSES, 512, pooled, n, logits);
		});
		tm.count = li;
	}
	printf("# batch %d, %d thread(s), median of %d passes, ms per image\n", n, threads, passes - WARMUP);
	for (int l = 0; l < tm.count; l++) {
		double *v = tm.ms[l] + WARMUP, med;

		qsort(v, (size_t)(passes - WARMUP), sizeof(double), cmp_double);
		med = v[(passes - WARMUP) / 2] / n;
		total += med;
		printf("%-36s %7.3f\n", tm.name[l], med);
	}
	printf("%-36s %7.3f\n", "sum", total);
	resnet_free(m);
	return 0;
}
