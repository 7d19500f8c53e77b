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
#include "util/status.h"
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
  m->width = malloc((size_t)cfg->layers * sizeof *m->width);
  if (!m->layer || !m->width) return pb_set_error(PB_ERR_NOMEM, "model: out of memory");
  for (int l = 0; l < cfg->layers; l++)
    m->width[l] = (pb_width){.hidden = d, .heads = cfg->heads, .ffn = F, .head_dim = d / cfg->heads};
  m->word_proj = -1;
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
  m->head = (pb_head_idx){.pool_w = m->pool_w, .pool_b = m->pool_b, .cls_w = m->cls_w, .cls_b = m->cls_b};
  /* the head is always trained and stored; backbone tensors are frozen until a method says so */
  m->params.t[m->cls_w].trainable = m->params.t[m->cls_b].trainable = 1;
  /* HF convention: no weight decay on LayerNorm weights (1-D anyway) */
  m->count_last = -1;
  return pb_model_set_plan(m, cfg->layers, NULL);
}

static int head_follows_width(pb_model *m);
static int width_changes(const pb_model *m, int l);
static int has_after_layer(const pb_model *m);

/* S' < S needs every step at one width and no early exit */
static int ode_check(const pb_model *m) {
  if (!m->ode_steps) return PB_OK;
  if (has_after_layer(m))
    return pb_set_error(PB_ERR_UNSUPPORTED, "ODE steps: %d of %d steps with an after_layer hook (early exit) attached",
                        m->ode_steps, m->steps);
  for (int l = 0; l < m->steps; l++)
    if (width_changes(m, l))
      return pb_set_error(PB_ERR_UNSUPPORTED, "ODE steps: %d of %d steps on a model whose width changes before step %d",
                          m->ode_steps, m->steps, l);
  return PB_OK;
}

int pb_model_set_ode_steps(pb_model *m, int steps) {
  if (steps < 1 || steps > m->steps)
    return pb_set_error(PB_ERR_ARG, "ODE steps: S'=%d outside 1..%d (the model's %d encoder steps)", steps, m->steps,
                        m->steps);
  const int prev = m->ode_steps;
  const float prev_h = m->ode_h;
  m->ode_steps = steps == m->steps ? 0 : steps;
  m->ode_h = (float)((double)m->steps / steps);
  int rc = ode_check(m);
  if (rc) {
    m->ode_steps = prev;
    m->ode_h = prev_h;
  }
  return rc;
}

const float *pb_model_last_hidden(const pb_model *m) {
  const int S = pb_model_run_steps(m);
  return S > 0 ? m->acts.layer[S - 1].out : m->acts.h0;
}

int pb_model_set_kd(pb_model *m, const pb_kd *kd) {
  if (!kd) {
    memset(&m->kd, 0, sizeof m->kd);
    return PB_OK;
  }
  if (!(kd->alpha >= 0.0f && kd->alpha <= 1.0f))
    return pb_set_error(PB_ERR_ARG, "distillation: alpha %g outside [0,1]", (double)kd->alpha);
  if (!(kd->tau > 0.0f)) return pb_set_error(PB_ERR_ARG, "distillation: temperature %g must be > 0", (double)kd->tau);
  if (!(kd->beta >= 0.0f)) return pb_set_error(PB_ERR_ARG, "distillation: beta %g must be >= 0", (double)kd->beta);
  if (kd->alpha > 0.0f && !kd->logits) return pb_set_error(PB_ERR_ARG, "distillation: alpha > 0 needs teacher logits");
  if (kd->beta > 0.0f && !kd->hidden) return pb_set_error(PB_ERR_ARG, "distillation: beta > 0 needs teacher hidden states");
  if (m->cfg.num_labels > 64)
    return pb_set_error(PB_ERR_ARG, "distillation: %d labels (at most 64)", m->cfg.num_labels);
  m->kd = *kd;
  return PB_OK;
}

int pb_model_set_plan(pb_model *m, int steps, const int *plan) {
  const int L = m->cfg.layers;
  if (m->act_mem || m->params.frozen_mem || m->params.train_mem || m->n_hooks)
    return pb_set_error(PB_ERR_ARG, "layer plan: set it before methods attach and before allocation");
  if (steps < 1) return pb_set_error(PB_ERR_ARG, "layer plan: %d steps (at least 1)", steps);
  if (!plan && steps != L)
    return pb_set_error(PB_ERR_ARG, "layer plan: %d steps over %d weight sets needs an explicit plan", steps, L);
  int *p = malloc((size_t)steps * sizeof *p);
  if (!p) return pb_set_error(PB_ERR_NOMEM, "layer plan: out of memory");
  for (int i = 0; i < steps; i++) {
    p[i] = plan ? plan[i] : i;
    if (p[i] < 0 || p[i] >= L) {
      free(p);
      return pb_set_error(PB_ERR_ARG, "layer plan: step %d uses weight set %d outside 0..%d", i, plan[i], L - 1);
    }
  }
  free(m->plan);
  m->plan = p;
  m->steps = steps;
  m->ode_steps = 0;
  return head_follows_width(m);
}

/* the head's tensors at the width of the last step */
static int head_follows_width(pb_model *m) {
  const int d = pb_model_step_width(m, m->steps - 1).hidden, C = m->cfg.num_labels;
  int rc, sq[2] = {d, d}, cl[2] = {C, d};
  if ((rc = pb_params_reshape(&m->params, m->pool_w, 2, sq)) || (rc = pb_params_reshape(&m->params, m->pool_b, 1, sq)) ||
      (rc = pb_params_reshape(&m->params, m->cls_w, 2, cl)))
    return rc;
  return PB_OK;
}

static int shapes_settable(const pb_model *m, const char *what) {
  if (m->act_mem || m->params.frozen_mem || m->params.train_mem || m->n_hooks)
    return pb_set_error(PB_ERR_ARG, "%s: set them before methods attach and before allocation", what);
  return PB_OK;
}

int pb_model_set_shape(pb_model *m, int set, pb_width w) {
  const int L = m->cfg.layers;
  int rc = shapes_settable(m, "weight-set shapes");
  if (rc) return rc;
  if (set < 0 || set >= L) return pb_set_error(PB_ERR_ARG, "weight-set shape: weight set %d outside 0..%d", set, L - 1);
  if (w.hidden < 1 || w.heads < 1 || w.head_dim < 1 || w.ffn < 1)
    return pb_set_error(PB_ERR_ARG,
                        "weight-set shape: set %d: hidden %d, heads %d, head_dim %d and ffn %d must all be >= 1", set,
                        w.hidden, w.heads, w.head_dim, w.ffn);
  if ((long long)w.heads * w.head_dim > 1 << 24)
    return pb_set_error(PB_ERR_ARG, "weight-set shape: set %d: %d heads x %d is too wide", set, w.heads, w.head_dim);
  const pb_layer_idx *x = &m->layer[set];
  const int d = w.hidden, a = pb_width_attn(w), F = w.ffn;
  const int ad[2] = {a, d}, da[2] = {d, a}, fd[2] = {F, d}, df[2] = {d, F};
  const int qkv[] = {x->qw, x->kw, x->vw}, qkvb[] = {x->qb, x->kb, x->vb};
  const int vec[] = {x->ob, x->ln1w, x->ln1b, x->fb, x->ln2w, x->ln2b};
  for (int i = 0; i < 3; i++)
    if ((rc = pb_params_reshape(&m->params, qkv[i], 2, ad)) || (rc = pb_params_reshape(&m->params, qkvb[i], 1, ad)))
      return rc;
  for (int i = 0; i < 6; i++)
    if ((rc = pb_params_reshape(&m->params, vec[i], 1, da))) return rc;
  if ((rc = pb_params_reshape(&m->params, x->ow, 2, da)) || (rc = pb_params_reshape(&m->params, x->iw, 2, fd)) ||
      (rc = pb_params_reshape(&m->params, x->ib, 1, fd)) || (rc = pb_params_reshape(&m->params, x->fw, 2, df)))
    return rc;
  m->width[set] = w;
  return head_follows_width(m);
}

int pb_model_set_width(pb_model *m, int first, int hidden, int heads, int ffn) {
  const int L = m->cfg.layers;
  int rc = shapes_settable(m, "width segments");
  if (rc) return rc;
  if (first < 0 || first >= L)
    return pb_set_error(PB_ERR_ARG, "width segments: first weight set %d outside 0..%d", first, L - 1);
  if (hidden < 1 || heads < 1 || ffn < 1 || hidden % heads)
    return pb_set_error(PB_ERR_ARG, "width segments: hidden %d must be positive and divisible by %d heads (ffn %d)",
                        hidden, heads, ffn);
  for (int l = first; l < L; l++)
    if ((rc = pb_model_set_shape(m, l, (pb_width){.hidden = hidden, .heads = heads, .ffn = ffn,
                                                   .head_dim = hidden / heads})))
      return rc;
  return PB_OK;
}

