/* Export of the op counters (counters/opcount.h) as PAPI Software Defined Events (libsde).
 *
 * Library name "peftbench"; any PAPI user in this process (our counters/papi module, a
 * profiler, PAPI_hl via PAPI_EVENTS) reads them as "sde:::peftbench::<event>":
 *   <owner>::<kind>   owner in backbone|head|method|optimizer,
 *                     kind in matmul_macs|elementwise_flops|transcendental
 *                     (the raw uint64 memory of pb_opc.counts.c[owner][kind])
 *   <owner>::flops    2*MACs + elementwise + transcendental of that owner   (callback)
 *   total::<kind>     that kind summed over owners                          (callback)
 *   total::flops      all FLOPs                                             (callback)
 * All are read-only DELTA counters: PAPI reports the growth between PAPI_start and
 * PAPI_read/PAPI_stop; the counters themselves are never written by PAPI.
 * `papi_native_avail -sde FILE` lists them when FILE exports papi_sde_hook_list_events
 * (defined in sde.c; an executable needs -rdynamic and must not be PIE for that).
 *
 * Status codes: 0 ok, negative error; pb_last_error() (util/status.h) holds one line. */
#ifndef PB_COUNTERS_SDE_H
#define PB_COUNTERS_SDE_H

#define PB_SDE_LIBRARY "peftbench"
#define PB_SDE_PREFIX "sde:::peftbench::"
#define PB_SDE_MAX_EVENTS 32

/* Registers every event (idempotent). Returns 0 or a negative status. */
int pb_sde_register(void);
/* Unregisters them (papi_sde_shutdown). Safe when not registered. */
void pb_sde_unregister(void);
int pb_sde_registered(void);
int pb_sde_num_events(void);               /* events registered by pb_sde_register */
const char *pb_sde_event_name(int i);      /* short name "backbone::matmul_macs"; NULL if out of range */
const char *pb_sde_event_fullname(int i);  /* "sde:::peftbench::backbone::matmul_macs" */

#endif
