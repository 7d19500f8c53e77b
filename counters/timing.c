/* Phase timing and process memory; see counters/timing.h. */
#include "counters/timing.h"

#include "util/status.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>




static double read_clock(clockid_t id) {
  struct timespec ts;
  if (clock_gettime(id, &ts) != 0) return -1.0;
  return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

double pb_wall_seconds(void) { return read_clock(CLOCK_MONOTONIC); }
double pb_cpu_seconds(void) { return read_clock(CLOCK_PROCESS_CPUTIME_ID); }

void pb_timing_init(pb_timing *t) {
  if (t) memset(t, 0, sizeof *t);
}

static int find(const pb_timing *t, const char *phase) {
  for (int i = 0; i < t->n; i++)
    if (strcmp(t->ph[i].name, phase) == 0) return i;
  return -1;
}

int pb_timing_start(pb_timing *t, const char *phase) {
  if (!t || !phase || !phase[0] || strlen(phase) >= PB_TIMING_NAME_LEN)
    return pb_set_error(PB_ERR_ARG, "counters/timing.c: pb_timing_start: bad timer or phase name");
  int i = find(t, phase);
  if (i < 0) {
    if (t->n >= PB_TIMING_MAX_PHASES)
      return pb_set_error(PB_ERR_ARG, "counters/timing.c: more than %d phases (at '%s')",
                  PB_TIMING_MAX_PHASES, phase);
    i = t->n++;
    memset(&t->ph[i], 0, sizeof t->ph[i]);
    snprintf(t->ph[i].name, sizeof t->ph[i].name, "%s", phase);
  }
  pb_timing_phase *p = &t->ph[i];
  if (p->running) return pb_set_error(PB_ERR_STATE, "counters/timing.c: phase '%s' started twice", phase);
  p->wall0 = pb_wall_seconds();
  p->cpu0 = pb_cpu_seconds();
  if (p->wall0 < 0 || p->cpu0 < 0)
    return pb_set_error(PB_ERR_LIB, "counters/timing.c: clock_gettime failed: %s", strerror(errno));
  p->running = 1;
  return 0;
}

int pb_timing_stop(pb_timing *t, const char *phase) {
  int i = t && phase ? find(t, phase) : -1;
  if (i < 0 || !t->ph[i].running)
    return pb_set_error(PB_ERR_STATE, "counters/timing.c: pb_timing_stop('%s') without start",
                phase ? phase : "(null)");
  pb_timing_phase *p = &t->ph[i];
  double w = pb_wall_seconds(), c = pb_cpu_seconds();
  if (w < 0 || c < 0)
    return pb_set_error(PB_ERR_LIB, "counters/timing.c: clock_gettime failed: %s", strerror(errno));
  p->wall_s += w - p->wall0;
  p->cpu_s += c - p->cpu0;
  p->running = 0;
  p->intervals++;
  return 0;
}

const pb_timing_phase *pb_timing_get(const pb_timing *t, const char *phase) {
  int i = t && phase ? find(t, phase) : -1;
  return i < 0 ? NULL : &t->ph[i];
}

int pb_memory_read(pb_memory *m) {
  if (!m) return pb_set_error(PB_ERR_ARG, "counters/timing.c: pb_memory_read: NULL");
  m->peak_rss_kb = m->vm_hwm_kb = m->current_rss_kb = -1;
  struct rusage ru;
  if (getrusage(RUSAGE_SELF, &ru) == 0) m->peak_rss_kb = ru.ru_maxrss; /* KiB on Linux */
  FILE *f = fopen("/proc/self/status", "r");
  if (f) {
    char line[256];
    long v;
    while (fgets(line, sizeof line, f)) {
      if (sscanf(line, "VmHWM: %ld kB", &v) == 1) m->vm_hwm_kb = v;
      else if (sscanf(line, "VmRSS: %ld kB", &v) == 1) m->current_rss_kb = v;
    }
    fclose(f);
  }
  if (m->peak_rss_kb < 0 && m->vm_hwm_kb < 0 && m->current_rss_kb < 0)
    return pb_set_error(PB_ERR_LIB, "counters/timing.c: neither getrusage nor /proc/self/status readable");
  return 0;
}

cJSON *pb_timing_to_json(const pb_timing *t) {
  cJSON *o = cJSON_CreateObject();
  if (!o || !t) return o;
  for (int i = 0; i < t->n; i++) {
    const pb_timing_phase *p = &t->ph[i];
    cJSON *ph = cJSON_AddObjectToObject(o, p->name);
    if (!ph || !cJSON_AddNumberToObject(ph, "wall_s", p->wall_s) ||
        !cJSON_AddNumberToObject(ph, "cpu_s", p->cpu_s) ||
        !cJSON_AddNumberToObject(ph, "intervals", p->intervals)) {
      cJSON_Delete(o);
      pb_set_error(PB_ERR_ARG, "counters/timing.c: out of memory building JSON");
      return NULL;
    }
  }
  return o;
}

static int add_kb(cJSON *o, const char *k, long v) {
  return (v < 0 ? cJSON_AddNullToObject(o, k) : cJSON_AddNumberToObject(o, k, (double)v)) != NULL;
}

cJSON *pb_memory_to_json(const pb_memory *m) {
  cJSON *o = cJSON_CreateObject();
  if (!o || !m) return o;
  if (!add_kb(o, "peak_rss_kb", m->peak_rss_kb) || !add_kb(o, "vm_hwm_kb", m->vm_hwm_kb) ||
      !add_kb(o, "current_rss_kb", m->current_rss_kb)) {
    cJSON_Delete(o);
    pb_set_error(PB_ERR_ARG, "counters/timing.c: out of memory building JSON");
    return NULL;
  }
  return o;
}
