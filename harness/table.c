/* `peftbench table`: the comparison tables (table.h) over aggregated records (aggregate.c). */
#include "harness/table.h"

#include <getopt.h>
#include <math.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "util/fileio.h"
#include "util/status.h"
#include "harness/glue.h"
#include "harness/iragg.h"
#include "harness/results.h"
#include "util/strbuf.h"

/* ---------------------------------------------------------------- table model */

enum { F_MD, F_CSV, F_TEX };

typedef struct {
  int fmt;        /* F_MD, F_CSV, F_TEX */
  char *title;    /* one line (owned; not shown in CSV) */
  int ncols;
  char **hdr;     /* [ncols] header cells (owned) */
  int *right;     /* [ncols] 1: right-aligned (numbers) */
  int nrows;
  char **cells;   /* [nrows * ncols] (owned) */
  int n_notes;
  char **notes;   /* [n_notes] footnote lines (owned; not shown in CSV) */
  int oom;
} tbl;

static void tbl_free(tbl *t) {
  free(t->title);
  for (int i = 0; i < t->ncols; i++) free(t->hdr[i]);
  for (int i = 0; i < t->nrows * t->ncols; i++) free(t->cells[i]);
  for (int i = 0; i < t->n_notes; i++) free(t->notes[i]);
  free(t->hdr), free(t->right), free(t->cells), free(t->notes);
  memset(t, 0, sizeof *t);
}

/* Escapes data text for the format (Markdown: '|' and newlines; LaTeX: the special
 * characters, and ± / – as $\pm$ / --; CSV: none here, quoting is done when writing).
 * Returns a malloc'd string. */
static char *esc(int fmt, const char *s) {
  pb_strbuf b = {0};
  pb_sb_add(&b, "%s", "");
  for (const char *p = s; *p; p++) {
    char c = *p;
    if (c == '\n' || c == '\r' || c == '\t') {
      pb_sb_add(&b, " ");
    } else if (fmt == F_MD && c == '|') {
      pb_sb_add(&b, "\\|");
    } else if (fmt == F_TEX && !strncmp(p, "±", strlen("±"))) {
      pb_sb_add(&b, "$\\pm$");
      p += strlen("±") - 1;
    } else if (fmt == F_TEX && !strncmp(p, "–", strlen("–"))) {
      pb_sb_add(&b, "--");
      p += strlen("–") - 1;
    } else if (fmt == F_TEX) {
      switch (c) {
        case '_': case '%': case '&': case '#': case '$': case '{': case '}':
          pb_sb_add(&b, "\\%c", c);
          break;
        case '\\': pb_sb_add(&b, "\\textbackslash{}"); break;
        case '~': pb_sb_add(&b, "\\textasciitilde{}"); break;
        case '^': pb_sb_add(&b, "\\textasciicircum{}"); break;
        case '<': pb_sb_add(&b, "\\textless{}"); break;
        case '>': pb_sb_add(&b, "\\textgreater{}"); break;
        case '|': pb_sb_add(&b, "\\textbar{}"); break;
        default: pb_sb_add(&b, "%c", c);
      }
    } else {
      pb_sb_add(&b, "%c", c);
    }
  }
  return pb_sb_take(&b);
}

static void tbl_col(tbl *t, const char *head, int right) {
  char **h = realloc(t->hdr, (size_t)(t->ncols + 1) * sizeof *h);
  int *r = h ? realloc(t->right, (size_t)(t->ncols + 1) * sizeof *r) : NULL;
  if (h) t->hdr = h;
  if (!h || !r) {
    t->oom = 1;
    return;
  }
  t->right = r;
  h[t->ncols] = esc(t->fmt, head);
  if (!h[t->ncols]) t->oom = 1;
  r[t->ncols] = right;
  t->ncols++;
}

/* Starts a new row of empty cells. */
static void tbl_row(tbl *t) {
  char **c = realloc(t->cells, (size_t)(t->nrows + 1) * (size_t)t->ncols * sizeof *c);
  if (!c) {
    t->oom = 1;
    return;
  }
  t->cells = c;
  for (int i = 0; i < t->ncols; i++) c[t->nrows * t->ncols + i] = NULL;
  t->nrows++;
}

/* Sets cell `col` of the last row to already-formatted text (taken over). */
static void tbl_set_raw(tbl *t, int col, char *s) {
  if (!s) t->oom = 1;
  if (t->oom || t->nrows == 0 || col < 0 || col >= t->ncols) {
    free(s);
    return;
  }
  char **c = &t->cells[(t->nrows - 1) * t->ncols + col];
  free(*c);
  *c = s;
}

static void tbl_set_text(tbl *t, int col, const char *s) { tbl_set_raw(t, col, esc(t->fmt, s)); }

