#include "backbone/checkpoint.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "backbone/share.h"
#include "backbone/latent.h"
#include "backbone/bf16.h"
#include "util/fileio.h"
#include "util/status.h"

/* ---------------------------------------------------------------- config.json */

/* integer field: missing -> default (or error when required); present -> positive integer */
static int json_int(const cJSON *root, const char *path, const char *key, int required, int def, int *out) {
  const cJSON *j = cJSON_GetObjectItemCaseSensitive(root, key);
  if (!j) {
    if (required) return pb_set_error(PB_ERR_FORMAT, "%s: missing required field \"%s\"", path, key);
    *out = def;
    return PB_OK;
  }
  double d = cJSON_IsNumber(j) ? j->valuedouble : NAN;
  if (!(d >= 1 && d <= INT_MAX && d == floor(d)))
    return pb_set_error(PB_ERR_FORMAT, "%s: field \"%s\" must be a positive integer", path, key);
  *out = (int)d;
  return PB_OK;
}

/* real field in [lo, hi): missing -> default */
static int json_real(const cJSON *root, const char *path, const char *key, float def, double lo, double hi, float *out) {
  const cJSON *j = cJSON_GetObjectItemCaseSensitive(root, key);
  if (!j) {
    *out = def;
    return PB_OK;
  }
  double d = cJSON_IsNumber(j) ? j->valuedouble : NAN;
  if (!(d >= lo && d < hi))
    return pb_set_error(PB_ERR_FORMAT, "%s: field \"%s\" must be a number in [%g, %g)", path, key, lo, hi);
  *out = (float)d;
  return PB_OK;
}

/* optional string field that must equal `want` when present */
static int json_str_is(const cJSON *root, const char *path, const char *key, const char *want) {
  const cJSON *j = cJSON_GetObjectItemCaseSensitive(root, key);
  if (!j) return PB_OK;
  if (!cJSON_IsString(j)) return pb_set_error(PB_ERR_FORMAT, "%s: field \"%s\" must be a string", path, key);
  if (strcmp(j->valuestring, want) != 0)
    return pb_set_error(PB_ERR_UNSUPPORTED, "%s: %s \"%s\" is not supported (only \"%s\")", path, key, j->valuestring, want);
  return PB_OK;
}

/* model_type: absent or "bert" -> 0, "albert" (a shared backbone, share.h) -> 1 */
static int hf_model_type(const cJSON *root, const char *path, int *albert) {
  const cJSON *j = cJSON_GetObjectItemCaseSensitive(root, "model_type");
  *albert = 0;
  if (!j) return PB_OK;
  if (!cJSON_IsString(j)) return pb_set_error(PB_ERR_FORMAT, "%s: field \"model_type\" must be a string", path);
  if (strcmp(j->valuestring, "albert") == 0) *albert = 1;
  else if (strcmp(j->valuestring, "bert") != 0)
    return pb_set_error(PB_ERR_UNSUPPORTED, "%s: model_type \"%s\" is not supported (only \"bert\" or \"albert\")",
                        path, j->valuestring);
  return PB_OK;
}

/* ALBERT's fields: G = num_hidden_groups weight sets (cfg->layers) over the S =
 * num_hidden_layers steps pb_model_apply_hf_shape plans */
static int albert_fields(const cJSON *root, const char *path, pb_config *c) {
  int S = c->layers, G, inner, E, rc;
  if (!cJSON_GetObjectItemCaseSensitive(root, "hidden_act"))
    return pb_set_error(PB_ERR_UNSUPPORTED, "%s: ALBERT config without hidden_act (its default gelu_new is not "
                        "supported; only \"gelu\")", path);
  if ((rc = json_int(root, path, "num_hidden_groups", 0, 1, &G)) || (rc = json_int(root, path, "inner_group_num", 0, 1, &inner)) ||
      (rc = json_int(root, path, "embedding_size", 0, 128, &E)))
    return rc;
  if (inner != 1)
    return pb_set_error(PB_ERR_UNSUPPORTED, "%s: inner_group_num %d is not supported (only 1)", path, inner);
  if (E != c->hidden)
    return pb_set_error(PB_ERR_UNSUPPORTED, "%s: embedding_size %d differs from hidden_size %d (factorised ALBERT "
                        "embeddings are not supported)", path, E, c->hidden);
  if (S % G)
    return pb_set_error(PB_ERR_FORMAT, "%s: num_hidden_groups %d does not divide num_hidden_layers %d", path, G, S);
  c->layers = G;
  return PB_OK;
}

