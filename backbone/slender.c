/* COST-EFF slenderization: Taylor importance hook, pruning copy, SVD of the word embeddings
 * (backbone/slender.h). */
#include "backbone/slender.h"

#include <lapacke.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "counters/opcount.h"
#include "util/status.h"

int pb_slender_head_off(const pb_model *m, int set) {
  int o = 0;
  for (int l = 0; l < set; l++) o += m->width[l].heads;
  return o;
}
int pb_slender_ffn_off(const pb_model *m, int set) {
  int o = 0;
  for (int l = 0; l < set; l++) o += m->width[l].ffn;
  return o;
}
int pb_slender_n_heads(const pb_model *m) { return pb_slender_head_off(m, m->cfg.layers); }
int pb_slender_n_ffn(const pb_model *m) { return pb_slender_ffn_off(m, m->cfg.layers); }

/* ---------------------------------------------------------------- importance hook */

/* floats per token row of step l's two copies: a (attention context) + F (GELU output) */
static size_t step_cols(const pb_model *m, int l) {
  const pb_width w = pb_model_step_width(m, l);
  return (size_t)pb_width_attn(w) + (size_t)w.ffn;
}

static float *site_buf(pb_slender_imp *imp, int l, int site) {
  const pb_model *m = imp->m;
  size_t off = 0;
  for (int s = 0; s < l; s++) off += step_cols(m, s);
  off *= (size_t)imp->B * imp->T;
  if (site == PB_LIN_FFN_OUT) off += (size_t)imp->B * imp->T * pb_width_attn(pb_model_step_width(m, l));
  return imp->acts + off;
}

static int imp_reserve(void *ctx, int B, int T, float *acts, size_t *nfloats) {
  pb_slender_imp *imp = ctx;
  size_t cols = 0;
  for (int l = 0; l < pb_model_steps(imp->m); l++) cols += step_cols(imp->m, l);
  if (!acts) {
    *nfloats = cols * (size_t)B * T;
    return PB_OK;
  }
  imp->acts = acts;
  imp->B = B;
  imp->T = T;
  return PB_OK;
}

static int imp_in_fwd(void *ctx, int l, int site, const float *x, const float **xo, int N, int in) {
  if (site != PB_LIN_ATTN_OUT && site != PB_LIN_FFN_OUT) return PB_OK;
  pb_slender_imp *imp = ctx;
  if (N > imp->B * imp->T) return pb_set_error(PB_ERR_STATE, "slender importance: %d rows over capacity", N);
  float *buf = site_buf(imp, l, site);
  /* identity copy (not charged); counting-only runs point at the (reserved) buffer untouched, so
   * that the backward hook is reached and charges */
  if (!pb_opc_counting()) memcpy(buf, x, (size_t)N * in * sizeof(float));
  *xo = buf;
  return PB_OK;
}

static int imp_in_bwd(void *ctx, int l, int site, const float *x, const float *dxo, float *dx, int N, int in) {
  if (site != PB_LIN_ATTN_OUT && site != PB_LIN_FFN_OUT) return PB_OK;
  pb_opc_add(PB_OPK_FLOP, 2 * (uint64_t)N * in); /* the products and their sums */
  if (pb_opc_counting()) return PB_OK;
  pb_slender_imp *imp = ctx;
  const pb_model *m = imp->m;
  const size_t n = (size_t)N * in;
  for (size_t i = 0; i < n; i++) dx[i] += dxo[i]; /* identity */
  double *acc = imp->acc;
  memset(acc, 0, (size_t)in * sizeof(double));
  for (int r = 0; r < N; r++) {
    const float *xr = x + (size_t)r * in, *gr = dxo + (size_t)r * in;
    for (int j = 0; j < in; j++) acc[j] += (double)xr[j] * gr[j];
  }
  const int set = m->plan[l];
  const pb_width w = m->width[set];
  if (site == PB_LIN_ATTN_OUT) {
    double *out = imp->head + pb_slender_head_off(m, set);
    for (int h = 0; h < w.heads; h++) {
      double s = 0;
      for (int j = 0; j < w.head_dim; j++) s += acc[h * w.head_dim + j];
      out[h] += fabs(s);
    }
  } else {
    double *out = imp->ffn + pb_slender_ffn_off(m, set);
    for (int j = 0; j < w.ffn; j++) out[j] += fabs(acc[j]);
    if (l == 0) imp->batches++; /* every backward ends at step 0 */
  }
  return PB_OK;
}

static const pb_hook_ops imp_ops = {
    .version = PB_HOOKS_VERSION,
    .reserve = imp_reserve,
    .linear_in_fwd = imp_in_fwd,
    .linear_in_bwd = imp_in_bwd,
};

