/* `peftbench plot`: data files + gnuplot (see plot.h). */
#include "harness/plot.h"

#include <errno.h>
#include <getopt.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "util/proc.h"
#include "util/fileio.h"
#include "util/status.h"
#include "harness/glue.h"
#include "harness/iragg.h"
#include "util/strbuf.h"
#include "methods/method.h"

static const char *const g_names[PB_PLOT_COUNT] = {"score_vs_params", "score_vs_ops", "storage",
                                                   "task_scores"};

const char *pb_plot_name(int i) { return i >= 0 && i < PB_PLOT_COUNT ? g_names[i] : NULL; }

/* ---------------------------------------------------------------- data-file text */

/* A label as a gnuplot data-file string: double quotes around, '"' -> '\'', controls -> ' '. */
static void tb_label(pb_strbuf *b, const char *s) {
  pb_sb_add(b, "\"");
  for (const char *p = s; *p; p++) {
    unsigned char c = (unsigned char)*p;
    pb_sb_add(b, "%c", c == '"' ? '\'' : c < 0x20 ? ' ' : (char)c);
  }
  pb_sb_add(b, "\"");
}

/* Number or NaN. */
static void tb_num(pb_strbuf *b, int have, double v) {
  if (have && isfinite(v)) pb_sb_add(b, " %.10g", v);
  else pb_sb_add(b, " NaN");
}

static int write_buf(const char *dir, const char *name, pb_strbuf *b) {
  if (b->oom) {
    free(b->s);
    return pb_set_error(PB_ERR_NOMEM, "plot: out of memory");
  }
  char path[4096];
  snprintf(path, sizeof path, "%s/%s.dat", dir, name);
  int rc = pb_write_file_atomic(path, b->s ? b->s : "", b->n);
  free(b->s);
  return rc;
}

/* ---------------------------------------------------------------- score axis */

void pb_plot_score_range(const double *v, int n, int bars, double *lo, double *hi) {
  double mn = INFINITY, mx = -INFINITY;
  for (int i = 0; i < n; i++)
    if (isfinite(v[i])) {
      if (v[i] < mn) mn = v[i];
      if (v[i] > mx) mx = v[i];
    }
  if (bars) {
    /* bars are lengths from 0: the whole 0..100 scale, and beyond in steps of 10 */
    *lo = isfinite(mn) && mn < 0 ? 10 * floor(mn / 10) : 0;
    *hi = isfinite(mx) && mx > 100 ? 10 * ceil(mx / 10) : 100;
    return;
  }
  if (!isfinite(mn)) {
    *lo = 0, *hi = 100;
    return;
  }
  double span = mx - mn < PB_PLOT_MIN_SPAN ? PB_PLOT_MIN_SPAN : mx - mn;
  double mid = 0.5 * (mn + mx);
  *lo = floor(mid - 0.55 * span);
  *hi = ceil(mid + 0.55 * span);
}

/* ---------------------------------------------------------------- data files */

/* the first row of the method that declares itself the full fine-tuning reference
 * (pb_method.reference), or -1 */
static int row_has_latent(const pb_agg_row *r);

/* the full fine-tuning reference row: the first of the reference method on an uncompressed
 * backbone (no backbone.latent), else the first of the reference method */
static int full_row(const pb_agg *a) {
  int first = -1;
  for (int i = 0; i < a->n_rows; i++)
    if (pb_method_is_reference(a->rows[i].method)) {
      if (!row_has_latent(&a->rows[i])) return i;
      if (first < 0) first = i;
    }
  return first;
}

/* Majority baseline of the average GLUE score: the mean over the tasks present of each
 * task's baseline, regression tasks (null) counted as 0; NAN when a classification task has
 * none. */
static double avg_majority(const pb_agg *a) {
  double sum = 0;
  int k = 0;
  for (int t = 0; t < PB_AGG_NTASKS; t++) {
    if (!a->task_present[t]) continue;
    double b = pb_agg_task_majority(a, t);
    if (!isfinite(b)) {
      if (!pb_task_at(t)->is_regression) return NAN;
      b = 0;
    }
    sum += b, k++;
  }
  return k ? sum / k : NAN;
}

/* "NaN" or the number, for gnuplot assignments */
static void gp_num(char *o, size_t n, double v) {
  if (isfinite(v)) snprintf(o, n, "%.10g", v);
  else snprintf(o, n, "NaN");
}

/* Header lines shared by the two average-score plots; fills vars. */
static void avg_refs(const pb_agg *a, pb_strbuf *b, double lo, double hi, double base, double fullv,
                     int nsingle, int npts, char *vars, size_t nvars, const char *extra) {
  char sb[64], sf[64];
  gp_num(sb, sizeof sb, base);
  gp_num(sf, sizeof sf, fullv);
  pb_sb_add(b,
            "# yrange %.10g %.10g (every point with its error bar, the reference lines; at least "
            "%.0f points, +5%% each side, whole points)\n",
            lo, hi, PB_PLOT_MIN_SPAN);
  pb_sb_add(b,
            "# majority_baseline %s (mean over the tasks present of each task's majority-class "
            "score; STS-B, regression, counted as 0)\n",
            sb);
  int f = full_row(a);
  pb_sb_add(b, "# full_finetuning %s", sf);
  if (f >= 0) {
    pb_sb_add(b, " ");
    tb_label(b, a->rows[f].label);
  }
  pb_sb_add(b, "\n# sd: sample std over seeds of the average (NaN when a task has one seed)\n");
  snprintf(vars, nvars, "ymin=%.10g; ymax=%.10g; base=%s; fullv=%s; nsingle=%d; npts=%d%s%s", lo, hi, sb, sf,
           nsingle, npts, extra ? "; " : "", extra ? extra : "");
}

