/* Progress on stderr: a redrawn line when stderr is a terminal, plain lines otherwise, so logs
 * stay readable. Two styles, one per kind of training (harness/trainer.h draws both):
 *   PB_PROGRESS_STEPS  (`run`): plain lines every ~5% of the steps or every 30 s and at the
 *       last step: "train step 8/100 | loss 0.7048 | 94.3 ex/s | ETA 0m01s"
 *   PB_PROGRESS_TIMED  (`pretrain`): plain lines at the first step of this call and then every
 *       30 s, with the running mean, and once more at pb_progress_end:
 *       "pretrain step 6/1000 | loss 10.2860 (avg 10.3042) | 3121 tokens/s | ETA 0h05m10s"
 * Rates and the ETA count from pb_progress_begin and from the steps done before (`first`). */
#ifndef PB_PROGRESS_H
#define PB_PROGRESS_H

enum { PB_PROGRESS_STEPS = 0, PB_PROGRESS_TIMED = 1 };

typedef struct {
  const char *label; /* "train", "eval", "pretrain" */
  long total;        /* steps (0 = unknown) */
  int tty;           /* stderr is a terminal */
  double t0;         /* start (monotonic seconds) */
  double last_print; /* time of the last plain line */
  long last_step;
  int quiet;
  int style;         /* PB_PROGRESS_STEPS (pb_progress_begin) or PB_PROGRESS_TIMED */
  long first;        /* steps done before this call (a resumed run); 0 unless set after begin */
  const char *unit;  /* of the last update ("ex", "tokens") */
  double items, loss, avg; /* of the last update: pb_progress_end's line (TIMED) repeats them */
} pb_progress;

void pb_progress_begin(pb_progress *p, const char *label, long total, int quiet); /* style STEPS */
/* step: 1-based; items: examples (or tokens) processed since begin; loss may be NAN */
void pb_progress_update(pb_progress *p, long step, double items, double loss, const char *unit);
/* the same with the running mean loss avg, printed by the TIMED style */
void pb_progress_update_avg(pb_progress *p, long step, double items, double loss, double avg, const char *unit);
void pb_progress_end(pb_progress *p);

#endif
