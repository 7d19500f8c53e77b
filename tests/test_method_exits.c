/* The early-exit method (methods/exits.c, COST-EFF's multi-exit model) and the harness's
 * per-example counts (harness/exitstats.c), on a 3-step tiny model (two exits), dropout 0:
 *  - training: loss = final loss + weight * sum of the exits' cross-entropies, checked against
 *    pb_head_fwd by hand on a plain model's step outputs; finite-difference gradients of every
 *    trainable tensor (exit heads and backbone) through the joint loss, at weight 1 and 0.5,
 *    train_backbone=1 (backbone trains) and 0 (frozen: only exits + head);
 *  - init=copy: the exits become copies of the model's pooler + classifier at the first real
 *    training forward (not in counting-only mode, not at inference); init=random: they do not;
 *  - inference: exit decisions and logits equal a plain re-implementation of the entropy rule
 *    written here (softmax entropy in nats, first exit below the threshold, else the final head)
 *    at thresholds between the observed entropies, covering rows that leave at exit 0, at exit 1
 *    and none; threshold 0 gives the plain model's logits bit for bit and its op counts;
 *  - batched evaluation (batch 1, 3, 7, rows of different lengths) gives the same exit steps,
 *    predictions and per-example counts as batch 1, and the instrumented count of each equals
 *    its counting-only twin (pb_exits_evaluate's analytic);
 *  - counting: with every row of one length, the instrumented count of the real batch equals the
 *    sum over its rows of pb_model_count_exit at their exit steps (every owner and kind); the
 *    method's share matches the closed form (exit head + 5C FLOP, C+1 TRANS of entropy per exit);
 *  - pooler=tanh: no pooler tensors, exit losses against tanh + classifier written out, gradients,
 *    the one-exit count in closed form, init=copy copies the classifier;
 *  - errors: threshold < 0 (option and pb_exits_set_threshold), bad options, threshold > 0 on a
 *    regression head (at attach and at run time); a 1-step model gets no exit; lora+exits composes with a frozen
 *    backbone. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "backbone/bert.h"
#include "util/rng.h"
#include "util/status.h"
#include "counters/opcount.h"
#include "harness/exitstats.h"
#include "harness/glue.h"
#include "methods/method.h"
#include "tests/check.h"

enum { B = 4, T = 5, C = 3, S = 3, V = 31, D = 8 };
static int ids[B * T], types[B * T], mask[B * T], labels[B];

static void tiny(pb_config *c, int layers, int num_labels) {
  memset(c, 0, sizeof *c);
  c->vocab_size = V;
  c->hidden = D;
  c->layers = layers;
  c->heads = 2;
  c->ffn = 12;
  c->max_pos = 8;
  c->type_vocab = 2;
  c->ln_eps = 1e-12f;
  c->hidden_dropout = 0.0f;
  c->attn_dropout = 0.0f;
  c->init_range = 0.3f;
  c->num_labels = num_labels;
}

static void make_batch(void) {
  for (int b = 0; b < B; b++) {
    const int len = T - (b % 2);
    for (int t = 0; t < T; t++) {
      ids[b * T + t] = t < len ? (5 * b + 3 * t + 2) % V : 0;
      types[b * T + t] = t >= 2 && t < len;
      mask[b * T + t] = t < len;
    }
    labels[b] = b % C;
  }
}

/* the exits' classifier weights x s: sharper exit distributions, a spread of entropies */
static void sharpen(pb_model *m, float s) {
  char name[PB_NAME_MAX];
  for (int l = 0; l < S - 1; l++) {
    snprintf(name, sizeof name, "exit.%d.classifier.weight", l);
    const int i = pb_params_find(&m->params, name);
    for (size_t j = 0; i >= 0 && j < m->params.t[i].numel; j++) m->params.t[i].data[j] *= s;
  }
}

static float loss_of(pb_model *m) {
  float loss = NAN;
  if (pb_forward(m, ids, types, mask, B, T, labels, NULL, 0, 0, &loss)) printf("forward: %s\n", pb_last_error());
  return loss;
}

/* central differences on sampled entries of every trainable tensor (test_backbone_v2.c's helper, eps 5e-3:
 * the joint loss of three heads is curved enough that eps 1e-2 left a truncation error of 1.7e-4 on
 * a position embedding; at 5e-3 the worst entry measured uses ~0.35 of 1.5e-4 abs or 2e-3 rel) */
static void gradcheck(pb_model *m, const char *what, double atol, double rtol) {
  check_model_gradients(m, loss_of, ids, 3, 5e-3f, atol, rtol, what);
}

/* a model with the method `spec` (options NULL-terminated) attached, allocated for 7 x T,
 * initialised and perturbed */
