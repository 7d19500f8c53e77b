/* The statistics of `peftbench compare` (harness/stats.h) against scipy / scikit-learn /
 * numpy on fixed inputs: tests/fixtures/stats_ref.json, written by
 * tools/reference/make_stats_fixture.py (the test itself needs no Python).
 *
 * Tolerances:
 *   Welch t, df, p            1e-10 relative (measured: ~1e-15; p down to 2.4e-21)
 *   exact permutation test    tail counts and p exactly (p is a ratio of integers)
 *   Monte Carlo permutation   5 standard errors of 2 x a binomial tail + 4/R (fixture "tol")
 *   metrics                   1e-12 absolute (accuracy, F1, MCC, Pearson, Spearman)
 *   percentile quantile       1e-14 absolute against numpy.percentile
 *   paired bootstrap          CI bounds inside the reference distribution's quantiles at levels
 *                             u -/+ 5 (sqrt(u(1-u)/R_c) + sqrt(u(1-u)/R_ref)); p within
 *                             5 sqrt(p(1-p)) (1/sqrt(R_c) + 1/sqrt(R_ref)) + 2/R_c; std within
 *                             6 sd (1/sqrt(2 R_c) + 1/sqrt(2 R_ref)) — all from the fixture
 *   approximate randomisation p within 5 sqrt(p(1-p)) (1/sqrt(R_c) [+ 1/sqrt(R_ref)]) + 2/R_c of
 *                             scipy's exact (all 2^n swaps) or Monte Carlo p
 * The seeds are fixed, so each run is deterministic; the Monte Carlo tolerances say how far an
 * estimate can honestly be from the reference. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "util/fileio.h"
#include "check.h"
#include "harness/glue.h"
#include "harness/stats.h"

#define FIXTURE "tests/fixtures/stats_ref.json"

static double max_rel_welch = 0, max_abs_metric = 0;

static double rel_err(double x, double ref) {
  if (x == ref) return 0;
  return fabs(x - ref) / (fabs(ref) > 0 ? fabs(ref) : 1.0);
}

static const cJSON *get(const cJSON *o, const char *k) {
  const cJSON *x = cJSON_GetObjectItemCaseSensitive(o, k);
  if (!x) {
    printf("FAIL fixture: key '%s' missing\n", k);
    exit(1);
  }
  return x;
}

static double num(const cJSON *o, const char *k) { return get(o, k)->valuedouble; }

/* a JSON array of numbers into a malloc'd double array */
static double *darr(const cJSON *o, const char *k, int *n) {
  const cJSON *a = get(o, k);
  *n = cJSON_GetArraySize(a);
  double *v = malloc((size_t)(*n ? *n : 1) * sizeof *v);
  int i = 0;
  const cJSON *x;
  cJSON_ArrayForEach(x, a) v[i++] = x->valuedouble;
  return v;
}

static int *iarr(const cJSON *o, const char *k, int *n) {
  const cJSON *a = get(o, k);
  *n = cJSON_GetArraySize(a);
  int *v = malloc((size_t)(*n ? *n : 1) * sizeof *v);
  int i = 0;
  const cJSON *x;
  cJSON_ArrayForEach(x, a) v[i++] = x->valueint;
  return v;
}

static float *farr(const cJSON *o, const char *k, int *n) {
  const cJSON *a = get(o, k);
  *n = cJSON_GetArraySize(a);
  float *v = malloc((size_t)(*n ? *n : 1) * sizeof *v);
  int i = 0;
  const cJSON *x;
  cJSON_ArrayForEach(x, a) v[i++] = (float)x->valuedouble; /* float32 values: exact */
  return v;
}

/* ---------------------------------------------------------------- Welch */

