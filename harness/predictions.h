/* Per-example prediction files: one TSV per evaluated split, written by `run` and `eval`,
 * read by `compare` and `submit`.
 *
 * Layout (UTF-8, '\n' line ends, one header line, one row per example in split order):
 *   classification: index <TAB> gold <TAB> prediction <TAB> logit_<label0> <TAB> logit_<label1> ...
 *   regression:     index <TAB> gold <TAB> prediction
 * index      0-based data row of the example in the split's file (header excluded): for the
 *            official GLUE test files it equals their `index` column;
 * gold       the gold label string as in the task's files (pb_task.labels), the gold score
 *            for STS-B, or empty when the split has no labels (test);
 * prediction the predicted label string (argmax of the logits; ties: lowest class id), or
 *            the predicted score for STS-B;
 * logits     the classifier's raw outputs, "%.9g" (round-trips a float exactly).
 * The file is written atomically (util/fileio.h) and never replaces an existing file. */
#ifndef PB_PREDICTIONS_H
#define PB_PREDICTIONS_H

#include <stddef.h>

#include "harness/glue.h"

/* The header line of task's prediction files, tab-separated, without the newline. */
void pb_predictions_header(const pb_task *task, char *buf, size_t n);

/* The 0-based data row of example i of ds (its file line minus the header). */
int pb_example_row(const pb_dataset *ds, const char *split, int i);

/* Writes the prediction file of one split: out [n, C] are the model outputs of ds's examples
 * in order (C = task->num_labels; 1 for regression). PB_ERR_IO naming the path when it
 * cannot be written or when it exists already (nothing is replaced). */
int pb_predictions_write(const char *path, const pb_task *task, const char *split, const pb_dataset *ds,
                         const float *out, int n);

/* "<stem>.<split>.predictions.tsv" into buf[n]; stem is a path without extension. */
void pb_predictions_path(char *buf, size_t n, const char *stem, const char *split);

#endif