static void tbl_note(tbl *t, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void tbl_note(tbl *t, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  char *raw = NULL;
  if (vasprintf(&raw, fmt, ap) < 0) raw = NULL;
  va_end(ap);
  char *s = raw ? esc(t->fmt, raw) : NULL;
  free(raw);
  char **n = s ? realloc(t->notes, (size_t)(t->n_notes + 1) * sizeof *n) : NULL;
  if (!n) {
    free(s);
    t->oom = 1;
    return;
  }
  t->notes = n;
  n[t->n_notes++] = s;
}

/* RFC 4180: quote a field that holds a comma, a quote, CR or LF; double the quotes. */
static void csv_field(pb_strbuf *b, const char *s) {
  if (!strpbrk(s, ",\"\r\n")) {
    pb_sb_add(b, "%s", s);
    return;
  }
  pb_sb_add(b, "\"");
  for (const char *p = s; *p; p++) pb_sb_add(b, *p == '"' ? "\"\"" : "%c", *p);
  pb_sb_add(b, "\"");
}

static void tbl_emit(const tbl *t, pb_strbuf *b) {
  const char *miss = t->fmt == F_MD ? "–" : t->fmt == F_TEX ? "--" : "";
  if (t->fmt == F_CSV) {
    for (int r = -1; r < t->nrows; r++) {
      for (int c = 0; c < t->ncols; c++) {
        if (c) pb_sb_add(b, ",");
        const char *s = r < 0 ? t->hdr[c] : t->cells[r * t->ncols + c];
        csv_field(b, s ? s : miss);
      }
      pb_sb_add(b, "\r\n");
    }
    return;
  }
  if (t->fmt == F_MD) {
    pb_sb_add(b, "%s\n\n", t->title);
    for (int r = -2; r < t->nrows; r++) {
      pb_sb_add(b, "|");
      for (int c = 0; c < t->ncols; c++) {
        if (r == -2) pb_sb_add(b, " %s |", t->hdr[c]);
        else if (r == -1) pb_sb_add(b, "%s|", t->right[c] ? "---:" : ":---");
        else {
          const char *s = t->cells[r * t->ncols + c];
          pb_sb_add(b, " %s |", s ? s : miss);
        }
      }
      pb_sb_add(b, "\n");
    }
    if (t->n_notes) pb_sb_add(b, "\n");
    for (int i = 0; i < t->n_notes; i++) pb_sb_add(b, "- %s\n", t->notes[i]);
    return;
  }
  /* LaTeX (booktabs) */
  pb_sb_add(b, "%% %s\n\\begin{tabular}{", t->title);
  for (int c = 0; c < t->ncols; c++) pb_sb_add(b, "%c", t->right[c] ? 'r' : 'l');
  pb_sb_add(b, "}\n\\toprule\n");
  for (int r = -1; r < t->nrows; r++) {
    for (int c = 0; c < t->ncols; c++) {
      const char *s = r < 0 ? t->hdr[c] : t->cells[r * t->ncols + c];
      pb_sb_add(b, "%s%s", c ? " & " : "", s ? s : miss);
    }
    pb_sb_add(b, " \\\\\n");
    if (r < 0) pb_sb_add(b, "\\midrule\n");
  }
  pb_sb_add(b, "\\bottomrule\n\\end{tabular}\n");
  if (t->n_notes) {
    pb_sb_add(b, "\n\\smallskip\n{\\footnotesize\n");
    for (int i = 0; i < t->n_notes; i++)
      pb_sb_add(b, "%s%s\n", t->notes[i], i + 1 < t->n_notes ? "\\\\" : "\\par}");
  }
}

/* ---------------------------------------------------------------- number formatting */

/* %.*f without a "-0.0". */
static void fmt_fixed(char *o, size_t n, double v, int d) {
  snprintf(o, n, "%.*f", d, v);
  if (o[0] == '-' && strspn(o + 1, "0.") == strlen(o + 1)) memmove(o, o + 1, strlen(o));
}

/* Rounded integer with thousands separators: 294,912. */
static void fmt_commas(char *o, size_t n, double v) {
  char digits[64];
  snprintf(digits, sizeof digits, "%.0f", fabs(v));
  if (!isfinite(v) || strlen(digits) > 40) {
    snprintf(o, n, "%g", v);
    return;
  }
  char tmp[96];
  size_t k = 0, len = strlen(digits);
  if (v <= -0.5) tmp[k++] = '-';
  for (size_t i = 0; i < len; i++) {
    if (i && (len - i) % 3 == 0) tmp[k++] = ',';
    tmp[k++] = digits[i];
  }
  tmp[k] = 0;
  snprintf(o, n, "%s", tmp);
}

/* Rounded with 1 decimal and thousands separators: 1,234.5 */
static void fmt_commas1(char *o, size_t n, double v) {
  char f[64];
  fmt_fixed(f, sizeof f, v, 1);
  if (!isfinite(v) || strlen(f) > 40) {
    snprintf(o, n, "%s", f);
    return;
  }
  int neg = f[0] == '-';
  const char *p = f + neg, *dot = strchr(p, '.');
  size_t ilen = dot ? (size_t)(dot - p) : strlen(p);
  char tmp[96];
  size_t k = 0;
  if (neg) tmp[k++] = '-';
  for (size_t i = 0; i < ilen; i++) {
    if (i && (ilen - i) % 3 == 0) tmp[k++] = ',';
    tmp[k++] = p[i];
  }
  tmp[k] = 0;
  snprintf(o, n, "%s%s", tmp, dot ? dot : "");
}

/* Operation counts: 0, small values with 3 significant digits, else a comma integer. */
static void fmt_ops(char *o, size_t n, double v) {
  if (v == 0) snprintf(o, n, "0");
  else if (fabs(v) < 100) snprintf(o, n, "%.3g", v);
  else fmt_commas(o, n, v);
}

/* Counter values with an SI suffix: 1.23G, 456M, 12.3k, 512. */
static void fmt_si(char *o, size_t n, double v) {
  static const char *suf[] = {"", "k", "M", "G", "T", "P", "E"};
  double a = fabs(v);
  int i = 0;
  while (a >= 999.5 && i < 6) a /= 1000, i++;
  if (i == 0) {
    fmt_fixed(o, n, v, 0);
    return;
  }
  char num[32];
  snprintf(num, sizeof num, "%.3g", a);
  snprintf(o, n, "%s%s%s", v < 0 ? "-" : "", num, suf[i]);
}

/* Plain number for CSV (machine-readable, no separators). */
static char *csv_num(double v) {
  char s[64];
  snprintf(s, sizeof s, "%.10g", v);
  if (strcmp(s, "-0") == 0) strcpy(s, "0");
  return strdup(s);
}

/* "84.6", "84.6 ± 0.3 (n=3)" (LaTeX: $\pm$); NULL (missing) when s.n == 0. */
static char *cell_stat(int fmt, pb_stat s, int digits) {
  if (s.n == 0) return NULL;
  char m[64], d[64], *out = NULL;
  fmt_fixed(m, sizeof m, s.mean, digits);
  if (s.n == 1) return strdup(m);
  fmt_fixed(d, sizeof d, s.std, digits);
  if (asprintf(&out, "%s %s %s (n=%d)", m, fmt == F_TEX ? "$\\pm$" : "±", d, s.n) < 0) return NULL;
  return out;
}

typedef void (*fmt_fn)(char *, size_t, double);

static void fmt_pct(char *o, size_t n, double v) { fmt_fixed(o, n, v, 4); }

/* A per-row quantity: its value, or "min–max" when it differs between records (md/LaTeX);
 * CSV: the mean. NULL when missing; *ranged set to 1 when a range was written. */
static char *cell_quantity(int fmt, pb_stat s, fmt_fn f, int *ranged) {
  if (s.n == 0) return NULL;
  if (fmt == F_CSV) return csv_num(s.mean);
  char lo[64], hi[64], *out = NULL;
  f(lo, sizeof lo, s.min);
  f(hi, sizeof hi, s.max);
  if (strcmp(lo, hi) == 0) return strdup(lo);
  *ranged = 1;
  if (asprintf(&out, "%s%s%s", lo, fmt == F_TEX ? "--" : "–", hi) < 0) return NULL;
  return out;
}

/* ---------------------------------------------------------------- main table */

typedef struct {
  int task;            /* index into pb_task_at */
  const char *split;   /* eval split name in metrics.splits */
  const char *metric;  /* metric name ("accuracy") */
  char head[48];       /* "MRPC F1", "MNLI-m" */
} metcol;

static const char *metric_short(const char *m) {
  if (!strcmp(m, "accuracy")) return "Acc";
  if (!strcmp(m, "f1")) return "F1";
  if (!strcmp(m, "mcc")) return "MCC";
  if (!strcmp(m, "pearson")) return "Pearson";
  if (!strcmp(m, "spearman")) return "Spearman";
  return m;
}

static int metric_columns(const pb_agg *a, metcol *cols, int max) {
  int n = 0;
  for (int ti = 0; ti < PB_AGG_NTASKS; ti++) {
    if (!a->task_present[ti]) continue;
    const pb_task *t = pb_task_at(ti);
    if (t->n_eval == 2) {
      for (int s = 0; s < 2 && n < max; s++, n++) {
        cols[n].task = ti;
        cols[n].split = t->eval_splits[s];
        cols[n].metric = pb_metric_name(t->metrics[0]);
        snprintf(cols[n].head, sizeof cols[n].head, "%s-%s", t->dir, s == 0 ? "m" : "mm");
      }
    } else {
      for (int m = 0; m < t->n_metrics && n < max; m++, n++) {
        cols[n].task = ti;
        cols[n].split = t->eval_splits[0];
        cols[n].metric = pb_metric_name(t->metrics[m]);
        snprintf(cols[n].head, sizeof cols[n].head, "%s %s", t->dir, metric_short(cols[n].metric));
      }
    }
  }
  return n;
}

/* The metric of one column over the row's records, x100. A record without the split falls
 * back to its only split (for non-MNLI tasks). */
static pb_stat metric_stat(const pb_agg_row *r, const metcol *c) {
  pb_acc acc = {0};
  for (int i = 0; i < r->n_recs[c->task]; i++) {
    const cJSON *rec = r->recs[c->task][i];
    double v;
    int ok = pb_json_num(rec, &v, "metrics", "splits", c->split, c->metric, NULL);
    if (!ok && pb_task_at(c->task)->n_eval == 1) {
      const cJSON *sp = cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(rec, "metrics"), "splits");
      if (cJSON_IsObject(sp) && sp->child && !sp->child->next)
        ok = pb_json_num(sp->child, &v, c->metric, NULL);
    }
    if (ok) pb_acc_add(&acc, 100.0 * v);
  }
  return pb_acc_stat(&acc);
}

