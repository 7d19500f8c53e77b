/* Parameter-shared backbones and ODE-step inference (backbone/share.h, pb_model_set_ode_steps):
 *  - plans and errors: G not dividing L, G < 1, S' < 1 or S' > S, ODE steps with an early-exit hook;
 *  - exact parameter counts (and what a full fine-tuning task file stores) for full (G=1), partial
 *    (G=2) and no (G=4) sharing, against the closed form computed here from the shapes;
 *  - exact inference op counts for every G and every S' = 1..S against the closed form (the
 *    backbone's per-step count, plus 2*N*d FLOPs per executed step for the two scaled residual
 *    updates when S' < S), and counting-only == instrumented real run for a training step at S' < S;
 *  - S' = S reproduces the plain forward bit for bit (also after another S' in between);
 *  - finite differences through the shared weights at S' < S (every step's gradient adds up in
 *    the one set), also with LoRA, Adapter and LayerConnect attached;
 *  - the kernels pb_add_scaled / pb_scale against their naive twins and their counts;
 *  - the ALBERT folder: names, config, identity mapping, a load giving back the same logits and
 *    fingerprint, refusals (mapping not the identity, groups not dividing, embedding_size);
 *  - a task file of a shared model (full fine-tuning) round trip; pb_share_init_from's mean. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cjson/cJSON.h>

#include "backbone/bert.h"
#include "backbone/checkpoint.h"
#include "backbone/ops.h"
#include "backbone/safetensors.h"
#include "backbone/share.h"
#include "counters/opcount.h"
#include "methods/method.h"
#include "util/fileio.h"
#include "util/status.h"
#include "tests/check.h"

enum { B = 3, T = 5, S4 = 4 };
static int ids[B * T], types[B * T], mask[B * T], labels[B];

/* V 50, d 16, L 4 steps, A 2, F 24, P 16, C 3 */
static void cfg4(pb_config *c, float dropout) {
  pb_test_tiny_config(c, dropout);
  c->layers = S4;
}

static float loss_of(pb_model *m) {
  float loss = NAN;
  if (pb_forward(m, ids, types, mask, B, T, labels, NULL, 0, 0, &loss)) printf("forward: %s\n", pb_last_error());
  return loss;
}

static size_t total_params(const pb_model *m) { return pb_params_count(&m->params, -1, 0, 0); }

/* ---------------------------------------------------------------- closed forms */

static size_t closed_params(size_t V, size_t d, size_t F, size_t P, size_t G, size_t C) {
  const size_t layer = 4 * (d * d + d) + 2 * d + (F * d + F) + (d * F + d) + 2 * d;
  return V * d + P * d + 2 * d + 2 * d + G * layer + d * d + d + C * d + C;
}

/* inference of B x T rows, S' executed steps (scaled: S' < S), no dropout, no labels */
static void closed_infer(pb_opcounts *o, size_t Bn, size_t Tn, size_t d, size_t A, size_t F, size_t C, size_t steps,
                         int scaled) {
  memset(o, 0, sizeof *o);
  const size_t N = Bn * Tn, Sc = Bn * A * Tn * Tn, hd = d / A;
  uint64_t *bb = o->c[PB_OPO_BACKBONE], *hh = o->c[PB_OPO_HEAD];
  bb[PB_OPK_FLOP] += 2 * N * d + 8 * N * d; /* embeddings sum, LayerNorm */
  bb[PB_OPK_TRANS] += N;
  for (size_t s = 0; s < steps; s++) {
    bb[PB_OPK_MAC] += 4 * N * d * d + 2 * Sc * hd + N * d * F + N * F * d;
    bb[PB_OPK_FLOP] += 4 * N * d + 6 * Sc + (scaled ? 2 : 1) * N * d + 8 * N * d + N * F + 4 * N * F + N * d +
                       (scaled ? 2 : 1) * N * d + 8 * N * d;
    bb[PB_OPK_TRANS] += Sc + N + N * F + N;
  }
  hh[PB_OPK_MAC] += Bn * d * d + Bn * d * C;
  hh[PB_OPK_FLOP] += Bn * d + Bn * C;
  hh[PB_OPK_TRANS] += Bn * d;
}

