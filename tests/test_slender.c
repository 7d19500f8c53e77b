/* COST-EFF slenderization (backbone/slender.h):
 *  - pruning keeps exactly the highest-importance heads / FFN neurons (importances set here), in
 *    their original order: which query/key/value rows, attention-output columns, intermediate
 *    rows and output columns land in dst; the other tensors copied; a source whose dropped heads
 *    and neurons have zero output weights gives the pruned model's logits;
 *  - the importance hook: per head and per FFN neuron, |d loss / d gate| of a gate scaling the
 *    unit's output (the first-order Taylor term), against central differences of the loss with
 *    the unit's attention.output / output.dense columns scaled by (1 +- eps); two batches add their
 *    absolute values; the hook leaves the forward unchanged (logits equal to a model without it);
 *  - SVD: the relative Frobenius error of E' P^T equals sqrt(sum of dropped s^2 / sum s^2), full
 *    rank reconstructs E, an exactly rank-3 E is exact at rank 3, and through pb_slender_prune_ex;
 *  - bad arguments refused (PB_ERR_ARG), an unallocated source (PB_ERR_STATE);
 *  - bert-base -> 6 heads, FFN 1536, word rank 384: parameters (sum of tensor sizes) and
 *    inference MACs (pb_model_count, B 1, T 128) of both, against closed forms from the shapes,
 *    and their ratios printed. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <unistd.h>

#include "backbone/bert.h"
#include "backbone/checkpoint.h"
#include "backbone/slender.h"
#include "counters/opcount.h"
#include "methods/method.h"
#include "tests/check.h"
#include "util/rng.h"
#include "util/status.h"

enum { B = 3, T = 6, C = 3, V = 31, D = 8, A = 4, HD = 2, F = 12, L = 2 };
static int ids[B * T], types[B * T], mask[B * T], labels[B], labels2[B];

static void tiny(pb_config *c) {
  memset(c, 0, sizeof *c);
  c->vocab_size = V;
  c->hidden = D;
  c->layers = L;
  c->heads = A;
  c->ffn = F;
  c->max_pos = 8;
  c->type_vocab = 2;
  c->ln_eps = 1e-12f;
  c->hidden_dropout = 0.1f;
  c->attn_dropout = 0.1f;
  c->init_range = 0.3f;
  c->num_labels = C;
}

static void make_batch(void) {
  for (int b = 0; b < B; b++) {
    const int len = T - (b % 2);
    for (int t = 0; t < T; t++) {
      ids[b * T + t] = t < len ? (7 * b + 3 * t + 1) % V : 0;
      types[b * T + t] = t >= 3 && t < len;
      mask[b * T + t] = t < len;
    }
    labels[b] = b % C;
    labels2[b] = (b + 1) % C;
  }
}

static size_t n_params(const pb_model *m) {
  size_t n = 0;
  for (int i = 0; i < m->params.n; i++) n += m->params.t[i].numel;
  return n;
}

static void new_tiny(pb_model *m, uint64_t seed) {
  pb_config c;
  tiny(&c);
  CHECK_OK(pb_model_declare(m, &c));
  CHECK_OK(pb_model_alloc(m, B, T));
  pb_model_init_random(m, seed);
  pb_test_perturb(m, seed + 1, 0);
}

/* ---------------------------------------------------------------- pruning by set importances */

static const float head_imp[L * A] = {0.1f, 0.9f, 0.5f, 0.2f, /* layer 0: keep 1, 2 */
                                      3.0f, 1.0f, 2.0f, 0.0f}; /* layer 1: keep 0, 2 */
static const int keep_h[L][2] = {{1, 2}, {0, 2}};
/* layer 0 keeps 11, 3, 7, 0, 5 (-> 0 3 5 7 11); layer 1 keeps 1 2 4 8 9 (ties at 0.5 to the lower) */
static const float ffn_imp[L * F] = {0.8f, 0.1f, 0.2f, 0.9f, 0.0f, 0.7f, 0.3f, 0.85f, 0.05f, 0.15f, 0.25f, 1.0f,
                                     0.0f, 0.9f, 0.5f, 0.1f, 0.5f, 0.2f, 0.3f, 0.1f, 0.6f, 0.7f, 0.5f, 0.0f};
static const int keep_f[L][5] = {{0, 3, 5, 7, 11}, {1, 2, 4, 8, 9}};