static void build(pb_model *m, pb_method_inst *mi, const char *spec, const char *const *opts, int num_labels,
                  uint64_t seed) {
  pb_config c;
  tiny(&c, S, num_labels);
  CHECK_OK(pb_method_create(mi, spec, opts));
  CHECK_OK(pb_model_declare(m, &c));
  CHECK_OK(mi->m->attach(mi->ctx, m));
  CHECK_OK(pb_model_alloc(m, 7, T));
  pb_model_init_random(m, seed);
  pb_test_perturb(m, seed + 1, 0);
}

/* the plain model holding m's backbone and head values */
static void plain_copy(pb_model *p, pb_model *m) {
  CHECK_OK(pb_model_declare(p, &m->cfg));
  CHECK_OK(pb_model_alloc(p, 7, T));
  for (int i = 0; i < p->params.n; i++)
    memcpy(p->params.t[i].data, m->params.t[pb_params_find(&m->params, p->params.t[i].name)].data,
           p->params.t[i].numel * sizeof(float));
}

static pb_head_idx exit_head(const pb_model *m, int l) {
  char n[PB_NAME_MAX];
  pb_head_idx h;
  snprintf(n, sizeof n, "exit.%d.pooler.dense.weight", l), h.pool_w = pb_params_find(&m->params, n);
  snprintf(n, sizeof n, "exit.%d.pooler.dense.bias", l), h.pool_b = pb_params_find(&m->params, n);
  snprintf(n, sizeof n, "exit.%d.classifier.weight", l), h.cls_w = pb_params_find(&m->params, n);
  snprintf(n, sizeof n, "exit.%d.classifier.bias", l), h.cls_b = pb_params_find(&m->params, n);
  return h;
}

/* exit l's logits [nb, C] and (with lab) mean cross-entropy, by pb_head_fwd on h [nb,tt,d] */
static float head_by_hand(pb_model *m, int l, const float *h, int nb, int tt, const int *lab, float *logits) {
  pb_head_idx hd = exit_head(m, l);
  pb_head_acts ha;
  float *blk = malloc(pb_head_acts_floats(m, &hd, nb) * sizeof(float)), loss = 0;
  pb_head_acts_layout(&ha, blk, m, &hd, nb);
  CHECK_OK(pb_head_fwd(m, &hd, &ha, h, nb, tt, lab, NULL, 0, 0, lab ? &loss : NULL));
  if (logits) memcpy(logits, ha.logits, (size_t)nb * C * sizeof(float));
  free(blk);
  return loss;
}

/* the rule, written plainly: softmax probabilities, H = -sum p ln p */
static double entropy_plain(const float *z) {
  double mx = z[0], p[C], s = 0, h = 0;
  for (int k = 1; k < C; k++) mx = fmax(mx, z[k]);
  for (int k = 0; k < C; k++) s += p[k] = exp((double)z[k] - mx);
  for (int k = 0; k < C; k++) h -= (p[k] / s) * log(p[k] / s);
  return h;
}

/* ---------------------------------------------------------------- training */

