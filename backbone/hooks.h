/* Generic hook points the backbone calls. The backbone knows no method: a plug-in fills a
 * pb_hook_ops table (designated initialisers; every member optional, NULL = no hook there) and
 * appends it to the model's hook chain with pb_model_add_hooks(). Methods compose: at every
 * point the backbone calls the hooks of the chain in the order they were added (backward: in
 * reverse order). Work a hook does is charged to the METHOD op owner.
 *
 * Indices: `l` is the encoder STEP (0..pb_model_steps(m)-1), which is the layer index unless a
 * layer plan shares weight sets between steps (pb_model_set_plan); with ODE steps
 * (pb_model_set_ode_steps) a forward runs S' of the S steps and calls the hooks with the model step
 * each executed step stands for, pb_model_run_step(m, j) (increasing, never twice). Shapes: N = B*T token rows;
 * d = hidden size. Every member returns an int status (PB_OK or a negative code after
 * pb_set_error).
 *
 * Two kinds of hook:
 *   additive (version 1): the backbone computes its own input gradients; the hook ACCUMULATES
 *     (+=) its contribution into the input gradients it is given and into its parameter
 *     gradients (linear, layer).
 *   non-additive (version 2): the hook replaces a value and gives back the gradient of its input
 *     explicitly (linear_in, linear_out, embed, sublayer). A hook that needs its input or output
 *     in backward keeps a copy in its own activation block (reserve). At most one hook of a
 *     chain may use each non-additive point (and kv_prefix); pb_model_add_hooks refuses a second.
 *     Additive hooks (linear, layer) and after_layer compose without limit.
 *
 * In counting-only mode (pb_opc_counting(), see pb_model_count) a hook charges what it would
 * compute and returns without computing or touching any buffer; pointers it is given may be
 * reserved address space. */
#ifndef PB_HOOKS_H
#define PB_HOOKS_H

#include <stddef.h>
#include <stdint.h>

#define PB_HOOKS_VERSION 2
#define PB_MAX_HOOKS 8 /* hook tables one model's chain can hold */

/* linear sites inside layer l */
typedef enum {
  PB_LIN_QUERY = 0, PB_LIN_KEY, PB_LIN_VALUE, PB_LIN_ATTN_OUT, PB_LIN_FFN_IN, PB_LIN_FFN_OUT, PB_LIN_COUNT
} pb_linear_site;
/* sublayer sites: the attention output or the FFN output, before residual + LayerNorm */
typedef enum { PB_SUB_ATTN = 0, PB_SUB_FFN = 1, PB_SUB_COUNT } pb_sublayer_site;