int pb_model_width_uniform(const pb_model *m) {
  const pb_config *c = &m->cfg;
  for (int l = 0; l < c->layers; l++) {
    const pb_width w = m->width[l];
    if (w.hidden != c->hidden || w.heads != c->heads || w.ffn != c->ffn || pb_width_attn(w) != c->hidden) return 0;
  }
  return 1;
}

int pb_model_factor_word(pb_model *m, int rank) {
  const pb_config *c = &m->cfg;
  int rc = shapes_settable(m, "factorised word embeddings");
  if (rc) return rc;
  if (rank < 1 || rank >= c->hidden || rank > c->vocab_size)
    return pb_set_error(PB_ERR_ARG, "factorised word embeddings: rank %d outside 1..%d (below hidden %d, at most V %d)",
                        rank, c->hidden - 1 < c->vocab_size ? c->hidden - 1 : c->vocab_size, c->hidden,
                        c->vocab_size);
  const int vr[2] = {c->vocab_size, rank}, dr[2] = {c->hidden, rank};
  if ((rc = pb_params_reshape(&m->params, m->word, 2, vr))) return rc;
  if (m->word_proj < 0) {
    if ((rc = add(m, "bert.embeddings.word_embeddings_proj.weight", PB_OWNER_BACKBONE, c->hidden, rank,
                  PB_INIT_NORMAL, c->init_range)) < 0)
      return rc;
    m->word_proj = rc;
  } else if ((rc = pb_params_reshape(&m->params, m->word_proj, 2, dr))) {
    return rc;
  }
  m->word_rank = rank;
  return PB_OK;
}

/* non-additive points: at most one hook of a chain may take each */
static int takes_same_point(const pb_hook_ops *a, const pb_hook_ops *b, const char **what) {
  const int va = a->version >= 2, vb = b->version >= 2;
#define SAME(member, name)                         \
  if (a->member && b->member) {                    \
    *what = name;                                  \
    return 1;                                      \
  }
  SAME(sublayer_fwd, "sublayer");
  if (va && vb) {
    SAME(linear_in_fwd, "linear_in");
    SAME(linear_out_fwd, "linear_out");
    SAME(embed_fwd, "embed");
    SAME(kv_prefix, "kv_prefix");
    SAME(width_fwd, "width");
  }
#undef SAME
  return 0;
}

int pb_model_add_hooks(pb_model *m, const pb_hook_ops *ops, void *ctx) {
  if (!ops) return PB_OK;
  if (ops->version < 0 || ops->version > PB_HOOKS_VERSION)
    return pb_set_error(PB_ERR_UNSUPPORTED, "hook chain: hook table version %d (this backbone knows 1..%d)",
                        ops->version, PB_HOOKS_VERSION);
  if (m->act_mem) return pb_set_error(PB_ERR_ARG, "hook chain: hooks must be added before pb_model_alloc");
  if (m->n_hooks == PB_MAX_HOOKS)
    return pb_set_error(PB_ERR_ARG, "hook chain: full (%d hook tables)", PB_MAX_HOOKS);
  for (int i = 0; i < m->n_hooks; i++) {
    const char *what = NULL;
    if (takes_same_point(m->hooks[i].ops, ops, &what))
      return pb_set_error(PB_ERR_ARG, "hook chain: two methods transform the same point (%s); combine them differently",
                          what);
  }
  m->hooks[m->n_hooks++] = (pb_hook_inst){.ops = ops, .ctx = ctx};
  return PB_OK;
}

float *pb_model_row_logits(pb_model *m, int row) { return m->acts.logits + (size_t)row * m->cfg.num_labels; }

int pb_model_exit_step(const pb_model *m, int row) {
  return m->acts.exit_step && row >= 0 && row < m->cur_B ? m->acts.exit_step[row] : m->steps - 1;
}

/* iterate the chain: H is the current pb_hook_inst; V2 members only for version-2 tables */
#define FOR_HOOKS(H) for (pb_hook_inst *H = m->hooks; H < m->hooks + m->n_hooks; H++)
#define FOR_HOOKS_REV(H) for (pb_hook_inst *H = m->hooks + m->n_hooks - 1; H >= m->hooks; H--)
#define V2(H, member) ((H)->ops->version >= 2 ? (H)->ops->member : NULL)

static int has_layer_hook(const pb_model *m) {
  for (int i = 0; i < m->n_hooks; i++)
    if (m->hooks[i].ops->layer_fwd) return 1;
  return 0;
}

/* every hook of the chain only maps widths (width_fwd/width_bwd, with reserve and set_mode): such a
 * chain reads no layer's saved activations in a forward, so inference may share layer buffers */
static int hooks_width_only(const pb_model *m) {
  for (int i = 0; i < m->n_hooks; i++) {
    const pb_hook_ops *o = m->hooks[i].ops;
    if (o->linear_fwd || o->sublayer_fwd || o->layer_fwd ||
        (o->version >= 2 && (o->linear_in_fwd || o->linear_out_fwd || o->embed_fwd || o->kv_prefix || o->after_layer)))
      return 0;
  }
  return 1;
}

static int has_after_layer(const pb_model *m) {
  for (int i = 0; i < m->n_hooks; i++)
    if (m->hooks[i].ops->version >= 2 && m->hooks[i].ops->after_layer) return 1;
  return 0;
}

/* the one hook of the chain that takes a non-additive point (NULL: none) */
static const pb_hook_inst *sublayer_hook(const pb_model *m) {
  for (int i = 0; i < m->n_hooks; i++)
    if (m->hooks[i].ops->sublayer_fwd) return &m->hooks[i];
  return NULL;
}

/* prefix rows the chain gives at step l (0: none); with k/v it also gives the rows */
static int kv_prefix(pb_model *m, int l, const float **k, const float **v, int *P) {
  *P = 0;
  for (int i = 0; i < m->n_hooks; i++) {
    const pb_hook_inst *h = &m->hooks[i];
    if (h->ops->version < 2 || !h->ops->kv_prefix) continue;
    const float *kk = NULL, *vv = NULL;
    int prev = pb_opc_set_owner(PB_OPO_METHOD), rc = h->ops->kv_prefix(h->ctx, l, k ? &kk : NULL, v ? &vv : NULL, P);
    pb_opc_set_owner(prev);
    if (rc) return rc;
    if (*P < 0) return pb_set_error(PB_ERR_ARG, "kv_prefix: %d prefix rows at step %d", *P, l);
    if (k) *k = kk;
    if (v) *v = vv;
    return PB_OK;
  }
  return PB_OK;
}

/* ---------------------------------------------------------------- memory */

int pb_head_width(const pb_model *m, const pb_head_idx *hd) {
  return m->params.t[hd->pool_w >= 0 ? hd->pool_w : hd->cls_w].shape[1];
}

size_t pb_head_acts_floats(const pb_model *m, const pb_head_idx *hd, int B) {
  const size_t d = (size_t)pb_head_width(m, hd), C = (size_t)m->cfg.num_labels, r = 15;
  /* cls, pooled, pooled_drop, logits, probs, dsmall; each rounded up to 16 floats */
  return 3 * (((size_t)B * d + r) & ~r) + 2 * (((size_t)B * C + r) & ~r) + ((4 * (size_t)B * d + (size_t)B * C + r) & ~r);
}

void pb_head_acts_layout(pb_head_acts *ha, float *base, const pb_model *m, const pb_head_idx *hd, int B) {
  const size_t d = (size_t)pb_head_width(m, hd), C = (size_t)m->cfg.num_labels, r = 15;
  size_t off = 0;
#define HTAKE(ptr, count)             \
  do {                                \
    (ptr) = base + off;               \
    off += ((size_t)(count) + r) & ~r; \
  } while (0)
  memset(ha, 0, sizeof *ha);
  HTAKE(ha->cls, (size_t)B * d);
  HTAKE(ha->pooled, (size_t)B * d);
  HTAKE(ha->pooled_drop, (size_t)B * d);
  HTAKE(ha->logits, (size_t)B * C);
  HTAKE(ha->probs, (size_t)B * C);
  HTAKE(ha->dsmall, 4 * (size_t)B * d + (size_t)B * C);
#undef HTAKE
}

/* Lays out (or sizes, when base == NULL) the activation block; returns the float count.
 * share (inference only, no hooks): steps s >= 2 reuse the buffers of step s % 2 (step s
 * reads only step s-1's output, which lives in the other set) and no backward scratch is laid
 * out except dbuf[0]. P: key/value prefix rows (0: none). */
