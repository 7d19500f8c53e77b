/* libFuzzer target: the WordPiece tokenizer (backbone/tokenizer.c) with the real
 * bert-base-uncased vocabulary, loaded once ($PB_FUZZ_VOCAB, else
 * ../shared/data/vocab/bert-base-uncased-vocab.txt from the repo root).
 *
 * Input: byte 0 = mode and max_len; the rest is split at the first 0xFF byte into texts a
 * and b (any bytes: invalid UTF-8, NULs cut the text as C strings do).
 *  - mode 0..2: pb_tok_tokenize(a) twice (cap 0 to count, then exact) and must agree;
 *    pb_tok_encode_pair(a, b or NULL) must give [CLS] ... [SEP] with ids in the vocabulary,
 *    types/mask consistent and len <= max_len. Mode 0 and 2 run uncased (do_lower_case 1),
 *    mode 1 cased (a second tokenizer on the same vocabulary with pb_tok_set_lower_case 0).
 *  - mode 3: the rest is a vocab.txt (pb_tok_load_mem), which then tokenizes "hello world"
 *    uncased and cased, and reports its casing convention (pb_tok_first_cased). */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "util/status.h"
#include "backbone/tokenizer.h"

static pb_tokenizer *g_tk[2]; /* [0] uncased (default), [1] cased */

static pb_tokenizer *vocab(int cased) {
  if (g_tk[cased]) return g_tk[cased];
  const char *p = getenv("PB_FUZZ_VOCAB");
  const char *cands[] = {p, "../shared/data/vocab/bert-base-uncased-vocab.txt",
                         PB_SOURCE_DIR "/../shared/data/vocab/bert-base-uncased-vocab.txt"};
  for (int i = 0; i < 3 && !g_tk[cased]; i++)
    if (cands[i] && pb_tok_load(&g_tk[cased], cands[i]) != PB_OK) g_tk[cased] = NULL;
  if (!g_tk[cased]) {
    fprintf(stderr, "fuzz_tokenizer: cannot load the vocabulary (set PB_FUZZ_VOCAB): %s\n", pb_last_error());
    abort();
  }
  if (pb_tok_lower_case(g_tk[cased]) != 1) abort(); /* the default */
  pb_tok_set_lower_case(g_tk[cased], !cased);
  if (pb_tok_lower_case(g_tk[cased]) != !cased) abort();
  return g_tk[cased];
}

static void check_tokenize(const pb_tokenizer *tk, const char *s) {
  int n = -1;
  if (pb_tok_tokenize(tk, s, NULL, 0, &n) != PB_OK || n < 0) abort();
  int *ids = malloc(((size_t)n + 1) * sizeof *ids);
  if (!ids) return;
  int n2 = -1;
  if (pb_tok_tokenize(tk, s, ids, n, &n2) != PB_OK || n2 != n) abort();
  int V = pb_tok_vocab_size(tk);
  for (int i = 0; i < n; i++)
    if (ids[i] < 0 || ids[i] >= V) abort();
  free(ids);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (size < 1) return 0;
  int mode = data[0] & 3, max_len = 2 + (data[0] >> 2); /* 2..65 */
  const uint8_t *rest = data + 1;
  size_t n = size - 1;
  if (mode == 3) {
    pb_tokenizer *tk = NULL;
    if (pb_tok_load_mem(&tk, (const char *)rest, n, "fuzz-vocab") == PB_OK) {
      check_tokenize(tk, "hello world, [CLS] h\xc3\xa9llo ##x");
      pb_tok_set_lower_case(tk, 0);
      check_tokenize(tk, "Hello World, [CLS] H\xc3\xa9llo He\xcc\x81llo ##X");
      int c = pb_tok_first_cased(tk);
      if (c < -1 || c >= pb_tok_vocab_size(tk)) abort();
      pb_tok_free(tk);
    } else if (tk) {
      abort(); /* *out must be NULL on error */
    }
    return 0;
  }
  const pb_tokenizer *tk = vocab(mode == 1);
  const uint8_t *sep = memchr(rest, 0xFF, n);
  size_t na = sep ? (size_t)(sep - rest) : n;
  char *a = malloc(na + 1), *b = NULL;
  if (!a) return 0;
  memcpy(a, rest, na);
  a[na] = 0;
  if (sep) {
    size_t nb = n - na - 1;
    b = malloc(nb + 1);
    if (!b) { free(a); return 0; }
    memcpy(b, sep + 1, nb);
    b[nb] = 0;
  }
  check_tokenize(tk, a);
  if (b) check_tokenize(tk, b);
  if (b && max_len < 3) max_len = 3;
  int ids[65], types[65], mask[65], len = -1;
  if (pb_tok_encode_pair(tk, a, b, max_len, ids, types, mask, &len) != PB_OK) abort();
  int V = pb_tok_vocab_size(tk), cls = pb_tok_id(tk, "[CLS]"), sepid = pb_tok_id(tk, "[SEP]");
  if (len < 2 || len > max_len || ids[0] != cls || ids[len - 1] != sepid) abort();
  for (int i = 0; i < max_len; i++) {
    if (ids[i] < 0 || ids[i] >= V) abort();
    if (mask[i] != (i < len)) abort();
    if (types[i] != 0 && types[i] != 1) abort();
    if (!b && types[i] != 0) abort();
  }
  free(a);
  free(b);
  return 0;
}
