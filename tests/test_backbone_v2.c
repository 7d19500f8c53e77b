/* The version-2 extension surface of the backbone, tested with hooks written here (no method):
 *  - layer plan: a model whose 4 steps share 2 weight sets equals, bit for bit, an unshared
 *    4-layer model holding copies of the sets; the shared set's gradient is the sum of the copies'
 *    gradients; its parameter count (computed here from the shapes) holds each set once; its op
 *    count equals the unshared model's; an alias finds the shared tensor (a checkpoint naming it
 *    so loads into it), counts it once, and may not take a used name; bad plans are refused;
 *  - a hook chain of a non-additive hook (linear_in at ffn_out, linear_out at key, embed) and an
 *    additive one (linear at query): finite-difference gradients of every backbone tensor through
 *    both, and the chain's rules (one hook per non-additive point, a full chain, versions);
 *  - after_layer: an exit head (pb_head_fwd/pb_head_bwd on step 0) adds a loss term in training
 *    (finite differences of its tensors and of the backbone), and in inference finishes the even
 *    rows at step 0: their logits are the exit head's, the others' are the plain forward's, the
 *    exit steps are recorded, and the op count of the real batch equals the sum over rows of
 *    pb_model_count_exit at each row's exit step;
 *  - width segments: steps 1-2 at width 6 over embeddings and step 0 at 8, through a width hook:
 *    exact parameter count, finite differences of every tensor, counting-only = real count, and a
 *    width change without a hook is refused. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <unistd.h>

#include "backbone/bert.h"
#include "backbone/checkpoint.h"
#include "backbone/ops.h"
#include "backbone/safetensors.h"
#include "util/status.h"
#include "counters/opcount.h"
#include "tests/check.h"

enum { B = 4, T = 5, C = 3 };
static int ids[B * T], types[B * T], mask[B * T], labels[B];

static void tiny(pb_config *c, int layers, float dropout) {
  memset(c, 0, sizeof *c);
  c->vocab_size = 31;
  c->hidden = 8;
  c->layers = layers;
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
      ids[b * T + t] = t < len ? (5 * b + 3 * t + 2) % 31 : 0;
      types[b * T + t] = t >= 2 && t < len;
      mask[b * T + t] = t < len;
    }
    labels[b] = b % C;
  }
}

static void all_trainable(pb_model *m) {
  for (int i = 0; i < m->params.n; i++) m->params.t[i].trainable = 1;
}

static float loss_of(pb_model *m) {
  float loss = NAN;
  if (pb_forward(m, ids, types, mask, B, T, labels, NULL, 0, 0, &loss)) printf("forward: %s\n", pb_last_error());
  return loss;
}

/* central differences (fp32, eps 1e-2) on sampled entries of every trainable tensor; returns the
 * worst share of the tolerance used (passes below 1). Measured: max |g - fd| 1.0e-4..2.0e-4 on
 * these 2-4 step models (relative 1.1e-3 at worst), hence 1.5e-4 abs or 2e-3 rel. */
static double gradcheck(pb_model *m, const char *what, double atol, double rtol) {
  return check_model_gradients(m, loss_of, ids, 3, 1e-2f, atol, rtol, what);
}

/* ---------------------------------------------------------------- layer plan */

