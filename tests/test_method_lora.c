/* LoRA method tests: options, counts at bert-base, finite-difference gradients of every LoRA
 * tensor (with and without LoRA dropout) and of the hook input, instrumented == analytic op
 * counts, merge/unmerge, frozen backbone, training from zero-init, task-file round trip. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "backbone/bert.h"
#include "backbone/checkpoint.h"
#include "backbone/ops.h"
#include "util/rng.h"
#include "util/status.h"
#include "counters/opcount.h"
#include "harness/opsreport.h"
#include "methods/method.h"
#include "tests/check.h"

/* finite-difference tolerances (check_fd_used): |fd - g| < ATOL or relative < RTOL, for the
 * method tensors (FD_) and the hook input gradient (FD_DX_) */
#define FD_ATOL 1e-4
#define FD_RTOL 2e-2
#define FD_DX_ATOL 1e-5
#define FD_DX_RTOL 2e-3

enum { BB = 2, TT = 7 };

typedef struct {
  pb_model m;
  pb_method_inst inst;
  int ids[BB * TT], types[BB * TT], mask[BB * TT], labels[BB];
} fixture;

static void tiny_config(pb_config *c, float drop) { pb_test_tiny_config(c, drop); }

/* builds a tiny model with lora (options NULL-terminated); random backbone; method tensors
 * random non-zero when `randomize` */
static void fixture_make(fixture *f, const pb_config *cfg, const char *const *opts, int randomize,
                         uint64_t seed) {
  memset(f, 0, sizeof *f);
  CHECK_OK(pb_model_declare(&f->m, cfg));
  CHECK_OK(pb_method_create(&f->inst, "lora", opts));
  CHECK_OK(f->inst.m->attach(f->inst.ctx, &f->m));
  CHECK_OK(pb_model_alloc(&f->m, BB, TT));
  pb_model_init_random(&f->m, seed);
  pb_rng r;
  pb_rng_seed(&r, seed + 1);
  if (randomize)
    for (int i = 0; i < f->m.params.n; i++) {
      pb_tensor *t = &f->m.params.t[i];
      if (t->owner != PB_OWNER_METHOD) continue;
      for (size_t j = 0; j < t->numel; j++) t->data[j] = 0.3f * pb_rng_normal(&r);
    }
  pb_test_random_batch(cfg, seed + 2, BB, TT, f->ids, f->types, f->mask, f->labels); /* the batch depends on the seed only, not on `randomize` */
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

/* ---------------------------------------------------------------- options, counts */

static void test_options(void) {
  printf("options: defaults, describe round trip, rejects bad values\n");
  pb_method_inst in;
  char buf[256], buf2[256];
  CHECK_OK(pb_method_create(&in, "lora", NULL));
  CHECK_OK(in.m->describe(in.ctx, buf, sizeof buf));
  CHECK(strcmp(buf, "r=8,alpha=16,dropout=0,targets=query+value,init=kaiming") == 0, "default describe: %s", buf);
  pb_method_destroy(&in);
  const char *o1[] = {"r=4", "alpha=32", "dropout=0.05", "targets=key,ffn_out,attn_out", "init=gaussian", NULL};
  CHECK_OK(pb_method_create(&in, "lora", o1));
  CHECK_OK(in.m->describe(in.ctx, buf, sizeof buf));
  CHECK(strcmp(buf, "r=4,alpha=32,dropout=0.05,targets=key+attn_out+ffn_out,init=gaussian") == 0, "describe: %s",
        buf);
  pb_method_destroy(&in);
  /* describe -> options -> describe is a fixed point */
  char copy[256], *opts[8];
  int n = 0;
  snprintf(copy, sizeof copy, "%s", buf);
  for (char *tok = strtok(copy, ","); tok && n < 7; tok = strtok(NULL, ",")) opts[n++] = tok;
  opts[n] = NULL;
  CHECK_OK(pb_method_create(&in, "lora", (const char *const *)opts));
  CHECK_OK(in.m->describe(in.ctx, buf2, sizeof buf2));
  CHECK(strcmp(buf, buf2) == 0, "describe round trip: %s vs %s", buf, buf2);
  pb_method_destroy(&in);
  const char *all[] = {"targets=all", NULL};
  CHECK_OK(pb_method_create(&in, "lora", all));
  CHECK_OK(in.m->describe(in.ctx, buf, sizeof buf));
  CHECK(strstr(buf, "targets=query+key+value+attn_out+ffn_in+ffn_out") != NULL, "targets=all: %s", buf);
  pb_method_destroy(&in);
  const char *bad[][2] = {{"r=0", NULL},          {"r=abc", NULL},       {"r=8x", NULL},
                          {"alpha=", NULL},       {"alpha=nan", NULL},   {"dropout=1", NULL},
                          {"dropout=-0.1", NULL}, {"targets=foo", NULL}, {"targets=", NULL},
                          {"init=xavier", NULL},  {"rank=8", NULL},      {"r", NULL}};
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
    int rc = pb_method_create(&in, "lora", bad[i]);
    CHECK(rc == PB_ERR_ARG, "option '%s' accepted (rc %d)", bad[i][0], rc);
    if (!rc) pb_method_destroy(&in);
  }
}

