/* safetensors reader and writer (https://github.com/huggingface/safetensors).
 *
 * Layout: 8-byte little-endian u64 N, then N bytes of JSON header
 *   {"__metadata__": {"key": "value", ...},
 *    "name": {"dtype": "F32", "shape": [d0, d1, ...], "data_offsets": [begin, end]}, ...}
 * then the data buffer; offsets are relative to the start of the buffer, data is
 * little-endian and row-major.
 *
 * Reading maps the whole file (mmap, read-only) and validates every header entry before
 * anything is returned: a bad file gives PB_ERR_FORMAT (or PB_ERR_IO / PB_ERR_NOTFOUND)
 * with a message naming the file and the problem, never a crash. Tensors of dtype F32, F16,
 * BF16, F64 (and the integer dtypes I8..I64, U8..U64, BOOL, e.g. HF's position_ids) are
 * converted to float on read.
 *
 * Writing produces F32 (or F16) tensors sorted by name, like the reference implementation,
 * the header padded with spaces to a multiple of 8, atomically (tmp + fsync + rename). */
#ifndef PB_SAFETENSORS_H
#define PB_SAFETENSORS_H

#include <stddef.h>
#include <stdint.h>

/* A metadata key/value pair (both NUL-terminated strings). Lists returned by the library are
 * malloc'd (keys and values too) and released with pb_kv_free(). */
typedef struct {
  char *key;
  char *value;
} pb_kv;

void pb_kv_free(pb_kv *kv, int n);
/* value for key in kv [n], or NULL */
const char *pb_kv_get(const pb_kv *kv, int n, const char *key);

typedef enum {
  PB_ST_F32 = 0, PB_ST_F16, PB_ST_BF16, PB_ST_F64,
  PB_ST_I64, PB_ST_I32, PB_ST_I16, PB_ST_I8,
  PB_ST_U64, PB_ST_U32, PB_ST_U16, PB_ST_U8, PB_ST_BOOL,
  PB_ST_F8_E4M3, PB_ST_F8_E5M2, /* parsed (valid files) but not convertible */
  PB_ST_DTYPE_COUNT
} pb_st_dtype;

const char *pb_st_dtype_name(pb_st_dtype d); /* "F32", ... */
size_t pb_st_dtype_size(pb_st_dtype d);       /* bytes per element */

#define PB_ST_MAX_DIMS 8

/* one tensor entry of a parsed header */
typedef struct {
  char *name;                     /* owned */
  pb_st_dtype dtype;
  int ndim;                       /* 0..PB_ST_MAX_DIMS (0 = scalar) */
  int64_t shape[PB_ST_MAX_DIMS];  /* [ndim] */
  size_t numel;                   /* product of shape (1 for a scalar) */
  uint64_t begin, end;            /* byte range in the data buffer */
} pb_st_tensor;

/* an opened file */
typedef struct {
  char *path;                     /* owned copy, used in messages */
  void *map;                      /* whole file, mmap'ed read-only (NULL for an empty map) */
  size_t map_size;                /* file size in bytes */
  const unsigned char *data;      /* start of the data buffer (inside map) */
  size_t data_size;               /* bytes in the data buffer */
  pb_st_tensor *t;                /* [n] in header order */
  int n;
  pb_kv *meta;                    /* [n_meta] the __metadata__ pairs */
  int n_meta;
} pb_st_file;

/* Opens and validates a file. On error nothing needs closing. */
int pb_st_open(pb_st_file *f, const char *path);
void pb_st_close(pb_st_file *f);
/* index of a tensor by name, or -1 */
int pb_st_find(const pb_st_file *f, const char *name);
/* Converts tensor `idx` to float into out [numel]; `numel` must equal the tensor's element
 * count (PB_ERR_SHAPE otherwise). PB_ERR_UNSUPPORTED for F8 dtypes. */
int pb_st_read_f32(const pb_st_file *f, int idx, float *out, size_t numel);
/* same, by name (PB_ERR_NOTFOUND naming the tensor and file if absent) */
int pb_st_read_f32_name(const pb_st_file *f, const char *name, float *out, size_t numel);
/* "[768, 3072]" into buf */
void pb_st_shape_str(const pb_st_tensor *t, char *buf, size_t n);

/* Reads the __metadata__ of a file without mapping the data (reads only the header).
 * *meta is malloc'd (pb_kv_free), *n_meta may be 0. The header is fully validated. */
int pb_st_read_meta(const char *path, pb_kv **meta, int *n_meta);

/* a tensor to write */
typedef struct {
  const char *name;
  int ndim;                 /* 0..PB_ST_MAX_DIMS */
  const int *shape;         /* [ndim] */
  const float *data;        /* [product of shape] */
} pb_st_wtensor;

/* Writes tensors [n] (converted to `dtype`: PB_ST_F32 or PB_ST_F16) and metadata [n_meta]
 * to path atomically. Duplicate tensor names, "__metadata__" as a tensor name and duplicate
 * metadata keys are PB_ERR_ARG. An existing file at path is only replaced on success. */
int pb_st_write(const char *path, const pb_kv *meta, int n_meta, const pb_st_wtensor *t, int n,
                pb_st_dtype dtype);
/* The same, but an existing file at path is never replaced (PB_ERR_IO "exists already"). */
int pb_st_write_new(const char *path, const pb_kv *meta, int n_meta, const pb_st_wtensor *t, int n,
                    pb_st_dtype dtype);

/* scalar conversions (exposed for tests) */
float pb_f16_to_f32(uint16_t h);
uint16_t pb_f32_to_f16(float f);   /* round to nearest even; overflow -> inf; NaN kept */
float pb_bf16_to_f32(uint16_t h);

#endif
