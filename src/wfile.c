/*
 * wfile.c - reading (into huge-page memory, bounds checks, CRC) and writing seer's native
 * weight file. Multi-byte fields are little-endian; see weights/FORMAT.md.
 */
#include "wfile.h"

#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>

#if __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "seer uses float32 weights in place and needs a little-endian host"
#endif

/* Header field offsets (bytes). */
enum {
	H_MAGIC = 0, H_VERSION = 8, H_HEADER_BYTES = 12, H_ENTRY_BYTES = 16,
	H_COUNT = 20, H_TABLE_OFF = 24, H_DATA_OFF = 32, H_DATA_BYTES = 40,
	H_FILE_BYTES = 48, H_META_CRC = 56, H_DATA_CRC = 60, H_ARCH = 64,
	H_MODEL = 80,
};

/* Table entry field offsets (bytes). */
enum { E_NAME = 0, E_DTYPE = 56, E_NDIM = 60, E_DIMS = 64, E_OFFSET = 80, E_NBYTES = 88 };

static uint32_t get_u32(const unsigned char *p)
{
	uint32_t v;

	memcpy(&v, p, sizeof(v));
	return v;
}

static uint64_t get_u64(const unsigned char *p)
{
	uint64_t v;

	memcpy(&v, p, sizeof(v));
	return v;
}

static void put_u32(unsigned char *p, uint32_t v)
{
	memcpy(p, &v, sizeof(v));
}

static void put_u64(unsigned char *p, uint64_t v)
{
	memcpy(p, &v, sizeof(v));
}

/* CRC-32 of a large buffer; zlib takes lengths as uInt, so feed it in pieces. */
static uint32_t crc_update(uint32_t crc, const unsigned char *p, size_t len)
{
	while (len > 0) {
		uInt n = len > (1u << 30) ? (1u << 30) : (uInt)len;

		crc = (uint32_t)crc32(crc, p, n);
		p += n;
		len -= n;
	}
	return crc;
}

/* CRC over the header (both CRC fields read as zero), the table and its padding. */
static uint32_t meta_crc(const unsigned char *hdr, const unsigned char *table, size_t table_bytes)
{
	unsigned char copy[WFILE_HEADER_BYTES];
	uint32_t crc;

	memcpy(copy, hdr, sizeof(copy));
	memset(copy + H_META_CRC, 0, 8);
	crc = crc_update(crc32(0, Z_NULL, 0), copy, sizeof(copy));
	return crc_update(crc, table, table_bytes);
}

/* Copy a NUL-terminated string field of at most cap bytes; -1 if unterminated. */
static int get_str(char *dst, const unsigned char *src, size_t cap)
{
	const void *nul = memchr(src, 0, cap);

	if (nul == NULL)
		return -1;
	memcpy(dst, src, (size_t)((const unsigned char *)nul - src) + 1);
	return 0;
}

/* Parse and check one table entry against the data region. */
static int parse_entry(const unsigned char *e, size_t i, const unsigned char *data,
		       uint64_t data_bytes, struct wfile_tensor *t, struct seer_err *err)
{
	uint64_t off = get_u64(e + E_OFFSET), nbytes = get_u64(e + E_NBYTES);
	uint64_t numel = 1;
	uint32_t dtype = get_u32(e + E_DTYPE), ndim = get_u32(e + E_NDIM);

	if (get_str(t->name, e + E_NAME, WFILE_NAME_MAX) < 0 || t->name[0] == '\0')
		return seer_err_set(err, SEER_ECORRUPT, "tensor %zu has no valid name", i);
	if (dtype != WFILE_DTYPE_F32)
		return seer_err_set(err, SEER_EUNSUPPORTED, "tensor '%s' has dtype %u, expected float32 (1)",
				    t->name, dtype);
	if (ndim < 1 || ndim > WFILE_MAX_DIMS)
		return seer_err_set(err, SEER_ECORRUPT, "tensor '%s' has %u dimensions", t->name, ndim);
	t->ndim = (int)ndim;
	for (uint32_t d = 0; d < WFILE_MAX_DIMS; d++) {
		t->dims[d] = get_u32(e + E_DIMS + 4 * d);
		if (d >= ndim)
			continue;
		if (t->dims[d] == 0 || t->dims[d] > (1u << 24))
			return seer_err_set(err, SEER_ECORRUPT, "tensor '%s' has dimension %u of size %u",
					    t->name, d, t->dims[d]);
		numel *= t->dims[d]; /* at most 4 factors of 2^24: cannot overflow past 2^96 checks below */
		if (numel > data_bytes / 4)
			return seer_err_set(err, SEER_ECORRUPT, "tensor '%s' is larger than the data region",
					    t->name);
	}
	if (nbytes != numel * 4)
		return seer_err_set(err, SEER_ECORRUPT, "tensor '%s' size %llu does not match its shape",
				    t->name, (unsigned long long)nbytes);
	if (off % WFILE_ALIGN != 0 || off > data_bytes || nbytes > data_bytes - off)
		return seer_err_set(err, SEER_ECORRUPT, "tensor '%s' lies outside the data region", t->name);
	t->numel = (size_t)numel;
	t->data = (const float *)(const void *)(data + off);
	return SEER_OK;
}

