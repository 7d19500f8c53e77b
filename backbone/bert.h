/* The shared BERT encoder (post-LN, as bert-base): embeddings + LayerNorm, L layers of
 * multi-head self-attention and GELU FFN each followed by residual + LayerNorm, a tanh pooler
 * on [CLS] and a task head (C logits, or 1 for regression). fp32, forward and backward.
 *
 * Life cycle:
 *   pb_model_declare(m, cfg)       backbone + head tensors enter the parameter table
 *   pb_model_set_plan(m, S, plan)  optional: step s of the encoder runs weight set plan[s]
 *   pb_model_set_width / _set_shape, pb_model_factor_word   optional: other tensor shapes
 *   (methods attach: add tensors, flip trainable flags, append hooks to the chain)
 *   pb_model_alloc(m, B, T)        one allocation per family: params, grads, AdamW, activations
 *   pb_model_init_random / load    values
 *   pb_forward / pb_backward / pb_adamw_step
 */
#ifndef PB_BERT_H
#define PB_BERT_H

#include <stddef.h>
#include <stdint.h>

#include "backbone/hooks.h"
#include "backbone/params.h"

typedef struct {
  int vocab_size;       /* V */
  int hidden;           /* d */
  int layers;           /* L */
  int heads;            /* A (d % A == 0) */
  int ffn;              /* F, intermediate size */
  int max_pos;          /* P, max_position_embeddings */
  int type_vocab;       /* token types (2) */
  float ln_eps;         /* layer_norm_eps (1e-12) */
  float hidden_dropout; /* hidden_dropout_prob (0.1) */
  float attn_dropout;   /* attention_probs_dropout_prob (0.1) */
  float init_range;     /* initializer_range (0.02) */
  int num_labels;       /* C: classes, or 1 for regression */
} pb_config;

/* bert-base-uncased shape (V 30522, d 768, L 12, A 12, F 3072, P 512) with C labels */
void pb_config_bert_base(pb_config *c, int num_labels);
/* the embedded default shape (V 30522, d 256, L 4, A 4, F 1024, P 512) */
void pb_config_default(pb_config *c, int num_labels);
/* checks d % A, positive sizes; returns status with a message naming `what` */
int pb_config_validate(const pb_config *c, const char *what);

/* the shape of a weight set (width segments: the hidden size may change between steps; pruned
 * heads: the attention inner width a = heads * head_dim may differ from d) */
typedef struct {
  int hidden;           /* d of this set */
  int heads;            /* A */
  int ffn;              /* F */
  int head_dim;         /* hd: width of one head (d / A unless pb_model_set_shape says otherwise) */
} pb_width;
/* the attention inner width a = A * hd of a set: query/key/value [a,d], attention output [d,a] */
static inline int pb_width_attn(pb_width w) { return w.heads * w.head_dim; }

/* indices into the parameter table of one encoder layer's tensors */
typedef struct {
  int qw, qb, kw, kb, vw, vb;   /* attention.self.{query,key,value}.{weight [a,d], bias [a]} (a = d by default) */
  int ow, ob, ln1w, ln1b;       /* attention.output.dense [d,a],[d]; attention.output.LayerNorm [d] */
  int iw, ib;                   /* intermediate.dense [F,d], [F] */
  int fw, fb, ln2w, ln2b;       /* output.dense [d,F], [d]; output.LayerNorm [d] */
} pb_layer_idx;

