/* Tokenizer tests: hand-checked WordPiece cases against bert-base-uncased's vocab.txt
 * (expected ids = line number - 1, verified with grep -n; expected tokens follow HF
 * BertTokenizer's slow-tokenizer logic), pair encoding with longest-first truncation and
 * padding, vocab file errors, cased vs uncased tokenization (do_lower_case, with small
 * in-memory vocabularies; expectations follow HF's slow BasicTokenizer: NFC first, then
 * lower + NFD + drop Mn only when lower-casing), the vocabulary casing convention, and an
 * SST-2 train checksum + timing (the checksum was produced by a pure-Python transcription
 * of HF's BasicTokenizer/WordpieceTokenizer).
 * Runs from the repo root; needs ../shared/data. */
#include "util/status.h"
#include "backbone/tokenizer.h"
#include "tests/check.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define VOCAB "../shared/data/vocab/bert-base-uncased-vocab.txt"
#define SST2 "../shared/data/glue/SST-2/train.tsv"


/* tokenizes text and compares with n expected token strings and ids */
static void expect(const pb_tokenizer *tk, const char *label, const char *text, int n,
                   const char *const *toks, const int *ids) {
  int got[512], ng = -1;
  int rc = pb_tok_tokenize(tk, text, got, 512, &ng);
  printf("tokenize %-22s -> %d tokens:", label, ng);
  for (int i = 0; i < ng && i < 12; i++) printf(" %s", pb_tok_token(tk, got[i]));
  printf("%s\n", ng > 12 ? " ..." : "");
  CHECK(rc == PB_OK, "%s: rc %d", label, rc);
  CHECK(ng == n, "%s: %d tokens, expected %d", label, ng, n);
  for (int i = 0; i < n && i < ng; i++) {
    CHECK(got[i] == ids[i], "%s: token %d id %d, expected %d", label, i, got[i], ids[i]);
    if (toks) {
      const char *s = pb_tok_token(tk, got[i]);
      CHECK(s && strcmp(s, toks[i]) == 0, "%s: token %d '%s', expected '%s'", label, i, s ? s : "(null)", toks[i]);
      CHECK(pb_tok_id(tk, toks[i]) == ids[i], "%s: pb_tok_id(%s) != %d", label, toks[i], ids[i]);
    }
  }
}
#define EXPECT(tk, label, text, ...)                                                                 \
  do {                                                                                               \
    static const char *const t_[] = {__VA_ARGS__};                                                   \
    expect(tk, label, text, (int)(sizeof t_ / sizeof t_[0]), t_, ids_);                              \
  } while (0)

static void expect_arr(const char *label, const int *got, const int *want, int n) {
  for (int i = 0; i < n; i++) CHECK(got[i] == want[i], "%s[%d] = %d, expected %d", label, i, got[i], want[i]);
}

/* encode a pair and compare ids/types/mask/len */
static void expect_pair(const pb_tokenizer *tk, const char *label, const char *a, const char *b, int max_len,
                        const int *ids, const int *types, const int *mask, int len) {
  int gi[64], gt[64], gm[64], gl = -1;
  int rc = pb_tok_encode_pair(tk, a, b, max_len, gi, gt, gm, &gl);
  printf("encode %-24s max_len %2d -> len %d:", label, max_len, gl);
  for (int i = 0; i < max_len; i++) printf(" %d", gi[i]);
  printf("\n");
  CHECK(rc == PB_OK, "%s: rc %d", label, rc);
  CHECK(gl == len, "%s: len %d, expected %d", label, gl, len);
  expect_arr(label, gi, ids, max_len);
  expect_arr(label, gt, types, max_len);
  expect_arr(label, gm, mask, max_len);
}

