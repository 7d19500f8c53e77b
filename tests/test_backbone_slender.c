/* Slenderised backbones (COST-EFF, Shen et al. 2022): attention heads pruned with the hidden size
 * kept (pb_model_set_shape: query/key/value [a,d], attention output [d,a], a = heads * head_dim),
 * pruned FFN widths, and word embeddings factorised as E [V,r] P [d,r] (pb_model_factor_word).
 *  - a tiny model (d 8): set 1 at 2 heads x 3 (a 6 < d) with FFN 10, set 2 at 3 heads x 4
 *    (a 12 > d), word rank 3: exact parameter count from the shapes, finite-difference gradients
 *    of every tensor, counting-only count == the instrumented count of a training step (dropout
 *    on) and of an inference forward, the shared-buffer inference allocation gives the logits of
 *    the training allocation bit for bit, an HF-style save loads back;
 *  - closed form: backbone MACs of an inference forward at bert-base shape with 6 heads of 64,
 *    FFN 1536 in every set and word rank 384, computed here from the shapes;
 *  - the default shape written through pb_model_set_shape is the model without the call, bit for
 *    bit (loss, logits, every gradient, counts, activation size);
 *  - bad arguments refused (head_dim 0, set out of range, rank >= d, calls after alloc / attach),
 *    and (IA)^3 / prefix tuning refuse pruned heads;
 *  - a key/value prefix hook gives rows of each step's width a: finite differences, counts;
 *  - LoRA on query, value and attn_out over pruned heads: its tensors take a (A [r,d], B [a,r]
 *    at query/value, A [r,a] at attn_out), finite differences pass, and merge gives the unmerged
 *    logits. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <unistd.h>

#include "backbone/bert.h"
#include "backbone/checkpoint.h"
#include "backbone/ops.h"
#include "util/status.h"
#include "counters/opcount.h"
#include "methods/method.h"
#include "tests/check.h"

enum { B = 4, T = 5, C = 3, V = 31, D = 8, RANK = 3, L = 3 };
static int ids[B * T], types[B * T], mask[B * T], labels[B];

static void tiny(pb_config *c, float dropout) {
  memset(c, 0, sizeof *c);
  c->vocab_size = V;
  c->hidden = D;
  c->layers = L;
  c->heads = 2;
  c->ffn = 12;
  c->max_pos = 8;
  c->type_vocab = 2;
  c->ln_eps = 1e-12f;
  c->hidden_dropout = dropout;
  c->attn_dropout = dropout;
  c->init_range = 0.3f;
  c->num_labels = C;
}

static void make_batch(void) {
  for (int b = 0; b < B; b++) {
    const int len = T - (b % 2);
    for (int t = 0; t < T; t++) {
      ids[b * T + t] = t < len ? (5 * b + 3 * t + 2) % V : 0;
      types[b * T + t] = t >= 2 && t < len;
      mask[b * T + t] = t < len;
    }
    labels[b] = b % C;
  }
}

/* the slender shapes: set 1 a = 6 < d with FFN 10, set 2 a = 12 > d */
static const pb_width set1 = {.hidden = D, .heads = 2, .head_dim = 3, .ffn = 10};
static const pb_width set2 = {.hidden = D, .heads = 3, .head_dim = 4, .ffn = 12};

static void declare_slender(pb_model *m, float dropout) {
  pb_config c;
  tiny(&c, dropout);
  CHECK_OK(pb_model_declare(m, &c));
  CHECK_OK(pb_model_set_shape(m, 1, set1));
  CHECK_OK(pb_model_set_shape(m, 2, set2));
  CHECK_OK(pb_model_factor_word(m, RANK));
}

static void all_trainable(pb_model *m) {
  for (int i = 0; i < m->params.n; i++) m->params.t[i].trainable = 1;
}

static size_t n_params(const pb_model *m) {
  size_t n = 0;
  for (int i = 0; i < m->params.n; i++) n += m->params.t[i].numel;
  return n;
}

static float loss_of(pb_model *m) {
  float loss = NAN;
  if (pb_forward(m, ids, types, mask, B, T, labels, NULL, 0, 0, &loss)) printf("forward: %s\n", pb_last_error());
  return loss;
}