/* Check the header and table of buf and build f->tensors. */
static int parse(struct wfile *f, const unsigned char *buf, size_t len, struct seer_err *err)
{
	uint64_t table_off, data_off, data_bytes, file_bytes, table_bytes;
	uint32_t version, count;

	if (len == 0)
		return seer_err_set(err, SEER_EEMPTY, "file is empty");
	if (len >= 4 && memcmp(buf, "PK\003\004", 4) == 0)
		return seer_err_set(err, SEER_EUNSUPPORTED,
				    "this is a PyTorch checkpoint, not a seer weight file; run 'seer convert' on it first");
	if (memcmp(buf + H_MAGIC, WFILE_MAGIC, len < 8 ? len : 8) != 0)
		return seer_err_set(err, SEER_ECORRUPT, "not a seer weight file (bad magic)");
	if (len < WFILE_HEADER_BYTES)
		return seer_err_set(err, SEER_ETRUNC, "file is truncated: %zu bytes, shorter than the header", len);
	version = get_u32(buf + H_VERSION);
	if (version != WFILE_VERSION)
		return seer_err_set(err, SEER_EUNSUPPORTED, "weight file version %u, this seer reads version %d",
				    version, WFILE_VERSION);
	if (get_u32(buf + H_HEADER_BYTES) != WFILE_HEADER_BYTES || get_u32(buf + H_ENTRY_BYTES) != WFILE_ENTRY_BYTES)
		return seer_err_set(err, SEER_ECORRUPT, "unexpected header or table entry size");
	file_bytes = get_u64(buf + H_FILE_BYTES);
	if (file_bytes > len)
		return seer_err_set(err, SEER_ETRUNC, "file is truncated: %zu of %llu bytes", len,
				    (unsigned long long)file_bytes);
	if (file_bytes != len)
		return seer_err_set(err, SEER_ECORRUPT, "file is %zu bytes, header says %llu", len,
				    (unsigned long long)file_bytes);
	count = get_u32(buf + H_COUNT);
	table_off = get_u64(buf + H_TABLE_OFF);
	data_off = get_u64(buf + H_DATA_OFF);
	data_bytes = get_u64(buf + H_DATA_BYTES);
	if (count == 0 || count > WFILE_MAX_TENSORS)
		return seer_err_set(err, SEER_ECORRUPT, "tensor count %u out of range", count);
	table_bytes = (uint64_t)count * WFILE_ENTRY_BYTES;
	if (table_off != WFILE_HEADER_BYTES || table_off + table_bytes > data_off ||
	    data_off % WFILE_ALIGN != 0 || data_off > len || data_bytes != len - data_off)
		return seer_err_set(err, SEER_ECORRUPT, "header offsets are inconsistent with the file");
	if (meta_crc(buf, buf + table_off, data_off - table_off) != get_u32(buf + H_META_CRC))
		return seer_err_set(err, SEER_ECORRUPT, "header or tensor table fails its CRC check");
	if (crc_update(crc32(0, Z_NULL, 0), buf + data_off, data_bytes) != get_u32(buf + H_DATA_CRC))
		return seer_err_set(err, SEER_ECORRUPT, "tensor data fails its CRC check");
	if (get_str(f->arch, buf + H_ARCH, WFILE_ARCH_MAX) < 0 ||
	    get_str(f->model, buf + H_MODEL, WFILE_MODEL_MAX) < 0)
		return seer_err_set(err, SEER_ECORRUPT, "architecture or model name is not terminated");

	f->tensors = calloc(count, sizeof(*f->tensors));
	if (f->tensors == NULL)
		return seer_err_set(err, SEER_ENOMEM, "out of memory for %u tensors", count);
	f->count = count;
	for (uint32_t i = 0; i < count; i++) {
		int rc = parse_entry(buf + table_off + (uint64_t)i * WFILE_ENTRY_BYTES, i, buf + data_off,
				     data_bytes, &f->tensors[i], err);
		if (rc < 0)
			return rc;
		for (uint32_t j = 0; j < i; j++)
			if (strcmp(f->tensors[j].name, f->tensors[i].name) == 0)
				return seer_err_set(err, SEER_ECORRUPT, "tensor '%s' appears twice",
						    f->tensors[i].name);
	}
	return SEER_OK;
}