static void test_cases(const pb_tokenizer *tk) {
  printf("-- hand-checked tokenization\n");
  CHECK(pb_tok_vocab_size(tk) == 30522, "vocab size %d", pb_tok_vocab_size(tk));
  CHECK(pb_tok_id(tk, "[PAD]") == 0 && pb_tok_id(tk, "[UNK]") == 100 && pb_tok_id(tk, "[CLS]") == 101 &&
            pb_tok_id(tk, "[SEP]") == 102 && pb_tok_id(tk, "[MASK]") == 103,
        "special ids");
  CHECK(pb_tok_id(tk, "##able") == 3085 && pb_tok_id(tk, "nosuchtokenxyz") == -1 && pb_tok_id(tk, "##") == -1,
        "pb_tok_id lookups");
  CHECK(pb_tok_token(tk, -1) == NULL && pb_tok_token(tk, 30522) == NULL, "out-of-range ids give NULL");
  CHECK(strcmp(pb_tok_token(tk, 30521), "##～") == 0, "last token '%s'", pb_tok_token(tk, 30521));
  { static const int ids_[] = {7592, 1010, 2088, 999};
    EXPECT(tk, "punctuation", "Hello, World!", "hello", ",", "world", "!"); }
  /* bert-base-uncased has no ##aff (the README example used another vocab): una ##ffa ##ble */
  { static const int ids_[] = {14477, 20961, 3468};
    EXPECT(tk, "unaffable", "unaffable", "una", "##ffa", "##ble"); }
  { static const int ids_[] = {7668, 15743, 13746};
    EXPECT(tk, "accents", "Caf\xC3\xA9 na\xC3\xAFve r\xC3\xA9sum\xC3\xA9", "cafe", "naive", "resume"); }
  /* 我 is in the vocab, 爱 is not: a lone CJK char with no entry becomes [UNK] */
  { static const int ids_[] = {1855, 100, 17953, 2361};
    EXPECT(tk, "CJK", "\xE6\x88\x91\xE7\x88\xB1NLP", "\xE6\x88\x91", "[UNK]", "nl", "##p"); }
  { static const int ids_[] = {3524, 1012, 1012, 1012, 2054, 1029, 999};
    EXPECT(tk, "punctuation run", "wait...what?!", "wait", ".", ".", ".", "what", "?", "!"); }
  { static const int ids_[] = {2009, 1005, 1055, 11559, 2648, 2651, 1012};
    EXPECT(tk, "apostrophe", "It's sunny outside today.", "it", "'", "s", "sunny", "outside", "today", "."); }
  /* control chars (\x01, DEL, U+200B Cf) are dropped and join their neighbours; \v too */
  { static const int ids_[] = {7592, 2088};
    EXPECT(tk, "control chars", "he\x01llo\x7f wor\xE2\x80\x8B" "ld", "hello", "world"); }
  /* vertical tab is Cc: dropped (joins a,b); NBSP (Zs) and U+2028 separate words */
  { static const int ids_[] = {11113, 1039, 1040, 1041};
    EXPECT(tk, "whitespace kinds", "a\x0b" "b c\xC2\xA0" "d\xE2\x80\xA8" "e", "ab", "c", "d", "e"); }
  /* invalid UTF-8 bytes (0xFF, truncated 2- and 3-byte sequences) are dropped */
  { static const int ids_[] = {7592, 2088};
    EXPECT(tk, "invalid UTF-8", "hel\xFFlo \xC3 world\xE4\xB8", "hello", "world"); }
  { static const int ids_[] = {7592, 2088};
    EXPECT(tk, "overlong/surrogate", "hel\xC0\x80lo wor\xED\xA0\x80ld", "hello", "world"); }
  /* Greek: per-code-point lower-casing (HF pre-lowers char by char: no final sigma);
   * U+0130 lowers to i + combining dot, which is stripped */
  { static const int ids_[] = {1169, 29722, 29730, 29733, 9960};
    EXPECT(tk, "Greek, U+0130", "\xCE\x9F\xCE\x94\xCE\x9F\xCE\xA3 \xC4\xB0stanbul", "\xCE\xBF", "##\xCE\xB4",
           "##\xCE\xBF", "##\xCF\x83", "istanbul"); }
  /* Hangul syllables decompose (NFD) into conjoining jamo, as in HF */
  { static const int ids_[] = {1469, 30006, 30021, 29991, 30014, 30020};
    EXPECT(tk, "Hangul", "\xED\x95\x9C\xEA\xB5\xAD", "\xE1\x84\x92", "##\xE1\x85\xA1", "##\xE1\x86\xAB",
           "##\xE1\x84\x80", "##\xE1\x85\xAE", "##\xE1\x86\xA8"); }
  /* literal special tokens are kept (exact case only), as HF's added-token split */
  { static const int ids_[] = {7592, 102, 2088, 103, 1031, 18856, 2015, 1033};
    EXPECT(tk, "special literals", "hello [SEP] world[MASK] [cls]", "hello", "[SEP]", "world", "[MASK]", "[",
           "cl", "##s", "]"); }
  /* word length limit: 100 code points still tokenized, 101 -> [UNK], 150 -> [UNK] */
  {
    char w[200];
    int ids[64], n = -1;
    memset(w, 'a', 100); w[100] = 0;
    pb_tok_tokenize(tk, w, ids, 64, &n);
    printf("tokenize %-22s -> %d tokens: %s %s ... %s\n", "100 x 'a'", n, pb_tok_token(tk, ids[0]),
           pb_tok_token(tk, ids[1]), pb_tok_token(tk, ids[n - 1]));
    CHECK(n == 50 && ids[0] == 13360 && ids[1] == 11057 && ids[48] == 11057 && ids[49] == 2050,
          "100 x 'a' -> aaa ##aa x48 ##a (got %d tokens)", n);
    int ids_[] = {100};
    memset(w, 'a', 101); w[101] = 0;
    expect(tk, "101 x 'a'", w, 1, NULL, ids_);
    for (int i = 0; i < 150; i++) w[i] = "abcdefghij"[i % 10];
    w[150] = 0;
    expect(tk, "150-char word", w, 1, NULL, ids_);
    char w2[220];
    snprintf(w2, sizeof w2, "ok %s ok", w);
    int ids2_[] = {7929, 100, 7929};
    expect(tk, "150-char word in text", w2, 3, NULL, ids2_);
  }
  /* nothing */
  expect(tk, "empty", "", 0, NULL, NULL);
  expect(tk, "whitespace only", " \t\n\r \xE3\x80\x80\xC2\xA0 ", 0, NULL, NULL);
  expect(tk, "controls only", "\x01\x02\x7f\xEF\xBF\xBD", 0, NULL, NULL);
  expect(tk, "NULL text", NULL, 0, NULL, NULL);
  /* snprintf-like capacity */
  {
    int ids[2] = {-5, -5}, n = -1;
    int rc = pb_tok_tokenize(tk, "Hello, World!", ids, 2, &n);
    CHECK(rc == PB_OK && n == 4 && ids[0] == 7592 && ids[1] == 1010, "cap 2: n %d", n);
    rc = pb_tok_tokenize(tk, "Hello, World!", NULL, 0, &n);
    CHECK(rc == PB_OK && n == 4, "cap 0 counts only: n %d", n);
    CHECK(pb_tok_tokenize(tk, "x", ids, -1, &n) == PB_ERR_ARG, "negative cap rejected");
    CHECK(pb_tok_tokenize(NULL, "x", ids, 2, &n) == PB_ERR_ARG, "NULL tokenizer rejected");
  }
}