/* saved activations of one layer, all pointers into the activation block (N = B*T rows) */
typedef struct {
  float *q, *k, *v;        /* [N,a] projections (after linear hooks); a = the step's attention width */
  float *probs;            /* [B,A,T,P+T] softmax before dropout (P: key/value prefix rows, 0 without) */
  float *ctx;              /* [N,a] attention context, input of the output projection */
  float *attn_o;           /* [N,d] output projection after dropout = attention sublayer hook input */
  float *ln1_in;           /* [N,d] residual sum h_prev + sublayer(attn_o) */
  float *ln1_mean, *ln1_rstd; /* [N] */
  float *ln1;              /* [N,d] LayerNorm output = FFN input */
  float *ffn_pre;          /* [N,F] intermediate before GELU */
  float *ffn_act;          /* [N,F] after GELU */
  float *ffn_o;            /* [N,d] output dense after dropout = FFN sublayer hook input */
  float *ln2_in;           /* [N,d] residual sum ln1 + sublayer(ffn_o) */
  float *ln2_mean, *ln2_rstd; /* [N] */
  float *ln2;              /* [N,d] LayerNorm output */
  float *out;              /* [N,d] layer output: ln2 + layer hook (aliases ln2 without one) */
  float *kx, *vx;          /* [B,P+T,a] prefix rows then k / v (only with a key/value prefix) */
  float *in;               /* [N,d] step input made by the width hook (only where the width changes) */
} pb_layer_acts;

/* the tensors of a pooler + classifier head (the model's own, or a method's exit head) */
typedef struct {
  int pool_w, pool_b;      /* pooler dense [d,d], [d]; both -1: no dense, the pooler is tanh([CLS]) alone */
  int cls_w, cls_b;        /* classifier [C,d], [C] */
} pb_head_idx;

/* activations of one head over up to B rows (pb_head_acts_floats / pb_head_acts_layout) */
typedef struct {
  float *cls;              /* [B,d] [CLS] rows of the hidden states the head read */
  float *pooled;           /* [B,d] tanh(pooler) */
  float *pooled_drop;      /* [B,d] after dropout = classifier input */
  float *logits;           /* [B,C] */
  float *probs;            /* [B,C] softmax (classification) */
  float *dsmall;           /* [4*B*d + B*C] backward scratch */
  int B;                   /* rows of the last forward */
  int training;            /* dropout was on */
  uint64_t seed;           /* its dropout seed */
  const int *labels;       /* [B] or NULL (borrowed until the next forward) */
  const float *targets;    /* [B] or NULL */
  const float *kd_logits;  /* [B,C] the teacher's logits its loss distilled from (NULL: none) */
} pb_head_acts;

/* one entry of the hook chain */
typedef struct {
  const pb_hook_ops *ops;
  void *ctx;
  float *acts;             /* its activation block (inside act_mem), NULL when it asked for none */
  size_t nfloats;
} pb_hook_inst;

#define PB_NDBUF 10
typedef struct {
  float *emb_sum;          /* [N,d] word + position + type */
  float *emb_word;         /* [N,r] gathered rows E[ids] of factorised word embeddings (NULL unless
                              pb_model_factor_word; their projection E[ids] P^T goes through dbuf[0]) */
  float *emb_mean, *emb_rstd; /* [N] */
  float *emb_ln;           /* [N,d] LayerNorm output before dropout */
  float *h0;               /* [N,d] embedding output (after dropout) = input of layer 0 */
  pb_layer_acts *layer;    /* [L] */
  pb_head_acts head;       /* the model's head over the rows that reached the last step */
  float *logits;           /* [B,C] logits of every batch row (the head's, or an exit's) */
  float *probs;            /* [B,C] softmax of logits (classification) */
  /* backward scratch */
  float *dbuf[PB_NDBUF];   /* [N,max(d,a)] each (the largest over the steps) */
  float *dbuf_f[2];        /* [N,F] each */
  float *dscratch;         /* [B,A,T,P+T] */
  float *dkv;              /* [B,P+T,a] x 2 + [P,a] x 2: key / value + prefix gradients (with a prefix) */
  /* early exit (rows leave the batch after an after_layer hook finished them) */
  int *rows;               /* [B] batch row of each running row */
  unsigned char *done;     /* [B] after_layer's verdicts */
  int *exit_step;          /* [B] last step each batch row ran */
  int *run_ids, *run_types, *run_mask; /* [B*T] the running rows' inputs once rows left */
  int *run_labels;         /* [B] */
  float *run_targets;      /* [B] */
  const float **lin_in;    /* [S*PB_LIN_COUNT] input each linear site multiplied (x, or a linear_in hook's x') */
} pb_acts;

