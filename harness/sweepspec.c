/* Sweep files (sweepspec.h). */
#include "harness/sweepspec.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "util/digest.h"
#include "util/fileio.h"
#include "util/status.h"
#include "harness/glue.h"
#include "methods/method.h"

#define MAX_RUNS 100000

/* train keys: the sweep file's name, `run`'s flag, and whether it is a boolean flag */
static const struct {
  const char *key, *flag;
  int boolean;
} TRAIN_KEYS[] = {{"epochs", "--epochs", 0},         {"steps", "--steps", 0},
                  {"batch", "--batch", 0},           {"max_len", "--max-len", 0},
                  {"lr", "--lr", 0},                 {"warmup", "--warmup", 0},
                  {"weight_decay", "--weight-decay", 0}, {"dropout", "--dropout", 0},
                  {"max_grad_norm", "--max-grad-norm", 0}, {"max_train", "--max-train", 0},
                  {"max_eval", "--max-eval", 0},     {"data_seed", "--data-seed", 0},
                  {"model", "--model", 0},           {"shape", "--shape", 0},
                  {"vocab", "--vocab", 0},           {"data_dir", "--data-dir", 0},
                  {"lower_case", "--lower-case", 0}, {"teacher", "--teacher", 0},
                  {"kd_alpha", "--kd-alpha", 0},     {"kd_temp", "--kd-temp", 0},
                  {"kd_hidden", "--kd-hidden", 0},   {"merge", "--merge", 1},
                  {"new_head", "--new-head", 1},     {"test", "--test", 1}};
#define N_TRAIN_KEYS ((int)(sizeof TRAIN_KEYS / sizeof TRAIN_KEYS[0]))

static int train_key(const char *k) {
  for (int i = 0; i < N_TRAIN_KEYS; i++)
    if (strcmp(TRAIN_KEYS[i].key, k) == 0) return i;
  return -1;
}

/* ---------------------------------------------------------------- values */

/* a scalar as the run's argument text: numbers %.17g (1e-4 and 0.0001 are one value), strings
 * as they are, booleans "true"/"false"; NULL for other types */
static char *scalar_text(const cJSON *v) {
  char buf[64];
  if (cJSON_IsNumber(v)) {
    snprintf(buf, sizeof buf, "%.17g", v->valuedouble);
    return strdup(buf);
  }
  if (cJSON_IsString(v)) return strdup(v->valuestring);
  if (cJSON_IsBool(v)) return strdup(cJSON_IsTrue(v) ? "true" : "false");
  return NULL;
}

/* the values of a dimension: a scalar is a list of one */
static int dim_values(const cJSON *v, const char *file, const char *where, char ***out, int *n) {
  *out = NULL;
  *n = 0;
  const int list = cJSON_IsArray(v);
  const int k = list ? cJSON_GetArraySize(v) : 1;
  if (list && k == 0) return pb_set_error(PB_ERR_FORMAT, "%s: %s: an empty list", file, where);
  char **vals = calloc((size_t)k, sizeof *vals);
  if (!vals) return pb_set_error(PB_ERR_NOMEM, "sweep: out of memory");
  for (int i = 0; i < k; i++) {
    const cJSON *e = list ? cJSON_GetArrayItem(v, i) : v;
    if (!(vals[i] = scalar_text(e))) {
      for (int j = 0; j < i; j++) free(vals[j]);
      free(vals);
      return pb_set_error(PB_ERR_FORMAT, "%s: %s: expected a number, string or boolean, or a list of them", file,
                          where);
    }
  }
  *out = vals;
  *n = k;
  return PB_OK;
}

/* ---------------------------------------------------------------- dimensions */

typedef struct {
  char *key;
  char **vals;
  int n;
  int train;  /* a train key (else a method option) */
} dim;

typedef struct {
  dim d[2 * PB_SWEEP_MAX_KV];
  int n;
} dims;

static void dims_free(dims *ds) {
  for (int i = 0; i < ds->n; i++) {
    for (int j = 0; j < ds->d[i].n; j++) free(ds->d[i].vals[j]);
    free(ds->d[i].vals);
    free(ds->d[i].key);
  }
  ds->n = 0;
}

