/* What a sweep's runs would cost (`peftbench sweep plan`): per run its optimizer steps (from the
 * training split's size, --max-train, --batch, --epochs / --steps), its exact training op count
 * (steps x the counting-only train step at batch x max-len: an upper bound, since `run` cuts each
 * batch to its longest row) and an estimate of its training time from a short calibration: 3
 * timed training steps (after one warm-up) at batch x max-len for every distinct model
 * configuration, with the threads the run would get. */
#ifndef PB_SWEEPPLAN_H
#define PB_SWEEPPLAN_H

#include <cjson/cJSON.h>

#include "harness/sweepspec.h"

typedef struct {
  long steps;            /* optimizer steps (0: unknown, with a reason in note) */
  double train_flops;    /* steps x train-step FLOPs (NAN: unknown) */
  double step_flops;     /* one train step */
  double sec_per_step;   /* calibrated (NAN: not calibrated) */
  double est_seconds;    /* steps x sec_per_step (NAN: unknown) */
  char note[256];        /* why something is unknown */
} pb_sweep_cost;

/* costs[sw->n]; calibrate 0 skips the timing; threads: per run. A run whose data or model cannot
 * be read gets a note instead of numbers (the plan still prints). */
int pb_sweep_costs(const pb_sweep *sw, int calibrate, int threads, pb_sweep_cost *costs);

#endif
