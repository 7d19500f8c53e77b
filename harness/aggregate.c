/* Aggregation of result records: grouping by method configuration and task, statistics over
 * seeds (aggregate.h). */
#include "harness/aggregate.h"
#include "methods/method.h"

#include <math.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "util/status.h"
#include "harness/glue.h"
#include "harness/results.h"
#include "util/strbuf.h"

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

double pb_agg_avg_score_sd(const pb_agg_row *r, int *n_min) {
  double var = 0;
  int k = 0, nmin = 0, ok = 1;
  for (int t = 0; t < PB_AGG_NTASKS; t++) {
    pb_stat s = pb_agg_task_score(r, t);
    if (s.n == 0) continue;
    if (k == 0 || s.n < nmin) nmin = s.n;
    if (s.n < 2) ok = 0;
    var += s.std * s.std;
    k++;
  }
  if (n_min) *n_min = nmin;
  return ok && k ? sqrt(var) / k : NAN;
}

double pb_agg_task_majority(const pb_agg *a, int task) {
  pb_acc acc = {0};
  double v;
  for (int i = 0; task >= 0 && task < PB_AGG_NTASKS && i < a->n_rows; i++)
    for (int j = 0; j < a->rows[i].n_recs[task]; j++)
      if (pb_json_num(a->rows[i].recs[task][j], &v, "metrics", "majority_baseline", NULL)) pb_acc_add(&acc, 100.0 * v);
  pb_stat s = pb_acc_stat(&acc);
  return s.n ? s.mean : NAN;
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

/* ---------------------------------------------------------------- configurations */

int pb_record_is_legacy(const cJSON *rec) {
  return cJSON_IsObject(rec) && !cJSON_GetObjectItemCaseSensitive(rec, "config");
}

/* copies the number/string at a key path into cfg[key] when present */
static int derive_key(cJSON *cfg, const char *key, const cJSON *v) {
  cJSON *c = NULL;
  if (cJSON_IsString(v) && v->valuestring) c = cJSON_CreateString(v->valuestring);
  else if (cJSON_IsNumber(v)) c = cJSON_CreateNumber(v->valuedouble);
  else return PB_OK;
  if (!c || !cJSON_AddItemToObject(cfg, key, c)) {
    cJSON_Delete(c);
    return PB_ERR_NOMEM;
  }
  return PB_OK;
}

static const cJSON *obj_get(const cJSON *o, const char *k) {
  return cJSON_IsObject(o) ? cJSON_GetObjectItemCaseSensitive(o, k) : NULL;
}

int pb_record_config(const cJSON *rec, cJSON **out) {
  *out = NULL;
  if (!cJSON_IsObject(rec)) return pb_set_error(PB_ERR_ARG, "record is not a JSON object");
  const cJSON *c = cJSON_GetObjectItemCaseSensitive(rec, "config");
  if (c) {
    if (!cJSON_IsObject(c)) return pb_set_error(PB_ERR_FORMAT, "record \"config\" is not an object");
    *out = cJSON_Duplicate(c, 1);
    return *out ? PB_OK : pb_set_error(PB_ERR_NOMEM, "out of memory");
  }
  /* legacy record: the configuration keys its fields hold (results.h schema) */
  cJSON *cfg = cJSON_CreateObject();
  if (!cfg) return pb_set_error(PB_ERR_NOMEM, "out of memory");
  const cJSON *data = obj_get(rec, "data"), *train = obj_get(rec, "train");
  struct {
    const char *key;
    const cJSON *v;
  } d[] = {{"method", obj_get(rec, "method")},
           {"method_desc", obj_get(rec, "method_desc")},
           {"backbone", obj_get(obj_get(rec, "backbone"), "fingerprint")},
           {"data_dir", obj_get(data, "data_dir")},
           {"max_len", obj_get(data, "max_len")},
           {"epochs", obj_get(train, "epochs")},
           {"batch", obj_get(train, "batch")},
           {"lr", obj_get(train, "lr")},
           {"weight_decay", obj_get(train, "weight_decay")}};
  for (size_t i = 0; i < sizeof d / sizeof d[0]; i++)
    if (derive_key(cfg, d[i].key, d[i].v)) {
      cJSON_Delete(cfg);
      return pb_set_error(PB_ERR_NOMEM, "out of memory");
    }
  *out = cfg;
  return PB_OK;
}

/* the keys a legacy configuration can have (pb_record_config) */
static int legacy_key(const char *k) {
  static const char *keys[] = {"method", "method_desc", "backbone", "data_dir", "max_len",
                               "epochs", "batch", "lr", "weight_decay"};
  for (size_t i = 0; i < sizeof keys / sizeof keys[0]; i++)
    if (!strcmp(k, keys[i])) return 1;
  return 0;
}

/* keys that never take part in a comparison */
static int ignored_key(const char *k) { return !k || !strcmp(k, "task") || !strcmp(k, "seed"); }

/* keys of a task's training protocol (aggregate.h): compared per cell, not per row */
static int task_key(const char *k) {
  static const char *keys[] = {"data_sha256", "data_seed", "max_train", "max_eval", "max_len", "epochs", "steps"};
  for (size_t i = 0; k && i < sizeof keys / sizeof keys[0]; i++)
    if (!strcmp(k, keys[i])) return 1;
  return 0;
}

/* which keys a comparison looks at */
enum { CMP_ALL, CMP_ROW, CMP_TASK };
static int compared(const char *k, int mode) {
  if (ignored_key(k)) return 0;
  return mode == CMP_ALL || (mode == CMP_ROW) == !task_key(k);
}

char *pb_config_value_text(const cJSON *v) {
  char buf[64];
  if (cJSON_IsString(v)) return strdup(v->valuestring ? v->valuestring : "");
  if (cJSON_IsNumber(v)) {
    double x = v->valuedouble;
    if (!isfinite(x)) snprintf(buf, sizeof buf, "%s", isnan(x) ? "nan" : x > 0 ? "inf" : "-inf");
    else if (x == floor(x) && fabs(x) < 1e15) snprintf(buf, sizeof buf, "%.0f", x);
    else snprintf(buf, sizeof buf, "%.6g", x);
    if (!strcmp(buf, "-0")) strcpy(buf, "0");
    return strdup(buf);
  }
  if (cJSON_IsTrue(v)) return strdup("true");
  if (cJSON_IsFalse(v)) return strdup("false");
  if (!v || cJSON_IsNull(v)) return strdup("null");
  return cJSON_PrintUnformatted(v);
}

/* 1 when two values compare equal (type and text) */
static int value_equal(const cJSON *a, const cJSON *b) {
  if (cJSON_IsNumber(a) != cJSON_IsNumber(b) || cJSON_IsString(a) != cJSON_IsString(b)) return 0;
  char *x = pb_config_value_text(a), *y = pb_config_value_text(b);
  int eq = x && y && !strcmp(x, y);
  free(x), free(y);
  return eq;
}

static int n_keys_mode(const cJSON *o, int mode) {
  int n = 0;
  const cJSON *k;
  cJSON_ArrayForEach(k, o) if (compared(k->string, mode)) n++;
  return n;
}
static int n_keys(const cJSON *o) { return n_keys_mode(o, CMP_ALL); }

static int config_equal_mode(const cJSON *a, const cJSON *b, int mode) {
  if (!cJSON_IsObject(a) || !cJSON_IsObject(b) || n_keys_mode(a, mode) != n_keys_mode(b, mode)) return 0;
  const cJSON *k;
  cJSON_ArrayForEach(k, a) {
    if (!compared(k->string, mode)) continue;
    const cJSON *o = cJSON_GetObjectItemCaseSensitive(b, k->string);
    if (!o || !value_equal(k, o)) return 0;
  }
  return 1;
}

int pb_config_equal(const cJSON *a, const cJSON *b) { return config_equal_mode(a, b, CMP_ALL); }

int pb_record_same_config(const cJSON *a, const cJSON *b) {
  if (!cJSON_IsObject(a) || !cJSON_IsObject(b)) return 0;
  if (pb_record_is_legacy(a) != pb_record_is_legacy(b)) return 0;
  cJSON *ca = NULL, *cb = NULL;
  int same = 0;
  if (pb_record_config(a, &ca) == PB_OK && pb_record_config(b, &cb) == PB_OK) same = pb_config_equal(ca, cb);
  cJSON_Delete(ca);
  cJSON_Delete(cb);
  return same;
}

/* Total order of configurations: over the union of keys in byte order, absent < present,
 * numbers (at their compared precision) < strings < other values; numbers by value, the
 * others by text. */
static int key_cmp(const void *pa, const void *pb) { return strcmp(*(char *const *)pa, *(char *const *)pb); }

static int config_cmp(const cJSON *a, const cJSON *b) {
  int n = 0, cap = n_keys(a) + n_keys(b);
  const char **keys = malloc((size_t)(cap ? cap : 1) * sizeof *keys);
  if (!keys) return 0;
  const cJSON *k;
  cJSON_ArrayForEach(k, a) if (!ignored_key(k->string)) keys[n++] = k->string;
  cJSON_ArrayForEach(k, b) if (!ignored_key(k->string) && !cJSON_GetObjectItemCaseSensitive(a, k->string)) keys[n++] = k->string;
  qsort(keys, (size_t)n, sizeof *keys, key_cmp);
  int c = 0;
  for (int i = 0; i < n && !c; i++) {
    const cJSON *x = cJSON_GetObjectItemCaseSensitive(a, keys[i]);
    const cJSON *y = cJSON_GetObjectItemCaseSensitive(b, keys[i]);
    if (!x || !y) {
      c = !x && !y ? 0 : !x ? -1 : 1;
      continue;
    }
    int tx = cJSON_IsNumber(x) ? 0 : cJSON_IsString(x) ? 1 : 2;
    int ty = cJSON_IsNumber(y) ? 0 : cJSON_IsString(y) ? 1 : 2;
    if (tx != ty) {
      c = tx < ty ? -1 : 1;
      continue;
    }
    char *sx = pb_config_value_text(x), *sy = pb_config_value_text(y);
    if (sx && sy) {
      if (tx == 0) {
        double vx = strtod(sx, NULL), vy = strtod(sy, NULL);
        c = vx < vy ? -1 : vx > vy ? 1 : strcmp(sx, sy);
      } else {
        c = strcmp(sx, sy);
      }
    }
    free(sx), free(sy);
  }
  free(keys);
  return c;
}

/* ---------------------------------------------------------------- grouping */

/* each method's declared order (pb_method.order); methods not in the registry or without an
 * order come after every ordered one, by name */
static int method_rank(const char *m) { return pb_method_rank(m); }

static int row_cmp(const void *pa, const void *pb) {
  const pb_agg_row *a = pa, *b = pb;
  int ra = method_rank(a->method), rb = method_rank(b->method);
  if (ra != rb) return ra < rb ? -1 : 1;
  int c = strcmp(a->method, b->method);
  if (c) return c;
  if ((c = strcmp(a->desc, b->desc))) return c;
  if ((c = strcmp(a->fp, b->fp))) return c;
  if (a->legacy != b->legacy) return a->legacy ? 1 : -1;
  return config_cmp(a->config, b->config);
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
    free(r->method), free(r->desc), free(r->fp), free(r->label), free(r->diff), free(r->name);
    cJSON_Delete(r->config);
    for (int t = 0; t < PB_AGG_NTASKS; t++) free(r->recs[t]), cJSON_Delete(r->proto[t]);
  }
  for (int i = 0; i < a->n_splits; i++) {
    free(a->splits[i].method), free(a->splits[i].keys), free(a->splits[i].modal);
  }
  free(a->splits);
  free(a->rows);
  cJSON_Delete(a->all);
  cJSON_Delete(a->retrieval);
  memset(a, 0, sizeof *a);
}