/* adds (or, for a key already there, replaces) the dimensions of object o */
static int dims_add(dims *ds, const cJSON *o, int train, const char *file, const char *where) {
  if (!o) return PB_OK;
  if (!cJSON_IsObject(o)) return pb_set_error(PB_ERR_FORMAT, "%s: %s: expected an object", file, where);
  for (const cJSON *c = o->child; c; c = c->next) {
    char w[256];
    snprintf(w, sizeof w, "%s.%s", where, c->string);
    if (train) {
      const int t = train_key(c->string);
      if (t < 0) return pb_set_error(PB_ERR_FORMAT, "%s: %s: unknown train key (see `peftbench run --help`; '_' for '-')",
                                     file, w);
    } else if (!*c->string || strchr(c->string, '=') || strchr(c->string, ',')) {
      return pb_set_error(PB_ERR_FORMAT, "%s: %s: not an option name", file, w);
    }
    int i = 0;
    while (i < ds->n && !(ds->d[i].train == train && strcmp(ds->d[i].key, c->string) == 0)) i++;
    if (i == ds->n) {
      if (ds->n == 2 * PB_SWEEP_MAX_KV) return pb_set_error(PB_ERR_FORMAT, "%s: %s: too many keys", file, where);
      ds->n++;
    } else {
      for (int j = 0; j < ds->d[i].n; j++) free(ds->d[i].vals[j]);
      free(ds->d[i].vals);
      free(ds->d[i].key);
    }
    memset(&ds->d[i], 0, sizeof ds->d[i]);
    ds->d[i].train = train;
    if (!(ds->d[i].key = strdup(c->string))) return pb_set_error(PB_ERR_NOMEM, "sweep: out of memory");
    int rc = dim_values(c, file, w, &ds->d[i].vals, &ds->d[i].n);
    if (rc) return rc;
    if (train && TRAIN_KEYS[train_key(c->string)].boolean)
      for (int j = 0; j < ds->d[i].n; j++)
        if (strcmp(ds->d[i].vals[j], "true") && strcmp(ds->d[i].vals[j], "false"))
          return pb_set_error(PB_ERR_FORMAT, "%s: %s: expected true or false", file, w);
  }
  return PB_OK;
}

/* ---------------------------------------------------------------- runs */

static int kv_cmp(const void *a, const void *b) {
  return strcmp(((const pb_sweep_kv *)a)->key, ((const pb_sweep_kv *)b)->key);
}

static void run_free(pb_sweep_run *r) {
  for (int i = 0; i < r->n_opt; i++) free(r->opt[i].key), free(r->opt[i].value);
  for (int i = 0; i < r->n_train; i++) free(r->train[i].key), free(r->train[i].value);
  free(r->task), free(r->method), free(r->canon);
  memset(r, 0, sizeof *r);
}

/* the canonical line and the id of r (its kv lists sorted) */
static int run_finish(pb_sweep_run *r) {
  qsort(r->opt, (size_t)r->n_opt, sizeof r->opt[0], kv_cmp);
  qsort(r->train, (size_t)r->n_train, sizeof r->train[0], kv_cmp);
  size_t n = strlen(r->task) + strlen(r->method) + 96;
  for (int i = 0; i < r->n_opt; i++) n += strlen(r->opt[i].key) + strlen(r->opt[i].value) + 2;
  for (int i = 0; i < r->n_train; i++) n += strlen(r->train[i].key) + strlen(r->train[i].value) + 2;
  if (!(r->canon = malloc(n))) return pb_set_error(PB_ERR_NOMEM, "sweep: out of memory");
  size_t o = (size_t)snprintf(r->canon, n, "task=%s;method=%s;options=", r->task, r->method);
  for (int i = 0; i < r->n_opt; i++) o += (size_t)snprintf(r->canon + o, n - o, "%s%s=%s", i ? "," : "", r->opt[i].key, r->opt[i].value);
  o += (size_t)snprintf(r->canon + o, n - o, ";train=");
  for (int i = 0; i < r->n_train; i++)
    o += (size_t)snprintf(r->canon + o, n - o, "%s%s=%s", i ? "," : "", r->train[i].key, r->train[i].value);
  snprintf(r->canon + o, n - o, ";seed=%llu", r->seed);
  char hex[65];
  int rc = pb_sha256_hex(r->canon, strlen(r->canon), hex);
  if (rc) return rc;
  memcpy(r->id, hex, PB_SWEEP_ID_LEN);
  r->id[PB_SWEEP_ID_LEN] = 0;
  return PB_OK;
}

