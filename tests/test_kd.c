/* Knowledge distillation terms of the backbone (pb_model_set_kd, backbone/bert.h), as `run
 * --teacher` uses them (harness/distill.c), on a 3-step tiny model, dropout 0, fixed random
 * "teacher" logits and hidden states (the teacher's forward is a plain forward: not under test):
 *  - the loss: (1 - alpha) CE + alpha tau^2 softCE + beta sum_l MSE(h_l, t_l) equals the same
 *    computed here in double from a plain forward's logits and step outputs (classification at
 *    tau 1 and 2, regression: MSE to the labels and to the teacher's outputs), a step whose
 *    hidden pointer is NULL gets no term; alpha = beta = 0 is the plain model bit for bit;
 *  - with exits (methods/exits.c) every exit head distils too: the loss is affine in alpha,
 *    L(0.3) = 0.7 L(0) + 0.3 L(1);
 *  - finite-difference gradients of every trainable tensor through the distillation terms
 *    (full fine-tuning, exits, regression);
 *  - counting: the training count with distillation minus without equals the closed form per
 *    owner (the model's head: prediction + representation terms; the exits' heads, owner method:
 *    prediction terms; the backbone: nothing);
 *  - bad settings (alpha outside [0,1], tau <= 0, beta < 0, a weight without its teacher data). */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "backbone/bert.h"
#include "util/rng.h"
#include "util/status.h"
#include "counters/opcount.h"
#include "methods/method.h"
#include "tests/check.h"

enum { B = 4, T = 5, S = 3 };
static int ids[B * T], types[B * T], mask[B * T], labels[B];
static float targets[B];
static float *teacher_logits, *teacher_hidden[S];
static const float *hidden_ptr[S];

static void build(pb_model *m, pb_method_inst *mi, const char *spec, const char *const *opts, int C, uint64_t seed) {
  pb_config c;
  pb_test_tiny_config(&c, 0.0f);
  c.layers = S;
  c.num_labels = C;
  CHECK_OK(pb_method_create(mi, spec, opts));
  CHECK_OK(pb_model_declare(m, &c));
  CHECK_OK(mi->m->attach(mi->ctx, m));
  CHECK_OK(pb_model_alloc(m, B, T));
  pb_model_init_random(m, seed);
  pb_test_random_batch(&m->cfg, seed + 7, B, T, ids, types, mask, labels);
  for (int b = 0; b < B; b++) mask[b * T + T - 1] = b % 2 == 0; /* some padding */
  pb_rng r;
  pb_rng_seed(&r, seed + 9);
  for (int b = 0; b < B; b++) targets[b] = 2.0f * pb_rng_normal(&r);
}

static void teacher_data(int C, int d, uint64_t seed) {
  pb_rng r;
  pb_rng_seed(&r, seed);
  free(teacher_logits);
  teacher_logits = malloc(sizeof(float) * B * (size_t)C);
  for (int i = 0; i < B * C; i++) teacher_logits[i] = 1.5f * pb_rng_normal(&r);
  for (int l = 0; l < S; l++) {
    free(teacher_hidden[l]);
    teacher_hidden[l] = malloc(sizeof(float) * B * T * (size_t)d);
    for (int i = 0; i < B * T * d; i++) teacher_hidden[l][i] = pb_rng_normal(&r);
    hidden_ptr[l] = teacher_hidden[l];
  }
}

static int regression;
static float loss_of(pb_model *m) {
  float loss = NAN;
  if (pb_forward(m, ids, types, mask, B, T, regression ? NULL : labels, regression ? targets : NULL, 1, 3, &loss))
    printf("forward: %s\n", pb_last_error());
  return loss;
}

static void set_kd(pb_model *m, float alpha, float tau, float beta) {
  const pb_kd kd = {.alpha = alpha, .tau = tau, .beta = beta, .logits = teacher_logits, .hidden = hidden_ptr};
  CHECK_OK(pb_model_set_kd(m, &kd));
}

