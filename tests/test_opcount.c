/* Op counts of a real run == those of the counting-only run, exactly, for every method
 * configuration. The analytic count IS the counting-only run (pb_model_count: the same
 * forward/backward/optimizer code with every kernel and hook charging and not computing); the
 * kernels' own counts are checked against their closed forms in tests/test_ops.c.
 *
 * For each reference configuration of the ops baseline (harness/opscmd.c) plus a few extra
 * option combinations, on three small shapes with dropout 0.1, the report is computed on the
 * DECLARED model (never allocated: the counting-only run lays its parameters and activations
 * out in PROT_NONE address space, so a kernel that touched memory would crash this test), then
 * the model is allocated and run for real:
 *  - inference: pb_forward (training 0) of one example (B=1, T=7, all tokens real) counted by
 *    pb_opc (every owner) == pb_ops_report_compute().infer;
 *  - per-example lengths: a real example of length t == the counting-only run at B=1, T=t, for
 *    every t = 1..7;
 *  - training: forward + backward at B=2, T=7 + clipping + AdamW (optimizer owner) == .train_step;
 *  - a counting-only run in the middle of a measured window on the trained, allocated model
 *    leaves the logits, the gradients, the parameter version and the live counter untouched;
 *  - methods with merge (LoRA): merged forward == .infer_merged with a zero method owner, the
 *    merged logits equal the unmerged ones, and after unmerge the count is back to .infer;
 *  - LayerConnect: scope=cls adds fewer ops than scope=tokens.
 * Finally: no method has an `ops` member any more, and the counting-only report of every
 * reference configuration at bert-base is timed (milliseconds).
 * A mismatch prints every differing counter (owner.kind: real vs counting-only). */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "backbone/bert.h"
#include "util/status.h"
#include "counters/opcount.h"
#include "counters/timing.h"
#include "harness/opscmd.h"
#include "harness/opsreport.h"
#include "methods/method.h"
#include "tests/check.h"


enum { BT = 2, T = 7 };

typedef struct {
  const char *label, *method;
  const char *opts[6];
} extra_cfg;

/* option combinations beyond the reference ones (dropout inside LoRA, GELU adapters with
 * trainable LayerNorms, the other LayerConnect forms) */
static const extra_cfg extras[] = {
    {"lora r=4 all targets dropout 0.1", "lora", {"r=4", "alpha=8", "targets=all", "dropout=0.1", NULL}},
    {"adapter houlsby gelu train_ln", "adapter", {"mode=houlsby", "r=3", "act=gelu", "train_ln=1", NULL}},
    {"layerconnect K=2 rank1 tokens", "layerconnect", {"K=2", "form=rank1", "scope=tokens", NULL}},
    {"layerconnect K=3 scalar cls", "layerconnect", {"K=3", "form=scalar", "scope=cls", NULL}},
};

static int compare(const char *what, const pb_opcounts *got, const pb_opcounts *want) {
  int same = memcmp(got, want, sizeof *got) == 0;
  if (!same) {
    printf("  %s: real run != counting-only run\n", what);
    for (int o = 0; o < PB_OPO_COUNT; o++)
      for (int k = 0; k < PB_OPK_COUNT; k++)
        if (got->c[o][k] != want->c[o][k])
          printf("    %s.%s: real %llu counting-only %llu (delta %+lld)\n", pb_opowner_name(o), pb_opkind_name(k),
                 (unsigned long long)got->c[o][k], (unsigned long long)want->c[o][k],
                 (long long)(got->c[o][k] - want->c[o][k]));
  }
  return same;
}

static void make_batch(const pb_config *c, int *ids, int *types, int *mask, int *labels, float *targets) {
  for (int i = 0; i < BT * T; i++) {
    ids[i] = (i * 7 + 3) % c->vocab_size;
    types[i] = (i % T) >= T / 2;
    mask[i] = 1; /* every token real: the analytic model counts B x T */
  }
  for (int b = 0; b < BT; b++) {
    labels[b] = b % c->num_labels;
    targets[b] = 0.5f * (float)b - 0.25f;
  }
}

/* counted inference forward of the first B rows; a warm-up forward first so that work done once
 * per parameter change (LayerConnect materialising its connectors) is not in the count */
