/* Declarative option tables (optable.h). */
#include "harness/optable.h"

#include <errno.h>
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "util/status.h"

void pb_opt_format(const void *opts, const pb_optdef *d, char *buf, size_t n) {
  const char *p = (const char *)opts + d->off;
  switch (d->kind) {
    case PB_OPT_STR: snprintf(buf, n, "%s", p); break;
    case PB_OPT_INT: case PB_OPT_FLAG: snprintf(buf, n, "%d", *(const int *)p); break;
    case PB_OPT_FLOAT: snprintf(buf, n, "%.9g", (double)*(const float *)p); break;
    case PB_OPT_DOUBLE: snprintf(buf, n, "%.17g", *(const double *)p); break;
    case PB_OPT_U64: snprintf(buf, n, "%llu", (unsigned long long)*(const uint64_t *)p); break;
  }
}

int pb_opt_parse(void *opts, const pb_optdef *d, const char *s) {
  char *p = (char *)opts + d->off, *end = NULL;
  errno = 0;
  switch (d->kind) {
    case PB_OPT_STR:
      if (strlen(s) >= d->size) return pb_set_error(PB_ERR_ARG, "--%s: path too long", d->name);
      snprintf(p, d->size, "%s", s);
      return PB_OK;
    case PB_OPT_INT: case PB_OPT_FLAG: {
      long v = strtol(s, &end, 10);
      if (end == s || *end || errno || v < -1 || v > 1000000000L)
        return pb_set_error(PB_ERR_ARG, "--%s: '%s' is not a valid integer", d->name, s);
      *(int *)p = (int)v;
      return PB_OK;
    }
    case PB_OPT_FLOAT: case PB_OPT_DOUBLE: {
      double v = strtod(s, &end);
      if (end == s || *end || errno || !isfinite(v) || v < 0)
        return pb_set_error(PB_ERR_ARG, "--%s: '%s' is not a valid non-negative number", d->name, s);
      if (d->kind == PB_OPT_FLOAT) *(float *)p = (float)v;
      else *(double *)p = v;
      return PB_OK;
    }
    case PB_OPT_U64: {
      unsigned long long v = strtoull(s, &end, 10);
      if (end == s || *end || errno || s[0] == '-')
        return pb_set_error(PB_ERR_ARG, "--%s: '%s' is not a valid seed", d->name, s);
      *(uint64_t *)p = v;
      return PB_OK;
    }
  }
  return PB_OK;
}

void pb_opt_longopts(const pb_optdef *t, int n, int first_val, struct option *lopts) {
  for (int i = 0; i < n; i++)
    lopts[i] = (struct option){t[i].name, t[i].kind == PB_OPT_FLAG ? no_argument : required_argument, NULL, first_val + i};
  lopts[n] = (struct option){"help", no_argument, NULL, 'h'};
  lopts[n + 1] = (struct option){0, 0, 0, 0};
}

void pb_opt_usage(FILE *f, const pb_optdef *t, int n) {
  for (int i = 0; i < n; i++) {
    char left[64];
    snprintf(left, sizeof left, "--%s%s%s", t[i].name, t[i].arg ? " " : "", t[i].arg ? t[i].arg : "");
    fprintf(f, "  %-22s %s\n", left, t[i].help);
  }
  fprintf(f, "  %-22s %s\n", "--help", "this text");
}