static void test_pairs(const pb_tokenizer *tk) {
  printf("-- pair encoding, longest-first truncation, padding\n");
  const char *A = "The quick brown fox jumps."; /* the quick brown fox jumps .  (6) */
  const char *B = "Is it raining?";             /* is it raining ?              (4) */
  { /* no truncation, 3 pads */
    int ids[] = {101, 1996, 4248, 2829, 4419, 14523, 1012, 102, 2003, 2009, 24057, 1029, 102, 0, 0, 0};
    int ty[] = {0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 1, 0, 0, 0};
    int mk[] = {1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 0, 0, 0};
    expect_pair(tk, "pair, padded", A, B, 16, ids, ty, mk, 13);
  }
  { /* remove 3: a (longer by 2) loses 2, then the odd one comes off b */
    int ids[] = {101, 1996, 4248, 2829, 4419, 102, 2003, 2009, 24057, 102};
    int ty[] = {0, 0, 0, 0, 0, 0, 1, 1, 1, 1};
    int mk[] = {1, 1, 1, 1, 1, 1, 1, 1, 1, 1};
    expect_pair(tk, "pair, a longer", A, B, 10, ids, ty, mk, 10);
  }
  { /* equal lengths 4/4, remove 3: b loses 2, a loses 1 */
    int ids[] = {101, 2003, 2009, 24057, 102, 2003, 2009, 102};
    int ty[] = {0, 0, 0, 0, 0, 1, 1, 1};
    int mk[] = {1, 1, 1, 1, 1, 1, 1, 1};
    expect_pair(tk, "pair, tie", B, B, 8, ids, ty, mk, 8);
  }
  { /* b longer by 2, remove 2: only b shrinks; then 1 pad */
    int ids[] = {101, 2003, 2009, 24057, 1029, 102, 1996, 4248, 2829, 4419, 102, 0};
    int ty[] = {0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 1, 0};
    int mk[] = {1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 0};
    expect_pair(tk, "pair, b longer", B, A, 11, ids, ty, mk, 11);
    int gi[14];
    CHECK(pb_tok_encode_pair(tk, B, A, 14, gi, NULL, NULL, NULL) == PB_OK && gi[13] == 0 && gi[12] == 102,
          "NULL types/mask/len accepted");
  }
  { /* single sentence: tail cut */
    int ids[] = {101, 1996, 4248, 2829, 102};
    int ty[] = {0, 0, 0, 0, 0};
    int mk[] = {1, 1, 1, 1, 1};
    expect_pair(tk, "single, truncated", A, NULL, 5, ids, ty, mk, 5);
  }
  { /* empty second sentence, minimum lengths */
    int ids[] = {101, 102, 102, 0};
    int ty[] = {0, 0, 1, 0};
    int mk[] = {1, 1, 1, 0};
    expect_pair(tk, "pair, empty texts", "", "  ", 4, ids, ty, mk, 3);
    int ids2[] = {101, 102}, ty2[] = {0, 0}, mk2[] = {1, 1};
    expect_pair(tk, "single, max_len 2", A, NULL, 2, ids2, ty2, mk2, 2);
    int ids3[] = {101, 102, 102}, ty3[] = {0, 0, 1}, mk3[] = {1, 1, 1};
    expect_pair(tk, "pair, max_len 3", A, B, 3, ids3, ty3, mk3, 3);
  }
  int gi[4];
  CHECK(pb_tok_encode_pair(tk, A, B, 2, gi, NULL, NULL, NULL) == PB_ERR_ARG, "pair max_len 2 rejected");
  CHECK(pb_tok_encode_pair(tk, A, NULL, 1, gi, NULL, NULL, NULL) == PB_ERR_ARG, "single max_len 1 rejected");
  printf("  error message: %s\n", pb_last_error());
}

