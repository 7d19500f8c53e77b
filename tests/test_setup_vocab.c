/* pb_load_vocab: vocabulary resolution, casing resolution and the vocabulary digest, on model
 * folders the test writes (config.json + vocab.txt + tokenizer_config.json variants):
 *  - casing: --lower-case option > tokenizer_config.json do_lower_case > the vocabulary's
 *    convention (cased iff a non-bracketed token has an upper-case letter); the outcome and its
 *    source are in pb_backbone_info and the tokenizer really tokenizes that way;
 *  - a --model folder without vocab.txt is an error unless --vocab is given; the embedded
 *    default (also spelt as an explicit path) and --shape backbones use the shared vocab;
 *  - tokenizer_config.json errors (not JSON, wrong types, unsupported settings);
 *  - vocab_sha256 is the SHA-256 of the vocabulary file's bytes (values from Python hashlib).
 * Runs from the repo root; needs ../shared/data. */
#include "util/digest.h"
#include "util/fileio.h"
#include "util/status.h"
#include "backbone/tokenizer.h"
#include "harness/setup.h"
#include "tests/check.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define SHARED_VOCAB "../shared/data/vocab/bert-base-uncased-vocab.txt"

/* a cased and an uncased vocabulary, and their SHA-256 (python3 hashlib) */
static const char CASED[] = "[PAD]\n[UNK]\n[CLS]\n[SEP]\n[MASK]\n[unused0]\nHello\nWorld\nhello\nworld\n";
#define CASED_SHA "cd4539a1d6bac777608eeaa7dc95823b6f762b6ed11cd00b67a97b61d2cfcb28"
static const char UNCASED[] = "[PAD]\n[UNK]\n[CLS]\n[SEP]\n[MASK]\n[unused0]\nhello\nworld\n";
#define UNCASED_SHA "a4d634f8a60c739b70632bc2fa3ae383d4f6e2214a5b28589d2d7305d3e40f8c"
/* bert-base-uncased's vocab.txt (sha256sum) */
#define SHARED_SHA "07eced375cec144d27c900241f3e339478dec958f92fddbc551f295c992038a3"

static const char CONFIG[] =
    "{\"vocab_size\": 100, \"hidden_size\": 16, \"num_hidden_layers\": 1, \"num_attention_heads\": 2,"
    " \"intermediate_size\": 32, \"max_position_embeddings\": 32}";

static char g_dir[256];

/* writes g_dir/name/{config.json, vocab.txt (vocab != NULL), tokenizer_config.json (tc != NULL)} */
static void make_folder(const char *name, const char *vocab, const char *tc, char *dir, size_t n) {
  char p[600];
  snprintf(dir, n, "%s/%s", g_dir, name);
  mkdir(dir, 0755);
  snprintf(p, sizeof p, "%s/config.json", dir);
  CHECK_OK(pb_write_file_atomic(p, CONFIG, strlen(CONFIG)));
  if (vocab) {
    snprintf(p, sizeof p, "%s/vocab.txt", dir);
    CHECK_OK(pb_write_file_atomic(p, vocab, strlen(vocab)));
  }
  if (tc) {
    snprintf(p, sizeof p, "%s/tokenizer_config.json", dir);
    CHECK_OK(pb_write_file_atomic(p, tc, strlen(tc)));
  }
}

static void init_opts(pb_backbone_opts *o, const char *dir) {
  memset(o, 0, sizeof *o);
  o->model_dir = dir;
  o->num_labels = 2;
  o->hidden_dropout = o->attn_dropout = -1;
}

/* config + vocab as the CLI does; returns the status, *tk set on success */
static int load(const pb_backbone_opts *o, pb_tokenizer **tk, pb_backbone_info *info) {
  pb_config cfg;
  *tk = NULL;
  int rc = pb_backbone_config(o, &cfg, info);
  if (rc) return rc;
  return pb_load_vocab(o, &cfg, tk, info);
}

/* tokenizes "Hello World" and compares with two expected tokens */
static void expect_hello(const pb_tokenizer *tk, const char *label, const char *t0, const char *t1) {
  int ids[8], n = -1;
  CHECK(pb_tok_tokenize(tk, "Hello World", ids, 8, &n) == PB_OK && n == 2, "%s: %d tokens", label, n);
  if (n != 2) return;
  const char *a = pb_tok_token(tk, ids[0]), *b = pb_tok_token(tk, ids[1]);
  printf("      'Hello World' -> %s %s\n", a, b);
  CHECK(strcmp(a, t0) == 0 && strcmp(b, t1) == 0, "%s: 'Hello World' -> %s %s, expected %s %s", label, a, b, t0, t1);
}

