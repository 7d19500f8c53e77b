#include "backbone/params.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#include "backbone/bf16.h"
#include "util/status.h"

int pb_params_add(pb_params *p, const char *name, pb_owner owner, int ndim, const int *shape,
                  pb_init_kind init, float init_a) {
  if (ndim < 1 || ndim > PB_MAX_DIMS) return pb_set_error(PB_ERR_ARG, "tensor %s: bad rank %d", name, ndim);
  if (strlen(name) >= PB_NAME_MAX) return pb_set_error(PB_ERR_ARG, "tensor name too long: %s", name);
  if (pb_params_find(p, name) >= 0) return pb_set_error(PB_ERR_ARG, "tensor %s declared twice", name);
  if (p->frozen_mem || p->train_mem) return pb_set_error(PB_ERR_ARG, "tensor %s declared after allocation", name);
  if (p->n == p->cap) {
    int cap = p->cap ? 2 * p->cap : 64;
    pb_tensor *t = realloc(p->t, (size_t)cap * sizeof *t);
    if (!t) return pb_set_error(PB_ERR_NOMEM, "parameter table: out of memory");
    p->t = t;
    p->cap = cap;
  }
  pb_tensor *t = &p->t[p->n];
  memset(t, 0, sizeof *t);
  snprintf(t->name, sizeof t->name, "%s", name);
  t->ndim = ndim;
  t->numel = 1;
  for (int i = 0; i < ndim; i++) {
    if (shape[i] <= 0) return pb_set_error(PB_ERR_ARG, "tensor %s: dimension %d is %d", name, i, shape[i]);
    t->shape[i] = shape[i];
    t->numel *= (size_t)shape[i];
  }
  t->owner = owner;
  t->stored = owner != PB_OWNER_BACKBONE;
  t->decay = ndim >= 2;
  t->init = init;
  t->init_a = init_a;
  return p->n++;
}

int pb_params_reshape(pb_params *p, int idx, int ndim, const int *shape) {
  if (idx < 0 || idx >= p->n) return pb_set_error(PB_ERR_ARG, "reshape: no tensor %d", idx);
  pb_tensor *t = &p->t[idx];
  if (p->frozen_mem || p->train_mem) return pb_set_error(PB_ERR_ARG, "tensor %s reshaped after allocation", t->name);
  if (ndim < 1 || ndim > PB_MAX_DIMS) return pb_set_error(PB_ERR_ARG, "tensor %s: bad rank %d", t->name, ndim);
  size_t numel = 1;
  for (int i = 0; i < ndim; i++) {
    if (shape[i] <= 0) return pb_set_error(PB_ERR_ARG, "tensor %s: dimension %d is %d", t->name, i, shape[i]);
    numel *= (size_t)shape[i];
  }
  t->ndim = ndim;
  for (int i = 0; i < PB_MAX_DIMS; i++) t->shape[i] = i < ndim ? shape[i] : 0;
  t->numel = numel;
  return PB_OK;
}

int pb_params_find(const pb_params *p, const char *name) {
  for (int i = 0; i < p->n; i++)
    if (strcmp(p->t[i].name, name) == 0) return i;
  for (int i = 0; i < p->n_alias; i++)
    if (strcmp(p->alias[i].name, name) == 0) return p->alias[i].idx;
  return -1;
}

int pb_params_add_alias(pb_params *p, int idx, const char *alias) {
  if (idx < 0 || idx >= p->n) return pb_set_error(PB_ERR_ARG, "alias %s: no tensor %d", alias, idx);
  if (strlen(alias) >= PB_NAME_MAX) return pb_set_error(PB_ERR_ARG, "alias name too long: %s", alias);
  if (pb_params_find(p, alias) >= 0) return pb_set_error(PB_ERR_ARG, "alias %s: the name is taken", alias);
  if (p->n_alias == p->cap_alias) {
    int cap = p->cap_alias ? 2 * p->cap_alias : 16;
    pb_alias *a = realloc(p->alias, (size_t)cap * sizeof *a);
    if (!a) return pb_set_error(PB_ERR_NOMEM, "parameter table: out of memory");
    p->alias = a;
    p->cap_alias = cap;
  }
  snprintf(p->alias[p->n_alias].name, PB_NAME_MAX, "%s", alias);
  p->alias[p->n_alias++].idx = idx;
  return PB_OK;
}

const char *pb_params_alias_of(const pb_params *p, int idx, int k) {
  for (int i = 0; i < p->n_alias; i++)
    if (p->alias[i].idx == idx && k-- == 0) return p->alias[i].name;
  return NULL;
}

static float *alloc_touched(size_t n) {
  if (n == 0) n = 1;
  float *m = NULL;
  if (posix_memalign((void **)&m, 64, n * sizeof(float)) != 0) return NULL;
  memset(m, 0, n * sizeof(float)); /* touch every page now, not in the first step */
  return m;
}