/* the expected distilled loss from a plain forward of m (kd off), in double */
static double expected_loss(pb_model *m, double alpha, double tau, double beta) {
  CHECK_OK(pb_model_set_kd(m, NULL));
  const float task = loss_of(m);
  const int C = m->cfg.num_labels, d = m->cfg.hidden;
  const float *z = m->acts.logits;
  double kd = 0;
  for (int b = 0; b < B; b++) {
    if (C == 1) {
      kd += ((double)z[b] - teacher_logits[b]) * ((double)z[b] - teacher_logits[b]);
      continue;
    }
    double mz = -1e300, mt = -1e300, sz = 0, st = 0;
    for (int c = 0; c < C; c++) mz = fmax(mz, z[b * C + c] / tau), mt = fmax(mt, teacher_logits[b * C + c] / tau);
    for (int c = 0; c < C; c++) sz += exp(z[b * C + c] / tau - mz), st += exp(teacher_logits[b * C + c] / tau - mt);
    for (int c = 0; c < C; c++)
      kd -= exp(teacher_logits[b * C + c] / tau - mt) / st * (z[b * C + c] / tau - mz - log(sz));
  }
  kd = C == 1 ? kd / B : kd * tau * tau / B;
  double rep = 0;
  for (int l = 0; l < S; l++) {
    if (!hidden_ptr[l]) continue;
    double s = 0;
    const float *h = m->acts.layer[l].out;
    for (int i = 0; i < B * T * d; i++) s += ((double)h[i] - hidden_ptr[l][i]) * ((double)h[i] - hidden_ptr[l][i]);
    rep += s / (B * T * d);
  }
  return (1 - alpha) * task + alpha * kd + beta * rep;
}

static void test_loss_values(void) {
  pb_model m = {0};
  pb_method_inst mi = {0};
  build(&m, &mi, "full", NULL, 3, 11);
  teacher_data(3, m.cfg.hidden, 12);
  regression = 0;
  const float plain = loss_of(&m);
  set_kd(&m, 0.0f, 1.0f, 0.0f);
  const float zero = loss_of(&m);
  CHECK(memcmp(&plain, &zero, sizeof plain) == 0, "alpha = beta = 0: loss %.9g, plain %.9g", (double)zero, (double)plain);
  const float cases[][3] = {{0.6f, 1.0f, 0.0f}, {0.6f, 2.0f, 0.7f}, {1.0f, 2.0f, 0.0f}, {0.0f, 1.0f, 1.3f}};
  for (int k = 0; k < 4; k++) {
    hidden_ptr[1] = k == 1 ? NULL : teacher_hidden[1]; /* a step without a term */
    const double want = expected_loss(&m, cases[k][0], cases[k][1], cases[k][2]);
    set_kd(&m, cases[k][0], cases[k][1], cases[k][2]);
    const float got = loss_of(&m);
    printf("kd loss alpha %g tau %g beta %g: %.7f, by hand %.7f\n", (double)cases[k][0], (double)cases[k][1],
           (double)cases[k][2], (double)got, want);
    CHECK(fabs(got - want) < 2e-6 * fmax(1.0, fabs(want)), "kd loss case %d: %.8g vs %.8g", k, (double)got, want);
  }
  hidden_ptr[1] = teacher_hidden[1];
  pb_model_free(&m);
  pb_method_destroy(&mi);

  /* regression: MSE to the labels and to the teacher's outputs */
  build(&m, &mi, "full", NULL, 1, 21);
  teacher_data(1, m.cfg.hidden, 22);
  regression = 1;
  const double want = expected_loss(&m, 0.4, 1.0, 0.5);
  set_kd(&m, 0.4f, 1.0f, 0.5f);
  const float got = loss_of(&m);
  printf("kd regression loss %.7f, by hand %.7f\n", (double)got, want);
  CHECK(fabs(got - want) < 2e-6 * fmax(1.0, fabs(want)), "kd regression loss %.8g vs %.8g", (double)got, want);
  regression = 0;
  pb_model_free(&m);
  pb_method_destroy(&mi);
}

