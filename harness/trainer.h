/* The one training loop (harness/trainer.c) of every command that trains a model: `run`
 * (fine-tuning a GLUE head, harness/run.c) and `pretrain` (masked-language-model pre-training,
 * harness/pretrain.c); distillation and retrieval training plug in the same way.
 *
 * The caller owns the model, the data and the objective and hands the loop two callbacks:
 * a batch source (step t's batch: GLUE examples, masked packed sequences, ...) and an
 * objective (forward + loss + backward of that batch, accumulating into the parameter table's
 * gradients). The loop owns everything generic, step t = 1-based optimizer step:
 *
 *   zero the gradients -> batch(t) -> objective(t) -> [global gradient-norm clipping]
 *   -> AdamW step t (the schedule is the pb_adamw's: PB_SCHED_HF for run, one-based for
 *   pretrain; clipping and AdamW are charged to the OPTIM op owner) -> the resumable state
 *   (steps, items, loss window) -> after_step (logs, curves) -> progress line
 *   -> stop? (the last step; after it nothing else is looked at) -> interrupted? (SIGINT /
 *   SIGTERM flag, --stop-after) -> time limit? -> periodic (every N-th step: validation,
 *   checkpoints)
 *
 * A gradient norm that is not finite stops the loop with PB_ERR_NUMERIC (the caller's
 * `diverged` callback words the message); an error of a callback stops it with that status.
 * Resuming: pass the state saved with the run's checkpoint (pb_train_state) and the same
 * callbacks; step t's work must depend only on (options, t, weights, optimizer state) for a
 * resumed run to reproduce an uninterrupted one (pretrain's does). */
#ifndef PB_TRAINER_H
#define PB_TRAINER_H

#include <signal.h>

#include "backbone/params.h"
#include "harness/progress.h"

/* ---------------------------------------------------------------- interrupts
 * One SIGINT/SIGTERM flag for every training command. The loop looks at it between steps
 * (so a step always finishes); a command may also look at it after the loop (run: a signal
 * during the last step still means "interrupted"). */
extern volatile sig_atomic_t pb_train_stop_flag;

typedef struct {
  struct sigaction old_int, old_term;
} pb_train_signals;

/* Installs the handler for SIGINT and SIGTERM: it sets pb_train_stop_flag; with second_exits
 * a second signal while the flag is set ends the process at once (_exit(130); `run`, whose
 * results are appended atomically), else it changes nothing (`pretrain`, which is writing its
 * checkpoint). saved (may be NULL) receives the previous handlers for pb_train_signals_restore. */
void pb_train_signals_install(pb_train_signals *saved, int second_exits);
void pb_train_signals_restore(const pb_train_signals *saved);

/* ---------------------------------------------------------------- batches */

/* One step's batch as the batch source fills it (pointers into the source's buffers; valid
 * until its next call). An objective reads the fields it needs. */
typedef struct {
  int B, T;           /* rows, positions of this batch (T: its longest row) */
  const int *ids;     /* [B*T] token ids (as the model sees them: masked for MLM) */
  const int *types;   /* [B*T] token types (NULL: all 0) */
  const int *mask;    /* [B*T] attention mask, 1 real / 0 padding */
  const int *labels;  /* [B] class labels (classification), [B*T] MLM targets (PB_MLM_IGNORE
                         where not predicted), or NULL */
  const float *targets;   /* [B] regression targets, or NULL */
  const int *pair_labels; /* [B] next-sentence labels (pretrain --nsp), or NULL */
  long items;         /* what the progress rate and pb_train_state.items count: examples or real
                         tokens */
} pb_batch;

/* ---------------------------------------------------------------- state */

#define PB_TRAIN_WINDOW 100 /* the running mean: the last (up to) 100 step losses */

/* What a resumed run needs of the loop's past (saved in its checkpoint by the caller). */
typedef struct {
  int step;                      /* optimizer steps done; the next step is step + 1 */
  long items;                    /* items (pb_batch.items) of every step done */
  double seconds;                /* training seconds of earlier runs (the caller adds this run's) */
  float window[PB_TRAIN_WINDOW]; /* ring: window[(t-1) % PB_TRAIN_WINDOW] is step t's loss */
  int win_n;                     /* losses in the ring (<= PB_TRAIN_WINDOW) */
} pb_train_state;

