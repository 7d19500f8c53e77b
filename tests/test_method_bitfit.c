/* BitFit method tests: option descriptor; exact trainable counts at bert-base worked out here
 * from the shapes (defaults and two other bias sets); only bias terms (and the head) train and
 * are stored, no hooks, no method tensors; finite-difference gradients of bias entries through
 * pb_forward / pb_backward (dropout off, tiny model), frozen tensors get no gradient; op counts:
 * the forward is the plain backbone's exactly and a training step is the plain backbone's plus
 * exactly the bias-gradient reductions (worked out from backbone/ops.h's table), below full
 * fine-tuning; AdamW moves only the biases; the task file holds exactly the trained tensors and
 * loads back bit-identically. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "backbone/bert.h"
#include "backbone/checkpoint.h"
#include "util/rng.h"
#include "backbone/safetensors.h"
#include "util/status.h"
#include "counters/opcount.h"
#include "methods/method.h"
#include "tests/check.h"

/* finite-difference tolerance (check_fd_used): |fd - g| < FD_ATOL or relative < FD_RTOL */
#define FD_ATOL 3e-5
#define FD_RTOL 5e-3

enum { BB = 2, TT = 7 };

static const char *const ALL_DESC = "biases=query+key+value+attn_out+ffn_in+ffn_out+layernorm+embeddings_ln+pooler";

typedef struct {
  pb_model m;
  pb_method_inst inst;
  int ids[BB * TT], types[BB * TT], mask[BB * TT], labels[BB];
} fixture;

/* a tiny model with bitfit (options NULL-terminated, or method NULL: the plain backbone);
 * random backbone with random (non-zero) biases so that every bias matters */
static void fixture_make(fixture *f, const pb_config *cfg, const char *method, const char *const *opts, uint64_t seed) {
  memset(f, 0, sizeof *f);
  CHECK_OK(pb_model_declare(&f->m, cfg));
  if (method) {
    CHECK_OK(pb_method_create(&f->inst, method, opts));
    CHECK_OK(f->inst.m->attach(f->inst.ctx, &f->m));
  }
  CHECK_OK(pb_model_alloc(&f->m, BB, TT));
  pb_model_init_random(&f->m, seed);
  pb_rng r;
  pb_rng_seed(&r, seed + 1);
  for (int i = 0; i < f->m.params.n; i++) {
    pb_tensor *t = &f->m.params.t[i];
    if (t->ndim == 1 && strstr(t->name, ".bias"))
      for (size_t j = 0; j < t->numel; j++) t->data[j] = 0.1f * pb_rng_normal(&r);
  }
  pb_test_random_batch(cfg, seed + 2, BB, TT, f->ids, f->types, f->mask, f->labels);
}

static void fixture_free(fixture *f) {
  if (f->inst.m) pb_method_destroy(&f->inst);
  pb_model_free(&f->m);
}

static float loss_of(fixture *f, int training, uint64_t seed) {
  float loss = 0;
  CHECK_OK(pb_forward(&f->m, f->ids, f->types, f->mask, BB, TT, f->labels, NULL, training, seed, &loss));
  return loss;
}

/* which bias of the backbone a tensor name is (the option value), or NULL */
static const char *bias_kind(const char *name) {
  static const struct {
    const char *suffix, *kind;
  } k[] = {{"attention.self.query.bias", "query"},         {"attention.self.key.bias", "key"},
           {"attention.self.value.bias", "value"},         {"attention.output.dense.bias", "attn_out"},
           {"intermediate.dense.bias", "ffn_in"},          {"output.dense.bias", "ffn_out"},
           {"attention.output.LayerNorm.bias", "layernorm"}, {"output.LayerNorm.bias", "layernorm"},
           {"bert.embeddings.LayerNorm.bias", "embeddings_ln"}, {"bert.pooler.dense.bias", "pooler"}};
  const size_t n = strlen(name);
  /* longest suffix first: "attention.output.dense.bias" also ends in "output.dense.bias" */
  const char *best = NULL;
  size_t best_len = 0;
  for (size_t i = 0; i < sizeof k / sizeof k[0]; i++) {
    size_t s = strlen(k[i].suffix);
    if (s <= n && strcmp(name + n - s, k[i].suffix) == 0 && s > best_len) best = k[i].kind, best_len = s;
  }
  return best;
}

