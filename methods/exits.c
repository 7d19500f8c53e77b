/* Multi-exit model with entropy-based early exiting, the dynamic-inference part of COST-EFF
 * (Shen et al., EMNLP 2022, "COST-EFF: Collaborative Optimization of Spatial and Temporal
 * Efficiency with Slenderized Multi-exit Language Models"; slenderization is not part of this
 * method).
 *
 * An exit after every encoder step but the last (a 1-step model gets none and no hook): exit l
 * (l = 0..S-2) is a pooler (pooler=dense, the default: dense d->d + tanh on the [CLS] row of
 * step l's output; pooler=tanh: tanh on [CLS] alone, COST-EFF's code's pooler_dense=False) and a
 * classifier (d->C), the same head the model has (pb_head_fwd / pb_head_bwd), with its own tensors
 *     exit.L.pooler.dense.weight [d,d]   exit.L.pooler.dense.bias [d]   (pooler=dense only)
 *     exit.L.classifier.weight   [C,d]   exit.L.classifier.bias   [C]
 * (owner METHOD, trainable, stored). init=copy (default): at the first real training forward
 * every exit gets a copy of the model's pooler and classifier as they are then (loaded from the
 * checkpoint, or initialised); init=random: normal(0, init_range) weights, zero biases, like the
 * model's head. Which of the two COST-EFF's code does is our reading, not certain.
 *
 * Training (a forward with labels, or targets for regression): every exit computes its loss on
 * the rows' labels, loss = final loss + sum_l weight * loss_l (cross-entropy; MSE for C = 1),
 * weight 1 by default (our reading of "the final loss plus the sum of the exit losses"); the
 * gradients come back through after_layer_bwd (pb_head_bwd with that weight). Rows never leave a
 * labelled forward. train_backbone=1 (default): every backbone tensor trains and is stored (as
 * COST-EFF's full fine-tuning); 0: the backbone stays frozen, only the exits and the task head
 * train, which composes with PEFT methods (--method lora+exits -o exits.train_backbone=0).
 *
 * Inference (no labels, not training): after step l a row leaves at exit l when the entropy of
 * the exit's softmax, H = -sum_c p_c ln p_c (natural log), is below `threshold` (strictly): the
 * exit's logits become the row's prediction (pb_model_row_logits) and the row is done; a row no
 * exit takes runs to the end and gets the model's head. threshold=0 (default) never exits
 * early (H >= 0), and then the exits are not evaluated at all: the plain model's predictions and
 * operation counts exactly. Regression (C = 1) has no entropy: threshold > 0 is refused.
 *
 * Operation counts (owner METHOD, what the hooks charge; the analytic count is these hooks in
 * counting-only mode, where they charge and decide nothing, so the core's count_last decides
 * where the rows of pb_model_count_exit leave):
 *   training, per exit over B rows: the head forward, loss and backward (pb_head_fwd/bwd charge
 *     them; + B*C FLOP for the weight when it is not 1);
 *   inference with threshold > 0, per exit over the B rows still running: the head forward
 *     (B*d*d + B*d*C MAC, B*d + B*C FLOP of biases, B*d tanh; pooler=tanh: B*d*C MAC, B*C FLOP,
 *     B*d tanh) and the entropy, per row
 *     5C FLOP and C+1 TRANS: max (C-1 compares), z-max (C), exp (C TRANS), their sum (C-1),
 *     sum of e*(z-max) (2C-1), log of the sum (1 TRANS), H = log s - t/s (2), H < threshold (1).
 *   A row that leaves at exit k therefore costs steps 0..k and exits 0..k:
 *   pb_model_count_exit(m, 1, T, k). */
#include <math.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "util/rng.h"
#include "util/status.h"
#include "methods/method.h"

enum { EXITS_INIT_COPY = 0, EXITS_INIT_RANDOM = 1 };
enum { EXITS_POOLER_DENSE = 0, EXITS_POOLER_TANH = 1 };

typedef struct {
  /* options */
  float threshold;     /* entropy below which a row leaves (0: never) */
  float weight;        /* weight of every exit's loss (1) */
  int init;            /* EXITS_INIT_COPY | EXITS_INIT_RANDOM */
  int train_backbone;  /* 1: every backbone tensor trains; 0: frozen */
  int pooler;          /* EXITS_POOLER_DENSE (dense d->d + tanh) | EXITS_POOLER_TANH (tanh alone) */
  /* attached state */
  pb_model *m;         /* borrowed */
  int n;               /* exits: steps - 1 */
  int C;               /* labels */
  pb_head_idx *hd;     /* [n] tensors of exit l */
  pb_head_acts *ha;    /* [n] activations of exit l (inside the model's activation block) */
  int copied;          /* init=copy done */
  int training;        /* from set_mode */
  uint64_t seed;       /* step seed from set_mode */
} exits_ctx;

