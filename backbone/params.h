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

#include "util/rng.h"
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

/* another name of a tensor (a checkpoint layout that names a shared tensor differently, e.g.
 * ALBERT's): found by pb_params_find and by the loaders, never a tensor of its own */
typedef struct {
  char name[PB_NAME_MAX];
  int idx;                  /* the tensor it names */
} pb_alias;

typedef struct {
  pb_tensor *t;             /* [n] */
  int n, cap;
  pb_alias *alias;          /* [n_alias] */
  int n_alias, cap_alias;
  float *frozen_mem;        /* [n_frozen]: data of all frozen tensors */
  float *train_mem;         /* [n_train]: data of all trainable tensors */
  float *grad_mem, *m_mem, *v_mem; /* [n_train] each */
  size_t n_frozen, n_train;
  int reserved;             /* 1: the families are address space only (pb_params_alloc_count) */
  uint64_t version;         /* bumped whenever trainable values change (optimizer step, load) */
} pb_params;

/* Declares a tensor; returns its index (>= 0) or a negative status. Names must be unique.
 * Defaults: trainable = 0, stored = (owner != BACKBONE), decay = (ndim >= 2). */
int pb_params_add(pb_params *p, const char *name, pb_owner owner, int ndim, const int *shape,
                  pb_init_kind init, float init_a);
int pb_params_find(const pb_params *p, const char *name); /* index or -1; aliases resolve to their tensor */
/* Gives tensor idx another name (unique among names and aliases). Parameters, storage, the
 * optimizer and saving loop over tensors, so an aliased (shared) tensor counts once. */
int pb_params_add_alias(pb_params *p, int idx, const char *alias);
/* the k-th alias of tensor idx (NULL when it has fewer) */
const char *pb_params_alias_of(const pb_params *p, int idx, int k);
/* new shape for a declared tensor (before allocation) */
int pb_params_reshape(pb_params *p, int idx, int ndim, const int *shape);
int pb_params_alloc(pb_params *p);
/* The same layout in reserved address space (PROT_NONE, nothing committed, any access faults):
 * every tensor gets its pointers, so counting-only runs (counters/opcount.h) see exactly which
 * gradients exist; for op counts of a model that was never allocated. */
int pb_params_alloc_count(pb_params *p);
/* Frees (or unmaps) the five families and clears every tensor's pointers; the table stays. */
void pb_params_release(pb_params *p);
void pb_params_free(pb_params *p);
/* n floats of reserved address space (PROT_NONE, NULL on failure) and its release */
float *pb_reserve_floats(size_t n);
void pb_release_floats(float *m, size_t n);
void pb_params_init(pb_params *p, pb_rng *rng);   /* every tensor from its init kind, in table order */
void pb_params_init_owner(pb_params *p, pb_rng *rng, int owner); /* only tensors of one owner (< 0: all) */
/* every tensor of one owner trains and is stored (full fine-tuning of the backbone) */
void pb_params_train_owner(pb_params *p, int owner);
void pb_params_zero_grad(pb_params *p);
/* sum of numel over tensors matching: owner (< 0: any), trainable_only, stored_only */
size_t pb_params_count(const pb_params *p, int owner, int trainable_only, int stored_only);
/* "trainable params: 296,450 || all params: 109,780,228 || trainable%: 0.2700" (HF PEFT style) */
void pb_params_report(const pb_params *p, char *buf, size_t n);
/* writes n with thousands separators ("109,482,240") */
void pb_fmt_count(char *buf, size_t n, uint64_t v);

/* Learning-rate schedules of pb_adamw_lr (t = the 1-based AdamW step; W = warmup_steps,
 * T = total_steps; T = 0: constant lr after the warm-up in both):
 *  PB_SCHED_ONE_BASED (0, the default; `pretrain`): lr*t/W for t <= W, then lr*(T-t)/(T-W):
 *      the first step already moves, the LAST step (t = T) has lr 0 — except when W = T
 *      (the last step is the end of the warm-up, at the peak lr) and when T = 1 with W = 0
 *      (the only step has lr 0); tests/test_schedule.c pins both, and pretrain keeps them so
 *      that checkpoints made before reproduce.
 *  PB_SCHED_HF (`run`): Hugging Face's get_linear_schedule_with_warmup as the Trainer steps it:
 *      s = t-1 (LambdaLR's step, 0 at the first optimizer step); lr*s/W for s < W, else
 *      lr*max(0, (T-s)/max(1, T-W)). With W > 0 the FIRST step has lr 0 and the last step
 *      has lr*1/(T-W). Computed in double, rounded once to float. */
typedef enum { PB_SCHED_ONE_BASED = 0, PB_SCHED_HF = 1 } pb_lr_schedule;

typedef struct {
  float lr;          /* peak learning rate */
  float beta1, beta2, eps, weight_decay;
  int warmup_steps;  /* linear warmup from 0 */
  int total_steps;   /* linear decay to 0 at total_steps; 0 = constant after warmup */
  int schedule;      /* pb_lr_schedule (PB_SCHED_ONE_BASED) */
} pb_adamw;

void pb_adamw_defaults(pb_adamw *o); /* lr 1e-3, 0.9, 0.999, 1e-8, wd 0.01, no schedule (one-based) */
/* lr at 1-based step t under o->schedule (above) */
float pb_adamw_lr(const pb_adamw *o, int t);
/* One AdamW step (PyTorch semantics, bias-corrected, decoupled decay) over every trainable
 * tensor, at 1-based step t. Weight decay applies to tensors with `decay` set: by default every
 * tensor of ndim >= 2, i.e. for BERT exactly Hugging Face's Trainer rule (get_decay_parameter_names:
 * no decay for biases and LayerNorm weights; embeddings, linear weights, the classifier and LoRA /
 * adapter matrices decay). Charges 12 FLOP + 1 TRANS per trainable element to the current owner. */
int pb_adamw_step(pb_params *p, const pb_adamw *o, int t);

/* Global gradient-norm clipping, as torch.nn.utils.clip_grad_norm_(params, max_norm) (norm type
 * 2; torch uses eps = 1e-6): norm = sqrt(sum of g^2 over every trainable gradient), accumulated in
 * double in table order; when max_norm > 0 every gradient is multiplied by
 * min(1, max_norm / (norm + eps)) (torch multiplies by the clamped coefficient always; so do
 * we, a multiply by 1 changes nothing). max_norm <= 0: the norm only, gradients untouched. A norm
 * that is not finite leaves the gradients untouched (the caller reports the divergence).
 * Returns the norm before clipping; *clipped (may be NULL) = 1 when the coefficient was < 1.
 * Charges 2n FLOP + 1 TRANS for the norm and, when max_norm > 0, n + 2 FLOP for the scaling
 * (n = trainable elements) to the current owner. */
double pb_params_clip_grad_norm(pb_params *p, double max_norm, double eps, int *clipped);
#define PB_CLIP_EPS_TORCH 1e-6

#endif
