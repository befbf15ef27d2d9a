/*
 * pth.c - PyTorch state_dict reader: a bounds-checked walker for the stored
 * zip that torch.save writes, and a pickle interpreter that knows only the
 * opcodes and globals a state_dict uses, so no code from the file ever runs.
 */
#ifndef _POSIX_C_SOURCE
#define _POSIX_C_SOURCE 200809L /* O_CLOEXEC, mmap */
#endif
#include "pth.h"

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>

/* Limits against hostile input; real checkpoints stay far below them. */
#define PTH_PKL_MAX ((size_t)64 << 20)    /* bytes of data.pkl */
#define PTH_ARENA_MAX ((size_t)256 << 20) /* bytes of unpickled objects */
#define PTH_ARENA_BLOCK ((size_t)64 << 10)
#define PTH_STACK_MAX 65536               /* pickle stack entries */
#define PTH_MARK_MAX 64                   /* MARKs open at once */
#define PTH_MEMO_MAX ((size_t)1 << 22)    /* memo slots */
#define PTH_STR_MAX 65535                 /* bytes of one pickle string */
#define PTH_GLOBAL_MAX 256                /* bytes of a GLOBAL module or name */
#define PTH_SHOW_MAX 64                   /* bytes of file text quoted in errors */

/* zip record signatures and fixed sizes */
#define ZIP_LOCAL_SIG 0x04034b50u
#define ZIP_CENTRAL_SIG 0x02014b50u
#define ZIP_EOCD_SIG 0x06054b50u
#define ZIP_LOCAL_LEN 30
#define ZIP_CENTRAL_LEN 46
#define ZIP_EOCD_LEN 22

/* pickle opcodes a protocol-2 state_dict uses */
enum {
	OP_MARK = '(',
	OP_STOP = '.',
	OP_BININT = 'J',
	OP_BININT1 = 'K',
	OP_BININT2 = 'M',
	OP_BINPERSID = 'Q',
	OP_REDUCE = 'R',
	OP_BINUNICODE = 'X',
	OP_BUILD = 'b',
	OP_GLOBAL = 'c',
	OP_BINGET = 'h',
	OP_LONG_BINGET = 'j',
	OP_BINPUT = 'q',
	OP_LONG_BINPUT = 'r',
	OP_SETITEM = 's',
	OP_TUPLE = 't',
	OP_SETITEMS = 'u',
	OP_EMPTY_TUPLE = ')',
	OP_EMPTY_DICT = '}',
	OP_PROTO = 0x80,
	OP_TUPLE1 = 0x85,
	OP_TUPLE2 = 0x86,
	OP_TUPLE3 = 0x87,
	OP_NEWTRUE = 0x88,
	OP_NEWFALSE = 0x89,
	OP_LONG1 = 0x8a,
};

/* One member of the zip archive; name and data point into the buffer. */
struct zip_entry {
	const char *name; /* not NUL-terminated */
	size_t name_len;
	size_t hdr_off;   /* local header */
	const uint8_t *data;
	size_t size;
	uint32_t crc;
};

/* ---- unpickled objects, all living in the parse arena ---- */

enum pv_kind { PV_BOOL, PV_INT, PV_STR, PV_TUPLE, PV_DICT, PV_GLOBAL, PV_STORAGE, PV_TENSOR };
enum pv_global { PG_ORDERED_DICT, PG_REBUILD_TENSOR_V2, PG_STORAGE };

struct pv;

struct pv_pair {
	struct pv *key, *val;
	struct pv_pair *next;
};

/* _rebuild_tensor_v2 arguments, checked once the tensor's key is known */
struct pv_tensor {
	const struct pv *storage;
	int64_t offset;
	int ndim;
	int64_t shape[PTH_MAX_DIMS];
	int64_t stride[PTH_MAX_DIMS];
};

struct pv {
	enum pv_kind kind;
	union {
		int64_t i; /* PV_BOOL, PV_INT */
		struct {
			const char *p;
			size_t len;
		} str;
		struct {
			size_t n;
			struct pv **items;
		} tup;
		struct {
			struct pv_pair *head, *tail;
			size_t n;
		} dict;
		struct {
			enum pv_global g;
			enum pth_dtype dtype; /* PG_STORAGE */
		} glob;
		struct {
			enum pth_dtype dtype;
			int64_t numel;
			const uint8_t *data;
			const char *key;
			size_t key_len;
		} sto;
		struct pv_tensor *t;
	} u;
};

struct arena_block {
	struct arena_block *next;
	size_t used, cap;
	max_align_t mem[];
};

/* ---- the result ---- */

struct pth_file {
	void *map;                  /* mmap of pth_open, NULL for pth_open_mem */
	size_t map_len;
	size_t count;
	struct pth_tensor *tensors; /* [count] in file order */
	size_t *by_name;            /* [count] indices into tensors, by name */
	char *names;                /* every name, NUL-terminated, one block */
};

/* Everything one parse needs; released by ctx_release whatever the outcome. */
struct pth_ctx {
	const char *fn, *what; /* for messages: "pth_open", the path */
	struct seer_err *err;
	const uint8_t *buf;
	size_t len;

	struct zip_entry *ents; /* sorted by name once read */
	size_t n_ents;
	const char *prefix;     /* archive folder, before the first '/' */
	size_t prefix_len;
	char *name_buf;         /* scratch for "<prefix>/data/<key>", grown on demand */
	size_t name_buf_len;

	const uint8_t *pkl;
	size_t pkl_len;
	size_t op_off;          /* offset of the opcode being run */
	struct arena_block *arena;
	size_t arena_total;
	struct pv **stack;
	size_t sp, stack_cap;
	size_t marks[PTH_MARK_MAX];
	size_t n_marks;
	struct pv **memo;
	size_t memo_cap;
	struct pv *result;
};

static const struct {
	const char *name;
	enum pth_dtype dtype;
} storage_types[] = {
	{ "FloatStorage", PTH_F32 },   { "DoubleStorage", PTH_F64 },
	{ "HalfStorage", PTH_F16 },    { "BFloat16Storage", PTH_BF16 },
	{ "LongStorage", PTH_I64 },    { "IntStorage", PTH_I32 },
	{ "ShortStorage", PTH_I16 },   { "CharStorage", PTH_I8 },
	{ "ByteStorage", PTH_U8 },     { "BoolStorage", PTH_BOOL },
};

/* ======================================================================
 * helpers
 * ====================================================================== */

/* Little-endian 16- and 32-bit fields of zip records and pickle operands. */
static uint16_t rd16(const uint8_t *p)
{
	return (uint16_t)(p[0] | p[1] << 8);
}

static uint32_t rd32(const uint8_t *p)
{
	return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 |
	       (uint32_t)p[3] << 24;
}

