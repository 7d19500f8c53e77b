/* The main job: tokenise a GLUE task, train one method, evaluate on dev, save the task file,
 * measure (ops, PAPI, time, memory) and append one result record. */
#include "harness/run.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "backbone/bf16.h"
#include "backbone/blas.h"
#include "backbone/checkpoint.h"
#include "backbone/latent.h"
#include "util/fileio.h"
#include "util/digest.h"
#include "backbone/ops.h"
#include "util/status.h"
#include "counters/papi.h"
#include "counters/sde.h"
#include "counters/timing.h"
#include "harness/encode.h"
#include "harness/exitstats.h"
#include "harness/distill.h"
#include "harness/finetune.h"
#include "harness/glue.h"
#include "harness/opsreport.h"
#include "harness/predictions.h"
#include "harness/results.h"
#include "harness/runconfig.h"
#include "harness/trainer.h"

void pb_run_defaults(pb_run_opts *o) {
  memset(o, 0, sizeof *o);
  o->epochs = 3;
  o->batch = 32;
  o->max_len = 128;
  o->warmup_ratio = 0.06;
  o->weight_decay = 0.01;
  o->max_grad_norm = 1.0;
  o->out_dir = "out";
  o->bb.hidden_dropout = -1;
  o->bb.attn_dropout = -1;
  o->curve_every = 0;
  o->kd_alpha = 0.5;
  o->kd_temp = 1.0;
  o->kd_beta = 0.0;
}

/* ---------------------------------------------------------------- helpers */

static cJSON *kv_config_json(const char *desc) {
  cJSON *o = cJSON_CreateObject();
  char buf[1024];
  snprintf(buf, sizeof buf, "%s", desc);
  for (char *tok = strtok(buf, ","); tok; tok = strtok(NULL, ",")) {
    char *eq = strchr(tok, '=');
    if (!eq) continue;
    *eq = 0;
    cJSON_AddStringToObject(o, tok, eq + 1);
  }
  return o;
}

/* ---------------------------------------------------------------- evaluation */

void pb_eval_rows(const pb_model *m, int s, int B, float *outputs, int *pred, float *predf) {
  const int C = m->cfg.num_labels;
  for (int b = 0; b < B; b++) {
    const float *lg = m->acts.logits + (size_t)b * C;
    if (outputs) memcpy(outputs + (size_t)(s + b) * C, lg, sizeof(float) * (size_t)C);
    if (C == 1) {
      predf[s + b] = lg[0];
      pred[s + b] = 0;
    } else {
      int best = 0;
      for (int k = 1; k < C; k++)
        if (lg[k] > lg[best]) best = k;
      pred[s + b] = best;
      predf[s + b] = (float)best;
    }
  }
}

int pb_evaluate(pb_model *m, const pb_method_inst *mi, const pb_task *task, const pb_encoded *e, int batch,
                pb_metric_set *out, float *outputs, pb_opcounts *measured) {
  const int n = e->n;
  int *pred = malloc(sizeof(int) * (size_t)(n + 1));
  float *predf = malloc(sizeof(float) * (size_t)(n + 1));
  int *ids = malloc(sizeof(int) * (size_t)batch * e->max_len), *types = malloc(sizeof(int) * (size_t)batch * e->max_len);
  int *mask = malloc(sizeof(int) * (size_t)batch * e->max_len), *idx = malloc(sizeof(int) * (size_t)batch);
  int rc = PB_OK;
  if (!pred || !predf || !ids || !types || !mask || !idx) rc = pb_set_error(PB_ERR_NOMEM, "eval: out of memory");
  if (!rc) rc = pb_model_prepare(m, 0); /* one-time inference set-up is not per-example work */
  pb_opcounts before = pb_opc_snapshot();
  for (int s = 0; !rc && s < n; s += batch) {
    int B = n - s < batch ? n - s : batch;
    for (int b = 0; b < B; b++) idx[b] = s + b;
    int T = pb_encoded_batch(e, idx, B, ids, types, mask, NULL, NULL);
    if ((rc = pb_forward(m, ids, types, mask, B, T, NULL, NULL, 0, 0, NULL))) break;
    pb_eval_rows(m, s, B, outputs, pred, predf);
  }
  if (measured) {
    pb_opcounts after = pb_opc_snapshot();
    pb_opcounts_sub(measured, &after, &before);
  }
  if (!rc && out) rc = pb_task_metrics(task, pred, e->label, predf, e->target, n, out);
  free(pred);
  free(predf);
  free(ids);
  free(types);
  free(mask);
  free(idx);
  return rc;
}