static void layer_plan(void) {
  static const int plan[4] = {0, 0, 1, 1};
  pb_config cs, cu;
  tiny(&cs, 2, 0.1f);
  tiny(&cu, 4, 0.1f);
  pb_model s, u;
  CHECK_OK(pb_model_declare(&s, &cs));
  CHECK_OK(pb_model_set_plan(&s, 4, plan));
  CHECK_OK(pb_model_declare(&u, &cu));
  all_trainable(&s);
  all_trainable(&u);
  /* parameters: embeddings, two weight sets, pooler, head; each set once */
  const size_t V = 31, d = 8, F = 12, P = 8, layer = 4 * (d * d + d) + 2 * d + (F * d + F) + (d * F + d) + 2 * d;
  const size_t expect = V * d + P * d + 2 * d + 2 * d + 2 * layer + d * d + d + C * d + C;
  size_t n = 0;
  for (int i = 0; i < s.params.n; i++) n += s.params.t[i].numel;
  printf("plan 0,0,1,1: %d steps over %d weight sets, %zu parameters (expected %zu)\n", pb_model_steps(&s),
         s.cfg.layers, n, expect);
  CHECK(n == expect && pb_model_steps(&s) == 4, "shared parameters %zu, expected %zu", n, expect);
  /* op count of a training step: the same work as the unshared model */
  pb_opcounts oc_s = {0}, oc_u = {0};
  CHECK_OK(pb_model_count(&s, B, T, PB_COUNT_TRAIN, &oc_s));
  CHECK_OK(pb_model_count(&u, B, T, PB_COUNT_TRAIN, &oc_u));
  CHECK(memcmp(&oc_s, &oc_u, sizeof oc_s) == 0, "shared and unshared training counts differ");
  CHECK_OK(pb_model_alloc(&s, B, T));
  CHECK_OK(pb_model_alloc(&u, B, T));
  pb_model_init_random(&s, 11);
  pb_test_perturb(&s, 12, 0);
  /* u: the same embeddings/pooler/head, layer k = a copy of weight set plan[k] */
  char name[PB_NAME_MAX];
  for (int i = 0; i < u.params.n; i++) {
    pb_tensor *t = &u.params.t[i];
    int k;
    const char *src = t->name;
    if (sscanf(t->name, "bert.encoder.layer.%d.", &k) == 1) {
      const char *rest = strchr(t->name + strlen("bert.encoder.layer."), '.') + 1;
      snprintf(name, sizeof name, "bert.encoder.layer.%d.%s", plan[k], rest);
      src = name;
    }
    int j = pb_params_find(&s.params, src);
    CHECK(j >= 0 && s.params.t[j].numel == t->numel, "no source for %s", t->name);
    if (j >= 0) memcpy(t->data, s.params.t[j].data, t->numel * sizeof(float));
  }
  float ls, lu;
  pb_params_zero_grad(&s.params);
  pb_params_zero_grad(&u.params);
  CHECK_OK(pb_forward(&s, ids, types, mask, B, T, labels, NULL, 1, 77, &ls));
  CHECK_OK(pb_forward(&u, ids, types, mask, B, T, labels, NULL, 1, 77, &lu));
  CHECK(ls == lu && memcmp(s.acts.logits, u.acts.logits, B * C * sizeof(float)) == 0,
        "shared plan and unshared copies differ (loss %.9g vs %.9g)", ls, lu);
  CHECK_OK(pb_backward(&s));
  CHECK_OK(pb_backward(&u));
  /* the shared set's gradient = the sum of its copies' gradients */
  double worst = 0;
  for (int i = 0; i < s.params.n; i++) {
    const pb_tensor *t = &s.params.t[i];
    int k;
    for (size_t e = 0; e < t->numel; e++) {
      double sum = 0;
      if (sscanf(t->name, "bert.encoder.layer.%d.", &k) == 1) {
        const char *rest = strchr(t->name + strlen("bert.encoder.layer."), '.') + 1;
        for (int st = 0; st < 4; st++) {
          if (plan[st] != k) continue;
          snprintf(name, sizeof name, "bert.encoder.layer.%d.%s", st, rest);
          sum += u.params.t[pb_params_find(&u.params, name)].grad[e];
        }
      } else {
        sum = u.params.t[pb_params_find(&u.params, t->name)].grad[e];
      }
      /* float sums in another order: relative to the entry, with a floor at 1e-3 of the tensor's scale */
      worst = fmax(worst, fabs(sum - t->grad[e]) / fmax(fabs(sum), 1e-3));
    }
  }
  printf("plan: shared gradients vs summed copies: worst difference %.2e of max(|sum|, 1e-3) (must be < 1e-4)\n",
         worst);
  CHECK(worst < 1e-4, "shared-set gradients are not the sums of the steps' gradients (%.2e)", worst);
  pb_model_free(&u);
  /* finite differences through the shared weights, dropout off */
  pb_model_free(&s);
  tiny(&cs, 2, 0.0f);
  CHECK_OK(pb_model_declare(&s, &cs));
  CHECK_OK(pb_model_set_plan(&s, 4, plan));
  all_trainable(&s);
  CHECK_OK(pb_model_alloc(&s, B, T));
  pb_model_init_random(&s, 13);
  pb_test_perturb(&s, 14, 0);
  gradcheck(&s, "plan 0,0,1,1 gradcheck", 1.5e-4, 2e-3);
  /* aliases: another name finds the shared tensor, which still counts once */
  const int q0 = pb_params_find(&s.params, "bert.encoder.layer.0.attention.self.query.weight");
  pb_model_free(&s);
  CHECK_OK(pb_model_declare(&s, &cs));
  CHECK_OK(pb_model_set_plan(&s, 4, plan));
  CHECK_OK(pb_params_add_alias(&s.params, q0, "albert.encoder.albert_layer_groups.0.albert_layers.0.attention.query.weight"));
  CHECK(pb_params_find(&s.params, "albert.encoder.albert_layer_groups.0.albert_layers.0.attention.query.weight") == q0,
        "alias does not find its tensor");
  CHECK(pb_params_add_alias(&s.params, q0, "bert.encoder.layer.1.attention.self.query.weight") == PB_ERR_ARG,
        "an alias that is a tensor's name accepted");
  CHECK(pb_params_add(&s.params, "albert.encoder.albert_layer_groups.0.albert_layers.0.attention.query.weight",
                      PB_OWNER_METHOD, 1, (int[]){1}, PB_INIT_ZERO, 0) < 0, "a tensor named like an alias accepted");
  n = 0;
  for (int i = 0; i < s.params.n; i++) n += s.params.t[i].numel;
  CHECK(n == expect && pb_params_alias_of(&s.params, q0, 0) && !pb_params_alias_of(&s.params, q0, 1),
        "an alias changed the parameter count (%zu)", n);
  CHECK_OK(pb_model_alloc(&s, B, T));
  /* a checkpoint that names the shared query weight by its alias loads into it */
  {
    pb_model a;
    CHECK_OK(pb_model_declare(&a, &cs));
    CHECK_OK(pb_model_set_plan(&a, 4, plan));
    CHECK_OK(pb_model_alloc(&a, B, T));
    pb_model_init_random(&a, 51);
    char dir[] = "/tmp/pb_test_alias_XXXXXX";
    CHECK(mkdtemp(dir) != NULL, "mkdtemp");
    CHECK_OK(pb_model_save_hf(&a, dir));
    pb_st_wtensor *w = calloc((size_t)a.params.n, sizeof *w);
    int nw = 0;
    for (int i = 0; i < a.params.n; i++) {
      const pb_tensor *t = &a.params.t[i];
      if (t->owner == PB_OWNER_METHOD) continue;
      w[nw++] = (pb_st_wtensor){.name = i == q0 ? "albert.encoder.albert_layer_groups.0.albert_layers.0.attention.query.weight"
                                                 : t->name,
                                 .ndim = t->ndim, .shape = t->shape, .data = t->data};
    }
    char path[64];
    snprintf(path, sizeof path, "%s/model.safetensors", dir);
    CHECK_OK(pb_st_write(path, NULL, 0, w, nw, PB_ST_F32));
    CHECK_OK(pb_model_load_hf(&s, dir));
    CHECK(memcmp(s.params.t[q0].data, a.params.t[q0].data, s.params.t[q0].numel * sizeof(float)) == 0,
          "the aliased tensor was not loaded from its alias name");
    pb_model plain;
    CHECK_OK(pb_model_declare(&plain, &cs));
    CHECK_OK(pb_model_set_plan(&plain, 4, plan));
    CHECK_OK(pb_model_alloc(&plain, B, T));
    CHECK(pb_model_load_hf(&plain, dir) == PB_ERR_NOTFOUND, "the renamed tensor loaded without an alias");
    printf("alias load: with the alias it loads; without: %s\n", pb_last_error());
    pb_model_free(&plain);
    free(w);
    unlink(path);
    snprintf(path, sizeof path, "%s/config.json", dir);
    unlink(path);
    rmdir(dir);
    pb_model_free(&a);
  }
  /* bad plans */
  static const int bad[3] = {0, 2, 1};
  CHECK(pb_model_set_plan(&s, 3, bad) == PB_ERR_ARG, "plan after allocation accepted");
  pb_model_free(&s);
  CHECK_OK(pb_model_declare(&s, &cs));
  CHECK(pb_model_set_plan(&s, 3, bad) == PB_ERR_ARG, "weight set 2 of 2 accepted");
  printf("bad plan: %s\n", pb_last_error());
  CHECK(pb_model_set_plan(&s, 0, NULL) == PB_ERR_ARG, "0 steps accepted");
  CHECK(pb_model_set_plan(&s, 3, NULL) == PB_ERR_ARG, "3 steps over 2 sets without a plan accepted");
  pb_model_free(&s);
}

