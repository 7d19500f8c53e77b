/* The shared BERT encoder: parameter declaration, memory, forward and backward.
 * One readable line of data flow per sub-step; every kernel is a free function of ops.h.
 * Work is charged to the op counter owners: backbone, head (pooler + classifier + loss) and
 * method (everything a hook computes). */
#include "backbone/bert.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "backbone/ops.h"
#include "backbone/status.h"
#include "counters/opcount.h"

void pb_config_bert_base(pb_config *c, int num_labels) {
  c->vocab_size = 30522;
  c->hidden = 768;
  c->layers = 12;
  c->heads = 12;
  c->ffn = 3072;
  c->max_pos = 512;
  c->type_vocab = 2;
  c->ln_eps = 1e-12f;
  c->hidden_dropout = 0.1f;
  c->attn_dropout = 0.1f;
  c->init_range = 0.02f;
  c->num_labels = num_labels;
}

void pb_config_default(pb_config *c, int num_labels) {
  pb_config_bert_base(c, num_labels);
  c->hidden = 256;
  c->layers = 4;
  c->heads = 4;
  c->ffn = 1024;
}

int pb_config_validate(const pb_config *c, const char *what) {
  if (c->vocab_size <= 0 || c->hidden <= 0 || c->layers <= 0 || c->heads <= 0 || c->ffn <= 0 ||
      c->max_pos <= 0 || c->type_vocab <= 0 || c->num_labels <= 0)
    return pb_set_error(PB_ERR_ARG, "%s: sizes must be positive (V=%d d=%d L=%d A=%d F=%d P=%d types=%d C=%d)",
                        what, c->vocab_size, c->hidden, c->layers, c->heads, c->ffn, c->max_pos, c->type_vocab,
                        c->num_labels);
  if (c->hidden % c->heads != 0)
    return pb_set_error(PB_ERR_ARG, "%s: hidden size %d is not divisible by %d heads", what, c->hidden, c->heads);
  if (!(c->ln_eps > 0) || c->hidden_dropout < 0 || c->hidden_dropout >= 1 || c->attn_dropout < 0 ||
      c->attn_dropout >= 1)
    return pb_set_error(PB_ERR_ARG, "%s: layer_norm_eps must be > 0 and dropout in [0, 1)", what);
  return PB_OK;
}

/* ---------------------------------------------------------------- declaration */

static int add(pb_model *m, const char *name, pb_owner owner, int d0, int d1, pb_init_kind init, float a) {
  int shape[2] = {d0, d1};
  return pb_params_add(&m->params, name, owner, d1 > 0 ? 2 : 1, shape, init, a);
}

#define ADD_OR_FAIL(dst, ...)         \
  do {                                \
    int _r = add(m, __VA_ARGS__);     \
    if (_r < 0) return _r;            \
    (dst) = _r;                       \
  } while (0)

