/* Fine-tuning parity with Hugging Face's Trainer: the real `peftbench run` against a plain-torch
 * loop (tools/reference/make_finetune_fixture.py -> tests/fixtures/finetune_parity.json).
 *
 * For full fine-tuning, LoRA, Adapter (Pfeiffer) and LayerConnect: the same checkpoint
 * (tests/fixtures/finetune_bert), the same 16 training sentences written here as an official-layout
 * SST-2 folder, --batch 16 (every step sees all of them: the shuffle order does not matter),
 * dropout 0, 50 steps, --warmup 0.1 (5 steps, the first at lr 0), --weight-decay 0.1,
 * --max-grad-norm 1 (clipping triggers on 9 to 33 of the 50 steps). Checked per method:
 *  - every step's loss (train.loss_curve) against the reference, |c - ref| <= tol * max(1, |ref|);
 *  - every step's gradient norm before clipping (train.grad_norm_curve), relative;
 *  - train.clipped_steps, warmup_steps, schedule, max_grad_norm (and config.max_grad_norm), and
 *    the optimizer's counted FLOPs (clipping + AdamW) == steps x the analytic step;
 *  - the final values of a few parameters, read back from the task file the run wrote.
 * Tolerances come from the fixture (measured errors are 5-10x below them; see the script).
 * Units: the HF and one-based schedules (backbone/params.c pb_adamw_lr), gradient clipping
 * (pb_params_clip_grad_norm: formula, max_norm 0, non-finite norms, op counts) and the weight
 * decay flags of every method (HF's rule: no decay for biases and LayerNorm weights).
 * Needs the built CLI ($PEFTBENCH_BIN, set by CMake); runs from the repo root. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cjson/cJSON.h>

#include "util/fileio.h"
#include "backbone/params.h"
#include "backbone/safetensors.h"
#include "harness/opsreport.h"
#include "tests/check.h"

#define FIXTURE "tests/fixtures/finetune_parity.json"

static char dir[] = "/tmp/pb_ftparity_XXXXXX";

static double num(const cJSON *o, const char *key) {
  const cJSON *j = cJSON_GetObjectItemCaseSensitive(o, key);
  return cJSON_IsNumber(j) ? j->valuedouble : NAN;
}

/* ---------------------------------------------------------------- units */

static void test_schedules(void) {
  pb_adamw o;
  pb_adamw_defaults(&o);
  CHECK(o.schedule == PB_SCHED_ONE_BASED, "default schedule must stay the one-based one (pretrain)");
  o.lr = 1e-3f;
  o.warmup_steps = 5;
  o.total_steps = 50;
  /* one-based (pretrain): t/W up to t = W, the last step at 0 */
  CHECK(pb_adamw_lr(&o, 1) == o.lr * 1.0f / 5.0f, "one-based lr(1) %g", (double)pb_adamw_lr(&o, 1));
  CHECK(pb_adamw_lr(&o, 5) == o.lr, "one-based lr(5) %g", (double)pb_adamw_lr(&o, 5));
  CHECK(pb_adamw_lr(&o, 50) == 0.0f, "one-based lr(50) %g", (double)pb_adamw_lr(&o, 50));
  /* HF: s = t-1; s/W for s < W, then (T-s)/(T-W) */
  o.schedule = PB_SCHED_HF;
  for (int t = 1; t <= 50; t++) {
    const int s = t - 1;
    const double f = s < 5 ? s / 5.0 : (50.0 - s) / 45.0;
    const float want = (float)((double)o.lr * f);
    CHECK(pb_adamw_lr(&o, t) == want, "hf lr(%d) = %.9g, want %.9g", t, (double)pb_adamw_lr(&o, t), (double)want);
  }
  CHECK(pb_adamw_lr(&o, 1) == 0.0f && pb_adamw_lr(&o, 6) == o.lr && pb_adamw_lr(&o, 50) > 0.0f,
        "hf: first step at 0, peak at t = W+1, the last step still moves");
  CHECK(pb_adamw_lr(&o, 51) == 0.0f && pb_adamw_lr(&o, 60) == 0.0f, "hf: beyond T the lr is clamped at 0");
  o.warmup_steps = 0; /* no warm-up: the first step at the peak */
  CHECK(pb_adamw_lr(&o, 1) == o.lr && pb_adamw_lr(&o, 50) == (float)((double)o.lr / 50.0), "hf without warm-up");
  o.total_steps = 0; /* constant */
  CHECK(pb_adamw_lr(&o, 1) == o.lr && pb_adamw_lr(&o, 1000) == o.lr, "hf constant");
  o.warmup_steps = 50;
  o.total_steps = 50; /* T = W: max(1, T-W) in the denominator */
  CHECK(pb_adamw_lr(&o, 50) == (float)((double)o.lr * 49.0 / 50.0), "hf T = W");
}

