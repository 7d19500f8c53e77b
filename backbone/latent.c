/* Latent-space compression: the encoder half of an autoencoder as the width hook of a model
 * (see latent.h). */
#include "backbone/latent.h"

#include <cjson/cJSON.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "backbone/ops.h"
#include "counters/opcount.h"
#include "util/status.h"

typedef struct {
  pb_latent_spec s;
  pb_model *m;                       /* borrowed: the model this map belongs to */
  int wi[PB_LATENT_MAX_MAPS], bi[PB_LATENT_MAX_MAPS]; /* parameter-table indices */
  int act[PB_LATENT_MAX_MAPS];
  float *z[PB_LATENT_MAX_MAPS];      /* [N, w[i+1]] outputs of layers 0..n-2 (activation block) */
  float *scr[2];                     /* [N, w[1]] backward scratch */
} latent_ctx;

static const char *const form_names[] = {"linear", "nonlinear", NULL};
static const char *const variant_names[] = {"ae", "aes", "ll", "pca", NULL};

int pb_latent_check(const pb_latent_spec *s, const pb_config *c) {
  const int L = c->layers, d = c->hidden;
  if (s->cut < 1 || s->cut > L - 1)
    return pb_set_error(PB_ERR_ARG, "latent: cut layer k = %d outside 1..%d (the backbone has %d layers; k layers "
                        "stay at width %d, at least one runs compressed)", s->cut, L - 1, L, d);
  if (s->n < 1 || s->n > PB_LATENT_MAX_MAPS)
    return pb_set_error(PB_ERR_ARG, "latent: %d maps in the encoder half (1..%d)", s->n, PB_LATENT_MAX_MAPS);
  if (s->form != PB_LATENT_LINEAR && s->form != PB_LATENT_NONLINEAR)
    return pb_set_error(PB_ERR_ARG, "latent: unknown form %d (linear or nonlinear)", s->form);
  if (s->widths[0] != d)
    return pb_set_error(PB_ERR_ARG, "latent: the widths start at %d but the backbone's hidden size is %d",
                        s->widths[0], d);
  const int dp = s->widths[s->n];
  if (dp >= d) return pb_set_error(PB_ERR_ARG, "latent: d' = %d must be smaller than the hidden size d = %d", dp, d);
  for (int i = 1; i <= s->n; i++)
    if (s->widths[i] < 1 || s->widths[i] >= s->widths[i - 1])
      return pb_set_error(PB_ERR_ARG, "latent: widths must decrease strictly from d to d' (width %d after %d)",
                          s->widths[i], s->widths[i - 1]);
  if (s->heads < 1 || dp % s->heads)
    return pb_set_error(PB_ERR_ARG, "latent: d' = %d is not divisible by %d attention heads", dp, s->heads);
  if (s->ffn < 1) return pb_set_error(PB_ERR_ARG, "latent: FFN width %d of the compressed layers must be >= 1", s->ffn);
  return PB_OK;
}

size_t pb_latent_map_params(const pb_latent_spec *s) {
  size_t n = 0;
  for (int i = 0; i < s->n; i++) n += (size_t)s->widths[i] * s->widths[i + 1] + s->widths[i + 1];
  return n;
}

/* ------------------------------------------------------------------ the dense stack */

void pb_mlp_fwd(const pb_mlp *s, const float *x, float *const *z, int N) {
  const float *in = x;
  for (int i = 0; i < s->n; i++) {
    const size_t n = (size_t)N * s->w[i + 1];
    pb_matmul_fwd(z[i], in, s->W[i], s->b[i], N, s->w[i], s->w[i + 1]);
    if (s->act[i] == PB_ACT_RELU) pb_relu_fwd(z[i], z[i], n); /* elementwise: in place is safe */
    if (s->act[i] == PB_ACT_TANH) pb_tanh_fwd(z[i], z[i], n);
    in = z[i];
  }
}

void pb_mlp_bwd(const pb_mlp *s, const float *x, float *const *z, const float *dy, float *dx,
                float *const *scratch, int N) {
  const int counting = pb_opc_counting();
  float *cur = scratch[0]; /* gradient wrt layer i's output */
  if (!counting) memcpy(cur, dy, (size_t)N * s->w[s->n] * sizeof(float));
  for (int i = s->n - 1; i >= 0; i--) {
    const size_t n = (size_t)N * s->w[i + 1];
    float *g = cur; /* gradient wrt layer i's pre-activation */
    if (s->act[i] != PB_ACT_IDENTITY) {
      g = cur == scratch[0] ? scratch[1] : scratch[0];
      if (!counting) memset(g, 0, n * sizeof(float));
      if (s->act[i] == PB_ACT_RELU) pb_relu_bwd(g, z[i], cur, n); /* z > 0 exactly where its input was */
      else pb_tanh_bwd(g, z[i], cur, n);
    }
    float *din = dx;
    if (i > 0) {
      din = g == scratch[0] ? scratch[1] : scratch[0];
      if (!counting) memset(din, 0, (size_t)N * s->w[i] * sizeof(float));
    }
    pb_matmul_bwd(din, s->dW[i], s->db[i], g, i > 0 ? z[i - 1] : x, s->W[i], N, s->w[i], s->w[i + 1]);
    cur = din;
  }
}

