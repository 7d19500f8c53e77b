/* LayerConnect method (reconstruction): options, bert-base parameter counts and the papers'
 * ratios, the interpolation weights, zero anchors == plain backbone bit for bit, scope=cls
 * leaving non-CLS rows alone, finite-difference gradients of the anchors in every form and
 * scope, the hook's input gradient, op counts of a real run == the counting-only run (pb_model_count) exactly, cached connectors == fresh ones after optimizer steps, a frozen
 * backbone after training steps, loss decreasing, and the task-file round trip.
 * Gradient tolerance: |fd - analytic| <= 2e-2 * max(|fd|, |analytic|) or <= 1e-4 absolute. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "backbone/bert.h"
#include "backbone/checkpoint.h"
#include "util/status.h"
#include "counters/opcount.h"
#include "harness/opsreport.h"
#include "methods/method.h"
#include "tests/check.h"

/* finite-difference tolerances (check_fd_used): |fd - g| < ATOL or relative < RTOL, for the
 * method tensors (FD_) and the hook input gradient (FD_DX_) */
#define FD_ATOL 4e-5
#define FD_RTOL 8e-3
#define FD_DX_ATOL 1e-5
#define FD_DX_RTOL 2e-3

void pb_layerconnect_interp(float *W, int L, int K); /* methods/layerconnect.c */


enum { B = 2, T = 7, D = 16, LAY = 3, C = 3 };

static void tiny(pb_config *c, float dropout) {
  pb_test_tiny_config(c, dropout);
  c->hidden = D;
  c->layers = LAY;
  c->num_labels = C;
}

static int ids[B * T], types[B * T], mask[B * T], labels[B];

static void make_batch(void) {
  for (int i = 0; i < B * T; i++) {
    ids[i] = (11 * i + 5) % 50;
    types[i] = (i % T) >= 4;
    mask[i] = 1;
  }
  labels[0] = 1;
  labels[1] = 2;
}

typedef struct {
  pb_model m;
  pb_method_inst inst;
} built;

static void randomise(pb_model *m, int method_only, uint64_t seed, float scale) {
  pb_rng r;
  pb_rng_seed(&r, seed);
  for (int i = 0; i < m->params.n; i++) {
    pb_tensor *t = &m->params.t[i];
    if (t->owner == PB_OWNER_METHOD)
      for (size_t j = 0; j < t->numel; j++) t->data[j] = scale * pb_rng_normal(&r);
    else if (!method_only && t->ndim == 1)
      for (size_t j = 0; j < t->numel; j++) t->data[j] += 0.1f * pb_rng_normal(&r);
  }
  m->params.version++; /* values written directly: tell the method */
}

/* declare + attach + alloc + init (anchors at their init: zero, anchors_v random) */
static int build(built *b, const char *const *opts, float dropout) {
  pb_config c;
  tiny(&c, dropout);
  memset(b, 0, sizeof *b);
  int rc = pb_model_declare(&b->m, &c);
  if (!rc) rc = pb_method_create(&b->inst, "layerconnect", opts);
  if (!rc) rc = b->inst.m->attach(b->inst.ctx, &b->m);
  if (!rc) rc = pb_model_alloc(&b->m, B, T);
  if (rc) {
    printf("build failed: %s\n", pb_last_error());
    return rc;
  }
  pb_model_init_random(&b->m, 42);
  return PB_OK;
}

static void unbuild(built *b) {
  pb_method_destroy(&b->inst);
  pb_model_free(&b->m);
}

/* plain backbone (no hooks) with the same backbone + head values as src */
static int build_plain(pb_model *p, const pb_model *src) {
  int rc = pb_model_declare(p, &src->cfg);
  if (!rc) rc = pb_model_alloc(p, B, T);
  if (rc) return rc;
  for (int i = 0; i < p->params.n; i++) {
    int j = pb_params_find(&src->params, p->params.t[i].name);
    memcpy(p->params.t[i].data, src->params.t[j].data, p->params.t[i].numel * sizeof(float));
  }
  return PB_OK;
}

