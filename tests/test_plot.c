/* Tests of `peftbench plot` (harness/plot.c + plots/ scripts) on synthetic result records:
 * every figure rendered as PNG (signature, IHDR width/height > 100, > 5 KB) and SVG (holds
 * plotted <path> elements), the data files, and the errors: missing scripts, a failing
 * gnuplot script, gnuplot not on PATH, a quote in the output path, no records.
 * Honest figures: the score-axis rule (pb_plot_score_range: a points plot spans at least 10
 * points and holds the majority baseline, full fine-tuning and every error bar; bars always
 * 0..100), the sd columns (error bars where n > 1, NaN with one seed), the reference values
 * handed to the scripts, and the RTE scenario of three LoRA configurations that must be three
 * points, not one. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "util/fileio.h"
#include "harness/plot.h"
#include "tests/check.h"


/* One record at bert-base-like scale. */
static void rec(FILE *f, const char *task, const char *method, const char *desc, int seed,
                const char *metrics, long long method_params, long long head, long long file_bytes,
                double ops_tok, int mergeable) {
  long long backbone = 109482240;
  long long trainable = (strcmp(method, "full") == 0 ? backbone : method_params) + head;
  fprintf(f,
          "{\"schema\":\"peftbench-result/1\",\"task\":\"%s\",\"method\":\"%s\",\"method_desc\":\"%s\","
          "\"seed\":%d,\"backbone\":{\"source\":\"models/default\",\"pretrained\":true,"
          "\"fingerprint\":\"feedfacecafebeef\"},\"metrics\":%s,"
          "\"params\":{\"backbone\":%lld,\"method\":%lld,\"head\":%lld,\"trainable\":%lld},"
          "\"storage\":{\"file_bytes\":%lld},"
          "\"ops\":{\"per_token_T128\":{\"flops\":{\"method\":%.17g}},"
          "\"inference_T128\":{\"flops\":{\"method\":%.17g}},\"method_merged_T128\":%s},"
          "\"counters\":null,\"timings\":null,\"memory\":null}\n",
          task, method, desc, seed, metrics, backbone, method_params, head, trainable, file_bytes,
          ops_tok, ops_tok * 128, mergeable ? "{\"flops\":{\"method\":0}}" : "null");
}

static void write_input(const char *path) {
  FILE *f = fopen(path, "w");
  if (!f) {
    perror(path);
    exit(1);
  }
  struct {
    const char *m, *desc;
    long long params, bytes;
    double ops;
    int merge;
    double base;
  } M[] = {{"full", "all", 0, 438000000, 0, 0, 0.86},
           {"lora", "r=8,alpha=16,targets=query+value", 294912, 1200000, 1179648, 1, 0.85},
           {"adapter", "pfeiffer,bottleneck=8", 156768, 640000, 316000, 0, 0.84},
           {"layerconnect", "form=diag,anchors=9,scope=tokens", 13824, 60000, 27648, 0, 0.83}};
  for (int m = 0; m < 4; m++)
    for (int seed = 0; seed < 2; seed++) {
      double b = M[m].base + 0.005 * seed;
      char met[512];
      snprintf(met, sizeof met, "{\"splits\":{\"dev\":{\"accuracy\":%.4f}},\"score\":%.4f,\"majority_baseline\":0.5}", b + 0.06, b + 0.06);
      rec(f, "sst2", M[m].m, M[m].desc, seed, met, M[m].params, 1538, M[m].bytes, M[m].ops, M[m].merge);
      snprintf(met, sizeof met, "{\"splits\":{\"dev\":{\"f1\":%.4f,\"accuracy\":%.4f}},\"score\":%.4f,\"majority_baseline\":0.7}",
               b + 0.04, b, b + 0.02);
      rec(f, "mrpc", M[m].m, M[m].desc, seed, met, M[m].params, 1538, M[m].bytes, M[m].ops, M[m].merge);
      snprintf(met, sizeof met,
               "{\"splits\":{\"dev_matched\":{\"accuracy\":%.4f},\"dev_mismatched\":{\"accuracy\":%.4f}},\"score\":%.4f,"
               "\"majority_baseline\":0.35}",
               b - 0.02, b - 0.01, b - 0.015);
      rec(f, "mnli", M[m].m, M[m].desc, seed, met, M[m].params, 2307, M[m].bytes + 3000, M[m].ops, M[m].merge);
    }
  /* STS-B for LoRA only */
  rec(f, "stsb", "lora", M[1].desc, 0, "{\"splits\":{\"dev\":{\"pearson\":0.88,\"spearman\":0.87}},\"score\":0.875,\"majority_baseline\":null}",
      294912, 769, 1190000, 1179648, 1);
  fprintf(f, "{\"task\":\"sst2\",\"met"); /* torn */
  fclose(f);
}

