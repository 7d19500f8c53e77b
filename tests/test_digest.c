/* SHA-256 utility tests: FIPS 180-2 / NIST known vectors ("", "abc", the 448-bit message,
 * one million 'a'), the same digests from files (the million-'a' file spans several read
 * chunks), an empty file, and the error cases (missing file, a directory, NULL data). */
#include "util/digest.h"
#include "util/fileio.h"
#include "util/status.h"
#include "tests/check.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define H_EMPTY "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
#define H_ABC "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
#define M_448 "abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq"
#define H_448 "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1"
#define H_MILLION_A "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0"

static char g_dir[256];

static void check_mem(const char *label, const void *data, size_t n, const char *want) {
  char h[65];
  memset(h, 'x', sizeof h);
  int rc = pb_sha256_hex(data, n, h);
  printf("  mem  %-10s -> %s\n", label, rc ? pb_last_error() : h);
  CHECK(rc == PB_OK, "%s: rc %d %s", label, rc, pb_last_error());
  CHECK(strlen(h) == 64 && strcmp(h, want) == 0, "%s: %s, expected %s", label, h, want);
}

static void check_file(const char *label, const void *data, size_t n, const char *want) {
  char p[512], h[65];
  snprintf(p, sizeof p, "%s/%s", g_dir, label);
  CHECK_OK(pb_write_file_atomic(p, data, n));
  memset(h, 'x', sizeof h);
  int rc = pb_sha256_file(p, h);
  printf("  file %-10s -> %s\n", label, rc ? pb_last_error() : h);
  CHECK(rc == PB_OK, "%s: rc %d %s", label, rc, pb_last_error());
  CHECK(strlen(h) == 64 && strcmp(h, want) == 0, "file %s: %s, expected %s", label, h, want);
}

int main(void) {
  snprintf(g_dir, sizeof g_dir, "/tmp/pb_test_digest_XXXXXX");
  if (!mkdtemp(g_dir)) {
    printf("mkdtemp failed\n");
    return 2;
  }
  size_t nm = 1000000;
  char *million = malloc(nm);
  if (!million) return 2;
  memset(million, 'a', nm);

  printf("sha256 of memory: known vectors\n");
  check_mem("empty", "", 0, H_EMPTY);
  check_mem("empty-null", NULL, 0, H_EMPTY);
  check_mem("abc", "abc", 3, H_ABC);
  check_mem("448-bit", M_448, strlen(M_448), H_448);
  check_mem("million-a", million, nm, H_MILLION_A);

  printf("sha256 of files: the same vectors\n");
  check_file("empty", "", 0, H_EMPTY);
  check_file("abc", "abc", 3, H_ABC);
  check_file("448-bit", M_448, strlen(M_448), H_448);
  check_file("million-a", million, nm, H_MILLION_A);
  /* a trailing newline changes the digest (bytes, not text) */
  char h[65], p[512];
  snprintf(p, sizeof p, "%s/abc-nl", g_dir);
  CHECK_OK(pb_write_file_atomic(p, "abc\n", 4));
  CHECK_OK(pb_sha256_file(p, h));
  CHECK(strcmp(h, H_ABC) != 0, "abc\\n hashed like abc");

  printf("errors\n");
  snprintf(p, sizeof p, "%s/no_such_file.txt", g_dir);
  int rc = pb_sha256_file(p, h);
  printf("  missing   -> %s: %s\n", pb_status_name(rc), pb_last_error());
  CHECK(rc == PB_ERR_NOTFOUND && strstr(pb_last_error(), "no_such_file.txt") && h[0] == '\0', "missing: rc %d %s", rc,
        pb_last_error());
  rc = pb_sha256_file(g_dir, h);
  printf("  directory -> %s: %s\n", pb_status_name(rc), pb_last_error());
  CHECK(rc == PB_ERR_IO && strstr(pb_last_error(), g_dir) && h[0] == '\0', "directory: rc %d %s", rc, pb_last_error());
  rc = pb_sha256_hex(NULL, 5, h);
  CHECK(rc == PB_ERR_ARG && h[0] == '\0', "NULL data with n > 0: rc %d", rc);
  CHECK(pb_sha256_file(NULL, h) == PB_ERR_ARG, "NULL path");

  free(million);
  char cmd[600];
  snprintf(cmd, sizeof cmd, "rm -rf '%s'", g_dir);
  if (system(cmd) != 0) printf("warning: could not remove %s\n", g_dir);
  printf("%d checks, %d failed\n", checks, failures);
  return failures ? 1 : 0;
}