static int count_infer_t(pb_model *m, const int *ids, const int *types, const int *mask, int B, int t,
                         pb_opcounts *out) {
  int rc = pb_forward(m, ids, types, mask, B, t, NULL, NULL, 0, 0, NULL);
  pb_opc_reset();
  pb_opc_enable(1);
  if (!rc) rc = pb_forward(m, ids, types, mask, B, t, NULL, NULL, 0, 0, NULL);
  pb_opc_enable(0);
  *out = pb_opc_snapshot();
  return rc;
}
static int count_infer(pb_model *m, const int *ids, const int *types, const int *mask, int B, pb_opcounts *out) {
  return count_infer_t(m, ids, types, mask, B, T, out);
}

/* a counting-only run inside a measured window on a trained model changes nothing */
static void check_untouched(pb_model *m, pb_method_inst *mi, const int *ids, const int *types, const int *mask,
                            const char *label) {
  const int C = m->cfg.num_labels;
  float before[8], after[8];
  int rc = pb_forward(m, ids, types, mask, 1, T, NULL, NULL, 0, 0, NULL);
  memcpy(before, m->acts.logits, (size_t)C * sizeof(float));
  const size_t ng = m->params.n_train;
  float *g0 = malloc(ng * sizeof(float));
  memcpy(g0, m->params.grad_mem, ng * sizeof(float));
  const uint64_t version = m->params.version;
  pb_opc_reset();
  pb_opc_enable(1);
  int prev = pb_opc_set_owner(PB_OPO_HEAD);
  pb_opc_add(PB_OPK_FLOP, 5); /* a measurement in progress */
  pb_opcounts live = pb_opc_snapshot(), tmp = {{{0}}};
  if (!rc) rc = pb_model_ops_add(m, mi, BT, T + 3, PB_COUNT_TRAIN | PB_COUNT_CLIP | PB_COUNT_ADAMW, 0, &tmp);
  CHECK(rc == PB_OK, "%s: count on the allocated model: %s", label, pb_last_error());
  CHECK(pb_opc.enabled && !pb_opc.count_only && pb_opc.owner == PB_OPO_HEAD, "%s: counter state not restored", label);
  pb_opcounts now = pb_opc_snapshot();
  CHECK(memcmp(&now, &live, sizeof now) == 0, "%s: the live counts changed during a counting-only run", label);
  pb_opc_set_owner(prev);
  pb_opc_enable(0);
  CHECK(pb_opcounts_flops(&tmp, -1) > 0, "%s: nothing counted", label);
  CHECK(m->params.version == version, "%s: a counting-only AdamW step bumped the parameter version", label);
  CHECK(memcmp(g0, m->params.grad_mem, ng * sizeof(float)) == 0, "%s: gradients changed by a count", label);
  if (!rc) rc = pb_forward(m, ids, types, mask, 1, T, NULL, NULL, 0, 0, NULL);
  memcpy(after, m->acts.logits, (size_t)C * sizeof(float));
  CHECK(rc == PB_OK && memcmp(before, after, (size_t)C * sizeof(float)) == 0, "%s: logits changed by a count",
        label);
  free(g0);
}

/* runs every check for one method configuration on one shape; returns the method's added
 * inference FLOPs (for the tokens-vs-cls comparison) */
