/* bf16 matrix products on the CPU's matrix units (oneDNN), and the process-wide precision.
 *
 * `--precision bf16` is the usual mixed-precision recipe, as torch.autocast("cpu", bfloat16):
 * the inputs of every linear-layer matrix product (activations and weights) are rounded to
 * bfloat16 (round to nearest even), the products accumulate in fp32 and are written in fp32.
 * Everything else stays fp32: master weights, gradients, AdamW state, LayerNorm, softmax, GELU,
 * dropout, losses and every reduction. The attention products (QK^T, PV and their backward)
 * run in bf16 too (batched over batch rows and heads, pb_bf16_bmm), with the softmax, its mask
 * and dropout in fp32. fp32 is the default and the reference.
 *
 * Kernels: oneDNN's matmul primitive (Debian libdnnl-dev), which on this CPU runs its AMX
 * brgemm ("brg:avx512_core_amx_bf16"); pb_bf16_kernel() names the implementation oneDNN chose.
 * Primitives are cached per shape. A weight (the B operand of a linear layer) is rounded once
 * and kept until it changes: pb_adamw_step() bumps the weight epoch, and a fingerprint of 16
 * sampled values catches other writers. Code that writes weights in place outside AdamW (merges,
 * loaders) calls pb_bf16_weights_changed().
 *
 * Op counts do not depend on the precision: the kernels in ops.c charge their counts before
 * they pick the fp32 or the bf16 path. */
#ifndef PB_BF16_H
#define PB_BF16_H

#include <stddef.h>

typedef enum { PB_PREC_FP32 = 0, PB_PREC_BF16 = 1 } pb_precision;

/* "fp32" / "bf16" -> *out; returns 0, or PB_ERR_ARG naming the value */
int pb_precision_parse(const char *s, pb_precision *out);
const char *pb_precision_name(pb_precision p);

/* Sets the precision of every later matrix product (linear layers, attention) in this process. bf16 needs a
 * CPU with avx512_bf16 or AMX-BF16 and a oneDNN matmul that uses them: otherwise it returns
 * PB_ERR_UNSUPPORTED with one line saying what is missing, and the precision stays fp32. */
int pb_set_precision(pb_precision p);
pb_precision pb_get_precision(void);

/* 1 when this CPU can run bf16 products natively (avx512_bf16 or amx_bf16), else 0; 0 also when
 * the environment sets PEFTBENCH_NO_BF16 (to anything but 0): a CPU without bf16, for tests */
int pb_bf16_cpu_supported(void);

/* oneDNN's implementation for bf16 products ("brg:avx512_core_amx_bf16"), or "" before
 * pb_set_precision(PB_PREC_BF16) succeeded; and the library version ("oneDNN 2.6.3") */
const char *pb_bf16_kernel(void);
const char *pb_bf16_library(void);

/* C[M,N] = alpha op(A) op(B) + beta C (+ bias[N] on every row when bias != NULL, then alpha must
 * be 1 and beta 0), row-major; ta/tb: 0 = as stored, 1 = transposed. A and B are fp32 and are rounded to
 * bf16. flags: PB_BF16_B_WEIGHT marks B as a weight, whose rounded copy is cached;
 * PB_BF16_A_AGAIN says A holds the same values as the previous call's A (same storage, shape and
 * leading dimension, unchanged since): its rounding is reused (a linear backward's dout, read by
 * both of its products). Returns 0, or a negative PB_ERR code (with its message) when oneDNN
 * refuses the shape or memory runs out. */
#define PB_BF16_B_WEIGHT 1
#define PB_BF16_A_AGAIN 2
int pb_bf16_gemm(int ta, int tb, int M, int N, int K, float alpha, const float *A, int lda, const float *B, int ldb,
                 float beta, float *C, int ldc, const float *bias, int flags);

/* Batched: for every (b0, b1) < (dims[0], dims[1]), C[b0,b1] (dims[2] x dims[3]) = alpha A[b0,b1]
 * (dims[2] x K) B[b0,b1] (K x dims[3]) + beta C[b0,b1]; each operand's element (i0, i1, i2, i3) at
 * offset i0*s[0] + i1*s[1] + i2*s[2] + i3*s[3] of its base pointer (as, bs, cs: any plain strides,
 * so heads of [B,T,d] activations and transposes need no copies). A and B are rounded to bf16
 * over the span they cover. dry != 0: only creates the primitive and sizes the buffers (no
 * operand is read, C is untouched), so a caller can make sure every product of a sequence will
 * run before it starts. Returns 0 or a negative PB_ERR code. */
int pb_bf16_bmm(const long dims[4], long K, float alpha, const float *A, const long as[4], const float *B,
                const long bs[4], float beta, float *C, const long cs[4], int dry);

/* bf16 products that failed and ran in fp32 instead (0 in a healthy run) */
long pb_bf16_fallbacks(void);

/* rounds n floats to bf16 (round to nearest even, NaN kept NaN, subnormals to signed zero as
 * the hardware conversion does), written back as floats:
 * the values the bf16 products see (tests use it to build their references) */
void pb_bf16_round(float *out, const float *in, size_t n);

/* the vector rounding (AVX512-BF16 when the CPU has it) against the scalar one over in[n]:
 * the number of values where they differ (tests), -1 when out of memory */
int pb_bf16_round_check(const float *in, size_t n);

/* weights were written in place: cached copies are stale */
void pb_bf16_weights_changed(void);
/* bytes held by cached bf16 weight copies and scratch buffers */
size_t pb_bf16_cache_bytes(void);
/* frees every cached copy, scratch buffer and primitive */
void pb_bf16_release(void);

#endif
