/* `peftbench sweep` (sweepcmd.h). */
#include "harness/sweepcmd.h"

#include <getopt.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "util/status.h"
#include "harness/cli.h"
#include "harness/sweepplan.h"
#include "harness/sweeprun.h"
#include "harness/sweepslurm.h"
#include "harness/sweepspec.h"

static const char *USAGE =
    "usage: peftbench sweep COMMAND SWEEP.json [options]\n"
    "  plan     the runs the file expands to, their state, steps, exact training FLOPs and an estimated\n"
    "           time (a 3-step calibration per model configuration; --no-calibrate skips it; -j N: the\n"
    "           threads each run would get; --json)\n"
    "  run      runs what is not done, -j N processes at a time (threads: cores / N, or the file's\n"
    "           \"threads\"; N x threads never exceeds the cores); resumable; failures are recorded\n"
    "           and the rest goes on (--skip-failed: do not retry runs that failed before)\n"
    "  slurm    writes an sbatch array script (one task per run not done) into the sweep folder;\n"
    "           --submit submits it\n"
    "  collect  merges the runs' result shards into one JSONL (--out FILE, default DIR/results.jsonl),\n"
    "           lists missing and failed runs (exit 1 when some are)\n"
    "  status   done / running / queued / failed / missing (with Slurm's queue when present); --list:\n"
    "           every run\n"
    "  exec     (for the sbatch script) runs plan index --index I\n"
    "  --dir DIR   the sweep folder (default sweeps/NAME)\n";

typedef struct {
  const char *dir;
  long jobs;
  int no_cal, json, submit, list, skip_failed;
  const char *out;
  long index;
} sweep_opts;

static void dur(char *b, size_t n, double s) {
  if (!isfinite(s)) snprintf(b, n, "-");
  else if (s < 10) snprintf(b, n, "%.2gs", s);
  else if (s < 90) snprintf(b, n, "%.0fs", s);
  else if (s < 5400) snprintf(b, n, "%.0fm", s / 60);
  else snprintf(b, n, "%.1fh", s / 3600);
}

