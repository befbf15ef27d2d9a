/*
 * test_pth.c - TAP tests of the PyTorch checkpoint reader on the files that
 * tests/pth_gen.py writes into argv[1]: real torch.save output, hostile
 * archives, and truncated or damaged copies that must fail cleanly.
 */
#include "pth.h"
#include "tap.h"

#include <math.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *dir;

/* A TAP diagnostic line; always returns false so a check can end with it. */
static bool diag(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

static bool diag(const char *fmt, ...)
{
	va_list ap;

	printf("# ");
	va_start(ap, fmt);
	vprintf(fmt, ap);
	va_end(ap);
	printf("\n");
	return false;
}

/* dir/name in a static buffer, valid until the next call. */
static const char *path_of(const char *name)
{
	static char buf[4096];

	snprintf(buf, sizeof(buf), "%s/%s", dir, name);
	return buf;
}

/* Read a whole file into a malloc'd buffer the caller frees; NULL on failure. */
static unsigned char *slurp(const char *name, size_t *len)
{
	FILE *fp = fopen(path_of(name), "rb");
	unsigned char *buf = NULL;
	long n;

	if (fp == NULL)
		return NULL;
	if (fseek(fp, 0, SEEK_END) != 0 || (n = ftell(fp)) < 0 || fseek(fp, 0, SEEK_SET) != 0)
		goto fail;
	buf = malloc(n > 0 ? (size_t)n : 1);
	if (buf == NULL || fread(buf, 1, (size_t)n, fp) != (size_t)n)
		goto fail;
	fclose(fp);
	*len = (size_t)n;
	return buf;
fail:
	free(buf);
	fclose(fp);
	return NULL;
}

static double half_to_double(uint16_t h)
{
	int e = (h >> 10) & 31, m = h & 1023;
	double v = e == 0 ? ldexp(m, -24) : e == 31 ? (m ? NAN : INFINITY) : ldexp(1024 + m, e - 25);

	return (h & 0x8000) ? -v : v;
}

/* Element i of t as a double, whatever its dtype. */
static double elem(const struct pth_tensor *t, int64_t i)
{
	const unsigned char *p = (const unsigned char *)t->data + (size_t)i * pth_dtype_size(t->dtype);
	union {
		float f;
		double d;
		int64_t i64;
		int32_t i32;
		int16_t i16;
		int8_t i8;
		uint8_t u8;
		uint16_t u16;
		uint32_t u32;
	} u;

	memcpy(&u, p, pth_dtype_size(t->dtype));
	switch (t->dtype) {
	case PTH_F32: return u.f;
	case PTH_F64: return u.d;
	case PTH_F16: return half_to_double(u.u16);
	case PTH_BF16:
		u.u32 = (uint32_t)u.u16 << 16;
		return u.f;
	case PTH_I64: return (double)u.i64;
	case PTH_I32: return u.i32;
	case PTH_I16: return u.i16;
	case PTH_I8: return u.i8;
	case PTH_U8: return u.u8;
	case PTH_BOOL: return u.u8;
	}
	return NAN;
}

/* ---- small.pth: known names, shapes, dtypes and values ---- */

struct small_expect {
	const char *name;
	enum pth_dtype dtype;
	int ndim;
	int64_t shape[4];
};

static const struct small_expect small[] = {
	{ "weight", PTH_F32, 2, { 3, 4 } },
	{ "bias", PTH_F32, 1, { 3 } },
	{ "conv.weight", PTH_F32, 4, { 2, 3, 2, 2 } },
	{ "b.f64", PTH_F64, 1, { 5 } },
	{ "b.f16", PTH_F16, 2, { 2, 3 } },
	{ "b.bf16", PTH_BF16, 1, { 3 } },
	{ "bn.num_batches_tracked", PTH_I64, 0, { 0 } },
	{ "c.i32", PTH_I32, 1, { 4 } },
	{ "c.i64", PTH_I64, 1, { 2 } },
	{ "c.i16", PTH_I16, 1, { 2 } },
	{ "c.i8", PTH_I8, 1, { 3 } },
	{ "c.u8", PTH_U8, 1, { 6 } },
	{ "m.mask", PTH_BOOL, 1, { 3 } },
	{ "shared.full", PTH_F32, 1, { 20 } },
	{ "shared.tail", PTH_F32, 2, { 3, 4 } },
	{ "u.row", PTH_F32, 2, { 1, 4 } },
	{ "e.empty", PTH_F32, 2, { 0, 3 } },
};
#define N_SMALL (sizeof(small) / sizeof(small[0]))

/* The value pth_gen.py put at flat index i of tensor k of small.pth. */
static double small_value(size_t k, int64_t i)
{
	static const double bias[] = { 0.25, -0.5, 1.0 };
	static const double f16[] = { 0.5, -2.0, 3.25, 1024.0, 1.0 / 1024, -0.125 };
	static const double bf16[] = { 1.0, -2.5, 65280.0 };
	static const double i32[] = { -7, 0, 2147483647.0, -2147483648.0 };
	static const double i64[] = { 1099511627776.0, -1125899906842621.0 };
	static const double i16[] = { -32768, 32767 };
	static const double i8[] = { -128, 127, 5 };
	static const double mask[] = { 1, 0, 1 };
	const char *n = small[k].name;

	if (strcmp(n, "weight") == 0)
		return (double)((float)i * 0.5f - 1.0f);
	if (strcmp(n, "bias") == 0)
		return bias[i];
	if (strcmp(n, "conv.weight") == 0)
		return (double)((float)i / 8.0f);
	if (strcmp(n, "b.f64") == 0)
		return (double)i * 1.5 + 0.1;
	if (strcmp(n, "b.f16") == 0)
		return f16[i];
	if (strcmp(n, "b.bf16") == 0)
		return bf16[i];
	if (strcmp(n, "bn.num_batches_tracked") == 0)
		return 12345;
	if (strcmp(n, "c.i32") == 0)
		return i32[i];
	if (strcmp(n, "c.i64") == 0)
		return i64[i];
	if (strcmp(n, "c.i16") == 0)
		return i16[i];
	if (strcmp(n, "c.i8") == 0)
		return i8[i];
	if (strcmp(n, "c.u8") == 0)
		return (double)(250 + i);
	if (strcmp(n, "m.mask") == 0)
		return mask[i];
	if (strcmp(n, "shared.full") == 0)
		return (double)(100 + i);
	if (strcmp(n, "shared.tail") == 0)
		return (double)(108 + i);
	if (strcmp(n, "u.row") == 0)
		return (double)i;
	return NAN;
}

static bool check_small_meta(const struct pth_file *f)
{
	size_t k;
	int d;

	if (pth_count(f) != N_SMALL)
		return diag("count %zu, expected %zu", pth_count(f), N_SMALL);
	for (k = 0; k < N_SMALL; k++) {
		const struct pth_tensor *t = pth_tensor_at(f, k);
		int64_t numel = 1;

		if (strcmp(t->name, small[k].name) != 0)
			return diag("tensor %zu is '%s', expected '%s'", k, t->name, small[k].name);
		if (t->dtype != small[k].dtype || t->ndim != small[k].ndim)
			return diag("'%s': dtype %s ndim %d", t->name, pth_dtype_name(t->dtype), t->ndim);
		for (d = 0; d < t->ndim; d++) {
			if (t->shape[d] != small[k].shape[d])
				return diag("'%s': dim %d is %lld", t->name, d, (long long)t->shape[d]);
			numel *= t->shape[d];
		}
		if (t->numel != numel)
			return diag("'%s': numel %lld", t->name, (long long)t->numel);
	}
	return true;
}

static bool check_small_values(const struct pth_file *f)
{
	size_t k;
	int64_t i;

	for (k = 0; k < N_SMALL && k < pth_count(f); k++) {
		const struct pth_tensor *t = pth_tensor_at(f, k);

		for (i = 0; i < t->numel; i++) {
			double want = small_value(k, i), got = elem(t, i);

			if (got != want)
				return diag("'%s'[%lld] = %.17g, expected %.17g", t->name,
					    (long long)i, got, want);
		}
	}
	/* the two views share one storage */
	if ((const char *)pth_find(f, "shared.tail")->data !=
	    (const char *)pth_find(f, "shared.full")->data + 8 * sizeof(float))
		return diag("shared.tail does not point 8 floats into shared.full");
	return true;
}

static bool check_small_find(const struct pth_file *f)
{
	size_t k;

	for (k = 0; k < pth_count(f); k++) {
		if (pth_find(f, pth_tensor_at(f, k)->name) != pth_tensor_at(f, k))
			return diag("pth_find('%s') misses", pth_tensor_at(f, k)->name);
	}
	if (pth_find(f, "nope") != NULL || pth_find(f, "") != NULL || pth_find(f, "weigh") != NULL ||
	    pth_find(f, "weightx") != NULL)
		return diag("pth_find finds an absent name");
	if (pth_tensor_at(f, pth_count(f)) != NULL)
		return diag("pth_tensor_at past the end is not NULL");
	return true;
}

static void test_small(void)
{
	struct seer_err err = { 0 };
	struct pth_file *f = NULL;
	int rc = pth_open(path_of("small.pth"), &f, &err);

	if (!tap_ok(rc == 0 && f != NULL, "small.pth opens")) {
		diag("rc %d: %s", rc, err.msg);
		tap_ok(false, "small.pth names, dtypes and shapes");
		tap_ok(false, "small.pth values");
		tap_ok(false, "small.pth lookup by name");
		return;
	}
	tap_ok(check_small_meta(f), "small.pth names, dtypes and shapes");
	tap_ok(pth_count(f) == N_SMALL && check_small_values(f), "small.pth values");
	tap_ok(check_small_find(f), "small.pth lookup by name");
	pth_close(f);
}

static void test_handmade(void)
{
	struct seer_err err = { 0 };
	struct pth_file *f = NULL;
	const struct pth_tensor *w, *n;
	bool ok = false;
	int rc = pth_open(path_of("handmade_ok.pth"), &f, &err), i;

	if (rc < 0) {
		diag("rc %d: %s", rc, err.msg);
		goto done;
	}
	w = pth_find(f, "w");
	n = pth_find(f, "n");
	ok = pth_count(f) == 2 && w != NULL && n != NULL && w->dtype == PTH_F32 && w->ndim == 2 &&
	     w->shape[0] == 2 && w->shape[1] == 3 && n->dtype == PTH_I64 && n->ndim == 0 &&
	     n->numel == 1 && elem(n, 0) == 42;
	for (i = 0; ok && i < 6; i++)
		ok = elem(w, i) == i;
done:
	tap_ok(ok, "handmade_ok.pth (LONG1, NEWTRUE, plain zip headers) reads right");
	pth_close(f);
}

/* ---- resnet18.pth against the manifest pth_gen.py wrote ---- */

static bool check_resnet_manifest(const struct pth_file *f)
{
	FILE *fp = fopen(path_of("resnet18.txt"), "r");
	char name[256], dt[16];
	size_t k = 0;
	bool ok = true;
	int ndim, d;

	if (fp == NULL)
		return diag("no resnet18.txt");
	while (ok && fscanf(fp, "%255s %15s %d", name, dt, &ndim) == 3) {
		const struct pth_tensor *t = pth_tensor_at(f, k++);
		double first, last, sum, abssum, s = 0;
		long long dim;
		int64_t i;

		if (t == NULL || strcmp(t->name, name) != 0 || strcmp(pth_dtype_name(t->dtype), dt) != 0 ||
		    t->ndim != ndim) {
			ok = diag("tensor %zu: expected '%s' %s ndim %d", k - 1, name, dt, ndim);
			break;
		}
		for (d = 0; d < ndim; d++) {
			if (fscanf(fp, "%lld", &dim) != 1 || t->shape[d] != dim)
				ok = diag("'%s': dim %d differs", name, d);
		}
		if (!ok || fscanf(fp, "%lf %lf %lf %lf", &first, &last, &sum, &abssum) != 4) {
			ok = diag("'%s': bad manifest line", name);
			break;
		}
		for (i = 0; i < t->numel; i++)
			s += elem(t, i);
		if (elem(t, 0) != first || elem(t, t->numel - 1) != last ||
		    fabs(s - sum) > 1e-9 * abssum + 1e-12)
			ok = diag("'%s': first %.9g last %.9g sum %.17g; expected %.9g %.9g %.17g",
				  name, elem(t, 0), elem(t, t->numel - 1), s, first, last, sum);
	}
	fclose(fp);
	if (ok && k != pth_count(f))
		ok = diag("manifest has %zu tensors, file %zu", k, pth_count(f));
	return ok;
}

static bool check_resnet_layout(const struct pth_file *f)
{
	static const struct {
		const char *name;
		int ndim;
		int64_t shape[4];
	} spots[] = {
		{ "conv1.weight", 4, { 64, 3, 7, 7 } },
		{ "bn1.running_var", 1, { 64 } },
		{ "layer2.0.downsample.0.weight", 4, { 128, 64, 1, 1 } },
		{ "layer4.1.conv2.weight", 4, { 512, 512, 3, 3 } },
		{ "fc.weight", 2, { 1000, 512 } },
		{ "fc.bias", 1, { 1000 } },
	};
	size_t k, params = 0, tracked = 0;
	int d;

	for (k = 0; k < pth_count(f); k++) {
		const struct pth_tensor *t = pth_tensor_at(f, k);
		size_t len = strlen(t->name);

		if ((len > 7 && strcmp(t->name + len - 7, ".weight") == 0) ||
		    (len > 5 && strcmp(t->name + len - 5, ".bias") == 0)) {
			params++;
			if (t->dtype != PTH_F32)
				return diag("'%s' is %s", t->name, pth_dtype_name(t->dtype));
		}
		if (len > 20 && strcmp(t->name + len - 20, ".num_batches_tracked") == 0) {
			tracked++;
			if (t->dtype != PTH_I64 || t->ndim != 0 || t->numel != 1 || elem(t, 0) != 0)
				return diag("'%s' is not an i64 scalar 0", t->name);
		}
	}
	if (pth_count(f) != 122 || params != 62 || tracked != 20)
		return diag("%zu tensors, %zu weights/biases, %zu num_batches_tracked",
			    pth_count(f), params, tracked);
	for (k = 0; k < sizeof(spots) / sizeof(spots[0]); k++) {
		const struct pth_tensor *t = pth_find(f, spots[k].name);

		if (t == NULL || t->ndim != spots[k].ndim)
			return diag("'%s' missing or of wrong rank", spots[k].name);
		for (d = 0; d < t->ndim; d++) {
			if (t->shape[d] != spots[k].shape[d])
				return diag("'%s' dim %d is %lld", spots[k].name, d,
					    (long long)t->shape[d]);
		}
	}
	return true;
}

static void test_resnet(void)
{
	struct seer_err err = { 0 };
	struct pth_file *f = NULL;
	int rc = pth_open(path_of("resnet18.pth"), &f, &err);

	if (!tap_ok(rc == 0, "resnet18.pth opens")) {
		diag("rc %d: %s", rc, err.msg);
		tap_ok(false, "resnet18.pth: 62 weights/biases, 20 num_batches_tracked, shapes");
		tap_ok(false, "resnet18.pth matches its manifest");
		return;
	}
	tap_ok(check_resnet_layout(f), "resnet18.pth: 62 weights/biases, 20 num_batches_tracked, shapes");
	tap_ok(check_resnet_manifest(f), "resnet18.pth matches its manifest");
	pth_close(f);
}

/* ---- hostile files: each fails with its own code and says why ---- */

static const struct {
	const char *file;
	int code;
	const char *says;
} hostile[] = {
	{ "evil_os_system.pth", SEER_EUNSUPPORTED, "global 'os.system' is not allowed" },
	{ "evil_posix_system.pth", SEER_EUNSUPPORTED, "global 'posix.system' is not allowed" },
	{ "evil_builtins_eval.pth", SEER_EUNSUPPORTED, "global 'builtins.eval' is not allowed" },
	{ "evil_param.pth", SEER_EUNSUPPORTED, "'torch._utils._rebuild_parameter'" },
	{ "deflate.pth", SEER_EUNSUPPORTED, "'archive/data.pkl' is compressed" },
	{ "badcrc.pth", SEER_ECORRUPT, "'archive/data/0' fails its CRC-32" },
	{ "badkey.pth", SEER_ECORRUPT, "storage '7' has no zip entry 'archive/data/7'" },
	{ "extent.pth", SEER_ECORRUPT, "tensor 'w' (offset 0, 8 elements) extends past storage" },
	{ "extent_offset.pth", SEER_ECORRUPT, "tensor 'w' (offset 4, 3 elements) extends past" },
	{ "storage_size.pth", SEER_ECORRUPT, "storage '0' holds 24 bytes" },
	{ "dupkey.pth", SEER_ECORRUPT, "key 'w' appears twice" },
	{ "notensor.pth", SEER_EUNSUPPORTED, "entry 'v' is not a tensor" },
	{ "opcode.pth", SEER_EUNSUPPORTED, "opcode 0x5d (']') not supported" },
	{ "memo.pth", SEER_ECORRUPT, "memo key 9 was never set" },
	{ "big_endian.pth", SEER_EUNSUPPORTED, "big-endian" },
	{ "zip64.pth", SEER_EUNSUPPORTED, "zip64" },
	{ "notzip.pth", SEER_ECORRUPT, "not a zip archive" },
	{ "empty.pth", SEER_EEMPTY, "file is empty" },
	{ "legacy.pth", SEER_EUNSUPPORTED, "legacy torch.save format; re-save with torch >= 1.6" },
	{ "noncontig.pth", SEER_EUNSUPPORTED, "tensor 't' is not contiguous" },
	{ "proto4.pth", SEER_EUNSUPPORTED, "pickle protocol 4" },
	{ "bad_shape.pth", SEER_ECORRUPT, "tensor 'w' has a bad shape" },
	{ "dims9.pth", SEER_EUNSUPPORTED, "tensor has 9 dims, over 8" },
	{ "keyint.pth", SEER_EUNSUPPORTED, "state_dict key 0 is not a string" },
	{ "nopkl.pth", SEER_ECORRUPT, "archive has no 'archive/data.pkl'" },
	{ "nofolder.pth", SEER_ECORRUPT, "zip entry 'data.pkl' is not inside an archive folder" },
	{ "dupentry.pth", SEER_ECORRUPT, "zip entry 'archive/data/0' appears twice" },
	{ "bomb_stack.pth", SEER_ETOOLARGE, "pickle stack over 65536" },
	{ "bomb_memo.pth", SEER_ETOOLARGE, "memo key 4294967295 over" },
	{ "bomb_arena.pth", SEER_ETOOLARGE, "data.pkl needs over 256 MiB of objects" },
	{ "no-such-file.pth", SEER_ENOENT, "No such file" },
};
#define N_HOSTILE (sizeof(hostile) / sizeof(hostile[0]))

static void test_hostile(void)
{
	char prefix[4200];
	size_t k;

	for (k = 0; k < N_HOSTILE; k++) {
		struct seer_err err = { 0 };
		struct pth_file *f = (struct pth_file *)&err; /* must come back NULL */
		const char *path = path_of(hostile[k].file);
		int rc = pth_open(path, &f, &err);
		bool ok;

		snprintf(prefix, sizeof(prefix), "pth_open: %s: ", path);
		ok = rc == hostile[k].code && err.code == rc && f == NULL &&
		     strncmp(err.msg, prefix, strlen(prefix)) == 0 &&
		     strstr(err.msg, hostile[k].says) != NULL;
		if (!tap_ok(ok, "%s fails with %s", hostile[k].file, seer_status_str(hostile[k].code)))
			diag("rc %d: %s", rc, err.msg);
		if (rc == 0)
			pth_close(f);
	}
}

static void test_api_edges(void)
{
	struct seer_err err = { 0 };
	struct pth_file *f = NULL;
	bool ok = true;

	pth_close(NULL);
	if (pth_open_mem(NULL, 5, &f, &err) != SEER_EINVAL || f != NULL)
		ok = diag("pth_open_mem(NULL, 5) is not EINVAL");
	if (pth_open_mem("", 0, &f, &err) != SEER_EEMPTY || f != NULL)
		ok = diag("pth_open_mem of 0 bytes is not EEMPTY");
	if (pth_open(path_of("badcrc.pth"), &f, NULL) != SEER_ECORRUPT || f != NULL)
		ok = diag("a NULL err record breaks pth_open");
	if (pth_open(NULL, &f, &err) != SEER_EINVAL)
		ok = diag("pth_open(NULL) is not EINVAL");
	if (pth_dtype_size(PTH_BF16) != 2 || pth_dtype_size(PTH_I64) != 8 ||
	    pth_dtype_size(PTH_BOOL) != 1 || pth_dtype_size((enum pth_dtype)99) != 0)
		ok = diag("pth_dtype_size is wrong");
	tap_ok(ok, "NULL arguments, empty buffer, NULL err, dtype sizes");
}

/* ---- damaged copies ---- */

/*
 * Parse a copy of buf[0..len) that ends exactly where its heap block ends, so
 * a sanitizer sees any read past len. The copy goes at the end of the
 * caller's scratch block (scratch_len >= len) when there is one, else into a
 * fresh block. Returns the status; *clean is cleared if a failure left no
 * proper message or a non-NULL result.
 */
static int parse_copy(const unsigned char *buf, size_t len, unsigned char *scratch,
		      size_t scratch_len, bool *clean)
{
	struct seer_err err = { 0 };
	struct pth_file *f = NULL;
	unsigned char *block = scratch ? NULL : malloc(len ? len : 1);
	unsigned char *copy = scratch ? scratch + scratch_len - len : block;
	int rc;

	if (copy == NULL) {
		*clean = diag("out of memory");
		return SEER_ENOMEM;
	}
	memcpy(copy, buf, len);
	rc = pth_open_mem(copy, len, &f, &err);
	if (rc == 0)
		pth_close(f);
	else if (f != NULL || err.code != rc ||
		 strncmp(err.msg, "pth_open_mem: <memory>: ", 24) != 0 || strlen(err.msg) < 30)
		*clean = diag("len %zu: rc %d left '%s'", len, rc, err.msg);
	free(block);
	return rc;
}

/* Cut buf at len: it must fail with ETRUNC, ECORRUPT or (at 0) EEMPTY. */
static bool truncated_fails(const unsigned char *buf, size_t len, unsigned char *scratch,
			    size_t scratch_len, size_t *n_trunc)
{
	bool clean = true;
	int rc = parse_copy(buf, len, scratch, scratch_len, &clean);

	if (rc == SEER_ETRUNC)
		(*n_trunc)++;
	if (len == 0 ? rc != SEER_EEMPTY : rc != SEER_ETRUNC && rc != SEER_ECORRUPT)
		return diag("cut at %zu: rc %d", len, rc);
	return clean;
}

static void test_truncate_small(void)
{
	size_t len = 0, cut, n_trunc = 0;
	unsigned char *buf = slurp("small.pth", &len);
	bool ok = buf != NULL;

	for (cut = 0; ok && cut < len; cut++)
		ok = truncated_fails(buf, cut, NULL, 0, &n_trunc);
	if (ok)
		diag("%zu cuts, %zu of them ETRUNC", len, n_trunc);
	tap_ok(ok, "small.pth cut at every byte fails cleanly");
	free(buf);
}

static void test_truncate_resnet(void)
{
	size_t len = 0, cut, k, n = 0, n_trunc = 0;
	unsigned char *buf = slurp("resnet18.pth", &len);
	unsigned char *scratch = buf ? malloc(len) : NULL;
	bool ok = scratch != NULL && len > (1u << 20);

	for (k = 0; ok && k <= 64; k++, n += 2) {
		ok = truncated_fails(buf, k * 1024, scratch, len, &n_trunc) &&
		     truncated_fails(buf, len - 1 - k * 1024, scratch, len, &n_trunc);
	}
	for (k = 0; ok && k < 200; k++, n++) {
		/* uneven steps so cuts land in headers, data and the directory */
		cut = (size_t)((double)len * (k + 0.37) / 200.0);
		ok = truncated_fails(buf, cut, scratch, len, &n_trunc);
	}
	/* every cut through the end records (22 bytes, 76 more of zip64) */
	for (k = 1; ok && k <= 128; k++, n++)
		ok = truncated_fails(buf, len - k, scratch, len, &n_trunc);
	if (ok)
		diag("%zu cuts, %zu of them ETRUNC", n, n_trunc);
	tap_ok(ok, "resnet18.pth cut every 1 KiB in its first and last 64 KiB and elsewhere fails cleanly");
	free(scratch);
	free(buf);
}

/*
 * Keep small.pth's central directory and end record but cut the data before
 * them at every offset, moving the directory down: entries then point past
 * or into the wrong bytes and each must be refused.
 */
static void test_splice_small(void)
{
	size_t len = 0, cut, cd_off, tail;
	unsigned char *buf = slurp("small.pth", &len), *work = NULL;
	bool ok = buf != NULL && len > 64 && memcmp(buf + len - 22, "PK\5\6", 4) == 0;

	if (ok) {
		cd_off = (size_t)buf[len - 6] | (size_t)buf[len - 5] << 8 |
			 (size_t)buf[len - 4] << 16 | (size_t)buf[len - 3] << 24;
		tail = len - cd_off;
		work = malloc(len);
		ok = work != NULL && cd_off > 64 && cd_off < len;
	}
	for (cut = 0; ok && cut + 64 < cd_off; cut++) {
		bool clean = true;
		int rc;

		memcpy(work, buf, cut);
		memcpy(work + cut, buf + cd_off, tail);
		work[cut + tail - 6] = (unsigned char)cut;
		work[cut + tail - 5] = (unsigned char)(cut >> 8);
		work[cut + tail - 4] = (unsigned char)(cut >> 16);
		work[cut + tail - 3] = (unsigned char)(cut >> 24);
		rc = parse_copy(work, cut + tail, NULL, 0, &clean);
		ok = clean && (rc == SEER_ETRUNC || rc == SEER_ECORRUPT);
		if (!ok)
			diag("data cut at %zu: rc %d", cut, rc);
	}
	tap_ok(ok, "small.pth with its data cut short under an intact directory fails cleanly");
	free(work);
	free(buf);
}

/* Flip bits in every byte of small.pth's directory and end records. */
static void test_flip_small(void)
{
	static const unsigned char masks[] = { 0x01, 0x10, 0x80, 0xff };
	size_t len = 0, i, k, n_ok = 0, n_fail = 0;
	unsigned char *buf = slurp("small.pth", &len);
	bool ok = buf != NULL && len > 64 && memcmp(buf + len - 22, "PK\5\6", 4) == 0;
	size_t cd_off = ok ? (size_t)buf[len - 6] | (size_t)buf[len - 5] << 8 |
				     (size_t)buf[len - 4] << 16 | (size_t)buf[len - 3] << 24 : 0;

	for (i = cd_off; ok && i < len; i++) {
		for (k = 0; ok && k < sizeof(masks); k++) {
			bool clean = true;

			buf[i] ^= masks[k];
			if (parse_copy(buf, len, NULL, 0, &clean) == 0)
				n_ok++;
			else
				n_fail++;
			buf[i] ^= masks[k];
			ok = clean;
		}
	}
	if (ok)
		diag("%zu flips parsed, %zu refused", n_ok, n_fail);
	tap_ok(ok, "small.pth with bits flipped in its zip directory never misbehaves");
	free(buf);
}

int main(int argc, char **argv)
{
	if (argc != 2) {
		fprintf(stderr, "usage: %s DIR (files from tests/pth_gen.py)\n", argv[0]);
		return 2;
	}
	dir = argv[1];
	test_small();          /* 4 */
	test_handmade();       /* 1 */
	test_resnet();         /* 3 */
	test_hostile();        /* N_HOSTILE */
	test_api_edges();      /* 1 */
	test_truncate_small(); /* 1 */
	test_truncate_resnet(); /* 1 */
	test_splice_small();   /* 1 */
	test_flip_small();     /* 1 */
	return tap_done();
}
