/* Parameter-shared backbones: the plan, ALBERT's names and folder layout, and a shared model
 * made from an unshared one (share.h). */
#include "backbone/share.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "util/status.h"

int pb_share_plan(int steps, int groups, int *plan) {
  if (steps < 1 || groups < 1)
    return pb_set_error(PB_ERR_ARG, "sharing: %d steps over %d weight sets (both must be >= 1)", steps, groups);
  if (steps % groups)
    return pb_set_error(PB_ERR_ARG, "sharing: G=%d weight sets do not divide the %d layers", groups, steps);
  for (int s = 0; s < steps; s++) plan[s] = (int)((long long)s * groups / steps);
  return PB_OK;
}

int pb_model_declare_shared(pb_model *m, const pb_config *cfg, int groups) {
  const int L = cfg->layers;
  if (groups < 1 || L < 1 || L % groups) {
    memset(m, 0, sizeof *m);
    return pb_set_error(PB_ERR_ARG, "sharing: G=%d weight sets do not divide the %d layers", groups, L);
  }
  if (groups == L) return pb_model_declare(m, cfg);
  int *plan = malloc((size_t)L * sizeof *plan);
  if (!plan) {
    memset(m, 0, sizeof *m);
    return pb_set_error(PB_ERR_NOMEM, "sharing: out of memory");
  }
  pb_config c = *cfg;
  c.layers = groups;
  int rc = pb_share_plan(L, groups, plan);
  if (!rc) rc = pb_model_declare(m, &c);
  if (!rc) rc = pb_model_set_plan(m, L, plan);
  free(plan);
  if (rc) pb_model_free(m);
  return rc;
}

int pb_model_share_groups(const pb_model *m) {
  const int S = m->steps, G = m->cfg.layers;
  if (G < 1 || S % G) return 0;
  for (int s = 0; s < S; s++)
    if (m->plan[s] != (int)((long long)s * G / S)) return 0;
  return G;
}

int pb_model_is_shared(const pb_model *m) {
  if (m->steps != m->cfg.layers) return 1;
  for (int s = 0; s < m->steps; s++)
    if (m->plan[s] != s) return 1;
  return 0;
}

/* ---------------------------------------------------------------- ALBERT names */

/* the part after "bert.encoder.layer.N." -> ALBERT's part after "albert_layers.0." */
static const char *const LAYER_MAP[][2] = {
    {"attention.self.query.", "attention.query."},
    {"attention.self.key.", "attention.key."},
    {"attention.self.value.", "attention.value."},
    {"attention.output.dense.", "attention.dense."},
    {"attention.output.LayerNorm.", "attention.LayerNorm."},
    {"intermediate.dense.", "ffn."},
    {"output.dense.", "ffn_output."},
    {"output.LayerNorm.", "full_layer_layer_norm."},
};
/* whole-prefix renames outside the layers */
static const char *const PREFIX_MAP[][2] = {
    {"bert.embeddings.", "albert.embeddings."},
    {"bert.pooler.dense.", "albert.pooler."},
    {"cls.predictions.transform.", "predictions."},
    {"cls.predictions.", "predictions."},
};

int pb_albert_name(const char *name, char *out, size_t n) {
  int g, off = 0;
  if (sscanf(name, "bert.encoder.layer.%d.%n", &g, &off) == 1 && off > 0) {
    const char *rest = name + off;
    for (size_t i = 0; i < sizeof LAYER_MAP / sizeof *LAYER_MAP; i++) {
      const size_t k = strlen(LAYER_MAP[i][0]);
      if (strncmp(rest, LAYER_MAP[i][0], k) == 0) {
        snprintf(out, n, "albert.encoder.albert_layer_groups.%d.albert_layers.0.%s%s", g, LAYER_MAP[i][1], rest + k);
        return 1;
      }
    }
    return 0;
  }
  for (size_t i = 0; i < sizeof PREFIX_MAP / sizeof *PREFIX_MAP; i++) {
    const size_t k = strlen(PREFIX_MAP[i][0]);
    if (strncmp(name, PREFIX_MAP[i][0], k) == 0) {
      snprintf(out, n, "%s%s", PREFIX_MAP[i][1], name + k);
      return 1;
    }
  }
  return 0;
}