static size_t count_bert_base(const char *const *opts, size_t *backbone_trainable) {
  pb_config c;
  pb_config_bert_base(&c, 2);
  pb_model m;
  pb_method_inst in;
  CHECK_OK(pb_model_declare(&m, &c));
  CHECK_OK(pb_method_create(&in, "lora", opts));
  CHECK_OK(in.m->attach(in.ctx, &m));
  size_t n = pb_params_count(&m.params, PB_OWNER_METHOD, 1, 0);
  CHECK(pb_params_count(&m.params, PB_OWNER_METHOD, 0, 1) == n, "every LoRA tensor is stored");
  if (backbone_trainable) *backbone_trainable = pb_params_count(&m.params, PB_OWNER_BACKBONE, 1, 0);
  pb_method_destroy(&in);
  pb_model_free(&m);
  return n;
}

static void test_counts(void) {
  printf("counts: bert-base r=8 q,v = 294,912 trainable; MACs/token 294,912 unmerged, 0 merged\n");
  size_t bt = 1;
  size_t n = count_bert_base(NULL, &bt);
  CHECK(n == 294912, "lora q,v r=8 trainable %zu != 294,912", n);
  CHECK(bt == 0, "backbone trainable %zu != 0", bt);
  const char *all[] = {"targets=all", NULL};
  n = count_bert_base(all, NULL);
  /* per layer: 4 * (8*768 + 768*8) + (8*768 + 3072*8) + (8*3072 + 768*8) = 110,592; x 12 */
  CHECK(n == 1327104, "lora all r=8 trainable %zu != 1,327,104", n);
  const char *r16[] = {"r=16", "targets=query,key,value", NULL};
  n = count_bert_base(r16, NULL);
  CHECK(n == 12u * 3 * 2 * 16 * 768, "lora q,k,v r=16 trainable %zu", n);

  /* counting-only runs of a declared (never allocated) bert-base model: method owner only */
  pb_config c;
  pb_config_bert_base(&c, 2);
  pb_method_inst in;
  pb_model bm;
  CHECK_OK(pb_model_declare(&bm, &c));
  CHECK_OK(pb_method_create(&in, "lora", NULL));
  CHECK_OK(in.m->attach(in.ctx, &bm));
  pb_opcounts oc, every;
  memset(&every, 0, sizeof every);
  CHECK_OK(pb_model_ops_add(&bm, &in, 1, 1, PB_COUNT_INFER, 0, &every));
  memset(&oc, 0, sizeof oc);
  for (int k = 0; k < PB_OPK_COUNT; k++) oc.c[PB_OPO_METHOD][k] = every.c[PB_OPO_METHOD][k];
  CHECK(oc.c[PB_OPO_METHOD][PB_OPK_MAC] == 294912, "unmerged MACs/token %llu != 294,912",
        (unsigned long long)oc.c[PB_OPO_METHOD][PB_OPK_MAC]);
  /* elementwise: per site N*r (scale) + N*out (add) = 8 + 768, x 2 sites x 12 layers */
  CHECK(oc.c[PB_OPO_METHOD][PB_OPK_FLOP] == 24u * 776, "unmerged FLOPs/token %llu",
        (unsigned long long)oc.c[PB_OPO_METHOD][PB_OPK_FLOP]);
  CHECK(oc.c[PB_OPO_METHOD][PB_OPK_TRANS] == 0, "no transcendentals");
  memset(&oc, 0, sizeof oc);
  CHECK_OK(pb_model_ops_add(&bm, &in, 4, 128, PB_COUNT_INFER, 1, &oc));
  for (int k = 0; k < PB_OPK_COUNT; k++) CHECK(oc.c[PB_OPO_METHOD][k] == 0, "merged ops kind %d not 0", k);
  CHECK(pb_model_ops_add(&bm, &in, 1, 1, PB_COUNT_TRAIN, 1, &oc) == PB_ERR_ARG, "training a merged model is refused");
  /* training step at T=128: forward 294,912 + backward 2x that, per token */
  memset(&oc, 0, sizeof oc);
  CHECK_OK(pb_model_ops_add(&bm, &in, 1, 128, PB_COUNT_TRAIN, 0, &oc));
  CHECK(oc.c[PB_OPO_METHOD][PB_OPK_MAC] == 3u * 294912 * 128, "training MACs %llu",
        (unsigned long long)oc.c[PB_OPO_METHOD][PB_OPK_MAC]);
  pb_method_destroy(&in);
  pb_model_free(&bm);
}

