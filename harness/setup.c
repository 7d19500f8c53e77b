#include "harness/setup.h"

#include "backbone/latent.h"

#include <cjson/cJSON.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "backbone/checkpoint.h"
#include "util/fileio.h"
#include "util/status.h"

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
  if ((info->pretrained && (rc = pb_model_apply_hf_shape(m, info->source))) || (mi && (rc = mi->m->attach(mi->ctx, m))) ||
      (pb_latent_apply_trainable(m), 0) || (rc = o->infer_only ? pb_model_alloc_infer(m, B, T) : pb_model_alloc(m, B, T))) {
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

int pb_lower_case_parse(const char *s, int *out) {
  static const char *names[3] = {"auto", "yes", "no"};
  for (int i = 0; s && i < 3; i++)
    if (strcmp(s, names[i]) == 0) {
      *out = i; /* PB_LOWER_CASE_AUTO, _YES, _NO */
      return PB_OK;
    }
  return pb_set_error(PB_ERR_ARG, "--lower-case '%s': expected auto, yes or no", s ? s : "(null)");
}

/* dir is the embedded default folder under another spelling (e.g. eval re-deriving it) */
static int is_default_dir(const char *dir) {
  char a[PATH_MAX], b[PATH_MAX];
  return realpath(dir, a) && realpath(pb_default_model_dir(), b) && strcmp(a, b) == 0;
}

/* what the tokenizer settings of an HF tokenizer_config.json say (absent keys: defaults) */
typedef struct {
  int exists;      /* the file is there */
  int has_lower;   /* do_lower_case is given */
  int lower;       /* its value */
  int strip;       /* strip_accents: -1 absent or null, else 0/1 */
  int chinese;     /* tokenize_chinese_chars (default 1) */
} tok_config;

static int json_bool(const char *path, const cJSON *root, const char *key, int null_ok, int *out) {
  const cJSON *j = cJSON_GetObjectItemCaseSensitive(root, key);
  if (!j || (null_ok && cJSON_IsNull(j))) return 0;
  if (!cJSON_IsBool(j))
    return pb_set_error(PB_ERR_FORMAT, "%s: \"%s\" must be true or false%s", path, key, null_ok ? " (or null)" : "");
  *out = cJSON_IsTrue(j);
  return 1;
}

static int read_tok_config(const char *dir, tok_config *tc) {
  memset(tc, 0, sizeof *tc);
  tc->strip = -1;
  tc->chinese = 1;
  if (!dir) return PB_OK;
  char path[1200];
  snprintf(path, sizeof path, "%s/tokenizer_config.json", dir);
  if (!is_file(path)) return PB_OK;
  tc->exists = 1;
  cJSON *root;
  int rc = pb_read_json_object(path, &root);
  if (rc) return rc;
  int r1 = 0, r2 = 0, r3 = 0;
  if ((r1 = json_bool(path, root, "do_lower_case", 0, &tc->lower)) < 0) rc = r1;
  else if ((r2 = json_bool(path, root, "strip_accents", 1, &tc->strip)) < 0) rc = r2;
  else if ((r3 = json_bool(path, root, "tokenize_chinese_chars", 0, &tc->chinese)) < 0) rc = r3;
  tc->has_lower = r1 > 0;
  cJSON_Delete(root);
  if (rc == PB_OK && !tc->chinese)
    rc = pb_set_error(PB_ERR_UNSUPPORTED, "%s: tokenize_chinese_chars false is not supported", path);
  return rc;
}

int pb_load_vocab(const pb_backbone_opts *o, const pb_config *cfg, pb_tokenizer **tk, pb_backbone_info *info) {
  *tk = NULL;
  if (o->lower_case < PB_LOWER_CASE_AUTO || o->lower_case > PB_LOWER_CASE_NO)
    return pb_set_error(PB_ERR_ARG, "lower_case %d: expected PB_LOWER_CASE_AUTO (0), _YES (1) or _NO (2)",
                        o->lower_case);
  /* the folder whose tokenizer_config.json counts; a --model folder must bring its vocab.txt,
   * only the embedded default (and --shape / random backbones) use the shared bert-base vocab */
  const char *dir = o->model_dir ? o->model_dir : o->shape ? NULL : pb_default_model_dir();
  int own_vocab = o->model_dir && !is_default_dir(o->model_dir);
  tok_config tc;
  int rc = read_tok_config(dir, &tc);
  if (rc) return rc;

  char cand[3][1200];
  int n = 0;
  if (o->vocab) snprintf(cand[n++], sizeof cand[0], "%s", o->vocab);
  else if (own_vocab) {
    snprintf(cand[n++], sizeof cand[0], "%s/vocab.txt", o->model_dir);
    if (!is_file(cand[0])) return pb_set_error(PB_ERR_FORMAT, "%s: no vocab.txt (give --vocab FILE)", o->model_dir);
  } else {
    if (dir) snprintf(cand[n++], sizeof cand[0], "%s/vocab.txt", dir);
    snprintf(cand[n++], sizeof cand[0], "../" SHARED_VOCAB);
    snprintf(cand[n++], sizeof cand[0], "%s/../" SHARED_VOCAB, PB_SOURCE_DIR);
  }
  const char *path = NULL;
  for (int i = 0; i < n && !path; i++)
    if (o->vocab || own_vocab || is_file(cand[i])) path = cand[i];
  if (!path)
    return pb_set_error(PB_ERR_NOTFOUND,
                        "no vocabulary found: give --vocab FILE, or place bert-base-uncased's vocab at ../%s",
                        SHARED_VOCAB);
  char sha[65];
  if ((rc = pb_tok_load_digest(tk, path, sha))) return rc;
  if (pb_tok_vocab_size(*tk) > cfg->vocab_size) {
    int v = pb_tok_vocab_size(*tk);
    pb_tok_free(*tk);
    *tk = NULL;
    return pb_set_error(PB_ERR_SHAPE, "%s: %d tokens but the backbone has only %d embeddings", path, v,
                        cfg->vocab_size);
  }

  /* casing: the option, else tokenizer_config.json, else the vocabulary's convention */
  int lower;
  const char *src;
  if (o->lower_case != PB_LOWER_CASE_AUTO) {
    lower = o->lower_case == PB_LOWER_CASE_YES;
    src = "option";
  } else if (tc.has_lower) {
    lower = tc.lower;
    src = "tokenizer_config.json";
  } else {
    lower = pb_tok_first_cased(*tk) < 0;
    src = "vocab convention";
  }
  if (tc.strip >= 0 && tc.strip != lower) {
    pb_tok_free(*tk);
    *tk = NULL;
    return pb_set_error(PB_ERR_UNSUPPORTED,
                        "%s/tokenizer_config.json: strip_accents %s with do_lower_case %s (%s) is not supported: "
                        "accents are stripped exactly when lower-casing",
                        dir, tc.strip ? "true" : "false", lower ? "true" : "false", src);
  }
  pb_tok_set_lower_case(*tk, lower);
  info->lower_case = lower;
  snprintf(info->lower_case_source, sizeof info->lower_case_source, "%s", src);
  snprintf(info->vocab_sha256, sizeof info->vocab_sha256, "%s", sha);
  snprintf(info->vocab_path, sizeof info->vocab_path, "%.1199s", path);
  return PB_OK;
}

void pb_tokenizer_json_add(cJSON *obj, const pb_backbone_info *info) {
  cJSON *j = cJSON_AddObjectToObject(obj, "tokenizer");
  cJSON_AddStringToObject(j, "vocab", info->vocab_path);
  cJSON_AddStringToObject(j, "vocab_sha256", info->vocab_sha256);
  cJSON_AddBoolToObject(j, "lower_case", info->lower_case);
  cJSON_AddStringToObject(j, "lower_case_source", info->lower_case_source);
}
