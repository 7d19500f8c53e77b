/* COIL over the shared backbone: finite-difference gradients of the group loss through the
 * scores, the projections and the encoder (full fine-tuning and LoRA plugged in unchanged),
 * exact op counts of encoding, pair scoring and inverted-index search against closed forms
 * computed here, and the index's full retrieval equal to scoring every pair. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "counters/opcount.h"
#include "harness/coil.h"
#include "harness/coiltrain.h"
#include "methods/method.h"
#include "util/rng.h"

enum { Q = 2, G = 3, TQ = 6, TP = 8, K = 4, C = 5 };
enum { CLS = 1, SEP = 2, PAD = 0 };

typedef struct {
  pb_model m;
  pb_method_inst mi;
  pb_coil co;
  pb_coil_train t;
} rig;

static void build(rig *r, const char *method, const char *const *opts, int score_sep, int act) {
  memset(r, 0, sizeof *r);
  pb_config cfg;
  pb_test_tiny_config(&cfg, 0.0f);
  CHECK_OK(pb_method_create(&r->mi, method, opts));
  CHECK_OK(pb_model_declare(&r->m, &cfg));
  CHECK_OK(r->mi.m->attach(r->mi.ctx, &r->m));
  CHECK_OK(pb_coil_declare(&r->co, &r->m, K, C, score_sep, CLS, SEP, PAD));
  CHECK_OK(pb_coil_set_act(&r->co, &r->m, act));
  CHECK_OK(pb_coil_reserve(&r->co, Q * G * TP));
  CHECK_OK(pb_model_alloc(&r->m, Q * G, TP));
  pb_model_init_random(&r->m, 7);
  /* LoRA's B starts at zero: give every method tensor a non-zero value so all paths carry gradient */
  pb_rng g;
  pb_rng_seed(&g, 99);
  for (int i = 0; i < r->m.params.n; i++) {
    pb_tensor *t = &r->m.params.t[i];
    if (t->owner == PB_OWNER_METHOD)
      for (size_t j = 0; j < t->numel; j++) t->data[j] = 0.3f * (float)((double)pb_rng_below(&g, 2001) / 1000.0 - 1.0);
  }
  CHECK_OK(pb_coil_train_alloc(&r->t, &r->m, &r->co, Q, G, 1, TQ, TP));
  /* queries [CLS] a b c (d) [SEP] pad; documents [CLS] ... [SEP] pad, ids 3..8 so that tokens match */
  pb_rng_seed(&g, 3);
  r->t.Qb = Q;
  r->t.Tq = TQ;
  r->t.Tp = TP;
  for (int a = 0; a < Q; a++) {
    const int len = a == 0 ? TQ : TQ - 1;
    for (int i = 0; i < TQ; i++) {
      int id = i == 0 ? CLS : i == len - 1 ? SEP : i >= len ? PAD : 3 + (int)pb_rng_below(&g, 6);
      r->t.qids[a * TQ + i] = id;
      r->t.qmask[a * TQ + i] = i < len;
    }
  }
  for (int e = 0; e < Q * G; e++) {
    const int len = TP - (e % 3);
    for (int j = 0; j < TP; j++) {
      int id = j == 0 ? CLS : j == len - 1 ? SEP : j >= len ? PAD : 3 + (int)pb_rng_below(&g, 6);
      r->t.dids[e * TP + j] = id;
      r->t.dmask[e * TP + j] = j < len;
    }
  }
}

static void destroy(rig *r) {
  pb_coil_train_free(&r->t);
  pb_coil_free(&r->co);
  pb_model_free(&r->m);
  pb_method_destroy(&r->mi);
}

static double loss_of(rig *r) {
  float L = 0;
  CHECK_OK(pb_coil_group_step(&r->t, 11, 1, 0, &L)); /* training mode (dropout is 0): methods that materialise weights for inference (LayerConnect) recompute them */
  return L;
}

