/* `peftbench compare` (compare.h): reads prediction files or result records, runs the tests of
 * stats.h, prints a table or JSON. */
#include "harness/compare.h"

#include <getopt.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cjson/cJSON.h>

#include "util/fileio.h"
#include "util/status.h"
#include "harness/aggregate.h"
#include "harness/cli.h"
#include "harness/glue.h"
#include "harness/results.h"
#include "harness/stats.h"
#include "util/strbuf.h"

#define MAX_EXACT_SPLITS 100000.0 /* permutation test: enumerate all splits up to this many */
#define MAX_CONDS 32              /* KEY=VAL conditions per group */
#define METRIC_CHECK_TOL 1e-6     /* prediction file vs record metric (warning only) */

static const char *USAGE_TEXT =
    "usage: peftbench compare A.tsv B.tsv --task TASK [options]\n"
    "       peftbench compare RESULTS.jsonl... --a KEY=VAL[,KEY=VAL...] --b KEY=VAL... [options]\n"
    "\n"
    "  Significance of the difference B - A between two methods or configurations.\n"
    "\n"
    "  Two prediction files (written by `run`/`eval`, one per split; same examples, same gold):\n"
    "    paired bootstrap over examples: percentile CI of B - A and a two-sided p-value\n"
    "      (shifted null: p = (1 + #{|d_r - d| >= |d|}) / (R + 1)), and approximate randomisation\n"
    "      (swap each example's A/B predictions with probability 1/2: p = (1 + #{|d_r| >= |d|}) / (R + 1)).\n"
    "  Result records (JSONL): each of --a / --b selects one configuration, one record per seed:\n"
    "    mean ± std over seeds, Welch's t-test (t, Welch-Satterthwaite df, two-sided p), a\n"
    "    permutation test of the difference of means (exact over all C(n_a+n_b, n_a) splits when\n"
    "    <= 100,000, else --samples random splits; two-sided p = min(1, 2 min(#{T >= T_obs}, #{T <= T_obs}) / M)),\n"
    "    and, when both groups have prediction files for the same seeds, the two paired tests over\n"
    "    examples of the seed-averaged difference (1/k) sum_s [M(B_s) - M(A_s)] (resampling the\n"
    "    examples, the same indices for every seed).\n"
    "\n"
    "  --task TASK       GLUE task (required with prediction files; records: default the one\n"
    "                    task the selections have)\n"
    "  --metric NAME     accuracy, f1, mcc, pearson, spearman (those the task reports), or score\n"
    "                    (the task's GLUE score on the split, mean of its metrics); default: the\n"
    "                    task's main metric (CoLA mcc, MRPC/QQP f1, STS-B pearson, others accuracy)\n"
    "  --split NAME      records: the evaluation split (default: the task's first, dev or dev_matched);\n"
    "                    prediction files: only a label in the --json output\n"
    "  --a SPEC, --b SPEC  records of group A / B: KEY=VAL[,KEY=VAL...], all must hold; repeatable.\n"
    "                    KEY: a top-level field (method, method_desc, config_id, seed, ...), a key of\n"
    "                    the record's training configuration (lr, epochs, batch, ...), of train,\n"
    "                    data, method_config or backbone, or a dotted path (train.lr). Numbers\n"
    "                    compare as numbers at 6 significant digits, as `table` groups them\n"
    "                    (lr=5e-4 matches 0.0005 and a float32-stored 0.00050000002).\n"
    "                    method_desc=... takes the rest of the SPEC (its value has commas).\n"
    "  --samples N       bootstrap resamples, randomisation rounds, Monte Carlo splits (10000)\n"
    "  --seed N          random streams: bootstrap N, randomisation N+1, permutation N+2 (0)\n"
    "  --alpha X         CI level 1 - X and the 'significant' flags (0.05)\n"
    "  --no-examples     records: skip the tests over prediction files\n"
    "  --json            one JSON object on stdout, numbers %.17g\n"
    "\n"
    "  Exit status: 0 when the tests ran (significant or not); 1 on bad input (one line naming\n"
    "  the file); 2 on usage errors.\n";

typedef struct {
  const pb_task *task;
  const char *metric; /* NULL until resolved */
  const char *split;
  long samples;
  unsigned long long seed;
  double alpha;
  int json, no_examples;
} opts_t;

/* ---------------------------------------------------------------- JSON output helpers */

/* a number printed with %.17g (null when not finite) */
static void jnum(cJSON *o, const char *key, double v) {
  if (!isfinite(v)) {
    cJSON_AddNullToObject(o, key);
    return;
  }
  char buf[40];
  snprintf(buf, sizeof buf, "%.17g", v);
  cJSON_AddItemToObject(o, key, cJSON_CreateRaw(buf));
}

static void jnum_arr(cJSON *a, double v) {
  char buf[40];
  if (!isfinite(v)) {
    cJSON_AddItemToArray(a, cJSON_CreateNull());
    return;
  }
  snprintf(buf, sizeof buf, "%.17g", v);
  cJSON_AddItemToArray(a, cJSON_CreateRaw(buf));
}

static void json_print(cJSON *o) {
  char *s = cJSON_Print(o);
  if (s) {
    puts(s);
    free(s);
  }
}

static const char *sig_word(double p, double alpha) {
  if (!isfinite(p)) return "undefined";
  return p < alpha ? "significant" : "not significant";
}

/* ---------------------------------------------------------------- prediction files */

typedef struct {
  char *path;      /* owned copy */
  char *text;      /* the file, fields NUL-terminated in place (owned) */
  int n;           /* rows */
  int *index;      /* [n] index column */
  const char **gold_s; /* [n] gold column as written (into text) */
  int *gold, *pred;    /* [n] class ids (classification) */
  float *gold_f, *pred_f; /* [n] scores (regression) */
} pred_file;

static void pred_free(pred_file *p) {
  free(p->path), free(p->text), free(p->index), free(p->gold_s), free(p->gold), free(p->pred);
  free(p->gold_f), free(p->pred_f);
  memset(p, 0, sizeof *p);
}

/* splits s at '\t' into f[cap]; returns the number of fields (may exceed cap: counted only) */
static int split_tabs(char *s, char **f, int cap) {
  int n = 0;
  for (;;) {
    char *t = strchr(s, '\t');
    if (n < cap) f[n] = s;
    n++;
    if (!t) break;
    *t = 0;
    s = t + 1;
  }
  return n;
}

