/* The retrieval run (retrieve.h): BM25 or COIL on Cranfield, measured, one result record. */
#include "harness/retrieve.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "backbone/checkpoint.h"
#include "backbone/ops.h"
#include "counters/papi.h"
#include "counters/sde.h"
#include "counters/timing.h"
#include "harness/bm25.h"
#include "harness/coil.h"
#include "harness/coiltrain.h"
#include "harness/cranfield.h"
#include "harness/irmetrics.h"
#include "harness/results.h"
#include "harness/runconfig.h"
#include "harness/taskmodel.h"
#include "harness/trainer.h"
#include "methods/method.h"
#include "util/digest.h"
#include "util/fileio.h"
#include "util/status.h"
#include "util/strbuf.h"

void pb_retrieve_defaults(pb_retrieve_opts *o) {
  memset(o, 0, sizeof *o);
  o->k1 = 1.2;
  o->b = 0.75;
  o->query_len = 32;
  o->doc_len = 128;
  o->tok_dim = 32;
  o->group = 8;
  o->queries_per_step = 4;
  o->epochs = 3;
  o->warmup_ratio = 0.1;
  o->weight_decay = 0.01;
  o->max_grad_norm = 1.0;
  o->hard_depth = 100;
  o->in_batch = 1;
  o->eval_batch = 32;
  o->out_dir = "out";
  o->bb.hidden_dropout = o->bb.attn_dropout = -1;
}

/* ---------------------------------------------------------------- the model builder's method:
 * the user's method attaches, then the COIL projections are declared (before allocation) */

typedef struct {
  const pb_method_inst *inner;
  pb_coil *co;
  int tok_dim, cls_dim, score_sep, act;
} coil_wrap;

static int wrap_init(void *ctx) { return PB_OK; }
static int wrap_attach(void *ctx, pb_model *m) {
  coil_wrap *w = ctx;
  int rc = w->inner->m->attach(w->inner->ctx, m);
  if (rc) return rc;
  /* special ids are set once the vocabulary is loaded */
  rc = pb_coil_declare(w->co, m, w->tok_dim, w->cls_dim > 0 ? w->cls_dim : m->cfg.hidden, w->score_sep, -1, -1, -1);
  return rc ? rc : pb_coil_set_act(w->co, m, w->act);
}
static const pb_method WRAP = {.version = PB_METHOD_VERSION, .name = "coil", .summary = "COIL projections",
                               .ctx_size = sizeof(coil_wrap), .init = wrap_init, .attach = wrap_attach};

/* ---------------------------------------------------------------- evaluation */

typedef struct {
  int split;
  int n;                 /* queries */
  int *q;                /* [n] query positions */
  pb_ir_scores *s;       /* [n] */
  pb_ir_scores mean;
  char run_path[1400], pq_path[1400];
} split_eval;

static void mean_scores(split_eval *e) {
  memset(&e->mean, 0, sizeof e->mean);
  for (int i = 0; i < e->n; i++) {
    e->mean.mrr10 += e->s[i].mrr10 / e->n;
    e->mean.ndcg10 += e->s[i].ndcg10 / e->n;
    e->mean.ap += e->s[i].ap / e->n;
    e->mean.recall100 += e->s[i].recall100 / e->n;
  }
}

/* one query's ranking: metrics, and its top PB_IR_DEPTH lines of the TREC run */
static void score_query(const pb_cranfield *c, int q, const float *scores, int *order, pb_ir_scores *out,
                        pb_strbuf *run, const char *tag) {
  pb_ir_rank(scores, c->n_docs, order);
  const int depth = c->n_docs < PB_IR_DEPTH ? c->n_docs : PB_IR_DEPTH;
  pb_ir_eval_query(order, depth, c->qrel_doc + c->qrel_off[q], c->qrel_grade + c->qrel_off[q],
                   c->qrel_off[q + 1] - c->qrel_off[q], out);
  for (int r = 0; r < depth; r++)
    pb_sb_add(run, "%d Q0 %d %d %.9g %s\n", q + 1, c->doc_id[order[r]], r + 1, (double)scores[order[r]], tag);
}

static int write_outputs(split_eval *e, const pb_cranfield *c, pb_strbuf *run) {
  if (run->oom) return pb_set_error(PB_ERR_NOMEM, "retrieve: out of memory");
  int rc = pb_write_file_new(e->run_path, run->s ? run->s : "", run->n);
  if (rc) return rc;
  pb_strbuf t = {0};
  pb_sb_add(&t, "query\tquery_id");
  for (int k = 0; k < PB_IR_NMETRICS; k++) pb_sb_add(&t, "\t%s", pb_ir_metric_name(k));
  pb_sb_add(&t, "\n");
  for (int i = 0; i < e->n; i++) {
    pb_sb_add(&t, "%d\t%03d", e->q[i] + 1, c->query_num[e->q[i]]);
    for (int k = 0; k < PB_IR_NMETRICS; k++) pb_sb_add(&t, "\t%.17g", pb_ir_metric_get(&e->s[i], k));
    pb_sb_add(&t, "\n");
  }
  rc = t.oom ? pb_set_error(PB_ERR_NOMEM, "retrieve: out of memory") : pb_write_file_new(e->pq_path, t.s, t.n);
  free(t.s);
  return rc;
}

/* a split's evaluation done: its mean metrics, the TREC run and per-query files (stem.SPLIT.run,
 * stem.SPLIT.predictions.tsv) */
static int finish_split(split_eval *e, const pb_cranfield *c, const char *stem, pb_strbuf *run) {
  mean_scores(e);
  snprintf(e->run_path, sizeof e->run_path, "%s.%s.run", stem, pb_cranfield_split_name(e->split));
  snprintf(e->pq_path, sizeof e->pq_path, "%s.%s.predictions.tsv", stem, pb_cranfield_split_name(e->split));
  return write_outputs(e, c, run);
}

static cJSON *scores_json(const pb_ir_scores *s) {
  cJSON *o = cJSON_CreateObject();
  for (int k = 0; k < PB_IR_NMETRICS; k++) cJSON_AddNumberToObject(o, pb_ir_metric_name(k), pb_ir_metric_get(s, k));
  return o;
}