extern const pb_method pb_method_exits;

static int exits_init(void *vctx) {
  exits_ctx *c = vctx;
  memset(c, 0, sizeof *c);
  c->threshold = 0.0f;
  c->weight = 1.0f;
  c->init = EXITS_INIT_COPY;
  c->train_backbone = 1;
  c->pooler = EXITS_POOLER_DENSE;
  return PB_OK;
}

static int exits_describe(const void *vctx, char *buf, size_t n) {
  return pb_method_describe_options(&pb_method_exits, vctx, buf, n);
}

/* ---------------------------------------------------------------- hooks */

static int exits_reserve(void *vctx, int B, int T, float *acts, size_t *nfloats) {
  exits_ctx *c = vctx;
  (void)T;
  size_t total = 0;
  for (int l = 0; l < c->n; l++) {
    const size_t k = pb_head_acts_floats(c->m, &c->hd[l], B);
    if (acts) pb_head_acts_layout(&c->ha[l], acts + total, c->m, &c->hd[l], B);
    total += k;
  }
  if (!acts) *nfloats = total;
  return PB_OK;
}

/* the exits become copies of the model's pooler and classifier (init=copy, once) */
static void copy_head(exits_ctx *c) {
  pb_model *m = c->m;
  const int src[4] = {m->head.pool_w, m->head.pool_b, m->head.cls_w, m->head.cls_b};
  for (int l = 0; l < c->n; l++) {
    const int dst[4] = {c->hd[l].pool_w, c->hd[l].pool_b, c->hd[l].cls_w, c->hd[l].cls_b};
    for (int k = c->pooler == EXITS_POOLER_TANH ? 2 : 0; k < 4; k++) /* pooler=tanh: the classifier only */
      memcpy(pb_w(m, dst[k]), pb_w(m, src[k]), m->params.t[src[k]].numel * sizeof(float));
  }
  m->params.version++; /* trainable values changed */
  c->copied = 1;
}

static int exits_set_mode(void *vctx, int training, uint64_t seed) {
  exits_ctx *c = vctx;
  c->training = training;
  c->seed = seed;
  if (training && c->init == EXITS_INIT_COPY && !c->copied && !pb_opc_counting()) copy_head(c);
  return PB_OK;
}

/* dropout stream of exit l's pooled vector, apart from the backbone's own sites */
static uint64_t exit_seed(const exits_ctx *c, int l) {
  return pb_hash64(c->seed ^ pb_hash64(0x45584954ULL << 16 ^ (uint64_t)(l + 1)));
}

/* entropy (natural log) of softmax(z[C]); the arithmetic the charge in after_layer counts */
static double entropy(const float *z, int C) {
  double mx = z[0];
  for (int k = 1; k < C; k++)
    if (z[k] > mx) mx = z[k];
  double s = 0, t = 0;
  for (int k = 0; k < C; k++) {
    const double u = (double)z[k] - mx, e = exp(u);
    s += e;
    t += e * u;
  }
  return log(s) - t / s;
}

