/*
 * img_decode.c - JPEG (libjpeg-turbo) and PNG (libpng) decoding from memory
 * to 8-bit RGB the way PIL's Image.open(...).convert('RGB') does it, with
 * format sniffing, limits checked before allocation and EXIF orientation.
 */
#include "img.h"

#include <setjmp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jerror.h>
#include <jpeglib.h>
#include <png.h>

/* More scans than any sane progressive JPEG has; stops scan bombs. */
#define IMG_JPEG_MAX_SCANS 1000
/* Largest ancillary chunk libpng may allocate (all of them are skipped). */
#define IMG_PNG_CHUNK_MAX (8u << 20)

void img_limits_default(struct img_limits *lim)
{
	lim->max_pixels = 40000000;
	lim->max_side = 12000;
	lim->max_bytes = (size_t)50 << 20;
}

void img_decode_opts_default(struct img_decode_opts *o)
{
	img_limits_default(&o->limits);
	o->exif_rotate = 1;
	o->fast = 0;
}

void img_rgb_free(struct img_rgb *im)
{
	if (im == NULL)
		return;
	free(im->pixels);
	im->pixels = NULL;
	im->width = 0;
	im->height = 0;
}

/* ---------------------------------------------------------------------- */
/* Sniffing                                                                 */
/* ---------------------------------------------------------------------- */

static const uint8_t jpeg_magic[] = {0xff, 0xd8, 0xff};
static const uint8_t png_magic[] = {0x89, 'P', 'N', 'G', '\r', '\n', 0x1a, '\n'};

struct img_magic {
	size_t off;
	size_t len;
	const char *bytes;
	const char *name;
};

/* Formats we refuse, so the message can say what the client sent. */
static const struct img_magic other_magics[] = {
	{0, 4, "GIF8", "GIF"},
	{0, 2, "BM", "BMP"},
	{0, 4, "II*\0", "TIFF"},
	{0, 4, "MM\0*", "TIFF"},
	{0, 4, "II+\0", "BigTIFF"},
	{0, 4, "MM\0+", "BigTIFF"},
	{0, 12, "\0\0\0\x0cjP  \r\n\x87\n", "JPEG 2000"},
	{0, 4, "\xff\x4f\xff\x51", "JPEG 2000"},
	{0, 12, "\0\0\0\x0cJXL \r\n\x87\n", "JPEG XL"},
	{0, 2, "\xff\x0a", "JPEG XL"},
	{0, 4, "\x8aMNG", "MNG"},
	{0, 4, "\x8bJNG", "JNG"},
	{0, 4, "\0\0\1\0", "ICO"},
	{0, 4, "\0\0\2\0", "CUR"},
	{0, 4, "8BPS", "PSD"},
	{0, 4, "qoif", "QOI"},
	{0, 4, "\x76\x2f\x31\x01", "OpenEXR"},
	{0, 4, "DDS ", "DDS"},
	{0, 4, "%PDF", "PDF"},
	{0, 4, "%!PS", "PostScript"},
	{0, 4, "<svg", "SVG"},
	{0, 5, "<?xml", "XML/SVG"},
	{0, 5, "<html", "HTML"},
	{0, 9, "<!DOCTYPE", "HTML"},
	{0, 4, "PK\3\4", "ZIP"},
	{0, 2, "\x1f\x8b", "gzip"},
};

/* The name of an ISO-BMFF brand ("ftyp" box), or NULL. */
static const char *sniff_ftyp(const uint8_t *p, size_t len)
{
	static const char *const heif[] = {"heic", "heix", "hevc", "hevx", "heim", "heis", "mif1", "msf1"};
	size_t i;

	if (len < 12 || memcmp(p + 4, "ftyp", 4) != 0)
		return NULL;
	for (i = 0; i < sizeof(heif) / sizeof(heif[0]); i++)
		if (memcmp(p + 8, heif[i], 4) == 0)
			return "HEIF/HEIC";
	if (memcmp(p + 8, "avif", 4) == 0 || memcmp(p + 8, "avis", 4) == 0)
		return "AVIF";
	if (memcmp(p + 8, "crx ", 4) == 0)
		return "Canon CR3";
	return "ISO media (MP4/MOV)";
}

enum img_format img_sniff(const void *data, size_t len, const char **seen_name)
{
	const uint8_t *p = data;
	const char *name = NULL;
	enum img_format fmt = IMG_FORMAT_UNKNOWN;
	size_t i;

	if (p == NULL)
		len = 0;
	if (len >= sizeof(jpeg_magic) && memcmp(p, jpeg_magic, sizeof(jpeg_magic)) == 0) {
		fmt = IMG_FORMAT_JPEG;
		name = "JPEG";
	} else if (len >= sizeof(png_magic) && memcmp(p, png_magic, sizeof(png_magic)) == 0) {
		fmt = IMG_FORMAT_PNG;
		name = "PNG";
	} else if (len >= 12 && memcmp(p, "RIFF", 4) == 0 && memcmp(p + 8, "WEBP", 4) == 0) {
		name = "WebP";
	} else if ((name = sniff_ftyp(p, len)) == NULL) {
		for (i = 0; i < sizeof(other_magics) / sizeof(other_magics[0]); i++) {
			const struct img_magic *m = &other_magics[i];

			if (len >= m->off + m->len && memcmp(p + m->off, m->bytes, m->len) == 0) {
				name = m->name;
				break;
			}
		}
		if (name == NULL && len >= 3 && p[0] == 'P' && p[1] >= '1' && p[1] <= '7' &&
		    (p[2] == '\n' || p[2] == ' ' || p[2] == '\r' || p[2] == '\t'))
			name = "PNM";
	}
	if (seen_name != NULL)
		*seen_name = name;
	return fmt;
}

/* 1 if the whole input is a proper prefix of magic: a cut-off upload. */
static int is_magic_prefix(const uint8_t *p, size_t len, const uint8_t *magic, size_t n)
{
	return len < n && memcmp(p, magic, len) == 0;
}

/* ---------------------------------------------------------------------- */
/* Limits and orientation                                                   */
/* ---------------------------------------------------------------------- */

