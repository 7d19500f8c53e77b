/* SHA-256 digests (OpenSSL libcrypto, EVP API) as 64 lower-case hex digits + NUL, used to
 * record exactly which vocabulary / data / weights file a result came from. */
#ifndef PB_DIGEST_H
#define PB_DIGEST_H

#include <stddef.h>

/* SHA-256 of data[n] (data may be NULL when n == 0) into out (64 hex digits + NUL).
 * Returns PB_OK, PB_ERR_ARG (out NULL, or data NULL with n > 0) or PB_ERR_NOMEM when
 * libcrypto fails; out is "" on error. */
int pb_sha256_hex(const void *data, size_t n, char out[65]);
/* SHA-256 of the bytes of the file at path, read in chunks. Errors (pb_set_error naming the
 * file; out is "" on error): missing file PB_ERR_NOTFOUND, unreadable / read error /
 * a directory PB_ERR_IO, libcrypto failure PB_ERR_NOMEM, NULL arguments PB_ERR_ARG. */
int pb_sha256_file(const char *path, char out[65]);

#endif