/* Knowledge distillation from a teacher's outputs on the same batch (pb_model_set_kd). Active
 * only in a training forward with labels (or targets); rows never leave such a forward.
 *   prediction: every head's loss (the model's and every exit's, pb_head_fwd) becomes
 *     (1 - alpha) * task loss + alpha * KD, KD = pb_kd_ce_fwd(z, logits, tau) for classes,
 *     MSE(z, logits) for regression (C = 1);
 *   representation: loss += beta * pb_mse_pair_fwd(step l's output, hidden[l], B*T*d) for every
 *     step l with hidden[l] != NULL (all B*T positions, padding too, as TinyBERT's MSE).
 * The pointers are the caller's (the teacher's buffers, filled before each student forward);
 * hidden[l] must have step l's width. Charges: the kernels' (ops.h), prediction terms under the
 * owner of the head (+ 3 FLOP to mix the two losses and B*C to scale the task gradient by
 * 1 - alpha; regression: 3B for the gradient of alpha * MSE), representation terms under
 * PB_OPO_HEAD (+ 2 FLOP each for beta and the sum, + 1 to add them to the loss). */
typedef struct {
  float alpha;               /* prediction weight in [0,1] (0: none) */
  float tau;                 /* temperature (> 0) */
  float beta;                /* representation weight (>= 0; 0: none) */
  const float *logits;       /* [B,C] the teacher's logits of this batch */
  const float *const *hidden; /* [S] per student step: the teacher's [B,T,d] hidden states, or NULL */
} pb_kd;

typedef struct pb_model {
  pb_config cfg;
  pb_params params;        /* the one parameter table */
  int word, pos, type, emb_lnw, emb_lnb; /* embedding tensor indices (word [V,d], or [V,r] factorised) */
  int word_proj;           /* bert.embeddings.word_embeddings_proj.weight [d,r] (-1: not factorised) */
  int word_rank;           /* r of factorised word embeddings (0: none; pb_model_factor_word) */
  pb_layer_idx *layer;     /* [L] weight sets (one per layer) */
  pb_width *width;         /* [L] their shapes (cfg's unless pb_model_set_width / pb_model_set_shape) */
  int pool_w, pool_b;      /* bert.pooler.dense [d,d], [d] */
  int cls_w, cls_b;        /* classifier [C,d], [C] */
  pb_head_idx head;        /* the four above */

  int steps;               /* S: encoder steps (L unless a plan says otherwise) */
  int *plan;               /* [S] weight set of step s (identity by default) */
  int ode_steps;           /* S': steps a forward runs (0: all S, the plain forward; pb_model_set_ode_steps) */
  float ode_h;             /* their step size S/S' (used only when ode_steps > 0) */
  int prefix;              /* P: key/value prefix rows a hook gives (0: none) */

  void *latent;            /* latent compression's width map (backbone/latent.h; NULL: none), freed with the model */
  pb_hook_inst hooks[PB_MAX_HOOKS]; /* the chain, in the order methods attached */
  int n_hooks;

  int B, T;                /* activation capacity */
  float *act_mem;          /* the one activation allocation */
  size_t act_floats;
  pb_acts acts;
  int *zero_types;         /* [B*T] zeros, used when a forward gets no token types */
  int *row_ids;            /* [B*T] 0, 1, ..., B*T-1 (factorised word embeddings only, else NULL) */

  /* last forward */
  int cur_B, cur_T;
  const int *ids, *types, *mask; /* [B*T], borrowed until the next forward */
  const int *labels;       /* [B] or NULL */
  const float *targets;    /* [B] or NULL */
  int exited;              /* rows an after_layer hook finished early in the last forward */
  int count_last;          /* counting-only runs: step after which every row leaves (-1: none) */
  float loss;
  int training;            /* dropout on */
  int no_head;             /* set by the caller: forwards stop after the encoder, no pooler, classifier or
                              loss (retrieval encoders read the last step's hidden states and go back with
                              pb_backward_hidden); logits are then left as they were */
  int infer_only;          /* allocated by pb_model_alloc_infer with shared layer buffers */
  uint64_t seed;           /* dropout seed of the current step */
  pb_kd kd;                /* distillation (all zero: none; pb_model_set_kd) */
  int kd_on;               /* the last forward added distillation terms (its backward adds theirs) */

  /* what the last pb_model_load_hf found for the task head (classifier.*) */
  int hf_head;             /* PB_HF_HEAD_* */
  char hf_head_note[1024]; /* for PB_HF_HEAD_MISMATCH: file, tensor, both shapes */
} pb_model;