/* central differences (fp32, eps 1e-2) on 4 sampled entries of every trainable tensor (the word
 * embedding at rows the batch uses); returns the largest |g - fd|. Measured: max |g - fd| 9.7e-6
 * over the slender model, 2.4e-5 (relative 8e-4) with the projection alone, hence 5e-5 abs or
 * 2e-3 rel; LoRA over it (B perturbed, scale 2) 1.2e-4 and with a key/value prefix 2.5e-4 (on
 * entries within 2e-3 relative; it falls to ~5e-5 at eps 3e-3: the difference quotient's own
 * error), hence 1.5e-4 abs or 2e-3 rel for those two, as tests/test_backbone_v2.c. */
static double gradcheck(pb_model *m, const char *what, double atol, double rtol) {
  const int rows[4] = {ids[1], ids[4], ids[7], ids[10]}; /* word rows the batch uses */
  return check_model_gradients(m, loss_of, rows, 4, 1e-2f, atol, rtol, what);
}

static int counts_equal(const pb_opcounts *a, const pb_opcounts *b, const char *what) {
  int same = 1;
  for (int o = 0; o < PB_OPO_COUNT; o++)
    for (int k = 0; k < PB_OPK_COUNT; k++)
      if (a->c[o][k] != b->c[o][k]) {
        same = 0;
        printf("  %s: %s %s %llu vs %llu\n", what, pb_opowner_name(o), pb_opkind_name(k),
               (unsigned long long)a->c[o][k], (unsigned long long)b->c[o][k]);
      }
  return same;
}

/* ---------------------------------------------------------------- the tiny slender model */

