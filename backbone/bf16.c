/* bf16 matrix products through oneDNN's matmul primitive (see backbone/bf16.h).
 *
 * - Operands are rounded to bf16 into compact buffers (activations per call, into scratch that
 *   grows and is kept; weights once per weight epoch, into a cache keyed by the weight's
 *   address and size), then one matmul primitive computes C in fp32 with fp32 accumulation.
 * - Primitives are cached per (dimensions, strides, alpha, beta, bias, thread count): creating
 *   one costs tens of microseconds, executing a cached one a few; oneDNN plans its work split for
 *   the thread count at creation, so a primitive made at 1 thread is not reused at 2.
 * - oneDNN's scratchpad is one buffer of ours (user mode), grown to the largest primitive's need.
 * - oneDNN threads with OpenMP, the same libgomp pool as the rest of the backbone, with
 *   omp_get_max_threads() threads (pb_set_threads sets it); calls come from outside parallel
 *   regions.
 * - One mutex guards the caches: concurrent callers serialise. */
#include "backbone/bf16.h"

#include <cpuid.h>
#include <immintrin.h>
#include <math.h>
#include <omp.h>
#include <oneapi/dnnl/dnnl.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "util/status.h"

static pb_precision g_prec = PB_PREC_FP32;
static char g_kernel[96] = "";
static char g_library[48] = "";
static pthread_mutex_t g_lock = PTHREAD_MUTEX_INITIALIZER;
static unsigned g_epoch = 1;
static long g_fallbacks;
static dnnl_engine_t g_engine;
static dnnl_stream_t g_stream;

int pb_precision_parse(const char *s, pb_precision *out) {
  if (s && !strcmp(s, "fp32")) return *out = PB_PREC_FP32, PB_OK;
  if (s && !strcmp(s, "bf16")) return *out = PB_PREC_BF16, PB_OK;
  return pb_set_error(PB_ERR_ARG, "precision must be fp32 or bf16 (got '%s')", s ? s : "");
}

const char *pb_precision_name(pb_precision p) { return p == PB_PREC_BF16 ? "bf16" : "fp32"; }

pb_precision pb_get_precision(void) { return g_prec; }

int pb_bf16_cpu_supported(void) {
  const char *no = getenv("PEFTBENCH_NO_BF16"); /* act as a CPU without bf16 (tests, comparisons) */
  if (no && *no && strcmp(no, "0")) return 0;
  unsigned a, b, c, d;
  int avx512bf16 = 0, amxbf16 = 0;
  if (__get_cpuid_count(7, 1, &a, &b, &c, &d)) avx512bf16 = (a >> 5) & 1;
  if (__get_cpuid_count(7, 0, &a, &b, &c, &d)) amxbf16 = (d >> 22) & 1;
  return avx512bf16 || amxbf16;
}

const char *pb_bf16_kernel(void) { return g_kernel; }

const char *pb_bf16_library(void) {
  if (!g_library[0]) {
    const dnnl_version_t *v = dnnl_version();
    snprintf(g_library, sizeof g_library, "oneDNN %d.%d.%d", v->major, v->minor, v->patch);
  }
  return g_library;
}

/* ------------------------------------------------------------------ rounding */

/* round to nearest even; NaN stays (quiet) NaN; subnormal inputs become signed zero, as the
 * vcvtneps2bf16 instruction does (it always treats denormals as zero) */
static inline uint16_t bf16_of(float f) {
  uint32_t u;
  memcpy(&u, &f, 4);
  if ((u & 0x7f800000u) == 0) return (uint16_t)((u >> 16) & 0x8000u);
  const uint32_t nan = (u & 0x7fffffffu) > 0x7f800000u;
  const uint32_t r = (u + 0x7fffu + ((u >> 16) & 1u)) >> 16;
  return (uint16_t)(nan ? (u >> 16) | 0x40u : r);
}

