/* Sweep files (harness/sweepspec.c): expansion and the run argv.
 *  - the product: tasks x methods x option lists x train lists x seeds, in that order (the last
 *    dimension fastest); a method's "train" replaces the top-level value of its keys; explicit
 *    runs inherit the top-level train (its lists expand) and take one value of their own;
 *  - a run written twice is one run (n_dup); a scalar is a list of one; booleans add the flag
 *    only when true;
 *  - the id is the first 12 hex digits of the canonical line's SHA-256 and the canonical line
 *    sorts keys (checked against a line written out here);
 *  - the argv `run` gets, flag by flag;
 *  - errors: a list where one value is expected, a boolean key with a number, an unknown method
 *    option name form, seeds out of range, explicit runs without a task. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "util/digest.h"
#include "util/status.h"
#include "harness/sweepspec.h"
#include "tests/check.h"

static char path[256];

static int load(const char *json, pb_sweep *sw) {
  FILE *f = fopen(path, "w");
  fputs(json, f);
  fclose(f);
  return pb_sweep_load(path, sw);
}

static void product(void) {
  pb_sweep sw;
  CHECK_OK(load("{\"tasks\": [\"rte\", \"mrpc\"], \"seeds\": [0, 1, 2], \"train\": {\"lr\": [1e-4, 5e-4], \"epochs\": 2},"
                " \"methods\": [\"full\", {\"method\": \"lora\", \"options\": {\"r\": [4, 8]}, \"train\": {\"lr\": 0.001}}]}",
                &sw));
  /* per task: full x 2 lr x 3 seeds = 6, lora x 2 r x 1 lr x 3 seeds = 6 */
  CHECK(sw.n == 24, "product: %d runs, want 24", sw.n);
  const pb_sweep_run *r = &sw.runs[0];
  CHECK(strcmp(r->task, "rte") == 0 && strcmp(r->method, "full") == 0 && r->seed == 0, "first run %s %s %llu", r->task,
        r->method, r->seed);
  CHECK(strcmp(sw.runs[1].method, "full") == 0 && sw.runs[1].seed == 1, "seeds vary fastest");
  CHECK(strcmp(sw.runs[3].train[1].value, "0.00050000000000000001") == 0, "then the lr list (%s=%s)", sw.runs[3].train[1].key,
        sw.runs[3].train[1].value);
  int lora_lr_ok = 1, n_lora = 0;
  for (int i = 0; i < sw.n; i++) {
    if (strcmp(sw.runs[i].method, "lora")) continue;
    n_lora++;
    for (int k = 0; k < sw.runs[i].n_train; k++)
      if (strcmp(sw.runs[i].train[k].key, "lr") == 0) lora_lr_ok &= strcmp(sw.runs[i].train[k].value, "0.001") == 0;
  }
  CHECK(n_lora == 12 && lora_lr_ok, "the method's train replaces the top-level lr (%d lora runs)", n_lora);
  CHECK(strcmp(sw.runs[12].task, "mrpc") == 0, "tasks vary slowest");
  /* the canonical line and the id, against text and a hash computed here */
  const char *want = "task=rte;method=full;options=;train=epochs=2,lr=0.0001;seed=0";
  CHECK(strcmp(r->canon, want) == 0, "canonical line '%s', want '%s'", r->canon, want);
  char hex[65];
  CHECK_OK(pb_sha256_hex(want, strlen(want), hex));
  CHECK(strncmp(hex, r->id, 12) == 0 && strlen(r->id) == 12, "id %s, sha256 of the line %.12s", r->id, hex);
  int distinct = 1;
  for (int i = 0; i < sw.n; i++)
    for (int j = i + 1; j < sw.n; j++) distinct &= strcmp(sw.runs[i].id, sw.runs[j].id) != 0;
  CHECK(distinct, "ids distinct");
  /* argv */
  const char *argv[64];
  const int n = pb_sweep_run_argv(&sw.runs[13], argv, 64);
  char line[512] = "";
  for (int i = 0; i < n; i++) strcat(line, argv[i]), strcat(line, " ");
  CHECK(strcmp(line, "run --task mrpc --method full --epochs 2 --lr 0.0001 --seed 1 ") == 0, "argv '%s'", line);
  CHECK(pb_sweep_run_argv(&sw.runs[13], argv, 4) == -1, "a short argv buffer");
  pb_sweep_free(&sw);
}

static void explicit_runs(void) {
  pb_sweep sw;
  CHECK_OK(load("{\"train\": {\"max_len\": [64, 128]}, \"runs\": [{\"task\": \"sst2\", \"method\": \"lora\", \"options\": {\"r\": 4},"
                " \"train\": {\"merge\": true, \"new_head\": false}, \"seed\": 3},"
                " {\"task\": \"sst2\", \"method\": \"lora\", \"seed\": 3, \"options\": {\"r\": 4}, \"train\": {\"new_head\": false, \"merge\": true}}]}",
                &sw));
  CHECK(sw.n == 2 && sw.n_dup == 2, "explicit runs: the top-level list expands (2 runs), the repeat is dropped (%d, %d dups)",
        sw.n, sw.n_dup);
  const char *argv[64];
  const int n = pb_sweep_run_argv(&sw.runs[0], argv, 64);
  char line[512] = "";
  for (int i = 0; i < n; i++) strcat(line, argv[i]), strcat(line, " ");
  CHECK(strcmp(line, "run --task sst2 --method lora -o r=4 --max-len 64 --merge --seed 3 ") == 0, "argv '%s'", line);
  pb_sweep_free(&sw);
}

static void errors(void) {
  const char *bad[] = {
      "{\"runs\": [{\"task\": \"sst2\", \"method\": \"lora\", \"options\": {\"r\": [4, 8]}}]}",
      "{\"tasks\": [\"sst2\"], \"methods\": [\"lora\"], \"train\": {\"merge\": 1}}",
      "{\"tasks\": [\"sst2\"], \"methods\": [{\"method\": \"lora\", \"options\": {\"r=\": 4}}]}",
      "{\"tasks\": [\"sst2\"], \"methods\": [\"lora\"], \"seeds\": [-1]}",
      "{\"runs\": [{\"method\": \"lora\"}]}",
      "{\"tasks\": [\"sst2\"], \"methods\": [\"nosuch\"]}",
      "{\"tasks\": [\"sst2\"]}",
      "{\"name\": \"a/b\", \"tasks\": [\"sst2\"], \"methods\": [\"lora\"]}",
      "{\"tasks\": [\"sst2\"], \"methods\": [\"lora\"], \"slurm\": {\"extra\": [\"-p x\"]}}",
  };
  for (size_t k = 0; k < sizeof bad / sizeof bad[0]; k++) {
    pb_sweep sw;
    const int rc = load(bad[k], &sw);
    CHECK(rc == PB_ERR_FORMAT && strstr(pb_last_error(), path), "bad file %zu: %s", k, rc ? pb_last_error() : "accepted");
    printf("bad %zu: %s\n", k, pb_last_error());
    pb_sweep_free(&sw);
  }
}

int main(void) {
  snprintf(path, sizeof path, "/tmp/pb-test-sweep-%d.json", (int)getpid());
  product();
  explicit_runs();
  errors();
  remove(path);
  printf("test_sweep: %d checks, %d failed\n", checks, failures);
  return check_exit_status();
}
