/* Generic hook points the backbone calls. The backbone knows no method: a plug-in fills a
 * pb_hook_ops table (every member optional, NULL = no hook there) and the core installs it
 * with pb_model_set_hooks(). Work a hook does is charged to the METHOD op owner.
 *
 * Shapes: N = B*T token rows; d = hidden size. Backward hooks ACCUMULATE (+=) into the input
 * gradients they are given and into their own parameter gradients. Every member returns an
 * int status (PB_OK or a negative code after pb_set_error). */
#ifndef PB_HOOKS_H
#define PB_HOOKS_H

#include <stddef.h>
#include <stdint.h>

/* linear sites inside layer l */
typedef enum {
  PB_LIN_QUERY = 0, PB_LIN_KEY, PB_LIN_VALUE, PB_LIN_ATTN_OUT, PB_LIN_FFN_IN, PB_LIN_FFN_OUT, PB_LIN_COUNT
} pb_linear_site;
/* sublayer sites: the attention output or the FFN output, before residual + LayerNorm */
typedef enum { PB_SUB_ATTN = 0, PB_SUB_FFN = 1, PB_SUB_COUNT } pb_sublayer_site;

typedef struct pb_hook_ops {
  /* Activation memory: called with acts == NULL to ask for the float count needed for a
   * batch of B x T (*nfloats), then again with the block the core allocated for it. */
  int (*reserve)(void *ctx, int B, int T, float *acts, size_t *nfloats);
  /* Called at the start of every forward: training flag and the step's dropout seed. */
  int (*set_mode)(void *ctx, int training, uint64_t seed);
  /* linear: y[N,out] += f(x[N,in]) after y = x W^T + b of site `site` in layer l */
  int (*linear_fwd)(void *ctx, int l, int site, const float *x, float *y, int N, int in, int out);
  int (*linear_bwd)(void *ctx, int l, int site, const float *x, const float *dy, float *dx, int N, int in,
                    int out);
  /* sublayer: y[N,d] = g(x[N,d]) (y fully written) on the attention or FFN output of layer l */
  int (*sublayer_fwd)(void *ctx, int l, int site, const float *x, float *y, int N, int d);
  int (*sublayer_bwd)(void *ctx, int l, int site, const float *x, const float *dy, float *dx, int N, int d);
  /* layer: h[B,T,d] += c_l(hprev[B,T,d]) where hprev is the input of layer l and h its output */
  int (*layer_fwd)(void *ctx, int l, const float *hprev, float *h, int B, int T, int d);
  int (*layer_bwd)(void *ctx, int l, const float *hprev, const float *dh, float *dhprev, int B, int T, int d);
} pb_hook_ops;

#endif
