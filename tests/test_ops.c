/* test_ops: the layer kernels of backbone/ops.h.
 *  1. fast kernels == naive twins (matmul fwd/bwd, attention fwd/bwd with padding and dropout,
 *     1 and 2 threads), relative to the largest magnitude, tol 1e-5
 *  2. finite-difference gradient checks of every backward (loss = sum(out * R) in double,
 *     central differences, eps 1e-3 on fp32 inputs, error = max|analytic - numeric| /
 *     max(max|numeric|, 1e-3), tol 1e-3; 2e-3 for attention dq, dk, whose gradients are
 *     small (max 0.15) so fp32 rounding weighs more: measured 1.2e-5..1.5e-4 and 2.2e-4..4.4e-4),
 *     and that backward accumulates (+=): twice = 2x
 *  2b. attention with a key/value prefix (P = 3): fast == naive, P = 0 == pb_attention_fwd/bwd bit
 *     for bit, == plain attention over P+T tokens, dropout masks as documented in fwd and bwd,
 *     padded token keys 0 and prefix keys > 0, FD of dq, dkx, dvx (tol 1e-3 for dq, dkx, measured
 *     <= 3.5e-4; 2e-4 for dvx, measured <= 3.4e-5), counts with S = B*A*T*(P+T)
 *  3. exact op counts of every kernel vs the ops.h table, NULL grads and p = 0 dropout; the same
 *     closed forms in counting-only mode, every buffer PROT_NONE (a touch would crash)
 *  4. dropout statistics, determinism, seed dependence, backward mask, in-place use
 * Exits non-zero on any failure. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "backbone/ops.h"
#include "backbone/params.h"
#include "util/rng.h"
#include "counters/opcount.h"
#include "tests/check.h"


#define TOL_TWIN 1e-5
#define TOL_GRAD 1e-3         /* measured <= 1.6e-4 (matmul, layernorm, elementwise, embed, losses) */
#define TOL_GRAD_ATTN_QK 2e-3 /* attention dq, dk: measured <= 4.4e-4 */
#define TOL_GRAD_ATTN_PREFIX_QK 1e-3 /* prefix attention dq, dkx: measured 1.5e-4..3.5e-4 */
#define TOL_GRAD_ATTN_PREFIX_V 2e-4  /* prefix attention dvx: measured 2.6e-5..3.4e-5 */
#define FD_EPS 1e-3f

static pb_rng g_rng;

static float *fnew(size_t n) {
  float *p = calloc(n ? n : 1, sizeof(float));
  if (!p) {
    printf("FAIL: out of memory\n");
    exit(2);
  }
  return p;
}
static float *frand(size_t n, float scale) {
  float *p = fnew(n);
  for (size_t i = 0; i < n; i++) p[i] = scale * (2.0f * pb_rng_uniform(&g_rng) - 1.0f);
  return p;
}
static float *fdup(const float *a, size_t n) {
  float *p = fnew(n);
  memcpy(p, a, n * sizeof(float));
  return p;
}
/* max|a-b| / max|b| (b the reference) */
static double relerr(const float *a, const float *b, size_t n) {
  double md = 0.0, mb = 0.0;
  for (size_t i = 0; i < n; i++) {
    double d = fabs((double)a[i] - b[i]);
    if (!(d <= md)) md = d; /* NaN propagates */
    if (fabs((double)b[i]) > mb) mb = fabs((double)b[i]);
  }
  return md / (mb > 1e-30 ? mb : 1e-30);
}
static double dot_d(const float *a, const float *b, size_t n) {
  double s = 0.0;
  for (size_t i = 0; i < n; i++) s += (double)a[i] * b[i];
  return s;
}

/* ------------------------------------------------------------ finite differences */

typedef double (*lossfn)(void);

/* Perturbs x[0..n) by +-eps, compares (L+ - L-)/2eps with the analytic gradient g. */
static void fd_check_tol(const char *what, lossfn L, float *x, size_t n, const float *g, double tol) {
  double md = 0.0, mn = 0.0;
  for (size_t i = 0; i < n; i++) {
    float x0 = x[i];
    x[i] = x0 + FD_EPS;
    double lp = L();
    x[i] = x0 - FD_EPS;
    double lm = L();
    x[i] = x0;
    double num = (lp - lm) / (2.0 * (double)FD_EPS);
    double d = fabs(num - g[i]);
    if (!(d <= md)) md = d;
    if (fabs(num) > mn) mn = fabs(num);
  }
  double err = md / (mn > 1e-3 ? mn : 1e-3);
  printf("  grad %-28s n=%-4zu max|num|=%.3g rel err %.2e (tol %.0e)\n", what, n, mn, err, tol);
  CHECK(err < tol, "gradient %s: rel err %.3e (tol %.0e)", what, err, tol);
}
static void fd_check(const char *what, lossfn L, float *x, size_t n, const float *g) {
  fd_check_tol(what, L, x, n, g, TOL_GRAD);
}

/* g2 (after two backward calls) must equal 2 * g1 (after one) */
static void check_accum(const char *what, const float *g1, const float *g2, size_t n) {
  float *t = fnew(n);
  for (size_t i = 0; i < n; i++) t[i] = 2.0f * g1[i];
  double e = relerr(g2, t, n);
  CHECK(e < 1e-6, "%s: backward does not accumulate (err %.3e)", what, e);
  free(t);
}

/* ------------------------------------------------------------ op counts */

static void count_begin(void) {
  pb_opc_reset();
  pb_opc_enable(1);
}
static void count_end(const char *what, uint64_t mac, uint64_t flop, uint64_t trans) {
  pb_opc_enable(0);
  pb_opcounts c = pb_opc_snapshot();
  uint64_t m = pb_opcounts_kind(&c, -1, PB_OPK_MAC), f = pb_opcounts_kind(&c, -1, PB_OPK_FLOP),
           t = pb_opcounts_kind(&c, -1, PB_OPK_TRANS);
  CHECK(m == mac && f == flop && t == trans,
        "op count %s: got MAC %llu FLOP %llu TRANS %llu, want %llu %llu %llu", what, (unsigned long long)m,
        (unsigned long long)f, (unsigned long long)t, (unsigned long long)mac, (unsigned long long)flop,
        (unsigned long long)trans);
}

/* ------------------------------------------------------------ split GEMMs */

/* Shapes over the 2^23-MAC split threshold of backbone/ops.c, run on 2 threads: each GEMM of
 * matmul fwd/bwd is split by output rows or by output columns (slices on 16-float boundaries,
 * widths not multiples of 16), and must still equal the naive twin. */
static void test_matmul_split(void) {
  static const int shapes[][3] = {{40, 256, 1000}, {600, 200, 72}, {33, 1000, 257}}; /* N, IC, OC */
  const int saved = pb_get_threads();
  pb_set_threads(2);
  for (size_t k = 0; k < sizeof shapes / sizeof *shapes; k++) {
    const int N = shapes[k][0], IC = shapes[k][1], OC = shapes[k][2];
    float *x = frand((size_t)N * IC, 1.0f), *w = frand((size_t)OC * IC, 1.0f), *b = frand(OC, 1.0f);
    float *dy = frand((size_t)N * OC, 1.0f), *y1 = fnew((size_t)N * OC), *y2 = fnew((size_t)N * OC);
    float *di1 = frand((size_t)N * IC, 1.0f), *dw1 = frand((size_t)OC * IC, 1.0f), *db1 = frand(OC, 1.0f);
    float *di2 = fdup(di1, (size_t)N * IC), *dw2 = fdup(dw1, (size_t)OC * IC), *db2 = fdup(db1, OC);
    pb_matmul_fwd(y1, x, w, b, N, IC, OC);
    pb_matmul_fwd_naive(y2, x, w, b, N, IC, OC);
    pb_matmul_bwd(di1, dw1, db1, dy, x, w, N, IC, OC);
    pb_matmul_bwd_naive(di2, dw2, db2, dy, x, w, N, IC, OC);
    double ef = relerr(y1, y2, (size_t)N * OC), ei = relerr(di1, di2, (size_t)N * IC),
           ew = relerr(dw1, dw2, (size_t)OC * IC);
    printf("  split matmul N=%d IC=%d OC=%d, 2 threads: fwd %.2e dinp %.2e dw %.2e\n", N, IC, OC, ef, ei, ew);
    CHECK(ef < TOL_TWIN && ei < TOL_TWIN && ew < TOL_TWIN, "split matmul %dx%dx%d vs naive", N, IC, OC);
    free(x), free(w), free(b), free(dy), free(y1), free(y2);
    free(di1), free(dw1), free(db1), free(di2), free(dw2), free(db2);
  }
  pb_set_threads(saved);
}

/* ------------------------------------------------------------ threaded elementwise kernels */

/* Above PB_ELEMWISE_PAR_MIN elements (default 65536) GELU, add, LayerNorm and dropout split
 * their range over the threads: 2 threads must give exactly the 1-thread result (each element
 * or row is computed by the same code either way), including the LayerNorm dw/db sums and
 * backward accumulation. NR x NC = 90000 elements, rows not a multiple of 16. */