int wfile_open_mem(const void *buf, size_t len, struct wfile **out, struct seer_err *err)
{
	struct wfile *f;
	int rc;

	*out = NULL;
	f = calloc(1, sizeof(*f));
	if (f == NULL)
		return seer_err_set(err, SEER_ENOMEM, "wfile_open: out of memory");
	rc = parse(f, buf, len, err);
	if (rc < 0) {
		wfile_close(f);
		return rc;
	}
	*out = f;
	return SEER_OK;
}

/* Unless the administrator set transparent huge pages to "never". */
static int huge_pages_allowed(void)
{
	char buf[128] = "";
	FILE *f = fopen("/sys/kernel/mm/transparent_hugepage/enabled", "re");

	if (f == NULL)
		return 1; /* no THP (or not Linux): madvise() fails harmlessly */
	if (fgets(buf, sizeof(buf), f) == NULL)
		buf[0] = '\0';
	fclose(f);
	return strstr(buf, "[never]") == NULL;
}

/*
 * Memory for a whole model: private, anonymous, 2 MB-aligned and advised
 * for transparent huge pages. A forward pass streams some 80 MB of weights,
 * and on 4 KB pages every 4 KB of them costs the TLB a page walk; on 2 MB
 * pages a pass runs about 5% faster here (BENCHMARKS.md). A mapped file
 * cannot have them: Debian's kernels map the page cache in 4 KB pages.
 * Processes forked after the load share these pages (seerd's workers).
 * huge: whether to advise them (not where THP is set to "never"); without
 * THP the advice fails harmlessly. Either way plain pages are used then.
 * Returns the memory, *len bytes, or NULL with errno set.
 */
#define WFILE_HUGE_PAGE ((size_t)2 << 20)

