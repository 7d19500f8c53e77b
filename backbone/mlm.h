/* Masked-language-model head (HF BertForMaskedLM's cls.predictions) and BERT masking.
 *
 * Head, per masked row x [d] of the last encoder layer:
 *   t = GELU(x Wt^T + bt)                 cls.predictions.transform.dense.{weight [d,d], bias [d]}
 *   h = LayerNorm(t) (eps = layer_norm_eps) cls.predictions.transform.LayerNorm.{weight, bias} [d]
 *   logits = h Wword^T + bias             decoder tied to bert.embeddings.word_embeddings.weight [V,d],
 *                                         cls.predictions.bias [V]
 * Loss: softmax cross-entropy, mean over the masked rows only (logits are computed ONLY at
 * masked rows). Backward accumulates into the head's gradients, the word-embedding gradient
 * (tied decoder) and, through pb_backward_hidden, every trainable backbone tensor.
 *
 * Life cycle:
 *   pb_model_declare(m, cfg); pb_mlm_declare(&h, m);  (head tensors enter the table, trainable)
 *   pb_model_alloc(m, B, T); pb_mlm_alloc(&h, m, max_masked);
 *   per step: pb_mlm_mask -> pb_forward(..., labels NULL, training) -> pb_mlm_forward ->
 *             pb_params_zero_grad -> pb_mlm_backward -> pb_adamw_step
 * Work is charged to the HEAD op owner. */
#ifndef PB_MLM_H
#define PB_MLM_H

#include <stdint.h>

#include "backbone/bert.h"

#define PB_MLM_IGNORE (-100) /* label of a position that is not predicted (as HF) */

typedef struct {
  int dense_w, dense_b;  /* parameter-table indices: transform.dense [d,d], [d] */
  int ln_w, ln_b;        /* transform.LayerNorm [d], [d] */
  int bias;              /* cls.predictions.bias [V] */
  int cap;               /* capacity in masked rows (max_masked) */
  int M;                 /* masked rows of the last forward */
  int *rows;             /* [cap] row index (b*T + t) of each masked row */
  int *labels;           /* [cap] target token id of each masked row */
  float *x;              /* [cap,d] gathered last-layer rows */
  float *pre;            /* [cap,d] transform.dense output, before GELU */
  float *act;            /* [cap,d] GELU output = LayerNorm input */
  float *ln_mean, *ln_rstd; /* [cap] */
  float *h;              /* [cap,d] LayerNorm output = decoder input */
  float *logits;         /* [cap,V] logits; reused for d(logits) in backward */
  float *probs;          /* [cap,V] softmax */
  float *dh, *dact, *dpre, *dx; /* [cap,d] backward scratch */
  float *dout;           /* [B*T,d] gradient wrt the last layer output (model capacity) */
  float loss;            /* mean CE of the last forward */
} pb_mlm;

/* Declares the head tensors (owner HEAD, trainable, stored) into m's table; call after
 * pb_model_declare and before pb_model_alloc. Their init: dense normal(init_range), biases 0,
 * LayerNorm 1/0 (so pb_model_init_random covers them). */
int pb_mlm_declare(pb_mlm *h, pb_model *m);
/* Scratch for up to max_masked masked rows per batch; call after pb_model_alloc. */
int pb_mlm_alloc(pb_mlm *h, const pb_model *m, int max_masked);
void pb_mlm_free(pb_mlm *h);

/* MLM loss of the last pb_forward: labels [B*T] (cur_B x cur_T of the forward) hold the
 * target id at predicted positions and PB_MLM_IGNORE elsewhere. At least one position must
 * be predicted. *loss (may be NULL) receives the mean CE. */
int pb_mlm_forward(pb_mlm *h, pb_model *m, const int *labels, float *loss);
/* Backward of the last pb_mlm_forward through the head and the whole encoder (accumulates). */
int pb_mlm_backward(pb_mlm *h, pb_model *m);

