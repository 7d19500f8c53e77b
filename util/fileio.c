#include "util/fileio.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "util/status.h"

static char *dup_str(const char *s) {
  size_t n = strlen(s) + 1;
  char *d = malloc(n);
  if (d) memcpy(d, s, n);
  return d;
}

/* fsync of the directory holding `path`, so that a rename into it is durable. Errors are
 * ignored where the file system does not support fsync on directories. */
static int fsync_parent_dir(const char *path) {
  char *dir = dup_str(path);
  if (!dir) return pb_set_error(PB_ERR_NOMEM, "%s: out of memory", path);
  char *slash = strrchr(dir, '/');
  const char *d = ".";
  if (slash == dir) d = "/";
  else if (slash) { *slash = 0; d = dir; }
  int fd = open(d, O_RDONLY | O_DIRECTORY);
  int rc = PB_OK;
  if (fd >= 0) {
    if (fsync(fd) != 0 && errno != EINVAL && errno != EROFS)
      rc = pb_set_error(PB_ERR_IO, "%s: fsync of directory %s failed: %s", path, d, strerror(errno));
    close(fd);
  }
  free(dir);
  return rc;
}

static int write_all(int fd, const void *data, size_t n) {
  const char *p = data;
  while (n > 0) {
    ssize_t w = write(fd, p, n > ((size_t)1 << 30) ? ((size_t)1 << 30) : n);
    if (w < 0) {
      if (errno == EINTR) continue;
      return -1;
    }
    if (w == 0) { errno = EIO; return -1; }
    p += w;
    n -= (size_t)w;
  }
  return 0;
}

int pb_atomic_open(pb_atomic_file *af, const char *path) {
  memset(af, 0, sizeof *af);
  af->fd = -1;
  size_t n = strlen(path) + 32;
  char *p = dup_str(path), *tmp = malloc(n);
  if (!p || !tmp) {
    free(p);
    free(tmp);
    return pb_set_error(PB_ERR_NOMEM, "%s: out of memory", path);
  }
  af->path = p;
  af->tmp = tmp;
  snprintf(af->tmp, n, "%s.tmp.%ld", path, (long)getpid());
  af->fd = open(af->tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (af->fd < 0) {
    int e = errno;
    free(af->tmp);
    af->tmp = NULL; /* nothing created: abort must not unlink */
    pb_atomic_abort(af);
    return pb_set_error(PB_ERR_IO, "%s: cannot create file: %s", path, strerror(e));
  }
  return PB_OK;
}

int pb_atomic_write(pb_atomic_file *af, const void *data, size_t n) {
  if (af->fd < 0 || af->failed) return pb_set_error(PB_ERR_IO, "%s: write to a closed file", af->path ? af->path : "?");
  if (write_all(af->fd, data, n) != 0) {
    af->failed = 1;
    return pb_set_error(PB_ERR_IO, "%s: write failed: %s", af->path, strerror(errno));
  }
  return PB_OK;
}

int pb_atomic_commit(pb_atomic_file *af) {
  if (af->fd < 0 || af->failed) {
    int rc = pb_set_error(PB_ERR_IO, "%s: earlier write failed, file not replaced", af->path ? af->path : "?");
    pb_atomic_abort(af);
    return rc;
  }
  if (fsync(af->fd) != 0) {
    int rc = pb_set_error(PB_ERR_IO, "%s: fsync failed: %s", af->path, strerror(errno));
    pb_atomic_abort(af);
    return rc;
  }
  int fd = af->fd;
  af->fd = -1;
  if (close(fd) != 0) {
    int rc = pb_set_error(PB_ERR_IO, "%s: close failed: %s", af->path, strerror(errno));
    pb_atomic_abort(af);
    return rc;
  }
  if (af->no_replace) {
    if (link(af->tmp, af->path) != 0) {
      int e = errno;
      int rc = e == EEXIST ? pb_set_error(PB_ERR_IO, "%s: exists already; it is never replaced", af->path)
                           : pb_set_error(PB_ERR_IO, "%s: link from %s failed: %s", af->path, af->tmp, strerror(e));
      pb_atomic_abort(af);
      return rc;
    }
    unlink(af->tmp);
  } else if (rename(af->tmp, af->path) != 0) {
    int rc = pb_set_error(PB_ERR_IO, "%s: rename from %s failed: %s", af->path, af->tmp, strerror(errno));
    pb_atomic_abort(af);
    return rc;
  }
  int rc = fsync_parent_dir(af->path);
  free(af->tmp);
  free(af->path);
  af->tmp = af->path = NULL;
  return rc;
}

void pb_atomic_abort(pb_atomic_file *af) {
  if (af->fd >= 0) close(af->fd);
  af->fd = -1;
  if (af->tmp) unlink(af->tmp);
  free(af->tmp);
  free(af->path);
  af->tmp = af->path = NULL;
}

static int write_whole(const char *path, const void *data, size_t n, int no_replace) {
  pb_atomic_file af;
  int rc = pb_atomic_open(&af, path);
  if (rc) return rc;
  af.no_replace = no_replace;
  rc = pb_atomic_write(&af, data, n);
  if (rc) {
    pb_atomic_abort(&af);
    return rc;
  }
  return pb_atomic_commit(&af);
}

int pb_write_file_atomic(const char *path, const void *data, size_t n) { return write_whole(path, data, n, 0); }
int pb_write_file_new(const char *path, const void *data, size_t n) { return write_whole(path, data, n, 1); }

int pb_append_line(const char *path, const char *line) {
  size_t n = strlen(line);
  size_t body = (n > 0 && line[n - 1] == '\n') ? n - 1 : n;
  if (memchr(line, '\n', body))
    return pb_set_error(PB_ERR_ARG, "%s: a JSONL record must be one line (it contains a newline)", path);
  int fd = open(path, O_RDWR | O_APPEND | O_CREAT | O_CLOEXEC, 0644); /* RDWR: to peek at the last byte */
  if (fd < 0) return pb_set_error(PB_ERR_IO, "%s: cannot open for append: %s", path, strerror(errno));
  /* torn last line from an earlier crash? then start our record on a fresh line */
  int lead = 0;
  struct stat st;
  if (fstat(fd, &st) == 0 && st.st_size > 0) {
    char last = '\n';
    if (pread(fd, &last, 1, st.st_size - 1) == 1 && last != '\n') lead = 1;
  }
  int trail = !(n > 0 && line[n - 1] == '\n');
  size_t total = (size_t)lead + n + (size_t)trail;
  char *buf = malloc(total);
  if (!buf) {
    close(fd);
    return pb_set_error(PB_ERR_NOMEM, "%s: out of memory", path);
  }
  if (lead) buf[0] = '\n';
  memcpy(buf + lead, line, n);
  if (trail) buf[total - 1] = '\n';
  ssize_t w;
  do w = write(fd, buf, total); /* ONE write(): see the header comment */
  while (w < 0 && errno == EINTR);
  int e = errno;
  free(buf);
  if (w < 0 || (size_t)w != total) {
    close(fd);
    if (w < 0) return pb_set_error(PB_ERR_IO, "%s: append failed: %s", path, strerror(e));
    return pb_set_error(PB_ERR_IO, "%s: short append (%zd of %zu bytes; disk full?)", path, w, total);
  }
  if (fsync(fd) != 0) {
    e = errno;
    close(fd);
    return pb_set_error(PB_ERR_IO, "%s: fsync failed: %s", path, strerror(e));
  }
  if (close(fd) != 0) return pb_set_error(PB_ERR_IO, "%s: close failed: %s", path, strerror(errno));
  return PB_OK;
}

int pb_open_regular(const char *path, int *fd_out, size_t *size) {
  int fd = open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    int e = errno;
    if (e == ENOENT) return pb_set_error(PB_ERR_NOTFOUND, "%s: no such file", path);
    return pb_set_error(PB_ERR_IO, "%s: cannot open: %s", path, strerror(e));
  }
  struct stat st;
  if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
    close(fd);
    return pb_set_error(PB_ERR_IO, "%s: not a regular file", path);
  }
  *fd_out = fd;
  *size = (size_t)st.st_size;
  return PB_OK;
}

