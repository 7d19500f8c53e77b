/* `peftbench pretrain`: masked-language-model pre-training of a backbone (pretrain.h) — its
 * options, the run (corpus, model, resume, the trainer's objective, log, checkpoints) and the
 * command line. The batches are harness/mlmdata.h, the loop harness/trainer.h, the files
 * harness/pretrain_ckpt.h. */
#include "harness/pretrain.h"

#include <errno.h>
#include <limits.h>
#include <math.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "backbone/bf16.h"
#include "backbone/bert.h"
#include "backbone/checkpoint.h"
#include "backbone/share.h"
#include "util/fileio.h"
#include "backbone/mlm.h"
#include "backbone/ops.h"
#include "util/rng.h"
#include "backbone/safetensors.h"
#include "util/status.h"
#include "backbone/tokenizer.h"
#include "counters/timing.h"
#include "harness/cli.h"
#include "harness/corpus.h"
#include "harness/glue.h"
#include "harness/mlmdata.h"
#include "harness/optable.h"
#include "harness/pretrain_ckpt.h"
#include "harness/results.h"
#include "harness/trainer.h"

/* ---------------------------------------------------------------- options table */

#define OFF(f) offsetof(pb_pretrain_opts, f)
#define FIELD(f) PB_OPT_FIELD(pb_pretrain_opts, f)
/* defining (the fifth column): part of the run's identity, stored in the checkpoint, must match on --resume */
static const pb_optdef OPTS[] = {
    {"out", PB_OPT_STR, FIELD(out_dir), 0, "DIR", "output folder: checkpoint, log, final model (required)"},
    {"data-dir", PB_OPT_STR, FIELD(data_dir), 0, "DIR", "GLUE folder (default: $PEFTBENCH_DATA, ../shared/data/glue)"},
    {"vocab", PB_OPT_STR, FIELD(vocab), 0, "FILE", "WordPiece vocab (default ../shared/data/vocab/bert-base-uncased-vocab.txt)"},
    {"init-from", PB_OPT_STR, FIELD(init_from), 1, "DIR", "start from the weights of this HF BERT folder (same shape) instead of random"},
    {"layers", PB_OPT_INT, FIELD(layers), 1, "N", "encoder layers (4)"},
    {"groups", PB_OPT_INT, FIELD(groups), 1, "G", "the layers share G weight sets (G divides --layers; 1: ALBERT-style; 0: unshared)"},
    {"share-init", PB_OPT_STR, FIELD(share_init), 1, "HOW", "shared model from an unshared --init-from: mean (of each group's layers) or first"},
    {"random-steps", PB_OPT_FLAG, FIELD(random_steps), 1, NULL, "step-robust training: every step runs S' ~ U{1..S} ODE steps (step size S/S')"},
    {"val-steps", PB_OPT_STR, FIELD(val_steps), 0, "LIST", "at the end, the validation MLM loss also at each S' of the list (ODE steps, e.g. 1,2,4)"},
    {"hidden", PB_OPT_INT, FIELD(hidden), 1, "N", "hidden size (256)"},
    {"heads", PB_OPT_INT, FIELD(heads), 1, "N", "attention heads (4)"},
    {"ffn", PB_OPT_INT, FIELD(ffn), 1, "N", "intermediate size (1024)"},
    {"max-pos", PB_OPT_INT, FIELD(max_pos), 1, "N", "max_position_embeddings (512)"},
    {"max-len", PB_OPT_INT, FIELD(max_len), 1, "N", "packed sequence length (128)"},
    {"batch", PB_OPT_INT, FIELD(batch), 1, "N", "sequences per step (32)"},
    {"extra-text", PB_OPT_STR, FIELD(extra_text), 1, "LIST", "more text after GLUE train: comma list of wordnet, fortunes (none)"},
    {"nsp", PB_OPT_FLAG, FIELD(nsp), 1, NULL, "add next-sentence prediction on [CLS] (trains the pooler; cls.seq_relationship)"},
    {"wwm", PB_OPT_FLAG, FIELD(wwm), 1, NULL, "whole-word masking (all WordPiece pieces of a picked word)"},
    {"steps", PB_OPT_INT, FIELD(steps), 1, "N", "optimizer steps (1000)"},
    {"warmup", PB_OPT_INT, FIELD(warmup), 1, "N", "linear warmup steps (default 6% of --steps)"},
    {"lr", PB_OPT_FLOAT, FIELD(lr), 1, "X", "peak learning rate (5e-4)"},
    {"weight-decay", PB_OPT_FLOAT, FIELD(weight_decay), 1, "X", "AdamW weight decay (0.01)"},
    {"clip", PB_OPT_FLOAT, FIELD(clip), 1, "X", "gradient clipping global norm, 0 = off (1.0)"},
    {"mask-prob", PB_OPT_FLOAT, FIELD(mask_prob), 1, "X", "share of tokens predicted (0.15)"},
    {"dropout", PB_OPT_FLOAT, FIELD(dropout), 1, "X", "dropout while pretraining (0.1; the exported config says 0.1)"},
    {"seed", PB_OPT_U64, FIELD(seed), 1, "N", "seed of init, data order, masking, dropout (42)"},
    {"save-every", PB_OPT_INT, FIELD(save_every), 0, "N", "checkpoint every N steps (0: only at the end)"},
    {"time-limit", PB_OPT_DOUBLE, FIELD(time_limit_min), 0, "MIN", "stop cleanly after MIN minutes, saving everything"},
    {"threads", PB_OPT_INT, FIELD(threads), 0, "N", "kernel threads (1)"},
    {"precision", PB_OPT_STR, FIELD(precision), 0, "P", "fp32|bf16 matrix products (fp32; README, \"bf16\")"},
    {"resume", PB_OPT_FLAG, FIELD(resume), 0, NULL, "continue from DIR/checkpoint.safetensors"},
    {"fp16", PB_OPT_FLAG, FIELD(fp16), 0, NULL, "write the final model.safetensors in F16"},
    {"export", PB_OPT_STR, FIELD(export_dir), 0, "DIR", "no training: write the final folder to DIR from DIR(--out)/checkpoint"},
    {"eval-dev", PB_OPT_STR, FIELD(eval_dev), 0, "DIR", "no training: MLM loss of the HF folder DIR on the GLUE dev text (--seed, --batch, --max-len)"},
    {"quiet", PB_OPT_FLAG, FIELD(quiet), 0, NULL, "no progress output"},
    {"stop-after", PB_OPT_INT, FIELD(stop_after), 0, "N", "testing aid: act as if interrupted after N steps"},
};
#define NOPTS ((int)(sizeof OPTS / sizeof OPTS[0]))

void pb_pretrain_defaults(pb_pretrain_opts *o) {
  memset(o, 0, sizeof *o);
  o->layers = 4;
  snprintf(o->share_init, sizeof o->share_init, "mean");
  snprintf(o->precision, sizeof o->precision, "fp32");
  o->hidden = 256;
  o->heads = 4;
  o->ffn = 1024;
  o->max_pos = 512;
  o->max_len = 128;
  o->batch = 32;
  o->steps = 1000;
  o->warmup = -1;
  o->lr = 5e-4f;
  o->weight_decay = 0.01f;
  o->clip = 1.0f;
  o->mask_prob = 0.15f;
  o->dropout = 0.1f;
  o->seed = 42;
  o->threads = 1;
}