static int push_run(pb_sweep *sw, pb_sweep_run *r) {
  int rc = run_finish(r);
  if (rc) return rc;
  for (int i = 0; i < sw->n; i++)
    if (strcmp(sw->runs[i].id, r->id) == 0) { /* the same run twice: one run */
      run_free(r);
      sw->n_dup++;
      return PB_OK;
    }
  if (sw->n == MAX_RUNS) return pb_set_error(PB_ERR_FORMAT, "%s: more than %d runs", sw->path, MAX_RUNS);
  if (sw->n == sw->cap) {
    const int cap = sw->cap ? 2 * sw->cap : 64;
    pb_sweep_run *nr = realloc(sw->runs, (size_t)cap * sizeof *nr);
    if (!nr) return pb_set_error(PB_ERR_NOMEM, "sweep: out of memory");
    sw->runs = nr;
    sw->cap = cap;
  }
  sw->runs[sw->n++] = *r;
  memset(r, 0, sizeof *r);
  return PB_OK;
}

/* one run of the product: dimension i takes value idx[i] */
static int make_run(pb_sweep *sw, const char *task, const char *method, const dims *ds, const int *idx,
                    unsigned long long seed) {
  pb_sweep_run r;
  memset(&r, 0, sizeof r);
  r.seed = seed;
  int rc = PB_OK;
  if (!(r.task = strdup(task)) || !(r.method = strdup(method))) rc = pb_set_error(PB_ERR_NOMEM, "sweep: out of memory");
  for (int i = 0; !rc && i < ds->n; i++) {
    const dim *d = &ds->d[i];
    const char *v = d->vals[idx[i]];
    if (d->train && TRAIN_KEYS[train_key(d->key)].boolean) {
      if (strcmp(v, "true") != 0) continue; /* false: no flag */
      v = "";
    }
    pb_sweep_kv *kv = d->train ? &r.train[r.n_train++] : &r.opt[r.n_opt++];
    if (!(kv->key = strdup(d->key)) || !(kv->value = strdup(v))) rc = pb_set_error(PB_ERR_NOMEM, "sweep: out of memory");
  }
  if (!rc) rc = push_run(sw, &r);
  run_free(&r);
  return rc;
}

/* every combination of ds (odometer over the dimensions) for one task, method and seed list */
static int product(pb_sweep *sw, const char *task, const char *method, const dims *ds, const unsigned long long *seeds,
                   int ns) {
  int idx[2 * PB_SWEEP_MAX_KV] = {0};
  for (;;) {
    for (int s = 0; s < ns; s++) {
      int rc = make_run(sw, task, method, ds, idx, seeds[s]);
      if (rc) return rc;
    }
    int i = ds->n - 1;
    while (i >= 0 && ++idx[i] == ds->d[i].n) idx[i--] = 0;
    if (i < 0) return PB_OK;
  }
}

/* ---------------------------------------------------------------- the file */

static int check_keys(const cJSON *o, const char *const *allowed, const char *file, const char *where) {
  for (const cJSON *c = o->child; c; c = c->next) {
    int ok = 0;
    for (int i = 0; allowed[i] && !ok; i++) ok = strcmp(c->string, allowed[i]) == 0;
    if (!ok) return pb_set_error(PB_ERR_FORMAT, "%s: %s%s%s: unknown key", file, where, *where ? "." : "", c->string);
  }
  return PB_OK;
}

