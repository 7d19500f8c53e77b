/* Cranfield loader (cranfield.h). */
#include "harness/cranfield.h"

#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "util/fileio.h"
#include "util/status.h"
#include "util/strbuf.h"

void pb_cranfield_free(pb_cranfield *c) {
  for (int i = 0; i < c->n_docs; i++) free(c->doc_text[i]);
  for (int i = 0; i < c->n_queries; i++) free(c->query_text[i]);
  free(c->doc_id);
  free(c->doc_text);
  free(c->query_num);
  free(c->query_text);
  free(c->qrel_off);
  free(c->qrel_doc);
  free(c->qrel_grade);
  memset(c, 0, sizeof *c);
}

int pb_cranfield_grade(int code) {
  if (code >= 1 && code <= 4) return 5 - code;
  return code == -1 ? 0 : -1;
}

int pb_cranfield_split_of(int q, int n) {
  int ntrain = n == 225 ? 150 : (2 * n) / 3, ndev = n == 225 ? 25 : n / 9;
  return q < ntrain ? PB_IR_TRAIN : q < ntrain + ndev ? PB_IR_DEV : PB_IR_TEST;
}

int pb_cranfield_split_fold(int q, int n, int fold) {
  if (fold <= 0) return pb_cranfield_split_of(q, n);
  if (q % PB_CRANFIELD_FOLDS == fold - 1) return PB_IR_TEST;
  /* rank of q among the non-test positions before it */
  const int before = q - (q + PB_CRANFIELD_FOLDS - fold) / PB_CRANFIELD_FOLDS;
  return before % 9 == 0 ? PB_IR_DEV : PB_IR_TRAIN;
}

static const char *SPLITS[3] = {"train", "dev", "test"};
int pb_cranfield_split_parse(const char *name) {
  for (int i = 0; name && i < 3; i++)
    if (strcmp(name, SPLITS[i]) == 0) return i;
  return -1;
}
const char *pb_cranfield_split_name(int split) { return split >= 0 && split < 3 ? SPLITS[split] : "?"; }

int pb_cranfield_grade_of(const pb_cranfield *c, int q, int doc) {
  for (int k = c->qrel_off[q]; k < c->qrel_off[q + 1]; k++)
    if (c->qrel_doc[k] == doc) return c->qrel_grade[k];
  return 0;
}

/* ---------------------------------------------------------------- lines */

typedef struct {
  const char *p;
  int line;
} cursor;

/* next line without its end (\n or \r\n) into [*s, *s + *n); 0 at the end */
static int next_line(cursor *cu, const char **s, size_t *n) {
  if (!*cu->p) return 0;
  const char *e = strchr(cu->p, '\n');
  size_t len = e ? (size_t)(e - cu->p) : strlen(cu->p);
  *s = cu->p;
  *n = len;
  if (len > 0 && cu->p[len - 1] == '\r') (*n)--;
  cu->p += len + (e ? 1 : 0);
  cu->line++;
  return 1;
}

static int blank(const char *s, size_t n) {
  for (size_t i = 0; i < n; i++)
    if (s[i] != ' ' && s[i] != '\t') return 0;
  return 1;
}

/* a whole-string integer with optional surrounding blanks */
static int parse_int(const char *s, size_t n, long *out) {
  char buf[32];
  while (n && (*s == ' ' || *s == '\t')) s++, n--;
  while (n && (s[n - 1] == ' ' || s[n - 1] == '\t')) n--;
  if (n == 0 || n >= sizeof buf) return 0;
  memcpy(buf, s, n);
  buf[n] = 0;
  char *end;
  errno = 0;
  long v = strtol(buf, &end, 10);
  if (errno || *end) return 0;
  *out = v;
  return 1;
}

static char *dup_trim(const char *s) {
  size_t n = strlen(s);
  while (n && (s[n - 1] == ' ' || s[n - 1] == '\n')) n--;
  while (n && (*s == ' ' || *s == '\n')) s++, n--;
  char *r = malloc(n + 1);
  if (r) {
    memcpy(r, s, n);
    r[n] = 0;
  }
  return r;
}

/* ---------------------------------------------------------------- SMART records */