/* Adds rec to cell (r, t); a record with the seed of one already there replaces it (the
 * later record wins) and *dup is set. */
static int add_rec(pb_agg_row *r, int t, const cJSON *rec, int *dup) {
  double seed, s2;
  *dup = 0;
  if (pb_json_num(rec, &seed, "seed", NULL))
    for (int i = 0; i < r->n_recs[t]; i++)
      if (pb_json_num(r->recs[t][i], &s2, "seed", NULL) && s2 == seed) {
        r->recs[t][i] = rec;
        *dup = 1;
        return PB_OK;
      }
  const cJSON **p = realloc(r->recs[t], (size_t)(r->n_recs[t] + 1) * sizeof *p);
  if (!p) return PB_ERR_NOMEM;
  p[r->n_recs[t]++] = rec;
  r->recs[t] = p;
  return PB_OK;
}

/* the text of key k in a cell's protocol, "none" when absent; long hex digests shortened to
 * 12 characters like fingerprints (NULL on OOM) */
static char *proto_text(const cJSON *proto, const char *k) {
  const cJSON *v = cJSON_GetObjectItemCaseSensitive(proto, k);
  char *s = v ? pb_config_value_text(v) : strdup("none");
  size_t n = s ? strlen(s) : 0;
  if (n >= 24 && strspn(s, "0123456789abcdefABCDEF") == n) s[12] = 0;
  return s;
}