static int multi_fp(const pb_agg *a) {
  for (int i = 1; i < a->n_rows; i++)
    if (strcmp(a->rows[i].fp, a->rows[0].fp)) return 1;
  return 0;
}

/* Footnote naming the backbone(s). */
static void note_backbones(const pb_agg *a, tbl *t) {
  pb_strbuf b = {0};
  pb_sb_add(&b, "Backbone%s: ", multi_fp(a) ? "s" : "");
  int k = 0;
  for (int i = 0; i < a->n_rows; i++) {
    int seen = 0;
    for (int j = 0; j < i; j++)
      if (!strcmp(a->rows[j].fp, a->rows[i].fp)) seen = 1;
    if (seen) continue;
    const cJSON *rec = NULL;
    for (int ti = 0; ti < PB_AGG_NTASKS && !rec; ti++)
      if (a->rows[i].n_recs[ti]) rec = a->rows[i].recs[ti][0];
    const cJSON *bb = cJSON_GetObjectItemCaseSensitive(rec, "backbone");
    const char *src = pb_json_str(bb, "source");
    const cJSON *pre = cJSON_GetObjectItemCaseSensitive(bb, "pretrained");
    double L = 0, d = 0;
    int hasL = pb_json_num(bb, &L, "config", "layers", NULL);
    int hasd = pb_json_num(bb, &d, "config", "hidden", NULL);
    pb_sb_add(&b, "%s%s (%s", k++ ? "; " : "", a->rows[i].fp[0] ? a->rows[i].fp : "unknown fingerprint",
           src ? src : "unknown source");
    if (cJSON_IsBool(pre)) pb_sb_add(&b, ", %s", cJSON_IsTrue(pre) ? "pretrained" : "not pretrained");
    if (hasL && hasd) pb_sb_add(&b, ", L=%.0f, d=%.0f", L, d);
    pb_sb_add(&b, ")");
  }
  pb_sb_add(&b, ".");
  char *s = pb_sb_take(&b);
  if (s) tbl_note(t, "%s", s);
  else t->oom = 1;
  free(s);
}

/* Footnotes on rows of one method that are not averaged together, and on duplicates. */
static void note_splits(const pb_agg *a, tbl *t) {
  int legacy = 0;
  for (int i = 0; i < a->n_splits; i++) {
    const pb_agg_split *sp = &a->splits[i];
    legacy |= sp->legacy_mix;
    if (!sp->keys[0]) continue;
    tbl_note(t,
             "%s rows differ in %s and are not averaged together (records are averaged only "
             "over the seeds of an identical training configuration)%s%s%s%s.",
             sp->method, sp->keys, sp->modal[0] ? "; a label leaves out the value most " : "",
             sp->modal[0] ? sp->method : "", sp->modal[0] ? " rows share: " : "", sp->modal);
  }
  if (legacy)
    tbl_note(t, "legacy record: written before records carried their training configuration "
                "(\"config\"); compared on method, method_desc, backbone, data_dir, max_len, "
                "epochs, batch, lr and weight_decay only, and never averaged with a record that "
                "carries one.");
  if (a->n_dup)
    tbl_note(t, "%d duplicate record%s left out: same training configuration, task and seed as "
                "a later record (a re-run, not another seed); the later record is used.",
             a->n_dup, a->n_dup == 1 ? "" : "s");
}

/* a score's cells from column c: CSV mean, std and n (three columns), else one "mean ± std" cell
 * (empty when no record has it); returns the next column */
static int set_score_cells(tbl *t, int c, pb_stat s, int csv, int digits) {
  if (csv) {
    if (s.n) {
      tbl_set_raw(t, c, csv_num(s.mean));
      tbl_set_raw(t, c + 1, csv_num(s.std));
      char n[16];
      snprintf(n, sizeof n, "%d", s.n);
      tbl_set_raw(t, c + 2, strdup(n));
    }
    return c + 3;
  }
  if (s.n) tbl_set_raw(t, c, cell_stat(t->fmt, s, digits));
  return c + 1;
}

