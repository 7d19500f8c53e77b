/* Declarative option tables: a command whose options are the fields of one struct (`pretrain`)
 * lists them once, one row per long option; parsing, formatting (checkpoint metadata, records),
 * the getopt_long array and the --help lines are loops over that table. */
#ifndef PB_OPTABLE_H
#define PB_OPTABLE_H

#include <getopt.h>
#include <stddef.h>
#include <stdio.h>

enum {
  PB_OPT_STR,    /* char[size], copied (at most size - 1 characters) */
  PB_OPT_INT,    /* int, -1 .. 1e9 */
  PB_OPT_FLOAT,  /* float >= 0, finite */
  PB_OPT_DOUBLE, /* double >= 0, finite */
  PB_OPT_U64,    /* uint64_t (a seed) */
  PB_OPT_FLAG    /* int set to 1 by the option alone (no value); formatted and parsed as an int */
};

typedef struct {
  const char *name;  /* the long option, without "--" */
  int kind;          /* PB_OPT_* */
  size_t off, size;  /* the field in the options struct: PB_OPT_FIELD(type, field) */
  int defining;      /* the command's own mark (pretrain: part of the run's identity) */
  const char *arg;   /* the value's name in --help ("DIR", "N"; NULL for a flag) */
  const char *help;
} pb_optdef;

#define PB_OPT_FIELD(type, field) offsetof(type, field), sizeof(((type *)0)->field)

/* the field's value as text: strings as they are, ints "%d", floats "%.9g", doubles "%.17g",
 * seeds "%llu" (what pb_opt_parse reads back exactly) */
void pb_opt_format(const void *opts, const pb_optdef *d, char *buf, size_t n);
/* parses s into the field; PB_ERR_ARG naming the option when malformed */
int pb_opt_parse(void *opts, const pb_optdef *d, const char *s);
/* lopts[n + 2]: row i as getopt_long's option with val first_val + i, then --help (val 'h'),
 * then the terminating zero row */
void pb_opt_longopts(const pb_optdef *t, int n, int first_val, struct option *lopts);
/* the --help lines: "  --name ARG             help", one per row, then --help */
void pb_opt_usage(FILE *f, const pb_optdef *t, int n);

#endif