/* central differences over sampled entries of every trainable tensor */
static void gradcheck(const char *method, const char *const *opts, int in_batch, int score_sep, int act) {
  rig r;
  build(&r, method, opts, score_sep, act);
  r.t.in_batch = in_batch;
  pb_params_zero_grad(&r.m.params);
  float L;
  CHECK_OK(pb_coil_group_step(&r.t, 11, 1, 1, &L));
  const float eps = 3e-3f;
  const double atol = 2e-3, rtol = 2e-2;
  double worst = 0, worst_abs = 0;
  char at[200] = "";
  int tensors = 0, coil_seen = 0;
  pb_rng g;
  pb_rng_seed(&g, 5);
  for (int i = 0; i < r.m.params.n; i++) {
    pb_tensor *t = &r.m.params.t[i];
    if (!t->trainable) continue;
    tensors++;
    coil_seen += strncmp(t->name, "coil.", 5) == 0;
    for (int s = 0; s < 6; s++) {
      size_t j = (size_t)pb_rng_below(&g, t->numel);
      if (i == r.m.word) j = (size_t)r.t.dids[1 + s] * (size_t)t->shape[1] + (size_t)s; /* rows the batch uses */
      const float keep = t->data[j];
      t->data[j] = keep + eps;
      const double lp = loss_of(&r);
      t->data[j] = keep - eps;
      const double lm = loss_of(&r);
      t->data[j] = keep;
      const double fd = (lp - lm) / (2 * eps), gr = t->grad[j], used = check_fd_used(fd, gr, atol, rtol);
      worst_abs = fmax(worst_abs, fabs(fd - gr));
      if (used > worst) {
        worst = used;
        snprintf(at, sizeof at, "%s[%zu] grad %.6g fd %.6g", t->name, j, gr, fd);
      }
    }
  }
  static const char *const acts[3] = {"", ", relu", ", layernorm"};
  printf("gradients %s%s (%s, %s): loss %.5f, %d tensors, max |g - fd| %.2e, worst %.3f of the tolerance at %s\n",
         method, acts[act], in_batch ? "in-batch" : "own group", score_sep ? "[SEP] scored" : "no [SEP]", L, tensors, worst_abs,
         worst, at);
  CHECK(coil_seen == (act == PB_COIL_ACT_LN ? 6 : 4), "the projection tensors train (%d)", coil_seen);
  CHECK(worst < 1.0, "%s: gradient mismatch at %s", method, at);
  destroy(&r);
}

static uint64_t owner_sum(const pb_opcounts *o, int kind) {
  uint64_t s = 0;
  for (int w = 0; w < PB_OPO_COUNT; w++) s += o->c[w][kind];
  return s;
}

