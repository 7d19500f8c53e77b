/* (IA)^3 method tests: options and registry entry, trainable counts at bert-base (computed here
 * independently), the scaling rule by hand (output scaling of q/k/v/attn_out/ffn_in, input
 * scaling of ffn_out), logits at init bit-identical to the plain backbone, finite-difference
 * gradients of every vector and of backbone tensors below and at the scaled sites (the hooks'
 * input gradients) through pb_forward/pb_backward, op counts by execution against a closed form
 * (forward and training) and against a real instrumented run, merge/unmerge (logits, zero added
 * ops, weights restored), direct hook misuse, training with a frozen backbone, task-file round
 * trip. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "backbone/bert.h"
#include "backbone/checkpoint.h"
#include "util/rng.h"
#include "util/status.h"
#include "counters/opcount.h"
#include "harness/opsreport.h"
#include "methods/method.h"
#include "tests/check.h"

/* finite-difference gradient checks: central differences with step FD_EPS (the vectors are O(1)
 * and the tiny backbone's weights ~0.2: measured on this machine, 1e-2 is where fp32 rounding
 * noise and curvature balance: worst |fd - g| 1.3e-5 (vectors) and 2.6e-5 (backbone), relative
 * 4.7e-4 / 1.9e-4 where |g| > 1e-2; 3e-3 doubles the noise, 2e-2 triples the backbone's
 * curvature error). Pass rule (check_fd_used): |fd - g| < ATOL or relative < RTOL, a few times
 * what is measured, for the ia3 vectors (FD_) and for backbone tensors whose gradients flow
 * through the hooks' input gradients (FD_DX_). */
#ifndef FD_EPS
#define FD_EPS 1e-2f
#endif
#define FD_ATOL 5e-5
#define FD_RTOL 2e-3
#define FD_DX_ATOL 5e-5
#define FD_DX_RTOL 2e-3

enum { BB = 2, TT = 7 };

typedef struct {
  pb_model m;
  pb_method_inst inst;
  int ids[BB * TT], types[BB * TT], mask[BB * TT], labels[BB];
} fixture;

/* V 50, d 16, L 2, A 2, F 32, P 16, C 3 */
static void tiny_config(pb_config *c, float drop) {
  pb_test_tiny_config(c, drop);
  c->ffn = 32;
}

/* backbone tensors the gradient check makes trainable: their gradients pass through every
 * hook's input gradient (embedding LayerNorm below everything; a key weight whose dy is the
 * output hook's dy * l; the ffn_out weight whose gradient is taken against x' = x * l) */
static void train_some_backbone(pb_model *m) {
  const int idx[] = {m->emb_lnw, m->emb_lnb, m->layer[0].kw, m->layer[0].vb, m->layer[1].fw, m->layer[0].iw};
  for (size_t i = 0; i < sizeof idx / sizeof idx[0]; i++) m->params.t[idx[i]].trainable = 1;
}

/* tiny model with ia3 (options NULL-terminated); random backbone; vectors 1 + 0.3 N(0,1) when
 * `randomize` (else their init, 1); train_bb: train_some_backbone before alloc */
static void fixture_make(fixture *f, const pb_config *cfg, const char *const *opts, int randomize, int train_bb,
                         uint64_t seed) {
  memset(f, 0, sizeof *f);
  CHECK_OK(pb_model_declare(&f->m, cfg));
  CHECK_OK(pb_method_create(&f->inst, "ia3", opts));
  CHECK_OK(f->inst.m->attach(f->inst.ctx, &f->m));
  if (train_bb) train_some_backbone(&f->m);
  CHECK_OK(pb_model_alloc(&f->m, BB, TT));
  pb_model_init_random(&f->m, seed);
  pb_rng r;
  pb_rng_seed(&r, seed + 1);
  if (randomize)
    for (int i = 0; i < f->m.params.n; i++) {
      pb_tensor *t = &f->m.params.t[i];
      if (t->owner != PB_OWNER_METHOD) continue;
      for (size_t j = 0; j < t->numel; j++) t->data[j] = 1.0f + 0.3f * pb_rng_normal(&r);
    }
  pb_test_random_batch(cfg, seed + 2, BB, TT, f->ids, f->types, f->mask, f->labels);
}

static void fixture_free(fixture *f) {
  pb_method_destroy(&f->inst);
  pb_model_free(&f->m);
}

static float loss_of(fixture *f, int training, uint64_t seed) {
  float loss = 0;
  CHECK_OK(pb_forward(&f->m, f->ids, f->types, f->mask, BB, TT, f->labels, NULL, training, seed, &loss));
  return loss;
}

/* a plain backbone (no method) of cfg holding the same backbone + head values as f */
static void plain_copy(pb_model *plain, fixture *f, const pb_config *cfg) {
  CHECK_OK(pb_model_declare(plain, cfg));
  CHECK_OK(pb_model_alloc(plain, BB, TT));
  for (int i = 0; i < plain->params.n; i++) {
    pb_tensor *t = &plain->params.t[i];
    int j = pb_params_find(&f->m.params, t->name);
    CHECK(j >= 0 && f->m.params.t[j].numel == t->numel, "%s missing from the ia3 model", t->name);
    if (j >= 0) memcpy(t->data, f->m.params.t[j].data, t->numel * sizeof(float));
  }
}

/* the ia3 hook table of f's model (the only entry of its chain) */
static const pb_hook_inst *hook_of(fixture *f) {
  CHECK(f->m.n_hooks == 1 && f->m.hooks[0].ops && f->m.hooks[0].ctx == f->inst.ctx, "one hook table installed");
  return &f->m.hooks[0];
}

/* ---------------------------------------------------------------- options, registry */

