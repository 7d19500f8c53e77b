/* libFuzzer target: the Cranfield parsers (harness/cranfield.c). The first byte picks the file
 * kind (documents, queries, or judgements against a fixed two-document, two-query set); the
 * rest is the file's text. A parse either fails with a status or yields records whose counts
 * and indices are consistent. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "harness/cranfield.h"
#include "util/status.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (size < 1) return 0;
  char *text = malloc(size);
  if (!text) return 0;
  memcpy(text, data + 1, size - 1);
  text[size - 1] = 0; /* parsers take NUL-terminated text; an embedded NUL just ends it */
  pb_cranfield c;
  memset(&c, 0, sizeof c);
  const int kind = data[0] % 3;
  if (kind == 0) {
    if (pb_cranfield_parse_docs("docs", text, &c) == PB_OK)
      for (int i = 0; i < c.n_docs; i++)
        if (!c.doc_text[i] || c.doc_id[i] < 1) abort();
  } else if (kind == 1) {
    if (pb_cranfield_parse_queries("qry", text, &c) == PB_OK)
      for (int i = 0; i < c.n_queries; i++)
        if (!c.query_text[i] || !c.query_text[i][0]) abort();
  } else {
    if (pb_cranfield_parse_docs("docs", ".I 1\n.W\na\n.I 2\n.W\nb\n", &c) ||
        pb_cranfield_parse_queries("qry", ".I 1\n.W\nq\n.I 3\n.W\nr\n", &c))
      abort();
    if (pb_cranfield_parse_qrels("qrel", text, &c) == PB_OK) {
      if (c.qrel_off[0] != 0 || c.qrel_off[2] != c.n_qrels) abort();
      for (int k = 0; k < c.n_qrels; k++)
        if (c.qrel_doc[k] < 0 || c.qrel_doc[k] > 1 || c.qrel_grade[k] < 0 || c.qrel_grade[k] > 4) abort();
    }
  }
  pb_cranfield_free(&c);
  free(text);
  return 0;
}