/* ---------------------------------------------------------------- a chain of test hooks */

/* non-additive: key output * sk[d], ffn_out input * sf[F] (into its own buffer), embedding * se[d] */
typedef struct {
  float sk[8], sf[12], se[8];
  float *xf;     /* [S][N,F] the scaled ffn_out inputs */
  int S, Ncap;
} scale_ctx;

static int sc_reserve(void *vc, int b, int t, float *acts, size_t *n) {
  scale_ctx *c = vc;
  if (!acts) {
    *n = (size_t)c->S * b * t * 12;
    return PB_OK;
  }
  c->xf = acts;
  c->Ncap = b * t;
  return PB_OK;
}
static int sc_out_fwd(void *vc, int l, int site, float *y, int N, int out) {
  scale_ctx *c = vc;
  (void)l;
  if (site != PB_LIN_KEY) return PB_OK;
  pb_opc_add(PB_OPK_FLOP, (uint64_t)N * out);
  if (pb_opc_counting()) return PB_OK;
  for (int i = 0; i < N; i++)
    for (int j = 0; j < out; j++) y[(size_t)i * out + j] *= c->sk[j];
  return PB_OK;
}
static int sc_out_bwd(void *vc, int l, int site, float *dy, int N, int out) {
  return sc_out_fwd(vc, l, site, dy, N, out); /* diagonal: the same map */
}
static int sc_in_fwd(void *vc, int l, int site, const float *x, const float **xo, int N, int in) {
  scale_ctx *c = vc;
  if (site != PB_LIN_FFN_OUT) return PB_OK;
  float *dst = c->xf + (size_t)l * c->Ncap * 12;
  *xo = dst;
  pb_opc_add(PB_OPK_FLOP, (uint64_t)N * in);
  if (pb_opc_counting()) return PB_OK;
  for (int i = 0; i < N; i++)
    for (int j = 0; j < in; j++) dst[(size_t)i * in + j] = x[(size_t)i * in + j] * c->sf[j];
  return PB_OK;
}
static int sc_in_bwd(void *vc, int l, int site, const float *x, const float *dxo, float *dx, int N, int in) {
  scale_ctx *c = vc;
  (void)l;
  (void)x;
  if (site != PB_LIN_FFN_OUT) return pb_set_error(PB_ERR_ARG, "linear_in_bwd at a site it did not replace");
  pb_opc_add(PB_OPK_FLOP, 2 * (uint64_t)N * in);
  if (pb_opc_counting()) return PB_OK;
  for (int i = 0; i < N; i++)
    for (int j = 0; j < in; j++) dx[(size_t)i * in + j] += dxo[(size_t)i * in + j] * c->sf[j];
  return PB_OK;
}
static int sc_embed(void *vc, const int *id, float *h, int b, int t, int d) {
  scale_ctx *c = vc;
  (void)id;
  pb_opc_add(PB_OPK_FLOP, (uint64_t)b * t * d);
  if (pb_opc_counting()) return PB_OK;
  for (int i = 0; i < b * t; i++)
    for (int j = 0; j < d; j++) h[(size_t)i * d + j] *= c->se[j];
  return PB_OK;
}
static const pb_hook_ops scale_hooks = {
    .version = PB_HOOKS_VERSION,
    .reserve = sc_reserve,
    .linear_in_fwd = sc_in_fwd,
    .linear_in_bwd = sc_in_bwd,
    .linear_out_fwd = sc_out_fwd,
    .linear_out_bwd = sc_out_bwd,
    .embed_fwd = sc_embed,
    .embed_bwd = sc_embed,
};

