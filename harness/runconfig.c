/* A run's configuration object, its id, unique output names and the head's origin
 * (runconfig.h). */
#include "harness/runconfig.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "backbone/checkpoint.h"
#include "util/digest.h"
#include "util/fileio.h"
#include "util/status.h"
#include "harness/predictions.h"

cJSON *pb_run_config_json(const pb_run_config *c) {
  cJSON *o = cJSON_CreateObject();
  if (!o) return NULL;
  cJSON_AddStringToObject(o, "method", c->method ? c->method : "");
  cJSON_AddStringToObject(o, "method_desc", c->method_desc ? c->method_desc : "");
  cJSON_AddStringToObject(o, "backbone", c->fingerprint ? c->fingerprint : "");
  cJSON_AddStringToObject(o, "vocab_sha256", c->vocab_sha256 ? c->vocab_sha256 : "");
  cJSON_AddNumberToObject(o, "lower_case", c->lower_case);
  cJSON_AddStringToObject(o, "data_sha256", c->data_sha256 ? c->data_sha256 : "");
  cJSON_AddNumberToObject(o, "data_seed", (double)c->data_seed);
  cJSON_AddNumberToObject(o, "max_train", c->max_train);
  cJSON_AddNumberToObject(o, "max_eval", c->max_eval);
  cJSON_AddNumberToObject(o, "max_len", c->max_len);
  cJSON_AddNumberToObject(o, "epochs", c->epochs);
  cJSON_AddNumberToObject(o, "steps", c->steps);
  cJSON_AddNumberToObject(o, "batch", c->batch);
  cJSON_AddNumberToObject(o, "lr", c->lr);
  cJSON_AddNumberToObject(o, "warmup_ratio", c->warmup_ratio);
  cJSON_AddNumberToObject(o, "weight_decay", c->weight_decay);
  cJSON_AddNumberToObject(o, "hidden_dropout", c->hidden_dropout);
  cJSON_AddNumberToObject(o, "attn_dropout", c->attn_dropout);
  cJSON_AddNumberToObject(o, "merge_eval", c->merge_eval);
  cJSON_AddNumberToObject(o, "new_head", c->new_head);
  cJSON_AddNumberToObject(o, "max_grad_norm", c->max_grad_norm);
  if (c->precision && strcmp(c->precision, "fp32")) cJSON_AddStringToObject(o, "precision", c->precision);
  if (c->distill) cJSON_AddItemToObject(o, "distill", c->distill);
  return o;
}

int pb_config_id(const cJSON *config, char out[9]) {
  out[0] = 0;
  char *txt = cJSON_PrintUnformatted(config);
  if (!txt) return pb_set_error(PB_ERR_NOMEM, "config id: out of memory");
  char hex[65];
  int rc = pb_sha256_hex(txt, strlen(txt), hex);
  free(txt);
  if (rc) return rc;
  memcpy(out, hex, 8);
  out[8] = 0;
  return PB_OK;
}

static int exists(const char *p) { return access(p, F_OK) == 0; }

int pb_unique_stem(const char *dir, const char *base, const char *const *splits, int n_splits, char *out,
                   size_t n) {
  for (int k = 1; k < 10000; k++) {
    char p[1400];
    if (k == 1) snprintf(out, n, "%s/%s", dir, base);
    else snprintf(out, n, "%s/%s-%d", dir, base, k);
    snprintf(p, sizeof p, "%s.safetensors", out);
    int taken = exists(p);
    for (int i = 0; i < n_splits && !taken; i++) {
      pb_predictions_path(p, sizeof p, out, splits[i]);
      taken = exists(p);
    }
    if (!taken) return PB_OK;
  }
  return pb_set_error(PB_ERR_IO, "%s/%s: 10000 files of this name exist already", dir, base);
}

int pb_task_test_splits(const pb_task *task, const char **out, int cap) {
  int n = 0;
  for (int i = 0; i < task->n_splits && n < cap; i++) {
    const char *sp = task->splits[i].split;
    if (task->splits[i].col_label == PB_COL_NONE && strcmp(sp, "train") != 0) out[n++] = sp;
  }
  return n;
}