static void prune_selected(void) {
  pb_model s, p;
  new_tiny(&s, 11);
  CHECK_OK(pb_slender_prune(&s, head_imp, ffn_imp, 2, 5, 0, &p));
  CHECK(p.width[0].heads == 2 && p.width[0].head_dim == HD && p.width[1].ffn == 5 && p.word_rank == 0,
        "pruned shapes");
  int rows_ok = 1, cols_ok = 1;
  for (int l = 0; l < L; l++) {
    const pb_layer_idx *a = &s.layer[l], *b = &p.layer[l];
    const int qs[3][2] = {{a->qw, b->qw}, {a->kw, b->kw}, {a->vw, b->vw}}, bs[3][2] = {{a->qb, b->qb}, {a->kb, b->kb}, {a->vb, b->vb}};
    for (int i = 0; i < 2; i++)
      for (int j = 0; j < HD; j++) {
        const int rs = keep_h[l][i] * HD + j, rd = i * HD + j;
        for (int t = 0; t < 3; t++) {
          rows_ok &= memcmp(pb_w(&p, qs[t][1]) + rd * D, pb_w(&s, qs[t][0]) + rs * D, D * sizeof(float)) == 0;
          rows_ok &= pb_w(&p, bs[t][1])[rd] == pb_w(&s, bs[t][0])[rs];
        }
        for (int r = 0; r < D; r++) cols_ok &= pb_w(&p, b->ow)[r * 2 * HD + rd] == pb_w(&s, a->ow)[r * A * HD + rs];
      }
    for (int i = 0; i < 5; i++) {
      const int js = keep_f[l][i];
      rows_ok &= memcmp(pb_w(&p, b->iw) + i * D, pb_w(&s, a->iw) + js * D, D * sizeof(float)) == 0;
      rows_ok &= pb_w(&p, b->ib)[i] == pb_w(&s, a->ib)[js];
      for (int r = 0; r < D; r++) cols_ok &= pb_w(&p, b->fw)[r * 5 + i] == pb_w(&s, a->fw)[r * F + js];
    }
    rows_ok &= memcmp(pb_w(&p, b->ob), pb_w(&s, a->ob), D * sizeof(float)) == 0;
    rows_ok &= memcmp(pb_w(&p, b->ln2w), pb_w(&s, a->ln2w), D * sizeof(float)) == 0;
  }
  CHECK(rows_ok, "kept query/key/value/intermediate rows (or biases) are not the highest-importance ones in order");
  CHECK(cols_ok, "kept attention-output / output.dense columns are not the highest-importance ones in order");
  int same = 1;
  const int others[] = {s.word, s.pos, s.type, s.emb_lnw, s.emb_lnb, s.pool_w, s.pool_b, s.cls_w, s.cls_b};
  for (size_t k = 0; k < sizeof others / sizeof *others; k++)
    same &= memcmp(pb_w(&p, others[k]), pb_w(&s, others[k]), s.params.t[others[k]].numel * sizeof(float)) == 0;
  CHECK(same, "embeddings / pooler / classifier not copied");
  CHECK(n_params(&p) == n_params(&s) - (size_t)L * (2 * HD * (4 * D + 3) + 7 * (2 * D + 1)), "pruned parameter count %zu",
        n_params(&p));
  pb_model_free(&p);

  /* dropped units with zero output weights: the pruned model computes the same logits */
  for (int l = 0; l < L; l++) {
    const pb_layer_idx *a = &s.layer[l];
    for (int h = 0; h < A; h++)
      if (h != keep_h[l][0] && h != keep_h[l][1])
        for (int r = 0; r < D; r++)
          for (int j = 0; j < HD; j++) pb_w(&s, a->ow)[r * A * HD + h * HD + j] = 0;
    for (int n = 0; n < F; n++) {
      int kept = 0;
      for (int i = 0; i < 5; i++) kept |= keep_f[l][i] == n;
      if (!kept)
        for (int r = 0; r < D; r++) pb_w(&s, a->fw)[r * F + n] = 0;
    }
  }
  CHECK_OK(pb_slender_prune(&s, head_imp, ffn_imp, 2, 5, 0, &p));
  CHECK_OK(pb_model_alloc(&p, B, T));
  float ls, lp;
  CHECK_OK(pb_forward(&s, ids, types, mask, B, T, labels, NULL, 0, 0, &ls));
  CHECK_OK(pb_forward(&p, ids, types, mask, B, T, labels, NULL, 0, 0, &lp));
  double worst = 0;
  for (int i = 0; i < B * C; i++) worst = fmax(worst, fabs(s.acts.logits[i] - p.acts.logits[i]));
  printf("pruned (zeroed dropped units) vs source: max |logit diff| %.3g, loss %.6f vs %.6f\n", worst, ls, lp);
  CHECK(worst < 1e-5, "pruned logits differ from the source's by %g", worst);
  pb_model_free(&p);
  pb_model_free(&s);
}