enum { NR = 300, NC = 300, NE = NR * NC };
static void elementwise_run(float *o[8], const float *x, const float *y, const float *w, const float *b) {
  pb_gelu_fwd(o[0], x, NE);
  pb_gelu_bwd(o[1], x, y, NE); /* accumulates onto o[1]'s start values */
  pb_add(o[2], x, y, NE);
  pb_layernorm_fwd(o[3], o[4], o[4] + NR, x, w, b, NR, NC, 1e-12f);
  pb_layernorm_bwd(o[5], o[6], o[6] + NC, y, x, w, o[4], o[4] + NR, NR, NC);
  pb_dropout_fwd(o[7], x, NE, 0.1f, 77);
  pb_dropout_bwd(o[1], y, NE, 0.1f, 77);
}

static void test_elementwise_threads(void) {
  const int saved = pb_get_threads();
  float *x = frand(NE, 2.0f), *y = frand(NE, 1.0f), *w = frand(NC, 1.0f), *b = frand(NC, 1.0f);
  float *o1[8], *o2[8];
  for (int k = 0; k < 8; k++) o1[k] = frand(NE, 1.0f), o2[k] = fdup(o1[k], NE);
  pb_set_threads(1);
  elementwise_run(o1, x, y, w, b);
  pb_set_threads(2);
  elementwise_run(o2, x, y, w, b);
  pb_set_threads(saved);
  static const char *const what[8] = {"gelu fwd", "gelu bwd + dropout bwd", "add", "layernorm fwd",
                                      "layernorm mean/rstd", "layernorm dinp", "layernorm dw/db", "dropout fwd"};
  for (int k = 0; k < 8; k++) {
    CHECK(memcmp(o1[k], o2[k], sizeof(float) * NE) == 0, "%s: 2 threads != 1 thread", what[k]);
    free(o1[k]), free(o2[k]);
  }
  printf("threaded elementwise kernels (%d elements): 2 threads == 1 thread\n", NE);
  free(x), free(y), free(w), free(b);
}

/* ------------------------------------------------------------ matmul */

enum { MN = 7, MIC = 13, MOC = 5 };
static float *m_inp, *m_w, *m_b, *m_R;
static double loss_matmul(void) {
  float out[MN * MOC];
  pb_matmul_fwd(out, m_inp, m_w, m_b, MN, MIC, MOC);
  return dot_d(out, m_R, MN * MOC);
}

static void test_matmul(void) {
  printf("matmul N=%d IC=%d OC=%d\n", MN, MIC, MOC);
  m_inp = frand(MN * MIC, 1.0f);
  m_w = frand(MOC * MIC, 1.0f);
  m_b = frand(MOC, 1.0f);
  m_R = frand(MN * MOC, 1.0f);
  float *o1 = fnew(MN * MOC), *o2 = fnew(MN * MOC);
  for (int withb = 0; withb < 2; withb++) {
    pb_matmul_fwd(o1, m_inp, m_w, withb ? m_b : NULL, MN, MIC, MOC);
    pb_matmul_fwd_naive(o2, m_inp, m_w, withb ? m_b : NULL, MN, MIC, MOC);
    double e = relerr(o1, o2, MN * MOC);
    printf("  fwd vs naive (bias %d): %.2e\n", withb, e);
    CHECK(e < TOL_TWIN, "matmul fwd vs naive %.3e", e);
  }
  /* backward vs naive, starting from the same non-zero gradients (accumulation) */
  float *di0 = frand(MN * MIC, 1.0f), *dw0 = frand(MOC * MIC, 1.0f), *db0 = frand(MOC, 1.0f);
  float *di1 = fdup(di0, MN * MIC), *dw1 = fdup(dw0, MOC * MIC), *db1 = fdup(db0, MOC);
  float *di2 = fdup(di0, MN * MIC), *dw2 = fdup(dw0, MOC * MIC), *db2 = fdup(db0, MOC);
  pb_matmul_bwd(di1, dw1, db1, m_R, m_inp, m_w, MN, MIC, MOC);
  pb_matmul_bwd_naive(di2, dw2, db2, m_R, m_inp, m_w, MN, MIC, MOC);
  double e1 = relerr(di1, di2, MN * MIC), e2 = relerr(dw1, dw2, MOC * MIC), e3 = relerr(db1, db2, MOC);
  printf("  bwd vs naive: dinp %.2e dw %.2e db %.2e\n", e1, e2, e3);
  CHECK(e1 < TOL_TWIN && e2 < TOL_TWIN && e3 < TOL_TWIN, "matmul bwd vs naive");
  /* gradient check + accumulation */
  float *gi = fnew(MN * MIC), *gw = fnew(MOC * MIC), *gb = fnew(MOC);
  pb_matmul_bwd(gi, gw, gb, m_R, m_inp, m_w, MN, MIC, MOC);
  fd_check("matmul dinp", loss_matmul, m_inp, MN * MIC, gi);
  fd_check("matmul dw", loss_matmul, m_w, MOC * MIC, gw);
  fd_check("matmul db", loss_matmul, m_b, MOC, gb);
  float *hi = fdup(gi, MN * MIC), *hw = fdup(gw, MOC * MIC), *hb = fdup(gb, MOC);
  pb_matmul_bwd(hi, hw, hb, m_R, m_inp, m_w, MN, MIC, MOC);
  check_accum("matmul dinp", gi, hi, MN * MIC);
  check_accum("matmul dw", gw, hw, MOC * MIC);
  check_accum("matmul db", gb, hb, MOC);
  /* op counts */
  const uint64_t mac = (uint64_t)MN * MIC * MOC, nb = (uint64_t)MN * MOC;
  count_begin(); pb_matmul_fwd(o1, m_inp, m_w, m_b, MN, MIC, MOC); count_end("matmul_fwd b", mac, nb, 0);
  count_begin(); pb_matmul_fwd(o1, m_inp, m_w, NULL, MN, MIC, MOC); count_end("matmul_fwd", mac, 0, 0);
  count_begin(); pb_matmul_fwd_naive(o1, m_inp, m_w, m_b, MN, MIC, MOC); count_end("matmul_fwd_naive", mac, nb, 0);
  count_begin(); pb_matmul_bwd(hi, hw, hb, m_R, m_inp, m_w, MN, MIC, MOC); count_end("matmul_bwd all", 2 * mac, nb, 0);
  count_begin(); pb_matmul_bwd(hi, NULL, NULL, m_R, m_inp, m_w, MN, MIC, MOC); count_end("matmul_bwd dinp", mac, 0, 0);
  count_begin(); pb_matmul_bwd(NULL, hw, NULL, m_R, m_inp, m_w, MN, MIC, MOC); count_end("matmul_bwd dw", mac, 0, 0);
  count_begin(); pb_matmul_bwd(NULL, NULL, hb, m_R, m_inp, m_w, MN, MIC, MOC); count_end("matmul_bwd db", 0, nb, 0);
  count_begin(); pb_matmul_bwd_naive(hi, NULL, hb, m_R, m_inp, m_w, MN, MIC, MOC); count_end("matmul_bwd_naive", mac, nb, 0);
  free(o1); free(o2); free(di0); free(dw0); free(db0); free(di1); free(dw1); free(db1); free(di2); free(dw2);
  free(db2); free(gi); free(gw); free(gb); free(hi); free(hw); free(hb);
  free(m_inp); free(m_w); free(m_b); free(m_R);
}

/* ------------------------------------------------------------ layernorm */

enum { LN = 4, LC = 9 };
static float *l_inp, *l_w, *l_b, *l_R;
static double loss_ln(void) {
  float out[LN * LC], mean[LN], rstd[LN];
  pb_layernorm_fwd(out, mean, rstd, l_inp, l_w, l_b, LN, LC, 1e-5f);
  return dot_d(out, l_R, LN * LC);
}

