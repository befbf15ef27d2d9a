/*
 * img_resize.c - torchvision's Resize(256) + CenterCrop(224) + ToTensor +
 * Normalize on a PIL image, reproduced bit for bit: Pillow 9.4's bilinear
 * resampling (separable, antialiased, 22-bit fixed point) on the crop only.
 */
#include "img.h"

#include <limits.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

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

/* Resampling weights of one axis for output positions [first, first + count). */
struct img_axis {
	int ksize;   /* taps reserved per output position */
	int *bounds; /* [count][2]: first source index, number of taps */
	int32_t *k;  /* [count][ksize]: weights in PRECISION_BITS fixed point, >= 0 */
};

static void axis_free(struct img_axis *a)
{
	free(a->bounds);
	free(a->k);
	a->bounds = NULL;
	a->k = NULL;
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
 * Horizontal pass over source rows [row_first, row_last): tmp gets
 * [rows][224][3], the output columns the crop keeps.
 *
 * Four rows go together (they share bounds and weights), written out so
 * the sums stay in registers, and R and G share one 64-bit multiply-add, R
 * in the low and G in the high 32 bits: a lane's sum stays below
 * 256 * 2^22 + 2^21 < 2^32 because the weights are >= 0 and add up to
 * about 2^22, so nothing carries across and each lane is exactly Pillow's
 * 32-bit sum.
 */
static void pass_horizontal(const struct img_rgb *im, const struct img_axis *ax, int row_first, int row_last,
			    uint8_t *tmp)
{
	const uint64_t half = (uint64_t)1 << (PRECISION_BITS - 1);
	size_t w = im->width, rows = (size_t)(row_last - row_first), y, x;
	int i;

	for (y = 0; y < rows; y += 4) {
		/* a short last group repeats its last row */
		size_t y1 = y + 1 < rows ? y + 1 : y, y2 = y + 2 < rows ? y + 2 : y1;
		size_t y3 = y + 3 < rows ? y + 3 : y2;
		const uint8_t *s0 = im->pixels + (row_first + y) * w * 3;
		const uint8_t *s1 = im->pixels + (row_first + y1) * w * 3;
		const uint8_t *s2 = im->pixels + (row_first + y2) * w * 3;
		const uint8_t *s3 = im->pixels + (row_first + y3) * w * 3;

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
			put_rgb(tmp + (y3 * IMG_CROP + x) * 3, rg3, b3);
			put_rgb(tmp + (y2 * IMG_CROP + x) * 3, rg2, b2);
			put_rgb(tmp + (y1 * IMG_CROP + x) * 3, rg1, b1);
			put_rgb(tmp + (y * IMG_CROP + x) * 3, rg0, b0);
		}
	}
}

/*
 * Vertical pass: mid is a [rows][224][3] window (rows stride bytes apart)
 * whose first row is source row row_first; out gets [224][224][3]. Whole
 * rows are summed per tap; integer sums do not depend on the order.
 */
static void pass_vertical(const uint8_t *mid, size_t stride, const struct img_axis *ay, int row_first,
			  uint8_t *out)
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
			const uint8_t *src = mid + (size_t)(ymin + i) * stride;
			uint32_t kv = (uint32_t)k[i];

			for (x = 0; x < IMG_CROP * 3; x++)
				acc[x] += src[x] * kv;
		}
		for (x = 0; x < IMG_CROP * 3; x++)
			dst[x] = clip8(acc[x]);
	}
}

int img_resize_crop(const struct img_rgb *im, uint8_t *out, struct seer_err *err)
{
	struct img_axis ax = {0}, ay = {0};
	uint64_t nw, nh;
	int top, left, need_h, need_v, row_first, row_last, rc;
	size_t stride, y;
	const uint8_t *mid; /* [rows][224][3] window of the horizontally resized image */
	uint8_t *tmp = NULL;

	if (im == NULL || im->pixels == NULL || im->width == 0 || im->height == 0 || out == NULL)
		return seer_err_set(err, SEER_EINVAL, "img_resize_crop: empty image");
	if (im->width > (1u << 24) || im->height > (1u << 24))
		return seer_err_set(err, SEER_ETOOLARGE, "img_resize_crop: %ux%u is too large",
				    (unsigned)im->width, (unsigned)im->height);
	resized_size(im->width, im->height, &nw, &nh);
	if (nw > INT_MAX || nh > INT_MAX)
		return seer_err_set(err, SEER_ETOOLARGE,
				    "img_resize_crop: %ux%u resizes to an impossible size",
				    (unsigned)im->width, (unsigned)im->height);
	/* both sides are >= 256 now, so the crop never needs padding */
	top = crop_offset(nh);
	left = crop_offset(nw);
	need_h = nw != im->width;
	need_v = nh != im->height;

	rc = need_h ? axis_init(&ax, (int)im->width, (int)nw, left, IMG_CROP, 1, err) : 0;
	if (rc == 0 && need_v)
		rc = axis_init(&ay, (int)im->height, (int)nh, top, IMG_CROP, 0, err);
	if (rc != 0)
		goto fail;
	/* the source rows the kept output rows read (bounds grow with the index) */
	if (need_v) {
		row_first = ay.bounds[0];
		row_last = ay.bounds[(IMG_CROP - 1) * 2] + ay.bounds[(IMG_CROP - 1) * 2 + 1];
	} else {
		row_first = top;
		row_last = top + IMG_CROP;
	}

	/* horizontal pass first, as Pillow does */
	if (need_h) {
		tmp = malloc((size_t)(row_last - row_first) * IMG_CROP * 3);
		if (tmp == NULL) {
			rc = seer_err_set(err, SEER_ENOMEM, "img_resize_crop: out of memory");
			goto fail;
		}
		pass_horizontal(im, &ax, row_first, row_last, tmp);
		mid = tmp;
		stride = IMG_CROP * 3;
	} else {
		stride = (size_t)im->width * 3;
		mid = im->pixels + (size_t)row_first * stride + (size_t)left * 3;
	}
	if (need_v) {
		pass_vertical(mid, stride, &ay, row_first, out);
	} else {
		for (y = 0; y < IMG_CROP; y++)
			memcpy(out + y * IMG_CROP * 3, mid + y * stride, IMG_CROP * 3);
	}

fail:
	free(tmp);
	axis_free(&ax);
	axis_free(&ay);
	return rc;
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
