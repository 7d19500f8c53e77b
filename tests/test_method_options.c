/* Method descriptors (methods/method.h version 2, methods/options.c): for every registered
 * method, the declared defaults reproduce the describe string right after init, describe
 * round-trips through the options, every range bound is accepted and every value just outside
 * it, every unknown enum/list value and unknown key is refused with one line naming the option
 * and its range or values; reference configurations build; row order follows pb_method.order;
 * exactly one method (full) is the plots' full fine-tuning reference. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "util/status.h"
#include "harness/opscmd.h"
#include "methods/method.h"
#include "tests/check.h"

/* creates `name` with one option "key=value"; returns the status and destroys the instance */
static int try_one(const char *name, const char *key, const char *value) {
  char kv[256];
  snprintf(kv, sizeof kv, "%s=%s", key, value);
  const char *opts[] = {kv, NULL};
  pb_method_inst in;
  int rc = pb_method_create(&in, name, opts);
  if (rc == PB_OK) pb_method_destroy(&in);
  return rc;
}

static void expect_refused(const pb_method *m, const pb_method_option *o, const char *value, const char *needle) {
  int rc = try_one(m->name, o->name, value);
  const char *e = pb_last_error();
  CHECK(rc == PB_ERR_ARG, "%s: %s=%s accepted (rc %d)", m->name, o->name, value, rc);
  if (rc != PB_ERR_ARG) return;
  CHECK(e && strstr(e, o->name) && strstr(e, m->name), "%s: %s=%s: error does not name the option: %s", m->name,
        o->name, value, e ? e : "");
  CHECK(e && !strchr(e, '\n'), "%s: %s=%s: error is not one line: %s", m->name, o->name, value, e ? e : "");
  if (needle) CHECK(e && strstr(e, needle), "%s: %s=%s: error lacks '%s': %s", m->name, o->name, value, needle, e ? e : "");
}

static void expect_accepted(const pb_method *m, const pb_method_option *o, const char *value) {
  int rc = try_one(m->name, o->name, value);
  CHECK(rc == PB_OK, "%s: %s=%s refused: %s", m->name, o->name, value, pb_last_error());
}

static void test_defaults_and_round_trip(const pb_method *m) {
  char want[1024], got[1024], again[1024];
  CHECK_OK(pb_method_describe_defaults(m, want, sizeof want));
  pb_method_inst in;
  CHECK_OK(pb_method_create(&in, m->name, NULL));
  got[0] = 0;
  if (in.m && in.m->describe) CHECK_OK(in.m->describe(in.ctx, got, sizeof got));
  CHECK(strcmp(got, want) == 0, "%s: describe after init '%s' != declared defaults '%s'", m->name, got, want);
  if (in.m) pb_method_destroy(&in);
  /* every default given explicitly gives the same describe */
  char *opts[64 + 1];
  int n = 0;
  for (int i = 0; i < m->n_options && n < 64; i++) {
    opts[n] = malloc(256);
    snprintf(opts[n], 256, "%s=%s", m->options[i].name, m->options[i].def);
    n++;
  }
  opts[n] = NULL;
  CHECK_OK(pb_method_create(&in, m->name, (const char *const *)opts));
  again[0] = 0;
  if (in.m && in.m->describe) CHECK_OK(in.m->describe(in.ctx, again, sizeof again));
  CHECK(strcmp(again, want) == 0, "%s: explicit defaults describe '%s' != '%s'", m->name, again, want);
  if (in.m) pb_method_destroy(&in);
  for (int i = 0; i < n; i++) free(opts[i]);
  /* the describe string is itself a set of options */
  char d[1024];
  snprintf(d, sizeof d, "%s", want);
  const char *parts[65];
  int np = 0;
  for (char *t = strtok(d, ","); t && np < 64; t = strtok(NULL, ",")) parts[np++] = t;
  parts[np] = NULL;
  CHECK_OK(pb_method_create(&in, m->name, parts));
  if (in.m) pb_method_destroy(&in);
}