static const struct {
  const char *name, *vocab, *tc; /* tc NULL: no tokenizer_config.json */
  int option;                    /* PB_LOWER_CASE_* */
  int want_lower;
  const char *want_source, *want_sha;
} CASES[] = {
    {"tc_false_uncased", UNCASED, "{\"do_lower_case\": false}", PB_LOWER_CASE_AUTO, 0, "tokenizer_config.json",
     UNCASED_SHA},
    {"tc_true_cased", CASED, "{\"do_lower_case\": true, \"strip_accents\": null, \"model_max_length\": 512}",
     PB_LOWER_CASE_AUTO, 1, "tokenizer_config.json", CASED_SHA},
    {"tc_false_cased", CASED, "{\"do_lower_case\": false, \"strip_accents\": false}", PB_LOWER_CASE_AUTO, 0,
     "tokenizer_config.json", CASED_SHA},
    {"notc_cased", CASED, NULL, PB_LOWER_CASE_AUTO, 0, "vocab convention", CASED_SHA},
    {"notc_uncased", UNCASED, NULL, PB_LOWER_CASE_AUTO, 1, "vocab convention", UNCASED_SHA},
    {"tc_nokey_cased", CASED, "{\"model_max_length\": 512}", PB_LOWER_CASE_AUTO, 0, "vocab convention", CASED_SHA},
    {"tc_nokey_uncased", UNCASED, "{}", PB_LOWER_CASE_AUTO, 1, "vocab convention", UNCASED_SHA},
    {"opt_yes_over_tc", CASED, "{\"do_lower_case\": false}", PB_LOWER_CASE_YES, 1, "option", CASED_SHA},
    {"opt_yes_over_vocab", CASED, NULL, PB_LOWER_CASE_YES, 1, "option", CASED_SHA},
    {"opt_no_over_tc", UNCASED, "{\"do_lower_case\": true}", PB_LOWER_CASE_NO, 0, "option", UNCASED_SHA},
    {"opt_no_over_vocab", UNCASED, NULL, PB_LOWER_CASE_NO, 0, "option", UNCASED_SHA},
};

static void test_resolution(void) {
  printf("casing resolution: option > tokenizer_config.json > vocab convention\n");
  for (size_t i = 0; i < sizeof CASES / sizeof CASES[0]; i++) {
    char dir[512];
    make_folder(CASES[i].name, CASES[i].vocab, CASES[i].tc, dir, sizeof dir);
    pb_backbone_opts o;
    init_opts(&o, dir);
    o.lower_case = CASES[i].option;
    pb_backbone_info info;
    pb_tokenizer *tk = NULL;
    int rc = load(&o, &tk, &info);
    printf("  %-20s -> %s lower_case %d (%s) sha %.12s...\n", CASES[i].name, pb_status_name(rc), info.lower_case,
           info.lower_case_source, info.vocab_sha256);
    CHECK(rc == PB_OK && tk, "%s: rc %d %s", CASES[i].name, rc, pb_last_error());
    if (rc || !tk) continue;
    CHECK(info.lower_case == CASES[i].want_lower, "%s: lower_case %d, expected %d", CASES[i].name, info.lower_case,
          CASES[i].want_lower);
    CHECK(pb_tok_lower_case(tk) == CASES[i].want_lower, "%s: the tokenizer has lower_case %d", CASES[i].name,
          pb_tok_lower_case(tk));
    CHECK(strcmp(info.lower_case_source, CASES[i].want_source) == 0, "%s: source '%s', expected '%s'",
          CASES[i].name, info.lower_case_source, CASES[i].want_source);
    CHECK(strcmp(info.vocab_sha256, CASES[i].want_sha) == 0, "%s: vocab_sha256 %s, expected %s", CASES[i].name,
          info.vocab_sha256, CASES[i].want_sha);
    char h[65];
    CHECK_OK(pb_sha256_hex(CASES[i].vocab, strlen(CASES[i].vocab), h));
    CHECK(strcmp(info.vocab_sha256, h) == 0, "%s: vocab_sha256 is not the hash of the bytes", CASES[i].name);
    char want_path[600];
    snprintf(want_path, sizeof want_path, "%s/vocab.txt", dir);
    CHECK(strcmp(info.vocab_path, want_path) == 0, "%s: vocab_path %s", CASES[i].name, info.vocab_path);
    /* the casing really applies: cased vocab + cased -> Hello World; lower-cased -> hello world;
     * uncased vocab + cased -> [UNK] [UNK] */
    int cased_vocab = CASES[i].vocab == CASED;
    if (CASES[i].want_lower) expect_hello(tk, CASES[i].name, "hello", "world");
    else if (cased_vocab) expect_hello(tk, CASES[i].name, "Hello", "World");
    else expect_hello(tk, CASES[i].name, "[UNK]", "[UNK]");
    pb_tok_free(tk);
  }
}

