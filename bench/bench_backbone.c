/* bench_backbone: times the C backbone on the shapes of bench/run.sh and prints one JSON line
 * per measurement (the PyTorch twin, bench/torch_bench.py, prints the same fields).
 *
 *   bench_backbone --shape tiny|mini|base --batch B [--seq 128] [--modes infer,full,lora]
 *                  [--reps 3] [--warmup 1] [--threads 2] [--round 0]
 *   bench_backbone --sgemm [--threads 2]          measured sgemm peak (GFLOP/s), 1..threads
 *   bench_backbone --overhead --shape mini --batch 32 --modes full
 *                  step time with counters off / op counting on / op counting + PAPI on
 *   bench_backbone --ab VAR=VALUE --shape tiny --batch 32 --modes infer --reps 15
 *                  A/B of a policy variable of backbone/ops.c in one process: each rep runs one
 *                  step without VAR (A) and one with VAR=VALUE (B), in ABBA order; prints both
 *                  medians and the median of the paired B/A ratios (robust to slow drifts)
 *   --counters off|opcount|papi   what the timed steps of a normal run have on (default off;
 *                  e.g. under `perf stat -e instructions:u` for a load-independent overhead)
 *
 * Modes: infer = pb_forward (training 0, no labels); full = zero grads + forward + backward +
 * AdamW over all params ("full" method); lora = the same with LoRA r=8 alpha=16 on query,value
 * (backbone frozen). Dropout 0.1 everywhere in training steps (the config's defaults).
 * Peak RSS per mode: VmHWM after /proc/self/clear_refs = 5 (reset before each mode).
 * FLOPs per step: from the instrumented op counter over one untimed warm-up step
 * (2*MAC + elementwise + transcendental, all owners incl. the optimizer). */
#include <cblas.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "backbone/bert.h"
#include "backbone/bf16.h"
#include "backbone/blas.h"
#include "backbone/ops.h"
#include "backbone/params.h"
#include "util/rng.h"
#include "util/status.h"
#include "counters/opcount.h"
#include "counters/papi.h"
#include "methods/method.h"

