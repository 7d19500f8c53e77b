/* `peftbench eval` (evalcmd.h). */
#include "harness/evalcmd.h"

#include <getopt.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "backbone/checkpoint.h"
#include "counters/timing.h"
#include "backbone/bf16.h"
#include "util/fileio.h"
#include "util/status.h"
#include "harness/cli.h"
#include "harness/encode.h"
#include "harness/exitstats.h"
#include "harness/glue.h"
#include "harness/predictions.h"
#include "harness/results.h"
#include "harness/run.h"
#include "harness/runconfig.h"
#include "harness/setup.h"
#include "harness/taskmodel.h"
#include "methods/method.h"

static const char *EVAL_USAGE =
    "usage: peftbench eval TASKFILE [options]\n"
    "       peftbench eval --model DIR --task TASK [options]\n"
    "  TASKFILE          re-builds the backbone and method recorded in the task file, loads it, evaluates\n"
    "  --model DIR       with TASKFILE: the backbone folder (default: the one recorded in the file);\n"
    "                    alone: a Hugging Face BertForSequenceClassification folder, evaluated as it is\n"
    "                    (its own pooler and classifier, no training; --task is required)\n"
    "  --task TASK       the GLUE task of --model DIR\n"
    "  --max-len N       with --model DIR: tokens per example (128, or the model's positions if fewer)\n"
    "  --vocab FILE      vocabulary  --lower-case auto|yes|no  --data-dir DIR  GLUE folder\n"
    "  --split NAME      one split (default: the task's dev splits); an unlabelled test split gives\n"
    "                    predictions only\n"
    "  --test            also the task's unlabelled test split(s) (MNLI: test_matched, test_mismatched, ax)\n"
    "  --batch N (32)    --max-eval N (0 = all)   --merge (evaluate merged)\n"
    "  --out DIR (out)   where the prediction files go (eval-<name>.<split>.predictions.tsv; never replaced)\n"
    "  --json            print the evaluation as one JSON object (full precision)\n"
    "  --exit-threshold LIST  a model with exits (early exit): evaluate once per entropy threshold of the\n"
    "                    comma list (>= 0; 0 = no early exit), each with its own prediction files\n"
    "                    (eval-<name>-exit<T>.<split>.predictions.tsv) and result record; --json then\n"
    "                    holds \"thresholds\": [{threshold, splits, exits}]\n"
    "  --ode-steps LIST  ODE-step inference: evaluate once per step count S' of the comma list (1..S, the\n"
    "                    backbone's encoder steps; S' < S runs steps floor(j*S/S') with residual updates\n"
    "                    scaled by S/S', pb_model_set_ode_steps), each with its own prediction files\n"
    "                    (eval-<name>-ode<S'>.<split>.predictions.tsv) and result record (\"ode\" block);\n"
    "                    --json then holds \"ode\": [{steps, splits}]\n"
    "  --precision fp32|bf16  matrix products in fp32 (default) or bf16 on AMX (README, \"bf16\")\n"
    "  --results FILE    with TASKFILE: append one result record per evaluation (harness/exitstats.h;\n"
    "                    with exits: the \"exits\" block)\n";

typedef struct {
  pb_backbone_opts bb;
  const char *task_name, *data, *split, *out_dir;
  long batch, max_eval, max_len;
  int merge, test, json;
  const char *results;      /* --results FILE.jsonl (NULL: none) */
  int n_thr;                /* --exit-threshold: thresholds (0: evaluate as the task file says) */
  double thr[64];
  int n_ode;                /* --ode-steps: step counts S' (0: all steps, once) */
  int ode[64];
  int precision;            /* --precision: pb_precision (backbone/bf16.h) */
} eval_opts;

typedef struct {
  pb_task_model tm;         /* the model (a task file's, or an HF checkpoint's in tm.m / tm.tk) */
  pb_dataset ds;
  pb_encoded enc;
  float *out;
  cJSON *rep;
} eval_state;

static void eval_free(eval_state *s) {
  pb_dataset_free(&s->ds);
  pb_encoded_free(&s->enc);
  free(s->out);
  s->out = NULL;
  pb_task_model_free(&s->tm);
  cJSON_Delete(s->rep);
}

static const char *base_name(const char *p) {
  size_t n = strlen(p);
  while (n > 1 && p[n - 1] == '/') n--;
  static char buf[256];
  size_t i = n;
  while (i > 0 && p[i - 1] != '/') i--;
  snprintf(buf, sizeof buf, "%.*s", (int)(n - i), p + i);
  char *dot = strstr(buf, ".safetensors");
  if (dot && dot[12] == 0) *dot = 0;
  return buf;
}