/* 0 if w x h fits lim, else SEER_ETOOLARGE with a message naming the cap. */
static int limits_check(const struct img_limits *lim, const char *fmt, uint64_t w, uint64_t h,
			struct seer_err *err)
{
	if (lim->max_side != 0 && (w > lim->max_side || h > lim->max_side))
		return seer_err_set(err, SEER_ETOOLARGE,
				    "img_decode: %s is %llux%llu, over the limit of %u pixels a side", fmt,
				    (unsigned long long)w, (unsigned long long)h, (unsigned)lim->max_side);
	if (lim->max_pixels != 0 && w * h > lim->max_pixels)
		return seer_err_set(err, SEER_ETOOLARGE,
				    "img_decode: %s is %llux%llu, over the limit of %llu pixels", fmt,
				    (unsigned long long)w, (unsigned long long)h,
				    (unsigned long long)lim->max_pixels);
	return 0;
}

static uint32_t rd16(const uint8_t *p, int le)
{
	return le ? (uint32_t)p[0] | (uint32_t)p[1] << 8 : (uint32_t)p[0] << 8 | p[1];
}

static uint32_t rd32(const uint8_t *p, int le)
{
	return le ? rd16(p, 1) | rd16(p + 2, 1) << 16 : rd16(p, 0) << 16 | rd16(p + 2, 0);
}

/*
 * The EXIF orientation (1..8) in a TIFF structure of n bytes (what follows
 * "Exif\0\0" in APP1), or 0 when there is none or it cannot be read. As in
 * PIL: the byte order comes from "II"/"MM" (the 42 may be in either order),
 * entries cut off by the end of the block are ignored, and only a single
 * integer value (BYTE, SHORT, LONG, SSHORT, SLONG) counts.
 */
static int exif_orientation(const uint8_t *p, size_t n)
{
	size_t off, count, i;
	int le;

	if (n < 8)
		return 0;
	if (p[0] == 'I' && p[1] == 'I')
		le = 1;
	else if (p[0] == 'M' && p[1] == 'M')
		le = 0;
	else
		return 0;
	if (!((p[2] == 0 && p[3] == 42) || (p[2] == 42 && p[3] == 0)))
		return 0;
	off = rd32(p + 4, le);
	if (off > n || n - off < 2)
		return 0;
	count = rd16(p + off, le);
	if (count > (n - off - 2) / 12)
		count = (n - off - 2) / 12;
	for (i = 0; i < count; i++) {
		const uint8_t *e = p + off + 2 + 12 * i;
		uint32_t type, v;

		if (rd16(e, le) != 0x0112)
			continue;
		type = rd16(e + 2, le);
		if (rd32(e + 4, le) != 1)
			return 0;
		if (type == 1)
			v = e[8];
		else if (type == 3 || type == 8)
			v = rd16(e + 8, le);
		else if (type == 4 || type == 9)
			v = rd32(e + 8, le);
		else
			return 0;
		return v >= 1 && v <= 8 ? (int)v : 0;
	}
	return 0;
}

/*
 * Where orientation o (1..8; anything else counts as 1) finds its pixels:
 * pixel (x, y) of the oriented image is pixel number base + x * dx + y * dy
 * of the stored w x h image, as PIL's ImageOps.exif_transpose() has it.
 * Returns 1 when o swaps width and height, else 0.
 */
static int orient_steps(int o, ptrdiff_t w, ptrdiff_t h, ptrdiff_t *base, ptrdiff_t *dx, ptrdiff_t *dy)
{
	switch (o) {
	case 2: /* FLIP_LEFT_RIGHT */
		*base = w - 1, *dx = -1, *dy = w;
		return 0;
	case 3: /* ROTATE_180 */
		*base = (h - 1) * w + w - 1, *dx = -1, *dy = -w;
		return 0;
	case 4: /* FLIP_TOP_BOTTOM */
		*base = (h - 1) * w, *dx = 1, *dy = -w;
		return 0;
	case 5: /* TRANSPOSE */
		*base = 0, *dx = w, *dy = 1;
		return 1;
	case 6: /* ROTATE_270 */
		*base = (h - 1) * w, *dx = -w, *dy = 1;
		return 1;
	case 7: /* TRANSVERSE */
		*base = (h - 1) * w + w - 1, *dx = -w, *dy = -1;
		return 1;
	case 8: /* ROTATE_90 */
		*base = w - 1, *dx = w, *dy = -1;
		return 1;
	default:
		*base = 0, *dx = 1, *dy = w;
		return 0;
	}
}

/*
 * Copy rows [y0, y1) of the ow pixels wide image that orientation o makes
 * of src (w x h RGB) to dst, (y1 - y0) rows of ow pixels. Tiles keep the
 * transposing orientations cache-friendly.
 */
static void orient_rows(const uint8_t *src, size_t w, size_t h, int o, size_t ow, size_t y0, size_t y1,
			uint8_t *dst)
{
	enum { TILE = 64 };
	ptrdiff_t base, dx, dy;
	size_t tx, ty, x, y;

	orient_steps(o, (ptrdiff_t)w, (ptrdiff_t)h, &base, &dx, &dy);
	for (ty = y0; ty < y1; ty += TILE) {
		for (tx = 0; tx < ow; tx += TILE) {
			size_t ty1 = ty + TILE < y1 ? ty + TILE : y1;
			size_t tx1 = tx + TILE < ow ? tx + TILE : ow;

			for (y = ty; y < ty1; y++) {
				uint8_t *d = dst + ((y - y0) * ow + tx) * 3;
				ptrdiff_t s = base + (ptrdiff_t)tx * dx + (ptrdiff_t)y * dy;

				for (x = tx; x < tx1; x++, d += 3, s += dx)
					memcpy(d, src + s * 3, 3);
			}
		}
	}
}

/*
 * Transpose im as PIL's ImageOps.exif_transpose() does for orientation
 * (2..8; anything else leaves im alone). Replaces im->pixels. Returns 0 or
 * SEER_ENOMEM, in which case im is unchanged and still owned by the caller.
 */
