/* `peftbench submit`: GLUE leaderboard files from test-split predictions (see submit.h). */
#include "harness/submit.h"

#include <ctype.h>
#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <cjson/cJSON.h>

#include "util/fileio.h"
#include "util/status.h"
#include "harness/cli.h"
#include "harness/predictions.h"
#include "harness/glue.h"
#include "util/strbuf.h"

/* ---------------------------------------------------------------- targets */

#define ENT "entailment"
#define NEU "neutral"
#define CON "contradiction"
#define NOT "not_entailment"

/* Label strings: GLUE-baselines src/main.py writes MNLI (and the diagnostic) and RTE/QNLI
 * ("squad") as strings, STS-B as a clipped number, every other task as an integer; jiant's
 * formatter writes each task's own label strings (WNLI "0"/"1"). */
static const pb_submit_target TARGETS[PB_SUBMIT_TARGETS] = {
    {"CoLA.tsv", "cola", "cola", "test", 1063, 2, {"0", "1"}, "1 = acceptable, 0 = unacceptable"},
    {"SST-2.tsv", "sst2", "sst2", "test", 1821, 2, {"0", "1"}, "1 = positive, 0 = negative"},
    {"MRPC.tsv", "mrpc", "mrpc", "test", 1725, 2, {"0", "1"}, "1 = paraphrase, 0 = not"},
    {"STS-B.tsv", "stsb", "stsb", "test", 1379, 0, {NULL}, "similarity in [0, 5], \"%.3f\""},
    {"MNLI-m.tsv", "mnli-m", "mnli", "test_matched", 9796, 3, {ENT, NEU, CON}, "label strings"},
    {"MNLI-mm.tsv", "mnli-mm", "mnli", "test_mismatched", 9847, 3, {ENT, NEU, CON}, "label strings"},
    {"QNLI.tsv", "qnli", "qnli", "test", 5463, 2, {ENT, NOT}, "label strings"},
    {"QQP.tsv", "qqp", "qqp", "test", 390965, 2, {"0", "1"}, "1 = duplicate, 0 = not"},
    {"RTE.tsv", "rte", "rte", "test", 3000, 2, {ENT, NOT}, "label strings"},
    {"WNLI.tsv", "wnli", "wnli", "test", 146, 2, {"0", "1"},
     "1 = entailment, 0 = not_entailment (the reverse of RTE/QNLI's class order)"},
    {"AX.tsv", "ax", "mnli", "ax", 1104, 3, {ENT, NEU, CON}, "MNLI label strings (MNLI model)"},
};

/* extra command-line names, besides name and file stem */
static const char *const ALIASES[][2] = {
    {"mnli", "mnli-m"},          {"mnli_matched", "mnli-m"}, {"mnli_mismatched", "mnli-mm"},
    {"diagnostic", "ax"},
};

const pb_submit_target *pb_submit_target_at(int i) {
  return i >= 0 && i < PB_SUBMIT_TARGETS ? &TARGETS[i] : NULL;
}

/* lower case without '-', '_', '.' */
static void norm(const char *s, char *out, size_t n) {
  size_t k = 0;
  for (; *s && k + 1 < n; s++)
    if (*s != '-' && *s != '_' && *s != '.') out[k++] = (char)tolower((unsigned char)*s);
  out[k] = '\0';
}

const pb_submit_target *pb_submit_target_find(const char *name) {
  if (!name || !*name) return NULL;
  char want[64], have[64];
  norm(name, want, sizeof want);
  for (size_t a = 0; a < sizeof ALIASES / sizeof ALIASES[0]; a++) {
    norm(ALIASES[a][0], have, sizeof have);
    if (!strcmp(want, have)) return pb_submit_target_find(ALIASES[a][1]);
  }
  for (int i = 0; i < PB_SUBMIT_TARGETS; i++) {
    char stem[32];
    snprintf(stem, sizeof stem, "%.*s", (int)(strlen(TARGETS[i].file) - 4), TARGETS[i].file);
    norm(TARGETS[i].name, have, sizeof have);
    if (!strcmp(want, have)) return &TARGETS[i];
    norm(stem, have, sizeof have);
    if (!strcmp(want, have)) return &TARGETS[i];
  }
  return NULL;
}

static void target_names(char *out, size_t n) {
  size_t k = 0;
  out[0] = '\0';
  for (int i = 0; i < PB_SUBMIT_TARGETS && k < n; i++) {
    int w = snprintf(out + k, n - k, "%s%s", i ? ", " : "", TARGETS[i].name);
    if (w > 0) k += (size_t)w;
  }
}