/* ---------------------------------------------------------------- importance vs finite differences */

static double loss_at(pb_model *m, const int *lab) {
  float loss = NAN;
  if (pb_forward(m, ids, types, mask, B, T, lab, NULL, 0, 0, &loss)) printf("forward: %s\n", pb_last_error());
  return loss;
}

/* d loss / d gate of unit u of layer l (head or neuron): scale its output columns by (1 +- eps) */
static double fd_gate(pb_model *m, int l, int head, int u, const int *lab) {
  const pb_width w = m->width[l];
  const int in = head ? pb_width_attn(w) : w.ffn, lo = head ? u * w.head_dim : u, n = head ? w.head_dim : 1;
  float *W = pb_w(m, head ? m->layer[l].ow : m->layer[l].fw);
  float *keep = malloc(sizeof(float) * (size_t)D * n);
  for (int r = 0; r < D; r++)
    for (int j = 0; j < n; j++) keep[r * n + j] = W[r * in + lo + j];
  const double eps = 1e-2;
  double lv[2];
  for (int k = 0; k < 2; k++) {
    const float sc = (float)(1 + (k ? -eps : eps));
    for (int r = 0; r < D; r++)
      for (int j = 0; j < n; j++) W[r * in + lo + j] = keep[r * n + j] * sc;
    lv[k] = loss_at(m, lab);
  }
  for (int r = 0; r < D; r++)
    for (int j = 0; j < n; j++) W[r * in + lo + j] = keep[r * n + j];
  free(keep);
  return (lv[0] - lv[1]) / (2 * eps);
}

