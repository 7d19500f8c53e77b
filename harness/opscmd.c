/* `peftbench ops` and the op-count baseline check (see harness/opscmd.h). */
#include <errno.h>
#include <limits.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "backbone/checkpoint.h"
#include "util/fileio.h"
#include "util/status.h"
#include "harness/opscmd.h"

#include "harness/coil.h"
#include "harness/opsreport.h"

#define MAX_OPTS 32
#define EXACT_LIMIT 9007199254740992.0 /* 2^53: integers above it are not exact in a JSON double */

/* ------------------------------------------------------------ reference configurations */

/* Every method declares its reference configurations (pb_method.refconfigs); the baseline
 * takes them in registry order, method by method, in each method's declared order. */
#define MAX_REFS 256
static pb_ops_refconfig refs[MAX_REFS];
static int n_refs = -1;

static void collect_refs(void) {
  if (n_refs >= 0) return;
  int n = 0;
  for (int i = 0; i < pb_method_count(); i++) {
    const pb_method *m = pb_method_at(i);
    if (m->version < 2 || !m->refconfigs) continue;
    for (int j = 0; j < m->n_refconfigs && n < MAX_REFS; j++)
      refs[n++] = (pb_ops_refconfig){m->refconfigs[j].label, m->name, m->refconfigs[j].options};
  }
  n_refs = n;
}

int pb_ops_ref_count(void) {
  collect_refs();
  return n_refs;
}
const pb_ops_refconfig *pb_ops_ref_at(int i) { return i >= 0 && i < pb_ops_ref_count() ? &refs[i] : NULL; }

/* ------------------------------------------------------------ baseline document */

/* sorts the members of every object by key, recursively (stable, byte order) */
static int key_cmp(const void *a, const void *b) {
  const cJSON *x = *(const cJSON *const *)a, *y = *(const cJSON *const *)b;
  return strcmp(x->string ? x->string : "", y->string ? y->string : "");
}
static int sort_json(cJSON *o) {
  if (!o) return PB_OK;
  int n = 0;
  for (cJSON *c = o->child; c; c = c->next) {
    n++;
    if (sort_json(c)) return PB_ERR_NOMEM;
  }
  if (!cJSON_IsObject(o) || n < 2) return PB_OK;
  cJSON **v = malloc((size_t)n * sizeof *v);
  if (!v) return pb_set_error(PB_ERR_NOMEM, "ops baseline: out of memory");
  int i = 0;
  for (cJSON *c = o->child; c; c = c->next) v[i++] = c;
  qsort(v, (size_t)n, sizeof *v, key_cmp);
  for (i = 0; i < n; i++) {
    v[i]->next = i + 1 < n ? v[i + 1] : NULL;
    v[i]->prev = i > 0 ? v[i - 1] : v[n - 1]; /* cJSON: the head's prev is the tail */
  }
  o->child = v[0];
  free(v);
  return PB_OK;
}

static int add_exact(cJSON *o, const char *key, uint64_t v) {
  if ((double)v >= EXACT_LIMIT)
    return pb_set_error(PB_ERR_UNSUPPORTED, "ops baseline: %s = %llu is >= 2^53, not exact in JSON", key,
                        (unsigned long long)v);
  return cJSON_AddNumberToObject(o, key, (double)v) ? PB_OK : pb_set_error(PB_ERR_NOMEM, "ops baseline: out of memory");
}

/* {"backbone": {"matmul_macs", "elementwise_flops", "transcendental"}, "head", "method", "optimizer"} */
static int add_counts(cJSON *parent, const char *key, const pb_opcounts *c) {
  cJSON *o = cJSON_AddObjectToObject(parent, key);
  if (!o) return pb_set_error(PB_ERR_NOMEM, "ops baseline: out of memory");
  for (int w = 0; w < PB_OPO_COUNT; w++) {
    cJSON *ow = cJSON_AddObjectToObject(o, pb_opowner_name(w));
    if (!ow) return pb_set_error(PB_ERR_NOMEM, "ops baseline: out of memory");
    for (int k = 0; k < PB_OPK_COUNT; k++) {
      int rc = add_exact(ow, pb_opkind_name(k), c->c[w][k]);
      if (rc) return rc;
    }
  }
  return PB_OK;
}

static int add_config(cJSON *parent, const pb_config *c) {
  cJSON *o = cJSON_AddObjectToObject(parent, "config");
  if (!o) return pb_set_error(PB_ERR_NOMEM, "ops baseline: out of memory");
  cJSON_AddNumberToObject(o, "vocab_size", c->vocab_size);
  cJSON_AddNumberToObject(o, "hidden", c->hidden);
  cJSON_AddNumberToObject(o, "layers", c->layers);
  cJSON_AddNumberToObject(o, "heads", c->heads);
  cJSON_AddNumberToObject(o, "ffn", c->ffn);
  cJSON_AddNumberToObject(o, "max_pos", c->max_pos);
  cJSON_AddNumberToObject(o, "num_labels", c->num_labels);
  /* floats rounded to 6 decimals so that 0.1f prints as 0.1 */
  cJSON_AddNumberToObject(o, "hidden_dropout", round((double)c->hidden_dropout * 1e6) / 1e6);
  cJSON_AddNumberToObject(o, "attn_dropout", round((double)c->attn_dropout * 1e6) / 1e6);
  return PB_OK;
}

static void join_opts(char *buf, size_t n, const char *const *opts) {
  size_t o = 0;
  buf[0] = 0;
  for (int i = 0; opts && opts[i] && o < n; i++) o += (size_t)snprintf(buf + o, n - o, "%s%s", i ? " " : "", opts[i]);
}

