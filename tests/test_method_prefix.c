/* Prefix-tuning method tests (methods/prefix.c):
 *  1. options: defaults, describe round trip, bad values refused
 *  2. parameter counts at bert-base, computed here from the config: 2*L*P*d = 368,640 for P=20;
 *     projection=1 P*d + (d+1)*H + (H+1)*2*L*d; backbone frozen, head trains, tensors stored
 *  3. the model's attention at every step equals a hand computation in double from the saved
 *     q, k, v and the prefix tensors (padded token keys excluded, prefix keys never masked)
 *  4. projection=1: logits equal those of a projection=0 model whose prefixes the test set to
 *     MLP(embedding) computed by hand (column pairs 2l, 2l+1 = keys, values of step l), also
 *     after an AdamW step (the inference materialisation follows the parameter version)
 *  5. finite differences vs pb_forward/pb_backward of every prefix tensor and of the head, tiny
 *     config, attention dropout off and on, projection 0 and 1 (measured: worst relative error
 *     2.5e-3 where |g| > 1e-2, at most 0.38 of the tolerance abs 1e-4 or rel 5e-3 used)
 *  6. op counts by execution (pb_model_count): prefix model - plain backbone == the closed form
 *     written out here (S = B*A*T*(P+T) attention rows, the batch sum of dK, dV, the gradient
 *     accumulation, the MLP); a real instrumented run == the counting-only run
 *  7. training moves only the prefix (and head); the loss falls with the head frozen; task-file
 *     round trip; bad hook calls refused
 * Exits non-zero on any failure. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "backbone/bert.h"
#include "backbone/checkpoint.h"
#include "util/rng.h"
#include "util/status.h"
#include "counters/opcount.h"
#include "methods/method.h"
#include "tests/check.h"

/* finite-difference tolerances (check_fd_used): |fd - g| < ATOL or relative < RTOL */
#define FD_ATOL 1e-4 /* measured: see the header; each check prints the fraction used */
#define FD_RTOL 5e-3
#define FD_EPS 3e-3f

enum { BB = 2, TT = 7 };

typedef struct {
  pb_model m;
  pb_method_inst inst;
  int ids[BB * TT], types[BB * TT], mask[BB * TT], labels[BB];
} fixture;

/* tiny model (d 16, L 2, A 2) with prefix tuning (options NULL-terminated); batch row 1 has its
 * last 2 tokens padded */
static void fixture_make(fixture *f, const pb_config *cfg, const char *const *opts, uint64_t seed) {
  memset(f, 0, sizeof *f);
  CHECK_OK(pb_model_declare(&f->m, cfg));
  CHECK_OK(pb_method_create(&f->inst, "prefix", opts));
  CHECK_OK(f->inst.m->attach(f->inst.ctx, &f->m));
  CHECK_OK(pb_model_alloc(&f->m, BB, TT));
  pb_model_init_random(&f->m, seed);
  pb_test_random_batch(cfg, seed + 2, BB, TT, f->ids, f->types, f->mask, f->labels);
  for (int i = 0; i < BB * TT; i++) f->mask[i] = !(i / TT == 1 && i % TT >= TT - 2); /* row 1: 2 padded */
}

static void fixture_free(fixture *f) {
  pb_method_destroy(&f->inst);
  pb_model_free(&f->m);
}

static float loss_of(fixture *f, int training, uint64_t seed) {
  float loss = 0;
  CHECK_OK(pb_forward(&f->m, f->ids, f->types, f->mask, BB, TT, f->labels, NULL, training, seed, &loss));
  return loss;
}

static const pb_tensor *tensor(const pb_model *m, const char *name) {
  int i = pb_params_find(&m->params, name);
  CHECK(i >= 0, "no tensor %s", name);
  return i >= 0 ? &m->params.t[i] : NULL;
}

/* ---------------------------------------------------------------- 1. options */