static void test_layernorm(void) {
  printf("layernorm N=%d C=%d\n", LN, LC);
  l_inp = frand(LN * LC, 2.0f);
  l_w = frand(LC, 1.0f);
  l_b = frand(LC, 1.0f);
  l_R = frand(LN * LC, 1.0f);
  float out[LN * LC], mean[LN], rstd[LN];
  pb_layernorm_fwd(out, mean, rstd, l_inp, l_w, l_b, LN, LC, 1e-5f);
  /* forward against a double reference */
  double maxe = 0.0;
  for (int n = 0; n < LN; n++) {
    double m = 0, v = 0;
    for (int i = 0; i < LC; i++) m += l_inp[n * LC + i];
    m /= LC;
    for (int i = 0; i < LC; i++) v += (l_inp[n * LC + i] - m) * (l_inp[n * LC + i] - m);
    v /= LC;
    for (int i = 0; i < LC; i++) {
      double y = (l_inp[n * LC + i] - m) / sqrt(v + 1e-5) * l_w[i] + l_b[i];
      if (fabs(y - out[n * LC + i]) > maxe) maxe = fabs(y - out[n * LC + i]);
    }
  }
  printf("  fwd vs double reference: max abs err %.2e (tol 1e-5)\n", maxe);
  CHECK(maxe < 1e-5, "layernorm fwd err %.3e", maxe);
  float *gi = fnew(LN * LC), *gw = fnew(LC), *gb = fnew(LC);
  pb_layernorm_bwd(gi, gw, gb, l_R, l_inp, l_w, mean, rstd, LN, LC);
  fd_check("layernorm dinp", loss_ln, l_inp, LN * LC, gi);
  fd_check("layernorm dw", loss_ln, l_w, LC, gw);
  fd_check("layernorm db", loss_ln, l_b, LC, gb);
  float *hi = fdup(gi, LN * LC), *hw = fdup(gw, LC), *hb = fdup(gb, LC);
  pb_layernorm_bwd(hi, hw, hb, l_R, l_inp, l_w, mean, rstd, LN, LC);
  check_accum("layernorm dinp", gi, hi, LN * LC);
  check_accum("layernorm dw", gw, hw, LC);
  check_accum("layernorm db", gb, hb, LC);
  const uint64_t nc = LN * LC;
  count_begin(); pb_layernorm_fwd(out, mean, rstd, l_inp, l_w, l_b, LN, LC, 1e-5f); count_end("layernorm_fwd", 0, 8 * nc, LN);
  count_begin(); pb_layernorm_bwd(hi, hw, hb, l_R, l_inp, l_w, mean, rstd, LN, LC); count_end("layernorm_bwd all", 0, 14 * nc, 0);
  count_begin(); pb_layernorm_bwd(hi, NULL, NULL, l_R, l_inp, l_w, mean, rstd, LN, LC); count_end("layernorm_bwd dinp", 0, 10 * nc, 0);
  count_begin(); pb_layernorm_bwd(NULL, hw, NULL, l_R, l_inp, l_w, mean, rstd, LN, LC); count_end("layernorm_bwd dw", 0, 3 * nc, 0);
  count_begin(); pb_layernorm_bwd(NULL, NULL, hb, l_R, l_inp, l_w, mean, rstd, LN, LC); count_end("layernorm_bwd db", 0, nc, 0);
  free(gi); free(gw); free(gb); free(hi); free(hw); free(hb);
  free(l_inp); free(l_w); free(l_b); free(l_R);
}

/* ------------------------------------------------------------ activations, add, dropout */

enum { EN = 50 };
static float *e_inp, *e_R;
static int e_kind; /* 0 gelu, 1 tanh, 2 relu, 3 dropout */
static double loss_elem(void) {
  float out[EN];
  switch (e_kind) {
    case 0: pb_gelu_fwd(out, e_inp, EN); break;
    case 1: pb_tanh_fwd(out, e_inp, EN); break;
    case 2: pb_relu_fwd(out, e_inp, EN); break;
    default: pb_dropout_fwd(out, e_inp, EN, 0.3f, 77); break;
  }
  return dot_d(out, e_R, EN);
}

static void test_elementwise(void) {
  printf("elementwise n=%d\n", EN);
  e_inp = frand(EN, 3.0f);
  for (int i = 0; i < EN; i++) /* keep relu away from its kink */
    if (fabsf(e_inp[i]) < 0.05f) e_inp[i] = 0.1f;
  e_R = frand(EN, 1.0f);
  float out[EN], g[EN], h[EN];
  /* forward values against libm in double */
  pb_gelu_fwd(out, e_inp, EN);
  double me = 0;
  for (int i = 0; i < EN; i++) {
    double x = e_inp[i], y = 0.5 * x * (1.0 + erf(x / sqrt(2.0)));
    if (fabs(y - out[i]) > me) me = fabs(y - out[i]);
  }
  printf("  gelu fwd vs double erf form: %.2e (tol 1e-5)\n", me);
  CHECK(me < 1e-5, "gelu fwd %.3e", me);
  const char *names[] = {"gelu", "tanh", "relu", "dropout p=0.3"};
  for (e_kind = 0; e_kind < 4; e_kind++) {
    memset(g, 0, sizeof g);
    for (int rep = 0; rep < 2; rep++) {
      switch (e_kind) {
        case 0: pb_gelu_bwd(g, e_inp, e_R, EN); break;
        case 1: pb_tanh_fwd(out, e_inp, EN); pb_tanh_bwd(g, out, e_R, EN); break;
        case 2: pb_relu_bwd(g, e_inp, e_R, EN); break;
        default: pb_dropout_bwd(g, e_R, EN, 0.3f, 77); break;
      }
      if (rep == 0) {
        memcpy(h, g, sizeof g);
        char nm[64];
        snprintf(nm, sizeof nm, "%s dinp", names[e_kind]);
        fd_check(nm, loss_elem, e_inp, EN, g);
      }
    }
    check_accum(names[e_kind], h, g, EN);
  }
  float a[EN];
  pb_add(a, e_inp, e_R, EN);
  int ok = 1;
  for (int i = 0; i < EN; i++) ok &= a[i] == e_inp[i] + e_R[i];
  memcpy(a, e_inp, sizeof a);
  pb_add(a, a, e_R, EN); /* aliasing allowed */
  for (int i = 0; i < EN; i++) ok &= a[i] == e_inp[i] + e_R[i];
  CHECK(ok, "add");
  const uint64_t n = EN;
  count_begin(); pb_gelu_fwd(out, e_inp, n); count_end("gelu_fwd", 0, 4 * n, n);
  count_begin(); pb_gelu_bwd(g, e_inp, e_R, n); count_end("gelu_bwd", 0, 8 * n, 2 * n);
  count_begin(); pb_tanh_fwd(out, e_inp, n); count_end("tanh_fwd", 0, 0, n);
  count_begin(); pb_tanh_bwd(g, out, e_R, n); count_end("tanh_bwd", 0, 3 * n, 0);
  count_begin(); pb_relu_fwd(out, e_inp, n); count_end("relu_fwd", 0, n, 0);
  count_begin(); pb_relu_bwd(g, e_inp, e_R, n); count_end("relu_bwd", 0, n, 0);
  count_begin(); pb_add(a, e_inp, e_R, n); count_end("add", 0, n, 0);
  count_begin(); pb_dropout_fwd(out, e_inp, n, 0.1f, 3); count_end("dropout_fwd p=0.1", 0, n, 0);
  count_begin(); pb_dropout_bwd(g, e_R, n, 0.1f, 3); count_end("dropout_bwd p=0.1", 0, n, 0);
  count_begin(); pb_dropout_fwd(out, e_inp, n, 0.0f, 3); count_end("dropout_fwd p=0", 0, 0, 0);
  count_begin(); pb_dropout_bwd(g, e_R, n, 0.0f, 3); count_end("dropout_bwd p=0", 0, 0, 0);
  free(e_inp); free(e_R);
}

static void test_dropout(void) {
  enum { DN = 100000 };
  printf("dropout n=%d\n", DN);
  float *x = fnew(DN), *y = fnew(DN), *y2 = fnew(DN), *g = fnew(DN), *ones = fnew(DN);
  for (int i = 0; i < DN; i++) x[i] = ones[i] = 1.0f;
  const float ps[] = {0.1f, 0.5f};
  for (int k = 0; k < 2; k++) {
    float p = ps[k];
    pb_dropout_fwd(y, x, DN, p, 1234);
    int kept = 0, scaled_ok = 1;
    for (int i = 0; i < DN; i++) {
      if (y[i] != 0.0f) {
        kept++;
        scaled_ok &= fabsf(y[i] - 1.0f / (1.0f - p)) < 1e-6f;
      }
      scaled_ok &= (y[i] != 0.0f) == pb_dropout_keep(1234, (uint64_t)i, p);
    }
    double frac = (double)kept / DN;
    printf("  p=%.1f kept fraction %.4f (want %.2f +- 0.01)\n", p, frac, 1.0 - p);
    CHECK(fabs(frac - (1.0 - p)) < 0.01, "dropout kept fraction %.4f for p=%.2f", frac, p);
    CHECK(scaled_ok, "dropout scale 1/(1-p) or keep() disagreement");
    pb_dropout_fwd(y2, x, DN, p, 1234);
    CHECK(memcmp(y, y2, DN * sizeof(float)) == 0, "dropout not deterministic for a seed");
    pb_dropout_fwd(y2, x, DN, p, 1235);
    int diff = 0;
    for (int i = 0; i < DN; i++) diff += (y[i] != 0.0f) != (y2[i] != 0.0f);
    CHECK(diff > DN * p / 2, "dropout masks of seeds 1234/1235 differ in only %d places", diff);
    memset(g, 0, DN * sizeof(float));
    pb_dropout_bwd(g, ones, DN, p, 1234);
    CHECK(memcmp(g, y, DN * sizeof(float)) == 0, "dropout backward mask differs from forward");
    /* in place: fwd out == inp, bwd dinp == dout overwrite */
    memcpy(y2, x, DN * sizeof(float));
    pb_dropout_fwd(y2, y2, DN, p, 1234);
    CHECK(memcmp(y2, y, DN * sizeof(float)) == 0, "dropout in place differs");
    memcpy(y2, x, DN * sizeof(float));
    pb_dropout_bwd(y2, y2, DN, p, 1234);
    CHECK(memcmp(y2, y, DN * sizeof(float)) == 0, "dropout backward in place differs");
  }
  /* p = 0: identity */
  pb_dropout_fwd(y, x, DN, 0.0f, 1);
  CHECK(memcmp(y, x, DN * sizeof(float)) == 0, "dropout p=0 is not the identity");
  memset(g, 0, DN * sizeof(float));
  pb_dropout_bwd(g, ones, DN, 0.0f, 1);
  CHECK(memcmp(g, ones, DN * sizeof(float)) == 0, "dropout bwd p=0 is not dinp += dout");
  CHECK(pb_dropout_keep(9, 9, 0.0f) == 1, "keep with p=0");
  free(x); free(y); free(y2); free(g); free(ones);
}

