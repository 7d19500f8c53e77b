/* Masked-language-model head and masking (see mlm.h). */
#include "backbone/mlm.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "backbone/ops.h"
#include "util/rng.h"
#include "util/status.h"
#include "counters/opcount.h"

int pb_mlm_declare(pb_mlm *h, pb_model *m) {
  memset(h, 0, sizeof *h);
  /* the decoder is tied to the [V,d] word embeddings and reads the last step at width d */
  if (pb_model_word_rank(m) || !pb_model_width_uniform(m))
    return pb_set_error(PB_ERR_UNSUPPORTED, "mlm: needs unfactorised word embeddings and one width over every step");
  const int d = m->cfg.hidden, V = m->cfg.vocab_size;
  const float s = m->cfg.init_range;
  pb_params *p = &m->params;
  int sh_dd[2] = {d, d}, sh_d[1] = {d}, sh_v[1] = {V};
  struct {
    int *dst;
    const char *name;
    int ndim;
    const int *shape;
    pb_init_kind init;
    float a;
  } decl[5] = {
      {&h->dense_w, "cls.predictions.transform.dense.weight", 2, sh_dd, PB_INIT_NORMAL, s},
      {&h->dense_b, "cls.predictions.transform.dense.bias", 1, sh_d, PB_INIT_ZERO, 0},
      {&h->ln_w, "cls.predictions.transform.LayerNorm.weight", 1, sh_d, PB_INIT_ONE, 0},
      {&h->ln_b, "cls.predictions.transform.LayerNorm.bias", 1, sh_d, PB_INIT_ZERO, 0},
      {&h->bias, "cls.predictions.bias", 1, sh_v, PB_INIT_ZERO, 0},
  };
  for (int i = 0; i < 5; i++) {
    int r = pb_params_add(p, decl[i].name, PB_OWNER_HEAD, decl[i].ndim, decl[i].shape, decl[i].init, decl[i].a);
    if (r < 0) return r;
    *decl[i].dst = r;
    p->t[r].trainable = 1;
    p->t[r].stored = 1;
  }
  return PB_OK;
}

void pb_mlm_free(pb_mlm *h) {
  free(h->rows);
  free(h->labels);
  free(h->x);
  free(h->logits);
  free(h->probs);
  free(h->dout);
  int dense_w = h->dense_w, dense_b = h->dense_b, ln_w = h->ln_w, ln_b = h->ln_b, bias = h->bias;
  memset(h, 0, sizeof *h);
  /* keep the table indices: the model still holds those tensors */
  h->dense_w = dense_w, h->dense_b = dense_b, h->ln_w = ln_w, h->ln_b = ln_b, h->bias = bias;
}

int pb_mlm_alloc(pb_mlm *h, const pb_model *m, int max_masked) {
  if (!m->act_mem) return pb_set_error(PB_ERR_ARG, "mlm: allocate the model (pb_model_alloc) first");
  if (max_masked <= 0) return pb_set_error(PB_ERR_ARG, "mlm: max_masked must be positive (got %d)", max_masked);
  pb_mlm_free(h);
  const size_t cap = (size_t)max_masked, d = m->cfg.hidden, V = m->cfg.vocab_size;
  h->rows = malloc(cap * sizeof(int));
  h->labels = malloc(cap * sizeof(int));
  h->x = calloc(cap * d * 9 + 2 * cap, sizeof(float)); /* x pre act h dh dact dpre dx + spare, mean rstd */
  h->logits = calloc(cap * V, sizeof(float));
  h->probs = calloc(cap * V, sizeof(float));
  h->dout = calloc((size_t)m->B * m->T * d, sizeof(float));
  if (!h->rows || !h->labels || !h->x || !h->logits || !h->probs || !h->dout) {
    pb_mlm_free(h);
    return pb_set_error(PB_ERR_NOMEM, "mlm: cannot allocate scratch for %d masked rows (V=%zu)", max_masked, V);
  }
  float *p = h->x + cap * d;
  h->pre = p, p += cap * d;
  h->act = p, p += cap * d;
  h->h = p, p += cap * d;
  h->dh = p, p += cap * d;
  h->dact = p, p += cap * d;
  h->dpre = p, p += cap * d;
  h->dx = p, p += cap * d;
  h->ln_mean = p, p += cap;
  h->ln_rstd = p;
  h->cap = max_masked;
  return PB_OK;
}