int pb_read_file(const char *path, char **data, size_t *len) {
  *data = NULL;
  if (len) *len = 0;
  int fd;
  size_t n;
  int rc = pb_open_regular(path, &fd, &n);
  if (rc) return rc;
  char *buf = malloc(n + 1);
  if (!buf) {
    close(fd);
    return pb_set_error(PB_ERR_NOMEM, "%s: out of memory (%zu bytes)", path, n);
  }
  size_t got = 0;
  while (got < n) {
    ssize_t r = read(fd, buf + got, n - got);
    if (r < 0 && errno == EINTR) continue;
    if (r <= 0) break;
    got += (size_t)r;
  }
  close(fd);
  if (got != n) {
    free(buf);
    return pb_set_error(PB_ERR_IO, "%s: short read (%zu of %zu bytes)", path, got, n);
  }
  buf[n] = 0;
  *data = buf;
  if (len) *len = n;
  return PB_OK;
}

int pb_mkdir_p(const char *dir) {
  char tmp[4096];
  if (snprintf(tmp, sizeof tmp, "%s", dir) >= (int)sizeof tmp) return pb_set_error(PB_ERR_ARG, "%s: path too long", dir);
  for (char *p = tmp + 1; *p; p++) {
    if (*p != '/') continue;
    *p = 0;
    if (mkdir(tmp, 0755) != 0 && errno != EEXIST)
      return pb_set_error(PB_ERR_IO, "%s: cannot create folder: %s", tmp, strerror(errno));
    *p = '/';
  }
  if (mkdir(tmp, 0755) != 0 && errno != EEXIST)
    return pb_set_error(PB_ERR_IO, "%s: cannot create folder: %s", tmp, strerror(errno));
  struct stat st;
  if (stat(tmp, &st) != 0 || !S_ISDIR(st.st_mode)) return pb_set_error(PB_ERR_IO, "%s: exists and is not a folder", tmp);
  return PB_OK;
}

int pb_read_json_object(const char *path, cJSON **root) {
  *root = NULL;
  char *text = NULL;
  size_t len = 0;
  int rc = pb_read_file(path, &text, &len);
  if (rc) return rc;
  cJSON *j = cJSON_ParseWithLength(text, len);
  free(text);
  if (!j) return pb_set_error(PB_ERR_FORMAT, "%s: not valid JSON", path);
  if (!cJSON_IsObject(j)) {
    cJSON_Delete(j);
    return pb_set_error(PB_ERR_FORMAT, "%s: not a JSON object", path);
  }
  *root = j;
  return PB_OK;
}
