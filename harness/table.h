/* `peftbench table`: the comparison tables of the LayerConnect papers from aggregated result
 * records (harness/aggregate.h). Same input -> same bytes out. */
#ifndef PB_TABLE_H
#define PB_TABLE_H

#include "harness/aggregate.h"

/* Renders the tables into a malloc'd NUL-terminated string (*out).
 * format: "md", "csv" or "latex". which: 1 = main comparison table, 2 = counters/timings
 * table, 3 = both (not allowed for csv: PB_ERR_ARG). digits: decimals of the scores. */
int pb_table_render(const pb_agg *a, const char *format, int which, int digits, char **out);

/* CLI: `peftbench table FILE.jsonl [FILE ...] [--format md|csv|latex] [--out PATH]
 * [--table main|counters|both] [--digits N]`. argv[0] is the subcommand name. Returns the
 * process exit status: 0 ok, 1 error (one line on stderr), 2 usage error. */
int pb_cmd_table(int argc, char **argv);

#endif