/* one method entry of the baseline from its report: method, options, desc, the counts, params */
static int add_report(cJSON *methods, const pb_ops_refconfig *ref, const pb_ops_report *r) {
  int rc;
  cJSON *e = cJSON_AddObjectToObject(methods, ref->label);
  if (!e) return pb_set_error(PB_ERR_NOMEM, "ops baseline: out of memory");
  char opts[256];
  join_opts(opts, sizeof opts, ref->options);
  cJSON_AddStringToObject(e, "method", ref->method);
  cJSON_AddStringToObject(e, "options", opts);
  cJSON_AddStringToObject(e, "desc", r->method_desc);
  if ((rc = add_counts(e, "inference_T128", &r->infer))) return rc;
  if (r->has_merge && (rc = add_counts(e, "inference_merged_T128", &r->infer_merged))) return rc;
  if ((rc = add_counts(e, "train_step", &r->train_step))) return rc;
  cJSON *p = cJSON_AddObjectToObject(e, "params");
  if (!p) return pb_set_error(PB_ERR_NOMEM, "ops baseline: out of memory");
  if ((rc = add_exact(p, "backbone", r->p_backbone)) || (rc = add_exact(p, "method", r->p_method)) ||
      (rc = add_exact(p, "head", r->p_head)) || (rc = add_exact(p, "trainable", r->p_trainable)) ||
      (rc = add_exact(p, "stored", r->p_stored)) || (rc = add_exact(p, "all", r->p_all)))
    return rc;
  return PB_OK;
}

/* groups > 0: cfg's layers over that many shared weight sets; ode > 0: counted at S' = ode steps
 * (a configuration that refuses them, PB_ERR_UNSUPPORTED, e.g. early exit with S' < S, gets no
 * entry) */
static int add_entry_share(cJSON *methods, const pb_ops_refconfig *ref, const pb_config *cfg, int groups, int ode) {
  pb_ops_report r;
  int rc = groups || ode ? pb_ops_report_for_share(cfg, NULL, groups, ode, ref->method, ref->options, PB_OPS_BASELINE_T,
                                                   PB_OPS_BASELINE_TRAIN_B, PB_OPS_BASELINE_TRAIN_T, &r)
                         : pb_ops_report_for(cfg, ref->method, ref->options, PB_OPS_BASELINE_T, PB_OPS_BASELINE_TRAIN_B,
                                             PB_OPS_BASELINE_TRAIN_T, &r);
  if (rc == PB_ERR_UNSUPPORTED && (groups || ode)) return PB_OK;
  return rc ? rc : add_report(methods, ref, &r);
}

static int add_entry(cJSON *methods, const pb_ops_refconfig *ref, const pb_config *cfg) {
  return add_entry_share(methods, ref, cfg, 0, 0);
}

/* over a compressed model (latent.h); a method the compressed model refuses (exits with
 * init=copy: its exit heads would read another width) gets {"refused": the message}, so a
 * change in what is refused shows in the check too */
static int add_entry_latent(cJSON *methods, const pb_ops_refconfig *ref, const pb_config *cfg, const pb_latent_spec *s) {
  pb_ops_report r;
  int rc = pb_ops_report_for_latent(cfg, s, ref->method, ref->options, PB_OPS_BASELINE_T, PB_OPS_BASELINE_TRAIN_B,
                                    PB_OPS_BASELINE_TRAIN_T, &r);
  if (rc == PB_ERR_UNSUPPORTED || rc == PB_ERR_ARG || rc == PB_ERR_SHAPE) {
    cJSON *e = cJSON_AddObjectToObject(methods, ref->label);
    if (!e || !cJSON_AddStringToObject(e, "refused", pb_last_error()))
      return pb_set_error(PB_ERR_NOMEM, "ops baseline: out of memory");
    return PB_OK;
  }
  return rc ? rc : add_report(methods, ref, &r);
}

/* COIL over a reference configuration (harness/coil.h): encoding one query at T = 32 and one
 * document at T = 128 (backbone + method + token/[CLS] projections, token dim 32, cls dim d) */
static int add_coil_entry(cJSON *coil, const pb_ops_refconfig *ref, const pb_config *cfg) {
  pb_model m;
  pb_method_inst mi;
  int rc = pb_ops_model_build(&m, &mi, cfg, ref->method, ref->options);
  if (rc) return rc;
  pb_coil co;
  pb_opcounts q = {{{0}}}, d = {{{0}}};
  rc = pb_coil_declare(&co, &m, 32, cfg->hidden, 0, 101, 102, 0);
  if (!rc) rc = pb_coil_count_encode(&co, &m, 1, 32, &q);
  if (!rc) rc = pb_coil_count_encode(&co, &m, 1, 128, &d);
  cJSON *e = rc ? NULL : cJSON_AddObjectToObject(coil, ref->label);
  if (!rc && !e) rc = pb_set_error(PB_ERR_NOMEM, "ops baseline: out of memory");
  if (!rc) {
    char opts[256];
    join_opts(opts, sizeof opts, ref->options);
    cJSON_AddStringToObject(e, "method", ref->method);
    cJSON_AddStringToObject(e, "options", opts);
    cJSON_AddNumberToObject(e, "tok_dim", 32);
    cJSON_AddNumberToObject(e, "cls_dim", cfg->hidden);
    rc = add_counts(e, "query_encode_T32", &q);
    if (!rc) rc = add_counts(e, "doc_encode_T128", &d);
    if (!rc) rc = add_exact(e, "trainable", pb_params_count(&m.params, -1, 1, 0));
  }
  pb_method_destroy(&mi);
  pb_model_free(&m);
  return rc;
}

