/* `peftbench ops`: analytic op counts and parameters of a method on a model shape, without
 * data and without training; and the op-count regression baseline (results/ops-baseline.json).
 *
 *   peftbench ops --method M [-o key=value ...] [--model DIR | --shape base|default|L,H,A,F
 *                 [--vocab-size V]] [--seq T (128)] [--batch B (32)] [--labels C (2)] [--json]
 *   peftbench ops --method all ...            every registered method at its defaults
 *   peftbench ops --check FILE [--update]     recompute the reference configurations; exit 0 if
 *                                             FILE matches, 1 with a diff if not, 2 if FILE is
 *                                             missing or malformed; --update rewrites FILE.
 * Exit codes: 0 ok, 1 baseline differs, 2 usage / input error (one line on stderr). */
#ifndef PB_OPSCMD_H
#define PB_OPSCMD_H

#include <stdio.h>

#include <cjson/cJSON.h>

#define PB_OPS_BASELINE_SCHEMA "peftbench-ops-baseline/1"
#define PB_OPS_BASELINE_T 128       /* inference length per example */
#define PB_OPS_BASELINE_TRAIN_B 32  /* training step batch (the usual GLUE fine-tuning batch) */
#define PB_OPS_BASELINE_TRAIN_T 128 /* training step length */
#define PB_OPS_BASELINE_LABELS 2    /* classifier labels C */

/* A reference method configuration of the baseline. */
typedef struct {
  const char *label;          /* key in the baseline: "lora r=8 alpha=16 q,v" */
  const char *method;         /* registry name */
  const char *const *options; /* NULL-terminated "k=v" list (static) */
} pb_ops_refconfig;

int pb_ops_ref_count(void);
const pb_ops_refconfig *pb_ops_ref_at(int i);

/* Computes the baseline document for the current code (every reference configuration at
 * bert-base and at the embedded default shape). NULL + pb_set_error on failure (including a
 * count that would not be exact in a JSON double, >= 2^53). Object keys are sorted. */
cJSON *pb_ops_baseline_build(void);

/* Writes a readable diff of baseline `old` against `cur` to out (one line per differing
 * counter: "bert-base / lora r=8 alpha=16 q,v / train_step.method.matmul_macs: old -> new
 * (delta)"); returns the number of differences. Informational fields ("desc", "regenerate",
 * "note") are not compared. */
int pb_ops_baseline_diff(const cJSON *old, const cJSON *cur, FILE *out);

/* The `ops` subcommand; argv[0] = "ops". Returns the process exit code (0, 1 or 2). */
int pb_cmd_ops(int argc, char **argv);

#endif
