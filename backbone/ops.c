/* Layer kernels (fast versions): forward and backward of every op in backbone/ops.h.
 *
 * - GEMMs go to OpenBLAS (cblas_sgemm, row-major); weights are w[OC,IC] as in HF.
 * - Backward kernels accumulate (+=); a NULL gradient skips its work and its op count.
 * - Every kernel charges the counts of the table in ops.h with pb_opc_add, once per call,
 *   from the calling thread (never inside a parallel region), BEFORE its work; in counting-only
 *   mode (pb_opc_counting(), counters/opcount.h) it then returns without computing or touching
 *   any buffer: one predictable branch per call on the real path.
 * - Attention parallelises over (batch, head) pairs with OpenMP when pb_get_threads() > 1 and
 *   runs BLAS single-threaded inside, so OpenMP and the OpenBLAS pool never run together.
 * - All threading is OpenMP: linear GEMMs split their output over the threads as
 *   single-threaded OpenBLAS calls, and OpenBLAS's own pool stays at one thread (policy below,
 *   PB_GEMM_SPLIT_MAX); large elementwise kernels can split too (PB_ELEMWISE_PAR_MIN).
 * - Dropout is counter-based (pb_dropout_keep): backward regenerates the mask from the seed;
 *   the seed hash is taken once per call (keep_h_), the index hash inlined.
 * - GELU uses a vectorisable erf (A&S 7.1.26, |err| <= 1.5e-7, as ATen's vectorised erf) and
 *   expf (Cephes polynomial), built for AVX-512 / AVX2 / baseline with target_clones.
 * - matmul_fwd writes the bias first and lets the GEMM accumulate onto it (beta = 1).
 * - Reductions (layernorm mean/var, softmax sums, losses) accumulate in float except the
 *   losses, which accumulate in double.
 * The naive twins (plain loops, no BLAS, no threads) live in backbone/ops_naive.c.
 */
#include "backbone/ops.h"

#include <cblas.h>
#include <math.h>
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "backbone/bf16.h"
#include "backbone/blas.h"
#include "util/rng.h"
#include "util/status.h"
#include "counters/opcount.h"

/* ------------------------------------------------------------------ threading */

static int g_threads = 0; /* 0 = not yet decided */

static int blas_pool_threads(void);

void pb_set_threads(int n) {
  pb_blas_init(); /* no-op after the load-time check; links backbone/blas.c into every binary */
  if (n < 1) n = 1;
  g_threads = n;
  omp_set_num_threads(n);
  openblas_set_num_threads(blas_pool_threads());
}

int pb_get_threads(void) {
  if (g_threads == 0) {
    int n = 0;
    const char *e = getenv("OPENBLAS_NUM_THREADS");
    if (e && *e) n = atoi(e);
    if (n < 1) n = omp_get_num_procs();
    pb_set_threads(n);
  }
  return g_threads;
}

/* ------------------------------------------------------------------ GEMM threading policy */

/* One thread pool, not two. By default every GEMM of at least PB_GEMM_SPLIT_MIN_MACS runs as
 * one single-threaded OpenBLAS call per OpenMP thread, each on a slice of the output (rows of
 * op(A) or columns of op(B), whichever dimension is larger), and OpenBLAS's own pool stays at
 * one thread. With both pools active, the idle one spins (OpenBLAS workers sched_yield for up
 * to 2^28 cycles after a call, libgomp workers spin after a region) on the core the other one
 * needs: on a 2-core VM that made bert-base batch-1 inference 1.45x slower (0.216 s vs 0.149 s)
 * and, against PB_GEMM_SPLIT_MAX=128, mini inference 1.65x and bert-base batch-1 full steps 2x
 * slower (README, Performance: Threads).
 * PB_GEMM_SPLIT_MAX (env, read once) restores the older policy: only GEMMs whose smaller weight
 * dimension is <= the limit are split that way, the others run on OpenBLAS's pool of
 * pb_get_threads() threads (e.g. 128; 0 = OpenBLAS's pool for every GEMM). With a core busy
 * elsewhere, static splits wait on the slow core: PB_GEMM_SPLIT_MAX=0 may then be faster. */
static int g_split_max = -2; /* -2 = not read yet, -1 = split every GEMM (the default; also
                                PB_GEMM_SPLIT_MAX=-1) */

/* GEMMs below this many MACs stay one single-threaded call: splitting them costs more than it
 * saves (LoRA's rank-8 products at bert-base measured up to 1.7x slower when split). */
#define PB_GEMM_SPLIT_MIN_MACS (1L << 23)

static int split_max(void) {
  if (g_split_max == -2) {
    const char *e = getenv("PB_GEMM_SPLIT_MAX");
    g_split_max = e && *e ? atoi(e) : -1;
    if (g_split_max < -1) g_split_max = -1;
  }
  return g_split_max;
}

/* threads of OpenBLAS's own pool: 1 when this file splits every GEMM itself */
static int blas_pool_threads(void) { return split_max() < 0 ? 1 : (g_threads > 0 ? g_threads : 1); }

/* Around an OpenMP region whose threads call BLAS: OpenBLAS's pool goes to one thread (when it
 * has more) and back afterwards. blas_serial_begin returns what blas_serial_end restores. */
static int blas_serial_begin(void) {
  const int pool = blas_pool_threads();
  if (pool != 1) openblas_set_num_threads(1);
  return pool;
}

static void blas_serial_end(int pool) {
  if (pool != 1) openblas_set_num_threads(pool);
}

static int split_gemm(int dim_a, int dim_b, int rows) {
  const int lim = split_max();
  return pb_get_threads() > 1 && (lim < 0 || (dim_a < dim_b ? dim_a : dim_b) <= lim) &&
         (long)dim_a * dim_b * rows >= PB_GEMM_SPLIT_MIN_MACS;
}

/* C[rows m0..m1, cols n0..n1] = bias[n0..n1] on every row */
static void fill_bias(float *C, int ldc, const float *bias, int m0, int m1, int n0, int n1) {
  for (int m = m0; m < m1; m++) memcpy(C + (size_t)m * ldc + n0, bias + n0, (size_t)(n1 - n0) * sizeof(float));
}

/* C[M,N] = alpha op(A) op(B) + beta C, row-major, with the larger of M and N split over the
 * threads (single-threaded BLAS inside). op(A) rows are A rows (NoTrans) or A columns (Trans);
 * op(B) columns are B columns (NoTrans) or B rows (Trans). Column slices start on multiples of
 * 16 floats (one cache line). A non-NULL bias[N] is first written into each thread's slice of C
 * (by that thread, so the GEMM then finds it in its cache), and beta must be 1. */
static void sgemm_split(enum CBLAS_TRANSPOSE ta, enum CBLAS_TRANSPOSE tb, int M, int N, int K, float alpha,
                        const float *A, int lda, const float *B, int ldb, float beta, float *C, int ldc,
                        const float *bias) {
  const int nthr = pb_get_threads(), by_rows = M >= N, pool = blas_serial_begin();
#pragma omp parallel num_threads(nthr)
  {
    const int t = omp_get_thread_num(), nt = omp_get_num_threads();
    if (by_rows) {
      const int m0 = (int)((long)M * t / nt), m1 = (int)((long)M * (t + 1) / nt);
      if (m1 > m0) {
        if (bias) fill_bias(C, ldc, bias, m0, m1, 0, N);
        const float *As = ta == CblasNoTrans ? A + (size_t)m0 * lda : A + m0;
        cblas_sgemm(CblasRowMajor, ta, tb, m1 - m0, N, K, alpha, As, lda, B, ldb, beta, C + (size_t)m0 * ldc, ldc);
      }
    } else {
      int n0 = (int)((long)N * t / nt), n1 = (int)((long)N * (t + 1) / nt);
      n0 = t == 0 ? 0 : (n0 + 8) & ~15, n1 = t == nt - 1 ? N : (n1 + 8) & ~15;
      if (n1 > n0) {
        if (bias) fill_bias(C, ldc, bias, 0, M, n0, n1);
        const float *Bs = tb == CblasNoTrans ? B + n0 : B + (size_t)n0 * ldb;
        cblas_sgemm(CblasRowMajor, ta, tb, M, n1 - n0, K, alpha, A, lda, Bs, ldb, beta, C + n0, ldc);
      }
    }
  }
  blas_serial_end(pool);
}