int pb_config_load_hf(const char *path, pb_config *cfg) {
  cJSON *root;
  int rc = pb_read_json_object(path, &root);
  if (rc) return rc;
  pb_config c = *cfg;
  if (c.num_labels <= 0) c.num_labels = 2;
  if ((rc = json_int(root, path, "vocab_size", 1, 0, &c.vocab_size)) ||
      (rc = json_int(root, path, "hidden_size", 1, 0, &c.hidden)) ||
      (rc = json_int(root, path, "num_hidden_layers", 1, 0, &c.layers)) ||
      (rc = json_int(root, path, "num_attention_heads", 1, 0, &c.heads)) ||
      (rc = json_int(root, path, "intermediate_size", 1, 0, &c.ffn)) ||
      (rc = json_int(root, path, "max_position_embeddings", 0, 512, &c.max_pos)) ||
      (rc = json_int(root, path, "type_vocab_size", 0, 2, &c.type_vocab)) ||
      (rc = json_real(root, path, "layer_norm_eps", 1e-12f, 1e-30, 1.0, &c.ln_eps)) ||
      (rc = json_real(root, path, "hidden_dropout_prob", 0.1f, 0.0, 1.0, &c.hidden_dropout)) ||
      (rc = json_real(root, path, "attention_probs_dropout_prob", 0.1f, 0.0, 1.0, &c.attn_dropout)) ||
      (rc = json_real(root, path, "initializer_range", 0.02f, 0.0, 1e6, &c.init_range)) ||
      (rc = json_str_is(root, path, "hidden_act", "gelu")) ||
      (rc = json_str_is(root, path, "position_embedding_type", "absolute"))) {
    cJSON_Delete(root);
    return rc;
  }
  int albert = 0;
  if ((rc = hf_model_type(root, path, &albert)) || (albert && (rc = albert_fields(root, path, &c)))) {
    cJSON_Delete(root);
    return rc;
  }
  cJSON_Delete(root);
  if ((rc = pb_config_validate(&c, path))) return rc;
  *cfg = c;
  return PB_OK;
}

static char *join(const char *dir, const char *file);