static void importance_fd(void) {
  pb_config c;
  tiny(&c);
  pb_model m, ref;
  CHECK_OK(pb_model_declare(&m, &c));
  pb_slender_imp imp;
  CHECK_OK(pb_slender_imp_attach(&m, &imp));
  CHECK_OK(pb_model_alloc(&m, B, T));
  pb_model_init_random(&m, 21);
  pb_test_perturb(&m, 22, 0);
  new_tiny(&ref, 21);
  for (int i = 0; i < ref.params.n; i++)
    memcpy(ref.params.t[i].data, m.params.t[i].data, ref.params.t[i].numel * sizeof(float));
  CHECK_OK(pb_forward(&ref, ids, types, mask, B, T, labels, NULL, 0, 0, NULL));
  CHECK_OK(pb_forward(&m, ids, types, mask, B, T, labels, NULL, 0, 0, NULL));
  CHECK(memcmp(ref.acts.logits, m.acts.logits, B * C * sizeof(float)) == 0, "the importance hook changed the forward");
  pb_model_free(&ref);

  double fd1[L * A], fd1f[L * F];
  for (int l = 0; l < L; l++) {
    for (int h = 0; h < A; h++) fd1[l * A + h] = fabs(fd_gate(&m, l, 1, h, labels));
    for (int j = 0; j < F; j++) fd1f[l * F + j] = fabs(fd_gate(&m, l, 0, j, labels));
  }
  pb_params_zero_grad(&m.params);
  loss_at(&m, labels);
  CHECK_OK(pb_backward(&m));
  CHECK(imp.batches == 1, "batches %d", imp.batches);
  const double atol = 2e-4, rtol = 1e-2;
  double used = 0, used2 = 0, top = 0;
  for (int l = 0; l < L; l++) {
    for (int h = 0; h < A; h++) {
      const double u = check_fd_used(fd1[l * A + h], imp.head[pb_slender_head_off(&m, l) + h], atol, rtol);
      used = fmax(used, u);
      top = fmax(top, fd1[l * A + h]);
      CHECK(u < 1, "head %d.%d importance %.6g, finite difference %.6g", l, h, imp.head[l * A + h], fd1[l * A + h]);
    }
    for (int j = 0; j < F; j++) {
      const double u = check_fd_used(fd1f[l * F + j], imp.ffn[pb_slender_ffn_off(&m, l) + j], atol, rtol);
      used = fmax(used, u);
      CHECK(u < 1, "ffn %d.%d importance %.6g, finite difference %.6g", l, j, imp.ffn[l * F + j], fd1f[l * F + j]);
    }
  }
  /* a second batch (other labels) adds its absolute values */
  double fd2[L * A], fd2f[L * F];
  for (int l = 0; l < L; l++) {
    for (int h = 0; h < A; h++) fd2[l * A + h] = fd1[l * A + h] + fabs(fd_gate(&m, l, 1, h, labels2));
    for (int j = 0; j < F; j++) fd2f[l * F + j] = fd1f[l * F + j] + fabs(fd_gate(&m, l, 0, j, labels2));
  }
  loss_at(&m, labels2);
  CHECK_OK(pb_backward(&m));
  CHECK(imp.batches == 2, "batches %d", imp.batches);
  for (int l = 0; l < L; l++) {
    for (int h = 0; h < A; h++) used2 = fmax(used2, check_fd_used(fd2[l * A + h], imp.head[l * A + h], atol, rtol));
    for (int j = 0; j < F; j++) used2 = fmax(used2, check_fd_used(fd2f[l * F + j], imp.ffn[l * F + j], atol, rtol));
  }
  printf("importance vs finite differences: largest head importance %.4g; tolerance used %.3f (one batch), %.3f (two)\n",
         top, used, used2);
  CHECK(used2 < 1, "two-batch importance off the finite differences (%.3f of the tolerance)", used2);
  pb_slender_imp_reset(&imp);
  CHECK(imp.head[0] == 0 && imp.ffn[F] == 0 && imp.batches == 0, "reset");
  /* the hook in a counting-only run: charged (2 FLOP per element at both sites), nothing computed */
  pb_opcounts oc = {0};
  CHECK_OK(pb_model_count(&m, B, T, PB_COUNT_TRAIN, &oc));
  const uint64_t want = 2ull * B * T * L * (A * HD + F);
  CHECK(pb_opcounts_kind(&oc, PB_OPO_METHOD, PB_OPK_FLOP) == want, "hook FLOP %llu, expected %llu",
        (unsigned long long)pb_opcounts_kind(&oc, PB_OPO_METHOD, PB_OPK_FLOP), (unsigned long long)want);
  CHECK(imp.head[0] == 0 && imp.batches == 0, "a counting-only run accumulated importance");
  pb_slender_imp_free(&imp);
  pb_model_free(&m);
}

/* ---------------------------------------------------------------- SVD */

static double recon_err(const float *E, const float *Eo, const float *P, int n, int d, int r) {
  double num = 0, den = 0;
  for (int v = 0; v < n; v++)
    for (int j = 0; j < d; j++) {
      double y = 0;
      for (int k = 0; k < r; k++) y += (double)Eo[v * r + k] * P[j * r + k];
      num += (E[v * d + j] - y) * (E[v * d + j] - y);
      den += (double)E[v * d + j] * E[v * d + j];
    }
  return sqrt(num / den);
}

