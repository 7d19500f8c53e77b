/* Tests of `peftbench table` (harness/table.c) on synthetic result records written here:
 * exact Markdown, CSV field counts, LaTeX escaping and \pm, mean ± sample std over 3 seeds,
 * the n/a footnote with PAPI's reason, a torn line skipped with a warning, usage errors and
 * a missing file; grouping by the whole training configuration (harness/aggregate.h): three
 * seed-0 LoRA runs on RTE at --lr 1e-4, --lr 3e-3 and --max-train 64 --epochs 2 are three
 * rows, not "51.0 ± 3.5 (n=3)"; a duplicate seed is kept once (the later record); a record
 * without "config" (legacy) gets a derived configuration and is never averaged with a new
 * one. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "util/fileio.h"
#include "util/status.h"
#include "harness/results.h"
#include "harness/table.h"
#include "tests/check.h"


/* One synthetic record line. metrics_json: the "metrics" object; counters_json: "counters". */
static void rec(FILE *f, const char *task, const char *method, const char *desc, int seed,
                const char *metrics_json, long long trainable, long long head,
                long long file_bytes, double ops_tok, const char *merged, const char *counters_json,
                double train_wall) {
  fprintf(f,
          "{\"schema\":\"peftbench-result/1\",\"time\":\"2026-11-23T17:00:00Z\",\"task\":\"%s\","
          "\"method\":\"%s\",\"method_config\":{},\"method_desc\":\"%s\",\"seed\":%d,"
          "\"backbone\":{\"source\":\"random-init\",\"pretrained\":false,"
          "\"fingerprint\":\"0123456789abcdef\",\"config\":{\"vocab_size\":100,\"hidden\":16,"
          "\"layers\":2,\"heads\":2,\"ffn\":32,\"max_pos\":64}},"
          "\"metrics\":%s,"
          "\"params\":{\"backbone\":100000,\"method\":%lld,\"head\":%lld,\"trainable\":%lld,"
          "\"stored\":%lld,\"all\":%lld,\"trainable_pct\":1.0,\"report\":\"\"},"
          "\"storage\":{\"path\":\"x\",\"file_bytes\":%lld,\"tensor_bytes\":%lld},"
          "\"ops\":{\"per_token_T128\":{\"flops\":{\"backbone\":1000,\"head\":0,\"method\":%.17g,"
          "\"optimizer\":0,\"total\":1}},\"inference_T128\":{\"flops\":{\"backbone\":128000,"
          "\"head\":10,\"method\":%.17g,\"optimizer\":0,\"total\":1}},\"method_merged_T128\":%s},"
          "\"counters\":%s,"
          "\"timings\":{\"train\":{\"wall_s\":%.17g,\"cpu_s\":%.17g,\"intervals\":1},"
          "\"eval\":{\"wall_s\":0.5,\"cpu_s\":0.75,\"intervals\":1},\"total_wall_s\":3},"
          "\"memory\":{\"peak_rss_kb\":204800,\"vm_hwm_kb\":204800,\"current_rss_kb\":1000},"
          "\"host\":{\"hostname\":\"h\",\"cpu\":\"c\",\"cores\":2,\"threads\":2},\"commit\":null}\n",
          task, method, desc, seed, metrics_json, trainable - head, head, trainable,
          trainable, 100000 + head, file_bytes, file_bytes - 100, ops_tok, ops_tok * 128, merged,
          counters_json, train_wall, 2 * train_wall);
}

#define CNT_OK                                                                           \
  "{\"available\":true,\"reason\":null,\"multiplexed\":false,\"multiplex_error\":null,"  \
  "\"events\":[\"PAPI_TOT_CYC\",\"perf::TASK-CLOCK\"],\"phases\":{\"train\":"            \
  "{\"PAPI_TOT_CYC\":1500000000,\"perf::TASK-CLOCK\":250000000},\"eval\":"              \
  "{\"PAPI_TOT_CYC\":20000000,\"perf::TASK-CLOCK\":4000000}},\"unavailable\":{}}"
#define CNT_NULL                                                                         \
  "{\"available\":true,\"reason\":null,\"multiplexed\":false,\"multiplex_error\":null,"  \
  "\"events\":[\"PAPI_TOT_CYC\",\"perf::TASK-CLOCK\"],\"phases\":{\"train\":"            \
  "{\"PAPI_TOT_CYC\":null,\"perf::TASK-CLOCK\":300000000},\"eval\":"                     \
  "{\"PAPI_TOT_CYC\":null,\"perf::TASK-CLOCK\":5000000}},\"unavailable\":"               \
  "{\"PAPI_TOT_CYC\":\"PAPI_ENOEVNT: Event does not exist (no hardware PMU in this VM)\"}}"

/* Writes the synthetic input: full/lora/layerconnect x SST-2/STS-B/MNLI, LoRA SST-2 over 3
 * seeds, a record with null counters, a torn last line. */