int pb_model_apply_hf_shape(pb_model *m, const char *model_dir) {
  char *path = join(model_dir, "config.json");
  if (!path) return pb_set_error(PB_ERR_NOMEM, "%s: out of memory", model_dir);
  cJSON *root;
  int rc = pb_read_json_object(path, &root);
  if (rc) {
    free(path);
    return rc;
  }
  int albert = 0, S = 0;
  if (!(rc = hf_model_type(root, path, &albert)) && albert && !(rc = json_int(root, path, "num_hidden_layers", 1, 0, &S)))
    rc = pb_model_apply_albert(m, S); /* a shared backbone: its plan and ALBERT's names */
  const cJSON *sl = rc ? NULL : cJSON_GetObjectItemCaseSensitive(root, "peftbench_slender");
  if (sl) {
    const cJSON *ls = cJSON_GetObjectItemCaseSensitive(sl, "layers");
    if (!cJSON_IsObject(sl) || !cJSON_IsArray(ls) || cJSON_GetArraySize(ls) != m->cfg.layers)
      rc = pb_set_error(PB_ERR_FORMAT, "%s: peftbench_slender: expected {\"layers\": [%d objects], \"word_rank\": r}",
                        path, m->cfg.layers);
    for (int l = 0; !rc && l < m->cfg.layers; l++) {
      const cJSON *o = cJSON_GetArrayItem(ls, l);
      pb_width w;
      if ((rc = json_int(o, path, "hidden", 1, 0, &w.hidden)) || (rc = json_int(o, path, "heads", 1, 0, &w.heads)) ||
          (rc = json_int(o, path, "head_dim", 1, 0, &w.head_dim)) || (rc = json_int(o, path, "ffn", 1, 0, &w.ffn)))
        break;
      const pb_width now = m->width[l];
      if (now.hidden != w.hidden || now.heads != w.heads || now.head_dim != w.head_dim || now.ffn != w.ffn)
        rc = pb_model_set_shape(m, l, w);
    }
    int r = 0;
    const cJSON *wr = cJSON_GetObjectItemCaseSensitive(sl, "word_rank");
    if (!rc && !(cJSON_IsNumber(wr) && wr->valuedouble == 0)) /* 0 (written by older versions): not factorised */
      rc = json_int(sl, path, "word_rank", 0, 0, &r);
    if (!rc && r < 0) rc = pb_set_error(PB_ERR_FORMAT, "%s: peftbench_slender.word_rank %d is negative", path, r);
    if (!rc && r > 0 && r != m->word_rank) rc = pb_model_factor_word(m, r);
  }
  const cJSON *lt = cJSON_GetObjectItemCaseSensitive(root, "peftbench_latent");
  if (!rc && lt) { /* a compressed model (backbone/latent.h): the width map before step k */
    pb_latent_spec ls;
    if (!(rc = pb_latent_from_json(lt, path, &ls)) && (rc = pb_model_set_latent(m, &ls)))
      rc = pb_set_error(rc == PB_ERR_ARG ? PB_ERR_FORMAT : rc, "%s: peftbench_latent: %s", path, pb_last_error());
  }
  cJSON_Delete(root);
  free(path);
  return rc;
}

/* shortest decimal that reads back as the same float, as a double (so 1e-12f prints "1e-12") */
static double float_for_json(float f) {
  char buf[48];
  for (int p = 1; p <= 9; p++) {
    snprintf(buf, sizeof buf, "%.*g", p, (double)f);
    if (strtof(buf, NULL) == f) break;
  }
  return strtod(buf, NULL);
}

static char *config_json(const pb_model *m) {
  const pb_config *c = &m->cfg;
  cJSON *r = cJSON_CreateObject();
  if (!r) return NULL;
  cJSON *arch = cJSON_AddArrayToObject(r, "architectures");
  if (arch) cJSON_AddItemToArray(arch, cJSON_CreateString("BertForSequenceClassification"));
  cJSON_AddStringToObject(r, "model_type", "bert");
  cJSON_AddNumberToObject(r, "vocab_size", c->vocab_size);
  cJSON_AddNumberToObject(r, "hidden_size", c->hidden);
  cJSON_AddNumberToObject(r, "num_hidden_layers", c->layers);
  cJSON_AddNumberToObject(r, "num_attention_heads", c->heads);
  cJSON_AddNumberToObject(r, "intermediate_size", c->ffn);
  cJSON_AddStringToObject(r, "hidden_act", "gelu");
  cJSON_AddNumberToObject(r, "hidden_dropout_prob", float_for_json(c->hidden_dropout));
  cJSON_AddNumberToObject(r, "attention_probs_dropout_prob", float_for_json(c->attn_dropout));
  cJSON_AddNumberToObject(r, "max_position_embeddings", c->max_pos);
  cJSON_AddNumberToObject(r, "type_vocab_size", c->type_vocab);
  cJSON_AddNumberToObject(r, "initializer_range", float_for_json(c->init_range));
  cJSON_AddNumberToObject(r, "layer_norm_eps", float_for_json(c->ln_eps));
  cJSON_AddStringToObject(r, "position_embedding_type", "absolute");
  cJSON_AddNumberToObject(r, "pad_token_id", 0);
  cJSON_AddNumberToObject(r, "num_labels", c->num_labels);
  if (pb_model_is_shared(m)) { /* ALBERT's layout (share.h): S steps over G sets */
    cJSON_ReplaceItemInObject(r, "model_type", cJSON_CreateString("albert"));
    cJSON_DeleteItemFromArray(arch, 0);
    cJSON_AddItemToArray(arch, cJSON_CreateString("AlbertForSequenceClassification"));
    cJSON_ReplaceItemInObject(r, "num_hidden_layers", cJSON_CreateNumber(m->steps));
    cJSON_AddNumberToObject(r, "num_hidden_groups", c->layers);
    cJSON_AddNumberToObject(r, "inner_group_num", 1);
    cJSON_AddNumberToObject(r, "embedding_size", c->hidden);
  }
  if (!pb_model_width_uniform(m) || m->word_rank) { /* slender shapes (pb_model_apply_hf_shape) */
    cJSON *sl = cJSON_AddObjectToObject(r, "peftbench_slender");
    cJSON *ls = sl ? cJSON_AddArrayToObject(sl, "layers") : NULL;
    for (int l = 0; ls && l < c->layers; l++) {
      cJSON *o = cJSON_CreateObject();
      if (!o) break;
      cJSON_AddNumberToObject(o, "hidden", m->width[l].hidden);
      cJSON_AddNumberToObject(o, "heads", m->width[l].heads);
      cJSON_AddNumberToObject(o, "head_dim", m->width[l].head_dim);
      cJSON_AddNumberToObject(o, "ffn", m->width[l].ffn);
      cJSON_AddItemToArray(ls, o);
    }
    if (sl && m->word_rank) cJSON_AddNumberToObject(sl, "word_rank", m->word_rank); /* absent: not factorised */
  }
  if (pb_model_latent(m)) { /* the compressed model's width map (pb_model_apply_hf_shape) */
    cJSON *lt = cJSON_AddObjectToObject(r, "peftbench_latent");
    if (lt) pb_latent_to_json(pb_model_latent(m), lt);
  }
  char *s = cJSON_Print(r);
  cJSON_Delete(r);
  return s;
}

