/* Shared helpers of the libFuzzer targets (fuzz/fuzz_*.c).
 *
 * The readers under test take a path, so each input is written to one temporary file per
 * process (created once under $TMPDIR or /tmp, removed at exit) and the reader is pointed at
 * it. Library errors are expected (bad input must give a status, never a crash); only
 * sanitizer reports and crashes count as findings. */
#ifndef PB_FUZZ_COMMON_H
#define PB_FUZZ_COMMON_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static char pbfz_path[512];

static void pbfz_cleanup(void) {
  if (pbfz_path[0]) unlink(pbfz_path);
}

/* Writes data [n bytes] to this process's temp file (same name every call, suffix kept so
 * that readers that look at extensions see the right one) and returns its path. */
static const char *pbfz_write(const char *suffix, const uint8_t *data, size_t n) {
  if (!pbfz_path[0]) {
    const char *dir = getenv("TMPDIR");
    snprintf(pbfz_path, sizeof pbfz_path, "%s/pbfuzz-%ld%s", dir && *dir ? dir : "/tmp", (long)getpid(), suffix);
    atexit(pbfz_cleanup);
  }
  FILE *f = fopen(pbfz_path, "wb");
  if (!f) abort(); /* the harness itself is broken: stop loudly */
  if (n && fwrite(data, 1, n, f) != n) abort();
  if (fclose(f) != 0) abort();
  return pbfz_path;
}

#endif
