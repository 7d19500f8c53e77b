#include "harness/corpus.h"

#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "util/fileio.h"
#include "util/status.h"
#include "harness/glue.h"

void pb_corpus_free(pb_corpus *c) {
  free(c->ids);
  free(c->len);
  memset(c, 0, sizeof *c);
}

static int corpus_push(pb_corpus *c, int *cap, const int *cur, int cur_len, int pad) {
  if (cur_len <= 1) return PB_OK; /* nothing but [CLS] */
  if (c->n_seq == *cap) {
    int ncap = *cap ? 2 * *cap : 4096;
    int *ids = realloc(c->ids, (size_t)ncap * c->T * sizeof(int)), *len = NULL;
    if (ids) c->ids = ids;
    len = ids ? realloc(c->len, (size_t)ncap * sizeof(int)) : NULL;
    if (!ids || !len) return pb_set_error(PB_ERR_NOMEM, "pretrain: out of memory packing the corpus");
    c->len = len;
    *cap = ncap;
  }
  int *dst = c->ids + (size_t)c->n_seq * c->T;
  for (int t = 0; t < c->T; t++) dst[t] = t < cur_len ? cur[t] : pad;
  c->len[c->n_seq++] = cur_len;
  c->n_tokens += cur_len;
  return PB_OK;
}

typedef struct {
  pb_corpus *c;
  const pb_tokenizer *tk;
  int cls, sep, pad;
  int cap, cur_len;
  int *cur, *tok, tcap;
} packer;

/* tokenises one sentence and appends it to the sequence being packed */
static int pack_sentence(packer *pk, const char *text) {
  pb_corpus *c = pk->c;
  const int T = c->T;
  int n = 0, rc;
  if ((rc = pb_tok_tokenize(pk->tk, text, pk->tok, pk->tcap, &n))) return rc;
  if (n > pk->tcap) {
    int *nt = realloc(pk->tok, (size_t)n * sizeof(int));
    if (!nt) return pb_set_error(PB_ERR_NOMEM, "pretrain: out of memory");
    pk->tok = nt;
    pk->tcap = n;
    if ((rc = pb_tok_tokenize(pk->tk, text, pk->tok, pk->tcap, &n))) return rc;
  }
  if (n == 0) return PB_OK;
  c->n_sent++;
  if (n > T - 2) {
    n = T - 2;
    c->n_trunc++;
  }
  if (pk->cur_len > 0 && pk->cur_len + n + 1 > T) {
    if ((rc = corpus_push(c, &pk->cap, pk->cur, pk->cur_len, pk->pad))) return rc;
    pk->cur_len = 0;
  }
  if (pk->cur_len == 0) pk->cur[pk->cur_len++] = pk->cls;
  memcpy(pk->cur + pk->cur_len, pk->tok, (size_t)n * sizeof(int));
  pk->cur_len += n;
  pk->cur[pk->cur_len++] = pk->sep;
  return PB_OK;
}

/* ends the sequence being packed (a source boundary) */
static int pack_flush(packer *pk) {
  int rc = corpus_push(pk->c, &pk->cap, pk->cur, pk->cur_len, pk->pad);
  pk->cur_len = 0;
  return rc;
}

static void add_source(pb_corpus *c, const char *name, long n) {
  size_t l = strlen(c->sources);
  if (l < sizeof c->sources)
    snprintf(c->sources + l, sizeof c->sources - l, "%s%s:%ld", l ? " " : "", name, n);
}

/* WordNet 3.0 glosses (wordnet-base): in data.{noun,verb,adj,adv}, every synset line's text
 * after " | " (definition; "examples") is one sentence; the licence header lines (starting
 * with a space) are skipped. */
