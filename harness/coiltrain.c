/* COIL training (coiltrain.h). */
#include "harness/coiltrain.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "backbone/ops.h"
#include "harness/trainer.h"
#include "util/status.h"

int pb_ir_texts_encode(const pb_tokenizer *tk, char *const *texts, int n, int T, pb_ir_texts *out) {
  memset(out, 0, sizeof *out);
  out->n = n;
  out->T = T;
  out->ids = malloc(sizeof(int) * (size_t)n * T);
  out->mask = malloc(sizeof(int) * (size_t)n * T);
  out->len = malloc(sizeof(int) * (size_t)n);
  if (!out->ids || !out->mask || !out->len) return pb_set_error(PB_ERR_NOMEM, "retrieve: out of memory");
  int *scratch = NULL;
  for (int i = 0; i < n; i++) {
    int rc = pb_tok_encode_pair(tk, texts[i], NULL, T, out->ids + (size_t)i * T, NULL, out->mask + (size_t)i * T,
                                &out->len[i]);
    if (rc) return rc;
    int full = 0;
    if (pb_tok_tokenize(tk, texts[i], NULL, 0, &full) == PB_OK && full + 2 > T) out->n_truncated++;
  }
  free(scratch);
  return PB_OK;
}

void pb_ir_texts_free(pb_ir_texts *e) {
  free(e->ids);
  free(e->mask);
  free(e->len);
  memset(e, 0, sizeof *e);
}

int pb_ir_texts_batch(const pb_ir_texts *e, const int *idx, int B, int *ids, int *mask) {
  int Tb = 1;
  for (int b = 0; b < B; b++)
    if (e->len[idx[b]] > Tb) Tb = e->len[idx[b]];
  for (int b = 0; b < B; b++) {
    memcpy(ids + (size_t)b * Tb, e->ids + (size_t)idx[b] * e->T, sizeof(int) * (size_t)Tb);
    memcpy(mask + (size_t)b * Tb, e->mask + (size_t)idx[b] * e->T, sizeof(int) * (size_t)Tb);
  }
  return Tb;
}

int pb_coil_train_alloc(pb_coil_train *t, pb_model *m, const pb_coil *co, int Q, int G, int in_batch, int Tq_max,
                        int Tp_max) {
  memset(t, 0, sizeof *t);
  t->m = m;
  t->co = co;
  t->Q = Q;
  t->G = G;
  t->in_batch = in_batch;
  t->Tq_max = Tq_max;
  t->Tp_max = Tp_max;
  t->final_loss = NAN;
  const size_t k = (size_t)co->k, c = (size_t)co->c, d = (size_t)co->d, D = (size_t)Q * G;
  const size_t S = in_batch ? D : (size_t)G;
  const size_t rows = (size_t)Q * Tq_max > D * Tp_max ? (size_t)Q * Tq_max : D * Tp_max;
#define A(p, n) ok &= ((p) = calloc((n) + 1, sizeof *(p))) != NULL
  int ok = 1;
  A(t->qids, (size_t)Q * Tq_max);
  A(t->qmask, (size_t)Q * Tq_max);
  A(t->dids, D * Tp_max);
  A(t->dmask, D * Tp_max);
  A(t->qtok, (size_t)Q * Tq_max * k);
  A(t->qcls, (size_t)Q * c);
  A(t->qcin, (size_t)Q * d);
  A(t->dtok, D * Tp_max * k);
  A(t->dcls, D * c);
  A(t->dcin, D * d);
  A(t->scores, (size_t)Q * S);
  A(t->probs, (size_t)Q * S);
  A(t->dscores, (size_t)Q * S);
  A(t->dqtok, (size_t)Q * Tq_max * k);
  A(t->dqcls, (size_t)Q * c);
  A(t->ddtok, D * Tp_max * k);
  A(t->ddcls, D * c);
  A(t->dh, rows * d);
  A(t->dhc, D * d);
  A(t->argmax, (size_t)Q * S * Tq_max);
  A(t->labels, (size_t)Q);
#undef A
  if (!ok || !(t->curve = cJSON_CreateArray())) return pb_set_error(PB_ERR_NOMEM, "retrieve: out of memory");
  return PB_OK;
}

void pb_coil_train_free(pb_coil_train *t) {
  void *all[] = {t->qids, t->qmask, t->dids, t->dmask, t->qtok, t->qcls, t->qcin, t->dtok, t->dcls, t->dcin,
                 t->scores, t->probs, t->dscores, t->dqtok, t->dqcls, t->ddtok, t->ddcls, t->dh, t->dhc, t->argmax,
                 t->labels, t->order};
  for (size_t i = 0; i < sizeof all / sizeof all[0]; i++) free(all[i]);
  cJSON_Delete(t->curve);
  memset(t, 0, sizeof *t);
}

