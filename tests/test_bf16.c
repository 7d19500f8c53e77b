/* test_bf16: the bf16 matrix products of backbone/bf16.h (--precision bf16).
 *  1. rounding: round to nearest even at the ties, NaN stays NaN, +-Inf, the largest finite
 *     value rounds to Inf as IEEE RNE does, subnormals become signed zero (as the instruction); the AVX512-BF16 vector path == the scalar one on
 *     2^20 random values and the edge cases
 *  2. pb_bf16_gemm against a double-precision product of the bf16-rounded operands, for both
 *     transposes of A and B, alpha 1 / 0.5, beta 0 / 1 / 0.7, a bias (alpha 0.5 with a bias is
 *     refused), padded leading dimensions and odd shapes: fp32 accumulation of exact bf16 products, so the error is fp32 rounding
 *     (tolerance 2e-6 relative to max|C|, measured <= 4e-7); and the same product differs from
 *     the fp32 one by bf16 rounding (> 1e-4 relative): the bf16 path really ran
 *  3. the weight cache: a weight rewritten in place is seen (fingerprint), a one-element change
 *     after pb_bf16_weights_changed() is seen, a repeated call reuses the cached copy; A_AGAIN
 *     reuses the previous A's rounding only for the same storage and shape
 *  3b. attention (pb_attention_prefix_fwd/bwd) in bf16 against the fp32 kernels, with padding,
 *     dropout and a prefix: every output within 3e-2 of its max (measured <= 1e-2), never
 *     closer than 1e-5 (bf16 ran), padded keys exactly 0
 *  4. a whole train step of the tiny BERT (forward, loss, backward, AdamW) in bf16: the same
 *     op counts as fp32 (kinds and owners), loss and gradients within bf16 distance of fp32
 *     (loss 2e-2 relative, gradients 0.1 relative to each tensor's max, measured <= 0.03), and
 *     different from fp32 (the products ran in bf16); after AdamW the next forward sees the
 *     new weights (the epoch): its loss equals a fresh fp32-weights model's bf16 loss exactly
 *  5. pb_precision_parse: fp32, bf16 accepted, anything else refused with the value named
 * Exits 77 (ctest SKIP) on a CPU without avx512_bf16 / amx_bf16. */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "backbone/bert.h"
#include "backbone/bf16.h"
#include "backbone/ops.h"
#include "backbone/params.h"
#include "counters/opcount.h"
#include "methods/method.h"
#include "util/rng.h"
#include "util/status.h"
#include "tests/check.h"

static pb_rng g_rng;

static float *frand(size_t n, float scale) {
  float *p = malloc((n ? n : 1) * sizeof *p);
  if (!p) exit(2);
  for (size_t i = 0; i < n; i++) p[i] = scale * (2.0f * pb_rng_uniform(&g_rng) - 1.0f);
  return p;
}

static float bits_f(uint32_t u) {
  float f;
  memcpy(&f, &u, 4);
  return f;
}

static float round1(float x) {
  float y;
  pb_bf16_round(&y, &x, 1);
  return y;
}

static void test_rounding(void) {
  printf("rounding: RNE ties, NaN, Inf, vector == scalar\n");
  /* 1 + 2^-8 is halfway between 1 and 1 + 2^-7: the even one (1) wins; 1 + 3*2^-8 is halfway
   * between 1 + 2^-7 (odd mantissa) and 1 + 2^-6 (even): rounds up */
  CHECK(round1(1.0f + 0x1p-8f) == 1.0f, "tie to even (down): %.9g", round1(1.0f + 0x1p-8f));
  CHECK(round1(1.0f + 3 * 0x1p-8f) == 1.0f + 0x1p-6f, "tie to even (up): %.9g", round1(1.0f + 3 * 0x1p-8f));
  CHECK(round1(1.0f + 0x1p-8f + 0x1p-20f) == 1.0f + 0x1p-7f, "above the tie rounds up");
  CHECK(round1(-1.0f - 0x1p-8f) == -1.0f, "negative tie to even");
  CHECK(isnan(round1(NAN)), "NaN stays NaN");
  CHECK(isnan(round1(bits_f(0x7f800001u))), "NaN with only low mantissa bits stays NaN (not Inf)");
  CHECK(isinf(round1(INFINITY)) && round1(-INFINITY) < 0, "Inf kept");
  CHECK(isinf(round1(3.4028235e38f)), "FLT_MAX rounds to Inf (RNE overflow)");
  CHECK(round1(0.0f) == 0.0f && signbit(round1(-0.0f)), "signed zeros kept");
  CHECK(round1(1e-40f) == 0.0f && signbit(round1(-1e-40f)), "subnormals to signed zero (as vcvtneps2bf16)");
  enum { N = 1 << 20 };
  float *x = frand(N, 100.0f);
  for (int i = 0; i < 64; i++) x[i] = bits_f(0x3f808000u + (uint32_t)i * 0x10000u); /* ties */
  x[64] = NAN, x[65] = INFINITY, x[66] = -INFINITY, x[67] = bits_f(0x7f800001u), x[68] = 3.4028235e38f;
  x[69] = 1e-40f; /* subnormal */
  const int bad = pb_bf16_round_check(x, N);
  CHECK(bad == 0, "vector rounding differs from scalar at %d of %d values", bad, N);
  free(x);
}