/* Builds the model of a task file (method and backbone from its metadata) into s. */
static int build_from_task_file(const char *path, eval_opts *o, eval_state *s, const pb_task **task, int *T) {
  int rc = pb_task_model_build(path, &o->bb, o->task_name, (int)o->batch, 0, &s->tm);
  if (rc) return rc;
  *task = s->tm.task;
  *T = s->tm.max_len;
  const char *mname = pb_kv_get(s->tm.meta, s->tm.nmeta, "method"), *mcfg = pb_kv_get(s->tm.meta, s->tm.nmeta, "method_config");
  const pb_backbone_info info = s->tm.info;
  cJSON_AddStringToObject(s->rep, "kind", "task-file");
  cJSON_AddStringToObject(s->rep, "file", path);
  cJSON_AddStringToObject(s->rep, "method", mname);
  cJSON_AddStringToObject(s->rep, "method_desc", mcfg);
  cJSON *jb = cJSON_AddObjectToObject(s->rep, "backbone");
  cJSON_AddStringToObject(jb, "source", info.source);
  cJSON_AddStringToObject(jb, "fingerprint", info.fingerprint);
  pb_tokenizer_json_add(s->rep, &info);
  if (o->merge) {
    if (!s->tm.mi.m->merge) return pb_set_error(PB_ERR_ARG, "--merge: method '%s' cannot be merged", mname);
    if ((rc = s->tm.mi.m->merge(s->tm.mi.ctx, &s->tm.m))) return rc;
  }
  return PB_OK;
}

/* Builds an HF BertForSequenceClassification folder as it is: backbone, pooler and head. */
static int build_from_hf(eval_opts *o, eval_state *s, const pb_task *task, int *T) {
  o->bb.num_labels = task->num_labels;
  pb_config cfg;
  pb_backbone_info info;
  int rc = pb_backbone_config(&o->bb, &cfg, &info);
  if (rc) return rc;
  *T = o->max_len > 0 ? (int)o->max_len : cfg.max_pos < 128 ? cfg.max_pos : 128;
  rc = pb_build_model(&o->bb, NULL, (int)o->batch, *T, 0, &s->tm.m, &info);
  if (rc) return rc;
  if (s->tm.m.hf_head == PB_HF_HEAD_MISMATCH)
    return pb_set_error(PB_ERR_SHAPE, "%s: it is not a head for %s (%d label%s)", s->tm.m.hf_head_note, task->name,
                        task->num_labels, task->num_labels > 1 ? "s" : "");
  if (s->tm.m.hf_head != PB_HF_HEAD_LOADED)
    return pb_set_error(PB_ERR_NOTFOUND, "%s: no classifier head (classifier.weight, classifier.bias): eval --model "
                        "needs a BertForSequenceClassification checkpoint; train a head with `peftbench run`",
                        o->bb.model_dir);
  char label_map[300];
  if ((rc = pb_head_label_map(&s->tm.m, o->bb.model_dir, task, label_map, sizeof label_map))) return rc;
  if ((rc = pb_load_vocab(&o->bb, &s->tm.m.cfg, &s->tm.tk, &info))) return rc;
  cJSON_AddStringToObject(s->rep, "kind", "hf-checkpoint");
  cJSON_AddStringToObject(s->rep, "model", o->bb.model_dir);
  cJSON *jb = cJSON_AddObjectToObject(s->rep, "backbone");
  cJSON_AddStringToObject(jb, "source", info.source);
  cJSON_AddStringToObject(jb, "fingerprint", info.fingerprint);
  pb_tokenizer_json_add(s->rep, &info);
  cJSON *jh = cJSON_AddObjectToObject(s->rep, "head");
  cJSON_AddStringToObject(jh, "source", "checkpoint");
  cJSON_AddStringToObject(jh, "label_map", label_map);
  if (o->merge) return pb_set_error(PB_ERR_ARG, "--merge: an HF checkpoint has no method to merge");
  return PB_OK;
}

/* One evaluation of every split (at exit threshold thr when the model has exits): prediction
 * files, the report's "splits" (and "exits") in `into`, and with --results one record. */
