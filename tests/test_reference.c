/* Reference test: the C BERT against the PyTorch float64 fixtures of tools/reference/make_fixture.py.
 *
 * For each fixture (tests/fixtures/tiny_bert_ref.safetensors: C=3 cross-entropy;
 * tests/fixtures/tiny_bert_reg_ref.safetensors: C=1 mean squared error) it loads the HF
 * checkpoint folder named by the fixture's metadata with the checkpoint loader, turns every
 * tensor trainable (full fine-tuning), and compares
 *   - logits [B,C]          max|c - ref| <= tol.logits_abs * max(1, max|ref|)
 *   - loss                  |c - ref|    <= tol.loss_abs   * max(1, |ref|)
 *   - every gradient        per tensor: max|c - ref| <= tol.grad_rel * max(1, max|ref|)
 *   - 5 AdamW losses        |c - ref|    <= tol.adamw_loss_abs (loss before each step)
 *   - final parameters      per tensor: max|c - ref| <= tol.final_abs (after the 5 steps)
 * with the tolerances stored in the fixture's metadata ("tolerances", JSON). It prints the worst
 * error of every tensor and exits non-zero on any mismatch. A self-check first makes sure the
 * comparison rejects a gradient perturbed by just over its tolerance. */
#include <cjson/cJSON.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "backbone/bert.h"
#include "backbone/checkpoint.h"
#include "backbone/params.h"
#include "backbone/safetensors.h"
#include "util/status.h"
#include "tests/check.h"

#define REQUIRE_OK(expr)                                                                          \
  do {                                                                                          \
    int rc_ = (expr);                                                                           \
    if (rc_ != PB_OK) {                                                                         \
      printf("FAIL %s:%d: %s -> %s: %s\n", __FILE__, __LINE__, #expr, pb_status_name(rc_),     \
             pb_last_error());                                                                  \
      failures++;                                                                                 \
      goto done;                                                                                \
    }                                                                                           \
  } while (0)

typedef struct {
  double logits_abs, loss_abs, grad_rel, adamw_loss_abs, final_abs;
} tolerances;

/* max |a - b| over n values and max |b| (the reference) */
static void max_err(const float *a, const float *ref, size_t n, double *err, double *refmax, size_t *at) {
  *err = 0.0;
  *refmax = 0.0;
  *at = 0;
  for (size_t i = 0; i < n; i++) {
    double e = fabs((double)a[i] - (double)ref[i]);
    if (!(e <= *err)) { /* NaN counts as the worst */
      *err = isnan(e) ? INFINITY : e;
      *at = i;
    }
    if (fabs((double)ref[i]) > *refmax) *refmax = fabs((double)ref[i]);
  }
}

/* compares a [n] with ref [n]: allowed = tol * max(1, max|ref|) (scaled) or tol (absolute).
 * Prints one line; returns 1 if within tolerance. */
static int compare(const char *what, const float *a, const float *ref, size_t n, double tol, int scaled,
                   double *ratio_out, int verbose) {
  double err, refmax;
  size_t at;
  max_err(a, ref, n, &err, &refmax, &at);
  double allowed = scaled ? tol * fmax(1.0, refmax) : tol;
  int ok = err <= allowed;
  if (ratio_out) *ratio_out = err / allowed;
  if (verbose > 0 || (verbose == 0 && !ok)) /* verbose < 0: silent (self-check) */
    printf("  %-4s %-58s max|err| %.3e at [%zu] (c %.7g ref %.7g)  max|ref| %.3e  allowed %.1e\n", ok ? "ok" : "BAD",
           what, err, at, (double)a[at], (double)ref[at], refmax, allowed);
  return ok;
}

static int meta_int(const pb_st_file *f, const char *key, int *out) {
  const char *v = pb_kv_get(f->meta, f->n_meta, key);
  if (!v) return pb_set_error(PB_ERR_FORMAT, "%s: metadata key %s missing", f->path, key);
  *out = atoi(v);
  return PB_OK;
}