static uint64_t check_config(const pb_config *cfg, const char *label, const char *method, const char *const *opts) {
  printf("%s | d=%d L=%d A=%d F=%d C=%d\n", label, cfg->hidden, cfg->layers, cfg->heads, cfg->ffn, cfg->num_labels);
  pb_model m;
  pb_method_inst mi;
  int rc = pb_ops_model_build(&m, &mi, cfg, method, opts);
  CHECK(rc == PB_OK, "build %s: %s", label, pb_last_error());
  if (rc) return 0;
  pb_ops_report rep;
  rc = pb_ops_report_compute(&m, &mi, T, BT, T, &rep);
  CHECK(rc == PB_OK, "report %s: %s", label, pb_last_error());
  if (!rc) rc = pb_model_alloc(&m, BT, T);
  CHECK(rc == PB_OK, "alloc %s: %s", label, pb_last_error());
  if (rc) {
    pb_method_destroy(&mi);
    pb_model_free(&m);
    return 0;
  }
  pb_model_init_random(&m, 11);
  int ids[BT * T], types[BT * T], mask[BT * T], labels[BT];
  float targets[BT];
  make_batch(cfg, ids, types, mask, labels, targets);
  const int reg = cfg->num_labels == 1;

  /* inference, one example */
  pb_opcounts got;
  rc = count_infer(&m, ids, types, mask, 1, &got);
  CHECK(rc == PB_OK, "forward: %s", pb_last_error());
  CHECK(compare("inference B=1", &got, &rep.infer), "%s: inference counts differ", label);
  printf("  inference B=1 T=%d: %llu FLOPs (method %llu)\n", T, (unsigned long long)pb_opcounts_flops(&got, -1),
         (unsigned long long)pb_opcounts_flops(&got, PB_OPO_METHOD));

  /* an example of length t counts as B=1, T=t */
  for (int t = 1; t <= T; t++) {
    pb_opcounts want = {{{0}}};
    rc = count_infer_t(&m, ids, types, mask, 1, t, &got);
    if (!rc) rc = pb_model_ops_add(&m, &mi, 1, t, PB_COUNT_INFER, 0, &want);
    CHECK(rc == PB_OK, "length %d: %s", t, pb_last_error());
    char what[32];
    snprintf(what, sizeof what, "length %d", t);
    CHECK(compare(what, &got, &want), "%s: per-example count at length %d differs", label, t);
  }

  /* one training step: forward + loss + backward + AdamW */
  pb_adamw opt;
  pb_adamw_defaults(&opt);
  pb_opc_reset();
  pb_opc_enable(1);
  rc = pb_forward(&m, ids, types, mask, BT, T, reg ? NULL : labels, reg ? targets : NULL, 1, 77, NULL);
  if (!rc) rc = pb_backward(&m);
  int prev = pb_opc_set_owner(PB_OPO_OPTIM);
  if (!rc) (void)pb_params_clip_grad_norm(&m.params, 1.0, PB_CLIP_EPS_TORCH, NULL); /* run's default */
  if (!rc) rc = pb_adamw_step(&m.params, &opt, 1);
  pb_opc_set_owner(prev);
  pb_opc_enable(0);
  CHECK(rc == PB_OK, "training step: %s", pb_last_error());
  got = pb_opc_snapshot();
  CHECK(compare("train step", &got, &rep.train_step), "%s: training counts differ", label);
  printf("  train step B=%d T=%d: %llu FLOPs (method %llu, optimizer %llu)\n", BT, T,
         (unsigned long long)pb_opcounts_flops(&got, -1), (unsigned long long)pb_opcounts_flops(&got, PB_OPO_METHOD),
         (unsigned long long)pb_opcounts_flops(&got, PB_OPO_OPTIM));

  check_untouched(&m, &mi, ids, types, mask, label);

  /* merged inference (after the step the method's weights are non-trivial) */
  if (rep.has_merge) {
    const int C = cfg->num_labels;
    float unmerged[4 * 8], merged[4 * 8], plain[4 * 8];
    /* the backbone alone (hooks off), to show the method changes the logits after the step */
    const int nhooks = m.n_hooks;
    m.n_hooks = 0;
    rc = pb_forward(&m, ids, types, mask, 1, T, NULL, NULL, 0, 0, NULL);
    memcpy(plain, m.acts.logits, (size_t)C * sizeof(float));
    m.n_hooks = nhooks;
    if (!rc) rc = pb_forward(&m, ids, types, mask, 1, T, NULL, NULL, 0, 0, NULL);
    memcpy(unmerged, m.acts.logits, (size_t)C * sizeof(float));
    float effect = 0;
    for (int i = 0; i < C; i++) effect = fmaxf(effect, fabsf(unmerged[i] - plain[i]));
    printf("  method effect on logits after one step: %.3g\n", (double)effect);
    CHECK(effect > 0, "the method does not change the logits after a training step: merge check is vacuous");
    if (!rc) rc = mi.m->merge(mi.ctx, &m);
    CHECK(rc == PB_OK, "merge: %s", pb_last_error());
    if (!rc) rc = count_infer(&m, ids, types, mask, 1, &got);
    memcpy(merged, m.acts.logits, (size_t)C * sizeof(float));
    CHECK(rc == PB_OK, "merged forward: %s", pb_last_error());
    CHECK(compare("merged inference", &got, &rep.infer_merged), "%s: merged counts differ", label);
    CHECK(pb_opcounts_flops(&got, PB_OPO_METHOD) == 0, "merged: method owner charged %llu FLOPs",
          (unsigned long long)pb_opcounts_flops(&got, PB_OPO_METHOD));
    float maxd = 0;
    for (int i = 0; i < C; i++) maxd = fmaxf(maxd, fabsf(merged[i] - unmerged[i]));
    CHECK(maxd <= 0.01f * effect, "merged logits differ from unmerged by %g (method effect %g)", (double)maxd,
          (double)effect);
    printf("  merged: %llu FLOPs (method 0), |logits merged - unmerged| = %.2g\n",
           (unsigned long long)pb_opcounts_flops(&got, -1), (double)maxd);
    if (!rc) rc = mi.m->unmerge(mi.ctx, &m);
    CHECK(rc == PB_OK, "unmerge: %s", pb_last_error());
    if (!rc) rc = count_infer(&m, ids, types, mask, 1, &got);
    CHECK(rc == PB_OK && compare("unmerged again", &got, &rep.infer), "%s: counts after unmerge differ", label);
  }
  uint64_t method_flops = pb_opcounts_flops(&rep.infer, PB_OPO_METHOD);
  pb_method_destroy(&mi);
  pb_model_free(&m);
  return method_flops;
}