/* Puts into r->config, for each protocol key of its cells, what the row's cells hold: the value
 * itself when every cell agrees, else the distinct values in task order joined by "/"
 * ("64/128"). */
static int summarize_protocol(pb_agg_row *r) {
  for (int t0 = 0; t0 < PB_AGG_NTASKS; t0++) {
    const cJSON *k;
    if (!r->proto[t0]) continue;
    cJSON_ArrayForEach(k, r->proto[t0]) {
      if (!task_key(k->string) || ignored_key(k->string)) continue;
      int done = 0; /* handled at an earlier cell */
      for (int t = 0; t < t0 && !done; t++) done = r->proto[t] && cJSON_GetObjectItemCaseSensitive(r->proto[t], k->string);
      if (done) continue;
      pb_strbuf b = {0};
      pb_sb_add(&b, "%s", "");
      int distinct = 0;
      char *seen[PB_AGG_NTASKS];
      for (int t = 0; t < PB_AGG_NTASKS; t++) {
        seen[t] = NULL;
        if (!r->proto[t]) continue;
        char *v = proto_text(r->proto[t], k->string);
        if (!v) b.oom = 1;
        int dup = !v;
        for (int q = 0; q < t && !dup; q++) dup = seen[q] && !strcmp(seen[q], v);
        if (!dup) pb_sb_add(&b, "%s%s", distinct++ ? "/" : "", v);
        seen[t] = v;
      }
      for (int t = 0; t < PB_AGG_NTASKS; t++) free(seen[t]);
      char *joined = pb_sb_take(&b);
      if (!joined) return PB_ERR_NOMEM;
      cJSON *nv = distinct == 1 ? cJSON_Duplicate(k, 1) : cJSON_CreateString(joined);
      free(joined);
      if (!nv) return PB_ERR_NOMEM;
      if (cJSON_GetObjectItemCaseSensitive(r->config, k->string)) {
        if (!cJSON_ReplaceItemInObjectCaseSensitive(r->config, k->string, nv)) return cJSON_Delete(nv), PB_ERR_NOMEM;
      } else if (!cJSON_AddItemToObject(r->config, k->string, nv)) {
        cJSON_Delete(nv);
        return PB_ERR_NOMEM;
      }
    }
  }
  return PB_OK;
}

