#include "harness/results.h"

#include "pb_build_info.h" /* generated: PB_BUILD_COMMIT, PB_BUILD_DIRTY */

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "backbone/bf16.h"
#include "backbone/blas.h"
#include "util/fileio.h"
#include "util/status.h"

cJSON *pb_ops_json(const pb_opcounts *c, double scale) {
  cJSON *o = cJSON_CreateObject();
  if (!o) return NULL;
  for (int k = 0; k <= PB_OPK_COUNT; k++) { /* the three kinds, then "flops" */
    cJSON *kind = cJSON_AddObjectToObject(o, k < PB_OPK_COUNT ? pb_opkind_name(k) : "flops");
    double total = 0;
    for (int w = 0; w < PB_OPO_COUNT; w++) {
      double v = k < PB_OPK_COUNT ? (double)c->c[w][k] : (double)pb_opcounts_flops(c, w);
      total += v;
      cJSON_AddNumberToObject(kind, pb_opowner_name(w), v / scale);
    }
    cJSON_AddNumberToObject(kind, "total", total / scale);
  }
  return o;
}

/* the shortest of %.15g / %.16g / %.17g that reads back as exactly x */
static void exact_number(double x, char *buf, size_t n) {
  for (int prec = 15; prec <= 17; prec++) {
    snprintf(buf, n, "%.*g", prec, x);
    if (strtod(buf, NULL) == x) return;
  }
}

/* numbers -> raw text that round-trips (cJSON itself prints 15 digits when they come within
 * an epsilon of the value, which loses the last bits) */
static void make_exact(cJSON *o) {
  for (cJSON *c = o ? o->child : NULL; c; c = c->next) {
    if (cJSON_IsNumber(c) && isfinite(c->valuedouble)) {
      char buf[40];
      exact_number(c->valuedouble, buf, sizeof buf);
      char *raw = malloc(strlen(buf) + 1);
      if (!raw) continue; /* keeps cJSON's own text */
      strcpy(raw, buf);
      c->type = cJSON_Raw;
      c->valuestring = raw;
    } else {
      make_exact(c);
    }
  }
}

char *pb_json_print_exact(const cJSON *obj, int formatted) {
  cJSON *dup = cJSON_Duplicate(obj, 1);
  if (!dup) return NULL;
  make_exact(dup);
  char *s = formatted ? cJSON_Print(dup) : cJSON_PrintUnformatted(dup);
  cJSON_Delete(dup);
  return s;
}

int pb_result_append(const char *path, const cJSON *obj) {
  char *line = pb_json_print_exact(obj, 0);
  if (!line) return pb_set_error(PB_ERR_NOMEM, "%s: cannot serialise the result", path);
  int rc = pb_append_line(path, line);
  free(line);
  return rc;
}

int pb_results_read(const char *path, cJSON **out, int *n_bad) {
  char *data = NULL;
  size_t len = 0;
  *out = NULL;
  if (n_bad) *n_bad = 0;
  int rc = pb_read_file(path, &data, &len);
  if (rc) return rc;
  cJSON *arr = cJSON_CreateArray();
  if (!arr) {
    free(data);
    return pb_set_error(PB_ERR_NOMEM, "%s: out of memory", path);
  }
  char *p = data;
  while (p < data + len) {
    char *nl = memchr(p, '\n', (size_t)(data + len - p));
    if (nl) *nl = 0;
    if (*p) {
      cJSON *o = cJSON_Parse(p);
      if (o && cJSON_IsObject(o)) cJSON_AddItemToArray(arr, o);
      else {
        cJSON_Delete(o);
        if (n_bad) (*n_bad)++;
      }
    }
    if (!nl) break;
    p = nl + 1;
  }
  free(data);
  *out = arr;
  return PB_OK;
}

void pb_precision_json_add(cJSON *obj) {
  const int bf = pb_get_precision() == PB_PREC_BF16;
  cJSON *p = cJSON_AddObjectToObject(obj, "precision");
  cJSON_AddStringToObject(p, "mode", pb_precision_name(pb_get_precision()));
  cJSON_AddStringToObject(p, "linear", bf ? pb_bf16_library() : "OpenBLAS sgemm");
  cJSON_AddStringToObject(p, "kernel", bf ? pb_bf16_kernel() : pb_blas_get()->core);
  cJSON_AddStringToObject(p, "attention", bf ? "bf16 (oneDNN batched matmul; softmax, mask, dropout fp32)" : "fp32 (OpenBLAS sgemm)");
  if (bf) {
    cJSON_AddNumberToObject(p, "fp32_fallbacks", (double)pb_bf16_fallbacks());
    cJSON_AddNumberToObject(p, "bf16_cache_mib", (double)pb_bf16_cache_bytes() / (1024.0 * 1024.0));
  }
}

cJSON *pb_host_json(int threads) {
  cJSON *h = cJSON_CreateObject();
  char name[256] = "";
  gethostname(name, sizeof name - 1);
  cJSON_AddStringToObject(h, "hostname", name);
  char cpu[256] = "unknown";
  FILE *f = fopen("/proc/cpuinfo", "r");
  if (f) {
    char line[512];
    while (fgets(line, sizeof line, f)) {
      if (strncmp(line, "model name", 10) == 0) {
        char *c = strchr(line, ':');
        if (c) {
          c++;
          while (*c == ' ') c++;
          c[strcspn(c, "\n")] = 0;
          snprintf(cpu, sizeof cpu, "%s", c);
        }
        break;
      }
    }
    fclose(f);
  }
  cJSON_AddStringToObject(h, "cpu", cpu);
  cJSON_AddNumberToObject(h, "cores", (double)sysconf(_SC_NPROCESSORS_ONLN));
  cJSON_AddNumberToObject(h, "threads", threads);
  const pb_blas_info *b = pb_blas_get();
  cJSON *blas = cJSON_AddObjectToObject(h, "blas");
  cJSON_AddStringToObject(blas, "core", b->core);
  cJSON_AddStringToObject(blas, "detected", b->detected);
  cJSON_AddBoolToObject(blas, "switched", b->switched);
  pb_precision_json_add(h);
  return h;
}

const char *pb_source_commit(void) { return PB_BUILD_COMMIT[0] ? PB_BUILD_COMMIT : NULL; }

int pb_source_dirty(void) { return PB_BUILD_DIRTY; }

void pb_commit_json_add(cJSON *obj) {
  const char *commit = pb_source_commit();
  if (commit) cJSON_AddStringToObject(obj, "commit", commit);
  else cJSON_AddNullToObject(obj, "commit");
  if (pb_source_dirty() < 0) cJSON_AddNullToObject(obj, "commit_dirty");
  else cJSON_AddBoolToObject(obj, "commit_dirty", pb_source_dirty());
}

void pb_utc_now(char *buf, int n) {
  time_t t = time(NULL);
  struct tm tm;
  gmtime_r(&t, &tm);
  strftime(buf, (size_t)n, "%Y-%m-%dT%H:%M:%SZ", &tm);
}