/* the one place the linear kernels call BLAS: picks the split or one call; bias as in
 * sgemm_split (NULL: none) */
static void sgemm_(int split, enum CBLAS_TRANSPOSE ta, enum CBLAS_TRANSPOSE tb, int M, int N, int K, float alpha,
                   const float *A, int lda, const float *B, int ldb, float beta, float *C, int ldc,
                   const float *bias) {
  if (split && (M >= 16 || N >= 32)) {
    sgemm_split(ta, tb, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc, bias);
  } else {
    if (bias) fill_bias(C, ldc, bias, 0, M, 0, N);
    cblas_sgemm(CblasRowMajor, ta, tb, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
  }
}

/* the linear kernels' products in the process precision (backbone/bf16.h): bf16 through
 * oneDNN, else sgemm_. flags: PB_BF16_B_WEIGHT / PB_BF16_A_AGAIN (backbone/bf16.h). A bf16 call
 * that fails (oneDNN refused it, out of memory) runs in fp32 and is counted by
 * pb_bf16_fallbacks(). */
static void linear_gemm_(int split, enum CBLAS_TRANSPOSE ta, enum CBLAS_TRANSPOSE tb, int M, int N, int K,
                         float alpha, const float *A, int lda, const float *B, int ldb, float beta, float *C, int ldc,
                         const float *bias, int flags) {
  if (pb_get_precision() == PB_PREC_BF16 &&
      pb_bf16_gemm(ta == CblasTrans, tb == CblasTrans, M, N, K, alpha, A, lda, B, ldb, bias ? 0.0f : beta, C, ldc, bias,
                   flags) == 0)
    return;
  sgemm_(split, ta, tb, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc, bias);
}

/* ------------------------------------------------------------------ elementwise threading */

/* Large elementwise/row kernels (GELU, LayerNorm, dropout, add) split their range over the
 * threads with OpenMP between GEMMs (never inside one). PB_ELEMWISE_PAR_MIN (env, read once):
 * the smallest element count worth splitting; 0 keeps them serial. Default 65536: in-process A/B
 * (bench_backbone --ab PB_ELEMWISE_PAR_MIN=65536, median of 15 paired steps, quiet 2-core VM)
 * measured 0.91x the time for tiny inference, 0.91x tiny full steps, 0.93x mini inference,
 * 0.95x mini full steps, 0.97-0.98x bert-base inference (262144 and 16384: no better). */
#define PB_ELEMWISE_PAR_MIN_DEFAULT 65536
static long g_elem_min = -1;

static int elem_threads(size_t work) {
  if (g_elem_min < 0) {
    const char *e = getenv("PB_ELEMWISE_PAR_MIN");
    g_elem_min = e && *e ? atol(e) : PB_ELEMWISE_PAR_MIN_DEFAULT;
  }
  const int t = pb_get_threads();
  return t > 1 && g_elem_min > 0 && work >= (size_t)g_elem_min ? t : 1;
}

void pb_ops_reload_policy(void) {
  g_split_max = -2;
  g_elem_min = -1;
  if (g_threads > 0) openblas_set_num_threads(blas_pool_threads());
}

/* runs BODY with [lo, hi) over [0, n) — split across threads (chunk edges on multiples of 16)
 * when `work` elements are worth it, else once over everything */
#define PB_PAR_RANGE(n, work, lo, hi, BODY)                                                        \
  do {                                                                                             \
    const int nt_ = elem_threads(work);                                                            \
    if (nt_ > 1) {                                                                                 \
      _Pragma("omp parallel num_threads(nt_)") {                                                   \
        const int t_ = omp_get_thread_num(), k_ = omp_get_num_threads();                           \
        const size_t lo = ((size_t)(n) * (size_t)t_ / (size_t)k_) & ~(size_t)15;                   \
        const size_t hi = t_ == k_ - 1 ? (size_t)(n) : ((size_t)(n) * (size_t)(t_ + 1) / (size_t)k_) & ~(size_t)15; \
        BODY;                                                                                      \
      }                                                                                            \
    } else {                                                                                       \
      const size_t lo = 0, hi = (size_t)(n);                                                       \
      BODY;                                                                                        \
    }                                                                                              \
  } while (0)

/* ------------------------------------------------------------------ linear */

void pb_matmul_fwd(float *out, const float *inp, const float *w, const float *b, int N, int IC, int OC) {
  if (N <= 0 || OC <= 0) return;
  pb_opc_add(PB_OPK_MAC, (uint64_t)N * IC * OC);
  if (b) pb_opc_add(PB_OPK_FLOP, (uint64_t)N * OC);
  if (pb_opc_counting()) return;
  (void)pb_get_threads();
  /* the bias is written first (by the thread that computes those outputs) and the GEMM
   * accumulates onto it (beta = 1): one write pass instead of OpenBLAS's zeroing pass plus a
   * read-modify-write bias pass */
  if (IC > 0)
    linear_gemm_(split_gemm(IC, OC, N), CblasNoTrans, CblasTrans, N, OC, IC, 1.0f, inp, IC, w, IC, b ? 1.0f : 0.0f, out,
                 OC, b, PB_BF16_B_WEIGHT);
  else if (b)
    fill_bias(out, OC, b, 0, N, 0, OC);
  else
    memset(out, 0, (size_t)N * OC * sizeof(float));
}

void pb_matmul_bwd(float *dinp, float *dw, float *db, const float *dout, const float *inp, const float *w,
                   int N, int IC, int OC) {
  if (N <= 0 || OC <= 0) return;
  const uint64_t macs = (dinp ? 1u : 0u) * (uint64_t)N * IC * OC + (dw ? 1u : 0u) * (uint64_t)N * IC * OC;
  if (macs) pb_opc_add(PB_OPK_MAC, macs);
  if (db) pb_opc_add(PB_OPK_FLOP, (uint64_t)N * OC);
  if (pb_opc_counting()) return;
  (void)pb_get_threads();
  if (dinp && IC > 0) {
    /* dinp[N,IC] += dout[N,OC] @ w[OC,IC] */
    linear_gemm_(split_gemm(IC, OC, N), CblasNoTrans, CblasNoTrans, N, IC, OC, 1.0f, dout, OC, w, IC, 1.0f, dinp, IC, NULL,
                 PB_BF16_B_WEIGHT);
  }
  if (dw && IC > 0) {
    /* dw[OC,IC] += dout^T[OC,N] @ inp[N,IC] */
    /* dout was just rounded for dinp: the bf16 path reuses it */
    linear_gemm_(split_gemm(IC, OC, N), CblasTrans, CblasNoTrans, OC, IC, N, 1.0f, dout, OC, inp, IC, 1.0f, dw, IC, NULL,
                 dinp ? PB_BF16_A_AGAIN : 0);
  }
  if (db) {
    for (int n = 0; n < N; n++) {
      const float *g = dout + (size_t)n * OC;
      for (int c = 0; c < OC; c++) db[c] += g[c];
    }
  }
}

/* ------------------------------------------------------------------ layernorm (as llm.c) */

/* The row loops are vectorised (omp simd reductions: the float sums are split into vector
 * lanes, a different rounding order than a serial sum; the naive twins stay serial). The
 * optional w/b branches are outside the loops. PB_VEC_CLONES: one AVX-512 / AVX2 / baseline
 * build of a loop function, picked at load time (GCC target_clones). */
#define PB_VEC_CLONES __attribute__((target_clones("avx512f", "avx2", "default")))
#define PB_VEC_CLONES_V4 __attribute__((target_clones("arch=x86-64-v4", "avx2", "default")))

PB_VEC_CLONES static void layernorm_fwd_rows(float *out, float *mean, float *rstd, const float *inp,
                                             const float *w, const float *b, int N, int C, float eps) {
  for (int n = 0; n < N; n++) {
    const float *x = inp + (size_t)n * C;
    float m = 0.0f;
#pragma omp simd reduction(+ : m)
    for (int i = 0; i < C; i++) m += x[i];
    m /= (float)C;
    float v = 0.0f;
#pragma omp simd reduction(+ : v)
    for (int i = 0; i < C; i++) {
      float xm = x[i] - m;
      v += xm * xm;
    }
    v /= (float)C;
    const float s = 1.0f / sqrtf(v + eps);
    float *o = out + (size_t)n * C;
    if (w && b) {
#pragma omp simd
      for (int i = 0; i < C; i++) o[i] = (x[i] - m) * s * w[i] + b[i];
    } else {
#pragma omp simd
      for (int i = 0; i < C; i++) o[i] = (x[i] - m) * s;
      if (w)
        for (int i = 0; i < C; i++) o[i] *= w[i];
      if (b)
        for (int i = 0; i < C; i++) o[i] += b[i];
    }
    if (mean) mean[n] = m;
    if (rstd) rstd[n] = s;
  }
}

void pb_layernorm_fwd(float *out, float *mean, float *rstd, const float *inp, const float *w, const float *b,
                      int N, int C, float eps) {
  if (N <= 0 || C <= 0) return;
  pb_opc_add(PB_OPK_FLOP, 8 * (uint64_t)N * C);
  pb_opc_add(PB_OPK_TRANS, (uint64_t)N);
  if (pb_opc_counting()) return;
  PB_PAR_RANGE(N, (size_t)N * C, lo, hi,
               layernorm_fwd_rows(out + lo * C, mean ? mean + lo : NULL, rstd ? rstd + lo : NULL, inp + lo * C,
                                  w, b, (int)(hi - lo), C, eps));
}

PB_VEC_CLONES static void layernorm_bwd_rows(float *dinp, float *dw, float *db, const float *dout,
                                             const float *inp, const float *w, const float *mean,
                                             const float *rstd, int N, int C) {
  for (int n = 0; n < N; n++) {
    const float *x = inp + (size_t)n * C;
    const float *g = dout + (size_t)n * C;
    const float m = mean[n], s = rstd[n];
    if (dinp) {
      float dnorm_mean = 0.0f, dnorm_norm_mean = 0.0f;
      float *di = dinp + (size_t)n * C;
      if (w) {
#pragma omp simd reduction(+ : dnorm_mean, dnorm_norm_mean)
        for (int i = 0; i < C; i++) {
          const float dnorm = w[i] * g[i];
          dnorm_mean += dnorm;
          dnorm_norm_mean += dnorm * ((x[i] - m) * s);
        }
        dnorm_mean /= (float)C;
        dnorm_norm_mean /= (float)C;
#pragma omp simd
        for (int i = 0; i < C; i++)
          di[i] += (w[i] * g[i] - dnorm_mean - ((x[i] - m) * s) * dnorm_norm_mean) * s;
      } else {
#pragma omp simd reduction(+ : dnorm_mean, dnorm_norm_mean)
        for (int i = 0; i < C; i++) {
          dnorm_mean += g[i];
          dnorm_norm_mean += g[i] * ((x[i] - m) * s);
        }
        dnorm_mean /= (float)C;
        dnorm_norm_mean /= (float)C;
#pragma omp simd
        for (int i = 0; i < C; i++) di[i] += (g[i] - dnorm_mean - ((x[i] - m) * s) * dnorm_norm_mean) * s;
      }
    }
    if (dw) {
#pragma omp simd
      for (int i = 0; i < C; i++) dw[i] += (x[i] - m) * s * g[i];
    }
    if (db) {
#pragma omp simd
      for (int i = 0; i < C; i++) db[i] += g[i];
    }
  }
}

void pb_layernorm_bwd(float *dinp, float *dw, float *db, const float *dout, const float *inp, const float *w,
                      const float *mean, const float *rstd, int N, int C) {
  if (N <= 0 || C <= 0) return;
  const uint64_t nc = (uint64_t)N * C, fl = (dinp ? 10 * nc : 0) + (dw ? 3 * nc : 0) + (db ? nc : 0);
  if (fl) pb_opc_add(PB_OPK_FLOP, fl);
  if (pb_opc_counting()) return;
  if (dinp && elem_threads((size_t)N * C) > 1) {
    /* rows split for dinp; the dw/db row sums stay one serial pass (no shared accumulators) */
    PB_PAR_RANGE(N, (size_t)N * C, lo, hi,
                 layernorm_bwd_rows(dinp + lo * C, NULL, NULL, dout + lo * C, inp + lo * C, w, mean + lo,
                                    rstd + lo, (int)(hi - lo), C));
    if (dw || db) layernorm_bwd_rows(NULL, dw, db, dout, inp, w, mean, rstd, N, C);
  } else {
    layernorm_bwd_rows(dinp, dw, db, dout, inp, w, mean, rstd, N, C);
  }
}

/* ------------------------------------------------------------------ activations */

#define PB_INV_SQRT2 0.70710678118654752440f
#define PB_INV_SQRT_2PI 0.39894228040143267794f

/* exp(x) for x in [-87, 0] (callers clamp): Cody-Waite reduction by ln 2 and a degree-6
 * polynomial (Cephes expf coefficients), 2^n built in the exponent bits; <= 2 ulp. Plain
 * arithmetic so that the loops below vectorise. */
static inline float expf_neg_(float x) {
  const float n = (float)(int32_t)(x * 1.44269504088896341f - 0.5f); /* nearest, as x <= 0 */
  float r = x - n * 0.693359375f;
  r = r - n * -2.12194440e-4f;
  float pr = 1.9875691500e-4f;
  pr = pr * r + 1.3981999507e-3f;
  pr = pr * r + 8.3334519073e-3f;
  pr = pr * r + 4.1665795894e-2f;
  pr = pr * r + 1.6666665459e-1f;
  pr = pr * r + 5.0000001201e-1f;
  pr = pr * r * r + r + 1.0f;
  union { int32_t i; float f; } sc;
  sc.i = ((int32_t)n + 127) << 23;
  return pr * sc.f;
}

/* Phi(x) = 0.5 (1 + erf(x/sqrt 2)) given e = exp(-x^2/2): erf(z) = 1 - t P(t) exp(-z^2),
 * t = 1/(1 + 0.3275911 |z|) (Abramowitz & Stegun 7.1.26, |erf error| <= 1.5e-7) */
static inline float phi_(float x, float e) {
  const float z = __builtin_fabsf(x) * PB_INV_SQRT2;
  const float t = 1.0f / (1.0f + 0.3275911f * z);
  float P = 1.061405429f;
  P = P * t - 1.453152027f;
  P = P * t + 1.421413741f;
  P = P * t - 0.284496736f;
  P = P * t + 0.254829592f;
  const float erf_abs = 1.0f - t * P * e;
  return 0.5f * (1.0f + __builtin_copysignf(erf_abs, x));
}

/* x with |x| clamped to 13 (exp(-13^2/2) stays a normal float) by an integer min on the bit
 * pattern (vectorises; a float compare would not, for NaN's sake). NaN maps to +-13 here;
 * phi_ of the unclamped x carries a NaN through. */
static inline float clamp13_(float x) {
  union { float f; uint32_t u; } v;
  v.f = x;
  const uint32_t s = v.u & 0x80000000u, a = v.u & 0x7FFFFFFFu;
  v.u = s | (a < 0x41500000u ? a : 0x41500000u); /* 13.0f */
  return v.f;
}
static inline float neg_half_sq_(float xc) { return -0.5f * xc * xc; }

/* PB_VEC_CLONES (above): one AVX-512 / AVX2 / baseline build of each loop, picked at load time */

PB_VEC_CLONES static void gelu_fwd_loop(float *out, const float *inp, size_t n) {
#pragma omp simd
  for (size_t i = 0; i < n; i++) {
    const float x = inp[i];
    out[i] = x * phi_(x, expf_neg_(neg_half_sq_(clamp13_(x))));
  }
}

PB_VEC_CLONES static void gelu_bwd_loop(float *dinp, const float *inp, const float *dout, size_t n) {
  /* d/dx [x Phi(x)] = Phi(x) + x phi(x), phi(x) = exp(-x^2/2) / sqrt(2 pi) */
#pragma omp simd
  for (size_t i = 0; i < n; i++) {
    const float x = inp[i], xc = clamp13_(x); /* x phi(x) underflows to ~0 beyond |x| = 13 */
    const float e = expf_neg_(neg_half_sq_(xc));
    dinp[i] += (phi_(x, e) + xc * PB_INV_SQRT_2PI * e) * dout[i];
  }
}

void pb_gelu_fwd(float *out, const float *inp, size_t n) {
  pb_opc_add(PB_OPK_FLOP, 4 * (uint64_t)n);
  pb_opc_add(PB_OPK_TRANS, (uint64_t)n);
  if (pb_opc_counting()) return;
  PB_PAR_RANGE(n, n, lo, hi, gelu_fwd_loop(out + lo, inp + lo, hi - lo));
}

void pb_gelu_bwd(float *dinp, const float *inp, const float *dout, size_t n) {
  pb_opc_add(PB_OPK_FLOP, 8 * (uint64_t)n);
  pb_opc_add(PB_OPK_TRANS, 2 * (uint64_t)n);
  if (pb_opc_counting()) return;
  PB_PAR_RANGE(n, n, lo, hi, gelu_bwd_loop(dinp + lo, inp + lo, dout + lo, hi - lo));
}

void pb_tanh_fwd(float *out, const float *inp, size_t n) {
  pb_opc_add(PB_OPK_TRANS, (uint64_t)n);
  if (pb_opc_counting()) return;
  for (size_t i = 0; i < n; i++) out[i] = tanhf(inp[i]);
}

void pb_tanh_bwd(float *dinp, const float *out, const float *dout, size_t n) {
  pb_opc_add(PB_OPK_FLOP, 3 * (uint64_t)n);
  if (pb_opc_counting()) return;
  for (size_t i = 0; i < n; i++) dinp[i] += (1.0f - out[i] * out[i]) * dout[i];
}

void pb_relu_fwd(float *out, const float *inp, size_t n) {
  pb_opc_add(PB_OPK_FLOP, (uint64_t)n);
  if (pb_opc_counting()) return;
  for (size_t i = 0; i < n; i++) out[i] = inp[i] > 0.0f ? inp[i] : 0.0f;
}

void pb_relu_bwd(float *dinp, const float *inp, const float *dout, size_t n) {
  pb_opc_add(PB_OPK_FLOP, (uint64_t)n);
  if (pb_opc_counting()) return;
  for (size_t i = 0; i < n; i++)
    if (inp[i] > 0.0f) dinp[i] += dout[i];
}

void pb_add(float *out, const float *a, const float *b, size_t n) {
  pb_opc_add(PB_OPK_FLOP, (uint64_t)n);
  if (pb_opc_counting()) return;
  PB_PAR_RANGE(n, n, lo, hi, for (size_t i = lo; i < hi; i++) out[i] = a[i] + b[i]);
}

void pb_add_scaled(float *out, const float *a, const float *x, float s, size_t n) {
  pb_opc_add(PB_OPK_FLOP, 2 * (uint64_t)n);
  if (pb_opc_counting()) return;
  PB_PAR_RANGE(n, n, lo, hi, for (size_t i = lo; i < hi; i++) out[i] = a[i] + s * x[i]);
}

void pb_scale(float *out, const float *x, float s, size_t n) {
  pb_opc_add(PB_OPK_FLOP, (uint64_t)n);
  if (pb_opc_counting()) return;
  PB_PAR_RANGE(n, n, lo, hi, for (size_t i = lo; i < hi; i++) out[i] = s * x[i]);
}

/* ------------------------------------------------------------------ dropout */

/* pb_hash64 (splitmix64 finaliser, util/rng.c), inlined for the per-element loops */
static inline uint64_t hash64_(uint64_t x) {
  x += 0x9E3779B97F4A7C15ULL;
  x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9ULL;
  x = (x ^ (x >> 27)) * 0x94D049BB133111EBULL;
  return x ^ (x >> 31);
}

/* keep(i) given hs = pb_hash64(seed): the per-call part of pb_dropout_keep hoisted out */
static inline int keep_h_(uint64_t hs, uint64_t i, float p) {
  uint64_t h = hash64_(hs ^ (i * 0xD1B54A32D192ED03ULL));
  return (float)(h >> 40) * (1.0f / 16777216.0f) >= p; /* u in [0,1), exact in float */
}

int pb_dropout_keep(uint64_t seed, uint64_t i, float p) {
  if (!(p > 0.0f)) return 1;
  /* hash the seed once, mix in the index with a Weyl step, hash again: 24 uniform bits */
  return keep_h_(pb_hash64(seed), i, p);
}

/* dst[i] = keep(base + i) ? src[i] * scale : 0 over n (dst may alias src); hs = pb_hash64(seed).
 * The mask is computed branch-free so the 64-bit hash vectorises (x86-64-v4: AVX-512DQ
 * multiplies). */
PB_VEC_CLONES_V4 static void mask_scale_(float *dst, const float *src, size_t n, uint64_t hs, uint64_t base,
                                         float p, float scale) {
#pragma omp simd
  for (size_t i = 0; i < n; i++) {
    const uint64_t h = hash64_(hs ^ ((base + i) * 0xD1B54A32D192ED03ULL));
    const float u = (float)(uint32_t)(h >> 40) * (1.0f / 16777216.0f);
    dst[i] = u >= p ? src[i] * scale : 0.0f;
  }
}

/* dst[i] += keep(base + i) ? src[i] * scale : 0 */
PB_VEC_CLONES_V4 static void mask_scale_acc_(float *dst, const float *src, size_t n, uint64_t hs, uint64_t base,
                                             float p, float scale) {
#pragma omp simd
  for (size_t i = 0; i < n; i++) {
    const uint64_t h = hash64_(hs ^ ((base + i) * 0xD1B54A32D192ED03ULL));
    const float u = (float)(uint32_t)(h >> 40) * (1.0f / 16777216.0f);
    dst[i] += u >= p ? src[i] * scale : 0.0f;
  }
}

float pb_dropout_scale_(float p) { return p < 1.0f ? 1.0f / (1.0f - p) : 0.0f; }

void pb_dropout_fwd(float *out, const float *inp, size_t n, float p, uint64_t seed) {
  if (p > 0.0f) pb_opc_add(PB_OPK_FLOP, (uint64_t)n);
  if (pb_opc_counting()) return;
  if (!(p > 0.0f)) {
    if (out != inp) memmove(out, inp, n * sizeof(float));
    return;
  }
  const float scale = pb_dropout_scale_(p);
  const uint64_t hs = pb_hash64(seed);
  PB_PAR_RANGE(n, n, lo, hi, mask_scale_(out + lo, inp + lo, hi - lo, hs, lo, p, scale));
}

/* dinp += mask * dout / (1-p). If dinp == dout (in place) the gradient is overwritten
 * instead: dinp = mask * dout / (1-p). p <= 0: dinp += dout (nothing when in place). */
void pb_dropout_bwd(float *dinp, const float *dout, size_t n, float p, uint64_t seed) {
  if (p > 0.0f) pb_opc_add(PB_OPK_FLOP, (uint64_t)n);
  if (pb_opc_counting()) return;
  const int inplace = (const float *)dinp == dout;
  if (!(p > 0.0f)) {
    if (!inplace)
      for (size_t i = 0; i < n; i++) dinp[i] += dout[i];
    return;
  }
  const float scale = pb_dropout_scale_(p);
  const uint64_t hs = pb_hash64(seed);
  if (inplace) {
    PB_PAR_RANGE(n, n, lo, hi, mask_scale_(dinp + lo, dinp + lo, hi - lo, hs, lo, p, scale));
  } else {
    PB_PAR_RANGE(n, n, lo, hi, mask_scale_acc_(dinp + lo, dout + lo, hi - lo, hs, lo, p, scale));
  }
}

/* ------------------------------------------------------------------ embeddings */

/* ids, types [B*T] must be valid rows of wte / wtt (the caller checks them against the vocab
 * and type sizes); a negative id contributes nothing. types == NULL means type 0 everywhere;
 * wtt == NULL means no token-type table. */
void pb_embed_fwd(float *out, const int *ids, const int *types, const float *wte, const float *wpe,
                  const float *wtt, int B, int T, int d) {
  if (B <= 0 || T <= 0 || d <= 0) return;
  pb_opc_add(PB_OPK_FLOP, 2 * (uint64_t)B * T * d);
  if (pb_opc_counting()) return;
  for (int b = 0; b < B; b++)
    for (int t = 0; t < T; t++) {
      size_t r = (size_t)b * T + t;
      float *o = out + r * d;
      const float *p = wpe + (size_t)t * d;
      for (int i = 0; i < d; i++) o[i] = p[i];
      if (ids[r] >= 0) {
        const float *e = wte + (size_t)ids[r] * d;
        for (int i = 0; i < d; i++) o[i] += e[i];
      }
      int ty = types ? types[r] : 0;
      if (wtt && ty >= 0) {
        const float *e = wtt + (size_t)ty * d;
        for (int i = 0; i < d; i++) o[i] += e[i];
      }
    }
}

void pb_embed_bwd(float *dwte, float *dwpe, float *dwtt, const float *dout, const int *ids, const int *types,
                  int B, int T, int d) {
  if (B <= 0 || T <= 0 || d <= 0) return;
  const uint64_t nd = (uint64_t)B * T * d, fl = (dwte ? nd : 0) + (dwpe ? nd : 0) + (dwtt ? nd : 0);
  if (fl) pb_opc_add(PB_OPK_FLOP, fl);
  if (pb_opc_counting()) return;
  for (int b = 0; b < B; b++)
    for (int t = 0; t < T; t++) {
      size_t r = (size_t)b * T + t;
      const float *g = dout + r * d;
      if (dwte && ids[r] >= 0) {
        float *e = dwte + (size_t)ids[r] * d;
        for (int i = 0; i < d; i++) e[i] += g[i];
      }
      if (dwpe) {
        float *e = dwpe + (size_t)t * d;
        for (int i = 0; i < d; i++) e[i] += g[i];
      }
      int ty = types ? types[r] : 0;
      if (dwtt && ty >= 0) {
        float *e = dwtt + (size_t)ty * d;
        for (int i = 0; i < d; i++) e[i] += g[i];
      }
    }
}

/* ------------------------------------------------------------------ attention */

#define PB_ATTN_MASKED (-1e9f) /* score of a padded key: exp underflows to exactly 0 */

/* shared with the naive twins in ops_naive.c (ops.h stays the public interface) */
float pb_dropout_scale_(float p);
void pb_attn_count_fwd(int B, int T, int P, int d, int A, float p);
void pb_attn_count_bwd(const float *dq, const float *dk, const float *dv, int B, int T, int P, int d, int A,
                       float p);

/* exp(x) for x <= 0; exactly 0 below -87 (where expf_neg_'s 2^n would leave the normal range):
 * the clamp is an integer compare and mask on the bit pattern (negative floats grow with
 * magnitude; -inf too), so the loop vectorises. NaN in gives NaN out. */
static inline float expf_nonpos_(float x) {
  union { float f; uint32_t u; } v, e;
  v.f = x;
  const uint32_t xu = v.u;
  const uint32_t under = (uint32_t)(xu <= 0xC2AE0000u) - 1u;               /* ~0: x < -87 */
  const uint32_t nan = (uint32_t)((xu & 0x7FFFFFFFu) <= 0x7F800000u) - 1u; /* ~0: x is NaN */
  v.u = (xu & ~(under | nan)) | (0xC2AE0000u & under); /* NaN -> 0 here: no NaN float-to-int cast */
  e.f = expf_neg_(v.f);
  e.u = (e.u & ~(under | nan)) | (xu & nan); /* 0 below -87; NaN in, NaN out */
  return e.f;
}

/* row[S] = softmax(row) over S = P + T keys, the token keys P..S-1 of mask 0 (mk[T] or NULL)
 * set to PB_ATTN_MASKED first (the P prefix keys are never masked); padded keys come out
 * exactly 0 */
PB_VEC_CLONES static void softmax_row_(float *row, const int *mk, int P, int S) {
  if (mk)
    for (int j = P; j < S; j++)
      if (mk[j - P] == 0) row[j] = PB_ATTN_MASKED;
  float mx = -INFINITY;
#ifndef __clang__ /* clang cannot vectorise a NaN-honouring max and warns; GCC can */
#pragma omp simd reduction(max : mx)
#endif
  for (int j = 0; j < S; j++) mx = row[j] > mx ? row[j] : mx;
  float sum = 0.0f;
#pragma omp simd reduction(+ : sum)
  for (int j = 0; j < S; j++) {
    row[j] = expf_nonpos_(row[j] - mx);
    sum += row[j];
  }
  const float inv = 1.0f / sum;
#pragma omp simd
  for (int j = 0; j < S; j++) row[j] *= inv;
}

/* g[S] = pr * (g - sum_j pr_j g_j): softmax backward of one row in place */
PB_VEC_CLONES static void softmax_bwd_row_(float *g, const float *pr, int S) {
  float s = 0.0f;
#pragma omp simd reduction(+ : s)
  for (int j = 0; j < S; j++) s += pr[j] * g[j];
#pragma omp simd
  for (int j = 0; j < S; j++) g[j] = pr[j] * (g[j] - s);
}

/* forward of one (b,h) pair over S = P + T keys (kx, vx: [B,S,d]); tmp: T*S floats or NULL
 * (then the dropout product is done by plain loops) */
static void attn_fwd_pair(float *ctx, float *probs, const float *q, const float *kx, const float *vx,
                          const int *mask, int b, int h, int T, int P, int d, int A, float p, uint64_t seed,
                          float *tmp) {
  const int hd = d / A, S = P + T;
  const float sc = 1.0f / sqrtf((float)hd);
  const float *qh = q + (size_t)b * T * d + (size_t)h * hd;
  const float *kh = kx + (size_t)b * S * d + (size_t)h * hd;
  const float *vh = vx + (size_t)b * S * d + (size_t)h * hd;
  float *ch = ctx + (size_t)b * T * d + (size_t)h * hd;
  float *Pr = probs + ((size_t)b * A + h) * T * S;
  const int *mk = mask ? mask + (size_t)b * T : NULL;
  /* scores Pr[T,S] = sc * q_h k_h^T */
  cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, T, S, hd, sc, qh, d, kh, d, 0.0f, Pr, S);
  for (int i = 0; i < T; i++) softmax_row_(Pr + (size_t)i * S, mk, P, S);
  if (!(p > 0.0f)) {
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, T, hd, S, 1.0f, Pr, S, vh, d, 0.0f, ch, d);
    return;
  }
  const float dsc = pb_dropout_scale_(p);
  const uint64_t base = ((uint64_t)b * A + h) * T * S, hs = pb_hash64(seed);
  if (tmp) {
    mask_scale_(tmp, Pr, (size_t)T * S, hs, base, p, dsc);
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, T, hd, S, 1.0f, tmp, S, vh, d, 0.0f, ch, d);
  } else {
    for (int i = 0; i < T; i++) {
      float *c = ch + (size_t)i * d;
      for (int x = 0; x < hd; x++) c[x] = 0.0f;
      for (int j = 0; j < S; j++) {
        size_t e = (size_t)i * S + j;
        if (!keep_h_(hs, base + e, p)) continue;
        float pij = Pr[e] * dsc;
        const float *vr = vh + (size_t)j * d;
        for (int x = 0; x < hd; x++) c[x] += pij * vr[x];
      }
    }
  }
}

