/* MLM head (backbone/mlm.h): finite-difference gradients of the head tensors, the tied word
 * embeddings and a sample of encoder tensors through the full MLM loss; masking statistics
 * (15% of candidates, 80/10/10, specials and padding never picked, determinism); a few AdamW
 * steps on a tiny repeated corpus reduce the loss. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "backbone/bert.h"
#include "backbone/mlm.h"
#include "util/rng.h"
#include "util/status.h"
#include "tests/check.h"


enum { V = 37, B = 3, T = 8, PAD = 0, CLS = 1, SEP = 2, MASK = 3 };
static int ids[B * T], mask[B * T], in_ids[B * T], labels[B * T];

static void tiny(pb_config *c) {
  memset(c, 0, sizeof *c);
  c->vocab_size = V;
  c->hidden = 12;
  c->layers = 2;
  c->heads = 3;
  c->ffn = 20;
  c->max_pos = 16;
  c->type_vocab = 2;
  c->ln_eps = 1e-12f;
  c->init_range = 0.3f;
  c->num_labels = 2;
}

static void make_batch(void) {
  for (int b = 0; b < B; b++) {
    int len = T - b;
    for (int t = 0; t < T; t++) {
      int id = 4 + (5 * b + 3 * t) % (V - 4);
      if (t == 0) id = CLS;
      else if (t == len - 1) id = SEP;
      ids[b * T + t] = t < len ? id : PAD;
      mask[b * T + t] = t < len;
    }
  }
}

static int build(pb_model *m, pb_mlm *h, float dropout) {
  pb_config c;
  tiny(&c);
  c.hidden_dropout = c.attn_dropout = dropout;
  int rc = pb_model_declare(m, &c);
  if (!rc) rc = pb_mlm_declare(h, m);
  if (rc) return rc;
  for (int i = 0; i < m->params.n; i++) m->params.t[i].trainable = 1;
  if ((rc = pb_model_alloc(m, B, T))) return rc;
  if ((rc = pb_mlm_alloc(h, m, B * T))) return rc;
  pb_model_init_random(m, 42);
  pb_test_perturb(m, 7, 0); /* biases and LayerNorms away from 0/1 */
  return PB_OK;
}

static float loss_of(pb_model *m, pb_mlm *h) {
  float loss = NAN;
  int rc = pb_forward(m, in_ids, NULL, mask, B, T, NULL, NULL, 0, 0, NULL);
  if (!rc) rc = pb_mlm_forward(h, m, labels, &loss);
  if (rc) printf("forward failed: %s\n", pb_last_error());
  return loss;
}

