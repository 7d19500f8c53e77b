#include "backbone/safetensors.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "util/fileio.h"
#include "util/status.h"

#define PB_ST_MAX_HEADER ((uint64_t)100 * 1000 * 1000) /* 100 MB: more is not a real header */

/* ---------------------------------------------------------------- small helpers */

static char *dup_str(const char *s) {
  size_t n = strlen(s) + 1;
  char *d = malloc(n);
  if (d) memcpy(d, s, n);
  return d;
}

void pb_kv_free(pb_kv *kv, int n) {
  if (!kv) return;
  for (int i = 0; i < n; i++) {
    free(kv[i].key);
    free(kv[i].value);
  }
  free(kv);
}

const char *pb_kv_get(const pb_kv *kv, int n, const char *key) {
  for (int i = 0; i < n; i++)
    if (kv[i].key && strcmp(kv[i].key, key) == 0) return kv[i].value;
  return NULL;
}

static const struct {
  const char *name;
  size_t size;
} DTYPES[PB_ST_DTYPE_COUNT] = {
    [PB_ST_F32] = {"F32", 4},     [PB_ST_F16] = {"F16", 2},          [PB_ST_BF16] = {"BF16", 2},
    [PB_ST_F64] = {"F64", 8},     [PB_ST_I64] = {"I64", 8},          [PB_ST_I32] = {"I32", 4},
    [PB_ST_I16] = {"I16", 2},     [PB_ST_I8] = {"I8", 1},            [PB_ST_U64] = {"U64", 8},
    [PB_ST_U32] = {"U32", 4},     [PB_ST_U16] = {"U16", 2},          [PB_ST_U8] = {"U8", 1},
    [PB_ST_BOOL] = {"BOOL", 1},   [PB_ST_F8_E4M3] = {"F8_E4M3", 1},  [PB_ST_F8_E5M2] = {"F8_E5M2", 1},
};

const char *pb_st_dtype_name(pb_st_dtype d) { return (unsigned)d < PB_ST_DTYPE_COUNT ? DTYPES[d].name : "?"; }
size_t pb_st_dtype_size(pb_st_dtype d) { return (unsigned)d < PB_ST_DTYPE_COUNT ? DTYPES[d].size : 0; }

static int dtype_from_name(const char *s) {
  for (int i = 0; i < PB_ST_DTYPE_COUNT; i++)
    if (strcmp(s, DTYPES[i].name) == 0) return i;
  return -1;
}

void pb_st_shape_str(const pb_st_tensor *t, char *buf, size_t n) {
  size_t o = 0;
  o += (size_t)snprintf(buf + o, o < n ? n - o : 0, "[");
  for (int i = 0; i < t->ndim; i++)
    o += (size_t)snprintf(buf + o, o < n ? n - o : 0, "%s%lld", i ? ", " : "", (long long)t->shape[i]);
  snprintf(buf + o, o < n ? n - o : 0, "]");
}

/* ---------------------------------------------------------------- scalar conversions */

float pb_f16_to_f32(uint16_t h) {
  uint32_t sign = (uint32_t)(h & 0x8000) << 16, exp = (h >> 10) & 0x1f, mant = h & 0x3ff, bits;
  if (exp == 0) {
    if (mant == 0) {
      bits = sign;
    } else { /* subnormal: mant * 2^-24 (exact in float) */
      float v = ldexpf((float)mant, -24);
      return sign ? -v : v;
    }
  } else if (exp == 31) {
    bits = sign | 0x7f800000u | (mant << 13);
  } else {
    bits = sign | ((exp + 112) << 23) | (mant << 13);
  }
  float f;
  memcpy(&f, &bits, 4);
  return f;
}

