/* What makes a run what it is: its training configuration as one flat JSON object (every
 * setting that changes what is trained or evaluated, except the task and the seed), a short
 * id of that object, the unique names of the files a run writes, and the task head's origin.
 *
 * "config" keys (record field "config", harness/results.h): method, method_desc, backbone
 * (fingerprint), vocab_sha256, lower_case, data_sha256 (of the train and eval files' bytes,
 * so the same data anywhere is the same), data_seed, max_train,
 * max_eval, max_len, epochs, steps, batch, lr (the effective one), warmup_ratio,
 * weight_decay, hidden_dropout, attn_dropout, merge_eval, new_head, max_grad_norm, and with
 * --teacher distill {teacher_sha256, alpha, temperature, beta}.
 * "config_id": the first 8 hex digits of the SHA-256 of the object printed unformatted in
 * that key order. Two runs with the same config_id and seed trained the same thing. */
#ifndef PB_RUNCONFIG_H
#define PB_RUNCONFIG_H

#include <stddef.h>

#include <cjson/cJSON.h>

#include "backbone/bert.h"
#include "harness/glue.h"

typedef struct {
  const char *method, *method_desc, *fingerprint, *vocab_sha256, *data_sha256;
  int lower_case;
  unsigned long long data_seed;
  int max_train, max_eval, max_len, epochs, steps, batch;
  double lr, warmup_ratio, weight_decay, hidden_dropout, attn_dropout;
  int merge_eval, new_head;
  double max_grad_norm;     /* gradient clipping (0 = off) */
  const char *precision;    /* "fp32" or "bf16": a key only for bf16, so fp32 runs keep their old ids */
  cJSON *distill;           /* run --teacher: its "distill" object, appended last (taken); NULL: no key,
                               so the ids of runs without a teacher are unchanged */
} pb_run_config;

/* The "config" object (caller frees). */
cJSON *pb_run_config_json(const pb_run_config *c);
/* 8 hex digits + NUL of a config object (see above). */
int pb_config_id(const cJSON *config, char out[9]);

/* A stem "dir/base" (or "dir/base-2", "-3", ...) such that no "<stem>.safetensors" and no
 * "<stem>.*.predictions.tsv" of the given splits exists yet. Writers still create with
 * no-replace, so a racing run cannot be overwritten either. */
int pb_unique_stem(const char *dir, const char *base, const char *const *splits, int n_splits, char *out,
                   size_t n);

/* The splits `--test` predicts for a task: its unlabelled test split(s) (MNLI: test_matched
 * and test_mismatched, and the diagnostic "ax" when the registry has it). Returns the count;
 * names into out[cap]. */
int pb_task_test_splits(const pb_task *task, const char **out, int cap);

/* The task head of a model just built by pb_build_model (m->hf_head says what the HF
 * checkpoint held): a classifier of another shape is refused (PB_ERR_SHAPE naming both
 * shapes) unless new_head; a fitting one is kept unless new_head, in which case the head is
 * re-initialised exactly as it would be without a checkpoint head (same seed). Writes
 * "checkpoint" or "initialised" into source and one readable sentence into detail. */
int pb_resolve_head(pb_model *m, const char *model_dir, int pretrained, int new_head, unsigned long long seed,
                    char *source, size_t ns, char *detail, size_t nd);

/* The label order of a loaded checkpoint head (config.json "id2label"): when its names are the
 * task's label strings in another order (case-insensitive; e.g. an MNLI head saved as
 * contradiction/entailment/neutral), the classifier's rows are permuted into the task's
 * order. Generic names (LABEL_0, ...) or none: the task's order is assumed. Other names that
 * do not match the task: PB_ERR_FORMAT naming config.json (the mapping cannot be known).
 * Writes one sentence about what was done into note. */
int pb_head_label_map(pb_model *m, const char *model_dir, const pb_task *task, char *note, size_t n);

#endif