typedef struct pb_hook_ops {
  int version; /* PB_HOOKS_VERSION; 0 is read as 1 (only the version-1 members are used) */

  /* Activation memory: called with acts == NULL to ask for the float count needed for a
   * batch of B x T (*nfloats), then again with the block the core allocated for it. */
  int (*reserve)(void *ctx, int B, int T, float *acts, size_t *nfloats);
  /* Called at the start of every forward: training flag and the step's dropout seed. */
  int (*set_mode)(void *ctx, int training, uint64_t seed);

  /* ---- version 1 (additive, except sublayer) */
  /* linear: y[N,out] += f(x[N,in]) after y = x W^T + b of site `site` in step l (x is the input
   * the backbone multiplied, i.e. after any linear_in hook) */
  int (*linear_fwd)(void *ctx, int l, int site, const float *x, float *y, int N, int in, int out);
  int (*linear_bwd)(void *ctx, int l, int site, const float *x, const float *dy, float *dx, int N, int in,
                    int out);
  /* sublayer: y[N,d] = g(x[N,d]) (y fully written) on the attention or FFN output of step l;
   * backward: dx (zeroed by the core) += (dg/dx)^T dy. */
  int (*sublayer_fwd)(void *ctx, int l, int site, const float *x, float *y, int N, int d);
  int (*sublayer_bwd)(void *ctx, int l, int site, const float *x, const float *dy, float *dx, int N, int d);
  /* layer: h[B,T,d] += c_l(hprev[B,T,d]) where hprev is the input of step l and h its output */
  int (*layer_fwd)(void *ctx, int l, const float *hprev, float *h, int B, int T, int d);
  int (*layer_bwd)(void *ctx, int l, const float *hprev, const float *dh, float *dhprev, int B, int T, int d);

  /* ---- version 2 (non-additive, embedding, key/value prefix, after-step) */
  /* linear input: before y = x' W^T + b of (l, site) the hook may replace the input: it writes
   * x' = f(x) [N,in] into a buffer of its own and points *xo at it (leaving *xo untouched means
   * "not at this site"). Backward: dx[N,in] += (df/dx)^T dxo, where dxo is the gradient wrt x'.
   * Weight gradients of the site are taken against x'. */
  int (*linear_in_fwd)(void *ctx, int l, int site, const float *x, const float **xo, int N, int in);
  int (*linear_in_bwd)(void *ctx, int l, int site, const float *x, const float *dxo, float *dx, int N, int in);
  /* linear output: after the bias and the additive linear hooks, y[N,out] <- g(y) in place.
   * Backward (before the site's own backward): dy <- (dg/dy)^T dy in place. */
  int (*linear_out_fwd)(void *ctx, int l, int site, float *y, int N, int out);
  int (*linear_out_bwd)(void *ctx, int l, int site, float *dy, int N, int out);
  /* embedding output (after LayerNorm and dropout, the input of step 0): h[B,T,d] <- e(h) in
   * place (ids [B*T] for reference). Backward: dh <- (de/dh)^T dh in place (and its own
   * parameter gradients). */
  int (*embed_fwd)(void *ctx, const int *ids, float *h, int B, int T, int d);
  int (*embed_bwd)(void *ctx, const int *ids, float *dh, int B, int T, int d);
  /* key/value prefix of step l (prefix tuning): *P extra key rows *k [P,a] and value rows *v
   * [P,a] (a = the step's attention width, heads x head_dim; d unless heads were pruned), after
   * the K/V projections, that every query of every row attends to (never masked);
   * *P = 0: none at this step. Also called with k = v = NULL when the core sizes activations
   * (only *P is wanted then; P must not change after that). Backward: dk, dv
   * [P,a] are the gradients wrt the prefix rows, summed over the batch. */
  int (*kv_prefix)(void *ctx, int l, const float **k, const float **v, int *P);
  int (*kv_prefix_bwd)(void *ctx, int l, const float *dk, const float *dv, int P);
  /* after step l, on its output h [B,T,d] (B = rows still running; rows[i] is the batch row
   * of running row i). The hook may add a loss term (*loss +=; training: its gradient comes back
   * through after_layer_bwd) and, in inference only, finish rows: done[i] = 1 (zeroed by the
   * core) once it has written what it predicts for batch row rows[i] (see pb_model_row_logits).
   * Finished rows leave the batch: later steps, hooks and the head run over the others only, so
   * a row's operations are exactly the steps it ran. Not called after the last step. */
  int (*after_layer)(void *ctx, int l, const float *h, int B, int T, int d, const int *rows, unsigned char *done,
                     float *loss);
  /* backward: dh[B,T,d] (the gradient wrt step l's output) += the gradient of the loss terms
   * after_layer added */
  int (*after_layer_bwd)(void *ctx, int l, const float *h, float *dh, int B, int T, int d);
  /* width change before step l (width segments, pb_model_set_width): maps the previous step's
   * output (or the embeddings) x [N,din] to step l's input y [N,dout] (y fully written). The
   * core refuses to allocate a model whose width changes where no hook gives this. Backward:
   * dx[N,din] (zeroed by the core) += (dy/dx)^T dy. */
  int (*width_fwd)(void *ctx, int l, const float *x, float *y, int N, int din, int dout);
  int (*width_bwd)(void *ctx, int l, const float *x, const float *dy, float *dx, int N, int din, int dout);
} pb_hook_ops;

#endif
