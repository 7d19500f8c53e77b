/* Significance tests (stats.h): Welch's t, permutation test, paired bootstrap, approximate
 * randomisation. The definitions are in stats.h; this file follows them literally. */
#include "harness/stats.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include <gsl/gsl_errno.h>
#include <gsl/gsl_sf_gamma.h>

#include "util/rng.h"
#include "util/status.h"
#include "harness/glue.h"
#include "harness/metrics.h"

#define TIE_TOL 1e-12 /* ties of metric differences (metrics lie in [-1, 1]) */

/* ---------------------------------------------------------------- descriptive */

/* mean = x0 + mean(x - x0): equal values give exactly their value (and variance 0) */
static double mean_of(const double *x, int n) {
  if (n <= 0) return 0.0;
  double s = 0.0;
  for (int i = 0; i < n; i++) s += x[i] - x[0];
  return x[0] + s / n;
}

static double sum_sq_dev(const double *x, int n, double m) {
  double ss = 0.0;
  for (int i = 0; i < n; i++) ss += (x[i] - m) * (x[i] - m);
  return ss;
}

void pb_mean_std(const double *x, int n, double *mean, double *std) {
  double m = mean_of(x, n);
  if (mean) *mean = m;
  if (std) *std = n > 1 ? sqrt(sum_sq_dev(x, n, m) / (n - 1)) : 0.0;
}

double pb_quantile_sorted(const double *s, int n, double p) {
  if (n <= 0) return NAN;
  if (p <= 0) return s[0];
  if (p >= 1) return s[n - 1];
  double h = (double)(n - 1) * p;
  int lo = (int)floor(h);
  if (lo >= n - 1) return s[n - 1];
  double f = h - lo;
  return s[lo] + f * (s[lo + 1] - s[lo]);
}

static int cmp_double(const void *x, const void *y) {
  double a = *(const double *)x, b = *(const double *)y;
  return (a > b) - (a < b);
}

/* ---------------------------------------------------------------- Welch */

/* two-sided P(|T_df| >= |t|) = I_{df/(df+t^2)}(df/2, 1/2) */
static double t_two_sided(double t, double df) {
  if (!isfinite(df) || df <= 0 || isnan(t)) return NAN;
  double x = isinf(t) ? 0.0 : df / (df + t * t);
  gsl_sf_result r;
  gsl_error_handler_t *old = gsl_set_error_handler_off(); /* status codes, not abort() */
  int st = gsl_sf_beta_inc_e(0.5 * df, 0.5, x, &r);
  gsl_set_error_handler(old);
  if (st != GSL_SUCCESS && st != GSL_EUNDRFLW) return NAN;
  double p = st == GSL_EUNDRFLW ? 0.0 : r.val;
  return p < 0 ? 0 : p > 1 ? 1 : p;
}

int pb_welch(const double *a, int n_a, const double *b, int n_b, pb_welch_result *out) {
  if (!out || !a || !b || n_a < 1 || n_b < 1)
    return pb_set_error(PB_ERR_ARG, "Welch's t-test: each group needs at least one value");
  memset(out, 0, sizeof *out);
  out->mean_a = mean_of(a, n_a);
  out->mean_b = mean_of(b, n_b);
  out->var_a = n_a > 1 ? sum_sq_dev(a, n_a, out->mean_a) / (n_a - 1) : 0.0;
  out->var_b = n_b > 1 ? sum_sq_dev(b, n_b, out->mean_b) / (n_b - 1) : 0.0;
  out->diff = out->mean_b - out->mean_a;
  double va = out->var_a / n_a, vb = out->var_b / n_b;
  out->se = sqrt(va + vb);
  out->t = out->df = out->p = NAN;
  if (n_a < 2 || n_b < 2 || !(out->se > 0)) return PB_OK;
  out->t = out->diff / out->se;
  out->df = (va + vb) * (va + vb) / (va * va / (n_a - 1) + vb * vb / (n_b - 1));
  out->p = t_two_sided(out->t, out->df);
  return PB_OK;
}

/* ---------------------------------------------------------------- permutation test */

double pb_binomial(int n, int k) {
  if (k < 0 || n < 0 || k > n) return 0.0;
  if (k > n - k) k = n - k;
  double r = 1.0;
  for (int i = 1; i <= k; i++) {
    r = r * (double)(n - k + i) / (double)i; /* r = C(n-k+i, i): exact while < 2^53 */
    if (r > 1e300) return 1e300;
  }
  return r;
}

