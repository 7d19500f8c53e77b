/* Method composition: `--method lora+bitfit` runs several methods over one backbone at once.
 *
 * Spec: registered method names joined by '+', each at most once, at least two; the order is
 * kept (it is the attach order and so the order of the hook chain, backbone/hooks.h) and it is
 * the instance's name. The full fine-tuning reference (pb_method.reference) trains every
 * backbone tensor already and cannot be combined with another method.
 *
 * pb_method_create(inst, "lora+bitfit", options) lands here (registry.c). The instance's table
 * is built per instance inside its own ctx (compose_ctx.table, so inst->m->name is the spec);
 * the ctx holds one sub-instance per part, created with the parts' defaults; pb_method_destroy
 * destroys the parts (compose_destroy) and frees the ctx with the table in it.
 *
 * Options: "key=value" goes to the one part that declares `key` (ambiguous when several do:
 * PB_ERR_ARG naming them); "part.key=value" addresses one part (required for a part that parses
 * its own options without declaring them).
 * describe: every part's describe with its keys prefixed, "lora.r=8,lora.alpha=16,...,
 * bitfit.biases=query+key+...": a list of options that pb_method_create accepts back for the
 * same spec (the task file stores it as method_config; eval re-creates the method from it).
 *
 * attach: each part's attach in spec order; the parts' tensors and trainable flags add up (a
 * tensor two parts train trains once). merge/unmerge: offered when at least one part can merge
 * and every part that appended hooks to the chain can (a part without hooks, e.g. one that only
 * flips trainable flags, has nothing to fold): known exactly after attach, when the table's
 * merge/unmerge are set or cleared; before attach they are offered when some part can merge.
 * merge folds the parts in order (undoing on failure), unmerge in reverse order.
 * default_lr: the first part's (the method named first leads; `--lr` overrides), else the
 * first non-zero one of the others. No reference configurations (the op baseline lists single
 * methods); table rows of a composite come after every single method (pb_method_rank). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "util/status.h"
#include "methods/method.h"

#define COMPOSE_MAX 8
#define COMPOSE_NAME_MAX 256

typedef struct {
  pb_method table;                 /* this instance's table (inst->m points here) */
  char name[COMPOSE_NAME_MAX];     /* the spec, "lora+bitfit" */
  char summary[COMPOSE_NAME_MAX + 64];
  char help[4096];                 /* options_help: every part's options, prefixed */
  char keys[1024];                 /* "lora.r, lora.alpha, ..., bitfit.biases" for errors */
  int n;                           /* parts */
  pb_method_inst part[COMPOSE_MAX];
  int hooks_added[COMPOSE_MAX];    /* hook tables each part appended to the chain at attach */
  pb_model *m;                     /* the model attached to (borrowed) */
  int merged;                      /* 1: every mergeable part is merged */
} compose_ctx;

/* "lora, bitfit" */
static void part_list(const compose_ctx *c, char *buf, size_t n) {
  size_t w = 0;
  if (n) buf[0] = 0;
  for (int i = 0; i < c->n && w < n; i++) w += (size_t)snprintf(buf + w, n - w, "%s%s", i ? ", " : "", c->part[i].m->name);
}

/* one option of one part (key without prefix) */
static int part_set(compose_ctx *c, int i, const char *key, const char *value) {
  const pb_method *pm = c->part[i].m;
  if (pm->set_option) return pm->set_option(c->part[i].ctx, key, value);
  if (pm->version >= 2 && pm->options && pm->n_options > 0) return pb_method_set_option(pm, c->part[i].ctx, key, value);
  return pb_set_error(PB_ERR_ARG, "%s: method '%s' takes no options (got '%s=%s')", c->name, pm->name, key, value);
}

