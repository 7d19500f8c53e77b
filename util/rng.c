#include "util/rng.h"

#include <math.h>

uint64_t pb_hash64(uint64_t x) {
  x += 0x9E3779B97F4A7C15ULL;
  x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9ULL;
  x = (x ^ (x >> 27)) * 0x94D049BB133111EBULL;
  return x ^ (x >> 31);
}

void pb_rng_seed(pb_rng *r, uint64_t seed) { r->s = seed; }

uint64_t pb_rng_u64(pb_rng *r) {
  uint64_t z = (r->s += 0x9E3779B97F4A7C15ULL);
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
  return z ^ (z >> 31);
}

float pb_rng_uniform(pb_rng *r) { return (float)(pb_rng_u64(r) >> 40) * (1.0f / 16777216.0f); }

float pb_rng_normal(pb_rng *r) {
  double u1 = ((double)(pb_rng_u64(r) >> 11) + 0.5) * (1.0 / 9007199254740992.0);
  double u2 = (double)(pb_rng_u64(r) >> 11) * (1.0 / 9007199254740992.0);
  return (float)(sqrt(-2.0 * log(u1)) * cos(6.283185307179586 * u2));
}

uint64_t pb_rng_below(pb_rng *r, uint64_t n) { return pb_rng_u64(r) % n; }