static void svd(void) {
  enum { NV = 40, ND = 12 };
  float E[NV * ND], Eo[NV * ND], P[ND * ND], s[ND];
  pb_rng r;
  pb_rng_seed(&r, 3);
  for (int i = 0; i < NV * ND; i++) E[i] = pb_rng_normal(&r) * (1.0f + (float)(i % ND)); /* uneven spectrum */
  double worst = 0;
  for (int rank = 1; rank <= ND; rank++) {
    double rel;
    CHECK_OK(pb_slender_factor(E, NV, ND, rank, Eo, P, s, &rel));
    const double direct = recon_err(E, Eo, P, NV, ND, rank);
    worst = fmax(worst, fabs(direct - rel));
    CHECK(fabs(direct - rel) < 1e-5 + 1e-4 * rel, "rank %d: reconstruction error %.7g, dropped singular values %.7g",
          rank, direct, rel);
    if (rank == 6) printf("svd 40x12 at rank 6: relative error %.6f (direct %.6f)\n", rel, direct);
    if (rank == ND) {
      double mx = 0;
      for (int v = 0; v < NV; v++)
        for (int j = 0; j < ND; j++) {
          double y = 0;
          for (int k = 0; k < ND; k++) y += (double)Eo[v * ND + k] * P[j * ND + k];
          mx = fmax(mx, fabs(y - E[v * ND + j]));
        }
      printf("svd full rank: relative error %.3g, max |E - E'P^T| %.3g\n", rel, mx);
      CHECK(rel < 1e-6 && mx < 1e-4, "full rank is not exact (%g, %g)", rel, mx);
    }
  }
  int desc = 1;
  for (int k = 1; k < ND; k++) desc &= s[k] <= s[k - 1];
  CHECK(desc, "singular values not descending");
  printf("svd: largest |direct - singular-value error| over ranks 1..12: %.3g\n", worst);
  /* an exactly rank-3 matrix is exact at rank 3 */
  float X[NV * 3], Y[3 * ND];
  for (int i = 0; i < NV * 3; i++) X[i] = pb_rng_normal(&r);
  for (int i = 0; i < 3 * ND; i++) Y[i] = pb_rng_normal(&r);
  for (int v = 0; v < NV; v++)
    for (int j = 0; j < ND; j++) E[v * ND + j] = X[v * 3] * Y[j] + X[v * 3 + 1] * Y[ND + j] + X[v * 3 + 2] * Y[2 * ND + j];
  double rel3;
  CHECK_OK(pb_slender_factor(E, NV, ND, 3, Eo, P, s, &rel3));
  CHECK(rel3 < 1e-5 && recon_err(E, Eo, P, NV, ND, 3) < 1e-5, "rank-3 matrix at rank 3: %g", rel3);
  CHECK(pb_slender_factor(E, NV, ND, 0, Eo, P, s, NULL) == PB_ERR_ARG &&
            pb_slender_factor(E, NV, ND, ND + 1, Eo, P, s, NULL) == PB_ERR_ARG,
        "factor ranks 0 / d+1 accepted");

  /* through the pruning call: word rank 5 of d 8 */
  pb_model src, dst;
  new_tiny(&src, 31);
  static const float ones_h[L * A] = {1, 1, 1, 1, 1, 1, 1, 1};
  float ones_f[L * F];
  for (int i = 0; i < L * F; i++) ones_f[i] = 1;
  pb_slender_info info;
  CHECK_OK(pb_slender_prune_ex(&src, ones_h, ones_f, A, F, 5, &dst, &info));
  CHECK(dst.word_rank == 5 && dst.params.t[dst.word].shape[1] == 5, "word rank");
  CHECK(fabs(info.word_rel_err - info.word_rel_err_direct) < 1e-5, "prune: word error %g vs direct %g",
        info.word_rel_err, info.word_rel_err_direct);
  CHECK(fabs(recon_err(pb_w(&src, src.word), pb_w(&dst, dst.word), pb_w(&dst, dst.word_proj), V, D, 5) -
             info.word_rel_err) < 1e-5,
        "prune: the stored factors do not give the reported error");
  printf("tiny model word embeddings [31,8] at rank 5: relative Frobenius error %.5f (direct %.5f); params %zu -> %zu\n",
         info.word_rel_err, info.word_rel_err_direct, info.params_src, info.params_dst);
  /* an HF-style folder of a slender model (pruned heads and FFN, factorised words) loads back:
   * config.json's peftbench_slender shapes applied to a model declared from its config */
  {
    pb_model p, q;
    CHECK_OK(pb_slender_prune(&src, head_imp, ffn_imp, 2, 5, 4, &p));
    CHECK_OK(pb_model_alloc(&p, B, T));
    char dir[] = "/tmp/pb_test_slender_hf_XXXXXX";
    CHECK(mkdtemp(dir) != NULL, "mkdtemp");
    CHECK_OK(pb_model_save_hf(&p, dir));
    char path[96];
    snprintf(path, sizeof path, "%s/config.json", dir);
    pb_config c;
    c.num_labels = C;
    CHECK_OK(pb_config_load_hf(path, &c));
    CHECK_OK(pb_model_declare(&q, &c));
    CHECK_OK(pb_model_apply_hf_shape(&q, dir));
    CHECK(q.width[1].heads == 2 && q.width[1].ffn == 5 && q.word_rank == 4, "slender shapes not applied");
    CHECK_OK(pb_model_alloc(&q, B, T));
    CHECK_OK(pb_model_load_hf(&q, dir));
    int same = q.params.n == p.params.n;
    for (int i = 0; same && i < q.params.n; i++)
      same &= q.params.t[i].numel == p.params.t[i].numel &&
              memcmp(q.params.t[i].data, p.params.t[i].data, q.params.t[i].numel * sizeof(float)) == 0;
    CHECK(same, "the slender folder did not load back bit for bit");
    /* a plain model's folder has no slender key: applying it changes nothing */
    pb_model z;
    CHECK_OK(pb_model_declare(&z, &c));
    CHECK_OK(pb_model_save_hf(&src, dir));
    CHECK_OK(pb_model_apply_hf_shape(&z, dir));
    CHECK(pb_model_width_uniform(&z) && z.word_rank == 0, "a plain folder changed the shapes");
    pb_model_free(&z);
    unlink(path);
    snprintf(path, sizeof path, "%s/model.safetensors", dir);
    unlink(path);
    rmdir(dir);
    pb_model_free(&q);
    pb_model_free(&p);
  }
  /* all heads and neurons kept: layers are copies, the pruned model runs */
  CHECK_OK(pb_model_alloc(&dst, B, T));
  CHECK_OK(pb_forward(&dst, ids, types, mask, B, T, labels, NULL, 0, 0, NULL));
  pb_model_free(&dst);
  pb_model_free(&src);
}