/* ---------------------------------------------------------------- tensor helpers */

static void shape_str(const pb_tensor *t, char *buf, size_t n) {
  size_t o = 0;
  o += (size_t)snprintf(buf + o, o < n ? n - o : 0, "[");
  for (int i = 0; i < t->ndim; i++) o += (size_t)snprintf(buf + o, o < n ? n - o : 0, "%s%d", i ? ", " : "", t->shape[i]);
  snprintf(buf + o, o < n ? n - o : 0, "]");
}

static int same_shape(const pb_tensor *t, const pb_st_tensor *s) {
  if (t->ndim != s->ndim) return 0;
  for (int i = 0; i < t->ndim; i++)
    if ((int64_t)t->shape[i] != s->shape[i]) return 0;
  return 1;
}

static int shape_error(const char *path, const pb_tensor *t, const pb_st_tensor *s) {
  char a[128], b[128];
  pb_st_shape_str(s, a, sizeof a);
  shape_str(t, b, sizeof b);
  return pb_set_error(PB_ERR_SHAPE, "%s: tensor %s has shape %s in the file, the model expects %s", path, s->name, a, b);
}

/* reads file tensor fi into t->data and checks every value is finite */
static int read_checked(const pb_st_file *f, int fi, pb_tensor *t) {
  int rc = pb_st_read_f32(f, fi, t->data, t->numel);
  if (rc) return rc;
  for (size_t j = 0; j < t->numel; j++)
    if (!isfinite(t->data[j]))
      return pb_set_error(PB_ERR_NUMERIC, "%s: tensor %s has a non-finite value (%g at flat index %zu)", f->path,
                          f->t[fi].name, (double)t->data[j], j);
  return PB_OK;
}

static int check_finite(const pb_tensor *t, const char *path) {
  for (size_t j = 0; j < t->numel; j++)
    if (!isfinite(t->data[j]))
      return pb_set_error(PB_ERR_NUMERIC, "%s: tensor %s has a non-finite value (%g at flat index %zu); not saved", path,
                          t->name, (double)t->data[j], j);
  return PB_OK;
}

static int check_allocated(const pb_model *m, const char *what) {
  for (int i = 0; i < m->params.n; i++)
    if (!m->params.t[i].data)
      return pb_set_error(PB_ERR_ARG, "%s: model parameters are not allocated (call pb_model_alloc first)", what);
  return PB_OK;
}

