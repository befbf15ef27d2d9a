/*
 * convert.c - state_dict -> seer weight file: shape checks against the
 * ResNet-18 layer table, batch-norm folding in double precision, Winograd
 * weight transforms.
 */
#include "convert.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "pth.h"
#include "resnet.h"
#include "wfile.h"
#include "winograd.h"

#define BN_EPS 1e-5 /* torch.nn.BatchNorm2d's default, which torchvision's resnet18 uses */

/* Read element i of a float tensor of any float dtype the reader knows. */
static double elem(const struct pth_tensor *t, int64_t i)
{
	const unsigned char *p = t->data;

	if (t->dtype == PTH_F64) {
		double d;

		memcpy(&d, p + i * 8, 8);
		return d;
	}
	float f;

	memcpy(&f, p + i * 4, 4);
	return f;
}

/* Find name with exactly the given shape and a float32/float64 dtype. */
static int need(const struct pth_file *f, const char *name, int ndim, const int64_t *shape,
		const struct pth_tensor **out, struct seer_err *err)
{
	const struct pth_tensor *t = pth_find(f, name);

	if (t == NULL)
		return seer_err_set(err, SEER_EMODEL, "not a resnet18 state_dict: '%s' is missing", name);
	if (t->ndim != ndim || memcmp(t->shape, shape, (size_t)ndim * sizeof(*shape)) != 0)
		return seer_err_set(err, SEER_EMODEL, "not a resnet18 state_dict: '%s' has the wrong shape", name);
	if (t->dtype != PTH_F32 && t->dtype != PTH_F64)
		return seer_err_set(err, SEER_EUNSUPPORTED, "'%s' is not float32 or float64", name);
	*out = t;
	return SEER_OK;
}

/* Is this a key resnet18's state_dict has? Used to reject other models' extra tensors. */
static int expected_key(const char *key)
{
	static const char *bn_fields[] = { "weight", "bias", "running_mean", "running_var",
					   "num_batches_tracked" };
	const struct resnet_conv_spec *specs;
	char name[128];
	size_t n;

	if (strcmp(key, "fc.weight") == 0 || strcmp(key, "fc.bias") == 0)
		return 1;
	specs = resnet18_conv_specs(&n);
	for (size_t i = 0; i < n; i++) {
		snprintf(name, sizeof(name), "%s.weight", specs[i].conv);
		if (strcmp(key, name) == 0)
			return 1;
		for (size_t j = 0; j < sizeof(bn_fields) / sizeof(bn_fields[0]); j++) {
			snprintf(name, sizeof(name), "%s.%s", specs[i].bn, bn_fields[j]);
			if (strcmp(key, name) == 0)
				return 1;
		}
	}
	return 0;
}

/* How a stride-1 3x3 convolution is stored (see BENCHMARKS.md for the measurements). */
enum conv_store { STORE_PLAIN, STORE_WINO4, STORE_WINO2 };

/*
 * At batch 1 the deep layers are bound by reading their weights, which the
 * Winograd transforms enlarge (F(4x4) 4x, F(2x2) 16/9): F(4x4) pays where
 * the images are large (stages 1-2, 56x56 and 28x28), F(2x2) at 14x14 and
 * 7x7 (stages 3-4), where F(4x4)'s few tiles and big weights lose.
 */
static enum conv_store conv_store_for(const struct resnet_conv_spec *s)
{
	if (s->ksize != 3 || s->stride != 1)
		return STORE_PLAIN;
	return s->k <= 128 ? STORE_WINO4 : STORE_WINO2;
}

/* Fold one conv + batch-norm pair and add it to the writer. */
static int fold_conv(const struct pth_file *f, const struct resnet_conv_spec *s,
		     struct wfile_writer *w, struct seer_err *err)
{
	const int64_t wshape[4] = { s->k, s->c, s->ksize, s->ksize }, vshape[1] = { s->k };
	const size_t per_k = (size_t)s->c * s->ksize * s->ksize;
	const struct pth_tensor *cw, *g, *b, *mean, *var;
	float *weight = NULL, *bias = NULL, *wino = NULL;
	char name[128];
	int rc;

	snprintf(name, sizeof(name), "%s.weight", s->conv);
	if ((rc = need(f, name, 4, wshape, &cw, err)) < 0)
		return rc;
	snprintf(name, sizeof(name), "%s.weight", s->bn);
	if ((rc = need(f, name, 1, vshape, &g, err)) < 0)
		return rc;
	snprintf(name, sizeof(name), "%s.bias", s->bn);
	if ((rc = need(f, name, 1, vshape, &b, err)) < 0)
		return rc;
	snprintf(name, sizeof(name), "%s.running_mean", s->bn);
	if ((rc = need(f, name, 1, vshape, &mean, err)) < 0)
		return rc;
	snprintf(name, sizeof(name), "%s.running_var", s->bn);
	if ((rc = need(f, name, 1, vshape, &var, err)) < 0)
		return rc;

	weight = malloc((size_t)s->k * per_k * sizeof(float));
	bias = malloc((size_t)s->k * sizeof(float));
	if (weight == NULL || bias == NULL) {
		rc = seer_err_set(err, SEER_ENOMEM, "out of memory");
		goto fail;
	}
	for (int k = 0; k < s->k; k++) {
		double v = elem(var, k);
		double scale;

		if (!(v >= 0.0) || !isfinite(v)) {
			rc = seer_err_set(err, SEER_ECORRUPT, "%s.running_var[%d] is %g", s->bn, k, v);
			goto fail;
		}
		scale = elem(g, k) / sqrt(v + BN_EPS);
		for (size_t i = 0; i < per_k; i++)
			weight[k * per_k + i] = (float)(elem(cw, (int64_t)(k * per_k + i)) * scale);
		bias[k] = (float)(elem(b, k) - elem(mean, k) * scale);
	}