/* ------------------------------------------------------------------ bf16 attention */

/* --precision bf16 (backbone/bf16.h): the four (forward two) attention products as batched bf16
 * matmuls over (batch row, head), reading the heads of [B,T,d] / [B,S,d] activations and the
 * transposes through strides; the mask, softmax and dropout stay in fp32, row by row, exactly as
 * the fp32 path. Every product is prepared (pb_bf16_bmm dry) before any output is touched: a
 * non-zero return means nothing was written and the caller runs the fp32 path. A product that
 * fails after its preparation succeeded (not expected: the buffers exist) stops the process. */
typedef struct {
  long dS[4], dC[4], dV[4];          /* dims: scores [B,A,T,S], ctx [B,A,T,hd], dk/dv [B,A,S,hd] */
  long sQ[4], sKt[4], sP[4], sPt[4]; /* strides: q/ctx/dq as [T,hd], k^T [hd,S], P [T,S], P^T [S,T] */
  long sV[4];                        /* k, v, dk, dv as [S,hd] */
  long hd, S;
  float sc;
} attn_views;

static attn_views attn_views_of(int B, int T, int P, int d, int A) {
  attn_views v;
  const long hd = d / A, S = (long)P + T, TS = (long)T * S;
  v.hd = hd, v.S = S, v.sc = 1.0f / sqrtf((float)hd);
  const long dS[4] = {B, A, T, S}, dC[4] = {B, A, T, hd}, dV[4] = {B, A, S, hd};
  const long sQ[4] = {(long)T * d, hd, d, 1}, sKt[4] = {S * d, hd, 1, d}, sP[4] = {(long)A * TS, TS, S, 1};
  const long sPt[4] = {(long)A * TS, TS, 1, S}, sV[4] = {S * d, hd, d, 1};
  memcpy(v.dS, dS, sizeof dS), memcpy(v.dC, dC, sizeof dC), memcpy(v.dV, dV, sizeof dV);
  memcpy(v.sQ, sQ, sizeof sQ), memcpy(v.sKt, sKt, sizeof sKt), memcpy(v.sP, sP, sizeof sP);
  memcpy(v.sPt, sPt, sizeof sPt), memcpy(v.sV, sV, sizeof sV);
  return v;
}