static void test_clipping(void) {
  pb_params p;
  memset(&p, 0, sizeof p);
  const int s1[1] = {3}, s2[2] = {2, 2};
  CHECK_OK(pb_params_add(&p, "a.bias", PB_OWNER_HEAD, 1, s1, PB_INIT_ZERO, 0) < 0 ? PB_ERR_ARG : PB_OK);
  CHECK_OK(pb_params_add(&p, "b.weight", PB_OWNER_HEAD, 2, s2, PB_INIT_ZERO, 0) < 0 ? PB_ERR_ARG : PB_OK);
  p.t[0].trainable = p.t[1].trainable = 1;
  CHECK_OK(pb_params_alloc(&p));
  static const float g0[7] = {3, -4, 12, 0.5f, -0.25f, 1, 2};
  double ss = 0;
  for (int i = 0; i < 7; i++) ss += (double)g0[i] * g0[i];
  const double want_norm = sqrt(ss);
  int clipped = -1;
  /* above the max: scaled by max / (norm + 1e-6), as torch */
  memcpy(p.grad_mem, g0, sizeof g0);
  pb_opc_reset();
  pb_opc_enable(1);
  int prev = pb_opc_set_owner(PB_OPO_OPTIM);
  double n = pb_params_clip_grad_norm(&p, 1.0, PB_CLIP_EPS_TORCH, &clipped);
  pb_opc_set_owner(prev);
  pb_opc_enable(0);
  /* closed form of clipping n = 7 elements with max_norm > 0: 2n (squares, sum) + 1 sqrt for the
   * norm, n + 2 for the coefficient and the scaling */
  pb_opcounts got = pb_opc_snapshot(), want = {{{0}}};
  want.c[PB_OPO_OPTIM][PB_OPK_FLOP] = 3 * 7 + 2;
  want.c[PB_OPO_OPTIM][PB_OPK_TRANS] = 1;
  CHECK(memcmp(&got, &want, sizeof got) == 0, "clipping op counts: %llu FLOP %llu TRANS, analytic %llu %llu",
        (unsigned long long)got.c[PB_OPO_OPTIM][PB_OPK_FLOP], (unsigned long long)got.c[PB_OPO_OPTIM][PB_OPK_TRANS],
        (unsigned long long)want.c[PB_OPO_OPTIM][PB_OPK_FLOP], (unsigned long long)want.c[PB_OPO_OPTIM][PB_OPK_TRANS]);
  CHECK(n == want_norm && clipped == 1, "norm %.17g want %.17g, clipped %d", n, want_norm, clipped);
  const float sc = (float)(1.0 / (want_norm + 1e-6));
  for (int i = 0; i < 7; i++) CHECK(p.grad_mem[i] == g0[i] * sc, "clipped g[%d] = %.9g", i, (double)p.grad_mem[i]);
  /* below the max: untouched */
  memcpy(p.grad_mem, g0, sizeof g0);
  n = pb_params_clip_grad_norm(&p, 100.0, PB_CLIP_EPS_TORCH, &clipped);
  CHECK(n == want_norm && clipped == 0 && memcmp(p.grad_mem, g0, sizeof g0) == 0, "below max_norm: untouched");
  /* the eps: a norm equal to max_norm is still scaled, by max/(norm+eps) < 1 */
  n = pb_params_clip_grad_norm(&p, want_norm, PB_CLIP_EPS_TORCH, &clipped);
  CHECK(clipped == 1, "norm == max_norm: torch scales by max/(norm+1e-6) < 1");
  memcpy(p.grad_mem, g0, sizeof g0);
  n = pb_params_clip_grad_norm(&p, want_norm, 0.0, &clipped); /* pretrain's eps 0: strictly above only */
  CHECK(clipped == 0 && memcmp(p.grad_mem, g0, sizeof g0) == 0, "eps 0, norm == max: untouched");
  /* max_norm 0: the norm only */
  n = pb_params_clip_grad_norm(&p, 0.0, PB_CLIP_EPS_TORCH, &clipped);
  CHECK(n == want_norm && clipped == 0 && memcmp(p.grad_mem, g0, sizeof g0) == 0, "max_norm 0: untouched");
  /* a non-finite norm leaves the gradients as they are */
  memcpy(p.grad_mem, g0, sizeof g0);
  p.grad_mem[2] = INFINITY;
  n = pb_params_clip_grad_norm(&p, 1.0, PB_CLIP_EPS_TORCH, &clipped);
  CHECK(isinf(n) && clipped == 0 && p.grad_mem[0] == g0[0], "non-finite norm: untouched, returned");
  pb_params_free(&p);
}