int pb_model_declare(pb_model *m, const pb_config *cfg) {
  int rc = pb_config_validate(cfg, "model config");
  if (rc) return rc;
  memset(m, 0, sizeof *m);
  m->cfg = *cfg;
  const int V = cfg->vocab_size, d = cfg->hidden, F = cfg->ffn, P = cfg->max_pos, C = cfg->num_labels;
  const float s = cfg->init_range;
  m->layer = calloc((size_t)cfg->layers, sizeof *m->layer);
  if (!m->layer) return pb_set_error(PB_ERR_NOMEM, "model: out of memory");
  ADD_OR_FAIL(m->word, "bert.embeddings.word_embeddings.weight", PB_OWNER_BACKBONE, V, d, PB_INIT_NORMAL, s);
  ADD_OR_FAIL(m->pos, "bert.embeddings.position_embeddings.weight", PB_OWNER_BACKBONE, P, d, PB_INIT_NORMAL, s);
  ADD_OR_FAIL(m->type, "bert.embeddings.token_type_embeddings.weight", PB_OWNER_BACKBONE, cfg->type_vocab, d,
              PB_INIT_NORMAL, s);
  ADD_OR_FAIL(m->emb_lnw, "bert.embeddings.LayerNorm.weight", PB_OWNER_BACKBONE, d, 0, PB_INIT_ONE, 0);
  ADD_OR_FAIL(m->emb_lnb, "bert.embeddings.LayerNorm.bias", PB_OWNER_BACKBONE, d, 0, PB_INIT_ZERO, 0);
  char n[PB_NAME_MAX];
#define LNAME(suffix) (snprintf(n, sizeof n, "bert.encoder.layer.%d.%s", l, suffix), n)
  for (int l = 0; l < cfg->layers; l++) {
    pb_layer_idx *x = &m->layer[l];
    ADD_OR_FAIL(x->qw, LNAME("attention.self.query.weight"), PB_OWNER_BACKBONE, d, d, PB_INIT_NORMAL, s);
    ADD_OR_FAIL(x->qb, LNAME("attention.self.query.bias"), PB_OWNER_BACKBONE, d, 0, PB_INIT_ZERO, 0);
    ADD_OR_FAIL(x->kw, LNAME("attention.self.key.weight"), PB_OWNER_BACKBONE, d, d, PB_INIT_NORMAL, s);
    ADD_OR_FAIL(x->kb, LNAME("attention.self.key.bias"), PB_OWNER_BACKBONE, d, 0, PB_INIT_ZERO, 0);
    ADD_OR_FAIL(x->vw, LNAME("attention.self.value.weight"), PB_OWNER_BACKBONE, d, d, PB_INIT_NORMAL, s);
    ADD_OR_FAIL(x->vb, LNAME("attention.self.value.bias"), PB_OWNER_BACKBONE, d, 0, PB_INIT_ZERO, 0);
    ADD_OR_FAIL(x->ow, LNAME("attention.output.dense.weight"), PB_OWNER_BACKBONE, d, d, PB_INIT_NORMAL, s);
    ADD_OR_FAIL(x->ob, LNAME("attention.output.dense.bias"), PB_OWNER_BACKBONE, d, 0, PB_INIT_ZERO, 0);
    ADD_OR_FAIL(x->ln1w, LNAME("attention.output.LayerNorm.weight"), PB_OWNER_BACKBONE, d, 0, PB_INIT_ONE, 0);
    ADD_OR_FAIL(x->ln1b, LNAME("attention.output.LayerNorm.bias"), PB_OWNER_BACKBONE, d, 0, PB_INIT_ZERO, 0);
    ADD_OR_FAIL(x->iw, LNAME("intermediate.dense.weight"), PB_OWNER_BACKBONE, F, d, PB_INIT_NORMAL, s);
    ADD_OR_FAIL(x->ib, LNAME("intermediate.dense.bias"), PB_OWNER_BACKBONE, F, 0, PB_INIT_ZERO, 0);
    ADD_OR_FAIL(x->fw, LNAME("output.dense.weight"), PB_OWNER_BACKBONE, d, F, PB_INIT_NORMAL, s);
    ADD_OR_FAIL(x->fb, LNAME("output.dense.bias"), PB_OWNER_BACKBONE, d, 0, PB_INIT_ZERO, 0);
    ADD_OR_FAIL(x->ln2w, LNAME("output.LayerNorm.weight"), PB_OWNER_BACKBONE, d, 0, PB_INIT_ONE, 0);
    ADD_OR_FAIL(x->ln2b, LNAME("output.LayerNorm.bias"), PB_OWNER_BACKBONE, d, 0, PB_INIT_ZERO, 0);
  }
#undef LNAME
  ADD_OR_FAIL(m->pool_w, "bert.pooler.dense.weight", PB_OWNER_BACKBONE, d, d, PB_INIT_NORMAL, s);
  ADD_OR_FAIL(m->pool_b, "bert.pooler.dense.bias", PB_OWNER_BACKBONE, d, 0, PB_INIT_ZERO, 0);
  ADD_OR_FAIL(m->cls_w, "classifier.weight", PB_OWNER_HEAD, C, d, PB_INIT_NORMAL, s);
  ADD_OR_FAIL(m->cls_b, "classifier.bias", PB_OWNER_HEAD, C, 0, PB_INIT_ZERO, 0);
  /* the head is always trained and stored; backbone tensors are frozen until a method says so */
  m->params.t[m->cls_w].trainable = m->params.t[m->cls_b].trainable = 1;
  /* HF convention: no weight decay on LayerNorm weights (1-D anyway) */
  return PB_OK;
}

void pb_model_set_hooks(pb_model *m, const pb_hook_ops *ops, void *ctx) {
  m->hooks = ops;
  m->hook_ctx = ctx;
}

/* ---------------------------------------------------------------- memory */

static int has_layer_hook(const pb_model *m) { return m->hooks && m->hooks->layer_fwd; }

/* Lays out (or sizes, when base == NULL) the activation block; returns the float count.
 * share (inference only, no hooks): layers l >= 2 reuse the buffers of layer l % 2 (layer l
 * reads only layer l-1's output, which lives in the other set) and no backward scratch is laid
 * out except dbuf[0]. */
