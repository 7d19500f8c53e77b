/* Layer kernels: free functions with explicit shapes, forward and backward.
 *
 * Conventions
 * - Row-major. A linear layer stores its weight as HF does, w[OC,IC]: out = inp @ w^T + b.
 * - Backward kernels ACCUMULATE (+=) into every gradient they are given; a NULL gradient
 *   pointer means "not needed" and its work is skipped (and not counted).
 * - out may not alias inp unless a kernel says so.
 * - Dropout is counter-based: keep(i) depends only on (seed, i), so backward regenerates the
 *   mask instead of storing it. p == 0 or seed-less inference (training == 0) is identity.
 * - Each fast kernel has a *_naive twin (plain loops, no BLAS, no threads) used by the tests.
 *
 * Operation counts charged to pb_opc (counters/opcount.h) by each call, with N rows:
 *   kernel                 MAC                      FLOP (elementwise)            TRANS
 *   matmul_fwd             N*IC*OC                  N*OC if b                      -
 *   matmul_bwd             N*IC*OC per non-NULL     N*OC if db                     -
 *                          of {dinp, dw}
 *   layernorm_fwd          -                        8*N*C                          N (rsqrt)
 *   layernorm_bwd          -                        10*N*C if dinp, +3*N*C if dw,  -
 *                                                   +N*C if db
 *   gelu_fwd               -                        4*N                            N (erf)
 *   gelu_bwd               -                        8*N                            2*N (erf, exp)
 *   tanh_fwd               -                        -                              N
 *   tanh_bwd               -                        3*N                            -
 *   relu_fwd / relu_bwd    -                        N / N                          -
 *   add                    -                        N                              -
 *   add_scaled / scale     -                        2*N / N                        -
 *   dropout_fwd / _bwd     -                        N if p > 0 (else 0)            -
 *   embed_fwd              -                        2*N*d                          -
 *   embed_bwd              -                        N*d per non-NULL table grad    -
 *   attention_fwd (S=B*A*T*(P+T) scores, P prefix keys, 0 for pb_attention_fwd; hd=d/A)
 *                          2*S*hd                   6*S (+S if dropout p > 0)      S (exp)
 *   attention_bwd          4*S*hd: S*hd each for    4*S (+S if dropout p > 0)      -
 *                          dP, dv, dq, dk (dP if    if dq or dk
 *                          dq or dk; NULL skips)
 *   (attention_prefix_fwd / _bwd: the same rows, with their P)
 *   softmax_ce_fwd         -                        4*B*C + B                      B*C + B (exp, log)
 *   softmax_ce_bwd         -                        2*B*C                          -
 *   mse_fwd / mse_bwd      -                        3*B / 2*B                      -
 *   kd_ce_fwd              -                        11*B*C + 2*B                   2*B*C + B (exp, log)
 *   kd_ce_bwd              -                        11*B*C                         2*B*C (exp)
 *   mse_pair_fwd / _bwd    -                        3*n + 1 / 3*n                  -
 * Each kernel charges these counts BEFORE its work; in counting-only mode (pb_opc_counting(),
 * counters/opcount.h) it then returns without computing or touching any buffer. The analytic
 * count is the real forward/backward run in that mode (pb_model_count in backbone/bert.h): no
 * second copy of these formulas exists; tests/test_ops.c checks each row of this table.
 */
#ifndef PB_OPS_H
#define PB_OPS_H

#include <stddef.h>
#include <stdint.h>

/* ---- linear ---- */
/* out[N,OC] = inp[N,IC] @ w[OC,IC]^T + b[OC] (b may be NULL) */
void pb_matmul_fwd(float *out, const float *inp, const float *w, const float *b, int N, int IC, int OC);
void pb_matmul_fwd_naive(float *out, const float *inp, const float *w, const float *b, int N, int IC, int OC);
/* dinp[N,IC] += dout @ w ; dw[OC,IC] += dout^T @ inp ; db[OC] += sum_n dout */
void pb_matmul_bwd(float *dinp, float *dw, float *db, const float *dout, const float *inp, const float *w,
                   int N, int IC, int OC);
