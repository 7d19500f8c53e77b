/* COIL scoring, encoding and the inverted index (coil.h). */
#include "harness/coil.h"

#include <stdlib.h>
#include <string.h>

#include "backbone/ops.h"
#include "util/status.h"

int pb_coil_declare(pb_coil *co, pb_model *m, int tok_dim, int cls_dim, int score_sep, int cls_id, int sep_id,
                    int pad_id) {
  memset(co, 0, sizeof *co);
  const int d = m->cfg.hidden;
  if (tok_dim < 1 || cls_dim < 1)
    return pb_set_error(PB_ERR_ARG, "coil: token dim %d and cls dim %d must be >= 1", tok_dim, cls_dim);
  if (!pb_model_width_uniform(m) || pb_head_width(m, &m->head) != d)
    return pb_set_error(PB_ERR_UNSUPPORTED, "coil: the backbone must keep one width (no width segments)");
  co->ln_w = co->ln_b = -1;
  co->d = d;
  co->k = tok_dim;
  co->c = cls_dim;
  co->score_sep = score_sep;
  co->cls_id = cls_id;
  co->sep_id = sep_id;
  co->pad_id = pad_id;
  const float std = m->cfg.init_range;
  const int sw[2] = {tok_dim, d}, sb[1] = {tok_dim}, cw[2] = {cls_dim, d}, cb[1] = {cls_dim};
  if ((co->tok_w = pb_params_add(&m->params, "coil.tok_proj.weight", PB_OWNER_HEAD, 2, sw, PB_INIT_NORMAL, std)) < 0)
    return co->tok_w;
  if ((co->tok_b = pb_params_add(&m->params, "coil.tok_proj.bias", PB_OWNER_HEAD, 1, sb, PB_INIT_ZERO, 0)) < 0)
    return co->tok_b;
  if ((co->cls_w = pb_params_add(&m->params, "coil.cls_proj.weight", PB_OWNER_HEAD, 2, cw, PB_INIT_NORMAL, std)) < 0)
    return co->cls_w;
  if ((co->cls_b = pb_params_add(&m->params, "coil.cls_proj.bias", PB_OWNER_HEAD, 1, cb, PB_INIT_ZERO, 0)) < 0)
    return co->cls_b;
  const int mine[4] = {co->tok_w, co->tok_b, co->cls_w, co->cls_b};
  for (int i = 0; i < 4; i++) {
    m->params.t[mine[i]].trainable = 1;
    m->params.t[mine[i]].stored = 1;
  }
  /* the classification head is not part of a retrieval model */
  m->params.t[m->cls_w].trainable = m->params.t[m->cls_b].trainable = 0;
  m->params.t[m->cls_w].stored = m->params.t[m->cls_b].stored = 0;
  m->no_head = 1;
  return PB_OK;
}

int pb_coil_set_act(pb_coil *co, pb_model *m, int act) {
  if (act < PB_COIL_ACT_NONE || act > PB_COIL_ACT_LN) return pb_set_error(PB_ERR_ARG, "coil: unknown token activation %d", act);
  co->act = act;
  if (act != PB_COIL_ACT_LN || co->ln_w >= 0) return PB_OK;
  const int sh[1] = {co->k};
  if ((co->ln_w = pb_params_add(&m->params, "coil.tok_norm.weight", PB_OWNER_HEAD, 1, sh, PB_INIT_ONE, 0)) < 0)
    return co->ln_w;
  if ((co->ln_b = pb_params_add(&m->params, "coil.tok_norm.bias", PB_OWNER_HEAD, 1, sh, PB_INIT_ZERO, 0)) < 0)
    return co->ln_b;
  m->params.t[co->ln_w].trainable = m->params.t[co->ln_b].trainable = 1;
  m->params.t[co->ln_w].stored = m->params.t[co->ln_b].stored = 1;
  return PB_OK;
}

int pb_coil_reserve(pb_coil *co, size_t rows) {
  if (co->act == PB_COIL_ACT_NONE || rows <= co->rows) return PB_OK;
  pb_coil_free(co);
  co->pre = malloc(sizeof(float) * rows * (size_t)co->k);
  co->dpre = malloc(sizeof(float) * rows * (size_t)co->k);
  co->mean = malloc(sizeof(float) * rows);
  co->rstd = malloc(sizeof(float) * rows);
  if (!co->pre || !co->dpre || !co->mean || !co->rstd) {
    pb_coil_free(co);
    return pb_set_error(PB_ERR_NOMEM, "coil: out of memory");
  }
  co->rows = rows;
  return PB_OK;
}

void pb_coil_free(pb_coil *co) {
  free(co->pre);
  free(co->dpre);
  free(co->mean);
  free(co->rstd);
  co->pre = co->dpre = co->mean = co->rstd = NULL;
  co->rows = 0;
}

