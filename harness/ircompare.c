/* Paired tests over queries and `peftbench ircompare` (ircompare.h). */
#include "harness/ircompare.h"

#include <getopt.h>
#include <gsl/gsl_cdf.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "harness/cli.h"
#include "harness/irmetrics.h"
#include "harness/retrieve.h"
#include "harness/stats.h"
#include "util/fileio.h"
#include "util/rng.h"
#include "util/status.h"

static int cmp_double(const void *x, const void *y) {
  const double a = *(const double *)x, b = *(const double *)y;
  return a < b ? -1 : a > b;
}

int pb_ir_paired(const double *a, const double *b, int n, long samples, uint64_t seed, double alpha,
                 pb_ir_paired_result *out) {
  memset(out, 0, sizeof *out);
  if (n < 2 || samples < 1 || !(alpha > 0 && alpha < 1))
    return pb_set_error(PB_ERR_ARG, "ircompare: need >= 2 queries, samples >= 1 and 0 < alpha < 1");
  double *d = malloc(sizeof(double) * (size_t)n), *boot = malloc(sizeof(double) * (size_t)samples);
  if (!d || !boot) {
    free(d);
    free(boot);
    return pb_set_error(PB_ERR_NOMEM, "ircompare: out of memory");
  }
  out->n = n;
  for (int i = 0; i < n; i++) {
    d[i] = b[i] - a[i];
    out->mean_a += a[i] / n;
    out->mean_b += b[i] / n;
  }
  double mean, sd;
  pb_mean_std(d, n, &mean, &sd);
  out->diff = mean;
  out->df = n - 1;
  if (sd > 0) {
    out->t = mean / (sd / sqrt((double)n));
    out->p_t = 2 * gsl_cdf_tdist_Q(fabs(out->t), out->df);
  } else {
    out->t = mean == 0 ? 0 : (mean > 0 ? INFINITY : -INFINITY);
    out->p_t = mean == 0 ? 1 : 0;
  }
  pb_rng r;
  pb_rng_seed(&r, seed);
  long hits = 0;
  const double tol = 1e-12 * (fabs(mean) + 1e-300);
  for (long s = 0; s < samples; s++) {
    double m = 0;
    for (int i = 0; i < n; i++) m += (pb_rng_below(&r, 2) ? d[i] : -d[i]);
    m /= n;
    hits += fabs(m) >= fabs(mean) - tol;
  }
  out->samples = samples;
  out->p_rand = (double)(hits + 1) / (double)(samples + 1);
  for (long s = 0; s < samples; s++) {
    double m = 0;
    for (int i = 0; i < n; i++) m += d[pb_rng_below(&r, (uint64_t)n)];
    boot[s] = m / n;
  }
  qsort(boot, (size_t)samples, sizeof(double), cmp_double);
  out->confidence = 1 - alpha;
  out->ci_low = pb_quantile_sorted(boot, (int)samples, alpha / 2);
  out->ci_high = pb_quantile_sorted(boot, (int)samples, 1 - alpha / 2);
  free(d);
  free(boot);
  return PB_OK;
}

