/* Checkpoints: HF folder save -> load bit-exact, alternative HF namings, load errors,
 * config.json errors, task file round trip and errors, failed saves that must leave an
 * existing file untouched. Exits non-zero on any failure. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "backbone/bert.h"
#include "backbone/checkpoint.h"
#include "util/fileio.h"
#include "backbone/safetensors.h"
#include "util/status.h"
#include "tests/check.h"


static char g_dir[256];

static void path_of(char *buf, size_t n, const char *name) { snprintf(buf, n, "%s/%s", g_dir, name); }

static void tiny_config(pb_config *c, int num_labels) {
  memset(c, 0, sizeof *c);
  c->vocab_size = 50;
  c->hidden = 8;
  c->layers = 2;
  c->heads = 2;
  c->ffn = 16;
  c->max_pos = 16;
  c->type_vocab = 2;
  c->ln_eps = 1e-12f;
  c->hidden_dropout = 0.1f;
  c->attn_dropout = 0.1f;
  c->init_range = 0.02f;
  c->num_labels = num_labels;
}

static int make_model(pb_model *m, const pb_config *c, uint64_t seed) {
  int rc = pb_model_declare(m, c);
  if (!rc) rc = pb_model_alloc(m, 1, 8);
  if (rc) {
    printf("cannot build model: %s\n", pb_last_error());
    return rc;
  }
  pb_model_init_random(m, seed);
  /* LayerNorm params init to constants: perturb so that a swapped weight/bias would show */
  for (int i = 0; i < m->params.n; i++)
    if (strstr(m->params.t[i].name, "LayerNorm") || strstr(m->params.t[i].name, "bias"))
      for (size_t j = 0; j < m->params.t[i].numel; j++) m->params.t[i].data[j] += 0.001f * (float)(j % 7) + 1e-4f * (float)(seed % 13);
  return PB_OK;
}

/* number of tensors (with owner filter: < 0 any) that differ bitwise between a and b */
static int count_diff(const pb_model *a, const pb_model *b, int owner) {
  int d = 0;
  for (int i = 0; i < a->params.n; i++) {
    const pb_tensor *x = &a->params.t[i], *y = &b->params.t[i];
    if (owner >= 0 && (int)x->owner != owner) continue;
    if (strcmp(x->name, y->name) != 0 || x->numel != y->numel || memcmp(x->data, y->data, x->numel * sizeof(float)) != 0) d++;
  }
  return d;
}

static int file_equals(const char *path, const char *want, size_t n) {
  char *s = NULL;
  size_t len = 0;
  if (pb_read_file(path, &s, &len) != PB_OK) return 0;
  int eq = len == n && memcmp(s, want, n) == 0;
  free(s);
  return eq;
}

/* writes a safetensors file from model a, renaming each tensor with `rename` (NULL: skip it) and
 * adding an extra tensor */
typedef const char *(*rename_fn)(const char *name, char *buf, size_t n);
static int write_renamed(const pb_model *a, const char *path, rename_fn rn) {
  pb_st_wtensor w[128];
  char names[128][PB_NAME_MAX + 16];
  int n = 0;
  for (int i = 0; i < a->params.n && n < 120; i++) {
    const pb_tensor *t = &a->params.t[i];
    const char *nm = rn(t->name, names[n], sizeof names[n]);
    if (!nm) continue;
    w[n].name = nm;
    w[n].ndim = t->ndim;
    w[n].shape = t->shape;
    w[n].data = t->data;
    n++;
  }
  static const float extra[3] = {1, 2, 3};
  static const int s3[1] = {3};
  w[n].name = "cls.predictions.bias";
  w[n].ndim = 1;
  w[n].shape = s3;
  w[n].data = extra;
  n++;
  return pb_st_write(path, NULL, 0, w, n, PB_ST_F32);
}