/* ------------------------------------------------------------------ the width hook */

static pb_mlp ctx_mlp(latent_ctx *c, float **W, float **b, float **dW, float **db) {
  for (int i = 0; i < c->s.n; i++) {
    const pb_tensor *tw = &c->m->params.t[c->wi[i]], *tb = &c->m->params.t[c->bi[i]];
    W[i] = tw->data, b[i] = tb->data;
    dW[i] = tw->trainable ? tw->grad : NULL, db[i] = tb->trainable ? tb->grad : NULL;
  }
  return (pb_mlp){.n = c->s.n, .w = c->s.widths, .act = c->act, .W = W, .b = b, .dW = dW, .db = db};
}

static int lt_reserve(void *vc, int B, int T, float *acts, size_t *nfloats) {
  latent_ctx *c = vc;
  const size_t N = (size_t)B * T;
  size_t off = 0;
  for (int i = 0; i + 1 < c->s.n; i++) {
    if (acts) c->z[i] = acts + off;
    off += N * c->s.widths[i + 1];
  }
  for (int k = 0; k < 2; k++) {
    if (acts) c->scr[k] = acts + off;
    off += N * c->s.widths[1];
  }
  *nfloats = off;
  return PB_OK;
}

static int lt_fwd(void *vc, int l, const float *x, float *y, int N, int din, int dout) {
  latent_ctx *c = vc;
  if (l != c->s.cut || din != c->s.widths[0] || dout != c->s.widths[c->s.n])
    return pb_set_error(PB_ERR_STATE, "latent: a width change %d -> %d before step %d, the map is %d -> %d before %d",
                        din, dout, l, c->s.widths[0], c->s.widths[c->s.n], c->s.cut);
  float *W[PB_LATENT_MAX_MAPS], *b[PB_LATENT_MAX_MAPS], *dW[PB_LATENT_MAX_MAPS], *db[PB_LATENT_MAX_MAPS];
  float *z[PB_LATENT_MAX_MAPS];
  const pb_mlp s = ctx_mlp(c, W, b, dW, db);
  for (int i = 0; i + 1 < c->s.n; i++) z[i] = c->z[i];
  z[c->s.n - 1] = y;
  const int prev = pb_opc_set_owner(PB_OPO_BACKBONE);
  pb_mlp_fwd(&s, x, z, N);
  pb_opc_set_owner(prev);
  return PB_OK;
}

static int lt_bwd(void *vc, int l, const float *x, const float *dy, float *dx, int N, int din, int dout) {
  latent_ctx *c = vc;
  float *W[PB_LATENT_MAX_MAPS], *b[PB_LATENT_MAX_MAPS], *dW[PB_LATENT_MAX_MAPS], *db[PB_LATENT_MAX_MAPS];
  float *z[PB_LATENT_MAX_MAPS];
  const pb_mlp s = ctx_mlp(c, W, b, dW, db);
  for (int i = 0; i + 1 < c->s.n; i++) z[i] = c->z[i];
  z[c->s.n - 1] = c->m->acts.layer[l].in; /* the step's input the core kept: the map's output */
  const int prev = pb_opc_set_owner(PB_OPO_BACKBONE);
  pb_mlp_bwd(&s, x, z, dy, dx, c->scr, N);
  pb_opc_set_owner(prev);
  return PB_OK;
}

static const pb_hook_ops latent_hooks = {
    .version = PB_HOOKS_VERSION, .reserve = lt_reserve, .width_fwd = lt_fwd, .width_bwd = lt_bwd};

int pb_model_set_latent(pb_model *m, const pb_latent_spec *s) {
  int rc = pb_latent_check(s, &m->cfg);
  if (rc) return rc;
  if (m->latent) return pb_set_error(PB_ERR_ARG, "latent: the model is compressed already");
  const int dp = s->widths[s->n];
  if ((rc = pb_model_set_width(m, s->cut, dp, s->heads, s->ffn))) return rc;
  latent_ctx *c = calloc(1, sizeof *c);
  if (!c) return pb_set_error(PB_ERR_NOMEM, "latent: out of memory");
  c->s = *s;
  c->m = m;
  for (int i = 0; i < s->n; i++) {
    char name[PB_NAME_MAX];
    const int wsh[2] = {s->widths[i + 1], s->widths[i]};
    snprintf(name, sizeof name, "bert.latent.encoder.%d.weight", i);
    c->wi[i] = pb_params_add(&m->params, name, PB_OWNER_BACKBONE, 2, wsh, PB_INIT_NORMAL,
                             (float)(1.0 / sqrt((double)s->widths[i])));
    snprintf(name, sizeof name, "bert.latent.encoder.%d.bias", i);
    c->bi[i] = pb_params_add(&m->params, name, PB_OWNER_BACKBONE, 1, wsh, PB_INIT_ZERO, 0);
    if (c->wi[i] < 0 || c->bi[i] < 0) {
      rc = c->wi[i] < 0 ? c->wi[i] : c->bi[i];
      free(c);
      return rc;
    }
    c->act[i] = pb_latent_act(s->form, i, s->n);
  }
  if ((rc = pb_model_add_hooks(m, &latent_hooks, c))) {
    free(c);
    return rc;
  }
  m->latent = c;
  pb_latent_apply_trainable(m);
  return PB_OK;
}