static int label_id(const pb_task *t, const char *s) {
  for (int k = 0; k < t->num_labels; k++)
    if (t->labels[k] && strcmp(t->labels[k], s) == 0) return k;
  return -1;
}

static int parse_float(const char *s, float *out) {
  char *end;
  if (!*s) return 0;
  float v = strtof(s, &end);
  if (*end || !isfinite(v)) return 0;
  *out = v;
  return 1;
}

/* Reads a prediction file of task t (harness/predictions.h layout). Every row needs a gold
 * value. Errors: "path:LINE: problem". */
static int pred_read(const char *path, const pb_task *t, pred_file *p) {
  memset(p, 0, sizeof *p);
  size_t len;
  int rc = pb_read_file(path, &p->text, &len);
  if (rc) return rc;
  p->path = strdup(path);
  const int reg = t->is_regression, ncol = reg ? 3 : 3 + t->num_labels;
  /* count lines for the allocations */
  size_t lines = 1;
  for (size_t i = 0; i < len; i++) lines += p->text[i] == '\n';
  p->index = malloc(lines * sizeof *p->index);
  p->gold_s = malloc(lines * sizeof *p->gold_s);
  p->gold = malloc(lines * sizeof *p->gold), p->pred = malloc(lines * sizeof *p->pred);
  p->gold_f = malloc(lines * sizeof *p->gold_f), p->pred_f = malloc(lines * sizeof *p->pred_f);
  if (!p->path || !p->index || !p->gold_s || !p->gold || !p->pred || !p->gold_f || !p->pred_f)
    return pb_set_error(PB_ERR_NOMEM, "%s: out of memory", path);
  char *s = p->text;
  if ((unsigned char)s[0] == 0xEF && (unsigned char)s[1] == 0xBB && (unsigned char)s[2] == 0xBF) s += 3;
  int line = 0, blank_at = 0;
  char *f[8];
  while (s && *s) {
    char *nl = strchr(s, '\n');
    if (nl) *nl = 0;
    line++;
    size_t l = strlen(s);
    if (l && s[l - 1] == '\r') s[--l] = 0;
    char *row = s;
    s = nl ? nl + 1 : NULL;
    if (!*row) {
      if (!blank_at) blank_at = line;
      continue;
    }
    if (blank_at) return pb_set_error(PB_ERR_FORMAT, "%s:%d: blank line inside the file", path, blank_at);
    int nf = split_tabs(row, f, 8);
    if (line == 1) {
      int ok = nf == ncol && !strcmp(f[0], "index") && !strcmp(f[1], "gold") && !strcmp(f[2], "prediction");
      for (int k = 0; ok && !reg && k < t->num_labels; k++)
        ok = !strncmp(f[3 + k], "logit_", 6) && !strcmp(f[3 + k] + 6, t->labels[k]);
      if (!ok) {
        char want[256];
        int o = snprintf(want, sizeof want, "index, gold, prediction");
        for (int k = 0; !reg && k < t->num_labels && o < (int)sizeof want; k++)
          o += snprintf(want + o, sizeof want - (size_t)o, ", logit_%s", t->labels[k]);
        return pb_set_error(PB_ERR_FORMAT, "%s:1: not a %s prediction file (header must be %s, tab-separated)", path,
                            t->name, want);
      }
      continue;
    }
    if (nf != ncol)
      return pb_set_error(PB_ERR_FORMAT, "%s:%d: %d columns, expected %d", path, line, nf, ncol);
    int i = p->n;
    char *end;
    long ix = strtol(f[0], &end, 10);
    if (!*f[0] || *end || ix < 0 || ix > 2147483647L)
      return pb_set_error(PB_ERR_FORMAT, "%s:%d: index '%s' is not a non-negative integer", path, line, f[0]);
    p->index[i] = (int)ix;
    p->gold_s[i] = f[1];
    if (!*f[1])
      return pb_set_error(PB_ERR_FORMAT, "%s:%d: no gold value (predictions of an unlabelled split cannot be compared)",
                          path, line);
    if (reg) {
      if (!parse_float(f[1], &p->gold_f[i]))
        return pb_set_error(PB_ERR_FORMAT, "%s:%d: gold '%s' is not a finite number", path, line, f[1]);
      if (!parse_float(f[2], &p->pred_f[i]))
        return pb_set_error(PB_ERR_FORMAT, "%s:%d: prediction '%s' is not a finite number", path, line, f[2]);
    } else {
      if ((p->gold[i] = label_id(t, f[1])) < 0)
        return pb_set_error(PB_ERR_FORMAT, "%s:%d: gold '%s' is not a %s label", path, line, f[1], t->name);
      if ((p->pred[i] = label_id(t, f[2])) < 0)
        return pb_set_error(PB_ERR_FORMAT, "%s:%d: prediction '%s' is not a %s label", path, line, f[2], t->name);
    }
    p->n++;
  }
  if (line == 0) return pb_set_error(PB_ERR_FORMAT, "%s: empty file (no header)", path);
  if (p->n == 0) return pb_set_error(PB_ERR_FORMAT, "%s: no examples after the header", path);
  return PB_OK;
}

/* Both files must list the same examples (index) with the same gold values, row by row. */
static int pred_same_examples(const pred_file *a, const pred_file *b) {
  if (a->n != b->n)
    return pb_set_error(PB_ERR_FORMAT, "%s and %s: not predictions of the same examples (%d vs %d rows)", a->path,
                        b->path, a->n, b->n);
  for (int i = 0; i < a->n; i++) {
    if (a->index[i] != b->index[i])
      return pb_set_error(PB_ERR_FORMAT, "%s and %s: not predictions of the same examples (data row %d: index %d vs %d)",
                          a->path, b->path, i + 1, a->index[i], b->index[i]);
    if (strcmp(a->gold_s[i], b->gold_s[i]) != 0)
      return pb_set_error(PB_ERR_FORMAT, "%s and %s: gold values differ (index %d: '%s' vs '%s')", a->path, b->path,
                          a->index[i], a->gold_s[i], b->gold_s[i]);
  }
  return PB_OK;
}

