/* Aggregation of result records: grouping by method configuration and task, statistics over
 * seeds (aggregate.h). */
#include "harness/aggregate.h"

#include <math.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "backbone/status.h"
#include "harness/glue.h"
#include "harness/results.h"
#include "harness/strbuf.h"

/* ---------------------------------------------------------------- JSON helpers */

static const cJSON *jpath_v(const cJSON *o, va_list ap) {
  const char *k;
  while (o && (k = va_arg(ap, const char *)) != NULL)
    o = cJSON_IsObject(o) ? cJSON_GetObjectItemCaseSensitive(o, k) : NULL;
  return o;
}

int pb_json_num(const cJSON *o, double *v, ...) {
  va_list ap;
  va_start(ap, v);
  const cJSON *x = jpath_v(o, ap);
  va_end(ap);
  if (!cJSON_IsNumber(x) || !isfinite(x->valuedouble)) return 0;
  *v = x->valuedouble;
  return 1;
}

const char *pb_json_str(const cJSON *o, const char *key) {
  const cJSON *x = cJSON_IsObject(o) ? cJSON_GetObjectItemCaseSensitive(o, key) : NULL;
  return cJSON_IsString(x) && x->valuestring ? x->valuestring : NULL;
}

/* ---------------------------------------------------------------- statistics */

void pb_acc_add(pb_acc *a, double x) {
  if (a->n == a->cap) {
    int cap = a->cap ? a->cap * 2 : 8;
    double *v = realloc(a->v, (size_t)cap * sizeof *v);
    if (!v) return; /* OOM: the value is dropped (n stays right for what is kept) */
    a->v = v;
    a->cap = cap;
  }
  a->v[a->n++] = x;
}

pb_stat pb_acc_stat(pb_acc *a) {
  pb_stat s = {0, 0, 0, 0, 0};
  s.n = a->n;
  if (a->n > 0) {
    double sum = 0;
    s.min = s.max = a->v[0];
    for (int i = 0; i < a->n; i++) {
      sum += a->v[i];
      if (a->v[i] < s.min) s.min = a->v[i];
      if (a->v[i] > s.max) s.max = a->v[i];
    }
    s.mean = sum / a->n;
    if (a->n > 1) {
      double ss = 0;
      for (int i = 0; i < a->n; i++) ss += (a->v[i] - s.mean) * (a->v[i] - s.mean);
      s.std = sqrt(ss / (a->n - 1));
    }
  }
  free(a->v);
  memset(a, 0, sizeof *a);
  return s;
}

pb_stat pb_agg_stat(const pb_agg_row *r, int task, ...) {
  pb_acc acc = {0};
  if (task >= 0 && task < PB_AGG_NTASKS) {
    for (int i = 0; i < r->n_recs[task]; i++) {
      va_list ap;
      va_start(ap, task);
      const cJSON *x = jpath_v(r->recs[task][i], ap);
      va_end(ap);
      if (cJSON_IsNumber(x) && isfinite(x->valuedouble)) pb_acc_add(&acc, x->valuedouble);
    }
  }
  return pb_acc_stat(&acc);
}

pb_stat pb_agg_task_score(const pb_agg_row *r, int task) {
  pb_stat s = pb_agg_stat(r, task, "metrics", "score", NULL);
  s.mean *= 100, s.std *= 100, s.min *= 100, s.max *= 100;
  return s;
}

double pb_agg_avg_score(const pb_agg_row *r, int *n_tasks) {
  double sum = 0;
  int k = 0;
  for (int t = 0; t < PB_AGG_NTASKS; t++) {
    pb_stat s = pb_agg_task_score(r, t);
    if (s.n > 0) sum += s.mean, k++;
  }
  if (n_tasks) *n_tasks = k;
  return k ? sum / k : 0;
}