/* ---------------------------------------------------------------- plans, errors, counts */

static void plans_and_counts(void) {
  int plan[4];
  CHECK(pb_share_plan(4, 3, plan) == PB_ERR_ARG && strstr(pb_last_error(), "G=3") &&
            strstr(pb_last_error(), "do not divide the 4 layers"),
        "G=3 over 4 layers accepted or unclear (%s)", pb_last_error());
  printf("G not dividing L: %s\n", pb_last_error());
  CHECK(pb_share_plan(4, 0, plan) == PB_ERR_ARG, "G=0 accepted");
  CHECK_OK(pb_share_plan(4, 2, plan));
  CHECK(plan[0] == 0 && plan[1] == 0 && plan[2] == 1 && plan[3] == 1, "G=2 plan %d,%d,%d,%d", plan[0], plan[1], plan[2],
        plan[3]);
  pb_config c;
  cfg4(&c, 0.0f);
  pb_model m;
  CHECK(pb_model_declare_shared(&m, &c, 3) == PB_ERR_ARG, "declare_shared G=3 of 4 accepted");
  for (int G = 1; G <= 4; G *= 2) {
    CHECK_OK(pb_model_declare_shared(&m, &c, G));
    const size_t want = closed_params(50, 16, 24, 16, (size_t)G, 3);
    CHECK(total_params(&m) == want && pb_model_steps(&m) == 4 && m.cfg.layers == G && pb_model_share_groups(&m) == G,
          "G=%d: %zu parameters (closed form %zu), %d steps, %d sets", G, total_params(&m), want, pb_model_steps(&m),
          m.cfg.layers);
    CHECK(pb_model_is_shared(&m) == (G < 4), "G=%d: is_shared %d", G, pb_model_is_shared(&m));
    /* full fine-tuning stores every tensor once: the task file's parameters */
    pb_params_train_owner(&m.params, PB_OWNER_BACKBONE);
    CHECK(pb_params_count(&m.params, -1, 0, 1) == want && pb_params_count(&m.params, -1, 1, 0) == want,
          "G=%d: stored %zu / trainable %zu, expected %zu", G, pb_params_count(&m.params, -1, 0, 1),
          pb_params_count(&m.params, -1, 1, 0), want);
    printf("G=%d: %zu parameters (closed form %zu)\n", G, total_params(&m), want);
    /* inference op counts at every S': closed form */
    for (int Sp = 1; Sp <= 4; Sp++) {
      CHECK_OK(pb_model_set_ode_steps(&m, Sp));
      pb_opcounts got = {0}, want_c;
      CHECK_OK(pb_model_count(&m, B, T, PB_COUNT_INFER, &got));
      closed_infer(&want_c, B, T, 16, 2, 24, 3, (size_t)Sp, Sp < 4);
      CHECK(memcmp(&got, &want_c, sizeof got) == 0, "G=%d S'=%d: inference counts differ from the closed form "
            "(MAC %llu vs %llu, FLOP %llu vs %llu)", G, Sp,
            (unsigned long long)got.c[PB_OPO_BACKBONE][PB_OPK_MAC], (unsigned long long)want_c.c[PB_OPO_BACKBONE][PB_OPK_MAC],
            (unsigned long long)got.c[PB_OPO_BACKBONE][PB_OPK_FLOP], (unsigned long long)want_c.c[PB_OPO_BACKBONE][PB_OPK_FLOP]);
      if (G == 1) printf("G=1 S'=%d: %llu FLOPs for %d x %d\n", Sp, (unsigned long long)pb_opcounts_flops(&got, -1), B, T);
    }
    CHECK(pb_model_set_ode_steps(&m, 0) == PB_ERR_ARG && strstr(pb_last_error(), "S'=0"), "S'=0 accepted");
    CHECK(pb_model_set_ode_steps(&m, 5) == PB_ERR_ARG, "S'=5 of 4 accepted");
    if (G == 1) printf("S' < 1: %s\n", pb_last_error());
    pb_model_free(&m);
  }
}