/* n floats of address space only (PROT_NONE, nothing committed): any access faults */
float *pb_reserve_floats(size_t n) {
  void *m = mmap(NULL, (n ? n : 1) * sizeof(float), PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
  return m == MAP_FAILED ? NULL : m;
}
void pb_release_floats(float *m, size_t n) {
  if (m) munmap(m, (n ? n : 1) * sizeof(float));
}

static int params_alloc(pb_params *p, int reserved) {
  p->n_frozen = p->n_train = 0;
  for (int i = 0; i < p->n; i++) {
    if (p->t[i].trainable) p->n_train += p->t[i].numel;
    else p->n_frozen += p->t[i].numel;
  }
  p->reserved = reserved;
  float *(*get)(size_t) = reserved ? pb_reserve_floats : alloc_touched;
  p->frozen_mem = get(p->n_frozen);
  p->train_mem = get(p->n_train);
  p->grad_mem = get(p->n_train);
  p->m_mem = get(p->n_train);
  p->v_mem = get(p->n_train);
  if (!p->frozen_mem || !p->train_mem || !p->grad_mem || !p->m_mem || !p->v_mem) {
    const size_t nf = p->n_frozen, nt = p->n_train;
    pb_params_release(p); /* the table stays */
    return pb_set_error(PB_ERR_NOMEM, "cannot %s %zu frozen + %zu trainable parameters",
                        reserved ? "reserve address space for" : "allocate", nf, nt);
  }
  size_t of = 0, ot = 0;
  for (int i = 0; i < p->n; i++) {
    pb_tensor *t = &p->t[i];
    if (t->trainable) {
      t->data = p->train_mem + ot;
      t->grad = p->grad_mem + ot;
      t->m = p->m_mem + ot;
      t->v = p->v_mem + ot;
      ot += t->numel;
    } else {
      t->data = p->frozen_mem + of;
      t->grad = t->m = t->v = NULL;
      of += t->numel;
    }
  }
  return PB_OK;
}

int pb_params_alloc(pb_params *p) { return params_alloc(p, 0); }
int pb_params_alloc_count(pb_params *p) { return params_alloc(p, 1); }

void pb_params_release(pb_params *p) {
  if (p->reserved) {
    pb_release_floats(p->frozen_mem, p->n_frozen);
    pb_release_floats(p->train_mem, p->n_train);
    pb_release_floats(p->grad_mem, p->n_train);
    pb_release_floats(p->m_mem, p->n_train);
    pb_release_floats(p->v_mem, p->n_train);
  } else {
    free(p->frozen_mem);
    free(p->train_mem);
    free(p->grad_mem);
    free(p->m_mem);
    free(p->v_mem);
  }
  p->frozen_mem = p->train_mem = p->grad_mem = p->m_mem = p->v_mem = NULL;
  p->n_frozen = p->n_train = 0;
  p->reserved = 0;
  for (int i = 0; i < p->n; i++) p->t[i].data = p->t[i].grad = p->t[i].m = p->t[i].v = NULL;
}

void pb_params_free(pb_params *p) {
  pb_params_release(p);
  free(p->t);
  free(p->alias);
  memset(p, 0, sizeof *p);
}

void pb_params_init(pb_params *p, pb_rng *rng) { pb_params_init_owner(p, rng, -1); }

void pb_params_train_owner(pb_params *p, int owner) {
  for (int i = 0; i < p->n; i++)
    if ((int)p->t[i].owner == owner) p->t[i].trainable = p->t[i].stored = 1;
}

void pb_params_init_owner(pb_params *p, pb_rng *rng, int owner) {
  for (int i = 0; i < p->n; i++) {
    pb_tensor *t = &p->t[i];
    if (owner >= 0 && (int)t->owner != owner) continue;
    for (size_t j = 0; j < t->numel; j++) {
      switch (t->init) {
        case PB_INIT_ZERO: t->data[j] = 0.0f; break;
        case PB_INIT_ONE: t->data[j] = 1.0f; break;
        case PB_INIT_NORMAL: t->data[j] = t->init_a * pb_rng_normal(rng); break;
        case PB_INIT_UNIFORM: t->data[j] = t->init_a * (2.0f * pb_rng_uniform(rng) - 1.0f); break;
      }
    }
  }
  p->version++;
  pb_bf16_weights_changed();
}

void pb_params_zero_grad(pb_params *p) {
  if (p->grad_mem && !pb_opc_counting()) memset(p->grad_mem, 0, p->n_train * sizeof(float));
}

size_t pb_params_count(const pb_params *p, int owner, int trainable_only, int stored_only) {
  size_t s = 0;
  for (int i = 0; i < p->n; i++) {
    const pb_tensor *t = &p->t[i];
    if (owner >= 0 && (int)t->owner != owner) continue;
    if (trainable_only && !t->trainable) continue;
    if (stored_only && !t->stored) continue;
    s += t->numel;
  }
  return s;
}

void pb_fmt_count(char *buf, size_t n, uint64_t v) {
  char tmp[32];
  int len = snprintf(tmp, sizeof tmp, "%llu", (unsigned long long)v);
  char out[48];
  int o = 0;
  for (int i = 0; i < len; i++) {
    if (i > 0 && (len - i) % 3 == 0) out[o++] = ',';
    out[o++] = tmp[i];
  }
  out[o] = 0;
  snprintf(buf, n, "%s", out);
}

void pb_params_report(const pb_params *p, char *buf, size_t n) {
  size_t all = pb_params_count(p, -1, 0, 0), tr = pb_params_count(p, -1, 1, 0);
  char a[48], b[48];
  pb_fmt_count(a, sizeof a, tr);
  pb_fmt_count(b, sizeof b, all);
  snprintf(buf, n, "trainable params: %s || all params: %s || trainable%%: %.4f", a, b,
           all ? 100.0 * (double)tr / (double)all : 0.0);
}

void pb_adamw_defaults(pb_adamw *o) {
  o->lr = 1e-3f;
  o->beta1 = 0.9f;
  o->beta2 = 0.999f;
  o->eps = 1e-8f;
  o->weight_decay = 0.01f;
  o->warmup_steps = 0;
  o->total_steps = 0;
  o->schedule = PB_SCHED_ONE_BASED;
}

/* Hugging Face's linear schedule with warm-up (transformers get_linear_schedule_with_warmup,
 * stepped by the Trainer after every optimizer step): s = t-1 is LambdaLR's step index */
static float lr_hf(const pb_adamw *o, int t) {
  const int s = t - 1, W = o->warmup_steps, T = o->total_steps;
  double f = 1.0;
  if (W > 0 && s < W) f = (double)s / (double)W;
  else if (T > 0) {
    f = (double)(T - s) / (double)(T - W > 1 ? T - W : 1);
    if (f < 0.0) f = 0.0;
  }
  return (float)((double)o->lr * f);
}

float pb_adamw_lr(const pb_adamw *o, int t) {
  if (o->schedule == PB_SCHED_HF) return lr_hf(o, t);
  if (o->warmup_steps > 0 && t <= o->warmup_steps) return o->lr * (float)t / (float)o->warmup_steps;
  if (o->total_steps > 0) {
    if (t >= o->total_steps) return 0.0f;
    int span = o->total_steps - o->warmup_steps;
    return span > 0 ? o->lr * (float)(o->total_steps - t) / (float)span : o->lr;
  }
  return o->lr;
}

int pb_adamw_step(pb_params *p, const pb_adamw *o, int t) {
  if (t < 1) return pb_set_error(PB_ERR_ARG, "adamw: step must be >= 1 (got %d)", t);
  for (int i = 0; i < p->n; i++)
    if (p->t[i].trainable) {
      pb_opc_add(PB_OPK_FLOP, 12 * (uint64_t)p->t[i].numel);
      pb_opc_add(PB_OPK_TRANS, (uint64_t)p->t[i].numel);
    }
  if (pb_opc_counting()) return PB_OK;
  const float lr = pb_adamw_lr(o, t);
  const float b1 = o->beta1, b2 = o->beta2, eps = o->eps;
  const float bc1 = 1.0f - powf(b1, (float)t), bc2 = 1.0f - powf(b2, (float)t);
  const float step_size = lr / bc1, bc2_sqrt = sqrtf(bc2);
  for (int i = 0; i < p->n; i++) {
    pb_tensor *tn = &p->t[i];
    if (!tn->trainable) continue;
    float *w = tn->data, *g = tn->grad, *m = tn->m, *v = tn->v;
    const float decay = tn->decay ? 1.0f - lr * o->weight_decay : 1.0f;
    const long n = (long)tn->numel;
#pragma omp parallel for schedule(static) if (n > 65536)
    for (long j = 0; j < n; j++) {
      float gj = g[j];
      float mj = b1 * m[j] + (1.0f - b1) * gj;
      float vj = b2 * v[j] + (1.0f - b2) * gj * gj;
      m[j] = mj;
      v[j] = vj;
      w[j] = w[j] * decay - step_size * mj / (sqrtf(vj) / bc2_sqrt + eps);
    }
  }
  p->version++;
  pb_bf16_weights_changed();
  return PB_OK;
}

double pb_params_clip_grad_norm(pb_params *p, double max_norm, double eps, int *clipped) {
  if (clipped) *clipped = 0;
  float *g = p->grad_mem;
  const size_t n = p->n_train;
  pb_opc_add(PB_OPK_FLOP, 2 * (uint64_t)n);
  pb_opc_add(PB_OPK_TRANS, 1);
  if (max_norm > 0) pb_opc_add(PB_OPK_FLOP, (uint64_t)n + 2);
  if (pb_opc_counting()) return 0.0;
  double ss = 0.0;
  for (size_t i = 0; i < n; i++) ss += (double)g[i] * g[i];
  const double norm = sqrt(ss);
  if (!(max_norm > 0)) return norm;
  if (!isfinite(norm)) return norm;
  const double coef = max_norm / (norm + eps);
  const float sc = coef < 1.0 ? (float)coef : 1.0f;
  if (clipped) *clipped = coef < 1.0;
  const long nl = (long)n;
#pragma omp parallel for schedule(static) if (nl > 262144)
  for (long i = 0; i < nl; i++) g[i] *= sc;
  return norm;
}

