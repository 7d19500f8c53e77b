/* Crash-safe file writing.
 *
 * Whole files (task files, checkpoints, config.json, tables) are written with the
 * tmp + fsync + rename pattern: the bytes go to "<path>.tmp.<pid>" in the same directory,
 * are fsync'ed, and the tmp file is rename()d over <path> (atomic on POSIX file systems),
 * then the directory is fsync'ed so the rename itself survives a crash. A reader therefore
 * sees either the old complete file or the new complete file, never a torn one; on any
 * error the tmp file is removed and an existing <path> is left untouched.
 *
 * Result records (JSONL) are appended with pb_append_line(): see its comment. */
#ifndef PB_FILEIO_H
#define PB_FILEIO_H

#include <stddef.h>

#include <cjson/cJSON.h>

/* A file being written atomically. */
typedef struct {
  int fd;          /* descriptor of the tmp file, -1 when closed */
  char *path;      /* final path (owned) */
  char *tmp;       /* "<path>.tmp.<pid>" (owned) */
  int failed;      /* a write already failed: commit will refuse */
  int no_replace;  /* 1: commit refuses to replace an existing <path> (link, not rename) */
} pb_atomic_file;

/* Creates "<path>.tmp.<pid>" (mode 0644). PB_ERR_IO naming the path if the directory does
 * not exist or is not writable. */
int pb_atomic_open(pb_atomic_file *af, const char *path);
/* Writes all n bytes (retries short writes and EINTR). */
int pb_atomic_write(pb_atomic_file *af, const void *data, size_t n);
/* fsync + close + rename over the final path + fsync of the directory. Frees af's strings;
 * on failure the tmp file is removed (the old file, if any, stays as it was). */
int pb_atomic_commit(pb_atomic_file *af);
/* With af->no_replace set (after pb_atomic_open), commit links the tmp file to the final
 * path instead of renaming it over: an existing <path> is never replaced, even by a run
 * racing ours (PB_ERR_IO "exists already"). */
/* Closes and removes the tmp file; safe to call on a committed/closed/zeroed af. */
void pb_atomic_abort(pb_atomic_file *af);

/* One-shot: writes data [n bytes] to path atomically. */
int pb_write_file_atomic(const char *path, const void *data, size_t n);
/* The same, refusing to replace an existing file (no_replace). */
int pb_write_file_new(const char *path, const void *data, size_t n);

/* Appends one record `line` (no '\n' inside; a trailing '\n' is added if missing) to a JSONL
 * file, creating it (0644) if needed.
 *
 * Why this is safe with several processes appending to the same file at once:
 *  - the file is opened with O_APPEND, so the kernel moves to the current end of file and
 *    writes in one step: two writers never overwrite each other's bytes;
 *  - the whole record (plus newline) is handed to ONE write() call. On Linux local file
 *    systems (ext4, xfs, btrfs, tmpfs) a write() to a regular file holds the inode lock for
 *    its whole length, so records from concurrent writers do not interleave (POSIX only
 *    promises this for pipes up to PIPE_BUF; we rely on the Linux behaviour and do not
 *    claim it for NFS);
 *  - fsync() before returning makes the record durable before the caller reports success;
 *  - if the file does not end in '\n' (a previous writer crashed mid-record or the disk was
 *    full), a '\n' is put in front of our record in the same write(), so our record stays a
 *    whole line and only the torn line is lost; readers skip lines that do not parse;
 *  - a short write (disk full) is reported as PB_ERR_IO; nothing already in the file is
 *    ever modified. */
int pb_append_line(const char *path, const char *line);

/* Reads a whole file that must hold one JSON object into *root (free with cJSON_Delete).
 * PB_ERR_NOTFOUND / PB_ERR_IO as pb_read_file; PB_ERR_FORMAT "PATH: not valid JSON" or
 * "PATH: not a JSON object". *root is NULL on error. */
int pb_read_json_object(const char *path, cJSON **root);

/* Creates dir and its missing parents (mode 0755); an existing folder is fine. PB_ERR_IO
 * naming the part that cannot be created or is not a folder, PB_ERR_ARG when too long. */
int pb_mkdir_p(const char *dir);

/* Opens an existing regular file read-only: *fd and its *size. PB_ERR_NOTFOUND if it does not
 * exist, PB_ERR_IO if it cannot be opened or is not a regular file, both naming the path. */
int pb_open_regular(const char *path, int *fd, size_t *size);
/* Reads a whole file into a NUL-terminated malloc'd buffer (*len = bytes without the NUL).
 * PB_ERR_NOTFOUND if it does not exist, PB_ERR_IO otherwise, both naming the path. */
int pb_read_file(const char *path, char **data, size_t *len);

#endif