static void test_options(void) {
  printf("options: defaults, describe round trip, bad values refused\n");
  pb_method_inst in;
  char buf[256], buf2[256];
  CHECK_OK(pb_method_create(&in, "prefix", NULL));
  CHECK_OK(in.m->describe(in.ctx, buf, sizeof buf));
  CHECK(strcmp(buf, "tokens=20,projection=0,hidden=512,init_std=1") == 0, "default describe: %s", buf);
  pb_method_destroy(&in);
  const char *o1[] = {"tokens=7", "projection=1", "hidden=33", "init_std=0.5", NULL};
  CHECK_OK(pb_method_create(&in, "prefix", o1));
  CHECK_OK(in.m->describe(in.ctx, buf, sizeof buf));
  CHECK(strcmp(buf, "tokens=7,projection=1,hidden=33,init_std=0.5") == 0, "describe: %s", buf);
  pb_method_destroy(&in);
  char copy[256], *opts[8];
  int n = 0;
  snprintf(copy, sizeof copy, "%s", buf);
  for (char *tok = strtok(copy, ","); tok && n < 7; tok = strtok(NULL, ",")) opts[n++] = tok;
  opts[n] = NULL;
  CHECK_OK(pb_method_create(&in, "prefix", (const char *const *)opts));
  CHECK_OK(in.m->describe(in.ctx, buf2, sizeof buf2));
  CHECK(strcmp(buf, buf2) == 0, "describe round trip: %s vs %s", buf, buf2);
  pb_method_destroy(&in);
  const char *alias[] = {"P=5", NULL};
  CHECK_OK(pb_method_create(&in, "prefix", alias));
  CHECK_OK(in.m->describe(in.ctx, buf, sizeof buf));
  CHECK(strncmp(buf, "tokens=5,", 9) == 0, "alias P=5: %s", buf);
  pb_method_destroy(&in);
  const char *bad[][2] = {{"tokens=0", NULL},     {"tokens=-3", NULL},     {"tokens=abc", NULL},
                          {"tokens=4097", NULL},  {"tokens=2.5", NULL},    {"projection=2", NULL},
                          {"projection=-1", NULL}, {"hidden=0", NULL},     {"init_std=-1", NULL},
                          {"init_std=nan", NULL}, {"init_std=", NULL},     {"layers=3", NULL},
                          {"tokens", NULL}};
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
    int rc = pb_method_create(&in, "prefix", bad[i]);
    CHECK(rc == PB_ERR_ARG, "option '%s' accepted (rc %d)", bad[i][0], rc);
    if (!rc) pb_method_destroy(&in);
  }
}

/* ---------------------------------------------------------------- 2. parameter counts */

static void count_bert_base(const char *const *opts, size_t *method, size_t *backbone, size_t *head,
                            size_t *stored, int *has_l11) {
  pb_config c;
  pb_config_bert_base(&c, 2);
  pb_model m;
  pb_method_inst in;
  CHECK_OK(pb_model_declare(&m, &c));
  CHECK_OK(pb_method_create(&in, "prefix", opts));
  CHECK_OK(in.m->attach(in.ctx, &m));
  *method = pb_params_count(&m.params, PB_OWNER_METHOD, 1, 0);
  *backbone = pb_params_count(&m.params, PB_OWNER_BACKBONE, 1, 0);
  *head = pb_params_count(&m.params, PB_OWNER_HEAD, 1, 0);
  *stored = pb_params_count(&m.params, PB_OWNER_METHOD, 0, 1);
  if (has_l11) {
    int i = pb_params_find(&m.params, "prefix.layer.11.value");
    *has_l11 = i >= 0 && m.params.t[i].ndim == 2 && m.params.t[i].shape[0] == 20 && m.params.t[i].shape[1] == 768;
  }
  pb_method_destroy(&in);
  pb_model_free(&m);
}

static void test_counts(void) {
  pb_config c;
  pb_config_bert_base(&c, 2);
  const size_t P = 20, L = (size_t)c.layers, d = (size_t)c.hidden, C = 2, H = 512;
  const size_t want = 2 * L * P * d; /* key and value rows per layer */
  printf("parameters: bert-base prefix P=20: 2 * %zu * %zu * %zu = %zu trainable\n", L, P, d, want);
  size_t mt, bt, ht, st;
  int l11 = 0;
  count_bert_base(NULL, &mt, &bt, &ht, &st, &l11);
  CHECK(want == 368640, "closed form %zu != 368,640", want);
  CHECK(mt == want, "prefix P=20 trainable %zu != %zu", mt, want);
  CHECK(st == mt, "every prefix tensor is stored (%zu of %zu)", st, mt);
  CHECK(bt == 0, "backbone trainable %zu != 0", bt);
  CHECK(ht == C * d + C, "head trainable %zu != %zu", ht, C * d + C);
  CHECK(l11, "prefix.layer.11.value is not [20,768]");
  const char *p5[] = {"tokens=5", NULL};
  count_bert_base(p5, &mt, &bt, &ht, &st, NULL);
  CHECK(mt == 2 * L * 5 * d, "prefix P=5 trainable %zu", mt);
  const char *pr[] = {"projection=1", NULL};
  count_bert_base(pr, &mt, &bt, &ht, &st, NULL);
  const size_t wantp = P * d + (d * H + H) + (H * 2 * L * d + 2 * L * d);
  printf("  projection=1 hidden=512: %zu trainable (P*d + (d+1)*H + (H+1)*2*L*d = %zu)\n", mt, wantp);
  CHECK(mt == wantp && st == mt && bt == 0, "projection=1 trainable %zu != %zu (stored %zu, backbone %zu)", mt,
        wantp, st, bt);
}

/* ---------------------------------------------------------------- 3. attention by hand */