/* Record a failure as "<fn>: <what>: <why>" and return code. */
static int ctx_fail(struct pth_ctx *c, int code, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

static int ctx_fail(struct pth_ctx *c, int code, const char *fmt, ...)
{
	char why[SEER_ERR_MSG_MAX];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(why, sizeof(why), fmt, ap);
	va_end(ap);
	seer_err_set(c->err, code, "%s: %s: %s", c->fn, c->what, why);
	return code;
}

/*
 * Copy file text s[0..n) into dst (PTH_SHOW_MAX + 4 bytes) for an error
 * message: bytes outside printable ASCII become '?', long text ends in "...".
 */
static const char *show(char *dst, const char *s, size_t n)
{
	size_t i, m = n < PTH_SHOW_MAX ? n : PTH_SHOW_MAX;

	for (i = 0; i < m; i++) {
		unsigned char ch = (unsigned char)s[i];
		dst[i] = ch >= 0x20 && ch < 0x7f ? (char)ch : '?';
	}
	if (m < n) {
		memcpy(dst + m, "...", 3);
		m += 3;
	}
	dst[m] = '\0';
	return dst;
}

/* Compare two byte strings the way strcmp orders NUL-free C strings. */
static int span_cmp(const char *a, size_t alen, const char *b, size_t blen)
{
	int r = memcmp(a, b, alen < blen ? alen : blen);

	if (r != 0)
		return r;
	return alen < blen ? -1 : alen > blen;
}

/* Whether p[0..n) spells the C string s. */
static bool span_eq(const uint8_t *p, size_t n, const char *s)
{
	return strlen(s) == n && memcmp(p, s, n) == 0;
}

/* ======================================================================
 * zip container
 * ====================================================================== */

/* qsort orders for zip entries: by name, and by local header offset. */
static int ent_cmp_name(const void *a, const void *b)
{
	const struct zip_entry *x = a, *y = b;

	return span_cmp(x->name, x->name_len, y->name, y->name_len);
}

static int ent_cmp_off(const void *a, const void *b)
{
	const struct zip_entry *x = a, *y = b;

	return x->hdr_off < y->hdr_off ? -1 : x->hdr_off > y->hdr_off;
}

/* The entry named name[0..n) in the name-sorted table, or NULL. */
static const struct zip_entry *zip_find(const struct pth_ctx *c, const char *name, size_t n)
{
	size_t lo = 0, hi = c->n_ents;

	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		int r = span_cmp(name, n, c->ents[mid].name, c->ents[mid].name_len);

		if (r == 0)
			return &c->ents[mid];
		if (r < 0)
			hi = mid;
		else
			lo = mid + 1;
	}
	return NULL;
}

/*
 * Look up the entry "<prefix>/<dir><key>" (dir is "" or "data/"): 0 with *out
 * set, or NULL when absent; fails only with SEER_ENOMEM for the name scratch.
 */
static int zip_find_member(struct pth_ctx *c, const char *dir, const char *key,
			   size_t key_len, const struct zip_entry **out)
{
	size_t dlen = strlen(dir), n = c->prefix_len + 1 + dlen + key_len;

	*out = NULL;
	if (n > 0xffff)
		return 0; /* longer than any zip name */
	if (n > c->name_buf_len) {
		char *p = realloc(c->name_buf, n);

		if (p == NULL)
			return ctx_fail(c, SEER_ENOMEM, "out of memory");
		c->name_buf = p;
		c->name_buf_len = n;
	}
	memcpy(c->name_buf, c->prefix, c->prefix_len);
	c->name_buf[c->prefix_len] = '/';
	memcpy(c->name_buf + c->prefix_len + 1, dir, dlen);
	memcpy(c->name_buf + c->prefix_len + 1 + dlen, key, key_len);
	*out = zip_find(c, c->name_buf, n);
	return 0;
}

/* Tell a legacy (pre-1.6) torch.save pickle or some other file from a zip. */
static int zip_not_zip(struct pth_ctx *c)
{
	/* legacy files open with PROTO n, LONG1 10 <magic 0x1950a86a20f9469cfc6c> */
	static const uint8_t magic[] = { 0x8a, 0x0a, 0x6c, 0xfc, 0x9c, 0x46, 0xf9,
					 0x20, 0x6a, 0xa8, 0x50, 0x19 };
	size_t n;

	if (c->len >= 4 && c->buf[0] == OP_PROTO) {
		n = c->len - 2 < sizeof(magic) ? c->len - 2 : sizeof(magic);
		if (memcmp(c->buf + 2, magic, n) == 0)
			return ctx_fail(c, SEER_EUNSUPPORTED,
					"legacy torch.save format; re-save with torch >= 1.6");
	}
	if (c->len < 4 && memcmp(c->buf, "PK\3\4", c->len) == 0)
		return ctx_fail(c, SEER_ETRUNC, "zip archive cut off in its first header");
	return ctx_fail(c, SEER_ECORRUPT, "not a zip archive (torch.save >= 1.6 writes zip)");
}

/*
 * Find the end-of-central-directory record and return the central directory
 * extent and entry count from it. The zip64 end records torch always writes
 * are ignored as long as the classic record holds real values.
 */
static int zip_read_eocd(struct pth_ctx *c, size_t *cd_off, size_t *cd_len, size_t *count)
{
	const uint8_t *e = NULL;
	size_t p, lo;

	/* torch's writer always starts with the first entry's local header */
	if (c->len < 4 || rd32(c->buf) != ZIP_LOCAL_SIG)
		return zip_not_zip(c);
	if (c->len >= ZIP_EOCD_LEN) {
		lo = c->len - ZIP_EOCD_LEN > 0xffff ? c->len - ZIP_EOCD_LEN - 0xffff : 0;
		for (p = c->len - ZIP_EOCD_LEN + 1; p-- > lo;) {
			if (rd32(c->buf + p) == ZIP_EOCD_SIG &&
			    rd16(c->buf + p + 20) <= c->len - ZIP_EOCD_LEN - p) {
				e = c->buf + p;
				break;
			}
		}
	}
	if (e == NULL)
		return ctx_fail(c, SEER_ETRUNC,
				"zip end-of-central-directory record missing (file truncated?)");
	if (rd16(e + 8) == 0xffff || rd16(e + 10) == 0xffff ||
	    rd32(e + 12) == 0xffffffffu || rd32(e + 16) == 0xffffffffu)
		return ctx_fail(c, SEER_EUNSUPPORTED,
				"zip64 archive (over 4 GiB or 65535 entries) not supported");
	if (rd16(e + 4) != 0 || rd16(e + 6) != 0 || rd16(e + 8) != rd16(e + 10))
		return ctx_fail(c, SEER_EUNSUPPORTED, "multi-disk zip archive not supported");
	*count = rd16(e + 10);
	*cd_len = rd32(e + 12);
	*cd_off = rd32(e + 16);
	if (*cd_off > (size_t)(e - c->buf) || *cd_len > (size_t)(e - c->buf) - *cd_off)
		return ctx_fail(c, SEER_ECORRUPT,
				"zip central directory (offset %zu, %zu bytes) runs past its end record",
				*cd_off, *cd_len);
	if (*count == 0)
		return ctx_fail(c, SEER_ECORRUPT, "zip archive has no entries");
	if (*count > *cd_len / ZIP_CENTRAL_LEN)
		return ctx_fail(c, SEER_ECORRUPT,
				"zip central directory of %zu bytes cannot hold %zu entries",
				*cd_len, *count);
	return 0;
}