/* inference loss; bumps the version first because the FD loop writes anchors directly */
static float loss_of(pb_model *m) {
  float loss = NAN;
  m->params.version++;
  if (pb_forward(m, ids, types, mask, B, T, labels, NULL, 0, 0, &loss)) printf("forward: %s\n", pb_last_error());
  return loss;
}

static const char *forms[] = {"form=diag", "form=rank1", "form=scalar"};
static const char *scopes[] = {"scope=tokens", "scope=cls"};

static void test_options(void) {
  printf("options and describe\n");
  pb_method_inst in;
  char buf[256];
  CHECK(pb_method_create(&in, "layerconnect", NULL) == PB_OK, "create: %s", pb_last_error());
  in.m->describe(in.ctx, buf, sizeof buf);
  CHECK(strcmp(buf, "K=9,form=diag,scope=tokens") == 0, "describe default: %s", buf);
  pb_method_destroy(&in);
  const char *o1[] = {"K=4", "form=rank1", "scope=cls", NULL};
  CHECK(pb_method_create(&in, "layerconnect", o1) == PB_OK, "create: %s", pb_last_error());
  in.m->describe(in.ctx, buf, sizeof buf);
  CHECK(strcmp(buf, "K=4,form=rank1,scope=cls") == 0, "describe: %s", buf);
  pb_method_destroy(&in);
  const char *bad[][2] = {{"K=0", NULL}, {"K=x", NULL}, {"form=full", NULL}, {"scope=all", NULL}, {"r=8", NULL}};
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
    CHECK(pb_method_create(&in, "layerconnect", bad[i]) == PB_ERR_ARG, "option %s accepted", bad[i][0]);
}

static void test_counts_bert_base(void) {
  printf("parameter counts and ops at bert-base\n");
  const size_t want[3] = {13824, 9 * 3 * 768, 9 * 769};
  for (int f = 0; f < 3; f++) {
    pb_config c;
    pb_config_bert_base(&c, 2);
    pb_model m;
    pb_method_inst in;
    const char *opts[] = {forms[f], NULL};
    if (pb_model_declare(&m, &c) || pb_method_create(&in, "layerconnect", opts) || in.m->attach(in.ctx, &m)) {
      CHECK(0, "declare/attach: %s", pb_last_error());
      return;
    }
    size_t n = pb_params_count(&m.params, PB_OWNER_METHOD, 1, 0);
    CHECK(n == want[f], "%s: %zu params, want %zu", forms[f], n, want[f]);
    CHECK(pb_params_count(&m.params, PB_OWNER_BACKBONE, 1, 0) == 0, "%s: backbone trains", forms[f]);
    CHECK(pb_params_count(&m.params, PB_OWNER_METHOD, 0, 1) == n, "%s: anchors not stored", forms[f]);
    if (f == 0) {
      double vs_lora = 100.0 * (1.0 - 13824.0 / 294912.0), vs_ad = 100.0 * (1.0 - 13824.0 / 156768.0);
      printf("  diag K=9: %zu params = %.2f%% fewer than LoRA, %.2f%% fewer than Adapter; %zu bytes fp32\n", n,
             vs_lora, vs_ad, n * 4);
      CHECK(fabs(vs_lora - 95.31) < 0.005 && fabs(vs_ad - 91.18) < 0.005, "paper ratios");
      for (int s = 0; s < 2; s++) {
        pb_method_inst in2;
        pb_model m2;
        const char *o2[] = {scopes[s], NULL};
        CHECK_OK(pb_model_declare(&m2, &c));
        CHECK_OK(pb_method_create(&in2, "layerconnect", o2));
        CHECK_OK(in2.m->attach(in2.ctx, &m2));
        pb_opcounts oc = {0};
        CHECK_OK(pb_model_ops_add(&m2, &in2, 1, 128, PB_COUNT_INFER, 0, &oc));
        uint64_t fl = pb_opcounts_flops(&oc, PB_OPO_METHOD);
        uint64_t want_fl = s ? 12ull * 3 * 768 : 128ull * 12 * 3 * 768;
        printf("  %s: %llu added FLOPs per example at T=128 (inference)\n", scopes[s], (unsigned long long)fl);
        CHECK(fl == want_fl, "%s: %llu FLOPs, want %llu", scopes[s], (unsigned long long)fl,
              (unsigned long long)want_fl);
        pb_method_destroy(&in2);
        pb_model_free(&m2);
      }
    }
    pb_method_destroy(&in);
    pb_model_free(&m);
  }
}

