/* COIL (Gao, Dai and Callan, NAACL 2021): contextualised exact lexical match over the shared
 * backbone, with any method attached to it unchanged.
 *
 * Encoding a text ([CLS] tokens [SEP], WordPiece) of T positions: the backbone's last hidden
 * states h [T,d] (the model's pooler and classifier are not run: pb_model.no_head), then
 *   token vectors  v_j = W_tok h_j + b_tok      [T, k]   (coil.tok_proj, k = token dim, 32)
 *   [CLS] vector   c   = W_cls h_0 + b_cls      [c]      (coil.cls_proj, c = cls dim)
 * Score of query q (ids a_i, vectors u_i, [CLS] vector c_q) and document p (ids b_j, v_j, c_p):
 *   s(q, p) = c_q . c_p + sum_{i in Q} max(0, max_{j : b_j = a_i} u_i . v_j)
 * Q = the query's real tokens except [CLS] and [SEP] (with score_sep: except [CLS] only); a
 * token without a match adds 0. The 0 inside the max is the reference code's (luyug/COIL): its
 * masked max over the document positions includes the zeros of the non-matching ones. The
 * document's [CLS], [SEP] and padding positions are never matched (the index does not hold
 * them; no query token scored has their ids). Gradients go to the arg-max pair of each query
 * token whose max is > 0 (ties: the first document position).
 *
 * The inverted index holds, for every token id, the (document, vector) postings of every real
 * non-special position of every document, and the [CLS] vectors; retrieval scores every
 * document of the collection (no re-ranking): per scored query token, one dot product per
 * posting of its id, the per-document max, added to the document's score.
 *
 * Operation counts (charged to the op counter's head owner; counting-only runs skip the
 * arithmetic), with k the token dim, c the cls dim:
 *   projections of B x T positions   MAC B*T*d*k + B*d*c     FLOP B*T*k + B*c (biases)
 *       (+ act: relu B*T*k FLOP; LayerNorm 8*B*T*k FLOP + B*T rsqrt)
 *   pair score s(q, p)               MAC c + k*M             FLOP M + |Q|
 *       M = number of pairs (i in Q, j) with b_j = a_i
 *   search of one query over n docs  MAC n*c + k*P           FLOP P + D
 *       P = sum_{i in Q} |postings(a_i)|, D = sum_{i in Q} |documents in postings(a_i)|
 *   training loss over S scores      softmax_ce over [Q, S] (ops.h); its backward through the
 *       scores: per pair 2c MAC for the [CLS] vectors, per query token with a positive max 2k MAC
 */
#ifndef PB_COIL_H
#define PB_COIL_H

#include <stddef.h>
#include <stdint.h>

#include "backbone/bert.h"
#include "counters/opcount.h"

/* what follows the token projection (luyug/COIL offers a norm and a ReLU on token vectors) */
enum { PB_COIL_ACT_NONE = 0, PB_COIL_ACT_RELU = 1, PB_COIL_ACT_LN = 2 };

typedef struct {
  int d, k, c;              /* hidden, token dim, cls dim */
  int act;                  /* PB_COIL_ACT_*: v = act(W_tok h + b_tok) */
  int ln_w, ln_b;           /* coil.tok_norm.weight / .bias [k] (act LN; else -1) */
  float *pre, *dpre;        /* [rows, k] the projection before act, and its gradient (pb_coil_reserve) */
  float *mean, *rstd;       /* [rows] LayerNorm statistics */
  size_t rows;              /* capacity of those buffers */
  int tok_w, tok_b;         /* coil.tok_proj.weight [k,d], .bias [k] */
  int cls_w, cls_b;         /* coil.cls_proj.weight [c,d], .bias [c] */
  int score_sep;            /* 1: the query's [SEP] is scored too */
  int cls_id, sep_id, pad_id;
} pb_coil;

/* Declares the projections into m (after the method attached, before pb_model_alloc): owner
 * head, trainable, stored; the classifier tensors become neither trainable nor stored (the
 * task file holds the method's tensors plus the projections), and m->no_head is set. */
int pb_coil_declare(pb_coil *co, pb_model *m, int tok_dim, int cls_dim, int score_sep, int cls_id, int sep_id,
                    int pad_id);

/* The token activation (after pb_coil_declare, before pb_model_alloc): relu, or a LayerNorm
 * over the k dims (eps 1e-5, torch's nn.LayerNorm; coil.tok_norm.{weight,bias} [k], trainable,
 * stored). Charges: relu k FLOP per position (backward k), LayerNorm as ops.h's layernorm rows. */