static size_t layout_acts(pb_model *m, float *base, int B, int T, int share) {
  const pb_config *c = &m->cfg;
  const size_t N = (size_t)B * T, d = c->hidden, F = c->ffn, S = (size_t)B * c->heads * T * T;
  size_t off = 0;
#define TAKE(ptr, count)                      \
  do {                                        \
    if (base) (ptr) = base + off;             \
    off += ((size_t)(count) + 15) & ~(size_t)15; \
  } while (0)
  pb_acts *a = &m->acts;
  TAKE(a->emb_sum, N * d);
  TAKE(a->emb_mean, N);
  TAKE(a->emb_rstd, N);
  TAKE(a->emb_ln, N * d);
  TAKE(a->h0, N * d);
  for (int l = 0; l < c->layers; l++) {
    if (share && l >= 2) {
      if (base) a->layer[l] = a->layer[l % 2];
      continue;
    }
    pb_layer_acts *x = base ? &a->layer[l] : &(pb_layer_acts){0};
    TAKE(x->q, N * d);
    TAKE(x->k, N * d);
    TAKE(x->v, N * d);
    TAKE(x->probs, S);
    TAKE(x->ctx, N * d);
    TAKE(x->attn_o, N * d);
    TAKE(x->ln1_in, N * d);
    TAKE(x->ln1_mean, N);
    TAKE(x->ln1_rstd, N);
    TAKE(x->ln1, N * d);
    TAKE(x->ffn_pre, N * F);
    TAKE(x->ffn_act, N * F);
    TAKE(x->ffn_o, N * d);
    TAKE(x->ln2_in, N * d);
    TAKE(x->ln2_mean, N);
    TAKE(x->ln2_rstd, N);
    TAKE(x->ln2, N * d);
    if (has_layer_hook(m)) TAKE(x->out, N * d);
    else if (base) x->out = x->ln2;
  }
  TAKE(a->cls, (size_t)B * d);
  TAKE(a->pooled, (size_t)B * d);
  TAKE(a->pooled_drop, (size_t)B * d);
  TAKE(a->logits, (size_t)B * c->num_labels);
  TAKE(a->probs, (size_t)B * c->num_labels);
  TAKE(a->dbuf[0], N * d); /* also the forward's sublayer-hook scratch */
  if (share) {
    if (base) {
      for (int i = 1; i < PB_NDBUF; i++) a->dbuf[i] = NULL;
      a->dbuf_f[0] = a->dbuf_f[1] = a->dscratch = a->dsmall = NULL;
    }
    return off;
  }
  for (int i = 1; i < PB_NDBUF; i++) TAKE(a->dbuf[i], N * d);
  TAKE(a->dbuf_f[0], N * F);
  TAKE(a->dbuf_f[1], N * F);
  TAKE(a->dscratch, S);
  TAKE(a->dsmall, 4 * (size_t)B * d + (size_t)B * c->num_labels);
#undef TAKE
  return off;
}

/* activations (and the method's block) for B x T; reserved: address space only (counting-only
 * runs, see pb_model_count), else real, zeroed memory replacing the previous block */
static int acts_alloc(pb_model *m, int B, int T, int infer, int reserved) {
  int rc;
  size_t hook_floats = 0;
  if (m->hooks && m->hooks->reserve && (rc = m->hooks->reserve(m->hook_ctx, B, T, NULL, &hook_floats)))
    return rc;
  if (!m->acts.layer) {
    m->acts.layer = calloc((size_t)m->cfg.layers, sizeof *m->acts.layer);
    if (!m->acts.layer) return pb_set_error(PB_ERR_NOMEM, "model: out of memory");
  }
  const int share = infer && !m->hooks;
  size_t n = layout_acts(m, NULL, B, T, share) + hook_floats;
  if (reserved) {
    if (!(m->act_mem = pb_reserve_floats(n)))
      return pb_set_error(PB_ERR_NOMEM, "count: cannot reserve %zu MB of address space for batch %d x %d",
                          n * sizeof(float) >> 20, B, T);
  } else {
    free(m->act_mem);
    m->act_mem = NULL;
    if (posix_memalign((void **)&m->act_mem, 64, n * sizeof(float)) != 0)
      return pb_set_error(PB_ERR_NOMEM, "model: cannot allocate %zu MB of activations for batch %d x %d",
                          n * sizeof(float) >> 20, B, T);
    memset(m->act_mem, 0, n * sizeof(float));
  }
  m->act_floats = n;
  layout_acts(m, m->act_mem, B, T, share);
  m->infer_only = share;
  m->hook_acts = hook_floats ? m->act_mem + (n - hook_floats) : NULL;
  if (m->hooks && m->hooks->reserve && (rc = m->hooks->reserve(m->hook_ctx, B, T, m->hook_acts, &hook_floats)))
    return rc;
  free(m->zero_types);
  m->zero_types = calloc((size_t)B * T, sizeof(int));
  if (!m->zero_types) return pb_set_error(PB_ERR_NOMEM, "model: out of memory");
  m->B = B;
  m->T = T;
  return PB_OK;
}

static int model_alloc(pb_model *m, int B, int T, int infer) {
  if (B <= 0 || T <= 0) return pb_set_error(PB_ERR_ARG, "model: batch %d x %d must be positive", B, T);
  if (T > m->cfg.max_pos)
    return pb_set_error(PB_ERR_ARG, "model: sequence length %d exceeds max_position_embeddings %d", T,
                        m->cfg.max_pos);
  int rc;
  if (!m->params.frozen_mem && (rc = pb_params_alloc(&m->params))) return rc;
  return acts_alloc(m, B, T, infer, 0);
}

int pb_model_alloc(pb_model *m, int B, int T) { return model_alloc(m, B, T, 0); }
int pb_model_alloc_infer(pb_model *m, int B, int T) { return model_alloc(m, B, T, 1); }

void pb_model_free(pb_model *m) {
  pb_params_free(&m->params);
  free(m->layer);
  free(m->acts.layer);
  free(m->act_mem);
  free(m->zero_types);
  memset(m, 0, sizeof *m);
}

void pb_model_init_random(pb_model *m, uint64_t seed) {
  pb_rng r;
  pb_rng_seed(&r, seed);
  pb_params_init(&m->params, &r);
}

/* ---------------------------------------------------------------- forward */