static void training(void) {
  const char *o_rand[] = {"init=random", NULL}, *o_half[] = {"init=random", "weight=0.5", NULL};
  const char *o_frozen[] = {"init=random", "train_backbone=0", NULL};
  pb_model m, p;
  pb_method_inst mi;
  build(&m, &mi, "exits", o_rand, C, 11);
  /* the joint loss by hand: the plain model's final loss + the exits' CE on its step outputs */
  plain_copy(&p, &m);
  float plain = 0, joint = 0;
  CHECK_OK(pb_forward(&p, ids, types, mask, B, T, labels, NULL, 0, 0, &plain));
  const float ce0 = head_by_hand(&m, 0, p.acts.layer[0].out, B, T, labels, NULL);
  const float ce1 = head_by_hand(&m, 1, p.acts.layer[1].out, B, T, labels, NULL);
  CHECK_OK(pb_forward(&m, ids, types, mask, B, T, labels, NULL, 0, 0, &joint));
  printf("joint loss %.7g = final %.7g + exit0 %.7g + exit1 %.7g (sum %.7g)\n", joint, plain, ce0, ce1, plain + ce0 + ce1);
  CHECK(fabsf(joint - (plain + ce0 + ce1)) < 1e-5f, "joint loss %.9g != final + exits %.9g", joint, plain + ce0 + ce1);
  int nb = 0, nt = 0;
  for (int i = 0; i < m.params.n; i++) {
    nb += m.params.t[i].owner == PB_OWNER_BACKBONE && m.params.t[i].trainable;
    nt += m.params.t[i].owner == PB_OWNER_METHOD && m.params.t[i].trainable && m.params.t[i].stored;
  }
  CHECK(nt == 4 * (S - 1) && nb > 0, "train_backbone=1: %d exit tensors, %d backbone trainable", nt, nb);
  gradcheck(&m, "exits weight 1, backbone trains", 1.5e-4, 2e-3);
  pb_model_free(&p);
  pb_model_free(&m);
  pb_method_destroy(&mi);

  build(&m, &mi, "exits", o_half, C, 12);
  plain_copy(&p, &m);
  CHECK_OK(pb_forward(&p, ids, types, mask, B, T, labels, NULL, 0, 0, &plain));
  const float h0 = head_by_hand(&m, 0, p.acts.layer[0].out, B, T, labels, NULL);
  const float h1 = head_by_hand(&m, 1, p.acts.layer[1].out, B, T, labels, NULL);
  CHECK_OK(pb_forward(&m, ids, types, mask, B, T, labels, NULL, 0, 0, &joint));
  CHECK(fabsf(joint - (plain + 0.5f * (h0 + h1))) < 1e-5f, "weight 0.5: joint %.9g != %.9g", joint,
        plain + 0.5f * (h0 + h1));
  gradcheck(&m, "exits weight 0.5", 1.5e-4, 2e-3);
  pb_model_free(&p);
  pb_model_free(&m);
  pb_method_destroy(&mi);

  build(&m, &mi, "exits", o_frozen, C, 13);
  nb = 0;
  int nhead = 0;
  for (int i = 0; i < m.params.n; i++) {
    nb += m.params.t[i].owner == PB_OWNER_BACKBONE && m.params.t[i].trainable;
    nhead += m.params.t[i].owner == PB_OWNER_HEAD && m.params.t[i].trainable;
  }
  CHECK(nb == 0 && nhead == 2, "train_backbone=0: %d backbone tensors train, %d head tensors", nb, nhead);
  gradcheck(&m, "exits, frozen backbone", 1.5e-4, 2e-3);
  pb_model_free(&m);
  pb_method_destroy(&mi);
}

/* init=copy: copies at the first real training forward only */
static void init_copy(void) {
  pb_model m;
  pb_method_inst mi;
  build(&m, &mi, "exits", NULL, C, 21);
  const pb_head_idx e1 = exit_head(&m, 1);
  const int src[4] = {m.head.pool_w, m.head.pool_b, m.head.cls_w, m.head.cls_b};
  const int dst[4] = {e1.pool_w, e1.pool_b, e1.cls_w, e1.cls_b};
  int same = 1;
  for (int k = 0; k < 4; k++) same &= !memcmp(pb_w(&m, src[k]), pb_w(&m, dst[k]), m.params.t[src[k]].numel * sizeof(float));
  CHECK(!same, "init=copy: exits equal the head before any training");
  pb_opcounts oc = {{{0}}};
  CHECK_OK(pb_model_count(&m, B, T, PB_COUNT_TRAIN, &oc));
  CHECK_OK(pb_forward(&m, ids, types, mask, B, T, NULL, NULL, 0, 0, NULL));
  same = 1;
  for (int k = 0; k < 4; k++) same &= !memcmp(pb_w(&m, src[k]), pb_w(&m, dst[k]), m.params.t[src[k]].numel * sizeof(float));
  CHECK(!same, "init=copy: copied by a counting-only run or an inference forward");
  CHECK_OK(pb_forward(&m, ids, types, mask, B, T, labels, NULL, 1, 7, NULL));
  same = 1;
  for (int k = 0; k < 4; k++) same &= !memcmp(pb_w(&m, src[k]), pb_w(&m, dst[k]), m.params.t[src[k]].numel * sizeof(float));
  CHECK(same, "init=copy: exit 1 is not a copy of the model's pooler + classifier after a training forward");
  pb_model_free(&m);
  pb_method_destroy(&mi);
  /* init=random never copies */
  const char *o_rand[] = {"init=random", NULL};
  build(&m, &mi, "exits", o_rand, C, 22);
  CHECK_OK(pb_forward(&m, ids, types, mask, B, T, labels, NULL, 1, 7, NULL));
  const pb_head_idx r1 = exit_head(&m, 1);
  CHECK(memcmp(pb_w(&m, m.head.cls_w), pb_w(&m, r1.cls_w), (size_t)C * D * sizeof(float)) != 0, "init=random copied");
  pb_model_free(&m);
  pb_method_destroy(&mi);
}

static void set_thr(pb_method_inst *mi, double t) { CHECK_OK(pb_exits_set_threshold(mi, t)); }

