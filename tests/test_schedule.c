/* The learning-rate schedules and gradient clipping of backbone/params.h, against values the
 * test computes itself (from the formulas, and a few typed in by hand):
 *  - PB_SCHED_HF (what `run` uses, harness/run.c: W = ceil(warmup_ratio * T), T = total steps):
 *    s = t-1; lr*s/W for s < W, else lr*max(0, (T-s)/max(1, T-W)); every step 1..T+2 for T in
 *    {1, 2, 3, 5, 10, 37, 100, 1000} and ratios {0, 0.06, 0.1, 0.5, 1} (W = 0, W = T, T = 1,
 *    the first and last steps), plus constant lr (T = 0);
 *  - PB_SCHED_ONE_BASED (pretrain): lr*t/W for t <= W, then lr*(T-t)/(T-W), 0 from t = T on;
 *  - pb_adamw_step uses the scheduled lr: a first AdamW step at lr 0 leaves the weights alone,
 *    at lr_t it moves each weight by lr_t (Adam's first step is lr*g/(|g|+eps)) plus decay;
 *  - pb_params_clip_grad_norm on a table of frozen and trainable tensors (one of 300,000
 *    elements, so a float accumulation would show): the global norm over trainable gradients only
 *    (long double, tensor by tensor through t->grad), every gradient scaled by max/(norm+eps) above
 *    the limit (a small-norm case where eps changes the scale by 1e-3), bit-identical below it,
 *    max_norm <= 0 = off, eps 0 at norm == max untouched, a NaN or inf norm leaves gradients alone.
 * Tolerance on a learning rate: 2 float ulps (an off-by-one step moves it by >= 1e-3 relative). */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "backbone/params.h"
#include "util/rng.h"
#include "tests/check.h"

/* |got - want| within 2 ulps of float at want's magnitude (exact 0 must be exact) */
static int lr_close(float got, double want) {
  if (want == 0.0) return got == 0.0f;
  return fabs((double)got - want) <= 2.0 * ldexp(1.0, -23) * fabs(want);
}

/* HF's lambda (transformers get_linear_schedule_with_warmup), written out from its definition */
static double hf_want(double lr, int W, int T, int t) {
  const int s = t - 1; /* LambdaLR's step: 0 at the first optimizer step */
  if (s < W) return lr * (double)s / (double)W;
  if (T == 0) return lr;
  const int den = T - W > 1 ? T - W : 1;
  const double f = (double)(T - s) / (double)den;
  return f > 0 ? lr * f : 0.0;
}

static double one_based_want(double lr, int W, int T, int t) {
  if (W > 0 && t <= W) return lr * (double)t / (double)W;
  if (T == 0) return lr;
  if (t >= T) return 0.0;
  return lr * (double)(T - t) / (double)(T - W);
}

static float lr_at(int schedule, float lr, int W, int T, int t) {
  pb_adamw o;
  pb_adamw_defaults(&o);
  o.schedule = schedule;
  o.lr = lr;
  o.warmup_steps = W;
  o.total_steps = T;
  return pb_adamw_lr(&o, t);
}