/* ---------------------------------------------------------------- gradients */

/* checks pb_backward's grads of every method tensor against central differences on the
 * 3 entries of largest |grad| and 2 random ones; pass: |fd-g| < 1e-4 or rel < 2e-2 */
static void grad_check(const char *const *opts, const char *what) {
  pb_config cfg;
  tiny_config(&cfg, 0.0f);
  fixture f;
  fixture_make(&f, &cfg, opts, 1, 11);
  const uint64_t seed = 1234;
  pb_params_zero_grad(&f.m.params);
  loss_of(&f, 1, seed);
  CHECK_OK(pb_backward(&f.m));
  const float eps = 3e-3f; /* fp32 forward: 1e-3 leaves ~1e-4 of rounding noise, 1e-2 too much curvature */
  int checked = 0, tensors = 0;
  double worst = 0, used = 0;
  pb_rng r;
  pb_rng_seed(&r, 99);
  for (int i = 0; i < f.m.params.n; i++) {
    pb_tensor *t = &f.m.params.t[i];
    if (t->owner != PB_OWNER_METHOD) continue;
    tensors++;
    CHECK(t->grad != NULL, "%s has no gradient", t->name);
    if (!t->grad) continue;
    size_t pick[5];
    for (int k = 0; k < 3; k++) {
      size_t best = 0;
      float bv = -1;
      for (size_t j = 0; j < t->numel; j++) {
        int used = 0;
        for (int q = 0; q < k; q++) used |= pick[q] == j;
        if (!used && fabsf(t->grad[j]) > bv) bv = fabsf(t->grad[j]), best = j;
      }
      pick[k] = best;
    }
    pick[3] = (size_t)pb_rng_below(&r, t->numel);
    pick[4] = (size_t)pb_rng_below(&r, t->numel);
    float gmax = fabsf(t->grad[pick[0]]);
    CHECK(gmax > 1e-4f, "%s: largest gradient %g is trivially small", t->name, (double)gmax);
    for (int k = 0; k < 5; k++) {
      size_t j = pick[k];
      float v = t->data[j];
      t->data[j] = v + eps;
      double lp = loss_of(&f, 1, seed);
      t->data[j] = v - eps;
      double lm = loss_of(&f, 1, seed);
      t->data[j] = v;
      double fd = (lp - lm) / (2.0 * eps), g = t->grad[j];
      double ad = fabs(fd - g), rel = ad / fmax(fmax(fabs(fd), fabs(g)), 1e-30);
      if (fmax(fabs(fd), fabs(g)) > 1e-2 && rel > worst) worst = rel;
      const double u = check_fd_used(fd, g, FD_ATOL, FD_RTOL);
      used = fmax(used, u);
      CHECK(u < 1, "%s %s[%zu]: backward %.6g vs finite difference %.6g", what, t->name, j, g, fd);
      checked++;
    }
  }
  printf("  %s: %d entries of %d tensors, worst relative error %.2e where |g| > 1e-2; %.2f of the tolerance used "
         "(abs %.0e or rel %.0e)\n", what, checked, tensors, worst, used, FD_ATOL, FD_RTOL);
  fixture_free(&f);
}

/* the hook's input gradient: f(x) = sum(y * R) with y = lora(x); dx from linear_bwd(dy = R)
 * vs central differences, on every site (in/out 16/16, 16/24, 24/16); dx must accumulate */
