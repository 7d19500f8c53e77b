/* BM25 (bm25.h). */
#include "harness/bm25.h"

#include <ctype.h>
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "util/status.h"

int pb_bm25_terms(const char *text, int (*fn)(const char *term, int len, void *ctx), void *ctx) {
  char buf[256];
  const unsigned char *p = (const unsigned char *)(text ? text : "");
  while (*p) {
    while (*p && !(isascii(*p) && isalnum(*p))) p++;
    int n = 0;
    while (*p && isascii(*p) && isalnum(*p)) {
      if (n < (int)sizeof buf - 1) buf[n++] = (char)tolower(*p);
      p++;
    }
    if (n) {
      buf[n] = 0;
      int rc = fn(buf, n, ctx);
      if (rc) return rc;
    }
  }
  return PB_OK;
}

static uint64_t hash_str(const char *s) {
  uint64_t h = 0xCBF29CE484222325ULL;
  for (; *s; s++) h = (h ^ (unsigned char)*s) * 0x100000001B3ULL;
  return h;
}

int pb_bm25_term(const pb_bm25 *x, const char *t) {
  if (!x->cap) return -1;
  for (uint64_t i = hash_str(t) & (uint64_t)(x->cap - 1);; i = (i + 1) & (uint64_t)(x->cap - 1)) {
    int id = x->slot[i];
    if (id < 0) return -1;
    if (strcmp(x->term[id], t) == 0) return id;
  }
}

/* ---------------------------------------------------------------- building */

typedef struct {
  pb_bm25 *x;
  int doc;
  int term_cap;
  /* (term, doc) occurrences, appended */
  int *occ_t, *occ_d;
  size_t n_occ, cap_occ;
} build_ctx;

static int grow_dict(pb_bm25 *x) {
  int ncap = x->cap ? 2 * x->cap : 4096;
  int *ns = malloc(sizeof(int) * (size_t)ncap);
  if (!ns) return PB_ERR_NOMEM;
  for (int i = 0; i < ncap; i++) ns[i] = -1;
  for (int id = 0; id < x->n_terms; id++) {
    uint64_t i = hash_str(x->term[id]) & (uint64_t)(ncap - 1);
    while (ns[i] >= 0) i = (i + 1) & (uint64_t)(ncap - 1);
    ns[i] = id;
  }
  free(x->slot);
  x->slot = ns;
  x->cap = ncap;
  return PB_OK;
}

static int add_term(const char *t, int len, void *vctx) {
  build_ctx *b = vctx;
  pb_bm25 *x = b->x;
  int id = pb_bm25_term(x, t);
  if (id < 0) {
    if ((x->n_terms + 1) * 2 > x->cap && grow_dict(x)) return pb_set_error(PB_ERR_NOMEM, "bm25: out of memory");
    if (x->n_terms == b->term_cap) {
      b->term_cap = b->term_cap ? 2 * b->term_cap : 4096;
      char **nt = realloc(x->term, sizeof(char *) * (size_t)b->term_cap);
      if (!nt) return pb_set_error(PB_ERR_NOMEM, "bm25: out of memory");
      x->term = nt;
    }
    id = x->n_terms;
    if (!(x->term[id] = strdup(t))) return pb_set_error(PB_ERR_NOMEM, "bm25: out of memory");
    x->n_terms++;
    uint64_t i = hash_str(t) & (uint64_t)(x->cap - 1);
    while (x->slot[i] >= 0) i = (i + 1) & (uint64_t)(x->cap - 1);
    x->slot[i] = id;
  }
  if (b->n_occ == b->cap_occ) {
    b->cap_occ = b->cap_occ ? 2 * b->cap_occ : 65536;
    int *a = realloc(b->occ_t, sizeof(int) * b->cap_occ);
    if (a) b->occ_t = a;
    int *c = realloc(b->occ_d, sizeof(int) * b->cap_occ);
    if (c) b->occ_d = c;
    if (!a || !c) return pb_set_error(PB_ERR_NOMEM, "bm25: out of memory");
  }
  b->occ_t[b->n_occ] = id;
  b->occ_d[b->n_occ] = b->doc;
  b->n_occ++;
  x->dl[b->doc]++;
  return PB_OK;
}

