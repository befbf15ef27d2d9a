/*
 * test_img.c - TAP unit tests of the image module: hostile and valid JPEG
 * and PNG inputs built in the test (libjpeg/libpng encoders, hand-made
 * chunks), EXIF orientation, and the resize against a naive reference.
 */
#include "img.h"
#include "tap.h"

#include <math.h>
#include <setjmp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

#include <jpeglib.h>
#include <png.h>
#include <zlib.h>

/* ---------------------------------------------------------------------- */
/* Growing byte buffers                                                     */
/* ---------------------------------------------------------------------- */

struct buf {
	uint8_t *p;
	size_t n, cap;
};

static void buf_put(struct buf *b, const void *d, size_t n)
{
	if (b->n + n > b->cap) {
		b->cap = (b->n + n) * 2 + 64;
		b->p = realloc(b->p, b->cap);
		if (b->p == NULL) {
			perror("realloc");
			abort();
		}
	}
	memcpy(b->p + b->n, d, n);
	b->n += n;
}

static void put_be32(uint8_t *p, uint32_t v)
{
	p[0] = (uint8_t)(v >> 24);
	p[1] = (uint8_t)(v >> 16);
	p[2] = (uint8_t)(v >> 8);
	p[3] = (uint8_t)v;
}

/*
 * A deterministic test pattern: triangle waves (no wrap-around edges, so
 * chroma subsampling costs little) plus a luminance checkerboard.
 */
static uint8_t pattern(size_t x, size_t y, int c)
{
	size_t t = (x * 7 + y * 3 + (size_t)c * 50) % 400;

	return (uint8_t)((t < 200 ? t : 400 - t) + ((x / 5 + y / 3) & 1) * 40);
}

static uint8_t *pattern_image(size_t w, size_t h, int comps)
{
	uint8_t *p = malloc(w * h * (size_t)comps);
	size_t x, y;
	int c;

	for (y = 0; y < h; y++)
		for (x = 0; x < w; x++)
			for (c = 0; c < comps; c++)
				p[(y * w + x) * comps + c] = pattern(x, y, c);
	return p;
}

static uint64_t rng_state = 0x9e3779b97f4a7c15ull;

static uint32_t rng_next(void)
{
	rng_state ^= rng_state << 13;
	rng_state ^= rng_state >> 7;
	rng_state ^= rng_state << 17;
	return (uint32_t)(rng_state >> 11);
}

/* ---------------------------------------------------------------------- */
/* JPEG encoding with libjpeg                                              */
/* ---------------------------------------------------------------------- */

struct jpeg_enc {
	int w, h, comps;
	J_COLOR_SPACE in_cs, jpeg_cs; /* jpeg_cs JCS_UNKNOWN: libjpeg's default */
	int quality;
	int progressive;
	int restart_rows;
	int arith;
	const jpeg_scan_info *scans;
	int nscans;
	const uint8_t *app1;
	size_t app1_len;
	int samp_h, samp_v; /* luma sampling factors (chroma 1x1); 0: libjpeg's 2x2 */
};

/* Encode px ([h][w][comps]); returns a malloc'd JPEG of *len bytes. */
static uint8_t *jpeg_encode(const struct jpeg_enc *e, const uint8_t *px, size_t *len)
{
	struct jpeg_compress_struct c;
	struct jpeg_error_mgr jerr;
	unsigned char *out = NULL;
	unsigned long outlen = 0;
	int y;

	c.err = jpeg_std_error(&jerr);
	jpeg_create_compress(&c);
	jpeg_mem_dest(&c, &out, &outlen);
	c.image_width = (JDIMENSION)e->w;
	c.image_height = (JDIMENSION)e->h;
	c.input_components = e->comps;
	c.in_color_space = e->in_cs;
	jpeg_set_defaults(&c);
	if (e->jpeg_cs != JCS_UNKNOWN)
		jpeg_set_colorspace(&c, e->jpeg_cs);
	else if (e->in_cs == JCS_UNKNOWN)
		jpeg_set_colorspace(&c, JCS_UNKNOWN);
	jpeg_set_quality(&c, e->quality ? e->quality : 90, TRUE);
	if (e->samp_h != 0) {
		c.comp_info[0].h_samp_factor = e->samp_h;
		c.comp_info[0].v_samp_factor = e->samp_v;
	}
	if (e->progressive)
		jpeg_simple_progression(&c);
	if (e->scans != NULL) {
		c.scan_info = e->scans;
		c.num_scans = e->nscans;
	}
	c.restart_in_rows = e->restart_rows;
	c.arith_code = e->arith ? TRUE : FALSE;
	jpeg_start_compress(&c, TRUE);
	if (e->app1 != NULL)
		jpeg_write_marker(&c, JPEG_APP0 + 1, e->app1, (unsigned)e->app1_len);
	for (y = 0; y < e->h; y++) {
		JSAMPROW row = (JSAMPROW)(px + (size_t)y * e->w * e->comps);

		jpeg_write_scanlines(&c, &row, 1);
	}
	jpeg_finish_compress(&c);
	jpeg_destroy_compress(&c);
	*len = outlen;
	return out;
}

/* A w x h RGB pattern as a baseline JPEG. */
static uint8_t *jpeg_rgb(int w, int h, int quality, size_t *len)
{
	struct jpeg_enc e = {
		.w = w, .h = h, .comps = 3, .in_cs = JCS_RGB, .jpeg_cs = JCS_UNKNOWN, .quality = quality};
	uint8_t *px = pattern_image((size_t)w, (size_t)h, 3), *j;

	j = jpeg_encode(&e, px, len);
	free(px);
	return j;
}

/* Offset of the first marker 0xFF code in a JPEG, or 0. */
static size_t jpeg_find_marker(const uint8_t *p, size_t n, uint8_t code)
{
	size_t i;

	for (i = 2; i + 1 < n; i++)
		if (p[i] == 0xff && p[i + 1] == code)
			return i;
	return 0;
}

/* ---------------------------------------------------------------------- */
/* PNG encoding: libpng for valid files, raw chunks for hostile ones        */
/* ---------------------------------------------------------------------- */

static void png_write_buf(png_structp png, png_bytep d, size_t n)
{
	buf_put(png_get_io_ptr(png), d, n);
}

static void png_flush_buf(png_structp png)
{
	(void)png;
}

struct png_enc {
	uint32_t w, h;
	int depth, color, interlace;
	const png_color *plte;
	int nplte;
	const uint8_t *trns;
	int ntrns;
	png_color_16 trns_gray;
	int has_trns_gray;
};

/* Encode rows of packed samples (row y at rows + y * rowbytes) with libpng. */
static uint8_t *png_encode(const struct png_enc *e, const uint8_t *rows, size_t rowbytes, size_t *len)
{
	png_structp png = png_create_write_struct(PNG_LIBPNG_VER_STRING, NULL, NULL, NULL);
	png_infop info = png_create_info_struct(png);
	struct buf b = {0};
	png_bytep *rp = malloc(e->h * sizeof(*rp));
	uint32_t y;

	if (setjmp(png_jmpbuf(png))) {
		fprintf(stderr, "png_encode failed\n");
		abort();
	}
	png_set_write_fn(png, &b, png_write_buf, png_flush_buf);
	png_set_check_for_invalid_index(png, 0);
	png_set_IHDR(png, info, e->w, e->h, e->depth, e->color,
		     e->interlace ? PNG_INTERLACE_ADAM7 : PNG_INTERLACE_NONE, PNG_COMPRESSION_TYPE_DEFAULT,
		     PNG_FILTER_TYPE_DEFAULT);
	if (e->plte != NULL)
		png_set_PLTE(png, info, e->plte, e->nplte);
	if (e->trns != NULL)
		png_set_tRNS(png, info, e->trns, e->ntrns, NULL);
	if (e->has_trns_gray)
		png_set_tRNS(png, info, NULL, 0, &e->trns_gray);
	png_write_info(png, info);
	for (y = 0; y < e->h; y++)
		rp[y] = (png_bytep)(rows + y * rowbytes);
	png_write_image(png, rp);
	png_write_end(png, NULL);
	png_destroy_write_struct(&png, &info);
	free(rp);
	*len = b.n;
	return b.p;
}

static void png_raw_chunk(struct buf *b, const char *type, const void *data, size_t n)
{
	uint8_t hdr[8], crc[4];
	uLong c = crc32(0, (const Bytef *)type, 4);

	put_be32(hdr, (uint32_t)n);
	memcpy(hdr + 4, type, 4);
	buf_put(b, hdr, 8);
	if (n) {
		buf_put(b, data, n);
		c = crc32(c, data, (uInt)n); /* crc32(c, NULL, 0) would reset c */
	}
	put_be32(crc, (uint32_t)c);
	buf_put(b, crc, 4);
}

static void png_raw_ihdr(struct buf *b, uint32_t w, uint32_t h, int depth, int color)
{
	uint8_t d[13] = {0};

	buf_put(b, "\x89PNG\r\n\x1a\n", 8);
	put_be32(d, w);
	put_be32(d + 4, h);
	d[8] = (uint8_t)depth;
	d[9] = (uint8_t)color;
	png_raw_chunk(b, "IHDR", d, 13);
}

/* zlib-compress n bytes of src into a new buffer (*zlen bytes). */
static uint8_t *zpack(const uint8_t *src, size_t n, size_t *zlen)
{
	uLongf cap = compressBound((uLong)n);
	uint8_t *z = malloc(cap);

	if (compress2(z, &cap, src, (uLong)n, 9) != Z_OK)
		abort();
	*zlen = cap;
	return z;
}

/* An 8-bit RGB w x h PNG (filter 0) built by hand, with an optional extra chunk. */
static uint8_t *png_raw_rgb(uint32_t w, uint32_t h, const char *extra_type, const uint8_t *extra,
			    size_t extra_len, size_t *len)
{
	struct buf b = {0};
	size_t rb = (size_t)w * 3 + 1, y, zlen;
	uint8_t *raw = calloc(h, rb), *z;

	for (y = 0; y < h; y++)
		memcpy(raw + y * rb + 1, (uint8_t[]){10, 20, 30}, w >= 1 ? 3 : 0);
	z = zpack(raw, rb * h, &zlen);
	png_raw_ihdr(&b, w, h, 8, 2);
	if (extra_type != NULL)
		png_raw_chunk(&b, extra_type, extra, extra_len);
	png_raw_chunk(&b, "IDAT", z, zlen);
	png_raw_chunk(&b, "IEND", NULL, 0);
	free(raw);
	free(z);
	*len = b.n;
	return b.p;
}

/* Offset of chunk `type` (its length field) in a PNG, or 0. */
static size_t png_find_chunk(const uint8_t *p, size_t n, const char *type)
{
	size_t off = 8;

	while (off + 8 <= n) {
		uint32_t len = (uint32_t)p[off] << 24 | p[off + 1] << 16 | p[off + 2] << 8 | p[off + 3];

		if (memcmp(p + off + 4, type, 4) == 0)
			return off;
		off += 12 + (size_t)len;
	}
	return 0;
}

