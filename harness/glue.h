/* GLUE task registry and TSV loaders.
 *
 * The nine GLUE tasks (cola sst2 mrpc stsb qqp mnli qnli rte wnli) with their official TSV
 * layouts, label sets and metrics. Files are read from DATA_DIR/<TaskFolder>/<split file>,
 * e.g. DATA_DIR/SST-2/train.tsv, DATA_DIR/MNLI/dev_mismatched.tsv; the task folder is found
 * case-insensitively and ignoring '-' and '_' (SST-2, sst2, Sst_2 all match).
 *
 * Parsing: lines split on '\n' ('\r' before it is stripped), fields split on '\t'. NEVER
 * CSV quoting: a '"' is an ordinary character (RTE train has a row starting with an
 * unmatched quote). A UTF-8 BOM at the start is stripped (MRPC). A missing final newline
 * and blank trailing lines are accepted; a blank line before the last row is an error.
 * Every row must have exactly the layout's number of columns (for MNLI: as many as its
 * header). Labels must be one of the task's label strings exactly; STS-B scores must parse
 * fully as a finite float in [0, 5]. Text must be valid UTF-8.
 * Every error is one line (pb_last_error()) naming the file path and the 1-based physical
 * line number ("path:LINE: problem"), and the call returns a negative status.
 *
 * Malformed rows: an error by default. The official HF GLUE processors (QQP) silently skip
 * rows whose fields cannot be indexed; PB_GLUE_SKIP_MALFORMED does the same (rows with a
 * wrong column count only, counted in pb_dataset.n_skipped); label/UTF-8 errors still fail.
 */
#ifndef PB_GLUE_H
#define PB_GLUE_H

#include <stddef.h>

#include "harness/metrics.h"

#define PB_GLUE_MAX_SPLITS 8 /* MNLI: train, dev/test matched/mismatched, ax */
#define PB_COL_NONE (-1) /* column not present (single sentence: col_b; test: col_label) */
#define PB_COL_LAST (-2) /* the last column of the row (MNLI gold_label) */

/* The layout of one split's file. */
typedef struct {
  const char *split;      /* "train", "dev", "test", "dev_matched", ..., "ax" */
  const char *file;       /* file name inside the task folder, e.g. "dev_matched.tsv"; a name
                             starting with "../" is relative to DATA_DIR instead (MNLI's "ax":
                             "../diagnostic/diagnostic.tsv" = DATA_DIR/diagnostic/diagnostic.tsv) */
  int has_header;         /* 1: the first line is a header (checked, skipped) */
  int ncols;              /* exact columns per row; 0: as many as the header has */
  int col_a;              /* column of the first sentence */
  int col_b;              /* column of the second sentence, PB_COL_NONE for single-sentence */
  int col_label;          /* label/score column, PB_COL_LAST, or PB_COL_NONE (unlabelled test) */
  const char *hdr_a;      /* expected header names of col_a, col_b, col_label */
  const char *hdr_b;      /*   (NULL: not checked / no header) */
  const char *hdr_label;
} pb_split_layout;

typedef struct pb_task {
  const char *name;         /* canonical short name: "cola", "sst2", ..., "mnli" */
  const char *dir;          /* official folder name: "CoLA", "SST-2", "MRPC", "STS-B", ... */
  int is_pair;              /* 1: sentence pairs (a, b); 0: single sentence (a only) */
  int is_regression;        /* 1: STS-B (float target in [0, 5]) */
  int num_labels;           /* classes; 1 for regression (model output width) */
  const char *labels[3];    /* [num_labels] label strings as in the files; index = class id
                               (NULL for regression) */
  int n_metrics;            /* number of metrics reported */
  pb_metric_id metrics[2];  /* [n_metrics], main metric first */
  int n_splits;
  pb_split_layout splits[PB_GLUE_MAX_SPLITS]; /* [n_splits] */
  int n_eval;               /* evaluation splits: 1, or 2 for MNLI */
  const char *eval_splits[2]; /* [n_eval]: {"dev"} or {"dev_matched", "dev_mismatched"} */
} pb_task;