static void build_main(const pb_agg *a, tbl *t, int digits) {
  metcol cols[32];
  int nm = metric_columns(a, cols, 32);
  int fp = multi_fp(a);
  int csv = t->fmt == F_CSV;
  int ntask_cols = 0;
  for (int ti = 0; ti < PB_AGG_NTASKS; ti++) ntask_cols += a->task_present[ti];
  t->title = strdup("GLUE dev results and costs per method (scores x100)");

  tbl_col(t, "Method", 0);
  tbl_col(t, "Config", 0);
  if (fp) tbl_col(t, "Backbone", 0);
  for (int c = 0; c < nm; c++) {
    tbl_col(t, cols[c].head, 1);
    if (csv) {
      char h[80];
      snprintf(h, sizeof h, "%s std", cols[c].head);
      tbl_col(t, h, 1);
      snprintf(h, sizeof h, "%s n", cols[c].head);
      tbl_col(t, h, 1);
    }
  }
  tbl_col(t, "Avg", 1);
  if (csv) tbl_col(t, "Avg tasks", 1);
  tbl_col(t, "Trainable", 1);
  tbl_col(t, "Trainable +head", 1);
  tbl_col(t, "% of full", 1);
  tbl_col(t, "Storage/task (KB)", 1);
  tbl_col(t, "Added FLOPs/token", 1);
  tbl_col(t, "Added FLOPs/example", 1);
  tbl_col(t, "Merged FLOPs/example", 1);

  int ranged = 0, partial_avg = 0;
  for (int i = 0; i < a->n_rows && !t->oom; i++) {
    const pb_agg_row *r = &a->rows[i];
    tbl_row(t);
    int c = 0;
    tbl_set_text(t, c++, r->name);
    tbl_set_text(t, c++, r->desc);
    if (fp) {
      char f8[16];
      snprintf(f8, sizeof f8, "%.8s", r->fp);
      tbl_set_text(t, c++, f8);
    }
    for (int m = 0; m < nm; m++) {
      pb_stat s = metric_stat(r, &cols[m]);
      c = set_score_cells(t, c, s, csv, digits);
    }
    int k = 0;
    double avg = pb_agg_avg_score(r, &k);
    if (k > 0) {
      if (csv) {
        tbl_set_raw(t, c, csv_num(avg));
        char n[16];
        snprintf(n, sizeof n, "%d", k);
        tbl_set_raw(t, c + 1, strdup(n));
      } else {
        char v[64], *s = NULL;
        fmt_fixed(v, sizeof v, avg, digits);
        if (k < ntask_cols) partial_avg = 1;
        if (asprintf(&s, "%s%s", v, k < ntask_cols ? "*" : "") < 0) s = NULL;
        tbl_set_raw(t, c, s);
      }
    }
    c += csv ? 2 : 1;
    static const struct {
      pb_agg_quantity q;
      fmt_fn f;
    } qs[] = {{PB_AGG_TRAINABLE_NOHEAD, fmt_commas}, {PB_AGG_TRAINABLE, fmt_commas},
              {PB_AGG_PCT_FULL, fmt_pct},            {PB_AGG_STORAGE_KB, fmt_commas1},
              {PB_AGG_OPS_TOKEN, fmt_ops},           {PB_AGG_OPS_EXAMPLE, fmt_ops},
              {PB_AGG_OPS_MERGED_EXAMPLE, fmt_ops}};
    for (int q = 0; q < 7; q++) {
      pb_stat s = pb_agg_row_stat(r, qs[q].q);
      if (s.n) tbl_set_raw(t, c, cell_quantity(t->fmt, s, qs[q].f, &ranged));
      c++;
    }
  }

  tbl_note(t, "Scores x100 on the GLUE dev sets: CoLA Matthews correlation; STS-B Pearson and "
              "Spearman; MRPC and QQP F1 and accuracy; MNLI-m/mm matched/mismatched accuracy; "
              "the others accuracy. Each cell is the mean over the runs (seeds) of one training "
              "configuration ± the sample standard deviation, with the number of runs n when "
              "n > 1; – means not run.");
  note_splits(a, t);
  char *proto = pb_agg_protocol_note(a);
  if (!proto) t->oom = 1;
  else if (proto[0])
    tbl_note(t, "Training protocol per task (it differs between tasks; a row holds each task's "
                "own): %s.", proto);
  free(proto);
  tbl_note(t, "Avg: GLUE score, i.e. each task's score (the mean of its metrics; MNLI: of m and "
              "mm) averaged over the tasks present%s.",
           partial_avg ? "; * marks a row averaged over fewer tasks than the table has" : "");
  tbl_note(t, "Trainable: trainable parameters without the task head (the method's own; full "
              "fine-tuning: the whole backbone). Trainable +head adds the classification head. "
              "%% of full: Trainable / all backbone parameters.");
  tbl_note(t, "Storage/task: size of the task file written (method tensors + head + header), "
              "1 KB = 1024 bytes.");
  tbl_note(t, "Added FLOPs: the operations the method adds at inference (owner = method; "
              "FLOPs = 2 x matmul MACs + elementwise + transcendental) for one example of "
              "T = 128 tokens, and per token (/128). Merged: with the update folded into the "
              "weights (LoRA); – where the method cannot merge.");
  if (ranged)
    tbl_note(t, "a–b: the value differs between the method's runs (task heads differ by label count).");
  note_backbones(a, t);
}

/* ---------------------------------------------------------------- counters table */

typedef struct {
  int n;
  char **s; /* [n] owned strings, in first-appearance order */
} strlist;

static int sl_find(const strlist *l, const char *s) {
  for (int i = 0; i < l->n; i++)
    if (!strcmp(l->s[i], s)) return i;
  return -1;
}

static void sl_add(strlist *l, const char *s) {
  if (sl_find(l, s) >= 0) return;
  char **p = realloc(l->s, (size_t)(l->n + 1) * sizeof *p);
  if (!p) return;
  l->s = p;
  if ((p[l->n] = strdup(s))) l->n++;
}

static void sl_free(strlist *l) {
  for (int i = 0; i < l->n; i++) free(l->s[i]);
  free(l->s);
  memset(l, 0, sizeof *l);
}

static const cJSON *counters_of(const cJSON *rec) {
  const cJSON *c = cJSON_GetObjectItemCaseSensitive(rec, "counters");
  return cJSON_IsObject(c) ? c : NULL;
}