/* One point of the average-score plots. */
typedef struct {
  const pb_agg_row *r;
  int merged;    /* 1: the merged twin of a mergeable method ("<label> merged") */
  double x;      /* plotted x (params, or FLOPs per token; the floor for 0) */
  double avg;    /* average GLUE score x100 */
  double sd;     /* its spread over seeds (NAN: a task with one seed) */
  double added;  /* added FLOPs per token (score_vs_ops) */
  int nmin, k;   /* fewest seeds of a task; tasks */
  int side;      /* label placement: 1 above-right, -1 below-right */
} pt;

/* Labels alternate above/below along x (ties: in data order), so neighbours on a log axis
 * and the points stacked at one x (full and LoRA merged at the floor) do not overwrite each
 * other. */
static void label_sides(pt *p, int n) {
  for (int i = 0; i < n; i++) {
    int rank = 0; /* position of point i in x order */
    for (int j = 0; j < n; j++)
      if (p[j].x < p[i].x || (p[j].x == p[i].x && j < i)) rank++;
    p[i].side = rank % 2 == 0 ? 1 : -1;
  }
}

int pb_plot_write_data(const pb_agg *a, const char *dir, pb_plot_info *info) {
  int rc;
  pb_plot_info inf;
  memset(&inf, 0, sizeof inf);
  int *np = inf.npoints;
  double base = avg_majority(a);
  int fr = full_row(a);
  int fk = 0;
  double fullv = fr >= 0 ? pb_agg_avg_score(&a->rows[fr], &fk) : NAN;
  if (fk == 0) fullv = NAN;

  /* the score axis of the two average-score plots: every row's mean ± sd and the references */
  int nv = 0, nsingle = 0, npts = 0;
  pb_strbuf b = {0}, body = {0};
  double *vals = malloc((size_t)(3 * a->n_rows + 2) * sizeof *vals);
  if (!vals) return pb_set_error(PB_ERR_NOMEM, "plot: out of memory");
  for (int i = 0; i < a->n_rows; i++) {
    int k = 0, nmin = 0;
    double avg = pb_agg_avg_score(&a->rows[i], &k), sd = pb_agg_avg_score_sd(&a->rows[i], &nmin);
    if (k == 0) continue;
    vals[nv++] = avg;
    if (isfinite(sd)) vals[nv++] = avg - sd, vals[nv++] = avg + sd;
  }
  vals[nv++] = base;
  vals[nv++] = fullv;
  double lo, hi;
  pb_plot_score_range(vals, nv, 0, &lo, &hi);
  free(vals);

  /* (a) score vs trainable params, (b) score vs added FLOPs per token (zeros at a floor a
   * decade below the smallest value) */
  double minpos = INFINITY;
  for (int i = 0; i < a->n_rows; i++) {
    pb_stat s = pb_agg_row_stat(&a->rows[i], PB_AGG_OPS_TOKEN);
    if (s.n && s.mean > 0 && s.mean < minpos) minpos = s.mean;
    pb_stat m = pb_agg_row_stat(&a->rows[i], PB_AGG_OPS_MERGED_EXAMPLE);
    if (m.n && m.mean / 128 > 0 && m.mean / 128 < minpos) minpos = m.mean / 128;
  }
  double floor_v = isfinite(minpos) ? pow(10, floor(log10(minpos)) - 1) : 1;
  inf.ops_floor = floor_v;
  pt *pts = malloc((size_t)(2 * a->n_rows + 1) * sizeof *pts);
  if (!pts) return pb_set_error(PB_ERR_NOMEM, "plot: out of memory");
  for (int which = 0; which < 2; which++) {
    int n = 0;
    for (int i = 0; i < a->n_rows; i++) {
      const pb_agg_row *r = &a->rows[i];
      int k = 0, nmin = 0;
      double avg = pb_agg_avg_score(r, &k), sd = pb_agg_avg_score_sd(r, &nmin);
      if (k == 0) continue;
      pt q = {r, 0, 0, avg, sd, 0, nmin, k, 0};
      if (which == 0) {
        pb_stat p = pb_agg_row_stat(r, PB_AGG_TRAINABLE_NOHEAD);
        if (p.n == 0 || p.mean <= 0) continue; /* nothing to place on a log axis */
        q.x = p.mean;
        pts[n++] = q;
        continue;
      }
      pb_stat s = pb_agg_row_stat(r, PB_AGG_OPS_TOKEN);
      if (s.n) {
        q.x = s.mean > 0 ? s.mean : floor_v;
        q.added = s.mean;
        pts[n++] = q;
      }
      pb_stat m = pb_agg_row_stat(r, PB_AGG_OPS_MERGED_EXAMPLE);
      if (m.n) {
        q.merged = 1;
        q.x = m.mean > 0 ? m.mean / 128 : floor_v;
        q.added = m.mean / 128;
        pts[n++] = q;
      }
    }
    label_sides(pts, n);
    b = (pb_strbuf){0};
    if (which == 0)
      pb_sb_add(&b, "# peftbench plot: average GLUE score (x100, over the tasks each row ran) vs\n"
                    "# trainable parameters without the task head\n");
    else
      pb_sb_add(&b, "# peftbench plot: average GLUE score (x100) vs FLOPs the method adds per token (T=128)\n"
                    "# zero-cost points are placed at x = %.10g (the \"0 (merged)\" tic)\n",
                floor_v);
    int nsingle = 0;
    for (int q = 0; q < n; q++) nsingle += !isfinite(pts[q].sd);
    char fl[64];
    snprintf(fl, sizeof fl, "floor=%.10g", floor_v);
    avg_refs(a, &b, lo, hi, base, fullv, nsingle, n, inf.vars[which], sizeof inf.vars[which], which ? fl : NULL);
    pb_sb_add(&b, which == 0 ? "# label trainable_no_head avg_score sd n_seeds_min n_tasks label_side\n"
                             : "# label x_plotted avg_score added_flops_per_token sd n_seeds_min label_side\n");
    for (int q = 0; q < n; q++) {
      char lab[512];
      snprintf(lab, sizeof lab, "%s%s", pts[q].r->label, pts[q].merged ? " merged" : "");
      tb_label(&b, lab);
      tb_num(&b, 1, pts[q].x);
      tb_num(&b, 1, pts[q].avg);
      if (which == 1) tb_num(&b, 1, pts[q].added);
      tb_num(&b, 1, pts[q].sd);
      if (which == 0) pb_sb_add(&b, " %d %d %d\n", pts[q].nmin, pts[q].k, pts[q].side);
      else pb_sb_add(&b, " %d %d\n", pts[q].nmin, pts[q].side);
    }
    np[which] = n;
    if ((rc = write_buf(dir, g_names[which], &b))) {
      free(pts);
      return rc;
    }
  }
  free(pts);

  /* (c) storage: one row per configuration, one column per task */
  b = (pb_strbuf){0};
  pb_sb_add(&b, "# peftbench plot: task-file size (KB) per method and task\n");
  tb_label(&b, "method");
  for (int t = 0; t < PB_AGG_NTASKS; t++)
    if (a->task_present[t]) {
      pb_sb_add(&b, " ");
      tb_label(&b, pb_task_at(t)->dir);
    }
  pb_sb_add(&b, "\n");
  for (int i = 0; i < a->n_rows; i++) {
    tb_label(&b, a->rows[i].label);
    for (int t = 0; t < PB_AGG_NTASKS; t++) {
      if (!a->task_present[t]) continue;
      pb_stat s = pb_agg_task_stat(&a->rows[i], t, PB_AGG_STORAGE_KB);
      int have = s.n > 0 && s.mean > 0;
      tb_num(&b, have, s.mean);
      np[2] += have;
    }
    pb_sb_add(&b, "\n");
  }
  snprintf(inf.vars[2], sizeof inf.vars[2], "nrows=%d", a->n_rows);
  if ((rc = write_buf(dir, g_names[2], &b))) return rc;

  /* (d) per-task scores: one row per task, mean and sd columns per configuration, then the
   * majority baseline and full fine-tuning of the task */
  int ntasks = 0;
  double *tv = malloc((size_t)(2 * a->n_rows + 2) * PB_AGG_NTASKS * sizeof *tv);
  if (!tv) return pb_set_error(PB_ERR_NOMEM, "plot: out of memory");
  int ntv = 0;
  b = (pb_strbuf){0};
  body = (pb_strbuf){0};
  pb_sb_add(&body, "%s", "");
  tb_label(&body, "task");
  for (int i = 0; i < a->n_rows; i++) {
    char lab[512];
    pb_sb_add(&body, " ");
    tb_label(&body, a->rows[i].label);
    snprintf(lab, sizeof lab, "%s sd", a->rows[i].label);
    pb_sb_add(&body, " ");
    tb_label(&body, lab);
  }
  pb_sb_add(&body, " ");
  tb_label(&body, "majority-class baseline");
  char ftitle[600];
  if (fr >= 0 && strcmp(a->rows[fr].label, a->rows[fr].method)) /* a bare method name adds nothing */
    snprintf(ftitle, sizeof ftitle, "full fine-tuning (%s)", a->rows[fr].label);
  else snprintf(ftitle, sizeof ftitle, "full fine-tuning");
  pb_sb_add(&body, " ");
  tb_label(&body, ftitle);
  pb_sb_add(&body, "\n");
  nsingle = npts = 0;
  for (int t = 0; t < PB_AGG_NTASKS; t++) {
    if (!a->task_present[t]) continue;
    ntasks++;
    tb_label(&body, pb_task_at(t)->dir);
    for (int i = 0; i < a->n_rows; i++) {
      pb_stat s = pb_agg_task_score(&a->rows[i], t);
      tb_num(&body, s.n > 0, s.mean);
      tb_num(&body, s.n > 1, s.std);
      if (s.n > 0) {
        np[3]++, npts++, nsingle += s.n < 2;
        tv[ntv++] = s.mean;
        if (s.n > 1) tv[ntv++] = s.mean - s.std, tv[ntv++] = s.mean + s.std;
      }
    }
    double mb = pb_agg_task_majority(a, t);
    pb_stat fs = fr >= 0 ? pb_agg_task_score(&a->rows[fr], t) : (pb_stat){0, 0, 0, 0, 0};
    tb_num(&body, 1, mb);
    tb_num(&body, fs.n > 0, fs.mean);
    pb_sb_add(&body, "\n");
    tv[ntv++] = mb;
  }
  pb_plot_score_range(tv, ntv, 1, &lo, &hi);
  free(tv);
  pb_sb_add(&b,
            "# peftbench plot: GLUE task score (x100) per task and method: the mean over seeds\n"
            "# and the sample std (NaN with one seed); then the task's majority-class baseline\n"
            "# (NaN for STS-B, regression) and full fine-tuning's score (the first full row)\n"
            "# yrange %.10g %.10g (bars start at 0: always 0..100, and any value beyond, to a multiple of 10)\n",
            lo, hi);
  pb_sb_add(&b, "%s", body.s ? body.s : "");
  free(body.s);
  if (body.oom) b.oom = 1;
  snprintf(inf.vars[3], sizeof inf.vars[3], "ymin=%.10g; ymax=%.10g; nm=%d; ntasks=%d; hasfull=%d; nsingle=%d; npts=%d",
           lo, hi, a->n_rows, ntasks, fr >= 0, nsingle, npts);
  if ((rc = write_buf(dir, g_names[3], &b))) return rc;
  if (info) *info = inf;
  return PB_OK;
}

