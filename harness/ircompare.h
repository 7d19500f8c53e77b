/* Paired significance over queries for retrieval (`peftbench ircompare`): per-query metric
 * values of system A and B (each averaged over its seeds' files), d_q = B_q - A_q over the n
 * queries, mean difference D = mean(d):
 *   paired t-test       t = D / (s_d / sqrt(n)), df = n - 1, two-sided p = 2 Q_t(|t|; df) (GSL)
 *   randomisation test  R rounds, each flipping the sign of every d_q with probability 1/2
 *                       (swapping the systems' values for that query); p = (1 + #{|D_r| >= |D|}) / (R + 1)
 *   bootstrap CI        percentile interval of the mean of n resampled d_q, R rounds
 * Smucker, Allan and Carterette (CIKM 2007) compare these tests for IR; the randomisation
 * test is their recommendation. */
#ifndef PB_IRCOMPARE_H
#define PB_IRCOMPARE_H

#include <stdint.h>

typedef struct {
  int n;
  double mean_a, mean_b, diff;
  double t, df, p_t;
  long samples;
  double p_rand;
  double ci_low, ci_high, confidence;
} pb_ir_paired_result;

/* a[n], b[n]: per-query values; samples >= 1; 0 < alpha < 1. PB_ERR_ARG for n < 2. */
int pb_ir_paired(const double *a, const double *b, int n, long samples, uint64_t seed, double alpha,
                 pb_ir_paired_result *out);

/* Reads a per-query metrics file (STEM.SPLIT.predictions.tsv of `retrieve`): the values of
 * column `metric` in q[*n] (malloc'd), the query positions in pos[*n]; errors name the file. */
int pb_ir_read_perquery(const char *path, const char *metric, double **q, int **pos, int *n);

#endif
