/* LoRA (Hu et al. 2021; HF PEFT semantics): on each targeted linear site of every layer,
 *
 *     y = x W^T + b  +  scale * (drop(x) A^T) B^T,      scale = alpha / r,
 *
 * with A [r, in] (kaiming-uniform like PEFT, or gaussian N(0, 1/r)) and B [out, r] zero, so
 * training starts exactly at the backbone. The backbone stays frozen; A and B train.
 *
 * Tensors: "lora.layer.L.<target>.A" [r, in] and "lora.layer.L.<target>.B" [out, r] for each
 * target in query, key, value, attn_out, ffn_in, ffn_out (default query,value).
 *
 * Dropout (training only) is counter-based on the LoRA input x, seeded from the step seed of
 * set_mode hashed with (layer, site): backward regenerates drop(x) instead of storing it.
 *
 * merge(): W += scale * B A on every target and the hooks switch off (zero added inference
 * ops); unmerge(): W -= scale * B A and the hooks switch back on.
 *
 * Operation count per targeted site and layer over N tokens (what the hooks charge; the analytic
 * count is these hooks run in counting-only mode), p = dropout when training else 0:
 *   forward   MAC  N*in*r + N*r*out                 (u = drop(x) A^T ; t = u B^T)
 *             FLOP N*r (u *= scale) + N*out (y += t) + N*in if p > 0 (dropout of x)
 *   backward  MAC  2*N*r*out (du, dB) + 2*N*in*r (dx, dA)
 *             FLOP N*r (du *= scale) + 2*N*in if p > 0 (regenerate drop(x); dropout backward)
 * Merged inference: 0. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "backbone/ops.h"
#include "util/rng.h"
#include "util/status.h"
#include "methods/method.h"

enum { LORA_INIT_KAIMING = 0, LORA_INIT_GAUSSIAN = 1 };

/* NULL-terminated: also the allowed values of the targets option (bit s = site s) */
static const char *const site_names[PB_LIN_COUNT + 1] = {"query", "key", "value", "attn_out", "ffn_in", "ffn_out", NULL};

typedef struct {
  /* options */
  int r;              /* rank (8) */
  float alpha;        /* scale = alpha / r (16) */
  float dropout;      /* dropout probability on the LoRA input, training only (0) */
  unsigned targets;   /* bit s set: linear site s (pb_linear_site) is adapted (query|value) */
  int init;           /* LORA_INIT_KAIMING | LORA_INIT_GAUSSIAN */
  /* attached state */
  pb_model *m;        /* model attached to (borrowed) */
  int L;              /* layers */
  int ntargets;       /* number of bits set in targets */
  int slot[PB_LIN_COUNT]; /* site -> 0..ntargets-1 (or -1) */
  int *ia, *ib;       /* [L * PB_LIN_COUNT] parameter-table index of A [r,in] / B [out,r]; -1: not adapted */
  int merged;         /* 1: scale*B*A folded into W, hooks are no-ops */
  /* activations (inside the model's activation block) */
  int Ncap;           /* token rows the block was sized for (B*T) */
  float *u;           /* [L][ntargets][Ncap, r]: scale * drop(x) A^T, saved for backward */
  float *du;          /* [Ncap, r] backward scratch */
  float *scratch;     /* [Ncap, maxdim]: drop(x) or u B^T */
  float *scratch2;    /* [Ncap, maxin]: d drop(x) (only when dropout > 0) */
  /* current step */
  int training;       /* dropout on */
  uint64_t seed;      /* step seed from set_mode */
} lora_ctx;

static float lora_scale(const lora_ctx *c) { return c->alpha / (float)c->r; }

/* in/out features of a linear site at step l (its width segment; query/key/value map d to the
 * attention width a = heads * head_dim, attn_out maps a back to d) */
static void site_dims(const pb_model *m, int l, int site, int *in, int *out) {
  const pb_width w = pb_model_step_width(m, l);
  *in = w.hidden;
  *out = w.hidden;
  if (site == PB_LIN_QUERY || site == PB_LIN_KEY || site == PB_LIN_VALUE) *out = pb_width_attn(w);
  if (site == PB_LIN_ATTN_OUT) *in = pb_width_attn(w);
  if (site == PB_LIN_FFN_IN) *out = w.ffn;
  if (site == PB_LIN_FFN_OUT) *in = w.ffn;
}

