/* Latent-space compression (Falaki & Gras, MAKE 5(3), 2023, read for an encoder backbone): the
 * first k layers run at the backbone's width d, the encoder half of an autoencoder maps their
 * output to d' < d, and layers k..L-1 (and the pooler + head) run at d'.
 *
 * The map is a stack of n dense layers of widths w[0] = d > w[1] > ... > w[n] = d':
 *   z_{i+1} = act_i(z_i W_i^T + b_i),  W_i [w[i+1], w[i]], b_i [w[i+1]]
 *   form linear:    act_i = identity (n = 1: one linear map, LL and PCA)
 *   form nonlinear: act_i = ReLU for i < n-1, tanh on the last (the paper's code: Tanh last;
 *                   our layers have a bias and no BatchNorm, see README "Latent-space compression")
 * The decoder half of an autoencoder (backbone/autoenc.h) mirrors it: widths reversed, ReLU
 * between its layers (nonlinear form), identity on its last (hidden states are unbounded).
 *
 * In a model the map is the backbone's width hook (hooks.h width_fwd/width_bwd) before step k,
 * its tensors backbone tensors "bert.latent.encoder.I.weight" / ".bias" (saved and loaded with
 * the other backbone tensors by pb_model_save_hf / pb_model_load_hf), its work charged to the
 * BACKBONE op owner. It is frozen (AE, PCA) or trains with the task (AE-S, LL): `trainable`,
 * applied by pb_latent_apply_trainable after the methods attach (a frozen map stays frozen even
 * under full fine-tuning; a trainable one is trained and stored in the task file).
 *
 * Op counts per call over N rows (owner BACKBONE), layer i of in x out (the kernels' own, ops.h):
 *   forward   MAC N*in*out, FLOP N*out (bias); then ReLU N*out FLOP or tanh N*out TRANS
 *   backward  tanh 3*N*out FLOP or ReLU N*out FLOP; MAC N*in*out for the input gradient (every
 *             layer but the first; the first when dx is asked for, as the model always does)
 *             and N*in*out for dW, FLOP N*out for db (when the map trains)
 */
#ifndef PB_LATENT_H
#define PB_LATENT_H

#include <stddef.h>

#include "backbone/bert.h"

#define PB_LATENT_MAX_MAPS 6

enum { PB_LATENT_LINEAR = 0, PB_LATENT_NONLINEAR = 1 };
enum { PB_ACT_IDENTITY = 0, PB_ACT_RELU = 1, PB_ACT_TANH = 2 };

typedef struct {
  int cut;        /* k: layers 0..k-1 at width d, steps k..L-1 at d' (1 <= k <= L-1) */
  int n;          /* maps in the encoder half (1..PB_LATENT_MAX_MAPS) */
  int widths[PB_LATENT_MAX_MAPS + 1]; /* [n+1]: d, ..., d' (strictly decreasing) */
  int form;       /* PB_LATENT_LINEAR | PB_LATENT_NONLINEAR */
  int heads, ffn; /* of the layers above the cut (d' % heads == 0) */
  int trainable;  /* 1: the map trains with the task (AE-S, LL); 0: frozen (AE, PCA) */
  char variant[8]; /* "ae" | "aes" | "ll" | "pca": what made it (recorded in config.json) */
} pb_latent_spec;

/* activation of encoder layer i of n in a form */
static inline int pb_latent_act(int form, int i, int n) {
  return form == PB_LATENT_LINEAR ? PB_ACT_IDENTITY : i < n - 1 ? PB_ACT_RELU : PB_ACT_TANH;
}

/* Checks a spec against a model's config: one line naming the problem (PB_ERR_ARG): k outside
 * 1..L-1, d' >= d, d' not divisible by the heads, widths not starting at d or not strictly
 * decreasing, n outside 1..PB_LATENT_MAX_MAPS, ffn < 1, an unknown form. */
int pb_latent_check(const pb_latent_spec *s, const pb_config *cfg);

/* A dense stack: n layers, layer i w[i] -> w[i+1] with weight W[i] [w[i+1], w[i]], bias b[i]
 * and activation act[i]. Gradients dW/db may be NULL (frozen). */
typedef struct {
  int n;
  const int *w;            /* [n+1] */
  const int *act;          /* [n] PB_ACT_* */
  float *const *W, *const *b;   /* [n] */
  float *const *dW, *const *db; /* [n] (entries NULL: frozen) */
} pb_mlp;
/* z[i] [N, w[i+1]] = layer i's output (z[n-1] is the stack's output); charges as above */
void pb_mlp_fwd(const pb_mlp *s, const float *x, float *const *z, int N);
/* From dy [N, w[n]] back to dx [N, w[0]] (+=; NULL: not needed); parameter gradients +=.
 * scratch: 2 buffers of N * w[1] floats each (w[1] is the widest after the input). */
void pb_mlp_bwd(const pb_mlp *s, const float *x, float *const *z, const float *dy, float *dx,
                float *const *scratch, int N);

/* Makes m (declared, no shapes or hooks yet) a compressed model: pb_model_set_width(m, cut,
 * d', heads, ffn), declares the map's tensors (weights normal(0, init_range), biases zero) and
 * appends the width hook. The state lives in m->latent (freed by pb_model_free). */
int pb_model_set_latent(pb_model *m, const pb_latent_spec *s);
/* the spec of a compressed model, NULL for an uncompressed one */
const pb_latent_spec *pb_model_latent(const pb_model *m);
/* indices of the map's weight / bias i (-1 outside 0..n-1 or uncompressed) */
int pb_latent_weight(const pb_model *m, int i);
int pb_latent_bias(const pb_model *m, int i);
/* after the methods attached: the map's tensors trainable and stored per the spec */
void pb_latent_apply_trainable(pb_model *m);
/* parameters of the map (sum over layers of in*out + out) */
size_t pb_latent_map_params(const pb_latent_spec *s);

/* config.json key "peftbench_latent" (pb_model_save_hf writes it, pb_model_apply_hf_shape
 * reads it): {"cut", "widths": [...], "form": "linear"|"nonlinear", "heads", "ffn",
 * "trainable": bool, "variant"} */
struct cJSON;
int pb_latent_to_json(const pb_latent_spec *s, struct cJSON *obj);
/* PB_ERR_FORMAT naming `path` and the field when malformed */
int pb_latent_from_json(const struct cJSON *obj, const char *path, pb_latent_spec *s);

#endif