int pb_model_prepare(pb_model *m, int training) {
  if (!m->hooks || !m->hooks->set_mode) return PB_OK;
  if (!m->act_mem) return pb_set_error(PB_ERR_ARG, "prepare: the model has no activations (pb_model_alloc first)");
  int prev = pb_opc_set_owner(PB_OPO_METHOD);
  int rc = m->hooks->set_mode(m->hook_ctx, training, 0);
  pb_opc_set_owner(prev);
  return rc;
}

/* Data movement outside the kernels (zeroing, copies): skipped in counting-only mode, where
 * nothing is computed and the buffers may be reserved address space (pb_model_count). */
static inline void zero_(void *p, size_t bytes) {
  if (!pb_opc_counting()) memset(p, 0, bytes);
}
static inline void copy_(void *dst, const void *src, size_t bytes) {
  if (!pb_opc_counting()) memcpy(dst, src, bytes);
}

/* dropout seed of one site: (step seed, layer, site) -> independent stream */
static uint64_t site_seed(const pb_model *m, int layer, int site) {
  return pb_hash64(m->seed ^ pb_hash64(((uint64_t)(layer + 1) << 8) | (uint64_t)site));
}
enum { SITE_EMB = 0, SITE_ATTN_PROBS, SITE_ATTN_OUT, SITE_FFN_OUT, SITE_POOLED };

#define HOOK(call)                                   \
  do {                                               \
    int _prev = pb_opc_set_owner(PB_OPO_METHOD);     \
    int _r = (call);                                 \
    pb_opc_set_owner(_prev);                         \
    if (_r) return _r;                               \
  } while (0)

/* y = x W^T + b, then the linear hook of (l, site) */
static int linear_fwd(pb_model *m, int l, int site, float *y, const float *x, int wi, int bi, int N, int in,
                      int out) {
  pb_matmul_fwd(y, x, pb_w(m, wi), pb_w(m, bi), N, in, out);
  if (m->hooks && m->hooks->linear_fwd) HOOK(m->hooks->linear_fwd(m->hook_ctx, l, site, x, y, N, in, out));
  return PB_OK;
}

/* ln_in = resid + sublayer(x); x is the sublayer output after dropout */
static int sublayer_residual(pb_model *m, int l, int site, float *ln_in, const float *resid, const float *x,
                             float *tmp, int N, int d) {
  const float *y = x;
  if (m->hooks && m->hooks->sublayer_fwd) {
    HOOK(m->hooks->sublayer_fwd(m->hook_ctx, l, site, x, tmp, N, d));
    y = tmp;
  }
  pb_add(ln_in, resid, y, (size_t)N * d);
  return PB_OK;
}

static int layer_forward(pb_model *m, int l, const float *hprev, int B, int T) {
  const pb_config *c = &m->cfg;
  const int N = B * T, d = c->hidden, F = c->ffn;
  const float ph = m->training ? c->hidden_dropout : 0.0f, pa = m->training ? c->attn_dropout : 0.0f;
  const pb_layer_idx *w = &m->layer[l];
  pb_layer_acts *a = &m->acts.layer[l];
  float *tmp = m->acts.dbuf[0]; /* backward scratch is free during forward */
  int rc;
  /* self-attention */
  if ((rc = linear_fwd(m, l, PB_LIN_QUERY, a->q, hprev, w->qw, w->qb, N, d, d))) return rc;
  if ((rc = linear_fwd(m, l, PB_LIN_KEY, a->k, hprev, w->kw, w->kb, N, d, d))) return rc;
  if ((rc = linear_fwd(m, l, PB_LIN_VALUE, a->v, hprev, w->vw, w->vb, N, d, d))) return rc;
  pb_attention_fwd(a->ctx, a->probs, a->q, a->k, a->v, m->mask, B, T, d, c->heads, pa,
                   site_seed(m, l, SITE_ATTN_PROBS));
  if ((rc = linear_fwd(m, l, PB_LIN_ATTN_OUT, a->attn_o, a->ctx, w->ow, w->ob, N, d, d))) return rc;
  pb_dropout_fwd(a->attn_o, a->attn_o, (size_t)N * d, ph, site_seed(m, l, SITE_ATTN_OUT));
  if ((rc = sublayer_residual(m, l, PB_SUB_ATTN, a->ln1_in, hprev, a->attn_o, tmp, N, d))) return rc;
  pb_layernorm_fwd(a->ln1, a->ln1_mean, a->ln1_rstd, a->ln1_in, pb_w(m, w->ln1w), pb_w(m, w->ln1b), N, d, c->ln_eps);
  /* feed-forward */
  if ((rc = linear_fwd(m, l, PB_LIN_FFN_IN, a->ffn_pre, a->ln1, w->iw, w->ib, N, d, F))) return rc;
  pb_gelu_fwd(a->ffn_act, a->ffn_pre, (size_t)N * F);
  if ((rc = linear_fwd(m, l, PB_LIN_FFN_OUT, a->ffn_o, a->ffn_act, w->fw, w->fb, N, F, d))) return rc;
  pb_dropout_fwd(a->ffn_o, a->ffn_o, (size_t)N * d, ph, site_seed(m, l, SITE_FFN_OUT));
  if ((rc = sublayer_residual(m, l, PB_SUB_FFN, a->ln2_in, a->ln1, a->ffn_o, tmp, N, d))) return rc;
  pb_layernorm_fwd(a->ln2, a->ln2_mean, a->ln2_rstd, a->ln2_in, pb_w(m, w->ln2w), pb_w(m, w->ln2b), N, d, c->ln_eps);
  /* connector between layer l's input and output */
  if (has_layer_hook(m)) {
    copy_(a->out, a->ln2, (size_t)N * d * sizeof(float));
    HOOK(m->hooks->layer_fwd(m->hook_ctx, l, hprev, a->out, B, T, d));
  }
  return PB_OK;
}