int pb_submit_expected_rows(const pb_submit_target *tg, const char *data_dir, int *rows, char *from,
                            size_t n) {
  *rows = tg->official_rows;
  snprintf(from, n, "the official GLUE test sizes");
  if (!data_dir) return PB_OK;
  pb_dataset ds;
  int rc = pb_glue_load(pb_task_find(tg->task), data_dir, tg->split, 0, &ds);
  if (rc == PB_ERR_NOTFOUND) return PB_OK; /* not in this data folder: the official size */
  if (rc) return rc;
  *rows = ds.n;
  snprintf(from, n, "%s", ds.path);
  pb_dataset_free(&ds);
  return PB_OK;
}

/* ---------------------------------------------------------------- one predictions file */

/* s shown in a message: tabs as \t, other control or non-ASCII bytes as \xNN, at most ~80 */
static const char *shown(const char *s, char *buf, size_t n) {
  size_t k = 0;
  for (; *s && k + 8 < n; s++) {
    unsigned char c = (unsigned char)*s;
    if (k > 80) {
      k += (size_t)snprintf(buf + k, n - k, "...");
      break;
    }
    if (c == '\t') k += (size_t)snprintf(buf + k, n - k, "\\t");
    else if (c < 0x20 || c >= 0x7f) k += (size_t)snprintf(buf + k, n - k, "\\x%02X", c);
    else buf[k++] = (char)c;
  }
  buf[k] = '\0';
  return buf;
}

/* whole string is a finite number */
static int parse_finite(const char *s, double *v) {
  if (!*s || isspace((unsigned char)*s)) return 0;
  char *end;
  errno = 0;
  *v = strtod(s, &end);
  return *end == '\0' && errno != ERANGE && isfinite(*v);
}

/* whole string is a non-negative decimal integer < INT_MAX */
static int parse_index(const char *s, int *v) {
  long x = 0;
  if (!*s) return 0;
  for (const char *p = s; *p; p++) {
    if (*p < '0' || *p > '9' || p - s > 9) return 0;
    x = x * 10 + (*p - '0');
  }
  if (x >= INT_MAX) return 0;
  *v = (int)x;
  return 1;
}

typedef struct {
  int index;
  int line;
  const char *label; /* classification: static submission string */
  double value;      /* regression */
} row;

static int cmp_row(const void *a, const void *b) {
  int x = ((const row *)a)->index, y = ((const row *)b)->index;
  return (x > y) - (x < y);
}

