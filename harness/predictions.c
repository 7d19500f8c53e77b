/* Per-example prediction files (predictions.h). */
#include "harness/predictions.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "util/fileio.h"
#include "util/status.h"
#include "util/strbuf.h"

void pb_predictions_header(const pb_task *task, char *buf, size_t n) {
  size_t o = (size_t)snprintf(buf, n, "index\tgold\tprediction");
  for (int k = 0; !task->is_regression && k < task->num_labels && o < n; k++)
    o += (size_t)snprintf(buf + o, n - o, "\tlogit_%s", task->labels[k]);
}

/* file line of data row 0: 1, or 2 after a header */
static int first_data_line(const pb_dataset *ds, const char *split) {
  const pb_split_layout *L = pb_task_split(ds->task, split);
  return L && L->has_header ? 2 : 1;
}

int pb_example_row(const pb_dataset *ds, const char *split, int i) {
  return ds->ex[i].line - first_data_line(ds, split);
}

void pb_predictions_path(char *buf, size_t n, const char *stem, const char *split) {
  snprintf(buf, n, "%s.%s.predictions.tsv", stem, split);
}

int pb_predictions_write(const char *path, const pb_task *task, const char *split, const pb_dataset *ds,
                         const float *out, int n) {
  if (n != ds->n) return pb_set_error(PB_ERR_ARG, "%s: %d outputs for %d examples", path, n, ds->n);
  const int C = task->num_labels;
  pb_strbuf b = {0};
  char header[256];
  pb_predictions_header(task, header, sizeof header);
  pb_sb_add(&b, "%s\n", header);
  const int line0 = first_data_line(ds, split);
  for (int i = 0; i < n; i++) {
    const pb_example *e = &ds->ex[i];
    const float *o = out + (size_t)i * C;
    pb_sb_add(&b, "%d\t", e->line - line0);
    if (task->is_regression) {
      if (ds->has_labels) pb_sb_add(&b, "%.9g", (double)e->target);
      pb_sb_add(&b, "\t%.9g\n", (double)o[0]);
      continue;
    }
    if (ds->has_labels && e->label >= 0 && e->label < C) pb_sb_add(&b, "%s", task->labels[e->label]);
    int best = 0;
    for (int k = 1; k < C; k++)
      if (o[k] > o[best]) best = k;
    pb_sb_add(&b, "\t%s", task->labels[best]);
    for (int k = 0; k < C; k++) pb_sb_add(&b, "\t%.9g", (double)o[k]);
    pb_sb_add(&b, "\n");
  }
  char *text = pb_sb_take(&b);
  if (!text) return pb_set_error(PB_ERR_NOMEM, "%s: out of memory", path);
  int rc = pb_write_file_new(path, text, strlen(text));
  free(text);
  return rc;
}