/* ---------------------------------------------------------------- early exit: score vs FLOPs */

/* mean over the row's records (any task) of the number at a key path, n = 0 when none */
static pb_stat row_num(const pb_agg_row *r, const char *k1, const char *k2, const char *k3, const char *k4) {
  pb_acc acc = {0};
  for (int t = 0; t < PB_AGG_NTASKS; t++)
    for (int j = 0; j < r->n_recs[t]; j++) {
      double v;
      if (pb_json_num(r->recs[t][j], &v, k1, k2, k3, k4, NULL)) pb_acc_add(&acc, v);
    }
  return pb_acc_stat(&acc);
}

/* the row's config without the keys a threshold sweep changes (NULL on OOM) */
static cJSON *curve_key(const pb_agg_row *r) {
  cJSON *c = cJSON_Duplicate(r->config, 1);
  if (!c) return NULL;
  cJSON_DeleteItemFromObjectCaseSensitive(c, "exit_threshold");
  cJSON_DeleteItemFromObjectCaseSensitive(c, "ode_steps"); /* an ODE-step sweep (eval --ode-steps) */
  cJSON_DeleteItemFromObjectCaseSensitive(c, "method_desc");
  return c;
}

/* "method" or "method (keys but exit_threshold)" from the row's diff ("a=1, exit_threshold=0.3") */
static void curve_title(const pb_agg_row *r, char *out, size_t n) {
  char rest[1024] = "";
  size_t w = 0;
  const char *d = r->diff ? r->diff : "";
  while (*d) {
    size_t len = strcspn(d, ",");
    const char *item = d;
    while (len && *item == ' ') item++, len--;
    if (len && strncmp(item, "exit_threshold=", 15) != 0 && strncmp(item, "ode_steps=", 10) != 0 && w < sizeof rest)
      w += (size_t)snprintf(rest + w, sizeof rest - w, "%s%.*s", w ? ", " : "", (int)len, item);
    d = item + len;
    if (*d == ',') d++;
  }
  /* an ODE-step sweep names its backbone folder (the sweeps of one method differ in it) */
  char bb[300] = "";
  for (int t = 0; t < PB_AGG_NTASKS && !bb[0]; t++)
    for (int j = 0; j < r->n_recs[t] && !bb[0]; j++) {
      const cJSON *rec = r->recs[t][j], *jb = cJSON_GetObjectItemCaseSensitive(rec, "backbone");
      const char *src = cJSON_IsObject(cJSON_GetObjectItemCaseSensitive(rec, "ode")) ? pb_json_str(jb, "source") : NULL;
      if (!src) continue;
      size_t k = strlen(src);
      while (k > 1 && src[k - 1] == '/') k--;
      size_t i = k;
      while (i > 0 && src[i - 1] != '/') i--;
      snprintf(bb, sizeof bb, " on %.*s", (int)(k - i), src + i);
    }
  if (rest[0]) snprintf(out, n, "%s%s (%s)", r->method, bb, rest);
  else snprintf(out, n, "%s%s", r->method, bb);
}

