/* safetensors reader/writer: round trips, dtype conversions, and ~25 malformed files that
 * must each give the right status and a message naming the file, without crashing. */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "util/fileio.h"
#include "backbone/safetensors.h"
#include "util/status.h"
#include "tests/check.h"


static char g_dir[256];

static void path_of(char *buf, size_t n, const char *name) { snprintf(buf, n, "%s/%s", g_dir, name); }

/* writes raw bytes: 8-byte LE hlen (explicit, or strlen(hdr) when hlen == UINT64_MAX), header, data */
static void write_raw(const char *name, uint64_t hlen, const char *hdr, const void *data, size_t ndata) {
  char p[512];
  path_of(p, sizeof p, name);
  FILE *f = fopen(p, "wb");
  if (!f) { printf("cannot create %s\n", p); exit(2); }
  if (hlen == UINT64_MAX) hlen = strlen(hdr);
  unsigned char pre[8];
  for (int i = 0; i < 8; i++) pre[i] = (unsigned char)(hlen >> (8 * i));
  fwrite(pre, 1, 8, f);
  fwrite(hdr, 1, strlen(hdr), f);
  if (ndata) fwrite(data, 1, ndata, f);
  fclose(f);
}

static int bits_equal(const float *a, const float *b, size_t n) { return memcmp(a, b, n * sizeof(float)) == 0; }

