/* The method registry: one line per method. Nothing else in the program names a method. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "util/status.h"
#include "methods/method.h"

extern const pb_method pb_method_full;
extern const pb_method pb_method_lora;
extern const pb_method pb_method_adapter;
extern const pb_method pb_method_layerconnect;
extern const pb_method pb_method_ia3;
extern const pb_method pb_method_bitfit;
extern const pb_method pb_method_prefix;
extern const pb_method pb_method_exits;

static const pb_method *const registry[] = {
    &pb_method_full,
    &pb_method_lora,
    &pb_method_adapter,
    &pb_method_layerconnect,
    &pb_method_ia3,
    &pb_method_bitfit,
    &pb_method_prefix,
    &pb_method_exits,
};

int pb_method_count(void) { return (int)(sizeof registry / sizeof registry[0]); }

const pb_method *pb_method_at(int i) { return i >= 0 && i < pb_method_count() ? registry[i] : NULL; }

const pb_method *pb_method_find(const char *name) {
  for (int i = 0; i < pb_method_count(); i++)
    if (strcmp(registry[i]->name, name) == 0) return registry[i];
  return NULL;
}

void pb_method_names(char *buf, size_t n) {
  size_t o = 0;
  buf[0] = 0;
  for (int i = 0; i < pb_method_count() && o < n; i++)
    o += (size_t)snprintf(buf + o, n - o, "%s%s", i ? ", " : "", registry[i]->name);
}

int pb_method_create(pb_method_inst *inst, const char *name, const char *const *options) {
  memset(inst, 0, sizeof *inst);
  if (name && strchr(name, '+')) return pb_method_compose_create(inst, name, options); /* methods/compose.c */
  const pb_method *m = pb_method_find(name);
  if (!m) {
    char names[256];
    pb_method_names(names, sizeof names);
    return pb_set_error(PB_ERR_ARG, "unknown method '%s' (valid: %s)", name, names);
  }
  if (m->version < 1 || m->version > PB_METHOD_VERSION || !m->init || !m->attach)
    return pb_set_error(PB_ERR_UNSUPPORTED, "method '%s': incompatible plug-in table (version %d)", name, m->version);
  inst->m = m;
  inst->ctx = calloc(1, m->ctx_size ? m->ctx_size : 1);
  if (!inst->ctx) return pb_set_error(PB_ERR_NOMEM, "method '%s': out of memory", name);
  int rc = m->init(inst->ctx);
  for (int i = 0; !rc && options && options[i]; i++) {
    const char *eq = strchr(options[i], '=');
    if (!eq || eq == options[i]) {
      char help[1024];
      pb_method_options_help(m, help, sizeof help);
      rc = pb_set_error(PB_ERR_ARG, "method '%s': option '%s' is not key=value (options: %s)", name, options[i], help);
      break;
    }
    char key[64];
    size_t kl = (size_t)(eq - options[i]);
    if (kl >= sizeof key) kl = sizeof key - 1;
    memcpy(key, options[i], kl);
    key[kl] = 0;
    if (m->set_option)
      rc = m->set_option(inst->ctx, key, eq + 1);
    else if (m->version >= 2 && m->options && m->n_options > 0)
      rc = pb_method_set_option(m, inst->ctx, key, eq + 1); /* the declared options */
    else
      rc = pb_set_error(PB_ERR_ARG, "method '%s' takes no options (got '%s')", name, options[i]);
  }
  if (rc) pb_method_destroy(inst);
  return rc;
}

void pb_method_destroy(pb_method_inst *inst) {
  if (inst->m && inst->m->destroy && inst->ctx) inst->m->destroy(inst->ctx);
  free(inst->ctx);
  memset(inst, 0, sizeof *inst);
}