static int read_tol(const pb_st_file *f, tolerances *tol) {
  const char *v = pb_kv_get(f->meta, f->n_meta, "tolerances");
  if (!v) return pb_set_error(PB_ERR_FORMAT, "%s: metadata key tolerances missing", f->path);
  cJSON *j = cJSON_Parse(v);
  if (!j) return pb_set_error(PB_ERR_FORMAT, "%s: tolerances is not JSON", f->path);
  const char *keys[5] = {"logits_abs", "loss_abs", "grad_rel", "adamw_loss_abs", "final_abs"};
  double *dst[5] = {&tol->logits_abs, &tol->loss_abs, &tol->grad_rel, &tol->adamw_loss_abs, &tol->final_abs};
  int rc = PB_OK;
  for (int i = 0; i < 5; i++) {
    cJSON *x = cJSON_GetObjectItemCaseSensitive(j, keys[i]);
    if (!cJSON_IsNumber(x) || !(x->valuedouble > 0)) {
      rc = pb_set_error(PB_ERR_FORMAT, "%s: tolerance %s missing", f->path, keys[i]);
      break;
    }
    *dst[i] = x->valuedouble;
  }
  cJSON_Delete(j);
  return rc;
}

/* reads a fixture tensor that must have exactly n elements into a fresh buffer */
static float *read_ref(const pb_st_file *f, const char *name, size_t n) {
  int idx = pb_st_find(f, name);
  if (idx < 0) {
    printf("FAIL: %s: tensor %s missing\n", f->path, name);
    failures++;
    return NULL;
  }
  if (f->t[idx].numel != n) {
    printf("FAIL: %s: tensor %s has %zu elements, expected %zu\n", f->path, name, f->t[idx].numel, n);
    failures++;
    return NULL;
  }
  float *buf = malloc((n ? n : 1) * sizeof(float));
  if (!buf || pb_st_read_f32(f, idx, buf, n) != PB_OK) {
    printf("FAIL: %s: reading %s: %s\n", f->path, name, pb_last_error());
    failures++;
    free(buf);
    return NULL;
  }
  return buf;
}

/* the comparison must reject an error just above tolerance and accept one just below */
static void self_check(void) {
  float ref[4] = {0.5f, -2.0f, 0.25f, 1e-17f}, c[4];
  double tol = 1e-4;
  memcpy(c, ref, sizeof c);
  c[2] += (float)(1.5 * tol * 2.0); /* allowed = tol * max(1, 2) */
  CHECK(!compare("self-check: perturbed", c, ref, 4, tol, 1, NULL, -1),
        "the comparison accepted a perturbed gradient");
  memcpy(c, ref, sizeof c);
  c[2] += (float)(0.5 * tol * 2.0);
  CHECK(compare("self-check: under tolerance", c, ref, 4, tol, 1, NULL, -1),
        "the comparison rejected an error under tolerance");
  c[1] = NAN;
  CHECK(!compare("self-check: NaN", c, ref, 4, tol, 1, NULL, -1), "the comparison accepted a NaN");
  printf("  self-check of the comparison: %s\n", failures ? "FAILED" : "rejects a perturbation and a NaN, accepts noise");
}