static int check_task(const char *t, const char *file, const char *where) {
  if (pb_task_find(t)) return PB_OK;
  char names[256];
  pb_task_names(names, sizeof names);
  return pb_set_error(PB_ERR_FORMAT, "%s: %s: unknown task '%s' (valid: %s)", file, where, t, names);
}

static int check_method(const char *m, const char *file, const char *where) {
  pb_method_inst mi;
  if (pb_method_create(&mi, m, NULL) == PB_OK) {
    pb_method_destroy(&mi);
    return PB_OK;
  }
  char why[512]; /* pb_set_error writes the buffer pb_last_error reads */
  snprintf(why, sizeof why, "%s", pb_last_error());
  return pb_set_error(PB_ERR_FORMAT, "%s: %s: %s", file, where, why);
}

static int str_field(const cJSON *o, const char *key, const char *file, const char *where, char **out) {
  const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
  if (!v) return PB_OK;
  if (!cJSON_IsString(v) || !*v->valuestring)
    return pb_set_error(PB_ERR_FORMAT, "%s: %s.%s: expected a non-empty string", file, where, key);
  return (*out = strdup(v->valuestring)) ? PB_OK : pb_set_error(PB_ERR_NOMEM, "sweep: out of memory");
}

static int int_field(const cJSON *o, const char *key, int lo, int hi, const char *file, const char *where, int *out) {
  const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
  if (!v) return PB_OK;
  if (!cJSON_IsNumber(v) || v->valuedouble != floor(v->valuedouble) || v->valuedouble < lo || v->valuedouble > hi)
    return pb_set_error(PB_ERR_FORMAT, "%s: %s%s%s: expected an integer in %d..%d", file, where, *where ? "." : "", key,
                        lo, hi);
  *out = (int)v->valuedouble;
  return PB_OK;
}

static int load_slurm(pb_sweep *sw, const cJSON *s) {
  static const char *const keys[] = {"partition", "time", "mem", "account", "cpus_per_task", "max_parallel", "extra", NULL};
  if (!cJSON_IsObject(s)) return pb_set_error(PB_ERR_FORMAT, "%s: slurm: expected an object", sw->path);
  int rc = check_keys(s, keys, sw->path, "slurm");
  if (!rc) rc = str_field(s, "partition", sw->path, "slurm", &sw->partition);
  if (!rc) rc = str_field(s, "time", sw->path, "slurm", &sw->time);
  if (!rc) rc = str_field(s, "mem", sw->path, "slurm", &sw->mem);
  if (!rc) rc = str_field(s, "account", sw->path, "slurm", &sw->account);
  if (!rc) rc = int_field(s, "cpus_per_task", 1, 4096, sw->path, "slurm", &sw->cpus_per_task);
  if (!rc) rc = int_field(s, "max_parallel", 1, 1000000, sw->path, "slurm", &sw->max_parallel);
  const cJSON *ex = cJSON_GetObjectItemCaseSensitive(s, "extra");
  if (!rc && ex) {
    if (!cJSON_IsArray(ex)) return pb_set_error(PB_ERR_FORMAT, "%s: slurm.extra: expected a list of strings", sw->path);
    sw->n_extra = cJSON_GetArraySize(ex);
    if (!(sw->extra = calloc((size_t)sw->n_extra + 1, sizeof *sw->extra))) return pb_set_error(PB_ERR_NOMEM, "sweep: out of memory");
    for (int i = 0; i < sw->n_extra; i++) {
      const cJSON *e = cJSON_GetArrayItem(ex, i);
      if (!cJSON_IsString(e) || strncmp(e->valuestring, "--", 2) != 0 || strchr(e->valuestring, '\n'))
        return pb_set_error(PB_ERR_FORMAT, "%s: slurm.extra[%d]: expected an sbatch option (\"--name=value\")", sw->path, i);
      if (!(sw->extra[i] = strdup(e->valuestring))) return pb_set_error(PB_ERR_NOMEM, "sweep: out of memory");
    }
  }
  return rc;
}