static void test_roundtrip_f32(void) {
  printf("F32 round trip (bit-exact, sorted, padded header, metadata)\n");
  float a[6] = {1.0f, -0.0f, 1e-40f /* denormal */, INFINITY, -3.25f, 0.1f};
  float b[3] = {NAN, 7.0f, -1e30f};
  float c[1] = {42.0f};
  int sa[2] = {2, 3}, sb[1] = {3};
  pb_st_wtensor t[3] = {{"zeta.weight", 2, sa, a}, {"alpha.bias", 1, sb, b}, {"scalar", 0, NULL, c}};
  pb_kv meta[2] = {{"format", "pt"}, {"note", "quotes \" and \\ and unicode \xc3\xa9"}};
  char p[512];
  path_of(p, sizeof p, "ok_f32.safetensors");
  int rc = pb_st_write(p, meta, 2, t, 3, PB_ST_F32);
  CHECK(rc == PB_OK, "write rc=%d %s", rc, pb_last_error());

  char *raw = NULL;
  size_t len = 0;
  CHECK(pb_read_file(p, &raw, &len) == PB_OK, "read raw");
  if (raw) {
    uint64_t hlen = 0;
    for (int i = 7; i >= 0; i--) hlen = (hlen << 8) | (unsigned char)raw[i];
    CHECK(hlen % 8 == 0, "header length %llu not a multiple of 8", (unsigned long long)hlen);
    CHECK(len == 8 + hlen + (6 + 3 + 1) * 4, "file size %zu", len);
    char *h = strndup(raw + 8, (size_t)hlen);
    char *pa = strstr(h, "\"alpha.bias\""), *ps = strstr(h, "\"scalar\""), *pz = strstr(h, "\"zeta.weight\"");
    char *pm = strstr(h, "\"__metadata__\"");
    CHECK(pa && ps && pz && pm && pm < pa && pa < ps && ps < pz, "header order: %s", h);
    CHECK(strstr(h, "\"data_offsets\":[0,12]") != NULL, "alpha.bias offsets first: %s", h);
    free(h);
    free(raw);
  }

  pb_st_file f;
  rc = pb_st_open(&f, p);
  CHECK(rc == PB_OK, "open rc=%d %s", rc, pb_last_error());
  if (rc) return;
  CHECK(f.n == 3, "n=%d", f.n);
  CHECK(f.n_meta == 2 && strcmp(pb_kv_get(f.meta, f.n_meta, "format"), "pt") == 0, "metadata format");
  CHECK(strcmp(pb_kv_get(f.meta, f.n_meta, "note"), meta[1].value) == 0, "metadata escaping");
  float ra[6], rb[3], rc1[1];
  int ia = pb_st_find(&f, "zeta.weight");
  CHECK(ia >= 0 && f.t[ia].ndim == 2 && f.t[ia].shape[0] == 2 && f.t[ia].shape[1] == 3 && f.t[ia].dtype == PB_ST_F32, "zeta shape");
  CHECK(pb_st_read_f32(&f, ia, ra, 6) == PB_OK && bits_equal(a, ra, 6), "zeta bits");
  CHECK(pb_st_read_f32_name(&f, "alpha.bias", rb, 3) == PB_OK && bits_equal(b, rb, 3), "alpha bits (NaN kept)");
  int is = pb_st_find(&f, "scalar");
  CHECK(is >= 0 && f.t[is].ndim == 0 && f.t[is].numel == 1, "scalar rank 0");
  CHECK(pb_st_read_f32(&f, is, rc1, 1) == PB_OK && rc1[0] == 42.0f, "scalar value");
  rc = pb_st_read_f32(&f, ia, ra, 5);
  CHECK(rc == PB_ERR_SHAPE && strstr(pb_last_error(), "zeta.weight"), "numel mismatch rc=%d %s", rc, pb_last_error());
  rc = pb_st_read_f32_name(&f, "nope", ra, 6);
  CHECK(rc == PB_ERR_NOTFOUND && strstr(pb_last_error(), "nope"), "missing name rc=%d", rc);
  pb_st_close(&f);

  pb_kv *m = NULL;
  int nm = 0;
  rc = pb_st_read_meta(p, &m, &nm);
  CHECK(rc == PB_OK && nm == 2 && strcmp(pb_kv_get(m, nm, "format"), "pt") == 0, "read_meta rc=%d", rc);
  pb_kv_free(m, nm);

  /* a failing write (duplicate names) leaves the existing file untouched and no tmp file */
  pb_st_wtensor dup[2] = {{"x", 1, sb, b}, {"x", 1, sb, b}};
  struct stat st0, st1;
  stat(p, &st0);
  rc = pb_st_write(p, NULL, 0, dup, 2, PB_ST_F32);
  stat(p, &st1);
  CHECK(rc == PB_ERR_ARG, "duplicate tensor rc=%d", rc);
  CHECK(st0.st_size == st1.st_size && st0.st_ino == st1.st_ino, "file untouched after failed write");
  /* metadata-only file, no tensors */
  path_of(p, sizeof p, "ok_empty.safetensors");
  rc = pb_st_write(p, meta, 1, NULL, 0, PB_ST_F32);
  CHECK(rc == PB_OK, "empty write");
  rc = pb_st_open(&f, p);
  CHECK(rc == PB_OK && f.n == 0 && f.n_meta == 1, "empty open rc=%d %s", rc, pb_last_error());
  if (rc == PB_OK) pb_st_close(&f);
  /* directory that does not exist */
  rc = pb_st_write("/nonexistent-dir-pb/x.safetensors", NULL, 0, t, 3, PB_ST_F32);
  CHECK(rc == PB_ERR_IO && strstr(pb_last_error(), "/nonexistent-dir-pb/x.safetensors"), "bad dir rc=%d %s", rc, pb_last_error());
}