/* ------------------------------------------------------------ embeddings */

enum { EB = 2, ET = 3, ED = 4, EV = 6, ETY = 2 };
static float *t_wte, *t_wpe, *t_wtt, *t_R;
static const int t_ids[EB * ET] = {1, 5, 1, 0, 3, 5};
static const int t_types[EB * ET] = {0, 0, 1, 0, 1, 1};
static double loss_embed(void) {
  float out[EB * ET * ED];
  pb_embed_fwd(out, t_ids, t_types, t_wte, t_wpe, t_wtt, EB, ET, ED);
  return dot_d(out, t_R, EB * ET * ED);
}

static void test_embed(void) {
  printf("embeddings B=%d T=%d d=%d vocab=%d types=%d\n", EB, ET, ED, EV, ETY);
  t_wte = frand(EV * ED, 1.0f);
  t_wpe = frand(ET * ED, 1.0f);
  t_wtt = frand(ETY * ED, 1.0f);
  t_R = frand(EB * ET * ED, 1.0f);
  float out[EB * ET * ED];
  pb_embed_fwd(out, t_ids, t_types, t_wte, t_wpe, t_wtt, EB, ET, ED);
  int ok = 1;
  for (int r = 0; r < EB * ET; r++)
    for (int i = 0; i < ED; i++)
      ok &= fabsf(out[r * ED + i] - (t_wte[t_ids[r] * ED + i] + t_wpe[(r % ET) * ED + i] +
                                     t_wtt[t_types[r] * ED + i])) < 1e-6f;
  CHECK(ok, "embed fwd values");
  float *ge = fnew(EV * ED), *gp = fnew(ET * ED), *gt = fnew(ETY * ED);
  pb_embed_bwd(ge, gp, gt, t_R, t_ids, t_types, EB, ET, ED);
  fd_check("embed dwte", loss_embed, t_wte, EV * ED, ge);
  fd_check("embed dwpe", loss_embed, t_wpe, ET * ED, gp);
  fd_check("embed dwtt", loss_embed, t_wtt, ETY * ED, gt);
  float *he = fdup(ge, EV * ED), *hp = fdup(gp, ET * ED), *ht = fdup(gt, ETY * ED);
  pb_embed_bwd(he, hp, ht, t_R, t_ids, t_types, EB, ET, ED);
  check_accum("embed dwte", ge, he, EV * ED);
  check_accum("embed dwpe", gp, hp, ET * ED);
  check_accum("embed dwtt", gt, ht, ETY * ED);
  const uint64_t nd = EB * ET * ED;
  count_begin(); pb_embed_fwd(out, t_ids, t_types, t_wte, t_wpe, t_wtt, EB, ET, ED); count_end("embed_fwd", 0, 2 * nd, 0);
  count_begin(); pb_embed_bwd(he, hp, ht, t_R, t_ids, t_types, EB, ET, ED); count_end("embed_bwd all", 0, 3 * nd, 0);
  count_begin(); pb_embed_bwd(NULL, hp, NULL, t_R, t_ids, t_types, EB, ET, ED); count_end("embed_bwd wpe", 0, nd, 0);
  count_begin(); pb_embed_bwd(NULL, NULL, NULL, t_R, t_ids, t_types, EB, ET, ED); count_end("embed_bwd none", 0, 0, 0);
  free(ge); free(gp); free(gt); free(he); free(hp); free(ht);
  free(t_wte); free(t_wpe); free(t_wtt); free(t_R);
}

/* ------------------------------------------------------------ attention */

enum { AB = 2, AT = 5, AD = 12, AA = 3 };
#define ANUM (AB * AT * AD)
#define SNUM (AB * AA * AT * AT)
static float *a_q, *a_k, *a_v, *a_R;
static const int a_mask[AB * AT] = {1, 1, 1, 1, 1, 1, 1, 1, 0, 0}; /* batch 1: last two keys padded */
static float a_p;
static double loss_attn(void) {
  float ctx[ANUM], probs[SNUM];
  pb_attention_fwd(ctx, probs, a_q, a_k, a_v, a_mask, AB, AT, AD, AA, a_p, 4242);
  return dot_d(ctx, a_R, ANUM);
}

static void attn_twins(float p, int threads) {
  pb_set_threads(threads);
  float c1[ANUM], c2[ANUM], p1[SNUM], p2[SNUM], s1[SNUM], s2[SNUM];
  pb_attention_fwd(c1, p1, a_q, a_k, a_v, a_mask, AB, AT, AD, AA, p, 99);
  pb_attention_fwd_naive(c2, p2, a_q, a_k, a_v, a_mask, AB, AT, AD, AA, p, 99);
  double ec = relerr(c1, c2, ANUM), ep = relerr(p1, p2, SNUM);
  float *g1[3], *g2[3];
  for (int i = 0; i < 3; i++) {
    g1[i] = frand(ANUM, 1.0f);
    g2[i] = fdup(g1[i], ANUM);
  }
  pb_attention_bwd(g1[0], g1[1], g1[2], s1, a_R, a_q, a_k, a_v, p1, AB, AT, AD, AA, p, 99);
  pb_attention_bwd_naive(g2[0], g2[1], g2[2], s2, a_R, a_q, a_k, a_v, p2, AB, AT, AD, AA, p, 99);
  double eq = relerr(g1[0], g2[0], ANUM), ek = relerr(g1[1], g2[1], ANUM), ev = relerr(g1[2], g2[2], ANUM);
  printf("  fast vs naive p=%.1f threads=%d: ctx %.2e probs %.2e dq %.2e dk %.2e dv %.2e\n", p, threads, ec, ep,
         eq, ek, ev);
  CHECK(ec < TOL_TWIN && ep < TOL_TWIN && eq < TOL_TWIN && ek < TOL_TWIN && ev < TOL_TWIN,
        "attention fast vs naive (p=%.1f threads=%d)", p, threads);
  /* padded keys get exactly zero probability */
  int zero = 1;
  for (int h = 0; h < AA; h++)
    for (int i = 0; i < AT; i++)
      for (int j = 3; j < AT; j++) zero &= p1[((1 * AA + h) * AT + i) * AT + j] == 0.0f;
  CHECK(zero, "padded keys have non-zero probability");
  for (int i = 0; i < 3; i++) {
    free(g1[i]);
    free(g2[i]);
  }
}