int pb_bm25_build(pb_bm25 *x, const char *const *texts, int n, float k1, float b) {
  memset(x, 0, sizeof *x);
  if (!(k1 >= 0) || !(b >= 0 && b <= 1) || n < 1)
    return pb_set_error(PB_ERR_ARG, "bm25: need k1 >= 0, 0 <= b <= 1 and documents (k1 %g, b %g, %d documents)",
                        (double)k1, (double)b, n);
  x->n_docs = n;
  x->k1 = k1;
  x->b = b;
  build_ctx bc = {.x = x};
  int rc = (x->dl = calloc((size_t)n, sizeof(int))) ? PB_OK : pb_set_error(PB_ERR_NOMEM, "bm25: out of memory");
  for (int d = 0; !rc && d < n; d++) {
    bc.doc = d;
    rc = pb_bm25_terms(texts[d], add_term, &bc);
  }
  /* postings: count (term, doc) pairs; occurrences are in document order already */
  if (!rc) {
    x->post_off = calloc((size_t)x->n_terms + 1, sizeof(int));
    x->df = calloc((size_t)x->n_terms + 1, sizeof(int));
    int *last = malloc(sizeof(int) * ((size_t)x->n_terms + 1));
    if (!x->post_off || !x->df || !last) rc = pb_set_error(PB_ERR_NOMEM, "bm25: out of memory");
    if (!rc) {
      for (int t = 0; t < x->n_terms; t++) last[t] = -1;
      for (size_t i = 0; i < bc.n_occ; i++)
        if (last[bc.occ_t[i]] != bc.occ_d[i]) {
          last[bc.occ_t[i]] = bc.occ_d[i];
          x->df[bc.occ_t[i]]++;
        }
      for (int t = 0; t < x->n_terms; t++) x->post_off[t + 1] = x->post_off[t] + x->df[t];
      size_t np = (size_t)x->post_off[x->n_terms];
      x->post_doc = malloc(sizeof(int) * (np + 1));
      x->post_tf = calloc(np + 1, sizeof(int));
      int *fill = calloc((size_t)x->n_terms + 1, sizeof(int));
      if (!x->post_doc || !x->post_tf || !fill) rc = pb_set_error(PB_ERR_NOMEM, "bm25: out of memory");
      for (int t = 0; !rc && t < x->n_terms; t++) last[t] = -1;
      for (size_t i = 0; !rc && i < bc.n_occ; i++) {
        const int t = bc.occ_t[i], d = bc.occ_d[i];
        if (last[t] != d) {
          last[t] = d;
          x->post_doc[x->post_off[t] + fill[t]] = d;
          fill[t]++;
        }
        x->post_tf[x->post_off[t] + fill[t] - 1]++;
      }
      free(fill);
    }
    free(last);
  }
  free(bc.occ_t);
  free(bc.occ_d);
  if (!rc) {
    double tot = 0;
    for (int d = 0; d < n; d++) tot += x->dl[d];
    x->avgdl = tot / n;
  }
  if (rc) pb_bm25_free(x);
  return rc;
}

typedef struct {
  const pb_bm25 *x;
  float *scores;
} score_ctx;

static int score_term(const char *t, int len, void *vctx) {
  score_ctx *s = vctx;
  const pb_bm25 *x = s->x;
  const int id = pb_bm25_term(x, t);
  if (id < 0) return PB_OK;
  const double N = x->n_docs, df = x->df[id];
  const double idf = log(1.0 + (N - df + 0.5) / (df + 0.5));
  for (int p = x->post_off[id]; p < x->post_off[id + 1]; p++) {
    const int d = x->post_doc[p];
    const double tf = x->post_tf[p];
    const double norm = x->k1 * (1.0 - x->b + x->b * x->dl[d] / (x->avgdl > 0 ? x->avgdl : 1.0));
    s->scores[d] += (float)(idf * tf * (x->k1 + 1.0) / (tf + norm));
  }
  return PB_OK;
}

int pb_bm25_score(const pb_bm25 *x, const char *query, float *scores) {
  for (int d = 0; d < x->n_docs; d++) scores[d] = 0.0f;
  score_ctx s = {x, scores};
  return pb_bm25_terms(query, score_term, &s);
}

void pb_bm25_free(pb_bm25 *x) {
  for (int t = 0; t < x->n_terms; t++) free(x->term[t]);
  free(x->term);
  free(x->slot);
  free(x->dl);
  free(x->df);
  free(x->post_off);
  free(x->post_doc);
  free(x->post_tf);
  memset(x, 0, sizeof *x);
}
