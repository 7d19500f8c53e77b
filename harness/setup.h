/* Building the model a command needs: backbone configuration and weights (an HF folder given
 * with --model, else the embedded default in models/default, else a random-initialised
 * default-shaped backbone, said loudly), the vocabulary, and the method attached. */
#ifndef PB_SETUP_H
#define PB_SETUP_H

#include <cjson/cJSON.h>

#include "backbone/bert.h"
#include "backbone/tokenizer.h"
#include "methods/method.h"

/* the seed of every random-initialised backbone (--shape, or no default weights) */
#define PB_RANDOM_BACKBONE_SEED 20261123ULL

/* pb_backbone_opts.lower_case (--lower-case auto|yes|no); 0 is auto so that zero-initialised
 * options keep working. Auto: do_lower_case from the model folder's tokenizer_config.json
 * (--model DIR, else the embedded default folder) when that file has it; else the
 * vocabulary's convention: lower-case unless some token other than bracketed ones
 * ([CLS], [unused0]) has an upper-case letter (pb_tok_first_cased). */
enum {
  PB_LOWER_CASE_AUTO = 0, /* tokenizer_config.json, else the vocabulary convention */
  PB_LOWER_CASE_YES = 1,  /* force do_lower_case = 1 (uncased BERT: lower-case + strip accents) */
  PB_LOWER_CASE_NO = 2    /* force do_lower_case = 0 (cased BERT: text kept as is) */
};

typedef struct {
  const char *model_dir;  /* --model: HF folder; NULL = embedded default */
  const char *vocab;      /* --vocab; NULL = model_dir/vocab.txt (an error when missing), or, for the
                             embedded default / --shape / random backbones, the shared bert-base vocab */
  const char *shape;      /* --shape L,H,A,F (random init, default vocab); NULL = none */
  int num_labels;
  float hidden_dropout;   /* < 0: keep the config's */
  float attn_dropout;
  int infer_only;         /* forward passes only: pb_model_alloc_infer (shared layer buffers) */
  int lower_case;         /* PB_LOWER_CASE_AUTO (0), _YES (1) or _NO (2); other values: PB_ERR_ARG */
} pb_backbone_opts;

typedef struct {
  char source[1024];      /* folder the weights came from, or "random-init" */
  int pretrained;         /* weights were loaded */
  char vocab_path[1200];
  char fingerprint[17];
  int lower_case;             /* the tokenizer's do_lower_case: 1 uncased, 0 cased (pb_load_vocab) */
  char lower_case_source[32]; /* how it was decided: "option" | "tokenizer_config.json" | "vocab convention" */
  char vocab_sha256[65];      /* SHA-256 of the vocabulary file's bytes (64 lower-case hex digits) */
} pb_backbone_info;

/* Resolves the configuration (no weights, no memory): fills cfg and info->source/pretrained. */
int pb_backbone_config(const pb_backbone_opts *o, pb_config *cfg, pb_backbone_info *info);
/* Declares the model, attaches the method, allocates for B x T, initialises (seed) and loads
 * the backbone weights. */
int pb_build_model(const pb_backbone_opts *o, const pb_method_inst *mi, int B, int T, unsigned long long seed,
                   pb_model *m, pb_backbone_info *info);
/* Loads the vocabulary (resolution in pb_backbone_opts.vocab), checks it fits the model, sets
 * the tokenizer's casing (pb_backbone_opts.lower_case) and fills info->vocab_path,
 * vocab_sha256, lower_case and lower_case_source (only those). Errors, one line naming the
 * file: --model DIR without vocab.txt and no --vocab: PB_ERR_FORMAT "DIR: no vocab.txt (give
 * --vocab FILE)"; tokenizer_config.json not JSON / not an object / do_lower_case not a
 * boolean: PB_ERR_FORMAT; tokenize_chinese_chars false, or strip_accents set against the
 * resolved do_lower_case: PB_ERR_UNSUPPORTED; vocab file errors as pb_tok_load. *tk is NULL
 * on error. */
int pb_load_vocab(const pb_backbone_opts *o, const pb_config *cfg, pb_tokenizer **tk, pb_backbone_info *info);
/* Adds obj.tokenizer = {vocab, vocab_sha256, lower_case, lower_case_source} from info
 * (records and `eval --json`). */
void pb_tokenizer_json_add(cJSON *obj, const pb_backbone_info *info);
/* --lower-case value: "auto", "yes" or "no" -> PB_LOWER_CASE_*; else PB_ERR_ARG naming it. */
int pb_lower_case_parse(const char *s, int *out);
/* path of the embedded default folder (PB_SOURCE_DIR/models/default) */
const char *pb_default_model_dir(void);

#endif
