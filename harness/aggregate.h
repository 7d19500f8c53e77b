/* Aggregation of result records (harness/results.h, schema peftbench-result/1), shared by
 * `peftbench table` and `peftbench plot`.
 *
 * Records are grouped by (method, method_desc, backbone fingerprint) — one "row" per method
 * configuration — and, inside a row, by GLUE task. Every number shown is the mean over the
 * records of a (row, task) cell (the seeds), with the sample standard deviation (n - 1 in the
 * denominator) when there is more than one record.
 * Rows are ordered full, lora, adapter, layerconnect, then other methods by name; ties by
 * method_desc, then fingerprint (byte order). Tasks appear in GLUE order (pb_task_at).
 * Same input -> same result.
 *
 * Records that are not JSON objects with a known "task" and a string "method" (or that carry
 * another "schema") are skipped and counted (pb_agg.n_skipped). */
#ifndef PB_AGGREGATE_H
#define PB_AGGREGATE_H

#include <stdio.h>

#include <cjson/cJSON.h>

#define PB_AGG_NTASKS 9 /* GLUE tasks, indexed as pb_task_at() */

/* Mean / sample std of a set of numbers. */
typedef struct {
  int n;        /* numbers seen (0: none — the cell is missing) */
  double mean;  /* mean of the n numbers */
  double std;   /* sample std (n - 1); 0 when n < 2 */
  double min, max;
} pb_stat;

/* Collects numbers for one pb_stat (two-pass mean and std). */
typedef struct {
  int n;     /* values kept */
  double *v; /* [n] the values */
  int cap;   /* allocated length of v */
} pb_acc;
void pb_acc_add(pb_acc *a, double x);
/* the statistics of the collected numbers; frees and resets a */
pb_stat pb_acc_stat(pb_acc *a);
/* the string member `key` of object o, or NULL */
const char *pb_json_str(const cJSON *o, const char *key);

/* One method configuration. */
typedef struct {
  char *method;      /* "lora" (owned) */
  char *desc;        /* method_desc, "" when absent (owned) */
  char *fp;          /* backbone fingerprint, "" when absent (owned) */
  char *label;       /* short display label: method, or "method (desc)" when the method
                        appears with several configs, + " [fp8]" with several backbones */
  int n_recs[PB_AGG_NTASKS];          /* records per task */
  const cJSON **recs[PB_AGG_NTASKS];  /* [task][n_recs[task]] records (borrowed from pb_agg.all) */
} pb_agg_row;

typedef struct {
  cJSON *all;         /* array of every accepted record (owned) */
  int n_rows;
  pb_agg_row *rows;   /* [n_rows], in the order described above */
  int task_present[PB_AGG_NTASKS]; /* 1 when some row has a record of that task */
  int n_skipped;      /* records without a usable task/method (or another schema) */
  int n_torn;         /* unparseable lines (pb_results_read's n_bad), over all files */
} pb_agg;

/* Reads the JSONL files [n_files] and groups their records. When warn != NULL, prints one
 * line per file with torn/unparseable lines ("WHO: warning: FILE: skipped N ...") and one
 * for skipped records. PB_ERR_NOTFOUND / PB_ERR_IO naming a file that cannot be read;
 * PB_ERR_FORMAT when no usable record is left ("no result records in ...").
 * On error *a is empty (safe to pb_agg_free). */
int pb_agg_load(const char *const *files, int n_files, const char *who, FILE *warn, pb_agg *a);
/* Groups the records of an array (each is copied; the caller keeps `records`). */
int pb_agg_build(const cJSON *records, pb_agg *a);
void pb_agg_free(pb_agg *a);

/* The number at a path of object keys (NULL-terminated key list). Returns 1 and sets *v
 * when it exists and is a number; 0 otherwise (absent, null, not a number). */
int pb_json_num(const cJSON *o, double *v, ...) __attribute__((sentinel));

/* Statistics of one number over a row's records of a task: the key path is NULL-terminated. */
pb_stat pb_agg_stat(const pb_agg_row *r, int task, ...) __attribute__((sentinel));

/* GLUE score of a (row, task) x100 (metrics.score mean); n = 0 when missing. */
pb_stat pb_agg_task_score(const pb_agg_row *r, int task);
/* Average GLUE score x100 of a row over the tasks it has (mean of per-task means);
 * *n_tasks gets how many tasks. Returns NAN-free 0 with *n_tasks = 0 when it has none. */
double pb_agg_avg_score(const pb_agg_row *r, int *n_tasks);

/* Row-level quantities (statistics over all of the row's records, any task). */
typedef enum {
  PB_AGG_TRAINABLE_NOHEAD = 0, /* params.trainable - params.head */
  PB_AGG_TRAINABLE,            /* params.trainable (with the task head) */
  PB_AGG_PCT_FULL,             /* 100 * (trainable - head) / params.backbone */
  PB_AGG_STORAGE_KB,           /* storage.file_bytes / 1024 */
  PB_AGG_OPS_TOKEN,            /* ops.per_token_T128.flops.method */
  PB_AGG_OPS_EXAMPLE,          /* ops.inference_T128.flops.method */
  PB_AGG_OPS_MERGED_EXAMPLE,   /* ops.method_merged_T128.flops.method (null: not mergeable) */
  PB_AGG_NQ
} pb_agg_quantity;
pb_stat pb_agg_row_stat(const pb_agg_row *r, pb_agg_quantity q);
/* The same quantity over one task's records of the row. */
pb_stat pb_agg_task_stat(const pb_agg_row *r, int task, pb_agg_quantity q);

#endif