/* C = alpha op(A) op(B) + beta C0 (+ bias) in double over bf16-rounded A and B */
static void ref_gemm(int ta, int tb, int M, int N, int K, float alpha, const float *A, int lda, const float *B, int ldb,
                     float beta, const float *C0, int ldc, const float *bias, int round, double *out) {
  for (int i = 0; i < M; i++)
    for (int j = 0; j < N; j++) {
      double s = 0;
      for (int k = 0; k < K; k++) {
        float a = ta ? A[(size_t)k * lda + i] : A[(size_t)i * lda + k];
        float b = tb ? B[(size_t)j * ldb + k] : B[(size_t)k * ldb + j];
        if (round) a = round1(a), b = round1(b);
        s += (double)a * b;
      }
      s = alpha * s + (bias ? bias[j] : 0.0) + (beta != 0.0f ? beta * (double)C0[(size_t)i * ldc + j] : 0.0);
      out[(size_t)i * N + j] = s;
    }
}

static double rel_to_max(const float *C, int ldc, const double *R, int M, int N) {
  double md = 0, mr = 0;
  for (int i = 0; i < M; i++)
    for (int j = 0; j < N; j++) {
      const double d = fabs(C[(size_t)i * ldc + j] - R[(size_t)i * N + j]);
      if (d > md || isnan(d)) md = d;
      if (fabs(R[(size_t)i * N + j]) > mr) mr = fabs(R[(size_t)i * N + j]);
    }
  return md / (mr > 0 ? mr : 1);
}