/* the width step l reads (the embeddings' for l < 0) and whether it changes before step l */
static int width_in(const pb_model *m, int l) { return l < 0 ? m->cfg.hidden : pb_model_step_width(m, l).hidden; }
static int width_changes(const pb_model *m, int l) { return width_in(m, l - 1) != width_in(m, l); }

/* the largest row width (hidden size or attention width a), FFN width and heads over the steps
 * (and the embeddings) */
static void widest(const pb_model *m, size_t *d, size_t *F, size_t *A) {
  *d = (size_t)m->cfg.hidden;
  *F = 0;
  *A = 0;
  for (int l = 0; l < m->steps; l++) {
    const pb_width w = pb_model_step_width(m, l);
    if ((size_t)w.hidden > *d) *d = (size_t)w.hidden;
    if ((size_t)pb_width_attn(w) > *d) *d = (size_t)pb_width_attn(w);
    if ((size_t)w.ffn > *F) *F = (size_t)w.ffn;
    if ((size_t)w.heads > *A) *A = (size_t)w.heads;
  }
}

/* Lays out (or sizes, when base == NULL) the activation block; returns the float count.
 * share (inference only, no hooks): steps s >= 2 reuse the buffers of step s % 2 (step s
 * reads only step s-1's output, which lives in the other set) and no backward scratch is laid
 * out except dbuf[0]. P: key/value prefix rows (0: none). Each step's buffers have its width. */
static size_t layout_acts(pb_model *m, float *base, int B, int T, int share, int P) {
  const pb_config *c = &m->cfg;
  const size_t N = (size_t)B * T, de = c->hidden;
  size_t dmax, Fmax, Amax;
  widest(m, &dmax, &Fmax, &Amax);
  const size_t Smax = (size_t)B * Amax * T * (T + P), NXmax = (size_t)B * (T + P) * dmax;
  size_t off = 0;
#define TAKE(ptr, count)                      \
  do {                                        \
    if (base) (ptr) = base + off;             \
    off += ((size_t)(count) + 15) & ~(size_t)15; \
  } while (0)
  pb_acts *a = &m->acts;
  TAKE(a->emb_sum, N * de);
  if (m->word_rank) TAKE(a->emb_word, N * (size_t)m->word_rank);
  else if (base) a->emb_word = NULL;
  TAKE(a->emb_mean, N);
  TAKE(a->emb_rstd, N);
  TAKE(a->emb_ln, N * de);
  TAKE(a->h0, N * de);
  for (int l = 0; l < m->steps; l++) {
    if (share && l >= 2) {
      if (base) a->layer[l] = a->layer[l % 2];
      continue;
    }
    /* (sharing needs a model without hooks other than width maps; the two shared sets are sized
     * for the largest hidden size, heads, a and F of any step, with an input buffer when any
     * step's width changes) */
    const pb_width w = pb_model_step_width(m, l);
    size_t d = (size_t)w.hidden, F = (size_t)w.ffn, A = (size_t)w.heads, at = (size_t)pb_width_attn(w);
    int wc = width_changes(m, l); /* this step's input comes from a width hook */
    for (int k = 0; share && k < m->steps; k++) { /* (width segments: the widest step, any width change) */
      const pb_width o = pb_model_step_width(m, k);
      if ((size_t)o.hidden > d) d = (size_t)o.hidden;
      wc |= width_changes(m, k);
      if ((size_t)o.ffn > F) F = (size_t)o.ffn;
      if ((size_t)o.heads > A) A = (size_t)o.heads;
      if ((size_t)pb_width_attn(o) > at) at = (size_t)pb_width_attn(o);
    }
    const size_t S = (size_t)B * A * T * (T + P), NX = (size_t)B * (T + P) * at;
    pb_layer_acts *x = base ? &a->layer[l] : &(pb_layer_acts){0};
    TAKE(x->q, N * at);
    TAKE(x->k, N * at);
    TAKE(x->v, N * at);
    TAKE(x->probs, S);
    TAKE(x->ctx, N * at);
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
    if (P) {
      TAKE(x->kx, NX);
      TAKE(x->vx, NX);
    } else if (base) {
      x->kx = x->vx = NULL;
    }
    if (wc) TAKE(x->in, N * d);
    else if (base) x->in = NULL;
  }
  const size_t nhead = pb_head_acts_floats(m, &m->head, B);
  if (base) pb_head_acts_layout(&a->head, base + off, m, &m->head, B);
  off += nhead;
  /* the model-level logits; probs are the head's (rows that exited: recomputed over all rows) */
  TAKE(a->logits, (size_t)B * c->num_labels);
  if (base) a->probs = a->head.probs;
  TAKE(a->dbuf[0], N * dmax); /* also the forward's sublayer-hook scratch */
  if (share) {
    if (base) {
      for (int i = 1; i < PB_NDBUF; i++) a->dbuf[i] = NULL;
      a->dbuf_f[0] = a->dbuf_f[1] = a->dscratch = a->dkv = NULL;
    }
    return off;
  }
  for (int i = 1; i < PB_NDBUF; i++) TAKE(a->dbuf[i], N * dmax);
  TAKE(a->dbuf_f[0], N * Fmax);
  TAKE(a->dbuf_f[1], N * Fmax);
  TAKE(a->dscratch, Smax);
  if (P) TAKE(a->dkv, 2 * NXmax + 2 * (size_t)P * dmax);
  else if (base) a->dkv = NULL;
#undef TAKE
  return off;
}

/* per-row state of a forward (early exit): not part of the float block */
static void rows_free(pb_acts *a);

static int rows_alloc(pb_model *m, int B, int T) {
  pb_acts *a = &m->acts;
  rows_free(a);
  a->rows = malloc((size_t)B * sizeof *a->rows);
  a->done = malloc((size_t)B);
  a->exit_step = malloc((size_t)B * sizeof *a->exit_step);
  a->run_ids = malloc(3 * (size_t)B * T * sizeof *a->run_ids);
  a->run_labels = malloc((size_t)B * sizeof *a->run_labels);
  a->run_targets = malloc((size_t)B * sizeof *a->run_targets);
  a->lin_in = calloc((size_t)m->steps * PB_LIN_COUNT, sizeof *a->lin_in);
  if (!a->rows || !a->done || !a->exit_step || !a->run_ids || !a->run_labels || !a->run_targets || !a->lin_in)
    return pb_set_error(PB_ERR_NOMEM, "model: out of memory");
  a->run_types = a->run_ids + (size_t)B * T;
  a->run_mask = a->run_types + (size_t)B * T;
  return PB_OK;
}

static void rows_free(pb_acts *a) {
  free(a->rows);
  free(a->done);
  free(a->exit_step);
  free(a->run_ids);
  free(a->run_labels);
  free(a->run_targets);
  free(a->lin_in);
  a->lin_in = NULL;
  a->rows = a->exit_step = a->run_ids = a->run_labels = NULL;
  a->done = NULL;
  a->run_targets = NULL;
}

/* activations (and every hook's block) for B x T; reserved: address space only (counting-only
 * runs, see pb_model_count), else real, zeroed memory replacing the previous block */
static int acts_alloc(pb_model *m, int B, int T, int infer, int reserved) {
  int rc;
  size_t hook_floats = 0;
  FOR_HOOKS(h) {
    h->nfloats = 0;
    if (h->ops->reserve && (rc = h->ops->reserve(h->ctx, B, T, NULL, &h->nfloats))) return rc;
    hook_floats += (h->nfloats + 15) & ~(size_t)15;
  }
  int P = 0;
  for (int l = 0; l < m->steps; l++) {
    int p = 0;
    if ((rc = kv_prefix(m, l, NULL, NULL, &p))) return rc;
    if (p > P) P = p;
  }
  if (!m->acts.layer) {
    m->acts.layer = calloc((size_t)m->steps, sizeof *m->acts.layer);
    if (!m->acts.layer) return pb_set_error(PB_ERR_NOMEM, "model: out of memory");
  }
  const int share = infer && hooks_width_only(m);
  size_t n = layout_acts(m, NULL, B, T, share, P) + hook_floats;
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
  m->prefix = P;
  size_t off = layout_acts(m, m->act_mem, B, T, share, P);
  m->infer_only = share;
  FOR_HOOKS(h) {
    h->acts = h->nfloats ? m->act_mem + off : NULL;
    off += (h->nfloats + 15) & ~(size_t)15;
    if (h->ops->reserve && (rc = h->ops->reserve(h->ctx, B, T, h->acts, &h->nfloats))) return rc;
  }
  free(m->zero_types);
  m->zero_types = calloc((size_t)B * T, sizeof(int));
  if (!m->zero_types) return pb_set_error(PB_ERR_NOMEM, "model: out of memory");
  free(m->row_ids);
  m->row_ids = NULL;
  if (m->word_rank) {
    if (!(m->row_ids = malloc((size_t)B * T * sizeof(int)))) return pb_set_error(PB_ERR_NOMEM, "model: out of memory");
    for (int i = 0; i < B * T; i++) m->row_ids[i] = i;
  }
  if ((rc = rows_alloc(m, B, T))) return rc;
  m->B = B;
  m->T = T;
  return PB_OK;
}