static void hook_input_grad(float dropout) {
  pb_config cfg;
  tiny_config(&cfg, 0.0f);
  char dopt[32];
  snprintf(dopt, sizeof dopt, "dropout=%g", (double)dropout);
  const char *opts[] = {"targets=all", "r=3", "alpha=5", dopt, NULL};
  fixture f;
  fixture_make(&f, &cfg, opts, 1, 21);
  const pb_hook_ops *h = f.m.hooks[0].ops;
  CHECK(h && h->linear_fwd && h->linear_bwd && h->set_mode, "hooks installed");
  if (!h) return;
  CHECK_OK(h->set_mode(f.m.hooks[0].ctx, 1, 777));
  const int N = BB * TT;
  pb_rng r;
  pb_rng_seed(&r, 5);
  double worst = 0, used = 0;
  for (int site = 0; site < PB_LIN_COUNT; site++) {
    int in = site == PB_LIN_FFN_OUT ? cfg.ffn : cfg.hidden, out = site == PB_LIN_FFN_IN ? cfg.ffn : cfg.hidden;
    float *x = malloc(sizeof(float) * N * in), *y = malloc(sizeof(float) * N * out);
    float *R = malloc(sizeof(float) * N * out), *dx = malloc(sizeof(float) * N * in);
    for (int i = 0; i < N * in; i++) x[i] = pb_rng_normal(&r), dx[i] = 0.5f;
    for (int i = 0; i < N * out; i++) R[i] = pb_rng_normal(&r);
    CHECK_OK(h->linear_bwd(f.m.hooks[0].ctx, 1, site, x, R, dx, N, in, out));
    for (int k = 0; k < 6; k++) {
      int j = (int)pb_rng_below(&r, (uint64_t)(N * in));
      double fs[2];
      const float eps = 1e-2f, v = x[j];
      for (int s = 0; s < 2; s++) {
        x[j] = v + (s ? -eps : eps);
        memset(y, 0, sizeof(float) * N * out);
        CHECK_OK(h->linear_fwd(f.m.hooks[0].ctx, 1, site, x, y, N, in, out));
        fs[s] = 0;
        for (int i = 0; i < N * out; i++) fs[s] += (double)y[i] * R[i];
      }
      x[j] = v;
      double fd = (fs[0] - fs[1]) / (2.0 * eps), g = dx[j] - 0.5;
      double ad = fabs(fd - g), rel = ad / fmax(fmax(fabs(fd), fabs(g)), 1e-30);
      if (fmax(fabs(fd), fabs(g)) > 1e-2 && rel > worst) worst = rel;
      const double u = check_fd_used(fd, g, FD_DX_ATOL, FD_DX_RTOL);
      used = fmax(used, u);
      CHECK(u < 1, "dropout %g site %d dx[%d]: %.6g vs finite difference %.6g", (double)dropout, site, j, g, fd);
    }
    free(x), free(y), free(R), free(dx);
  }
  printf("  hook dx (dropout %g): 6 sites x 6 entries, worst relative error %.2e; %.2f of the tolerance used "
         "(abs %.0e or rel %.0e)\n", (double)dropout, worst, used, FD_DX_ATOL, FD_DX_RTOL);
  /* a layer/site without LoRA is a no-op */
  const char *qv[] = {NULL};
  fixture g;
  fixture_make(&g, &cfg, qv, 1, 22);
  float x[BB * TT * 16], y[BB * TT * 16];
  for (int i = 0; i < N * 16; i++) x[i] = 1.0f, y[i] = 2.0f;
  CHECK_OK(g.m.hooks[0].ops->linear_fwd(g.m.hooks[0].ctx, 0, PB_LIN_KEY, x, y, N, 16, 16));
  int same = 1;
  for (int i = 0; i < N * 16; i++) same &= y[i] == 2.0f;
  CHECK(same, "untargeted site (key) must leave y alone");
  CHECK(g.m.hooks[0].ops->linear_fwd(g.m.hooks[0].ctx, 5, PB_LIN_QUERY, x, y, N, 16, 16) == PB_ERR_ARG, "bad layer refused");
  CHECK(g.m.hooks[0].ops->linear_fwd(g.m.hooks[0].ctx, 0, PB_LIN_QUERY, x, y, N, 16, 8) == PB_ERR_SHAPE, "bad shape refused");
  fixture_free(&g);
  fixture_free(&f);
}

/* ---------------------------------------------------------------- op counts */

static void ops_match(const char *const *opts, const char *what) {
  pb_config cfg;
  tiny_config(&cfg, 0.1f);
  fixture f;
  fixture_make(&f, &cfg, opts, 1, 31);
  for (int training = 0; training <= 1; training++) {
    pb_opc_reset();
    pb_opc_enable(1);
    loss_of(&f, training, 4242);
    if (training) {
      pb_params_zero_grad(&f.m.params);
      CHECK_OK(pb_backward(&f.m));
    }
    pb_opc_enable(0);
    pb_opcounts want;
    memset(&want, 0, sizeof want);
    CHECK_OK(pb_model_ops_add(&f.m, &f.inst, BB, TT, training ? PB_COUNT_TRAIN : PB_COUNT_INFER, 0, &want));
    for (int k = 0; k < PB_OPK_COUNT; k++)
      CHECK(pb_opc.counts.c[PB_OPO_METHOD][k] == want.c[PB_OPO_METHOD][k],
            "%s training=%d %s: real run %llu != counting-only run %llu", what, training, pb_opkind_name(k),
            (unsigned long long)pb_opc.counts.c[PB_OPO_METHOD][k], (unsigned long long)want.c[PB_OPO_METHOD][k]);
    printf("  %s training=%d: method MAC %llu FLOP %llu TRANS %llu (real == counting-only)\n", what, training,
           (unsigned long long)want.c[PB_OPO_METHOD][PB_OPK_MAC], (unsigned long long)want.c[PB_OPO_METHOD][PB_OPK_FLOP],
           (unsigned long long)want.c[PB_OPO_METHOD][PB_OPK_TRANS]);
  }
  /* merged inference adds nothing */
  CHECK_OK(f.inst.m->merge(f.inst.ctx, &f.m));
  pb_opc_reset();
  pb_opc_enable(1);
  loss_of(&f, 0, 1);
  pb_opc_enable(0);
  for (int k = 0; k < PB_OPK_COUNT; k++)
    CHECK(pb_opc.counts.c[PB_OPO_METHOD][k] == 0, "%s merged: method kind %d charged %llu", what, k,
          (unsigned long long)pb_opc.counts.c[PB_OPO_METHOD][k]);
  CHECK_OK(f.inst.m->unmerge(f.inst.ctx, &f.m));
  fixture_free(&f);
}