	snprintf(name, sizeof(name), "%s.bias", s->name);
	if ((rc = wfile_writer_add(w, name, 1, (const uint32_t[]){ (uint32_t)s->k }, bias, err)) < 0)
		goto fail;
	switch (conv_store_for(s)) {
	case STORE_WINO4:
	case STORE_WINO2: {
		int two = conv_store_for(s) == STORE_WINO2;
		size_t floats = two ? wino2_weight_floats(s->k, s->c) : wino_weight_floats(s->k, s->c);

		wino = malloc(floats * sizeof(float));
		if (wino == NULL) {
			rc = seer_err_set(err, SEER_ENOMEM, "out of memory");
			goto fail;
		}
		if (two)
			wino2_weight_transform(weight, s->k, s->c, wino);
		else
			wino_weight_transform(weight, s->k, s->c, wino);
		snprintf(name, sizeof(name), "%s.wino%s", s->name, two ? "2" : "");
		rc = wfile_writer_add(w, name, 3,
				      (const uint32_t[]){ two ? 16 : 36, (uint32_t)s->k, (uint32_t)s->c }, wino, err);
		break;
	}
	case STORE_PLAIN:
		snprintf(name, sizeof(name), "%s.weight", s->name);
		rc = wfile_writer_add(w, name, 4,
				      (const uint32_t[]){ (uint32_t)s->k, (uint32_t)s->c,
							  (uint32_t)s->ksize, (uint32_t)s->ksize },
				      weight, err);
		break;
	}
fail:
	free(weight);
	free(bias);
	free(wino);
	return rc;
}

/* Copy a float tensor into a freshly allocated float32 array (NULL when out of memory). */
static float *to_f32(const struct pth_tensor *t)
{
	float *out = malloc((size_t)t->numel * sizeof(float));

	if (out != NULL)
		for (int64_t i = 0; i < t->numel; i++)
			out[i] = (float)elem(t, i);
	return out;
}

/* Model id from the input file name: its base name without the extension. */
static void default_model_id(const char *path, char *id, size_t cap)
{
	const char *base = strrchr(path, '/');
	char *dot;

	snprintf(id, cap, "%s", base ? base + 1 : path);
	dot = strrchr(id, '.');
	if (dot != NULL && dot != id)
		*dot = '\0';
}

int convert_resnet18(const char *in_path, const char *out_path, const char *model_id,
		     struct seer_err *err)
{
	const int64_t fcw[2] = { RESNET_CLASSES, 512 }, fcb[1] = { RESNET_CLASSES };
	const struct resnet_conv_spec *specs;
	const struct pth_tensor *fw, *fb;
	struct seer_err inner = { 0 };
	struct pth_file *f = NULL;
	struct wfile_writer *w = NULL;
	char id[WFILE_MODEL_MAX];
	float *fc = NULL;
	size_t n;
	int rc;

	rc = pth_open(in_path, &f, err); /* its messages name the file */
	if (rc < 0)
		return rc;
	for (size_t i = 0; i < pth_count(f); i++) {
		const char *key = pth_tensor_at(f, i)->name;

		if (!expected_key(key)) {
			rc = seer_err_set(&inner, SEER_EMODEL, "not a resnet18 state_dict: unexpected tensor '%s'",
					  key);
			goto fail;
		}
	}
	if (model_id == NULL) {
		default_model_id(in_path, id, sizeof(id));
		model_id = id;
	}
	w = wfile_writer_new(RESNET18_ARCH, model_id);
	if (w == NULL) {
		rc = seer_err_set(&inner, SEER_ENOMEM, "out of memory");
		goto fail;
	}
	specs = resnet18_conv_specs(&n);
	for (size_t i = 0; i < n; i++)
		if ((rc = fold_conv(f, &specs[i], w, &inner)) < 0)
			goto fail;
	if ((rc = need(f, "fc.weight", 2, fcw, &fw, &inner)) < 0 || (rc = need(f, "fc.bias", 1, fcb, &fb, &inner)) < 0)
		goto fail;
	if ((fc = to_f32(fw)) == NULL) {
		rc = seer_err_set(&inner, SEER_ENOMEM, "out of memory");
		goto fail;
	}
	if ((rc = wfile_writer_add(w, "fc.weight", 2, (const uint32_t[]){ RESNET_CLASSES, 512 }, fc, &inner)) < 0)
		goto fail;
	free(fc);
	if ((fc = to_f32(fb)) == NULL) {
		rc = seer_err_set(&inner, SEER_ENOMEM, "out of memory");
		goto fail;
	}
	if ((rc = wfile_writer_add(w, "fc.bias", 1, (const uint32_t[]){ RESNET_CLASSES }, fc, &inner)) < 0)
		goto fail;
	rc = wfile_writer_save(w, out_path, &inner);
fail:
	if (rc < 0)
		seer_err_set(err, rc, "%s: %s", in_path, inner.msg);
	free(fc);
	wfile_writer_free(w);
	pth_close(f);
	return rc;
}
