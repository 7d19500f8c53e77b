/* (IA)^3 (Liu et al. 2022, "Few-Shot Parameter-Efficient Fine-Tuning is Better and Cheaper than
 * In-Context Learning"; Hugging Face PEFT IA3 semantics): learned vectors rescale activations
 * elementwise. The backbone stays frozen; the vectors (and the head) train.
 *
 * The rule, per targeted linear site of every encoder step l (targets: any of query, key,
 * value, attn_out, ffn_in, ffn_out; default key,value,ffn_out as PEFT's BERT defaults
 * target_modules = key, value, output.dense with feedforward_modules = output.dense):
 *   ffn_out (output.dense) is a FEED-FORWARD site: its INPUT is scaled,
 *       y = (x * l) W^T + b,   l [F], x = the GELU output            (linear_in hook)
 *   every other site is scaled at its OUTPUT, bias included,
 *       y = (x W^T + b) * l,   l [out]: d, or F for ffn_in (before the GELU)  (linear_out hook)
 * This is PEFT's IA3 Linear with is_feedforward = (site == ffn_out); ffn_in (intermediate.dense)
 * is output-scaled, as PEFT does when it is a target but not a feed-forward module.
 *
 * Tensors: "ia3.layer.L.<site>" [n] (n = F for ffn_out / ffn_in, else d) for every encoder
 * step L = 0..pb_model_steps(m)-1 (the hook index), initialised to 1 so that training starts
 * exactly at the backbone (y * 1 == y bit for bit). Trainable and stored; no weight decay (they
 * are gains, like LayerNorm weights). At bert-base with the defaults: 12 * (768 + 768 + 3072) =
 * 55,296 trainable.
 *
 * Activations (reserve): per step and output-scaled site a copy of the pre-scaling y [N,out]
 * (dl = sum_n y * dy needs it; the backbone keeps only the scaled y); for ffn_out the scaled
 * input x' [N,F] the backbone multiplies. x' is one buffer per step when the backbone reads it
 * again in backward (an ffn_out weight is trainable, or another hook of the chain has linear_bwd,
 * which is handed x'), otherwise a single buffer every step reuses (linear_in_bwd gets the
 * original x from the backbone).
 *
 * merge(): output scaling folds into W and b row by row (W[o,:] *= l[o], b[o] *= l[o]); input
 * scaling of ffn_out folds into W column by column (W[:,i] *= l[i]; b unchanged); the hooks then
 * switch off: merged inference adds zero operations. unmerge() divides by the same floats, which
 * restores W and b up to one rounding. merge refuses (PB_ERR_ARG, weights untouched) a vector
 * entry that is 0, not finite, or outside 1e-12 <= |l| <= 1e12 (the division could not undo it),
 * and a layer plan where one weight set runs several steps (PB_ERR_UNSUPPORTED: one fold per
 * step would not fit one shared W). The fold is exact for the backbone alone; another hook adding
 * into the same site (e.g. LoRA) is not rescaled by it.
 *
 * Operation count per targeted site and step over N tokens (what the hooks charge, owner METHOD;
 * the analytic count is these hooks run in counting-only mode), n = vector size:
 *   forward   FLOP N*n                 (y *= l, or x' = x * l; the copy of y is not arithmetic)
 *   backward  output site  FLOP N*n (dy *= l) + 2*N*n (dl += y * dy)
 *             ffn_out      FLOP 2*N*n (dx += l * dx') + 2*N*n (dl += x * dx')
 *             (each term only when that gradient exists: dl when the vector trains, dx when the
 *             backbone asks for it)
 * No MACs, no transcendentals. Merged inference: 0.
 *
 * Models whose attention width differs from the hidden size (pruned heads, pb_model_set_shape)
 * and width segments are refused at attach (PB_ERR_UNSUPPORTED): the vectors are sized d and F. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "util/status.h"
#include "methods/method.h"

/* NULL-terminated: also the allowed values of the targets option (bit s = site s) */
static const char *const site_names[PB_LIN_COUNT + 1] = {"query", "key", "value", "attn_out", "ffn_in", "ffn_out", NULL};