/* 1 when two of the rows [lo, hi) have cells of one task whose protocol differs in key k
 * (rows that cannot have k, legacy ones, are left out) */
static int protocol_conflict(const pb_agg *a, int lo, int hi, const char *k, int *oom) {
  for (int t = 0; t < PB_AGG_NTASKS; t++)
    for (int i = lo; i < hi; i++) {
      const pb_agg_row *x = &a->rows[i];
      if (!x->proto[t] || (x->legacy && !legacy_key(k))) continue;
      for (int j = i + 1; j < hi; j++) {
        const pb_agg_row *y = &a->rows[j];
        if (!y->proto[t] || (y->legacy && !legacy_key(k))) continue;
        char *u = proto_text(x->proto[t], k), *v = proto_text(y->proto[t], k);
        int differ = u && v && strcmp(u, v);
        if (!u || !v) *oom = 1;
        free(u), free(v);
        if (differ) return 1;
      }
    }
  return 0;
}

/* A row's value of key k for labelling: its text, "none" when absent; NULL when the row
 * cannot have the key (legacy row, key not derivable). */
static char *row_value(const pb_agg_row *r, const char *k, int *oom) {
  if (r->legacy && !legacy_key(k)) return NULL;
  const cJSON *v = cJSON_GetObjectItemCaseSensitive(r->config, k);
  char *s = v ? pb_config_value_text(v) : strdup("none");
  if (!s) {
    *oom = 1;
    return NULL;
  }
  /* long hex digests (vocab_sha256, ...) shortened like fingerprints */
  size_t n = strlen(s);
  if (n >= 24 && strspn(s, "0123456789abcdefABCDEF") == n) s[12] = 0;
  return s;
}