/* index of the backbone weight of a linear site in layer l */
static int site_weight(const pb_model *m, int l, int site) {
  const pb_layer_idx *x = pb_model_step_weights(m, l);
  switch (site) {
    case PB_LIN_QUERY: return x->qw;
    case PB_LIN_KEY: return x->kw;
    case PB_LIN_VALUE: return x->vw;
    case PB_LIN_ATTN_OUT: return x->ow;
    case PB_LIN_FFN_IN: return x->iw;
    default: return x->fw;
  }
}

/* dropout stream of (step, layer, site), distinct from the backbone's own sites */
static uint64_t lora_seed(const lora_ctx *c, int l, int site) {
  return pb_hash64(c->seed ^ pb_hash64((0x4C6F5241ULL << 24) ^ (((uint64_t)(l + 1) << 8) | (uint64_t)site)));
}

/* ---------------------------------------------------------------- options */

static int lora_init(void *vctx) {
  lora_ctx *c = vctx;
  memset(c, 0, sizeof *c);
  c->r = 8;
  c->alpha = 16.0f;
  c->dropout = 0.0f;
  c->targets = (1u << PB_LIN_QUERY) | (1u << PB_LIN_VALUE);
  c->init = LORA_INIT_KAIMING;
  return PB_OK;
}

/* "r=8,alpha=16,dropout=0,targets=query+value,init=kaiming" ('+' joins targets so that the
 * string stays a comma list of key=value; the option parser accepts it back). */
extern const pb_method pb_method_lora;

static int lora_describe(const void *vctx, char *buf, size_t n) {
  return pb_method_describe_options(&pb_method_lora, vctx, buf, n);
}

/* ---------------------------------------------------------------- hooks */

static int lora_reserve(void *vctx, int B, int T, float *acts, size_t *nfloats) {
  lora_ctx *c = vctx;
  const size_t N = (size_t)B * T, r = (size_t)c->r;
  int maxdim = 0, maxin = 0;
  for (int l = 0; l < c->L; l++)
    for (int s = 0; s < PB_LIN_COUNT; s++) {
      if (!(c->targets & (1u << s))) continue;
      int in, out;
      site_dims(c->m, l, s, &in, &out);
      if (in > maxdim) maxdim = in;
      if (out > maxdim) maxdim = out;
      if (in > maxin) maxin = in;
    }
  const size_t n_u = (size_t)c->L * c->ntargets * N * r, n_du = N * r, n_s = N * (size_t)maxdim;
  const size_t n_s2 = c->dropout > 0 ? N * (size_t)maxin : 0;
  if (!acts) {
    *nfloats = n_u + n_du + n_s + n_s2;
    return PB_OK;
  }
  c->u = acts;
  c->du = c->u + n_u;
  c->scratch = c->du + n_du;
  c->scratch2 = n_s2 ? c->scratch + n_s : NULL;
  c->Ncap = (int)N;
  return PB_OK;
}

static int lora_set_mode(void *vctx, int training, uint64_t seed) {
  lora_ctx *c = vctx;
  c->training = training;
  c->seed = seed;
  return PB_OK;
}

/* 1: site adapted (indices out), 0: not adapted, < 0: error */
static int lookup(const lora_ctx *c, int l, int site, int N, int in, int out, int *ia, int *ib) {
  if (l < 0 || l >= c->L || site < 0 || site >= PB_LIN_COUNT)
    return pb_set_error(PB_ERR_ARG, "lora: hook called for layer %d site %d outside %d layers", l, site, c->L);
  *ia = c->ia[l * PB_LIN_COUNT + site];
  *ib = c->ib[l * PB_LIN_COUNT + site];
  if (*ia < 0) return 0;
  if (!c->u || N > c->Ncap)
    return pb_set_error(PB_ERR_ARG, "lora: %d token rows but activations reserved for %d", N, c->Ncap);
  const pb_tensor *A = &c->m->params.t[*ia], *Bt = &c->m->params.t[*ib];
  if (!A->data || !Bt->data) return pb_set_error(PB_ERR_ARG, "lora: %s used before pb_model_alloc", A->name);
  if (A->shape[1] != in || Bt->shape[0] != out)
    return pb_set_error(PB_ERR_SHAPE, "lora: %s is [%d,%d] / %s is [%d,%d] but the linear maps %d -> %d", A->name,
                        A->shape[0], A->shape[1], Bt->name, Bt->shape[0], Bt->shape[1], in, out);
  return 1;
}

