/* GLUE task registry and TSV loaders (see glue.h for the format rules). */
#include "harness/glue.h"

#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <utf8proc.h>

#include "util/rng.h"
#include "util/status.h"

#ifndef PB_SOURCE_DIR
#define PB_SOURCE_DIR "."
#endif

/* ---------------------------------------------------------------- registry */

#define NO PB_COL_NONE
#define LAST PB_COL_LAST

/* Shorthands for the common layouts. */
#define IDX_S1_S2_LABEL(lab)                                                        \
  {"train", "train.tsv", 1, 4, 1, 2, 3, "sentence1", "sentence2", lab},             \
  {"dev", "dev.tsv", 1, 4, 1, 2, 3, "sentence1", "sentence2", lab},                 \
  {"test", "test.tsv", 1, 3, 1, 2, NO, "sentence1", "sentence2", NULL}

static const char MNLI_A[] = "sentence1", MNLI_B[] = "sentence2", MNLI_L[] = "gold_label";

static const pb_task g_tasks[] = {
  {.name = "cola", .dir = "CoLA", .is_pair = 0, .num_labels = 2, .labels = {"0", "1"},
   .n_metrics = 1, .metrics = {PB_METRIC_MCC},
   .n_splits = 3,
   .splits = {
     /* no header: source, label, original label, sentence */
     {"train", "train.tsv", 0, 4, 3, NO, 1, NULL, NULL, NULL},
     {"dev", "dev.tsv", 0, 4, 3, NO, 1, NULL, NULL, NULL},
     {"test", "test.tsv", 1, 2, 1, NO, NO, "sentence", NULL, NULL}},
   .n_eval = 1, .eval_splits = {"dev"}},
  {.name = "sst2", .dir = "SST-2", .is_pair = 0, .num_labels = 2, .labels = {"0", "1"},
   .n_metrics = 1, .metrics = {PB_METRIC_ACC},
   .n_splits = 3,
   .splits = {
     {"train", "train.tsv", 1, 2, 0, NO, 1, "sentence", NULL, "label"},
     {"dev", "dev.tsv", 1, 2, 0, NO, 1, "sentence", NULL, "label"},
     {"test", "test.tsv", 1, 2, 1, NO, NO, "sentence", NULL, NULL}},
   .n_eval = 1, .eval_splits = {"dev"}},
  {.name = "mrpc", .dir = "MRPC", .is_pair = 1, .num_labels = 2, .labels = {"0", "1"},
   .n_metrics = 2, .metrics = {PB_METRIC_F1, PB_METRIC_ACC},
   .n_splits = 3,
   .splits = {
     /* BOM + Quality, #1 ID, #2 ID, #1 String, #2 String */
     {"train", "train.tsv", 1, 5, 3, 4, 0, "#1 String", "#2 String", "Quality"},
     {"dev", "dev.tsv", 1, 5, 3, 4, 0, "#1 String", "#2 String", "Quality"},
     {"test", "test.tsv", 1, 5, 3, 4, NO, "#1 String", "#2 String", NULL}},
   .n_eval = 1, .eval_splits = {"dev"}},
  {.name = "stsb", .dir = "STS-B", .is_pair = 1, .is_regression = 1, .num_labels = 1,
   .labels = {NULL}, .n_metrics = 2, .metrics = {PB_METRIC_PEARSON, PB_METRIC_SPEARMAN},
   .n_splits = 3,
   .splits = {
     /* index genre filename year old_index source1 source2 sentence1 sentence2 score */
     {"train", "train.tsv", 1, 10, 7, 8, 9, "sentence1", "sentence2", "score"},
     {"dev", "dev.tsv", 1, 10, 7, 8, 9, "sentence1", "sentence2", "score"},
     {"test", "test.tsv", 1, 9, 7, 8, NO, "sentence1", "sentence2", NULL}},
   .n_eval = 1, .eval_splits = {"dev"}},
  {.name = "qqp", .dir = "QQP", .is_pair = 1, .num_labels = 2, .labels = {"0", "1"},
   .n_metrics = 2, .metrics = {PB_METRIC_F1, PB_METRIC_ACC},
   .n_splits = 3,
   .splits = {
     /* id qid1 qid2 question1 question2 is_duplicate; test: id question1 question2 */
     {"train", "train.tsv", 1, 6, 3, 4, 5, "question1", "question2", "is_duplicate"},
     {"dev", "dev.tsv", 1, 6, 3, 4, 5, "question1", "question2", "is_duplicate"},
     {"test", "test.tsv", 1, 3, 1, 2, NO, "question1", "question2", NULL}},
   .n_eval = 1, .eval_splits = {"dev"}},
  {.name = "mnli", .dir = "MNLI", .is_pair = 1, .num_labels = 3,
   .labels = {"entailment", "neutral", "contradiction"},
   .n_metrics = 1, .metrics = {PB_METRIC_ACC},
   .n_splits = 6,
   .splits = {
     /* index promptID pairID genre s1_binary_parse s2_binary_parse s1_parse s2_parse
      * sentence1 sentence2 [label1 (train) | label1..label5 (dev)] gold_label */
     {"train", "train.tsv", 1, 0, 8, 9, LAST, MNLI_A, MNLI_B, MNLI_L},
     {"dev_matched", "dev_matched.tsv", 1, 0, 8, 9, LAST, MNLI_A, MNLI_B, MNLI_L},
     {"dev_mismatched", "dev_mismatched.tsv", 1, 0, 8, 9, LAST, MNLI_A, MNLI_B, MNLI_L},
     {"test_matched", "test_matched.tsv", 1, 0, 8, 9, NO, MNLI_A, MNLI_B, NULL},
     {"test_mismatched", "test_mismatched.tsv", 1, 0, 8, 9, NO, MNLI_A, MNLI_B, NULL},
     /* the GLUE diagnostic set AX, evaluated with the MNLI model (unlabelled, 1,104 rows):
      * DATA_DIR/diagnostic/diagnostic.tsv, header index sentence1 sentence2 */
     {"ax", "../diagnostic/diagnostic.tsv", 1, 3, 1, 2, NO, MNLI_A, MNLI_B, NULL}},
   .n_eval = 2, .eval_splits = {"dev_matched", "dev_mismatched"}},
  {.name = "qnli", .dir = "QNLI", .is_pair = 1, .num_labels = 2,
   .labels = {"entailment", "not_entailment"},
   .n_metrics = 1, .metrics = {PB_METRIC_ACC},
   .n_splits = 3,
   .splits = {
     {"train", "train.tsv", 1, 4, 1, 2, 3, "question", "sentence", "label"},
     {"dev", "dev.tsv", 1, 4, 1, 2, 3, "question", "sentence", "label"},
     {"test", "test.tsv", 1, 3, 1, 2, NO, "question", "sentence", NULL}},
   .n_eval = 1, .eval_splits = {"dev"}},
  {.name = "rte", .dir = "RTE", .is_pair = 1, .num_labels = 2,
   .labels = {"entailment", "not_entailment"},
   .n_metrics = 1, .metrics = {PB_METRIC_ACC},
   .n_splits = 3, .splits = {IDX_S1_S2_LABEL("label")},
   .n_eval = 1, .eval_splits = {"dev"}},
  {.name = "wnli", .dir = "WNLI", .is_pair = 1, .num_labels = 2, .labels = {"0", "1"},
   .n_metrics = 1, .metrics = {PB_METRIC_ACC},
   .n_splits = 3, .splits = {IDX_S1_S2_LABEL("label")},
   .n_eval = 1, .eval_splits = {"dev"}},
};

