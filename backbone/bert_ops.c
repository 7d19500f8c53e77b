/* The analytic operation count of the backbone: the same sequence of kernels as bert.c, each
 * charged with the formulas of the table in ops.h, computed from the configuration and the
 * declared parameter table alone (which tensors train decides which weight gradients run).
 * tests/test_opcount.c checks instrumented == analytic exactly. */
#include <string.h>

#include "backbone/bert.h"
#include "backbone/status.h"

typedef struct {
  pb_opcounts *o;
  int owner;
} acc;

static void mac(acc *a, uint64_t n) { a->o->c[a->owner][PB_OPK_MAC] += n; }
static void flop(acc *a, uint64_t n) { a->o->c[a->owner][PB_OPK_FLOP] += n; }
static void trans(acc *a, uint64_t n) { a->o->c[a->owner][PB_OPK_TRANS] += n; }

static int tr(const pb_model *m, int idx) { return m->params.t[idx].trainable; }

/* matmul over N rows IC -> OC with bias */
static void linear_fwd(acc *a, uint64_t N, uint64_t IC, uint64_t OC) {
  mac(a, N * IC * OC);
  flop(a, N * OC);
}
static void linear_bwd(acc *a, uint64_t N, uint64_t IC, uint64_t OC, int dinp, int dw, int db) {
  mac(a, (uint64_t)(dinp + dw) * N * IC * OC);
  if (db) flop(a, N * OC);
}
static void layernorm_fwd(acc *a, uint64_t N, uint64_t C) {
  flop(a, 8 * N * C);
  trans(a, N);
}
static void layernorm_bwd(acc *a, uint64_t N, uint64_t C, int dinp, int dw, int db) {
  flop(a, (uint64_t)(10 * dinp + 3 * dw + db) * N * C);
}

int pb_bert_ops(const pb_model *m, int B, int T, int training, pb_opcounts *out) {
  const pb_config *c = &m->cfg;
  if (B <= 0 || T <= 0) return pb_set_error(PB_ERR_ARG, "ops: batch %d x %d must be positive", B, T);
  const uint64_t N = (uint64_t)B * T, d = c->hidden, F = c->ffn, C = c->num_labels, A = c->heads;
  const uint64_t S = (uint64_t)B * A * T * T, hd = d / A, Bu = (uint64_t)B;
  const int ph = training && c->hidden_dropout > 0, pa = training && c->attn_dropout > 0;
  acc a = {out, PB_OPO_BACKBONE};

  /* ---- forward ---- */
  flop(&a, 2 * N * d); /* embeddings */
  layernorm_fwd(&a, N, d);
  if (ph) flop(&a, N * d);
  for (int l = 0; l < c->layers; l++) {
    linear_fwd(&a, N, d, d); /* q */
    linear_fwd(&a, N, d, d); /* k */
    linear_fwd(&a, N, d, d); /* v */
    mac(&a, 2 * S * hd);     /* attention core */
    flop(&a, 6 * S + (pa ? S : 0));
    trans(&a, S);
    linear_fwd(&a, N, d, d); /* attention output */
    if (ph) flop(&a, N * d);
    flop(&a, N * d); /* residual */
    layernorm_fwd(&a, N, d);
    linear_fwd(&a, N, d, F); /* ffn in */
    flop(&a, 4 * N * F);     /* gelu */
    trans(&a, N * F);
    linear_fwd(&a, N, F, d); /* ffn out */
    if (ph) flop(&a, N * d);
    flop(&a, N * d); /* residual */
    layernorm_fwd(&a, N, d);
  }
  a.owner = PB_OPO_HEAD;
  linear_fwd(&a, Bu, d, d); /* pooler */
  trans(&a, Bu * d);        /* tanh */
  if (ph) flop(&a, Bu * d);
  linear_fwd(&a, Bu, d, C); /* classifier */
  if (!training) return PB_OK;

  /* ---- loss + backward ---- */
  if (C > 1) {
    flop(&a, 4 * Bu * C + Bu);
    trans(&a, Bu * C + Bu);
    flop(&a, 2 * Bu * C);
  } else {
    flop(&a, 3 * Bu);
    flop(&a, 2 * Bu);
  }
  linear_bwd(&a, Bu, d, C, 1, tr(m, m->cls_w), tr(m, m->cls_b));
  if (ph) flop(&a, Bu * d);
  flop(&a, 3 * Bu * d); /* tanh backward */
  linear_bwd(&a, Bu, d, d, 1, tr(m, m->pool_w), tr(m, m->pool_b));
  a.owner = PB_OPO_BACKBONE;
  for (int l = c->layers - 1; l >= 0; l--) {
    const pb_layer_idx *w = &m->layer[l];
    layernorm_bwd(&a, N, d, 1, tr(m, w->ln2w), tr(m, w->ln2b));
    flop(&a, N * d); /* residual gradient */
    if (ph) flop(&a, N * d);
    linear_bwd(&a, N, F, d, 1, tr(m, w->fw), tr(m, w->fb));
    flop(&a, 8 * N * F); /* gelu backward */
    trans(&a, 2 * N * F);
    linear_bwd(&a, N, d, F, 1, tr(m, w->iw), tr(m, w->ib));
    layernorm_bwd(&a, N, d, 1, tr(m, w->ln1w), tr(m, w->ln1b));
    flop(&a, N * d);
    if (ph) flop(&a, N * d);
    linear_bwd(&a, N, d, d, 1, tr(m, w->ow), tr(m, w->ob));
    mac(&a, 4 * S * hd); /* attention core backward */
    flop(&a, 4 * S + (pa ? S : 0));
    linear_bwd(&a, N, d, d, 1, tr(m, w->qw), tr(m, w->qb));
    linear_bwd(&a, N, d, d, 1, tr(m, w->kw), tr(m, w->kb));
    linear_bwd(&a, N, d, d, 1, tr(m, w->vw), tr(m, w->vb));
  }
  int emb_train = tr(m, m->word) || tr(m, m->pos) || tr(m, m->type);
  if (emb_train || tr(m, m->emb_lnw) || tr(m, m->emb_lnb)) {
    if (ph) flop(&a, N * d);
    layernorm_bwd(&a, N, d, emb_train, tr(m, m->emb_lnw), tr(m, m->emb_lnb));
    if (emb_train) flop(&a, (uint64_t)(tr(m, m->word) + tr(m, m->pos) + tr(m, m->type)) * N * d);
  }
  return PB_OK;
}