/* 1 when `kind` is in the '+'/','-separated list (or the list is "all") */
static int in_list(const char *list, const char *kind) {
  if (strcmp(list, "all") == 0) return 1;
  size_t kl = strlen(kind);
  for (const char *p = list; *p;) {
    size_t len = strcspn(p, ",+");
    if (len == kl && strncmp(p, kind, kl) == 0) return 1;
    p += len;
    if (*p) p++;
  }
  return 0;
}

/* ---------------------------------------------------------------- interface, counts */

static void test_interface(void) {
  printf("interface: default describe, list option, bad values refused, nothing to merge\n");
  pb_method_inst in;
  char buf[256];
  CHECK_OK(pb_method_create(&in, "bitfit", NULL));
  CHECK_OK(in.m->describe(in.ctx, buf, sizeof buf));
  CHECK(strcmp(buf, ALL_DESC) == 0, "default describe '%s'", buf);
  CHECK(in.m->merge == NULL && in.m->unmerge == NULL, "bitfit has nothing to merge");
  CHECK(in.m->default_lr > 0, "bitfit declares a learning rate");
  CHECK(in.m->n_refconfigs == 1 && strcmp(in.m->refconfigs[0].label, "bitfit") == 0, "refconfig 'bitfit'");
  pb_method_destroy(&in);
  const char *o1[] = {"biases=layernorm,query", NULL};
  CHECK_OK(pb_method_create(&in, "bitfit", o1));
  CHECK_OK(in.m->describe(in.ctx, buf, sizeof buf));
  CHECK(strcmp(buf, "biases=query+layernorm") == 0, "describe '%s'", buf);
  pb_method_destroy(&in);
  const char *o2[] = {"biases=all", NULL};
  CHECK_OK(pb_method_create(&in, "bitfit", o2));
  CHECK_OK(in.m->describe(in.ctx, buf, sizeof buf));
  CHECK(strcmp(buf, ALL_DESC) == 0, "biases=all describe '%s'", buf);
  pb_method_destroy(&in);
  const char *bad[][2] = {{"biases=weights", NULL}, {"biases=", NULL}, {"bias=query", NULL}, {"r=8", NULL},
                          {"biases", NULL}};
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
    int rc = pb_method_create(&in, "bitfit", bad[i]);
    CHECK(rc == PB_ERR_ARG, "option '%s' accepted (rc %d)", bad[i][0], rc);
    if (!rc) pb_method_destroy(&in);
  }
}

/* bert-base: trainable backbone count for `list`, worked out from the shapes: per layer
 * d per q/k/v/attn_out/ffn_out bias, F for ffn_in, 2d for the two LayerNorm biases */
static size_t expected_bert_base(const char *list) {
  const size_t d = 768, F = 3072, L = 12;
  size_t per_layer = 0;
  if (in_list(list, "query")) per_layer += d;
  if (in_list(list, "key")) per_layer += d;
  if (in_list(list, "value")) per_layer += d;
  if (in_list(list, "attn_out")) per_layer += d;
  if (in_list(list, "ffn_in")) per_layer += F;
  if (in_list(list, "ffn_out")) per_layer += d;
  if (in_list(list, "layernorm")) per_layer += 2 * d;
  return L * per_layer + (in_list(list, "embeddings_ln") ? d : 0) + (in_list(list, "pooler") ? d : 0);
}

static void count_case(const char *list, size_t want) {
  pb_config c;
  pb_config_bert_base(&c, 2);
  pb_model m;
  pb_method_inst in;
  char opt[256];
  snprintf(opt, sizeof opt, "biases=%s", list);
  const char *opts[] = {opt, NULL};
  CHECK_OK(pb_model_declare(&m, &c));
  CHECK_OK(pb_method_create(&in, "bitfit", opts));
  CHECK_OK(in.m->attach(in.ctx, &m));
  size_t bt = pb_params_count(&m.params, PB_OWNER_BACKBONE, 1, 0);
  size_t bs = pb_params_count(&m.params, PB_OWNER_BACKBONE, 0, 1);
  CHECK(bt == want, "biases=%s: backbone trainable %zu != %zu", list, bt, want);
  CHECK(bt == expected_bert_base(list), "biases=%s: %zu != the shape formula %zu", list, bt, expected_bert_base(list));
  CHECK(bs == bt, "biases=%s: stored backbone %zu != trainable %zu", list, bs, bt);
  CHECK(pb_params_count(&m.params, PB_OWNER_METHOD, 0, 0) == 0, "bitfit declares no method tensors");
  CHECK(pb_params_count(&m.params, PB_OWNER_HEAD, 1, 1) == 768u * 2 + 2, "head trains and is stored");
  CHECK(m.n_hooks == 0, "bitfit appends no hooks (%d)", m.n_hooks);
  /* tensor by tensor: trainable <=> stored <=> a bias of a kind in the list */
  int wrong = 0;
  for (int i = 0; i < m.params.n; i++) {
    const pb_tensor *t = &m.params.t[i];
    if (t->owner != PB_OWNER_BACKBONE) continue;
    const char *k = bias_kind(t->name);
    const int want_t = k && in_list(list, k);
    if (t->trainable != want_t || t->stored != want_t) {
      if (wrong++ < 5) printf("  %s: trainable %d stored %d, want %d\n", t->name, t->trainable, t->stored, want_t);
    }
    if (t->trainable && t->decay) {
      if (wrong++ < 5) printf("  %s: a bias with weight decay\n", t->name);
    }
  }
  CHECK(wrong == 0, "biases=%s: %d tensors with the wrong flags", list, wrong);
  char rep[160];
  pb_params_report(&m.params, rep, sizeof rep);
  printf("  biases=%s: %zu (%s)\n", list, bt, rep);
  pb_method_destroy(&in);
  pb_model_free(&m);
}