/* fields: the letters allowed after '.', e.g. "TABW"; keeps .T and .W */
static int parse_records(const char *path, const char *data, const char *fields, int **ids_out, char ***text_out,
                         int *n_out, int *n_empty) {
  cursor cu = {data, 0};
  const char *s;
  size_t n;
  int cap = 0, cnt = 0, rc = PB_OK;
  int *ids = NULL;
  char **text = NULL;
  pb_strbuf title = {0}, body = {0};
  char field = 0; /* current field letter, 0 before the first */
  int in_rec = 0, empty = 0;
#define FLUSH()                                                                                         \
  do {                                                                                                  \
    if (in_rec) {                                                                                       \
      const char *t = body.n && !blank(body.s, body.n) ? body.s : title.n ? title.s : "";  \
      if (!(body.n && !blank(body.s, body.n))) empty++;                                          \
      if (!(text[cnt - 1] = dup_trim(t))) rc = pb_set_error(PB_ERR_NOMEM, "%s: out of memory", path);  \
    }                                                                                                   \
  } while (0)
  if (!*data) {
    rc = pb_set_error(PB_ERR_FORMAT, "%s: empty file", path);
    goto out;
  }
  while (!rc && next_line(&cu, &s, &n)) {
    for (size_t i = 0; i < n; i++)
      if ((unsigned char)s[i] < 0x09 || ((unsigned char)s[i] > 0x0d && (unsigned char)s[i] < 0x20)) {
        rc = pb_set_error(PB_ERR_FORMAT, "%s:%d: control byte 0x%02x at byte %zu of the line", path, cu.line,
                          (unsigned char)s[i], i + 1);
        goto out;
      }
    if (n >= 2 && s[0] == '.' && s[1] == 'I' && (n == 2 || s[2] == ' ' || s[2] == '\t')) {
      long id;
      if (!parse_int(s + 2, n - 2, &id) || id < 1 || id > INT_MAX) {
        rc = pb_set_error(PB_ERR_FORMAT, "%s:%d: .I needs a positive integer id, got '%.*s'", path, cu.line,
                          (int)(n > 40 ? 40 : n), s);
        goto out;
      }
      FLUSH();
      if (rc) goto out;
      if (cnt == cap) {
        cap = cap ? 2 * cap : 256;
        int *ni = realloc(ids, sizeof(int) * (size_t)cap);
        if (ni) ids = ni;
        char **nt = realloc(text, sizeof(char *) * (size_t)cap);
        if (nt) text = nt;
        if (!ni || !nt) {
          rc = pb_set_error(PB_ERR_NOMEM, "%s: out of memory", path);
          goto out;
        }
      }
      ids[cnt] = (int)id;
      text[cnt] = NULL;
      cnt++;
      in_rec = 1;
      field = 0;
      title.n = body.n = 0;
      if (title.s) title.s[0] = 0;
      if (body.s) body.s[0] = 0;
      continue;
    }
    if (n >= 2 && s[0] == '.' && s[1] >= 'A' && s[1] <= 'Z' && (n == 2 || s[2] == ' ' || s[2] == '\t')) {
      if (!strchr(fields, s[1])) {
        rc = pb_set_error(PB_ERR_FORMAT, "%s:%d: unknown field '.%c' (expected .I or one of .%s)", path, cu.line,
                          s[1], fields);
        goto out;
      }
      if (!in_rec) {
        rc = pb_set_error(PB_ERR_FORMAT, "%s:%d: field .%c before the first .I record", path, cu.line, s[1]);
        goto out;
      }
      field = s[1];
      if (n > 2) { /* text on the marker line itself */
        pb_strbuf *dst = field == 'W' ? &body : field == 'T' ? &title : NULL;
        if (dst) pb_sb_add(dst, "%.*s\n", (int)(n - 3), s + 3);
      }
      continue;
    }
    if (blank(s, n)) continue;
    if (!in_rec) {
      rc = pb_set_error(PB_ERR_FORMAT, "%s:%d: text before the first .I record", path, cu.line);
      goto out;
    }
    if (!field) {
      rc = pb_set_error(PB_ERR_FORMAT, "%s:%d: text after .I %d before any field marker", path, cu.line,
                        ids[cnt - 1]);
      goto out;
    }
    pb_strbuf *dst = field == 'W' ? &body : field == 'T' ? &title : NULL;
    if (dst) pb_sb_add(dst, "%.*s\n", (int)n, s);
    if (title.oom || body.oom) {
      rc = pb_set_error(PB_ERR_NOMEM, "%s: out of memory", path);
      goto out;
    }
  }
  FLUSH();
  if (!rc && cnt == 0) rc = pb_set_error(PB_ERR_FORMAT, "%s: no .I records", path);
out:
#undef FLUSH
  free(title.s);
  free(body.s);
  if (rc) {
    for (int i = 0; i < cnt; i++) free(text[i]);
    free(ids);
    free(text);
    return rc;
  }
  *ids_out = ids;
  *text_out = text;
  *n_out = cnt;
  if (n_empty) *n_empty = empty;
  return PB_OK;
}