static void test_hf(void) {
  printf("HF schedule (run): hand values, sweep over T and warm-up ratios, edge cases\n");
  const float lr = 1e-3f;
  /* by hand: T = 100, ratio 0.06 -> W = 6 */
  CHECK(lr_at(PB_SCHED_HF, lr, 6, 100, 1) == 0.0f, "HF W=6 T=100: the first step has lr 0");
  CHECK(lr_close(lr_at(PB_SCHED_HF, lr, 6, 100, 4), 5e-4), "HF t=4 (s=3 of W=6): %.9g, want 5e-4",
        (double)lr_at(PB_SCHED_HF, lr, 6, 100, 4));
  CHECK(lr_close(lr_at(PB_SCHED_HF, lr, 6, 100, 6), 1e-3 * 5.0 / 6.0), "HF t=6: %.9g",
        (double)lr_at(PB_SCHED_HF, lr, 6, 100, 6));
  CHECK(lr_close(lr_at(PB_SCHED_HF, lr, 6, 100, 7), (double)lr), "HF t=7 (s=W): the peak %.9g",
        (double)lr_at(PB_SCHED_HF, lr, 6, 100, 7));
  CHECK(lr_close(lr_at(PB_SCHED_HF, lr, 6, 100, 8), (double)lr * 93.0 / 94.0), "HF t=8: %.9g",
        (double)lr_at(PB_SCHED_HF, lr, 6, 100, 8));
  CHECK(lr_close(lr_at(PB_SCHED_HF, lr, 6, 100, 100), (double)lr / 94.0), "HF last step t=T: lr/94, got %.9g",
        (double)lr_at(PB_SCHED_HF, lr, 6, 100, 100));
  CHECK(lr_at(PB_SCHED_HF, lr, 6, 100, 101) == 0.0f, "HF t=T+1: 0");
  /* W = 0: the first step at the peak, the last at lr/T */
  CHECK(lr_close(lr_at(PB_SCHED_HF, lr, 0, 10, 1), (double)lr), "HF W=0: first step at the peak");
  CHECK(lr_close(lr_at(PB_SCHED_HF, lr, 0, 10, 10), (double)lr / 10.0), "HF W=0: last step lr/T, got %.9g",
        (double)lr_at(PB_SCHED_HF, lr, 0, 10, 10));
  /* W = T: warm-up only, the last step at lr*(T-1)/T, no decay step */
  CHECK(lr_close(lr_at(PB_SCHED_HF, lr, 10, 10, 10), (double)lr * 0.9), "HF W=T: last step lr*(T-1)/T, got %.9g",
        (double)lr_at(PB_SCHED_HF, lr, 10, 10, 10));
  CHECK(lr_at(PB_SCHED_HF, lr, 10, 10, 11) == 0.0f, "HF W=T, t=T+1: 0 (max(1, T-W) in the denominator)");
  /* T = 1: with warm-up (any ratio > 0 gives W = 1) the only step has lr 0; without, the peak */
  CHECK(lr_at(PB_SCHED_HF, lr, 1, 1, 1) == 0.0f, "HF T=1 W=1: the only step has lr 0");
  CHECK(lr_close(lr_at(PB_SCHED_HF, lr, 0, 1, 1), (double)lr), "HF T=1 W=0: the only step at the peak");
  /* T = 0: constant after the warm-up */
  CHECK(lr_close(lr_at(PB_SCHED_HF, lr, 0, 0, 1), (double)lr) && lr_close(lr_at(PB_SCHED_HF, lr, 0, 0, 100000), (double)lr),
        "HF T=0: constant");
  CHECK(lr_close(lr_at(PB_SCHED_HF, lr, 4, 0, 3), (double)lr * 0.5) && lr_close(lr_at(PB_SCHED_HF, lr, 4, 0, 50), (double)lr),
        "HF T=0 W=4: warm-up then constant");

  /* the sweep, with W as run computes it */
  static const int Ts[] = {1, 2, 3, 5, 10, 37, 100, 1000};
  static const double ratios[] = {0.0, 0.06, 0.1, 0.5, 1.0};
  const float lrs[] = {1e-3f, 2e-5f, 0.37f};
  int n = 0, bad = 0;
  for (size_t a = 0; a < sizeof Ts / sizeof Ts[0]; a++)
    for (size_t b = 0; b < sizeof ratios / sizeof ratios[0]; b++)
      for (size_t c = 0; c < sizeof lrs / sizeof lrs[0]; c++) {
        const int T = Ts[a], W = (int)ceil(ratios[b] * T);
        for (int t = 1; t <= T + 2; t++) {
          const float got = lr_at(PB_SCHED_HF, lrs[c], W, T, t);
          const double want = hf_want((double)lrs[c], W, T, t);
          n++;
          if (!lr_close(got, want)) {
            bad++;
            CHECK(0, "HF lr=%g W=%d T=%d t=%d: %.9g, want %.9g", (double)lrs[c], W, T, t, (double)got, want);
          }
          if (W > 0 && t == 1) CHECK(got == 0.0f, "HF W=%d: the first step must have lr 0", W);
          if (t == T && W < T) CHECK(got > 0.0f, "HF W=%d T=%d: the last step must still move", W, T);
          if (t > T) CHECK(got == 0.0f, "HF T=%d: t=%d beyond the end must be 0", T, t);
        }
      }
  printf("  %d (lr, W, T, t) points, %d off\n", n, bad);
}