enum {
  PB_HF_HEAD_NONE = 0,     /* no HF checkpoint was loaded */
  PB_HF_HEAD_ABSENT,       /* the checkpoint has no classifier: the head keeps its initialisation */
  PB_HF_HEAD_LOADED,       /* the checkpoint's classifier was loaded */
  PB_HF_HEAD_IGNORED,      /* it has a fitting classifier, not loaded (asked for a new head) */
  PB_HF_HEAD_MISMATCH      /* it has a classifier of another shape (not loaded) */
};

int pb_model_declare(pb_model *m, const pb_config *cfg);
/* Appends a hook table to the chain (before pb_model_alloc). PB_ERR_ARG when the chain is full
 * or a second hook would take a non-additive point (see hooks.h). */
int pb_model_add_hooks(pb_model *m, const pb_hook_ops *ops, void *ctx);
/* Layer plan (after declare, before methods attach and before alloc): S steps, step s running
 * weight set plan[s] in 0..L-1 (several steps may share one set; their gradients add up in it).
 * plan NULL: the identity (S must be L). */
int pb_model_set_plan(pb_model *m, int steps, const int *plan);
/* Distillation terms of later training forwards (see pb_kd); kd NULL turns them off.
 * PB_ERR_ARG: alpha outside [0,1], tau <= 0, beta < 0, alpha > 0 without logits, beta > 0
 * without hidden, more than 64 labels. */
int pb_model_set_kd(pb_model *m, const pb_kd *kd);
static inline int pb_model_steps(const pb_model *m) { return m->steps; }
/* ODE-step inference (README "Parameter sharing and ODE steps"): the next forwards run S' of the S
 * steps. Executed step j = 0..S'-1 is model step sigma(j) = floor(j*S/S') (its weight set
 * plan[sigma(j)], its hooks called with l = sigma(j)) with step size h = S/S' on both residual
 * updates: u = LN1(x + h*Attn(x)), y = LN2(u + h*FFN(u)), the sublayer output taken after dropout
 * and any sublayer hook (pb_add_scaled: N*d FLOPs more per update; backward scales its gradient, N*d
 * more). S' = S is the plain forward, bit for bit. Any time (also after alloc) between forwards;
 * backward follows the last forward's steps. 1 <= S' <= S, else PB_ERR_ARG; S' < S with an
 * after_layer hook (early exit) or a width change: PB_ERR_UNSUPPORTED. */