/* ---------------------------------------------------------------- merge */

static void test_merge(void) {
  printf("merge: logits unchanged (< 1e-5), unmerge restores W (< 1e-6), misuse refused\n");
  pb_config cfg;
  tiny_config(&cfg, 0.1f);
  const char *opts[] = {"targets=all", "r=4", "alpha=12", "dropout=0.1", NULL};
  fixture f;
  fixture_make(&f, &cfg, opts, 1, 41);
  const int C = cfg.num_labels;
  float before[BB * 3], after[BB * 3];
  loss_of(&f, 0, 0);
  memcpy(before, f.m.acts.logits, sizeof before);
  /* copies of every backbone tensor */
  float **orig = calloc((size_t)f.m.params.n, sizeof *orig);
  for (int i = 0; i < f.m.params.n; i++) {
    pb_tensor *t = &f.m.params.t[i];
    if (t->owner != PB_OWNER_BACKBONE) continue;
    orig[i] = malloc(t->numel * sizeof(float));
    memcpy(orig[i], t->data, t->numel * sizeof(float));
  }
  CHECK_OK(f.inst.m->merge(f.inst.ctx, &f.m));
  int wchanged = memcmp(orig[f.m.layer[0].qw], f.m.params.t[f.m.layer[0].qw].data, 16 * 16 * sizeof(float)) != 0;
  CHECK(wchanged, "merge changed the query weight");
  loss_of(&f, 0, 0);
  memcpy(after, f.m.acts.logits, sizeof after);
  double dmax = 0;
  for (int i = 0; i < BB * C; i++) dmax = fmax(dmax, fabs((double)before[i] - after[i]));
  CHECK(dmax < 1e-5, "merged logits differ by %g", dmax);
  printf("  max |logits merged - unmerged| = %.3g\n", dmax);
  CHECK(f.inst.m->merge(f.inst.ctx, &f.m) == PB_ERR_ARG, "double merge refused");
  {
    float loss;
    CHECK_OK(pb_forward(&f.m, f.ids, f.types, f.mask, BB, TT, f.labels, NULL, 1, 3, &loss));
    CHECK(pb_backward(&f.m) == PB_ERR_ARG, "backward through a merged model refused");
  }
  CHECK_OK(f.inst.m->unmerge(f.inst.ctx, &f.m));
  CHECK(f.inst.m->unmerge(f.inst.ctx, &f.m) == PB_ERR_ARG, "unmerge without merge refused");
  double wmax = 0;
  for (int i = 0; i < f.m.params.n; i++) {
    pb_tensor *t = &f.m.params.t[i];
    if (!orig[i]) continue;
    for (size_t j = 0; j < t->numel; j++) wmax = fmax(wmax, fabs((double)orig[i][j] - t->data[j]));
    free(orig[i]);
  }
  free(orig);
  CHECK(wmax < 1e-6, "unmerged weights differ from originals by %g", wmax);
  printf("  max |W unmerged - W original| = %.3g\n", wmax);
  loss_of(&f, 0, 0);
  dmax = 0;
  for (int i = 0; i < BB * C; i++) dmax = fmax(dmax, fabs((double)before[i] - f.m.acts.logits[i]));
  CHECK(dmax < 1e-5, "logits after unmerge differ by %g", dmax);
  fixture_free(&f);
}

/* ---------------------------------------------------------------- training */