static float *u_slot(const lora_ctx *c, int l, int site) {
  return c->u + ((size_t)l * c->ntargets + c->slot[site]) * (size_t)c->Ncap * c->r;
}

/* x[n] *= s ; charges n FLOP (one multiply each); counting-only mode: the charge alone */
static void scale_inplace(float *x, size_t n, float s) {
  pb_opc_add(PB_OPK_FLOP, (uint64_t)n);
  if (pb_opc_counting()) return;
  for (size_t i = 0; i < n; i++) x[i] *= s;
}

/* y[N,out] += scale * (drop(x) A^T) B^T */
static int lora_linear_fwd(void *vctx, int l, int site, const float *x, float *y, int N, int in, int out) {
  lora_ctx *c = vctx;
  if (c->merged) return PB_OK;
  int ia, ib, rc = lookup(c, l, site, N, in, out, &ia, &ib);
  if (rc <= 0) return rc;
  const float *A = c->m->params.t[ia].data, *Bw = c->m->params.t[ib].data;
  const float p = c->training ? c->dropout : 0.0f;
  const size_t nin = (size_t)N * in;
  float *u = u_slot(c, l, site); /* [N, r] */
  const float *xd = x;
  if (p > 0) {
    pb_dropout_fwd(c->scratch, x, nin, p, lora_seed(c, l, site));
    xd = c->scratch;
  }
  pb_matmul_fwd(u, xd, A, NULL, N, in, c->r);
  scale_inplace(u, (size_t)N * c->r, lora_scale(c));
  pb_matmul_fwd(c->scratch, u, Bw, NULL, N, c->r, out); /* drop(x) is dead: reuse scratch */
  pb_add(y, y, c->scratch, (size_t)N * out);
  return PB_OK;
}

/* dB += dy^T u ; du = scale * dy B ; dA += du^T drop(x) ; dx += drop'(du A) */
static int lora_linear_bwd(void *vctx, int l, int site, const float *x, const float *dy, float *dx, int N, int in,
                           int out) {
  lora_ctx *c = vctx;
  int ia, ib, rc = lookup(c, l, site, N, in, out, &ia, &ib);
  if (rc <= 0) return rc;
  if (c->merged)
    return pb_set_error(PB_ERR_ARG, "lora: backward through merged layer %d %s; unmerge before training", l,
                        site_names[site]);
  const pb_tensor *At = &c->m->params.t[ia], *Bt = &c->m->params.t[ib];
  const float p = c->training ? c->dropout : 0.0f;
  const size_t nin = (size_t)N * in, nr = (size_t)N * c->r;
  const uint64_t seed = lora_seed(c, l, site);
  const float *u = u_slot(c, l, site);
  if (!pb_opc_counting()) memset(c->du, 0, nr * sizeof(float));
  pb_matmul_bwd(c->du, Bt->grad, NULL, dy, u, Bt->data, N, c->r, out);
  scale_inplace(c->du, nr, lora_scale(c));
  if (!dx && !At->grad) return PB_OK;
  const float *xd = x;
  float *dxd = dx;
  if (p > 0) {
    pb_dropout_fwd(c->scratch, x, nin, p, seed); /* regenerate drop(x) from the seed */
    xd = c->scratch;
    if (dx) {
      if (!c->scratch2) return pb_set_error(PB_ERR_ARG, "lora: dropout scratch was not reserved");
      dxd = c->scratch2;
      if (!pb_opc_counting()) memset(dxd, 0, nin * sizeof(float));
    }
  }
  pb_matmul_bwd(dxd, At->grad, NULL, c->du, xd, At->data, N, in, c->r);
  if (p > 0 && dx) pb_dropout_bwd(dx, dxd, nin, p, seed);
  return PB_OK;
}

static const pb_hook_ops lora_hooks = {
    .version = PB_HOOKS_VERSION,
    .reserve = lora_reserve,
    .set_mode = lora_set_mode,
    .linear_fwd = lora_linear_fwd,
    .linear_bwd = lora_linear_bwd,
};