static int eval_pass(const char *path, eval_opts *o, eval_state *s, const pb_task *task, int T, const char **splits,
                     int ns, const char *dir, int has_exits, double thr, int ode, cJSON *into) {
  char base[300], stem[1200], ppath[8][1400], tag[48] = "";
  if (o->n_thr) snprintf(tag, sizeof tag, "-exit%g", thr);
  if (o->n_ode) snprintf(tag, sizeof tag, "-ode%d", ode);
  snprintf(base, sizeof base, "eval-%s%s%s%s", base_name(path ? path : o->bb.model_dir), path ? "" : "-", path ? "" : task->name,
           tag);
  int rc = pb_unique_stem(o->out_dir, base, splits, ns, stem, sizeof stem);
  if (rc) return rc;
  cJSON *jsp = cJSON_AddObjectToObject(into, "splits");
  pb_eval_split sp[8];
  memset(sp, 0, sizeof sp);
  char data_paths[8][1024];
  pb_exit_stats all = {0}, one = {0};
  pb_opcounts measured = {{{0}}}, analytic = {{{0}}};
  int *steps = NULL;
  const int want_stats = has_exits || o->results; /* per-example counts: the report's exits, the record */
  double wall = 0, cpu = 0;
  pb_opc_reset();
  pb_opc_enable(1);
  for (int i = 0; !rc && i < ns; i++) {
    if ((rc = pb_glue_load(task, dir, splits[i], 0, &s->ds))) break;
    pb_dataset_subsample(&s->ds, (int)o->max_eval, 0);
    if ((rc = pb_encode_dataset(s->tm.tk, &s->ds, T, &s->enc))) break;
    if (!(s->out = malloc(sizeof(float) * ((size_t)s->enc.n + 1) * (size_t)task->num_labels)) ||
        !(steps = malloc(sizeof(int) * ((size_t)s->enc.n + 1)))) {
      rc = pb_set_error(PB_ERR_NOMEM, "eval: out of memory");
      break;
    }
    const int labelled = s->ds.has_labels;
    pb_opcounts me = {{{0}}};
    const double w0 = pb_wall_seconds(), c0 = pb_cpu_seconds();
    rc = pb_exits_evaluate(&s->tm.m, &s->tm.mi, task, &s->enc, (int)o->batch, labelled ? &sp[i].ms : NULL, s->out, &me, steps,
                           o->results ? &analytic : NULL);
    wall += pb_wall_seconds() - w0, cpu += pb_cpu_seconds() - c0;
    pb_opcounts_add(&measured, &me);
    if (rc) break;
    pb_predictions_path(ppath[i], sizeof ppath[i], stem, splits[i]);
    if ((rc = pb_predictions_write(ppath[i], task, splits[i], &s->ds, s->out, s->enc.n))) break;
    /* per-example exact counts at each example's own length */
    if (want_stats && (rc = pb_exit_stats_add(&one, &s->tm.m, &s->tm.mi, thr, steps, s->enc.len, s->enc.n))) break;
    if (want_stats && labelled && (rc = pb_exit_stats_append(&all, &one))) break;
    snprintf(data_paths[i], sizeof data_paths[i], "%s", s->ds.path);
    sp[i] = (pb_eval_split){.name = splits[i], .examples = s->enc.n, .labelled = labelled, .ms = sp[i].ms,
                            .predictions = ppath[i], .path = data_paths[i], .majority = pb_eval_majority(task, &s->enc)};
    cJSON *j = cJSON_AddObjectToObject(jsp, splits[i]);
    cJSON_AddNumberToObject(j, "examples", s->enc.n);
    if (labelled) {
      cJSON *jm = cJSON_AddObjectToObject(j, "metrics");
      for (int k = 0; k < sp[i].ms.n; k++) cJSON_AddNumberToObject(jm, sp[i].ms.v[k].name, sp[i].ms.v[k].value);
      cJSON_AddNumberToObject(j, "score", sp[i].ms.score);
    } else {
      cJSON_AddNullToObject(j, "metrics");
    }
    cJSON_AddStringToObject(j, "predictions", ppath[i]);
    if (has_exits) cJSON_AddItemToObject(j, "exits", pb_exit_stats_json(&one, thr));
    if (!o->json) {
      printf("  %s (%d examples):", splits[i], s->enc.n);
      if (labelled)
        for (int k = 0; k < sp[i].ms.n; k++) printf(" %s %.10g", sp[i].ms.v[k].name, sp[i].ms.v[k].value);
      else printf(" no labels (predictions only)");
      printf("\n    predictions: %s\n", ppath[i]);
      if (has_exits && one.n > 0) {
        double lay = 0, f = 0, fs = 0;
        for (int k = 0; k < one.n; k++) lay += one.exit_step[k] + 1, f += one.flops[k], fs += one.flops_static[k];
        printf("    exits: mean layer %.3g of %d, FLOPs per example %.4g (static %.4g, speedup %.3gx)\n", lay / one.n,
               one.steps, f / one.n, fs / one.n, f > 0 ? fs / f : 1.0);
      }
    }
    pb_exit_stats_free(&one);
    free(steps);
    steps = NULL;
    pb_dataset_free(&s->ds);
    pb_encoded_free(&s->enc);
    free(s->out);
    s->out = NULL;
  }
  pb_opc_enable(0);
  free(steps);
  pb_exit_stats_free(&one);
  if (!rc && has_exits) cJSON_AddItemToObject(into, "exits", pb_exit_stats_json(&all, thr));
  if (!rc && o->results) {
    char desc[2048] = ""; /* the method as evaluated: its threshold now */
    if (s->tm.mi.m->describe && (rc = s->tm.mi.m->describe(s->tm.mi.ctx, desc, sizeof desc))) {
      pb_exit_stats_free(&all);
      return rc;
    }
    const pb_eval_record_in in = {
        .task_file = path, .task = task, .method = s->tm.mi.m->name, .method_desc = desc,
        .seed = strtoull(pb_kv_get(s->tm.meta, s->tm.nmeta, "seed"), NULL, 10),
        .train_config_id = pb_kv_get(s->tm.meta, s->tm.nmeta, "config_id"),
        .backbone_config = pb_kv_get(s->tm.meta, s->tm.nmeta, "backbone_config"), .info = &s->tm.info, .data_dir = dir,
        .max_len = T, .max_eval = (int)o->max_eval, .batch = (int)o->batch, .merged = o->merge, .n_splits = ns,
        .splits = sp, .stats = &all, .has_exits = has_exits, .threshold = thr, .ode_steps = o->n_ode ? ode : 0,
        .measured = measured,
        .analytic = analytic, .wall_s = wall, .cpu_s = cpu};
    cJSON *r = NULL;
    if (!(rc = pb_eval_record(&in, &s->tm.m, &s->tm.mi, &r))) {
      rc = pb_result_append(o->results, r);
      if (!rc) cJSON_AddStringToObject(into, "record", o->results);
      if (!rc && !o->json) printf("  record appended to %s\n", o->results);
    }
    cJSON_Delete(r);
  }
  pb_exit_stats_free(&all);
  return rc;
}