static int orientation_apply(struct img_rgb *im, int orientation, struct seer_err *err)
{
	ptrdiff_t base, dx, dy;
	size_t ow = im->width, oh = im->height;
	uint8_t *dst;

	if (orientation < 2 || orientation > 8)
		return 0;
	if (orient_steps(orientation, im->width, im->height, &base, &dx, &dy)) {
		ow = im->height;
		oh = im->width;
	}
	dst = malloc(ow * oh * 3);
	if (dst == NULL)
		return seer_err_set(err, SEER_ENOMEM, "img_decode: out of memory rotating a %zux%zu image",
				    ow, oh);
	orient_rows(im->pixels, im->width, im->height, orientation, ow, 0, oh, dst);
	free(im->pixels);
	im->pixels = dst;
	im->width = (uint32_t)ow;
	im->height = (uint32_t)oh;
	return 0;
}

/* ---------------------------------------------------------------------- */
/* JPEG                                                                     */
/* ---------------------------------------------------------------------- */

/* Decoder state; lives outside the function that calls setjmp. */
struct jpeg_state {
	struct jpeg_decompress_struct cinfo;
	struct jpeg_error_mgr jerr;
	struct jpeg_progress_mgr progress;
	jmp_buf jb;
	int created;
	struct seer_err err;
	const struct img_decode_opts *opts;
	int orientation;
	struct img_rgb im;	    /* img_decode(): the whole image */
	uint8_t *crop;		    /* img_decode_crop(): where the 224x224x3 result goes */
	struct img_cropper cropper; /* img_decode_crop(): the resize it feeds */
	struct img_rgb win;	    /* img_decode_crop(), transposing orientations: the stored window */
};

static struct jpeg_state *jpeg_state_of(j_common_ptr cinfo)
{
	return (struct jpeg_state *)(void *)((char *)cinfo->err - offsetof(struct jpeg_state, jerr));
}

/* Record code and libjpeg's current message, then unwind to jpeg_run(). */
static void jpeg_fail(j_common_ptr cinfo, int code, const char *what)
{
	struct jpeg_state *st = jpeg_state_of(cinfo);
	char buf[JMSG_LENGTH_MAX];

	cinfo->err->format_message(cinfo, buf);
	seer_err_set(&st->err, code, "img_decode: JPEG %s: %s", what, buf);
	longjmp(st->jb, 1);
}

/* Replaces libjpeg's error_exit, which would call exit(). */
static void jpeg_on_error(j_common_ptr cinfo)
{
	switch (cinfo->err->msg_code) {
	case JERR_OUT_OF_MEMORY:
		jpeg_fail(cinfo, SEER_ENOMEM, "out of memory");
		break;
	case JERR_NO_BACKING_STORE:
	case JERR_IMAGE_TOO_BIG:
	case JERR_WIDTH_OVERFLOW:
		jpeg_fail(cinfo, SEER_ETOOLARGE, "too large");
		break;
	case JERR_INPUT_EMPTY:
	case JERR_INPUT_EOF:
		jpeg_fail(cinfo, SEER_ETRUNC, "truncated");
		break;
	case JERR_ARITH_NOTIMPL:
	case JERR_BAD_PRECISION:
	case JERR_CCIR601_NOTIMPL:
	case JERR_COMPONENT_COUNT:
	case JERR_CONVERSION_NOTIMPL:
	case JERR_NOTIMPL:
	case JERR_NOT_COMPILED:
	case JERR_SOF_UNSUPPORTED:
		jpeg_fail(cinfo, SEER_EUNSUPPORTED, "unsupported");
		break;
	default:
		jpeg_fail(cinfo, SEER_ECORRUPT, "corrupt");
		break;
	}
}

/* Warnings about the data are failures; trace messages are dropped. */
static void jpeg_on_message(j_common_ptr cinfo, int level)
{
	if (level >= 0)
		return;
	switch (cinfo->err->msg_code) {
	case JWRN_JFIF_MAJOR: /* metadata only: the pixels are sound */
	case JWRN_ADOBE_XFORM:
	case JWRN_BOGUS_ICC:
		return;
	case JWRN_JPEG_EOF:
		jpeg_fail(cinfo, SEER_ETRUNC, "truncated");
		break;
	default:
		jpeg_fail(cinfo, SEER_ECORRUPT, "corrupt");
		break;
	}
}

static void jpeg_on_output(j_common_ptr cinfo)
{
	(void)cinfo;
}

/* Called at least once per scan: refuse progressive scan bombs. */
static void jpeg_on_progress(j_common_ptr cinfo)
{
	struct jpeg_state *st;

	if (!cinfo->is_decompressor || ((j_decompress_ptr)cinfo)->input_scan_number <= IMG_JPEG_MAX_SCANS)
		return;
	st = jpeg_state_of(cinfo);
	seer_err_set(&st->err, SEER_ETOOLARGE,
		     "img_decode: JPEG has more than %d scans (progressive scan bomb?)", IMG_JPEG_MAX_SCANS);
	longjmp(st->jb, 1);
}

/* The orientation in the first APP1 "Exif" segment (as PIL picks it), or 0. */
static int jpeg_orientation(j_decompress_ptr cinfo)
{
	jpeg_saved_marker_ptr m;

	for (m = cinfo->marker_list; m != NULL; m = m->next) {
		if (m->marker != JPEG_APP0 + 1 || m->data_length < 5 || memcmp(m->data, "Exif", 5) != 0)
			continue;
		if (m->data_length < 6 || m->data[5] != 0)
			return 0;
		return exif_orientation(m->data + 6, m->data_length - 6);
	}
	return 0;
}

/*
 * PIL's "CMYK;I" unpacking then its cmyk2rgb(), for one row of w pixels.
 * The stored bytes s are inverted (Adobe's convention, which PIL always
 * assumes): ink c = 255 - s_c, and cmyk2rgb's nk = 255 - k is simply s_k.
 * out = nk - round(c * nk / 255), with PIL's MULDIV255 rounding.
 */
static void cmyk_row_to_rgb(const uint8_t *in, uint8_t *out, size_t w)
{
	size_t x;
	int c;

	for (x = 0; x < w; x++, in += 4, out += 3) {
		int nk = in[3];

		for (c = 0; c < 3; c++) {
			int t = (255 - in[c]) * nk + 128;

			out[c] = (uint8_t)(nk - (((t >> 8) + t) >> 8)); /* never below 0 */
		}
	}
}