/* parent[name] = {"config": bert-base's (base) or the default's}; cfg gets that config */
static cJSON *shape_entry(cJSON *parent, const char *name, int base, pb_config *cfg, int *rc) {
  if (base) pb_config_bert_base(cfg, PB_OPS_BASELINE_LABELS);
  else pb_config_default(cfg, PB_OPS_BASELINE_LABELS);
  cJSON *sh = cJSON_AddObjectToObject(parent, name);
  if (!sh) *rc = pb_set_error(PB_ERR_NOMEM, "ops baseline: out of memory");
  if (!*rc) *rc = add_config(sh, cfg);
  return *rc ? NULL : sh;
}

cJSON *pb_ops_baseline_build(void) {
  cJSON *doc = cJSON_CreateObject();
  if (!doc) {
    pb_set_error(PB_ERR_NOMEM, "ops baseline: out of memory");
    return NULL;
  }
  cJSON_AddStringToObject(doc, "schema", PB_OPS_BASELINE_SCHEMA);
  cJSON_AddStringToObject(doc, "regenerate", "peftbench ops --check results/ops-baseline.json --update");
  cJSON_AddStringToObject(doc, "note",
                          "Exact analytic op counts (== instrumented, tests/test_opcount.c) and parameter counts of "
                          "the reference method configurations. inference_T128: one example (B=1) at T=128, no "
                          "dropout; train_step: forward + loss + backward + gradient clipping + AdamW at B=32 x T=128 with the "
                          "config's dropout. Kinds: matmul_macs, elementwise_flops, transcendental; "
                          "FLOPs = 2*MACs + elementwise + transcendental. CI runs `peftbench ops --check "
                          "results/ops-baseline.json`.");
  cJSON_AddNumberToObject(doc, "T", PB_OPS_BASELINE_T);
  int shape[2] = {PB_OPS_BASELINE_TRAIN_B, PB_OPS_BASELINE_TRAIN_T};
  cJSON_AddItemToObject(doc, "train_step_shape", cJSON_CreateIntArray(shape, 2));
  cJSON *shapes = cJSON_AddObjectToObject(doc, "shapes");
  int rc = shapes ? PB_OK : pb_set_error(PB_ERR_NOMEM, "ops baseline: out of memory");
  for (int s = 0; s < 2 && !rc; s++) {
    pb_config cfg;
    cJSON *sh = shape_entry(shapes, s == 0 ? "bert-base" : "default", s == 0, &cfg, &rc);
    cJSON *methods = rc ? NULL : cJSON_AddObjectToObject(sh, "methods");
    if (!rc && !methods) rc = pb_set_error(PB_ERR_NOMEM, "ops baseline: out of memory");
    for (int i = 0; i < pb_ops_ref_count() && !rc; i++) rc = add_entry(methods, pb_ops_ref_at(i), &cfg);
    /* retrieval: COIL encoders over the same configurations (entries added beside "methods") */
    cJSON *coil = rc ? NULL : cJSON_AddObjectToObject(sh, "coil");
    if (!rc && !coil) rc = pb_set_error(PB_ERR_NOMEM, "ops baseline: out of memory");
    for (int i = 0; i < pb_ops_ref_count() && !rc; i++) rc = add_coil_entry(coil, pb_ops_ref_at(i), &cfg);
  }
  /* parameter-shared backbones and ODE-step inference (share.h): the same reference
   * configurations over shared weight sets, at all steps and at fewer ODE steps */
  static const struct { const char *name; int base, groups, ode; } SH[] = {
      {"default G=1", 0, 1, 0}, {"default G=2", 0, 2, 0}, {"default G=1 S'=2", 0, 1, 2},
      {"default S'=2 unshared", 0, 0, 2}, {"bert-base G=1", 1, 1, 0}, {"bert-base G=1 S'=6", 1, 1, 6}};
  cJSON *shared = rc ? NULL : cJSON_AddObjectToObject(doc, "sharing");
  if (!rc && !shared) rc = pb_set_error(PB_ERR_NOMEM, "ops baseline: out of memory");
  for (size_t k = 0; k < sizeof SH / sizeof *SH && !rc; k++) {
    pb_config cfg;
    cJSON *sh = shape_entry(shared, SH[k].name, SH[k].base, &cfg, &rc);
    if (!rc) cJSON_AddNumberToObject(sh, "weight_sets", SH[k].groups ? SH[k].groups : cfg.layers);
    if (!rc) cJSON_AddNumberToObject(sh, "ode_steps", SH[k].ode ? SH[k].ode : cfg.layers);
    cJSON *methods = rc ? NULL : cJSON_AddObjectToObject(sh, "methods");
    if (!rc && !methods) rc = pb_set_error(PB_ERR_NOMEM, "ops baseline: out of memory");
    for (int i = 0; i < pb_ops_ref_count() && !rc; i++)
      rc = add_entry_share(methods, pb_ops_ref_at(i), &cfg, SH[k].groups, SH[k].ode);
  }
  /* compressed models (latent.h): k layers at d, the encoder half of a map, the rest at d'
   * (heads as the backbone, FFN scaled by d'/d as `compress` defaults); LL trains its linear map,
   * AE's nonlinear map is frozen; the widths of the bert-base entry are the paper's */
  static const struct { const char *name; int base, cut, n, widths[4], form, trainable; const char *variant; } LT[] = {
      {"default k=2 d'=128 ll", 0, 2, 1, {256, 128}, PB_LATENT_LINEAR, 1, "ll"},
      {"default k=2 d'=128 ae 256,192,128", 0, 2, 2, {256, 192, 128}, PB_LATENT_NONLINEAR, 0, "ae"},
      {"bert-base k=6 d'=384 ae 768,576,480,384", 1, 6, 3, {768, 576, 480, 384}, PB_LATENT_NONLINEAR, 0, "ae"}};
  cJSON *latent = rc ? NULL : cJSON_AddObjectToObject(doc, "latent");
  if (!rc && !latent) rc = pb_set_error(PB_ERR_NOMEM, "ops baseline: out of memory");
  for (size_t k = 0; k < sizeof LT / sizeof *LT && !rc; k++) {
    pb_config cfg;
    cJSON *sh = shape_entry(latent, LT[k].name, LT[k].base, &cfg, &rc);
    pb_latent_spec s;
    memset(&s, 0, sizeof s);
    s.cut = LT[k].cut, s.n = LT[k].n, s.form = LT[k].form, s.trainable = LT[k].trainable;
    memcpy(s.widths, LT[k].widths, sizeof LT[k].widths);
    s.heads = cfg.heads, s.ffn = cfg.ffn * s.widths[s.n] / cfg.hidden;
    snprintf(s.variant, sizeof s.variant, "%s", LT[k].variant);
    if (!rc) {
      cJSON_AddNumberToObject(sh, "cut", s.cut);
      cJSON_AddItemToObject(sh, "widths", cJSON_CreateIntArray(s.widths, s.n + 1));
      cJSON_AddNumberToObject(sh, "heads_above", s.heads);
      cJSON_AddNumberToObject(sh, "ffn_above", s.ffn);
      cJSON_AddStringToObject(sh, "variant", s.variant);
    }
    cJSON *methods = rc ? NULL : cJSON_AddObjectToObject(sh, "methods");
    if (!rc && !methods) rc = pb_set_error(PB_ERR_NOMEM, "ops baseline: out of memory");
    for (int i = 0; i < pb_ops_ref_count() && !rc; i++) rc = add_entry_latent(methods, pb_ops_ref_at(i), &cfg, &s);
  }
  if (!rc) rc = sort_json(doc);
  if (rc) {
    cJSON_Delete(doc);
    return NULL;
  }
  return doc;
}

