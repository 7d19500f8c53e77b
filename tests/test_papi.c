/* counters/papi + counters/sde: default event list on this machine, per-phase values,
 * unknown events recorded with reasons, JSON shape, forced multiplexing, misuse errors,
 * start/stop overhead, and the SDE round trip (op counters read back through PAPI). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "counters/opcount.h"
#include "counters/papi.h"
#include "counters/sde.h"
#include "counters/timing.h"
#include "tests/check.h"

#if PB_HAVE_PAPI
#include <papi.h>
#endif

/* LeakSanitizer (PB_SANITIZE builds): libsde 7.0 keeps the strdup'ed names of registered
 * events after papi_sde_shutdown (20 small strings). That is inside libsde, not ours. */
const char *__lsan_default_suppressions(void);
__attribute__((used)) const char *__lsan_default_suppressions(void) { return "leak:libsde.so"; }


static volatile double g_sink;

static double thread_cpu(void) {
  struct timespec ts;
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
  return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static void busy(double seconds) {
  double t0 = thread_cpu(), x = 1.0;
  while (thread_cpu() - t0 < seconds)
    for (int i = 0; i < 10000; i++) x = x * 1.0000001 + 1e-9;
  g_sink = x;
}

/* touches fresh pages so that page faults happen */
static void touch_mb(int mb) {
  size_t n = (size_t)mb << 20;
  char *p = malloc(n);
  if (!p) return;
  for (size_t i = 0; i < n; i += 4096) p[i] = (char)i;
  g_sink = p[n / 3];
  free(p);
}

/* The invariant of every event: available, or unavailable with a non-empty reason; and the
 * JSON agrees: phases hold a number exactly for available events, "unavailable" holds a
 * non-empty string exactly for unavailable ones. */
static int check_json_shape(const char *what) {
  cJSON *j = pb_papi_to_json();
  int ok = j != NULL;
  cJSON *av = ok ? cJSON_GetObjectItemCaseSensitive(j, "available") : NULL;
  cJSON *rs = ok ? cJSON_GetObjectItemCaseSensitive(j, "reason") : NULL;
  cJSON *mx = ok ? cJSON_GetObjectItemCaseSensitive(j, "multiplexed") : NULL;
  cJSON *ph = ok ? cJSON_GetObjectItemCaseSensitive(j, "phases") : NULL;
  cJSON *un = ok ? cJSON_GetObjectItemCaseSensitive(j, "unavailable") : NULL;
  cJSON *evs = ok ? cJSON_GetObjectItemCaseSensitive(j, "events") : NULL;
  ok = ok && cJSON_IsBool(av) && cJSON_IsBool(mx) && cJSON_IsObject(ph) && cJSON_IsObject(un) &&
       cJSON_IsArray(evs);
  ok = ok && (cJSON_IsTrue(av) == (pb_papi_available() != 0));
  ok = ok && (pb_papi_available() ? cJSON_IsNull(rs) : (cJSON_IsString(rs) && rs->valuestring[0]));
  ok = ok && cJSON_GetArraySize(evs) == pb_papi_num_events() &&
       cJSON_GetArraySize(ph) == pb_papi_num_phases();
  int n_un = 0;
  for (int i = 0; ok && i < pb_papi_num_events(); i++) {
    const char *name = pb_papi_event_name(i);
    int a = pb_papi_event_available(i);
    const char *r = pb_papi_event_reason(i);
    if (!a && !(r && r[0])) ok = 0; /* invariant */
    cJSON *u = cJSON_GetObjectItemCaseSensitive(un, name);
    if (a ? u != NULL : !(cJSON_IsString(u) && strcmp(u->valuestring, r) == 0)) ok = 0;
    n_un += !a;
    cJSON *p;
    cJSON_ArrayForEach(p, ph) {
      cJSON *v = cJSON_GetObjectItemCaseSensitive(p, name);
      if (a ? !cJSON_IsNumber(v) : !cJSON_IsNull(v)) ok = 0;
    }
  }
  ok = ok && cJSON_GetArraySize(un) == n_un;
  char *s = j ? cJSON_PrintUnformatted(j) : NULL;
  CHECK(ok, "%s: JSON shape and per-event invariant (value xor non-empty reason)", what);
  if (s) printf("     %s\n", s);
  free(s);
  cJSON_Delete(j);
  return ok;
}

static long long value(const char *phase, const char *event) {
  long long v = -1;
  if (pb_papi_phase_value(phase, event, &v) != 0) return -1;
  return v;
}

#if !PB_HAVE_PAPI
static void test_without_papi(void) {
  CHECK(pb_papi_init(NULL) == 0, "init without PAPI returns 0 (module usable)");
  CHECK(!pb_papi_available() && strstr(pb_papi_reason(), "not built in"), "reason: %s",
        pb_papi_reason());
  CHECK(pb_papi_start("train") == 0 && pb_papi_stop("train") == 0, "start/stop are no-ops");
  int all_null = pb_papi_num_events() >= 8;
  for (int i = 0; i < pb_papi_num_events(); i++)
    all_null &= !pb_papi_event_available(i) && pb_papi_event_reason(i)[0];
  CHECK(all_null, "all %d events unavailable with a reason", pb_papi_num_events());
  check_json_shape("no PAPI");
  CHECK(pb_sde_register() < 0 && strstr(pb_last_error(), "not built in"),
        "SDE export reports: %s", pb_last_error());
}
#endif

#if PB_HAVE_PAPI
/* PAPI's reason for disabling its perf_event component on this machine, or NULL when active.
 * Disabled (libpfm4 finds no PMU it knows, e.g. a CPU model newer than libpfm4 under a VM),
 * no perf:: software event exists either: the tests then check that every such event is
 * reported unavailable with that reason, instead of checking its values. */
static const char *perf_event_off(void) {
  int c = PAPI_get_component_index("perf_event");
  const PAPI_component_info_t *ci = c >= 0 ? PAPI_get_component_info(c) : NULL;
  return ci && ci->disabled ? ci->disabled_reason : NULL;
}

/* event i is unavailable and its reason names the disabled perf_event component */
static int off_with_reason(int i) {
  return i >= 0 && !pb_papi_event_available(i) && strstr(pb_papi_event_reason(i), "perf_event") &&
         strstr(pb_papi_event_reason(i), perf_event_off());
}

static void test_default_list(void) {
  int rc = pb_papi_init(NULL);
  const char *off = perf_event_off();
  if (off) printf("     PAPI's perf_event component is disabled here: %s\n", off);
  CHECK(rc == 0 && (pb_papi_available() || (off && strstr(pb_papi_reason(), "none of the"))),
        "pb_papi_init(default) -> %d, available=%d %s", rc, pb_papi_available(), pb_papi_reason());
  printf("     events on this machine (multiplexed=%d):\n", pb_papi_multiplexed());
  for (int i = 0; i < pb_papi_num_events(); i++)
    printf("       %-20s %s %s\n", pb_papi_event_name(i),
           pb_papi_event_available(i) ? "available" : "null:", pb_papi_event_reason(i));
  static const char *want[] = {"PAPI_TOT_CYC", "PAPI_TOT_INS", "PAPI_SP_OPS", "PAPI_L1_DCM",
                               "PAPI_L2_DCM", "PAPI_LST_INS", "perf::TASK-CLOCK",
                               "perf::PAGE-FAULTS"};
  int all = 1;
  for (size_t k = 0; k < sizeof want / sizeof *want; k++) all &= pb_papi_event_index(want[k]) >= 0;
  CHECK(all, "default list recorded (6 presets + 2 software events, %d in total)",
        pb_papi_num_events());
  int sp = pb_papi_event_index("PAPI_SP_OPS"), vec = pb_papi_event_index("PAPI_VEC_SP");
  CHECK(pb_papi_event_available(sp) || vec >= 0,
        "PAPI_SP_OPS counted or its fallback PAPI_VEC_SP tried");
  int presets_ok = 1;
  for (int i = 0; i < pb_papi_num_events(); i++)
    if (strncmp(pb_papi_event_name(i), "PAPI_", 5) == 0 && !pb_papi_event_available(i))
      presets_ok &= strlen(pb_papi_event_reason(i)) > 10 && strstr(pb_papi_event_reason(i), "PAPI_E");
  CHECK(presets_ok, "every unavailable preset has a PAPI_E* reason");
  int tc = pb_papi_event_index("perf::TASK-CLOCK"), pf = pb_papi_event_index("perf::PAGE-FAULTS");
  if (off) {
    CHECK(off_with_reason(tc) && off_with_reason(pf), "software events unavailable because: %s (got: %s)", off,
          pb_papi_event_reason(tc));
    CHECK(pb_papi_start("train") == 0 && pb_papi_stop("train") == 0, "phases still work with nothing counting");
    long long v;
    CHECK(pb_papi_phase_value("train", "perf::TASK-CLOCK", &v) < 0, "no value for an unavailable event");
    check_json_shape("default list, perf_event disabled");
    return;
  }
  CHECK(pb_papi_event_available(tc), "perf::TASK-CLOCK available");
  CHECK(pb_papi_event_available(pf), "perf::PAGE-FAULTS available");

  double c0 = thread_cpu();
  CHECK(pb_papi_start("train") == 0, "start train");
  busy(0.03);
  touch_mb(8);
  CHECK(pb_papi_stop("train") == 0, "stop train");
  double train_cpu = thread_cpu() - c0;
  CHECK(pb_papi_start("eval") == 0, "start eval");
  busy(0.01);
  CHECK(pb_papi_stop("eval") == 0, "stop eval");
  long long tc_train = value("train", "perf::TASK-CLOCK"), tc_eval = value("eval", "perf::TASK-CLOCK");
  long long pf_train = value("train", "perf::PAGE-FAULTS");
  CHECK(tc_train > 0, "train perf::TASK-CLOCK = %lld ns", tc_train);
  CHECK(tc_train > 0.5e9 * train_cpu && tc_train < 1.5e9 * train_cpu + 2e6,
        "TASK-CLOCK agrees with thread CPU time %.4f s", train_cpu);
  CHECK(tc_eval > 0 && tc_eval < tc_train, "eval perf::TASK-CLOCK = %lld ns (< train)", tc_eval);
  CHECK(pf_train >= 1000, "train perf::PAGE-FAULTS = %lld (touched 8 MB = 2048 pages)", pf_train);
  /* second train interval accumulates */
  CHECK(pb_papi_start("train") == 0, "start train again");
  busy(0.01);
  CHECK(pb_papi_stop("train") == 0, "stop train again");
  CHECK(value("train", "perf::TASK-CLOCK") > tc_train + 5000000LL,
        "train TASK-CLOCK accumulates: %lld -> %lld", tc_train, value("train", "perf::TASK-CLOCK"));
  long long dummy;
  CHECK(pb_papi_phase_value("train", "PAPI_NOT_LISTED", &dummy) < 0, "unlisted event -> error");
  if (!pb_papi_event_available(pb_papi_event_index("PAPI_TOT_CYC")))
    CHECK(pb_papi_phase_value("train", "PAPI_TOT_CYC", &dummy) < 0,
          "unavailable event has no value: %s", pb_last_error());

  /* misuse */
  CHECK(pb_papi_stop("eval") < 0, "stop without start -> %s", pb_last_error());
  CHECK(pb_papi_start("eval") == 0 && pb_papi_start("eval") < 0, "start twice -> %s",
        pb_last_error());
  pb_papi_stop("eval");
  CHECK(pb_papi_start(NULL) < 0 && pb_papi_start("") < 0, "NULL/empty phase rejected");
  check_json_shape("default list");

  /* overhead of one start/stop pair */
  int iters = 20000;
  double t0 = pb_wall_seconds();
  for (int i = 0; i < iters; i++) {
    pb_papi_start("overhead");
    pb_papi_stop("overhead");
  }
  double us = (pb_wall_seconds() - t0) / iters * 1e6;
  int n_counting = 0;
  for (int i = 0; i < pb_papi_num_events(); i++) n_counting += pb_papi_event_available(i);
  printf("     overhead: %.2f us per pb_papi_start/stop pair (%d of %d events counting)\n", us,
         n_counting, pb_papi_num_events());
  CHECK(us > 0 && us < 1000, "start/stop overhead %.2f us < 1 ms", us);
}

static void test_unknown_events(void) {
  int rc = pb_papi_init("PAPI_NOPE, bogus::x ,rocm_smi:::foo,perf::TASK-CLOCK");
  CHECK(rc == 0 && pb_papi_available() == !perf_event_off(), "init with unknown names -> %d", rc);
  const char *names[] = {"PAPI_NOPE", "bogus::x", "rocm_smi:::foo"};
  for (int k = 0; k < 3; k++) {
    int i = pb_papi_event_index(names[k]);
    CHECK(i >= 0 && !pb_papi_event_available(i) && strlen(pb_papi_event_reason(i)) > 10,
          "%s unavailable: %s", names[k], i >= 0 ? pb_papi_event_reason(i) : "(not recorded)");
  }
  int tc = pb_papi_event_index("perf::TASK-CLOCK");
  CHECK((perf_event_off() ? off_with_reason(tc) : pb_papi_event_available(tc)) && pb_papi_num_events() == 5,
        "listed software event counted once, PAGE-FAULTS appended (%d events)",
        pb_papi_num_events());
  pb_papi_start("train");
  busy(0.005);
  pb_papi_stop("train");
  if (!perf_event_off())
    CHECK(value("train", "perf::TASK-CLOCK") > 0, "TASK-CLOCK still counted beside bad names");
  check_json_shape("unknown names");
  /* invalid input */
  char big[5000];
  memset(big, 'A', sizeof big - 1);
  big[sizeof big - 1] = '\0';
  CHECK(pb_papi_init(big) < 0, "oversized list rejected: %s", pb_last_error());
  CHECK(pb_papi_num_events() == 0, "module left empty after rejected init");
}

static void test_multiplex(void) {
  int rc = pb_papi_init_ex("perf::TASK-CLOCK,perf::PAGE-FAULTS,perf::CONTEXT-SWITCHES",
                           PB_PAPI_FORCE_MULTIPLEX);
  int tc = pb_papi_event_index("perf::TASK-CLOCK");
  printf("     forced multiplexing: multiplexed=%d, error: %s\n", pb_papi_multiplexed(),
         pb_papi_multiplex_error()[0] ? pb_papi_multiplex_error() : "(none)");
  CHECK(rc == 0 && (pb_papi_multiplexed() != 0) != (pb_papi_multiplex_error()[0] != 0),
        "forced multiplexing: either multiplexed, or refused with a reason");
  pb_papi_start("train");
  busy(0.02);
  pb_papi_stop("train");
  if (perf_event_off()) {
    CHECK(off_with_reason(tc) && !pb_papi_multiplexed(), "nothing to multiplex: %s", pb_papi_multiplex_error());
  } else {
    CHECK(pb_papi_event_available(tc), "TASK-CLOCK counted (multiplexed or not): %s", pb_papi_event_reason(tc));
    long long v = value("train", "perf::TASK-CLOCK");
    CHECK(v > 10000000LL, "TASK-CLOCK = %lld ns after 20 ms busy", v);
  }
  cJSON *j = pb_papi_to_json();
  cJSON *m = j ? cJSON_GetObjectItemCaseSensitive(j, "multiplexed") : NULL;
  cJSON *me = j ? cJSON_GetObjectItemCaseSensitive(j, "multiplex_error") : NULL;
  CHECK(cJSON_IsBool(m) && (cJSON_IsTrue(m) == (pb_papi_multiplexed() != 0)) &&
            (pb_papi_multiplex_error()[0] ? cJSON_IsString(me) : cJSON_IsNull(me)),
        "JSON multiplexed / multiplex_error agree");
  cJSON_Delete(j);
  check_json_shape("forced multiplex");
}

/* Op counters read back through PAPI: raw event set API and through pb_papi phases. */
static void test_sde(void) {
  int rc = pb_sde_register();
  CHECK(rc == 0 && pb_sde_num_events() == 20, "pb_sde_register -> %d, %d events %s", rc,
        pb_sde_num_events(), rc ? pb_last_error() : "");
  CHECK(pb_sde_register() == 0 && pb_sde_num_events() == 20, "registering twice is harmless");
  for (int i = 0; i < pb_sde_num_events(); i++) printf("       %s\n", pb_sde_event_fullname(i));

  pb_papi_finish(); /* no other event set running */
  const char *ev[] = {"sde:::peftbench::backbone::matmul_macs",
                      "sde:::peftbench::method::transcendental",
                      "sde:::peftbench::method::elementwise_flops",
                      "sde:::peftbench::head::flops", "sde:::peftbench::total::matmul_macs",
                      "sde:::peftbench::total::flops"};
  enum { NE = 6 };
  int es = PAPI_NULL, codes[NE], ok = PAPI_create_eventset(&es) == PAPI_OK;
  for (int k = 0; k < NE && ok; k++) {
    int r = PAPI_event_name_to_code(ev[k], &codes[k]);
    if (r == PAPI_OK) r = PAPI_add_event(es, codes[k]);
    if (r != PAPI_OK) {
      printf("     %s: %s\n", ev[k], PAPI_strerror(r));
      ok = 0;
    }
  }
  CHECK(ok, "PAPI_event_name_to_code + PAPI_add_event of %d sde:::peftbench events", NE);
  if (!ok) return;

  int prev_en = pb_opc.enabled;
  pb_opc_enable(1);
  pb_opc_add(PB_OPK_MAC, 11); /* before PAPI_start: must not be counted (DELTA) */
  pb_opcounts before = pb_opc_snapshot();
  CHECK(PAPI_start(es) == PAPI_OK, "PAPI_start");
  int prev_owner = pb_opc_set_owner(PB_OPO_BACKBONE);
  pb_opc_add(PB_OPK_MAC, 123456789);
  pb_opc_add(PB_OPK_FLOP, 1000);
  pb_opc_set_owner(PB_OPO_METHOD);
  pb_opc_add(PB_OPK_TRANS, 77);
  pb_opc_add(PB_OPK_FLOP, 5);
  pb_opc_add(PB_OPK_MAC, 300);
  pb_opc_set_owner(PB_OPO_HEAD);
  pb_opc_add(PB_OPK_MAC, 9);
  pb_opc_add(PB_OPK_TRANS, 2);
  long long mid[NE], got[NE];
  CHECK(PAPI_read(es, mid) == PAPI_OK, "PAPI_read while running");
  pb_opc_add(PB_OPK_FLOP, 40);
  CHECK(PAPI_stop(es, got) == PAPI_OK, "PAPI_stop");
  pb_opc_set_owner(prev_owner);
  pb_opcounts after = pb_opc_snapshot(), d;
  pb_opcounts_sub(&d, &after, &before);
  long long expect[NE] = {
      (long long)d.c[PB_OPO_BACKBONE][PB_OPK_MAC], (long long)d.c[PB_OPO_METHOD][PB_OPK_TRANS],
      (long long)d.c[PB_OPO_METHOD][PB_OPK_FLOP], (long long)pb_opcounts_flops(&d, PB_OPO_HEAD),
      (long long)pb_opcounts_kind(&d, -1, PB_OPK_MAC), (long long)pb_opcounts_flops(&d, -1)};
  long long literal[NE] = {123456789, 77, 5, 2 * 9 + 2 + 40, 123456789 + 300 + 9,
                           2 * (123456789LL + 300 + 9) + 1000 + 5 + 40 + 77 + 2};
  for (int k = 0; k < NE; k++)
    CHECK(got[k] == expect[k] && expect[k] == literal[k], "%s = %lld (internal %lld, expected %lld)",
          ev[k], got[k], expect[k], literal[k]);
  CHECK(mid[0] == 123456789 && mid[3] == 2 * 9 + 2, "PAPI_read mid-way sees the counts so far");
  CHECK(after.c[PB_OPO_BACKBONE][PB_OPK_MAC] - before.c[PB_OPO_BACKBONE][PB_OPK_MAC] == 123456789,
        "PAPI did not modify the internal counter");
  PAPI_cleanup_eventset(es);
  PAPI_destroy_eventset(&es);

  /* the same through pb_papi: an sde component set beside the perf_event set */
  rc = pb_papi_init("sde:::peftbench::backbone::matmul_macs,sde:::peftbench::total::flops");
  int i0 = pb_papi_event_index("sde:::peftbench::backbone::matmul_macs");
  int i1 = pb_papi_event_index("sde:::peftbench::total::flops");
  const int tci = pb_papi_event_index("perf::TASK-CLOCK");
  CHECK(rc == 0 && pb_papi_event_available(i0) && pb_papi_event_available(i1) &&
            (perf_event_off() ? off_with_reason(tci) : pb_papi_event_available(tci)),
        "pb_papi_init with SDE events: sde + perf_event sets both counting (%s)",
        pb_papi_event_reason(i0));
  before = pb_opc_snapshot();
  pb_papi_start("train");
  prev_owner = pb_opc_set_owner(PB_OPO_BACKBONE);
  pb_opc_add(PB_OPK_MAC, 5000);
  pb_opc_set_owner(PB_OPO_OPTIM);
  pb_opc_add(PB_OPK_FLOP, 17);
  busy(0.002);
  pb_papi_stop("train");
  pb_papi_start("eval");
  pb_opc_set_owner(PB_OPO_BACKBONE);
  pb_opc_add(PB_OPK_MAC, 21);
  pb_papi_stop("eval");
  pb_opc_set_owner(prev_owner);
  CHECK(value("train", "sde:::peftbench::backbone::matmul_macs") == 5000 &&
            value("train", "sde:::peftbench::total::flops") == 2 * 5000 + 17,
        "train phase: backbone MACs %lld (5000), total FLOPs %lld (10017)",
        value("train", "sde:::peftbench::backbone::matmul_macs"),
        value("train", "sde:::peftbench::total::flops"));
  CHECK(value("eval", "sde:::peftbench::backbone::matmul_macs") == 21 &&
            value("eval", "sde:::peftbench::total::flops") == 42,
        "eval phase: backbone MACs %lld (21), total FLOPs %lld (42)",
        value("eval", "sde:::peftbench::backbone::matmul_macs"),
        value("eval", "sde:::peftbench::total::flops"));
  if (!perf_event_off())
    CHECK(value("train", "perf::TASK-CLOCK") > 0, "perf::TASK-CLOCK counted in the same phase");
  check_json_shape("SDE + perf");

  int iters = 20000;
  double t0 = pb_wall_seconds();
  for (int i = 0; i < iters; i++) {
    pb_papi_start("overhead");
    pb_papi_stop("overhead");
  }
  printf("     overhead: %.2f us per start/stop pair (2 SDE + 2 perf events)\n",
         (pb_wall_seconds() - t0) / iters * 1e6);
  pb_papi_finish();
  pb_opc_enable(prev_en);
}
#endif

int main(void) {
#if PB_HAVE_PAPI
  test_default_list();
  test_unknown_events();
  test_multiplex();
  test_sde();
  pb_papi_finish();
  pb_sde_unregister();
  CHECK(!pb_sde_registered() && pb_sde_num_events() == 0, "pb_sde_unregister");
#else
  test_without_papi();
#endif
  printf(failures ? "test_papi: FAILED\n" : "test_papi: all passed\n");
  return check_exit_status();
}