static const float *last_hidden(const pb_model *m) {
  return pb_model_last_hidden(m);
}

int pb_mlm_forward(pb_mlm *h, pb_model *m, const int *labels, float *loss) {
  if (!h->cap || !h->dout) return pb_set_error(PB_ERR_ARG, "mlm: head not allocated (pb_mlm_alloc)");
  const int N = m->cur_B * m->cur_T, d = m->cfg.hidden, V = m->cfg.vocab_size;
  if (N <= 0) return pb_set_error(PB_ERR_ARG, "mlm: no forward to compute the loss of");
  int M = 0;
  for (int i = 0; i < N; i++) {
    if (labels[i] == PB_MLM_IGNORE) continue;
    if (labels[i] < 0 || labels[i] >= V)
      return pb_set_error(PB_ERR_ARG, "mlm: label %d at position %d outside the vocabulary of %d", labels[i], i, V);
    if (M == h->cap)
      return pb_set_error(PB_ERR_ARG, "mlm: more than %d predicted positions in the batch (capacity)", h->cap);
    h->rows[M] = i;
    h->labels[M] = labels[i];
    M++;
  }
  if (M == 0) return pb_set_error(PB_ERR_ARG, "mlm: the batch has no predicted (masked) position");
  h->M = M;
  const float *hid = last_hidden(m);
  for (int r = 0; r < M; r++) memcpy(h->x + (size_t)r * d, hid + (size_t)h->rows[r] * d, (size_t)d * sizeof(float));
  int prev = pb_opc_set_owner(PB_OPO_HEAD);
  pb_matmul_fwd(h->pre, h->x, pb_w(m, h->dense_w), pb_w(m, h->dense_b), M, d, d);
  pb_gelu_fwd(h->act, h->pre, (size_t)M * d);
  pb_layernorm_fwd(h->h, h->ln_mean, h->ln_rstd, h->act, pb_w(m, h->ln_w), pb_w(m, h->ln_b), M, d, m->cfg.ln_eps);
  pb_matmul_fwd(h->logits, h->h, pb_w(m, m->word), pb_w(m, h->bias), M, d, V);
  h->loss = pb_softmax_ce_fwd(h->probs, h->logits, h->labels, M, V);
  pb_opc_set_owner(prev);
  if (loss) *loss = h->loss;
  if (!isfinite(h->loss)) return pb_set_error(PB_ERR_NUMERIC, "mlm: loss is %f (diverged)", (double)h->loss);
  return PB_OK;
}

int pb_mlm_backward(pb_mlm *h, pb_model *m) {
  int rc = pb_mlm_backward_head(h, m);
  return rc ? rc : pb_backward_hidden(m, h->dout);
}

int pb_mlm_backward_head(pb_mlm *h, pb_model *m) {
  const int M = h->M, d = m->cfg.hidden, V = m->cfg.vocab_size;
  const size_t N = (size_t)m->cur_B * m->cur_T;
  if (M <= 0) return pb_set_error(PB_ERR_ARG, "mlm: backward without a forward");
  int prev = pb_opc_set_owner(PB_OPO_HEAD);
  float *dlogits = h->logits; /* logits are dead now */
  memset(dlogits, 0, (size_t)M * V * sizeof(float));
  pb_softmax_ce_bwd(dlogits, h->probs, h->labels, M, V);
  memset(h->dh, 0, (size_t)M * d * sizeof(float));
  /* tied decoder: the word-embedding gradient (NULL when frozen) gets this share */
  pb_matmul_bwd(h->dh, pb_g(m, m->word), pb_g(m, h->bias), dlogits, h->h, pb_w(m, m->word), M, d, V);
  memset(h->dact, 0, (size_t)M * d * sizeof(float));
  pb_layernorm_bwd(h->dact, pb_g(m, h->ln_w), pb_g(m, h->ln_b), h->dh, h->act, pb_w(m, h->ln_w), h->ln_mean,
                   h->ln_rstd, M, d);
  memset(h->dpre, 0, (size_t)M * d * sizeof(float));
  pb_gelu_bwd(h->dpre, h->pre, h->dact, (size_t)M * d);
  memset(h->dx, 0, (size_t)M * d * sizeof(float));
  pb_matmul_bwd(h->dx, pb_g(m, h->dense_w), pb_g(m, h->dense_b), h->dpre, h->x, pb_w(m, h->dense_w), M, d, d);
  pb_opc_set_owner(prev);
  /* scatter into the [B*T, d] gradient of the last layer (zero at unpredicted rows) */
  memset(h->dout, 0, N * d * sizeof(float));
  for (int r = 0; r < M; r++)
    memcpy(h->dout + (size_t)h->rows[r] * d, h->dx + (size_t)r * d, (size_t)d * sizeof(float));
  return PB_OK;
}