uint16_t pb_f32_to_f16(float f) {
  uint32_t x;
  memcpy(&x, &f, 4);
  uint16_t sign = (uint16_t)((x >> 16) & 0x8000);
  uint32_t ax = x & 0x7fffffffu;
  if (ax >= 0x7f800000u) /* inf or NaN (NaN stays a quiet NaN) */
    return (uint16_t)(sign | 0x7c00 | (ax > 0x7f800000u ? 0x200 | ((ax >> 13) & 0x3ff) : 0));
  if (ax >= 0x477ff000u) return (uint16_t)(sign | 0x7c00); /* >= 65520 rounds to inf */
  if (ax < 0x38800000u) { /* below 2^-14: half subnormal (or zero) */
    float v;
    memcpy(&v, &ax, 4);
    float r = nearbyintf(v * 16777216.0f); /* units of 2^-24, ties to even; 1024 = min normal */
    return (uint16_t)(sign | (uint16_t)r);
  }
  uint32_t h = ((((ax >> 23) - 112) << 10) | ((ax & 0x7fffff) >> 13));
  uint32_t rem = ax & 0x1fff;
  if (rem > 0x1000 || (rem == 0x1000 && (h & 1))) h++; /* carry may bump the exponent: correct */
  return (uint16_t)(sign | h);
}

float pb_bf16_to_f32(uint16_t h) {
  uint32_t bits = (uint32_t)h << 16;
  float f;
  memcpy(&f, &bits, 4);
  return f;
}

/* ---------------------------------------------------------------- header parsing */

static void free_tensors(pb_st_tensor *t, int n) {
  if (!t) return;
  for (int i = 0; i < n; i++) free(t[i].name);
  free(t);
}

/* a JSON number that is a non-negative integer not above 2^53 */
static int json_uint(const cJSON *j, uint64_t *out) {
  if (!cJSON_IsNumber(j)) return 0;
  double d = j->valuedouble;
  if (!isfinite(d) || d < 0 || d != floor(d) || d > 9007199254740992.0) return 0;
  *out = (uint64_t)d;
  return 1;
}

static int cmp_begin(const void *a, const void *b) {
  const pb_st_tensor *x = *(pb_st_tensor *const *)a, *y = *(pb_st_tensor *const *)b;
  return x->begin < y->begin ? -1 : x->begin > y->begin ? 1 : 0;
}

/* Parses and validates the JSON header hdr [hlen bytes] against a data buffer of data_size
 * bytes. Fills tensors and metadata (either out pointer may be NULL: then that part is
 * validated and freed). */