/* ---------------------------------------------------------------- bad arguments */

static void bad_arguments(void) {
  pb_model s, p;
  new_tiny(&s, 41);
  const int bad[][3] = {{0, 5, 0}, {A + 1, 5, 0}, {2, 0, 0}, {2, F + 1, 0}, {2, 5, -1}, {2, 5, D}, {-1, 5, 0}};
  for (size_t k = 0; k < sizeof bad / sizeof *bad; k++) {
    memset(&p, 0, sizeof p);
    const int rc = pb_slender_prune(&s, head_imp, ffn_imp, bad[k][0], bad[k][1], bad[k][2], &p);
    CHECK(rc == PB_ERR_ARG, "heads %d ffn %d rank %d: %s", bad[k][0], bad[k][1], bad[k][2], pb_status_name(rc));
    if (k == 0) printf("refused: %s\n", pb_last_error());
    CHECK(p.params.n == 0, "a refused prune left a declared model");
  }
  CHECK(pb_slender_prune(&s, NULL, ffn_imp, 2, 5, 0, &p) == PB_ERR_ARG, "no importances accepted");
  pb_config c;
  tiny(&c);
  pb_model u;
  CHECK_OK(pb_model_declare(&u, &c));
  CHECK(pb_slender_prune(&u, head_imp, ffn_imp, 2, 5, 0, &p) == PB_ERR_STATE, "unallocated source accepted");
  pb_model_free(&u);
  /* a factorised source cannot be factorised again */
  CHECK_OK(pb_slender_prune(&s, head_imp, ffn_imp, 2, 5, 4, &p));
  pb_model q;
  CHECK(pb_slender_prune(&p, head_imp, ffn_imp, 2, 5, 3, &q) == PB_ERR_ARG, "factorised twice");
  pb_model_free(&p);
  pb_model_free(&s);
}

/* ---------------------------------------------------------------- bert-base ratios */