int pb_submit_convert(const pb_submit_target *tg, const char *path, int expected_rows,
                      const char *rows_from, char **out, size_t *out_len, pb_submit_stats *st) {
  *out = NULL;
  *out_len = 0;
  if (st) memset(st, 0, sizeof *st);
  const pb_task *t = pb_task_find(tg->task);
  if (!t) return pb_set_error(PB_ERR_ARG, "%s: unknown task %s", tg->file, tg->task);
  int regression = tg->n_labels == 0;

  /* the header this target's task writes */
  char want[256];
  pb_predictions_header(t, want, sizeof want);
  int ncols = regression ? 3 : 3 + t->num_labels;

  char *data = NULL;
  size_t len = 0;
  int rc = pb_read_file(path, &data, &len);
  if (rc) return rc;
  if (memchr(data, '\0', len)) {
    free(data);
    return pb_set_error(PB_ERR_FORMAT, "%s: contains a NUL byte: not a predictions file", path);
  }
  size_t n_lines = 1;
  for (size_t i = 0; i < len; i++) n_lines += data[i] == '\n';
  row *rows = malloc(n_lines * sizeof *rows);
  if (!rows) {
    free(data);
    return pb_set_error(PB_ERR_NOMEM, "%s: out of memory", path);
  }

  char sh[128], sh2[128];
  int n = 0, lineno = 0, blank_at = 0;
  rc = PB_OK;
  char *p = data, *end = data + len;
  while (p < end && rc == PB_OK) {
    char *nl = memchr(p, '\n', (size_t)(end - p));
    char *le = nl ? nl : end;
    *le = '\0';
    lineno++;
    if (le > p && le[-1] == '\r') le[-1] = '\0';
    char *line = p;
    p = nl ? nl + 1 : end;
    if (lineno == 1) {
      if (strcmp(line, want) != 0) {
        rc = pb_set_error(PB_ERR_FORMAT, "%s:1: header '%s' does not match %s (%s predictions have '%s')", path,
                          shown(line, sh, sizeof sh), tg->file, t->name, shown(want, sh2, sizeof sh2));
      }
      continue;
    }
    if (!*line) { /* blank: only at the end */
      if (!blank_at) blank_at = lineno;
      continue;
    }
    if (blank_at) {
      rc = pb_set_error(PB_ERR_FORMAT, "%s:%d: blank line inside the data", path, blank_at);
      break;
    }
    char *f[8];
    int nc = 0;
    for (char *q = line;;) {
      if (nc < 8) f[nc] = q;
      nc++;
      char *tab = strchr(q, '\t');
      if (!tab) break;
      *tab = '\0';
      q = tab + 1;
    }
    if (nc != ncols) {
      rc = pb_set_error(PB_ERR_FORMAT, "%s:%d: %d columns, expected %d (%s)", path, lineno, nc, ncols,
                        shown(want, sh, sizeof sh));
      break;
    }
    row *r = &rows[n];
    r->line = lineno;
    r->label = NULL;
    r->value = 0;
    if (!parse_index(f[0], &r->index)) {
      rc = pb_set_error(PB_ERR_FORMAT, "%s:%d: index '%s' is not a non-negative integer", path, lineno,
                        shown(f[0], sh, sizeof sh));
      break;
    }
    if (f[1][0]) {
      rc = pb_set_error(PB_ERR_FORMAT,
                        "%s:%d: gold is '%s': these are predictions for a labelled split, not the %s test "
                        "split %s needs",
                        path, lineno, shown(f[1], sh, sizeof sh), t->name, tg->file);
      break;
    }
    if (regression) {
      if (!parse_finite(f[2], &r->value)) {
        rc = pb_set_error(PB_ERR_FORMAT, "%s:%d: prediction '%s' is not a finite number", path, lineno,
                          shown(f[2], sh, sizeof sh));
        break;
      }
    } else {
      int k = -1;
      for (int j = 0; j < t->num_labels; j++)
        if (!strcmp(f[2], t->labels[j])) k = j;
      for (int j = 0; j < tg->n_labels && k >= 0; j++)
        if (!strcmp(f[2], tg->labels[j])) r->label = tg->labels[j];
      if (k < 0 || !r->label) {
        char valid[96];
        size_t vl = 0;
        valid[0] = '\0';
        for (int j = 0; j < tg->n_labels; j++)
          vl += (size_t)snprintf(valid + vl, sizeof valid - vl, "%s%s", j ? ", " : "", tg->labels[j]);
        rc = pb_set_error(PB_ERR_FORMAT, "%s:%d: prediction '%s' is not one of the %s labels (%s)", path, lineno,
                          shown(f[2], sh, sizeof sh), tg->file, valid);
        break;
      }
      double lg[3], best = -INFINITY;
      for (int j = 0; j < t->num_labels; j++) {
        if (!parse_finite(f[3 + j], &lg[j])) {
          rc = pb_set_error(PB_ERR_FORMAT, "%s:%d: logit_%s '%s' is not a finite number", path, lineno,
                            t->labels[j], shown(f[3 + j], sh, sizeof sh));
          break;
        }
        if (lg[j] > best) best = lg[j];
      }
      if (rc) break;
      if (lg[k] < best) {
        rc = pb_set_error(PB_ERR_FORMAT, "%s:%d: prediction '%s' is not the arg-max of the logits", path, lineno,
                          f[2]);
        break;
      }
    }
    n++;
  }
  if (rc == PB_OK && lineno == 0)
    rc = pb_set_error(PB_ERR_FORMAT, "%s: empty file (expected the header '%s')", path, shown(want, sh, sizeof sh));
  if (rc == PB_OK && n != expected_rows)
    rc = pb_set_error(PB_ERR_FORMAT, "%s: %d prediction rows, but %s has %d test rows (%s)", path, n, tg->file,
                      expected_rows, rows_from);
  if (rc == PB_OK) {
    int *first = calloc((size_t)(n > 0 ? n : 1), sizeof *first); /* line of each index seen */
    if (!first) rc = pb_set_error(PB_ERR_NOMEM, "%s: out of memory", path);
    for (int i = 0; rc == PB_OK && i < n; i++) {
      if (rows[i].index >= n) {
        rc = pb_set_error(PB_ERR_FORMAT, "%s:%d: index %d outside 0..%d", path, rows[i].line, rows[i].index, n - 1);
      } else if (first[rows[i].index]) {
        rc = pb_set_error(PB_ERR_FORMAT, "%s:%d: index %d repeated (first on line %d)", path, rows[i].line,
                          rows[i].index, first[rows[i].index]);
      } else {
        first[rows[i].index] = rows[i].line;
      }
    }
    free(first);
  }
  if (rc == PB_OK) {
    qsort(rows, (size_t)n, sizeof *rows, cmp_row);
    pb_strbuf b = {0};
    pb_sb_add(&b, "index\tprediction\n");
    int n_clipped = 0;
    for (int i = 0; i < n; i++) {
      if (regression) {
        double v = rows[i].value;
        if (v < 0.0 || v > 5.0) n_clipped++;
        v = v <= 0.0 ? 0.0 : v > 5.0 ? 5.0 : v; /* <= : no "-0.000" */
        pb_sb_add(&b, "%d\t%.3f\n", i, v);
      } else {
        pb_sb_add(&b, "%d\t%s\n", i, rows[i].label);
      }
    }
    size_t blen = b.n;
    char *s = pb_sb_take(&b);
    if (!s) {
      rc = pb_set_error(PB_ERR_NOMEM, "%s: out of memory", path);
    } else {
      *out = s;
      *out_len = blen;
      if (st) {
        st->rows = n;
        st->n_clipped = n_clipped;
      }
    }
  }
  free(rows);
  free(data);
  return rc;
}