static void test_counts(void) {
  printf("counts: bert-base defaults 12 x (4*768 + 3072 + 768 + 2*768) + 768 + 768 = 102,912\n");
  CHECK(expected_bert_base("all") == 102912, "the formula itself: %zu", expected_bert_base("all"));
  count_case("all", 102912);
  count_case("query+key+value+attn_out+ffn_in+ffn_out+layernorm+embeddings_ln+pooler", 102912);
  count_case("query+value+layernorm", 12u * (2 * 768 + 2 * 768)); /* 36,864 */
  count_case("ffn_in+pooler", 12u * 3072 + 768);                 /* 37,632 */
}

/* ---------------------------------------------------------------- gradients */

static void test_gradients(void) {
  printf("gradients: finite differences vs pb_backward on every trained tensor; frozen ones have none\n");
  pb_config cfg;
  pb_test_tiny_config(&cfg, 0.0f);
  fixture f;
  fixture_make(&f, &cfg, "bitfit", NULL, 7);
  const uint64_t seed = 99;
  pb_params_zero_grad(&f.m.params);
  loss_of(&f, 1, seed);
  CHECK_OK(pb_backward(&f.m));
  pb_rng r;
  pb_rng_seed(&r, 3);
  const float eps = 1e-2f;
  int checked = 0, tensors = 0, kinds_seen = 0;
  double used = 0;
  for (int i = 0; i < f.m.params.n; i++) {
    pb_tensor *t = &f.m.params.t[i];
    const char *k = bias_kind(t->name);
    if (t->owner == PB_OWNER_BACKBONE) {
      CHECK(!!k == !!t->trainable, "%s trainable %d", t->name, t->trainable);
      CHECK(!!t->grad == !!k, "%s: gradient %s", t->name, t->grad ? "present" : "missing");
    }
    if (!t->trainable || !t->grad) continue;
    tensors++;
    kinds_seen += k != NULL;
    size_t pick[3] = {0, 0, (size_t)pb_rng_below(&r, t->numel)};
    for (size_t j = 0; j < t->numel; j++)
      if (fabsf(t->grad[j]) > fabsf(t->grad[pick[0]])) pick[0] = j;
    pick[1] = pick[0] == 0 ? 1 % t->numel : 0;
    for (size_t j = 0; j < t->numel; j++)
      if (j != pick[0] && fabsf(t->grad[j]) > fabsf(t->grad[pick[1]])) pick[1] = j;
    const int key_bias = k && strcmp(k, "key") == 0; /* softmax cancels it: gradient 0 */
    CHECK(key_bias || fabsf(t->grad[pick[0]]) > 1e-5f, "%s: largest gradient %g is trivially small", t->name,
          (double)t->grad[pick[0]]);
    if (key_bias)
      for (size_t j = 0; j < t->numel; j++)
        CHECK(fabsf(t->grad[j]) < 1e-6f, "%s[%zu]: key-bias gradient %g is not ~0", t->name, j, (double)t->grad[j]);
    for (int q = 0; q < 3; q++) {
      size_t j = pick[q];
      float v = t->data[j];
      t->data[j] = v + eps;
      double lp = loss_of(&f, 1, seed);
      t->data[j] = v - eps;
      double lm = loss_of(&f, 1, seed);
      t->data[j] = v;
      double fd = (lp - lm) / (2.0 * eps), g = t->grad[j];
      const double u = check_fd_used(fd, g, FD_ATOL, FD_RTOL);
      used = fmax(used, u);
      CHECK(u < 1, "%s[%zu]: backward %.6g vs finite difference %.6g", t->name, j, g, fd);
      checked++;
    }
  }
  /* tiny: L=2 layers x 8 biases + embeddings LN + pooler = 18 bias tensors; + the head's 2 */
  CHECK(kinds_seen == 2 * 8 + 2, "%d bias tensors trained (want 18)", kinds_seen);
  CHECK(tensors == kinds_seen + 2, "%d trained tensors (want the biases + 2 head tensors)", tensors);
  printf("  %d entries of %d tensors; %.2f of the tolerance used (abs %.0e or rel %.0e)\n", checked, tensors, used,
         FD_ATOL, FD_RTOL);
  fixture_free(&f);
}