/* HF's Trainer rule (get_decay_parameter_names): no decay for biases and LayerNorm weights.
 * LayerConnect's anchors are gains and biases, declared no-decay by methods/layerconnect.c. */
static int hf_decays(const char *name) {
  return !(strstr(name, "bias") || strstr(name, "LayerNorm") || strncmp(name, "layerconnect.", 13) == 0);
}

static void test_decay_flags(void) {
  static const struct {
    const char *method;
    const char *opts[3];
  } cases[] = {{"full", {NULL}},
               {"lora", {"targets=all", NULL}},
               {"adapter", {"mode=houlsby", "train_ln=1", NULL}},
               {"adapter", {NULL}},
               {"layerconnect", {NULL}},
               {"layerconnect", {"form=rank1", NULL}}};
  pb_config cfg;
  pb_test_tiny_config(&cfg, 0.0f);
  for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
    pb_model m;
    pb_method_inst mi;
    CHECK_OK(pb_ops_model_build(&m, &mi, &cfg, cases[c].method, cases[c].opts));
    int ntrain = 0;
    for (int i = 0; i < m.params.n; i++) {
      const pb_tensor *t = &m.params.t[i];
      if (!t->trainable) continue;
      ntrain++;
      CHECK(t->decay == hf_decays(t->name), "%s: %s has decay %d, HF's Trainer rule says %d", cases[c].method,
            t->name, t->decay, hf_decays(t->name));
    }
    CHECK(ntrain > 2, "%s: only %d trainable tensors", cases[c].method, ntrain);
    pb_method_destroy(&mi);
    pb_model_free(&m);
  }
}

/* ---------------------------------------------------------------- the runs */

static int write_split(const cJSON *rows, const char *path) {
  FILE *f = fopen(path, "w");
  if (!f) return 1;
  fputs("sentence\tlabel\n", f);
  const cJSON *r;
  cJSON_ArrayForEach(r, rows) {
    fprintf(f, "%s\t%d\n", cJSON_GetObjectItem(r, "sentence")->valuestring,
            cJSON_GetObjectItem(r, "label")->valueint);
  }
  return fclose(f) != 0;
}

static cJSON *last_record(const char *path) {
  char *text = NULL;
  size_t len = 0;
  if (pb_read_file(path, &text, &len)) return NULL;
  char *last = text, *p = text;
  for (char *nl; (nl = strchr(p, '\n')) && nl[1]; p = nl + 1) last = nl + 1;
  cJSON *r = cJSON_Parse(last);
  free(text);
  return r;
}

static const cJSON *path_get(const cJSON *o, const char *path) {
  char buf[256];
  snprintf(buf, sizeof buf, "%s", path);
  for (char *k = strtok(buf, "."); k && o; k = strtok(NULL, ".")) o = cJSON_GetObjectItemCaseSensitive(o, k);
  return o;
}