/* ---------------------------------------------------------------- sources */

#define MAX_WHERE 16
#define MAX_CAND 64

typedef struct {
  char *path;      /* predictions file as it will be opened (owned) */
  char *real;      /* realpath, or a copy of path when it does not exist (owned) */
  char desc[256];  /* "results.jsonl:3 (lora r=8..., seed 0)" or "rte=FILE" */
} cand;

typedef struct {
  const char *explicit_path; /* TASK=FILE (argv storage) */
  int n;
  cand c[MAX_CAND];          /* offers from records */
  int n_more;                /* offers beyond MAX_CAND (still an ambiguity) */
} slot;

static void slot_free(slot *s) {
  for (int i = 0; i < s->n; i++) free(s->c[i].path), free(s->c[i].real);
  s->n = 0;
}

static const cJSON *json_path(const cJSON *o, const char *key) {
  char buf[256], *save = NULL;
  snprintf(buf, sizeof buf, "%s", key);
  for (char *tok = strtok_r(buf, ".", &save); tok && o; tok = strtok_r(NULL, ".", &save))
    o = cJSON_IsObject(o) ? cJSON_GetObjectItemCaseSensitive(o, tok) : NULL;
  return o;
}

static int where_match(const cJSON *rec, const char *kv) {
  const char *eq = strchr(kv, '=');
  char key[256];
  snprintf(key, sizeof key, "%.*s", (int)(eq - kv), kv);
  const char *val = eq + 1;
  const cJSON *v = json_path(rec, key);
  if (!v) return 0;
  if (cJSON_IsString(v)) return strcmp(v->valuestring, val) == 0;
  if (cJSON_IsBool(v)) return strcmp(val, cJSON_IsTrue(v) ? "true" : "false") == 0;
  if (cJSON_IsNull(v)) return strcmp(val, "null") == 0;
  double x;
  if (cJSON_IsNumber(v)) return parse_finite(val, &x) && x == v->valuedouble;
  return 0;
}

/* a record's path: as given when absolute or present from here, else beside the JSONL file */
static char *resolve_rel(const char *jsonl, const char *p) {
  struct stat sb;
  if (p[0] == '/' || stat(p, &sb) == 0) return strdup(p);
  const char *slash = strrchr(jsonl, '/');
  if (!slash) return strdup(p);
  size_t dl = (size_t)(slash - jsonl);
  char *q = malloc(dl + 1 + strlen(p) + 1);
  if (!q) return NULL;
  sprintf(q, "%.*s/%s", (int)dl, jsonl, p);
  if (stat(q, &sb) == 0) return q;
  free(q);
  return strdup(p);
}