/* the method owner's MAC / FLOP / TRANS of a count against a closed form */
static void check_method_share(const pb_opcounts *k, uint64_t mac, uint64_t flop, uint64_t trans, const char *what) {
  const uint64_t gm = pb_opcounts_kind(k, PB_OPO_METHOD, PB_OPK_MAC), gf = pb_opcounts_kind(k, PB_OPO_METHOD, PB_OPK_FLOP),
                 gt = pb_opcounts_kind(k, PB_OPO_METHOD, PB_OPK_TRANS);
  CHECK(gm == mac && gf == flop && gt == trans, "%s: method MAC/FLOP/TRANS %llu/%llu/%llu, closed form %llu/%llu/%llu",
        what, (unsigned long long)gm, (unsigned long long)gf, (unsigned long long)gt, (unsigned long long)mac,
        (unsigned long long)flop, (unsigned long long)trans);
}

/* pooler=tanh (COST-EFF's pooler_dense=False): no pooler tensors, tanh on [CLS] then the classifier */
static void pooler_tanh(void) {
  pb_model m, p;
  pb_method_inst mi;
  build(&m, &mi, "exits", (const char *const[]){"init=random", "pooler=tanh", NULL}, C, 71);
  size_t nm = 0;
  for (int i = 0; i < m.params.n; i++) nm += m.params.t[i].owner == PB_OWNER_METHOD ? m.params.t[i].numel : 0;
  CHECK(nm == (size_t)(S - 1) * (C * D + C), "pooler=tanh: %zu exit parameters, closed form %d", nm, (S - 1) * (C * D + C));
  CHECK(exit_head(&m, 0).pool_w < 0, "pooler=tanh declared a pooler dense");
  plain_copy(&p, &m);
  float plain = 0, joint = 0;
  CHECK_OK(pb_forward(&p, ids, types, mask, B, T, labels, NULL, 0, 0, &plain));
  const float ce0 = head_by_hand(&m, 0, p.acts.layer[0].out, B, T, labels, NULL);
  const float ce1 = head_by_hand(&m, 1, p.acts.layer[1].out, B, T, labels, NULL);
  /* head_by_hand's pb_head_fwd without a dense, against tanh + classifier written here */
  float want = 0;
  {
    const pb_head_idx e0 = exit_head(&m, 0);
    double l = 0;
    for (int b = 0; b < B; b++) {
      double z[C], mx = -1e300, s = 0;
      for (int k = 0; k < C; k++) {
        z[k] = pb_w(&m, e0.cls_b)[k];
        for (int j = 0; j < D; j++) z[k] += pb_w(&m, e0.cls_w)[k * D + j] * tanh(p.acts.layer[0].out[(size_t)b * T * D + j]);
        mx = fmax(mx, z[k]);
      }
      for (int k = 0; k < C; k++) s += exp(z[k] - mx);
      l += log(s) + mx - z[labels[b]];
    }
    want = (float)(l / B);
  }
  CHECK(fabsf(ce0 - want) < 1e-5f, "pooler=tanh exit 0 loss %.7g, written out %.7g", ce0, want);
  CHECK_OK(pb_forward(&m, ids, types, mask, B, T, labels, NULL, 0, 0, &joint));
  CHECK(fabsf(joint - (plain + ce0 + ce1)) < 1e-5f, "pooler=tanh: joint %.9g != %.9g", joint, plain + ce0 + ce1);
  gradcheck(&m, "exits pooler=tanh", 1.5e-4, 2e-3);
  pb_opcounts k0 = {{{0}}};
  set_thr(&mi, 0.5);
  CHECK_OK(pb_model_count_exit(&m, 1, T, 0, &k0));
  const uint64_t mac = (uint64_t)D * C, flop = (uint64_t)C + 5 * C, trans = (uint64_t)D + C + 1;
  check_method_share(&k0, mac, flop, trans, "pooler=tanh, one exit");
  pb_model_free(&p);
  pb_model_free(&m);
  pb_method_destroy(&mi);
  /* init=copy copies the classifier only */
  build(&m, &mi, "exits", (const char *const[]){"pooler=tanh", NULL}, C, 72);
  CHECK_OK(pb_forward(&m, ids, types, mask, B, T, labels, NULL, 1, 7, NULL));
  const pb_head_idx e1 = exit_head(&m, 1);
  CHECK(!memcmp(pb_w(&m, m.head.cls_w), pb_w(&m, e1.cls_w), (size_t)C * D * sizeof(float)),
        "pooler=tanh, init=copy: exit 1's classifier is not the model's");
  pb_model_free(&m);
  pb_method_destroy(&mi);
}

/* ---------------------------------------------------------------- inference */