static void test_options(void) {
  printf("options: defaults, describe round trip, registry entry, bad values refused\n");
  pb_method_inst in;
  char buf[256], buf2[256];
  const pb_method *pm = pb_method_find("ia3");
  CHECK(pm != NULL, "ia3 is not in the registry");
  if (!pm) return;
  CHECK(pm->version == PB_METHOD_VERSION && pm->merge && pm->unmerge && !pm->ops, "method table");
  CHECK_OK(pb_method_create(&in, "ia3", NULL));
  CHECK_OK(in.m->describe(in.ctx, buf, sizeof buf));
  CHECK(strcmp(buf, "targets=key+value+ffn_out") == 0, "default describe: %s", buf);
  CHECK_OK(pb_method_describe_defaults(pm, buf2, sizeof buf2));
  CHECK(strcmp(buf, buf2) == 0, "describe after init %s != declared defaults %s", buf, buf2);
  pb_method_destroy(&in);
  /* the op-baseline reference configuration: the defaults */
  CHECK(pm->n_refconfigs == 1 && strcmp(pm->refconfigs[0].label, "ia3 k,v,ff") == 0, "refconfig");
  CHECK_OK(pb_method_create(&in, "ia3", pm->refconfigs[0].options));
  CHECK_OK(in.m->describe(in.ctx, buf2, sizeof buf2));
  CHECK(strcmp(buf2, "targets=key+value+ffn_out") == 0, "refconfig describe: %s", buf2);
  pb_method_destroy(&in);
  const char *o1[] = {"targets=ffn_in,query", NULL};
  CHECK_OK(pb_method_create(&in, "ia3", o1));
  CHECK_OK(in.m->describe(in.ctx, buf, sizeof buf));
  CHECK(strcmp(buf, "targets=query+ffn_in") == 0, "describe: %s", buf);
  pb_method_destroy(&in);
  const char *o2[] = {buf, NULL}; /* describe -> options -> describe is a fixed point */
  CHECK_OK(pb_method_create(&in, "ia3", o2));
  CHECK_OK(in.m->describe(in.ctx, buf2, sizeof buf2));
  CHECK(strcmp(buf, buf2) == 0, "describe round trip: %s vs %s", buf, buf2);
  pb_method_destroy(&in);
  const char *all[] = {"targets=all", NULL};
  CHECK_OK(pb_method_create(&in, "ia3", all));
  CHECK_OK(in.m->describe(in.ctx, buf, sizeof buf));
  CHECK(strcmp(buf, "targets=query+key+value+attn_out+ffn_in+ffn_out") == 0, "targets=all: %s", buf);
  pb_method_destroy(&in);
  const char *bad[][2] = {{"targets=foo", NULL}, {"targets=", NULL},     {"targets=key,bogus", NULL},
                          {"targets=,", NULL},   {"r=8", NULL},          {"targets", NULL},
                          {"=key", NULL},        {"target=key", NULL}};
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
    int rc = pb_method_create(&in, "ia3", bad[i]);
    CHECK(rc == PB_ERR_ARG, "option '%s' accepted (rc %d)", bad[i][0], rc);
    if (!rc) pb_method_destroy(&in);
  }
}

/* ---------------------------------------------------------------- counts at bert-base */

static size_t count_bert_base(const char *const *opts, size_t *backbone_trainable, size_t *tensors) {
  pb_config c;
  pb_config_bert_base(&c, 2);
  pb_model m;
  pb_method_inst in;
  CHECK_OK(pb_model_declare(&m, &c));
  CHECK_OK(pb_method_create(&in, "ia3", opts));
  CHECK_OK(in.m->attach(in.ctx, &m));
  size_t n = pb_params_count(&m.params, PB_OWNER_METHOD, 1, 0);
  CHECK(pb_params_count(&m.params, PB_OWNER_METHOD, 0, 1) == n, "every ia3 tensor is stored");
  CHECK(pb_params_count(&m.params, PB_OWNER_METHOD, 0, 0) == n, "every ia3 tensor trains");
  if (backbone_trainable) *backbone_trainable = pb_params_count(&m.params, PB_OWNER_BACKBONE, 1, 0);
  size_t k = 0;
  for (int i = 0; i < m.params.n; i++) {
    const pb_tensor *t = &m.params.t[i];
    if (t->owner != PB_OWNER_METHOD) continue;
    k++;
    CHECK(t->ndim == 1 && !t->decay, "%s: 1-D, no weight decay", t->name);
  }
  if (tensors) *tensors = k;
  CHECK(m.params.t[m.cls_w].trainable && m.params.t[m.cls_b].trainable, "the classifier trains");
  pb_method_destroy(&in);
  pb_model_free(&m);
  return n;
}

static void test_counts(void) {
  printf("counts: bert-base trainable vectors (without the head)\n");
  const size_t L = 12, d = 768, F = 3072;
  size_t bt = 1, nt = 0;
  size_t n = count_bert_base(NULL, &bt, &nt);
  CHECK(n == L * (d + d + F) && n == 55296, "ia3 k,v,ff trainable %zu != 55,296", n);
  CHECK(nt == 3 * L, "%zu vectors, not 36", nt);
  CHECK(bt == 0, "backbone trainable %zu != 0", bt);
  const char *all[] = {"targets=all", NULL};
  n = count_bert_base(all, NULL, &nt);
  /* q, k, v, attn_out: d each; ffn_in scales its output [F]; ffn_out its input [F] */
  CHECK(n == L * (4 * d + F + F) && n == 110592, "ia3 all trainable %zu != 110,592", n);
  CHECK(nt == 6 * L, "%zu vectors, not 72", nt);
  const char *qf[] = {"targets=query,ffn_in", NULL};
  n = count_bert_base(qf, NULL, NULL);
  CHECK(n == L * (d + F) && n == 46080, "ia3 query,ffn_in trainable %zu != 46,080", n);
  printf("  k,v,ffn_out %zu; all %zu; query,ffn_in %zu\n", count_bert_base(NULL, NULL, NULL),
         count_bert_base(all, NULL, NULL), n);
}

/* ---------------------------------------------------------------- the rule, by hand */

/* y[N,out] = (x * li) W^T + b, then * lo (li / lo NULL: 1), in double */
static void linear_by_hand(const float *x, const float *W, const float *b, const float *li, const float *lo, int N,
                           int in, int out, double *y) {
  for (int n = 0; n < N; n++)
    for (int o = 0; o < out; o++) {
      double s = b[o];
      for (int i = 0; i < in; i++) s += (double)W[o * in + i] * x[n * in + i] * (li ? (double)li[i] : 1.0);
      y[n * out + o] = s * (lo ? (double)lo[o] : 1.0);
    }
}

static const float *vec(fixture *f, int l, const char *site) {
  char name[96];
  snprintf(name, sizeof name, "ia3.layer.%d.%s", l, site);
  int i = pb_params_find(&f->m.params, name);
  return i >= 0 ? f->m.params.t[i].data : NULL;
}