static void slender_tiny(void) {
  pb_model m;
  declare_slender(&m, 0.0f);
  CHECK(pb_model_word_rank(&m) == RANK && m.word_proj >= 0, "word rank %d", pb_model_word_rank(&m));
  CHECK(!pb_model_width_uniform(&m), "a pruned model reads as uniform");
  CHECK(pb_width_attn(pb_model_step_width(&m, 1)) == 6 && pb_width_attn(pb_model_step_width(&m, 0)) == D,
        "attention widths not recorded");
  const pb_tensor *q1 = &m.params.t[m.layer[1].qw], *o1 = &m.params.t[m.layer[1].ow], *w = &m.params.t[m.word];
  const pb_tensor *pj = &m.params.t[m.word_proj];
  CHECK(q1->shape[0] == 6 && q1->shape[1] == D && o1->shape[0] == D && o1->shape[1] == 6 &&
            m.params.t[m.layer[1].vb].shape[0] == 6 && m.params.t[m.layer[1].iw].shape[0] == 10,
        "set 1 shapes: query [%d,%d], output [%d,%d]", q1->shape[0], q1->shape[1], o1->shape[0], o1->shape[1]);
  CHECK(w->shape[0] == V && w->shape[1] == RANK && pj->shape[0] == D && pj->shape[1] == RANK &&
            pj->owner == PB_OWNER_BACKBONE && strcmp(pj->name, "bert.embeddings.word_embeddings_proj.weight") == 0,
        "factorised embedding shapes [%d,%d] / [%d,%d]", w->shape[0], w->shape[1], pj->shape[0], pj->shape[1]);
  /* parameters from the shapes */
  const pb_width sets[L] = {{.hidden = D, .heads = 2, .head_dim = 4, .ffn = 12}, set1, set2};
  size_t expect = (size_t)V * RANK + (size_t)D * RANK + 8 * D + 2 * D + 2 * D; /* E, P, position, type, LN */
  for (int l = 0; l < L; l++) {
    const size_t d = D, a = (size_t)pb_width_attn(sets[l]), F = (size_t)sets[l].ffn;
    expect += 3 * (a * d + a) + (d * a + d) + 2 * d + (F * d + F) + (d * F + d) + 2 * d;
  }
  expect += D * D + D + C * D + C; /* pooler, classifier */
  printf("slender tiny: %zu parameters (expected %zu)\n", n_params(&m), expect);
  CHECK(n_params(&m) == expect, "slender parameters %zu, expected %zu", n_params(&m), expect);
  /* gradients of every tensor */
  all_trainable(&m);
  CHECK_OK(pb_model_alloc(&m, B, T));
  pb_model_init_random(&m, 61);
  pb_test_perturb(&m, 62, 1);
  gradcheck(&m, "slender gradcheck (a 8 | 6 | 12, F 12 | 10 | 12, word rank 3)", 5e-5, 2e-3);
  pb_model_free(&m);

  /* counts: counting-only == instrumented, a training step with dropout and an inference forward */
  declare_slender(&m, 0.1f);
  all_trainable(&m);
  pb_opcounts counted = {0}, counted_inf = {0};
  CHECK_OK(pb_model_count(&m, B, T, PB_COUNT_TRAIN, &counted));
  CHECK_OK(pb_model_count(&m, B, T, PB_COUNT_INFER, &counted_inf));
  CHECK_OK(pb_model_alloc(&m, B, T));
  pb_model_init_random(&m, 63);
  pb_opc_reset();
  pb_opc_enable(1);
  float loss;
  CHECK_OK(pb_forward(&m, ids, types, mask, B, T, labels, NULL, 1, 99, &loss));
  CHECK_OK(pb_backward(&m));
  pb_opc_enable(0);
  pb_opcounts real = pb_opc_snapshot();
  CHECK(counts_equal(&real, &counted, "train"), "slender: counting-only training count differs from the real step");
  pb_opc_reset();
  pb_opc_enable(1);
  CHECK_OK(pb_forward(&m, ids, types, mask, B, T, NULL, NULL, 0, 0, NULL));
  pb_opc_enable(0);
  real = pb_opc_snapshot();
  CHECK(counts_equal(&real, &counted_inf, "infer"), "slender: counting-only inference count differs");
  /* backbone MACs of that forward from the shapes: E P^T, then per step q,k,v,o, FFN, attention */
  {
    const uint64_t N = B * T;
    uint64_t mac = N * RANK * D;
    for (int l = 0; l < L; l++) {
      const uint64_t a = (uint64_t)pb_width_attn(sets[l]), F = (uint64_t)sets[l].ffn;
      mac += N * (3 * D * a + a * D + 2 * D * F) + 2 * N * T * a;
    }
    CHECK(pb_opcounts_kind(&counted_inf, PB_OPO_BACKBONE, PB_OPK_MAC) == mac, "tiny backbone MACs %llu, expected %llu",
          (unsigned long long)pb_opcounts_kind(&counted_inf, PB_OPO_BACKBONE, PB_OPK_MAC), (unsigned long long)mac);
    printf("slender tiny counts: training step = counting-only run; inference backbone MACs %llu (closed form %llu)\n",
           (unsigned long long)pb_opcounts_kind(&counted_inf, PB_OPO_BACKBONE, PB_OPK_MAC), (unsigned long long)mac);
  }
  /* the shared-buffer inference allocation (sets of different a and F share two buffer sets) */
  {
    pb_model s;
    declare_slender(&s, 0.1f);
    CHECK_OK(pb_model_alloc_infer(&s, B, T));
    CHECK(s.infer_only, "no shared buffers");
    for (int i = 0; i < s.params.n; i++)
      memcpy(s.params.t[i].data, m.params.t[i].data, s.params.t[i].numel * sizeof(float));
    CHECK_OK(pb_forward(&m, ids, types, mask, B, T, NULL, NULL, 0, 0, NULL));
    CHECK_OK(pb_forward(&s, ids, types, mask, B, T, NULL, NULL, 0, 0, NULL));
    CHECK(memcmp(s.acts.logits, m.acts.logits, B * C * sizeof(float)) == 0,
          "inference allocation logits differ from the training allocation's");
    pb_model_free(&s);
  }
  /* an HF-style folder of the slender model loads back into one of the same shapes */
  {
    pb_model s;
    declare_slender(&s, 0.1f);
    CHECK_OK(pb_model_alloc(&s, B, T));
    char dir[] = "/tmp/pb_test_slender_XXXXXX";
    CHECK(mkdtemp(dir) != NULL, "mkdtemp");
    CHECK_OK(pb_model_save_hf(&m, dir));
    CHECK_OK(pb_model_load_hf(&s, dir));
    int same = 1;
    for (int i = 0; i < s.params.n; i++)
      same &= memcmp(s.params.t[i].data, m.params.t[i].data, s.params.t[i].numel * sizeof(float)) == 0;
    CHECK(same, "the slender model did not load back bit for bit");
    char path[96];
    snprintf(path, sizeof path, "%s/model.safetensors", dir);
    unlink(path);
    snprintf(path, sizeof path, "%s/config.json", dir);
    unlink(path);
    rmdir(dir);
    pb_model_free(&s);
  }
  pb_model_free(&m);

  /* only the projection trains (E frozen), then only E: each gets its gradient, the other none */
  for (int which = 0; which < 2; which++) {
    declare_slender(&m, 0.0f);
    m.params.t[which ? m.word : m.word_proj].trainable = 1;
    CHECK_OK(pb_model_alloc(&m, B, T));
    pb_model_init_random(&m, 64);
    pb_test_perturb(&m, 65, 1);
    gradcheck(&m, which ? "word E alone (P frozen)" : "word projection P alone (E frozen)", 5e-5, 2e-3);
    CHECK(!m.params.t[which ? m.word_proj : m.word].grad, "a frozen tensor got a gradient");
    pb_model_free(&m);
  }
}