/* ctx of step l from the saved q, k, v and the prefix rows K [P,d], V [P,d], in double */
static double attention_by_hand(const fixture *f, int l, const float *K, const float *V, int P, double *prefix_mass) {
  const pb_config *c = &f->m.cfg;
  const int d = c->hidden, A = c->heads, hd = d / A;
  const pb_layer_acts *a = &f->m.acts.layer[l];
  double worst = 0, minmass = 1;
  for (int b = 0; b < BB; b++)
    for (int h = 0; h < A; h++)
      for (int i = 0; i < TT; i++) {
        const float *qi = a->q + ((size_t)b * TT + i) * d + h * hd;
        double s[64], mx = -1e300, sum = 0;
        for (int j = 0; j < P + TT; j++) {
          const float *kj = j < P ? K + (size_t)j * d + h * hd : a->k + ((size_t)b * TT + j - P) * d + h * hd;
          if (j >= P && !f->mask[b * TT + j - P]) {
            s[j] = -INFINITY;
            continue;
          }
          double x = 0;
          for (int e = 0; e < hd; e++) x += (double)qi[e] * kj[e];
          s[j] = x / sqrt((double)hd);
          if (s[j] > mx) mx = s[j];
        }
        for (int j = 0; j < P + TT; j++) sum += s[j] == -INFINITY ? 0 : exp(s[j] - mx);
        double mass = 0;
        for (int j = 0; j < P; j++) mass += exp(s[j] - mx) / sum;
        if (mass < minmass) minmass = mass;
        for (int e = 0; e < hd; e++) {
          double y = 0;
          for (int j = 0; j < P + TT; j++) {
            if (s[j] == -INFINITY) continue;
            const float *vj = j < P ? V + (size_t)j * d + h * hd : a->v + ((size_t)b * TT + j - P) * d + h * hd;
            y += exp(s[j] - mx) / sum * vj[e];
          }
          worst = fmax(worst, fabs(y - a->ctx[((size_t)b * TT + i) * d + h * hd + e]));
        }
      }
  *prefix_mass = minmass;
  return worst;
}

static void test_by_hand(void) {
  printf("attention with the prefix vs a hand computation in double (P=3, tiny, row 1 padded)\n");
  pb_config cfg;
  pb_test_tiny_config(&cfg, 0.1f); /* inference: dropout must not apply */
  const char *opts[] = {"tokens=3", NULL};
  fixture f;
  fixture_make(&f, &cfg, opts, 5);
  CHECK(f.m.prefix == 3, "model sized for %d prefix rows, not 3", f.m.prefix);
  loss_of(&f, 0, 0);
  float plain_logits[BB * 3];
  memcpy(plain_logits, f.m.acts.logits, sizeof plain_logits);
  for (int l = 0; l < cfg.layers; l++) {
    char nk[64], nv[64];
    snprintf(nk, sizeof nk, "prefix.layer.%d.key", l);
    snprintf(nv, sizeof nv, "prefix.layer.%d.value", l);
    const pb_tensor *K = tensor(&f.m, nk), *V = tensor(&f.m, nv);
    if (!K || !V) break;
    double mass, e = attention_by_hand(&f, l, K->data, V->data, 3, &mass);
    printf("  step %d: max |ctx - by hand| %.2e (tol 1e-5); smallest prefix probability mass %.3f\n", l, e, mass);
    CHECK(e < 1e-5, "step %d: attention context vs by hand %.3e", l, e);
    CHECK(mass > 1e-3, "step %d: prefix mass %.3g too small to test anything", l, mass);
    /* the saved probabilities: prefix columns > 0, padded token columns exactly 0 */
    const int A = cfg.heads, S = 3 + TT;
    int ok = 1;
    for (int h = 0; h < A; h++)
      for (int i = 0; i < TT; i++) {
        const float *row = f.m.acts.layer[l].probs + ((size_t)(1 * A + h) * TT + i) * S;
        for (int j = 0; j < 3; j++) ok &= row[j] > 0.0f;
        for (int j = TT - 2; j < TT; j++) ok &= row[3 + j] == 0.0f;
      }
    CHECK(ok, "step %d: probabilities of prefix / padded columns", l);
  }
  /* the prefix matters: zero value rows and zero key rows change the logits */
  for (int i = 0; i < f.m.params.n; i++) {
    pb_tensor *t = &f.m.params.t[i];
    if (t->owner == PB_OWNER_METHOD) memset(t->data, 0, t->numel * sizeof(float));
  }
  loss_of(&f, 0, 0);
  double dl = 0;
  for (int i = 0; i < BB * cfg.num_labels; i++) dl = fmax(dl, fabs(f.m.acts.logits[i] - plain_logits[i]));
  CHECK(dl > 1e-4, "logits do not depend on the prefix (%.3g)", dl);
  /* zero prefix: still attended (keys 0 give score 0), contributes value 0: the by-hand check holds */
  double mass, e = attention_by_hand(&f, 0, tensor(&f.m, "prefix.layer.0.key")->data,
                                     tensor(&f.m, "prefix.layer.0.value")->data, 3, &mass);
  CHECK(e < 1e-5, "zero prefix: attention vs by hand %.3e", e);
  fixture_free(&f);
}

/* ---------------------------------------------------------------- 4. projection by hand */