static int exits_after(void *vctx, int l, const float *h, int B, int T, int d, const int *rows, unsigned char *done,
                       float *loss) {
  exits_ctx *c = vctx;
  pb_model *m = c->m;
  (void)d;
  if (l < 0 || l >= c->n) return pb_set_error(PB_ERR_ARG, "exits: hook called after step %d of %d exits", l, c->n);
  if (!c->ha || !c->ha[l].cls) return pb_set_error(PB_ERR_ARG, "exits: activations not reserved (pb_model_alloc)");
  const int C = c->C;
  const int *labels = C > 1 ? m->labels : NULL;
  const float *targets = C == 1 ? m->targets : NULL;
  if (labels || targets) { /* training-style forward: the exit's loss term, nobody leaves */
    float el = 0.0f;
    int rc = pb_head_fwd(m, &c->hd[l], &c->ha[l], h, B, T, labels, targets, m->training, exit_seed(c, l), &el);
    if (rc) return rc;
    *loss += c->weight * el;
    return PB_OK;
  }
  if (m->training || !(c->threshold > 0.0f)) return PB_OK; /* threshold 0: exits are not evaluated */
  if (C == 1)
    return pb_set_error(PB_ERR_ARG, "exits: threshold=%g on a regression head (1 output): the entropy rule needs "
                        "classes; use threshold=0", (double)c->threshold);
  pb_head_acts *ha = &c->ha[l];
  int rc = pb_head_fwd(m, &c->hd[l], ha, h, B, T, NULL, NULL, 0, 0, NULL);
  if (rc) return rc;
  pb_opc_add(PB_OPK_FLOP, (uint64_t)B * 5 * (uint64_t)C);
  pb_opc_add(PB_OPK_TRANS, (uint64_t)B * ((uint64_t)C + 1));
  if (pb_opc_counting()) return PB_OK; /* charged; the core decides where counted rows leave */
  const double thr = (double)c->threshold;
  for (int i = 0; i < B; i++) {
    const float *z = ha->logits + (size_t)i * C;
    if (!(entropy(z, C) < thr)) continue;
    memcpy(pb_model_row_logits(m, rows[i]), z, (size_t)C * sizeof(float));
    done[i] = 1;
  }
  return PB_OK;
}

static int exits_after_bwd(void *vctx, int l, const float *h, float *dh, int B, int T, int d) {
  exits_ctx *c = vctx;
  (void)h;
  (void)d;
  if (l < 0 || l >= c->n) return pb_set_error(PB_ERR_ARG, "exits: backward after step %d of %d exits", l, c->n);
  if (c->ha[l].B != B) return pb_set_error(PB_ERR_ARG, "exits: backward of exit %d over %d rows, forward had %d", l, B, c->ha[l].B);
  return pb_head_bwd(c->m, &c->hd[l], &c->ha[l], T, c->weight, dh);
}

static const pb_hook_ops exits_hooks = {
    .version = PB_HOOKS_VERSION,
    .reserve = exits_reserve,
    .set_mode = exits_set_mode,
    .after_layer = exits_after,
    .after_layer_bwd = exits_after_bwd,
};

/* ---------------------------------------------------------------- attach */

static int add_tensor(pb_model *m, const char *name, int ndim, int rows, int cols, pb_init_kind init, float a) {
  const int shape[2] = {rows, cols};
  int i = pb_params_add(&m->params, name, PB_OWNER_METHOD, ndim, shape, init, a);
  if (i < 0) return i;
  m->params.t[i].trainable = 1;
  m->params.t[i].stored = 1;
  return i;
}

/* exit l's linear map `what` [rows, cols]: exit.L.what.weight (normal(0, init_range)) and .bias (zero) */
static int add_linear(pb_model *m, int l, const char *what, int rows, int cols, int *w, int *b) {
  char name[PB_NAME_MAX];
  snprintf(name, sizeof name, "exit.%d.%s.weight", l, what);
  if ((*w = add_tensor(m, name, 2, rows, cols, PB_INIT_NORMAL, m->cfg.init_range)) < 0) return *w;
  snprintf(name, sizeof name, "exit.%d.%s.bias", l, what);
  if ((*b = add_tensor(m, name, 1, rows, 0, PB_INIT_ZERO, 0.0f)) < 0) return *b;
  return PB_OK;
}