static void *model_memory(size_t bytes, int huge, size_t *len)
{
	size_t want = (bytes + WFILE_HUGE_PAGE - 1) & ~(WFILE_HUGE_PAGE - 1);
	char *raw, *p;
	size_t head;

	if (want < bytes || want + WFILE_HUGE_PAGE < want) {
		errno = ENOMEM;
		return NULL;
	}
	raw = mmap(NULL, want + WFILE_HUGE_PAGE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (raw == MAP_FAILED)
		return NULL;
	/* keep the 2 MB-aligned `want` bytes of the over-sized mapping, give back the rest */
	p = (char *)(((uintptr_t)raw + WFILE_HUGE_PAGE - 1) & ~(uintptr_t)(WFILE_HUGE_PAGE - 1));
	head = (size_t)(p - raw);
	if (head > 0)
		munmap(raw, head);
	munmap(p + want, WFILE_HUGE_PAGE - head);
#ifdef MADV_HUGEPAGE
	if (huge)
		madvise(p, want, MADV_HUGEPAGE); /* advice: failing it only costs speed */
#else
	(void)huge;
#endif
	*len = want;
	return p;
}

/*
 * Huge pages are handed out when the memory is first written; a 2 MB range
 * that got 4 KB pages then (memory too fragmented at that moment) would keep
 * them, as khugepaged leaves read-only memory alone. MADV_COLLAPSE (Linux
 * 6.1) gathers them into huge pages now, while the memory is still
 * writable; where the kernel lacks it, nothing happens. It disregards the
 * system's THP setting: called only where the advice was given.
 */
static void settle_huge_pages(void *mem, size_t len)
{
#if defined(__linux__) && !defined(MADV_COLLAPSE)
#define MADV_COLLAPSE 25 /* <linux/mman.h>; glibc before 2.37 lacks it */
#endif
#ifdef MADV_COLLAPSE
	madvise(mem, len, MADV_COLLAPSE);
#else
	(void)mem;
	(void)len;
#endif
}

/* Read all of fd's bytes into buf. Returns 0, or -1 with errno set (0 when the file ended early). */
static int read_all(int fd, char *buf, size_t bytes)
{
	size_t got = 0;

	while (got < bytes) {
		ssize_t r = pread(fd, buf + got, bytes - got, (off_t)got);

		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0) {
			if (r == 0)
				errno = 0; /* the file shrank under us */
			return -1;
		}
		got += (size_t)r;
	}
	return 0;
}

int wfile_open(const char *path, struct wfile **out, struct seer_err *err)
{
	struct seer_err inner = { 0 };
	struct stat st;
	void *mem = NULL;
	size_t mem_len = 0;
	int fd, rc, huge;

	*out = NULL;
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return seer_err_set(err, errno == ENOENT ? SEER_ENOENT : SEER_EIO,
				    "model file %s: %s", path, strerror(errno));
	if (fstat(fd, &st) < 0) {
		rc = seer_err_set(err, SEER_EIO, "model file %s: %s", path, strerror(errno));
		goto fail;
	}
	if (!S_ISREG(st.st_mode)) {
		rc = seer_err_set(err, SEER_EIO, "model file %s: not a regular file", path);
		goto fail;
	}
	if (st.st_size == 0) {
		rc = seer_err_set(err, SEER_EEMPTY, "model file %s: file is empty", path);
		goto fail;
	}
	if ((uint64_t)st.st_size > SIZE_MAX / 2) {
		rc = seer_err_set(err, SEER_ENOMEM, "model file %s: too large", path);
		goto fail;
	}
	huge = huge_pages_allowed();
	mem = model_memory((size_t)st.st_size, huge, &mem_len);
	if (mem == NULL) {
		rc = seer_err_set(err, SEER_ENOMEM, "model file %s: %s", path, strerror(errno));
		goto fail;
	}
	if (read_all(fd, mem, (size_t)st.st_size) < 0) {
		if (errno == 0)
			rc = seer_err_set(err, SEER_ETRUNC, "model file %s: shrank while being read", path);
		else
			rc = seer_err_set(err, SEER_EIO, "model file %s: read: %s", path, strerror(errno));
		goto fail;
	}
	if (huge)
		settle_huge_pages(mem, mem_len);
	/* from here on nothing writes the weights: a stray write faults instead of corrupting them */
	mprotect(mem, mem_len, PROT_READ);
	rc = wfile_open_mem(mem, (size_t)st.st_size, out, &inner);
	if (rc < 0) {
		seer_err_set(err, rc, "model file %s: %s", path, inner.msg);
		goto fail;
	}
	(*out)->map = mem;
	(*out)->map_bytes = mem_len;
	close(fd);
	return SEER_OK;
fail:
	if (mem != NULL)
		munmap(mem, mem_len);
	close(fd);
	return rc;
}

const struct wfile_tensor *wfile_find(const struct wfile *f, const char *name)
{
	for (size_t i = 0; i < f->count; i++)
		if (strcmp(f->tensors[i].name, name) == 0)
			return &f->tensors[i];
	return NULL;
}