static void test_welch(const cJSON *fx) {
  const cJSON *c;
  cJSON_ArrayForEach(c, get(fx, "welch")) {
    const char *name = get(c, "name")->valuestring;
    int na, nb;
    double *a = darr(c, "a", &na), *b = darr(c, "b", &nb);
    pb_welch_result w;
    CHECK_OK(pb_welch(a, na, b, nb, &w));
    double et = rel_err(w.t, num(c, "t")), ed = rel_err(w.df, num(c, "df")), ep = rel_err(w.p, num(c, "p"));
    CHECK(et <= 1e-10, "welch %s: t %.17g, scipy %.17g", name, w.t, num(c, "t"));
    CHECK(ed <= 1e-10, "welch %s: df %.17g, scipy %.17g", name, w.df, num(c, "df"));
    CHECK(ep <= 1e-10, "welch %s: p %.17g, scipy %.17g", name, w.p, num(c, "p"));
    printf("welch %-18s rel err t %.2g df %.2g p %.2g\n", name, et, ed, ep);
    if (et > max_rel_welch) max_rel_welch = et;
    if (ed > max_rel_welch) max_rel_welch = ed;
    if (ep > max_rel_welch) max_rel_welch = ep;
    /* B - A sign convention: swapping the groups negates t, keeps df and p */
    pb_welch_result s;
    CHECK_OK(pb_welch(b, nb, a, na, &s));
    CHECK(s.t == -w.t && s.df == w.df && s.p == w.p, "welch %s: swapped groups: t %g df %g p %g", name, s.t, s.df, s.p);
    free(a), free(b);
  }
  /* undefined cases: NaN, still PB_OK */
  double one[] = {0.5}, two[] = {0.5, 0.6}, c2[] = {0.7, 0.7}, c3[] = {0.8, 0.8, 0.8};
  pb_welch_result w;
  CHECK_OK(pb_welch(one, 1, two, 2, &w));
  CHECK(isnan(w.t) && isnan(w.p) && fabs(w.diff - 0.05) < 1e-15, "welch n=1: t %g p %g diff %g", w.t, w.p, w.diff);
  CHECK_OK(pb_welch(c2, 2, c3, 3, &w));
  CHECK(isnan(w.t) && isnan(w.df) && isnan(w.p), "welch zero variance: t %g df %g p %g", w.t, w.df, w.p);
  CHECK(pb_welch(one, 0, two, 2, &w) == PB_ERR_ARG, "welch with an empty group is an argument error");
}

/* ---------------------------------------------------------------- permutation */

static void test_permutation(const cJSON *fx) {
  const cJSON *c;
  cJSON_ArrayForEach(c, get(fx, "permutation")) {
    const char *name = get(c, "name")->valuestring;
    int na, nb;
    double *a = darr(c, "a", &na), *b = darr(c, "b", &nb);
    pb_perm_result r;
    const cJSON *cs = cJSON_GetObjectItemCaseSensitive(c, "c_samples");
    long R = cs ? (long)cs->valuedouble : 1000;
    CHECK_OK(pb_perm_test(a, na, b, nb, 100000, R, 42, &r));
    CHECK(fabs(r.diff - num(c, "diff")) <= 1e-12, "perm %s: diff %.17g, scipy %.17g", name, r.diff, num(c, "diff"));
    if (!cs) {
      CHECK(r.exact, "perm %s: should be exact", name);
      CHECK(r.splits == num(c, "splits"), "perm %s: %.0f splits, scipy %.0f", name, r.splits, num(c, "splits"));
      CHECK(r.count_ge == num(c, "count_ge") && r.count_le == num(c, "count_le"),
            "perm %s: counts ge %.0f le %.0f, scipy %.0f %.0f", name, r.count_ge, r.count_le, num(c, "count_ge"),
            num(c, "count_le"));
      CHECK(r.p == num(c, "p"), "perm %s: p %.17g, scipy %.17g (must be identical)", name, r.p, num(c, "p"));
      /* the groups swapped: same p, tails exchanged */
      pb_perm_result s;
      CHECK_OK(pb_perm_test(b, nb, a, na, 100000, R, 42, &s));
      CHECK(s.p == r.p && s.count_ge == r.count_le && s.count_le == r.count_ge, "perm %s swapped: p %.17g ge %.0f le %.0f",
            name, s.p, s.count_ge, s.count_le);
    } else {
      CHECK(!r.exact && r.splits == (double)R, "perm %s: Monte Carlo expected (%.0f splits, exact %d)", name, r.splits,
            r.exact);
      double tol = num(c, "tol");
      CHECK(fabs(r.p - num(c, "p")) <= tol, "perm %s: Monte Carlo p %.6f, scipy exact %.6f (tol %.4g)", name, r.p,
            num(c, "p"), tol);
      printf("perm %s: Monte Carlo p %.5f vs exact %.5f (|diff| %.2g, tol %.2g)\n", name, r.p, num(c, "p"),
             fabs(r.p - num(c, "p")), tol);
      /* reproducible from the seed */
      pb_perm_result s;
      CHECK_OK(pb_perm_test(a, na, b, nb, 100000, R, 42, &s));
      CHECK(s.p == r.p, "perm %s: same seed, different p", name);
    }
    free(a), free(b);
  }
  /* single values per group (scipy refuses them; the definition still holds): 2 splits */
  double x[] = {0.3}, y[] = {0.4};
  pb_perm_result r;
  CHECK_OK(pb_perm_test(x, 1, y, 1, 100000, 10, 0, &r));
  CHECK(r.exact && r.splits == 2 && r.p == 1.0, "perm 1v1: splits %.0f p %g", r.splits, r.p);
  CHECK(pb_binomial(20, 10) == 184756 && pb_binomial(17, 8) == 24310 && pb_binomial(5, 0) == 1 &&
            pb_binomial(3, 4) == 0,
        "pb_binomial");
}