/* One quantity of one record; 1 when present. */
static int rec_quantity(const cJSON *rec, pb_agg_quantity q, double *v) {
  double tr, hd, bb, x;
  switch (q) {
    case PB_AGG_TRAINABLE_NOHEAD:
      if (!pb_json_num(rec, &tr, "params", "trainable", NULL)) return 0;
      if (!pb_json_num(rec, &hd, "params", "head", NULL)) hd = 0;
      *v = tr - hd;
      return 1;
    case PB_AGG_TRAINABLE: return pb_json_num(rec, v, "params", "trainable", NULL);
    case PB_AGG_PCT_FULL:
      if (!pb_json_num(rec, &tr, "params", "trainable", NULL) ||
          !pb_json_num(rec, &bb, "params", "backbone", NULL) || bb <= 0)
        return 0;
      if (!pb_json_num(rec, &hd, "params", "head", NULL)) hd = 0;
      *v = 100.0 * (tr - hd) / bb;
      return 1;
    case PB_AGG_STORAGE_KB:
      if (!pb_json_num(rec, &x, "storage", "file_bytes", NULL) || x < 0) return 0;
      *v = x / 1024.0;
      return 1;
    case PB_AGG_OPS_TOKEN: return pb_json_num(rec, v, "ops", "per_token_T128", "flops", "method", NULL);
    case PB_AGG_OPS_EXAMPLE: return pb_json_num(rec, v, "ops", "inference_T128", "flops", "method", NULL);
    case PB_AGG_OPS_MERGED_EXAMPLE:
      return pb_json_num(rec, v, "ops", "method_merged_T128", "flops", "method", NULL);
    default: return 0;
  }
}

pb_stat pb_agg_task_stat(const pb_agg_row *r, int task, pb_agg_quantity q) {
  pb_acc acc = {0};
  double v;
  if (task >= 0 && task < PB_AGG_NTASKS)
    for (int i = 0; i < r->n_recs[task]; i++)
      if (rec_quantity(r->recs[task][i], q, &v) && isfinite(v)) pb_acc_add(&acc, v);
  return pb_acc_stat(&acc);
}

pb_stat pb_agg_row_stat(const pb_agg_row *r, pb_agg_quantity q) {
  pb_acc acc = {0};
  double v;
  for (int t = 0; t < PB_AGG_NTASKS; t++)
    for (int i = 0; i < r->n_recs[t]; i++)
      if (rec_quantity(r->recs[t][i], q, &v) && isfinite(v)) pb_acc_add(&acc, v);
  return pb_acc_stat(&acc);
}

/* ---------------------------------------------------------------- grouping */

static int method_rank(const char *m) {
  static const char *order[] = {"full", "lora", "adapter", "layerconnect"};
  for (int i = 0; i < 4; i++)
    if (strcmp(m, order[i]) == 0) return i;
  return 4;
}

static int row_cmp(const void *pa, const void *pb) {
  const pb_agg_row *a = pa, *b = pb;
  int ra = method_rank(a->method), rb = method_rank(b->method);
  if (ra != rb) return ra < rb ? -1 : 1;
  int c = strcmp(a->method, b->method);
  if (c) return c;
  if ((c = strcmp(a->desc, b->desc))) return c;
  return strcmp(a->fp, b->fp);
}

static int task_index(const char *name) {
  const pb_task *t = name ? pb_task_find(name) : NULL;
  if (!t) return -1;
  for (int i = 0; i < pb_task_count() && i < PB_AGG_NTASKS; i++)
    if (pb_task_at(i) == t) return i;
  return -1;
}

void pb_agg_free(pb_agg *a) {
  if (!a) return;
  for (int i = 0; i < a->n_rows; i++) {
    pb_agg_row *r = &a->rows[i];
    free(r->method), free(r->desc), free(r->fp), free(r->label);
    for (int t = 0; t < PB_AGG_NTASKS; t++) free(r->recs[t]);
  }
  free(a->rows);
  cJSON_Delete(a->all);
  memset(a, 0, sizeof *a);
}

static int add_rec(pb_agg_row *r, int t, const cJSON *rec) {
  const cJSON **p = realloc(r->recs[t], (size_t)(r->n_recs[t] + 1) * sizeof *p);
  if (!p) return PB_ERR_NOMEM;
  p[r->n_recs[t]++] = rec;
  r->recs[t] = p;
  return PB_OK;
}