int pb_coil_group_step(pb_coil_train *t, uint64_t seed, int training, int backward, float *loss) {
  const pb_coil *co = t->co;
  pb_model *m = t->m;
  const int Qb = t->Qb, G = t->G, Tq = t->Tq, Tp = t->Tp, k = co->k, c = co->c;
  const int D = Qb * G, S = t->in_batch ? D : G;
  const uint64_t sq = seed, sd = pb_hash64(seed ^ 0xD0C5ULL);
  int rc = pb_coil_encode(co, m, t->qids, t->qmask, Qb, Tq, training, sq, t->qtok, t->qcls, t->qcin);
  if (!rc) rc = pb_coil_encode(co, m, t->dids, t->dmask, D, Tp, training, sd, t->dtok, t->dcls, t->dcin);
  if (rc) return rc;
  int prev = pb_opc_set_owner(PB_OPO_HEAD);
  for (int a = 0; a < Qb; a++) {
    t->labels[a] = t->in_batch ? a * G : 0;
    for (int s = 0; s < S; s++) {
      const int e = t->in_batch ? s : a * G + s;
      t->scores[(size_t)a * S + s] = pb_coil_score_pair(
          co, t->qids + (size_t)a * Tq, t->qmask + (size_t)a * Tq, t->qtok + (size_t)a * Tq * k, t->qcls + (size_t)a * c,
          Tq, t->dids + (size_t)e * Tp, t->dmask + (size_t)e * Tp, t->dtok + (size_t)e * Tp * k,
          t->dcls + (size_t)e * c, Tp, t->argmax + ((size_t)a * S + s) * Tq);
    }
  }
  const float L = pb_softmax_ce_fwd(t->probs, t->scores, t->labels, Qb, S);
  if (loss) *loss = L;
  if (!pb_opc_counting() && !isfinite(L)) {
    pb_opc_set_owner(prev);
    return pb_set_error(PB_ERR_NUMERIC, "coil: loss is %g (diverged)", (double)L);
  }
  if (!backward) {
    pb_opc_set_owner(prev);
    return PB_OK;
  }
  memset(t->dscores, 0, sizeof(float) * (size_t)Qb * S);
  memset(t->dqtok, 0, sizeof(float) * (size_t)Qb * Tq * k);
  memset(t->dqcls, 0, sizeof(float) * (size_t)Qb * c);
  memset(t->ddtok, 0, sizeof(float) * (size_t)D * Tp * k);
  memset(t->ddcls, 0, sizeof(float) * (size_t)D * c);
  pb_softmax_ce_bwd(t->dscores, t->probs, t->labels, Qb, S);
  for (int a = 0; a < Qb; a++)
    for (int s = 0; s < S; s++) {
      const int e = t->in_batch ? s : a * G + s;
      pb_coil_score_pair_bwd(co, t->dscores[(size_t)a * S + s], t->argmax + ((size_t)a * S + s) * Tq, Tq,
                             t->qtok + (size_t)a * Tq * k, t->qcls + (size_t)a * c, t->dtok + (size_t)e * Tp * k,
                             t->dcls + (size_t)e * c, t->dqtok + (size_t)a * Tq * k, t->dqcls + (size_t)a * c,
                             t->ddtok + (size_t)e * Tp * k, t->ddcls + (size_t)e * c);
    }
  pb_opc_set_owner(prev);
  /* the documents' encoder holds the model's activations: back through it first */
  rc = pb_coil_encode_bwd(co, m, D, Tp, t->dcin, t->ddtok, t->ddcls, t->dh, t->dhc);
  /* then the queries', encoded again with the same dropout */
  if (!rc) rc = pb_coil_encode(co, m, t->qids, t->qmask, Qb, Tq, training, sq, t->qtok, t->qcls, t->qcin);
  if (!rc) rc = pb_coil_encode_bwd(co, m, Qb, Tq, t->qcin, t->dqtok, t->dqcls, t->dh, t->dhc);
  return rc;
}

static void shuffle(int *a, int n, pb_rng *r) {
  for (int i = n - 1; i > 0; i--) {
    int j = (int)pb_rng_below(r, (uint64_t)i + 1), x = a[i];
    a[i] = a[j];
    a[j] = x;
  }
}