/* the activations the backbone saved after the hooks equal the rule computed here from the
 * saved inputs: q,k,v = (x W^T + b) * l; attn_o = (ctx Wo^T + bo) * l; ffn_pre = (ln1 Wi^T + bi)
 * * l [F]; ffn_o = (gelu * l [F]) Wf^T + bf; the GELU output itself stays unscaled */
static void test_rule(const char *const *opts, const char *what) {
  pb_config cfg;
  tiny_config(&cfg, 0.1f); /* dropout configured; inference must not apply it */
  fixture f;
  fixture_make(&f, &cfg, opts, 1, 0, 81);
  loss_of(&f, 0, 0);
  const int N = BB * TT, d = cfg.hidden, F = cfg.ffn;
  double *y = malloc(sizeof(double) * N * F), worst = 0, moved = 0;
  for (int l = 0; l < cfg.layers; l++) {
    const pb_layer_idx *w = &f.m.layer[l];
    const pb_layer_acts *a = &f.m.acts.layer[l];
    const float *hprev = l ? f.m.acts.layer[l - 1].out : f.m.acts.h0;
    const struct {
      const char *site;
      const float *x, *got;
      int wi, bi, in, out, input_scaled;
    } s[] = {
        {"query", hprev, a->q, w->qw, w->qb, d, d, 0},
        {"key", hprev, a->k, w->kw, w->kb, d, d, 0},
        {"value", hprev, a->v, w->vw, w->vb, d, d, 0},
        {"attn_out", a->ctx, a->attn_o, w->ow, w->ob, d, d, 0},
        {"ffn_in", a->ln1, a->ffn_pre, w->iw, w->ib, d, F, 0},
        {"ffn_out", a->ffn_act, a->ffn_o, w->fw, w->fb, F, d, 1},
    };
    for (size_t k = 0; k < sizeof s / sizeof s[0]; k++) {
      const float *v = vec(&f, l, s[k].site);
      const float *W = f.m.params.t[s[k].wi].data, *b = f.m.params.t[s[k].bi].data;
      linear_by_hand(s[k].x, W, b, s[k].input_scaled ? v : NULL, s[k].input_scaled ? NULL : v, N, s[k].in,
                     s[k].out, y);
      double e = 0;
      for (int i = 0; i < N * s[k].out; i++) e = fmax(e, fabs(s[k].got[i] - y[i]) / fmax(1.0, fabs(y[i])));
      CHECK(e < 1e-5, "%s layer %d %s: saved output vs the rule by hand: %.3g", what, l, s[k].site, e);
      worst = fmax(worst, e);
      if (v) { /* the vector really moves the output (else the check above proves nothing) */
        linear_by_hand(s[k].x, W, b, NULL, NULL, N, s[k].in, s[k].out, y);
        for (int i = 0; i < N * s[k].out; i++) moved = fmax(moved, fabs(s[k].got[i] - y[i]));
      }
    }
    /* GELU output unscaled: gelu(ffn_pre) */
    double ge = 0;
    for (int i = 0; i < N * F; i++) {
      double x = a->ffn_pre[i], g = 0.5 * x * (1.0 + erf(x / sqrt(2.0)));
      ge = fmax(ge, fabs(g - a->ffn_act[i]));
    }
    CHECK(ge < 1e-5, "%s layer %d: ffn_act is not gelu(ffn_pre) (%.3g): the input hook wrote into it", what, l, ge);
  }
  CHECK(moved > 0.1, "%s: the vectors move the outputs by only %.3g", what, moved);
  printf("  %s: every site's saved output vs the rule by hand, max rel err %.2e (vectors move them up to %.2f)\n",
         what, worst, moved);
  free(y);
  fixture_free(&f);
}

/* ---------------------------------------------------------------- init == backbone */

static void test_init_identity(void) {
  printf("init: vectors are 1 and the logits equal the plain backbone's bit for bit\n");
  pb_config cfg;
  tiny_config(&cfg, 0.1f);
  const char *all[] = {"targets=all", NULL};
  for (int variant = 0; variant < 2; variant++) {
    fixture f;
    fixture_make(&f, &cfg, variant ? all : NULL, 0, 0, 91);
    for (int i = 0; i < f.m.params.n; i++) {
      const pb_tensor *t = &f.m.params.t[i];
      if (t->owner == PB_OWNER_BACKBONE) CHECK(!t->trainable && !t->grad, "%s must be frozen", t->name);
      if (t->owner != PB_OWNER_METHOD) continue;
      int one = 1;
      for (size_t j = 0; j < t->numel; j++) one &= t->data[j] == 1.0f;
      CHECK(one, "%s must start at 1", t->name);
    }
    pb_model plain;
    plain_copy(&plain, &f, &cfg);
    for (int training = 0; training <= 1; training++) {
      float la, lb;
      la = loss_of(&f, training, 555);
      CHECK_OK(pb_forward(&plain, f.ids, f.types, f.mask, BB, TT, f.labels, NULL, training, 555, &lb));
      CHECK(memcmp(f.m.acts.logits, plain.acts.logits, sizeof(float) * BB * cfg.num_labels) == 0 && la == lb,
            "%s training=%d: logits at init differ from the plain backbone (loss %.9g vs %.9g)",
            variant ? "all" : "default", training, (double)la, (double)lb);
    }
    pb_model_free(&plain);
    fixture_free(&f);
  }
}

/* ---------------------------------------------------------------- gradients */

/* pb_backward's gradient of every ia3 vector and of every trainable backbone tensor against
 * central differences of the loss, on the 3 entries of largest |grad| and 2 random ones */