static void gradcheck(void) {
  pb_model m;
  pb_mlm h;
  if (build(&m, &h, 0.0f)) {
    CHECK(0, "build: %s", pb_last_error());
    return;
  }
  make_batch();
  int special[3] = {PAD, CLS, SEP};
  /* a high masking rate so that several rows are predicted */
  int np = pb_mlm_mask(ids, mask, B, T, V, MASK, special, 3, 0.5f, 0, 5, in_ids, labels);
  CHECK(np >= 3, "mask picked %d tokens", np);
  pb_params_zero_grad(&m.params);
  loss_of(&m, &h);
  CHECK(pb_mlm_backward(&h, &m) == PB_OK, "backward: %s", pb_last_error());
  const float eps = 1e-2f;
  double worst = 0;
  char worst_name[PB_NAME_MAX + 64] = "";
  int checked = 0;
  pb_rng r;
  pb_rng_seed(&r, 99);
  for (int i = 0; i < m.params.n; i++) {
    pb_tensor *t = &m.params.t[i];
    if (t->owner == PB_OWNER_HEAD && strncmp(t->name, "classifier", 10) == 0) continue; /* not in the MLM loss */
    if (i == m.pool_w || i == m.pool_b) continue;
    int is_mlm = strncmp(t->name, "cls.predictions", 15) == 0;
    int n = (is_mlm || i == m.word) ? 12 : 2; /* every MLM tensor and the tied embedding in depth */
    for (int s = 0; s < n; s++) {
      size_t j = (size_t)pb_rng_below(&r, t->numel);
      /* word embeddings: rows used as inputs, as targets, and as neither (decoder only) */
      if (i == m.word && s < 6) j = (size_t)in_ids[(s * 5) % (B * T)] * (size_t)m.cfg.hidden + (size_t)s;
      float keep = t->data[j];
      t->data[j] = keep + eps;
      double lp = loss_of(&m, &h);
      t->data[j] = keep - eps;
      double lm = loss_of(&m, &h);
      t->data[j] = keep;
      double fd = (lp - lm) / (2 * eps), g = t->grad[j];
      double err = fabs(g - fd) / (2e-3 + 3e-2 * fabs(fd));
      checked++;
      if (err > worst) {
        worst = err;
        snprintf(worst_name, sizeof worst_name, "%s[%zu] grad %.6g fd %.6g", t->name, j, g, fd);
      }
    }
  }
  printf("gradcheck (MLM head, tied embeddings, encoder): %d entries, worst normalised error %.3f at %s (must be <= 1)\n",
         checked, worst, worst_name);
  CHECK(worst <= 1.0, "gradient mismatch: %s", worst_name);
  /* the pooler and classifier take no part in the MLM loss: zero gradient */
  double gp = 0;
  for (size_t j = 0; j < m.params.t[m.pool_w].numel; j++) gp += fabs(m.params.t[m.pool_w].grad[j]);
  CHECK(gp == 0.0, "pooler got gradient %g from the MLM loss", gp);
  /* errors: no predicted position, out-of-range label */
  int none[B * T];
  for (int i = 0; i < B * T; i++) none[i] = PB_MLM_IGNORE;
  CHECK(pb_mlm_forward(&h, &m, none, NULL) == PB_ERR_ARG, "no predicted position must fail");
  none[3] = V;
  CHECK(pb_mlm_forward(&h, &m, none, NULL) == PB_ERR_ARG, "label outside the vocabulary must fail");
  printf("  error message: %s\n", pb_last_error());
  pb_mlm_free(&h);
  pb_model_free(&m);
}

static void masking_stats(void) {
  enum { MB = 2000, MT = 40, MV = 1000 };
  int *x = malloc(sizeof(int) * MB * MT), *mk = malloc(sizeof(int) * MB * MT);
  int *o = malloc(sizeof(int) * MB * MT), *lab = malloc(sizeof(int) * MB * MT);
  int *o2 = malloc(sizeof(int) * MB * MT), *lab2 = malloc(sizeof(int) * MB * MT);
  pb_rng r;
  pb_rng_seed(&r, 3);
  long cand = 0;
  for (int b = 0; b < MB; b++) {
    int len = 5 + (int)pb_rng_below(&r, MT - 5);
    for (int t = 0; t < MT; t++) {
      int id = 10 + (int)pb_rng_below(&r, MV - 10);
      if (t == 0) id = CLS;
      else if (t == len - 1 || t == len / 2) id = SEP; /* two-sentence packing */
      x[b * MT + t] = t < len ? id : PAD;
      mk[b * MT + t] = t < len;
      cand += t < len && id != CLS && id != SEP;
    }
  }
  int special[3] = {PAD, CLS, SEP};
  int np = pb_mlm_mask(x, mk, MB, MT, MV, MASK, special, 3, 0.15f, 0, 11, o, lab);
  long picked = 0, to_mask = 0, to_rand = 0, kept = 0, bad = 0, changed_unpicked = 0;
  for (int i = 0; i < MB * MT; i++) {
    if (lab[i] == PB_MLM_IGNORE) {
      changed_unpicked += o[i] != x[i];
      continue;
    }
    picked++;
    if (!mk[i] || x[i] == CLS || x[i] == SEP || x[i] == PAD) bad++;
    if (lab[i] != x[i]) bad++;
    if (o[i] == MASK) to_mask++;
    else if (o[i] == x[i]) kept++;
    else to_rand++;
  }
  double rate = (double)picked / (double)cand;
  printf("masking: %ld of %ld candidates picked (%.4f); [MASK] %.4f random %.4f kept %.4f\n", picked, cand, rate,
         (double)to_mask / picked, (double)to_rand / picked, (double)kept / picked);
  CHECK(np == picked, "returned count %d != labels %ld", np, picked);
  CHECK(fabs(rate - 0.15) < 0.01, "masking rate %.4f not ~0.15", rate);
  CHECK(fabs((double)to_mask / picked - 0.8) < 0.02, "[MASK] share off");
  CHECK(fabs((double)to_rand / picked - 0.1) < 0.015, "random share off");
  CHECK(fabs((double)kept / picked - 0.1) < 0.015, "kept share off");
  CHECK(bad == 0, "%ld picked positions are special/padding or have wrong labels", bad);
  CHECK(changed_unpicked == 0, "%ld unpicked positions changed", changed_unpicked);
  /* per-row: every row with a candidate has >= 1 pick, = round(0.15 * candidates) */
  int rows_bad = 0;
  for (int b = 0; b < MB; b++) {
    int c = 0, p = 0;
    for (int t = 0; t < MT; t++) {
      int i = b * MT + t;
      c += mk[i] && x[i] != CLS && x[i] != SEP;
      p += lab[i] != PB_MLM_IGNORE;
    }
    int want = (int)floor(0.15 * c + 0.5);
    if (want < 1) want = 1;
    rows_bad += p != want;
  }
  CHECK(rows_bad == 0, "%d rows with a wrong number of picks", rows_bad);
  CHECK(pb_mlm_max_per_row(MT, 0.15f) == 6, "max per row");
  /* determinism and seed dependence */
  pb_mlm_mask(x, mk, MB, MT, MV, MASK, special, 3, 0.15f, 0, 11, o2, lab2);
  CHECK(memcmp(o, o2, sizeof(int) * MB * MT) == 0 && memcmp(lab, lab2, sizeof(int) * MB * MT) == 0,
        "same seed gives different masks");
  pb_mlm_mask(x, mk, MB, MT, MV, MASK, special, 3, 0.15f, 0, 12, o2, lab2);
  CHECK(memcmp(lab, lab2, sizeof(int) * MB * MT) != 0, "another seed gives the same mask");
  CHECK(pb_mlm_mask(x, mk, MB, MT, MV, MV, special, 3, 0.15f, 0, 1, o2, lab2) == PB_ERR_ARG, "bad mask id accepted");
  free(x), free(mk), free(o), free(lab), free(o2), free(lab2);
}