/* sets the key/value tensors of a projection=0 model to MLP(embedding) of a projection=1 model,
 * computed here in double: kv [P, 2*L*d] = tanh(emb W1^T + b1) W2^T + b2 */
static void mlp_by_hand(const pb_model *src, pb_model *dst, int P, int H) {
  const int d = src->cfg.hidden, L = pb_model_steps(src), O = 2 * L * d;
  const float *E = tensor(src, "prefix.embedding")->data, *W1 = tensor(src, "prefix.mlp.0.weight")->data;
  const float *b1 = tensor(src, "prefix.mlp.0.bias")->data, *W2 = tensor(src, "prefix.mlp.2.weight")->data;
  const float *b2 = tensor(src, "prefix.mlp.2.bias")->data;
  double *t = malloc(sizeof(double) * H);
  for (int p = 0; p < P; p++) {
    for (int k = 0; k < H; k++) {
      double s = b1[k];
      for (int i = 0; i < d; i++) s += (double)W1[(size_t)k * d + i] * E[(size_t)p * d + i];
      t[k] = tanh(s);
    }
    for (int o = 0; o < O; o++) {
      double s = b2[o];
      for (int k = 0; k < H; k++) s += (double)W2[(size_t)o * H + k] * t[k];
      const int l = o / (2 * d), kind = (o / d) % 2, col = o % d;
      char name[64];
      snprintf(name, sizeof name, "prefix.layer.%d.%s", l, kind ? "value" : "key");
      int ti = pb_params_find(&dst->params, name);
      if (ti >= 0) dst->params.t[ti].data[(size_t)p * d + col] = (float)s;
    }
  }
  free(t);
}

static void copy_backbone(const pb_model *src, pb_model *dst) {
  for (int i = 0; i < dst->params.n; i++) {
    pb_tensor *t = &dst->params.t[i];
    if (t->owner == PB_OWNER_METHOD) continue;
    int j = pb_params_find(&src->params, t->name);
    CHECK(j >= 0 && src->params.t[j].numel == t->numel, "%s missing", t->name);
    if (j >= 0) memcpy(t->data, src->params.t[j].data, t->numel * sizeof(float));
  }
}

static void test_projection(void) {
  printf("projection=1: logits == a projection=0 model with the prefixes set to MLP(embedding) by hand\n");
  pb_config cfg;
  pb_test_tiny_config(&cfg, 0.1f);
  const char *o1[] = {"tokens=4", "projection=1", "hidden=9", NULL}, *o0[] = {"tokens=4", NULL};
  fixture a, b;
  fixture_make(&a, &cfg, o1, 7);
  fixture_make(&b, &cfg, o0, 7);
  copy_backbone(&a.m, &b.m);
  const int C = cfg.num_labels;
  for (int round = 0; round < 2; round++) {
    mlp_by_hand(&a.m, &b.m, 4, 9);
    loss_of(&a, 0, 0);
    loss_of(&b, 0, 0);
    double e = 0;
    for (int i = 0; i < BB * C; i++) e = fmax(e, fabs(a.m.acts.logits[i] - b.m.acts.logits[i]));
    printf("  %s: max |logits - by hand| %.2e (tol 1e-5)\n", round ? "after an AdamW step" : "at init", e);
    CHECK(e < 1e-5, "projection=1 logits vs prefixes by hand (%s): %.3e", round ? "after a step" : "init", e);
    if (round) break;
    /* one training step changes the MLP: the next inference must re-materialise */
    pb_adamw opt;
    pb_adamw_defaults(&opt);
    opt.lr = 1e-2f;
    pb_params_zero_grad(&a.m.params);
    loss_of(&a, 1, 3);
    CHECK_OK(pb_backward(&a.m));
    CHECK_OK(pb_adamw_step(&a.m.params, &opt, 1));
    memcpy(b.m.params.t[b.m.cls_w].data, a.m.params.t[a.m.cls_w].data, sizeof(float) * C * cfg.hidden);
    memcpy(b.m.params.t[b.m.cls_b].data, a.m.params.t[a.m.cls_b].data, sizeof(float) * C);
  }
  fixture_free(&a);
  fixture_free(&b);
}

/* ---------------------------------------------------------------- 5. gradients */

/* pb_backward's gradient of every prefix tensor and of the head (classifier) vs central
 * differences on its 3 largest |grad| entries and 2 random ones */