/* Recompute the CRC of the chunk at off after the test edited it. */
static void png_fix_crc(uint8_t *p, size_t off)
{
	uint32_t len = (uint32_t)p[off] << 24 | p[off + 1] << 16 | p[off + 2] << 8 | p[off + 3];

	put_be32(p + off + 8 + len, (uint32_t)crc32(0, p + off + 4, len + 4));
}

/* ---------------------------------------------------------------------- */
/* Helpers for checking results                                             */
/* ---------------------------------------------------------------------- */

static struct img_decode_opts defaults;

/* Decode and return the status; *im is freed unless keep is given. */
static int decode(const void *d, size_t n, struct img_rgb *keep, struct seer_err *err)
{
	struct img_rgb im;
	struct seer_err e = {0};
	int rc = img_decode(d, n, &defaults, &im, err ? err : &e);

	if (keep != NULL)
		*keep = im;
	else
		img_rgb_free(&im);
	return rc;
}

/* Mean absolute difference between an RGB image and an RGB reference. */
static double mean_abs_diff(const uint8_t *a, const uint8_t *b, size_t n)
{
	double s = 0;
	size_t i;

	for (i = 0; i < n; i++)
		s += abs((int)a[i] - (int)b[i]);
	return n ? s / (double)n : 0;
}

/* ---------------------------------------------------------------------- */
/* Tests                                                                    */
/* ---------------------------------------------------------------------- */

static void test_defaults_and_sniff(void)
{
	static const struct {
		const char *bytes;
		size_t len;
		enum img_format fmt;
		const char *name;
	} cases[] = {
		{"\xff\xd8\xff\xe0", 4, IMG_FORMAT_JPEG, "JPEG"},
		{"\x89PNG\r\n\x1a\n\0", 9, IMG_FORMAT_PNG, "PNG"},
		{"GIF89a\1\0\1\0", 10, IMG_FORMAT_UNKNOWN, "GIF"},
		{"GIF87a\1\0\1\0", 10, IMG_FORMAT_UNKNOWN, "GIF"},
		{"RIFF\x24\0\0\0WEBPVP8 ", 16, IMG_FORMAT_UNKNOWN, "WebP"},
		{"BM\x3a\0\0\0\0\0", 8, IMG_FORMAT_UNKNOWN, "BMP"},
		{"II*\0\x08\0\0\0", 8, IMG_FORMAT_UNKNOWN, "TIFF"},
		{"MM\0*\0\0\0\x08", 8, IMG_FORMAT_UNKNOWN, "TIFF"},
		{"\0\0\0\x18"
		 "ftypheic\0\0\0\0",
		 16, IMG_FORMAT_UNKNOWN, "HEIF/HEIC"},
		{"\0\0\0\x1c"
		 "ftypavif\0\0\0\0",
		 16, IMG_FORMAT_UNKNOWN, "AVIF"},
		{"\0\0\0\x0cjP  \r\n\x87\n", 12, IMG_FORMAT_UNKNOWN, "JPEG 2000"},
		{"\xff\x0a\xfa", 3, IMG_FORMAT_UNKNOWN, "JPEG XL"},
		{"<!DOCTYPE html>", 15, IMG_FORMAT_UNKNOWN, "HTML"},
		{"%PDF-1.4", 8, IMG_FORMAT_UNKNOWN, "PDF"},
		{"P6\n1 1\n255\n", 11, IMG_FORMAT_UNKNOWN, "PNM"},
		{"hello world", 11, IMG_FORMAT_UNKNOWN, NULL},
		{"\xff\xd8", 2, IMG_FORMAT_UNKNOWN, NULL},
	};
	struct img_limits lim;
	size_t i;
	int bad = 0;

	img_limits_default(&lim);
	tap_ok(lim.max_pixels == 40000000 && lim.max_side == 12000 && lim.max_bytes == 50u << 20,
	       "img_limits_default: 40 MP, 12000 px a side, 50 MiB");
	tap_ok(defaults.exif_rotate == 1 && defaults.limits.max_side == 12000,
	       "img_decode_opts_default: EXIF rotation on, default limits");
	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		const char *name = "unset";
		enum img_format f = img_sniff(cases[i].bytes, cases[i].len, &name);

		if (f != cases[i].fmt || (name == NULL) != (cases[i].name == NULL) ||
		    (name != NULL && strcmp(name, cases[i].name) != 0)) {
			printf("# sniff case %zu: got %d %s\n", i, f, name ? name : "NULL");
			bad++;
		}
	}
	tap_ok(bad == 0, "img_sniff names %zu magics (JPEG, PNG, GIF, WebP, BMP, TIFF, HEIC, ...)",
	       sizeof(cases) / sizeof(cases[0]));
	tap_ok(img_sniff(NULL, 0, NULL) == IMG_FORMAT_UNKNOWN, "img_sniff(NULL, 0) is unknown");
}

static void test_empty_and_unsupported(void)
{
	static const struct {
		const char *bytes;
		size_t len;
		const char *name;
	} cases[] = {
		{"GIF89a\1\0\1\0\0\0\0;", 14, "GIF"},
		{"RIFF\x24\0\0\0WEBPVP8 \x18\0\0\0", 20, "WebP"},
		{"BM\x3a\0\0\0\0\0\0\0\x36\0\0\0", 14, "BMP"},
		{"II*\0\x08\0\0\0\0\0", 10, "TIFF"},
		{"\0\0\0\x18"
		 "ftypheic\0\0\0\0mif1heic",
		 24, "HEIF/HEIC"},
		{"<html><body>not an image</body></html>", 38, "HTML"},
		{"just some text", 14, "unrecognised"},
	};
	struct img_rgb im = {7, 7, (uint8_t *)"x"};
	struct seer_err err = {0};
	size_t i;
	int rc;

	rc = img_decode(NULL, 0, NULL, &im, &err);
	tap_ok(rc == SEER_EEMPTY && im.pixels == NULL && im.width == 0 && strstr(err.msg, "empty") != NULL,
	       "zero bytes -> SEER_EEMPTY, output zeroed (%s)", err.msg);
	rc = img_decode("", 0, NULL, &im, &err);
	tap_ok(rc == SEER_EEMPTY, "empty buffer -> SEER_EEMPTY");
	rc = img_decode("x", 1, NULL, NULL, &err);
	tap_ok(rc == SEER_EINVAL, "no output struct -> SEER_EINVAL");
	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		rc = decode(cases[i].bytes, cases[i].len, NULL, &err);
		tap_ok(rc == SEER_EUNSUPPORTED && strstr(err.msg, cases[i].name) != NULL,
		       "%s magic -> SEER_EUNSUPPORTED naming it (%s)", cases[i].name, err.msg);
	}
	rc = decode("\xff\xd8", 2, NULL, &err);
	tap_ok(rc == SEER_ETRUNC, "2 bytes of JPEG magic -> SEER_ETRUNC (%s)", err.msg);
	rc = decode("\x89PN", 3, NULL, &err);
	tap_ok(rc == SEER_ETRUNC, "3 bytes of PNG magic -> SEER_ETRUNC (%s)", err.msg);
}

static void test_jpeg_valid(void)
{
	struct jpeg_enc e = {
		.w = 67, .h = 45, .comps = 3, .in_cs = JCS_RGB, .jpeg_cs = JCS_UNKNOWN, .quality = 95};
	uint8_t *px = pattern_image(67, 45, 3), *gray = pattern_image(67, 45, 1);
	uint8_t *j, *cmyk_px;
	struct img_rgb base, im;
	struct seer_err err = {0};
	size_t len, i;
	int rc, same;

	j = jpeg_encode(&e, px, &len);
	rc = decode(j, len, &base, &err);
	tap_ok(rc == 0 && base.width == 67 && base.height == 45 &&
		       mean_abs_diff(base.pixels, px, 67 * 45 * 3) < 4.0,
	       "baseline RGB JPEG 67x45 decodes close to its source (mean diff %.2f)",
	       rc == 0 ? mean_abs_diff(base.pixels, px, 67 * 45 * 3) : -1.0);
	free(j);

	/* progressive, restart markers and arithmetic coding carry the same coefficients */
	e.progressive = 1;
	j = jpeg_encode(&e, px, &len);
	rc = decode(j, len, &im, &err);
	tap_ok(rc == 0 && memcmp(im.pixels, base.pixels, 67 * 45 * 3) == 0,
	       "progressive JPEG decodes to the same pixels as baseline");
	img_rgb_free(&im);
	free(j);
	e.progressive = 0;
	e.restart_rows = 1;
	j = jpeg_encode(&e, px, &len);
	rc = decode(j, len, &im, &err);
	tap_ok(rc == 0 && jpeg_find_marker(j, len, 0xdd) != 0 &&
		       memcmp(im.pixels, base.pixels, 67 * 45 * 3) == 0,
	       "JPEG with restart markers (DRI, RSTn) decodes to the same pixels");
	img_rgb_free(&im);
	free(j);
	e.restart_rows = 0;
	e.arith = 1;
	j = jpeg_encode(&e, px, &len);
	rc = decode(j, len, &im, &err);
	tap_ok(rc == 0 && memcmp(im.pixels, base.pixels, 67 * 45 * 3) == 0,
	       "arithmetic-coded JPEG decodes to the same pixels (%s)", rc ? err.msg : "ok");
	img_rgb_free(&im);
	free(j);
	e.arith = 0;

	/* grayscale -> R = G = B */
	e.comps = 1;
	e.in_cs = JCS_GRAYSCALE;
	j = jpeg_encode(&e, gray, &len);
	rc = decode(j, len, &im, &err);
	same = rc == 0;
	for (i = 0; same && i < 67 * 45; i++)
		same = im.pixels[i * 3] == im.pixels[i * 3 + 1] && im.pixels[i * 3] == im.pixels[i * 3 + 2] &&
		       abs(im.pixels[i * 3] - gray[i]) < 24;
	tap_ok(same, "grayscale JPEG -> R = G = B, close to the source");
	img_rgb_free(&im);
	free(j);

	/* CMYK: libjpeg stores what it is given, which PIL reads as inverted CMYK */
	cmyk_px = pattern_image(67, 45, 4);
	e.comps = 4;
	e.in_cs = JCS_CMYK;
	e.jpeg_cs = JCS_CMYK;
	e.quality = 100;
	j = jpeg_encode(&e, cmyk_px, &len);
	rc = decode(j, len, &im, &err);
	same = rc == 0;
	for (i = 0; same && i < 67 * 45; i++) {
		const uint8_t *s = cmyk_px + i * 4;
		int c;

		for (c = 0; c < 3; c++)
			same &= abs(im.pixels[i * 3 + c] - s[c] * s[3] / 255) <= 4;
	}
	tap_ok(same, "Adobe CMYK JPEG -> RGB = stored C * stored K / 255 (PIL's CMYK;I)");
	free(j);
	img_rgb_free(&base);
	e.jpeg_cs = JCS_YCCK;
	j = jpeg_encode(&e, cmyk_px, &len);
	rc = decode(j, len, &base, &err);
	tap_ok(rc == 0 && mean_abs_diff(base.pixels, im.pixels, 67 * 45 * 3) < 2.0,
	       "YCCK JPEG decodes close to the CMYK one (mean diff %.2f)",
	       rc == 0 ? mean_abs_diff(base.pixels, im.pixels, 67 * 45 * 3) : -1.0);
	img_rgb_free(&im);
	img_rgb_free(&base);
	free(j);
	free(cmyk_px);

	/* two components: PIL refuses it, so do we */
	e.comps = 2;
	e.in_cs = JCS_UNKNOWN;
	e.jpeg_cs = JCS_UNKNOWN;
	j = jpeg_encode(&e, px, &len);
	rc = decode(j, len, NULL, &err);
	tap_ok(rc == SEER_EUNSUPPORTED && strstr(err.msg, "2 components") != NULL,
	       "2-component JPEG -> SEER_EUNSUPPORTED (%s)", err.msg);
	free(j);
	free(px);
	free(gray);
}