static int parse_header(const char *path, const char *hdr, size_t hlen, uint64_t data_size,
                        pb_st_tensor **out_t, int *out_n, pb_kv **out_meta, int *out_nmeta) {
  size_t lead = 0;
  while (lead < hlen && (hdr[lead] == ' ' || hdr[lead] == '\t' || hdr[lead] == '\n' || hdr[lead] == '\r')) lead++;
  if (lead == hlen || hdr[lead] != '{')
    return pb_set_error(PB_ERR_FORMAT, "%s: safetensors header is not a JSON object (it must start with '{')", path);
  const char *end = NULL;
  cJSON *root = cJSON_ParseWithLengthOpts(hdr, hlen, &end, 0);
  if (!root) {
    size_t at = end ? (size_t)(end - hdr) : 0;
    return pb_set_error(PB_ERR_FORMAT, "%s: safetensors header is not valid JSON (error near byte %zu of %zu)", path,
                        at, hlen);
  }
  if (!cJSON_IsObject(root)) {
    cJSON_Delete(root);
    return pb_set_error(PB_ERR_FORMAT, "%s: safetensors header is not a JSON object", path);
  }
  /* only whitespace (the writer's padding) or NULs may follow the object */
  for (const char *p = end; p && p < hdr + hlen; p++) {
    if (*p != ' ' && *p != '\t' && *p != '\n' && *p != '\r' && *p != 0) {
      cJSON_Delete(root);
      return pb_set_error(PB_ERR_FORMAT, "%s: safetensors header has trailing bytes after the JSON object", path);
    }
  }

  int rc = PB_OK, n = 0, nmeta = 0, seen_meta = 0;
  int cap = cJSON_GetArraySize(root);
  pb_st_tensor *t = calloc((size_t)cap + 1, sizeof *t);
  pb_kv *meta = NULL;
  if (!t) {
    rc = pb_set_error(PB_ERR_NOMEM, "%s: out of memory", path);
    goto done;
  }
  for (const cJSON *e = root->child; e; e = e->next) {
    const char *name = e->string ? e->string : "";
    if (strcmp(name, "__metadata__") == 0) {
      if (seen_meta++) { rc = pb_set_error(PB_ERR_FORMAT, "%s: __metadata__ appears twice", path); goto done; }
      if (!cJSON_IsObject(e)) { rc = pb_set_error(PB_ERR_FORMAT, "%s: __metadata__ is not a JSON object", path); goto done; }
      int m = cJSON_GetArraySize(e);
      meta = calloc((size_t)m + 1, sizeof *meta);
      if (!meta) { rc = pb_set_error(PB_ERR_NOMEM, "%s: out of memory", path); goto done; }
      for (const cJSON *kv = e->child; kv; kv = kv->next) {
        const char *key = kv->string ? kv->string : "";
        if (!cJSON_IsString(kv)) {
          rc = pb_set_error(PB_ERR_FORMAT, "%s: metadata value of \"%s\" is not a string", path, key);
          goto done;
        }
        if (pb_kv_get(meta, nmeta, key)) {
          rc = pb_set_error(PB_ERR_FORMAT, "%s: metadata key \"%s\" appears twice", path, key);
          goto done;
        }
        meta[nmeta].key = dup_str(key);
        meta[nmeta].value = dup_str(kv->valuestring);
        nmeta++;
        if (!meta[nmeta - 1].key || !meta[nmeta - 1].value) { rc = pb_set_error(PB_ERR_NOMEM, "%s: out of memory", path); goto done; }
      }
      continue;
    }
    if (!cJSON_IsObject(e)) {
      rc = pb_set_error(PB_ERR_FORMAT, "%s: tensor \"%s\": entry is not a JSON object", path, name);
      goto done;
    }
    for (int i = 0; i < n; i++)
      if (strcmp(t[i].name, name) == 0) {
        rc = pb_set_error(PB_ERR_FORMAT, "%s: tensor \"%s\" appears twice", path, name);
        goto done;
      }
    pb_st_tensor *x = &t[n];
    const cJSON *dt = cJSON_GetObjectItemCaseSensitive(e, "dtype");
    const cJSON *sh = cJSON_GetObjectItemCaseSensitive(e, "shape");
    const cJSON *of = cJSON_GetObjectItemCaseSensitive(e, "data_offsets");
    if (!dt) { rc = pb_set_error(PB_ERR_FORMAT, "%s: tensor \"%s\": missing \"dtype\"", path, name); goto done; }
    if (!sh) { rc = pb_set_error(PB_ERR_FORMAT, "%s: tensor \"%s\": missing \"shape\"", path, name); goto done; }
    if (!of) { rc = pb_set_error(PB_ERR_FORMAT, "%s: tensor \"%s\": missing \"data_offsets\"", path, name); goto done; }
    if (!cJSON_IsString(dt)) { rc = pb_set_error(PB_ERR_FORMAT, "%s: tensor \"%s\": \"dtype\" is not a string", path, name); goto done; }
    int d = dtype_from_name(dt->valuestring);
    if (d < 0) { rc = pb_set_error(PB_ERR_FORMAT, "%s: tensor \"%s\": unknown dtype \"%s\"", path, name, dt->valuestring); goto done; }
    x->dtype = (pb_st_dtype)d;
    if (!cJSON_IsArray(sh)) { rc = pb_set_error(PB_ERR_FORMAT, "%s: tensor \"%s\": \"shape\" is not an array", path, name); goto done; }
    int nd = cJSON_GetArraySize(sh);
    if (nd > PB_ST_MAX_DIMS) {
      rc = pb_set_error(PB_ERR_FORMAT, "%s: tensor \"%s\": %d dimensions (at most %d supported)", path, name, nd, PB_ST_MAX_DIMS);
      goto done;
    }
    x->ndim = nd;
    x->numel = 1;
    int k = 0;
    for (const cJSON *dim = sh->child; dim; dim = dim->next, k++) {
      uint64_t v;
      if (!json_uint(dim, &v)) {
        rc = pb_set_error(PB_ERR_FORMAT, "%s: tensor \"%s\": shape dimension %d is not a non-negative integer", path, name, k);
        goto done;
      }
      if (v != 0 && x->numel > (SIZE_MAX / 8) / v) {
        rc = pb_set_error(PB_ERR_FORMAT, "%s: tensor \"%s\": shape is too large", path, name);
        goto done;
      }
      x->shape[k] = (int64_t)v;
      x->numel *= (size_t)v;
    }
    uint64_t b, en;
    if (!cJSON_IsArray(of) || cJSON_GetArraySize(of) != 2 || !json_uint(of->child, &b) || !json_uint(of->child->next, &en)) {
      rc = pb_set_error(PB_ERR_FORMAT, "%s: tensor \"%s\": \"data_offsets\" must be [begin, end] with non-negative integers", path, name);
      goto done;
    }
    if (b > en) {
      rc = pb_set_error(PB_ERR_FORMAT, "%s: tensor \"%s\": data_offsets begin %llu > end %llu", path, name,
                        (unsigned long long)b, (unsigned long long)en);
      goto done;
    }
    if (en > data_size) {
      rc = pb_set_error(PB_ERR_FORMAT, "%s: tensor \"%s\": data_offsets end %llu is past the data buffer (%llu bytes; file truncated?)",
                        path, name, (unsigned long long)en, (unsigned long long)data_size);
      goto done;
    }
    uint64_t want = (uint64_t)x->numel * pb_st_dtype_size(x->dtype);
    if (en - b != want) {
      char s[160];
      pb_st_shape_str(x, s, sizeof s);
      rc = pb_set_error(PB_ERR_FORMAT, "%s: tensor \"%s\": %llu bytes in data_offsets but %s %s needs %llu", path, name,
                        (unsigned long long)(en - b), pb_st_dtype_name(x->dtype), s, (unsigned long long)want);
      goto done;
    }
    x->begin = b;
    x->end = en;
    x->name = dup_str(name);
    if (!x->name) { rc = pb_set_error(PB_ERR_NOMEM, "%s: out of memory", path); goto done; }
    n++;
  }
  /* no two tensors may share bytes */
  if (n > 1) {
    pb_st_tensor **ord = malloc((size_t)n * sizeof *ord);
    if (!ord) { rc = pb_set_error(PB_ERR_NOMEM, "%s: out of memory", path); goto done; }
    for (int i = 0; i < n; i++) ord[i] = &t[i];
    qsort(ord, (size_t)n, sizeof *ord, cmp_begin);
    uint64_t hi = 0;
    const char *hi_name = NULL;
    for (int i = 0; i < n && rc == PB_OK; i++) {
      if (ord[i]->begin == ord[i]->end) continue;
      if (hi_name && ord[i]->begin < hi)
        rc = pb_set_error(PB_ERR_FORMAT, "%s: tensors \"%s\" and \"%s\" overlap in the data buffer", path, hi_name, ord[i]->name);
      if (ord[i]->end > hi) { hi = ord[i]->end; hi_name = ord[i]->name; }
    }
    free(ord);
    if (rc) goto done;
  }

done:
  cJSON_Delete(root);
  if (rc) {
    free_tensors(t, n);
    pb_kv_free(meta, nmeta);
    return rc;
  }
  if (out_t) { *out_t = t; *out_n = n; } else free_tensors(t, n);
  if (out_meta) { *out_meta = meta; *out_nmeta = nmeta; } else pb_kv_free(meta, nmeta);
  return PB_OK;
}

