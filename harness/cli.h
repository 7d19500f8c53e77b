/* Small shared pieces of the command-line interface. */
#ifndef PB_CLI_H
#define PB_CLI_H

#include <getopt.h>

/* After getopt_long (optstring starting with ':') returned '?' or ':': prints one line naming
 * the bad option and listing the valid ones, returns 2 (the usage-error exit code). */
int pb_cli_bad_option(const char *cmd, int argc, char **argv, const struct option *opts);

#endif