static double majority_baseline(const pb_task *t, const pb_encoded *e) {
  if (t->is_regression || e->n == 0) return NAN;
  int counts[8] = {0};
  for (int i = 0; i < e->n; i++)
    if (e->label[i] >= 0 && e->label[i] < 8) counts[e->label[i]]++;
  int best = 0;
  for (int k = 1; k < t->num_labels; k++)
    if (counts[k] > counts[best]) best = k;
  /* the task's main metric of always predicting the majority class */
  int *pred = malloc(sizeof(int) * (size_t)e->n);
  if (!pred) return NAN;
  for (int i = 0; i < e->n; i++) pred[i] = best;
  pb_metric_set ms;
  double v = pb_task_metrics(t, pred, e->label, NULL, NULL, e->n, &ms) ? NAN : ms.score;
  free(pred);
  return v;
}

/* ---------------------------------------------------------------- the run */

typedef struct {
  pb_dataset train, eval[2];
  pb_encoded etrain, eeval[2];
  pb_tokenizer *tk;
  pb_model m;
  pb_method_inst mi;
  int model_built;
  pb_finetune ft;           /* the training: batches, objective, curves (harness/finetune.h) */
  pb_distill kd;            /* --teacher (kd.student set once it is built) */
  float *out_eval[2];       /* [n, C] model outputs of each eval split */
  cJSON *jcfg;              /* the record's "config" (moved into the record) */
} run_state;

static void run_free(run_state *s) {
  pb_dataset_free(&s->train);
  pb_encoded_free(&s->etrain);
  for (int i = 0; i < 2; i++) {
    pb_dataset_free(&s->eval[i]);
    pb_encoded_free(&s->eeval[i]);
  }
  pb_tok_free(s->tk);
  if (s->model_built) pb_model_free(&s->m);
  pb_method_destroy(&s->mi);
  pb_finetune_free(&s->ft);
  pb_distill_free(&s->kd);
  for (int i = 0; i < 2; i++) free(s->out_eval[i]);
  cJSON_Delete(s->jcfg);
}

/* --skip-done: PB_RUN_SKIPPED when `results` already holds a record of this task, config id
 * and seed (a missing file holds none); the message says which line. */
static int find_done(const char *results, const char *task, const char *cfg_id, unsigned long long seed) {
  if (access(results, F_OK) != 0) return PB_OK;
  cJSON *all = NULL;
  int bad = 0, rc = pb_results_read(results, &all, &bad);
  if (rc) return rc;
  int found = -1, i = 0;
  const cJSON *r;
  cJSON_ArrayForEach(r, all) {
    const cJSON *t = cJSON_GetObjectItem(r, "task"), *c = cJSON_GetObjectItem(r, "config_id"), *sd = cJSON_GetObjectItem(r, "seed");
    if (cJSON_IsString(t) && cJSON_IsString(c) && cJSON_IsNumber(sd) && strcmp(t->valuestring, task) == 0 &&
        strcmp(c->valuestring, cfg_id) == 0 && sd->valuedouble == (double)seed)
      found = i;
    i++;
  }
  cJSON_Delete(all);
  if (found < 0) return PB_OK;
  pb_set_error(PB_OK, "%s already holds %s config %s seed %llu (record %d): skipped (--skip-done)", results, task,
               cfg_id, seed, found + 1);
  return PB_RUN_SKIPPED;
}

/* SHA-256 over the SHA-256s of the train file and the eval files, in that order */
static int data_digest(const run_state *S, const pb_task *task, char out[65]) {
  char all[3 * 65] = "", one[65];
  const char *paths[3] = {S->train.path, S->eval[0].path, task->n_eval > 1 ? S->eval[1].path : NULL};
  for (int i = 0; i < 3 && paths[i]; i++) {
    int rc = pb_sha256_file(paths[i], one);
    if (rc) return rc;
    strcat(all, one);
  }
  return pb_sha256_hex(all, strlen(all), out);
}

/* SHA-256 (first 16 hex digits) of the training rows kept, as "line,line,...": two runs with
 * the same id trained on the same examples. */
static int subset_digest(const pb_dataset *ds, char out[65]) {
  char *buf = malloc((size_t)ds->n * 12 + 1);
  if (!buf) return pb_set_error(PB_ERR_NOMEM, "run: out of memory");
  size_t o = 0;
  for (int i = 0; i < ds->n; i++) o += (size_t)sprintf(buf + o, "%d,", ds->ex[i].line);
  int rc = pb_sha256_hex(buf, o, out);
  free(buf);
  out[16] = 0;
  return rc;
}

/* Predictions for one unlabelled split (--test): loads, encodes and runs it, writes
 * <stem>.<split>.predictions.tsv into path. Not part of the measured evaluation. */
