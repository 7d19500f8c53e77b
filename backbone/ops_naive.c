/* Naive reference twins of the BLAS/threaded kernels in ops.c: plain loops, no BLAS, no
 * threads. Dot products accumulate in double, so the fast kernels are compared against a
 * more accurate result. They charge the same op counts as the fast kernels, and skip their work
 * in counting-only mode as the fast kernels do. */
#include <math.h>
#include <stdlib.h>

#include "backbone/ops.h"
#include "counters/opcount.h"

#define PB_ATTN_MASKED (-1e9f) /* as in ops.c */

/* defined in ops.c */
float pb_dropout_scale_(float p);
void pb_attn_count_fwd(int B, int T, int P, int d, int A, float p);
void pb_attn_count_bwd(const float *dq, const float *dk, const float *dv, int B, int T, int P, int d, int A,
                       float p);

void pb_matmul_fwd_naive(float *out, const float *inp, const float *w, const float *b, int N, int IC, int OC) {
  if (N <= 0 || OC <= 0) return;
  pb_opc_add(PB_OPK_MAC, (uint64_t)N * IC * OC);
  if (b) pb_opc_add(PB_OPK_FLOP, (uint64_t)N * OC);
  if (pb_opc_counting()) return;
  for (int n = 0; n < N; n++)
    for (int o = 0; o < OC; o++) {
      double s = 0.0;
      for (int i = 0; i < IC; i++) s += (double)inp[(size_t)n * IC + i] * w[(size_t)o * IC + i];
      out[(size_t)n * OC + o] = (float)s + (b ? b[o] : 0.0f);
    }
}

void pb_matmul_bwd_naive(float *dinp, float *dw, float *db, const float *dout, const float *inp, const float *w,
                         int N, int IC, int OC) {
  if (N <= 0 || OC <= 0) return;
  const uint64_t macs = (dinp ? 1u : 0u) * (uint64_t)N * IC * OC + (dw ? 1u : 0u) * (uint64_t)N * IC * OC;
  if (macs) pb_opc_add(PB_OPK_MAC, macs);
  if (db) pb_opc_add(PB_OPK_FLOP, (uint64_t)N * OC);
  if (pb_opc_counting()) return;
  if (dinp) {
    for (int n = 0; n < N; n++)
      for (int i = 0; i < IC; i++) {
        double s = 0.0;
        for (int o = 0; o < OC; o++) s += (double)dout[(size_t)n * OC + o] * w[(size_t)o * IC + i];
        dinp[(size_t)n * IC + i] += (float)s;
      }
  }
  if (dw) {
    for (int o = 0; o < OC; o++)
      for (int i = 0; i < IC; i++) {
        double s = 0.0;
        for (int n = 0; n < N; n++) s += (double)dout[(size_t)n * OC + o] * inp[(size_t)n * IC + i];
        dw[(size_t)o * IC + i] += (float)s;
      }
  }
  if (db) {
    for (int o = 0; o < OC; o++) {
      double s = 0.0;
      for (int n = 0; n < N; n++) s += dout[(size_t)n * OC + o];
      db[o] += (float)s;
    }
  }
}

void pb_attention_prefix_fwd_naive(float *ctx, float *probs, const float *q, const float *kx, const float *vx,
                                   const int *mask, int B, int T, int P, int d, int A, float p, uint64_t seed) {
  if (B <= 0 || T <= 0 || P < 0 || A <= 0 || d <= 0 || d % A != 0) return;
  pb_attn_count_fwd(B, T, P, d, A, p);
  if (pb_opc_counting()) return;
  const int hd = d / A, S = P + T;
  const float sc = 1.0f / sqrtf((float)hd);
  const float dsc = pb_dropout_scale_(p);
  for (int b = 0; b < B; b++)
    for (int h = 0; h < A; h++) {
      float *Pr = probs + ((size_t)b * A + h) * T * S;
      const uint64_t base = ((uint64_t)b * A + h) * T * S;
      for (int i = 0; i < T; i++) {
        const float *qi = q + ((size_t)b * T + i) * d + (size_t)h * hd;
        float *row = Pr + (size_t)i * S;
        float mx = -INFINITY;
        for (int j = 0; j < S; j++) {
          const float *kj = kx + ((size_t)b * S + j) * d + (size_t)h * hd;
          double s = 0.0;
          for (int x = 0; x < hd; x++) s += (double)qi[x] * kj[x];
          row[j] = (float)s * sc;
          if (j >= P && mask && mask[(size_t)b * T + (j - P)] == 0) row[j] = PB_ATTN_MASKED;
          if (row[j] > mx) mx = row[j];
        }
        double sum = 0.0;
        for (int j = 0; j < S; j++) {
          row[j] = expf(row[j] - mx);
          sum += row[j];
        }
        for (int j = 0; j < S; j++) row[j] = (float)(row[j] / sum);
        float *ci = ctx + ((size_t)b * T + i) * d + (size_t)h * hd;
        for (int x = 0; x < hd; x++) {
          double s = 0.0;
          for (int j = 0; j < S; j++) {
            float pij = row[j];
            if (p > 0.0f) pij = pb_dropout_keep(seed, base + (uint64_t)i * S + j, p) ? pij * dsc : 0.0f;
            s += (double)pij * vx[((size_t)b * S + j) * d + (size_t)h * hd + x];
          }
          ci[x] = (float)s;
        }
      }
    }
}

