/* Significance tests between two methods or configurations (`peftbench compare`).
 * Pure functions: no I/O; random numbers come from util/rng.h (splitmix64) seeded by the
 * caller, so every result is reproducible from its seed. Distributions come from GSL.
 *
 * Two kinds of tests:
 *   over seeds    the scores of two groups of runs (one number per seed): Welch's t-test and
 *                 a permutation test of the difference of means;
 *   over examples per-example predictions of A and B on the same examples, paired: the
 *                 paired bootstrap (percentile CI + p-value) and approximate randomisation.
 *
 * Sign convention everywhere: difference = B - A.
 *
 * Definitions (N = n_a + n_b; mean, and the sample variance s^2 with n - 1):
 *
 *   Welch's t      t = (mean_b - mean_a) / se,  se^2 = s_a^2/n_a + s_b^2/n_b;
 *                  df = se^4 / ((s_a^2/n_a)^2/(n_a-1) + (s_b^2/n_b)^2/(n_b-1))
 *                  (Welch-Satterthwaite); two-sided p = P(|T_df| >= |t|)
 *                  = I_{df/(df+t^2)}(df/2, 1/2), the regularised incomplete beta function
 *                  (gsl_sf_beta_inc; the same number as 2*gsl_cdf_tdist_Q(|t|, df), but
 *                  gsl_cdf_tdist_Q switches to a Cornish-Fisher expansion for df > 30 that
 *                  is only ~1e-10 accurate in the far tail). As scipy.stats.ttest_ind
 *                  (equal_var=False). Undefined (NaN) when n_a < 2, n_b < 2 or se == 0.
 *
 *   permutation    statistic T = mean(group B) - mean(group A) over the pooled values; the
 *                  null distribution is T over every split of the N values into a group of
 *                  n_b ("B") and n_a ("A"): all C(N, n_b) splits when that is <= max_exact
 *                  (exact), otherwise R random splits (Monte Carlo). With
 *                    c_ge = #{splits: T >= T_obs},  c_le = #{splits: T <= T_obs}
 *                  the two-sided p = min(1, 2 * min(c_ge, c_le) / M), M = C(N, n_b)
 *                  (exact; the observed split is one of them), or
 *                  min(1, 2 * min(c_ge + 1, c_le + 1) / (R + 1)) (Monte Carlo, the observed
 *                  split counted once more). As scipy.stats.permutation_test
 *                  (permutation_type='independent', alternative='two-sided').
 *                  Ties: T is monotone in the sum of either group, and two splits whose
 *                  group sums differ by at most 1e-12 * sum_i |x_i| count as equal T (rounding
 *                  never breaks a tie; real score differences are far larger).
 *
 *   paired data    k paired runs (k seeds of A and of B, matched by seed) on the same n
 *                  examples: A_s, B_s, s = 1..k, and one gold vector. M(.) is the task's
 *                  metric (harness/metrics.h pb_task_metrics: the numbers `run` reports), or
 *                  "score" (the task's GLUE score on the split, mean of its metrics). The
 *                  statistic is  d = (1/k) sum_s [M(B_s) - M(A_s)]  (k = 1: M(B) - M(A)).
 *
 *   paired bootstrap  R resamples; resample r draws n example indices uniformly with
 *                  replacement (the same indices for every s) and computes d_r on them.
 *                  CI: the percentile interval [q(alpha/2), q(1 - alpha/2)] of the d_r, with
 *                  q the linear-interpolation quantile (numpy.percentile's default: sorted
 *                  d_(0) <= ... <= d_(R-1), h = (R-1) p, q = d_(floor h) + (h - floor h)
 *                  (d_(floor h + 1) - d_(floor h))), as scipy.stats.bootstrap
 *                  (paired=True, method='percentile').
 *                  p-value: two-sided, shifted (null-centred) bootstrap, Berg-Kirkpatrick et
 *                  al. (2012) made two-sided:  p = (1 + #{r: |d_r - d| >= |d| - tol}) / (R + 1)
 *                  (the resampled differences, centred on the observed one, are the null
 *                  distribution of d); tol = 1e-12.
 *
 *   approximate randomisation  R rounds; round r swaps A_s[i] and B_s[i] for each example i
 *                  with probability 1/2 (one coin per example, the same for every s) and
 *                  computes d_r on the swapped data;
 *                  two-sided p = (1 + #{r: |d_r| >= |d| - tol}) / (R + 1), tol = 1e-12
 *                  (Noreen 1989; Riezler & Maxwell 2005).
 *
 * Every function returns PB_OK or a negative status (util/status.h) with one line in
 * pb_last_error(). */
#ifndef PB_STATS_H
#define PB_STATS_H