#define IA3_MIN_ABS 1e-12f /* merge refuses |l| outside [IA3_MIN_ABS, IA3_MAX_ABS] */
#define IA3_MAX_ABS 1e12f

typedef struct {
  /* options */
  unsigned targets;        /* bit s set: linear site s (pb_linear_site) is scaled (key|value|ffn_out) */
  /* attached state */
  pb_model *m;             /* model attached to (borrowed) */
  int S;                   /* encoder steps the hooks are called for (pb_model_steps) */
  int d, F;                /* hidden, intermediate size */
  int *iv;                 /* [S * PB_LIN_COUNT] parameter-table index of the vector; -1: not targeted */
  int yoff[PB_LIN_COUNT];  /* output site -> float offset / Ncap of its y copy inside one step (-1: none) */
  int ystep;               /* floats / Ncap of the y copies of one step (sum of their out) */
  int merged;              /* 1: vectors folded into W (and b), hooks are no-ops */
  /* activations (inside the model's activation block) */
  int Ncap;                /* token rows the block was sized for (B*T) */
  float *ysave;            /* [S][ystep * Ncap]: pre-scaling y of each output site, for dl */
  float *xs;               /* [xs_steps][Ncap, F]: x' = x * l of ffn_out */
  int xs_steps;            /* 0 (no ffn_out), 1 (shared) or S (kept for the backbone's backward) */
} ia3_ctx;

/* vector size of a site: the input of ffn_out, the output of the others */
static int site_dim(const pb_config *cfg, int site) {
  return site == PB_LIN_FFN_IN || site == PB_LIN_FFN_OUT ? cfg->ffn : cfg->hidden;
}

/* weight and bias of a linear site in a weight set */
static void site_wb(const pb_layer_idx *x, int site, int *wi, int *bi) {
  switch (site) {
    case PB_LIN_QUERY: *wi = x->qw, *bi = x->qb; break;
    case PB_LIN_KEY: *wi = x->kw, *bi = x->kb; break;
    case PB_LIN_VALUE: *wi = x->vw, *bi = x->vb; break;
    case PB_LIN_ATTN_OUT: *wi = x->ow, *bi = x->ob; break;
    case PB_LIN_FFN_IN: *wi = x->iw, *bi = x->ib; break;
    default: *wi = x->fw, *bi = x->fb; break;
  }
}

/* ---------------------------------------------------------------- options */

static int ia3_init(void *vctx) {
  ia3_ctx *c = vctx;
  memset(c, 0, sizeof *c);
  c->targets = (1u << PB_LIN_KEY) | (1u << PB_LIN_VALUE) | (1u << PB_LIN_FFN_OUT);
  return PB_OK;
}

extern const pb_method pb_method_ia3;

/* "targets=key+value+ffn_out" */
static int ia3_describe(const void *vctx, char *buf, size_t n) {
  return pb_method_describe_options(&pb_method_ia3, vctx, buf, n);
}

/* ---------------------------------------------------------------- hooks */

static int ia3_reserve(void *vctx, int B, int T, float *acts, size_t *nfloats) {
  ia3_ctx *c = vctx;
  const pb_model *m = c->m;
  const size_t N = (size_t)B * T;
  int xs_steps = 0;
  if (c->targets & (1u << PB_LIN_FFN_OUT)) {
    xs_steps = 1;
    for (int s = 0; s < c->S; s++)
      if (m->params.t[pb_model_step_weights(m, s)->fw].trainable) xs_steps = c->S;
    for (int h = 0; h < m->n_hooks; h++)
      if (m->hooks[h].ctx != c && m->hooks[h].ops && m->hooks[h].ops->linear_bwd) xs_steps = c->S;
  }
  const size_t n_y = (size_t)c->S * c->ystep * N, n_x = (size_t)xs_steps * N * c->F;
  if (!acts) {
    *nfloats = n_y + n_x;
    return PB_OK;
  }
  c->ysave = n_y ? acts : NULL;
  c->xs = n_x ? acts + n_y : NULL;
  c->xs_steps = xs_steps;
  c->Ncap = (int)N;
  return PB_OK;
}