/* the first record of a row (NULL: none) */
static const cJSON *row_first(const pb_agg_row *r) {
  for (int t = 0; t < PB_AGG_NTASKS; t++)
    if (r->n_recs[t] > 0) return r->recs[t][0];
  return NULL;
}

/* a compressed backbone's label ("pca k=2 d'=128 (DIR)") from its records' backbone.latent; 0
 * when the row's backbone is not compressed */
static int latent_label(const pb_agg_row *r, char *out, size_t n) {
  const cJSON *rec = row_first(r), *bb = rec ? cJSON_GetObjectItemCaseSensitive(rec, "backbone") : NULL;
  const cJSON *lt = bb ? cJSON_GetObjectItemCaseSensitive(bb, "latent") : NULL;
  double k, dp;
  if (!lt || !pb_json_num(lt, &k, "cut", NULL) || !pb_json_num(lt, &dp, "d_prime", NULL)) return 0;
  const char *v = pb_json_str(lt, "variant"), *src = pb_json_str(bb, "source");
  const char *base = src ? strrchr(src, '/') : NULL;
  snprintf(out, n, "%s k=%g d'=%g (%s)", v ? v : "?", k, dp, base ? base + 1 : src ? src : "?");
  return 1;
}

static int row_has_latent(const pb_agg_row *r) {
  char lab[8];
  return latent_label(r, lab, sizeof lab);
}

