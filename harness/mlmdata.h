/* The pre-training batches of `pretrain` (harness/pretrain.h): masked packed sequences of a
 * corpus (harness/corpus.h), as the trainer's batch source (harness/trainer.h pb_batch).
 *
 *  split   a seeded shuffle of the GLUE sequences; the first n_val (1%, at most 512, at least
 *          1 when there are >= 20) are held out for validation, the rest and every extra-text
 *          sequence train (the same held-out set with or without extra text)
 *  stream  step t (1-based) takes the training sequences (t-1)*B .. t*B-1 of an endless stream
 *          of per-epoch seeded shuffles of the training set (pb_mlm_data_step)
 *  rows    the packed rows as they are (token types 0), or with nsp next-sentence pairs
 *          [CLS] A [SEP] B' [SEP] (types 0 then 1): B' is the row's own second part (label 0)
 *          or, with probability 1/2, another training sequence's (label 1)
 *  masking BERT's 80/10/10 per token, or whole words (wwm), backbone/mlm.h
 * Everything is a function of (seed, t) or of the seed a caller passes, so a resumed run
 * sees the same batches. */
#ifndef PB_MLMDATA_H
#define PB_MLMDATA_H

#include <stdint.h>

#include "backbone/tokenizer.h"
#include "harness/corpus.h"
#include "harness/trainer.h"

typedef struct {
  const pb_corpus *cp;       /* the packed sequences (not owned) */
  uint64_t seed;             /* split, epoch order */
  int B;                     /* sequences per step */
  float mask_prob;
  int wwm;                   /* whole-word masking */
  int V, mask_id;            /* vocabulary size, [MASK] */
  int special[3];            /* [PAD], [CLS], [SEP]: never masked */
  unsigned char *cont;       /* [V] 1 for "##" continuation pieces (wwm) */
  int *train_idx, n_train;   /* [n_train] sequence indices of the training set */
  int *val_idx, n_val;       /* [n_val] held-out sequences */
  int *perm, perm_epoch;     /* [n_train] the current epoch's order, its epoch (-1: none) */
  int *seq;                  /* [B] the sequences of the last pb_mlm_data_step */
  /* batch buffers [B*T] (T = the corpus's), b_nsp [B] */
  int *b_ids, *b_mask, *b_in, *b_lab, *b_types, *b_nsp;
} pb_mlm_data;

/* The split and the buffers for batches of up to B sequences of cp (kept by pointer). */
int pb_mlm_data_init(pb_mlm_data *d, const pb_corpus *cp, const pb_tokenizer *tk, int B, uint64_t seed,
                     float mask_prob, int wwm);
void pb_mlm_data_free(pb_mlm_data *d);
/* Every sequence of the corpus held out, in corpus order (an evaluation corpus: none trains). */
int pb_mlm_data_hold_out_all(pb_mlm_data *d, const pb_corpus *cp);

/* d->seq[0..B) = step t's training sequences */
void pb_mlm_data_step(pb_mlm_data *d, int t);

/* Rows of the sequences seq[0..B) (nsp: pairs, drawn from seed) masked with seed into *b
 * (ids = the masked input, labels = [B*T] MLM targets, types and pair_labels with nsp,
 * items = real tokens). Returns the number of masked tokens (>= 0) or a negative status. */
int pb_mlm_data_batch(pb_mlm_data *d, const int *seq, int B, int nsp, uint64_t seed, pb_batch *b);

#endif