int pb_task_count(void);                  /* 9 */
const pb_task *pb_task_at(int i);         /* 0 <= i < count, in GLUE order; NULL otherwise */
/* Case-insensitive, ignoring '-' and '_': "SST-2", "sst2", "STS-B", "mnli". NULL if unknown. */
const pb_task *pb_task_find(const char *name);
/* Writes "cola, sst2, mrpc, stsb, qqp, mnli, qnli, rte, wnli" (truncated to n). */
void pb_task_names(char *out, size_t n);
/* The layout of a split; "dev"/"test" are aliases of MNLI's matched splits. NULL if none. */
const pb_split_layout *pb_task_split(const pb_task *t, const char *split);

typedef struct {
  const char *a;  /* first sentence, NUL-terminated, points into the dataset's arena */
  const char *b;  /* second sentence, NULL for single-sentence tasks */
  int label;      /* class id (index into task->labels); -1 when unlabelled or regression */
  float target;   /* STS-B score in [0, 5]; for classification (float)label; 0 if unlabelled */
  int line;       /* 1-based line number in the source file */
} pb_example;

typedef struct {
  pb_example *ex;   /* [n] examples, in file order (or subsample order) */
  int n;            /* number of examples */
  int has_labels;   /* 1 when label/target are filled */
  int n_skipped;    /* malformed rows skipped (only with PB_GLUE_SKIP_MALFORMED) */
  const pb_task *task;
  char path[1024];  /* the file the examples came from */
  char *arena;      /* owns the text: the whole file, fields NUL-terminated in place */
} pb_dataset;

/* Load flags. */
#define PB_GLUE_LABELS 1          /* labels are required (error on an unlabelled test split) */
#define PB_GLUE_SKIP_MALFORMED 2  /* skip rows with a wrong column count instead of failing */

/* Loads one split. with_labels = 1: the split must carry labels (train/dev); 0: text only
 * (labels are still parsed when the file has them; an unlabelled test split is allowed).
 * On error *out is left empty (safe to pb_dataset_free). */
int pb_glue_load(const pb_task *t, const char *data_dir, const char *split, int with_labels,
                 pb_dataset *out);
int pb_glue_load_ex(const pb_task *t, const char *data_dir, const char *split, int flags,
                    pb_dataset *out);
/* Loads any file with an explicit layout (used by pb_glue_load; handy for tests). */
int pb_glue_load_file(const pb_task *t, const pb_split_layout *L, const char *path, int flags,
                      pb_dataset *out);
void pb_dataset_free(pb_dataset *ds);

/* Keeps a deterministic random subset of n examples: seeded Fisher-Yates shuffle of the
 * indices (util/rng.h), first n, then re-sorted into file order. n <= 0 or n >= ds->n:
 * no change. Same (file, n, seed) -> same subset on every machine. */
int pb_dataset_subsample(pb_dataset *ds, int n, unsigned long long seed);

/* Resolves the GLUE data folder into out[n]:
 *   1. cli_dir (--data-dir) if non-empty — must exist;
 *   2. else $PEFTBENCH_DATA if set and non-empty — must exist;
 *   3. else ../shared/data/glue relative to the current directory, if it exists;
 *   4. else PB_SOURCE_DIR "/../shared/data/glue" (beside the source checkout), if it exists.
 * A given folder that holds a "glue" subfolder but no task folder resolves to that subfolder
 * (so DATA or DATA/glue both work). When nothing is found: PB_ERR_NOTFOUND with one line
 * saying where to put a standard GLUE download (DIR/SST-2/train.tsv, ...). */
int pb_glue_data_dir(const char *cli_dir, char *out, size_t n);
/* Same, with the environment value and fallback candidates given explicitly (testable). */
int pb_glue_data_dir_from(const char *cli_dir, const char *env_dir, const char *const *fallbacks,
                          int n_fallbacks, char *out, size_t n);

#endif
