/* What a sweep would cost (sweepplan.h). */
#include "harness/sweepplan.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "backbone/ops.h"
#include "counters/opcount.h"
#include "counters/timing.h"
#include "util/rng.h"
#include "util/status.h"
#include "harness/glue.h"
#include "harness/opsreport.h"
#include "harness/setup.h"
#include "methods/method.h"

static const char *train_get(const pb_sweep_run *r, const char *key) {
  for (int i = 0; i < r->n_train; i++)
    if (strcmp(r->train[i].key, key) == 0) return r->train[i].value;
  return NULL;
}
static long train_long(const pb_sweep_run *r, const char *key, long def) {
  const char *v = train_get(r, key);
  return v ? strtol(v, NULL, 10) : def;
}

/* the run's backbone options (what `run` would build) */
static void backbone_opts(const pb_sweep_run *r, const pb_task *t, pb_backbone_opts *bb) {
  memset(bb, 0, sizeof *bb);
  bb->model_dir = train_get(r, "model");
  bb->shape = train_get(r, "shape");
  bb->vocab = train_get(r, "vocab");
  bb->num_labels = t->num_labels;
  bb->hidden_dropout = bb->attn_dropout = -1;
}

/* the method's option list of r ("k=v" strings into buf) */
static void method_opts(const pb_sweep_run *r, char buf[][512], const char **opts) {
  for (int i = 0; i < r->n_opt; i++) {
    snprintf(buf[i], 512, "%s=%s", r->opt[i].key, r->opt[i].value);
    opts[i] = buf[i];
  }
  opts[r->n_opt] = NULL;
}

/* training examples of a task (cached per task and data folder) */
typedef struct {
  const pb_task *task;
  char dir[1024];
  int n;
} size_cache;

static int train_size(size_cache *c, int *nc, int cap, const pb_task *t, const char *data, int *n) {
  char dir[1024];
  int rc = pb_glue_data_dir(data, dir, sizeof dir);
  if (rc) return rc;
  for (int i = 0; i < *nc; i++)
    if (c[i].task == t && strcmp(c[i].dir, dir) == 0) {
      *n = c[i].n;
      return PB_OK;
    }
  pb_dataset ds;
  memset(&ds, 0, sizeof ds);
  if ((rc = pb_glue_load(t, dir, "train", 1, &ds))) return rc;
  *n = ds.n;
  pb_dataset_free(&ds);
  if (*nc < cap) {
    c[*nc].task = t;
    snprintf(c[*nc].dir, sizeof c[*nc].dir, "%s", dir);
    c[(*nc)++].n = *n;
  }
  return PB_OK;
}

/* seconds per training step of r's model at B x T: 1 warm-up + 3 timed steps on random tokens */
static int calibrate(const pb_sweep_run *r, const pb_task *t, int B, int T, int threads, double *sec) {
  pb_backbone_opts bb;
  backbone_opts(r, t, &bb);
  char ob[PB_SWEEP_MAX_KV][512];
  const char *opts[PB_SWEEP_MAX_KV + 1];
  method_opts(r, ob, opts);
  pb_method_inst mi;
  int rc = pb_method_create(&mi, r->method, opts);
  if (rc) return rc;
  pb_model m;
  memset(&m, 0, sizeof m);
  pb_backbone_info info;
  const int prev = pb_get_threads();
  pb_set_threads(threads);
  rc = pb_build_model(&bb, &mi, B, T, 0, &m, &info);
  int *ids = malloc(sizeof(int) * (size_t)B * T), *labels = malloc(sizeof(int) * (size_t)B);
  float *targets = malloc(sizeof(float) * (size_t)B);
  if (!rc && (!ids || !labels || !targets)) rc = pb_set_error(PB_ERR_NOMEM, "sweep plan: out of memory");
  if (!rc) {
    pb_rng g;
    pb_rng_seed(&g, 7);
    for (int i = 0; i < B * T; i++) ids[i] = (int)pb_rng_below(&g, (uint64_t)m.cfg.vocab_size);
    for (int b = 0; b < B; b++) labels[b] = 0, targets[b] = 0.5f;
    pb_adamw opt;
    pb_adamw_defaults(&opt);
    opt.lr = 1e-9f;
    const int reg = t->is_regression;
    double t0 = 0;
    for (int s = 0; !rc && s < 4; s++) {
      if (s == 1) t0 = pb_wall_seconds();
      pb_params_zero_grad(&m.params);
      rc = pb_forward(&m, ids, NULL, NULL, B, T, reg ? NULL : labels, reg ? targets : NULL, 1, (uint64_t)s, NULL);
      if (!rc) rc = pb_backward(&m);
      if (!rc) rc = pb_adamw_step(&m.params, &opt, s + 1);
    }
    if (!rc) *sec = (pb_wall_seconds() - t0) / 3;
  }
  free(ids), free(labels), free(targets);
  if (m.params.t) pb_model_free(&m);
  pb_method_destroy(&mi);
  pb_set_threads(prev);
  return rc;
}

