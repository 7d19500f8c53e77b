/* `peftbench plot`: comparison figures from result records, drawn by gnuplot.
 *
 * The records are aggregated as for `peftbench table` (harness/aggregate.h: one row per
 * method configuration, means over seeds). Four figures, each from one data file written to
 * the output folder (whitespace-separated columns, labels in double quotes, '#' comments)
 * and one gnuplot script of the plots folder:
 *   score_vs_params  (score_vs_params.dat, score_vs_params.gp): average GLUE score (x100,
 *                    over the tasks each method ran) vs trainable parameters without the
 *                    head, log x, one labelled point per method;
 *   score_vs_ops     (score_vs_ops.dat, score_vs_ops.gp): the same score vs the FLOPs the
 *                    method adds per token (T = 128), log x; methods adding nothing (full
 *                    fine-tuning, merged LoRA) sit at a floor value labelled "0 (merged)";
 *                    a mergeable method gets a second point "<label> merged";
 *   storage          (storage.dat, storage.gp): task-file size in KB, bars grouped by
 *                    method, one bar per task, log y;
 *   task_scores      (task_scores.dat, task_scores.gp): per-task GLUE score x100, bars
 *                    grouped by method, one bar per task.
 * Missing values are written as NaN. Data files are written atomically.
 *
 * gnuplot is run as `gnuplot -e "datafile='D'; outfile='O'; fmt='png|svg'[; ...]" SCRIPT`
 * with fork/execvp (no shell); paths holding a single quote or a control character are
 * refused. The figure is written to a temporary name and renamed when gnuplot succeeds. */
#ifndef PB_PLOT_H
#define PB_PLOT_H

#include "harness/aggregate.h"

#define PB_PLOT_COUNT 4

/* Base name of plot i (0 <= i < PB_PLOT_COUNT): "score_vs_params", "score_vs_ops",
 * "storage", "task_scores"; NULL otherwise. */
const char *pb_plot_name(int i);

/* Writes DIR/<name>.dat for every plot. *ops_floor gets the x value used for "0 added ops"
 * in score_vs_ops (a power of ten below the smallest positive value; 1 when none).
 * npoints (may be NULL): [PB_PLOT_COUNT] values plotted per figure (0: nothing to draw —
 * `peftbench plot` then skips that figure with a warning). */
int pb_plot_write_data(const pb_agg *a, const char *dir, double *ops_floor, int *npoints);

/* 1 when an executable `gnuplot` is on $PATH. */
int pb_gnuplot_available(void);

/* Runs gnuplot on `script` (fork/execvp): variables datafile, outfile, fmt ("png"/"svg")
 * and, when extra != NULL, the gnuplot assignments in `extra` (e.g. "floor=100"; built by
 * the caller from numbers only). PB_ERR_ARG for a path with a single quote or a control
 * character; PB_ERR_IO naming the script, the exit status and gnuplot's last error line
 * when gnuplot fails or writes no output file. */
int pb_gnuplot_run(const char *script, const char *datafile, const char *outfile, const char *fmt,
                   const char *extra);

/* CLI: `peftbench plot FILE.jsonl [FILE ...] --out DIR [--format png|svg|both]
 * [--plots-dir DIR]`. argv[0] is the subcommand name. Returns the exit status: 0 ok,
 * 1 error (one line on stderr; gnuplot missing says to install gnuplot-nox), 2 usage. */
int pb_cmd_plot(int argc, char **argv);

#endif