/* additive (version 1): query y += x * a[j] (elementwise, in == out) */
typedef struct {
  float a[8];
} add_ctx;
static int ad_fwd(void *vc, int l, int site, const float *x, float *y, int N, int in, int out) {
  add_ctx *c = vc;
  (void)l;
  if (site != PB_LIN_QUERY || in != out) return PB_OK;
  pb_opc_add(PB_OPK_FLOP, 2 * (uint64_t)N * out);
  if (pb_opc_counting()) return PB_OK;
  for (int i = 0; i < N; i++)
    for (int j = 0; j < out; j++) y[(size_t)i * out + j] += x[(size_t)i * in + j] * c->a[j];
  return PB_OK;
}
static int ad_bwd(void *vc, int l, int site, const float *x, const float *dy, float *dx, int N, int in, int out) {
  (void)x;
  return ad_fwd(vc, l, site, dy, dx, N, in, out); /* dx += dy * a */
}
static const pb_hook_ops add_hooks = {.linear_fwd = ad_fwd, .linear_bwd = ad_bwd}; /* version 0 = 1 */

static void hook_chain(void) {
  pb_config c;
  tiny(&c, 2, 0.0f);
  pb_model m;
  CHECK_OK(pb_model_declare(&m, &c));
  all_trainable(&m);
  scale_ctx sc = {.S = 2};
  add_ctx ac;
  pb_rng r;
  pb_rng_seed(&r, 3);
  for (int j = 0; j < 8; j++) {
    sc.sk[j] = 0.5f + pb_rng_uniform(&r);
    sc.se[j] = 0.5f + pb_rng_uniform(&r);
    ac.a[j] = pb_rng_normal(&r);
  }
  for (int j = 0; j < 12; j++) sc.sf[j] = 0.5f + pb_rng_uniform(&r);
  CHECK_OK(pb_model_add_hooks(&m, &scale_hooks, &sc));
  CHECK_OK(pb_model_add_hooks(&m, &add_hooks, &ac));
  CHECK(pb_model_add_hooks(&m, &scale_hooks, &sc) == PB_ERR_ARG, "a second linear_in hook accepted");
  printf("second non-additive hook: %s\n", pb_last_error());
  CHECK_OK(pb_model_alloc(&m, B, T));
  pb_model_init_random(&m, 21);
  pb_test_perturb(&m, 22, 0);
  gradcheck(&m, "chain (linear_in, linear_out, embed + additive linear)", 1.5e-4, 2e-3);
  /* the hooks change the function: without them the loss differs */
  const float with = loss_of(&m);
  const int n = m.n_hooks;
  m.n_hooks = 0;
  const float without = loss_of(&m);
  m.n_hooks = n;
  CHECK(with != without, "hooks had no effect (loss %.6g)", with);
  CHECK(pb_model_add_hooks(&m, &add_hooks, &ac) == PB_ERR_ARG, "hook added after allocation");
  pb_model_free(&m);
  /* chain rules */
  CHECK_OK(pb_model_declare(&m, &c));
  static const pb_hook_ops future = {.version = PB_HOOKS_VERSION + 1};
  CHECK(pb_model_add_hooks(&m, &future, NULL) == PB_ERR_UNSUPPORTED, "a future hook version accepted");
  for (int i = 0; i < PB_MAX_HOOKS; i++) CHECK_OK(pb_model_add_hooks(&m, &add_hooks, &ac));
  CHECK(pb_model_add_hooks(&m, &add_hooks, &ac) == PB_ERR_ARG, "more than PB_MAX_HOOKS accepted");
  pb_model_free(&m);
}

