#include "harness/cli.h"

#include <stdio.h>
#include <string.h>

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
