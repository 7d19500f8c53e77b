/* Early-exit evaluation, per-example exact counts and eval result records (exitstats.h). */
#include "harness/exitstats.h"

#include <math.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "backbone/ops.h"
#include "harness/run.h"
#include "util/digest.h"
#include "util/status.h"
#include "counters/timing.h"
#include "harness/opsreport.h"
#include "harness/results.h"
#include "harness/runconfig.h"

int pb_exits_model_has(const pb_model *m) {
  for (int i = 0; i < m->n_hooks; i++)
    if (m->hooks[i].ops->version >= 2 && m->hooks[i].ops->after_layer) return 1;
  return 0;
}

int pb_exits_set_threshold(pb_method_inst *mi, double t) {
  if (!mi || !mi->m) return pb_set_error(PB_ERR_ARG, "exit threshold: no method");
  if (!isfinite(t) || t < 0)
    return pb_set_error(PB_ERR_ARG, "exit threshold %g: must be a number >= 0 (0 = no early exit)", t);
  char v[40];
  snprintf(v, sizeof v, "%.17g", t);
  if (mi->m->set_option) return mi->m->set_option(mi->ctx, PB_EXIT_THRESHOLD_KEY, v);
  if (!pb_method_option_find(mi->m, PB_EXIT_THRESHOLD_KEY))
    return pb_set_error(PB_ERR_ARG, "method '%s' has no exits (no option '%s')", mi->m->name, PB_EXIT_THRESHOLD_KEY);
  return pb_method_set_option(mi->m, mi->ctx, PB_EXIT_THRESHOLD_KEY, v);
}

/* ---------------------------------------------------------------- counts of (T, k) */

/* pb_model_count_exit(m, 1, T, k), remembered per (T, k) */
typedef struct {
  int maxT, S;
  pb_opcounts *c;      /* [(maxT+1) * S] */
  unsigned char *have; /* [(maxT+1) * S] */
} count_cache;

static int cache_init(count_cache *cc, int maxT, int S) {
  cc->maxT = maxT;
  cc->S = S;
  cc->c = calloc((size_t)(maxT + 1) * S, sizeof *cc->c);
  cc->have = calloc((size_t)(maxT + 1) * S, 1);
  if (!cc->c || !cc->have) {
    free(cc->c), free(cc->have);
    return pb_set_error(PB_ERR_NOMEM, "exits: out of memory");
  }
  return PB_OK;
}

static void cache_free(count_cache *cc) {
  free(cc->c);
  free(cc->have);
  memset(cc, 0, sizeof *cc);
}

static int cache_get(count_cache *cc, pb_model *m, int T, int k, const pb_opcounts **out) {
  if (T < 1 || T > cc->maxT || k < 0 || k >= cc->S)
    return pb_set_error(PB_ERR_ARG, "exits: count of length %d exit step %d outside %d x %d", T, k, cc->maxT, cc->S);
  const size_t i = (size_t)T * cc->S + (size_t)k;
  if (!cc->have[i]) {
    memset(&cc->c[i], 0, sizeof cc->c[i]);
    int rc = pb_model_count_exit(m, 1, T, k, &cc->c[i]);
    if (rc) return rc;
    cc->have[i] = 1;
  }
  *out = &cc->c[i];
  return PB_OK;
}

/* ---------------------------------------------------------------- evaluation */