/* ------------------------------------------------------------ diff */

static int skip_key(const char *k) {
  return k && (strcmp(k, "desc") == 0 || strcmp(k, "regenerate") == 0 || strcmp(k, "note") == 0);
}

static void fmt_value(char *buf, size_t n, const cJSON *v) {
  if (!v) {
    snprintf(buf, n, "(absent)");
  } else if (cJSON_IsNumber(v)) {
    double d = v->valuedouble;
    if (d >= 0 && d < EXACT_LIMIT && d == (double)(uint64_t)d) pb_fmt_count(buf, n, (uint64_t)d);
    else snprintf(buf, n, "%.9g", d);
  } else if (cJSON_IsString(v)) {
    snprintf(buf, n, "\"%s\"", v->valuestring);
  } else {
    char *s = cJSON_PrintUnformatted(v);
    snprintf(buf, n, "%.60s", s ? s : "?");
    free(s);
  }
}

/* path "shapes.bert-base.methods.<label>.train_step.method.matmul_macs" is shown as
 * "bert-base / <label> / train_step.method.matmul_macs" */
static void show_path(char *buf, size_t n, const char *path) {
  const char *p = path;
  if (strncmp(p, "shapes.", 7) == 0) {
    p += 7;
    const char *dot = strchr(p, '.');
    if (dot && strncmp(dot, ".methods.", 9) == 0) {
      int shape_len = (int)(dot - p);
      const char *label = dot + 9;
      /* the label may contain dots? ours do not; split at the first '.' after it */
      const char *rest = strchr(label, '.');
      if (rest) {
        snprintf(buf, n, "%.*s / %.*s / %s", shape_len, p, (int)(rest - label), label, rest + 1);
        return;
      }
    }
  }
  snprintf(buf, n, "%s", path);
}

static void report(FILE *out, const char *path, const cJSON *a, const cJSON *b) {
  char where[512], va[64], vb[64];
  show_path(where, sizeof where, path);
  fmt_value(va, sizeof va, a);
  fmt_value(vb, sizeof vb, b);
  if (a && b && cJSON_IsNumber(a) && cJSON_IsNumber(b)) {
    double x = a->valuedouble, y = b->valuedouble, delta = y - x;
    char dv[64];
    if (x == (double)(int64_t)x && y == (double)(int64_t)y && fabs(x) < EXACT_LIMIT && fabs(y) < EXACT_LIMIT) {
      int64_t di = (int64_t)y - (int64_t)x; /* exact integer delta */
      pb_fmt_count(dv, sizeof dv, (uint64_t)(di < 0 ? -di : di));
    } else {
      snprintf(dv, sizeof dv, "%.6g", fabs(delta));
    }
    if (x != 0)
      fprintf(out, "  %s: %s -> %s (%c%s, %+.3g%%)\n", where, va, vb, delta < 0 ? '-' : '+', dv, 100.0 * delta / x);
    else
      fprintf(out, "  %s: %s -> %s (%c%s)\n", where, va, vb, delta < 0 ? '-' : '+', dv);
  } else {
    fprintf(out, "  %s: %s -> %s\n", where, va, vb);
  }
}

