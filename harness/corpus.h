/* The pretraining corpus: the unlabeled sentences of the GLUE TRAINING splits found in a data
 * folder (never dev or test text), WordPiece-tokenised and packed as
 * [CLS] s1 [SEP] s2 [SEP] ... into sequences of at most T tokens (token types 0). */
#ifndef PB_CORPUS_H
#define PB_CORPUS_H

#include <stdint.h>

#include "backbone/tokenizer.h"

typedef struct {
  int T;              /* sequence length */
  int n_seq;          /* packed sequences */
  int *ids;           /* [n_seq, T] padded with [PAD] */
  int *len;           /* [n_seq] real tokens */
  long n_sent, n_tokens, n_trunc; /* sentences, real tokens (incl. [CLS]/[SEP]), truncated sentences */
  char tasks[256];    /* "cola:8551 sst2:67349 ..." rows per task used */
  uint64_t hash;      /* FNV-1a of every packed id */
} pb_corpus;

/* Builds the corpus from every task whose train file exists in data_dir (the others are
 * skipped, said on stderr unless quiet). PB_ERR_NOTFOUND when no task has training text. */
int pb_corpus_build(pb_corpus *c, const pb_tokenizer *tk, const char *data_dir, int T, int quiet);
void pb_corpus_free(pb_corpus *c);

#endif