/* ---------------------------------------------------------------- the run */

typedef struct {
  pb_cranfield c;
  pb_bm25 bm;
  pb_method_inst mi;
  pb_model m;
  int model_built;
  pb_tokenizer *tk;
  pb_ir_texts qt, dt;
  pb_coil_train tr;
  pb_coil_index ix;
  split_eval ev[2];
  int *train_q, *pos_off, *pos_doc, *neg_off, *neg_doc;
  unsigned char *judged;
  float *scores, *maxbuf;
  int *order, *touched;
  float *btok, *bcls, *bcin; /* encoding batch buffers */
  int *bids, *bmask;
  cJSON *jcfg;
  pb_coil co;                /* the COIL projections (and activation buffers) */
  int fold;                  /* 0: the fixed split; 1..5: a cross-validation fold */
} rstate;

static void rstate_free(rstate *S) {
  pb_cranfield_free(&S->c);
  pb_bm25_free(&S->bm);
  if (S->model_built) pb_model_free(&S->m);
  pb_method_destroy(&S->mi);
  pb_tok_free(S->tk);
  pb_ir_texts_free(&S->qt);
  pb_ir_texts_free(&S->dt);
  pb_coil_train_free(&S->tr);
  pb_coil_index_free(&S->ix);
  pb_coil_free(&S->co);
  for (int i = 0; i < 2; i++) {
    free(S->ev[i].q);
    free(S->ev[i].s);
  }
  void *all[] = {S->train_q, S->pos_off, S->pos_doc, S->neg_off, S->neg_doc, S->judged, S->scores, S->maxbuf,
                 S->order, S->touched, S->btok, S->bcls, S->bcin, S->bids, S->bmask};
  for (size_t i = 0; i < sizeof all / sizeof all[0]; i++) free(all[i]);
  cJSON_Delete(S->jcfg);
}

/* training queries, their positives and BM25 hard-negative pools */
static int build_training(rstate *S, int depth) {
  const pb_cranfield *c = &S->c;
  int n = 0;
  for (int q = 0; q < c->n_queries; q++) n += pb_cranfield_split_fold(q, c->n_queries, S->fold) == PB_IR_TRAIN;
  S->train_q = malloc(sizeof(int) * (size_t)n);
  S->pos_off = calloc((size_t)n + 1, sizeof(int));
  S->neg_off = calloc((size_t)n + 1, sizeof(int));
  S->pos_doc = malloc(sizeof(int) * ((size_t)c->n_qrels + 1));
  S->neg_doc = malloc(sizeof(int) * ((size_t)n * (depth > 0 ? depth : 1) + 1));
  S->judged = calloc((size_t)n * c->n_docs + 1, 1);
  if (!S->train_q || !S->pos_off || !S->neg_off || !S->pos_doc || !S->neg_doc || !S->judged)
    return pb_set_error(PB_ERR_NOMEM, "retrieve: out of memory");
  int j = 0, np = 0, nn = 0;
  for (int q = 0; q < c->n_queries; q++) {
    if (pb_cranfield_split_fold(q, c->n_queries, S->fold) != PB_IR_TRAIN) continue;
    S->train_q[j] = q;
    for (int k = c->qrel_off[q]; k < c->qrel_off[q + 1]; k++)
      if (c->qrel_grade[k] >= 1) {
        S->pos_doc[np++] = c->qrel_doc[k];
        S->judged[(size_t)j * c->n_docs + c->qrel_doc[k]] = 1;
      }
    if (depth > 0) {
      int rc = pb_bm25_score(&S->bm, c->query_text[q], S->scores);
      if (rc) return rc;
      pb_ir_rank(S->scores, c->n_docs, S->order);
      for (int r = 0; r < depth && r < c->n_docs; r++)
        if (!S->judged[(size_t)j * c->n_docs + S->order[r]]) S->neg_doc[nn++] = S->order[r];
    }
    S->pos_off[j + 1] = np;
    S->neg_off[j + 1] = nn;
    if (np == S->pos_off[j])
      return pb_set_error(PB_ERR_FORMAT, "%s/cranqrel: training query %d has no relevant document", c->dir, q + 1);
    j++;
  }
  S->tr.n_train = n;
  S->tr.train_q = S->train_q;
  S->tr.pos_off = S->pos_off;
  S->tr.pos_doc = S->pos_doc;
  S->tr.neg_off = S->neg_off;
  S->tr.neg_doc = S->neg_doc;
  S->tr.judged_rel = S->judged;
  return PB_OK;
}

/* the counting-only twin of encoding rows [0, n) of e in batches of EB */
static int count_batches(rstate *S, const pb_ir_texts *e, int EB, pb_opcounts *out) {
  for (int s = 0; s < e->n; s += EB) {
    const int B = e->n - s < EB ? e->n - s : EB;
    int T = 1;
    for (int b = 0; b < B; b++)
      if (e->len[s + b] > T) T = e->len[s + b];
    int rc = pb_coil_count_encode(S->tr.co, &S->m, B, T, out);
    if (rc) return rc;
  }
  return PB_OK;
}

/* ops of one text at each length present, summed over the texts (per-example exact) */
static int count_per_text(rstate *S, const pb_coil *co, const pb_ir_texts *e, const int *rows, int n,
                          pb_opcounts *out) {
  uint64_t *of_len = calloc((size_t)e->T + 1, sizeof *of_len);
  if (!of_len) return pb_set_error(PB_ERR_NOMEM, "retrieve: out of memory");
  for (int i = 0; i < n; i++) of_len[e->len[rows ? rows[i] : i]]++;
  int rc = PB_OK;
  for (int t = 1; t <= e->T && !rc; t++) {
    if (!of_len[t]) continue;
    pb_opcounts one = {{{0}}};
    if (!(rc = pb_coil_count_encode(co, &S->m, 1, t, &one))) pb_opcounts_add_scaled(out, &one, of_len[t]);
  }
  free(of_len);
  return rc;
}