/* counting-only == instrumented real run, training step at S' < S (backward scales too) */
static void train_counts(void) {
  pb_config c;
  cfg4(&c, 0.1f);
  pb_model m;
  CHECK_OK(pb_model_declare_shared(&m, &c, 2));
  pb_params_train_owner(&m.params, PB_OWNER_BACKBONE);
  CHECK_OK(pb_model_alloc(&m, B, T));
  pb_model_init_random(&m, 3);
  CHECK_OK(pb_model_set_ode_steps(&m, 3));
  pb_opcounts counted = {0};
  CHECK_OK(pb_model_count(&m, B, T, PB_COUNT_TRAIN, &counted));
  int zeros[B * T];
  memset(zeros, 0, sizeof zeros);
  int lab[B] = {0};
  pb_opc_reset();
  pb_opc_enable(1);
  CHECK_OK(pb_forward(&m, zeros, NULL, NULL, B, T, lab, NULL, 1, 0, NULL));
  CHECK_OK(pb_backward(&m));
  pb_opcounts real = pb_opc_snapshot();
  pb_opc_enable(0);
  CHECK(memcmp(&real, &counted, sizeof real) == 0, "S'=3 training step: counting-only and real counts differ");
  printf("S'=3 training step (G=2): %llu FLOPs, counting-only == real\n", (unsigned long long)pb_opcounts_flops(&real, -1));
  pb_model_free(&m);
}

/* ---------------------------------------------------------------- bit for bit, errors */

static int after_hook(void *ctx, int l, const float *h, int Bn, int Tn, int d, const int *rows, unsigned char *done,
                      float *loss) {
  (void)ctx, (void)l, (void)h, (void)Bn, (void)Tn, (void)d, (void)rows, (void)done, (void)loss;
  return PB_OK;
}
static const pb_hook_ops AFTER = {.version = PB_HOOKS_VERSION, .after_layer = after_hook};

