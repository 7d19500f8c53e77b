/* The retrieval task family: the Cranfield loader on the shared collection (its quirks) and on
 * malformed files (one error naming the file and line), the fixed query split, the trec_eval
 * metrics against hand computations on fixed rankings, and BM25 against its formula computed
 * here independently on a three-document collection. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "check.h"
#include "harness/bm25.h"
#include "harness/cranfield.h"
#include "harness/ircompare.h"
#include "harness/irmetrics.h"
#include "util/status.h"

#define NEAR(a, b) (fabs((a) - (b)) < 1e-12)

static void test_collection(void) {
  char dir[1200];
  if (pb_cranfield_dir(NULL, dir, sizeof dir)) {
    printf("SKIP collection: %s\n", pb_last_error());
    return;
  }
  pb_cranfield c;
  CHECK_OK(pb_cranfield_load(dir, &c));
  CHECK(c.n_docs == 1400, "docs %d", c.n_docs);
  CHECK(c.n_queries == 225, "queries %d", c.n_queries);
  /* 1,837 judgement lines (`wc -l` says 1,836: the last has no newline) */
  CHECK(c.n_qrels == 1837, "qrels %d", c.n_qrels);
  CHECK(c.n_empty == 2, "empty .W fields %d", c.n_empty);
  /* query numbering: .I 001, 002, 004: position 3 is number 4 */
  CHECK(c.query_num[0] == 1 && c.query_num[1] == 2 && c.query_num[2] == 4, "query numbers %d %d %d", c.query_num[0],
        c.query_num[1], c.query_num[2]);
  CHECK(strncmp(c.query_text[2], "what problems of heat conduction in composite slabs", 51) == 0, "query 3: %s",
        c.query_text[2]);
  CHECK(strchr(c.query_text[0], '\r') == NULL, "CRLF left in a query");
  CHECK(strncmp(c.doc_text[0], "experimental investigation of the aerodynamics of a", 51) == 0, "doc 1: %.40s",
        c.doc_text[0]);
  /* grades: 128 code-1, 387 code-2, 734 code-3, 363 code-4, 225 code -1 */
  int count[5] = {0};
  for (int k = 0; k < c.n_qrels; k++) count[c.qrel_grade[k]]++;
  CHECK(count[4] == 128 && count[3] == 387 && count[2] == 734 && count[1] == 363 && count[0] == 225,
        "grades %d %d %d %d %d", count[4], count[3], count[2], count[1], count[0]);
  /* query 1 judges doc 184 code 2 (grade 3) and doc 486 code -1 (grade 0) */
  CHECK(pb_cranfield_grade_of(&c, 0, 183) == 3, "q1 d184 grade %d", pb_cranfield_grade_of(&c, 0, 183));
  CHECK(pb_cranfield_grade_of(&c, 0, 485) == 0, "q1 d486");
  /* split: 150 / 25 / 50 by position */
  int n[3] = {0};
  for (int q = 0; q < c.n_queries; q++) n[pb_cranfield_split_of(q, c.n_queries)]++;
  CHECK(n[0] == 150 && n[1] == 25 && n[2] == 50, "split %d/%d/%d", n[0], n[1], n[2]);
  CHECK(pb_cranfield_split_of(149, 225) == PB_IR_TRAIN && pb_cranfield_split_of(150, 225) == PB_IR_DEV &&
            pb_cranfield_split_of(175, 225) == PB_IR_TEST,
        "split boundaries");
  /* cross-validation: five disjoint test folds of 45 covering all queries, 20 dev, 160 train */
  int covered[225] = {0};
  for (int k = 1; k <= PB_CRANFIELD_FOLDS; k++) {
    int m[3] = {0};
    for (int q = 0; q < 225; q++) {
      const int sp = pb_cranfield_split_fold(q, 225, k);
      m[sp]++;
      if (sp == PB_IR_TEST) covered[q]++;
    }
    CHECK(m[0] == 160 && m[1] == 20 && m[2] == 45, "fold %d: %d/%d/%d", k, m[0], m[1], m[2]);
  }
  int all_once = 1;
  for (int q = 0; q < 225; q++) all_once &= covered[q] == 1;
  CHECK(all_once, "the test folds partition the queries");
  CHECK(pb_cranfield_split_fold(0, 225, 1) == PB_IR_TEST && pb_cranfield_split_fold(1, 225, 1) == PB_IR_DEV &&
            pb_cranfield_split_fold(2, 225, 1) == PB_IR_TRAIN && pb_cranfield_split_fold(3, 225, 0) == PB_IR_TRAIN,
        "fold 1 starts test, dev, train; fold 0 is the fixed split");
  pb_cranfield_free(&c);
}