/* ---------------------------------------------------------------- metrics, quantile */

static void test_metrics(const cJSON *fx) {
  const cJSON *c;
  static const char *names[] = {"accuracy", "f1", "mcc", "pearson", "spearman"};
  cJSON_ArrayForEach(c, get(fx, "metrics")) {
    const char *name = get(c, "name")->valuestring;
    const pb_task *t = pb_task_find(get(c, "task")->valuestring);
    CHECK(t != NULL, "metrics %s: task", name);
    if (!t) continue;
    int n, m;
    for (int k = 0; k < 5; k++) {
      const cJSON *ref = cJSON_GetObjectItemCaseSensitive(c, names[k]);
      if (!ref) continue;
      double v = NAN;
      int rc;
      if (t->is_regression) {
        float *g = farr(c, "gold", &n), *p = farr(c, "pred", &m);
        /* the task's metric set (pb_task_metrics) when the task reports it, else the function */
        rc = pb_stats_metric(t, names[k], NULL, NULL, p, g, n, &v);
        free(g), free(p);
      } else {
        int *g = iarr(c, "gold", &n), *p = iarr(c, "pred", &m);
        rc = pb_stats_metric(t, names[k], p, g, NULL, NULL, n, &v);
        if (rc) { /* a metric this task does not report: the metrics.h function directly */
          rc = 0;
          v = k == 0 ? pb_accuracy(p, g, n) : k == 1 ? pb_f1(p, g, n) : pb_mcc(p, g, n);
        }
        free(g), free(p);
      }
      CHECK(rc == 0, "metrics %s %s: %s", name, names[k], pb_last_error());
      double e = fabs(v - ref->valuedouble);
      if (e > max_abs_metric) max_abs_metric = e;
      CHECK(e <= 1e-12, "metrics %s %s: %.17g, reference %.17g", name, names[k], v, ref->valuedouble);
    }
  }
  const cJSON *q = get(fx, "quantile");
  int nx, np_, nq;
  double *x = darr(q, "x", &nx), *p = darr(q, "p", &np_), *r = darr(q, "q", &nq);
  for (int i = 0; i < np_; i++) {
    double v = pb_quantile_sorted(x, nx, p[i]);
    CHECK(fabs(v - r[i]) <= 1e-14, "quantile p=%g: %.17g, numpy %.17g", p[i], v, r[i]);
  }
  free(x), free(p), free(r);
  double d[] = {1, 2, 3, 4, 5}, mean, sd;
  pb_mean_std(d, 5, &mean, &sd);
  CHECK(mean == 3 && fabs(sd - sqrt(2.5)) < 1e-15, "pb_mean_std: %g %g", mean, sd);
}

/* ---------------------------------------------------------------- paired tests */

/* A paired set over one run from a fixture case (owns its arrays). */
typedef struct {
  pb_paired d;
  int *g, *pa, *pb;
  float *gf, *fa, *fb;
  const int *ia[2], *ib[2];
  const float *qa[2], *qb[2];
} paired_case;