static int validate_opts(const pb_pretrain_opts *o) {
  if (!o->out_dir[0] && !o->eval_dev[0]) return pb_set_error(PB_ERR_ARG, "pretrain: --out DIR is required (or --eval-dev DIR)");
  if (o->layers < 1 || o->hidden < 1 || o->heads < 1 || o->ffn < 1 || o->hidden % o->heads)
    return pb_set_error(PB_ERR_ARG, "pretrain: bad model shape (layers %d, hidden %d, heads %d, ffn %d)", o->layers,
                        o->hidden, o->heads, o->ffn);
  if (o->groups < 0 || (o->groups > 0 && o->layers % o->groups))
    return pb_set_error(PB_ERR_ARG, "pretrain: --groups %d: G=%d weight sets do not divide the %d layers", o->groups,
                        o->groups, o->layers);
  if (strcmp(o->share_init, "mean") != 0 && strcmp(o->share_init, "first") != 0)
    return pb_set_error(PB_ERR_ARG, "pretrain: --share-init '%s': expected mean or first", o->share_init);
  if (o->max_len < 8 || o->max_len > o->max_pos)
    return pb_set_error(PB_ERR_ARG, "pretrain: --max-len %d must be in 8..--max-pos (%d)", o->max_len, o->max_pos);
  if (o->batch < 1 || o->steps < 1) return pb_set_error(PB_ERR_ARG, "pretrain: --batch and --steps must be >= 1");
  if (o->warmup > o->steps) return pb_set_error(PB_ERR_ARG, "pretrain: --warmup %d exceeds --steps %d", o->warmup, o->steps);
  if (!(o->dropout >= 0 && o->dropout < 1)) return pb_set_error(PB_ERR_ARG, "pretrain: --dropout must be in [0, 1)");
  if (!(o->lr > 0) || !(o->mask_prob > 0 && o->mask_prob < 1))
    return pb_set_error(PB_ERR_ARG, "pretrain: --lr must be > 0 and --mask-prob in (0, 1)");
  if (o->threads < 1 || o->save_every < 0 || o->stop_after < 0)
    return pb_set_error(PB_ERR_ARG, "pretrain: --threads >= 1, --save-every and --stop-after >= 0");
  return PB_OK;
}

/* ---------------------------------------------------------------- paths */

static void join(char *out, size_t n, const char *dir, const char *file) { snprintf(out, n, "%s/%s", dir, file); }

static int file_exists(const char *p) {
  struct stat st;
  return stat(p, &st) == 0;
}

static int resolve_vocab(const char *cli, char *out, size_t n) {
  if (cli && cli[0]) {
    if (!file_exists(cli)) return pb_set_error(PB_ERR_NOTFOUND, "pretrain: vocab file %s not found", cli);
    snprintf(out, n, "%s", cli);
    return PB_OK;
  }
  const char *rel = "../shared/data/vocab/bert-base-uncased-vocab.txt";
  if (file_exists(rel)) {
    snprintf(out, n, "%s", rel);
    return PB_OK;
  }
  snprintf(out, n, "%s/%s", PB_SOURCE_DIR, rel);
  if (file_exists(out)) return PB_OK;
  return pb_set_error(PB_ERR_NOTFOUND,
                      "pretrain: no vocab (tried %s and %s/%s); pass --vocab FILE (bert-base-uncased vocab.txt)", rel,
                      PB_SOURCE_DIR, rel);
}

/* ---------------------------------------------------------------- run state */

typedef struct {
  pb_pretrain_opts o;
  pb_tokenizer *tk;
  char vocab_path[PB_PRETRAIN_PATH_MAX];
  char data_dir[PB_PRETRAIN_PATH_MAX];
  pb_corpus cp;
  pb_mlm_data d;             /* the batches: split, stream, masking (harness/mlmdata.h) */
  pb_model m;
  pb_mlm h;
  pb_nsp nh;                 /* next-sentence head (o.nsp) */
  pb_adamw opt;
  pb_train_state ts;         /* steps done, tokens seen, earlier runs' seconds, the loss window */
  float nwindow[PB_TRAIN_WINDOW]; /* next-sentence losses of the same steps, ring (o.nsp) */
  float nsp_loss;            /* the last training step's next-sentence loss */
  float val_nsp_loss, val_nsp_acc;
  float val_loss;            /* last validation MLM loss (NAN: none) */
  int val_step;
  char val_at[512];          /* --val-steps: "S':loss,..." of the last validation */
  FILE *logf;                /* log.tsv */
  char first_command[4096];
  char started[32];
} run_state;

static double window_mean(const run_state *s) { return pb_train_window_mean(&s->ts); }

/* ---------------------------------------------------------------- the objective */

/* forward of a batch: the MLM loss (and with pair labels the next-sentence loss) */
static int mlm_forward(run_state *s, const pb_batch *b, int training, uint64_t dseed, float *loss, float *nsp_loss) {
  int rc = pb_forward(&s->m, b->ids, b->types, b->mask, b->B, b->T, NULL, NULL, training, dseed, NULL);
  if (!rc) rc = pb_mlm_forward(&s->h, &s->m, b->labels, loss);
  if (!rc && b->pair_labels) rc = pb_nsp_forward(&s->nh, &s->m, b->pair_labels, nsp_loss);
  return rc;
}

/* the validation MLM loss at Sp ODE steps (eval_val: all S) */
static float eval_val_at(run_state *s, int Sp);
static float eval_val(run_state *s) { return eval_val_at(s, pb_model_steps(&s->m)); }

/* --val-steps: the validation loss at each S' of the list into s->val_at (then back at S) */
static int eval_val_steps(run_state *s) {
  s->val_at[0] = 0;
  char buf[64];
  snprintf(buf, sizeof buf, "%s", s->o.val_steps);
  size_t w = 0;
  for (char *t = strtok(buf, ","); t; t = strtok(NULL, ",")) {
    const int Sp = atoi(t);
    if (Sp < 1 || Sp > pb_model_steps(&s->m))
      return pb_set_error(PB_ERR_ARG, "pretrain: --val-steps %s: each S' must be in 1..%d", s->o.val_steps,
                          pb_model_steps(&s->m));
    const float l = eval_val_at(s, Sp);
    w += (size_t)snprintf(s->val_at + w, w < sizeof s->val_at ? sizeof s->val_at - w : 0, "%s%d:%.6f", w ? "," : "", Sp,
                          (double)l);
    if (!s->o.quiet) fprintf(stderr, "pretrain: validation MLM loss at %d of %d steps: %.4f\n", Sp, pb_model_steps(&s->m), (double)l);
  }
  return pb_model_set_ode_steps(&s->m, pb_model_steps(&s->m));
}

