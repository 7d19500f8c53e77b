/* COIL training through the one trainer (harness/trainer.h): batches of Q training queries,
 * each with a group of G documents (its positive first, then G-1 negatives), and the
 * softmax cross-entropy of each query's scores against its positive, over its own group or
 * (in_batch, the default) over every document of the batch (in-batch negatives).
 *
 * Batches: the training queries in a seeded order reshuffled at every epoch (seed ^ 0xC011);
 * the positive drawn uniformly from the query's relevant documents (grade >= 1), the
 * negatives without replacement from its hard-negative pool (the BM25 top-`depth` documents
 * not judged relevant), topped up with uniformly drawn documents not judged relevant when the
 * pool is short (depth 0: random negatives only). Dropout seed of step t: pb_hash64(seed *
 * 1000003 + t) for the queries, its hash for the documents.
 *
 * One step's objective: encode the queries, encode the documents, score, loss; backward
 * through the scores, the documents' encoder (its activations are the model's), then the
 * queries' encoder after encoding them again with the same dropout seed (recomputation:
 * one model holds one forward's activations). The re-encoding is real work and is counted. */
#ifndef PB_COILTRAIN_H
#define PB_COILTRAIN_H

#include <cjson/cJSON.h>

#include "backbone/bert.h"
#include "backbone/tokenizer.h"
#include "harness/coil.h"
#include "util/rng.h"

/* texts encoded as [CLS] text [SEP] (truncated to T), row-major [n, T] */
typedef struct {
  int n, T;
  int *ids, *mask, *len;
  int n_truncated;
} pb_ir_texts;

int pb_ir_texts_encode(const pb_tokenizer *tk, char *const *texts, int n, int T, pb_ir_texts *out);
void pb_ir_texts_free(pb_ir_texts *e);
/* rows idx[0..B) into ids/mask [B, Tb] with Tb = their longest length (returned) */
int pb_ir_texts_batch(const pb_ir_texts *e, const int *idx, int B, int *ids, int *mask);

typedef struct {
  pb_model *m;
  const pb_coil *co;
  int Q, G, in_batch;
  int Tq_max, Tp_max;
  /* the current batch */
  int Qb, Tq, Tp;
  int *qids, *qmask;        /* [Q, Tq_max] */
  int *dids, *dmask;        /* [Q*G, Tp_max] */
  /* the step's buffers */
  float *qtok, *qcls, *qcin;   /* [Q*Tq,k], [Q,c], [Q,d] */
  float *dtok, *dcls, *dcin;   /* [Q*G*Tp,k], [Q*G,c], [Q*G,d] */
  float *scores, *probs, *dscores; /* [Q, S] */
  float *dqtok, *dqcls, *ddtok, *ddcls;
  float *dh, *dhc;             /* [max rows, d], [Q*G, d] */
  int *argmax;                 /* [Q*S, Tq] */
  int *labels;                 /* [Q] */
  /* the data (borrowed) */
  const pb_ir_texts *queries, *docs;
  int n_train;
  const int *train_q;          /* [n_train] query positions */
  const int *pos_off, *pos_doc;   /* CSR over the n_train queries: relevant documents */
  const int *neg_off, *neg_doc;   /* hard-negative pools */
  const unsigned char *judged_rel; /* [n_train * n_docs] 1 where judged relevant */
  unsigned long long seed;
  pb_rng rng;
  int *order, pos;
  /* training record */
  int total, curve_every, clip, n_clipped, steps;
  float lr;
  double loss_sum, final_loss;
  int loss_n;
  cJSON *curve;
} pb_coil_train;

int pb_coil_train_alloc(pb_coil_train *t, pb_model *m, const pb_coil *co, int Q, int G, int in_batch, int Tq_max,
                        int Tp_max);
void pb_coil_train_free(pb_coil_train *t);
/* The loss of the current batch (qids/qmask: Qb rows of Tq; dids/dmask: Qb*G rows of Tp),
 * and with backward its gradients accumulated into the model's trainable tensors. */
int pb_coil_group_step(pb_coil_train *t, uint64_t seed, int training, int backward, float *loss);
/* fills the batch of step t from the data (see above) */
int pb_coil_next_batch(pb_coil_train *t);
/* trains `total` steps with opt, clipping at max_grad_norm (0: none) */
int pb_coil_train_run(pb_coil_train *t, const pb_adamw *opt, int total, double max_grad_norm, int curve_every,
                      int quiet);

#endif