/* one AVX512-BF16 instruction per 16 floats (vcvtneps2bf16: round to nearest even, NaN kept
 * NaN), the same values as bf16_of; the scalar loop serves CPUs without it and the tail */
__attribute__((target("avx512f,avx512bf16,avx512vl"))) static void round_run_avx512bf16(uint16_t *out, const float *in,
                                                                                       size_t n) {
  size_t i = 0;
  for (; i + 16 <= n; i += 16) {
    const __m256bh h = _mm512_cvtneps_pbh(_mm512_loadu_ps(in + i));
    _mm256_storeu_si256((__m256i *)(out + i), (__m256i)h);
  }
  for (; i < n; i++) out[i] = bf16_of(in[i]);
}

static void round_run(uint16_t *out, const float *in, size_t n) {
  static int have = -1;
  if (have < 0) have = __builtin_cpu_supports("avx512bf16") ? 1 : 0;
  if (have) {
    round_run_avx512bf16(out, in, n);
    return;
  }
  for (size_t i = 0; i < n; i++) out[i] = bf16_of(in[i]);
}

/* out[rows, cols] (compact) = bf16(in[rows, cols] with leading dimension ld) */
static void round_matrix(uint16_t *out, const float *in, int rows, int cols, int ld) {
  const size_t n = (size_t)rows * cols;
  if (ld == cols) {
    if (n < 65536) {
      round_run(out, in, n);
      return;
    }
#pragma omp parallel
    {
      const int t = omp_get_thread_num(), k = omp_get_num_threads();
      const size_t lo = (n * t / k) & ~(size_t)31, hi = t == k - 1 ? n : (n * (t + 1) / k) & ~(size_t)31;
      if (hi > lo) round_run(out + lo, in + lo, hi - lo);
    }
    return;
  }
#pragma omp parallel for schedule(static) if (n >= 65536)
  for (int r = 0; r < rows; r++) round_run(out + (size_t)r * cols, in + (size_t)r * ld, (size_t)cols);
}

void pb_bf16_round(float *out, const float *in, size_t n) {
  for (size_t i = 0; i < n; i++) {
    const uint32_t u = (uint32_t)bf16_of(in[i]) << 16;
    memcpy(out + i, &u, 4);
  }
}

int pb_bf16_round_check(const float *in, size_t n) {
  uint16_t *a = malloc(n * sizeof *a);
  if (!a) return -1;
  round_run(a, in, n);
  int bad = 0;
  for (size_t i = 0; i < n; i++) bad += a[i] != bf16_of(in[i]);
  free(a);
  return bad;
}

/* ------------------------------------------------------------------ scratch and weight cache */

typedef struct {
  uint16_t *p;
  size_t cap; /* elements */
} buf16;

static buf16 g_sa, g_sb;
/* what g_sa holds (pb_bf16_gemm's A): source, stored shape and leading dimension */
static const float *g_sa_src;
static int g_sa_rows, g_sa_cols, g_sa_ld;

/* one scratchpad for every primitive (user mode): oneDNN's own mode allocated fresh pages at
 * every execution here (page faults and zeroing measured at 18% of a bf16 mini train step) */
static void *g_scratch;
static size_t g_scratch_cap;

static uint16_t *buf_get(buf16 *b, size_t n) {
  if (n > b->cap) {
    uint16_t *q = realloc(b->p, n * sizeof *q);
    if (!q) return NULL;
    b->p = q, b->cap = n;
  }
  return b->p;
}

typedef struct {
  const float *src;
  size_t n;
  int rows, cols;
  unsigned epoch;
  uint64_t print;
  uint16_t *bf;
} wentry;

#define PB_WCACHE_MAX 1024
static wentry g_w[PB_WCACHE_MAX];
static int g_nw;

/* 16 values spread over the matrix [rows, cols] (leading dimension ld): over the flat array when
 * it is contiguous, else along the diagonal from the first row's first value to the last row's
 * last, so that every row band is sampled, never the padding */