static void test_interp(void) {
  printf("interpolation weights\n");
  float W[16 * 16];
  const int sq[] = {4, 12};
  for (int i = 0; i < 2; i++) {
    int L = sq[i];
    pb_layerconnect_interp(W, L, L);
    for (int l = 0; l < L; l++)
      for (int k = 0; k < L; k++) CHECK(W[l * L + k] == (l == k ? 1.0f : 0.0f), "K=L=%d: W[%d,%d] = %g", L, l, k, W[l * L + k]);
  }
  pb_layerconnect_interp(W, 4, 2);
  const double want[4][2] = {{1, 0}, {2.0 / 3, 1.0 / 3}, {1.0 / 3, 2.0 / 3}, {0, 1}};
  for (int l = 0; l < 4; l++)
    for (int k = 0; k < 2; k++)
      CHECK(fabs(W[l * 2 + k] - want[l][k]) < 1e-7, "K=2 L=4: W[%d,%d] = %.8f, want %.8f", l, k, W[l * 2 + k],
            want[l][k]);
  pb_layerconnect_interp(W, 5, 1);
  for (int l = 0; l < 5; l++) CHECK(W[l] == 1.0f, "K=1: W[%d] = %g", l, W[l]);
  pb_layerconnect_interp(W, 4, 7); /* K > L: layers sit on anchors 0, 2, 4, 6 */
  for (int l = 0; l < 4; l++)
    for (int k = 0; k < 7; k++) CHECK(W[l * 7 + k] == (k == 2 * l ? 1.0f : 0.0f), "K=7 L=4: W[%d,%d] = %g", l, k, W[l * 7 + k]);
  pb_layerconnect_interp(W, 12, 9);
  for (int l = 0; l < 12; l++) {
    double s = 0;
    int nz = 0;
    for (int k = 0; k < 9; k++) s += W[l * 9 + k], nz += W[l * 9 + k] != 0.0f;
    CHECK(fabs(s - 1.0) < 1e-6 && nz >= 1 && nz <= 2, "K=9 L=12 row %d: sum %g, %d non-zeros", l, s, nz);
  }
  CHECK(W[0] == 1.0f && W[11 * 9 + 8] == 1.0f, "K=9 L=12: the end layers sit on the end anchors");
}

/* zero anchors: logits bit-identical to the plain backbone, inference and training forward */
static void test_zero_is_backbone(const char *form, const char *scope) {
  const char *opts[] = {form, scope, "K=2", NULL};
  built a;
  if (build(&a, opts, 0.1f)) { CHECK(0, "build"); return; }
  pb_model p;
  if (build_plain(&p, &a.m)) { CHECK(0, "plain: %s", pb_last_error()); unbuild(&a); return; }
  for (int training = 0; training <= 1; training++) {
    float la, lp;
    pb_forward(&a.m, ids, types, mask, B, T, labels, NULL, training, 5, &la);
    pb_forward(&p, ids, types, mask, B, T, labels, NULL, training, 5, &lp);
    CHECK(memcmp(a.m.acts.logits, p.acts.logits, B * C * sizeof(float)) == 0,
          "%s %s training=%d: zero anchors change the logits", form, scope, training);
  }
  pb_model_free(&p);
  unbuild(&a);
}