int pb_model_apply_albert(pb_model *m, int steps) {
  const int G = m->cfg.layers;
  int *plan = malloc((size_t)(steps > 0 ? steps : 1) * sizeof *plan);
  if (!plan) return pb_set_error(PB_ERR_NOMEM, "sharing: out of memory");
  int rc = pb_share_plan(steps, G, plan);
  if (!rc && (steps != G)) rc = pb_model_set_plan(m, steps, plan);
  free(plan);
  char alias[PB_NAME_MAX];
  for (int i = 0; !rc && i < m->params.n; i++)
    if (m->params.t[i].owner != PB_OWNER_METHOD && pb_albert_name(m->params.t[i].name, alias, sizeof alias) &&
        pb_params_find(&m->params, alias) < 0)
      rc = pb_params_add_alias(&m->params, i, alias);
  return rc;
}

int pb_albert_check_mapping(const pb_st_file *f, int d) {
  const int kw = pb_st_find(f, PB_ALBERT_MAP_W), kb = pb_st_find(f, PB_ALBERT_MAP_B);
  if (kw < 0 && kb < 0) return PB_OK;
  if (kw < 0 || kb < 0 || f->t[kw].ndim != 2 || f->t[kw].shape[0] != d || f->t[kw].shape[1] != d ||
      f->t[kb].numel != (size_t)d)
    return pb_set_error(PB_ERR_UNSUPPORTED, "%s: embedding_hidden_mapping_in is not [%d, %d] + [%d] (factorised ALBERT "
                        "embeddings, embedding_size != hidden_size, are not supported)", f->path, d, d, d);
  float *w = malloc(((size_t)d * d + (size_t)d) * sizeof *w);
  if (!w) return pb_set_error(PB_ERR_NOMEM, "%s: out of memory", f->path);
  int rc = pb_st_read_f32(f, kw, w, (size_t)d * d);
  if (!rc) rc = pb_st_read_f32(f, kb, w + (size_t)d * d, (size_t)d);
  for (size_t i = 0; !rc && i < (size_t)d * d + (size_t)d; i++) {
    const float want = i < (size_t)d * d && i / (size_t)d == i % (size_t)d ? 1.0f : 0.0f;
    if (w[i] != want)
      rc = pb_set_error(PB_ERR_UNSUPPORTED, "%s: %s is not the identity with a zero bias (value %g at flat index %zu): "
                        "only ALBERT folders whose embeddings feed the encoder unchanged are supported", f->path,
                        i < (size_t)d * d ? PB_ALBERT_MAP_W : PB_ALBERT_MAP_B, (double)w[i],
                        i < (size_t)d * d ? i : i - (size_t)d * d);
  }
  free(w);
  return rc;
}

/* ---------------------------------------------------------------- HF folder tensors */