/* distillation in every exit head: the loss is affine in alpha */
static void test_exits_affine(void) {
  pb_model m = {0};
  pb_method_inst mi = {0};
  const char *opts[] = {"init=random", NULL};
  build(&m, &mi, "exits", opts, 3, 31);
  teacher_data(3, m.cfg.hidden, 32);
  set_kd(&m, 0.0f, 2.0f, 0.0f);
  const double l0 = loss_of(&m);
  set_kd(&m, 1.0f, 2.0f, 0.0f);
  const double l1 = loss_of(&m);
  set_kd(&m, 0.3f, 2.0f, 0.0f);
  const double l3 = loss_of(&m);
  printf("exits: L(0) %.6f L(1) %.6f L(0.3) %.6f (0.7 L(0) + 0.3 L(1) = %.6f)\n", l0, l1, l3, 0.7 * l0 + 0.3 * l1);
  CHECK(fabs(l3 - (0.7 * l0 + 0.3 * l1)) < 2e-6 * fmax(1.0, fabs(l3)), "exits: loss not affine in alpha");
  /* and the exits' distillation is there: the final head alone would give another L(1) */
  pb_model p = {0};
  pb_method_inst pi = {0};
  build(&p, &pi, "full", NULL, 3, 31);
  for (int i = 0; i < p.params.n; i++)
    memcpy(p.params.t[i].data, m.params.t[pb_params_find(&m.params, p.params.t[i].name)].data,
           p.params.t[i].numel * sizeof(float));
  set_kd(&p, 1.0f, 2.0f, 0.0f);
  const double p1 = loss_of(&p);
  CHECK(l1 > p1 + 1e-3, "exits: L(1) %.6f should exceed the final head's %.6f by the exits' terms", l1, p1);
  pb_model_free(&p);
  pb_method_destroy(&pi);
  pb_model_free(&m);
  pb_method_destroy(&mi);
}

static void test_gradients(void) {
  /* eps 5e-3 as the exits test (curved joint losses); tolerances a few times the worst entry measured */
  struct {
    const char *spec, *opt;
    int C;
    float alpha, tau, beta;
  } cases[] = {{"full", NULL, 3, 0.6f, 2.0f, 0.7f}, {"exits", "init=random", 3, 0.5f, 1.5f, 0.4f},
               {"full", NULL, 1, 0.5f, 1.0f, 0.5f}};
  for (int k = 0; k < 3; k++) {
    pb_model m = {0};
    pb_method_inst mi = {0};
    const char *opts[] = {cases[k].opt, NULL};
    build(&m, &mi, cases[k].spec, cases[k].opt ? opts : NULL, cases[k].C, 41 + k);
    teacher_data(cases[k].C, m.cfg.hidden, 51 + k);
    hidden_ptr[0] = NULL; /* steps 1 and 2 only */
    regression = cases[k].C == 1;
    set_kd(&m, cases[k].alpha, cases[k].tau, cases[k].beta);
    char what[96];
    snprintf(what, sizeof what, "kd gradients %s C=%d alpha %g tau %g beta %g", cases[k].spec, cases[k].C,
             (double)cases[k].alpha, (double)cases[k].tau, (double)cases[k].beta);
    check_model_gradients(&m, loss_of, ids, 3, 5e-3f, 2e-4, 3e-3, what);
    regression = 0;
    hidden_ptr[0] = teacher_hidden[0];
    pb_model_free(&m);
    pb_method_destroy(&mi);
  }
}