#define N_TASKS ((int)(sizeof g_tasks / sizeof g_tasks[0]))

int pb_task_count(void) { return N_TASKS; }

const pb_task *pb_task_at(int i) { return (i >= 0 && i < N_TASKS) ? &g_tasks[i] : NULL; }

/* Lower-cases and drops '-', '_' (and '.'): "SST-2" -> "sst2". */
static void norm_name(const char *s, char *out, size_t n) {
  size_t k = 0;
  for (; *s && k + 1 < n; s++) {
    if (*s == '-' || *s == '_' || *s == '.') continue;
    out[k++] = (char)tolower((unsigned char)*s);
  }
  out[k] = '\0';
}

const pb_task *pb_task_find(const char *name) {
  if (!name) return NULL;
  char want[64], have[64];
  norm_name(name, want, sizeof want);
  for (int i = 0; i < N_TASKS; i++) {
    norm_name(g_tasks[i].name, have, sizeof have);
    if (strcmp(want, have) == 0) return &g_tasks[i];
  }
  return NULL;
}

void pb_task_names(char *out, size_t n) {
  if (!out || n == 0) return;
  out[0] = '\0';
  size_t len = 0;
  for (int i = 0; i < N_TASKS && len + 1 < n; i++) {
    int w = snprintf(out + len, n - len, "%s%s", i ? ", " : "", g_tasks[i].name);
    if (w < 0) break;
    len += (size_t)w;
  }
}