/* Diff labels of the rows [lo, hi) of one method (hi - lo >= 2) and its pb_agg_split. */
static int label_method(pb_agg *a, int lo, int hi) {
  int nr = hi - lo, oom = 0, any_legacy = 0, any_new = 0;
  for (int i = lo; i < hi; i++) {
    if (a->rows[i].legacy) any_legacy = 1;
    else any_new = 1;
  }
  int legacy_mix = any_legacy && any_new;
  pb_strbuf *diff = calloc((size_t)nr, sizeof *diff); /* [nr] label parts per row */
  char **vals = calloc((size_t)nr, sizeof *vals);     /* [nr] values of the current key */
  pb_strbuf keys = {0}, modal = {0};
  if (!diff || !vals) {
    free(diff), free(vals);
    return PB_ERR_NOMEM;
  }
  pb_sb_add(&keys, "%s", "");
  pb_sb_add(&modal, "%s", "");
  for (int i = 0; i < nr; i++) {
    pb_sb_add(&diff[i], "%s", "");
    if (legacy_mix && a->rows[lo + i].legacy) pb_sb_add(&diff[i], "legacy record");
  }
  /* keys in order of first appearance over the rows (row order, then config order) */
  for (int i = lo; i < hi && !oom; i++) {
    const cJSON *k;
    cJSON_ArrayForEach(k, a->rows[i].config) {
      const char *key = k->string;
      if (ignored_key(key) || !strcmp(key, "method") || !strcmp(key, "method_desc") ||
          !strcmp(key, "backbone"))
        continue;
      int seen = 0;
      for (int j = lo; j < i && !seen; j++)
        if (cJSON_GetObjectItemCaseSensitive(a->rows[j].config, key) && !(a->rows[j].legacy && !legacy_key(key)))
          seen = 1;
      if (seen || (a->rows[i].legacy && !legacy_key(key))) continue;
      int n_elig = 0, differ = 0;
      for (int j = 0; j < nr; j++) {
        vals[j] = row_value(&a->rows[lo + j], key, &oom);
        if (!vals[j]) continue;
        for (int q = 0; q < j && !differ; q++)
          if (vals[q] && strcmp(vals[q], vals[j])) differ = 1;
        n_elig++;
      }
      if (differ && task_key(key)) differ = protocol_conflict(a, lo, hi, key, &oom);
      if (n_elig >= 2 && differ) {
        /* the most common value, if one value is strictly the most common (and not unique) */
        int best = -1, best_n = 0, tie = 0;
        for (int j = 0; j < nr; j++) {
          if (!vals[j]) continue;
          int c = 0;
          for (int q = 0; q < nr; q++) c += vals[q] && !strcmp(vals[q], vals[j]);
          if (c > best_n) best = j, best_n = c, tie = 0;
          else if (c == best_n && strcmp(vals[best], vals[j])) tie = 1;
        }
        const char *mode = best >= 0 && best_n >= 2 && !tie ? vals[best] : NULL;
        pb_sb_add(&keys, "%s%s", keys.n ? ", " : "", key);
        if (mode) pb_sb_add(&modal, "%s%s=%s", modal.n ? ", " : "", key, mode);
        for (int j = 0; j < nr; j++)
          if (vals[j] && (!mode || strcmp(vals[j], mode)))
            pb_sb_add(&diff[j], "%s%s=%s", diff[j].n ? ", " : "", key, vals[j]);
      }
      for (int j = 0; j < nr; j++) free(vals[j]), vals[j] = NULL;
    }
  }
  free(vals);
  for (int i = 0; i < nr; i++) {
    char *d = pb_sb_take(&diff[i]);
    if (!d) oom = 1;
    a->rows[lo + i].diff = d;
  }
  free(diff);
  char *ks = pb_sb_take(&keys), *ms = pb_sb_take(&modal);
  if (oom || !ks || !ms) {
    free(ks), free(ms);
    return PB_ERR_NOMEM;
  }
  if (!ks[0] && !legacy_mix) {
    free(ks), free(ms);
    return PB_OK;
  }
  pb_agg_split *sp = realloc(a->splits, (size_t)(a->n_splits + 1) * sizeof *sp);
  if (!sp) {
    free(ks), free(ms);
    return PB_ERR_NOMEM;
  }
  a->splits = sp;
  sp[a->n_splits].method = strdup(a->rows[lo].method);
  sp[a->n_splits].keys = ks;
  sp[a->n_splits].modal = ms;
  sp[a->n_splits].legacy_mix = legacy_mix;
  a->n_splits++;
  return sp[a->n_splits - 1].method ? PB_OK : PB_ERR_NOMEM;
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
    cJSON *cfg = NULL;
    int crc = cJSON_IsObject(rec) ? pb_record_config(rec, &cfg) : PB_ERR_ARG;
    if (crc == PB_ERR_NOMEM) return pb_set_error(PB_ERR_NOMEM, "table: out of memory");
    const char *family = pb_json_str(rec, "task_family");
    if (cJSON_IsObject(rec) && family && strcmp(family, "retrieval") == 0 && method && method[0] && !crc &&
        (!schema || strcmp(schema, PB_RESULT_SCHEMA) == 0)) { /* kept apart: the retrieval table and figure */
      cJSON_Delete(cfg);
      if (!a->retrieval && !(a->retrieval = cJSON_CreateArray())) return pb_set_error(PB_ERR_NOMEM, "table: out of memory");
      cJSON_AddItemToArray(a->retrieval, cJSON_DetachItemViaPointer(all, rec));
      a->n_retrieval++;
      rec = next;
      continue;
    }
    if (!cJSON_IsObject(rec) || t < 0 || !method || !method[0] || crc ||
        (schema && strcmp(schema, PB_RESULT_SCHEMA) != 0)) {
      cJSON_Delete(cfg);
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
    int legacy = pb_record_is_legacy(rec);
    int k;
    for (k = 0; k < a->n_rows; k++)
      if (!strcmp(a->rows[k].method, method) && !strcmp(a->rows[k].desc, desc) &&
          !strcmp(a->rows[k].fp, fp) && a->rows[k].legacy == legacy &&
          config_equal_mode(a->rows[k].config, cfg, CMP_ROW) &&
          (!a->rows[k].proto[t] || config_equal_mode(a->rows[k].proto[t], cfg, CMP_TASK)))
        break;
    if (k == a->n_rows) {
      pb_agg_row *rows = realloc(a->rows, (size_t)(a->n_rows + 1) * sizeof *rows);
      if (!rows) {
        cJSON_Delete(cfg);
        return pb_set_error(PB_ERR_NOMEM, "table: out of memory");
      }
      a->rows = rows;
      memset(&rows[k], 0, sizeof rows[k]);
      a->n_rows++;
      rows[k].method = strdup(method);
      rows[k].desc = strdup(desc);
      rows[k].fp = strdup(fp);
      rows[k].config = cfg;
      rows[k].legacy = legacy;
      if (!rows[k].method || !rows[k].desc || !rows[k].fp || !(cfg = cJSON_Duplicate(cfg, 1)))
        return pb_set_error(PB_ERR_NOMEM, "table: out of memory");
    }
    if (!a->rows[k].proto[t]) a->rows[k].proto[t] = cfg; /* the cell's protocol */
    else cJSON_Delete(cfg);
    int dup = 0;
    if (add_rec(&a->rows[k], t, rec, &dup)) return pb_set_error(PB_ERR_NOMEM, "table: out of memory");
    if (dup && a->n_dup++ == 0) {
      double seed = 0;
      pb_json_num(rec, &seed, "seed", NULL);
      snprintf(a->dup_example, sizeof a->dup_example, "%.60s %s seed %.0f", method, pb_task_at(t)->name, seed);
    }
    a->task_present[t] = 1;
    rec = next;
  }
  for (int i = 0; i < a->n_rows; i++)
    if (summarize_protocol(&a->rows[i])) return pb_set_error(PB_ERR_NOMEM, "table: out of memory");
  if (a->n_rows > 1) qsort(a->rows, (size_t)a->n_rows, sizeof *a->rows, row_cmp);
  /* diff labels per method (rows of a method are adjacent after the sort) */
  for (int lo = 0; lo < a->n_rows;) {
    int hi = lo + 1;
    while (hi < a->n_rows && !strcmp(a->rows[hi].method, a->rows[lo].method)) hi++;
    if (hi - lo >= 2 && label_method(a, lo, hi)) return pb_set_error(PB_ERR_NOMEM, "table: out of memory");
    lo = hi;
  }
  int multi_fp = 0;
  for (int i = 1; i < a->n_rows; i++)
    if (strcmp(a->rows[i].fp, a->rows[0].fp)) multi_fp = 1;
  for (int i = 0; i < a->n_rows; i++) {
    pb_agg_row *r = &a->rows[i];
    if (!r->diff && !(r->diff = strdup(""))) return pb_set_error(PB_ERR_NOMEM, "table: out of memory");
    int multi_cfg = 0;
    for (int j = 0; j < a->n_rows; j++)
      if (j != i && !strcmp(a->rows[j].method, r->method) && strcmp(a->rows[j].desc, r->desc))
        multi_cfg = 1;
    pb_strbuf b = {0};
    pb_sb_add(&b, "%s", r->method);
    if (r->diff[0]) pb_sb_add(&b, " (%s)", r->diff);
    r->name = pb_sb_take(&b);
    b = (pb_strbuf){0};
    pb_sb_add(&b, "%s", r->method);
    int show_desc = multi_cfg && r->desc[0];
    if (show_desc || r->diff[0])
      pb_sb_add(&b, " (%s%s%s)", show_desc ? r->desc : "", show_desc && r->diff[0] ? ", " : "", r->diff);
    if (multi_fp) pb_sb_add(&b, " [%.8s]", r->fp[0] ? r->fp : "?");
    r->label = pb_sb_take(&b);
    if (!r->label || !r->name) return pb_set_error(PB_ERR_NOMEM, "table: out of memory");
  }
  return PB_OK;
}