/* the seeds: non-negative integers */
static int load_seeds(const cJSON *v, const char *file, const char *where, unsigned long long **seeds, int *ns) {
  const int list = cJSON_IsArray(v), k = list ? cJSON_GetArraySize(v) : 1;
  if (list && k == 0) return pb_set_error(PB_ERR_FORMAT, "%s: %s: an empty list", file, where);
  if (!(*seeds = malloc(sizeof **seeds * (size_t)k))) return pb_set_error(PB_ERR_NOMEM, "sweep: out of memory");
  for (int i = 0; i < k; i++) {
    const cJSON *e = list ? cJSON_GetArrayItem(v, i) : v;
    if (!cJSON_IsNumber(e) || e->valuedouble < 0 || e->valuedouble > 2147483647.0 || e->valuedouble != floor(e->valuedouble))
      return pb_set_error(PB_ERR_FORMAT, "%s: %s: expected integers in 0..2147483647", file, where);
    (*seeds)[i] = (unsigned long long)e->valuedouble;
  }
  *ns = k;
  return PB_OK;
}

static int expand(pb_sweep *sw, const cJSON *root) {
  const char *f = sw->path;
  const cJSON *tasks = cJSON_GetObjectItemCaseSensitive(root, "tasks");
  const cJSON *methods = cJSON_GetObjectItemCaseSensitive(root, "methods");
  const cJSON *runs = cJSON_GetObjectItemCaseSensitive(root, "runs");
  const cJSON *seedv = cJSON_GetObjectItemCaseSensitive(root, "seeds");
  if (!runs && (!tasks || !methods))
    return pb_set_error(PB_ERR_FORMAT, "%s: needs \"tasks\" and \"methods\" (or explicit \"runs\")", f);
  if ((tasks && !methods) || (methods && !tasks))
    return pb_set_error(PB_ERR_FORMAT, "%s: \"tasks\" and \"methods\" go together", f);
  unsigned long long one = 0, *seeds = NULL;
  int ns = 1, rc = PB_OK;
  if (seedv && (rc = load_seeds(seedv, f, "seeds", &seeds, &ns))) goto out;
  const unsigned long long *sd = seeds ? seeds : &one;
  if (tasks) {
    char **tv = NULL;
    int nt = 0;
    if ((rc = dim_values(tasks, f, "tasks", &tv, &nt))) goto out;
    if (!cJSON_IsArray(methods) || cJSON_GetArraySize(methods) == 0) {
      rc = pb_set_error(PB_ERR_FORMAT, "%s: methods: expected a non-empty list", f);
    }
    for (int t = 0; !rc && t < nt; t++) {
      char w[64];
      snprintf(w, sizeof w, "tasks[%d]", t);
      if ((rc = check_task(tv[t], f, w))) break;
      for (int k = 0; !rc && k < cJSON_GetArraySize(methods); k++) {
        const cJSON *me = cJSON_GetArrayItem(methods, k);
        snprintf(w, sizeof w, "methods[%d]", k);
        dims ds = {.n = 0};
        const char *mname = NULL;
        if (cJSON_IsString(me)) mname = me->valuestring;
        else if (cJSON_IsObject(me)) {
          static const char *const keys[] = {"method", "options", "train", NULL};
          if ((rc = check_keys(me, keys, f, w))) break;
          const cJSON *mn = cJSON_GetObjectItemCaseSensitive(me, "method");
          if (!cJSON_IsString(mn)) {
            rc = pb_set_error(PB_ERR_FORMAT, "%s: %s.method: expected a method name", f, w);
            break;
          }
          mname = mn->valuestring;
        } else {
          rc = pb_set_error(PB_ERR_FORMAT, "%s: %s: expected a method name or {\"method\", \"options\", \"train\"}", f, w);
          break;
        }
        if ((rc = check_method(mname, f, w))) break;
        char wo[80], wt[80];
        snprintf(wo, sizeof wo, "%s.options", w);
        snprintf(wt, sizeof wt, "%s.train", w);
        rc = dims_add(&ds, cJSON_GetObjectItemCaseSensitive(root, "train"), 1, f, "train");
        if (!rc && cJSON_IsObject(me)) rc = dims_add(&ds, cJSON_GetObjectItemCaseSensitive(me, "options"), 0, f, wo);
        if (!rc && cJSON_IsObject(me)) rc = dims_add(&ds, cJSON_GetObjectItemCaseSensitive(me, "train"), 1, f, wt);
        if (!rc) rc = product(sw, tv[t], mname, &ds, sd, ns);
        dims_free(&ds);
      }
    }
    for (int t = 0; t < nt; t++) free(tv[t]);
    free(tv);
    if (rc) goto out;
  }
  if (runs) {
    if (!cJSON_IsArray(runs)) {
      rc = pb_set_error(PB_ERR_FORMAT, "%s: runs: expected a list", f);
      goto out;
    }
    for (int k = 0; !rc && k < cJSON_GetArraySize(runs); k++) {
      const cJSON *ro = cJSON_GetArrayItem(runs, k);
      char w[64];
      snprintf(w, sizeof w, "runs[%d]", k);
      static const char *const keys[] = {"task", "method", "options", "train", "seed", NULL};
      if (!cJSON_IsObject(ro)) {
        rc = pb_set_error(PB_ERR_FORMAT, "%s: %s: expected an object", f, w);
        break;
      }
      if ((rc = check_keys(ro, keys, f, w))) break;
      const cJSON *t = cJSON_GetObjectItemCaseSensitive(ro, "task"), *m = cJSON_GetObjectItemCaseSensitive(ro, "method");
      if (!cJSON_IsString(t) || !cJSON_IsString(m)) {
        rc = pb_set_error(PB_ERR_FORMAT, "%s: %s: needs \"task\" and \"method\" (strings)", f, w);
        break;
      }
      if ((rc = check_task(t->valuestring, f, w)) || (rc = check_method(m->valuestring, f, w))) break;
      dims ds = {.n = 0};
      char wo[80], wt[80];
      snprintf(wo, sizeof wo, "%s.options", w);
      snprintf(wt, sizeof wt, "%s.train", w);
      rc = dims_add(&ds, cJSON_GetObjectItemCaseSensitive(root, "train"), 1, f, "train");
      if (!rc) rc = dims_add(&ds, cJSON_GetObjectItemCaseSensitive(ro, "options"), 0, f, wo);
      if (!rc) rc = dims_add(&ds, cJSON_GetObjectItemCaseSensitive(ro, "train"), 1, f, wt);
      for (int i = 0; !rc && i < ds.n; i++) /* its own keys take one value (top-level lists still expand) */
        if (ds.d[i].n > 1) {
          const cJSON *src = cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(ro, ds.d[i].train ? "train" : "options"), ds.d[i].key);
          if (src) rc = pb_set_error(PB_ERR_FORMAT, "%s: %s.%s.%s: an explicit run takes one value, not a list", f, w,
                                     ds.d[i].train ? "train" : "options", ds.d[i].key);
        }
      unsigned long long *rs = NULL, rone = 0;
      int nrs = 1;
      const cJSON *sv = cJSON_GetObjectItemCaseSensitive(ro, "seed");
      char wsd[80];
      snprintf(wsd, sizeof wsd, "%s.seed", w);
      if (!rc && sv) {
        if (cJSON_IsArray(sv)) rc = pb_set_error(PB_ERR_FORMAT, "%s: %s: one seed", f, wsd);
        else rc = load_seeds(sv, f, wsd, &rs, &nrs);
      }
      if (!rc) rc = product(sw, t->valuestring, m->valuestring, &ds, rs ? rs : &rone, nrs);
      free(rs);
      dims_free(&ds);
    }
  }
