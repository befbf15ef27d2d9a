/*
 * img_dump.c - run one image file through img_decode_crop() (or img_decode()
 * + img_resize_crop()) and write the 224x224x3 uint8 crop, for
 * tests/img_pil.py, tests/img_fast.py and bench/bench_img.py.
 */
#include "img.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static const char usage[] =
	"usage: img_dump IMAGE OUT.u8 [--full|--both] [--no-exif-rotate] [--fast] [--size]\n"
	"                [--f32 OUT.f32] [--bench N] [--rss]\n"
	"  writes the 224x224x3 crop before normalisation, made by img_decode_crop()\n"
	"  or, with --full, by img_decode() + img_resize_crop(); --both makes it both\n"
	"  ways and fails (exit 3) unless they agree byte for byte. --fast decodes\n"
	"  JPEGs on the fast path (DCT scaling); --size prints the size img_decode()\n"
	"  returns as WIDTHxHEIGHT on stdout; --f32 also writes the normalised\n"
	"  3x224x224 float32 tensor; --bench N times decode+crop+normalize N times;\n"
	"  --rss prints the peak resident set size (VmHWM) at the end\n";

/* Read a whole file into *buf (caller frees). Returns 0 or SEER_EIO/SEER_ENOMEM. */
static int file_read(const char *path, uint8_t **buf, size_t *len)
{
	FILE *f = fopen(path, "rb");
	uint8_t *p = NULL;
	long n;

	if (f == NULL || fseek(f, 0, SEEK_END) != 0 || (n = ftell(f)) < 0 || fseek(f, 0, SEEK_SET) != 0)
		goto fail;
	p = malloc(n > 0 ? (size_t)n : 1);
	if (p == NULL || fread(p, 1, (size_t)n, f) != (size_t)n)
		goto fail;
	fclose(f);
	*buf = p;
	*len = (size_t)n;
	return 0;

fail:
	free(p);
	if (f != NULL)
		fclose(f);
	return SEER_EIO;
}

/* Write len bytes to path. Returns 0 or SEER_EIO. */
static int file_write(const char *path, const void *data, size_t len)
{
	FILE *f = fopen(path, "wb");

	if (f == NULL)
		return SEER_EIO;
	if (fwrite(data, 1, len, f) != len) {
		fclose(f);
		return SEER_EIO;
	}
	return fclose(f) == 0 ? 0 : SEER_EIO;
}

static double now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

/* The process's peak RSS in kB from /proc/self/status (Linux), or -1. */
static long peak_rss_kb(void)
{
	char line[256];
	long kb = -1;
	FILE *f = fopen("/proc/self/status", "r");

	if (f == NULL)
		return -1;
	while (fgets(line, sizeof(line), f) != NULL)
		if (sscanf(line, "VmHWM: %ld kB", &kb) == 1)
			break;
	fclose(f);
	return kb;
}

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return (x > y) - (x < y);
}

/* Make the crop by img_decode_crop() or (full) img_decode() + img_resize_crop(). */
static int make_crop(const uint8_t *data, size_t len, const struct img_decode_opts *opts, int full,
		     uint8_t *crop, struct seer_err *err)
{
	struct img_rgb im;
	int rc;

	if (!full)
		return img_decode_crop(data, len, opts, crop, NULL, err);
	rc = img_decode(data, len, opts, &im, err);
	if (rc == 0)
		rc = img_resize_crop(&im, crop, err);
	img_rgb_free(&im);
	return rc;
}

int main(int argc, char **argv)
{
	static uint8_t crop[IMG_CROP * IMG_CROP * 3], crop2[IMG_CROP * IMG_CROP * 3];
	static float tensor[3 * IMG_CROP * IMG_CROP];
	struct img_decode_opts opts;
	struct img_rgb im = {0};
	struct seer_err err = {0};
	const char *f32 = NULL;
	uint8_t *data = NULL;
	double *times = NULL;
	size_t len;
	int i, bench = 0, size = 0, full = 0, both = 0, rss = 0, rc = 1;

	img_decode_opts_default(&opts);
	if (argc < 3) {
		fputs(usage, stderr);
		return 2;
	}
	for (i = 3; i < argc; i++) {
		if (strcmp(argv[i], "--no-exif-rotate") == 0) {
			opts.exif_rotate = 0;
		} else if (strcmp(argv[i], "--fast") == 0) {
			opts.fast = 1;
		} else if (strcmp(argv[i], "--full") == 0) {
			full = 1;
		} else if (strcmp(argv[i], "--both") == 0) {
			both = 1;
		} else if (strcmp(argv[i], "--size") == 0) {
			size = 1;
		} else if (strcmp(argv[i], "--rss") == 0) {
			rss = 1;
		} else if (strcmp(argv[i], "--f32") == 0 && i + 1 < argc) {
			f32 = argv[++i];
		} else if (strcmp(argv[i], "--bench") == 0 && i + 1 < argc) {
			bench = atoi(argv[++i]);
		} else {
			fputs(usage, stderr);
			return 2;
		}
	}
	if (file_read(argv[1], &data, &len) != 0) {
		fprintf(stderr, "img_dump: cannot read %s\n", argv[1]);
		goto fail;
	}
	if (bench > 0) {
		times = calloc((size_t)bench, sizeof(*times));
		if (times == NULL)
			goto fail;
		for (i = 0; i < bench; i++) {
			double t0 = now_ms();

			if (make_crop(data, len, &opts, full, crop, &err) != 0)
				goto fail;
			img_normalize(crop, tensor);
			times[i] = now_ms() - t0;
		}
		qsort(times, (size_t)bench, sizeof(*times), cmp_double);
		fprintf(stderr, "img_dump: %s%s decode+resize+crop+normalize median %.2f ms over %d runs\n",
			full ? "img_decode+img_resize_crop" : "img_decode_crop", opts.fast ? " --fast" : "",
			times[bench / 2], bench);
	}
	if (size) {
		if (img_decode(data, len, &opts, &im, &err) != 0)
			goto fail;
		printf("%ux%u\n", (unsigned)im.width, (unsigned)im.height);
	}
	if (make_crop(data, len, &opts, full, crop, &err) != 0)
		goto fail;
	if (both) {
		if (make_crop(data, len, &opts, !full, crop2, &err) != 0)
			goto fail;
		if (memcmp(crop, crop2, sizeof(crop)) != 0) {
			fprintf(stderr,
				"img_dump: %s: img_decode_crop() and img_decode() + img_resize_crop() "
				"differ\n",
				argv[1]);
			rc = 3;
			goto fail;
		}
	}
	if (file_write(argv[2], crop, sizeof(crop)) != 0) {
		fprintf(stderr, "img_dump: cannot write %s\n", argv[2]);
		goto fail;
	}
	if (f32 != NULL) {
		img_normalize(crop, tensor);
		if (file_write(f32, tensor, sizeof(tensor)) != 0) {
			fprintf(stderr, "img_dump: cannot write %s\n", f32);
			goto fail;
		}
	}
	if (rss)
		fprintf(stderr, "img_dump: peak RSS %ld kB\n", peak_rss_kb());
	rc = 0;

fail:
	if (err.code != 0)
		fprintf(stderr, "img_dump: %s: %s (%s)\n", argv[1], err.msg, seer_status_str(err.code));
	img_rgb_free(&im);
	free(times);
	free(data);
	return rc;
}