static void test_frozen_and_training(void) {
  printf("training: backbone bit-identical after 3 AdamW steps; LoRA tensors move; loss falls from zero-init B\n");
  pb_config cfg;
  tiny_config(&cfg, 0.1f);
  const char *opts[] = {"dropout=0.1", NULL};
  fixture f;
  fixture_make(&f, &cfg, opts, 0, 51); /* PEFT init: B = 0 */
  /* LoRA output is exactly zero at init: logits equal those of the bare backbone */
  float *orig_mem = malloc(f.m.params.n_frozen * sizeof(float));
  memcpy(orig_mem, f.m.params.frozen_mem, f.m.params.n_frozen * sizeof(float));
  float *train0 = malloc(f.m.params.n_train * sizeof(float));
  memcpy(train0, f.m.params.train_mem, f.m.params.n_train * sizeof(float));
  for (int i = 0; i < f.m.params.n; i++) {
    pb_tensor *t = &f.m.params.t[i];
    if (t->owner == PB_OWNER_BACKBONE) CHECK(!t->trainable && !t->grad, "%s must be frozen", t->name);
    if (t->owner == PB_OWNER_METHOD && strstr(t->name, ".B")) {
      int zero = 1;
      for (size_t j = 0; j < t->numel; j++) zero &= t->data[j] == 0.0f;
      CHECK(zero, "%s must start at zero", t->name);
    }
    if (t->owner == PB_OWNER_METHOD && strstr(t->name, ".A")) {
      float bound = 1.0f / sqrtf((float)t->shape[1]), mx = 0;
      for (size_t j = 0; j < t->numel; j++) mx = fmaxf(mx, fabsf(t->data[j]));
      CHECK(mx <= bound && mx > 0.5f * bound, "%s kaiming max %g vs bound %g", t->name, (double)mx, (double)bound);
    }
  }
  pb_adamw opt;
  pb_adamw_defaults(&opt);
  opt.lr = 1e-2f;
  for (int step = 1; step <= 3; step++) {
    pb_params_zero_grad(&f.m.params);
    loss_of(&f, 1, 100 + step);
    CHECK_OK(pb_backward(&f.m));
    CHECK_OK(pb_adamw_step(&f.m.params, &opt, step));
  }
  CHECK(memcmp(orig_mem, f.m.params.frozen_mem, f.m.params.n_frozen * sizeof(float)) == 0,
        "frozen backbone changed during training");
  for (int i = 0; i < f.m.params.n; i++) {
    pb_tensor *t = &f.m.params.t[i];
    if (t->owner != PB_OWNER_METHOD) continue;
    size_t off = (size_t)(t->data - f.m.params.train_mem);
    CHECK(memcmp(train0 + off, t->data, t->numel * sizeof(float)) != 0, "%s did not change", t->name);
  }
  free(orig_mem);
  free(train0);
  fixture_free(&f);

  /* loss must fall with LoRA alone training (head frozen too), from B = 0 */
  pb_model m;
  pb_method_inst in;
  CHECK_OK(pb_model_declare(&m, &cfg));
  const char *o2[] = {"targets=all", NULL};
  CHECK_OK(pb_method_create(&in, "lora", o2));
  CHECK_OK(in.m->attach(in.ctx, &m));
  m.params.t[m.cls_w].trainable = m.params.t[m.cls_b].trainable = 0;
  CHECK_OK(pb_model_alloc(&m, BB, TT));
  pb_model_init_random(&m, 61);
  fixture tmp;
  fixture_make(&tmp, &cfg, NULL, 0, 62); /* borrow a batch */
  float first = 0, last = 0;
  for (int step = 1; step <= 15; step++) {
    pb_params_zero_grad(&m.params);
    float loss;
    CHECK_OK(pb_forward(&m, tmp.ids, tmp.types, tmp.mask, BB, TT, tmp.labels, NULL, 1, 200 + step, &loss));
    if (step == 1) first = loss;
    last = loss;
    CHECK_OK(pb_backward(&m));
    CHECK_OK(pb_adamw_step(&m.params, &opt, step));
  }
  printf("  LoRA-only training (head frozen): loss %.4f -> %.4f over 15 steps\n", (double)first, (double)last);
  CHECK(last < 0.8f * first, "loss did not fall: %g -> %g", (double)first, (double)last);
  fixture_free(&tmp);
  pb_method_destroy(&in);
  pb_model_free(&m);
}

/* ---------------------------------------------------------------- the scale alpha/r */

/* y[N,out] = x[N,in] W^T + b + scale * (x A^T) B^T, all in double, from the tensors' values */
static void lora_by_hand(const float *x, const float *W, const float *b, const float *A, const float *Bm, double scale,
                         int N, int in, int out, int r, double *y) {
  for (int n = 0; n < N; n++) {
    double u[64];
    for (int k = 0; k < r; k++) {
      double s = 0;
      for (int i = 0; i < in; i++) s += (double)A[k * in + i] * x[n * in + i];
      u[k] = s;
    }
    for (int o = 0; o < out; o++) {
      double s = b[o], t = 0;
      for (int i = 0; i < in; i++) s += (double)W[o * in + i] * x[n * in + i];
      for (int k = 0; k < r; k++) t += (double)Bm[o * r + k] * u[k];
      y[n * out + o] = s + scale * t;
    }
  }
}

/* LoRA's output computed independently at two sites of every layer (query [d->d] and ffn_in
 * [d->F]) with random A and B and r != alpha: the projection the backbone saved after the hook
 * (acts q / ffn_pre) == x W^T + b + (alpha/r) B A x by hand, where x is the site's saved input;
 * merge() leaves W + (alpha/r) B A; and a plain backbone (no method) whose W the test set to
 * W + (alpha/r) B A gives the same logits. A scale of alpha, r/alpha or 1 fails all three. */