/* Groups the records of `all` (taken over by a; unusable records are removed). */
static int agg_group(cJSON *all, pb_agg *a) {
  a->all = all;
  cJSON *rec = all->child;
  while (rec) {
    cJSON *next = rec->next;
    const char *schema = pb_json_str(rec, "schema");
    const char *method = pb_json_str(rec, "method");
    int t = task_index(pb_json_str(rec, "task"));
    if (!cJSON_IsObject(rec) || t < 0 || !method || !method[0] ||
        (schema && strcmp(schema, PB_RESULT_SCHEMA) != 0)) {
      cJSON_Delete(cJSON_DetachItemViaPointer(all, rec));
      a->n_skipped++;
      rec = next;
      continue;
    }
    const char *desc = pb_json_str(rec, "method_desc");
    const cJSON *bb = cJSON_GetObjectItemCaseSensitive(rec, "backbone");
    const char *fp = pb_json_str(bb, "fingerprint");
    if (!desc) desc = "";
    if (!fp) fp = "";
    int k;
    for (k = 0; k < a->n_rows; k++)
      if (!strcmp(a->rows[k].method, method) && !strcmp(a->rows[k].desc, desc) &&
          !strcmp(a->rows[k].fp, fp))
        break;
    if (k == a->n_rows) {
      pb_agg_row *rows = realloc(a->rows, (size_t)(a->n_rows + 1) * sizeof *rows);
      if (!rows) return pb_set_error(PB_ERR_NOMEM, "table: out of memory");
      a->rows = rows;
      memset(&rows[k], 0, sizeof rows[k]);
      a->n_rows++;
      rows[k].method = strdup(method);
      rows[k].desc = strdup(desc);
      rows[k].fp = strdup(fp);
      if (!rows[k].method || !rows[k].desc || !rows[k].fp)
        return pb_set_error(PB_ERR_NOMEM, "table: out of memory");
    }
    if (add_rec(&a->rows[k], t, rec)) return pb_set_error(PB_ERR_NOMEM, "table: out of memory");
    a->task_present[t] = 1;
    rec = next;
  }
  if (a->n_rows > 1) qsort(a->rows, (size_t)a->n_rows, sizeof *a->rows, row_cmp);
  int multi_fp = 0;
  for (int i = 1; i < a->n_rows; i++)
    if (strcmp(a->rows[i].fp, a->rows[0].fp)) multi_fp = 1;
  for (int i = 0; i < a->n_rows; i++) {
    pb_agg_row *r = &a->rows[i];
    int multi_cfg = 0;
    for (int j = 0; j < a->n_rows; j++)
      if (j != i && !strcmp(a->rows[j].method, r->method) && strcmp(a->rows[j].desc, r->desc))
        multi_cfg = 1;
    pb_strbuf b = {0};
    pb_sb_add(&b, "%s", r->method);
    if (multi_cfg && r->desc[0]) pb_sb_add(&b, " (%s)", r->desc);
    if (multi_fp) pb_sb_add(&b, " [%.8s]", r->fp[0] ? r->fp : "?");
    r->label = pb_sb_take(&b);
    if (!r->label) return pb_set_error(PB_ERR_NOMEM, "table: out of memory");
  }
  return PB_OK;
}

int pb_agg_build(const cJSON *records, pb_agg *a) {
  memset(a, 0, sizeof *a);
  if (!cJSON_IsArray(records)) return pb_set_error(PB_ERR_ARG, "table: records must be an array");
  cJSON *all = cJSON_Duplicate(records, 1);
  if (!all) return pb_set_error(PB_ERR_NOMEM, "table: out of memory");
  int rc = agg_group(all, a);
  if (!rc && a->n_rows == 0) rc = pb_set_error(PB_ERR_FORMAT, "table: no result records");
  if (rc) pb_agg_free(a);
  return rc;
}

int pb_agg_load(const char *const *files, int n_files, const char *who, FILE *warn, pb_agg *a) {
  memset(a, 0, sizeof *a);
  if (n_files <= 0) return pb_set_error(PB_ERR_ARG, "no input files");
  cJSON *all = cJSON_CreateArray();
  if (!all) return pb_set_error(PB_ERR_NOMEM, "table: out of memory");
  for (int f = 0; f < n_files; f++) {
    cJSON *arr = NULL;
    int bad = 0;
    int rc = pb_results_read(files[f], &arr, &bad);
    if (rc) {
      cJSON_Delete(all);
      return rc;
    }
    a->n_torn += bad;
    if (bad && warn)
      fprintf(warn, "%s: warning: %s: skipped %d torn or unparseable line%s\n", who, files[f], bad,
              bad == 1 ? "" : "s");
    while (arr->child) cJSON_AddItemToArray(all, cJSON_DetachItemViaPointer(arr, arr->child));
    cJSON_Delete(arr);
  }
  int torn = a->n_torn;
  int rc = agg_group(all, a);
  a->n_torn = torn;
  if (!rc && a->n_skipped && warn)
    fprintf(warn, "%s: warning: skipped %d record%s without a known task and method (or of another schema)\n",
            who, a->n_skipped, a->n_skipped == 1 ? "" : "s");
  if (!rc && a->n_rows == 0)
    rc = pb_set_error(PB_ERR_FORMAT, "no result records in %s%s", files[0], n_files > 1 ? " ..." : "");
  if (rc) pb_agg_free(a);
  return rc;
}