/* Index in f of the HF tensor for our name: the name itself, without "bert.", and with the
 * old LayerNorm names gamma/beta. -1 if none. */
static int find_hf(const pb_st_file *f, const char *name) {
  char cand[4][PB_NAME_MAX + 8];
  int nc = 0;
  snprintf(cand[nc++], sizeof cand[0], "%s", name);
  if (strncmp(name, "bert.", 5) == 0) snprintf(cand[nc++], sizeof cand[0], "%s", name + 5);
  int base = nc;
  for (int i = 0; i < base; i++) {
    const char *c = cand[i];
    size_t n = strlen(c);
    static const char *lw = ".LayerNorm.weight", *lb = ".LayerNorm.bias";
    if (n > strlen(lw) && strcmp(c + n - strlen(lw), lw) == 0)
      snprintf(cand[nc++], sizeof cand[0], "%.*s.LayerNorm.gamma", (int)(n - strlen(lw)), c);
    else if (n > strlen(lb) && strcmp(c + n - strlen(lb), lb) == 0)
      snprintf(cand[nc++], sizeof cand[0], "%.*s.LayerNorm.beta", (int)(n - strlen(lb)), c);
  }
  for (int i = 0; i < nc; i++) {
    int k = pb_st_find(f, cand[i]);
    if (k >= 0) return k;
  }
  return -1;
}

static char *join(const char *dir, const char *file) {
  size_t n = strlen(dir) + strlen(file) + 2;
  char *p = malloc(n);
  if (p) snprintf(p, n, "%s/%s", dir, file);
  return p;
}

/* ---------------------------------------------------------------- HF folder */

int pb_model_load_hf(pb_model *m, const char *model_dir) { return pb_model_load_hf_ex(m, model_dir, 1); }

int pb_model_load_hf_ex(pb_model *m, const char *model_dir, int load_head) {
  int rc = check_allocated(m, model_dir);
  if (rc) return rc;
  char *path = join(model_dir, "model.safetensors");
  if (!path) return pb_set_error(PB_ERR_NOMEM, "%s: out of memory", model_dir);
  pb_st_file f;
  rc = pb_st_open(&f, path);
  if (rc == PB_ERR_NOTFOUND)
    rc = pb_set_error(PB_ERR_NOTFOUND, "%s: no model.safetensors (only safetensors checkpoints are read; convert "
                      "pytorch_model.bin with the safetensors library)", model_dir);
  if (rc) {
    free(path);
    return rc;
  }
  pb_params *p = &m->params;
  int *src = malloc(((size_t)p->n + 1) * sizeof *src);
  if (!src) {
    rc = pb_set_error(PB_ERR_NOMEM, "%s: out of memory", path);
    goto out;
  }
  if ((rc = pb_albert_check_mapping(&f, m->cfg.hidden))) goto out; /* ALBERT: only the identity mapping */
  /* pass 1: names and shapes, before touching any value */
  m->hf_head = PB_HF_HEAD_ABSENT;
  m->hf_head_note[0] = 0;
  for (int i = 0; i < p->n && !rc; i++) {
    const pb_tensor *t = &p->t[i];
    src[i] = -1;
    if (t->owner == PB_OWNER_METHOD) continue;
    int k = find_hf(&f, t->name);
    const char *al;
    for (int a = 0; k < 0 && (al = pb_params_alias_of(p, i, a)); a++) k = find_hf(&f, al); /* its other names */
    if (t->owner == PB_OWNER_BACKBONE) {
      if (k < 0) rc = pb_set_error(PB_ERR_NOTFOUND, "%s: missing backbone tensor %s", path, t->name);
      else if (!same_shape(t, &f.t[k])) rc = shape_error(path, t, &f.t[k]);
      else src[i] = k;
    } else if (k >= 0) { /* head: loaded only when it fits and is wanted; the caller reads m->hf_head */
      if (!same_shape(t, &f.t[k])) {
        if (m->hf_head == PB_HF_HEAD_MISMATCH) continue; /* the first mismatch is the one named */
        m->hf_head = PB_HF_HEAD_MISMATCH;
        char want[64], have[64];
        shape_str(t, want, sizeof want);
        pb_st_shape_str(&f.t[k], have, sizeof have);
        snprintf(m->hf_head_note, sizeof m->hf_head_note, "%.700s has %.100s %s, the task needs %s", path, t->name, have, want);
      } else if (load_head) {
        src[i] = k;
      }
      if (m->hf_head != PB_HF_HEAD_MISMATCH) m->hf_head = load_head ? PB_HF_HEAD_LOADED : PB_HF_HEAD_IGNORED;
    }
  }
  /* pass 2: values */
  for (int i = 0; i < p->n && !rc; i++)
    if (src[i] >= 0) rc = read_checked(&f, src[i], &p->t[i]);
  p->version++;
  pb_bf16_weights_changed();
out:
  free(src);
  pb_st_close(&f);
  free(path);
  return rc;
}

