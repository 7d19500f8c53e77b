/* Running sweeps and their state (sweeprun.h). */
#include "harness/sweeprun.h"

#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cjson/cJSON.h>

#include "util/fileio.h"
#include "util/status.h"
#include "harness/results.h"

#define MAX_ARGS 160

void pb_sweep_dir(const pb_sweep *sw, const char *given, char *out, size_t n) {
  if (given) snprintf(out, n, "%s", given);
  else snprintf(out, n, "sweeps/%s", sw->name);
}

int pb_self_exe(char *out, size_t n) {
  const ssize_t k = readlink("/proc/self/exe", out, n - 1);
  if (k <= 0) return pb_set_error(PB_ERR_IO, "sweep: cannot find this executable (/proc/self/exe): %s", strerror(errno));
  out[k] = 0;
  return PB_OK;
}

int pb_usable_cores(void) {
  cpu_set_t set;
  if (sched_getaffinity(0, sizeof set, &set) == 0) {
    const int c = CPU_COUNT(&set);
    if (c > 0) return c;
  }
  const long c = sysconf(_SC_NPROCESSORS_ONLN);
  return c > 0 ? (int)c : 1;
}

static void sub(char *out, size_t n, const char *dir, const char *what, const char *id, const char *ext) {
  snprintf(out, n, "%s/%s/%s%s", dir, what, id, ext);
}

int pb_sweep_prepare(const pb_sweep *sw, const char *dir) {
  static const char *const subs[] = {"shards", "out", "logs", "failed", "running", "slurm"};
  char p[1200];
  int rc = pb_mkdir_p(dir);
  for (size_t i = 0; !rc && i < sizeof subs / sizeof subs[0]; i++) {
    snprintf(p, sizeof p, "%s/%s", dir, subs[i]);
    rc = pb_mkdir_p(p);
  }
  if (rc) return rc;
  size_t cap = 4096, len = 0;
  char *buf = malloc(cap);
  if (!buf) return pb_set_error(PB_ERR_NOMEM, "sweep: out of memory");
  len += (size_t)snprintf(buf, cap, "index\tid\trun\n");
  for (int i = 0; i < sw->n; i++) {
    char d[2048];
    pb_sweep_run_desc(&sw->runs[i], d, sizeof d);
    const size_t need = strlen(d) + 64;
    if (len + need >= cap) {
      cap = 2 * (len + need);
      char *nb = realloc(buf, cap);
      if (!nb) {
        free(buf);
        return pb_set_error(PB_ERR_NOMEM, "sweep: out of memory");
      }
      buf = nb;
    }
    len += (size_t)snprintf(buf + len, cap - len, "%d\t%s\t%s\n", i, sw->runs[i].id, d);
  }
  snprintf(p, sizeof p, "%s/plan.tsv", dir);
  rc = pb_write_file_atomic(p, buf, len);
  free(buf);
  return rc;
}

const char *pb_sweep_state_name(pb_sweep_state s) {
  static const char *const n[] = {"missing", "done", "failed", "running"};
  return n[s];
}

/* a shard with at least one record */
static int has_record(const char *path) {
  struct stat st;
  if (stat(path, &st) != 0 || st.st_size == 0) return 0;
  cJSON *a = NULL;
  int bad = 0;
  if (pb_results_read(path, &a, &bad)) return 0;
  const int n = cJSON_GetArraySize(a);
  cJSON_Delete(a);
  return n > 0;
}

/* the running marker names a live process of this host */
static int marker_alive(const char *path) {
  char *txt = NULL;
  size_t len = 0;
  if (pb_read_file(path, &txt, &len)) return 0;
  char host[256] = "", me[256] = "";
  long pid = 0;
  const int ok = sscanf(txt, "%255s %ld", host, &pid) == 2;
  free(txt);
  gethostname(me, sizeof me - 1);
  if (!ok || pid <= 0) return 0;
  if (strcmp(host, me) != 0) return 1; /* another node's: trust it (Slurm status says more) */
  return kill((pid_t)pid, 0) == 0 || errno == EPERM;
}

pb_sweep_state pb_sweep_state_of(const char *dir, const pb_sweep_run *r, char *why, size_t n) {
  char p[1200];
  if (why && n) why[0] = 0;
  sub(p, sizeof p, dir, "shards", r->id, ".jsonl");
  if (has_record(p)) return PB_SWEEP_DONE;
  sub(p, sizeof p, dir, "running", r->id, "");
  if (access(p, F_OK) == 0 && marker_alive(p)) return PB_SWEEP_RUNNING;
  sub(p, sizeof p, dir, "failed", r->id, ".txt");
  char *txt = NULL;
  size_t len = 0;
  if (pb_read_file(p, &txt, &len) == PB_OK) {
    if (why && n) {
      snprintf(why, n, "%s", txt);
      for (char *c = why; *c; c++)
        if (*c == '\n') *c = *(c + 1) ? ' ' : 0;
    }
    free(txt);
    return PB_SWEEP_FAILED;
  }
  return PB_SWEEP_MISSING;
}