/*
 * The fast path's DCT scaling denominator: the largest of 8, 4, 2 and 1
 * with 256 * s <= the shorter side, so that the reduced image still holds
 * at least IMG_RESIZE source pixels across (PIL's Image.draft() picks the
 * same). A transposing EXIF orientation swaps the sides but not which
 * length is the shorter, so it does not change the choice.
 */
static unsigned jpeg_fast_denom(size_t w, size_t h)
{
	size_t s = w < h ? w : h;
	unsigned d;

	for (d = 8; d > 1; d /= 2)
		if (s / d >= IMG_RESIZE)
			break;
	return d;
}

/*
 * Decode the whole image into st->im, from jpeg_run() after the header.
 * Returns 0, or a SEER_E* code with st->err set.
 */
static int jpeg_read_full(struct jpeg_state *st)
{
	j_decompress_ptr cinfo = &st->cinfo;
	size_t w = cinfo->output_width, h = cinfo->output_height, y, i, n;
	JSAMPROW rows[16];
	JSAMPARRAY cmyk = NULL;

	st->im.pixels = malloc(w * h * 3);
	if (st->im.pixels == NULL)
		return seer_err_set(&st->err, SEER_ENOMEM, "img_decode: out of memory for a %zux%zu JPEG", w,
				    h);
	st->im.width = (uint32_t)w;
	st->im.height = (uint32_t)h;

	jpeg_start_decompress(cinfo);
	if (cinfo->output_width != w || cinfo->output_height != h ||
	    cinfo->output_components != (cinfo->num_components == 4 ? 4 : 3))
		return seer_err_set(&st->err, SEER_ECORRUPT,
				    "img_decode: JPEG output shape does not match its header");
	if (cinfo->num_components == 4)
		cmyk = cinfo->mem->alloc_sarray((j_common_ptr)cinfo, JPOOL_IMAGE, (JDIMENSION)(w * 4), 1);
	while ((y = cinfo->output_scanline) < h) {
		if (cmyk != NULL) {
			if (jpeg_read_scanlines(cinfo, cmyk, 1) != 1)
				goto fail;
			cmyk_row_to_rgb(cmyk[0], st->im.pixels + y * w * 3, w);
			continue;
		}
		n = h - y < 16 ? h - y : 16;
		for (i = 0; i < n; i++)
			rows[i] = st->im.pixels + (y + i) * w * 3;
		if (jpeg_read_scanlines(cinfo, rows, (JDIMENSION)n) == 0)
			goto fail;
	}
	/* reads on to EOI, so a file cut after the last scanline still fails */
	jpeg_finish_decompress(cinfo);
	return 0;

fail: /* cannot happen with a memory source, which never suspends */
	return seer_err_set(&st->err, SEER_ETRUNC, "img_decode: JPEG decoder stalled at row %zu", y);
}

/* Reverse the order of n RGB pixels in place. */
static void pixels_reverse(uint8_t *p, size_t n)
{
	uint8_t t[3];
	size_t i;

	for (i = 0; i < n / 2; i++) {
		memcpy(t, p + i * 3, 3);
		memcpy(p + i * 3, p + (n - 1 - i) * 3, 3);
		memcpy(p + (n - 1 - i) * 3, t, 3);
	}
}

/*
 * Decode only the part of the image that Resize(256) + CenterCrop(224) of
 * the oriented image reads, and feed it to st->cropper; the crop goes to
 * st->crop. From jpeg_run() after the header. Returns 0, or a SEER_E*
 * code with st->err set.
 *
 * Rows above the window are skipped with jpeg_skip_scanlines(), which still
 * entropy-decodes them (so corrupt data there is still caught) but spares
 * the IDCT, upsampling and colour conversion; so are the rows below it but
 * the last, which is read so that libjpeg goes on to EOI. Columns outside
 * it are dropped with jpeg_crop_scanline(). Orientations 1-4 map stored
 * rows to oriented rows, so those stream straight into the cropper; 5-8
 * turn stored rows into oriented columns, so the stored window is kept
 * and turned in strips.
 */