static void test_vocab_files(void) {
  printf("vocabulary resolution\n");
  char dir[512], p[600], msg[1200];
  pb_backbone_opts o;
  pb_backbone_info info;
  pb_tokenizer *tk = (pb_tokenizer *)1;

  /* --model folder without vocab.txt: one line naming the folder, not the shared vocab */
  make_folder("novocab", NULL, NULL, dir, sizeof dir);
  init_opts(&o, dir);
  int rc = load(&o, &tk, &info);
  snprintf(msg, sizeof msg, "%s: no vocab.txt (give --vocab FILE)", dir);
  printf("  no vocab.txt        -> %s: %s\n", pb_status_name(rc), pb_last_error());
  CHECK(rc == PB_ERR_FORMAT && tk == NULL, "no vocab.txt: rc %d, tk %p", rc, (void *)tk);
  CHECK(strcmp(pb_last_error(), msg) == 0, "no vocab.txt: message '%s', expected '%s'", pb_last_error(), msg);
  /* ... with a tokenizer_config.json too */
  make_folder("novocab_tc", NULL, "{\"do_lower_case\": false}", dir, sizeof dir);
  init_opts(&o, dir);
  rc = load(&o, &tk, &info);
  CHECK(rc == PB_ERR_FORMAT && tk == NULL && strstr(pb_last_error(), "no vocab.txt"), "no vocab.txt (tc): rc %d %s",
        rc, pb_last_error());

  /* ... unless --vocab is given; the folder's tokenizer_config.json still decides the casing */
  char vfile[600];
  snprintf(vfile, sizeof vfile, "%s/cased-vocab.txt", g_dir);
  CHECK_OK(pb_write_file_atomic(vfile, CASED, strlen(CASED)));
  init_opts(&o, dir);
  o.vocab = vfile;
  rc = load(&o, &tk, &info);
  printf("  --vocab FILE        -> %s lower_case %d (%s) %s\n", pb_status_name(rc), info.lower_case,
         info.lower_case_source, info.vocab_path);
  CHECK(rc == PB_OK && tk && strcmp(info.vocab_path, vfile) == 0 && info.lower_case == 0 &&
            strcmp(info.lower_case_source, "tokenizer_config.json") == 0 && strcmp(info.vocab_sha256, CASED_SHA) == 0,
        "--vocab with a folder lacking vocab.txt: rc %d %s", rc, pb_last_error());
  if (tk && rc == PB_OK) expect_hello(tk, "--vocab", "Hello", "World");
  if (rc == PB_OK) pb_tok_free(tk);
  /* --vocab overrides the folder's own vocab.txt */
  make_folder("has_uncased", UNCASED, NULL, dir, sizeof dir);
  init_opts(&o, dir);
  o.vocab = vfile;
  rc = load(&o, &tk, &info);
  CHECK(rc == PB_OK && strcmp(info.vocab_path, vfile) == 0 && strcmp(info.vocab_sha256, CASED_SHA) == 0 &&
            info.lower_case == 0 && strcmp(info.lower_case_source, "vocab convention") == 0,
        "--vocab beats DIR/vocab.txt: rc %d %s", rc, info.vocab_path);
  if (rc == PB_OK) pb_tok_free(tk);
  /* a missing --vocab file: pb_tok_load's error naming it */
  snprintf(p, sizeof p, "%s/no-such-vocab.txt", g_dir);
  o.vocab = p;
  rc = load(&o, &tk, &info);
  CHECK(rc == PB_ERR_NOTFOUND && tk == NULL && strstr(pb_last_error(), "no-such-vocab.txt"), "missing --vocab: %d %s",
        rc, pb_last_error());

  /* --shape: the shared vocab, uncased by convention, its digest */
  char shared_sha[65];
  CHECK_OK(pb_sha256_file(SHARED_VOCAB, shared_sha));
  CHECK(strcmp(shared_sha, SHARED_SHA) == 0, "shared vocab sha256 %s (sha256sum gave " SHARED_SHA ")", shared_sha);
  init_opts(&o, NULL);
  o.shape = "1,16,2,32";
  rc = load(&o, &tk, &info);
  printf("  --shape             -> %s lower_case %d (%s) %s %.12s...\n", pb_status_name(rc), info.lower_case,
         info.lower_case_source, info.vocab_path, info.vocab_sha256);
  CHECK(rc == PB_OK && strstr(info.vocab_path, "bert-base-uncased-vocab.txt") && info.lower_case == 1 &&
            strcmp(info.lower_case_source, "vocab convention") == 0 && strcmp(info.vocab_sha256, SHARED_SHA) == 0,
        "--shape: rc %d %s", rc, pb_last_error());
  if (rc == PB_OK) pb_tok_free(tk);
  init_opts(&o, NULL);
  o.shape = "1,16,2,32";
  o.lower_case = PB_LOWER_CASE_NO;
  rc = load(&o, &tk, &info);
  CHECK(rc == PB_OK && info.lower_case == 0 && pb_tok_lower_case(tk) == 0 && strcmp(info.lower_case_source, "option") == 0,
        "--shape --lower-case no: rc %d", rc);
  if (rc == PB_OK) pb_tok_free(tk);

  /* the embedded default: no --model, and the same folder given as an explicit path */
  init_opts(&o, NULL);
  rc = load(&o, &tk, &info);
  CHECK(rc == PB_OK && strstr(info.vocab_path, "bert-base-uncased-vocab.txt") && info.lower_case == 1 &&
            strcmp(info.vocab_sha256, SHARED_SHA) == 0,
        "default backbone: rc %d %s", rc, pb_last_error());
  if (rc == PB_OK) pb_tok_free(tk);
  char spelt[600];
  snprintf(spelt, sizeof spelt, "%s/models/../models/default", PB_SOURCE_DIR);
  init_opts(&o, spelt);
  rc = load(&o, &tk, &info);
  printf("  --model <default>   -> %s %s\n", pb_status_name(rc), rc ? pb_last_error() : info.vocab_path);
  CHECK(rc == PB_OK && strstr(info.vocab_path, "bert-base-uncased-vocab.txt"), "explicit default folder: rc %d %s",
        rc, pb_last_error());
  if (rc == PB_OK) pb_tok_free(tk);

  /* vocab larger than the backbone's embeddings (config says 100) */
  init_opts(&o, dir);
  o.vocab = SHARED_VOCAB;
  rc = load(&o, &tk, &info);
  CHECK(rc == PB_ERR_SHAPE && tk == NULL && strstr(pb_last_error(), "bert-base-uncased-vocab.txt"),
        "oversized vocab: rc %d %s", rc, pb_last_error());
}