/* writes data to a fresh temp file; returns its path in buf */
static void write_tmp(char *buf, const char *data, size_t n) {
  strcpy(buf, "/tmp/pb_tok_vocab_XXXXXX");
  int fd = mkstemp(buf);
  if (fd < 0) { buf[0] = 0; return; }
  if (n && write(fd, data, n) != (ssize_t)n) buf[0] = 0;
  close(fd);
}

static void test_vocab_files(void) {
  printf("-- vocabulary files\n");
  pb_tokenizer *tk = (pb_tokenizer *)1;
  char path[64];
  int rc;

  rc = pb_tok_load(&tk, "/nonexistent/dir/vocab.txt");
  printf("  nonexistent: %s\n", pb_last_error());
  CHECK(rc == PB_ERR_NOTFOUND && tk == NULL, "nonexistent path rc %d", rc);
  CHECK(strstr(pb_last_error(), "/nonexistent/dir/vocab.txt") != NULL, "message names the file");

  write_tmp(path, "", 0);
  rc = pb_tok_load(&tk, path);
  printf("  empty: %s\n", pb_last_error());
  CHECK(rc == PB_ERR_FORMAT && tk == NULL, "empty file rc %d", rc);
  CHECK(strstr(pb_last_error(), path) != NULL, "message names the file");
  unlink(path);

  const char *nomask = "[PAD]\n[UNK]\n[CLS]\n[SEP]\nhello\n";
  write_tmp(path, nomask, strlen(nomask));
  rc = pb_tok_load(&tk, path);
  printf("  no [MASK]: %s\n", pb_last_error());
  CHECK(rc == PB_ERR_FORMAT && tk == NULL, "missing [MASK] rc %d", rc);
  CHECK(strstr(pb_last_error(), path) && strstr(pb_last_error(), "[MASK]"), "message names file and token");
  unlink(path);

  rc = pb_tok_load_mem(&tk, "\xEF\xBB\xBF", 3, "bom-only");
  CHECK(rc == PB_ERR_FORMAT && tk == NULL, "BOM-only file is empty");

  /* CRLF, a lone CR, a BOM, a duplicate (later wins) and no final newline */
  const char *v = "\xEF\xBB\xBF[PAD]\r\n[UNK]\r\n[CLS]\r\n[SEP]\r\n[MASK]\r\nhello\r\n##lo\rhel\nhello";
  write_tmp(path, v, strlen(v));
  rc = pb_tok_load(&tk, path);
  unlink(path);
  CHECK(rc == PB_OK && tk != NULL, "CRLF vocab loads (rc %d: %s)", rc, pb_last_error());
  if (rc == PB_OK && tk) {
    CHECK(pb_tok_vocab_size(tk) == 9, "size %d", pb_tok_vocab_size(tk));
    CHECK(pb_tok_id(tk, "[PAD]") == 0 && pb_tok_id(tk, "[MASK]") == 4, "specials after BOM/CRLF");
    CHECK(pb_tok_id(tk, "##lo") == 6 && pb_tok_id(tk, "hel") == 7 && pb_tok_id(tk, "hello") == 8, "ids");
    CHECK(strcmp(pb_tok_token(tk, 5), "hello") == 0 && strcmp(pb_tok_token(tk, 8), "hello") == 0, "tokens");
    int ids_[] = {8, 8, 7, 1, 8};
    expect(tk, "tiny vocab", "HELLO hello hel lo HELLO", 5, NULL, ids_); /* lo: no entry -> [UNK] */
    int ids2_[] = {8, 6, 6};
    expect(tk, "tiny vocab ## pieces", "hellolo\xCC\x81lo", 3, NULL, ids2_); /* U+0301 stripped */
    pb_tok_free(tk);
  }
  pb_tok_free(NULL);
}