static void test_scale(int r, double alpha) {
  pb_config cfg;
  tiny_config(&cfg, 0.1f); /* dropout in the config: inference (training 0) must not apply it */
  char ro[32], ao[32];
  snprintf(ro, sizeof ro, "r=%d", r);
  snprintf(ao, sizeof ao, "alpha=%g", alpha);
  const char *opts[] = {"targets=query,ffn_in", ro, ao, NULL};
  fixture f;
  fixture_make(&f, &cfg, opts, 1, 81);
  const double scale = alpha / r;
  const int N = BB * TT, d = cfg.hidden, F = cfg.ffn, L = cfg.layers, C = cfg.num_labels;
  loss_of(&f, 0, 0);
  double *y = malloc(sizeof(double) * N * F);
  double worst[2] = {0, 0}, base_delta = 0;
  const float *A[8][2], *Bm[8][2];
  for (int l = 0; l < L; l++)
    for (int s = 0; s < 2; s++) {
      char na[96], nb[96];
      const char *site = s ? "ffn_in" : "query";
      snprintf(na, sizeof na, "lora.layer.%d.%s.A", l, site);
      snprintf(nb, sizeof nb, "lora.layer.%d.%s.B", l, site);
      int ia = pb_params_find(&f.m.params, na), ib = pb_params_find(&f.m.params, nb);
      CHECK(ia >= 0 && ib >= 0, "no tensors %s / %s", na, nb);
      if (ia < 0 || ib < 0) goto out;
      const int out = s ? F : d;
      CHECK(f.m.params.t[ia].shape[0] == r && f.m.params.t[ia].shape[1] == d && f.m.params.t[ib].shape[0] == out &&
                f.m.params.t[ib].shape[1] == r,
            "%s/%s shapes", na, nb);
      A[l][s] = f.m.params.t[ia].data;
      Bm[l][s] = f.m.params.t[ib].data;
      const pb_layer_acts *la = &f.m.acts.layer[l];
      const float *x = s ? la->ln1 : (l ? f.m.acts.layer[l - 1].out : f.m.acts.h0);
      const int wi = s ? f.m.layer[l].iw : f.m.layer[l].qw, bi = s ? f.m.layer[l].ib : f.m.layer[l].qb;
      const float *got = s ? la->ffn_pre : la->q;
      lora_by_hand(x, f.m.params.t[wi].data, f.m.params.t[bi].data, A[l][s], Bm[l][s], scale, N, d, out, r, y);
      for (int i = 0; i < N * out; i++) worst[s] = fmax(worst[s], fabs(got[i] - y[i]) / fmax(1.0, fabs(y[i])));
      /* how far the LoRA term moves the output: a wrong scale is off by (that) x |1 - k| */
      lora_by_hand(x, f.m.params.t[wi].data, f.m.params.t[bi].data, A[l][s], Bm[l][s], 0.0, N, d, out, r, y);
      for (int i = 0; i < N * out; i++) base_delta = fmax(base_delta, fabs(got[i] - y[i]));
    }
  CHECK(worst[0] < 1e-5 && worst[1] < 1e-5, "r=%d alpha=%g: site output vs x W^T + b + (alpha/r) B A x by hand: "
        "query %.3g, ffn_in %.3g", r, alpha, worst[0], worst[1]);
  CHECK(base_delta > 0.5, "r=%d alpha=%g: the LoRA term (max %.3g) is too small to test the scale", r, alpha,
        base_delta);
  printf("  r=%d alpha=%g: site outputs vs by hand, max rel err query %.2e ffn_in %.2e (LoRA term up to %.2f)\n", r,
         alpha, worst[0], worst[1], base_delta);

  /* a plain backbone, same values, W set to W + (alpha/r) B A by the test: same logits */
  float logits[BB * 3];
  memcpy(logits, f.m.acts.logits, sizeof(float) * BB * C);
  pb_model plain;
  CHECK_OK(pb_model_declare(&plain, &cfg));
  CHECK_OK(pb_model_alloc(&plain, BB, TT));
  for (int i = 0; i < plain.params.n; i++) {
    pb_tensor *t = &plain.params.t[i];
    int j = pb_params_find(&f.m.params, t->name);
    CHECK(j >= 0 && f.m.params.t[j].numel == t->numel, "%s missing from the LoRA model", t->name);
    if (j >= 0) memcpy(t->data, f.m.params.t[j].data, t->numel * sizeof(float));
  }
  double wworst = 0;
  for (int l = 0; l < L; l++)
    for (int s = 0; s < 2; s++) {
      const int out = s ? F : d, wi = s ? f.m.layer[l].iw : f.m.layer[l].qw;
      float *W = plain.params.t[wi].data;
      for (int o = 0; o < out; o++)
        for (int i = 0; i < d; i++) {
          double ba = 0;
          for (int k = 0; k < r; k++) ba += (double)Bm[l][s][o * r + k] * A[l][s][k * d + i];
          W[o * d + i] = (float)(W[o * d + i] + scale * ba);
        }
    }
  CHECK_OK(pb_forward(&plain, f.ids, f.types, f.mask, BB, TT, NULL, NULL, 0, 0, NULL));
  double lworst = 0;
  for (int i = 0; i < BB * C; i++) lworst = fmax(lworst, fabs((double)plain.acts.logits[i] - logits[i]));
  CHECK(lworst < 1e-5, "r=%d alpha=%g: logits of the backbone with W + (alpha/r) B A set by hand differ by %.3g", r,
        alpha, lworst);

  /* merge() folds exactly (alpha/r) B A into W */
  CHECK_OK(f.inst.m->merge(f.inst.ctx, &f.m));
  for (int l = 0; l < L; l++)
    for (int s = 0; s < 2; s++) {
      const int out = s ? F : d, wi = s ? f.m.layer[l].iw : f.m.layer[l].qw;
      const float *got = f.m.params.t[wi].data, *want = plain.params.t[wi].data;
      for (int i = 0; i < out * d; i++) wworst = fmax(wworst, fabs((double)got[i] - want[i]));
    }
  CHECK(wworst < 1e-6, "r=%d alpha=%g: merged W vs W + (alpha/r) B A by hand: %.3g", r, alpha, wworst);
  printf("  r=%d alpha=%g: logits (W + (alpha/r) B A by hand) %.2e, merged W %.2e\n", r, alpha, lworst, wworst);
  CHECK_OK(f.inst.m->unmerge(f.inst.ctx, &f.m));
  pb_model_free(&plain);
out:
  free(y);
  fixture_free(&f);
}

