/* PAPI hardware/software counters per named phase ("train", "eval").
 *
 * One process-wide instance (PAPI itself is process-wide). Use it from the thread that
 * called pb_papi_init: PAPI counts the calling thread only (OpenBLAS/OpenMP worker threads
 * are not included in the values).
 *
 * Every requested event ends up in exactly one of two states:
 *   available   -> a value per phase (long long, summed over the phase's intervals)
 *   unavailable -> value null, with a non-empty reason (PAPI error name, PAPI_strerror text
 *                  and the specific cause). Never a silent zero, never a crash.
 * When PAPI is not built in (PB_HAVE_PAPI=0) or PAPI_library_init fails, the module is
 * "not available": every event is unavailable with that reason, start/stop still track
 * phase names so the JSON keeps its shape.
 *
 * Event list syntax (events_csv): comma-separated PAPI names; "A|B" means "A, or B when A
 * cannot be counted". NULL, "" or "default" means PB_PAPI_DEFAULT_EVENTS. The software
 * events in PB_PAPI_SOFTWARE_EVENTS are always appended (unless already listed).
 *
 * Status codes: 0 ok, negative error; pb_last_error() (util/status.h) holds one line saying what.
 * This module knows nothing of the backbone or the methods. */
#ifndef PB_COUNTERS_PAPI_H
#define PB_COUNTERS_PAPI_H

#include <cjson/cJSON.h>

#define PB_PAPI_DEFAULT_EVENTS \
  "PAPI_TOT_CYC,PAPI_TOT_INS,PAPI_SP_OPS|PAPI_VEC_SP,PAPI_L1_DCM,PAPI_L2_DCM,PAPI_LST_INS"
#define PB_PAPI_SOFTWARE_EVENTS "perf::TASK-CLOCK,perf::PAGE-FAULTS"

#define PB_PAPI_MAX_EVENTS 32   /* events recorded (requested + fallbacks + software) */
#define PB_PAPI_MAX_PHASES 16   /* distinct phase names */
#define PB_PAPI_NAME_LEN 128    /* event name buffer (PAPI_MAX_STR_LEN) */
#define PB_PAPI_REASON_LEN 320  /* reason buffer */

/* flags for pb_papi_init_ex */
/* multiplex every event set even when counters suffice; where PAPI refuses (e.g. a VM
 * without hardware PMU), events are counted without multiplexing and
 * pb_papi_multiplex_error() says why */
#define PB_PAPI_FORCE_MULTIPLEX 1

/* Initialises PAPI (once per process) and builds the event sets. Returns 0 when the module
 * is usable — including when PAPI is unavailable (see pb_papi_available) — and negative
 * only for invalid input. Calling it again discards the previous events and phases. */
int pb_papi_init(const char *events_csv);
int pb_papi_init_ex(const char *events_csv, int flags);
/* Stops and destroys the event sets and forgets all results. PAPI stays initialised (so
 * SDE registrations survive). Safe to call at any time. */
void pb_papi_finish(void);

/* Phase accounting: counters run continuously from init; start/stop read them and the
 * difference is added to the named phase. Phases may overlap but a phase cannot be
 * started twice without a stop. No-ops (returning 0) when PAPI is unavailable. */
int pb_papi_start(const char *phase);
int pb_papi_stop(const char *phase);

int pb_papi_available(void);           /* 1 if PAPI initialised and counting */
const char *pb_papi_reason(void);      /* why not available ("" when available) */
int pb_papi_multiplexed(void);         /* 1 if any event set was multiplexed */
/* why multiplexing was needed (or forced) but PAPI refused it; "" if it never failed */
const char *pb_papi_multiplex_error(void);

int pb_papi_num_events(void);
const char *pb_papi_event_name(int i);      /* NULL if i is out of range */
int pb_papi_event_available(int i);         /* 1 / 0 */
const char *pb_papi_event_reason(int i);    /* "" when available */
int pb_papi_event_index(const char *name);  /* -1 if not recorded */

int pb_papi_num_phases(void);
const char *pb_papi_phase_name(int p);
/* Value of an event in a phase. Returns 0 and sets *out; negative if the phase or event is
 * unknown (PB_ERR_ARG) or the event is unavailable (PB_ERR_STATE). */
int pb_papi_phase_value(const char *phase, const char *event, long long *out);

/* New cJSON object (caller frees with cJSON_Delete), NULL on allocation failure:
 * {"available": bool, "reason": str|null, "multiplexed": bool, "multiplex_error": str|null,
 *  "events": [names in order],
 *  "phases": {"train": {"PAPI_TOT_CYC": null, "perf::TASK-CLOCK": 12345, ...}, ...},
 *  "unavailable": {"PAPI_TOT_CYC": "reason", ...}} */
cJSON *pb_papi_to_json(void);

/* Name of a PAPI error code ("PAPI_ENOEVNT"), "PAPI_E?" if unknown. */
const char *pb_papi_errname(int code);

#endif