static void test_config_errors(void) {
  printf("tokenizer_config.json errors\n");
  static const struct {
    const char *name, *tc;
    int option, want;
    const char *needle;
  } bad[] = {
      {"tc_notjson", "{\"do_lower_case\": fals", PB_LOWER_CASE_AUTO, PB_ERR_FORMAT, "JSON"},
      {"tc_array", "[true]", PB_LOWER_CASE_AUTO, PB_ERR_FORMAT, "object"},
      {"tc_string", "{\"do_lower_case\": \"false\"}", PB_LOWER_CASE_AUTO, PB_ERR_FORMAT, "do_lower_case"},
      {"tc_null", "{\"do_lower_case\": null}", PB_LOWER_CASE_AUTO, PB_ERR_FORMAT, "do_lower_case"},
      {"tc_strip_type", "{\"do_lower_case\": true, \"strip_accents\": 1}", PB_LOWER_CASE_AUTO, PB_ERR_FORMAT,
       "strip_accents"},
      {"tc_strip_false", "{\"do_lower_case\": true, \"strip_accents\": false}", PB_LOWER_CASE_AUTO,
       PB_ERR_UNSUPPORTED, "strip_accents"},
      {"tc_strip_true", "{\"do_lower_case\": false, \"strip_accents\": true}", PB_LOWER_CASE_AUTO, PB_ERR_UNSUPPORTED,
       "strip_accents"},
      {"tc_strip_vs_opt", "{\"strip_accents\": true}", PB_LOWER_CASE_NO, PB_ERR_UNSUPPORTED, "strip_accents"},
      {"tc_chinese", "{\"tokenize_chinese_chars\": false}", PB_LOWER_CASE_AUTO, PB_ERR_UNSUPPORTED,
       "tokenize_chinese_chars"},
      /* the option does not make a broken file acceptable */
      {"tc_notjson_opt", "not json", PB_LOWER_CASE_YES, PB_ERR_FORMAT, "JSON"},
  };
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
    char dir[512];
    make_folder(bad[i].name, UNCASED, bad[i].tc, dir, sizeof dir);
    pb_backbone_opts o;
    init_opts(&o, dir);
    o.lower_case = bad[i].option;
    pb_backbone_info info;
    pb_tokenizer *tk = (pb_tokenizer *)1;
    int rc = load(&o, &tk, &info);
    printf("  %-16s -> %s: %s\n", bad[i].name, pb_status_name(rc), pb_last_error());
    CHECK(rc == bad[i].want && tk == NULL, "%s: rc %d (want %d)", bad[i].name, rc, bad[i].want);
    CHECK(strstr(pb_last_error(), "tokenizer_config.json") && strstr(pb_last_error(), bad[i].name) &&
              strstr(pb_last_error(), bad[i].needle),
          "%s: message '%s' must name the file and '%s'", bad[i].name, pb_last_error(), bad[i].needle);
    if (rc == PB_OK && tk) pb_tok_free(tk);
  }
  /* an out-of-range option value */
  char dir[512];
  make_folder("opt_range", UNCASED, NULL, dir, sizeof dir);
  pb_backbone_opts o;
  init_opts(&o, dir);
  o.lower_case = 3;
  pb_backbone_info info;
  pb_tokenizer *tk = NULL;
  int rc = load(&o, &tk, &info);
  CHECK(rc == PB_ERR_ARG && tk == NULL, "lower_case 3: rc %d", rc);
  o.lower_case = -1;
  rc = load(&o, &tk, &info);
  CHECK(rc == PB_ERR_ARG && tk == NULL, "lower_case -1: rc %d", rc);
}

