/* BM25 (Robertson et al.; Lucene's idf) over a small collection: the lexical baseline of the
 * retrieval task and the source of hard negatives for COIL training.
 *
 * Terms: maximal runs of ASCII letters and digits, lower-cased (everything else separates
 * terms; no stemming, no stop words). For a query with term occurrences t_1..t_m (repeats
 * count again, as Lucene's BooleanQuery of the analysed query) and a document d of length
 * |d| terms (avgdl over the collection, N documents, df(t) documents containing t):
 *   idf(t)      = ln(1 + (N - df(t) + 0.5) / (df(t) + 0.5))
 *   score(q, d) = sum_i idf(t_i) * tf(t_i, d) * (k1 + 1) / (tf(t_i, d) + k1 * (1 - b + b * |d| / avgdl))
 * Terms unknown to the collection add nothing. Defaults k1 = 1.2, b = 0.75. */
#ifndef PB_BM25_H
#define PB_BM25_H

typedef struct {
  int n_docs, n_terms;
  float k1, b;
  double avgdl;
  int *dl;        /* [n_docs] document lengths in terms */
  int *df;        /* [n_terms] */
  int *post_off;  /* [n_terms + 1] postings of term t: post_doc/post_tf[post_off[t] .. post_off[t+1]) */
  int *post_doc;  /* document index, ascending */
  int *post_tf;
  /* term dictionary: open addressing, cap a power of two */
  char **term;    /* [n_terms] */
  int *slot;      /* [cap] term id or -1 */
  int cap;
} pb_bm25;

/* Indexes texts[0..n). k1 >= 0, 0 <= b <= 1 (else PB_ERR_ARG). */
int pb_bm25_build(pb_bm25 *x, const char *const *texts, int n, float k1, float b);
/* scores[n_docs] of one query */
int pb_bm25_score(const pb_bm25 *x, const char *query, float *scores);
/* term id of a lower-case term, -1 when unknown */
int pb_bm25_term(const pb_bm25 *x, const char *t);
void pb_bm25_free(pb_bm25 *x);

/* Splits text into terms: calls fn(term, len, ctx) for each (lower-cased into a scratch copy). */
int pb_bm25_terms(const char *text, int (*fn)(const char *term, int len, void *ctx), void *ctx);

#endif