/* the projections of h [B*T, d] (and its [CLS] rows, gathered into cls_in) */
static void project(const pb_coil *co, pb_model *m, const float *h, int B, int T, float *tok, float *cls,
                    float *cls_in) {
  const int d = co->d;
  const size_t n = (size_t)B * T * co->k;
  float *pre = co->act == PB_COIL_ACT_NONE ? tok : co->pre;
  pb_matmul_fwd(pre, h, pb_w(m, co->tok_w), pb_w(m, co->tok_b), B * T, d, co->k);
  if (co->act == PB_COIL_ACT_RELU) pb_relu_fwd(tok, pre, n);
  if (co->act == PB_COIL_ACT_LN)
    pb_layernorm_fwd(tok, co->mean, co->rstd, pre, pb_w(m, co->ln_w), pb_w(m, co->ln_b), B * T, co->k, 1e-5f);
  if (!pb_opc_counting())
    for (int b = 0; b < B; b++) memcpy(cls_in + (size_t)b * d, h + (size_t)b * T * d, sizeof(float) * (size_t)d);
  pb_matmul_fwd(cls, cls_in, pb_w(m, co->cls_w), pb_w(m, co->cls_b), B, d, co->c);
}

int pb_coil_encode(const pb_coil *co, pb_model *m, const int *ids, const int *mask, int B, int T, int training,
                   uint64_t seed, float *tok, float *cls, float *cls_in) {
  int rc = pb_forward(m, ids, NULL, mask, B, T, NULL, NULL, training, seed, NULL);
  if (rc) return rc;
  if (m->exited) return pb_set_error(PB_ERR_UNSUPPORTED, "coil: rows left the encoder early (early-exit methods do not apply)");
  if (co->act != PB_COIL_ACT_NONE && (size_t)B * T > co->rows)
    return pb_set_error(PB_ERR_ARG, "coil: %d x %d positions exceed the reserved %zu (pb_coil_reserve)", B, T, co->rows);
  int prev = pb_opc_set_owner(PB_OPO_HEAD);
  project(co, m, m->acts.layer[m->steps - 1].out, B, T, tok, cls, cls_in);
  pb_opc_set_owner(prev);
  return PB_OK;
}

int pb_coil_encode_bwd(const pb_coil *co, pb_model *m, int B, int T, const float *cls_in, const float *dtok,
                       const float *dcls, float *dh, float *dcin) {
  const int d = co->d, N = B * T;
  const float *h = m->acts.layer[m->steps - 1].out;
  int prev = pb_opc_set_owner(PB_OPO_HEAD);
  if (!pb_opc_counting()) {
    memset(dh, 0, sizeof(float) * (size_t)N * d);
    memset(dcin, 0, sizeof(float) * (size_t)B * d);
  }
  const float *dpre = dtok;
  if (co->act != PB_COIL_ACT_NONE) { /* back through the activation into dpre */
    const size_t n = (size_t)N * co->k;
    if (!pb_opc_counting()) memset(co->dpre, 0, sizeof(float) * n);
    if (co->act == PB_COIL_ACT_RELU) pb_relu_bwd(co->dpre, co->pre, dtok, n);
    else
      pb_layernorm_bwd(co->dpre, pb_g(m, co->ln_w), pb_g(m, co->ln_b), dtok, co->pre, pb_w(m, co->ln_w), co->mean,
                       co->rstd, N, co->k);
    dpre = co->dpre;
  }
  pb_matmul_bwd(dh, pb_g(m, co->tok_w), pb_g(m, co->tok_b), dpre, h, pb_w(m, co->tok_w), N, d, co->k);
  pb_matmul_bwd(dcin, pb_g(m, co->cls_w), pb_g(m, co->cls_b), dcls, cls_in, pb_w(m, co->cls_w), B, d, co->c);
  if (!pb_opc_counting())
    for (int b = 0; b < B; b++)
      for (int j = 0; j < d; j++) dh[(size_t)b * T * d + j] += dcin[(size_t)b * d + j];
  pb_opc_add(PB_OPK_FLOP, (uint64_t)B * d); /* the [CLS] rows' gradients added into dh */
  pb_opc_set_owner(prev);
  return pb_backward_hidden(m, dh);
}

int pb_coil_count_encode(const pb_coil *co, pb_model *m, int B, int T, pb_opcounts *out) {
  int rc = pb_model_count(m, B, T, PB_COUNT_INFER, out);
  if (rc) return rc;
  pb_opcounter saved;
  pb_opc_count_begin(&saved);
  int prev = pb_opc_set_owner(PB_OPO_HEAD);
  project(co, m, NULL, B, T, NULL, NULL, NULL);
  pb_opc_set_owner(prev);
  pb_opc_count_end(&saved, out);
  return PB_OK;
}

