/* Retrieval records (`peftbench retrieve`, "task_family": "retrieval") grouped for the
 * retrieval table and figure, by the same rule as GLUE rows (harness/aggregate.h): records are
 * averaged only when their "config" objects are identical (pb_config_equal); the seed varies.
 * Two records of one configuration and seed: the later is kept. Groups are ordered BM25 first,
 * then by the methods' table order (pb_method_rank), then by config id. */
#ifndef PB_IRAGG_H
#define PB_IRAGG_H

#include <cjson/cJSON.h>

#include "harness/aggregate.h"

#define PB_IR_GROUP_MAX 64 /* records (seeds) per group */

typedef struct {
  const char *method;      /* borrowed from the first record */
  const char *config_id;
  const cJSON *config;
  int n;
  const cJSON *recs[PB_IR_GROUP_MAX];
  char label[160];         /* method, plus (config id) when the method has several groups */
} pb_ir_group;

/* groups of the records array (borrowed: the groups point into it); *out malloc'd */
int pb_ir_groups(const cJSON *records, pb_ir_group **out, int *n_out);
/* a number at a key path over a group's records (mean, sample std) */
pb_stat pb_ir_group_stat(const pb_ir_group *g, ...) __attribute__((sentinel));

/* The retrieval figure's data (plot): DIR/retrieval.dat, one row per group with test nDCG@10
 * and MRR@10 (x100, mean and sample std); vars gets "bm25=X" (BM25's nDCG@10) when a BM25
 * group exists. *npoints = rows written (0: no retrieval records, nothing written). */
#define PB_PLOT_RETRIEVAL_NAME "retrieval"
int pb_plot_write_retrieval(const pb_agg *a, const char *dir, int *npoints, char *vars, size_t nvars);

#endif