static void bmm_or_die(const long dims[4], long K, float alpha, const float *A, const long as[4], const float *B,
                       const long bs[4], float beta, float *C, const long cs[4]) {
  if (pb_bf16_bmm(dims, K, alpha, A, as, B, bs, beta, C, cs, 0)) {
    fprintf(stderr, "peftbench: bf16 attention: %s (after its preparation succeeded)\n", pb_last_error());
    abort();
  }
}

static float *g_attn_tmp; /* the dropped probabilities of the bf16 forward [B,A,T,S] */
static size_t g_attn_cap;

/* dst[B*A pairs of T*S] = dropout(src) with the per-pair indices of the fp32 path */
static void drop_pairs_(float *dst, const float *src, int npairs, size_t TS, float p, uint64_t seed) {
  const uint64_t hs = pb_hash64(seed);
  const float dsc = pb_dropout_scale_(p);
#pragma omp parallel for schedule(static) num_threads(elem_threads((size_t)npairs * TS))
  for (int pair = 0; pair < npairs; pair++)
    mask_scale_(dst + (size_t)pair * TS, src + (size_t)pair * TS, TS, hs, (uint64_t)pair * TS, p, dsc);
}

static int attn_fwd_bf16(float *ctx, float *probs, const float *q, const float *kx, const float *vx, const int *mask,
                         int B, int T, int P, int d, int A, float p, uint64_t seed) {
  const attn_views v = attn_views_of(B, T, P, d, A);
  const int drop = p > 0.0f, npairs = B * A;
  const size_t TS = (size_t)T * v.S, n = (size_t)npairs * TS;
  if (pb_bf16_bmm(v.dS, v.hd, v.sc, NULL, v.sQ, NULL, v.sKt, 0.0f, NULL, v.sP, 1) ||
      pb_bf16_bmm(v.dC, v.S, 1.0f, NULL, v.sP, NULL, v.sV, 0.0f, NULL, v.sQ, 1))
    return -1;
  if (drop && n > g_attn_cap) {
    float *t = realloc(g_attn_tmp, n * sizeof(float));
    if (!t) return -1;
    g_attn_tmp = t, g_attn_cap = n;
  }
  bmm_or_die(v.dS, v.hd, v.sc, q, v.sQ, kx, v.sKt, 0.0f, probs, v.sP);
  const long rows = (long)npairs * T;
#pragma omp parallel for schedule(static) num_threads(elem_threads(n))
  for (long r = 0; r < rows; r++) {
    const int b = (int)(r / T / A);
    softmax_row_(probs + (size_t)r * v.S, mask ? mask + (size_t)b * T : NULL, P, (int)v.S);
  }
  const float *Pd = probs;
  if (drop) {
    drop_pairs_(g_attn_tmp, probs, npairs, TS, p, seed);
    Pd = g_attn_tmp;
  }
  bmm_or_die(v.dC, v.S, 1.0f, Pd, v.sP, vx, v.sV, 0.0f, ctx, v.sQ);
  return 0;
}

