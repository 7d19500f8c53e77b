/* PAPI counters per phase; see counters/papi.h. */
#include "counters/papi.h"

#include "util/status.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#ifndef PB_HAVE_PAPI
#define PB_HAVE_PAPI 0
#endif
#if PB_HAVE_PAPI
#include <papi.h>
#endif

#define PB_PAPI_MAX_SETS 8 /* one PAPI event set per component */
#define PB_PAPI_CSV_LEN 4096

typedef struct {
  char name[PB_PAPI_NAME_LEN];     /* PAPI event name as requested */
  int available;                   /* 1: counted, value per phase; 0: null + reason */
  char reason[PB_PAPI_REASON_LEN]; /* why unavailable ("" when available) */
  int set;                         /* index into S.sets, -1 when unavailable */
} pb_papi_event;

typedef struct {
  int es;                      /* PAPI event set handle */
  int cidx;                    /* PAPI component index of every event in the set */
  int n;                       /* events added */
  int ev[PB_PAPI_MAX_EVENTS];  /* [n] index into S.ev of the set's k-th event */
  int mpx;                     /* 1 if converted with PAPI_set_multiplex */
  int running;                 /* 1 after a successful PAPI_start */
} pb_papi_set;

typedef struct {
  char name[PB_PAPI_NAME_LEN];         /* phase name ("train") */
  int running;                         /* between start and stop */
  int intervals;                       /* completed start/stop pairs */
  long long start[PB_PAPI_MAX_EVENTS]; /* [n_events] values at the last start */
  long long total[PB_PAPI_MAX_EVENTS]; /* [n_events] summed over completed intervals */
} pb_papi_phase;

static struct {
  int lib_state;                        /* 0 untried, 1 PAPI initialised, -1 init failed */
  int mpx_inited;                       /* PAPI_multiplex_init done */
  char lib_reason[PB_PAPI_REASON_LEN];  /* why PAPI_library_init failed */
  int available;                        /* PAPI usable for the current event list */
  char reason[PB_PAPI_REASON_LEN];      /* why not available */
  int multiplexed;                      /* any used event set multiplexed */
  char mpx_reason[PB_PAPI_REASON_LEN];  /* why multiplexing was wanted but failed ("" if not) */
  int n_events;
  pb_papi_event ev[PB_PAPI_MAX_EVENTS]; /* [n_events] */
  int n_sets;
  pb_papi_set sets[PB_PAPI_MAX_SETS];   /* [n_sets] */
  int n_phases;
  pb_papi_phase ph[PB_PAPI_MAX_PHASES]; /* [n_phases] */
} S;




const char *pb_papi_errname(int code) {
  switch (code) {
    case 0: return "PAPI_OK";
    case -1: return "PAPI_EINVAL";
    case -2: return "PAPI_ENOMEM";
    case -3: return "PAPI_ESYS";
    case -4: return "PAPI_ECMP";
    case -5: return "PAPI_ECLOST";
    case -6: return "PAPI_EBUG";
    case -7: return "PAPI_ENOEVNT";
    case -8: return "PAPI_ECNFLCT";
    case -9: return "PAPI_ENOTRUN";
    case -10: return "PAPI_EISRUN";
    case -11: return "PAPI_ENOEVST";
    case -12: return "PAPI_ENOTPRESET";
    case -13: return "PAPI_ENOCNTR";
    case -14: return "PAPI_EMISC";
    case -15: return "PAPI_EPERM";
    case -16: return "PAPI_ENOINIT";
    case -17: return "PAPI_ENOCMP";
    case -18: return "PAPI_ENOSUPP";
    case -19: return "PAPI_ENOIMPL";
    case -20: return "PAPI_EBUF";
    case -21: return "PAPI_EINVAL_DOM";
    case -22: return "PAPI_EATTR";
    case -23: return "PAPI_ECOUNT";
    case -24: return "PAPI_ECOMBO";
    case -25: return "PAPI_ECMP_DISABLED";
    case -26: return "PAPI_EDELAY_INIT";
    case -27: return "PAPI_EMULPASS";
    default: return "PAPI_E?";
  }
}