static void test_attention(void) {
  printf("attention B=%d T=%d d=%d A=%d (batch 1 has 2 padded keys)\n", AB, AT, AD, AA);
  a_q = frand(ANUM, 1.0f);
  a_k = frand(ANUM, 1.0f);
  a_v = frand(ANUM, 1.0f);
  a_R = frand(ANUM, 1.0f);
  const int saved = pb_get_threads();
  attn_twins(0.0f, 1);
  attn_twins(0.1f, 1);
  attn_twins(0.0f, 2);
  attn_twins(0.1f, 2);
  /* 1 vs 2 threads give the same result */
  {
    float c1[ANUM], c2[ANUM], pr[SNUM];
    pb_set_threads(1);
    pb_attention_fwd(c1, pr, a_q, a_k, a_v, a_mask, AB, AT, AD, AA, 0.1f, 5);
    pb_set_threads(2);
    pb_attention_fwd(c2, pr, a_q, a_k, a_v, a_mask, AB, AT, AD, AA, 0.1f, 5);
    CHECK(relerr(c1, c2, ANUM) < 1e-6, "attention 1 vs 2 threads");
  }
  pb_set_threads(saved);
  const float ps[] = {0.0f, 0.1f};
  for (int k = 0; k < 2; k++) {
    a_p = ps[k];
    float ctx[ANUM], probs[SNUM], scratch[SNUM];
    pb_attention_fwd(ctx, probs, a_q, a_k, a_v, a_mask, AB, AT, AD, AA, a_p, 4242);
    float *gq = fnew(ANUM), *gk = fnew(ANUM), *gv = fnew(ANUM);
    pb_attention_bwd(gq, gk, gv, scratch, a_R, a_q, a_k, a_v, probs, AB, AT, AD, AA, a_p, 4242);
    char nm[64];
    snprintf(nm, sizeof nm, "attention dq (p=%.1f)", a_p);
    fd_check_tol(nm, loss_attn, a_q, ANUM, gq, TOL_GRAD_ATTN_QK);
    snprintf(nm, sizeof nm, "attention dk (p=%.1f)", a_p);
    fd_check_tol(nm, loss_attn, a_k, ANUM, gk, TOL_GRAD_ATTN_QK);
    snprintf(nm, sizeof nm, "attention dv (p=%.1f)", a_p);
    fd_check(nm, loss_attn, a_v, ANUM, gv);
    /* padded keys/values get no gradient */
    int zero = 1;
    for (int t = 3; t < AT; t++)
      for (int i = 0; i < AD; i++) zero &= gk[(AT + t) * AD + i] == 0.0f && gv[(AT + t) * AD + i] == 0.0f;
    CHECK(zero, "padded keys received gradient");
    float *hq = fdup(gq, ANUM), *hk = fdup(gk, ANUM), *hv = fdup(gv, ANUM);
    pb_attention_bwd(hq, hk, hv, scratch, a_R, a_q, a_k, a_v, probs, AB, AT, AD, AA, a_p, 4242);
    check_accum("attention dq", gq, hq, ANUM);
    check_accum("attention dk", gk, hk, ANUM);
    check_accum("attention dv", gv, hv, ANUM);
    const uint64_t S = SNUM, hd = AD / AA, dr = a_p > 0 ? S : 0;
    count_begin(); pb_attention_fwd(ctx, probs, a_q, a_k, a_v, a_mask, AB, AT, AD, AA, a_p, 1);
    count_end("attention_fwd", 2 * S * hd, 6 * S + dr, S);
    count_begin(); pb_attention_fwd_naive(ctx, probs, a_q, a_k, a_v, a_mask, AB, AT, AD, AA, a_p, 1);
    count_end("attention_fwd_naive", 2 * S * hd, 6 * S + dr, S);
    count_begin(); pb_attention_bwd(hq, hk, hv, scratch, a_R, a_q, a_k, a_v, probs, AB, AT, AD, AA, a_p, 1);
    count_end("attention_bwd", 4 * S * hd, 4 * S + dr, 0);
    count_begin(); pb_attention_bwd_naive(hq, hk, hv, scratch, a_R, a_q, a_k, a_v, probs, AB, AT, AD, AA, a_p, 1);
    count_end("attention_bwd_naive", 4 * S * hd, 4 * S + dr, 0);
    count_begin(); pb_attention_bwd(NULL, NULL, hv, scratch, a_R, a_q, a_k, a_v, probs, AB, AT, AD, AA, a_p, 1);
    count_end("attention_bwd dv only", S * hd, 0, 0);
    free(gq); free(gk); free(gv); free(hq); free(hk); free(hv);
  }
  free(a_q); free(a_k); free(a_v); free(a_R);
}

/* ------------------------------------------------------------ attention with a key/value prefix */

/* B=2, T=5, P=3 prefix keys, d=12, A=3; batch row 1 has its last two token keys padded */
enum { XP = 3, XS = XP + AT };
#define XQNUM (AB * AT * AD)      /* q, ctx, dq */
#define XKNUM (AB * XS * AD)      /* kx, vx, dkx, dvx */
#define XSNUM (AB * AA * AT * XS) /* probs, scratch */
static float *x_q, *x_k, *x_v, *x_R;
static float x_p;
static double loss_attn_prefix(void) {
  float ctx[XQNUM], probs[XSNUM];
  pb_attention_prefix_fwd(ctx, probs, x_q, x_k, x_v, a_mask, AB, AT, XP, AD, AA, x_p, 4243);
  return dot_d(ctx, x_R, XQNUM);
}

static void attn_prefix_twins(float p, int threads) {
  pb_set_threads(threads);
  float c1[XQNUM], c2[XQNUM], p1[XSNUM], p2[XSNUM], s1[XSNUM], s2[XSNUM];
  pb_attention_prefix_fwd(c1, p1, x_q, x_k, x_v, a_mask, AB, AT, XP, AD, AA, p, 99);
  pb_attention_prefix_fwd_naive(c2, p2, x_q, x_k, x_v, a_mask, AB, AT, XP, AD, AA, p, 99);
  float *gq1 = frand(XQNUM, 1.0f), *gk1 = frand(XKNUM, 1.0f), *gv1 = frand(XKNUM, 1.0f);
  float *gq2 = fdup(gq1, XQNUM), *gk2 = fdup(gk1, XKNUM), *gv2 = fdup(gv1, XKNUM);
  pb_attention_prefix_bwd(gq1, gk1, gv1, s1, x_R, x_q, x_k, x_v, p1, AB, AT, XP, AD, AA, p, 99);
  pb_attention_prefix_bwd_naive(gq2, gk2, gv2, s2, x_R, x_q, x_k, x_v, p2, AB, AT, XP, AD, AA, p, 99);
  double ec = relerr(c1, c2, XQNUM), ep = relerr(p1, p2, XSNUM), eq = relerr(gq1, gq2, XQNUM),
         ek = relerr(gk1, gk2, XKNUM), ev = relerr(gv1, gv2, XKNUM);
  printf("  prefix fast vs naive p=%.1f threads=%d: ctx %.2e probs %.2e dq %.2e dkx %.2e dvx %.2e\n", p, threads,
         ec, ep, eq, ek, ev);
  CHECK(ec < TOL_TWIN && ep < TOL_TWIN && eq < TOL_TWIN && ek < TOL_TWIN && ev < TOL_TWIN,
        "prefix attention fast vs naive (p=%.1f threads=%d)", p, threads);
  /* padded token keys get exactly zero probability, prefix keys never do */
  int zero = 1, pos = 1;
  for (int b = 0; b < AB; b++)
    for (int h = 0; h < AA; h++)
      for (int i = 0; i < AT; i++) {
        const float *row = p1 + ((size_t)(b * AA + h) * AT + i) * XS;
        for (int j = 0; j < XP; j++) pos &= row[j] > 0.0f;
        for (int t = 0; t < AT; t++)
          if (a_mask[b * AT + t] == 0) zero &= row[XP + t] == 0.0f;
      }
  CHECK(zero, "prefix attention: padded token keys have non-zero probability");
  CHECK(pos, "prefix attention: a prefix key has zero probability");
  free(gq1), free(gk1), free(gv1), free(gq2), free(gk2), free(gv2);
}