void pb_matmul_bwd_naive(float *dinp, float *dw, float *db, const float *dout, const float *inp, const float *w,
                         int N, int IC, int OC);

/* ---- layernorm over the last dim C ---- */
/* out[N,C], mean[N], rstd[N] (saved for backward), inp[N,C], w[C], b[C] */
void pb_layernorm_fwd(float *out, float *mean, float *rstd, const float *inp, const float *w, const float *b,
                      int N, int C, float eps);
void pb_layernorm_bwd(float *dinp, float *dw, float *db, const float *dout, const float *inp, const float *w,
                      const float *mean, const float *rstd, int N, int C);

/* ---- activations (elementwise over n values) ---- */
void pb_gelu_fwd(float *out, const float *inp, size_t n); /* 0.5*x*(1+erf(x/sqrt(2))) */
void pb_gelu_bwd(float *dinp, const float *inp, const float *dout, size_t n);
void pb_tanh_fwd(float *out, const float *inp, size_t n);
void pb_tanh_bwd(float *dinp, const float *out, const float *dout, size_t n); /* uses the forward output */
void pb_relu_fwd(float *out, const float *inp, size_t n);
void pb_relu_bwd(float *dinp, const float *inp, const float *dout, size_t n);
/* out[n] = a + b (out may alias a or b) */
void pb_add(float *out, const float *a, const float *b, size_t n);
/* out[n] = a + s*x (out may alias a or x): the residual update of an ODE step of size s */
void pb_add_scaled(float *out, const float *a, const float *x, float s, size_t n);
void pb_add_scaled_naive(float *out, const float *a, const float *x, float s, size_t n);
/* out[n] = s*x (out may alias x) */
void pb_scale(float *out, const float *x, float s, size_t n);
void pb_scale_naive(float *out, const float *x, float s, size_t n);

/* ---- dropout (counter-based; out may alias inp) ---- */
/* keep element i iff pb_dropout_keep(seed, i, p); kept values are scaled by 1/(1-p). */
int pb_dropout_keep(uint64_t seed, uint64_t i, float p);
void pb_dropout_fwd(float *out, const float *inp, size_t n, float p, uint64_t seed);
void pb_dropout_bwd(float *dinp, const float *dout, size_t n, float p, uint64_t seed);

/* ---- embeddings ---- */
/* out[B*T,d] = wte[ids] + wpe[t] + wtt[types]; ids/types [B*T] */
void pb_embed_fwd(float *out, const int *ids, const int *types, const float *wte, const float *wpe,
                  const float *wtt, int B, int T, int d);
void pb_embed_bwd(float *dwte, float *dwpe, float *dwtt, const float *dout, const int *ids, const int *types,
                  int B, int T, int d);

/* ---- multi-head self-attention core (after the Q,K,V projections, before the output one) ----
 * q,k,v,ctx: [B,T,d] with head h in columns h*hd..(h+1)*hd-1; probs: [B,A,T,T] softmax output
 * BEFORE dropout (saved for backward); mask: [B,T], 1 = real token, 0 = padding (keys with 0
 * get -inf-like scores). Scores are scaled by 1/sqrt(hd). Dropout p on the probabilities with
 * `seed` (p = 0: none). */
void pb_attention_fwd(float *ctx, float *probs, const float *q, const float *k, const float *v, const int *mask,
                      int B, int T, int d, int A, float p, uint64_t seed);
void pb_attention_fwd_naive(float *ctx, float *probs, const float *q, const float *k, const float *v,
                            const int *mask, int B, int T, int d, int A, float p, uint64_t seed);
/* dq, dk, dv [B,T,d] accumulated; scratch: at least B*A*T*T floats (overwritten) */
void pb_attention_bwd(float *dq, float *dk, float *dv, float *scratch, const float *dctx, const float *q,
                      const float *k, const float *v, const float *probs, int B, int T, int d, int A, float p,
                      uint64_t seed);
void pb_attention_bwd_naive(float *dq, float *dk, float *dv, float *scratch, const float *dctx, const float *q,
                            const float *k, const float *v, const float *probs, int B, int T, int d, int A,
                            float p, uint64_t seed);
