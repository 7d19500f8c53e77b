/* `peftbench run`: train one method on one GLUE task, evaluate on dev, write the task file and
 * append one result record (harness/results.h) to a JSONL file. */
#ifndef PB_RUN_H
#define PB_RUN_H

#include <cjson/cJSON.h>

#include "harness/encode.h"
#include "harness/glue.h"
#include "harness/setup.h"
#include "harness/trainer.h"

#define PB_MAX_METHOD_OPTS 32

typedef struct {
  const char *task, *method;
  const char *method_opts[PB_MAX_METHOD_OPTS + 1]; /* "key=value", NULL-terminated */
  int n_method_opts;
  pb_backbone_opts bb;
  const char *data_dir;
  int epochs, steps;        /* steps > 0 overrides epochs */
  int max_train, max_eval;  /* subsample (0 = all) */
  int batch, max_len, threads;
  double lr;                /* 0 = the method's default_lr, else 1e-3 */
  double warmup_ratio, weight_decay;
  double max_grad_norm;     /* global gradient-norm clipping as HF's Trainer (1.0); 0 = off */
  unsigned long long seed;   /* initialisation, batch order and dropout */
  unsigned long long data_seed; /* the --max-train subsample only (default 0, independent of seed) */
  int predict_test;         /* also write predictions for the task's unlabelled test split(s) */
  int new_head;             /* train a fresh head even when the checkpoint has one */
  int skip_done;            /* do nothing when `results` already has this task, config id and seed */
  const char *results;      /* JSONL path (NULL = none) */
  const char *out_dir;      /* task files go here */
  const char *events;       /* PAPI events (NULL = default) */
  int merge_eval;           /* evaluate with the method merged (LoRA) */
  int quiet;
  int curve_every;          /* loss-curve sampling (steps) */
  const char *teacher;      /* --teacher TASKFILE: distil from it (harness/distill.h; NULL: none) */
  double kd_alpha, kd_temp, kd_beta; /* --kd-alpha (0.5), --kd-temp (1), --kd-hidden (0) */
  int precision;            /* --precision: pb_precision (backbone/bf16.h), PB_PREC_FP32 by default */
} pb_run_opts;

void pb_run_defaults(pb_run_opts *o);
#define PB_RUN_SKIPPED 1 /* positive: --skip-done found the run in the results file (message set) */

/* Runs everything; on success *result is the record (caller frees); PB_RUN_SKIPPED with
 * *result NULL when --skip-done found it done. */
int pb_run(const pb_run_opts *o, cJSON **result);
/* The trainer's SIGINT/SIGTERM flag (harness/trainer.h) under its old name: set, the run
 * stops after the current step and writes nothing. */
#define pb_run_interrupted pb_train_stop_flag

/* Evaluates a model on an encoded split (batches of `batch`, each cut to its longest row):
 * the task metrics into *out (NULL: none, e.g. an unlabelled test split), the model outputs
 * into outputs [n, num_labels] (NULL: not kept) and the instrumented ops of the evaluation
 * into *measured (may be NULL). */
int pb_evaluate(pb_model *m, const pb_method_inst *mi, const pb_task *task, const pb_encoded *enc, int batch,
                pb_metric_set *out, float *outputs, pb_opcounts *measured);
/* After a forward of rows s..s+B-1: their logits into outputs [n, C] (NULL: not kept) and their
 * predictions (class index in pred and predf; regression: the value in predf, pred 0). */
void pb_eval_rows(const pb_model *m, int s, int B, float *outputs, int *pred, float *predf);

#endif