typedef struct {
  const pb_agg_row *r;
  int curve;            /* index of its curve, -1: a static point */
  int ode;              /* an ODE-step point: thr holds S' */
  double x, thr, speedup, avg, sd;
  int nmin;
} xpt;

static int cmp_xpt(const void *a, const void *b) {
  const xpt *p = a, *q = b;
  if (p->curve != q->curve) return p->curve < 0 ? 1 : q->curve < 0 ? -1 : p->curve - q->curve;
  if (p->curve >= 0 && p->thr != q->thr) return p->thr < q->thr ? -1 : 1;
  return p->r < q->r ? -1 : p->r > q->r;
}

int pb_plot_write_exits(const pb_agg *a, const char *dir, int *npoints, char *vars, size_t nvars) {
  *npoints = 0;
  if (nvars) vars[0] = 0;
  xpt *p = calloc((size_t)a->n_rows + 1, sizeof *p);
  const pb_agg_row **heads = calloc((size_t)a->n_rows + 1, sizeof *heads); /* first row of each curve */
  cJSON **keys = calloc((size_t)a->n_rows + 1, sizeof *keys);
  if (!p || !heads || !keys) {
    free(p), free(heads), free(keys);
    return pb_set_error(PB_ERR_NOMEM, "plot: out of memory");
  }
  int n = 0, nc = 0, any_exits = 0, any_latent = 0, rc = PB_OK;
  for (int i = 0; i < a->n_rows && !rc; i++) {
    const pb_agg_row *r = &a->rows[i];
    int k = 0;
    double avg = pb_agg_avg_score(r, &k);
    if (k == 0) continue;
    char ll[8];
    any_latent |= latent_label(r, ll, sizeof ll);
    xpt q = {.r = r, .curve = -1, .avg = avg, .thr = NAN, .speedup = NAN};
    q.sd = pb_agg_avg_score_sd(r, &q.nmin);
    pb_stat t = row_num(r, "exits", "threshold", NULL, NULL), f = row_num(r, "exits", "flops_per_example", "mean", NULL);
    /* an ODE-step point: S' and the exact per-example FLOPs of the evaluation */
    pb_stat os = row_num(r, "ode", "steps_run", NULL, NULL), of = row_num(r, "ops", "inference_per_example", "flops", "total");
    if (!(t.n && f.n) && os.n && of.n && of.mean > 0) q.ode = 1;
    if ((t.n && f.n) || q.ode) {
      any_exits = 1;
      q.thr = q.ode ? os.mean : t.mean;
      q.x = q.ode ? of.mean : f.mean;
      pb_stat sp = row_num(r, "exits", "speedup", NULL, NULL);
      q.speedup = sp.n ? sp.mean : NAN;
      cJSON *key = curve_key(r);
      if (!key) {
        rc = pb_set_error(PB_ERR_NOMEM, "plot: out of memory");
        break;
      }
      for (int c = 0; c < nc && q.curve < 0; c++)
        if (!strcmp(heads[c]->method, r->method) && pb_config_equal(keys[c], key)) q.curve = c;
      if (q.curve < 0) {
        heads[nc] = r;
        keys[nc] = key;
        q.curve = nc++;
      } else {
        cJSON_Delete(key);
      }
    } else {
      pb_stat s = row_num(r, "ops", "inference_per_example", "flops", "total");
      if (!s.n || !(s.mean > 0)) continue; /* nothing to place */
      q.x = s.mean;
    }
    p[n++] = q;
  }
  if (!rc && (any_exits || any_latent)) { /* compressed backbones (backbone.latent) are static points too */
    qsort(p, (size_t)n, sizeof *p, cmp_xpt);
    /* the score axis: every point with its error bar and the reference lines */
    double *vals = malloc((size_t)(3 * n + 2) * sizeof *vals);
    if (!vals) rc = pb_set_error(PB_ERR_NOMEM, "plot: out of memory");
    int nv = 0, nsingle = 0, nstatic = 0;
    double base = avg_majority(a), fullv = NAN;
    const int fr = full_row(a);
    int fk = 0;
    if (fr >= 0) fullv = pb_agg_avg_score(&a->rows[fr], &fk);
    if (fk == 0) fullv = NAN;
    for (int i = 0; vals && i < n; i++) {
      vals[nv++] = p[i].avg;
      if (isfinite(p[i].sd)) vals[nv++] = p[i].avg - p[i].sd, vals[nv++] = p[i].avg + p[i].sd;
      else nsingle++;
      nstatic += p[i].curve < 0;
    }
    double lo = 0, hi = 100;
    if (vals) {
      vals[nv++] = base;
      vals[nv++] = fullv;
      pb_plot_score_range(vals, nv, 0, &lo, &hi);
      free(vals);
    }
    pb_strbuf b = {0};
    pb_sb_add(&b, "# peftbench plot: average GLUE score (x100) vs mean FLOPs per example (inference at the examples'\n"
                  "# own lengths, all owners): one curve per configuration with exits (ordered by threshold, x =\n"
                  "# exits.flops_per_example.mean) or swept over ODE steps (label S'=k, the threshold column holds\n"
                  "# S', x = ops.inference_per_example), then a block of static points (ops.inference_per_example)\n");
    char vb[512];
    avg_refs(a, &b, lo, hi, base, fullv, nsingle, n, vb, sizeof vb, NULL);
    pb_sb_add(&b, "# label mean_flops_per_example avg_score sd threshold speedup n_seeds_min\n");
    for (int c = 0, i = 0; c <= nc; c++) {
      if (c == nc && nstatic == 0) break;
      char title[1200];
      if (c < nc) curve_title(heads[c], title, sizeof title);
      else snprintf(title, sizeof title, "static (no early exit)");
      if (c) pb_sb_add(&b, "\n\n");
      tb_label(&b, title);
      pb_sb_add(&b, " \"x\" \"score\" \"sd\" \"threshold\" \"speedup\" \"n\"\n");
      for (; i < n && (c < nc ? p[i].curve == c : 1); i++) {
        char lab[600];
        if (c < nc) snprintf(lab, sizeof lab, p[i].ode ? "S'=%g" : "t=%g", p[i].thr);
        else if (!latent_label(p[i].r, lab, sizeof lab)) snprintf(lab, sizeof lab, "%s", p[i].r->label);
        tb_label(&b, lab);
        tb_num(&b, 1, p[i].x);
        tb_num(&b, 1, p[i].avg);
        tb_num(&b, 1, p[i].sd);
        tb_num(&b, c < nc, p[i].thr);
        tb_num(&b, c < nc, p[i].speedup);
        pb_sb_add(&b, " %d\n", p[i].nmin);
      }
    }
    if (!rc) {
      snprintf(vars, nvars, "%s; ncurves=%d; nstatic=%d", vb, nc, nstatic);
      rc = write_buf(dir, PB_PLOT_EXITS_NAME, &b);
      if (!rc) *npoints = n;
    } else {
      free(b.s);
    }
  }
  for (int c = 0; c < nc; c++) cJSON_Delete(keys[c]);
  free(keys);
  free(heads);
  free(p);
  return rc;
}