int pb_coil_set_act(pb_coil *co, pb_model *m, int act);
/* buffers for encodings of up to `rows` positions (B*T); needed when act != none */
int pb_coil_reserve(pb_coil *co, size_t rows);
void pb_coil_free(pb_coil *co);

/* Encodes B x T inputs (ids, mask [B*T]) with the model: tok [B*T, k], cls [B, c]. training:
 * dropout with seed. cls_in [B, d] receives the [CLS] rows of h (kept for backward; may be the
 * caller's scratch). */
int pb_coil_encode(const pb_coil *co, pb_model *m, const int *ids, const int *mask, int B, int T, int training,
                   uint64_t seed, float *tok, float *cls, float *cls_in);
/* Backward of the last pb_coil_encode of m: gradients dtok [B*T,k], dcls [B,c] into the
 * projections' and the model's trainable tensors (pb_backward_hidden). dh [B*T,d] and dcin [B,d]
 * are scratch. */
int pb_coil_encode_bwd(const pb_coil *co, pb_model *m, int B, int T, const float *cls_in, const float *dtok,
                       const float *dcls, float *dh, float *dcin);
/* Counting-only: the ops of encoding B x T positions (backbone, method and projections) added
 * into *out. */
int pb_coil_count_encode(const pb_coil *co, pb_model *m, int B, int T, pb_opcounts *out);

/* 1 when query position i of a text of length len (ids) is scored */
int pb_coil_scored(const pb_coil *co, const int *ids, const int *mask, int i);

/* s(q, p) of one pair: query ids/mask/tok [Tq], cls; document ids/mask/tok [Tp], cls. With
 * argmax non-NULL, argmax[i] = the document position j of query token i's max (-1: none > 0). */
float pb_coil_score_pair(const pb_coil *co, const int *qids, const int *qmask, const float *qtok, const float *qcls,
                         int Tq, const int *dids, const int *dmask, const float *dtok, const float *dcls, int Tp,
                         int *argmax);
/* backward of one pair score with gradient g: into dqtok [Tq,k], dqcls [c], ddtok [Tp,k], ddcls [c] */
void pb_coil_score_pair_bwd(const pb_coil *co, float g, const int *argmax, int Tq, const float *qtok,
                            const float *qcls, const float *dtok, const float *dcls, float *dqtok, float *dqcls,
                            float *ddtok, float *ddcls);

/* ---------------------------------------------------------------- the inverted index */

typedef struct {
  int n_docs, k, c, vocab;
  float *cls;               /* [n_docs, c] */
  int *off;                 /* [vocab + 1] postings of id t: [off[t], off[t+1]) */
  int *doc;                 /* [P] document of each posting (ascending within a list) */
  float *vec;               /* [P, k] its token vector */
  long long n_postings;
  /* build state */
  int *cnt;                 /* [vocab] */
} pb_coil_index;

/* Builds the index from per-document encodings: for document i, ids/mask [T_i] and tok [T_i,k],
 * cls [c]. Two passes: pb_coil_index_count for every document, pb_coil_index_alloc, then
 * pb_coil_index_add for every document in order. */
int pb_coil_index_init(pb_coil_index *x, int n_docs, int k, int c, int vocab);
void pb_coil_index_count(pb_coil_index *x, const pb_coil *co, const int *ids, const int *mask, int T);
int pb_coil_index_alloc(pb_coil_index *x);
void pb_coil_index_add(pb_coil_index *x, const pb_coil *co, int doc, const int *ids, const int *mask,
                       const float *tok, int T, const float *cls);
/* bytes of the index's arrays (cls vectors, posting vectors, posting documents, list offsets) */
long long pb_coil_index_bytes(const pb_coil_index *x);
void pb_coil_index_free(pb_coil_index *x);
/* Scores every document for one encoded query: scores[n_docs]; maxbuf [n_docs] scratch.
 * Charged as above. */
int pb_coil_search(const pb_coil_index *x, const pb_coil *co, const int *qids, const int *qmask,
                   const float *qtok, const float *qcls, int Tq, float *scores, float *maxbuf, int *touched);
/* the closed form of one search's MACs and FLOPs (above) from the index's list sizes */
void pb_coil_search_closed_form(const pb_coil_index *x, const pb_coil *co, const int *qids, const int *qmask, int Tq,
                                uint64_t *macs, uint64_t *flops);

#endif
