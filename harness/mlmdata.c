/* Masked packed sequences for pre-training (mlmdata.h). */
#include "harness/mlmdata.h"

#include <stdlib.h>
#include <string.h>

#include "backbone/mlm.h"
#include "util/rng.h"
#include "util/status.h"

int pb_mlm_data_init(pb_mlm_data *d, const pb_corpus *cp, const pb_tokenizer *tk, int B, uint64_t seed,
                     float mask_prob, int wwm) {
  memset(d, 0, sizeof *d);
  d->cp = cp;
  d->seed = seed;
  d->B = B;
  d->mask_prob = mask_prob;
  d->wwm = wwm;
  d->perm_epoch = -1;
  d->V = pb_tok_vocab_size(tk);
  d->mask_id = pb_tok_id(tk, "[MASK]");
  d->special[0] = pb_tok_id(tk, "[PAD]");
  d->special[1] = pb_tok_id(tk, "[CLS]");
  d->special[2] = pb_tok_id(tk, "[SEP]");
  /* whole-word masking: which ids are "##" continuation pieces */
  if (wwm) {
    if (!(d->cont = calloc((size_t)d->V, 1))) return pb_set_error(PB_ERR_NOMEM, "pretrain: out of memory");
    for (int i = 0; i < d->V; i++) {
      const char *tkn = pb_tok_token(tk, i);
      d->cont[i] = tkn && tkn[0] == '#' && tkn[1] == '#' && tkn[2];
    }
  }
  /* train / validation split: a seeded shuffle of the GLUE sequences, the first n_val are
   * held out (the same set as without extra text); every extra-text sequence trains */
  int n = cp->n_glue_seq, n_extra = cp->n_seq - cp->n_glue_seq;
  d->n_val = n >= 20 ? (n / 100 > 512 ? 512 : (n / 100 > 0 ? n / 100 : 1)) : 0;
  d->n_train = n - d->n_val + n_extra;
  int *all = malloc((size_t)n * sizeof(int));
  d->train_idx = malloc((size_t)d->n_train * sizeof(int));
  d->val_idx = malloc(((size_t)d->n_val + 1) * sizeof(int));
  d->perm = malloc((size_t)d->n_train * sizeof(int));
  d->seq = malloc((size_t)B * sizeof(int));
  size_t bt = (size_t)B * cp->T;
  d->b_ids = malloc(bt * sizeof(int));
  d->b_mask = malloc(bt * sizeof(int));
  d->b_in = malloc(bt * sizeof(int));
  d->b_lab = malloc(bt * sizeof(int));
  d->b_types = calloc(bt, sizeof(int));
  d->b_nsp = calloc((size_t)B, sizeof(int));
  if (!all || !d->train_idx || !d->val_idx || !d->perm || !d->seq || !d->b_ids || !d->b_mask || !d->b_in ||
      !d->b_lab || !d->b_types || !d->b_nsp) {
    free(all);
    return pb_set_error(PB_ERR_NOMEM, "pretrain: out of memory");
  }
  for (int i = 0; i < n; i++) all[i] = i;
  pb_rng r;
  pb_rng_seed(&r, pb_hash64(seed ^ 0x73706C6974ULL));
  for (int i = n - 1; i > 0; i--) {
    int j = (int)pb_rng_below(&r, (uint64_t)i + 1), t = all[i];
    all[i] = all[j];
    all[j] = t;
  }
  memcpy(d->val_idx, all, (size_t)d->n_val * sizeof(int));
  memcpy(d->train_idx, all + d->n_val, (size_t)(n - d->n_val) * sizeof(int));
  for (int i = 0; i < n_extra; i++) d->train_idx[n - d->n_val + i] = n + i;
  free(all);
  return PB_OK;
}

int pb_mlm_data_hold_out_all(pb_mlm_data *d, const pb_corpus *cp) {
  int *v = malloc(((size_t)cp->n_seq + 1) * sizeof(int));
  if (!v) return pb_set_error(PB_ERR_NOMEM, "pretrain: out of memory");
  for (int i = 0; i < cp->n_seq; i++) v[i] = i;
  free(d->val_idx);
  d->val_idx = v;
  d->n_val = cp->n_seq;
  d->n_train = 0;
  return PB_OK;
}

void pb_mlm_data_free(pb_mlm_data *d) {
  free(d->cont);
  free(d->train_idx);
  free(d->val_idx);
  free(d->perm);
  free(d->seq);
  free(d->b_ids);
  free(d->b_mask);
  free(d->b_in);
  free(d->b_lab);
  free(d->b_types);
  free(d->b_nsp);
  memset(d, 0, sizeof *d);
}

/* the sequence of the global stream position g (0-based) */
static int stream_seq(pb_mlm_data *d, long g) {
  int epoch = (int)(g / d->n_train), i = (int)(g % d->n_train);
  if (epoch != d->perm_epoch) {
    for (int k = 0; k < d->n_train; k++) d->perm[k] = d->train_idx[k];
    pb_rng r;
    pb_rng_seed(&r, pb_hash64(d->seed ^ pb_hash64(0x65706F6368ULL + (uint64_t)epoch)));
    for (int k = d->n_train - 1; k > 0; k--) {
      int j = (int)pb_rng_below(&r, (uint64_t)k + 1), t = d->perm[k];
      d->perm[k] = d->perm[j];
      d->perm[j] = t;
    }
    d->perm_epoch = epoch;
  }
  return d->perm[i];
}

void pb_mlm_data_step(pb_mlm_data *d, int t) {
  for (int b = 0; b < d->B; b++) d->seq[b] = stream_seq(d, (long)(t - 1) * d->B + b);
}

