/*
 * img.h - decoding uploaded images from memory and preparing them for the
 * network exactly as torchvision does on a PIL image.
 *
 * Every upload passes through here: img_decode() turns JPEG or PNG bytes
 * into 8-bit RGB (as PIL's Image.open(...).convert('RGB') would, with the
 * EXIF orientation applied by default), img_resize_crop() reproduces
 * Resize(256) + CenterCrop(224) bit for bit with Pillow 9.4's bilinear
 * resampling, and img_normalize() does ToTensor + Normalize.
 * img_decode_crop() does the first two in one pass, with the same result,
 * decoding only what the crop reads and never holding the whole image.
 * With img_decode_opts.fast, large JPEGs are decoded at a reduced size
 * first: faster, and close to but not equal to the reference.
 *
 * Nothing here keeps global state; the functions are safe to call from
 * several threads on different images.
 */
#ifndef SEER_IMG_H
#define SEER_IMG_H

#include <stddef.h>
#include <stdint.h>

#include "status.h"

/*
 * Caps checked against the input size and the image header before any pixel
 * buffer is allocated. A zero field disables that cap.
 */
struct img_limits {
	uint64_t max_pixels; /* width * height */
	uint32_t max_side;   /* width and height each */
	size_t max_bytes;    /* encoded input length */
};

/* Fill lim with the defaults: 40 MP, 12000 px on a side, 50 MiB of input. */
void img_limits_default(struct img_limits *lim);

enum img_format { IMG_FORMAT_UNKNOWN, IMG_FORMAT_JPEG, IMG_FORMAT_PNG };

struct img_decode_opts {
	struct img_limits limits;
	int exif_rotate; /* 1 = apply the EXIF orientation of JPEGs (default) */
	/*
	 * 1 = the fast path for large JPEGs (default 0, the exact path).
	 * libjpeg-turbo's DCT scaling decodes the JPEG at 1/s of its size,
	 * s the largest of 8, 4, 2, 1 with 256 * s <= the shorter side (the
	 * same side whatever the EXIF orientation), so img_decode() returns
	 * ceil(width / s) x ceil(height / s), whose shorter side is still
	 * >= IMG_RESIZE, and the resize + crop work as usual on that. The
	 * limits still apply to the full size in the header.
	 *
	 * Where it is inexact: the scaled IDCT (1x1, 2x2 or 4x4 per block)
	 * stands in for the first part of Resize()'s antialiasing, so the
	 * 224x224 crop differs from the reference by a few levels: 35-70 dB
	 * PSNR against the exact path, median 49, on skimage's photos
	 * (tests/img_fast.py). Nothing else changes: ISLOW IDCT where a full
	 * 8x8 one is still used (4:2:0 chroma at 1/2), fancy upsampling,
	 * CMYK and EXIF as on the exact path, so the decode equals PIL's
	 * after Image.draft('RGB', (256, 256)), byte for byte. JDCT_IFAST and
	 * do_fancy_upsampling = FALSE were left out: at 1/2 to 1/8 they save
	 * nothing measurable (entropy decoding is all that is left), and they
	 * would change the images under 512 pixels, which s = 1 now decodes
	 * exactly as the exact path does. PNGs ignore it.
	 */
	int fast;
};

/* Fill o with img_limits_default(), exif_rotate = 1 and fast = 0. */
void img_decode_opts_default(struct img_decode_opts *o);

/* A decoded image: height rows of width RGB triplets, no padding. */
struct img_rgb {
	uint32_t width, height;
	uint8_t *pixels; /* [height][width][3], owned: release with img_rgb_free() */
};

/*
 * Tell the format from the magic bytes alone. Returns IMG_FORMAT_JPEG or
 * IMG_FORMAT_PNG, or IMG_FORMAT_UNKNOWN; if seen_name is not NULL it is set
 * to a static name of what was recognised ("JPEG", "PNG", "GIF", "WebP",
 * "BMP", "TIFF", "HEIC", ...) or to NULL when nothing was.
 */
enum img_format img_sniff(const void *data, size_t len, const char **seen_name);

/*
 * Decode the len bytes at data (JPEG or PNG, whatever any file name or
 * Content-Type claimed) into 8-bit RGB. opts may be NULL for the defaults.
 * Returns 0 and fills *out, which the caller then owns and releases with
 * img_rgb_free(). On failure returns SEER_EEMPTY, SEER_ETRUNC,
 * SEER_ECORRUPT, SEER_EUNSUPPORTED, SEER_ETOOLARGE, SEER_ENOMEM or
 * SEER_EINVAL, leaves *out zeroed and puts a one-line message in err
 * (which may be NULL). Corrupt-data warnings of libjpeg/libpng count as
 * failures: no half-decoded image is ever returned.
 */
int img_decode(const void *data, size_t len, const struct img_decode_opts *opts, struct img_rgb *out,
	       struct seer_err *err);

/* Free the pixels and zero *im. Accepts NULL and a zeroed struct. */
void img_rgb_free(struct img_rgb *im);

#define IMG_CROP 224   /* side of the network input */
#define IMG_RESIZE 256 /* shorter side after Resize() */