static long file_size(const char *p) {
  struct stat st;
  return stat(p, &st) == 0 ? (long)st.st_size : -1;
}

/* Checks one PNG: signature, IHDR width/height > 100, size > 5 KB. */
static void check_png(const char *path) {
  unsigned char h[24] = {0};
  FILE *f = fopen(path, "rb");
  size_t n = f ? fread(h, 1, sizeof h, f) : 0;
  if (f) fclose(f);
  static const unsigned char sig[8] = {0x89, 'P', 'N', 'G', '\r', '\n', 0x1a, '\n'};
  unsigned w = (unsigned)h[16] << 24 | (unsigned)h[17] << 16 | (unsigned)h[18] << 8 | h[19];
  unsigned hh = (unsigned)h[20] << 24 | (unsigned)h[21] << 16 | (unsigned)h[22] << 8 | h[23];
  long sz = file_size(path);
  CHECK(n == 24 && memcmp(h, sig, 8) == 0 && memcmp(h + 12, "IHDR", 4) == 0 && w > 100 && hh > 100 && sz > 5000,
        "%s: PNG signature, IHDR %ux%u, %ld bytes", strrchr(path, '/') + 1, w, hh, sz);
}

static void check_svg(const char *path) {
  char *d = NULL;
  size_t n = 0;
  int ok = pb_read_file(path, &d, &n) == 0;
  int paths = 0;
  for (const char *p = d; ok && (p = strstr(p, "<path")); p++) paths++;
  CHECK(ok && strstr(d, "<svg") && paths >= 5, "%s: SVG with %d <path> elements", strrchr(path, '/') + 1, paths);
  free(d);
}

/* Runs pb_cmd_plot with stdout+stderr captured into logpath; returns the exit status. */
static int run_plot(const char *logpath, int argc, char **argv) {
  fflush(stdout);
  fflush(stderr);
  int s1 = dup(1), s2 = dup(2);
  FILE *e = fopen(logpath, "w");
  if (!e) return -100;
  dup2(fileno(e), 1);
  dup2(fileno(e), 2);
  int rc = pb_cmd_plot(argc, argv);
  fflush(stdout);
  fflush(stderr);
  dup2(s1, 1), dup2(s2, 2);
  close(s1), close(s2);
  fclose(e);
  return rc;
}

static char *slurp(const char *p) {
  char *d = NULL;
  size_t n = 0;
  return pb_read_file(p, &d, &n) == 0 ? d : NULL;
}


/* ---------------------------------------------------------------- honest figures */

/* The line of `text` that starts with `prefix`, copied into out[n] ("" when none). */
static void line_with(const char *text, const char *prefix, char *out, size_t n) {
  out[0] = 0;
  for (const char *p = text; p && *p;) {
    const char *e = strchr(p, '\n');
    size_t len = e ? (size_t)(e - p) : strlen(p);
    if (!strncmp(p, prefix, strlen(prefix))) {
      snprintf(out, n, "%.*s", (int)len, p);
      return;
    }
    p = e ? e + 1 : NULL;
  }
}

