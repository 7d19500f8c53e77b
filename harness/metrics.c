/* GLUE metrics (conventions in metrics.h). */
#include "harness/metrics.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "util/status.h"
#include "harness/glue.h"

const char *pb_metric_name(pb_metric_id m) {
  switch (m) {
    case PB_METRIC_ACC: return "accuracy";
    case PB_METRIC_F1: return "f1";
    case PB_METRIC_MCC: return "mcc";
    case PB_METRIC_PEARSON: return "pearson";
    case PB_METRIC_SPEARMAN: return "spearman";
  }
  return "unknown";
}

double pb_accuracy(const int *pred, const int *gold, int n) {
  if (n <= 0) return 0.0;
  long ok = 0;
  for (int i = 0; i < n; i++) ok += pred[i] == gold[i];
  return (double)ok / (double)n;
}

/* 2x2 confusion counts with class 1 positive, everything else negative. */
static void confusion(const int *pred, const int *gold, int n, double *tp, double *fp,
                      double *fn, double *tn) {
  long a = 0, b = 0, c = 0, d = 0;
  for (int i = 0; i < n; i++) {
    int p = pred[i] == 1, g = gold[i] == 1;
    if (p && g) a++;
    else if (p && !g) b++;
    else if (!p && g) c++;
    else d++;
  }
  *tp = (double)a;
  *fp = (double)b;
  *fn = (double)c;
  *tn = (double)d;
}

double pb_f1(const int *pred, const int *gold, int n) {
  double tp, fp, fn, tn;
  confusion(pred, gold, n > 0 ? n : 0, &tp, &fp, &fn, &tn);
  if (tp == 0.0) return 0.0; /* precision + recall == 0, or undefined: sklearn gives 0 */
  return 2.0 * tp / (2.0 * tp + fp + fn);
}

double pb_mcc(const int *pred, const int *gold, int n) {
  double tp, fp, fn, tn;
  confusion(pred, gold, n > 0 ? n : 0, &tp, &fp, &fn, &tn);
  double den = (tp + fp) * (tp + fn) * (tn + fp) * (tn + fn);
  if (den == 0.0) return 0.0;
  return (tp * tn - fp * fn) / sqrt(den);
}

/* Pearson correlation over double arrays; 0 for n < 2 or zero variance. */
static double pearson_d(const double *x, const double *y, int n) {
  if (n < 2) return 0.0;
  double mx = 0, my = 0;
  for (int i = 0; i < n; i++) {
    mx += x[i];
    my += y[i];
  }
  mx /= n;
  my /= n;
  double sxy = 0, sxx = 0, syy = 0;
  for (int i = 0; i < n; i++) {
    double dx = x[i] - mx, dy = y[i] - my;
    sxy += dx * dy;
    sxx += dx * dx;
    syy += dy * dy;
  }
  if (sxx == 0.0 || syy == 0.0) return 0.0;
  double r = sxy / sqrt(sxx * syy);
  if (r > 1.0) r = 1.0; /* rounding */
  if (r < -1.0) r = -1.0;
  return r;
}

double pb_pearson(const float *x, const float *y, int n) {
  if (n < 2) return 0.0;
  double *d = malloc(2 * (size_t)n * sizeof *d);
  if (!d) return 0.0;
  for (int i = 0; i < n; i++) {
    d[i] = x[i];
    d[n + i] = y[i];
  }
  double r = pearson_d(d, d + n, n);
  free(d);
  return r;
}

typedef struct {
  float v; /* value */
  int i;   /* original index */
} vi_pair;

static int cmp_vi(const void *a, const void *b) {
  const vi_pair *x = a, *y = b;
  if (x->v < y->v) return -1;
  if (x->v > y->v) return 1;
  return (x->i > y->i) - (x->i < y->i);
}

/* rank[i] = 1-based rank of v[i]; ties get the average of their ranks. tmp: [n] scratch.
 * v must hold no NaN. */
static void average_ranks(const float *v, int n, vi_pair *tmp, double *rank) {
  for (int i = 0; i < n; i++) {
    tmp[i].v = v[i];
    tmp[i].i = i;
  }
  qsort(tmp, (size_t)n, sizeof *tmp, cmp_vi);
  for (int i = 0; i < n;) {
    int j = i;
    while (j + 1 < n && tmp[j + 1].v == tmp[i].v) j++;
    double r = 0.5 * ((double)(i + 1) + (double)(j + 1)); /* mean of ranks i+1 .. j+1 */
    for (int k = i; k <= j; k++) rank[tmp[k].i] = r;
    i = j + 1;
  }
}

double pb_spearman(const float *x, const float *y, int n) {
  if (n < 2) return 0.0;
  for (int i = 0; i < n; i++)
    if (isnan(x[i]) || isnan(y[i])) return NAN;
  vi_pair *idx = malloc((size_t)n * sizeof *idx);
  double *r = malloc(2 * (size_t)n * sizeof *r);
  if (!idx || !r) {
    free(idx);
    free(r);
    return 0.0;
  }
  average_ranks(x, n, idx, r);
  average_ranks(y, n, idx, r + n);
  double rho = pearson_d(r, r + n, n);
  free(idx);
  free(r);
  return rho;
}

int pb_task_metrics(const pb_task *t, const int *pred, const int *gold, const float *pred_f,
                    const float *gold_f, int n, pb_metric_set *out) {
  if (!out) return pb_set_error(PB_ERR_ARG, "pb_task_metrics: no output");
  memset(out, 0, sizeof *out);
  if (!t) return pb_set_error(PB_ERR_ARG, "pb_task_metrics: no task");
  if (n <= 0) return pb_set_error(PB_ERR_ARG, "%s metrics: no examples (n = %d)", t->name, n);
  if (t->is_regression ? (!pred_f || !gold_f) : (!pred || !gold))
    return pb_set_error(PB_ERR_ARG, "%s metrics: missing %s predictions or gold values", t->name,
                        t->is_regression ? "float" : "class");
  double sum = 0.0;
  for (int k = 0; k < t->n_metrics && k < PB_MAX_METRICS; k++) {
    double v = 0.0;
    switch (t->metrics[k]) {
      case PB_METRIC_ACC: v = pb_accuracy(pred, gold, n); break;
      case PB_METRIC_F1: v = pb_f1(pred, gold, n); break;
      case PB_METRIC_MCC: v = pb_mcc(pred, gold, n); break;
      case PB_METRIC_PEARSON: v = pb_pearson(pred_f, gold_f, n); break;
      case PB_METRIC_SPEARMAN: v = pb_spearman(pred_f, gold_f, n); break;
    }
    out->v[out->n].name = pb_metric_name(t->metrics[k]);
    out->v[out->n].value = v;
    out->n++;
    sum += v;
  }
  out->score = out->n ? sum / out->n : 0.0;
  return PB_OK;
}

double pb_metric_mean_score(const pb_metric_set *sets, int n) {
  if (!sets || n <= 0) return 0.0;
  double s = 0.0;
  for (int i = 0; i < n; i++) s += sets[i].score;
  return s / n;
}

int pb_metric_get(const pb_metric_set *s, const char *name, double *value) {
  if (!s || !name) return 0;
  for (int i = 0; i < s->n; i++)
    if (strcmp(s->v[i].name, name) == 0) {
      if (value) *value = s->v[i].value;
      return 1;
    }
  return 0;
}