/* ---------------------------------------------------------------- attach, merge */

static int lora_attach(void *vctx, pb_model *m) {
  lora_ctx *c = vctx;
  if (c->m) return pb_set_error(PB_ERR_ARG, "lora: already attached to a model");
  if (m->params.frozen_mem || m->params.train_mem)
    return pb_set_error(PB_ERR_ARG, "lora: attach must come before pb_model_alloc");
  c->L = pb_model_steps(m); /* per encoder step */
  c->ntargets = 0;
  for (int s = 0; s < PB_LIN_COUNT; s++) c->slot[s] = (c->targets & (1u << s)) ? c->ntargets++ : -1;
  c->ia = malloc((size_t)c->L * PB_LIN_COUNT * sizeof *c->ia);
  c->ib = malloc((size_t)c->L * PB_LIN_COUNT * sizeof *c->ib);
  if (!c->ia || !c->ib) {
    free(c->ia), free(c->ib);
    c->ia = c->ib = NULL;
    return pb_set_error(PB_ERR_NOMEM, "lora: out of memory");
  }
  for (int i = 0; i < c->L * PB_LIN_COUNT; i++) c->ia[i] = c->ib[i] = -1;
  char name[PB_NAME_MAX];
  for (int l = 0; l < c->L; l++)
    for (int s = 0; s < PB_LIN_COUNT; s++) {
      if (c->slot[s] < 0) continue;
      int in, out;
      site_dims(m, l, s, &in, &out);
      const int shA[2] = {c->r, in}, shB[2] = {out, c->r};
      const pb_init_kind ka = c->init == LORA_INIT_GAUSSIAN ? PB_INIT_NORMAL : PB_INIT_UNIFORM;
      /* kaiming_uniform(a=sqrt(5)) as PEFT: bound = sqrt(1/3)*sqrt(3/in) = 1/sqrt(in); gaussian: std 1/r */
      const float a = c->init == LORA_INIT_GAUSSIAN ? 1.0f / (float)c->r : 1.0f / sqrtf((float)in);
      snprintf(name, sizeof name, "lora.layer.%d.%s.A", l, site_names[s]);
      int ia = pb_params_add(&m->params, name, PB_OWNER_METHOD, 2, shA, ka, a);
      if (ia < 0) return ia;
      snprintf(name, sizeof name, "lora.layer.%d.%s.B", l, site_names[s]);
      int ib = pb_params_add(&m->params, name, PB_OWNER_METHOD, 2, shB, PB_INIT_ZERO, 0.0f);
      if (ib < 0) return ib;
      m->params.t[ia].trainable = m->params.t[ib].trainable = 1;
      m->params.t[ia].stored = m->params.t[ib].stored = 1;
      c->ia[l * PB_LIN_COUNT + s] = ia;
      c->ib[l * PB_LIN_COUNT + s] = ib;
    }
  c->m = m;
  c->merged = 0;
  return pb_model_add_hooks(m, &lora_hooks, c);
}

/* W[out,in] += sign * scale * B[out,r] A[r,in] on every target (the same float delta both ways) */
static int fold(lora_ctx *c, pb_model *m, float sign) {
  if (!c->m || c->m != m) return pb_set_error(PB_ERR_ARG, "lora: merge/unmerge on a model it is not attached to");
  if (pb_opc_counting()) return PB_OK; /* counting-only mode: the merged state changes, no weight does */
  const double s = (double)lora_scale(c);
  const int r = c->r;
  for (int l = 0; l < c->L; l++)
    for (int site = 0; site < PB_LIN_COUNT; site++) {
      int ia = c->ia[l * PB_LIN_COUNT + site], ib = c->ib[l * PB_LIN_COUNT + site];
      if (ia < 0) continue;
      const pb_tensor *At = &m->params.t[ia], *Bt = &m->params.t[ib];
      pb_tensor *Wt = &m->params.t[site_weight(m, l, site)];
      if (!At->data || !Wt->data) return pb_set_error(PB_ERR_ARG, "lora: merge before pb_model_alloc");
      const int in = At->shape[1], out = Bt->shape[0];
      if (Wt->shape[0] != out || Wt->shape[1] != in)
        return pb_set_error(PB_ERR_SHAPE, "lora: %s is not [%d,%d]", Wt->name, out, in);
      for (int o = 0; o < out; o++) {
        const float *brow = Bt->data + (size_t)o * r;
        float *wrow = Wt->data + (size_t)o * in;
        for (int i = 0; i < in; i++) {
          double acc = 0.0;
          for (int k = 0; k < r; k++) acc += (double)brow[k] * (double)At->data[(size_t)k * in + i];
          wrow[i] += sign * (float)(s * acc);
        }
      }
    }
  return PB_OK;
}