static void grad_check(const char *const *opts, int train_bb, const char *what) {
  pb_config cfg;
  tiny_config(&cfg, 0.0f);
  fixture f;
  fixture_make(&f, &cfg, opts, 1, train_bb, 11);
  const uint64_t seed = 1234;
  pb_params_zero_grad(&f.m.params);
  loss_of(&f, 1, seed);
  CHECK_OK(pb_backward(&f.m));
  const float eps = FD_EPS;
  int checked[2] = {0, 0}, tensors[2] = {0, 0};
  double worst[2] = {0, 0}, used[2] = {0, 0}, worst_abs[2] = {0, 0};
  pb_rng r;
  pb_rng_seed(&r, 99);
  for (int i = 0; i < f.m.params.n; i++) {
    pb_tensor *t = &f.m.params.t[i];
    const int kind = t->owner == PB_OWNER_METHOD ? 0 : t->owner == PB_OWNER_BACKBONE && t->trainable ? 1 : -1;
    if (kind < 0) continue;
    tensors[kind]++;
    CHECK(t->grad != NULL, "%s has no gradient", t->name);
    if (!t->grad) continue;
    size_t pick[5];
    for (int k = 0; k < 3; k++) {
      size_t best = 0;
      float bv = -1;
      for (size_t j = 0; j < t->numel; j++) {
        int taken = 0;
        for (int q = 0; q < k; q++) taken |= pick[q] == j;
        if (!taken && fabsf(t->grad[j]) > bv) bv = fabsf(t->grad[j]), best = j;
      }
      pick[k] = best;
    }
    pick[3] = (size_t)pb_rng_below(&r, t->numel);
    pick[4] = (size_t)pb_rng_below(&r, t->numel);
    CHECK(fabsf(t->grad[pick[0]]) > 1e-4f, "%s: largest gradient %g is trivially small", t->name,
          (double)t->grad[pick[0]]);
    for (int k = 0; k < 5; k++) {
      const size_t j = pick[k];
      const float v = t->data[j];
      t->data[j] = v + eps;
      const double lp = loss_of(&f, 1, seed);
      t->data[j] = v - eps;
      const double lm = loss_of(&f, 1, seed);
      t->data[j] = v;
      const double fd = (lp - lm) / (2.0 * eps), g = t->grad[j];
      const double rel = fabs(fd - g) / fmax(fmax(fabs(fd), fabs(g)), 1e-30);
      if (fmax(fabs(fd), fabs(g)) > 1e-2 && rel > worst[kind]) worst[kind] = rel;
      const double u = kind ? check_fd_used(fd, g, FD_DX_ATOL, FD_DX_RTOL) : check_fd_used(fd, g, FD_ATOL, FD_RTOL);
      used[kind] = fmax(used[kind], u);
      worst_abs[kind] = fmax(worst_abs[kind], fabs(fd - g));
      CHECK(u < 1, "%s %s[%zu]: backward %.6g vs finite difference %.6g", what, t->name, j, g, fd);
      checked[kind]++;
    }
  }
  CHECK(tensors[0] > 0, "%s: no ia3 tensors", what);
  printf("  %s: vectors %d entries of %d tensors, worst abs err %.2e, rel err %.2e where |g| > 1e-2; %.2f of the "
         "tolerance (abs %.0e or rel %.0e)\n", what, checked[0], tensors[0], worst_abs[0], worst[0], used[0], FD_ATOL,
         FD_RTOL);
  if (tensors[1])
    printf("  %s: backbone (input gradients) %d entries of %d tensors, worst abs err %.2e, rel err %.2e where |g| > "
           "1e-2; %.2f of the tolerance (abs %.0e or rel %.0e)\n", what, checked[1], tensors[1], worst_abs[1],
           worst[1], used[1], FD_DX_ATOL, FD_DX_RTOL);
  fixture_free(&f);
}

/* ---------------------------------------------------------------- op counts */

/* the closed form of what the hooks add over N tokens and S steps (owner METHOD, FLOPs only):
 * forward N*n per scaled site; backward N*n (dy *= l) + 2*N*n (dl) per output-scaled site and
 * 2*N*F (dx) + 2*N*F (dl) for ffn_out (every gradient exists for these target sets) */
static void closed_form(const pb_config *c, unsigned targets, uint64_t N, int training, uint64_t *flop) {
  uint64_t f = 0;
  for (int s = 0; s < PB_LIN_COUNT; s++) {
    if (!(targets & (1u << s))) continue;
    const uint64_t n = s == PB_LIN_FFN_IN || s == PB_LIN_FFN_OUT ? (uint64_t)c->ffn : (uint64_t)c->hidden;
    f += N * n;
    if (training) f += s == PB_LIN_FFN_OUT ? 4 * N * n : 3 * N * n;
  }
  *flop = f * (uint64_t)c->layers;
}

static unsigned targets_of(const pb_method_inst *in) {
  return *(const unsigned *)((const char *)in->ctx + pb_method_option_find(in->m, "targets")->offset);
}

/* counting-only runs of a declared (never allocated) bert-base model == the closed form */
static void counts_bert_base(const char *const *opts, const char *what) {
  pb_config c;
  pb_config_bert_base(&c, 2);
  pb_model m;
  pb_method_inst in;
  CHECK_OK(pb_model_declare(&m, &c));
  CHECK_OK(pb_method_create(&in, "ia3", opts));
  CHECK_OK(in.m->attach(in.ctx, &m));
  const unsigned tg = targets_of(&in);
  const int shapes[][2] = {{1, 128}, {4, 32}};
  for (size_t k = 0; k < 2; k++)
    for (int training = 0; training <= 1; training++) {
      const int B = shapes[k][0], T = shapes[k][1];
      pb_opcounts oc;
      memset(&oc, 0, sizeof oc);
      CHECK_OK(pb_model_count(&m, B, T, training ? PB_COUNT_TRAIN : PB_COUNT_INFER, &oc));
      uint64_t want;
      closed_form(&c, tg, (uint64_t)B * T, training, &want);
      CHECK(oc.c[PB_OPO_METHOD][PB_OPK_FLOP] == want, "%s B=%d T=%d training=%d: method FLOPs %llu != %llu", what, B,
            T, training, (unsigned long long)oc.c[PB_OPO_METHOD][PB_OPK_FLOP], (unsigned long long)want);
      CHECK(oc.c[PB_OPO_METHOD][PB_OPK_MAC] == 0 && oc.c[PB_OPO_METHOD][PB_OPK_TRANS] == 0,
            "%s: no MACs or transcendentals", what);
      if (k == 0)
        printf("  bert-base %s T=128 %s: method %llu FLOPs (closed form %llu)\n", what,
               training ? "training step" : "inference", (unsigned long long)oc.c[PB_OPO_METHOD][PB_OPK_FLOP],
               (unsigned long long)want);
    }
  /* default k,v,ff per token at inference: 12 * (768 + 768 + 3072) = 55,296 FLOPs */
  if (!opts) {
    pb_opcounts oc;
    memset(&oc, 0, sizeof oc);
    CHECK_OK(pb_model_count(&m, 1, 1, PB_COUNT_INFER, &oc));
    CHECK(oc.c[PB_OPO_METHOD][PB_OPK_FLOP] == 55296, "default FLOPs/token %llu != 55,296",
          (unsigned long long)oc.c[PB_OPO_METHOD][PB_OPK_FLOP]);
  }
  pb_method_destroy(&in);
  pb_model_free(&m);
}

