/*
 * fuzz_img.c - libFuzzer target for the image module: sniff, decode (JPEG,
 * PNG, EXIF) and, when that succeeds, resize + crop + normalize; then the
 * one-pass img_decode_crop, exact and fast, which must agree with the
 * two-step path on the exact crop.
 *
 * Build: clang -g -O1 -fsanitize=fuzzer,address,undefined -Isrc fuzz/fuzz_img.c
 *        src/img_decode.c src/img_resize.c src/status.c
 *        $(pkg-config --cflags --libs libjpeg libpng) -lm -o fuzz_img
 * Seeds: fuzz/corpus/img (small JPEGs and PNGs of every kind we decode).
 */
#include "img.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static uint8_t crop[IMG_CROP * IMG_CROP * 3];
	static float tensor[3 * IMG_CROP * IMG_CROP];
	struct img_decode_opts opts;
	struct seer_err err = {0};
	struct img_rgb im;
	const char *name;
	int rc;

	img_sniff(data, size, &name);
	img_decode_opts_default(&opts);
	/* small caps keep iterations fast; the limit checks themselves are exercised */
	opts.limits.max_pixels = 1 << 20;
	opts.limits.max_side = 4096;
	/* the last byte, which rarely matters to a decoder, toggles EXIF rotation */
	opts.exif_rotate = size == 0 || (data[size - 1] & 1) == 0;
	rc = img_decode(data, size, &opts, &im, &err);
	if (rc != 0) {
		/* every failure must leave a message and a zeroed image */
		if (err.code != rc || err.msg[0] == '\0' || im.pixels != NULL)
			abort();
		return 0;
	}
	if (im.pixels == NULL || im.width == 0 || im.height == 0)
		abort();
	rc = img_resize_crop(&im, crop, &err);
	if (rc == 0)
		img_normalize(crop, tensor);
	img_rgb_free(&im);
	{
		static uint8_t one_pass[IMG_CROP * IMG_CROP * 3];

		/* what decoded in two steps decodes in one, to the same bytes */
		if (rc == 0 && (img_decode_crop(data, size, &opts, one_pass, NULL, &err) != 0 ||
				memcmp(one_pass, crop, sizeof(crop)) != 0))
			abort();
		opts.fast = 1;
		rc = img_decode_crop(data, size, &opts, one_pass, NULL, &err);
		if (rc != 0 && (err.code != rc || err.msg[0] == '\0'))
			abort();
	}
	return 0;
}