static int compose_set_option(void *vctx, const char *key, const char *value) {
  compose_ctx *c = vctx;
  char parts[COMPOSE_NAME_MAX + 16];
  const char *dot = strchr(key, '.');
  if (dot) { /* part.key */
    for (int i = 0; i < c->n; i++) {
      const char *pn = c->part[i].m->name;
      if (strlen(pn) == (size_t)(dot - key) && strncmp(pn, key, (size_t)(dot - key)) == 0) {
        if (!dot[1]) return pb_set_error(PB_ERR_ARG, "%s: option '%s=%s' names no key after '%s.'", c->name, key, value, pn);
        return part_set(c, i, dot + 1, value);
      }
    }
    part_list(c, parts, sizeof parts);
    return pb_set_error(PB_ERR_ARG, "%s: option '%s': '%.*s' is not a part of %s (parts: %s)", c->name, key,
                        (int)(dot - key), key, c->name, parts);
  }
  int found = -1, second = -1;
  for (int i = 0; i < c->n; i++)
    if (pb_method_option_find(c->part[i].m, key)) {
      if (found < 0) found = i;
      else if (second < 0) second = i;
    }
  if (found >= 0 && second >= 0)
    return pb_set_error(PB_ERR_ARG, "%s: option '%s' is ambiguous: both %s and %s declare it (write %s.%s=%s or %s.%s=%s)",
                        c->name, key, c->part[found].m->name, c->part[second].m->name, c->part[found].m->name, key,
                        value, c->part[second].m->name, key, value);
  if (found >= 0) return part_set(c, found, key, value);
  return pb_set_error(PB_ERR_ARG, "%s: unknown option '%s' (valid: %s)", c->name, key, c->keys);
}

/* "a.k=v,a.k2=v2,b.k=v": every part's describe, keys prefixed with the part's name */
static int compose_describe(const void *vctx, char *buf, size_t n) {
  const compose_ctx *c = vctx;
  size_t w = 0;
  if (n) buf[0] = 0;
  for (int i = 0; i < c->n; i++) {
    const pb_method_inst *p = &c->part[i];
    char d[2048] = "";
    if (p->m->describe) {
      int rc = p->m->describe(p->ctx, d, sizeof d);
      if (rc) return rc;
    }
    for (char *save = NULL, *t = strtok_r(d, ",", &save); t; t = strtok_r(NULL, ",", &save))
      if (*t) w += (size_t)snprintf(buf + w, w < n ? n - w : 0, "%s%s.%s", w ? "," : "", p->m->name, t);
  }
  if (w >= n) return pb_set_error(PB_ERR_ARG, "%s: describe buffer of %zu bytes too small", c->name, n);
  return PB_OK;
}

static int compose_can_merge(const pb_method *pm) { return pm->merge && pm->unmerge; }

static int compose_attach(void *vctx, pb_model *m) {
  compose_ctx *c = vctx;
  if (c->m) return pb_set_error(PB_ERR_ARG, "%s: already attached to a model", c->name);
  int any = 0, all = 1;
  for (int i = 0; i < c->n; i++) {
    const int before = m->n_hooks;
    int rc = c->part[i].m->attach(c->part[i].ctx, m);
    if (rc) {
      char e[512];
      snprintf(e, sizeof e, "%s", pb_last_error());
      return pb_set_error(rc, "%s: %s", c->name, e);
    }
    c->hooks_added[i] = m->n_hooks - before;
    const int can = compose_can_merge(c->part[i].m);
    any |= can;
    if (c->hooks_added[i] > 0 && !can) all = 0;
  }
  if (!(any && all)) c->table.merge = c->table.unmerge = NULL; /* the harness reads these after attach */
  c->m = m;
  c->merged = 0;
  return PB_OK;
}

static int compose_merge(void *vctx, pb_model *m) {
  compose_ctx *c = vctx;
  if (!c->m || c->m != m) return pb_set_error(PB_ERR_ARG, "%s: merge on a model it is not attached to", c->name);
  if (c->merged) return pb_set_error(PB_ERR_ARG, "%s: already merged", c->name);
  for (int i = 0; i < c->n; i++) {
    const pb_method_inst *p = &c->part[i];
    if (!compose_can_merge(p->m)) {
      if (c->hooks_added[i] > 0) return pb_set_error(PB_ERR_ARG, "%s: part '%s' cannot be merged", c->name, p->m->name);
      continue; /* no hooks: nothing to fold */
    }
    int rc = p->m->merge(p->ctx, m);
    if (rc) {
      for (int k = i - 1; k >= 0; k--)
        if (compose_can_merge(c->part[k].m)) c->part[k].m->unmerge(c->part[k].ctx, m);
      return rc;
    }
  }
  c->merged = 1;
  return PB_OK;
}