/*
 * Read central directory entry q (cd_end bounds it) into e after checking its
 * local header and data against the buffer; *rec_len gets the record length.
 */
static int zip_read_entry(struct pth_ctx *c, const uint8_t *q, const uint8_t *cd_end,
			  size_t cd_off, size_t idx, struct zip_entry *e, size_t *rec_len)
{
	char nm[PTH_SHOW_MAX + 4];
	const uint8_t *l;
	size_t nlen, rec, loff, data_off;
	uint16_t flags, method, lflags;

	if ((size_t)(cd_end - q) < ZIP_CENTRAL_LEN || rd32(q) != ZIP_CENTRAL_SIG)
		return ctx_fail(c, SEER_ECORRUPT, "zip central directory entry %zu is damaged", idx);
	flags = rd16(q + 8);
	method = rd16(q + 10);
	nlen = rd16(q + 28);
	rec = ZIP_CENTRAL_LEN + nlen + rd16(q + 30) + rd16(q + 32);
	if (rec > (size_t)(cd_end - q))
		return ctx_fail(c, SEER_ECORRUPT,
				"zip central directory entry %zu runs past the directory", idx);
	if (nlen == 0)
		return ctx_fail(c, SEER_ECORRUPT, "zip entry %zu has an empty name", idx);
	e->name = (const char *)q + ZIP_CENTRAL_LEN;
	e->name_len = nlen;
	show(nm, e->name, nlen);
	e->crc = rd32(q + 16);
	e->size = rd32(q + 24);
	loff = rd32(q + 42);
	if (rd32(q + 20) == 0xffffffffu || e->size == 0xffffffffu || loff == 0xffffffffu)
		return ctx_fail(c, SEER_EUNSUPPORTED, "zip entry '%s' is zip64, not supported", nm);
	if (flags & 1)
		return ctx_fail(c, SEER_EUNSUPPORTED, "zip entry '%s' is encrypted", nm);
	if (method != 0)
		return ctx_fail(c, SEER_EUNSUPPORTED,
				"zip entry '%s' is compressed (method %u); only stored entries are supported",
				nm, method);
	if (rd32(q + 20) != e->size)
		return ctx_fail(c, SEER_ECORRUPT,
				"zip entry '%s' is stored but its sizes differ", nm);

	if (loff > c->len || c->len - loff < ZIP_LOCAL_LEN)
		return ctx_fail(c, SEER_ETRUNC,
				"zip entry '%s' local header past end of file", nm);
	l = c->buf + loff;
	if (rd32(l) != ZIP_LOCAL_SIG)
		return ctx_fail(c, SEER_ECORRUPT, "zip entry '%s' has no local header at offset %zu",
				nm, loff);
	lflags = rd16(l + 6);
	if (rd16(l + 8) != method || rd16(l + 26) != nlen)
		return ctx_fail(c, SEER_ECORRUPT,
				"zip entry '%s' local header disagrees with central directory", nm);
	data_off = loff + ZIP_LOCAL_LEN + nlen + rd16(l + 28);
	if (data_off > c->len || e->size > c->len - data_off)
		return ctx_fail(c, SEER_ETRUNC, "zip entry '%s' extends past end of file", nm);
	if (memcmp(l + ZIP_LOCAL_LEN, e->name, nlen) != 0)
		return ctx_fail(c, SEER_ECORRUPT,
				"zip entry '%s' local header has another name", nm);
	/* without a data descriptor (flag bit 3) the local header repeats crc and sizes */
	if (!(lflags & 8) && (rd32(l + 14) != e->crc || rd32(l + 18) != e->size ||
			      rd32(l + 22) != e->size))
		return ctx_fail(c, SEER_ECORRUPT,
				"zip entry '%s' local header disagrees with central directory", nm);
	if (data_off + e->size > cd_off)
		return ctx_fail(c, SEER_ECORRUPT,
				"zip entry '%s' overlaps the central directory", nm);
	e->hdr_off = loff;
	e->data = c->buf + data_off;
	*rec_len = rec;
	return 0;
}

/*
 * Read the archive: every entry checked against the buffer, no two entries
 * overlapping, every CRC right. Leaves c->ents sorted by name, c->prefix set
 * and c->pkl pointing at data.pkl.
 */
static int zip_read(struct pth_ctx *c)
{
	char nm[PTH_SHOW_MAX + 4], nm2[PTH_SHOW_MAX + 4];
	const struct zip_entry *pkl, *bo;
	const uint8_t *q, *cd_end;
	size_t cd_off = 0, cd_len = 0, count = 0, i, rec = 0;
	const char *slash;
	int rc;

	rc = zip_read_eocd(c, &cd_off, &cd_len, &count);
	if (rc < 0)
		return rc;
	c->ents = calloc(count, sizeof(*c->ents));
	if (c->ents == NULL)
		return ctx_fail(c, SEER_ENOMEM, "out of memory for %zu zip entries", count);
	q = c->buf + cd_off;
	cd_end = q + cd_len;
	for (i = 0; i < count; i++) {
		rc = zip_read_entry(c, q, cd_end, cd_off, i, &c->ents[i], &rec);
		if (rc < 0)
			return rc;
		q += rec;
	}
	c->n_ents = count;

	/* torch's reader takes the folder of the first entry as the archive's */
	slash = memchr(c->ents[0].name, '/', c->ents[0].name_len);
	if (slash == NULL)
		return ctx_fail(c, SEER_ECORRUPT, "zip entry '%s' is not inside an archive folder",
				show(nm, c->ents[0].name, c->ents[0].name_len));
	c->prefix = c->ents[0].name;
	c->prefix_len = (size_t)(slash - c->ents[0].name);

	/* overlapping entries would let a small file demand huge CRC work */
	qsort(c->ents, count, sizeof(*c->ents), ent_cmp_off);
	for (i = 0; i + 1 < count; i++) {
		const struct zip_entry *a = &c->ents[i], *b = &c->ents[i + 1];

		if ((size_t)(a->data - c->buf) + a->size > b->hdr_off)
			return ctx_fail(c, SEER_ECORRUPT, "zip entries '%s' and '%s' overlap",
					show(nm, a->name, a->name_len),
					show(nm2, b->name, b->name_len));
	}
	for (i = 0; i < count; i++) {
		const struct zip_entry *a = &c->ents[i];

		if (crc32(0L, a->data, (uInt)a->size) != a->crc)
			return ctx_fail(c, SEER_ECORRUPT, "zip entry '%s' fails its CRC-32 check",
					show(nm, a->name, a->name_len));
	}
	qsort(c->ents, count, sizeof(*c->ents), ent_cmp_name);
	for (i = 0; i + 1 < count; i++) {
		if (ent_cmp_name(&c->ents[i], &c->ents[i + 1]) == 0)
			return ctx_fail(c, SEER_ECORRUPT, "zip entry '%s' appears twice",
					show(nm, c->ents[i].name, c->ents[i].name_len));
	}

	rc = zip_find_member(c, "", "byteorder", 9, &bo);
	if (rc < 0)
		return rc;
	if (bo != NULL && !span_eq(bo->data, bo->size, "little")) {
		if (span_eq(bo->data, bo->size, "big"))
			return ctx_fail(c, SEER_EUNSUPPORTED, "big-endian checkpoint not supported");
		return ctx_fail(c, SEER_ECORRUPT, "byteorder record is neither 'little' nor 'big'");
	}
	rc = zip_find_member(c, "", "data.pkl", 8, &pkl);
	if (rc < 0)
		return rc;
	if (pkl == NULL)
		return ctx_fail(c, SEER_ECORRUPT, "archive has no '%s/data.pkl'",
				show(nm, c->prefix, c->prefix_len));
	if (pkl->size > PTH_PKL_MAX)
		return ctx_fail(c, SEER_ETOOLARGE, "data.pkl is %zu bytes, over the %zu limit",
				pkl->size, PTH_PKL_MAX);
	c->pkl = pkl->data;
	c->pkl_len = pkl->size;
	return 0;
}