/* Runs the bootstrap and the randomisation test over k matched pairs of files; adds the
 * results to obj (JSON) and prints them (text) with the given indent. */
typedef struct {
  double a, b, diff;
  pb_boot_result boot;
  pb_ar_result ar;
} example_tests;

static int run_example_tests(const opts_t *o, pred_file *fa, pred_file *fb, int k, example_tests *r) {
  const pb_task *t = o->task;
  const int **pa = calloc((size_t)k, sizeof *pa), **pb = calloc((size_t)k, sizeof *pb);
  const float **qa = calloc((size_t)k, sizeof *qa), **qb = calloc((size_t)k, sizeof *qb);
  if (!pa || !pb || !qa || !qb) {
    free(pa), free(pb), free(qa), free(qb);
    return pb_set_error(PB_ERR_NOMEM, "out of memory");
  }
  for (int s = 0; s < k; s++) {
    pa[s] = fa[s].pred, pb[s] = fb[s].pred;
    qa[s] = fa[s].pred_f, qb[s] = fb[s].pred_f;
  }
  pb_paired d = {.task = t, .metric = o->metric, .n = fa[0].n, .k = k, .gold = fa[0].gold,
                 .pred_a = pa, .pred_b = pb, .gold_f = fa[0].gold_f, .pred_fa = qa, .pred_fb = qb};
  int rc = pb_paired_bootstrap(&d, o->samples, o->seed, o->alpha, &r->boot);
  if (!rc) rc = pb_paired_randomization(&d, o->samples, o->seed + 1, &r->ar);
  r->a = r->boot.a, r->b = r->boot.b, r->diff = r->boot.diff;
  free(pa), free(pb), free(qa), free(qb);
  return rc;
}

static cJSON *boot_json(const pb_boot_result *b, double alpha) {
  cJSON *o = cJSON_CreateObject();
  cJSON_AddNumberToObject(o, "samples", (double)b->samples);
  jnum(o, "confidence", b->confidence);
  jnum(o, "ci_low", b->ci_low);
  jnum(o, "ci_high", b->ci_high);
  jnum(o, "mean", b->mean);
  jnum(o, "std", b->std);
  jnum(o, "count", b->count);
  jnum(o, "p_value", b->p);
  cJSON_AddStringToObject(o, "p_definition", "(1 + #{|d_r - d| >= |d|}) / (R + 1), two-sided shifted bootstrap");
  cJSON_AddBoolToObject(o, "significant", b->p < alpha);
  return o;
}

static cJSON *ar_json(const pb_ar_result *a, double alpha) {
  cJSON *o = cJSON_CreateObject();
  cJSON_AddNumberToObject(o, "samples", (double)a->samples);
  jnum(o, "count", a->count);
  jnum(o, "p_value", a->p);
  cJSON_AddStringToObject(o, "p_definition", "(1 + #{|d_r| >= |d|}) / (R + 1), two-sided");
  cJSON_AddBoolToObject(o, "significant", a->p < alpha);
  return o;
}

static void print_example_tests(const opts_t *o, const example_tests *r, const char *ind) {
  printf("%spaired bootstrap       %g%% CI [%+.4f, %+.4f]   p = %.4g   (%ld resamples, seed %llu)\n", ind,
         100.0 * (1.0 - o->alpha), r->boot.ci_low, r->boot.ci_high, r->boot.p, r->boot.samples, o->seed);
  printf("%sapprox. randomisation                              p = %.4g   (%ld rounds, seed %llu)\n", ind, r->ar.p,
         r->ar.samples, o->seed + 1);
  printf("%sat alpha = %g: %s (bootstrap), %s (randomisation)\n", ind, o->alpha, sig_word(r->boot.p, o->alpha),
         sig_word(r->ar.p, o->alpha));
}

static const char *default_metric(const pb_task *t) { return pb_metric_name(t->metrics[0]); }

static int metric_ok(const pb_task *t, const char *m) {
  if (!strcmp(m, "score")) return 1;
  for (int k = 0; k < t->n_metrics; k++)
    if (!strcmp(pb_metric_name(t->metrics[k]), m)) return 1;
  return 0;
}

/* ---------------------------------------------------------------- mode 1: two files */

static int compare_files(const opts_t *o, const char *pa, const char *pb_path) {
  pred_file a, b;
  memset(&b, 0, sizeof b);
  int rc = pred_read(pa, o->task, &a);
  if (!rc) rc = pred_read(pb_path, o->task, &b);
  if (!rc) rc = pred_same_examples(&a, &b);
  example_tests r;
  if (!rc) rc = run_example_tests(o, &a, &b, 1, &r);
  if (rc) {
    fprintf(stderr, "peftbench compare: %s\n", pb_last_error());
    pred_free(&a), pred_free(&b);
    return 1;
  }
  if (o->json) {
    cJSON *j = cJSON_CreateObject();
    cJSON_AddStringToObject(j, "mode", "examples");
    cJSON_AddStringToObject(j, "task", o->task->name);
    cJSON_AddStringToObject(j, "metric", o->metric);
    if (o->split) cJSON_AddStringToObject(j, "split", o->split);
    else cJSON_AddNullToObject(j, "split");
    cJSON_AddNumberToObject(j, "n_examples", a.n);
    cJSON *ja = cJSON_AddObjectToObject(j, "a"), *jb = cJSON_AddObjectToObject(j, "b");
    cJSON_AddStringToObject(ja, "file", a.path);
    jnum(ja, "value", r.a);
    cJSON_AddStringToObject(jb, "file", b.path);
    jnum(jb, "value", r.b);
    jnum(j, "difference", r.diff);
    jnum(j, "alpha", o->alpha);
    cJSON_AddNumberToObject(j, "seed", (double)o->seed);
    cJSON_AddItemToObject(j, "bootstrap", boot_json(&r.boot, o->alpha));
    cJSON_AddItemToObject(j, "randomization", ar_json(&r.ar, o->alpha));
    json_print(j);
    cJSON_Delete(j);
  } else {
    printf("peftbench compare: %s %s over %d paired examples, difference B - A\n", o->task->name, o->metric, a.n);
    printf("  %-6s %8.4f   %s\n", "A", r.a, a.path);
    printf("  %-6s %8.4f   %s\n", "B", r.b, b.path);
    printf("  %-6s %+8.4f\n", "B - A", r.diff);
    print_example_tests(o, &r, "  ");
  }
  pred_free(&a), pred_free(&b);
  return 0;
}

