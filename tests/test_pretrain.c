/* MLM pretraining (harness/pretrain.h) on a tiny config and a small GLUE-format corpus that
 * the test writes itself: CLI errors, an interrupted + resumed run reproduces the
 * uninterrupted one exactly (per-step losses, grad norms, final weights), resume option
 * checks, the exported HF folder loads (MLM tensors present, no classifier), F16 export,
 * dev/test text never enters the corpus, --time-limit and the stop flag. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "backbone/bert.h"
#include "backbone/checkpoint.h"
#include "util/fileio.h"
#include "backbone/safetensors.h"
#include "util/status.h"
#include "harness/pretrain.h"
#include "tests/check.h"


static char root[256];

static const char *words[] = {"the", "movie", "film", "good", "bad", "great", "not", "very", "story", "plot",
                              "acting", "fun", "dull", "cat", "dog", "sat", "mat", "ran", "big", "small",
                              "red", "house", "car", "road", "tree", "water", "happy", "sad", "old", "new"};
#define NW ((int)(sizeof words / sizeof *words))

static void sentence(char *buf, size_t n, unsigned k) {
  size_t o = 0;
  int len = 3 + (int)(k % 7);
  for (int i = 0; i < len && o < n; i++) {
    unsigned w = (k * 2654435761u + (unsigned)i * 40503u) >> 7;
    o += (size_t)snprintf(buf + o, n - o, "%s%s", i ? " " : "", words[w % NW]);
  }
  if (o < n) snprintf(buf + o, n - o, " .");
}

static void write_text(const char *path, const char *text) {
  FILE *f = fopen(path, "w");
  if (!f) {
    CHECK(0, "cannot write %s", path);
    return;
  }
  fputs(text, f);
  fclose(f);
}

/* data dir with SST-2 (train, dev, test) and CoLA train; with_eval = 0 leaves out dev/test */
static void make_data(const char *dir, int with_eval, int variant) {
  char p[512], s[256], *buf = malloc(1 << 16);
  mkdir(dir, 0755);
  snprintf(p, sizeof p, "%s/SST-2", dir);
  mkdir(p, 0755);
  size_t o = (size_t)snprintf(buf, 1 << 16, "sentence\tlabel\n");
  for (unsigned i = 0; i < 60; i++) {
    sentence(s, sizeof s, i + (unsigned)variant * 1000);
    o += (size_t)snprintf(buf + o, (1 << 16) - o, "%s\t%u\n", s, i % 2);
  }
  snprintf(p, sizeof p, "%s/SST-2/train.tsv", dir);
  write_text(p, buf);
  if (with_eval) {
    o = (size_t)snprintf(buf, 1 << 16, "sentence\tlabel\n");
    for (unsigned i = 0; i < 20; i++) o += (size_t)snprintf(buf + o, (1 << 16) - o, "the moon and the sun star %u\t1\n", i);
    snprintf(p, sizeof p, "%s/SST-2/dev.tsv", dir);
    write_text(p, buf);
    snprintf(p, sizeof p, "%s/SST-2/test.tsv", dir);
    write_text(p, "index\tsentence\n0\tfire fire fire\n1\tmoon moon\n");
  }
  snprintf(p, sizeof p, "%s/CoLA", dir);
  mkdir(p, 0755);
  o = 0;
  for (unsigned i = 0; i < 40; i++) {
    sentence(s, sizeof s, 500 + i);
    o += (size_t)snprintf(buf + o, (1 << 16) - o, "src\t%u\t\t%s\n", i % 2, s);
  }
  snprintf(p, sizeof p, "%s/CoLA/train.tsv", dir);
  write_text(p, buf);
  free(buf);
}