static void test_gemm(void) {
  printf("gemm: both transposes, alpha, beta, bias, padded leading dimensions\n");
  const int shapes[][3] = {{37, 53, 129}, {64, 48, 256}, {5, 300, 17}, {130, 7, 64}};
  const float alphas[] = {1.0f, 0.5f}, betas[] = {0.0f, 1.0f, 0.7f};
  double worst = 0, least_fp32 = 1e9;
  for (size_t s = 0; s < sizeof shapes / sizeof *shapes; s++)
    for (int ta = 0; ta < 2; ta++)
      for (int tb = 0; tb < 2; tb++)
        for (int ai = 0; ai < 2; ai++)
          for (int bi = 0; bi < 4; bi++) {
            const int M = shapes[s][0], N = shapes[s][1], K = shapes[s][2], pad = 3;
            const float alpha = alphas[ai], beta = bi < 3 ? betas[bi] : 0.0f;
            const int with_bias = bi == 3;
            const int lda = (ta ? M : K) + pad, ldb = (tb ? K : N) + pad, ldc = N + pad;
            float *A = frand((size_t)(ta ? K : M) * lda, 1.0f), *B = frand((size_t)(tb ? N : K) * ldb, 1.0f);
            float *C = frand((size_t)M * ldc, 1.0f), *C0 = malloc(sizeof(float) * (size_t)M * ldc);
            float *bias = with_bias ? frand((size_t)N, 1.0f) : NULL;
            memcpy(C0, C, sizeof(float) * (size_t)M * ldc);
            double *R = malloc(sizeof(double) * (size_t)M * N), *R32 = malloc(sizeof(double) * (size_t)M * N);
            ref_gemm(ta, tb, M, N, K, alpha, A, lda, B, ldb, beta, C0, ldc, bias, 1, R);
            ref_gemm(ta, tb, M, N, K, alpha, A, lda, B, ldb, beta, C0, ldc, bias, 0, R32);
            if (with_bias && alpha != 1.0f) { /* refused: oneDNN would scale the bias too */
              CHECK(pb_bf16_gemm(ta, tb, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc, bias, 0) == PB_ERR_ARG,
                    "a bias with alpha %g was not refused", alpha);
              free(A), free(B), free(C), free(C0), free(bias), free(R), free(R32);
              continue;
            }
            const int rc = pb_bf16_gemm(ta, tb, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc, bias, (int)(s & 1));
            CHECK(rc == 0, "pb_bf16_gemm %dx%dx%d ta %d tb %d: %s", M, N, K, ta, tb, pb_last_error());
            const double e = rel_to_max(C, ldc, R, M, N), e32 = rel_to_max(C, ldc, R32, M, N);
            if (e > worst) worst = e;
            if (e32 < least_fp32) least_fp32 = e32;
            CHECK(e <= 2e-6, "%dx%dx%d ta %d tb %d alpha %g beta %g bias %d: error %.3g vs bf16-rounded reference", M, N,
                  K, ta, tb, alpha, beta, with_bias, e);
            /* padding columns of C untouched */
            int pad_ok = 1;
            for (int i = 0; i < M; i++)
              for (int j = N; j < ldc; j++) pad_ok &= C[(size_t)i * ldc + j] == C0[(size_t)i * ldc + j];
            CHECK(pad_ok, "%dx%dx%d: C's padding columns were written", M, N, K);
            free(A), free(B), free(C), free(C0), free(bias), free(R), free(R32);
          }
  printf("  worst error %.3g (tolerance 2e-6); closest to the unrounded fp32 product %.3g (must be > 1e-4)\n", worst,
         least_fp32);
  CHECK(least_fp32 > 1e-4, "a product matched the unrounded fp32 product (%.3g): bf16 did not run", least_fp32);
}