static void plain_bit_for_bit(void) {
  pb_config c;
  cfg4(&c, 0.1f);
  for (int G = 1; G <= 4; G *= 2) {
    pb_model m;
    CHECK_OK(pb_model_declare_shared(&m, &c, G));
    CHECK_OK(pb_model_alloc(&m, B, T));
    pb_model_init_random(&m, 7);
    pb_test_perturb(&m, 8, 0);
    float l0, l1, l2;
    float *ref = malloc(sizeof(float) * B * 3);
    CHECK_OK(pb_forward(&m, ids, types, mask, B, T, labels, NULL, 1, 99, &l0)); /* training: dropout on */
    memcpy(ref, m.acts.logits, sizeof(float) * B * 3);
    CHECK_OK(pb_model_set_ode_steps(&m, 4));
    CHECK_OK(pb_forward(&m, ids, types, mask, B, T, labels, NULL, 1, 99, &l1));
    CHECK(l0 == l1 && memcmp(ref, m.acts.logits, sizeof(float) * B * 3) == 0, "G=%d: S'=S differs from the plain forward", G);
    CHECK_OK(pb_model_set_ode_steps(&m, 2));
    float l_half;
    CHECK_OK(pb_forward(&m, ids, types, mask, B, T, labels, NULL, 0, 0, &l_half));
    CHECK_OK(pb_model_set_ode_steps(&m, 4));
    CHECK_OK(pb_forward(&m, ids, types, mask, B, T, labels, NULL, 1, 99, &l2));
    CHECK(l0 == l2 && memcmp(ref, m.acts.logits, sizeof(float) * B * 3) == 0, "G=%d: S'=S after S'=2 differs", G);
    CHECK(l_half != l0, "G=%d: S'=2 gave the plain loss", G);
    printf("G=%d: S'=S loss %.9g == plain %.9g (bit for bit); S'=2 loss %.9g\n", G, (double)l1, (double)l0, (double)l_half);
    free(ref);
    pb_model_free(&m);
  }
  /* inference-only allocation (two alternating buffer sets): the same logits at S' = 3 */
  {
    pb_model a, b;
    CHECK_OK(pb_model_declare_shared(&a, &c, 1));
    CHECK_OK(pb_model_declare_shared(&b, &c, 1));
    CHECK_OK(pb_model_alloc(&a, B, T));
    CHECK_OK(pb_model_alloc_infer(&b, B, T));
    pb_model_init_random(&a, 9);
    pb_model_init_random(&b, 9);
    CHECK_OK(pb_model_set_ode_steps(&a, 3));
    CHECK_OK(pb_model_set_ode_steps(&b, 3));
    CHECK_OK(pb_forward(&a, ids, types, mask, B, T, NULL, NULL, 0, 0, NULL));
    CHECK_OK(pb_forward(&b, ids, types, mask, B, T, NULL, NULL, 0, 0, NULL));
    CHECK(b.infer_only && memcmp(a.acts.logits, b.acts.logits, sizeof(float) * B * 3) == 0,
          "S'=3: inference-only buffers give other logits");
    pb_model_free(&a);
    pb_model_free(&b);
  }
  /* an early-exit hook: ODE steps refused, the plain forward still works */
  pb_model m;
  CHECK_OK(pb_model_declare_shared(&m, &c, 1));
  CHECK_OK(pb_model_add_hooks(&m, &AFTER, NULL));
  CHECK_OK(pb_model_alloc(&m, B, T));
  CHECK(pb_model_set_ode_steps(&m, 2) == PB_ERR_UNSUPPORTED, "ODE steps with an after_layer hook accepted");
  printf("with early exit: %s\n", pb_last_error());
  CHECK_OK(pb_model_set_ode_steps(&m, 4));
  pb_model_free(&m);
}

/* ---------------------------------------------------------------- gradients */

/* measured: max |g - fd| 7.5e-5 on these models at eps 1e-2 in fp32; hence 3e-4 abs or 2e-3 rel */
static void gradients(void) {
  pb_config c;
  cfg4(&c, 0.0f);
  const int cases[][2] = {{1, 3}, {1, 2}, {2, 2}, {2, 3}, {4, 2}};
  for (size_t k = 0; k < sizeof cases / sizeof *cases; k++) {
    const int G = cases[k][0], Sp = cases[k][1];
    pb_model m;
    CHECK_OK(pb_model_declare_shared(&m, &c, G));
    for (int i = 0; i < m.params.n; i++) m.params.t[i].trainable = 1;
    CHECK_OK(pb_model_alloc(&m, B, T));
    pb_model_init_random(&m, 20 + k);
    pb_test_perturb(&m, 30 + k, 0);
    CHECK_OK(pb_model_set_ode_steps(&m, Sp));
    char what[64];
    snprintf(what, sizeof what, "G=%d S'=%d (h=%g) gradcheck", G, Sp, 4.0 / Sp);
    check_model_gradients(&m, loss_of, ids, 3, 1e-2f, 3e-4, 2e-3, what);
    pb_model_free(&m);
  }
  /* PEFT methods on a fully shared model at S' = 2: their tensors and the head */
  /* (Houlsby adapters with GELU: smooth, both sublayers; ReLU's kink would meet eps) */
  const char *methods[] = {"lora", "adapter", "layerconnect"};
  static const char *const ad_opts[] = {"mode=houlsby", "act=gelu", NULL};
  for (int k = 0; k < 3; k++) {
    pb_method_inst mi;
    pb_model m;
    CHECK_OK(pb_method_create(&mi, methods[k], k == 1 ? ad_opts : NULL));
    CHECK_OK(pb_model_declare_shared(&m, &c, 1));
    CHECK_OK(mi.m->attach(mi.ctx, &m));
    CHECK_OK(pb_model_alloc(&m, B, T));
    pb_model_init_random(&m, 40 + k);
    pb_test_perturb(&m, 50 + k, 0);
    /* method tensors away from their zero init (so every path carries gradient) */
    pb_rng r;
    pb_rng_seed(&r, 60 + k);
    for (int i = 0; i < m.params.n; i++)
      if (m.params.t[i].owner == PB_OWNER_METHOD)
        for (size_t j = 0; j < m.params.t[i].numel; j++) m.params.t[i].data[j] += 0.1f * pb_rng_normal(&r);
    m.params.version++;
    CHECK_OK(pb_model_set_ode_steps(&m, 2));
    char what[64];
    snprintf(what, sizeof what, "%s on G=1, S'=2 gradcheck", methods[k]);
    check_model_gradients(&m, loss_of, ids, 3, 1e-2f, 3e-4, 2e-3, what);
    pb_model_free(&m);
    pb_method_destroy(&mi);
  }
}

