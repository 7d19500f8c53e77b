/* Prefix tuning (Li & Liang 2021, "Prefix-Tuning: Optimizing Continuous Prompts for Generation";
 * Hugging Face PEFT PREFIX_TUNING semantics for an encoder): at every encoder step l, P virtual
 * tokens contribute key rows K_l [P,d] and value rows V_l [P,d] that every query of every row
 * attends to, in front of the row's own keys and values, never masked (PEFT prepends them as
 * past_key_values and extends the attention mask with ones). The backbone stays frozen; the
 * prefixes (and the head) train. There is no merge.
 *
 * Options: tokens (P, PEFT's num_virtual_tokens, default 20); projection (PEFT's
 * prefix_projection, default 0); hidden (PEFT's encoder_hidden_size, used with projection=1,
 * default 512); init_std (default 1).
 *
 * projection=0 (PEFT's PrefixEncoder without projection: one nn.Embedding [P, 2*L*d] read as
 *   L (key, value) pairs): tensors "prefix.layer.L.key" [P,d] and "prefix.layer.L.value" [P,d]
 *   for every encoder step L = 0..pb_model_steps(m)-1 (the hook index), i.e. the same 2*L*P*d
 *   numbers split per step. Bert-base, P=20: 2 * 12 * 20 * 768 = 368,640 trainable.
 * projection=1 (PEFT's prefix_projection): "prefix.embedding" [P,d] -> "prefix.mlp.0" Linear(d,
 *   hidden) -> tanh -> "prefix.mlp.2" Linear(hidden, 2*S*d), S = encoder steps; output columns
 *   [2l*d, (2l+1)*d) are step l's keys and [(2l+1)*d, (2l+2)*d) its values (PEFT's
 *   view(P, 2*L, heads, hd) split in (key, value) pairs). Trainable P*d + (d+1)*hidden +
 *   (hidden+1)*2*S*d (bert-base, P=20, hidden=512: 9,864,704).
 *
 * Initialisation, chosen to follow PEFT: the prefix values (projection=0) and the embedding
 * (projection=1) are N(0, init_std^2) with init_std = 1 by default, which is PEFT's nn.Embedding
 * init N(0,1); the two Linear layers have PyTorch's nn.Linear default (weight and bias
 * U(-1/sqrt(in), 1/sqrt(in))). Unlike LoRA's zero B, the model does NOT start at the backbone:
 * the prefix changes every attention output from the first step, as in PEFT. Weight decay as
 * the table's default (2-D tensors decay, biases do not): HF Trainer's rule.
 *
 * The prefix rows reach the backbone through the kv_prefix hook (pointers into the tensors, or
 * into the materialised projection output); kv_prefix_bwd receives dK_l, dV_l [P,d] summed over
 * the batch and accumulates them into the gradients (projection=0), or back-propagates them
 * through the MLP (projection=1: the second Linear per step as the gradients arrive, the tanh,
 * first Linear and embedding once step 0's gradients, the last of a backward, arrived).
 *
 * Materialisation (projection=1): kv [S][2][P,d] = MLP(embedding), in training on every forward
 * (set_mode, charged); at inference only when m->params.version differs from the version
 * materialised at, and then NOT charged: like LayerConnect's connectors it is a one-off per task
 * file (a preparation of the weights, not per-example work), so per-example inference counts are
 * the prefix's attention work alone. Code that writes prefix values directly must bump
 * m->params.version.
 *
 * Operation counts. The attention over the P extra keys is backbone work (the kernels'
 * S = B*A*T*(P+T) rows in backbone/ops.h) plus the backbone's sum of dK, dV over the batch; what
 * this method's hooks charge (owner METHOD), per step l:
 *   projection=0  forward  -
 *                 backward FLOP 2*P*d (grad += dK_l, dV_l; when the tensors train)
 *   projection=1  forward (training, once per forward)
 *                          MAC P*d*H + 2*S*P*H*d  FLOP P*H + 2*S*P*d (biases)  TRANS P*H (tanh)
 *                 backward per step: pb_matmul_bwd rows for dK_l and dV_l (MAC P*H*d per
 *                          non-NULL of {dt, dW}, FLOP P*d for db each), at step 0: tanh
 *                          backward 3*P*H FLOP and the first Linear's pb_matmul_bwd (MAC P*d*H
 *                          per non-NULL of {demb, dW1}, FLOP P*H for db1)
 * The analytic count is these hooks run in counting-only mode.
 *
 * Models whose attention width a differs from the hidden size d (pruned heads,
 * pb_model_set_shape; the backbone's prefix rows are a wide) and width segments are refused at
 * attach (PB_ERR_UNSUPPORTED). */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "backbone/ops.h"
