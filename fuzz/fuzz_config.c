/* libFuzzer target: the HF config.json reader pb_config_load_hf (backbone/checkpoint.c).
 * Input: the bytes of config.json. A success must give a config that pb_config_validate
 * accepts. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "backbone/bert.h"
#include "backbone/checkpoint.h"
#include "util/status.h"
#include "fuzz/fuzz_common.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  const char *path = pbfz_write(".json", data, size);
  pb_config cfg;
  memset(&cfg, 0, sizeof cfg);
  cfg.num_labels = 3;
  if (pb_config_load_hf(path, &cfg) == PB_OK) {
    if (pb_config_validate(&cfg, "fuzz") != PB_OK) abort();
    if (cfg.num_labels != 3) abort(); /* the caller's num_labels is kept */
  } else if (pb_last_error()[0] == '\0') {
    abort();
  }
  return 0;
}