static int cmd_plan(const pb_sweep *sw, const char *dir, const sweep_opts *o) {
  const int cores = pb_usable_cores(), jobs = o->jobs > 0 ? (int)o->jobs : 1;
  const int threads = sw->threads ? sw->threads : (cores / jobs > 0 ? cores / jobs : 1);
  pb_sweep_cost *c = calloc((size_t)sw->n, sizeof *c);
  if (!c) return pb_set_error(PB_ERR_NOMEM, "sweep: out of memory");
  if (!o->no_cal && !o->json) fprintf(stderr, "sweep plan: calibrating (3 training steps per model configuration)...\n");
  int rc = pb_sweep_costs(sw, !o->no_cal, threads, c);
  if (rc) {
    free(c);
    return rc;
  }
  double tf = 0, ts = 0;
  int unknown = 0;
  cJSON *ja = o->json ? cJSON_CreateArray() : NULL;
  if (!o->json) {
    printf("sweep %s: %d runs; folder %s\n", sw->name, sw->n, dir);
    if (sw->n_dup) printf("  (%d duplicate runs of the file dropped: same id)\n", sw->n_dup);
    printf("%5s  %-12s  %-7s  %8s  %11s  %9s  %s\n", "index", "id", "state", "steps", "train FLOPs", "est. time", "run");
  }
  for (int i = 0; i < sw->n; i++) {
    const pb_sweep_run *r = &sw->runs[i];
    const pb_sweep_state s = pb_sweep_state_of(dir, r, NULL, 0);
    char d[2048], f[32], t[32];
    pb_sweep_run_desc(r, d, sizeof d);
    if (isfinite(c[i].train_flops)) tf += c[i].train_flops, snprintf(f, sizeof f, "%.3g", c[i].train_flops);
    else snprintf(f, sizeof f, "-");
    if (isfinite(c[i].est_seconds)) ts += c[i].est_seconds;
    else unknown++;
    dur(t, sizeof t, c[i].est_seconds);
    if (ja) {
      cJSON *j = cJSON_CreateObject();
      cJSON_AddNumberToObject(j, "index", i);
      cJSON_AddStringToObject(j, "id", r->id);
      cJSON_AddStringToObject(j, "run", d);
      cJSON_AddStringToObject(j, "canonical", r->canon);
      cJSON_AddStringToObject(j, "state", pb_sweep_state_name(s));
      cJSON_AddNumberToObject(j, "steps", (double)c[i].steps);
      if (isfinite(c[i].step_flops)) cJSON_AddNumberToObject(j, "train_step_flops", c[i].step_flops);
      else cJSON_AddNullToObject(j, "train_step_flops");
      if (isfinite(c[i].train_flops)) cJSON_AddNumberToObject(j, "train_flops", c[i].train_flops);
      else cJSON_AddNullToObject(j, "train_flops");
      if (isfinite(c[i].est_seconds)) cJSON_AddNumberToObject(j, "est_seconds", c[i].est_seconds);
      else cJSON_AddNullToObject(j, "est_seconds");
      if (*c[i].note) cJSON_AddStringToObject(j, "note", c[i].note);
      cJSON_AddItemToArray(ja, j);
      continue;
    }
    printf("%5d  %-12s  %-7s  %8ld  %11s  %9s  %s%s%s\n", i, r->id, pb_sweep_state_name(s), c[i].steps, f, t, d,
           *c[i].note ? "  -- " : "", c[i].note);
  }
  if (ja) {
    char *txt = cJSON_Print(ja);
    if (txt) puts(txt);
    free(txt);
    cJSON_Delete(ja);
  } else {
    char t[32];
    dur(t, sizeof t, ts);
    printf("total: %.3g training FLOPs (exact counts at batch x max-len: an upper bound)", tf);
    char tp[32];
    dur(tp, sizeof tp, ts / jobs);
    if (!o->no_cal)
      printf("; about %s of training at %d thread%s per run, %s with -j %d%s", t, threads, threads > 1 ? "s" : "", tp, jobs,
             unknown ? " (runs without an estimate not included)" : "");
    printf("\n");
  }
  free(c);
  return PB_OK;
}

static int cmd_status(const pb_sweep *sw, const char *dir, const sweep_opts *o) {
  char *q = calloc((size_t)sw->n, 1);
  if (!q) return pb_set_error(PB_ERR_NOMEM, "sweep: out of memory");
  char (*acct)[16] = calloc((size_t)sw->n, sizeof *acct);
  if (!acct) {
    free(q);
    return pb_set_error(PB_ERR_NOMEM, "sweep: out of memory");
  }
  const int slurm = pb_sweep_slurm_queue(dir, sw->n, q), has_acct = pb_sweep_slurm_acct(dir, sw->n, acct);
  int count[5] = {0}; /* missing, done, failed, running, queued */
  for (int i = 0; i < sw->n; i++) {
    char why[1024], d[2048];
    pb_sweep_state s = pb_sweep_state_of(dir, &sw->runs[i], why, sizeof why);
    const char *name = pb_sweep_state_name(s);
    int k = (int)s;
    if (s != PB_SWEEP_DONE && q[i] == 'R') k = PB_SWEEP_RUNNING, name = "running";
    else if (s != PB_SWEEP_DONE && s != PB_SWEEP_RUNNING && q[i] == 'Q') k = 4, name = "queued";
    else if (s == PB_SWEEP_MISSING && *acct[i] && strcmp(acct[i], "COMPLETED") && strcmp(acct[i], "PENDING") &&
             strcmp(acct[i], "RUNNING")) { /* Slurm ended it before it could record anything (time, memory) */
      k = PB_SWEEP_FAILED, name = "failed";
      snprintf(why, sizeof why, "Slurm: %s", acct[i]);
    }
    count[k]++;
    if (o->list || k == PB_SWEEP_FAILED) {
      pb_sweep_run_desc(&sw->runs[i], d, sizeof d);
      printf("%5d  %s  %-7s  %s%s%s\n", i, sw->runs[i].id, name, d, *why && k == PB_SWEEP_FAILED ? "\n         " : "",
             k == PB_SWEEP_FAILED ? why : "");
    }
  }
  printf("sweep %s (%s): %d runs: %d done, %d running, %d queued, %d failed, %d missing%s\n", sw->name, dir, sw->n,
         count[PB_SWEEP_DONE], count[PB_SWEEP_RUNNING], count[4], count[PB_SWEEP_FAILED], count[PB_SWEEP_MISSING],
         slurm > 0 ? has_acct ? " (Slurm queue and accounting included)" : " (Slurm queue included)" : "");
  free(q);
  free(acct);
  return PB_OK;
}