static int eval_main(const char *path, eval_opts *o, eval_state *s) {
  const pb_task *task = NULL;
  int T = 0, rc;
  s->rep = cJSON_CreateObject();
  cJSON_AddStringToObject(s->rep, "schema", "peftbench-eval/1");
  if ((rc = pb_set_precision((pb_precision)o->precision))) return rc;
  pb_precision_json_add(s->rep);
  if (path) rc = build_from_task_file(path, o, s, &task, &T);
  else {
    if (!(task = pb_task_find(o->task_name))) {
      char names[256];
      pb_task_names(names, sizeof names);
      return pb_set_error(PB_ERR_ARG, "unknown task '%s' (valid: %s)", o->task_name, names);
    }
    rc = build_from_hf(o, s, task, &T);
  }
  if (rc) return rc;
  cJSON_AddStringToObject(s->rep, "task", task->name);
  cJSON_AddNumberToObject(s->rep, "max_len", T);
  const char *splits[8];
  int ns = 0;
  if (o->split) splits[ns++] = o->split;
  else
    for (int i = 0; i < task->n_eval; i++) splits[ns++] = task->eval_splits[i];
  if (o->test) ns += pb_task_test_splits(task, splits + ns, 8 - ns);
  for (int i = 0; i < ns; i++)
    if (!pb_task_split(task, splits[i])) return pb_set_error(PB_ERR_ARG, "--split %s: task %s has no such split", splits[i], task->name);
  char dir[1024];
  if ((rc = pb_glue_data_dir(o->data, dir, sizeof dir))) return rc;
  if ((rc = pb_mkdir_p(o->out_dir))) return rc;
  const int has_exits = pb_exits_model_has(&s->tm.m);
  if (o->n_thr && !has_exits)
    return pb_set_error(PB_ERR_ARG, "--exit-threshold: %s has no exits (method %s)", path ? path : o->bb.model_dir,
                        path ? pb_kv_get(s->tm.meta, s->tm.nmeta, "method") : "none");
  if (o->n_thr && o->n_ode) return pb_set_error(PB_ERR_ARG, "--ode-steps and --exit-threshold exclude each other");
  for (int p = 0; p < o->n_ode; p++)
    if (o->ode[p] > pb_model_steps(&s->tm.m))
      return pb_set_error(PB_ERR_ARG, "--ode-steps %d: the backbone has %d encoder steps (S' must be 1..%d)", o->ode[p],
                          pb_model_steps(&s->tm.m), pb_model_steps(&s->tm.m));
  if (!o->json) printf("%s: %s / %s\n", path ? path : o->bb.model_dir, task->name, path ? pb_kv_get(s->tm.meta, s->tm.nmeta, "method") : "hf checkpoint");
  cJSON *jthr = o->n_thr ? cJSON_AddArrayToObject(s->rep, "thresholds") : o->n_ode ? cJSON_AddArrayToObject(s->rep, "ode") : NULL;
  const int passes = o->n_thr ? o->n_thr : o->n_ode ? o->n_ode : 1;
  for (int p = 0; p < passes; p++) {
    double thr = 0;
    int ode = 0;
    if (o->n_thr) rc = pb_exits_set_threshold(&s->tm.mi, thr = o->thr[p]);
    else if (has_exits) rc = pb_exits_threshold(&s->tm.mi, &thr);
    if (!rc && o->n_ode) rc = pb_model_set_ode_steps(&s->tm.m, ode = o->ode[p]);
    if (rc) return rc;
    cJSON *into = s->rep;
    if (jthr) {
      into = cJSON_CreateObject();
      cJSON_AddItemToArray(jthr, into);
      if (o->n_thr) cJSON_AddNumberToObject(into, "threshold", thr);
      else cJSON_AddNumberToObject(into, "steps", ode);
      if (!o->json && o->n_thr) printf("threshold %g:\n", thr);
      if (!o->json && o->n_ode)
        printf("ODE steps %d of %d (step size %g):\n", ode, pb_model_steps(&s->tm.m), (double)pb_model_steps(&s->tm.m) / ode);
    }
    if ((rc = eval_pass(path, o, s, task, T, splits, ns, dir, has_exits, thr, ode, into))) return rc;
  }
  pb_commit_json_add(s->rep);
  if (o->json) {
    char *txt = pb_json_print_exact(s->rep, 1);
    if (!txt) return pb_set_error(PB_ERR_NOMEM, "eval: out of memory");
    puts(txt);
    free(txt);
  }
  return PB_OK;
}