int pb_coil_scored(const pb_coil *co, const int *ids, const int *mask, int i) {
  if (i == 0 || (mask && !mask[i])) return 0;
  const int t = ids[i];
  if (t == co->cls_id || t == co->pad_id) return 0;
  if (t == co->sep_id && !co->score_sep) return 0;
  return 1;
}

/* a document position that can be matched */
static int indexed(const pb_coil *co, const int *ids, const int *mask, int j) {
  if (mask && !mask[j]) return 0;
  const int t = ids[j];
  return t != co->cls_id && t != co->sep_id && t != co->pad_id;
}

static float dot(const float *a, const float *b, int n) {
  float s = 0.0f;
  for (int i = 0; i < n; i++) s += a[i] * b[i];
  return s;
}

float pb_coil_score_pair(const pb_coil *co, const int *qids, const int *qmask, const float *qtok, const float *qcls,
                         int Tq, const int *dids, const int *dmask, const float *dtok, const float *dcls, int Tp,
                         int *argmax) {
  const int k = co->k;
  uint64_t matches = 0, scored = 0;
  const int prev = pb_opc_set_owner(PB_OPO_HEAD);
  pb_opc_add(PB_OPK_MAC, (uint64_t)co->c);
  for (int i = 0; i < Tq; i++) {
    if (argmax) argmax[i] = -1;
    if (!pb_coil_scored(co, qids, qmask, i)) continue;
    scored++;
    for (int j = 0; j < Tp; j++)
      if (dids[j] == qids[i] && indexed(co, dids, dmask, j)) matches++;
  }
  pb_opc_add(PB_OPK_MAC, matches * (uint64_t)k);
  pb_opc_add(PB_OPK_FLOP, matches + scored);
  pb_opc_set_owner(prev);
  if (pb_opc_counting()) return 0.0f;
  float s = dot(qcls, dcls, co->c);
  for (int i = 0; i < Tq; i++) {
    if (!pb_coil_scored(co, qids, qmask, i)) continue;
    float best = 0.0f;
    int at = -1;
    for (int j = 0; j < Tp; j++) {
      if (dids[j] != qids[i] || !indexed(co, dids, dmask, j)) continue;
      const float v = dot(qtok + (size_t)i * k, dtok + (size_t)j * k, k);
      if (v > best) {
        best = v;
        at = j;
      }
    }
    if (argmax) argmax[i] = at;
    s += best;
  }
  return s;
}

void pb_coil_score_pair_bwd(const pb_coil *co, float g, const int *argmax, int Tq, const float *qtok,
                            const float *qcls, const float *dtok, const float *dcls, float *dqtok, float *dqcls,
                            float *ddtok, float *ddcls) {
  const int k = co->k, c = co->c;
  uint64_t pos = 0;
  for (int i = 0; i < Tq; i++) pos += argmax[i] >= 0;
  const int prev = pb_opc_set_owner(PB_OPO_HEAD);
  pb_opc_add(PB_OPK_MAC, 2 * (uint64_t)c + 2 * pos * (uint64_t)k);
  pb_opc_set_owner(prev);
  if (pb_opc_counting()) return;
  for (int j = 0; j < c; j++) {
    dqcls[j] += g * dcls[j];
    ddcls[j] += g * qcls[j];
  }
  for (int i = 0; i < Tq; i++) {
    const int j = argmax[i];
    if (j < 0) continue;
    for (int e = 0; e < k; e++) {
      dqtok[(size_t)i * k + e] += g * dtok[(size_t)j * k + e];
      ddtok[(size_t)j * k + e] += g * qtok[(size_t)i * k + e];
    }
  }
}

/* ---------------------------------------------------------------- the inverted index */

int pb_coil_index_init(pb_coil_index *x, int n_docs, int k, int c, int vocab) {
  memset(x, 0, sizeof *x);
  x->n_docs = n_docs;
  x->k = k;
  x->c = c;
  x->vocab = vocab;
  x->cnt = calloc((size_t)vocab, sizeof(int));
  x->cls = malloc(sizeof(float) * (size_t)n_docs * c);
  if (!x->cnt || !x->cls) return pb_set_error(PB_ERR_NOMEM, "coil index: out of memory");
  return PB_OK;
}

void pb_coil_index_count(pb_coil_index *x, const pb_coil *co, const int *ids, const int *mask, int T) {
  for (int j = 0; j < T; j++)
    if (indexed(co, ids, mask, j) && ids[j] >= 0 && ids[j] < x->vocab) x->cnt[ids[j]]++;
}

