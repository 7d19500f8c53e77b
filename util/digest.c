#include "util/digest.h"

#include <errno.h>
#include <openssl/evp.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

#include "util/status.h"

static void to_hex(const unsigned char *md, unsigned len, char out[65]) {
  static const char hx[] = "0123456789abcdef";
  for (unsigned i = 0; i < len && i < 32; i++) {
    out[2 * i] = hx[md[i] >> 4];
    out[2 * i + 1] = hx[md[i] & 15];
  }
  out[64] = '\0';
}

int pb_sha256_hex(const void *data, size_t n, char out[65]) {
  if (!out) return pb_set_error(PB_ERR_ARG, "pb_sha256_hex: NULL output");
  out[0] = '\0';
  if (!data && n) return pb_set_error(PB_ERR_ARG, "pb_sha256_hex: NULL data with %zu bytes", n);
  unsigned char md[EVP_MAX_MD_SIZE];
  unsigned len = 0;
  EVP_MD_CTX *c = EVP_MD_CTX_new();
  int ok = c && EVP_DigestInit_ex(c, EVP_sha256(), NULL) == 1 && (n == 0 || EVP_DigestUpdate(c, data, n) == 1) &&
           EVP_DigestFinal_ex(c, md, &len) == 1 && len == 32;
  EVP_MD_CTX_free(c);
  if (!ok) return pb_set_error(PB_ERR_NOMEM, "sha256: libcrypto failed");
  to_hex(md, len, out);
  return PB_OK;
}

int pb_sha256_file(const char *path, char out[65]) {
  if (!out || !path) return pb_set_error(PB_ERR_ARG, "pb_sha256_file: NULL argument");
  out[0] = '\0';
  struct stat st;
  if (stat(path, &st) != 0)
    return pb_set_error(errno == ENOENT ? PB_ERR_NOTFOUND : PB_ERR_IO, "%s: %s", path, strerror(errno));
  if (S_ISDIR(st.st_mode)) return pb_set_error(PB_ERR_IO, "%s: is a directory, not a file", path);
  FILE *f = fopen(path, "rb");
  if (!f) return pb_set_error(errno == ENOENT ? PB_ERR_NOTFOUND : PB_ERR_IO, "%s: %s", path, strerror(errno));
  EVP_MD_CTX *c = EVP_MD_CTX_new();
  if (!c || EVP_DigestInit_ex(c, EVP_sha256(), NULL) != 1) {
    EVP_MD_CTX_free(c);
    fclose(f);
    return pb_set_error(PB_ERR_NOMEM, "%s: sha256: libcrypto failed", path);
  }
  unsigned char buf[65536];
  size_t got;
  int ok = 1;
  while (ok && (got = fread(buf, 1, sizeof buf, f)) > 0) ok = EVP_DigestUpdate(c, buf, got) == 1;
  if (ok && ferror(f)) {
    int e = errno;
    EVP_MD_CTX_free(c);
    fclose(f);
    return pb_set_error(PB_ERR_IO, "%s: read failed: %s", path, strerror(e));
  }
  unsigned char md[EVP_MAX_MD_SIZE];
  unsigned len = 0;
  ok = ok && EVP_DigestFinal_ex(c, md, &len) == 1 && len == 32;
  EVP_MD_CTX_free(c);
  fclose(f);
  if (!ok) return pb_set_error(PB_ERR_NOMEM, "%s: sha256: libcrypto failed", path);
  to_hex(md, len, out);
  return PB_OK;
}