static void test_one_based(void) {
  printf("one-based schedule (pretrain): hand values, sweep, edge cases\n");
  const float lr = 1e-3f;
  pb_adamw o;
  pb_adamw_defaults(&o);
  CHECK(o.schedule == PB_SCHED_ONE_BASED && o.warmup_steps == 0 && o.total_steps == 0,
        "defaults: one-based, no warm-up, no decay");
  CHECK(lr_close(lr_at(PB_SCHED_ONE_BASED, lr, 4, 20, 1), 2.5e-4), "one-based t=1 of W=4: %.9g",
        (double)lr_at(PB_SCHED_ONE_BASED, lr, 4, 20, 1));
  CHECK(lr_close(lr_at(PB_SCHED_ONE_BASED, lr, 4, 20, 4), (double)lr), "one-based t=W: the peak");
  CHECK(lr_close(lr_at(PB_SCHED_ONE_BASED, lr, 4, 20, 5), (double)lr * 15.0 / 16.0), "one-based t=5: %.9g",
        (double)lr_at(PB_SCHED_ONE_BASED, lr, 4, 20, 5));
  CHECK(lr_close(lr_at(PB_SCHED_ONE_BASED, lr, 4, 20, 19), (double)lr / 16.0), "one-based t=T-1: lr/16, %.9g",
        (double)lr_at(PB_SCHED_ONE_BASED, lr, 4, 20, 19));
  CHECK(lr_at(PB_SCHED_ONE_BASED, lr, 4, 20, 20) == 0.0f, "one-based: the last step t=T has lr 0");
  CHECK(lr_at(PB_SCHED_ONE_BASED, lr, 4, 20, 25) == 0.0f, "one-based: beyond T, 0");
  CHECK(lr_close(lr_at(PB_SCHED_ONE_BASED, lr, 0, 20, 1), (double)lr * 19.0 / 20.0), "one-based W=0: t=1 at 19/20");
  /* W = T: the warm-up branch wins, the last step is at the peak (pretrain allows --warmup = --steps) */
  CHECK(lr_close(lr_at(PB_SCHED_ONE_BASED, lr, 10, 10, 10), (double)lr), "one-based W=T: t=T at the peak, got %.9g",
        (double)lr_at(PB_SCHED_ONE_BASED, lr, 10, 10, 10));
  CHECK(lr_at(PB_SCHED_ONE_BASED, lr, 0, 1, 1) == 0.0f, "one-based T=1 W=0: the only step has lr 0");
  CHECK(lr_close(lr_at(PB_SCHED_ONE_BASED, lr, 0, 0, 12345), (double)lr), "one-based T=0: constant");
  int n = 0, bad = 0;
  static const int Ts[] = {1, 2, 3, 7, 50, 1000};
  for (size_t a = 0; a < sizeof Ts / sizeof Ts[0]; a++) {
    const int T = Ts[a];
    const int Ws[] = {0, 1, T / 16, T / 2, T - 1 > 0 ? T - 1 : 0, T};
    for (size_t b = 0; b < sizeof Ws / sizeof Ws[0]; b++)
      for (int t = 1; t <= T + 2; t++) {
        const float got = lr_at(PB_SCHED_ONE_BASED, lr, Ws[b], T, t);
        const double want = one_based_want((double)lr, Ws[b], T, t);
        n++;
        if (!lr_close(got, want)) {
          bad++;
          CHECK(0, "one-based W=%d T=%d t=%d: %.9g, want %.9g", Ws[b], T, t, (double)got, want);
        }
      }
  }
  printf("  %d (W, T, t) points, %d off\n", n, bad);
}

/* one trainable [6] tensor with decay; the first AdamW step at 1-based t under the HF schedule:
 * m = (1-b1) g, v = (1-b2) g^2, bias-corrected: w -= lr_t * g / (|g| + eps), after w *= 1 - lr_t*wd */
