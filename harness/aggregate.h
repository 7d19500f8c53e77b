/* Aggregation of result records (harness/results.h, schema peftbench-result/1), shared by
 * `peftbench table` and `peftbench plot`.
 *
 * Grouping rule. Records are averaged together only when their whole training configuration
 * is identical except the seed (and the task, which is the column): one "row" per
 * configuration and, inside a row, one cell per GLUE task. The configuration of a record is
 * its flat "config" object (every training option but task and seed: method, method_desc,
 * backbone fingerprint, data, lengths, epochs/steps, batch, lr, warm-up, weight decay,
 * dropouts, ...; whatever keys it holds) — see pb_record_config for records written before
 * "config" existed ("legacy" records). Two configurations are identical when they have the
 * same set of keys and every key has the same value: strings byte for byte, integers exactly,
 * other numbers at 6 significant digits (hyperparameters are stored as float32: 0.0005 and
 * 0.00050000002 are one value); keys "task" and "seed", should a config hold them, are ignored.
 * A legacy record is never averaged with a record that carries "config" (its derived
 * configuration lacks data_seed, max_train, dropouts, ..., so identity cannot be shown), even
 * when their common keys agree; legacy records are averaged with each other under the same
 * rule over their derived keys.
 *
 * Per-task protocol. The keys data_sha256, data_seed, max_train, max_eval, max_len, epochs and
 * steps describe how one task was trained (its data, its length, its budget) and may differ
 * between the tasks of one row: a reproduction that trains SST-2 1 epoch at length 64 and the
 * small tasks 3 epochs at 128, each on its own data (data_sha256), is one row per method. They
 * are compared per cell instead: a record joins a row when every other key agrees and the
 * row's cell of its task is empty or holds records with the same protocol keys; otherwise it
 * starts (or joins) another row. Records join the first such row in input order. A row's
 * config then holds, for each protocol key, the value its cells share, or their distinct
 * values in task order joined by "/" ("64/128"); rows of one method are labelled by a
 * protocol key only when two of them differ in it on the same task. pb_agg_protocol_note
 * names the protocol keys that differ between tasks.
 *
 * Inside one (row, task) cell two records with the same seed are duplicates (a re-run), not
 * two seeds: the later one in input order (file order, then line order) is kept, the earlier
 * dropped and counted (pb_agg.n_dup; pb_agg_load warns). Records without a numeric seed are
 * never duplicates.
 *
 * Every number shown is the mean over the records of a (row, task) cell (the seeds), with the
 * sample standard deviation (n - 1 in the denominator) when there is more than one record.
 * Rows are ordered full, lora, adapter, layerconnect, then other methods by name; ties by
 * method_desc, then fingerprint (byte order), then rows with "config" before legacy rows, then
 * by configuration (keys in byte order; absent before present; numbers by value, strings by
 * byte order). Tasks appear in GLUE order (pb_task_at). Same input -> same result.
 *
 * Labels. When a method has several rows, the keys whose values differ between them (other
 * than method_desc and backbone, which have their own table columns / label parts) name the
 * rows: a row's label lists "key=value" for each such key where the row's value is not the one
 * most of the method's rows share (every row lists it when no single value is most common), so
 * lora rows at lr 1e-4, lr 3e-3 and (max_train 64, epochs 2) read "lora (lr=0.0001)",
 * "lora (lr=0.003)", "lora (max_train=64, epochs=2, lr=0.0005)". A key missing from a row
 * reads "key=none"; keys a legacy row cannot have are not compared with it, and such a row is
 * tagged "legacy record" instead (only when the method also has rows with "config").
 * pb_agg.splits lists, per method, the differing keys and their most common values.
 *
 * Records that are not JSON objects with a known "task" and a string "method", that carry
 * another "schema", or whose "config" is not an object are skipped and counted
 * (pb_agg.n_skipped). */
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

/* The training configuration of a record: its "config" object, or for a legacy record
 * (no "config") one derived from the fields it has, with the same key names:
 *   method, method_desc, backbone (= backbone.fingerprint), data_dir (data.data_dir),
 *   max_len (data.max_len), epochs (train.epochs), batch (train.batch), lr (train.lr),
 *   weight_decay (train.weight_decay)
 * (a field the record lacks is left out). *out gets a new object (cJSON_Delete it).
 * PB_ERR_ARG when rec is not an object; PB_ERR_FORMAT when its "config" is not an object;
 * PB_ERR_NOMEM. */
int pb_record_config(const cJSON *rec, cJSON **out);
/* 1 when rec has no "config" (its configuration is derived, see pb_record_config). */
int pb_record_is_legacy(const cJSON *rec);
/* 1 when records a and b have the same training configuration under the grouping rule above
 * (identical keys and values, numbers at 6 significant digits, task and seed ignored, legacy
 * never equal to non-legacy); 0 otherwise, also when either config is unusable. */
