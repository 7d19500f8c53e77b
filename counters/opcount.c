#include "counters/opcount.h"

#include <string.h>

pb_opcounter pb_opc = {0, PB_OPO_BACKBONE, {{{0}}}};

void pb_opc_reset(void) { memset(&pb_opc.counts, 0, sizeof pb_opc.counts); }
void pb_opc_enable(int on) { pb_opc.enabled = on ? 1 : 0; }
pb_opcounts pb_opc_snapshot(void) { return pb_opc.counts; }

uint64_t pb_opcounts_kind(const pb_opcounts *c, int owner, pb_opkind kind) {
  if (owner >= 0) return c->c[owner][kind];
  uint64_t s = 0;
  for (int o = 0; o < PB_OPO_COUNT; o++) s += c->c[o][kind];
  return s;
}

uint64_t pb_opcounts_flops(const pb_opcounts *c, int owner) {
  return 2 * pb_opcounts_kind(c, owner, PB_OPK_MAC) + pb_opcounts_kind(c, owner, PB_OPK_FLOP) +
         pb_opcounts_kind(c, owner, PB_OPK_TRANS);
}

void pb_opcounts_sub(pb_opcounts *out, const pb_opcounts *a, const pb_opcounts *b) {
  for (int o = 0; o < PB_OPO_COUNT; o++)
    for (int k = 0; k < PB_OPK_COUNT; k++) out->c[o][k] = a->c[o][k] - b->c[o][k];
}

void pb_opcounts_add(pb_opcounts *acc, const pb_opcounts *x) {
  for (int o = 0; o < PB_OPO_COUNT; o++)
    for (int k = 0; k < PB_OPK_COUNT; k++) acc->c[o][k] += x->c[o][k];
}

const char *pb_opowner_name(int owner) {
  static const char *n[] = {"backbone", "head", "method", "optimizer"};
  return owner >= 0 && owner < PB_OPO_COUNT ? n[owner] : "?";
}

const char *pb_opkind_name(int kind) {
  static const char *n[] = {"matmul_macs", "elementwise_flops", "transcendental"};
  return kind >= 0 && kind < PB_OPK_COUNT ? n[kind] : "?";
}