static int lora_merge(void *vctx, pb_model *m) {
  lora_ctx *c = vctx;
  if (c->merged) return pb_set_error(PB_ERR_ARG, "lora: already merged");
  for (int l = 0; l < c->L; l++) /* one delta per step cannot fold into a weight set several steps share */
    for (int k = 0; k < l; k++)
      if (m->plan[k] == m->plan[l])
        return pb_set_error(PB_ERR_UNSUPPORTED, "lora: steps %d and %d share weight set %d: cannot merge", k, l,
                            m->plan[l]);
  int rc = fold(c, m, 1.0f);
  if (rc) return rc;
  c->merged = 1;
  return PB_OK;
}

static int lora_unmerge(void *vctx, pb_model *m) {
  lora_ctx *c = vctx;
  if (!c->merged) return pb_set_error(PB_ERR_ARG, "lora: unmerge without a merge");
  int rc = fold(c, m, -1.0f);
  if (rc) return rc;
  c->merged = 0;
  return PB_OK;
}

static int lora_destroy(void *vctx) {
  lora_ctx *c = vctx;
  free(c->ia);
  free(c->ib);
  c->ia = c->ib = NULL;
  return PB_OK;
}

static const char *const lora_init_names[] = {"kaiming", "gaussian", NULL}; /* LORA_INIT_* order */

static const pb_method_option lora_options[] = {
    {.name = "r", .type = PB_OPT_INT, .offset = offsetof(lora_ctx, r), .def = "8", .min = 1, .max = 65536,
     .help = "rank of A [r,in] and B [out,r]"},
    {.name = "alpha", .type = PB_OPT_FLOAT, .offset = offsetof(lora_ctx, alpha), .def = "16", .min = -1e6,
     .max = 1e6, .help = "scale = alpha / r"},
    {.name = "dropout", .type = PB_OPT_FLOAT, .offset = offsetof(lora_ctx, dropout), .def = "0", .min = 0,
     .max = 1, .max_open = 1, .help = "dropout on the LoRA input, training only"},
    {.name = "targets", .type = PB_OPT_LIST, .offset = offsetof(lora_ctx, targets), .def = "query+value",
     .values = site_names, .help = "adapted linear sites (separators , + | ; : or space)"},
    {.name = "init", .type = PB_OPT_ENUM, .offset = offsetof(lora_ctx, init), .def = "kaiming",
     .values = lora_init_names, .help = "init of A (kaiming-uniform like PEFT, or N(0, 1/r)); B starts at 0"},
};

static const char *const lora_ref_opts[] = {"r=8", "alpha=16", "targets=query,value", "dropout=0", NULL};
static const pb_method_refconfig lora_refs[] = {{"lora r=8 alpha=16 q,v", lora_ref_opts}};

const pb_method pb_method_lora = {
    .version = PB_METHOD_VERSION,
    .name = "lora",
    .summary = "LoRA: low-rank update scale*B*A on chosen linear layers (mergeable)",
    .ctx_size = sizeof(lora_ctx),
    .init = lora_init,
    .describe = lora_describe,
    .attach = lora_attach,
    .merge = lora_merge,
    .unmerge = lora_unmerge,
    .destroy = lora_destroy,
    .default_lr = 5e-4, /* LoRA paper, roberta-base GLUE r=8 (4e-4..5e-4) */
    .options = lora_options,
    .n_options = (int)(sizeof lora_options / sizeof lora_options[0]),
    .refconfigs = lora_refs,
    .n_refconfigs = (int)(sizeof lora_refs / sizeof lora_refs[0]),
    .order = 2,
};
