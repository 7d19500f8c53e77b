/* Wall-clock and CPU time per named phase, and process memory (peak / current RSS).
 *
 * Wall time: CLOCK_MONOTONIC. CPU time: CLOCK_PROCESS_CPUTIME_ID, i.e. all threads of the
 * process (OpenBLAS/OpenMP workers included), so cpu_s may exceed wall_s.
 * Status codes: 0 ok, negative error; pb_last_error() (util/status.h) holds one line. */
#ifndef PB_COUNTERS_TIMING_H
#define PB_COUNTERS_TIMING_H

#include <cjson/cJSON.h>

#define PB_TIMING_MAX_PHASES 16
#define PB_TIMING_NAME_LEN 64

typedef struct {
  char name[PB_TIMING_NAME_LEN]; /* phase name ("train") */
  int running;                   /* between start and stop */
  int intervals;                 /* completed start/stop pairs */
  double wall_s;                 /* summed wall seconds over completed intervals */
  double cpu_s;                  /* summed process CPU seconds over completed intervals */
  double wall0, cpu0;            /* clock readings at the last start (seconds) */
} pb_timing_phase;

typedef struct {
  int n;                                      /* phases in use */
  pb_timing_phase ph[PB_TIMING_MAX_PHASES];   /* [n] */
} pb_timing;

typedef struct {
  long peak_rss_kb;    /* getrusage(RUSAGE_SELF).ru_maxrss (KiB on Linux), -1 if unknown */
  long vm_hwm_kb;      /* /proc/self/status VmHWM (peak resident), -1 if unknown */
  long current_rss_kb; /* /proc/self/status VmRSS, -1 if unknown */
} pb_memory;

double pb_wall_seconds(void); /* monotonic clock, seconds */
double pb_cpu_seconds(void);  /* process CPU time, seconds */

void pb_timing_init(pb_timing *t);
int pb_timing_start(pb_timing *t, const char *phase);
int pb_timing_stop(pb_timing *t, const char *phase);
/* NULL if the phase was never started */
const pb_timing_phase *pb_timing_get(const pb_timing *t, const char *phase);

/* Fills *m; returns 0 if at least one figure was read, else PB_ERR_LIB. */
int pb_memory_read(pb_memory *m);

/* New cJSON objects (caller frees), NULL on allocation failure:
 * timing: {"train": {"wall_s": 1.5, "cpu_s": 2.9, "intervals": 3}, ...}
 * memory: {"peak_rss_kb": ..., "vm_hwm_kb": ..., "current_rss_kb": ...} (null if unknown) */
cJSON *pb_timing_to_json(const pb_timing *t);
cJSON *pb_memory_to_json(const pb_memory *m);

#endif