/* writes the three files with the given contents into a fresh folder; returns its path */
static const char *write_set(const char *docs, const char *qry, const char *qrel) {
  static char dir[256];
  snprintf(dir, sizeof dir, "/tmp/pb_test_cran_%d", (int)getpid());
  char cmd[600];
  snprintf(cmd, sizeof cmd, "rm -rf %s && mkdir -p %s", dir, dir);
  if (system(cmd) != 0) return NULL;
  const char *names[3] = {"cran.all.1400", "cran.qry", "cranqrel"}, *body[3] = {docs, qry, qrel};
  for (int i = 0; i < 3; i++) {
    char p[400];
    snprintf(p, sizeof p, "%s/%s", dir, names[i]);
    FILE *f = fopen(p, "wb");
    if (!f) return NULL;
    fputs(body[i], f);
    fclose(f);
  }
  return dir;
}

#define DOCS_OK ".I 1\n.T\ntitle one\n.A\nx\n.B\ny\n.W\ntitle one\nbody one\n.I 2\n.T\ntitle two\n.W\n.I 3\n.T\n.W\n"
#define QRY_OK ".I 001\r\n.W\r\nfirst query\r\n.I 004\r\n.W\r\nsecond query\r\n"

static void expect_error(const char *docs, const char *qry, const char *qrel, const char *file, const char *needle) {
  const char *dir = write_set(docs, qry, qrel);
  pb_cranfield c;
  int rc = pb_cranfield_load(dir, &c);
  const char *e = pb_last_error();
  CHECK(rc == PB_ERR_FORMAT, "expected a format error for %s (%s), got %d", file, needle, rc);
  CHECK(strstr(e, file) && strstr(e, needle), "error '%s' should name %s and say '%s'", e, file, needle);
  pb_cranfield_free(&c);
}

static void test_small_and_malformed(void) {
  const char *dir = write_set(DOCS_OK, QRY_OK, "1 1 2 \n2 3 -1\n\n2 2 4\n");
  pb_cranfield c;
  CHECK_OK(pb_cranfield_load(dir, &c));
  CHECK(c.n_docs == 3 && c.n_queries == 2 && c.n_qrels == 3, "small set %d %d %d", c.n_docs, c.n_queries, c.n_qrels);
  CHECK(strcmp(c.doc_text[0], "title one\nbody one") == 0, "doc 1 text '%s'", c.doc_text[0]);
  CHECK(strcmp(c.doc_text[1], "title two") == 0, "empty .W falls back to the title: '%s'", c.doc_text[1]);
  CHECK(strcmp(c.doc_text[2], "") == 0 && c.n_empty == 2, "empty doc '%s', %d empty", c.doc_text[2], c.n_empty);
  CHECK(c.query_num[1] == 4 && strcmp(c.query_text[1], "second query") == 0, "query 2 '%s'", c.query_text[1]);
  CHECK(pb_cranfield_grade_of(&c, 1, 1) == 1 && pb_cranfield_grade_of(&c, 1, 2) == 0, "grades of query 2");
  pb_cranfield_free(&c);

  expect_error("", QRY_OK, "1 1 2\n", "cran.all.1400", "empty file");
  expect_error("junk\n.I 1\n.W\nx\n", QRY_OK, "1 1 2\n", "cran.all.1400:1", "before the first .I");
  expect_error(".I x\n.W\nx\n", QRY_OK, "1 1 2\n", "cran.all.1400:1", "positive integer");
  expect_error(".I 1\n.X\nx\n", QRY_OK, "1 1 2\n", "cran.all.1400:2", "unknown field");
  expect_error(".I 1\n.W\na\n.I 1\n.W\nb\n", QRY_OK, "1 1 2\n", "cran.all.1400", "appears twice");
  expect_error(DOCS_OK, ".I 1\n.W\n\n", "1 1 2\n", "cran.qry", "no text");
  expect_error(DOCS_OK, ".I 1\n.T\nx\n", "1 1 2\n", "cran.qry:2", "unknown field");
  expect_error(DOCS_OK, QRY_OK, "1 1\n", "cranqrel:1", "expected 3 fields");
  expect_error(DOCS_OK, QRY_OK, "1 1 2 7\n", "cranqrel:1", "expected 3 fields");
  expect_error(DOCS_OK, QRY_OK, "1 1 2\n3 1 2\n", "cranqrel:2", "query 3 outside 1..2");
  expect_error(DOCS_OK, QRY_OK, "1 9 2\n", "cranqrel:1", "document 9 is not in the collection");
  expect_error(DOCS_OK, QRY_OK, "1 1 5\n", "cranqrel:1", "relevance code 5");
  expect_error(DOCS_OK, QRY_OK, "1 1 x\n", "cranqrel:1", "not an integer");
  expect_error(DOCS_OK, QRY_OK, "1 1 2\n1 1 3\n", "cranqrel:2", "judged twice");
  expect_error(DOCS_OK, QRY_OK, "\n", "cranqrel", "no judgements");
  /* a missing file: not found, naming it */
  write_set(DOCS_OK, QRY_OK, "1 1 2\n");
  char p[400];
  snprintf(p, sizeof p, "%s/cranqrel", dir);
  unlink(p);
  CHECK(pb_cranfield_load(dir, &c) == PB_ERR_NOTFOUND && strstr(pb_last_error(), "cranqrel"), "missing file: %s",
        pb_last_error());
  pb_cranfield_free(&c);
  char cmd[300];
  snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
  if (system(cmd) != 0) printf("could not remove %s\n", dir);
}