static void run_method(const char *bin, const cJSON *fx, const cJSON *mref, const char *method) {
  const cJSON *st = cJSON_GetObjectItem(fx, "settings"), *tol = cJSON_GetObjectItem(fx, "tolerances");
  const double tol_loss = num(tol, "loss_abs"), tol_gn = num(tol, "grad_norm_rel"), tol_fin = num(tol, "final_abs");
  const int steps = (int)num(st, "steps");
  char opts[512] = "", cmd[4096], results[600];
  const cJSON *o;
  cJSON_ArrayForEach(o, cJSON_GetObjectItem(mref, "options")) {
    size_t k = strlen(opts);
    snprintf(opts + k, sizeof opts - k, " -o '%s'", o->valuestring);
  }
  snprintf(results, sizeof results, "%s/%s.jsonl", dir, method);
  snprintf(cmd, sizeof cmd,
           "'%s' run --task sst2 --method %s%s --model '%s' --data-dir '%s' --batch %d --steps %d --max-len %d "
           "--seed %d --dropout %.17g --max-grad-norm %.17g --lr %.17g --warmup %.17g --weight-decay %.17g "
           "--threads 1 --quiet --out '%s/out' --results '%s' > '%s/%s.log' 2>&1",
           bin, method, opts, cJSON_GetObjectItem(fx, "checkpoint")->valuestring, dir, (int)num(st, "batch"), steps,
           (int)num(st, "max_len"), (int)num(st, "seed"), num(st, "dropout"), num(st, "max_grad_norm"),
           num(mref, "lr"), num(st, "warmup_ratio"), num(st, "weight_decay"), dir, results, dir, method);
  int rc = system(cmd);
  CHECK(rc == 0, "%s: run failed (%d): %s", method, rc, cmd);
  if (rc) {
    snprintf(cmd, sizeof cmd, "cat '%s/%s.log'", dir, method);
    (void)system(cmd);
    return;
  }
  cJSON *r = last_record(results);
  CHECK(r != NULL, "%s: no result record in %s", method, results);
  if (!r) return;
  const cJSON *tr = cJSON_GetObjectItem(r, "train");
  const char *sched = cJSON_GetStringValue(cJSON_GetObjectItem(tr, "schedule"));
  CHECK(sched && strcmp(sched, "linear-hf") == 0, "%s: train.schedule %s", method, sched ? sched : "(none)");
  CHECK(num(tr, "steps") == steps, "%s: train.steps %g", method, num(tr, "steps"));
  CHECK(num(tr, "warmup_steps") == num(st, "warmup_steps"), "%s: warmup_steps %g, HF %g", method,
        num(tr, "warmup_steps"), num(st, "warmup_steps"));
  CHECK(num(tr, "max_grad_norm") == num(st, "max_grad_norm"), "%s: train.max_grad_norm %g", method,
        num(tr, "max_grad_norm"));
  CHECK(num(cJSON_GetObjectItem(r, "config"), "max_grad_norm") == num(st, "max_grad_norm"),
        "%s: config.max_grad_norm missing or wrong", method);
  CHECK(num(tr, "clipped_steps") == num(mref, "clipped_steps"), "%s: clipped on %g steps, the reference on %g",
        method, num(tr, "clipped_steps"), num(mref, "clipped_steps"));
  /* the optimizer's counted ops (clipping + AdamW, owner optimizer) are exactly steps x the analytic step */
  const double opt_meas = num(path_get(r, "ops.measured.train.flops"), "optimizer");
  const double opt_step = num(path_get(r, "ops.train_step.flops"), "optimizer");
  CHECK(opt_step > 0 && opt_meas == steps * opt_step, "%s: optimizer FLOPs measured %.0f, analytic %d x %.0f", method,
        opt_meas, steps, opt_step);
  const char *hs = cJSON_GetStringValue(path_get(r, "head.source"));
  CHECK(hs && strcmp(hs, "checkpoint") == 0, "%s: head.source %s (the head must be the checkpoint's)", method,
        hs ? hs : "(none)");

  /* per-step losses and gradient norms */
  const cJSON *curve = cJSON_GetObjectItem(tr, "loss_curve"), *gcurve = cJSON_GetObjectItem(tr, "grad_norm_curve");
  const cJSON *lref = cJSON_GetObjectItem(mref, "losses"), *gref = cJSON_GetObjectItem(mref, "grad_norms");
  CHECK(cJSON_GetArraySize(curve) == steps && cJSON_GetArraySize(gcurve) == steps && cJSON_GetArraySize(lref) == steps,
        "%s: %d losses and %d gradient norms recorded, %d steps", method, cJSON_GetArraySize(curve),
        cJSON_GetArraySize(gcurve), steps);
  double emax = 0, gmax = 0;
  int estep = 0, gstep = 0, bad = 0;
  for (int i = 0; i < steps && i < cJSON_GetArraySize(curve) && i < cJSON_GetArraySize(gcurve); i++) {
    const cJSON *pt = cJSON_GetArrayItem(curve, i), *gp = cJSON_GetArrayItem(gcurve, i);
    CHECK(cJSON_GetArrayItem(pt, 0)->valueint == i + 1 && cJSON_GetArrayItem(gp, 0)->valueint == i + 1,
          "%s: curve point %d is step %d", method, i, cJSON_GetArrayItem(pt, 0)->valueint);
    const double c = cJSON_GetArrayItem(pt, 1)->valuedouble, ref = cJSON_GetArrayItem(lref, i)->valuedouble;
    const double e = fabs(c - ref) / fmax(1.0, fabs(ref));
    if (!(e <= emax)) emax = e, estep = i + 1;
    if (!(e <= tol_loss) && bad++ < 5)
      CHECK(0, "%s: step %d loss %.9g, reference %.9g (|diff| %.3g > %.3g)", method, i + 1, c, ref, fabs(c - ref),
            tol_loss);
    const double gc = cJSON_GetArrayItem(gp, 1)->valuedouble, gr = cJSON_GetArrayItem(gref, i)->valuedouble;
    const double ge = fabs(gc - gr) / gr;
    if (!(ge <= gmax)) gmax = ge, gstep = i + 1;
    if (!(ge <= tol_gn) && bad++ < 5)
      CHECK(0, "%s: step %d gradient norm %.9g, reference %.9g (relative %.3g > %.3g)", method, i + 1, gc, gr, ge,
            tol_gn);
  }
  CHECK(bad == 0, "%s: %d loss or gradient-norm value(s) out of tolerance", method, bad);

  /* final parameters, from the task file */
  double fmaxe = 0;
  pb_st_file f;
  const char *tf = cJSON_GetStringValue(path_get(r, "storage.path"));
  const int opened = tf && pb_st_open(&f, tf) == PB_OK;
  CHECK(opened, "%s: cannot open the task file %s", method, tf ? tf : "(none)");
  if (opened) {
    const cJSON *fin;
    cJSON_ArrayForEach(fin, cJSON_GetObjectItem(mref, "final")) {
      const cJSON *vals = cJSON_GetObjectItem(fin, "values");
      const int n = cJSON_GetArraySize(vals);
      float *buf = malloc(sizeof(float) * (size_t)n);
      int ok = buf && pb_st_read_f32_name(&f, fin->string, buf, (size_t)n) == PB_OK;
      CHECK(ok, "%s: task file lacks %s [%d]: %s", method, fin->string, n, pb_last_error());
      double scale = 1.0, e = 0;
      for (int i = 0; ok && i < n; i++) scale = fmax(scale, fabs(cJSON_GetArrayItem(vals, i)->valuedouble));
      for (int i = 0; ok && i < n; i++) e = fmax(e, fabs(buf[i] - cJSON_GetArrayItem(vals, i)->valuedouble));
      CHECK(!ok || e <= tol_fin * scale, "%s: final %s differs by %.3g (> %.3g)", method, fin->string, e,
            tol_fin * scale);
      fmaxe = fmax(fmaxe, e / scale);
      free(buf);
    }
    pb_st_close(&f);
  }
  printf("  %-12s lr %-7g clipped %2.0f/%d steps: max loss error %.2e (step %d), grad norm %.2e rel (step %d), "
         "final params %.2e  [tolerances %.0e, %.0e, %.0e]\n",
         method, num(mref, "lr"), num(tr, "clipped_steps"), steps, emax, estep, gmax, gstep, fmaxe, tol_loss, tol_gn,
         tol_fin);
  cJSON_Delete(r);
}