static int compose_unmerge(void *vctx, pb_model *m) {
  compose_ctx *c = vctx;
  if (!c->m || c->m != m) return pb_set_error(PB_ERR_ARG, "%s: unmerge on a model it is not attached to", c->name);
  if (!c->merged) return pb_set_error(PB_ERR_ARG, "%s: unmerge without a merge", c->name);
  int rc = PB_OK;
  for (int i = c->n - 1; i >= 0; i--) {
    const pb_method_inst *p = &c->part[i];
    if (!compose_can_merge(p->m)) continue;
    int r = p->m->unmerge(p->ctx, m);
    if (!rc) rc = r;
  }
  if (!rc) c->merged = 0;
  return rc;
}

static int compose_destroy(void *vctx) {
  compose_ctx *c = vctx;
  for (int i = 0; i < c->n; i++) pb_method_destroy(&c->part[i]);
  c->n = 0;
  return PB_OK;
}

static int compose_init(void *vctx) {
  (void)vctx; /* the core never calls it: pb_method_compose_create builds the instance */
  return PB_OK;
}

/* help: "lora.r=INT 1..65536 (8)  lora.alpha=...  bitfit.biases=..."; keys: "lora.r, ..." */
static void build_help(compose_ctx *c) {
  size_t w = 0, wk = 0;
  c->help[0] = c->keys[0] = 0;
  for (int i = 0; i < c->n; i++) {
    const pb_method *pm = c->part[i].m;
    char h[2048];
    if (pm->version >= 2 && pm->options && pm->n_options > 0) {
      for (int k = 0; k < pm->n_options; k++) {
        /* option k's entry as pb_method_options_help writes it: a copy of the table with it alone */
        pb_method one = *pm;
        one.options = &pm->options[k];
        one.n_options = 1;
        pb_method_options_help(&one, h, sizeof h);
        if (w < sizeof c->help) w += (size_t)snprintf(c->help + w, sizeof c->help - w, "%s%s.%s", w ? "  " : "", pm->name, h);
        if (wk < sizeof c->keys)
          wk += (size_t)snprintf(c->keys + wk, sizeof c->keys - wk, "%s%s.%s", wk ? ", " : "", pm->name, pm->options[k].name);
      }
    } else if (pm->options_help && *pm->options_help) {
      if (w < sizeof c->help) w += (size_t)snprintf(c->help + w, sizeof c->help - w, "%s%s: %s", w ? "  " : "", pm->name, pm->options_help);
      if (wk < sizeof c->keys) wk += (size_t)snprintf(c->keys + wk, sizeof c->keys - wk, "%s%s.KEY", wk ? ", " : "", pm->name);
    }
  }
  if (!c->help[0]) snprintf(c->help, sizeof c->help, "none");
  if (!c->keys[0]) snprintf(c->keys, sizeof c->keys, "none");
}