int pb_slender_imp_attach(pb_model *m, pb_slender_imp *imp) {
  memset(imp, 0, sizeof *imp);
  imp->m = m;
  int wmax = 1;
  for (int l = 0; l < m->cfg.layers; l++) {
    const pb_width w = m->width[l];
    if (pb_width_attn(w) > wmax) wmax = pb_width_attn(w);
    if (w.ffn > wmax) wmax = w.ffn;
  }
  imp->head = calloc((size_t)pb_slender_n_heads(m) + 1, sizeof(double));
  imp->ffn = calloc((size_t)pb_slender_n_ffn(m) + 1, sizeof(double));
  imp->acc = calloc((size_t)wmax, sizeof(double));
  if (!imp->head || !imp->ffn || !imp->acc) {
    pb_slender_imp_free(imp);
    return pb_set_error(PB_ERR_NOMEM, "slender importance: out of memory");
  }
  int rc = pb_model_add_hooks(m, &imp_ops, imp);
  if (rc) pb_slender_imp_free(imp);
  return rc;
}

void pb_slender_imp_reset(pb_slender_imp *imp) {
  memset(imp->head, 0, (size_t)pb_slender_n_heads(imp->m) * sizeof(double));
  memset(imp->ffn, 0, (size_t)pb_slender_n_ffn(imp->m) * sizeof(double));
  imp->batches = 0;
}

void pb_slender_imp_free(pb_slender_imp *imp) {
  free(imp->head);
  free(imp->ffn);
  free(imp->acc);
  imp->head = imp->ffn = imp->acc = NULL;
}

/* ---------------------------------------------------------------- SVD */

int pb_slender_factor(const float *E, int V, int d, int r, float *Eo, float *P, float *s_out, double *rel_err) {
  const int k = V < d ? V : d;
  if (V < 1 || d < 1 || r < 1 || r > k)
    return pb_set_error(PB_ERR_ARG, "word factorisation: rank %d outside 1..%d (E is %d x %d)", r, k, V, d);
  float *A = malloc((size_t)V * d * sizeof(float)), *U = malloc((size_t)V * k * sizeof(float));
  float *VT = malloc((size_t)k * d * sizeof(float)), *s = malloc((size_t)k * sizeof(float));
  if (!A || !U || !VT || !s) {
    free(A), free(U), free(VT), free(s);
    return pb_set_error(PB_ERR_NOMEM, "word factorisation: out of memory (%d x %d)", V, d);
  }
  memcpy(A, E, (size_t)V * d * sizeof(float));
  const lapack_int info = LAPACKE_sgesdd(LAPACK_ROW_MAJOR, 'S', V, d, A, d, s, U, k, VT, d);
  if (info != 0) {
    free(A), free(U), free(VT), free(s);
    return pb_set_error(PB_ERR_LIB, "word factorisation: LAPACKE_sgesdd returned %d", (int)info);
  }
  for (int v = 0; v < V; v++)
    for (int j = 0; j < r; j++) Eo[(size_t)v * r + j] = U[(size_t)v * k + j] * s[j];
  for (int i = 0; i < d; i++)
    for (int j = 0; j < r; j++) P[(size_t)i * r + j] = VT[(size_t)j * d + i];
  double all = 0, dropped = 0;
  for (int j = 0; j < k; j++) {
    all += (double)s[j] * s[j];
    if (j >= r) dropped += (double)s[j] * s[j];
  }
  if (rel_err) *rel_err = all > 0 ? sqrt(dropped / all) : 0.0;
  if (s_out) memcpy(s_out, s, (size_t)k * sizeof(float));
  free(A), free(U), free(VT), free(s);
  return PB_OK;
}

/* ---------------------------------------------------------------- pruning */

int pb_slender_top_k(const float *v, int n, int k, int *keep) {
  if (k < 0 || k > n) return pb_set_error(PB_ERR_ARG, "slenderize: keep %d of %d units", k, n);
  unsigned char *taken = calloc((size_t)n + 1, 1);
  if (!taken) return pb_set_error(PB_ERR_NOMEM, "slenderize: out of memory");
  for (int c = 0; c < k; c++) {
    int best = -1;
    for (int i = 0; i < n; i++)
      if (!taken[i] && (best < 0 || v[i] > v[best])) best = i;
    taken[best] = 1;
  }
  int o = 0;
  for (int i = 0; i < n && o < k; i++)
    if (taken[i]) keep[o++] = i;
  free(taken);
  return PB_OK;
}