void wfile_close(struct wfile *f)
{
	if (f == NULL)
		return;
	if (f->map != NULL)
		munmap(f->map, f->map_bytes);
	free(f->tensors);
	free(f);
}

/* ---------------------------------------------------------------- writer */

struct wfile_writer {
	char arch[WFILE_ARCH_MAX];
	char model[WFILE_MODEL_MAX];
	size_t count, cap;
	struct wfile_tensor *tensors; /* data pointers are owned copies */
};

struct wfile_writer *wfile_writer_new(const char *arch, const char *model)
{
	struct wfile_writer *w = calloc(1, sizeof(*w));

	if (w == NULL)
		return NULL;
	snprintf(w->arch, sizeof(w->arch), "%s", arch);
	snprintf(w->model, sizeof(w->model), "%s", model);
	return w;
}

int wfile_writer_add(struct wfile_writer *w, const char *name, int ndim,
		     const uint32_t *dims, const float *data, struct seer_err *err)
{
	struct wfile_tensor *t;
	size_t numel = 1;
	float *copy;

	if (strlen(name) == 0 || strlen(name) >= WFILE_NAME_MAX)
		return seer_err_set(err, SEER_EINVAL, "wfile_writer_add: bad tensor name '%s'", name);
	if (ndim < 1 || ndim > WFILE_MAX_DIMS || w->count >= WFILE_MAX_TENSORS)
		return seer_err_set(err, SEER_EINVAL, "wfile_writer_add: bad shape for '%s'", name);
	for (int d = 0; d < ndim; d++) {
		if (dims[d] == 0 || dims[d] > (1u << 24))
			return seer_err_set(err, SEER_EINVAL, "wfile_writer_add: bad dimension for '%s'", name);
		numel *= dims[d];
	}
	if (w->count == w->cap) {
		size_t cap = w->cap ? 2 * w->cap : 64;
		struct wfile_tensor *grown = realloc(w->tensors, cap * sizeof(*grown));

		if (grown == NULL)
			return seer_err_set(err, SEER_ENOMEM, "wfile_writer_add: out of memory");
		w->tensors = grown;
		w->cap = cap;
	}
	copy = malloc(numel * sizeof(float));
	if (copy == NULL)
		return seer_err_set(err, SEER_ENOMEM, "wfile_writer_add: out of memory for '%s'", name);
	memcpy(copy, data, numel * sizeof(float));
	t = &w->tensors[w->count++];
	memset(t, 0, sizeof(*t));
	snprintf(t->name, sizeof(t->name), "%s", name);
	t->ndim = ndim;
	memcpy(t->dims, dims, (size_t)ndim * sizeof(dims[0]));
	t->numel = numel;
	t->data = copy;
	return SEER_OK;
}

static size_t align_up(size_t n)
{
	return (n + WFILE_ALIGN - 1) / WFILE_ALIGN * WFILE_ALIGN;
}

/* write(2) all of buf, retrying short writes. */
static int write_all(int fd, const void *buf, size_t len)
{
	const unsigned char *p = buf;

	while (len > 0) {
		ssize_t n = write(fd, p, len);

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return -1;
		p += n;
		len -= (size_t)n;
	}
	return 0;
}