static uint64_t le_u64(const unsigned char *p) {
  uint64_t v = 0;
  for (int i = 7; i >= 0; i--) v = (v << 8) | p[i];
  return v;
}

/* opens path, checks the 8-byte prefix; returns fd, file size and header length */
static int open_checked(const char *path, int *fd_out, uint64_t *size_out, uint64_t *hlen_out, unsigned char first8[8]) {
  int fd;
  size_t fsize;
  int rc = pb_open_regular(path, &fd, &fsize);
  if (rc) return rc;
  uint64_t size = (uint64_t)fsize;
  if (size < 8) {
    close(fd);
    return pb_set_error(PB_ERR_FORMAT, "%s: file is %llu bytes, shorter than the 8-byte safetensors header length", path,
                        (unsigned long long)size);
  }
  if (pread(fd, first8, 8, 0) != 8) {
    close(fd);
    return pb_set_error(PB_ERR_IO, "%s: cannot read the header length", path);
  }
  uint64_t hlen = le_u64(first8);
  if (hlen > PB_ST_MAX_HEADER) {
    close(fd);
    return pb_set_error(PB_ERR_FORMAT, "%s: safetensors header length %llu is absurdly large (limit %llu; not a safetensors file?)",
                        path, (unsigned long long)hlen, (unsigned long long)PB_ST_MAX_HEADER);
  }
  if (hlen > size - 8) {
    close(fd);
    return pb_set_error(PB_ERR_FORMAT, "%s: safetensors header length %llu is larger than the rest of the file (%llu bytes; truncated?)",
                        path, (unsigned long long)hlen, (unsigned long long)(size - 8));
  }
  if (hlen < 2) {
    close(fd);
    return pb_set_error(PB_ERR_FORMAT, "%s: safetensors header length %llu is too small for a JSON object", path,
                        (unsigned long long)hlen);
  }
  *fd_out = fd;
  *size_out = size;
  *hlen_out = hlen;
  return PB_OK;
}