int pb_agg_build(const cJSON *records, pb_agg *a) {
  memset(a, 0, sizeof *a);
  if (!cJSON_IsArray(records)) return pb_set_error(PB_ERR_ARG, "table: records must be an array");
  cJSON *all = cJSON_Duplicate(records, 1);
  if (!all) return pb_set_error(PB_ERR_NOMEM, "table: out of memory");
  int rc = agg_group(all, a);
  if (!rc && a->n_rows == 0 && a->n_retrieval == 0) rc = pb_set_error(PB_ERR_FORMAT, "table: no result records");
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
    fprintf(warn, "%s: warning: skipped %d record%s without a known task and method (or of another schema, or with a malformed config)\n",
            who, a->n_skipped, a->n_skipped == 1 ? "" : "s");
  if (!rc && a->n_dup && warn)
    fprintf(warn,
            "%s: warning: %d duplicate record%s (same configuration, task and seed as a later record, e.g. %s): "
            "the later record of each is used\n",
            who, a->n_dup, a->n_dup == 1 ? "" : "s", a->dup_example);
  if (!rc && a->n_rows == 0 && a->n_retrieval == 0)
    rc = pb_set_error(PB_ERR_FORMAT, "no result records in %s%s", files[0], n_files > 1 ? " ..." : "");
  if (rc) pb_agg_free(a);
  return rc;
}