int pb_coil_index_alloc(pb_coil_index *x) {
  x->off = malloc(sizeof(int) * ((size_t)x->vocab + 1));
  if (!x->off) return pb_set_error(PB_ERR_NOMEM, "coil index: out of memory");
  long long p = 0;
  for (int t = 0; t < x->vocab; t++) {
    x->off[t] = (int)p;
    p += x->cnt[t];
  }
  x->off[x->vocab] = (int)p;
  if (p > 0x7fffffffLL) return pb_set_error(PB_ERR_ARG, "coil index: %lld postings exceed 2^31", p);
  x->n_postings = p;
  x->doc = malloc(sizeof(int) * (size_t)(p + 1));
  x->vec = malloc(sizeof(float) * (size_t)(p + 1) * x->k);
  if (!x->doc || !x->vec) return pb_set_error(PB_ERR_NOMEM, "coil index: out of memory (%lld postings)", p);
  memset(x->cnt, 0, sizeof(int) * (size_t)x->vocab); /* now: postings filled per list */
  return PB_OK;
}

void pb_coil_index_add(pb_coil_index *x, const pb_coil *co, int doc, const int *ids, const int *mask,
                       const float *tok, int T, const float *cls) {
  memcpy(x->cls + (size_t)doc * x->c, cls, sizeof(float) * (size_t)x->c);
  for (int j = 0; j < T; j++) {
    if (!indexed(co, ids, mask, j) || ids[j] < 0 || ids[j] >= x->vocab) continue;
    const int t = ids[j], at = x->off[t] + x->cnt[t]++;
    x->doc[at] = doc;
    memcpy(x->vec + (size_t)at * x->k, tok + (size_t)j * x->k, sizeof(float) * (size_t)x->k);
  }
}

long long pb_coil_index_bytes(const pb_coil_index *x) {
  return (long long)x->n_docs * x->c * 4 + x->n_postings * (long long)x->k * 4 + x->n_postings * 4 +
         ((long long)x->vocab + 1) * 4;
}

void pb_coil_index_free(pb_coil_index *x) {
  free(x->cls);
  free(x->off);
  free(x->doc);
  free(x->vec);
  free(x->cnt);
  memset(x, 0, sizeof *x);
}

/* distinct documents in list t (postings are in document order) */
static uint64_t list_docs(const pb_coil_index *x, int t) {
  uint64_t n = 0;
  for (int p = x->off[t]; p < x->off[t + 1]; p++) n += p == x->off[t] || x->doc[p] != x->doc[p - 1];
  return n;
}

void pb_coil_search_closed_form(const pb_coil_index *x, const pb_coil *co, const int *qids, const int *qmask, int Tq,
                                uint64_t *macs, uint64_t *flops) {
  uint64_t P = 0, D = 0;
  for (int i = 0; i < Tq; i++) {
    if (!pb_coil_scored(co, qids, qmask, i) || qids[i] < 0 || qids[i] >= x->vocab) continue;
    P += (uint64_t)(x->off[qids[i] + 1] - x->off[qids[i]]);
    D += list_docs(x, qids[i]);
  }
  *macs = (uint64_t)x->n_docs * x->c + (uint64_t)x->k * P;
  *flops = P + D;
}

int pb_coil_search(const pb_coil_index *x, const pb_coil *co, const int *qids, const int *qmask,
                   const float *qtok, const float *qcls, int Tq, float *scores, float *maxbuf, int *touched) {
  const int k = x->k;
  uint64_t macs, flops;
  pb_coil_search_closed_form(x, co, qids, qmask, Tq, &macs, &flops);
  const int prev = pb_opc_set_owner(PB_OPO_HEAD);
  pb_opc_add(PB_OPK_MAC, macs);
  pb_opc_add(PB_OPK_FLOP, flops);
  pb_opc_set_owner(prev);
  if (pb_opc_counting()) return PB_OK;
  for (int e = 0; e < x->n_docs; e++) {
    scores[e] = dot(qcls, x->cls + (size_t)e * x->c, x->c);
    maxbuf[e] = 0.0f;
  }
  for (int i = 0; i < Tq; i++) {
    if (!pb_coil_scored(co, qids, qmask, i) || qids[i] < 0 || qids[i] >= x->vocab) continue;
    const int t = qids[i];
    const float *u = qtok + (size_t)i * k;
    int nt = 0;
    for (int p = x->off[t]; p < x->off[t + 1]; p++) {
      const int e = x->doc[p];
      const float v = dot(u, x->vec + (size_t)p * k, k);
      if (p == x->off[t] || e != x->doc[p - 1]) touched[nt++] = e;
      if (v > maxbuf[e]) maxbuf[e] = v;
    }
    for (int a = 0; a < nt; a++) {
      scores[touched[a]] += maxbuf[touched[a]];
      maxbuf[touched[a]] = 0.0f;
    }
  }
  return PB_OK;
}