static void test_counts(void) {
  pb_model m = {0};
  pb_method_inst mi = {0};
  const char *opts[] = {"init=random", NULL};
  build(&m, &mi, "exits", opts, 3, 61);
  teacher_data(3, m.cfg.hidden, 62);
  hidden_ptr[1] = NULL; /* terms on steps 0 and 2 */
  const int Bc = 6, Tc = 7; /* counting needs no data: other sizes than the batch's */
  pb_opcounts off = {{{0}}}, on = {{{0}}};
  CHECK_OK(pb_model_set_kd(&m, NULL));
  CHECK_OK(pb_model_count(&m, Bc, Tc, PB_COUNT_TRAIN, &off));
  set_kd(&m, 0.5f, 2.0f, 0.3f);
  CHECK_OK(pb_model_count(&m, Bc, Tc, PB_COUNT_TRAIN, &on));
  const uint64_t b = Bc, C = 3, n = (uint64_t)Bc * Tc * m.cfg.hidden, steps = 2, exits = S - 1;
  /* per head: kd_ce fwd 11bC + 2b, mixing 3; bwd: (1 - alpha) scaling bC, kd_ce bwd 11bC */
  const uint64_t pred_flop = 11 * b * C + 2 * b + 3 + b * C + 11 * b * C, pred_trans = 2 * b * C + b + 2 * b * C;
  /* per step: mse_pair fwd 3n + 1, beta and the sum 2, bwd 3n; once: + 1 into the loss */
  const uint64_t rep_flop = steps * (3 * n + 1 + 2 + 3 * n) + 1;
  const uint64_t want[PB_OPO_COUNT][PB_OPK_COUNT] = {
      [PB_OPO_HEAD] = {[PB_OPK_FLOP] = pred_flop + rep_flop, [PB_OPK_TRANS] = pred_trans},
      [PB_OPO_METHOD] = {[PB_OPK_FLOP] = exits * pred_flop, [PB_OPK_TRANS] = exits * pred_trans}};
  for (int o = 0; o < PB_OPO_COUNT; o++)
    for (int k = 0; k < PB_OPK_COUNT; k++) {
      const uint64_t diff = on.c[o][k] - off.c[o][k];
      CHECK(diff == want[o][k], "kd count owner %d kind %d: +%llu, closed form +%llu", o, k, (unsigned long long)diff,
            (unsigned long long)want[o][k]);
    }
  printf("kd counts at %dx%d: head +%llu FLOP +%llu TRANS, exits +%llu FLOP (closed form)\n", Bc, Tc,
         (unsigned long long)want[PB_OPO_HEAD][PB_OPK_FLOP], (unsigned long long)want[PB_OPO_HEAD][PB_OPK_TRANS],
         (unsigned long long)want[PB_OPO_METHOD][PB_OPK_FLOP]);
  /* inference counts are untouched */
  pb_opcounts ia = {{{0}}}, ib = {{{0}}};
  CHECK_OK(pb_model_count(&m, Bc, Tc, PB_COUNT_INFER, &ia));
  CHECK_OK(pb_model_set_kd(&m, NULL));
  CHECK_OK(pb_model_count(&m, Bc, Tc, PB_COUNT_INFER, &ib));
  CHECK(memcmp(&ia, &ib, sizeof ia) == 0, "kd changed the inference count");
  hidden_ptr[1] = teacher_hidden[1];
  pb_model_free(&m);
  pb_method_destroy(&mi);
}

static void test_errors(void) {
  pb_model m = {0};
  pb_method_inst mi = {0};
  build(&m, &mi, "full", NULL, 3, 71);
  teacher_data(3, m.cfg.hidden, 72);
  const pb_kd bad[] = {{.alpha = 1.5f, .tau = 1, .logits = teacher_logits},
                       {.alpha = -0.1f, .tau = 1, .logits = teacher_logits},
                       {.alpha = 0.5f, .tau = 0, .logits = teacher_logits},
                       {.alpha = 0.5f, .tau = 1, .beta = -1, .logits = teacher_logits, .hidden = hidden_ptr},
                       {.alpha = 0.5f, .tau = 1},
                       {.alpha = 0, .tau = 1, .beta = 1}};
  const char *what[] = {"alpha 1.5", "alpha -0.1", "tau 0", "beta -1", "alpha without logits", "beta without hidden"};
  for (int k = 0; k < 6; k++) {
    const int rc = pb_model_set_kd(&m, &bad[k]);
    CHECK(rc == PB_ERR_ARG, "set_kd %s: %s", what[k], pb_status_name(rc));
    printf("set_kd %s: %s\n", what[k], pb_last_error());
  }
  pb_model_free(&m);
  pb_method_destroy(&mi);
}

int main(void) {
  test_loss_values();
  test_exits_affine();
  test_gradients();
  test_counts();
  test_errors();
  free(teacher_logits);
  for (int l = 0; l < S; l++) free(teacher_hidden[l]);
  printf("test_kd: %d checks, %d failed\n", checks, failures);
  return check_exit_status();
}