static float eval_val_at(run_state *s, int Sp) {
  s->val_nsp_loss = s->val_nsp_acc = NAN;
  if (pb_model_set_ode_steps(&s->m, Sp)) return NAN; /* validation at Sp of the S steps */
  const pb_mlm_data *d = &s->d;
  if (d->n_val == 0) return NAN;
  double sum = 0, cnt = 0, nsum = 0, ncor = 0, nrows = 0;
  for (int i = 0; i < d->n_val; i += s->o.batch) {
    int B = d->n_val - i < s->o.batch ? d->n_val - i : s->o.batch;
    float l, nl = NAN;
    pb_batch b;
    /* the same masks (and next-sentence pairs) at every evaluation: a seed of its own per
     * batch. The MLM loss is over the plain packed rows (comparable with and without --nsp);
     * the next-sentence loss and accuracy over the pair rows, in a second pass. */
    uint64_t vs = pb_hash64(s->o.seed ^ 0x76616CULL) + (uint64_t)i;
    if (pb_mlm_data_batch(&s->d, d->val_idx + i, B, 0, vs, &b) < 0 || mlm_forward(s, &b, 0, 0, &l, NULL)) return NAN;
    sum += (double)l * s->h.M;
    cnt += s->h.M;
    if (s->o.nsp) {
      float ml;
      if (pb_mlm_data_batch(&s->d, d->val_idx + i, B, 1, vs, &b) < 0 || mlm_forward(s, &b, 0, 0, &ml, &nl))
        return NAN;
      nsum += (double)nl * B;
      ncor += s->nh.correct;
      nrows += B;
    }
  }
  if (nrows > 0) {
    s->val_nsp_loss = (float)(nsum / nrows);
    s->val_nsp_acc = (float)(ncor / nrows);
  }
  return cnt > 0 ? (float)(sum / cnt) : NAN;
}

/* ---------------------------------------------------------------- checkpoint metadata */

static void kv_set(pb_kv *kv, int *n, const char *key, const char *fmt, ...) __attribute__((format(printf, 4, 5)));
static void kv_set(pb_kv *kv, int *n, const char *key, const char *fmt, ...) {
  char buf[4096];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(buf, sizeof buf, fmt, ap);
  va_end(ap);
  kv[*n].key = strdup(key);
  kv[*n].value = strdup(buf);
  (*n)++;
}

/* metadata describing the run at its current step, `seconds` of training so far */
static int run_meta(const run_state *s, const char *stop_reason, double seconds, pb_kv **out, int *n_out) {
  int cap = NOPTS + 40, n = 0;
  pb_kv *kv = calloc((size_t)cap, sizeof *kv);
  if (!kv) return pb_set_error(PB_ERR_NOMEM, "pretrain: out of memory");
  kv_set(kv, &n, "format", "%s", PB_PRETRAIN_CKPT_FORMAT);
  kv_set(kv, &n, "step", "%d", s->ts.step);
  kv_set(kv, &n, "stop_reason", "%s", stop_reason);
  kv_set(kv, &n, "tokens_seen", "%ld", s->ts.items);
  kv_set(kv, &n, "train_seconds", "%.3f", seconds);
  kv_set(kv, &n, "final_mlm_loss", "%.6f", window_mean(s));
  kv_set(kv, &n, "loss_window_n", "%d", s->ts.win_n);
  kv_set(kv, &n, "val_mlm_loss", "%.6f", (double)s->val_loss);
  kv_set(kv, &n, "val_step", "%d", s->val_step);
  if (s->val_at[0]) kv_set(kv, &n, "val_mlm_loss_at_steps", "%s", s->val_at);
  if (s->o.nsp) {
    kv_set(kv, &n, "final_nsp_loss", "%.6f", pb_train_ring_mean(&s->ts, s->nwindow));
    kv_set(kv, &n, "val_nsp_loss", "%.6f", (double)s->val_nsp_loss);
    kv_set(kv, &n, "val_nsp_acc", "%.6f", (double)s->val_nsp_acc);
  }
  kv_set(kv, &n, "corpus_extra", "%s", s->cp.sources);
  kv_set(kv, &n, "corpus_glue_sequences", "%d", s->cp.n_glue_seq);
  kv_set(kv, &n, "corpus_glue_tokens", "%ld", s->cp.n_glue_tokens);
  kv_set(kv, &n, "corpus_tasks", "%s", s->cp.tasks);
  kv_set(kv, &n, "corpus_sentences", "%ld", s->cp.n_sent);
  kv_set(kv, &n, "corpus_sequences", "%d", s->cp.n_seq);
  kv_set(kv, &n, "corpus_train_sequences", "%d", s->d.n_train);
  kv_set(kv, &n, "corpus_val_sequences", "%d", s->d.n_val);
  kv_set(kv, &n, "corpus_tokens", "%ld", s->cp.n_tokens);
  kv_set(kv, &n, "corpus_truncated_sentences", "%ld", s->cp.n_trunc);
  kv_set(kv, &n, "corpus_hash", "%016llx", (unsigned long long)s->cp.hash);
  kv_set(kv, &n, "vocab", "%s", s->vocab_path);
  kv_set(kv, &n, "data_dir", "%s", s->data_dir);
  kv_set(kv, &n, "command", "%s", s->first_command);
  kv_set(kv, &n, "last_command", "%s", s->o.command);
  kv_set(kv, &n, "started", "%s", s->started);
  char now[32];
  pb_utc_now(now, (int)sizeof now);
  kv_set(kv, &n, "saved", "%s", now);
  kv_set(kv, &n, "threads", "%d", s->o.threads);
  kv_set(kv, &n, "precision", "%s", pb_precision_name(pb_get_precision()));
  if (pb_get_precision() == PB_PREC_BF16) kv_set(kv, &n, "precision_kernel", "%s %s", pb_bf16_library(), pb_bf16_kernel());
  kv_set(kv, &n, "save_every", "%d", s->o.save_every);
  for (int i = 0; i < NOPTS; i++) {
    if (!OPTS[i].defining) continue;
    char key[64], val[PB_PRETRAIN_PATH_MAX];
    snprintf(key, sizeof key, "opt.%s", OPTS[i].name);
    pb_opt_format(&s->o, &OPTS[i], val, sizeof val);
    kv_set(kv, &n, key, "%s", val);
  }
  for (int i = 0; i < n; i++)
    if (!kv[i].key || !kv[i].value) {
      pb_kv_free(kv, n);
      return pb_set_error(PB_ERR_NOMEM, "pretrain: out of memory");
    }
  *out = kv;
  *n_out = n;
  return PB_OK;
}

static int save_checkpoint(const run_state *s, const char *stop_reason, double seconds) {
  char path[PB_PRETRAIN_PATH_MAX + 64];
  join(path, sizeof path, s->o.out_dir, "checkpoint.safetensors");
  pb_kv *meta = NULL;
  int n_meta = 0;
  int rc = run_meta(s, stop_reason, seconds, &meta, &n_meta);
  if (!rc) rc = pb_pretrain_ckpt_write(path, &s->m.params, meta, n_meta, s->ts.window, s->o.nsp ? s->nwindow : NULL);
  pb_kv_free(meta, n_meta);
  return rc;
}

static const char *meta_get(const pb_kv *kv, int n, const char *key, const char *path) {
  const char *v = pb_kv_get(kv, n, key);
  if (!v) pb_set_error(PB_ERR_FORMAT, "%s: checkpoint metadata lacks \"%s\"", path, key);
  return v;
}

