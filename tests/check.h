/* The check macro every C test uses: CHECK(cond, printf-args) records a failure with the file,
 * line and message and goes on, so one run reports every mismatch; main returns
 * `failures ? 1 : 0` so ctest sees a non-zero exit on any failure. */
#ifndef PB_TEST_CHECK_H
#define PB_TEST_CHECK_H

#include <stdio.h>
#include <stdlib.h>

#include "backbone/bert.h"
#include "backbone/status.h"

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

/* a library call that must succeed: on failure print the status and message and stop */
#define CHECK_OK(call)                                                                  \
  do {                                                                                  \
    int _rc = (call);                                                                   \
    if (_rc) {                                                                          \
      printf("FAIL %s:%d: %s -> %s: %s\n", __FILE__, __LINE__, #call, pb_status_name(_rc), \
             pb_last_error());                                                          \
      exit(1);                                                                          \
    }                                                                                   \
  } while (0)

/* the small BERT the method tests build: V 50, d 16, L 2, A 2, F 24, P 16, C 3, init std 0.2 */
static inline void pb_test_tiny_config(pb_config *c, float dropout) {
  pb_config_default(c, 3);
  c->vocab_size = 50;
  c->hidden = 16;
  c->layers = 2;
  c->heads = 2;
  c->ffn = 24;
  c->max_pos = 16;
  c->hidden_dropout = dropout;
  c->attn_dropout = dropout;
  c->init_range = 0.2f;
}

#endif