static void test_attention_prefix(void) {
  printf("attention with prefix B=%d T=%d P=%d d=%d A=%d (batch 1 has 2 padded token keys)\n", AB, AT, XP, AD, AA);
  x_q = frand(XQNUM, 1.0f);
  x_k = frand(XKNUM, 1.0f);
  x_v = frand(XKNUM, 1.0f);
  x_R = frand(XQNUM, 1.0f);
  const int saved = pb_get_threads();
  attn_prefix_twins(0.0f, 1);
  attn_prefix_twins(0.1f, 1);
  attn_prefix_twins(0.0f, 2);
  attn_prefix_twins(0.1f, 2);
  pb_set_threads(saved);

  /* P = 0 is pb_attention_fwd/bwd bit for bit (fast and naive, with dropout) */
  {
    float c1[ANUM], c2[ANUM], p1[SNUM], p2[SNUM], s[SNUM];
    float *q = frand(ANUM, 1.0f), *k = frand(ANUM, 1.0f), *v = frand(ANUM, 1.0f), *R = frand(ANUM, 1.0f);
    int same = 1;
    for (int naive = 0; naive < 2; naive++) {
      float *g1[3], *g2[3];
      for (int i = 0; i < 3; i++) g1[i] = frand(ANUM, 1.0f), g2[i] = fdup(g1[i], ANUM);
      if (naive) {
        pb_attention_fwd_naive(c1, p1, q, k, v, a_mask, AB, AT, AD, AA, 0.1f, 7);
        pb_attention_prefix_fwd_naive(c2, p2, q, k, v, a_mask, AB, AT, 0, AD, AA, 0.1f, 7);
        pb_attention_bwd_naive(g1[0], g1[1], g1[2], s, R, q, k, v, p1, AB, AT, AD, AA, 0.1f, 7);
        pb_attention_prefix_bwd_naive(g2[0], g2[1], g2[2], s, R, q, k, v, p2, AB, AT, 0, AD, AA, 0.1f, 7);
      } else {
        pb_attention_fwd(c1, p1, q, k, v, a_mask, AB, AT, AD, AA, 0.1f, 7);
        pb_attention_prefix_fwd(c2, p2, q, k, v, a_mask, AB, AT, 0, AD, AA, 0.1f, 7);
        pb_attention_bwd(g1[0], g1[1], g1[2], s, R, q, k, v, p1, AB, AT, AD, AA, 0.1f, 7);
        pb_attention_prefix_bwd(g2[0], g2[1], g2[2], s, R, q, k, v, p2, AB, AT, 0, AD, AA, 0.1f, 7);
      }
      same &= memcmp(c1, c2, sizeof c1) == 0 && memcmp(p1, p2, sizeof p1) == 0;
      for (int i = 0; i < 3; i++) {
        same &= memcmp(g1[i], g2[i], ANUM * sizeof(float)) == 0;
        free(g1[i]), free(g2[i]);
      }
    }
    free(q), free(k), free(v), free(R);
    CHECK(same, "prefix attention with P=0 differs from pb_attention_fwd/bwd");
    printf("  P=0 == pb_attention_fwd/bwd bit for bit (fast and naive, p=0.1): %s\n", same ? "yes" : "NO");
  }

  /* the prefix rows act as extra keys: equal to plain attention over P+T tokens (prefix rows first,
   * never masked) read at the last T query rows; the P extra query rows are arbitrary */
  {
    float q2[AB * XS * AD], c2[AB * XS * AD], p2[AB * AA * XS * XS], c1[XQNUM], p1[XSNUM];
    int m2[AB * XS];
    for (int b = 0; b < AB; b++) {
      for (int j = 0; j < XS; j++) m2[b * XS + j] = j < XP ? 1 : a_mask[b * AT + j - XP];
      for (int t = 0; t < XS; t++)
        for (int i = 0; i < AD; i++)
          q2[(b * XS + t) * AD + i] = t < XP ? 0.5f : x_q[(b * AT + t - XP) * AD + i];
    }
    pb_attention_fwd_naive(c2, p2, q2, x_k, x_v, m2, AB, XS, AD, AA, 0.0f, 1);
    pb_attention_prefix_fwd(c1, p1, x_q, x_k, x_v, a_mask, AB, AT, XP, AD, AA, 0.0f, 1);
    float ref[XQNUM];
    for (int b = 0; b < AB; b++) memcpy(ref + b * AT * AD, c2 + (b * XS + XP) * AD, AT * AD * sizeof(float));
    double e = relerr(c1, ref, XQNUM);
    printf("  prefix == plain attention over P+T tokens (naive), last T rows: %.2e (tol %.0e)\n", e, TOL_TWIN);
    CHECK(e < TOL_TWIN, "prefix attention vs plain attention over P+T tokens: %.3e", e);
  }

  /* dropout: the forward uses element index ((b*A+h)*T+i)*(P+T)+j, and the backward regenerates
   * the same mask: ctx and dvx against a double computation from pb_dropout_keep */
  {
    const float p = 0.3f, dsc = 1.0f / (1.0f - p);
    const int hd = AD / AA;
    float ctx[XQNUM], probs[XSNUM], s[XSNUM], *gv = fnew(XKNUM);
    pb_attention_prefix_fwd(ctx, probs, x_q, x_k, x_v, a_mask, AB, AT, XP, AD, AA, p, 31);
    pb_attention_prefix_bwd(NULL, NULL, gv, s, x_R, x_q, x_k, x_v, probs, AB, AT, XP, AD, AA, p, 31);
    double *rc = calloc(XQNUM, sizeof(double)), *rv = calloc(XKNUM, sizeof(double));
    for (int b = 0; b < AB; b++)
      for (int h = 0; h < AA; h++)
        for (int i = 0; i < AT; i++)
          for (int j = 0; j < XS; j++) {
            const uint64_t e = ((uint64_t)(b * AA + h) * AT + i) * XS + j;
            const double pd = pb_dropout_keep(31, e, p) ? (double)probs[e] * dsc : 0.0;
            for (int x = 0; x < hd; x++) {
              rc[(b * AT + i) * AD + h * hd + x] += pd * x_v[(b * XS + j) * AD + h * hd + x];
              rv[(b * XS + j) * AD + h * hd + x] += pd * x_R[(b * AT + i) * AD + h * hd + x];
            }
          }
    double ec = 0, ev = 0;
    for (int i = 0; i < XQNUM; i++) ec = fmax(ec, fabs(ctx[i] - rc[i]));
    for (int i = 0; i < XKNUM; i++) ev = fmax(ev, fabs(gv[i] - rv[i]));
    printf("  dropout p=%.1f: ctx and dvx vs pb_dropout_keep masks in double: %.2e %.2e (tol 1e-5)\n", p, ec, ev);
    CHECK(ec < 1e-5 && ev < 1e-5, "prefix attention dropout masks: ctx %.3e dvx %.3e", ec, ev);
    free(gv), free(rc), free(rv);
  }

  /* every token key masked: the prefix takes all the probability */
  {
    int m0[AB * AT] = {0};
    float ctx[XQNUM], probs[XSNUM];
    pb_attention_prefix_fwd(ctx, probs, x_q, x_k, x_v, m0, AB, AT, XP, AD, AA, 0.0f, 1);
    int ok = 1;
    for (int r = 0; r < AB * AA * AT; r++) {
      double sp = 0;
      for (int j = 0; j < XS; j++) {
        if (j < XP) sp += probs[r * XS + j];
        else ok &= probs[r * XS + j] == 0.0f;
      }
      ok &= fabs(sp - 1.0) < 1e-6;
    }
    CHECK(ok, "prefix attention, all token keys masked: prefix probabilities must sum to 1");
  }

  /* finite differences of q, kx (prefix and token rows), vx; accumulation */
  const float ps[] = {0.0f, 0.1f};
  for (int k = 0; k < 2; k++) {
    x_p = ps[k];
    float ctx[XQNUM], probs[XSNUM], scratch[XSNUM];
    pb_attention_prefix_fwd(ctx, probs, x_q, x_k, x_v, a_mask, AB, AT, XP, AD, AA, x_p, 4243);
    float *gq = fnew(XQNUM), *gk = fnew(XKNUM), *gv = fnew(XKNUM);
    pb_attention_prefix_bwd(gq, gk, gv, scratch, x_R, x_q, x_k, x_v, probs, AB, AT, XP, AD, AA, x_p, 4243);
    char nm[64];
    snprintf(nm, sizeof nm, "prefix attention dq (p=%.1f)", x_p);
    fd_check_tol(nm, loss_attn_prefix, x_q, XQNUM, gq, TOL_GRAD_ATTN_PREFIX_QK);
    snprintf(nm, sizeof nm, "prefix attention dkx (p=%.1f)", x_p);
    fd_check_tol(nm, loss_attn_prefix, x_k, XKNUM, gk, TOL_GRAD_ATTN_PREFIX_QK);
    snprintf(nm, sizeof nm, "prefix attention dvx (p=%.1f)", x_p);
    fd_check_tol(nm, loss_attn_prefix, x_v, XKNUM, gv, TOL_GRAD_ATTN_PREFIX_V);
    /* padded token keys/values get no gradient; prefix rows do */
    int zero = 1;
    double gp = 0;
    for (int t = 3; t < AT; t++)
      for (int i = 0; i < AD; i++)
        zero &= gk[(XS + XP + t) * AD + i] == 0.0f && gv[(XS + XP + t) * AD + i] == 0.0f;
    for (int b = 0; b < AB; b++)
      for (int i = 0; i < XP * AD; i++) gp += fabs(gk[b * XS * AD + i]) + fabs(gv[b * XS * AD + i]);
    CHECK(zero, "prefix attention: padded token keys received gradient");
    CHECK(gp > 0, "prefix attention: prefix rows received no gradient");
    float *hq = fdup(gq, XQNUM), *hk = fdup(gk, XKNUM), *hv = fdup(gv, XKNUM);
    pb_attention_prefix_bwd(hq, hk, hv, scratch, x_R, x_q, x_k, x_v, probs, AB, AT, XP, AD, AA, x_p, 4243);
    check_accum("prefix attention dq", gq, hq, XQNUM);
    check_accum("prefix attention dkx", gk, hk, XKNUM);
    check_accum("prefix attention dvx", gv, hv, XKNUM);
    /* op counts: the ops.h rows with S = B*A*T*(P+T), written out here */
    const uint64_t S = (uint64_t)AB * AA * AT * (XP + AT), hd = AD / AA, dr = x_p > 0 ? S : 0;
    count_begin(); pb_attention_prefix_fwd(ctx, probs, x_q, x_k, x_v, a_mask, AB, AT, XP, AD, AA, x_p, 1);
    count_end("attention_prefix_fwd", 2 * S * hd, 6 * S + dr, S);
    count_begin(); pb_attention_prefix_fwd_naive(ctx, probs, x_q, x_k, x_v, a_mask, AB, AT, XP, AD, AA, x_p, 1);
    count_end("attention_prefix_fwd_naive", 2 * S * hd, 6 * S + dr, S);
    count_begin(); pb_attention_prefix_bwd(hq, hk, hv, scratch, x_R, x_q, x_k, x_v, probs, AB, AT, XP, AD, AA, x_p, 1);
    count_end("attention_prefix_bwd", 4 * S * hd, 4 * S + dr, 0);
    count_begin(); pb_attention_prefix_bwd_naive(hq, hk, hv, scratch, x_R, x_q, x_k, x_v, probs, AB, AT, XP, AD, AA, x_p, 1);
    count_end("attention_prefix_bwd_naive", 4 * S * hd, 4 * S + dr, 0);
    count_begin(); pb_attention_prefix_bwd(NULL, NULL, hv, scratch, x_R, x_q, x_k, x_v, probs, AB, AT, XP, AD, AA, x_p, 1);
    count_end("attention_prefix_bwd dvx only", S * hd, 0, 0);
    count_begin(); pb_attention_prefix_bwd(hq, NULL, NULL, scratch, x_R, x_q, x_k, x_v, probs, AB, AT, XP, AD, AA, x_p, 1);
    count_end("attention_prefix_bwd dq only", 2 * S * hd, 4 * S + dr, 0);
    free(gq); free(gk); free(gv); free(hq); free(hk); free(hv);
  }
  free(x_q); free(x_k); free(x_v); free(x_R);
}

