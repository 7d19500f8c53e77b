/* COST-EFF slenderization (Shen et al. 2022): attention heads and FFN neurons pruned by
 * first-order Taylor importance, word embeddings factorised by a truncated SVD. Library code
 * (no CLI); the shapes it produces are the backbone's own (pb_model_set_shape,
 * pb_model_factor_word), so a slender model runs, trains, counts and saves like any other.
 *
 * Importance (Molchanov et al. / Michel et al. first-order Taylor term, as COST-EFF):
 *   pb_slender_imp_attach(m, &imp)   before pb_model_alloc (adds a linear_in hook)
 *   pb_forward(..labels..) + pb_backward(m), over K batches (dropout off: training = 0)
 *   imp.head[pb_slender_head_off(m, l) + h], imp.ffn[pb_slender_ffn_off(m, l) + j]
 * The hook copies the input of attention.output.dense (the attention context [N,a]) and of
 * output.dense (the GELU output [N,F]) of every step into its own buffer (identity: the forward
 * is unchanged) and in backward, given dL/dx, adds per batch
 *   head h of set l:  | sum over tokens n, columns j of head h of x[n,j] * dL/dx[n,j] |
 *   FFN neuron j:     | sum over tokens n of x[n,j] * dL/dx[n,j] |
 * i.e. the absolute first-order change of the loss when the unit's output is scaled by
 * (1 + eps), per eps: |dL/d(gate)| at gate 1, the Taylor estimate of removing the unit. Batches add
 * their absolute values (imp = sum_b |S_b|). Indices are weight sets (steps sharing a set add up). */
#ifndef PB_SLENDER_H
#define PB_SLENDER_H

#include "backbone/bert.h"

typedef struct {
  pb_model *m;            /* the model it is attached to */
  double *head;           /* [sum over sets of heads] importance, layer offsets pb_slender_head_off */
  double *ffn;            /* [sum over sets of ffn] */
  double *acc;            /* [max(a, F)] per-batch column sums (scratch) */
  float *acts;            /* its activation block: per step the copies of x at attn_out and ffn_out */
  int B, T;               /* capacity the block was sized for */
  int batches;            /* backward passes accumulated */
} pb_slender_imp;

/* offsets of set l's units in the importance arrays (prefix sums over sets of heads / ffn) */
int pb_slender_head_off(const pb_model *m, int set);
int pb_slender_ffn_off(const pb_model *m, int set);
int pb_slender_n_heads(const pb_model *m); /* total over sets */
int pb_slender_n_ffn(const pb_model *m);

/* attaches the importance hook (after declare / set_shape, before pb_model_alloc); zeroes imp */
int pb_slender_imp_attach(pb_model *m, pb_slender_imp *imp);
void pb_slender_imp_reset(pb_slender_imp *imp);   /* importances back to 0 */
void pb_slender_imp_free(pb_slender_imp *imp);    /* its arrays (the model's hook entry stays) */

/* what the last prune / factorisation measured */
typedef struct {
  double word_rel_err;    /* ||E - E' P^T||_F / ||E||_F from the singular values (0 without rank) */
  double word_rel_err_direct; /* the same computed from the reconstruction (double accumulation) */
  size_t params_src, params_dst; /* sum of tensor sizes of src and dst */
} pb_slender_info;

/* Declares dst (no memory): src's config, every set at heads_keep heads of the source set's
 * head_dim and ffn_keep neurons, the word embeddings factorised at word_rank when > 0 (src must
 * not be factorised then). PB_ERR_ARG: heads_keep outside 1..heads of a set, ffn_keep outside
 * 1..F of a set, word_rank outside 0..d-1. src need not be allocated. */
int pb_slender_declare(const pb_model *src, int heads_keep, int ffn_keep, int word_rank, pb_model *dst);

/* pb_slender_declare, then the parameter families of dst (pb_params_alloc; activations come
 * with pb_model_alloc / pb_model_alloc_infer later) and the values: per set the heads_keep heads
 * and ffn_keep neurons of highest importance (ties: the lower index), in their original order:
 * query/key/value rows + biases of kept heads, attention.output.dense columns of kept heads,
 * intermediate rows + biases and output.dense columns of kept neurons; every other backbone and
 * head tensor copied; with word_rank > 0, E [V,d] ~ (U_r S_r) V_r^T: E' = U_r S_r [V,r],
 * P = V_r [d,r]. head_imp / ffn_imp are laid out as pb_slender_imp's (offsets of src). Method
 * tensors of src are not copied. info may be NULL. */
int pb_slender_prune_ex(const pb_model *src, const float *head_imp, const float *ffn_imp, int heads_keep,
                        int ffn_keep, int word_rank, pb_model *dst, pb_slender_info *info);
int pb_slender_prune(const pb_model *src, const float *head_imp, const float *ffn_imp, int heads_keep, int ffn_keep,
                     int word_rank, pb_model *dst);

/* Truncated SVD of E [V,d] (row-major) at rank r (1..min(V,d)): Eo [V,r] = U_r S_r, P [d,r] =
 * V_r, so that Eo P^T ~ E. s (may be NULL) gets the min(V,d) singular values, descending.
 * *rel_err (may be NULL) = sqrt(sum_{k>=r} s_k^2 / sum_k s_k^2). LAPACKE_sgesdd. */
int pb_slender_factor(const float *E, int V, int d, int r, float *Eo, float *P, float *s, double *rel_err);

/* indices of the k largest of v[0..n) (ties: lower index first), ascending in keep[0..k);
 * PB_ERR_ARG when k is outside 0..n, PB_ERR_NOMEM */
int pb_slender_top_k(const float *v, int n, int k, int *keep);

#endif