/* fills the defining options of o from checkpoint metadata (check_only: compares them
 * instead and reports the first that differs) */
static int opts_from_meta(pb_pretrain_opts *o, const pb_kv *kv, int n, const char *path, int check_only) {
  for (int i = 0; i < NOPTS; i++) {
    if (!OPTS[i].defining) continue;
    char key[64];
    snprintf(key, sizeof key, "opt.%s", OPTS[i].name);
    const char *v = pb_kv_get(kv, n, key);
    /* options added later: a checkpoint without them ran with their defaults */
    if (!v && (OPTS[i].off == OFF(extra_text) || OPTS[i].off == OFF(init_from))) v = "";
    if (!v && (OPTS[i].off == OFF(nsp) || OPTS[i].off == OFF(wwm) || OPTS[i].off == OFF(groups) ||
               OPTS[i].off == OFF(random_steps)))
      v = "0";
    if (!v && OPTS[i].off == OFF(share_init)) v = "mean";
    if (!v && OPTS[i].off == OFF(dropout)) v = "0.100000001";
    if (!v) v = meta_get(kv, n, key, path);
    if (!v) return PB_ERR_FORMAT;
    if (check_only) {
      char cur[PB_PRETRAIN_PATH_MAX];
      pb_opt_format(o, &OPTS[i], cur, sizeof cur);
      if (strcmp(cur, v) != 0)
        return pb_set_error(PB_ERR_ARG, "pretrain: --%s %s differs from the checkpoint's %s (%s); a resumed run keeps its options",
                            OPTS[i].name, cur, v, path);
    } else {
      int rc = pb_opt_parse(o, &OPTS[i], v);
      if (rc) return rc;
    }
  }
  return PB_OK;
}

/* ---------------------------------------------------------------- model */
static int build_model(run_state *s, int V) {
  pb_config c;
  pb_config_default(&c, 2);
  c.vocab_size = V;
  c.hidden = s->o.hidden;
  c.layers = s->o.layers;
  c.heads = s->o.heads;
  c.ffn = s->o.ffn;
  c.max_pos = s->o.max_pos;
  c.hidden_dropout = c.attn_dropout = s->o.dropout;
  /* --groups: the layers as steps over G shared weight sets (share.h) */
  int rc = s->o.groups > 0 ? pb_model_declare_shared(&s->m, &c, s->o.groups) : pb_model_declare(&s->m, &c);
  if (!rc) rc = pb_mlm_declare(&s->h, &s->m);
  if (!rc && s->o.nsp) rc = pb_nsp_declare(&s->nh, &s->m);
  if (rc) return rc;
  /* full training of every backbone tensor; the classifier (and, without --nsp, the pooler)
   * gets no gradient */
  for (int i = 0; i < s->m.params.n; i++) s->m.params.t[i].trainable = 1;
  const int frozen[4] = {s->m.cls_w, s->m.cls_b, s->m.pool_w, s->m.pool_b};
  for (int i = 0; i < (s->o.nsp ? 2 : 4); i++) s->m.params.t[frozen[i]].trainable = 0;
  const int B = s->o.batch, T = s->o.max_len;
  if ((rc = pb_model_alloc(&s->m, B, T))) return rc;
  if ((rc = pb_mlm_alloc(&s->h, &s->m, B * pb_mlm_max_per_row(T, s->o.mask_prob)))) return rc;
  if (s->o.nsp && (rc = pb_nsp_alloc(&s->nh, &s->m))) return rc;
  pb_model_init_random(&s->m, s->o.seed);
  return PB_OK;
}

/* A shared model from an unshared folder DIR of the same depth (share.h pb_share_init_from): each
 * weight set = the mean (--share-init mean) or the first of its group's layers; a folder that is
 * itself shared (ALBERT) was loaded by name and is kept as it is. */
static int share_from_unshared(run_state *s, const char *dir) {
  char path[PB_PRETRAIN_PATH_MAX + 64];
  join(path, sizeof path, dir, "config.json");
  pb_config c;
  memset(&c, 0, sizeof c);
  int rc = pb_config_load_hf(path, &c);
  if (rc) return rc;
  pb_model src;
  if ((rc = pb_model_declare(&src, &c))) return rc;
  if ((rc = pb_model_apply_hf_shape(&src, dir))) goto out;
  if (pb_model_is_shared(&src)) goto out; /* already shared: the tensors loaded by their ALBERT names */
  if ((rc = pb_params_alloc(&src.params)) || (rc = pb_model_load_hf_ex(&src, dir, 0))) goto out;
  rc = pb_share_init_from(&s->m, &src, strcmp(s->o.share_init, "first") == 0 ? PB_SHARE_INIT_FIRST : PB_SHARE_INIT_MEAN);
  if (!rc && !s->o.quiet)
    fprintf(stderr, "pretrain: %d steps over %d shared weight sets, each the %s of its group's layers of %s\n",
            s->m.steps, s->m.cfg.layers, s->o.share_init, dir);
out:
  pb_model_free(&src);
  return rc;
}

/* --init-from: every non-method tensor of the table that DIR/model.safetensors holds with the
 * same element count; the word embeddings must be among them */
static int init_from_folder(run_state *s, const char *dir, int *n_loaded) {
  char path[PB_PRETRAIN_PATH_MAX + 64];
  join(path, sizeof path, dir, "model.safetensors");
  pb_st_file f;
  int rc = pb_st_open(&f, path);
  if (rc) return rc;
  pb_params *p = &s->m.params;
  int n = 0, word_ok = 0;
  for (int i = 0; i < p->n && rc == PB_OK; i++) {
    pb_tensor *t = &p->t[i];
    if (t->owner == PB_OWNER_METHOD || strncmp(t->name, "classifier.", 11) == 0) continue;
    int k = pb_st_find(&f, t->name);
    char al[PB_NAME_MAX];
    if (k < 0 && pb_albert_name(t->name, al, sizeof al)) k = pb_st_find(&f, al); /* a shared (ALBERT) folder */
    if (k < 0) continue;
    if (f.t[k].numel != t->numel) {
      rc = pb_set_error(PB_ERR_SHAPE, "pretrain: --init-from %s: %s has %zu values, the model %zu (another shape?)", dir,
                        t->name, f.t[k].numel, t->numel);
      break;
    }
    if ((rc = pb_st_read_f32(&f, k, t->data, t->numel))) break;
    for (size_t j = 0; j < t->numel; j++)
      if (!isfinite(t->data[j])) {
        rc = pb_set_error(PB_ERR_NUMERIC, "pretrain: --init-from %s: %s holds a non-finite value", dir, t->name);
        break;
      }
    n++;
    word_ok |= i == s->m.word;
  }
  pb_st_close(&f);
  if (!rc && !word_ok)
    rc = pb_set_error(PB_ERR_NOTFOUND, "pretrain: --init-from %s: no bert.embeddings.word_embeddings.weight", path);
  if (!rc && pb_model_is_shared(&s->m)) rc = share_from_unshared(s, dir);
  if (!rc) p->version++;
  *n_loaded = n;
  return rc;
}

