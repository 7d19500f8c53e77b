/* Adapter method: options, bert-base parameter counts, identity at init, finite-difference
 * gradients of every adapter tensor (and of the trained LayerNorms with train_ln=1) through the
 * model loss, the hook's input gradient, op counts of a real run == the counting-only run (pb_model_count) exactly, a frozen
 * backbone after training steps, loss decreasing from the zero-initialised start, and the
 * task-file round trip (bit-exact logits).
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
#define FD_ATOL 5e-5
#define FD_RTOL 1e-2
#define FD_DX_ATOL 1e-4
#define FD_DX_RTOL 2e-2


static void tiny(pb_config *c, float dropout) { pb_test_tiny_config(c, dropout); }

enum { B = 2, T = 7 };
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

/* declare + attach + alloc + init; random_method 1: method tensors and 1-D backbone tensors
 * moved to random non-zero values; 2: only the stored tensors (method, head, trained LNs) */
static int build(built *b, const char *const *opts, float dropout, int random_method) {
  pb_config c;
  tiny(&c, dropout);
  int rc = pb_model_declare(&b->m, &c);
  if (!rc) rc = pb_method_create(&b->inst, "adapter", opts);
  if (!rc) rc = b->inst.m->attach(b->inst.ctx, &b->m);
  if (!rc) rc = pb_model_alloc(&b->m, B, T);
  if (rc) {
    printf("build failed: %s\n", pb_last_error());
    return rc;
  }
  pb_model_init_random(&b->m, 42);
  if (random_method) {
    pb_rng r;
    pb_rng_seed(&r, 9);
    for (int i = 0; i < b->m.params.n; i++) {
      pb_tensor *t = &b->m.params.t[i];
      if (random_method == 2 && !t->stored) continue;
      if (t->owner == PB_OWNER_METHOD)
        for (size_t j = 0; j < t->numel; j++) t->data[j] = 0.3f * pb_rng_normal(&r);
      else if (t->ndim == 1)
        for (size_t j = 0; j < t->numel; j++) t->data[j] += 0.1f * pb_rng_normal(&r);
    }
    b->m.params.version++;
  }
  return PB_OK;
}

static void unbuild(built *b) {
  pb_method_destroy(&b->inst);
  pb_model_free(&b->m);
}

static float loss_of(pb_model *m) {
  float loss = NAN;
  if (pb_forward(m, ids, types, mask, B, T, labels, NULL, 0, 0, &loss)) printf("forward: %s\n", pb_last_error());
  return loss;
}

static void test_options(void) {
  printf("options and describe\n");
  pb_method_inst in;
  char buf[256];
  CHECK(pb_method_create(&in, "adapter", NULL) == PB_OK, "create: %s", pb_last_error());
  in.m->describe(in.ctx, buf, sizeof buf);
  CHECK(strcmp(buf, "mode=pfeiffer,r=8,act=relu,train_ln=0,init_std=0.01") == 0, "describe default: %s", buf);
  pb_method_destroy(&in);
  const char *o1[] = {"mode=houlsby", "r=4", "act=gelu", "train_ln=1", "init_std=0.02", NULL};
  CHECK(pb_method_create(&in, "adapter", o1) == PB_OK, "create: %s", pb_last_error());
  in.m->describe(in.ctx, buf, sizeof buf);
  CHECK(strcmp(buf, "mode=houlsby,r=4,act=gelu,train_ln=1,init_std=0.02") == 0, "describe: %s", buf);
  pb_method_destroy(&in);
  const char *bad[][2] = {{"mode=lora", NULL}, {"r=0", NULL}, {"r=8x", NULL}, {"act=tanh", NULL},
                          {"train_ln=2", NULL}, {"bogus=1", NULL}, {"init_std=-1", NULL}};
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
    CHECK(pb_method_create(&in, "adapter", bad[i]) == PB_ERR_ARG, "option %s accepted", bad[i][0]);
}