static int stem_for(const char *out_dir, const char *method, const char *cfg_id, unsigned long long seed, char *stem,
                    size_t n) {
  int rc = pb_mkdir_p(out_dir);
  if (rc) return rc;
  char base[256];
  snprintf(base, sizeof base, "cranfield-%s-%s-s%llu", method, cfg_id, seed);
  const char *splits[2] = {"dev", "test"};
  return pb_unique_stem(out_dir, base, splits, 2, stem, n);
}

/* reads a COIL task file's metadata into o (method, options, COIL settings, backbone) */
static int from_meta(const char *path, pb_retrieve_opts *o, pb_kv **meta, int *nmeta, char shape[64],
                     char mcfg[2048], const char *opts[65]) {
  int rc = pb_task_read_meta(path, meta, nmeta);
  if (rc) return rc;
  const char *task = pb_kv_get(*meta, *nmeta, "task"), *kind = pb_kv_get(*meta, *nmeta, "retrieval");
  const char *method = pb_kv_get(*meta, *nmeta, "method"), *mc = pb_kv_get(*meta, *nmeta, "method_config");
  const char *cc = pb_kv_get(*meta, *nmeta, "coil_config");
  if (!task || strcmp(task, "cranfield") != 0 || !kind || strcmp(kind, "coil") != 0 || !method || !mc || !cc)
    return pb_set_error(PB_ERR_FORMAT, "%s: not a COIL task file of `peftbench retrieve` (metadata task, retrieval, "
                                       "method, method_config, coil_config)", path);
  if (o->method && strcmp(o->method, method) != 0)
    return pb_set_error(PB_ERR_ARG, "%s holds method %s, not %s (leave --method out with --from)", path, method,
                        o->method);
  o->method = method;
  snprintf(mcfg, 2048, "%s", mc);
  int n = 0;
  for (char *t = strtok(mcfg, ","); t && n < 64; t = strtok(NULL, ",")) opts[n++] = t;
  opts[n] = NULL;
  o->method_opts = opts;
  cJSON *j = cJSON_Parse(cc);
  const char *keys[5] = {"tok_dim", "cls_dim", "score_sep", "query_len", "doc_len"};
  int *dst[5] = {&o->tok_dim, &o->cls_dim, &o->score_sep, &o->query_len, &o->doc_len};
  for (int k = 0; k < 5; k++) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(j, keys[k]);
    if (!cJSON_IsNumber(v)) {
      cJSON_Delete(j);
      return pb_set_error(PB_ERR_FORMAT, "%s: metadata coil_config lacks %s", path, keys[k]);
    }
    *dst[k] = v->valueint;
  }
  const cJSON *act = cJSON_GetObjectItemCaseSensitive(j, "token_act"); /* absent: none */
  o->token_act = cJSON_IsNumber(act) ? act->valueint : 0;
  cJSON_Delete(j);
  return pb_task_meta_backbone(path, *meta, *nmeta, &o->bb, shape);
}