static void run_free(run_state *s) {
  pb_mlm_free(&s->h);
  pb_nsp_free(&s->nh);
  pb_model_free(&s->m);
  pb_mlm_data_free(&s->d);
  pb_corpus_free(&s->cp);
  pb_tok_free(s->tk);
  if (s->logf) fclose(s->logf);
}

static int do_export(const pb_pretrain_opts *o) {
  char ck[PB_PRETRAIN_PATH_MAX + 64];
  join(ck, sizeof ck, o->out_dir, "checkpoint.safetensors");
  pb_st_file f;
  int rc = pb_st_open(&f, ck);
  if (rc) return rc;
  run_state *s = calloc(1, sizeof *s);
  if (!s) {
    pb_st_close(&f);
    return pb_set_error(PB_ERR_NOMEM, "pretrain: out of memory");
  }
  s->o = *o;
  const char *fmt = pb_kv_get(f.meta, f.n_meta, "format"), *voc = pb_kv_get(f.meta, f.n_meta, "vocab");
  int wi = pb_st_find(&f, "bert.embeddings.word_embeddings.weight");
  if (!fmt || strcmp(fmt, PB_PRETRAIN_CKPT_FORMAT) != 0 || !voc || wi < 0 || f.t[wi].ndim != 2) {
    rc = pb_set_error(PB_ERR_FORMAT, "%s: not a peftbench pretraining checkpoint", ck);
    goto out;
  }
  if ((rc = opts_from_meta(&s->o, f.meta, f.n_meta, ck, 0))) goto out;
  if (o->vocab[0]) voc = o->vocab;
  if ((rc = build_model(s, (int)f.t[wi].shape[0]))) goto out;
  if ((rc = pb_pretrain_ckpt_read(&f, &s->m.params, s->ts.window, s->o.nsp ? s->nwindow : NULL))) goto out;
  rc = pb_pretrain_export(&s->m, o->export_dir, o->fp16, voc, f.meta, f.n_meta);
  if (!rc && !o->quiet) fprintf(stderr, "pretrain: wrote %s (step %s, %s)\n", o->export_dir,
                                pb_kv_get(f.meta, f.n_meta, "step"), o->fp16 ? "F16" : "F32");
out:
  pb_st_close(&f);
  run_free(s);
  free(s);
  return rc;
}

/* --eval-dev DIR: no training. The MLM loss of the HF folder DIR (its config.json shape, its
 * tensors as --init-from loads them, the MLM head included) on every sentence of the GLUE dev
 * splits, packed as the pre-training corpus, all sequences scored, masks drawn from --seed as the
 * held-out set's are. No pre-training run ever reads dev text, so this loss compares any two
 * checkpoints, whatever seeds their runs split their held-out sets with. Prints one line on stdout. */
static int do_eval_dev(const pb_pretrain_opts *o) {
  run_state *s = calloc(1, sizeof *s);
  if (!s) return pb_set_error(PB_ERR_NOMEM, "pretrain: out of memory");
  s->o = *o;
  char path[PB_PRETRAIN_PATH_MAX + 64];
  join(path, sizeof path, o->eval_dev, "config.json");
  pb_config c;
  memset(&c, 0, sizeof c);
  int rc = pb_config_load_hf(path, &c);
  if (rc) goto out;
  s->o.layers = c.layers, s->o.hidden = c.hidden, s->o.heads = c.heads, s->o.ffn = c.ffn, s->o.max_pos = c.max_pos;
  s->o.groups = 0, s->o.nsp = 0;
  if (s->o.max_len > c.max_pos) {
    rc = pb_set_error(PB_ERR_ARG, "pretrain: --max-len %d exceeds %s's max_position_embeddings %d", s->o.max_len, path, c.max_pos);
    goto out;
  }
  /* the folder's own vocab.txt, else --vocab / the default one */
  join(path, sizeof path, o->eval_dev, "vocab.txt");
  if ((rc = resolve_vocab(o->vocab[0] ? o->vocab : file_exists(path) ? path : "", s->vocab_path, sizeof s->vocab_path)))
    goto out;
  if ((rc = pb_tok_load(&s->tk, s->vocab_path))) goto out;
  if (pb_tok_vocab_size(s->tk) != c.vocab_size) {
    rc = pb_set_error(PB_ERR_SHAPE, "pretrain: --eval-dev %s: vocab_size %d, but %s has %d tokens", o->eval_dev, c.vocab_size,
                      s->vocab_path, pb_tok_vocab_size(s->tk));
    goto out;
  }
  if ((rc = pb_glue_data_dir(o->data_dir, s->data_dir, sizeof s->data_dir))) goto out;
  if ((rc = pb_corpus_build_split(&s->cp, s->tk, s->data_dir, "dev", s->o.max_len, NULL, 1))) goto out;
  if ((rc = pb_mlm_data_init(&s->d, &s->cp, s->tk, s->o.batch, s->o.seed, s->o.mask_prob, s->o.wwm)) ||
      (rc = pb_mlm_data_hold_out_all(&s->d, &s->cp)))
    goto out;
  if ((rc = build_model(s, c.vocab_size))) goto out;
  { /* a folder without the MLM head (a fine-tuning export) would be scored through a random one */
    join(path, sizeof path, o->eval_dev, "model.safetensors");
    pb_st_file f;
    if ((rc = pb_st_open(&f, path))) goto out;
    const int has = pb_st_find(&f, s->m.params.t[s->h.dense_w].name) >= 0;
    pb_st_close(&f);
    if (!has) {
      rc = pb_set_error(PB_ERR_NOTFOUND, "pretrain: --eval-dev %s: no %s in %s (not an MLM checkpoint)", o->eval_dev,
                        s->m.params.t[s->h.dense_w].name, path);
      goto out;
    }
  }
  int nl = 0;
  if ((rc = init_from_folder(s, o->eval_dev, &nl))) goto out;
  pb_set_threads(o->threads);
  const float l = eval_val(s);
  if (!isfinite(l)) {
    rc = pb_set_error(PB_ERR_NUMERIC, "pretrain: --eval-dev %s: the MLM loss is not finite", o->eval_dev);
    goto out;
  }
  printf("%s: MLM loss %.4f on the GLUE dev text (%s; %d sequences of <= %d tokens, %ld tokens; masks seeded %llu, "
         "%s%.2f masked)\n",
         o->eval_dev, (double)l, s->cp.tasks, s->cp.n_seq, s->o.max_len, s->cp.n_tokens, (unsigned long long)s->o.seed,
         s->o.wwm ? "whole words, " : "", (double)s->o.mask_prob);
out:
  run_free(s);
  free(s);
  return rc;
}