static int jpeg_read_crop(struct jpeg_state *st)
{
	enum { STRIP = 16 };
	j_decompress_ptr cinfo = &st->cinfo;
	struct img_cropper *c = &st->cropper;
	size_t w = cinfo->output_width, h = cinfo->output_height, sx0, sx1, sy0, sy1, cx0, cw, y, i, i0, n, k,
	       want;
	size_t ww, wh;
	ptrdiff_t base, dx, dy, p0, p1;
	int comps = cinfo->num_components == 4 ? 4 : 3, swap, rc;
	JSAMPARRAY rows;
	uint8_t *seg;
	const uint8_t *px[STRIP];
	JDIMENSION xo, xw;
	/*
	 * Decoded beyond the window on every side: fancy upsampling treats the
	 * edges of a cropped row as image edges (1 pixel), and the block
	 * smoothing of an incomplete progressive JPEG reads 2 blocks around each
	 * block; 3 iMCUs (the widest block) cover both. In output pixels.
	 */
#if JPEG_LIB_VERSION >= 70
	size_t mx = 3 * (size_t)cinfo->max_h_samp_factor * (size_t)cinfo->min_DCT_h_scaled_size;
	size_t my = 3 * (size_t)cinfo->max_v_samp_factor * (size_t)cinfo->min_DCT_v_scaled_size;
#else
	size_t mx = 3 * (size_t)cinfo->max_h_samp_factor * (size_t)cinfo->min_DCT_scaled_size;
	size_t my = 3 * (size_t)cinfo->max_v_samp_factor * (size_t)cinfo->min_DCT_scaled_size;
#endif

	swap = orient_steps(st->orientation, (ptrdiff_t)w, (ptrdiff_t)h, &base, &dx, &dy);
	rc = img_cropper_init(c, (uint32_t)(swap ? h : w), (uint32_t)(swap ? w : h), &st->err);
	if (rc != 0)
		return rc;
	/* the stored rectangle [sx0, sx1) x [sy0, sy1) the oriented window comes from */
	p0 = base + (ptrdiff_t)c->col_first * dx + (ptrdiff_t)c->row_first * dy;
	p1 = base + (ptrdiff_t)(c->col_last - 1) * dx + (ptrdiff_t)(c->row_last - 1) * dy;
	sx0 = (size_t)(p0 % (ptrdiff_t)w);
	sx1 = (size_t)(p1 % (ptrdiff_t)w);
	sy0 = (size_t)(p0 / (ptrdiff_t)w);
	sy1 = (size_t)(p1 / (ptrdiff_t)w);
	if (sx0 > sx1) {
		k = sx0;
		sx0 = sx1;
		sx1 = k;
	}
	if (sy0 > sy1) {
		k = sy0;
		sy0 = sy1;
		sy1 = k;
	}
	sx1++;
	sy1++;
	ww = sx1 - sx0;
	wh = sy1 - sy0;

	jpeg_start_decompress(cinfo);
	if (cinfo->output_width != w || cinfo->output_height != h || cinfo->output_components != comps)
		return seer_err_set(&st->err, SEER_ECORRUPT,
				    "img_decode: JPEG output shape does not match its header");
	cx0 = sx0 > mx ? sx0 - mx : 0;
	cw = (sx1 + mx < w ? sx1 + mx : w) - cx0;
	if (cw < w) {
		/* moves the start left to an iMCU boundary and widens to match */
		xo = (JDIMENSION)cx0;
		xw = (JDIMENSION)cw;
		jpeg_crop_scanline(cinfo, &xo, &xw);
		cx0 = xo;
		cw = xw;
	}
	rows = cinfo->mem->alloc_sarray((j_common_ptr)cinfo, JPOOL_IMAGE, (JDIMENSION)(cw * comps), STRIP);
	/* STRIP converted rows, or (swap) STRIP rows of the turned window, used
	 * after jpeg_finish_decompress() frees the JPOOL_IMAGE pool */
	seg = cinfo->mem->alloc_large((j_common_ptr)cinfo, JPOOL_PERMANENT, STRIP * (swap ? wh : ww) * 3);
	if (swap) {
		st->win.pixels = malloc(ww * wh * 3);
		if (st->win.pixels == NULL)
			return seer_err_set(&st->err, SEER_ENOMEM,
					    "img_decode: out of memory for a %zux%zu part of a JPEG", ww, wh);
		st->win.width = (uint32_t)ww;
		st->win.height = (uint32_t)wh;
	}

	if (sy0 > my)
		jpeg_skip_scanlines(cinfo, (JDIMENSION)(sy0 - my));
	while ((y = cinfo->output_scanline) < sy1) {
		/* whole strips: libjpeg hands out a row group (1 or 2 rows) a call,
		 * and the cropper works on 4 rows at a time */
		want = sy1 - y < STRIP ? sy1 - y : STRIP;
		for (n = 0; n < want; n += k)
			if ((k = jpeg_read_scanlines(cinfo, rows + n, (JDIMENSION)(want - n))) == 0)
				goto fail;
		i0 = y < sy0 ? sy0 - y : 0; /* rows of the margin above the window */
		if (i0 >= n)
			continue;
		for (i = i0; i < n; i++) {
			const uint8_t *src = rows[i] + (sx0 - cx0) * comps;
			uint8_t *dst = swap ? st->win.pixels + (y + i - sy0) * ww * 3 : seg + i * ww * 3;

			if (comps == 4)
				cmyk_row_to_rgb(src, dst, ww);
			else if (swap || dx < 0)
				memcpy(dst, src, ww * 3);
			if (!swap && dx < 0)
				pixels_reverse(dst, ww);
			/* oriented rows run the other way when dy < 0; plain RGB needs no copy */
			px[dy > 0 ? i - i0 : n - 1 - i] = comps == 3 && !swap && dx > 0 ? src : dst;
		}
		if (!swap)
			img_cropper_put_rows(c, (uint32_t)(dy > 0 ? y + i0 : h - (y + n)), (uint32_t)(n - i0),
					     px);
	}
	/* skipped rows are still entropy-decoded, but skipping to the very end
	 * would stop libjpeg from reading the rest: read the last row */
	if (h - 1 > sy1)
		jpeg_skip_scanlines(cinfo, (JDIMENSION)(h - 1 - sy1));
	while (cinfo->output_scanline < h)
		if (jpeg_read_scanlines(cinfo, rows, 1) != 1)
			goto fail;
	jpeg_finish_decompress(cinfo);

	if (swap) {
		/* the oriented window is wh wide and ww high; turn it STRIP rows at a time */
		for (y = 0; y < ww; y += STRIP) {
			n = ww - y < STRIP ? ww - y : STRIP;
			orient_rows(st->win.pixels, ww, wh, st->orientation, wh, y, y + n, seg);
			for (i = 0; i < n; i++)
				px[i] = seg + i * wh * 3;
			img_cropper_put_rows(c, (uint32_t)(c->row_first + y), (uint32_t)n, px);
		}
	}
	img_cropper_finish(c, st->crop);
	return 0;

fail: /* cannot happen with a memory source, which never suspends */
	return seer_err_set(&st->err, SEER_ETRUNC, "img_decode: JPEG decoder stalled at row %zu",
			    (size_t)cinfo->output_scanline);
}

/*
 * Set up the decoder, read the header, check it and hand over to
 * jpeg_read_full() or (with st->crop) jpeg_read_crop(). Returns 0, or a
 * SEER_E* code with st->err set. Everything modified after setjmp lives in
 * *st, not in locals.
 */
