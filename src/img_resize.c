/*
 * img_resize.c - torchvision's Resize(256) + CenterCrop(224) + ToTensor +
 * Normalize on a PIL image, reproduced bit for bit: Pillow 9.4's bilinear
 * resampling (separable, antialiased, 22-bit fixed point) on the crop only,
 * fed a row at a time so that decoders need not hold the whole image.
 */
#include "img.h"

#include <assert.h>
#include <limits.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#if defined(__x86_64__) && defined(__GNUC__)
#define IMG_HAVE_X86 1
#include <immintrin.h>
#endif

/*
 * Pillow's fixed point: 32 bits minus 8 for the sample minus 2 for the
 * sign and headroom of negative lobes.
 */
#define PRECISION_BITS (32 - 8 - 2)

/*
 * The floating-point expressions below copy Pillow's precompute_coeffs()
 * term by term and in the same order, so that the doubles (and therefore
 * the rounded integer weights) come out identical. Build without
 * -ffast-math; FMA contraction is harmless here because the only a*b+c
 * shapes are a product plus 0.0 or a product by a power of two.
 */

/* The bilinear (triangle) kernel, support 1. */
static double bilinear_filter(double x)
{
	if (x < 0.0)
		x = -x;
	if (x < 1.0)
		return 1.0 - x;
	return 0.0;
}

static void axis_free(struct img_axis *a)
{
	free(a->bounds);
	free(a->k);
	free(a->by_tap);
	a->bounds = NULL;
	a->k = NULL;
	a->by_tap = NULL;
}

/*
 * Pillow's precompute_coeffs() + normalize_coeffs_8bpc() for an axis of
 * in_size samples resized to out_size (box 0..in_size), but only for the
 * count output positions starting at first. With pad, every position gets
 * exactly ksize taps (when the axis is that long), the window slid inside
 * the image and the extra taps weighted 0: the same sums, a fixed loop.
 * Returns 0; SEER_ETOOLARGE where Pillow itself would refuse (its int
 * overflow check); SEER_ENOMEM. On success the caller owns a and frees it
 * with axis_free().
 */
static int axis_init(struct img_axis *a, int in_size, int out_size, int first, int count, int pad,
		     struct seer_err *err)
{
	double support, scale, filterscale, center, ww, ss;
	double *w = NULL; /* [ksize] one position's weights before rounding */
	int xx, x, xmin, xmax, ksize, shift, padded;

	memset(a, 0, sizeof(*a));
	/* Pillow's box is float: in1 - in0 is computed in float, then widened */
	filterscale = scale = (double)((float)in_size - 0.0f) / out_size;
	if (filterscale < 1.0)
		filterscale = 1.0;
	support = 1.0 * filterscale;
	ksize = (int)ceil(support) * 2 + 1;
	if (out_size > INT_MAX / (ksize * (int)sizeof(double)))
		return seer_err_set(err, SEER_ETOOLARGE, "img_resize_crop: cannot resample %d to %d pixels",
				    in_size, out_size);
	a->ksize = ksize;
	padded = pad && in_size >= ksize;
	a->bounds = malloc((size_t)count * 2 * sizeof(*a->bounds));
	a->k = calloc((size_t)count * ksize, sizeof(*a->k));
	w = malloc((size_t)ksize * sizeof(*w));
	if (a->bounds == NULL || a->k == NULL || w == NULL)
		goto fail;