/* ======================================================================
 * pickle machine
 * ====================================================================== */

/* Allocate size zeroed bytes in the parse arena, freed by ctx_release. */
static int ctx_alloc(struct pth_ctx *c, size_t size, void **out)
{
	const size_t align = _Alignof(max_align_t);
	struct arena_block *b = c->arena;

	size = (size + align - 1) / align * align;
	if (b == NULL || b->cap - b->used < size) {
		/* blocks double from 4 KiB so small checkpoints stay cheap */
		size_t cap = b == NULL ? 4096 : b->cap < PTH_ARENA_BLOCK ? 2 * b->cap : PTH_ARENA_BLOCK;

		if (cap < size)
			cap = size;

		if (cap > PTH_ARENA_MAX - c->arena_total)
			return ctx_fail(c, SEER_ETOOLARGE,
					"data.pkl needs over %zu MiB of objects", PTH_ARENA_MAX >> 20);
		b = malloc(sizeof(*b) + cap);
		if (b == NULL)
			return ctx_fail(c, SEER_ENOMEM, "out of memory for pickle objects");
		b->used = 0;
		b->cap = cap;
		b->next = c->arena;
		c->arena = b;
		c->arena_total += cap;
	}
	*out = (unsigned char *)b->mem + b->used;
	memset(*out, 0, size);
	b->used += size;
	return 0;
}

/* A zeroed arena object of kind; fails with ENOMEM or ETOOLARGE. */
static int pv_new(struct pth_ctx *c, enum pv_kind kind, struct pv **out)
{
	void *p = NULL;
	int rc = ctx_alloc(c, sizeof(struct pv), &p);

	if (rc < 0)
		return rc;
	*out = p;
	(*out)->kind = kind;
	return 0;
}

/* Report a malformed pickle at the current opcode (SEER_ECORRUPT). */
static int pkl_corrupt(struct pth_ctx *c, const char *why)
{
	return ctx_fail(c, SEER_ECORRUPT, "data.pkl offset %zu: %s", c->op_off, why);
}

/* Push v; the stack is malloc'd, grows by doubling, is capped at PTH_STACK_MAX. */
static int pkl_push(struct pth_ctx *c, struct pv *v)
{
	if (c->sp == c->stack_cap) {
		size_t cap = c->stack_cap ? c->stack_cap * 2 : 256;
		struct pv **s;

		if (c->stack_cap >= PTH_STACK_MAX)
			return ctx_fail(c, SEER_ETOOLARGE, "data.pkl offset %zu: pickle stack over %d",
					c->op_off, PTH_STACK_MAX);
		s = realloc(c->stack, cap * sizeof(*s));
		if (s == NULL)
			return ctx_fail(c, SEER_ENOMEM, "out of memory for the pickle stack");
		c->stack = s;
		c->stack_cap = cap;
	}
	c->stack[c->sp++] = v;
	return 0;
}

/* Lowest stack slot reachable by plain pops: just above the newest MARK. */
static size_t pkl_floor(const struct pth_ctx *c)
{
	return c->n_marks ? c->marks[c->n_marks - 1] : 0;
}

/* Pop the top object, or fail (ECORRUPT) if only a MARK's floor is left. */
static int pkl_pop(struct pth_ctx *c, struct pv **out)
{
	if (c->sp <= pkl_floor(c))
		return pkl_corrupt(c, "pickle stack underflow");
	*out = c->stack[--c->sp];
	return 0;
}

/* Peek at the top object without popping it; fails like pkl_pop. */
static int pkl_top(struct pth_ctx *c, struct pv **out)
{
	if (c->sp <= pkl_floor(c))
		return pkl_corrupt(c, "pickle stack underflow");
	*out = c->stack[c->sp - 1];
	return 0;
}

/* Close the newest MARK; *base gets the stack slot it stood at. */
static int pkl_pop_mark(struct pth_ctx *c, size_t *base)
{
	if (c->n_marks == 0)
		return pkl_corrupt(c, "no MARK on the pickle stack");
	*base = c->marks[--c->n_marks];
	return 0;
}

/* Bytes p..p+n of data.pkl for the opcode at *pos, advancing *pos. */
static int pkl_take(struct pth_ctx *c, size_t *pos, size_t n, const uint8_t **out)
{
	if (n > c->pkl_len - *pos)
		return pkl_corrupt(c, "data.pkl ends inside an opcode");
	*out = c->pkl + *pos;
	*pos += n;
	return 0;
}

/* BINPUT: memo[idx] = top of stack; the memo array grows up to PTH_MEMO_MAX. */
static int pkl_memo_put(struct pth_ctx *c, size_t idx)
{
	struct pv *v = NULL;
	int rc = pkl_top(c, &v);

	if (rc < 0)
		return rc;
	if (idx >= PTH_MEMO_MAX)
		return ctx_fail(c, SEER_ETOOLARGE, "data.pkl offset %zu: memo key %zu over %zu",
				c->op_off, idx, PTH_MEMO_MAX);
	if (idx >= c->memo_cap) {
		size_t cap = c->memo_cap ? c->memo_cap : 1024;
		struct pv **m;

		while (cap <= idx)
			cap *= 2;
		m = realloc(c->memo, cap * sizeof(*m));
		if (m == NULL)
			return ctx_fail(c, SEER_ENOMEM, "out of memory for the pickle memo");
		memset(m + c->memo_cap, 0, (cap - c->memo_cap) * sizeof(*m));
		c->memo = m;
		c->memo_cap = cap;
	}
	c->memo[idx] = v;
	return 0;
}

/* BINGET: push memo[idx], which must have been set (else ECORRUPT). */
static int pkl_memo_get(struct pth_ctx *c, size_t idx)
{
	if (idx >= c->memo_cap || c->memo[idx] == NULL)
		return ctx_fail(c, SEER_ECORRUPT, "data.pkl offset %zu: memo key %zu was never set",
				c->op_off, idx);
	return pkl_push(c, c->memo[idx]);
}