/* every width change has a hook that maps it */
static int check_widths(pb_model *m) {
  int width_hook = 0;
  FOR_HOOKS(h) width_hook |= V2(h, width_fwd) != NULL;
  for (int l = 0; l < m->steps && !width_hook; l++)
    if (width_changes(m, l))
      return pb_set_error(PB_ERR_ARG, "width segments: the hidden size changes from %d to %d before step %d and no hook maps it",
                          width_in(m, l - 1), width_in(m, l), l);
  return PB_OK;
}

static int model_alloc(pb_model *m, int B, int T, int infer) {
  if (B <= 0 || T <= 0) return pb_set_error(PB_ERR_ARG, "model: batch %d x %d must be positive", B, T);
  if (T > m->cfg.max_pos)
    return pb_set_error(PB_ERR_ARG, "model: sequence length %d exceeds max_position_embeddings %d", T,
                        m->cfg.max_pos);
  int rc = check_widths(m);
  if (rc) return rc;
  if (!m->params.frozen_mem && (rc = pb_params_alloc(&m->params))) return rc;
  return acts_alloc(m, B, T, infer, 0);
}

int pb_model_alloc(pb_model *m, int B, int T) { return model_alloc(m, B, T, 0); }
int pb_model_alloc_infer(pb_model *m, int B, int T) { return model_alloc(m, B, T, 1); }

void pb_model_free(pb_model *m) {
  pb_params_free(&m->params);
  free(m->layer);
  free(m->width);
  free(m->plan);
  free(m->acts.layer);
  rows_free(&m->acts);
  free(m->act_mem);
  free(m->zero_types);
  free(m->row_ids);
  free(m->latent);
  memset(m, 0, sizeof *m);
}

void pb_model_init_random(pb_model *m, uint64_t seed) {
  pb_rng r;
  pb_rng_seed(&r, seed);
  pb_params_init(&m->params, &r);
}

/* ---------------------------------------------------------------- forward */

