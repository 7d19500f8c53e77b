/* Op + parameter report by execution in counting-only mode (see harness/opsreport.h). */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "util/status.h"
#include "harness/opsreport.h"

#include "backbone/share.h"
#include "backbone/latent.h"

#include "backbone/checkpoint.h"
#include "harness/results.h"

/* merge (on != 0) or unmerge the method in counting-only mode: its state, not the weights */
static int merge_state(pb_model *m, const pb_method_inst *mi, int on) {
  pb_opcounter prev;
  pb_opc_count_begin(&prev);
  int rc = on ? mi->m->merge(mi->ctx, m) : mi->m->unmerge(mi->ctx, m);
  pb_opc_count_end(&prev, NULL);
  return rc;
}

int pb_model_ops_add(pb_model *m, const pb_method_inst *mi, int B, int T, int flags, int merged, pb_opcounts *out) {
  const int fold = merged && mi && mi->m && mi->m->merge && mi->m->unmerge;
  int rc = fold ? merge_state(m, mi, 1) : PB_OK;
  if (rc) return rc;
  rc = pb_model_count(m, B, T, flags, out);
  if (fold) {
    int r2 = merge_state(m, mi, 0);
    if (!rc) rc = r2;
  }
  return rc;
}

int pb_ops_report_compute(pb_model *m, const pb_method_inst *mi, int T, int train_B, int train_T,
                          pb_ops_report *out) {
  memset(out, 0, sizeof *out);
  if (T <= 0 || train_B <= 0 || train_T <= 0)
    return pb_set_error(PB_ERR_ARG, "ops report: lengths must be positive (T %d, train %d x %d)", T, train_B,
                        train_T);
  out->T = T;
  out->train_B = train_B;
  out->train_T = train_T;
  int rc = pb_model_ops_add(m, mi, 1, T, PB_COUNT_INFER, 0, &out->infer);
  if (rc) return rc;
  out->has_merge = mi && mi->m && mi->m->merge && mi->m->unmerge;
  if (out->has_merge) {
    rc = pb_model_ops_add(m, mi, 1, T, PB_COUNT_INFER, 1, &out->infer_merged);
    if (rc == PB_ERR_UNSUPPORTED) { /* this model cannot merge it (per-step deltas over a shared set) */
      out->has_merge = 0;
      memset(&out->infer_merged, 0, sizeof out->infer_merged);
      rc = PB_OK;
    }
    if (rc) return rc;
  }
  if (!out->has_merge) {
    out->infer_merged = out->infer;
  }
  /* gradient clipping (run's default --max-grad-norm 1) + AdamW */
  rc = pb_model_ops_add(m, mi, train_B, train_T, PB_COUNT_TRAIN | PB_COUNT_CLIP | PB_COUNT_ADAMW, 0, &out->train_step);
  if (rc) return rc;

  const pb_params *p = &m->params;
  out->p_backbone = pb_params_count(p, PB_OWNER_BACKBONE, 0, 0);
  out->p_method = pb_params_count(p, PB_OWNER_METHOD, 0, 0);
  out->p_head = pb_params_count(p, PB_OWNER_HEAD, 0, 0);
  out->p_trainable = pb_params_count(p, -1, 1, 0);
  out->p_stored = pb_params_count(p, -1, 0, 1);
  out->p_all = pb_params_count(p, -1, 0, 0);
  pb_params_report(p, out->params_report, sizeof out->params_report);

  snprintf(out->method_name, sizeof out->method_name, "%s", mi && mi->m ? mi->m->name : "none");
  if (mi && mi->m && mi->m->describe) {
    rc = mi->m->describe(mi->ctx, out->method_desc, sizeof out->method_desc);
    if (rc) return rc;
  }
  return PB_OK;
}

int pb_ops_model_build(pb_model *m, pb_method_inst *mi, const pb_config *cfg, const char *name,
                       const char *const *options) {
  return pb_ops_model_build_dir(m, mi, cfg, NULL, name, options);
}

/* the model (shared over `groups` sets, shaped by shape_dir, compressed by spec: each optional)
 * with the method attached; on failure nothing is left allocated */
static int build_over(pb_model *m, pb_method_inst *mi, const pb_config *cfg, const char *shape_dir, int groups,
                      const pb_latent_spec *spec, const char *name, const char *const *options) {
  memset(m, 0, sizeof *m);
  memset(mi, 0, sizeof *mi);
  int rc = pb_method_create(mi, name, options);
  if (rc) return rc;
  rc = groups > 0 ? pb_model_declare_shared(m, cfg, groups) : pb_model_declare(m, cfg);
  if (!rc && shape_dir) rc = pb_model_apply_hf_shape(m, shape_dir);
  if (!rc && spec) rc = pb_model_set_latent(m, spec);
  if (!rc) rc = mi->m->attach(mi->ctx, m);
  if (!rc) pb_latent_apply_trainable(m); /* a compressed model's map trains or not by its variant */
  if (rc) {
    pb_method_destroy(mi);
    pb_model_free(m);
  }
  return rc;
}

int pb_ops_model_build_dir(pb_model *m, pb_method_inst *mi, const pb_config *cfg, const char *shape_dir,
                           const char *name, const char *const *options) {
  return build_over(m, mi, cfg, shape_dir, 0, NULL, name, options);
}

int pb_ops_report_for(const pb_config *cfg, const char *name, const char *const *options, int T, int train_B,
                      int train_T, pb_ops_report *out) {
  return pb_ops_report_for_dir(cfg, NULL, name, options, T, train_B, train_T, out);
}