#include "util/status.h"
#include "methods/method.h"

typedef struct {
  /* options */
  int P;            /* virtual tokens (20) */
  int projection;   /* 0: prefixes are the tensors; 1: MLP from an embedding */
  int H;            /* MLP hidden size (512), projection=1 */
  float init_std;   /* std of the prefix / embedding init (1, PEFT's nn.Embedding) */
  /* attached state */
  pb_model *m;      /* model attached to (borrowed) */
  int S, d;         /* encoder steps, hidden size */
  int *ik, *iv;     /* [S] table index of "prefix.layer.L.key" / ".value" (projection=0) */
  int iemb, iw1, ib1, iw2, ib2; /* projection=1: embedding [P,d], mlp.0 [H,d], [H], mlp.2 [2Sd,H], [2Sd] */
  /* activations (projection=1, from reserve) */
  float *t;         /* [P,H] tanh output */
  float *dt;        /* [P,H] its gradient, summed over the steps of one backward */
  float *da;        /* [P,H] gradient before the tanh */
  float *kv;        /* [S][2][P,d] materialised keys / values */
  int have_kv;      /* kv holds the values of kv_version */
  uint64_t kv_version;
} prefix_ctx;

extern const pb_method pb_method_prefix;

static int prefix_init(void *vctx) {
  prefix_ctx *c = vctx;
  memset(c, 0, sizeof *c);
  c->P = 20;
  c->projection = 0;
  c->H = 512;
  c->init_std = 1.0f;
  return PB_OK;
}

/* "tokens=20,projection=0,hidden=512,init_std=1" */
static int prefix_describe(const void *vctx, char *buf, size_t n) {
  return pb_method_describe_options(&pb_method_prefix, vctx, buf, n);
}

/* ---------------------------------------------------------------- hooks */

static int prefix_reserve(void *vctx, int B, int T, float *acts, size_t *nfloats) {
  prefix_ctx *c = vctx;
  const size_t ph = c->projection ? (size_t)c->P * c->H : 0;
  const size_t nkv = c->projection ? (size_t)c->S * 2 * c->P * c->d : 0;
  if (!acts) {
    *nfloats = 3 * ph + nkv;
    return PB_OK;
  }
  if (c->projection) {
    c->t = acts;
    c->dt = c->t + ph;
    c->da = c->dt + ph;
    c->kv = c->da + ph;
  }
  c->have_kv = 0; /* a new block: nothing materialised in it yet */
  return PB_OK;
}

/* projection=1: kv = MLP(embedding) for every step (see the top for when it is charged) */
static void materialise(prefix_ctx *c) {
  const pb_params *p = &c->m->params;
  const int P = c->P, H = c->H, d = c->d;
  const float *W2 = p->t[c->iw2].data, *b2 = p->t[c->ib2].data;
  pb_matmul_fwd(c->da, p->t[c->iemb].data, p->t[c->iw1].data, p->t[c->ib1].data, P, d, H); /* da: scratch */
  pb_tanh_fwd(c->t, c->da, (size_t)P * H);
  for (int r = 0; r < 2 * c->S; r++) /* r = 2l (keys of step l), 2l+1 (its values) */
    pb_matmul_fwd(c->kv + (size_t)r * P * d, c->t, W2 + (size_t)r * d * H, b2 + (size_t)r * d, P, H, d);
  c->have_kv = 1;
  c->kv_version = p->version;
}

static int prefix_set_mode(void *vctx, int training, uint64_t seed) {
  prefix_ctx *c = vctx;
  (void)seed;
  if (!c->projection) return PB_OK;
  if (!c->kv) return pb_set_error(PB_ERR_ARG, "prefix: forward before pb_model_alloc");
  if (training) {
    materialise(c);
  } else if (!c->have_kv || c->kv_version != c->m->params.version) {
    /* the one-off inference materialisation: not charged (see the top) */
    if (pb_opc_counting()) { /* the count takes the prefix as materialised */
      c->have_kv = 1;
      c->kv_version = c->m->params.version;
      return PB_OK;
    }
    const int on = pb_opc.enabled;
    pb_opc.enabled = 0;
    materialise(c);
    pb_opc.enabled = on;
  }
  return PB_OK;
}

static int check_step(const prefix_ctx *c, int l) {
  if (!c->m || l < 0 || l >= c->S)
    return pb_set_error(PB_ERR_ARG, "prefix: hook called for step %d outside %d steps", l, c->S);
  return PB_OK;
}

