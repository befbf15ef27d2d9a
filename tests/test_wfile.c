/*
 * test_wfile.c - the weight file: a written file reads back exactly, and
 * every truncation and every flipped byte is rejected with a clear code.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "tap.h"
#include "wfile.h"

static unsigned char *slurp(const char *path, size_t *len)
{
	FILE *fp = fopen(path, "rb");
	unsigned char *buf;
	long n;

	if (fp == NULL)
		return NULL;
	fseek(fp, 0, SEEK_END);
	n = ftell(fp);
	rewind(fp);
	buf = malloc((size_t)n);
	if (buf && fread(buf, 1, (size_t)n, fp) != (size_t)n) {
		free(buf);
		buf = NULL;
	}
	fclose(fp);
	*len = (size_t)n;
	return buf;
}

/* Open a copy of buf[0..len) (so ASan sees reads past the end) and return the code. */
static int open_copy(const unsigned char *buf, size_t len, struct seer_err *err)
{
	unsigned char *copy = malloc(len ? len : 1);
	struct wfile *f = NULL;
	int rc;

	memcpy(copy, buf, len);
	rc = wfile_open_mem(copy, len, &f, err);
	wfile_close(f);
	free(copy);
	return rc;
}

int main(void)
{
	char path[] = "/tmp/seer-test-wfile-XXXXXX";
	float a[3 * 5], b[7];
	struct wfile_writer *w;
	struct seer_err err = { 0 };
	struct wfile *f = NULL;
	unsigned char *buf;
	size_t len = 0, bad;
	int fd, rc;

	for (int i = 0; i < 15; i++)
		a[i] = (float)i * 0.5f - 3.0f;
	for (int i = 0; i < 7; i++)
		b[i] = (float)(i * i);
	fd = mkstemp(path);
	close(fd);

	w = wfile_writer_new("testnet", "test-model-1");
	tap_ok(wfile_writer_add(w, "layer.a", 2, (const uint32_t[]){ 3, 5 }, a, &err) == 0, "add a 3x5 tensor");
	tap_ok(wfile_writer_add(w, "layer.b", 1, (const uint32_t[]){ 7 }, b, &err) == 0, "add a 7 tensor");
	tap_ok(wfile_writer_add(w, "", 1, (const uint32_t[]){ 7 }, b, &err) == SEER_EINVAL, "empty name refused");
	tap_ok(wfile_writer_add(w, "x", 5, (const uint32_t[]){ 1, 1, 1, 1, 1 }, b, &err) == SEER_EINVAL,
	       "5 dimensions refused");
	tap_ok(wfile_writer_save(w, path, &err) == 0, "save");
	wfile_writer_free(w);

	rc = wfile_open(path, &f, &err);
	tap_ok(rc == 0, "open what was written (%s)", rc ? err.msg : "ok");
	if (rc == 0) {
		const struct wfile_tensor *ta = wfile_find(f, "layer.a"), *tb = wfile_find(f, "layer.b");

		tap_ok(strcmp(f->arch, "testnet") == 0 && strcmp(f->model, "test-model-1") == 0,
		       "architecture and model id read back");
		tap_ok(ta && ta->ndim == 2 && ta->dims[0] == 3 && ta->dims[1] == 5 &&
		       memcmp(ta->data, a, sizeof(a)) == 0, "tensor a reads back exactly");
		tap_ok(tb && tb->numel == 7 && memcmp(tb->data, b, sizeof(b)) == 0, "tensor b reads back exactly");
		tap_ok(ta && tb && (uintptr_t)ta->data % WFILE_ALIGN == 0 && (uintptr_t)tb->data % WFILE_ALIGN == 0,
		       "tensor data is 64-byte aligned in the mapping");
		tap_ok(wfile_find(f, "layer.c") == NULL, "absent tensor is NULL");
	}
	wfile_close(f);

	buf = slurp(path, &len);
	tap_ok(buf != NULL && len % WFILE_ALIGN == 0, "file is %zu bytes", len);

	bad = 0;
	for (size_t cut = 0; cut < len; cut++) {
		rc = open_copy(buf, cut, &err);
		if (rc == 0 || (cut == 0 && rc != SEER_EEMPTY) || (cut >= 8 && rc != SEER_ETRUNC))
			bad++;
	}
	tap_ok(bad == 0, "every truncation is refused as empty or truncated (%zu wrong)", bad);

	bad = 0;
	for (size_t i = 0; i < len; i++) {
		buf[i] ^= 0x20;
		rc = open_copy(buf, len, &err);
		buf[i] ^= 0x20;
		if (rc == 0)
			bad++;
	}
	tap_ok(bad == 0, "every single flipped byte is detected (%zu missed)", bad);

	memcpy(buf + 8, "\x02\0\0\0", 4);
	rc = open_copy(buf, len, &err);
	tap_ok(rc == SEER_EUNSUPPORTED && strstr(err.msg, "version 2") != NULL, "version 2 refused: %s", err.msg);
	memcpy(buf + 8, "\x01\0\0\0", 4);

	{
		static const char zip[] = "PK\003\004rest of a zip file, long enough for a header";

		rc = open_copy((const unsigned char *)zip, sizeof(zip) - 1, &err);
	}
	tap_ok(rc == SEER_EUNSUPPORTED && strstr(err.msg, "seer convert") != NULL,
	       "a PyTorch checkpoint is pointed to 'seer convert': %s", err.msg);

	rc = wfile_open("/nonexistent/model.seer", &f, &err);
	tap_ok(rc == SEER_ENOENT && f == NULL, "missing file: %s", err.msg);

	rc = truncate(path, 0) == 0 ? wfile_open(path, &f, &err) : -100;
	tap_ok(rc == SEER_EEMPTY, "empty file: %s", err.msg);

	free(buf);
	unlink(path);
	return tap_done();
}
