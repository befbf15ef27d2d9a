/*
 * wfile.h - seer's native weight file: a header, a table of named float32
 * tensors and a 64-byte-aligned data blob, read once into read-only memory
 * (on huge pages where the kernel has them) that processes forked after the
 * load share, as seerd's workers do. The layout is in weights/FORMAT.md.
 */
#ifndef SEER_WFILE_H
#define SEER_WFILE_H

#include <stddef.h>
#include <stdint.h>

#include "status.h"

#define WFILE_MAGIC "SEERWGTS"
#define WFILE_VERSION 1
#define WFILE_HEADER_BYTES 128
#define WFILE_ENTRY_BYTES 96
#define WFILE_NAME_MAX 56   /* bytes of a tensor name, NUL included */
#define WFILE_ARCH_MAX 16
#define WFILE_MODEL_MAX 48
#define WFILE_MAX_DIMS 4
#define WFILE_ALIGN 64
#define WFILE_MAX_TENSORS 4096
#define WFILE_DTYPE_F32 1

/* One tensor of an open file; data points into the file's read-only memory. */
struct wfile_tensor {
	char name[WFILE_NAME_MAX];
	int ndim;
	uint32_t dims[WFILE_MAX_DIMS];
	size_t numel;
	const float *data;
};

struct wfile {
	char arch[WFILE_ARCH_MAX];   /* network architecture, e.g. "resnet18" */
	char model[WFILE_MODEL_MAX]; /* model id, e.g. "resnet18-f37072fd" */
	size_t count;
	struct wfile_tensor *tensors; /* [count], owned */
	void *map;		      /* the memory wfile_open() read the file into, or NULL */
	size_t map_bytes;	      /* its length (whole huge pages) */
};

/*
 * Read path into read-only memory and check it: magic, version, every header and table
 * field against the file size, and both CRC-32s. Returns 0 and fills *out,
 * or a negative SEER_E* code with err filled (SEER_ENOENT, SEER_EIO,
 * SEER_ETRUNC, SEER_ECORRUPT, SEER_EUNSUPPORTED, SEER_ENOMEM).
 * Free with wfile_close().
 */
int wfile_open(const char *path, struct wfile **out, struct seer_err *err);

/* Same, for bytes the caller keeps alive and unchanged until wfile_close(). */
int wfile_open_mem(const void *buf, size_t len, struct wfile **out, struct seer_err *err);

/* The tensor called name, or NULL. */
const struct wfile_tensor *wfile_find(const struct wfile *f, const char *name);

/* Release the memory and free; accepts NULL. */
void wfile_close(struct wfile *f);

/* Collects tensors in memory, then writes them out as one file. */
struct wfile_writer;

/* A writer for the given architecture and model id, or NULL when out of memory. */
struct wfile_writer *wfile_writer_new(const char *arch, const char *model);

/*
 * Append a tensor, copying data (numel = product of dims floats).
 * Returns 0, SEER_EINVAL for a bad name or shape, or SEER_ENOMEM.
 */
int wfile_writer_add(struct wfile_writer *w, const char *name, int ndim,
		     const uint32_t *dims, const float *data, struct seer_err *err);

/*
 * Write everything to path through a temporary file in the same directory,
 * fsync and rename, so a reader never sees half a file. Returns 0 or
 * SEER_EIO / SEER_ENOMEM with err filled.
 */
int wfile_writer_save(struct wfile_writer *w, const char *path, struct seer_err *err);

/* Free the writer and its copies; accepts NULL. */
void wfile_writer_free(struct wfile_writer *w);

#endif