/* BERT masking of a batch ids [B,T] with attention mask [B,T] (1 real, 0 padding).
 * Per row, the candidates are real tokens that are not special (special [n_special] ids,
 * e.g. [CLS] [SEP] [PAD]); n_pred = max(1, round(prob * candidates)) of them (none if no
 * candidate, at most max_per_row if > 0) are picked uniformly without replacement
 * (original BERT's create_pretraining_data). Each picked token: with prob 0.8 -> mask_id,
 * 0.1 -> a uniform random id in [0, V), 0.1 -> unchanged. Outputs: out_ids [B,T] (the input
 * with replacements), labels [B,T] (original id at picked positions, PB_MLM_IGNORE
 * elsewhere). Deterministic in seed. Returns the number of picked tokens (>= 0) or a
 * negative status. */
int pb_mlm_mask(const int *ids, const int *mask, int B, int T, int V, int mask_id, const int *special,
                int n_special, float prob, int max_per_row, uint64_t seed, int *out_ids, int *labels);

/* Whole-word variant of pb_mlm_mask: a word is a non-special token that is not a WordPiece
 * continuation (cont[id] == 0) plus the continuation pieces (cont[id] != 0) that follow it;
 * a continuation piece without a word start before it is a word of its own. Per row
 * n_pred = max(1, round(prob * candidate tokens)) as above; words are visited in a seeded
 * random order and picked whole while the picked tokens stay <= n_pred (a word that would
 * exceed it is skipped, as original BERT's whole-word masking), then each picked token gets
 * the 80/10/10 rule independently. cont has V entries. Same outputs and return value. */
int pb_mlm_mask_wwm(const int *ids, const int *mask, int B, int T, int V, int mask_id, const int *special,
                    int n_special, const unsigned char *cont, float prob, uint64_t seed, int *out_ids, int *labels);

/* Upper bound of picked tokens per row for a row of T positions (for pb_mlm_alloc). */
int pb_mlm_max_per_row(int T, float prob);

/* Fills h->dout [cur_B*cur_T, d] with the MLM head's gradient wrt the last layer output
 * (and accumulates the head's and the tied embedding's gradients) WITHOUT the encoder
 * backward, so that another head (pb_nsp_backward) can add its share before
 * pb_backward_hidden(m, h->dout). pb_mlm_backward = this + pb_backward_hidden. */
int pb_mlm_backward_head(pb_mlm *h, pb_model *m);

/* ---------------------------------------------------------------- next-sentence head
 * HF BertForPreTraining's pooler + cls.seq_relationship, per row b of the batch:
 *   x = last-layer output at position 0 ([CLS]) [d]
 *   p = tanh(x Wp^T + bp)                bert.pooler.dense.{weight [d,d], bias [d]} (the model's)
 *   logits = p Ws^T + bs                 cls.seq_relationship.{weight [2,d], bias [2]}
 * Loss: 2-way softmax cross-entropy, mean over the B rows; label 0 = segment B follows
 * segment A in the text, 1 = B is from elsewhere (HF next_sentence_label). Backward
 * accumulates into Ws, bs, Wp, bp (when trainable) and ADDS d/dx into dout at rows b*T. */
typedef struct {
  int w, b;              /* parameter-table indices of cls.seq_relationship.{weight, bias} */
  int cap, B;            /* capacity (rows), rows of the last forward */
  int *labels;           /* [cap] */
  float *x, *pooled, *logits, *probs, *dpooled, *dpre, *dx; /* [cap,d] ([cap,2] for logits, probs) */
  float loss;            /* mean CE of the last forward */
  int correct;           /* rows whose argmax equals the label (last forward) */
} pb_nsp;

/* Declares cls.seq_relationship.* (owner HEAD, trainable, stored; weight normal(init_range),
 * bias 0) into m's table; after pb_model_declare, before pb_model_alloc. */
int pb_nsp_declare(pb_nsp *n, pb_model *m);
/* Scratch for up to m->B rows; after pb_model_alloc. */
int pb_nsp_alloc(pb_nsp *n, const pb_model *m);
void pb_nsp_free(pb_nsp *n);
/* Loss of the last pb_forward: labels [cur_B], each 0 or 1. */
int pb_nsp_forward(pb_nsp *n, pb_model *m, const int *labels, float *loss);
/* Backward of the last pb_nsp_forward: head + pooler gradients, d/dx added into dout. */
int pb_nsp_backward(pb_nsp *n, pb_model *m, float *dout);

#endif
