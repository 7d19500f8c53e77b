/* Status codes and the last-error message shared by all library code.
 * Library functions return PB_OK (0) or a negative code, after recording one line saying
 * what went wrong and where (file, tensor, line) with pb_set_error(). The CLI prints
 * pb_last_error() and exits non-zero. The one error system of every layer (util, counters,
 * backbone, methods, harness): no module keeps codes or messages of its own. */
#ifndef PB_STATUS_H
#define PB_STATUS_H

enum {
  PB_OK = 0,
  PB_ERR_IO = -1,      /* open/read/write/rename failed */
  PB_ERR_FORMAT = -2,  /* malformed file content */
  PB_ERR_NOMEM = -3,   /* allocation failed */
  PB_ERR_ARG = -4,     /* bad argument or option value */
  PB_ERR_SHAPE = -5,   /* tensor shape/dtype mismatch */
  PB_ERR_NUMERIC = -6, /* NaN/inf where a finite number is required */
  PB_ERR_NOTFOUND = -7,/* missing file, tensor, task or method */
  PB_ERR_UNSUPPORTED = -8,
  PB_ERR_STATE = -9,   /* call out of order (stop without start, started twice) */
  PB_ERR_LIB = -10     /* a library or system call failed (PAPI, libsde, the clock) */
};

/* printf-style; returns `code` so that callers can write `return pb_set_error(PB_ERR_IO, ...)`. */
int pb_set_error(int code, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
const char *pb_last_error(void);
const char *pb_status_name(int code);

#endif