static int check_inputs(const pb_model *m, const int *ids, const int *types, const int *mask, int B, int T) {
  const pb_config *c = &m->cfg;
  for (int i = 0; i < B * T; i++) {
    if (ids[i] < 0 || ids[i] >= c->vocab_size)
      return pb_set_error(PB_ERR_ARG, "forward: token id %d at position %d outside vocabulary of %d", ids[i], i,
                          c->vocab_size);
    if (types && (types[i] < 0 || types[i] >= c->type_vocab))
      return pb_set_error(PB_ERR_ARG, "forward: token type %d at position %d outside 0..%d", types[i], i,
                          c->type_vocab - 1);
  }
  if (mask)
    for (int b = 0; b < B; b++)
      if (!mask[b * T]) return pb_set_error(PB_ERR_ARG, "forward: row %d has a padded first ([CLS]) position", b);
  return PB_OK;
}

int pb_forward(pb_model *m, const int *ids, const int *types, const int *mask, int B, int T, const int *labels,
               const float *targets, int training, uint64_t seed, float *loss) {
  const pb_config *c = &m->cfg;
  if (!m->act_mem || B > m->B || T > m->T)
    return pb_set_error(PB_ERR_ARG, "forward: batch %d x %d exceeds the allocated %d x %d", B, T, m->B, m->T);
  int rc = check_inputs(m, ids, types, mask, B, T);
  if (rc) return rc;
  if (c->num_labels > 1 && labels)
    for (int b = 0; b < B; b++)
      if (labels[b] < 0 || labels[b] >= c->num_labels)
        return pb_set_error(PB_ERR_ARG, "forward: label %d of row %d outside 0..%d", labels[b], b, c->num_labels - 1);
  m->cur_B = B;
  m->cur_T = T;
  m->ids = ids;
  m->types = types;
  m->mask = mask;
  m->labels = c->num_labels > 1 ? labels : NULL;
  m->targets = c->num_labels == 1 ? targets : NULL;
  m->training = training;
  m->seed = seed;
  if (m->hooks && m->hooks->set_mode) HOOK(m->hooks->set_mode(m->hook_ctx, training, seed));

  const int N = B * T, d = c->hidden, C = c->num_labels;
  const float ph = training ? c->hidden_dropout : 0.0f;
  int prev_owner = pb_opc_set_owner(PB_OPO_BACKBONE);
  pb_acts *a = &m->acts;
  if (!types) m->types = types = m->zero_types; /* no token types: all 0 */
  pb_embed_fwd(a->emb_sum, ids, types, pb_w(m, m->word), pb_w(m, m->pos), pb_w(m, m->type), B, T, d);
  pb_layernorm_fwd(a->emb_ln, a->emb_mean, a->emb_rstd, a->emb_sum, pb_w(m, m->emb_lnw), pb_w(m, m->emb_lnb), N, d,
                   c->ln_eps);
  pb_dropout_fwd(a->h0, a->emb_ln, (size_t)N * d, ph, site_seed(m, -1, SITE_EMB));
  /* encoder */
  const float *h = a->h0;
  for (int l = 0; l < c->layers; l++) {
    if ((rc = layer_forward(m, l, h, B, T))) {
      pb_opc_set_owner(prev_owner);
      return rc;
    }
    h = a->layer[l].out;
  }
  /* head: pooler on [CLS], dropout, classifier, loss */
  pb_opc_set_owner(PB_OPO_HEAD);
  for (int b = 0; b < B; b++) copy_(a->cls + (size_t)b * d, h + (size_t)b * T * d, (size_t)d * sizeof(float));
  pb_matmul_fwd(a->pooled, a->cls, pb_w(m, m->pool_w), pb_w(m, m->pool_b), B, d, d);
  pb_tanh_fwd(a->pooled, a->pooled, (size_t)B * d);
  pb_dropout_fwd(a->pooled_drop, a->pooled, (size_t)B * d, ph, site_seed(m, -1, SITE_POOLED));
  pb_matmul_fwd(a->logits, a->pooled_drop, pb_w(m, m->cls_w), pb_w(m, m->cls_b), B, d, C);
  m->loss = 0.0f;
  if (m->labels) m->loss = pb_softmax_ce_fwd(a->probs, a->logits, m->labels, B, C);
  else if (m->targets) m->loss = pb_mse_fwd(a->logits, m->targets, B);
  pb_opc_set_owner(prev_owner);
  if (loss) *loss = m->loss;
  if ((m->labels || m->targets) && !isfinite(m->loss))
    return pb_set_error(PB_ERR_NUMERIC, "forward: loss is %f (diverged)", (double)m->loss);
  return PB_OK;
}