const pb_split_layout *pb_task_split(const pb_task *t, const char *split) {
  if (!t || !split) return NULL;
  for (int i = 0; i < t->n_splits; i++)
    if (strcmp(t->splits[i].split, split) == 0) return &t->splits[i];
  /* MNLI: "dev" / "test" mean the matched splits. */
  char alias[32];
  if (strcmp(split, "dev") == 0 || strcmp(split, "test") == 0) {
    snprintf(alias, sizeof alias, "%s_matched", split);
    for (int i = 0; i < t->n_splits; i++)
      if (strcmp(t->splits[i].split, alias) == 0) return &t->splits[i];
  }
  return NULL;
}

/* ---------------------------------------------------------------- paths */

static int is_dir(const char *p) {
  struct stat st;
  return p && stat(p, &st) == 0 && S_ISDIR(st.st_mode);
}

static int is_file(const char *p) {
  struct stat st;
  return p && stat(p, &st) == 0 && S_ISREG(st.st_mode);
}

/* Finds an entry of `dir` whose normalised name equals that of `name` (exact match first).
 * Writes dir/entry into out; returns 1 when found. */
static int find_entry_ci(const char *dir, const char *name, char *out, size_t n) {
  snprintf(out, n, "%s/%s", dir, name);
  struct stat st;
  if (stat(out, &st) == 0) return 1;
  DIR *d = opendir(dir);
  if (!d) return 0;
  char want[256], have[256];
  norm_name(name, want, sizeof want);
  int found = 0;
  struct dirent *e;
  while ((e = readdir(d)) != NULL) {
    norm_name(e->d_name, have, sizeof have);
    if (have[0] && strcmp(want, have) == 0) {
      snprintf(out, n, "%s/%s", dir, e->d_name);
      found = 1;
      break;
    }
  }
  closedir(d);
  return found;
}

/* Resolves the '/'-separated relative path rel under dir, each part with find_entry_ci.
 * Writes the result into out; returns 1 when every part was found. */
static int find_path_ci(const char *dir, const char *rel, char *out, size_t n) {
  char cur[4096], part[256];
  snprintf(cur, sizeof cur, "%s", dir);
  for (const char *p = rel; *p;) {
    const char *slash = strchr(p, '/');
    size_t len = slash ? (size_t)(slash - p) : strlen(p);
    if (len == 0 || len >= sizeof part) return 0;
    memcpy(part, p, len);
    part[len] = '\0';
    if (!find_entry_ci(cur, part, out, n)) return 0;
    snprintf(cur, sizeof cur, "%s", out);
    p += len + (slash ? 1 : 0);
  }
  return 1;
}

/* 1 when dir holds at least one GLUE task folder. */
static int has_task_folder(const char *dir) {
  char p[4096];
  for (int i = 0; i < N_TASKS; i++)
    if (find_entry_ci(dir, g_tasks[i].dir, p, sizeof p) && is_dir(p)) return 1;
  return 0;
}