/* ------------------------------------------------------------ losses */

enum { LB = 4, LCC = 3 };
static float *c_logits, *c_pred, *c_target;
static const int c_labels[LB] = {0, 2, 1, 2};
static double loss_ce(void) {
  float probs[LB * LCC];
  return pb_softmax_ce_fwd(probs, c_logits, c_labels, LB, LCC);
}
static double loss_mse(void) { return pb_mse_fwd(c_pred, c_target, LB); }
static float *c_teacher, c_tau = 1.0f;
static double loss_kd(void) { return pb_kd_ce_fwd(c_logits, c_teacher, LB, LCC, c_tau); }
static double loss_pair(void) { return pb_mse_pair_fwd(c_logits, c_teacher, LB * LCC); }

static void test_losses(void) {
  printf("losses B=%d C=%d\n", LB, LCC);
  c_logits = frand(LB * LCC, 2.0f);
  c_pred = frand(LB, 2.0f);
  c_target = frand(LB, 2.0f);
  float probs[LB * LCC];
  float L = pb_softmax_ce_fwd(probs, c_logits, c_labels, LB, LCC);
  double ref = 0;
  for (int b = 0; b < LB; b++) {
    double s = 0;
    for (int c = 0; c < LCC; c++) s += exp(c_logits[b * LCC + c]);
    ref += log(s) - c_logits[b * LCC + c_labels[b]];
  }
  ref /= LB;
  printf("  softmax_ce %.6f vs double %.6f\n", L, ref);
  CHECK(fabs(L - ref) < 1e-5, "softmax_ce value");
  float g[LB * LCC] = {0}, h[LB * LCC];
  pb_softmax_ce_bwd(g, probs, c_labels, LB, LCC);
  fd_check("softmax_ce dlogits", loss_ce, c_logits, LB * LCC, g);
  memcpy(h, g, sizeof g);
  pb_softmax_ce_bwd(h, probs, c_labels, LB, LCC);
  check_accum("softmax_ce", g, h, LB * LCC);
  int bad[LB] = {0, 7, 1, 2};
  CHECK(isnan(pb_softmax_ce_fwd(probs, c_logits, bad, LB, LCC)), "invalid label must give NaN loss");
  float m = pb_mse_fwd(c_pred, c_target, LB);
  double mref = 0;
  for (int b = 0; b < LB; b++) mref += ((double)c_pred[b] - c_target[b]) * ((double)c_pred[b] - c_target[b]);
  mref /= LB;
  CHECK(fabs(m - mref) < 1e-5, "mse value %f vs %f", m, mref);
  float gm[LB] = {0}, hm[LB];
  pb_mse_bwd(gm, c_pred, c_target, LB);
  fd_check("mse dpred", loss_mse, c_pred, LB, gm);
  memcpy(hm, gm, sizeof gm);
  pb_mse_bwd(hm, c_pred, c_target, LB);
  check_accum("mse", gm, hm, LB);
  const uint64_t B = LB, BC = LB * LCC;
  count_begin(); pb_softmax_ce_fwd(probs, c_logits, c_labels, LB, LCC); count_end("softmax_ce_fwd", 0, 4 * BC + B, BC + B);
  count_begin(); pb_softmax_ce_bwd(h, probs, c_labels, LB, LCC); count_end("softmax_ce_bwd", 0, 2 * BC, 0);
  count_begin(); pb_mse_fwd(c_pred, c_target, LB); count_end("mse_fwd", 0, 3 * B, 0);
  count_begin(); pb_mse_bwd(hm, c_pred, c_target, LB); count_end("mse_bwd", 0, 2 * B, 0);
  /* prediction distillation: the value against a double re-computation, both gradients */
  c_teacher = frand(LB * LCC, 2.0f);
  for (int ti = 0; ti < 2; ti++) {
    c_tau = ti ? 2.5f : 1.0f;
    const float K = pb_kd_ce_fwd(c_logits, c_teacher, LB, LCC, c_tau);
    double kref = 0;
    for (int b = 0; b < LB; b++) {
      double sz = 0, st = 0, mz = -1e300, mt = -1e300;
      for (int c = 0; c < LCC; c++) {
        mz = fmax(mz, c_logits[b * LCC + c] / c_tau);
        mt = fmax(mt, c_teacher[b * LCC + c] / c_tau);
      }
      for (int c = 0; c < LCC; c++) sz += exp(c_logits[b * LCC + c] / c_tau - mz), st += exp(c_teacher[b * LCC + c] / c_tau - mt);
      for (int c = 0; c < LCC; c++) {
        const double q = exp(c_teacher[b * LCC + c] / c_tau - mt) / st, lp = c_logits[b * LCC + c] / c_tau - mz - log(sz);
        kref -= q * lp;
      }
    }
    kref *= (double)c_tau * c_tau / LB;
    printf("  kd_ce (tau %g) %.6f vs double %.6f\n", (double)c_tau, K, kref);
    CHECK(fabs(K - kref) < 1e-5, "kd_ce value at tau %g: %f vs %f", (double)c_tau, K, kref);
    float gk[LB * LCC] = {0}, hk[LB * LCC];
    pb_kd_ce_bwd(gk, c_logits, c_teacher, LB, LCC, c_tau, 1.0f);
    /* at tau 2.5 the loss is 7.2 (tau^2 times the teacher's entropy included), returned in float: its
     * rounding (~5e-7) over 2 eps gives the measured 1.0e-3; at tau 1 2.2e-4 */
    fd_check_tol("kd_ce dz", loss_kd, c_logits, LB * LCC, gk, ti ? 3e-3 : TOL_GRAD);
    memcpy(hk, gk, sizeof gk);
    pb_kd_ce_bwd(hk, c_logits, c_teacher, LB, LCC, c_tau, 1.0f);
    check_accum("kd_ce", gk, hk, LB * LCC);
    float g3[LB * LCC] = {0};
    pb_kd_ce_bwd(g3, c_logits, c_teacher, LB, LCC, c_tau, 0.25f);
    double e3 = 0;
    for (int i = 0; i < LB * LCC; i++) e3 = fmax(e3, fabs(g3[i] - 0.25f * gk[i]));
    CHECK(e3 < 1e-7, "kd_ce_bwd scale: max difference %g", e3);
  }
  CHECK(isnan(pb_kd_ce_fwd(c_logits, c_teacher, LB, LCC, 0.0f)), "kd_ce at tau 0 must be NaN");
  /* representation distillation */
  const float kp = pb_mse_pair_fwd(c_logits, c_teacher, LB * LCC);
  double pref = 0;
  for (int i = 0; i < LB * LCC; i++) pref += ((double)c_logits[i] - c_teacher[i]) * ((double)c_logits[i] - c_teacher[i]);
  pref /= LB * LCC;
  CHECK(fabs(kp - pref) < 1e-5, "mse_pair value %f vs %f", kp, pref);
  float gp[LB * LCC] = {0}, hp[LB * LCC];
  pb_mse_pair_bwd(gp, c_logits, c_teacher, LB * LCC, 1.0f);
  fd_check("mse_pair da", loss_pair, c_logits, LB * LCC, gp);
  memcpy(hp, gp, sizeof gp);
  pb_mse_pair_bwd(hp, c_logits, c_teacher, LB * LCC, 1.0f);
  check_accum("mse_pair", gp, hp, LB * LCC);
  count_begin(); pb_kd_ce_fwd(c_logits, c_teacher, LB, LCC, 2.0f); count_end("kd_ce_fwd", 0, 11 * BC + 2 * B, 2 * BC + B);
  count_begin(); pb_kd_ce_bwd(hp, c_logits, c_teacher, LB, LCC, 2.0f, 1.0f); count_end("kd_ce_bwd", 0, 11 * BC, 2 * BC);
  count_begin(); pb_mse_pair_fwd(c_logits, c_teacher, BC); count_end("mse_pair_fwd", 0, 3 * BC + 1, 0);
  count_begin(); pb_mse_pair_bwd(hp, c_logits, c_teacher, BC, 1.0f); count_end("mse_pair_bwd", 0, 3 * BC, 0);
  free(c_teacher);
  /* owner routing: counts land on the current owner */
  int prev = pb_opc_set_owner(PB_OPO_HEAD);
  count_begin();
  pb_mse_fwd(c_pred, c_target, LB);
  pb_opc_enable(0);
  pb_opcounts c = pb_opc_snapshot();
  CHECK(c.c[PB_OPO_HEAD][PB_OPK_FLOP] == 3 * B && c.c[PB_OPO_BACKBONE][PB_OPK_FLOP] == 0, "owner routing");
  pb_opc_set_owner(prev);
  free(c_logits); free(c_pred); free(c_target);
}

