/* BitFit (Ben Zaken, Ravfogel and Goldberg, ACL 2022): only bias terms of the backbone train
 * (and the task head, as for every method). Nothing is added: no tensors, no hooks, no
 * operations in the forward pass. attach() flips `trainable` and `stored` on existing backbone
 * tensors, so the task file holds those biases (under their HF names) and the head.
 *
 * Option `biases` (a list; default all of them, as the paper trains every bias term of the
 * encoder, LayerNorm biases included), per encoder layer (weight set) unless said otherwise:
 *   query, key, value   attention.self.{query,key,value}.bias        [d] each
 *   attn_out            attention.output.dense.bias                  [d]
 *   ffn_in              intermediate.dense.bias                      [F]
 *   ffn_out             output.dense.bias                            [d]
 *   layernorm           attention.output.LayerNorm.bias, output.LayerNorm.bias   [d] each
 *   embeddings_ln       bert.embeddings.LayerNorm.bias (once)        [d]
 *   pooler              bert.pooler.dense.bias (once)                [d]
 * Trainable (no head) at bert-base with the defaults: per layer 4*768 + 3072 + 768 + 2*768 =
 * 8,448; x 12 = 101,376; + 768 + 768 = 102,912 (0.094% of the backbone). LayerNorm weights
 * (gammas) are not biases and stay frozen. The key bias shifts every attention score of a query
 * by the same amount, which softmax cancels: its gradient is exactly zero, so it never moves
 * (trained and stored anyway, as in the paper's count).
 *
 * Op counts: the forward is the plain backbone's exactly. A training step differs only by the
 * bias-gradient reductions the backward now does (kernels of backbone/ops.h, N = B*T rows):
 * N*out FLOP per linear bias, N*d per LayerNorm bias, and, with embeddings_ln, the embedding
 * LayerNorm backward that a frozen embedding block skips (N*d for db, + N*d dropout backward
 * when hidden dropout is on); the pooler bias costs B*d. No matmul MACs: weight gradients stay
 * off. Nothing to merge: the trained biases ARE backbone tensors (zero added inference ops). */
#include <stddef.h>
#include <stdio.h>
#include <string.h>

#include "util/status.h"
#include "methods/method.h"

enum {
  BF_QUERY = 0, BF_KEY, BF_VALUE, BF_ATTN_OUT, BF_FFN_IN, BF_FFN_OUT, BF_LAYERNORM, BF_EMB_LN, BF_POOLER, BF_COUNT
};

/* NULL-terminated: the allowed values of `biases` (bit k = value k) */
static const char *const bias_names[BF_COUNT + 1] = {"query",  "key",       "value",         "attn_out", "ffn_in",
                                                     "ffn_out", "layernorm", "embeddings_ln", "pooler",   NULL};

typedef struct {
  unsigned biases; /* option: bit set over BF_* (all) */
  pb_model *m;     /* the model attached to (borrowed) */
} bitfit_ctx;

extern const pb_method pb_method_bitfit;

static int bitfit_init(void *vctx) {
  bitfit_ctx *c = vctx;
  memset(c, 0, sizeof *c);
  c->biases = (1u << BF_COUNT) - 1;
  return PB_OK;
}

static int bitfit_describe(const void *vctx, char *buf, size_t n) {
  return pb_method_describe_options(&pb_method_bitfit, vctx, buf, n);
}

static void train(pb_model *m, int idx) {
  m->params.t[idx].trainable = 1;
  m->params.t[idx].stored = 1;
}

static int bitfit_attach(void *vctx, pb_model *m) {
  bitfit_ctx *c = vctx;
  if (c->m) return pb_set_error(PB_ERR_ARG, "bitfit: already attached to a model");
  if (m->params.frozen_mem || m->params.train_mem)
    return pb_set_error(PB_ERR_ARG, "bitfit: attach must come before pb_model_alloc");
  const unsigned b = c->biases;
  /* every weight set (a layer plan may run one set at several steps: its bias trains once) */
  for (int l = 0; l < m->cfg.layers; l++) {
    const pb_layer_idx *x = &m->layer[l];
    if (b & (1u << BF_QUERY)) train(m, x->qb);
    if (b & (1u << BF_KEY)) train(m, x->kb);
    if (b & (1u << BF_VALUE)) train(m, x->vb);
    if (b & (1u << BF_ATTN_OUT)) train(m, x->ob);
    if (b & (1u << BF_FFN_IN)) train(m, x->ib);
    if (b & (1u << BF_FFN_OUT)) train(m, x->fb);
    if (b & (1u << BF_LAYERNORM)) train(m, x->ln1b), train(m, x->ln2b);
  }
  if (b & (1u << BF_EMB_LN)) train(m, m->emb_lnb);
  if (b & (1u << BF_POOLER)) train(m, m->pool_b);
  c->m = m;
  return PB_OK;
}

static const pb_method_option bitfit_options[] = {
    {.name = "biases", .type = PB_OPT_LIST, .offset = offsetof(bitfit_ctx, biases),
     .def = "query+key+value+attn_out+ffn_in+ffn_out+layernorm+embeddings_ln+pooler", .values = bias_names,
     .help = "bias terms that train: the linear sites of every layer, its two LayerNorm biases, the "
             "embedding LayerNorm bias, the pooler bias"},
};

static const pb_method_refconfig bitfit_refs[] = {{"bitfit", NULL}};

const pb_method pb_method_bitfit = {
    .version = PB_METHOD_VERSION,
    .name = "bitfit",
    .summary = "BitFit: only the backbone's bias terms train (no added tensors or ops)",
    .ctx_size = sizeof(bitfit_ctx),
    .init = bitfit_init,
    .describe = bitfit_describe,
    .attach = bitfit_attach,
    /* merge/unmerge: nothing to fold (the biases are backbone tensors); destroy: nothing owned;
     * ops: reserved (no hooks, nothing added) */
    .default_lr = 1e-3, /* few parameters take a PEFT-sized rate (the paper tunes it per task, up to 1e-3) */
    .options = bitfit_options,
    .n_options = (int)(sizeof bitfit_options / sizeof bitfit_options[0]),
    .refconfigs = bitfit_refs,
    .n_refconfigs = (int)(sizeof bitfit_refs / sizeof bitfit_refs[0]),
    .order = 5,
};