static void test_weight_cache(void) {
  printf("weight cache: rewrite in place, epoch, reuse\n");
  const int M = 32, N = 64, K = 96;
  float *A = frand((size_t)M * K, 1.0f), *W = frand((size_t)N * K, 1.0f), *C = malloc(sizeof(float) * M * N);
  double *R = malloc(sizeof(double) * M * N);
  CHECK_OK(pb_bf16_gemm(0, 1, M, N, K, 1.0f, A, K, W, K, 0.0f, C, N, NULL, 1));
  const size_t bytes = pb_bf16_cache_bytes();
  CHECK_OK(pb_bf16_gemm(0, 1, M, N, K, 1.0f, A, K, W, K, 0.0f, C, N, NULL, 1));
  CHECK(pb_bf16_cache_bytes() == bytes, "a repeated call grew the cache (%zu -> %zu bytes)", bytes, pb_bf16_cache_bytes());
  for (int i = 0; i < N * K; i++) W[i] *= -2.0f; /* every value changes, no epoch bump */
  CHECK_OK(pb_bf16_gemm(0, 1, M, N, K, 1.0f, A, K, W, K, 0.0f, C, N, NULL, 1));
  ref_gemm(0, 1, M, N, K, 1.0f, A, K, W, K, 0.0f, NULL, N, NULL, 1, R);
  CHECK(rel_to_max(C, N, R, M, N) <= 2e-6, "a weight rewritten in place was not seen: %.3g", rel_to_max(C, N, R, M, N));
  W[1] += 10.0f; /* not a sampled position: only the epoch tells */
  pb_bf16_weights_changed();
  CHECK_OK(pb_bf16_gemm(0, 1, M, N, K, 1.0f, A, K, W, K, 0.0f, C, N, NULL, 1));
  ref_gemm(0, 1, M, N, K, 1.0f, A, K, W, K, 0.0f, NULL, N, NULL, 1, R);
  CHECK(rel_to_max(C, N, R, M, N) <= 2e-6, "a one-element change after pb_bf16_weights_changed was not seen: %.3g",
        rel_to_max(C, N, R, M, N));
  /* a padded weight (ld > cols) whose last row is rewritten in place, no epoch bump: the
   * fingerprint samples every row band, not only the first row */
  {
    const int ldw = K + 8;
    float *Wp = frand((size_t)N * ldw, 1.0f);
    CHECK_OK(pb_bf16_gemm(0, 1, M, N, K, 1.0f, A, K, Wp, ldw, 0.0f, C, N, NULL, 1));
    for (int j = 0; j < K; j++) Wp[(size_t)(N - 1) * ldw + j] += 3.0f;
    CHECK_OK(pb_bf16_gemm(0, 1, M, N, K, 1.0f, A, K, Wp, ldw, 0.0f, C, N, NULL, 1));
    ref_gemm(0, 1, M, N, K, 1.0f, A, K, Wp, ldw, 0.0f, NULL, N, NULL, 1, R);
    CHECK(rel_to_max(C, N, R, M, N) <= 2e-6, "a padded weight's last row rewritten in place was not seen: %.3g",
          rel_to_max(C, N, R, M, N));
    free(Wp);
  }
  /* A_AGAIN: the same A, read transposed, reuses its rounding; a changed A without the flag is
   * rounded again; with the flag but another shape it is rounded again too */
  float *D = malloc(sizeof(float) * K * N);
  double *RD = malloc(sizeof(double) * K * N);
  CHECK_OK(pb_bf16_gemm(1, 0, K, N, M, 1.0f, A, K, C, N, 0.0f, D, N, NULL, PB_BF16_A_AGAIN));
  ref_gemm(1, 0, K, N, M, 1.0f, A, K, C, N, 0.0f, NULL, N, NULL, 1, RD);
  CHECK(rel_to_max(D, N, RD, K, N) <= 2e-6, "A_AGAIN over the same A, transposed: %.3g", rel_to_max(D, N, RD, K, N));
  for (int i = 0; i < M * K; i++) A[i] = -A[i] + 0.25f;
  CHECK_OK(pb_bf16_gemm(1, 0, K, N, M, 1.0f, A, K, C, N, 0.0f, D, N, NULL, 0));
  ref_gemm(1, 0, K, N, M, 1.0f, A, K, C, N, 0.0f, NULL, N, NULL, 1, RD);
  CHECK(rel_to_max(D, N, RD, K, N) <= 2e-6, "a changed A without A_AGAIN: %.3g", rel_to_max(D, N, RD, K, N));
  CHECK_OK(pb_bf16_gemm(1, 0, K / 2, N, M, 1.0f, A, K, C, N, 0.0f, D, N, NULL, PB_BF16_A_AGAIN));
  ref_gemm(1, 0, K / 2, N, M, 1.0f, A, K, C, N, 0.0f, NULL, N, NULL, 1, RD);
  CHECK(rel_to_max(D, N, RD, K / 2, N) <= 2e-6, "A_AGAIN with another shape: %.3g", rel_to_max(D, N, RD, K / 2, N));
  free(D), free(RD);
  free(A), free(W), free(C), free(R);
}

/* the bf16 attention path against the fp32 kernels on the same inputs: padding mask, dropout,
 * a key/value prefix; bf16-sized differences (relative to each output's max), never fp32-sized */