/* runs pb_cmd_pretrain with the common tiny options + extra (space-separated) */
static int run(const char *out, const char *data, const char *extra) {
  static char line[2048];
  snprintf(line, sizeof line,
           "pretrain --out %s --data-dir %s --vocab tests/fixtures/tiny_bert/vocab.txt --layers 1 --hidden 16 "
           "--heads 2 --ffn 32 --max-len 24 --max-pos 32 --batch 4 --steps 12 --warmup 3 --lr 3e-3 --quiet %s",
           out, data, extra);
  char *argv[64];
  int argc = 0;
  for (char *t = strtok(line, " "); t && argc < 63; t = strtok(NULL, " ")) argv[argc++] = t;
  argv[argc] = NULL;
  return pb_cmd_pretrain(argc, argv);
}

static char *slurp(const char *path) {
  char *d = NULL;
  size_t n = 0;
  if (pb_read_file(path, &d, &n)) return NULL;
  return d;
}

/* log.tsv without the tokens/s column (timing) */
static char *log_losses(const char *dir) {
  char p[512];
  snprintf(p, sizeof p, "%s/log.tsv", dir);
  char *t = slurp(p);
  if (!t) return NULL;
  char *out = malloc(strlen(t) + 1), *o = out;
  for (char *line = t; *line;) {
    char *nl = strchr(line, '\n');
    if (!nl) break;
    char *last = line;
    for (char *c = line; c < nl; c++)
      if (*c == '\t') last = c;
    memcpy(o, line, (size_t)(last - line));
    o += last - line;
    *o++ = '\n';
    line = nl + 1;
  }
  *o = 0;
  free(t);
  return out;
}

static char *json_field(const char *dir, const char *key) {
  char p[512], pat[128];
  snprintf(p, sizeof p, "%s/pretrain.json", dir);
  char *t = slurp(p);
  if (!t) return NULL;
  snprintf(pat, sizeof pat, "\"%s\":", key);
  char *f = strstr(t, pat);
  char *res = NULL;
  if (f) {
    f += strlen(pat);
    while (*f == '\t' || *f == ' ') f++;
    size_t n = strcspn(f, ",\n");
    res = strndup(f, n);
  }
  free(t);
  return res;
}

static int files_equal(const char *a, const char *b) {
  char *x = NULL, *y = NULL;
  size_t nx = 0, ny = 0;
  int eq = pb_read_file(a, &x, &nx) == PB_OK && pb_read_file(b, &y, &ny) == PB_OK && nx == ny && memcmp(x, y, nx) == 0;
  free(x);
  free(y);
  return eq;
}