/* tiny model: a real instrumented run charges what the counting-only run does, and both are the
 * closed form; the backbone's own inference ops are the plain backbone's */
static void counts_tiny(const char *const *opts, const char *what) {
  pb_config cfg;
  tiny_config(&cfg, 0.1f);
  fixture f;
  fixture_make(&f, &cfg, opts, 1, 0, 31);
  const unsigned tg = targets_of(&f.inst);
  for (int training = 0; training <= 1; training++) {
    pb_opc_reset();
    pb_opc_enable(1);
    loss_of(&f, training, 4242);
    if (training) {
      pb_params_zero_grad(&f.m.params);
      CHECK_OK(pb_backward(&f.m));
    }
    pb_opc_enable(0);
    const pb_opcounts real = pb_opc.counts;
    pb_opcounts cnt;
    memset(&cnt, 0, sizeof cnt);
    CHECK_OK(pb_model_count(&f.m, BB, TT, training ? PB_COUNT_TRAIN : PB_COUNT_INFER, &cnt));
    uint64_t want;
    closed_form(&cfg, tg, BB * TT, training, &want);
    for (int k = 0; k < PB_OPK_COUNT; k++)
      CHECK(real.c[PB_OPO_METHOD][k] == cnt.c[PB_OPO_METHOD][k], "%s training=%d %s: real %llu != counting-only %llu",
            what, training, pb_opkind_name(k), (unsigned long long)real.c[PB_OPO_METHOD][k],
            (unsigned long long)cnt.c[PB_OPO_METHOD][k]);
    CHECK(cnt.c[PB_OPO_METHOD][PB_OPK_FLOP] == want, "%s training=%d: counted %llu != closed form %llu", what,
          training, (unsigned long long)cnt.c[PB_OPO_METHOD][PB_OPK_FLOP], (unsigned long long)want);
    printf("  tiny %s training=%d: method FLOP %llu (real run == counting-only == closed form)\n", what, training,
           (unsigned long long)want);
  }
  /* the backbone and head do the same inference work with the hooks as without */
  pb_model plain;
  plain_copy(&plain, &f, &cfg);
  pb_opcounts a, b;
  memset(&a, 0, sizeof a);
  memset(&b, 0, sizeof b);
  CHECK_OK(pb_model_count(&f.m, BB, TT, PB_COUNT_INFER, &a));
  CHECK_OK(pb_model_count(&plain, BB, TT, PB_COUNT_INFER, &b));
  for (int o = 0; o < PB_OPO_COUNT; o++)
    for (int k = 0; k < PB_OPK_COUNT; k++)
      if (o != PB_OPO_METHOD)
        CHECK(a.c[o][k] == b.c[o][k], "%s: %s %s %llu with ia3 vs %llu plain", what, pb_opowner_name(o),
              pb_opkind_name(k), (unsigned long long)a.c[o][k], (unsigned long long)b.c[o][k]);
  pb_model_free(&plain);
  fixture_free(&f);
}

/* ---------------------------------------------------------------- merge */