static void training_reduces_loss(void) {
  pb_model m;
  pb_mlm h;
  if (build(&m, &h, 0.1f)) {
    CHECK(0, "build: %s", pb_last_error());
    return;
  }
  make_batch();
  pb_adamw o;
  pb_adamw_defaults(&o);
  o.lr = 3e-3f;
  int special[3] = {PAD, CLS, SEP};
  float first = 0, last = 0;
  for (int step = 1; step <= 150; step++) {
    if (pb_mlm_mask(ids, mask, B, T, V, MASK, special, 3, 0.3f, 0, (uint64_t)step, in_ids, labels) < 0) break;
    float loss;
    pb_params_zero_grad(&m.params);
    int rc = pb_forward(&m, in_ids, NULL, mask, B, T, NULL, NULL, 1, (uint64_t)step, NULL);
    if (!rc) rc = pb_mlm_forward(&h, &m, labels, &loss);
    if (!rc) rc = pb_mlm_backward(&h, &m);
    if (!rc) rc = pb_adamw_step(&m.params, &o, step);
    if (rc) {
      CHECK(0, "step %d: %s", step, pb_last_error());
      break;
    }
    if (step <= 10) first += loss / 10;
    if (step > 140) last += loss / 10;
  }
  printf("training on a repeated batch: mean loss steps 1-10 %.4f, steps 141-150 %.4f (must fall by > 40%%)\n", first,
         last);
  CHECK(last < 0.6f * first, "loss did not fall: %.4f -> %.4f", first, last);
  pb_mlm_free(&h);
  pb_model_free(&m);
}

/* MLM + next-sentence loss (BertForPreTraining): finite differences of every head tensor,
 * the pooler, the token-type embeddings and a sample of the encoder; the combined backward
 * is pb_mlm_backward_head + pb_nsp_backward + pb_backward_hidden, as pretrain does. */
static int types[B * T], nsp_lab[B];

static float joint_loss(pb_model *m, pb_mlm *h, pb_nsp *n) {
  float l1 = NAN, l2 = NAN;
  int rc = pb_forward(m, in_ids, types, mask, B, T, NULL, NULL, 0, 0, NULL);
  if (!rc) rc = pb_mlm_forward(h, m, labels, &l1);
  if (!rc) rc = pb_nsp_forward(n, m, nsp_lab, &l2);
  if (rc) printf("forward failed: %s\n", pb_last_error());
  return l1 + l2;
}

