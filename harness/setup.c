#include "harness/setup.h"

#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

#include "backbone/checkpoint.h"
#include "backbone/status.h"

#define SHARED_VOCAB "shared/data/vocab/bert-base-uncased-vocab.txt"

static int is_file(const char *p) {
  struct stat st;
  return stat(p, &st) == 0 && S_ISREG(st.st_mode);
}

const char *pb_default_model_dir(void) { return PB_SOURCE_DIR "/models/default"; }

int pb_backbone_config(const pb_backbone_opts *o, pb_config *cfg, pb_backbone_info *info) {
  char path[1200];
  memset(info, 0, sizeof *info);
  const char *dir = o->model_dir;
  if (o->shape) {
    if (dir) return pb_set_error(PB_ERR_ARG, "--shape and --model exclude each other");
    pb_config_default(cfg, o->num_labels);
    int L, H, A, F;
    char extra;
    if (sscanf(o->shape, "%d,%d,%d,%d%c", &L, &H, &A, &F, &extra) != 4)
      return pb_set_error(PB_ERR_ARG, "--shape '%s': expected L,H,A,F (e.g. 2,64,2,128)", o->shape);
    cfg->layers = L;
    cfg->hidden = H;
    cfg->heads = A;
    cfg->ffn = F;
    snprintf(info->source, sizeof info->source, "random-init");
  } else {
    if (!dir) {
      snprintf(path, sizeof path, "%s/model.safetensors", pb_default_model_dir());
      if (is_file(path)) dir = pb_default_model_dir();
    }
    if (dir) {
      snprintf(path, sizeof path, "%s/config.json", dir);
      cfg->num_labels = o->num_labels;
      int rc = pb_config_load_hf(path, cfg);
      if (rc) return rc;
      snprintf(info->source, sizeof info->source, "%s", dir);
      info->pretrained = 1;
    } else {
      pb_config_default(cfg, o->num_labels);
      snprintf(info->source, sizeof info->source, "random-init");
    }
  }
  cfg->num_labels = o->num_labels;
  if (o->hidden_dropout >= 0) cfg->hidden_dropout = o->hidden_dropout;
  if (o->attn_dropout >= 0) cfg->attn_dropout = o->attn_dropout;
  return pb_config_validate(cfg, info->source);
}

int pb_build_model(const pb_backbone_opts *o, const pb_method_inst *mi, int B, int T, unsigned long long seed,
                   pb_model *m, pb_backbone_info *info) {
  pb_config cfg;
  int rc = pb_backbone_config(o, &cfg, info);
  if (rc) return rc;
  if (T > cfg.max_pos)
    return pb_set_error(PB_ERR_ARG, "--max-len %d exceeds the backbone's %d positions", T, cfg.max_pos);
  if ((rc = pb_model_declare(m, &cfg))) return rc;
  /* from here on a failure frees the model: on error the caller has nothing to free */
  if ((mi && (rc = mi->m->attach(mi->ctx, m))) || (rc = o->infer_only ? pb_model_alloc_infer(m, B, T) : pb_model_alloc(m, B, T))) {
    pb_model_free(m);
    return rc;
  }
  pb_model_init_random(m, seed);
  if (info->pretrained) {
    if ((rc = pb_model_load_hf(m, info->source))) {
      pb_model_free(m);
      return rc;
    }
  } else { /* one random backbone per shape, whatever the run's seed: seeds vary head and method only */
    pb_rng r;
    pb_rng_seed(&r, PB_RANDOM_BACKBONE_SEED);
    pb_params_init_owner(&m->params, &r, PB_OWNER_BACKBONE);
  }
  pb_model_fingerprint(m, info->fingerprint);
  return PB_OK;
}

int pb_load_vocab(const pb_backbone_opts *o, const pb_config *cfg, pb_tokenizer **tk, pb_backbone_info *info) {
  char cand[3][1200];
  int n = 0;
  if (o->vocab) snprintf(cand[n++], sizeof cand[0], "%s", o->vocab);
  else {
    if (o->model_dir) snprintf(cand[n++], sizeof cand[0], "%s/vocab.txt", o->model_dir);
    snprintf(cand[n++], sizeof cand[0], "../" SHARED_VOCAB);
    snprintf(cand[n++], sizeof cand[0], "%s/../" SHARED_VOCAB, PB_SOURCE_DIR);
  }
  const char *path = NULL;
  for (int i = 0; i < n && !path; i++)
    if (o->vocab || is_file(cand[i])) path = cand[i];
  if (!path)
    return pb_set_error(PB_ERR_NOTFOUND,
                        "no vocabulary found: give --vocab FILE, put vocab.txt in the --model folder, or place "
                        "bert-base-uncased's vocab at ../%s",
                        SHARED_VOCAB);
  int rc = pb_tok_load(tk, path);
  if (rc) return rc;
  if (pb_tok_vocab_size(*tk) > cfg->vocab_size) {
    int v = pb_tok_vocab_size(*tk);
    pb_tok_free(*tk);
    *tk = NULL;
    return pb_set_error(PB_ERR_SHAPE, "%s: %d tokens but the backbone has only %d embeddings", path, v,
                        cfg->vocab_size);
  }
  snprintf(info->vocab_path, sizeof info->vocab_path, "%.1199s", path);
  return PB_OK;
}