static void test_merge(void) {
  printf("merge: logits unchanged, zero added ops (== plain backbone), unmerge restores W and b, misuse refused\n");
  pb_config cfg;
  tiny_config(&cfg, 0.1f);
  const char *opts[] = {"targets=all", NULL};
  fixture f;
  fixture_make(&f, &cfg, opts, 1, 0, 41);
  const int C = cfg.num_labels;
  float before[BB * 3];
  loss_of(&f, 0, 0);
  memcpy(before, f.m.acts.logits, sizeof(float) * BB * C);
  float *orig = malloc(f.m.params.n_frozen * sizeof(float));
  memcpy(orig, f.m.params.frozen_mem, f.m.params.n_frozen * sizeof(float));

  /* the harness's merged count (counting-only merge: state only) touches no weight */
  pb_opcounts hm;
  memset(&hm, 0, sizeof hm);
  CHECK_OK(pb_model_ops_add(&f.m, &f.inst, 1, TT, PB_COUNT_INFER, 1, &hm));
  CHECK(memcmp(orig, f.m.params.frozen_mem, f.m.params.n_frozen * sizeof(float)) == 0,
        "a counting-only merge changed weights");

  CHECK_OK(f.inst.m->merge(f.inst.ctx, &f.m));
  CHECK(memcmp(orig, f.m.params.frozen_mem, f.m.params.n_frozen * sizeof(float)) != 0, "merge changed no weight");
  /* by hand: output site rows (key W and b), input site columns (ffn_out W; b unchanged) */
  {
    const pb_layer_idx *w = &f.m.layer[1];
    const float *lk = vec(&f, 1, "key"), *lf = vec(&f, 1, "ffn_out");
    const float *kw0 = orig + (f.m.params.t[w->kw].data - f.m.params.frozen_mem);
    const float *kb0 = orig + (f.m.params.t[w->kb].data - f.m.params.frozen_mem);
    const float *fw0 = orig + (f.m.params.t[w->fw].data - f.m.params.frozen_mem);
    const float *fb0 = orig + (f.m.params.t[w->fb].data - f.m.params.frozen_mem);
    const int d = cfg.hidden, F = cfg.ffn;
    int ok = 1;
    for (int o = 0; o < d; o++) {
      for (int i = 0; i < d; i++) ok &= f.m.params.t[w->kw].data[o * d + i] == kw0[o * d + i] * lk[o];
      ok &= f.m.params.t[w->kb].data[o] == kb0[o] * lk[o];
      for (int i = 0; i < F; i++) ok &= f.m.params.t[w->fw].data[o * F + i] == fw0[o * F + i] * lf[i];
      ok &= f.m.params.t[w->fb].data[o] == fb0[o];
    }
    CHECK(ok, "merged key W/b are not rows * l_k, or ffn_out W not columns * l_ff (or its b changed)");
  }
  loss_of(&f, 0, 0);
  double dmax = 0;
  for (int i = 0; i < BB * C; i++) dmax = fmax(dmax, fabs((double)before[i] - f.m.acts.logits[i]));
  CHECK(dmax < 2e-6, "merged logits differ by %g", dmax);
  printf("  max |logits merged - unmerged| = %.3g\n", dmax);
  /* merged inference: method ops 0, every count the plain backbone's (real run and counting-only) */
  pb_opc_reset();
  pb_opc_enable(1);
  CHECK_OK(pb_forward(&f.m, f.ids, f.types, f.mask, BB, TT, NULL, NULL, 0, 1, NULL)); /* no loss, as the count */
  pb_opc_enable(0);
  const pb_opcounts real = pb_opc.counts;
  pb_opcounts mc, pc;
  memset(&mc, 0, sizeof mc);
  memset(&pc, 0, sizeof pc);
  CHECK_OK(pb_model_count(&f.m, BB, TT, PB_COUNT_INFER, &mc));
  pb_model plain;
  plain_copy(&plain, &f, &cfg);
  CHECK_OK(pb_model_count(&plain, BB, TT, PB_COUNT_INFER, &pc));
  pb_opcounts pc1;
  memset(&pc1, 0, sizeof pc1);
  CHECK_OK(pb_model_count(&plain, 1, TT, PB_COUNT_INFER, &pc1));
  for (int o = 0; o < PB_OPO_COUNT; o++)
    for (int k = 0; k < PB_OPK_COUNT; k++) {
      CHECK(mc.c[o][k] == pc.c[o][k] && real.c[o][k] == pc.c[o][k], "merged %s %s: %llu (real %llu) vs plain %llu",
            pb_opowner_name(o), pb_opkind_name(k), (unsigned long long)mc.c[o][k], (unsigned long long)real.c[o][k],
            (unsigned long long)pc.c[o][k]);
      CHECK(hm.c[o][k] == pc1.c[o][k], "harness merged count %s %s: %llu vs plain %llu", pb_opowner_name(o),
            pb_opkind_name(k), (unsigned long long)hm.c[o][k], (unsigned long long)pc1.c[o][k]);
    }
  printf("  merged inference: %llu FLOPs, plain backbone %llu, method 0\n",
         (unsigned long long)pb_opcounts_flops(&mc, -1), (unsigned long long)pb_opcounts_flops(&pc, -1));
  pb_model_free(&plain);
  /* misuse */
  CHECK(f.inst.m->merge(f.inst.ctx, &f.m) == PB_ERR_ARG, "double merge refused");
  {
    float loss;
    CHECK_OK(pb_forward(&f.m, f.ids, f.types, f.mask, BB, TT, f.labels, NULL, 1, 3, &loss));
    CHECK(pb_backward(&f.m) == PB_ERR_ARG, "backward through a merged model refused");
    pb_opcounts t;
    memset(&t, 0, sizeof t);
    CHECK(pb_model_count(&f.m, 1, TT, PB_COUNT_TRAIN, &t) == PB_ERR_ARG, "counting training merged refused");
  }
  CHECK_OK(f.inst.m->unmerge(f.inst.ctx, &f.m));
  CHECK(f.inst.m->unmerge(f.inst.ctx, &f.m) == PB_ERR_ARG, "unmerge without merge refused");
  /* restored up to the rounding of one multiply and one divide: |W - W0| <= 2^-22 |W0| */
  double wrel = 0;
  size_t exact = 0;
  for (size_t j = 0; j < f.m.params.n_frozen; j++) {
    const double a = orig[j], b = f.m.params.frozen_mem[j];
    exact += a == b;
    if (a != b) wrel = fmax(wrel, fabs(a - b) / fabs(a));
  }
  CHECK(wrel <= ldexp(1.0, -22), "unmerged weights differ from the originals by %.3g relative", wrel);
  printf("  unmerge: %zu of %zu frozen floats bit-identical, max relative difference %.3g (2^-23 = %.3g)\n", exact,
         f.m.params.n_frozen, wrel, ldexp(1.0, -23));
  loss_of(&f, 0, 0);
  dmax = 0;
  for (int i = 0; i < BB * C; i++) dmax = fmax(dmax, fabs((double)before[i] - f.m.acts.logits[i]));
  CHECK(dmax < 2e-6, "logits after unmerge differ by %g", dmax);
  /* training works again after unmerge */
  loss_of(&f, 1, 3);
  CHECK_OK(pb_backward(&f.m));
  /* a vector entry of 0 cannot be unmerged: refused, nothing changed */
  memcpy(orig, f.m.params.frozen_mem, f.m.params.n_frozen * sizeof(float));
  float *lv = (float *)vec(&f, 1, "ffn_out");
  const float keep = lv[3];
  lv[3] = 0.0f;
  CHECK(f.inst.m->merge(f.inst.ctx, &f.m) == PB_ERR_ARG, "merge with a zero entry refused");
  lv[3] = NAN;
  CHECK(f.inst.m->merge(f.inst.ctx, &f.m) == PB_ERR_ARG, "merge with a NaN entry refused");
  lv[3] = keep;
  CHECK(memcmp(orig, f.m.params.frozen_mem, f.m.params.n_frozen * sizeof(float)) == 0, "refused merge changed W");
  /* merge on a model it is not attached to */
  pb_model other;
  CHECK_OK(pb_model_declare(&other, &cfg));
  CHECK(f.inst.m->merge(f.inst.ctx, &other) == PB_ERR_ARG, "merge on another model refused");
  pb_model_free(&other);
  free(orig);
  fixture_free(&f);
}

/* ---------------------------------------------------------------- hooks called directly */

