/* Bottleneck adapters (Houlsby et al. 2019; Pfeiffer et al. 2020) on the sublayer hook.
 *
 * On an adapted sublayer output x[N,d] (after the output projection and its dropout, before
 * residual + LayerNorm) the hook writes
 *     y = x + W_up act(W_down x + b_down) + b_up
 * with W_down [r,d], b_down [r], W_up [d,r], b_up [d] per adapter, act = relu | gelu.
 * Placement: mode=pfeiffer adapts the FFN sublayer of every layer (PB_SUB_FFN); mode=houlsby
 * adapts the attention sublayer (PB_SUB_ATTN) and the FFN sublayer. A site that is not
 * adapted is the identity (y = x, dx += dy): a copy, no arithmetic, nothing charged.
 *
 * Tensors (owner METHOD, trainable, stored): "adapter.layer.L.<attn|ffn>.down.weight" [r,d],
 * ".down.bias" [r], ".up.weight" [d,r], ".up.bias" [d]. Params per adapter 2dr + r + d:
 * bert-base r=8 -> pfeiffer 12 * 13,064 = 156,768; houlsby 313,536.
 * train_ln=1 also trains (and stores) the LayerNorm right after each adapted sublayer
 * (output.LayerNorm for ffn, attention.output.LayerNorm for attn): those are backbone-owned
 * tensors, so they count as trainable backbone parameters, not method parameters.
 *
 * Initialisation (near identity): W_down ~ N(0, init_std) (default 1e-2, as Houlsby's
 * "near-identity" std), b_down = 0, W_up = 0, b_up = 0, so y = x exactly at step 0 and training
 * starts at the backbone. With W_up = 0 the W_down/b_down gradients are zero on the very first
 * step (only W_up, b_up move); from step 2 on all of them do. That is the LoRA-style choice.
 *
 * Op counts (what the hooks charge, owner METHOD; N tokens per adapter; kernels of ops.h; the
 * analytic count is these hooks run in counting-only mode):
 *   forward   MAC 2*N*d*r          FLOP N*r (b_down) + act_f + N*d (b_up) + N*d (residual)
 *                                  TRANS act_t
 *   backward  MAC 4*N*d*r          FLOP N*d (db_up) + act_b + N*r (db_down) + N*d (dx += dy)
 *                                  TRANS act_bt
 *   relu: act_f = N*r, act_b = N*r, no TRANS; gelu: act_f = 4*N*r, act_t = N*r,
 *   act_b = 8*N*r, act_bt = 2*N*r.
 * MACs per token 2dr per adapter: bert-base r=8 pfeiffer 147,456, houlsby 294,912.
 * Not mergeable (the bottleneck is nonlinear). */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "backbone/ops.h"
#include "util/status.h"
#include "methods/method.h"

enum { AD_PFEIFFER = 0, AD_HOULSBY = 1 };
enum { AD_RELU = 0, AD_GELU = 1 };
enum { AD_DW = 0, AD_DB, AD_UW, AD_UB, AD_NT }; /* tensors of one adapter */

typedef struct {
  /* options */
  int mode;       /* AD_PFEIFFER | AD_HOULSBY */
  int r;          /* bottleneck size */
  int act;        /* AD_RELU | AD_GELU */
  int train_ln;   /* 1: also train the LayerNorm after each adapted sublayer */
  float init_std; /* std of W_down at init */
  /* attached state */
  pb_model *m;    /* borrowed */
  int L, d;       /* layers, hidden size of the attached model */
  int *idx;       /* [L][PB_SUB_COUNT][AD_NT] tensor indices, -1 where the site is not adapted */
  /* activation block (from reserve) */
  int capN;       /* B*T capacity of the block */
  float *acts;    /* [n_adapters][2][capN*r]: z = W_down x + b_down, a = act(z) per adapter */
  float *scratch; /* [2][capN*r]: da, dz of the backward */
} adapter_ctx;

static int ad_adapted(const adapter_ctx *c, int site) { return site == PB_SUB_FFN || c->mode == AD_HOULSBY; }
static int ad_per_layer(const adapter_ctx *c) { return c->mode == AD_HOULSBY ? 2 : 1; }
/* slot of (l, site) in the activation block */
static int ad_slot(const adapter_ctx *c, int l, int site) {
  return c->mode == AD_HOULSBY ? 2 * l + site : l;
}

static int ad_init(void *vctx) {
  adapter_ctx *c = vctx;
  memset(c, 0, sizeof *c);
  c->mode = AD_PFEIFFER;
  c->r = 8;
  c->act = AD_RELU;
  c->train_ln = 0;
  c->init_std = 1e-2f;
  return PB_OK;
}

extern const pb_method pb_method_adapter;

static int ad_describe(const void *vctx, char *buf, size_t n) {
  return pb_method_describe_options(&pb_method_adapter, vctx, buf, n);
}

/* ------------------------------------------------------------------ hooks */