int pb_cranfield_parse_docs(const char *path, const char *data, pb_cranfield *c) {
  int rc = parse_records(path, data, "TABW", &c->doc_id, &c->doc_text, &c->n_docs, &c->n_empty);
  if (rc) return rc;
  /* ids must be distinct (cranqrel refers to them) */
  int maxid = 0;
  for (int i = 0; i < c->n_docs; i++)
    if (c->doc_id[i] > maxid) maxid = c->doc_id[i];
  unsigned char *seen = calloc((size_t)maxid + 1, 1);
  if (!seen) return pb_set_error(PB_ERR_NOMEM, "%s: out of memory", path);
  for (int i = 0; i < c->n_docs; i++) {
    if (seen[c->doc_id[i]]) {
      free(seen);
      return pb_set_error(PB_ERR_FORMAT, "%s: document id %d appears twice", path, c->doc_id[i]);
    }
    seen[c->doc_id[i]] = 1;
  }
  free(seen);
  return PB_OK;
}

int pb_cranfield_parse_queries(const char *path, const char *data, pb_cranfield *c) {
  int empty = 0;
  int rc = parse_records(path, data, "W", &c->query_num, &c->query_text, &c->n_queries, &empty);
  if (rc) return rc;
  for (int q = 0; q < c->n_queries; q++)
    if (!*c->query_text[q])
      return pb_set_error(PB_ERR_FORMAT, "%s: query .I %03d (position %d) has no text", path, c->query_num[q], q + 1);
  return PB_OK;
}

int pb_cranfield_parse_qrels(const char *path, const char *data, pb_cranfield *c) {
  if (c->n_docs <= 0 || c->n_queries <= 0)
    return pb_set_error(PB_ERR_ARG, "%s: load the documents and the queries first", path);
  int maxid = 0;
  for (int i = 0; i < c->n_docs; i++)
    if (c->doc_id[i] > maxid) maxid = c->doc_id[i];
  int *index_of = malloc(sizeof(int) * ((size_t)maxid + 1));
  size_t cap = 1024;
  int *q_of = malloc(sizeof(int) * cap), *d_of = malloc(sizeof(int) * cap), *g_of = malloc(sizeof(int) * cap);
  int rc = index_of && q_of && d_of && g_of ? PB_OK : pb_set_error(PB_ERR_NOMEM, "%s: out of memory", path);
  if (!rc) {
    for (int i = 0; i <= maxid; i++) index_of[i] = -1;
    for (int i = 0; i < c->n_docs; i++) index_of[c->doc_id[i]] = i;
  }
  cursor cu = {data, 0};
  const char *s;
  size_t n;
  int cnt = 0;
  while (!rc && next_line(&cu, &s, &n)) {
    if (blank(s, n)) continue;
    long v[3];
    int k = 0;
    size_t i = 0;
    while (i < n && k <= 3) {
      while (i < n && (s[i] == ' ' || s[i] == '\t')) i++;
      if (i >= n) break;
      size_t j = i;
      while (j < n && s[j] != ' ' && s[j] != '\t') j++;
      if (k == 3) {
        k = 4;
        break;
      }
      if (!parse_int(s + i, j - i, &v[k])) {
        rc = pb_set_error(PB_ERR_FORMAT, "%s:%d: field %d '%.*s' is not an integer", path, cu.line, k + 1,
                          (int)(j - i > 20 ? 20 : j - i), s + i);
        break;
      }
      k++;
      i = j;
    }
    if (rc) break;
    if (k != 3) {
      rc = pb_set_error(PB_ERR_FORMAT, "%s:%d: expected 3 fields 'query doc code', got %s", path, cu.line,
                        k > 3 ? "more" : k == 2 ? "2" : k == 1 ? "1" : "0");
      break;
    }
    if (v[0] < 1 || v[0] > c->n_queries) {
      rc = pb_set_error(PB_ERR_FORMAT, "%s:%d: query %ld outside 1..%d (queries are numbered by position)", path,
                        cu.line, v[0], c->n_queries);
      break;
    }
    if (v[1] < 1 || v[1] > maxid || index_of[v[1]] < 0) {
      rc = pb_set_error(PB_ERR_FORMAT, "%s:%d: document %ld is not in the collection", path, cu.line, v[1]);
      break;
    }
    int g = pb_cranfield_grade((int)(v[2] < INT_MIN || v[2] > INT_MAX ? 99 : v[2]));
    if (g < 0) {
      rc = pb_set_error(PB_ERR_FORMAT, "%s:%d: relevance code %ld is not one of 1, 2, 3, 4, -1", path, cu.line, v[2]);
      break;
    }
    for (int e = 0; e < cnt; e++)
      if (q_of[e] == v[0] - 1 && d_of[e] == index_of[v[1]]) {
        rc = pb_set_error(PB_ERR_FORMAT, "%s:%d: query %ld, document %ld judged twice", path, cu.line, v[0], v[1]);
        break;
      }
    if (rc) break;
    if ((size_t)cnt == cap) {
      cap *= 2;
      int *a = realloc(q_of, sizeof(int) * cap);
      if (a) q_of = a;
      int *b = realloc(d_of, sizeof(int) * cap);
      if (b) d_of = b;
      int *g2 = realloc(g_of, sizeof(int) * cap);
      if (g2) g_of = g2;
      if (!a || !b || !g2) {
        rc = pb_set_error(PB_ERR_NOMEM, "%s: out of memory", path);
        break;
      }
    }
    q_of[cnt] = (int)v[0] - 1;
    d_of[cnt] = index_of[v[1]];
    g_of[cnt] = g;
    cnt++;
  }
  if (!rc && cnt == 0) rc = pb_set_error(PB_ERR_FORMAT, "%s: no judgements", path);
  if (!rc) { /* CSR by query position, file order within a query */
    c->qrel_off = calloc((size_t)c->n_queries + 1, sizeof(int));
    c->qrel_doc = malloc(sizeof(int) * (size_t)cnt);
    c->qrel_grade = malloc(sizeof(int) * (size_t)cnt);
    if (!c->qrel_off || !c->qrel_doc || !c->qrel_grade) rc = pb_set_error(PB_ERR_NOMEM, "%s: out of memory", path);
  }
  if (!rc) {
    for (int e = 0; e < cnt; e++) c->qrel_off[q_of[e] + 1]++;
    for (int q = 0; q < c->n_queries; q++) c->qrel_off[q + 1] += c->qrel_off[q];
    int *fill = calloc((size_t)c->n_queries, sizeof(int));
    if (!fill) rc = pb_set_error(PB_ERR_NOMEM, "%s: out of memory", path);
    for (int e = 0; !rc && e < cnt; e++) {
      int at = c->qrel_off[q_of[e]] + fill[q_of[e]]++;
      c->qrel_doc[at] = d_of[e];
      c->qrel_grade[at] = g_of[e];
    }
    free(fill);
    c->n_qrels = cnt;
  }
  free(index_of);
  free(q_of);
  free(d_of);
  free(g_of);
  return rc;
}

