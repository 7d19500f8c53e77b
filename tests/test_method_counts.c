/* The exact trainable-parameter counts of all four methods at bert-base (DESIGN.md's table),
 * the head counted separately (classifier 768*C + C), the unmerged extra MACs per token of
 * LoRA and the adapters, and the HF-PEFT style report line for LoRA worked out by hand.
 * Declaration only (pb_model_declare + attach): nothing is allocated. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "backbone/bert.h"
#include "util/status.h"
#include "counters/opcount.h"
#include "harness/opsreport.h"
#include "methods/method.h"
#include "tests/check.h"


typedef struct {
  const char *method;
  const char *opts[4];  /* NULL-terminated */
  size_t method_trainable; /* PB_OWNER_METHOD, trainable */
  size_t backbone_trainable;
  long long macs_per_token; /* unmerged inference, counting-only run at B=1,T=1; -1: not checked */
} expect;

static const size_t BERT_BASE = 109482240; /* backbone incl. pooler */

static const expect cases[] = {
    /* 12 layers x 2 sites (q, v) x (8*768 + 768*8) */
    {"lora", {"r=8", "targets=query,value", NULL}, 294912, 0, 294912},
    {"lora", {NULL}, 294912, 0, 294912}, /* the defaults are r=8 on q,v */
    /* 12 x (768*8 + 8 + 8*768 + 768) */
    {"adapter", {"mode=pfeiffer", "r=8", NULL}, 156768, 0, 147456},
    /* two adapters per layer */
    {"adapter", {"mode=houlsby", "r=8", NULL}, 313536, 0, 294912},
    /* K=9 anchors x 2d (g, b) */
    {"layerconnect", {"K=9", NULL}, 13824, 0, -1},
    {"full", {NULL}, 0, 109482240, 0},
};

static int count_case(const expect *e, int C) {
  pb_config c;
  pb_config_bert_base(&c, C);
  pb_model m;
  pb_method_inst in;
  int rc = pb_model_declare(&m, &c);
  if (!rc) rc = pb_method_create(&in, e->method, e->opts);
  if (rc) {
    CHECK(0, "%s: %s", e->method, pb_last_error());
    return rc;
  }
  if ((rc = in.m->attach(in.ctx, &m))) {
    CHECK(0, "%s attach: %s", e->method, pb_last_error());
    pb_method_destroy(&in);
    pb_model_free(&m);
    return rc;
  }
  char desc[256] = "";
  if (in.m->describe) in.m->describe(in.ctx, desc, sizeof desc);
  size_t meth = pb_params_count(&m.params, PB_OWNER_METHOD, 1, 0);
  size_t bb = pb_params_count(&m.params, PB_OWNER_BACKBONE, 1, 0);
  size_t head = pb_params_count(&m.params, PB_OWNER_HEAD, 1, 0);
  size_t bball = pb_params_count(&m.params, PB_OWNER_BACKBONE, 0, 0);
  CHECK(bball == BERT_BASE, "bert-base backbone %zu != 109,482,240", bball);
  CHECK(meth == e->method_trainable, "%s (%s): method trainable %zu != %zu", e->method, desc, meth,
        e->method_trainable);
  CHECK(bb == e->backbone_trainable, "%s (%s): backbone trainable %zu != %zu", e->method, desc, bb,
        e->backbone_trainable);
  CHECK(head == (size_t)768 * C + C, "%s: head %zu != 768*%d + %d", e->method, head, C, C);
  /* what the task file holds: the method's tensors + head (+ the backbone for full) */
  size_t stored = pb_params_count(&m.params, -1, 0, 1);
  CHECK(stored == e->method_trainable + e->backbone_trainable + head, "%s: stored %zu", e->method, stored);
  long long macs = -1;
  if (e->macs_per_token >= 0) {
    pb_opcounts oc;
    memset(&oc, 0, sizeof oc);
    rc = pb_model_ops_add(&m, &in, 1, 1, PB_COUNT_INFER, 0, &oc);
    CHECK(rc == PB_OK, "%s count: %s", e->method, pb_last_error());
    macs = (long long)oc.c[PB_OPO_METHOD][PB_OPK_MAC];
    CHECK(macs == e->macs_per_token, "%s (%s): MACs/token %lld != %lld", e->method, desc, macs, e->macs_per_token);
  }
  if (C == 2)
    printf("  %-12s %-55s method %9zu  backbone %9zu  head %zu  MACs/token %lld\n", e->method, desc, meth, bb, head,
           macs);
  pb_method_destroy(&in);
  pb_model_free(&m);
  return PB_OK;
}

/* HF PEFT style line for LoRA r=8 q,v at bert-base, 2 labels, by hand:
 *   trainable = 294,912 (LoRA) + 1,538 (head 768*2+2)            =     296,450
 *   all       = 109,482,240 (backbone) + 294,912 + 1,538         = 109,778,690
 *   trainable% = 100 * 296,450 / 109,778,690 = 0.270044...        -> "0.2700"
 * (HF PEFT prints all params 109,780,228 for the same model: it also counts the
 * modules_to_save copy of the classifier, 1,538 more; we count every tensor once.) */
static void test_report(void) {
  printf("report line (HF PEFT style) for lora r=8 q,v at bert-base, C=2\n");
  pb_config c;
  pb_config_bert_base(&c, 2);
  pb_model m;
  pb_method_inst in;
  if (pb_model_declare(&m, &c) || pb_method_create(&in, "lora", NULL)) {
    CHECK(0, "%s", pb_last_error());
    return;
  }
  if (in.m->attach(in.ctx, &m)) CHECK(0, "%s", pb_last_error());
  char rep[160];
  pb_params_report(&m.params, rep, sizeof rep);
  const char *want = "trainable params: 296,450 || all params: 109,778,690 || trainable%: 0.2700";
  CHECK(strcmp(rep, want) == 0, "report '%s' != '%s'", rep, want);
  printf("  %s\n", rep);
  pb_method_destroy(&in);
  pb_model_free(&m);
}

int main(void) {
  printf("trainable parameters at bert-base (d=768, L=12), head separate\n");
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++)
    for (int C = 1; C <= 3; C++) count_case(&cases[i], C);
  /* derived ratios quoted by the LayerConnect abstracts */
  printf("  layerconnect/lora = %.2f%% fewer, layerconnect/pfeiffer = %.2f%% fewer\n",
         100.0 * (1.0 - 13824.0 / 294912.0), 100.0 * (1.0 - 13824.0 / 156768.0));
  test_report();
  if (failures) {
    printf("%d check(s) FAILED\n", failures);
    return 1;
  }
  printf("all count checks passed\n");
  return 0;
}