static void test_f16_conversions(void) {
  printf("F16 / BF16 / F64 / I64 conversions of hand-made bytes\n");
  CHECK(pb_f16_to_f32(0x3C00) == 1.0f, "1.0");
  CHECK(pb_f16_to_f32(0xC000) == -2.0f, "-2");
  CHECK(pb_f16_to_f32(0x7BFF) == 65504.0f, "max");
  CHECK(pb_f16_to_f32(0x0001) == ldexpf(1.0f, -24), "min subnormal");
  CHECK(pb_f16_to_f32(0x03FF) == ldexpf(1023.0f, -24), "max subnormal");
  CHECK(pb_f16_to_f32(0x0400) == ldexpf(1.0f, -14), "min normal");
  CHECK(isinf(pb_f16_to_f32(0x7C00)) && pb_f16_to_f32(0xFC00) < 0, "inf");
  CHECK(isnan(pb_f16_to_f32(0x7E00)), "nan");
  CHECK(pb_f16_to_f32(0x3555) == 0.333251953125f, "1/3");
  uint16_t m0 = 0x8000;
  float z = pb_f16_to_f32(m0);
  CHECK(z == 0.0f && signbit(z), "-0");
  CHECK(pb_bf16_to_f32(0x3F80) == 1.0f && pb_bf16_to_f32(0xC040) == -3.0f && pb_bf16_to_f32(0x4049) == 3.140625f, "bf16");
  /* float -> half rounding, ties to even */
  CHECK(pb_f32_to_f16(1.0f) == 0x3C00, "enc 1");
  CHECK(pb_f32_to_f16(1.0f + ldexpf(1, -11)) == 0x3C00, "tie down to even");
  CHECK(pb_f32_to_f16(1.0f + 3 * ldexpf(1, -11)) == 0x3C02, "tie up to even");
  CHECK(pb_f32_to_f16(65519.0f) == 0x7BFF, "65519 -> max");
  CHECK(pb_f32_to_f16(65520.0f) == 0x7C00, "65520 -> inf");
  CHECK(pb_f32_to_f16(ldexpf(1, -25)) == 0x0000, "2^-25 ties to 0");
  CHECK(pb_f32_to_f16(3 * ldexpf(1, -25)) == 0x0002, "3*2^-25 ties to 2");
  CHECK(pb_f32_to_f16(ldexpf(1023.5f, -24)) == 0x0400, "subnormal rounds up into min normal");
  CHECK(pb_f32_to_f16(-2.0f) == 0xC000, "enc -2");
  CHECK((pb_f32_to_f16(NAN) & 0x7C00) == 0x7C00 && (pb_f32_to_f16(NAN) & 0x3FF), "enc nan");
  /* every finite half survives half -> float -> half */
  int bad = 0;
  for (uint32_t h = 0; h < 0x10000; h++) {
    if ((h & 0x7C00) == 0x7C00) continue;
    if (pb_f32_to_f16(pb_f16_to_f32((uint16_t)h)) != h) bad++;
  }
  CHECK(bad == 0, "%d halves do not round trip", bad);

  /* a file with hand-made F16, BF16, F64, I64 tensors */
  uint16_t h16[4] = {0x3C00, 0xC000, 0x3555, 0x0001};
  uint16_t b16[3] = {0x3F80, 0xC040, 0x4049};
  double f64[2] = {0.1, -1e300};
  int64_t i64[3] = {0, 1, 511};
  unsigned char data[8 + 6 + 16 + 24];
  memcpy(data, h16, 8);
  memcpy(data + 8, b16, 6);
  memcpy(data + 14, f64, 16);
  memcpy(data + 30, i64, 24);
  write_raw("ok_mixed.safetensors", UINT64_MAX,
            "{\"h\":{\"dtype\":\"F16\",\"shape\":[2,2],\"data_offsets\":[0,8]},"
            "\"b\":{\"dtype\":\"BF16\",\"shape\":[3],\"data_offsets\":[8,14]},"
            "\"d\":{\"dtype\":\"F64\",\"shape\":[2],\"data_offsets\":[14,30]},"
            "\"position_ids\":{\"dtype\":\"I64\",\"shape\":[1,3],\"data_offsets\":[30,54]}}",
            data, sizeof data);
  char p[512];
  path_of(p, sizeof p, "ok_mixed.safetensors");
  pb_st_file f;
  int rc = pb_st_open(&f, p);
  CHECK(rc == PB_OK, "open mixed rc=%d %s", rc, pb_last_error());
  if (rc) return;
  float o[4];
  CHECK(pb_st_read_f32_name(&f, "h", o, 4) == PB_OK && o[0] == 1.0f && o[1] == -2.0f && o[2] == 0.333251953125f &&
            o[3] == ldexpf(1, -24), "F16 values");
  CHECK(pb_st_read_f32_name(&f, "b", o, 3) == PB_OK && o[0] == 1.0f && o[1] == -3.0f && o[2] == 3.140625f, "BF16 values");
  CHECK(pb_st_read_f32_name(&f, "d", o, 2) == PB_OK && o[0] == 0.1f && isinf(o[1]) && o[1] < 0, "F64 values (overflow -> -inf)");
  CHECK(pb_st_read_f32_name(&f, "position_ids", o, 3) == PB_OK && o[0] == 0 && o[1] == 1 && o[2] == 511, "I64 values");
  pb_st_close(&f);

  /* F16 writer round trip */
  float v[5] = {1.0f, -2.5f, 0.1f, 65504.0f, 1e-7f};
  int s5[1] = {5};
  pb_st_wtensor t = {"v", 1, s5, v};
  path_of(p, sizeof p, "ok_f16.safetensors");
  rc = pb_st_write(p, NULL, 0, &t, 1, PB_ST_F16);
  CHECK(rc == PB_OK, "write f16");
  rc = pb_st_open(&f, p);
  CHECK(rc == PB_OK && f.n == 1 && f.t[0].dtype == PB_ST_F16, "open f16");
  if (rc) return;
  float r[5];
  CHECK(pb_st_read_f32(&f, 0, r, 5) == PB_OK, "read f16");
  int okv = 1;
  for (int i = 0; i < 5; i++) okv &= r[i] == pb_f16_to_f32(pb_f32_to_f16(v[i]));
  CHECK(okv && r[0] == 1.0f && r[1] == -2.5f && r[3] == 65504.0f && fabsf(r[2] - 0.1f) < 1e-4f, "f16 values");
  pb_st_close(&f);
}