int pb_model_save_hf(const pb_model *m, const char *dir) {
  int rc = check_allocated(m, dir);
  if (rc) return rc;
  if (mkdir(dir, 0755) != 0 && errno != EEXIST)
    return pb_set_error(PB_ERR_IO, "%s: cannot create directory: %s", dir, strerror(errno));
  const pb_params *p = &m->params;
  pb_hf_tensors hl; /* every backbone + head tensor under its HF name (ALBERT's when shared) */
  if ((rc = pb_hf_tensors_build(&hl, m, 1))) return rc;
  char *st_path = join(dir, "model.safetensors"), *cfg_path = join(dir, "config.json");
  char *json = config_json(m);
  if (!st_path || !cfg_path || !json) {
    rc = pb_set_error(PB_ERR_NOMEM, "%s: out of memory", dir);
    goto out;
  }
  for (int i = 0; i < p->n; i++)
    if (p->t[i].owner != PB_OWNER_METHOD && (rc = check_finite(&p->t[i], st_path))) goto out;
  pb_kv meta[1] = {{"format", "pt"}};
  if ((rc = pb_st_write(st_path, meta, 1, hl.w, hl.n, PB_ST_F32))) goto out;
  size_t jl = strlen(json);
  json[jl] = '\n'; /* replace the NUL for a trailing newline; length passed explicitly */
  rc = pb_write_file_atomic(cfg_path, json, jl + 1);
out:
  free(json);
  pb_hf_tensors_free(&hl);
  free(st_path);
  free(cfg_path);
  return rc;
}

/* ---------------------------------------------------------------- task files */

static int task_save(const pb_model *m, const char *path, const pb_kv *meta, int n_meta, int no_replace) {
  int rc = check_allocated(m, path);
  if (rc) return rc;
  if (n_meta < 0 || (n_meta > 0 && !meta)) return pb_set_error(PB_ERR_ARG, "%s: bad metadata list", path);
  for (int i = 0; i < n_meta; i++)
    if (meta[i].key && (strcmp(meta[i].key, "format") == 0 || strcmp(meta[i].key, "format_version") == 0))
      return pb_set_error(PB_ERR_ARG, "%s: metadata key \"%s\" is reserved", path, meta[i].key);
  const pb_params *p = &m->params;
  pb_kv *all = malloc(((size_t)n_meta + 2) * sizeof *all);
  pb_st_wtensor *w = malloc(((size_t)p->n + 1) * sizeof *w);
  if (!all || !w) {
    rc = pb_set_error(PB_ERR_NOMEM, "%s: out of memory", path);
    goto out;
  }
  all[0].key = "format";
  all[0].value = PB_TASK_FORMAT;
  all[1].key = "format_version";
  all[1].value = PB_TASK_FORMAT_VERSION;
  for (int i = 0; i < n_meta; i++) all[2 + i] = meta[i];
  int n = 0;
  for (int i = 0; i < p->n; i++) {
    const pb_tensor *t = &p->t[i];
    if (!t->stored) continue;
    if ((rc = check_finite(t, path))) goto out;
    w[n].name = t->name;
    w[n].ndim = t->ndim;
    w[n].shape = t->shape;
    w[n].data = t->data;
    n++;
  }
  rc = no_replace ? pb_st_write_new(path, all, n_meta + 2, w, n, PB_ST_F32)
                  : pb_st_write(path, all, n_meta + 2, w, n, PB_ST_F32);
out:
  free(all);
  free(w);
  return rc;
}