static void write_input(const char *path) {
  FILE *f = fopen(path, "w");
  if (!f) {
    perror(path);
    exit(1);
  }
  const char *merged0 = "{\"flops\":{\"backbone\":0,\"head\":0,\"method\":0,\"optimizer\":0,\"total\":0}}";
  /* full: SST-2 only */
  rec(f, "sst2", "full", "all", 0,
      "{\"splits\":{\"dev\":{\"accuracy\":0.9}},\"score\":0.9,\"main\":\"accuracy\",\"majority_baseline\":0.5}",
      100020, 20, 409600, 0, "null", CNT_OK, 2.0);
  /* lora: SST-2 x 3 seeds (0.90, 0.92, 0.94 -> 92.0 ± 2.0), STS-B, MNLI */
  for (int s = 0; s < 3; s++) {
    char m[256];
    snprintf(m, sizeof m,
             "{\"splits\":{\"dev\":{\"accuracy\":%.2f}},\"score\":%.2f,\"main\":\"accuracy\",\"majority_baseline\":0.5}",
             0.90 + 0.02 * s, 0.90 + 0.02 * s);
    rec(f, "sst2", "lora", "r=8,alpha=16", s, m, 1020, 20, 6144, 512, merged0, CNT_OK, 1.0 + s);
  }
  rec(f, "stsb", "lora", "r=8,alpha=16", 0,
      "{\"splits\":{\"dev\":{\"pearson\":0.85,\"spearman\":0.84}},\"score\":0.845,\"main\":\"pearson\",\"majority_baseline\":null}",
      1010, 10, 6144, 512, merged0, CNT_OK, 1.0);
  rec(f, "mnli", "lora", "r=8,alpha=16", 0,
      "{\"splits\":{\"dev_matched\":{\"accuracy\":0.8},\"dev_mismatched\":{\"accuracy\":0.81}},\"score\":0.805,\"main\":\"accuracy\",\"majority_baseline\":0.35}",
      1030, 30, 6144, 512, merged0, CNT_OK, 1.0);
  /* layerconnect (desc with LaTeX specials): SST-2 with null counters */
  rec(f, "sst2", "layerconnect", "K=9,scope=cls_tok,50%&#", 0,
      "{\"splits\":{\"dev\":{\"accuracy\":0.88}},\"score\":0.88,\"main\":\"accuracy\",\"majority_baseline\":0.5}",
      84, 20, 1536, 0.25, "null", CNT_NULL, 0.5);
  fprintf(f, "{\"schema\":\"peftbench-result/1\",\"task\":\"sst2\",\"meth"); /* torn line */
  fclose(f);
}

static const char *EXPECTED_MD =
    "GLUE dev results and costs per method (scores x100)\n"
    "\n"
    "| Method | Config | SST-2 Acc | STS-B Pearson | STS-B Spearman | MNLI-m | MNLI-mm | Avg | Trainable | Trainable +head | % of full | Storage/task (KB) | Added FLOPs/token | Added FLOPs/example | Merged FLOPs/example |\n"
    "|:---|:---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n"
    "| full | all | 90.0 | – | – | – | – | 90.0* | 100,000 | 100,020 | 100.0000 | 400.0 | 0 | 0 | – |\n"
    "| lora | r=8,alpha=16 | 92.0 ± 2.0 (n=3) | 85.0 | 84.0 | 80.0 | 81.0 | 85.7 | 1,000 | 1,010–1,030 | 1.0000 | 6.0 | 512 | 65,536 | 0 |\n"
    "| layerconnect | K=9,scope=cls_tok,50%&# | 88.0 | – | – | – | – | 88.0* | 64 | 84 | 0.0640 | 1.5 | 0.25 | 32 | – |\n"
    "\n"
    "- Scores x100 on the GLUE dev sets: CoLA Matthews correlation; STS-B Pearson and Spearman; MRPC and QQP F1 and accuracy; MNLI-m/mm matched/mismatched accuracy; the others accuracy. Each cell is the mean over the runs (seeds) of one training configuration ± the sample standard deviation, with the number of runs n when n > 1; – means not run.\n"
    "- Avg: GLUE score, i.e. each task's score (the mean of its metrics; MNLI: of m and mm) averaged over the tasks present; * marks a row averaged over fewer tasks than the table has.\n"
    "- Trainable: trainable parameters without the task head (the method's own; full fine-tuning: the whole backbone). Trainable +head adds the classification head. % of full: Trainable / all backbone parameters.\n"
    "- Storage/task: size of the task file written (method tensors + head + header), 1 KB = 1024 bytes.\n"
    "- Added FLOPs: the operations the method adds at inference (owner = method; FLOPs = 2 x matmul MACs + elementwise + transcendental) for one example of T = 128 tokens, and per token (/128). Merged: with the update folded into the weights (LoRA); – where the method cannot merge.\n"
    "- a–b: the value differs between the method's runs (task heads differ by label count).\n"
    "- Backbone: 0123456789abcdef (random-init, not pretrained, L=2, d=16).\n";

static char *slurp(const char *path) {
  char *d = NULL;
  size_t n = 0;
  if (pb_read_file(path, &d, &n)) return NULL;
  return d;
}

/* Runs pb_cmd_table with stderr captured into errpath; returns the exit status. */
static int run_table(const char *errpath, int argc, char **argv) {
  fflush(stderr);
  int saved = dup(2);
  FILE *e = fopen(errpath, "w");
  if (!e || saved < 0) return -100;
  dup2(fileno(e), 2);
  int rc = pb_cmd_table(argc, argv);
  fflush(stderr);
  dup2(saved, 2);
  close(saved);
  fclose(e);
  return rc;
}

/* Splits one CSV record (RFC 4180) starting at *p; returns the number of fields and moves *p
 * past the record's CRLF. -1 on a malformed record. */
static int csv_record(const char **p, char fields[][256], int max) {
  const char *s = *p;
  int n = 0;
  for (;;) {
    char buf[256];
    size_t k = 0;
    if (*s == '"') {
      s++;
      for (;;) {
        if (!*s) return -1;
        if (*s == '"' && s[1] == '"') {
          if (k < 255) buf[k++] = '"';
          s += 2;
        } else if (*s == '"') {
          s++;
          break;
        } else {
          if (k < 255) buf[k++] = *s;
          s++;
        }
      }
    } else {
      while (*s && *s != ',' && *s != '\r' && *s != '\n') {
        if (*s == '"') return -1; /* a bare quote inside an unquoted field */
        if (k < 255) buf[k++] = *s;
        s++;
      }
    }
    buf[k] = 0;
    if (n < max) strcpy(fields[n], buf);
    n++;
    if (*s == ',') {
      s++;
      continue;
    }
    if (s[0] == '\r' && s[1] == '\n') s += 2;
    else return -1;
    break;
  }
  *p = s;
  return n;
}


/* ---------------------------------------------------------------- configuration grouping */