/* Cut data at every length from 1 to n - 1; count results other than want. */
static int cut_everywhere(const uint8_t *d, size_t n, int want, size_t *first_bad)
{
	struct seer_err err;
	uint8_t *copy;
	size_t cut;
	int bad = 0;

	*first_bad = 0;
	for (cut = 1; cut < n; cut++) {
		int rc;

		/* an exact-size copy, so ASan sees any read past the cut */
		copy = malloc(cut);
		memcpy(copy, d, cut);
		rc = decode(copy, cut, NULL, &err);
		free(copy);
		if (rc != want) {
			if (!bad++) {
				*first_bad = cut;
				printf("# cut at %zu: %d %s\n", cut, rc, err.msg);
			}
		}
	}
	return bad;
}

static void test_truncation(void)
{
	struct jpeg_enc e = {
		.w = 40, .h = 33, .comps = 3, .in_cs = JCS_RGB, .jpeg_cs = JCS_UNKNOWN, .quality = 80};
	uint8_t *px = pattern_image(40, 33, 4), *j, *p;
	uint8_t app1[64] = "Exif\0\0II*\0\x08\0\0\0\x01\0\x12\x01\x03\0\x01\0\0\0\x06\0\0\0";
	struct png_enc pe = {.w = 40, .h = 33, .depth = 8, .color = PNG_COLOR_TYPE_RGB};
	size_t len, bad_at;
	int bad;

	e.app1 = app1;
	e.app1_len = 30;
	j = jpeg_encode(&e, px, &len);
	bad = cut_everywhere(j, len, SEER_ETRUNC, &bad_at);
	tap_ok(bad == 0, "baseline JPEG (%zu bytes) cut at every length -> SEER_ETRUNC (%d wrong)", len, bad);
	free(j);
	e.progressive = 1;
	j = jpeg_encode(&e, px, &len);
	bad = cut_everywhere(j, len, SEER_ETRUNC, &bad_at);
	tap_ok(bad == 0, "progressive JPEG (%zu bytes) cut at every length -> SEER_ETRUNC (%d wrong)", len,
	       bad);
	free(j);
	e.progressive = 0;
	e.restart_rows = 1;
	j = jpeg_encode(&e, px, &len);
	bad = cut_everywhere(j, len, SEER_ETRUNC, &bad_at);
	tap_ok(bad == 0,
	       "JPEG with restart markers (%zu bytes) cut at every length -> SEER_ETRUNC (%d wrong)", len,
	       bad);
	free(j);

	p = png_encode(&pe, px, 40 * 3, &len);
	bad = cut_everywhere(p, len, SEER_ETRUNC, &bad_at);
	tap_ok(bad == 0, "PNG (%zu bytes) cut at every length -> SEER_ETRUNC (%d wrong)", len, bad);
	free(p);
	pe.interlace = 1;
	pe.color = PNG_COLOR_TYPE_RGB_ALPHA;
	p = png_encode(&pe, px, 40 * 4, &len);
	bad = cut_everywhere(p, len, SEER_ETRUNC, &bad_at);
	tap_ok(bad == 0, "interlaced RGBA PNG (%zu bytes) cut at every length -> SEER_ETRUNC (%d wrong)", len,
	       bad);
	free(p);
	free(px);
}

static void test_too_large(void)
{
	struct img_decode_opts small;
	struct seer_err err;
	uint8_t *j, *p;
	size_t len, off;
	int rc;

	j = jpeg_rgb(16, 16, 90, &len);
	off = jpeg_find_marker(j, len, 0xc0);
	j[off + 5] = j[off + 6] = j[off + 7] = j[off + 8] = 0xff;
	rc = decode(j, len, NULL, &err);
	tap_ok(rc == SEER_ETOOLARGE,
	       "JPEG header claiming 65535x65535 -> SEER_ETOOLARGE before allocating (%s)", err.msg);
	j[off + 5] = j[off + 7] = 0xfd; /* 65000 x 65000: libjpeg accepts it, we do not */
	j[off + 6] = j[off + 8] = 0xe8;
	rc = decode(j, len, NULL, &err);
	tap_ok(rc == SEER_ETOOLARGE && strstr(err.msg, "65000x65000") != NULL,
	       "JPEG header claiming 65000x65000 -> SEER_ETOOLARGE before allocating (%s)", err.msg);
	j[off + 5] = 0x00, j[off + 6] = 0x0a; /* height 10 */
	j[off + 7] = 0x32, j[off + 8] = 0xc8; /* width 13000 */
	rc = decode(j, len, NULL, &err);
	tap_ok(rc == SEER_ETOOLARGE && strstr(err.msg, "a side") != NULL,
	       "JPEG 13000 px wide -> SEER_ETOOLARGE (%s)", err.msg);
	j[off + 5] = 0x1b, j[off + 6] = 0x58; /* 7000 */
	j[off + 7] = 0x1b, j[off + 8] = 0x58;
	rc = decode(j, len, NULL, &err);
	tap_ok(rc == SEER_ETOOLARGE && strstr(err.msg, "40000000") != NULL,
	       "JPEG 7000x7000 (49 MP) -> SEER_ETOOLARGE (%s)", err.msg);
	free(j);

	p = png_raw_rgb(4, 4, NULL, NULL, 0, &len);
	put_be32(p + 16, 65535);
	put_be32(p + 20, 65535);
	png_fix_crc(p, 8);
	rc = decode(p, len, NULL, &err);
	tap_ok(rc == SEER_ETOOLARGE && strstr(err.msg, "65535x65535") != NULL,
	       "PNG IHDR claiming 65535x65535 -> SEER_ETOOLARGE (%s)", err.msg);
	put_be32(p + 16, 7000);
	put_be32(p + 20, 7000);
	png_fix_crc(p, 8);
	rc = decode(p, len, NULL, &err);
	tap_ok(rc == SEER_ETOOLARGE, "PNG 7000x7000 -> SEER_ETOOLARGE (%s)", err.msg);
	free(p);

	p = png_raw_rgb(30, 20, NULL, NULL, 0, &len);
	small = defaults;
	small.limits.max_bytes = len - 1;
	rc = img_decode(p, len, &small, &(struct img_rgb){0}, &err);
	tap_ok(rc == SEER_ETOOLARGE && strstr(err.msg, "bytes") != NULL,
	       "input one byte over max_bytes -> SEER_ETOOLARGE (%s)", err.msg);
	small = defaults;
	small.limits.max_pixels = 599;
	rc = img_decode(p, len, &small, &(struct img_rgb){0}, &err);
	tap_ok(rc == SEER_ETOOLARGE, "PNG of 600 pixels with max_pixels 599 -> SEER_ETOOLARGE");
	small.limits.max_pixels = 600;
	{
		struct img_rgb im;

		rc = img_decode(p, len, &small, &im, &err);
		tap_ok(rc == 0 && im.width == 30, "... and with max_pixels 600 it decodes");
		img_rgb_free(&im);
	}
	free(p);
}

