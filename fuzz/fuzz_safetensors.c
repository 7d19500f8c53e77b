/* libFuzzer target: the safetensors reader (backbone/safetensors.c) and the task-file
 * metadata reader on top of it (backbone/checkpoint.c).
 *
 * Input: the raw bytes of a .safetensors file. Checks that pb_st_open either fails with a
 * status or returns a header whose every tensor lies inside the mapped data (then converts
 * every tensor to float, which touches every byte the header claims), and that
 * pb_st_read_meta / pb_task_read_meta agree with pb_st_open on validity. */
#include <stdint.h>
#include <stdlib.h>

#include "backbone/checkpoint.h"
#include "backbone/safetensors.h"
#include "util/status.h"
#include "fuzz/fuzz_common.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  const char *path = pbfz_write(".safetensors", data, size);
  pb_st_file f;
  int rc = pb_st_open(&f, path);
  if (rc == PB_OK) {
    for (int i = 0; i < f.n; i++) {
      const pb_st_tensor *t = &f.t[i];
      if (t->end > f.data_size || t->begin > t->end) abort(); /* validation let a bad range through */
      if (t->numel > ((size_t)1 << 26)) continue;          /* cannot happen for a file this small */
      float *out = malloc((t->numel ? t->numel : 1) * sizeof *out);
      if (!out) continue;
      pb_st_read_f32(&f, i, out, t->numel);
      if (t->numel > 0) pb_st_read_f32(&f, i, out, t->numel - 1); /* wrong count: must be refused */
      free(out);
      if (pb_st_find(&f, t->name) < 0) abort();
    }
    char buf[64];
    if (f.n > 0) pb_st_shape_str(&f.t[0], buf, sizeof buf);
    pb_st_close(&f);
  } else if (pb_last_error()[0] == '\0') {
    abort(); /* a failure must say why */
  }
  pb_kv *meta = NULL;
  int nmeta = 0;
  int rc2 = pb_st_read_meta(path, &meta, &nmeta);
  if ((rc == PB_OK) != (rc2 == PB_OK)) abort(); /* both readers must agree on validity */
  pb_kv_free(meta, nmeta);
  meta = NULL;
  nmeta = 0;
  if (pb_task_read_meta(path, &meta, &nmeta) == PB_OK) pb_kv_free(meta, nmeta);
  return 0;
}