/* mean of the losses in the ring (NAN when none) */
double pb_train_window_mean(const pb_train_state *st);
/* mean of another ring of the same steps (e.g. a second loss the caller keeps beside it) */
double pb_train_ring_mean(const pb_train_state *st, const float *ring);

/* ---------------------------------------------------------------- callbacks */

/* What a step did, for after_step and periodic. */
typedef struct {
  int t;            /* the step (1-based) */
  float loss;       /* the objective's loss */
  double grad_norm; /* global gradient norm before clipping (NAN when not computed) */
  int clipped;      /* clipping scaled the gradients down */
  float lr;         /* learning rate of this step (the schedule's) */
  long items;       /* this step's items */
  long items_run;   /* items of this call's steps */
  double t_start;   /* wall clock (pb_wall_seconds) when this call's loop began */
  double t_run;     /* seconds from t_start to the end of this step's optimizer update */
} pb_train_step;

/* A versioned table in the style of methods/method.h; optional members may be NULL; every
 * member returns a status (PB_OK or negative, with pb_set_error). */
typedef struct {
  int version; /* PB_TRAINER_OPS_VERSION */
  /* required: step t's batch into *b (the gradients are already zeroed) */
  int (*batch)(void *ctx, int t, pb_batch *b);
  /* required: forward, loss and backward of b; the gradients accumulate into the table */
  int (*objective)(void *ctx, int t, const pb_batch *b, float *loss);
  /* optional: after step t's update and state (logs, loss curves) */
  int (*after_step)(void *ctx, const pb_train_step *s);
  /* optional: after every `every`-th step that is not the last and did not stop the loop
   * (validation, checkpoints) */
  int (*periodic)(void *ctx, const pb_train_step *s);
  /* optional: words the error of a non-finite gradient norm at step t and returns
   * PB_ERR_NUMERIC (default: "training diverged at step t (gradient norm g)") */
  int (*diverged)(void *ctx, int t, double grad_norm);
} pb_trainer_ops;
#define PB_TRAINER_OPS_VERSION 1

/* ---------------------------------------------------------------- the loop */

typedef struct {
  const pb_trainer_ops *ops;
  void *ctx;              /* the callbacks' first argument */
  pb_params *params;      /* the table: gradients, clipping, AdamW */
  const pb_adamw *opt;    /* AdamW and its schedule (opt->total_steps is the caller's business) */
  int total;              /* the loop runs steps state.step + 1 .. total */
  double clip;            /* global gradient-norm clipping at this norm; 0 = none */
  double clip_eps;        /* pb_params_clip_grad_norm's eps: PB_CLIP_EPS_TORCH (run) or 0 (pretrain) */
  int norm_always;        /* compute the norm even without clipping (pretrain logs it) */
  int first_step_always;  /* the stop flag is not looked at before the first step of this call
                             (pretrain: every call, a resumed one too, makes progress); else a
                             flag set before the loop trains nothing (run) */
  int stop_after;         /* stop as if interrupted after this many steps of this call (0: never) */
  double time_limit_s;    /* stop after a step that ends this many seconds into this call (0: none) */
  int every;              /* periodic() after every every-th step (0: never) */
  /* progress on stderr (harness/progress.h) */
  const char *label;      /* "train", "pretrain" */
  const char *unit;       /* what pb_batch.items counts: "ex", "tokens" */
  int progress_style;     /* PB_PROGRESS_STEPS or PB_PROGRESS_TIMED */
  int quiet;
} pb_trainer_opts;

typedef enum { PB_TRAIN_COMPLETED = 0, PB_TRAIN_INTERRUPTED = 1, PB_TRAIN_TIME_LIMIT = 2 } pb_train_stop;

typedef struct {
  int stop;          /* pb_train_stop: why the loop ended (meaningful when it returned PB_OK) */
  int start_step;    /* state.step when the call began */
  long items_run;    /* items of this call's steps */
  double t_start;    /* wall clock when the loop began */
} pb_train_result;

/* Runs steps state->step + 1 .. o->total (none when already there), updating *state after
 * every step. Returns PB_OK when it stopped for a reason in res->stop, else the failing status
 * (state then holds the steps done before the failing one). */
int pb_train(const pb_trainer_opts *o, pb_train_state *state, pb_train_result *res);

#endif