	for (xx = first; xx < first + count; xx++) {
		int32_t *k = a->k + (size_t)(xx - first) * ksize;

		center = 0.0 + (xx + 0.5) * scale;
		ww = 0.0;
		ss = 1.0 / filterscale;
		xmin = (int)(center - support + 0.5);
		if (xmin < 0)
			xmin = 0;
		xmax = (int)(center + support + 0.5);
		if (xmax > in_size)
			xmax = in_size;
		xmax -= xmin;
		if (xmax > ksize)
			xmax = ksize; /* cannot happen; keeps the tables in bounds */
		for (x = 0; x < xmax; x++) {
			w[x] = bilinear_filter((x + xmin - center + 0.5) * ss);
			ww += w[x];
		}
		shift = 0;
		if (padded && xmin > in_size - ksize) {
			shift = xmin - (in_size - ksize);
			xmin -= shift;
		}
		/* the triangle filter and a positive sum make every weight >= 0 */
		for (x = 0; x < xmax; x++) {
			if (ww != 0.0)
				w[x] /= ww;
			k[x + shift] = (int32_t)(0.5 + w[x] * (1 << PRECISION_BITS));
		}
		a->bounds[(xx - first) * 2 + 0] = xmin;
		a->bounds[(xx - first) * 2 + 1] = padded ? ksize : xmax < 0 ? 0 : xmax;
	}
	free(w);
	return 0;

fail:
	free(w);
	axis_free(a);
	return seer_err_set(err, SEER_ENOMEM, "img_resize_crop: out of memory for weights");
}

/*
 * Pillow's clip8(): the fixed-point sum back to a byte, floor then clamp.
 * Sums here are never negative (all weights are >= 0).
 */
static inline uint8_t clip8(uint32_t v)
{
	v >>= PRECISION_BITS;
	return v > 255 ? 255 : (uint8_t)v;
}

/*
 * torchvision's _compute_resized_output_size() for an int size: the
 * shorter side becomes 256, the longer int(256 * long / short) (a double
 * division of exact integers, as in Python).
 */
static void resized_size(uint32_t w, uint32_t h, uint64_t *nw, uint64_t *nh)
{
	uint64_t s = w <= h ? w : h, l = w <= h ? h : w;
	uint64_t nl = (uint64_t)((double)(IMG_RESIZE * l) / (double)s);

	*nw = w <= h ? IMG_RESIZE : nl;
	*nh = w <= h ? nl : IMG_RESIZE;
}

/* int(round((size - 224) / 2.0)) with Python's round half to even. */
static int crop_offset(uint64_t size)
{
	uint64_t d = size - IMG_CROP, q = d / 2;

	if ((d & 1) && (q & 1))
		q++;
	return (int)q;
}

/* Store the R|G lane pair and B of one output pixel. */
static inline void put_rgb(uint8_t *d, uint64_t rg, uint32_t b)
{
	d[0] = clip8((uint32_t)rg);
	d[1] = clip8((uint32_t)(rg >> 32));
	d[2] = clip8(b);
}

/*
 * Horizontal pass over four source rows s[0..3] (pointers at source column
 * col_first, as are ax's bounds): d[i] gets the [224][3] output columns the
 * crop keeps. Rows may repeat (a short last group).
 *
 * The four rows share bounds and weights and are written out so the sums
 * stay in registers, and R and G share one 64-bit multiply-add, R in the
 * low and G in the high 32 bits: a lane's sum stays below 256 * 2^22 +
 * 2^21 < 2^32 because the weights are >= 0 and add up to about 2^22, so
 * nothing carries across and each lane is exactly Pillow's 32-bit sum.
 */
static void pass_horizontal4(const struct img_axis *ax, const uint8_t *const s[4], uint8_t *const d[4])
{
	const uint64_t half = (uint64_t)1 << (PRECISION_BITS - 1);
	const uint8_t *s0 = s[0], *s1 = s[1], *s2 = s[2], *s3 = s[3];
	size_t x;
	int i;

	for (x = 0; x < IMG_CROP; x++) {
		const int32_t *k = ax->k + x * ax->ksize;
		size_t o = (size_t)ax->bounds[2 * x] * 3;
		int n = ax->bounds[2 * x + 1];
		uint64_t rg0 = half | half << 32, rg1 = rg0, rg2 = rg0, rg3 = rg0;
		uint32_t b0 = (uint32_t)half, b1 = b0, b2 = b0, b3 = b0;

		for (i = 0; i < n; i++, o += 3) {
			uint32_t kv = (uint32_t)k[i];

			rg0 += (s0[o] | (uint64_t)s0[o + 1] << 32) * kv;
			b0 += s0[o + 2] * kv;
			rg1 += (s1[o] | (uint64_t)s1[o + 1] << 32) * kv;
			b1 += s1[o + 2] * kv;
			rg2 += (s2[o] | (uint64_t)s2[o + 1] << 32) * kv;
			b2 += s2[o + 2] * kv;
			rg3 += (s3[o] | (uint64_t)s3[o + 1] << 32) * kv;
			b3 += s3[o + 2] * kv;
		}
		put_rgb(d[3] + x * 3, rg3, b3);
		put_rgb(d[2] + x * 3, rg2, b2);
		put_rgb(d[1] + x * 3, rg1, b1);
		put_rgb(d[0] + x * 3, rg0, b0);
	}
}

