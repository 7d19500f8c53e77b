/* The operation + parameter report of a model with a method attached: no weights, no data
 * (a declared model is enough). Used by `peftbench ops` (harness/opscmd.c), by the baseline
 * check and by `run` (the "ops" block of a result record).
 *
 * Counts come from execution, not from formulas: pb_model_count runs the real forward (and
 * loss, backward, gradient clipping and AdamW for a training step) in counting-only mode, where
 * every kernel and method hook charges what it would compute and computes nothing
 * (counters/opcount.h). One source of truth; tests/test_opcount.c checks counting-only ==
 * real run for every method configuration. */
#ifndef PB_OPSREPORT_H
#define PB_OPSREPORT_H

#include <stddef.h>
#include <stdint.h>

#include <cjson/cJSON.h>

#include "backbone/latent.h"
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

/* Adds the ops of one forward over B x T real tokens of m as it is (backbone, head, method;
 * flags as pb_model_count: PB_COUNT_TRAIN adds loss + backward, PB_COUNT_CLIP and
 * PB_COUNT_ADAMW the optimizer step) into *out, by a counting-only run. merged != 0 merges the
 * method (when it can: LoRA) for the count and unmerges it after, in counting-only mode (state
 * only, weights untouched); a merged method refuses to train. An example of length t counts
 * as B = 1, T = t. m's values and state are unchanged. */
int pb_model_ops_add(pb_model *m, const pb_method_inst *mi, int B, int T, int flags, int merged, pb_opcounts *out);
/* Fills *out for model m (pb_model_declare'd, method attached; alloc not needed) and the method
 * instance mi (NULL = plain backbone, head-only training). T, train_B, train_T > 0.
 * train_step: forward + loss + backward + clipping (max norm 1) + AdamW at train_B x train_T. */
int pb_ops_report_compute(pb_model *m, const pb_method_inst *mi, int T, int train_B, int train_T,
                          pb_ops_report *out);

/* Convenience: declares a model of cfg, creates method `name` with options (NULL-terminated
 * "k=v" list or NULL) and attaches it. On success the caller owns m and mi
 * (pb_model_free + pb_method_destroy); on failure both are released. */
int pb_ops_model_build(pb_model *m, pb_method_inst *mi, const pb_config *cfg, const char *name,
                       const char *const *options);

/* The same with the slender shapes of an HF folder's config.json applied after declare
 * (pb_model_apply_hf_shape; shape_dir NULL: none) */
int pb_ops_model_build_dir(pb_model *m, pb_method_inst *mi, const pb_config *cfg, const char *shape_dir,
                           const char *name, const char *const *options);

/* One-shot: build + compute + free. */
int pb_ops_report_for(const pb_config *cfg, const char *name, const char *const *options, int T, int train_B,
                      int train_T, pb_ops_report *out);
int pb_ops_report_for_dir(const pb_config *cfg, const char *shape_dir, const char *name, const char *const *options,
                          int T, int train_B, int train_T, pb_ops_report *out);

/* The same for a shared backbone and ODE-step inference: cfg->layers steps over `groups` weight
 * sets (pb_model_declare_shared; 0: unshared, or the folder's own sharing), counted at
 * `ode_steps` S' (pb_model_set_ode_steps after the method attached; 0: all steps). */
int pb_ops_report_for_share(const pb_config *cfg, const char *shape_dir, int groups, int ode_steps, const char *name,
                            const char *const *options, int T, int train_B, int train_T, pb_ops_report *out);

/* The same for a compressed model (backbone/latent.h): layers 1..spec->cut at cfg's width, the
 * encoder half of the map, the layers above at spec's d' (pb_model_set_latent before the method
 * attaches; the map trains per spec->trainable). */
int pb_ops_report_for_latent(const pb_config *cfg, const pb_latent_spec *spec, const char *name,
                             const char *const *options, int T, int train_B, int train_T, pb_ops_report *out);

/* JSON object:
 * {"method", "method_desc", "T", "inference": OPS, "per_token": OPS (/T),
 *  "method_merged": OPS | null, "train_step": OPS, "train_step_shape": [B, T],
 *  "params": {"backbone", "method", "head", "trainable", "stored", "all", "trainable_pct", "report"}}
 * with OPS as harness/results.h pb_ops_json. */
cJSON *pb_ops_report_json(const pb_ops_report *r);
/* A result record's static ops entries from a report computed at T (128, or max_pos when
 * smaller) into jo: inference_T128, per_token_T128, method_merged_T128 (null without a merge),
 * train_step and its [train_B, train_T] shape. */
void pb_ops_report_record_add(cJSON *jo, const pb_ops_report *r, int T, int train_B, int train_T);

/* Formats v (>= 0) with thousands separators and `decimals` digits after the point
 * ("1,234.5"); decimals 0 gives an integer. */
void pb_fmt_num(char *buf, size_t n, double v, int decimals);

#endif