static uint64_t fingerprint(const float *x, int rows, int cols, int ld) {
  const size_t n = (size_t)rows * cols;
  uint64_t h = 1469598103934665603ull;
  for (int i = 0; i < 16; i++) {
    size_t at;
    if (ld == cols) at = n > 1 ? (size_t)((double)(n - 1) * i / 15.0) : 0;
    else at = (size_t)((double)(rows - 1) * i / 15.0) * (size_t)ld + (size_t)((double)(cols - 1) * i / 15.0);
    uint32_t u;
    memcpy(&u, x + at, 4);
    h = (h ^ u) * 1099511628211ull;
  }
  return h;
}

void pb_bf16_weights_changed(void) {
  pthread_mutex_lock(&g_lock);
  g_epoch++;
  pthread_mutex_unlock(&g_lock);
}

/* the bf16 copy of weight B[rows, cols] (leading dimension ld), rounded again when stale */
static const uint16_t *weight_bf16(const float *B, int rows, int cols, int ld) {
  const size_t n = (size_t)rows * cols;
  wentry *e = NULL;
  for (int i = 0; i < g_nw; i++)
    if (g_w[i].src == B && g_w[i].n == n && g_w[i].rows == rows) {
      e = &g_w[i];
      break;
    }
  const uint64_t fp = fingerprint(B, rows, cols, ld);
  if (e && e->epoch == g_epoch && e->print == fp) return e->bf;
  if (!e) {
    if (g_nw == PB_WCACHE_MAX) { /* a full cache starts over */
      for (int i = 0; i < g_nw; i++) free(g_w[i].bf);
      g_nw = 0;
    }
    e = &g_w[g_nw];
    *e = (wentry){.src = B, .n = n, .rows = rows, .cols = cols, .bf = malloc(n * sizeof(uint16_t))};
    if (!e->bf) return NULL;
    g_nw++;
  }
  round_matrix(e->bf, B, rows, cols, ld);
  e->epoch = g_epoch, e->print = fp;
  return e->bf;
}

size_t pb_bf16_cache_bytes(void) {
  pthread_mutex_lock(&g_lock);
  size_t s = (g_sa.cap + g_sb.cap) * sizeof(uint16_t) + g_scratch_cap;
  for (int i = 0; i < g_nw; i++) s += g_w[i].n * sizeof(uint16_t);
  pthread_mutex_unlock(&g_lock);
  return s;
}

/* ------------------------------------------------------------------ primitives */

/* A matmul of nd = 2 or 4 dimensions: C[b0,b1][M,N] = alpha A[b0,b1][M,K] B[b0,b1][K,N] + beta C
 * (+ bias[N]), every operand plain with arbitrary strides (elements, outermost first). 2-D
 * products use the last two dims/strides. */
typedef struct {
  int nd, bias;
  int threads;     /* omp_get_max_threads() at creation: oneDNN plans its work split then */
  long dims[4], K; /* b0, b1, M, N */
  long as[4], bs[4], cs[4];
  float alpha, beta;
} pkey;

typedef struct {
  pkey k;
  dnnl_primitive_t prim;
  dnnl_memory_t ma, mb, mc, mbias, mscratch;
  size_t scratch_bytes;
} pentry;

#define PB_PCACHE_MAX 128
static pentry g_p[PB_PCACHE_MAX];
static int g_np, g_pnext;

static void pentry_free(pentry *e) {
  if (e->prim) dnnl_primitive_destroy(e->prim);
  if (e->ma) dnnl_memory_destroy(e->ma);
  if (e->mb) dnnl_memory_destroy(e->mb);
  if (e->mc) dnnl_memory_destroy(e->mc);
  if (e->mbias) dnnl_memory_destroy(e->mbias);
  if (e->mscratch) dnnl_memory_destroy(e->mscratch);
  memset(e, 0, sizeof *e);
}