/* split of a packed row [CLS] s1 [SEP] s2 [SEP] ... [SEP] (len real tokens) for next-sentence
 * prediction: segment A = ids[1..a_end), segment B = ids[b_beg..len-1) (without the final [SEP]).
 * With >= 2 sentences the split is the inner [SEP] closest to the middle (A ends before it,
 * B starts after it); a single sentence is cut in the middle of its tokens. */
static void nsp_split(const int *row, int len, int sep, int *a_end, int *b_beg) {
  int best = -1;
  for (int t = 1; t < len - 1; t++)
    if (row[t] == sep && (best < 0 || abs(2 * t - len) < abs(2 * best - len))) best = t;
  if (best > 0) {
    *a_end = best;
    *b_beg = best + 1;
  } else {
    int n = len - 2 > 0 ? len - 2 : 0;
    *a_end = 1 + (n + 1) / 2;
    *b_beg = *a_end;
  }
}

/* fills b_ids/b_mask (and b_types, b_nsp with nsp) with sequences seq[0..B); returns T of
 * the batch (longest row). With nsp, row b is [CLS] A [SEP] B' [SEP] (types 0 up to the
 * first [SEP], 1 after): B' = its own segment B (label 0) or, with probability 1/2 drawn
 * from nseed, segment B of another training sequence (label 1); truncated to T from B's end. */
static int fill_batch(pb_mlm_data *d, const int *seq, int B, int nsp, uint64_t nseed, long *tokens) {
  const pb_corpus *cp = d->cp;
  const int T = cp->T;
  int Tb = 2;
  long nt = 0;
  if (!nsp) {
    for (int b = 0; b < B; b++)
      if (cp->len[seq[b]] > Tb) Tb = cp->len[seq[b]];
    for (int b = 0; b < B; b++) {
      const int *src = cp->ids + (size_t)seq[b] * T;
      for (int t = 0; t < Tb; t++) {
        d->b_ids[b * Tb + t] = src[t];
        d->b_mask[b * Tb + t] = t < cp->len[seq[b]];
      }
      nt += cp->len[seq[b]];
    }
    *tokens = nt;
    return Tb;
  }
  const int sep = d->special[2], pad = d->special[0];
  pb_rng r;
  pb_rng_seed(&r, pb_hash64(nseed ^ 0x6E7370ULL));
  int *rows = d->b_in; /* scratch: [B*T] built rows at stride T, lengths in b_lab[0..B) */
  int *lens = d->b_lab;
  for (int b = 0; b < B; b++) {
    const int *src = cp->ids + (size_t)seq[b] * T;
    int len = cp->len[seq[b]], a_end, b_beg;
    nsp_split(src, len, sep, &a_end, &b_beg);
    const int *bsrc = src;
    int bb = b_beg, be = len - 1;
    int neg = pb_rng_uniform(&r) < 0.5f && d->n_train > 1;
    if (neg) {
      int j;
      do j = d->train_idx[pb_rng_below(&r, (uint64_t)d->n_train)];
      while (j == seq[b]);
      bsrc = cp->ids + (size_t)j * T;
      int ae2, bb2, l2 = cp->len[j];
      nsp_split(bsrc, l2, sep, &ae2, &bb2);
      bb = bb2;
      be = l2 - 1;
    }
    int *o = rows + (size_t)b * T, n = 0;
    for (int t = 0; t < a_end && n < T - 2; t++) o[n++] = src[t];
    o[n++] = sep;
    int first_b = n;
    for (int t = bb; t < be && n < T - 1; t++) o[n++] = bsrc[t];
    o[n++] = sep;
    lens[b] = n;
    d->b_nsp[b] = neg;
    /* types: a second buffer at the same stride, kept in b_mask for now */
    for (int t = 0; t < T; t++) d->b_mask[(size_t)b * T + t] = t >= first_b && t < n;
    if (n > Tb) Tb = n;
    nt += n;
  }
  /* compact to stride Tb (rows and types live at stride T in b_in / b_mask) */
  for (int b = 0; b < B; b++) {
    for (int t = 0; t < Tb; t++) {
      d->b_ids[b * Tb + t] = t < lens[b] ? rows[(size_t)b * T + t] : pad;
      d->b_types[b * Tb + t] = d->b_mask[(size_t)b * T + t];
    }
  }
  for (int b = 0; b < B; b++)
    for (int t = 0; t < Tb; t++) d->b_mask[b * Tb + t] = t < lens[b];
  *tokens = nt;
  return Tb;
}

int pb_mlm_data_batch(pb_mlm_data *d, const int *seq, int B, int nsp, uint64_t seed, pb_batch *b) {
  long tokens = 0;
  const int Tb = fill_batch(d, seq, B, nsp, seed, &tokens);
  int np = d->wwm ? pb_mlm_mask_wwm(d->b_ids, d->b_mask, B, Tb, d->V, d->mask_id, d->special, 3, d->cont,
                                    d->mask_prob, seed, d->b_in, d->b_lab)
                  : pb_mlm_mask(d->b_ids, d->b_mask, B, Tb, d->V, d->mask_id, d->special, 3, d->mask_prob, 0, seed,
                                d->b_in, d->b_lab);
  if (np < 0) return np;
  memset(b, 0, sizeof *b);
  b->B = B;
  b->T = Tb;
  b->ids = d->b_in;
  b->types = nsp ? d->b_types : NULL;
  b->mask = d->b_mask;
  b->labels = d->b_lab;
  b->pair_labels = nsp ? d->b_nsp : NULL;
  b->items = tokens;
  return np;
}