/* ---- event list parsing (shared by both builds) ---- */

static void trim(char *s) {
  size_t n = strlen(s), a = 0;
  while (a < n && (s[a] == ' ' || s[a] == '\t' || s[a] == '\n' || s[a] == '\r')) a++;
  while (n > a && (s[n - 1] == ' ' || s[n - 1] == '\t' || s[n - 1] == '\n' || s[n - 1] == '\r'))
    n--;
  memmove(s, s + a, n - a);
  s[n - a] = '\0';
}

static int find_event(const char *name) {
  for (int i = 0; i < S.n_events; i++)
    if (strcmp(S.ev[i].name, name) == 0) return i;
  return -1;
}

/* Records an event (no duplicates). Returns its index or a negative status. */
static int record_event(const char *name, int available, const char *reason, int set) {
  int i = find_event(name);
  if (i < 0) {
    if (S.n_events >= PB_PAPI_MAX_EVENTS)
      return pb_set_error(PB_ERR_ARG, "counters/papi.c: more than %d events (at '%s')",
                  PB_PAPI_MAX_EVENTS, name);
    i = S.n_events++;
  }
  pb_papi_event *e = &S.ev[i];
  snprintf(e->name, sizeof e->name, "%s", name);
  e->available = available;
  snprintf(e->reason, sizeof e->reason, "%s", available ? "" : (reason && reason[0] ? reason : "unknown reason"));
  e->set = available ? set : -1;
  return i;
}

/* Splits events_csv (+ software events) into groups; calls add_group(alternatives, n) for
 * each group. Alternatives are separated by '|'. Returns 0 or a negative status. */
typedef int (*group_fn)(char alts[][PB_PAPI_NAME_LEN], int n);