/* 1: (l, site) is scaled, *iv its vector; 0: not at this site (or merged); < 0: error. want_in:
 * the caller is the input hook (only ffn_out) or the output hook (every other site). */
static int lookup(const ia3_ctx *c, int l, int site, int N, int n, int want_in, int *iv) {
  if (!c->m || l < 0 || l >= c->S || site < 0 || site >= PB_LIN_COUNT)
    return pb_set_error(PB_ERR_ARG, "ia3: hook called for step %d site %d outside %d steps", l, site, c->S);
  *iv = c->iv[l * PB_LIN_COUNT + site];
  if (*iv < 0 || (site == PB_LIN_FFN_OUT) != want_in) return 0;
  if (N < 0 || N > c->Ncap || (want_in ? !c->xs : !c->ysave))
    return pb_set_error(PB_ERR_ARG, "ia3: %d token rows but activations reserved for %d", N, c->Ncap);
  const pb_tensor *t = &c->m->params.t[*iv];
  if (!t->data) return pb_set_error(PB_ERR_ARG, "ia3: %s used before pb_model_alloc", t->name);
  if (t->shape[0] != n)
    return pb_set_error(PB_ERR_SHAPE, "ia3: %s is [%d] but the linear's %s has %d features", t->name, t->shape[0],
                        want_in ? "input" : "output", n);
  return 1;
}

static float *y_slot(const ia3_ctx *c, int l, int site) {
  return c->ysave + ((size_t)l * c->ystep + c->yoff[site]) * (size_t)c->Ncap;
}

static float *x_slot(const ia3_ctx *c, int l) {
  return c->xs + (c->xs_steps > 1 ? (size_t)l : 0) * (size_t)c->Ncap * c->F;
}

/* y[N,out] <- y * l (keeping the pre-scaling y for backward) */
static int ia3_out_fwd(void *vctx, int l, int site, float *y, int N, int out) {
  ia3_ctx *c = vctx;
  if (c->merged) return PB_OK;
  int iv, rc = lookup(c, l, site, N, out, 0, &iv);
  if (rc <= 0) return rc;
  pb_opc_add(PB_OPK_FLOP, (uint64_t)N * out);
  if (pb_opc_counting()) return PB_OK;
  const float *v = c->m->params.t[iv].data;
  memcpy(y_slot(c, l, site), y, (size_t)N * out * sizeof(float));
  for (int n = 0; n < N; n++) {
    float *yr = y + (size_t)n * out;
    for (int o = 0; o < out; o++) yr[o] *= v[o];
  }
  return PB_OK;
}

/* dl += sum_n y * dy ; dy <- dy * l */
static int ia3_out_bwd(void *vctx, int l, int site, float *dy, int N, int out) {
  ia3_ctx *c = vctx;
  int iv, rc;
  if (c->merged) {
    if (l >= 0 && l < c->S && site >= 0 && site < PB_LIN_COUNT && c->iv && c->iv[l * PB_LIN_COUNT + site] >= 0)
      return pb_set_error(PB_ERR_ARG, "ia3: backward through merged step %d %s; unmerge before training", l,
                          site_names[site]);
    return PB_OK;
  }
  if ((rc = lookup(c, l, site, N, out, 0, &iv)) <= 0) return rc;
  const pb_tensor *t = &c->m->params.t[iv];
  pb_opc_add(PB_OPK_FLOP, (uint64_t)N * out * (t->grad ? 3 : 1));
  if (pb_opc_counting()) return PB_OK;
  const float *v = t->data, *ys = y_slot(c, l, site);
  float *g = t->grad;
  for (int n = 0; n < N; n++) {
    float *dr = dy + (size_t)n * out;
    const float *yr = ys + (size_t)n * out;
    if (g)
      for (int o = 0; o < out; o++) g[o] += yr[o] * dr[o];
    for (int o = 0; o < out; o++) dr[o] *= v[o];
  }
  return PB_OK;
}