int pb_task_save(const pb_model *m, const char *path, const pb_kv *meta, int n_meta) {
  return task_save(m, path, meta, n_meta, 0);
}

int pb_task_save_new(const pb_model *m, const char *path, const pb_kv *meta, int n_meta) {
  return task_save(m, path, meta, n_meta, 1);
}

static int check_task_meta(const char *path, const pb_kv *meta, int n) {
  const char *fmt = pb_kv_get(meta, n, "format"), *ver = pb_kv_get(meta, n, "format_version");
  if (!fmt || strcmp(fmt, PB_TASK_FORMAT) != 0)
    return pb_set_error(PB_ERR_FORMAT, "%s: not a peftbench task file (metadata format is \"%s\", expected \"%s\")", path,
                        fmt ? fmt : "(none)", PB_TASK_FORMAT);
  if (!ver || strcmp(ver, PB_TASK_FORMAT_VERSION) != 0)
    return pb_set_error(PB_ERR_UNSUPPORTED, "%s: task file format_version \"%s\" is not supported (this build reads \"%s\")",
                        path, ver ? ver : "(none)", PB_TASK_FORMAT_VERSION);
  return PB_OK;
}

int pb_task_read_meta(const char *path, pb_kv **meta, int *n_meta) {
  int rc = pb_st_read_meta(path, meta, n_meta);
  if (rc) return rc;
  if ((rc = check_task_meta(path, *meta, *n_meta))) {
    pb_kv_free(*meta, *n_meta);
    *meta = NULL;
    *n_meta = 0;
  }
  return rc;
}

int pb_task_load(pb_model *m, const char *path, pb_kv **meta, int *n_meta) {
  if (meta) {
    *meta = NULL;
    *n_meta = 0;
  }
  int rc = check_allocated(m, path);
  if (rc) return rc;
  pb_st_file f;
  if ((rc = pb_st_open(&f, path))) return rc;
  pb_params *p = &m->params;
  int *src = NULL;
  if ((rc = check_task_meta(path, f.meta, f.n_meta))) goto out;
  src = malloc(((size_t)p->n + 1) * sizeof *src);
  if (!src) {
    rc = pb_set_error(PB_ERR_NOMEM, "%s: out of memory", path);
    goto out;
  }
  /* pass 1: the file's tensors are exactly the model's stored tensors, same shapes */
  for (int i = 0; i < p->n && !rc; i++) {
    const pb_tensor *t = &p->t[i];
    src[i] = -1;
    if (!t->stored) continue;
    int k = pb_st_find(&f, t->name);
    if (k < 0) rc = pb_set_error(PB_ERR_NOTFOUND, "%s: task file lacks tensor %s", path, t->name);
    else if (!same_shape(t, &f.t[k])) rc = shape_error(path, t, &f.t[k]);
    else src[i] = k;
  }
  for (int k = 0; k < f.n && !rc; k++) {
    int i = pb_params_find(p, f.t[k].name);
    if (i < 0 || !p->t[i].stored)
      rc = pb_set_error(PB_ERR_NOTFOUND, "%s: task file has tensor %s that this model does not store (built with another "
                        "method or config?)", path, f.t[k].name);
  }
  /* pass 2: values */
  for (int i = 0; i < p->n && !rc; i++)
    if (src[i] >= 0) rc = read_checked(&f, src[i], &p->t[i]);
  p->version++;
  pb_bf16_weights_changed();
  if (!rc && meta) { /* hand the metadata over */
    *meta = f.meta;
    *n_meta = f.n_meta;
    f.meta = NULL;
    f.n_meta = 0;
  }
out:
  free(src);
  pb_st_close(&f);
  return rc;
}