static int diff_rec(const cJSON *a, const cJSON *b, const char *path, FILE *out) {
  char sub[1024];
  if (a && b && cJSON_IsObject(a) && cJSON_IsObject(b)) {
    int n = 0;
    for (const cJSON *c = a->child; c; c = c->next) {
      if (skip_key(c->string)) continue;
      snprintf(sub, sizeof sub, "%s%s%s", path, *path ? "." : "", c->string);
      n += diff_rec(c, cJSON_GetObjectItemCaseSensitive(b, c->string), sub, out);
    }
    for (const cJSON *c = b->child; c; c = c->next) {
      if (skip_key(c->string) || cJSON_GetObjectItemCaseSensitive(a, c->string)) continue;
      snprintf(sub, sizeof sub, "%s%s%s", path, *path ? "." : "", c->string);
      n += diff_rec(NULL, c, sub, out);
    }
    return n;
  }
  if (a && b && cJSON_IsArray(a) && cJSON_IsArray(b) && cJSON_GetArraySize(a) == cJSON_GetArraySize(b)) {
    int n = 0, i = 0;
    for (const cJSON *x = a->child, *y = b->child; x && y; x = x->next, y = y->next, i++) {
      snprintf(sub, sizeof sub, "%s[%d]", path, i);
      n += diff_rec(x, y, sub, out);
    }
    return n;
  }
  if (!a || !b) { /* a whole subtree added or removed: one line per leaf */
    const cJSON *x = a ? a : b;
    if (cJSON_IsObject(x)) {
      int n = 0;
      for (const cJSON *c = x->child; c; c = c->next) {
        if (skip_key(c->string)) continue;
        snprintf(sub, sizeof sub, "%s.%s", path, c->string);
        n += diff_rec(a ? c : NULL, a ? NULL : c, sub, out);
      }
      return n;
    }
    report(out, path, a, b);
    return 1;
  }
  if (cJSON_Compare(a, b, 1)) return 0;
  report(out, path, a, b);
  return 1;
}

int pb_ops_baseline_diff(const cJSON *old, const cJSON *cur, FILE *out) { return diff_rec(old, cur, "", out); }

/* ------------------------------------------------------------ --check / --update */

/* loads and validates a baseline file; returns NULL after printing one error line */
static cJSON *load_baseline(const char *path) {
  char *data = NULL;
  size_t len = 0;
  int rc = pb_read_file(path, &data, &len);
  if (rc) {
    fprintf(stderr, "peftbench ops: cannot read the ops baseline (%s)\n", pb_last_error());
    return NULL;
  }
  cJSON *doc = cJSON_ParseWithLength(data, len);
  if (!doc) {
    const char *at = cJSON_GetErrorPtr();
    int line = 1;
    for (const char *p = data; at && p < at && *p; p++) line += *p == '\n';
    fprintf(stderr, "peftbench ops: baseline %s is not valid JSON (near line %d)\n", path, line);
    free(data);
    return NULL;
  }
  free(data);
  const cJSON *schema = cJSON_GetObjectItemCaseSensitive(doc, "schema");
  const cJSON *shapes = cJSON_GetObjectItemCaseSensitive(doc, "shapes");
  if (!cJSON_IsString(schema) || strcmp(schema->valuestring, PB_OPS_BASELINE_SCHEMA) != 0 ||
      !cJSON_IsObject(shapes)) {
    fprintf(stderr, "peftbench ops: baseline %s is not a %s file (needs \"schema\" and a \"shapes\" object)\n", path,
            PB_OPS_BASELINE_SCHEMA);
    cJSON_Delete(doc);
    return NULL;
  }
  return doc;
}

static int cmd_check(const char *path, int update) {
  cJSON *cur = pb_ops_baseline_build();
  if (!cur) {
    fprintf(stderr, "peftbench ops: %s\n", pb_last_error());
    return 2;
  }
  if (update) {
    char *text = cJSON_Print(cur);
    int rc = text ? PB_OK : PB_ERR_NOMEM;
    if (!rc) {
      size_t n = strlen(text);
      char *withnl = malloc(n + 2);
      if (!withnl) rc = PB_ERR_NOMEM;
      else {
        memcpy(withnl, text, n);
        withnl[n] = '\n';
        withnl[n + 1] = 0;
        cJSON *old = NULL;
        FILE *probe = fopen(path, "rb");
        if (probe) {
          fclose(probe);
          char *d = NULL;
          size_t l = 0;
          if (!pb_read_file(path, &d, &l)) old = cJSON_ParseWithLength(d, l);
          free(d);
        }
        if (old) {
          int nd = pb_ops_baseline_diff(old, cur, stdout);
          printf("%d change%s against the previous %s\n", nd, nd == 1 ? "" : "s", path);
          cJSON_Delete(old);
        }
        rc = pb_write_file_atomic(path, withnl, n + 1);
        free(withnl);
      }
    }
    free(text);
    cJSON_Delete(cur);
    if (rc) {
      fprintf(stderr, "peftbench ops: cannot write baseline %s: %s\n", path,
              rc == PB_ERR_NOMEM ? "out of memory" : pb_last_error());
      return 2;
    }
    printf("wrote %s (%d method configurations x 2 shapes)\n", path, pb_ops_ref_count());
    return 0;
  }
  cJSON *old = load_baseline(path);
  if (!old) {
    cJSON_Delete(cur);
    return 2;
  }
  int nd = pb_ops_baseline_diff(old, cur, stdout);
  cJSON_Delete(old);
  cJSON_Delete(cur);
  if (nd) {
    printf("ops baseline %s: %d difference%s (old -> new). If the change is intended, regenerate with:\n"
           "  peftbench ops --check %s --update\n",
           path, nd, nd == 1 ? "" : "s", path);
    return 1;
  }
  printf("ops baseline %s: identical (%d method configurations x 2 shapes)\n", path, pb_ops_ref_count());
  return 0;
}

