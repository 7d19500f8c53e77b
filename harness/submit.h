/* `peftbench submit`: the GLUE leaderboard submission files from test-split predictions.
 *
 * Input: the prediction files that `run` / `eval` write (one TSV per evaluated split, UTF-8,
 * '\n' line ends, header first):
 *   classification  index<TAB>gold<TAB>prediction<TAB>logit_<label0><TAB>logit_<label1>[<TAB>logit_<label2>]
 *   regression      index<TAB>gold<TAB>prediction                     (STS-B)
 * with the task's label strings (pb_task.labels), `gold` empty for an unlabelled split and
 * `index` the 0-based data row of the split's file (= the `index` column of the GLUE test
 * files). Result records (JSONL) name them in "predictions": {"<split>": "<path>", ...}.
 *
 * Output: the eleven files of a GLUE submission (CoLA.tsv SST-2.tsv MRPC.tsv STS-B.tsv
 * MNLI-m.tsv MNLI-mm.tsv QNLI.tsv QQP.tsv RTE.tsv WNLI.tsv AX.tsv), each "index\tprediction"
 * then one row per test example in index order 0..n-1, '\n' line ends.
 *
 * Submission label strings (the GLUE baseline code, nyu-mll/GLUE-baselines src/main.py, and
 * jiant's GLUE formatter, which writes each task's own label strings):
 *   CoLA, SST-2, MRPC, QQP, WNLI  integers 0 / 1, as in the task's files
 *   MNLI-m, MNLI-mm, AX           entailment / neutral / contradiction
 *   QNLI, RTE                     entailment / not_entailment
 *   STS-B                         a number, clipped to [0, 5], three decimals ("%.3f")
 * WNLI's 1 means entailment and 0 not_entailment: the reverse of RTE/QNLI, whose class 0 is
 * entailment. The output is therefore never derived from a class id through another task's
 * label list: the predicted label string must be one of the target's submission strings and
 * is written as it is (WNLI "1" stays "1").
 */
#ifndef PB_SUBMIT_H
#define PB_SUBMIT_H

#include <stddef.h>

#define PB_SUBMIT_TARGETS 11

/* One file of the submission. */
typedef struct {
  const char *file;       /* official file name: "RTE.tsv" */
  const char *name;       /* command-line name (TASK=FILE): "rte", "mnli-m", "mnli-mm", "ax" */
  const char *task;       /* pb_task that predicts it: "rte"; "mnli" for mnli-m, mnli-mm and ax */
  const char *split;      /* that task's split: "test", "test_matched", "test_mismatched", "ax" */
  int official_rows;      /* rows of the official GLUE test file (headers excluded) */
  int n_labels;           /* 0: a number (STS-B) */
  const char *labels[3];  /* [n_labels] the strings the GLUE server expects, in the task's
                             class order (= pb_task.labels) */
  const char *meaning;    /* what the labels mean (for --help) */
} pb_submit_target;

/* The 11 targets in the order above; NULL out of range. */
const pb_submit_target *pb_submit_target_at(int i);
/* By name, case-insensitive, ignoring '-', '_' and '.': "rte", "SST-2", "mnli-m" (also
 * "mnli", "mnli_matched"), "mnli-mm" ("mnli_mismatched"), "ax" ("diagnostic"). NULL if none. */
const pb_submit_target *pb_submit_target_find(const char *name);

/* The number of rows the target's predictions must have: the data rows of the test file in
 * data_dir (loaded with harness/glue.h) when data_dir is non-NULL and holds it, else the
 * official size. Writes where the number came from into from[n] (the file's path, or
 * "the official GLUE test sizes"). A test file that exists but does not load is an error. */
int pb_submit_expected_rows(const pb_submit_target *tg, const char *data_dir, int *rows, char *from,
                            size_t n);

/* What pb_submit_convert found. */
typedef struct {
  int rows;       /* rows written (= expected rows) */
  int n_clipped;  /* STS-B predictions outside [0, 5] that were clipped */
} pb_submit_stats;

/* Checks one predictions file against the target and renders the submission file's bytes
 * into a malloc'd *out (*out_len bytes, NUL-terminated). Checks: the header is the target
 * task's; every row has its columns, an integer index, an EMPTY gold (a gold value means a
 * labelled split, not the test split), a prediction that is one of the target's submission
 * labels (classification; and the arg-max of its logits, ties allowed) or a finite number
 * (STS-B); expected_rows rows (rows_from says where that number came from, for the
 * message); indices exactly 0..expected_rows-1 (any order; written sorted). Errors: one line
 * "path[:LINE]: problem" in pb_last_error(), *out NULL. */
int pb_submit_convert(const pb_submit_target *tg, const char *pred_path, int expected_rows,
                      const char *rows_from, char **out, size_t *out_len, pb_submit_stats *st);

/* CLI: `peftbench submit --out DIR [--force] [--data-dir DIR] [--require-all]
 * [--where KEY=VALUE ...] SOURCE...` (see --help). argv[0] is the subcommand name. Returns the
 * exit status: 0 at least one file written, 1 bad input (one line naming the file), 2 usage. */
int pb_cmd_submit(int argc, char **argv);

#endif