/* trec_eval definitions computed by hand for fixed rankings */
static void test_metrics(void) {
  /* judged: doc 3 grade 4, doc 7 grade 2, doc 9 grade 1, doc 5 grade 0 (code -1) -> R = 3 */
  const int jd[4] = {3, 7, 9, 5}, jg[4] = {4, 2, 1, 0};
  /* ranking: 5 (grade 0, judged non-relevant), 7, 1, 3, then 0,2,4,6,8,10..; 9 at rank 150 */
  int rank[200], n = 0;
  rank[n++] = 5;
  rank[n++] = 7;
  rank[n++] = 1;
  rank[n++] = 3;
  for (int d = 10; n < 149; d++) rank[n++] = d + 100;
  rank[n++] = 9; /* rank 150 */
  pb_ir_scores s;
  pb_ir_eval_query(rank, n, jd, jg, 4, &s);
  /* MRR@10: first relevant at rank 2 */
  CHECK(NEAR(s.mrr10, 0.5), "mrr %.15g", s.mrr10);
  /* DCG@10 = 2/log2(3) + 4/log2(5); IDCG = 4/1 + 2/log2(3) + 1/2 */
  const double dcg = 2 / log2(3.0) + 4 / log2(5.0), idcg = 4 + 2 / log2(3.0) + 0.5;
  CHECK(NEAR(s.ndcg10, dcg / idcg), "ndcg %.15g vs %.15g", s.ndcg10, dcg / idcg);
  /* AP = (1/2 + 2/4 + 3/150) / 3 */
  CHECK(NEAR(s.ap, (0.5 + 0.5 + 3.0 / 150) / 3), "ap %.15g", s.ap);
  /* Recall@100: 2 of 3 */
  CHECK(NEAR(s.recall100, 2.0 / 3), "recall %.15g", s.recall100);
  /* nothing relevant in the top 10 */
  const int r2[12] = {100, 101, 102, 103, 104, 105, 106, 107, 108, 109, 3, 7};
  pb_ir_eval_query(r2, 12, jd, jg, 4, &s);
  CHECK(s.mrr10 == 0 && s.ndcg10 == 0, "no relevant in top 10: %g %g", s.mrr10, s.ndcg10);
  CHECK(NEAR(s.ap, (1.0 / 11 + 2.0 / 12) / 3), "ap %.15g", s.ap);
  /* the perfect ranking */
  const int r3[4] = {3, 7, 9, 5};
  pb_ir_eval_query(r3, 4, jd, jg, 4, &s);
  CHECK(NEAR(s.mrr10, 1) && NEAR(s.ndcg10, 1) && NEAR(s.ap, 1) && NEAR(s.recall100, 1), "perfect %g %g %g %g",
        s.mrr10, s.ndcg10, s.ap, s.recall100);
  /* a query without relevant documents: every metric 0 */
  const int jz[1] = {3}, gz[1] = {0};
  pb_ir_eval_query(r3, 4, jz, gz, 1, &s);
  CHECK(s.mrr10 == 0 && s.ndcg10 == 0 && s.ap == 0 && s.recall100 == 0, "R = 0");
  /* ranking ties: by index */
  const float sc[5] = {1, 3, 3, 0, 2};
  int o[5];
  pb_ir_rank(sc, 5, o);
  CHECK(o[0] == 1 && o[1] == 2 && o[2] == 4 && o[3] == 0 && o[4] == 3, "rank %d %d %d %d %d", o[0], o[1], o[2], o[3],
        o[4]);
}

