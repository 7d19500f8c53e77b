/* OpenBLAS core check and switch (see backbone/blas.h).
 *
 * The switch uses OpenBLAS's own dynamic-arch entry points, exported by libopenblas.so:
 * gotoblas_dynamic_quit() forgets the kernel table and gotoblas_dynamic_init() chooses it again,
 * reading OPENBLAS_CORETYPE exactly as at load time. Both are weak references, so a BLAS
 * without them (a non-dynamic OpenBLAS, another BLAS) just keeps its kernels. It runs in a
 * constructor, i.e. after libopenblas's own initialisation and before main and any BLAS call or
 * thread of ours; OPENBLAS_CORETYPE is set only for the re-initialisation and then restored. */
#include "backbone/blas.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

extern char *openblas_get_corename(void) __attribute__((weak));
extern void gotoblas_dynamic_init(void) __attribute__((weak));
extern void gotoblas_dynamic_quit(void) __attribute__((weak));

static pb_blas_info g_info;
static int g_done = 0;

/* OpenBLAS cores (0.3.x names) whose sgemm kernels use AVX2 or better */
static int core_has_avx2(const char *name) {
  static const char *const fast[] = {"haswell", "zen", "skylakex", "cooperlake", "sapphirerapids", "excavator"};
  for (size_t i = 0; i < sizeof fast / sizeof *fast; i++)
    if (!strcasecmp(name, fast[i])) return 1;
  return 0;
}

const char *pb_blas_better_core(const char *detected, int avx2_fma, int avx512) {
  if (!detected || !*detected || core_has_avx2(detected)) return NULL;
  if (avx512) return "SkylakeX";
  if (avx2_fma) return "Haswell";
  return NULL;
}

static void copy_name(char *dst, const char *src) {
  snprintf(dst, sizeof g_info.core, "%s", src ? src : "");
}

void pb_blas_init(void) {
  if (g_done) return;
  g_done = 1;
  if (!openblas_get_corename) {
    g_info.why = "BLAS is not OpenBLAS: kernels not checked";
    return;
  }
  copy_name(g_info.detected, openblas_get_corename());
  copy_name(g_info.core, g_info.detected);
  const char *user = getenv("OPENBLAS_CORETYPE");
  if (user && *user) {
    g_info.why = "OPENBLAS_CORETYPE set by the user: kept";
    return;
  }
  __builtin_cpu_init();
  const int avx2_fma = __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
  const int avx512 = __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
                     __builtin_cpu_supports("avx512vl") && __builtin_cpu_supports("avx512dq");
  const char *want = pb_blas_better_core(g_info.detected, avx2_fma, avx512);
  if (!want) {
    g_info.why = core_has_avx2(g_info.detected) ? "OpenBLAS's choice uses AVX2 or better: kept"
                                                 : "CPU has no AVX2+FMA: OpenBLAS's choice kept";
    return;
  }
  if (!gotoblas_dynamic_init || !gotoblas_dynamic_quit) {
    g_info.why = "OpenBLAS fell back to a core without AVX2 and cannot switch (not a dynamic-arch build)";
    return;
  }
  setenv("OPENBLAS_CORETYPE", want, 1);
  gotoblas_dynamic_quit();
  gotoblas_dynamic_init();
  unsetenv("OPENBLAS_CORETYPE");
  copy_name(g_info.core, openblas_get_corename());
  g_info.switched = strcasecmp(g_info.core, g_info.detected) != 0;
  g_info.why = g_info.switched ? "OpenBLAS did not recognise the CPU and fell back to a core without AVX2: switched"
                               : "switch to a faster core did not take";
}

const pb_blas_info *pb_blas_get(void) {
  pb_blas_init();
  return &g_info;
}

__attribute__((constructor)) static void blas_init_at_load(void) { pb_blas_init(); }
