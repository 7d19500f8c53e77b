/* Deterministic random numbers: splitmix64 stream for initialisation and sampling;
 * a stateless hash (pb_hash64) for counter-based dropout. */
#ifndef PB_RNG_H
#define PB_RNG_H

#include <stdint.h>

typedef struct {
  uint64_t s; /* splitmix64 state */
} pb_rng;

void pb_rng_seed(pb_rng *r, uint64_t seed);
uint64_t pb_rng_u64(pb_rng *r);
float pb_rng_uniform(pb_rng *r);            /* [0, 1) */
float pb_rng_normal(pb_rng *r);             /* N(0, 1), Box-Muller */
uint64_t pb_rng_below(pb_rng *r, uint64_t n); /* uniform in [0, n), n > 0 */
uint64_t pb_hash64(uint64_t x);             /* splitmix64 finaliser */

#endif