static double now_s(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static int cmp_double(const void *a, const void *b) {
  double x = *(const double *)a, y = *(const double *)b;
  return (x > y) - (x < y);
}

static double median(double *v, int n) {
  qsort(v, (size_t)n, sizeof *v, cmp_double);
  return n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

/* peak resident set (MiB) since the last reset_peak_rss(), from /proc/self/status VmHWM */
static double peak_rss_mib(void) {
  FILE *f = fopen("/proc/self/status", "r");
  if (!f) return -1;
  char line[256];
  double kb = -1;
  while (fgets(line, sizeof line, f))
    if (!strncmp(line, "VmHWM:", 6)) kb = atof(line + 6);
  fclose(f);
  return kb / 1024.0;
}

static void reset_peak_rss(void) {
  FILE *f = fopen("/proc/self/clear_refs", "w");
  if (f) {
    fputs("5", f);
    fclose(f);
  }
}

/* shapes of the issue: tiny L2/H128, mini L4/H256, base L12/H768; vocab 30522, 2 labels */
static int shape_config(pb_config *c, const char *shape) {
  pb_config_bert_base(c, 2);
  if (!strcmp(shape, "base")) return 0;
  if (!strcmp(shape, "mini")) {
    c->hidden = 256, c->layers = 4, c->heads = 4, c->ffn = 1024;
    return 0;
  }
  if (!strcmp(shape, "tiny")) {
    c->hidden = 128, c->layers = 2, c->heads = 2, c->ffn = 512;
    return 0;
  }
  return -1;
}

/* Values for timing only: every tensor as its declared init kind, but a "normal" one drawn
 * uniform with the same std (pb_params_init's Box-Muller takes ~10 s over bert-base). */
static void fast_init(pb_params *p, uint64_t seed) {
  pb_rng r;
  pb_rng_seed(&r, seed);
  for (int i = 0; i < p->n; i++) {
    pb_tensor *t = &p->t[i];
    const float a = t->init == PB_INIT_NORMAL ? 1.7320508f * t->init_a : t->init_a; /* sqrt(3) std */
    for (size_t j = 0; j < t->numel; j++) {
      float v = 0.0f;
      if (t->init == PB_INIT_ONE) v = 1.0f;
      else if (t->init != PB_INIT_ZERO) v = a * (2.0f * (float)(pb_rng_u64(&r) >> 40) * (1.0f / 16777216.0f) - 1.0f);
      t->data[j] = v;
    }
  }
}

typedef struct {
  pb_model m;
  pb_method_inst meth;
  pb_adamw opt;
  int *ids, *types, *mask, *labels; /* [B*T], [B*T], [B*T], [B] */
  int B, T, step;
  int train;                        /* 0: inference only */
} bench_ctx;

static int ctx_setup(bench_ctx *x, const pb_config *cfg, const char *mode, int B, int T) {
  memset(x, 0, sizeof *x);
  int rc = pb_model_declare(&x->m, cfg);
  if (rc) return rc;
  x->train = strcmp(mode, "infer") != 0;
  if (x->train) {
    static const char *const lora_opts[] = {"r=8", "alpha=16", NULL};
    const int lora = !strcmp(mode, "lora");
    if ((rc = pb_method_create(&x->meth, lora ? "lora" : "full", lora ? lora_opts : NULL))) return rc;
    if ((rc = x->meth.m->attach(x->meth.ctx, &x->m))) return rc;
  }
  if ((rc = x->train ? pb_model_alloc(&x->m, B, T) : pb_model_alloc_infer(&x->m, B, T))) return rc;
  fast_init(&x->m.params, 1234);
  pb_adamw_defaults(&x->opt);
  x->opt.lr = 1e-5f;
  x->B = B, x->T = T;
  x->ids = malloc(sizeof(int) * (size_t)B * T);
  x->types = malloc(sizeof(int) * (size_t)B * T);
  x->mask = malloc(sizeof(int) * (size_t)B * T);
  x->labels = malloc(sizeof(int) * (size_t)B);
  if (!x->ids || !x->types || !x->mask || !x->labels) return pb_set_error(PB_ERR_NOMEM, "bench: out of memory");
  pb_rng r;
  pb_rng_seed(&r, 99);
  for (int i = 0; i < B * T; i++) {
    x->ids[i] = (int)(pb_rng_u64(&r) % (uint64_t)cfg->vocab_size);
    x->types[i] = (i % T) >= T / 2;
    x->mask[i] = 1;
  }
  for (int b = 0; b < B; b++) x->labels[b] = b % 2;
  return PB_OK;
}

static void ctx_free(bench_ctx *x) {
  if (x->meth.m) pb_method_destroy(&x->meth);
  pb_model_free(&x->m);
  free(x->ids), free(x->types), free(x->mask), free(x->labels);
}

/* seconds of the last step's phases: zero_grad, forward, backward, optimizer */
static double g_phase[4];

static int run_step(bench_ctx *x) {
  int rc;
  double t0 = now_s();
  if (!x->train) {
    rc = pb_forward(&x->m, x->ids, x->types, x->mask, x->B, x->T, NULL, NULL, 0, 0, NULL);
    g_phase[0] = 0, g_phase[1] = now_s() - t0, g_phase[2] = g_phase[3] = 0;
    return rc;
  }
  pb_params_zero_grad(&x->m.params);
  double t1 = now_s();
  x->step++;
  if ((rc = pb_forward(&x->m, x->ids, x->types, x->mask, x->B, x->T, x->labels, NULL, 1, 1000 + x->step, NULL)))
    return rc;
  double t2 = now_s();
  if ((rc = pb_backward(&x->m))) return rc;
  double t3 = now_s();
  int prev = pb_opc_set_owner(PB_OPO_OPTIM);
  rc = pb_adamw_step(&x->m.params, &x->opt, x->step);
  pb_opc_set_owner(prev);
  double t4 = now_s();
  g_phase[0] = t1 - t0, g_phase[1] = t2 - t1, g_phase[2] = t3 - t2, g_phase[3] = t4 - t3;
  return rc;
}

static double flops_of_step(bench_ctx *x) {
  pb_opc_reset();
  pb_opc_enable(1);
  int rc = run_step(x);
  pb_opc_enable(0);
  if (rc) return -1;
  pb_opcounts c = pb_opc_snapshot();
  return (double)pb_opcounts_flops(&c, -1);
}

/* --ab VAR=VALUE: paired A (VAR unset) / B (VAR=VALUE) steps, ABBA order */
static int ab_compare(bench_ctx *x, const char *ab, const char *shape, const char *mode, int reps) {
  char var[64];
  const char *eq = strchr(ab, '=');
  snprintf(var, sizeof var, "%.*s", (int)(eq - ab), ab);
  double *t = malloc(sizeof(double) * (size_t)reps * 3), *ta = t, *tb = t + reps, *ratio = t + 2 * reps;
  if (!t) return pb_set_error(PB_ERR_NOMEM, "bench: out of memory");
  int rc = 0;
  for (int r = 0; !rc && r < reps; r++)
    for (int k = 0; !rc && k < 2; k++) {
      const int b = (k ^ r) & 1; /* A B, B A, A B, ... */
      if (b) setenv(var, eq + 1, 1);
      else unsetenv(var);
      pb_ops_reload_policy();
      double s = now_s();
      rc = run_step(x);
      (b ? tb : ta)[r] = now_s() - s;
    }
  unsetenv(var);
  pb_ops_reload_policy();
  if (!rc) {
    for (int r = 0; r < reps; r++) ratio[r] = tb[r] / ta[r];
    double mr = median(ratio, reps), ma = median(ta, reps), mb = median(tb, reps);
    printf("{\"impl\":\"c-ab\",\"shape\":\"%s\",\"batch\":%d,\"seq\":%d,\"mode\":\"%s\",\"reps\":%d,"
           "\"b\":\"%s\",\"a_s\":%.5f,\"b_s\":%.5f,\"paired_b_over_a\":%.4f}\n",
           shape, x->B, x->T, mode, reps, ab, ma, mb, mr);
  }
  free(t);
  return rc;
}

static double sgemm_gflops(int n, int threads) {
  openblas_set_num_threads(threads);
  float *a = malloc(sizeof(float) * (size_t)n * n), *b = malloc(sizeof(float) * (size_t)n * n),
        *c = malloc(sizeof(float) * (size_t)n * n);
  for (size_t i = 0; i < (size_t)n * n; i++) a[i] = b[i] = 0.001f * (float)(i % 997), c[i] = 0;
  double best = 1e30;
  for (int r = 0; r < 12; r++) { /* best of 11 after a warm-up: a peak, robust to a VM's noisy moments */
    double t0 = now_s();
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, n, n, n, 1.0f, a, n, b, n, 0.0f, c, n);
    double t = now_s() - t0;
    if (r > 0 && t < best) best = t;
  }
  free(a), free(b), free(c);
  return 2.0 * n * n * (double)n / best / 1e9;
}

/* the bf16 peak: the same 2048^3 product through pb_bf16_gemm (oneDNN, operands rounded to bf16
 * beforehand: the A operand is rounded in every call, as in the backbone, B is a cached weight) */
static double bf16_gflops(int n, int threads) {
  pb_set_threads(threads);
  float *a = malloc(sizeof(float) * (size_t)n * n), *b = malloc(sizeof(float) * (size_t)n * n),
        *c = malloc(sizeof(float) * (size_t)n * n);
  for (size_t i = 0; i < (size_t)n * n; i++) a[i] = b[i] = 0.001f * (float)(i % 997), c[i] = 0;
  double best = 1e30;
  for (int r = 0; r < 12; r++) {
    double t0 = now_s();
    if (pb_bf16_gemm(0, 1, n, n, n, 1.0f, a, n, b, n, 0.0f, c, n, NULL, 1)) best = 0;
    double t = now_s() - t0;
    if (r > 0 && t < best) best = t;
  }
  free(a), free(b), free(c);
  return best > 0 ? 2.0 * n * n * (double)n / best / 1e9 : 0;
}

static void usage(void) {
  fprintf(stderr,
          "usage: bench_backbone --shape tiny|mini|base --batch B [--seq T] [--modes infer,full,lora] [--reps N]\n"
          "                      [--warmup N] [--threads N] [--round R] [--counters off|opcount|papi] [--overhead | --ab VAR=VALUE]\n"
          "                      [--precision fp32|bf16]\n"
          "       bench_backbone --sgemm [--threads N] [--precision fp32|bf16]\n");
}

int main(int argc, char **argv) {
  const char *shape = "tiny", *modes = "infer,full,lora";
  int B = 32, T = 128, reps = 3, warmup = 1, threads = 2, round = 0, do_sgemm = 0, do_overhead = 0;
  const char *ab = NULL; /* --ab VAR=VALUE */
  pb_precision prec = PB_PREC_FP32;
  int counters = 0; /* timed steps with: 0 nothing, 1 op counting, 2 op counting + PAPI start/stop */
  for (int i = 1; i < argc; i++) {
    const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
    if (!strcmp(a, "--sgemm")) do_sgemm = 1;
    else if (!strcmp(a, "--overhead")) do_overhead = 1;
    else if (!strcmp(a, "--ab") && v && strchr(v, '=') && strchr(v, '=') != v) ab = v, i++;
    else if (!v) return usage(), 2;
    else if (!strcmp(a, "--shape")) shape = v, i++;
    else if (!strcmp(a, "--batch")) B = atoi(v), i++;
    else if (!strcmp(a, "--seq")) T = atoi(v), i++;
    else if (!strcmp(a, "--modes")) modes = v, i++;
    else if (!strcmp(a, "--reps")) reps = atoi(v), i++;
    else if (!strcmp(a, "--warmup")) warmup = atoi(v), i++;
    else if (!strcmp(a, "--threads")) threads = atoi(v), i++;
    else if (!strcmp(a, "--round")) round = atoi(v), i++;
    else if (!strcmp(a, "--precision")) {
      if (pb_precision_parse(v, &prec)) return fprintf(stderr, "bench_backbone: %s\n", pb_last_error()), usage(), 2;
      i++;
    } else if (!strcmp(a, "--counters")) counters = !strcmp(v, "opcount") ? 1 : !strcmp(v, "papi") ? 2 : 0, i++;
    else return usage(), 2;
  }
  if (B < 1 || T < 1 || reps < 1 || warmup < 0 || threads < 1 || reps > 1000) return usage(), 2;
  pb_set_threads(threads);
  if (pb_set_precision(prec)) return fprintf(stderr, "bench_backbone: %s\n", pb_last_error()), 1;
  if (do_sgemm) {
    const pb_blas_info *bi = pb_blas_get();
    /* the bf16 peak first: OpenBLAS's pool, once woken by the threaded sgemm below, spins on the
     * cores for a while and would halve it */
    if (prec == PB_PREC_BF16)
      for (int t = 1; t <= threads; t++)
        printf("{\"impl\":\"bf16gemm\",\"threads\":%d,\"n\":2048,\"gflops\":%.2f,\"kernel\":\"%s\",\"library\":\"%s\"}\n", t,
               bf16_gflops(2048, t), pb_bf16_kernel(), pb_bf16_library());
    for (int t = 1; t <= threads; t++)
      printf("{\"impl\":\"sgemm\",\"threads\":%d,\"n\":2048,\"gflops\":%.2f,\"blas_core\":\"%s\","
             "\"blas_detected\":\"%s\"}\n",
             t, sgemm_gflops(2048, t), bi->core, bi->detected);
    return 0;
  }
  pb_config cfg;
  if (shape_config(&cfg, shape)) return usage(), 2;
  char mlist[64];
  snprintf(mlist, sizeof mlist, "%s", modes);
  for (char *save = NULL, *mode = strtok_r(mlist, ",", &save); mode; mode = strtok_r(NULL, ",", &save)) {
    if (strcmp(mode, "infer") && strcmp(mode, "full") && strcmp(mode, "lora")) return usage(), 2;
    reset_peak_rss();
    bench_ctx x;
    double t0 = now_s();
    int rc = ctx_setup(&x, &cfg, mode, B, T);
    double setup_s = now_s() - t0;
    if (rc) {
      fprintf(stderr, "bench_backbone: %s\n", pb_last_error());
      return 1;
    }
    double flops = flops_of_step(&x); /* also the first warm-up step */
    for (int w = 1; w < warmup; w++)
      if ((rc = run_step(&x))) break;
    if (ab) {
      rc = ab_compare(&x, ab, shape, mode, reps);
      if (rc) {
        fprintf(stderr, "bench_backbone: %s\n", pb_last_error());
        return 1;
      }
    } else if (!do_overhead) {
      double *ts = malloc(sizeof(double) * (size_t)reps * 5), *ph = ts + reps;
      if (counters == 2) pb_papi_init(NULL);
      for (int r = 0; !rc && r < reps; r++) {
        pb_opc_enable(counters >= 1);
        double s = now_s();
        if (counters == 2) pb_papi_start("train");
        rc = run_step(&x);
        if (counters == 2) pb_papi_stop("train");
        ts[r] = now_s() - s;
        pb_opc_enable(0);
        for (int k = 0; k < 4; k++) ph[k * reps + r] = g_phase[k];
      }
      if (rc) {
        fprintf(stderr, "bench_backbone: %s\n", pb_last_error());
        return 1;
      }
      printf("{\"impl\":\"c\",\"setting\":\"c%d\",\"shape\":\"%s\",\"batch\":%d,\"seq\":%d,\"mode\":\"%s\","
             "\"round\":%d,\"precision\":\"%s\",\"kernel\":\"%s\",\"times\":[",
             threads, shape, B, T, mode, round, pb_precision_name(prec), prec == PB_PREC_BF16 ? pb_bf16_kernel() : "openblas sgemm");
      for (int r = 0; r < reps; r++) printf("%s%.5f", r ? "," : "", ts[r]);
      double med = median(ts, reps);
      printf("],\"median_s\":%.5f,\"flops\":%.6g,\"gflops\":%.2f,\"peak_rss_mib\":%.1f,\"setup_s\":%.2f", med,
             flops, flops / med / 1e9, peak_rss_mib(), setup_s);
      printf(",\"phases_s\":{\"zero_grad\":%.5f,\"forward\":%.5f,\"backward\":%.5f,\"adamw\":%.5f}}\n",
             median(ph, reps), median(ph + reps, reps), median(ph + 2 * reps, reps), median(ph + 3 * reps, reps));
      free(ts);
    } else {
      /* alternate: off, opcount, opcount + PAPI read around each step */
      int papi_ok = pb_papi_init(NULL) == 0;
      double *ts[3];
      for (int k = 0; k < 3; k++) ts[k] = malloc(sizeof(double) * (size_t)reps);
      for (int r = 0; !rc && r < reps; r++)
        for (int k = 0; !rc && k < 3; k++) {
          pb_opc_reset();
          pb_opc_enable(k >= 1);
          double s = now_s();
          if (k == 2) pb_papi_start("train");
          rc = run_step(&x);
          if (k == 2) pb_papi_stop("train");
          ts[k][r] = now_s() - s;
          pb_opc_enable(0);
        }
      if (rc) {
        fprintf(stderr, "bench_backbone: %s\n", pb_last_error());
        return 1;
      }
      /* paired ratios (each rep's three steps ran back to back, so they share the machine's
       * state at that moment): far less noisy than a ratio of medians on a shared VM */
      double *pr1 = malloc(sizeof(double) * (size_t)reps * 2), *pr2 = pr1 + reps;
      for (int r = 0; r < reps; r++) pr1[r] = ts[1][r] / ts[0][r], pr2[r] = ts[2][r] / ts[0][r];
      const double p1 = median(pr1, reps), p2 = median(pr2, reps);
      free(pr1);
      double m0 = median(ts[0], reps), m1 = median(ts[1], reps), m2 = median(ts[2], reps);
      /* direct cost of one PAPI start/stop pair and of 10^6 op-counter adds (load-independent) */
      double s0 = now_s();
      for (int k = 0; k < 1000; k++) pb_papi_start("probe"), pb_papi_stop("probe");
      const double papi_pair_us = (now_s() - s0) * 1e3;
      pb_opc_enable(1);
      s0 = now_s();
      for (int k = 0; k < 1000000; k++) pb_opc_add(PB_OPK_FLOP, (uint64_t)k);
      const double opc_add_ns = (now_s() - s0) * 1e3;
      pb_opc_enable(0);
      printf("{\"impl\":\"c-overhead\",\"shape\":\"%s\",\"batch\":%d,\"seq\":%d,\"mode\":\"%s\",\"reps\":%d,"
             "\"off_s\":%.5f,\"opcount_s\":%.5f,\"opcount_papi_s\":%.5f,\"opcount_pct\":%.2f,"
             "\"opcount_papi_pct\":%.2f,\"opcount_paired_pct\":%.2f,\"opcount_papi_paired_pct\":%.2f,"
             "\"papi_available\":%d,\"papi_pair_us\":%.2f,\"opc_add_ns\":%.3f}\n",
             shape, B, T, mode, reps, m0, m1, m2, 100.0 * (m1 / m0 - 1), 100.0 * (m2 / m0 - 1), 100.0 * (p1 - 1),
             100.0 * (p2 - 1),
             papi_ok && pb_papi_available(), papi_pair_us, opc_add_ns);
      for (int k = 0; k < 3; k++) free(ts[k]);
      pb_papi_finish();
    }
    fflush(stdout);
    ctx_free(&x);
  }
  return 0;
}