int pb_st_open(pb_st_file *f, const char *path) {
  memset(f, 0, sizeof *f);
  int fd;
  uint64_t size, hlen;
  unsigned char first8[8];
  int rc = open_checked(path, &fd, &size, &hlen, first8);
  if (rc) return rc;
  void *map = mmap(NULL, (size_t)size, PROT_READ, MAP_PRIVATE, fd, 0);
  int e = errno;
  close(fd);
  if (map == MAP_FAILED) return pb_set_error(PB_ERR_IO, "%s: mmap failed: %s", path, strerror(e));
  f->path = dup_str(path);
  f->map = map;
  f->map_size = (size_t)size;
  f->data = (const unsigned char *)map + 8 + hlen;
  f->data_size = (size_t)(size - 8 - hlen);
  if (!f->path) {
    pb_st_close(f);
    return pb_set_error(PB_ERR_NOMEM, "%s: out of memory", path);
  }
  rc = parse_header(path, (const char *)map + 8, (size_t)hlen, f->data_size, &f->t, &f->n, &f->meta, &f->n_meta);
  if (rc) {
    pb_st_close(f);
    return rc;
  }
  return PB_OK;
}

void pb_st_close(pb_st_file *f) {
  if (f->map) munmap(f->map, f->map_size);
  free_tensors(f->t, f->n);
  pb_kv_free(f->meta, f->n_meta);
  free(f->path);
  memset(f, 0, sizeof *f);
}

int pb_st_find(const pb_st_file *f, const char *name) {
  for (int i = 0; i < f->n; i++)
    if (strcmp(f->t[i].name, name) == 0) return i;
  return -1;
}

int pb_st_read_f32(const pb_st_file *f, int idx, float *out, size_t numel) {
  if (idx < 0 || idx >= f->n) return pb_set_error(PB_ERR_ARG, "%s: tensor index %d out of range (%d tensors)", f->path, idx, f->n);
  const pb_st_tensor *t = &f->t[idx];
  if (numel != t->numel) {
    char s[160];
    pb_st_shape_str(t, s, sizeof s);
    return pb_set_error(PB_ERR_SHAPE, "%s: tensor \"%s\" has %zu elements (shape %s), caller expects %zu", f->path, t->name,
                        t->numel, s, numel);
  }
  const unsigned char *p = f->data + t->begin;
  size_t n = t->numel;
  switch (t->dtype) {
    case PB_ST_F32: memcpy(out, p, n * 4); break;
#define CONV(TYPE, EXPR)                          \
  for (size_t i = 0; i < n; i++) {                \
    TYPE v;                                       \
    memcpy(&v, p + i * sizeof(TYPE), sizeof(TYPE)); \
    out[i] = (EXPR);                              \
  }                                               \
  break;
    case PB_ST_F16: CONV(uint16_t, pb_f16_to_f32(v))
    case PB_ST_BF16: CONV(uint16_t, pb_bf16_to_f32(v))
    case PB_ST_F64: CONV(double, (float)v)
    case PB_ST_I64: CONV(int64_t, (float)v)
    case PB_ST_I32: CONV(int32_t, (float)v)
    case PB_ST_I16: CONV(int16_t, (float)v)
    case PB_ST_I8: CONV(int8_t, (float)v)
    case PB_ST_U64: CONV(uint64_t, (float)v)
    case PB_ST_U32: CONV(uint32_t, (float)v)
    case PB_ST_U16: CONV(uint16_t, (float)v)
    case PB_ST_U8: CONV(uint8_t, (float)v)
    case PB_ST_BOOL: CONV(uint8_t, v ? 1.0f : 0.0f)
#undef CONV
    default:
      return pb_set_error(PB_ERR_UNSUPPORTED, "%s: tensor \"%s\": dtype %s cannot be read as float", f->path, t->name,
                          pb_st_dtype_name(t->dtype));
  }
  return PB_OK;
}