/* dir, or dir/glue when dir has no task folder but a glue subfolder. */
static int accept_dir(const char *dir, char *out, size_t n) {
  char sub[4096];
  if (!has_task_folder(dir) && find_entry_ci(dir, "glue", sub, sizeof sub) && is_dir(sub) &&
      has_task_folder(sub)) {
    dir = sub;
  }
  if ((size_t)snprintf(out, n, "%s", dir) >= n)
    return pb_set_error(PB_ERR_ARG, "GLUE data dir path too long: %s", dir);
  return PB_OK;
}

#define GLUE_HOWTO                                                                          \
  "download the standard GLUE data (e.g. with download_glue_data.py) and put it so that "   \
  "DIR/CoLA/train.tsv, DIR/SST-2/train.tsv, DIR/MRPC/train.tsv, DIR/STS-B/train.tsv, "      \
  "DIR/QQP/train.tsv, DIR/MNLI/dev_matched.tsv, DIR/QNLI/train.tsv, DIR/RTE/train.tsv, "    \
  "DIR/WNLI/train.tsv exist, then pass --data-dir DIR or set PEFTBENCH_DATA=DIR"

int pb_glue_data_dir_from(const char *cli_dir, const char *env_dir, const char *const *fallbacks,
                          int n_fallbacks, char *out, size_t n) {
  if (!out || n == 0) return pb_set_error(PB_ERR_ARG, "pb_glue_data_dir: no output buffer");
  out[0] = '\0';
  if (cli_dir && cli_dir[0]) {
    if (!is_dir(cli_dir))
      return pb_set_error(PB_ERR_NOTFOUND, "--data-dir %s: no such directory; " GLUE_HOWTO,
                          cli_dir);
    return accept_dir(cli_dir, out, n);
  }
  if (env_dir && env_dir[0]) {
    if (!is_dir(env_dir))
      return pb_set_error(PB_ERR_NOTFOUND, "PEFTBENCH_DATA=%s: no such directory; " GLUE_HOWTO,
                          env_dir);
    return accept_dir(env_dir, out, n);
  }
  char looked[2048];
  size_t len = 0;
  looked[0] = '\0';
  for (int i = 0; i < n_fallbacks; i++) {
    if (!fallbacks[i]) continue;
    if (is_dir(fallbacks[i])) return accept_dir(fallbacks[i], out, n);
    if (len < sizeof looked) {
      int w = snprintf(looked + len, sizeof looked - len, "%s%s", len ? ", " : "", fallbacks[i]);
      if (w > 0) len += (size_t)w;
    }
  }
  return pb_set_error(PB_ERR_NOTFOUND,
                      "GLUE data not found (no --data-dir, PEFTBENCH_DATA unset, looked in: %s); "
                      GLUE_HOWTO, looked[0] ? looked : "nothing");
}

int pb_glue_data_dir(const char *cli_dir, char *out, size_t n) {
  const char *fb[2] = {"../shared/data/glue", PB_SOURCE_DIR "/../shared/data/glue"};
  return pb_glue_data_dir_from(cli_dir, getenv("PEFTBENCH_DATA"), fb, 2, out, n);
}

/* ---------------------------------------------------------------- loading */

void pb_dataset_free(pb_dataset *ds) {
  if (!ds) return;
  free(ds->ex);
  free(ds->arena);
  memset(ds, 0, sizeof *ds);
}

/* Reads a whole file into a NUL-terminated buffer. */
static int read_all(const char *path, char **buf, size_t *len) {
  *buf = NULL;
  *len = 0;
  FILE *f = fopen(path, "rb");
  if (!f) return pb_set_error(PB_ERR_IO, "%s: cannot open: %s", path, strerror(errno));
  size_t cap = 1 << 16, n = 0;
  char *b = malloc(cap);
  if (!b) {
    fclose(f);
    return pb_set_error(PB_ERR_NOMEM, "%s: out of memory", path);
  }
  for (;;) {
    if (cap - n < 2) {
      char *nb = realloc(b, cap * 2);
      if (!nb) {
        free(b);
        fclose(f);
        return pb_set_error(PB_ERR_NOMEM, "%s: out of memory", path);
      }
      b = nb;
      cap *= 2;
    }
    size_t r = fread(b + n, 1, cap - n - 1, f);
    n += r;
    if (r == 0) break;
  }
  int err = ferror(f);
  fclose(f);
  if (err) {
    free(b);
    return pb_set_error(PB_ERR_IO, "%s: read error", path);
  }
  b[n] = '\0';
  *buf = b;
  *len = n;
  return PB_OK;
}