/* ---------------------------------------------------------------- mode 2: result records */

typedef struct {
  char key[128];
  char val[512];
} cond_t;

typedef struct {
  const char *name;    /* "A" / "B" */
  char spec[1024];     /* the conditions as given, joined with ',' */
  int n_cond;
  cond_t cond[MAX_CONDS];
  int n;               /* records selected */
  const cJSON **recs;  /* [n] sorted by seed */
  int *file;           /* [n] input file index of each record */
  double *seed;        /* [n] */
  double *value;       /* [n] the metric of each record */
  double mean, std;
} group_t;

/* Parses "K=V,K=V" into g (method_desc=... takes the rest). Returns 0 on a syntax error. */
static int parse_spec(const char *who, const char *spec, group_t *g) {
  size_t used = strlen(g->spec);
  snprintf(g->spec + used, sizeof g->spec - used, "%s%s", used ? "," : "", spec);
  const char *p = spec;
  while (*p) {
    const char *eq = strchr(p, '=');
    const char *comma = strchr(p, ',');
    if (!eq || (comma && comma < eq) || eq == p) {
      fprintf(stderr, "peftbench compare: %s '%s': expected KEY=VAL[,KEY=VAL...]\n", who, spec);
      return 0;
    }
    if (g->n_cond >= MAX_CONDS) {
      fprintf(stderr, "peftbench compare: %s: more than %d conditions\n", who, MAX_CONDS);
      return 0;
    }
    cond_t *c = &g->cond[g->n_cond++];
    size_t kl = (size_t)(eq - p);
    if (kl >= sizeof c->key) kl = sizeof c->key - 1;
    memcpy(c->key, p, kl);
    c->key[kl] = 0;
    const char *v = eq + 1, *ve;
    if (!strcmp(c->key, "method_desc")) ve = v + strlen(v);
    else ve = strchr(v, ',') ? strchr(v, ',') : v + strlen(v);
    size_t vl = (size_t)(ve - v);
    if (vl >= sizeof c->val) vl = sizeof c->val - 1;
    memcpy(c->val, v, vl);
    c->val[vl] = 0;
    p = *ve ? ve + 1 : ve;
    if (*ve && !*p) {
      fprintf(stderr, "peftbench compare: %s '%s': trailing ','\n", who, spec);
      return 0;
    }
  }
  if (!g->n_cond) {
    fprintf(stderr, "peftbench compare: %s: empty selection\n", who);
    return 0;
  }
  return 1;
}

/* The record's training configuration: pb_record_config when the records carry or imply one
 * (aggregate.h). *owned is set when the caller must free it. */
static const cJSON *rec_config(const cJSON *rec, cJSON **owned) {
  *owned = NULL;
  cJSON *c = NULL;
  if (pb_record_config(rec, &c) == PB_OK && c) {
    *owned = c;
    return c;
  }
  return NULL;
}

static const cJSON *rec_lookup(const cJSON *rec, const cJSON *cfg, const char *key) {
  const cJSON *x;
  if (strchr(key, '.')) { /* dotted path from the record */
    char buf[128];
    snprintf(buf, sizeof buf, "%s", key);
    x = rec;
    for (char *t = strtok(buf, "."); t && x; t = strtok(NULL, "."))
      x = cJSON_IsObject(x) ? cJSON_GetObjectItemCaseSensitive(x, t) : NULL;
    return x;
  }
  x = cJSON_GetObjectItemCaseSensitive(rec, key);
  if (x && !cJSON_IsObject(x) && !cJSON_IsArray(x)) return x;
  if (cfg && (x = cJSON_GetObjectItemCaseSensitive(cfg, key))) return x;
  static const char *const sub[] = {"train", "data", "method_config", "backbone"};
  for (size_t i = 0; i < sizeof sub / sizeof *sub; i++) {
    const cJSON *o = cJSON_GetObjectItemCaseSensitive(rec, sub[i]);
    if (cJSON_IsObject(o) && (x = cJSON_GetObjectItemCaseSensitive(o, key))) return x;
  }
  return NULL;
}

static int parse_double_full(const char *s, double *v) {
  char *end;
  if (!*s) return 0;
  *v = strtod(s, &end);
  return !*end;
}

/* numbers compare as the configuration rule does (aggregate.h: integers exactly, other
 * numbers at 6 significant digits, so lr=5e-4 matches a float32-stored 0.00050000002) */
static int num_equal(double a, double b) {
  cJSON *x = cJSON_CreateNumber(a), *y = cJSON_CreateNumber(b);
  char *s = x ? pb_config_value_text(x) : NULL, *t = y ? pb_config_value_text(y) : NULL;
  int eq = s && t && !strcmp(s, t);
  free(s), free(t);
  cJSON_Delete(x), cJSON_Delete(y);
  return eq;
}

static int value_matches(const cJSON *x, const char *val) {
  double want, have;
  if (!x) return 0;
  if (cJSON_IsNumber(x)) return parse_double_full(val, &want) && num_equal(want, x->valuedouble);
  if (cJSON_IsBool(x))
    return cJSON_IsTrue(x) ? (!strcmp(val, "true") || !strcmp(val, "1")) : (!strcmp(val, "false") || !strcmp(val, "0"));
  if (cJSON_IsString(x) && x->valuestring) {
    if (!strcmp(x->valuestring, val)) return 1;
    return parse_double_full(val, &want) && parse_double_full(x->valuestring, &have) && num_equal(want, have);
  }
  if (cJSON_IsNull(x)) return !strcmp(val, "null");
  return 0;
}

static int rec_matches(const cJSON *rec, const group_t *g) {
  cJSON *owned;
  const cJSON *cfg = rec_config(rec, &owned);
  int ok = 1;
  for (int i = 0; ok && i < g->n_cond; i++) ok = value_matches(rec_lookup(rec, cfg, g->cond[i].key), g->cond[i].val);
  cJSON_Delete(owned);
  return ok;
}

/* The metric of one record on the split: metrics.splits.<split>.<metric>, or for "score" the
 * mean of the task's metrics there. Returns 1 and sets *v, 0 when missing. */