static void kernels(void) {
  enum { n = 1000 };
  float a[n], x[n], o1[n], o2[n];
  pb_rng r;
  pb_rng_seed(&r, 1);
  for (int i = 0; i < n; i++) a[i] = pb_rng_normal(&r), x[i] = pb_rng_normal(&r);
  pb_opc_reset();
  pb_opc_enable(1);
  pb_add_scaled(o1, a, x, 1.3333334f, n);
  pb_opcounts c1 = pb_opc_snapshot();
  pb_add_scaled_naive(o2, a, x, 1.3333334f, n);
  pb_opcounts c2 = pb_opc_snapshot();
  double worst = 0;
  for (int i = 0; i < n; i++) worst = fmax(worst, fabs((double)o1[i] - o2[i]));
  CHECK(worst < 1e-6 && pb_opcounts_kind(&c1, -1, PB_OPK_FLOP) == 2 * n &&
            pb_opcounts_kind(&c2, -1, PB_OPK_FLOP) == 4 * n,
        "add_scaled: %.2e off the naive twin, counts %llu", worst,
        (unsigned long long)pb_opcounts_kind(&c1, -1, PB_OPK_FLOP));
  pb_opc_reset();
  pb_scale(o1, x, 2.0f, n);
  pb_opcounts c3 = pb_opc_snapshot();
  pb_scale_naive(o2, x, 2.0f, n);
  CHECK(memcmp(o1, o2, sizeof o1) == 0 && pb_opcounts_kind(&c3, -1, PB_OPK_FLOP) == n, "scale differs from its twin");
  pb_opc_enable(0);
}

/* ---------------------------------------------------------------- ALBERT folder, task file */

static void rm_dir(const char *dir) {
  const char *files[] = {"config.json", "model.safetensors", "task.safetensors"};
  char p[256];
  for (int i = 0; i < 3; i++) {
    snprintf(p, sizeof p, "%s/%s", dir, files[i]);
    unlink(p);
  }
  rmdir(dir);
}

/* a model from dir as run builds it: config, declare, shapes/plan, alloc, load */
static int load_dir(pb_model *m, const char *dir) {
  pb_config c;
  char p[256];
  snprintf(p, sizeof p, "%s/config.json", dir);
  memset(&c, 0, sizeof c);
  c.num_labels = 3;
  int rc = pb_config_load_hf(p, &c);
  if (!rc) rc = pb_model_declare(m, &c);
  if (!rc) rc = pb_model_apply_hf_shape(m, dir);
  if (!rc) rc = pb_model_alloc(m, B, T);
  if (!rc) rc = pb_model_load_hf(m, dir);
  return rc;
}