static void test_counts_bert_base(void) {
  printf("parameter counts at bert-base\n");
  const struct {
    const char *mode;
    size_t method, ln;
  } want[] = {{"mode=pfeiffer", 156768, 12 * 2 * 768}, {"mode=houlsby", 313536, 12 * 4 * 768}};
  for (int i = 0; i < 2; i++) {
    for (int ln = 0; ln < 2; ln++) {
      pb_config c;
      pb_config_bert_base(&c, 2);
      pb_model m;
      pb_method_inst in;
      const char *opts[] = {want[i].mode, ln ? "train_ln=1" : "train_ln=0", NULL};
      if (pb_model_declare(&m, &c) || pb_method_create(&in, "adapter", opts) || in.m->attach(in.ctx, &m)) {
        CHECK(0, "declare/attach: %s", pb_last_error());
        return;
      }
      size_t meth = pb_params_count(&m.params, PB_OWNER_METHOD, 1, 0);
      size_t bb = pb_params_count(&m.params, PB_OWNER_BACKBONE, 1, 0);
      size_t bbs = pb_params_count(&m.params, PB_OWNER_BACKBONE, 0, 1);
      CHECK(meth == want[i].method, "%s: method params %zu, want %zu", want[i].mode, meth, want[i].method);
      CHECK(bb == (ln ? want[i].ln : 0), "%s train_ln=%d: trainable backbone %zu", want[i].mode, ln, bb);
      CHECK(bbs == bb, "%s train_ln=%d: stored backbone %zu != trainable %zu", want[i].mode, ln, bbs, bb);
      pb_opcounts oc = {0};
      CHECK_OK(pb_model_ops_add(&m, &in, 1, 1, PB_COUNT_INFER, 0, &oc));
      uint64_t want_mac = i == 0 ? 147456 : 294912;
      CHECK(oc.c[PB_OPO_METHOD][PB_OPK_MAC] == want_mac, "%s: MACs/token %llu, want %llu", want[i].mode,
            (unsigned long long)oc.c[PB_OPO_METHOD][PB_OPK_MAC], (unsigned long long)want_mac);
      if (ln == 0) printf("  %s: %zu method params, %llu MACs/token\n", want[i].mode, meth,
                          (unsigned long long)oc.c[PB_OPO_METHOD][PB_OPK_MAC]);
      pb_method_destroy(&in);
      pb_model_free(&m);
    }
  }
}

/* zero-initialised up projection: logits bit-identical to the plain backbone */
static void test_identity_at_init(const char *mode) {
  printf("identity at init (%s)\n", mode);
  const char *opts[] = {mode, NULL};
  built a;
  memset(&a, 0, sizeof a);
  if (build(&a, opts, 0.0f, 0)) { CHECK(0, "build"); return; }
  pb_config c;
  tiny(&c, 0.0f);
  pb_model plain;
  if (pb_model_declare(&plain, &c) || pb_model_alloc(&plain, B, T)) { CHECK(0, "plain: %s", pb_last_error()); return; }
  pb_model_init_random(&plain, 42);
  /* same backbone values (the method tensors come after the backbone in init order, and the
   * table order differs, so copy by name) */
  for (int i = 0; i < plain.params.n; i++) {
    int j = pb_params_find(&a.m.params, plain.params.t[i].name);
    memcpy(plain.params.t[i].data, a.m.params.t[j].data, plain.params.t[i].numel * sizeof(float));
  }
  loss_of(&a.m);
  loss_of(&plain);
  CHECK(memcmp(a.m.acts.logits, plain.acts.logits, B * 3 * sizeof(float)) == 0, "%s: logits differ from backbone",
        mode);
  pb_model_free(&plain);
  unbuild(&a);
}

/* finite differences on a sample of entries of every method tensor (and trained LayerNorms) */
static void test_fd(const char *const *opts, const char *label) {
  printf("finite-difference gradients (%s)\n", label);
  built a;
  memset(&a, 0, sizeof a);
  if (build(&a, opts, 0.0f, 1)) { CHECK(0, "build"); return; }
  pb_model *m = &a.m;
  pb_params_zero_grad(&m->params);
  loss_of(m);
  if (pb_backward(m)) { CHECK(0, "backward: %s", pb_last_error()); unbuild(&a); return; }
  int checked = 0, tensors = 0;
  float worst = 0, gmax = 0;
  double used = 0;
  for (int i = 0; i < m->params.n; i++) {
    pb_tensor *t = &m->params.t[i];
    if (!t->trainable || t->owner == PB_OWNER_HEAD) continue;
    tensors++;
    size_t step = t->numel / 6 + 1;
    for (size_t j = 0; j < t->numel; j += step) {
      const float eps = 1e-2f, v = t->data[j];
      t->data[j] = v + eps;
      float lp = loss_of(m);
      t->data[j] = v - eps;
      float lm = loss_of(m);
      t->data[j] = v;
      float fd = (lp - lm) / (2 * eps), g = t->grad[j];
      float err = fabsf(fd - g), scale = fmaxf(fabsf(fd), fabsf(g));
      const double u = check_fd_used(fd, g, FD_ATOL, FD_RTOL);
      int ok = u < 1;
      used = fmax(used, u);
      if (scale > 1e-3f && err / scale > worst) worst = err / scale;
      if (scale > gmax) gmax = scale;
      CHECK(ok, "%s %s[%zu]: fd %.6g analytic %.6g", label, t->name, j, fd, g);
      checked++;
    }
  }
  printf("  %d entries of %d tensors, largest |grad| %.3g, worst relative error (|grad| > 1e-3) %.3g; %.2f of the "
         "tolerance used (abs %.0e or rel %.0e)\n", checked, tensors, gmax, worst, used, FD_ATOL, FD_RTOL);
  CHECK(gmax > 1e-2f, "gradients too small for a meaningful check");
  CHECK(tensors > 0, "no trainable tensors");
  unbuild(&a);
}