static int load_one(const char *dir, const char *name, char **data, char *path, size_t npath) {
  snprintf(path, npath, "%s/%s", dir, name);
  size_t len;
  int rc = pb_read_file(path, data, &len);
  if (rc) return rc;
  const char *nul = memchr(*data, 0, len);
  if (nul) {
    size_t at = (size_t)(nul - *data);
    free(*data);
    *data = NULL;
    return pb_set_error(PB_ERR_FORMAT, "%s: NUL byte at offset %zu (not a text file)", path, at);
  }
  return PB_OK;
}

int pb_cranfield_load(const char *dir, pb_cranfield *c) {
  memset(c, 0, sizeof *c);
  snprintf(c->dir, sizeof c->dir, "%s", dir);
  char path[1200];
  char *data = NULL;
  int rc = load_one(dir, "cran.all.1400", &data, path, sizeof path);
  if (!rc) rc = pb_cranfield_parse_docs(path, data, c);
  free(data);
  data = NULL;
  if (!rc) rc = load_one(dir, "cran.qry", &data, path, sizeof path);
  if (!rc) rc = pb_cranfield_parse_queries(path, data, c);
  free(data);
  data = NULL;
  if (!rc) rc = load_one(dir, "cranqrel", &data, path, sizeof path);
  if (!rc) rc = pb_cranfield_parse_qrels(path, data, c);
  free(data);
  if (rc) {
    char keep[1024];
    snprintf(keep, sizeof keep, "%s", c->dir);
    pb_cranfield_free(c);
    snprintf(c->dir, sizeof c->dir, "%s", keep);
  }
  return rc;
}

int pb_cranfield_dir(const char *given, char *out, int n) {
  char buf[1200];
  if (given) snprintf(buf, sizeof buf, "%s", given);
  else if (getenv("PEFTBENCH_DATA") && *getenv("PEFTBENCH_DATA"))
    snprintf(buf, sizeof buf, "%s/cranfield", getenv("PEFTBENCH_DATA"));
  else snprintf(buf, sizeof buf, "%s/../shared/data/cranfield", PB_SOURCE_DIR);
  char probe[1300];
  snprintf(probe, sizeof probe, "%s/cran.all.1400", buf);
  if (access(probe, R_OK) != 0)
    return pb_set_error(PB_ERR_NOTFOUND,
                        "%s: no Cranfield collection here (put cran.all.1400, cran.qry and cranqrel in it, or give "
                        "--data-dir DIR)", buf);
  snprintf(out, (size_t)n, "%s", buf);
  return PB_OK;
}
