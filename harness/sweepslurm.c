/* Sweeps on Slurm (sweepslurm.h). */
#include "harness/sweepslurm.h"

#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "util/proc.h"
#include "util/fileio.h"
#include "util/status.h"
#include "harness/sweeprun.h"

/* the plan indices as Slurm array ranges: "0-3,7,9-10" */
static int ranges(const int *idx, int k, char *out, size_t n) {
  size_t o = 0;
  for (int i = 0; i < k;) {
    int j = i;
    while (j + 1 < k && idx[j + 1] == idx[j] + 1) j++;
    const int w = j > i ? snprintf(out + o, n - o, "%s%d-%d", o ? "," : "", idx[i], idx[j])
                        : snprintf(out + o, n - o, "%s%d", o ? "," : "", idx[i]);
    if (w < 0 || (size_t)w >= n - o) return pb_set_error(PB_ERR_ARG, "sweep slurm: array list too long");
    o += (size_t)w;
    i = j + 1;
  }
  return PB_OK;
}

static int no_quote(const char *s, const char *what) {
  return strchr(s, '\'') || strchr(s, '\n') ? pb_set_error(PB_ERR_ARG, "sweep slurm: %s '%s' has a quote or newline", what, s)
                                           : PB_OK;
}

int pb_sweep_slurm_write(const pb_sweep *sw, const char *dir, const char *bin, char *script, size_t n, int *n_tasks) {
  *n_tasks = 0;
  char adir[PATH_MAX];
  if (!realpath(dir, adir)) return pb_set_error(PB_ERR_IO, "%s: %s", dir, strerror(errno));
  int rc = no_quote(adir, "folder");
  if (!rc) rc = no_quote(bin, "executable");
  if (rc) return rc;
  int *idx = malloc(sizeof(int) * (size_t)sw->n);
  if (!idx) return pb_set_error(PB_ERR_NOMEM, "sweep: out of memory");
  int k = 0;
  for (int i = 0; i < sw->n; i++)
    if (pb_sweep_state_of(dir, &sw->runs[i], NULL, 0) != PB_SWEEP_DONE) idx[k++] = i;
  snprintf(script, n, "%s/slurm/sweep.sbatch", adir);
  if (k == 0) {
    free(idx);
    return PB_OK;
  }
  char *arr = malloc(16 * (size_t)k + 32);
  if (!arr) {
    free(idx);
    return pb_set_error(PB_ERR_NOMEM, "sweep: out of memory");
  }
  rc = ranges(idx, k, arr, 16 * (size_t)k + 32);
  free(idx);
  /* the sweep file as submitted: what every array task reads */
  char copy[PATH_MAX + 32], *data = NULL;
  size_t len = 0;
  snprintf(copy, sizeof copy, "%s/sweep.json", adir);
  if (!rc && strcmp(sw->path, copy) != 0 && !(rc = pb_read_file(sw->path, &data, &len))) rc = pb_write_file_atomic(copy, data, len);
  free(data);
  size_t cap = 8192 + strlen(arr);
  char *txt = malloc(cap);
  if (!txt) rc = rc ? rc : pb_set_error(PB_ERR_NOMEM, "sweep: out of memory");
  if (rc) {
    free(arr), free(txt);
    return rc;
  }
  size_t o = 0;
#define OUT(...) o += (size_t)snprintf(txt + o, o < cap ? cap - o : 0, __VA_ARGS__)
  OUT("#!/bin/bash\n");
  OUT("#SBATCH --job-name=pb-%s\n", sw->name);
  if (sw->max_parallel > 0) OUT("#SBATCH --array=%s%%%d\n", arr, sw->max_parallel);
  else OUT("#SBATCH --array=%s\n", arr);
  OUT("#SBATCH --ntasks=1\n");
  OUT("#SBATCH --cpus-per-task=%d\n", sw->cpus_per_task > 0 ? sw->cpus_per_task : 1);
  OUT("#SBATCH --output=%s/slurm/%%A_%%a.out\n", adir);
  if (sw->partition) OUT("#SBATCH --partition=%s\n", sw->partition);
  if (sw->time) OUT("#SBATCH --time=%s\n", sw->time);
  if (sw->mem) OUT("#SBATCH --mem=%s\n", sw->mem);
  if (sw->account) OUT("#SBATCH --account=%s\n", sw->account);
  for (int i = 0; i < sw->n_extra; i++) OUT("#SBATCH %s\n", sw->extra[i]);
  OUT("# Written by `peftbench sweep slurm`: one array task per run that was not done (index = the\n");
  OUT("# plan index in %s/plan.tsv). Each task writes only its own run's shard, log and task file.\n", adir);
  OUT("exec '%s' sweep exec '%s/sweep.json' --dir '%s' --index \"$SLURM_ARRAY_TASK_ID\"\n", bin, adir, adir);
#undef OUT
  free(arr);
  if (o >= cap) rc = pb_set_error(PB_ERR_ARG, "sweep slurm: script longer than %zu bytes", cap);
  if (!rc) rc = pb_write_file_atomic(script, txt, o);
  free(txt);
  if (!rc) *n_tasks = k;
  return rc;
}