/* ---------------------------------------------------------------- op counts */

static void count_model(const char *method, const char *const *opts, int flags, int B, int T, pb_opcounts *out) {
  pb_config c;
  pb_config_bert_base(&c, 2);
  pb_model m;
  pb_method_inst in;
  memset(&in, 0, sizeof in);
  CHECK_OK(pb_model_declare(&m, &c));
  if (method) {
    CHECK_OK(pb_method_create(&in, method, opts));
    CHECK_OK(in.m->attach(in.ctx, &m));
  }
  memset(out, 0, sizeof *out);
  CHECK_OK(pb_model_count(&m, B, T, flags, out));
  if (method) pb_method_destroy(&in);
  pb_model_free(&m);
}

static uint64_t total(const pb_opcounts *o) {
  uint64_t s = 0;
  for (int w = 0; w < PB_OPO_COUNT; w++)
    for (int k = 0; k < PB_OPK_COUNT; k++) s += o->c[w][k];
  return s;
}

/* training FLOPs BitFit adds to the plain backbone's step (backbone/ops.h's table): a bias
 * gradient db += sum dy is N*out FLOP; a LayerNorm db is N*C; with embeddings_ln the embedding
 * block's backward runs (dropout backward N*d when p > 0, LayerNorm db N*d, no dinp, no dw);
 * the pooler bias is B*d (head owner: pb_backward charges the head's backward, pooler
 * included, to PB_OPO_HEAD) */
static void expected_train_delta(const char *list, int B, int T, float p, uint64_t *backbone, uint64_t *head) {
  const uint64_t d = 768, F = 3072, L = 12, N = (uint64_t)B * T;
  uint64_t per = 0;
  if (in_list(list, "query")) per += N * d;
  if (in_list(list, "key")) per += N * d;
  if (in_list(list, "value")) per += N * d;
  if (in_list(list, "attn_out")) per += N * d;
  if (in_list(list, "ffn_in")) per += N * F;
  if (in_list(list, "ffn_out")) per += N * d;
  if (in_list(list, "layernorm")) per += 2 * N * d;
  *backbone = L * per + (in_list(list, "embeddings_ln") ? N * d + (p > 0 ? N * d : 0) : 0);
  *head = in_list(list, "pooler") ? (uint64_t)B * d : 0;
}