static void test_corrupt(void)
{
	struct seer_err err;
	uint8_t *j, *p, *copy;
	size_t len, off, zlen, i;
	int rc;

	/* JPEG: a Huffman table whose code counts overflow */
	j = jpeg_rgb(32, 24, 90, &len);
	copy = malloc(len);
	memcpy(copy, j, len);
	off = jpeg_find_marker(copy, len, 0xc4);
	for (i = 0; i < 16; i++)
		copy[off + 5 + i] = 0xff;
	rc = decode(copy, len, NULL, &err);
	tap_ok(rc == SEER_ECORRUPT, "JPEG with a bogus Huffman table -> SEER_ECORRUPT (%s)", err.msg);

	/* JPEG: a stray marker inside the entropy-coded data */
	memcpy(copy, j, len);
	off = jpeg_find_marker(copy, len, 0xda);
	off += 2 + (copy[off + 2] << 8 | copy[off + 3]);
	copy[off + 20] = 0xff;
	copy[off + 21] = 0xd3;
	rc = decode(copy, len, NULL, &err);
	tap_ok(rc == SEER_ECORRUPT, "JPEG with a stray RST marker in its scan -> SEER_ECORRUPT (%s)",
	       err.msg);

	/* JPEG: garbage bytes before a marker ("extraneous bytes") */
	{
		uint8_t *junk = malloc(len + 3);

		off = jpeg_find_marker(j, len, 0xc4);
		memcpy(junk, j, off);
		memcpy(junk + off, "\x12\x34\x56", 3);
		memcpy(junk + off + 3, j + off, len - off);
		rc = decode(junk, len + 3, NULL, &err);
		tap_ok(rc == SEER_ECORRUPT, "JPEG with junk between markers -> SEER_ECORRUPT (%s)", err.msg);
		free(junk);
	}

	/* JPEG: 12-bit precision and a lossless SOF are valid JPEG we cannot decode */
	memcpy(copy, j, len);
	off = jpeg_find_marker(copy, len, 0xc0);
	copy[off + 4] = 12;
	rc = decode(copy, len, NULL, &err);
	tap_ok(rc == SEER_EUNSUPPORTED, "12-bit JPEG -> SEER_EUNSUPPORTED (%s)", err.msg);
	memcpy(copy, j, len);
	copy[off + 1] = 0xc3;
	rc = decode(copy, len, NULL, &err);
	tap_ok(rc == SEER_EUNSUPPORTED, "lossless (SOF3) JPEG -> SEER_EUNSUPPORTED (%s)", err.msg);

	/* JPEG: zero height */
	memcpy(copy, j, len);
	copy[off + 5] = copy[off + 6] = 0;
	rc = decode(copy, len, NULL, &err);
	tap_ok(rc == SEER_ECORRUPT, "JPEG of height 0 -> SEER_ECORRUPT (%s)", err.msg);
	free(copy);
	free(j);

	/* PNG CRCs: critical and ancillary chunks */
	p = png_raw_rgb(8, 8, "tEXt", (const uint8_t *)"Comment\0hello", 13, &len);
	p[29] ^= 1;
	rc = decode(p, len, NULL, &err);
	tap_ok(rc == SEER_ECORRUPT && strstr(err.msg, "CRC") != NULL,
	       "PNG with a wrong IHDR CRC -> SEER_ECORRUPT (%s)", err.msg);
	p[29] ^= 1;
	off = png_find_chunk(p, len, "tEXt");
	p[off + 8 + 13] ^= 0x40;
	rc = decode(p, len, NULL, &err);
	tap_ok(rc == SEER_ECORRUPT && strstr(err.msg, "CRC") != NULL,
	       "PNG with a wrong tEXt (ancillary) CRC -> SEER_ECORRUPT (%s)", err.msg);
	p[off + 8 + 13] ^= 0x40;
	off = png_find_chunk(p, len, "IDAT");
	p[off + 9] ^= 0x01;
	rc = decode(p, len, NULL, &err);
	tap_ok(rc == SEER_ECORRUPT, "PNG with a flipped IDAT byte -> SEER_ECORRUPT (%s)", err.msg);
	p[off + 9] ^= 0x01;
	off = png_find_chunk(p, len, "IEND");
	p[off - 1] ^= 0x01; /* the last IDAT's CRC, data intact */
	rc = decode(p, len, NULL, &err);
	tap_ok(rc == SEER_ECORRUPT && strstr(err.msg, "CRC") != NULL,
	       "PNG with a wrong IDAT CRC -> SEER_ECORRUPT (%s)", err.msg);
	p[off - 1] ^= 0x01;
	p[len - 1] ^= 0x01;
	rc = decode(p, len, NULL, &err);
	tap_ok(rc == SEER_ECORRUPT && strstr(err.msg, "CRC") != NULL,
	       "PNG with a wrong IEND CRC -> SEER_ECORRUPT (%s)", err.msg);
	p[len - 1] ^= 0x01;
	rc = decode(p, len, NULL, &err);
	tap_ok(rc == 0, "... and restored it decodes");
	free(p);

	/* PNG: IDAT whose zlib stream is garbage, or ends before the image does */
	{
		struct buf b = {0};
		uint8_t raw[5 * 13] = {0}, *z;

		png_raw_ihdr(&b, 4, 5, 8, 2);
		png_raw_chunk(&b, "IDAT", "\x78\x9c\xff\xff\xff\xff\xff\xff", 8);
		png_raw_chunk(&b, "IEND", NULL, 0);
		rc = decode(b.p, b.n, NULL, &err);
		tap_ok(rc == SEER_ECORRUPT, "PNG with an invalid zlib stream -> SEER_ECORRUPT (%s)", err.msg);
		b.n = 0;
		z = zpack(raw, sizeof(raw) - 13, &zlen);
		png_raw_ihdr(&b, 4, 5, 8, 2);
		png_raw_chunk(&b, "IDAT", z, zlen);
		png_raw_chunk(&b, "IEND", NULL, 0);
		rc = decode(b.p, b.n, NULL, &err);
		tap_ok(rc == SEER_ECORRUPT, "PNG whose IDAT holds 4 of 5 rows -> SEER_ECORRUPT (%s)",
		       err.msg);
		free(z);
		b.n = 0;
		png_raw_ihdr(&b, 0, 5, 8, 2);
		png_raw_chunk(&b, "IEND", NULL, 0);
		rc = decode(b.p, b.n, NULL, &err);
		tap_ok(rc == SEER_ECORRUPT, "PNG of width 0 -> SEER_ECORRUPT (%s)", err.msg);
		b.n = 0;
		png_raw_ihdr(&b, 4, 4, 3, 2);
		png_raw_chunk(&b, "IEND", NULL, 0);
		rc = decode(b.p, b.n, NULL, &err);
		tap_ok(rc == SEER_ECORRUPT, "PNG of bit depth 3 -> SEER_ECORRUPT (%s)", err.msg);
		b.n = 0;
		png_raw_ihdr(&b, 4, 4, 8, 3);
		z = zpack(raw, 4 * 5, &zlen);
		png_raw_chunk(&b, "IDAT", z, zlen);
		png_raw_chunk(&b, "IEND", NULL, 0);
		rc = decode(b.p, b.n, NULL, &err);
		tap_ok(rc == SEER_ECORRUPT, "palette PNG without PLTE -> SEER_ECORRUPT (%s)", err.msg);
		free(z);
		free(b.p);
	}
}

static void test_bombs(void)
{
	struct seer_err err;
	struct buf b = {0};
	size_t n = 64u << 20, zlen, len;
	uint8_t *zeros = calloc(n, 1), *z, *p;
	struct img_rgb im;
	clock_t t0;
	double secs;
	int rc;

	/* a 1x1 image whose IDAT inflates to 64 MiB */
	z = zpack(zeros, n, &zlen);
	png_raw_ihdr(&b, 1, 1, 8, 2);
	png_raw_chunk(&b, "IDAT", z, zlen);
	png_raw_chunk(&b, "IEND", NULL, 0);
	t0 = clock();
	rc = decode(b.p, b.n, NULL, &err);
	secs = (double)(clock() - t0) / CLOCKS_PER_SEC;
	tap_ok(rc == SEER_ECORRUPT,
	       "PNG bomb: 1x1 with %zu KiB of IDAT inflating to 64 MiB -> SEER_ECORRUPT in %.3f s (%s)",
	       zlen >> 10, secs, err.msg);

	/* a zTXt chunk inflating to 64 MiB on a valid image: skipped, never inflated */
	{
		uint8_t *ztxt = malloc(zlen + 10);

		memcpy(ztxt, "Comment\0\0", 9);
		memcpy(ztxt + 9, z, zlen);
		p = png_raw_rgb(8, 8, "zTXt", ztxt, zlen + 9, &len);
		free(ztxt);
	}
	t0 = clock();
	rc = decode(p, len, &im, &err);
	secs = (double)(clock() - t0) / CLOCKS_PER_SEC;
	tap_ok(rc == 0 && im.width == 8 && im.pixels[0] == 10,
	       "PNG with a zTXt bomb decodes without inflating it (%.3f s)", secs);
	img_rgb_free(&im);
	free(p);
	free(z);
	free(zeros);
	free(b.p);
}

/* A legitimate progressive script of 2090 scans: every bit of every coefficient. */
static void test_scan_bomb(void)
{
	enum { NSCANS = 11 + 3 * 63 * 11 };
	jpeg_scan_info *s = calloc(NSCANS, sizeof(*s));
	struct jpeg_enc e = {
		.w = 16, .h = 16, .comps = 3, .in_cs = JCS_RGB, .jpeg_cs = JCS_UNKNOWN, .quality = 90};
	uint8_t *px = pattern_image(16, 16, 3), *j;
	struct seer_err err;
	struct img_rgb im;
	size_t len;
	int i = 0, a, c, k, rc;

	for (a = 10; a >= 0; a--, i++) {
		s[i].comps_in_scan = 3;
		s[i].component_index[1] = 1;
		s[i].component_index[2] = 2;
		s[i].Ah = a == 10 ? 0 : a + 1;
		s[i].Al = a;
	}
	for (c = 0; c < 3; c++)
		for (k = 1; k < 64; k++)
			for (a = 10; a >= 0; a--, i++) {
				s[i].comps_in_scan = 1;
				s[i].component_index[0] = c;
				s[i].Ss = s[i].Se = k;
				s[i].Ah = a == 10 ? 0 : a + 1;
				s[i].Al = a;
			}
	e.scans = s;
	e.nscans = i;
	j = jpeg_encode(&e, px, &len);
	rc = decode(j, len, NULL, &err);
	tap_ok(rc == SEER_ETOOLARGE && strstr(err.msg, "scans") != NULL,
	       "progressive JPEG with %d scans (%zu bytes) -> SEER_ETOOLARGE (%s)", i, len, err.msg);
	free(j);
	/* the same trick with one component stays under the limit and decodes */
	e.comps = 1;
	e.in_cs = JCS_GRAYSCALE;
	for (i = 0; i < 11; i++) {
		s[i].comps_in_scan = 1;
		s[i].component_index[1] = s[i].component_index[2] = 0;
	}
	memmove(s + 11, s + 11 + 2 * 63 * 11, 63 * 11 * sizeof(*s));
	for (i = 11; i < 11 + 63 * 11; i++)
		s[i].component_index[0] = 0;
	e.scans = s;
	e.nscans = 11 + 63 * 11;
	j = jpeg_encode(&e, px, &len);
	rc = decode(j, len, &im, &err);
	tap_ok(rc == 0 && im.width == 16, "gray progressive JPEG with %d scans decodes (%s)", e.nscans,
	       rc ? err.msg : "ok");
	img_rgb_free(&im);
	free(j);
	free(px);
	free(s);
}

/* Reference orientation from two primitives, independent of the decoder's table. */
static uint8_t *ref_rot90cw(const uint8_t *in, size_t w, size_t h)
{
	uint8_t *out = malloc(w * h * 3);
	size_t x, y;

	/* out is h wide and w tall; its top row is the input's left column, bottom up */
	for (y = 0; y < w; y++)
		for (x = 0; x < h; x++)
			memcpy(out + (y * h + x) * 3, in + ((h - 1 - x) * w + y) * 3, 3);
	return out;
}

static uint8_t *ref_flip(const uint8_t *in, size_t w, size_t h, int vertical)
{
	uint8_t *out = malloc(w * h * 3);
	size_t x, y;

	for (y = 0; y < h; y++)
		for (x = 0; x < w; x++)
			memcpy(out + (y * w + x) * 3,
			       in + (vertical ? (h - 1 - y) * w + x : y * w + (w - 1 - x)) * 3, 3);
	return out;
}

/* in (w x h) as EXIF orientation o asks; *ow, *oh get the new size. */
static uint8_t *ref_orient(const uint8_t *in, size_t w, size_t h, int o, size_t *ow, size_t *oh)
{
	uint8_t *a, *b;

	*ow = o >= 5 ? h : w;
	*oh = o >= 5 ? w : h;
	switch (o) {
	case 2:
		return ref_flip(in, w, h, 0);
	case 3:
		a = ref_flip(in, w, h, 0);
		b = ref_flip(a, w, h, 1);
		free(a);
		return b;
	case 4:
		return ref_flip(in, w, h, 1);
	case 5:
		a = ref_rot90cw(in, w, h);
		b = ref_flip(a, h, w, 0);
		free(a);
		return b;
	case 6:
		return ref_rot90cw(in, w, h);
	case 7:
		a = ref_rot90cw(in, w, h);
		b = ref_flip(a, h, w, 1);
		free(a);
		return b;
	case 8:
		a = ref_rot90cw(in, w, h);
		b = ref_flip(a, h, w, 0);
		free(a);
		a = ref_flip(b, h, w, 1);
		free(b);
		return a;
	}
	a = malloc(w * h * 3);
	memcpy(a, in, w * h * 3);
	return a;
}