/* The "config" object run.c writes, with the given overrides of max_train, epochs and lr. */
static void cfg_json(char *o, size_t n, const char *method, int max_train, int epochs, double lr,
                     const char *extra) {
  snprintf(o, n,
           "{\"method\":\"%s\",\"method_desc\":\"r=8,alpha=16\",\"backbone\":\"0123456789abcdef\","
           "\"vocab_sha256\":\"e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855\","
           "\"lower_case\":1,\"data_dir\":\"../shared/data/glue\",\"data_seed\":0,\"max_train\":%d,"
           "\"max_eval\":0,\"max_len\":128,\"epochs\":%d,\"steps\":0,\"batch\":32,\"lr\":%.17g,"
           "\"warmup_ratio\":0.06,\"weight_decay\":0.01,\"hidden_dropout\":0.1,\"attn_dropout\":0.1,"
           "\"merge_eval\":0,\"init_head\":0%s}",
           method, max_train, epochs, lr, extra ? extra : "");
}

/* One record with a "config" (cfg NULL: a legacy record, with train/data fields only). */
static void rec_cfg(FILE *f, const char *task, const char *method, int seed, double score,
                    const char *cfg, double lr, int epochs) {
  fprintf(f,
          "{\"schema\":\"peftbench-result/1\",\"task\":\"%s\",\"method\":\"%s\","
          "\"method_desc\":\"r=8,alpha=16\",\"seed\":%d,%s%s%s"
          "\"backbone\":{\"source\":\"random-init\",\"pretrained\":false,\"fingerprint\":\"0123456789abcdef\","
          "\"config\":{\"hidden\":16,\"layers\":2}},"
          "\"data\":{\"data_dir\":\"../shared/data/glue\",\"train_examples\":64,\"max_len\":128},"
          "\"train\":{\"epochs\":%d,\"steps\":4,\"batch\":32,\"lr\":%.17g,\"weight_decay\":0.00999999977648258},"
          "\"metrics\":{\"splits\":{\"dev\":{\"accuracy\":%.17g}},\"score\":%.17g,\"main\":\"accuracy\","
          "\"majority_baseline\":0.5270758122743683},"
          "\"params\":{\"backbone\":100000,\"method\":1000,\"head\":20,\"trainable\":1020},"
          "\"storage\":{\"file_bytes\":6144},"
          "\"timings\":{\"train\":{\"wall_s\":1,\"cpu_s\":2,\"intervals\":1}},\"counters\":null}\n",
          task, method, seed, cfg ? "\"config\":" : "", cfg ? cfg : "", cfg ? ",\"config_id\":\"0badc0de\"," : "",
          epochs, lr, score, score);
}

/* The brief's RTE scenario, plus a second seed of the lr 1e-4 run, a re-run (duplicate seed)
 * of the lr 3e-3 run and full fine-tuning over two seeds. */
static void write_rte(const char *path) {
  FILE *f = fopen(path, "w");
  if (!f) {
    perror(path);
    exit(1);
  }
  char c[2048];
  cfg_json(c, sizeof c, "lora", 2000, 3, 1e-4, NULL);
  rec_cfg(f, "rte", "lora", 0, 0.47, c, 1e-4, 3);
  cfg_json(c, sizeof c, "lora", 2000, 3, 3e-3, NULL);
  rec_cfg(f, "rte", "lora", 0, 0.53, c, 3e-3, 3);
  cfg_json(c, sizeof c, "lora", 64, 2, 5e-4, NULL);
  rec_cfg(f, "rte", "lora", 0, 0.53, c, 5e-4, 2);
  cfg_json(c, sizeof c, "lora", 2000, 3, 1e-4, NULL);
  rec_cfg(f, "rte", "lora", 1, 0.49, c, 1e-4, 3);
  cfg_json(c, sizeof c, "lora", 2000, 3, 3e-3, NULL);
  rec_cfg(f, "rte", "lora", 0, 0.60, c, 3e-3, 3); /* re-run of seed 0: replaces the 0.53 */
  cfg_json(c, sizeof c, "full", 2000, 3, 1e-4, NULL);
  rec_cfg(f, "rte", "full", 0, 0.55, c, 1e-4, 3);
  rec_cfg(f, "rte", "full", 1, 0.57, c, 1e-4, 3);
  fclose(f);
}

static const pb_agg_row *find_row(const pb_agg *a, const char *label) {
  for (int i = 0; i < a->n_rows; i++)
    if (!strcmp(a->rows[i].label, label)) return &a->rows[i];
  return NULL;
}

