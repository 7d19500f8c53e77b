/* The check macro every C test uses: CHECK(cond, printf-args) records a failure with the file,
 * line and message and goes on, so one run reports every mismatch; main ends with
 * `return check_exit_status();` (0 or 1), never with the count: an exit status is taken modulo
 * 256, so `return failures;` with 256 failures would pass. */
#ifndef PB_TEST_CHECK_H
#define PB_TEST_CHECK_H

#include <math.h>
#include <stdio.h>
#include <stdlib.h>

#include "backbone/bert.h"
#include "util/status.h"

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

/* what main returns: 0 when every CHECK passed, else 1 */
static inline int check_exit_status(void) { return failures ? 1 : 0; }

/* The finite-difference pass rule of the gradient checks: |fd - g| < atol, or the relative error
 * |fd - g| / max(|fd|, |g|) < rtol. Returns the fraction of the tolerance an entry uses,
 * min(|fd - g| / atol, relative / rtol): it passes when < 1; print the largest over a check so the
 * margin stays visible (tolerances are set to a few times what is measured). */
static inline double check_fd_used(double fd, double g, double atol, double rtol) {
  const double ad = fabs(fd - g), scale = fmax(fabs(fd), fabs(g));
  const double rel = scale > 0 ? ad / scale : 0.0, ua = ad / atol, ur = rel / rtol;
  return ua < ur ? ua : ur;
}

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
