/* Masked-language-model pretraining: corpus, training loop, checkpoints, export (pretrain.h). */
#include "harness/pretrain.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <math.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "backbone/bert.h"
#include "backbone/checkpoint.h"
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
#include "harness/results.h"

volatile sig_atomic_t pb_pretrain_stop_flag = 0;

#define CKPT_FORMAT "peftbench-pretrain-checkpoint"
#define LOSS_WINDOW 100 /* "final MLM loss" = mean of the last (up to) 100 step losses */

/* ---------------------------------------------------------------- options table */

enum { O_STR, O_INT, O_FLOAT, O_DOUBLE, O_U64, O_FLAG };
typedef struct {
  const char *name;
  int kind;
  size_t off;
  int defining; /* part of the run's identity: stored in the checkpoint, must match on --resume */
  const char *arg, *help;
} optdef;

#define OFF(f) offsetof(pb_pretrain_opts, f)
static const optdef OPTS[] = {
    {"out", O_STR, OFF(out_dir), 0, "DIR", "output folder: checkpoint, log, final model (required)"},
    {"data-dir", O_STR, OFF(data_dir), 0, "DIR", "GLUE folder (default: $PEFTBENCH_DATA, ../shared/data/glue)"},
    {"vocab", O_STR, OFF(vocab), 0, "FILE", "WordPiece vocab (default ../shared/data/vocab/bert-base-uncased-vocab.txt)"},
    {"init-from", O_STR, OFF(init_from), 1, "DIR", "start from the weights of this HF BERT folder (same shape) instead of random"},
    {"layers", O_INT, OFF(layers), 1, "N", "encoder layers (4)"},
    {"hidden", O_INT, OFF(hidden), 1, "N", "hidden size (256)"},
    {"heads", O_INT, OFF(heads), 1, "N", "attention heads (4)"},
    {"ffn", O_INT, OFF(ffn), 1, "N", "intermediate size (1024)"},
    {"max-pos", O_INT, OFF(max_pos), 1, "N", "max_position_embeddings (512)"},
    {"max-len", O_INT, OFF(max_len), 1, "N", "packed sequence length (128)"},
    {"batch", O_INT, OFF(batch), 1, "N", "sequences per step (32)"},
    {"extra-text", O_STR, OFF(extra_text), 1, "LIST", "more text after GLUE train: comma list of wordnet, fortunes (none)"},
    {"nsp", O_FLAG, OFF(nsp), 1, NULL, "add next-sentence prediction on [CLS] (trains the pooler; cls.seq_relationship)"},
    {"wwm", O_FLAG, OFF(wwm), 1, NULL, "whole-word masking (all WordPiece pieces of a picked word)"},
    {"steps", O_INT, OFF(steps), 1, "N", "optimizer steps (1000)"},
    {"warmup", O_INT, OFF(warmup), 1, "N", "linear warmup steps (default 6% of --steps)"},
    {"lr", O_FLOAT, OFF(lr), 1, "X", "peak learning rate (5e-4)"},
    {"weight-decay", O_FLOAT, OFF(weight_decay), 1, "X", "AdamW weight decay (0.01)"},
    {"clip", O_FLOAT, OFF(clip), 1, "X", "gradient clipping global norm, 0 = off (1.0)"},
    {"mask-prob", O_FLOAT, OFF(mask_prob), 1, "X", "share of tokens predicted (0.15)"},
    {"dropout", O_FLOAT, OFF(dropout), 1, "X", "dropout while pretraining (0.1; the exported config says 0.1)"},
    {"seed", O_U64, OFF(seed), 1, "N", "seed of init, data order, masking, dropout (42)"},
    {"save-every", O_INT, OFF(save_every), 0, "N", "checkpoint every N steps (0: only at the end)"},
    {"time-limit", O_DOUBLE, OFF(time_limit_min), 0, "MIN", "stop cleanly after MIN minutes, saving everything"},
    {"threads", O_INT, OFF(threads), 0, "N", "kernel threads (1)"},
    {"resume", O_FLAG, OFF(resume), 0, NULL, "continue from DIR/checkpoint.safetensors"},
    {"fp16", O_FLAG, OFF(fp16), 0, NULL, "write the final model.safetensors in F16"},
    {"export", O_STR, OFF(export_dir), 0, "DIR", "no training: write the final folder to DIR from DIR(--out)/checkpoint"},
    {"quiet", O_FLAG, OFF(quiet), 0, NULL, "no progress output"},
    {"stop-after", O_INT, OFF(stop_after), 0, "N", "testing aid: act as if interrupted after N steps"},
};
#define NOPTS ((int)(sizeof OPTS / sizeof OPTS[0]))

static void opt_format(const pb_pretrain_opts *o, const optdef *d, char *buf, size_t n) {
  const char *p = (const char *)o + d->off;
  switch (d->kind) {
    case O_STR: snprintf(buf, n, "%s", p); break;
    case O_INT: case O_FLAG: snprintf(buf, n, "%d", *(const int *)p); break;
    case O_FLOAT: snprintf(buf, n, "%.9g", (double)*(const float *)p); break;
    case O_DOUBLE: snprintf(buf, n, "%.17g", *(const double *)p); break;
    case O_U64: snprintf(buf, n, "%llu", (unsigned long long)*(const uint64_t *)p); break;
  }
}

/* parses s into the option; PB_ERR_ARG naming it when malformed */
static int opt_parse(pb_pretrain_opts *o, const optdef *d, const char *s) {
  char *p = (char *)o + d->off, *end = NULL;
  errno = 0;
  switch (d->kind) {
    case O_STR:
      if (strlen(s) >= PB_PRETRAIN_PATH_MAX) return pb_set_error(PB_ERR_ARG, "--%s: path too long", d->name);
      snprintf(p, PB_PRETRAIN_PATH_MAX, "%s", s);
      return PB_OK;
    case O_INT: case O_FLAG: {
      long v = strtol(s, &end, 10);
      if (end == s || *end || errno || v < -1 || v > 1000000000L)
        return pb_set_error(PB_ERR_ARG, "--%s: '%s' is not a valid integer", d->name, s);
      *(int *)p = (int)v;
      return PB_OK;
    }
    case O_FLOAT: case O_DOUBLE: {
      double v = strtod(s, &end);
      if (end == s || *end || errno || !isfinite(v) || v < 0)
        return pb_set_error(PB_ERR_ARG, "--%s: '%s' is not a valid non-negative number", d->name, s);
      if (d->kind == O_FLOAT) *(float *)p = (float)v;
      else *(double *)p = v;
      return PB_OK;
    }
    case O_U64: {
      unsigned long long v = strtoull(s, &end, 10);
      if (end == s || *end || errno || s[0] == '-')
        return pb_set_error(PB_ERR_ARG, "--%s: '%s' is not a valid seed", d->name, s);
      *(uint64_t *)p = v;
      return PB_OK;
    }
  }
  return PB_OK;
}