/* expected tokens given as strings; each must be in tk's vocabulary (a typo in a test
 * would otherwise pass as [UNK] == [UNK]) */
static void expect_toks(const pb_tokenizer *tk, const char *label, const char *text, int n, const char *const *toks) {
  int ids[32];
  for (int i = 0; i < n && i < 32; i++) {
    ids[i] = pb_tok_id(tk, toks[i]);
    CHECK(ids[i] >= 0, "%s: expected token '%s' is not in the test vocabulary", label, toks[i]);
  }
  expect(tk, label, text, n, toks, ids);
}
#define EXPECT_T(tk, label, text, ...)                                               \
  do {                                                                               \
    static const char *const t_[] = {__VA_ARGS__};                                   \
    expect_toks(tk, label, text, (int)(sizeof t_ / sizeof t_[0]), t_);               \
  } while (0)

/* a cased mini vocabulary (bert-base-cased style); "world" is deliberately absent so that
 * lower-cased "World" is [UNK] as with a cased vocab under do_lower_case=True */
static const char CASED_VOCAB[] =
    "[PAD]\n[UNK]\n[CLS]\n[SEP]\n[MASK]\n[unused0]\n"
    "Hello\nWorld\nhello\n,\n!\n.\n`\na\nb\nx\n##\xCC\x81\n"
    "Caf\xC3\xA9\ncafe\nCaf\n##\xC3\xA9\nna\xC3\xAFve\nnaive\n"
    "\xC3\x89" "COLE\necole\n\xC3\x85ngstr\xC3\xB6m\nangstrom\n"
    "\xE1\xBB\x87\ne\n\xEA\xB0\x81\n\xE1\x84\x80\n##\xE1\x85\xA1\n##\xE1\x86\xA8\n"
    "\xE6\x88\x91\nNLP\nnl\n##p\nI\ni\n";