int pb_plot_write_latent(const pb_agg *a, const char *dir, int *npoints, char *vars, size_t nvars) {
  *npoints = 0;
  if (nvars) vars[0] = 0;
  int any = 0;
  char lab[1200];
  for (int i = 0; i < a->n_rows && !any; i++) any = latent_label(&a->rows[i], lab, sizeof lab);
  if (!any) return PB_OK;
  pb_strbuf b = {0};
  pb_sb_add(&b, "# peftbench plot: memory vs the width of the layers above the cut (compressed backbones,\n"
                "# backbone.latent; uncompressed rows at their hidden size). Columns:\n"
                "# label width peak_rss_train_mb model_bytes_train_mb cut avg_score\n");
  int n = 0;
  double wmin = INFINITY, wmax = 0;
  for (int i = 0; i < a->n_rows; i++) {
    const pb_agg_row *r = &a->rows[i];
    pb_stat w = row_num(r, "backbone", "latent", "d_prime", NULL), cut = row_num(r, "backbone", "latent", "cut", NULL);
    if (!w.n) {
      w = row_num(r, "backbone", "config", "hidden", NULL);
      if (!w.n) continue;
      snprintf(lab, sizeof lab, "uncompressed %s", r->label);
    } else {
      latent_label(r, lab, sizeof lab);
    }
    pb_stat rss = row_num(r, "memory", "peak_rss_kb", NULL, NULL), mb = row_num(r, "memory", "model_bytes", "total", NULL);
    if (!rss.n && !mb.n) continue;
    int k = 0;
    const double avg = pb_agg_avg_score(r, &k);
    tb_label(&b, lab);
    tb_num(&b, 1, w.mean);
    tb_num(&b, rss.n, rss.mean / 1024.0);
    tb_num(&b, mb.n, mb.mean / 1048576.0);
    tb_num(&b, cut.n, cut.mean);
    tb_num(&b, k > 0, avg);
    pb_sb_add(&b, "\n");
    wmin = fmin(wmin, w.mean), wmax = fmax(wmax, w.mean);
    n++;
  }
  if (n == 0) {
    free(b.s);
    return PB_OK;
  }
  snprintf(vars, nvars, "npts=%d; wmin=%g; wmax=%g", n, wmin, wmax);
  int rc = write_buf(dir, PB_PLOT_LATENT_NAME, &b);
  if (!rc) *npoints = n;
  return rc;
}

/* ---------------------------------------------------------------- gnuplot */

int pb_gnuplot_available(void) {
  const char *path = getenv("PATH");
  if (!path || !*path) return 0;
  char *copy = strdup(path);
  if (!copy) return 0;
  int found = 0;
  for (char *save = NULL, *d = strtok_r(copy, ":", &save); d && !found; d = strtok_r(NULL, ":", &save)) {
    char exe[4096];
    snprintf(exe, sizeof exe, "%s/gnuplot", *d ? d : ".");
    struct stat st;
    if (stat(exe, &st) == 0 && S_ISREG(st.st_mode) && access(exe, X_OK) == 0) found = 1;
  }
  free(copy);
  return found;
}

/* 1 when s can go inside a gnuplot single-quoted string. */
static int quotable(const char *s) {
  for (const unsigned char *p = (const unsigned char *)s; *p; p++)
    if (*p == '\'' || *p < 0x20 || *p == 0x7f) return 0;
  return 1;
}

