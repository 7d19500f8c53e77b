#include "harness/progress.h"

#include <math.h>
#include <stdio.h>
#include <unistd.h>

#include "counters/timing.h"

void pb_progress_begin(pb_progress *p, const char *label, long total, int quiet) {
  p->label = label;
  p->total = total;
  p->tty = isatty(STDERR_FILENO);
  p->t0 = pb_wall_seconds();
  p->last_print = p->t0;
  p->last_step = 0;
  p->quiet = quiet;
  p->style = PB_PROGRESS_STEPS;
  p->first = 0;
  p->unit = "";
  p->items = 0;
  p->loss = p->avg = NAN;
}

static void fmt_eta(char *buf, size_t n, double s) {
  if (!(s >= 0) || s > 1e7) {
    snprintf(buf, n, "?");
    return;
  }
  int h = (int)(s / 3600), m = (int)(fmod(s, 3600) / 60), sec = (int)fmod(s, 60);
  if (h) snprintf(buf, n, "%dh%02dm", h, m);
  else snprintf(buf, n, "%dm%02ds", m, sec);
}

/* the TIMED line; force: also between the 30-second marks */
static void timed_line(pb_progress *p, int force) {
  const double now = pb_wall_seconds(), el = now - p->t0;
  const long step = p->last_step;
  if (!force && !p->tty && el - (p->last_print - p->t0) < 30 && step != p->first + 1) return;
  p->last_print = now;
  double rate = el > 0 ? p->items / el : 0;
  double eta = step > p->first ? el / (double)(step - p->first) * (double)(p->total - step) : -1;
  int eh = (int)(eta / 3600), em = (int)fmod(eta / 60, 60), es = (int)fmod(eta, 60);
  fprintf(stderr, "%s%s step %ld/%ld | loss %.4f (avg %.4f) | %.0f %s/s | ETA %dh%02dm%02ds%s", p->tty ? "\r" : "",
          p->label, step, p->total, p->loss, p->avg, rate, p->unit, eh, em, es, p->tty ? "   " : "\n");
  fflush(stderr);
}

void pb_progress_update_avg(pb_progress *p, long step, double items, double loss, double avg, const char *unit) {
  if (p->quiet) return;
  if (p->style == PB_PROGRESS_TIMED) {
    p->last_step = step;
    p->items = items;
    p->loss = loss;
    p->avg = avg;
    p->unit = unit;
    timed_line(p, 0);
    return;
  }
  double now = pb_wall_seconds(), el = now - p->t0;
  int last = p->total > 0 && step >= p->total;
  if (!p->tty) {
    long every = p->total > 20 ? p->total / 20 : 1;
    if (!last && step - p->last_step < every && now - p->last_print < 30) return;
  }
  p->last_print = now;
  p->last_step = step;
  double rate = el > 0 ? items / el : 0;
  char eta[32];
  fmt_eta(eta, sizeof eta, p->total > 0 && step > p->first ? el / (step - p->first) * (p->total - step) : -1);
  char lossbuf[32] = "";
  if (!isnan(loss)) snprintf(lossbuf, sizeof lossbuf, " | loss %.4f", loss);
  if (p->tty) {
    int width = 24, fill = p->total > 0 ? (int)(width * step / p->total) : 0;
    char bar[32];
    for (int i = 0; i < width; i++) bar[i] = i < fill ? '#' : '.';
    bar[width] = 0;
    fprintf(stderr, "\r%s [%s] %ld/%ld%s | %.1f %s/s | ETA %s   ", p->label, bar, step, p->total, lossbuf, rate,
            unit, eta);
  } else {
    fprintf(stderr, "%s step %ld/%ld%s | %.1f %s/s | ETA %s\n", p->label, step, p->total, lossbuf, rate, unit, eta);
  }
  fflush(stderr);
}

void pb_progress_update(pb_progress *p, long step, double items, double loss, const char *unit) {
  pb_progress_update_avg(p, step, items, loss, NAN, unit);
}

void pb_progress_end(pb_progress *p) {
  if (p->quiet) return;
  if (p->style == PB_PROGRESS_TIMED) timed_line(p, 1);
  if (p->tty) fprintf(stderr, "\n");
}