/* Push a tuple of the n items on top of the stack in place of them. */
static int pkl_tuple(struct pth_ctx *c, size_t base)
{
	size_t n = c->sp - base;
	struct pv *t;
	void *items = NULL;
	int rc;

	rc = pv_new(c, PV_TUPLE, &t);
	if (rc == 0 && n > 0)
		rc = ctx_alloc(c, n * sizeof(struct pv *), &items);
	if (rc < 0)
		return rc;
	if (n > 0)
		memcpy(items, c->stack + base, n * sizeof(struct pv *));
	t->u.tup.n = n;
	t->u.tup.items = items;
	c->sp = base;
	return pkl_push(c, t);
}

/* TUPLE1..3: n items above the floor become a tuple. */
static int pkl_tuple_n(struct pth_ctx *c, size_t n)
{
	if (c->sp - pkl_floor(c) < n)
		return pkl_corrupt(c, "pickle stack underflow");
	return pkl_tuple(c, c->sp - n);
}

/* Append key: val to dict d, keeping insertion order like OrderedDict. */
static int pkl_dict_add(struct pth_ctx *c, struct pv *d, struct pv *key, struct pv *val)
{
	struct pv_pair *p;
	int rc;

	if (d->kind != PV_DICT)
		return pkl_corrupt(c, "SETITEM on an object that is not a dict");
	rc = ctx_alloc(c, sizeof(*p), (void **)&p);
	if (rc < 0)
		return rc;
	p->key = key;
	p->val = val;
	if (d->u.dict.tail)
		d->u.dict.tail->next = p;
	else
		d->u.dict.head = p;
	d->u.dict.tail = p;
	d->u.dict.n++;
	return 0;
}

/* GLOBAL: read "module\nname\n" and push it if it is on the whitelist. */
static int pkl_global(struct pth_ctx *c, size_t *pos)
{
	char ms[PTH_SHOW_MAX + 4], ns[PTH_SHOW_MAX + 4];
	const uint8_t *part[2];
	size_t plen[2], k;
	struct pv *g;
	int rc;

	for (k = 0; k < 2; k++) {
		const uint8_t *start = c->pkl + *pos;
		size_t avail = c->pkl_len - *pos;
		const uint8_t *nl = memchr(start, '\n', avail < PTH_GLOBAL_MAX ? avail : PTH_GLOBAL_MAX);

		if (nl == NULL)
			return pkl_corrupt(c, "GLOBAL without a newline-terminated name");
		part[k] = start;
		plen[k] = (size_t)(nl - start);
		*pos += plen[k] + 1;
	}
	rc = pv_new(c, PV_GLOBAL, &g);
	if (rc < 0)
		return rc;
	if (span_eq(part[0], plen[0], "collections") && span_eq(part[1], plen[1], "OrderedDict")) {
		g->u.glob.g = PG_ORDERED_DICT;
		return pkl_push(c, g);
	}
	if (span_eq(part[0], plen[0], "torch._utils") &&
	    span_eq(part[1], plen[1], "_rebuild_tensor_v2")) {
		g->u.glob.g = PG_REBUILD_TENSOR_V2;
		return pkl_push(c, g);
	}
	if (span_eq(part[0], plen[0], "torch")) {
		for (k = 0; k < sizeof(storage_types) / sizeof(storage_types[0]); k++) {
			if (span_eq(part[1], plen[1], storage_types[k].name)) {
				g->u.glob.g = PG_STORAGE;
				g->u.glob.dtype = storage_types[k].dtype;
				return pkl_push(c, g);
			}
		}
	}
	return ctx_fail(c, SEER_EUNSUPPORTED, "data.pkl offset %zu: global '%s.%s' is not allowed",
			c->op_off, show(ms, (const char *)part[0], plen[0]),
			show(ns, (const char *)part[1], plen[1]));
}

/*
 * BINPERSID: turn ('storage', <torch.XStorage>, key, location, numel) into a
 * storage backed by zip entry "<prefix>/data/<key>".
 */
static int pkl_persid(struct pth_ctx *c)
{
	char ks[PTH_SHOW_MAX + 4], ps[PTH_SHOW_MAX + 4];
	const struct zip_entry *e;
	struct pv *pid = NULL, *s, **it;
	size_t esize;
	int64_t bytes;
	int rc;

	rc = pkl_pop(c, &pid);
	if (rc < 0)
		return rc;
	it = pid->kind == PV_TUPLE && pid->u.tup.n == 5 ? pid->u.tup.items : NULL;
	if (it == NULL || it[0]->kind != PV_STR ||
	    !span_eq((const uint8_t *)it[0]->u.str.p, it[0]->u.str.len, "storage") ||
	    it[1]->kind != PV_GLOBAL || it[1]->u.glob.g != PG_STORAGE ||
	    it[2]->kind != PV_STR || it[3]->kind != PV_STR || it[4]->kind != PV_INT)
		return ctx_fail(c, SEER_EUNSUPPORTED,
				"data.pkl offset %zu: persistent id is not ('storage', type, key, location, numel)",
				c->op_off);
	show(ks, it[2]->u.str.p, it[2]->u.str.len);
	esize = pth_dtype_size(it[1]->u.glob.dtype);
	if (it[4]->u.i < 0 || __builtin_mul_overflow(it[4]->u.i, (int64_t)esize, &bytes))
		return ctx_fail(c, SEER_ECORRUPT, "storage '%s' has a bad element count", ks);
	rc = zip_find_member(c, "data/", it[2]->u.str.p, it[2]->u.str.len, &e);
	if (rc < 0)
		return rc;
	if (e == NULL)
		return ctx_fail(c, SEER_ECORRUPT, "storage '%s' has no zip entry '%s/data/%s'", ks,
				show(ps, c->prefix, c->prefix_len), ks);
	if ((uint64_t)bytes != e->size)
		return ctx_fail(c, SEER_ECORRUPT,
				"storage '%s' holds %zu bytes, not %lld elements of %zu bytes",
				ks, e->size, (long long)it[4]->u.i, esize);
	rc = pv_new(c, PV_STORAGE, &s);
	if (rc < 0)
		return rc;
	s->u.sto.dtype = it[1]->u.glob.dtype;
	s->u.sto.numel = it[4]->u.i;
	s->u.sto.data = e->data;
	s->u.sto.key = it[2]->u.str.p;
	s->u.sto.key_len = it[2]->u.str.len;
	return pkl_push(c, s);
}

/* Copy an int tuple (sizes or strides) of at most PTH_MAX_DIMS into dst. */
static int pkl_dims(struct pth_ctx *c, const struct pv *t, int64_t *dst)
{
	size_t i;

	if (t->kind != PV_TUPLE)
		return pkl_corrupt(c, "tensor size or stride is not a tuple");
	if (t->u.tup.n > PTH_MAX_DIMS)
		return ctx_fail(c, SEER_EUNSUPPORTED, "data.pkl offset %zu: tensor has %zu dims, over %d",
				c->op_off, t->u.tup.n, PTH_MAX_DIMS);
	for (i = 0; i < t->u.tup.n; i++) {
		if (t->u.tup.items[i]->kind != PV_INT)
			return pkl_corrupt(c, "tensor size or stride is not an int");
		dst[i] = t->u.tup.items[i]->u.i;
	}
	return 0;
}