static int jpeg_run(struct jpeg_state *st, const uint8_t *data, size_t len)
{
	j_decompress_ptr cinfo = &st->cinfo;
	const struct img_limits *lim = &st->opts->limits;

	cinfo->err = jpeg_std_error(&st->jerr);
	st->jerr.error_exit = jpeg_on_error;
	st->jerr.emit_message = jpeg_on_message;
	st->jerr.output_message = jpeg_on_output;
	if (setjmp(st->jb))
		return st->err.code;
	jpeg_create_decompress(cinfo);
	st->created = 1;
	/* a backstop on libjpeg's own arrays (whole-image coefficients) */
	if (lim->max_pixels != 0 && lim->max_pixels < ((uint64_t)1 << 40))
		cinfo->mem->max_memory_to_use =
			(long)(lim->max_pixels * 4 * sizeof(JCOEF) * 5 / 4 + (64 << 20));
	st->progress.progress_monitor = jpeg_on_progress;
	cinfo->progress = &st->progress;
	jpeg_mem_src(cinfo, data, (unsigned long)len);
	jpeg_save_markers(cinfo, JPEG_APP0 + 1, 0xffff);
	jpeg_read_header(cinfo, TRUE);

	if (limits_check(lim, "JPEG", cinfo->image_width, cinfo->image_height, &st->err))
		return st->err.code;
	if (cinfo->num_components != 1 && cinfo->num_components != 3 && cinfo->num_components != 4)
		return seer_err_set(&st->err, SEER_EUNSUPPORTED,
				    "img_decode: JPEG with %d components is not supported",
				    cinfo->num_components);
	if (st->opts->exif_rotate)
		st->orientation = jpeg_orientation(cinfo);

	/* PIL's defaults: ISLOW DCT, fancy upsampling, libjpeg's colour space guess */
	cinfo->out_color_space = cinfo->num_components == 4 ? JCS_CMYK : JCS_RGB;
	if (st->opts->fast) {
		cinfo->scale_num = 1;
		cinfo->scale_denom = jpeg_fast_denom(cinfo->image_width, cinfo->image_height);
	}
	/* the limits above held for the full size; what is allocated is for the output size */
	jpeg_calc_output_dimensions(cinfo);
	return st->crop != NULL ? jpeg_read_crop(st) : jpeg_read_full(st);
}

/*
 * Decode a JPEG into *out (caller owns it on success), or with crop into
 * the 224x224x3 crop. Returns 0 or SEER_E*.
 */
static int jpeg_decode(const uint8_t *data, size_t len, const struct img_decode_opts *opts,
		       struct img_rgb *out, uint8_t *crop, struct img_size *size, struct seer_err *err)
{
	struct jpeg_state *st;
	int rc;

	st = calloc(1, sizeof(*st));
	if (st == NULL)
		return seer_err_set(err, SEER_ENOMEM, "img_decode: out of memory");
	st->opts = opts;
	st->crop = crop;
	rc = jpeg_run(st, data, len);
	if (rc == 0 && size != NULL) {
		int swap = st->orientation >= 5 && st->orientation <= 8; /* 5-8 transpose */
		size->width = swap ? st->cinfo.image_height : st->cinfo.image_width;
		size->height = swap ? st->cinfo.image_width : st->cinfo.image_height;
	}
	if (st->created)
		jpeg_destroy_decompress(&st->cinfo);
	img_cropper_free(&st->cropper);
	img_rgb_free(&st->win);
	if (rc != 0) {
		seer_err_set(err, rc, "%s", st->err.msg);
		goto fail;
	}
	if (crop == NULL) {
		if (st->orientation > 1 && (rc = orientation_apply(&st->im, st->orientation, err)) != 0)
			goto fail;
		*out = st->im;
	}
	free(st);
	return 0;

fail:
	img_rgb_free(&st->im);
	free(st);
	return rc;
}

/* ---------------------------------------------------------------------- */
/* PNG                                                                      */
/* ---------------------------------------------------------------------- */

enum png_layout {
	PNG_LAYOUT_RGB,	   /* libpng delivers RGB directly */
	PNG_LAYOUT_GRAY16, /* 16-bit gray: PIL's mode "I", clipped to 0..255 */
	PNG_LAYOUT_INDEX,  /* palette indices, one byte each */
};

/* Decoder state; lives outside the function that calls setjmp. */
struct png_state {
	const uint8_t *data;
	size_t len, pos;
	int truncated;
	struct seer_err err;
	const struct img_decode_opts *opts;
	png_structp png;
	png_infop info;
	png_bytepp rows;
	struct img_rgb im;	    /* the whole image, or a strip of rows when streaming */
	uint8_t *crop;		    /* img_decode_crop(): where the 224x224x3 result goes */
	struct img_cropper cropper; /* img_decode_crop(): the resize it feeds */
	int streamed;		    /* 1 once the crop is made */
	enum png_layout layout;
	uint8_t palette[256][3];
};

static void png_on_read(png_structp png, png_bytep dst, size_t n)
{
	struct png_state *st = png_get_io_ptr(png);

	if (n > st->len - st->pos) {
		st->truncated = 1;
		png_error(png, "unexpected end of data");
	}
	memcpy(dst, st->data + st->pos, n);
	st->pos += n;
}

/* Replaces libpng's default handler, which would print to stderr. */
static void png_on_error(png_structp png, png_const_charp what)
{
	struct png_state *st = png_get_error_ptr(png);

	if (st->truncated)
		seer_err_set(&st->err, SEER_ETRUNC, "img_decode: PNG truncated after %zu bytes", st->len);
	else if (strstr(what, "emory") != NULL)
		seer_err_set(&st->err, SEER_ENOMEM, "img_decode: PNG out of memory: %s", what);
	else if (strstr(what, "too large") != NULL || strstr(what, "limit") != NULL)
		seer_err_set(&st->err, SEER_ETOOLARGE, "img_decode: PNG too large: %s", what);
	else
		seer_err_set(&st->err, SEER_ECORRUPT, "img_decode: PNG corrupt: %s", what);
	png_longjmp(png, 1);
}

/* Warnings that matter (CRC, benign errors) were promoted to errors. */
static void png_on_warning(png_structp png, png_const_charp what)
{
	(void)png;
	(void)what;
}

/*
 * Widen a row of w pixels (3 * w bytes of room) in place from libpng's
 * layout to RGB. Walks backwards, so every source byte is read before a
 * wider output overwrites it.
 */
static void png_row_expand(const struct png_state *st, uint8_t *row, size_t w)
{
	size_t x;

	if (st->layout == PNG_LAYOUT_GRAY16) {
		for (x = w; x-- > 0;) {
			uint8_t v = row[2 * x] != 0 ? 255 : row[2 * x + 1];

			row[3 * x] = row[3 * x + 1] = row[3 * x + 2] = v;
		}
	} else if (st->layout == PNG_LAYOUT_INDEX) {
		for (x = w; x-- > 0;)
			memcpy(row + 3 * x, st->palette[row[x]], 3);
	}
}