/*
 * Vertical pass: mid is a [rows][224][3] window whose first row is source
 * row row_first; out gets [224][224][3]. Whole rows are summed per tap;
 * integer sums do not depend on the order.
 */
static void pass_vertical(const uint8_t *mid, const struct img_axis *ay, int row_first, uint8_t *out)
{
	uint32_t acc[IMG_CROP * 3];
	size_t x, y;
	int i;

	for (y = 0; y < IMG_CROP; y++) {
		const int32_t *k = ay->k + y * ay->ksize;
		int ymin = ay->bounds[2 * y] - row_first, n = ay->bounds[2 * y + 1];
		uint8_t *dst = out + y * IMG_CROP * 3;

		for (x = 0; x < IMG_CROP * 3; x++)
			acc[x] = 1 << (PRECISION_BITS - 1);
		for (i = 0; i < n; i++) {
			const uint8_t *src = mid + (size_t)(ymin + i) * IMG_CROP * 3;
			uint32_t kv = (uint32_t)k[i];

			for (x = 0; x < IMG_CROP * 3; x++)
				acc[x] += src[x] * kv;
		}
		for (x = 0; x < IMG_CROP * 3; x++)
			dst[x] = clip8(acc[x]);
	}
}

/*
 * ax->by_tap for the vector pass, from bounds (already relative to
 * col_first) and k; only for an axis whose every position has ksize taps.
 */
static int axis_by_tap(struct img_axis *ax, struct seer_err *err)
{
	const int ks = ax->ksize;

	ax->by_tap = malloc((size_t)(ks + 1) * IMG_CROP * sizeof(*ax->by_tap));
	if (ax->by_tap == NULL)
		return seer_err_set(err, SEER_ENOMEM, "img_resize_crop: out of memory for weights");
	for (int x = 0; x < IMG_CROP; x++) {
		assert(ax->bounds[2 * x + 1] == ks);
		ax->by_tap[x] = 3 * ax->bounds[2 * x];
		for (int i = 0; i < ks; i++)
			ax->by_tap[(size_t)(i + 1) * IMG_CROP + x] = ax->k[(size_t)x * ks + i];
	}
	return 0;
}

#ifdef IMG_HAVE_X86
static int simd_wanted = 1;

static int simd_runs(void)
{
	return simd_wanted && __builtin_cpu_supports("avx512f");
}

/*
 * The horizontal pass of one row, 16 output columns at a time: the same
 * 32-bit sums as pass_horizontal4 (integer adds, so the order does not
 * matter), each tap a gather of the 16 pixels. A gather reads 4 bytes, R G
 * B and the next pixel's R; where that would pass the end of the row
 * (row_bytes from s) it reads from one byte earlier and shifts.
 */
