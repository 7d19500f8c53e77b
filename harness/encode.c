#include "harness/encode.h"

#include <stdlib.h>
#include <string.h>

#include "util/status.h"

void pb_encoded_free(pb_encoded *e) {
  free(e->ids);
  free(e->types);
  free(e->mask);
  free(e->len);
  free(e->label);
  free(e->target);
  memset(e, 0, sizeof *e);
}

int pb_encode_dataset(const pb_tokenizer *tk, const pb_dataset *ds, int max_len, pb_encoded *out) {
  memset(out, 0, sizeof *out);
  const size_t n = (size_t)ds->n, w = (size_t)max_len;
  out->n = ds->n;
  out->max_len = max_len;
  out->ids = malloc(n * w * sizeof(int) + 1);
  out->types = malloc(n * w * sizeof(int) + 1);
  out->mask = malloc(n * w * sizeof(int) + 1);
  out->len = malloc(n * sizeof(int) + 1);
  out->label = malloc(n * sizeof(int) + 1);
  out->target = malloc(n * sizeof(float) + 1);
  if (!out->ids || !out->types || !out->mask || !out->len || !out->label || !out->target) {
    pb_encoded_free(out);
    return pb_set_error(PB_ERR_NOMEM, "%s: out of memory tokenising %d examples", ds->path, ds->n);
  }
  for (int i = 0; i < ds->n; i++) {
    const pb_example *x = &ds->ex[i];
    int rc = pb_tok_encode_pair(tk, x->a, x->b, max_len, out->ids + i * w, out->types + i * w, out->mask + i * w,
                                &out->len[i]);
    if (rc) {
      pb_encoded_free(out);
      return pb_set_error(rc, "%s:%d: cannot tokenise: %s", ds->path, x->line, pb_last_error());
    }
    /* was anything cut? compare with the untruncated length */
    int na = 0, nb = 0;
    pb_tok_tokenize(tk, x->a, NULL, 0, &na);
    if (x->b) pb_tok_tokenize(tk, x->b, NULL, 0, &nb);
    if (na + nb + (x->b ? 3 : 2) > max_len) out->n_truncated++;
    out->label[i] = x->label;
    out->target[i] = x->target;
  }
  return PB_OK;
}

int pb_encoded_batch(const pb_encoded *e, const int *idx, int B, int *ids, int *types, int *mask, int *labels,
                     float *targets) {
  int T = 1;
  for (int b = 0; b < B; b++)
    if (e->len[idx[b]] > T) T = e->len[idx[b]];
  const size_t w = (size_t)e->max_len;
  for (int b = 0; b < B; b++) {
    const size_t r = (size_t)idx[b] * w;
    memcpy(ids + (size_t)b * T, e->ids + r, (size_t)T * sizeof(int));
    memcpy(types + (size_t)b * T, e->types + r, (size_t)T * sizeof(int));
    memcpy(mask + (size_t)b * T, e->mask + r, (size_t)T * sizeof(int));
    if (labels) labels[b] = e->label[idx[b]];
    if (targets) targets[b] = e->target[idx[b]];
  }
  return T;
}