static void test_casing(void) {
  printf("-- cased vs uncased (do_lower_case)\n");
  pb_tokenizer *tk = NULL;
  int rc = pb_tok_load_mem(&tk, CASED_VOCAB, sizeof CASED_VOCAB - 1, "cased-mini");
  CHECK(rc == PB_OK && tk, "cased mini vocab loads: %s", pb_last_error());
  if (!tk) return;
  CHECK(pb_tok_lower_case(tk) == 1, "default is do_lower_case = 1");

  printf("   uncased (default)\n");
  EXPECT_T(tk, "U ascii", "Hello World", "hello", "[UNK]");
  EXPECT_T(tk, "U accents", "Caf\xC3\xA9 na\xC3\xAFve \xC3\x89" "COLE", "cafe", "naive", "ecole");
  EXPECT_T(tk, "U decomposed", "Cafe\xCC\x81", "cafe");           /* e + U+0301: Mn stripped */
  EXPECT_T(tk, "U angstrom", "\xE2\x84\xAB" "ngstr\xC3\xB6m", "angstrom"); /* U+212B */
  EXPECT_T(tk, "U lone mark", "x\xCC\x81", "x");
  EXPECT_T(tk, "U capital I", "I", "i");

  pb_tok_set_lower_case(tk, 0);
  CHECK(pb_tok_lower_case(tk) == 0, "set to 0");
  printf("   cased\n");
  EXPECT_T(tk, "C ascii", "Hello World", "Hello", "World");
  EXPECT_T(tk, "C ascii lower", "hello world", "hello", "[UNK]");
  EXPECT_T(tk, "C punctuation", "Hello,World!", "Hello", ",", "World", "!");
  EXPECT_T(tk, "C accents", "Caf\xC3\xA9 na\xC3\xAFve \xC3\x89" "COLE", "Caf\xC3\xA9", "na\xC3\xAFve",
           "\xC3\x89" "COLE");
  /* NFC (HF slow tokenizer): e + U+0301 composes to é; U+212B ANGSTROM SIGN is U+00C5 */
  EXPECT_T(tk, "C decomposed -> NFC", "Cafe\xCC\x81", "Caf\xC3\xA9");
  EXPECT_T(tk, "C angstrom sign", "\xE2\x84\xAB" "ngstr\xC3\xB6m", "\xC3\x85ngstr\xC3\xB6m");
  /* canonical reordering: e + U+0302 + U+0323 -> U+1EC7 */
  EXPECT_T(tk, "C reorder+compose", "e\xCC\x82\xCC\xA3", "\xE1\xBB\x87");
  /* a mark with no composition stays (no Mn stripping when cased) */
  EXPECT_T(tk, "C lone mark", "x\xCC\x81", "x", "##\xCC\x81");
  /* conjoining jamo compose into a syllable; the syllable is kept (no NFD) */
  EXPECT_T(tk, "C jamo", "\xE1\x84\x80\xE1\x85\xA1\xE1\x86\xA8", "\xEA\xB0\x81");
  EXPECT_T(tk, "C syllable", "\xEA\xB0\x81", "\xEA\xB0\x81");
  /* U+1FEF GREEK VARIA is NFC U+0060, which is punctuation: a ` b */
  EXPECT_T(tk, "C varia", "a\xE1\xBF\xAF" "b", "a", "`", "b");
  /* everything else as uncased: cleaning, CJK split, specials (exact case), WordPiece */
  EXPECT_T(tk, "C cleaning", "He\x01llo\x7f Wor\xE2\x80\x8B" "ld", "Hello", "World");
  EXPECT_T(tk, "C CJK", "\xE6\x88\x91NLP", "\xE6\x88\x91", "NLP");
  EXPECT_T(tk, "C specials", "Hello [SEP] World[MASK]", "Hello", "[SEP]", "World", "[MASK]");
  EXPECT_T(tk, "C wordpiece", "Cafx", "[UNK]");
  EXPECT_T(tk, "C I", "I", "I");
  {
    int ids[8], ty[8], mk[8], len = -1;
    rc = pb_tok_encode_pair(tk, "Hello", "World", 8, ids, ty, mk, &len);
    CHECK(rc == PB_OK && len == 5 && ids[0] == pb_tok_id(tk, "[CLS]") && ids[1] == pb_tok_id(tk, "Hello") &&
              ids[3] == pb_tok_id(tk, "World") && ids[4] == pb_tok_id(tk, "[SEP]"),
          "cased pair encoding");
  }
  pb_tok_set_lower_case(tk, 7); /* any non-zero: back to uncased */
  CHECK(pb_tok_lower_case(tk) == 1, "non-zero means 1");
  EXPECT_T(tk, "U again", "Hello Caf\xC3\xA9", "hello", "cafe");
  pb_tok_set_lower_case(NULL, 0);
  CHECK(pb_tok_lower_case(NULL) == 1, "NULL tokenizer reads as lower-case");

  /* vocabulary convention */
  CHECK(pb_tok_first_cased(tk) == pb_tok_id(tk, "Hello"), "first cased token of the cased vocab: %d",
        pb_tok_first_cased(tk));
  pb_tok_free(tk);
  static const struct { const char *v, *label; int want; } conv[] = {
      {"[PAD]\n[UNK]\n[CLS]\n[SEP]\n[MASK]\n[unused0]\n[UNUSED]\nthe\n##s\n", "uncased, bracketed", -1},
      {"[PAD]\n[UNK]\n[CLS]\n[SEP]\n[MASK]\nthe\n##The\n", "##The", 6},
      {"[PAD]\n[UNK]\n[CLS]\n[SEP]\n[MASK]\nthe\n[The\n", "unclosed bracket", 6},
      {"[PAD]\n[UNK]\n[CLS]\n[SEP]\n[MASK]\nthe\n\xC3\x84pfel\n", "non-ASCII upper", 6},
      {"[PAD]\n[UNK]\n[CLS]\n[SEP]\n[MASK]\n\xE2\x84\x9D\n\xC3\xA9\n\xFF\n", "U+211D, invalid byte", -1},
  };
  for (size_t i = 0; i < sizeof conv / sizeof conv[0]; i++) {
    pb_tokenizer *t = NULL;
    CHECK_OK(pb_tok_load_mem(&t, conv[i].v, strlen(conv[i].v), conv[i].label));
    int got = pb_tok_first_cased(t);
    printf("  convention %-22s -> %d\n", conv[i].label, got);
    CHECK(got == conv[i].want, "%s: first cased %d, expected %d", conv[i].label, got, conv[i].want);
    pb_tok_free(t);
  }
  CHECK(pb_tok_first_cased(NULL) == -1, "NULL tokenizer");
}