static void test_adamw_uses_schedule(void) {
  printf("AdamW step: moves by the scheduled lr (0 on the HF first step with warm-up)\n");
  static const float w0[6] = {0.5f, -1.0f, 2.0f, 0.25f, -0.75f, 1.5f};
  static const float g0[6] = {0.1f, -0.2f, 0.3f, -0.05f, 1.0f, -2.0f};
  for (int t = 1; t <= 3; t++) {
    pb_params p;
    memset(&p, 0, sizeof p);
    const int s2[2] = {2, 3};
    CHECK(pb_params_add(&p, "w.weight", PB_OWNER_HEAD, 2, s2, PB_INIT_ZERO, 0) == 0, "add");
    p.t[0].trainable = 1;
    CHECK_OK(pb_params_alloc(&p));
    memcpy(p.t[0].data, w0, sizeof w0);
    memcpy(p.t[0].grad, g0, sizeof g0);
    pb_adamw o;
    pb_adamw_defaults(&o);
    o.schedule = PB_SCHED_HF;
    o.lr = 0.01f;
    o.weight_decay = 0.1f;
    o.warmup_steps = 2;
    o.total_steps = 10;
    /* the moments start at zero, so whatever t is, this is Adam's first update with bias
     * correction of step t: m_hat = (1-b1) g / (1-b1^t), v_hat = (1-b2) g^2 / (1-b2^t) */
    CHECK_OK(pb_adamw_step(&p, &o, t));
    const double lr_t = hf_want(0.01, 2, 10, t); /* 0, 0.005, 0.01 */
    double worst = 0;
    for (int j = 0; j < 6; j++) {
      const double g = g0[j];
      const double mh = (1 - 0.9) * g / (1 - pow(0.9, t)), vh = (1 - 0.999) * g * g / (1 - pow(0.999, t));
      const double want = w0[j] * (1 - lr_t * 0.1) - lr_t * mh / (sqrt(vh) + 1e-8);
      worst = fmax(worst, fabs(p.t[0].data[j] - want));
      if (t == 1) CHECK(p.t[0].data[j] == w0[j], "HF step 1 (lr 0) moved w[%d]: %.9g", j, (double)p.t[0].data[j]);
    }
    CHECK(worst < 2e-6, "AdamW step %d: max |w - want| %.3g (lr_t %g)", t, worst, lr_t);
    pb_params_free(&p);
  }
}

/* a table of frozen and trainable tensors: f0 [5] frozen, a [3], f1 [2,3] frozen, b [4,5], big [300000] */
static void clip_table(pb_params *p, float **g0, size_t *ntr) {
  memset(p, 0, sizeof *p);
  const int s5[1] = {5}, s3[1] = {3}, s23[2] = {2, 3}, s45[2] = {4, 5}, sbig[1] = {300000};
  CHECK(pb_params_add(p, "f0.bias", PB_OWNER_BACKBONE, 1, s5, PB_INIT_ZERO, 0) >= 0, "add f0");
  CHECK(pb_params_add(p, "a.bias", PB_OWNER_HEAD, 1, s3, PB_INIT_ZERO, 0) >= 0, "add a");
  CHECK(pb_params_add(p, "f1.weight", PB_OWNER_BACKBONE, 2, s23, PB_INIT_ZERO, 0) >= 0, "add f1");
  CHECK(pb_params_add(p, "b.weight", PB_OWNER_METHOD, 2, s45, PB_INIT_ZERO, 0) >= 0, "add b");
  CHECK(pb_params_add(p, "big.weight", PB_OWNER_METHOD, 1, sbig, PB_INIT_ZERO, 0) >= 0, "add big");
  p->t[1].trainable = p->t[3].trainable = p->t[4].trainable = 1;
  CHECK_OK(pb_params_alloc(p));
  *ntr = p->n_train;
  CHECK(*ntr == 3 + 20 + 300000, "trainable elements %zu", *ntr);
  *g0 = malloc(*ntr * sizeof(float));
  pb_rng r;
  pb_rng_seed(&r, 7);
  for (int i = 0; i < p->n; i++)
    for (size_t j = 0; j < p->t[i].numel; j++) p->t[i].data[j] = pb_rng_normal(&r);
  /* gradients: small noise on big (whose float sum would drift), larger on a and b */
  for (size_t j = 0; j < *ntr; j++) (*g0)[j] = (j < 23 ? 1.0f : 0.01f) * (0.1f + pb_rng_uniform(&r));
}