static int prefix_kv(void *vctx, int l, const float **k, const float **v, int *P) {
  prefix_ctx *c = vctx;
  int rc = check_step(c, l);
  if (rc) return rc;
  *P = c->P;
  if (!k && !v) return PB_OK; /* sizing */
  const float *kp, *vp;
  if (c->projection) {
    if (!c->kv || !c->have_kv) return pb_set_error(PB_ERR_ARG, "prefix: kv_prefix before set_mode/alloc");
    kp = c->kv + (size_t)(2 * l) * c->P * c->d;
    vp = kp + (size_t)c->P * c->d;
  } else {
    kp = c->m->params.t[c->ik[l]].data;
    vp = c->m->params.t[c->iv[l]].data;
    if (!kp || !vp) return pb_set_error(PB_ERR_ARG, "prefix: forward before pb_model_alloc");
  }
  if (k) *k = kp;
  if (v) *v = vp;
  return PB_OK;
}

static int prefix_kv_bwd(void *vctx, int l, const float *dk, const float *dv, int P) {
  prefix_ctx *c = vctx;
  int rc = check_step(c, l);
  if (rc) return rc;
  if (P != c->P) return pb_set_error(PB_ERR_SHAPE, "prefix: step %d backward with %d rows, not %d", l, P, c->P);
  pb_params *p = &c->m->params;
  const size_t pd = (size_t)P * c->d;
  if (!c->projection) {
    float *gk = p->t[c->ik[l]].grad, *gv = p->t[c->iv[l]].grad; /* NULL when frozen */
    if (gk) pb_add(gk, gk, dk, pd);
    if (gv) pb_add(gv, gv, dv, pd);
    return PB_OK;
  }
  if (!c->kv || !c->have_kv) return pb_set_error(PB_ERR_ARG, "prefix: backward before a forward");
  const int H = c->H, d = c->d;
  const size_t ph = (size_t)P * H;
  /* the emb/MLP gradients are needed iff one of those tensors trains */
  const pb_tensor *E = &p->t[c->iemb], *W1 = &p->t[c->iw1], *B1 = &p->t[c->ib1];
  const pb_tensor *W2 = &p->t[c->iw2], *B2 = &p->t[c->ib2];
  const int need_dt = E->grad || W1->grad || B1->grad;
  if (l == c->S - 1 && need_dt && !pb_opc_counting()) memset(c->dt, 0, ph * sizeof(float)); /* first of a backward */
  for (int r = 0; r < 2; r++) {
    const size_t off = (size_t)(2 * l + r) * d;
    pb_matmul_bwd(need_dt ? c->dt : NULL, W2->grad ? W2->grad + off * H : NULL, B2->grad ? B2->grad + off : NULL,
                  r ? dv : dk, c->t, W2->data + off * H, P, H, d);
  }
  if (l == 0 && need_dt) { /* the last of a backward: through the tanh and the first Linear */
    if (!pb_opc_counting()) memset(c->da, 0, ph * sizeof(float));
    pb_tanh_bwd(c->da, c->t, c->dt, ph);
    pb_matmul_bwd(E->grad, W1->grad, B1->grad, c->da, E->data, W1->data, P, d, H);
  }
  return PB_OK;
}

static const pb_hook_ops prefix_hooks = {
    .version = PB_HOOKS_VERSION,
    .reserve = prefix_reserve,
    .set_mode = prefix_set_mode,
    .kv_prefix = prefix_kv,
    .kv_prefix_bwd = prefix_kv_bwd,
};

/* ---------------------------------------------------------------- attach */

static int add_tensor(pb_model *m, const char *name, int ndim, int r0, int r1, pb_init_kind init, float a) {
  const int shape[2] = {r0, r1};
  int i = pb_params_add(&m->params, name, PB_OWNER_METHOD, ndim, shape, init, a);
  if (i < 0) return i;
  m->params.t[i].trainable = 1;
  m->params.t[i].stored = 1;
  return i;
}