/* ---------------------------------------------------------------- closed form at bert-base */

static void bert_base_closed_form(void) {
  pb_config c;
  pb_config_bert_base(&c, 2);
  pb_model m;
  CHECK_OK(pb_model_declare(&m, &c));
  const pb_width w = {.hidden = 768, .heads = 6, .head_dim = 64, .ffn = 1536};
  for (int l = 0; l < c.layers; l++) CHECK_OK(pb_model_set_shape(&m, l, w));
  CHECK_OK(pb_model_factor_word(&m, 384));
  pb_opcounts oc = {0};
  const int TT = 128;
  CHECK_OK(pb_model_count(&m, 1, TT, PB_COUNT_INFER, &oc));
  const uint64_t d = 768, a = 384, F = 1536, r = 384, Lc = 12, t = TT;
  const uint64_t per_token_layer = 3 * d * a + a * d + 2 * d * F + 2 * t * a;
  const uint64_t expect = t * r * d + Lc * t * per_token_layer;
  const uint64_t got = pb_opcounts_kind(&oc, PB_OPO_BACKBONE, PB_OPK_MAC);
  printf("bert-base slender (6 heads x 64, FFN 1536, word rank 384), T=128 inference: %llu backbone MACs, closed form "
         "%llu; head %llu MACs\n",
         (unsigned long long)got, (unsigned long long)expect,
         (unsigned long long)pb_opcounts_kind(&oc, PB_OPO_HEAD, PB_OPK_MAC));
  CHECK(got == expect, "bert-base slender backbone MACs %llu, closed form %llu", (unsigned long long)got,
        (unsigned long long)expect);
  CHECK(pb_opcounts_kind(&oc, PB_OPO_HEAD, PB_OPK_MAC) == d * d + 2 * d, "head MACs");
  /* parameters: E, P, position, type, embedding LN, 12 sets, pooler, classifier */
  const uint64_t set = 3 * (a * d + a) + (d * a + d) + 2 * d + (F * d + F) + (d * F + d) + 2 * d;
  const uint64_t params = 30522 * r + d * r + 512 * d + 2 * d + 2 * d + Lc * set + d * d + d + 2 * d + 2;
  CHECK(n_params(&m) == params, "bert-base slender parameters %zu, expected %llu", n_params(&m),
        (unsigned long long)params);
  printf("bert-base slender: %zu parameters\n", n_params(&m));
  pb_model_free(&m);
}

/* ---------------------------------------------------------------- the default, bit for bit */

