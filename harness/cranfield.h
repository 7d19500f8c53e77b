/* The Cranfield 1400 test collection (../shared/data/cranfield, see its README): documents
 * (cran.all.1400), queries (cran.qry) and graded relevance judgements (cranqrel), and the
 * fixed split of the queries this project uses.
 *
 * Quirks handled:
 *  - documents and queries are SMART-style records: `.I N` starts one, `.T .A .B .W` start a
 *    field (documents), `.W` (queries); a document's text is its .W field (which repeats the
 *    title), its .T title when .W is empty, "" when both are (kept: a document nobody can find);
 *  - the queries' .I numbers are not 1..225 (001, 002, 004, ...): cranqrel numbers queries by
 *    their POSITION in cran.qry (1-based); documents by their .I id;
 *  - codes 1..4 (Cleverdon: 1 complete answer .. 4 minimum interest) and -1 (judged of no
 *    interest). Grades: grade = 5 - code for 1..4 (1 -> 4, 2 -> 3, 3 -> 2, 4 -> 1), -1 -> 0;
 *    a document is relevant when its grade >= 1 (trec_eval's default relevance level 1);
 *  - CRLF line ends (cran.qry), trailing blanks in cranqrel, blank lines anywhere.
 * Malformed input is PB_ERR_FORMAT with one line "PATH:LINE: problem"; a missing file
 * PB_ERR_NOTFOUND naming it.
 *
 * Split (fixed, by query position p = 1..n, documented in the README): train p = 1..150, dev
 * p = 151..175, test p = 176..225 (for another n: the first 2/3, the next 1/9, the rest); or
 * one of 5 cross-validation folds by position (pb_cranfield_split_fold). */
#ifndef PB_CRANFIELD_H
#define PB_CRANFIELD_H

typedef struct {
  int n_docs;
  int *doc_id;        /* [n_docs] .I id of each document, in file order */
  char **doc_text;    /* [n_docs] its text (see above) */
  int n_empty;        /* documents whose .W field was empty */
  int n_queries;
  int *query_num;     /* [n_queries] the .I number written in cran.qry (001 -> 1) */
  char **query_text;  /* [n_queries] */
  /* judgements, grouped by query position (CSR): query q's are qrel_doc/qrel_grade[qrel_off[q] ..
   * qrel_off[q+1]), doc = document INDEX (0-based, into doc_id), grade as above */
  int *qrel_off;      /* [n_queries + 1] */
  int *qrel_doc;
  int *qrel_grade;
  int n_qrels;
  char dir[1024];
} pb_cranfield;

enum { PB_IR_TRAIN = 0, PB_IR_DEV = 1, PB_IR_TEST = 2 };

/* Loads DIR/cran.all.1400, DIR/cran.qry and DIR/cranqrel into c (zeroed on error too;
 * pb_cranfield_free afterwards either way). */
int pb_cranfield_load(const char *dir, pb_cranfield *c);
void pb_cranfield_free(pb_cranfield *c);
/* the collection folder: --data-dir, else $PEFTBENCH_DATA/cranfield, else ../shared/data/cranfield
 * beside the checkout; PB_ERR_NOTFOUND with one line saying where to put it */
int pb_cranfield_dir(const char *given, char *out, int n);

/* Individual parsers (tests, fuzzing): a SMART record file (docs: fields T,A,B,W; queries: W)
 * and the judgements file. */
int pb_cranfield_parse_docs(const char *path, const char *data, pb_cranfield *c);
int pb_cranfield_parse_queries(const char *path, const char *data, pb_cranfield *c);
int pb_cranfield_parse_qrels(const char *path, const char *data, pb_cranfield *c);

/* Cleverdon code -> grade (5 - code for 1..4, 0 for -1); -1 for any other code */
int pb_cranfield_grade(int code);
/* split of query position q (0-based) among n queries: PB_IR_TRAIN / _DEV / _TEST */
int pb_cranfield_split_of(int q, int n);
/* Cross-validation instead (fold k in 1..5; 0 = the fixed split above): test = the positions
 * with q % 5 == k - 1 (45 of 225), dev = every 9th of the remaining positions in order (20),
 * train = the rest (160). The five test folds partition the queries. */
#define PB_CRANFIELD_FOLDS 5
int pb_cranfield_split_fold(int q, int n, int fold);
/* "train" / "dev" / "test" -> PB_IR_*, -1 otherwise */
int pb_cranfield_split_parse(const char *name);
const char *pb_cranfield_split_name(int split);
/* grade of document index doc for query q (0 when unjudged) */
int pb_cranfield_grade_of(const pb_cranfield *c, int q, int doc);

#endif
