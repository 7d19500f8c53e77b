#include "harness/cli.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "backbone/bf16.h"
#include "util/status.h"
#include "harness/setup.h"

int pb_cli_bad_option(const char *cmd, int argc, char **argv, const struct option *opts) {
  const char *bad = optind - 1 < argc && optind >= 1 ? argv[optind - 1] : "?";
  char valid[1024];
  size_t o = 0;
  valid[0] = 0;
  for (int i = 0; opts[i].name && o < sizeof valid; i++)
    o += (size_t)snprintf(valid + o, sizeof valid - o, "%s--%s", i ? " " : "", opts[i].name);
  /* optopt is the short option character, or 0 for long options */
  if (optopt && optopt != '?' && !strchr(bad, '=') && bad[0] == '-' && bad[1] != '-' && strlen(bad) > 2)
    bad = argv[optind - 1];
  int missing = 0;
  for (int i = 0; opts[i].name; i++) {
    if (opts[i].has_arg == required_argument && strncmp(bad, "--", 2) == 0 && strcmp(bad + 2, opts[i].name) == 0)
      missing = 1;
    if (optopt && opts[i].val == optopt && opts[i].has_arg == required_argument) missing = 1;
  }
  if (missing) fprintf(stderr, "peftbench %s: option '%s' needs a value\n", cmd, bad);
  else fprintf(stderr, "peftbench %s: unknown option '%s' (valid: %s)\n", cmd, bad, valid);
  return 2;
}

int pb_cli_int(const char *opt, const char *v, long lo, long hi, long *out) {
  char *end;
  errno = 0;
  long x = strtol(v, &end, 10);
  if (!*v || *end || errno || x < lo || x > hi) {
    fprintf(stderr, "peftbench: %s '%s': expected an integer in %ld..%ld\n", opt, v, lo, hi);
    return 0;
  }
  *out = x;
  return 1;
}

int pb_cli_num(const char *opt, const char *v, double lo, double hi, double *out) {
  char *end;
  double x = strtod(v, &end);
  if (!*v || *end || !(x >= lo && x <= hi)) {
    fprintf(stderr, "peftbench: %s '%s': expected a number in [%g, %g]\n", opt, v, lo, hi);
    return 0;
  }
  *out = x;
  return 1;
}

int pb_cli_precision(const char *v, int *out) {
  pb_precision p;
  if (pb_precision_parse(v, &p) == PB_OK) return *out = (int)p, 1;
  fprintf(stderr, "peftbench: --precision '%s': expected fp32 or bf16\n", v);
  return 0;
}

int pb_cli_lower_case(const char *v, int *out) {
  if (pb_lower_case_parse(v, out) == PB_OK) return 1;
  fprintf(stderr, "peftbench: --lower-case '%s': expected auto, yes or no\n", v);
  return 0;
}
