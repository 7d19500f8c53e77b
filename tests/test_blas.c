/* backbone/blas.c: the OpenBLAS core decision, and that the process runs on AVX2+ kernels when
 * the CPU has them (unless OPENBLAS_CORETYPE was set by the user). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "backbone/blas.h"
#include "tests/check.h"

extern char *openblas_get_corename(void);

int main(void) {
  /* decision table */
  CHECK(pb_blas_better_core("Prescott", 1, 1) && !strcmp(pb_blas_better_core("Prescott", 1, 1), "SkylakeX"), "decision for Prescott");
  CHECK(pb_blas_better_core("Sandybridge", 1, 0) && !strcmp(pb_blas_better_core("Sandybridge", 1, 0), "Haswell"), "decision for Sandybridge");
  CHECK(pb_blas_better_core("Nehalem", 0, 0) == NULL, "decision for Nehalem");    /* CPU without AVX2: keep */
  CHECK(pb_blas_better_core("Haswell", 1, 1) == NULL, "decision for Haswell");    /* already AVX2: keep */
  CHECK(pb_blas_better_core("Zen", 1, 1) == NULL, "decision for Zen");
  CHECK(pb_blas_better_core("SkylakeX", 1, 1) == NULL, "decision for SkylakeX");
  CHECK(pb_blas_better_core("cooperlake", 1, 1) == NULL, "decision for cooperlake"); /* case-insensitive */
  CHECK(pb_blas_better_core("", 1, 1) == NULL, "decision for empty");
  CHECK(pb_blas_better_core(NULL, 1, 1) == NULL, "pb_blas_better_core(NULL, 1, 1) == NULL");

  /* this process: the load-time check ran, and the core in use is what it reports */
  const pb_blas_info *b = pb_blas_get();
  CHECK(b->why != NULL, "b->why != NULL");
  CHECK(!strcmp(b->core, openblas_get_corename()), "!strcmp(b->core, openblas_get_corename())");
  CHECK(b->switched == (strcmp(b->core, b->detected) != 0), "b->switched == (strcmp(b->core, b->detected) != 0)");
  CHECK(getenv("OPENBLAS_CORETYPE") == NULL || !b->switched, "getenv(\"OPENBLAS_CORETYPE\") == NULL || !b->switched"); /* restored after a switch */
  __builtin_cpu_init();
  const int avx2 = __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
  if (avx2 && !getenv("OPENBLAS_CORETYPE"))
    CHECK(pb_blas_better_core(b->core, avx2, 0) == NULL, "pb_blas_better_core(b->core, avx2, 0) == NULL"); /* never left on a pre-AVX2 core */
  const char *user = getenv("OPENBLAS_CORETYPE"); /* ctest runs this a second time with it set */
  if (user) CHECK(!b->switched && !strcasecmp(b->core, user), "user core %s kept, got %s", user, b->core);
  printf("blas: detected %s, using %s (%s)\n", b->detected, b->core, b->why);
  return failures ? 1 : 0;
}