static void grad_check(const char *const *opts, float dropout, const char *what) {
  pb_config cfg;
  pb_test_tiny_config(&cfg, dropout);
  fixture f;
  fixture_make(&f, &cfg, opts, 11);
  const uint64_t seed = 1234;
  pb_params_zero_grad(&f.m.params);
  loss_of(&f, 1, seed);
  CHECK_OK(pb_backward(&f.m));
  int checked = 0, tensors = 0;
  double worst = 0, used = 0;
  pb_rng r;
  pb_rng_seed(&r, 99);
  for (int i = 0; i < f.m.params.n; i++) {
    pb_tensor *t = &f.m.params.t[i];
    if (t->owner == PB_OWNER_BACKBONE) {
      CHECK(!t->grad, "%s (backbone) has a gradient", t->name);
      continue;
    }
    tensors++;
    CHECK(t->grad != NULL, "%s has no gradient", t->name);
    if (!t->grad) continue;
    size_t pick[5];
    for (int k = 0; k < 3; k++) {
      size_t best = 0;
      float bv = -1;
      for (size_t j = 0; j < t->numel; j++) {
        int dup = 0;
        for (int q = 0; q < k; q++) dup |= pick[q] == j;
        if (!dup && fabsf(t->grad[j]) > bv) bv = fabsf(t->grad[j]), best = j;
      }
      pick[k] = best;
    }
    pick[3] = (size_t)pb_rng_below(&r, t->numel);
    pick[4] = (size_t)pb_rng_below(&r, t->numel);
    CHECK(fabsf(t->grad[pick[0]]) > 1e-4f, "%s: largest gradient %g is trivially small", t->name,
          (double)fabsf(t->grad[pick[0]]));
    for (int k = 0; k < 5; k++) {
      size_t j = pick[k];
      float v = t->data[j];
      t->data[j] = v + FD_EPS;
      double lp = loss_of(&f, 1, seed);
      t->data[j] = v - FD_EPS;
      double lm = loss_of(&f, 1, seed);
      t->data[j] = v;
      double fd = (lp - lm) / (2.0 * FD_EPS), g = t->grad[j];
      double rel = fabs(fd - g) / fmax(fmax(fabs(fd), fabs(g)), 1e-30);
      if (fmax(fabs(fd), fabs(g)) > 1e-2 && rel > worst) worst = rel;
      const double u = check_fd_used(fd, g, FD_ATOL, FD_RTOL);
      used = fmax(used, u);
      CHECK(u < 1, "%s %s[%zu]: backward %.6g vs finite difference %.6g", what, t->name, j, g, fd);
      checked++;
    }
  }
  printf("  %s: %d entries of %d tensors, worst relative error %.2e where |g| > 1e-2; %.2f of the tolerance used "
         "(abs %.0e or rel %.0e)\n", what, checked, tensors, worst, used, FD_ATOL, FD_RTOL);
  fixture_free(&f);
}

/* ---------------------------------------------------------------- 6. op counts */

static pb_opcounts count_of(const char *const *opts, const pb_config *cfg, int B, int T, int flags) {
  pb_model m;
  pb_method_inst in = {0};
  pb_opcounts oc;
  memset(&oc, 0, sizeof oc);
  CHECK_OK(pb_model_declare(&m, cfg));
  if (opts) {
    CHECK_OK(pb_method_create(&in, "prefix", opts));
    CHECK_OK(in.m->attach(in.ctx, &m));
  }
  CHECK_OK(pb_model_count(&m, B, T, flags, &oc));
  if (opts) pb_method_destroy(&in);
  pb_model_free(&m);
  return oc;
}

/* the closed form of what a P-row prefix adds to the model at B x T (see methods/prefix.c and the
 * attention rows of backbone/ops.h), per owner: all of it is the method's */
static void closed_form(const pb_config *c, int P, int projection, int H, int B, int T, int training,
                        pb_opcounts *want) {
  memset(want, 0, sizeof *want);
  const uint64_t L = (uint64_t)c->layers, d = (uint64_t)c->hidden, A = (uint64_t)c->heads, hd = d / A;
  const uint64_t dS = (uint64_t)B * A * T * P; /* extra attention scores per step */
  const uint64_t drop = training && c->attn_dropout > 0 ? dS : 0, Pd = (uint64_t)P * d, PH = (uint64_t)P * H;
  /* the attention's share over the prefix keys is the method's work (backbone/bert.c moves it
   * from the backbone owner), as is summing the prefix gradients over the batch */
  uint64_t *bb = want->c[PB_OPO_METHOD], *mm = want->c[PB_OPO_METHOD];
  bb[PB_OPK_MAC] = L * 2 * dS * hd;      /* scores and context over the P extra keys */
  bb[PB_OPK_FLOP] = L * (6 * dS + drop); /* scale, mask, max, exp-sub, sum, normalise (+ dropout) */
  bb[PB_OPK_TRANS] = L * dS;             /* exp */
  if (projection && training) {          /* the MLP, once per training forward */
    mm[PB_OPK_MAC] += Pd * H + 2 * L * PH * d;
    mm[PB_OPK_FLOP] += PH + 2 * L * Pd;
    mm[PB_OPK_TRANS] += PH;
  }
  if (!training) return;
  bb[PB_OPK_MAC] += L * 4 * dS * hd;                /* dP, dv, dq, dk over the extra keys */
  bb[PB_OPK_FLOP] += L * (4 * dS + drop + 2 * B * Pd); /* softmax (+dropout) backward; sum dK, dV over the batch */
  if (!projection) {
    mm[PB_OPK_FLOP] += L * 2 * Pd; /* grad += dK, dV */
  } else {
    mm[PB_OPK_MAC] += L * 2 * (2 * PH * d) + 2 * Pd * H; /* second Linear per step (dt, dW2); first (demb, dW1) */
    mm[PB_OPK_FLOP] += L * 2 * Pd + 3 * PH + PH;         /* db2; tanh backward; db1 */
  }
}