/* scope=cls: the hook leaves rows t != 0 untouched; at model level, with only the last layer's
 * connector non-zero (K = L, last anchor), the last layer's non-CLS outputs equal the backbone's */
static void test_cls_scope(void) {
  printf("scope=cls touches only [CLS]\n");
  const char *opts[] = {"scope=cls", "K=3", NULL};
  built a;
  if (build(&a, opts, 0.0f)) { CHECK(0, "build"); return; }
  pb_model *m = &a.m;
  randomise(m, 1, 4, 0.5f);
  static float hp[B * T * D], h[B * T * D], h0[B * T * D];
  pb_rng r;
  pb_rng_seed(&r, 11);
  for (int i = 0; i < B * T * D; i++) hp[i] = pb_rng_normal(&r), h[i] = h0[i] = pb_rng_normal(&r);
  m->hooks[0].ops->set_mode(m->hooks[0].ctx, 0, 0);
  CHECK(m->hooks[0].ops->layer_fwd(m->hooks[0].ctx, 1, hp, h, B, T, D) == PB_OK, "hook: %s", pb_last_error());
  for (int b = 0; b < B; b++)
    for (int t = 0; t < T; t++) {
      int same = memcmp(h + (b * T + t) * D, h0 + (b * T + t) * D, D * sizeof(float)) == 0;
      CHECK(t == 0 ? !same : same, "hook row b=%d t=%d %s", b, t, t == 0 ? "unchanged" : "changed");
    }
  /* model level: zero every anchor but the last */
  float *A = m->params.t[pb_params_find(&m->params, "layerconnect.anchors")].data;
  memset(A, 0, 2 * (size_t)2 * D * sizeof(float)); /* anchors 0 and 1 of 3 (= layers 0, 1) */
  m->params.version++;
  pb_model p;
  if (build_plain(&p, m)) { CHECK(0, "plain"); unbuild(&a); return; }
  loss_of(m);
  loss_of(&p);
  const float *ya = m->acts.layer[LAY - 1].out, *yp = p.acts.layer[LAY - 1].out;
  for (int b = 0; b < B; b++)
    for (int t = 0; t < T; t++) {
      int same = memcmp(ya + (b * T + t) * D, yp + (b * T + t) * D, D * sizeof(float)) == 0;
      CHECK(t == 0 ? !same : same, "model last layer b=%d t=%d %s", b, t, t == 0 ? "unchanged" : "changed vs backbone");
    }
  pb_model_free(&p);
  unbuild(&a);
}

/* FD on every entry of the anchors (tiny: K*P <= 2*48, + K*d for anchors_v) */
static void test_fd(const char *form, const char *scope) {
  const char *opts[] = {form, scope, "K=2", NULL};
  built a;
  if (build(&a, opts, 0.0f)) { CHECK(0, "build"); return; }
  pb_model *m = &a.m;
  randomise(m, 0, 9, 0.3f);
  pb_params_zero_grad(&m->params);
  loss_of(m);
  if (pb_backward(m)) { CHECK(0, "backward: %s", pb_last_error()); unbuild(&a); return; }
  int checked = 0;
  float worst = 0, gmax = 0;
  double used = 0;
  for (int i = 0; i < m->params.n; i++) {
    pb_tensor *t = &m->params.t[i];
    if (t->owner != PB_OWNER_METHOD) continue;
    CHECK(t->grad != NULL, "%s has no gradient", t->name);
    if (!t->grad) continue;
    for (size_t j = 0; j < t->numel; j++) { /* every entry: K*P is tiny here */
      const float eps = 1e-2f, v = t->data[j];
      t->data[j] = v + eps;
      float lp = loss_of(m);
      t->data[j] = v - eps;
      float lm = loss_of(m);
      t->data[j] = v;
      float fd = (lp - lm) / (2 * eps), g = t->grad[j];
      float err = fabsf(fd - g), scale = fmaxf(fabsf(fd), fabsf(g));
      if (scale > 1e-3f && err / scale > worst) worst = err / scale;
      if (scale > gmax) gmax = scale;
      const double u = check_fd_used(fd, g, FD_ATOL, FD_RTOL);
      used = fmax(used, u);
      CHECK(u < 1, "%s %s %s[%zu]: fd %.6g analytic %.6g", form, scope, t->name, j, fd, g);
      checked++;
    }
  }
  printf("  FD %s %s: %d entries, largest |grad| %.3g, worst relative error (|grad| > 1e-3) %.3g; %.2f of the "
         "tolerance used (abs %.0e or rel %.0e)\n", form, scope, checked, gmax, worst, used, FD_ATOL, FD_RTOL);
  CHECK(gmax > 1e-2f, "gradients too small for a meaningful check");
  unbuild(&a);
}