/*
 * REDUCE of torch._utils._rebuild_tensor_v2 with (storage, storage_offset,
 * size, stride, requires_grad, backward_hooks[, metadata]).
 */
static int pkl_rebuild_tensor(struct pth_ctx *c, const struct pv *args, struct pv **out)
{
	struct pv *const *a = args->u.tup.items;
	struct pv_tensor *t;
	int rc;

	if (args->u.tup.n != 6 && args->u.tup.n != 7)
		return ctx_fail(c, SEER_EUNSUPPORTED,
				"data.pkl offset %zu: _rebuild_tensor_v2 with %zu arguments, not 6",
				c->op_off, args->u.tup.n);
	if (a[0]->kind != PV_STORAGE || a[1]->kind != PV_INT || a[4]->kind != PV_BOOL ||
	    a[5]->kind != PV_DICT || (args->u.tup.n == 7 && a[6]->kind != PV_DICT))
		return pkl_corrupt(c, "_rebuild_tensor_v2 arguments of the wrong types");
	if (a[2]->kind != PV_TUPLE || a[3]->kind != PV_TUPLE || a[2]->u.tup.n != a[3]->u.tup.n)
		return pkl_corrupt(c, "tensor size and stride differ in length");
	rc = pv_new(c, PV_TENSOR, out);
	if (rc == 0)
		rc = ctx_alloc(c, sizeof(*t), (void **)&t);
	if (rc == 0)
		rc = pkl_dims(c, a[2], t->shape);
	if (rc == 0)
		rc = pkl_dims(c, a[3], t->stride);
	if (rc < 0)
		return rc;
	t->storage = a[0];
	t->offset = a[1]->u.i;
	t->ndim = (int)a[2]->u.tup.n;
	(*out)->u.t = t;
	return 0;
}

/* REDUCE: call a whitelisted global on an argument tuple. */
static int pkl_reduce(struct pth_ctx *c)
{
	struct pv *args = NULL, *fn = NULL, *r = NULL;
	int rc;

	rc = pkl_pop(c, &args);
	if (rc == 0)
		rc = pkl_pop(c, &fn);
	if (rc < 0)
		return rc;
	if (args->kind != PV_TUPLE)
		return pkl_corrupt(c, "REDUCE arguments are not a tuple");
	if (fn->kind != PV_GLOBAL || fn->u.glob.g == PG_STORAGE)
		return ctx_fail(c, SEER_EUNSUPPORTED,
				"data.pkl offset %zu: REDUCE of something other than OrderedDict or _rebuild_tensor_v2",
				c->op_off);
	if (fn->u.glob.g == PG_ORDERED_DICT) {
		if (args->u.tup.n != 0)
			return ctx_fail(c, SEER_EUNSUPPORTED,
					"data.pkl offset %zu: OrderedDict called with arguments", c->op_off);
		rc = pv_new(c, PV_DICT, &r);
	} else {
		rc = pkl_rebuild_tensor(c, args, &r);
	}
	if (rc < 0)
		return rc;
	return pkl_push(c, r);
}

/* Run data.pkl to its STOP, leaving the unpickled object in c->result. */
static int pkl_run(struct pth_ctx *c)
{
	const uint8_t *p = NULL;
	struct pv *v = NULL, *k = NULL, *d = NULL;
	size_t pos = 0, base = 0, i;
	uint8_t op;
	int rc = 0;

	while (pos < c->pkl_len) {
		c->op_off = pos;
		op = c->pkl[pos++];
		switch (op) {
		case OP_PROTO:
			rc = pkl_take(c, &pos, 1, &p);
			if (rc == 0 && p[0] != 2)
				rc = ctx_fail(c, SEER_EUNSUPPORTED,
					      "pickle protocol %u; only protocol 2 (the torch.save default) is supported",
					      p[0]);
			break;
		case OP_GLOBAL:
			rc = pkl_global(c, &pos);
			break;
		case OP_BINPUT:
			rc = pkl_take(c, &pos, 1, &p);
			if (rc == 0)
				rc = pkl_memo_put(c, p[0]);
			break;
		case OP_LONG_BINPUT:
			rc = pkl_take(c, &pos, 4, &p);
			if (rc == 0)
				rc = pkl_memo_put(c, rd32(p));
			break;
		case OP_BINGET:
			rc = pkl_take(c, &pos, 1, &p);
			if (rc == 0)
				rc = pkl_memo_get(c, p[0]);
			break;
		case OP_LONG_BINGET:
			rc = pkl_take(c, &pos, 4, &p);
			if (rc == 0)
				rc = pkl_memo_get(c, rd32(p));
			break;
		case OP_EMPTY_DICT:
			rc = pv_new(c, PV_DICT, &v);
			if (rc == 0)
				rc = pkl_push(c, v);
			break;
		case OP_EMPTY_TUPLE:
			rc = pkl_tuple(c, c->sp);
			break;
		case OP_MARK:
			if (c->n_marks == PTH_MARK_MAX)
				rc = ctx_fail(c, SEER_ETOOLARGE, "data.pkl offset %zu: over %d nested MARKs",
					      c->op_off, PTH_MARK_MAX);
			else
				c->marks[c->n_marks++] = c->sp;
			break;
		case OP_TUPLE:
			rc = pkl_pop_mark(c, &base);
			if (rc == 0)
				rc = pkl_tuple(c, base);
			break;
		case OP_TUPLE1:
		case OP_TUPLE2:
		case OP_TUPLE3:
			rc = pkl_tuple_n(c, (size_t)(op - OP_TUPLE1 + 1));
			break;
		case OP_BINUNICODE:
			rc = pkl_take(c, &pos, 4, &p);
			if (rc < 0)
				break;
			i = rd32(p);
			if (i > PTH_STR_MAX) {
				rc = ctx_fail(c, SEER_ETOOLARGE, "data.pkl offset %zu: string of %zu bytes",
					      c->op_off, i);
				break;
			}
			rc = pkl_take(c, &pos, i, &p);
			if (rc == 0)
				rc = pv_new(c, PV_STR, &v);
			if (rc < 0)
				break;
			v->u.str.p = (const char *)p;
			v->u.str.len = i;
			rc = pkl_push(c, v);
			break;
		case OP_BININT:
		case OP_BININT1:
		case OP_BININT2:
			i = op == OP_BININT ? 4 : op == OP_BININT2 ? 2 : 1;
			rc = pkl_take(c, &pos, i, &p);
			if (rc == 0)
				rc = pv_new(c, PV_INT, &v);
			if (rc < 0)
				break;
			v->u.i = op == OP_BININT ? (int64_t)(int32_t)rd32(p) :
				 op == OP_BININT2 ? rd16(p) : p[0];
			rc = pkl_push(c, v);
			break;
		case OP_LONG1:
			rc = pkl_take(c, &pos, 1, &p);
			if (rc < 0)
				break;
			i = p[0];
			if (i > 8) {
				rc = ctx_fail(c, SEER_EUNSUPPORTED,
					      "data.pkl offset %zu: integer of %zu bytes", c->op_off, i);
				break;
			}
			rc = pkl_take(c, &pos, i, &p);
			if (rc == 0)
				rc = pv_new(c, PV_INT, &v);
			if (rc < 0)
				break;
			{
				uint64_t u = 0;
				size_t j;

				for (j = 0; j < i; j++)
					u |= (uint64_t)p[j] << (8 * j);
				if (i > 0 && i < 8 && (p[i - 1] & 0x80))
					u |= ~(uint64_t)0 << (8 * i); /* sign-extend */
				memcpy(&v->u.i, &u, sizeof(u));
			}
			rc = pkl_push(c, v);
			break;
		case OP_NEWTRUE:
		case OP_NEWFALSE:
			rc = pv_new(c, PV_BOOL, &v);
			if (rc < 0)
				break;
			v->u.i = op == OP_NEWTRUE;
			rc = pkl_push(c, v);
			break;
		case OP_BINPERSID:
			rc = pkl_persid(c);
			break;
		case OP_REDUCE:
			rc = pkl_reduce(c);
			break;
		case OP_BUILD:
			/* only OrderedDict state such as a state_dict's _metadata; ignored */
			rc = pkl_pop(c, &v);
			if (rc == 0)
				rc = pkl_top(c, &d);
			if (rc == 0 && (d->kind != PV_DICT || v->kind != PV_DICT))
				rc = ctx_fail(c, SEER_EUNSUPPORTED,
					      "data.pkl offset %zu: BUILD other than dict state on a dict",
					      c->op_off);
			break;
		case OP_SETITEM:
			rc = pkl_pop(c, &v);
			if (rc == 0)
				rc = pkl_pop(c, &k);
			if (rc == 0)
				rc = pkl_top(c, &d);
			if (rc == 0)
				rc = pkl_dict_add(c, d, k, v);
			break;
		case OP_SETITEMS:
			rc = pkl_pop_mark(c, &base);
			if (rc < 0)
				break;
			if ((c->sp - base) % 2 != 0 || base <= pkl_floor(c)) {
				rc = pkl_corrupt(c, "SETITEMS without a dict and key/value pairs");
				break;
			}
			d = c->stack[base - 1];
			for (i = base; i < c->sp && rc == 0; i += 2)
				rc = pkl_dict_add(c, d, c->stack[i], c->stack[i + 1]);
			c->sp = base;
			break;
		case OP_STOP:
			return pkl_pop(c, &c->result);
		default:
			return ctx_fail(c, SEER_EUNSUPPORTED,
					"data.pkl offset %zu: pickle opcode 0x%02x ('%c') not supported",
					c->op_off, op, op >= 0x20 && op < 0x7f ? op : '?');
		}
		if (rc < 0)
			return rc;
	}
	return pkl_corrupt(c, "data.pkl ends without STOP");
}