int pb_cmd_sweep(int argc, char **argv) {
  if (argc < 2 || strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0) {
    fputs(USAGE, argc < 2 ? stderr : stdout);
    return argc < 2 ? 2 : 0;
  }
  const char *cmd = argv[1];
  static const char *const cmds[] = {"plan", "run", "slurm", "collect", "status", "exec", NULL};
  int known = 0;
  for (int i = 0; cmds[i]; i++) known |= strcmp(cmd, cmds[i]) == 0;
  if (!known) {
    fprintf(stderr, "peftbench sweep: unknown command '%s' (plan, run, slurm, collect, status)\n", cmd);
    return 2;
  }
  enum { O_DIR = 256, O_NOCAL, O_JSON, O_SUBMIT, O_OUT, O_LIST, O_INDEX, O_SKIPF };
  static const struct option opts[] = {{"dir", required_argument, 0, O_DIR},     {"jobs", required_argument, 0, 'j'},
                                       {"no-calibrate", no_argument, 0, O_NOCAL}, {"json", no_argument, 0, O_JSON},
                                       {"submit", no_argument, 0, O_SUBMIT},     {"out", required_argument, 0, O_OUT},
                                       {"list", no_argument, 0, O_LIST},         {"index", required_argument, 0, O_INDEX},
                                       {"skip-failed", no_argument, 0, O_SKIPF}, {"help", no_argument, 0, 'h'},
                                       {0, 0, 0, 0}};
  sweep_opts o = {.jobs = 0, .index = -1};
  int c;
  opterr = 0;
  optind = 2;
  while ((c = getopt_long(argc, argv, ":j:h", opts, NULL)) != -1) {
    switch (c) {
      case O_DIR: o.dir = optarg; break;
      case 'j': if (!pb_cli_int("-j", optarg, 1, 4096, &o.jobs)) return 2; break;
      case O_NOCAL: o.no_cal = 1; break;
      case O_JSON: o.json = 1; break;
      case O_SUBMIT: o.submit = 1; break;
      case O_OUT: o.out = optarg; break;
      case O_LIST: o.list = 1; break;
      case O_INDEX: if (!pb_cli_int("--index", optarg, 0, 100000000, &o.index)) return 2; break;
      case O_SKIPF: o.skip_failed = 1; break;
      case 'h': fputs(USAGE, stdout); return 0;
      default: return pb_cli_bad_option("sweep", argc, argv, opts);
    }
  }
  if (optind != argc - 1) {
    fprintf(stderr, "peftbench sweep %s: expected one sweep file (see peftbench sweep --help)\n", cmd);
    return 2;
  }
  if (strcmp(cmd, "exec") == 0 && (o.index < 0 || !o.dir)) {
    fprintf(stderr, "peftbench sweep exec: needs --dir DIR and --index I\n");
    return 2;
  }
  pb_sweep sw;
  int rc = pb_sweep_load(argv[optind], &sw);
  char dir[1024], bin[1024];
  if (!rc) pb_sweep_dir(&sw, o.dir, dir, sizeof dir);
  if (!rc && strcmp(cmd, "plan") == 0) rc = cmd_plan(&sw, dir, &o);
  else if (!rc && strcmp(cmd, "status") == 0) rc = cmd_status(&sw, dir, &o);
  else if (!rc && strcmp(cmd, "run") == 0) {
    const int cores = pb_usable_cores();
    int jobs = o.jobs > 0 ? (int)o.jobs : 1;
    if (jobs > cores) {
      fprintf(stderr, "peftbench sweep run: -j %d > %d cores: running %d at a time\n", jobs, cores, cores);
      jobs = cores;
    }
    const int threads = sw.threads ? sw.threads : cores / jobs;
    if (jobs * threads > cores) {
      fprintf(stderr, "peftbench sweep run: -j %d x %d threads (the file's \"threads\") would oversubscribe the %d "
              "cores; use -j %d\n", jobs, threads, cores, cores / threads > 0 ? cores / threads : 1);
      pb_sweep_free(&sw);
      return 2;
    }
    if (!(rc = pb_sweep_prepare(&sw, dir)) && !(rc = pb_self_exe(bin, sizeof bin)))
      rc = pb_sweep_run_local(&sw, bin, dir, jobs, threads, o.skip_failed);
  } else if (!rc && strcmp(cmd, "exec") == 0) {
    if (o.index >= sw.n) rc = pb_set_error(PB_ERR_ARG, "--index %ld: the plan has %d runs", o.index, sw.n);
    else if (pb_sweep_state_of(dir, &sw.runs[o.index], NULL, 0) == PB_SWEEP_DONE)
      fprintf(stderr, "sweep exec: run %ld (%s) is done already\n", o.index, sw.runs[o.index].id);
    else if (!(rc = pb_self_exe(bin, sizeof bin))) {
      const char *cpus = getenv("SLURM_CPUS_PER_TASK"), *job = getenv("SLURM_ARRAY_JOB_ID"), *task = getenv("SLURM_ARRAY_TASK_ID");
      const int threads = cpus && atoi(cpus) > 0 ? atoi(cpus) : sw.cpus_per_task > 0 ? sw.cpus_per_task : 1;
      char tag[64] = "";
      if (job) snprintf(tag, sizeof tag, "slurm:%s_%s", job, task ? task : "?");
      rc = pb_sweep_exec(bin, dir, &sw.runs[o.index], threads, job ? tag : NULL);
    }
  } else if (!rc && strcmp(cmd, "slurm") == 0) {
    char script[1400], jobid[64];
    int k = 0;
    if (!(rc = pb_sweep_prepare(&sw, dir)) && !(rc = pb_self_exe(bin, sizeof bin)))
      rc = pb_sweep_slurm_write(&sw, dir, bin, script, sizeof script, &k);
    if (!rc && k == 0) printf("sweep %s: every run is done; nothing to submit\n", sw.name);
    else if (!rc) {
      printf("sweep %s: %s: an array of %d task%s (of %d runs)\n", sw.name, script, k, k > 1 ? "s" : "", sw.n);
      if (o.submit && !(rc = pb_sweep_slurm_submit(dir, script, jobid, sizeof jobid)))
        printf("submitted: job %s (peftbench sweep status %s%s%s)\n", jobid, argv[optind], o.dir ? " --dir " : "",
               o.dir ? o.dir : "");
      else if (!o.submit)
        printf("submit with: sbatch %s   (or: peftbench sweep slurm %s --submit)\n", script, argv[optind]);
    }
  } else if (!rc && strcmp(cmd, "collect") == 0) {
    char out[1200];
    snprintf(out, sizeof out, "%s/results.jsonl", dir);
    int nd, nm, nf;
    if (!(rc = pb_sweep_collect(&sw, dir, o.out ? o.out : out, &nd, &nm, &nf))) {
      printf("sweep %s: %d of %d runs collected into %s", sw.name, nd, sw.n, o.out ? o.out : out);
      if (nm || nf) printf("; %d missing, %d failed (listed above)", nm, nf);
      printf("\n");
      if (nm || nf) rc = 1;
    }
  }
  if (rc && rc != 1 && rc != 130) fprintf(stderr, "peftbench sweep %s: %s\n", cmd, pb_last_error());
  pb_sweep_free(&sw);
  if (rc == 130) return 130;
  return rc == PB_ERR_ARG ? 2 : rc ? 1 : 0;
}
