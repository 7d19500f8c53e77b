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
  int n_glue_seq;     /* the first n_glue_seq sequences are GLUE text, the rest extra text */
  long n_glue_tokens; /* real tokens of those */
  char sources[256];  /* "wordnet:117659 fortunes:15216" sentences per extra source ("" none) */
  uint64_t hash;      /* FNV-1a of every packed id */
} pb_corpus;

/* Builds the corpus from every task whose train file exists in data_dir (the others are
 * skipped, said on stderr unless quiet). PB_ERR_NOTFOUND when no task has training text.
 * extra (NULL or "": none) is a comma list of further English text sources, packed after the
 * GLUE text (never mixed into one sequence with it), each from its installed Debian package
 * under $PEFTBENCH_TEXT_ROOT (default "", i.e. /):
 *   wordnet   WordNet 3.0 glosses and examples, /usr/share/wordnet/data.{noun,verb,adj,adv}
 *             (package wordnet-base; WordNet 3.0 licence, BSD-style), one sentence per synset
 *   fortunes  fortune cookies, /usr/share/games/fortunes/NAME without a dot in the name, except
 *             ascii-art (packages fortunes, fortunes-min; BSD-style, see their copyright files),
 *             one sentence per cookie
 * A missing source is PB_ERR_NOTFOUND, an unknown name PB_ERR_ARG. */
int pb_corpus_build(pb_corpus *c, const pb_tokenizer *tk, const char *data_dir, int T, const char *extra,
                    int quiet);
/* The same over another GLUE split of every task ("dev": the text `pretrain --eval-dev` scores,
 * never pre-training text; a task without that split is skipped). */
int pb_corpus_build_split(pb_corpus *c, const pb_tokenizer *tk, const char *data_dir, const char *split, int T,
                          const char *extra, int quiet);
void pb_corpus_free(pb_corpus *c);

#endif