/* bare-BertModel naming with old LayerNorm names */
static const char *rn_old(const char *name, char *buf, size_t n) {
  const char *s = strncmp(name, "bert.", 5) == 0 ? name + 5 : name;
  snprintf(buf, n, "%s", s);
  size_t l = strlen(buf);
  if (l > 17 && strcmp(buf + l - 17, ".LayerNorm.weight") == 0) strcpy(buf + l - 6, "gamma");
  else if (l > 15 && strcmp(buf + l - 15, ".LayerNorm.bias") == 0) strcpy(buf + l - 4, "beta");
  return buf;
}
static const char *rn_drop_one(const char *name, char *buf, size_t n) {
  if (strcmp(name, "bert.encoder.layer.1.output.dense.weight") == 0) return NULL;
  snprintf(buf, n, "%s", name);
  return buf;
}

static void test_hf_roundtrip(void) {
  printf("HF folder: save, config.json back, load into a fresh model bit-exact\n");
  pb_config c;
  tiny_config(&c, 3);
  pb_model a, b;
  if (make_model(&a, &c, 7)) { failures++; return; }
  char dir[512], cfgp[600];
  path_of(dir, sizeof dir, "hf");
  int rc = pb_model_save_hf(&a, dir);
  CHECK(rc == PB_OK, "save_hf rc=%d %s", rc, pb_last_error());
  snprintf(cfgp, sizeof cfgp, "%s/config.json", dir);
  pb_config c2;
  memset(&c2, 0, sizeof c2);
  c2.num_labels = 3;
  rc = pb_config_load_hf(cfgp, &c2);
  CHECK(rc == PB_OK, "config back rc=%d %s", rc, pb_last_error());
  CHECK(memcmp(&c, &c2, sizeof c) == 0, "config fields identical (eps %g vs %g)", (double)c.ln_eps, (double)c2.ln_eps);
  if (make_model(&b, &c2, 99)) { failures++; pb_model_free(&a); return; }
  CHECK(count_diff(&a, &b, -1) > 0, "fresh model differs before load");
  rc = pb_model_load_hf(&b, dir);
  CHECK(rc == PB_OK, "load_hf rc=%d %s", rc, pb_last_error());
  CHECK(count_diff(&a, &b, -1) == 0, "%d tensors differ after load", count_diff(&a, &b, -1));
  char fa[17], fb[17];
  pb_model_fingerprint(&a, fa);
  pb_model_fingerprint(&b, fb);
  CHECK(strcmp(fa, fb) == 0, "fingerprints %s %s", fa, fb);
  pb_model_free(&b);

  /* a model with another label count keeps its own head */
  pb_config c3 = c;
  c3.num_labels = 2;
  if (make_model(&b, &c3, 5) == PB_OK) {
    float head0 = b.params.t[b.cls_w].data[0];
    rc = pb_model_load_hf(&b, dir);
    CHECK(rc == PB_OK, "load with C=2 rc=%d %s", rc, pb_last_error());
    CHECK(count_diff(&a, &b, PB_OWNER_BACKBONE) == 0, "backbone loaded");
    CHECK(b.params.t[b.cls_w].data[0] == head0, "head of another shape left as initialised");
    pb_model_free(&b);
  }

  /* prefix-less names + gamma/beta + extra tensors */
  char p[512];
  path_of(p, sizeof p, "hf_old");
  mkdir(p, 0755);
  path_of(p, sizeof p, "hf_old/model.safetensors");
  CHECK(write_renamed(&a, p, rn_old) == PB_OK, "write old-style file");
  if (make_model(&b, &c, 11) == PB_OK) {
    path_of(p, sizeof p, "hf_old");
    rc = pb_model_load_hf(&b, p);
    CHECK(rc == PB_OK, "load old naming rc=%d %s", rc, pb_last_error());
    CHECK(count_diff(&a, &b, -1) == 0, "old naming: %d tensors differ", count_diff(&a, &b, -1));
    pb_model_free(&b);
  }

  /* missing backbone tensor: error naming it, model untouched */
  path_of(p, sizeof p, "hf_missing");
  mkdir(p, 0755);
  path_of(p, sizeof p, "hf_missing/model.safetensors");
  CHECK(write_renamed(&a, p, rn_drop_one) == PB_OK, "write file missing a tensor");
  pb_model ref;
  if (make_model(&b, &c, 13) == PB_OK && make_model(&ref, &c, 13) == PB_OK) {
    path_of(p, sizeof p, "hf_missing");
    rc = pb_model_load_hf(&b, p);
    CHECK(rc == PB_ERR_NOTFOUND && strstr(pb_last_error(), "bert.encoder.layer.1.output.dense.weight"), "missing rc=%d %s", rc,
          pb_last_error());
    printf("  missing tensor -> %s\n", pb_last_error());
    CHECK(count_diff(&ref, &b, -1) == 0, "model untouched after a failed load");
    pb_model_free(&b);
    pb_model_free(&ref);
  }

  /* shape mismatch: a model with a bigger vocabulary */
  pb_config c4 = c;
  c4.vocab_size = 51;
  if (make_model(&b, &c4, 1) == PB_OK) {
    rc = pb_model_load_hf(&b, dir);
    CHECK(rc == PB_ERR_SHAPE && strstr(pb_last_error(), "[50, 8]") && strstr(pb_last_error(), "[51, 8]") &&
              strstr(pb_last_error(), "word_embeddings"),
          "shape rc=%d %s", rc, pb_last_error());
    printf("  shape mismatch -> %s\n", pb_last_error());
    pb_model_free(&b);
  }

  /* non-finite weight */
  a.params.t[a.layer[0].kw].data[3] = NAN;
  path_of(p, sizeof p, "hf_nan_save");
  rc = pb_model_save_hf(&a, p);
  CHECK(rc == PB_ERR_NUMERIC && strstr(pb_last_error(), "attention.self.key.weight"), "save_hf refuses NaN rc=%d %s", rc,
        pb_last_error());
  path_of(p, sizeof p, "hf_nan");
  mkdir(p, 0755);
  path_of(p, sizeof p, "hf_nan/model.safetensors");
  CHECK(write_renamed(&a, p, rn_old) == PB_OK, "write NaN file");
  if (make_model(&b, &c, 2) == PB_OK) {
    path_of(p, sizeof p, "hf_nan");
    rc = pb_model_load_hf(&b, p);
    CHECK(rc == PB_ERR_NUMERIC && strstr(pb_last_error(), "attention.self.key.weight"), "nan rc=%d %s", rc, pb_last_error());
    printf("  NaN weight -> %s\n", pb_last_error());
    pb_model_free(&b);
  }
  /* no model.safetensors */
  if (make_model(&b, &c, 2) == PB_OK) {
    rc = pb_model_load_hf(&b, g_dir);
    CHECK(rc == PB_ERR_NOTFOUND && strstr(pb_last_error(), "model.safetensors"), "no file rc=%d %s", rc, pb_last_error());
    pb_model_free(&b);
  }
  pb_model_free(&a);
}

