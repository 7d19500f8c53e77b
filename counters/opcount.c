#include "counters/opcount.h"

#include <string.h>

pb_opcounter pb_opc = {0, PB_OPO_BACKBONE, 0, {{{0}}}};

void pb_opc_reset(void) { memset(&pb_opc.counts, 0, sizeof pb_opc.counts); }
void pb_opc_enable(int on) { pb_opc.enabled = on ? 1 : 0; }
pb_opcounts pb_opc_snapshot(void) { return pb_opc.counts; }

void pb_opc_count_begin(pb_opcounter *saved) {
  *saved = pb_opc;
  memset(&pb_opc.counts, 0, sizeof pb_opc.counts);
  pb_opc.enabled = 1;
  pb_opc.count_only = 1;
  pb_opc.owner = PB_OPO_BACKBONE;
}

void pb_opc_count_end(const pb_opcounter *saved, pb_opcounts *out) {
  if (out) pb_opcounts_add(out, &pb_opc.counts);
  pb_opc = *saved;
}

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

void pb_opcounts_add_scaled(pb_opcounts *acc, const pb_opcounts *x, uint64_t k) {
  for (int o = 0; o < PB_OPO_COUNT; o++)
    for (int k2 = 0; k2 < PB_OPK_COUNT; k2++) acc->c[o][k2] += k * x->c[o][k2];
}

const char *pb_opowner_name(int owner) {
  static const char *n[] = {"backbone", "head", "method", "optimizer"};
  return owner >= 0 && owner < PB_OPO_COUNT ? n[owner] : "?";
}

const char *pb_opkind_name(int kind) {
  static const char *n[] = {"matmul_macs", "elementwise_flops", "transcendental"};
  return kind >= 0 && kind < PB_OPK_COUNT ? n[kind] : "?";
}