/* the hook alone: d sum((h + c(hprev)) * R) / dhprev vs layer_bwd */
static void test_hook_input_grad(const char *form, const char *scope) {
  const char *opts[] = {form, scope, "K=2", NULL};
  built a;
  if (build(&a, opts, 0.0f)) { CHECK(0, "build"); return; }
  pb_model *m = &a.m;
  randomise(m, 1, 13, 0.5f);
  const pb_hook_ops *h = m->hooks[0].ops;
  static float hp[B * T * D], y[B * T * D], R[B * T * D], dhp[B * T * D];
  pb_rng r;
  pb_rng_seed(&r, 3);
  for (int i = 0; i < B * T * D; i++) hp[i] = pb_rng_normal(&r), R[i] = pb_rng_normal(&r), dhp[i] = 0.5f;
  h->set_mode(m->hooks[0].ctx, 0, 0);
  memset(y, 0, sizeof y);
  h->layer_fwd(m->hooks[0].ctx, 1, hp, y, B, T, D);
  CHECK(h->layer_bwd(m->hooks[0].ctx, 1, hp, R, dhp, B, T, D) == PB_OK, "bwd: %s", pb_last_error());
  double used = 0;
  for (int i = 0; i < B * T * D; i += 3) {
    const float eps = 1e-2f, v = hp[i];
    double sp = 0, sm = 0;
    hp[i] = v + eps;
    memset(y, 0, sizeof y);
    h->layer_fwd(m->hooks[0].ctx, 1, hp, y, B, T, D);
    for (int j = 0; j < B * T * D; j++) sp += (double)y[j] * R[j];
    hp[i] = v - eps;
    memset(y, 0, sizeof y);
    h->layer_fwd(m->hooks[0].ctx, 1, hp, y, B, T, D);
    for (int j = 0; j < B * T * D; j++) sm += (double)y[j] * R[j];
    hp[i] = v;
    float fd = (float)((sp - sm) / (2 * eps)), g = dhp[i] - 0.5f;
    const double u = check_fd_used(fd, g, FD_DX_ATOL, FD_DX_RTOL);
    used = fmax(used, u);
    CHECK(u < 1, "%s %s dhprev[%d]: fd %.6g analytic %.6g", form, scope, i, fd, g);
  }
  printf("  hook dhprev %s %s: %.2f of the tolerance used (abs %.0e or rel %.0e)\n", form, scope, used, FD_DX_ATOL,
         FD_DX_RTOL);
  unbuild(&a);
}

static int counts_equal(const pb_opcounts *got, const pb_opcounts *want, const char *what) {
  int ok = 1;
  for (int k = 0; k < PB_OPK_COUNT; k++)
    if (got->c[PB_OPO_METHOD][k] != want->c[PB_OPO_METHOD][k]) {
      CHECK(0, "%s %s: counted %llu, want %llu", what, pb_opkind_name(k), (unsigned long long)got->c[PB_OPO_METHOD][k],
            (unsigned long long)want->c[PB_OPO_METHOD][k]);
      ok = 0;
    }
  return ok;
}

