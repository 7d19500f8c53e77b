/* Progress on stderr: a redrawn bar when stderr is a terminal, plain lines (every ~5% or
 * every 30 s) otherwise, so logs stay readable. */
#ifndef PB_PROGRESS_H
#define PB_PROGRESS_H

typedef struct {
  const char *label; /* "train", "eval", "pretrain" */
  long total;        /* steps (0 = unknown) */
  int tty;           /* stderr is a terminal */
  double t0;         /* start (monotonic seconds) */
  double last_print; /* time of the last plain line */
  long last_step;
  int quiet;
} pb_progress;

void pb_progress_begin(pb_progress *p, const char *label, long total, int quiet);
/* step: 1-based; items: examples (or tokens) processed so far; loss may be NAN */
void pb_progress_update(pb_progress *p, long step, double items, double loss, const char *unit);
void pb_progress_end(pb_progress *p);

#endif