static void test_score_range(void) {
  double lo, hi;
  /* today's committed figure: scores 40.7..41.0 with a 39.1 baseline -> >= 10 points */
  double v1[] = {40.7, 40.9, 41.0, 40.9, 39.12};
  pb_plot_score_range(v1, 5, 0, &lo, &hi);
  CHECK(lo == 34 && hi == 46, "points within 2 points span 10 (+5%% each side): [%g, %g], expected [34, 46]", lo, hi);
  CHECK(hi - lo >= PB_PLOT_MIN_SPAN, "span >= PB_PLOT_MIN_SPAN");
  double v2[] = {20, 80, NAN};
  pb_plot_score_range(v2, 3, 0, &lo, &hi);
  CHECK(lo == 17 && hi == 83, "wide points: every value +5%%: [%g, %g], expected [17, 83]", lo, hi);
  double v3[] = {-12, 50, 77};
  pb_plot_score_range(v3, 3, 1, &lo, &hi);
  CHECK(lo == -20 && hi == 100, "bars: 0..100 and below 0 to a multiple of 10: [%g, %g]", lo, hi);
  double v4[] = {40.7, 41.0};
  pb_plot_score_range(v4, 2, 1, &lo, &hi);
  CHECK(lo == 0 && hi == 100, "bars never zoom: [%g, %g]", lo, hi);
  pb_plot_score_range(NULL, 0, 0, &lo, &hi);
  CHECK(lo == 0 && hi == 100, "no values: [0, 100]");
}

/* One RTE record with a training configuration (lr, max_train, epochs). */
static void rte_rec(FILE *f, const char *method, int seed, double score, double lr, int max_train, int epochs) {
  fprintf(f,
          "{\"schema\":\"peftbench-result/1\",\"task\":\"rte\",\"method\":\"%s\",\"method_desc\":\"r=8\",\"seed\":%d,"
          "\"config\":{\"method\":\"%s\",\"method_desc\":\"r=8\",\"backbone\":\"feedfacecafebeef\",\"data_seed\":0,"
          "\"max_train\":%d,\"max_len\":128,\"epochs\":%d,\"batch\":32,\"lr\":%.17g},\"config_id\":\"12345678\","
          "\"backbone\":{\"fingerprint\":\"feedfacecafebeef\"},"
          "\"metrics\":{\"splits\":{\"dev\":{\"accuracy\":%.17g}},\"score\":%.17g,\"majority_baseline\":0.5270758122743683},"
          "\"params\":{\"backbone\":109482240,\"method\":%d,\"head\":1538,\"trainable\":%d},"
          "\"storage\":{\"file_bytes\":1200000},"
          "\"ops\":{\"per_token_T128\":{\"flops\":{\"method\":%d}},\"inference_T128\":{\"flops\":{\"method\":%d}},"
          "\"method_merged_T128\":null}}\n",
          method, seed, method, max_train, epochs, lr, score, score, strcmp(method, "full") ? 294912 : 0,
          strcmp(method, "full") ? 294912 + 1538 : 109482240 + 1538, strcmp(method, "full") ? 1179648 : 0,
          strcmp(method, "full") ? 1179648 * 128 : 0);
}