int pb_model_prepare(pb_model *m, int training) {
  int any = 0;
  FOR_HOOKS(h) any |= h->ops->set_mode != NULL;
  if (!any) return PB_OK;
  if (!m->act_mem) return pb_set_error(PB_ERR_ARG, "prepare: the model has no activations (pb_model_alloc first)");
  int prev = pb_opc_set_owner(PB_OPO_METHOD), rc = PB_OK;
  FOR_HOOKS(h) if (!rc && h->ops->set_mode) rc = h->ops->set_mode(h->ctx, training, 0);
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

/* x' = linear_in(x); y = x' W^T + b; y += additive hooks(x'); y = linear_out(y) at (l, site) */
static int linear_fwd(pb_model *m, int l, int site, float *y, const float *x, int wi, int bi, int N, int in,
                      int out) {
  const float *xi = x;
  FOR_HOOKS(h) if (V2(h, linear_in_fwd)) HOOK(h->ops->linear_in_fwd(h->ctx, l, site, x, &xi, N, in));
  m->acts.lin_in[(size_t)l * PB_LIN_COUNT + site] = xi;
  pb_matmul_fwd(y, xi, pb_w(m, wi), pb_w(m, bi), N, in, out);
  FOR_HOOKS(h) if (h->ops->linear_fwd) HOOK(h->ops->linear_fwd(h->ctx, l, site, xi, y, N, in, out));
  FOR_HOOKS(h) if (V2(h, linear_out_fwd)) HOOK(h->ops->linear_out_fwd(h->ctx, l, site, y, N, out));
  return PB_OK;
}

/* ln_in = resid + sublayer(x); x is the sublayer output after dropout */
static int sublayer_residual(pb_model *m, int l, int site, float *ln_in, const float *resid, const float *x,
                             float *tmp, int N, int d) {
  const float *y = x;
  const pb_hook_inst *h = sublayer_hook(m);
  if (h) {
    HOOK(h->ops->sublayer_fwd(h->ctx, l, site, x, tmp, N, d));
    y = tmp;
  }
  if (m->ode_steps) pb_add_scaled(ln_in, resid, y, m->ode_h, (size_t)N * d); /* an ODE step of size h */
  else pb_add(ln_in, resid, y, (size_t)N * d);
  return PB_OK;
}

/* The prefix's share of an attention call is the method's work: what the call charged to the
 * backbone (since `before`) minus what the same call without a prefix charges (`plain`, a
 * counting-only run of the P = 0 kernel) moves to the method owner. No formula is restated. */
static void prefix_share_to_method(const pb_opcounts *before, const pb_opcounts *plain) {
  for (int k = 0; k < PB_OPK_COUNT; k++) {
    const uint64_t share = pb_opc.counts.c[PB_OPO_BACKBONE][k] - before->c[PB_OPO_BACKBONE][k] -
                           plain->c[PB_OPO_BACKBONE][k];
    pb_opc.counts.c[PB_OPO_BACKBONE][k] -= share;
    pb_opc.counts.c[PB_OPO_METHOD][k] += share;
  }
}

/* kx/vx [B,P+T,d] = per row: the P prefix rows, then the row's T keys / values */
static void build_prefixed(float *kx, const float *kp, const float *k, int B, int T, int P, int d) {
  const size_t row = (size_t)T * d, pre = (size_t)P * d;
  for (int b = 0; b < B; b++) {
    copy_(kx + (size_t)b * (pre + row), kp, pre * sizeof(float));
    copy_(kx + (size_t)b * (pre + row) + pre, k + (size_t)b * row, row * sizeof(float));
  }
}

/* model step l into the activations of executed step `slot` (l itself unless ODE steps skip some) */
static int layer_forward(pb_model *m, int l, int slot, const float *hprev, int B, int T) {
  const pb_config *c = &m->cfg;
  const pb_width wd = pb_model_step_width(m, l);
  const int N = B * T, d = wd.hidden, F = wd.ffn, A = wd.heads, at = pb_width_attn(wd);
  const float ph = m->training ? c->hidden_dropout : 0.0f, pa = m->training ? c->attn_dropout : 0.0f;
  const pb_layer_idx *w = pb_model_step_weights(m, l);
  pb_layer_acts *a = &m->acts.layer[slot];
  float *tmp = m->acts.dbuf[0]; /* backward scratch is free during forward */
  int rc, P = 0;
  const float *kp = NULL, *vp = NULL;
  if (m->prefix && (rc = kv_prefix(m, l, &kp, &vp, &P))) return rc;
  if (P > m->prefix)
    return pb_set_error(PB_ERR_ARG, "kv_prefix: %d prefix rows at step %d, more than the %d sized for", P, l,
                        m->prefix);
  /* self-attention over a = A * hd columns (a = d unless the set's heads were pruned) */
  if ((rc = linear_fwd(m, l, PB_LIN_QUERY, a->q, hprev, w->qw, w->qb, N, d, at))) return rc;
  if ((rc = linear_fwd(m, l, PB_LIN_KEY, a->k, hprev, w->kw, w->kb, N, d, at))) return rc;
  if ((rc = linear_fwd(m, l, PB_LIN_VALUE, a->v, hprev, w->vw, w->vb, N, d, at))) return rc;
  if (P) {
    build_prefixed(a->kx, kp, a->k, B, T, P, at);
    build_prefixed(a->vx, vp, a->v, B, T, P, at);
    const pb_opcounts before = pb_opc.counts;
    pb_attention_prefix_fwd(a->ctx, a->probs, a->q, a->kx, a->vx, m->mask, B, T, P, at, A, pa,
                            site_seed(m, l, SITE_ATTN_PROBS));
    if (pb_opc.enabled) {
      pb_opcounts plain = {0};
      pb_opcounter saved;
      pb_opc_count_begin(&saved);
      pb_attention_fwd(a->ctx, a->probs, a->q, a->k, a->v, m->mask, B, T, at, A, pa, 0);
      pb_opc_count_end(&saved, &plain);
      prefix_share_to_method(&before, &plain);
    }
  } else {
    pb_attention_fwd(a->ctx, a->probs, a->q, a->k, a->v, m->mask, B, T, at, A, pa, site_seed(m, l, SITE_ATTN_PROBS));
  }
  if ((rc = linear_fwd(m, l, PB_LIN_ATTN_OUT, a->attn_o, a->ctx, w->ow, w->ob, N, at, d))) return rc;
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
  /* connectors between step l's input and output (additive, they compose) */
  if (has_layer_hook(m)) {
    copy_(a->out, a->ln2, (size_t)N * d * sizeof(float));
    FOR_HOOKS(h) if (h->ops->layer_fwd) HOOK(h->ops->layer_fwd(h->ctx, l, hprev, a->out, B, T, d));
  }
  return PB_OK;
}

/* the width hook: step l's input a->layer[l].in from x (the previous step's output) */
static int width_fwd(pb_model *m, int l, const float *x, int N) {
  FOR_HOOKS(h) {
    if (V2(h, width_fwd))
      HOOK(h->ops->width_fwd(h->ctx, l, x, m->acts.layer[l].in, N, width_in(m, l - 1), width_in(m, l)));
  }
  return PB_OK;
}

/* After step l: the after_layer hooks add loss terms and may finish rows; finished rows leave
 * the batch (their hidden states, inputs and labels are compacted away). *Brun: running rows. */
static int after_step(pb_model *m, int l, float *h, int *Brun, int T, float *extra) {
  pb_acts *a = &m->acts;
  const int d = pb_model_step_width(m, l).hidden, B = *Brun;
  memset(a->done, 0, (size_t)B);
  FOR_HOOKS(hk) if (V2(hk, after_layer)) HOOK(hk->ops->after_layer(hk->ctx, l, h, B, T, d, a->rows, a->done, extra));
  if (pb_opc_counting() && m->count_last == l) memset(a->done, 1, (size_t)B);
  int nd = 0;
  for (int i = 0; i < B; i++) nd += a->done[i] != 0;
  if (!nd) return PB_OK;
  if (m->training)
    return pb_set_error(PB_ERR_ARG, "after_layer: rows may leave the batch only in inference (step %d)", l);
  const size_t row = (size_t)T * d, trow = (size_t)T * sizeof(int);
  if (!m->exited) { /* first exit of this forward: the running rows' inputs get their own copies */
    memcpy(a->run_ids, m->ids, (size_t)B * trow);
    memcpy(a->run_types, m->types, (size_t)B * trow);
    if (m->mask) memcpy(a->run_mask, m->mask, (size_t)B * trow);
    if (m->labels) memcpy(a->run_labels, m->labels, (size_t)B * sizeof(int));
    if (m->targets) memcpy(a->run_targets, m->targets, (size_t)B * sizeof(float));
    m->ids = a->run_ids;
    m->types = a->run_types;
    if (m->mask) m->mask = a->run_mask;
    if (m->labels) m->labels = a->run_labels;
    if (m->targets) m->targets = a->run_targets;
  }
  int j = 0;
  for (int i = 0; i < B; i++) {
    if (a->done[i]) {
      a->exit_step[a->rows[i]] = l;
      continue;
    }
    if (j != i) {
      copy_(h + (size_t)j * row, h + (size_t)i * row, row * sizeof(float));
      memcpy(a->run_ids + (size_t)j * T, a->run_ids + (size_t)i * T, trow);
      memcpy(a->run_types + (size_t)j * T, a->run_types + (size_t)i * T, trow);
      if (m->mask) memcpy(a->run_mask + (size_t)j * T, a->run_mask + (size_t)i * T, trow);
      if (m->labels) a->run_labels[j] = a->run_labels[i];
      if (m->targets) a->run_targets[j] = a->run_targets[i];
      a->rows[j] = a->rows[i];
    }
    j++;
  }
  m->exited += nd;
  *Brun = j;
  return PB_OK;
}

int pb_head_fwd(pb_model *m, const pb_head_idx *hd, pb_head_acts *ha, const float *h, int B, int T,
                const int *labels, const float *targets, int training, uint64_t seed, float *loss) {
  const pb_config *c = &m->cfg;
  const int d = pb_head_width(m, hd), C = c->num_labels;
  const float p = training ? c->hidden_dropout : 0.0f;
  for (int b = 0; b < B; b++) copy_(ha->cls + (size_t)b * d, h + (size_t)b * T * d, (size_t)d * sizeof(float));
  if (hd->pool_w >= 0) {
    pb_matmul_fwd(ha->pooled, ha->cls, pb_w(m, hd->pool_w), pb_w(m, hd->pool_b), B, d, d);
    pb_tanh_fwd(ha->pooled, ha->pooled, (size_t)B * d);
  } else {
    pb_tanh_fwd(ha->pooled, ha->cls, (size_t)B * d);
  }
  pb_dropout_fwd(ha->pooled_drop, ha->pooled, (size_t)B * d, p, seed);
  pb_matmul_fwd(ha->logits, ha->pooled_drop, pb_w(m, hd->cls_w), pb_w(m, hd->cls_b), B, d, C);
  ha->B = B;
  ha->training = training;
  ha->seed = seed;
  ha->labels = C > 1 ? labels : NULL;
  ha->targets = C == 1 ? targets : NULL;
  ha->kd_logits = NULL;
  float l = 0.0f;
  if (ha->labels) l = pb_softmax_ce_fwd(ha->probs, ha->logits, ha->labels, B, C);
  else if (ha->targets) l = pb_mse_fwd(ha->logits, ha->targets, B);
  const pb_kd *kd = &m->kd;
  if (training && (ha->labels || ha->targets) && kd->alpha > 0.0f && kd->logits) { /* prediction distillation */
    ha->kd_logits = kd->logits;
    const float k = C > 1 ? pb_kd_ce_fwd(ha->logits, kd->logits, B, C, kd->tau) : pb_mse_fwd(ha->logits, kd->logits, B);
    pb_opc_add(PB_OPK_FLOP, 3); /* (1 - alpha) * l + alpha * k */
    l = (1.0f - kd->alpha) * l + kd->alpha * k;
  }
  if (loss) *loss = l;
  return PB_OK;
}

/* factorised word embeddings: emb_word [N,r] = E[ids] (data movement), y [N,d] = emb_word P^T
 * (in dbuf[0], free before step 0), emb_sum = y[row] + position + type (pb_embed_fwd over the
 * rows of y: the plain embedding sum's 2*N*d adds, in its order) */
static void embed_factored_fwd(pb_model *m, const int *ids, const int *types, int B, int T) {
  pb_acts *a = &m->acts;
  const int N = B * T, r = m->word_rank, d = m->cfg.hidden;
  const float *E = pb_w(m, m->word);
  float *y = a->dbuf[0];
  for (int i = 0; i < N; i++) copy_(a->emb_word + (size_t)i * r, E + (size_t)ids[i] * r, (size_t)r * sizeof(float));
  pb_matmul_fwd(y, a->emb_word, pb_w(m, m->word_proj), NULL, N, r, d);
  pb_embed_fwd(a->emb_sum, m->row_ids, types, y, pb_w(m, m->pos), pb_w(m, m->type), B, T, d);
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

/* the forward's inputs as later steps, the head and backward read them (labels only with C > 1,
 * targets only with C = 1) */
static void bind_inputs(pb_model *m, const int *ids, const int *types, const int *mask, const int *labels,
                        const float *targets) {
  m->ids = ids;
  m->types = types;
  m->mask = mask;
  m->labels = m->cfg.num_labels > 1 ? labels : NULL;
  m->targets = m->cfg.num_labels == 1 ? targets : NULL;
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
  bind_inputs(m, ids, types, mask, labels, targets);
  m->training = training;
  m->seed = seed;
  m->exited = 0;
  FOR_HOOKS(h) if (h->ops->set_mode) HOOK(h->ops->set_mode(h->ctx, training, seed));

  const int N = B * T, d = c->hidden, C = c->num_labels, S = m->steps;
  const float ph = training ? c->hidden_dropout : 0.0f;
  int prev_owner = pb_opc_set_owner(PB_OPO_BACKBONE);
  pb_acts *a = &m->acts;
  if (!types) m->types = types = m->zero_types; /* no token types: all 0 */
  if (m->word_rank) embed_factored_fwd(m, ids, types, B, T);
  else pb_embed_fwd(a->emb_sum, ids, types, pb_w(m, m->word), pb_w(m, m->pos), pb_w(m, m->type), B, T, d);
  pb_layernorm_fwd(a->emb_ln, a->emb_mean, a->emb_rstd, a->emb_sum, pb_w(m, m->emb_lnw), pb_w(m, m->emb_lnb), N, d,
                   c->ln_eps);
  pb_dropout_fwd(a->h0, a->emb_ln, (size_t)N * d, ph, site_seed(m, -1, SITE_EMB));
  FOR_HOOKS(h) if (V2(h, embed_fwd)) HOOK(h->ops->embed_fwd(h->ctx, ids, a->h0, B, T, d));
  /* encoder: step l runs weight set plan[l]; after each step (but the last) the after_layer
   * hooks may finish rows, which then leave the batch */
  if ((rc = ode_check(m))) {
    pb_opc_set_owner(prev_owner);
    return rc;
  }
  const int Srun = pb_model_run_steps(m); /* S' < S: ODE steps (pb_model_set_ode_steps) */
  for (int b = 0; b < B; b++) {
    a->rows[b] = b;
    a->exit_step[b] = pb_model_run_step(m, Srun - 1);
  }
  const int after = has_after_layer(m);
  float extra = 0.0f; /* loss terms of the after_layer hooks */
  float extra_kd = 0.0f; /* representation distillation terms */
  /* (not under ODE steps: the teacher's steps map to the student's full depth) */
  m->kd_on = training && (m->labels || m->targets) && m->kd.beta > 0.0f && m->kd.hidden && Srun == S;
  int Brun = B;
  const float *h = a->h0;
  for (int j = 0; j < Srun && Brun > 0; j++) {
    const int l = pb_model_run_step(m, j); /* = j without ODE steps */
    if (width_changes(m, l) && (rc = width_fwd(m, l, h, Brun * T))) break;
    if (width_changes(m, l)) h = a->layer[l].in;
    if ((rc = layer_forward(m, l, j, h, Brun, T))) break;
    h = a->layer[j].out;
    if (m->kd_on && m->kd.hidden[l]) { /* representation distillation of step l's output */
      pb_opc_set_owner(PB_OPO_HEAD);
      const float r = pb_mse_pair_fwd(h, m->kd.hidden[l], (size_t)N * pb_model_step_width(m, l).hidden);
      pb_opc_add(PB_OPK_FLOP, 2);
      extra_kd += m->kd.beta * r;
      pb_opc_set_owner(PB_OPO_BACKBONE);
    }
    if (after && l < S - 1 && (rc = after_step(m, l, (float *)h, &Brun, T, &extra))) break;
  }
  /* head: pooler on [CLS], dropout, classifier, loss over the rows that reached the end */
  pb_opc_set_owner(PB_OPO_HEAD);
  float head_loss = 0.0f;
  if (!rc && Brun > 0 && !m->no_head) {
    rc = pb_head_fwd(m, &m->head, &a->head, h, Brun, T, m->labels, m->targets, training,
                     site_seed(m, -1, SITE_POOLED), &head_loss);
    for (int i = 0; !rc && i < Brun; i++)
      copy_(a->logits + (size_t)a->rows[i] * C, a->head.logits + (size_t)i * C, (size_t)C * sizeof(float));
  }
  /* inputs back to the caller's arrays (rows that left were compacted out of private copies) */
  bind_inputs(m, ids, types, mask, labels, targets);
  m->loss = head_loss;
  if (!rc && m->exited) { /* the loss over every row's prediction, wherever it was made */
    if (m->labels) m->loss = pb_softmax_ce_fwd(a->probs, a->logits, m->labels, B, C);
    else if (m->targets) m->loss = pb_mse_fwd(a->logits, m->targets, B);
  }
  if (after) m->loss += extra;
  if (m->kd_on) {
    m->loss += extra_kd;
    pb_opc_add(PB_OPK_FLOP, 1); /* charged under the last owner of the forward (the head) */
  }
  pb_opc_set_owner(prev_owner);
  if (rc) return rc;
  if (loss) *loss = m->loss;
  if ((m->labels || m->targets) && !isfinite(m->loss))
    return pb_set_error(PB_ERR_NUMERIC, "forward: loss is %f (diverged)", (double)m->loss);
  return PB_OK;
}

/* ---------------------------------------------------------------- backward */

static int is_trainable(const pb_model *m, int idx) { return m->params.t[idx].trainable; }

/* Backward of linear_fwd at (l, site): dy <- linear_out^T dy (in place); dx' = dy W, dW += dy^T x',
 * db += sum dy (only for trainable W/b) and the additive hooks; dx += linear_in^T dx'. x is the
 * site's input before any linear_in hook; dxs [N,in] is scratch for dx' when a linear_in hook
 * replaced the input. */
static int linear_bwd(pb_model *m, int l, int site, float *dx, float *dy, const float *x, int wi, int bi, int N,
                      int in, int out, float *dxs) {
  FOR_HOOKS_REV(h) if (V2(h, linear_out_bwd)) HOOK(h->ops->linear_out_bwd(h->ctx, l, site, dy, N, out));
  const float *xi = m->acts.lin_in[(size_t)l * PB_LIN_COUNT + site];
  if (!xi) xi = x;
  float *dxi = dx;
  if (xi != x) {
    dxi = dxs;
    zero_(dxi, (size_t)N * in * sizeof(float));
  }
  pb_matmul_bwd(dxi, pb_g(m, wi), pb_g(m, bi), dy, xi, pb_w(m, wi), N, in, out);
  FOR_HOOKS_REV(h) if (h->ops->linear_bwd) HOOK(h->ops->linear_bwd(h->ctx, l, site, xi, dy, dxi, N, in, out));
  if (xi != x)
    FOR_HOOKS_REV(h) if (V2(h, linear_in_bwd)) HOOK(h->ops->linear_in_bwd(h->ctx, l, site, x, dxi, dx, N, in));
  return PB_OK;
}

/* from d(ln_in): dresid += d(ln_in); d(x) = sublayer^T d(ln_in), then through dropout into dpre (=) */
/* (ODE steps: ln_in = resid + h*sublayer(x), so d(sublayer) = h*d(ln_in), scaled in place in dln_in) */
static int sublayer_residual_bwd(pb_model *m, int l, int site, float *dresid, float *dpre, float *tmp,
                                 float *dln_in, const float *x, int N, int d, float p, uint64_t seed) {
  const size_t n = (size_t)N * d;
  pb_add(dresid, dresid, dln_in, n);
  if (m->ode_steps) pb_scale(dln_in, dln_in, m->ode_h, n);
  const float *dx = dln_in;
  const pb_hook_inst *h = sublayer_hook(m);
  if (h) {
    zero_(tmp, n * sizeof(float));
    HOOK(h->ops->sublayer_bwd(h->ctx, l, site, x, dln_in, tmp, N, d));
    dx = tmp;
  }
  zero_(dpre, n * sizeof(float));
  pb_dropout_bwd(dpre, dx, n, p, seed);
  return PB_OK;
}

/* attention core backward with a key/value prefix of P rows: the token part of dkx/dvx goes to
 * dk/dv, the prefix part (summed over the batch) to the hook that gave it */
static int attention_prefix_bwd(pb_model *m, int l, pb_layer_acts *a, int P, float *dq, float *dk, float *dv,
                                const float *dctx, int B, int T, float pa) {
  const pb_width wd = pb_model_step_width(m, l);
  const int d = pb_width_attn(wd); /* the rows' width: the attention's a */
  const size_t pre = (size_t)P * d, row = (size_t)T * d, nx = (size_t)B * (pre + row);
  float *dkx = m->acts.dkv, *dvx = dkx + nx, *dkp = dvx + nx, *dvp = dkp + pre;
  zero_(dkx, 2 * nx * sizeof(float));
  const pb_opcounts before = pb_opc.counts;
  pb_attention_prefix_bwd(dq, dkx, dvx, m->acts.dscratch, dctx, a->q, a->kx, a->vx, a->probs, B, T, P, d, wd.heads, pa,
                          site_seed(m, l, SITE_ATTN_PROBS));
  if (pb_opc.enabled) {
    pb_opcounts plain = {0};
    pb_opcounter saved;
    pb_opc_count_begin(&saved);
    pb_attention_bwd(dq, dk, dv, m->acts.dscratch, dctx, a->q, a->k, a->v, a->probs, B, T, d, wd.heads, pa, 0);
    pb_opc_count_end(&saved, &plain);
    prefix_share_to_method(&before, &plain);
  }
  zero_(dkp, 2 * pre * sizeof(float));
  const int prev = pb_opc_set_owner(PB_OPO_METHOD); /* summing the prefix gradients over the batch */
  for (int b = 0; b < B; b++) {
    const float *kb = dkx + (size_t)b * (pre + row), *vb = dvx + (size_t)b * (pre + row);
    copy_(dk + (size_t)b * row, kb + pre, row * sizeof(float));
    copy_(dv + (size_t)b * row, vb + pre, row * sizeof(float));
    pb_add(dkp, dkp, kb, pre);
    pb_add(dvp, dvp, vb, pre);
  }
  pb_opc_set_owner(prev);
  FOR_HOOKS(h) if (V2(h, kv_prefix) && h->ops->kv_prefix_bwd) HOOK(h->ops->kv_prefix_bwd(h->ctx, l, dkp, dvp, P));
  return PB_OK;
}

/* dh: gradient wrt step l's output (consumed); dprev: gradient wrt its input (written) */
static int layer_backward(pb_model *m, int l, int slot, const float *hprev, const float *dh, float *dprev, int B,
                          int T) {
  const pb_config *c = &m->cfg;
  const pb_width wd = pb_model_step_width(m, l);
  const int N = B * T, d = wd.hidden, F = wd.ffn, at = pb_width_attn(wd);
  const size_t nd = (size_t)N * d, nf = (size_t)N * F, na = (size_t)N * at;
  const float ph = m->training ? c->hidden_dropout : 0.0f, pa = m->training ? c->attn_dropout : 0.0f;
  const pb_layer_idx *w = pb_model_step_weights(m, l);
  pb_layer_acts *a = &m->acts.layer[slot];
  float **buf = m->acts.dbuf; /* 0,1 hold dh/dprev of the caller */
  float *dln2_in = buf[2], *dln1 = buf[3], *dffn_o = buf[4], *tmp = buf[5], *dln1_in = buf[6];
  float *dattn_o = buf[7], *dctx = buf[8], *dqkv = buf[9];
  float *dffn_act = m->acts.dbuf_f[0], *dffn_pre = m->acts.dbuf_f[1];
  int rc, P = 0;
  if (m->prefix && (rc = kv_prefix(m, l, NULL, NULL, &P))) return rc;
  zero_(dprev, nd * sizeof(float));
  FOR_HOOKS_REV(h) if (h->ops->layer_bwd) HOOK(h->ops->layer_bwd(h->ctx, l, hprev, dh, dprev, B, T, d));
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
  /* dffn_pre is free until the GELU backward: scratch of a linear_in hook at ffn_out */
  if ((rc = linear_bwd(m, l, PB_LIN_FFN_OUT, dffn_act, dffn_o, a->ffn_act, w->fw, w->fb, N, F, d, dffn_pre)))
    return rc;
  zero_(dffn_pre, nf * sizeof(float));
  pb_gelu_bwd(dffn_pre, a->ffn_pre, dffn_act, nf);
  /* dffn_o (buf[4]) is dead from here on: the d-wide linear_in scratch */
  if ((rc = linear_bwd(m, l, PB_LIN_FFN_IN, dln1, dffn_pre, a->ln1, w->iw, w->ib, N, d, F, dffn_o))) return rc;
  /* LN1 */
  zero_(dln1_in, nd * sizeof(float));
  pb_layernorm_bwd(dln1_in, pb_g(m, w->ln1w), pb_g(m, w->ln1b), dln1, a->ln1_in, pb_w(m, w->ln1w), a->ln1_mean,
                   a->ln1_rstd, N, d);
  /* attention sublayer: ln1_in = hprev + sub(dropout(attn_o)) */
  if ((rc = sublayer_residual_bwd(m, l, PB_SUB_ATTN, dprev, dattn_o, tmp, dln1_in, a->attn_o, N, d, ph,
                                  site_seed(m, l, SITE_ATTN_OUT))))
    return rc;
  /* the attention's buffers are a wide (dbuf[*] hold max(d, a) columns) */
  zero_(dctx, na * sizeof(float));
  if ((rc = linear_bwd(m, l, PB_LIN_ATTN_OUT, dctx, dattn_o, a->ctx, w->ow, w->ob, N, at, d, dffn_o))) return rc;
  /* attention core: dq, dk, dv one after another in dqkv to keep scratch small */
  float *dq = dqkv, *dk = tmp, *dv = dln2_in; /* dln2_in and tmp are dead now */
  zero_(dq, na * sizeof(float));
  zero_(dk, na * sizeof(float));
  zero_(dv, na * sizeof(float));
  if (P) {
    if ((rc = attention_prefix_bwd(m, l, a, P, dq, dk, dv, dctx, B, T, pa))) return rc;
  } else {
    pb_attention_bwd(dq, dk, dv, m->acts.dscratch, dctx, a->q, a->k, a->v, a->probs, B, T, at, wd.heads, pa,
                     site_seed(m, l, SITE_ATTN_PROBS));
  }
  if ((rc = linear_bwd(m, l, PB_LIN_QUERY, dprev, dq, hprev, w->qw, w->qb, N, d, at, dffn_o))) return rc;
  if ((rc = linear_bwd(m, l, PB_LIN_KEY, dprev, dk, hprev, w->kw, w->kb, N, d, at, dffn_o))) return rc;
  if ((rc = linear_bwd(m, l, PB_LIN_VALUE, dprev, dv, hprev, w->vw, w->vb, N, d, at, dffn_o))) return rc;
  return PB_OK;
}

/* from the gradient wrt the last step's output in dbuf[0] down to the embeddings */
static int backward_encoder(pb_model *m) {
  const pb_config *c = &m->cfg;
  const int B = m->cur_B, T = m->cur_T, N = B * T, d = c->hidden;
  const float ph = m->training ? c->hidden_dropout : 0.0f;
  pb_acts *a = &m->acts;
  float *dh = a->dbuf[0], *dprev = a->dbuf[1];
  const int after = has_after_layer(m);
  for (int j = pb_model_run_steps(m) - 1; j >= 0; j--) {
    const int l = pb_model_run_step(m, j); /* = j without ODE steps */
    const int dl = width_in(m, l);
    if (m->kd_on && m->kd.hidden[l]) { /* representation distillation of step l's output */
      int prev = pb_opc_set_owner(PB_OPO_HEAD);
      pb_mse_pair_bwd(dh, a->layer[j].out, m->kd.hidden[l], (size_t)N * pb_model_step_width(m, l).hidden, m->kd.beta);
      pb_opc_set_owner(prev);
    }
    /* the loss terms the after_layer hooks added on step l's output */
    if (after && l < m->steps - 1) {
      FOR_HOOKS_REV(h) {
        if (V2(h, after_layer) && h->ops->after_layer_bwd)
          HOOK(h->ops->after_layer_bwd(h->ctx, l, a->layer[j].out, dh, B, T, dl));
      }
    }
    const float *x = j > 0 ? a->layer[j - 1].out : a->h0; /* the previous executed step's output */
    const int wc = width_changes(m, l);
    int rc = layer_backward(m, l, j, wc ? a->layer[l].in : x, dh, dprev, B, T);
    if (rc) return rc;
    if (wc) { /* through the width hook: dprev [N, d(l)] -> [N, d(l-1)] (dbuf[2] is free here) */
      const int din = width_in(m, l - 1);
      float *dx = a->dbuf[2];
      zero_(dx, (size_t)N * din * sizeof(float));
      FOR_HOOKS_REV(h) {
        if (V2(h, width_fwd) && h->ops->width_bwd)
          HOOK(h->ops->width_bwd(h->ctx, l, x, dprev, dx, N, din, dl));
      }
      copy_(dprev, dx, (size_t)N * din * sizeof(float));
    }
    float *t = dh;
    dh = dprev;
    dprev = t;
  }
  FOR_HOOKS_REV(h) if (V2(h, embed_fwd) && h->ops->embed_bwd) HOOK(h->ops->embed_bwd(h->ctx, m->ids, dh, B, T, d));
  /* embeddings: only when one of their tensors trains */
  const int word_train = is_trainable(m, m->word) || (m->word_rank && is_trainable(m, m->word_proj));
  const int emb_train = word_train || is_trainable(m, m->pos) || is_trainable(m, m->type);
  if (emb_train || is_trainable(m, m->emb_lnw) || is_trainable(m, m->emb_lnb)) {
    float *demb_ln = dprev, *demb_sum = a->dbuf[2];
    zero_(demb_ln, (size_t)N * d * sizeof(float));
    pb_dropout_bwd(demb_ln, dh, (size_t)N * d, ph, site_seed(m, -1, SITE_EMB));
    if (emb_train) zero_(demb_sum, (size_t)N * d * sizeof(float));
    pb_layernorm_bwd(emb_train ? demb_sum : NULL, pb_g(m, m->emb_lnw), pb_g(m, m->emb_lnb), demb_ln, a->emb_sum,
                     pb_w(m, m->emb_lnw), a->emb_mean, a->emb_rstd, N, d);
    if (emb_train && !m->word_rank)
      pb_embed_bwd(pb_g(m, m->word), pb_g(m, m->pos), pb_g(m, m->type), demb_sum, m->ids, m->types, B, T, d);
    if (emb_train && m->word_rank) { /* emb_sum = (E[ids]) P^T + position + type */
      const int r = m->word_rank;
      pb_embed_bwd(NULL, pb_g(m, m->pos), pb_g(m, m->type), demb_sum, m->ids, m->types, B, T, d);
      if (word_train) {
        float *dE = pb_g(m, m->word), *drows = dE ? a->dbuf[3] : NULL; /* [N,r] dE[ids] (dbuf[3] is free) */
        if (drows) zero_(drows, (size_t)N * r * sizeof(float));
        pb_matmul_bwd(drows, pb_g(m, m->word_proj), NULL, demb_sum, a->emb_word, pb_w(m, m->word_proj), N, r, d);
        if (dE) pb_embed_bwd(dE, NULL, NULL, drows, m->ids, NULL, B, T, r); /* scatter-add into E's rows */
      }
    }
  }
  return PB_OK;
}

/* head backward; write: dh's [CLS] rows are set (dh was zeroed by the caller, nothing charged),
 * else accumulated (charged as adds) */
static int head_bwd(pb_model *m, const pb_head_idx *hd, pb_head_acts *ha, int T, float weight, float *dh,
                    int write) {
  const pb_config *c = &m->cfg;
  const int B = ha->B, d = pb_head_width(m, hd), C = c->num_labels;
  const float p = ha->training ? c->hidden_dropout : 0.0f;
  if (!ha->labels && !ha->targets) return pb_set_error(PB_ERR_ARG, "head backward: its forward had no labels");
  float *dlogits = ha->dsmall, *dpooled_drop = dlogits + (size_t)B * C, *dpooled = dpooled_drop + (size_t)B * d;
  float *dpool_pre = dpooled + (size_t)B * d, *dcls = dpool_pre + (size_t)B * d;
  zero_(ha->dsmall, (4 * (size_t)B * d + (size_t)B * C) * sizeof(float));
  if (ha->labels) pb_softmax_ce_bwd(dlogits, ha->probs, ha->labels, B, C);
  else pb_mse_bwd(dlogits, ha->logits, ha->targets, B);
  if (ha->kd_logits) { /* (1 - alpha) * task gradient + alpha * distillation gradient */
    const float alpha = m->kd.alpha;
    pb_opc_add(PB_OPK_FLOP, (uint64_t)B * C);
    if (!pb_opc_counting())
      for (int i = 0; i < B * C; i++) dlogits[i] *= 1.0f - alpha;
    if (C > 1) pb_kd_ce_bwd(dlogits, ha->logits, ha->kd_logits, B, C, m->kd.tau, alpha);
    else { /* regression: the gradient of alpha * MSE(z, t), 3B FLOP (difference, scale, add) */
      pb_opc_add(PB_OPK_FLOP, 3 * (uint64_t)B);
      if (!pb_opc_counting()) {
        const float kk = 2.0f * alpha / (float)B;
        for (int i = 0; i < B; i++) dlogits[i] += kk * (ha->logits[i] - ha->kd_logits[i]);
      }
    }
  }
  if (weight != 1.0f) {
    pb_opc_add(PB_OPK_FLOP, (uint64_t)B * C);
    if (!pb_opc_counting())
      for (int i = 0; i < B * C; i++) dlogits[i] *= weight;
  }
  pb_matmul_bwd(dpooled_drop, pb_g(m, hd->cls_w), pb_g(m, hd->cls_b), dlogits, ha->pooled_drop, pb_w(m, hd->cls_w),
                B, d, C);
  pb_dropout_bwd(dpooled, dpooled_drop, (size_t)B * d, p, ha->seed);
  pb_tanh_bwd(dpool_pre, ha->pooled, dpooled, (size_t)B * d);
  if (hd->pool_w >= 0)
    pb_matmul_bwd(dcls, pb_g(m, hd->pool_w), pb_g(m, hd->pool_b), dpool_pre, ha->cls, pb_w(m, hd->pool_w), B, d, d);
  else
    dcls = dpool_pre; /* no dense: the gradient at [CLS] is tanh's */
  for (int b = 0; b < B; b++) {
    float *row = dh + (size_t)b * T * d;
    if (write) copy_(row, dcls + (size_t)b * d, (size_t)d * sizeof(float));
    else pb_add(row, row, dcls + (size_t)b * d, (size_t)d);
  }
  return PB_OK;
}

int pb_head_bwd(pb_model *m, const pb_head_idx *hd, pb_head_acts *ha, int T, float weight, float *dh) {
  return head_bwd(m, hd, ha, T, weight, dh, 0);
}

int pb_backward(pb_model *m) {
  if (m->infer_only) return pb_set_error(PB_ERR_ARG, "backward: the model was allocated for inference only");
  if (!m->labels && !m->targets) return pb_set_error(PB_ERR_ARG, "backward: the last forward had no labels");
  if (m->exited) return pb_set_error(PB_ERR_ARG, "backward: rows left the last forward early (inference only)");
  const int N = m->cur_B * m->cur_T, d = pb_head_width(m, &m->head);
  pb_acts *a = &m->acts;
  int prev_owner = pb_opc_set_owner(PB_OPO_HEAD);
  /* head, back into the residual stream at the [CLS] rows */
  float *dh = a->dbuf[0];
  zero_(dh, (size_t)N * d * sizeof(float));
  int rc = head_bwd(m, &m->head, &a->head, m->cur_T, 1.0f, dh, 1);
  pb_opc_set_owner(PB_OPO_BACKBONE);
  if (!rc) rc = backward_encoder(m);
  pb_opc_set_owner(prev_owner);
  return rc;
}

int pb_backward_hidden(pb_model *m, const float *dout) {
  const size_t n = (size_t)m->cur_B * m->cur_T * width_in(m, m->steps - 1);
  if (!m->act_mem || n == 0) return pb_set_error(PB_ERR_ARG, "backward: no forward to go back through");
  if (m->infer_only) return pb_set_error(PB_ERR_ARG, "backward: the model was allocated for inference only");
  if (m->exited) return pb_set_error(PB_ERR_ARG, "backward: rows left the last forward early (inference only)");
  copy_(m->acts.dbuf[0], dout, n * sizeof(float));
  int prev_owner = pb_opc_set_owner(PB_OPO_BACKBONE);
  int rc = backward_encoder(m);
  pb_opc_set_owner(prev_owner);
  return rc;
}

/* ---------------------------------------------------------------- op count by execution */

static int model_count(pb_model *m, int B, int T, int flags, int last, pb_opcounts *out) {
  const pb_config *c = &m->cfg;
  if (B <= 0 || T <= 0) return pb_set_error(PB_ERR_ARG, "count: batch %d x %d must be positive", B, T);
  if (T > c->max_pos)
    return pb_set_error(PB_ERR_ARG, "count: sequence length %d exceeds max_position_embeddings %d", T, c->max_pos);
  if (last < 0 || last >= m->steps)
    return pb_set_error(PB_ERR_ARG, "count: exit after step %d outside 0..%d", last, m->steps - 1);
  if (pb_opc_counting()) return pb_set_error(PB_ERR_ARG, "count: already inside a counting-only run");
  const int training = (flags & PB_COUNT_TRAIN) != 0, C = c->num_labels;
  const pb_model saved = *m; /* every field the run changes comes back from here */
  const int own_params = !m->params.frozen_mem;
  int *ids = calloc((size_t)B * T + (size_t)B, sizeof(int)), *labels = ids ? ids + (size_t)B * T : NULL;
  float *targets = calloc((size_t)B, sizeof(float));
  pb_layer_acts *layers = calloc((size_t)m->steps, sizeof *layers);
  int rc = ids && targets && layers ? PB_OK : pb_set_error(PB_ERR_NOMEM, "count: out of memory");
  m->acts.layer = layers;
  m->act_mem = NULL;
  m->zero_types = NULL;
  m->row_ids = NULL;
  /* the run's own per-row arrays (rows_alloc frees what it finds) */
  m->acts.rows = m->acts.exit_step = m->acts.run_ids = m->acts.run_labels = NULL;
  m->acts.done = NULL;
  m->acts.run_targets = NULL;
  m->acts.lin_in = NULL;
  m->count_last = last < m->steps - 1 ? last : -1;
  if (!rc) rc = check_widths(m);
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
  free(m->row_ids);
  rows_free(&m->acts);
  if (own_params) pb_params_release(&m->params);
  free(layers);
  free(ids);
  free(targets);
  *m = saved;
  /* every hook's activation pointers back to the model's own block (when it has one) */
  if (m->act_mem) {
    FOR_HOOKS(h) {
      if (!h->ops->reserve) continue;
      size_t n = 0;
      int r2 = h->ops->reserve(h->ctx, m->B, m->T, h->acts, &n);
      if (!rc) rc = r2;
    }
  }
  return rc;
}

int pb_model_count(pb_model *m, int B, int T, int flags, pb_opcounts *out) {
  return model_count(m, B, T, flags, m->steps - 1, out);
}

int pb_model_count_exit(pb_model *m, int B, int T, int last, pb_opcounts *out) {
  return model_count(m, B, T, PB_COUNT_INFER, last, out);
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
  /* a layer plan other than the identity (shared weight sets) is part of the backbone */
  int identity = m->steps == c->layers;
  for (int s = 0; identity && s < m->steps; s++) identity = m->plan[s] == s;
  if (!identity) {
    h = fnv(h, &m->steps, sizeof m->steps);
    h = fnv(h, m->plan, (size_t)m->steps * sizeof *m->plan);
  }
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