/* APP1 payload: "Exif\0\0" + TIFF with IFD0 = { 0x0112: type, value }. */
static size_t exif_app1(uint8_t *d, int big_endian, int type, uint32_t v)
{
	static const uint8_t ii[] = "Exif\0\0II*\0\x08\0\0\0\x02\0"
				    "\x0f\x01\x02\0\x04\0\0\0Cam\0"
				    "\x12\x01\0\0\x01\0\0\0\0\0\0\0\0\0\0\0";
	static const uint8_t mm[] = "Exif\0\0MM\0*\0\0\0\x08\0\x02"
				    "\x01\x0f\0\x02\0\0\0\x04"
				    "Cam\0"
				    "\x01\x12\0\0\0\0\0\x01\0\0\0\0\0\0\0\0";
	size_t n = sizeof(ii) - 1, e = 6 + 8 + 2 + 12;

	memcpy(d, big_endian ? mm : ii, n);
	if (big_endian) {
		d[e + 3] = (uint8_t)type;
		if (type == 3)
			d[e + 8] = (uint8_t)(v >> 8), d[e + 9] = (uint8_t)v;
		else
			put_be32(d + e + 8, v);
	} else {
		d[e + 2] = (uint8_t)type;
		d[e + 8] = (uint8_t)v, d[e + 9] = (uint8_t)(v >> 8);
		d[e + 10] = (uint8_t)(v >> 16), d[e + 11] = (uint8_t)(v >> 24);
	}
	return n;
}

static void test_exif(void)
{
	struct jpeg_enc e = {
		.w = 13, .h = 7, .comps = 3, .in_cs = JCS_RGB, .jpeg_cs = JCS_UNKNOWN, .quality = 90};
	struct img_decode_opts norot = defaults;
	uint8_t *px = pattern_image(13, 7, 3), *j, *ref, app1[128];
	struct img_rgb flat, im;
	struct seer_err err;
	size_t len, ow, oh;
	int o, be, rc, bad = 0;

	norot.exif_rotate = 0;
	for (be = 0; be < 2; be++) {
		for (o = 1; o <= 8; o++) {
			e.app1 = app1;
			e.app1_len = exif_app1(app1, be, 3, (uint32_t)o);
			j = jpeg_encode(&e, px, &len);
			rc = img_decode(j, len, &norot, &flat, &err);
			rc |= decode(j, len, &im, &err);
			ref = ref_orient(flat.pixels, 13, 7, o, &ow, &oh);
			if (rc != 0 || im.width != ow || im.height != oh ||
			    memcmp(im.pixels, ref, ow * oh * 3) != 0) {
				printf("# orientation %d %s differs (%s)\n", o, be ? "MM" : "II",
				       rc ? err.msg : "pixels");
				bad++;
			}
			if (flat.width != 13 || flat.height != 7)
				bad++;
			free(ref);
			img_rgb_free(&flat);
			img_rgb_free(&im);
			free(j);
		}
	}
	tap_ok(bad == 0, "EXIF orientations 1-8, II and MM: applied by default, off on request");

	/* malformed EXIF is ignored, never trusted */
	{
		static const struct {
			const char *what;
			int be, type;
			uint32_t v;
			size_t ifd_off; /* 0: keep */
			size_t cut;	/* 0: keep the whole payload */
			int rotated;
		} cases[] = {
			{"orientation as LONG", 0, 4, 6, 0, 0, 1},
			{"orientation as BYTE", 0, 1, 5, 0, 0, 1},
			{"orientation as LONG, MM", 1, 4, 8, 0, 0, 1},
			{"orientation 9", 0, 3, 9, 0, 0, 0},
			{"orientation 0", 1, 3, 0, 0, 0, 0},
			{"orientation as ASCII", 0, 2, 6, 0, 0, 0},
			{"IFD offset past the end", 0, 3, 6, 0xfffffff0u, 0, 0},
			{"IFD offset at the end", 1, 3, 6, 34, 0, 0},
			{"payload cut inside the entry", 0, 3, 6, 0, 6 + 8 + 2 + 12 + 6, 0},
			{"payload cut inside the header", 1, 3, 6, 0, 10, 0},
			{"only \"Exif\"", 0, 3, 6, 0, 5, 0},
		};
		size_t i;
		int k;

		bad = 0;
		for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
			e.app1_len = exif_app1(app1, cases[i].be, cases[i].type, cases[i].v);
			if (cases[i].ifd_off) {
				if (cases[i].be)
					put_be32(app1 + 10, (uint32_t)cases[i].ifd_off);
				else
					for (k = 0; k < 4; k++)
						app1[10 + k] = (uint8_t)(cases[i].ifd_off >> (8 * k));
			}
			if (cases[i].cut)
				e.app1_len = cases[i].cut;
			j = jpeg_encode(&e, px, &len);
			rc = decode(j, len, &im, &err);
			if (rc != 0 || im.width != (cases[i].rotated ? 7u : 13u)) {
				printf("# EXIF case \"%s\": rc %d, width %u\n", cases[i].what, rc,
				       (unsigned)im.width);
				bad++;
			}
			img_rgb_free(&im);
			free(j);
		}
		tap_ok(bad == 0, "%zu malformed or unusual EXIF blocks: decoded, rotated only when PIL would",
		       sizeof(cases) / sizeof(cases[0]));
	}
	free(px);
}

static void test_png_modes(void)
{
	static const png_color plte[3] = {{200, 10, 20}, {5, 250, 6}, {7, 8, 255}};
	static const uint8_t trns[3] = {0, 128, 255};
	struct png_enc pe = {.w = 9, .h = 5};
	uint8_t rows[5 * 9 * 8], want[5 * 9 * 3];
	struct seer_err err;
	struct img_rgb im;
	size_t len, i;
	uint8_t *p;
	int rc, pass, depth, il;

	/* palette indices 0..5 with 3 entries: PIL shows entries past PLTE as (i, i, i) */
	for (il = 0; il < 2; il++) {
		pe.depth = 8;
		pe.color = PNG_COLOR_TYPE_PALETTE;
		pe.plte = plte;
		pe.nplte = 3;
		pe.trns = trns;
		pe.ntrns = 3;
		pe.interlace = il;
		for (i = 0; i < 45; i++) {
			rows[i] = (uint8_t)(i % 6);
			if (i % 6 < 3)
				memcpy(want + i * 3, &plte[i % 6], 3);
			else
				memset(want + i * 3, (int)(i % 6), 3);
		}
		p = png_encode(&pe, rows, 9, &len);
		rc = decode(p, len, &im, &err);
		tap_ok(rc == 0 && memcmp(im.pixels, want, 45 * 3) == 0,
		       "palette PNG%s with tRNS and indices past PLTE -> PIL's colours",
		       il ? " (interlaced)" : "");
		img_rgb_free(&im);
		free(p);
	}
	pe.plte = NULL;
	pe.trns = NULL;
	pe.interlace = 0;

	/* low-depth gray: scaled to 0..255 */
	for (depth = 1; depth <= 4; depth *= 2) {
		int maxv = (1 << depth) - 1;
		size_t rb = (9 * (size_t)depth + 7) / 8;

		memset(rows, 0, sizeof(rows));
		for (i = 0; i < 45; i++) {
			size_t x = i % 9, y = i / 9;
			int v = (int)(i * 7 % (size_t)(maxv + 1));

			rows[y * rb + x * depth / 8] |= (uint8_t)(v << (8 - depth - (int)(x * depth % 8)));
			memset(want + i * 3, v * 255 / maxv, 3);
		}
		pe.depth = depth;
		pe.color = PNG_COLOR_TYPE_GRAY;
		p = png_encode(&pe, rows, rb, &len);
		rc = decode(p, len, &im, &err);
		tap_ok(rc == 0 && memcmp(im.pixels, want, 45 * 3) == 0, "%d-bit gray PNG -> v * 255 / %d",
		       depth, maxv);
		img_rgb_free(&im);
		free(p);
	}

	/* 16-bit: colour keeps the high byte, gray (PIL's mode I) clips to 255 */
	for (pass = 0; pass < 4; pass++) {
		static const int types[4] = {PNG_COLOR_TYPE_RGB, PNG_COLOR_TYPE_RGB_ALPHA,
					     PNG_COLOR_TYPE_GRAY_ALPHA, PNG_COLOR_TYPE_GRAY};
		static const char *names[4] = {"RGB", "RGBA", "gray+alpha", "gray"};
		int ch = pass == 0 ? 3 : pass == 1 ? 4 : pass == 2 ? 2 : 1, c;

		for (i = 0; i < 45; i++) {
			for (c = 0; c < ch; c++) {
				unsigned v = (unsigned)(i * 1000 + (size_t)c * 20000 + (i % 3) * 70);

				if (pass == 3)
					v = (unsigned)(i * 13);
				rows[(i * ch + c) * 2] = (uint8_t)(v >> 8);
				rows[(i * ch + c) * 2 + 1] = (uint8_t)v;
				if (pass == 3)
					memset(want + i * 3, v > 255 ? 255 : (int)v, 3);
				else if (pass == 2 && c == 0)
					memset(want + i * 3, (int)(v >> 8), 3);
				else if (c < 3 && pass < 2)
					want[i * 3 + c] = (uint8_t)(v >> 8);
			}
		}
		pe.depth = 16;
		pe.color = types[pass];
		pe.interlace = pass & 1;
		pe.has_trns_gray = pass == 3;
		pe.trns_gray.gray = 26;
		p = png_encode(&pe, rows, 9 * 2 * (size_t)ch, &len);
		rc = decode(p, len, &im, &err);
		tap_ok(rc == 0 && memcmp(im.pixels, want, 45 * 3) == 0, "16-bit %s PNG%s -> %s", names[pass],
		       pe.interlace ? " (interlaced)" : "",
		       pass == 3 ? "clipped to 255 like PIL's I -> RGB" : "high byte");
		img_rgb_free(&im);
		free(p);
	}
	pe.has_trns_gray = 0;

	/* 8-bit gray+alpha and RGBA: alpha dropped, not composited */
	for (i = 0; i < 45; i++) {
		rows[i * 4] = (uint8_t)(i * 5);
		rows[i * 4 + 1] = (uint8_t)(i * 3);
		rows[i * 4 + 2] = (uint8_t)(255 - i);
		rows[i * 4 + 3] = (uint8_t)(i * 50);
		memcpy(want + i * 3, rows + i * 4, 3);
	}
	pe.depth = 8;
	pe.color = PNG_COLOR_TYPE_RGB_ALPHA;
	p = png_encode(&pe, rows, 9 * 4, &len);
	rc = decode(p, len, &im, &err);
	tap_ok(rc == 0 && memcmp(im.pixels, want, 45 * 3) == 0, "RGBA PNG -> alpha dropped");
	img_rgb_free(&im);
	free(p);
	for (i = 0; i < 45; i++) {
		rows[i * 2] = (uint8_t)(i * 5);
		rows[i * 2 + 1] = (uint8_t)(i * 50);
		memset(want + i * 3, i * 5, 3);
	}
	pe.color = PNG_COLOR_TYPE_GRAY_ALPHA;
	pe.interlace = 1;
	p = png_encode(&pe, rows, 9 * 2, &len);
	rc = decode(p, len, &im, &err);
	tap_ok(rc == 0 && memcmp(im.pixels, want, 45 * 3) == 0,
	       "interlaced gray+alpha PNG -> gray to RGB, alpha dropped");
	img_rgb_free(&im);
	free(p);
}