static void build_counters(const pb_agg *a, tbl *t) {
  strlist phases = {0}, events = {0};
  sl_add(&phases, "train");
  sl_add(&phases, "eval");
  /* events and other phases, in order of first appearance */
  for (int i = 0; i < a->n_rows; i++)
    for (int ti = 0; ti < PB_AGG_NTASKS; ti++)
      for (int k = 0; k < a->rows[i].n_recs[ti]; k++) {
        const cJSON *rec = a->rows[i].recs[ti][k], *c = counters_of(rec), *x;
        const cJSON *ev = cJSON_GetObjectItemCaseSensitive(c, "events");
        cJSON_ArrayForEach(x, ev) if (cJSON_IsString(x)) sl_add(&events, x->valuestring);
        const cJSON *ph = cJSON_GetObjectItemCaseSensitive(c, "phases");
        cJSON_ArrayForEach(x, ph) {
          if (cJSON_IsObject(x) && x->string) sl_add(&phases, x->string);
          const cJSON *e;
          cJSON_ArrayForEach(e, x) if (e->string) sl_add(&events, e->string);
        }
        const cJSON *tm = cJSON_GetObjectItemCaseSensitive(rec, "timings");
        cJSON_ArrayForEach(x, tm) if (cJSON_IsObject(x) && x->string) sl_add(&phases, x->string);
      }
  int fp = multi_fp(a);
  int csv = t->fmt == F_CSV;
  t->title = strdup("Hardware counters, timings and memory per task and method (mean over runs)");
  tbl_col(t, "Method", 0);
  tbl_col(t, "Config", 0);
  if (fp) tbl_col(t, "Backbone", 0);
  tbl_col(t, "Task", 0);
  tbl_col(t, "Phase", 0);
  tbl_col(t, "n", 1);
  tbl_col(t, "Wall (s)", 1);
  tbl_col(t, "CPU (s)", 1);
  for (int e = 0; e < events.n; e++) tbl_col(t, events.s[e], 1);
  tbl_col(t, "Peak RSS (MB)", 1);

  int *na_used = calloc((size_t)events.n + 1, sizeof *na_used); /* [events.n] event had n/a */
  if (!na_used) t->oom = 1;
  for (int i = 0; i < a->n_rows && !t->oom; i++) {
    const pb_agg_row *r = &a->rows[i];
    for (int ti = 0; ti < PB_AGG_NTASKS; ti++) {
      if (!r->n_recs[ti]) continue;
      for (int p = 0; p < phases.n; p++) {
        const char *ph = phases.s[p];
        /* skip a phase this (row, task) never has */
        int any = 0;
        for (int k = 0; k < r->n_recs[ti]; k++) {
          const cJSON *c = counters_of(r->recs[ti][k]);
          if (cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(c, "phases"), ph) ||
              cJSON_IsObject(cJSON_GetObjectItemCaseSensitive(
                  cJSON_GetObjectItemCaseSensitive(r->recs[ti][k], "timings"), ph)))
            any = 1;
        }
        if (!any) continue;
        tbl_row(t);
        int c = 0;
        char buf[64];
        tbl_set_text(t, c++, r->name);
        tbl_set_text(t, c++, r->desc);
        if (fp) {
          snprintf(buf, sizeof buf, "%.8s", r->fp);
          tbl_set_text(t, c++, buf);
        }
        tbl_set_text(t, c++, pb_task_at(ti)->dir);
        tbl_set_text(t, c++, ph);
        snprintf(buf, sizeof buf, "%d", r->n_recs[ti]);
        tbl_set_text(t, c++, buf);
        pb_stat w = pb_agg_stat(r, ti, "timings", ph, "wall_s", NULL);
        pb_stat u = pb_agg_stat(r, ti, "timings", ph, "cpu_s", NULL);
        if (w.n) tbl_set_raw(t, c, csv ? csv_num(w.mean) : (fmt_fixed(buf, sizeof buf, w.mean, 2), strdup(buf)));
        c++;
        if (u.n) tbl_set_raw(t, c, csv ? csv_num(u.mean) : (fmt_fixed(buf, sizeof buf, u.mean, 2), strdup(buf)));
        c++;
        for (int e = 0; e < events.n; e++, c++) {
          pb_stat s = pb_agg_stat(r, ti, "counters", "phases", ph, events.s[e], NULL);
          int nulls = 0;
          for (int k = 0; k < r->n_recs[ti]; k++) {
            const cJSON *v = cJSON_GetObjectItemCaseSensitive(
                cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(counters_of(r->recs[ti][k]), "phases"), ph),
                events.s[e]);
            if (cJSON_IsNull(v)) nulls++;
          }
          if (s.n) {
            if (csv) tbl_set_raw(t, c, csv_num(s.mean));
            else {
              fmt_si(buf, sizeof buf, s.mean);
              char *cell = NULL;
              if (s.n < r->n_recs[ti] && asprintf(&cell, "%s (n=%d)", buf, s.n) >= 0) tbl_set_raw(t, c, cell);
              else tbl_set_raw(t, c, strdup(buf));
            }
          } else if (nulls) {
            tbl_set_raw(t, c, strdup("n/a"));
            na_used[e] = 1;
          }
        }
        pb_stat m = pb_agg_stat(r, ti, "memory", "peak_rss_kb", NULL);
        if (m.n) tbl_set_raw(t, c, csv ? csv_num(m.mean / 1024.0) : (fmt_fixed(buf, sizeof buf, m.mean / 1024.0, 1), strdup(buf)));
      }
    }
  }

  tbl_note(t, "Counters from PAPI for the calling thread only (OpenBLAS/OpenMP worker threads "
              "are not included), summed over the phase; perf:: events are software events "
              "(perf::TASK-CLOCK in ns). Values are means over the n runs (k = 1e3, M = 1e6, "
              "G = 1e9).");
  tbl_note(t, "Wall/CPU: seconds per phase (CPU = all threads of the process). Peak RSS: the "
              "whole run's peak resident memory (1 MB = 1024 KB), repeated on each phase row.");
  /* n/a reasons: the distinct reasons of each event joined; events with the same reason
   * text share one line */
  char **why_ev = calloc((size_t)events.n + 1, sizeof *why_ev); /* [events.n] reason text */
  for (int e = 0; na_used && why_ev && e < events.n; e++) {
    if (!na_used[e]) continue;
    strlist reasons = {0};
    for (int i = 0; i < a->n_rows; i++)
      for (int ti = 0; ti < PB_AGG_NTASKS; ti++)
        for (int k = 0; k < a->rows[i].n_recs[ti]; k++) {
          const cJSON *c = counters_of(a->rows[i].recs[ti][k]);
          const char *why = pb_json_str(cJSON_GetObjectItemCaseSensitive(c, "unavailable"), events.s[e]);
          if (!why && c) why = pb_json_str(c, "reason");
          if (why) sl_add(&reasons, why);
        }
    pb_strbuf b = {0};
    for (int j = 0; j < reasons.n; j++) pb_sb_add(&b, "%s%s", j ? "; " : "", reasons.s[j]);
    if (!reasons.n) pb_sb_add(&b, "no reason recorded");
    why_ev[e] = pb_sb_take(&b);
    sl_free(&reasons);
  }
  for (int e = 0; na_used && why_ev && e < events.n; e++) {
    if (!na_used[e] || !why_ev[e]) continue;
    int first = 1;
    for (int j = 0; j < e; j++)
      if (na_used[j] && why_ev[j] && !strcmp(why_ev[j], why_ev[e])) first = 0;
    if (!first) continue;
    pb_strbuf b = {0};
    for (int j = e; j < events.n; j++)
      if (na_used[j] && why_ev[j] && !strcmp(why_ev[j], why_ev[e])) pb_sb_add(&b, "%s%s", j == e ? "" : ", ", events.s[j]);
    char *names = pb_sb_take(&b);
    if (names) tbl_note(t, "n/a %s: not countable here: %s", names, why_ev[e]);
    else t->oom = 1;
    free(names);
  }
  for (int e = 0; why_ev && e < events.n; e++) free(why_ev[e]);
  free(why_ev);
  /* PAPI unavailable altogether */
  strlist why = {0};
  for (int i = 0; i < a->n_rows; i++)
    for (int ti = 0; ti < PB_AGG_NTASKS; ti++)
      for (int k = 0; k < a->rows[i].n_recs[ti]; k++) {
        const cJSON *c = counters_of(a->rows[i].recs[ti][k]);
        if (c && cJSON_IsFalse(cJSON_GetObjectItemCaseSensitive(c, "available")) && pb_json_str(c, "reason"))
          sl_add(&why, pb_json_str(c, "reason"));
      }
  for (int j = 0; j < why.n; j++) tbl_note(t, "PAPI not available in some runs: %s", why.s[j]);
  sl_free(&why);
  free(na_used);
  sl_free(&phases);
  sl_free(&events);
}