int wfile_writer_save(struct wfile_writer *w, const char *path, struct seer_err *err)
{
	size_t table_bytes = w->count * WFILE_ENTRY_BYTES;
	size_t data_off = align_up(WFILE_HEADER_BYTES + table_bytes), data_bytes = 0;
	unsigned char *meta = NULL, *pad = NULL;
	char *tmp = NULL;
	uint32_t data_crc;
	int fd = -1, rc;

	for (size_t i = 0; i < w->count; i++)
		data_bytes = align_up(data_bytes) + w->tensors[i].numel * 4;
	data_bytes = align_up(data_bytes);
	meta = calloc(1, data_off);
	pad = calloc(1, WFILE_ALIGN);
	tmp = malloc(strlen(path) + 16);
	if (meta == NULL || pad == NULL || tmp == NULL) {
		rc = seer_err_set(err, SEER_ENOMEM, "wfile_writer_save: out of memory");
		goto out;
	}
	memcpy(meta + H_MAGIC, WFILE_MAGIC, 8);
	put_u32(meta + H_VERSION, WFILE_VERSION);
	put_u32(meta + H_HEADER_BYTES, WFILE_HEADER_BYTES);
	put_u32(meta + H_ENTRY_BYTES, WFILE_ENTRY_BYTES);
	put_u32(meta + H_COUNT, (uint32_t)w->count);
	put_u64(meta + H_TABLE_OFF, WFILE_HEADER_BYTES);
	put_u64(meta + H_DATA_OFF, data_off);
	put_u64(meta + H_DATA_BYTES, data_bytes);
	put_u64(meta + H_FILE_BYTES, data_off + data_bytes);
	memcpy(meta + H_ARCH, w->arch, strlen(w->arch));
	memcpy(meta + H_MODEL, w->model, strlen(w->model));

	data_crc = (uint32_t)crc32(0, Z_NULL, 0);
	{
		size_t off = 0;

		for (size_t i = 0; i < w->count; i++) {
			const struct wfile_tensor *t = &w->tensors[i];
			unsigned char *e = meta + WFILE_HEADER_BYTES + i * WFILE_ENTRY_BYTES;
			size_t start = align_up(off);

			data_crc = crc_update(data_crc, pad, start - off);
			memcpy(e + E_NAME, t->name, strlen(t->name));
			put_u32(e + E_DTYPE, WFILE_DTYPE_F32);
			put_u32(e + E_NDIM, (uint32_t)t->ndim);
			for (int d = 0; d < t->ndim; d++)
				put_u32(e + E_DIMS + 4 * d, t->dims[d]);
			put_u64(e + E_OFFSET, start);
			put_u64(e + E_NBYTES, t->numel * 4);
			data_crc = crc_update(data_crc, (const unsigned char *)t->data, t->numel * 4);
			off = start + t->numel * 4;
		}
		data_crc = crc_update(data_crc, pad, data_bytes - off);
	}
	put_u32(meta + H_DATA_CRC, data_crc);
	put_u32(meta + H_META_CRC, meta_crc(meta, meta + WFILE_HEADER_BYTES, data_off - WFILE_HEADER_BYTES));

	sprintf(tmp, "%s.tmpXXXXXX", path);
	fd = mkstemp(tmp);
	if (fd < 0) {
		rc = seer_err_set(err, SEER_EIO, "cannot create %s: %s", tmp, strerror(errno));
		goto out;
	}
	if (write_all(fd, meta, data_off) < 0)
		goto write_fail;
	{
		size_t off = 0;

		for (size_t i = 0; i < w->count; i++) {
			size_t start = align_up(off);

			if (write_all(fd, pad, start - off) < 0 ||
			    write_all(fd, w->tensors[i].data, w->tensors[i].numel * 4) < 0)
				goto write_fail;
			off = start + w->tensors[i].numel * 4;
		}
		if (write_all(fd, pad, data_bytes - off) < 0)
			goto write_fail;
	}
	if (fchmod(fd, 0644) < 0 || fsync(fd) < 0 || close(fd) < 0) {
		fd = -1;
		goto write_fail;
	}
	fd = -1;
	if (rename(tmp, path) < 0) {
		rc = seer_err_set(err, SEER_EIO, "cannot rename %s to %s: %s", tmp, path, strerror(errno));
		unlink(tmp);
		goto out;
	}
	rc = SEER_OK;
	goto out;
write_fail:
	rc = seer_err_set(err, SEER_EIO, "cannot write %s: %s", tmp, strerror(errno));
	if (fd >= 0)
		close(fd);
	unlink(tmp);
out:
	free(meta);
	free(pad);
	free(tmp);
	return rc;
}

void wfile_writer_free(struct wfile_writer *w)
{
	if (w == NULL)
		return;
	for (size_t i = 0; i < w->count; i++)
		free((void *)w->tensors[i].data);
	free(w->tensors);
	free(w);
}