int pb_method_compose_create(pb_method_inst *inst, const char *spec, const char *const *options) {
  memset(inst, 0, sizeof *inst);
  char names[512];
  if (strlen(spec) >= COMPOSE_NAME_MAX) return pb_set_error(PB_ERR_ARG, "method spec '%.40s...' is too long", spec);
  /* parse and check the spec before allocating anything */
  const pb_method *pm[COMPOSE_MAX];
  int n = 0;
  for (const char *p = spec;; p++) {
    size_t len = strcspn(p, "+");
    if (len == 0) {
      pb_method_names(names, sizeof names);
      return pb_set_error(PB_ERR_ARG, "method '%s': an empty name around '+' (write NAME+NAME from: %s)", spec, names);
    }
    char nm[COMPOSE_NAME_MAX];
    snprintf(nm, sizeof nm, "%.*s", (int)len, p);
    const pb_method *m = pb_method_find(nm);
    if (!m) {
      pb_method_names(names, sizeof names);
      return pb_set_error(PB_ERR_ARG, "unknown method '%s' in '%s' (valid: %s; join several with '+')", nm, spec, names);
    }
    for (int k = 0; k < n; k++)
      if (pm[k] == m) return pb_set_error(PB_ERR_ARG, "method '%s': '%s' appears twice (each method at most once)", spec, nm);
    if (n == COMPOSE_MAX) return pb_set_error(PB_ERR_ARG, "method '%s': more than %d methods", spec, COMPOSE_MAX);
    pm[n++] = m;
    p += len;
    if (!*p) break;
  }
  for (int k = 0; k < n; k++)
    if (pm[k]->version >= 2 && pm[k]->reference)
      return pb_set_error(PB_ERR_ARG, "method '%s': '%s' is full fine-tuning (every backbone tensor trains) and cannot "
                          "be combined with another method", spec, pm[k]->name);
  if (n < 2) return pb_set_error(PB_ERR_ARG, "method '%s': a composition needs two methods joined by '+'", spec);

  compose_ctx *c = calloc(1, sizeof *c);
  if (!c) return pb_set_error(PB_ERR_NOMEM, "method '%s': out of memory", spec);
  snprintf(c->name, sizeof c->name, "%s", spec);
  int rc = PB_OK;
  for (int k = 0; k < n && !rc; k++) {
    rc = pb_method_create(&c->part[k], pm[k]->name, NULL);
    if (!rc) c->n++;
  }
  if (rc) {
    compose_destroy(c);
    free(c);
    return rc;
  }
  build_help(c);
  snprintf(c->summary, sizeof c->summary, "composition of %s (attached in this order)", spec);
  double lr = 0;
  for (int k = 0; k < n && lr <= 0; k++) lr = pm[k]->default_lr;
  int any_merge = 0;
  for (int k = 0; k < n; k++) any_merge |= compose_can_merge(pm[k]);
  c->table = (pb_method){
      .version = PB_METHOD_VERSION,
      .name = c->name,
      .summary = c->summary,
      .options_help = c->help,
      .ctx_size = sizeof(compose_ctx),
      .init = compose_init,
      .set_option = compose_set_option,
      .describe = compose_describe,
      .attach = compose_attach,
      .merge = any_merge ? compose_merge : NULL,
      .unmerge = any_merge ? compose_unmerge : NULL,
      .destroy = compose_destroy,
      .default_lr = lr,
      /* options: routed by set_option; refconfigs: none; order 0: after every single method */
  };
  inst->m = &c->table;
  inst->ctx = c;
  for (int i = 0; !rc && options && options[i]; i++) {
    const char *eq = strchr(options[i], '=');
    if (!eq || eq == options[i]) {
      rc = pb_set_error(PB_ERR_ARG, "method '%s': option '%s' is not key=value (valid keys: %s)", spec, options[i], c->keys);
      break;
    }
    char key[128];
    size_t kl = (size_t)(eq - options[i]);
    if (kl >= sizeof key) kl = sizeof key - 1;
    memcpy(key, options[i], kl);
    key[kl] = 0;
    rc = compose_set_option(c, key, eq + 1);
  }
  if (rc) pb_method_destroy(inst);
  return rc;
}

void pb_method_compose_help(char *buf, size_t n) {
  /* the example: the first two registered methods that may be combined */
  const char *ex[2] = {NULL, NULL};
  for (int i = 0, k = 0; i < pb_method_count() && k < 2; i++)
    if (!(pb_method_at(i)->version >= 2 && pb_method_at(i)->reference)) ex[k++] = pb_method_at(i)->name;
  snprintf(buf, n,
           "composition: join methods with '+' (--method %s+%s): each attaches in that order and trains its own "
           "tensors; options go to the method that declares the key, or as -o NAME.KEY=VALUE; each method at most "
           "once; full fine-tuning cannot be combined",
           ex[0] ? ex[0] : "A", ex[1] ? ex[1] : "B");
}