static void test_bounds(const pb_method *m) {
  char v[64], s[64];
  for (int i = 0; i < m->n_options; i++) {
    const pb_method_option *o = &m->options[i];
    switch (o->type) {
      case PB_OPT_INT:
        snprintf(s, sizeof s, "%.0f..%.0f", o->min, o->max);
        snprintf(v, sizeof v, "%.0f", o->min), expect_accepted(m, o, v);
        snprintf(v, sizeof v, "%.0f", o->max), expect_accepted(m, o, v);
        snprintf(v, sizeof v, "%.0f", o->min - 1), expect_refused(m, o, v, s);
        snprintf(v, sizeof v, "%.0f", o->max + 1), expect_refused(m, o, v, s);
        expect_refused(m, o, "abc", s);
        expect_refused(m, o, "3x", s);
        expect_refused(m, o, "1.5", s);
        expect_refused(m, o, "", s);
        expect_refused(m, o, "99999999999999999999", s);
        break;
      case PB_OPT_FLOAT: {
        double span = o->max - o->min;
        snprintf(v, sizeof v, "%.17g", o->min), expect_accepted(m, o, v);
        snprintf(v, sizeof v, "%.17g", o->min - 0.01 * span - 1e-3), expect_refused(m, o, v, NULL);
        snprintf(v, sizeof v, "%.17g", o->max + 0.01 * span + 1e-3), expect_refused(m, o, v, NULL);
        snprintf(v, sizeof v, "%.17g", o->max);
        if (o->max_open) expect_refused(m, o, v, ")");
        else expect_accepted(m, o, v);
        expect_refused(m, o, "nan", "[");
        expect_refused(m, o, "inf", "[");
        expect_refused(m, o, "abc", "[");
        expect_refused(m, o, "", "[");
        break;
      }
      case PB_OPT_ENUM:
        for (int k = 0; o->values[k]; k++) expect_accepted(m, o, o->values[k]);
        expect_refused(m, o, "no-such-value", o->values[0]);
        expect_refused(m, o, "", o->values[0]);
        break;
      case PB_OPT_LIST:
        for (int k = 0; o->values[k]; k++) expect_accepted(m, o, o->values[k]);
        expect_accepted(m, o, "all");
        if (o->values[0] && o->values[1]) {
          snprintf(v, sizeof v, "%s,%s", o->values[0], o->values[1]), expect_accepted(m, o, v);
          snprintf(v, sizeof v, "%s+%s", o->values[1], o->values[0]), expect_accepted(m, o, v);
        }
        expect_refused(m, o, "no-such-value", o->values[0]);
        snprintf(v, sizeof v, "%s,bogus", o->values[0]), expect_refused(m, o, v, "bogus");
        expect_refused(m, o, "", o->values[0]);
        expect_refused(m, o, ",", o->values[0]);
        break;
    }
    if (o->alias) {
      int rc = try_one(m->name, o->alias, o->def);
      CHECK(rc == PB_OK, "%s: alias %s=%s refused: %s", m->name, o->alias, o->def, pb_last_error());
    }
  }
  /* unknown key: refused, naming every valid key */
  int rc = try_one(m->name, "no_such_option", "1");
  const char *e = pb_last_error();
  CHECK(rc == PB_ERR_ARG, "%s: unknown option accepted", m->name);
  CHECK(e && strstr(e, "no_such_option"), "%s: unknown option error does not name it: %s", m->name, e ? e : "");
  for (int i = 0; i < m->n_options; i++)
    CHECK(e && strstr(e, m->options[i].name), "%s: unknown option error lacks '%s': %s", m->name, m->options[i].name,
          e ? e : "");
}

static void test_refconfigs_and_order(void) {
  int total = 0;
  for (int i = 0; i < pb_method_count(); i++) {
    const pb_method *m = pb_method_at(i);
    CHECK(m->order > 0, "%s: no row order", m->name);
    for (int j = 0; j < pb_method_count(); j++)
      if (j != i) CHECK(pb_method_at(j)->order != m->order, "%s and %s share order %d", m->name, pb_method_at(j)->name, m->order);
    CHECK(m->n_refconfigs >= 1, "%s declares no op-baseline configuration", m->name);
    for (int r = 0; r < m->n_refconfigs; r++) {
      pb_method_inst in;
      int rc = pb_method_create(&in, m->name, m->refconfigs[r].options);
      CHECK(rc == PB_OK, "%s: reference '%s' does not build: %s", m->name, m->refconfigs[r].label, pb_last_error());
      if (!rc) pb_method_destroy(&in);
    }
    total += m->n_refconfigs;
  }
  CHECK(pb_ops_ref_count() == total, "baseline has %d configurations, the methods declare %d", pb_ops_ref_count(), total);
  for (int i = 0; i < pb_ops_ref_count(); i++)
    for (int j = i + 1; j < pb_ops_ref_count(); j++)
      CHECK(strcmp(pb_ops_ref_at(i)->label, pb_ops_ref_at(j)->label) != 0, "label '%s' twice", pb_ops_ref_at(i)->label);
  /* the table order the aggregate has always used, now declared by the methods */
  const char *want[] = {"full", "lora", "adapter", "layerconnect"};
  for (int i = 0; i + 1 < 4; i++)
    CHECK(pb_method_rank(want[i]) < pb_method_rank(want[i + 1]), "rank %s >= rank %s", want[i], want[i + 1]);
  CHECK(pb_method_rank("layerconnect") < pb_method_rank("not-a-method"), "an unknown method is not ranked last");
  int nref = 0;
  for (int i = 0; i < pb_method_count(); i++) nref += pb_method_at(i)->reference != 0;
  CHECK(nref == 1 && pb_method_is_reference("full"), "%d reference methods (want exactly full)", nref);
  CHECK(!pb_method_is_reference("not-a-method"), "an unknown method is a reference");
}

/* the describe strings the results files, tables and task files have always carried */
static void test_known_describes(void) {
  const struct {
    const char *method, *desc;
  } want[] = {{"full", ""},
              {"lora", "r=8,alpha=16,dropout=0,targets=query+value,init=kaiming"},
              {"adapter", "mode=pfeiffer,r=8,act=relu,train_ln=0,init_std=0.01"},
              {"layerconnect", "K=9,form=diag,scope=tokens"}};
  for (size_t i = 0; i < sizeof want / sizeof want[0]; i++) {
    char buf[512];
    CHECK_OK(pb_method_describe_defaults(pb_method_find(want[i].method), buf, sizeof buf));
    CHECK(strcmp(buf, want[i].desc) == 0, "%s defaults '%s' != '%s'", want[i].method, buf, want[i].desc);
  }
}

int main(void) {
  for (int i = 0; i < pb_method_count(); i++) {
    const pb_method *m = pb_method_at(i);
    CHECK(m->version == PB_METHOD_VERSION, "%s: version %d", m->name, m->version);
    printf("%s: %d declared options\n", m->name, m->n_options);
    test_defaults_and_round_trip(m);
    test_bounds(m);
  }
  test_refconfigs_and_order();
  test_known_describes();
  printf("%d checks, %d failures\n", checks, failures);
  return check_exit_status();
}