/* log.tsv: on a fresh start a new file; on resume keep the lines up to the checkpoint step */
static FILE *open_log(const run_state *s) {
  char path[PB_PRETRAIN_PATH_MAX + 64];
  join(path, sizeof path, s->o.out_dir, "log.tsv");
  const char *header = s->o.nsp ? "step\tloss\tlr\tgrad_norm\tnsp_loss\ttokens_per_s\n"
                                : "step\tloss\tlr\tgrad_norm\ttokens_per_s\n";
  char *keep = NULL;
  size_t kl = 0;
  if (s->ts.step > 0) {
    char *txt = NULL;
    size_t len = 0;
    if (pb_read_file(path, &txt, &len) == PB_OK) {
      keep = malloc(len + 1);
      if (keep) {
        char *line = txt, *nl;
        while (*line && (nl = strchr(line, '\n'))) {
          int st = atoi(line);
          if (line == txt || (st >= 1 && st <= s->ts.step)) {
            memcpy(keep + kl, line, (size_t)(nl - line + 1));
            kl += (size_t)(nl - line + 1);
          }
          line = nl + 1;
        }
      }
      free(txt);
    }
  }
  FILE *fp = fopen(path, "w");
  if (!fp) {
    free(keep);
    return NULL;
  }
  if (kl) fwrite(keep, 1, kl, fp);
  else fputs(header, fp);
  free(keep);
  fflush(fp);
  return fp;
}

/* ---------------------------------------------------------------- training (harness/trainer.h) */

/* step t's batch: its sequences of the stream, rows (pairs with --nsp) and masks seeded by (seed, t) */
static int pt_batch(void *ctx, int t, pb_batch *b) {
  run_state *s = ctx;
  pb_mlm_data_step(&s->d, t);
  int np = pb_mlm_data_batch(&s->d, s->d.seq, s->o.batch, s->o.nsp,
                             pb_hash64(s->o.seed ^ pb_hash64(0x6D61736BULL + (uint64_t)t)), b);
  return np < 0 ? np : PB_OK;
}

/* MLM (+ next-sentence) loss and backward through the heads and the encoder; dropout seeded by (seed, t) */
static int pt_objective(void *ctx, int t, const pb_batch *b, float *loss) {
  run_state *s = ctx;
  s->nsp_loss = NAN;
  if (s->o.random_steps) { /* step-robust training: S' ~ U{1..S}, seeded by (seed, t) */
    const int S = pb_model_steps(&s->m);
    const int Sp = 1 + (int)(pb_hash64(s->o.seed ^ pb_hash64(0x6F64655354ULL + (uint64_t)t)) % (uint64_t)S);
    int rc = pb_model_set_ode_steps(&s->m, Sp);
    if (rc) return rc;
  }
  int rc = mlm_forward(s, b, 1, pb_hash64(s->o.seed ^ pb_hash64(0x64726F70ULL + (uint64_t)t)), loss, &s->nsp_loss);
  if (!rc) rc = pb_mlm_backward_head(&s->h, &s->m);
  if (!rc && s->o.nsp) rc = pb_nsp_backward(&s->nh, &s->m, s->h.dout);
  if (!rc) rc = pb_backward_hidden(&s->m, s->h.dout);
  return rc;
}

static int pt_diverged(void *ctx, int t, double gn) {
  return pb_set_error(PB_ERR_NUMERIC, "pretrain: gradient norm is %g at step %d (diverged; lower --lr)", gn, t);
}

/* the next-sentence window and one log.tsv line per step */
static int pt_after_step(void *ctx, const pb_train_step *st) {
  run_state *s = ctx;
  const int t = st->t;
  s->nwindow[(t - 1) % PB_TRAIN_WINDOW] = s->o.nsp ? s->nsp_loss : 0.0f;
  fprintf(s->logf, "%d\t%.7g\t%.6g\t%.5g\t", t, (double)st->loss, (double)st->lr, st->grad_norm);
  if (s->o.nsp) fprintf(s->logf, "%.7g\t", (double)s->nsp_loss);
  fprintf(s->logf, "%.1f\n", st->t_run > 0 ? st->items_run / st->t_run : 0.0);
  fflush(s->logf);
  return PB_OK;
}

/* --save-every: validation and a checkpoint */
static int pt_periodic(void *ctx, const pb_train_step *st) {
  run_state *s = ctx;
  s->val_loss = eval_val(s);
  s->val_step = s->ts.step;
  /* train_seconds in the checkpoint = earlier runs + this run so far */
  int rc = save_checkpoint(s, "checkpoint", s->ts.seconds + (pb_wall_seconds() - st->t_start));
  if (rc) return rc;
  if (!s->o.quiet && !isatty(STDERR_FILENO)) {
    char nsp[64] = "";
    if (s->o.nsp) snprintf(nsp, sizeof nsp, ", NSP loss %.4f acc %.3f", (double)s->val_nsp_loss, (double)s->val_nsp_acc);
    fprintf(stderr, "pretrain: checkpoint at step %d (val MLM loss %.4f%s)\n", s->ts.step, (double)s->val_loss, nsp);
  }
  return PB_OK;
}

static const pb_trainer_ops PT_OPS = {
    .version = PB_TRAINER_OPS_VERSION, .batch = pt_batch, .objective = pt_objective, .after_step = pt_after_step,
    .periodic = pt_periodic, .diverged = pt_diverged};

/* ---------------------------------------------------------------- the run */

/* --resume: the run's state from the checkpoint's metadata and tensors */
static int resume_from(run_state *s, const char *ckpath) {
  if (!file_exists(ckpath)) return pb_set_error(PB_ERR_NOTFOUND, "pretrain: --resume but %s does not exist", ckpath);
  pb_st_file ckf;
  int rc = pb_st_open(&ckf, ckpath);
  if (rc) return rc;
  const pb_kv *kv = ckf.meta;
  int n = ckf.n_meta;
  const char *fmt = pb_kv_get(kv, n, "format"), *v, *ch;
  char hash[32];
  if (!fmt || strcmp(fmt, PB_PRETRAIN_CKPT_FORMAT) != 0) {
    rc = pb_set_error(PB_ERR_FORMAT, "%s: not a peftbench pretraining checkpoint", ckpath);
    goto out;
  }
  if ((rc = opts_from_meta(&s->o, kv, n, ckpath, 1))) goto out;
  snprintf(hash, sizeof hash, "%016llx", (unsigned long long)s->cp.hash);
  ch = meta_get(kv, n, "corpus_hash", ckpath);
  if (!ch || strcmp(ch, hash) != 0) {
    rc = ch ? pb_set_error(PB_ERR_ARG, "pretrain: the corpus (hash %s) differs from the checkpoint's (%s): other data or vocab",
                           hash, ch)
            : PB_ERR_FORMAT;
    goto out;
  }
  if (!(v = meta_get(kv, n, "step", ckpath))) {
    rc = PB_ERR_FORMAT;
    goto out;
  }
  s->ts.step = atoi(v);
  if ((v = pb_kv_get(kv, n, "tokens_seen"))) s->ts.items = atol(v);
  if ((v = pb_kv_get(kv, n, "train_seconds"))) s->ts.seconds = atof(v);
  if ((v = pb_kv_get(kv, n, "loss_window_n"))) s->ts.win_n = atoi(v);
  if ((v = pb_kv_get(kv, n, "val_mlm_loss"))) s->val_loss = (float)atof(v);
  if ((v = pb_kv_get(kv, n, "val_step"))) s->val_step = atoi(v);
  if ((v = pb_kv_get(kv, n, "command"))) snprintf(s->first_command, sizeof s->first_command, "%s", v);
  if ((v = pb_kv_get(kv, n, "started"))) snprintf(s->started, sizeof s->started, "%s", v);
  rc = pb_pretrain_ckpt_read(&ckf, &s->m.params, s->ts.window, s->o.nsp ? s->nwindow : NULL);
out:
  pb_st_close(&ckf);
  return rc;
}