static void test_ops(void) {
  printf("op counts by execution: prefix model - plain backbone == closed form\n");
  static const struct {
    const char *shape;
    int B, T, P, projection, H;
  } cases[] = {{"bert-base", 1, 128, 20, 0, 512}, {"bert-base", 4, 37, 20, 0, 512}, {"bert-base", 2, 64, 20, 1, 512},
               {"tiny", 2, 7, 3, 0, 9},          {"tiny", 3, 5, 6, 1, 9}};
  for (size_t k = 0; k < sizeof cases / sizeof cases[0]; k++) {
    pb_config cfg;
    if (!strcmp(cases[k].shape, "tiny")) pb_test_tiny_config(&cfg, 0.1f);
    else pb_config_bert_base(&cfg, 2);
    char tp[32], pp[32], hp[32];
    snprintf(tp, sizeof tp, "tokens=%d", cases[k].P);
    snprintf(pp, sizeof pp, "projection=%d", cases[k].projection);
    snprintf(hp, sizeof hp, "hidden=%d", cases[k].H);
    const char *opts[] = {tp, pp, hp, NULL};
    for (int training = 0; training <= 1; training++) {
      const int flags = training ? PB_COUNT_TRAIN : PB_COUNT_INFER, B = cases[k].B, T = cases[k].T;
      pb_opcounts with = count_of(opts, &cfg, B, T, flags), plain = count_of(NULL, &cfg, B, T, flags), diff, want;
      pb_opcounts_sub(&diff, &with, &plain);
      closed_form(&cfg, cases[k].P, cases[k].projection, cases[k].H, B, T, training, &want);
      int ok = 1;
      for (int o = 0; o < PB_OPO_COUNT; o++)
        for (int q = 0; q < PB_OPK_COUNT; q++) {
          ok &= diff.c[o][q] == want.c[o][q];
          CHECK(diff.c[o][q] == want.c[o][q], "%s B=%d T=%d P=%d projection=%d training=%d %s %s: %llu != %llu",
                cases[k].shape, B, T, cases[k].P, cases[k].projection, training, pb_opowner_name(o),
                pb_opkind_name(q), (unsigned long long)diff.c[o][q], (unsigned long long)want.c[o][q]);
        }
      printf("  %s B=%d T=%d P=%d projection=%d %s: +%llu backbone MACs, method MAC %llu FLOP %llu TRANS %llu: %s\n",
             cases[k].shape, B, T, cases[k].P, cases[k].projection, training ? "train" : "infer",
             (unsigned long long)diff.c[PB_OPO_BACKBONE][PB_OPK_MAC], (unsigned long long)diff.c[PB_OPO_METHOD][PB_OPK_MAC],
             (unsigned long long)diff.c[PB_OPO_METHOD][PB_OPK_FLOP], (unsigned long long)diff.c[PB_OPO_METHOD][PB_OPK_TRANS],
             ok ? "== closed form" : "MISMATCH");
    }
  }
  /* a real instrumented run == the counting-only run (tiny, dropout 0.1, both projections) */
  const char *o0[] = {"tokens=3", NULL}, *o1[] = {"tokens=3", "projection=1", "hidden=9", NULL};
  const char *const *os[] = {o0, o1};
  for (int p = 0; p < 2; p++) {
    pb_config cfg;
    pb_test_tiny_config(&cfg, 0.1f);
    fixture f;
    fixture_make(&f, &cfg, os[p], 31);
    for (int training = 0; training <= 1; training++) {
      pb_opc_reset();
      pb_opc_enable(1);
      if (training) /* inference without labels: PB_COUNT_INFER counts no loss */
        loss_of(&f, training, 4242);
      else
        CHECK_OK(pb_forward(&f.m, f.ids, f.types, f.mask, BB, TT, NULL, NULL, 0, 0, NULL));
      if (training) {
        pb_params_zero_grad(&f.m.params);
        CHECK_OK(pb_backward(&f.m));
      }
      pb_opc_enable(0);
      pb_opcounts real = pb_opc.counts, want;
      memset(&want, 0, sizeof want);
      CHECK_OK(pb_model_count(&f.m, BB, TT, training ? PB_COUNT_TRAIN : PB_COUNT_INFER, &want));
      /* the real batch has 2 padded tokens; counts are over B x T positions either way */
      for (int o = 0; o < PB_OPO_COUNT; o++)
        for (int q = 0; q < PB_OPK_COUNT; q++)
          CHECK(real.c[o][q] == want.c[o][q], "projection=%d training=%d %s %s: real run %llu != counting-only %llu", p,
                training, pb_opowner_name(o), pb_opkind_name(q), (unsigned long long)real.c[o][q],
                (unsigned long long)want.c[o][q]);
    }
    /* the counting-only runs left the model working: same logits as before them */
    float before[BB * 3];
    loss_of(&f, 0, 0);
    memcpy(before, f.m.acts.logits, sizeof before);
    pb_opcounts tmp;
    memset(&tmp, 0, sizeof tmp);
    CHECK_OK(pb_model_count(&f.m, BB, TT, PB_COUNT_INFER, &tmp));
    loss_of(&f, 0, 0);
    CHECK(memcmp(before, f.m.acts.logits, sizeof before) == 0, "projection=%d: logits changed by a count", p);
    printf("  tiny projection=%d: real instrumented run == counting-only run (inference and training)\n", p);
    fixture_free(&f);
  }
}