/* METHOD counts of a real run == the counting-only run's, also on the first inference after an
 * anchor change (whose one-off materialisation is not per-example work and not charged) */
static void test_opcounts(const char *form, const char *scope) {
  const char *opts[] = {form, scope, "K=2", NULL};
  built a;
  if (build(&a, opts, 0.1f)) { CHECK(0, "build"); return; }
  pb_model *m = &a.m;
  randomise(m, 1, 21, 0.3f);
  char what[96];
  for (int pass = 0; pass < 3; pass++) { /* 0: inference after a change, 1: cached inference, 2: training */
    const int training = pass == 2;
    pb_opc_reset();
    pb_opc_enable(1);
    float loss;
    int rc = pb_forward(m, ids, types, mask, B, T, labels, NULL, training, 77, &loss);
    if (!rc && training) rc = pb_backward(m);
    pb_opc_enable(0);
    CHECK(rc == PB_OK, "run: %s", pb_last_error());
    pb_opcounts want = {0};
    CHECK_OK(pb_model_ops_add(m, &a.inst, B, T, training ? PB_COUNT_TRAIN : PB_COUNT_INFER, 0, &want));
    snprintf(what, sizeof what, "%s %s pass %d", form, scope, pass);
    counts_equal(&pb_opc.counts, &want, what);
    CHECK(want.c[PB_OPO_METHOD][PB_OPK_FLOP] > 0, "%s: nothing counted", what);
  }
  unbuild(&a);
}

/* after optimizer steps the cached inference connectors equal freshly materialised ones, and a
 * training forward + AdamW step changes inference results (version tracking works) */
static void test_cache(void) {
  printf("connector cache follows the parameter version\n");
  const char *opts[] = {"K=2", NULL};
  built a;
  if (build(&a, opts, 0.0f)) { CHECK(0, "build"); return; }
  pb_model *m = &a.m;
  pb_adamw o;
  pb_adamw_defaults(&o);
  float l0, l1, l2;
  pb_forward(m, ids, types, mask, B, T, labels, NULL, 0, 0, &l0);
  for (int s = 1; s <= 2; s++) {
    float loss;
    pb_params_zero_grad(&m->params);
    pb_forward(m, ids, types, mask, B, T, labels, NULL, 1, (uint64_t)s, &loss);
    pb_backward(m);
    pb_adamw_step(&m->params, &o, s);
  }
  pb_forward(m, ids, types, mask, B, T, labels, NULL, 0, 0, &l1); /* version changed: re-materialised */
  float logits1[B * C];
  memcpy(logits1, m->acts.logits, sizeof logits1);
  m->params.version++; /* force a fresh materialisation */
  pb_forward(m, ids, types, mask, B, T, labels, NULL, 0, 0, &l2);
  CHECK(memcmp(logits1, m->acts.logits, sizeof logits1) == 0, "cached connectors differ from fresh ones");
  CHECK(l1 != l0, "inference loss unchanged after 2 steps");
  float *A = m->params.t[pb_params_find(&m->params, "layerconnect.anchors")].data;
  int nz = 0;
  for (int i = 0; i < 2 * 2 * D; i++) nz += A[i] != 0.0f;
  CHECK(nz > 0, "anchors still zero after 2 steps");
  unbuild(&a);
}

