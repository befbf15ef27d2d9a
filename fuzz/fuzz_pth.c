/*
 * fuzz_pth.c - libFuzzer target for the PyTorch checkpoint reader: whole
 * files, and pickles wrapped in a well-formed zip so mutations get past the
 * CRC checks into the unpickler.
 *
 * Input, first byte even: the rest is a checkpoint file, as is.
 * First byte odd: byte 1 = n storages (n % 32), then n 16-bit little-endian
 * byte sizes, then data.pkl; storage k becomes zip entry "f/data/<k>".
 *
 * Build: clang -g -O1 -fsanitize=fuzzer,address,undefined -Isrc
 *        fuzz/fuzz_pth.c src/pth.c src/status.c -lz -o fuzz_pth
 * Seeds: "\0" + any file tests/pth_gen.py writes (except resnet18.pth), and
 * "\1" + n + sizes + data.pkl of those whose storages are named 0..n-1.
 */
#include "pth.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

struct zbuf {
	uint8_t *p;
	size_t len;
};

static void put16(struct zbuf *z, unsigned v)
{
	z->p[z->len++] = (uint8_t)v;
	z->p[z->len++] = (uint8_t)(v >> 8);
}

static void put32(struct zbuf *z, uint32_t v)
{
	put16(z, v & 0xffff);
	put16(z, v >> 16);
}

static void put(struct zbuf *z, const void *p, size_t n)
{
	memcpy(z->p + z->len, p, n);
	z->len += n;
}

/* Append one stored entry's local header and data; *off gets its offset. */
static void zip_add(struct zbuf *z, const char *name, const uint8_t *d, size_t n,
		    uint32_t *off, uint32_t *crc)
{
	*off = (uint32_t)z->len;
	*crc = (uint32_t)crc32(0L, d, (uInt)n);
	put32(z, 0x04034b50u);
	put16(z, 20);
	put16(z, 0);
	put16(z, 0);
	put32(z, 0);
	put32(z, *crc);
	put32(z, (uint32_t)n);
	put32(z, (uint32_t)n);
	put16(z, (unsigned)strlen(name));
	put16(z, 0);
	put(z, name, strlen(name));
	put(z, d, n);
}

static void zip_central(struct zbuf *z, const char *name, size_t n, uint32_t off, uint32_t crc)
{
	put32(z, 0x02014b50u);
	put16(z, 20);
	put16(z, 20);
	put16(z, 0);
	put16(z, 0);
	put32(z, 0);
	put32(z, crc);
	put32(z, (uint32_t)n);
	put32(z, (uint32_t)n);
	put16(z, (unsigned)strlen(name));
	put16(z, 0);
	put16(z, 0);
	put16(z, 0);
	put16(z, 0);
	put32(z, 0);
	put32(z, off);
	put(z, name, strlen(name));
}

/* Read every byte of every tensor so the sanitizer checks the extents. */
static void touch(const struct pth_file *f)
{
	volatile uint8_t sink = 0;
	size_t i, j;

	for (i = 0; i < pth_count(f); i++) {
		const struct pth_tensor *t = pth_tensor_at(f, i);
		const uint8_t *p = t->data;

		for (j = 0; j < (size_t)t->numel * pth_dtype_size(t->dtype); j++)
			sink ^= p[j];
		if (pth_find(f, t->name) == NULL)
			abort();
	}
	(void)sink;
}

static void run(const uint8_t *buf, size_t len)
{
	struct seer_err err;
	struct pth_file *f = NULL;
	int rc = pth_open_mem(buf, len, &f, &err);

	if (rc == 0) {
		touch(f);
		pth_close(f);
	} else if (f != NULL || err.code != rc) {
		abort();
	}
}

/* Wrap a pickle and storages of the given sizes into a fresh exact-size zip. */
static void run_wrapped(const uint8_t *data, size_t size)
{
	enum { MAX_ST = 32 };
	char names[MAX_ST + 2][16];
	const uint8_t *body[MAX_ST + 2];
	size_t sizes[MAX_ST + 2], n, k, i, total = 0, cd, cd_len;
	uint32_t off[MAX_ST + 2], crc[MAX_ST + 2];
	uint8_t *fill = NULL;
	struct zbuf z = { NULL, 0 };

	if (size < 2)
		return;
	n = data[1] % MAX_ST;
	data += 2;
	size -= 2;
	if (size < 2 * n)
		return;
	for (k = 0; k < n; k++) {
		sizes[k] = (size_t)data[2 * k] | (size_t)data[2 * k + 1] << 8;
		snprintf(names[k], sizeof(names[k]), "f/data/%zu", k);
		total += sizes[k];
	}
	data += 2 * n;
	size -= 2 * n;
	fill = malloc(total + 1);
	if (fill == NULL)
		return;
	for (i = 0; i < total; i++)
		fill[i] = (uint8_t)(i * 131 + 7);
	for (k = 0, i = 0; k < n; i += sizes[k], k++)
		body[k] = fill + i;
	strcpy(names[n], "f/data.pkl");
	body[n] = data;
	sizes[n] = size;
	strcpy(names[n + 1], "f/version");
	body[n + 1] = (const uint8_t *)"3\n";
	sizes[n + 1] = 2;

	total = 22;
	for (k = 0; k < n + 2; k++)
		total += 30 + 46 + 2 * strlen(names[k]) + sizes[k];
	z.p = malloc(total);
	if (z.p == NULL)
		goto done;
	/* data.pkl first: the reader takes the folder of the first entry */
	zip_add(&z, names[n], body[n], sizes[n], &off[n], &crc[n]);
	for (k = 0; k < n; k++)
		zip_add(&z, names[k], body[k], sizes[k], &off[k], &crc[k]);
	zip_add(&z, names[n + 1], body[n + 1], sizes[n + 1], &off[n + 1], &crc[n + 1]);
	cd = z.len;
	zip_central(&z, names[n], sizes[n], off[n], crc[n]);
	for (k = 0; k < n; k++)
		zip_central(&z, names[k], sizes[k], off[k], crc[k]);
	zip_central(&z, names[n + 1], sizes[n + 1], off[n + 1], crc[n + 1]);
	cd_len = z.len - cd;
	put32(&z, 0x06054b50u);
	put16(&z, 0);
	put16(&z, 0);
	put16(&z, (unsigned)(n + 2));
	put16(&z, (unsigned)(n + 2));
	put32(&z, (uint32_t)cd_len);
	put32(&z, (uint32_t)cd);
	put16(&z, 0);
	run(z.p, z.len);
done:
	free(z.p);
	free(fill);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size == 0)
		return 0;
	if (data[0] & 1)
		run_wrapped(data, size);
	else
		run(data + 1, size - 1);
	return 0;
}