typedef struct {
  const char *file;
  uint64_t hlen;       /* UINT64_MAX: strlen(hdr) */
  const char *hdr;
  size_t ndata;        /* zero bytes of data appended */
  int want;            /* expected status of pb_st_open */
  const char *needle;  /* must also appear in the message (besides the file name) */
} bad_case;

static void test_malformed(void) {
  printf("malformed files: status + message naming the file\n");
  static const bad_case cases[] = {
      {"m_unknown_dtype.st", UINT64_MAX, "{\"a\":{\"dtype\":\"F31\",\"shape\":[1],\"data_offsets\":[0,4]}}", 4, PB_ERR_FORMAT, "F31"},
      {"m_hlen_past_eof.st", 1000, "{}", 0, PB_ERR_FORMAT, "larger than"},
      {"m_hlen_huge.st", (uint64_t)1 << 62, "{}", 0, PB_ERR_FORMAT, "absurdly"},
      {"m_not_json.st", UINT64_MAX, "{hello world}", 0, PB_ERR_FORMAT, "JSON"},
      {"m_not_object.st", UINT64_MAX, "[1,2,3]", 0, PB_ERR_FORMAT, "object"},
      {"m_truncated_json.st", UINT64_MAX, "{\"a\":{\"dtype\":\"F32\"", 0, PB_ERR_FORMAT, "JSON"},
      {"m_missing_dtype.st", UINT64_MAX, "{\"a\":{\"shape\":[1],\"data_offsets\":[0,4]}}", 4, PB_ERR_FORMAT, "dtype"},
      {"m_missing_shape.st", UINT64_MAX, "{\"a\":{\"dtype\":\"F32\",\"data_offsets\":[0,4]}}", 4, PB_ERR_FORMAT, "shape"},
      {"m_missing_offsets.st", UINT64_MAX, "{\"a\":{\"dtype\":\"F32\",\"shape\":[1]}}", 4, PB_ERR_FORMAT, "data_offsets"},
      {"m_negative_dim.st", UINT64_MAX, "{\"a\":{\"dtype\":\"F32\",\"shape\":[-1],\"data_offsets\":[0,4]}}", 4, PB_ERR_FORMAT, "dimension 0"},
      {"m_fraction_dim.st", UINT64_MAX, "{\"a\":{\"dtype\":\"F32\",\"shape\":[2.5],\"data_offsets\":[0,10]}}", 10, PB_ERR_FORMAT, "dimension 0"},
      {"m_string_dim.st", UINT64_MAX, "{\"a\":{\"dtype\":\"F32\",\"shape\":[1,\"2\"],\"data_offsets\":[0,8]}}", 8, PB_ERR_FORMAT, "dimension 1"},
      {"m_begin_gt_end.st", UINT64_MAX, "{\"a\":{\"dtype\":\"F32\",\"shape\":[0],\"data_offsets\":[4,0]}}", 4, PB_ERR_FORMAT, "begin"},
      {"m_end_past_buffer.st", UINT64_MAX, "{\"a\":{\"dtype\":\"F32\",\"shape\":[4],\"data_offsets\":[0,16]}}", 12, PB_ERR_FORMAT, "past the data buffer"},
      {"m_size_mismatch.st", UINT64_MAX, "{\"a\":{\"dtype\":\"F32\",\"shape\":[2,2],\"data_offsets\":[0,12]}}", 16, PB_ERR_FORMAT, "needs 16"},
      {"m_overlap.st", UINT64_MAX,
       "{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]},\"b\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[4,12]}}",
       12, PB_ERR_FORMAT, "overlap"},
      {"m_meta_not_string.st", UINT64_MAX, "{\"__metadata__\":{\"epochs\":3}}", 0, PB_ERR_FORMAT, "epochs"},
      {"m_meta_not_object.st", UINT64_MAX, "{\"__metadata__\":\"x\"}", 0, PB_ERR_FORMAT, "__metadata__"},
      {"m_offsets_len.st", UINT64_MAX, "{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0]}}", 4, PB_ERR_FORMAT, "data_offsets"},
      {"m_tensor_not_object.st", UINT64_MAX, "{\"a\":5}", 0, PB_ERR_FORMAT, "\"a\""},
      {"m_duplicate.st", UINT64_MAX,
       "{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]},\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[4,8]}}",
       8, PB_ERR_FORMAT, "twice"},
      {"m_trailing.st", UINT64_MAX, "{} garbage", 0, PB_ERR_FORMAT, "trailing"},
      {"m_dtype_number.st", UINT64_MAX, "{\"a\":{\"dtype\":32,\"shape\":[1],\"data_offsets\":[0,4]}}", 4, PB_ERR_FORMAT, "dtype"},
      {"m_too_many_dims.st", UINT64_MAX, "{\"a\":{\"dtype\":\"F32\",\"shape\":[1,1,1,1,1,1,1,1,1],\"data_offsets\":[0,4]}}", 4, PB_ERR_FORMAT, "dimensions"},
      {"m_numel_overflow.st", UINT64_MAX,
       "{\"a\":{\"dtype\":\"F32\",\"shape\":[4294967296,4294967296],\"data_offsets\":[0,4]}}", 4, PB_ERR_FORMAT, "too large"},
      {"m_hlen_tiny.st", 1, "{}", 0, PB_ERR_FORMAT, "too small"},
  };
  static const unsigned char zeros[64] = {0};
  int ncases = (int)(sizeof cases / sizeof cases[0]);
  for (int i = 0; i < ncases; i++) {
    const bad_case *c = &cases[i];
    write_raw(c->file, c->hlen, c->hdr, zeros, c->ndata);
    char p[512];
    path_of(p, sizeof p, c->file);
    pb_st_file f;
    pb_set_error(0, "%s", "");
    int rc = pb_st_open(&f, p);
    if (rc == PB_OK) pb_st_close(&f);
    CHECK(rc == c->want, "%s: rc=%d (%s) want %d", c->file, rc, pb_last_error(), c->want);
    CHECK(strstr(pb_last_error(), c->file) != NULL, "%s: message lacks the file name: %s", c->file, pb_last_error());
    CHECK(strstr(pb_last_error(), c->needle) != NULL, "%s: message lacks \"%s\": %s", c->file, c->needle, pb_last_error());
    printf("  %-24s -> %s\n", c->file, pb_last_error());
    pb_kv *m = NULL;
    int nm = 0;
    int rc2 = pb_st_read_meta(p, &m, &nm);
    CHECK(rc2 == c->want && m == NULL, "%s: read_meta rc=%d", c->file, rc2);
    pb_kv_free(m, nm);
  }
  /* short files, written without the 8-byte prefix */
  const char *shorts[2] = {"m_empty.st", "m_short3.st"};
  for (int i = 0; i < 2; i++) {
    char p[512];
    path_of(p, sizeof p, shorts[i]);
    FILE *fp = fopen(p, "wb");
    fwrite("abc", 1, (size_t)(i * 3), fp);
    fclose(fp);
    pb_st_file f;
    int rc = pb_st_open(&f, p);
    CHECK(rc == PB_ERR_FORMAT && strstr(pb_last_error(), shorts[i]) && strstr(pb_last_error(), "shorter"), "%s: rc=%d %s",
          shorts[i], rc, pb_last_error());
    printf("  %-24s -> %s\n", shorts[i], pb_last_error());
  }
  /* valid header, unreadable dtype */
  write_raw("m_f8.st", UINT64_MAX, "{\"a\":{\"dtype\":\"F8_E4M3\",\"shape\":[2],\"data_offsets\":[0,2]}}", zeros, 2);
  char p[512];
  path_of(p, sizeof p, "m_f8.st");
  pb_st_file f;
  int rc = pb_st_open(&f, p);
  CHECK(rc == PB_OK, "f8 header is valid");
  if (rc == PB_OK) {
    float o[2];
    rc = pb_st_read_f32(&f, 0, o, 2);
    CHECK(rc == PB_ERR_UNSUPPORTED && strstr(pb_last_error(), "m_f8.st"), "f8 read rc=%d %s", rc, pb_last_error());
    pb_st_close(&f);
  }
  /* missing file, directory */
  path_of(p, sizeof p, "does_not_exist.st");
  rc = pb_st_open(&f, p);
  CHECK(rc == PB_ERR_NOTFOUND && strstr(pb_last_error(), "does_not_exist.st"), "missing rc=%d", rc);
  rc = pb_st_open(&f, g_dir);
  CHECK(rc == PB_ERR_IO && strstr(pb_last_error(), g_dir), "directory rc=%d %s", rc, pb_last_error());
}