static void test_config_grouping(const char *dir) {
  char in[512], out[600], err[600];
  snprintf(in, sizeof in, "%s/rte.jsonl", dir);
  snprintf(out, sizeof out, "%s/rte.md", dir);
  snprintf(err, sizeof err, "%s/rte.err", dir);
  write_rte(in);
  const int RTE = 7; /* GLUE order: cola sst2 mrpc stsb qqp mnli qnli rte wnli */

  /* a. the aggregation: one row per configuration, labels naming what differs */
  const char *files[] = {in};
  pb_agg a;
  int rc = pb_agg_load(files, 1, "test", NULL, &a);
  CHECK(rc == 0 && a.n_rows == 4, "RTE scenario: 4 rows (full + 3 LoRA configurations), got %d (rc %d)", a.n_rows, rc);
  if (rc == 0 && a.n_rows == 4) {
    static const char *want[] = {"full", "lora (max_train=64, epochs=2, lr=0.0005)", "lora (lr=0.0001)",
                                 "lora (lr=0.003)"};
    for (int i = 0; i < 4; i++)
      CHECK(!strcmp(a.rows[i].label, want[i]), "row %d label '%s' (expected '%s')", i, a.rows[i].label, want[i]);
    const pb_agg_row *lo = find_row(&a, "lora (lr=0.0001)"), *hi = find_row(&a, "lora (lr=0.003)"),
                     *sh = find_row(&a, "lora (max_train=64, epochs=2, lr=0.0005)");
    pb_stat s = lo ? pb_agg_task_score(lo, RTE) : (pb_stat){0};
    CHECK(s.n == 2 && fabs(s.mean - 48) < 1e-9 && fabs(s.std - sqrt(2.0)) < 1e-9,
          "lr 1e-4: seeds 0 and 1 averaged: n=%d %.4f ± %.4f (expected 2, 48, 1.4142)", s.n, s.mean, s.std);
    s = hi ? pb_agg_task_score(hi, RTE) : (pb_stat){0};
    CHECK(s.n == 1 && fabs(s.mean - 60) < 1e-9, "lr 3e-3: the duplicate seed 0 counted once, the later record (60): n=%d %.4f",
          s.n, s.mean);
    s = sh ? pb_agg_task_score(sh, RTE) : (pb_stat){0};
    CHECK(s.n == 1 && fabs(s.mean - 53) < 1e-9, "max_train 64: its own row, n=%d %.4f", s.n, s.mean);
    CHECK(a.n_dup == 1 && strstr(a.dup_example, "lora rte seed 0"), "one duplicate counted (%d: '%s')", a.n_dup, a.dup_example);
    CHECK(a.n_splits == 1 && !strcmp(a.splits[0].method, "lora") && !strcmp(a.splits[0].keys, "max_train, epochs, lr") &&
              !strcmp(a.splits[0].modal, "max_train=2000, epochs=3"),
          "split: lora in '%s' (modal '%s')", a.n_splits ? a.splits[0].keys : "", a.n_splits ? a.splits[0].modal : "");
    pb_stat f = pb_agg_task_score(&a.rows[0], RTE);
    CHECK(!strcmp(a.rows[0].name, "full") && f.n == 2 && fabs(f.mean - 56) < 1e-9, "full: one row over 2 seeds (%.3f)", f.mean);
  }
  pb_agg_free(&a);

  /* b0. exactly the brief's three records: the old grouping printed "51.0 ± 3.5 (n=3)" */
  {
    char in3[600], out3[600];
    snprintf(in3, sizeof in3, "%s/rte3.jsonl", dir);
    snprintf(out3, sizeof out3, "%s/rte3.md", dir);
    FILE *f = fopen(in3, "w");
    char c[2048];
    cfg_json(c, sizeof c, "lora", 2000, 3, 1e-4, NULL);
    rec_cfg(f, "rte", "lora", 0, 0.47, c, 1e-4, 3);
    cfg_json(c, sizeof c, "lora", 2000, 3, 3e-3, NULL);
    rec_cfg(f, "rte", "lora", 0, 0.53, c, 3e-3, 3);
    cfg_json(c, sizeof c, "lora", 64, 2, 5e-4, NULL);
    rec_cfg(f, "rte", "lora", 0, 0.53, c, 5e-4, 2);
    fclose(f);
    char *argv3[] = {"table", in3, "--table", "main", "--out", out3, NULL};
    int rc3 = run_table(err, 6, argv3);
    char *t3 = slurp(out3);
    CHECK(rc3 == 0 && t3 && !strstr(t3, "51.0 ± 3.5 (n=3)") && !strstr(t3, "(n="),
          "three LoRA configurations are not one cell '51.0 ± 3.5 (n=3)'");
    CHECK(t3 && strstr(t3, "\n| lora (max_train=64, epochs=2, lr=0.0005) | r=8,alpha=16 | 53.0 | 53.0 |") &&
              strstr(t3, "\n| lora (lr=0.0001) | r=8,alpha=16 | 47.0 | 47.0 |") &&
              strstr(t3, "\n| lora (lr=0.003) | r=8,alpha=16 | 53.0 | 53.0 |"),
          "three rows, labelled by what differs:\n%s", t3 ? t3 : "");
    free(t3);
  }

  /* b. the Markdown table: separate rows, the note, the duplicate note and warning */
  char *argv[] = {"table", in, "--out", out, NULL};
  rc = run_table(err, 4, argv);
  char *t = slurp(out), *e = slurp(err);
  CHECK(rc == 0, "table over the RTE scenario exits 0 (%d)", rc);
  CHECK(t && !strstr(t, "(n=3)") && !strstr(t, "51.0"), "no LoRA cell averages the three configurations");
  CHECK(t && strstr(t, "| lora (lr=0.0001) | r=8,alpha=16 | 48.0 ± 1.4 (n=2) | 48.0 |"), "lr 1e-4 row: 48.0 ± 1.4 (n=2)");
  CHECK(t && strstr(t, "| lora (lr=0.003) | r=8,alpha=16 | 60.0 | 60.0 |"), "lr 3e-3 row: the later record only");
  CHECK(t && strstr(t, "| lora (max_train=64, epochs=2, lr=0.0005) | r=8,alpha=16 | 53.0 | 53.0 |"), "max_train 64 row");
  CHECK(t && strstr(t, "- lora rows differ in max_train, epochs, lr and are not averaged together (records are averaged "
                       "only over the seeds of an identical training configuration); a label leaves out the value most "
                       "lora rows share: max_train=2000, epochs=3.\n"),
        "note: rows of the same method differ in those keys and are not averaged");
  CHECK(t && strstr(t, "- 1 duplicate record left out: same training configuration, task and seed as a later record"),
        "note on the duplicate");
  CHECK(e && strstr(e, "warning: 1 duplicate record (same configuration, task and seed as a later record, e.g. lora rte seed 0)"),
        "duplicate warned about on stderr: %s", e ? e : "");
  CHECK(t && strstr(t, "| lora (lr=0.003) | r=8,alpha=16 | RTE | train | 1 |"), "counters table names the configuration");
  /* same bytes again */
  char out2[700];
  snprintf(out2, sizeof out2, "%s.2", out);
  char *argv2[] = {"table", in, "--out", out2, NULL};
  run_table(err, 4, argv2);
  char *t2 = slurp(out2);
  CHECK(t && t2 && !strcmp(t, t2), "RTE scenario: same input -> same bytes");
  free(t), free(t2), free(e);
  /* CSV and LaTeX carry the label too */
  char csv[700];
  snprintf(csv, sizeof csv, "%s/rte.csv", dir);
  char *argv3[] = {"table", in, "--format", "csv", "--out", csv, NULL};
  rc = run_table(err, 6, argv3);
  t = slurp(csv);
  CHECK(rc == 0 && t && strstr(t, "\r\n\"lora (max_train=64, epochs=2, lr=0.0005)\",\"r=8,alpha=16\",53,"),
        "CSV row of the max_train 64 configuration (quoted label)");
  free(t);

  /* c. configurations of records: recorded, derived (legacy), compared */
  {
    char c1[2048], c2[2048];
    cfg_json(c1, sizeof c1, "lora", 2000, 3, 5e-4, NULL);
    cfg_json(c2, sizeof c2, "lora", 2000, 3, 5e-4, ",\"grad_clip\":1");
    char path[600];
    snprintf(path, sizeof path, "%s/legacy.jsonl", dir);
    FILE *f = fopen(path, "w");
    /* legacy, float32 lr as old records hold it; the same again at seed 1 with lr 0.0005 */
    rec_cfg(f, "rte", "lora", 0, 0.52, NULL, 0.00050000002374872565, 3);
    rec_cfg(f, "rte", "lora", 1, 0.54, NULL, 0.0005, 3);
    rec_cfg(f, "rte", "lora", 2, 0.56, c1, 5e-4, 3); /* new record: common keys agree */
    rec_cfg(f, "rte", "lora", 3, 0.58, c1, 5e-4, 3);
    rec_cfg(f, "rte", "lora", 4, 0.40, c2, 5e-4, 3); /* a key added later: another configuration */
    fclose(f);
    cJSON *arr = NULL;
    int bad = 0;
    CHECK_OK(pb_results_read(path, &arr, &bad));
    const cJSON *L0 = cJSON_GetArrayItem(arr, 0), *L1 = cJSON_GetArrayItem(arr, 1), *N2 = cJSON_GetArrayItem(arr, 2),
                *N3 = cJSON_GetArrayItem(arr, 3), *N4 = cJSON_GetArrayItem(arr, 4);
    cJSON *d = NULL;
    CHECK_OK(pb_record_config(L0, &d));
    char *txt = cJSON_PrintUnformatted(d);
    CHECK(txt && pb_record_is_legacy(L0) && !pb_record_is_legacy(N2) &&
              !strcmp(txt, "{\"method\":\"lora\",\"method_desc\":\"r=8,alpha=16\",\"backbone\":\"0123456789abcdef\","
                           "\"data_dir\":\"../shared/data/glue\",\"max_len\":128,\"epochs\":3,\"batch\":32,"
                           "\"lr\":0.00050000002374872565,\"weight_decay\":0.00999999977648258}"),
          "legacy config derived from method, method_desc, backbone, data, train: %s", txt ? txt : "");
    free(txt);
    char *lr = pb_config_value_text(cJSON_GetObjectItem(d, "lr"));
    CHECK(lr && !strcmp(lr, "0.0005"), "float32 lr compares and prints as 0.0005 (%s)", lr ? lr : "");
    free(lr);
    cJSON_Delete(d);
    CHECK_OK(pb_record_config(N2, &d));
    CHECK(cJSON_GetObjectItem(d, "max_train") && cJSON_GetObjectItem(d, "config_id") == NULL,
          "recorded config returned as it is");
    cJSON_Delete(d);
    CHECK(pb_record_same_config(L0, L1), "two legacy records with lr 0.00050000002 and 0.0005: same configuration");
    CHECK(pb_record_same_config(N2, N3), "two new records, same config, seeds 2 and 3: same configuration");
    CHECK(!pb_record_same_config(L0, N2), "legacy vs new with agreeing common keys: never the same configuration");
    CHECK(!pb_record_same_config(N2, N4), "a config with an extra key is another configuration");
    cJSON *bad_rec = cJSON_Parse("{\"task\":\"rte\",\"method\":\"lora\",\"config\":5}");
    CHECK(pb_record_config(bad_rec, &d) == PB_ERR_FORMAT && d == NULL, "config that is not an object: PB_ERR_FORMAT");
    CHECK(!pb_record_same_config(bad_rec, bad_rec), "unusable config: not the same");
    pb_agg b;
    rc = pb_agg_build(arr, &b);
    CHECK(rc == 0 && b.n_rows == 3, "legacy + new + extended: 3 rows (got %d)", b.n_rows);
    if (rc == 0 && b.n_rows == 3) {
      CHECK(!strcmp(b.rows[0].label, "lora (grad_clip=none)") && !strcmp(b.rows[1].label, "lora (grad_clip=1)") &&
                !strcmp(b.rows[2].label, "lora (legacy record)"),
            "labels '%s' / '%s' / '%s'", b.rows[0].label, b.rows[1].label, b.rows[2].label);
      CHECK(pb_agg_task_score(&b.rows[0], RTE).n == 2 && pb_agg_task_score(&b.rows[2], RTE).n == 2 &&
                fabs(pb_agg_task_score(&b.rows[2], RTE).mean - 53) < 1e-9,
            "new seeds 2,3 together; legacy seeds 0,1 together (53.0)");
      CHECK(b.n_splits == 1 && b.splits[0].legacy_mix && !strcmp(b.splits[0].keys, "grad_clip"),
            "split notes grad_clip and the legacy mix (%s)", b.n_splits ? b.splits[0].keys : "");
      char *md = NULL;
      CHECK_OK(pb_table_render(&b, "md", 1, 1, &md));
      CHECK(md && strstr(md, "- legacy record: written before records carried their training configuration"),
            "legacy note in the table");
      CHECK(md && strstr(md, "| lora (grad_clip=none) | r=8,alpha=16 | 57.0 ± 1.4 (n=2) |") &&
                strstr(md, "| lora (legacy record) | r=8,alpha=16 | 53.0 ± 1.4 (n=2) |"),
            "a key missing from a row reads key=none; the legacy row is tagged");
      free(md);
    }
    pb_agg_free(&b);
    cJSON_Delete(bad_rec);
    cJSON_Delete(arr);
  }
}