static int attn_bwd_bf16(float *dq, float *dkx, float *dvx, float *scratch, const float *dctx, const float *q,
                         const float *kx, const float *vx, const float *probs, int B, int T, int P, int d, int A,
                         float p, uint64_t seed) {
  const attn_views v = attn_views_of(B, T, P, d, A);
  const int drop = p > 0.0f, npairs = B * A;
  const size_t TS = (size_t)T * v.S, n = (size_t)npairs * TS;
  if ((dvx && pb_bf16_bmm(v.dV, T, 1.0f, NULL, v.sPt, NULL, v.sQ, 1.0f, NULL, v.sV, 1)) ||
      ((dq || dkx) && pb_bf16_bmm(v.dS, v.hd, 1.0f, NULL, v.sQ, NULL, v.sKt, 0.0f, NULL, v.sP, 1)) ||
      (dq && pb_bf16_bmm(v.dC, v.S, v.sc, NULL, v.sP, NULL, v.sV, 1.0f, NULL, v.sQ, 1)) ||
      (dkx && pb_bf16_bmm(v.dV, T, v.sc, NULL, v.sPt, NULL, v.sQ, 1.0f, NULL, v.sV, 1)))
    return -1;
  /* dv[S,hd] += P_drop^T dctx */
  if (dvx) {
    const float *Pd = probs;
    if (drop) {
      drop_pairs_(scratch, probs, npairs, TS, p, seed);
      Pd = scratch;
    }
    bmm_or_die(v.dV, T, 1.0f, Pd, v.sPt, dctx, v.sQ, 1.0f, dvx, v.sV);
  }
  if (!dq && !dkx) return 0;
  /* dP_drop = dctx v^T, through the dropout mask, then the softmax backward */
  bmm_or_die(v.dS, v.hd, 1.0f, dctx, v.sQ, vx, v.sKt, 0.0f, scratch, v.sP);
  if (drop) drop_pairs_(scratch, scratch, npairs, TS, p, seed);
  const long rows = (long)npairs * T;
#pragma omp parallel for schedule(static) num_threads(elem_threads(n))
  for (long r = 0; r < rows; r++) softmax_bwd_row_(scratch + (size_t)r * v.S, probs + (size_t)r * v.S, (int)v.S);
  if (dq) bmm_or_die(v.dC, v.S, v.sc, scratch, v.sP, kx, v.sV, 1.0f, dq, v.sQ);
  if (dkx) bmm_or_die(v.dV, T, v.sc, scratch, v.sPt, q, v.sQ, 1.0f, dkx, v.sV);
  return 0;
}