int pb_retrieve(const pb_retrieve_opts *o, cJSON **record) {
  *record = NULL;
  rstate S;
  memset(&S, 0, sizeof S);
  int rc;
  /* --from TASKFILE: the method, its options, the COIL settings and the backbone from the file */
  pb_retrieve_opts loc = *o;
  pb_kv *meta = NULL;
  int nmeta = 0;
  char shape[64], mcfg[2048];
  const char *fopts[65];
  if (o->from) {
    if ((rc = from_meta(o->from, &loc, &meta, &nmeta, shape, mcfg, fopts))) {
      pb_kv_free(meta, nmeta);
      return rc;
    }
    o = &loc;
  }
  if (!o->method) return pb_set_error(PB_ERR_ARG, "retrieve: --method is required (bm25 or a method: see `peftbench methods`)");
  const int bm25_only = strcmp(o->method, "bm25") == 0;
  if (o->query_len < 3 || o->doc_len < 3 || o->tok_dim < 1 || o->cls_dim < 0 || o->group < 2 ||
      o->queries_per_step < 1 || o->queries_per_step > 256 || o->group > 64 || o->eval_batch > 1024 || o->fold < 0 || o->fold > PB_CRANFIELD_FOLDS || o->eval_batch < 1 || o->hard_depth < 0 || (o->epochs <= 0 && o->steps <= 0) ||
      (o->from && strcmp(o->method, "bm25") == 0)) {
    pb_kv_free(meta, nmeta);
    return pb_set_error(PB_ERR_ARG, "retrieve: need --query-len/--doc-len >= 3, --token-dim >= 1, --group >= 2, "
                                    "--queries >= 1, --eval-batch >= 1, --hard-negatives >= 0 and --epochs or --steps > 0 (and no --from with bm25)");
  }
  if (!bm25_only && (rc = pb_method_create(&S.mi, o->method, o->method_opts))) {
    pb_kv_free(meta, nmeta);
    return rc;
  }
  if (o->threads > 0) pb_set_threads(o->threads);
  const double t_start = pb_wall_seconds();
  char dir[1200];
  if ((rc = pb_cranfield_dir(o->data_dir, dir, sizeof dir))) goto done;
  if ((rc = pb_cranfield_load(dir, &S.c))) goto done;
  const pb_cranfield *c = &S.c;
  S.fold = o->fold;
  char split_name[64];
  if (o->fold > 0) snprintf(split_name, sizeof split_name, "fold-%d-of-%d", o->fold, PB_CRANFIELD_FOLDS);
  else snprintf(split_name, sizeof split_name, "fixed-150-25-50");
  if ((rc = pb_bm25_build(&S.bm, (const char *const *)c->doc_text, c->n_docs, (float)o->k1, (float)o->b))) goto done;
  S.scores = malloc(sizeof(float) * (size_t)c->n_docs);
  S.maxbuf = malloc(sizeof(float) * (size_t)c->n_docs);
  S.order = malloc(sizeof(int) * (size_t)c->n_docs);
  S.touched = malloc(sizeof(int) * (size_t)c->n_docs);
  if (!S.scores || !S.maxbuf || !S.order || !S.touched) {
    rc = pb_set_error(PB_ERR_NOMEM, "retrieve: out of memory");
    goto done;
  }
  for (int i = 0; i < 2; i++) {
    split_eval *e = &S.ev[i];
    e->split = i == 0 ? PB_IR_DEV : PB_IR_TEST;
    e->q = malloc(sizeof(int) * (size_t)c->n_queries);
    e->s = calloc((size_t)c->n_queries, sizeof *e->s);
    if (!e->q || !e->s) {
      rc = pb_set_error(PB_ERR_NOMEM, "retrieve: out of memory");
      goto done;
    }
    for (int q = 0; q < c->n_queries; q++)
      if (pb_cranfield_split_fold(q, c->n_queries, S.fold) == e->split) e->q[e->n++] = q;
  }

  /* the configuration (everything but the seed) and its id */
  S.jcfg = cJSON_CreateObject();
  cJSON *jc = S.jcfg;
  cJSON_AddStringToObject(jc, "method", bm25_only ? "bm25" : S.mi.m->name);
  char desc[2048] = "";
  if (bm25_only) snprintf(desc, sizeof desc, "k1=%g,b=%g", o->k1, o->b);
  else if (S.mi.m->describe && (rc = S.mi.m->describe(S.mi.ctx, desc, sizeof desc))) goto done;
  cJSON_AddStringToObject(jc, "method_desc", desc);
  char data_sha[3][65], all_sha[3 * 65 + 1] = "", dsha[65];
  const char *names[3] = {"cran.all.1400", "cran.qry", "cranqrel"};
  for (int i = 0; i < 3; i++) {
    char p[1300];
    snprintf(p, sizeof p, "%s/%s", dir, names[i]);
    if ((rc = pb_sha256_file(p, data_sha[i]))) goto done;
    strcat(all_sha, data_sha[i]);
  }
  if ((rc = pb_sha256_hex(all_sha, strlen(all_sha), dsha))) goto done;
  cJSON_AddStringToObject(jc, "data_sha256", dsha);
  cJSON_AddStringToObject(jc, "split", split_name);
  cJSON_AddNumberToObject(jc, "bm25_k1", o->k1);
  cJSON_AddNumberToObject(jc, "bm25_b", o->b);

  pb_backbone_info info;
  memset(&info, 0, sizeof info);
  pb_papi_init(o->events);
  pb_sde_register();
  pb_timing tm;
  pb_timing_init(&tm);
  pb_opc_reset();
  pb_opc_enable(1);
  pb_opcounts train_ops = {{{0}}}, index_ops = {{{0}}}, index_an = {{{0}}}, qenc_ops = {{{0}}}, qenc_an = {{{0}}};
  pb_opcounts search_ops = {{{0}}};
  uint64_t search_cf_mac = 0, search_cf_flop = 0;
  int total = 0, steps_per_epoch = 0;
  pb_adamw opt;
  pb_adamw_defaults(&opt);
  char cfg_id[9], stem[1200];

  if (bm25_only) {
    if ((rc = pb_config_id(jc, cfg_id))) goto done;
    if ((rc = stem_for(o->out_dir, "bm25", cfg_id, o->seed, stem, sizeof stem))) goto done;
    pb_timing_start(&tm, "eval");
    pb_papi_start("eval");
    for (int i = 0; i < 2 && !rc; i++) {
      split_eval *e = &S.ev[i];
      pb_strbuf run = {0};
      for (int a = 0; a < e->n && !rc; a++) {
        if ((rc = pb_bm25_score(&S.bm, c->query_text[e->q[a]], S.scores))) break;
        score_query(c, e->q[a], S.scores, S.order, &e->s[a], &run, "bm25");
      }
      if (!rc) rc = finish_split(e, c, stem, &run);
      free(run.s);
    }
    pb_papi_stop("eval");
    pb_timing_stop(&tm, "eval");
    if (rc) goto done;
  } else {
    /* ---- model: backbone + method + projections ---- */
    const int Q = o->queries_per_step, G = o->group;
    const int Tmax = o->doc_len > o->query_len ? o->doc_len : o->query_len;
    const int Bmax = Q * G > o->eval_batch ? Q * G : o->eval_batch;
    pb_method_inst wrap = {&WRAP, NULL};
    coil_wrap wc = {.inner = &S.mi, .co = &S.co, .tok_dim = o->tok_dim, .cls_dim = o->cls_dim, .score_sep = o->score_sep, .act = o->token_act};
    wrap.ctx = &wc;
    pb_backbone_opts bb = o->bb;
    bb.num_labels = 2;
    if ((rc = pb_build_model(&bb, &wrap, Bmax, Tmax, o->seed, &S.m, &info))) goto done;
    S.model_built = 1;
    if (o->from) {
      const char *fp = pb_kv_get(meta, nmeta, "backbone_fingerprint"), *lc = pb_kv_get(meta, nmeta, "lower_case");
      if (!fp || strcmp(fp, info.fingerprint) != 0) {
        rc = pb_set_error(PB_ERR_SHAPE, "%s was trained on backbone fingerprint %s but %s has %s", o->from,
                          fp ? fp : "(none)", info.source, info.fingerprint);
        goto done;
      }
      if ((rc = pb_task_load(&S.m, o->from, NULL, NULL))) goto done;
      if (lc && bb.lower_case == PB_LOWER_CASE_AUTO) bb.lower_case = strcmp(lc, "1") == 0 ? PB_LOWER_CASE_YES : PB_LOWER_CASE_NO;
    }
    if ((rc = pb_load_vocab(&bb, &S.m.cfg, &S.tk, &info))) goto done;
    if (o->from) {
      const char *vs = pb_kv_get(meta, nmeta, "vocab_sha256");
      if (vs && strcmp(vs, info.vocab_sha256) != 0) {
        rc = pb_set_error(PB_ERR_FORMAT, "%s was trained with another vocabulary than %s", o->from, info.vocab_path);
        goto done;
      }
    }
    S.co.cls_id = pb_tok_id(S.tk, "[CLS]");
    S.co.sep_id = pb_tok_id(S.tk, "[SEP]");
    S.co.pad_id = pb_tok_id(S.tk, "[PAD]");
    if (S.co.cls_id < 0 || S.co.sep_id < 0 || S.co.pad_id < 0) {
      rc = pb_set_error(PB_ERR_FORMAT, "%s: the vocabulary lacks [CLS], [SEP] or [PAD]", info.vocab_path);
      goto done;
    }
    char report[256];
    pb_params_report(&S.m.params, report, sizeof report);
    if (!o->quiet)
      fprintf(stderr, "backbone: %s (L=%d d=%d)%s\nmethod: %s %s + COIL tok_dim %d cls_dim %d\n%s\n", info.source,
              S.m.cfg.layers, S.m.cfg.hidden, info.pretrained ? "" : " -- random initialisation, NOT pre-trained",
              S.mi.m->name, desc, S.co.k, S.co.c, report);
    /* ---- texts ---- */
    if ((rc = pb_ir_texts_encode(S.tk, c->query_text, c->n_queries, o->query_len, &S.qt))) goto done;
    if ((rc = pb_ir_texts_encode(S.tk, c->doc_text, c->n_docs, o->doc_len, &S.dt))) goto done;
    /* ---- training data and schedule ---- */
    if ((rc = pb_coil_train_alloc(&S.tr, &S.m, &S.co, Q, G, o->in_batch, o->query_len, o->doc_len))) goto done;
    {
      size_t rows = (size_t)Q * G * o->doc_len;
      if ((size_t)Q * o->query_len > rows) rows = (size_t)Q * o->query_len;
      if ((size_t)o->eval_batch * Tmax > rows) rows = (size_t)o->eval_batch * Tmax;
      if ((rc = pb_coil_reserve(&S.co, rows))) goto done;
    }
    S.tr.queries = &S.qt;
    S.tr.docs = &S.dt;
    S.tr.seed = o->seed;
    if ((rc = build_training(&S, o->hard_depth))) goto done;
    steps_per_epoch = (S.tr.n_train + Q - 1) / Q;
    total = o->from ? 0 : o->steps > 0 ? o->steps : o->epochs * steps_per_epoch;
    const double lr = o->lr > 0 ? o->lr : S.mi.m->default_lr > 0 ? S.mi.m->default_lr : 1e-3;
    opt.lr = (float)lr;
    opt.weight_decay = (float)o->weight_decay;
    opt.warmup_steps = (int)ceil(o->warmup_ratio * total);
    opt.total_steps = total;
    opt.schedule = PB_SCHED_HF;
    cJSON_AddStringToObject(jc, "backbone_fingerprint", info.fingerprint);
    cJSON_AddStringToObject(jc, "vocab_sha256", info.vocab_sha256);
    cJSON_AddNumberToObject(jc, "query_len", o->query_len);
    cJSON_AddNumberToObject(jc, "doc_len", o->doc_len);
    cJSON_AddNumberToObject(jc, "tok_dim", S.co.k);
    cJSON_AddNumberToObject(jc, "cls_dim", S.co.c);
    cJSON_AddBoolToObject(jc, "score_sep", o->score_sep);
    if (o->token_act) cJSON_AddStringToObject(jc, "token_act", o->token_act == PB_COIL_ACT_RELU ? "relu" : "layernorm");
    cJSON_AddNumberToObject(jc, "group", G);
    cJSON_AddNumberToObject(jc, "queries_per_step", Q);
    cJSON_AddBoolToObject(jc, "in_batch", o->in_batch);
    cJSON_AddNumberToObject(jc, "hard_negatives_depth", o->hard_depth);
    cJSON_AddNumberToObject(jc, "epochs", o->steps > 0 ? 0 : o->epochs);
    cJSON_AddNumberToObject(jc, "steps", o->steps);
    cJSON_AddNumberToObject(jc, "lr", lr);
    cJSON_AddNumberToObject(jc, "warmup_ratio", o->warmup_ratio);
    cJSON_AddNumberToObject(jc, "weight_decay", o->weight_decay);
    cJSON_AddNumberToObject(jc, "max_grad_norm", o->max_grad_norm);
    if (o->from) cJSON_AddStringToObject(jc, "from", o->from);
    cJSON_AddNumberToObject(jc, "hidden_dropout", S.m.cfg.hidden_dropout);
    cJSON_AddNumberToObject(jc, "attn_dropout", S.m.cfg.attn_dropout);
    if ((rc = pb_config_id(jc, cfg_id))) goto done;
    if ((rc = stem_for(o->out_dir, S.mi.m->name, cfg_id, o->seed, stem, sizeof stem))) goto done;

    /* ---- train ---- */
    pb_timing_start(&tm, "train");
    pb_papi_start("train");
    pb_opcounts t0 = pb_opc_snapshot();
    if (total > 0) rc = pb_coil_train_run(&S.tr, &opt, total, o->max_grad_norm, total >= 100 ? total / 50 : 1, o->quiet);
    pb_opcounts t1 = pb_opc_snapshot();
    pb_opcounts_sub(&train_ops, &t1, &t0);
    pb_papi_stop("train");
    pb_timing_stop(&tm, "train");
    if (rc) goto done;
    if (pb_train_stop_flag) {
      rc = pb_set_error(PB_ERR_IO, "interrupted at training step %d of %d: no evaluation, no task file and no result "
                                   "were written; earlier results are intact", S.tr.steps, total);
      goto done;
    }
    /* ---- index: encode every document ---- */
    const int EB = o->eval_batch, k = S.co.k, cd = S.co.c;
    S.btok = malloc(sizeof(float) * (size_t)EB * Tmax * k);
    S.bcls = malloc(sizeof(float) * (size_t)EB * cd);
    S.bcin = malloc(sizeof(float) * (size_t)EB * S.co.d);
    S.bids = malloc(sizeof(int) * (size_t)EB * Tmax);
    S.bmask = malloc(sizeof(int) * (size_t)EB * Tmax);
    if (!S.btok || !S.bcls || !S.bcin || !S.bids || !S.bmask) {
      rc = pb_set_error(PB_ERR_NOMEM, "retrieve: out of memory");
      goto done;
    }
    if ((rc = pb_model_prepare(&S.m, 0))) goto done;
    pb_timing_start(&tm, "index");
    pb_papi_start("index");
    if ((rc = pb_coil_index_init(&S.ix, c->n_docs, k, cd, S.m.cfg.vocab_size))) goto done;
    for (int i = 0; i < c->n_docs; i++)
      pb_coil_index_count(&S.ix, &S.co, S.dt.ids + (size_t)i * S.dt.T, S.dt.mask + (size_t)i * S.dt.T, S.dt.len[i]);
    if ((rc = pb_coil_index_alloc(&S.ix))) goto done;
    pb_opcounts i0 = pb_opc_snapshot();
    int idx[1024];
    for (int s = 0; s < c->n_docs && !rc; s += EB) {
      const int B = c->n_docs - s < EB ? c->n_docs - s : EB;
      for (int b = 0; b < B; b++) idx[b] = s + b;
      const int T = pb_ir_texts_batch(&S.dt, idx, B, S.bids, S.bmask);
      if ((rc = pb_coil_encode(&S.co, &S.m, S.bids, S.bmask, B, T, 0, 0, S.btok, S.bcls, S.bcin))) break;
      for (int b = 0; b < B; b++)
        pb_coil_index_add(&S.ix, &S.co, s + b, S.bids + (size_t)b * T, S.bmask + (size_t)b * T,
                          S.btok + (size_t)b * T * k, T, S.bcls + (size_t)b * cd);
    }
    pb_opcounts i1 = pb_opc_snapshot();
    pb_opcounts_sub(&index_ops, &i1, &i0);
    pb_papi_stop("index");
    pb_timing_stop(&tm, "index");
    if (rc) goto done;
    /* ---- retrieve for the dev and test queries ---- */
    pb_timing_start(&tm, "eval");
    pb_papi_start("eval");
    for (int i = 0; i < 2 && !rc; i++) {
      split_eval *e = &S.ev[i];
      pb_strbuf run = {0};
      char tag[64];
      snprintf(tag, sizeof tag, "coil-%s", S.mi.m->name);
      for (int s = 0; s < e->n && !rc; s += EB) {
        const int B = e->n - s < EB ? e->n - s : EB;
        const int T = pb_ir_texts_batch(&S.qt, e->q + s, B, S.bids, S.bmask);
        pb_opcounts a0 = pb_opc_snapshot();
        if ((rc = pb_coil_encode(&S.co, &S.m, S.bids, S.bmask, B, T, 0, 0, S.btok, S.bcls, S.bcin))) break;
        pb_opcounts a1 = pb_opc_snapshot(), da;
        pb_opcounts_sub(&da, &a1, &a0);
        pb_opcounts_add(&qenc_ops, &da);
        for (int b = 0; b < B && !rc; b++) {
          const int *qi = S.bids + (size_t)b * T, *qm = S.bmask + (size_t)b * T;
          pb_opcounts s0 = pb_opc_snapshot();
          rc = pb_coil_search(&S.ix, &S.co, qi, qm, S.btok + (size_t)b * T * k, S.bcls + (size_t)b * cd, T, S.scores,
                              S.maxbuf, S.touched);
          pb_opcounts s1 = pb_opc_snapshot(), ds;
          pb_opcounts_sub(&ds, &s1, &s0);
          pb_opcounts_add(&search_ops, &ds);
          uint64_t mac, flop;
          pb_coil_search_closed_form(&S.ix, &S.co, qi, qm, T, &mac, &flop);
          search_cf_mac += mac;
          search_cf_flop += flop;
          if (!rc) score_query(c, e->q[s + b], S.scores, S.order, &e->s[s + b], &run, tag);
        }
      }
      if (!rc) rc = finish_split(e, c, stem, &run);
      free(run.s);
    }
    pb_papi_stop("eval");
    pb_timing_stop(&tm, "eval");
    if (rc) goto done;
    /* the counting-only twins of the batches just run */
    if ((rc = count_batches(&S, &S.dt, EB, &index_an))) goto done;
    for (int i = 0; i < 2 && !rc; i++)
      for (int s = 0; s < S.ev[i].n && !rc; s += EB) {
        const int B = S.ev[i].n - s < EB ? S.ev[i].n - s : EB;
        int T = 1;
        for (int b = 0; b < B; b++)
          if (S.qt.len[S.ev[i].q[s + b]] > T) T = S.qt.len[S.ev[i].q[s + b]];
        rc = pb_coil_count_encode(&S.co, &S.m, B, T, &qenc_an);
      }
    if (rc) goto done;
  }
  pb_opc_enable(0);

  /* ---- the task file (COIL) ---- */
  char path[1300] = "";
  long long file_bytes = -1;
  if (!bm25_only && o->from) { /* evaluated as it is: the record points to it */
    snprintf(path, sizeof path, "%s", o->from);
    struct stat st;
    file_bytes = stat(path, &st) == 0 ? (long long)st.st_size : -1;
  } else if (!bm25_only) {
    snprintf(path, sizeof path, "%s.safetensors", stem);
    char cfgjson[512], seedbuf[32], coilbuf[256];
    snprintf(cfgjson, sizeof cfgjson,
             "{\"vocab_size\":%d,\"hidden\":%d,\"layers\":%d,\"heads\":%d,\"ffn\":%d,\"max_pos\":%d}",
             S.m.cfg.vocab_size, S.m.cfg.hidden, S.m.cfg.layers, S.m.cfg.heads, S.m.cfg.ffn, S.m.cfg.max_pos);
    snprintf(seedbuf, sizeof seedbuf, "%llu", o->seed);
    snprintf(coilbuf, sizeof coilbuf,
             "{\"tok_dim\":%d,\"cls_dim\":%d,\"score_sep\":%d,\"query_len\":%d,\"doc_len\":%d,\"token_act\":%d}",
             S.co.k, S.co.c, S.co.score_sep, o->query_len, o->doc_len, S.co.act);
    pb_kv meta[] = {
        {"method", (char *)S.mi.m->name}, {"method_config", desc}, {"task", "cranfield"}, {"seed", seedbuf},
        {"backbone", info.source}, {"backbone_config", cfgjson}, {"backbone_fingerprint", info.fingerprint},
        {"vocab_sha256", info.vocab_sha256}, {"lower_case", info.lower_case ? "1" : "0"}, {"config_id", cfg_id},
        {"retrieval", "coil"}, {"coil_config", coilbuf},
    };
    if ((rc = pb_task_save_new(&S.m, path, meta, (int)(sizeof meta / sizeof meta[0])))) goto done;
    struct stat st;
    file_bytes = stat(path, &st) == 0 ? (long long)st.st_size : -1;
  }

  /* ---- the record ---- */
  cJSON *r = cJSON_CreateObject();
  char now[32];
  pb_utc_now(now, sizeof now);
  cJSON_AddStringToObject(r, "schema", PB_RESULT_SCHEMA);
  cJSON_AddStringToObject(r, "time", now);
  cJSON_AddStringToObject(r, "task", "cranfield");
  cJSON_AddStringToObject(r, "task_family", "retrieval");
  cJSON_AddStringToObject(r, "retrieval", bm25_only ? "bm25" : "coil");
  cJSON_AddStringToObject(r, "method", bm25_only ? "bm25" : S.mi.m->name);
  cJSON_AddStringToObject(r, "method_desc", desc);
  cJSON_AddNumberToObject(r, "seed", (double)o->seed);
  cJSON_AddItemToObject(r, "config", S.jcfg);
  S.jcfg = NULL;
  cJSON_AddStringToObject(r, "config_id", cfg_id);
  cJSON *jd = cJSON_AddObjectToObject(r, "data");
  cJSON_AddStringToObject(jd, "data_dir", dir);
  cJSON_AddNumberToObject(jd, "documents", c->n_docs);
  cJSON_AddNumberToObject(jd, "empty_documents", c->n_empty);
  cJSON_AddNumberToObject(jd, "queries", c->n_queries);
  cJSON_AddNumberToObject(jd, "judgements", c->n_qrels);
  if (o->fold > 0)
    cJSON_AddStringToObject(jd, "split", "5-fold by position: test = positions p with (p - 1) % 5 == fold - 1, dev = "
                                         "every 9th remaining position, train = the rest");
  else cJSON_AddStringToObject(jd, "split", "query positions 1-150 train, 151-175 dev, 176-225 test");
  cJSON_AddStringToObject(jd, "split_id", split_name);
  cJSON_AddStringToObject(jd, "grades", "code 1..4 -> grade 4..1, code -1 -> 0; relevant: grade >= 1");
  if (!bm25_only) {
    cJSON_AddNumberToObject(jd, "truncated_documents", S.dt.n_truncated);
    cJSON_AddNumberToObject(jd, "truncated_queries", S.qt.n_truncated);
    cJSON *jb = cJSON_AddObjectToObject(r, "backbone");
    cJSON_AddStringToObject(jb, "source", info.source);
    cJSON_AddBoolToObject(jb, "pretrained", info.pretrained);
    cJSON_AddStringToObject(jb, "fingerprint", info.fingerprint);
    pb_tokenizer_json_add(r, &info);
    cJSON *jt = cJSON_AddObjectToObject(r, "train");
    cJSON_AddNumberToObject(jt, "queries", S.tr.n_train);
    cJSON_AddNumberToObject(jt, "epochs", (double)total / steps_per_epoch);
    cJSON_AddNumberToObject(jt, "steps", total);
    cJSON_AddNumberToObject(jt, "lr", opt.lr);
    cJSON_AddNumberToObject(jt, "warmup_steps", opt.warmup_steps);
    cJSON_AddStringToObject(jt, "schedule", "linear-hf");
    cJSON_AddNumberToObject(jt, "clipped_steps", S.tr.n_clipped);
    cJSON_AddNumberToObject(jt, "final_loss", S.tr.final_loss);
    cJSON_AddItemToObject(jt, "loss_curve", S.tr.curve);
    S.tr.curve = NULL;
  }
  cJSON *jm = cJSON_AddObjectToObject(r, "metrics");
  cJSON *js = cJSON_AddObjectToObject(jm, "splits");
  for (int i = 0; i < 2; i++) {
    cJSON *sp = scores_json(&S.ev[i].mean);
    cJSON_AddNumberToObject(sp, "queries", S.ev[i].n);
    cJSON_AddItemToObject(js, pb_cranfield_split_name(S.ev[i].split), sp);
  }
  cJSON_AddNumberToObject(jm, "score", S.ev[1].mean.ndcg10);
  cJSON_AddStringToObject(jm, "main", "ndcg@10");
  cJSON_AddStringToObject(jm, "score_split", "test");
  cJSON *jp = cJSON_AddObjectToObject(r, "predictions");
  cJSON *jrun = cJSON_AddObjectToObject(r, "runs");
  for (int i = 0; i < 2; i++) {
    cJSON_AddStringToObject(jp, pb_cranfield_split_name(S.ev[i].split), S.ev[i].pq_path);
    cJSON_AddStringToObject(jrun, pb_cranfield_split_name(S.ev[i].split), S.ev[i].run_path);
  }
  cJSON *jpar = cJSON_AddObjectToObject(r, "params");
  cJSON *jst = cJSON_AddObjectToObject(r, "storage");
  cJSON *jo = cJSON_AddObjectToObject(r, "ops");
  if (bm25_only) {
    for (int i = 0; i < 6; i++)
      cJSON_AddNumberToObject(jpar, (const char *[]){"backbone", "method", "head", "trainable", "stored", "all"}[i], 0);
    cJSON_AddNullToObject(jst, "path");
    cJSON_AddNumberToObject(jst, "file_bytes", 0);
    cJSON_AddNumberToObject(jst, "tensor_bytes", 0);
    long long post = S.bm.post_off[S.bm.n_terms];
    cJSON_AddNumberToObject(jst, "index_bytes", (double)(post * 8 + (long long)S.bm.n_terms * 8 + c->n_docs * 4LL));
    cJSON_AddStringToObject(jo, "note", "BM25 is not counted (integer and table work, no kernels)");
  } else {
    cJSON_AddNumberToObject(jpar, "backbone", (double)pb_params_count(&S.m.params, PB_OWNER_BACKBONE, 0, 0));
    cJSON_AddNumberToObject(jpar, "method", (double)pb_params_count(&S.m.params, PB_OWNER_METHOD, 0, 0));
    cJSON_AddNumberToObject(jpar, "head", (double)pb_params_count(&S.m.params, PB_OWNER_HEAD, 0, 0));
    const size_t ntrain = pb_params_count(&S.m.params, -1, 1, 0), nall = pb_params_count(&S.m.params, -1, 0, 0);
    cJSON_AddNumberToObject(jpar, "trainable", (double)ntrain);
    cJSON_AddNumberToObject(jpar, "stored", (double)pb_params_count(&S.m.params, -1, 0, 1));
    cJSON_AddNumberToObject(jpar, "all", (double)nall);
    cJSON_AddNumberToObject(jpar, "trainable_pct", 100.0 * (double)ntrain / (double)nall);
    cJSON_AddNumberToObject(jpar, "projections",
                            (double)(S.co.k * (S.co.d + 1) + S.co.c * (S.co.d + 1) + (S.co.act == PB_COIL_ACT_LN ? 2 * S.co.k : 0)));
    char report[256];
    pb_params_report(&S.m.params, report, sizeof report);
    cJSON_AddStringToObject(jpar, "report", report);
    cJSON_AddStringToObject(jst, "path", path);
    cJSON_AddNumberToObject(jst, "file_bytes", (double)file_bytes);
    cJSON_AddNumberToObject(jst, "tensor_bytes", (double)pb_params_count(&S.m.params, -1, 0, 1) * 4);
    cJSON_AddNumberToObject(jst, "index_bytes", (double)pb_coil_index_bytes(&S.ix));
    cJSON_AddNumberToObject(jst, "index_postings", (double)S.ix.n_postings);
    /* per example at the real lengths: one query (the test queries), one document (the collection) */
    pb_opcounts qx = {{{0}}}, dx = {{{0}}};
    if (!(rc = count_per_text(&S, &S.co, &S.qt, S.ev[1].q, S.ev[1].n, &qx))) rc = count_per_text(&S, &S.co, &S.dt, NULL, c->n_docs, &dx);
    if (rc) {
      cJSON_Delete(r);
      goto done;
    }
    double qtok = 0, dtok = 0;
    for (int a = 0; a < S.ev[1].n; a++) qtok += S.qt.len[S.ev[1].q[a]];
    for (int i = 0; i < c->n_docs; i++) dtok += S.dt.len[i];
    cJSON_AddItemToObject(jo, "query_encode_per_query", pb_ops_json(&qx, S.ev[1].n));
    cJSON_AddNumberToObject(jo, "query_mean_tokens", qtok / S.ev[1].n);
    cJSON_AddItemToObject(jo, "doc_encode_per_doc", pb_ops_json(&dx, c->n_docs));
    cJSON_AddNumberToObject(jo, "doc_mean_tokens", dtok / c->n_docs);
    const int nq = S.ev[0].n + S.ev[1].n;
    cJSON_AddItemToObject(jo, "search_per_query", pb_ops_json(&search_ops, nq));
    pb_opcounts one = {{{0}}}; /* at fixed lengths: query_len, doc_len */
    if ((rc = pb_coil_count_encode(&S.co, &S.m, 1, o->query_len, &one))) {
      cJSON_Delete(r);
      goto done;
    }
    cJSON_AddItemToObject(jo, "query_encode_at_query_len", pb_ops_json(&one, 1));
    memset(&one, 0, sizeof one);
    if ((rc = pb_coil_count_encode(&S.co, &S.m, 1, o->doc_len, &one))) {
      cJSON_Delete(r);
      goto done;
    }
    cJSON_AddItemToObject(jo, "doc_encode_at_doc_len", pb_ops_json(&one, 1));
    if (total > 0) cJSON_AddItemToObject(jo, "train_per_step", pb_ops_json(&train_ops, total));
    cJSON *jme = cJSON_AddObjectToObject(jo, "measured");
    cJSON_AddItemToObject(jme, "train", pb_ops_json(&train_ops, 1));
    cJSON_AddItemToObject(jme, "index", pb_ops_json(&index_ops, 1));
    cJSON_AddItemToObject(jme, "index_analytic", pb_ops_json(&index_an, 1));
    cJSON_AddItemToObject(jme, "query_encode", pb_ops_json(&qenc_ops, 1));
    cJSON_AddItemToObject(jme, "query_encode_analytic", pb_ops_json(&qenc_an, 1));
    cJSON_AddItemToObject(jme, "search", pb_ops_json(&search_ops, 1));
    uint64_t smac = 0, sflop = 0;
    for (int w = 0; w < PB_OPO_COUNT; w++) {
      smac += search_ops.c[w][PB_OPK_MAC];
      sflop += search_ops.c[w][PB_OPK_FLOP];
    }
    const int match = memcmp(&index_ops, &index_an, sizeof index_an) == 0 &&
                      memcmp(&qenc_ops, &qenc_an, sizeof qenc_an) == 0 && smac == search_cf_mac &&
                      sflop == search_cf_flop;
    cJSON_AddBoolToObject(jme, "match", match);
    if (!match) {
      cJSON_Delete(r);
      rc = pb_set_error(PB_ERR_NUMERIC, "internal: instrumented retrieval op counts differ from the analytic ones");
      goto done;
    }
  }
  cJSON_AddItemToObject(r, "counters", pb_papi_to_json());
  cJSON *jtim = pb_timing_to_json(&tm);
  cJSON_AddNumberToObject(jtim, "total_wall_s", pb_wall_seconds() - t_start);
  cJSON_AddItemToObject(r, "timings", jtim);
  pb_memory mem;
  pb_memory_read(&mem);
  cJSON_AddItemToObject(r, "memory", pb_memory_to_json(&mem));
  cJSON_AddItemToObject(r, "host", pb_host_json(pb_get_threads()));
  pb_commit_json_add(r);
  if (o->results && (rc = pb_result_append(o->results, r))) {
    cJSON_Delete(r);
    goto done;
  }
  *record = r;
done:
  pb_kv_free(meta, nmeta);
  pb_opc_enable(0);
  pb_papi_finish();
  rstate_free(&S);
  return rc;
}
