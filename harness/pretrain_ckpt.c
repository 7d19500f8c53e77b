/* The files of `pretrain`: checkpoint tensors and the final folder (pretrain_ckpt.h). */
#include "harness/pretrain_ckpt.h"

#include "backbone/share.h"

#include <cjson/cJSON.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "backbone/checkpoint.h"
#include "util/fileio.h"
#include "util/status.h"
#include "harness/pretrain.h"
#include "harness/trainer.h"

static void join(char *out, size_t n, const char *dir, const char *file) { snprintf(out, n, "%s/%s", dir, file); }

/* ---------------------------------------------------------------- checkpoint */

int pb_pretrain_ckpt_write(const char *path, const pb_params *p, const pb_kv *meta, int n_meta, const float *window,
                           const float *nwindow) {
  pb_st_wtensor *w = calloc((size_t)p->n * 3 + 2, sizeof *w);
  char (*names)[PB_NAME_MAX + 16] = calloc((size_t)p->n * 2 + 1, sizeof *names);
  int n = 0, rc;
  if (!w || !names) {
    rc = pb_set_error(PB_ERR_NOMEM, "pretrain: out of memory");
    goto out;
  }
  static const int win_shape[1] = {PB_TRAIN_WINDOW};
  for (int i = 0; i < p->n; i++) {
    const pb_tensor *t = &p->t[i];
    w[n++] = (pb_st_wtensor){t->name, t->ndim, t->shape, t->data};
    if (!t->trainable) continue;
    snprintf(names[2 * i], sizeof names[0], "optim.m/%s", t->name);
    snprintf(names[2 * i + 1], sizeof names[0], "optim.v/%s", t->name);
    w[n++] = (pb_st_wtensor){names[2 * i], t->ndim, t->shape, t->m};
    w[n++] = (pb_st_wtensor){names[2 * i + 1], t->ndim, t->shape, t->v};
  }
  w[n++] = (pb_st_wtensor){"pretrain.loss_window", 1, win_shape, window};
  if (nwindow) w[n++] = (pb_st_wtensor){"pretrain.nsp_window", 1, win_shape, nwindow};
  rc = pb_st_write(path, meta, n_meta, w, n, PB_ST_F32);
out:
  free(w);
  free(names);
  return rc;
}

int pb_pretrain_ckpt_read(const pb_st_file *f, pb_params *p, float *window, float *nwindow) {
  char name[PB_NAME_MAX + 16];
  int rc;
  for (int i = 0; i < p->n; i++) {
    pb_tensor *t = &p->t[i];
    if ((rc = pb_st_read_f32_name(f, t->name, t->data, t->numel))) return rc;
    if (!t->trainable) continue;
    snprintf(name, sizeof name, "optim.m/%s", t->name);
    if ((rc = pb_st_read_f32_name(f, name, t->m, t->numel))) return rc;
    snprintf(name, sizeof name, "optim.v/%s", t->name);
    if ((rc = pb_st_read_f32_name(f, name, t->v, t->numel))) return rc;
  }
  p->version++;
  if (nwindow && (rc = pb_st_read_f32_name(f, "pretrain.nsp_window", nwindow, PB_TRAIN_WINDOW))) return rc;
  return pb_st_read_f32_name(f, "pretrain.loss_window", window, PB_TRAIN_WINDOW);
}

/* ---------------------------------------------------------------- export */

static int patch_config(const char *dir, int nsp) {
  char path[PB_PRETRAIN_PATH_MAX + 64];
  join(path, sizeof path, dir, "config.json");
  char *txt = NULL;
  size_t len = 0;
  int rc = pb_read_file(path, &txt, &len);
  if (rc) return rc;
  cJSON *r = cJSON_Parse(txt);
  free(txt);
  if (!r) return pb_set_error(PB_ERR_FORMAT, "%s: cannot parse the config just written", path);
  const cJSON *mt = cJSON_GetObjectItemCaseSensitive(r, "model_type");
  const int albert = cJSON_IsString(mt) && strcmp(mt->valuestring, "albert") == 0; /* a shared backbone */
  cJSON_DeleteItemFromObject(r, "architectures");
  cJSON *arch = cJSON_AddArrayToObject(r, "architectures");
  if (arch)
    cJSON_AddItemToArray(arch, cJSON_CreateString(albert ? (nsp ? "AlbertForPreTraining" : "AlbertForMaskedLM")
                                                         : (nsp ? "BertForPreTraining" : "BertForMaskedLM")));
  cJSON_DeleteItemFromObject(r, "num_labels");
  char *s = cJSON_Print(r);
  cJSON_Delete(r);
  if (!s) return pb_set_error(PB_ERR_NOMEM, "%s: out of memory", path);
  size_t sl = strlen(s);
  char *buf = malloc(sl + 2);
  if (!buf) {
    free(s);
    return pb_set_error(PB_ERR_NOMEM, "%s: out of memory", path);
  }
  memcpy(buf, s, sl);
  buf[sl] = '\n';
  free(s);
  rc = pb_write_file_atomic(path, buf, sl + 1);
  free(buf);
  return rc;
}

