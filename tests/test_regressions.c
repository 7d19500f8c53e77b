/* Regression tests for robustness bugs found by fuzzing, the sanitizer build and
 * tests/e2e_bad_input.sh. Each case names the bug it guards; most only fail loudly under
 * -DPB_SANITIZE=ON (a leak or undefined behaviour), so CI runs this file in both builds.
 *
 *  R1 harness/setup.c pb_build_model leaked the whole model (params table, layer index) when
 *     loading the weights failed (truncated / wrong-shape / NaN model.safetensors): the caller
 *     is told "on error nothing to free", so LeakSanitizer reported every bad --model.
 *     Check: after each failure the model struct is all zero and the error names the file.
 *  R2 backbone/ops.c expf_neg_ built 2^n with a left shift of a negative int when the input
 *     was NaN (diverged training, `run --lr 10 --weight-decay 10`): UBSan "left shift of
 *     negative value" in softmax and GELU. Check: NaN in -> NaN out, no report.
 *  R3 safetensors reader edge cases from the fuzz seeds: a header that is exactly "{}",
 *     offsets past the end, an 8-byte file, a length near 2^64. Check: clean status + message.
 */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "backbone/bert.h"
#include "backbone/ops.h"
#include "backbone/safetensors.h"
#include "util/status.h"
#include "harness/setup.h"
#include "methods/method.h"
#include "tests/check.h"


static char g_dir[256];

static void write_bytes(const char *path, const void *data, size_t n) {
  FILE *f = fopen(path, "wb");
  if (!f || (n && fwrite(data, 1, n, f) != n) || fclose(f) != 0) {
    printf("FAIL: cannot write %s\n", path);
    exit(1);
  }
}

/* copies src to dst keeping only the first `keep` bytes (all when keep = 0) and then
 * overwriting `patch_n` bytes at offset `patch_at` with `patch` (none when patch_n = 0) */
static void copy_patched(const char *src, const char *dst, size_t keep, size_t patch_at, const void *patch,
                         size_t patch_n) {
  FILE *f = fopen(src, "rb");
  if (!f) {
    printf("FAIL: cannot open %s (run from the repo root)\n", src);
    exit(1);
  }
  fseek(f, 0, SEEK_END);
  size_t n = (size_t)ftell(f);
  fseek(f, 0, SEEK_SET);
  unsigned char *b = malloc(n);
  if (!b || fread(b, 1, n, f) != n) exit(1);
  fclose(f);
  if (keep && keep < n) n = keep;
  if (patch_n && patch_at + patch_n <= n) memcpy(b + patch_at, patch, patch_n);
  write_bytes(dst, b, n);
  free(b);
}

static int all_zero(const void *p, size_t n) {
  const unsigned char *c = p;
  for (size_t i = 0; i < n; i++)
    if (c[i]) return 0;
  return 1;
}

/* ---------------------------------------------------------------- R1 */

static void r1_case(const char *what, size_t keep, size_t patch_at, const void *patch, size_t patch_n) {
  char path[512], cmd[1024];
  snprintf(cmd, sizeof cmd, "cp tests/fixtures/tiny_bert/config.json tests/fixtures/tiny_bert/vocab.txt %s/", g_dir);
  if (system(cmd) != 0) {
    printf("FAIL: %s\n", cmd);
    exit(1);
  }
  snprintf(path, sizeof path, "%s/model.safetensors", g_dir);
  copy_patched("tests/fixtures/tiny_bert/model.safetensors", path, keep, patch_at, patch, patch_n);

  pb_method_inst mi;
  memset(&mi, 0, sizeof mi);
  const char *no_opts[] = {NULL};
  int rc = pb_method_create(&mi, "lora", no_opts);
  CHECK(rc == PB_OK, "pb_method_create(lora): %s", pb_last_error());
  if (rc) return;
  pb_backbone_opts o;
  memset(&o, 0, sizeof o);
  o.model_dir = g_dir;
  o.num_labels = 2;
  o.hidden_dropout = o.attn_dropout = -1;
  pb_model m;
  memset(&m, 0, sizeof m);
  pb_backbone_info info;
  rc = pb_build_model(&o, &mi, 4, 16, 0, &m, &info);
  printf("R1 %-28s -> %s: %s\n", what, pb_status_name(rc), pb_last_error());
  CHECK(rc != PB_OK, "%s: a bad model.safetensors was accepted", what);
  CHECK(strstr(pb_last_error(), "model.safetensors") != NULL, "%s: message does not name the file", what);
  CHECK(all_zero(&m, sizeof m), "%s: the model is not freed and zeroed after the failure (leak)", what);
  if (!all_zero(&m, sizeof m)) pb_model_free(&m);
  pb_method_destroy(&mi);
}