#include <stdint.h>

struct pb_task; /* harness/glue.h */

/* ---------------------------------------------------------------- descriptive */

/* mean and sample standard deviation (n - 1; 0 when n < 2) of x[n], two-pass */
void pb_mean_std(const double *x, int n, double *mean, double *std);

/* Linear-interpolation quantile (numpy.percentile default) of sorted[n] at p in [0, 1]. */
double pb_quantile_sorted(const double *sorted, int n, double p);

/* ---------------------------------------------------------------- over seeds */

typedef struct {
  double mean_a, mean_b;  /* group means */
  double var_a, var_b;    /* sample variances (n - 1) */
  double diff;            /* mean_b - mean_a */
  double se;              /* sqrt(var_a/n_a + var_b/n_b) */
  double t, df, p;        /* Welch's t, Welch-Satterthwaite df, two-sided p; NaN when undefined */
} pb_welch_result;

/* Welch's unequal-variance t-test of b against a (a[n_a], b[n_b], n >= 1). Undefined cases
 * (n < 2 in a group, zero variance in both) give NaN t/df/p and still PB_OK. */
int pb_welch(const double *a, int n_a, const double *b, int n_b, pb_welch_result *out);

typedef struct {
  double diff;      /* observed mean_b - mean_a */
  int exact;        /* 1: all splits enumerated; 0: Monte Carlo */
  double splits;    /* M = C(N, n_b) (exact) or R (Monte Carlo): the number of splits drawn */
  double count_ge;  /* splits with T >= T_obs (up to ties; exact: including the observed one) */
  double count_le;  /* splits with T <= T_obs */
  double p;         /* two-sided p-value (definition above) */
} pb_perm_result;

/* Permutation test of the difference of means (a[n_a], b[n_b], each n >= 1). Exact when
 * C(N, n_b) <= max_exact, else `samples` random splits from `seed`. */
int pb_perm_test(const double *a, int n_a, const double *b, int n_b, double max_exact, long samples,
                 uint64_t seed, pb_perm_result *out);

/* C(n, k) as a double (exact below 2^53), capped at 1e300. */
double pb_binomial(int n, int k);

/* ---------------------------------------------------------------- over examples */

/* k paired runs on the same n examples. Classification tasks use gold/pred_a/pred_b (class
 * ids); regression (STS-B) uses gold_f/pred_fa/pred_fb. Unused members may be NULL. */
typedef struct {
  const struct pb_task *task;
  const char *metric;           /* a metric of the task ("accuracy", "f1", ...) or "score" */
  int n;                        /* examples */
  int k;                        /* paired runs (matched seeds), >= 1 */
  const int *gold;              /* [n] gold class ids */
  const int *const *pred_a;     /* [k][n] predicted class ids of A's runs */
  const int *const *pred_b;     /* [k][n] of B's runs */
  const float *gold_f;          /* [n] gold scores (regression) */
  const float *const *pred_fa;  /* [k][n] predicted scores of A's runs */
  const float *const *pred_fb;  /* [k][n] of B's runs */
} pb_paired;

/* The metric named `metric` ("score": the mean of the task's metrics) of one prediction vector
 * (pred or pred_f, as the task needs) against gold over n examples, computed with
 * pb_task_metrics. PB_ERR_ARG for a metric the task does not report. */
int pb_stats_metric(const struct pb_task *t, const char *metric, const int *pred, const int *gold,
                    const float *pred_f, const float *gold_f, int n, double *out);

/* Observed statistics: *a = (1/k) sum_s M(A_s), *b likewise, *d = *b - *a. */
int pb_paired_observed(const pb_paired *d, double *a, double *b, double *diff);

typedef struct {
  double a, b, diff;     /* observed mean metric of A and B over the k runs, diff = b - a */
  long samples;          /* R */
  double confidence;     /* 1 - alpha */
  double ci_low, ci_high;/* percentile CI of diff */
  double mean, std;      /* mean and sample std of the d_r */
  double count;          /* #{|d_r - diff| >= |diff| - tol} */
  double p;              /* two-sided p-value */
} pb_boot_result;

/* Paired bootstrap (definition above). samples >= 2, 0 < alpha < 1. */
int pb_paired_bootstrap(const pb_paired *d, long samples, uint64_t seed, double alpha, pb_boot_result *out);

typedef struct {
  double diff;    /* observed */
  long samples;   /* R */
  double count;   /* #{|d_r| >= |diff| - tol} */
  double p;       /* (count + 1) / (R + 1) */
} pb_ar_result;

/* Approximate randomisation (definition above). samples >= 1. */
int pb_paired_randomization(const pb_paired *d, long samples, uint64_t seed, pb_ar_result *out);

#endif