static void bert_base_ratios(void) {
  pb_config c;
  pb_config_bert_base(&c, 2);
  pb_model base, slim;
  CHECK_OK(pb_model_declare(&base, &c));
  const int N = 6, Fk = 3072 / 12 * N, R = 768 / 12 * N; /* 1536, 384 */
  CHECK_OK(pb_slender_declare(&base, N, Fk, R, &slim));
  const uint64_t d = 768, Fb = 3072, Lc = 12, Vv = 30522, Pp = 512, t = 128, Cc = 2, a = 64 * (uint64_t)N, f = Fk,
                 r = R;
  /* parameters: embeddings (word, position, type, LN), L sets, pooler, classifier */
  const uint64_t set_b = 4 * (d * d + d) + 2 * d + (Fb * d + Fb) + (d * Fb + d) + 2 * d;
  const uint64_t set_s = 3 * (a * d + a) + (d * a + d) + 2 * d + (f * d + f) + (d * f + d) + 2 * d;
  const uint64_t tail = Pp * d + 2 * d + 2 * d + Lc * 0 + d * d + d + Cc * d + Cc;
  const uint64_t pb_ = Vv * d + Lc * set_b + tail, ps_ = Vv * r + d * r + Lc * set_s + tail;
  CHECK(n_params(&base) == pb_ && n_params(&slim) == ps_, "parameters %zu / %zu, closed forms %llu / %llu",
        n_params(&base), n_params(&slim), (unsigned long long)pb_, (unsigned long long)ps_);
  /* inference MACs at B 1, T 128: per token per layer Q,K,V,O + FFN + scores and context */
  pb_opcounts ob = {0}, os = {0};
  CHECK_OK(pb_model_count(&base, 1, (int)t, PB_COUNT_INFER, &ob));
  CHECK_OK(pb_model_count(&slim, 1, (int)t, PB_COUNT_INFER, &os));
  const uint64_t head = d * d + Cc * d;
  const uint64_t mb = Lc * t * (4 * d * d + 2 * d * Fb + 2 * t * d) + head;
  const uint64_t ms = t * r * d + Lc * t * (4 * d * a + 2 * d * f + 2 * t * a) + head;
  uint64_t gb = 0, gs = 0;
  for (int o = 0; o < PB_OPO_COUNT; o++) {
    gb += pb_opcounts_kind(&ob, o, PB_OPK_MAC);
    gs += pb_opcounts_kind(&os, o, PB_OPK_MAC);
  }
  CHECK(gb == mb && gs == ms, "MACs %llu / %llu, closed forms %llu / %llu", (unsigned long long)gb,
        (unsigned long long)gs, (unsigned long long)mb, (unsigned long long)ms);
  /* without the embeddings (the paper's encoder-only view) */
  const uint64_t enc_b = Lc * set_b, enc_s = Lc * set_s;
  printf("bert-base -> COST-EFF slender (heads 12->%d, FFN 3072->%d, word rank %d):\n", N, Fk, R);
  printf("  parameters %llu -> %llu (ratio %.4f); encoder only %llu -> %llu (%.4f); word embeddings %llu -> %llu "
         "(%.4f)\n",
         (unsigned long long)pb_, (unsigned long long)ps_, (double)ps_ / pb_, (unsigned long long)enc_b,
         (unsigned long long)enc_s, (double)enc_s / enc_b, (unsigned long long)(Vv * d),
         (unsigned long long)(Vv * r + d * r), (double)(Vv * r + d * r) / (Vv * d));
  printf("  inference MACs at T=128: %llu -> %llu (ratio %.4f)\n", (unsigned long long)gb, (unsigned long long)gs,
         (double)gs / gb);
  /* halving heads, FFN and the word rank halves the model up to the kept tables (position, type,
   * LayerNorms, pooler, biases at full width) and the projection P */
  CHECK((double)ps_ / pb_ > 0.5 && (double)ps_ / pb_ < 0.51 && (double)gs / gb > 0.5 && (double)gs / gb < 0.51,
        "ratios %.4f / %.4f", (double)ps_ / pb_, (double)gs / gb);
  pb_model_free(&slim);
  pb_model_free(&base);
}

/* COST-EFF's 8x configuration (the paper's headline, "1/8 parameters and 1/19 FLOPs"): 2 heads,
 * FFN 3072/12*2/2 = 256 (its run.sh's second FFN scaling), word rank 768/12*2 = 128, exits with
 * pooler=tanh (its pooler_dense=False), against bert-base. Parameters and static FLOPs from the
 * counting-only runs, checked against closed forms; the 1/19 is dynamic: the mean exit layer that
 * reaches it is printed (the slender model's per-layer cost times the layers an example runs). */