static void decisions(void) {
  pb_model m, p;
  pb_method_inst mi;
  build(&m, &mi, "exits", (const char *const[]){"init=random", NULL}, C, 31);
  sharpen(&m, 8.0f);
  plain_copy(&p, &m);
  CHECK_OK(pb_forward(&p, ids, types, mask, B, T, NULL, NULL, 0, 0, NULL));
  float ex[S - 1][B * C];
  double H[S - 1][B];
  for (int l = 0; l < S - 1; l++) {
    head_by_hand(&m, l, p.acts.layer[l].out, B, T, NULL, ex[l]);
    for (int b = 0; b < B; b++) H[l][b] = entropy_plain(ex[l] + b * C);
  }
  /* thresholds between the observed entropies (and below / above them all) */
  double e[(S - 1) * B + 2];
  int ne = 0;
  for (int l = 0; l < S - 1; l++)
    for (int b = 0; b < B; b++) e[ne++] = H[l][b];
  for (int i = 1; i < ne; i++) /* insertion sort */
    for (int j = i; j > 0 && e[j] < e[j - 1]; j--) {
      double t = e[j];
      e[j] = e[j - 1], e[j - 1] = t;
    }
  printf("exit entropies:");
  for (int i = 0; i < ne; i++) printf(" %.4f", e[i]);
  printf("\n");
  int seen[S] = {0};
  for (int q = 0; q <= ne; q++) {
    const double thr = q == 0 ? 0.5 * e[0] : q == ne ? e[ne - 1] + 0.5 : 0.5 * (e[q - 1] + e[q]);
    if (q > 0 && q < ne && e[q] - e[q - 1] < 1e-4) continue; /* too close to call in float */
    set_thr(&mi, thr);
    CHECK_OK(pb_forward(&m, ids, types, mask, B, T, NULL, NULL, 0, 0, NULL));
    const float thrf = (float)thr; /* the option is a float */
    for (int b = 0; b < B; b++) {
      int want = S - 1;
      for (int l = 0; l < S - 1 && want == S - 1; l++)
        if (H[l][b] < (double)thrf) want = l;
      const float *w = want < S - 1 ? ex[want] + b * C : p.acts.logits + b * C;
      const int got = pb_model_exit_step(&m, b);
      double dl = 0;
      for (int k = 0; k < C; k++) dl = fmax(dl, fabs(m.acts.logits[b * C + k] - w[k]));
      CHECK(got == want, "threshold %.5f row %d: exit step %d, the rule says %d", thr, b, got, want);
      CHECK(dl < 1e-5, "threshold %.5f row %d: logits differ from the rule's by %.2e", thr, b, dl);
      seen[want]++;
    }
  }
  printf("rule re-implementation: rows leaving at exit 0: %d, exit 1: %d, running to the end: %d\n", seen[0], seen[1],
         seen[2]);
  CHECK(seen[0] > 0 && seen[1] > 0 && seen[2] > 0, "the thresholds did not cover every outcome (%d %d %d)", seen[0],
        seen[1], seen[2]);
  /* threshold 0: the plain model exactly, predictions and counts */
  set_thr(&mi, 0);
  CHECK_OK(pb_forward(&m, ids, types, mask, B, T, NULL, NULL, 0, 0, NULL));
  CHECK(m.exited == 0 && memcmp(m.acts.logits, p.acts.logits, sizeof(float) * B * C) == 0,
        "threshold 0: logits differ from the plain model's");
  pb_opcounts cm = {{{0}}}, cp = {{{0}}};
  CHECK_OK(pb_model_count(&m, B, T, PB_COUNT_INFER, &cm));
  CHECK_OK(pb_model_count(&p, B, T, PB_COUNT_INFER, &cp));
  CHECK(memcmp(&cm, &cp, sizeof cm) == 0, "threshold 0: inference count differs from the plain model's");
  /* labels present: nobody leaves, whatever the threshold */
  set_thr(&mi, 50);
  CHECK_OK(pb_forward(&m, ids, types, mask, B, T, labels, NULL, 0, 0, NULL));
  CHECK(m.exited == 0, "a labelled forward lost rows");
  pb_model_free(&p);
  pb_model_free(&m);
  pb_method_destroy(&mi);
}

/* ---------------------------------------------------------------- batching and counts */

static void encoded(pb_encoded *e, int n, int maxlen) {
  memset(e, 0, sizeof *e);
  e->n = n;
  e->max_len = maxlen;
  e->ids = calloc((size_t)n * maxlen, sizeof(int));
  e->types = calloc((size_t)n * maxlen, sizeof(int));
  e->mask = calloc((size_t)n * maxlen, sizeof(int));
  e->len = calloc((size_t)n, sizeof(int));
  e->label = calloc((size_t)n, sizeof(int));
  e->target = calloc((size_t)n, sizeof(float));
  for (int i = 0; i < n; i++) {
    e->len[i] = 2 + (i * 3) % (maxlen - 1);
    for (int t = 0; t < e->len[i]; t++) {
      e->ids[i * maxlen + t] = (7 * i + 5 * t + 1) % V;
      e->types[i * maxlen + t] = t > e->len[i] / 2;
      e->mask[i * maxlen + t] = 1;
    }
    e->label[i] = i % C;
    e->target[i] = (float)e->label[i];
  }
}

