/* Dynamic inference (early exit) in the harness: evaluation that keeps where every example left,
 * its exact per-example operation count, the `exits` block of a result record, and the result
 * record `peftbench eval --results` writes. Nothing here names a method: a model "has exits"
 * when a hook of its chain has an after_layer member (backbone/hooks.h), and the method that
 * gives them declares the option PB_EXIT_THRESHOLD_KEY (methods/exits.c), which
 * `eval --exit-threshold` sets on the live instance.
 *
 * Per-example exact counts: an example of length t that left after step k (0-based) costs
 * pb_model_count_exit(m, 1, t, k): steps 0..k, the exit heads it ran, and the model's head only
 * when k is the last step; the counting-only run of the model as it is (threshold, merge).
 * flops_static is the same model with the threshold at 0 (exits not evaluated, every example
 * runs every step): "the full model at the same lengths".
 *
 * `exits` (in a result record, and per split in `eval --json`):
 *   {"threshold": num, "examples": int, "steps": S,
 *    "distribution": {"1": int, ..., "S": int}   examples that left after layer k (1-based; S =
 *                                                 ran the whole model, all keys present),
 *    "mean_layer": num,                           mean of those 1-based layers,
 *    "flops_per_example": {"mean", "median", "max", "min"}   total FLOPs (all owners),
 *    "flops_static": num,                          mean FLOPs per example of the static model,
 *    "speedup": num}                               flops_static / flops_per_example.mean */
#ifndef PB_EXITSTATS_H
#define PB_EXITSTATS_H

#include <cjson/cJSON.h>

#include "harness/encode.h"
#include "harness/glue.h"
#include "harness/metrics.h"
#include "harness/setup.h"
#include "methods/method.h"

/* the option a method with exits declares: inference threshold (0 = no early exit) */
#define PB_EXIT_THRESHOLD_KEY "threshold"

/* 1 when some hook of m's chain can finish rows after a step (an after_layer hook) */
int pb_exits_model_has(const pb_model *m);
/* Sets option PB_EXIT_THRESHOLD_KEY of the instance (a composite routes it to the part that
 * declares it). PB_ERR_ARG when the method has no such option or t is out of its range. */
int pb_exits_set_threshold(pb_method_inst *mi, double t);

/* pb_evaluate (harness/run.h) that also gives exit_step [n] (may be NULL): the last step each
 * example ran (0-based; S-1 = the whole model), and adds into *analytic (may be NULL) the
 * counting-only count of the same batches with every row leaving where it did (batch T = its
 * longest row): equal to the instrumented count *measured of the real run (when op counting is
 * enabled). Works for models without exits too (every row runs every step). */
int pb_exits_evaluate(pb_model *m, const pb_method_inst *mi, const pb_task *task, const pb_encoded *enc, int batch,
                      pb_metric_set *out, float *outputs, pb_opcounts *measured, int *exit_step,
                      pb_opcounts *analytic);

/* The threshold the instance has now (parsed from its describe string). PB_ERR_ARG without one. */
int pb_exits_threshold(const pb_method_inst *mi, double *t);

/* The task's main score of always predicting the majority class of e (NAN for regression or an
 * empty split). */
double pb_eval_majority(const pb_task *task, const pb_encoded *e);

/* Per-example exact counts of examples that left at exit_step[i] with length len[i] (model as
 * it is), and of the static model (threshold 0). */
typedef struct {
  int n, cap, steps;       /* examples, capacity, S */
  int *exit_step;          /* [n] */
  int *len;                /* [n] */
  double *flops;           /* [n] total FLOPs of example i */
  double *flops_static;    /* [n] the same example through the static model */
  pb_opcounts sum;         /* sum over examples of the dynamic counts (per owner and kind) */
  pb_opcounts sum_static;  /* the same for the static model */
  double tokens;           /* sum of len */
} pb_exit_stats;

/* Appends n examples. mi is needed for flops_static when the model has exits (its threshold is
 * set to 0 for the static count and back to `threshold` after). */
int pb_exit_stats_add(pb_exit_stats *st, pb_model *m, pb_method_inst *mi, double threshold, const int *exit_step,
                      const int *len, int n);
/* Appends every example of src to dst (same model). */
int pb_exit_stats_append(pb_exit_stats *dst, const pb_exit_stats *src);
void pb_exit_stats_free(pb_exit_stats *st);
/* The `exits` object above (NULL on OOM). */
cJSON *pb_exit_stats_json(const pb_exit_stats *st, double threshold);

/* One evaluated split of `peftbench eval`, for its result record. */
typedef struct {
  const char *name;          /* "dev" */
  int examples;
  int labelled;              /* ms is valid */
  pb_metric_set ms;
  const char *predictions;   /* its prediction file */
  const char *path;          /* its data file (hashed into the config) */
  double majority;           /* majority-class score of the split (NAN: regression/unlabelled) */
} pb_eval_split;

typedef struct {
  const char *task_file;     /* the evaluated task file */
  const pb_task *task;
  const char *method, *method_desc; /* the method as evaluated (describe: threshold included) */
  unsigned long long seed;   /* the task file's seed */
  const char *train_config_id; /* the task file's config_id (NULL for older files) */
  const char *backbone_config; /* JSON text of the task file's backbone_config (may be NULL) */
  const pb_backbone_info *info;
  const char *data_dir;
  int max_len, max_eval, batch, merged;
  int n_splits;
  const pb_eval_split *splits;
  const pb_exit_stats *stats; /* the labelled splits' examples (ops.inference_per_example) */
  int has_exits;
  double threshold;          /* with has_exits */
  int ode_steps;             /* S' of ODE-step inference (eval --ode-steps; 0: all steps) */
  pb_opcounts measured, analytic; /* the instrumented eval and its counting-only twin */
  double wall_s, cpu_s;      /* the evaluation's time */
} pb_eval_record_in;

/* The result record (schema peftbench-result/1, harness/results.h) of one evaluation: "source"
 * "eval"; "config" = {method, method_desc, backbone, vocab_sha256, lower_case, max_len,
 * max_eval, splits, eval_data_sha256, merge_eval, task_file_config, exit_threshold (only with
 * exits), ode_steps (only with ode_steps > 0)}; "ode" = {steps_run S', steps S, step_size S/S',
 * groups G} only with ode_steps > 0; "train", "head" and "counters" null; "ops" as `run`'s, inference_per_example being
 * the mean of the per-example exact counts; "exits" with exits, else null. PB_OK and *out, or
 * an error naming what failed. m/mi: the model as evaluated (for the T = 128 report). */
int pb_eval_record(const pb_eval_record_in *in, pb_model *m, pb_method_inst *mi, cJSON **out);

#endif