static void set_grads(pb_params *p, const float *g0, float mul) {
  size_t o = 0;
  for (int i = 0; i < p->n; i++) {
    pb_tensor *t = &p->t[i];
    if (!t->trainable) continue;
    for (size_t j = 0; j < t->numel; j++) t->grad[j] = g0[o + j] * mul;
    o += t->numel;
  }
}

/* the global norm over every trainable tensor's grad, in long double */
static double norm_of(const pb_params *p) {
  long double ss = 0;
  for (int i = 0; i < p->n; i++) {
    const pb_tensor *t = &p->t[i];
    if (!t->trainable) continue;
    for (size_t j = 0; j < t->numel; j++) ss += (long double)t->grad[j] * t->grad[j];
  }
  return (double)sqrtl(ss);
}

/* max over trainable elements of |g - want*coef| / |want*coef|, want = g0*mul */
static double scaled_err(const pb_params *p, const float *g0, float mul, double coef) {
  double worst = 0;
  size_t o = 0;
  for (int i = 0; i < p->n; i++) {
    const pb_tensor *t = &p->t[i];
    if (!t->trainable) continue;
    for (size_t j = 0; j < t->numel; j++) {
      const double want = (double)(g0[o + j] * mul) * coef;
      worst = fmax(worst, fabs(t->grad[j] - want) / fabs(want));
    }
    o += t->numel;
  }
  return worst;
}

static int grads_are(const pb_params *p, const float *g0, float mul) {
  size_t o = 0;
  for (int i = 0; i < p->n; i++) {
    const pb_tensor *t = &p->t[i];
    if (!t->trainable) continue;
    for (size_t j = 0; j < t->numel; j++)
      if (t->grad[j] != g0[o + j] * mul) return 0;
    o += t->numel;
  }
  return 1;
}