static void test_hooks_direct(void) {
  printf("hooks: untargeted sites untouched, bad step/shape refused, attach misuse refused\n");
  pb_config cfg;
  tiny_config(&cfg, 0.0f);
  fixture f;
  fixture_make(&f, &cfg, NULL, 1, 0, 22); /* key, value, ffn_out */
  const pb_hook_inst *h = hook_of(&f);
  const pb_hook_ops *o = h->ops;
  CHECK(o->version == PB_HOOKS_VERSION && o->linear_out_fwd && o->linear_out_bwd && o->linear_in_fwd &&
            o->linear_in_bwd && !o->linear_fwd && !o->linear_bwd,
        "hook table: version 2, linear_in/out only");
  const int N = BB * TT, d = cfg.hidden, F = cfg.ffn;
  float *y = malloc(sizeof(float) * N * F), *x = malloc(sizeof(float) * N * F);
  for (int i = 0; i < N * F; i++) y[i] = 2.0f, x[i] = 1.0f;
  CHECK_OK(o->linear_out_fwd(h->ctx, 0, PB_LIN_QUERY, y, N, d));
  CHECK_OK(o->linear_out_fwd(h->ctx, 0, PB_LIN_FFN_OUT, y, N, d)); /* ffn_out is input-scaled: no output hook */
  CHECK_OK(o->linear_out_bwd(h->ctx, 0, PB_LIN_QUERY, y, N, d));
  int same = 1;
  for (int i = 0; i < N * F; i++) same &= y[i] == 2.0f;
  CHECK(same, "untargeted output sites must leave y alone");
  const float *xo = x;
  CHECK_OK(o->linear_in_fwd(h->ctx, 0, PB_LIN_KEY, x, &xo, N, d)); /* key is output-scaled: no input hook */
  CHECK(xo == x, "linear_in at an output-scaled site must leave *xo untouched");
  CHECK_OK(o->linear_in_fwd(h->ctx, 1, PB_LIN_FFN_OUT, x, &xo, N, F));
  CHECK(xo != x && xo[0] == vec(&f, 1, "ffn_out")[0], "ffn_out: *xo points at x * l");
  CHECK(o->linear_out_fwd(h->ctx, 2, PB_LIN_KEY, y, N, d) == PB_ERR_ARG, "step outside the model refused");
  CHECK(o->linear_out_fwd(h->ctx, -1, PB_LIN_KEY, y, N, d) == PB_ERR_ARG, "negative step refused");
  CHECK(o->linear_out_fwd(h->ctx, 0, PB_LIN_COUNT, y, N, d) == PB_ERR_ARG, "bad site refused");
  CHECK(o->linear_out_fwd(h->ctx, 0, PB_LIN_KEY, y, N, d + 1) == PB_ERR_SHAPE, "bad width refused");
  CHECK(o->linear_in_fwd(h->ctx, 0, PB_LIN_FFN_OUT, x, &xo, N, d) == PB_ERR_SHAPE, "bad input width refused");
  CHECK(o->linear_out_fwd(h->ctx, 0, PB_LIN_KEY, y, N + 1, d) == PB_ERR_ARG, "more rows than reserved refused");
  CHECK(f.inst.m->attach(f.inst.ctx, &f.m) == PB_ERR_ARG, "second attach refused");
  pb_method_inst in2;
  CHECK_OK(pb_method_create(&in2, "ia3", NULL));
  CHECK(in2.m->attach(in2.ctx, &f.m) == PB_ERR_ARG, "attach after pb_model_alloc refused");
  pb_method_destroy(&in2);
  free(x), free(y);
  fixture_free(&f);
}

/* ---------------------------------------------------------------- layer plan */

/* a plan of 3 steps over 2 weight sets (step 2 reruns set 1): one vector per STEP, the hooks are
 * called for steps 0..2, the gradients check out, and merge is refused (two steps, one W) */
static void test_plan(void) {
  printf("layer plan: vectors per encoder step, gradients through a shared weight set, merge refused\n");
  pb_config cfg;
  tiny_config(&cfg, 0.0f);
  const int plan[3] = {0, 1, 1};
  pb_model m;
  pb_method_inst in;
  CHECK_OK(pb_model_declare(&m, &cfg));
  CHECK_OK(pb_model_set_plan(&m, 3, plan));
  CHECK_OK(pb_method_create(&in, "ia3", NULL));
  CHECK_OK(in.m->attach(in.ctx, &m));
  CHECK(pb_params_count(&m.params, PB_OWNER_METHOD, 1, 0) == 3u * (2 * cfg.hidden + cfg.ffn),
        "3 steps x (d + d + F) vectors");
  CHECK(pb_params_find(&m.params, "ia3.layer.2.ffn_out") >= 0, "step 2 has its own vectors");
  pb_opcounts oc;
  memset(&oc, 0, sizeof oc);
  CHECK_OK(pb_model_count(&m, BB, TT, PB_COUNT_INFER, &oc));
  CHECK(oc.c[PB_OPO_METHOD][PB_OPK_FLOP] == 3u * BB * TT * (2 * cfg.hidden + cfg.ffn), "3 steps charged: %llu",
        (unsigned long long)oc.c[PB_OPO_METHOD][PB_OPK_FLOP]);
  CHECK_OK(pb_model_alloc(&m, BB, TT));
  pb_model_init_random(&m, 5);
  pb_rng r;
  pb_rng_seed(&r, 6);
  for (int i = 0; i < m.params.n; i++)
    if (m.params.t[i].owner == PB_OWNER_METHOD)
      for (size_t j = 0; j < m.params.t[i].numel; j++) m.params.t[i].data[j] = 1.0f + 0.3f * pb_rng_normal(&r);
  fixture tmp;
  fixture_make(&tmp, &cfg, NULL, 0, 0, 7); /* borrow a batch */
  float loss;
  pb_params_zero_grad(&m.params);
  CHECK_OK(pb_forward(&m, tmp.ids, tmp.types, tmp.mask, BB, TT, tmp.labels, NULL, 1, 9, &loss));
  CHECK_OK(pb_backward(&m));
  double used = 0;
  const char *names[] = {"ia3.layer.1.key", "ia3.layer.2.key", "ia3.layer.2.ffn_out", "ia3.layer.0.value"};
  for (int k = 0; k < 4; k++) {
    pb_tensor *t = &m.params.t[pb_params_find(&m.params, names[k])];
    for (size_t j = 0; j < 3; j++) {
      const float v = t->data[j];
      float lp, lm;
      t->data[j] = v + FD_EPS;
      CHECK_OK(pb_forward(&m, tmp.ids, tmp.types, tmp.mask, BB, TT, tmp.labels, NULL, 1, 9, &lp));
      t->data[j] = v - FD_EPS;
      CHECK_OK(pb_forward(&m, tmp.ids, tmp.types, tmp.mask, BB, TT, tmp.labels, NULL, 1, 9, &lm));
      t->data[j] = v;
      const double fd = ((double)lp - lm) / (2.0 * FD_EPS), u = check_fd_used(fd, t->grad[j], FD_ATOL, FD_RTOL);
      used = fmax(used, u);
      CHECK(u < 1, "plan %s[%zu]: backward %.6g vs finite difference %.6g", t->name, j, (double)t->grad[j], fd);
    }
  }
  printf("  plan 0,1,1: 12 vector entries, %.2f of the tolerance used\n", used);
  float *orig = malloc(m.params.n_frozen * sizeof(float));
  memcpy(orig, m.params.frozen_mem, m.params.n_frozen * sizeof(float));
  CHECK(in.m->merge(in.ctx, &m) == PB_ERR_UNSUPPORTED, "merge with a shared weight set refused");
  CHECK(memcmp(orig, m.params.frozen_mem, m.params.n_frozen * sizeof(float)) == 0, "refused merge changed W");
  free(orig);
  fixture_free(&tmp);
  pb_method_destroy(&in);
  pb_model_free(&m);
}