out:
  free(seeds);
  return rc;
}

int pb_sweep_load(const char *path, pb_sweep *sw) {
  memset(sw, 0, sizeof *sw);
  if (!(sw->path = strdup(path))) return pb_set_error(PB_ERR_NOMEM, "sweep: out of memory");
  cJSON *root = NULL;
  int rc = pb_read_json_object(path, &root);
  if (rc) return rc;
  static const char *const keys[] = {"name", "tasks", "methods", "seeds", "train", "runs", "threads", "slurm", NULL};
  rc = check_keys(root, keys, path, "");
  if (!rc) rc = str_field(root, "name", path, "", &sw->name);
  if (!rc && sw->name)
    for (const char *p = sw->name; *p && !rc; p++)
      if (!((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9') || strchr("-_.", *p)))
        rc = pb_set_error(PB_ERR_FORMAT, "%s: name '%s': letters, digits, '-', '_' and '.' only", path, sw->name);
  if (!rc && !sw->name) { /* the file's stem */
    const char *b = strrchr(path, '/');
    b = b ? b + 1 : path;
    const char *dot = strrchr(b, '.');
    sw->name = strndup(b, dot && dot > b ? (size_t)(dot - b) : strlen(b));
    if (!sw->name) rc = pb_set_error(PB_ERR_NOMEM, "sweep: out of memory");
  }
  if (!rc) rc = int_field(root, "threads", 1, 4096, path, "", &sw->threads);
  const cJSON *sl = cJSON_GetObjectItemCaseSensitive(root, "slurm");
  if (!rc && sl) rc = load_slurm(sw, sl);
  if (!rc) rc = expand(sw, root);
  if (!rc && sw->n == 0) rc = pb_set_error(PB_ERR_FORMAT, "%s: the plan has no runs", path);
  cJSON_Delete(root);
  return rc;
}

void pb_sweep_free(pb_sweep *sw) {
  for (int i = 0; i < sw->n; i++) run_free(&sw->runs[i]);
  free(sw->runs);
  for (int i = 0; i < sw->n_extra; i++) free(sw->extra[i]);
  free(sw->extra);
  free(sw->path), free(sw->name), free(sw->partition), free(sw->time), free(sw->mem), free(sw->account);
  memset(sw, 0, sizeof *sw);
}

int pb_sweep_run_argv(const pb_sweep_run *r, const char **argv, int cap) {
  int n = 0;
#define PUSH(s)                   \
  do {                            \
    if (n + 1 >= cap) return -1;  \
    argv[n++] = (s);              \
  } while (0)
  PUSH("run");
  PUSH("--task");
  PUSH(r->task);
  PUSH("--method");
  PUSH(r->method);
  static _Thread_local char optbuf[PB_SWEEP_MAX_KV][512];
  for (int i = 0; i < r->n_opt; i++) {
    snprintf(optbuf[i], sizeof optbuf[i], "%s=%s", r->opt[i].key, r->opt[i].value);
    PUSH("-o");
    PUSH(optbuf[i]);
  }
  for (int i = 0; i < r->n_train; i++) {
    const int t = train_key(r->train[i].key);
    PUSH(TRAIN_KEYS[t].flag);
    if (!TRAIN_KEYS[t].boolean) PUSH(r->train[i].value);
  }
  static _Thread_local char seedbuf[32];
  snprintf(seedbuf, sizeof seedbuf, "%llu", r->seed);
  PUSH("--seed");
  PUSH(seedbuf);
  argv[n] = NULL;
#undef PUSH
  return n;
}

void pb_sweep_run_desc(const pb_sweep_run *r, char *buf, size_t n) {
  size_t o = (size_t)snprintf(buf, n, "%s %s", r->task, r->method);
  for (int i = 0; i < r->n_opt && o < n; i++) o += (size_t)snprintf(buf + o, n - o, "%s%s=%s", i ? "," : " ", r->opt[i].key, r->opt[i].value);
  for (int i = 0; i < r->n_train && o < n; i++)
    o += (size_t)snprintf(buf + o, n - o, "%s%s%s%s", i ? "," : " | ", r->train[i].key, *r->train[i].value ? "=" : "",
                          r->train[i].value);
  if (o < n) snprintf(buf + o, n - o, " | seed %llu", r->seed);
}
