/* Operation counters: every kernel adds what it computed, split by kind and by owner.
 *
 * Kinds: matmul multiply-accumulates (MACs), elementwise FLOPs, transcendental ops
 * (exp, tanh, erf, rsqrt, sqrt, log). FLOPs = 2*MACs + elementwise + transcendental.
 * Owners: backbone, head (pooler + classifier + loss), method (anything a hook computes),
 * optimizer (AdamW update).
 *
 * Zero cost when disabled: one predictable branch per kernel call (never per element).
 * Kernels count from the calling thread only, outside any parallel region.
 *
 * Counting-only mode (pb_opc_count_begin .. pb_opc_count_end): every kernel and every method
 * hook still charges exactly what it would compute, then skips its arithmetic and touches no
 * tensor memory (one more predictable branch per call, pb_opc_counting()). Running the real
 * forward/backward/optimizer code in this mode IS the analytic count: one source of truth.
 *
 * This module knows nothing of the backbone or the methods: it receives counts. */
#ifndef PB_OPCOUNT_H
#define PB_OPCOUNT_H

#include <stdint.h>

typedef enum { PB_OPK_MAC = 0, PB_OPK_FLOP = 1, PB_OPK_TRANS = 2, PB_OPK_COUNT } pb_opkind;
typedef enum {
  PB_OPO_BACKBONE = 0,
  PB_OPO_HEAD = 1,
  PB_OPO_METHOD = 2,
  PB_OPO_OPTIM = 3,
  PB_OPO_COUNT
} pb_opowner;

typedef struct {
  uint64_t c[PB_OPO_COUNT][PB_OPK_COUNT]; /* [owner][kind] */
} pb_opcounts;

typedef struct {
  int enabled;       /* 0: pb_opc_add is a no-op */
  int owner;         /* pb_opowner that current kernel calls are charged to */
  int count_only;    /* 1: kernels charge their counts and skip their arithmetic (implies enabled) */
  pb_opcounts counts;
} pb_opcounter;

extern pb_opcounter pb_opc; /* the process-wide counter */

static inline void pb_opc_add(pb_opkind kind, uint64_t n) {
  if (__builtin_expect(pb_opc.enabled, 0)) pb_opc.counts.c[pb_opc.owner][kind] += n;
}
/* Sets the owner charged by later kernel calls; returns the previous owner. */
static inline int pb_opc_set_owner(int owner) {
  int prev = pb_opc.owner;
  pb_opc.owner = owner;
  return prev;
}

/* 1 inside pb_opc_count_begin .. pb_opc_count_end: charge, then return without computing */
static inline int pb_opc_counting(void) { return __builtin_expect(pb_opc.count_only, 0); }

/* Enters counting-only mode with zeroed counts, owner backbone; *saved receives the counter as
 * it was (enabled, owner, counts), so a count may run in the middle of a measured window. */
void pb_opc_count_begin(pb_opcounter *saved);
/* Leaves counting-only mode: adds what was charged into *out (may be NULL) and restores *saved. */
void pb_opc_count_end(const pb_opcounter *saved, pb_opcounts *out);

void pb_opc_reset(void);
void pb_opc_enable(int on);
pb_opcounts pb_opc_snapshot(void);
/* total FLOPs of one owner (or all owners when owner < 0): 2*MAC + FLOP + TRANS */
uint64_t pb_opcounts_flops(const pb_opcounts *c, int owner);
uint64_t pb_opcounts_kind(const pb_opcounts *c, int owner, pb_opkind kind);
void pb_opcounts_sub(pb_opcounts *out, const pb_opcounts *a, const pb_opcounts *b); /* a-b */
void pb_opcounts_add(pb_opcounts *acc, const pb_opcounts *x);
void pb_opcounts_add_scaled(pb_opcounts *acc, const pb_opcounts *x, uint64_t k); /* acc += k*x */
const char *pb_opowner_name(int owner);
const char *pb_opkind_name(int kind);

#endif