static int write_text(const char *name, const char *text, char *path, size_t n) {
  path_of(path, n, name);
  return pb_write_file_atomic(path, text, strlen(text));
}

static void test_config_errors(void) {
  printf("config.json: defaults, missing fields, bad types, unsupported activation\n");
  char p[512];
  pb_config c;
  memset(&c, 0, sizeof c);
  write_text("min.json",
             "{\"vocab_size\": 100, \"hidden_size\": 16, \"num_hidden_layers\": 1, \"num_attention_heads\": 4,"
             " \"intermediate_size\": 32}",
             p, sizeof p);
  int rc = pb_config_load_hf(p, &c);
  CHECK(rc == PB_OK && c.max_pos == 512 && c.type_vocab == 2 && c.ln_eps == 1e-12f && c.hidden_dropout == 0.1f &&
            c.init_range == 0.02f && c.num_labels == 2 && c.hidden == 16,
        "defaults rc=%d %s", rc, pb_last_error());
  static const struct {
    const char *file, *text;
    int want;
    const char *needle;
  } cases[] = {
      {"c_missing.json", "{\"vocab_size\": 100, \"num_hidden_layers\": 1, \"num_attention_heads\": 4, \"intermediate_size\": 32}",
       PB_ERR_FORMAT, "hidden_size"},
      {"c_act.json",
       "{\"vocab_size\": 100, \"hidden_size\": 16, \"num_hidden_layers\": 1, \"num_attention_heads\": 4,"
       " \"intermediate_size\": 32, \"hidden_act\": \"relu\"}",
       PB_ERR_UNSUPPORTED, "relu"},
      {"c_type.json",
       "{\"vocab_size\": 100, \"hidden_size\": 16, \"num_hidden_layers\": \"1\", \"num_attention_heads\": 4,"
       " \"intermediate_size\": 32}",
       PB_ERR_FORMAT, "num_hidden_layers"},
      {"c_frac.json",
       "{\"vocab_size\": 100.5, \"hidden_size\": 16, \"num_hidden_layers\": 1, \"num_attention_heads\": 4,"
       " \"intermediate_size\": 32}",
       PB_ERR_FORMAT, "vocab_size"},
      {"c_eps.json",
       "{\"vocab_size\": 100, \"hidden_size\": 16, \"num_hidden_layers\": 1, \"num_attention_heads\": 4,"
       " \"intermediate_size\": 32, \"layer_norm_eps\": \"small\"}",
       PB_ERR_FORMAT, "layer_norm_eps"},
      {"c_heads.json",
       "{\"vocab_size\": 100, \"hidden_size\": 16, \"num_hidden_layers\": 1, \"num_attention_heads\": 3,"
       " \"intermediate_size\": 32}",
       PB_ERR_ARG, "divisible"},
      {"c_pos.json",
       "{\"vocab_size\": 100, \"hidden_size\": 16, \"num_hidden_layers\": 1, \"num_attention_heads\": 4,"
       " \"intermediate_size\": 32, \"position_embedding_type\": \"relative_key\"}",
       PB_ERR_UNSUPPORTED, "relative_key"},
      {"c_notjson.json", "{\"vocab_size\": 100,", PB_ERR_FORMAT, "JSON"},
      {"c_array.json", "[1, 2]", PB_ERR_FORMAT, "object"},
  };
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    write_text(cases[i].file, cases[i].text, p, sizeof p);
    pb_config d = c;
    rc = pb_config_load_hf(p, &d);
    CHECK(rc == cases[i].want && strstr(pb_last_error(), cases[i].file) && strstr(pb_last_error(), cases[i].needle),
          "%s: rc=%d %s", cases[i].file, rc, pb_last_error());
    CHECK(memcmp(&d, &c, sizeof c) == 0, "%s: cfg untouched on error", cases[i].file);
    printf("  %-16s -> %s\n", cases[i].file, pb_last_error());
  }
  path_of(p, sizeof p, "no_such_config.json");
  rc = pb_config_load_hf(p, &c);
  CHECK(rc == PB_ERR_NOTFOUND && strstr(pb_last_error(), "no_such_config.json"), "missing file rc=%d", rc);
}