/* x' = x * l into the ctx's buffer; *xo = x' */
static int ia3_in_fwd(void *vctx, int l, int site, const float *x, const float **xo, int N, int in) {
  ia3_ctx *c = vctx;
  if (c->merged) return PB_OK;
  int iv, rc = lookup(c, l, site, N, in, 1, &iv);
  if (rc <= 0) return rc;
  float *xs = x_slot(c, l);
  pb_opc_add(PB_OPK_FLOP, (uint64_t)N * in);
  *xo = xs; /* also when counting: the backbone's path is the real one (it touches nothing) */
  if (pb_opc_counting()) return PB_OK;
  const float *v = c->m->params.t[iv].data;
  for (int n = 0; n < N; n++) {
    const float *xr = x + (size_t)n * in;
    float *o = xs + (size_t)n * in;
    for (int i = 0; i < in; i++) o[i] = xr[i] * v[i];
  }
  return PB_OK;
}

/* dx += l * dx' ; dl += sum_n x * dx' */
static int ia3_in_bwd(void *vctx, int l, int site, const float *x, const float *dxo, float *dx, int N, int in) {
  ia3_ctx *c = vctx;
  int iv, rc;
  if (c->merged) {
    if (l >= 0 && l < c->S && site == PB_LIN_FFN_OUT && c->iv && c->iv[l * PB_LIN_COUNT + site] >= 0)
      return pb_set_error(PB_ERR_ARG, "ia3: backward through merged step %d ffn_out; unmerge before training", l);
    return PB_OK;
  }
  if ((rc = lookup(c, l, site, N, in, 1, &iv)) <= 0) return rc;
  const pb_tensor *t = &c->m->params.t[iv];
  float *g = t->grad;
  pb_opc_add(PB_OPK_FLOP, (uint64_t)N * in * ((dx ? 2 : 0) + (g ? 2 : 0)));
  if (pb_opc_counting()) return PB_OK;
  const float *v = t->data;
  for (int n = 0; n < N; n++) {
    const float *dr = dxo + (size_t)n * in, *xr = x + (size_t)n * in;
    if (dx) {
      float *o = dx + (size_t)n * in;
      for (int i = 0; i < in; i++) o[i] += v[i] * dr[i];
    }
    if (g)
      for (int i = 0; i < in; i++) g[i] += xr[i] * dr[i];
  }
  return PB_OK;
}

static const pb_hook_ops ia3_hooks = {
    .version = PB_HOOKS_VERSION,
    .reserve = ia3_reserve,
    .linear_in_fwd = ia3_in_fwd,
    .linear_in_bwd = ia3_in_bwd,
    .linear_out_fwd = ia3_out_fwd,
    .linear_out_bwd = ia3_out_bwd,
};

/* ---------------------------------------------------------------- attach, merge */

