/* Retrieval metrics (irmetrics.h). */
#include "harness/irmetrics.h"

#include <math.h>
#include <stdlib.h>

#include "util/status.h"

static const char *NAMES[PB_IR_NMETRICS] = {"mrr@10", "ndcg@10", "map", "recall@100"};
const char *pb_ir_metric_name(int k) { return k >= 0 && k < PB_IR_NMETRICS ? NAMES[k] : "?"; }

double pb_ir_metric_get(const pb_ir_scores *s, int k) {
  switch (k) {
    case PB_IR_MRR10: return s->mrr10;
    case PB_IR_NDCG10: return s->ndcg10;
    case PB_IR_MAP: return s->ap;
    case PB_IR_RECALL100: return s->recall100;
  }
  return NAN;
}

static int grade_of(int doc, const int *jdoc, const int *jgrade, int nj) {
  for (int k = 0; k < nj; k++)
    if (jdoc[k] == doc) return jgrade[k];
  return 0;
}

static int cmp_desc(const void *a, const void *b) { return *(const int *)b - *(const int *)a; }

void pb_ir_eval_query(const int *ranking, int n_ranked, const int *jdoc, const int *jgrade, int nj,
                      pb_ir_scores *out) {
  out->mrr10 = out->ndcg10 = out->ap = out->recall100 = 0.0;
  int R = 0;
  for (int k = 0; k < nj; k++) R += jgrade[k] >= 1;
  if (R == 0) return;
  int found = 0; /* relevant documents seen so far */
  double dcg = 0.0, ap = 0.0;
  for (int r = 0; r < n_ranked; r++) {
    int dup = 0;
    for (int e = 0; e < r && !dup; e++) dup = ranking[e] == ranking[r];
    if (dup) continue;
    const int g = grade_of(ranking[r], jdoc, jgrade, nj);
    if (r < 10) dcg += g / log2((double)r + 2.0);
    if (g >= 1) {
      found++;
      if (out->mrr10 == 0.0 && r < 10) out->mrr10 = 1.0 / (r + 1);
      ap += (double)found / (r + 1);
      if (r < 100) out->recall100 += 1.0;
    }
  }
  out->ap = ap / R;
  out->recall100 /= R;
  /* ideal: the judged grades, best first */
  int *g = malloc(sizeof(int) * (size_t)(nj > 0 ? nj : 1));
  if (!g) { /* cannot happen for Cranfield's handful of judgements; say so in the value */
    out->ndcg10 = NAN;
    return;
  }
  for (int k = 0; k < nj; k++) g[k] = jgrade[k];
  qsort(g, (size_t)nj, sizeof(int), cmp_desc);
  double idcg = 0.0;
  for (int r = 0; r < nj && r < 10; r++) idcg += g[r] / log2((double)r + 2.0);
  free(g);
  out->ndcg10 = idcg > 0 ? dcg / idcg : 0.0;
}

static const float *rank_scores;
static int cmp_rank(const void *a, const void *b) {
  const int i = *(const int *)a, j = *(const int *)b;
  if (rank_scores[i] > rank_scores[j]) return -1;
  if (rank_scores[i] < rank_scores[j]) return 1;
  return i - j;
}

int pb_ir_rank(const float *score, int n, int *order) {
  for (int i = 0; i < n; i++) order[i] = i;
  rank_scores = score; /* single-threaded callers only */
  qsort(order, (size_t)n, sizeof(int), cmp_rank);
  return PB_OK;
}