/* ------------------------------------------------------------ readable table */

static void print_header(const char *title) {
  printf("%s\n  %-16s %22s %22s %22s %24s\n", title, "", "matmul MACs", "elementwise FLOPs", "transcendental",
         "FLOPs (2*MAC+ew+trans)");
}

static void print_row(const char *name, uint64_t mac, uint64_t ew, uint64_t tr, double scale, int decimals) {
  char a[48], b[48], c[48], f[48];
  pb_fmt_num(a, sizeof a, (double)mac / scale, decimals);
  pb_fmt_num(b, sizeof b, (double)ew / scale, decimals);
  pb_fmt_num(c, sizeof c, (double)tr / scale, decimals);
  pb_fmt_num(f, sizeof f, (double)(2 * mac + ew + tr) / scale, decimals);
  printf("  %-16s %22s %22s %22s %24s\n", name, a, b, c, f);
}

static void print_counts(const pb_opcounts *c, int with_optim, double scale, int decimals) {
  static const char *const names[PB_OPO_COUNT] = {"backbone", "head", "method (added)", "optimizer"};
  uint64_t t[PB_OPK_COUNT] = {0};
  for (int w = 0; w < PB_OPO_COUNT; w++) {
    for (int k = 0; k < PB_OPK_COUNT; k++) t[k] += c->c[w][k];
    if (w == PB_OPO_OPTIM && !with_optim) continue;
    print_row(names[w], c->c[w][PB_OPK_MAC], c->c[w][PB_OPK_FLOP], c->c[w][PB_OPK_TRANS], scale, decimals);
  }
  print_row("total", t[0], t[1], t[2], scale, decimals);
}

static void print_report(const pb_ops_report *r) {
  char title[160];
  printf("method %s%s%s\n", r->method_name, r->method_desc[0] ? ": " : "", r->method_desc);
  snprintf(title, sizeof title, "inference, one example at T=%d (B=1, all tokens real, no dropout)", r->T);
  print_header(title);
  print_counts(&r->infer, 0, 1.0, 0);
  snprintf(title, sizeof title, "inference per token (/ %d)", r->T);
  print_header(title);
  print_counts(&r->infer, 0, (double)r->T, 1);
  if (r->has_merge) {
    uint64_t fu = pb_opcounts_flops(&r->infer, -1), fm = pb_opcounts_flops(&r->infer_merged, -1);
    uint64_t mm = r->infer_merged.c[PB_OPO_METHOD][PB_OPK_MAC], mf = pb_opcounts_flops(&r->infer_merged, PB_OPO_METHOD);
    uint64_t uf = pb_opcounts_flops(&r->infer, PB_OPO_METHOD);
    char a[48], b[48], c[48], d[48], e[48];
    pb_fmt_count(a, sizeof a, mm);
    pb_fmt_count(b, sizeof b, mf);
    pb_fmt_count(c, sizeof c, fm);
    pb_fmt_count(d, sizeof d, fu);
    pb_fmt_count(e, sizeof e, uf);
    printf("%s merged: method (added) %s MACs, %s FLOPs; total %s FLOPs per example\n", r->method_name, a, b, c);
    printf("%s unmerged: method (added) %s FLOPs; total %s FLOPs per example\n", r->method_name, e, d);
  }
  snprintf(title, sizeof title,
           "one training step, B=%d x T=%d (forward + loss + backward + gradient clipping + AdamW, dropout from the config)", r->train_B,
           r->train_T);
  print_header(title);
  print_counts(&r->train_step, 1, 1.0, 0);
  char pb[48], pm[48], ph[48], pt[48], ps[48];
  pb_fmt_count(pb, sizeof pb, r->p_backbone);
  pb_fmt_count(pm, sizeof pm, r->p_method);
  pb_fmt_count(ph, sizeof ph, r->p_head);
  pb_fmt_count(pt, sizeof pt, r->p_trainable);
  pb_fmt_count(ps, sizeof ps, r->p_stored);
  printf("params: backbone %s | method %s | head %s | trainable %s | stored %s\n", pb, pm, ph, pt, ps);
  printf("%s\n", r->params_report);
}

static void print_summary(const pb_ops_report *r, int n) {
  printf("summary (per example at T=%d; method = what the method adds)\n", r[0].T);
  printf("  %-14s %14s %18s %20s %22s %24s\n", "method", "trainable", "method MACs/tok", "method FLOPs/ex",
         "total FLOPs/ex", "train step FLOPs");
  for (int i = 0; i < n; i++) {
    char a[48], b[48], c[48], d[48], e[48];
    pb_fmt_count(a, sizeof a, r[i].p_trainable);
    pb_fmt_num(b, sizeof b, (double)r[i].infer.c[PB_OPO_METHOD][PB_OPK_MAC] / r[i].T, 1);
    pb_fmt_count(c, sizeof c, pb_opcounts_flops(&r[i].infer, PB_OPO_METHOD));
    pb_fmt_count(d, sizeof d, pb_opcounts_flops(&r[i].infer, -1));
    pb_fmt_count(e, sizeof e, pb_opcounts_flops(&r[i].train_step, -1));
    printf("  %-14s %14s %18s %20s %22s %24s\n", r[i].method_name, a, b, c, d, e);
    if (r[i].has_merge) {
      char f[48], g[48];
      pb_fmt_count(f, sizeof f, pb_opcounts_flops(&r[i].infer_merged, PB_OPO_METHOD));
      pb_fmt_count(g, sizeof g, pb_opcounts_flops(&r[i].infer_merged, -1));
      char nm[48];
      snprintf(nm, sizeof nm, "%s merged", r[i].method_name);
      pb_fmt_num(b, sizeof b, (double)r[i].infer_merged.c[PB_OPO_METHOD][PB_OPK_MAC] / r[i].T, 1);
      printf("  %-14s %14s %18s %20s %22s %24s\n", nm, "", b, f, g, "");
    }
  }
}