/* ---------------------------------------------------------------- after_layer: an exit */

typedef struct {
  pb_model *m;
  pb_head_idx hd;    /* exit head tensors */
  pb_head_acts ha;   /* its activations */
  float weight;      /* loss weight in training */
  int exit_even;     /* inference: finish rows whose batch row is even */
} exit_ctx;

static int ex_reserve(void *vc, int b, int t, float *acts, size_t *n) {
  exit_ctx *c = vc;
  (void)t;
  if (!acts) {
    *n = pb_head_acts_floats(c->m, &c->hd, b);
    return PB_OK;
  }
  pb_head_acts_layout(&c->ha, acts, c->m, &c->hd, b);
  return PB_OK;
}
static int ex_after(void *vc, int l, const float *h, int b, int t, int d, const int *rows, unsigned char *done,
                    float *loss) {
  exit_ctx *c = vc;
  (void)d;
  if (l != 0) return PB_OK;
  pb_model *m = c->m;
  float el = 0;
  int rc = pb_head_fwd(m, &c->hd, &c->ha, h, b, t, m->labels, NULL, m->training, 0x5EED, &el);
  if (rc) return rc;
  if (m->labels) *loss += c->weight * el; /* with labels: the exit's loss term */
  if (m->training || !c->exit_even || pb_opc_counting()) return PB_OK;
  for (int i = 0; i < b; i++)
    if (rows[i] % 2 == 0) {
      memcpy(pb_model_row_logits(m, rows[i]), c->ha.logits + (size_t)i * C, C * sizeof(float));
      done[i] = 1;
    }
  return PB_OK;
}
static int ex_after_bwd(void *vc, int l, const float *h, float *dh, int b, int t, int d) {
  exit_ctx *c = vc;
  (void)h;
  (void)b;
  (void)d;
  if (l != 0) return PB_OK;
  return pb_head_bwd(c->m, &c->hd, &c->ha, t, c->weight, dh);
}
static const pb_hook_ops exit_hooks = {
    .version = PB_HOOKS_VERSION,
    .reserve = ex_reserve,
    .after_layer = ex_after,
    .after_layer_bwd = ex_after_bwd,
};

