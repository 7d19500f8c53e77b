/* The shared BERT encoder (post-LN, as bert-base): embeddings + LayerNorm, L layers of
 * multi-head self-attention and GELU FFN each followed by residual + LayerNorm, a tanh pooler
 * on [CLS] and a task head (C logits, or 1 for regression). fp32, forward and backward.
 *
 * Life cycle:
 *   pb_model_declare(m, cfg)       backbone + head tensors enter the parameter table
 *   (a method attaches: adds tensors, flips trainable flags, installs hooks)
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

/* indices into the parameter table of one encoder layer's tensors */
typedef struct {
  int qw, qb, kw, kb, vw, vb;   /* attention.self.{query,key,value}.{weight [d,d], bias [d]} */
  int ow, ob, ln1w, ln1b;       /* attention.output.dense [d,d],[d]; attention.output.LayerNorm [d] */
  int iw, ib;                   /* intermediate.dense [F,d], [F] */
  int fw, fb, ln2w, ln2b;       /* output.dense [d,F], [d]; output.LayerNorm [d] */
} pb_layer_idx;

/* saved activations of one layer, all pointers into the activation block (N = B*T rows) */
typedef struct {
  float *q, *k, *v;        /* [N,d] projections (after linear hooks) */
  float *probs;            /* [B,A,T,T] softmax before dropout */
  float *ctx;              /* [N,d] attention context, input of the output projection */
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
} pb_layer_acts;

#define PB_NDBUF 10
typedef struct {
  float *emb_sum;          /* [N,d] word + position + type */
  float *emb_mean, *emb_rstd; /* [N] */
  float *emb_ln;           /* [N,d] LayerNorm output before dropout */
  float *h0;               /* [N,d] embedding output (after dropout) = input of layer 0 */
  pb_layer_acts *layer;    /* [L] */
  float *cls;              /* [B,d] [CLS] rows of the last layer */
  float *pooled;           /* [B,d] tanh(pooler) */
  float *pooled_drop;      /* [B,d] after dropout = classifier input */
  float *logits;           /* [B,C] */
  float *probs;            /* [B,C] softmax (classification) */
  /* backward scratch */
  float *dbuf[PB_NDBUF];   /* [N,d] each */
  float *dbuf_f[2];        /* [N,F] each */
  float *dscratch;         /* [B,A,T,T] */
  float *dsmall;           /* [4*B*d + B*C] head gradients */
} pb_acts;

typedef struct pb_model {
  pb_config cfg;
  pb_params params;        /* the one parameter table */
  int word, pos, type, emb_lnw, emb_lnb; /* embedding tensor indices */
  pb_layer_idx *layer;     /* [L] */
  int pool_w, pool_b;      /* bert.pooler.dense [d,d], [d] */
  int cls_w, cls_b;        /* classifier [C,d], [C] */

  const pb_hook_ops *hooks;/* installed by a method; NULL = plain backbone */
  void *hook_ctx;
  float *hook_acts;        /* method activation block (inside act_mem) */

  int B, T;                /* activation capacity */
  float *act_mem;          /* the one activation allocation */
  size_t act_floats;
  pb_acts acts;
  int *zero_types;         /* [B*T] zeros, used when a forward gets no token types */

  /* last forward */
  int cur_B, cur_T;
  const int *ids, *types, *mask; /* [B*T], borrowed until the next forward */
  const int *labels;       /* [B] or NULL */
  const float *targets;    /* [B] or NULL */
  float loss;
  int training;            /* dropout on */
  int infer_only;          /* allocated by pb_model_alloc_infer with shared layer buffers */
  uint64_t seed;           /* dropout seed of the current step */

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
void pb_model_set_hooks(pb_model *m, const pb_hook_ops *ops, void *ctx);
/* allocates parameter families (if not yet) and activations for batches up to B x T */
int pb_model_alloc(pb_model *m, int B, int T);
/* the same for forward passes only: without hooks (no method attached), layers share two sets
 * of activation buffers and no backward scratch exists (bert-base at batch 8: 0.75 GB less),
 * and pb_backward fails; with hooks, exactly pb_model_alloc */
int pb_model_alloc_infer(pb_model *m, int B, int T);
void pb_model_free(pb_model *m);
/* BERT init: normal(0, init_range) weights, zero biases, LayerNorm 1/0; method tensors per their init */
void pb_model_init_random(pb_model *m, uint64_t seed);
/* Tensor pointer helpers */
static inline float *pb_w(pb_model *m, int idx) { return m->params.t[idx].data; }
static inline float *pb_g(pb_model *m, int idx) { return m->params.t[idx].grad; }

/* Lets the installed method do its one-time work for a mode (e.g. materialise generated
 * weights for inference) outside any measured window. pb_forward does it too, when needed.
 * Needs the activations (pb_model_alloc) when the method has a set_mode hook. */
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

/* A short fingerprint of the backbone (config + frozen backbone values), hex, 16 chars. */
void pb_model_fingerprint(const pb_model *m, char out[17]);

#endif