/* ---------------------------------------------------------------------- */
/* Resize: a plain full-image implementation of the same definition         */
/* ---------------------------------------------------------------------- */

/* Pillow-style bilinear weights for every output position of one axis. */
static void ref_weights(int in, int out, int **lo, int **cnt, int32_t **k, int *ksize)
{
	double scale = (double)in / out, fs = scale < 1 ? 1 : scale, support = fs, ss = 1.0 / fs;
	int K = (int)ceil(support) * 2 + 1, o, x;

	*lo = calloc((size_t)out, sizeof(int));
	*cnt = calloc((size_t)out, sizeof(int));
	*k = calloc((size_t)out * K, sizeof(int32_t));
	*ksize = K;
	for (o = 0; o < out; o++) {
		double c = (o + 0.5) * scale, tot = 0, w[512];
		int a = (int)(c - support + 0.5), b = (int)(c + support + 0.5);

		a = a < 0 ? 0 : a;
		b = b > in ? in : b;
		for (x = a; x < b; x++) {
			double t = fabs((x - c + 0.5) * ss);

			w[x - a] = t < 1 ? 1 - t : 0;
			tot += w[x - a];
		}
		for (x = a; x < b; x++)
			(*k)[(size_t)o * K + (x - a)] = (int32_t)(0.5 + w[x - a] / tot * (1 << 22));
		(*lo)[o] = a;
		(*cnt)[o] = b - a;
	}
}

/* Resize the whole image (w x h) to (nw x nh), horizontal pass first. */
static uint8_t *ref_resize(const uint8_t *in, int w, int h, int nw, int nh)
{
	uint8_t *mid = malloc((size_t)nw * h * 3), *out = malloc((size_t)nw * nh * 3);
	int *lo, *cnt, K, x, y, c, i;
	int32_t *k;

	if (nw == w) {
		memcpy(mid, in, (size_t)w * h * 3);
	} else {
		ref_weights(w, nw, &lo, &cnt, &k, &K);
		for (y = 0; y < h; y++)
			for (x = 0; x < nw; x++)
				for (c = 0; c < 3; c++) {
					int64_t s = 1 << 21;

					for (i = 0; i < cnt[x]; i++)
						s += (int64_t)in[((size_t)y * w + lo[x] + i) * 3 + c] *
						     k[(size_t)x * K + i];
					s >>= 22;
					mid[((size_t)y * nw + x) * 3 + c] = (uint8_t)(s < 0	? 0
										      : s > 255 ? 255
												: s);
				}
		free(lo), free(cnt), free(k);
	}
	if (nh == h) {
		memcpy(out, mid, (size_t)nw * h * 3);
	} else {
		ref_weights(h, nh, &lo, &cnt, &k, &K);
		for (y = 0; y < nh; y++)
			for (x = 0; x < nw; x++)
				for (c = 0; c < 3; c++) {
					int64_t s = 1 << 21;

					for (i = 0; i < cnt[y]; i++)
						s += (int64_t)mid[((size_t)(lo[y] + i) * nw + x) * 3 + c] *
						     k[(size_t)y * K + i];
					s >>= 22;
					out[((size_t)y * nw + x) * 3 + c] = (uint8_t)(s < 0	? 0
										      : s > 255 ? 255
												: s);
				}
		free(lo), free(cnt), free(k);
	}
	free(mid);
	return out;
}

static const int resize_sizes[][2] = {{1, 1},	  {2, 3},     {3, 300},	  {300, 3},    {224, 224},
				      {255, 255}, {256, 256}, {256, 259}, {257, 256},  {300, 256},
				      {500, 333}, {333, 500}, {640, 480}, {1000, 225}, {97, 1201}};
#define RESIZE_SIZES (sizeof(resize_sizes) / sizeof(resize_sizes[0]))

/* Shapes of resize_sizes where img_resize_crop differs from ref_resize + crop. */
static int resize_mismatches(void)
{
	uint8_t crop[IMG_CROP * IMG_CROP * 3];
	struct seer_err err;
	int bad = 0;

	for (size_t s = 0; s < RESIZE_SIZES; s++) {
		int w = resize_sizes[s][0], h = resize_sizes[s][1], sh = w < h ? w : h, lg = w < h ? h : w;
		int nl = (int)floor(256.0 * lg / sh), nw = w <= h ? 256 : nl, nh = w <= h ? nl : 256;
		int top = (int)nearbyint((nh - 224) / 2.0), left = (int)nearbyint((nw - 224) / 2.0);
		struct img_rgb im = {(uint32_t)w, (uint32_t)h, malloc((size_t)w * h * 3)};
		uint8_t *full;
		int y, rc;

		for (size_t i = 0; i < (size_t)w * h * 3; i++)
			im.pixels[i] = (uint8_t)(rng_next() >> 5) & (i % 7 ? 0xff : 0x0f);
		rc = img_resize_crop(&im, crop, &err);
		full = ref_resize(im.pixels, w, h, nw, nh);
		for (y = 0; rc == 0 && y < IMG_CROP; y++)
			if (memcmp(crop + (size_t)y * IMG_CROP * 3,
				   full + ((size_t)(top + y) * nw + left) * 3, IMG_CROP * 3) != 0)
				break;
		if (rc != 0 || y != IMG_CROP) {
			printf("# resize %dx%d -> %dx%d, crop at %d,%d: %s\n", w, h, nw, nh, left, top,
			       rc ? err.msg : "differs");
			bad++;
		}
		free(full);
		img_rgb_free(&im);
	}
	return bad;
}

static void test_resize(void)
{
	uint8_t crop[IMG_CROP * IMG_CROP * 3];
	struct seer_err err;
	size_t s, i;
	int bad, rc;

	for (int simd = 1; simd >= 0; simd--) {
		img_resize_use_simd(simd);
		tap_ok(resize_mismatches() == 0,
		       "img_resize_crop (%s horizontal pass) equals a full-image reference resize + crop on "
		       "%zu shapes",
		       simd ? "vector" : "scalar", RESIZE_SIZES);
	}
	img_resize_use_simd(1);

	bad = 0;
	for (s = 0; s < RESIZE_SIZES; s++) {
		struct img_rgb im = {(uint32_t)resize_sizes[s][0], (uint32_t)resize_sizes[s][1], NULL};
		size_t n = (size_t)im.width * im.height;

		im.pixels = malloc(n * 3);
		for (i = 0; i < n; i++)
			memcpy(im.pixels + i * 3, (uint8_t[]){0, 137, 255}, 3);
		rc = img_resize_crop(&im, crop, &err);
		for (i = 0; rc == 0 && i < IMG_CROP * IMG_CROP; i++)
			if (crop[i * 3] != 0 || crop[i * 3 + 1] != 137 || crop[i * 3 + 2] != 255)
				break;
		bad += rc != 0 || i != IMG_CROP * IMG_CROP;
		img_rgb_free(&im);
	}
	tap_ok(bad == 0, "a constant image stays constant (0, 137, 255) through resize + crop");

	rc = img_resize_crop(&(struct img_rgb){0}, crop, &err);
	tap_ok(rc == SEER_EINVAL, "img_resize_crop of an empty image -> SEER_EINVAL (%s)", err.msg);
}

/*
 * The vector horizontal pass reads 4 bytes per pixel. Feed the cropper each
 * window row from the end of a buffer followed by an inaccessible page,
 * holding just the columns the contract promises (col_first to col_last):
 * a read past them faults. The result must equal the scalar pass's.
 */