static int for_each_group(const char *events_csv, group_fn fn) {
  char csv[PB_PAPI_CSV_LEN];
  if (!events_csv || !events_csv[0] || strcmp(events_csv, "default") == 0)
    events_csv = PB_PAPI_DEFAULT_EVENTS;
  int w = snprintf(csv, sizeof csv, "%s,%s", events_csv, PB_PAPI_SOFTWARE_EVENTS);
  if (w < 0 || (size_t)w >= sizeof csv)
    return pb_set_error(PB_ERR_ARG, "counters/papi.c: event list longer than %d characters",
                PB_PAPI_CSV_LEN - 64);
  int n_groups = 0;
  char *save = NULL;
  for (char *tok = strtok_r(csv, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
    char alts[4][PB_PAPI_NAME_LEN];
    int n = 0;
    char *save2 = NULL;
    for (char *a = strtok_r(tok, "|", &save2); a; a = strtok_r(NULL, "|", &save2)) {
      char buf[PB_PAPI_NAME_LEN * 2];
      snprintf(buf, sizeof buf, "%s", a);
      trim(buf);
      if (!buf[0]) continue;
      if (strlen(buf) >= PB_PAPI_NAME_LEN)
        return pb_set_error(PB_ERR_ARG, "counters/papi.c: event name too long: '%.60s...'", buf);
      if (n >= 4) return pb_set_error(PB_ERR_ARG, "counters/papi.c: more than 4 alternatives in '%s'", tok);
      memcpy(alts[n++], buf, strlen(buf) + 1);
    }
    if (n == 0) continue;
    /* software events appended by default: skip when the user already listed them */
    if (n_groups > 0 && n == 1 && find_event(alts[0]) >= 0) continue;
    int rc = fn(alts, n);
    if (rc < 0) return rc;
    n_groups++;
  }
  return 0;
}

static int add_unavailable_group(char alts[][PB_PAPI_NAME_LEN], int n) {
  for (int a = 0; a < n; a++) {
    int rc = record_event(alts[a], 0, S.reason, -1);
    if (rc < 0) return rc;
  }
  return 0;
}

static void reset_state(void) {
  S.available = 0;
  S.reason[0] = '\0';
  S.multiplexed = 0;
  S.mpx_reason[0] = '\0';
  S.n_events = 0;
  S.n_sets = 0;
  S.n_phases = 0;
  memset(S.ev, 0, sizeof S.ev);
  memset(S.sets, 0, sizeof S.sets);
  memset(S.ph, 0, sizeof S.ph);
}

#if PB_HAVE_PAPI

static int g_flags;

static int read_paranoid(void) {
  FILE *f = fopen("/proc/sys/kernel/perf_event_paranoid", "r");
  int v = -99;
  if (f) {
    if (fscanf(f, "%d", &v) != 1) v = -99;
    fclose(f);
  }
  return v;
}

/* why PAPI disabled its perf_event component (e.g. libpfm4 does not know the CPU model, so it
 * finds no default PMU and no perf:: software event exists either), or NULL if it is active */
static const char *perf_event_disabled_reason(void) {
  int c = PAPI_get_component_index("perf_event");
  const PAPI_component_info_t *ci = c >= 0 ? PAPI_get_component_info(c) : NULL;
  return ci && ci->disabled ? ci->disabled_reason : NULL;
}

/* Writes "PAPI_EXXX: <strerror> (<call>): <cause>" into out. */
static void explain(char *out, size_t cap, int code, const char *call, const char *name,
                    int ev_code, int cidx) {
  char cause[PB_PAPI_REASON_LEN] = "";
  const PAPI_hw_info_t *hw = PAPI_get_hardware_info();
  const PAPI_component_info_t *ci = cidx >= 0 ? PAPI_get_component_info(cidx) : NULL;
  if (strcmp(call, "PAPI_set_multiplex") == 0) {
    snprintf(cause, sizeof cause,
             "component %.60s cannot multiplex here (PAPI's perf_event check opens a hardware "
             "instructions event)%s",
             ci ? ci->name : "?", hw && hw->virtualized ? "; running in a virtual machine" : "");
  } else if (strcmp(call, "PAPI_event_name_to_code") == 0) {
    const char *sep = strstr(name, ":::"), *pe_off;
    if (sep) {
      char comp[PB_PAPI_NAME_LEN];
      size_t len = (size_t)(sep - name);
      if (len >= sizeof comp) len = sizeof comp - 1;
      memcpy(comp, name, len);
      comp[len] = '\0';
      int c = PAPI_get_component_index(comp);
      const PAPI_component_info_t *cc = c >= 0 ? PAPI_get_component_info(c) : NULL;
      if (!cc)
        snprintf(cause, sizeof cause, "no component named '%s' is compiled into this PAPI", comp);
      else if (cc->disabled)
        snprintf(cause, sizeof cause, "component '%.60s' is disabled: %.200s", comp, cc->disabled_reason);
      else
        snprintf(cause, sizeof cause, "component '%s' has no event of that name (not registered?)", comp);
    } else if (strncmp(name, "PAPI_", 5) == 0) {
      snprintf(cause, sizeof cause, "not a PAPI preset known to this PAPI (see papi_avail -a)");
    } else if ((pe_off = strstr(name, "::") ? perf_event_disabled_reason() : NULL)) {
      /* "pmu::event" names (perf::TASK-CLOCK) belong to the perf_event component */
      snprintf(cause, sizeof cause, "component 'perf_event' is disabled: %.200s", pe_off);
    } else {
      snprintf(cause, sizeof cause,
               "no active PAPI component knows this event name (see papi_native_avail)");
    }
  } else if (code == PAPI_ENOEVNT || code == PAPI_ECNFLCT || code == PAPI_ECMP ||
             code == PAPI_ENOCNTR) {
    if ((ev_code & PAPI_PRESET_MASK) && PAPI_query_event(ev_code) != PAPI_OK)
      snprintf(cause, sizeof cause,
               "preset has no native-event mapping on this CPU (papi_avail -a does not list it)");
    else if (code == PAPI_ECNFLCT)
      snprintf(cause, sizeof cause,
               "not enough counters even with multiplexing, or it conflicts with other events");
    else
      snprintf(cause, sizeof cause, "event is known but this machine cannot count it");
    if (hw && hw->virtualized) {
      size_t l = strlen(cause);
      snprintf(cause + l, sizeof cause - l,
               "; running in a virtual machine (%s) that exposes no hardware PMU events",
               hw->virtual_vendor_string[0] ? hw->virtual_vendor_string : "unknown hypervisor");
    }
  } else if (code == PAPI_EPERM) {
    snprintf(cause, sizeof cause, "not permitted (kernel.perf_event_paranoid=%d)", read_paranoid());
  } else if (code == PAPI_ESYS) {
    snprintf(cause, sizeof cause, "system call failed: %s", strerror(errno));
  } else if (code == PAPI_ENOCMP || code == PAPI_ECMP_DISABLED) {
    snprintf(cause, sizeof cause, "component %.60s: %.200s", ci ? ci->name : "?",
             ci && ci->disabled ? ci->disabled_reason : "not usable");
  } else {
    snprintf(cause, sizeof cause, "%s failed", call);
  }
  snprintf(out, cap, "%s: %s (%s): %s", pb_papi_errname(code), PAPI_strerror(code), call, cause);
}

static int enable_multiplex(pb_papi_set *s) {
  if (s->mpx) return PAPI_OK;
  if (!S.mpx_inited) {
    int rc = PAPI_multiplex_init();
    if (rc != PAPI_OK) return rc;
    S.mpx_inited = 1;
  }
  int rc = PAPI_set_multiplex(s->es);
  if (rc == PAPI_OK) s->mpx = 1;
  else explain(S.mpx_reason, sizeof S.mpx_reason, rc, "PAPI_set_multiplex", "", 0, s->cidx);
  return rc;
}

/* Finds or creates the event set of component cidx. Returns its index or a PAPI error. */
static int set_for_component(int cidx) {
  for (int i = 0; i < S.n_sets; i++)
    if (S.sets[i].cidx == cidx) return i;
  if (S.n_sets >= PB_PAPI_MAX_SETS) return PAPI_ENOMEM;
  pb_papi_set *s = &S.sets[S.n_sets];
  memset(s, 0, sizeof *s);
  s->es = PAPI_NULL;
  int rc = PAPI_create_eventset(&s->es);
  if (rc != PAPI_OK) return rc;
  s->cidx = cidx;
  rc = PAPI_assign_eventset_component(s->es, cidx);
  if (rc != PAPI_OK) {
    PAPI_destroy_eventset(&s->es);
    return rc;
  }
  /* forced multiplexing that fails: count without it (S.mpx_reason says why) */
  if (g_flags & PB_PAPI_FORCE_MULTIPLEX) (void)enable_multiplex(s);
  return S.n_sets++;
}

/* Tries to count one event. Returns the set index, or a PAPI error with reason filled. */
static int try_event(const char *name, char *reason, size_t cap) {
  int code = PAPI_NULL;
  int rc = PAPI_event_name_to_code(name, &code);
  if (rc != PAPI_OK) {
    explain(reason, cap, rc, "PAPI_event_name_to_code", name, 0, -1);
    return rc;
  }
  int cidx = PAPI_get_event_component(code);
  if (cidx < 0) {
    explain(reason, cap, cidx, "PAPI_get_event_component", name, code, -1);
    return cidx;
  }
  int si = set_for_component(cidx);
  if (si < 0) {
    explain(reason, cap, si, "PAPI_create_eventset", name, code, cidx);
    return si;
  }
  pb_papi_set *s = &S.sets[si];
  const PAPI_component_info_t *ci = PAPI_get_component_info(cidx);
  /* more events than this component's counters: multiplex before adding (if that fails,
   * try anyway: the add then fails with PAPI_ECNFLCT and the reason says why) */
  if (!s->mpx && ci && ci->num_cntrs > 0 && s->n >= ci->num_cntrs) (void)enable_multiplex(s);
  rc = PAPI_add_event(s->es, code);
  if ((rc == PAPI_ECNFLCT || rc == PAPI_EMULPASS) && !s->mpx) {
    /* counter resources exhausted: convert the set to multiplexed and retry */
    if (enable_multiplex(s) == PAPI_OK) rc = PAPI_add_event(s->es, code);
  }
  if (rc != PAPI_OK) {
    explain(reason, cap, rc, "PAPI_add_event", name, code, cidx);
    if ((rc == PAPI_ECNFLCT || rc == PAPI_EMULPASS) && !s->mpx && S.mpx_reason[0]) {
      size_t l = strlen(reason);
      snprintf(reason + l, cap - l, "; multiplexing failed: %.120s", S.mpx_reason);
    }
    return rc;
  }
  return si;
}

static int add_papi_group(char alts[][PB_PAPI_NAME_LEN], int n) {
  char reasons[4][PB_PAPI_REASON_LEN];
  for (int a = 0; a < n; a++) {
    int si = try_event(alts[a], reasons[a], sizeof reasons[a]);
    if (si >= 0) {
      for (int b = 0; b < a; b++) { /* earlier alternatives: unavailable, say what replaced them */
        size_t l = strlen(reasons[b]);
        snprintf(reasons[b] + l, sizeof reasons[b] - l, "; counted %s instead", alts[a]);
        int rc = record_event(alts[b], 0, reasons[b], -1);
        if (rc < 0) return rc;
      }
      int ei = record_event(alts[a], 1, "", si);
      if (ei < 0) {
        /* too many events: the event is in the set but not recorded; drop it */
        int code;
        if (PAPI_event_name_to_code(alts[a], &code) == PAPI_OK) PAPI_remove_event(S.sets[si].es, code);
        return ei;
      }
      S.sets[si].ev[S.sets[si].n++] = ei;
      return 0;
    }
  }
  for (int a = 0; a < n; a++) {
    int rc = record_event(alts[a], 0, reasons[a], -1);
    if (rc < 0) return rc;
  }
  return 0;
}

static int lib_init(void) {
  if (S.lib_state == 1) return 1;
  int rc = PAPI_library_init(PAPI_VER_CURRENT);
  if (rc == PAPI_VER_CURRENT) {
    S.lib_state = 1;
    return 1;
  }
  S.lib_state = -1;
  if (rc > 0)
    snprintf(S.lib_reason, sizeof S.lib_reason,
             "PAPI_library_init: header/library version mismatch (library %d.%d, headers %d.%d)",
             PAPI_VERSION_MAJOR(rc), PAPI_VERSION_MINOR(rc), PAPI_VERSION_MAJOR(PAPI_VER_CURRENT),
             PAPI_VERSION_MINOR(PAPI_VER_CURRENT));
  else
    snprintf(S.lib_reason, sizeof S.lib_reason, "PAPI_library_init: %s: %s", pb_papi_errname(rc),
             PAPI_strerror(rc));
  return 0;
}

/* Reads every running set into vals[n_events] (entries of unavailable events untouched). */
static int read_all(long long *vals) {
  long long buf[PB_PAPI_MAX_EVENTS];
  for (int i = 0; i < S.n_sets; i++) {
    pb_papi_set *s = &S.sets[i];
    if (!s->running) continue;
    int rc = PAPI_read(s->es, buf);
    if (rc != PAPI_OK)
      return pb_set_error(PB_ERR_LIB, "counters/papi.c: PAPI_read of component %d: %s: %s", s->cidx,
                  pb_papi_errname(rc), PAPI_strerror(rc));
    for (int k = 0; k < s->n; k++) vals[s->ev[k]] = buf[k];
  }
  return 0;
}

void pb_papi_finish(void) {
  for (int i = 0; i < S.n_sets; i++) {
    pb_papi_set *s = &S.sets[i];
    long long buf[PB_PAPI_MAX_EVENTS];
    if (s->running) PAPI_stop(s->es, buf);
    PAPI_cleanup_eventset(s->es);
    PAPI_destroy_eventset(&s->es);
  }
  reset_state();
}

int pb_papi_init_ex(const char *events_csv, int flags) {
  pb_papi_finish();
  g_flags = flags;
  if (!lib_init()) {
    snprintf(S.reason, sizeof S.reason, "%s", S.lib_reason);
    return for_each_group(events_csv, add_unavailable_group);
  }
  int rc = for_each_group(events_csv, add_papi_group);
  if (rc < 0) {
    pb_papi_finish();
    return rc;
  }
  for (int i = 0; i < S.n_sets; i++) {
    pb_papi_set *s = &S.sets[i];
    if (s->n == 0) continue;
    int prc = PAPI_start(s->es);
    if (prc != PAPI_OK) {
      char why[PB_PAPI_REASON_LEN];
      explain(why, sizeof why, prc, "PAPI_start", "", 0, s->cidx);
      for (int k = 0; k < s->n; k++) {
        pb_papi_event *e = &S.ev[s->ev[k]];
        e->available = 0;
        e->set = -1;
        snprintf(e->reason, sizeof e->reason, "%s", why);
      }
      continue;
    }
    s->running = 1;
    if (s->mpx) S.multiplexed = 1;
  }
  int counting = 0;
  for (int i = 0; i < S.n_events; i++) counting += S.ev[i].available;
  if ((g_flags & PB_PAPI_FORCE_MULTIPLEX) && !S.multiplexed && !S.mpx_reason[0])
    snprintf(S.mpx_reason, sizeof S.mpx_reason,
             "no event set was started (no requested event could be counted), so nothing was multiplexed");
  if (counting == 0) { /* PAPI works but reads nothing here: say so instead of a row of nulls */
    snprintf(S.reason, sizeof S.reason,
             "PAPI initialised, but none of the %d requested events can be counted on this machine "
             "(each event's reason is under \"unavailable\")",
             S.n_events);
    return 0;
  }
  S.available = 1;
  return 0;
}

#else /* !PB_HAVE_PAPI */

static int read_all(long long *vals) {
  (void)vals;
  return 0;
}

void pb_papi_finish(void) { reset_state(); }

int pb_papi_init_ex(const char *events_csv, int flags) {
  (void)flags;
  reset_state();
  snprintf(S.reason, sizeof S.reason,
           "PAPI not built in (configured without libpapi-dev: PB_HAVE_PAPI=0)");
  return for_each_group(events_csv, add_unavailable_group);
}

#endif

int pb_papi_init(const char *events_csv) { return pb_papi_init_ex(events_csv, 0); }

/* ---- phases ---- */

static int find_phase(const char *name) {
  for (int p = 0; p < S.n_phases; p++)
    if (strcmp(S.ph[p].name, name) == 0) return p;
  return -1;
}

int pb_papi_start(const char *phase) {
  if (!phase || !phase[0] || strlen(phase) >= PB_PAPI_NAME_LEN)
    return pb_set_error(PB_ERR_ARG, "counters/papi.c: pb_papi_start: bad phase name");
  int p = find_phase(phase);
  if (p < 0) {
    if (S.n_phases >= PB_PAPI_MAX_PHASES)
      return pb_set_error(PB_ERR_ARG, "counters/papi.c: more than %d phases (at '%s')",
                  PB_PAPI_MAX_PHASES, phase);
    p = S.n_phases++;
    memset(&S.ph[p], 0, sizeof S.ph[p]);
    snprintf(S.ph[p].name, sizeof S.ph[p].name, "%s", phase);
  }
  if (S.ph[p].running)
    return pb_set_error(PB_ERR_STATE, "counters/papi.c: phase '%s' started twice", phase);
  if (S.available) {
    int rc = read_all(S.ph[p].start);
    if (rc < 0) return rc;
  }
  S.ph[p].running = 1;
  return 0;
}

int pb_papi_stop(const char *phase) {
  int p = phase ? find_phase(phase) : -1;
  if (p < 0 || !S.ph[p].running)
    return pb_set_error(PB_ERR_STATE, "counters/papi.c: pb_papi_stop('%s') without pb_papi_start",
                phase ? phase : "(null)");
  if (S.available) {
    long long now[PB_PAPI_MAX_EVENTS];
    memcpy(now, S.ph[p].start, sizeof now);
    int rc = read_all(now);
    if (rc < 0) return rc;
    for (int i = 0; i < S.n_events; i++)
      if (S.ev[i].available) S.ph[p].total[i] += now[i] - S.ph[p].start[i];
  }
  S.ph[p].running = 0;
  S.ph[p].intervals++;
  return 0;
}

/* ---- queries ---- */

int pb_papi_available(void) { return S.available; }
const char *pb_papi_reason(void) { return S.reason; }
int pb_papi_multiplexed(void) { return S.multiplexed; }
const char *pb_papi_multiplex_error(void) { return S.mpx_reason; }
int pb_papi_num_events(void) { return S.n_events; }
const char *pb_papi_event_name(int i) { return i >= 0 && i < S.n_events ? S.ev[i].name : NULL; }
int pb_papi_event_available(int i) { return i >= 0 && i < S.n_events ? S.ev[i].available : 0; }
const char *pb_papi_event_reason(int i) {
  return i >= 0 && i < S.n_events ? S.ev[i].reason : "no such event";
}
int pb_papi_event_index(const char *name) { return name ? find_event(name) : -1; }
int pb_papi_num_phases(void) { return S.n_phases; }
const char *pb_papi_phase_name(int p) { return p >= 0 && p < S.n_phases ? S.ph[p].name : NULL; }

int pb_papi_phase_value(const char *phase, const char *event, long long *out) {
  int p = phase ? find_phase(phase) : -1;
  int i = event ? find_event(event) : -1;
  if (p < 0 || i < 0 || !out)
    return pb_set_error(PB_ERR_ARG, "counters/papi.c: no phase '%s' / event '%s'",
                phase ? phase : "(null)", event ? event : "(null)");
  if (!S.ev[i].available)
    return pb_set_error(PB_ERR_STATE, "counters/papi.c: event '%s' unavailable: %s", event,
                S.ev[i].reason);
  *out = S.ph[p].total[i];
  return 0;
}

cJSON *pb_papi_to_json(void) {
  cJSON *o = cJSON_CreateObject();
  if (!o) return NULL;
  int ok = 1;
  ok &= cJSON_AddBoolToObject(o, "available", S.available) != NULL;
  ok &= (S.available ? cJSON_AddNullToObject(o, "reason")
                     : cJSON_AddStringToObject(o, "reason", S.reason)) != NULL;
  ok &= cJSON_AddBoolToObject(o, "multiplexed", S.multiplexed) != NULL;
  ok &= (S.mpx_reason[0] ? cJSON_AddStringToObject(o, "multiplex_error", S.mpx_reason)
                         : cJSON_AddNullToObject(o, "multiplex_error")) != NULL;
  cJSON *names = cJSON_AddArrayToObject(o, "events");
  cJSON *phases = cJSON_AddObjectToObject(o, "phases");
  cJSON *unav = cJSON_AddObjectToObject(o, "unavailable");
  ok &= names && phases && unav;
  for (int i = 0; ok && i < S.n_events; i++) {
    cJSON *s = cJSON_CreateString(S.ev[i].name);
    ok &= s != NULL && cJSON_AddItemToArray(names, s);
    if (!S.ev[i].available) ok &= cJSON_AddStringToObject(unav, S.ev[i].name, S.ev[i].reason) != NULL;
  }
  for (int p = 0; ok && p < S.n_phases; p++) {
    cJSON *ph = cJSON_AddObjectToObject(phases, S.ph[p].name);
    ok &= ph != NULL;
    for (int i = 0; ok && i < S.n_events; i++) {
      if (S.ev[i].available)
        ok &= cJSON_AddNumberToObject(ph, S.ev[i].name, (double)S.ph[p].total[i]) != NULL;
      else
        ok &= cJSON_AddNullToObject(ph, S.ev[i].name) != NULL;
    }
  }
  if (!ok) {
    cJSON_Delete(o);
    pb_set_error(PB_ERR_ARG, "counters/papi.c: out of memory building JSON");
    return NULL;
  }
  return o;
}