int pb_perm_test(const double *a, int n_a, const double *b, int n_b, double max_exact, long samples,
                 uint64_t seed, pb_perm_result *out) {
  if (!out || !a || !b || n_a < 1 || n_b < 1)
    return pb_set_error(PB_ERR_ARG, "permutation test: each group needs at least one value");
  memset(out, 0, sizeof *out);
  const int N = n_a + n_b;
  double *z = malloc((size_t)N * sizeof *z);
  int *c = malloc((size_t)N * sizeof *c);
  if (!z || !c) {
    free(z);
    free(c);
    return pb_set_error(PB_ERR_NOMEM, "permutation test: out of memory (%d values)", N);
  }
  double abs_sum = 0, ma, mb;
  for (int i = 0; i < n_a; i++) z[i] = a[i];
  for (int i = 0; i < n_b; i++) z[n_a + i] = b[i];
  for (int i = 0; i < N; i++) abs_sum += fabs(z[i]);
  pb_mean_std(a, n_a, &ma, NULL);
  pb_mean_std(b, n_b, &mb, NULL);
  out->diff = mb - ma;
  const double tol = 1e-12 * abs_sum;
  /* T = S_B/n_b - (tot - S_B)/n_a is increasing in S_B, the sum of the B group. Splits are
   * drawn as the smaller group G (B when n_b <= n_a, else A, where T decreases in S_A);
   * comparisons are made on sums of G. Exact enumeration sums in index order, as for the
   * observed split, so identical splits give identical sums; Monte Carlo sums in draw order,
   * and tol absorbs that rounding. */
  const int g_is_b = n_b <= n_a;
  const int m = g_is_b ? n_b : n_a;
  const int g0 = g_is_b ? n_a : 0; /* first index of the observed G in z */
  double s_obs = 0;
  for (int i = 0; i < m; i++) s_obs += z[g0 + i];
  double ge = 0, le = 0; /* counts for T >= T_obs and T <= T_obs */
  double M = pb_binomial(N, m);
  if (M <= max_exact) {
    out->exact = 1;
    for (int i = 0; i < m; i++) c[i] = i; /* first combination, lexicographic */
    for (;;) {
      double s = 0;
      for (int i = 0; i < m; i++) s += z[c[i]];
      int hi = s >= s_obs - tol, lo = s <= s_obs + tol; /* S_G >= / <= observed */
      if (g_is_b) {
        ge += hi;
        le += lo;
      } else {
        ge += lo;
        le += hi;
      }
      int i = m - 1;
      while (i >= 0 && c[i] == N - m + i) i--;
      if (i < 0) break;
      c[i]++;
      for (int j = i + 1; j < m; j++) c[j] = c[j - 1] + 1;
    }
    out->splits = M;
    out->count_ge = ge;
    out->count_le = le;
    double p = 2.0 * (ge < le ? ge : le) / M;
    out->p = p > 1 ? 1 : p;
  } else {
    if (samples < 1) {
      free(z);
      free(c);
      return pb_set_error(PB_ERR_ARG, "permutation test: %.0f splits and no Monte Carlo samples", M);
    }
    pb_rng rng;
    pb_rng_seed(&rng, seed);
    for (int i = 0; i < N; i++) c[i] = i;
    for (long r = 0; r < samples; r++) {
      /* partial Fisher-Yates: c[0..m) is a uniformly random m-subset */
      for (int j = 0; j < m; j++) {
        int k = j + (int)pb_rng_below(&rng, (uint64_t)(N - j));
        int t = c[j];
        c[j] = c[k];
        c[k] = t;
      }
      double s = 0; /* summed in draw order: tol absorbs the rounding */
      for (int j = 0; j < m; j++) s += z[c[j]];
      int hi = s >= s_obs - tol, lo = s <= s_obs + tol;
      if (g_is_b) {
        ge += hi;
        le += lo;
      } else {
        ge += lo;
        le += hi;
      }
    }
    out->splits = (double)samples;
    out->count_ge = ge;
    out->count_le = le;
    double p = 2.0 * ((ge < le ? ge : le) + 1.0) / ((double)samples + 1.0);
    out->p = p > 1 ? 1 : p;
  }
  free(z);
  free(c);
  return PB_OK;
}