static int rec_metric(const cJSON *rec, const pb_task *t, const char *split, const char *metric, double *v) {
  if (strcmp(metric, "score") != 0) return pb_json_num(rec, v, "metrics", "splits", split, metric, NULL);
  double s = 0, x;
  for (int k = 0; k < t->n_metrics; k++) {
    if (!pb_json_num(rec, &x, "metrics", "splits", split, pb_metric_name(t->metrics[k]), NULL)) return 0;
    s += x;
  }
  *v = s / t->n_metrics;
  return 1;
}

static void rec_describe(const cJSON *rec, char *buf, size_t n) {
  double seed = -1;
  pb_json_num(rec, &seed, "seed", NULL);
  const char *m = pb_json_str(rec, "method"), *d = pb_json_str(rec, "method_desc");
  snprintf(buf, n, "%s%s%s%s, seed %.0f", m ? m : "?", d && *d ? " (" : "", d && *d ? d : "", d && *d ? ")" : "",
           seed);
}

typedef struct {
  int n_files;
  char **files;   /* [n_files] (argv strings) */
  cJSON **arrs;   /* [n_files] records of each file (owned) */
} record_set;

static void group_free(group_t *g) {
  free(g->recs), free(g->file), free(g->seed), free(g->value);
  g->recs = NULL, g->file = NULL, g->seed = NULL, g->value = NULL;
}

/* Selects g's records of task t from rs; checks one configuration, distinct seeds, metric
 * present. Returns 0, or 1 after printing one error line. */
static int group_select(const opts_t *o, const record_set *rs, group_t *g) {
  const pb_task *t = o->task;
  int cap = 0;
  for (int f = 0; f < rs->n_files; f++) cap += cJSON_GetArraySize(rs->arrs[f]);
  g->recs = calloc((size_t)cap + 1, sizeof *g->recs);
  g->file = calloc((size_t)cap + 1, sizeof *g->file);
  g->seed = calloc((size_t)cap + 1, sizeof *g->seed);
  g->value = calloc((size_t)cap + 1, sizeof *g->value);
  if (!g->recs || !g->file || !g->seed || !g->value) {
    fprintf(stderr, "peftbench compare: out of memory\n");
    return 1;
  }
  for (int f = 0; f < rs->n_files; f++) {
    const cJSON *rec;
    cJSON_ArrayForEach(rec, rs->arrs[f]) {
      const char *tn = pb_json_str(rec, "task");
      if (!tn || pb_task_find(tn) != t || !rec_matches(rec, g)) continue;
      g->recs[g->n] = rec;
      g->file[g->n] = f;
      g->n++;
    }
  }
  if (g->n == 0) {
    fprintf(stderr, "peftbench compare: --%c %s: no %s record matches in %s%s\n", g->name[0] + 32, g->spec, t->name,
            rs->files[0], rs->n_files > 1 ? " ..." : "");
    return 1;
  }
  char d1[256], d2[256];
  for (int i = 1; i < g->n; i++) {
    if (!pb_record_same_config(g->recs[0], g->recs[i])) {
      const char *c1 = pb_json_str(g->recs[0], "config_id"), *c2 = pb_json_str(g->recs[i], "config_id");
      rec_describe(g->recs[0], d1, sizeof d1);
      rec_describe(g->recs[i], d2, sizeof d2);
      fprintf(stderr,
              "peftbench compare: --%c %s selects several configurations (%s in %s [config %s] and %s in %s [config %s]): "
              "narrow it, e.g. with config_id=...\n",
              g->name[0] + 32, g->spec, d1, rs->files[g->file[0]], c1 ? c1 : "?", d2, rs->files[g->file[i]],
              c2 ? c2 : "?");
      return 1;
    }
  }
  for (int i = 0; i < g->n; i++) {
    if (!pb_json_num(g->recs[i], &g->seed[i], "seed", NULL)) {
      rec_describe(g->recs[i], d1, sizeof d1);
      fprintf(stderr, "peftbench compare: %s: record %s has no numeric seed\n", rs->files[g->file[i]], d1);
      return 1;
    }
    if (!rec_metric(g->recs[i], t, o->split, o->metric, &g->value[i])) {
      rec_describe(g->recs[i], d1, sizeof d1);
      fprintf(stderr, "peftbench compare: %s: record %s has no metrics.splits.%s.%s\n", rs->files[g->file[i]], d1,
              o->split, strcmp(o->metric, "score") ? o->metric : "<the task's metrics>");
      return 1;
    }
  }
  /* sort by seed (insertion sort: a handful of records) and refuse repeated seeds */
  for (int i = 1; i < g->n; i++)
    for (int j = i; j > 0 && g->seed[j] < g->seed[j - 1]; j--) {
      const cJSON *r = g->recs[j];
      g->recs[j] = g->recs[j - 1], g->recs[j - 1] = r;
      int f = g->file[j];
      g->file[j] = g->file[j - 1], g->file[j - 1] = f;
      double x = g->seed[j];
      g->seed[j] = g->seed[j - 1], g->seed[j - 1] = x;
      x = g->value[j];
      g->value[j] = g->value[j - 1], g->value[j - 1] = x;
    }
  for (int i = 1; i < g->n; i++)
    if (g->seed[i] == g->seed[i - 1]) {
      fprintf(stderr,
              "peftbench compare: --%c %s: two records of seed %.0f (in %s and %s): one record per seed and configuration\n",
              g->name[0] + 32, g->spec, g->seed[i], rs->files[g->file[i - 1]], rs->files[g->file[i]]);
      return 1;
    }
  pb_mean_std(g->value, g->n, &g->mean, &g->std);
  return 0;
}

/* path of a record's prediction file: absolute as is; relative: as is when it exists (the
 * run's working directory), else beside the JSONL file */
static void resolve_pred_path(const char *p, const char *jsonl, char *out, size_t n) {
  if (p[0] == '/' || access(p, F_OK) == 0) {
    snprintf(out, n, "%s", p);
    return;
  }
  const char *slash = strrchr(jsonl, '/');
  if (!slash) {
    snprintf(out, n, "%s", p);
    return;
  }
  snprintf(out, n, "%.*s/%s", (int)(slash - jsonl), jsonl, p);
}