/* ---------------------------------------------------------------- backward */

static int is_trainable(const pb_model *m, int idx) { return m->params.t[idx].trainable; }

/* dx += dy W ; dW += dy^T x ; db += sum dy (only for trainable W/b); then the hook's backward */
static int linear_bwd(pb_model *m, int l, int site, float *dx, const float *dy, const float *x, int wi, int bi,
                      int N, int in, int out) {
  pb_matmul_bwd(dx, pb_g(m, wi), pb_g(m, bi), dy, x, pb_w(m, wi), N, in, out);
  if (m->hooks && m->hooks->linear_bwd) HOOK(m->hooks->linear_bwd(m->hook_ctx, l, site, x, dy, dx, N, in, out));
  return PB_OK;
}

/* from d(ln_in): dresid += d(ln_in); d(x) = sublayer^T d(ln_in), then through dropout into dpre (=) */
static int sublayer_residual_bwd(pb_model *m, int l, int site, float *dresid, float *dpre, float *tmp,
                                 const float *dln_in, const float *x, int N, int d, float p, uint64_t seed) {
  const size_t n = (size_t)N * d;
  pb_add(dresid, dresid, dln_in, n);
  const float *dx = dln_in;
  if (m->hooks && m->hooks->sublayer_bwd) {
    zero_(tmp, n * sizeof(float));
    HOOK(m->hooks->sublayer_bwd(m->hook_ctx, l, site, x, dln_in, tmp, N, d));
    dx = tmp;
  }
  zero_(dpre, n * sizeof(float));
  pb_dropout_bwd(dpre, dx, n, p, seed);
  return PB_OK;
}

/* dh: gradient wrt layer l's output (consumed); dprev: gradient wrt its input (written) */
static int layer_backward(pb_model *m, int l, const float *hprev, const float *dh, float *dprev, int B, int T) {
  const pb_config *c = &m->cfg;
  const int N = B * T, d = c->hidden, F = c->ffn;
  const size_t nd = (size_t)N * d, nf = (size_t)N * F;
  const float ph = m->training ? c->hidden_dropout : 0.0f, pa = m->training ? c->attn_dropout : 0.0f;
  const pb_layer_idx *w = &m->layer[l];
  pb_layer_acts *a = &m->acts.layer[l];
  float **buf = m->acts.dbuf; /* 0,1 hold dh/dprev of the caller */
  float *dln2_in = buf[2], *dln1 = buf[3], *dffn_o = buf[4], *tmp = buf[5], *dln1_in = buf[6];
  float *dattn_o = buf[7], *dctx = buf[8], *dqkv = buf[9];
  float *dffn_act = m->acts.dbuf_f[0], *dffn_pre = m->acts.dbuf_f[1];
  int rc;
  zero_(dprev, nd * sizeof(float));
  if (has_layer_hook(m)) HOOK(m->hooks->layer_bwd(m->hook_ctx, l, hprev, dh, dprev, B, T, d));
  /* LN2 <- out */
  zero_(dln2_in, nd * sizeof(float));
  pb_layernorm_bwd(dln2_in, pb_g(m, w->ln2w), pb_g(m, w->ln2b), dh, a->ln2_in, pb_w(m, w->ln2w), a->ln2_mean,
                   a->ln2_rstd, N, d);
  /* ffn sublayer: ln2_in = ln1 + sub(dropout(ffn_o)) */
  zero_(dln1, nd * sizeof(float));
  if ((rc = sublayer_residual_bwd(m, l, PB_SUB_FFN, dln1, dffn_o, tmp, dln2_in, a->ffn_o, N, d, ph,
                                  site_seed(m, l, SITE_FFN_OUT))))
    return rc;
  zero_(dffn_act, nf * sizeof(float));
  if ((rc = linear_bwd(m, l, PB_LIN_FFN_OUT, dffn_act, dffn_o, a->ffn_act, w->fw, w->fb, N, F, d))) return rc;
  zero_(dffn_pre, nf * sizeof(float));
  pb_gelu_bwd(dffn_pre, a->ffn_pre, dffn_act, nf);
  if ((rc = linear_bwd(m, l, PB_LIN_FFN_IN, dln1, dffn_pre, a->ln1, w->iw, w->ib, N, d, F))) return rc;
  /* LN1 */
  zero_(dln1_in, nd * sizeof(float));
  pb_layernorm_bwd(dln1_in, pb_g(m, w->ln1w), pb_g(m, w->ln1b), dln1, a->ln1_in, pb_w(m, w->ln1w), a->ln1_mean,
                   a->ln1_rstd, N, d);
  /* attention sublayer: ln1_in = hprev + sub(dropout(attn_o)) */
  if ((rc = sublayer_residual_bwd(m, l, PB_SUB_ATTN, dprev, dattn_o, tmp, dln1_in, a->attn_o, N, d, ph,
                                  site_seed(m, l, SITE_ATTN_OUT))))
    return rc;
  zero_(dctx, nd * sizeof(float));
  if ((rc = linear_bwd(m, l, PB_LIN_ATTN_OUT, dctx, dattn_o, a->ctx, w->ow, w->ob, N, d, d))) return rc;
  /* attention core: dq, dk, dv one after another in dqkv to keep scratch small */
  float *dq = dqkv, *dk = tmp, *dv = dln2_in; /* dln2_in and tmp are dead now */
  zero_(dq, nd * sizeof(float));
  zero_(dk, nd * sizeof(float));
  zero_(dv, nd * sizeof(float));
  pb_attention_bwd(dq, dk, dv, m->acts.dscratch, dctx, a->q, a->k, a->v, a->probs, B, T, d, c->heads, pa,
                   site_seed(m, l, SITE_ATTN_PROBS));
  if ((rc = linear_bwd(m, l, PB_LIN_QUERY, dprev, dq, hprev, w->qw, w->qb, N, d, d))) return rc;
  if ((rc = linear_bwd(m, l, PB_LIN_KEY, dprev, dk, hprev, w->kw, w->kb, N, d, d))) return rc;
  if ((rc = linear_bwd(m, l, PB_LIN_VALUE, dprev, dv, hprev, w->vw, w->vb, N, d, d))) return rc;
  return PB_OK;
}