/* ---------------------------------------------------------------- render + CLI */


/* ---------------------------------------------------------------- early exit */

/* One row per task, exits model (its task file's training config) and threshold of the records
 * with an "exits" block (eval --exit-threshold): score, mean exit layer, FLOPs per example (mean,
 * median, max), the static FLOPs and the speedup, means over the seeds of that row. */
typedef struct {
  int task;                 /* pb_task_at index */
  const char *method, *tf;  /* method, task_file_config */
  int tf_order;             /* first appearance of (method, tf) */
  double thr;
  pb_acc score, layer, mean, median, max, stat, speed;
} exrow;

static int exrow_cmp(const void *pa, const void *pb) {
  const exrow *x = pa, *y = pb;
  if (x->task != y->task) return x->task - y->task;
  if (x->tf_order != y->tf_order) return x->tf_order - y->tf_order;
  return (x->thr > y->thr) - (x->thr < y->thr);
}

static double jnum(const cJSON *o, const char *a, const char *b) {
  const cJSON *x = cJSON_GetObjectItemCaseSensitive(o, a);
  if (b) x = cJSON_GetObjectItemCaseSensitive(x, b);
  return cJSON_IsNumber(x) ? x->valuedouble : NAN;
}

static void build_exits(const pb_agg *a, tbl *t, int digits) {
  t->title = strdup("Early exit: score and FLOPs per example against the entropy threshold (means over seeds)");
  const char *heads[] = {"Task", "Method", "Task file config", "Threshold", "Score", "Mean exit layer",
                         "FLOPs/example", "Median", "Max", "Static FLOPs", "Speedup"};
  for (int c = 0; c < 11; c++) tbl_col(t, heads[c], c >= 3);
  int cap = 0, n = 0, n_tf = 0;
  exrow *rows = NULL;
  const char *tfs[256][2];
  for (int i = 0; i < a->n_rows && !t->oom; i++)
    for (int ti = 0; ti < PB_AGG_NTASKS; ti++)
      for (int k = 0; k < a->rows[i].n_recs[ti]; k++) {
        const cJSON *rec = a->rows[i].recs[ti][k], *ex = cJSON_GetObjectItemCaseSensitive(rec, "exits");
        if (!cJSON_IsObject(ex)) continue;
        const cJSON *cfg = cJSON_GetObjectItemCaseSensitive(rec, "config");
        const char *m = pb_json_str(rec, "method"), *tf = pb_json_str(cfg, "task_file_config");
        m = m ? m : "?", tf = tf ? tf : "?";
        const double thr = jnum(ex, "threshold", NULL);
        int j = 0;
        while (j < n && !(rows[j].task == ti && rows[j].thr == thr && !strcmp(rows[j].method, m) && !strcmp(rows[j].tf, tf))) j++;
        if (j == n) {
          if (n == cap) {
            cap = cap ? 2 * cap : 32;
            exrow *nr = realloc(rows, (size_t)cap * sizeof *nr);
            if (!nr) {
              t->oom = 1;
              break;
            }
            rows = nr;
          }
          memset(&rows[n], 0, sizeof rows[n]);
          rows[n].task = ti, rows[n].method = m, rows[n].tf = tf, rows[n].thr = thr;
          int o = 0;
          while (o < n_tf && !(strcmp(tfs[o][0], m) == 0 && strcmp(tfs[o][1], tf) == 0)) o++;
          if (o == n_tf && n_tf < 256) tfs[n_tf][0] = m, tfs[n_tf][1] = tf, n_tf++;
          rows[n++].tf_order = o;
        }
        exrow *r = &rows[j];
        pb_acc_add(&r->score, 100.0 * jnum(rec, "metrics", "score"));
        pb_acc_add(&r->layer, jnum(ex, "mean_layer", NULL));
        pb_acc_add(&r->mean, jnum(ex, "flops_per_example", "mean"));
        pb_acc_add(&r->median, jnum(ex, "flops_per_example", "median"));
        pb_acc_add(&r->max, jnum(ex, "flops_per_example", "max"));
        pb_acc_add(&r->stat, jnum(ex, "flops_static", NULL));
        pb_acc_add(&r->speed, jnum(ex, "speedup", NULL));
      }
  if (n) qsort(rows, (size_t)n, sizeof *rows, exrow_cmp);
  for (int j = 0; j < n && !t->oom; j++) {
    exrow *r = &rows[j];
    tbl_row(t);
    char b[64];
    tbl_set_text(t, 0, pb_task_at(r->task)->name);
    tbl_set_text(t, 1, r->method);
    tbl_set_text(t, 2, r->tf);
    snprintf(b, sizeof b, "%g", r->thr);
    tbl_set_text(t, 3, b);
    pb_stat sc = pb_acc_stat(&r->score);
    tbl_set_raw(t, 4, cell_stat(t->fmt, sc, digits));
    pb_acc *acc[] = {&r->layer, &r->mean, &r->median, &r->max, &r->stat, &r->speed};
    for (int q = 0; q < 6; q++) {
      const pb_stat st = pb_acc_stat(acc[q]);
      if (q == 0) snprintf(b, sizeof b, "%.2f", st.mean);
      else if (q == 5) snprintf(b, sizeof b, "%.2fx", st.mean);
      else fmt_si(b, sizeof b, st.mean);
      tbl_set_text(t, 5 + q, b);
    }
  }
  if (!n) tbl_note(t, "no records with an exits block (peftbench eval TASKFILE --exit-threshold LIST --results FILE)");
  else tbl_note(t, "FLOPs per example at each example's own length (exact counts); static: the same examples with no early exit.");
  free(rows);
}