static void r1(void) {
  static const unsigned char nan_bits[4] = {0x00, 0x00, 0xc0, 0x7f};
  r1_case("truncated data", 50000, 0, NULL, 0);
  r1_case("truncated header", 100, 0, NULL, 0);
  /* the data buffer starts at 8 + 4320 (the fixture's header length): the first tensor's
   * first element becomes NaN */
  r1_case("NaN in the first tensor", 0, 8 + 4320, nan_bits, 4);
}

/* ---------------------------------------------------------------- R2 */

static void r2(void) {
  /* GELU: NaN, +-inf and huge inputs */
  float in[8] = {NAN, -NAN, INFINITY, -INFINITY, 1e30f, -1e30f, 0.0f, 1.0f}, out[8];
  pb_gelu_fwd(out, in, 8);
  printf("R2 gelu(NaN, -NaN, inf, -inf, 1e30, -1e30, 0, 1) = %g %g %g %g %g %g %g %g\n", out[0], out[1], out[2],
         out[3], out[4], out[5], out[6], out[7]);
  CHECK(isnan(out[0]) && isnan(out[1]), "gelu(NaN) must be NaN");
  CHECK(out[6] == 0.0f && fabsf(out[7] - 0.8413447f) < 1e-5f, "gelu(0), gelu(1) wrong: %g %g", out[6], out[7]);
  /* attention with a NaN score row: B=1, T=4, d=4, A=1 */
  enum { B = 1, T = 4, D = 4, A = 1 };
  float q[B * T * D], k[B * T * D], v[B * T * D], ctx[B * T * D], probs[B * A * T * T];
  for (int i = 0; i < B * T * D; i++) q[i] = k[i] = v[i] = 0.1f * (float)(i % 5);
  q[0] = NAN;
  int mask[B * T] = {1, 1, 1, 0};
  pb_attention_fwd(ctx, probs, q, k, v, mask, B, T, D, A, 0.0f, 1);
  printf("R2 attention with a NaN query: ctx[0] = %g, probs row 0 = %g %g %g %g, row 1 sums to %g\n", ctx[0],
         probs[0], probs[1], probs[2], probs[3], probs[4] + probs[5] + probs[6] + probs[7]);
  CHECK(isnan(ctx[0]), "a NaN query must give a NaN context");
  CHECK(fabsf(probs[4] + probs[5] + probs[6] + probs[7] - 1.0f) < 1e-5f, "finite rows still sum to 1");
}

/* ---------------------------------------------------------------- R3 */

static void r3_case(const char *what, const void *data, size_t n, int want_ok) {
  char path[512];
  snprintf(path, sizeof path, "%s/r3.safetensors", g_dir);
  write_bytes(path, data, n);
  pb_st_file f;
  int rc = pb_st_open(&f, path);
  printf("R3 %-28s -> %s%s%s\n", what, pb_status_name(rc), rc ? ": " : "", rc ? pb_last_error() : "");
  if (rc == PB_OK) pb_st_close(&f);
  CHECK((rc == PB_OK) == want_ok, "%s: status %s", what, pb_status_name(rc));
  if (rc) CHECK(strstr(pb_last_error(), "r3.safetensors") != NULL, "%s: message does not name the file", what);
}

static void r3(void) {
  static const unsigned char empty_obj[] = {2, 0, 0, 0, 0, 0, 0, 0, '{', '}'};
  static const unsigned char eight[] = {0, 0, 0, 0, 0, 0, 0, 0};
  static const unsigned char huge[] = {0xf8, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, '{', '}'};
  static const char past_hdr[] = "{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]}}   ";
  unsigned char past[8 + sizeof past_hdr - 1 + 4];
  uint64_t hl = sizeof past_hdr - 1;
  for (int i = 0; i < 8; i++) past[i] = (unsigned char)(hl >> (8 * i));
  memcpy(past + 8, past_hdr, hl);
  memset(past + 8 + hl, 0, 4); /* 4 data bytes, the tensor claims 8 */
  r3_case("header {}", empty_obj, sizeof empty_obj, 1);
  r3_case("8-byte file, length 0", eight, sizeof eight, 0);
  r3_case("length near 2^64", huge, sizeof huge, 0);
  r3_case("offsets past the end", past, sizeof past, 0);
}

int main(void) {
  snprintf(g_dir, sizeof g_dir, "%s/pb_regress_XXXXXX", getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp");
  if (!mkdtemp(g_dir)) {
    printf("FAIL: mkdtemp\n");
    return 1;
  }
  r1();
  r2();
  r3();
  char cmd[512];
  snprintf(cmd, sizeof cmd, "rm -rf '%s'", g_dir);
  if (system(cmd) != 0) printf("  (could not remove %s)\n", g_dir);
  if (failures) {
    printf("test_regressions: %d check(s) FAILED\n", failures);
    return 1;
  }
  printf("test_regressions: all checks passed\n");
  return 0;
}