void pb_attention_fwd_naive(float *ctx, float *probs, const float *q, const float *k, const float *v,
                            const int *mask, int B, int T, int d, int A, float p, uint64_t seed) {
  pb_attention_prefix_fwd_naive(ctx, probs, q, k, v, mask, B, T, 0, d, A, p, seed);
}

void pb_attention_prefix_bwd_naive(float *dq, float *dkx, float *dvx, float *scratch, const float *dctx,
                                   const float *q, const float *kx, const float *vx, const float *probs, int B,
                                   int T, int P, int d, int A, float p, uint64_t seed) {
  if (B <= 0 || T <= 0 || P < 0 || A <= 0 || d <= 0 || d % A != 0) return;
  pb_attn_count_bwd(dq, dkx, dvx, B, T, P, d, A, p);
  if (pb_opc_counting()) return;
  const int hd = d / A, S = P + T;
  const float sc = 1.0f / sqrtf((float)hd);
  const float dsc = pb_dropout_scale_(p);
#define IDQ(bb, t, x) (((size_t)(bb) * T + (t)) * d + (size_t)h * hd + (x)) /* q, dq, dctx */
#define IDK(bb, j, x) (((size_t)(bb) * S + (j)) * d + (size_t)h * hd + (x)) /* kx, vx, dkx, dvx */
  for (int b = 0; b < B; b++)
    for (int h = 0; h < A; h++) {
      const float *Pr = probs + ((size_t)b * A + h) * T * S;
      float *G = scratch + ((size_t)b * A + h) * T * S; /* dP, then dS */
      const uint64_t base = ((uint64_t)b * A + h) * T * S;
      for (int i = 0; i < T; i++)
        for (int j = 0; j < S; j++) {
          const int keep = p > 0.0f ? pb_dropout_keep(seed, base + (uint64_t)i * S + j, p) : 1;
          const float mult = p > 0.0f ? (keep ? dsc : 0.0f) : 1.0f;
          double s = 0.0; /* dP_drop[i,j] = dctx_i . v_j */
          for (int x = 0; x < hd; x++) s += (double)dctx[IDQ(b, i, x)] * vx[IDK(b, j, x)];
          G[(size_t)i * S + j] = (float)s * mult;
          if (dvx) /* dv_j += P_drop[i,j] dctx_i */
            for (int x = 0; x < hd; x++) dvx[IDK(b, j, x)] += Pr[(size_t)i * S + j] * mult * dctx[IDQ(b, i, x)];
        }
      for (int i = 0; i < T; i++) {
        double s = 0.0;
        for (int j = 0; j < S; j++) s += (double)Pr[(size_t)i * S + j] * G[(size_t)i * S + j];
        for (int j = 0; j < S; j++)
          G[(size_t)i * S + j] = Pr[(size_t)i * S + j] * (G[(size_t)i * S + j] - (float)s);
      }
      for (int i = 0; i < T; i++)
        for (int j = 0; j < S; j++) {
          const float g = G[(size_t)i * S + j] * sc;
          for (int x = 0; x < hd; x++) {
            if (dq) dq[IDQ(b, i, x)] += g * kx[IDK(b, j, x)];
            if (dkx) dkx[IDK(b, j, x)] += g * q[IDQ(b, i, x)];
          }
        }
    }
#undef IDQ
#undef IDK
}

void pb_attention_bwd_naive(float *dq, float *dk, float *dv, float *scratch, const float *dctx, const float *q,
                            const float *k, const float *v, const float *probs, int B, int T, int d, int A,
                            float p, uint64_t seed) {
  pb_attention_prefix_bwd_naive(dq, dk, dv, scratch, dctx, q, k, v, probs, B, T, 0, d, A, p, seed);
}

void pb_add_scaled_naive(float *out, const float *a, const float *x, float s, size_t n) {
  pb_opc_add(PB_OPK_FLOP, 2 * (uint64_t)n);
  if (pb_opc_counting()) return;
  for (size_t i = 0; i < n; i++) out[i] = (float)((double)a[i] + (double)s * x[i]);
}

void pb_scale_naive(float *out, const float *x, float s, size_t n) {
  pb_opc_add(PB_OPK_FLOP, (uint64_t)n);
  if (pb_opc_counting()) return;
  for (size_t i = 0; i < n; i++) out[i] = (float)((double)s * x[i]);
}
