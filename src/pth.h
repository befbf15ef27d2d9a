/*
 * pth.h - read PyTorch state_dict checkpoints (torch.save zip format, >= 1.6)
 * without PyTorch and without running pickle code.
 *
 * The file is mapped read-only; tensors point into the mapping, so their data
 * stays valid until pth_close(). Only stored (uncompressed), non-zip64
 * archives holding a dict of contiguous CPU tensors are accepted. Tensor data
 * is little-endian, as torch writes it on every common host.
 */
#ifndef SEER_PTH_H
#define SEER_PTH_H

#include <stddef.h>
#include <stdint.h>

#include "status.h"

#define PTH_MAX_DIMS 8
#define PTH_MAX_TENSORS 100000

enum pth_dtype {
	PTH_F32,  /* torch.FloatStorage */
	PTH_F64,  /* torch.DoubleStorage */
	PTH_F16,  /* torch.HalfStorage */
	PTH_BF16, /* torch.BFloat16Storage */
	PTH_I64,  /* torch.LongStorage */
	PTH_I32,  /* torch.IntStorage */
	PTH_I16,  /* torch.ShortStorage */
	PTH_I8,   /* torch.CharStorage */
	PTH_U8,   /* torch.ByteStorage */
	PTH_BOOL, /* torch.BoolStorage, one byte per element */
};

struct pth_tensor {
	const char *name;          /* state_dict key, owned by the pth_file */
	enum pth_dtype dtype;
	int ndim;                  /* 0 for a scalar */
	int64_t shape[PTH_MAX_DIMS];
	int64_t numel;
	const void *data;          /* first element inside the mapped file; may be unaligned: read with memcpy */
};

struct pth_file;

/*
 * Map path read-only and parse it. On success returns 0 and *out owns the
 * mapping; free it with pth_close(). On failure returns a negative SEER_E*
 * code (SEER_ENOENT, SEER_EIO, SEER_EEMPTY, SEER_ETRUNC, SEER_ECORRUPT,
 * SEER_EUNSUPPORTED, SEER_ETOOLARGE, SEER_ENOMEM, SEER_EINVAL), fills err
 * (may be NULL) and sets *out to NULL.
 */
int pth_open(const char *path, struct pth_file **out, struct seer_err *err);

/*
 * Parse buf[0..len) like pth_open. The caller keeps buf alive and unchanged
 * for the life of *out; pth_close() does not free it.
 */
int pth_open_mem(const void *buf, size_t len, struct pth_file **out,
		 struct seer_err *err);

/* Number of tensors in the state_dict. */
size_t pth_count(const struct pth_file *f);

/* Tensor i (0 <= i < pth_count) in file order, or NULL if i is out of range. */
const struct pth_tensor *pth_tensor_at(const struct pth_file *f, size_t i);

/* The tensor named name, or NULL if absent. */
const struct pth_tensor *pth_find(const struct pth_file *f, const char *name);

/* Bytes per element of t (1 for PTH_BOOL), 0 for a value outside the enum. */
size_t pth_dtype_size(enum pth_dtype t);

/* A short static name ("f32", "i64", ...), "?" for a value outside the enum. */
const char *pth_dtype_name(enum pth_dtype t);

/* Unmap and free f. Accepts NULL. Every pointer obtained from f dies here. */
void pth_close(struct pth_file *f);

#endif