static const char *rec_pred_path(const cJSON *rec, const char *split) {
  const cJSON *pr = cJSON_GetObjectItemCaseSensitive(rec, "predictions");
  return pb_json_str(pr, split);
}

static cJSON *group_json(const group_t *g, const record_set *rs) {
  cJSON *o = cJSON_CreateObject();
  cJSON_AddStringToObject(o, "select", g->spec);
  const char *m = pb_json_str(g->recs[0], "method"), *d = pb_json_str(g->recs[0], "method_desc"),
             *c = pb_json_str(g->recs[0], "config_id");
  if (m) cJSON_AddStringToObject(o, "method", m);
  else cJSON_AddNullToObject(o, "method");
  if (d) cJSON_AddStringToObject(o, "method_desc", d);
  else cJSON_AddNullToObject(o, "method_desc");
  if (c) cJSON_AddStringToObject(o, "config_id", c);
  else cJSON_AddNullToObject(o, "config_id");
  cJSON_AddNumberToObject(o, "n", g->n);
  cJSON *s = cJSON_AddArrayToObject(o, "seeds"), *v = cJSON_AddArrayToObject(o, "values");
  cJSON *f = cJSON_AddArrayToObject(o, "files");
  for (int i = 0; i < g->n; i++) {
    cJSON_AddItemToArray(s, cJSON_CreateNumber(g->seed[i]));
    jnum_arr(v, g->value[i]);
    cJSON_AddItemToArray(f, cJSON_CreateString(rs->files[g->file[i]]));
  }
  jnum(o, "mean", g->mean);
  jnum(o, "std", g->std);
  return o;
}

static void seeds_text(const group_t *g, const int *use, char *buf, size_t n) {
  size_t o = 0;
  buf[0] = 0;
  for (int i = 0; i < g->n && o < n; i++)
    if (!use || use[i]) o += (size_t)snprintf(buf + o, n - o, "%s%.0f", o ? "," : "", g->seed[i]);
}

/* The example-level tests over the seeds both groups have prediction files for.
 * Returns 0 (ran, or *note says why not), or 1 after printing one error line. */
static int group_examples(const opts_t *o, const record_set *rs, const group_t *A, const group_t *B,
                          int *k_out, double *seeds_out, example_tests *r, int *n_ex, char *note, size_t note_n,
                          cJSON **files_json) {
  *k_out = 0;
  note[0] = 0;
  int cap = A->n < B->n ? A->n : B->n, k = 0;
  int *ia = calloc((size_t)cap + 1, sizeof *ia), *ib = calloc((size_t)cap + 1, sizeof *ib);
  pred_file *fa = calloc((size_t)cap + 1, sizeof *fa), *fb = calloc((size_t)cap + 1, sizeof *fb);
  int ret = 0, missing = 0;
  if (!ia || !ib || !fa || !fb) {
    fprintf(stderr, "peftbench compare: out of memory\n");
    ret = 1;
    goto done;
  }
  for (int i = 0; i < A->n; i++)
    for (int j = 0; j < B->n; j++) {
      if (A->seed[i] != B->seed[j]) continue;
      if (rec_pred_path(A->recs[i], o->split) && rec_pred_path(B->recs[j], o->split)) {
        ia[k] = i, ib[k] = j;
        seeds_out[k] = A->seed[i];
        k++;
      } else {
        missing++;
      }
    }
  if (k == 0) {
    snprintf(note, note_n, "%s", missing ? "no seed has prediction files for the split in both groups"
                                         : "the groups have no seed in common");
    goto done;
  }
  for (int s = 0; s < k; s++) {
    char path[2048];
    for (int side = 0; side < 2; side++) {
      const group_t *g = side ? B : A;
      int i = side ? ib[s] : ia[s];
      resolve_pred_path(rec_pred_path(g->recs[i], o->split), rs->files[g->file[i]], path, sizeof path);
      pred_file *pf = side ? &fb[s] : &fa[s];
      int rc = pred_read(path, o->task, pf);
      if (!rc) rc = pred_same_examples(&fa[0], pf);
      if (rc) {
        fprintf(stderr, "peftbench compare: %s (prediction file of a record in %s; --no-examples skips these tests)\n",
                pb_last_error(), rs->files[g->file[i]]);
        ret = 1;
        goto done;
      }
      /* the file must be that record's: same metric as the record reports */
      double v;
      if (!pb_stats_metric(o->task, o->metric, pf->pred, pf->gold, pf->pred_f, pf->gold_f, pf->n, &v) &&
          fabs(v - g->value[i]) > METRIC_CHECK_TOL)
        fprintf(stderr, "peftbench compare: warning: %s: %s %.6f from the predictions, %.6f in its record (%s)\n", path,
                o->metric, v, g->value[i], rs->files[g->file[i]]);
    }
  }
  if (run_example_tests(o, fa, fb, k, r)) {
    fprintf(stderr, "peftbench compare: %s\n", pb_last_error());
    ret = 1;
    goto done;
  }
  *k_out = k;
  *n_ex = fa[0].n;
  if (missing) snprintf(note, note_n, "%d matched seed(s) lack prediction files and were left out", missing);
  *files_json = cJSON_CreateObject();
  cJSON *ja = cJSON_AddArrayToObject(*files_json, "a"), *jb = cJSON_AddArrayToObject(*files_json, "b");
  for (int s = 0; s < k; s++) {
    cJSON_AddItemToArray(ja, cJSON_CreateString(fa[s].path));
    cJSON_AddItemToArray(jb, cJSON_CreateString(fb[s].path));
  }
done:
  if (fa)
    for (int s = 0; s <= cap; s++) pred_free(&fa[s]);
  if (fb)
    for (int s = 0; s <= cap; s++) pred_free(&fb[s]);
  free(fa), free(fb), free(ia), free(ib);
  return ret;
}