/* build_over, ODE steps set (0: all), then the report */
static int report_over(const pb_config *cfg, const char *shape_dir, int groups, int ode_steps, const pb_latent_spec *spec,
                       const char *name, const char *const *options, int T, int train_B, int train_T, pb_ops_report *out) {
  pb_model m;
  pb_method_inst mi;
  int rc = build_over(&m, &mi, cfg, shape_dir, groups, spec, name, options);
  if (rc) return rc;
  if (ode_steps > 0) rc = pb_model_set_ode_steps(&m, ode_steps);
  if (!rc) rc = pb_ops_report_compute(&m, &mi, T, train_B, train_T, out);
  pb_method_destroy(&mi);
  pb_model_free(&m);
  return rc;
}

int pb_ops_report_for_dir(const pb_config *cfg, const char *shape_dir, const char *name, const char *const *options,
                          int T, int train_B, int train_T, pb_ops_report *out) {
  return report_over(cfg, shape_dir, 0, 0, NULL, name, options, T, train_B, train_T, out);
}

int pb_ops_report_for_share(const pb_config *cfg, const char *shape_dir, int groups, int ode_steps, const char *name,
                            const char *const *options, int T, int train_B, int train_T, pb_ops_report *out) {
  return report_over(cfg, shape_dir, groups, ode_steps, NULL, name, options, T, train_B, train_T, out);
}

int pb_ops_report_for_latent(const pb_config *cfg, const pb_latent_spec *spec, const char *name,
                             const char *const *options, int T, int train_B, int train_T, pb_ops_report *out) {
  return report_over(cfg, NULL, 0, 0, spec, name, options, T, train_B, train_T, out);
}

void pb_ops_report_record_add(cJSON *jo, const pb_ops_report *r, int T, int train_B, int train_T) {
  cJSON_AddItemToObject(jo, "inference_T128", pb_ops_json(&r->infer, 1));
  cJSON_AddItemToObject(jo, "per_token_T128", pb_ops_json(&r->infer, T));
  if (r->has_merge) cJSON_AddItemToObject(jo, "method_merged_T128", pb_ops_json(&r->infer_merged, 1));
  else cJSON_AddNullToObject(jo, "method_merged_T128");
  cJSON_AddItemToObject(jo, "train_step", pb_ops_json(&r->train_step, 1));
  cJSON *shape = cJSON_AddArrayToObject(jo, "train_step_shape");
  cJSON_AddItemToArray(shape, cJSON_CreateNumber(train_B));
  cJSON_AddItemToArray(shape, cJSON_CreateNumber(train_T));
}

cJSON *pb_ops_report_json(const pb_ops_report *r) {
  cJSON *o = cJSON_CreateObject();
  if (!o) return NULL;
  cJSON_AddStringToObject(o, "method", r->method_name);
  cJSON_AddStringToObject(o, "method_desc", r->method_desc);
  cJSON_AddNumberToObject(o, "T", r->T);
  cJSON_AddItemToObject(o, "inference", pb_ops_json(&r->infer, 1.0));
  cJSON_AddItemToObject(o, "per_token", pb_ops_json(&r->infer, (double)r->T));
  if (r->has_merge)
    cJSON_AddItemToObject(o, "method_merged", pb_ops_json(&r->infer_merged, 1.0));
  else
    cJSON_AddNullToObject(o, "method_merged");
  cJSON_AddItemToObject(o, "train_step", pb_ops_json(&r->train_step, 1.0));
  int shape[2] = {r->train_B, r->train_T};
  cJSON_AddItemToObject(o, "train_step_shape", cJSON_CreateIntArray(shape, 2));
  cJSON *p = cJSON_AddObjectToObject(o, "params");
  cJSON_AddNumberToObject(p, "backbone", (double)r->p_backbone);
  cJSON_AddNumberToObject(p, "method", (double)r->p_method);
  cJSON_AddNumberToObject(p, "head", (double)r->p_head);
  cJSON_AddNumberToObject(p, "trainable", (double)r->p_trainable);
  cJSON_AddNumberToObject(p, "stored", (double)r->p_stored);
  cJSON_AddNumberToObject(p, "all", (double)r->p_all);
  cJSON_AddNumberToObject(p, "trainable_pct", r->p_all ? 100.0 * (double)r->p_trainable / (double)r->p_all : 0.0);
  cJSON_AddStringToObject(p, "report", r->params_report);
  return o;
}

void pb_fmt_num(char *buf, size_t n, double v, int decimals) {
  if (!(v >= 0) || v > 1.8e19) { /* negative, NaN or beyond uint64: plain printf */
    snprintf(buf, n, "%.*f", decimals, v);
    return;
  }
  double scale = pow(10.0, decimals);
  double r = floor(v * scale + 0.5) / scale; /* round once so that 9.96 -> "10.0" */
  uint64_t ip = (uint64_t)floor(r);
  char ib[48];
  pb_fmt_count(ib, sizeof ib, ip);
  if (decimals <= 0) {
    snprintf(buf, n, "%s", ib);
    return;
  }
  uint64_t frac = (uint64_t)floor((r - (double)ip) * scale + 0.5);
  if ((double)frac >= scale) frac = (uint64_t)scale - 1;
  snprintf(buf, n, "%s.%0*llu", ib, decimals, (unsigned long long)frac);
}