int pb_slender_declare(const pb_model *src, int heads_keep, int ffn_keep, int word_rank, pb_model *dst) {
  const pb_config *c = &src->cfg;
  const int L = c->layers, d = c->hidden;
  for (int l = 0; l < L; l++) {
    const pb_width w = src->width[l];
    if (heads_keep < 1 || heads_keep > w.heads)
      return pb_set_error(PB_ERR_ARG, "slenderize: heads %d outside 1..%d (layer %d)", heads_keep, w.heads, l);
    if (ffn_keep < 1 || ffn_keep > w.ffn)
      return pb_set_error(PB_ERR_ARG, "slenderize: ffn %d outside 1..%d (layer %d)", ffn_keep, w.ffn, l);
    if (w.hidden != d)
      return pb_set_error(PB_ERR_UNSUPPORTED, "slenderize: layer %d has hidden %d, not the config's %d", l, w.hidden, d);
  }
  if (word_rank < 0 || word_rank >= d)
    return pb_set_error(PB_ERR_ARG, "slenderize: word rank %d outside 0..%d (0: not factorised; below hidden %d)",
                        word_rank, d - 1, d);
  if (word_rank > 0 && src->word_rank)
    return pb_set_error(PB_ERR_ARG, "slenderize: the source's word embeddings are already factorised (rank %d)",
                        src->word_rank);
  int rc = pb_model_declare(dst, c);
  if (rc) return rc;
  for (int l = 0; l < L && !rc; l++) {
    const pb_width w = {.hidden = d, .heads = heads_keep, .head_dim = src->width[l].head_dim, .ffn = ffn_keep};
    rc = pb_model_set_shape(dst, l, w);
  }
  if (!rc && word_rank > 0) rc = pb_model_factor_word(dst, word_rank);
  if (!rc && src->word_rank) rc = pb_model_factor_word(dst, src->word_rank);
  if (rc) pb_model_free(dst);
  return rc;
}

static size_t total_params(const pb_model *m) {
  size_t n = 0;
  for (int i = 0; i < m->params.n; i++) n += m->params.t[i].numel;
  return n;
}

/* dst rows i = src rows keep[i] (each `cols` wide) */
static void copy_rows(float *dst, const float *src, const int *keep, int k, int cols) {
  for (int i = 0; i < k; i++) memcpy(dst + (size_t)i * cols, src + (size_t)keep[i] * cols, (size_t)cols * sizeof(float));
}
/* dst [rows, k] columns i = src [rows, n] columns keep[i] */
static void copy_cols(float *dst, const float *src, const int *keep, int k, int n, int rows) {
  for (int r = 0; r < rows; r++)
    for (int i = 0; i < k; i++) dst[(size_t)r * k + i] = src[(size_t)r * n + keep[i]];
}

static int is_layer_tensor(const pb_model *m, int idx) {
  for (int l = 0; l < m->cfg.layers; l++) {
    const int *p = (const int *)&m->layer[l];
    for (size_t j = 0; j < sizeof(pb_layer_idx) / sizeof(int); j++)
      if (p[j] == idx) return 1;
  }
  return 0;
}