static void load_paired(const cJSON *c, paired_case *p) {
  memset(p, 0, sizeof *p);
  const pb_task *t = pb_task_find(get(c, "task")->valuestring);
  int n, m, l;
  if (!t) {
    printf("FAIL fixture: unknown task\n");
    exit(1);
  }
  if (t->is_regression) {
    p->gf = farr(c, "gold", &n), p->fa = farr(c, "pred_a", &m), p->fb = farr(c, "pred_b", &l);
  } else {
    p->g = iarr(c, "gold", &n), p->pa = iarr(c, "pred_a", &m), p->pb = iarr(c, "pred_b", &l);
  }
  p->ia[0] = p->ia[1] = p->pa, p->ib[0] = p->ib[1] = p->pb;
  p->qa[0] = p->qa[1] = p->fa, p->qb[0] = p->qb[1] = p->fb;
  p->d = (pb_paired){.task = t, .metric = get(c, "metric")->valuestring, .n = n, .k = 1, .gold = p->g,
                     .pred_a = p->ia, .pred_b = p->ib, .gold_f = p->gf, .pred_fa = p->qa, .pred_fb = p->qb};
}

static void free_paired(paired_case *p) {
  free(p->g), free(p->pa), free(p->pb), free(p->gf), free(p->fa), free(p->fb);
}

static void test_bootstrap(const cJSON *fx) {
  const cJSON *c;
  cJSON_ArrayForEach(c, get(fx, "bootstrap")) {
    const char *name = get(c, "name")->valuestring;
    paired_case pc;
    load_paired(c, &pc);
    long R = (long)num(c, "c_samples");
    pb_boot_result b;
    CHECK_OK(pb_paired_bootstrap(&pc.d, R, 12345, num(c, "alpha"), &b));
    CHECK(fabs(b.diff - num(c, "diff")) <= 1e-12, "boot %s: diff %.17g, scipy %.17g", name, b.diff, num(c, "diff"));
    CHECK(b.ci_low >= num(c, "ci_low_min") && b.ci_low <= num(c, "ci_low_max"),
          "boot %s: CI low %.6f outside [%.6f, %.6f] (scipy %.6f)", name, b.ci_low, num(c, "ci_low_min"),
          num(c, "ci_low_max"), num(c, "ci_low"));
    CHECK(b.ci_high >= num(c, "ci_high_min") && b.ci_high <= num(c, "ci_high_max"),
          "boot %s: CI high %.6f outside [%.6f, %.6f] (scipy %.6f)", name, b.ci_high, num(c, "ci_high_min"),
          num(c, "ci_high_max"), num(c, "ci_high"));
    CHECK(fabs(b.p - num(c, "p_ref")) <= num(c, "p_tol"), "boot %s: p %.5f, reference %.5f (tol %.4f)", name, b.p,
          num(c, "p_ref"), num(c, "p_tol"));
    CHECK(fabs(b.std - num(c, "std_ref")) <= num(c, "std_tol"), "boot %s: std %.6f, scipy %.6f (tol %.6f)", name, b.std,
          num(c, "std_ref"), num(c, "std_tol"));
    printf("boot %s: CI [%.5f, %.5f] vs scipy [%.5f, %.5f] (allowed [%.5f..%.5f], [%.5f..%.5f]); p %.5f vs %.5f; std "
           "%.5f vs %.5f\n",
           name, b.ci_low, b.ci_high, num(c, "ci_low"), num(c, "ci_high"), num(c, "ci_low_min"), num(c, "ci_low_max"),
           num(c, "ci_high_min"), num(c, "ci_high_max"), b.p, num(c, "p_ref"), b.std, num(c, "std_ref"));
    /* reproducible; k = 2 identical runs give exactly the k = 1 numbers (same indices) */
    pb_boot_result b2;
    CHECK_OK(pb_paired_bootstrap(&pc.d, R, 12345, num(c, "alpha"), &b2));
    CHECK(b2.ci_low == b.ci_low && b2.ci_high == b.ci_high && b2.p == b.p, "boot %s: not reproducible", name);
    pc.d.k = 2;
    CHECK_OK(pb_paired_bootstrap(&pc.d, R, 12345, num(c, "alpha"), &b2));
    CHECK(b2.diff == b.diff && b2.ci_low == b.ci_low && b2.ci_high == b.ci_high && b2.p == b.p,
          "boot %s: k=2 copies differ from k=1: diff %.17g CI [%.17g, %.17g] p %.17g", name, b2.diff, b2.ci_low,
          b2.ci_high, b2.p);
    pc.d.k = 1;
    /* A and B exchanged: the difference and the CI negate, p stays */
    pb_paired sw = pc.d;
    sw.pred_a = pc.d.pred_b, sw.pred_b = pc.d.pred_a, sw.pred_fa = pc.d.pred_fb, sw.pred_fb = pc.d.pred_fa;
    CHECK_OK(pb_paired_bootstrap(&sw, R, 12345, num(c, "alpha"), &b2));
    CHECK(b2.diff == -b.diff && fabs(b2.ci_low + b.ci_high) <= 1e-12 && fabs(b2.ci_high + b.ci_low) <= 1e-12 &&
              b2.p == b.p,
          "boot %s: swapped A/B: diff %g CI [%g, %g] p %g", name, b2.diff, b2.ci_low, b2.ci_high, b2.p);
    free_paired(&pc);
  }
}

