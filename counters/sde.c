/* Op counters as PAPI Software Defined Events; see counters/sde.h. */
#include "counters/sde.h"

#include "util/status.h"

#include <stdio.h>
#include <string.h>

#include "counters/opcount.h"

#ifndef PB_HAVE_PAPI
#define PB_HAVE_PAPI 0
#endif
#if PB_HAVE_PAPI
#include <sde_lib.h>
#endif

#define PB_SDE_NAME_LEN 64

/* derived event: owner (or -1 = all owners) and kind (or -1 = FLOPs) */
typedef struct {
  int owner; /* pb_opowner or -1 */
  int kind;  /* pb_opkind or -1 for flops */
} pb_sde_derived;

static int g_registered;
static int g_n;
static char g_names[PB_SDE_MAX_EVENTS][PB_SDE_NAME_LEN];      /* [g_n] short names */
static char g_full[PB_SDE_MAX_EVENTS][PB_SDE_NAME_LEN + 20];  /* [g_n] sde:::peftbench::... */


int pb_sde_registered(void) { return g_registered; }
int pb_sde_num_events(void) { return g_registered ? g_n : 0; }
const char *pb_sde_event_name(int i) { return g_registered && i >= 0 && i < g_n ? g_names[i] : NULL; }
const char *pb_sde_event_fullname(int i) {
  return g_registered && i >= 0 && i < g_n ? g_full[i] : NULL;
}

#if PB_HAVE_PAPI

static pb_sde_derived g_derived[PB_SDE_MAX_EVENTS]; /* [g_n] params of the callbacks */

static long long derived_value(void *param) {
  const pb_sde_derived *d = (const pb_sde_derived *)param;
  pb_opcounts c = pb_opc.counts;
  uint64_t v = d->kind < 0 ? pb_opcounts_flops(&c, d->owner)
                           : pb_opcounts_kind(&c, d->owner, (pb_opkind)d->kind);
  return (long long)v;
}

static const char *kind_desc(int kind) {
  switch (kind) {
    case PB_OPK_MAC: return "matmul multiply-accumulates";
    case PB_OPK_FLOP: return "elementwise floating-point operations";
    case PB_OPK_TRANS: return "transcendental operations (exp, tanh, erf, rsqrt, sqrt, log)";
    default: return "FLOPs = 2*MACs + elementwise + transcendental";
  }
}

/* Registers all events through the function table (shared by pb_sde_register and the
 * papi_native_avail hook). Fills g_names/g_full/g_n. Returns the handle or NULL. */
static papi_handle_t register_all(papi_sde_fptr_struct_t *f, int *status) {
  char desc[200];
  int bad = 0;
  g_n = 0;
  papi_handle_t h = f->init(PB_SDE_LIBRARY);
  if (!h) {
    *status = -1;
    return NULL;
  }
  for (int o = -1; o < PB_OPO_COUNT; o++) {
    for (int k = 0; k <= PB_OPK_COUNT; k++) {
      int kind = k < PB_OPK_COUNT ? k : -1;
      const char *oname = o < 0 ? "total" : pb_opowner_name(o);
      const char *kname = kind < 0 ? "flops" : pb_opkind_name(kind);
      int i = g_n;
      if (i >= PB_SDE_MAX_EVENTS) break;
      snprintf(g_names[i], sizeof g_names[i], "%s::%s", oname, kname);
      snprintf(g_full[i], sizeof g_full[i], "sde:::%s::%s", PB_SDE_LIBRARY, g_names[i]);
      int rc;
      if (o >= 0 && kind >= 0) {
        /* raw counter memory: uint64_t has the size and layout of long long */
        rc = f->register_counter(h, g_names[i], PAPI_SDE_RO | PAPI_SDE_DELTA, PAPI_SDE_long_long,
                                 (void *)&pb_opc.counts.c[o][kind]);
      } else {
        g_derived[i].owner = o;
        g_derived[i].kind = kind;
        rc = f->register_counter_cb(h, g_names[i], PAPI_SDE_RO | PAPI_SDE_DELTA,
                                    PAPI_SDE_long_long, derived_value, &g_derived[i]);
      }
      if (rc != SDE_OK) {
        bad = rc;
        continue;
      }
      snprintf(desc, sizeof desc, "peftbench op counter: %s charged to %s%s", kind_desc(kind),
               o < 0 ? "all owners" : oname,
               o == PB_OPO_HEAD ? " (pooler + classifier + loss)"
               : o == PB_OPO_METHOD ? " (PEFT method hooks)"
               : o == PB_OPO_OPTIM ? " (gradient clipping + AdamW update)" : "");
      f->describe_counter(h, g_names[i], desc);
      g_n++;
    }
  }
  *status = bad;
  return h;
}

static papi_handle_t g_handle;

int pb_sde_register(void) {
  if (g_registered) return 0;
  papi_sde_fptr_struct_t f;
  memset(&f, 0, sizeof f);
  POPULATE_SDE_FPTR_STRUCT(f);
  int st = 0;
  g_handle = register_all(&f, &st);
  if (!g_handle) return pb_set_error(PB_ERR_LIB, "counters/sde.c: papi_sde_init(\"%s\") failed", PB_SDE_LIBRARY);
  g_registered = 1;
  if (st != 0)
    return pb_set_error(PB_ERR_LIB, "counters/sde.c: some events failed to register (libsde code %d); %d registered", st, g_n);
  return 0;
}

void pb_sde_unregister(void) {
  if (!g_registered) return;
  papi_sde_shutdown(g_handle);
  g_handle = NULL;
  g_registered = 0;
  g_n = 0;
}

/* Hook for `papi_native_avail -sde FILE`: it dlopens FILE and calls this to list the events.
 * Only one SDE library per process may define it; nothing else should call it. */
papi_handle_t papi_sde_hook_list_events(papi_sde_fptr_struct_t *fptr_struct);
papi_handle_t papi_sde_hook_list_events(papi_sde_fptr_struct_t *fptr_struct) {
  int st = 0;
  return register_all(fptr_struct, &st);
}

#else /* !PB_HAVE_PAPI */

int pb_sde_register(void) {
  return pb_set_error(PB_ERR_UNSUPPORTED, "counters/sde.c: PAPI not built in (PB_HAVE_PAPI=0): no SDE export");
}
void pb_sde_unregister(void) {}

#endif