static int add_wordnet(packer *pk, const char *root) {
  static const char *files[] = {"data.noun", "data.verb", "data.adj", "data.adv"};
  long n = 0;
  for (int f = 0; f < 4; f++) {
    char path[1024];
    snprintf(path, sizeof path, "%s/usr/share/wordnet/%s", root, files[f]);
    char *txt = NULL;
    size_t len = 0;
    if (pb_read_file(path, &txt, &len))
      return pb_set_error(PB_ERR_NOTFOUND, "pretrain: --extra-text wordnet: cannot read %s (apt-get install wordnet-base)", path);
    char *line = txt;
    int rc = PB_OK;
    while (line < txt + len && *line && rc == PB_OK) {
      char *nl = strchr(line, '\n');
      if (nl) *nl = 0;
      if (line[0] != ' ') {
        char *g = strstr(line, " | ");
        if (g) {
          g += 3;
          size_t gl = strlen(g);
          while (gl > 0 && (g[gl - 1] == ' ' || g[gl - 1] == '\r')) g[--gl] = 0;
          if (gl > 0) {
            rc = pack_sentence(pk, g);
            n++;
          }
        }
      }
      if (!nl) break;
      line = nl + 1;
    }
    free(txt);
    if (rc) return rc;
  }
  add_source(pk->c, "wordnet", n);
  return pack_flush(pk);
}

static int name_cmp(const void *a, const void *b) { return strcmp(*(char *const *)a, *(char *const *)b); }

/* fortune cookies (fortunes, fortunes-min): every file of /usr/share/games/fortunes without a
 * dot in its name (not the .dat indexes or .u8 copies) except ascii-art, in name order; each
 * cookie (text between lines "%") is one sentence, its lines joined by single spaces. */
static int add_fortunes(packer *pk, const char *root) {
  char dir[1024];
  snprintf(dir, sizeof dir, "%s/usr/share/games/fortunes", root);
  DIR *dp = opendir(dir);
  if (!dp) return pb_set_error(PB_ERR_NOTFOUND, "pretrain: --extra-text fortunes: no %s (apt-get install fortunes)", dir);
  char **names = NULL;
  int nn = 0, cap = 0, rc = PB_OK;
  struct dirent *e;
  while ((e = readdir(dp))) {
    if (e->d_name[0] == '.' || strchr(e->d_name, '.') || strcmp(e->d_name, "ascii-art") == 0) continue;
    if (nn == cap) {
      cap = cap ? 2 * cap : 64;
      char **nw = realloc(names, (size_t)cap * sizeof *names);
      if (!nw) { rc = pb_set_error(PB_ERR_NOMEM, "pretrain: out of memory"); break; }
      names = nw;
    }
    if (!(names[nn++] = strdup(e->d_name))) { rc = pb_set_error(PB_ERR_NOMEM, "pretrain: out of memory"); break; }
  }
  closedir(dp);
  if (!rc) qsort(names, (size_t)nn, sizeof *names, name_cmp);
  long n = 0;
  for (int i = 0; i < nn && rc == PB_OK; i++) {
    char path[2048];
    snprintf(path, sizeof path, "%s/%s", dir, names[i]);
    char *txt = NULL;
    size_t len = 0;
    if (pb_read_file(path, &txt, &len)) continue; /* a link to nowhere, a folder: skip */
    char *buf = malloc(len + 1);
    if (!buf) { free(txt); rc = pb_set_error(PB_ERR_NOMEM, "pretrain: out of memory"); break; }
    size_t bl = 0;
    char *line = txt;
    for (;;) {
      char *nl = memchr(line, '\n', (size_t)(txt + len - line));
      size_t ll = nl ? (size_t)(nl - line) : (size_t)(txt + len - line);
      int end = (ll == 1 && line[0] == '%') || !nl;
      if (!(ll == 1 && line[0] == '%')) {
        for (size_t k = 0; k < ll; k++) {
          char ch = line[k] == '\t' || line[k] == '\r' ? ' ' : line[k];
          if (ch == ' ' && (bl == 0 || buf[bl - 1] == ' ')) continue;
          buf[bl++] = ch;
        }
        if (bl > 0 && buf[bl - 1] != ' ') buf[bl++] = ' ';
      }
      if (end) {
        while (bl > 0 && buf[bl - 1] == ' ') bl--;
        buf[bl] = 0;
        if (bl > 0) {
          if ((rc = pack_sentence(pk, buf))) break;
          n++;
        }
        bl = 0;
      }
      if (!nl) break;
      line = nl + 1;
    }
    free(buf);
    free(txt);
  }
  for (int i = 0; i < nn; i++) free(names[i]);
  free(names);
  if (rc) return rc;
  add_source(pk->c, "fortunes", n);
  return pack_flush(pk);
}

int pb_corpus_build(pb_corpus *c, const pb_tokenizer *tk, const char *data_dir, int T, const char *extra,
                    int quiet) {
  return pb_corpus_build_split(c, tk, data_dir, "train", T, extra, quiet);
}