static int add_offer(slot *s, const char *path, const char *desc) {
  char *rp = realpath(path, NULL);
  char *real = rp ? rp : strdup(path);
  if (!real) return pb_set_error(PB_ERR_NOMEM, "out of memory");
  for (int i = 0; i < s->n; i++)
    if (!strcmp(s->c[i].real, real)) { /* the same file offered twice: no ambiguity */
      free(real);
      return PB_OK;
    }
  if (s->n == MAX_CAND) {
    s->n_more++;
    free(real);
    return PB_OK;
  }
  cand *c = &s->c[s->n];
  c->path = strdup(path);
  c->real = real;
  if (!c->path) {
    free(real);
    return pb_set_error(PB_ERR_NOMEM, "out of memory");
  }
  snprintf(c->desc, sizeof c->desc, "%s", desc);
  s->n++;
  return PB_OK;
}

/* Adds the test-split offers of every record of a results JSONL file. *n_offers counts them. */
static int read_results(const char *file, const char *const *where, int n_where, slot *slots, int *n_offers,
                        int *n_bad) {
  char *data = NULL;
  size_t len = 0;
  int rc = pb_read_file(file, &data, &len);
  if (rc) return rc;
  *n_offers = 0;
  *n_bad = 0;
  int lineno = 0;
  rc = PB_OK;
  for (char *p = data; p < data + len && rc == PB_OK;) {
    char *nl = memchr(p, '\n', (size_t)(data + len - p));
    if (nl) *nl = '\0';
    lineno++;
    char *line = p;
    p = nl ? nl + 1 : data + len;
    if (!*line) continue;
    cJSON *rec = cJSON_Parse(line);
    if (!cJSON_IsObject(rec)) {
      cJSON_Delete(rec);
      (*n_bad)++;
      continue;
    }
    int keep = 1;
    for (int w = 0; w < n_where && keep; w++) keep = where_match(rec, where[w]);
    const cJSON *tn = cJSON_GetObjectItemCaseSensitive(rec, "task");
    const cJSON *preds = cJSON_GetObjectItemCaseSensitive(rec, "predictions");
    const pb_task *task = cJSON_IsString(tn) ? pb_task_find(tn->valuestring) : NULL;
    if (!keep || !task || !cJSON_IsObject(preds)) {
      cJSON_Delete(rec);
      continue;
    }
    const cJSON *m = cJSON_GetObjectItemCaseSensitive(rec, "method");
    const cJSON *md = cJSON_GetObjectItemCaseSensitive(rec, "method_desc");
    const cJSON *seed = cJSON_GetObjectItemCaseSensitive(rec, "seed");
    const cJSON *e;
    cJSON_ArrayForEach(e, preds) {
      const char *split = e->string;
      for (int i = 0; i < PB_SUBMIT_TARGETS; i++) {
        const pb_submit_target *tg = &TARGETS[i];
        if (strcmp(tg->task, task->name) != 0) continue;
        /* MNLI "test" is test_matched (pb_task_split's alias) */
        if (strcmp(split, tg->split) != 0 && pb_task_split(task, split) != pb_task_split(task, tg->split)) continue;
        if (!cJSON_IsString(e)) {
          rc = pb_set_error(PB_ERR_FORMAT, "%s:%d: predictions.%s is not a file name", file, lineno, split);
          break;
        }
        char *path = resolve_rel(file, e->valuestring);
        if (!path) {
          rc = pb_set_error(PB_ERR_NOMEM, "out of memory");
          break;
        }
        char desc[256];
        int has_md = cJSON_IsString(md) && md->valuestring[0];
        char seed_s[32] = "?";
        if (cJSON_IsNumber(seed)) snprintf(seed_s, sizeof seed_s, "%.0f", seed->valuedouble);
        snprintf(desc, sizeof desc, "%s:%d (%s%s%s, seed %s): %s", file, lineno,
                 cJSON_IsString(m) ? m->valuestring : "?", has_md ? " " : "", has_md ? md->valuestring : "",
                 seed_s, path);
        rc = add_offer(&slots[i], path, desc);
        free(path);
        (*n_offers)++;
        if (rc) break;
      }
      if (rc) break;
    }
    cJSON_Delete(rec);
  }
  free(data);
  return rc;
}

/* ---------------------------------------------------------------- CLI */