static int declare_exit(pb_model *m, exit_ctx *e) {
  const int d = m->cfg.hidden;
  int shape[2] = {d, d}, rc;
  memset(e, 0, sizeof *e);
  e->m = m;
  e->weight = 0.7f;
  if ((rc = pb_params_add(&m->params, "exit.0.pooler.weight", PB_OWNER_METHOD, 2, shape, PB_INIT_NORMAL, 0.3f)) < 0)
    return rc;
  e->hd.pool_w = rc;
  if ((rc = pb_params_add(&m->params, "exit.0.pooler.bias", PB_OWNER_METHOD, 1, shape, PB_INIT_NORMAL, 0.3f)) < 0)
    return rc;
  e->hd.pool_b = rc;
  shape[0] = C;
  if ((rc = pb_params_add(&m->params, "exit.0.classifier.weight", PB_OWNER_METHOD, 2, shape, PB_INIT_NORMAL, 0.3f)) < 0)
    return rc;
  e->hd.cls_w = rc;
  if ((rc = pb_params_add(&m->params, "exit.0.classifier.bias", PB_OWNER_METHOD, 1, shape, PB_INIT_NORMAL, 0.3f)) < 0)
    return rc;
  e->hd.cls_b = rc;
  return pb_model_add_hooks(m, &exit_hooks, e);
}