static void test_rte_scenario(const char *dir) {
  char in[512], out[600], p[700];
  snprintf(in, sizeof in, "%s/rte.jsonl", dir);
  snprintf(out, sizeof out, "%s/rte", dir);
  mkdir(out, 0755);
  FILE *f = fopen(in, "w");
  rte_rec(f, "lora", 0, 0.47, 1e-4, 2000, 3);
  rte_rec(f, "lora", 0, 0.53, 3e-3, 2000, 3);
  rte_rec(f, "lora", 0, 0.53, 5e-4, 64, 2);
  rte_rec(f, "lora", 1, 0.49, 1e-4, 2000, 3);
  rte_rec(f, "full", 0, 0.55, 1e-4, 2000, 3);
  rte_rec(f, "full", 1, 0.57, 1e-4, 2000, 3);
  fclose(f);
  const char *files[] = {in};
  pb_agg a;
  CHECK_OK(pb_agg_load(files, 1, "test", NULL, &a));
  pb_plot_info info;
  CHECK_OK(pb_plot_write_data(&a, out, &info));
  pb_agg_free(&a);
  snprintf(p, sizeof p, "%s/score_vs_params.dat", out);
  char *d = slurp(p);
  char ln[512];
  CHECK(d && !strstr(d, "\"lora\" "), "score_vs_params: no single averaged 'lora' point");
  line_with(d, "\"lora (lr=0.0001)\"", ln, sizeof ln);
  CHECK(!strcmp(ln, "\"lora (lr=0.0001)\" 294912 48 1.414213562 2 1 -1"),
        "lr 1e-4 point: mean 48, sd 1.414 over 2 seeds: '%s'", ln);
  line_with(d, "\"lora (lr=0.003)\"", ln, sizeof ln);
  CHECK(!strcmp(ln, "\"lora (lr=0.003)\" 294912 53 NaN 1 1 1"), "lr 3e-3 point: one seed, sd NaN: '%s'", ln);
  line_with(d, "\"lora (max_train=64, epochs=2, lr=0.0005)\"", ln, sizeof ln);
  CHECK(!strcmp(ln, "\"lora (max_train=64, epochs=2, lr=0.0005)\" 294912 53 NaN 1 1 1"), "max_train 64 point: '%s'", ln);
  line_with(d, "# yrange", ln, sizeof ln);
  /* values: 48 ± 1.41, 53, 53, 56 ± 1.41, baseline 52.71, full 56: 46.59..57.41 -> span 10.83 */
  CHECK(!strncmp(ln, "# yrange 46 58 ", 15), "yrange of the scenario: '%s'", ln);
  line_with(d, "# majority_baseline", ln, sizeof ln);
  CHECK(!strncmp(ln, "# majority_baseline 52.70758123 ", 31), "majority baseline line: '%s'", ln);
  line_with(d, "# full_finetuning", ln, sizeof ln);
  CHECK(!strcmp(ln, "# full_finetuning 56 \"full\""), "full fine-tuning reference: '%s'", ln);
  CHECK(!strcmp(info.vars[0], "ymin=46; ymax=58; base=52.70758123; fullv=56; nsingle=2; npts=4"),
        "score_vs_params gnuplot variables: '%s'", info.vars[0]);
  free(d);
  snprintf(p, sizeof p, "%s/task_scores.dat", out);
  d = slurp(p);
  CHECK(d && strstr(d, "\"task\" \"full\" \"full sd\" \"lora (max_train=64, epochs=2, lr=0.0005)\" "
                       "\"lora (max_train=64, epochs=2, lr=0.0005) sd\" \"lora (lr=0.0001)\" \"lora (lr=0.0001) sd\" "
                       "\"lora (lr=0.003)\" \"lora (lr=0.003) sd\" \"majority-class baseline\" \"full fine-tuning\"\n"),
        "task_scores.dat header: one mean/sd pair per configuration, then the references");
  CHECK(d && strstr(d, "\n\"RTE\" 56 1.414213562 53 NaN 48 1.414213562 53 NaN 52.70758123 56\n"),
        "task_scores.dat RTE row: means, sds (NaN with one seed), baseline, full");
  CHECK(d && strstr(d, "# yrange 0 100 "), "task_scores: bars on 0..100");
  CHECK(!strcmp(info.vars[3], "ymin=0; ymax=100; nm=4; ntasks=1; hasfull=1; nsingle=2; npts=4"),
        "task_scores gnuplot variables: '%s'", info.vars[3]);
  free(d);
}

