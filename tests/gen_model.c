/*
 * gen_model.c - write a ResNet-18 seer weight file with seeded random
 * weights straight from C, so command-line tests need no PyTorch.
 * usage: gen_model OUT.seer [--arch NAME] [--drop TENSOR] [--id MODEL_ID] [--seed N]
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <math.h>

#include "resnet.h"
#include "wfile.h"
#include "winograd.h"

static unsigned state = 7;

static float rnd(float scale)
{
	state = state * 1664525u + 1013904223u;
	return ((float)((state >> 8) & 0xffffff) / 8388608.0f - 1.0f) * scale;
}

static int add(struct wfile_writer *w, const char *drop, const char *name, int ndim,
	       const uint32_t *dims, float scale)
{
	struct seer_err err = { 0 };
	size_t n = 1;
	float *data;
	int rc;

	if (drop != NULL && strcmp(drop, name) == 0)
		return 0;
	for (int d = 0; d < ndim; d++)
		n *= dims[d];
	data = malloc(n * sizeof(float));
	if (data == NULL)
		return -1;
	for (size_t i = 0; i < n; i++)
		data[i] = rnd(scale);
	rc = wfile_writer_add(w, name, ndim, dims, data, &err);
	free(data);
	if (rc < 0)
		fprintf(stderr, "gen_model: %s\n", err.msg);
	return rc;
}

int main(int argc, char **argv)
{
	const char *arch = RESNET18_ARCH, *drop = NULL, *id = "test-random";
	const struct resnet_conv_spec *specs;
	struct seer_err err = { 0 };
	struct wfile_writer *w;
	char name[WFILE_NAME_MAX];
	size_t n;
	int rc = 0;

	if (argc < 2) {
		fprintf(stderr, "usage: gen_model OUT.seer [--arch NAME] [--drop TENSOR] [--id MODEL_ID] "
				"[--seed N]\n");
		return 2;
	}
	for (int i = 2; i + 1 < argc; i += 2) {
		if (strcmp(argv[i], "--arch") == 0)
			arch = argv[i + 1];
		else if (strcmp(argv[i], "--drop") == 0)
			drop = argv[i + 1];
		else if (strcmp(argv[i], "--id") == 0)
			id = argv[i + 1];
		else if (strcmp(argv[i], "--seed") == 0)
			state = (unsigned)strtoul(argv[i + 1], NULL, 10);
	}
	w = wfile_writer_new(arch, id);
	specs = resnet18_conv_specs(&n);
	for (size_t i = 0; i < n && rc == 0; i++) {
		const struct resnet_conv_spec *s = &specs[i];
		uint32_t dims[4] = { (uint32_t)s->k, (uint32_t)s->c, (uint32_t)s->ksize, (uint32_t)s->ksize };
		/* He-style scale keeps activations from vanishing through 18 layers */
		float scale = 2.0f / sqrtf((float)s->c * s->ksize * s->ksize);

		snprintf(name, sizeof(name), "%s.weight", s->name);
		rc = add(w, drop, name, 4, dims, scale);
		snprintf(name, sizeof(name), "%s.bias", s->name);
		if (rc == 0)
			rc = add(w, drop, name, 1, dims, 0.1f);
	}
	if (rc == 0)
		rc = add(w, drop, "fc.weight", 2, (const uint32_t[]){ 1000, 512 }, 0.1f);
	if (rc == 0)
		rc = add(w, drop, "fc.bias", 1, (const uint32_t[]){ 1000 }, 0.1f);
	if (rc == 0 && (rc = wfile_writer_save(w, argv[1], &err)) < 0)
		fprintf(stderr, "gen_model: %s\n", err.msg);
	wfile_writer_free(w);
	return rc < 0 ? 1 : 0;
}