/* ======================================================================
 * state_dict to tensor table
 * ====================================================================== */

/* A state_dict key and its position in file order, for sorting. */
struct key_ref {
	const char *p;
	size_t len;
	size_t idx;
};

/* qsort order of state_dict keys; strcmp order as keys hold no NUL. */
static int key_ref_cmp(const void *a, const void *b)
{
	const struct key_ref *x = a, *y = b;

	return span_cmp(x->p, x->len, y->p, y->len);
}

/*
 * Check a rebuilt tensor named name against its storage (contiguous, inside
 * it) and fill dst; dst->name is set by the caller.
 */
static int tensor_check(struct pth_ctx *c, const char *name, const struct pv_tensor *t,
			struct pth_tensor *dst)
{
	char ks[PTH_SHOW_MAX + 4], ns[PTH_SHOW_MAX + 4];
	const struct pv *s = t->storage;
	int64_t numel = 1, expect = 1;
	int d;

	show(ns, name, strlen(name));
	for (d = 0; d < t->ndim; d++) {
		if (t->shape[d] < 0 || __builtin_mul_overflow(numel, t->shape[d], &numel))
			return ctx_fail(c, SEER_ECORRUPT, "tensor '%s' has a bad shape", ns);
	}
	/* torch calls a tensor contiguous whatever the strides of size-1 dims */
	for (d = t->ndim - 1; numel > 0 && d >= 0; d--) {
		if (t->shape[d] != 1 && t->stride[d] != expect)
			return ctx_fail(c, SEER_EUNSUPPORTED,
					"tensor '%s' is not contiguous (dim %d stride %lld, expected %lld)",
					ns, d, (long long)t->stride[d], (long long)expect);
		expect *= t->shape[d];
	}
	if (t->offset < 0 || t->offset > s->u.sto.numel || numel > s->u.sto.numel - t->offset)
		return ctx_fail(c, SEER_ECORRUPT,
				"tensor '%s' (offset %lld, %lld elements) extends past storage '%s' of %lld",
				ns, (long long)t->offset, (long long)numel,
				show(ks, s->u.sto.key, s->u.sto.key_len), (long long)s->u.sto.numel);
	dst->dtype = s->u.sto.dtype;
	dst->ndim = t->ndim;
	memcpy(dst->shape, t->shape, sizeof(dst->shape));
	dst->numel = numel;
	dst->data = s->u.sto.data + (size_t)t->offset * pth_dtype_size(s->u.sto.dtype);
	return 0;
}