static void test_resize_row_ends(void)
{
	static const int sizes[][2] = {{4000, 3000}, {1203, 907}, {907, 1203},
				       {641, 480},   {300, 256},  {97, 1201}};
	const size_t page = (size_t)sysconf(_SC_PAGESIZE), span = 64 * 1024;
	uint8_t want[IMG_CROP * IMG_CROP * 3], got[IMG_CROP * IMG_CROP * 3];
	uint8_t *map = mmap(NULL, span + page, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	struct seer_err err;
	int bad = 0;

	if (map == MAP_FAILED || mprotect(map + span, page, PROT_NONE) != 0) {
		tap_ok(0, "guard page for the resize row test");
		return;
	}
	for (size_t s = 0; s < sizeof(sizes) / sizeof(sizes[0]); s++) {
		struct img_rgb im = {(uint32_t)sizes[s][0], (uint32_t)sizes[s][1], NULL};
		struct img_cropper c;
		size_t n = (size_t)im.width * im.height * 3, row;

		im.pixels = malloc(n);
		for (size_t i = 0; i < n; i++)
			im.pixels[i] = (uint8_t)(rng_next() >> 7);
		img_resize_use_simd(0);
		if (img_resize_crop(&im, want, &err) != 0 ||
		    img_cropper_init(&c, im.width, im.height, &err) != 0) {
			bad++;
			img_rgb_free(&im);
			continue;
		}
		img_resize_use_simd(1);
		row = (size_t)(c.col_last - c.col_first) * 3;
		for (uint32_t y = c.row_first; y < c.row_last; y++) {
			const uint8_t *one = map + span - row;

			memcpy(map + span - row, im.pixels + ((size_t)y * im.width + c.col_first) * 3, row);
			img_cropper_put_rows(&c, y, 1, &one);
		}
		img_cropper_finish(&c, got);
		if (memcmp(want, got, sizeof(want)) != 0) {
			printf("# %ux%u: the row-fed crop differs from the scalar one\n", im.width,
			       im.height);
			bad++;
		}
		img_cropper_free(&c);
		img_rgb_free(&im);
	}
	munmap(map, span + page);
	tap_ok(bad == 0,
	       "rows fed with nothing past col_last: no read beyond them, same bytes as the scalar pass (%zu "
	       "shapes)",
	       sizeof(sizes) / sizeof(sizes[0]));
}

/* ---------------------------------------------------------------------- */
/* The fast path and img_decode_crop()                                      */
/* ---------------------------------------------------------------------- */

/* img_decode() + img_resize_crop(); returns the status and the decoded size. */
static int crop_two_step(const uint8_t *d, size_t n, const struct img_decode_opts *o, uint8_t *crop,
			 uint32_t *w, uint32_t *h, struct seer_err *err)
{
	struct img_rgb im;
	int rc = img_decode(d, n, o, &im, err);

	if (rc == 0)
		rc = img_resize_crop(&im, crop, err);
	*w = im.width;
	*h = im.height;
	img_rgb_free(&im);
	return rc;
}

/* Set the EXIF orientation of a JPEG made with an exif_app1(.., 0, 3, ..) block. */
static void jpeg_set_orientation(uint8_t *j, size_t len, int o)
{
	size_t i;

	for (i = 0; i + 6 < len; i++)
		if (memcmp(j + i, "Exif\0\0II", 8) == 0) {
			j[i + 6 + 8 + 2 + 12 + 8] = (uint8_t)o;
			return;
		}
	abort(); /* the test built it wrong */
}

static void test_fast(void)
{
	static const struct {
		int w, h;
		unsigned s;
	} sizes[] = {{511, 700, 1},   {700, 512, 2},   {1023, 2047, 2}, {1100, 1030, 4},
		     {2047, 2100, 4}, {2048, 2048, 8}, {4000, 3000, 8}, {1100, 5000, 4}};
	struct img_decode_opts fast = defaults, small;
	struct jpeg_enc e = {
		.w = 2000, .h = 1200, .comps = 3, .in_cs = JCS_RGB, .jpeg_cs = JCS_UNKNOWN, .quality = 80};
	uint8_t crop[IMG_CROP * IMG_CROP * 3], crop_fast[IMG_CROP * IMG_CROP * 3], app1[128];
	struct img_rgb im, ex;
	struct seer_err err;
	uint8_t *j, *px, *p;
	size_t len, i, off;
	uint32_t w, h;
	int bad = 0, rc;
	double diff = 0;

	fast.fast = 1;
	for (i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++) {
		uint32_t sw = (uint32_t)(sizes[i].w + sizes[i].s - 1) / sizes[i].s;
		uint32_t sh = (uint32_t)(sizes[i].h + sizes[i].s - 1) / sizes[i].s;

		j = jpeg_rgb(sizes[i].w, sizes[i].h, 75, &len);
		rc = img_decode(j, len, &fast, &im, &err);
		if (rc != 0 || im.width != sw || im.height != sh || (sw < sh ? sw : sh) < IMG_RESIZE) {
			printf("# fast %dx%d: %s, %ux%u, want %ux%u\n", sizes[i].w, sizes[i].h,
			       rc ? err.msg : "ok", (unsigned)im.width, (unsigned)im.height, (unsigned)sw,
			       (unsigned)sh);
			bad++;
		}
		if (sizes[i].s == 1) { /* nothing to scale: the exact decode, byte for byte */
			rc = decode(j, len, &ex, &err);
			bad += rc != 0 || ex.width != im.width ||
			       memcmp(ex.pixels, im.pixels, (size_t)sw * sh * 3);
			img_rgb_free(&ex);
		}
		if (sizes[i].w == 4000) {
			/* the crops of both paths see the same scene */
			rc = crop_two_step(j, len, &defaults, crop, &w, &h, &err);
			rc |= img_resize_crop(&im, crop_fast, &err);
			diff = rc ? 255 : mean_abs_diff(crop, crop_fast, sizeof(crop));
			bad += rc != 0 || w != 4000 || h != 3000;
		}
		img_rgb_free(&im);
		free(j);
	}
	tap_ok(bad == 0,
	       "fast path: %zu JPEGs decoded at 1/s, s the largest of 8, 4, 2, 1 keeping the shorter "
	       "side >= 256; s = 1 is the exact decode",
	       sizeof(sizes) / sizeof(sizes[0]));
	tap_ok(diff < 3.0,
	       "fast path: the 224x224 crop of a 4000x3000 JPEG is close to the exact one "
	       "(mean abs diff %.2f)",
	       diff);

	/* a transposing orientation: the shorter side is the same, and so is s */
	px = pattern_image(2000, 1200, 3);
	e.app1 = app1;
	e.app1_len = exif_app1(app1, 0, 3, 6);
	j = jpeg_encode(&e, px, &len);
	rc = img_decode(j, len, &fast, &im, &err);
	tap_ok(rc == 0 && im.width == 300 && im.height == 500,
	       "fast path: 2000x1200 JPEG with EXIF orientation 6 -> 1/4 -> 500x300 -> turned to %ux%u",
	       (unsigned)im.width, (unsigned)im.height);
	img_rgb_free(&im);
	free(j);
	free(px);

	/* PNG ignores it */
	{
		struct png_enc pe = {.w = 1200, .h = 900, .depth = 8, .color = PNG_COLOR_TYPE_RGB};

		px = pattern_image(1200, 900, 3);
		p = png_encode(&pe, px, 1200 * 3, &len);
		rc = img_decode(p, len, &fast, &im, &err);
		tap_ok(rc == 0 && im.width == 1200 && im.height == 900 &&
			       memcmp(im.pixels, px, (size_t)1200 * 900 * 3) == 0,
		       "fast path: a 1200x900 PNG decodes at full size, unchanged");
		img_rgb_free(&im);
		free(p);
		free(px);
	}

	/* the limits hold for the size in the header, not the reduced one */
	j = jpeg_rgb(16, 16, 90, &len);
	off = jpeg_find_marker(j, len, 0xc0);
	j[off + 5] = 0x17, j[off + 6] = 0x70; /* height 6000 */
	j[off + 7] = 0x1f, j[off + 8] = 0x40; /* width 8000 */
	rc = img_decode(j, len, &fast, &im, &err);
	tap_ok(rc == SEER_ETOOLARGE && strstr(err.msg, "8000x6000") != NULL,
	       "fast path: JPEG of 8000x6000 (48 MP, 1000x750 at 1/8) -> SEER_ETOOLARGE (%s)", err.msg);
	rc = img_decode_crop(j, len, &fast, crop, NULL, &err);
	tap_ok(rc == SEER_ETOOLARGE, "... and from img_decode_crop() too (%s)", err.msg);
	small = fast;
	small.limits.max_side = 4000;
	j[off + 5] = 0x03, j[off + 6] = 0x20; /* height 800 */
	j[off + 7] = 0x0f, j[off + 8] = 0xa1; /* width 4001 */
	rc = img_decode_crop(j, len, &small, crop, NULL, &err);
	tap_ok(rc == SEER_ETOOLARGE && strstr(err.msg, "a side") != NULL,
	       "fast path: 4001 px wide with max_side 4000 -> SEER_ETOOLARGE (%s)", err.msg);
	free(j);
}

/* One JPEG encoding for test_decode_crop(). */
struct crop_variant {
	const char *name;
	int comps;
	J_COLOR_SPACE in_cs, jpeg_cs;
	int samp_h, samp_v, progressive, restart_rows;
	int all_orientations;
	const jpeg_scan_info *scans; /* a progressive script of its own */
	int nscans;
};

/*
 * img_decode_crop() against img_decode() + img_resize_crop() of the same
 * JPEG in orientations 1-8 (or 1, 3, 6), exact and fast. Returns the
 * number of disagreements.
 */
static int crop_agree(const struct crop_variant *v, int w, int h)
{
	struct jpeg_enc e = {.w = w,
			     .h = h,
			     .comps = v->comps,
			     .in_cs = v->in_cs,
			     .jpeg_cs = v->jpeg_cs,
			     .quality = 85,
			     .progressive = v->progressive,
			     .restart_rows = v->restart_rows,
			     .samp_h = v->samp_h,
			     .samp_v = v->samp_v,
			     .scans = v->scans,
			     .nscans = v->nscans};
	static const int some[] = {1, 3, 6};
	uint8_t a[IMG_CROP * IMG_CROP * 3], b[IMG_CROP * IMG_CROP * 3], app1[128], *px, *j;
	struct img_decode_opts o = defaults;
	struct seer_err err;
	size_t len;
	uint32_t dw, dh;
	int k, n = v->all_orientations ? 8 : 3, bad = 0, ra, rb;

	px = pattern_image((size_t)w, (size_t)h, v->comps);
	e.app1 = app1;
	e.app1_len = exif_app1(app1, 0, 3, 1);
	j = jpeg_encode(&e, px, &len);
	for (k = 0; k < n; k++) {
		int orient = v->all_orientations ? k + 1 : some[k];

		jpeg_set_orientation(j, len, orient);
		for (o.fast = 0; o.fast < 2; o.fast++) {
			struct img_size size = {0, 0};
			uint32_t ew = (uint32_t)(orient >= 5 ? h : w), eh = (uint32_t)(orient >= 5 ? w : h);

			ra = img_decode_crop(j, len, &o, a, &size, &err);
			rb = crop_two_step(j, len, &o, b, &dw, &dh, &err);
			if (ra != 0 || rb != 0 || memcmp(a, b, sizeof(a)) != 0) {
				printf("# %s %dx%d orientation %d%s: %s\n", v->name, w, h, orient,
				       o.fast ? " fast" : "", ra || rb ? err.msg : "crops differ");
				bad++;
			} else if (size.width != ew || size.height != eh) {
				printf("# %s %dx%d orientation %d%s: size %ux%u, expected %ux%u\n", v->name, w, h,
				       orient, o.fast ? " fast" : "", size.width, size.height, ew, eh);
				bad++;
			}
		}
	}
	free(j);
	free(px);
	return bad;
}

static void test_decode_crop(void)
{
	/* progressive scripts that stop early: libjpeg then smooths blocks across their neighbours */
	static const jpeg_scan_info dc_only[] = {{3, {0, 1, 2}, 0, 0, 0, 0}};
	static const jpeg_scan_info dc_some_ac[] = {{3, {0, 1, 2}, 0, 0, 0, 1}, {1, {0}, 1, 5, 0, 0}};
	static const struct crop_variant base = {"4:2:0", 3, JCS_RGB, JCS_UNKNOWN, 0, 0, 0, 0, 1, NULL, 0};
	static const struct crop_variant variants[] = {
		{"progressive, DC scan only", 3, JCS_RGB, JCS_UNKNOWN, 0, 0, 1, 0, 1, dc_only, 1},
		{"progressive 4:1:1, DC and luma AC 1-5 only", 3, JCS_RGB, JCS_UNKNOWN, 4, 1, 1, 0, 0,
		 dc_some_ac, 2},
		{"4:2:2", 3, JCS_RGB, JCS_UNKNOWN, 2, 1, 0, 0, 0, NULL, 0},
		{"4:4:0", 3, JCS_RGB, JCS_UNKNOWN, 1, 2, 0, 0, 0, NULL, 0},
		{"4:4:4", 3, JCS_RGB, JCS_UNKNOWN, 1, 1, 0, 0, 0, NULL, 0},
		{"4:1:1", 3, JCS_RGB, JCS_UNKNOWN, 4, 1, 0, 0, 0, NULL, 0},
		{"progressive 4:2:0", 3, JCS_RGB, JCS_UNKNOWN, 0, 0, 1, 0, 1, NULL, 0},
		{"restart markers", 3, JCS_RGB, JCS_UNKNOWN, 0, 0, 0, 1, 0, NULL, 0},
		{"grayscale", 1, JCS_GRAYSCALE, JCS_UNKNOWN, 0, 0, 0, 0, 0, NULL, 0},
		{"CMYK", 4, JCS_CMYK, JCS_CMYK, 0, 0, 0, 0, 1, NULL, 0},
		{"YCCK", 4, JCS_CMYK, JCS_YCCK, 0, 0, 0, 0, 0, NULL, 0},
	};
	static const int sizes[][2] = {{1203, 907}, {907, 1203}, {2050, 611},
				       {333, 1500}, {67, 45},	 {256, 300}};
	uint8_t crop[IMG_CROP * IMG_CROP * 3], crop2[IMG_CROP * IMG_CROP * 3], *j, *copy;
	struct img_decode_opts fast = defaults;
	struct seer_err err;
	size_t i, len, cut, step, off, end;
	uint32_t w, h;
	int bad = 0, rc, f;

	for (i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++)
		bad += crop_agree(&base, sizes[i][0], sizes[i][1]);
	tap_ok(bad == 0,
	       "img_decode_crop() == img_decode() + img_resize_crop(): 4:2:0, %zu sizes, "
	       "orientations 1-8, exact and fast",
	       sizeof(sizes) / sizeof(sizes[0]));
	for (i = 0; i < sizeof(variants) / sizeof(variants[0]); i++) {
		bad = crop_agree(&variants[i], 1203, 907);
		tap_ok(bad == 0,
		       "img_decode_crop() == img_decode() + img_resize_crop(): %s 1203x907, "
		       "orientations %s, exact and fast",
		       variants[i].name, variants[i].all_orientations ? "1-8" : "1, 3, 6");
	}

	/* cut anywhere, the skipped rows included: truncated, exact and fast */
	fast.fast = 1;
	j = jpeg_rgb(600, 1500, 80, &len);
	step = len / 150;
	bad = 0;
	for (cut = 1; cut < len; cut += cut + 200 < len ? step : 1) {
		copy = malloc(cut);
		memcpy(copy, j, cut);
		for (f = 0; f < 2; f++) {
			rc = img_decode_crop(copy, cut, f ? &fast : &defaults, crop, NULL, &err);
			if (rc != SEER_ETRUNC && !bad++)
				printf("# cut at %zu%s: %d %s\n", cut, f ? " fast" : "", rc, err.msg);
		}
		free(copy);
	}
	tap_ok(bad == 0, "img_decode_crop() of a 600x1500 JPEG cut at ~350 lengths -> SEER_ETRUNC (%d wrong)",
	       bad);

	/* a stray marker in the rows above and below the window: still corrupt */
	off = jpeg_find_marker(j, len, 0xda);
	off += 2 + (j[off + 2] << 8 | j[off + 3]);
	end = jpeg_find_marker(j + off, len - off, 0xd9) + off;
	copy = malloc(len);
	bad = 0;
	for (i = 0; i < 2; i++) {
		size_t at = off + (end - off) * (i ? 95 : 5) / 100;

		memcpy(copy, j, len);
		copy[at] = 0xff;
		copy[at + 1] = 0xd3;
		for (f = 0; f < 2; f++) {
			rc = img_decode_crop(copy, len, f ? &fast : &defaults, crop, NULL, &err);
			if (rc != SEER_ECORRUPT && !bad++)
				printf("# stray marker at %zu%s: %d %s\n", at, f ? " fast" : "", rc, err.msg);
		}
	}
	rc = img_decode_crop(j, len, &defaults, crop, NULL, &err);
	rc |= crop_two_step(j, len, &defaults, crop2, &w, &h, &err);
	tap_ok(bad == 0 && rc == 0 && memcmp(crop, crop2, sizeof(crop)) == 0,
	       "img_decode_crop(): a stray RST marker in the skipped top or bottom rows -> SEER_ECORRUPT");
	free(copy);
	free(j);

	/* PNG rows streamed into the cropper: every layout, and interlaced (decoded whole) */
	{
		static const png_color plte[4] = {{200, 10, 20}, {5, 250, 6}, {7, 8, 255}, {90, 91, 92}};
		static const struct {
			const char *name;
			int depth, color, interlace, bytes; /* bytes: per pixel, 0 for < 8 bits */
		} layouts[] = {
			{"RGB", 8, PNG_COLOR_TYPE_RGB, 0, 3},
			{"RGBA", 8, PNG_COLOR_TYPE_RGB_ALPHA, 0, 4},
			{"gray", 8, PNG_COLOR_TYPE_GRAY, 0, 1},
			{"2-bit gray", 2, PNG_COLOR_TYPE_GRAY, 0, 0},
			{"16-bit gray", 16, PNG_COLOR_TYPE_GRAY, 0, 2},
			{"16-bit RGB", 16, PNG_COLOR_TYPE_RGB, 0, 6},
			{"palette", 8, PNG_COLOR_TYPE_PALETTE, 0, 1},
			{"interlaced RGB", 8, PNG_COLOR_TYPE_RGB, 1, 3},
		};
		const uint32_t pw = 701, ph = 301;
		uint8_t *src = pattern_image(pw, ph, 6), *p;

		bad = 0;
		for (i = 0; i < sizeof(layouts) / sizeof(layouts[0]); i++) {
			struct png_enc pe = {.w = pw,
					     .h = ph,
					     .depth = layouts[i].depth,
					     .color = layouts[i].color,
					     .interlace = layouts[i].interlace,
					     .plte = plte,
					     .nplte = 4};
			size_t rb = layouts[i].bytes ? pw * (size_t)layouts[i].bytes : (pw * 2 + 7) / 8, k;
			uint8_t *rows = malloc(rb * ph);

			/* any bytes are valid samples, once palette indices and 2-bit ones are in range */
			for (k = 0; k < rb * ph; k++)
				rows[k] = layouts[i].color == PNG_COLOR_TYPE_PALETTE ? src[k] % 4 : src[k];
			if (layouts[i].color != PNG_COLOR_TYPE_PALETTE)
				pe.plte = NULL;
			p = png_encode(&pe, rows, rb, &len);
			struct img_size size = {0, 0};

			rc = img_decode_crop(p, len, &defaults, crop, &size, &err);
			rc |= crop_two_step(p, len, &defaults, crop2, &w, &h, &err);
			if (rc != 0 || memcmp(crop, crop2, sizeof(crop)) != 0) {
				printf("# PNG %s: %s\n", layouts[i].name, rc ? err.msg : "crops differ");
				bad++;
			} else if (size.width != w || size.height != h) {
				printf("# PNG %s: size %ux%u, decoded %ux%u\n", layouts[i].name, size.width,
				       size.height, w, h);
				bad++;
			}
			if (i == 0) {
				/* the rows below the window are still read: truncated or a bad CRC fails */
				size_t iend = png_find_chunk(p, len, "IEND");

				for (cut = len / 2; cut < len; cut += (len - cut) / 3 + 1) {
					rc = img_decode_crop(p, cut, &defaults, crop, NULL, &err);
					bad += rc != SEER_ETRUNC;
				}
				p[iend - 1] ^= 1; /* the last IDAT's CRC */
				rc = img_decode_crop(p, len, &defaults, crop, NULL, &err);
				bad += rc != SEER_ECORRUPT;
			}
			free(rows);
			free(p);
		}
		tap_ok(bad == 0,
		       "img_decode_crop() == img_decode() + img_resize_crop() on 701x301 PNGs: %zu "
		       "layouts; cut or with a bad last CRC it fails",
		       sizeof(layouts) / sizeof(layouts[0]));
		free(src);
	}

	/* the errors of the entry point itself */
	rc = img_decode_crop(NULL, 0, NULL, crop, NULL, &err);
	tap_ok(rc == SEER_EEMPTY, "img_decode_crop() of 0 bytes -> SEER_EEMPTY (%s)", err.msg);
	rc = img_decode_crop("GIF89a\1\0\1\0", 10, NULL, crop, NULL, &err);
	tap_ok(rc == SEER_EUNSUPPORTED && strstr(err.msg, "GIF") != NULL,
	       "img_decode_crop() of a GIF -> SEER_EUNSUPPORTED (%s)", err.msg);
	rc = img_decode_crop("\xff\xd8\xff", 3, NULL, NULL, NULL, &err);
	tap_ok(rc == SEER_EINVAL, "img_decode_crop() without an output buffer -> SEER_EINVAL");
	{
		struct png_enc pe = {.w = 300, .h = 257, .depth = 8, .color = PNG_COLOR_TYPE_RGB};
		uint8_t *px = pattern_image(300, 257, 3), *p = png_encode(&pe, px, 300 * 3, &len);

		rc = img_decode_crop(p, len, &fast, crop, NULL, &err);
		rc |= crop_two_step(p, len, &defaults, crop2, &w, &h, &err);
		tap_ok(rc == 0 && memcmp(crop, crop2, sizeof(crop)) == 0,
		       "img_decode_crop() of a PNG == img_decode() + img_resize_crop()");
		free(p);
		free(px);
	}
}

static void test_normalize(void)
{
	static uint8_t crop[IMG_CROP * IMG_CROP * 3];
	static float out[3 * IMG_CROP * IMG_CROP];
	const float mean[3] = {0.485f, 0.456f, 0.406f}, std[3] = {0.229f, 0.224f, 0.225f};
	size_t n = IMG_CROP * IMG_CROP, i;
	int c, bad = 0;

	for (i = 0; i < n * 3; i++)
		crop[i] = (uint8_t)(i * 31 + i / 7);
	img_normalize(crop, out);
	for (i = 0; i < n; i++)
		for (c = 0; c < 3; c++) {
			float want = ((float)crop[i * 3 + c] / 255.0f - mean[c]) / std[c];

			bad += out[c * n + i] != want;
		}
	tap_ok(bad == 0 && fabsf(out[0] - (0 - 0.485f) / 0.229f) < 1e-6f,
	       "img_normalize: HWC bytes -> CHW (x / 255 - mean) / std in float32");
}

int main(void)
{
	img_decode_opts_default(&defaults);
	test_defaults_and_sniff();
	test_empty_and_unsupported();
	test_jpeg_valid();
	test_truncation();
	test_too_large();
	test_corrupt();
	test_bombs();
	test_scan_bomb();
	test_exif();
	test_png_modes();
	test_resize();
	test_resize_row_ends();
	test_fast();
	test_decode_crop();
	test_normalize();
	img_rgb_free(NULL);
	img_rgb_free(&(struct img_rgb){0});
	tap_ok(1, "img_rgb_free accepts NULL and a zeroed struct");
	return tap_done();
}