int main(void) {
  snprintf(root, sizeof root, "/tmp/pb_test_pretrain_XXXXXX");
  if (!mkdtemp(root)) {
    printf("cannot create a temp dir\n");
    return 1;
  }
  char data[300], data2[300], data3[300], A[300], Bd[300], C[300], D[300], E[300], F[300], p[600], q[600];
  snprintf(data, sizeof data, "%s/glue", root);
  snprintf(data2, sizeof data2, "%s/glue_noeval", root);
  snprintf(data3, sizeof data3, "%s/glue_other", root);
  make_data(data, 1, 0);
  make_data(data2, 0, 0);
  make_data(data3, 1, 1);
  snprintf(A, sizeof A, "%s/a", root);
  snprintf(Bd, sizeof Bd, "%s/b", root);
  snprintf(C, sizeof C, "%s/c", root);
  snprintf(D, sizeof D, "%s/d", root);
  snprintf(E, sizeof E, "%s/e", root);
  snprintf(F, sizeof F, "%s/f16", root);

  /* CLI errors */
  char *help[] = {"pretrain", "--help", NULL};
  FILE *saved = stdout;
  stdout = fopen("/dev/null", "w");
  int rc_help = pb_cmd_pretrain(2, help);
  fclose(stdout);
  stdout = saved;
  CHECK(rc_help == 0, "--help returned %d", rc_help);
  char *bad[] = {"pretrain", "--out", "x", "--bogus", NULL};
  CHECK(pb_cmd_pretrain(4, bad) == 2, "unknown option must give 2");
  char *noout[] = {"pretrain", "--steps", "3", NULL};
  CHECK(pb_cmd_pretrain(3, noout) == 2, "missing --out must give 2");
  char *badnum[] = {"pretrain", "--out", "x", "--steps", "abc", NULL};
  CHECK(pb_cmd_pretrain(5, badnum) == 2, "bad number must give 2");
  printf("CLI errors: checked\n");

  /* uninterrupted run */
  int rc = run(A, data, "--save-every 5");
  CHECK(rc == 0, "run A: %d %s", rc, pb_last_error());
  const char *files[] = {"config.json", "model.safetensors", "vocab.txt", "pretrain.json", "checkpoint.safetensors",
                         "log.tsv"};
  for (int i = 0; i < 6; i++) {
    snprintf(p, sizeof p, "%s/%s", A, files[i]);
    CHECK(access(p, R_OK) == 0, "%s missing", p);
  }
  /* interrupted after 5 steps (checkpoint at 3 and at the stop), then resumed */
  rc = run(Bd, data, "--save-every 3 --stop-after 5");
  CHECK(rc == 3, "interrupted run returned %d (want 3)", rc);
  snprintf(p, sizeof p, "%s/model.safetensors", Bd);
  CHECK(access(p, F_OK) != 0, "an interrupted run must not export the final model");
  /* resume: options not given come from the checkpoint */
  char *res[] = {"pretrain", "--out", Bd, "--resume", "--quiet", NULL};
  rc = pb_cmd_pretrain(5, res);
  CHECK(rc == 0, "resume returned %d: %s", rc, pb_last_error());
  /* the checkpoint interval carries over to the resumed run */
  snprintf(p, sizeof p, "%s/checkpoint.safetensors", Bd);
  pb_kv *ckm = NULL;
  int nckm = 0;
  CHECK(pb_st_read_meta(p, &ckm, &nckm) == 0, "cannot read %s", p);
  const char *se = pb_kv_get(ckm, nckm, "save_every");
  CHECK(se && strcmp(se, "3") == 0, "resumed run's checkpoint has save_every %s (want 3, carried over)", se ? se : "none");
  pb_kv_free(ckm, nckm);
  char *la = log_losses(A), *lb = log_losses(Bd);
  CHECK(la && lb && strcmp(la, lb) == 0, "resumed losses differ from the uninterrupted run:\n%s---\n%s", la ? la : "",
        lb ? lb : "");
  int nlines = 0;
  for (char *c = la; c && *c; c++) nlines += *c == '\n';
  CHECK(nlines == 13, "log has %d lines (want header + 12)", nlines);
  snprintf(p, sizeof p, "%s/model.safetensors", A);
  snprintf(q, sizeof q, "%s/model.safetensors", Bd);
  CHECK(files_equal(p, q), "resumed final weights differ from the uninterrupted run");
  char *fa = json_field(A, "final_mlm_loss"), *fb = json_field(Bd, "final_mlm_loss");
  CHECK(fa && fb && strcmp(fa, fb) == 0, "final MLM loss differs: %s vs %s", fa, fb);
  printf("resume: interrupted at step 5 + resumed == uninterrupted (losses, grad norms, weights; final loss %s)\n",
         fa ? fa : "?");
  /* first vs last losses: training works on the tiny corpus */
  if (la) {
    double l1 = 0, l12 = 0;
    char *line2 = strchr(la, '\n');
    if (line2) sscanf(line2 + 1, "%*d\t%lf", &l1);
    char *last = la + strlen(la) - 2;
    while (last > la && *last != '\n') last--;
    sscanf(last + 1, "%*d\t%lf", &l12);
    printf("loss step 1 %.4f -> step 12 %.4f (ln V = %.4f)\n", l1, l12, log(99.0));
    CHECK(l1 > 4.0 && l12 < l1, "loss did not fall: %.4f -> %.4f", l1, l12);
  }
  free(la), free(lb), free(fa), free(fb);

  /* resume with a changed training option is refused; a fresh run over a checkpoint too */
  rc = run(Bd, data, "--resume --lr 1e-3");
  CHECK(rc == 1, "resume with another --lr returned %d (want 1)", rc);
  printf("  refused: %s\n", pb_last_error());
  CHECK(strstr(pb_last_error(), "--lr") != NULL, "message should name --lr");
  rc = run(A, data, "");
  CHECK(rc == 1, "a fresh run into a folder with a checkpoint returned %d (want 1)", rc);

  /* the exported folder loads as an HF BERT; MLM head present, classifier absent */
  pb_config cfg;
  memset(&cfg, 0, sizeof cfg);
  snprintf(p, sizeof p, "%s/config.json", A);
  rc = pb_config_load_hf(p, &cfg);
  CHECK(rc == 0 && cfg.hidden == 16 && cfg.layers == 1 && cfg.vocab_size == 99 && cfg.max_pos == 32,
        "config.json: %s", pb_last_error());
  pb_model m;
  cfg.num_labels = 2;
  if (rc == 0 && pb_model_declare(&m, &cfg) == 0 && pb_model_alloc(&m, 2, 8) == 0) {
    rc = pb_model_load_hf(&m, A);
    CHECK(rc == 0, "pb_model_load_hf: %s", pb_last_error());
    pb_model_free(&m);
  }
  pb_st_file f;
  snprintf(p, sizeof p, "%s/model.safetensors", A);
  if (pb_st_open(&f, p) == 0) {
    CHECK(pb_st_find(&f, "cls.predictions.bias") >= 0 && pb_st_find(&f, "cls.predictions.transform.dense.weight") >= 0 &&
              pb_st_find(&f, "cls.predictions.transform.LayerNorm.weight") >= 0,
          "MLM head tensors missing");
    CHECK(pb_st_find(&f, "classifier.weight") < 0, "classifier must not be exported");
    CHECK(f.t[0].dtype == PB_ST_F32, "default export must be F32");
    pb_st_close(&f);
  } else {
    CHECK(0, "open %s: %s", p, pb_last_error());
  }
  snprintf(p, sizeof p, "%s/config.json", A);
  char *cj = slurp(p);
  CHECK(cj && strstr(cj, "BertForMaskedLM"), "config.json should name BertForMaskedLM");
  free(cj);

  /* --export in F16 from the checkpoint */
  char *ex[] = {"pretrain", "--out", A, "--export", F, "--fp16", "--quiet", NULL};
  rc = pb_cmd_pretrain(7, ex);
  CHECK(rc == 0, "export: %d %s", rc, pb_last_error());
  pb_st_file f32, f16;
  snprintf(p, sizeof p, "%s/model.safetensors", A);
  snprintf(q, sizeof q, "%s/model.safetensors", F);
  if (pb_st_open(&f32, p) == 0) {
    if (pb_st_open(&f16, q) == 0) {
      CHECK(f16.n == f32.n, "F16 export has %d tensors, F32 %d", f16.n, f32.n);
      CHECK(f16.t[0].dtype == PB_ST_F16, "export --fp16 must write F16");
      int wi = pb_st_find(&f32, "bert.embeddings.word_embeddings.weight"), wj = pb_st_find(&f16, "bert.embeddings.word_embeddings.weight");
      size_t n = wi >= 0 ? f32.t[wi].numel : 0;
      float *x = malloc(n * sizeof(float) + 1), *y = malloc(n * sizeof(float) + 1);
      double worst = 0;
      if (wi >= 0 && wj >= 0 && pb_st_read_f32(&f32, wi, x, n) == 0 && pb_st_read_f32(&f16, wj, y, n) == 0)
        for (size_t i = 0; i < n; i++) worst = fmax(worst, fabs(x[i] - y[i]) / (fabs(x[i]) + 1e-3));
      else
        CHECK(0, "word embeddings unreadable");
      printf("F16 export: %zu bytes vs F32 %zu, worst relative error %.2e\n", f16.map_size, f32.map_size, worst);
      CHECK(worst < 1e-3, "F16 values too far from F32");
      CHECK(f16.map_size < f32.map_size * 6 / 10, "F16 file not about half the size");
      free(x), free(y);
      pb_st_close(&f16);
    } else {
      CHECK(0, "open %s: %s", q, pb_last_error());
    }
    pb_st_close(&f32);
  }
  snprintf(p, sizeof p, "%s/pretrain.json", F);
  CHECK(access(p, R_OK) == 0, "export must write pretrain.json");

  /* dev/test text never enters the corpus: same corpus with and without them, different with other train text */
  rc = run(C, data2, "--steps 1 --warmup 0");
  CHECK(rc == 0, "run without dev/test: %s", pb_last_error());
  rc = run(D, data3, "--steps 1 --warmup 0");
  CHECK(rc == 0, "run with other train text: %s", pb_last_error());
  char *ha = json_field(A, "corpus_hash"), *hc = json_field(C, "corpus_hash"), *hd = json_field(D, "corpus_hash");
  CHECK(ha && hc && strcmp(ha, hc) == 0, "dev/test files changed the corpus (%s vs %s)", ha, hc);
  CHECK(ha && hd && strcmp(ha, hd) != 0, "other train text gave the same corpus hash");
  char *ns = json_field(A, "corpus_sentences");
  CHECK(ns && atoi(ns) == 100, "corpus sentences %s (want 60 SST-2 + 40 CoLA)", ns ? ns : "?");
  printf("corpus: %s sentences, hash %s; dev/test excluded\n", ns ? ns : "?", ha ? ha : "?");
  free(ha), free(hc), free(hd), free(ns);

  /* --time-limit: stops after the first step, saves and exports */
  rc = run(E, data, "--time-limit 0.000001");
  CHECK(rc == 0, "time-limited run: %d %s", rc, pb_last_error());
  char *sr = json_field(E, "stop_reason"), *st = json_field(E, "step");
  CHECK(sr && strstr(sr, "time-limit") && st && atoi(st) == 1, "time limit: stop_reason %s step %s", sr, st);
  free(sr), free(st);

  /* the signal flag: the step finishes, a checkpoint is written, PB_PRETRAIN_INTERRUPTED */
  pb_pretrain_opts o;
  pb_pretrain_defaults(&o);
  snprintf(o.out_dir, sizeof o.out_dir, "%s/sig", root);
  snprintf(o.data_dir, sizeof o.data_dir, "%s", data);
  snprintf(o.vocab, sizeof o.vocab, "tests/fixtures/tiny_bert/vocab.txt");
  o.layers = 1, o.hidden = 16, o.heads = 2, o.ffn = 32, o.max_len = 24, o.max_pos = 32, o.batch = 4, o.steps = 10;
  o.quiet = 1;
  pb_pretrain_stop_flag = 1;
  rc = pb_pretrain(&o);
  pb_pretrain_stop_flag = 0;
  CHECK(rc == PB_PRETRAIN_INTERRUPTED, "stop flag: rc %d (%s)", rc, pb_last_error());
  snprintf(p, sizeof p, "%s/sig/checkpoint.safetensors", root);
  pb_kv *kv = NULL;
  int nkv = 0;
  CHECK(pb_st_read_meta(p, &kv, &nkv) == 0 && pb_kv_get(kv, nkv, "step") && strcmp(pb_kv_get(kv, nkv, "step"), "1") == 0,
        "stop flag: checkpoint at step 1 expected");
  pb_kv_free(kv, nkv);
  printf("time limit and stop flag: checked\n");

  /* --nsp --wwm --extra-text: exact resume, BertForPreTraining export, loadable, GLUE-only
   * held-out set; extra text from a fake package root ($PEFTBENCH_TEXT_ROOT) */
  {
    char txt[300], G[300], H[300], d1[1000];
    snprintf(txt, sizeof txt, "%s/textroot", root);
    snprintf(d1, sizeof d1, "mkdir -p %s/usr/share/wordnet %s/usr/share/games/fortunes", txt, txt);
    CHECK(system(d1) == 0, "mkdir %s", txt);
    static const char *wn[] = {"data.noun", "data.verb", "data.adj", "data.adv"};
    for (int i = 0; i < 4; i++) {
      snprintf(p, sizeof p, "%s/usr/share/wordnet/%s", txt, wn[i]);
      char body[2048];
      size_t bl = (size_t)snprintf(body, sizeof body, "  1 licence header line | not text\n");
      for (unsigned k = 0; k < 6; k++) {
        char sent[200];
        sentence(sent, sizeof sent, 1000 + 10 * (unsigned)i + k);
        bl += (size_t)snprintf(body + bl, sizeof body - bl, "0000%u 03 n 01 word 0 000 | %s; \"%s\"  \n", k, sent, sent);
      }
      write_text(p, body);
    }
    snprintf(p, sizeof p, "%s/usr/share/games/fortunes/wisdom", txt);
    write_text(p, "the movie was good\n\tand the plot\n%\nnot very great\n%\n");
    snprintf(p, sizeof p, "%s/usr/share/games/fortunes/wisdom.dat", txt);
    write_text(p, "binary index, never read");
    setenv("PEFTBENCH_TEXT_ROOT", txt, 1);
    snprintf(G, sizeof G, "%s/nspG", root);
    snprintf(H, sizeof H, "%s/nspH", root);
    rc = run(G, data, "--nsp --wwm --extra-text wordnet,fortunes --save-every 5");
    CHECK(rc == 0, "nsp run: %d %s", rc, pb_last_error());
    rc = run(H, data, "--nsp --wwm --extra-text wordnet,fortunes --save-every 3 --stop-after 5");
    CHECK(rc == 3, "interrupted nsp run returned %d (want 3)", rc);
    char *resH[] = {"pretrain", "--out", H, "--resume", "--quiet", NULL};
    rc = pb_cmd_pretrain(5, resH);
    CHECK(rc == 0, "nsp resume returned %d: %s", rc, pb_last_error());
    char *lg = log_losses(G), *lh = log_losses(H);
    CHECK(lg && lh && strcmp(lg, lh) == 0, "nsp: resumed losses differ:\n%s---\n%s", lg ? lg : "", lh ? lh : "");
    CHECK(lg && strstr(lg, "nsp_loss"), "log lacks the nsp_loss column");
    snprintf(p, sizeof p, "%s/model.safetensors", G);
    snprintf(q, sizeof q, "%s/model.safetensors", H);
    CHECK(files_equal(p, q), "nsp: resumed final weights differ");
    char *ex = json_field(G, "corpus_extra"), *nv = json_field(G, "corpus_val_sequences"),
         *av = json_field(A, "corpus_val_sequences"), *vn = json_field(G, "val_nsp_acc");
    CHECK(ex && strstr(ex, "wordnet:24") && strstr(ex, "fortunes:2"), "corpus_extra %s (want wordnet:24 fortunes:2)",
          ex ? ex : "?");
    CHECK(nv && av && strcmp(nv, av) == 0, "held-out set changed with extra text (%s vs %s)", nv, av);
    CHECK(vn && strcmp(vn, "null") != 0, "no val_nsp_acc");
    printf("nsp + wwm + extra text: resume exact, corpus_extra %s, val NSP acc %s\n", ex ? ex : "?", vn ? vn : "?");
    free(lg), free(lh), free(ex), free(nv), free(av), free(vn);
    snprintf(p, sizeof p, "%s/config.json", G);
    char *cj = slurp(p);
    CHECK(cj && strstr(cj, "BertForPreTraining"), "config.json should name BertForPreTraining");
    free(cj);
    pb_st_file f2;
    snprintf(p, sizeof p, "%s/model.safetensors", G);
    if (pb_st_open(&f2, p) == 0) {
      CHECK(pb_st_find(&f2, "cls.seq_relationship.weight") >= 0 && pb_st_find(&f2, "bert.pooler.dense.weight") >= 0 &&
                pb_st_find(&f2, "classifier.weight") < 0,
            "nsp export: seq_relationship/pooler missing or classifier present");
      pb_st_close(&f2);
    }
    pb_config c2;
    memset(&c2, 0, sizeof c2);
    snprintf(p, sizeof p, "%s/config.json", G);
    pb_model m2;
    if (pb_config_load_hf(p, &c2) == 0) {
      c2.num_labels = 2;
      if (pb_model_declare(&m2, &c2) == 0 && pb_model_alloc(&m2, 2, 8) == 0) {
        rc = pb_model_load_hf(&m2, G);
        CHECK(rc == 0, "pb_model_load_hf of the nsp export: %s", pb_last_error());
        pb_model_free(&m2);
      }
    }
    rc = run(H, data, "--resume --extra-text wordnet");
    CHECK(rc == 1, "resume with another --extra-text returned %d (want 1)", rc);
    rc = run(root, data, "--extra-text nosuch --steps 1 --warmup 0");
    CHECK(rc == 1, "unknown --extra-text source returned %d (want 1)", rc);
    unsetenv("PEFTBENCH_TEXT_ROOT");
  }

  /* --init-from: starting from run A's export, the first loss is A's trained level, not the
   * random-init one; a folder of another shape is refused */
  {
    char I[300], J[300], ex2[400];
    snprintf(I, sizeof I, "%s/initI", root);
    snprintf(J, sizeof J, "%s/initJ", root);
    snprintf(ex2, sizeof ex2, "--init-from %s --steps 1 --warmup 0", A);
    rc = run(I, data, ex2);
    CHECK(rc == 0, "--init-from run: %d %s", rc, pb_last_error());
    char *li = log_losses(I), *la2 = log_losses(A);
    double l_init = li && strchr(li, '\n') ? atof(strchr(strchr(li, '\n') + 1, '\t') + 1) : NAN;
    double l_rand = la2 && strchr(la2, '\n') ? atof(strchr(strchr(la2, '\n') + 1, '\t') + 1) : NAN;
    double l_last = NAN;
    if (la2) {
      char *e = la2 + strlen(la2) - 1, *b = e;
      while (b > la2 && b[-1] != '\n') b--;
      l_last = atof(strchr(b, '\t') + 1);
    }
    printf("init-from: step-1 loss %.4f (random init %.4f, A's last step %.4f)\n", l_init, l_rand, l_last);
    CHECK(l_init < l_rand - 0.02, "--init-from did not start from the trained weights (%.4f vs random %.4f)", l_init, l_rand);
    free(li), free(la2);
    snprintf(ex2, sizeof ex2, "--init-from %s --hidden 8 --steps 1 --warmup 0", A);
    rc = run(J, data, ex2);
    CHECK(rc == 1, "--init-from of another shape returned %d (want 1)", rc);
  }

  /* --eval-dev: the MLM loss of a folder on the dev text. A nearly untrained model (1 step at lr
   * 1e-12: logits ~ 0.02 * |LayerNorm output| ~ 0.08) scores about ln V (V = 99); the trained A
   * scores otherwise; the same call twice prints the same line; errors are one line each */
  {
    char R[300], out[400], line[2][4096];
    snprintf(R, sizeof R, "%s/untrained", root);
    rc = run(R, data, "--steps 1 --warmup 0 --lr 1e-12");
    CHECK(rc == 0, "untrained run: %d %s", rc, pb_last_error());
    double l[3] = {NAN, NAN, NAN};
    const char *dirs[3] = {R, A, R};
    for (int i = 0; i < 3; i++) {
      snprintf(out, sizeof out, "%s/evaldev.txt", root);
      char *argv[] = {"pretrain", "--eval-dev", (char *)dirs[i], "--data-dir", data, "--max-len", "24", "--batch", "4", NULL};
      FILE *keep = stdout;
      stdout = fopen(out, "w");
      int erc = pb_cmd_pretrain(9, argv);
      fclose(stdout);
      stdout = keep;
      char *t = slurp(out);
      CHECK(erc == 0 && t && strstr(t, "MLM loss "), "--eval-dev %s: rc %d, '%s' (%s)", dirs[i], erc, t ? t : "", pb_last_error());
      if (t && strstr(t, "MLM loss ")) l[i] = atof(strstr(t, "MLM loss ") + 9);
      if (i != 1) snprintf(line[i / 2], sizeof line[0], "%s", t ? t : "");
      if (i == 0) printf("eval-dev: %s", t ? t : "(none)\n");
      free(t);
    }
    printf("eval-dev: untrained %.4f (ln 99 = %.4f), trained A %.4f\n", l[0], log(99.0), l[1]);
    CHECK(fabs(l[0] - log(99.0)) < 0.05, "untrained model's dev MLM loss %.4f, expected about ln 99 = %.4f", l[0], log(99.0));
    CHECK(isfinite(l[1]) && fabs(l[1] - l[0]) > 0.01, "trained A's dev loss %.4f equals the untrained one's %.4f", l[1], l[0]);
    CHECK(strcmp(line[0], line[1]) == 0, "--eval-dev twice differs: '%s' vs '%s'", line[0], line[1]);
    CHECK(strstr(line[0], "sst2:20") != NULL, "the dev text is SST-2's 20 dev rows only: %s", line[0]);
    char *both[] = {"pretrain", "--eval-dev", R, "--out", R, NULL};
    CHECK(pb_cmd_pretrain(5, both) == 2, "--eval-dev with --out must be a usage error");
    char *nodev[] = {"pretrain", "--eval-dev", R, "--data-dir", data2, "--max-len", "24", "--quiet", NULL};
    rc = pb_cmd_pretrain(8, nodev);
    CHECK(rc == 1 && strstr(pb_last_error(), "no GLUE dev text"), "--eval-dev without dev files: %d %s", rc, pb_last_error());
    /* a folder without the MLM head (as a fine-tuning export) */
    snprintf(p, sizeof p, "%s/nohead", root);
    mkdir(p, 0755);
    snprintf(q, sizeof q, "cp tests/fixtures/tiny_bert/config.json tests/fixtures/tiny_bert/model.safetensors tests/fixtures/tiny_bert/vocab.txt %.400s/", p);
    if (system(q) == 0) {
      char *nohead[] = {"pretrain", "--eval-dev", p, "--data-dir", data, "--max-len", "24", "--quiet", NULL};
      rc = pb_cmd_pretrain(8, nohead);
      printf("eval-dev without an MLM head -> %d: %s\n", rc, pb_last_error());
      CHECK(rc == 1 && strstr(pb_last_error(), "not an MLM checkpoint"), "--eval-dev of a folder without the MLM head: %d %s",
            rc, pb_last_error());
    }
  }

  char cmd[400];
  snprintf(cmd, sizeof cmd, "rm -rf %s", root);
  if (failures == 0 && system(cmd) != 0) printf("(could not remove %s)\n", root);
  if (failures) {
    printf("test_pretrain: %d failure(s) (files kept in %s)\n", failures, root);
    return 1;
  }
  printf("test_pretrain: all checks passed\n");
  return 0;
}