/*
 * Stream the rows of a non-interlaced PNG, STRIP at a time, into
 * st->cropper and make the crop; from png_run() once libpng is set up.
 * Every row is still inflated, unfiltered and CRC-checked (PNG has no
 * other way to reach the end); only the window's rows are widened and
 * resized. Returns 0, or a SEER_E* code with st->err set.
 */
static int png_read_crop(struct png_state *st, size_t w, size_t h)
{
	enum { STRIP = 16 };
	struct img_cropper *c = &st->cropper;
	const uint8_t *px[STRIP];
	size_t y, i, n;
	int rc;

	rc = img_cropper_init(c, (uint32_t)w, (uint32_t)h, &st->err);
	if (rc != 0)
		return rc;
	st->im.pixels = malloc(STRIP * w * 3);
	if (st->im.pixels == NULL)
		return seer_err_set(&st->err, SEER_ENOMEM,
				    "img_decode: out of memory for a %zu pixels wide PNG", w);
	for (y = 0; y < h; y += n) {
		n = h - y < STRIP ? h - y : STRIP;
		for (i = 0; i < n; i++) {
			uint8_t *row = st->im.pixels + i * w * 3;

			png_read_row(st->png, row, NULL);
			if (y + i < c->row_first || y + i >= c->row_last)
				continue;
			if (st->layout != PNG_LAYOUT_RGB)
				png_row_expand(st, row, w);
			px[i] = row + (size_t)c->col_first * 3;
		}
		if (y + n > c->row_first && y < c->row_last) {
			i = y < c->row_first ? c->row_first - y : 0; /* rows put are [y + i, y + n) */
			img_cropper_put_rows(c, (uint32_t)(y + i), (uint32_t)(n - i), px + i);
		}
	}
	png_read_end(st->png, NULL);
	img_cropper_finish(c, st->crop);
	st->streamed = 1;
	return 0;
}

/*
 * Decode into st->im (or, with st->crop and no interlacing, straight into
 * the crop). Returns 0, or a SEER_E* code with st->err set.
 */
static int png_run(struct png_state *st)
{
	const struct img_limits *lim = &st->opts->limits;
	png_uint_32 w, h;
	int depth, color, interlace, npal, i;
	png_colorp pal;
	size_t y, rowbytes, want;

	if (setjmp(png_jmpbuf(st->png)))
		return st->err.code;
	png_set_read_fn(st->png, st, png_on_read);
	if (lim->max_side != 0)
		png_set_user_limits(st->png, lim->max_side, lim->max_side);
	png_set_chunk_cache_max(st->png, 1000);
	png_set_chunk_malloc_max(st->png, IMG_PNG_CHUNK_MAX);
	png_set_crc_action(st->png, PNG_CRC_ERROR_QUIT, PNG_CRC_ERROR_QUIT);
	png_set_benign_errors(st->png, 0);
	png_set_check_for_invalid_index(st->png, 0);
	/* PIL ignores gamma, ICC, text and transparency for convert('RGB'):
	 * skipping the chunks also means no compressed text bombs are inflated */
	png_set_keep_unknown_chunks(st->png, PNG_HANDLE_CHUNK_NEVER, NULL, -1);
	png_set_keep_unknown_chunks(st->png, PNG_HANDLE_CHUNK_NEVER, (png_const_bytep) "tRNS", 1);
	png_read_info(st->png, st->info);
	png_get_IHDR(st->png, st->info, &w, &h, &depth, &color, &interlace, NULL, NULL);
	if (limits_check(lim, "PNG", w, h, &st->err))
		return st->err.code; /* normally caught from IHDR before libpng */

	st->layout = PNG_LAYOUT_RGB;
	if (color == PNG_COLOR_TYPE_GRAY && depth == 16) {
		st->layout = PNG_LAYOUT_GRAY16;
	} else if (color == PNG_COLOR_TYPE_PALETTE) {
		st->layout = PNG_LAYOUT_INDEX;
		png_set_packing(st->png);
		/* PIL fills entries past the PLTE with gray (i, i, i) */
		for (i = 0; i < 256; i++)
			memset(st->palette[i], i, 3);
		if (png_get_PLTE(st->png, st->info, &pal, &npal) == PNG_INFO_PLTE)
			for (i = 0; i < npal && i < 256; i++) {
				st->palette[i][0] = pal[i].red;
				st->palette[i][1] = pal[i].green;
				st->palette[i][2] = pal[i].blue;
			}
	} else {
		/* PIL keeps the high byte of 16-bit samples and drops alpha */
		if (depth == 16)
			png_set_strip_16(st->png);
		if (depth < 8)
			png_set_expand_gray_1_2_4_to_8(st->png);
		if (color & PNG_COLOR_MASK_ALPHA)
			png_set_strip_alpha(st->png);
		if (!(color & PNG_COLOR_MASK_COLOR))
			png_set_gray_to_rgb(st->png);
	}
	png_set_interlace_handling(st->png);
	png_read_update_info(st->png, st->info);
	rowbytes = png_get_rowbytes(st->png, st->info);
	want = st->layout == PNG_LAYOUT_GRAY16	? 2 * (size_t)w
	       : st->layout == PNG_LAYOUT_INDEX ? (size_t)w
						: 3 * (size_t)w;
	if (rowbytes != want)
		return seer_err_set(&st->err, SEER_EUNSUPPORTED,
				    "img_decode: PNG colour type %d depth %d: %zu bytes a row, not %zu",
				    color, depth, rowbytes, want);

	if (st->crop != NULL && interlace == PNG_INTERLACE_NONE)
		return png_read_crop(st, w, h);
	st->im.pixels = malloc((size_t)w * h * 3);
	st->rows = malloc((size_t)h * sizeof(*st->rows));
	if (st->im.pixels == NULL || st->rows == NULL)
		return seer_err_set(&st->err, SEER_ENOMEM, "img_decode: out of memory for a %ux%u PNG",
				    (unsigned)w, (unsigned)h);
	st->im.width = w;
	st->im.height = h;
	for (y = 0; y < h; y++)
		st->rows[y] = st->im.pixels + y * w * 3;
	png_read_image(st->png, st->rows);
	/* reads up to IEND: a file cut anywhere fails, and the last CRCs are checked */
	png_read_end(st->png, NULL);
	if (st->layout != PNG_LAYOUT_RGB)
		for (y = 0; y < h; y++)
			png_row_expand(st, st->rows[y], w);
	return 0;
}