static void early_exit(void) {
  pb_config c;
  tiny(&c, 3, 0.0f);
  pb_model m, p;
  exit_ctx e;
  /* training: final loss + 0.7 * exit loss, gradients of everything */
  CHECK_OK(pb_model_declare(&m, &c));
  all_trainable(&m);
  CHECK_OK(declare_exit(&m, &e));
  all_trainable(&m);
  CHECK_OK(pb_model_alloc(&m, B, T));
  pb_model_init_random(&m, 31);
  pb_test_perturb(&m, 32, 0);
  gradcheck(&m, "exit head at step 0 (loss term + gradient injection)", 1.5e-4, 2e-3);
  /* the loss is the sum: the model with the exit weighted 0 gives the final loss alone */
  float both = 0, alone = 0;
  CHECK_OK(pb_forward(&m, ids, types, mask, B, T, labels, NULL, 1, 0, &both));
  e.weight = 0.0f;
  CHECK_OK(pb_forward(&m, ids, types, mask, B, T, labels, NULL, 1, 0, &alone));
  e.weight = 0.7f;
  CHECK(both != alone, "the exit's loss term was not added");
  /* inference: even rows leave after step 0 */
  e.exit_even = 1;
  /* the plain model: the same tensors without the hook */
  CHECK_OK(pb_model_declare(&p, &c));
  CHECK_OK(pb_model_alloc(&p, B, T));
  for (int i = 0; i < p.params.n; i++)
    memcpy(p.params.t[i].data, m.params.t[pb_params_find(&m.params, p.params.t[i].name)].data,
           p.params.t[i].numel * sizeof(float));
  CHECK_OK(pb_forward(&p, ids, types, mask, B, T, NULL, NULL, 0, 0, NULL));
  /* the exit head on the plain model's step-0 output, by hand */
  float hand[B * C];
  {
    pb_head_acts ha;
    float *blk = malloc(pb_head_acts_floats(&m, &e.hd, B) * sizeof(float));
    pb_head_acts_layout(&ha, blk, &m, &e.hd, B);
    CHECK_OK(pb_head_fwd(&m, &e.hd, &ha, p.acts.layer[0].out, B, T, NULL, NULL, 0, 0, NULL));
    memcpy(hand, ha.logits, sizeof hand);
    free(blk);
  }
  pb_opc_reset();
  pb_opc_enable(1);
  CHECK_OK(pb_forward(&m, ids, types, mask, B, T, NULL, NULL, 0, 0, NULL));
  pb_opc_enable(0);
  pb_opcounts real = pb_opc_snapshot();
  double worst_exit = 0, worst_end = 0;
  for (int b = 0; b < B; b++) {
    const int k = pb_model_exit_step(&m, b);
    CHECK(k == (b % 2 == 0 ? 0 : 2), "row %d exit step %d", b, k);
    for (int j = 0; j < C; j++) {
      const double got = m.acts.logits[b * C + j];
      if (b % 2 == 0) worst_exit = fmax(worst_exit, fabs(got - hand[b * C + j]));
      else worst_end = fmax(worst_end, fabs(got - p.acts.logits[b * C + j]));
    }
  }
  printf("early exit: %d rows left at step 0; |logit - exit head by hand| %.2e, |logit - plain| %.2e (must be < 1e-5)\n",
         m.exited, worst_exit, worst_end);
  CHECK(m.exited == 2 && worst_exit < 1e-5 && worst_end < 1e-5, "early-exit logits wrong");
  /* per-example exact counts: the batch = the sum of its rows at their exit steps */
  pb_opcounts sum = {0}, row0 = {0}, row2 = {0};
  CHECK_OK(pb_model_count_exit(&m, 1, T, 0, &row0));
  CHECK_OK(pb_model_count_exit(&m, 1, T, 2, &row2));
  pb_opcounts_add_scaled(&sum, &row0, 2);
  pb_opcounts_add_scaled(&sum, &row2, 2);
  for (int o = 0; o < PB_OPO_COUNT; o++)
    for (int k = 0; k < PB_OPK_COUNT; k++)
      CHECK(sum.c[o][k] == real.c[o][k], "%s %s: real batch %llu, sum of rows %llu", pb_opowner_name(o),
            pb_opkind_name(k), (unsigned long long)real.c[o][k], (unsigned long long)sum.c[o][k]);
  /* a row that exits at step 0 runs one of three steps: its backbone MACs are a third (+ the
   * embeddings' none) of one that runs to the end */
  CHECK(3 * pb_opcounts_kind(&row0, PB_OPO_BACKBONE, PB_OPK_MAC) == pb_opcounts_kind(&row2, PB_OPO_BACKBONE, PB_OPK_MAC),
        "exit at step 0 is not one third of the backbone MACs");
  CHECK(pb_opcounts_kind(&row0, PB_OPO_HEAD, PB_OPK_MAC) == 0, "a row that left early ran the final head");
  printf("counts: exit at step 0 %llu backbone MACs + %llu exit-head MACs; at the end %llu + %llu head\n",
         (unsigned long long)pb_opcounts_kind(&row0, PB_OPO_BACKBONE, PB_OPK_MAC),
         (unsigned long long)pb_opcounts_kind(&row0, PB_OPO_METHOD, PB_OPK_MAC),
         (unsigned long long)pb_opcounts_kind(&row2, PB_OPO_BACKBONE, PB_OPK_MAC),
         (unsigned long long)pb_opcounts_kind(&row2, PB_OPO_HEAD, PB_OPK_MAC));
  CHECK(pb_model_count_exit(&m, 1, T, 3, &row0) == PB_ERR_ARG, "exit after step 3 of 3 accepted");
  /* rows may not leave a training batch, and backward refuses a forward that lost rows */
  CHECK(pb_backward(&m) == PB_ERR_ARG, "backward after early exit accepted");
  pb_model_free(&p);
  pb_model_free(&m);
}


/* ---------------------------------------------------------------- width segments */

/* the width change: y = x W^T with W [dout, din] a trainable method tensor */
typedef struct {
  pb_model *m;
  int w;
} width_ctx;
static int wd_fwd(void *vc, int l, const float *x, float *y, int N, int din, int dout) {
  width_ctx *c = vc;
  (void)l;
  pb_matmul_fwd(y, x, pb_w(c->m, c->w), NULL, N, din, dout);
  return PB_OK;
}
static int wd_bwd(void *vc, int l, const float *x, const float *dy, float *dx, int N, int din, int dout) {
  width_ctx *c = vc;
  (void)l;
  pb_matmul_bwd(dx, pb_g(c->m, c->w), NULL, dy, x, pb_w(c->m, c->w), N, din, dout);
  return PB_OK;
}
static const pb_hook_ops width_hooks = {.version = PB_HOOKS_VERSION, .width_fwd = wd_fwd, .width_bwd = wd_bwd};