static int compare_records(opts_t *o, int n_files, char **files, group_t *A, group_t *B) {
  record_set rs = {n_files, files, calloc((size_t)n_files, sizeof(cJSON *))};
  int ret = 1;
  if (!rs.arrs) {
    fprintf(stderr, "peftbench compare: out of memory\n");
    return 1;
  }
  for (int f = 0; f < n_files; f++) {
    int bad = 0;
    if (pb_results_read(files[f], &rs.arrs[f], &bad)) {
      fprintf(stderr, "peftbench compare: %s\n", pb_last_error());
      goto done;
    }
    if (bad) fprintf(stderr, "peftbench compare: warning: %s: skipped %d line(s) that are not JSON records\n", files[f], bad);
  }
  if (!o->task) { /* the one task of A's records */
    const pb_task *found = NULL;
    for (int f = 0; f < n_files; f++) {
      const cJSON *rec;
      cJSON_ArrayForEach(rec, rs.arrs[f]) {
        const char *tn = pb_json_str(rec, "task");
        const pb_task *t = tn ? pb_task_find(tn) : NULL;
        if (!t || !rec_matches(rec, A)) continue;
        if (found && t != found) {
          fprintf(stderr, "peftbench compare: --a %s selects records of several tasks (%s, %s): give --task\n", A->spec,
                  found->name, t->name);
          ret = 2;
          goto done;
        }
        found = t;
      }
    }
    if (!found) {
      fprintf(stderr, "peftbench compare: --a %s: no record matches in %s%s\n", A->spec, files[0], n_files > 1 ? " ..." : "");
      goto done;
    }
    o->task = found;
  }
  if (!o->metric) o->metric = default_metric(o->task);
  if (!metric_ok(o->task, o->metric)) {
    fprintf(stderr, "peftbench compare: task %s does not report metric '%s'\n", o->task->name, o->metric);
    ret = 2;
    goto done;
  }
  if (!o->split) o->split = o->task->eval_splits[0];
  if (group_select(o, &rs, A) || group_select(o, &rs, B)) goto done;

  pb_welch_result w;
  pb_perm_result pm;
  if (pb_welch(A->value, A->n, B->value, B->n, &w) ||
      pb_perm_test(A->value, A->n, B->value, B->n, MAX_EXACT_SPLITS, o->samples, o->seed + 2, &pm)) {
    fprintf(stderr, "peftbench compare: %s\n", pb_last_error());
    goto done;
  }
  const char *welch_note = NULL;
  if (A->n < 2 || B->n < 2) welch_note = "needs at least 2 seeds per group";
  else if (!isfinite(w.t)) welch_note = "both groups have zero variance";

  int k = 0, n_ex = 0;
  double *seeds = calloc((size_t)(A->n < B->n ? A->n : B->n) + 1, sizeof *seeds);
  example_tests ex;
  char note[256] = "";
  cJSON *exfiles = NULL;
  if (!seeds) {
    fprintf(stderr, "peftbench compare: out of memory\n");
    goto done;
  }
  if (o->no_examples) snprintf(note, sizeof note, "skipped (--no-examples)");
  else if (group_examples(o, &rs, A, B, &k, seeds, &ex, &n_ex, note, sizeof note, &exfiles)) {
    free(seeds);
    goto done;
  }

  if (o->json) {
    cJSON *j = cJSON_CreateObject();
    cJSON_AddStringToObject(j, "mode", "seeds");
    cJSON_AddStringToObject(j, "task", o->task->name);
    cJSON_AddStringToObject(j, "split", o->split);
    cJSON_AddStringToObject(j, "metric", o->metric);
    jnum(j, "alpha", o->alpha);
    cJSON_AddNumberToObject(j, "seed", (double)o->seed);
    cJSON_AddItemToObject(j, "a", group_json(A, &rs));
    cJSON_AddItemToObject(j, "b", group_json(B, &rs));
    jnum(j, "difference", B->mean - A->mean);
    cJSON *jw = cJSON_AddObjectToObject(j, "welch");
    jnum(jw, "t", w.t);
    jnum(jw, "df", w.df);
    jnum(jw, "p_value", w.p);
    jnum(jw, "se", w.se);
    if (isfinite(w.p)) cJSON_AddBoolToObject(jw, "significant", w.p < o->alpha);
    else cJSON_AddNullToObject(jw, "significant");
    if (welch_note) cJSON_AddStringToObject(jw, "undefined", welch_note);
    cJSON *jp = cJSON_AddObjectToObject(j, "permutation");
    cJSON_AddBoolToObject(jp, "exact", pm.exact);
    jnum(jp, "splits", pm.splits);
    jnum(jp, "count_ge", pm.count_ge);
    jnum(jp, "count_le", pm.count_le);
    jnum(jp, "p_value", pm.p);
    cJSON_AddStringToObject(jp, "p_definition",
                            pm.exact ? "min(1, 2 min(count_ge, count_le) / splits), two-sided"
                                     : "min(1, 2 min(count_ge + 1, count_le + 1) / (splits + 1)), two-sided");
    cJSON_AddBoolToObject(jp, "significant", pm.p < o->alpha);
    if (k > 0) {
      cJSON *je = cJSON_AddObjectToObject(j, "examples");
      cJSON *js = cJSON_AddArrayToObject(je, "seeds");
      for (int s = 0; s < k; s++) cJSON_AddItemToArray(js, cJSON_CreateNumber(seeds[s]));
      cJSON_AddNumberToObject(je, "n_examples", n_ex);
      cJSON_AddItemToObject(je, "files", exfiles);
      exfiles = NULL;
      jnum(je, "a", ex.a);
      jnum(je, "b", ex.b);
      jnum(je, "difference", ex.diff);
      cJSON_AddItemToObject(je, "bootstrap", boot_json(&ex.boot, o->alpha));
      cJSON_AddItemToObject(je, "randomization", ar_json(&ex.ar, o->alpha));
      if (note[0]) cJSON_AddStringToObject(je, "note", note);
    } else {
      cJSON_AddNullToObject(j, "examples");
      cJSON_AddStringToObject(j, "examples_note", note);
    }
    json_print(j);
    cJSON_Delete(j);
  } else {
    printf("peftbench compare: %s %s on %s over seeds, difference B - A\n", o->task->name, o->metric, o->split);
    char sb[256];
    printf("  %-3s %-28s %-9s %3s  %-14s %9s %9s\n", "", "select", "config", "n", "seeds", "mean", "std");
    for (int gi = 0; gi < 2; gi++) {
      const group_t *g = gi ? B : A;
      const char *c = pb_json_str(g->recs[0], "config_id");
      seeds_text(g, NULL, sb, sizeof sb);
      printf("  %-3s %-28s %-9s %3d  %-14s %9.4f %9.4f\n", g->name, g->spec, c ? c : "-", g->n, sb, g->mean, g->std);
    }
    printf("  B - A %56s %+9.4f\n", "", B->mean - A->mean);
    if (welch_note) printf("  Welch's t-test         undefined (%s)\n", welch_note);
    else
      printf("  Welch's t-test         t = %.4f, df = %.2f, p = %.4g (two-sided): %s\n", w.t, w.df, w.p,
             sig_word(w.p, o->alpha));
    printf("  permutation test       %s over %.0f splits, p = %.4g (two-sided): %s\n",
           pm.exact ? "exact" : "Monte Carlo", pm.splits, pm.p, sig_word(pm.p, o->alpha));
    if (k > 0) {
      char ss[256];
      size_t off = 0;
      ss[0] = 0;
      for (int s = 0; s < k && off < sizeof ss; s++) off += (size_t)snprintf(ss + off, sizeof ss - off, "%s%.0f", s ? "," : "", seeds[s]);
      printf("  over examples (%d examples; seeds %s; mean over seeds of M(B_s) - M(A_s) = %+.4f)\n", n_ex, ss, ex.diff);
      print_example_tests(o, &ex, "    ");
      if (note[0]) printf("    note: %s\n", note);
    } else {
      printf("  over examples          not run: %s\n", note);
    }
    printf("  (alpha = %g)\n", o->alpha);
  }
  cJSON_Delete(exfiles);
  free(seeds);
  ret = 0;
done:
  for (int f = 0; f < n_files; f++) cJSON_Delete(rs.arrs[f]);
  free(rs.arrs);
  return ret;
}