static void json_num_or_null(cJSON *o, const char *key, const char *v) {
  char *end = NULL;
  double d = v ? strtod(v, &end) : NAN;
  if (v && end != v && isfinite(d)) cJSON_AddNumberToObject(o, key, d);
  else cJSON_AddNullToObject(o, key);
}

int pb_pretrain_export(pb_model *m, const char *dir, int fp16, const char *vocab_path, const pb_kv *kv, int n) {
  /* the exported config is for fine-tuning: standard dropout whatever pretraining used */
  const float hd = m->cfg.hidden_dropout, ad = m->cfg.attn_dropout;
  m->cfg.hidden_dropout = m->cfg.attn_dropout = 0.1f;
  int rc = pb_model_save_hf(m, dir); /* config.json (+ an F32 model we replace below) */
  m->cfg.hidden_dropout = hd, m->cfg.attn_dropout = ad;
  if (rc) return rc;
  const char *nspv = pb_kv_get(kv, n, "opt.nsp");
  const int nsp = nspv && atoi(nspv) != 0;
  if ((rc = patch_config(dir, nsp))) return rc;
  const pb_params *p = &m->params;
  pb_hf_tensors hl; /* HF names (ALBERT's when the backbone is shared), no classifier */
  if ((rc = pb_hf_tensors_build(&hl, m, 0))) return rc;
  size_t n_params = 0;
  for (int i = 0; i < p->n; i++) {
    const pb_tensor *t = &p->t[i];
    if (t->owner == PB_OWNER_METHOD || strncmp(t->name, "classifier.", 11) == 0) continue;
    n_params += t->numel;
  }
  char path[PB_PRETRAIN_PATH_MAX + 64];
  join(path, sizeof path, dir, "model.safetensors");
  pb_kv st_meta[1] = {{"format", "pt"}};
  rc = pb_st_write(path, st_meta, 1, hl.w, hl.n, fp16 ? PB_ST_F16 : PB_ST_F32);
  pb_hf_tensors_free(&hl);
  if (rc) return rc;
  /* vocab.txt */
  char *voc = NULL;
  size_t vl = 0;
  if ((rc = pb_read_file(vocab_path, &voc, &vl))) return rc;
  join(path, sizeof path, dir, "vocab.txt");
  rc = pb_write_file_atomic(path, voc, vl);
  free(voc);
  if (rc) return rc;
  /* pretrain.json */
  cJSON *r = cJSON_CreateObject();
  if (!r) return pb_set_error(PB_ERR_NOMEM, "pretrain: out of memory");
  cJSON_AddStringToObject(r, "what", nsp ? "peftbench pretraining: masked language model (tied decoder) + next-sentence "
                                           "prediction on the pooled [CLS] (BertForPreTraining heads)"
                                         : "peftbench masked-language-model pretraining (BertForMaskedLM head, tied decoder)");
  const char *str_keys[] = {"command", "last_command", "stop_reason", "started", "saved", "corpus_tasks", "corpus_extra",
                            "corpus_hash", "precision", "precision_kernel"};
  for (size_t i = 0; i < sizeof str_keys / sizeof *str_keys; i++) {
    const char *v = pb_kv_get(kv, n, str_keys[i]);
    cJSON_AddStringToObject(r, str_keys[i], v ? v : "");
  }
  const char *num_keys[] = {"step", "tokens_seen", "train_seconds", "final_mlm_loss", "loss_window_n",
                            "val_mlm_loss", "val_step", "corpus_sentences", "corpus_sequences",
                            "corpus_train_sequences", "corpus_val_sequences", "corpus_tokens",
                            "corpus_truncated_sentences", "corpus_glue_sequences", "corpus_glue_tokens",
                            "final_nsp_loss", "val_nsp_loss", "val_nsp_acc", "threads"};
  for (size_t i = 0; i < sizeof num_keys / sizeof *num_keys; i++)
    json_num_or_null(r, num_keys[i], pb_kv_get(kv, n, num_keys[i]));
  cJSON_AddStringToObject(r, "corpus", "GLUE training splits (sentence a and b of every row; never dev/test), then the "
                                       "corpus_extra texts (harness/corpus.h: installed Debian text packages), "
                                       "packed [CLS] s1 [SEP] s2 [SEP] ... up to max_len; 1% of the GLUE sequences "
                                       "(<= 512) held out for val_mlm_loss");
  if (nsp)
    cJSON_AddStringToObject(r, "nsp", "each training row split at its middle sentence boundary into [CLS] A [SEP] B [SEP] "
                                      "(token types 0/1); B replaced by another sequence's B with probability 1/2; "
                                      "label 0 = B follows A");
  const char *wv = pb_kv_get(kv, n, "opt.wwm");
  cJSON_AddStringToObject(r, "masking", wv && atoi(wv) ? "whole-word (all WordPiece pieces of a picked word), 80/10/10"
                                                      : "per token, 80/10/10");
  cJSON_AddStringToObject(r, "final_mlm_loss_is", "mean training MLM loss of the last (up to) 100 steps");
  const char *vat = pb_kv_get(kv, n, "val_mlm_loss_at_steps"); /* --val-steps: "S':loss,..." */
  if (vat) {
    cJSON *va = cJSON_AddObjectToObject(r, "val_mlm_loss_at_steps");
    for (const char *q = vat; q && *q;) {
      char key[16];
      int Sp = atoi(q);
      const char *colon = strchr(q, ':');
      if (!colon) break;
      snprintf(key, sizeof key, "%d", Sp);
      cJSON_AddNumberToObject(va, key, strtod(colon + 1, NULL));
      q = strchr(colon, ',');
      if (q) q++;
    }
  }
  const char *rsv = pb_kv_get(kv, n, "opt.random-steps");
  if (pb_model_is_shared(m) || (rsv && atoi(rsv) != 0)) { /* how the shared backbone was made */
    const char *ini = pb_kv_get(kv, n, "opt.init-from"), *how = pb_kv_get(kv, n, "opt.share-init");
    const char *rs = pb_kv_get(kv, n, "opt.random-steps");
    cJSON *sh = cJSON_AddObjectToObject(r, "sharing");
    cJSON_AddNumberToObject(sh, "steps", m->steps);
    cJSON_AddNumberToObject(sh, "weight_sets", m->cfg.layers);
    cJSON_AddStringToObject(sh, "init", ini && *ini ? (pb_model_is_shared(m) ? (how && !strcmp(how, "first") ? "first layer of each group of --init-from" : "mean of each group's layers of --init-from") : "--init-from") : "random");
    cJSON_AddStringToObject(sh, "init_from", ini ? ini : "");
    cJSON_AddBoolToObject(sh, "random_steps", rs && atoi(rs) != 0);
    cJSON_AddStringToObject(sh, "random_steps_is", "each training step runs S' ~ U{1..S} ODE steps with step size S/S' (pb_model_set_ode_steps); validation at S");
  }
  cJSON *op = cJSON_AddObjectToObject(r, "options"); /* numbers as numbers, words and paths as strings, "" as null */
  for (int i = 0; i < n; i++)
    if (strncmp(kv[i].key, "opt.", 4) == 0) {
      const char *v = kv[i].value;
      char *end = NULL;
      const double d = v && *v ? strtod(v, &end) : NAN;
      if (v && *v && *end == '\0' && isfinite(d)) cJSON_AddNumberToObject(op, kv[i].key + 4, d);
      else if (v && *v) cJSON_AddStringToObject(op, kv[i].key + 4, v);
      else cJSON_AddNullToObject(op, kv[i].key + 4);
    }
  cJSON_AddNumberToObject(r, "parameters", (double)n_params);
  cJSON_AddStringToObject(r, "dtype", fp16 ? "F16" : "F32");
  char *s = cJSON_Print(r);
  cJSON_Delete(r);
  if (!s) return pb_set_error(PB_ERR_NOMEM, "pretrain: out of memory");
  join(path, sizeof path, dir, "pretrain.json");
  size_t sl = strlen(s);
  s[sl] = '\n'; /* overwrite the NUL; the length is passed explicitly */
  rc = pb_write_file_atomic(path, s, sl + 1);
  free(s);
  return rc;
}
