/* Retrieval metrics with trec_eval's definitions (trec_eval 9.x, relevance level 1), per
 * query over one ranking (document indices, best first) and the query's judgements:
 *
 *   relevant:   grade >= 1 (cranfield.h: codes 1..4 -> grades 4..1, -1 -> 0)
 *   R           = number of judged relevant documents of the query
 *   MRR@10      = 1 / rank of the first relevant document within ranks 1..10, else 0
 *                 (trec_eval recip_rank over a run cut at 10)
 *   nDCG@10     = DCG@10 / IDCG@10, DCG@10 = sum_{r=1..10} grade(d_r) / log2(r + 1) (linear
 *                 gains: the grade itself), IDCG@10 the DCG of the judged grades sorted
 *                 descending (trec_eval ndcg_cut.10); 0 when R = 0
 *   AP (MAP)    = (1/R) sum over relevant d_r of (relevant in ranks 1..r) / r, over the
 *                 ranking given (trec_eval map; callers pass the top PB_IR_DEPTH = 1000, as
 *                 trec_eval reads a run); 0 when R = 0
 *   Recall@100  = (relevant in ranks 1..100) / R (trec_eval recall_100); 0 when R = 0
 * A document appearing twice in a ranking counts once, at its first rank (trec_eval refuses
 * duplicates; callers never produce them). */
#ifndef PB_IRMETRICS_H
#define PB_IRMETRICS_H

#define PB_IR_DEPTH 1000 /* ranks kept per query: trec_eval's default cut */

typedef struct {
  double mrr10, ndcg10, ap, recall100;
} pb_ir_scores;

enum { PB_IR_MRR10 = 0, PB_IR_NDCG10, PB_IR_MAP, PB_IR_RECALL100, PB_IR_NMETRICS };
/* "mrr@10", "ndcg@10", "map", "recall@100" */
const char *pb_ir_metric_name(int k);
double pb_ir_metric_get(const pb_ir_scores *s, int k);

/* one query: ranking[0..n_ranked) document indices; judged docs jdoc[0..nj) with grades */
void pb_ir_eval_query(const int *ranking, int n_ranked, const int *jdoc, const int *jgrade, int nj,
                      pb_ir_scores *out);

/* Ranks n documents by score, descending; ties by document index ascending (deterministic;
 * trec_eval would break them by docno). order[n] receives the indices. PB_ERR_NOMEM. */
int pb_ir_rank(const float *score, int n, int *order);

#endif
