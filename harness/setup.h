/* Building the model a command needs: backbone configuration and weights (an HF folder given
 * with --model, else the embedded default in models/default, else a random-initialised
 * default-shaped backbone, said loudly), the vocabulary, and the method attached. */
#ifndef PB_SETUP_H
#define PB_SETUP_H

#include "backbone/bert.h"
#include "backbone/tokenizer.h"
#include "methods/method.h"

/* the seed of every random-initialised backbone (--shape, or no default weights) */
#define PB_RANDOM_BACKBONE_SEED 20261123ULL

typedef struct {
  const char *model_dir;  /* --model: HF folder; NULL = embedded default */
  const char *vocab;      /* --vocab; NULL = model_dir/vocab.txt, else the shared bert-base vocab */
  const char *shape;      /* --shape L,H,A,F (random init, default vocab); NULL = none */
  int num_labels;
  float hidden_dropout;   /* < 0: keep the config's */
  float attn_dropout;
  int infer_only;         /* forward passes only: pb_model_alloc_infer (shared layer buffers) */
} pb_backbone_opts;

typedef struct {
  char source[1024];      /* folder the weights came from, or "random-init" */
  int pretrained;         /* weights were loaded */
  char vocab_path[1200];
  char fingerprint[17];
} pb_backbone_info;

/* Resolves the configuration (no weights, no memory): fills cfg and info->source/pretrained. */
int pb_backbone_config(const pb_backbone_opts *o, pb_config *cfg, pb_backbone_info *info);
/* Declares the model, attaches the method, allocates for B x T, initialises (seed) and loads
 * the backbone weights. */
int pb_build_model(const pb_backbone_opts *o, const pb_method_inst *mi, int B, int T, unsigned long long seed,
                   pb_model *m, pb_backbone_info *info);
/* Loads the vocabulary (resolution in pb_backbone_opts.vocab) and checks it fits the model. */
int pb_load_vocab(const pb_backbone_opts *o, const pb_config *cfg, pb_tokenizer **tk, pb_backbone_info *info);
/* path of the embedded default folder (PB_SOURCE_DIR/models/default) */
const char *pb_default_model_dir(void);

#endif