__attribute__((target("avx512f"))) static void
pass_horizontal_avx512(const struct img_axis *ax, size_t row_bytes, const uint8_t *s, uint8_t *d)
{
	const __m512i byte = _mm512_set1_epi32(0xff), last = _mm512_set1_epi32((int)row_bytes - 4);
	const __m512i one = _mm512_set1_epi32(1), three = _mm512_set1_epi32(3);
	uint8_t out[3][16]; /* R, G, B of the 16 outputs */

	assert(row_bytes >= 4 && row_bytes <= INT_MAX);
	for (int x0 = 0; x0 < IMG_CROP; x0 += 16) {
		__m512i pos = _mm512_loadu_si512(ax->by_tap + x0);
		__m512i acc[3];

		for (int ch = 0; ch < 3; ch++)
			acc[ch] = _mm512_set1_epi32(1 << (PRECISION_BITS - 1));
		for (int i = 0; i < ax->ksize; i++) {
			__m512i k = _mm512_loadu_si512(ax->by_tap + (size_t)(i + 1) * IMG_CROP + x0);
			__mmask16 over = _mm512_cmpgt_epi32_mask(pos, last);
			__m512i at = _mm512_mask_sub_epi32(pos, over, pos, one);
			__m512i v = _mm512_i32gather_epi32(at, s, 1);

			v = _mm512_mask_srli_epi32(v, over, v, 8);
			for (int ch = 0; ch < 3; ch++) {
				__m512i px = _mm512_and_si512(_mm512_srli_epi32(v, 8 * ch), byte);

				acc[ch] = _mm512_add_epi32(acc[ch], _mm512_mullo_epi32(px, k));
			}
			pos = _mm512_add_epi32(pos, three);
		}
		/* clip8: the sum's integer part, saturated to a byte */
		for (int ch = 0; ch < 3; ch++)
			_mm_storeu_si128((__m128i *)out[ch],
					 _mm512_cvtusepi32_epi8(_mm512_srli_epi32(acc[ch], PRECISION_BITS)));
		for (int l = 0; l < 16; l++) {
			d[(x0 + l) * 3 + 0] = out[0][l];
			d[(x0 + l) * 3 + 1] = out[1][l];
			d[(x0 + l) * 3 + 2] = out[2][l];
		}
	}
}
#endif

int img_resize_use_simd(int on)
{
#ifdef IMG_HAVE_X86
	int was = simd_wanted;

	simd_wanted = on;
	return was;
#else
	(void)on;
	return 0;
#endif
}

int img_cropper_init(struct img_cropper *c, uint32_t width, uint32_t height, struct seer_err *err)
{
	uint64_t nw, nh;
	int top, left, rc = 0, x;

	memset(c, 0, sizeof(*c));
	if (width == 0 || height == 0)
		return seer_err_set(err, SEER_EINVAL, "img_resize_crop: empty image");
	if (width > (1u << 24) || height > (1u << 24))
		return seer_err_set(err, SEER_ETOOLARGE, "img_resize_crop: %ux%u is too large",
				    (unsigned)width, (unsigned)height);
	resized_size(width, height, &nw, &nh);
	if (nw > INT_MAX || nh > INT_MAX)
		return seer_err_set(err, SEER_ETOOLARGE,
				    "img_resize_crop: %ux%u resizes to an impossible size", (unsigned)width,
				    (unsigned)height);
	/* both sides are >= 256 now, so the crop never needs padding */
	top = crop_offset(nh);
	left = crop_offset(nw);
	c->width = width;
	c->height = height;
	c->need_h = nw != width;
	c->need_v = nh != height;
	if (c->need_h)
		rc = axis_init(&c->ax, (int)width, (int)nw, left, IMG_CROP, 1, err);
	if (rc == 0 && c->need_v)
		rc = axis_init(&c->ay, (int)height, (int)nh, top, IMG_CROP, 0, err);
	if (rc != 0)
		goto fail;

	/* the source rows and columns the kept outputs read (bounds grow with the index) */
	if (c->need_v) {
		c->row_first = (uint32_t)c->ay.bounds[0];
		c->row_last =
			(uint32_t)(c->ay.bounds[(IMG_CROP - 1) * 2] + c->ay.bounds[(IMG_CROP - 1) * 2 + 1]);
	} else {
		c->row_first = (uint32_t)top;
		c->row_last = (uint32_t)top + IMG_CROP;
	}
	if (c->need_h) {
		c->col_first = (uint32_t)c->ax.bounds[0];
		for (x = 0; x < IMG_CROP; x++) {
			uint32_t end = (uint32_t)(c->ax.bounds[2 * x] + c->ax.bounds[2 * x + 1]);

			c->ax.bounds[2 * x] -= (int)c->col_first; /* relative to the rows handed in */
			if (end > c->col_last)
				c->col_last = end;
		}
	} else {
		c->col_first = (uint32_t)left;
		c->col_last = (uint32_t)left + IMG_CROP;
	}
	if (c->need_h && width >= (uint32_t)c->ax.ksize) {
		rc = axis_by_tap(&c->ax, err);
		if (rc != 0)
			goto fail;
	}
	c->mid = malloc((size_t)(c->row_last - c->row_first) * IMG_CROP * 3);
	if (c->mid == NULL) {
		rc = seer_err_set(err, SEER_ENOMEM, "img_resize_crop: out of memory");
		goto fail;
	}
	return 0;

fail:
	img_cropper_free(c);
	return rc;
}