int pb_sweep_slurm_submit(const char *dir, const char *script, char *jobid, size_t n) {
  char out[4096];
  const char *argv[] = {"sbatch", "--parsable", script, NULL};
  const int st = pb_proc_capture(argv, 0, out, sizeof out);
  if (st == PB_ERR_NOTFOUND)
    return pb_set_error(PB_ERR_NOTFOUND, "sbatch not found (install Slurm, or submit %s on a login node)", script);
  if (st < 0) return st;
  out[strcspn(out, "\n")] = 0;
  if (st != 0 || !*out) return pb_set_error(PB_ERR_IO, "sbatch %s: exit %d%s%s", script, st, *out ? ": " : "", out);
  char *semi = strchr(out, ';'); /* "id;cluster" */
  if (semi) *semi = 0;
  for (const char *c = out; *c; c++)
    if (*c < '0' || *c > '9') return pb_set_error(PB_ERR_IO, "sbatch %s: unexpected answer '%s'", script, out);
  snprintf(jobid, n, "%s", out);
  char jobs[1200];
  snprintf(jobs, sizeof jobs, "%s/slurm/jobs.txt", dir);
  return pb_append_line(jobs, out);
}

/* the submitted job ids, comma-separated ("" when none) */
static void job_list(const char *dir, char *list, size_t n) {
  list[0] = 0;
  char jobs[1200], *txt = NULL;
  size_t len = 0, o = 0;
  snprintf(jobs, sizeof jobs, "%s/slurm/jobs.txt", dir);
  if (pb_read_file(jobs, &txt, &len) != PB_OK) return;
  for (char *t = strtok(txt, "\n"); t; t = strtok(NULL, "\n"))
    if (*t && o + strlen(t) + 2 < n) o += (size_t)snprintf(list + o, n - o, "%s%s", o ? "," : "", t);
  free(txt);
}

int pb_sweep_slurm_acct(const char *dir, int n_runs, char (*acct)[16]) {
  memset(acct, 0, (size_t)n_runs * sizeof *acct);
  char list[4096];
  job_list(dir, list, sizeof list);
  if (!*list) return 0;
  static char out[1 << 20];
  const char *argv[] = {"sacct", "-n", "-P", "-X", "-j", list, "-o", "JobID,State", NULL};
  if (pb_proc_capture(argv, 0, out, sizeof out) != 0) return 0; /* no sacct, or no accounting storage */
  for (char *t = strtok(out, "\n"); t; t = strtok(NULL, "\n")) { /* "JOB_TASK|STATE" (later jobs win) */
    char *us = strchr(t, '_'), *bar = strchr(t, '|');
    if (!us || !bar || us > bar) continue;
    char *end = NULL;
    const long i = strtol(us + 1, &end, 10);
    if (end != bar || i < 0 || i >= n_runs) continue;
    char *sp = strchr(bar + 1, ' '); /* "CANCELLED by 0" */
    if (sp) *sp = 0;
    snprintf(acct[i], sizeof acct[i], "%s", bar + 1);
  }
  return 1;
}

int pb_sweep_slurm_queue(const char *dir, int n_runs, char *state) {
  memset(state, 0, (size_t)n_runs);
  char list[4096];
  job_list(dir, list, sizeof list);
  if (!*list) return 0;
  static char out[1 << 20];
  const char *argv[] = {"squeue", "-h", "-r", "-j", list, "-o", "%K|%T", NULL};
  const int st = pb_proc_capture(argv, 0, out, sizeof out);
  if (st == PB_ERR_NOTFOUND) return 0;
  if (st != 0) return 0; /* finished jobs are unknown to squeue: nothing queued */
  for (char *t = strtok(out, "\n"); t; t = strtok(NULL, "\n")) {
    char *bar = strchr(t, '|');
    if (!bar) continue;
    *bar = 0;
    char *end = NULL;
    const long i = strtol(t, &end, 10);
    if (end == t || i < 0 || i >= n_runs) continue;
    state[i] = strcmp(bar + 1, "RUNNING") == 0 || strcmp(bar + 1, "COMPLETING") == 0 ? 'R' : 'Q';
  }
  return 1;
}
