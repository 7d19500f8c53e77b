/* The op-count baseline (results/ops-baseline.json) and the `peftbench ops` command, run in
 * process through pb_cmd_ops (the CLI's exit codes and output):
 *  - --check on the committed file exits 0;
 *  - a copy with one count changed exits 1 and the diff names shape, config and counter;
 *  - missing, truncated and wrong-schema files exit 2 with one line naming the file;
 *  - --update rewrites the changed copy, which then checks clean and is byte-identical to the
 *    committed file (stable, sorted output);
 *  - every count in the baseline is an exact integer below 2^53;
 *  - the readable table / --json / --method all run; bad arguments exit 2. */
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cjson/cJSON.h>

#include "util/fileio.h"
#include "harness/opscmd.h"
#include "tests/check.h"


#define BASELINE "results/ops-baseline.json"

static char dir[] = "/tmp/pb_ops_baseline_XXXXXX";
static char out_path[256]; /* captured stdout + stderr of the last run */

/* runs pb_cmd_ops with argv (NULL-terminated, argv[0] = "ops"), capturing stdout and stderr
 * into out_path; returns the exit code and leaves the text in *text (malloc'd) */
static int run(char **text, const char *const *argv) {
  int argc = 0;
  char *args[32];
  while (argv[argc]) {
    args[argc] = (char *)argv[argc];
    argc++;
  }
  args[argc] = NULL;
  fflush(stdout);
  fflush(stderr);
  int so = dup(1), se = dup(2);
  int fd = open(out_path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
  dup2(fd, 1);
  dup2(fd, 2);
  close(fd);
  int rc = pb_cmd_ops(argc, args);
  fflush(stdout);
  fflush(stderr);
  dup2(so, 1);
  dup2(se, 2);
  close(so);
  close(se);
  size_t len = 0;
  *text = NULL;
  if (pb_read_file(out_path, text, &len)) *text = strdup("");
  return rc;
}

static int count_lines(const char *s) {
  int n = 0;
  for (; *s; s++) n += *s == '\n';
  return n;
}

/* every number under `o` is an integer in [0, 2^53) (config floats excepted) */
static int check_exact(const cJSON *o, int *n) {
  int bad = 0;
  for (const cJSON *c = o->child; c; c = c->next) {
    if (c->string && (strcmp(c->string, "config") == 0)) continue;
    if (cJSON_IsObject(c) || cJSON_IsArray(c)) bad += check_exact(c, n);
    else if (cJSON_IsNumber(c)) {
      double v = c->valuedouble;
      (*n)++;
      if (!(v >= 0 && v < 9007199254740992.0 && v == (double)(unsigned long long)v)) {
        printf("  not an exact count: %s = %.17g\n", c->string ? c->string : "?", v);
        bad++;
      }
    }
  }
  return bad;
}

static void write_text(const char *path, const char *s) {
  FILE *f = fopen(path, "wb");
  if (f) {
    fputs(s, f);
    fclose(f);
  }
}

int main(void) {
  if (!mkdtemp(dir)) {
    printf("cannot create a temporary directory\n");
    return 1;
  }
  snprintf(out_path, sizeof out_path, "%s/out.txt", dir);
  char *text = NULL, *committed = NULL;
  size_t clen = 0;
  int rc;

  /* 1. the committed file checks clean */
  rc = run(&text, (const char *const[]){"ops", "--check", BASELINE, NULL});
  printf("check %s -> %d: %s", BASELINE, rc, text);
  CHECK(rc == 0, "committed baseline does not match the code (regenerate with peftbench ops --check %s --update "
                 "if the change is intended)",
        BASELINE);
  free(text);

  CHECK(pb_read_file(BASELINE, &committed, &clen) == 0, "cannot read %s", BASELINE);
  if (!committed) committed = strdup("");
  cJSON *doc = cJSON_Parse(committed);
  CHECK(doc != NULL, "%s does not parse", BASELINE);
  if (doc) {
    int n = 0, bad = check_exact(doc, &n);
    printf("%d counts in the baseline, %d not exact integers < 2^53\n", n, bad);
    CHECK(bad == 0 && n > 100, "baseline counts must be exact integers (%d bad of %d)", bad, n);
    /* the documented bert-base reference numbers (DESIGN.md) */
    const cJSON *bb = cJSON_GetObjectItem(cJSON_GetObjectItem(doc, "shapes"), "bert-base");
    const cJSON *ms = cJSON_GetObjectItem(bb, "methods");
    struct {
      const char *label;
      double trainable_no_head, method_macs_per_token;
    } want[] = {{"full", 109482240, 0},
                {"lora r=8 alpha=16 q,v", 294912, 294912},
                {"adapter pfeiffer r=8", 156768, 147456},
                {"adapter houlsby r=8", 313536, 294912},
                {"layerconnect K=9 diag tokens", 13824, 0}};
    for (size_t i = 0; i < sizeof want / sizeof want[0]; i++) {
      const cJSON *e = cJSON_GetObjectItem(ms, want[i].label);
      const cJSON *p = cJSON_GetObjectItem(e, "params");
      double tr = cJSON_GetNumberValue(cJSON_GetObjectItem(p, "trainable")) -
                  cJSON_GetNumberValue(cJSON_GetObjectItem(p, "head"));
      double mac = cJSON_GetNumberValue(cJSON_GetObjectItem(
                       cJSON_GetObjectItem(cJSON_GetObjectItem(e, "inference_T128"), "method"), "matmul_macs")) /
                   128.0;
      printf("bert-base %-30s trainable (no head) %.0f, method MACs/token %.0f\n", want[i].label, tr, mac);
      CHECK(tr == want[i].trainable_no_head && mac == want[i].method_macs_per_token,
            "%s: expected %.0f trainable, %.0f MACs/token", want[i].label, want[i].trainable_no_head,
            want[i].method_macs_per_token);
    }
    const cJSON *merged = cJSON_GetObjectItem(cJSON_GetObjectItem(ms, "lora r=8 alpha=16 q,v"), "inference_merged_T128");
    const cJSON *mm = cJSON_GetObjectItem(merged, "method");
    CHECK(mm && cJSON_GetNumberValue(cJSON_GetObjectItem(mm, "matmul_macs")) == 0 &&
              cJSON_GetNumberValue(cJSON_GetObjectItem(mm, "elementwise_flops")) == 0,
          "lora merged must add zero ops");

    /* a compressed bert-base (the paper's widths 768 -> 576 -> 480 -> 384 above layer 6), full
     * fine-tuning, against closed forms written here: every parameter, and the matmul MACs of one
     * example at T = 128 summed over owners (per layer at width w, FFN F: 4 T w^2 + 2 T w F + 2 T^2 w;
     * the map T * in * out per layer; pooler w'^2, classifier 2 w') */
    const cJSON *lt = cJSON_GetObjectItem(cJSON_GetObjectItem(doc, "latent"), "bert-base k=6 d'=384 ae 768,576,480,384");
    const cJSON *lf = cJSON_GetObjectItem(cJSON_GetObjectItem(lt, "methods"), "full");
    const double T = 128, V = 30522, P = 512, w[4] = {768, 576, 480, 384};
    double params = V * w[0] + P * w[0] + 2 * w[0] + 2 * w[0], macs = 0; /* embeddings: word, position, type, LN */
    for (int l = 0; l < 12; l++) {
      const double d = l < 6 ? 768 : 384, F = l < 6 ? 3072 : 1536;
      params += 4 * d * d + 4 * d + 2 * d + d * F + F + F * d + d + 2 * d;
      macs += 4 * T * d * d + 2 * T * d * F + 2 * T * T * d;
    }
    for (int i = 0; i < 3; i++) params += w[i] * w[i + 1] + w[i + 1], macs += T * w[i] * w[i + 1];
    params += w[3] * w[3] + w[3] + w[3] * 2 + 2, macs += w[3] * w[3] + w[3] * 2;
    double got_p = cJSON_GetNumberValue(cJSON_GetObjectItem(cJSON_GetObjectItem(lf, "params"), "all")), got_m = 0;
    const cJSON *inf = cJSON_GetObjectItem(lf, "inference_T128");
    for (const cJSON *o = inf ? inf->child : NULL; o; o = o->next)
      got_m += cJSON_GetNumberValue(cJSON_GetObjectItem(o, "matmul_macs"));
    printf("latent bert-base k=6 d'=384: params %.0f (closed form %.0f), inference MACs %.0f (closed form %.0f)\n", got_p,
           params, got_m, macs);
    CHECK(got_p == params && got_m == macs, "latent bert-base entry: params %.0f vs %.0f, MACs %.0f vs %.0f", got_p,
          params, got_m, macs);
    /* the map is frozen (AE): full fine-tuning trains everything else */
    double tr = cJSON_GetNumberValue(cJSON_GetObjectItem(cJSON_GetObjectItem(lf, "params"), "trainable"));
    CHECK(tr == params - (576 * 768 + 576 + 480 * 576 + 480 + 384 * 480 + 384), "latent AE map must be frozen (trainable %.0f)", tr);
    const cJSON *ref = cJSON_GetObjectItem(cJSON_GetObjectItem(cJSON_GetObjectItem(lt, "methods"), "prefix P=20"), "refused");
    CHECK(cJSON_IsString(ref), "prefix over a compressed model must be recorded as refused");
  }

  /* 2. one count changed -> exit 1, diff names the counter */
  char changed[300];
  snprintf(changed, sizeof changed, "%s/changed.json", dir);
  if (doc) {
    cJSON *c = cJSON_GetObjectItem(cJSON_GetObjectItem(cJSON_GetObjectItem(cJSON_GetObjectItem(
                                       cJSON_GetObjectItem(cJSON_GetObjectItem(doc, "shapes"), "bert-base"), "methods"),
                                                                           "lora r=8 alpha=16 q,v"),
                                                       "train_step"),
                                   "method");
    cJSON *mac = cJSON_GetObjectItem(c, "matmul_macs");
    CHECK(mac != NULL, "baseline lacks bert-base / lora / train_step.method.matmul_macs");
    if (mac) cJSON_SetNumberValue(mac, mac->valuedouble + 1000);
    char *s = cJSON_Print(doc);
    write_text(changed, s);
    free(s);
  }
  rc = run(&text, (const char *const[]){"ops", "--check", changed, NULL});
  printf("check with one count +1000 -> %d:\n%s", rc, text);
  CHECK(rc == 1, "a changed count must exit 1 (got %d)", rc);
  CHECK(strstr(text, "bert-base / lora r=8 alpha=16 q,v / train_step.method.matmul_macs") != NULL,
        "the diff must name shape, config and counter");
  CHECK(strstr(text, "(-1,000,") != NULL, "the diff must show the delta");
  CHECK(count_lines(text) == 3, "exactly one differing counter expected (got %d lines)", count_lines(text));
  free(text);

  /* 3. --update rewrites it; then it checks clean and equals the committed bytes */
  rc = run(&text, (const char *const[]){"ops", "--check", changed, "--update", NULL});
  printf("update -> %d: %s", rc, text);
  CHECK(rc == 0, "--update must succeed");
  free(text);
  rc = run(&text, (const char *const[]){"ops", "--check", changed, NULL});
  CHECK(rc == 0, "after --update the check must pass (got %d: %s)", rc, text);
  free(text);
  char *upd = NULL;
  size_t ulen = 0;
  pb_read_file(changed, &upd, &ulen);
  CHECK(upd && ulen == clen && memcmp(upd, committed, clen) == 0,
        "--update output differs from the committed file byte for byte (unstable output?)");
  free(upd);

  /* 4. missing, truncated, wrong-schema, non-object files -> exit 2, one line naming the file */
  char missing[300], trunc[300], schema[300];
  snprintf(missing, sizeof missing, "%s/nope.json", dir);
  snprintf(trunc, sizeof trunc, "%s/trunc.json", dir);
  snprintf(schema, sizeof schema, "%s/schema.json", dir);
  char *half = strndup(committed, clen / 2);
  write_text(trunc, half);
  free(half);
  write_text(schema, "{\"schema\": \"something-else/1\", \"shapes\": {}}\n");
  const char *bad_files[] = {missing, trunc, schema};
  for (int i = 0; i < 3; i++) {
    rc = run(&text, (const char *const[]){"ops", "--check", bad_files[i], NULL});
    printf("check %s -> %d: %s", bad_files[i], rc, text);
    CHECK(rc == 2, "bad baseline %s must exit 2 (got %d)", bad_files[i], rc);
    CHECK(strstr(text, bad_files[i]) != NULL && count_lines(text) == 1, "one line naming the file expected");
    free(text);
  }

  /* 5. the readable command */
  rc = run(&text, (const char *const[]){"ops", "--method", "lora", "--shape", "base", NULL});
  CHECK(rc == 0, "ops --method lora --shape base failed: %s", text);
  CHECK(strstr(text, "37,748,736") && strstr(text, "294,912.0") && strstr(text, "lora merged") &&
            strstr(text, "trainable params: 296,450 || all params: 109,778,690 || trainable%: 0.2700"),
        "lora table lacks the expected numbers:\n%s", text);
  free(text);
  rc = run(&text, (const char *const[]){"ops", "--method", "all", "--shape", "2,16,2,24", "--vocab-size", "50",
                                        "--seq", "7", "--batch", "2", NULL});
  CHECK(rc == 0 && strstr(text, "summary") && strstr(text, "layerconnect"), "ops --method all failed: %s", text);
  free(text);
  rc = run(&text, (const char *const[]){"ops", "--method", "adapter", "-o", "mode=houlsby", "--json", NULL});
  cJSON *j = cJSON_Parse(text);
  CHECK(rc == 0 && j && cJSON_GetArraySize(cJSON_GetObjectItem(j, "reports")) == 1, "--json output: %s", text);
  cJSON_Delete(j);
  free(text);
  rc = run(&text, (const char *const[]){"ops", "--method", "full", "--model", "tests/fixtures/tiny_bert", "--seq",
                                        "8", NULL});
  CHECK(rc == 0 && strstr(text, "d=32"), "--model config.json: %s", text);
  free(text);

  struct {
    const char *argv[8];
    const char *needle;
  } bad[] = {
      {{"ops", "--method", "nope", NULL}, "valid: full, lora"},
      {{"ops", "--method", "lora", "--shape", "2,16", NULL}, "--shape"},
      {{"ops", "--method", "lora", "--shape", "2,16,3,24", NULL}, "divisible"},
      {{"ops", "--method", "lora", "-o", "r=zero", NULL}, "r=zero"},
      {{"ops", "--method", "lora", "--seq", "0", NULL}, "--seq"},
      {{"ops", "--method", "lora", "--seq", "600", NULL}, "max_position"},
      {{"ops", "--method", "all", "-o", "r=4", NULL}, "-o"},
      {{"ops", "--method", "lora", "--model", "/nonexistent", NULL}, "/nonexistent"},
      {{"ops", NULL}, "--method"},
      {{"ops", "--frobnicate", NULL}, "--frobnicate"},
  };
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
    rc = run(&text, bad[i].argv);
    printf("bad args %zu -> %d: %s", i, rc, text);
    CHECK(rc == 2 && strstr(text, bad[i].needle) && count_lines(text) == 1,
          "expected exit 2 and one line mentioning '%s'", bad[i].needle);
    free(text);
  }

  cJSON_Delete(doc);
  free(committed);
  unlink(out_path);
  unlink(changed);
  unlink(trunc);
  unlink(schema);
  rmdir(dir);
  printf("%s (%d failures)\n", failures ? "FAILED" : "OK", failures);
  return failures ? 1 : 0;
}
