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

void pb_progress_update(pb_progress *p, long step, double items, double loss, const char *unit) {
  if (p->quiet) return;
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
  fmt_eta(eta, sizeof eta, p->total > 0 && step > 0 ? el / step * (p->total - step) : -1);
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

void pb_progress_end(pb_progress *p) {
  if (!p->quiet && p->tty) fprintf(stderr, "\n");
}
