/* `peftbench plot`: comparison figures from result records, drawn by gnuplot.
 *
 * The records are aggregated as for `peftbench table` (harness/aggregate.h: one row per
 * training configuration, means over seeds). Four figures, each from one data file written
 * to the output folder (whitespace-separated columns, labels in double quotes, '#' comments)
 * and one gnuplot script of the plots folder:
 *   score_vs_params  (score_vs_params.dat, score_vs_params.gp): average GLUE score (x100,
 *                    over the tasks each row ran) vs trainable parameters without the
 *                    head, log x, one labelled point per row (columns: label, x, score,
 *                    sd, fewest seeds of a task, tasks, label_side: 1 label above, -1 below,
 *                    alternating along x so neighbours and stacked points stay readable);
 *   score_vs_ops     (score_vs_ops.dat, score_vs_ops.gp): the same score vs the FLOPs the
 *                    method adds per token (T = 128), log x; methods adding nothing (full
 *                    fine-tuning, merged LoRA) sit at a floor value labelled "0 (merged)";
 *                    a mergeable method gets a second point "<label> merged";
 *   storage          (storage.dat, storage.gp): task-file size in KB, bars grouped by
 *                    row, one bar per task, log y;
 *   task_scores      (task_scores.dat, task_scores.gp): per-task GLUE score x100, bars
 *                    grouped by task, one bar per row (columns: "<label>" mean and
 *                    "<label> sd"), then the reference columns.
 * Missing values are written as NaN.
 *
 * Honest figures:
 *   - spread: every score is the mean over seeds; where n > 1 an error bar shows ± the sample
 *     std (task_scores: of the task's records; the average score: pb_agg_avg_score_sd, drawn
 *     only when every task of the row has n > 1). A point or bar from one seed has no bar (its
 *     sd is NaN in the data file) and the figure's title says how many points have one seed.
 *   - reference lines: the majority-class baseline and full fine-tuning (the first "full" row,
 *     when the input has one). Per task (task_scores): the task's metrics.majority_baseline
 *     (mean over its records; none for STS-B, a regression task, which records null). For the
 *     average-score plots: the mean over the tasks present of those baselines, with STS-B
 *     counted as 0 (a constant prediction has no correlation; CoLA's MCC of a constant
 *     prediction is 0 likewise); no line when a classification task lacks its baseline.
 *   - score axis (pb_plot_score_range, in code, not left to gnuplot's autoscale):
 *       points (score_vs_params, score_vs_ops): the axis holds every point with its error bar,
 *         the majority baseline and the full fine-tuning line, and spans at least
 *         PB_PLOT_MIN_SPAN = 10 score points (centred on those values), plus 5% of the span
 *         each side, rounded out to whole points — differences of a few tenths never fill
 *         the plot;
 *       bars (task_scores): bars start at 0, so the axis always holds 0 and 100 (and any
 *         value beyond, rounded out to a multiple of 10: MCC and correlations can be < 0).
 *     Each data file states its range in a "# yrange LO HI" line; the values reach the
 *     script as the gnuplot variables ymin, ymax (see pb_plot_info.vars).
 * Data files are written atomically.
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

#define PB_PLOT_MIN_SPAN 10.0 /* smallest span of a points plot's score axis (x100 points) */

/* The score-axis rule above over v[n] (x100; non-finite values ignored): bars = 1 for a bar
 * chart, 0 for points. With no finite value: [0, 100]. */
void pb_plot_score_range(const double *v, int n, int bars, double *lo, double *hi);

/* What pb_plot_write_data found, for running the scripts. */
typedef struct {
  double ops_floor;             /* the x value used for "0 added ops" in score_vs_ops (a power
                                   of ten below the smallest positive value; 1 when none) */
  int npoints[PB_PLOT_COUNT];   /* values plotted per figure (0: nothing to draw — `peftbench
                                   plot` then skips that figure with a warning) */
  char vars[PB_PLOT_COUNT][512];/* gnuplot assignments for each script (numbers only), e.g.
                                   "ymin=34; ymax=46; base=39.12; fullv=40.9; nsingle=5; npts=5" */
} pb_plot_info;

/* Writes DIR/<name>.dat for every plot and fills *info (may be NULL). */
int pb_plot_write_data(const pb_agg *a, const char *dir, pb_plot_info *info);

/* The early-exit figure, drawn in addition to the four above when some record has an "exits"
 * block (harness/exitstats.h; `peftbench eval --exit-threshold`):
 *   score_vs_flops   (score_vs_flops.dat, score_vs_flops.gp): average GLUE score (x100) vs the
 *                    mean FLOPs per example at the examples' own lengths (all owners). Rows
 *                    with exits are joined into one curve per configuration — rows of one method
 *                    whose configs are equal except exit_threshold and method_desc (which holds
 *                    the threshold) — ordered by threshold, each point labelled "t=THRESHOLD",
 *                    x = exits.flops_per_example.mean; every other row is a static point at
 *                    ops.inference_per_example.flops.total. One gnuplot index block per curve
 *                    (its first line a header whose first column is the curve's title: the
 *                    method and the keys other than exit_threshold that tell its rows from the
 *                    method's others), then one block of the static points. Columns: "label" x
 *                    avg_score sd threshold (NaN for static points) speedup (NaN) n_seeds_min.
 *                    The score axis follows pb_plot_score_range over these points and the
 *                    reference lines. */
#define PB_PLOT_EXITS_NAME "score_vs_flops"
/* Writes DIR/score_vs_flops.dat; *npoints gets the points written (0 and no file when no
 * record has exits) and vars the script's gnuplot assignments. */
int pb_plot_write_exits(const pb_agg *a, const char *dir, int *npoints, char *vars, size_t nvars);

/* Latent compression (backbone.latent in the records, `peftbench compress`): score_vs_flops above
 * is also drawn when some record has a compressed backbone (its rows are static points labelled
 * "VARIANT k=K d'=D (FOLDER)"), and
 *   memory_vs_width  (memory_vs_width.dat, memory_vs_width.gp): peak RSS of the training run
 *                    (memory.peak_rss_kb) and the model's exact training bytes
 *                    (memory.model_bytes.total), in MiB, vs the width of the layers above the cut
 *                    (backbone.latent.d_prime; rows without one at backbone.config.hidden).
 *                    Columns: "label" width rss_mb model_mb cut avg_score. */
#define PB_PLOT_LATENT_NAME "memory_vs_width"
int pb_plot_write_latent(const pb_agg *a, const char *dir, int *npoints, char *vars, size_t nvars);

/* 1 when an executable `gnuplot` is on $PATH. */
int pb_gnuplot_available(void);

/* Runs gnuplot on `script` (fork/execvp): variables datafile, outfile, fmt ("png"/"svg")
 * and, when extra != NULL, the gnuplot assignments in `extra` (e.g. "floor=100"; built by
 * the caller from numbers only: pb_plot_info.vars). PB_ERR_ARG for a path with a single quote or a control
 * character; PB_ERR_IO naming the script, the exit status and gnuplot's last error line
 * when gnuplot fails or writes no output file. */
int pb_gnuplot_run(const char *script, const char *datafile, const char *outfile, const char *fmt,
                   const char *extra);

/* CLI: `peftbench plot FILE.jsonl [FILE ...] --out DIR [--format png|svg|both]
 * [--plots-dir DIR]`. argv[0] is the subcommand name. Returns the exit status: 0 ok,
 * 1 error (one line on stderr; gnuplot missing says to install gnuplot-nox), 2 usage. */
int pb_cmd_plot(int argc, char **argv);

#endif
