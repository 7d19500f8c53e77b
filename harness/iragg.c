/* Grouping of retrieval records (iragg.h). */
#include "harness/iragg.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "methods/method.h"
#include "util/fileio.h"
#include "util/strbuf.h"
#include "util/status.h"

static int group_rank(const pb_ir_group *g) { return strcmp(g->method, "bm25") == 0 ? -1 : pb_method_rank(g->method); }

static int cmp_group(const void *x, const void *y) {
  const pb_ir_group *a = x, *b = y;
  int ra = group_rank(a), rb = group_rank(b);
  if (ra != rb) return ra < rb ? -1 : 1;
  int c = strcmp(a->method, b->method);
  if (c) return c;
  return strcmp(a->config_id ? a->config_id : "", b->config_id ? b->config_id : "");
}

int pb_ir_groups(const cJSON *records, pb_ir_group **out, int *n_out) {
  *out = NULL;
  *n_out = 0;
  int n = cJSON_GetArraySize(records), ng = 0;
  pb_ir_group *g = calloc((size_t)n + 1, sizeof *g);
  if (!g) return pb_set_error(PB_ERR_NOMEM, "table: out of memory");
  const cJSON *r;
  cJSON_ArrayForEach(r, records) {
    const char *method = pb_json_str(r, "method");
    const cJSON *cfg = cJSON_GetObjectItemCaseSensitive(r, "config");
    if (!method || !cJSON_IsObject(cfg)) continue;
    int k = 0;
    while (k < ng && !(strcmp(g[k].method, method) == 0 && pb_config_equal(g[k].config, cfg))) k++;
    if (k == ng) {
      g[ng].method = method;
      g[ng].config = cfg;
      g[ng].config_id = pb_json_str(r, "config_id");
      ng++;
    }
    double seed, s2;
    int dup = -1;
    if (pb_json_num(r, &seed, "seed", NULL))
      for (int i = 0; i < g[k].n && dup < 0; i++)
        if (pb_json_num(g[k].recs[i], &s2, "seed", NULL) && s2 == seed) dup = i;
    if (dup >= 0) g[k].recs[dup] = r; /* a re-run: the later record */
    else if (g[k].n < PB_IR_GROUP_MAX) g[k].recs[g[k].n++] = r;
  }
  qsort(g, (size_t)ng, sizeof *g, cmp_group);
  for (int k = 0; k < ng; k++) {
    int same = 0;
    for (int j = 0; j < ng; j++) same += strcmp(g[j].method, g[k].method) == 0;
    if (same > 1) snprintf(g[k].label, sizeof g[k].label, "%s (%s)", g[k].method, g[k].config_id ? g[k].config_id : "?");
    else snprintf(g[k].label, sizeof g[k].label, "%s", g[k].method);
  }
  *out = g;
  *n_out = ng;
  return PB_OK;
}

pb_stat pb_ir_group_stat(const pb_ir_group *g, ...) {
  pb_acc acc = {0};
  for (int i = 0; i < g->n; i++) {
    const cJSON *o = g->recs[i];
    va_list ap;
    va_start(ap, g);
    const char *key;
    while (o && (key = va_arg(ap, const char *))) o = cJSON_GetObjectItemCaseSensitive(o, key);
    va_end(ap);
    if (cJSON_IsNumber(o)) pb_acc_add(&acc, o->valuedouble);
  }
  return pb_acc_stat(&acc);
}

int pb_plot_write_retrieval(const pb_agg *a, const char *dir, int *npoints, char *vars, size_t nvars) {
  *npoints = 0;
  if (nvars) vars[0] = 0;
  if (!a->n_retrieval) return PB_OK;
  pb_ir_group *g = NULL;
  int ng = 0;
  int rc = pb_ir_groups(a->retrieval, &g, &ng);
  if (rc) return rc;
  pb_strbuf b = {0};
  pb_sb_add(&b, "# config nDCG@10 std MRR@10 std (x100, test split)\n");
  for (int i = 0; i < ng; i++) {
    pb_stat n = pb_ir_group_stat(&g[i], "metrics", "splits", "test", "ndcg@10", NULL);
    pb_stat m = pb_ir_group_stat(&g[i], "metrics", "splits", "test", "mrr@10", NULL);
    if (!n.n) continue;
    char lab[200];
    snprintf(lab, sizeof lab, "%s%s", g[i].label, n.n > 1 ? "" : " (1 seed)");
    for (char *p = lab; *p; p++)
      if (*p == '"') *p = '\'';
    pb_sb_add(&b, "\"%s\" %.6g %.6g %.6g %.6g\n", lab, 100 * n.mean, 100 * n.std, 100 * m.mean, 100 * m.std);
    if (strcmp(g[i].method, "bm25") == 0 && nvars) snprintf(vars, nvars, "bm25=%.6g", 100 * n.mean);
    (*npoints)++;
  }
  free(g);
  char path[4096];
  snprintf(path, sizeof path, "%s/%s.dat", dir, PB_PLOT_RETRIEVAL_NAME);
  if (b.oom) rc = pb_set_error(PB_ERR_NOMEM, "plot: out of memory");
  else if (*npoints) rc = pb_write_file_atomic(path, b.s, b.n);
  free(b.s);
  return rc;
}
