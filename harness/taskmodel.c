/* Rebuilding a task file's model (taskmodel.h). */
#include "harness/taskmodel.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "util/status.h"
#include "harness/run.h"

/* method options from "k=v,k=v" into a NULL-terminated list over buf */
static int split_opts(char *buf, const char **out, int cap) {
  int n = 0;
  for (char *t = strtok(buf, ","); t; t = strtok(NULL, ",")) {
    if (n == cap) return -1; /* more options than a method can be given */
    out[n++] = t;
  }
  out[n] = NULL;
  return n;
}

int pb_task_meta_backbone(const char *path, const pb_kv *meta, int n_meta, pb_backbone_opts *bb, char shape[64]) {
  const char *src = pb_kv_get(meta, n_meta, "backbone"), *bconf = pb_kv_get(meta, n_meta, "backbone_config");
  if (!src) return pb_set_error(PB_ERR_FORMAT, "%s: metadata lacks backbone", path);
  /* a random-initialised backbone is rebuilt from its seed and shape: its fingerprint proves it */
  if (!bb->model_dir && strcmp(src, "random-init") == 0 && bconf) {
    cJSON *j = cJSON_Parse(bconf);
    const cJSON *L = cJSON_GetObjectItem(j, "layers"), *H = cJSON_GetObjectItem(j, "hidden");
    const cJSON *A = cJSON_GetObjectItem(j, "heads"), *F = cJSON_GetObjectItem(j, "ffn");
    if (!cJSON_IsNumber(L) || !cJSON_IsNumber(H) || !cJSON_IsNumber(A) || !cJSON_IsNumber(F)) {
      cJSON_Delete(j);
      return pb_set_error(PB_ERR_FORMAT, "%s: metadata backbone_config lacks layers/hidden/heads/ffn", path);
    }
    snprintf(shape, 64, "%d,%d,%d,%d", L->valueint, H->valueint, A->valueint, F->valueint);
    cJSON_Delete(j);
    bb->shape = shape;
  } else if (!bb->model_dir && strcmp(src, pb_default_model_dir()) != 0) {
    bb->model_dir = src;
  }
  return PB_OK;
}

int pb_task_model_build(const char *path, pb_backbone_opts *bb, const char *want_task, int B, int T,
                        pb_task_model *tm) {
  int rc = pb_task_read_meta(path, &tm->meta, &tm->nmeta);
  if (rc) return rc;
  const char *mname = pb_kv_get(tm->meta, tm->nmeta, "method"), *mcfg = pb_kv_get(tm->meta, tm->nmeta, "method_config");
  const char *tname = pb_kv_get(tm->meta, tm->nmeta, "task"), *src = pb_kv_get(tm->meta, tm->nmeta, "backbone");
  const char *fp = pb_kv_get(tm->meta, tm->nmeta, "backbone_fingerprint"), *seed = pb_kv_get(tm->meta, tm->nmeta, "seed");
  const char *mlen = pb_kv_get(tm->meta, tm->nmeta, "max_len");
  tm->task = tname ? pb_task_find(tname) : NULL;
  if (!mname || !mcfg || !tm->task || !src || !fp || !seed || !mlen)
    return pb_set_error(PB_ERR_FORMAT, "%s: metadata lacks method/method_config/task/backbone/seed/max_len", path);
  if (want_task && pb_task_find(want_task) != tm->task)
    return pb_set_error(PB_ERR_ARG, "%s was trained on %s, not %s", path, tm->task->name, want_task);
  const char *mopts[PB_MAX_METHOD_OPTS + 1];
  if (snprintf(tm->cfgbuf, sizeof tm->cfgbuf, "%s", mcfg) >= (int)sizeof tm->cfgbuf)
    return pb_set_error(PB_ERR_FORMAT, "%s: metadata method_config longer than %zu bytes", path, sizeof tm->cfgbuf - 1);
  if (split_opts(tm->cfgbuf, mopts, PB_MAX_METHOD_OPTS) < 0)
    return pb_set_error(PB_ERR_FORMAT, "%s: metadata method_config has more than %d options", path, PB_MAX_METHOD_OPTS);
  if ((rc = pb_task_meta_backbone(path, tm->meta, tm->nmeta, bb, tm->shape))) return rc;
  bb->num_labels = tm->task->num_labels;
  tm->max_len = atoi(mlen);
  if (T <= 0) T = tm->max_len;
  if ((rc = pb_method_create(&tm->mi, mname, mopts))) return rc;
  if ((rc = pb_build_model(bb, &tm->mi, B, T, strtoull(seed, NULL, 10), &tm->m, &tm->info))) return rc;
  if (strcmp(tm->info.fingerprint, fp) != 0)
    return pb_set_error(PB_ERR_SHAPE, "%s was trained on backbone %s (fingerprint %s) but %s has fingerprint %s", path,
                        src, fp, tm->info.source, tm->info.fingerprint);
  if ((rc = pb_task_load(&tm->m, path, NULL, NULL))) return rc;
  /* the tokenizer of training: its casing, and the same vocabulary (older files: unchecked) */
  const char *lc = pb_kv_get(tm->meta, tm->nmeta, "lower_case"), *vsha = pb_kv_get(tm->meta, tm->nmeta, "vocab_sha256");
  if (lc && bb->lower_case == PB_LOWER_CASE_AUTO) bb->lower_case = strcmp(lc, "1") == 0 ? PB_LOWER_CASE_YES : PB_LOWER_CASE_NO;
  if ((rc = pb_load_vocab(bb, &tm->m.cfg, &tm->tk, &tm->info))) return rc;
  if (vsha && *vsha && strcmp(vsha, tm->info.vocab_sha256) != 0)
    return pb_set_error(PB_ERR_FORMAT, "%s was trained with a vocabulary of SHA-256 %.12s..., but %s has %.12s...", path,
                        vsha, tm->info.vocab_path, tm->info.vocab_sha256);
  return PB_OK;
}

void pb_task_model_free(pb_task_model *tm) {
  pb_tok_free(tm->tk);
  tm->tk = NULL;
  if (tm->m.params.t) pb_model_free(&tm->m);
  if (tm->mi.m) pb_method_destroy(&tm->mi);
  pb_kv_free(tm->meta, tm->nmeta);
  tm->meta = NULL;
  tm->nmeta = 0;
}