/* ------------------------------------------------------------ counting-only mode */

/* Every kernel (and naive twin) in counting-only mode charges its closed form and touches no
 * memory: every buffer is PROT_NONE address space, so any read or write would crash the test. */
static void test_counting_only(void) {
  float *X = pb_reserve_floats((size_t)1 << 20);
  int *I = (int *)X;
  CHECK(X != NULL, "reserve address space");
  if (!X) return;
  const uint64_t N = 5, IC = 7, OC = 3, C = 6, B = 2, T = 4, d = 8, A = 2, n = 11;
  const uint64_t S = B * A * T * T, hd = d / A, BC = B * C;
  pb_opcounter saved;
#define COUNT_ONLY(what, call, mac, flop, trans)                                                              \
  do {                                                                                                         \
    pb_opcounts got_ = {{{0}}};                                                                                \
    pb_opc_count_begin(&saved);                                                                                \
    call;                                                                                                      \
    pb_opc_count_end(&saved, &got_);                                                                           \
    uint64_t m_ = pb_opcounts_kind(&got_, -1, PB_OPK_MAC), f_ = pb_opcounts_kind(&got_, -1, PB_OPK_FLOP),      \
             t_ = pb_opcounts_kind(&got_, -1, PB_OPK_TRANS);                                                   \
    CHECK(m_ == (mac) && f_ == (flop) && t_ == (trans),                                                        \
          "counting-only %s: MAC %llu FLOP %llu TRANS %llu, want %llu %llu %llu", what, (unsigned long long)m_, \
          (unsigned long long)f_, (unsigned long long)t_, (unsigned long long)(mac), (unsigned long long)(flop), \
          (unsigned long long)(trans));                                                                        \
  } while (0)
  COUNT_ONLY("matmul_fwd", pb_matmul_fwd(X, X, X, X, N, IC, OC), N * IC * OC, N * OC, 0);
  COUNT_ONLY("matmul_fwd_naive", pb_matmul_fwd_naive(X, X, X, NULL, N, IC, OC), N * IC * OC, 0, 0);
  COUNT_ONLY("matmul_bwd", pb_matmul_bwd(X, X, X, X, X, X, N, IC, OC), 2 * N * IC * OC, N * OC, 0);
  COUNT_ONLY("matmul_bwd_naive", pb_matmul_bwd_naive(NULL, X, NULL, X, X, X, N, IC, OC), N * IC * OC, 0, 0);
  COUNT_ONLY("layernorm_fwd", pb_layernorm_fwd(X, X, X, X, X, X, N, C, 1e-5f), 0, 8 * N * C, N);
  COUNT_ONLY("layernorm_bwd", pb_layernorm_bwd(X, X, X, X, X, X, X, X, N, C), 0, 14 * N * C, 0);
  COUNT_ONLY("gelu_fwd", pb_gelu_fwd(X, X, n), 0, 4 * n, n);
  COUNT_ONLY("gelu_bwd", pb_gelu_bwd(X, X, X, n), 0, 8 * n, 2 * n);
  COUNT_ONLY("tanh_fwd", pb_tanh_fwd(X, X, n), 0, 0, n);
  COUNT_ONLY("tanh_bwd", pb_tanh_bwd(X, X, X, n), 0, 3 * n, 0);
  COUNT_ONLY("relu_fwd", pb_relu_fwd(X, X, n), 0, n, 0);
  COUNT_ONLY("relu_bwd", pb_relu_bwd(X, X, X, n), 0, n, 0);
  COUNT_ONLY("add", pb_add(X, X, X, n), 0, n, 0);
  COUNT_ONLY("dropout_fwd p=0.1", pb_dropout_fwd(X, X, n, 0.1f, 3), 0, n, 0);
  COUNT_ONLY("dropout_fwd p=0", pb_dropout_fwd(X, X + 64, n, 0.0f, 3), 0, 0, 0);
  COUNT_ONLY("dropout_bwd p=0.1", pb_dropout_bwd(X, X + 64, n, 0.1f, 3), 0, n, 0);
  COUNT_ONLY("dropout_bwd p=0", pb_dropout_bwd(X, X + 64, n, 0.0f, 3), 0, 0, 0);
  COUNT_ONLY("embed_fwd", pb_embed_fwd(X, I, I, X, X, X, B, T, d), 0, 2 * B * T * d, 0);
  COUNT_ONLY("embed_bwd", pb_embed_bwd(X, X, X, X, I, I, B, T, d), 0, 3 * B * T * d, 0);
  COUNT_ONLY("attention_fwd", pb_attention_fwd(X, X, X, X, X, I, B, T, d, A, 0.1f, 5), 2 * S * hd, 7 * S, S);
  COUNT_ONLY("attention_fwd_naive", pb_attention_fwd_naive(X, X, X, X, X, NULL, B, T, d, A, 0.0f, 5), 2 * S * hd,
             6 * S, S);
  COUNT_ONLY("attention_bwd", pb_attention_bwd(X, X, X, X, X, X, X, X, X, B, T, d, A, 0.1f, 5), 4 * S * hd, 5 * S, 0);
  COUNT_ONLY("attention_bwd_naive dv", pb_attention_bwd_naive(NULL, NULL, X, X, X, X, X, X, X, B, T, d, A, 0.0f, 5),
             S * hd, 0, 0);
  {
    const uint64_t Pk = 3, SP = B * A * T * (Pk + T); /* with a 3-row key/value prefix */
    COUNT_ONLY("attention_prefix_fwd", pb_attention_prefix_fwd(X, X, X, X, X, I, B, T, Pk, d, A, 0.1f, 5),
               2 * SP * hd, 7 * SP, SP);
    COUNT_ONLY("attention_prefix_fwd_naive",
               pb_attention_prefix_fwd_naive(X, X, X, X, X, NULL, B, T, Pk, d, A, 0.0f, 5), 2 * SP * hd, 6 * SP, SP);
    COUNT_ONLY("attention_prefix_bwd", pb_attention_prefix_bwd(X, X, X, X, X, X, X, X, X, B, T, Pk, d, A, 0.1f, 5),
               4 * SP * hd, 5 * SP, 0);
    COUNT_ONLY("attention_prefix_bwd_naive dv",
               pb_attention_prefix_bwd_naive(NULL, NULL, X, X, X, X, X, X, X, B, T, Pk, d, A, 0.0f, 5), SP * hd, 0, 0);
  }
  COUNT_ONLY("softmax_ce_fwd", pb_softmax_ce_fwd(X, X, I, B, C), 0, 4 * BC + B, BC + B);
  COUNT_ONLY("softmax_ce_bwd", pb_softmax_ce_bwd(X, X, I, B, C), 0, 2 * BC, 0);
  COUNT_ONLY("mse_fwd", pb_mse_fwd(X, X, B), 0, 3 * B, 0);
  COUNT_ONLY("mse_bwd", pb_mse_bwd(X, X, X, B), 0, 2 * B, 0);
  COUNT_ONLY("kd_ce_fwd", pb_kd_ce_fwd(X, X, B, C, 2.0f), 0, 11 * BC + 2 * B, 2 * BC + B);
  COUNT_ONLY("kd_ce_bwd", pb_kd_ce_bwd(X, X, X, B, C, 2.0f, 0.5f), 0, 11 * BC, 2 * BC);
  COUNT_ONLY("mse_pair_fwd", pb_mse_pair_fwd(X, X, n), 0, 3 * n + 1, 0);
  COUNT_ONLY("mse_pair_bwd", pb_mse_pair_bwd(X, X, X, n, 0.5f), 0, 3 * n, 0);
#undef COUNT_ONLY
  CHECK(!pb_opc.count_only, "counting-only mode left on");
  pb_release_floats(X, (size_t)1 << 20);
}

int main(void) {
  pb_rng_seed(&g_rng, 20240601);
  printf("test_ops: threads=%d; twin tol %.0e, gradient tol %.0e (FD eps %.0e, loss in double)\n",
         pb_get_threads(), TOL_TWIN, TOL_GRAD, (double)FD_EPS);
  test_matmul();
  test_matmul_split();
  test_elementwise_threads();
  test_layernorm();
  test_elementwise();
  test_dropout();
  test_embed();
  test_attention();
  test_attention_prefix();
  test_losses();
  test_counting_only();
  printf("test_ops: %d checks, %d failed\n", checks, failures);
  return failures ? 1 : 0;
}