void pb_bf16_release(void) {
  pthread_mutex_lock(&g_lock);
  for (int i = 0; i < g_np; i++) pentry_free(&g_p[i]);
  g_np = g_pnext = 0;
  for (int i = 0; i < g_nw; i++) free(g_w[i].bf);
  g_nw = 0;
  free(g_sa.p), free(g_sb.p);
  g_sa = g_sb = (buf16){0};
  g_sa_src = NULL;
  free(g_scratch);
  g_scratch = NULL, g_scratch_cap = 0;
  pthread_mutex_unlock(&g_lock);
}

static int dnnl_fail(const char *what, dnnl_status_t s) {
  return pb_set_error(PB_ERR_LIB, "bf16: oneDNN %s failed (status %d)", what, (int)s);
}

#define DN(call, what)                                   \
  do {                                                   \
    dnnl_status_t s_ = (call);                           \
    if (s_ != dnnl_success) {                            \
      rc = dnnl_fail(what, s_);                          \
      goto out;                                          \
    }                                                    \
  } while (0)

static int engine_get(void) {
  if (g_engine) return PB_OK;
  dnnl_status_t s = dnnl_engine_create(&g_engine, dnnl_cpu, 0);
  if (s != dnnl_success) return g_engine = NULL, dnnl_fail("engine creation", s);
  s = dnnl_stream_create(&g_stream, g_engine, dnnl_stream_default_flags);
  if (s != dnnl_success) {
    dnnl_engine_destroy(g_engine), g_engine = NULL;
    return dnnl_fail("stream creation", s);
  }
  return PB_OK;
}

/* creates the primitive of key k into e (memories bound later, per call); *impl (optional):
 * the implementation oneDNN chose, copied into g_kernel */