static void submit_usage(FILE *f, const char *cmd) {
  fprintf(f,
          "usage: peftbench %s --out DIR [options] SOURCE...\n"
          "  Writes the GLUE leaderboard files CoLA.tsv SST-2.tsv MRPC.tsv STS-B.tsv MNLI-m.tsv\n"
          "  MNLI-mm.tsv QNLI.tsv QQP.tsv RTE.tsv WNLI.tsv AX.tsv (\"index<TAB>prediction\", one row per\n"
          "  test example in index order) into DIR from the test-split prediction files of run/eval.\n"
          "  SOURCE is\n"
          "    TASK=PREDICTIONS.tsv  TASK one of cola sst2 mrpc stsb mnli-m mnli-mm qnli qqp rte wnli ax\n"
          "                          (also SST-2, mnli, mnli_mismatched, diagnostic, ...)\n"
          "    RESULTS.jsonl         the \"predictions\" test entries of its records (split test; MNLI:\n"
          "                          test_matched, test_mismatched, ax). Two records offering the same\n"
          "                          file is an error: choose with --where or TASK=FILE (TASK=FILE always\n"
          "                          wins over records). Relative paths: from here, else from the\n"
          "                          JSONL file's folder.\n"
          "  --out DIR          the submission folder (created if missing)\n"
          "  --force            replace files that exist in DIR (default: refuse, write nothing)\n"
          "  --data-dir DIR     GLUE folder whose test files give the row counts (default:\n"
          "                     $PEFTBENCH_DATA, else ../shared/data/glue; tasks it lacks, or no\n"
          "                     folder at all: the official GLUE test sizes)\n"
          "  --where KEY=VALUE  only records whose KEY (dotted for nested: method, seed, method_desc,\n"
          "                     backbone.fingerprint, ...) equals VALUE; repeatable, all must hold\n"
          "  --require-all      fail, writing nothing, unless all 11 files can be written\n"
          "  Checks, for every predictions file: the header is the task's; gold is empty (a test\n"
          "  split); each prediction is one of the task's labels and the arg-max of its logits, or a\n"
          "  finite number for STS-B; as many rows as the test file; indices exactly 0..n-1. Any\n"
          "  failure: one line naming the file and the problem, exit 1, nothing written.\n"
          "  Labels written (GLUE's format): CoLA SST-2 MRPC QQP WNLI 0/1 (WNLI: 1 = entailment,\n"
          "  0 = not_entailment); MNLI-m MNLI-mm AX entailment/neutral/contradiction; QNLI RTE\n"
          "  entailment/not_entailment; STS-B the score clipped to [0, 5], three decimals.\n"
          "  Exit 0 when at least one file is written (the missing ones are listed: a complete\n"
          "  submission needs all 11), 1 on bad input, 2 on usage errors.\n",
          cmd);
}

