/* End to end through the CLI (`peftbench run`, then `peftbench eval`): each of the four methods
 * trains on a small real SST-2 subset over the embedded default backbone and must beat the
 * majority-class baseline on the SST-2 dev set by MARGIN; the result record has every field of
 * the schema (harness/results.h); the same seed gives the same loss curve; the saved task file
 * evaluates to the same score. Needs ../shared/data (real GLUE) and the built CLI
 * ($PEFTBENCH_BIN, set by CMake). */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "harness/results.h"
#include "tests/check.h"

/* accuracy above the majority baseline (0.5092) that every method must reach: 5 points, i.e.
 * 44 of the 872 dev sentences. Measured over models/default (stage 3, c8277967; --threads 1,
 * deterministic): full +16.4, LoRA +11.4, Adapter +7.9, LayerConnect +7.6 points (at lr 1e-2;
 * at its default 1e-3 it stays at the baseline here, at 3e-3 +3.6). Over stage 1 they were
 * +12.7, +6.4, +5.1 and +4.8 with a 3-point margin. */
#define MARGIN 0.05


static const char *bin;
static char dir[] = "/tmp/pb_e2e_XXXXXX";

static int run(const char *method, const char *extra, const char *results) {
  char cmd[2048];
  snprintf(cmd, sizeof cmd,
           "'%s' run --task sst2 --method %s %s --max-train 2000 --epochs 3 --max-len 64 --seed 7 --threads 1 --quiet "
           "--out '%s/out' --results '%s' > '%s/stdout.txt' 2> '%s/stderr.txt'",
           bin, method, extra, dir, results, dir, dir);
  int rc = system(cmd);
  if (rc != 0) {
    printf("command failed (%d): %s\n", rc, cmd);
    snprintf(cmd, sizeof cmd, "cat '%s/stderr.txt'", dir);
    (void)system(cmd);
  }
  return rc;
}

static const cJSON *path_get(const cJSON *o, const char *path) {
  char buf[256];
  snprintf(buf, sizeof buf, "%s", path);
  for (char *k = strtok(buf, "."); k && o; k = strtok(NULL, ".")) o = cJSON_GetObjectItemCaseSensitive(o, k);
  return o;
}

static void check_fields(const cJSON *r) {
  static const char *keys[] = {
      "schema", "time", "task", "method", "method_config", "method_desc", "seed", "backbone.source",
      "backbone.pretrained", "backbone.fingerprint", "backbone.config.hidden", "data.train_examples",
      "data.eval_examples.dev", "data.max_len", "train.steps", "train.lr", "train.final_loss", "train.loss_curve",
      "metrics.splits.dev.accuracy", "metrics.score", "metrics.majority_baseline", "params.backbone",
      "params.method", "params.head", "params.trainable", "params.stored", "params.all", "params.report",
      "storage.path", "storage.file_bytes", "storage.tensor_bytes", "ops.inference_per_example.flops.total",
      "ops.mean_tokens", "ops.inference_T128.matmul_macs.method", "ops.per_token_T128.flops.method",
      "ops.method_merged_T128", "ops.train_step.flops.optimizer", "ops.measured.eval_match", "counters.available",
      "counters.phases.train", "counters.phases.eval", "timings.train.wall_s", "timings.eval.cpu_s",
      "memory.peak_rss_kb", "host.cpu", "host.cores", "host.blas.core", "host.blas.detected", "host.blas.switched",
      "host.precision.mode", "host.precision.linear", "host.precision.kernel",
      "commit", "commit_dirty", "config.lr", "config.backbone", "config_id", "head.source", "head.detail",
      "tokenizer.vocab", "tokenizer.vocab_sha256", "tokenizer.lower_case", "data.data_seed", "data.train_subset",
      "predictions.dev"};
  for (size_t i = 0; i < sizeof keys / sizeof keys[0]; i++)
    CHECK(path_get(r, keys[i]) != NULL, "result lacks %s", keys[i]);
  CHECK(cJSON_IsTrue(path_get(r, "ops.measured.eval_match")), "instrumented eval ops != analytic");
  /* PAPI: every event either has a value or a reason; software events are read */
  const cJSON *tc = path_get(r, "counters.phases.train");
  const cJSON *ev;
  int n_values = 0;
  cJSON_ArrayForEach(ev, tc) {
    if (cJSON_IsNumber(ev)) n_values++;
    else CHECK(cJSON_IsString(cJSON_GetObjectItem(path_get(r, "counters.unavailable"), ev->string)),
               "counter %s is null without a reason", ev->string);
  }
  CHECK(n_values > 0 || !cJSON_IsTrue(path_get(r, "counters.available")), "no counter was read");
  const cJSON *fb = path_get(r, "storage.file_bytes"), *tb = path_get(r, "storage.tensor_bytes");
  CHECK(fb && tb && fb->valuedouble > tb->valuedouble && tb->valuedouble > 0, "storage sizes inconsistent");
}

