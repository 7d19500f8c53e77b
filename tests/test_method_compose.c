/* Method composition tests (methods/compose.c), with LoRA + BitFit:
 *  - specs: name, describe, option routing (unprefixed to the one part declaring the key,
 *    "part.key" to one part, ambiguous keys refused naming both parts), default_lr, no
 *    refconfigs, ranked after every single method; bad specs refused with one line (unknown
 *    part, duplicate part, full with anything, empty names);
 *  - describe -> pb_method_create round trip (split on ',' as eval splits a task file's
 *    method_config);
 *  - bert-base: the trainable set is the union of LoRA's and BitFit's, tensor by tensor;
 *  - tiny model: logits at init equal the plain backbone's exactly; finite-difference gradients
 *    of LoRA's and BitFit's tensors together through pb_forward / pb_backward;
 *  - op counts (pb_model_count): inference = plain + LoRA's added count; a training step = plain
 *    + LoRA's delta + BitFit's delta, owner by owner and kind by kind; merged inference = plain;
 *  - merge/unmerge offered when every part with hooks can merge (lora+adapter: not);
 *  - task file: exactly the union's stored tensors; metadata -> re-created method -> load ->
 *    logits bit-identical; AdamW moves both methods' tensors and no frozen value. */
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
#include "harness/opsreport.h"
#include "methods/method.h"
#include "tests/check.h"

/* finite-difference tolerance (check_fd_used): |fd - g| < FD_ATOL or relative < FD_RTOL */
#define FD_ATOL 1e-4
#define FD_RTOL 2e-2

enum { BB = 2, TT = 7 };

#define LORA_DEF "lora.r=8,lora.alpha=16,lora.dropout=0,lora.targets=query+value,lora.init=kaiming"
#define BITFIT_DEF "bitfit.biases=query+key+value+attn_out+ffn_in+ffn_out+layernorm+embeddings_ln+pooler"

typedef struct {
  pb_model m;
  pb_method_inst inst;
  int ids[BB * TT], types[BB * TT], mask[BB * TT], labels[BB];
} fixture;

/* splits "k=v,k=v" in buf (modified) into opts [cap + 1], NULL-terminated: as eval does */
static int split_opts(char *buf, const char **opts, int cap) {
  int n = 0;
  for (char *t = strtok(buf, ","); t && n < cap; t = strtok(NULL, ",")) opts[n++] = t;
  opts[n] = NULL;
  return n;
}

/* tiny model with `method` (NULL: plain backbone); backbone + head from `seed`; method tensors
 * random (non-zero) when `randomize` */