static void run_fixture(const char *ref_path, int regression) {
  printf("== %s\n", ref_path);
  const int fail0 = failures; /* failures before this fixture */
  pb_st_file f;
  memset(&f, 0, sizeof f);
  pb_model m;
  memset(&m, 0, sizeof m);
  int have_file = 0, have_model = 0;
  float *fids = NULL, *ftypes = NULL, *fmask = NULL, *flabels = NULL, *rlogits = NULL, *rloss = NULL,
        *radam = NULL, *rg = NULL;
  int *ids = NULL, *types = NULL, *mask = NULL, *labels = NULL;
  int B = 0, T = 0, C = 0;
  tolerances tol;

  REQUIRE_OK(pb_st_open(&f, ref_path));
  have_file = 1;
  const char *magic = pb_kv_get(f.meta, f.n_meta, "magic");
  CHECK(magic && strcmp(magic, "peftbench-fixture") == 0, "%s: bad magic", ref_path);
  REQUIRE_OK(meta_int(&f, "B", &B));
  REQUIRE_OK(meta_int(&f, "T", &T));
  REQUIRE_OK(meta_int(&f, "C", &C));
  REQUIRE_OK(read_tol(&f, &tol));
  CHECK(B > 0 && T > 0 && C > 0 && (C == 1) == regression, "%s: B %d T %d C %d", ref_path, B, T, C);
  if (failures > fail0) goto done;
  printf("  B %d T %d C %d; tolerances: logits %.0e loss %.0e grad %.0e (x max(1,max|ref|)) adamw-loss %.0e "
         "final %.0e\n",
         B, T, C, tol.logits_abs, tol.loss_abs, tol.grad_rel, tol.adamw_loss_abs, tol.final_abs);

  /* checkpoint folder beside the fixture */
  const char *ck = pb_kv_get(f.meta, f.n_meta, "checkpoint");
  CHECK(ck != NULL, "%s: metadata key checkpoint missing", ref_path);
  if (!ck) goto done;
  char dir[512];
  const char *slash = strrchr(ref_path, '/');
  snprintf(dir, sizeof dir, "%.*s%s", slash ? (int)(slash - ref_path + 1) : 0, ref_path, ck);

  pb_config cfg;
  memset(&cfg, 0, sizeof cfg);
  cfg.num_labels = C; /* the caller's choice; config.json's id2label is not consulted */
  char cfg_path[600];
  snprintf(cfg_path, sizeof cfg_path, "%s/config.json", dir);
  REQUIRE_OK(pb_config_load_hf(cfg_path, &cfg));
  CHECK(cfg.vocab_size == 99 && cfg.hidden == 32 && cfg.layers == 2 && cfg.heads == 4 && cfg.ffn == 48 &&
            cfg.max_pos == 40 && cfg.type_vocab == 2 && cfg.ln_eps == 1e-12f,
        "%s: config read as V %d d %d L %d A %d F %d P %d types %d eps %g", cfg_path, cfg.vocab_size, cfg.hidden,
        cfg.layers, cfg.heads, cfg.ffn, cfg.max_pos, cfg.type_vocab, (double)cfg.ln_eps);
  CHECK(cfg.num_labels == C, "config num_labels %d != fixture C %d", cfg.num_labels, C);
  CHECK(cfg.hidden_dropout == 0.0f && cfg.attn_dropout == 0.0f, "fixture config must have dropout 0");
  if (failures > fail0) goto done;
  REQUIRE_OK(pb_model_declare(&m, &cfg));
  have_model = 1;
  for (int i = 0; i < m.params.n; i++) m.params.t[i].trainable = 1; /* full fine-tuning */
  REQUIRE_OK(pb_model_alloc(&m, B, T));
  REQUIRE_OK(pb_model_load_hf(&m, dir));
  { /* the loader put every checkpoint tensor (classifier included) into the table, bit-exact */
    char st_path[600];
    snprintf(st_path, sizeof st_path, "%s/model.safetensors", dir);
    pb_st_file ck_f;
    REQUIRE_OK(pb_st_open(&ck_f, st_path));
    int n_diff = 0;
    for (int i = 0; i < m.params.n; i++) {
      pb_tensor *t = &m.params.t[i];
      free(rg);
      rg = malloc(t->numel * sizeof(float));
      if (!rg || pb_st_read_f32_name(&ck_f, t->name, rg, t->numel) != PB_OK) {
        printf("FAIL: %s: %s\n", st_path, pb_last_error());
        n_diff++;
        continue;
      }
      if (memcmp(rg, t->data, t->numel * sizeof(float)) != 0) {
        printf("FAIL: %s differs from %s after pb_model_load_hf\n", t->name, st_path);
        n_diff++;
      }
    }
    pb_st_close(&ck_f);
    CHECK(n_diff == 0, "%d tensors not loaded as stored", n_diff);
    printf("  loaded %s: %d tensors, %zu values, all equal to the file\n", dir, m.params.n,
           pb_params_count(&m.params, -1, 0, 0));
  }

  /* the batch */
  size_t N = (size_t)B * T;
  fids = read_ref(&f, "input_ids", N);
  ftypes = read_ref(&f, "token_type_ids", N);
  fmask = read_ref(&f, "attention_mask", N);
  flabels = read_ref(&f, "labels", (size_t)B);
  rlogits = read_ref(&f, "logits", (size_t)B * C);
  rloss = read_ref(&f, "loss", 1);
  radam = read_ref(&f, "adamw_losses", 5);
  ids = malloc(N * sizeof(int));
  types = malloc(N * sizeof(int));
  mask = malloc(N * sizeof(int));
  labels = malloc((size_t)B * sizeof(int));
  if (failures > fail0 || !ids || !types || !mask || !labels) goto done;
  for (size_t i = 0; i < N; i++) {
    ids[i] = (int)fids[i];
    types[i] = (int)ftypes[i];
    mask[i] = (int)fmask[i];
  }
  for (int b = 0; b < B; b++) labels[b] = (int)flabels[b];

  /* every model tensor has a reference gradient and vice versa */
  int n_grad_ref = 0;
  for (int i = 0; i < f.n; i++) n_grad_ref += strncmp(f.t[i].name, "grad.", 5) == 0;
  CHECK(n_grad_ref == m.params.n, "fixture has %d gradients, the model %d tensors", n_grad_ref, m.params.n);

  pb_adamw opt;
  pb_adamw_defaults(&opt); /* lr 1e-3, 0.9, 0.999, 1e-8, wd 0.01 (ndim >= 2), constant: as the fixture */
  const int steps = 5;
  double worst_ratio = 0.0;
  const char *worst_name = "";
  for (int s = 0; s < steps; s++) {
    pb_params_zero_grad(&m.params);
    float loss = NAN;
    REQUIRE_OK(pb_forward(&m, ids, types, mask, B, T, regression ? NULL : labels, regression ? flabels : NULL, 0,
                        0, &loss));
    REQUIRE_OK(pb_backward(&m));
    if (s == 0) {
      printf(" forward/backward at the checkpoint:\n");
      CHECK(compare("logits", m.acts.logits, rlogits, (size_t)B * C, tol.logits_abs, 1, NULL, 1),
            "logits mismatch");
      CHECK(compare("loss", &loss, rloss, 1, tol.loss_abs, 1, NULL, 1), "loss mismatch");
      int bad = 0;
      for (int i = 0; i < m.params.n; i++) {
        pb_tensor *t = &m.params.t[i];
        char name[PB_NAME_MAX + 8];
        snprintf(name, sizeof name, "grad.%s", t->name);
        free(rg);
        rg = read_ref(&f, name, t->numel);
        if (!rg) continue;
        double ratio;
        int ok = compare(name, t->grad, rg, t->numel, tol.grad_rel, 1, &ratio, 1);
        if (!ok) bad++;
        if (ratio > worst_ratio || isnan(ratio)) {
          worst_ratio = isnan(ratio) ? INFINITY : ratio;
          worst_name = t->name;
        }
      }
      printf("  gradients: %d tensors, %d over tolerance; worst %s at %.3g of its tolerance\n", m.params.n, bad,
             worst_name, worst_ratio);
      CHECK(bad == 0, "%d gradient tensors mismatch (worst %s)", bad, worst_name);
    }
    printf("  adamw step %d: loss before c %.7f ref %.7f |err| %.2e (allowed %.0e)\n", s + 1, (double)loss,
           (double)radam[s], fabs((double)loss - (double)radam[s]), tol.adamw_loss_abs);
    CHECK(fabs((double)loss - (double)radam[s]) <= tol.adamw_loss_abs, "adamw loss %d mismatch", s + 1);
    REQUIRE_OK(pb_adamw_step(&m.params, &opt, s + 1));
  }
  CHECK(radam[steps - 1] < radam[0], "reference losses do not decrease (degenerate fixture)");

  /* final parameters after the 5 steps */
  int n_final = 0;
  for (int i = 0; i < f.n; i++) {
    if (strncmp(f.t[i].name, "final.", 6) != 0) continue;
    n_final++;
    const char *pname = f.t[i].name + 6;
    int idx = pb_params_find(&m.params, pname);
    CHECK(idx >= 0, "final.%s: no such model tensor", pname);
    if (idx < 0) continue;
    free(rg);
    rg = read_ref(&f, f.t[i].name, m.params.t[idx].numel);
    if (!rg) continue;
    CHECK(compare(f.t[i].name, m.params.t[idx].data, rg, m.params.t[idx].numel, tol.final_abs, 0, NULL, 1),
          "%s mismatch", f.t[i].name);
  }
  CHECK(n_final >= 2, "fixture has %d final.* tensors, expected 2", n_final);

done:
  free(fids); free(ftypes); free(fmask); free(flabels); free(rlogits); free(rloss); free(radam); free(rg);
  free(ids); free(types); free(mask); free(labels);
  if (have_model) pb_model_free(&m);
  if (have_file) pb_st_close(&f);
}

int main(void) {
  printf("test_reference: C BERT vs PyTorch float64 reference (tools/reference/make_fixture.py)\n");
  self_check();
  run_fixture("tests/fixtures/tiny_bert_ref.safetensors", 0);
  run_fixture("tests/fixtures/tiny_bert_reg_ref.safetensors", 1);
  if (failures) {
    printf("test_reference: %d FAILURE(S)\n", failures);
    return 1;
  }
  printf("test_reference: all checks passed\n");
  return 0;
}