/* --ode-steps 1,2,4: integers >= 1, at most 64; one line on stderr when not (> S is refused once
 * the model is built) */
static int parse_ode_steps(const char *list, eval_opts *o) {
  o->n_ode = 0;
  const char *p = list;
  for (;;) {
    char *end = NULL;
    const long v = strtol(p, &end, 10);
    if (end == p || (*end && *end != ',') || v < 1 || v > 1000000) {
      fprintf(stderr, "peftbench eval: --ode-steps '%s': each entry must be a step count S' >= 1 (comma list)\n", list);
      return 0;
    }
    if (o->n_ode == (int)(sizeof o->ode / sizeof o->ode[0])) {
      fprintf(stderr, "peftbench eval: --ode-steps: more than %d step counts\n", (int)(sizeof o->ode / sizeof o->ode[0]));
      return 0;
    }
    o->ode[o->n_ode++] = (int)v;
    if (!*end) return 1;
    p = end + 1;
  }
}

/* --exit-threshold 0,0.3,0.6: finite numbers >= 0, at most 64; one line on stderr when not */
static int parse_thresholds(const char *list, eval_opts *o) {
  o->n_thr = 0;
  const char *p = list;
  for (;;) {
    char *end = NULL;
    const double t = strtod(p, &end);
    if (end == p || (*end && *end != ',') || !isfinite(t) || t < 0) {
      fprintf(stderr, "peftbench eval: --exit-threshold '%s': each entry must be a number >= 0 (comma list, 0 = no early "
              "exit)\n", list);
      return 0;
    }
    if (o->n_thr == (int)(sizeof o->thr / sizeof o->thr[0])) {
      fprintf(stderr, "peftbench eval: --exit-threshold: more than %d thresholds\n", (int)(sizeof o->thr / sizeof o->thr[0]));
      return 0;
    }
    o->thr[o->n_thr++] = t;
    if (!*end) return 1;
    p = end + 1;
  }
}