int pb_st_read_f32_name(const pb_st_file *f, const char *name, float *out, size_t numel) {
  int i = pb_st_find(f, name);
  if (i < 0) return pb_set_error(PB_ERR_NOTFOUND, "%s: no tensor \"%s\"", f->path, name);
  return pb_st_read_f32(f, i, out, numel);
}

int pb_st_read_meta(const char *path, pb_kv **meta, int *n_meta) {
  *meta = NULL;
  *n_meta = 0;
  int fd;
  uint64_t size, hlen;
  unsigned char first8[8];
  int rc = open_checked(path, &fd, &size, &hlen, first8);
  if (rc) return rc;
  char *hdr = malloc((size_t)hlen + 1);
  if (!hdr) {
    close(fd);
    return pb_set_error(PB_ERR_NOMEM, "%s: out of memory", path);
  }
  size_t got = 0;
  while (got < hlen) {
    ssize_t r = pread(fd, hdr + got, (size_t)hlen - got, (off_t)(8 + got));
    if (r < 0 && errno == EINTR) continue;
    if (r <= 0) break;
    got += (size_t)r;
  }
  close(fd);
  if (got != hlen) {
    free(hdr);
    return pb_set_error(PB_ERR_IO, "%s: short read of the safetensors header", path);
  }
  hdr[hlen] = 0;
  rc = parse_header(path, hdr, (size_t)hlen, size - 8 - hlen, NULL, NULL, meta, n_meta);
  free(hdr);
  return rc;
}

/* ---------------------------------------------------------------- writer */

static int cmp_wname(const void *a, const void *b) {
  return strcmp((*(const pb_st_wtensor *const *)a)->name, (*(const pb_st_wtensor *const *)b)->name);
}

