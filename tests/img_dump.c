/*
 * img_dump.c - run one image file through img_decode() + img_resize_crop()
 * and write the 224x224x3 uint8 crop, for tests/img_pil.py and benchmarks.
 */
#include "img.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static const char usage[] = "usage: img_dump IMAGE OUT.u8 [--no-exif-rotate] [--f32 OUT.f32] [--bench N]\n"
			    "  writes the 224x224x3 crop before normalisation; --f32 also writes the\n"
			    "  normalised 3x224x224 float32 tensor; --bench N times decode+crop N times\n";

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

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return (x > y) - (x < y);
}

int main(int argc, char **argv)
{
	static uint8_t crop[IMG_CROP * IMG_CROP * 3];
	static float tensor[3 * IMG_CROP * IMG_CROP];
	struct img_decode_opts opts;
	struct img_rgb im = {0};
	struct seer_err err = {0};
	const char *f32 = NULL;
	uint8_t *data = NULL;
	double *times = NULL;
	size_t len;
	int i, bench = 0, rc = 1;

	img_decode_opts_default(&opts);
	if (argc < 3) {
		fputs(usage, stderr);
		return 2;
	}
	for (i = 3; i < argc; i++) {
		if (strcmp(argv[i], "--no-exif-rotate") == 0) {
			opts.exif_rotate = 0;
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
			double t0 = now_ms(), t1;

			if (img_decode(data, len, &opts, &im, &err) != 0)
				goto fail;
			t1 = now_ms();
			if (img_resize_crop(&im, crop, &err) != 0)
				goto fail;
			img_normalize(crop, tensor);
			times[i] = now_ms() - t0;
			if (i == 0 || bench == 1)
				fprintf(stderr, "img_dump: %ux%u decode %.2f ms, resize+crop+norm %.2f ms\n",
					(unsigned)im.width, (unsigned)im.height, t1 - t0,
					times[i] - (t1 - t0));
			img_rgb_free(&im);
		}
		qsort(times, (size_t)bench, sizeof(*times), cmp_double);
		fprintf(stderr, "img_dump: decode+resize+crop+normalize median %.2f ms over %d runs\n",
			times[bench / 2], bench);
	}
	if (img_decode(data, len, &opts, &im, &err) != 0)
		goto fail;
	if (img_resize_crop(&im, crop, &err) != 0)
		goto fail;
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
	rc = 0;

fail:
	if (err.code != 0)
		fprintf(stderr, "img_dump: %s: %s (%s)\n", argv[1], err.msg, seer_status_str(err.code));
	img_rgb_free(&im);
	free(times);
	free(data);
	return rc;
}
