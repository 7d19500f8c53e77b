/* Tokenised GLUE examples: fixed-width rows [n, max_len] of ids / types / mask, ready to be
 * packed into batches (each batch is cut to its longest row). */
#ifndef PB_ENCODE_H
#define PB_ENCODE_H

#include "backbone/tokenizer.h"
#include "harness/glue.h"

typedef struct {
  int n, max_len;
  int *ids, *types, *mask; /* [n, max_len] */
  int *len;                /* [n] real tokens of each row */
  int *label;              /* [n] class id (-1 unlabelled / regression) */
  float *target;           /* [n] regression target (STS-B) or (float)label */
  int n_truncated;         /* rows that lost tokens to max_len */
} pb_encoded;

int pb_encode_dataset(const pb_tokenizer *tk, const pb_dataset *ds, int max_len, pb_encoded *out);
void pb_encoded_free(pb_encoded *e);

/* Packs rows idx[0..B) into ids/types/mask [B, T] with T = the longest of them; returns T. */
int pb_encoded_batch(const pb_encoded *e, const int *idx, int B, int *ids, int *types, int *mask, int *labels,
                     float *targets);

#endif