int pb_slender_prune_ex(const pb_model *src, const float *head_imp, const float *ffn_imp, int heads_keep,
                        int ffn_keep, int word_rank, pb_model *dst, pb_slender_info *info) {
  if (!src->params.frozen_mem && !src->params.train_mem)
    return pb_set_error(PB_ERR_STATE, "slenderize: the source model has no values (not allocated)");
  if (src->params.reserved) return pb_set_error(PB_ERR_STATE, "slenderize: the source model is count-only");
  if (!head_imp || !ffn_imp) return pb_set_error(PB_ERR_ARG, "slenderize: no importances");
  int rc = pb_slender_declare(src, heads_keep, ffn_keep, word_rank, dst);
  if (rc) return rc;
  if ((rc = pb_params_alloc(&dst->params))) {
    pb_model_free(dst);
    return rc;
  }
  pb_model *s = (pb_model *)src; /* read only: pb_w takes a mutable model */
  const pb_config *c = &src->cfg;
  const int L = c->layers, d = c->hidden;
  int *kh = malloc(sizeof(int) * (size_t)(heads_keep + ffn_keep + 1)), *kf = kh + heads_keep;
  int *rows = NULL;
  if (!kh) {
    pb_model_free(dst);
    return pb_set_error(PB_ERR_NOMEM, "slenderize: out of memory");
  }
  for (int l = 0; l < L; l++) {
    const pb_width ws = src->width[l];
    const int hd = ws.head_dim, as = pb_width_attn(ws), F = ws.ffn, ad = heads_keep * hd;
    int *nr = realloc(rows, sizeof(int) * (size_t)ad);
    int rc = nr ? PB_OK : pb_set_error(PB_ERR_NOMEM, "slenderize: out of memory");
    if (nr) rows = nr;
    if (!rc) rc = pb_slender_top_k(head_imp + pb_slender_head_off(src, l), ws.heads, heads_keep, kh);
    if (!rc) rc = pb_slender_top_k(ffn_imp + pb_slender_ffn_off(src, l), F, ffn_keep, kf);
    if (rc) {
      free(kh), free(rows);
      pb_model_free(dst);
      return rc;
    }
    for (int i = 0; i < heads_keep; i++)
      for (int j = 0; j < hd; j++) rows[i * hd + j] = kh[i] * hd + j;
    const pb_layer_idx *a = &src->layer[l], *b = &dst->layer[l];
    const int qkv[3][2] = {{a->qw, a->qb}, {a->kw, a->kb}, {a->vw, a->vb}};
    const int qkvd[3][2] = {{b->qw, b->qb}, {b->kw, b->kb}, {b->vw, b->vb}};
    for (int t = 0; t < 3; t++) {
      copy_rows(pb_w(dst, qkvd[t][0]), pb_w(s, qkv[t][0]), rows, ad, d);
      copy_rows(pb_w(dst, qkvd[t][1]), pb_w(s, qkv[t][1]), rows, ad, 1);
    }
    copy_cols(pb_w(dst, b->ow), pb_w(s, a->ow), rows, ad, as, d);
    copy_rows(pb_w(dst, b->iw), pb_w(s, a->iw), kf, ffn_keep, d);
    copy_rows(pb_w(dst, b->ib), pb_w(s, a->ib), kf, ffn_keep, 1);
    copy_cols(pb_w(dst, b->fw), pb_w(s, a->fw), kf, ffn_keep, F, d);
    const int same[6][2] = {{a->ob, b->ob}, {a->ln1w, b->ln1w}, {a->ln1b, b->ln1b},
                            {a->fb, b->fb}, {a->ln2w, b->ln2w}, {a->ln2b, b->ln2b}};
    for (int t = 0; t < 6; t++)
      memcpy(pb_w(dst, same[t][1]), pb_w(s, same[t][0]), src->params.t[same[t][0]].numel * sizeof(float));
  }
  free(rows);
  free(kh);
  /* everything else by name */
  double rel = 0, rel_direct = 0;
  for (int i = 0; i < dst->params.n && !rc; i++) {
    if (is_layer_tensor(dst, i)) continue;
    pb_tensor *t = &dst->params.t[i];
    if (word_rank > 0 && i == dst->word_proj) continue; /* with the word embeddings */
    if (word_rank > 0 && i == dst->word) {
      const float *E = pb_w(s, src->word);
      const int V = c->vocab_size;
      rc = pb_slender_factor(E, V, d, word_rank, t->data, pb_w(dst, dst->word_proj), NULL, &rel);
      if (rc) break;
      const float *Eo = t->data, *P = pb_w(dst, dst->word_proj);
      double num = 0, den = 0;
      for (int v = 0; v < V; v++)
        for (int j = 0; j < d; j++) {
          double y = 0;
          for (int k = 0; k < word_rank; k++) y += (double)Eo[(size_t)v * word_rank + k] * P[(size_t)j * word_rank + k];
          const double e = E[(size_t)v * d + j];
          num += (e - y) * (e - y);
          den += e * e;
        }
      rel_direct = den > 0 ? sqrt(num / den) : 0;
      continue;
    }
    const int j = pb_params_find(&src->params, t->name);
    if (j < 0 || src->params.t[j].numel != t->numel) {
      rc = pb_set_error(PB_ERR_SHAPE, "slenderize: tensor %s has no counterpart of %zu values in the source", t->name,
                        t->numel);
      break;
    }
    memcpy(t->data, src->params.t[j].data, t->numel * sizeof(float));
  }
  if (rc) {
    pb_model_free(dst);
    return rc;
  }
  dst->params.version++;
  if (info) {
    info->word_rel_err = rel;
    info->word_rel_err_direct = rel_direct;
    info->params_src = total_params(src);
    info->params_dst = total_params(dst);
  }
  return PB_OK;
}

int pb_slender_prune(const pb_model *src, const float *head_imp, const float *ffn_imp, int heads_keep, int ffn_keep,
                     int word_rank, pb_model *dst) {
  return pb_slender_prune_ex(src, head_imp, ffn_imp, heads_keep, ffn_keep, word_rank, dst, NULL);
}