static int ad_reserve(void *vctx, int B, int T, float *acts, size_t *nfloats) {
  adapter_ctx *c = vctx;
  const size_t capN = (size_t)B * T, per = capN * (size_t)c->r;
  const size_t n_ad = (size_t)c->L * ad_per_layer(c);
  *nfloats = n_ad * 2 * per + 2 * per;
  if (acts) {
    c->capN = (int)capN;
    c->acts = acts;
    c->scratch = acts + n_ad * 2 * per;
  }
  return PB_OK;
}

static int ad_check(const adapter_ctx *c, int l, int site, int N, int d) {
  if (!c->acts) return pb_set_error(PB_ERR_ARG, "adapter: hook called before pb_model_alloc");
  if (l < 0 || l >= c->L || site < 0 || site >= PB_SUB_COUNT)
    return pb_set_error(PB_ERR_ARG, "adapter: bad hook site (layer %d, site %d)", l, site);
  const int dl = pb_model_step_width(c->m, l).hidden;
  if (d != dl || N < 0 || N > c->capN)
    return pb_set_error(PB_ERR_SHAPE, "adapter: hook got %d x %d rows, capacity %d x %d", N, d, c->capN, dl);
  return PB_OK;
}

/* y[N,d] = x + W_up act(W_down x + b_down) + b_up   (or y = x on a site that is not adapted) */
static int ad_sublayer_fwd(void *vctx, int l, int site, const float *x, float *y, int N, int d) {
  adapter_ctx *c = vctx;
  int rc = ad_check(c, l, site, N, d);
  if (rc) return rc;
  const size_t nd = (size_t)N * d;
  if (!ad_adapted(c, site)) {
    if (!pb_opc_counting()) memcpy(y, x, nd * sizeof(float)); /* identity: not method arithmetic, not charged */
    return PB_OK;
  }
  pb_model *m = c->m;
  const int *ix = c->idx + ((size_t)l * PB_SUB_COUNT + site) * AD_NT;
  const int r = c->r;
  const size_t per = (size_t)c->capN * r;
  float *z = c->acts + (size_t)ad_slot(c, l, site) * 2 * per, *a = z + per; /* [N,r] each */
  pb_matmul_fwd(z, x, pb_w(m, ix[AD_DW]), pb_w(m, ix[AD_DB]), N, d, r);
  if (c->act == AD_GELU) pb_gelu_fwd(a, z, (size_t)N * r);
  else pb_relu_fwd(a, z, (size_t)N * r);
  pb_matmul_fwd(y, a, pb_w(m, ix[AD_UW]), pb_w(m, ix[AD_UB]), N, r, d);
  pb_add(y, y, x, nd);
  return PB_OK;
}

/* dx[N,d] += dy + W_down^T (act'(z) * (W_up^T dy)); parameter grads accumulate */
static int ad_sublayer_bwd(void *vctx, int l, int site, const float *x, const float *dy, float *dx, int N, int d) {
  adapter_ctx *c = vctx;
  int rc = ad_check(c, l, site, N, d);
  if (rc) return rc;
  const size_t nd = (size_t)N * d;
  if (!ad_adapted(c, site)) {
    if (!pb_opc_counting())
      for (size_t i = 0; i < nd; i++) dx[i] += dy[i]; /* identity: not charged */
    return PB_OK;
  }
  pb_model *m = c->m;
  const int *ix = c->idx + ((size_t)l * PB_SUB_COUNT + site) * AD_NT;
  const int r = c->r;
  const size_t per = (size_t)c->capN * r, nr = (size_t)N * r;
  const float *z = c->acts + (size_t)ad_slot(c, l, site) * 2 * per, *a = z + per;
  float *da = c->scratch, *dz = c->scratch + per;
  if (!pb_opc_counting()) {
    memset(da, 0, nr * sizeof(float));
    memset(dz, 0, nr * sizeof(float));
  }
  pb_matmul_bwd(da, pb_g(m, ix[AD_UW]), pb_g(m, ix[AD_UB]), dy, a, pb_w(m, ix[AD_UW]), N, r, d);
  if (c->act == AD_GELU) pb_gelu_bwd(dz, z, da, nr);
  else pb_relu_bwd(dz, z, da, nr);
  pb_matmul_bwd(dx, pb_g(m, ix[AD_DW]), pb_g(m, ix[AD_DB]), dz, x, pb_w(m, ix[AD_DW]), N, d, r);
  pb_add(dx, dx, dy, nd); /* the adapter's own skip connection */
  return PB_OK;
}

static const pb_hook_ops adapter_hooks = {
    .version = PB_HOOKS_VERSION,
    .reserve = ad_reserve,
    .sublayer_fwd = ad_sublayer_fwd,
    .sublayer_bwd = ad_sublayer_bwd,
};

/* ------------------------------------------------------------------ attach */