static void gradcheck_nsp(void) {
  pb_model m;
  pb_mlm h;
  pb_nsp n;
  pb_config c;
  tiny(&c);
  c.hidden_dropout = c.attn_dropout = 0.0f;
  int rc = pb_model_declare(&m, &c);
  if (!rc) rc = pb_mlm_declare(&h, &m);
  if (!rc) rc = pb_nsp_declare(&n, &m);
  for (int i = 0; !rc && i < m.params.n; i++) m.params.t[i].trainable = 1;
  m.params.t[m.cls_w].trainable = m.params.t[m.cls_b].trainable = 0;
  if (!rc) rc = pb_model_alloc(&m, B, T);
  if (!rc) rc = pb_mlm_alloc(&h, &m, B * T);
  if (!rc) rc = pb_nsp_alloc(&n, &m);
  if (rc) {
    CHECK(0, "build: %s", pb_last_error());
    return;
  }
  pb_model_init_random(&m, 43);
  pb_rng r; /* continued below: the entries of the finite-difference check */
  pb_rng_seed(&r, 8);
  for (int i = 0; i < m.params.n; i++) {
    pb_tensor *t = &m.params.t[i];
    if (t->ndim == 1)
      for (size_t j = 0; j < t->numel; j++) t->data[j] += 0.2f * pb_rng_normal(&r);
  }
  CHECK(strcmp(m.params.t[n.w].name, "cls.seq_relationship.weight") == 0, "seq_relationship weight not declared");
  make_batch();
  int special[3] = {PAD, CLS, SEP};
  pb_mlm_mask(ids, mask, B, T, V, MASK, special, 3, 0.5f, 0, 6, in_ids, labels);
  for (int b = 0; b < B; b++) {
    nsp_lab[b] = b % 2;
    for (int t = 0; t < T; t++) types[b * T + t] = t >= T / 2;
  }
  pb_params_zero_grad(&m.params);
  joint_loss(&m, &h, &n);
  rc = pb_mlm_backward_head(&h, &m);
  if (!rc) rc = pb_nsp_backward(&n, &m, h.dout);
  if (!rc) rc = pb_backward_hidden(&m, h.dout);
  CHECK(rc == PB_OK, "backward: %s", pb_last_error());
  const float eps = 1e-2f;
  double worst = 0;
  char worst_name[PB_NAME_MAX + 64] = "";
  int checked = 0;
  for (int i = 0; i < m.params.n; i++) {
    pb_tensor *t = &m.params.t[i];
    if (!t->trainable) continue;
    int deep = strncmp(t->name, "cls.seq_relationship", 20) == 0 || i == m.pool_w || i == m.pool_b ||
               strstr(t->name, "token_type") != NULL;
    int cnt = deep ? 10 : 2;
    for (int k = 0; k < cnt; k++) {
      size_t j = (size_t)pb_rng_below(&r, t->numel);
      float keep = t->data[j];
      t->data[j] = keep + eps;
      double lp = joint_loss(&m, &h, &n);
      t->data[j] = keep - eps;
      double lm = joint_loss(&m, &h, &n);
      t->data[j] = keep;
      double fd = (lp - lm) / (2 * eps), g = t->grad[j];
      double err = fabs(g - fd) / (2e-3 + 3e-2 * fabs(fd));
      checked++;
      if (err > worst) {
        worst = err;
        snprintf(worst_name, sizeof worst_name, "%s[%zu] grad %.6g fd %.6g", t->name, j, g, fd);
      }
    }
  }
  printf("gradcheck (MLM + NSP heads, pooler, token types, encoder): %d entries, worst normalised error %.3f at %s "
         "(must be <= 1)\n", checked, worst, worst_name);
  CHECK(worst <= 1.0, "gradient mismatch: %s", worst_name);
  double gp = 0;
  for (size_t j = 0; j < m.params.t[m.pool_w].numel; j++) gp += fabs(m.params.t[m.pool_w].grad[j]);
  CHECK(gp > 0.0, "the pooler got no gradient from the NSP loss");
  int bad[B] = {0, 2, 1};
  CHECK(pb_nsp_forward(&n, &m, bad, NULL) == PB_ERR_ARG, "NSP label 2 must fail");
  pb_nsp_free(&n);
  pb_mlm_free(&h);
  pb_model_free(&m);
}

