/* test_proc: pb_proc_capture (util/proc.h) — stdout read, stderr merged or not, the head or the
 * tail of a long output kept, exit statuses and signals, a program that cannot be executed. */
#include <stdio.h>
#include <string.h>

#include "util/proc.h"
#include "util/status.h"
#include "tests/check.h"

int main(void) {
  char out[64];
  const char *echo[] = {"sh", "-c", "echo out; echo err >&2; exit 3", NULL};
  CHECK(pb_proc_capture(echo, 0, out, sizeof out) == 3, "exit status 3");
  CHECK(!strcmp(out, "out\n"), "stdout only: '%s'", out);
  CHECK(pb_proc_capture(echo, PB_PROC_MERGE_STDERR, out, sizeof out) == 3, "exit status 3 (merged)");
  CHECK(!strcmp(out, "out\nerr\n"), "stdout and stderr: '%s'", out);
  /* 10,000 numbered lines: the head, or the tail, of 63 bytes */
  const char *seq[] = {"seq", "1", "10000", NULL};
  CHECK(pb_proc_capture(seq, 0, out, sizeof out) == 0, "seq exits 0");
  CHECK(!strncmp(out, "1\n2\n3\n", 6) && strlen(out) == 63, "head kept: '%.12s...' (%zu bytes)", out, strlen(out));
  CHECK(pb_proc_capture(seq, PB_PROC_KEEP_TAIL, out, sizeof out) == 0, "seq exits 0 (tail)");
  const size_t L = strlen(out);
  CHECK(L == 63 && !strcmp(out + L - 11, "9999\n10000\n"), "tail kept: '...%s' (%zu bytes)", L > 11 ? out + L - 11 : out,
        L);
  char small[4];
  CHECK(pb_proc_capture(seq, PB_PROC_KEEP_TAIL, small, sizeof small) == 0 && !strcmp(small, "00\n"),
        "a 4-byte buffer keeps the last 3 bytes: '%s'", small);
  const char *kill[] = {"sh", "-c", "kill -TERM $$", NULL};
  CHECK(pb_proc_capture(kill, 0, out, sizeof out) == 128 + 15, "a signal: 128 + SIGTERM");
  const char *none[] = {"peftbench-no-such-tool", NULL};
  CHECK(pb_proc_capture(none, 0, out, sizeof out) == PB_ERR_NOTFOUND, "a missing program: PB_ERR_NOTFOUND");
  CHECK(strstr(pb_last_error(), "peftbench-no-such-tool") != NULL, "the message names it: %s", pb_last_error());
  const char *in[] = {"cat", NULL};
  CHECK(pb_proc_capture(in, 0, out, sizeof out) == 0 && out[0] == 0, "stdin is /dev/null: cat reads nothing");
  printf("%d checks, %d failures\n", checks, failures);
  return check_exit_status();
}