static void set_json(const char *dir, const char *key, double v) {
  char p[256], *txt = NULL;
  size_t n = 0;
  snprintf(p, sizeof p, "%s/config.json", dir);
  CHECK_OK(pb_read_file(p, &txt, &n));
  cJSON *r = cJSON_Parse(txt);
  free(txt);
  cJSON_DeleteItemFromObject(r, key);
  cJSON_AddNumberToObject(r, key, v);
  char *s = cJSON_Print(r);
  CHECK_OK(pb_write_file_atomic(p, s, strlen(s)));
  free(s);
  cJSON_Delete(r);
}

static void albert_folder(void) {
  char n1[PB_NAME_MAX];
  CHECK(pb_albert_name("bert.encoder.layer.1.attention.self.query.weight", n1, sizeof n1) &&
            strcmp(n1, "albert.encoder.albert_layer_groups.1.albert_layers.0.attention.query.weight") == 0,
        "query name %s", n1);
  CHECK(pb_albert_name("bert.encoder.layer.0.output.LayerNorm.bias", n1, sizeof n1) &&
            strcmp(n1, "albert.encoder.albert_layer_groups.0.albert_layers.0.full_layer_layer_norm.bias") == 0,
        "output LayerNorm name %s", n1);
  CHECK(pb_albert_name("bert.encoder.layer.0.intermediate.dense.weight", n1, sizeof n1) &&
            strcmp(n1, "albert.encoder.albert_layer_groups.0.albert_layers.0.ffn.weight") == 0, "ffn name %s", n1);
  CHECK(pb_albert_name("bert.pooler.dense.bias", n1, sizeof n1) && strcmp(n1, "albert.pooler.bias") == 0, "pooler %s", n1);
  CHECK(!pb_albert_name("classifier.weight", n1, sizeof n1), "classifier renamed");

  pb_config c;
  cfg4(&c, 0.1f);
  pb_model a, b;
  CHECK_OK(pb_model_declare_shared(&a, &c, 2));
  CHECK_OK(pb_model_alloc(&a, B, T));
  pb_model_init_random(&a, 70);
  pb_test_perturb(&a, 71, 0);
  char dir[] = "/tmp/pb_test_share_XXXXXX";
  CHECK(mkdtemp(dir) != NULL, "mkdtemp");
  CHECK_OK(pb_model_save_hf(&a, dir));
  char p[256];
  snprintf(p, sizeof p, "%s/model.safetensors", dir);
  pb_st_file f;
  CHECK_OK(pb_st_open(&f, p));
  const size_t layer_tensors = 16;
  /* 5 embedding tensors, 2 sets of 16, pooler 2, classifier 2, the mapping 2 */
  CHECK(f.n == (int)(5 + 2 * layer_tensors + 2 + 2 + 2), "ALBERT file has %d tensors", f.n);
  CHECK(pb_st_find(&f, "albert.encoder.albert_layer_groups.1.albert_layers.0.ffn_output.weight") >= 0 &&
            pb_st_find(&f, "albert.encoder.albert_layer_groups.2.albert_layers.0.ffn_output.weight") < 0 &&
            pb_st_find(&f, "bert.encoder.layer.0.attention.self.query.weight") < 0 &&
            pb_st_find(&f, PB_ALBERT_MAP_W) >= 0 && pb_st_find(&f, "albert.embeddings.word_embeddings.weight") >= 0,
        "ALBERT names missing or BERT names left");
  CHECK_OK(pb_albert_check_mapping(&f, 16));
  pb_st_close(&f);
  snprintf(p, sizeof p, "%s/config.json", dir);
  cJSON *cj;
  CHECK_OK(pb_read_json_object(p, &cj));
  const cJSON *mt = cJSON_GetObjectItem(cj, "model_type"), *nl = cJSON_GetObjectItem(cj, "num_hidden_layers"),
              *ng = cJSON_GetObjectItem(cj, "num_hidden_groups"), *es = cJSON_GetObjectItem(cj, "embedding_size");
  CHECK(cJSON_IsString(mt) && strcmp(mt->valuestring, "albert") == 0 && nl && nl->valueint == 4 && ng &&
            ng->valueint == 2 && es && es->valueint == 16,
        "ALBERT config fields");
  cJSON_Delete(cj);
  CHECK_OK(load_dir(&b, dir));
  CHECK(pb_model_steps(&b) == 4 && b.cfg.layers == 2 && pb_model_share_groups(&b) == 2 && total_params(&b) == total_params(&a),
        "loaded: %d steps over %d sets, %zu parameters", pb_model_steps(&b), b.cfg.layers, total_params(&b));
  char fa[17], fb[17];
  pb_model_fingerprint(&a, fa);
  pb_model_fingerprint(&b, fb);
  CHECK(strcmp(fa, fb) == 0, "fingerprint %s vs %s after the round trip", fa, fb);
  float la, lb;
  CHECK_OK(pb_forward(&a, ids, types, mask, B, T, labels, NULL, 0, 0, &la));
  CHECK_OK(pb_forward(&b, ids, types, mask, B, T, labels, NULL, 0, 0, &lb));
  CHECK(la == lb && memcmp(a.acts.logits, b.acts.logits, sizeof(float) * B * 3) == 0, "ALBERT round trip changed the logits");
  printf("ALBERT folder: %d steps over %d sets, fingerprint %s, loss %.9g both\n", pb_model_steps(&b), b.cfg.layers, fb,
         (double)lb);
  /* the same values over 2 steps (G=1 vs another S) are another backbone */
  {
    pb_config c2 = c;
    c2.layers = 2;
    pb_model x, y;
    CHECK_OK(pb_model_declare_shared(&x, &c2, 1));
    CHECK_OK(pb_model_declare_shared(&y, &c, 1));
    CHECK_OK(pb_model_alloc(&x, B, T));
    CHECK_OK(pb_model_alloc(&y, B, T));
    pb_model_init_random(&x, 5);
    pb_model_init_random(&y, 5);
    char f1[17], f2[17];
    pb_model_fingerprint(&x, f1);
    pb_model_fingerprint(&y, f2);
    CHECK(strcmp(f1, f2) != 0, "one set over 2 and over 4 steps share a fingerprint");
    pb_model_free(&x);
    pb_model_free(&y);
  }
  /* a task file of full fine-tuning: the G sets once, loaded back into a fresh shared model */
  {
    pb_model t1, t2;
    CHECK_OK(load_dir(&t1, dir));
    pb_params_train_owner(&t1.params, PB_OWNER_BACKBONE);
    snprintf(p, sizeof p, "%s/task.safetensors", dir);
    pb_kv meta[1] = {{"method", "full"}};
    CHECK_OK(pb_task_save(&t1, p, meta, 1));
    pb_st_file tf;
    CHECK_OK(pb_st_open(&tf, p));
    CHECK(tf.n == (int)(5 + 2 * layer_tensors + 2 + 2), "task file holds %d tensors", tf.n);
    pb_st_close(&tf);
    pb_config cz = c;
    CHECK_OK(pb_model_declare_shared(&t2, &cz, 2));
    pb_params_train_owner(&t2.params, PB_OWNER_BACKBONE);
    CHECK_OK(pb_model_alloc(&t2, B, T));
    pb_model_init_random(&t2, 1234);
    CHECK_OK(pb_task_load(&t2, p, NULL, NULL));
    float l1, l2;
    CHECK_OK(pb_forward(&t1, ids, types, mask, B, T, labels, NULL, 0, 0, &l1));
    CHECK_OK(pb_forward(&t2, ids, types, mask, B, T, labels, NULL, 0, 0, &l2));
    CHECK(l1 == l2, "task file round trip: loss %.9g vs %.9g", (double)l1, (double)l2);
    pb_model_free(&t1);
    pb_model_free(&t2);
  }
  /* refusals */
  pb_model bad;
  set_json(dir, "num_hidden_groups", 3);
  CHECK(load_dir(&bad, dir) == PB_ERR_FORMAT && strstr(pb_last_error(), "does not divide"), "groups 3 of 4 loaded (%s)",
        pb_last_error());
  printf("config G=3: %s\n", pb_last_error());
  set_json(dir, "num_hidden_groups", 2);
  set_json(dir, "embedding_size", 8);
  CHECK(load_dir(&bad, dir) == PB_ERR_UNSUPPORTED, "embedding_size 8 != hidden 16 accepted");
  pb_model_free(&bad);
  set_json(dir, "embedding_size", 16);
  {
    /* a mapping that is not the identity */
    pb_hf_tensors hl;
    CHECK_OK(pb_hf_tensors_build(&hl, &a, 1));
    hl.map[1] = 0.5f;
    snprintf(p, sizeof p, "%s/model.safetensors", dir);
    CHECK_OK(pb_st_write(p, NULL, 0, hl.w, hl.n, PB_ST_F32));
    pb_hf_tensors_free(&hl);
    CHECK(load_dir(&bad, dir) == PB_ERR_UNSUPPORTED && strstr(pb_last_error(), "identity"),
          "a non-identity mapping loaded (%s)", pb_last_error());
    printf("mapping: %s\n", pb_last_error());
    pb_model_free(&bad);
  }
  pb_model_free(&a);
  pb_model_free(&b);
  rm_dir(dir);
}