static void test_frozen_and_training(const char *form) {
  printf("frozen backbone + training from zero anchors (%s)\n", form);
  const char *opts[] = {form, "K=2", NULL};
  built a;
  if (build(&a, opts, 0.1f)) { CHECK(0, "build"); return; }
  pb_model *m = &a.m;
  pb_params *p = &m->params;
  float *frozen0 = malloc(p->n_frozen * sizeof(float)), *train0 = malloc(p->n_train * sizeof(float));
  memcpy(frozen0, p->frozen_mem, p->n_frozen * sizeof(float));
  memcpy(train0, p->train_mem, p->n_train * sizeof(float));
  pb_adamw o;
  pb_adamw_defaults(&o);
  o.lr = 1e-2f;
  const float first = loss_of(m);
  for (int s = 1; s <= 12; s++) {
    float loss;
    pb_params_zero_grad(p);
    int rc = pb_forward(m, ids, types, mask, B, T, labels, NULL, 1, (uint64_t)s, &loss);
    if (!rc) rc = pb_backward(m);
    if (!rc) rc = pb_adamw_step(p, &o, s);
    CHECK(rc == PB_OK, "step %d: %s", s, pb_last_error());
    if (s == 3) {
      CHECK(memcmp(frozen0, p->frozen_mem, p->n_frozen * sizeof(float)) == 0, "%s: a frozen tensor changed", form);
      for (int i = 0; i < p->n; i++) {
        pb_tensor *t = &p->t[i];
        if (!t->trainable) continue;
        size_t off = (size_t)(t->data - p->train_mem);
        CHECK(memcmp(train0 + off, t->data, t->numel * sizeof(float)) != 0, "%s: %s did not change", form, t->name);
      }
    }
  }
  const float last = loss_of(m);
  printf("  eval loss %.4f at init -> %.4f after 12 steps\n", first, last);
  CHECK(last < first - 0.05f, "%s: loss did not go down (%.4f -> %.4f)", form, first, last);
  free(frozen0);
  free(train0);
  unbuild(&a);
}

static void test_task_roundtrip(const char *form) {
  printf("task-file round trip (%s)\n", form);
  const char *opts[] = {form, "K=2", NULL};
  built a, b;
  if (build(&a, opts, 0.0f) || build(&b, opts, 0.0f)) { CHECK(0, "build"); return; }
  randomise(&a.m, 1, 31, 0.3f);
  pb_forward(&b.m, ids, types, mask, B, T, labels, NULL, 0, 0, NULL); /* b caches its own (init) connectors */
  float lb0[B * C];
  memcpy(lb0, b.m.acts.logits, sizeof lb0);
  char path[64];
  snprintf(path, sizeof path, "/tmp/pb_test_lc_%d.safetensors", (int)getpid());
  CHECK(pb_task_save(&a.m, path, NULL, 0) == PB_OK, "save: %s", pb_last_error());
  CHECK(pb_task_load(&b.m, path, NULL, NULL) == PB_OK, "load: %s", pb_last_error());
  float la[B * C];
  pb_forward(&a.m, ids, types, mask, B, T, labels, NULL, 0, 0, NULL);
  memcpy(la, a.m.acts.logits, sizeof la);
  pb_forward(&b.m, ids, types, mask, B, T, labels, NULL, 0, 0, NULL); /* no manual version bump: load must do it */
  CHECK(memcmp(la, b.m.acts.logits, sizeof la) == 0, "%s: logits differ after load", form);
  CHECK(memcmp(la, lb0, sizeof la) != 0, "%s: the load changed nothing", form);
  unlink(path);
  unbuild(&a);
  unbuild(&b);
}

int main(void) {
  make_batch();
  test_options();
  test_counts_bert_base();
  test_interp();
  printf("zero anchors == plain backbone, FD gradients, hook input gradients, op counts (3 forms x 2 scopes)\n");
  for (int f = 0; f < 3; f++)
    for (int s = 0; s < 2; s++) {
      test_zero_is_backbone(forms[f], scopes[s]);
      test_fd(forms[f], scopes[s]);
      test_hook_input_grad(forms[f], scopes[s]);
      test_opcounts(forms[f], scopes[s]);
    }
  test_cls_scope();
  test_cache();
  for (int f = 0; f < 3; f++) {
    test_frozen_and_training(forms[f]);
    test_task_roundtrip(forms[f]);
  }
  if (failures) {
    printf("%d check(s) FAILED\n", failures);
    return 1;
  }
  printf("all layerconnect checks passed\n");
  return 0;
}