static void test_clipping(void) {
  printf("clipping: global norm over trainable tensors, scale max/(norm+eps) above the limit only\n");
  pb_params p;
  float *g0 = NULL;
  size_t ntr = 0;
  clip_table(&p, &g0, &ntr);
  float *frozen0 = malloc(p.n_frozen * sizeof(float)), *train0 = malloc(p.n_train * sizeof(float));
  memcpy(frozen0, p.frozen_mem, p.n_frozen * sizeof(float));
  memcpy(train0, p.train_mem, p.n_train * sizeof(float));
  const double eps = PB_CLIP_EPS_TORCH;

  set_grads(&p, g0, 1.0f);
  const double norm = norm_of(&p);
  printf("  norm of the table's gradients: %.12g over %zu trainable elements\n", norm, ntr);

  /* above the limit: every gradient times max/(norm+eps) */
  int clipped = -1;
  double max = 0.5 * norm;
  double got = pb_params_clip_grad_norm(&p, max, eps, &clipped);
  CHECK(fabs(got - norm) <= 1e-12 * norm, "returned norm %.17g, want %.17g (rel %.3g)", got, norm,
        fabs(got - norm) / norm);
  CHECK(clipped == 1, "above the limit: clipped %d", clipped);
  double e = scaled_err(&p, g0, 1.0f, max / (norm + eps));
  CHECK(e <= 2.4e-7, "above the limit: gradients off max/(norm+eps) by %.3g relative", e);
  double after = norm_of(&p);
  CHECK(fabs(after - max * norm / (norm + eps)) <= 1e-6 * max, "norm after clipping %.9g, want %.9g", after,
        max * norm / (norm + eps));
  CHECK(memcmp(frozen0, p.frozen_mem, p.n_frozen * sizeof(float)) == 0 &&
            memcmp(train0, p.train_mem, p.n_train * sizeof(float)) == 0,
        "clipping touched parameter values");

  /* small norm: the eps is 1e-3 of the norm, so max/(norm+eps) != max/norm at 1e-3 */
  const float mul = (float)(1e-3 / norm);
  set_grads(&p, g0, mul);
  const double small = norm_of(&p);
  max = 0.5 * small;
  got = pb_params_clip_grad_norm(&p, max, eps, NULL); /* NULL `clipped` is allowed */
  CHECK(fabs(got - small) <= 1e-12 * small, "small: returned norm %.17g want %.17g", got, small);
  e = scaled_err(&p, g0, mul, max / (small + eps));
  CHECK(e <= 2.4e-7, "small norm: gradients off max/(norm+eps) by %.3g relative (max/norm would be %.3g off)", e,
        fabs(max / small - max / (small + eps)) / (max / (small + eps)));

  /* below the limit: bit-identical */
  set_grads(&p, g0, 1.0f);
  got = pb_params_clip_grad_norm(&p, 2.0 * norm, eps, &clipped);
  CHECK(clipped == 0 && grads_are(&p, g0, 1.0f), "below the limit the gradients must stay bit-identical");
  CHECK(fabs(got - norm) <= 1e-12 * norm, "below: returned norm %.17g", got);
  /* just below the limit (norm*(1+1e-4) > norm + eps): untouched */
  got = pb_params_clip_grad_norm(&p, norm * (1 + 1e-4), eps, &clipped);
  CHECK(clipped == 0 && grads_are(&p, g0, 1.0f), "max_norm just above the norm: untouched");

  /* off: max_norm 0 or negative returns the norm and touches nothing */
  got = pb_params_clip_grad_norm(&p, 0.0, eps, &clipped);
  CHECK(clipped == 0 && grads_are(&p, g0, 1.0f) && fabs(got - norm) <= 1e-12 * norm, "max_norm 0: off");
  got = pb_params_clip_grad_norm(&p, -1.0, eps, &clipped);
  CHECK(clipped == 0 && grads_are(&p, g0, 1.0f) && fabs(got - norm) <= 1e-12 * norm, "max_norm -1: off");
  got = pb_params_clip_grad_norm(&p, 1e-9, eps, &clipped); /* tiny but positive: on */
  CHECK(clipped == 1 && norm_of(&p) < 1e-8, "max_norm 1e-9: clipped to %.3g", norm_of(&p));

  /* eps: at norm == max, eps 0 leaves the gradients alone, torch's 1e-6 scales by max/(max+eps) */
  set_grads(&p, g0, 1.0f);
  const double exact = pb_params_clip_grad_norm(&p, 0.0, 0.0, NULL);
  got = pb_params_clip_grad_norm(&p, exact, 0.0, &clipped);
  CHECK(clipped == 0 && grads_are(&p, g0, 1.0f), "eps 0, norm == max: untouched");
  got = pb_params_clip_grad_norm(&p, exact, eps, &clipped);
  CHECK(clipped == 1, "eps 1e-6, norm == max: clipped");

  /* a NaN gradient: the norm is NaN, returned, gradients untouched */
  set_grads(&p, g0, 1.0f);
  p.t[3].grad[7] = NAN;
  got = pb_params_clip_grad_norm(&p, 1.0, eps, &clipped);
  CHECK(isnan(got) && clipped == 0 && p.t[1].grad[0] == g0[0] && p.t[4].grad[5] == g0[23 + 5],
        "NaN norm: returned, gradients untouched");
  /* an infinite gradient: the norm is inf, returned, gradients untouched (not scaled by max/inf = 0) */
  set_grads(&p, g0, 1.0f);
  p.t[3].grad[7] = INFINITY;
  got = pb_params_clip_grad_norm(&p, 1.0, eps, &clipped);
  CHECK(isinf(got) && clipped == 0 && p.t[1].grad[0] == g0[0] && p.t[4].grad[5] == g0[23 + 5],
        "inf norm: returned, gradients untouched (got %g, g[0] %g)", got, (double)p.t[1].grad[0]);
  free(frozen0);
  free(train0);
  free(g0);
  pb_params_free(&p);
}

int main(void) {
  test_hf();
  test_one_based();
  test_adamw_uses_schedule();
  test_clipping();
  printf("test_schedule: %d checks, %d failed\n", checks, failures);
  return check_exit_status();
}