/* the calibration key of a run: everything that changes a step's time */
static void cal_key(const pb_sweep_run *r, int B, int T, char *k, size_t n) {
  size_t o = (size_t)snprintf(k, n, "%s|%d|%d|%s|%s|", r->method, B, T, train_get(r, "model") ? train_get(r, "model") : "",
                              train_get(r, "shape") ? train_get(r, "shape") : "");
  for (int i = 0; i < r->n_opt && o < n; i++) o += (size_t)snprintf(k + o, n - o, "%s=%s,", r->opt[i].key, r->opt[i].value);
}

int pb_sweep_costs(const pb_sweep *sw, int calibrate_on, int threads, pb_sweep_cost *costs) {
  size_cache sizes[64];
  int nsz = 0;
  typedef struct {
    char key[1024];
    double sec;
    int ok;
  } cal;
  cal *cals = calloc((size_t)sw->n, sizeof *cals);
  if (!cals) return pb_set_error(PB_ERR_NOMEM, "sweep plan: out of memory");
  int ncal = 0;
  for (int i = 0; i < sw->n; i++) {
    const pb_sweep_run *r = &sw->runs[i];
    pb_sweep_cost *c = &costs[i];
    memset(c, 0, sizeof *c);
    c->train_flops = c->step_flops = c->sec_per_step = c->est_seconds = NAN;
    const pb_task *t = pb_task_find(r->task);
    const int B = (int)train_long(r, "batch", 32), T = (int)train_long(r, "max_len", 128);
    const long epochs = train_long(r, "epochs", 3), steps = train_long(r, "steps", 0), max_train = train_long(r, "max_train", 0);
    int n = 0;
    if (steps > 0) c->steps = steps;
    else if (train_size(sizes, &nsz, 64, t, train_get(r, "data_dir"), &n) == PB_OK) {
      if (max_train > 0 && max_train < n) n = (int)max_train;
      c->steps = epochs * ((n + B - 1) / B);
    } else {
      snprintf(c->note, sizeof c->note, "%s", pb_last_error());
    }
    /* the exact train step at B x T */
    pb_backbone_opts bb;
    backbone_opts(r, t, &bb);
    pb_config cfg;
    pb_backbone_info info;
    char ob[PB_SWEEP_MAX_KV][512];
    const char *opts[PB_SWEEP_MAX_KV + 1];
    method_opts(r, ob, opts);
    pb_ops_report rep;
    int rc = pb_backbone_config(&bb, &cfg, &info);
    if (!rc) rc = pb_ops_report_for_dir(&cfg, bb.model_dir, r->method, opts, T < cfg.max_pos ? T : cfg.max_pos, B, T, &rep);
    if (rc) {
      snprintf(c->note, sizeof c->note, "%s", pb_last_error());
      continue;
    }
    c->step_flops = (double)pb_opcounts_flops(&rep.train_step, -1);
    if (c->steps > 0) c->train_flops = c->step_flops * (double)c->steps;
    if (!calibrate_on) continue;
    char key[1024];
    cal_key(r, B, T, key, sizeof key);
    int k = 0;
    while (k < ncal && strcmp(cals[k].key, key) != 0) k++;
    if (k == ncal) {
      snprintf(cals[k].key, sizeof cals[k].key, "%s", key);
      cals[k].ok = calibrate(r, t, B, T, threads, &cals[k].sec) == PB_OK;
      if (!cals[k].ok) snprintf(c->note, sizeof c->note, "calibration: %s", pb_last_error());
      ncal++;
    }
    if (cals[k].ok) {
      c->sec_per_step = cals[k].sec;
      if (c->steps > 0) c->est_seconds = c->sec_per_step * (double)c->steps;
    }
  }
  free(cals);
  return PB_OK;
}