void pb_pretrain_defaults(pb_pretrain_opts *o) {
  memset(o, 0, sizeof *o);
  o->layers = 4;
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
  if (!o->out_dir[0]) return pb_set_error(PB_ERR_ARG, "pretrain: --out DIR is required");
  if (o->layers < 1 || o->hidden < 1 || o->heads < 1 || o->ffn < 1 || o->hidden % o->heads)
    return pb_set_error(PB_ERR_ARG, "pretrain: bad model shape (layers %d, hidden %d, heads %d, ffn %d)", o->layers,
                        o->hidden, o->heads, o->ffn);
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
  int *train_idx, n_train;   /* [n_train] sequence indices of the training set */
  int *val_idx, n_val;       /* [n_val] held-out sequences */
  int *perm, perm_epoch;     /* [n_train] the current epoch's order, its epoch (-1: none) */
  pb_model m;
  pb_mlm h;
  pb_nsp nh;                 /* next-sentence head (o.nsp) */
  unsigned char *cont;       /* [V] 1 for "##" continuation pieces (o.wwm) */
  int *b_types, *b_nsp;      /* [B*T] token types, [B] next-sentence labels */
  pb_adamw opt;
  int special[3];
  int mask_id;
  /* batch buffers [B*T] */
  int *b_ids, *b_mask, *b_in, *b_lab;
  /* progress */
  int step;                  /* steps done */
  double elapsed_prev;       /* training seconds of earlier (resumed) runs */
  long tokens_seen;          /* real tokens of all steps done */
  float window[LOSS_WINDOW]; /* last losses, ring */
  float nwindow[LOSS_WINDOW];/* last next-sentence losses, ring (o.nsp) */
  float val_nsp_loss, val_nsp_acc;
  int win_n;                 /* losses in the ring (<= LOSS_WINDOW) */
  float val_loss;            /* last validation MLM loss (NAN: none) */
  int val_step;
  char first_command[4096];
  char started[32];
} run_state;

static double ring_mean(const run_state *s, const float *w) {
  if (s->win_n == 0) return NAN;
  double a = 0;
  int n = s->win_n < LOSS_WINDOW ? s->win_n : LOSS_WINDOW;
  for (int i = 0; i < n; i++) a += w[i];
  return a / n;
}
static double window_mean(const run_state *s) { return ring_mean(s, s->window); }

/* the sequence of the global stream position g (0-based) */
static int stream_seq(run_state *s, long g) {
  int epoch = (int)(g / s->n_train), i = (int)(g % s->n_train);
  if (epoch != s->perm_epoch) {
    for (int k = 0; k < s->n_train; k++) s->perm[k] = s->train_idx[k];
    pb_rng r;
    pb_rng_seed(&r, pb_hash64(s->o.seed ^ pb_hash64(0x65706F6368ULL + (uint64_t)epoch)));
    for (int k = s->n_train - 1; k > 0; k--) {
      int j = (int)pb_rng_below(&r, (uint64_t)k + 1), t = s->perm[k];
      s->perm[k] = s->perm[j];
      s->perm[j] = t;
    }
    s->perm_epoch = epoch;
  }
  return s->perm[i];
}

/* split of a packed row [CLS] s1 [SEP] s2 [SEP] ... [SEP] (len real tokens) for next-sentence
 * prediction: segment A = ids[1..a_end), segment B = ids[b_beg..len-1) (without the final [SEP]).
 * With >= 2 sentences the split is the inner [SEP] closest to the middle (A ends before it,
 * B starts after it); a single sentence is cut in the middle of its tokens. */
static void nsp_split(const int *row, int len, int sep, int *a_end, int *b_beg) {
  int best = -1;
  for (int t = 1; t < len - 1; t++)
    if (row[t] == sep && (best < 0 || abs(2 * t - len) < abs(2 * best - len))) best = t;
  if (best > 0) {
    *a_end = best;
    *b_beg = best + 1;
  } else {
    int n = len - 2 > 0 ? len - 2 : 0;
    *a_end = 1 + (n + 1) / 2;
    *b_beg = *a_end;
  }
}

/* fills b_ids/b_mask (and b_types, b_nsp with o.nsp) with sequences seq[0..B); returns T of
 * the batch (longest row). With nsp, row b is [CLS] A [SEP] B' [SEP] (types 0 up to the
 * first [SEP], 1 after): B' = its own segment B (label 0) or, with probability 1/2 drawn
 * from nseed, segment B of another training sequence (label 1); truncated to T from B's end. */
static int fill_batch(run_state *s, const int *seq, int B, int nsp, uint64_t nseed, long *tokens) {
  const int T = s->cp.T;
  int Tb = 2;
  long nt = 0;
  if (!nsp) {
    for (int b = 0; b < B; b++)
      if (s->cp.len[seq[b]] > Tb) Tb = s->cp.len[seq[b]];
    for (int b = 0; b < B; b++) {
      const int *src = s->cp.ids + (size_t)seq[b] * T;
      for (int t = 0; t < Tb; t++) {
        s->b_ids[b * Tb + t] = src[t];
        s->b_mask[b * Tb + t] = t < s->cp.len[seq[b]];
      }
      nt += s->cp.len[seq[b]];
    }
    if (tokens) *tokens = nt;
    return Tb;
  }
  const int sep = s->special[2], pad = s->special[0];
  pb_rng r;
  pb_rng_seed(&r, pb_hash64(nseed ^ 0x6E7370ULL));
  int *rows = s->b_in; /* scratch: [B*T] built rows at stride T, lengths in b_lab[0..B) */
  int *lens = s->b_lab;
  for (int b = 0; b < B; b++) {
    const int *src = s->cp.ids + (size_t)seq[b] * T;
    int len = s->cp.len[seq[b]], a_end, b_beg;
    nsp_split(src, len, sep, &a_end, &b_beg);
    const int *bsrc = src;
    int bb = b_beg, be = len - 1;
    int neg = pb_rng_uniform(&r) < 0.5f && s->n_train > 1;
    if (neg) {
      int j;
      do j = s->train_idx[pb_rng_below(&r, (uint64_t)s->n_train)];
      while (j == seq[b]);
      bsrc = s->cp.ids + (size_t)j * T;
      int ae2, bb2, l2 = s->cp.len[j];
      nsp_split(bsrc, l2, sep, &ae2, &bb2);
      bb = bb2;
      be = l2 - 1;
    }
    int *o = rows + (size_t)b * T, n = 0;
    for (int t = 0; t < a_end && n < T - 2; t++) o[n++] = src[t];
    o[n++] = sep;
    int first_b = n;
    for (int t = bb; t < be && n < T - 1; t++) o[n++] = bsrc[t];
    o[n++] = sep;
    lens[b] = n;
    s->b_nsp[b] = neg;
    /* types: a second buffer at the same stride, kept in b_mask for now */
    for (int t = 0; t < T; t++) s->b_mask[(size_t)b * T + t] = t >= first_b && t < n;
    if (n > Tb) Tb = n;
    nt += n;
  }
  /* compact to stride Tb (rows and types live at stride T in b_in / b_mask) */
  for (int b = 0; b < B; b++) {
    for (int t = 0; t < Tb; t++) {
      s->b_ids[b * Tb + t] = t < lens[b] ? rows[(size_t)b * T + t] : pad;
      s->b_types[b * Tb + t] = s->b_mask[(size_t)b * T + t];
    }
  }
  for (int b = 0; b < B; b++)
    for (int t = 0; t < Tb; t++) s->b_mask[b * Tb + t] = t < lens[b];
  if (tokens) *tokens = nt;
  return Tb;
}