/*
 * Resize(256) then CenterCrop(224) as torchvision 0.14 does on a PIL image
 * (Pillow 9.4 bilinear with antialias, bit-exact). Only the pixels that
 * survive the crop are computed. out is caller storage of
 * IMG_CROP * IMG_CROP * 3 bytes, HWC RGB. Returns 0, or SEER_EINVAL for an
 * empty image, SEER_ETOOLARGE for a shape Pillow itself could not resize,
 * SEER_ENOMEM; out is then unspecified.
 */
int img_resize_crop(const struct img_rgb *im, uint8_t *out, struct seer_err *err);

/* The size of an image as the user sees it: after the EXIF orientation, before any scaling. */
struct img_size {
	uint32_t width, height;
};

/*
 * img_decode() then img_resize_crop() in one call, with the same 224x224x3
 * bytes as a result, but without the full-size image where it can be
 * avoided: a JPEG is decoded only over the rows and columns the crop reads
 * (libjpeg-turbo's jpeg_skip_scanlines() and jpeg_crop_scanline()) and,
 * unless its EXIF orientation transposes it, streamed a few rows at a time
 * into an img_cropper. opts (may be NULL) and the errors are as for
 * img_decode(), plus those of img_resize_crop(); every byte of the input
 * is still read and checked (skipped rows are entropy-decoded, PNG rows
 * inflated and CRC-checked), so a file img_decode() refuses is refused
 * here too. Non-interlaced PNGs are streamed row by row as well. out is
 * caller storage of IMG_CROP * IMG_CROP * 3 bytes, unspecified on failure.
 * size (may be NULL) receives the image's size on success.
 * This is the call for a service: on a 12 MP JPEG the process peaks at
 * about 7 MB instead of 42 MB, and it is about 25% faster.
 */
int img_decode_crop(const void *data, size_t len, const struct img_decode_opts *opts, uint8_t *out,
		    struct img_size *size, struct seer_err *err);

/* ---------------------------------------------------------------------- */
/* Streaming Resize(256) + CenterCrop(224), for decoders that deliver rows  */
/* ---------------------------------------------------------------------- */

/* Resampling weights of one axis for the output positions the crop keeps. */
struct img_axis {
	int ksize;   /* taps reserved per output position */
	int *bounds; /* [224][2]: first source index, number of taps */
	int32_t *k;  /* [224][ksize]: weights in 22-bit fixed point, >= 0 */
	/*
	 * The horizontal axis, when every position has exactly ksize taps (the
	 * source is at least ksize wide), also keeps them by tap for the vector
	 * pass: [224] byte offsets (3 * first source column, relative to
	 * col_first) then [ksize][224] weights. NULL otherwise.
	 */
	int32_t *by_tap;
};

/*
 * The state of one img_resize_crop() fed row by row. Only the window
 * [row_first, row_last) x [col_first, col_last) of the source is read;
 * the other fields are private.
 */
struct img_cropper {
	uint32_t width, height;	      /* source size */
	uint32_t row_first, row_last; /* source rows the crop reads */
	uint32_t col_first, col_last; /* source columns the crop reads */
	int need_h, need_v;	      /* 0 where the axis already has its resized length */
	struct img_axis ax, ay;	      /* weights; ax's bounds are relative to col_first */
	uint8_t *mid;		      /* [row_last - row_first][224][3] after the horizontal pass */
	uint32_t rows_done;	      /* window rows put so far */
};

/*
 * Plan the resize + crop of a width x height RGB image and allocate its
 * buffers (about (row_last - row_first) * 672 bytes). Returns 0, or
 * SEER_EINVAL (empty), SEER_ETOOLARGE or SEER_ENOMEM with c zeroed. On
 * success c is the caller's to release with img_cropper_free().
 */
int img_cropper_init(struct img_cropper *c, uint32_t width, uint32_t height, struct seer_err *err);

/*
 * Hand over source rows y .. y + n - 1: rows[i] points at the pixel in
 * column col_first of row y + i and the col_last - col_first RGB pixels
 * after it. Rows outside [row_first, row_last) are ignored, so a decoder
 * may pass everything; each window row must be passed exactly once, in any
 * order. The pointers are not kept.
 */
void img_cropper_put_rows(struct img_cropper *c, uint32_t y, uint32_t n, const uint8_t *const *rows);

/*
 * Write the [224][224][3] crop to out once every window row has been put
 * (asserted). c stays valid until img_cropper_free().
 */
void img_cropper_finish(struct img_cropper *c, uint8_t *out);

/* Free c's buffers and zero it. Accepts NULL and a zeroed struct. */
void img_cropper_free(struct img_cropper *c);

/*
 * Whether the horizontal pass may use its AVX-512 build (on by default
 * where the CPU has AVX-512; both builds give the same bytes). Returns the
 * previous setting. For tests and benchmarks; not thread-safe.
 */
int img_resize_use_simd(int on);

/*
 * ToTensor + Normalize(mean=[0.485,0.456,0.406], std=[0.229,0.224,0.225])
 * of a crop from img_resize_crop(), bit-exact with torch's float32 ops.
 * crop: [224][224][3] uint8; out: caller storage for [3][224][224] floats.
 */
void img_normalize(const uint8_t *crop, float *out);

#endif