static void counts(void) {
  rig r;
  build(&r, "full", NULL, 0, PB_COIL_ACT_NONE);
  const pb_config *cf = &r.m.cfg;
  const uint64_t d = cf->hidden, F = cf->ffn, L = cf->layers;
  for (int t = 1; t <= TP; t++) {
    pb_opcounts enc = {{{0}}}, bb = {{{0}}};
    CHECK_OK(pb_coil_count_encode(&r.co, &r.m, 1, t, &enc));
    CHECK_OK(pb_model_count(&r.m, 1, t, PB_COUNT_INFER, &bb));
    /* matmul MACs: per layer q,k,v,o (4 t d^2), FFN (2 t d F), scores + context (2 t^2 d); projections */
    const uint64_t T = (uint64_t)t, macs = L * (4 * T * d * d + 2 * T * d * F + 2 * T * T * d) + T * d * K + d * C;
    CHECK(owner_sum(&enc, PB_OPK_MAC) == macs, "encode t=%d MACs %llu, closed form %llu", t,
          (unsigned long long)owner_sum(&enc, PB_OPK_MAC), (unsigned long long)macs);
    CHECK(enc.c[PB_OPO_HEAD][PB_OPK_MAC] == T * d * K + d * C && enc.c[PB_OPO_HEAD][PB_OPK_FLOP] == T * K + C &&
              enc.c[PB_OPO_HEAD][PB_OPK_TRANS] == 0,
          "projections t=%d: %llu MAC %llu FLOP", t, (unsigned long long)enc.c[PB_OPO_HEAD][PB_OPK_MAC],
          (unsigned long long)enc.c[PB_OPO_HEAD][PB_OPK_FLOP]);
    CHECK(bb.c[PB_OPO_HEAD][PB_OPK_MAC] == 0 && bb.c[PB_OPO_HEAD][PB_OPK_FLOP] == 0, "no pooler/classifier ran");
    CHECK(enc.c[PB_OPO_BACKBONE][PB_OPK_FLOP] == bb.c[PB_OPO_BACKBONE][PB_OPK_FLOP], "backbone part");
  }
  /* a real encoding charges what the counting-only run says */
  float tok[TP * K], cls[C], cin[16];
  pb_opc_reset();
  pb_opc_enable(1);
  pb_opcounts a0 = pb_opc_snapshot();
  CHECK_OK(pb_coil_encode(&r.co, &r.m, r.t.dids, r.t.dmask, 1, TP, 0, 0, tok, cls, cin));
  pb_opcounts a1 = pb_opc_snapshot(), real, cnt = {{{0}}};
  pb_opcounts_sub(&real, &a1, &a0);
  CHECK_OK(pb_coil_count_encode(&r.co, &r.m, 1, TP, &cnt));
  CHECK(memcmp(&real, &cnt, sizeof real) == 0, "real encode == counting-only encode");

  /* encode the six documents and two queries of the rig (batch of one each) */
  float dtok[Q * G][TP * K], dcls[Q * G][C], qtok[Q][TQ * K], qcls[Q][C];
  for (int e = 0; e < Q * G; e++)
    CHECK_OK(pb_coil_encode(&r.co, &r.m, r.t.dids + e * TP, r.t.dmask + e * TP, 1, TP, 0, 0, dtok[e], dcls[e], cin));
  for (int a = 0; a < Q; a++)
    CHECK_OK(pb_coil_encode(&r.co, &r.m, r.t.qids + a * TQ, r.t.qmask + a * TQ, 1, TQ, 0, 0, qtok[a], qcls[a], cin));
  /* the index */
  pb_coil_index x;
  CHECK_OK(pb_coil_index_init(&x, Q * G, K, C, cf->vocab_size));
  for (int e = 0; e < Q * G; e++) pb_coil_index_count(&x, &r.co, r.t.dids + e * TP, r.t.dmask + e * TP, TP);
  CHECK_OK(pb_coil_index_alloc(&x));
  for (int e = 0; e < Q * G; e++) pb_coil_index_add(&x, &r.co, e, r.t.dids + e * TP, r.t.dmask + e * TP, dtok[e], TP, dcls[e]);
  long long npost = 0;
  for (int e = 0; e < Q * G; e++)
    for (int j = 0; j < TP; j++) {
      const int id = r.t.dids[e * TP + j];
      npost += r.t.dmask[e * TP + j] && id != CLS && id != SEP && id != PAD;
    }
  CHECK(x.n_postings == npost, "postings %lld, expected %lld", x.n_postings, npost);
  CHECK(pb_coil_index_bytes(&x) == (long long)Q * G * C * 4 + npost * (K * 4 + 4) + (cf->vocab_size + 1) * 4LL,
        "index bytes %lld", pb_coil_index_bytes(&x));
  float scores[Q * G], maxbuf[Q * G];
  int touched[Q * G], argmax[TQ];
  for (int a = 0; a < Q; a++) {
    const int *qi = r.t.qids + a * TQ, *qm = r.t.qmask + a * TQ;
    /* closed form by brute force over the documents' positions */
    uint64_t M_all = 0, D_all = 0, scored = 0;
    for (int i = 1; i < TQ; i++) {
      if (!qm[i] || qi[i] == SEP || qi[i] == PAD) continue;
      scored++;
      for (int e = 0; e < Q * G; e++) {
        int hit = 0;
        for (int j = 0; j < TP; j++) hit += r.t.dmask[e * TP + j] && r.t.dids[e * TP + j] == qi[i];
        M_all += (uint64_t)hit;
        D_all += hit > 0;
      }
    }
    pb_opcounts s0 = pb_opc_snapshot();
    CHECK_OK(pb_coil_search(&x, &r.co, qi, qm, qtok[a], qcls[a], TQ, scores, maxbuf, touched));
    pb_opcounts s1 = pb_opc_snapshot(), ds;
    pb_opcounts_sub(&ds, &s1, &s0);
    CHECK(ds.c[PB_OPO_HEAD][PB_OPK_MAC] == owner_sum(&ds, PB_OPK_MAC), "search charged to the head owner");
    CHECK(owner_sum(&ds, PB_OPK_MAC) == (uint64_t)Q * G * C + K * M_all && owner_sum(&ds, PB_OPK_FLOP) == M_all + D_all,
          "search query %d: %llu MAC %llu FLOP, closed form %llu, %llu", a, (unsigned long long)owner_sum(&ds, PB_OPK_MAC),
          (unsigned long long)owner_sum(&ds, PB_OPK_FLOP), (unsigned long long)(Q * G * C + K * M_all),
          (unsigned long long)(M_all + D_all));
    for (int e = 0; e < Q * G; e++) {
      uint64_t M = 0;
      for (int i = 1; i < TQ; i++) {
        if (!qm[i] || qi[i] == SEP || qi[i] == PAD) continue;
        for (int j = 0; j < TP; j++) M += r.t.dmask[e * TP + j] && r.t.dids[e * TP + j] == qi[i];
      }
      pb_opcounts p0 = pb_opc_snapshot();
      const float sp = pb_coil_score_pair(&r.co, qi, qm, qtok[a], qcls[a], TQ, r.t.dids + e * TP, r.t.dmask + e * TP,
                                          dtok[e], dcls[e], TP, argmax);
      pb_opcounts p1 = pb_opc_snapshot(), dp;
      pb_opcounts_sub(&dp, &p1, &p0);
      CHECK(owner_sum(&dp, PB_OPK_MAC) == C + K * M && owner_sum(&dp, PB_OPK_FLOP) == M + scored,
            "pair (%d, %d): %llu MAC, closed form %llu", a, e, (unsigned long long)owner_sum(&dp, PB_OPK_MAC),
            (unsigned long long)(C + K * M));
      CHECK(sp == scores[e], "search score %.9g != pair score %.9g (query %d doc %d)", scores[e], sp, a, e);
      /* the score by its definition, here */
      double ref = 0;
      for (int u = 0; u < C; u++) ref += (double)qcls[a][u] * dcls[e][u];
      for (int i = 1; i < TQ; i++) {
        if (!qm[i] || qi[i] == SEP || qi[i] == PAD) continue;
        double best = 0;
        for (int j = 0; j < TP; j++) {
          if (!r.t.dmask[e * TP + j] || r.t.dids[e * TP + j] != qi[i]) continue;
          double v = 0;
          for (int u = 0; u < K; u++) v += (double)qtok[a][i * K + u] * dtok[e][j * K + u];
          if (v > best) best = v;
        }
        ref += best;
      }
      CHECK(fabs(ref - sp) < 1e-5 * (1 + fabs(ref)), "pair score %.9g vs definition %.9g", sp, ref);
    }
  }
  pb_opc_enable(0);
  printf("op counts: encode t=1..%d, pair scores and index search match their closed forms; %lld postings\n", TP,
         x.n_postings);
  pb_coil_index_free(&x);
  destroy(&r);
}