void pb_attention_prefix_fwd(float *ctx, float *probs, const float *q, const float *kx, const float *vx,
                             const int *mask, int B, int T, int P, int d, int A, float p, uint64_t seed) {
  if (B <= 0 || T <= 0 || P < 0 || A <= 0 || d <= 0 || d % A != 0) return;
  pb_attn_count_fwd(B, T, P, d, A, p);
  if (pb_opc_counting()) return;
  if (pb_get_precision() == PB_PREC_BF16 && attn_fwd_bf16(ctx, probs, q, kx, vx, mask, B, T, P, d, A, p, seed) == 0)
    return;
  const int nthr = pb_get_threads();
  const int npairs = B * A;
  const int drop = p > 0.0f;
  const size_t TS = (size_t)T * (P + T);
  /* One T*S buffer per thread for the dropped probabilities; NULL falls back to loops. */
  if (nthr > 1 && npairs > 1) {
    const int pool = blas_serial_begin(); /* BLAS single-threaded inside the OpenMP region */
#pragma omp parallel num_threads(nthr)
    {
      float *tmp = drop ? malloc(TS * sizeof(float)) : NULL;
#pragma omp for schedule(dynamic, 1)
      for (int pair = 0; pair < npairs; pair++)
        attn_fwd_pair(ctx, probs, q, kx, vx, mask, pair / A, pair % A, T, P, d, A, p, seed, tmp);
      free(tmp);
    }
    blas_serial_end(pool);
  } else {
    float *tmp = drop ? malloc(TS * sizeof(float)) : NULL;
    for (int pair = 0; pair < npairs; pair++)
      attn_fwd_pair(ctx, probs, q, kx, vx, mask, pair / A, pair % A, T, P, d, A, p, seed, tmp);
    free(tmp);
  }
}