static void batching(void) {
  pb_model m;
  pb_method_inst mi;
  build(&m, &mi, "exits", (const char *const[]){"init=random", NULL}, C, 41);
  sharpen(&m, 8.0f);
  const pb_task *task = pb_task_find("mnli");
  enum { N = 7 };
  pb_encoded e;
  encoded(&e, N, T);
  /* a threshold where rows of this set leave at different steps, away from every entropy */
  int steps1[N], stepsb[N];
  float out1[N * C], outb[N * C];
  double best = 0, thr = 0;
  for (double t = 0.02; t < 1.1; t += 0.02) {
    set_thr(&mi, t);
    CHECK_OK(pb_exits_evaluate(&m, &mi, task, &e, 1, NULL, out1, NULL, steps1, NULL));
    int kinds[S] = {0}, nk = 0;
    for (int i = 0; i < N; i++) kinds[steps1[i]] = 1;
    for (int k = 0; k < S; k++) nk += kinds[k];
    if (nk > best) best = nk, thr = t;
  }
  set_thr(&mi, thr);
  pb_metric_set ms1, msb;
  pb_opcounts meas = {{{0}}}, an = {{{0}}};
  pb_opc_reset();
  pb_opc_enable(1);
  CHECK_OK(pb_exits_evaluate(&m, &mi, task, &e, 1, &ms1, out1, &meas, steps1, &an));
  pb_opc_enable(0);
  CHECK(memcmp(&meas, &an, sizeof an) == 0, "batch 1: instrumented eval != its counting-only twin");
  pb_exit_stats s1 = {0};
  CHECK_OK(pb_exit_stats_add(&s1, &m, &mi, thr, steps1, e.len, N));
  printf("threshold %.2f: exit steps at batch 1:", thr);
  for (int i = 0; i < N; i++) printf(" %d", steps1[i]);
  printf(" (%d distinct)\n", (int)best);
  CHECK(best >= 2, "no threshold makes rows leave at different steps");
  for (int bs = 3; bs <= N; bs += 4) {
    pb_opcounts mb = {{{0}}}, ab = {{{0}}};
    pb_opc_reset();
    pb_opc_enable(1);
    CHECK_OK(pb_exits_evaluate(&m, &mi, task, &e, bs, &msb, outb, &mb, stepsb, &ab));
    pb_opc_enable(0);
    CHECK(memcmp(&mb, &ab, sizeof ab) == 0, "batch %d: instrumented eval != its counting-only twin", bs);
    double dl = 0;
    int same_pred = 1;
    for (int i = 0; i < N; i++) {
      int a1 = 0, ab2 = 0;
      for (int k = 0; k < C; k++) {
        dl = fmax(dl, fabs(out1[i * C + k] - outb[i * C + k]));
        if (out1[i * C + k] > out1[i * C + a1]) a1 = k;
        if (outb[i * C + k] > outb[i * C + ab2]) ab2 = k;
      }
      same_pred &= a1 == ab2;
      CHECK(steps1[i] == stepsb[i], "batch %d: example %d exits at step %d, batch 1 at %d", bs, i, stepsb[i], steps1[i]);
    }
    CHECK(same_pred && ms1.score == msb.score, "batch %d: predictions differ from batch 1", bs);
    CHECK(dl < 1e-5, "batch %d: logits differ from batch 1 by %.2e", bs, dl);
    pb_exit_stats sb = {0};
    CHECK_OK(pb_exit_stats_add(&sb, &m, &mi, thr, stepsb, e.len, N));
    CHECK(memcmp(sb.flops, s1.flops, N * sizeof(double)) == 0 && memcmp(&sb.sum, &s1.sum, sizeof sb.sum) == 0,
          "batch %d: per-example counts differ from batch 1", bs);
    printf("batch %d: same exit steps, predictions and per-example counts as batch 1 (|dlogit| %.1e)\n", bs, dl);
    pb_exit_stats_free(&sb);
  }
  /* the static model: threshold 0, every example through every step; the threshold comes back */
  double back = -1;
  CHECK_OK(pb_exits_threshold(&mi, &back));
  CHECK(fabs(back - thr) < 1e-6, "threshold %.9g not restored after the static count (%.9g)", thr, back);
  for (int i = 0; i < N; i++) {
    pb_opcounts st = {{{0}}};
    set_thr(&mi, 0);
    CHECK_OK(pb_model_count_exit(&m, 1, e.len[i], S - 1, &st));
    set_thr(&mi, thr);
    CHECK(s1.flops_static[i] == (double)pb_opcounts_flops(&st, -1), "example %d: static flops", i);
    CHECK(steps1[i] == S - 1 ? s1.flops[i] > s1.flops_static[i] : s1.flops[i] < s1.flops_static[i],
          "example %d (exit step %d): %.0f FLOPs vs static %.0f", i, steps1[i], s1.flops[i], s1.flops_static[i]);
  }
  cJSON *j = pb_exit_stats_json(&s1, thr);
  char *txt = cJSON_PrintUnformatted(j);
  printf("exits: %s\n", txt);
  const cJSON *dist = cJSON_GetObjectItem(j, "distribution");
  int tot = 0;
  for (int k = 1; k <= S; k++) {
    char key[8];
    snprintf(key, sizeof key, "%d", k);
    tot += cJSON_GetObjectItem(dist, key) ? cJSON_GetObjectItem(dist, key)->valueint : -1000;
  }
  CHECK(tot == N && cJSON_IsNumber(cJSON_GetObjectItem(j, "speedup")), "exits json: distribution sums to %d", tot);
  free(txt);
  cJSON_Delete(j);
  pb_exit_stats_free(&s1);
  pb_encoded_free(&e);
  pb_model_free(&m);
  pb_method_destroy(&mi);
}