static void default_unchanged(void) {
  pb_config c;
  tiny(&c, 0.1f);
  pb_model p, q, s;
  CHECK_OK(pb_model_declare(&p, &c));
  CHECK_OK(pb_model_declare(&q, &c));
  CHECK_OK(pb_model_declare(&s, &c));
  for (int l = 0; l < L; l++) CHECK_OK(pb_model_set_shape(&q, l, pb_model_step_width(&p, l)));
  CHECK_OK(pb_model_set_width(&s, 0, c.hidden, c.heads, c.ffn));
  CHECK(pb_model_width_uniform(&q) && pb_model_width_uniform(&s) && pb_model_word_rank(&q) == 0 &&
            pb_model_step_width(&p, 0).head_dim == c.hidden / c.heads,
        "the default shape reads as changed");
  pb_model *ms[3] = {&p, &q, &s};
  for (int k = 0; k < 3; k++) {
    all_trainable(ms[k]);
    CHECK_OK(pb_model_alloc(ms[k], B, T));
    pb_model_init_random(ms[k], 71);
    pb_test_perturb(ms[k], 72, 1);
    pb_params_zero_grad(&ms[k]->params);
  }
  CHECK(p.act_floats == q.act_floats && p.act_floats == s.act_floats && p.params.n == q.params.n,
        "activation block %zu vs %zu / %zu floats", p.act_floats, q.act_floats, s.act_floats);
  float lp, lq, ls;
  CHECK_OK(pb_forward(&p, ids, types, mask, B, T, labels, NULL, 1, 5, &lp));
  CHECK_OK(pb_forward(&q, ids, types, mask, B, T, labels, NULL, 1, 5, &lq));
  CHECK_OK(pb_forward(&s, ids, types, mask, B, T, labels, NULL, 1, 5, &ls));
  CHECK_OK(pb_backward(&p));
  CHECK_OK(pb_backward(&q));
  CHECK_OK(pb_backward(&s));
  int same = lp == lq && lp == ls && memcmp(p.acts.logits, q.acts.logits, B * C * sizeof(float)) == 0 &&
             memcmp(p.acts.logits, s.acts.logits, B * C * sizeof(float)) == 0;
  for (int i = 0; i < p.params.n; i++) {
    const size_t n = p.params.t[i].numel * sizeof(float);
    same &= memcmp(p.params.t[i].shape, q.params.t[i].shape, sizeof p.params.t[i].shape) == 0 &&
            memcmp(p.params.t[i].grad, q.params.t[i].grad, n) == 0 && memcmp(p.params.t[i].grad, s.params.t[i].grad, n) == 0;
  }
  CHECK(same, "the default shape through pb_model_set_shape / set_width is not bit-identical");
  pb_opcounts cp = {0}, cq = {0};
  CHECK_OK(pb_model_count(&p, B, T, PB_COUNT_TRAIN, &cp));
  CHECK_OK(pb_model_count(&q, B, T, PB_COUNT_TRAIN, &cq));
  CHECK(counts_equal(&cp, &cq, "default"), "the default shape's count changed");
  printf("default shape through set_shape / set_width: loss %.9g, logits, gradients and counts bit-identical\n", lp);
  pb_model_free(&p);
  pb_model_free(&q);
  pb_model_free(&s);
}

/* ---------------------------------------------------------------- refusals */

static const pb_hook_ops no_hooks = {.version = PB_HOOKS_VERSION};