static int st_write(const char *path, const pb_kv *meta, int n_meta, const pb_st_wtensor *t, int n, pb_st_dtype dtype,
                    int no_replace) {
  if (dtype != PB_ST_F32 && dtype != PB_ST_F16)
    return pb_set_error(PB_ERR_UNSUPPORTED, "%s: can only write F32 or F16 (asked for %s)", path, pb_st_dtype_name(dtype));
  if (n < 0 || n_meta < 0) return pb_set_error(PB_ERR_ARG, "%s: negative tensor or metadata count", path);
  for (int i = 0; i < n_meta; i++) {
    if (!meta[i].key || !meta[i].value) return pb_set_error(PB_ERR_ARG, "%s: metadata entry %d has a NULL key or value", path, i);
    for (int j = 0; j < i; j++)
      if (strcmp(meta[i].key, meta[j].key) == 0) return pb_set_error(PB_ERR_ARG, "%s: metadata key \"%s\" given twice", path, meta[i].key);
  }
  const pb_st_wtensor **ord = malloc(((size_t)n + 1) * sizeof *ord);
  size_t *numel = malloc(((size_t)n + 1) * sizeof *numel);
  cJSON *root = cJSON_CreateObject();
  char *json = NULL;
  int rc = PB_OK;
  if (!ord || !numel || !root) { rc = pb_set_error(PB_ERR_NOMEM, "%s: out of memory", path); goto out; }
  for (int i = 0; i < n; i++) ord[i] = &t[i];
  qsort(ord, (size_t)n, sizeof *ord, cmp_wname);
  for (int i = 0; i < n; i++) {
    const pb_st_wtensor *w = ord[i];
    if (!w->name || !w->name[0] || strcmp(w->name, "__metadata__") == 0) {
      rc = pb_set_error(PB_ERR_ARG, "%s: bad tensor name \"%s\"", path, w->name ? w->name : "(null)");
      goto out;
    }
    if (i > 0 && strcmp(ord[i - 1]->name, w->name) == 0) {
      rc = pb_set_error(PB_ERR_ARG, "%s: tensor \"%s\" given twice", path, w->name);
      goto out;
    }
    if (w->ndim < 0 || w->ndim > PB_ST_MAX_DIMS || (w->ndim > 0 && !w->shape)) {
      rc = pb_set_error(PB_ERR_ARG, "%s: tensor \"%s\": bad rank %d", path, w->name, w->ndim);
      goto out;
    }
    size_t ne = 1;
    for (int k = 0; k < w->ndim; k++) {
      if (w->shape[k] < 0) { rc = pb_set_error(PB_ERR_ARG, "%s: tensor \"%s\": negative dimension", path, w->name); goto out; }
      ne *= (size_t)w->shape[k];
    }
    if (ne > 0 && !w->data) { rc = pb_set_error(PB_ERR_ARG, "%s: tensor \"%s\": NULL data", path, w->name); goto out; }
    numel[i] = ne;
  }
  /* header: __metadata__ first, then tensors in name order with consecutive offsets */
  if (n_meta > 0) {
    cJSON *m = cJSON_AddObjectToObject(root, "__metadata__");
    if (!m) { rc = pb_set_error(PB_ERR_NOMEM, "%s: out of memory", path); goto out; }
    for (int i = 0; i < n_meta; i++)
      if (!cJSON_AddStringToObject(m, meta[i].key, meta[i].value)) { rc = pb_set_error(PB_ERR_NOMEM, "%s: out of memory", path); goto out; }
  }
  size_t esize = pb_st_dtype_size(dtype);
  uint64_t off = 0;
  for (int i = 0; i < n; i++) {
    cJSON *e = cJSON_AddObjectToObject(root, ord[i]->name);
    cJSON *sh = e ? cJSON_AddArrayToObject(e, "shape") : NULL;
    cJSON *of = e ? cJSON_AddArrayToObject(e, "data_offsets") : NULL;
    if (!e || !sh || !of || !cJSON_AddStringToObject(e, "dtype", pb_st_dtype_name(dtype))) {
      rc = pb_set_error(PB_ERR_NOMEM, "%s: out of memory", path);
      goto out;
    }
    for (int k = 0; k < ord[i]->ndim; k++) cJSON_AddItemToArray(sh, cJSON_CreateNumber((double)ord[i]->shape[k]));
    uint64_t bytes = (uint64_t)numel[i] * esize;
    cJSON_AddItemToArray(of, cJSON_CreateNumber((double)off));
    cJSON_AddItemToArray(of, cJSON_CreateNumber((double)(off + bytes)));
    off += bytes;
  }
  json = cJSON_PrintUnformatted(root);
  if (!json) { rc = pb_set_error(PB_ERR_NOMEM, "%s: out of memory", path); goto out; }
  size_t jlen = strlen(json), hlen = (jlen + 7) / 8 * 8;
  unsigned char prefix[8];
  for (int i = 0; i < 8; i++) prefix[i] = (unsigned char)(((uint64_t)hlen >> (8 * i)) & 0xff);

  pb_atomic_file af;
  rc = pb_atomic_open(&af, path);
  if (rc) goto out;
  af.no_replace = no_replace;
  static const char spaces[8] = "        ";
  rc = pb_atomic_write(&af, prefix, 8);
  if (!rc) rc = pb_atomic_write(&af, json, jlen);
  if (!rc) rc = pb_atomic_write(&af, spaces, hlen - jlen);
  for (int i = 0; i < n && !rc; i++) {
    if (dtype == PB_ST_F32) {
      rc = pb_atomic_write(&af, ord[i]->data, numel[i] * 4);
    } else {
      uint16_t buf[4096];
      for (size_t j = 0; j < numel[i] && !rc; j += 4096) {
        size_t c = numel[i] - j < 4096 ? numel[i] - j : 4096;
        for (size_t q = 0; q < c; q++) buf[q] = pb_f32_to_f16(ord[i]->data[j + q]);
        rc = pb_atomic_write(&af, buf, c * 2);
      }
    }
  }
  if (rc) pb_atomic_abort(&af);
  else rc = pb_atomic_commit(&af);

out:
  free(json);
  cJSON_Delete(root);
  free(ord);
  free(numel);
  return rc;
}

int pb_st_write(const char *path, const pb_kv *meta, int n_meta, const pb_st_wtensor *t, int n, pb_st_dtype dtype) {
  return st_write(path, meta, n_meta, t, n, dtype, 0);
}

int pb_st_write_new(const char *path, const pb_kv *meta, int n_meta, const pb_st_wtensor *t, int n,
                    pb_st_dtype dtype) {
  return st_write(path, meta, n_meta, t, n, dtype, 1);
}