int pb_cmd_submit(int argc, char **argv) {
  const char *cmd = argc > 0 && argv[0] ? argv[0] : "submit";
  const char *out_dir = NULL, *data_opt = NULL;
  const char *where[MAX_WHERE];
  int n_where = 0, force = 0, require_all = 0;
  enum { O_OUT = 256, O_FORCE, O_DATA, O_WHERE, O_ALL };
  static const struct option opts[] = {{"out", required_argument, 0, O_OUT},
                                       {"force", no_argument, 0, O_FORCE},
                                       {"data-dir", required_argument, 0, O_DATA},
                                       {"where", required_argument, 0, O_WHERE},
                                       {"require-all", no_argument, 0, O_ALL},
                                       {"help", no_argument, 0, 'h'},
                                       {0, 0, 0, 0}};
  optind = 0; /* full re-initialisation (glibc): the command may run more than once */
  opterr = 0;
  int c;
  while ((c = getopt_long(argc, argv, ":h", opts, NULL)) != -1) {
    switch (c) {
      case O_OUT: out_dir = optarg; break;
      case O_FORCE: force = 1; break;
      case O_DATA: data_opt = optarg; break;
      case O_WHERE:
        if (!strchr(optarg, '=') || optarg[0] == '=') {
          fprintf(stderr, "peftbench %s: --where '%s': expected KEY=VALUE (e.g. method=lora)\n", cmd, optarg);
          return 2;
        }
        if (n_where == MAX_WHERE) {
          fprintf(stderr, "peftbench %s: too many --where (max %d)\n", cmd, MAX_WHERE);
          return 2;
        }
        where[n_where++] = optarg;
        break;
      case O_ALL: require_all = 1; break;
      case 'h': submit_usage(stdout, cmd); return 0;
      default: return pb_cli_bad_option(cmd, argc, argv, opts);
    }
  }
  if (!out_dir || !*out_dir) {
    fprintf(stderr, "peftbench %s: --out DIR is required (see --help)\n", cmd);
    return 2;
  }
  if (optind >= argc) {
    fprintf(stderr, "peftbench %s: no SOURCE: give TASK=PREDICTIONS.tsv or RESULTS.jsonl (see --help)\n", cmd);
    return 2;
  }

  slot slots[PB_SUBMIT_TARGETS];
  memset(slots, 0, sizeof slots);
  char *outbuf[PB_SUBMIT_TARGETS] = {0};
  size_t outlen[PB_SUBMIT_TARGETS] = {0};
  pb_submit_stats stats[PB_SUBMIT_TARGETS];
  char from[PB_SUBMIT_TARGETS][1100];
  const char *src[PB_SUBMIT_TARGETS] = {0};
  int status = 0;
  pb_strbuf warn = {0}; /* warning lines, printed only when the command succeeds */
  char names[160];
  target_names(names, sizeof names);

  /* 1. sources: TASK=FILE, else a results JSONL file */
  for (int a = optind; a < argc && !status; a++) {
    const char *s = argv[a], *eq = strchr(s, '=');
    const pb_submit_target *tg = NULL;
    if (eq) {
      char name[64];
      snprintf(name, sizeof name, "%.*s", (int)(eq - s < 63 ? eq - s : 63), s);
      tg = pb_submit_target_find(name);
      struct stat sb;
      if (!tg && stat(s, &sb) != 0) {
        fprintf(stderr, "peftbench %s: '%s': unknown task '%s' (valid: %s) and no such results file\n", cmd, s,
                name, names);
        status = 2;
        break;
      }
    }
    if (tg) {
      int i = (int)(tg - TARGETS);
      if (!eq[1]) {
        fprintf(stderr, "peftbench %s: '%s': no predictions file after '='\n", cmd, s);
        status = 2;
      } else if (slots[i].explicit_path) {
        fprintf(stderr, "peftbench %s: %s given twice (%s and %s)\n", cmd, tg->file, slots[i].explicit_path,
                eq + 1);
        status = 2;
      } else {
        slots[i].explicit_path = eq + 1;
      }
      continue;
    }
    /* a results file; a bare predictions TSV gets a hint */
    char *head = NULL;
    size_t hl = 0;
    if (pb_read_file(s, &head, &hl) == PB_OK && hl >= 6 && !strncmp(head, "index\t", 6)) {
      fprintf(stderr, "peftbench %s: %s is a predictions file, not a results JSONL: give it as TASK=%s\n", cmd, s, s);
      free(head);
      status = 2;
      break;
    }
    free(head);
    int n_offers = 0, n_bad = 0;
    if (read_results(s, where, n_where, slots, &n_offers, &n_bad)) {
      fprintf(stderr, "peftbench %s: %s\n", cmd, pb_last_error());
      status = 1;
      break;
    }
    if (n_bad) pb_sb_add(&warn, "peftbench %s: warning: %s: %d lines that are not JSON records skipped\n", cmd, s, n_bad);
    if (!n_offers)
      pb_sb_add(&warn, "peftbench %s: warning: %s: no record%s names test-split predictions\n", cmd, s,
                n_where ? " matching --where" : "");
  }

  /* 2. one file per target: TASK=FILE, else the one record that offers it */
  int n_sel = 0;
  for (int i = 0; i < PB_SUBMIT_TARGETS && !status; i++) {
    slot *sl = &slots[i];
    if (sl->explicit_path) src[i] = sl->explicit_path;
    else if (sl->n == 1 && !sl->n_more) src[i] = sl->c[0].path;
    else if (sl->n > 1) {
      pb_strbuf b = {0};
      pb_sb_add(&b, "%d records offer %s:", sl->n + sl->n_more, TARGETS[i].file);
      for (int k = 0; k < sl->n; k++) pb_sb_add(&b, "%s %s", k ? ";" : "", sl->c[k].desc);
      if (sl->n_more) pb_sb_add(&b, "; and %d more", sl->n_more);
      char *msg = pb_sb_take(&b);
      fprintf(stderr, "peftbench %s: %s; choose one with %s=FILE or --where KEY=VALUE\n", cmd, msg ? msg : "?",
              TARGETS[i].name);
      free(msg);
      status = 2;
    }
    if (src[i]) n_sel++;
  }
  if (!status && !n_sel) {
    fprintf(stderr,
            "peftbench %s: nothing to submit: no SOURCE gave test-split predictions (records need "
            "\"predictions\" entries for split test, or test_matched / test_mismatched / ax for mnli)\n",
            cmd);
    status = 1;
  }
  if (!status && require_all && n_sel < PB_SUBMIT_TARGETS) {
    pb_strbuf b = {0};
    for (int i = 0, k = 0; i < PB_SUBMIT_TARGETS; i++)
      if (!src[i]) pb_sb_add(&b, "%s%s", k++ ? ", " : "", TARGETS[i].file);
    char *msg = pb_sb_take(&b);
    fprintf(stderr, "peftbench %s: --require-all: no predictions for %d of 11 files (%s); nothing written\n", cmd,
            PB_SUBMIT_TARGETS - n_sel, msg ? msg : "?");
    free(msg);
    status = 1;
  }

  /* 3. the data folder for the row counts */
  char data_dir[1024];
  const char *dd = NULL;
  if (!status) {
    int rc = pb_glue_data_dir(data_opt, data_dir, sizeof data_dir);
    if (rc == PB_OK) dd = data_dir;
    else if (data_opt || getenv("PEFTBENCH_DATA")) {
      fprintf(stderr, "peftbench %s: %s\n", cmd, pb_last_error());
      status = 2;
    }
  }

  /* 4. check and render everything before writing anything */
  for (int i = 0; i < PB_SUBMIT_TARGETS && !status; i++) {
    if (!src[i]) continue;
    int rows = 0;
    if (pb_submit_expected_rows(&TARGETS[i], dd, &rows, from[i], sizeof from[i]) ||
        pb_submit_convert(&TARGETS[i], src[i], rows, from[i], &outbuf[i], &outlen[i], &stats[i])) {
      fprintf(stderr, "peftbench %s: %s\n", cmd, pb_last_error());
      status = 1;
    }
  }

  /* 5. the folder; existing files refused (all checked first) unless --force; then write */
  char path[PB_SUBMIT_TARGETS][4200];
  if (!status && pb_mkdir_p(out_dir)) {
    fprintf(stderr, "peftbench %s: %s\n", cmd, pb_last_error());
    status = 1;
  }
  for (int i = 0; i < PB_SUBMIT_TARGETS && !status; i++) {
    if (!src[i]) continue;
    snprintf(path[i], sizeof path[i], "%s/%s", out_dir, TARGETS[i].file);
    struct stat sb;
    if (!force && lstat(path[i], &sb) == 0) {
      fprintf(stderr, "peftbench %s: %s exists; --force replaces it (nothing written)\n", cmd, path[i]);
      status = 1;
    }
  }
  int n_written = 0;
  for (int i = 0; i < PB_SUBMIT_TARGETS && !status; i++) {
    if (!src[i]) continue;
    int rc = force ? pb_write_file_atomic(path[i], outbuf[i], outlen[i])
                   : pb_write_file_new(path[i], outbuf[i], outlen[i]);
    if (rc) {
      fprintf(stderr, "peftbench %s: %s (%d file%s written before it)\n", cmd, pb_last_error(), n_written,
              n_written == 1 ? "" : "s");
      status = 1;
    } else {
      n_written++;
    }
  }

  /* 6. report */
  char *w = pb_sb_take(&warn);
  if (!status && w) fputs(w, stderr);
  free(w);
  if (!status) {
    printf("GLUE submission in %s:\n", out_dir);
    for (int i = 0; i < PB_SUBMIT_TARGETS; i++) {
      if (!src[i]) {
        printf("  %-12s missing\n", TARGETS[i].file);
        continue;
      }
      printf("  %-12s %6d rows  <- %s  (row count from %s)", TARGETS[i].file, stats[i].rows, src[i], from[i]);
      if (stats[i].n_clipped) printf("; %d predictions clipped to [0, 5]", stats[i].n_clipped);
      printf("\n");
    }
    if (n_written == PB_SUBMIT_TARGETS) {
      printf("wrote all 11 files: a complete submission (zip them: cd %s && zip -j submission.zip *.tsv)\n",
             out_dir);
    } else {
      printf("wrote %d of 11 files; missing:", n_written);
      for (int i = 0; i < PB_SUBMIT_TARGETS; i++)
        if (!src[i]) printf(" %s", TARGETS[i].file);
      printf(" (a complete GLUE submission needs all 11)\n");
    }
  }
  for (int i = 0; i < PB_SUBMIT_TARGETS; i++) {
    slot_free(&slots[i]);
    free(outbuf[i]);
  }
  return status;
}