/* The last non-empty line of text, trimmed, into out[n]. */
static void last_line(const char *text, char *out, size_t n) {
  out[0] = 0;
  const char *end = text + strlen(text);
  while (end > text && (end[-1] == '\n' || end[-1] == '\r' || end[-1] == ' ')) end--;
  const char *start = end;
  while (start > text && start[-1] != '\n') start--;
  while (start < end && (*start == ' ' || *start == '\t')) start++;
  snprintf(out, n, "%.*s", (int)(end - start), start);
}

int pb_gnuplot_run(const char *script, const char *datafile, const char *outfile, const char *fmt,
                   const char *extra) {
  if (!quotable(datafile) || !quotable(outfile))
    return pb_set_error(PB_ERR_ARG, "plot: path '%s' holds a single quote or a control character; choose another folder",
                        quotable(datafile) ? outfile : datafile);
  if (strcmp(fmt, "png") && strcmp(fmt, "svg")) return pb_set_error(PB_ERR_ARG, "plot: bad format '%s'", fmt);
  char *vars = NULL;
  if (asprintf(&vars, "datafile='%s'; outfile='%s'; fmt='%s'%s%s", datafile, outfile, fmt,
               extra ? "; " : "", extra ? extra : "") < 0)
    return pb_set_error(PB_ERR_NOMEM, "plot: out of memory");
  /* gnuplot's messages (stdout and stderr): the end is kept (16 KB) for the error line */
  const char *argv[] = {"gnuplot", "-e", vars, script, NULL};
  char msg[16384];
  const int status = pb_proc_capture(argv, PB_PROC_MERGE_STDERR | PB_PROC_KEEP_TAIL, msg, sizeof msg);
  free(vars);
  if (status == PB_ERR_NOTFOUND) return pb_set_error(PB_ERR_IO, "plot: cannot run %s (install gnuplot-nox)", pb_last_error());
  if (status < 0) return pb_set_error(PB_ERR_IO, "plot: %s", pb_last_error());
  char last[512];
  last_line(msg, last, sizeof last);
  if (status != 0) {
    char how[64];
    if (status < 128) snprintf(how, sizeof how, "exit status %d", status);
    else snprintf(how, sizeof how, "signal %d", status - 128);
    return pb_set_error(PB_ERR_IO, "gnuplot failed on %s (%s)%s%s", script, how, last[0] ? ": " : "", last);
  }
  struct stat st;
  if (stat(outfile, &st) != 0 || st.st_size == 0)
    return pb_set_error(PB_ERR_IO, "gnuplot wrote no output for %s (%s)%s%s", script, outfile,
                        last[0] ? ": " : "", last);
  return PB_OK;
}

/* ---------------------------------------------------------------- CLI */

static void plot_usage(FILE *f, const char *cmd) {
  fprintf(f,
          "usage: peftbench %s FILE.jsonl [FILE.jsonl ...] --out DIR [options]\n"
          "Comparison figures (gnuplot): score vs trainable params, score vs added FLOPs per\n"
          "token, storage per method and task, per-task scores (and, when records have early-exit\n"
          "stats, score vs mean FLOPs per example: one curve per threshold sweep); one point/bar per training\n"
          "configuration, error bars ± sample std over seeds, lines at the majority-class\n"
          "baseline and full fine-tuning, score axes that never zoom below 10 points (bars:\n"
          "0..100). Writes DIR/*.dat and the figures.\n"
          "  -o, --out DIR             output folder (created if missing; required)\n"
          "  -f, --format png|svg|both figure format (default both)\n"
          "      --plots-dir DIR       folder of the gnuplot scripts (default %s/plots)\n"
          "  -h, --help                this help\n",
          cmd, PB_SOURCE_DIR);
}

/* renders plots_dir/NAME.gp over out/NAME.dat into out/NAME.png and/or .svg (written under a temp
 * name, then renamed); check_script: a missing script is an error naming it */
static int draw(const char *plots_dir, const char *out, const char *name, const char *vars, int want_png,
                int want_svg, int check_script, int *n_files) {
  char script[4096];
  snprintf(script, sizeof script, "%s/%s.gp", plots_dir, name);
  if (check_script && access(script, R_OK) != 0)
    return pb_set_error(PB_ERR_NOTFOUND, "gnuplot script %s not found (set --plots-dir to the plots/ folder of the source)",
                        script);
  int rc = PB_OK;
  for (int f = 0; !rc && f < 2; f++) {
    if ((f == 0 && !want_png) || (f == 1 && !want_svg)) continue;
    const char *ext = f == 0 ? "png" : "svg";
    char data[4096], fig[4096], tmp[4096];
    snprintf(data, sizeof data, "%s/%s.dat", out, name);
    snprintf(fig, sizeof fig, "%s/%s.%s", out, name, ext);
    snprintf(tmp, sizeof tmp, "%s/.%s.%s.tmp.%ld", out, name, ext, (long)getpid());
    rc = pb_gnuplot_run(script, data, tmp, ext, vars);
    if (!rc && rename(tmp, fig) != 0) rc = pb_set_error(PB_ERR_IO, "%s: cannot rename to %s: %s", tmp, fig, strerror(errno));
    if (rc) unlink(tmp);
    else (*n_files)++;
  }
  return rc;
}