static void costeff_8x(void) {
  pb_config c;
  pb_config_bert_base(&c, 2);
  pb_model base, slim;
  CHECK_OK(pb_model_declare(&base, &c));
  const int N = 2, Fk = 3072 / 12 * N / 2, R = 768 / 12 * N; /* 256, 128 */
  CHECK_OK(pb_slender_declare(&base, N, Fk, R, &slim));
  pb_method_inst mi;
  CHECK_OK(pb_method_create(&mi, "exits", (const char *const[]){"pooler=tanh", "threshold=0.5", NULL}));
  CHECK_OK(mi.m->attach(mi.ctx, &slim));
  const uint64_t d = 768, Lc = 12, Vv = 30522, Pp = 512, t = 128, Cc = 2, a = 64 * (uint64_t)N, f = Fk, r = R;
  const uint64_t set_b = 4 * (d * d + d) + 2 * d + (3072 * d + 3072) + (d * 3072 + d) + 2 * d;
  const uint64_t set_s = 3 * (a * d + a) + (d * a + d) + 2 * d + (f * d + f) + (d * f + d) + 2 * d;
  const uint64_t emb = Pp * d + 2 * d + 2 * d, pooler = d * d + d, cls = Cc * d + Cc, exits = (Lc - 1) * cls;
  const uint64_t pb_ = Vv * d + emb + Lc * set_b + pooler + cls;
  const uint64_t ps_ = Vv * r + d * r + emb + Lc * set_s + pooler + cls + exits;
  CHECK(n_params(&base) == pb_ && n_params(&slim) == ps_, "8x parameters %zu / %zu, closed forms %llu / %llu",
        n_params(&base), n_params(&slim), (unsigned long long)pb_, (unsigned long long)ps_);
  const double rp = (double)pb_ / ps_, rp_np = (double)pb_ / (ps_ - pooler);
  printf("COST-EFF 8x (heads %d, FFN %d, word rank %d, 11 tanh exits) vs bert-base:\n", N, Fk, R);
  printf("  parameters %llu -> %llu: 1/%.2f (without the final head's pooler dense, which COST-EFF's "
         "pooler_dense=False drops: 1/%.2f; the paper: 1/8)\n",
         (unsigned long long)pb_, (unsigned long long)ps_, rp, rp_np);
  CHECK(rp > 7.4 && rp < 7.7 && rp_np > 7.8 && rp_np < 8.0, "8x parameter ratios 1/%.3f, 1/%.3f", rp, rp_np);
  /* FLOPs at B 1, T 128: static (every layer), then leaving after layer k */
  pb_opcounts ob = {{{0}}}, os = {{{0}}};
  CHECK_OK(pb_model_count(&base, 1, (int)t, PB_COUNT_INFER, &ob));
  CHECK_OK(pb_model_count_exit(&slim, 1, (int)t, (int)Lc - 1, &os));
  const double fb = (double)pb_opcounts_flops(&ob, -1), fs = (double)pb_opcounts_flops(&os, -1);
  const uint64_t ms = t * r * d + Lc * t * (4 * d * a + 2 * d * f + 2 * t * a) + pooler - d + cls - Cc + exits - (Lc - 1) * Cc;
  CHECK(pb_opcounts_kind(&os, -1, PB_OPK_MAC) == ms, "8x MACs to the end %llu, closed form %llu",
        (unsigned long long)pb_opcounts_kind(&os, -1, PB_OPK_MAC), (unsigned long long)ms);
  printf("  FLOPs at T=128, every layer (+ every exit evaluated): %.4g -> %.4g: 1/%.2f\n", fb, fs, fb / fs);
  CHECK(fb / fs > 8.3 && fb / fs < 9.0, "8x static FLOPs ratio 1/%.3f", fb / fs);
  double prev = fb / fs, k19 = -1;
  for (int k = (int)Lc - 2; k >= 0; k--) {
    pb_opcounts ok = {{{0}}};
    CHECK_OK(pb_model_count_exit(&slim, 1, (int)t, k, &ok));
    const double rk = fb / (double)pb_opcounts_flops(&ok, -1);
    CHECK(rk > prev, "leaving after layer %d is not cheaper than after %d", k + 1, k + 2);
    if (rk >= 19.0 && k19 < 0) { /* the deepest whole layer at 1/19: interpolate to the mean exit layer */
      k19 = (k + 1) + (rk - 19.0) / (rk - prev);
      printf("  1/19 of bert-base's FLOPs = leaving after %.2f of 12 layers on average (after %d: 1/%.2f, after %d: "
             "1/%.2f)\n", k19, k + 1, rk, k + 2, prev);
    }
    prev = rk;
  }
  CHECK(k19 > 4.0 && k19 < 7.0, "1/19 needs a mean exit layer of %.2f", k19);
  pb_model_free(&slim);
  pb_method_destroy(&mi);
  pb_model_free(&base);
}

int main(void) {
  make_batch();
  prune_selected();
  importance_fd();
  svd();
  bad_arguments();
  bert_base_ratios();
  costeff_8x();
  printf("%d checks, %d failures\n", checks, failures);
  return check_exit_status();
}