/* ---------------------------------------------------------------- per-task protocol */

/* A config as run.c writes it, with the per-task protocol keys given. */
static void proto_cfg(char *o, size_t n, const char *method, int max_len, int epochs, char hex) {
  char sha[65];
  memset(sha, hex, 64);
  sha[64] = 0;
  snprintf(o, n,
           "{\"method\":\"%s\",\"method_desc\":\"r=8,alpha=16\",\"backbone\":\"0123456789abcdef\","
           "\"data_sha256\":\"%s\",\"data_seed\":0,\"max_train\":0,\"max_len\":%d,\"epochs\":%d,"
           "\"batch\":32,\"lr\":0.002}",
           method, sha, max_len, epochs);
}

/* SST-2 at length 64 for 1 epoch and RTE at 128 for 3, each on its own data (the
 * reproduction's protocol): one row per method, not one per task; a second LoRA protocol on
 * RTE is another row, labelled by the key that differs on RTE. */
static void test_task_protocol(const char *dir) {
  char path[600], c[1024];
  snprintf(path, sizeof path, "%s/protocol.jsonl", dir);
  FILE *f = fopen(path, "w");
  if (!f) {
    perror(path);
    exit(1);
  }
  proto_cfg(c, sizeof c, "full", 64, 1, 'a');
  rec_cfg(f, "sst2", "full", 1, 0.80, c, 2e-3, 1);
  proto_cfg(c, sizeof c, "full", 128, 3, 'b');
  rec_cfg(f, "rte", "full", 1, 0.55, c, 2e-3, 3);
  proto_cfg(c, sizeof c, "lora", 64, 1, 'a');
  rec_cfg(f, "sst2", "lora", 1, 0.70, c, 2e-3, 1);
  proto_cfg(c, sizeof c, "lora", 128, 3, 'b');
  rec_cfg(f, "rte", "lora", 1, 0.52, c, 2e-3, 3);
  rec_cfg(f, "rte", "lora", 2, 0.54, c, 2e-3, 3);
  proto_cfg(c, sizeof c, "lora", 64, 3, 'b'); /* RTE at another length: another row */
  rec_cfg(f, "rte", "lora", 1, 0.50, c, 2e-3, 3);
  proto_cfg(c, sizeof c, "lora", 64, 1, 'a'); /* a re-run of SST-2 seed 1: a duplicate */
  rec_cfg(f, "sst2", "lora", 1, 0.72, c, 2e-3, 1);
  fclose(f);
  const int SST2 = 1, RTE = 7;
  const char *files[] = {path};
  pb_agg a;
  int rc = pb_agg_load(files, 1, "test", NULL, &a);
  CHECK(rc == 0 && a.n_rows == 3, "protocol scenario: 3 rows (full, 2 LoRA), got %d (rc %d)", a.n_rows, rc);
  if (rc == 0 && a.n_rows == 3) {
    /* ordered by configuration: data_sha256 "aaaa…/bbbb…" before "bbbb…" */
    CHECK(!strcmp(a.rows[0].label, "full") && !strcmp(a.rows[1].label, "lora (max_len=64/128)") &&
              !strcmp(a.rows[2].label, "lora (max_len=64)"),
          "labels '%s' / '%s' / '%s'", a.rows[0].label, a.rows[1].label, a.rows[2].label);
    pb_stat fs = pb_agg_task_score(&a.rows[0], SST2), fr = pb_agg_task_score(&a.rows[0], RTE);
    CHECK(fs.n == 1 && fabs(fs.mean - 80) < 1e-9 && fr.n == 1 && fabs(fr.mean - 55) < 1e-9,
          "full: SST-2 and RTE in one row (%d %.1f, %d %.1f)", fs.n, fs.mean, fr.n, fr.mean);
    pb_stat ls = pb_agg_task_score(&a.rows[1], SST2), lr = pb_agg_task_score(&a.rows[1], RTE);
    CHECK(ls.n == 1 && fabs(ls.mean - 72) < 1e-9 && lr.n == 2 && fabs(lr.mean - 53) < 1e-9,
          "lora: SST-2 (the later record, 72) and RTE over 2 seeds (53) in one row (%d %.1f, %d %.1f)", ls.n,
          ls.mean, lr.n, lr.mean);
    pb_stat o = pb_agg_task_score(&a.rows[2], RTE);
    CHECK(o.n == 1 && fabs(o.mean - 50) < 1e-9 && pb_agg_task_score(&a.rows[2], SST2).n == 0,
          "lora at length 64 on RTE: its own row (%d %.1f)", o.n, o.mean);
    CHECK(a.n_dup == 1 && strstr(a.dup_example, "lora sst2 seed 1"), "the SST-2 re-run is one duplicate (%d '%s')",
          a.n_dup, a.dup_example);
    CHECK(a.n_splits == 1 && !strcmp(a.splits[0].keys, "max_len"), "lora rows split on max_len only ('%s')",
          a.n_splits ? a.splits[0].keys : "");
    char *note = pb_agg_protocol_note(&a);
    CHECK(note && !strcmp(note, "max_len: 64 (SST-2, RTE), 128 (RTE); epochs: 1 (SST-2), 3 (RTE)"),
          "protocol note '%s'", note ? note : "(null)");
    free(note);
    char *md = NULL;
    CHECK_OK(pb_table_render(&a, "md", 1, 1, &md));
    CHECK(md && strstr(md, "\n| full | r=8,alpha=16 | 80.0 | 55.0 | 67.5 |"), "full row holds both tasks:\n%s",
          md ? md : "");
    CHECK(md && strstr(md, "- Training protocol per task (it differs between tasks; a row holds each task's own): "
                           "max_len: 64 (SST-2, RTE), 128 (RTE); epochs: 1 (SST-2), 3 (RTE).\n"),
          "the protocol note in the table");
    free(md);
  }
  pb_agg_free(&a);

  /* one task, or tasks with the same protocol: no note */
  cJSON *one = cJSON_CreateArray();
  cJSON *arr = NULL;
  int bad = 0;
  CHECK_OK(pb_results_read(path, &arr, &bad));
  cJSON *r0 = cJSON_DetachItemFromArray(arr, 0);
  cJSON_AddItemToArray(one, r0);
  rc = pb_agg_build(one, &a);
  char *note = rc == 0 ? pb_agg_protocol_note(&a) : NULL;
  CHECK(rc == 0 && note && !note[0], "a single cell: no protocol note ('%s')", note ? note : "(null)");
  free(note);
  if (rc == 0) pb_agg_free(&a);
  cJSON_Delete(one);
  cJSON_Delete(arr);
}