int pb_record_same_config(const cJSON *a, const cJSON *b);
/* 1 when two configuration objects are identical under that rule (no legacy check). */
int pb_config_equal(const cJSON *a, const cJSON *b);
/* A configuration value as the text used to compare and to label it: strings as they are,
 * integers in full, other numbers %.6g, true/false/null, objects/arrays as compact JSON.
 * Malloc'd; NULL on OOM. */
char *pb_config_value_text(const cJSON *v);

/* One training configuration. */
typedef struct {
  char *method;      /* "lora" (owned) */
  char *desc;        /* method_desc, "" when absent (owned) */
  char *fp;          /* backbone fingerprint, "" when absent (owned) */
  cJSON *config;     /* the configuration shared by the row's records (owned; pb_record_config
                        of its first record, protocol keys summarised over the cells: see
                        "Per-task protocol" above) */
  int legacy;        /* 1: the records have no "config" (derived configuration) */
  char *diff;        /* what tells this row from the method's other rows, besides
                        method_desc and backbone: "lr=0.003, epochs=2", "legacy record";
                        "" when the method has one row (owned) */
  char *name;        /* method, or "method (diff)" when diff is not empty (owned): the
                        Method column of the tables */
  char *label;       /* short display label for figures: method, then in parentheses the
                        desc when the method appears with several descs and diff; then
                        " [fp8]" with several backbones (owned) */
  int n_recs[PB_AGG_NTASKS];          /* records per task */
  const cJSON **recs[PB_AGG_NTASKS];  /* [task][n_recs[task]] records (borrowed from pb_agg.all) */
  cJSON *proto[PB_AGG_NTASKS];        /* [task] the configuration of the cell's first record (its
                                         protocol keys are the cell's; NULL: empty cell; owned) */
} pb_agg_row;

/* A method with several rows: the keys its rows differ in. */
typedef struct {
  char *method;      /* "lora" (owned) */
  char *keys;        /* "max_train, epochs, lr": keys shown in labels, in config order (owned) */
  char *modal;       /* "max_train=2000, epochs=3": the most common value of each of those
                        keys that has one (a label leaves such a value out); "" (owned) */
  int legacy_mix;    /* 1: the method has legacy rows and rows with "config" */
} pb_agg_split;

typedef struct {
  cJSON *all;         /* array of every accepted record (owned) */
  int n_rows;
  pb_agg_row *rows;   /* [n_rows], in the order described above */
  int task_present[PB_AGG_NTASKS]; /* 1 when some row has a record of that task */
  int n_skipped;      /* records without a usable task/method/config (or another schema) */
  int n_torn;         /* unparseable lines (pb_results_read's n_bad), over all files */
  int n_dup;          /* records dropped as duplicates (same config, task and seed as a
                         later record) */
  char dup_example[160]; /* the first duplicate: "lora rte seed 0" ("" when none) */
  int n_splits;
  pb_agg_split *splits; /* [n_splits] methods whose rows differ in labelled keys, row order */
  cJSON *retrieval;   /* records of the retrieval family ("task_family": "retrieval", `peftbench
                         retrieve`), kept apart from the GLUE rows for the retrieval table and
                         figure (harness/iragg.h); NULL when none (owned) */
  int n_retrieval;
} pb_agg;

/* Reads the JSONL files [n_files] and groups their records. When warn != NULL, prints one
 * line per file with torn/unparseable lines ("WHO: warning: FILE: skipped N ..."), one for
 * skipped records and one for duplicates ("WHO: warning: N duplicate records ..."). PB_ERR_NOTFOUND / PB_ERR_IO naming a file that cannot be read;
 * PB_ERR_FORMAT when no usable record is left ("no result records in ...").
 * On error *a is empty (safe to pb_agg_free). */
int pb_agg_load(const char *const *files, int n_files, const char *who, FILE *warn, pb_agg *a);
/* Groups the records of an array (each is copied; the caller keeps `records`). */
int pb_agg_build(const cJSON *records, pb_agg *a);
/* The protocol keys (max_len, epochs, max_train, ...; not data_sha256) whose values differ
 * between tasks, for a table note: "max_len: 128 (CoLA, MRPC), 64 (SST-2); epochs: 3 (CoLA,
 * MRPC), 1 (SST-2)", values in order of first appearance in task order ("" when every task
 * holds the same values). Malloc'd; NULL on OOM. */
char *pb_agg_protocol_note(const pb_agg *a);
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

/* Spread over seeds of a row's average GLUE score (x100): sqrt(sum of the per-task sample
 * variances) / k over its k tasks — the std of one seed's average when runs of different tasks
 * vary independently (a seed number pairs nothing across tasks: each (task, seed) is its own
 * run). NAN when some task of the row has fewer than 2 records. *n_min (may be NULL) gets the
 * smallest number of records of a task of the row (0 when none). */
double pb_agg_avg_score_sd(const pb_agg_row *r, int *n_min);

/* Majority-class baseline of a task x100: the mean of metrics.majority_baseline over every
 * record of the task (any row); NAN when none has a number (regression tasks record null). */
double pb_agg_task_majority(const pb_agg *a, int task);

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