/* ---------------------------------------------------------------- 7. training, task file, misuse */

static void test_training(void) {
  printf("training: backbone bit-identical after 3 AdamW steps, prefix moves; loss falls with the head frozen\n");
  pb_config cfg;
  pb_test_tiny_config(&cfg, 0.1f);
  const char *opts[] = {"tokens=4", NULL};
  fixture f;
  fixture_make(&f, &cfg, opts, 51);
  float *frozen0 = malloc(f.m.params.n_frozen * sizeof(float)), *train0 = malloc(f.m.params.n_train * sizeof(float));
  memcpy(frozen0, f.m.params.frozen_mem, f.m.params.n_frozen * sizeof(float));
  memcpy(train0, f.m.params.train_mem, f.m.params.n_train * sizeof(float));
  /* init: N(0,1) (PEFT's nn.Embedding) */
  const pb_tensor *k0 = tensor(&f.m, "prefix.layer.0.key");
  double s2 = 0;
  for (size_t j = 0; k0 && j < k0->numel; j++) s2 += (double)k0->data[j] * k0->data[j];
  if (k0) {
    const double sd = sqrt(s2 / k0->numel);
    CHECK(sd > 0.7 && sd < 1.3, "prefix init std %.3f, want about 1", sd);
  }
  pb_adamw opt;
  pb_adamw_defaults(&opt);
  opt.lr = 1e-2f;
  for (int step = 1; step <= 3; step++) {
    pb_params_zero_grad(&f.m.params);
    loss_of(&f, 1, 100 + step);
    CHECK_OK(pb_backward(&f.m));
    CHECK_OK(pb_adamw_step(&f.m.params, &opt, step));
  }
  CHECK(memcmp(frozen0, f.m.params.frozen_mem, f.m.params.n_frozen * sizeof(float)) == 0, "frozen backbone changed");
  for (int i = 0; i < f.m.params.n; i++) {
    pb_tensor *t = &f.m.params.t[i];
    if (!t->trainable) continue;
    CHECK(t->owner != PB_OWNER_BACKBONE, "%s (backbone) trains", t->name);
    size_t off = (size_t)(t->data - f.m.params.train_mem);
    CHECK(memcmp(train0 + off, t->data, t->numel * sizeof(float)) != 0, "%s did not change", t->name);
  }
  free(frozen0);
  free(train0);
  fixture_free(&f);

  for (int p = 0; p < 2; p++) {
    const char *o[] = {"tokens=4", p ? "projection=1" : "projection=0", "hidden=16", NULL};
    fixture g;
    memset(&g, 0, sizeof g);
    CHECK_OK(pb_model_declare(&g.m, &cfg));
    CHECK_OK(pb_method_create(&g.inst, "prefix", o));
    CHECK_OK(g.inst.m->attach(g.inst.ctx, &g.m));
    g.m.params.t[g.m.cls_w].trainable = g.m.params.t[g.m.cls_b].trainable = 0; /* the prefix alone */
    CHECK_OK(pb_model_alloc(&g.m, BB, TT));
    pb_model_init_random(&g.m, 61);
    fixture batch;
    fixture_make(&batch, &cfg, NULL, 62);
    memcpy(g.ids, batch.ids, sizeof g.ids), memcpy(g.types, batch.types, sizeof g.types);
    memcpy(g.mask, batch.mask, sizeof g.mask), memcpy(g.labels, batch.labels, sizeof g.labels);
    fixture_free(&batch);
    float first = 0, last = 0;
    opt.lr = p ? 3e-3f : 3e-2f;
    for (int step = 1; step <= 20; step++) {
      pb_params_zero_grad(&g.m.params);
      float loss = loss_of(&g, 1, 200 + step);
      if (step == 1) first = loss;
      last = loss;
      CHECK_OK(pb_backward(&g.m));
      CHECK_OK(pb_adamw_step(&g.m.params, &opt, step));
    }
    printf("  prefix-only training (head frozen, projection=%d): loss %.4f -> %.4f over 20 steps\n", p,
           (double)first, (double)last);
    CHECK(last < 0.8f * first, "projection=%d: loss did not fall: %g -> %g", p, (double)first, (double)last);
    fixture_free(&g);
  }
}