/* ---------------------------------------------------------------- masking */

static int round_pos(float x) { return (int)floorf(x + 0.5f); }

int pb_mlm_max_per_row(int T, float prob) {
  int n = round_pos(prob * (float)T);
  return n < 1 ? 1 : n;
}

int pb_mlm_mask(const int *ids, const int *mask, int B, int T, int V, int mask_id, const int *special,
                int n_special, float prob, int max_per_row, uint64_t seed, int *out_ids, int *labels) {
  if (B <= 0 || T <= 0 || V <= 0 || mask_id < 0 || mask_id >= V || !(prob > 0.0f && prob <= 1.0f))
    return pb_set_error(PB_ERR_ARG, "mlm mask: bad arguments (B=%d T=%d V=%d mask_id=%d prob=%g)", B, T, V, mask_id,
                        (double)prob);
  int *cand = malloc((size_t)T * sizeof(int));
  if (!cand) return pb_set_error(PB_ERR_NOMEM, "mlm mask: out of memory");
  pb_rng r;
  pb_rng_seed(&r, pb_hash64(seed ^ 0x6D6C6D6D61736B00ULL));
  int total = 0;
  for (int b = 0; b < B; b++) {
    const int *row = ids + (size_t)b * T;
    int *orow = out_ids + (size_t)b * T, *lrow = labels + (size_t)b * T;
    int nc = 0;
    for (int t = 0; t < T; t++) {
      orow[t] = row[t];
      lrow[t] = PB_MLM_IGNORE;
      if (mask && !mask[(size_t)b * T + t]) continue;
      int sp = 0;
      for (int k = 0; k < n_special; k++) sp |= row[t] == special[k];
      if (!sp) cand[nc++] = t;
    }
    if (nc == 0) continue;
    int np = round_pos(prob * (float)nc);
    if (np < 1) np = 1;
    if (max_per_row > 0 && np > max_per_row) np = max_per_row;
    /* partial Fisher-Yates: the first np candidates become a uniform sample */
    for (int i = 0; i < np; i++) {
      int j = i + (int)pb_rng_below(&r, (uint64_t)(nc - i));
      int tmp = cand[i];
      cand[i] = cand[j];
      cand[j] = tmp;
      int t = cand[i];
      lrow[t] = row[t];
      float u = pb_rng_uniform(&r);
      if (u < 0.8f) orow[t] = mask_id;
      else if (u < 0.9f) orow[t] = (int)pb_rng_below(&r, (uint64_t)V);
      /* else unchanged */
    }
    total += np;
  }
  free(cand);
  return total;
}