int pb_coil_next_batch(pb_coil_train *t) {
  const int n = t->n_train, G = t->G, nd = t->docs->n;
  int qi[256], di[256 * 64];
  const int Qb = t->Q < n ? t->Q : n;
  if (Qb > 256 || Qb * G > 256 * 64) return pb_set_error(PB_ERR_ARG, "retrieve: batch too large");
  for (int a = 0; a < Qb; a++) {
    if (t->pos >= n) { /* a new epoch */
      for (int i = 0; i < n; i++) t->order[i] = i;
      shuffle(t->order, n, &t->rng);
      t->pos = 0;
    }
    const int j = t->order[t->pos++];
    qi[a] = t->train_q[j];
    const int np = t->pos_off[j + 1] - t->pos_off[j];
    di[a * G] = t->pos_doc[t->pos_off[j] + (int)pb_rng_below(&t->rng, (uint64_t)np)];
    /* negatives: a partial shuffle of the pool, then random non-relevant documents */
    int pool[1024], npool = t->neg_off[j + 1] - t->neg_off[j];
    if (npool > 1024) npool = 1024;
    memcpy(pool, t->neg_doc + t->neg_off[j], sizeof(int) * (size_t)npool);
    int g = 1;
    for (int u = 0; g < G && u < npool; u++, g++) {
      int v = u + (int)pb_rng_below(&t->rng, (uint64_t)(npool - u)), x = pool[u];
      pool[u] = pool[v];
      pool[v] = x;
      di[a * G + g] = pool[u];
    }
    for (int tries = 0; g < G; tries++) {
      int e = (int)pb_rng_below(&t->rng, (uint64_t)nd);
      if (t->judged_rel[(size_t)j * nd + e] && tries < 100000) continue;
      di[a * G + g++] = e;
    }
  }
  t->Qb = Qb;
  t->Tq = pb_ir_texts_batch(t->queries, qi, Qb, t->qids, t->qmask);
  t->Tp = pb_ir_texts_batch(t->docs, di, Qb * G, t->dids, t->dmask);
  return PB_OK;
}

/* ---------------------------------------------------------------- the trainer's callbacks */

static int ct_batch(void *ctx, int step, pb_batch *b) {
  pb_coil_train *t = ctx;
  int rc = pb_coil_next_batch(t);
  if (rc) return rc;
  b->B = t->Qb;
  b->T = t->Tp;
  b->items = t->Qb;
  return PB_OK;
}

static int ct_objective(void *ctx, int step, const pb_batch *b, float *loss) {
  pb_coil_train *t = ctx;
  int rc = pb_coil_group_step(t, pb_hash64(t->seed * 1000003ULL + (uint64_t)step), 1, 1, loss);
  if (rc == PB_ERR_NUMERIC)
    return pb_set_error(PB_ERR_NUMERIC, "training diverged at step %d of %d (loss %g): try a lower --lr (now %g)", step,
                        t->total, (double)*loss, (double)t->lr);
  return rc;
}

static int ct_diverged(void *ctx, int step, double gn) {
  const pb_coil_train *t = ctx;
  return pb_set_error(PB_ERR_NUMERIC, "training diverged at step %d of %d (gradient norm %g): try a lower --lr (now %g)",
                      step, t->total, gn, (double)t->lr);
}

static int ct_after_step(void *ctx, const pb_train_step *s) {
  pb_coil_train *t = ctx;
  t->n_clipped += s->clipped;
  t->loss_sum += s->loss;
  t->loss_n++;
  t->steps = s->t;
  if (s->t % t->curve_every == 0 || s->t == t->total) {
    cJSON *pt = cJSON_CreateArray();
    cJSON_AddItemToArray(pt, cJSON_CreateNumber(s->t));
    cJSON_AddItemToArray(pt, cJSON_CreateNumber(t->loss_sum / t->loss_n));
    cJSON_AddItemToArray(t->curve, pt);
    t->final_loss = t->loss_sum / t->loss_n;
    t->loss_sum = 0;
    t->loss_n = 0;
  }
  return PB_OK;
}

static const pb_trainer_ops CT_OPS = {.version = PB_TRAINER_OPS_VERSION, .batch = ct_batch, .objective = ct_objective,
                                      .after_step = ct_after_step, .diverged = ct_diverged};

int pb_coil_train_run(pb_coil_train *t, const pb_adamw *opt, int total, double max_grad_norm, int curve_every,
                      int quiet) {
  t->total = total;
  t->lr = opt->lr;
  t->clip = max_grad_norm > 0;
  t->curve_every = curve_every > 0 ? curve_every : 1;
  if (!(t->order = malloc(sizeof(int) * (size_t)(t->n_train + 1))))
    return pb_set_error(PB_ERR_NOMEM, "retrieve: out of memory");
  t->pos = t->n_train;
  pb_rng_seed(&t->rng, t->seed ^ 0xC011ULL);
  const pb_trainer_opts to = {.ops = &CT_OPS, .ctx = t, .params = &t->m->params, .opt = opt, .total = total,
                              .clip = t->clip ? max_grad_norm : 0, .clip_eps = PB_CLIP_EPS_TORCH, .label = "train",
                              .unit = "queries", .progress_style = PB_PROGRESS_STEPS, .quiet = quiet};
  pb_train_state ts;
  memset(&ts, 0, sizeof ts);
  pb_train_result res;
  int rc = pb_train(&to, &ts, &res);
  t->steps = ts.step;
  return rc;
}