int pb_model_set_ode_steps(pb_model *m, int steps);
/* steps a forward runs (S' or S) and the model step executed step j runs */
static inline int pb_model_run_steps(const pb_model *m) { return m->ode_steps ? m->ode_steps : m->steps; }
static inline int pb_model_run_step(const pb_model *m, int j) {
  return m->ode_steps ? (int)((long long)j * m->steps / m->ode_steps) : j;
}
/* [cur_B*cur_T, d] output of the last executed step of the last forward (the embeddings with 0 steps) */
const float *pb_model_last_hidden(const pb_model *m);
/* weight set of step s, and its width */
static inline const pb_layer_idx *pb_model_step_weights(const pb_model *m, int s) { return &m->layer[m->plan[s]]; }
static inline pb_width pb_model_step_width(const pb_model *m, int s) { return m->width[m->plan[s]]; }
/* Width segments (after declare, before methods attach and before alloc): weight sets
 * first..L-1 are declared again at width (hidden, heads, ffn) (their tensors get the new shapes;
 * values come from init or a load), and the pooler + classifier follow the width of the last
 * step. Where consecutive steps (or the embeddings and step 0) differ in width, a hook must give
 * width_fwd/width_bwd (hooks.h). */
int pb_model_set_width(pb_model *m, int first, int hidden, int heads, int ffn);
/* Shape of one weight set (after declare, before methods attach and before alloc): w.hidden d,
 * w.heads A, w.head_dim hd and w.ffn F, all >= 1; the attention inner width a = A*hd may differ
 * from d (pruned heads, COST-EFF): query/key/value weight [a,d], bias [a], attention output
 * dense [d,a]; the FFN [F,d] / [d,F]. Tensors of the set get the new shapes (values from init or
 * a load). The step's attention runs A heads of hd over a columns; a key/value prefix
 * (kv_prefix) gives rows of width a; linear hooks see in/out = d/a at query, key, value
 * (out a) and attn_out (in a). pb_model_set_width(m, first, d, A, F) is this call on every set
 * from first with hd = d / A. */
int pb_model_set_shape(pb_model *m, int set, pb_width w);
/* 1 when every step has the config's shape (no width segments, hd = d / A, F as configured) */
int pb_model_width_uniform(const pb_model *m);
/* Factorised word embeddings (after declare, before methods attach and before alloc; COST-EFF's
 * SVD of the embedding matrix): bert.embeddings.word_embeddings.weight becomes E [V,r] and the
 * backbone tensor bert.embeddings.word_embeddings_proj.weight P [d,r] (no bias) maps it:
 * embeddings = E[ids] P^T + position + token type (N*r*d MACs, then the 2*N*d adds of the plain
 * embedding sum). 1 <= rank < d and rank <= V, else PB_ERR_ARG. A second call changes the rank. */
int pb_model_factor_word(pb_model *m, int rank);
/* r of factorised word embeddings, 0 when they are not factorised */
static inline int pb_model_word_rank(const pb_model *m) { return m->word_rank; }
/* [C] logits of batch row `row` of the current forward: where an exit hook writes its
 * prediction for a row it finishes */
float *pb_model_row_logits(pb_model *m, int row);
/* last step batch row `row` ran in the last forward (S-1 unless an exit finished it) */
int pb_model_exit_step(const pb_model *m, int row);

/* A pooler + classifier head on the [CLS] rows of any hidden states h [B,T,d] (the model's own
 * head runs through these too). Floats of its activations for B rows, and their layout. */
size_t pb_head_acts_floats(const pb_model *m, const pb_head_idx *hd, int B);
void pb_head_acts_layout(pb_head_acts *ha, float *base, const pb_model *m, const pb_head_idx *hd, int B);
/* the width a head reads (its pooler's input size) */
int pb_head_width(const pb_model *m, const pb_head_idx *hd);
/* logits in ha->logits; with labels (C > 1) or targets (C = 1) the mean loss in *loss. Dropout on
 * the pooled vector when training (seeded by seed). Charged to the current op owner. */
int pb_head_fwd(pb_model *m, const pb_head_idx *hd, pb_head_acts *ha, const float *h, int B, int T,
                const int *labels, const float *targets, int training, uint64_t seed, float *loss);
/* backward of the last pb_head_fwd of ha for a loss weighted by `weight`: the head's trainable
 * tensors accumulate their gradients and dh [B,T,d] += the gradient at the [CLS] rows */