static void init_mean(void) {
  pb_config c;
  cfg4(&c, 0.1f);
  pb_model u, s;
  CHECK_OK(pb_model_declare(&u, &c));
  CHECK_OK(pb_model_declare_shared(&s, &c, 2));
  CHECK_OK(pb_model_alloc(&u, B, T));
  CHECK_OK(pb_model_alloc(&s, B, T));
  pb_model_init_random(&u, 80);
  pb_test_perturb(&u, 81, 0);
  CHECK_OK(pb_share_init_from(&s, &u, PB_SHARE_INIT_MEAN));
  double worst = 0;
  for (int g = 0; g < 2; g++) {
    const int sq = s.layer[g].iw, u0 = u.layer[2 * g].iw, u1 = u.layer[2 * g + 1].iw;
    for (size_t j = 0; j < s.params.t[sq].numel; j++) {
      const double want = ((double)u.params.t[u0].data[j] + u.params.t[u1].data[j]) / 2;
      worst = fmax(worst, fabs(want - s.params.t[sq].data[j]));
    }
  }
  CHECK(worst < 1e-7 && memcmp(pb_w(&s, s.word), pb_w(&u, u.word), s.params.t[s.word].numel * sizeof(float)) == 0,
        "mean init: %.2e off the mean of the group's layers, or the embeddings not copied", worst);
  CHECK_OK(pb_share_init_from(&s, &u, PB_SHARE_INIT_FIRST));
  CHECK(memcmp(pb_w(&s, s.layer[1].qw), pb_w(&u, u.layer[2].qw), s.params.t[s.layer[1].qw].numel * sizeof(float)) == 0,
        "first init: set 1 is not layer 2");
  CHECK(pb_share_init_from(&u, &s, PB_SHARE_INIT_MEAN) == PB_ERR_SHAPE, "a shared source accepted");
  pb_model_free(&u);
  pb_model_free(&s);
}

int main(void) {
  pb_config c;
  cfg4(&c, 0.0f);
  pb_test_random_batch(&c, 17, B, T, ids, types, mask, labels);
  mask[B * T - 1] = 0; /* one padded position */
  plans_and_counts();
  train_counts();
  plain_bit_for_bit();
  kernels();
  gradients();
  albert_folder();
  init_mean();
  printf("%d checks, %d failures\n", checks, failures);
  return check_exit_status();
}
