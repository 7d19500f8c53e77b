#include "harness/corpus.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "backbone/status.h"
#include "harness/glue.h"

void pb_corpus_free(pb_corpus *c) {
  free(c->ids);
  free(c->len);
  memset(c, 0, sizeof *c);
}

static int corpus_push(pb_corpus *c, int *cap, const int *cur, int cur_len, int pad) {
  if (cur_len <= 1) return PB_OK; /* nothing but [CLS] */
  if (c->n_seq == *cap) {
    int ncap = *cap ? 2 * *cap : 4096;
    int *ids = realloc(c->ids, (size_t)ncap * c->T * sizeof(int)), *len = NULL;
    if (ids) c->ids = ids;
    len = ids ? realloc(c->len, (size_t)ncap * sizeof(int)) : NULL;
    if (!ids || !len) return pb_set_error(PB_ERR_NOMEM, "pretrain: out of memory packing the corpus");
    c->len = len;
    *cap = ncap;
  }
  int *dst = c->ids + (size_t)c->n_seq * c->T;
  for (int t = 0; t < c->T; t++) dst[t] = t < cur_len ? cur[t] : pad;
  c->len[c->n_seq++] = cur_len;
  c->n_tokens += cur_len;
  return PB_OK;
}

/* Tokenises and packs the GLUE training sentences (see pretrain.h). */
int pb_corpus_build(pb_corpus *c, const pb_tokenizer *tk, const char *data_dir, int T, int quiet) {
  memset(c, 0, sizeof *c);
  c->T = T;
  const int cls = pb_tok_id(tk, "[CLS]"), sep = pb_tok_id(tk, "[SEP]"), pad = pb_tok_id(tk, "[PAD]");
  int cap = 0, cur_len = 0, rc = PB_OK;
  int *cur = malloc((size_t)T * sizeof(int));
  int tcap = 4096;
  int *tok = malloc((size_t)tcap * sizeof(int));
  if (!cur || !tok) {
    free(cur);
    free(tok);
    return pb_set_error(PB_ERR_NOMEM, "pretrain: out of memory");
  }
  size_t tl = 0;
  for (int ti = 0; ti < pb_task_count() && rc == PB_OK; ti++) {
    const pb_task *t = pb_task_at(ti);
    pb_dataset ds;
    memset(&ds, 0, sizeof ds);
    rc = pb_glue_load(t, data_dir, "train", 0, &ds);
    if (rc == PB_ERR_NOTFOUND) {
      if (!quiet) fprintf(stderr, "pretrain: %s: no train file in %s, skipped (%s)\n", t->name, data_dir, pb_last_error());
      rc = PB_OK;
      continue;
    }
    if (rc) break;
    for (int e = 0; e < ds.n && rc == PB_OK; e++) {
      const char *sent[2] = {ds.ex[e].a, ds.ex[e].b};
      for (int k = 0; k < 2 && rc == PB_OK; k++) {
        if (!sent[k]) continue;
        int n = 0;
        if ((rc = pb_tok_tokenize(tk, sent[k], tok, tcap, &n))) break;
        if (n > tcap) {
          int *nt = realloc(tok, (size_t)n * sizeof(int));
          if (!nt) {
            rc = pb_set_error(PB_ERR_NOMEM, "pretrain: out of memory");
            break;
          }
          tok = nt;
          tcap = n;
          if ((rc = pb_tok_tokenize(tk, sent[k], tok, tcap, &n))) break;
        }
        if (n == 0) continue;
        c->n_sent++;
        if (n > T - 2) {
          n = T - 2;
          c->n_trunc++;
        }
        if (cur_len > 0 && cur_len + n + 1 > T) {
          if ((rc = corpus_push(c, &cap, cur, cur_len, pad))) break;
          cur_len = 0;
        }
        if (cur_len == 0) cur[cur_len++] = cls;
        memcpy(cur + cur_len, tok, (size_t)n * sizeof(int));
        cur_len += n;
        cur[cur_len++] = sep;
      }
    }
    if (rc == PB_OK && tl < sizeof c->tasks)
      tl += (size_t)snprintf(c->tasks + tl, sizeof c->tasks - tl, "%s%s:%d", tl ? " " : "", t->name, ds.n);
    pb_dataset_free(&ds);
  }
  if (rc == PB_OK) rc = corpus_push(c, &cap, cur, cur_len, pad);
  free(cur);
  free(tok);
  if (rc == PB_OK && c->n_seq == 0)
    rc = pb_set_error(PB_ERR_NOTFOUND, "pretrain: no GLUE training text found in %s (need e.g. %s/SST-2/train.tsv)",
                      data_dir, data_dir);
  if (rc) {
    pb_corpus_free(c);
    return rc;
  }
  uint64_t h = 0xCBF29CE484222325ULL;
  for (size_t i = 0; i < (size_t)c->n_seq * T; i++) h = (h ^ (uint64_t)(uint32_t)c->ids[i]) * 0x100000001B3ULL;
  c->hash = h;
  return PB_OK;
}