/* Turn the unpickled dict into f's tensor table, name index and names. */
static int build_result(struct pth_ctx *c, struct pth_file *f)
{
	char ks[PTH_SHOW_MAX + 4];
	const struct pv *d = c->result;
	const struct pv_pair *p;
	struct key_ref *keys = NULL;
	size_t n, i, total = 0, at = 0;
	int rc = 0;

	if (d->kind != PV_DICT)
		return ctx_fail(c, SEER_EUNSUPPORTED, "top-level object is not a state_dict");
	n = d->u.dict.n;
	if (n > PTH_MAX_TENSORS)
		return ctx_fail(c, SEER_ETOOLARGE, "%zu tensors, over the %d limit", n,
				PTH_MAX_TENSORS);
	keys = calloc(n ? n : 1, sizeof(*keys));
	f->tensors = calloc(n ? n : 1, sizeof(*f->tensors));
	f->by_name = calloc(n ? n : 1, sizeof(*f->by_name));
	if (keys == NULL || f->tensors == NULL || f->by_name == NULL) {
		rc = ctx_fail(c, SEER_ENOMEM, "out of memory for %zu tensors", n);
		goto fail;
	}
	for (p = d->u.dict.head, i = 0; p != NULL; p = p->next, i++) {
		if (p->key->kind != PV_STR) {
			rc = ctx_fail(c, SEER_EUNSUPPORTED, "state_dict key %zu is not a string", i);
			goto fail;
		}
		show(ks, p->key->u.str.p, p->key->u.str.len);
		if (memchr(p->key->u.str.p, '\0', p->key->u.str.len) != NULL) {
			rc = ctx_fail(c, SEER_EUNSUPPORTED, "state_dict key '%s' holds a NUL byte", ks);
			goto fail;
		}
		if (p->val->kind != PV_TENSOR) {
			rc = ctx_fail(c, SEER_EUNSUPPORTED, "state_dict entry '%s' is not a tensor", ks);
			goto fail;
		}
		keys[i].p = p->key->u.str.p;
		keys[i].len = p->key->u.str.len;
		keys[i].idx = i;
	}
	/* distinct keys are distinct strings in data.pkl, so their total is bounded */
	qsort(keys, n, sizeof(*keys), key_ref_cmp);
	for (i = 0; i < n; i++) {
		if (i + 1 < n && key_ref_cmp(&keys[i], &keys[i + 1]) == 0) {
			rc = ctx_fail(c, SEER_ECORRUPT, "state_dict key '%s' appears twice",
				      show(ks, keys[i].p, keys[i].len));
			goto fail;
		}
		total += keys[i].len + 1;
		f->by_name[i] = keys[i].idx;
	}
	f->names = malloc(total ? total : 1);
	if (f->names == NULL) {
		rc = ctx_fail(c, SEER_ENOMEM, "out of memory for tensor names");
		goto fail;
	}
	for (p = d->u.dict.head, i = 0; p != NULL; p = p->next, i++) {
		char *name = f->names + at;

		memcpy(name, p->key->u.str.p, p->key->u.str.len);
		name[p->key->u.str.len] = '\0';
		at += p->key->u.str.len + 1;
		rc = tensor_check(c, name, p->val->u.t, &f->tensors[i]);
		if (rc < 0)
			goto fail;
		f->tensors[i].name = name;
	}
	f->count = n;
	free(keys);
	return 0;
fail:
	free(keys);
	return rc;
}

/* ======================================================================
 * public API
 * ====================================================================== */

/* Free everything a parse allocated except the pth_file it returns. */
static void ctx_release(struct pth_ctx *c)
{
	struct arena_block *b = c->arena, *next;

	for (; b != NULL; b = next) {
		next = b->next;
		free(b);
	}
	free(c->ents);
	free(c->name_buf);
	free(c->stack);
	free(c->memo);
}

/* Parse buf[0..len) into a new pth_file; fn and what name it in messages. */
static int pth_parse(const char *fn, const char *what, const uint8_t *buf, size_t len,
		     struct pth_file **out, struct seer_err *err)
{
	struct pth_ctx c = { .fn = fn, .what = what, .err = err, .buf = buf, .len = len };
	struct pth_file *f = NULL;
	int rc;

	if (len == 0)
		return ctx_fail(&c, SEER_EEMPTY, "file is empty");
	f = calloc(1, sizeof(*f));
	if (f == NULL) {
		rc = ctx_fail(&c, SEER_ENOMEM, "out of memory");
		goto fail;
	}
	rc = zip_read(&c);
	if (rc == 0)
		rc = pkl_run(&c);
	if (rc == 0)
		rc = build_result(&c, f);
	if (rc < 0)
		goto fail;
	ctx_release(&c);
	*out = f;
	return 0;
fail:
	ctx_release(&c);
	pth_close(f);
	return rc;
}

int pth_open_mem(const void *buf, size_t len, struct pth_file **out, struct seer_err *err)
{
	if (out == NULL || (buf == NULL && len > 0))
		return seer_err_set(err, SEER_EINVAL, "pth_open_mem: NULL argument");
	*out = NULL;
	return pth_parse("pth_open_mem", "<memory>", buf, len, out, err);
}

int pth_open(const char *path, struct pth_file **out, struct seer_err *err)
{
	struct stat st;
	void *map;
	int fd, rc;

	if (out == NULL || path == NULL)
		return seer_err_set(err, SEER_EINVAL, "pth_open: NULL argument");
	*out = NULL;
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return seer_err_set(err, errno == ENOENT ? SEER_ENOENT : SEER_EIO,
				    "pth_open: %s: %s", path, strerror(errno));
	if (fstat(fd, &st) != 0) {
		rc = seer_err_set(err, SEER_EIO, "pth_open: %s: %s", path, strerror(errno));
		goto fail;
	}
	if (!S_ISREG(st.st_mode)) {
		rc = seer_err_set(err, SEER_EIO, "pth_open: %s: not a regular file", path);
		goto fail;
	}
	if (st.st_size == 0) {
		rc = seer_err_set(err, SEER_EEMPTY, "pth_open: %s: file is empty", path);
		goto fail;
	}
	map = mmap(NULL, (size_t)st.st_size, PROT_READ, MAP_PRIVATE, fd, 0);
	if (map == MAP_FAILED) {
		rc = seer_err_set(err, SEER_EIO, "pth_open: %s: mmap: %s", path, strerror(errno));
		goto fail;
	}
	close(fd);
	rc = pth_parse("pth_open", path, map, (size_t)st.st_size, out, err);
	if (rc < 0) {
		munmap(map, (size_t)st.st_size);
		return rc;
	}
	(*out)->map = map;
	(*out)->map_len = (size_t)st.st_size;
	return 0;
fail:
	close(fd);
	return rc;
}

/* The public functions below are documented in pth.h. */

size_t pth_count(const struct pth_file *f)
{
	return f->count;
}

const struct pth_tensor *pth_tensor_at(const struct pth_file *f, size_t i)
{
	return i < f->count ? &f->tensors[i] : NULL;
}

const struct pth_tensor *pth_find(const struct pth_file *f, const char *name)
{
	size_t lo = 0, hi = f->count;

	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		const struct pth_tensor *t = &f->tensors[f->by_name[mid]];
		int r = strcmp(name, t->name);

		if (r == 0)
			return t;
		if (r < 0)
			hi = mid;
		else
			lo = mid + 1;
	}
	return NULL;
}

size_t pth_dtype_size(enum pth_dtype t)
{
	switch (t) {
	case PTH_F64: case PTH_I64: return 8;
	case PTH_F32: case PTH_I32: return 4;
	case PTH_F16: case PTH_BF16: case PTH_I16: return 2;
	case PTH_I8: case PTH_U8: case PTH_BOOL: return 1;
	}
	return 0;
}

const char *pth_dtype_name(enum pth_dtype t)
{
	switch (t) {
	case PTH_F32: return "f32";
	case PTH_F64: return "f64";
	case PTH_F16: return "f16";
	case PTH_BF16: return "bf16";
	case PTH_I64: return "i64";
	case PTH_I32: return "i32";
	case PTH_I16: return "i16";
	case PTH_I8: return "i8";
	case PTH_U8: return "u8";
	case PTH_BOOL: return "bool";
	}
	return "?";
}

void pth_close(struct pth_file *f)
{
	if (f == NULL)
		return;
	if (f->map != NULL)
		munmap(f->map, f->map_len);
	free(f->tensors);
	free(f->by_name);
	free(f->names);
	free(f);
}
