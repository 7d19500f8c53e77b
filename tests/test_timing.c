/* counters/timing: phases accumulate, CPU time of busy work, peak RSS after touching 50 MB,
 * JSON shape, misuse reported as errors. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "counters/timing.h"
#include "tests/check.h"


static volatile double g_sink;

static void busy(double seconds) {
  double t0 = pb_cpu_seconds(), x = 1.0;
  while (pb_cpu_seconds() - t0 < seconds)
    for (int i = 0; i < 10000; i++) x = x * 1.0000001 + 1e-9;
  g_sink = x;
}

int main(void) {
  pb_timing t;
  pb_timing_init(&t);

  /* two train intervals with an eval in between */
  CHECK(pb_timing_start(&t, "train") == 0, "start train");
  busy(0.03);
  CHECK(pb_timing_stop(&t, "train") == 0, "stop train");
  const pb_timing_phase *tr = pb_timing_get(&t, "train");
  double cpu1 = tr ? tr->cpu_s : -1, wall1 = tr ? tr->wall_s : -1;
  CHECK(cpu1 >= 0.025, "train cpu after 30 ms busy loop = %.4f s (>= 0.025)", cpu1);
  CHECK(wall1 >= cpu1 * 0.5 && wall1 > 0, "train wall = %.4f s > 0", wall1);

  CHECK(pb_timing_start(&t, "eval") == 0, "start eval");
  busy(0.01);
  CHECK(pb_timing_stop(&t, "eval") == 0, "stop eval");

  CHECK(pb_timing_start(&t, "train") == 0, "start train again");
  busy(0.02);
  CHECK(pb_timing_stop(&t, "train") == 0, "stop train again");
  tr = pb_timing_get(&t, "train");
  const pb_timing_phase *ev = pb_timing_get(&t, "eval");
  CHECK(tr && tr->intervals == 2, "train has 2 intervals (%d)", tr ? tr->intervals : -1);
  CHECK(tr && tr->cpu_s >= cpu1 + 0.015, "train cpu accumulates: %.4f -> %.4f s", cpu1,
        tr ? tr->cpu_s : -1);
  CHECK(ev && ev->intervals == 1 && ev->cpu_s >= 0.008 && ev->cpu_s < tr->cpu_s,
        "eval separate: cpu %.4f s, 1 interval", ev ? ev->cpu_s : -1);
  CHECK(pb_timing_get(&t, "nope") == NULL, "unknown phase -> NULL");

  /* misuse */
  CHECK(pb_timing_stop(&t, "eval") < 0 && strlen(pb_last_error()) > 0,
        "stop without start -> error: %s", pb_last_error());
  CHECK(pb_timing_start(&t, "eval") == 0 && pb_timing_start(&t, "eval") < 0,
        "start twice -> error: %s", pb_last_error());
  CHECK(pb_timing_stop(&t, "eval") == 0, "stop eval");
  CHECK(pb_timing_start(&t, NULL) < 0 && pb_timing_start(NULL, "x") < 0, "NULL args rejected");

  /* memory: peak RSS grows after touching 50 MB */
  pb_memory m0, m1;
  CHECK(pb_memory_read(&m0) == 0, "memory before: peak %ld kB, VmHWM %ld kB, RSS %ld kB",
        m0.peak_rss_kb, m0.vm_hwm_kb, m0.current_rss_kb);
  size_t n = 50u << 20;
  char *buf = malloc(n);
  CHECK(buf != NULL, "malloc 50 MB");
  if (buf) {
    for (size_t i = 0; i < n; i += 4096) buf[i] = (char)i;
    g_sink = buf[n / 2];
  }
  CHECK(pb_memory_read(&m1) == 0, "memory after: peak %ld kB, VmHWM %ld kB, RSS %ld kB",
        m1.peak_rss_kb, m1.vm_hwm_kb, m1.current_rss_kb);
  CHECK(m1.peak_rss_kb >= m0.peak_rss_kb + 45000, "ru_maxrss grew by %ld kB (>= 45000)",
        m1.peak_rss_kb - m0.peak_rss_kb);
  CHECK(m1.vm_hwm_kb >= m0.vm_hwm_kb + 45000, "VmHWM grew by %ld kB (>= 45000)",
        m1.vm_hwm_kb - m0.vm_hwm_kb);
  CHECK(m1.current_rss_kb >= m0.current_rss_kb + 45000, "VmRSS grew by %ld kB (>= 45000)",
        m1.current_rss_kb - m0.current_rss_kb);
  free(buf);

  /* JSON shape */
  cJSON *j = pb_timing_to_json(&t), *mj = pb_memory_to_json(&m1);
  cJSON *jt = j ? cJSON_GetObjectItemCaseSensitive(j, "train") : NULL;
  cJSON *jw = jt ? cJSON_GetObjectItemCaseSensitive(jt, "wall_s") : NULL;
  cJSON *jc = jt ? cJSON_GetObjectItemCaseSensitive(jt, "cpu_s") : NULL;
  cJSON *ji = jt ? cJSON_GetObjectItemCaseSensitive(jt, "intervals") : NULL;
  CHECK(cJSON_IsNumber(jw) && cJSON_IsNumber(jc) && cJSON_IsNumber(ji) && ji->valuedouble == 2 &&
            cJSON_GetObjectItemCaseSensitive(j, "eval") != NULL,
        "timing JSON has train{wall_s,cpu_s,intervals=2} and eval");
  cJSON *jp = mj ? cJSON_GetObjectItemCaseSensitive(mj, "peak_rss_kb") : NULL;
  CHECK(cJSON_IsNumber(jp) && jp->valuedouble == (double)m1.peak_rss_kb &&
            cJSON_IsNumber(cJSON_GetObjectItemCaseSensitive(mj, "vm_hwm_kb")) &&
            cJSON_IsNumber(cJSON_GetObjectItemCaseSensitive(mj, "current_rss_kb")),
        "memory JSON has peak_rss_kb, vm_hwm_kb, current_rss_kb");
  char *s = j ? cJSON_PrintUnformatted(j) : NULL;
  char *s2 = mj ? cJSON_PrintUnformatted(mj) : NULL;
  printf("timing: %s\nmemory: %s\n", s ? s : "?", s2 ? s2 : "?");
  free(s);
  free(s2);
  cJSON_Delete(j);
  cJSON_Delete(mj);

  printf(failures ? "test_timing: FAILED\n" : "test_timing: all passed\n");
  return check_exit_status();
}