static void counting(void) {
  pb_model m;
  pb_method_inst mi;
  build(&m, &mi, "exits", (const char *const[]){"init=random", NULL}, C, 51);
  sharpen(&m, 8.0f);
  int fids[B * T], fmask[B * T];
  for (int i = 0; i < B * T; i++) fids[i] = (3 * i + 1) % V, fmask[i] = 1; /* every row of length T */
  /* the closed form of the method's share: per exit head + entropy over one row */
  pb_opcounts k0 = {{{0}}}, kend = {{{0}}};
  set_thr(&mi, 0.5);
  CHECK_OK(pb_model_count_exit(&m, 1, T, 0, &k0));
  CHECK_OK(pb_model_count_exit(&m, 1, T, S - 1, &kend));
  const uint64_t mac = (uint64_t)D * D + (uint64_t)D * C, flop = (uint64_t)D + C + 5 * C, trans = (uint64_t)D + C + 1;
  check_method_share(&k0, mac, flop, trans, "one exit");
  CHECK(pb_opcounts_kind(&kend, PB_OPO_METHOD, PB_OPK_MAC) == (S - 1) * mac &&
            pb_opcounts_kind(&k0, PB_OPO_HEAD, PB_OPK_MAC) == 0 && pb_opcounts_kind(&kend, PB_OPO_HEAD, PB_OPK_MAC) > 0,
        "to the end: every exit and the final head; leaving at exit 0: no final head");
  int tried = 0;
  for (double thr = 0.05; thr < 1.1; thr += 0.05) {
    set_thr(&mi, thr);
    pb_opc_reset();
    pb_opc_enable(1);
    CHECK_OK(pb_forward(&m, fids, types, fmask, B, T, NULL, NULL, 0, 0, NULL));
    pb_opc_enable(0);
    const pb_opcounts real = pb_opc_snapshot();
    pb_opcounts sum = {{{0}}};
    int st[B];
    for (int b = 0; b < B; b++) {
      pb_opcounts one = {{{0}}};
      st[b] = pb_model_exit_step(&m, b);
      CHECK_OK(pb_model_count_exit(&m, 1, T, st[b], &one));
      pb_opcounts_add(&sum, &one);
    }
    int ok = memcmp(&sum, &real, sizeof sum) == 0;
    CHECK(ok, "threshold %.2f: the real batch's count != the sum of its rows' counts", thr);
    if (m.exited > 0 && m.exited < B) tried++;
  }
  printf("counting: real batch == sum of per-row counts at 21 thresholds (%d with a mixed batch)\n", tried);
  CHECK(tried > 0, "no threshold gave a batch in which some rows left early and others did not");
  pb_model_free(&m);
  pb_method_destroy(&mi);
}

/* ---------------------------------------------------------------- errors, composition */

static int create_rc(const char *spec, const char *opt) {
  const char *o[] = {opt, NULL};
  pb_method_inst mi;
  int rc = pb_method_create(&mi, spec, opt ? o : NULL);
  if (!rc) pb_method_destroy(&mi);
  return rc;
}

