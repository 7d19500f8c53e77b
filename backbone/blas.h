/* Which OpenBLAS kernels the process uses, and the fix for a CPU that OpenBLAS does not know.
 *
 * OpenBLAS built with DYNAMIC_ARCH (Debian's) picks its kernels from the CPU model at load
 * time. A model newer than the library (e.g. Intel family 6 model 207 under OpenBLAS 0.3.21)
 * is not recognised and falls back to the SSE3 "Prescott" kernels: sgemm measured 6x slower
 * than the AVX-512 kernels on the same VM. pb_blas_init() checks the chosen core against the
 * CPU's features and, when OpenBLAS fell back to a core without AVX2 although the CPU has
 * AVX2+FMA (or AVX-512 F/BW/VL/DQ), switches to the Haswell (or SkylakeX) kernels the same way
 * OPENBLAS_CORETYPE would have at load time. An OPENBLAS_CORETYPE set by the user is always
 * respected (set it to OpenBLAS's own choice, e.g. Prescott, to keep that).
 *
 * It runs once, before main (a constructor in backbone/blas.c), so every binary linking
 * pbcore gets it; calling it again is a no-op. Results record the outcome (pb_blas_describe). */
#ifndef PB_BLAS_H
#define PB_BLAS_H

typedef struct {
  char detected[32]; /* core OpenBLAS picked at load time ("" if not OpenBLAS dynamic-arch) */
  char core[32];     /* core in use now */
  int switched;      /* 1 if pb_blas_init replaced `detected` by `core` */
  const char *why;   /* one line: why it switched or not */
} pb_blas_info;

void pb_blas_init(void);
const pb_blas_info *pb_blas_get(void);

/* pure decision, exposed for tests: the core to switch to given OpenBLAS's pick and the CPU
 * features, or NULL to keep the pick */
const char *pb_blas_better_core(const char *detected, int avx2_fma, int avx512);

#endif
