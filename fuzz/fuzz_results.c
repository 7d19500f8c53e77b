/* libFuzzer target: the results JSONL reader pb_results_read (harness/results.c).
 * Input: the bytes of a results file. Every returned record must be a JSON object; the
 * number of records plus bad lines can never exceed the number of lines. */
#include <stdint.h>
#include <stdlib.h>

#include "util/status.h"
#include "fuzz/fuzz_common.h"
#include "harness/results.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  const char *path = pbfz_write(".jsonl", data, size);
  cJSON *arr = NULL;
  int bad = -1;
  if (pb_results_read(path, &arr, &bad) != PB_OK) abort(); /* any regular file is readable */
  size_t lines = 1;
  for (size_t i = 0; i < size; i++) lines += data[i] == '\n';
  int n = cJSON_GetArraySize(arr);
  if (bad < 0 || (size_t)n + (size_t)bad > lines) abort();
  const cJSON *o;
  cJSON_ArrayForEach(o, arr) if (!cJSON_IsObject(o)) abort();
  cJSON_Delete(arr);
  return 0;
}