/* Returns the byte offset of the first invalid UTF-8 sequence in s[0..n), or -1. */
static long utf8_bad_offset(const char *s, size_t n) {
  size_t i = 0;
  while (i < n) {
    unsigned char c = (unsigned char)s[i];
    if (c == 0) return (long)i; /* a NUL byte would silently cut the text */
    if (c < 0x80) { /* ASCII fast path */
      i++;
      continue;
    }
    utf8proc_int32_t cp;
    utf8proc_ssize_t k = utf8proc_iterate((const utf8proc_uint8_t *)s + i,
                                          (utf8proc_ssize_t)(n - i), &cp);
    if (k <= 0) return (long)i;
    i += (size_t)k;
  }
  return -1;
}

/* Splits line (NUL-terminated, no '\n') on '\t' in place; fills f[0..max) and returns the
 * total number of columns (which may exceed max). */
static int split_tabs(char *line, char **f, int max) {
  int nc = 0;
  char *p = line;
  for (;;) {
    if (nc < max) f[nc] = p;
    nc++;
    char *t = strchr(p, '\t');
    if (!t) break;
    *t = '\0';
    p = t + 1;
  }
  return nc;
}

static int resolve_col(int col, int ncols) { return col == PB_COL_LAST ? ncols - 1 : col; }

static void label_list(const pb_task *t, char *out, size_t n) {
  size_t len = 0;
  out[0] = '\0';
  for (int i = 0; i < t->num_labels && t->labels[i] && len < n; i++) {
    int w = snprintf(out + len, n - len, "%s%s", i ? ", " : "", t->labels[i]);
    if (w > 0) len += (size_t)w;
  }
}

#define MAX_COLS 64