static void test_attention(void) {
  printf("attention: bf16 products vs fp32 (mask, dropout, prefix), forward and backward\n");
  const int B = 3, T = 17, d = 64, A = 4;
  double worst = 0;
  for (int P = 0; P <= 3; P += 3)
    for (int di = 0; di < 2; di++) {
      const float p = di ? 0.1f : 0.0f;
      const int S = P + T;
      const size_t nq = (size_t)B * T * d, nk = (size_t)B * S * d, np = (size_t)B * A * T * S;
      float *q = frand(nq, 1.0f), *k = frand(nk, 1.0f), *v = frand(nk, 1.0f), *dctx = frand(nq, 1.0f);
      int mask[3 * 17];
      for (int i = 0; i < B * T; i++) mask[i] = (i % T) < T - 2 * (i / T); /* rows padded by 0, 2, 4 */
      float *out[2][6]; /* ctx, probs, dq, dk, dv, scratch */
      for (int pr = 0; pr < 2; pr++) {
        CHECK_OK(pb_set_precision(pr ? PB_PREC_BF16 : PB_PREC_FP32));
        float *ctx = calloc(nq, 4), *probs = calloc(np, 4), *dq = calloc(nq, 4), *dk = calloc(nk, 4),
              *dv = calloc(nk, 4), *sc = calloc(np, 4);
        pb_attention_prefix_fwd(ctx, probs, q, k, v, mask, B, T, P, d, A, p, 99);
        pb_attention_prefix_bwd(dq, dk, dv, sc, dctx, q, k, v, probs, B, T, P, d, A, p, 99);
        out[pr][0] = ctx, out[pr][1] = probs, out[pr][2] = dq, out[pr][3] = dk, out[pr][4] = dv, out[pr][5] = sc;
      }
      CHECK_OK(pb_set_precision(PB_PREC_BF16));
      const char *names[] = {"ctx", "probs", "dq", "dk", "dv"};
      const size_t ns[] = {nq, np, nq, nk, nk};
      for (int o = 0; o < 5; o++) {
        double md = 0, mr = 0;
        for (size_t i = 0; i < ns[o]; i++) {
          md = fmax(md, fabs((double)out[1][o][i] - out[0][o][i]));
          mr = fmax(mr, fabs((double)out[0][o][i]));
        }
        const double e = md / (mr > 0 ? mr : 1);
        worst = fmax(worst, e);
        CHECK(e <= 3e-2 && e > 1e-5, "P %d dropout %g %s: bf16 vs fp32 relative difference %.3g (want 1e-5 .. 3e-2)", P,
              (double)p, names[o], e);
      }
      /* padded keys get probability exactly 0 in both */
      int zeros = 1;
      for (int b = 0; b < B; b++)
        for (int j = 0; j < T; j++)
          if (!mask[b * T + j])
            for (int h = 0; h < A; h++)
              for (int i = 0; i < T; i++) zeros &= out[1][1][(((size_t)b * A + h) * T + i) * S + P + j] == 0.0f;
      CHECK(zeros, "P %d: a padded key has a non-zero bf16 probability", P);
      for (int pr = 0; pr < 2; pr++)
        for (int o = 0; o < 6; o++) free(out[pr][o]);
      free(q), free(k), free(v), free(dctx);
    }
  printf("  worst relative difference %.3g (tolerance 3e-2)\n", worst);
}

enum { BB = 4, TT = 12 };

typedef struct {
  pb_model m;
  pb_method_inst inst;
  int ids[BB * TT], types[BB * TT], mask[BB * TT], labels[BB];
} fixture;

static void fixture_make(fixture *f, uint64_t seed) {
  memset(f, 0, sizeof *f);
  pb_config c;
  pb_test_tiny_config(&c, 0.1f);
  c.hidden = 64, c.heads = 4, c.ffn = 128; /* products big enough to have rounding to see */
  CHECK_OK(pb_model_declare(&f->m, &c));
  CHECK_OK(pb_method_create(&f->inst, "full", NULL));
  CHECK_OK(f->inst.m->attach(f->inst.ctx, &f->m));
  CHECK_OK(pb_model_alloc(&f->m, BB, TT));
  pb_model_init_random(&f->m, seed);
  pb_test_random_batch(&c, seed + 2, BB, TT, f->ids, f->types, f->mask, f->labels);
}

static void fixture_free(fixture *f) {
  pb_method_destroy(&f->inst);
  pb_model_free(&f->m);
}

/* one counted train step in precision p: loss, the gradients (copied to g) and the counts */
static float train_step(fixture *f, pb_precision p, float *g, pb_opcounts *oc, int adamw) {
  CHECK_OK(pb_set_precision(p));
  pb_params_zero_grad(&f->m.params);
  pb_opc_reset();
  pb_opc_enable(1);
  float loss = 0;
  CHECK_OK(pb_forward(&f->m, f->ids, f->types, f->mask, BB, TT, f->labels, NULL, 1, 7, &loss));
  CHECK_OK(pb_backward(&f->m));
  if (adamw) {
    pb_adamw o;
    pb_adamw_defaults(&o);
    o.lr = 1e-2f;
    CHECK_OK(pb_adamw_step(&f->m.params, &o, 1));
  }
  pb_opc_enable(0);
  *oc = pb_opc_snapshot();
  size_t off = 0;
  for (int i = 0; i < f->m.params.n; i++) {
    const pb_tensor *t = &f->m.params.t[i];
    if (t->grad) memcpy(g + off, t->grad, t->numel * sizeof(float));
    off += t->numel;
  }
  return loss;
}