static int pentry_make(pentry *e, const pkey *k, const char **impl) {
  int rc = PB_OK;
  dnnl_primitive_attr_t attr = NULL;
  dnnl_post_ops_t po = NULL;
  dnnl_primitive_desc_t pd = NULL;
  dnnl_memory_desc_t a, b, c, bias;
  const int nd = k->nd, o = 4 - nd; /* 2-D: the last two entries */
  dnnl_dims_t da, db, dc, sa, sb, sc, dbias, sbias;
  for (int i = 0; i < nd; i++) {
    const int j = o + i;
    da[i] = db[i] = dc[i] = j < 2 ? k->dims[j] : 0;
    sa[i] = k->as[j], sb[i] = k->bs[j], sc[i] = k->cs[j];
    dbias[i] = 1, sbias[i] = k->dims[3];
  }
  da[nd - 2] = k->dims[2], da[nd - 1] = k->K;
  db[nd - 2] = k->K, db[nd - 1] = k->dims[3];
  dc[nd - 2] = k->dims[2], dc[nd - 1] = k->dims[3];
  dbias[nd - 1] = k->dims[3], sbias[nd - 1] = 1;
  memset(e, 0, sizeof *e);
  e->k = *k;
  DN(dnnl_memory_desc_init_by_strides(&a, nd, da, dnnl_bf16, sa), "source descriptor");
  DN(dnnl_memory_desc_init_by_strides(&b, nd, db, dnnl_bf16, sb), "weights descriptor");
  DN(dnnl_memory_desc_init_by_strides(&c, nd, dc, dnnl_f32, sc), "destination descriptor");
  DN(dnnl_memory_desc_init_by_strides(&bias, nd, dbias, dnnl_f32, sbias), "bias descriptor");
  dnnl_matmul_desc_t md;
  DN(dnnl_matmul_desc_init(&md, &a, &b, k->bias ? &bias : NULL, &c), "matmul descriptor");
  DN(dnnl_primitive_attr_create(&attr), "attribute creation");
  DN(dnnl_primitive_attr_set_scratchpad_mode(attr, dnnl_scratchpad_mode_user), "scratchpad mode");
  if (k->alpha != 1.0f) DN(dnnl_primitive_attr_set_output_scales(attr, 1, 0, &k->alpha), "output scale");
  if (k->beta != 0.0f) {
    DN(dnnl_post_ops_create(&po), "post-op creation");
    DN(dnnl_post_ops_append_sum(po, k->beta), "sum post-op");
    DN(dnnl_primitive_attr_set_post_ops(attr, po), "post-ops");
  }
  DN(dnnl_primitive_desc_create(&pd, &md, attr, g_engine, NULL), "matmul primitive descriptor");
  const char *name = NULL;
  DN(dnnl_primitive_desc_query(pd, dnnl_query_impl_info_str, 0, &name), "implementation query");
  if (!strncmp(name, "ref", 3)) { /* oneDNN's reference loops: far slower than fp32 sgemm */
    rc = pb_set_error(PB_ERR_UNSUPPORTED, "bf16: %s has only its reference kernel (%s) for a %ldx%ldx%ld product",
                      pb_bf16_library(), name, k->dims[2], k->dims[3], k->K);
    goto out;
  }
  if (impl) {
    snprintf(g_kernel, sizeof g_kernel, "%s", name);
    *impl = g_kernel;
  }
  DN(dnnl_primitive_create(&e->prim, pd), "matmul primitive");
  DN(dnnl_memory_create(&e->ma, &a, g_engine, DNNL_MEMORY_NONE), "source memory");
  DN(dnnl_memory_create(&e->mb, &b, g_engine, DNNL_MEMORY_NONE), "weights memory");
  DN(dnnl_memory_create(&e->mc, &c, g_engine, DNNL_MEMORY_NONE), "destination memory");
  if (k->bias) DN(dnnl_memory_create(&e->mbias, &bias, g_engine, DNNL_MEMORY_NONE), "bias memory");
  const dnnl_memory_desc_t *smd = dnnl_primitive_desc_query_md(pd, dnnl_query_scratchpad_md, 0);
  e->scratch_bytes = smd ? dnnl_memory_desc_get_size(smd) : 0;
  if (e->scratch_bytes) DN(dnnl_memory_create(&e->mscratch, smd, g_engine, DNNL_MEMORY_NONE), "scratchpad memory");
out:
  if (pd) dnnl_primitive_desc_destroy(pd);
  if (po) dnnl_post_ops_destroy(po);
  if (attr) dnnl_primitive_attr_destroy(attr);
  if (rc != PB_OK) pentry_free(e);
  return rc;
}

static pentry *pentry_get(const pkey *k, int *rc) {
  for (int i = 0; i < g_np; i++)
    if (!memcmp(&g_p[i].k, k, sizeof *k)) return &g_p[i];
  const int append = g_np < PB_PCACHE_MAX;
  pentry *e = append ? &g_p[g_np] : &g_p[g_pnext];
  if (!append) { /* round-robin eviction */
    g_pnext = (g_pnext + 1) % PB_PCACHE_MAX;
    pentry_free(e);
  }
  if ((*rc = pentry_make(e, k, NULL)) != PB_OK) return NULL;
  if (append) g_np++;
  return e;
}