static void test_bm25(void) {
  const char *docs[3] = {"Wing flow, wing-tip.", "flow of HEAT", "boundary layer"};
  pb_bm25 x;
  CHECK_OK(pb_bm25_build(&x, docs, 3, 1.2f, 0.75f));
  CHECK(x.n_terms == 7, "terms %d", x.n_terms);
  CHECK(x.dl[0] == 4 && x.dl[1] == 3 && x.dl[2] == 2, "lengths %d %d %d", x.dl[0], x.dl[1], x.dl[2]);
  float s[3];
  CHECK_OK(pb_bm25_score(&x, "wing flow unknown", s));
  /* by hand: N 3, avgdl 3; wing: df 1, tf 2 in doc 0; flow: df 2, tf 1 in docs 0, 1 */
  const double k1 = 1.2, b = 0.75, avg = 3.0;
  const double idf_w = log(1 + (3 - 1 + 0.5) / 1.5), idf_f = log(1 + (3 - 2 + 0.5) / 2.5);
  const double s0 = idf_w * 2 * (k1 + 1) / (2 + k1 * (1 - b + b * 4 / avg)) + idf_f * 1 * (k1 + 1) / (1 + k1 * (1 - b + b * 4 / avg));
  const double s1 = idf_f * 1 * (k1 + 1) / (1 + k1 * (1 - b + b * 3 / avg));
  CHECK(fabs(s[0] - s0) < 1e-5 && fabs(s[1] - s1) < 1e-5 && s[2] == 0, "bm25 %g %g %g vs %g %g 0", s[0], s[1], s[2],
        s0, s1);
  /* a repeated query term counts twice */
  float s2[3];
  CHECK_OK(pb_bm25_score(&x, "heat heat", s2));
  const double h = 2 * log(1 + 2.5 / 1.5) * (k1 + 1) / (1 + k1 * (1 - b + b * 3 / avg));
  CHECK(fabs(s2[1] - h) < 1e-5, "repeated term %g vs %g", s2[1], h);
  pb_bm25_free(&x);
  pb_bm25 y; /* a refused build leaves nothing to free */
  CHECK(pb_bm25_build(&y, docs, 3, 1.2f, 1.5f) == PB_ERR_ARG, "b > 1 refused");
}

/* paired tests over queries: the t-test against scipy 1.10's ttest_rel on the same numbers
 * (stats.ttest_rel(b, a): t 1.8981415059132414, p 0.1161399727928412), the randomisation test
 * against its exact value over all 2^6 sign flips (counted here), within Monte Carlo error */
static void test_paired(void) {
  const double a[6] = {0.1, 0.5, 0.3, 0.9, 0.0, 0.4}, b[6] = {0.2, 0.45, 0.6, 0.95, 0.3, 0.4};
  pb_ir_paired_result r;
  CHECK_OK(pb_ir_paired(a, b, 6, 20000, 1, 0.05, &r));
  CHECK(fabs(r.t - 1.8981415059132414) < 1e-12 && r.df == 5, "t %.17g df %g", r.t, r.df);
  CHECK(fabs(r.p_t - 0.1161399727928412) < 1e-12, "p %.17g", r.p_t);
  CHECK(fabs(r.diff - (0.1 - 0.05 + 0.3 + 0.05 + 0.3 + 0.0) / 6) < 1e-15, "diff %.17g", r.diff);
  int hits = 0;
  for (int mask = 0; mask < 64; mask++) {
    double m = 0;
    for (int i = 0; i < 6; i++) m += ((mask >> i) & 1 ? 1 : -1) * (b[i] - a[i]);
    hits += fabs(m / 6) >= fabs(r.diff) - 1e-12;
  }
  const double exact = hits / 64.0, se = sqrt(exact * (1 - exact) / 20000);
  CHECK(fabs(r.p_rand - exact) < 4 * se + 1e-4, "randomisation p %.4f, exact %.4f", r.p_rand, exact);
  CHECK(r.ci_low <= r.diff && r.diff <= r.ci_high && r.ci_low < r.ci_high, "CI [%g, %g]", r.ci_low, r.ci_high);
  printf("paired: t %.6f p %.6f (scipy), randomisation p %.4f (exact %.4f)\n", r.t, r.p_t, r.p_rand, exact);
  CHECK(pb_ir_paired(a, b, 1, 10, 1, 0.05, &r) == PB_ERR_ARG, "n = 1 refused");
}

int main(void) {
  test_paired();
  test_collection();
  test_small_and_malformed();
  test_metrics();
  test_bm25();
  printf("%d checks, %d failures\n", checks, failures);
  return check_exit_status();
}