int pb_glue_load_file(const pb_task *t, const pb_split_layout *L, const char *path, int flags,
                      pb_dataset *out) {
  if (!out) return pb_set_error(PB_ERR_ARG, "pb_glue_load_file: no output dataset");
  memset(out, 0, sizeof *out);
  if (!t || !L || !path) return pb_set_error(PB_ERR_ARG, "pb_glue_load_file: missing argument");
  int want_labels = (flags & PB_GLUE_LABELS) != 0;
  int has_labels = L->col_label != PB_COL_NONE;
  if (want_labels && !has_labels)
    return pb_set_error(PB_ERR_ARG, "%s: split '%s' of %s has no labels", path, L->split,
                        t->name);

  char *buf;
  size_t len;
  int rc = read_all(path, &buf, &len);
  if (rc) return rc;

  /* BOM, then trailing newlines / blank lines. */
  char *p = buf;
  if (len >= 3 && (unsigned char)p[0] == 0xEF && (unsigned char)p[1] == 0xBB &&
      (unsigned char)p[2] == 0xBF) {
    p += 3;
    len -= 3;
  }
  while (len > 0 && (p[len - 1] == '\n' || p[len - 1] == '\r')) p[--len] = '\0';
  if (len == 0) {
    free(buf);
    return pb_set_error(PB_ERR_FORMAT, "%s:1: empty file (task %s, split %s)", path, t->name,
                        L->split);
  }

  size_t n_lines = 1;
  for (size_t i = 0; i < len; i++) n_lines += p[i] == '\n';
  pb_example *ex = malloc(n_lines * sizeof *ex);
  if (!ex) {
    free(buf);
    return pb_set_error(PB_ERR_NOMEM, "%s: out of memory for %zu rows", path, n_lines);
  }

  int need_cols = L->ncols; /* 0: from the header */
  int max_col = L->col_a > L->col_b ? L->col_a : L->col_b;
  if (L->col_label > max_col) max_col = L->col_label;
  char labels_str[128];
  label_list(t, labels_str, sizeof labels_str);

  int n = 0, n_skipped = 0, lineno = 0;
  char *end = p + len;
  char *f[MAX_COLS];
  rc = PB_OK;
  for (char *line = p; line <= end && rc == PB_OK;) {
    char *nl = memchr(line, '\n', (size_t)(end - line));
    char *le = nl ? nl : end;
    *le = '\0';
    lineno++;
    size_t ll = (size_t)(le - line);
    if (ll > 0 && line[ll - 1] == '\r') line[--ll] = '\0';
    char *next = nl ? nl + 1 : end + 1;

    long bad = utf8_bad_offset(line, ll);
    if (bad >= 0) {
      rc = pb_set_error(PB_ERR_FORMAT, "%s:%d: invalid UTF-8 (or NUL) at byte %ld of the line", path,
                        lineno, bad + 1);
      break;
    }
    if (ll == 0) {
      rc = pb_set_error(PB_ERR_FORMAT, "%s:%d: blank line", path, lineno);
      break;
    }
    int nc = split_tabs(line, f, MAX_COLS);

    if (lineno == 1 && L->has_header) {
      if (nc > MAX_COLS || (L->ncols && nc != L->ncols) || max_col >= nc) {
        rc = pb_set_error(PB_ERR_FORMAT,
                          "%s:1: wrong header for %s %s: %d columns, expected %d%s", path,
                          t->name, L->split, nc, L->ncols ? L->ncols : max_col + 1,
                          L->ncols ? "" : " or more");
        break;
      }
      need_cols = nc;
      const char *names[3] = {L->hdr_a, L->hdr_b, L->hdr_label};
      int cols[3] = {L->col_a, L->col_b, L->col_label};
      for (int k = 0; k < 3; k++) {
        if (!names[k] || cols[k] == PB_COL_NONE) continue;
        int c = resolve_col(cols[k], nc);
        if (strcmp(f[c], names[k]) != 0) {
          rc = pb_set_error(PB_ERR_FORMAT,
                            "%s:1: wrong header for %s %s: column %d is '%s', expected '%s'",
                            path, t->name, L->split, c + 1, f[c], names[k]);
          break;
        }
      }
      line = next;
      continue;
    }

    if (nc != need_cols || nc > MAX_COLS) {
      if (flags & PB_GLUE_SKIP_MALFORMED) {
        n_skipped++;
        line = next;
        continue;
      }
      rc = pb_set_error(PB_ERR_FORMAT, "%s:%d: %s columns: expected %d, got %d", path, lineno,
                        nc < need_cols ? "too few" : "too many", need_cols, nc);
      break;
    }

    pb_example *e = &ex[n];
    e->a = f[L->col_a];
    e->b = L->col_b == PB_COL_NONE ? NULL : f[L->col_b];
    e->label = -1;
    e->target = 0.0f;
    e->line = lineno;
    if (has_labels) {
      const char *lab = f[resolve_col(L->col_label, nc)];
      if (t->is_regression) {
        char *ep = NULL;
        errno = 0;
        float v = strtof(lab, &ep);
        if (lab[0] == '\0' || *ep != '\0' || errno == ERANGE || !isfinite(v)) {
          rc = pb_set_error(PB_ERR_FORMAT, "%s:%d: score '%s' is not a number", path, lineno,
                            lab);
          break;
        }
        if (v < 0.0f || v > 5.0f) {
          rc = pb_set_error(PB_ERR_FORMAT, "%s:%d: score %s outside [0, 5]", path, lineno, lab);
          break;
        }
        e->target = v;
      } else {
        int id = -1;
        for (int k = 0; k < t->num_labels; k++)
          if (strcmp(lab, t->labels[k]) == 0) id = k;
        if (id < 0) {
          rc = pb_set_error(PB_ERR_FORMAT, "%s:%d: label '%.40s' not in {%s} (task %s)", path,
                            lineno, lab, labels_str, t->name);
          break;
        }
        e->label = id;
        e->target = (float)id;
      }
    }
    n++;
    line = next;
  }

  if (rc == PB_OK && n == 0 && n_skipped == 0) {
    rc = pb_set_error(PB_ERR_FORMAT, "%s:%d: no data rows (task %s, split %s)", path, lineno,
                      t->name, L->split);
  }
  if (rc != PB_OK) {
    free(ex);
    free(buf);
    return rc;
  }
  out->ex = ex;
  out->n = n;
  out->has_labels = has_labels;
  out->n_skipped = n_skipped;
  out->task = t;
  out->arena = buf;
  snprintf(out->path, sizeof out->path, "%s", path);
  return PB_OK;
}

