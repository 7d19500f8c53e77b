/* The check macro every C test uses: CHECK(cond, printf-args) records a failure with the file,
 * line and message and goes on, so one run reports every mismatch; main returns
 * `failures ? 1 : 0` so ctest sees a non-zero exit on any failure. */
#ifndef PB_TEST_CHECK_H
#define PB_TEST_CHECK_H

#include <stdio.h>

static int failures = 0; /* CHECKs that failed */
static int checks = 0;   /* CHECKs evaluated */

#define CHECK(cond, ...)                          \
  do {                                            \
    checks++;                                     \
    if (!(cond)) {                                \
      failures++;                                 \
      printf("FAIL %s:%d: ", __FILE__, __LINE__); \
      printf(__VA_ARGS__);                        \
      printf("\n");                               \
    }                                             \
  } while (0)

#endif