/* ---------------------------------------------------------------- training, task file */

static void test_training(void) {
  printf("training: backbone bit-identical after AdamW steps, vectors move, loss falls with only the vectors\n");
  pb_config cfg;
  tiny_config(&cfg, 0.1f);
  fixture f;
  fixture_make(&f, &cfg, NULL, 0, 0, 51);
  float *orig = malloc(f.m.params.n_frozen * sizeof(float));
  memcpy(orig, f.m.params.frozen_mem, f.m.params.n_frozen * sizeof(float));
  pb_adamw opt;
  pb_adamw_defaults(&opt);
  opt.lr = 3e-2f;
  for (int step = 1; step <= 3; step++) {
    pb_params_zero_grad(&f.m.params);
    loss_of(&f, 1, 100 + step);
    CHECK_OK(pb_backward(&f.m));
    CHECK_OK(pb_adamw_step(&f.m.params, &opt, step));
  }
  CHECK(memcmp(orig, f.m.params.frozen_mem, f.m.params.n_frozen * sizeof(float)) == 0,
        "frozen backbone changed during training");
  for (int i = 0; i < f.m.params.n; i++) {
    const pb_tensor *t = &f.m.params.t[i];
    if (t->owner != PB_OWNER_METHOD) continue;
    int moved = 0;
    for (size_t j = 0; j < t->numel; j++) moved |= t->data[j] != 1.0f;
    CHECK(moved, "%s did not change", t->name);
  }
  free(orig);
  /* only the vectors train (head frozen too): the loss on a fixed batch falls */
  pb_model m;
  pb_method_inst in;
  const char *all[] = {"targets=all", NULL};
  CHECK_OK(pb_model_declare(&m, &cfg));
  CHECK_OK(pb_method_create(&in, "ia3", all));
  CHECK_OK(in.m->attach(in.ctx, &m));
  m.params.t[m.cls_w].trainable = m.params.t[m.cls_b].trainable = 0;
  CHECK_OK(pb_model_alloc(&m, BB, TT));
  pb_model_init_random(&m, 61);
  float first = 0, last = 0;
  for (int step = 1; step <= 20; step++) {
    pb_params_zero_grad(&m.params);
    float loss;
    CHECK_OK(pb_forward(&m, f.ids, f.types, f.mask, BB, TT, f.labels, NULL, 1, 200 + step, &loss));
    if (step == 1) first = loss;
    last = loss;
    CHECK_OK(pb_backward(&m));
    CHECK_OK(pb_adamw_step(&m.params, &opt, step));
  }
  printf("  vectors-only training (head frozen): loss %.4f -> %.4f over 20 steps\n", (double)first, (double)last);
  CHECK(last < 0.8f * first, "loss did not fall: %g -> %g", (double)first, (double)last);
  pb_method_destroy(&in);
  pb_model_free(&m);
  fixture_free(&f);
}

static void test_task_file(void) {
  printf("task file: save, load into a fresh model with the same method, logits bit-identical\n");
  pb_config cfg;
  tiny_config(&cfg, 0.0f);
  fixture a, b;
  fixture_make(&a, &cfg, NULL, 1, 0, 71);
  fixture_make(&b, &cfg, NULL, 0, 0, 71); /* same backbone seed, vectors at 1 */
  char path[128];
  snprintf(path, sizeof path, "/tmp/pb_test_ia3_%d.safetensors", (int)getpid());
  CHECK_OK(pb_task_save(&a.m, path, NULL, 0));
  CHECK_OK(pb_task_load(&b.m, path, NULL, NULL));
  loss_of(&a, 0, 0);
  loss_of(&b, 0, 0);
  CHECK(memcmp(a.m.acts.logits, b.m.acts.logits, BB * cfg.num_labels * sizeof(float)) == 0,
        "logits differ after the task-file round trip");
  unlink(path);
  fixture_free(&a);
  fixture_free(&b);
}

int main(void) {
  test_options();
  test_counts();
  printf("rule: saved site outputs against the scaling computed by hand\n");
  test_rule(NULL, "k,v,ffn_out");
  const char *all[] = {"targets=all", NULL};
  test_rule(all, "all sites");
  test_init_identity();
  printf("gradients: finite differences vs pb_backward (dropout off)\n");
  grad_check(NULL, 0, "k,v,ffn_out");
  grad_check(all, 0, "all sites");
  grad_check(NULL, 1, "k,v,ffn_out + backbone tensors");
  grad_check(all, 1, "all sites + backbone tensors");
  printf("op counts: counting-only == closed form (and == a real run)\n");
  counts_bert_base(NULL, "k,v,ffn_out");
  counts_bert_base(all, "all sites");
  counts_tiny(NULL, "k,v,ffn_out");
  counts_tiny(all, "all sites");
  test_merge();
  test_hooks_direct();
  test_plan();
  test_training();
  test_task_file();
  if (failures) printf("%d of %d check(s) FAILED\n", failures, checks);
  else printf("all %d ia3 checks passed\n", checks);
  return check_exit_status();
}