/* from the gradient wrt the last layer's output in dbuf[0] down to the embeddings */
static int backward_encoder(pb_model *m) {
  const pb_config *c = &m->cfg;
  const int B = m->cur_B, T = m->cur_T, N = B * T, d = c->hidden;
  const float ph = m->training ? c->hidden_dropout : 0.0f;
  pb_acts *a = &m->acts;
  float *dh = a->dbuf[0], *dprev = a->dbuf[1];
  for (int l = c->layers - 1; l >= 0; l--) {
    const float *hprev = l > 0 ? a->layer[l - 1].out : a->h0;
    int rc = layer_backward(m, l, hprev, dh, dprev, B, T);
    if (rc) return rc;
    float *t = dh;
    dh = dprev;
    dprev = t;
  }
  /* embeddings: only when one of their tensors trains */
  int emb_train = is_trainable(m, m->word) || is_trainable(m, m->pos) || is_trainable(m, m->type);
  if (emb_train || is_trainable(m, m->emb_lnw) || is_trainable(m, m->emb_lnb)) {
    float *demb_ln = dprev, *demb_sum = a->dbuf[2];
    zero_(demb_ln, (size_t)N * d * sizeof(float));
    pb_dropout_bwd(demb_ln, dh, (size_t)N * d, ph, site_seed(m, -1, SITE_EMB));
    if (emb_train) zero_(demb_sum, (size_t)N * d * sizeof(float));
    pb_layernorm_bwd(emb_train ? demb_sum : NULL, pb_g(m, m->emb_lnw), pb_g(m, m->emb_lnb), demb_ln, a->emb_sum,
                     pb_w(m, m->emb_lnw), a->emb_mean, a->emb_rstd, N, d);
    if (emb_train)
      pb_embed_bwd(pb_g(m, m->word), pb_g(m, m->pos), pb_g(m, m->type), demb_sum, m->ids, m->types, B, T, d);
  }
  return PB_OK;
}

int pb_backward(pb_model *m) {
  const pb_config *c = &m->cfg;
  if (m->infer_only) return pb_set_error(PB_ERR_ARG, "backward: the model was allocated for inference only");
  if (!m->labels && !m->targets) return pb_set_error(PB_ERR_ARG, "backward: the last forward had no labels");
  const int B = m->cur_B, T = m->cur_T, N = B * T, d = c->hidden, C = c->num_labels;
  const float ph = m->training ? c->hidden_dropout : 0.0f;
  pb_acts *a = &m->acts;
  int prev_owner = pb_opc_set_owner(PB_OPO_HEAD);
  /* head */
  float *dlogits = a->dsmall, *dpooled_drop = dlogits + (size_t)B * C, *dpooled = dpooled_drop + (size_t)B * d;
  float *dpool_pre = dpooled + (size_t)B * d, *dcls = dpool_pre + (size_t)B * d;
  zero_(a->dsmall, (4 * (size_t)B * d + (size_t)B * C) * sizeof(float));
  if (m->labels) pb_softmax_ce_bwd(dlogits, a->probs, m->labels, B, C);
  else pb_mse_bwd(dlogits, a->logits, m->targets, B);
  pb_matmul_bwd(dpooled_drop, pb_g(m, m->cls_w), pb_g(m, m->cls_b), dlogits, a->pooled_drop, pb_w(m, m->cls_w), B,
                d, C);
  pb_dropout_bwd(dpooled, dpooled_drop, (size_t)B * d, ph, site_seed(m, -1, SITE_POOLED));
  pb_tanh_bwd(dpool_pre, a->pooled, dpooled, (size_t)B * d);
  pb_matmul_bwd(dcls, pb_g(m, m->pool_w), pb_g(m, m->pool_b), dpool_pre, a->cls, pb_w(m, m->pool_w), B, d, d);
  /* back into the residual stream at the [CLS] rows */
  pb_opc_set_owner(PB_OPO_BACKBONE);
  float *dh = a->dbuf[0];
  zero_(dh, (size_t)N * d * sizeof(float));
  for (int b = 0; b < B; b++) copy_(dh + (size_t)b * T * d, dcls + (size_t)b * d, (size_t)d * sizeof(float));
  int rc = backward_encoder(m);
  pb_opc_set_owner(prev_owner);
  return rc;
}