int pb_hf_tensors_build(pb_hf_tensors *l, const pb_model *m, int with_classifier) {
  memset(l, 0, sizeof *l);
  const pb_params *p = &m->params;
  const int shared = pb_model_is_shared(m), d = m->cfg.hidden;
  if (shared && !pb_model_share_groups(m))
    return pb_set_error(PB_ERR_UNSUPPORTED, "saving: a layer plan that is not groups of consecutive steps has no "
                        "ALBERT layout");
  if (shared && (!pb_model_width_uniform(m) || m->word_rank))
    return pb_set_error(PB_ERR_UNSUPPORTED, "saving: a shared model with slender shapes or factorised embeddings has "
                        "no ALBERT layout");
  l->w = calloc((size_t)p->n + 2, sizeof *l->w);
  l->names = calloc((size_t)p->n + 2, sizeof *l->names);
  if (shared) l->map = calloc((size_t)d * d + (size_t)d, sizeof *l->map);
  if (!l->w || !l->names || (shared && !l->map)) {
    pb_hf_tensors_free(l);
    return pb_set_error(PB_ERR_NOMEM, "saving: out of memory");
  }
  for (int i = 0; i < p->n; i++) {
    const pb_tensor *t = &p->t[i];
    if (t->owner == PB_OWNER_METHOD || (!with_classifier && strncmp(t->name, "classifier.", 11) == 0)) continue;
    if (!shared || !pb_albert_name(t->name, l->names[l->n], PB_NAME_MAX))
      snprintf(l->names[l->n], PB_NAME_MAX, "%s", t->name);
    l->w[l->n] = (pb_st_wtensor){.name = l->names[l->n], .ndim = t->ndim, .shape = t->shape, .data = t->data};
    l->n++;
  }
  if (shared) {
    for (int i = 0; i < d; i++) l->map[(size_t)i * d + i] = 1.0f;
    l->map_shape[0] = l->map_shape[1] = l->map_shape[2] = d;
    l->w[l->n++] = (pb_st_wtensor){.name = PB_ALBERT_MAP_W, .ndim = 2, .shape = l->map_shape, .data = l->map};
    l->w[l->n++] = (pb_st_wtensor){.name = PB_ALBERT_MAP_B, .ndim = 1, .shape = l->map_shape + 2,
                                   .data = l->map + (size_t)d * d};
  }
  return PB_OK;
}

void pb_hf_tensors_free(pb_hf_tensors *l) {
  free(l->w);
  free(l->names);
  free(l->map);
  memset(l, 0, sizeof *l);
}

/* ---------------------------------------------------------------- shared from unshared */

int pb_share_init_from(pb_model *dst, const pb_model *src, int how) {
  const pb_config *a = &dst->cfg, *b = &src->cfg;
  const int S = dst->steps;
  if (pb_model_is_shared(src) || src->steps != S || a->hidden != b->hidden || a->heads != b->heads ||
      a->ffn != b->ffn || a->vocab_size != b->vocab_size || a->max_pos != b->max_pos ||
      !pb_model_share_groups(dst))
    return pb_set_error(PB_ERR_SHAPE, "sharing: initialising %d steps over %d sets (d=%d F=%d) needs an unshared source "
                        "of %d layers of the same shape (it has %d steps over %d sets, d=%d F=%d)", S, a->layers,
                        a->hidden, a->ffn, S, src->steps, b->layers, b->hidden, b->ffn);
  const pb_params *sp = &src->params;
  pb_params *dp = &dst->params;
  char name[PB_NAME_MAX + 32];
  for (int i = 0; i < dp->n; i++) {
    pb_tensor *t = &dp->t[i];
    if (t->owner != PB_OWNER_BACKBONE || !t->data) continue;
    int g, off = 0;
    if (sscanf(t->name, "bert.encoder.layer.%d.%n", &g, &off) != 1 || off == 0) { /* embeddings, pooler */
      const int k = pb_params_find(sp, t->name);
      if (k < 0 || sp->t[k].numel != t->numel || !sp->t[k].data)
        return pb_set_error(PB_ERR_SHAPE, "sharing: the source has no %s of %zu values", t->name, t->numel);
      memcpy(t->data, sp->t[k].data, t->numel * sizeof(float));
      continue;
    }
    double *acc = calloc(t->numel, sizeof *acc);
    if (!acc) return pb_set_error(PB_ERR_NOMEM, "sharing: out of memory");
    int used = 0;
    for (int s = 0; s < S; s++) {
      if (dst->plan[s] != g || (how == PB_SHARE_INIT_FIRST && used)) continue;
      snprintf(name, sizeof name, "bert.encoder.layer.%d.%s", s, t->name + off);
      const int k = pb_params_find(sp, name);
      if (k < 0 || sp->t[k].numel != t->numel || !sp->t[k].data) {
        free(acc);
        return pb_set_error(PB_ERR_SHAPE, "sharing: the source has no %s of %zu values", name, t->numel);
      }
      for (size_t j = 0; j < t->numel; j++) acc[j] += sp->t[k].data[j];
      used++;
    }
    for (size_t j = 0; j < t->numel; j++) t->data[j] = (float)(acc[j] / used);
    free(acc);
  }
  dp->version++;
  return PB_OK;
}