/* the token activation's charges: relu k FLOP per position, LayerNorm 8k FLOP + 1 rsqrt */
static void act_counts(void) {
  for (int act = PB_COIL_ACT_RELU; act <= PB_COIL_ACT_LN; act++) {
    rig r;
    build(&r, "full", NULL, 0, act);
    for (int t = 1; t <= TP; t += 3) {
      pb_opcounts enc = {{{0}}};
      CHECK_OK(pb_coil_count_encode(&r.co, &r.m, 1, t, &enc));
      const uint64_t T = (uint64_t)t, flop = T * K + C + (act == PB_COIL_ACT_RELU ? T * K : 8 * T * K);
      const uint64_t trans = act == PB_COIL_ACT_LN ? T : 0;
      CHECK(enc.c[PB_OPO_HEAD][PB_OPK_FLOP] == flop && enc.c[PB_OPO_HEAD][PB_OPK_TRANS] == trans,
            "act %d t=%d: %llu FLOP %llu TRANS, closed form %llu %llu", act, t,
            (unsigned long long)enc.c[PB_OPO_HEAD][PB_OPK_FLOP], (unsigned long long)enc.c[PB_OPO_HEAD][PB_OPK_TRANS],
            (unsigned long long)flop, (unsigned long long)trans);
    }
    /* a real encoding equals its counting-only twin */
    float tok[TP * K], cls[C], cin[16];
    pb_opc_reset();
    pb_opc_enable(1);
    pb_opcounts a0 = pb_opc_snapshot();
    CHECK_OK(pb_coil_encode(&r.co, &r.m, r.t.dids, r.t.dmask, 1, TP, 0, 0, tok, cls, cin));
    pb_opcounts a1 = pb_opc_snapshot(), real, cnt = {{{0}}};
    pb_opcounts_sub(&real, &a1, &a0);
    pb_opc_enable(0);
    CHECK_OK(pb_coil_count_encode(&r.co, &r.m, 1, TP, &cnt));
    CHECK(memcmp(&real, &cnt, sizeof real) == 0, "act %d: real encode == counting-only encode", act);
    int nonneg = 1;
    for (int i = 0; i < TP * K; i++) nonneg &= act != PB_COIL_ACT_RELU || tok[i] >= 0;
    CHECK(nonneg, "relu token vectors are >= 0");
    destroy(&r);
  }
}

int main(void) {
  gradcheck("full", NULL, 1, 0, PB_COIL_ACT_NONE);
  gradcheck("full", NULL, 0, 1, PB_COIL_ACT_NONE);
  static const char *const lora_opts[] = {"r=2", NULL};
  gradcheck("lora", lora_opts, 1, 0, PB_COIL_ACT_NONE);
  gradcheck("layerconnect", NULL, 1, 0, PB_COIL_ACT_NONE);
  gradcheck("full", NULL, 1, 0, PB_COIL_ACT_RELU);
  gradcheck("lora", lora_opts, 1, 0, PB_COIL_ACT_LN);
  act_counts();
  counts();
  printf("%d checks, %d failures\n", checks, failures);
  return check_exit_status();
}