static int ia3_attach(void *vctx, pb_model *m) {
  ia3_ctx *c = vctx;
  if (c->m) return pb_set_error(PB_ERR_ARG, "ia3: already attached to a model");
  if (m->params.frozen_mem || m->params.train_mem || m->act_mem)
    return pb_set_error(PB_ERR_ARG, "ia3: attach must come before pb_model_alloc");
  for (int l = 0; l < pb_model_steps(m); l++) { /* pruned heads (pb_model_set_shape): not supported */
    const pb_width w = pb_model_step_width(m, l);
    if (pb_width_attn(w) != w.hidden)
      return pb_set_error(PB_ERR_UNSUPPORTED,
                          "ia3: step %d attends over %d columns (%d heads x %d), not its hidden size %d (pruned "
                          "heads): not supported", l, pb_width_attn(w), w.heads, w.head_dim, w.hidden);
  }
  if (!pb_model_width_uniform(m))
    return pb_set_error(PB_ERR_UNSUPPORTED, "ia3: the model's hidden size changes between steps (width segments)");
  const pb_config *cfg = &m->cfg;
  const int S = pb_model_steps(m);
  if (S < 1) return pb_set_error(PB_ERR_ARG, "ia3: the model has %d encoder steps", S);
  int *iv = malloc((size_t)S * PB_LIN_COUNT * sizeof *iv);
  if (!iv) return pb_set_error(PB_ERR_NOMEM, "ia3: out of memory");
  for (int i = 0; i < S * PB_LIN_COUNT; i++) iv[i] = -1;
  c->ystep = 0;
  for (int s = 0; s < PB_LIN_COUNT; s++) {
    c->yoff[s] = -1;
    if ((c->targets & (1u << s)) && s != PB_LIN_FFN_OUT) {
      c->yoff[s] = c->ystep;
      c->ystep += site_dim(cfg, s);
    }
  }
  char name[PB_NAME_MAX];
  for (int l = 0; l < S; l++)
    for (int s = 0; s < PB_LIN_COUNT; s++) {
      if (!(c->targets & (1u << s))) continue;
      const int shape[1] = {site_dim(cfg, s)};
      snprintf(name, sizeof name, "ia3.layer.%d.%s", l, site_names[s]);
      int i = pb_params_add(&m->params, name, PB_OWNER_METHOD, 1, shape, PB_INIT_ONE, 0.0f);
      if (i < 0) {
        free(iv);
        return i;
      }
      pb_tensor *t = &m->params.t[i];
      t->trainable = t->stored = 1;
      t->decay = 0;
      iv[l * PB_LIN_COUNT + s] = i;
    }
  c->m = m;
  c->S = S;
  c->d = cfg->hidden;
  c->F = cfg->ffn;
  c->iv = iv;
  c->merged = 0;
  int rc = pb_model_add_hooks(m, &ia3_hooks, c);
  if (rc) {
    c->m = NULL; /* its tensors stay in the table (a declared model cannot drop them) */
    return rc;
  }
  return PB_OK;
}

/* checks that every vector can be folded and unfolded (nothing is changed on failure) */
static int fold_check(const ia3_ctx *c, const pb_model *m) {
  for (int l = 0; l < c->S; l++)
    for (int k = 0; k < l; k++)
      if (m->plan[k] == m->plan[l])
        return pb_set_error(PB_ERR_UNSUPPORTED,
                            "ia3: steps %d and %d share weight set %d; per-step vectors cannot fold into one W", k,
                            l, m->plan[l]);
  for (int i = 0; i < c->S * PB_LIN_COUNT; i++) {
    if (c->iv[i] < 0) continue;
    const pb_tensor *t = &m->params.t[c->iv[i]];
    if (!t->data) return pb_set_error(PB_ERR_ARG, "ia3: merge before pb_model_alloc");
    for (size_t j = 0; j < t->numel; j++) {
      const float a = fabsf(t->data[j]);
      if (!(a >= IA3_MIN_ABS && a <= IA3_MAX_ABS))
        return pb_set_error(PB_ERR_ARG, "ia3: cannot merge %s[%zu] = %g (|l| must be in [%g, %g] to unmerge)",
                            t->name, j, (double)t->data[j], (double)IA3_MIN_ABS, (double)IA3_MAX_ABS);
    }
  }
  return PB_OK;
}