static void test_ops(void) {
  printf("ops: forward == plain backbone exactly; training step == plain + the bias reductions; < full\n");
  const int B = 2, T = 16;
  pb_config c;
  pb_config_bert_base(&c, 2);
  const char *lists[] = {"all", "query+value+layernorm", "ffn_in+pooler", "embeddings_ln"};
  pb_opcounts plain_inf, plain_tr, plain_opt;
  count_model(NULL, NULL, PB_COUNT_INFER, B, T, &plain_inf);
  count_model(NULL, NULL, PB_COUNT_TRAIN, B, T, &plain_tr);
  count_model(NULL, NULL, PB_COUNT_TRAIN | PB_COUNT_ADAMW, B, T, &plain_opt);
  for (size_t i = 0; i < sizeof lists / sizeof lists[0]; i++) {
    char opt[160];
    snprintf(opt, sizeof opt, "biases=%s", lists[i]);
    const char *opts[] = {opt, NULL};
    pb_opcounts inf, tr, trop;
    count_model("bitfit", opts, PB_COUNT_INFER, B, T, &inf);
    count_model("bitfit", opts, PB_COUNT_TRAIN, B, T, &tr);
    count_model("bitfit", opts, PB_COUNT_TRAIN | PB_COUNT_ADAMW, B, T, &trop);
    CHECK(memcmp(&inf, &plain_inf, sizeof inf) == 0, "%s: inference count differs from the plain backbone", lists[i]);
    uint64_t db, dh;
    expected_train_delta(lists[i], B, T, c.hidden_dropout, &db, &dh);
    for (int w = 0; w < PB_OPO_COUNT; w++)
      for (int k = 0; k < PB_OPK_COUNT; k++) {
        uint64_t want = plain_tr.c[w][k];
        if (k == PB_OPK_FLOP && w == PB_OPO_BACKBONE) want += db;
        if (k == PB_OPK_FLOP && w == PB_OPO_HEAD) want += dh;
        CHECK(tr.c[w][k] == want, "%s: training owner %d kind %d: %llu != plain %llu + %llu", lists[i], w, k,
              (unsigned long long)tr.c[w][k], (unsigned long long)plain_tr.c[w][k],
              (unsigned long long)(want - plain_tr.c[w][k]));
      }
    /* AdamW: 12 FLOP + 1 TRANS per trainable element, the biases on top of the head's */
    const uint64_t nb = expected_bert_base(lists[i]);
    CHECK(trop.c[PB_OPO_OPTIM][PB_OPK_FLOP] == plain_opt.c[PB_OPO_OPTIM][PB_OPK_FLOP] + 12 * nb,
          "%s: AdamW FLOPs %llu", lists[i], (unsigned long long)trop.c[PB_OPO_OPTIM][PB_OPK_FLOP]);
    CHECK(trop.c[PB_OPO_OPTIM][PB_OPK_TRANS] == plain_opt.c[PB_OPO_OPTIM][PB_OPK_TRANS] + nb,
          "%s: AdamW TRANS %llu", lists[i], (unsigned long long)trop.c[PB_OPO_OPTIM][PB_OPK_TRANS]);
    CHECK(tr.c[PB_OPO_METHOD][PB_OPK_MAC] + tr.c[PB_OPO_METHOD][PB_OPK_FLOP] + tr.c[PB_OPO_METHOD][PB_OPK_TRANS] == 0,
          "%s: method owner charged", lists[i]);
    printf("  biases=%s: training step %llu ops = plain %llu + %llu (bias reductions)\n", lists[i],
           (unsigned long long)total(&tr), (unsigned long long)total(&plain_tr), (unsigned long long)(db + dh));
  }
  pb_opcounts full_tr, bf_tr;
  count_model("full", NULL, PB_COUNT_TRAIN, B, T, &full_tr);
  count_model("bitfit", NULL, PB_COUNT_TRAIN, B, T, &bf_tr);
  CHECK(total(&bf_tr) < total(&full_tr), "bitfit training %llu not below full fine-tuning %llu",
        (unsigned long long)total(&bf_tr), (unsigned long long)total(&full_tr));
  CHECK(bf_tr.c[PB_OPO_BACKBONE][PB_OPK_MAC] == plain_tr.c[PB_OPO_BACKBONE][PB_OPK_MAC] &&
            bf_tr.c[PB_OPO_BACKBONE][PB_OPK_MAC] < full_tr.c[PB_OPO_BACKBONE][PB_OPK_MAC],
        "no weight-gradient MACs (bitfit %llu, plain %llu, full %llu)",
        (unsigned long long)bf_tr.c[PB_OPO_BACKBONE][PB_OPK_MAC], (unsigned long long)plain_tr.c[PB_OPO_BACKBONE][PB_OPK_MAC],
        (unsigned long long)full_tr.c[PB_OPO_BACKBONE][PB_OPK_MAC]);
}

/* ---------------------------------------------------------------- training, task file */