int pb_exits_evaluate(pb_model *m, const pb_method_inst *mi, const pb_task *task, const pb_encoded *e, int batch,
                      pb_metric_set *out, float *outputs, pb_opcounts *measured, int *exit_step,
                      pb_opcounts *analytic) {
  (void)mi;
  const int n = e->n, S = pb_model_steps(m);
  int *pred = malloc(sizeof(int) * (size_t)(n + 1));
  float *predf = malloc(sizeof(float) * (size_t)(n + 1));
  int *ids = malloc(sizeof(int) * (size_t)batch * e->max_len), *types = malloc(sizeof(int) * (size_t)batch * e->max_len);
  int *mask = malloc(sizeof(int) * (size_t)batch * e->max_len), *idx = malloc(sizeof(int) * (size_t)batch);
  count_cache cc = {0};
  int rc = PB_OK;
  if (!pred || !predf || !ids || !types || !mask || !idx) rc = pb_set_error(PB_ERR_NOMEM, "eval: out of memory");
  if (!rc && analytic) rc = cache_init(&cc, e->max_len, S);
  if (!rc) rc = pb_model_prepare(m, 0); /* one-time inference set-up is not per-example work */
  pb_opcounts an = {{{0}}}, before = pb_opc_snapshot(), after;
  for (int s = 0; !rc && s < n; s += batch) {
    int B = n - s < batch ? n - s : batch;
    for (int b = 0; b < B; b++) idx[b] = s + b;
    int T = pb_encoded_batch(e, idx, B, ids, types, mask, NULL, NULL);
    if ((rc = pb_forward(m, ids, types, mask, B, T, NULL, NULL, 0, 0, NULL))) break;
    pb_eval_rows(m, s, B, outputs, pred, predf);
    for (int b = 0; exit_step && b < B; b++) exit_step[s + b] = pb_model_exit_step(m, b);
    /* the counting-only twin: each row at the batch's T, leaving where it did (a counting-only
     * run leaves the counter as it was, so the measured window stays exact) */
    for (int b = 0; analytic && !rc && b < B; b++) {
      const pb_opcounts *one = NULL;
      if (!(rc = cache_get(&cc, m, T, pb_model_exit_step(m, b), &one))) pb_opcounts_add(&an, one);
    }
  }
  if (measured) {
    after = pb_opc_snapshot();
    pb_opcounts_sub(measured, &after, &before);
  }
  if (!rc && analytic) pb_opcounts_add(analytic, &an);
  if (!rc && out) rc = pb_task_metrics(task, pred, e->label, predf, e->target, n, out);
  cache_free(&cc);
  free(pred);
  free(predf);
  free(ids);
  free(types);
  free(mask);
  free(idx);
  return rc;
}

/* ---------------------------------------------------------------- per-example stats */

/* the threshold option's text in the instance's describe ("threshold=X" or "PART.threshold=X") */
static int threshold_text(const pb_method_inst *mi, char *buf, size_t n) {
  char d[2048] = "";
  if (mi->m->describe) {
    int rc = mi->m->describe(mi->ctx, d, sizeof d);
    if (rc) return rc;
  }
  const size_t kl = strlen(PB_EXIT_THRESHOLD_KEY);
  for (char *save = NULL, *t = strtok_r(d, ",", &save); t; t = strtok_r(NULL, ",", &save)) {
    char *eq = strchr(t, '=');
    if (!eq || (size_t)(eq - t) < kl || strncmp(eq - kl, PB_EXIT_THRESHOLD_KEY, kl) != 0) continue;
    if (eq - kl != t && eq[-(ptrdiff_t)kl - 1] != '.') continue;
    snprintf(buf, n, "%s", eq + 1);
    return PB_OK;
  }
  return pb_set_error(PB_ERR_ARG, "method '%s' has no exits (no option '%s')", mi->m->name, PB_EXIT_THRESHOLD_KEY);
}

static int set_threshold_text(pb_method_inst *mi, const char *v) {
  if (mi->m->set_option) return mi->m->set_option(mi->ctx, PB_EXIT_THRESHOLD_KEY, v);
  return pb_method_set_option(mi->m, mi->ctx, PB_EXIT_THRESHOLD_KEY, v);
}

int pb_exits_threshold(const pb_method_inst *mi, double *t) {
  char v[64];
  int rc = threshold_text(mi, v, sizeof v);
  if (rc) return rc;
  *t = strtod(v, NULL);
  return PB_OK;
}

double pb_eval_majority(const pb_task *t, const pb_encoded *e) {
  if (t->is_regression || e->n == 0) return NAN;
  int counts[8] = {0};
  for (int i = 0; i < e->n; i++)
    if (e->label[i] >= 0 && e->label[i] < 8) counts[e->label[i]]++;
  int best = 0;
  for (int k = 1; k < t->num_labels && k < 8; k++)
    if (counts[k] > counts[best]) best = k;
  int *pred = malloc(sizeof(int) * (size_t)e->n);
  if (!pred) return NAN;
  for (int i = 0; i < e->n; i++) pred[i] = best;
  pb_metric_set ms;
  double v = pb_task_metrics(t, pred, e->label, NULL, NULL, e->n, &ms) ? NAN : ms.score;
  free(pred);
  return v;
}