static int predict_split(run_state *S, const pb_task *task, const char *data_dir, const char *split,
                         const pb_run_opts *o, const char *stem, char *path, size_t npath) {
  pb_dataset ds;
  pb_encoded enc;
  memset(&ds, 0, sizeof ds);
  memset(&enc, 0, sizeof enc);
  float *out = NULL;
  int rc = pb_glue_load(task, data_dir, split, 0, &ds);
  if (!rc) rc = pb_encode_dataset(S->tk, &ds, o->max_len, &enc);
  if (!rc && !(out = malloc(sizeof(float) * ((size_t)enc.n + 1) * (size_t)task->num_labels)))
    rc = pb_set_error(PB_ERR_NOMEM, "%s: out of memory", ds.path);
  if (!rc) rc = pb_evaluate(&S->m, &S->mi, task, &enc, o->batch, NULL, out, NULL);
  pb_predictions_path(path, npath, stem, split);
  if (!rc) rc = pb_predictions_write(path, task, split, &ds, out, enc.n);
  free(out);
  pb_encoded_free(&enc);
  pb_dataset_free(&ds);
  return rc;
}

int pb_run(const pb_run_opts *o, cJSON **result) {
  *result = NULL;
  run_state S;
  memset(&S, 0, sizeof S);
  int rc;
  const pb_task *task = pb_task_find(o->task ? o->task : "");
  if (!task) {
    char names[256];
    pb_task_names(names, sizeof names);
    return pb_set_error(PB_ERR_ARG, "unknown task '%s' (valid: %s)", o->task ? o->task : "", names);
  }
  if (o->batch < 1 || o->max_len < 3 || o->epochs < 0 || o->steps < 0 || (o->epochs == 0 && o->steps == 0))
    return pb_set_error(PB_ERR_ARG, "need --batch >= 1, --max-len >= 3 and --epochs or --steps > 0");
  if ((rc = pb_method_create(&S.mi, o->method ? o->method : "", o->method_opts))) return rc;
  if (o->threads > 0) pb_set_threads(o->threads);
  if ((rc = pb_set_precision((pb_precision)o->precision))) goto done;
  double t_start = pb_wall_seconds();

  /* data */
  char data_dir[1024];
  if ((rc = pb_glue_data_dir(o->data_dir, data_dir, sizeof data_dir))) goto done;
  if ((rc = pb_glue_load(task, data_dir, "train", 1, &S.train))) goto done;
  pb_dataset_subsample(&S.train, o->max_train, o->data_seed); /* the same subset for every --seed */
  for (int i = 0; i < task->n_eval; i++) {
    if ((rc = pb_glue_load(task, data_dir, task->eval_splits[i], 1, &S.eval[i]))) goto done;
    pb_dataset_subsample(&S.eval[i], o->max_eval, 0); /* the same dev subset for every seed */
  }
  char subset_id[65] = "";
  if ((rc = subset_digest(&S.train, subset_id))) goto done;
  if (S.train.n == 0) {
    rc = pb_set_error(PB_ERR_FORMAT, "%s: no training examples", S.train.path);
    goto done;
  }

  /* model, method, vocabulary */
  pb_backbone_opts bb = o->bb;
  bb.num_labels = task->num_labels;
  pb_backbone_info info;
  if ((rc = pb_build_model(&bb, &S.mi, o->batch, o->max_len, o->seed, &S.m, &info))) goto done;
  S.model_built = 1;
  char head_src[16], head_detail[1200];
  if ((rc = pb_resolve_head(&S.m, info.source, info.pretrained, o->new_head, o->seed, head_src, sizeof head_src,
                            head_detail, sizeof head_detail)))
    goto done;
  char label_map[300] = "";
  if (strcmp(head_src, "checkpoint") == 0 &&
      (rc = pb_head_label_map(&S.m, info.source, task, label_map, sizeof label_map)))
    goto done;
  if ((rc = pb_load_vocab(&bb, &S.m.cfg, &S.tk, &info))) goto done;
  char desc[2048] = ""; /* composites ("lora+bitfit") describe every part's options */
  if (S.mi.m->describe && (rc = S.mi.m->describe(S.mi.ctx, desc, sizeof desc))) goto done;
  char report[256];
  pb_params_report(&S.m.params, report, sizeof report);
  if (!o->quiet) {
    if (S.m.steps != S.m.cfg.layers)
      fprintf(stderr, "backbone: shared, %d encoder steps over %d weight sets\n", S.m.steps, S.m.cfg.layers);
    fprintf(stderr, "backbone: %s (L=%d d=%d A=%d F=%d V=%d)%s\n", info.source, S.m.cfg.layers, S.m.cfg.hidden,
            S.m.cfg.heads, S.m.cfg.ffn, S.m.cfg.vocab_size,
            info.pretrained ? "" : " -- random initialisation, NOT pre-trained: scores measure the method on random "
                                   "features only");
    fprintf(stderr, "method: %s %s\n%s\nhead: %s%s%s\n", S.mi.m->name, desc, report, head_detail,
            *label_map ? "; " : "", label_map);
    const pb_blas_info *bi = pb_blas_get();
    if (bi->switched)
      fprintf(stderr, "blas: OpenBLAS picked %s kernels for this CPU (not recognised); using %s (set OPENBLAS_CORETYPE "
                      "to choose)\n", bi->detected, bi->core);
  }

  /* tokenise */
  if ((rc = pb_encode_dataset(S.tk, &S.train, o->max_len, &S.etrain))) goto done;
  for (int i = 0; i < task->n_eval; i++)
    if ((rc = pb_encode_dataset(S.tk, &S.eval[i], o->max_len, &S.eeval[i]))) goto done;

  /* optimiser schedule */
  const int n = S.etrain.n, B = o->batch;
  const int steps_per_epoch = (n + B - 1) / B;
  const int total = o->steps > 0 ? o->steps : o->epochs * steps_per_epoch;
  pb_adamw opt;
  pb_adamw_defaults(&opt);
  opt.lr = (float)(o->lr > 0 ? o->lr : S.mi.m->default_lr > 0 ? S.mi.m->default_lr : 1e-3);
  opt.weight_decay = (float)o->weight_decay;
  /* as HF's Trainer: TrainingArguments.get_warmup_steps = ceil(warmup_ratio * T), then
   * get_linear_schedule_with_warmup (the first step has lr 0 when W > 0; the last still moves) */
  opt.warmup_steps = (int)ceil(o->warmup_ratio * total);
  opt.total_steps = total;
  opt.schedule = PB_SCHED_HF;

  if ((rc = pb_finetune_init(&S.ft, &S.m, &S.etrain, task->is_regression, B, o->max_len, o->seed))) goto done;
  if (o->teacher) { /* the teacher, built beside the student for the same batches */
    const pb_distill_opts dop = {.path = o->teacher, .alpha = o->kd_alpha, .tau = o->kd_temp, .beta = o->kd_beta};
    if ((rc = pb_distill_setup(&S.kd, &dop, task, &S.m, &info, B, o->max_len))) goto done;
    S.ft.teacher = &S.kd;
    if (!o->quiet)
      fprintf(stderr, "teacher: %s (%s, %d steps); alpha %g, temperature %g, hidden %g\n", o->teacher,
              pb_kv_get(S.kd.tm.meta, S.kd.tm.nmeta, "method"), pb_model_steps(&S.kd.tm.m), o->kd_alpha, o->kd_temp,
              o->kd_beta);
  }

  /* the configuration and its id, before any training (--skip-done) */
  /* the data by content, not by path: the same files anywhere are the same data */
  char data_sha[65];
  if ((rc = data_digest(&S, task, data_sha))) goto done;
  const pb_run_config rcfg = {
      .method = S.mi.m->name, .method_desc = desc, .fingerprint = info.fingerprint,
      .vocab_sha256 = info.vocab_sha256, .lower_case = info.lower_case, .data_sha256 = data_sha,
      .data_seed = o->data_seed, .max_train = o->max_train, .max_eval = o->max_eval, .max_len = o->max_len,
      .epochs = o->steps > 0 ? 0 : o->epochs, .steps = o->steps, .batch = B, .lr = o->lr > 0 ? o->lr : S.mi.m->default_lr > 0 ? S.mi.m->default_lr : 1e-3,
      .warmup_ratio = o->warmup_ratio, .weight_decay = o->weight_decay, .hidden_dropout = S.m.cfg.hidden_dropout,
      .attn_dropout = S.m.cfg.attn_dropout, .merge_eval = o->merge_eval, .new_head = o->new_head,
      .max_grad_norm = o->max_grad_norm, .precision = pb_precision_name((pb_precision)o->precision), .distill = o->teacher ? pb_distill_config_json(&S.kd) : NULL};
  char cfg_id[9];
  if (!(S.jcfg = pb_run_config_json(&rcfg))) rc = pb_set_error(PB_ERR_NOMEM, "run: out of memory");
  if (rc || (rc = pb_config_id(S.jcfg, cfg_id))) goto done;
  if (o->skip_done && o->results && (rc = find_done(o->results, task->name, cfg_id, o->seed))) goto done;

  /* counters */
  pb_papi_init(o->events);
  pb_sde_register();
  pb_timing tm;
  pb_timing_init(&tm);
  pb_opc_reset();
  pb_opc_enable(1);

  /* ---- train (harness/finetune.h, harness/trainer.h) ---- */
  pb_timing_start(&tm, "train");
  pb_papi_start("train");
  pb_opcounts train0 = pb_opc_snapshot();
  rc = pb_finetune_train(&S.ft, &opt, total, o->max_grad_norm,
                         o->curve_every > 0 ? o->curve_every : (total >= 200 ? total / 100 : 1), o->quiet);
  pb_papi_stop("train");
  pb_timing_stop(&tm, "train");
  pb_opcounts train_ops, train1 = pb_opc_snapshot();
  pb_opcounts_sub(&train_ops, &train1, &train0);
  if (rc) goto done;
  if (pb_train_stop_flag) { /* also a signal during the last step: the run stops before evaluating */
    rc = pb_set_error(PB_ERR_IO, "interrupted at training step %d of %d: no evaluation, no task file and no result "
                                 "were written; earlier results are intact",
                      S.ft.steps, total);
    goto done;
  }

  /* ---- evaluate ---- */
  int merged = 0;
  if (o->merge_eval) {
    if (!S.mi.m->merge) {
      rc = pb_set_error(PB_ERR_ARG, "--merge: method '%s' cannot be merged", S.mi.m->name);
      goto done;
    }
    if ((rc = S.mi.m->merge(S.mi.ctx, &S.m))) goto done;
    merged = 1;
  }
  pb_metric_set ms[2];
  pb_opcounts eval_meas = {{{0}}}, eval_an = {{{0}}};
  pb_timing_start(&tm, "eval");
  pb_papi_start("eval");
  for (int i = 0; i < task->n_eval; i++) {
    pb_opcounts me = {{{0}}};
    if (!(S.out_eval[i] = malloc(sizeof(float) * (size_t)(S.eeval[i].n + 1) * (size_t)task->num_labels))) {
      rc = pb_set_error(PB_ERR_NOMEM, "eval: out of memory");
      break;
    }
    if (pb_exits_model_has(&S.m)) { /* early exit: the counting-only twin follows each row's exit */
      rc = pb_exits_evaluate(&S.m, &S.mi, task, &S.eeval[i], B, &ms[i], S.out_eval[i], &me, NULL, &eval_an);
      pb_opcounts_add(&eval_meas, &me);
      if (rc) break;
      continue;
    }
    if ((rc = pb_evaluate(&S.m, &S.mi, task, &S.eeval[i], B, &ms[i], S.out_eval[i], &me))) break;
    pb_opcounts_add(&eval_meas, &me);
    for (int s = 0; s < S.eeval[i].n && !rc; s += B) { /* the counting-only run of the same batches */
      int Bb = S.eeval[i].n - s < B ? S.eeval[i].n - s : B, T = 1;
      for (int b = 0; b < Bb; b++)
        if (S.eeval[i].len[s + b] > T) T = S.eeval[i].len[s + b];
      rc = pb_model_ops_add(&S.m, &S.mi, Bb, T, PB_COUNT_INFER, 0, &eval_an); /* as it is: merged with --merge */
    }
    if (rc) break;
  }
  pb_papi_stop("eval");
  pb_timing_stop(&tm, "eval");
  pb_opc_enable(0);
  if (merged && S.mi.m->unmerge) S.mi.m->unmerge(S.mi.ctx, &S.m);
  if (rc) goto done;

  /* ---- save the task file ---- */
  if ((rc = pb_mkdir_p(o->out_dir))) goto done;
  /* <task>-<method>-<config id>-s<seed>, never an existing name: no run replaces another's files */
  const char *psplits[8];
  int np = 0;
  for (int i = 0; i < task->n_eval; i++) psplits[np++] = task->eval_splits[i];
  if (o->predict_test) np += pb_task_test_splits(task, psplits + np, 8 - np);
  char base[256], stem[1200], path[1300];
  snprintf(base, sizeof base, "%s-%s-%s-s%llu", task->name, S.mi.m->name, cfg_id, o->seed);
  if ((rc = pb_unique_stem(o->out_dir, base, psplits, np, stem, sizeof stem))) goto done;
  snprintf(path, sizeof path, "%s.safetensors", stem);
  char cfgjson[512], seedbuf[32], labbuf[16], lenbuf[16];
  snprintf(cfgjson, sizeof cfgjson,
           "{\"vocab_size\":%d,\"hidden\":%d,\"layers\":%d,\"heads\":%d,\"ffn\":%d,\"max_pos\":%d}",
           S.m.cfg.vocab_size, S.m.cfg.hidden, S.m.cfg.layers, S.m.cfg.heads, S.m.cfg.ffn, S.m.cfg.max_pos);
  if (S.m.steps != S.m.cfg.layers) /* a shared backbone: layers = weight sets, steps = encoder steps */
    snprintf(cfgjson + strlen(cfgjson) - 1, sizeof cfgjson - strlen(cfgjson) + 1, ",\"steps\":%d}", S.m.steps);
  snprintf(seedbuf, sizeof seedbuf, "%llu", o->seed);
  snprintf(labbuf, sizeof labbuf, "%d", task->num_labels);
  snprintf(lenbuf, sizeof lenbuf, "%d", o->max_len);
  pb_kv meta[] = {
      {"method", (char *)S.mi.m->name}, {"method_config", desc},       {"task", (char *)task->name},
      {"seed", seedbuf},                {"backbone", info.source},     {"backbone_config", cfgjson},
      {"backbone_fingerprint", info.fingerprint}, {"num_labels", labbuf}, {"max_len", lenbuf},
      {"vocab_sha256", info.vocab_sha256},        {"lower_case", info.lower_case ? "1" : "0"},
      {"config_id", cfg_id},
  };
  if ((rc = pb_task_save_new(&S.m, path, meta, (int)(sizeof meta / sizeof meta[0])))) goto done;

  /* ---- per-example predictions: the eval splits, then (--test) the unlabelled test splits ---- */
  cJSON *jpred = cJSON_CreateObject();
  char ppath[1400];
  for (int i = 0; i < task->n_eval && !rc; i++) {
    pb_predictions_path(ppath, sizeof ppath, stem, task->eval_splits[i]);
    rc = pb_predictions_write(ppath, task, task->eval_splits[i], &S.eval[i], S.out_eval[i], S.eeval[i].n);
    if (!rc) cJSON_AddStringToObject(jpred, task->eval_splits[i], ppath);
  }
  for (int i = task->n_eval; i < np && !rc; i++)
    if (!(rc = predict_split(&S, task, data_dir, psplits[i], o, stem, ppath, sizeof ppath)))
      cJSON_AddStringToObject(jpred, psplits[i], ppath);
  if (rc) {
    cJSON_Delete(jpred);
    goto done;
  }
  struct stat st;
  long long file_bytes = stat(path, &st) == 0 ? (long long)st.st_size : -1;
  long long tensor_bytes = (long long)pb_params_count(&S.m.params, -1, 0, 1) * 4;

  /* ---- the record ---- */
  cJSON *r = cJSON_CreateObject();
  char now[32];
  pb_utc_now(now, sizeof now);
  cJSON_AddStringToObject(r, "schema", PB_RESULT_SCHEMA);
  cJSON_AddStringToObject(r, "time", now);
  cJSON_AddStringToObject(r, "task", task->name);
  cJSON_AddStringToObject(r, "method", S.mi.m->name);
  cJSON_AddItemToObject(r, "method_config", kv_config_json(desc));
  cJSON_AddStringToObject(r, "method_desc", desc);
  cJSON_AddNumberToObject(r, "seed", (double)o->seed);
  cJSON_AddItemToObject(r, "config", S.jcfg);
  S.jcfg = NULL;
  cJSON_AddStringToObject(r, "config_id", cfg_id);
  cJSON *jh = cJSON_AddObjectToObject(r, "head");
  cJSON_AddStringToObject(jh, "source", head_src);
  cJSON_AddStringToObject(jh, "detail", head_detail);
  if (*label_map) cJSON_AddStringToObject(jh, "label_map", label_map);
  else cJSON_AddNullToObject(jh, "label_map");
  cJSON *jb = cJSON_AddObjectToObject(r, "backbone");
  cJSON_AddStringToObject(jb, "source", info.source);
  cJSON_AddBoolToObject(jb, "pretrained", info.pretrained);
  cJSON_AddStringToObject(jb, "fingerprint", info.fingerprint);
  cJSON_AddItemToObject(jb, "config", cJSON_Parse(cfgjson));
  if (pb_model_latent(&S.m)) { /* a compressed backbone (backbone/latent.h): its cut, widths, variant */
    cJSON *jl = cJSON_AddObjectToObject(jb, "latent");
    if (jl) pb_latent_to_json(pb_model_latent(&S.m), jl);
    if (jl) cJSON_AddNumberToObject(jl, "d_prime", pb_model_latent(&S.m)->widths[pb_model_latent(&S.m)->n]);
  }
  pb_tokenizer_json_add(r, &info);
  cJSON *jd = cJSON_AddObjectToObject(r, "data");
  cJSON_AddStringToObject(jd, "data_dir", data_dir);
  cJSON_AddNumberToObject(jd, "train_examples", n);
  cJSON_AddNumberToObject(jd, "max_train", o->max_train);
  cJSON_AddNumberToObject(jd, "data_seed", (double)o->data_seed);
  cJSON_AddStringToObject(jd, "train_subset", subset_id);
  cJSON_AddNumberToObject(jd, "max_eval", o->max_eval);
  cJSON *je = cJSON_AddObjectToObject(jd, "eval_examples");
  for (int i = 0; i < task->n_eval; i++) cJSON_AddNumberToObject(je, task->eval_splits[i], S.eeval[i].n);
  cJSON_AddNumberToObject(jd, "max_len", o->max_len);
  cJSON_AddNumberToObject(jd, "truncated_train", S.etrain.n_truncated);
  cJSON *jt = cJSON_AddObjectToObject(r, "train");
  cJSON_AddNumberToObject(jt, "epochs", o->steps > 0 ? (double)total / steps_per_epoch : o->epochs);
  cJSON_AddNumberToObject(jt, "steps", total);
  cJSON_AddNumberToObject(jt, "batch", B);
  cJSON_AddNumberToObject(jt, "lr", opt.lr);
  cJSON_AddNumberToObject(jt, "warmup_steps", opt.warmup_steps);
  cJSON_AddNumberToObject(jt, "warmup_ratio", o->warmup_ratio);
  cJSON_AddNumberToObject(jt, "weight_decay", opt.weight_decay);
  cJSON_AddStringToObject(jt, "schedule", "linear-hf");
  cJSON_AddNumberToObject(jt, "max_grad_norm", o->max_grad_norm);
  cJSON_AddNumberToObject(jt, "clipped_steps", S.ft.n_clipped);
  cJSON_AddNumberToObject(jt, "final_loss", S.ft.final_loss);
  cJSON_AddItemToObject(jt, "loss_curve", S.ft.curve);
  S.ft.curve = NULL;
  if (S.ft.gcurve) cJSON_AddItemToObject(jt, "grad_norm_curve", S.ft.gcurve);
  else cJSON_AddNullToObject(jt, "grad_norm_curve");
  S.ft.gcurve = NULL;
  cJSON_AddBoolToObject(jt, "interrupted", 0);
  if (o->teacher) cJSON_AddItemToObject(r, "distill", pb_distill_record_json(&S.kd));
  cJSON *jm = cJSON_AddObjectToObject(r, "metrics");
  cJSON *js = cJSON_AddObjectToObject(jm, "splits");
  for (int i = 0; i < task->n_eval; i++) {
    cJSON *sp = cJSON_AddObjectToObject(js, task->eval_splits[i]);
    for (int k = 0; k < ms[i].n; k++) cJSON_AddNumberToObject(sp, ms[i].v[k].name, ms[i].v[k].value);
  }
  cJSON_AddNumberToObject(jm, "score", pb_metric_mean_score(ms, task->n_eval));
  cJSON_AddStringToObject(jm, "main", pb_metric_name(task->metrics[0]));
  double maj = majority_baseline(task, &S.eeval[0]);
  if (isnan(maj)) cJSON_AddNullToObject(jm, "majority_baseline");
  else cJSON_AddNumberToObject(jm, "majority_baseline", maj);
  cJSON *jp = cJSON_AddObjectToObject(r, "params");
  cJSON_AddNumberToObject(jp, "backbone", (double)pb_params_count(&S.m.params, PB_OWNER_BACKBONE, 0, 0));
  cJSON_AddNumberToObject(jp, "method", (double)pb_params_count(&S.m.params, PB_OWNER_METHOD, 0, 0));
  cJSON_AddNumberToObject(jp, "head", (double)pb_params_count(&S.m.params, PB_OWNER_HEAD, 0, 0));
  size_t ntrain = pb_params_count(&S.m.params, -1, 1, 0), nall = pb_params_count(&S.m.params, -1, 0, 0);
  cJSON_AddNumberToObject(jp, "trainable", (double)ntrain);
  cJSON_AddNumberToObject(jp, "stored", (double)pb_params_count(&S.m.params, -1, 0, 1));
  cJSON_AddNumberToObject(jp, "all", (double)nall);
  cJSON_AddNumberToObject(jp, "trainable_pct", 100.0 * (double)ntrain / (double)nall);
  cJSON_AddStringToObject(jp, "report", report);
  cJSON *jst = cJSON_AddObjectToObject(r, "storage");
  cJSON_AddStringToObject(jst, "path", path);
  cJSON_AddNumberToObject(jst, "file_bytes", (double)file_bytes);
  cJSON_AddNumberToObject(jst, "tensor_bytes", (double)tensor_bytes);
  cJSON_AddItemToObject(r, "predictions", jpred);
  /* ops: analytic per example at the real lengths of the (first) eval split and at T = 128 */
  cJSON *jo = cJSON_AddObjectToObject(r, "ops");
  pb_opcounts per_ex = {{{0}}};
  double tok_sum = 0;
  /* an example of length t counts as one counting-only run at B = 1, T = t: one run per
   * distinct length, times the number of examples of that length */
  uint64_t *of_len = calloc((size_t)o->max_len + 1, sizeof *of_len);
  if (!of_len) {
    rc = pb_set_error(PB_ERR_NOMEM, "ops: out of memory");
    cJSON_Delete(r);
    goto done;
  }
  for (int i = 0; i < S.eeval[0].n; i++) {
    const int t = S.eeval[0].len[i];
    of_len[t >= 1 && t <= o->max_len ? t : (t < 1 ? 1 : o->max_len)]++;
    tok_sum += t;
  }
  for (int t = 1; t <= o->max_len && !rc; t++) {
    if (!of_len[t]) continue;
    pb_opcounts one = {{{0}}};
    if (!(rc = pb_model_ops_add(&S.m, &S.mi, 1, t, PB_COUNT_INFER, 0, &one)))
      pb_opcounts_add_scaled(&per_ex, &one, of_len[t]);
  }
  free(of_len);
  if (rc) {
    cJSON_Delete(r);
    goto done;
  }
  const int ne = S.eeval[0].n > 0 ? S.eeval[0].n : 1;
  cJSON_AddItemToObject(jo, "inference_per_example", pb_ops_json(&per_ex, ne));
  cJSON_AddNumberToObject(jo, "mean_tokens", tok_sum / ne);
  int T128 = S.m.cfg.max_pos < 128 ? S.m.cfg.max_pos : 128;
  pb_ops_report rep;
  if ((rc = pb_ops_report_compute(&S.m, &S.mi, T128, B, o->max_len, &rep))) {
    cJSON_Delete(r);
    goto done;
  }
  if (!(o->max_grad_norm > 0)) { /* the report's step clips (the default); this run's did not */
    memset(&rep.train_step, 0, sizeof rep.train_step);
    if ((rc = pb_model_ops_add(&S.m, &S.mi, B, o->max_len, PB_COUNT_TRAIN | PB_COUNT_ADAMW, 0, &rep.train_step))) {
      cJSON_Delete(r);
      goto done;
    }
  }
  pb_ops_report_record_add(jo, &rep, T128, B, o->max_len);
  cJSON *jme = cJSON_AddObjectToObject(jo, "measured");
  cJSON_AddItemToObject(jme, "train", pb_ops_json(&train_ops, 1));
  cJSON_AddItemToObject(jme, "eval", pb_ops_json(&eval_meas, 1));
  cJSON_AddItemToObject(jme, "eval_analytic", pb_ops_json(&eval_an, 1));
  int match = memcmp(&eval_meas, &eval_an, sizeof eval_an) == 0;
  cJSON_AddBoolToObject(jme, "eval_match", match);
  cJSON_AddItemToObject(r, "counters", pb_papi_to_json());
  cJSON *jtim = pb_timing_to_json(&tm);
  cJSON_AddNumberToObject(jtim, "total_wall_s", pb_wall_seconds() - t_start);
  cJSON_AddItemToObject(r, "timings", jtim);
  pb_memory mem;
  pb_memory_read(&mem);
  cJSON *jmem = pb_memory_to_json(&mem);
  { /* exact bytes of what the model allocated for training at --batch x --max-len */
    const double par = 4.0 * (double)(S.m.params.n_frozen + S.m.params.n_train), opt = 12.0 * (double)S.m.params.n_train;
    const double act = 4.0 * (double)S.m.act_floats;
    cJSON *jmb = jmem ? cJSON_AddObjectToObject(jmem, "model_bytes") : NULL;
    cJSON_AddNumberToObject(jmb, "parameters", par);
    cJSON_AddNumberToObject(jmb, "gradients_adamw", opt);
    cJSON_AddNumberToObject(jmb, "activations", act);
    cJSON_AddNumberToObject(jmb, "total", par + opt + act);
  }
  cJSON_AddItemToObject(r, "memory", jmem);
  cJSON_AddItemToObject(r, "host", pb_host_json(pb_get_threads()));
  pb_commit_json_add(r);
  if (!match) {
    cJSON_Delete(r);
    rc = pb_set_error(PB_ERR_NUMERIC, "internal: instrumented eval op count differs from the analytic one");
    goto done;
  }

  if (o->results && (rc = pb_result_append(o->results, r))) {
    cJSON_Delete(r);
    goto done;
  }
  *result = r;
done:
  pb_opc_enable(0);
  pb_papi_finish();
  run_free(&S);
  return rc;
}