/* ---------------------------------------------------------------- task file */

static void test_task_file(void) {
  printf("task file: save, load into a fresh model with the same method, logits bit-identical\n");
  pb_config cfg;
  tiny_config(&cfg, 0.0f);
  const char *opts[] = {"targets=query,ffn_in", "r=2", NULL};
  fixture a, b;
  fixture_make(&a, &cfg, opts, 1, 71);
  fixture_make(&b, &cfg, opts, 0, 71); /* same backbone seed, LoRA tensors at init */
  for (int j = 0; j < cfg.num_labels * cfg.hidden; j++) a.m.params.t[a.m.cls_w].data[j] += 0.1f; /* head differs too */
  char path[128];
  snprintf(path, sizeof path, "/tmp/pb_test_lora_%d.safetensors", (int)getpid());
  CHECK_OK(pb_task_save(&a.m, path, NULL, 0));
  CHECK_OK(pb_task_load(&b.m, path, NULL, NULL));
  loss_of(&a, 0, 0);
  loss_of(&b, 0, 0);
  CHECK(memcmp(a.m.acts.logits, b.m.acts.logits, BB * cfg.num_labels * sizeof(float)) == 0,
        "logits differ after the task-file round trip");
  /* the file holds the LoRA tensors + head only */
  pb_kv *meta = NULL;
  int nm = 0;
  CHECK_OK(pb_task_read_meta(path, &meta, &nm));
  pb_kv_free(meta, nm);
  unlink(path);
  fixture_free(&a);
  fixture_free(&b);
}

int main(void) {
  test_options();
  test_counts();
  printf("gradients: finite differences vs pb_backward on every LoRA tensor\n");
  const char *g1[] = {"targets=all", "r=3", "alpha=6", NULL};
  grad_check(g1, "all sites, no dropout");
  const char *g2[] = {"targets=query,value,ffn_out", "r=2", "alpha=3", "dropout=0.3", "init=gaussian", NULL};
  grad_check(g2, "q,v,ffn_out, LoRA dropout 0.3");
  printf("hook input gradients: finite differences of sum(y*R) wrt x\n");
  hook_input_grad(0.0f);
  hook_input_grad(0.25f);
  printf("op counts: instrumented (pb_opc) == analytic (ops) at B=2 T=7, dropout 0.1\n");
  const char *o1[] = {"dropout=0.1", NULL};
  ops_match(o1, "default q,v");
  const char *o2[] = {"targets=all", "r=5", "dropout=0.2", NULL};
  ops_match(o2, "all sites r=5");
  const char *o3[] = {"targets=key,ffn_in", NULL};
  ops_match(o3, "k,ffn_in no dropout");
  printf("scale alpha/r: LoRA output, merged W and logits against (alpha/r) B A computed by hand\n");
  test_scale(4, 16);
  test_scale(8, 16);
  test_scale(3, 5);
  test_merge();
  test_frozen_and_training();
  test_task_file();
  if (failures) {
    printf("%d check(s) FAILED\n", failures);
    return 1;
  }
  printf("all LoRA checks passed\n");
  return 0;
}