static void test_training(void) {
  printf("training: 20 AdamW steps move every trained bias (but the key bias) and no frozen value\n");
  pb_config cfg;
  pb_test_tiny_config(&cfg, 0.1f);
  fixture f;
  fixture_make(&f, &cfg, "bitfit", NULL, 17);
  float *fz = malloc(f.m.params.n_frozen * sizeof(float)), *w0 = malloc(f.m.params.n_train * sizeof(float));
  memcpy(fz, f.m.params.frozen_mem, f.m.params.n_frozen * sizeof(float));
  memcpy(w0, f.m.params.train_mem, f.m.params.n_train * sizeof(float));
  pb_adamw opt;
  pb_adamw_defaults(&opt);
  opt.lr = 1e-2f;
  float first = 0, last = 0;
  for (int step = 1; step <= 20; step++) {
    pb_params_zero_grad(&f.m.params);
    float loss = loss_of(&f, 1, 500 + step);
    CHECK_OK(pb_backward(&f.m));
    CHECK_OK(pb_adamw_step(&f.m.params, &opt, step));
    if (step == 1) first = loss;
    last = loss;
  }
  CHECK(memcmp(fz, f.m.params.frozen_mem, f.m.params.n_frozen * sizeof(float)) == 0, "a frozen value changed");
  for (int i = 0; i < f.m.params.n; i++) {
    pb_tensor *t = &f.m.params.t[i];
    if (!t->trainable) continue;
    const char *k = bias_kind(t->name);
    int moved = memcmp(w0 + (t->data - f.m.params.train_mem), t->data, t->numel * sizeof(float)) != 0;
    if (k && strcmp(k, "key") == 0) continue; /* zero gradient: AdamW's update is 0/(0+eps) = 0 */
    CHECK(moved, "%s did not move", t->name);
  }
  printf("  loss %.4f -> %.4f\n", (double)first, (double)last);
  CHECK(last < first, "loss did not fall: %g -> %g", (double)first, (double)last);
  free(fz), free(w0);
  fixture_free(&f);
}

static void test_task_file(void) {
  printf("task file: exactly the trained tensors; loads back bit-identically into a fresh model\n");
  pb_config cfg;
  pb_test_tiny_config(&cfg, 0.0f);
  const char *opts[] = {"biases=query,ffn_in,layernorm,pooler", NULL};
  fixture a, b;
  fixture_make(&a, &cfg, "bitfit", opts, 71);
  fixture_make(&b, &cfg, "bitfit", opts, 71); /* the same backbone */
  /* a's biases trained away from b's */
  pb_rng r;
  pb_rng_seed(&r, 5);
  for (int i = 0; i < a.m.params.n; i++) {
    pb_tensor *t = &a.m.params.t[i];
    if (t->trainable)
      for (size_t j = 0; j < t->numel; j++) t->data[j] += 0.05f * pb_rng_normal(&r);
  }
  char path[128];
  snprintf(path, sizeof path, "/tmp/pb_test_bitfit_%d.safetensors", (int)getpid());
  char desc[256];
  CHECK_OK(a.inst.m->describe(a.inst.ctx, desc, sizeof desc));
  pb_kv meta[] = {{(char *)"method", (char *)"bitfit"}, {(char *)"method_config", desc}};
  CHECK_OK(pb_task_save(&a.m, path, meta, 2));
  pb_st_file sf;
  CHECK_OK(pb_st_open(&sf, path));
  int stored = 0;
  for (int i = 0; i < a.m.params.n; i++) stored += a.m.params.t[i].stored;
  CHECK(sf.n == stored, "file holds %d tensors, %d are stored", sf.n, stored);
  /* 2 layers x (query + ffn_in + 2 LayerNorm biases) + pooler + head 2 */
  CHECK(stored == 2 * 4 + 1 + 2, "%d stored tensors (want 11)", stored);
  for (int k = 0; k < sf.n; k++) {
    int idx = pb_params_find(&a.m.params, sf.t[k].name);
    CHECK(idx >= 0 && a.m.params.t[idx].trainable && a.m.params.t[idx].stored, "file tensor %s is not a trained one",
          sf.t[k].name);
    const char *kind = idx >= 0 ? bias_kind(a.m.params.t[idx].name) : NULL;
    CHECK(a.m.params.t[idx].owner == PB_OWNER_HEAD || (kind && in_list("query+ffn_in+layernorm+pooler", kind)),
          "file tensor %s", sf.t[k].name);
  }
  pb_st_close(&sf);
  CHECK_OK(pb_task_load(&b.m, path, NULL, NULL));
  loss_of(&a, 0, 0);
  loss_of(&b, 0, 0);
  CHECK(memcmp(a.m.acts.logits, b.m.acts.logits, BB * cfg.num_labels * sizeof(float)) == 0,
        "logits differ after the task-file round trip");
  unlink(path);
  fixture_free(&a);
  fixture_free(&b);
}

int main(void) {
  test_interface();
  test_counts();
  test_gradients();
  test_ops();
  test_training();
  test_task_file();
  printf("%d checks, %d failures\n", checks, failures);
  return check_exit_status();
}