void pb_attention_fwd(float *ctx, float *probs, const float *q, const float *k, const float *v, const int *mask,
                      int B, int T, int d, int A, float p, uint64_t seed) {
  pb_attention_prefix_fwd(ctx, probs, q, k, v, mask, B, T, 0, d, A, p, seed);
}

/* backward of one (b,h) pair over S = P + T keys; Sc: this pair's T*S slice of scratch */
static void attn_bwd_pair(float *dq, float *dk, float *dv, float *Sc, const float *dctx, const float *q,
                          const float *kx, const float *vx, const float *probs, int b, int h, int T, int P, int d,
                          int A, float p, uint64_t seed) {
  const int hd = d / A, S = P + T;
  const float sc = 1.0f / sqrtf((float)hd);
  const size_t off = (size_t)b * T * d + (size_t)h * hd;  /* q, dq, dctx rows */
  const size_t offk = (size_t)b * S * d + (size_t)h * hd; /* kx, vx, dk, dv rows */
  const float *Pr = probs + ((size_t)b * A + h) * T * S;
  const int drop = p > 0.0f;
  const float dsc = pb_dropout_scale_(p);
  const uint64_t base = ((uint64_t)b * A + h) * T * S, hs = drop ? pb_hash64(seed) : 0;
  const size_t TS = (size_t)T * S;
  /* dv_h[S,hd] += P_drop^T dctx_h */
  if (dv) {
    const float *Pd = Pr;
    if (drop) {
      mask_scale_(Sc, Pr, TS, hs, base, p, dsc);
      Pd = Sc;
    }
    cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, S, hd, T, 1.0f, Pd, S, dctx + off, d, 1.0f, dv + offk, d);
  }
  if (!dq && !dk) return;
  /* dP_drop[T,S] = dctx_h v_h^T, then through the dropout mask */
  cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, T, S, hd, 1.0f, dctx + off, d, vx + offk, d, 0.0f, Sc, S);
  if (drop)
    mask_scale_(Sc, Sc, TS, hs, base, p, dsc);
  /* softmax backward: dS = P * (dP - sum_j P dP) */
  for (int i = 0; i < T; i++) softmax_bwd_row_(Sc + (size_t)i * S, Pr + (size_t)i * S, S);
  if (dq)
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, T, hd, S, sc, Sc, S, kx + offk, d, 1.0f, dq + off, d);
  if (dk)
    cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, S, hd, T, sc, Sc, S, q + off, d, 1.0f, dk + offk, d);
}

void pb_attention_prefix_bwd(float *dq, float *dkx, float *dvx, float *scratch, const float *dctx, const float *q,
                             const float *kx, const float *vx, const float *probs, int B, int T, int P, int d,
                             int A, float p, uint64_t seed) {
  if (B <= 0 || T <= 0 || P < 0 || A <= 0 || d <= 0 || d % A != 0) return;
  pb_attn_count_bwd(dq, dkx, dvx, B, T, P, d, A, p);
  if (pb_opc_counting()) return;
  if (pb_get_precision() == PB_PREC_BF16 &&
      attn_bwd_bf16(dq, dkx, dvx, scratch, dctx, q, kx, vx, probs, B, T, P, d, A, p, seed) == 0)
    return;
  const int nthr = pb_get_threads();
  const int npairs = B * A;
  const size_t TS = (size_t)T * (P + T);
  if (nthr > 1 && npairs > 1) {
    const int pool = blas_serial_begin(); /* BLAS single-threaded inside the OpenMP region */
#pragma omp parallel for num_threads(nthr) schedule(dynamic, 1)
    for (int pair = 0; pair < npairs; pair++)
      attn_bwd_pair(dq, dkx, dvx, scratch + (size_t)pair * TS, dctx, q, kx, vx, probs, pair / A, pair % A, T, P, d,
                    A, p, seed);
    blas_serial_end(pool);
  } else {
    for (int pair = 0; pair < npairs; pair++)
      attn_bwd_pair(dq, dkx, dvx, scratch + (size_t)pair * TS, dctx, q, kx, vx, probs, pair / A, pair % A, T, P, d,
                    A, p, seed);
  }
}

void pb_attention_bwd(float *dq, float *dk, float *dv, float *scratch, const float *dctx, const float *q,
                      const float *k, const float *v, const float *probs, int B, int T, int d, int A, float p,
                      uint64_t seed) {
  pb_attention_prefix_bwd(dq, dk, dv, scratch, dctx, q, k, v, probs, B, T, 0, d, A, p, seed);
}

