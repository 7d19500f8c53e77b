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
#include "util/rng.h"
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

/* The central-difference gradient check of a whole model: one loss(m) + pb_backward for the
 * analytic gradients, then for `samples` entries of every trainable tensor (word embedding
 * entries at rows word_rows[s], the rows a batch uses; others drawn with a fixed seed) the
 * difference quotient (loss(x + eps) - loss(x - eps)) / 2 eps. Prints the tensor count, the
 * largest |g - fd|, the largest relative difference among entries above atol, and the worst entry; CHECKs that every entry
 * passes check_fd_used(atol, rtol). Returns the largest |g - fd|. */
static inline double check_model_gradients(pb_model *m, float (*loss)(pb_model *), const int *word_rows, int samples,
                                           float eps, double atol, double rtol, const char *what) {
  pb_params_zero_grad(&m->params);
  const float l0 = loss(m);
  /* the finest step the quotient can resolve: one ulp of the float loss over 2 eps; an atol not
   * well above it fails on whichever host rounds the loss the other way */
  const double resolution = (double)(nextafterf(fabsf(l0), INFINITY) - fabsf(l0)) / (2.0 * eps);
  int rc = pb_backward(m);
  CHECK(rc == PB_OK, "%s: backward: %s", what, pb_last_error());
  if (rc) return INFINITY;
  double worst = 0, worst_abs = 0, worst_rel = 0;
  char at[PB_NAME_MAX + 64] = "";
  int tensors = 0;
  pb_rng r;
  pb_rng_seed(&r, 5);
  for (int i = 0; i < m->params.n; i++) {
    pb_tensor *t = &m->params.t[i];
    if (!t->trainable) continue;
    tensors++;
    for (int s = 0; s < samples; s++) {
      size_t j = (size_t)pb_rng_below(&r, t->numel);
      if (i == m->word) j = (size_t)word_rows[s] * (size_t)t->shape[1] + (size_t)(s % t->shape[1]);
      const float keep = t->data[j];
      t->data[j] = keep + eps;
      const double lp = loss(m);
      t->data[j] = keep - eps;
      const double lm = loss(m);
      t->data[j] = keep;
      const double fd = (lp - lm) / (2 * eps), g = t->grad[j], used = check_fd_used(fd, g, atol, rtol);
      worst_abs = fmax(worst_abs, fabs(fd - g));
      if (fabs(fd - g) > atol) worst_rel = fmax(worst_rel, fabs(fd - g) / fmax(fabs(fd), fabs(g)));
      if (used > worst) {
        worst = used;
        snprintf(at, sizeof at, "%s[%zu] grad %.6g fd %.6g", t->name, j, g, fd);
      }
    }
  }
  printf("%s: %d tensors, max |g - fd| %.2e (relative %.2e where above atol), worst %.3f of the tolerance (%.1e abs or %.1e rel) at %s; "
         "quotient resolution %.1e\n",
         what, tensors, worst_abs, worst_rel, worst, atol, rtol, at, resolution);
  CHECK(worst < 1.0, "%s: gradient mismatch at %s", what, at);
  return worst_abs;
}

/* Moves every 1-D tensor (biases, LayerNorm gains and shifts), and with method_too every tensor
 * owned by a method (LoRA's zero B), away from its initialisation constants: each entry gets
 * 0.2 * normal(0, 1) from a stream seeded with `seed`, in table order. */
static inline void pb_test_perturb(pb_model *m, uint64_t seed, int method_too) {
  pb_rng r;
  pb_rng_seed(&r, seed);
  for (int i = 0; i < m->params.n; i++) {
    pb_tensor *t = &m->params.t[i];
    if (t->ndim == 1 || (method_too && t->owner == PB_OWNER_METHOD))
      for (size_t j = 0; j < t->numel; j++) t->data[j] += 0.2f * pb_rng_normal(&r);
  }
}

/* The method tests' batch: B x T token ids below the vocabulary, token types 0/1, every
 * position real (mask 1), labels below num_labels, all drawn from `seed` (the same seed gives the
 * same batch). */
static inline void pb_test_random_batch(const pb_config *c, uint64_t seed, int B, int T, int *ids, int *types,
                                        int *mask, int *labels) {
  pb_rng r;
  pb_rng_seed(&r, seed);
  for (int i = 0; i < B * T; i++) {
    ids[i] = (int)pb_rng_below(&r, (uint64_t)c->vocab_size);
    types[i] = (int)pb_rng_below(&r, 2);
    mask[i] = 1;
  }
  for (int b = 0; b < B; b++) labels[b] = (int)pb_rng_below(&r, (uint64_t)c->num_labels);
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