int pb_glue_load_ex(const pb_task *t, const char *data_dir, const char *split, int flags,
                    pb_dataset *out) {
  if (out) memset(out, 0, sizeof *out);
  if (!t || !data_dir || !split || !out)
    return pb_set_error(PB_ERR_ARG, "pb_glue_load: missing argument");
  const pb_split_layout *L = pb_task_split(t, split);
  if (!L) {
    char names[256];
    size_t len = 0;
    names[0] = '\0';
    for (int i = 0; i < t->n_splits; i++) {
      int w = snprintf(names + len, sizeof names - len, "%s%s", i ? ", " : "", t->splits[i].split);
      if (w > 0 && (size_t)w < sizeof names - len) len += (size_t)w;
    }
    return pb_set_error(PB_ERR_ARG, "task %s has no split '%s' (splits: %s)", t->name, split,
                        names);
  }
  char tdir[4096], path[4096];
  if (strncmp(L->file, "../", 3) == 0) {
    /* a file beside the task folders (MNLI's "ax"): each part found case-insensitively */
    if (!find_path_ci(data_dir, L->file + 3, path, sizeof path) || !is_file(path)) {
      return pb_set_error(PB_ERR_NOTFOUND, "%s %s: file not found: %s/%s", t->name, L->split,
                          data_dir, L->file + 3);
    }
    return pb_glue_load_file(t, L, path, flags, out);
  }
  if (!find_entry_ci(data_dir, t->dir, tdir, sizeof tdir) || !is_dir(tdir)) {
    return pb_set_error(PB_ERR_NOTFOUND,
                        "%s %s: task folder %s not found in %s (expected %s/%s/%s)", t->name,
                        L->split, t->dir, data_dir, data_dir, t->dir, L->file);
  }
  if (!find_entry_ci(tdir, L->file, path, sizeof path) || !is_file(path)) {
    return pb_set_error(PB_ERR_NOTFOUND, "%s %s: file not found: %s/%s", t->name, L->split, tdir,
                        L->file);
  }
  return pb_glue_load_file(t, L, path, flags, out);
}

int pb_glue_load(const pb_task *t, const char *data_dir, const char *split, int with_labels,
                 pb_dataset *out) {
  return pb_glue_load_ex(t, data_dir, split, with_labels ? PB_GLUE_LABELS : 0, out);
}

static int cmp_int(const void *a, const void *b) {
  int x = *(const int *)a, y = *(const int *)b;
  return (x > y) - (x < y);
}

int pb_dataset_subsample(pb_dataset *ds, int n, unsigned long long seed) {
  if (!ds) return pb_set_error(PB_ERR_ARG, "pb_dataset_subsample: no dataset");
  if (n <= 0 || n >= ds->n) return PB_OK;
  int *idx = malloc((size_t)ds->n * sizeof *idx);
  pb_example *ex = malloc((size_t)n * sizeof *ex);
  if (!idx || !ex) {
    free(idx);
    free(ex);
    return pb_set_error(PB_ERR_NOMEM, "pb_dataset_subsample: out of memory");
  }
  for (int i = 0; i < ds->n; i++) idx[i] = i;
  pb_rng r;
  pb_rng_seed(&r, (uint64_t)seed);
  for (int i = ds->n - 1; i > 0; i--) {
    int j = (int)pb_rng_below(&r, (uint64_t)i + 1);
    int tmp = idx[i];
    idx[i] = idx[j];
    idx[j] = tmp;
  }
  qsort(idx, (size_t)n, sizeof *idx, cmp_int);
  for (int i = 0; i < n; i++) ex[i] = ds->ex[idx[i]];
  free(idx);
  free(ds->ex);
  ds->ex = ex;
  ds->n = n;
  return PB_OK;
}