/* the last line of the log that says why `run` failed ("peftbench run: ..."), else its last line */
static void error_line(const char *log, long from, char *out, size_t n) {
  snprintf(out, n, "(no output)");
  FILE *f = fopen(log, "r");
  if (!f) return;
  if (from > 0) fseek(f, from, SEEK_SET);
  char line[2048];
  int found = 0;
  while (fgets(line, sizeof line, f)) {
    line[strcspn(line, "\n")] = 0;
    if (!*line) continue;
    if (strstr(line, "peftbench")) {
      snprintf(out, n, "%s", line);
      found = 1;
    } else if (!found) {
      snprintf(out, n, "%s", line);
    }
  }
  fclose(f);
}

static volatile sig_atomic_t stop_flag = 0;
static void on_signal(int sig) {
  (void)sig;
  stop_flag = 1;
}

/* starts run r: the marker, the log, the child; returns its pid (<0: error set) */
static pid_t spawn(const char *bin, const char *dir, const pb_sweep_run *r, int threads, const char *tag, long *log_at) {
  const char *argv[MAX_ARGS];
  argv[0] = bin;
  int n = pb_sweep_run_argv(r, argv + 1, MAX_ARGS - 12);
  if (n < 0) return (pid_t)pb_set_error(PB_ERR_ARG, "sweep: run %s has too many arguments", r->id);
  n++;
  char shard[1200], out[1200], log[1200], thr[16];
  sub(shard, sizeof shard, dir, "shards", r->id, ".jsonl");
  snprintf(out, sizeof out, "%s/out", dir);
  sub(log, sizeof log, dir, "logs", r->id, ".log");
  snprintf(thr, sizeof thr, "%d", threads);
  const char *extra[] = {"--results", shard, "--out", out, "--threads", thr, "--quiet", NULL};
  for (int i = 0; extra[i]; i++) argv[n++] = extra[i];
  argv[n] = NULL;
  const int fd = open(log, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
  if (fd < 0) return (pid_t)pb_set_error(PB_ERR_IO, "%s: %s", log, strerror(errno));
  *log_at = lseek(fd, 0, SEEK_END);
  char now[32];
  pb_utc_now(now, sizeof now);
  dprintf(fd, "==== %s attempt at %s:", r->id, now);
  for (int i = 0; argv[i]; i++) dprintf(fd, " %s", argv[i]);
  dprintf(fd, "\n");
  const pid_t pid = fork();
  if (pid < 0) {
    close(fd);
    return (pid_t)pb_set_error(PB_ERR_IO, "sweep: fork: %s", strerror(errno));
  }
  if (pid == 0) {
    signal(SIGINT, SIG_DFL);
    signal(SIGTERM, SIG_DFL);
    const int nul = open("/dev/null", O_RDONLY);
    if (nul >= 0) dup2(nul, 0);
    dup2(fd, 1);
    dup2(fd, 2);
    execv(bin, (char *const *)argv);
    dprintf(2, "peftbench sweep: exec %s: %s\n", bin, strerror(errno));
    _exit(127);
  }
  close(fd);
  char mark[1200], host[256] = "", txt[512];
  gethostname(host, sizeof host - 1);
  sub(mark, sizeof mark, dir, "running", r->id, "");
  const int k = snprintf(txt, sizeof txt, "%s %ld%s%s\n", host, (long)pid, tag ? " " : "", tag ? tag : "");
  if (pb_write_file_atomic(mark, txt, (size_t)k)) fprintf(stderr, "peftbench sweep: %s\n", pb_last_error());
  return pid;
}

/* the outcome of a finished child: marker removed, failed/ID.txt written or removed */
static int finish(const char *dir, const pb_sweep_run *r, int status, long log_at) {
  char mark[1200], failed[1200], log[1200], shard[1200];
  sub(mark, sizeof mark, dir, "running", r->id, "");
  sub(failed, sizeof failed, dir, "failed", r->id, ".txt");
  sub(log, sizeof log, dir, "logs", r->id, ".log");
  sub(shard, sizeof shard, dir, "shards", r->id, ".jsonl");
  unlink(mark);
  const int code = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + (WIFSIGNALED(status) ? WTERMSIG(status) : 0);
  if (code == 0 && has_record(shard)) {
    unlink(failed);
    return PB_OK;
  }
  if (stop_flag && (code == 1 || code >= 128)) return 130; /* interrupted: nothing written, redone next time */
  char line[2048], txt[2200];
  error_line(log, log_at, line, sizeof line);
  const int k = snprintf(txt, sizeof txt, "exit %d\n%s\n", code, code == 0 ? "exit 0 but no record in the shard" : line);
  int rc = pb_write_file_atomic(failed, txt, (size_t)k);
  if (rc) fprintf(stderr, "peftbench sweep: %s\n", pb_last_error());
  return pb_set_error(PB_ERR_IO, "run %s failed (exit %d): %s", r->id, code, line);
}

int pb_sweep_exec(const char *bin, const char *dir, const pb_sweep_run *r, int threads, const char *tag) {
  struct sigaction sa, oi, ot;
  memset(&sa, 0, sizeof sa);
  sa.sa_handler = on_signal;
  sigaction(SIGINT, &sa, &oi);
  sigaction(SIGTERM, &sa, &ot);
  long at = 0;
  const pid_t pid = spawn(bin, dir, r, threads, tag, &at);
  int rc;
  if (pid < 0) rc = (int)pid;
  else {
    int st = 0;
    for (;;) {
      const pid_t w = waitpid(pid, &st, 0);
      if (w == pid) break;
      if (w < 0 && errno == EINTR) {
        if (stop_flag) kill(pid, SIGINT);
        continue;
      }
      break;
    }
    rc = finish(dir, r, st, at);
  }
  sigaction(SIGINT, &oi, NULL);
  sigaction(SIGTERM, &ot, NULL);
  return rc;
}

static void fmt_dur(char *b, size_t n, double s) {
  if (s < 0) snprintf(b, n, "?");
  else if (s < 90) snprintf(b, n, "%.0fs", s);
  else if (s < 5400) snprintf(b, n, "%ldm%02lds", (long)(s / 60), (long)s % 60);
  else snprintf(b, n, "%.1fh", s / 3600);
}

static double now_s(void) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

int pb_sweep_run_local(const pb_sweep *sw, const char *bin, const char *dir, int jobs, int threads, int skip_failed) {
  int *todo = malloc(sizeof(int) * (size_t)sw->n);
  pid_t *pids = calloc((size_t)jobs, sizeof *pids);
  int *slot_run = calloc((size_t)jobs, sizeof *slot_run);
  long *slot_log = calloc((size_t)jobs, sizeof *slot_log);
  double *slot_t0 = calloc((size_t)jobs, sizeof *slot_t0);
  if (!todo || !pids || !slot_run || !slot_log || !slot_t0) {
    free(todo), free(pids), free(slot_run), free(slot_log), free(slot_t0);
    return pb_set_error(PB_ERR_NOMEM, "sweep: out of memory");
  }
  int nt = 0, done = 0, failed = 0, busy_elsewhere = 0, skipped_failed = 0;
  for (int i = 0; i < sw->n; i++) {
    const pb_sweep_state s = pb_sweep_state_of(dir, &sw->runs[i], NULL, 0);
    if (s == PB_SWEEP_DONE) done++;
    else if (s == PB_SWEEP_RUNNING) busy_elsewhere++;
    else if (s == PB_SWEEP_FAILED && skip_failed) skipped_failed++;
    else todo[nt++] = i;
  }
  fprintf(stderr, "sweep %s: %d runs: %d done, %d to run", sw->name, sw->n, done, nt);
  if (busy_elsewhere) fprintf(stderr, ", %d running elsewhere (left alone)", busy_elsewhere);
  if (skipped_failed) fprintf(stderr, ", %d failed (skipped: --skip-failed)", skipped_failed);
  fprintf(stderr, "; %d at a time x %d thread%s\n", jobs, threads, threads > 1 ? "s" : "");
  struct sigaction sa, oi, ot;
  memset(&sa, 0, sizeof sa);
  sa.sa_handler = on_signal;
  sigaction(SIGINT, &sa, &oi);
  sigaction(SIGTERM, &sa, &ot);
  stop_flag = 0;
  int next = 0, active = 0, finished = 0, rc = PB_OK;
  double dur_sum = 0;
  const double t_start = now_s();
  while ((next < nt && !stop_flag) || active > 0) {
    while (next < nt && active < jobs && !stop_flag) {
      int s = 0;
      while (pids[s]) s++;
      const pb_sweep_run *r = &sw->runs[todo[next]];
      const pid_t pid = spawn(bin, dir, r, threads, NULL, &slot_log[s]);
      next++;
      if (pid < 0) {
        fprintf(stderr, "peftbench sweep: %s\n", pb_last_error());
        failed++;
        continue;
      }
      pids[s] = pid;
      slot_run[s] = todo[next - 1];
      slot_t0[s] = now_s();
      active++;
    }
    int st = 0;
    const pid_t w = waitpid(-1, &st, 0);
    if (w < 0) {
      if (errno == EINTR) {
        if (stop_flag)
          for (int s = 0; s < jobs; s++)
            if (pids[s]) kill(pids[s], SIGINT);
        continue;
      }
      break; /* no children */
    }
    int s = 0;
    while (s < jobs && pids[s] != w) s++;
    if (s == jobs) continue;
    pids[s] = 0;
    active--;
    const pb_sweep_run *r = &sw->runs[slot_run[s]];
    const int frc = finish(dir, r, st, slot_log[s]);
    finished++;
    dur_sum += now_s() - slot_t0[s];
    if (frc == PB_OK) done++;
    else if (frc != 130) {
      failed++;
      fprintf(stderr, "peftbench sweep: %s\n", pb_last_error());
    }
    char el[32], eta[32];
    fmt_dur(el, sizeof el, now_s() - t_start);
    const int left = nt - next + active;
    fmt_dur(eta, sizeof eta, finished ? dur_sum / finished * left / jobs : -1);
    fprintf(stderr, "sweep %s: %d/%d done, %d running, %d failed, %d to go; elapsed %s, ETA %s\n", sw->name, done, sw->n,
            active, failed, nt - next, el, stop_flag ? "-" : eta);
  }
  sigaction(SIGINT, &oi, NULL);
  sigaction(SIGTERM, &ot, NULL);
  if (stop_flag) {
    fprintf(stderr, "sweep %s: interrupted; unfinished runs wrote nothing and run again next time\n", sw->name);
    rc = 130;
  } else if (failed) {
    rc = pb_set_error(PB_ERR_IO, "%d of %d runs failed (their error lines: `peftbench sweep status %s`)", failed, sw->n,
                      sw->path);
  }
  free(todo), free(pids), free(slot_run), free(slot_log), free(slot_t0);
  return rc;
}

int pb_sweep_collect(const pb_sweep *sw, const char *dir, const char *out, int *n_done, int *n_missing, int *n_failed) {
  *n_done = *n_missing = *n_failed = 0;
  size_t cap = 1 << 16, len = 0;
  char *buf = malloc(cap);
  if (!buf) return pb_set_error(PB_ERR_NOMEM, "sweep: out of memory");
  int rc = PB_OK;
  for (int i = 0; !rc && i < sw->n; i++) {
    const pb_sweep_run *r = &sw->runs[i];
    char shard[1200], why[1024];
    const pb_sweep_state s = pb_sweep_state_of(dir, r, why, sizeof why);
    if (s != PB_SWEEP_DONE) {
      char d[1024];
      pb_sweep_run_desc(r, d, sizeof d);
      if (s == PB_SWEEP_FAILED) (*n_failed)++;
      else (*n_missing)++;
      fprintf(stderr, "  %s %-7s %s%s%s\n", r->id, pb_sweep_state_name(s), d, *why ? " -- " : "", why);
      continue;
    }
    sub(shard, sizeof shard, dir, "shards", r->id, ".jsonl");
    cJSON *a = NULL;
    int bad = 0;
    if ((rc = pb_results_read(shard, &a, &bad))) break;
    cJSON *rec;
    cJSON_ArrayForEach(rec, a) {
      cJSON *js = cJSON_CreateObject();
      cJSON_AddStringToObject(js, "name", sw->name);
      cJSON_AddStringToObject(js, "run_id", r->id);
      cJSON_AddNumberToObject(js, "index", i);
      cJSON_DeleteItemFromObjectCaseSensitive(rec, "sweep");
      cJSON_AddItemToObject(rec, "sweep", js);
      char *txt = cJSON_PrintUnformatted(rec);
      if (!txt) {
        rc = pb_set_error(PB_ERR_NOMEM, "sweep: out of memory");
        break;
      }
      const size_t k = strlen(txt);
      if (len + k + 2 > cap) {
        cap = 2 * (len + k + 2);
        char *nb = realloc(buf, cap);
        if (!nb) {
          free(txt);
          rc = pb_set_error(PB_ERR_NOMEM, "sweep: out of memory");
          break;
        }
        buf = nb;
      }
      memcpy(buf + len, txt, k);
      len += k;
      buf[len++] = '\n';
      free(txt);
    }
    cJSON_Delete(a);
    (*n_done)++;
  }
  if (!rc) rc = pb_write_file_atomic(out, buf, len);
  free(buf);
  return rc;
}