/* ---------------------------------------------------------------- entry */

int pb_cmd_compare(int argc, char **argv) {
  enum { O_TASK = 256, O_METRIC, O_SPLIT, O_SAMPLES, O_SEED, O_ALPHA, O_A, O_B, O_JSON, O_NOEX };
  static const struct option opts[] = {{"task", required_argument, 0, O_TASK},
                                       {"metric", required_argument, 0, O_METRIC},
                                       {"split", required_argument, 0, O_SPLIT},
                                       {"samples", required_argument, 0, O_SAMPLES},
                                       {"seed", required_argument, 0, O_SEED},
                                       {"alpha", required_argument, 0, O_ALPHA},
                                       {"a", required_argument, 0, O_A},
                                       {"b", required_argument, 0, O_B},
                                       {"json", no_argument, 0, O_JSON},
                                       {"no-examples", no_argument, 0, O_NOEX},
                                       {"help", no_argument, 0, 'h'},
                                       {0, 0, 0, 0}};
  opts_t o = {.samples = 10000, .seed = 0, .alpha = 0.05};
  static group_t A, B;
  memset(&A, 0, sizeof A);
  memset(&B, 0, sizeof B);
  A.name = "A", B.name = "B";
  int have_a = 0, have_b = 0, c;
  char *end;
  optind = 0;
  opterr = 0;
  while ((c = getopt_long(argc, argv, ":h", opts, NULL)) != -1) {
    switch (c) {
      case O_TASK:
        if (!(o.task = pb_task_find(optarg))) {
          char names[128];
          pb_task_names(names, sizeof names);
          fprintf(stderr, "peftbench compare: unknown task '%s' (valid: %s)\n", optarg, names);
          return 2;
        }
        break;
      case O_METRIC: o.metric = optarg; break;
      case O_SPLIT: o.split = optarg; break;
      case O_SAMPLES: {
        long v;
        if (!pb_cli_int("--samples", optarg, 2, 10000000L, &v)) return 2;
        o.samples = v;
        break;
      }
      case O_SEED: {
        unsigned long long v = strtoull(optarg, &end, 10);
        if (!*optarg || *end || optarg[0] == '-') {
          fprintf(stderr, "peftbench compare: --seed '%s': expected a non-negative integer\n", optarg);
          return 2;
        }
        o.seed = v;
        break;
      }
      case O_ALPHA: {
        double v = strtod(optarg, &end);
        if (!*optarg || *end || !(v > 0 && v < 1)) {
          fprintf(stderr, "peftbench compare: --alpha '%s': expected a number in (0, 1)\n", optarg);
          return 2;
        }
        o.alpha = v;
        break;
      }
      case O_A:
        if (!parse_spec("--a", optarg, &A)) return 2;
        have_a = 1;
        break;
      case O_B:
        if (!parse_spec("--b", optarg, &B)) return 2;
        have_b = 1;
        break;
      case O_JSON: o.json = 1; break;
      case O_NOEX: o.no_examples = 1; break;
      case 'h': fputs(USAGE_TEXT, stdout); return 0;
      default: return pb_cli_bad_option("compare", argc, argv, opts);
    }
  }
  int npos = argc - optind;
  char **pos = argv + optind;
  if (have_a || have_b) {
    if (!(have_a && have_b)) {
      fprintf(stderr, "peftbench compare: give both --a and --b (see --help)\n");
      return 2;
    }
    if (npos < 1) {
      fprintf(stderr, "peftbench compare: no result files (usage: peftbench compare RESULTS.jsonl... --a K=V --b K=V)\n");
      return 2;
    }
    if (o.metric && o.task && !metric_ok(o.task, o.metric)) {
      fprintf(stderr, "peftbench compare: task %s does not report metric '%s'\n", o.task->name, o.metric);
      return 2;
    }
    int rc = compare_records(&o, npos, pos, &A, &B);
    group_free(&A), group_free(&B);
    return rc;
  }
  if (npos != 2) {
    fprintf(stderr,
            "peftbench compare: expected two prediction files A.tsv B.tsv, or result files with --a/--b (see --help)\n");
    return 2;
  }
  if (!o.task) {
    fprintf(stderr, "peftbench compare: --task is required with prediction files (see `peftbench tasks`)\n");
    return 2;
  }
  if (o.no_examples) {
    fprintf(stderr, "peftbench compare: --no-examples only applies to result records\n");
    return 2;
  }
  if (!o.metric) o.metric = default_metric(o.task);
  if (!metric_ok(o.task, o.metric)) {
    fprintf(stderr, "peftbench compare: task %s does not report metric '%s'\n", o.task->name, o.metric);
    return 2;
  }
  return compare_files(&o, pos[0], pos[1]);
}
