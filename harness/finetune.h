/* Fine-tuning on an encoded GLUE training split with the trainer (harness/trainer.h), as
 * `run` does it and as HF's Trainer does: batches of --batch examples in a seeded order that is
 * reshuffled at every epoch (the last batch of an epoch may be short), the task head's loss
 * (cross-entropy, or MSE for regression) through pb_forward / pb_backward with dropout, global
 * gradient-norm clipping (torch's eps) and AdamW with the pb_adamw's schedule (PB_SCHED_HF).
 * Keeps the record's curves: train.loss_curve [step, mean loss since the last point] and, with
 * clipping, train.grad_norm_curve [step, mean pre-clipping norm]. */
#ifndef PB_FINETUNE_H
#define PB_FINETUNE_H

#include <cjson/cJSON.h>

#include "backbone/bert.h"
#include "util/rng.h"
#include "harness/distill.h"
#include "harness/encode.h"

typedef struct {
  pb_model *m;
  const pb_encoded *train;
  int regression;           /* targets (STS-B) instead of labels */
  int B;                    /* --batch */
  unsigned long long seed;  /* batch order (seed ^ 0x5EED) and dropout (pb_hash64(seed * 1000003 + t)) */
  int *ids, *types, *mask;  /* [B, max_len] the batch */
  int *labels;              /* [B] */
  float *targets;           /* [B] */
  int *order;               /* [n] the epoch's order */
  pb_rng order_rng;
  int pos;                  /* next position in order (n: a new epoch starts) */
  /* pb_finetune_train's settings */
  int total;                /* steps */
  float lr;                 /* the peak lr, for the divergence messages */
  int clip;                 /* clipping is on: the norms are known */
  int curve_every;          /* loss-curve sampling (steps) */
  pb_distill *teacher;      /* run --teacher: its forward of each batch before the student's (NULL: none) */
  /* results */
  int steps;                /* steps done */
  cJSON *curve, *gcurve;    /* the curves (gcurve NULL without clipping); the caller may take them */
  double final_loss;        /* the last curve point's mean loss (NAN before one) */
  int n_clipped;            /* steps whose gradients were scaled down */
  double loss_sum, gn_sum;  /* since the last curve point */
  int loss_n;
} pb_finetune;

/* The batch buffers (rows of up to max_len) and an empty loss curve; PB_ERR_NOMEM ("run: out
 * of memory"). */
int pb_finetune_init(pb_finetune *f, pb_model *m, const pb_encoded *train, int regression, int batch, int max_len,
                     unsigned long long seed);
/* Trains `total` steps with opt (its lr and schedule), clipping at max_grad_norm (0: none),
 * a curve point every curve_every steps and at the last. Stops early, between steps, when
 * pb_train_stop_flag is set (f->steps says how far it got; the caller decides what that means).
 * Divergence (a non-finite loss or gradient norm) is PB_ERR_NUMERIC with a message naming the
 * step and the lr. */
int pb_finetune_train(pb_finetune *f, const pb_adamw *opt, int total, double max_grad_norm, int curve_every, int quiet);
void pb_finetune_free(pb_finetune *f);

#endif