int pb_ir_read_perquery(const char *path, const char *metric, double **q, int **pos, int *n) {
  char *data;
  size_t len;
  int rc = pb_read_file(path, &data, &len);
  if (rc) return rc;
  *q = NULL;
  *pos = NULL;
  *n = 0;
  int col = -1, line = 0, cap = 0;
  char *save = NULL;
  for (char *ln = strtok_r(data, "\n", &save); ln; ln = strtok_r(NULL, "\n", &save)) {
    line++;
    if (line == 1) {
      if (strncmp(ln, "query\tquery_id\t", 15) != 0) {
        rc = pb_set_error(PB_ERR_FORMAT, "%s:1: not a per-query metrics file (header must start 'query<TAB>query_id')", path);
        break;
      }
      int k = 0;
      char *s2 = NULL;
      for (char *f = strtok_r(ln, "\t", &s2); f; f = strtok_r(NULL, "\t", &s2), k++)
        if (strcmp(f, metric) == 0) col = k;
      if (col < 2) {
        rc = pb_set_error(PB_ERR_ARG, "%s: no column '%s' (mrr@10, ndcg@10, map, recall@100)", path, metric);
        break;
      }
      continue;
    }
    int k = 0, p = -1;
    double v = NAN;
    char *s2 = NULL;
    for (char *f = strtok_r(ln, "\t", &s2); f; f = strtok_r(NULL, "\t", &s2), k++) {
      char *end;
      if (k == 0) p = (int)strtol(f, &end, 10);
      else if (k == col) v = strtod(f, &end);
      else continue;
      if (*end) {
        rc = pb_set_error(PB_ERR_FORMAT, "%s:%d: field %d '%s' is not a number", path, line, k + 1, f);
        break;
      }
    }
    if (rc) break;
    if (p < 1 || !isfinite(v) || k <= col) {
      rc = pb_set_error(PB_ERR_FORMAT, "%s:%d: expected a query position and a finite %s", path, line, metric);
      break;
    }
    if (*n == cap) {
      cap = cap ? 2 * cap : 64;
      double *nq = realloc(*q, sizeof(double) * (size_t)cap);
      if (nq) *q = nq;
      int *np = realloc(*pos, sizeof(int) * (size_t)cap);
      if (np) *pos = np;
      if (!nq || !np) {
        rc = pb_set_error(PB_ERR_NOMEM, "%s: out of memory", path);
        break;
      }
    }
    (*q)[*n] = v;
    (*pos)[*n] = p;
    (*n)++;
  }
  if (!rc && *n == 0) rc = pb_set_error(PB_ERR_FORMAT, "%s: no queries", path);
  free(data);
  if (rc) {
    free(*q);
    free(*pos);
    *q = NULL;
    *pos = NULL;
  }
  return rc;
}

static const char *USAGE =
    "usage: peftbench ircompare --a FILE [--a FILE ...] --b FILE [--b FILE ...] [options]\n"
    "  Paired tests over queries between two retrieval systems: FILEs are per-query metrics files\n"
    "  (STEM.SPLIT.predictions.tsv of `peftbench retrieve`), one per seed; each side's values are\n"
    "  averaged over its files, query by query. Every file must list the same queries.\n"
    "  --metric M (ndcg@10)  mrr@10, ndcg@10, map or recall@100\n"
    "  --samples R (10000)   randomisation and bootstrap rounds\n"
    "  --alpha X (0.05)  --seed N (0)  --json\n";

/* the mean per query of several files (same queries, same order) */
static int side_mean(const char *const *files, int nf, const char *metric, double **out, int **pos_out, int *n_out) {
  double *acc = NULL;
  int *pos0 = NULL, n0 = 0;
  for (int f = 0; f < nf; f++) {
    double *v;
    int *pos, n;
    int rc = pb_ir_read_perquery(files[f], metric, &v, &pos, &n);
    if (rc) {
      free(acc);
      free(pos0);
      return rc;
    }
    if (f == 0) {
      acc = calloc((size_t)n, sizeof(double));
      pos0 = pos;
      n0 = n;
      if (!acc) return pb_set_error(PB_ERR_NOMEM, "ircompare: out of memory");
    } else {
      int same = n == n0;
      for (int i = 0; same && i < n; i++) same = pos[i] == pos0[i];
      free(pos);
      if (!same) {
        free(v);
        free(acc);
        free(pos0);
        return pb_set_error(PB_ERR_FORMAT, "%s: its queries differ from %s's", files[f], files[0]);
      }
    }
    for (int i = 0; i < n; i++) acc[i] += v[i] / nf;
    free(v);
  }
  *out = acc;
  *pos_out = pos0;
  *n_out = n0;
  return PB_OK;
}