int pb_head_label_map(pb_model *m, const char *model_dir, const pb_task *task, char *note, size_t n) {
  const int C = task->num_labels;
  snprintf(note, n, "task label order assumed (config.json has no id2label)");
  if (task->is_regression) {
    snprintf(note, n, "regression head");
    return PB_OK;
  }
  char path[1200];
  snprintf(path, sizeof path, "%s/config.json", model_dir);
  cJSON *root;
  int rc = pb_read_json_object(path, &root);
  if (rc) return rc;
  const cJSON *map = cJSON_GetObjectItemCaseSensitive(root, "id2label");
  int perm[8], generic = 1, n_map = cJSON_GetArraySize(map);
  if (!cJSON_IsObject(map) || n_map == 0) {
    cJSON_Delete(root);
    return PB_OK;
  }
  if (n_map != C) {
    cJSON_Delete(root);
    return pb_set_error(PB_ERR_FORMAT, "%s: id2label has %d labels, task %s has %d", path, n_map, task->name, C);
  }
  for (int k = 0; k < C; k++) perm[k] = -1;
  for (int row = 0; row < C; row++) {
    char key[16], generic_name[24];
    snprintf(key, sizeof key, "%d", row);
    snprintf(generic_name, sizeof generic_name, "LABEL_%d", row);
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(map, key);
    if (!cJSON_IsString(v)) {
      cJSON_Delete(root);
      return pb_set_error(PB_ERR_FORMAT, "%s: id2label lacks a string for id %d", path, row);
    }
    if (strcmp(v->valuestring, generic_name) != 0) generic = 0;
    for (int k = 0; k < C; k++)
      if (strcasecmp(v->valuestring, task->labels[k]) == 0) perm[k] = row; /* our class k is the file's row */
  }
  int identity = 1, complete = 1;
  for (int k = 0; k < C; k++) {
    if (perm[k] < 0) complete = 0;
    else if (perm[k] != k) identity = 0;
  }
  if (generic) {
    snprintf(note, n, "task label order assumed (id2label is generic: LABEL_0..LABEL_%d)", C - 1);
  } else if (!complete) {
    cJSON_Delete(root);
    return pb_set_error(PB_ERR_FORMAT, "%s: id2label names do not match task %s's labels (%s%s%s%s%s): the label order "
                        "cannot be known",
                        path, task->name, task->labels[0], C > 1 ? ", " : "", C > 1 ? task->labels[1] : "",
                        C > 2 ? ", " : "", C > 2 ? task->labels[2] : "");
  } else if (identity) {
    snprintf(note, n, "id2label matches the task's label order");
  } else {
    float *w = pb_w(m, m->cls_w), *b = pb_w(m, m->cls_b);
    const int d = m->cfg.hidden;
    float *tw = malloc(sizeof(float) * (size_t)C * d), tb[8];
    if (!tw) {
      cJSON_Delete(root);
      return pb_set_error(PB_ERR_NOMEM, "%s: out of memory", path);
    }
    memcpy(tw, w, sizeof(float) * (size_t)C * d);
    memcpy(tb, b, sizeof(float) * (size_t)C);
    size_t o = (size_t)snprintf(note, n, "classifier rows reordered from id2label:");
    for (int k = 0; k < C; k++) {
      memcpy(w + (size_t)k * d, tw + (size_t)perm[k] * d, sizeof(float) * (size_t)d);
      b[k] = tb[perm[k]];
      if (o < n) o += (size_t)snprintf(note + o, n - o, " %s=row %d", task->labels[k], perm[k]);
    }
    free(tw);
    m->params.version++;
  }
  cJSON_Delete(root);
  return PB_OK;
}

int pb_resolve_head(pb_model *m, const char *model_dir, int pretrained, int new_head, unsigned long long seed,
                    char *source, size_t ns, char *detail, size_t nd) {
  const pb_tensor *w = &m->params.t[m->cls_w];
  snprintf(source, ns, "initialised");
  if (!pretrained) {
    snprintf(detail, nd, "initialised (seed %llu): the backbone is random-initialised", seed);
    return PB_OK;
  }
  switch (m->hf_head) {
    case PB_HF_HEAD_MISMATCH:
      if (!new_head)
        return pb_set_error(PB_ERR_SHAPE, "%s: give --new-head to train a fresh head instead", m->hf_head_note);
      snprintf(detail, nd, "initialised (seed %llu, --new-head): %s", seed, m->hf_head_note);
      return PB_OK;
    case PB_HF_HEAD_LOADED:
      if (!new_head) {
        snprintf(source, ns, "checkpoint");
        snprintf(detail, nd, "loaded from %.900s/model.safetensors (classifier [%d, %d])", model_dir, w->shape[0],
                 w->shape[1]);
        return PB_OK;
      }
      /* the same initialisation as a run without a checkpoint head: every tensor from the
       * seed, then the backbone again from the checkpoint, its head left alone */
      pb_model_init_random(m, seed);
      {
        int rc = pb_model_load_hf_ex(m, model_dir, 0);
        if (rc) return rc;
      }
      snprintf(detail, nd, "initialised (seed %llu, --new-head): the checkpoint's classifier was not loaded", seed);
      return PB_OK;
    default:
      snprintf(detail, nd, "initialised (seed %llu): %.900s has no classifier", seed, model_dir);
      return PB_OK;
  }
}