static void test_task_files(void) {
  printf("task files: only stored tensors, metadata, round trip, errors, atomic failures\n");
  pb_config c;
  tiny_config(&c, 3);
  pb_model a, b;
  if (make_model(&a, &c, 21)) { failures++; return; }
  if (make_model(&b, &c, 22)) { failures++; pb_model_free(&a); return; }
  /* classifier.* are stored by default (head); also store one backbone tensor */
  a.params.t[a.cls_w].stored = b.params.t[b.cls_w].stored = 1;
  a.params.t[a.cls_b].stored = b.params.t[b.cls_b].stored = 1;
  a.params.t[a.layer[1].qw].stored = b.params.t[b.layer[1].qw].stored = 1;
  int n_stored = 0;
  size_t stored_floats = 0;
  for (int i = 0; i < a.params.n; i++)
    if (a.params.t[i].stored) { n_stored++; stored_floats += a.params.t[i].numel; }

  char p[512];
  path_of(p, sizeof p, "task.safetensors");
  pb_kv meta[3] = {{"method", "lora"}, {"method_config", "{\"r\":8}"}, {"task", "rte"}};
  int rc = pb_task_save(&a, p, meta, 3);
  CHECK(rc == PB_OK, "task save rc=%d %s", rc, pb_last_error());

  pb_st_file f;
  rc = pb_st_open(&f, p);
  CHECK(rc == PB_OK && f.n == n_stored, "file holds %d tensors, want %d", rc ? -1 : f.n, n_stored);
  if (rc == PB_OK) {
    CHECK(f.data_size == stored_floats * 4, "data bytes %zu", f.data_size);
    pb_st_close(&f);
  }
  pb_kv *m = NULL;
  int nm = 0;
  rc = pb_task_read_meta(p, &m, &nm);
  CHECK(rc == PB_OK && nm == 5 && strcmp(pb_kv_get(m, nm, "format"), "peftbench-task") == 0 &&
            strcmp(pb_kv_get(m, nm, "format_version"), "1") == 0 && strcmp(pb_kv_get(m, nm, "method_config"), "{\"r\":8}") == 0,
        "read_meta rc=%d n=%d", rc, nm);
  pb_kv_free(m, nm);

  pb_model before;
  make_model(&before, &c, 22); /* b's values before loading */
  rc = pb_task_load(&b, p, &m, &nm);
  CHECK(rc == PB_OK && nm == 5 && strcmp(pb_kv_get(m, nm, "task"), "rte") == 0, "task load rc=%d %s", rc, pb_last_error());
  pb_kv_free(m, nm);
  int ok_stored = 1, ok_other = 1;
  for (int i = 0; i < a.params.n; i++) {
    const pb_tensor *ta = &a.params.t[i], *tb = &b.params.t[i], *t0 = &before.params.t[i];
    size_t bytes = ta->numel * sizeof(float);
    if (ta->stored) ok_stored &= memcmp(ta->data, tb->data, bytes) == 0;
    else ok_other &= memcmp(t0->data, tb->data, bytes) == 0;
  }
  CHECK(ok_stored, "stored tensors bit-exact");
  CHECK(ok_other, "other tensors untouched");

  /* model storing one more tensor than the file */
  b.params.t[b.pool_b].stored = 1;
  rc = pb_task_load(&b, p, NULL, NULL);
  CHECK(rc == PB_ERR_NOTFOUND && strstr(pb_last_error(), "bert.pooler.dense.bias") && strstr(pb_last_error(), "task.safetensors"),
        "extra stored rc=%d %s", rc, pb_last_error());
  printf("  model stores more -> %s\n", pb_last_error());
  b.params.t[b.pool_b].stored = 0;
  /* model storing one fewer */
  b.params.t[b.layer[1].qw].stored = 0;
  rc = pb_task_load(&b, p, NULL, NULL);
  CHECK(rc == PB_ERR_NOTFOUND && strstr(pb_last_error(), "layer.1.attention.self.query.weight"), "fewer rc=%d %s", rc,
        pb_last_error());
  printf("  model stores less -> %s\n", pb_last_error());
  b.params.t[b.layer[1].qw].stored = 1;
  /* shape mismatch: a model with 2 labels */
  pb_config c2 = c;
  c2.num_labels = 2;
  pb_model e;
  if (make_model(&e, &c2, 3) == PB_OK) {
    e.params.t[e.layer[1].qw].stored = 1;
    rc = pb_task_load(&e, p, NULL, NULL);
    CHECK(rc == PB_ERR_SHAPE && strstr(pb_last_error(), "classifier"), "label count rc=%d %s", rc, pb_last_error());
    printf("  other label count -> %s\n", pb_last_error());
    pb_model_free(&e);
  }
  /* an HF model file is not a task file */
  char hf[512];
  path_of(hf, sizeof hf, "hf/model.safetensors");
  rc = pb_task_load(&b, hf, NULL, NULL);
  CHECK(rc == PB_ERR_FORMAT && strstr(pb_last_error(), "not a peftbench task file"), "hf as task rc=%d %s", rc, pb_last_error());
  rc = pb_task_read_meta(hf, &m, &nm);
  CHECK(rc == PB_ERR_FORMAT && m == NULL, "hf read_meta rc=%d", rc);
  /* reserved metadata key */
  pb_kv bad[1] = {{"format", "x"}};
  rc = pb_task_save(&a, p, bad, 1);
  CHECK(rc == PB_ERR_ARG, "reserved key rc=%d", rc);

  /* failed saves leave the existing file untouched */
  char *orig = NULL;
  size_t orig_len = 0;
  pb_read_file(p, &orig, &orig_len);
  char nd[600];
  path_of(nd, sizeof nd, "no_such_dir/task.safetensors");
  rc = pb_task_save(&a, nd, meta, 3);
  CHECK(rc == PB_ERR_IO && strstr(pb_last_error(), "no_such_dir/task.safetensors"), "nonexistent dir rc=%d %s", rc,
        pb_last_error());
  printf("  nonexistent dir -> %s\n", pb_last_error());
  /* the tmp name is taken by a directory: the tmp file cannot be created */
  char tmpname[700];
  snprintf(tmpname, sizeof tmpname, "%s.tmp.%ld", p, (long)getpid());
  mkdir(tmpname, 0755);
  a.params.t[a.cls_b].data[0] += 1.0f;
  rc = pb_task_save(&a, p, meta, 3);
  CHECK(rc == PB_ERR_IO, "blocked tmp rc=%d %s", rc, pb_last_error());
  printf("  tmp blocked -> %s\n", pb_last_error());
  CHECK(orig && file_equals(p, orig, orig_len), "file untouched after failed save (tmp blocked)");
  rmdir(tmpname);
  /* non-finite stored value: nothing written */
  a.params.t[a.cls_w].data[1] = INFINITY;
  rc = pb_task_save(&a, p, meta, 3);
  CHECK(rc == PB_ERR_NUMERIC && strstr(pb_last_error(), "classifier.weight"), "inf save rc=%d %s", rc, pb_last_error());
  CHECK(orig && file_equals(p, orig, orig_len), "file untouched after failed save (inf)");
  /* read-only directory (only meaningful when not root) */
  if (geteuid() != 0) {
    a.params.t[a.cls_w].data[1] = 0.5f;
    chmod(g_dir, 0555);
    rc = pb_task_save(&a, p, meta, 3);
    chmod(g_dir, 0755);
    CHECK(rc == PB_ERR_IO && strstr(pb_last_error(), "task.safetensors"), "read-only dir rc=%d %s", rc, pb_last_error());
    CHECK(orig && file_equals(p, orig, orig_len), "file untouched after failed save (read-only dir)");
  } else {
    printf("  (running as root: read-only directory case skipped; the blocked-tmp case covers it)\n");
  }
  free(orig);
  pb_model_free(&before);
  pb_model_free(&a);
  pb_model_free(&b);
}

int main(void) {
  snprintf(g_dir, sizeof g_dir, "/tmp/pb_test_ckpt_XXXXXX");
  if (!mkdtemp(g_dir)) {
    printf("mkdtemp failed\n");
    return 2;
  }
  test_hf_roundtrip();
  test_config_errors();
  test_task_files();
  char cmd[600];
  snprintf(cmd, sizeof cmd, "rm -rf '%s'", g_dir);
  if (system(cmd) != 0) printf("warning: could not remove %s\n", g_dir);
  printf("%d checks, %d failed\n", checks, failures);
  return failures ? 1 : 0;
}