static void test_append_line(void) {
  printf("pb_append_line: one record per line, torn last line repaired\n");
  char p[512];
  path_of(p, sizeof p, "r.jsonl");
  CHECK(pb_append_line(p, "{\"a\":1}") == PB_OK, "append 1");
  CHECK(pb_append_line(p, "{\"a\":2}\n") == PB_OK, "append 2");
  FILE *fp = fopen(p, "ab");
  fputs("{\"torn", fp);
  fclose(fp);
  CHECK(pb_append_line(p, "{\"a\":3}") == PB_OK, "append 3");
  CHECK(pb_append_line(p, "{\"a\":\n4}") == PB_ERR_ARG, "embedded newline refused");
  char *s = NULL;
  size_t n = 0;
  CHECK(pb_read_file(p, &s, &n) == PB_OK, "read back");
  CHECK(s && strcmp(s, "{\"a\":1}\n{\"a\":2}\n{\"torn\n{\"a\":3}\n") == 0, "content: %s", s ? s : "(null)");
  free(s);
}

static void cleanup(void) {
  char cmd[600];
  snprintf(cmd, sizeof cmd, "rm -rf '%s'", g_dir);
  if (system(cmd) != 0) printf("warning: could not remove %s\n", g_dir);
}

int main(void) {
  snprintf(g_dir, sizeof g_dir, "/tmp/pb_test_st_XXXXXX");
  if (!mkdtemp(g_dir)) {
    printf("mkdtemp failed\n");
    return 2;
  }
  test_roundtrip_f32();
  test_f16_conversions();
  test_malformed();
  test_append_line();
  cleanup();
  printf("%d checks, %d failed\n", checks, failures);
  return failures ? 1 : 0;
}