static int ad_attach(void *vctx, pb_model *m) {
  adapter_ctx *c = vctx;
  if (m->params.frozen_mem || m->params.train_mem)
    return pb_set_error(PB_ERR_ARG, "adapter: attach must come before pb_model_alloc");
  const int L = pb_model_steps(m), r = c->r; /* per encoder step, at its width */
  free(c->idx);
  c->idx = malloc((size_t)L * PB_SUB_COUNT * AD_NT * sizeof(int));
  if (!c->idx) return pb_set_error(PB_ERR_NOMEM, "adapter: out of memory");
  c->L = L;
  c->m = m;
  c->acts = c->scratch = NULL;
  static const char *site_name[PB_SUB_COUNT] = {"attn", "ffn"};
  char name[PB_NAME_MAX];
  for (int l = 0; l < L; l++) {
    const int d = pb_model_step_width(m, l).hidden;
    for (int s = 0; s < PB_SUB_COUNT; s++) {
      int *ix = c->idx + ((size_t)l * PB_SUB_COUNT + s) * AD_NT;
      for (int k = 0; k < AD_NT; k++) ix[k] = -1;
      if (!ad_adapted(c, s)) continue;
      const struct {
        const char *suffix;
        int ndim, s0, s1;
        pb_init_kind init;
        float a;
      } spec[AD_NT] = {
          {"down.weight", 2, r, d, PB_INIT_NORMAL, c->init_std},
          {"down.bias", 1, r, 0, PB_INIT_ZERO, 0.0f},
          {"up.weight", 2, d, r, PB_INIT_ZERO, 0.0f},
          {"up.bias", 1, d, 0, PB_INIT_ZERO, 0.0f},
      };
      for (int k = 0; k < AD_NT; k++) {
        snprintf(name, sizeof name, "adapter.layer.%d.%s.%s", l, site_name[s], spec[k].suffix);
        int shape[2] = {spec[k].s0, spec[k].s1};
        int i = pb_params_add(&m->params, name, PB_OWNER_METHOD, spec[k].ndim, shape, spec[k].init, spec[k].a);
        if (i < 0) return i;
        m->params.t[i].trainable = 1;
        m->params.t[i].stored = 1;
        ix[k] = i;
      }
      if (c->train_ln) {
        const pb_layer_idx *w = pb_model_step_weights(m, l);
        int lw = s == PB_SUB_ATTN ? w->ln1w : w->ln2w, lb = s == PB_SUB_ATTN ? w->ln1b : w->ln2b;
        m->params.t[lw].trainable = m->params.t[lb].trainable = 1;
        m->params.t[lw].stored = m->params.t[lb].stored = 1;
      }
    }
  }
  return pb_model_add_hooks(m, &adapter_hooks, c);
}

static int ad_destroy(void *vctx) {
  adapter_ctx *c = vctx;
  free(c->idx);
  c->idx = NULL;
  return PB_OK;
}

static const char *const ad_mode_names[] = {"pfeiffer", "houlsby", NULL}; /* AD_PFEIFFER, AD_HOULSBY */
static const char *const ad_act_names[] = {"relu", "gelu", NULL};         /* AD_RELU, AD_GELU */

static const pb_method_option ad_options[] = {
    {.name = "mode", .type = PB_OPT_ENUM, .offset = offsetof(adapter_ctx, mode), .def = "pfeiffer",
     .values = ad_mode_names, .help = "pfeiffer: after the FFN; houlsby: after attention and the FFN"},
    {.name = "r", .type = PB_OPT_INT, .offset = offsetof(adapter_ctx, r), .def = "8", .min = 1, .max = 1 << 20,
     .alias = "bottleneck", .help = "bottleneck size"},
    {.name = "act", .type = PB_OPT_ENUM, .offset = offsetof(adapter_ctx, act), .def = "relu", .values = ad_act_names,
     .help = "bottleneck activation"},
    {.name = "train_ln", .type = PB_OPT_INT, .offset = offsetof(adapter_ctx, train_ln), .def = "0", .min = 0,
     .max = 1, .help = "1: also train the LayerNorm after each adapted sublayer"},
    {.name = "init_std", .type = PB_OPT_FLOAT, .offset = offsetof(adapter_ctx, init_std), .def = "0.01", .min = 0,
     .max = 10, .help = "std of W_down, W_up starts at 0"},
};

static const char *const ad_ref_pfeiffer[] = {"mode=pfeiffer", "r=8", "act=relu", NULL};
static const char *const ad_ref_houlsby[] = {"mode=houlsby", "r=8", "act=relu", NULL};
static const pb_method_refconfig ad_refs[] = {
    {"adapter pfeiffer r=8", ad_ref_pfeiffer},
    {"adapter houlsby r=8", ad_ref_houlsby},
};

const pb_method pb_method_adapter = {
    .version = PB_METHOD_VERSION,
    .name = "adapter",
    .summary = "bottleneck adapters after the FFN (pfeiffer) or after attention and FFN (houlsby)",
    .ctx_size = sizeof(adapter_ctx),
    .init = ad_init,
    .describe = ad_describe,
    .attach = ad_attach,
    /* merge/unmerge: nonlinear, not mergeable; ops: reserved (counts come from the hooks) */
    .destroy = ad_destroy,
    .default_lr = 1e-3, /* inside Houlsby et al.'s sweep (3e-5..3e-3); AdapterHub uses 1e-4 for long runs */
    .options = ad_options,
    .n_options = (int)(sizeof ad_options / sizeof ad_options[0]),
    .refconfigs = ad_refs,
    .n_refconfigs = (int)(sizeof ad_refs / sizeof ad_refs[0]),
    .order = 3,
};