static void shape(pb_config *c, int d, int L, int A, int F, int C) {
  pb_config_default(c, C);
  c->vocab_size = 50;
  c->hidden = d;
  c->layers = L;
  c->heads = A;
  c->ffn = F;
  c->max_pos = 16;
  c->hidden_dropout = c->attn_dropout = 0.1f;
}

int main(void) {
  pb_config shapes[3];
  shape(&shapes[0], 16, 2, 2, 24, 2);
  shape(&shapes[1], 24, 3, 4, 40, 3);
  shape(&shapes[2], 32, 1, 1, 16, 1); /* regression head */
  int n_configs = 0;
  for (int s = 0; s < 3; s++) {
    uint64_t lc_tokens = 0, lc_cls = 0;
    for (int i = 0; i < pb_ops_ref_count(); i++) {
      const pb_ops_refconfig *r = pb_ops_ref_at(i);
      uint64_t f = check_config(&shapes[s], r->label, r->method, r->options);
      if (strstr(r->label, "layerconnect") && strstr(r->label, "tokens")) lc_tokens = f;
      if (strstr(r->label, "layerconnect") && strstr(r->label, "cls")) lc_cls = f;
      n_configs++;
    }
    for (size_t i = 0; i < sizeof extras / sizeof extras[0]; i++, n_configs++)
      check_config(&shapes[s], extras[i].label, extras[i].method, extras[i].opts);
    printf("layerconnect method FLOPs per example: tokens %llu, cls %llu\n", (unsigned long long)lc_tokens,
           (unsigned long long)lc_cls);
    CHECK(lc_cls > 0 && lc_cls * T == lc_tokens, "scope=cls should add 1/T of scope=tokens (%llu vs %llu)",
          (unsigned long long)lc_cls, (unsigned long long)lc_tokens);
  }
  printf("%d method configurations x shapes checked\n", n_configs);
  for (int i = 0; i < pb_method_count(); i++)
    CHECK(pb_method_at(i)->ops == NULL, "method %s still has a hand-written ops member", pb_method_at(i)->name);
  /* counting-only reports at bert-base: inference 1x128 (+ merged) and a 32x128 training step */
  double t0 = pb_wall_seconds();
  for (int i = 0; i < pb_ops_ref_count(); i++) {
    pb_config base;
    pb_config_bert_base(&base, 2);
    pb_ops_report r;
    const pb_ops_refconfig *ref = pb_ops_ref_at(i);
    CHECK_OK(pb_ops_report_for(&base, ref->method, ref->options, 128, 32, 128, &r));
  }
  double dt = pb_wall_seconds() - t0;
  printf("bert-base counting-only reports of %d configurations: %.1f ms (%.2f ms each)\n", pb_ops_ref_count(),
         1e3 * dt, 1e3 * dt / pb_ops_ref_count());
  CHECK(dt < 5.0, "counting-only reports took %.1f s: counting mode is doing arithmetic", dt);
  printf("%s (%d failures)\n", failures ? "FAILED" : "OK", failures);
  return failures ? 1 : 0;
}