static void errors(void) {
  CHECK(create_rc("exits", "threshold=-0.1") == PB_ERR_ARG, "threshold < 0 accepted");
  printf("threshold=-0.1: %s\n", pb_last_error());
  CHECK(strstr(pb_last_error(), "threshold") != NULL, "the error does not name the option");
  CHECK(create_rc("exits", "threshold=nan") == PB_ERR_ARG, "threshold nan accepted");
  CHECK(create_rc("exits", "weight=-1") == PB_ERR_ARG, "weight < 0 accepted");
  CHECK(create_rc("exits", "init=zeros") == PB_ERR_ARG, "init=zeros accepted");
  CHECK(create_rc("exits", "train_backbone=2") == PB_ERR_ARG, "train_backbone=2 accepted");
  CHECK(create_rc("exits", "depth=3") == PB_ERR_ARG, "unknown option accepted");
  CHECK(create_rc("exits", "threshold=0.4") == PB_OK, "threshold=0.4 refused: %s", pb_last_error());
  pb_method_inst mi;
  CHECK_OK(pb_method_create(&mi, "exits", NULL));
  CHECK(pb_exits_set_threshold(&mi, -0.5) == PB_ERR_ARG, "pb_exits_set_threshold(-0.5) accepted");
  pb_method_destroy(&mi);
  CHECK_OK(pb_method_create(&mi, "lora", NULL));
  CHECK(pb_exits_set_threshold(&mi, 0.5) == PB_ERR_ARG, "a threshold set on lora (no exits)");
  printf("lora threshold: %s\n", pb_last_error());
  pb_method_destroy(&mi);
  /* regression: threshold > 0 refused at attach; at run time when set later */
  pb_config c;
  pb_model m;
  tiny(&c, S, 1);
  CHECK_OK(pb_method_create(&mi, "exits", (const char *const[]){"threshold=0.3", NULL}));
  CHECK_OK(pb_model_declare(&m, &c));
  CHECK(mi.m->attach(mi.ctx, &m) == PB_ERR_ARG, "threshold>0 on a regression head attached");
  printf("regression: %s\n", pb_last_error());
  pb_model_free(&m);
  pb_method_destroy(&mi);
  build(&m, &mi, "exits", NULL, 1, 61);
  float tg[B] = {0.5f, 1.5f, 2.5f, 3.5f}, loss = 0;
  CHECK_OK(pb_forward(&m, ids, types, mask, B, T, NULL, tg, 1, 3, &loss));
  CHECK_OK(pb_backward(&m));
  CHECK(isfinite(loss), "regression exits: loss %g", loss);
  set_thr(&mi, 0.3);
  CHECK(pb_forward(&m, ids, types, mask, B, T, NULL, NULL, 0, 0, NULL) == PB_ERR_ARG,
        "regression head with threshold > 0 ran");
  printf("regression at run time: %s\n", pb_last_error());
  pb_model_free(&m);
  pb_method_destroy(&mi);
  /* one step: nothing to exit after, no tensors and no hook (the backbone trains as full FT) */
  tiny(&c, 1, C);
  CHECK_OK(pb_method_create(&mi, "exits", NULL));
  CHECK_OK(pb_model_declare(&m, &c));
  const int n0 = m.params.n;
  CHECK_OK(mi.m->attach(mi.ctx, &m));
  CHECK(m.params.n == n0 && !pb_exits_model_has(&m), "a 1-step model got exits");
  pb_model_free(&m);
  pb_method_destroy(&mi);
}

static void composition(void) {
  pb_model m;
  pb_method_inst mi;
  build(&m, &mi, "lora+exits", (const char *const[]){"exits.train_backbone=0", "exits.init=random", "r=2", NULL}, C, 71);
  int nb = 0, nl = 0, ne = 0;
  for (int i = 0; i < m.params.n; i++) {
    const pb_tensor *t = &m.params.t[i];
    nb += t->owner == PB_OWNER_BACKBONE && t->trainable;
    nl += !strncmp(t->name, "lora.", 5) && t->trainable;
    ne += !strncmp(t->name, "exit.", 5) && t->trainable;
  }
  CHECK(nb == 0 && nl == 2 * 2 * S && ne == 4 * (S - 1), "lora+exits: %d backbone, %d lora, %d exit tensors train", nb,
        nl, ne);
  /* LoRA B is zero at init: give it values so that its gradient path matters */
  for (int i = 0; i < m.params.n; i++)
    if (!strncmp(m.params.t[i].name, "lora.", 5))
      for (size_t j = 0; j < m.params.t[i].numel; j++) m.params.t[i].data[j] = 0.1f * sinf((float)(i * 31 + j));
  gradcheck(&m, "lora+exits (frozen backbone)", 1.5e-4, 2e-3);
  CHECK_OK(pb_exits_set_threshold(&mi, 0.8));
  double t = 0;
  CHECK_OK(pb_exits_threshold(&mi, &t));
  CHECK(fabs(t - 0.8) < 1e-6, "composite threshold reads back %.9g", t);
  pb_model_free(&m);
  pb_method_destroy(&mi);
}

int main(void) {
  make_batch();
  training();
  init_copy();
  decisions();
  batching();
  counting();
  pooler_tanh();
  errors();
  composition();
  printf("%d checks, %d failures\n", checks, failures);
  return check_exit_status();
}