int main(void) {
  bin = getenv("PEFTBENCH_BIN");
  if (!bin || access(bin, X_OK) != 0) {
    printf("FAIL: PEFTBENCH_BIN (%s) is not the built peftbench\n", bin ? bin : "unset");
    return 1;
  }
  if (!mkdtemp(dir)) return 1;
  char results[600];
  snprintf(results, sizeof results, "%s/results.jsonl", dir);

  static const char *methods[] = {"full", "lora", "adapter", "layerconnect"};
  /* full fine-tuning's default lr (2e-5) is bert-base's; the small default backbone wants 1e-4;
   * LayerConnect's 5k parameters need 1e-2 to move in 189 steps (see MARGIN) */
  static const char *extra[] = {"--lr 1e-4", "", "", "--lr 1e-2"};
  for (int i = 0; i < 4; i++) CHECK(run(methods[i], extra[i], results) == 0, "run %s failed", methods[i]);
  /* determinism: lora again with the same seed */
  CHECK(run("lora", "", results) == 0, "second lora run failed");

  cJSON *all = NULL;
  int bad = 0;
  CHECK(pb_results_read(results, &all, &bad) == 0 && all, "cannot read %s", results);
  CHECK(cJSON_GetArraySize(all) == 5 && bad == 0, "expected 5 records, got %d (+%d torn)", cJSON_GetArraySize(all),
        bad);
  for (int i = 0; i < cJSON_GetArraySize(all) && i < 4; i++) {
    const cJSON *r = cJSON_GetArrayItem(all, i);
    check_fields(r);
    double acc = path_get(r, "metrics.splits.dev.accuracy")->valuedouble;
    double maj = path_get(r, "metrics.majority_baseline")->valuedouble;
    printf("%-13s dev accuracy %.4f  majority baseline %.4f  margin %+.4f (required %+.2f)  %s\n", methods[i], acc,
           maj, acc - maj, MARGIN, path_get(r, "params.report")->valuestring);
    CHECK(acc >= maj + MARGIN, "%s does not beat the majority baseline by %.2f", methods[i], MARGIN);
  }
  if (cJSON_GetArraySize(all) == 5) {
    char *c1 = cJSON_PrintUnformatted(path_get(cJSON_GetArrayItem(all, 1), "train.loss_curve"));
    char *c2 = cJSON_PrintUnformatted(path_get(cJSON_GetArrayItem(all, 4), "train.loss_curve"));
    CHECK(c1 && c2 && strcmp(c1, c2) == 0, "same seed, different loss curves");
    printf("same seed -> identical loss curve: %s\n", c1 && c2 && strcmp(c1, c2) == 0 ? "yes" : "NO");
    free(c1);
    free(c2);
    /* the saved task file evaluates to the recorded score */
    const cJSON *r = cJSON_GetArrayItem(all, 3);
    char cmd[2048];
    snprintf(cmd, sizeof cmd, "'%s' eval '%s' --out '%s/eval' --json", bin, path_get(r, "storage.path")->valuestring, dir);
    FILE *p = popen(cmd, "r");
    static char json[1 << 16];
    size_t got = p ? fread(json, 1, sizeof json - 1, p) : 0;
    json[got] = 0;
    int prc = p ? pclose(p) : -1;
    cJSON *ev = cJSON_Parse(json);
    const cJSON *ea = path_get(ev, "splits.dev.metrics.accuracy");
    double acc = cJSON_IsNumber(ea) ? ea->valuedouble : -1;
    double want = path_get(r, "metrics.splits.dev.accuracy")->valuedouble;
    printf("eval --json of the saved layerconnect task file: accuracy %.17g (run recorded %.17g)\n", acc, want);
    cJSON_Delete(ev);
    char line[512];
    CHECK(prc == 0 && acc == want, "eval of the task file gives %.17g, run recorded %.17g", acc, want);
    /* the record's prediction file gives back the recorded accuracy exactly */
    FILE *f = fopen(path_get(r, "predictions.dev")->valuestring, "r");
    int n = 0, right = 0;
    char gold[64], pred[64];
    CHECK(f && fgets(line, sizeof line, f) && strcmp(line, "index\tgold\tprediction\tlogit_0\tlogit_1\n") == 0,
          "prediction file header");
    while (f && fgets(line, sizeof line, f))
      if (sscanf(line, "%*d\t%63[^\t]\t%63[^\t]", gold, pred) == 2) n++, right += strcmp(gold, pred) == 0;
    if (f) fclose(f);
    printf("prediction file: %d rows, accuracy %.17g\n", n, n ? (double)right / n : 0.0);
    CHECK(n == 872 && (double)right / n == want, "prediction file: %d rows, accuracy %.17g != %.17g", n,
          n ? (double)right / n : 0.0, want);
  }
  cJSON_Delete(all);
  char cmd[700];
  snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
  (void)system(cmd);
  printf("%s (%d failures)\n", failures ? "FAILED" : "OK", failures);
  return failures ? 1 : 0;
}