static void fixture_make(fixture *f, const pb_config *cfg, const char *method, const char *const *opts, int randomize,
                         uint64_t seed) {
  memset(f, 0, sizeof *f);
  CHECK_OK(pb_model_declare(&f->m, cfg));
  if (method) {
    CHECK_OK(pb_method_create(&f->inst, method, opts));
    CHECK_OK(f->inst.m->attach(f->inst.ctx, &f->m));
  }
  CHECK_OK(pb_model_alloc(&f->m, BB, TT));
  pb_model_init_random(&f->m, seed);
  /* backbone + head values from their own stream, whatever the method added to the table */
  pb_rng r;
  pb_rng_seed(&r, seed + 1);
  for (int i = 0; i < f->m.params.n; i++) {
    pb_tensor *t = &f->m.params.t[i];
    if (t->owner == PB_OWNER_METHOD) continue;
    const int gamma = strstr(t->name, "LayerNorm.weight") != NULL; /* around 1; the rest (biases too) around 0 */
    for (size_t j = 0; j < t->numel; j++) t->data[j] = gamma ? 1.0f + 0.1f * pb_rng_normal(&r) : 0.2f * pb_rng_normal(&r);
  }
  if (randomize) {
    pb_rng_seed(&r, seed + 3);
    for (int i = 0; i < f->m.params.n; i++) {
      pb_tensor *t = &f->m.params.t[i];
      if (t->owner != PB_OWNER_METHOD) continue;
      for (size_t j = 0; j < t->numel; j++) t->data[j] = 0.3f * pb_rng_normal(&r);
    }
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

static int create(pb_method_inst *in, const char *spec, const char *const *opts) { return pb_method_create(in, spec, opts); }

static void describe(const pb_method_inst *in, char *buf, size_t n) {
  buf[0] = 0;
  CHECK_OK(in->m->describe(in->ctx, buf, n));
}

/* ---------------------------------------------------------------- specs and options */

static void expect_refused(const char *spec, const char *const *opts, const char *needle, const char *needle2) {
  pb_method_inst in;
  int rc = create(&in, spec, opts);
  const char *e = pb_last_error();
  CHECK(rc == PB_ERR_ARG, "'%s' %s accepted (rc %d)", spec, opts && opts[0] ? opts[0] : "", rc);
  if (rc == PB_OK) {
    pb_method_destroy(&in);
    return;
  }
  CHECK(in.m == NULL && in.ctx == NULL, "'%s': a refused create leaves the instance empty", spec);
  CHECK(!strchr(e, '\n'), "'%s': error is not one line: %s", spec, e);
  if (needle) CHECK(strstr(e, needle) != NULL, "'%s': error lacks '%s': %s", spec, needle, e);
  if (needle2) CHECK(strstr(e, needle2) != NULL, "'%s': error lacks '%s': %s", spec, needle2, e);
}

static void test_specs(void) {
  printf("specs: name, describe, routing, default_lr, rank; bad specs and options refused\n");
  pb_method_inst in;
  char buf[1024];
  CHECK_OK(create(&in, "lora+bitfit", NULL));
  CHECK(strcmp(in.m->name, "lora+bitfit") == 0, "name '%s'", in.m->name);
  describe(&in, buf, sizeof buf);
  CHECK(strcmp(buf, LORA_DEF "," BITFIT_DEF) == 0, "default describe '%s'", buf);
  CHECK(fabs(in.m->default_lr - pb_method_find("lora")->default_lr) < 1e-12, "default_lr %g is not the first part's",
        in.m->default_lr);
  CHECK(in.m->n_refconfigs == 0 && in.m->refconfigs == NULL && in.m->order == 0 && !in.m->reference,
        "a composite has no refconfigs, order or reference");
  CHECK(in.m->merge && in.m->unmerge, "lora+bitfit offers merge");
  pb_method_destroy(&in);
  CHECK(in.m == NULL && in.ctx == NULL, "destroy clears the instance");
  for (int i = 0; i < pb_method_count(); i++)
    CHECK(pb_method_rank("lora+bitfit") > pb_method_rank(pb_method_at(i)->name), "composite ranked before %s",
          pb_method_at(i)->name);
  CHECK(!pb_method_is_reference("lora+bitfit"), "a composite is no reference");

  CHECK_OK(create(&in, "bitfit+lora", NULL));
  describe(&in, buf, sizeof buf);
  CHECK(strcmp(buf, BITFIT_DEF "," LORA_DEF) == 0, "bitfit+lora describe '%s'", buf);
  CHECK(fabs(in.m->default_lr - pb_method_find("bitfit")->default_lr) < 1e-12, "bitfit+lora default_lr %g",
        in.m->default_lr);
  pb_method_destroy(&in);

  /* routing: unprefixed keys go to the one part that declares them */
  const char *o1[] = {"r=4", "biases=query,pooler", "targets=key", NULL};
  CHECK_OK(create(&in, "lora+bitfit", o1));
  describe(&in, buf, sizeof buf);
  CHECK(strcmp(buf, "lora.r=4,lora.alpha=16,lora.dropout=0,lora.targets=key,lora.init=kaiming,"
                    "bitfit.biases=query+pooler") == 0, "routed describe '%s'", buf);
  pb_method_destroy(&in);
  const char *o2[] = {"lora.r=2", "bitfit.biases=layernorm", "lora.alpha=4", NULL};
  CHECK_OK(create(&in, "lora+bitfit", o2));
  describe(&in, buf, sizeof buf);
  CHECK(strstr(buf, "lora.r=2,lora.alpha=4,") && strstr(buf, "bitfit.biases=layernorm"), "prefixed describe '%s'", buf);
  pb_method_destroy(&in);
  /* an ambiguous key (both lora and adapter declare r) is refused naming both; prefixed it works */
  const char *amb[] = {"r=4", NULL};
  expect_refused("lora+adapter", amb, "lora", "adapter");
  CHECK(strstr(pb_last_error(), "ambiguous") != NULL, "ambiguity not said: %s", pb_last_error());
  const char *amb_ok[] = {"adapter.r=4", "alpha=2", "mode=houlsby", NULL};
  CHECK_OK(create(&in, "lora+adapter", amb_ok));
  describe(&in, buf, sizeof buf);
  CHECK(strstr(buf, "lora.r=8,lora.alpha=2,") && strstr(buf, "adapter.mode=houlsby,adapter.r=4,"), "describe '%s'", buf);
  pb_method_destroy(&in);

  const char *bad_key[] = {"bitfit.r=2", NULL}, *not_part[] = {"adapter.r=2", NULL}, *unknown[] = {"rank=2", NULL};
  const char *no_eq[] = {"r", NULL}, *no_key[] = {"lora.=3", NULL}, *bad_val[] = {"lora.r=0", NULL};
  expect_refused("lora+bitfit", bad_key, "bitfit", "r");
  expect_refused("lora+bitfit", not_part, "adapter", "not a part");
  expect_refused("lora+bitfit", unknown, "rank", "bitfit.biases");
  expect_refused("lora+bitfit", no_eq, "key=value", NULL);
  expect_refused("lora+bitfit", no_key, "lora.", NULL);
  expect_refused("lora+bitfit", bad_val, "r=0", "1..65536");

  /* bad specs */
  expect_refused("lora+nosuch", NULL, "nosuch", "valid");
  expect_refused("lora+lora", NULL, "lora", "twice");
  expect_refused("lora+bitfit+lora", NULL, "lora", "twice");
  expect_refused("full+lora", NULL, "full", "cannot be combined");
  expect_refused("lora+full", NULL, "full", "cannot be combined");
  expect_refused("bitfit+full", NULL, "full", "cannot be combined");
  expect_refused("lora+", NULL, "empty", NULL);
  expect_refused("+lora", NULL, "empty", NULL);
  expect_refused("lora++bitfit", NULL, "empty", NULL);
  expect_refused("+", NULL, "empty", NULL);

  /* three parts */
  CHECK_OK(create(&in, "adapter+lora+bitfit", NULL));
  describe(&in, buf, sizeof buf);
  CHECK(strncmp(buf, "adapter.mode=", 13) == 0 && strstr(buf, LORA_DEF "," BITFIT_DEF), "3 parts: '%s'", buf);
  CHECK(in.m->merge != NULL, "before attach: merge offered when some part can merge");
  pb_method_destroy(&in);
  /* no part can merge: never offered */
  CHECK_OK(create(&in, "adapter+bitfit", NULL));
  CHECK(in.m->merge == NULL && in.m->unmerge == NULL, "adapter+bitfit offers merge");
  pb_method_destroy(&in);
}

static void test_round_trip(void) {
  printf("describe -> pb_method_create round trip (task-file method_config)\n");
  const char *sets[][5] = {
      {NULL},
      {"r=4", "dropout=0.1", "targets=all", "biases=embeddings_ln", NULL},
      {"lora.init=gaussian", "bitfit.biases=key,value,ffn_out", NULL},
  };
  const char *specs[] = {"lora+bitfit", "bitfit+lora"};
  for (size_t s = 0; s < 2; s++)
    for (size_t i = 0; i < sizeof sets / sizeof sets[0]; i++) {
      pb_method_inst a, b;
      char da[1024], db[1024], copy[1024];
      CHECK_OK(create(&a, specs[s], sets[i]));
      describe(&a, da, sizeof da);
      snprintf(copy, sizeof copy, "%s", da);
      const char *opts[33];
      split_opts(copy, opts, 32);
      CHECK_OK(create(&b, a.m->name, opts));
      describe(&b, db, sizeof db);
      CHECK(strcmp(da, db) == 0, "%s: round trip '%s' -> '%s'", specs[s], da, db);
      pb_method_destroy(&a);
      pb_method_destroy(&b);
    }
}

/* ---------------------------------------------------------------- parameters */

static void declare_with(pb_model *m, pb_method_inst *in, const char *method, const char *const *opts) {
  pb_config c;
  pb_config_bert_base(&c, 2);
  memset(in, 0, sizeof *in);
  CHECK_OK(pb_model_declare(m, &c));
  if (method) {
    CHECK_OK(pb_method_create(in, method, opts));
    CHECK_OK(in->m->attach(in->ctx, m));
  }
}

static void release(pb_model *m, pb_method_inst *in) {
  if (in->m) pb_method_destroy(in);
  pb_model_free(m);
}

static void test_union(void) {
  printf("bert-base: trainable = stored = LoRA's union BitFit's, tensor by tensor\n");
  pb_model mc, ml, mb;
  pb_method_inst ic, il, ib;
  declare_with(&mc, &ic, "lora+bitfit", NULL);
  declare_with(&ml, &il, "lora", NULL);
  declare_with(&mb, &ib, "bitfit", NULL);
  CHECK(mc.params.n == ml.params.n, "composite has %d tensors, lora alone %d", mc.params.n, ml.params.n);
  int wrong = 0;
  for (int i = 0; i < mc.params.n; i++) {
    const pb_tensor *t = &mc.params.t[i];
    int jl = pb_params_find(&ml.params, t->name), jb = pb_params_find(&mb.params, t->name);
    int want_t = (jl >= 0 && ml.params.t[jl].trainable) || (jb >= 0 && mb.params.t[jb].trainable);
    int want_s = (jl >= 0 && ml.params.t[jl].stored) || (jb >= 0 && mb.params.t[jb].stored);
    if (t->trainable != want_t || t->stored != want_s) {
      if (wrong++ < 5) printf("  %s: trainable %d stored %d, want %d %d\n", t->name, t->trainable, t->stored, want_t, want_s);
    }
  }
  CHECK(wrong == 0, "%d tensors differ from the union", wrong);
  size_t meth = pb_params_count(&mc.params, PB_OWNER_METHOD, 1, 0), bb = pb_params_count(&mc.params, PB_OWNER_BACKBONE, 1, 0);
  CHECK(meth == 294912, "method trainable %zu != LoRA's 294,912", meth);
  CHECK(bb == 102912, "backbone trainable %zu != BitFit's 102,912", bb);
  CHECK(mc.n_hooks == 1, "one hook table in the chain (LoRA's), got %d", mc.n_hooks);
  CHECK(ic.m->merge && ic.m->unmerge, "after attach: lora+bitfit merges (BitFit has no hooks)");
  char rep[160];
  pb_params_report(&mc.params, rep, sizeof rep);
  printf("  %s\n", rep);
  release(&mc, &ic), release(&ml, &il), release(&mb, &ib);
  /* lora+adapter: adapter has hooks and cannot merge -> no merge after attach */
  pb_model ma;
  pb_method_inst ia;
  declare_with(&ma, &ia, "lora+adapter", NULL);
  CHECK(ia.m->merge == NULL && ia.m->unmerge == NULL, "lora+adapter offers merge after attach");
  CHECK(ma.n_hooks == 2, "lora+adapter: %d hook tables", ma.n_hooks);
  release(&ma, &ia);
}

/* ---------------------------------------------------------------- logits, gradients */

static void test_init_logits(void) {
  printf("init: logits of lora+bitfit = the plain backbone's, exactly\n");
  pb_config cfg;
  pb_test_tiny_config(&cfg, 0.0f);
  fixture p, c;
  fixture_make(&p, &cfg, NULL, NULL, 0, 31);
  fixture_make(&c, &cfg, "lora+bitfit", NULL, 0, 31);
  /* LoRA's B starts at zero; check it did, then compare */
  int nzB = 0;
  for (int i = 0; i < c.m.params.n; i++) {
    const pb_tensor *t = &c.m.params.t[i];
    if (t->owner == PB_OWNER_METHOD && strstr(t->name, ".B"))
      for (size_t j = 0; j < t->numel; j++) nzB += t->data[j] != 0;
  }
  CHECK(nzB == 0, "%d non-zero LoRA B entries at init", nzB);
  loss_of(&p, 0, 0);
  loss_of(&c, 0, 0);
  double md = 0;
  for (int i = 0; i < BB * cfg.num_labels; i++) md = fmax(md, fabs((double)p.m.acts.logits[i] - c.m.acts.logits[i]));
  CHECK(md == 0, "logits differ from the plain backbone by %g", md);
  /* training mode too (dropout 0: the same function) */
  float lp = loss_of(&p, 1, 5), lc = loss_of(&c, 1, 5);
  CHECK(lp == lc, "training loss %g != plain %g", (double)lc, (double)lp);
  fixture_free(&p);
  fixture_free(&c);
}

static void test_gradients(void) {
  printf("gradients: finite differences on LoRA's and BitFit's tensors together (and the head)\n");
  pb_config cfg;
  pb_test_tiny_config(&cfg, 0.0f);
  const char *opts[] = {"r=3", "targets=query,value,ffn_in", NULL};
  fixture f;
  fixture_make(&f, &cfg, "lora+bitfit", opts, 1, 11);
  const uint64_t seed = 77;
  pb_params_zero_grad(&f.m.params);
  loss_of(&f, 1, seed);
  CHECK_OK(pb_backward(&f.m));
  pb_rng r;
  pb_rng_seed(&r, 9);
  const float eps = 3e-3f;
  int checked = 0, n_lora = 0, n_bias = 0;
  double used = 0;
  for (int i = 0; i < f.m.params.n; i++) {
    pb_tensor *t = &f.m.params.t[i];
    if (!t->trainable) {
      CHECK(t->grad == NULL, "frozen %s has a gradient", t->name);
      continue;
    }
    CHECK(t->grad != NULL, "%s has no gradient", t->name);
    if (!t->grad) continue;
    n_lora += t->owner == PB_OWNER_METHOD;
    n_bias += t->owner == PB_OWNER_BACKBONE;
    size_t pick[3] = {0, 0, (size_t)pb_rng_below(&r, t->numel)};
    for (size_t j = 0; j < t->numel; j++)
      if (fabsf(t->grad[j]) > fabsf(t->grad[pick[0]])) pick[0] = j;
    pick[1] = (size_t)pb_rng_below(&r, t->numel);
    const int key_bias = strstr(t->name, "attention.self.key.bias") != NULL;
    CHECK(key_bias || fabsf(t->grad[pick[0]]) > 1e-5f, "%s: largest gradient %g is trivially small", t->name,
          (double)t->grad[pick[0]]);
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
  /* tiny: 2 layers x 3 sites x (A, B); 2 x 8 biases + embeddings LN + pooler */
  CHECK(n_lora == 12 && n_bias == 18, "trained tensors: %d LoRA (want 12), %d biases (want 18)", n_lora, n_bias);
  printf("  %d entries of %d LoRA + %d bias + 2 head tensors; %.2f of the tolerance used (abs %.0e or rel %.0e)\n",
         checked, n_lora, n_bias, used, FD_ATOL, FD_RTOL);
  fixture_free(&f);
}

/* ---------------------------------------------------------------- op counts */

static void count_of(const char *method, int flags, int merged, int B, int T, pb_opcounts *out) {
  pb_model m;
  pb_method_inst in;
  declare_with(&m, &in, method, NULL);
  memset(out, 0, sizeof *out);
  CHECK_OK(pb_model_ops_add(&m, method ? &in : NULL, B, T, flags, merged, out));
  release(&m, &in);
}

static void test_ops(void) {
  printf("ops: composite = plain + LoRA's count (forward); + both deltas (training); merged = plain\n");
  const int B = 2, T = 16;
  pb_opcounts p, l, b, c;
  count_of(NULL, PB_COUNT_INFER, 0, B, T, &p);
  count_of("lora", PB_COUNT_INFER, 0, B, T, &l);
  count_of("lora+bitfit", PB_COUNT_INFER, 0, B, T, &c);
  CHECK(l.c[PB_OPO_METHOD][PB_OPK_MAC] == 294912u * B * T, "LoRA's forward MACs %llu",
        (unsigned long long)l.c[PB_OPO_METHOD][PB_OPK_MAC]);
  for (int w = 0; w < PB_OPO_COUNT; w++)
    for (int k = 0; k < PB_OPK_COUNT; k++)
      CHECK(c.c[w][k] == p.c[w][k] + (l.c[w][k] - p.c[w][k]), "inference owner %d kind %d: %llu != plain %llu + lora %lld",
            w, k, (unsigned long long)c.c[w][k], (unsigned long long)p.c[w][k], (long long)(l.c[w][k] - p.c[w][k]));
  /* training: forward + loss + backward (+ clipping + AdamW: per trainable element, additive too) */
  const int flags[] = {PB_COUNT_TRAIN, PB_COUNT_TRAIN | PB_COUNT_CLIP | PB_COUNT_ADAMW};
  for (int f = 0; f < 2; f++) {
    count_of(NULL, flags[f], 0, B, T, &p);
    count_of("lora", flags[f], 0, B, T, &l);
    count_of("bitfit", flags[f], 0, B, T, &b);
    count_of("lora+bitfit", flags[f], 0, B, T, &c);
    for (int w = 0; w < PB_OPO_COUNT; w++)
      for (int k = 0; k < PB_OPK_COUNT; k++) {
        /* per-step constants (clipping's 2 FLOP + 1 TRANS) appear once in l + b - p as well */
        const uint64_t want = l.c[w][k] + b.c[w][k] - p.c[w][k];
        CHECK(c.c[w][k] == want, "training (flags %d) owner %d kind %d: %llu != lora %llu + bitfit %llu - plain %llu",
              flags[f], w, k, (unsigned long long)c.c[w][k], (unsigned long long)l.c[w][k],
              (unsigned long long)b.c[w][k], (unsigned long long)p.c[w][k]);
      }
  }
  /* merged inference: LoRA folded, BitFit adds nothing: the plain backbone's count */
  count_of(NULL, PB_COUNT_INFER, 0, B, T, &p);
  count_of("lora+bitfit", PB_COUNT_INFER, 1, B, T, &c);
  CHECK(memcmp(&c, &p, sizeof c) == 0, "merged inference differs from the plain backbone");
  pb_model m;
  pb_method_inst in;
  declare_with(&m, &in, "lora+bitfit", NULL);
  pb_opcounts oc;
  memset(&oc, 0, sizeof oc);
  CHECK(pb_model_ops_add(&m, &in, 1, 1, PB_COUNT_TRAIN, 1, &oc) == PB_ERR_ARG, "training a merged composite is refused");
  release(&m, &in);
}

/* ---------------------------------------------------------------- merge, task file, training */

static void test_merge(void) {
  printf("merge: lora+bitfit logits merged = unmerged (1e-5); state errors refused\n");
  pb_config cfg;
  pb_test_tiny_config(&cfg, 0.0f);
  fixture f;
  fixture_make(&f, &cfg, "lora+bitfit", NULL, 1, 41);
  const int n = BB * cfg.num_labels;
  float ref[BB * 8];
  loss_of(&f, 0, 0);
  memcpy(ref, f.m.acts.logits, sizeof(float) * n);
  CHECK(f.inst.m->unmerge(f.inst.ctx, &f.m) == PB_ERR_ARG, "unmerge without merge accepted");
  CHECK_OK(f.inst.m->merge(f.inst.ctx, &f.m));
  CHECK(f.inst.m->merge(f.inst.ctx, &f.m) == PB_ERR_ARG, "a second merge accepted");
  loss_of(&f, 0, 0);
  double md = 0;
  for (int i = 0; i < n; i++) md = fmax(md, fabs((double)f.m.acts.logits[i] - ref[i]));
  CHECK(md < 1e-5, "merged logits differ by %g", md);
  CHECK_OK(f.inst.m->unmerge(f.inst.ctx, &f.m));
  loss_of(&f, 0, 0);
  double mu = 0;
  for (int i = 0; i < n; i++) mu = fmax(mu, fabs((double)f.m.acts.logits[i] - ref[i]));
  CHECK(mu < 1e-5, "unmerged logits differ by %g", mu);
  printf("  merged %.2e, unmerged again %.2e\n", md, mu);
  fixture_free(&f);
}

static void test_task_file(void) {
  printf("task file: the union's stored tensors; method + method_config re-create it; logits bit-identical\n");
  pb_config cfg;
  pb_test_tiny_config(&cfg, 0.0f);
  const char *opts[] = {"r=2", "targets=query,ffn_out", "biases=value,layernorm,pooler", NULL};
  fixture a;
  fixture_make(&a, &cfg, "lora+bitfit", opts, 1, 51);
  pb_rng r;
  pb_rng_seed(&r, 6);
  for (int i = 0; i < a.m.params.n; i++) { /* "trained": every trainable tensor away from init */
    pb_tensor *t = &a.m.params.t[i];
    if (t->trainable)
      for (size_t j = 0; j < t->numel; j++) t->data[j] += 0.05f * pb_rng_normal(&r);
  }
  char desc[1024], path[128];
  describe(&a.inst, desc, sizeof desc);
  snprintf(path, sizeof path, "/tmp/pb_test_compose_%d.safetensors", (int)getpid());
  pb_kv meta[] = {{(char *)"method", (char *)a.inst.m->name}, {(char *)"method_config", desc}};
  CHECK_OK(pb_task_save(&a.m, path, meta, 2));
  /* the file: exactly the stored tensors = 2 layers x 2 sites x (A, B) + 2 x (value + 2 LN) + pooler + head */
  pb_st_file sf;
  CHECK_OK(pb_st_open(&sf, path));
  int stored = 0;
  for (int i = 0; i < a.m.params.n; i++) stored += a.m.params.t[i].stored;
  CHECK(sf.n == stored && stored == 8 + 6 + 1 + 2, "file %d tensors, stored %d (want 17)", sf.n, stored);
  pb_st_close(&sf);

  /* re-create from the metadata as eval does */
  pb_kv *kv = NULL;
  int nkv = 0;
  CHECK_OK(pb_task_read_meta(path, &kv, &nkv));
  const char *mname = pb_kv_get(kv, nkv, "method"), *mcfg = pb_kv_get(kv, nkv, "method_config");
  CHECK(mname && strcmp(mname, "lora+bitfit") == 0, "metadata method '%s'", mname ? mname : "");
  CHECK(mcfg && strcmp(mcfg, desc) == 0, "metadata method_config '%s'", mcfg ? mcfg : "");
  char cfgbuf[1024];
  snprintf(cfgbuf, sizeof cfgbuf, "%s", mcfg ? mcfg : "");
  const char *mopts[33];
  split_opts(cfgbuf, mopts, 32);
  fixture b;
  memset(&b, 0, sizeof b);
  fixture_make(&b, &cfg, mname ? mname : "?", mopts, 0, 51); /* the same backbone, fresh method tensors */
  char desc_b[1024];
  describe(&b.inst, desc_b, sizeof desc_b);
  CHECK(strcmp(desc, desc_b) == 0, "re-created describe '%s' != '%s'", desc_b, desc);
  memcpy(b.ids, a.ids, sizeof a.ids);
  memcpy(b.types, a.types, sizeof a.types);
  memcpy(b.labels, a.labels, sizeof a.labels);
  CHECK_OK(pb_task_load(&b.m, path, NULL, NULL));
  loss_of(&a, 0, 0);
  loss_of(&b, 0, 0);
  CHECK(memcmp(a.m.acts.logits, b.m.acts.logits, BB * cfg.num_labels * sizeof(float)) == 0,
        "logits differ after the round trip");
  pb_kv_free(kv, nkv);
  unlink(path);
  fixture_free(&a);
  fixture_free(&b);
}

static void test_training(void) {
  printf("training: AdamW moves LoRA's tensors and the biases, no frozen value; loss falls\n");
  pb_config cfg;
  pb_test_tiny_config(&cfg, 0.1f);
  fixture f;
  fixture_make(&f, &cfg, "lora+bitfit", NULL, 0, 61);
  float *fz = malloc(f.m.params.n_frozen * sizeof(float)), *w0 = malloc(f.m.params.n_train * sizeof(float));
  memcpy(fz, f.m.params.frozen_mem, f.m.params.n_frozen * sizeof(float));
  memcpy(w0, f.m.params.train_mem, f.m.params.n_train * sizeof(float));
  pb_adamw opt;
  pb_adamw_defaults(&opt);
  opt.lr = 1e-2f;
  float first = 0, last = 0;
  for (int step = 1; step <= 20; step++) {
    pb_params_zero_grad(&f.m.params);
    float loss = loss_of(&f, 1, 900 + step);
    CHECK_OK(pb_backward(&f.m));
    CHECK_OK(pb_adamw_step(&f.m.params, &opt, step));
    if (step == 1) first = loss;
    last = loss;
  }
  CHECK(memcmp(fz, f.m.params.frozen_mem, f.m.params.n_frozen * sizeof(float)) == 0, "a frozen value changed");
  int moved_lora = 0, moved_bias = 0;
  for (int i = 0; i < f.m.params.n; i++) {
    pb_tensor *t = &f.m.params.t[i];
    if (!t->trainable) continue;
    int moved = memcmp(w0 + (t->data - f.m.params.train_mem), t->data, t->numel * sizeof(float)) != 0;
    moved_lora += moved && t->owner == PB_OWNER_METHOD;
    /* the key bias's gradient is 0 up to rounding (softmax cancels it): AdamW may or may not move it */
    moved_bias += moved && t->owner == PB_OWNER_BACKBONE && !strstr(t->name, "attention.self.key.bias");
  }
  /* 2 layers x 2 sites x (A, B); biases: all 18 but the 2 key biases */
  CHECK(moved_lora == 8 && moved_bias == 16, "moved: %d LoRA tensors (want 8), %d biases (want 16)", moved_lora,
        moved_bias);
  printf("  loss %.4f -> %.4f\n", (double)first, (double)last);
  CHECK(last < first, "loss did not fall: %g -> %g", (double)first, (double)last);
  free(fz), free(w0);
  fixture_free(&f);
}

int main(void) {
  test_specs();
  test_round_trip();
  test_union();
  test_init_logits();
  test_gradients();
  test_ops();
  test_merge();
  test_task_file();
  test_training();
  printf("%d checks, %d failures\n", checks, failures);
  return check_exit_status();
}