/* ------------------------------------------------------------ argument parsing */

static void usage(FILE *f) {
  fprintf(f,
          "usage: peftbench ops --method NAME|all [-o key=value ...] [--model DIR | --shape base|default|L,H,A,F "
          "[--vocab-size V]]\n"
          "                     [--seq T (128)] [--batch B (32)] [--labels C (2)] [--groups G] [--ode-steps S'] [--json]\n"
          "       peftbench ops --check FILE [--update]\n"
          "Analytic op counts and parameters, without data or training. --shape L,H,A,F = layers, hidden, heads,\n"
          "ffn. --check recomputes the reference configurations and compares them with FILE (exit 0 same, 1\n"
          "differs, 2 bad file); --update rewrites FILE. --groups G: the L layers share G weight sets (G divides L;\n"
          "1 = fully shared, ALBERT); --ode-steps S': inference and training step at S' of the steps (1..L,\n"
          "residual updates scaled by L/S').\n");
}

static int parse_pos_int(const char *flag, const char *v, int *out) {
  char *end = NULL;
  errno = 0;
  long x = strtol(v, &end, 10);
  if (errno || !*v || *end || x < 1 || x > 1000000000) {
    fprintf(stderr, "peftbench ops: %s expects a positive integer (got '%s')\n", flag, v);
    return 2;
  }
  *out = (int)x;
  return 0;
}

/* "L,H,A,F" -> cfg fields */
static int parse_shape(const char *v, pb_config *cfg) {
  if (strcmp(v, "base") == 0 || strcmp(v, "bert-base") == 0) {
    pb_config_bert_base(cfg, cfg->num_labels);
    return 0;
  }
  if (strcmp(v, "default") == 0) {
    pb_config_default(cfg, cfg->num_labels);
    return 0;
  }
  int x[4];
  const char *p = v;
  for (int i = 0; i < 4; i++) {
    char *end = NULL;
    errno = 0;
    long n = strtol(p, &end, 10);
    if (errno || end == p || n < 1 || n > 1000000 || (i < 3 ? *end != ',' : *end != 0)) {
      fprintf(stderr,
              "peftbench ops: --shape must be base, default or L,H,A,F (layers,hidden,heads,ffn; e.g. 4,256,4,1024), "
              "got '%s'\n",
              v);
      return 2;
    }
    x[i] = (int)n;
    p = end + 1;
  }
  pb_config_default(cfg, cfg->num_labels);
  cfg->layers = x[0];
  cfg->hidden = x[1];
  cfg->heads = x[2];
  cfg->ffn = x[3];
  return 0;
}