/* multiplies (div = 0) or divides (div = 1) the site weights by the vectors */
static int fold(ia3_ctx *c, pb_model *m, int div) {
  for (int l = 0; l < c->S; l++)
    for (int site = 0; site < PB_LIN_COUNT; site++) {
      const int iv = c->iv[l * PB_LIN_COUNT + site];
      if (iv < 0) continue;
      const float *v = m->params.t[iv].data;
      int wi, bi;
      site_wb(pb_model_step_weights(m, l), site, &wi, &bi);
      pb_tensor *Wt = &m->params.t[wi], *bt = &m->params.t[bi];
      const int out = Wt->shape[0], in = Wt->shape[1], n = m->params.t[iv].shape[0];
      if (!Wt->data || !bt->data) return pb_set_error(PB_ERR_ARG, "ia3: merge before pb_model_alloc");
      if (n != (site == PB_LIN_FFN_OUT ? in : out))
        return pb_set_error(PB_ERR_SHAPE, "ia3: %s is [%d,%d], %s [%d]", Wt->name, out, in, m->params.t[iv].name, n);
      float *W = Wt->data, *b = bt->data;
      if (site == PB_LIN_FFN_OUT) { /* input scaling: columns */
        for (int o = 0; o < out; o++) {
          float *wr = W + (size_t)o * in;
          if (div)
            for (int i = 0; i < in; i++) wr[i] /= v[i];
          else
            for (int i = 0; i < in; i++) wr[i] *= v[i];
        }
      } else { /* output scaling: rows and the bias */
        for (int o = 0; o < out; o++) {
          float *wr = W + (size_t)o * in;
          const float s = v[o];
          if (div) {
            for (int i = 0; i < in; i++) wr[i] /= s;
            b[o] /= s;
          } else {
            for (int i = 0; i < in; i++) wr[i] *= s;
            b[o] *= s;
          }
        }
      }
    }
  return PB_OK;
}

static int ia3_merge(void *vctx, pb_model *m) {
  ia3_ctx *c = vctx;
  if (!c->m || c->m != m) return pb_set_error(PB_ERR_ARG, "ia3: merge on a model it is not attached to");
  if (c->merged) return pb_set_error(PB_ERR_ARG, "ia3: already merged");
  if (!pb_opc_counting()) { /* counting-only mode: the merged state changes, no weight does */
    int rc = fold_check(c, m);
    if (!rc) rc = fold(c, m, 0);
    if (rc) return rc;
  }
  c->merged = 1;
  return PB_OK;
}

static int ia3_unmerge(void *vctx, pb_model *m) {
  ia3_ctx *c = vctx;
  if (!c->m || c->m != m) return pb_set_error(PB_ERR_ARG, "ia3: unmerge on a model it is not attached to");
  if (!c->merged) return pb_set_error(PB_ERR_ARG, "ia3: unmerge without a merge");
  if (!pb_opc_counting()) {
    int rc = fold(c, m, 1);
    if (rc) return rc;
  }
  c->merged = 0;
  return PB_OK;
}

static int ia3_destroy(void *vctx) {
  ia3_ctx *c = vctx;
  free(c->iv);
  c->iv = NULL;
  return PB_OK;
}

static const pb_method_option ia3_options[] = {
    {.name = "targets", .type = PB_OPT_LIST, .offset = offsetof(ia3_ctx, targets), .def = "key+value+ffn_out",
     .values = site_names,
     .help = "scaled linear sites: ffn_out scales its input [F], the others their output (separators , + | ; : or "
             "space)"},
};

static const char *const ia3_ref_opts[] = {"targets=key,value,ffn_out", NULL};
static const pb_method_refconfig ia3_refs[] = {{"ia3 k,v,ff", ia3_ref_opts}};

const pb_method pb_method_ia3 = {
    .version = PB_METHOD_VERSION,
    .name = "ia3",
    .summary = "(IA)^3: learned vectors rescale keys, values and the FFN's inner activations (mergeable)",
    .ctx_size = sizeof(ia3_ctx),
    .init = ia3_init,
    .describe = ia3_describe,
    .attach = ia3_attach,
    .merge = ia3_merge,
    .unmerge = ia3_unmerge,
    .destroy = ia3_destroy,
    .default_lr = 3e-3, /* T-Few (Liu et al. 2022): (IA)^3 trained with learning rate 3e-3 */
    .options = ia3_options,
    .n_options = (int)(sizeof ia3_options / sizeof ia3_options[0]),
    .refconfigs = ia3_refs,
    .n_refconfigs = (int)(sizeof ia3_refs / sizeof ia3_refs[0]),
    .order = 6,
};