int pb_cmd_ircompare(int argc, char **argv) {
  enum { O_A = 256, O_B, O_METRIC, O_SAMPLES, O_ALPHA, O_SEED, O_JSON };
  static const struct option opts[] = {
      {"a", required_argument, 0, O_A},          {"b", required_argument, 0, O_B},
      {"metric", required_argument, 0, O_METRIC}, {"samples", required_argument, 0, O_SAMPLES},
      {"alpha", required_argument, 0, O_ALPHA},  {"seed", required_argument, 0, O_SEED},
      {"json", no_argument, 0, O_JSON},          {"help", no_argument, 0, 'h'},
      {0, 0, 0, 0}};
  const char *fa[64], *fb[64], *metric = "ndcg@10";
  int na = 0, nb = 0, json = 0, c;
  long samples = 10000, seed = 0;
  double alpha = 0.05;
  opterr = 0;
  while ((c = getopt_long(argc, argv, ":h", opts, NULL)) != -1) {
    switch (c) {
      case O_A:
      case O_B:
        if ((c == O_A ? na : nb) >= 64) {
          fprintf(stderr, "peftbench ircompare: at most 64 files per side\n");
          return 2;
        }
        if (c == O_A) fa[na++] = optarg;
        else fb[nb++] = optarg;
        break;
      case O_METRIC: metric = optarg; break;
      case O_SAMPLES: if (!pb_cli_int("--samples", optarg, 1, 100000000, &samples)) return 2; break;
      case O_ALPHA: if (!pb_cli_num("--alpha", optarg, 1e-9, 0.999999, &alpha)) return 2; break;
      case O_SEED: if (!pb_cli_int("--seed", optarg, 0, 2147483647L, &seed)) return 2; break;
      case O_JSON: json = 1; break;
      case 'h': fputs(USAGE, stdout); return 0;
      default: return pb_cli_bad_option("ircompare", argc, argv, opts);
    }
  }
  int known = 0;
  for (int k = 0; k < PB_IR_NMETRICS; k++) known |= strcmp(metric, pb_ir_metric_name(k)) == 0;
  if (!known) {
    fprintf(stderr, "peftbench ircompare: --metric '%s': expected mrr@10, ndcg@10, map or recall@100\n", metric);
    return 2;
  }
  if (optind < argc || na == 0 || nb == 0) {
    fprintf(stderr, "peftbench ircompare: give --a FILE and --b FILE (see --help)\n");
    return 2;
  }
  double *a = NULL, *b = NULL;
  int *pa = NULL, *pb = NULL, n_a = 0, n_b = 0;
  int rc = side_mean(fa, na, metric, &a, &pa, &n_a);
  if (!rc) rc = side_mean(fb, nb, metric, &b, &pb, &n_b);
  if (!rc) {
    int same = n_a == n_b;
    for (int i = 0; same && i < n_a; i++) same = pa[i] == pb[i];
    if (!same) rc = pb_set_error(PB_ERR_FORMAT, "%s and %s list different queries", fa[0], fb[0]);
  }
  pb_ir_paired_result r;
  if (!rc) rc = pb_ir_paired(a, b, n_a, samples, (uint64_t)seed, alpha, &r);
  free(a);
  free(b);
  free(pa);
  free(pb);
  if (rc) {
    fprintf(stderr, "peftbench ircompare: %s\n", pb_last_error());
    return 1;
  }
  if (json)
    printf("{\"metric\":\"%s\",\"queries\":%d,\"files_a\":%d,\"files_b\":%d,\"mean_a\":%.17g,\"mean_b\":%.17g,"
           "\"diff\":%.17g,\"t\":%.17g,\"df\":%.17g,\"p_t\":%.17g,\"samples\":%ld,\"p_randomisation\":%.17g,"
           "\"ci\":[%.17g,%.17g],\"confidence\":%.17g}\n",
           metric, r.n, na, nb, r.mean_a, r.mean_b, r.diff, r.t, r.df, r.p_t, r.samples, r.p_rand, r.ci_low,
           r.ci_high, r.confidence);
  else
    printf("%s over %d queries: A %.4f (%d file%s), B %.4f (%d file%s), B - A %+.4f\n"
           "  paired t-test: t = %.3f, df = %.0f, p = %.4g\n"
           "  randomisation test (%ld rounds): p = %.4g\n"
           "  bootstrap %.0f%% CI of B - A: [%+.4f, %+.4f]\n",
           metric, r.n, r.mean_a, na, na > 1 ? "s" : "", r.mean_b, nb, nb > 1 ? "s" : "", r.diff, r.t, r.df, r.p_t,
           r.samples, r.p_rand, 100 * r.confidence, r.ci_low, r.ci_high);
  return 0;
}
