/* GLUE evaluation metrics: accuracy, F1, Matthews correlation, Pearson, Spearman, and the
 * per-task metric set with the GLUE-leaderboard task score.
 *
 * Conventions (same as scikit-learn / scipy where those are defined, 0 where they are not):
 *   - pb_accuracy of n == 0 is 0.
 *   - pb_f1 is binary F1 of the positive class 1 (sklearn f1_score, pos_label=1). When
 *     there are no true positives (precision + recall == 0, e.g. no positive predictions
 *     or no positive gold labels) it returns 0, as sklearn does (zero_division=0).
 *   - pb_mcc is the binary Matthews correlation (CoLA); when a row or column of the 2x2
 *     confusion table is empty (denominator 0) it returns 0, as sklearn does.
 *   - pb_pearson / pb_spearman return 0 when either input is constant (zero variance) or
 *     n < 2 (scipy returns NaN there; 0 keeps task scores and JSON results finite).
 *   - pb_spearman ranks with average ranks for ties (scipy.stats.spearmanr).
 *   - NaN in the inputs of pb_pearson / pb_spearman gives NaN.
 * All sums are accumulated in double. */
#ifndef PB_METRICS_H
#define PB_METRICS_H

typedef enum {
  PB_METRIC_ACC = 0,  /* "accuracy" */
  PB_METRIC_F1,       /* "f1" (positive class 1) */
  PB_METRIC_MCC,      /* "mcc" */
  PB_METRIC_PEARSON,  /* "pearson" */
  PB_METRIC_SPEARMAN  /* "spearman" */
} pb_metric_id;

#define PB_MAX_METRICS 4

const char *pb_metric_name(pb_metric_id m); /* "accuracy", "f1", "mcc", "pearson", "spearman" */

/* pred, gold: [n] class ids. */
double pb_accuracy(const int *pred, const int *gold, int n);
double pb_f1(const int *pred, const int *gold, int n);   /* labels other than 1 are negative */
double pb_mcc(const int *pred, const int *gold, int n);  /* labels other than 1 are negative */
/* x, y: [n] real values. */
double pb_pearson(const float *x, const float *y, int n);
double pb_spearman(const float *x, const float *y, int n);

typedef struct {
  const char *name; /* static string: pb_metric_name() of the metric */
  double value;
} pb_metric_value;

typedef struct {
  int n;                              /* number of metrics in v */
  pb_metric_value v[PB_MAX_METRICS];  /* [n], in the task's order (main metric first) */
  double score;                       /* GLUE task score: mean of v[0..n) (MRPC/QQP: (F1+acc)/2,
                                         STS-B: (Pearson+Spearman)/2, others: the one metric) */
} pb_metric_set;

struct pb_task; /* harness/glue.h */

/* Computes the task's metrics over one evaluation split.
 * Classification tasks read pred/gold ([n] class ids; pred_f/gold_f may be NULL);
 * regression (STS-B) reads pred_f/gold_f ([n] scores; pred/gold may be NULL).
 * MNLI: call once per eval split (dev_matched, dev_mismatched); the GLUE task score is the
 * mean of the two sets' scores (pb_metric_mean_score).
 * Returns PB_OK, or PB_ERR_ARG (n <= 0, missing arrays). */
int pb_task_metrics(const struct pb_task *t, const int *pred, const int *gold,
                    const float *pred_f, const float *gold_f, int n, pb_metric_set *out);

/* Mean of sets[0..n).score; 0 when n <= 0. */
double pb_metric_mean_score(const pb_metric_set *sets, int n);

/* Looks up a metric value by name in a set; returns 1 and writes *value when present. */
int pb_metric_get(const pb_metric_set *s, const char *name, double *value);

#endif