int pb_cmd_plot(int argc, char **argv) {
  const char *cmd = argc > 0 && argv[0] ? argv[0] : "plot";
  const char *out = NULL, *format = "both", *plots_dir = PB_SOURCE_DIR "/plots";
  static const struct option opts[] = {{"out", required_argument, 0, 'o'},
                                       {"format", required_argument, 0, 'f'},
                                       {"plots-dir", required_argument, 0, 'p'},
                                       {"help", no_argument, 0, 'h'},
                                       {0, 0, 0, 0}};
  optind = 0; /* full re-initialisation (glibc) */
  opterr = 0;
  int c;
  while ((c = getopt_long(argc, argv, ":o:f:h", opts, NULL)) != -1) {
    switch (c) {
      case 'o': out = optarg; break;
      case 'f': format = optarg; break;
      case 'p': plots_dir = optarg; break;
      case 'h': plot_usage(stdout, cmd); return 0;
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
  int want_png = !strcmp(format, "png") || !strcmp(format, "both");
  int want_svg = !strcmp(format, "svg") || !strcmp(format, "both");
  if (!want_png && !want_svg) {
    fprintf(stderr, "peftbench %s: unknown format '%s' (png, svg, both)\n", cmd, format);
    return 2;
  }
  if (!out) {
    fprintf(stderr, "peftbench %s: --out DIR is required (see --help)\n", cmd);
    return 2;
  }
  if (optind >= argc) {
    fprintf(stderr, "peftbench %s: no input files (usage: peftbench %s FILE.jsonl ... --out DIR)\n", cmd, cmd);
    return 2;
  }
  if (!quotable(out)) {
    fprintf(stderr, "peftbench %s: output folder '%s' holds a single quote or a control character; choose another\n",
            cmd, out);
    return 1;
  }
  if (!pb_gnuplot_available()) {
    fprintf(stderr, "peftbench %s: gnuplot not found on PATH; install it (Debian/Ubuntu: apt-get install gnuplot-nox)\n",
            cmd);
    return 1;
  }
  /* every script present before any work */
  for (int i = 0; i < PB_PLOT_COUNT; i++) {
    char script[4096];
    snprintf(script, sizeof script, "%s/%s.gp", plots_dir, g_names[i]);
    if (access(script, R_OK) != 0) {
      fprintf(stderr, "peftbench %s: gnuplot script %s not found (set --plots-dir to the plots/ folder of the source)\n",
              cmd, script);
      return 1;
    }
  }
  char who[64];
  snprintf(who, sizeof who, "peftbench %s", cmd);
  pb_agg a;
  if (pb_agg_load((const char *const *)argv + optind, argc - optind, who, stderr, &a)) {
    fprintf(stderr, "%s: %s\n", who, pb_last_error());
    return 1;
  }
  pb_plot_info info;
  memset(&info, 0, sizeof info);
  int *npoints = info.npoints;
  int rc = pb_mkdir_p(out);
  if (!rc && a.n_rows > 0) rc = pb_plot_write_data(&a, out, &info);
  int n_files = 0;
  static const char *const lacks[PB_PLOT_COUNT] = {"scores or params", "scores or ops", "storage.file_bytes",
                                                   "metrics.score"};
  for (int i = 0; !rc && a.n_rows > 0 && i < PB_PLOT_COUNT; i++) { /* the GLUE figures, when GLUE records exist */
    if (npoints[i] == 0) {
      fprintf(stderr, "%s: warning: nothing to draw in %s (the records lack %s); figure skipped\n", who,
              g_names[i], lacks[i]);
      continue;
    }
    rc = draw(plots_dir, out, g_names[i], info.vars[i][0] ? info.vars[i] : NULL, want_png, want_svg, 0, &n_files);
  }
  /* the early-exit figure, only when some record has exits (harness/plot.h) */
  int n_data = a.n_rows > 0 ? PB_PLOT_COUNT : 0, nx = 0;
  char xvars[700] = "";
  if (!rc) rc = pb_plot_write_exits(&a, out, &nx, xvars, sizeof xvars);
  if (!rc && nx > 0) {
    n_data++;
    rc = draw(plots_dir, out, PB_PLOT_EXITS_NAME, xvars, want_png, want_svg, 1, &n_files);
  }
  /* the latent-compression memory figure, only when some record has a compressed backbone */
  int nl = 0;
  char lvars[256] = "";
  if (!rc) rc = pb_plot_write_latent(&a, out, &nl, lvars, sizeof lvars);
  if (!rc && nl > 0) {
    n_data++;
    rc = draw(plots_dir, out, PB_PLOT_LATENT_NAME, lvars, want_png, want_svg, 1, &n_files);
  }
  /* the retrieval figure, only when some record is a retrieval run (harness/iragg.h) */
  int nr = 0;
  char rvars[128] = "";
  if (!rc) rc = pb_plot_write_retrieval(&a, out, &nr, rvars, sizeof rvars);
  if (!rc && nr > 0) {
    n_data++;
    rc = draw(plots_dir, out, PB_PLOT_RETRIEVAL_NAME, rvars[0] ? rvars : NULL, want_png, want_svg, 1, &n_files);
  }
  pb_agg_free(&a);
  if (!rc && n_files == 0) rc = pb_set_error(PB_ERR_FORMAT, "nothing to draw: the records hold no scores, params, ops or storage");
  if (rc) {
    fprintf(stderr, "%s: %s\n", who, pb_last_error());
    return 1;
  }
  printf("%s: wrote %d figure%s and %d data files to %s\n", who, n_files, n_files == 1 ? "" : "s", n_data, out);
  return 0;
}