/* runs e over bf16 operands a16, b16 into C (fp32), with bias (or NULL) */
static int pentry_run(pentry *e, const uint16_t *a16, const uint16_t *b16, float *C, const float *bias) {
  int rc = PB_OK;
  dnnl_memory_set_data_handle(e->ma, (void *)a16);
  dnnl_memory_set_data_handle(e->mb, (void *)b16);
  dnnl_memory_set_data_handle(e->mc, C);
  dnnl_exec_arg_t args[5] = {{DNNL_ARG_SRC, e->ma}, {DNNL_ARG_WEIGHTS, e->mb}, {DNNL_ARG_DST, e->mc}};
  int nargs = 3;
  if (e->scratch_bytes) {
    if (e->scratch_bytes > g_scratch_cap) {
      free(g_scratch);
      g_scratch_cap = 0;
      if (!(g_scratch = aligned_alloc(64, (e->scratch_bytes + 63) & ~(size_t)63)))
        return pb_set_error(PB_ERR_NOMEM, "bf16: out of memory for a %zu-byte scratchpad", e->scratch_bytes);
      g_scratch_cap = e->scratch_bytes;
    }
    dnnl_memory_set_data_handle(e->mscratch, g_scratch);
    args[nargs++] = (dnnl_exec_arg_t){DNNL_ARG_SCRATCHPAD, e->mscratch};
  }
  if (bias) {
    dnnl_memory_set_data_handle(e->mbias, (void *)bias);
    args[nargs++] = (dnnl_exec_arg_t){DNNL_ARG_BIAS, e->mbias};
  }
  dnnl_status_t s = dnnl_primitive_execute(e->prim, g_stream, nargs, args);
  if (s == dnnl_success) s = dnnl_stream_wait(g_stream);
  if (s != dnnl_success) rc = dnnl_fail("matmul execution", s);
  return rc;
}

static void note_fallback(int rc) {
  if (rc != PB_OK && g_fallbacks++ == 0)
    fprintf(stderr, "peftbench: %s; this product and any other that fails runs in fp32 (counted in the record)\n",
            pb_last_error());
}

int pb_bf16_gemm(int ta, int tb, int M, int N, int K, float alpha, const float *A, int lda, const float *B, int ldb,
                 float beta, float *C, int ldc, const float *bias, int flags) {
  const int b_weight = flags & PB_BF16_B_WEIGHT;
  if (M <= 0 || N <= 0) return PB_OK;
  if (bias && (beta != 0.0f || alpha != 1.0f)) return pb_set_error(PB_ERR_ARG, "bf16 gemm: a bias needs alpha 1 and beta 0");
  int rc = PB_OK;
  pthread_mutex_lock(&g_lock);
  if ((rc = engine_get()) != PB_OK) goto done;
  pkey k;
  memset(&k, 0, sizeof k); /* padding compared by memcmp */
  /* the operands are rounded into compact buffers: A [M,K] (or stored [K,M]), B [K,N] (or [N,K]) */
  k.nd = 2, k.bias = bias != NULL, k.K = K, k.alpha = alpha, k.beta = beta, k.threads = omp_get_max_threads();
  k.dims[0] = k.dims[1] = 1, k.dims[2] = M, k.dims[3] = N;
  k.as[2] = ta ? 1 : K, k.as[3] = ta ? M : 1;
  k.bs[2] = tb ? 1 : N, k.bs[3] = tb ? K : 1;
  k.cs[2] = ldc, k.cs[3] = 1;
  pentry *e = pentry_get(&k, &rc);
  if (!e) goto done;
  const int ar = ta ? K : M, ac = ta ? M : K, br = tb ? N : K, bc = tb ? K : N;
  uint16_t *a16 = buf_get(&g_sa, (size_t)ar * ac);
  const uint16_t *b16 = b_weight ? weight_bf16(B, br, bc, ldb) : buf_get(&g_sb, (size_t)br * bc);
  if (!a16 || !b16) {
    rc = pb_set_error(PB_ERR_NOMEM, "bf16 gemm: out of memory for %dx%dx%d operands", M, N, K);
    goto done;
  }
  const int again = (flags & PB_BF16_A_AGAIN) && g_sa_src == A && g_sa_rows == ar && g_sa_cols == ac && g_sa_ld == lda;
  if (!again) {
    round_matrix(a16, A, ar, ac, lda);
    g_sa_src = A, g_sa_rows = ar, g_sa_cols = ac, g_sa_ld = lda;
  }
  if (!b_weight) round_matrix((uint16_t *)b16, B, br, bc, ldb);
  rc = pentry_run(e, a16, b16, C, bias);
done:
  note_fallback(rc);
  pthread_mutex_unlock(&g_lock);
  return rc;
}