/* FNV-1a over all ids of SST-2 train sentences, sentence ends mixed in as 0xffffffff */
static void test_sst2(const pb_tokenizer *tk) {
  printf("-- SST-2 train checksum and speed\n");
  FILE *f = fopen(SST2, "rb");
  CHECK(f != NULL, "cannot open %s", SST2);
  if (!f) return;
  fseek(f, 0, SEEK_END);
  long sz = ftell(f);
  fseek(f, 0, SEEK_SET);
  char *buf = malloc((size_t)sz + 1);
  size_t got = buf ? fread(buf, 1, (size_t)sz, f) : 0;
  fclose(f);
  CHECK(buf && got == (size_t)sz, "read %s", SST2);
  if (!buf || got != (size_t)sz) { free(buf); return; }
  buf[sz] = 0;
  struct timespec t0, t1;
  clock_gettime(CLOCK_MONOTONIC, &t0);
  long rows = 0, ntok = 0;
  int maxlen = 0, ids[1024];
  uint32_t h = 2166136261u;
  char *p = strchr(buf, '\n') + 1; /* skip the header */
  while (*p) {
    char *nl = strchr(p, '\n');
    if (nl) *nl = 0;
    char *tab = strchr(p, '\t');
    if (tab) *tab = 0;
    int n = 0;
    pb_tok_tokenize(tk, p, ids, 1024, &n);
    for (int i = 0; i < n && i < 1024; i++) h = (h ^ (uint32_t)ids[i]) * 16777619u;
    h = (h ^ 0xffffffffu) * 16777619u;
    ntok += n;
    if (n > maxlen) maxlen = n;
    rows++;
    if (!nl) break;
    p = nl + 1;
  }
  clock_gettime(CLOCK_MONOTONIC, &t1);
  double s = (double)(t1.tv_sec - t0.tv_sec) + 1e-9 * (double)(t1.tv_nsec - t0.tv_nsec);
  printf("  %ld sentences, %ld tokens, longest %d, checksum %u, %.3f s (%.0f sentences/s)\n", rows, ntok, maxlen,
         (unsigned)h, s, (double)rows / s);
  /* reference values from the Python transcription of HF's BertTokenizer */
  CHECK(rows == 67349 && ntok == 762341 && maxlen == 64 && h == 980388013u, "SST-2 checksum mismatch");
  CHECK(s < 5.0, "tokenizing SST-2 train took %.2f s", s);
  free(buf);
}

int main(void) {
  pb_tokenizer *tk = NULL;
  int rc = pb_tok_load(&tk, VOCAB);
  if (rc != PB_OK) {
    printf("FAIL: cannot load %s: %s\n", VOCAB, pb_last_error());
    return 1;
  }
  test_cases(tk);
  test_pairs(tk);
  test_vocab_files();
  test_casing();
  /* bert-base-uncased is an uncased vocabulary; cased text through it loses the words */
  CHECK(pb_tok_first_cased(tk) == -1, "bert-base-uncased follows the uncased convention (first cased id %d)",
        pb_tok_first_cased(tk));
  pb_tok_set_lower_case(tk, 0);
  { static const int ids_[] = {100, 100};
    EXPECT(tk, "uncased vocab, cased", "Hello World", "[UNK]", "[UNK]"); }
  pb_tok_set_lower_case(tk, 1);
  test_sst2(tk);
  pb_tok_free(tk);
  if (failures) {
    printf("test_tokenizer: %d check(s) FAILED\n", failures);
    return 1;
  }
  printf("test_tokenizer: all checks passed\n");
  return 0;
}