static int stats_reserve(pb_exit_stats *st, int more) {
  if (st->n + more <= st->cap) return PB_OK;
  int cap = st->cap ? st->cap : 64;
  while (cap < st->n + more) cap *= 2;
  int *es = realloc(st->exit_step, (size_t)cap * sizeof *es);
  if (es) st->exit_step = es;
  int *ln = realloc(st->len, (size_t)cap * sizeof *ln);
  if (ln) st->len = ln;
  double *f = realloc(st->flops, (size_t)cap * sizeof *f);
  if (f) st->flops = f;
  double *fs = realloc(st->flops_static, (size_t)cap * sizeof *fs);
  if (fs) st->flops_static = fs;
  if (!es || !ln || !f || !fs) return pb_set_error(PB_ERR_NOMEM, "exits: out of memory");
  st->cap = cap;
  return PB_OK;
}

int pb_exit_stats_append(pb_exit_stats *dst, const pb_exit_stats *src) {
  if (dst->n && src->n && dst->steps != src->steps)
    return pb_set_error(PB_ERR_ARG, "exits: stats of %d and %d steps", dst->steps, src->steps);
  int rc = stats_reserve(dst, src->n);
  if (rc) return rc;
  const size_t n = (size_t)src->n;
  if (n) {
    memcpy(dst->exit_step + dst->n, src->exit_step, n * sizeof *dst->exit_step);
    memcpy(dst->len + dst->n, src->len, n * sizeof *dst->len);
    memcpy(dst->flops + dst->n, src->flops, n * sizeof *dst->flops);
    memcpy(dst->flops_static + dst->n, src->flops_static, n * sizeof *dst->flops_static);
  }
  if (src->steps) dst->steps = src->steps;
  dst->n += src->n;
  pb_opcounts_add(&dst->sum, &src->sum);
  pb_opcounts_add(&dst->sum_static, &src->sum_static);
  dst->tokens += src->tokens;
  return PB_OK;
}

int pb_exit_stats_add(pb_exit_stats *st, pb_model *m, pb_method_inst *mi, double threshold, const int *exit_step,
                      const int *len, int n) {
  (void)threshold;
  const int S = pb_model_steps(m);
  int maxT = 1;
  for (int i = 0; i < n; i++)
    if (len[i] > maxT) maxT = len[i];
  int rc0 = stats_reserve(st, n);
  if (rc0) return rc0;
  st->steps = S;
  count_cache dyn = {0}, sta = {0};
  int rc = cache_init(&dyn, maxT, S);
  if (!rc) rc = cache_init(&sta, maxT, S);
  for (int i = 0; !rc && i < n; i++) {
    const pb_opcounts *c = NULL;
    if (len[i] < 1) {
      rc = pb_set_error(PB_ERR_ARG, "exits: example %d has length %d", i, len[i]);
      break;
    }
    if ((rc = cache_get(&dyn, m, len[i], exit_step[i], &c))) break;
    const int j = st->n + i;
    st->exit_step[j] = exit_step[i];
    st->len[j] = len[i];
    st->flops[j] = (double)pb_opcounts_flops(c, -1);
    pb_opcounts_add(&st->sum, c);
    st->tokens += len[i];
  }
  /* the static model: threshold 0 (exits not evaluated), every example through every step */
  char keep[64] = "";
  const int exits = pb_exits_model_has(m);
  if (!rc && exits && mi) {
    rc = threshold_text(mi, keep, sizeof keep);
    if (!rc) rc = set_threshold_text(mi, "0");
  }
  for (int i = 0; !rc && i < n; i++) {
    const pb_opcounts *c = NULL;
    if ((rc = cache_get(&sta, m, len[i], S - 1, &c))) break;
    st->flops_static[st->n + i] = (double)pb_opcounts_flops(c, -1);
    pb_opcounts_add(&st->sum_static, c);
  }
  if (exits && mi && keep[0]) {
    int r2 = set_threshold_text(mi, keep);
    if (!rc) rc = r2;
  }
  cache_free(&dyn);
  cache_free(&sta);
  if (!rc) st->n += n;
  return rc;
}

void pb_exit_stats_free(pb_exit_stats *st) {
  free(st->exit_step);
  free(st->len);
  free(st->flops);
  free(st->flops_static);
  memset(st, 0, sizeof *st);
}

static int cmp_double(const void *a, const void *b) {
  const double x = *(const double *)a, y = *(const double *)b;
  return x < y ? -1 : x > y;
}