/* Attention with a key/value prefix (prefix tuning): every query also attends to P prefix keys.
 * kx, vx: [B,P+T,d], for each batch row its P prefix rows followed by its T token rows; probs:
 * [B,A,T,P+T] (before dropout); mask [B,T] applies to the T token keys only (prefix keys are
 * never masked); q, ctx [B,T,d]. Dropout element (b,h,i,j) has index ((b*A+h)*T+i)*(P+T)+j, so
 * with P = 0 these are pb_attention_fwd/bwd exactly (which are these calls with P = 0).
 * Backward: dq [B,T,d], dkx, dvx [B,P+T,d] accumulated; scratch: at least B*A*T*(P+T) floats. */
void pb_attention_prefix_fwd(float *ctx, float *probs, const float *q, const float *kx, const float *vx,
                             const int *mask, int B, int T, int P, int d, int A, float p, uint64_t seed);
void pb_attention_prefix_fwd_naive(float *ctx, float *probs, const float *q, const float *kx, const float *vx,
                                   const int *mask, int B, int T, int P, int d, int A, float p, uint64_t seed);
void pb_attention_prefix_bwd(float *dq, float *dkx, float *dvx, float *scratch, const float *dctx, const float *q,
                             const float *kx, const float *vx, const float *probs, int B, int T, int P, int d,
                             int A, float p, uint64_t seed);
void pb_attention_prefix_bwd_naive(float *dq, float *dkx, float *dvx, float *scratch, const float *dctx,
                                   const float *q, const float *kx, const float *vx, const float *probs, int B,
                                   int T, int P, int d, int A, float p, uint64_t seed);

/* ---- losses (mean over the batch) ---- */
/* logits[B,C], labels[B] in 0..C-1; probs[B,C] saved for backward; returns mean CE loss */
float pb_softmax_ce_fwd(float *probs, const float *logits, const int *labels, int B, int C);
/* dlogits[B,C] += (probs - onehot) / B */
void pb_softmax_ce_bwd(float *dlogits, const float *probs, const int *labels, int B, int C);
/* pred[B] (C = 1), target[B]; returns mean squared error */
float pb_mse_fwd(const float *pred, const float *target, int B);
void pb_mse_bwd(float *dpred, const float *pred, const float *target, int B);
/* Prediction distillation (Hinton et al.): student logits z[B,C], teacher logits t[B,C],
 * temperature tau > 0; p = softmax(z/tau), q = softmax(t/tau) per row. Returns
 * tau^2 * mean_b(-sum_c q_c log p_c) (the soft cross-entropy, not the KL: it differs by the
 * teacher's entropy, which has no gradient). Per row: two softmaxes of x/tau (C scale, C shift,
 * C exp, C sum, C normalise each), -sum q (u - log s) (3C + 1 FLOP, 1 log) and the tau^2 (1).
 * C above 64 or tau <= 0: NAN (nothing charged). */
float pb_kd_ce_fwd(const float *z, const float *t, int B, int C, float tau);
/* dz[B,C] += scale * tau * (p - q) / B (the gradient of scale * pb_kd_ce_fwd); p and q are
 * recomputed (2 softmaxes: 8C FLOP, 2C exp) and the update is 3C FLOP per row */
void pb_kd_ce_bwd(float *dz, const float *z, const float *t, int B, int C, float tau, float scale);
/* Representation distillation: mean over n of (a - b)^2 (3n FLOP: difference, square, sum; 1
 * for the mean); backward da[n] += scale * 2 (a - b) / n (3n FLOP: the constant is one) */
float pb_mse_pair_fwd(const float *a, const float *b, size_t n);
void pb_mse_pair_bwd(float *da, const float *a, const float *b, size_t n, float scale);

/* ---- threading ---- */
/* Number of threads kernels may use (OpenMP and OpenBLAS together never exceed it). */
void pb_set_threads(int n);
int pb_get_threads(void);
/* Reads the threading policy variables again (PB_GEMM_SPLIT_MAX, PB_ELEMWISE_PAR_MIN; normally
 * read once): lets bench_backbone --ab alternate two policies step by step in one process. */
void pb_ops_reload_policy(void);

#endif
