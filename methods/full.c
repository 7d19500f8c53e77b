/* Full fine-tuning: every backbone tensor is trainable and written into the task file (the
 * task file then holds the whole model). No hooks, no options, no added operations. */
#include <stdio.h>
#include <string.h>

#include "util/status.h"
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
  pb_params_train_owner(&m->params, PB_OWNER_BACKBONE);
  c->m = m;
  return PB_OK;
}

static const pb_method_refconfig full_refs[] = {{"full", NULL}};

const pb_method pb_method_full = {
    .version = PB_METHOD_VERSION,
    .name = "full",
    .summary = "full fine-tuning: every backbone tensor trains and is stored",
    .ctx_size = sizeof(full_ctx),
    .init = full_init,
    /* set_option: no options (n_options 0); merge/unmerge/destroy: none; ops: reserved, full
     * fine-tuning adds no work (its weight gradients are the backbone's) */
    .describe = full_describe,
    .attach = full_attach,
    .default_lr = 2e-5, /* the BERT paper's fine-tuning rate (2e-5..5e-5) */
    .refconfigs = full_refs,
    .n_refconfigs = 1,
    .order = 1,
    .reference = 1,
};