int pb_head_bwd(pb_model *m, const pb_head_idx *hd, pb_head_acts *ha, int T, float weight, float *dh);
/* allocates parameter families (if not yet) and activations for batches up to B x T */
int pb_model_alloc(pb_model *m, int B, int T);
/* the same for forward passes only: without hooks (no method attached) or with width maps only
 * (a compressed model, backbone/latent.h), layers share two sets of activation buffers and no
 * backward scratch exists (bert-base at batch 8: 0.75 GB less), and pb_backward fails; with
 * other hooks, exactly pb_model_alloc */
int pb_model_alloc_infer(pb_model *m, int B, int T);
void pb_model_free(pb_model *m);
/* BERT init: normal(0, init_range) weights, zero biases, LayerNorm 1/0; method tensors per their init */
void pb_model_init_random(pb_model *m, uint64_t seed);
/* Tensor pointer helpers */
static inline float *pb_w(pb_model *m, int idx) { return m->params.t[idx].data; }
static inline float *pb_g(pb_model *m, int idx) { return m->params.t[idx].grad; }

/* Lets the installed method do its one-time work for a mode (e.g. materialise generated
 * weights for inference) outside any measured window. pb_forward does it too, when needed.
 * Needs the activations (pb_model_alloc) when a hook has set_mode. */
int pb_model_prepare(pb_model *m, int training);

/* Forward over ids/types/mask [B,T] (B <= capacity, T <= capacity). With training != 0 dropout
 * is on, seeded by `seed`. labels (classification) or targets (regression, C = 1) may both be
 * NULL (no loss). Logits land in m->acts.logits [B,C]; the loss in *loss (if non-NULL). */
int pb_forward(pb_model *m, const int *ids, const int *types, const int *mask, int B, int T,
               const int *labels, const float *targets, int training, uint64_t seed, float *loss);
/* Backward of the last forward (which must have had labels/targets): accumulates into the
 * gradients of every trainable tensor. Frozen weights get no gradient work. */
int pb_backward(pb_model *m);

/* Backward of the last forward from an external gradient wrt the last layer's output
 * dout [B*T, d] (e.g. a masked-language-model head), skipping the classification head. */
int pb_backward_hidden(pb_model *m, const float *dout);

/* Op count by execution: runs pb_forward over B x T real tokens (and with PB_COUNT_TRAIN the
 * config's dropout, the loss and pb_backward; PB_COUNT_CLIP pb_params_clip_grad_norm with
 * max_norm 1; PB_COUNT_ADAMW one pb_adamw_step, both charged to the optimizer owner) in
 * counting-only mode (counters/opcount.h): the same code path as a real step, every kernel and
 * hook charging what it would compute and computing nothing. Adds the counts into *out.
 * m as it is decides the count (trainable flags, installed hooks, a merged method). Works on a
 * model that was only declared (its parameters are laid out in reserved address space for the
 * run) and at any B x T up to max_pos (the run gets its own reserved activation block, which
 * nothing touches). Values, gradients, activations, the last forward and the counter's own
 * state are left as they were; the method's hook `reserve` is called again with the model's
 * own block. Bert-base costs milliseconds. */
enum { PB_COUNT_INFER = 0, PB_COUNT_TRAIN = 1, PB_COUNT_CLIP = 2, PB_COUNT_ADAMW = 4 };
int pb_model_count(pb_model *m, int B, int T, int flags, pb_opcounts *out);
/* Inference count of B x T rows that all leave after step `last` (0..S-1; S-1 = no early exit):
 * steps 0..last, the after_layer hooks of those steps, and the model's head only when last is
 * the final step. Per-example exact: a row that exits at step k costs pb_model_count_exit(m, 1,
 * T, k). */
int pb_model_count_exit(pb_model *m, int B, int T, int last, pb_opcounts *out);

/* A short fingerprint of the backbone (config + frozen backbone values), hex, 16 chars. */
void pb_model_fingerprint(const pb_model *m, char out[17]);

#endif
