/* Sweeps on a Slurm cluster: one array task per run that is not done, each running
 * `peftbench sweep exec` on the copy of the sweep file kept in the sweep folder (harness/
 * sweeprun.h), so every task writes only its own run's files. */
#ifndef PB_SWEEPSLURM_H
#define PB_SWEEPSLURM_H

#include <stddef.h>

#include "harness/sweepspec.h"

/* Writes DIR/sweep.json (the sweep file's bytes) and DIR/slurm/sweep.sbatch: #SBATCH --array
 * over the plan indices of the runs not done (compressed ranges, "%max_parallel" when set),
 * --cpus-per-task (slurm.cpus_per_task, default 1), --job-name pb-NAME, --output
 * DIR/slurm/%A_%a.out, partition/time/mem/account/extra from the file. Paths are absolute. The
 * script path into script[n]; *n_tasks: its array size (0: everything done, no script). */
int pb_sweep_slurm_write(const pb_sweep *sw, const char *dir, const char *bin, char *script, size_t n, int *n_tasks);
/* `sbatch --parsable SCRIPT`; the job id into jobid[n] and appended to DIR/slurm/jobs.txt.
 * PB_ERR_NOTFOUND when sbatch is not installed; PB_ERR_IO with sbatch's message when it refuses. */
int pb_sweep_slurm_submit(const char *dir, const char *script, char *jobid, size_t n);
/* The Slurm states of the plan's array tasks from `squeue` over the job ids in
 * DIR/slurm/jobs.txt: state[i] = 'Q' (pending), 'R' (running) or 0 (not in the queue), for i in
 * 0..n_runs-1. Returns 1 when squeue answered, 0 when there are no jobs or no squeue (state all
 * 0), negative on error. */
int pb_sweep_slurm_queue(const char *dir, int n_runs, char *state);
/* What Slurm's accounting says of the plan's array tasks that ended (`sacct -n -P -X` over the
 * job ids of DIR/slurm/jobs.txt): into acct[i] (16 bytes each, "" when unknown) the last state
 * of array task i, e.g. "COMPLETED", "FAILED", "TIMEOUT", "OUT_OF_MEMORY", "CANCELLED".
 * Returns 1 when sacct answered, 0 when there is no accounting (no sacct, no jobs, or Slurm
 * without an accounting storage). */
int pb_sweep_slurm_acct(const char *dir, int n_runs, char (*acct)[16]);

#endif