static int prefix_attach(void *vctx, pb_model *m) {
  prefix_ctx *c = vctx;
  if (c->m) return pb_set_error(PB_ERR_ARG, "prefix: already attached to a model");
  if (m->params.frozen_mem || m->params.train_mem)
    return pb_set_error(PB_ERR_ARG, "prefix: attach must come before pb_model_alloc");
  for (int l = 0; l < pb_model_steps(m); l++) { /* pruned heads (pb_model_set_shape): not supported */
    const pb_width w = pb_model_step_width(m, l);
    if (pb_width_attn(w) != w.hidden)
      return pb_set_error(PB_ERR_UNSUPPORTED,
                          "prefix: step %d attends over %d columns (%d heads x %d), not its hidden size %d (pruned "
                          "heads): not supported", l, pb_width_attn(w), w.heads, w.head_dim, w.hidden);
  }
  if (!pb_model_width_uniform(m))
    return pb_set_error(PB_ERR_UNSUPPORTED, "prefix: the model's hidden size changes between steps (width segments)");
  const int S = pb_model_steps(m), d = m->cfg.hidden, P = c->P, H = c->H;
  c->S = S;
  c->d = d;
  c->t = c->dt = c->da = c->kv = NULL;
  c->have_kv = 0;
  if (!c->projection) {
    c->ik = malloc((size_t)S * sizeof *c->ik);
    c->iv = malloc((size_t)S * sizeof *c->iv);
    if (!c->ik || !c->iv) {
      free(c->ik), free(c->iv);
      c->ik = c->iv = NULL;
      return pb_set_error(PB_ERR_NOMEM, "prefix: out of memory");
    }
    char name[PB_NAME_MAX];
    for (int l = 0; l < S; l++) {
      snprintf(name, sizeof name, "prefix.layer.%d.key", l);
      if ((c->ik[l] = add_tensor(m, name, 2, P, d, PB_INIT_NORMAL, c->init_std)) < 0) return c->ik[l];
      snprintf(name, sizeof name, "prefix.layer.%d.value", l);
      if ((c->iv[l] = add_tensor(m, name, 2, P, d, PB_INIT_NORMAL, c->init_std)) < 0) return c->iv[l];
    }
  } else {
    const float u1 = 1.0f / sqrtf((float)d), u2 = 1.0f / sqrtf((float)H); /* nn.Linear: U(+-1/sqrt(in)) */
    if ((c->iemb = add_tensor(m, "prefix.embedding", 2, P, d, PB_INIT_NORMAL, c->init_std)) < 0) return c->iemb;
    if ((c->iw1 = add_tensor(m, "prefix.mlp.0.weight", 2, H, d, PB_INIT_UNIFORM, u1)) < 0) return c->iw1;
    if ((c->ib1 = add_tensor(m, "prefix.mlp.0.bias", 1, H, 0, PB_INIT_UNIFORM, u1)) < 0) return c->ib1;
    if ((c->iw2 = add_tensor(m, "prefix.mlp.2.weight", 2, 2 * S * d, H, PB_INIT_UNIFORM, u2)) < 0) return c->iw2;
    if ((c->ib2 = add_tensor(m, "prefix.mlp.2.bias", 1, 2 * S * d, 0, PB_INIT_UNIFORM, u2)) < 0) return c->ib2;
  }
  c->m = m;
  return pb_model_add_hooks(m, &prefix_hooks, c);
}

static int prefix_destroy(void *vctx) {
  prefix_ctx *c = vctx;
  free(c->ik);
  free(c->iv);
  c->ik = c->iv = NULL;
  return PB_OK;
}

static const pb_method_option prefix_options[] = {
    {.name = "tokens", .type = PB_OPT_INT, .offset = offsetof(prefix_ctx, P), .def = "20", .min = 1, .max = 4096,
     .alias = "P", .help = "virtual tokens P (PEFT num_virtual_tokens): key/value rows per step"},
    {.name = "projection", .type = PB_OPT_INT, .offset = offsetof(prefix_ctx, projection), .def = "0", .min = 0,
     .max = 1, .help = "1: prefixes from an MLP on a [P,d] embedding (PEFT prefix_projection)"},
    {.name = "hidden", .type = PB_OPT_INT, .offset = offsetof(prefix_ctx, H), .def = "512", .min = 1,
     .max = 65536, .help = "MLP hidden size with projection=1 (PEFT encoder_hidden_size)"},
    {.name = "init_std", .type = PB_OPT_FLOAT, .offset = offsetof(prefix_ctx, init_std), .def = "1", .min = 0,
     .max = 1e3, .help = "std of the normal init of the prefixes / embedding (PEFT: N(0,1))"},
};

static const char *const prefix_ref_opts[] = {"tokens=20", "projection=0", NULL};
static const pb_method_refconfig prefix_refs[] = {{"prefix P=20", prefix_ref_opts}};

const pb_method pb_method_prefix = {
    .version = PB_METHOD_VERSION,
    .name = "prefix",
    .summary = "prefix tuning: P trained key/value rows per layer that every query attends to",
    .ctx_size = sizeof(prefix_ctx),
    .init = prefix_init,
    .describe = prefix_describe,
    .attach = prefix_attach,
    /* merge/unmerge: none (the prefix is extra attention work, it cannot fold into a weight) */
    .destroy = prefix_destroy,
    .default_lr = 1e-2, /* prefixes train at high rates (PEFT's prefix-tuning classification examples use
                           1e-2); not tuned here */
    .options = prefix_options,
    .n_options = (int)(sizeof prefix_options / sizeof prefix_options[0]),
    .refconfigs = prefix_refs,
    .n_refconfigs = (int)(sizeof prefix_refs / sizeof prefix_refs[0]),
    .order = 7,
};
