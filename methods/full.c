/* Full fine-tuning: every backbone tensor is trainable and written into the task file (the
 * task file then holds the whole model). No hooks, no options, no added operations. */
#include <stdio.h>
#include <string.h>

#include "backbone/status.h"
#include "methods/method.h"

typedef struct {
  pb_model *m; /* the model attached to (borrowed) */
} full_ctx;

static int full_init(void *ctx) {
  memset(ctx, 0, sizeof(full_ctx));
  return PB_OK;
}

static int full_describe(const void *ctx, char *buf, size_t n) {
  (void)ctx;
  if (n) buf[0] = 0; /* no options: the empty configuration */
  return PB_OK;
}

static int full_attach(void *vctx, pb_model *m) {
  full_ctx *c = vctx;
  if (m->params.frozen_mem || m->params.train_mem)
    return pb_set_error(PB_ERR_ARG, "full: attach must come before pb_model_alloc");
  for (int i = 0; i < m->params.n; i++) {
    pb_tensor *t = &m->params.t[i];
    if (t->owner != PB_OWNER_BACKBONE) continue;
    t->trainable = 1;
    t->stored = 1;
  }
  c->m = m;
  pb_model_set_hooks(m, NULL, NULL);
  return PB_OK;
}

const pb_method pb_method_full = {
    PB_METHOD_VERSION,
    "full",
    "full fine-tuning: every backbone tensor trains and is stored",
    "none",
    sizeof(full_ctx),
    full_init,
    NULL, /* set_option: no options */
    full_describe,
    full_attach,
    NULL, /* merge */
    NULL, /* unmerge */
    NULL, /* ops: reserved; full fine-tuning adds no work (its weight gradients are the backbone's) */
    NULL, /* destroy */
    2e-5, /* default_lr: the BERT paper's fine-tuning rate (2e-5..5e-5) */
};