/* op counts of the attention kernels, shared with the naive twins; S = B*A*T*(P+T) scores */
void pb_attn_count_fwd(int B, int T, int P, int d, int A, float p) {
  uint64_t S = (uint64_t)B * A * T * ((uint64_t)P + T), hd = (uint64_t)(d / A);
  pb_opc_add(PB_OPK_MAC, 2 * S * hd);
  pb_opc_add(PB_OPK_FLOP, 6 * S + (p > 0.0f ? S : 0));
  pb_opc_add(PB_OPK_TRANS, S);
}

/* 4*S*hd MACs = S*hd each for dP, dv, dq, dk; a NULL gradient skips its part (dP is needed by
 * dq or dk); the 4*S (+S) softmax/dropout backward FLOPs are charged when dq or dk is wanted. */
void pb_attn_count_bwd(const float *dq, const float *dk, const float *dv, int B, int T, int P, int d, int A,
                       float p) {
  uint64_t S = (uint64_t)B * A * T * ((uint64_t)P + T), hd = (uint64_t)(d / A);
  uint64_t parts = (dv ? 1 : 0) + (dq ? 1 : 0) + (dk ? 1 : 0) + ((dq || dk) ? 1 : 0);
  if (parts) pb_opc_add(PB_OPK_MAC, parts * S * hd);
  if (dq || dk) pb_opc_add(PB_OPK_FLOP, 4 * S + (p > 0.0f ? S : 0));
}

/* ------------------------------------------------------------------ losses */

float pb_softmax_ce_fwd(float *probs, const float *logits, const int *labels, int B, int C) {
  if (B <= 0 || C <= 0) return NAN;
  pb_opc_add(PB_OPK_FLOP, 4 * (uint64_t)B * C + (uint64_t)B);
  pb_opc_add(PB_OPK_TRANS, (uint64_t)B * C + (uint64_t)B);
  if (pb_opc_counting()) return 0.0f;
  double loss = 0.0;
  for (int b = 0; b < B; b++) {
    const float *x = logits + (size_t)b * C;
    float *pr = probs + (size_t)b * C;
    float mx = x[0];
    for (int c = 1; c < C; c++)
      if (x[c] > mx) mx = x[c];
    float sum = 0.0f;
    for (int c = 0; c < C; c++) {
      pr[c] = expf(x[c] - mx);
      sum += pr[c];
    }
    float inv = 1.0f / sum;
    for (int c = 0; c < C; c++) pr[c] *= inv;
    int y = labels ? labels[b] : -1;
    if (y < 0 || y >= C)
      loss = NAN; /* invalid label: the caller must see it */
    else
      loss += (double)logf(sum) + (double)mx - (double)x[y];
  }
  return (float)(loss / B);
}

/* rows with an invalid label (< 0 or >= C) get no gradient */
void pb_softmax_ce_bwd(float *dlogits, const float *probs, const int *labels, int B, int C) {
  if (B <= 0 || C <= 0) return;
  pb_opc_add(PB_OPK_FLOP, 2 * (uint64_t)B * C);
  if (pb_opc_counting()) return;
  const float invB = 1.0f / (float)B;
  for (int b = 0; b < B; b++) {
    int y = labels ? labels[b] : -1;
    if (y < 0 || y >= C) continue;
    const float *pr = probs + (size_t)b * C;
    float *g = dlogits + (size_t)b * C;
    for (int c = 0; c < C; c++) g[c] += (pr[c] - (c == y ? 1.0f : 0.0f)) * invB;
  }
}

float pb_mse_fwd(const float *pred, const float *target, int B) {
  if (B <= 0) return NAN;
  pb_opc_add(PB_OPK_FLOP, 3 * (uint64_t)B);
  if (pb_opc_counting()) return 0.0f;
  double s = 0.0;
  for (int b = 0; b < B; b++) {
    double e = (double)pred[b] - (double)target[b];
    s += e * e;
  }
  return (float)(s / B);
}

void pb_mse_bwd(float *dpred, const float *pred, const float *target, int B) {
  if (B <= 0) return;
  pb_opc_add(PB_OPK_FLOP, 2 * (uint64_t)B);
  if (pb_opc_counting()) return;
  const float k = 2.0f / (float)B;
  for (int b = 0; b < B; b++) dpred[b] += k * (pred[b] - target[b]);
}

/* ---------------------------------------------------------------- distillation losses */

/* softmax of x[C]/tau into out[C] (doubles: the two softmaxes of a row are compared closely) */
static void softmax_tau(double *out, const float *x, int C, double inv_tau) {
  double mx = (double)x[0] * inv_tau;
  for (int c = 0; c < C; c++) {
    out[c] = (double)x[c] * inv_tau;
    if (out[c] > mx) mx = out[c];
  }
  double s = 0.0;
  for (int c = 0; c < C; c++) {
    out[c] = exp(out[c] - mx);
    s += out[c];
  }
  for (int c = 0; c < C; c++) out[c] /= s;
}

enum { KD_MAX_C = 64 };

float pb_kd_ce_fwd(const float *z, const float *t, int B, int C, float tau) {
  if (B <= 0 || C <= 0 || C > KD_MAX_C || !(tau > 0.0f)) return NAN;
  pb_opc_add(PB_OPK_FLOP, 11 * (uint64_t)B * C + 2 * (uint64_t)B);
  pb_opc_add(PB_OPK_TRANS, 2 * (uint64_t)B * C + (uint64_t)B);
  if (pb_opc_counting()) return 0.0f;
  const double inv_tau = 1.0 / (double)tau;
  double p[KD_MAX_C], q[KD_MAX_C], loss = 0.0;
  for (int b = 0; b < B; b++) {
    softmax_tau(p, z + (size_t)b * C, C, inv_tau);
    softmax_tau(q, t + (size_t)b * C, C, inv_tau);
    for (int c = 0; c < C; c++) loss -= q[c] * log(p[c] > 1e-300 ? p[c] : 1e-300);
  }
  return (float)((double)tau * (double)tau * loss / B);
}

void pb_kd_ce_bwd(float *dz, const float *z, const float *t, int B, int C, float tau, float scale) {
  if (B <= 0 || C <= 0 || C > KD_MAX_C || !(tau > 0.0f)) return;
  pb_opc_add(PB_OPK_FLOP, 11 * (uint64_t)B * C);
  pb_opc_add(PB_OPK_TRANS, 2 * (uint64_t)B * C);
  if (pb_opc_counting()) return;
  const double inv_tau = 1.0 / (double)tau, k = (double)scale * (double)tau / B;
  double p[KD_MAX_C], q[KD_MAX_C];
  for (int b = 0; b < B; b++) {
    softmax_tau(p, z + (size_t)b * C, C, inv_tau);
    softmax_tau(q, t + (size_t)b * C, C, inv_tau);
    float *g = dz + (size_t)b * C;
    for (int c = 0; c < C; c++) g[c] += (float)(k * (p[c] - q[c]));
  }
}

float pb_mse_pair_fwd(const float *a, const float *b, size_t n) {
  if (n == 0) return NAN;
  pb_opc_add(PB_OPK_FLOP, 3 * (uint64_t)n + 1);
  if (pb_opc_counting()) return 0.0f;
  double s = 0.0;
  for (size_t i = 0; i < n; i++) {
    const double e = (double)a[i] - (double)b[i];
    s += e * e;
  }
  return (float)(s / (double)n);
}

void pb_mse_pair_bwd(float *da, const float *a, const float *b, size_t n, float scale) {
  if (n == 0) return;
  pb_opc_add(PB_OPK_FLOP, 3 * (uint64_t)n);
  if (pb_opc_counting()) return;
  const float k = 2.0f * scale / (float)n;
  for (size_t i = 0; i < n; i++) da[i] += k * (a[i] - b[i]);
}