int main(void) {
  char dir[] = "/tmp/pb_test_plot_XXXXXX";
  if (!mkdtemp(dir)) {
    perror("mkdtemp");
    return 1;
  }
  char in[512], out[512], log[512];
  snprintf(in, sizeof in, "%s/results.jsonl", dir);
  snprintf(out, sizeof out, "%s/figs/sub", dir);
  snprintf(log, sizeof log, "%s/log.txt", dir);
  write_input(in);

  if (!pb_gnuplot_available()) {
    printf("FAIL gnuplot is not on PATH: install gnuplot-nox\n");
    return 1;
  }

  /* 1. all figures, both formats, with the repository's scripts */
  {
    char *argv[] = {"plot", in, "--out", out, "--plots-dir", "plots", NULL};
    int rc = run_plot(log, 6, argv);
    char *l = slurp(log);
    CHECK(rc == 0, "plot --format both exits 0 (got %d): %s", rc, l ? l : "");
    CHECK(l && strstr(l, "skipped 1 torn"), "torn line warned about");
    free(l);
    for (int i = 0; i < PB_PLOT_COUNT; i++) {
      char p[700];
      snprintf(p, sizeof p, "%s/%s.png", out, pb_plot_name(i));
      check_png(p);
      snprintf(p, sizeof p, "%s/%s.svg", out, pb_plot_name(i));
      check_svg(p);
      snprintf(p, sizeof p, "%s/%s.dat", out, pb_plot_name(i));
      CHECK(file_size(p) > 0, "%s exists", strrchr(p, '/') + 1);
    }
    char p[700];
    snprintf(p, sizeof p, "%s/score_vs_ops.dat", out);
    char *d = slurp(p);
    CHECK(d && strstr(d, "\"full\" 1000 ") && strstr(d, "\"lora merged\" 1000 ") && strstr(d, "\"lora\" 1179648 "),
          "score_vs_ops.dat: zero-cost points at the floor 1000 (a decade below 27648), LoRA merged and unmerged");
    CHECK(d && strstr(d, "\n\"full\" 1000 88.41666667 0 0.2041241452 2 1\n") &&
              strstr(d, "\n\"lora merged\" 1000 87.4375 0 NaN 1 -1\n"),
          "score_vs_ops.dat: full and LoRA merged, stacked at the floor, label on opposite sides");
    free(d);
    snprintf(p, sizeof p, "%s/storage.dat", out);
    d = slurp(p);
    CHECK(d && strstr(d, "\"method\" \"SST-2\" \"MRPC\" \"STS-B\" \"MNLI\"\n") && strstr(d, "\"adapter\" 625 625 NaN 627.9296875\n"),
          "storage.dat: header of tasks in GLUE order, KB values, NaN where not run");
    free(d);
    snprintf(p, sizeof p, "%s/score_vs_params.dat", out);
    d = slurp(p);
    CHECK(d && strstr(d, "\"layerconnect\" 13824 "), "score_vs_params.dat: LayerConnect at 13,824 params");
    /* 2 seeds per task except LoRA STS-B: error bars everywhere but LoRA */
    CHECK(d && strstr(d, "\"adapter\" 156768 86.41666667 0.2041241452 2 3 -1\n"),
          "adapter point: mean over 3 tasks, sd over seeds sqrt(3 x 0.3536^2)/3, n=2");
    CHECK(d && strstr(d, "\"lora\" 294912 87.4375 NaN 1 4 1\n"), "LoRA: STS-B has one seed -> no error bar");
    /* baseline: (SST-2 50 + MRPC 70 + STS-B 0 + MNLI 35) / 4 = 38.75; points up to 88.62:
     * span 49.87 around 63.69, +5% each side -> [36, 92] */
    char ln[256];
    line_with(d, "# majority_baseline", ln, sizeof ln);
    CHECK(!strncmp(ln, "# majority_baseline 38.75 ", 26), "baseline: mean over tasks, STS-B counted as 0: '%s'", ln);
    line_with(d, "# yrange", ln, sizeof ln);
    CHECK(!strncmp(ln, "# yrange 36 92 ", 15), "yrange holds the baseline: '%s'", ln);
    free(d);
    snprintf(p, sizeof p, "%s/score_vs_ops.dat", out);
    d = slurp(p);
    line_with(d, "# yrange", ln, sizeof ln);
    CHECK(!strncmp(ln, "# yrange 36 92 ", 15), "score_vs_ops: the same score axis: '%s'", ln);
    free(d);
    snprintf(p, sizeof p, "%s/task_scores.dat", out);
    d = slurp(p);
    CHECK(d && strstr(d, "\n\"STS-B\" NaN NaN 87.5 NaN NaN NaN NaN NaN NaN NaN\n"),
          "task_scores STS-B row: only LoRA, no sd, no majority baseline (regression), no full run");
    free(d);
    /* no temporary figure left behind */
    char cmd[800];
    snprintf(cmd, sizeof cmd, "ls -a '%s' | grep -q tmp", out);
    CHECK(system(cmd) != 0, "no temporary files left in the output folder");
  }

  /* 1b. honest figures: the score-axis rule and the RTE scenario */
  test_score_range();
  test_rte_scenario(dir);

  /* 2. png only */
  {
    char out2[600];
    snprintf(out2, sizeof out2, "%s/pngonly", dir);
    char *argv[] = {"plot", in, "--out", out2, "--format", "png", "--plots-dir", "plots", NULL};
    int rc = run_plot(log, 8, argv);
    char p[700];
    snprintf(p, sizeof p, "%s/task_scores.svg", out2);
    CHECK(rc == 0 && file_size(p) < 0, "--format png writes no SVG");
  }

  /* 3. errors */
  {
    char out3[600];
    snprintf(out3, sizeof out3, "%s/err", dir);
    char *argv[] = {"plot", in, "--out", out3, "--plots-dir", "/nonexistent/plots", NULL};
    int rc = run_plot(log, 6, argv);
    char *l = slurp(log);
    CHECK(rc == 1 && l && strstr(l, "not found") && strstr(l, "--plots-dir"), "bad script dir: exit 1: %s", l ? l : "");
    free(l);

    /* scripts that make gnuplot fail */
    char bad[600];
    snprintf(bad, sizeof bad, "%s/badplots", dir);
    mkdir(bad, 0755);
    for (int i = 0; i < PB_PLOT_COUNT; i++) {
      char p[700];
      snprintf(p, sizeof p, "%s/%s.gp", bad, pb_plot_name(i));
      const char *txt = "set output outfile\nplot datafile using 2:3 with nonsense_style\n";
      pb_write_file_atomic(p, txt, strlen(txt));
    }
    char *argv2[] = {"plot", in, "--out", out3, "--plots-dir", bad, NULL};
    rc = run_plot(log, 6, argv2);
    l = slurp(log);
    int lines = 0;
    for (const char *q = l; q && *q; q++) lines += *q == '\n';
    CHECK(rc == 1 && l && strstr(l, "gnuplot failed on") && strstr(l, "score_vs_params.gp"),
          "gnuplot failure: exit 1 with one clear line: %s", l ? l : "");
    CHECK(lines == 2, "failure output: the torn-line warning + one error line (%d lines)", lines);
    free(l);

    char *oldpath = getenv("PATH") ? strdup(getenv("PATH")) : NULL;
    setenv("PATH", "/nonexistent-bin", 1);
    char *argv3[] = {"plot", in, "--out", out3, NULL};
    rc = run_plot(log, 4, argv3);
    if (oldpath) setenv("PATH", oldpath, 1);
    free(oldpath);
    l = slurp(log);
    CHECK(rc == 1 && l && strstr(l, "gnuplot-nox"), "gnuplot missing: exit 1 saying to install gnuplot-nox: %s",
          l ? l : "");
    free(l);

    char quoted[700];
    snprintf(quoted, sizeof quoted, "%s/it's", dir);
    char *argv4[] = {"plot", in, "--out", quoted, "--plots-dir", "plots", NULL};
    rc = run_plot(log, 6, argv4);
    l = slurp(log);
    CHECK(rc == 1 && l && strstr(l, "single quote"), "output path with a single quote refused: %s", l ? l : "");
    free(l);

    char empty[600];
    snprintf(empty, sizeof empty, "%s/empty.jsonl", dir);
    pb_write_file_atomic(empty, "", 0);
    char *argv5[] = {"plot", empty, "--out", out3, "--plots-dir", "plots", NULL};
    rc = run_plot(log, 6, argv5);
    l = slurp(log);
    CHECK(rc == 1 && l && strstr(l, "no result records"), "empty input: exit 1: %s", l ? l : "");
    free(l);

    char *argv6[] = {"plot", in, "--out", out3, "--format", "gif", NULL};
    rc = run_plot(log, 6, argv6);
    CHECK(rc == 2, "unknown format: exit 2");
    char *argv7[] = {"plot", in, NULL};
    rc = run_plot(log, 2, argv7);
    CHECK(rc == 2, "missing --out: exit 2");
  }

  char cmd[600];
  snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
  if (getenv("PB_TEST_KEEP")) printf("kept %s (PB_TEST_KEEP)\n", dir);
  else if (system(cmd) != 0) printf("note: could not remove %s\n", dir);
  printf(failures ? "test_plot: FAILED\n" : "test_plot: all passed\n");
  return check_exit_status();
}
