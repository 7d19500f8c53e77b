/* `peftbench retrieve`: the retrieval task on Cranfield. BM25 (--method bm25), or COIL over the
 * shared backbone with any method (full, lora, adapter, layerconnect, ... and compositions):
 * train on the train queries (group training, hard negatives from BM25), index all 1,400
 * documents, retrieve for the dev and test queries over the whole collection, measure
 * (params, storage, exact op counts of query encoding / document encoding / search, the index's
 * bytes, PAPI, time, memory) and append one result record (task "cranfield"). Writes, under
 * --out, the task file (COIL: the method's stored tensors + the projections), and per
 * evaluated split a TREC run file STEM.SPLIT.run (qid Q0 docid rank score tag, the top 1000)
 * and the per-query metrics STEM.SPLIT.predictions.tsv (what `peftbench ircompare` tests). */
#ifndef PB_RETRIEVE_H
#define PB_RETRIEVE_H

#include <cjson/cJSON.h>

#include "harness/setup.h"

typedef struct {
  const char *method;              /* "bm25" or a method spec */
  const char *const *method_opts;  /* "k=v", NULL-terminated, or NULL */
  pb_backbone_opts bb;
  const char *data_dir;            /* NULL: pb_cranfield_dir's default */
  int fold;                        /* 0: the fixed 150/25/50 split; 1..5: a cross-validation fold */
  double k1, b;                    /* BM25 (1.2, 0.75) */
  int query_len, doc_len;          /* 32, 128 */
  int tok_dim, cls_dim;            /* 32, 0 = the backbone's hidden size */
  int score_sep;                   /* score the query's [SEP] too */
  int token_act;                   /* PB_COIL_ACT_NONE (0), _RELU, _LN after the token projection */
  int group, queries_per_step;     /* 8, 4 */
  int epochs, steps;               /* 3 epochs (steps overrides) */
  double lr;                       /* 0: the method's default */
  double warmup_ratio, weight_decay, max_grad_norm;
  int hard_depth;                  /* BM25 top-depth pool of hard negatives (100; 0 = random negatives) */
  int in_batch;                    /* 1: in-batch negatives */
  int eval_batch;                  /* documents / queries per encoding batch (32) */
  unsigned long long seed;
  const char *from;                /* a COIL task file: evaluate it (no training); method, options,
                                      COIL settings and backbone come from its metadata */
  const char *results, *out_dir, *events;
  int threads, quiet;
} pb_retrieve_opts;

void pb_retrieve_defaults(pb_retrieve_opts *o);
/* the run; *record receives the result record (also appended to o->results when given) */
int pb_retrieve(const pb_retrieve_opts *o, cJSON **record);

/* CLI: `peftbench retrieve ...` and `peftbench ircompare ...` */
int pb_cmd_retrieve(int argc, char **argv);
int pb_cmd_ircompare(int argc, char **argv);

#endif