int main(void) {
  char dir[] = "/tmp/pb_test_table_XXXXXX";
  if (!mkdtemp(dir)) {
    perror("mkdtemp");
    return 1;
  }
  char in[512], out[512], err[512], missing[512];
  snprintf(in, sizeof in, "%s/results.jsonl", dir);
  snprintf(out, sizeof out, "%s/table.md", dir);
  snprintf(err, sizeof err, "%s/stderr.txt", dir);
  snprintf(missing, sizeof missing, "%s/nope.jsonl", dir);
  write_input(in);

  /* 1. exact Markdown of the main table; torn line warned about */
  {
    char *argv[] = {"table", in, "--format", "md", "--table", "main", "--out", out, NULL};
    int rc = run_table(err, 8, argv);
    CHECK(rc == 0, "table --format md exits 0 (got %d)", rc);
    char *got = slurp(out), *e = slurp(err);
    CHECK(got && strcmp(got, EXPECTED_MD) == 0, "Markdown main table matches the expected text byte for byte");
    if (got && strcmp(got, EXPECTED_MD) != 0) printf("---- got:\n%s---- expected:\n%s----\n", got, EXPECTED_MD);
    CHECK(e && strstr(e, "warning") && strstr(e, "skipped 1 torn"), "torn line skipped with a warning line: %s",
          e ? e : "(none)");
    CHECK(e && strchr(e, '\n') == e + strlen(e) - 1, "exactly one warning line");
    /* deterministic: same input -> same bytes */
    char out2[600];
    snprintf(out2, sizeof out2, "%s.2", out);
    char *argv2[] = {"table", in, "--format", "md", "--table", "main", "--out", out2, NULL};
    run_table(err, 8, argv2);
    char *got2 = slurp(out2);
    CHECK(got && got2 && strcmp(got, got2) == 0, "same input -> same bytes");
    free(got), free(got2), free(e);
  }

  /* 2. mean ± sample std over 3 seeds, via the aggregation API */
  {
    const char *files[] = {in};
    pb_agg a;
    int rc = pb_agg_load(files, 1, "test", NULL, &a);
    CHECK(rc == 0 && a.n_rows == 3 && a.n_torn == 1, "pb_agg_load: 3 method rows, 1 torn line (rc %d)", rc);
    if (rc == 0) {
      const pb_agg_row *lora = &a.rows[1];
      pb_stat s = pb_agg_task_score(lora, 1 /* sst2 */);
      CHECK(s.n == 3 && fabs(s.mean - 92.0) < 1e-9 && fabs(s.std - 2.0) < 1e-9,
            "LoRA SST-2 over 3 seeds: n=%d mean %.6f std %.6f (expected 3, 92, 2)", s.n, s.mean, s.std);
      pb_stat w = pb_agg_stat(lora, 1, "timings", "train", "wall_s", NULL);
      CHECK(w.n == 3 && fabs(w.mean - 2.0) < 1e-12 && fabs(w.std - 1.0) < 1e-12,
            "train wall over seeds 1,2,3 s: mean %.3f std %.3f (expected 2, 1)", w.mean, w.std);
      int k = 0;
      double avg = pb_agg_avg_score(lora, &k);
      CHECK(k == 3 && fabs(avg - (92.0 + 84.5 + 80.5) / 3) < 1e-9, "LoRA average over 3 tasks = %.4f", avg);
      CHECK(!strcmp(a.rows[0].method, "full") && !strcmp(a.rows[2].method, "layerconnect"),
            "rows ordered full, lora, layerconnect");
    }
    pb_agg_free(&a);
  }

  /* 3. CSV: parses back, every record with the header's number of fields */
  {
    char csv[600];
    snprintf(csv, sizeof csv, "%s/t.csv", dir);
    char *argv[] = {"table", in, "--format", "csv", "--out", csv, NULL};
    int rc = run_table(err, 6, argv);
    CHECK(rc == 0, "table --format csv exits 0");
    char *txt = slurp(csv);
    static char fields[64][256];
    const char *p = txt ? txt : "";
    int nhdr = csv_record(&p, fields, 64), nrec = 0, bad = 0;
    int col_sst2 = -1, col_std = -1, col_desc = 1;
    for (int i = 0; i < nhdr && i < 64; i++) {
      if (!strcmp(fields[i], "SST-2 Acc")) col_sst2 = i;
      if (!strcmp(fields[i], "SST-2 Acc std")) col_std = i;
    }
    double sst2_lora = -1, std_lora = -1;
    char lc_desc[256] = "";
    while (*p) {
      int n = csv_record(&p, fields, 64);
      if (n != nhdr) bad++;
      if (n < 0) break;
      nrec++;
      if (!strcmp(fields[0], "lora") && col_sst2 >= 0) sst2_lora = atof(fields[col_sst2]), std_lora = atof(fields[col_std]);
      if (!strcmp(fields[0], "layerconnect")) snprintf(lc_desc, sizeof lc_desc, "%.255s", fields[col_desc]);
    }
    CHECK(nhdr == 2 + 5 * 3 + 2 + 7, "CSV header has %d fields (expected %d)", nhdr, 2 + 5 * 3 + 2 + 7);
    CHECK(nrec == 3 && bad == 0, "CSV: 3 records, all with the header's field count (bad %d)", bad);
    CHECK(fabs(sst2_lora - 92) < 1e-9 && fabs(std_lora - 2) < 1e-9, "CSV LoRA SST-2 = %g ± %g", sst2_lora, std_lora);
    CHECK(!strcmp(lc_desc, "K=9,scope=cls_tok,50%&#"), "CSV quoted field with commas reads back: '%s'", lc_desc);
    CHECK(txt && strstr(txt, "\"K=9,scope=cls_tok,50%&#\""), "CSV quotes a field holding commas");
    free(txt);
    char *argv2[] = {"table", in, "--format", "csv", "--table", "both", NULL};
    rc = run_table(err, 6, argv2);
    CHECK(rc == 2, "csv with --table both is a usage error (exit %d)", rc);
  }

  /* 4. LaTeX: escaped names, \pm, booktabs; counters table with n/a footnote */
  {
    char tex[600];
    snprintf(tex, sizeof tex, "%s/t.tex", dir);
    char *argv[] = {"table", in, "--format", "latex", "--out", tex, NULL};
    int rc = run_table(err, 6, argv);
    CHECK(rc == 0, "table --format latex exits 0");
    char *t = slurp(tex);
    CHECK(t && strstr(t, "K=9,scope=cls\\_tok,50\\%\\&\\#"), "LaTeX escapes _ %% & # in the config");
    CHECK(t && strstr(t, "92.0 $\\pm$ 2.0 (n=3)"), "LaTeX cell uses $\\pm$");
    CHECK(t && strstr(t, "\\toprule") && strstr(t, "\\midrule") && strstr(t, "\\bottomrule") &&
              strstr(t, "\\begin{tabular}{ll"),
          "LaTeX booktabs tabular");
    CHECK(t && strstr(t, "PAPI\\_TOT\\_CYC") && strstr(t, "\\% of full"), "LaTeX escapes headers");
    CHECK(t && !strstr(t, "±"), "no raw ± in LaTeX");
    free(t);
  }

  /* 5. counters table (Markdown): n/a with PAPI's reason, software events, timings, RSS */
  {
    char md[600];
    snprintf(md, sizeof md, "%s/c.md", dir);
    char *argv[] = {"table", in, "--table", "counters", "--out", md, NULL};
    int rc = run_table(err, 6, argv);
    CHECK(rc == 0, "table --table counters exits 0");
    char *t = slurp(md);
    CHECK(t && strstr(t, "| Method | Config | Task | Phase | n | Wall (s) | CPU (s) | PAPI_TOT_CYC | perf::TASK-CLOCK | Peak RSS (MB) |"),
          "counters header: phases, timings, events incl. perf::TASK-CLOCK, peak RSS");
    CHECK(t && strstr(t, "| layerconnect | K=9,scope=cls_tok,50%&# | SST-2 | train | 1 | 0.50 | 1.00 | n/a | 300M | 200.0 |"),
          "null counter shown as n/a, software event still read");
    CHECK(t && strstr(t, "| lora | r=8,alpha=16 | SST-2 | train | 3 | 2.00 | 4.00 | 1.5G | 250M | 200.0 |"),
          "LoRA SST-2 train row: mean over 3 seeds");
    CHECK(t && strstr(t, "- n/a PAPI_TOT_CYC: not countable here: PAPI_ENOEVNT: Event does not exist (no hardware PMU in this VM)"),
          "n/a footnote gives PAPI's reason");
    free(t);
  }

  /* 6. errors: missing file, unknown format/option, no records */
  {
    char *argv[] = {"table", missing, NULL};
    int rc = run_table(err, 2, argv);
    char *e = slurp(err);
    CHECK(rc == 1 && e && strstr(e, "nope.jsonl"), "missing file: exit 1 naming the file: %s", e ? e : "");
    free(e);
    char *argv2[] = {"table", in, "--format", "html", NULL};
    rc = run_table(err, 4, argv2);
    e = slurp(err);
    CHECK(rc == 2 && e && strstr(e, "unknown format 'html'"), "unknown format: exit 2, one line: %s", e ? e : "");
    free(e);
    char *argv3[] = {"table", in, "--frobnicate", NULL};
    rc = run_table(err, 3, argv3);
    e = slurp(err);
    CHECK(rc == 2 && e && strstr(e, "unknown option '--frobnicate'"), "unknown option: exit 2: %s", e ? e : "");
    free(e);
    char empty[600];
    snprintf(empty, sizeof empty, "%s/empty.jsonl", dir);
    pb_write_file_atomic(empty, "\n", 1);
    char *argv4[] = {"table", empty, NULL};
    rc = run_table(err, 2, argv4);
    e = slurp(err);
    CHECK(rc == 1 && e && strstr(e, "no result records"), "empty input: exit 1: %s", e ? e : "");
    free(e);
    char *argv5[] = {"table", NULL};
    rc = run_table(err, 1, argv5);
    CHECK(rc == 2, "no input files: exit 2");
    char *argv6[] = {"table", "--help", NULL};
    fflush(stdout);
    rc = pb_cmd_table(2, argv6);
    CHECK(rc == 0, "--help exits 0");
  }

  /* 7. grouping by training configuration */
  test_config_grouping(dir);
  test_task_protocol(dir);

  char cmd[600];
  snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
  if (getenv("PB_TEST_KEEP")) printf("kept %s (PB_TEST_KEEP)\n", dir);
  else if (system(cmd) != 0) printf("note: could not remove %s\n", dir);
  printf(failures ? "test_table: FAILED\n" : "test_table: all passed\n");
  return check_exit_status();
}