/* Tokenises and packs the GLUE sentences of one split, then the extra texts (see corpus.h). */
int pb_corpus_build_split(pb_corpus *c, const pb_tokenizer *tk, const char *data_dir, const char *split, int T,
                          const char *extra, int quiet) {
  memset(c, 0, sizeof *c);
  c->T = T;
  packer pk = {c, tk, pb_tok_id(tk, "[CLS]"), pb_tok_id(tk, "[SEP]"), pb_tok_id(tk, "[PAD]"), 0, 0, NULL, NULL, 4096};
  int rc = PB_OK;
  pk.cur = malloc((size_t)T * sizeof(int));
  pk.tok = malloc((size_t)pk.tcap * sizeof(int));
  if (!pk.cur || !pk.tok) {
    free(pk.cur);
    free(pk.tok);
    return pb_set_error(PB_ERR_NOMEM, "pretrain: out of memory");
  }
  size_t tl = 0;
  for (int ti = 0; ti < pb_task_count() && rc == PB_OK; ti++) {
    const pb_task *t = pb_task_at(ti);
    /* "dev": each task's evaluation splits (MNLI: dev_matched and dev_mismatched) */
    const int dev = strcmp(split, "dev") == 0, ns = dev ? t->n_eval : 1;
    for (int si = 0; si < ns && rc == PB_OK; si++) {
      const char *sp = dev ? t->eval_splits[si] : split;
      pb_dataset ds;
      memset(&ds, 0, sizeof ds);
      rc = pb_glue_load(t, data_dir, sp, 0, &ds);
      if (rc == PB_ERR_NOTFOUND) {
        if (!quiet) fprintf(stderr, "pretrain: %s: no %s file in %s, skipped (%s)\n", t->name, sp, data_dir, pb_last_error());
        rc = PB_OK;
        continue;
      }
      if (rc) break;
      for (int e = 0; e < ds.n && rc == PB_OK; e++) {
        const char *sent[2] = {ds.ex[e].a, ds.ex[e].b};
        for (int k = 0; k < 2 && rc == PB_OK; k++)
          if (sent[k]) rc = pack_sentence(&pk, sent[k]);
      }
      if (rc == PB_OK && tl < sizeof c->tasks)
        tl += (size_t)snprintf(c->tasks + tl, sizeof c->tasks - tl, "%s%s%s%s:%d", tl ? " " : "", t->name, dev && ns > 1 ? "/" : "",
                               dev && ns > 1 ? sp : "", ds.n);
      pb_dataset_free(&ds);
    }
  }
  if (rc == PB_OK) rc = pack_flush(&pk);
  if (rc == PB_OK) {
    c->n_glue_seq = c->n_seq;
    c->n_glue_tokens = c->n_tokens;
  }
  if (rc == PB_OK && c->n_seq == 0)
    rc = pb_set_error(PB_ERR_NOTFOUND, "pretrain: no GLUE %s text found in %s (need e.g. %s/SST-2/%s.tsv)", split,
                      data_dir, data_dir, split);
  /* extra texts, in the order given */
  const char *root = getenv("PEFTBENCH_TEXT_ROOT");
  if (!root) root = "";
  for (const char *p = extra ? extra : ""; rc == PB_OK && *p;) {
    const char *q = strchr(p, ',');
    size_t l = q ? (size_t)(q - p) : strlen(p);
    if (l == 7 && strncmp(p, "wordnet", 7) == 0) rc = add_wordnet(&pk, root);
    else if (l == 8 && strncmp(p, "fortunes", 8) == 0) rc = add_fortunes(&pk, root);
    else if (l > 0)
      rc = pb_set_error(PB_ERR_ARG, "pretrain: --extra-text: unknown source '%.*s' (known: wordnet, fortunes)", (int)l, p);
    p += l + (q ? 1 : 0);
  }
  free(pk.cur);
  free(pk.tok);
  if (rc) {
    pb_corpus_free(c);
    return rc;
  }
  uint64_t h = 0xCBF29CE484222325ULL;
  for (size_t i = 0; i < (size_t)c->n_seq * T; i++) h = (h ^ (uint64_t)(uint32_t)c->ids[i]) * 0x100000001B3ULL;
  c->hash = h;
  return PB_OK;
}
