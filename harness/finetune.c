/* Fine-tuning through the trainer (finetune.h). */
#include "harness/finetune.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "util/status.h"
#include "harness/trainer.h"

int pb_finetune_init(pb_finetune *f, pb_model *m, const pb_encoded *train, int regression, int batch, int max_len,
                     unsigned long long seed) {
  memset(f, 0, sizeof *f);
  f->m = m;
  f->train = train;
  f->regression = regression;
  f->B = batch;
  f->seed = seed;
  f->final_loss = NAN;
  f->ids = malloc(sizeof(int) * (size_t)batch * max_len);
  f->types = malloc(sizeof(int) * (size_t)batch * max_len);
  f->mask = malloc(sizeof(int) * (size_t)batch * max_len);
  f->labels = malloc(sizeof(int) * (size_t)batch);
  f->targets = malloc(sizeof(float) * (size_t)batch);
  f->order = malloc(sizeof(int) * (size_t)train->n);
  f->curve = cJSON_CreateArray();
  if (!f->ids || !f->types || !f->mask || !f->labels || !f->targets || !f->order || !f->curve)
    return pb_set_error(PB_ERR_NOMEM, "run: out of memory");
  return PB_OK;
}

void pb_finetune_free(pb_finetune *f) {
  free(f->ids);
  free(f->types);
  free(f->mask);
  free(f->labels);
  free(f->targets);
  free(f->order);
  cJSON_Delete(f->curve);
  cJSON_Delete(f->gcurve);
  memset(f, 0, sizeof *f);
}

static void shuffle(int *a, int n, pb_rng *r) {
  for (int i = n - 1; i > 0; i--) {
    int j = (int)pb_rng_below(r, (uint64_t)i + 1), t = a[i];
    a[i] = a[j];
    a[j] = t;
  }
}

/* ---------------------------------------------------------------- the trainer's callbacks */

static int ft_batch(void *ctx, int t, pb_batch *b) {
  pb_finetune *f = ctx;
  const int n = f->train->n;
  if (f->pos >= n) { /* new epoch; its last batch may be short */
    for (int i = 0; i < n; i++) f->order[i] = i;
    shuffle(f->order, n, &f->order_rng);
    f->pos = 0;
  }
  const int Bb = f->B < n - f->pos ? f->B : n - f->pos;
  const int *idx = f->order + f->pos;
  f->pos += Bb;
  b->B = Bb;
  b->T = pb_encoded_batch(f->train, idx, Bb, f->ids, f->types, f->mask, f->labels, f->targets);
  b->ids = f->ids;
  b->types = f->types;
  b->mask = f->mask;
  b->labels = f->regression ? NULL : f->labels;
  b->targets = f->regression ? f->targets : NULL;
  b->items = f->B; /* the progress rate counts --batch examples per step */
  return PB_OK;
}

static int ft_objective(void *ctx, int t, const pb_batch *b, float *loss) {
  pb_finetune *f = ctx;
  if (f->teacher) {
    int rt = pb_distill_teacher_forward(f->teacher, b);
    if (rt) return rt;
  }
  int rc = pb_forward(f->m, b->ids, b->types, b->mask, b->B, b->T, b->labels, b->targets, 1,
                      pb_hash64(f->seed * 1000003ULL + (uint64_t)t), loss);
  if (rc == PB_ERR_NUMERIC)
    return pb_set_error(PB_ERR_NUMERIC, "training diverged at step %d of %d (loss %g): try a lower --lr (now %g)", t,
                        f->total, (double)*loss, (double)f->lr);
  return rc ? rc : pb_backward(f->m);
}

static int ft_diverged(void *ctx, int t, double gn) {
  const pb_finetune *f = ctx;
  return pb_set_error(PB_ERR_NUMERIC, "training diverged at step %d of %d (gradient norm %g): try a lower --lr (now %g)",
                      t, f->total, gn, (double)f->lr);
}

static int ft_after_step(void *ctx, const pb_train_step *s) {
  pb_finetune *f = ctx;
  if (f->clip) {
    f->n_clipped += s->clipped;
    f->gn_sum += s->grad_norm;
  }
  f->loss_sum += s->loss;
  f->loss_n++;
  if (s->t % f->curve_every == 0 || s->t == f->total) {
    cJSON *pt = cJSON_CreateArray();
    cJSON_AddItemToArray(pt, cJSON_CreateNumber(s->t));
    cJSON_AddItemToArray(pt, cJSON_CreateNumber(f->loss_sum / f->loss_n));
    cJSON_AddItemToArray(f->curve, pt);
    if (f->gcurve) {
      cJSON *gp = cJSON_CreateArray();
      cJSON_AddItemToArray(gp, cJSON_CreateNumber(s->t));
      cJSON_AddItemToArray(gp, cJSON_CreateNumber(f->gn_sum / f->loss_n));
      cJSON_AddItemToArray(f->gcurve, gp);
    }
    f->final_loss = f->loss_sum / f->loss_n;
    f->loss_sum = 0;
    f->gn_sum = 0;
    f->loss_n = 0;
  }
  return PB_OK;
}

static const pb_trainer_ops FT_OPS = {
    .version = PB_TRAINER_OPS_VERSION, .batch = ft_batch, .objective = ft_objective, .after_step = ft_after_step,
    .diverged = ft_diverged};

int pb_finetune_train(pb_finetune *f, const pb_adamw *opt, int total, double max_grad_norm, int curve_every, int quiet) {
  f->total = total;
  f->lr = opt->lr;
  f->clip = max_grad_norm > 0;
  f->curve_every = curve_every;
  f->pos = f->train->n;
  pb_rng_seed(&f->order_rng, f->seed ^ 0x5EEDULL);
  if (f->clip && !(f->gcurve = cJSON_CreateArray())) return pb_set_error(PB_ERR_NOMEM, "run: out of memory");
  const pb_trainer_opts to = {.ops = &FT_OPS, .ctx = f, .params = &f->m->params, .opt = opt, .total = total,
                              .clip = f->clip ? max_grad_norm : 0, .clip_eps = PB_CLIP_EPS_TORCH, .label = "train",
                              .unit = "ex", .progress_style = PB_PROGRESS_STEPS, .quiet = quiet};
  pb_train_state ts;
  memset(&ts, 0, sizeof ts);
  pb_train_result res;
  int rc = pb_train(&to, &ts, &res);
  f->steps = ts.step;
  return rc;
}