static int exits_attach(void *vctx, pb_model *m) {
  exits_ctx *c = vctx;
  if (c->m) return pb_set_error(PB_ERR_ARG, "exits: already attached to a model");
  if (m->params.frozen_mem || m->params.train_mem)
    return pb_set_error(PB_ERR_ARG, "exits: attach must come before pb_model_alloc");
  const int S = pb_model_steps(m), C = m->cfg.num_labels;
  if (C == 1 && c->threshold > 0.0f)
    return pb_set_error(PB_ERR_ARG, "exits: threshold=%g on a regression task (1 output): the entropy rule needs "
                        "classes; use threshold=0 (exits still train)", (double)c->threshold);
  const int dh = pb_head_width(m, &m->head);
  for (int l = 0; l < S - 1; l++) {
    const int dl = pb_model_step_width(m, l).hidden;
    if (c->init == EXITS_INIT_COPY && dl != dh)
      return pb_set_error(PB_ERR_SHAPE, "exits: init=copy: step %d has width %d but the model's head reads %d; use "
                          "init=random", l, dl, dh);
  }
  c->n = S - 1;
  c->C = C;
  c->hd = calloc((size_t)c->n + 1, sizeof *c->hd);
  c->ha = calloc((size_t)c->n + 1, sizeof *c->ha);
  if (!c->hd || !c->ha) {
    free(c->hd), free(c->ha);
    c->hd = NULL, c->ha = NULL;
    return pb_set_error(PB_ERR_NOMEM, "exits: out of memory");
  }
  for (int l = 0; l < c->n; l++) {
    const int d = pb_model_step_width(m, l).hidden;
    c->hd[l].pool_w = c->hd[l].pool_b = -1; /* pooler=tanh: no dense */
    int rc;
    if (c->pooler == EXITS_POOLER_DENSE && (rc = add_linear(m, l, "pooler.dense", d, d, &c->hd[l].pool_w, &c->hd[l].pool_b)))
      return rc;
    if ((rc = add_linear(m, l, "classifier", C, d, &c->hd[l].cls_w, &c->hd[l].cls_b))) return rc;
  }
  if (c->train_backbone) pb_params_train_owner(&m->params, PB_OWNER_BACKBONE);
  c->m = m;
  c->copied = 0;
  if (c->n == 0) return PB_OK; /* one encoder step: nothing to exit after (the method is the backbone's training) */
  return pb_model_add_hooks(m, &exits_hooks, c);
}

static int exits_destroy(void *vctx) {
  exits_ctx *c = vctx;
  free(c->hd);
  free(c->ha);
  c->hd = NULL;
  c->ha = NULL;
  return PB_OK;
}

static const char *const exits_init_names[] = {"copy", "random", NULL}; /* EXITS_INIT_* order */
static const char *const exits_pooler_names[] = {"dense", "tanh", NULL}; /* EXITS_POOLER_* order */

static const pb_method_option exits_options[] = {
    {.name = "threshold", .type = PB_OPT_FLOAT, .offset = offsetof(exits_ctx, threshold), .def = "0", .min = 0,
     .max = 100, .help = "inference: a row leaves at the first exit whose softmax entropy (nats) is below this; "
                         "0 = never (exits not evaluated)"},
    {.name = "weight", .type = PB_OPT_FLOAT, .offset = offsetof(exits_ctx, weight), .def = "1", .min = 0,
     .max = 1000, .help = "training: loss = final loss + weight * sum of the exit losses"},
    {.name = "init", .type = PB_OPT_ENUM, .offset = offsetof(exits_ctx, init), .def = "copy",
     .values = exits_init_names, .help = "exit heads start as copies of the model's pooler + classifier, or "
                                         "normal(0, init_range) with zero biases"},
    {.name = "train_backbone", .type = PB_OPT_INT, .offset = offsetof(exits_ctx, train_backbone), .def = "1",
     .min = 0, .max = 1, .help = "1: every backbone tensor trains (COST-EFF); 0: frozen, only exits + head "
                                 "(composes: lora+exits)"},
    {.name = "pooler", .type = PB_OPT_ENUM, .offset = offsetof(exits_ctx, pooler), .def = "dense",
     .values = exits_pooler_names, .help = "each exit's pooler: dense d->d + tanh on [CLS] (as the model's head), or "
                                           "tanh on [CLS] alone (COST-EFF's pooler_dense=False)"},
};

static const char *const exits_tanh_opts[] = {"pooler=tanh", NULL};
static const pb_method_refconfig exits_refs[] = {{"exits", NULL}, {"exits pooler=tanh", exits_tanh_opts}};

const pb_method pb_method_exits = {
    .version = PB_METHOD_VERSION,
    .name = "exits",
    .summary = "multi-exit early exiting (COST-EFF): an exit head after every step, entropy threshold at inference",
    .ctx_size = sizeof(exits_ctx),
    .init = exits_init,
    .describe = exits_describe,
    .attach = exits_attach,
    .destroy = exits_destroy,
    /* merge/unmerge: nothing to fold (the exits are heads); ops: reserved */
    .default_lr = 2e-5, /* train_backbone=1 is full fine-tuning (COST-EFF fine-tunes BERT at 2e-5) */
    .options = exits_options,
    .n_options = (int)(sizeof exits_options / sizeof exits_options[0]),
    .refconfigs = exits_refs,
    .n_refconfigs = (int)(sizeof exits_refs / sizeof exits_refs[0]),
    .order = 8,
};