int pb_cmd_ops(int argc, char **argv) {
  const char *method = NULL, *model_dir = NULL, *shape = NULL, *check = NULL;
  const char *opts[MAX_OPTS + 1];
  int nopts = 0, json = 0, update = 0, T = 128, B = 32, C = 2, V = 0, groups = 0, ode = 0;
  for (int i = 1; i < argc; i++) {
    const char *a = argv[i];
    const char *val = NULL;
    char flag[32];
    snprintf(flag, sizeof flag, "%s", a);
    const char *eq = strncmp(a, "--", 2) == 0 ? strchr(a, '=') : NULL;
    if (eq) { /* --flag=value */
      size_t fl = (size_t)(eq - a) < sizeof flag ? (size_t)(eq - a) : sizeof flag - 1;
      memcpy(flag, a, fl);
      flag[fl] = 0;
      val = eq + 1;
    }
    int takes = !strcmp(flag, "--method") || !strcmp(flag, "-o") || !strcmp(flag, "--option") ||
                !strcmp(flag, "--model") || !strcmp(flag, "--shape") || !strcmp(flag, "--vocab-size") ||
                !strcmp(flag, "--seq") || !strcmp(flag, "--batch") || !strcmp(flag, "--labels") ||
                !strcmp(flag, "--check") || !strcmp(flag, "--groups") || !strcmp(flag, "--ode-steps");
    if (takes && !val) {
      if (i + 1 >= argc) {
        fprintf(stderr, "peftbench ops: %s needs a value (see peftbench ops --help)\n", flag);
        return 2;
      }
      val = argv[++i];
    }
    int rc = 0;
    if (!strcmp(flag, "-h") || !strcmp(flag, "--help")) {
      usage(stdout);
      return 0;
    } else if (!strcmp(flag, "--method")) method = val;
    else if (!strcmp(flag, "-o") || !strcmp(flag, "--option")) {
      if (nopts >= MAX_OPTS) {
        fprintf(stderr, "peftbench ops: at most %d -o options\n", MAX_OPTS);
        return 2;
      }
      opts[nopts++] = val;
    } else if (!strcmp(flag, "--model")) model_dir = val;
    else if (!strcmp(flag, "--shape")) shape = val;
    else if (!strcmp(flag, "--vocab-size")) rc = parse_pos_int(flag, val, &V);
    else if (!strcmp(flag, "--seq")) rc = parse_pos_int(flag, val, &T);
    else if (!strcmp(flag, "--batch")) rc = parse_pos_int(flag, val, &B);
    else if (!strcmp(flag, "--labels")) rc = parse_pos_int(flag, val, &C);
    else if (!strcmp(flag, "--check")) check = val;
    else if (!strcmp(flag, "--groups")) rc = parse_pos_int(flag, val, &groups);
    else if (!strcmp(flag, "--ode-steps")) rc = parse_pos_int(flag, val, &ode);
    else if (!strcmp(flag, "--json") && !val) json = 1;
    else if (!strcmp(flag, "--update") && !val) update = 1;
    else {
      fprintf(stderr, "peftbench ops: unknown argument '%s' (see peftbench ops --help)\n", a);
      return 2;
    }
    if (rc) return rc;
  }
  opts[nopts] = NULL;

  if (check) {
    if (method || model_dir || shape || nopts || json || groups || ode) {
      fprintf(stderr, "peftbench ops: --check takes only a file (and --update); it uses the reference configurations\n");
      return 2;
    }
    return cmd_check(check, update);
  }
  if (update) {
    fprintf(stderr, "peftbench ops: --update needs --check FILE\n");
    return 2;
  }
  if (!method) {
    fprintf(stderr, "peftbench ops: --method NAME|all is required (or --check FILE)\n");
    return 2;
  }
  if (model_dir && shape) {
    fprintf(stderr, "peftbench ops: give --model DIR or --shape, not both\n");
    return 2;
  }
  int all = strcmp(method, "all") == 0;
  if (all && nopts) {
    fprintf(stderr, "peftbench ops: -o options need a single --method (--method all uses every method's defaults)\n");
    return 2;
  }

  pb_config cfg;
  pb_config_default(&cfg, C);
  const char *shape_name = "default";
  if (model_dir) {
    char path[4096];
    snprintf(path, sizeof path, "%s/config.json", model_dir);
    if (pb_config_load_hf(path, &cfg)) {
      fprintf(stderr, "peftbench ops: %s\n", pb_last_error());
      return 2;
    }
    shape_name = model_dir;
  } else if (shape) {
    if (parse_shape(shape, &cfg)) return 2;
    shape_name = shape;
  }
  cfg.num_labels = C;
  if (V) cfg.vocab_size = V;
  if (pb_config_validate(&cfg, shape_name)) {
    fprintf(stderr, "peftbench ops: %s\n", pb_last_error());
    return 2;
  }
  if (T > cfg.max_pos) {
    fprintf(stderr, "peftbench ops: --seq %d exceeds max_position_embeddings %d of %s\n", T, cfg.max_pos, shape_name);
    return 2;
  }

  if (groups && model_dir) {
    fprintf(stderr, "peftbench ops: --groups applies to --shape or the default shape (a --model folder brings its own "
            "sharing: ALBERT's num_hidden_groups)\n");
    return 2;
  }
  if (groups && cfg.layers % groups) {
    fprintf(stderr, "peftbench ops: --groups %d: G=%d weight sets do not divide the %d layers\n", groups, groups, cfg.layers);
    return 2;
  }
  int n = all ? pb_method_count() : 1;
  pb_ops_report *reps = calloc((size_t)n, sizeof *reps);
  if (!reps) {
    fprintf(stderr, "peftbench ops: out of memory\n");
    return 2;
  }
  for (int i = 0; i < n; i++) {
    const char *name = all ? pb_method_at(i)->name : method;
    if (groups || ode ? pb_ops_report_for_share(&cfg, model_dir, groups, ode, name, all ? NULL : opts, T, B, T, &reps[i])
                      : pb_ops_report_for_dir(&cfg, model_dir, name, all ? NULL : opts, T, B, T, &reps[i])) {
      fprintf(stderr, "peftbench ops: %s\n", pb_last_error());
      free(reps);
      return 2;
    }
  }

  if (json) {
    cJSON *doc = cJSON_CreateObject();
    cJSON_AddStringToObject(doc, "schema", "peftbench-ops/1");
    cJSON_AddStringToObject(doc, "shape", shape_name);
    add_config(doc, &cfg);
    cJSON *arr = cJSON_AddArrayToObject(doc, "reports");
    for (int i = 0; i < n; i++) cJSON_AddItemToArray(arr, pb_ops_report_json(&reps[i]));
    char *s = cJSON_Print(doc);
    if (s) printf("%s\n", s);
    free(s);
    cJSON_Delete(doc);
  } else {
    printf("model %s: V=%d d=%d L=%d A=%d F=%d P=%d C=%d, dropout %g/%g (training only)\n", shape_name,
           cfg.vocab_size, cfg.hidden, cfg.layers, cfg.heads, cfg.ffn, cfg.max_pos, cfg.num_labels,
           (double)cfg.hidden_dropout, (double)cfg.attn_dropout);
    int steps = cfg.layers, sets = groups ? groups : cfg.layers; /* a --model folder's own sharing (ALBERT) */
    if (model_dir) {
      pb_model tmp;
      if (pb_model_declare(&tmp, &cfg) == PB_OK && pb_model_apply_hf_shape(&tmp, model_dir) == PB_OK) steps = tmp.steps;
      pb_model_free(&tmp);
    }
    if (sets != steps) printf("shared: %d steps over %d weight sets (%d consecutive steps each)\n", steps, sets, steps / sets);
    if (ode) printf("ODE steps: %d of %d (step size %g)\n", ode, steps, (double)steps / ode);
    printf("\n");
    for (int i = 0; i < n; i++) {
      print_report(&reps[i]);
      printf("\n");
    }
    if (all) print_summary(reps, n);
  }
  free(reps);
  return 0;
}