static void width_segments(void) {
  pb_config c;
  tiny(&c, 3, 0.0f);
  pb_model m;
  CHECK_OK(pb_model_declare(&m, &c));
  CHECK(pb_model_set_width(&m, 1, 6, 4, 10) == PB_ERR_ARG, "hidden 6 over 4 heads accepted");
  CHECK(pb_model_set_width(&m, 3, 6, 3, 10) == PB_ERR_ARG, "weight set 3 of 3 accepted");
  CHECK_OK(pb_model_set_width(&m, 1, 6, 3, 10));
  CHECK(!pb_model_width_uniform(&m) && pb_model_step_width(&m, 2).hidden == 6 && pb_head_width(&m, &m.head) == 6,
        "widths not recorded");
  all_trainable(&m);
  /* parameters: embeddings and set 0 at 8, sets 1-2 at 6 (3 heads, FFN 10), pooler and head at 6 */
  const size_t V = 31, P = 8;
  size_t set[2];
  for (int k = 0; k < 2; k++) {
    const size_t d = k ? 6 : 8, F = k ? 10 : 12;
    set[k] = 4 * (d * d + d) + 2 * d + (F * d + F) + (d * F + d) + 2 * d;
  }
  const size_t expect = V * 8 + P * 8 + 2 * 8 + 2 * 8 + set[0] + 2 * set[1] + 6 * 6 + 6 + C * 6 + C;
  size_t n = 0;
  for (int i = 0; i < m.params.n; i++) n += m.params.t[i].numel;
  CHECK(n == expect, "width-segment parameters %zu, expected %zu", n, expect);
  CHECK(pb_model_alloc(&m, B, T) == PB_ERR_ARG, "a width change without a hook allocated");
  printf("no width hook: %s\n", pb_last_error());
  width_ctx wc = {.m = &m};
  int shape[2] = {6, 8};
  wc.w = pb_params_add(&m.params, "width.1.weight", PB_OWNER_METHOD, 2, shape, PB_INIT_NORMAL, 0.3f);
  CHECK(wc.w >= 0, "declare: %s", pb_last_error());
  m.params.t[wc.w].trainable = 1;
  CHECK_OK(pb_model_add_hooks(&m, &width_hooks, &wc));
  CHECK_OK(pb_model_alloc(&m, B, T));
  pb_model_init_random(&m, 41);
  pb_test_perturb(&m, 42, 0);
  printf("width segments 8 | 6 6 over 3 steps: %zu parameters + %d in the width map\n", n, 48);
  gradcheck(&m, "width segments (8 -> 6 before step 1)", 1.5e-4, 2e-3);
  /* op count by execution = the real step's instrumented count */
  pb_opcounts counted = {0};
  CHECK_OK(pb_model_count(&m, B, T, PB_COUNT_TRAIN, &counted));
  pb_opc_reset();
  pb_opc_enable(1);
  float loss;
  CHECK_OK(pb_forward(&m, ids, types, mask, B, T, labels, NULL, 0, 0, &loss));
  CHECK_OK(pb_backward(&m));
  pb_opc_enable(0);
  pb_opcounts real = pb_opc_snapshot();
  CHECK(memcmp(&real, &counted, sizeof real) == 0, "width segments: counting-only run differs from the real step");
  /* the width map's MACs: forward N*8*6, backward 2*N*8*6 (dx and dW) */
  CHECK(pb_opcounts_kind(&counted, PB_OPO_METHOD, PB_OPK_MAC) == 3ull * B * T * 8 * 6, "width map MACs %llu",
        (unsigned long long)pb_opcounts_kind(&counted, PB_OPO_METHOD, PB_OPK_MAC));
  pb_model_free(&m);
}

int main(void) {
  make_batch();
  layer_plan();
  hook_chain();
  early_exit();
  width_segments();
  printf("%d checks, %d failures\n", checks, failures);
  return check_exit_status();
}