static void bad_arguments(void) {
  pb_config c;
  tiny(&c, 0.0f);
  pb_model m;
  CHECK_OK(pb_model_declare(&m, &c));
  pb_width w = set1;
  w.head_dim = 0;
  CHECK(pb_model_set_shape(&m, 1, w) == PB_ERR_ARG, "head_dim 0 accepted");
  printf("head_dim 0: %s\n", pb_last_error());
  w = set1;
  w.heads = -1;
  CHECK(pb_model_set_shape(&m, 1, w) == PB_ERR_ARG, "heads -1 accepted");
  w = set1;
  w.ffn = 0;
  CHECK(pb_model_set_shape(&m, 1, w) == PB_ERR_ARG, "ffn 0 accepted");
  CHECK(pb_model_set_shape(&m, L, set1) == PB_ERR_ARG, "set %d of %d accepted", L, L);
  CHECK(pb_model_set_shape(&m, -1, set1) == PB_ERR_ARG, "set -1 accepted");
  printf("set out of range: %s\n", pb_last_error());
  CHECK(pb_model_factor_word(&m, D) == PB_ERR_ARG, "rank d accepted");
  printf("rank = d: %s\n", pb_last_error());
  CHECK(pb_model_factor_word(&m, 0) == PB_ERR_ARG, "rank 0 accepted");
  CHECK(pb_model_factor_word(&m, 100) == PB_ERR_ARG, "rank 100 accepted");
  CHECK(pb_model_word_rank(&m) == 0 && m.params.t[m.word].shape[1] == D, "a refused rank changed the model");
  /* a second factor_word changes the rank (one projection tensor) */
  CHECK_OK(pb_model_factor_word(&m, 2));
  const int n = m.params.n;
  CHECK_OK(pb_model_factor_word(&m, RANK));
  CHECK(m.params.n == n && m.params.t[m.word_proj].shape[1] == RANK && m.params.t[m.word].shape[1] == RANK,
        "a second factor_word did not just change the rank");
  /* after a hook was added (a method attached) and after allocation */
  pb_model h;
  CHECK_OK(pb_model_declare(&h, &c));
  CHECK_OK(pb_model_add_hooks(&h, &no_hooks, NULL));
  CHECK(pb_model_set_shape(&h, 1, set1) == PB_ERR_ARG, "set_shape after a method attached accepted");
  CHECK(pb_model_factor_word(&h, RANK) == PB_ERR_ARG, "factor_word after a method attached accepted");
  pb_model_free(&h);
  CHECK_OK(pb_model_alloc(&m, B, T));
  CHECK(pb_model_set_shape(&m, 1, set1) == PB_ERR_ARG, "set_shape after alloc accepted");
  printf("set_shape after alloc: %s\n", pb_last_error());
  CHECK(pb_model_factor_word(&m, 2) == PB_ERR_ARG, "factor_word after alloc accepted");
  printf("factor_word after alloc: %s\n", pb_last_error());
  CHECK(pb_model_set_width(&m, 1, D, 2, 10) == PB_ERR_ARG, "set_width after alloc accepted");
  pb_model_free(&m);
  /* (IA)^3 and prefix tuning refuse pruned heads; LoRA and the adapter attach */
  const char *names[] = {"ia3", "prefix", "lora", "adapter"};
  for (int i = 0; i < 4; i++) {
    pb_method_inst in;
    CHECK_OK(pb_model_declare(&m, &c));
    CHECK_OK(pb_model_set_shape(&m, 1, set1));
    CHECK_OK(pb_method_create(&in, names[i], NULL));
    const int rc = in.m->attach(in.ctx, &m);
    if (i < 2) {
      CHECK(rc == PB_ERR_UNSUPPORTED, "%s attached to pruned heads (%d)", names[i], rc);
      printf("%s over pruned heads: %s\n", names[i], pb_last_error());
    } else {
      CHECK(rc == PB_OK, "%s over pruned heads: %s", names[i], pb_last_error());
      if (!rc) CHECK_OK(pb_model_alloc(&m, B, T));
      if (!rc) CHECK_OK(pb_forward(&m, ids, types, mask, B, T, labels, NULL, 1, 3, NULL));
    }
    pb_method_destroy(&in);
    pb_model_free(&m);
  }
}

/* ---------------------------------------------------------------- a key/value prefix a wide */

/* kv_prefix: NP rows [NP, a_l] of keys and values per step, trainable method tensors */
enum { NP = 2 };
typedef struct {
  pb_model *m;
  int k[L], v[L];
} kvp_ctx;
static int kvp_fwd(void *vc, int l, const float **k, const float **v, int *P) {
  kvp_ctx *c = vc;
  *P = NP;
  if (k) *k = pb_w(c->m, c->k[l]);
  if (v) *v = pb_w(c->m, c->v[l]);
  return PB_OK;
}
static int kvp_bwd(void *vc, int l, const float *dk, const float *dv, int P) {
  kvp_ctx *c = vc;
  const size_t n = (size_t)P * c->m->params.t[c->k[l]].shape[1];
  if (pb_g(c->m, c->k[l])) pb_add(pb_g(c->m, c->k[l]), pb_g(c->m, c->k[l]), dk, n);
  if (pb_g(c->m, c->v[l])) pb_add(pb_g(c->m, c->v[l]), pb_g(c->m, c->v[l]), dv, n);
  return PB_OK;
}
static const pb_hook_ops kvp_hooks = {.version = PB_HOOKS_VERSION, .kv_prefix = kvp_fwd, .kv_prefix_bwd = kvp_bwd};