/* ---------------------------------------------------------------- paired examples */

int pb_stats_metric(const pb_task *t, const char *metric, const int *pred, const int *gold,
                    const float *pred_f, const float *gold_f, int n, double *out) {
  pb_metric_set ms;
  int rc = pb_task_metrics(t, pred, gold, pred_f, gold_f, n, &ms);
  if (rc) return rc;
  if (!metric || strcmp(metric, "score") == 0) {
    *out = ms.score;
    return PB_OK;
  }
  if (!pb_metric_get(&ms, metric, out))
    return pb_set_error(PB_ERR_ARG, "task %s does not report metric '%s'", t->name, metric);
  return PB_OK;
}

static int paired_check(const pb_paired *d) {
  if (!d || !d->task || d->n < 1 || d->k < 1)
    return pb_set_error(PB_ERR_ARG, "paired test: no examples or no runs");
  if (d->task->is_regression ? (!d->gold_f || !d->pred_fa || !d->pred_fb) : (!d->gold || !d->pred_a || !d->pred_b))
    return pb_set_error(PB_ERR_ARG, "paired test: missing %s predictions", d->task->is_regression ? "score" : "class");
  double v;
  /* validates the metric name once */
  if (d->task->is_regression) return pb_stats_metric(d->task, d->metric, NULL, NULL, d->gold_f, d->gold_f, d->n, &v);
  return pb_stats_metric(d->task, d->metric, d->gold, d->gold, NULL, NULL, d->n, &v);
}

/* Work buffers of one resampled evaluation. */
typedef struct {
  int *idx;          /* [n] example indices (bootstrap) */
  unsigned char *sw; /* [n] 1: swap A and B at example i (randomisation) */
  int *g, *pa, *pb;  /* [n] gold and predictions of the resample */
  float *gf, *fa, *fb;
} work;

static void work_free(work *w) {
  free(w->idx), free(w->sw), free(w->g), free(w->pa), free(w->pb), free(w->gf), free(w->fa), free(w->fb);
  memset(w, 0, sizeof *w);
}

static int work_alloc(work *w, int n) {
  memset(w, 0, sizeof *w);
  size_t z = (size_t)n;
  w->idx = malloc(z * sizeof *w->idx);
  w->sw = malloc(z);
  w->g = malloc(z * sizeof *w->g), w->pa = malloc(z * sizeof *w->pa), w->pb = malloc(z * sizeof *w->pb);
  w->gf = malloc(z * sizeof *w->gf), w->fa = malloc(z * sizeof *w->fa), w->fb = malloc(z * sizeof *w->fb);
  if (!w->idx || !w->sw || !w->g || !w->pa || !w->pb || !w->gf || !w->fa || !w->fb) {
    work_free(w);
    return pb_set_error(PB_ERR_NOMEM, "paired test: out of memory (%d examples)", n);
  }
  return PB_OK;
}

/* d = (1/k) sum_s [M(B_s) - M(A_s)] over the examples selected by idx (NULL: all, in order)
 * and swapped where sw[i] (NULL: none); *ma, *mb the mean metrics of A and B. */
static int eval_diff(const pb_paired *d, work *w, const int *idx, const unsigned char *sw, double *ma, double *mb,
                     double *diff) {
  const int n = d->n, reg = d->task->is_regression;
  double sa = 0, sb = 0;
  for (int i = 0; i < n; i++) {
    int j = idx ? idx[i] : i;
    if (reg) w->gf[i] = d->gold_f[j];
    else w->g[i] = d->gold[j];
  }
  for (int s = 0; s < d->k; s++) {
    for (int i = 0; i < n; i++) {
      int j = idx ? idx[i] : i, x = sw && sw[i];
      if (reg) {
        float a = d->pred_fa[s][j], b = d->pred_fb[s][j];
        w->fa[i] = x ? b : a;
        w->fb[i] = x ? a : b;
      } else {
        int a = d->pred_a[s][j], b = d->pred_b[s][j];
        w->pa[i] = x ? b : a;
        w->pb[i] = x ? a : b;
      }
    }
    double va, vb;
    int rc = pb_stats_metric(d->task, d->metric, w->pa, w->g, w->fa, w->gf, n, &va);
    if (!rc) rc = pb_stats_metric(d->task, d->metric, w->pb, w->g, w->fb, w->gf, n, &vb);
    if (rc) return rc;
    sa += va;
    sb += vb;
  }
  double a = sa / d->k, b = sb / d->k;
  if (ma) *ma = a;
  if (mb) *mb = b;
  /* the difference of the sums over runs keeps k = 1 exactly M(B) - M(A) */
  *diff = (sb - sa) / d->k;
  return PB_OK;
}

