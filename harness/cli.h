/* Small shared pieces of the command-line interface. */
#ifndef PB_CLI_H
#define PB_CLI_H

#include <getopt.h>

/* After getopt_long (optstring starting with ':') returned '?' or ':': prints one line naming
 * the bad option and listing the valid ones, returns 2 (the usage-error exit code). */
int pb_cli_bad_option(const char *cmd, int argc, char **argv, const struct option *opts);

/* Option values: the whole string must be an integer in lo..hi (a number in [lo, hi]);
 * otherwise one line "peftbench: OPT 'V': expected ..." on stderr and 0 (the caller exits 2). */
int pb_cli_int(const char *opt, const char *v, long lo, long hi, long *out);
int pb_cli_num(const char *opt, const char *v, double lo, double hi, double *out);
/* --lower-case auto|yes|no into the pb_backbone_opts encoding (harness/setup.h); 0 (after one
 * line on stderr) on a bad value */
int pb_cli_lower_case(const char *v, int *out);
/* --precision fp32|bf16 (backbone/bf16.h) into *out; 0 (after one line on stderr) on a bad value */
int pb_cli_precision(const char *v, int *out);

#endif
