/* Instrumented op counts == analytic op counts, exactly, for every method configuration.
 *
 * For each reference configuration of the ops baseline (harness/opscmd.c) plus a few extra
 * option combinations, on three small shapes with dropout 0.1, the model is built and run:
 *  - inference: pb_forward (training 0) of one example (B=1, T=7, all tokens real) counted by
 *    pb_opc (every owner) == pb_ops_report_compute().infer (pb_bert_ops + the method's ops);
 *  - training: forward + backward at B=2, T=7 + clipping + AdamW (optimizer owner) == .train_step;
 *  - methods with merge (LoRA): merged forward == .infer_merged with a zero method owner, the
 *    merged logits equal the unmerged ones, and after unmerge the count is back to .infer;
 *  - LayerConnect: scope=cls adds fewer ops than scope=tokens.
 * A mismatch prints every differing counter (owner.kind: instrumented vs analytic). */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "backbone/bert.h"
#include "backbone/status.h"
#include "counters/opcount.h"
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
    printf("  %s: instrumented != analytic\n", what);
    for (int o = 0; o < PB_OPO_COUNT; o++)
      for (int k = 0; k < PB_OPK_COUNT; k++)
        if (got->c[o][k] != want->c[o][k])
          printf("    %s.%s: instrumented %llu analytic %llu (delta %+lld)\n", pb_opowner_name(o), pb_opkind_name(k),
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
static int count_infer(pb_model *m, const int *ids, const int *types, const int *mask, int B, pb_opcounts *out) {
  int rc = pb_forward(m, ids, types, mask, B, T, NULL, NULL, 0, 0, NULL);
  pb_opc_reset();
  pb_opc_enable(1);
  if (!rc) rc = pb_forward(m, ids, types, mask, B, T, NULL, NULL, 0, 0, NULL);
  pb_opc_enable(0);
  *out = pb_opc_snapshot();
  return rc;
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

  /* merged inference (after the step the method's weights are non-trivial) */
  if (rep.has_merge) {
    const int C = cfg->num_labels;
    float unmerged[4 * 8], merged[4 * 8], plain[4 * 8];
    /* the backbone alone (hooks off), to show the method changes the logits after the step */
    const pb_hook_ops *hooks = m.hooks;
    void *hctx = m.hook_ctx;
    m.hooks = NULL;
    rc = pb_forward(&m, ids, types, mask, 1, T, NULL, NULL, 0, 0, NULL);
    memcpy(plain, m.acts.logits, (size_t)C * sizeof(float));
    m.hooks = hooks;
    m.hook_ctx = hctx;
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
  printf("%s (%d failures)\n", failures ? "FAILED" : "OK", failures);
  return failures ? 1 : 0;
}
