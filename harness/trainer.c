/* The one training loop (trainer.h). */
#include "harness/trainer.h"

#include <math.h>
#include <string.h>
#include <unistd.h>

#include "util/status.h"
#include "counters/opcount.h"
#include "counters/timing.h"
#include "harness/progress.h"

/* ---------------------------------------------------------------- interrupts */

volatile sig_atomic_t pb_train_stop_flag = 0;
static volatile sig_atomic_t second_signal_exits = 0;

static void on_signal(int sig) {
  (void)sig;
  if (pb_train_stop_flag && second_signal_exits) _exit(130); /* second Ctrl-C: stop now */
  pb_train_stop_flag = 1;
}

void pb_train_signals_install(pb_train_signals *saved, int second_exits) {
  struct sigaction sa;
  memset(&sa, 0, sizeof sa);
  sa.sa_handler = on_signal;
  sigemptyset(&sa.sa_mask);
  second_signal_exits = second_exits;
  sigaction(SIGINT, &sa, saved ? &saved->old_int : NULL);
  sigaction(SIGTERM, &sa, saved ? &saved->old_term : NULL);
}

void pb_train_signals_restore(const pb_train_signals *saved) {
  sigaction(SIGINT, &saved->old_int, NULL);
  sigaction(SIGTERM, &saved->old_term, NULL);
}

/* ---------------------------------------------------------------- state */

double pb_train_ring_mean(const pb_train_state *st, const float *ring) {
  if (st->win_n == 0) return NAN;
  double a = 0;
  int n = st->win_n < PB_TRAIN_WINDOW ? st->win_n : PB_TRAIN_WINDOW;
  for (int i = 0; i < n; i++) a += ring[i];
  return a / n;
}

double pb_train_window_mean(const pb_train_state *st) { return pb_train_ring_mean(st, st->window); }

/* ---------------------------------------------------------------- the loop */

static int default_diverged(int t, double gn) {
  return pb_set_error(PB_ERR_NUMERIC, "training diverged at step %d (gradient norm %g)", t, gn);
}

int pb_train(const pb_trainer_opts *o, pb_train_state *st, pb_train_result *res) {
  const pb_trainer_ops *ops = o->ops;
  memset(res, 0, sizeof *res);
  res->stop = PB_TRAIN_COMPLETED;
  res->start_step = st->step;
  if (!ops || ops->version < 1 || !ops->batch || !ops->objective)
    return pb_set_error(PB_ERR_ARG, "trainer: the batch and objective callbacks are required");
  pb_progress pg;
  pb_progress_begin(&pg, o->label, o->total, o->quiet);
  pg.style = o->progress_style;
  pg.first = st->step;
  pg.unit = o->unit;
  pg.last_step = st->step; /* what pb_progress_end's TIMED line shows when no step runs */
  pg.loss = st->win_n ? st->window[(st->step - 1) % PB_TRAIN_WINDOW] : NAN;
  pg.avg = pb_train_window_mean(st);
  const double t_start = pb_wall_seconds();
  res->t_start = t_start;
  int rc = PB_OK;
  if (!o->first_step_always && pb_train_stop_flag && st->step < o->total) res->stop = PB_TRAIN_INTERRUPTED;
  while (res->stop == PB_TRAIN_COMPLETED && st->step < o->total) {
    const int t = st->step + 1;
    pb_params_zero_grad(o->params);
    pb_batch b;
    memset(&b, 0, sizeof b);
    float loss = NAN;
    if ((rc = ops->batch(o->ctx, t, &b))) break;
    if ((rc = ops->objective(o->ctx, t, &b, &loss))) break;
    /* the optimizer step, as HF's Trainer: clip_grad_norm_(max_norm), AdamW with its schedule */
    const int prev_owner = pb_opc_set_owner(PB_OPO_OPTIM);
    double gn = NAN;
    int clipped = 0;
    if (o->clip > 0 || o->norm_always) {
      gn = pb_params_clip_grad_norm(o->params, o->clip, o->clip_eps, &clipped);
      if (!isfinite(gn)) {
        pb_opc_set_owner(prev_owner);
        rc = ops->diverged ? ops->diverged(o->ctx, t, gn) : default_diverged(t, gn);
        break;
      }
    }
    rc = pb_adamw_step(o->params, o->opt, t);
    pb_opc_set_owner(prev_owner);
    if (rc) break;
    st->step = t;
    st->items += b.items;
    res->items_run += b.items;
    st->window[(t - 1) % PB_TRAIN_WINDOW] = loss;
    if (st->win_n < PB_TRAIN_WINDOW) st->win_n++;
    const pb_train_step rep = {.t = t, .loss = loss, .grad_norm = gn, .clipped = clipped,
                               .lr = pb_adamw_lr(o->opt, t), .items = b.items, .items_run = res->items_run,
                               .t_start = t_start, .t_run = pb_wall_seconds() - t_start};
    if (ops->after_step && (rc = ops->after_step(o->ctx, &rep))) break;
    pb_progress_update_avg(&pg, t, (double)res->items_run, loss, pb_train_window_mean(st), o->unit);
    if (st->step >= o->total) break;
    if (pb_train_stop_flag || (o->stop_after > 0 && st->step - res->start_step >= o->stop_after)) {
      res->stop = PB_TRAIN_INTERRUPTED;
      break;
    }
    if (o->time_limit_s > 0 && rep.t_run >= o->time_limit_s) {
      res->stop = PB_TRAIN_TIME_LIMIT;
      break;
    }
    if (o->every > 0 && st->step % o->every == 0 && ops->periodic && (rc = ops->periodic(o->ctx, &rep))) break;
  }
  /* the STEPS line ends in every case; the TIMED one repeats its last line only after a loop
   * that did not fail (as `pretrain` always did) */
  if (!rc || pg.style == PB_PROGRESS_STEPS) pb_progress_end(&pg);
  return rc;
}
