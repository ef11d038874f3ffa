/* Reading and writing huggingface safetensors files (checkpoints of every model stage).
 *
 * Layout: an 8-byte little-endian u64 N, then N bytes of UTF-8 JSON mapping each tensor name to
 * {"dtype": "F32", "shape": [..], "data_offsets": [begin, end]} (offsets relative to the data
 * buffer that follows the header), plus an optional "__metadata__" object of string -> string.
 *
 * The reader validates everything before handing out a single pointer: it is meant to survive
 * hostile input (fuzzing), so every malformed file yields PS_ERR and a message that starts with
 * the file label and says what is wrong. The data buffer must be covered exactly by the tensors
 * (no overlaps, no holes, no trailing bytes), as the format specification requires.
 *
 * Tensor data is stored little-endian; this implementation requires a little-endian host. */
#ifndef POPSTEER_SAFETENSORS_H
#define POPSTEER_SAFETENSORS_H

#include <stddef.h>
#include <stdint.h>

#include "popsteer/error.h"

typedef enum ps_dtype {
    PS_DTYPE_F32,
    PS_DTYPE_F64,
    PS_DTYPE_F16,
    PS_DTYPE_BF16,
    PS_DTYPE_I64,
    PS_DTYPE_I32,
    PS_DTYPE_I16,
    PS_DTYPE_I8,
    PS_DTYPE_U8,
    PS_DTYPE_BOOL
} ps_dtype;

/* "F32", "F64", ... as spelled in the safetensors spec; "?" for a value outside the enum. */
const char *ps_dtype_name(ps_dtype d);
/* Bytes per element; 0 for a value outside the enum. */
size_t ps_dtype_size(ps_dtype d);
/* Parses a spec name ("F32", ...); returns PS_OK and sets *d, or PS_ERR (no message). */
int ps_dtype_parse(const char *name, ps_dtype *d);

/* Largest header the reader accepts (as the reference implementation: 100 MB). */
#define PS_ST_MAX_HEADER ((uint64_t)100000000)
#define PS_ST_MAX_DIMS 8

typedef struct ps_st_tensor {
    const char *name;
    ps_dtype dtype;
    int ndim;                        /* 0 for a scalar */
    int64_t shape[PS_ST_MAX_DIMS];
    int64_t numel;                   /* product of shape (1 for a scalar) */
    const void *data;                /* inside the file buffer; possibly unaligned: memcpy, never cast */
    size_t nbytes;                   /* numel * ps_dtype_size(dtype) */
} ps_st_tensor;

/* An open file. Tensors are listed in data-offset order (for files from ps_st_writer, the order
 * they were added). All strings and data belong to the file and live until ps_st_close. */
typedef struct ps_st_file {
    char *buf;             /* whole file */
    size_t len;
    ps_st_tensor *tensors;
    int n_tensors;
    char **meta_keys;      /* __metadata__, in file order */
    char **meta_values;
    int n_meta;
    char *label;           /* path or caller-given label: prefix of every message */
} ps_st_file;

/* Reads the whole file at path and validates it. On failure f is left closed (safe to close). */
int ps_st_open(ps_st_file *f, const char *path, ps_error *err);
/* Same from memory (buf is copied); label names the source in messages (NULL: "<memory>"). */
int ps_st_parse(ps_st_file *f, const void *buf, size_t len, const char *label, ps_error *err);
/* Frees everything and zeroes f; safe on a zeroed or already closed file. */
void ps_st_close(ps_st_file *f);

/* The tensor called name, or NULL. */
const ps_st_tensor *ps_st_find(const ps_st_file *f, const char *name);
/* The __metadata__ string value for key, or NULL. */
const char *ps_st_meta(const ps_st_file *f, const char *key);

/* Copies a tensor that must have dtype F32 (resp. I32) and exactly the given shape (ndim entries;
 * shape may be NULL when ndim is 0) into dst, which holds the product of shape elements. Errors
 * name the file and the tensor: missing tensor, wrong dtype, wrong shape (expected vs found), and
 * for F32 any NaN/Inf (how many, and the first index). dst contents are unspecified on error. */
int ps_st_read_f32(const ps_st_file *f, const char *name, int ndim, const int64_t *shape, float *dst,
                   ps_error *err);
int ps_st_read_i32(const ps_st_file *f, const char *name, int ndim, const int64_t *shape, int32_t *dst,
                   ps_error *err);

/* Builds a file in memory (descriptions only) and writes it atomically. */
typedef struct ps_st_writer ps_st_writer;

ps_st_writer *ps_st_writer_new(ps_error *err);
/* Records a tensor; data is NOT copied and must stay valid until ps_st_writer_write (it may be
 * NULL only if the tensor has no elements). Rejects duplicate names, the reserved name
 * "__metadata__", names that are not UTF-8, ndim outside 0..8, negative dims and byte sizes that
 * overflow. Tensors are written in the order they are added. */
int ps_st_writer_add(ps_st_writer *w, const char *name, ps_dtype dt, int ndim, const int64_t *shape,
                     const void *data, ps_error *err);
/* Records a __metadata__ entry (both strings are copied); rejects duplicate keys and non-UTF-8. */
int ps_st_writer_meta(ps_st_writer *w, const char *key, const char *value, ps_error *err);
/* Writes the file atomically (ps_atomic_open/commit): the header is padded with spaces so the
 * data starts 8-byte aligned, tensors follow contiguously. The writer stays usable. */
int ps_st_writer_write(ps_st_writer *w, const char *path, ps_error *err);
/* Safe on NULL. */
void ps_st_writer_free(ps_st_writer *w);

#endif