cJSON *pb_exit_stats_json(const pb_exit_stats *st, double threshold) {
  cJSON *o = cJSON_CreateObject();
  if (!o) return NULL;
  const int n = st->n, S = st->steps;
  cJSON_AddNumberToObject(o, "threshold", threshold);
  cJSON_AddNumberToObject(o, "examples", n);
  cJSON_AddNumberToObject(o, "steps", S);
  cJSON *dist = cJSON_AddObjectToObject(o, "distribution");
  double layer_sum = 0, sum = 0, sum_static = 0;
  int *count = calloc((size_t)(S > 0 ? S : 1), sizeof *count);
  double *sorted = malloc((size_t)(n > 0 ? n : 1) * sizeof *sorted);
  if (!count || !sorted || !dist) {
    free(count), free(sorted);
    cJSON_Delete(o);
    return NULL;
  }
  for (int i = 0; i < n; i++) {
    if (st->exit_step[i] >= 0 && st->exit_step[i] < S) count[st->exit_step[i]]++;
    layer_sum += st->exit_step[i] + 1;
    sum += st->flops[i];
    sum_static += st->flops_static[i];
    sorted[i] = st->flops[i];
  }
  for (int k = 0; k < S; k++) {
    char key[16];
    snprintf(key, sizeof key, "%d", k + 1);
    cJSON_AddNumberToObject(dist, key, count[k]);
  }
  qsort(sorted, (size_t)n, sizeof *sorted, cmp_double);
  if (n > 0) cJSON_AddNumberToObject(o, "mean_layer", layer_sum / n);
  else cJSON_AddNullToObject(o, "mean_layer");
  cJSON *fe = cJSON_AddObjectToObject(o, "flops_per_example");
  if (n > 0) {
    cJSON_AddNumberToObject(fe, "mean", sum / n);
    cJSON_AddNumberToObject(fe, "median", n % 2 ? sorted[n / 2] : 0.5 * (sorted[n / 2 - 1] + sorted[n / 2]));
    cJSON_AddNumberToObject(fe, "max", sorted[n - 1]);
    cJSON_AddNumberToObject(fe, "min", sorted[0]);
    cJSON_AddNumberToObject(o, "flops_static", sum_static / n);
    cJSON_AddNumberToObject(o, "speedup", sum > 0 ? sum_static / sum : 1.0);
  } else {
    cJSON_AddNullToObject(fe, "mean");
    cJSON_AddNullToObject(fe, "median");
    cJSON_AddNullToObject(fe, "max");
    cJSON_AddNullToObject(fe, "min");
    cJSON_AddNullToObject(o, "flops_static");
    cJSON_AddNullToObject(o, "speedup");
  }
  free(count);
  free(sorted);
  return o;
}

/* ---------------------------------------------------------------- the eval record */

static cJSON *kv_object(const char *desc) {
  cJSON *o = cJSON_CreateObject();
  char buf[2048];
  snprintf(buf, sizeof buf, "%s", desc ? desc : "");
  for (char *save = NULL, *t = strtok_r(buf, ",", &save); t; t = strtok_r(NULL, ",", &save)) {
    char *eq = strchr(t, '=');
    if (!eq) continue;
    *eq = 0;
    cJSON_AddStringToObject(o, t, eq + 1);
  }
  return o;
}

/* SHA-256 over the SHA-256s of the evaluated splits' files, in order */
static int splits_digest(const pb_eval_record_in *in, char out[65]) {
  char *all = calloc((size_t)in->n_splits * 64 + 1, 1), one[65];
  if (!all) return pb_set_error(PB_ERR_NOMEM, "eval record: out of memory");
  int rc = PB_OK;
  for (int i = 0; !rc && i < in->n_splits; i++)
    if (!(rc = pb_sha256_file(in->splits[i].path, one))) strcat(all, one);
  if (!rc) rc = pb_sha256_hex(all, strlen(all), out);
  free(all);
  return rc;
}