int pb_pretrain(const pb_pretrain_opts *opts) {
  pb_pretrain_opts o = *opts;
  if (o.warmup < 0) o.warmup = o.steps * 6 / 100;
  int rc = validate_opts(&o);
  if (rc) return rc;
  if (o.export_dir[0]) return do_export(&o);
  if (o.eval_dev[0]) return do_eval_dev(&o);
  pb_set_threads(o.threads);
  pb_precision prec;
  if ((rc = pb_precision_parse(o.precision, &prec)) || (rc = pb_set_precision(prec))) return rc;
  if (mkdir(o.out_dir, 0755) != 0 && errno != EEXIST)
    return pb_set_error(PB_ERR_IO, "pretrain: cannot create %s: %s", o.out_dir, strerror(errno));
  run_state *s = calloc(1, sizeof *s);
  if (!s) return pb_set_error(PB_ERR_NOMEM, "pretrain: out of memory");
  s->o = o;
  s->val_loss = NAN;
  s->val_nsp_loss = s->val_nsp_acc = NAN;
  snprintf(s->first_command, sizeof s->first_command, "%s", o.command);
  pb_utc_now(s->started, (int)sizeof s->started);
  char ckpath[PB_PRETRAIN_PATH_MAX + 64];
  join(ckpath, sizeof ckpath, o.out_dir, "checkpoint.safetensors");
  if (!o.resume && file_exists(ckpath)) {
    rc = pb_set_error(PB_ERR_ARG, "pretrain: %s already holds a checkpoint; pass --resume to continue it or choose another --out",
                      o.out_dir);
    goto out;
  }
  /* corpus */
  if ((rc = resolve_vocab(o.vocab, s->vocab_path, sizeof s->vocab_path))) goto out;
  if ((rc = pb_tok_load(&s->tk, s->vocab_path))) goto out;
  if ((rc = pb_glue_data_dir(o.data_dir, s->data_dir, sizeof s->data_dir))) goto out;
  /* absolute paths in the checkpoint, so that --resume / --export work from any directory */
  {
    char abs[PATH_MAX];
    if (realpath(s->vocab_path, abs) && strlen(abs) < sizeof s->vocab_path) snprintf(s->vocab_path, sizeof s->vocab_path, "%s", abs);
    if (realpath(s->data_dir, abs) && strlen(abs) < sizeof s->data_dir) snprintf(s->data_dir, sizeof s->data_dir, "%s", abs);
  }
  double t0 = pb_wall_seconds();
  if ((rc = pb_corpus_build(&s->cp, s->tk, s->data_dir, o.max_len, o.extra_text, o.quiet))) goto out;
  if ((rc = pb_mlm_data_init(&s->d, &s->cp, s->tk, o.batch, o.seed, o.mask_prob, o.wwm))) goto out;
  if (!o.quiet)
    fprintf(stderr,
            "pretrain: corpus %s%s%s | %ld sentences (%ld truncated to %d) -> %d sequences of <= %d tokens "
            "(%ld tokens; %d train, %d held out) in %.1f s\n",
            s->cp.tasks, s->cp.sources[0] ? " + " : "", s->cp.sources, s->cp.n_sent, s->cp.n_trunc, o.max_len - 2,
            s->cp.n_seq, o.max_len, s->cp.n_tokens,
            s->d.n_train, s->d.n_val, pb_wall_seconds() - t0);
  if (s->d.n_train < 1) {
    rc = pb_set_error(PB_ERR_ARG, "pretrain: corpus too small");
    goto out;
  }
  /* model, optimizer */
  if ((rc = build_model(s, pb_tok_vocab_size(s->tk)))) goto out;
  pb_adamw_defaults(&s->opt);
  s->opt.lr = o.lr;
  s->opt.eps = 1e-6f;
  s->opt.weight_decay = o.weight_decay;
  s->opt.warmup_steps = o.warmup;
  s->opt.total_steps = o.steps;
  if (!o.resume && o.init_from[0]) {
    int nl = 0;
    if ((rc = init_from_folder(s, o.init_from, &nl))) goto out;
    if (!o.quiet) fprintf(stderr, "pretrain: initialised %d tensors from %s\n", nl, o.init_from);
  }
  if (o.resume) {
    if ((rc = resume_from(s, ckpath))) goto out;
    if (!o.quiet) fprintf(stderr, "pretrain: resumed from %s at step %d of %d\n", ckpath, s->ts.step, o.steps);
  }
  {
    char rep[256];
    pb_params_report(&s->m.params, rep, sizeof rep);
    if (!o.quiet)
      fprintf(stderr, "pretrain: L=%d d=%d A=%d F=%d V=%d, batch %d x %d, %d steps (warmup %d), lr %g, threads %d | %s\n",
              o.layers, o.hidden, o.heads, o.ffn, s->m.cfg.vocab_size, o.batch, o.max_len, o.steps, o.warmup,
              (double)o.lr, o.threads, rep);
    if (!o.quiet && (o.groups || o.random_steps))
      fprintf(stderr, "pretrain: %d encoder steps over %d weight sets%s\n", s->m.steps, s->m.cfg.layers,
              o.random_steps ? "; every step runs S' ~ U{1..S} ODE steps (step size S/S')" : "");
  }
  if (!(s->logf = open_log(s))) {
    rc = pb_set_error(PB_ERR_IO, "pretrain: cannot write %s/log.tsv: %s", o.out_dir, strerror(errno));
    goto out;
  }
  /* ---- the loop: one-based schedule, clipping with eps 0 (bit-identical to the checkpoints
   * and the default backbone made before), the norm logged also without clipping; every call
   * (a resumed one too) makes at least one step before it looks at the stop flag ---- */
  const pb_trainer_opts to = {.ops = &PT_OPS, .ctx = s, .params = &s->m.params, .opt = &s->opt, .total = o.steps,
                              .clip = o.clip, .clip_eps = 0.0, .norm_always = 1, .first_step_always = 1,
                              .stop_after = o.stop_after, .time_limit_s = o.time_limit_min > 0 ? o.time_limit_min * 60.0 : 0,
                              .every = o.save_every, .label = "pretrain", .unit = "tokens",
                              .progress_style = PB_PROGRESS_TIMED, .quiet = o.quiet};
  pb_train_result tres;
  if ((rc = pb_train(&to, &s->ts, &tres))) goto out;
  const int interrupted = tres.stop == PB_TRAIN_INTERRUPTED;
  const char *stop = interrupted ? "interrupted" : tres.stop == PB_TRAIN_TIME_LIMIT ? "time-limit" : "completed";
  if (!interrupted && s->o.val_steps[0] && (rc = eval_val_steps(s))) goto out;
  if (!interrupted) {
    s->val_loss = eval_val(s);
    s->val_step = s->ts.step;
  }
  s->ts.seconds += pb_wall_seconds() - tres.t_start;
  if ((rc = save_checkpoint(s, stop, s->ts.seconds))) goto out;
  if (interrupted) {
    if (!o.quiet) fprintf(stderr, "pretrain: stopped after step %d; checkpoint saved in %s; continue with --resume --out %s\n",
                          s->ts.step, ckpath, o.out_dir);
    rc = PB_PRETRAIN_INTERRUPTED;
    goto out;
  }
  {
    pb_kv *meta = NULL;
    int n_meta = 0;
    if ((rc = run_meta(s, stop, s->ts.seconds, &meta, &n_meta))) goto out;
    rc = pb_pretrain_export(&s->m, o.out_dir, o.fp16, s->vocab_path, meta, n_meta);
    pb_kv_free(meta, n_meta);
    if (rc) goto out;
  }
  if (!o.quiet) {
    char nsp[64] = "";
    if (o.nsp) snprintf(nsp, sizeof nsp, ", val NSP loss %.4f acc %.3f", (double)s->val_nsp_loss, (double)s->val_nsp_acc);
    fprintf(stderr, "pretrain: %s at step %d/%d: final MLM loss %.4f (mean of last %d steps), val MLM loss %.4f%s; "
            "model in %s (%s)%s\n",
            stop, s->ts.step, o.steps, window_mean(s), s->ts.win_n < PB_TRAIN_WINDOW ? s->ts.win_n : PB_TRAIN_WINDOW,
            (double)s->val_loss, nsp, o.out_dir, o.fp16 ? "F16" : "F32", s->ts.step < o.steps ? "; continue with --resume" : "");
  }
out:
  run_free(s);
  free(s);
  return rc;
}