/* nsp: build next-sentence rows and compute that loss too (else plain packed rows, types 0) */
static int mlm_batch_loss(run_state *s, const int *seq, int B, int nsp, uint64_t mseed, int training, uint64_t dseed,
                          float *loss, float *nsp_loss, long *tokens) {
  int Tb = fill_batch(s, seq, B, nsp, mseed, tokens);
  int np = s->o.wwm ? pb_mlm_mask_wwm(s->b_ids, s->b_mask, B, Tb, s->m.cfg.vocab_size, s->mask_id, s->special, 3,
                                      s->cont, s->o.mask_prob, mseed, s->b_in, s->b_lab)
                    : pb_mlm_mask(s->b_ids, s->b_mask, B, Tb, s->m.cfg.vocab_size, s->mask_id, s->special, 3,
                                  s->o.mask_prob, 0, mseed, s->b_in, s->b_lab);
  if (np < 0) return np;
  int rc = pb_forward(&s->m, s->b_in, nsp ? s->b_types : NULL, s->b_mask, B, Tb, NULL, NULL, training, dseed, NULL);
  if (!rc) rc = pb_mlm_forward(&s->h, &s->m, s->b_lab, loss);
  if (!rc && nsp) rc = pb_nsp_forward(&s->nh, &s->m, s->b_nsp, nsp_loss);
  return rc;
}