/* the hook alone: d sum(y*R) / dx by finite differences vs sublayer_bwd */
static void test_hook_input_grad(const char *const *opts, const char *label) {
  printf("hook input gradient (%s)\n", label);
  built a;
  memset(&a, 0, sizeof a);
  if (build(&a, opts, 0.0f, 1)) { CHECK(0, "build"); return; }
  pb_model *m = &a.m;
  const pb_hook_ops *h = m->hooks[0].ops;
  const int N = B * T, d = 16;
  static float x[B * T * 16], y[B * T * 16], R[B * T * 16], dx[B * T * 16];
  pb_rng r;
  pb_rng_seed(&r, 3);
  for (int i = 0; i < N * d; i++) {
    x[i] = pb_rng_normal(&r);
    R[i] = pb_rng_normal(&r);
  }
  double used = 0;
  for (int site = 0; site < PB_SUB_COUNT; site++) {
    memset(dx, 0, sizeof dx);
    for (int i = 0; i < N * d; i++) dx[i] = 0.5f; /* accumulation: the hook must add, not overwrite */
    CHECK(h->sublayer_fwd(m->hooks[0].ctx, 1, site, x, y, N, d) == PB_OK, "fwd: %s", pb_last_error());
    CHECK(h->sublayer_bwd(m->hooks[0].ctx, 1, site, x, R, dx, N, d) == PB_OK, "bwd: %s", pb_last_error());
    for (int i = 0; i < N * d; i += 7) {
      const float eps = 1e-2f, v = x[i];
      double sp = 0, sm = 0;
      x[i] = v + eps;
      h->sublayer_fwd(m->hooks[0].ctx, 1, site, x, y, N, d);
      for (int j = 0; j < N * d; j++) sp += (double)y[j] * R[j];
      x[i] = v - eps;
      h->sublayer_fwd(m->hooks[0].ctx, 1, site, x, y, N, d);
      for (int j = 0; j < N * d; j++) sm += (double)y[j] * R[j];
      x[i] = v;
      float fd = (float)((sp - sm) / (2 * eps)), g = dx[i] - 0.5f;
      const double u = check_fd_used(fd, g, FD_DX_ATOL, FD_DX_RTOL);
      used = fmax(used, u);
      CHECK(u < 1, "%s site %d x[%d]: fd %.6g analytic %.6g", label, site, i, fd, g);
    }
  }
  printf("  hook dx: %.2f of the tolerance used (abs %.0e or rel %.0e)\n", used, FD_DX_ATOL, FD_DX_RTOL);
  unbuild(&a);
}

/* METHOD counts of a real run == those of the counting-only run, inference and training (dropout 0.1) */
static void test_opcounts(const char *const *opts, const char *label) {
  printf("op counts: real == counting-only (%s)\n", label);
  built a;
  memset(&a, 0, sizeof a);
  if (build(&a, opts, 0.1f, 1)) { CHECK(0, "build"); return; }
  pb_model *m = &a.m;
  for (int training = 0; training <= 1; training++) {
    pb_opc_reset();
    pb_opc_enable(1);
    float loss;
    int rc = pb_forward(m, ids, types, mask, B, T, labels, NULL, training, 77, &loss);
    if (!rc && training) rc = pb_backward(m);
    pb_opc_enable(0);
    CHECK(rc == PB_OK, "run: %s", pb_last_error());
    pb_opcounts want = {0};
    CHECK_OK(pb_model_ops_add(m, &a.inst, B, T, training ? PB_COUNT_TRAIN : PB_COUNT_INFER, 0, &want));
    for (int k = 0; k < PB_OPK_COUNT; k++)
      CHECK(pb_opc.counts.c[PB_OPO_METHOD][k] == want.c[PB_OPO_METHOD][k], "%s training=%d %s: real %llu, counting-only %llu",
            label, training, pb_opkind_name(k), (unsigned long long)pb_opc.counts.c[PB_OPO_METHOD][k],
            (unsigned long long)want.c[PB_OPO_METHOD][k]);
    CHECK(want.c[PB_OPO_METHOD][PB_OPK_MAC] > 0, "no MACs counted");
  }
  unbuild(&a);
}