static void test_model_step(void) {
  printf("model: a train step in bf16 vs fp32 (counts, loss, gradients), AdamW then forward\n");
  fixture a, b;
  fixture_make(&a, 11);
  fixture_make(&b, 11);
  const size_t n = a.m.params.n_frozen + a.m.params.n_train;
  float *ga = calloc(n, sizeof(float)), *gb = calloc(n, sizeof(float));
  pb_opcounts ca, cb;
  const float la = train_step(&a, PB_PREC_FP32, ga, &ca, 1), lb = train_step(&b, PB_PREC_BF16, gb, &cb, 1);
  CHECK(!memcmp(&ca, &cb, sizeof ca), "op counts differ between fp32 and bf16");
  CHECK(fabsf(la - lb) <= 2e-2f * fabsf(la), "loss fp32 %.6f vs bf16 %.6f", la, lb);
  CHECK(la != lb, "bf16 loss equals fp32 loss bit for bit (%.9g): the bf16 path did not run", la);
  double worst = 0;
  size_t off = 0;
  for (int i = 0; i < a.m.params.n; i++) {
    const pb_tensor *t = &a.m.params.t[i];
    double md = 0, mr = 0;
    for (size_t j = 0; j < t->numel; j++) {
      md = fmax(md, fabs((double)gb[off + j] - ga[off + j]));
      mr = fmax(mr, fabs((double)ga[off + j]));
    }
    if (mr > 1e-6 && md / mr > worst) worst = md / mr;
    off += t->numel;
  }
  printf("  loss fp32 %.6f bf16 %.6f; worst gradient difference %.3g of the tensor's max (tolerance 0.1)\n", la, lb,
         worst);
  CHECK(worst <= 0.1, "bf16 gradients differ from fp32 by %.3g of the tensor max", worst);
  /* after AdamW the weights changed: the bf16 forward must use them, i.e. equal a forward of a
   * fresh bf16 process state over the same weights (the cache rebuilt from scratch) */
  float l1 = 0, l2 = 0;
  CHECK_OK(pb_set_precision(PB_PREC_BF16));
  CHECK_OK(pb_forward(&b.m, b.ids, b.types, b.mask, BB, TT, b.labels, NULL, 0, 0, &l1));
  pb_bf16_release();
  CHECK_OK(pb_forward(&b.m, b.ids, b.types, b.mask, BB, TT, b.labels, NULL, 0, 0, &l2));
  CHECK(l1 == l2, "forward after AdamW used stale bf16 weights: %.9g vs %.9g after a cache reset", l1, l2);
  CHECK_OK(pb_set_precision(PB_PREC_FP32));
  free(ga), free(gb);
  fixture_free(&a);
  fixture_free(&b);
}

static void test_parse(void) {
  printf("precision names\n");
  pb_precision p = PB_PREC_BF16;
  CHECK(pb_precision_parse("fp32", &p) == 0 && p == PB_PREC_FP32, "fp32");
  CHECK(pb_precision_parse("bf16", &p) == 0 && p == PB_PREC_BF16, "bf16");
  CHECK(pb_precision_parse("fp16", &p) == PB_ERR_ARG && strstr(pb_last_error(), "'fp16'"), "fp16 refused: %s",
        pb_last_error());
  CHECK(pb_precision_parse(NULL, &p) == PB_ERR_ARG, "NULL refused");
  CHECK(!strcmp(pb_precision_name(PB_PREC_BF16), "bf16") && !strcmp(pb_precision_name(PB_PREC_FP32), "fp32"), "names");
}

int main(void) {
  test_parse();
  if (!pb_bf16_cpu_supported()) {
    printf("SKIP: this CPU has neither avx512_bf16 nor amx_bf16\n");
    return 77;
  }
  pb_rng_seed(&g_rng, 20261202);
  pb_set_threads(2);
  CHECK_OK(pb_set_precision(PB_PREC_BF16));
  printf("kernel: %s %s\n", pb_bf16_library(), pb_bf16_kernel());
  test_rounding();
  test_gemm();
  test_weight_cache();
  test_attention();
  test_model_step();
  pb_bf16_release();
  printf("%d checks, %d failures\n", checks, failures);
  return check_exit_status();
}