static void prefix_pruned(void) {
  pb_model m;
  declare_slender(&m, 0.0f);
  all_trainable(&m);
  kvp_ctx c = {.m = &m};
  char name[64];
  for (int l = 0; l < L; l++) {
    const int shape[2] = {NP, pb_width_attn(pb_model_step_width(&m, l))};
    snprintf(name, sizeof name, "kvp.%d.key", l);
    c.k[l] = pb_params_add(&m.params, name, PB_OWNER_METHOD, 2, shape, PB_INIT_NORMAL, 0.3f);
    snprintf(name, sizeof name, "kvp.%d.value", l);
    c.v[l] = pb_params_add(&m.params, name, PB_OWNER_METHOD, 2, shape, PB_INIT_NORMAL, 0.3f);
    CHECK(c.k[l] >= 0 && c.v[l] >= 0, "declare: %s", pb_last_error());
    m.params.t[c.k[l]].trainable = m.params.t[c.v[l]].trainable = 1;
  }
  CHECK_OK(pb_model_add_hooks(&m, &kvp_hooks, &c));
  pb_opcounts counted = {0};
  CHECK_OK(pb_model_count(&m, B, T, PB_COUNT_TRAIN, &counted));
  CHECK_OK(pb_model_alloc(&m, B, T));
  pb_model_init_random(&m, 91);
  pb_test_perturb(&m, 92, 1);
  gradcheck(&m, "key/value prefix rows of width a (8 | 6 | 12)", 1.5e-4, 2e-3);
  pb_opc_reset();
  pb_opc_enable(1);
  CHECK_OK(pb_forward(&m, ids, types, mask, B, T, labels, NULL, 0, 0, NULL));
  CHECK_OK(pb_backward(&m));
  pb_opc_enable(0);
  pb_opcounts real = pb_opc_snapshot();
  CHECK(counts_equal(&real, &counted, "prefix"), "prefix over pruned heads: counting-only count differs");
  pb_model_free(&m);
}

/* ---------------------------------------------------------------- LoRA over pruned heads */

static void lora_pruned(void) {
  pb_model m;
  declare_slender(&m, 0.0f);
  pb_method_inst in;
  const char *opts[] = {"r=2", "alpha=4", "targets=query,value,attn_out", NULL};
  CHECK_OK(pb_method_create(&in, "lora", opts));
  CHECK_OK(in.m->attach(in.ctx, &m));
  const int qa = pb_params_find(&m.params, "lora.layer.1.query.A"), qb = pb_params_find(&m.params, "lora.layer.1.query.B");
  const int oa = pb_params_find(&m.params, "lora.layer.2.attn_out.A");
  CHECK(qa >= 0 && qb >= 0 && oa >= 0, "lora tensors missing");
  if (qa >= 0 && qb >= 0 && oa >= 0)
    CHECK(m.params.t[qa].shape[1] == D && m.params.t[qb].shape[0] == 6 && m.params.t[oa].shape[1] == 12,
          "lora shapes: query A [%d,%d] B [%d,%d], attn_out A [%d,%d]", m.params.t[qa].shape[0],
          m.params.t[qa].shape[1], m.params.t[qb].shape[0], m.params.t[qb].shape[1], m.params.t[oa].shape[0],
          m.params.t[oa].shape[1]);
  CHECK_OK(pb_model_alloc(&m, B, T));
  pb_model_init_random(&m, 81);
  pb_test_perturb(&m, 82, 1); /* B away from 0: every LoRA gradient and the update itself matter */
  gradcheck(&m, "lora q,v,attn_out over pruned heads", 1.5e-4, 2e-3);
  /* merged: the same logits up to rounding */
  float plain[B * C];
  CHECK_OK(pb_forward(&m, ids, types, mask, B, T, NULL, NULL, 0, 0, NULL));
  memcpy(plain, m.acts.logits, sizeof plain);
  CHECK_OK(in.m->merge(in.ctx, &m));
  CHECK_OK(pb_forward(&m, ids, types, mask, B, T, NULL, NULL, 0, 0, NULL));
  double worst = 0;
  for (int i = 0; i < B * C; i++) worst = fmax(worst, fabs(plain[i] - m.acts.logits[i]));
  printf("lora over pruned heads: merged vs unmerged logits %.2e (must be < 1e-4)\n", worst);
  CHECK(worst < 1e-4, "merged lora logits differ by %.2e", worst);
  CHECK_OK(in.m->unmerge(in.ctx, &m));
  pb_method_destroy(&in);
  pb_model_free(&m);
}

int main(void) {
  make_batch();
  slender_tiny();
  bert_base_closed_form();
  default_unchanged();
  bad_arguments();
  prefix_pruned();
  lora_pruned();
  printf("%d checks, %d failures\n", checks, failures);
  return check_exit_status();
}