static void test_task_file_and_misuse(void) {
  printf("task file round trip; bad hook calls refused\n");
  pb_config cfg;
  pb_test_tiny_config(&cfg, 0.0f);
  const char *opts[] = {"tokens=2", NULL};
  fixture a, b;
  fixture_make(&a, &cfg, opts, 71);
  fixture_make(&b, &cfg, opts, 71); /* the same model and batch; then a's prefix and head move */
  for (int i = 0; i < a.m.params.n; i++) {
    pb_tensor *t = &a.m.params.t[i];
    if (t->owner != PB_OWNER_BACKBONE)
      for (size_t j = 0; j < t->numel; j++) t->data[j] += 0.1f * (float)((j % 7) + 1);
  }
  loss_of(&a, 0, 0);
  loss_of(&b, 0, 0);
  CHECK(memcmp(a.m.acts.logits, b.m.acts.logits, BB * cfg.num_labels * sizeof(float)) != 0,
        "the changed prefix and head do not show in the logits");
  char path[128];
  snprintf(path, sizeof path, "/tmp/pb_test_prefix_%d.safetensors", (int)getpid());
  CHECK_OK(pb_task_save(&a.m, path, NULL, 0));
  CHECK_OK(pb_task_load(&b.m, path, NULL, NULL));
  loss_of(&a, 0, 0);
  loss_of(&b, 0, 0);
  CHECK(memcmp(a.m.acts.logits, b.m.acts.logits, BB * cfg.num_labels * sizeof(float)) == 0,
        "logits differ after the task-file round trip");
  unlink(path);
  const pb_hook_ops *h = a.m.hooks[0].ops;
  void *hc = a.m.hooks[0].ctx;
  CHECK(h && h->version == PB_HOOKS_VERSION && h->kv_prefix && h->kv_prefix_bwd, "hooks installed");
  if (h) {
    const float *k = NULL, *v = NULL;
    int P = -1;
    CHECK(h->kv_prefix(hc, cfg.layers, &k, &v, &P) == PB_ERR_ARG, "step out of range refused");
    CHECK(h->kv_prefix(hc, -1, &k, &v, &P) == PB_ERR_ARG, "negative step refused");
    CHECK_OK(h->kv_prefix(hc, 1, NULL, NULL, &P));
    CHECK(P == 2, "sizing call: P %d", P);
    CHECK_OK(h->kv_prefix(hc, 1, &k, &v, &P));
    CHECK(k == tensor(&a.m, "prefix.layer.1.key")->data && v == tensor(&a.m, "prefix.layer.1.value")->data,
          "kv_prefix points at the step's tensors");
    float dk[2 * 16] = {0};
    CHECK(h->kv_prefix_bwd(hc, 0, dk, dk, 3) == PB_ERR_SHAPE, "backward with the wrong P refused");
  }
  /* attach after alloc, and twice, refused */
  pb_method_inst in;
  CHECK_OK(pb_method_create(&in, "prefix", NULL));
  CHECK(in.m->attach(in.ctx, &a.m) == PB_ERR_ARG, "attach after pb_model_alloc refused");
  pb_method_destroy(&in);
  CHECK(a.inst.m->attach(a.inst.ctx, &a.m) == PB_ERR_ARG, "second attach refused");
  /* two prefix methods on one chain: the second kv_prefix is refused by the backbone */
  pb_model m2;
  pb_method_inst i1, i2;
  CHECK_OK(pb_model_declare(&m2, &cfg));
  CHECK_OK(pb_method_create(&i1, "prefix", opts));
  CHECK_OK(pb_method_create(&i2, "prefix", opts));
  CHECK_OK(i1.m->attach(i1.ctx, &m2));
  CHECK(i2.m->attach(i2.ctx, &m2) != PB_OK, "a second prefix hook on one chain must be refused");
  pb_method_destroy(&i1);
  pb_method_destroy(&i2);
  pb_model_free(&m2);
  fixture_free(&a);
  fixture_free(&b);
}

int main(void) {
  test_options();
  test_counts();
  test_by_hand();
  test_projection();
  printf("gradients: finite differences vs pb_backward on every prefix tensor and the head\n");
  const char *g0[] = {"tokens=3", NULL}, *g1[] = {"tokens=3", "projection=1", "hidden=7", NULL};
  grad_check(g0, 0.0f, "P=3, dropout off");
  grad_check(g0, 0.1f, "P=3, dropout 0.1");
  grad_check(g1, 0.0f, "P=3 projection=1 hidden=7, dropout off");
  grad_check(g1, 0.1f, "P=3 projection=1 hidden=7, dropout 0.1");
  test_ops();
  test_training();
  test_task_file_and_misuse();
  printf("test_method_prefix: %d checks, %d failed\n", checks, failures);
  return check_exit_status();
}
