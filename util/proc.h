/* Running an external tool and reading what it prints (gnuplot for `plot`, sbatch/sacct/squeue
 * for `sweep slurm|status`). */
#ifndef PB_PROC_H
#define PB_PROC_H

#include <stddef.h>

#define PB_PROC_MERGE_STDERR 1 /* read the tool's stderr too (its messages), not only stdout */
#define PB_PROC_KEEP_TAIL 2    /* keep the last n-1 bytes of a longer output, not the first */

/* Runs argv (argv[0] looked up in PATH) with stdin from /dev/null and its stdout (and stderr
 * with PB_PROC_MERGE_STDERR; otherwise stderr is inherited) read into out[n], NUL-terminated,
 * stdout and stderr of this process flushed first. Returns the tool's exit status (0..255, or
 * 128 + the signal that ended it), PB_ERR_NOTFOUND ("ARGV0: reason") when it cannot be executed,
 * PB_ERR_IO when pipe, fork or waitpid fail. */
int pb_proc_capture(const char *const *argv, int flags, char *out, size_t n);

#endif
