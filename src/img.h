/*
 * img.h - decoding uploaded images from memory and preparing them for the
 * network exactly as torchvision does on a PIL image.
 *
 * Every upload passes through here: img_decode() turns JPEG or PNG bytes
 * into 8-bit RGB (as PIL's Image.open(...).convert('RGB') would, with the
 * EXIF orientation applied by default), img_resize_crop() reproduces
 * Resize(256) + CenterCrop(224) bit for bit with Pillow 9.4's bilinear
 * resampling, and img_normalize() does ToTensor + Normalize.
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
};

/* Fill o with img_limits_default() and exif_rotate = 1. */
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

/*
 * ToTensor + Normalize(mean=[0.485,0.456,0.406], std=[0.229,0.224,0.225])
 * of a crop from img_resize_crop(), bit-exact with torch's float32 ops.
 * crop: [224][224][3] uint8; out: caller storage for [3][224][224] floats.
 */
void img_normalize(const uint8_t *crop, float *out);

#endif