/* elements an operand of dims {b0, b1, rows, cols} and strides s spans from its first one */
static size_t span(const long dims[4], const long s[4]) {
  size_t n = 1;
  for (int i = 0; i < 4; i++) n += (size_t)(dims[i] - 1) * (size_t)s[i];
  return n;
}

int pb_bf16_bmm(const long dims[4], long K, float alpha, const float *A, const long as[4], const float *B,
                const long bs[4], float beta, float *C, const long cs[4], int dry) {
  for (int i = 0; i < 4; i++)
    if (dims[i] <= 0) return PB_OK;
  if (K <= 0) return pb_set_error(PB_ERR_ARG, "bf16 bmm: K must be > 0");
  int rc = PB_OK;
  pthread_mutex_lock(&g_lock);
  if ((rc = engine_get()) != PB_OK) goto done;
  pkey k;
  memset(&k, 0, sizeof k);
  k.nd = 4, k.K = K, k.alpha = alpha, k.beta = beta, k.threads = omp_get_max_threads();
  memcpy(k.dims, dims, sizeof k.dims), memcpy(k.as, as, sizeof k.as), memcpy(k.bs, bs, sizeof k.bs);
  memcpy(k.cs, cs, sizeof k.cs);
  pentry *e = pentry_get(&k, &rc);
  if (!e) goto done;
  const long adims[4] = {dims[0], dims[1], dims[2], K}, bdims[4] = {dims[0], dims[1], K, dims[3]};
  const size_t na = span(adims, as), nb = span(bdims, bs);
  uint16_t *a16 = buf_get(&g_sa, na), *b16 = buf_get(&g_sb, nb);
  if (!a16 || !b16) {
    rc = pb_set_error(PB_ERR_NOMEM, "bf16 bmm: out of memory for %zu + %zu operand values", na, nb);
    goto done;
  }
  if (dry) goto done;
  g_sa_src = NULL;
  round_matrix(a16, A, 1, (int)na, (int)na);
  round_matrix(b16, B, 1, (int)nb, (int)nb);
  rc = pentry_run(e, a16, b16, C, NULL);
done:
  note_fallback(rc); /* a failed preparation sends the whole attention call to fp32: a fallback too */
  pthread_mutex_unlock(&g_lock);
  return rc;
}

long pb_bf16_fallbacks(void) { return g_fallbacks; }

int pb_set_precision(pb_precision p) {
  if (p == PB_PREC_FP32) return g_prec = PB_PREC_FP32, PB_OK;
  if (p != PB_PREC_BF16) return pb_set_error(PB_ERR_ARG, "precision: unknown value %d", (int)p);
  if (!pb_bf16_cpu_supported())
    return pb_set_error(PB_ERR_UNSUPPORTED,
                        "--precision bf16: this CPU has neither avx512_bf16 nor amx_bf16 (use --precision fp32)");
  int rc = PB_OK;
  pthread_mutex_lock(&g_lock);
  if ((rc = engine_get()) == PB_OK) {
    /* a probe primitive: which implementation oneDNN picks for a linear layer's shape */
    pentry probe;
    pkey k;
    memset(&k, 0, sizeof k);
    k.nd = 2, k.K = 256, k.alpha = 1.0f, k.dims[0] = k.dims[1] = 1, k.dims[2] = k.dims[3] = 256;
    k.as[2] = 256, k.as[3] = 1, k.bs[2] = 1, k.bs[3] = 256, k.cs[2] = 256, k.cs[3] = 1;
    const char *impl = NULL;
    if ((rc = pentry_make(&probe, &k, &impl)) == PB_OK) pentry_free(&probe);
  }
  pthread_mutex_unlock(&g_lock);
  if (rc == PB_OK) g_prec = PB_PREC_BF16;
  else g_kernel[0] = 0;
  return rc;
}