int pb_paired_observed(const pb_paired *d, double *a, double *b, double *diff) {
  int rc = paired_check(d);
  if (rc) return rc;
  work w;
  if ((rc = work_alloc(&w, d->n))) return rc;
  double x;
  rc = eval_diff(d, &w, NULL, NULL, a, b, diff ? diff : &x);
  work_free(&w);
  return rc;
}

int pb_paired_bootstrap(const pb_paired *d, long samples, uint64_t seed, double alpha, pb_boot_result *out) {
  if (!out) return pb_set_error(PB_ERR_ARG, "paired bootstrap: no output");
  memset(out, 0, sizeof *out);
  if (samples < 2) return pb_set_error(PB_ERR_ARG, "paired bootstrap: needs at least 2 resamples (got %ld)", samples);
  if (!(alpha > 0 && alpha < 1)) return pb_set_error(PB_ERR_ARG, "paired bootstrap: alpha %g is not in (0, 1)", alpha);
  int rc = paired_check(d);
  if (rc) return rc;
  work w;
  if ((rc = work_alloc(&w, d->n))) return rc;
  double *dr = malloc((size_t)samples * sizeof *dr);
  if (!dr) {
    work_free(&w);
    return pb_set_error(PB_ERR_NOMEM, "paired bootstrap: out of memory (%ld resamples)", samples);
  }
  if ((rc = eval_diff(d, &w, NULL, NULL, &out->a, &out->b, &out->diff))) goto done;
  pb_rng rng;
  pb_rng_seed(&rng, seed);
  const double ad = fabs(out->diff);
  double count = 0;
  for (long r = 0; r < samples; r++) {
    for (int i = 0; i < d->n; i++) w.idx[i] = (int)pb_rng_below(&rng, (uint64_t)d->n);
    if ((rc = eval_diff(d, &w, w.idx, NULL, NULL, NULL, &dr[r]))) goto done;
    count += fabs(dr[r] - out->diff) >= ad - TIE_TOL;
  }
  pb_mean_std(dr, (int)samples, &out->mean, &out->std);
  qsort(dr, (size_t)samples, sizeof *dr, cmp_double);
  out->samples = samples;
  out->confidence = 1.0 - alpha;
  out->ci_low = pb_quantile_sorted(dr, (int)samples, alpha / 2);
  out->ci_high = pb_quantile_sorted(dr, (int)samples, 1 - alpha / 2);
  out->count = count;
  out->p = (count + 1.0) / ((double)samples + 1.0);
done:
  free(dr);
  work_free(&w);
  return rc;
}

int pb_paired_randomization(const pb_paired *d, long samples, uint64_t seed, pb_ar_result *out) {
  if (!out) return pb_set_error(PB_ERR_ARG, "approximate randomisation: no output");
  memset(out, 0, sizeof *out);
  if (samples < 1) return pb_set_error(PB_ERR_ARG, "approximate randomisation: needs at least 1 round");
  int rc = paired_check(d);
  if (rc) return rc;
  work w;
  if ((rc = work_alloc(&w, d->n))) return rc;
  if ((rc = eval_diff(d, &w, NULL, NULL, NULL, NULL, &out->diff))) goto done;
  pb_rng rng;
  pb_rng_seed(&rng, seed);
  const double ad = fabs(out->diff);
  double count = 0;
  for (long r = 0; r < samples; r++) {
    uint64_t bits = 0;
    for (int i = 0; i < d->n; i++) {
      if ((i & 63) == 0) bits = pb_rng_u64(&rng);
      w.sw[i] = (unsigned char)(bits & 1);
      bits >>= 1;
    }
    double dr;
    if ((rc = eval_diff(d, &w, NULL, w.sw, NULL, NULL, &dr))) goto done;
    count += fabs(dr) >= ad - TIE_TOL;
  }
  out->samples = samples;
  out->count = count;
  out->p = (count + 1.0) / ((double)samples + 1.0);
done:
  work_free(&w);
  return rc;
}