static void test_parse(void) {
  printf("--lower-case values\n");
  int v = -5;
  CHECK(pb_lower_case_parse("auto", &v) == PB_OK && v == PB_LOWER_CASE_AUTO, "auto -> %d", v);
  CHECK(pb_lower_case_parse("yes", &v) == PB_OK && v == PB_LOWER_CASE_YES, "yes -> %d", v);
  CHECK(pb_lower_case_parse("no", &v) == PB_OK && v == PB_LOWER_CASE_NO, "no -> %d", v);
  CHECK(PB_LOWER_CASE_AUTO == 0, "zero-initialised options must mean auto");
  int rc = pb_lower_case_parse("maybe", &v);
  printf("  maybe -> %s: %s\n", pb_status_name(rc), pb_last_error());
  CHECK(rc == PB_ERR_ARG && strstr(pb_last_error(), "maybe"), "maybe rejected");
  CHECK(pb_lower_case_parse(NULL, &v) == PB_ERR_ARG, "NULL rejected");
}

int main(void) {
  snprintf(g_dir, sizeof g_dir, "/tmp/pb_test_setup_vocab_XXXXXX");
  if (!mkdtemp(g_dir)) {
    printf("mkdtemp failed\n");
    return 2;
  }
  test_resolution();
  test_vocab_files();
  test_config_errors();
  test_parse();
  char cmd[600];
  snprintf(cmd, sizeof cmd, "rm -rf '%s'", g_dir);
  if (system(cmd) != 0) printf("warning: could not remove %s\n", g_dir);
  printf("%d checks, %d failed\n", checks, failures);
  return failures ? 1 : 0;
}
