/* `peftbench run`: train one method on one GLUE task, evaluate on dev, write the task file and
 * append one result record (harness/results.h) to a JSONL file. */
#ifndef PB_RUN_H
#define PB_RUN_H

#include <cjson/cJSON.h>

#include "harness/encode.h"
#include "harness/glue.h"
#include "harness/setup.h"

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
  unsigned long long seed;
  const char *results;      /* JSONL path (NULL = none) */
  const char *out_dir;      /* task files go here */
  const char *events;       /* PAPI events (NULL = default) */
  int merge_eval;           /* evaluate with the method merged (LoRA) */
  int quiet;
  int curve_every;          /* loss-curve sampling (steps) */
} pb_run_opts;

void pb_run_defaults(pb_run_opts *o);
/* Runs everything; on success *result is the record (caller frees). */
int pb_run(const pb_run_opts *o, cJSON **result);
/* Set by the CLI's SIGINT/SIGTERM handler: the run stops after the current step. */
extern volatile int pb_run_interrupted;

/* Evaluates a model on an encoded split (batches of `batch`, each cut to its longest row):
 * the task metrics, and the instrumented ops of the evaluation into *measured (may be NULL). */
int pb_evaluate(pb_model *m, const pb_method_inst *mi, const pb_task *task, const pb_encoded *enc, int batch,
                pb_metric_set *out, pb_opcounts *measured);

#endif