/* ---------------------------------------------------------------- retrieval table */

static pb_stat scaled(pb_stat s, double f) {
  s.mean *= f;
  s.std *= f;
  s.min *= f;
  s.max *= f;
  return s;
}

/* One row per retrieval configuration (harness/iragg.h): the test split's MRR@10, nDCG@10,
 * MAP and Recall@100 and the dev nDCG@10 (x100, mean ± std over seeds), then the trainable
 * parameters, task file, index size and the FLOPs of encoding a query / a document and of
 * searching the collection for one query. */
static void build_retrieval(const pb_agg *a, tbl *t, int digits) {
  pb_ir_group *g = NULL;
  int ng = 0;
  if (pb_ir_groups(a->retrieval, &g, &ng)) {
    t->oom = 1;
    return;
  }
  const int csv = t->fmt == F_CSV;
  t->title = strdup("Retrieval on Cranfield (test: 50 queries, dev: 25; x100, mean ± std over seeds)");
  static const char *const mk[5] = {"mrr@10", "ndcg@10", "map", "recall@100", "ndcg@10"};
  static const char *const mh[5] = {"MRR@10", "nDCG@10", "MAP", "R@100", "dev nDCG@10"};
  tbl_col(t, "Method", 0);
  tbl_col(t, "Config", 0);
  for (int m = 0; m < 5; m++) {
    tbl_col(t, mh[m], 1);
    if (csv) {
      char h[64];
      snprintf(h, sizeof h, "%s std", mh[m]);
      tbl_col(t, h, 1);
      snprintf(h, sizeof h, "%s n", mh[m]);
      tbl_col(t, h, 1);
    }
  }
  tbl_col(t, "Trainable", 1);
  tbl_col(t, "Storage/task (KB)", 1);
  tbl_col(t, "Index (MB)", 1);
  tbl_col(t, "FLOPs/query enc", 1);
  tbl_col(t, "FLOPs/doc enc", 1);
  tbl_col(t, "FLOPs/search", 1);
  int ranged = 0;
  for (int i = 0; i < ng && !t->oom; i++) {
    tbl_row(t);
    int c = 0;
    tbl_set_text(t, c++, g[i].label);
    const char *desc = pb_json_str(g[i].recs[0], "method_desc");
    tbl_set_text(t, c++, desc ? desc : "");
    for (int m = 0; m < 5; m++) {
      pb_stat s = scaled(pb_ir_group_stat(&g[i], "metrics", "splits", m == 4 ? "dev" : "test", mk[m], NULL), 100);
      c = set_score_cells(t, c, s, csv, digits);
    }
    pb_stat s = pb_ir_group_stat(&g[i], "params", "trainable", NULL);
    if (s.n) tbl_set_raw(t, c, cell_quantity(t->fmt, s, fmt_commas, &ranged));
    c++;
    s = scaled(pb_ir_group_stat(&g[i], "storage", "file_bytes", NULL), 1.0 / 1000);
    if (s.n) tbl_set_raw(t, c, cell_quantity(t->fmt, s, fmt_commas1, &ranged));
    c++;
    s = scaled(pb_ir_group_stat(&g[i], "storage", "index_bytes", NULL), 1e-6);
    if (s.n) tbl_set_raw(t, c, cell_quantity(t->fmt, s, fmt_commas1, &ranged));
    c++;
    static const char *const ok[3] = {"query_encode_per_query", "doc_encode_per_doc", "search_per_query"};
    for (int k = 0; k < 3; k++, c++) {
      s = pb_ir_group_stat(&g[i], "ops", ok[k], "flops", "total", NULL);
      if (s.n) tbl_set_raw(t, c, cell_quantity(t->fmt, s, fmt_si, &ranged));
    }
  }
  tbl_note(t, "COIL over the backbone with the method (full, lora, ...); BM25 is the lexical baseline (k1, b in "
              "Config). Metrics: trec_eval's definitions over the top 1000 (graded nDCG gains: code 1..4 -> 4..1, "
              "-1 -> 0); significance per query: `peftbench ircompare`.");
  tbl_note(t, "Trainable: the method's parameters plus the COIL projections; FLOPs per query / per document at "
              "their real lengths (mean), search: one query over all 1,400 documents (inverted index).");
  if (ranged) tbl_note(t, "a–b: the value differs between the configuration's runs.");
  free(g);
}

