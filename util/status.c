#include "util/status.h"

#include <stdarg.h>
#include <stdio.h>

static _Thread_local char g_err[1024];

int pb_set_error(int code, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(g_err, sizeof g_err, fmt, ap);
  va_end(ap);
  return code;
}

const char *pb_last_error(void) { return g_err[0] ? g_err : "unknown error"; }

const char *pb_status_name(int code) {
  switch (code) {
    case PB_OK: return "ok";
    case PB_ERR_IO: return "i/o error";
    case PB_ERR_FORMAT: return "format error";
    case PB_ERR_NOMEM: return "out of memory";
    case PB_ERR_ARG: return "bad argument";
    case PB_ERR_SHAPE: return "shape mismatch";
    case PB_ERR_NUMERIC: return "non-finite value";
    case PB_ERR_NOTFOUND: return "not found";
    case PB_ERR_UNSUPPORTED: return "unsupported";
    case PB_ERR_STATE: return "call out of order";
    case PB_ERR_LIB: return "library call failed";
    default: return "error";
  }
}