int pb_cmd_eval(int argc, char **argv) {
  enum { O_MODEL = 256, O_TASK, O_VOCAB, O_LOWER, O_DATA, O_SPLIT, O_TEST, O_BATCH, O_MAXEVAL, O_MAXLEN, O_MERGE,
         O_OUT, O_JSON, O_EXIT_THR, O_RESULTS, O_ODE, O_PREC };
  static const struct option opts[] = {{"model", required_argument, 0, O_MODEL},
                                       {"task", required_argument, 0, O_TASK},
                                       {"vocab", required_argument, 0, O_VOCAB},
                                       {"lower-case", required_argument, 0, O_LOWER},
                                       {"data-dir", required_argument, 0, O_DATA},
                                       {"split", required_argument, 0, O_SPLIT},
                                       {"test", no_argument, 0, O_TEST},
                                       {"batch", required_argument, 0, O_BATCH},
                                       {"max-eval", required_argument, 0, O_MAXEVAL},
                                       {"max-len", required_argument, 0, O_MAXLEN},
                                       {"merge", no_argument, 0, O_MERGE},
                                       {"out", required_argument, 0, O_OUT},
                                       {"json", no_argument, 0, O_JSON},
                                       {"exit-threshold", required_argument, 0, O_EXIT_THR},
                                       {"results", required_argument, 0, O_RESULTS},
                                       {"ode-steps", required_argument, 0, O_ODE},
                                       {"precision", required_argument, 0, O_PREC},
                                       {"help", no_argument, 0, 'h'},
                                       {0, 0, 0, 0}};
  eval_opts o;
  memset(&o, 0, sizeof o);
  o.bb.hidden_dropout = o.bb.attn_dropout = -1;
  o.bb.infer_only = 1; /* eval never goes backward */
  o.batch = 32;
  o.max_len = 0; /* --model: 128, or fewer when the model has fewer positions */
  o.out_dir = "out";
  int c;
  opterr = 0;
  while ((c = getopt_long(argc, argv, ":h", opts, NULL)) != -1) {
    switch (c) {
      case O_MODEL: o.bb.model_dir = optarg; break;
      case O_TASK: o.task_name = optarg; break;
      case O_VOCAB: o.bb.vocab = optarg; break;
      case O_LOWER: if (!pb_cli_lower_case(optarg, &o.bb.lower_case)) return 2; break;
      case O_DATA: o.data = optarg; break;
      case O_SPLIT: o.split = optarg; break;
      case O_TEST: o.test = 1; break;
      case O_BATCH: if (!pb_cli_int("--batch", optarg, 1, 4096, &o.batch)) return 2; break;
      case O_MAXEVAL: if (!pb_cli_int("--max-eval", optarg, 0, 100000000, &o.max_eval)) return 2; break;
      case O_MAXLEN: if (!pb_cli_int("--max-len", optarg, 3, 4096, &o.max_len)) return 2; break;
      case O_MERGE: o.merge = 1; break;
      case O_OUT: o.out_dir = optarg; break;
      case O_JSON: o.json = 1; break;
      case O_RESULTS: o.results = optarg; break;
      case O_EXIT_THR: if (!parse_thresholds(optarg, &o)) return 2; break;
      case O_ODE: if (!parse_ode_steps(optarg, &o)) return 2; break;
      case O_PREC: if (!pb_cli_precision(optarg, &o.precision)) return 2; break;
      case 'h': fputs(EVAL_USAGE, stdout); return 0;
      default: return pb_cli_bad_option("eval", argc, argv, opts);
    }
  }
  const char *path = optind < argc ? argv[optind] : NULL;
  if (optind < argc - 1 || (!path && !o.bb.model_dir)) {
    fprintf(stderr, "peftbench eval: expected one task file, or --model DIR --task TASK (see --help)\n");
    return 2;
  }
  if (!path && !o.task_name) {
    fprintf(stderr, "peftbench eval: --model DIR alone needs --task TASK (see --help)\n");
    return 2;
  }
  if (o.results && !path) {
    fprintf(stderr, "peftbench eval: --results needs a task file (an HF checkpoint evaluated as it is has no method)\n");
    return 2;
  }
  if (o.split && o.test) {
    fprintf(stderr, "peftbench eval: --split and --test exclude each other\n");
    return 2;
  }
  eval_state s;
  memset(&s, 0, sizeof s);
  int rc = eval_main(path, &o, &s);
  if (rc) fprintf(stderr, "peftbench eval: %s\n", pb_last_error());
  eval_free(&s);
  return rc == PB_ERR_ARG ? 2 : rc ? 1 : 0;
}