/* ---------------------------------------------------------------- CLI */

static void usage(FILE *f) {
  fprintf(f, "usage: peftbench pretrain --out DIR [options]\n"
             "Masked-language-model pretraining of a BERT backbone on the GLUE training sentences.\n"
             "Writes DIR/checkpoint.safetensors (resumable), DIR/log.tsv and, at the end, the HF-style\n"
             "folder DIR/{config.json, model.safetensors, vocab.txt, pretrain.json}.\n\noptions:\n");
  pb_opt_usage(f, OPTS, NOPTS);
  fprintf(f, "\nOn SIGINT/SIGTERM the current step finishes, a checkpoint is saved and the exit status is 3;\n"
             "continue with the same command plus --resume (options not given are taken from the checkpoint).\n");
}

int pb_cmd_pretrain(int argc, char **argv) {
  pb_pretrain_opts o;
  pb_pretrain_defaults(&o);
  struct option lopts[NOPTS + 2];
  pb_opt_longopts(OPTS, NOPTS, 1000, lopts);
  int given[NOPTS];
  memset(given, 0, sizeof given);
  size_t cl = 0;
  for (int i = 0; i < argc && cl < sizeof o.command; i++)
    cl += (size_t)snprintf(o.command + cl, sizeof o.command - cl, "%s%s", i ? " " : "", argv[i]);
  optind = 1;
  opterr = 0;
  int c;
  while ((c = getopt_long(argc, argv, ":h", lopts, NULL)) != -1) {
    if (c == 'h') {
      usage(stdout);
      return 0;
    }
    if (c == '?' || c == ':') return pb_cli_bad_option("pretrain", argc, argv, lopts);
    int i = c - 1000;
    if (i < 0 || i >= NOPTS) return pb_cli_bad_option("pretrain", argc, argv, lopts);
    given[i] = 1;
    if (OPTS[i].kind == PB_OPT_FLAG) {
      *(int *)((char *)&o + OPTS[i].off) = 1;
    } else if (pb_opt_parse(&o, &OPTS[i], optarg)) {
      fprintf(stderr, "peftbench pretrain: %s (see --help)\n", pb_last_error());
      return 2;
    }
  }
  if (optind < argc) {
    fprintf(stderr, "peftbench pretrain: unexpected argument '%s' (see --help)\n", argv[optind]);
    return 2;
  }
  if (!o.out_dir[0] && !o.eval_dev[0]) {
    fprintf(stderr, "peftbench pretrain: --out DIR is required (see --help)\n");
    return 2;
  }
  if (o.eval_dev[0] && (o.out_dir[0] || o.resume || o.export_dir[0])) {
    fprintf(stderr, "peftbench pretrain: --eval-dev trains nothing: it takes no --out, --resume or --export\n");
    return 2;
  }
  /* --resume: options not given take the checkpoint's values */
  if (o.resume && !o.export_dir[0]) {
    char ck[PB_PRETRAIN_PATH_MAX + 64];
    join(ck, sizeof ck, o.out_dir, "checkpoint.safetensors");
    pb_kv *kv = NULL;
    int n = 0;
    if (pb_st_read_meta(ck, &kv, &n) == PB_OK) {
      for (int i = 0; i < NOPTS; i++) {
        /* the corpus sources (the folder and vocab the checkpoint's run resolved) and the
         * checkpoint interval carry over too */
        int is_src = OPTS[i].off == OFF(data_dir) || OPTS[i].off == OFF(vocab) || OPTS[i].off == OFF(save_every);
        if ((!OPTS[i].defining && !is_src) || given[i]) continue;
        char key[64];
        snprintf(key, sizeof key, "%s%s", is_src ? "" : "opt.",
                 OPTS[i].off == OFF(data_dir)     ? "data_dir"
                 : OPTS[i].off == OFF(vocab)      ? "vocab"
                 : OPTS[i].off == OFF(save_every) ? "save_every"
                                                  : OPTS[i].name);
        const char *v = pb_kv_get(kv, n, key);
        if (v) pb_opt_parse(&o, &OPTS[i], v);
      }
      pb_kv_free(kv, n);
    }
  }
  /* --val-steps: step counts 1..layers (a usage error otherwise) */
  for (const char *q = o.val_steps; *q;) {
    char *end = NULL;
    const long v = strtol(q, &end, 10);
    if (end == q || (*end && *end != ',') || v < 1 || v > o.layers) {
      fprintf(stderr, "peftbench pretrain: --val-steps '%s': each entry must be a step count in 1..%d (comma list)\n",
              o.val_steps, o.layers);
      return 2;
    }
    q = *end ? end + 1 : end;
  }
  pb_precision prec;
  if (pb_precision_parse(o.precision, &prec)) {
    fprintf(stderr, "peftbench pretrain: --precision '%s': expected fp32 or bf16\n", o.precision);
    return 2;
  }
  /* sharing options are usage errors (exit 2) before any work */
  if ((o.groups < 0 || (o.groups > 0 && o.layers % o.groups)) ||
      (strcmp(o.share_init, "mean") != 0 && strcmp(o.share_init, "first") != 0)) {
    validate_opts(&o);
    fprintf(stderr, "peftbench %s (see --help)\n", pb_last_error());
    return 2;
  }
  pb_train_signals saved;
  pb_train_signals_install(&saved, 0); /* a second signal changes nothing: the checkpoint gets written */
  pb_train_stop_flag = 0;
  int rc = pb_pretrain(&o);
  pb_train_signals_restore(&saved);
  if (rc == PB_PRETRAIN_INTERRUPTED) return 3;
  if (rc) {
    fprintf(stderr, "peftbench %s\n", pb_last_error());
    return 1;
  }
  return 0;
}
