/* The analytic operation + parameter report of a declared model with a method attached:
 * no memory, no weights, no data. Used by `peftbench ops` (harness/opscmd.c), by the
 * baseline check and by `run` (the "ops" block of a result record).
 *
 * Counts come from pb_bert_ops (backbone + head owners) plus the method's `ops` member
 * (method owner) plus, for a training step, gradient clipping and AdamW (optimizer owner,
 * pb_optimizer_step_ops: 15 FLOP + 1 TRANS per trainable element + 2 FLOP + 1 TRANS, as
 * pb_params_clip_grad_norm and pb_adamw_step charge). They are the same formulas the kernels charge,
 * so they equal the instrumented counts exactly (tests/test_opcount.c). */
#ifndef PB_OPSREPORT_H
#define PB_OPSREPORT_H

#include <stddef.h>
#include <stdint.h>

#include <cjson/cJSON.h>

#include "methods/method.h"

typedef struct {
  int T;                     /* inference length of one example (B = 1) */
  int train_B, train_T;      /* shape of the training step */
  pb_opcounts infer;         /* one example at T, all owners, method unmerged */
  int has_merge;             /* the method has merge/unmerge (LoRA) */
  pb_opcounts infer_merged;  /* one example at T with the method merged (== infer when !has_merge) */
  pb_opcounts train_step;    /* forward + loss + backward + AdamW at train_B x train_T */
  uint64_t p_backbone, p_method, p_head; /* parameters by owner */
  uint64_t p_trainable, p_stored, p_all;
  char params_report[192];   /* pb_params_report line (HF PEFT style) */
  char method_name[32];      /* "lora" */
  char method_desc[256];     /* the method's describe(): "r=8,alpha=16,..." */
} pb_ops_report;

/* Fills *out for model m (pb_model_declare'd, method attached; alloc not needed) and the method
 * instance mi (NULL = plain backbone, head-only training). T, train_B, train_T > 0. */
/* Adds the analytic ops of one forward over B x T real tokens (+ loss and backward when
 * training) of the backbone and the method (merged: its merged inference count) into *out. */
int pb_model_ops_add(const pb_model *m, const pb_method_inst *mi, int B, int T, int training, int merged,
                     pb_opcounts *out);
int pb_ops_report_compute(const pb_model *m, const pb_method_inst *mi, int T, int train_B, int train_T,
                          pb_ops_report *out);

/* Convenience: declares a model of cfg, creates method `name` with options (NULL-terminated
 * "k=v" list or NULL) and attaches it. On success the caller owns m and mi
 * (pb_model_free + pb_method_destroy); on failure both are released. */
int pb_ops_model_build(pb_model *m, pb_method_inst *mi, const pb_config *cfg, const char *name,
                       const char *const *options);

/* One-shot: build + compute + free. */
int pb_ops_report_for(const pb_config *cfg, const char *name, const char *const *options, int T, int train_B,
                      int train_T, pb_ops_report *out);

/* JSON object:
 * {"method", "method_desc", "T", "inference": OPS, "per_token": OPS (/T),
 *  "method_merged": OPS | null, "train_step": OPS, "train_step_shape": [B, T],
 *  "params": {"backbone", "method", "head", "trainable", "stored", "all", "trainable_pct", "report"}}
 * with OPS as harness/results.h pb_ops_json. */
cJSON *pb_ops_report_json(const pb_ops_report *r);

/* Formats v (>= 0) with thousands separators and `decimals` digits after the point
 * ("1,234.5"); decimals 0 gives an integer. */
void pb_fmt_num(char *buf, size_t n, double v, int decimals);

#endif
