/* Metrics against values worked out by hand (the working is in the comments). */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "util/status.h"
#include "harness/glue.h"
#include "harness/metrics.h"
#include "tests/check.h"

#define CHECK_NEAR(got, want, tol, what)                                              \
  do {                                                                                \
    double g_ = (got), w_ = (want);                                                   \
    printf("  %-40s got %.9f want %.9f\n", what, g_, w_);                             \
    CHECK(fabs(g_ - w_) <= (tol), "%s: got %.12f, want %.12f", what, g_, w_);        \
  } while (0)

int main(void) {
  printf("test_metrics: accuracy / F1 / MCC\n");
  /* pred 1 1 0 0 1 0 1 0
   * gold 1 0 0 1 1 0 1 0
   * tp = 3 (i=0,4,6), fp = 1 (i=1), fn = 1 (i=3), tn = 3 (i=2,5,7)
   * acc = 6/8 = 0.75; F1 = 2*3 / (2*3 + 1 + 1) = 0.75
   * MCC = (tp*tn - fp*fn) / sqrt((tp+fp)(tp+fn)(tn+fp)(tn+fn)) = (9 - 1) / sqrt(4*4*4*4) = 0.5 */
  int p1[8] = {1, 1, 0, 0, 1, 0, 1, 0}, g1[8] = {1, 0, 0, 1, 1, 0, 1, 0};
  CHECK_NEAR(pb_accuracy(p1, g1, 8), 0.75, 1e-12, "accuracy 6/8");
  CHECK_NEAR(pb_f1(p1, g1, 8), 0.75, 1e-12, "f1 tp3 fp1 fn1");
  CHECK_NEAR(pb_mcc(p1, g1, 8), 0.5, 1e-12, "mcc 2x2 [[3,1],[1,3]]");

  /* pred 1 1 1 0, gold 1 0 1 1: tp = 2, fp = 1, fn = 1, tn = 0
   * acc = 2/4 = 0.5; F1 = 4/6 = 0.666...; MCC = (0 - 1)/sqrt(3*3*1*1) = -1/3 */
  int p2[4] = {1, 1, 1, 0}, g2[4] = {1, 0, 1, 1};
  CHECK_NEAR(pb_accuracy(p2, g2, 4), 0.5, 1e-12, "accuracy 2/4");
  CHECK_NEAR(pb_f1(p2, g2, 4), 2.0 / 3.0, 1e-12, "f1 tp2 fp1 fn1");
  CHECK_NEAR(pb_mcc(p2, g2, 4), -1.0 / 3.0, 1e-12, "mcc [[2,1],[1,0]]");

  /* perfect and inverted */
  int p3[4] = {0, 1, 0, 1}, g3[4] = {0, 1, 0, 1}, p3i[4] = {1, 0, 1, 0};
  CHECK_NEAR(pb_mcc(p3, g3, 4), 1.0, 1e-12, "mcc perfect");
  CHECK_NEAR(pb_mcc(p3i, g3, 4), -1.0, 1e-12, "mcc inverted");
  CHECK_NEAR(pb_f1(p3, g3, 4), 1.0, 1e-12, "f1 perfect");

  /* zero positives: no positive predictions -> tp = 0 -> F1 = 0 (sklearn zero_division=0);
   * MCC: column (tp+fp) = 0 -> undefined -> 0 */
  int p4[4] = {0, 0, 0, 0}, g4[4] = {1, 0, 1, 0}, g5[4] = {0, 0, 0, 0};
  CHECK_NEAR(pb_f1(p4, g4, 4), 0.0, 0, "f1 no positive predictions");
  CHECK_NEAR(pb_f1(p4, g5, 4), 0.0, 0, "f1 no positives at all");
  CHECK_NEAR(pb_mcc(p4, g4, 4), 0.0, 0, "mcc undefined (all predicted 0)");
  CHECK_NEAR(pb_mcc(p4, g5, 4), 0.0, 0, "mcc undefined (all 0)");
  CHECK_NEAR(pb_accuracy(p4, g5, 4), 1.0, 0, "accuracy all 0 == all 0");
  CHECK_NEAR(pb_accuracy(p4, g5, 0), 0.0, 0, "accuracy n = 0");
  /* labels other than 1 count as negative (MNLI ids are never passed to F1, but be safe) */
  int p6[3] = {2, 1, 0}, g6[3] = {0, 1, 2};
  CHECK_NEAR(pb_f1(p6, g6, 3), 1.0, 1e-12, "f1 with label 2 as negative");

  printf("test_metrics: Pearson / Spearman\n");
  /* x = 1 2 3, y = 2 4 7: mx = 2, my = 13/3; dx = -1 0 1, dy = -7/3 -1/3 8/3
   * sxy = 7/3 + 8/3 = 5, sxx = 2, syy = (49 + 1 + 64)/9 = 114/9
   * r = 5 / sqrt(2 * 114/9) = 15 / sqrt(228) */
  float x1[3] = {1, 2, 3}, y1[3] = {2, 4, 7};
  CHECK_NEAR(pb_pearson(x1, y1, 3), 15.0 / sqrt(228.0), 1e-7, "pearson (1,2,3) vs (2,4,7)");
  CHECK_NEAR(pb_spearman(x1, y1, 3), 1.0, 1e-12, "spearman monotone = 1");
  float y1r[3] = {7, 4, 2};
  CHECK_NEAR(pb_spearman(x1, y1r, 3), -1.0, 1e-12, "spearman anti-monotone = -1");
  /* ties: x = 1 2 2 3 -> ranks 1 2.5 2.5 4; y = 1 3 2 4 -> ranks 1 3 2 4; both means 2.5
   * dx = -1.5 0 0 1.5, dy = -1.5 .5 -.5 1.5: sxy = 4.5, sxx = 4.5, syy = 5
   * rho = 4.5 / sqrt(22.5) = 3 / sqrt(10) = 0.9486833 */
  float x2[4] = {1, 2, 2, 3}, y2[4] = {1, 3, 2, 4};
  CHECK_NEAR(pb_spearman(x2, y2, 4), 3.0 / sqrt(10.0), 1e-9, "spearman with ties (avg ranks)");
  /* unsorted input with ties on both sides: x = 3 1 3 2, y = 10 20 10 30
   * ranks x: 3.5 1 3.5 2; ranks y: 1.5 3 1.5 4; means 2.5
   * dx = 1 -1.5 1 -.5, dy = -1 .5 -1 1.5: sxy = -1 -.75 -1 -.75 = -3.5
   * sxx = 1 + 2.25 + 1 + .25 = 4.5, syy = 1 + .25 + 1 + 2.25 = 4.5 -> rho = -3.5/4.5 */
  float x3[4] = {3, 1, 3, 2}, y3[4] = {10, 20, 10, 30};
  CHECK_NEAR(pb_spearman(x3, y3, 4), -3.5 / 4.5, 1e-9, "spearman ties both sides, unsorted");
  /* constant input: variance 0 -> defined as 0 (scipy: NaN) */
  float c[3] = {2, 2, 2};
  CHECK_NEAR(pb_pearson(c, y1, 3), 0.0, 0, "pearson of a constant = 0");
  CHECK_NEAR(pb_spearman(y1, c, 3), 0.0, 0, "spearman of a constant = 0");
  CHECK_NEAR(pb_pearson(x1, y1, 1), 0.0, 0, "pearson n = 1 -> 0");
  float xn[3] = {1, NAN, 3};
  CHECK(isnan(pb_pearson(xn, y1, 3)), "pearson with NaN input must be NaN");
  CHECK(isnan(pb_spearman(xn, y1, 3)), "spearman with NaN input must be NaN");

  printf("test_metrics: task metric sets\n");
  pb_metric_set s;
  CHECK(pb_task_metrics(pb_task_find("mrpc"), p2, g2, NULL, NULL, 4, &s) == PB_OK, "mrpc");
  CHECK(s.n == 2 && strcmp(s.v[0].name, "f1") == 0 && strcmp(s.v[1].name, "accuracy") == 0,
        "mrpc metrics are f1, accuracy (n=%d)", s.n);
  CHECK_NEAR(s.score, (2.0 / 3.0 + 0.5) / 2, 1e-12, "mrpc score = (f1 + acc)/2");
  double v = -1;
  CHECK(pb_metric_get(&s, "f1", &v) && fabs(v - 2.0 / 3.0) < 1e-12, "pb_metric_get f1");
  CHECK(!pb_metric_get(&s, "mcc", &v), "mrpc has no mcc");

  CHECK(pb_task_metrics(pb_task_find("cola"), p2, g2, NULL, NULL, 4, &s) == PB_OK, "cola");
  CHECK(s.n == 1 && strcmp(s.v[0].name, "mcc") == 0, "cola metric is mcc");
  CHECK_NEAR(s.score, -1.0 / 3.0, 1e-12, "cola score = mcc");

  CHECK(pb_task_metrics(pb_task_find("stsb"), NULL, NULL, x1, y1, 3, &s) == PB_OK, "stsb");
  CHECK(s.n == 2 && strcmp(s.v[0].name, "pearson") == 0 && strcmp(s.v[1].name, "spearman") == 0,
        "stsb metrics are pearson, spearman");
  CHECK_NEAR(s.score, (15.0 / sqrt(228.0) + 1.0) / 2, 1e-7, "stsb score = (pearson+spearman)/2");

  pb_metric_set mm[2];
  CHECK(pb_task_metrics(pb_task_find("mnli"), p1, g1, NULL, NULL, 8, &mm[0]) == PB_OK, "mnli m");
  CHECK(pb_task_metrics(pb_task_find("mnli"), p2, g2, NULL, NULL, 4, &mm[1]) == PB_OK, "mnli mm");
  CHECK_NEAR(pb_metric_mean_score(mm, 2), (0.75 + 0.5) / 2, 1e-12, "mnli score = mean(m, mm)");

  const char *acc_tasks[] = {"sst2", "qnli", "rte", "wnli", "qqp"};
  for (int i = 0; i < 5; i++) {
    const pb_task *t = pb_task_find(acc_tasks[i]);
    CHECK(t && pb_task_metrics(t, p1, g1, NULL, NULL, 8, &s) == PB_OK, "%s", acc_tasks[i]);
    CHECK(pb_metric_get(&s, "accuracy", &v) && v == 0.75, "%s accuracy", acc_tasks[i]);
  }
  CHECK(pb_task_metrics(pb_task_find("sst2"), p1, g1, NULL, NULL, 0, &s) == PB_ERR_ARG,
        "n = 0 is an error");
  CHECK(pb_task_metrics(pb_task_find("stsb"), p1, g1, NULL, NULL, 8, &s) == PB_ERR_ARG,
        "stsb without float predictions is an error");
  printf("  error message: %s\n", pb_last_error());

  printf(failures ? "test_metrics: %d FAILED\n" : "test_metrics: all passed\n", failures);
  return failures ? 1 : 0;
}