const pb_latent_spec *pb_model_latent(const pb_model *m) { return m->latent ? &((latent_ctx *)m->latent)->s : NULL; }

int pb_latent_weight(const pb_model *m, int i) {
  const latent_ctx *c = m->latent;
  return c && i >= 0 && i < c->s.n ? c->wi[i] : -1;
}
int pb_latent_bias(const pb_model *m, int i) {
  const latent_ctx *c = m->latent;
  return c && i >= 0 && i < c->s.n ? c->bi[i] : -1;
}

void pb_latent_apply_trainable(pb_model *m) {
  latent_ctx *c = m->latent;
  if (!c) return;
  for (int i = 0; i < c->s.n; i++) {
    pb_tensor *t[2] = {&m->params.t[c->wi[i]], &m->params.t[c->bi[i]]};
    for (int k = 0; k < 2; k++) t[k]->trainable = t[k]->stored = c->s.trainable;
  }
}

/* ------------------------------------------------------------------ config.json */

int pb_latent_to_json(const pb_latent_spec *s, cJSON *o) {
  cJSON *w = cJSON_AddArrayToObject(o, "widths");
  if (!w) return pb_set_error(PB_ERR_NOMEM, "latent: out of memory");
  cJSON_AddNumberToObject(o, "cut", s->cut);
  for (int i = 0; i <= s->n; i++) cJSON_AddItemToArray(w, cJSON_CreateNumber(s->widths[i]));
  cJSON_AddStringToObject(o, "form", form_names[s->form]);
  cJSON_AddNumberToObject(o, "heads", s->heads);
  cJSON_AddNumberToObject(o, "ffn", s->ffn);
  cJSON_AddBoolToObject(o, "trainable", s->trainable);
  cJSON_AddStringToObject(o, "variant", s->variant);
  return PB_OK;
}

static int get_int(const cJSON *o, const char *path, const char *key, int *out) {
  const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
  if (!cJSON_IsNumber(v) || v->valuedouble != (double)(int)v->valuedouble)
    return pb_set_error(PB_ERR_FORMAT, "%s: peftbench_latent.%s must be an integer", path, key);
  *out = (int)v->valuedouble;
  return PB_OK;
}

static int get_name(const cJSON *o, const char *path, const char *key, const char *const *names, int *out) {
  const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
  for (int i = 0; cJSON_IsString(v) && names[i]; i++)
    if (strcmp(v->valuestring, names[i]) == 0) {
      *out = i;
      return PB_OK;
    }
  return pb_set_error(PB_ERR_FORMAT, "%s: peftbench_latent.%s must be one of %s, %s%s", path, key, names[0], names[1],
                      names[2] ? ", ..." : "");
}

int pb_latent_from_json(const cJSON *o, const char *path, pb_latent_spec *s) {
  memset(s, 0, sizeof *s);
  if (!cJSON_IsObject(o)) return pb_set_error(PB_ERR_FORMAT, "%s: peftbench_latent must be an object", path);
  const cJSON *w = cJSON_GetObjectItemCaseSensitive(o, "widths"), *tr = cJSON_GetObjectItemCaseSensitive(o, "trainable");
  const int nw = cJSON_IsArray(w) ? cJSON_GetArraySize(w) : 0;
  if (nw < 2 || nw > PB_LATENT_MAX_MAPS + 1)
    return pb_set_error(PB_ERR_FORMAT, "%s: peftbench_latent.widths must be an array of 2..%d integers", path,
                        PB_LATENT_MAX_MAPS + 1);
  s->n = nw - 1;
  for (int i = 0; i < nw; i++) {
    const cJSON *v = cJSON_GetArrayItem(w, i);
    if (!cJSON_IsNumber(v) || v->valuedouble != (double)(int)v->valuedouble || v->valuedouble < 1)
      return pb_set_error(PB_ERR_FORMAT, "%s: peftbench_latent.widths[%d] must be a positive integer", path, i);
    s->widths[i] = (int)v->valuedouble;
  }
  int variant = 0, rc;
  if ((rc = get_int(o, path, "cut", &s->cut)) || (rc = get_int(o, path, "heads", &s->heads)) ||
      (rc = get_int(o, path, "ffn", &s->ffn)) || (rc = get_name(o, path, "form", form_names, &s->form)) ||
      (rc = get_name(o, path, "variant", variant_names, &variant)))
    return rc;
  if (!cJSON_IsBool(tr)) return pb_set_error(PB_ERR_FORMAT, "%s: peftbench_latent.trainable must be true or false", path);
  s->trainable = cJSON_IsTrue(tr);
  snprintf(s->variant, sizeof s->variant, "%s", variant_names[variant]);
  return PB_OK;
}