/*
 * Decode a PNG into *out (caller owns it on success), or with crop into the
 * 224x224x3 crop. Returns 0 or SEER_E*.
 */
static int png_decode(const uint8_t *data, size_t len, const struct img_decode_opts *opts,
		      struct img_rgb *out, uint8_t *crop, struct img_size *size, struct seer_err *err)
{
	struct png_state *st;
	int rc;

	/* limits from IHDR before libpng (whose own limit error is less precise) */
	if (len >= 24 && memcmp(data + 12, "IHDR", 4) == 0) {
		rc = limits_check(&opts->limits, "PNG", rd32(data + 16, 0), rd32(data + 20, 0), err);
		if (rc != 0)
			return rc;
	}
	st = calloc(1, sizeof(*st));
	if (st == NULL)
		return seer_err_set(err, SEER_ENOMEM, "img_decode: out of memory");
	st->data = data;
	st->len = len;
	st->opts = opts;
	st->crop = crop;
	st->png = png_create_read_struct(PNG_LIBPNG_VER_STRING, st, png_on_error, png_on_warning);
	if (st->png != NULL)
		st->info = png_create_info_struct(st->png);
	if (st->info == NULL) {
		rc = seer_err_set(err, SEER_ENOMEM, "img_decode: out of memory creating libpng state");
		goto fail;
	}
	rc = png_run(st);
	if (rc != 0) {
		seer_err_set(err, rc, "%s", st->err.msg);
		goto fail;
	}
	if (crop == NULL) {
		*out = st->im;
		st->im.pixels = NULL;
	} else if (!st->streamed) { /* interlaced: decoded whole */
		rc = img_resize_crop(&st->im, crop, err);
	}
	if (rc == 0 && size != NULL) {
		size->width = png_get_image_width(st->png, st->info);
		size->height = png_get_image_height(st->png, st->info);
	}

fail:
	png_destroy_read_struct(&st->png, st->info != NULL ? &st->info : NULL, NULL);
	img_cropper_free(&st->cropper);
	free(st->rows);
	img_rgb_free(&st->im);
	free(st);
	return rc;
}

/* ---------------------------------------------------------------------- */
/* Entry point                                                              */
/* ---------------------------------------------------------------------- */

/*
 * The checks both entry points make before decoding: sets *fmt to
 * IMG_FORMAT_JPEG or IMG_FORMAT_PNG and returns 0, or returns SEER_EEMPTY,
 * SEER_ETOOLARGE, SEER_ETRUNC or SEER_EUNSUPPORTED.
 */
static int input_check(const uint8_t *p, size_t len, const struct img_decode_opts *opts, enum img_format *fmt,
		       struct seer_err *err)
{
	const char *name;

	if (len == 0)
		return seer_err_set(err, SEER_EEMPTY, "img_decode: empty input (0 bytes)");
	if (opts->limits.max_bytes != 0 && len > opts->limits.max_bytes)
		return seer_err_set(err, SEER_ETOOLARGE,
				    "img_decode: input is %zu bytes, over the limit of %zu", len,
				    opts->limits.max_bytes);
	*fmt = img_sniff(p, len, &name);
	if (*fmt != IMG_FORMAT_UNKNOWN)
		return 0;
	if (is_magic_prefix(p, len, jpeg_magic, sizeof(jpeg_magic)))
		return seer_err_set(err, SEER_ETRUNC, "img_decode: JPEG truncated after %zu bytes", len);
	if (is_magic_prefix(p, len, png_magic, sizeof(png_magic)))
		return seer_err_set(err, SEER_ETRUNC, "img_decode: PNG truncated after %zu bytes", len);
	if (name != NULL)
		return seer_err_set(err, SEER_EUNSUPPORTED,
				    "img_decode: %s images are not supported (only JPEG and PNG)", name);
	return seer_err_set(err, SEER_EUNSUPPORTED,
			    "img_decode: unrecognised image format (first bytes %02x %02x %02x %02x)", p[0],
			    len > 1 ? p[1] : 0, len > 2 ? p[2] : 0, len > 3 ? p[3] : 0);
}

int img_decode(const void *data, size_t len, const struct img_decode_opts *opts, struct img_rgb *out,
	       struct seer_err *err)
{
	struct img_decode_opts defaults;
	enum img_format fmt;
	int rc;

	if (out == NULL || (data == NULL && len != 0))
		return seer_err_set(err, SEER_EINVAL, "img_decode: no input or output buffer");
	memset(out, 0, sizeof(*out));
	if (opts == NULL) {
		img_decode_opts_default(&defaults);
		opts = &defaults;
	}
	rc = input_check(data, len, opts, &fmt, err);
	if (rc != 0)
		return rc;
	if (fmt == IMG_FORMAT_JPEG)
		return jpeg_decode(data, len, opts, out, NULL, NULL, err);
	return png_decode(data, len, opts, out, NULL, NULL, err);
}

int img_decode_crop(const void *data, size_t len, const struct img_decode_opts *opts, uint8_t *out,
		    struct img_size *size, struct seer_err *err)
{
	struct img_decode_opts defaults;
	enum img_format fmt;
	int rc;

	if (out == NULL || (data == NULL && len != 0))
		return seer_err_set(err, SEER_EINVAL, "img_decode: no input or output buffer");
	if (opts == NULL) {
		img_decode_opts_default(&defaults);
		opts = &defaults;
	}
	rc = input_check(data, len, opts, &fmt, err);
	if (rc != 0)
		return rc;
	if (fmt == IMG_FORMAT_JPEG)
		return jpeg_decode(data, len, opts, NULL, out, size, err);
	return png_decode(data, len, opts, NULL, out, size, err);
}