/* whole-word masking: words (a start + its "##" pieces) are picked whole, the count per row
 * stays <= round(0.15 * candidates) and near it on average, 80/10/10 per token, deterministic */
static void wwm_stats(void) {
  enum { MB = 1500, MT = 40, MV = 1000 };
  unsigned char cont[MV];
  for (int i = 0; i < MV; i++) cont[i] = i >= 600; /* ids >= 600 are "##" pieces */
  int *x = malloc(sizeof(int) * MB * MT), *mk = malloc(sizeof(int) * MB * MT);
  int *o = malloc(sizeof(int) * MB * MT), *lab = malloc(sizeof(int) * MB * MT);
  int *o2 = malloc(sizeof(int) * MB * MT), *lab2 = malloc(sizeof(int) * MB * MT);
  pb_rng r;
  pb_rng_seed(&r, 4);
  for (int b = 0; b < MB; b++) {
    int len = 8 + (int)pb_rng_below(&r, MT - 8);
    for (int t = 0; t < MT; t++) {
      int id = pb_rng_uniform(&r) < 0.3f ? 600 + (int)pb_rng_below(&r, 400) : 10 + (int)pb_rng_below(&r, 590);
      if (t == 0) id = CLS;
      else if (t == len - 1) id = SEP;
      x[b * MT + t] = t < len ? id : PAD;
      mk[b * MT + t] = t < len;
    }
  }
  int special[3] = {PAD, CLS, SEP};
  int np = pb_mlm_mask_wwm(x, mk, MB, MT, MV, MASK, special, 3, cont, 0.15f, 21, o, lab);
  long picked = 0, to_mask = 0, split_words = 0, over = 0, bad = 0;
  double want_sum = 0;
  for (int b = 0; b < MB; b++) {
    int c = 0, p = 0;
    for (int t = 0; t < MT; t++) {
      int i = b * MT + t;
      int cand = mk[i] && x[i] != CLS && x[i] != SEP;
      c += cand;
      if (lab[i] == PB_MLM_IGNORE) continue;
      p++;
      if (!cand || lab[i] != x[i]) bad++;
      to_mask += o[i] == MASK;
      /* a picked piece's neighbours within the same word are picked too */
      if (t + 1 < MT && mk[i + 1] && cont[x[i + 1]] && x[i + 1] != SEP && lab[i + 1] == PB_MLM_IGNORE) split_words++;
      if (cont[x[i]] && t > 1 && x[i - 1] != CLS && lab[i - 1] == PB_MLM_IGNORE) split_words++;
    }
    int want = (int)floor(0.15 * c + 0.5);
    if (want < 1) want = 1;
    over += p > want;
    picked += p;
    want_sum += want;
  }
  printf("whole-word masking: %ld picked (%.3f of the per-row targets), [MASK] %.3f, split words %ld\n", picked,
         picked / want_sum, (double)to_mask / picked, split_words);
  CHECK(np == picked, "returned %d, labels %ld", np, picked);
  CHECK(bad == 0 && over == 0 && split_words == 0, "bad %ld, rows over target %ld, split words %ld", bad, over, split_words);
  CHECK(picked > 0.9 * want_sum, "whole-word masking picks too few (%.3f of target)", picked / want_sum);
  CHECK(fabs((double)to_mask / picked - 0.8) < 0.02, "[MASK] share off");
  pb_mlm_mask_wwm(x, mk, MB, MT, MV, MASK, special, 3, cont, 0.15f, 21, o2, lab2);
  CHECK(memcmp(o, o2, sizeof(int) * MB * MT) == 0 && memcmp(lab, lab2, sizeof(int) * MB * MT) == 0,
        "same seed gives different whole-word masks");
  free(x), free(mk), free(o), free(lab), free(o2), free(lab2);
}

int main(void) {
  gradcheck();
  gradcheck_nsp();
  wwm_stats();
  masking_stats();
  training_reduces_loss();
  if (failures) {
    printf("test_mlm: %d failure(s)\n", failures);
    return 1;
  }
  printf("test_mlm: all checks passed\n");
  return 0;
}
