/* Tests of `peftbench plot` (harness/plot.c + plots/ scripts) on synthetic result records:
 * every figure rendered as PNG (signature, IHDR width/height > 100, > 5 KB) and SVG (holds
 * plotted <path> elements), the data files, and the errors: missing scripts, a failing
 * gnuplot script, gnuplot not on PATH, a quote in the output path, no records. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "backbone/fileio.h"
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
      snprintf(met, sizeof met, "{\"splits\":{\"dev\":{\"accuracy\":%.4f}},\"score\":%.4f}", b + 0.06, b + 0.06);
      rec(f, "sst2", M[m].m, M[m].desc, seed, met, M[m].params, 1538, M[m].bytes, M[m].ops, M[m].merge);
      snprintf(met, sizeof met, "{\"splits\":{\"dev\":{\"f1\":%.4f,\"accuracy\":%.4f}},\"score\":%.4f}", b + 0.04,
               b, b + 0.02);
      rec(f, "mrpc", M[m].m, M[m].desc, seed, met, M[m].params, 1538, M[m].bytes, M[m].ops, M[m].merge);
      snprintf(met, sizeof met,
               "{\"splits\":{\"dev_matched\":{\"accuracy\":%.4f},\"dev_mismatched\":{\"accuracy\":%.4f}},\"score\":%.4f}",
               b - 0.02, b - 0.01, b - 0.015);
      rec(f, "mnli", M[m].m, M[m].desc, seed, met, M[m].params, 2307, M[m].bytes + 3000, M[m].ops, M[m].merge);
    }
  /* STS-B for LoRA only */
  rec(f, "stsb", "lora", M[1].desc, 0, "{\"splits\":{\"dev\":{\"pearson\":0.88,\"spearman\":0.87}},\"score\":0.875}",
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
    free(d);
    snprintf(p, sizeof p, "%s/storage.dat", out);
    d = slurp(p);
    CHECK(d && strstr(d, "\"method\" \"SST-2\" \"MRPC\" \"STS-B\" \"MNLI\"\n") && strstr(d, "\"adapter\" 625 625 NaN 627.9296875\n"),
          "storage.dat: header of tasks in GLUE order, KB values, NaN where not run");
    free(d);
    snprintf(p, sizeof p, "%s/score_vs_params.dat", out);
    d = slurp(p);
    CHECK(d && strstr(d, "\"layerconnect\" 13824 "), "score_vs_params.dat: LayerConnect at 13,824 params");
    free(d);
    /* no temporary figure left behind */
    char cmd[800];
    snprintf(cmd, sizeof cmd, "ls -a '%s' | grep -q tmp", out);
    CHECK(system(cmd) != 0, "no temporary files left in the output folder");
  }

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
  return failures;
}