int pb_mlm_mask_wwm(const int *ids, const int *mask, int B, int T, int V, int mask_id, const int *special,
                    int n_special, const unsigned char *cont, float prob, uint64_t seed, int *out_ids, int *labels) {
  if (B <= 0 || T <= 0 || V <= 0 || mask_id < 0 || mask_id >= V || !cont || !(prob > 0.0f && prob <= 1.0f))
    return pb_set_error(PB_ERR_ARG, "mlm mask (whole word): bad arguments (B=%d T=%d V=%d mask_id=%d prob=%g)", B, T,
                        V, mask_id, (double)prob);
  int *start = malloc((size_t)(2 * T + 1) * sizeof(int));
  if (!start) return pb_set_error(PB_ERR_NOMEM, "mlm mask: out of memory");
  int *wlen = start + T;
  pb_rng r;
  pb_rng_seed(&r, pb_hash64(seed ^ 0x77776D6D61736B00ULL));
  int total = 0;
  for (int b = 0; b < B; b++) {
    const int *row = ids + (size_t)b * T;
    int *orow = out_ids + (size_t)b * T, *lrow = labels + (size_t)b * T;
    int nw = 0, nc = 0;
    for (int t = 0; t < T; t++) {
      orow[t] = row[t];
      lrow[t] = PB_MLM_IGNORE;
      int cand = !(mask && !mask[(size_t)b * T + t]);
      for (int k = 0; cand && k < n_special; k++) cand = row[t] != special[k];
      if (!cand) continue;
      nc++;
      int is_cont = row[t] >= 0 && row[t] < V && cont[row[t]];
      if (is_cont && nw > 0 && start[nw - 1] + wlen[nw - 1] == t) {
        wlen[nw - 1]++;
      } else {
        start[nw] = t;
        wlen[nw] = 1;
        nw++;
      }
    }
    if (nc == 0) continue;
    int np = round_pos(prob * (float)nc);
    if (np < 1) np = 1;
    int got = 0;
    /* visit the words in a uniform random order (Fisher-Yates over the word list) */
    for (int i = 0; i < nw && got < np; i++) {
      int j = i + (int)pb_rng_below(&r, (uint64_t)(nw - i));
      int ts = start[i], tl = wlen[i];
      start[i] = start[j], wlen[i] = wlen[j];
      start[j] = ts, wlen[j] = tl;
      if (got + wlen[i] > np) continue;
      for (int t = start[i]; t < start[i] + wlen[i]; t++) {
        lrow[t] = row[t];
        float u = pb_rng_uniform(&r);
        if (u < 0.8f) orow[t] = mask_id;
        else if (u < 0.9f) orow[t] = (int)pb_rng_below(&r, (uint64_t)V);
      }
      got += wlen[i];
    }
    total += got;
  }
  free(start);
  return total;
}

/* ---------------------------------------------------------------- next-sentence head */

int pb_nsp_declare(pb_nsp *n, pb_model *m) {
  memset(n, 0, sizeof *n);
  const int d = m->cfg.hidden;
  int sh_w[2] = {2, d}, sh_b[1] = {2};
  int r = pb_params_add(&m->params, "cls.seq_relationship.weight", PB_OWNER_HEAD, 2, sh_w, PB_INIT_NORMAL,
                        m->cfg.init_range);
  if (r < 0) return r;
  n->w = r;
  r = pb_params_add(&m->params, "cls.seq_relationship.bias", PB_OWNER_HEAD, 1, sh_b, PB_INIT_ZERO, 0);
  if (r < 0) return r;
  n->b = r;
  m->params.t[n->w].trainable = m->params.t[n->b].trainable = 1;
  m->params.t[n->w].stored = m->params.t[n->b].stored = 1;
  return PB_OK;
}

void pb_nsp_free(pb_nsp *n) {
  free(n->labels);
  free(n->x);
  int w = n->w, b = n->b;
  memset(n, 0, sizeof *n);
  n->w = w, n->b = b;
}

int pb_nsp_alloc(pb_nsp *n, const pb_model *m) {
  if (!m->act_mem || m->B <= 0) return pb_set_error(PB_ERR_ARG, "nsp: allocate the model (pb_model_alloc) first");
  pb_nsp_free(n);
  const size_t cap = (size_t)m->B, d = m->cfg.hidden;
  n->labels = malloc(cap * sizeof(int));
  n->x = calloc(cap * d * 6 + cap * 4, sizeof(float));
  if (!n->labels || !n->x) {
    pb_nsp_free(n);
    return pb_set_error(PB_ERR_NOMEM, "nsp: out of memory");
  }
  float *p = n->x + cap * d;
  n->pooled = p, p += cap * d;
  n->dpooled = p, p += cap * d;
  n->dpre = p, p += cap * d;
  n->dx = p, p += cap * d;
  p += cap * d; /* spare */
  n->logits = p, p += cap * 2;
  n->probs = p;
  n->cap = (int)cap;
  return PB_OK;
}