int pb_table_render(const pb_agg *a, const char *format, int which, int digits, char **out) {
  *out = NULL;
  int fmt;
  if (!strcmp(format, "md") || !strcmp(format, "markdown")) fmt = F_MD;
  else if (!strcmp(format, "csv")) fmt = F_CSV;
  else if (!strcmp(format, "latex") || !strcmp(format, "tex")) fmt = F_TEX;
  else return pb_set_error(PB_ERR_ARG, "unknown format '%s' (md, csv, latex)", format);
  if (which < 1 || which > 4) return pb_set_error(PB_ERR_ARG, "table: bad table selection");
  if (fmt == F_CSV && which == 3)
    return pb_set_error(PB_ERR_ARG, "csv holds one table: use --table main or --table counters");
  if (digits < 0 || digits > 6) return pb_set_error(PB_ERR_ARG, "--digits must be 0..6");
  if (!a || (a->n_rows == 0 && a->n_retrieval == 0)) return pb_set_error(PB_ERR_FORMAT, "table: no result records");
  pb_strbuf b = {0};
  int oom = 0;
  /* the GLUE tables over the GLUE rows; the retrieval table (with the main one) over retrieval
   * records; the early-exit table (--table exits) over the GLUE rows' exit records */
  for (int k = 1; k <= 4; k++) {
    if (!(which & (k == 3 ? 1 : k == 4 ? 4 : k))) continue;
    if ((k != 3 && a->n_rows == 0) || (k == 3 && a->n_retrieval == 0)) continue;
    if (k == 3 && fmt == F_CSV && a->n_rows > 0) continue; /* csv: one table (the GLUE one when both) */
    tbl t = {0};
    t.fmt = fmt;
    if (k == 1) build_main(a, &t, digits);
    else if (k == 2) build_counters(a, &t);
    else if (k == 3) build_retrieval(a, &t, digits);
    else build_exits(a, &t, digits);
    if (!t.title) t.oom = 1;
    if (!t.oom) {
      if (b.n) pb_sb_add(&b, "\n");
      tbl_emit(&t, &b);
    }
    oom |= t.oom;
    tbl_free(&t);
  }
  char *s = pb_sb_take(&b);
  if (oom || !s) {
    free(s);
    return pb_set_error(PB_ERR_NOMEM, "table: out of memory");
  }
  *out = s;
  return PB_OK;
}

static void table_usage(FILE *f, const char *cmd) {
  fprintf(f,
          "usage: peftbench %s FILE.jsonl [FILE.jsonl ...] [options]\n"
          "Comparison table of the result records (one row per training configuration, one\n"
          "column per GLUE metric; mean ± sample std over seeds), and a second table of\n"
          "hardware counters, timings and peak memory per task and method.\n"
          "  -f, --format md|csv|latex   output format (default md)\n"
          "  -o, --out PATH              write to PATH atomically (default: stdout)\n"
          "  -t, --table main|counters|both|exits\n"
          "                              which table (default both; csv: main, one table); exits: one\n"
          "                              row per early-exit threshold (eval --exit-threshold records)\n"
          "      --digits N              decimals of the scores (default 1)\n"
          "  -h, --help                  this help\n",
          cmd);
}

int pb_cmd_table(int argc, char **argv) {
  const char *cmd = argc > 0 && argv[0] ? argv[0] : "table";
  const char *format = "md", *out = NULL, *which_s = NULL;
  int digits = 1;
  static const struct option opts[] = {{"format", required_argument, 0, 'f'},
                                       {"out", required_argument, 0, 'o'},
                                       {"table", required_argument, 0, 't'},
                                       {"digits", required_argument, 0, 'd'},
                                       {"help", no_argument, 0, 'h'},
                                       {0, 0, 0, 0}};
  optind = 0; /* full re-initialisation (glibc): the command may run more than once */
  opterr = 0;
  int c;
  while ((c = getopt_long(argc, argv, ":f:o:t:h", opts, NULL)) != -1) {
    switch (c) {
      case 'f': format = optarg; break;
      case 'o': out = optarg; break;
      case 't': which_s = optarg; break;
      case 'd': {
        char *end = NULL;
        long v = strtol(optarg, &end, 10);
        if (!*optarg || *end || v < 0 || v > 6) {
          fprintf(stderr, "peftbench %s: --digits must be an integer 0..6, not '%s'\n", cmd, optarg);
          return 2;
        }
        digits = (int)v;
        break;
      }
      case 'h': table_usage(stdout, cmd); return 0;
      case ':':
        fprintf(stderr, "peftbench %s: option '%s' needs a value (see --help)\n", cmd, argv[optind - 1]);
        return 2;
      default: {
        char shortopt[3] = {'-', (char)optopt, 0};
        fprintf(stderr, "peftbench %s: unknown option '%s' (see --help)\n", cmd,
                optopt && optopt != '?' ? shortopt : argv[optind - 1]);
        return 2;
      }
    }
  }
  int fmt_ok = !strcmp(format, "md") || !strcmp(format, "markdown") || !strcmp(format, "csv") ||
               !strcmp(format, "latex") || !strcmp(format, "tex");
  if (!fmt_ok) {
    fprintf(stderr, "peftbench %s: unknown format '%s' (md, csv, latex)\n", cmd, format);
    return 2;
  }
  int which = !strcmp(format, "csv") ? 1 : 3;
  if (which_s) {
    if (!strcmp(which_s, "main")) which = 1;
    else if (!strcmp(which_s, "counters")) which = 2;
    else if (!strcmp(which_s, "both")) which = 3;
    else if (!strcmp(which_s, "exits")) which = 4;
    else {
      fprintf(stderr, "peftbench %s: unknown table '%s' (main, counters, both, exits)\n", cmd, which_s);
      return 2;
    }
    if (which == 3 && !strcmp(format, "csv")) {
      fprintf(stderr, "peftbench %s: csv holds one table: use --table main or --table counters\n", cmd);
      return 2;
    }
  }
  if (optind >= argc) {
    fprintf(stderr, "peftbench %s: no input files (usage: peftbench %s FILE.jsonl ... [--format md|csv|latex])\n",
            cmd, cmd);
    return 2;
  }
  char who[64];
  snprintf(who, sizeof who, "peftbench %s", cmd);
  pb_agg a;
  if (pb_agg_load((const char *const *)argv + optind, argc - optind, who, stderr, &a)) {
    fprintf(stderr, "%s: %s\n", who, pb_last_error());
    return 1;
  }
  char *text = NULL;
  int rc = pb_table_render(&a, format, which, digits, &text);
  pb_agg_free(&a);
  if (rc) {
    fprintf(stderr, "%s: %s\n", who, pb_last_error());
    return 1;
  }
  size_t len = strlen(text);
  if (out) {
    rc = pb_write_file_atomic(out, text, len);
    if (rc) fprintf(stderr, "%s: %s\n", who, pb_last_error());
  } else if (fwrite(text, 1, len, stdout) != len || fflush(stdout) != 0) {
    fprintf(stderr, "%s: cannot write to standard output\n", who);
    rc = 1;
  }
  free(text);
  return rc ? 1 : 0;
}