/* 3 training steps: frozen tensors bit-identical, method tensors moved; returns loss drop */
static void test_frozen_and_training(const char *const *opts, const char *label) {
  printf("frozen backbone + training from init (%s)\n", label);
  built a;
  memset(&a, 0, sizeof a);
  if (build(&a, opts, 0.1f, 0)) { CHECK(0, "build"); return; }
  pb_model *m = &a.m;
  pb_params *p = &m->params;
  float *frozen0 = malloc(p->n_frozen * sizeof(float)), *train0 = malloc(p->n_train * sizeof(float));
  memcpy(frozen0, p->frozen_mem, p->n_frozen * sizeof(float));
  memcpy(train0, p->train_mem, p->n_train * sizeof(float));
  pb_adamw o;
  pb_adamw_defaults(&o);
  o.lr = 1e-2f;
  const float first = loss_of(m); /* eval loss at the start */
  for (int s = 1; s <= 12; s++) {
    float loss;
    pb_params_zero_grad(p);
    int rc = pb_forward(m, ids, types, mask, B, T, labels, NULL, 1, (uint64_t)s, &loss);
    if (!rc) rc = pb_backward(m);
    if (!rc) rc = pb_adamw_step(p, &o, s);
    CHECK(rc == PB_OK, "step %d: %s", s, pb_last_error());
    if (s == 3) {
      CHECK(memcmp(frozen0, p->frozen_mem, p->n_frozen * sizeof(float)) == 0, "%s: a frozen tensor changed", label);
      for (int i = 0; i < p->n; i++) {
        pb_tensor *t = &p->t[i];
        if (!t->trainable) continue;
        size_t off = (size_t)(t->data - p->train_mem);
        CHECK(memcmp(train0 + off, t->data, t->numel * sizeof(float)) != 0, "%s: %s did not change", label, t->name);
      }
    }
  }
  const float last = loss_of(m);
  printf("  eval loss %.4f at init -> %.4f after 12 steps\n", first, last);
  CHECK(last < first - 0.05f, "%s: loss did not go down (%.4f -> %.4f)", label, first, last);
  free(frozen0);
  free(train0);
  unbuild(&a);
}

static void test_task_roundtrip(const char *const *opts, const char *label) {
  printf("task-file round trip (%s)\n", label);
  built a, b;
  memset(&a, 0, sizeof a);
  memset(&b, 0, sizeof b);
  if (build(&a, opts, 0.0f, 2) || build(&b, opts, 0.0f, 0)) { CHECK(0, "build"); return; }
  char path[64];
  snprintf(path, sizeof path, "/tmp/pb_test_adapter_%d.safetensors", (int)getpid());
  int rc = pb_task_save(&a.m, path, NULL, 0);
  CHECK(rc == PB_OK, "save: %s", pb_last_error());
  rc = pb_task_load(&b.m, path, NULL, NULL);
  CHECK(rc == PB_OK, "load: %s", pb_last_error());
  loss_of(&a.m);
  float la[B * 3];
  memcpy(la, a.m.acts.logits, sizeof la);
  loss_of(&b.m);
  CHECK(memcmp(la, b.m.acts.logits, sizeof la) == 0, "%s: logits differ after load", label);
  /* and the load mattered: a fresh model (init values) gives other logits */
  built c;
  memset(&c, 0, sizeof c);
  if (!build(&c, opts, 0.0f, 0)) {
    loss_of(&c.m);
    CHECK(memcmp(la, c.m.acts.logits, sizeof la) != 0, "%s: fresh model has the saved logits", label);
    unbuild(&c);
  }
  unlink(path);
  unbuild(&a);
  unbuild(&b);
}

int main(void) {
  make_batch();
  test_options();
  test_counts_bert_base();
  test_identity_at_init("mode=pfeiffer");
  test_identity_at_init("mode=houlsby");
  const char *pf[] = {"mode=pfeiffer", "r=3", NULL};
  const char *hg[] = {"mode=houlsby", "r=3", "act=gelu", NULL};
  const char *ln[] = {"mode=houlsby", "r=2", "train_ln=1", NULL};
  const char *const *cfgs[] = {pf, hg, ln};
  const char *names[] = {"pfeiffer relu r=3", "houlsby gelu r=3", "houlsby relu r=2 train_ln"};
  for (int i = 0; i < 3; i++) {
    test_fd(cfgs[i], names[i]);
    test_hook_input_grad(cfgs[i], names[i]);
    test_opcounts(cfgs[i], names[i]);
    if (i < 2) test_frozen_and_training(cfgs[i], names[i]);
    test_task_roundtrip(cfgs[i], names[i]);
  }
  if (failures) {
    printf("%d check(s) FAILED\n", failures);
    return 1;
  }
  printf("all adapter checks passed\n");
  return 0;
}