void img_cropper_put_rows(struct img_cropper *c, uint32_t y, uint32_t n, const uint8_t *const *rows)
{
	const uint8_t *s[4];
	uint8_t *d[4];
	uint32_t i, j, first, last;

	first = y > c->row_first ? y : c->row_first;
	last = y + n < c->row_last ? y + n : c->row_last;
#ifdef IMG_HAVE_X86
	if (c->need_h && c->ax.by_tap != NULL && simd_runs()) {
		for (i = first; i < last; i++)
			pass_horizontal_avx512(&c->ax, (size_t)(c->col_last - c->col_first) * 3, rows[i - y],
					       c->mid + (size_t)(i - c->row_first) * IMG_CROP * 3);
		c->rows_done += last > first ? last - first : 0;
		return;
	}
#endif
	for (i = first; i < last; i += 4) {
		/* a short last group repeats its last row */
		for (j = 0; j < 4; j++) {
			uint32_t r = i + j < last ? i + j : last - 1;

			s[j] = rows[r - y];
			d[j] = c->mid + (size_t)(r - c->row_first) * IMG_CROP * 3;
		}
		if (c->need_h)
			pass_horizontal4(&c->ax, s, d);
		else
			for (j = 0; j < 4; j++)
				memcpy(d[j], s[j], IMG_CROP * 3);
	}
	c->rows_done += last > first ? last - first : 0;
}

void img_cropper_finish(struct img_cropper *c, uint8_t *out)
{
	assert(c->mid != NULL && c->rows_done == c->row_last - c->row_first);
	if (c->need_v)
		pass_vertical(c->mid, &c->ay, (int)c->row_first, out);
	else
		memcpy(out, c->mid, (size_t)IMG_CROP * IMG_CROP * 3);
}

void img_cropper_free(struct img_cropper *c)
{
	if (c == NULL)
		return;
	axis_free(&c->ax);
	axis_free(&c->ay);
	free(c->mid);
	memset(c, 0, sizeof(*c));
}

int img_resize_crop(const struct img_rgb *im, uint8_t *out, struct seer_err *err)
{
	struct img_cropper c;
	const uint8_t *rows[16];
	uint32_t y, i, n;
	int rc;

	if (im == NULL || im->pixels == NULL || out == NULL)
		return seer_err_set(err, SEER_EINVAL, "img_resize_crop: empty image");
	rc = img_cropper_init(&c, im->width, im->height, err);
	if (rc != 0)
		return rc;
	for (y = c.row_first; y < c.row_last; y += n) {
		n = c.row_last - y < 16 ? c.row_last - y : 16;
		for (i = 0; i < n; i++)
			rows[i] = im->pixels + ((size_t)(y + i) * im->width + c.col_first) * 3;
		img_cropper_put_rows(&c, y, n, rows);
	}
	img_cropper_finish(&c, out);
	img_cropper_free(&c);
	return 0;
}

void img_normalize(const uint8_t *crop, float *out)
{
	static const float mean[3] = {0.485f, 0.456f, 0.406f};
	static const float std[3] = {0.229f, 0.224f, 0.225f};
	float lut[3][256];
	size_t i, n = (size_t)IMG_CROP * IMG_CROP;
	int c, v;

	/* torch: byte.float().div(255), then sub_(mean).div_(std), all float32 */
	for (c = 0; c < 3; c++)
		for (v = 0; v < 256; v++)
			lut[c][v] = ((float)v / 255.0f - mean[c]) / std[c];
	for (i = 0; i < n; i++)
		for (c = 0; c < 3; c++)
			out[(size_t)c * n + i] = lut[c][crop[i * 3 + c]];
}