/* ---------------------------------------------------------------- per-task protocol */

char *pb_agg_protocol_note(const pb_agg *a) {
  pb_strbuf b = {0};
  pb_sb_add(&b, "%s", "");
  const char *done[32];
  int n_done = 0;
  for (int i = 0; i < a->n_rows; i++)
    for (int t0 = 0; t0 < PB_AGG_NTASKS; t0++) {
      const cJSON *k;
      if (!a->rows[i].proto[t0]) continue;
      cJSON_ArrayForEach(k, a->rows[i].proto[t0]) {
        const char *key = k->string;
        if (!task_key(key) || !strcmp(key, "data_sha256") || n_done == 32) continue;
        int seen = 0;
        for (int q = 0; q < n_done && !seen; q++) seen = !strcmp(done[q], key);
        if (seen) continue;
        done[n_done++] = key;
        /* has[v][t]: value v (in order of first appearance, task order) occurs in task t */
        char *vals[64];
        int nv = 0, has[64][PB_AGG_NTASKS];
        memset(has, 0, sizeof has);
        for (int t = 0; t < PB_AGG_NTASKS; t++)
          for (int r = 0; r < a->n_rows; r++) {
            const pb_agg_row *row = &a->rows[r];
            if (!row->proto[t] || (row->legacy && !legacy_key(key))) continue;
            char *v = proto_text(row->proto[t], key);
            if (!v) {
              b.oom = 1;
              continue;
            }
            int j = 0;
            while (j < nv && strcmp(vals[j], v)) j++;
            if (j == nv && nv < 64) vals[nv++] = v;
            else free(v);
            if (j < nv) has[j][t] = 1;
          }
        /* noted only when the tasks do not all hold the same set of values */
        int same = 1, first = -1;
        for (int t = 0; t < PB_AGG_NTASKS && same; t++) {
          int any = 0;
          for (int j = 0; j < nv; j++) any |= has[j][t];
          if (!any) continue;
          if (first < 0) first = t;
          for (int j = 0; j < nv; j++) same &= has[j][t] == has[j][first];
        }
        if (!same) {
          pb_sb_add(&b, "%s%s: ", b.n ? "; " : "", key);
          for (int j = 0; j < nv; j++) {
            pb_sb_add(&b, "%s%s (", j ? ", " : "", vals[j]);
            int c = 0;
            for (int t = 0; t < PB_AGG_NTASKS; t++)
              if (has[j][t]) pb_sb_add(&b, "%s%s", c++ ? ", " : "", pb_task_at(t)->dir);
            pb_sb_add(&b, ")");
          }
        }
        for (int j = 0; j < nv; j++) free(vals[j]);
      }
    }
  return pb_sb_take(&b);
}