static void test_randomization(const cJSON *fx) {
  const cJSON *c;
  cJSON_ArrayForEach(c, get(fx, "randomization")) {
    const char *name = get(c, "name")->valuestring;
    paired_case pc;
    load_paired(c, &pc);
    long R = (long)num(c, "c_samples");
    pb_ar_result r;
    CHECK_OK(pb_paired_randomization(&pc.d, R, 777, &r));
    CHECK(fabs(r.diff - num(c, "diff")) <= 1e-12, "ar %s: diff %.17g, scipy %.17g", name, r.diff, num(c, "diff"));
    CHECK(fabs(r.p - num(c, "p_ref")) <= num(c, "tol"), "ar %s: p %.5f, scipy %s %.5f (tol %.4f)", name, r.p,
          cJSON_IsTrue(get(c, "exact")) ? "exact" : "Monte Carlo", num(c, "p_ref"), num(c, "tol"));
    CHECK(r.p == (r.count + 1) / (R + 1.0), "ar %s: p is not (count + 1) / (R + 1)", name);
    printf("ar %s: p %.5f vs scipy %.5f (%s; |diff| %.2g, tol %.2g)\n", name, r.p, num(c, "p_ref"),
           cJSON_IsTrue(get(c, "exact")) ? "exact" : "Monte Carlo", fabs(r.p - num(c, "p_ref")), num(c, "tol"));
    pb_ar_result r2;
    pc.d.k = 2;
    CHECK_OK(pb_paired_randomization(&pc.d, R, 777, &r2));
    CHECK(r2.p == r.p && r2.diff == r.diff, "ar %s: k=2 copies differ from k=1", name);
    free_paired(&pc);
  }
}

/* identical predictions: difference 0, CI [0, 0], both p-values 1 */
static void test_identical(void) {
  const pb_task *t = pb_task_find("sst2");
  int g[] = {0, 1, 1, 0, 1, 0, 1, 1}, p[] = {0, 1, 0, 0, 1, 1, 1, 1};
  const int *pa[] = {p}, *pb[] = {p};
  pb_paired d = {.task = t, .metric = "accuracy", .n = 8, .k = 1, .gold = g, .pred_a = pa, .pred_b = pb};
  pb_boot_result b;
  pb_ar_result r;
  CHECK_OK(pb_paired_bootstrap(&d, 500, 1, 0.05, &b));
  CHECK_OK(pb_paired_randomization(&d, 500, 1, &r));
  CHECK(b.diff == 0 && b.ci_low == 0 && b.ci_high == 0 && b.p == 1 && r.p == 1, "identical: diff %g CI [%g, %g] p %g %g",
        b.diff, b.ci_low, b.ci_high, b.p, r.p);
  d.metric = "pearson";
  CHECK(pb_paired_bootstrap(&d, 500, 1, 0.05, &b) == PB_ERR_ARG, "sst2 has no pearson: an argument error");
  d.metric = "score";
  CHECK_OK(pb_paired_bootstrap(&d, 500, 1, 0.05, &b));
  CHECK(pb_paired_bootstrap(&d, 1, 1, 0.05, &b) == PB_ERR_ARG, "one resample is refused");
}

int main(void) {
  char *text = NULL;
  size_t len = 0;
  CHECK_OK(pb_read_file(FIXTURE, &text, &len));
  cJSON *fx = cJSON_Parse(text);
  free(text);
  if (!fx) {
    printf("FAIL %s does not parse\n", FIXTURE);
    return 1;
  }
  test_welch(fx);
  test_permutation(fx);
  test_metrics(fx);
  test_bootstrap(fx);
  test_randomization(fx);
  test_identical();
  cJSON_Delete(fx);
  printf("max relative error of Welch t/df/p vs scipy: %.3g; max metric error: %.3g\n", max_rel_welch, max_abs_metric);
  printf("%d checks, %d failures\n", checks, failures);
  return failures ? 1 : 0;
}
