/* The parameter table: every tensor of the model (backbone, head, method) in one list.
 * Parameter counts, storage, the optimizer and saving/loading are loops over it.
 *
 * Life cycle: pb_params_add() declares tensors (no memory yet); methods flip `trainable`
 * and `stored`; pb_params_alloc() then makes ONE allocation per family: frozen values,
 * trainable values, gradients, AdamW m, AdamW v (optimizer state touched up front). */
#ifndef PB_PARAMS_H
#define PB_PARAMS_H

#include <stddef.h>
#include <stdint.h>

#include "backbone/rng.h"
#include "counters/opcount.h"

#define PB_MAX_DIMS 4
#define PB_NAME_MAX 128

typedef enum { PB_OWNER_BACKBONE = 0, PB_OWNER_HEAD = 1, PB_OWNER_METHOD = 2, PB_OWNER_COUNT } pb_owner;
typedef enum { PB_INIT_ZERO, PB_INIT_ONE, PB_INIT_NORMAL, PB_INIT_UNIFORM } pb_init_kind;

typedef struct {
  char name[PB_NAME_MAX];   /* HF name for backbone tensors, e.g. bert.encoder.layer.3.attention.self.query.weight */
  int ndim;                 /* 1..PB_MAX_DIMS */
  int shape[PB_MAX_DIMS];   /* row-major; linear weights are [out, in] */
  size_t numel;             /* product of shape */
  pb_owner owner;
  int trainable;            /* gets grad, m, v and AdamW updates */
  int stored;               /* written into the task file */
  int decay;                /* AdamW weight decay applies (default: ndim >= 2 and not a LayerNorm) */
  pb_init_kind init;        /* used by pb_params_init */
  float init_a;             /* normal: std; uniform: bound */
  float *data;              /* [numel] */
  float *grad;              /* [numel], NULL when frozen */
  float *m, *v;             /* [numel] AdamW moments, NULL when frozen */
} pb_tensor;

typedef struct {
  pb_tensor *t;             /* [n] */
  int n, cap;
  float *frozen_mem;        /* [n_frozen]: data of all frozen tensors */
  float *train_mem;         /* [n_train]: data of all trainable tensors */
  float *grad_mem, *m_mem, *v_mem; /* [n_train] each */
  size_t n_frozen, n_train;
  uint64_t version;         /* bumped whenever trainable values change (optimizer step, load) */
} pb_params;

/* Declares a tensor; returns its index (>= 0) or a negative status. Names must be unique.
 * Defaults: trainable = 0, stored = (owner != BACKBONE), decay = (ndim >= 2). */
int pb_params_add(pb_params *p, const char *name, pb_owner owner, int ndim, const int *shape,
                  pb_init_kind init, float init_a);
int pb_params_find(const pb_params *p, const char *name); /* index or -1 */
int pb_params_alloc(pb_params *p);
void pb_params_free(pb_params *p);
void pb_params_init(pb_params *p, pb_rng *rng);   /* every tensor from its init kind, in table order */
void pb_params_init_owner(pb_params *p, pb_rng *rng, int owner); /* only tensors of one owner (< 0: all) */
void pb_params_zero_grad(pb_params *p);
/* sum of numel over tensors matching: owner (< 0: any), trainable_only, stored_only */
size_t pb_params_count(const pb_params *p, int owner, int trainable_only, int stored_only);
/* "trainable params: 296,450 || all params: 109,780,228 || trainable%: 0.2700" (HF PEFT style) */
void pb_params_report(const pb_params *p, char *buf, size_t n);
/* writes n with thousands separators ("109,482,240") */
void pb_fmt_count(char *buf, size_t n, uint64_t v);

typedef struct {
  float lr;          /* peak learning rate */
  float beta1, beta2, eps, weight_decay;
  int warmup_steps;  /* linear warmup from 0 */
  int total_steps;   /* linear decay to 0 at total_steps; 0 = constant after warmup */
} pb_adamw;

void pb_adamw_defaults(pb_adamw *o); /* lr 1e-3, 0.9, 0.999, 1e-8, wd 0.01, no schedule */
/* lr at 1-based step t: lr*t/warmup for t <= warmup, then lr*(total-t)/(total-warmup) */
float pb_adamw_lr(const pb_adamw *o, int t);
/* One AdamW step (PyTorch semantics, bias-corrected, decoupled decay) over every trainable
 * tensor, at 1-based step t. Charges 12 FLOP + 1 TRANS per trainable element to the optimizer. */
int pb_adamw_step(pb_params *p, const pb_adamw *o, int t);

#endif
