/* pb_proc_capture (util/proc.h): fork, exec and a pipe; an exec failure comes back through a
 * second, close-on-exec pipe, so it is told apart from a tool that ran and failed. */
#include "util/proc.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "util/status.h"

/* appends k bytes to out[0..*len) (capacity n including the NUL), keeping the head or the tail */
static void keep(char *out, size_t n, size_t *len, const char *buf, size_t k, int tail) {
  if (n < 2) return;
  const size_t cap = n - 1;
  if (!tail) {
    const size_t take = *len + k < cap ? k : cap - *len;
    memcpy(out + *len, buf, take);
    *len += take;
    return;
  }
  if (k >= cap) { /* the new bytes alone fill it */
    memcpy(out, buf + (k - cap), cap);
    *len = cap;
    return;
  }
  if (*len + k > cap) { /* drop the oldest */
    const size_t drop = *len + k - cap;
    memmove(out, out + drop, *len - drop);
    *len -= drop;
  }
  memcpy(out + *len, buf, k);
  *len += k;
}

int pb_proc_capture(const char *const *argv, int flags, char *out, size_t n) {
  if (n) out[0] = 0;
  int p[2], e[2];
  if (pipe(p) != 0) return pb_set_error(PB_ERR_IO, "pipe: %s", strerror(errno));
  if (pipe2(e, O_CLOEXEC) != 0) {
    close(p[0]), close(p[1]);
    return pb_set_error(PB_ERR_IO, "pipe: %s", strerror(errno));
  }
  fflush(stdout);
  fflush(stderr);
  const pid_t pid = fork();
  if (pid < 0) {
    close(p[0]), close(p[1]), close(e[0]), close(e[1]);
    return pb_set_error(PB_ERR_IO, "fork: %s", strerror(errno));
  }
  if (pid == 0) {
    close(p[0]);
    close(e[0]);
    const int nul = open("/dev/null", O_RDONLY);
    if (nul >= 0) dup2(nul, 0);
    dup2(p[1], 1);
    if (flags & PB_PROC_MERGE_STDERR) dup2(p[1], 2);
    close(p[1]);
    execvp(argv[0], (char *const *)argv);
    const int err = errno;
    if (write(e[1], &err, sizeof err) < 0) _exit(127);
    _exit(127);
  }
  close(p[1]);
  close(e[1]);
  size_t len = 0;
  for (;;) {
    char buf[4096];
    const ssize_t k = read(p[0], buf, sizeof buf);
    if (k < 0 && errno == EINTR) continue;
    if (k <= 0) break;
    keep(out, n, &len, buf, (size_t)k, flags & PB_PROC_KEEP_TAIL);
  }
  if (n) out[len] = 0;
  close(p[0]);
  int err = 0;
  const ssize_t ke = read(e[0], &err, sizeof err);
  close(e[0]);
  int st = 0;
  while (waitpid(pid, &st, 0) < 0)
    if (errno != EINTR) return pb_set_error(PB_ERR_IO, "waitpid (%s): %s", argv[0], strerror(errno));
  if (ke == (ssize_t)sizeof err) return pb_set_error(PB_ERR_NOTFOUND, "%s: %s", argv[0], strerror(err));
  return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + (WIFSIGNALED(st) ? WTERMSIG(st) : 0);
}
