/* Running a sweep's runs and keeping their state in the sweep folder (default sweeps/NAME):
 *
 *   plan.tsv            index, id and description of every run (rewritten atomically)
 *   shards/ID.jsonl     the run's result record (`run --results`; appended atomically at its end,
 *                       so a shard exists only for a finished run)
 *   out/                task files and prediction files (`run --out`; names never collide)
 *   logs/ID.log         the run's stdout and stderr, every attempt appended
 *   failed/ID.txt       "exit N" and the run's error line, for a run whose last attempt failed
 *   running/ID          "host pid [slurm job.task]" while an attempt runs (removed at its end)
 *   sweep.json          the sweep file as submitted to Slurm (what `sweep exec` reads)
 *   slurm/              the sbatch script, the submitted job ids and the array logs
 *
 * A run is done when its shard holds a record; failed when failed/ID.txt exists and it is not
 * done; running while its marker names a live process on this host (or a queued/running Slurm
 * job); missing otherwise (never run, or interrupted: an interrupted run writes nothing and is
 * redone). Every writer of one run's files is that run's own process, so two jobs never write
 * the same file. */
#ifndef PB_SWEEPRUN_H
#define PB_SWEEPRUN_H

#include <stddef.h>

#include "harness/sweepspec.h"

typedef enum { PB_SWEEP_MISSING = 0, PB_SWEEP_DONE, PB_SWEEP_FAILED, PB_SWEEP_RUNNING } pb_sweep_state;

/* the sweep folder: `given`, else sweeps/NAME */
void pb_sweep_dir(const pb_sweep *sw, const char *given, char *out, size_t n);
/* creates the folder and its sub-folders, writes plan.tsv */
int pb_sweep_prepare(const pb_sweep *sw, const char *dir);
/* the state of run r; for a failed run its "exit N: line" into why (may be NULL) */
pb_sweep_state pb_sweep_state_of(const char *dir, const pb_sweep_run *r, char *why, size_t n);
const char *pb_sweep_state_name(pb_sweep_state s);

/* Runs r once in a child process (`bin run ... --results shard --out DIR/out --threads t
 * --quiet`), waits for it and records the outcome (failed/ID.txt, or its removal on success).
 * tag (may be NULL) goes into the running marker (the Slurm job). Returns PB_OK when the run
 * succeeded, PB_ERR_IO when it failed (message: its error line), 130 after SIGINT/SIGTERM. */
int pb_sweep_exec(const char *bin, const char *dir, const pb_sweep_run *r, int threads, const char *tag);

/* The local pool: every run that is not done (failed ones too unless skip_failed; running ones
 * of another process are left alone) with `jobs` processes of `threads` threads each, a
 * progress line on stderr after each finished run. Returns PB_OK when every run is done,
 * PB_ERR_IO when some failed (message: how many), 130 when interrupted (the children got the
 * signal, stopped after their current step and wrote nothing). */
int pb_sweep_run_local(const pb_sweep *sw, const char *bin, const char *dir, int jobs, int threads, int skip_failed);

/* Merges the shards in plan order into out (atomically; each record gains "sweep": {"name",
 * "run_id", "index"}); *n_missing / *n_failed: runs without a record. Lists them on stderr. */
int pb_sweep_collect(const pb_sweep *sw, const char *dir, const char *out, int *n_done, int *n_missing, int *n_failed);

/* the path of this executable (for child processes and sbatch scripts) */
int pb_self_exe(char *out, size_t n);
/* online CPUs this process may use */
int pb_usable_cores(void);

#endif
