/* libFuzzer target: the GLUE TSV reader pb_glue_load_file (harness/glue.c) with every
 * split layout of every task.
 *
 * Input: byte 0 picks the layout (task x split, all of them) and the flags (labels required
 * or not, skip malformed rows or not); the rest is the file. On success every example must
 * point into the dataset's arena, carry a label in range (or a finite STS-B score in
 * [0, 5]) and a line number inside the file; then a subsample is taken. */
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "util/status.h"
#include "fuzz/fuzz_common.h"
#include "harness/glue.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (size < 1) return 0;
  int n_layouts = 0;
  for (int i = 0; i < pb_task_count(); i++) n_layouts += pb_task_at(i)->n_splits;
  int pick = data[0] % n_layouts, flags = (data[0] / n_layouts) & 3;
  const pb_task *t = NULL;
  const pb_split_layout *L = NULL;
  for (int i = 0; i < pb_task_count() && !L; i++) {
    const pb_task *ti = pb_task_at(i);
    if (pick < ti->n_splits) {
      t = ti;
      L = &ti->splits[pick];
    } else {
      pick -= ti->n_splits;
    }
  }
  const char *path = pbfz_write(".tsv", data + 1, size - 1);
  pb_dataset ds;
  int rc = pb_glue_load_file(t, L, path, flags, &ds);
  if (rc == PB_OK) {
    size_t lines = 1;
    for (size_t i = 1; i < size; i++) lines += data[i] == '\n';
    for (int i = 0; i < ds.n; i++) {
      const pb_example *e = &ds.ex[i];
      if (!e->a || (t->is_pair && !e->b) || (!t->is_pair && e->b)) abort();
      (void)strlen(e->a); /* NUL-terminated inside the arena (ASan checks) */
      if (e->b) (void)strlen(e->b);
      if (e->line < 1 || (size_t)e->line > lines) abort();
      if (ds.has_labels) {
        if (t->is_regression) {
          if (!isfinite(e->target) || e->target < 0 || e->target > 5) abort();
        } else if (e->label < 0 || e->label >= t->num_labels) {
          abort();
        }
      }
    }
    pb_dataset_subsample(&ds, ds.n / 2, data[0]);
    pb_dataset_free(&ds);
  } else {
    if (pb_last_error()[0] == '\0' || ds.ex || ds.arena) abort(); /* message, nothing left allocated */
  }
  return 0;
}