int pb_nsp_forward(pb_nsp *n, pb_model *m, const int *labels, float *loss) {
  if (!n->cap) return pb_set_error(PB_ERR_ARG, "nsp: head not allocated (pb_nsp_alloc)");
  const int B = m->cur_B, T = m->cur_T, d = m->cfg.hidden;
  if (B <= 0 || B > n->cap) return pb_set_error(PB_ERR_ARG, "nsp: batch of %d rows (capacity %d)", B, n->cap);
  for (int b = 0; b < B; b++) {
    if (labels[b] != 0 && labels[b] != 1) return pb_set_error(PB_ERR_ARG, "nsp: label %d of row %d is not 0/1", labels[b], b);
    n->labels[b] = labels[b];
  }
  n->B = B;
  const float *hid = last_hidden(m);
  for (int b = 0; b < B; b++) memcpy(n->x + (size_t)b * d, hid + (size_t)b * T * d, (size_t)d * sizeof(float));
  int prev = pb_opc_set_owner(PB_OPO_HEAD);
  pb_matmul_fwd(n->dpre, n->x, pb_w(m, m->pool_w), pb_w(m, m->pool_b), B, d, d); /* dpre as scratch */
  pb_tanh_fwd(n->pooled, n->dpre, (size_t)B * d);
  pb_matmul_fwd(n->logits, n->pooled, pb_w(m, n->w), pb_w(m, n->b), B, d, 2);
  n->loss = pb_softmax_ce_fwd(n->probs, n->logits, n->labels, B, 2);
  pb_opc_set_owner(prev);
  n->correct = 0;
  for (int b = 0; b < B; b++) n->correct += (n->logits[2 * b + 1] > n->logits[2 * b]) == (n->labels[b] == 1);
  if (loss) *loss = n->loss;
  if (!isfinite(n->loss)) return pb_set_error(PB_ERR_NUMERIC, "nsp: loss is %f (diverged)", (double)n->loss);
  return PB_OK;
}

int pb_nsp_backward(pb_nsp *n, pb_model *m, float *dout) {
  const int B = n->B, T = m->cur_T, d = m->cfg.hidden;
  if (B <= 0) return pb_set_error(PB_ERR_ARG, "nsp: backward without a forward");
  int prev = pb_opc_set_owner(PB_OPO_HEAD);
  float dlog[2 * 1024], *dl = B <= 1024 ? dlog : malloc((size_t)B * 2 * sizeof(float));
  if (!dl) return pb_set_error(PB_ERR_NOMEM, "nsp: out of memory");
  memset(dl, 0, (size_t)B * 2 * sizeof(float));
  pb_softmax_ce_bwd(dl, n->probs, n->labels, B, 2);
  memset(n->dpooled, 0, (size_t)B * d * sizeof(float));
  pb_matmul_bwd(n->dpooled, pb_g(m, n->w), pb_g(m, n->b), dl, n->pooled, pb_w(m, n->w), B, d, 2);
  memset(n->dpre, 0, (size_t)B * d * sizeof(float));
  pb_tanh_bwd(n->dpre, n->pooled, n->dpooled, (size_t)B * d);
  memset(n->dx, 0, (size_t)B * d * sizeof(float));
  pb_matmul_bwd(n->dx, pb_g(m, m->pool_w), pb_g(m, m->pool_b), n->dpre, n->x, pb_w(m, m->pool_w), B, d, d);
  pb_opc_set_owner(prev);
  if (dl != dlog) free(dl);
  for (int b = 0; b < B; b++) {
    float *o = dout + (size_t)b * T * d;
    const float *g = n->dx + (size_t)b * d;
    for (int k = 0; k < d; k++) o[k] += g[k];
  }
  return PB_OK;
}