int pb_eval_record(const pb_eval_record_in *in, pb_model *m, pb_method_inst *mi, cJSON **out) {
  *out = NULL;
  const pb_task *task = in->task;
  char data_sha[65], now[32], splits[256] = "";
  int rc = splits_digest(in, data_sha);
  if (rc) return rc;
  for (int i = 0; i < in->n_splits; i++) {
    size_t w = strlen(splits);
    snprintf(splits + w, sizeof splits - w, "%s%s", i ? "+" : "", in->splits[i].name);
  }
  /* config: what was evaluated (the training configuration is the task file's config_id) */
  cJSON *cfg = cJSON_CreateObject();
  cJSON_AddStringToObject(cfg, "method", in->method);
  cJSON_AddStringToObject(cfg, "method_desc", in->method_desc ? in->method_desc : "");
  cJSON_AddStringToObject(cfg, "backbone", in->info->fingerprint);
  cJSON_AddStringToObject(cfg, "vocab_sha256", in->info->vocab_sha256);
  cJSON_AddBoolToObject(cfg, "lower_case", in->info->lower_case);
  cJSON_AddNumberToObject(cfg, "max_len", in->max_len);
  cJSON_AddNumberToObject(cfg, "max_eval", in->max_eval);
  cJSON_AddStringToObject(cfg, "splits", splits);
  cJSON_AddStringToObject(cfg, "eval_data_sha256", data_sha);
  cJSON_AddBoolToObject(cfg, "merge_eval", in->merged);
  cJSON_AddStringToObject(cfg, "task_file_config", in->train_config_id ? in->train_config_id : "unknown");
  if (in->has_exits) cJSON_AddNumberToObject(cfg, "exit_threshold", in->threshold);
  if (in->ode_steps > 0) cJSON_AddNumberToObject(cfg, "ode_steps", in->ode_steps);
  char cfg_id[9];
  if ((rc = pb_config_id(cfg, cfg_id))) {
    cJSON_Delete(cfg);
    return rc;
  }

  cJSON *r = cJSON_CreateObject();
  pb_utc_now(now, sizeof now);
  cJSON_AddStringToObject(r, "schema", PB_RESULT_SCHEMA);
  cJSON_AddStringToObject(r, "time", now);
  cJSON_AddStringToObject(r, "source", "eval");
  cJSON_AddStringToObject(r, "task", task->name);
  cJSON_AddStringToObject(r, "method", in->method);
  cJSON_AddItemToObject(r, "method_config", kv_object(in->method_desc));
  cJSON_AddStringToObject(r, "method_desc", in->method_desc ? in->method_desc : "");
  cJSON_AddNumberToObject(r, "seed", (double)in->seed);
  cJSON_AddItemToObject(r, "config", cfg);
  cJSON_AddStringToObject(r, "config_id", cfg_id);
  cJSON_AddNullToObject(r, "head");
  pb_tokenizer_json_add(r, in->info);
  cJSON *jb = cJSON_AddObjectToObject(r, "backbone");
  cJSON_AddStringToObject(jb, "source", in->info->source);
  cJSON_AddBoolToObject(jb, "pretrained", in->info->pretrained);
  cJSON_AddStringToObject(jb, "fingerprint", in->info->fingerprint);
  cJSON *bc = in->backbone_config ? cJSON_Parse(in->backbone_config) : NULL;
  if (bc) cJSON_AddItemToObject(jb, "config", bc);
  else cJSON_AddNullToObject(jb, "config");
  cJSON *jd = cJSON_AddObjectToObject(r, "data");
  cJSON_AddStringToObject(jd, "data_dir", in->data_dir);
  cJSON_AddNumberToObject(jd, "max_eval", in->max_eval);
  cJSON *je = cJSON_AddObjectToObject(jd, "eval_examples");
  for (int i = 0; i < in->n_splits; i++) cJSON_AddNumberToObject(je, in->splits[i].name, in->splits[i].examples);
  cJSON_AddNumberToObject(jd, "max_len", in->max_len);
  cJSON_AddNullToObject(r, "train");
  /* metrics over the labelled splits */
  cJSON *jm = cJSON_AddObjectToObject(r, "metrics");
  cJSON *js = cJSON_AddObjectToObject(jm, "splits");
  pb_metric_set sets[8];
  int nl = 0;
  double maj = NAN;
  for (int i = 0; i < in->n_splits; i++) {
    const pb_eval_split *sp = &in->splits[i];
    if (!sp->labelled) continue;
    cJSON *o = cJSON_AddObjectToObject(js, sp->name);
    for (int k = 0; k < sp->ms.n; k++) cJSON_AddNumberToObject(o, sp->ms.v[k].name, sp->ms.v[k].value);
    if (nl == 0) maj = sp->majority;
    if (nl < 8) sets[nl++] = sp->ms;
  }
  if (nl) cJSON_AddNumberToObject(jm, "score", pb_metric_mean_score(sets, nl));
  else cJSON_AddNullToObject(jm, "score");
  cJSON_AddStringToObject(jm, "main", pb_metric_name(task->metrics[0]));
  if (isnan(maj)) cJSON_AddNullToObject(jm, "majority_baseline");
  else cJSON_AddNumberToObject(jm, "majority_baseline", maj);
  /* params and storage of the model as evaluated */
  cJSON *jp = cJSON_AddObjectToObject(r, "params");
  cJSON_AddNumberToObject(jp, "backbone", (double)pb_params_count(&m->params, PB_OWNER_BACKBONE, 0, 0));
  cJSON_AddNumberToObject(jp, "method", (double)pb_params_count(&m->params, PB_OWNER_METHOD, 0, 0));
  cJSON_AddNumberToObject(jp, "head", (double)pb_params_count(&m->params, PB_OWNER_HEAD, 0, 0));
  const size_t ntrain = pb_params_count(&m->params, -1, 1, 0), nall = pb_params_count(&m->params, -1, 0, 0);
  cJSON_AddNumberToObject(jp, "trainable", (double)ntrain);
  cJSON_AddNumberToObject(jp, "stored", (double)pb_params_count(&m->params, -1, 0, 1));
  cJSON_AddNumberToObject(jp, "all", (double)nall);
  cJSON_AddNumberToObject(jp, "trainable_pct", nall ? 100.0 * (double)ntrain / (double)nall : 0.0);
  char report[256];
  pb_params_report(&m->params, report, sizeof report);
  cJSON_AddStringToObject(jp, "report", report);
  cJSON *jst = cJSON_AddObjectToObject(r, "storage");
  struct stat sb;
  cJSON_AddStringToObject(jst, "path", in->task_file);
  cJSON_AddNumberToObject(jst, "file_bytes", stat(in->task_file, &sb) == 0 ? (double)sb.st_size : -1.0);
  cJSON_AddNumberToObject(jst, "tensor_bytes", (double)pb_params_count(&m->params, -1, 0, 1) * 4);
  cJSON *jpred = cJSON_AddObjectToObject(r, "predictions");
  for (int i = 0; i < in->n_splits; i++) cJSON_AddStringToObject(jpred, in->splits[i].name, in->splits[i].predictions);
  /* ops: the per-example exact counts of the examples scored, and the data-free report */
  cJSON *jo = cJSON_AddObjectToObject(r, "ops");
  const int ne = in->stats && in->stats->n > 0 ? in->stats->n : 1;
  cJSON_AddItemToObject(jo, "inference_per_example", pb_ops_json(&in->stats->sum, ne));
  cJSON_AddNumberToObject(jo, "mean_tokens", in->stats->tokens / ne);
  const int T128 = m->cfg.max_pos < 128 ? m->cfg.max_pos : 128;
  pb_ops_report rep;
  if ((rc = pb_ops_report_compute(m, mi, T128, in->batch, in->max_len, &rep))) {
    cJSON_Delete(r);
    return rc;
  }
  pb_ops_report_record_add(jo, &rep, T128, in->batch, in->max_len);
  cJSON *jme = cJSON_AddObjectToObject(jo, "measured");
  cJSON_AddNullToObject(jme, "train");
  cJSON_AddItemToObject(jme, "eval", pb_ops_json(&in->measured, 1));
  cJSON_AddItemToObject(jme, "eval_analytic", pb_ops_json(&in->analytic, 1));
  cJSON_AddBoolToObject(jme, "eval_match", memcmp(&in->measured, &in->analytic, sizeof in->analytic) == 0);
  if (in->has_exits) cJSON_AddItemToObject(r, "exits", pb_exit_stats_json(in->stats, in->threshold));
  else cJSON_AddNullToObject(r, "exits");
  if (in->ode_steps > 0) { /* ODE-step inference: S' of the S steps, step size S/S' */
    cJSON *jode = cJSON_AddObjectToObject(r, "ode");
    cJSON_AddNumberToObject(jode, "steps_run", in->ode_steps);
    cJSON_AddNumberToObject(jode, "steps", pb_model_steps(m));
    cJSON_AddNumberToObject(jode, "step_size", (double)pb_model_steps(m) / in->ode_steps);
    cJSON_AddNumberToObject(jode, "groups", m->cfg.layers);
  }
  cJSON_AddNullToObject(r, "counters");
  cJSON *jt = cJSON_AddObjectToObject(r, "timings");
  cJSON *jev = cJSON_AddObjectToObject(jt, "eval");
  cJSON_AddNumberToObject(jev, "wall_s", in->wall_s);
  cJSON_AddNumberToObject(jev, "cpu_s", in->cpu_s);
  pb_memory mem;
  pb_memory_read(&mem);
  cJSON_AddItemToObject(r, "memory", pb_memory_to_json(&mem));
  cJSON_AddItemToObject(r, "host", pb_host_json(pb_get_threads()));
  pb_commit_json_add(r);
  *out = r;
  return PB_OK;
}