int pb_backward_hidden(pb_model *m, const float *dout) {
  const size_t n = (size_t)m->cur_B * m->cur_T * m->cfg.hidden;
  if (!m->act_mem || n == 0) return pb_set_error(PB_ERR_ARG, "backward: no forward to go back through");
  if (m->infer_only) return pb_set_error(PB_ERR_ARG, "backward: the model was allocated for inference only");
  copy_(m->acts.dbuf[0], dout, n * sizeof(float));
  int prev_owner = pb_opc_set_owner(PB_OPO_BACKBONE);
  int rc = backward_encoder(m);
  pb_opc_set_owner(prev_owner);
  return rc;
}

/* ---------------------------------------------------------------- op count by execution */

int pb_model_count(pb_model *m, int B, int T, int flags, pb_opcounts *out) {
  const pb_config *c = &m->cfg;
  if (B <= 0 || T <= 0) return pb_set_error(PB_ERR_ARG, "count: batch %d x %d must be positive", B, T);
  if (T > c->max_pos)
    return pb_set_error(PB_ERR_ARG, "count: sequence length %d exceeds max_position_embeddings %d", T, c->max_pos);
  if (pb_opc_counting()) return pb_set_error(PB_ERR_ARG, "count: already inside a counting-only run");
  const int training = (flags & PB_COUNT_TRAIN) != 0, C = c->num_labels;
  const pb_model saved = *m; /* every field the run changes comes back from here */
  const int own_params = !m->params.frozen_mem;
  int *ids = calloc((size_t)B * T + (size_t)B, sizeof(int)), *labels = ids ? ids + (size_t)B * T : NULL;
  float *targets = calloc((size_t)B, sizeof(float));
  pb_layer_acts *layers = calloc((size_t)c->layers, sizeof *layers);
  int rc = ids && targets && layers ? PB_OK : pb_set_error(PB_ERR_NOMEM, "count: out of memory");
  m->acts.layer = layers;
  m->act_mem = NULL;
  m->zero_types = NULL;
  if (!rc && own_params) rc = pb_params_alloc_count(&m->params);
  if (!rc) rc = acts_alloc(m, B, T, 0, 1);
  if (!rc) {
    pb_opcounter prev;
    pb_opc_count_begin(&prev);
    rc = pb_forward(m, ids, NULL, NULL, B, T, training && C > 1 ? labels : NULL,
                    training && C == 1 ? targets : NULL, training, 0, NULL);
    if (!rc && training) rc = pb_backward(m);
    if (!rc && (flags & (PB_COUNT_CLIP | PB_COUNT_ADAMW))) {
      pb_opc_set_owner(PB_OPO_OPTIM);
      if (flags & PB_COUNT_CLIP) (void)pb_params_clip_grad_norm(&m->params, 1.0, PB_CLIP_EPS_TORCH, NULL);
      if (flags & PB_COUNT_ADAMW) {
        pb_adamw o;
        pb_adamw_defaults(&o);
        rc = pb_adamw_step(&m->params, &o, 1);
      }
    }
    pb_opc_count_end(&prev, rc ? NULL : out);
  }
  pb_release_floats(m->act_mem, m->act_floats);
  free(m->zero_types);
  if (own_params) pb_params_release(&m->params);
  free(layers);
  free(ids);
  free(targets);
  *m = saved;
  /* the method's activation pointers back to the model's own block (when it has one) */
  if (m->act_mem && m->hooks && m->hooks->reserve) {
    size_t n = 0;
    int r2 = m->hooks->reserve(m->hook_ctx, m->B, m->T, m->hook_acts, &n);
    if (!rc) rc = r2;
  }
  return rc;
}

/* ---------------------------------------------------------------- fingerprint */

static uint64_t fnv(uint64_t h, const void *p, size_t n) {
  const unsigned char *b = p;
  for (size_t i = 0; i < n; i++) h = (h ^ b[i]) * 0x100000001B3ULL;
  return h;
}

void pb_model_fingerprint(const pb_model *m, char out[17]) {
  uint64_t h = 0xCBF29CE484222325ULL;
  const pb_config *c = &m->cfg;
  int dims[7] = {c->vocab_size, c->hidden, c->layers, c->heads, c->ffn, c->max_pos, c->type_vocab};
  h = fnv(h, dims, sizeof dims);
  /* name, shape and a strided sample of every backbone tensor (all of it for small ones) */
  for (int i = 0; i < m->params.n; i++) {
    const pb_tensor *t = &m->params.t[i];
    if (t->owner != PB_OWNER_BACKBONE || !t->data) continue;
    h = fnv(h, t->name, strlen(t->name));
    h = fnv(h, t->shape, sizeof t->shape);
    size_t stride = t->numel > 65536 ? t->numel / 65536 : 1;
    for (size_t j = 0; j < t->numel; j += stride) h = fnv(h, &t->data[j], sizeof(float));
  }
  snprintf(out, 17, "%016llx", (unsigned long long)h);
}