int main(void) {
  test_schedules();
  test_clipping();
  test_decay_flags();

  const char *bin = getenv("PEFTBENCH_BIN");
  if (!bin || access(bin, X_OK) != 0) {
    printf("FAIL: PEFTBENCH_BIN (the built CLI) is not set or not executable\n");
    return 1;
  }
  char *text = NULL;
  size_t len = 0;
  CHECK_OK(pb_read_file(FIXTURE, &text, &len));
  cJSON *fx = cJSON_ParseWithLength(text, len);
  free(text);
  if (!fx) {
    printf("FAIL: %s is not valid JSON\n", FIXTURE);
    return 1;
  }
  if (!mkdtemp(dir)) return 1;
  char path[700];
  snprintf(path, sizeof path, "%s/SST-2", dir);
  mkdir(path, 0755);
  snprintf(path, sizeof path, "%s/SST-2/train.tsv", dir);
  CHECK(write_split(cJSON_GetObjectItem(fx, "train"), path) == 0, "cannot write %s", path);
  snprintf(path, sizeof path, "%s/SST-2/dev.tsv", dir);
  CHECK(write_split(cJSON_GetObjectItem(fx, "dev"), path) == 0, "cannot write %s", path);
  printf("fine-tuning parity with the HF Trainer loop (%s):\n", FIXTURE);
  const cJSON *m;
  int n_methods = 0;
  cJSON_ArrayForEach(m, cJSON_GetObjectItem(fx, "methods")) {
    run_method(bin, fx, m, m->string);
    n_methods++;
  }
  CHECK(n_methods == 4, "the fixture has %d methods, expected full, lora, adapter, layerconnect", n_methods);
  cJSON_Delete(fx);
  if (!failures) {
    char cmd[700];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    (void)system(cmd);
  } else {
    printf("(run outputs kept in %s)\n", dir);
  }
  printf("%d checks, %d failures\n", checks, failures);
  return failures ? 1 : 0;
}