static float eval_val(run_state *s) {
  s->val_nsp_loss = s->val_nsp_acc = NAN;
  if (s->n_val == 0) return NAN;
  double sum = 0, cnt = 0, nsum = 0, ncor = 0, nrows = 0;
  for (int i = 0; i < s->n_val; i += s->o.batch) {
    int B = s->n_val - i < s->o.batch ? s->n_val - i : s->o.batch;
    float l, nl = NAN;
    /* the same masks (and next-sentence pairs) at every evaluation: a seed of its own per
     * batch. The MLM loss is over the plain packed rows (comparable with and without --nsp);
     * the next-sentence loss and accuracy over the pair rows, in a second pass. */
    uint64_t vs = pb_hash64(s->o.seed ^ 0x76616CULL) + (uint64_t)i;
    if (mlm_batch_loss(s, s->val_idx + i, B, 0, vs, 0, 0, &l, NULL, NULL)) return NAN;
    sum += (double)l * s->h.M;
    cnt += s->h.M;
    if (s->o.nsp) {
      float ml;
      if (mlm_batch_loss(s, s->val_idx + i, B, 1, vs, 0, 0, &ml, &nl, NULL)) return NAN;
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

/* ---------------------------------------------------------------- checkpoint */

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

/* metadata describing the run at its current step */
static int run_meta(const run_state *s, const char *stop_reason, pb_kv **out, int *n_out) {
  int cap = NOPTS + 40, n = 0;
  pb_kv *kv = calloc((size_t)cap, sizeof *kv);
  if (!kv) return pb_set_error(PB_ERR_NOMEM, "pretrain: out of memory");
  kv_set(kv, &n, "format", "%s", CKPT_FORMAT);
  kv_set(kv, &n, "step", "%d", s->step);
  kv_set(kv, &n, "stop_reason", "%s", stop_reason);
  kv_set(kv, &n, "tokens_seen", "%ld", s->tokens_seen);
  kv_set(kv, &n, "train_seconds", "%.3f", s->elapsed_prev);
  kv_set(kv, &n, "final_mlm_loss", "%.6f", window_mean(s));
  kv_set(kv, &n, "loss_window_n", "%d", s->win_n);
  kv_set(kv, &n, "val_mlm_loss", "%.6f", (double)s->val_loss);
  kv_set(kv, &n, "val_step", "%d", s->val_step);
  if (s->o.nsp) {
    kv_set(kv, &n, "final_nsp_loss", "%.6f", ring_mean(s, s->nwindow));
    kv_set(kv, &n, "val_nsp_loss", "%.6f", (double)s->val_nsp_loss);
    kv_set(kv, &n, "val_nsp_acc", "%.6f", (double)s->val_nsp_acc);
  }
  kv_set(kv, &n, "corpus_extra", "%s", s->cp.sources);
  kv_set(kv, &n, "corpus_glue_sequences", "%d", s->cp.n_glue_seq);
  kv_set(kv, &n, "corpus_glue_tokens", "%ld", s->cp.n_glue_tokens);
  kv_set(kv, &n, "corpus_tasks", "%s", s->cp.tasks);
  kv_set(kv, &n, "corpus_sentences", "%ld", s->cp.n_sent);
  kv_set(kv, &n, "corpus_sequences", "%d", s->cp.n_seq);
  kv_set(kv, &n, "corpus_train_sequences", "%d", s->n_train);
  kv_set(kv, &n, "corpus_val_sequences", "%d", s->n_val);
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
  kv_set(kv, &n, "save_every", "%d", s->o.save_every);
  for (int i = 0; i < NOPTS; i++) {
    if (!OPTS[i].defining) continue;
    char key[64], val[PB_PRETRAIN_PATH_MAX];
    snprintf(key, sizeof key, "opt.%s", OPTS[i].name);
    opt_format(&s->o, &OPTS[i], val, sizeof val);
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

static int save_checkpoint(const run_state *s, const char *stop_reason) {
  char path[PB_PRETRAIN_PATH_MAX + 64];
  join(path, sizeof path, s->o.out_dir, "checkpoint.safetensors");
  const pb_params *p = &s->m.params;
  pb_st_wtensor *w = calloc((size_t)p->n * 3 + 2, sizeof *w);
  char (*names)[PB_NAME_MAX + 16] = calloc((size_t)p->n * 2 + 1, sizeof *names);
  pb_kv *meta = NULL;
  int n_meta = 0, n = 0, rc;
  if (!w || !names) {
    rc = pb_set_error(PB_ERR_NOMEM, "pretrain: out of memory");
    goto out;
  }
  if ((rc = run_meta(s, stop_reason, &meta, &n_meta))) goto out;
  static const int win_shape[1] = {LOSS_WINDOW};
  for (int i = 0; i < p->n; i++) {
    const pb_tensor *t = &p->t[i];
    w[n++] = (pb_st_wtensor){t->name, t->ndim, t->shape, t->data};
    if (!t->trainable) continue;
    snprintf(names[2 * i], sizeof names[0], "optim.m/%s", t->name);
    snprintf(names[2 * i + 1], sizeof names[0], "optim.v/%s", t->name);
    w[n++] = (pb_st_wtensor){names[2 * i], t->ndim, t->shape, t->m};
    w[n++] = (pb_st_wtensor){names[2 * i + 1], t->ndim, t->shape, t->v};
  }
  w[n++] = (pb_st_wtensor){"pretrain.loss_window", 1, win_shape, s->window};
  if (s->o.nsp) w[n++] = (pb_st_wtensor){"pretrain.nsp_window", 1, win_shape, s->nwindow};
  rc = pb_st_write(path, meta, n_meta, w, n, PB_ST_F32);
out:
  pb_kv_free(meta, n_meta);
  free(w);
  free(names);
  return rc;
}

/* fills every tensor, AdamW state and the loss window from an open checkpoint */
static int load_checkpoint_tensors(run_state *s, const pb_st_file *f) {
  pb_params *p = &s->m.params;
  char name[PB_NAME_MAX + 16];
  int rc;
  for (int i = 0; i < p->n; i++) {
    pb_tensor *t = &p->t[i];
    if ((rc = pb_st_read_f32_name(f, t->name, t->data, t->numel))) return rc;
    if (!t->trainable) continue;
    snprintf(name, sizeof name, "optim.m/%s", t->name);
    if ((rc = pb_st_read_f32_name(f, name, t->m, t->numel))) return rc;
    snprintf(name, sizeof name, "optim.v/%s", t->name);
    if ((rc = pb_st_read_f32_name(f, name, t->v, t->numel))) return rc;
  }
  p->version++;
  if (s->o.nsp && (rc = pb_st_read_f32_name(f, "pretrain.nsp_window", s->nwindow, LOSS_WINDOW))) return rc;
  return pb_st_read_f32_name(f, "pretrain.loss_window", s->window, LOSS_WINDOW);
}

static const char *meta_get(const pb_kv *kv, int n, const char *key, const char *path) {
  const char *v = pb_kv_get(kv, n, key);
  if (!v) pb_set_error(PB_ERR_FORMAT, "%s: checkpoint metadata lacks \"%s\"", path, key);
  return v;
}

/* fills the defining options of o from checkpoint metadata (all of them when `all`, else
 * only those that differ from `given` are reported as a mismatch) */
static int opts_from_meta(pb_pretrain_opts *o, const pb_kv *kv, int n, const char *path, int check_only) {
  for (int i = 0; i < NOPTS; i++) {
    if (!OPTS[i].defining) continue;
    char key[64];
    snprintf(key, sizeof key, "opt.%s", OPTS[i].name);
    const char *v = pb_kv_get(kv, n, key);
    /* options added later: a checkpoint without them ran with their defaults */
    if (!v && (OPTS[i].off == OFF(extra_text) || OPTS[i].off == OFF(init_from))) v = "";
    if (!v && (OPTS[i].off == OFF(nsp) || OPTS[i].off == OFF(wwm))) v = "0";
    if (!v && OPTS[i].off == OFF(dropout)) v = "0.100000001";
    if (!v) v = meta_get(kv, n, key, path);
    if (!v) return PB_ERR_FORMAT;
    if (check_only) {
      char cur[PB_PRETRAIN_PATH_MAX];
      opt_format(o, &OPTS[i], cur, sizeof cur);
      if (strcmp(cur, v) != 0)
        return pb_set_error(PB_ERR_ARG, "pretrain: --%s %s differs from the checkpoint's %s (%s); a resumed run keeps its options",
                            OPTS[i].name, cur, v, path);
    } else {
      int rc = opt_parse(o, &OPTS[i], v);
      if (rc) return rc;
    }
  }
  return PB_OK;
}

/* ---------------------------------------------------------------- export */

static int patch_config(const char *dir, int nsp) {
  char path[PB_PRETRAIN_PATH_MAX + 64];
  join(path, sizeof path, dir, "config.json");
  char *txt = NULL;
  size_t len = 0;
  int rc = pb_read_file(path, &txt, &len);
  if (rc) return rc;
  cJSON *r = cJSON_Parse(txt);
  free(txt);
  if (!r) return pb_set_error(PB_ERR_FORMAT, "%s: cannot parse the config just written", path);
  cJSON_DeleteItemFromObject(r, "architectures");
  cJSON *arch = cJSON_AddArrayToObject(r, "architectures");
  if (arch) cJSON_AddItemToArray(arch, cJSON_CreateString(nsp ? "BertForPreTraining" : "BertForMaskedLM"));
  cJSON_DeleteItemFromObject(r, "num_labels");
  char *s = cJSON_Print(r);
  cJSON_Delete(r);
  if (!s) return pb_set_error(PB_ERR_NOMEM, "%s: out of memory", path);
  size_t sl = strlen(s);
  char *buf = malloc(sl + 2);
  if (!buf) {
    free(s);
    return pb_set_error(PB_ERR_NOMEM, "%s: out of memory", path);
  }
  memcpy(buf, s, sl);
  buf[sl] = '\n';
  free(s);
  rc = pb_write_file_atomic(path, buf, sl + 1);
  free(buf);
  return rc;
}

static void json_num_or_null(cJSON *o, const char *key, const char *v) {
  char *end = NULL;
  double d = v ? strtod(v, &end) : NAN;
  if (v && end != v && isfinite(d)) cJSON_AddNumberToObject(o, key, d);
  else cJSON_AddNullToObject(o, key);
}

/* the final HF-style folder: config.json, model.safetensors (bert.* + cls.predictions.*),
 * vocab.txt, pretrain.json (from the checkpoint-style metadata kv) */
static int export_folder(pb_model *m, const char *dir, int fp16, const char *vocab_path, const pb_kv *kv,
                         int n) {
  /* the exported config is for fine-tuning: standard dropout whatever pretraining used */
  const float hd = m->cfg.hidden_dropout, ad = m->cfg.attn_dropout;
  m->cfg.hidden_dropout = m->cfg.attn_dropout = 0.1f;
  int rc = pb_model_save_hf(m, dir); /* config.json (+ an F32 model we replace below) */
  m->cfg.hidden_dropout = hd, m->cfg.attn_dropout = ad;
  if (rc) return rc;
  const char *nspv = pb_kv_get(kv, n, "opt.nsp");
  const int nsp = nspv && atoi(nspv) != 0;
  if ((rc = patch_config(dir, nsp))) return rc;
  const pb_params *p = &m->params;
  pb_st_wtensor *w = calloc((size_t)p->n + 1, sizeof *w);
  if (!w) return pb_set_error(PB_ERR_NOMEM, "pretrain: out of memory");
  int nw = 0;
  size_t n_params = 0;
  for (int i = 0; i < p->n; i++) {
    const pb_tensor *t = &p->t[i];
    if (t->owner == PB_OWNER_METHOD || strncmp(t->name, "classifier.", 11) == 0) continue;
    w[nw++] = (pb_st_wtensor){t->name, t->ndim, t->shape, t->data};
    n_params += t->numel;
  }
  char path[PB_PRETRAIN_PATH_MAX + 64];
  join(path, sizeof path, dir, "model.safetensors");
  pb_kv st_meta[1] = {{"format", "pt"}};
  rc = pb_st_write(path, st_meta, 1, w, nw, fp16 ? PB_ST_F16 : PB_ST_F32);
  free(w);
  if (rc) return rc;
  /* vocab.txt */
  char *voc = NULL;
  size_t vl = 0;
  if ((rc = pb_read_file(vocab_path, &voc, &vl))) return rc;
  join(path, sizeof path, dir, "vocab.txt");
  rc = pb_write_file_atomic(path, voc, vl);
  free(voc);
  if (rc) return rc;
  /* pretrain.json */
  cJSON *r = cJSON_CreateObject();
  if (!r) return pb_set_error(PB_ERR_NOMEM, "pretrain: out of memory");
  cJSON_AddStringToObject(r, "what", nsp ? "peftbench pretraining: masked language model (tied decoder) + next-sentence "
                                           "prediction on the pooled [CLS] (BertForPreTraining heads)"
                                         : "peftbench masked-language-model pretraining (BertForMaskedLM head, tied decoder)");
  const char *str_keys[] = {"command", "last_command", "stop_reason", "started", "saved", "corpus_tasks", "corpus_extra",
                            "corpus_hash"};
  for (size_t i = 0; i < sizeof str_keys / sizeof *str_keys; i++) {
    const char *v = pb_kv_get(kv, n, str_keys[i]);
    cJSON_AddStringToObject(r, str_keys[i], v ? v : "");
  }
  const char *num_keys[] = {"step", "tokens_seen", "train_seconds", "final_mlm_loss", "loss_window_n",
                            "val_mlm_loss", "val_step", "corpus_sentences", "corpus_sequences",
                            "corpus_train_sequences", "corpus_val_sequences", "corpus_tokens",
                            "corpus_truncated_sentences", "corpus_glue_sequences", "corpus_glue_tokens",
                            "final_nsp_loss", "val_nsp_loss", "val_nsp_acc", "threads"};
  for (size_t i = 0; i < sizeof num_keys / sizeof *num_keys; i++)
    json_num_or_null(r, num_keys[i], pb_kv_get(kv, n, num_keys[i]));
  cJSON_AddStringToObject(r, "corpus", "GLUE training splits (sentence a and b of every row; never dev/test), then the "
                                       "corpus_extra texts (harness/corpus.h: installed Debian text packages), "
                                       "packed [CLS] s1 [SEP] s2 [SEP] ... up to max_len; 1% of the GLUE sequences "
                                       "(<= 512) held out for val_mlm_loss");
  if (nsp)
    cJSON_AddStringToObject(r, "nsp", "each training row split at its middle sentence boundary into [CLS] A [SEP] B [SEP] "
                                      "(token types 0/1); B replaced by another sequence's B with probability 1/2; "
                                      "label 0 = B follows A");
  const char *wv = pb_kv_get(kv, n, "opt.wwm");
  cJSON_AddStringToObject(r, "masking", wv && atoi(wv) ? "whole-word (all WordPiece pieces of a picked word), 80/10/10"
                                                      : "per token, 80/10/10");
  cJSON_AddStringToObject(r, "final_mlm_loss_is", "mean training MLM loss of the last (up to) 100 steps");
  cJSON *op = cJSON_AddObjectToObject(r, "options");
  for (int i = 0; i < n; i++)
    if (strncmp(kv[i].key, "opt.", 4) == 0) json_num_or_null(op, kv[i].key + 4, kv[i].value);
  cJSON_AddNumberToObject(r, "parameters", (double)n_params);
  cJSON_AddStringToObject(r, "dtype", fp16 ? "F16" : "F32");
  char *s = cJSON_Print(r);
  cJSON_Delete(r);
  if (!s) return pb_set_error(PB_ERR_NOMEM, "pretrain: out of memory");
  join(path, sizeof path, dir, "pretrain.json");
  size_t sl = strlen(s);
  s[sl] = '\n'; /* overwrite the NUL; the length is passed explicitly */
  rc = pb_write_file_atomic(path, s, sl + 1);
  free(s);
  return rc;
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
  int rc = pb_model_declare(&s->m, &c);
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
  if (!rc) p->version++;
  *n_loaded = n;
  return rc;
}

static void run_free(run_state *s) {
  pb_mlm_free(&s->h);
  pb_nsp_free(&s->nh);
  free(s->cont);
  free(s->b_types);
  free(s->b_nsp);
  pb_model_free(&s->m);
  pb_corpus_free(&s->cp);
  pb_tok_free(s->tk);
  free(s->train_idx);
  free(s->val_idx);
  free(s->perm);
  free(s->b_ids);
  free(s->b_mask);
  free(s->b_in);
  free(s->b_lab);
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
  if (!fmt || strcmp(fmt, CKPT_FORMAT) != 0 || !voc || wi < 0 || f.t[wi].ndim != 2) {
    rc = pb_set_error(PB_ERR_FORMAT, "%s: not a peftbench pretraining checkpoint", ck);
    goto out;
  }
  if ((rc = opts_from_meta(&s->o, f.meta, f.n_meta, ck, 0))) goto out;
  if (o->vocab[0]) voc = o->vocab;
  if ((rc = build_model(s, (int)f.t[wi].shape[0]))) goto out;
  if ((rc = load_checkpoint_tensors(s, &f))) goto out;
  rc = export_folder(&s->m, o->export_dir, o->fp16, voc, f.meta, f.n_meta);
  if (!rc && !o->quiet) fprintf(stderr, "pretrain: wrote %s (step %s, %s)\n", o->export_dir,
                                pb_kv_get(f.meta, f.n_meta, "step"), o->fp16 ? "F16" : "F32");
out:
  pb_st_close(&f);
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
  if (s->step > 0) {
    char *txt = NULL;
    size_t len = 0;
    if (pb_read_file(path, &txt, &len) == PB_OK) {
      keep = malloc(len + 1);
      if (keep) {
        char *line = txt, *nl;
        while (*line && (nl = strchr(line, '\n'))) {
          int st = atoi(line);
          if (line == txt || (st >= 1 && st <= s->step)) {
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

static void progress(const run_state *s, int start_step, double t_run, long tok_run, double loss, int force) {
  static double last = -1e9;
  if (s->o.quiet) return;
  int tty = isatty(STDERR_FILENO);
  if (!force && !tty && t_run - last < 30 && s->step != start_step + 1) return;
  last = t_run;
  double rate = t_run > 0 ? (double)tok_run / t_run : 0;
  double eta = s->step > start_step ? t_run / (s->step - start_step) * (s->o.steps - s->step) : -1;
  int eh = (int)(eta / 3600), em = (int)fmod(eta / 60, 60), es = (int)fmod(eta, 60);
  fprintf(stderr, "%spretrain step %d/%d | loss %.4f (avg %.4f) | %.0f tokens/s | ETA %dh%02dm%02ds%s",
          tty ? "\r" : "", s->step, s->o.steps, loss, window_mean(s), rate, eh, em, es, tty ? "   " : "\n");
  fflush(stderr);
}

int pb_pretrain(const pb_pretrain_opts *opts) {
  pb_pretrain_opts o = *opts;
  if (o.warmup < 0) o.warmup = o.steps * 6 / 100;
  int rc = validate_opts(&o);
  if (rc) return rc;
  if (o.export_dir[0]) return do_export(&o);
  pb_set_threads(o.threads);
  if (mkdir(o.out_dir, 0755) != 0 && errno != EEXIST)
    return pb_set_error(PB_ERR_IO, "pretrain: cannot create %s: %s", o.out_dir, strerror(errno));
  run_state *s = calloc(1, sizeof *s);
  if (!s) return pb_set_error(PB_ERR_NOMEM, "pretrain: out of memory");
  s->o = o;
  s->perm_epoch = -1;
  s->val_loss = NAN;
  s->val_nsp_loss = s->val_nsp_acc = NAN;
  snprintf(s->first_command, sizeof s->first_command, "%s", o.command);
  pb_utc_now(s->started, (int)sizeof s->started);
  FILE *logf = NULL;
  pb_st_file ckf;
  int ck_open = 0;
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
  s->mask_id = pb_tok_id(s->tk, "[MASK]");
  s->special[0] = pb_tok_id(s->tk, "[PAD]");
  s->special[1] = pb_tok_id(s->tk, "[CLS]");
  s->special[2] = pb_tok_id(s->tk, "[SEP]");
  /* whole-word masking: which ids are "##" continuation pieces */
  if (o.wwm) {
    int V = pb_tok_vocab_size(s->tk);
    if (!(s->cont = calloc((size_t)V, 1))) {
      rc = pb_set_error(PB_ERR_NOMEM, "pretrain: out of memory");
      goto out;
    }
    for (int i = 0; i < V; i++) {
      const char *tkn = pb_tok_token(s->tk, i);
      s->cont[i] = tkn && tkn[0] == '#' && tkn[1] == '#' && tkn[2];
    }
  }
  /* train / validation split: a seeded shuffle of the GLUE sequences, the first n_val are
   * held out (the same set as without extra text); every extra-text sequence trains */
  {
    int n = s->cp.n_glue_seq, n_extra = s->cp.n_seq - s->cp.n_glue_seq;
    s->n_val = n >= 20 ? (n / 100 > 512 ? 512 : (n / 100 > 0 ? n / 100 : 1)) : 0;
    s->n_train = n - s->n_val + n_extra;
    int *all = malloc((size_t)n * sizeof(int));
    s->train_idx = malloc((size_t)s->n_train * sizeof(int));
    s->val_idx = malloc(((size_t)s->n_val + 1) * sizeof(int));
    s->perm = malloc((size_t)s->n_train * sizeof(int));
    size_t bt = (size_t)o.batch * o.max_len;
    s->b_ids = malloc(bt * sizeof(int));
    s->b_mask = malloc(bt * sizeof(int));
    s->b_in = malloc(bt * sizeof(int));
    s->b_lab = malloc(bt * sizeof(int));
    s->b_types = calloc(bt, sizeof(int));
    s->b_nsp = calloc((size_t)o.batch, sizeof(int));
    if (!all || !s->train_idx || !s->val_idx || !s->perm || !s->b_ids || !s->b_mask || !s->b_in || !s->b_lab ||
        !s->b_types || !s->b_nsp) {
      free(all);
      rc = pb_set_error(PB_ERR_NOMEM, "pretrain: out of memory");
      goto out;
    }
    for (int i = 0; i < n; i++) all[i] = i;
    pb_rng r;
    pb_rng_seed(&r, pb_hash64(o.seed ^ 0x73706C6974ULL));
    for (int i = n - 1; i > 0; i--) {
      int j = (int)pb_rng_below(&r, (uint64_t)i + 1), t = all[i];
      all[i] = all[j];
      all[j] = t;
    }
    memcpy(s->val_idx, all, (size_t)s->n_val * sizeof(int));
    memcpy(s->train_idx, all + s->n_val, (size_t)(n - s->n_val) * sizeof(int));
    for (int i = 0; i < n_extra; i++) s->train_idx[n - s->n_val + i] = n + i;
    free(all);
  }
  if (!o.quiet)
    fprintf(stderr,
            "pretrain: corpus %s%s%s | %ld sentences (%ld truncated to %d) -> %d sequences of <= %d tokens "
            "(%ld tokens; %d train, %d held out) in %.1f s\n",
            s->cp.tasks, s->cp.sources[0] ? " + " : "", s->cp.sources, s->cp.n_sent, s->cp.n_trunc, o.max_len - 2,
            s->cp.n_seq, o.max_len, s->cp.n_tokens,
            s->n_train, s->n_val, pb_wall_seconds() - t0);
  if (s->n_train < 1) {
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
    if (!file_exists(ckpath)) {
      rc = pb_set_error(PB_ERR_NOTFOUND, "pretrain: --resume but %s does not exist", ckpath);
      goto out;
    }
    if ((rc = pb_st_open(&ckf, ckpath))) goto out;
    ck_open = 1;
    const pb_kv *kv = ckf.meta;
    int n = ckf.n_meta;
    const char *fmt = pb_kv_get(kv, n, "format");
    if (!fmt || strcmp(fmt, CKPT_FORMAT) != 0) {
      rc = pb_set_error(PB_ERR_FORMAT, "%s: not a peftbench pretraining checkpoint", ckpath);
      goto out;
    }
    if ((rc = opts_from_meta(&s->o, kv, n, ckpath, 1))) goto out;
    char hash[32];
    snprintf(hash, sizeof hash, "%016llx", (unsigned long long)s->cp.hash);
    const char *ch = meta_get(kv, n, "corpus_hash", ckpath);
    if (!ch || strcmp(ch, hash) != 0) {
      rc = ch ? pb_set_error(PB_ERR_ARG, "pretrain: the corpus (hash %s) differs from the checkpoint's (%s): other data or vocab",
                             hash, ch)
              : PB_ERR_FORMAT;
      goto out;
    }
    const char *v;
    if (!(v = meta_get(kv, n, "step", ckpath))) { rc = PB_ERR_FORMAT; goto out; }
    s->step = atoi(v);
    if ((v = pb_kv_get(kv, n, "tokens_seen"))) s->tokens_seen = atol(v);
    if ((v = pb_kv_get(kv, n, "train_seconds"))) s->elapsed_prev = atof(v);
    if ((v = pb_kv_get(kv, n, "loss_window_n"))) s->win_n = atoi(v);
    if ((v = pb_kv_get(kv, n, "val_mlm_loss"))) s->val_loss = (float)atof(v);
    if ((v = pb_kv_get(kv, n, "val_step"))) s->val_step = atoi(v);
    if ((v = pb_kv_get(kv, n, "command"))) snprintf(s->first_command, sizeof s->first_command, "%s", v);
    if ((v = pb_kv_get(kv, n, "started"))) snprintf(s->started, sizeof s->started, "%s", v);
    if ((rc = load_checkpoint_tensors(s, &ckf))) goto out;
    pb_st_close(&ckf);
    ck_open = 0;
    if (!o.quiet) fprintf(stderr, "pretrain: resumed from %s at step %d of %d\n", ckpath, s->step, o.steps);
  }
  {
    char rep[256];
    pb_params_report(&s->m.params, rep, sizeof rep);
    if (!o.quiet)
      fprintf(stderr, "pretrain: L=%d d=%d A=%d F=%d V=%d, batch %d x %d, %d steps (warmup %d), lr %g, threads %d | %s\n",
              o.layers, o.hidden, o.heads, o.ffn, s->m.cfg.vocab_size, o.batch, o.max_len, o.steps, o.warmup,
              (double)o.lr, o.threads, rep);
  }
  if (!(logf = open_log(s))) {
    rc = pb_set_error(PB_ERR_IO, "pretrain: cannot write %s/log.tsv: %s", o.out_dir, strerror(errno));
    goto out;
  }
  /* ---- the loop ---- */
  const int start_step = s->step;
  const double t_start = pb_wall_seconds();
  long tok_run = 0;
  const char *stop = "completed";
  int interrupted = 0;
  int *seq = malloc((size_t)o.batch * sizeof(int));
  if (!seq) {
    rc = pb_set_error(PB_ERR_NOMEM, "pretrain: out of memory");
    goto out;
  }
  while (s->step < o.steps) {
    const int t = s->step + 1;
    for (int b = 0; b < o.batch; b++) seq[b] = stream_seq(s, (long)(t - 1) * o.batch + b);
    float loss = NAN, nloss = NAN;
    long ntok = 0;
    pb_params_zero_grad(&s->m.params);
    rc = mlm_batch_loss(s, seq, o.batch, o.nsp, pb_hash64(o.seed ^ pb_hash64(0x6D61736BULL + (uint64_t)t)), 1,
                        pb_hash64(o.seed ^ pb_hash64(0x64726F70ULL + (uint64_t)t)), &loss, &nloss, &ntok);
    if (!rc) rc = pb_mlm_backward_head(&s->h, &s->m);
    if (!rc && o.nsp) rc = pb_nsp_backward(&s->nh, &s->m, s->h.dout);
    if (!rc) rc = pb_backward_hidden(&s->m, s->h.dout);
    if (rc) break;
    /* global gradient norm clipping (backbone/params.c), eps 0: scaled by clip/norm when the
     * norm exceeds clip, bit-identical to the checkpoints and the default made before it moved */
    const double gn = pb_params_clip_grad_norm(&s->m.params, o.clip, 0.0, NULL);
    if (!isfinite(gn)) {
      rc = pb_set_error(PB_ERR_NUMERIC, "pretrain: gradient norm is %g at step %d (diverged; lower --lr)", gn, t);
      break;
    }
    if ((rc = pb_adamw_step(&s->m.params, &s->opt, t))) break;
    s->step = t;
    s->tokens_seen += ntok;
    tok_run += ntok;
    s->window[(t - 1) % LOSS_WINDOW] = loss;
    s->nwindow[(t - 1) % LOSS_WINDOW] = o.nsp ? nloss : 0.0f;
    if (s->win_n < LOSS_WINDOW) s->win_n++;
    double t_run = pb_wall_seconds() - t_start;
    fprintf(logf, "%d\t%.7g\t%.6g\t%.5g\t", t, (double)loss, (double)pb_adamw_lr(&s->opt, t), gn);
    if (o.nsp) fprintf(logf, "%.7g\t", (double)nloss);
    fprintf(logf, "%.1f\n", t_run > 0 ? tok_run / t_run : 0.0);
    fflush(logf);
    progress(s, start_step, t_run, tok_run, loss, 0);
    if (s->step >= o.steps) break;
    if (pb_pretrain_stop_flag || (o.stop_after > 0 && s->step - start_step >= o.stop_after)) {
      stop = "interrupted";
      interrupted = 1;
      break;
    }
    if (o.time_limit_min > 0 && t_run >= o.time_limit_min * 60.0) {
      stop = "time-limit";
      break;
    }
    if (o.save_every > 0 && s->step % o.save_every == 0) {
      s->val_loss = eval_val(s);
      s->val_step = s->step;
      /* train_seconds in the checkpoint = earlier runs + this run so far */
      double keep = s->elapsed_prev;
      s->elapsed_prev = keep + (pb_wall_seconds() - t_start);
      rc = save_checkpoint(s, "checkpoint");
      s->elapsed_prev = keep;
      if (rc) break;
      if (!o.quiet && !isatty(STDERR_FILENO))
        fprintf(stderr, "pretrain: checkpoint at step %d (val MLM loss %.4f, NSP loss %.4f acc %.3f)\n", s->step,
                (double)s->val_loss, (double)s->val_nsp_loss, (double)s->val_nsp_acc);
    }
  }
  free(seq);
  if (rc) goto out;
  progress(s, start_step, pb_wall_seconds() - t_start, tok_run, s->win_n ? s->window[(s->step - 1) % LOSS_WINDOW] : NAN, 1);
  if (!o.quiet && isatty(STDERR_FILENO)) fprintf(stderr, "\n");
  if (!interrupted) {
    s->val_loss = eval_val(s);
    s->val_step = s->step;
  }
  s->elapsed_prev += pb_wall_seconds() - t_start;
  if ((rc = save_checkpoint(s, stop))) goto out;
  if (interrupted) {
    if (!o.quiet) fprintf(stderr, "pretrain: stopped after step %d; checkpoint saved in %s; continue with --resume --out %s\n",
                          s->step, ckpath, o.out_dir);
    rc = PB_PRETRAIN_INTERRUPTED;
    goto out;
  }
  {
    pb_kv *meta = NULL;
    int n_meta = 0;
    if ((rc = run_meta(s, stop, &meta, &n_meta))) goto out;
    rc = export_folder(&s->m, o.out_dir, o.fp16, s->vocab_path, meta, n_meta);
    pb_kv_free(meta, n_meta);
    if (rc) goto out;
  }
  if (!o.quiet)
    fprintf(stderr, "pretrain: %s at step %d/%d: final MLM loss %.4f (mean of last %d steps), val MLM loss %.4f, "
            "val NSP loss %.4f acc %.3f; model in %s (%s)%s\n",
            stop, s->step, o.steps, window_mean(s), s->win_n < LOSS_WINDOW ? s->win_n : LOSS_WINDOW,
            (double)s->val_loss, (double)s->val_nsp_loss, (double)s->val_nsp_acc, o.out_dir, o.fp16 ? "F16" : "F32",
            s->step < o.steps ? "; continue with --resume" : "");
out:
  if (ck_open) pb_st_close(&ckf);
  if (logf) fclose(logf);
  run_free(s);
  free(s);
  return rc;
}

/* ---------------------------------------------------------------- CLI */

static void on_signal(int sig) {
  (void)sig;
  pb_pretrain_stop_flag = 1;
}

static void usage(FILE *f) {
  fprintf(f, "usage: peftbench pretrain --out DIR [options]\n"
             "Masked-language-model pretraining of a BERT backbone on the GLUE training sentences.\n"
             "Writes DIR/checkpoint.safetensors (resumable), DIR/log.tsv and, at the end, the HF-style\n"
             "folder DIR/{config.json, model.safetensors, vocab.txt, pretrain.json}.\n\noptions:\n");
  for (int i = 0; i < NOPTS; i++) {
    char left[64];
    snprintf(left, sizeof left, "--%s%s%s", OPTS[i].name, OPTS[i].arg ? " " : "", OPTS[i].arg ? OPTS[i].arg : "");
    fprintf(f, "  %-22s %s\n", left, OPTS[i].help);
  }
  fprintf(f, "  %-22s %s\n", "--help", "this text");
  fprintf(f, "\nOn SIGINT/SIGTERM the current step finishes, a checkpoint is saved and the exit status is 3;\n"
             "continue with the same command plus --resume (options not given are taken from the checkpoint).\n");
}

int pb_cmd_pretrain(int argc, char **argv) {
  pb_pretrain_opts o;
  pb_pretrain_defaults(&o);
  struct option lopts[NOPTS + 2];
  for (int i = 0; i < NOPTS; i++)
    lopts[i] = (struct option){OPTS[i].name, OPTS[i].kind == O_FLAG ? no_argument : required_argument, NULL, 1000 + i};
  lopts[NOPTS] = (struct option){"help", no_argument, NULL, 'h'};
  lopts[NOPTS + 1] = (struct option){0, 0, 0, 0};
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
    if (OPTS[i].kind == O_FLAG) {
      *(int *)((char *)&o + OPTS[i].off) = 1;
    } else if (opt_parse(&o, &OPTS[i], optarg)) {
      fprintf(stderr, "peftbench pretrain: %s (see --help)\n", pb_last_error());
      return 2;
    }
  }
  if (optind < argc) {
    fprintf(stderr, "peftbench pretrain: unexpected argument '%s' (see --help)\n", argv[optind]);
    return 2;
  }
  if (!o.out_dir[0]) {
    fprintf(stderr, "peftbench pretrain: --out DIR is required (see --help)\n");
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
        if (v) opt_parse(&o, &OPTS[i], v);
      }
      pb_kv_free(kv, n);
    }
  }
  struct sigaction sa;
  memset(&sa, 0, sizeof sa);
  sa.sa_handler = on_signal;
  sigemptyset(&sa.sa_mask);
  struct sigaction old_int, old_term;
  sigaction(SIGINT, &sa, &old_int);
  sigaction(SIGTERM, &sa, &old_term);
  pb_pretrain_stop_flag = 0;
  int rc = pb_pretrain(&o);
  sigaction(SIGINT, &old_int, NULL);
  sigaction(SIGTERM, &old_term, NULL);
  if (rc == PB_PRETRAIN_INTERRUPTED) return 3;
  if (rc) {
    fprintf(stderr, "peftbench %s\n", pb_last_error());
    return 1;
  }
  return 0;
}
