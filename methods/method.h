/* The method plug-in interface, in the style of SQLite's VFS: a versioned `static const` table
 * of function pointers. Optional members may be NULL; every member returns an int status
 * (PB_OK or a negative code after pb_set_error). The core allocates ctx_size bytes (zeroed)
 * for the method's private state and passes it to every call.
 *
 * Adding a method = one file in methods/ defining `const pb_method pb_method_NAME` plus one
 * line in methods/registry.c. Methods see the backbone (backbone/ headers) and never the harness.
 * Version 2 tables use designated initialisers and declare their options, op-baseline
 * reference configurations and table row order as data (see pb_method_option below). */
#ifndef PB_METHOD_H
#define PB_METHOD_H

#include <stddef.h>

#include "backbone/bert.h"
#include "counters/opcount.h"

#define PB_METHOD_VERSION 2

/* Version 2: a method declares its options, its op-baseline reference configurations and its
 * row order as data; the core (methods/options.c) parses, validates, describes and prints help
 * from them. Nothing in harness/ names a method. */
typedef enum { PB_OPT_INT, PB_OPT_FLOAT, PB_OPT_ENUM, PB_OPT_LIST } pb_opt_type;

typedef struct pb_method_option {
  const char *name;          /* key of `key=value` */
  pb_opt_type type;          /* INT -> int, FLOAT -> float, ENUM -> int index into values,
                                LIST -> unsigned bit set over values ("all" = every value) */
  size_t offset;             /* offsetof(ctx, field) the value is stored into */
  const char *def;           /* the default as text, exactly as describe prints it */
  double min, max;           /* INT/FLOAT: inclusive range */
  int max_open;              /* FLOAT: 1 = max itself is excluded, [min, max) */
  const char *const *values; /* ENUM/LIST: allowed values, NULL-terminated */
  const char *alias;         /* optional second key accepted for the same option (NULL) */
  const char *help;          /* a few words for `peftbench methods` */
} pb_method_option;

/* one configuration of the op-count baseline (harness/opscmd.c): label + options */
typedef struct pb_method_refconfig {
  const char *label;               /* "lora r=8 alpha=16 q,v": the baseline's key */
  const char *const *options;      /* "k=v" strings, NULL-terminated (NULL: none) */
} pb_method_refconfig;

typedef struct pb_method {
  int version;              /* PB_METHOD_VERSION; grows when members are appended */
  const char *name;         /* "lora", "adapter", ... (CLI --method NAME) */
  const char *summary;      /* one line for `peftbench methods` */
  const char *options_help; /* version 1 only: "r=INT (8)  ..."; version 2 declares `options` (NULL) */
  size_t ctx_size;          /* bytes of private state the core allocates */

  /* defaults into ctx (required) */
  int (*init)(void *ctx);
  /* optional in version 2 (NULL: the core parses the declared `options`): one option
   * `key=value`; unknown keys -> PB_ERR_ARG with the list of valid keys */
  int (*set_option)(void *ctx, const char *key, const char *value);
  /* the resolved configuration as "key=value,key=value" (results, tables, task-file metadata) */
  int (*describe)(const void *ctx, char *buf, size_t n);
  /* Declare the method's tensors into m->params, set which tensors are trainable/stored, and
   * append its hooks to the chain (pb_model_add_hooks). Called after pb_model_declare, before alloc. */
  int (*attach)(void *ctx, pb_model *m);
  /* optional: fold the method into the backbone weights (zero added inference ops) and back */
  int (*merge)(void *ctx, pb_model *m);
  int (*unmerge)(void *ctx, pb_model *m);
  /* RESERVED, set NULL (version 1 had a hand-written analytic op count here; the core never
   * calls it). Op counts come from running the method's hooks in counting-only mode
   * (pb_model_count, counters/opcount.h): a hook charges what it computes, then, when
   * pb_opc_counting(), returns without computing or touching any buffer. merge/unmerge must in
   * that mode change only the method's state (e.g. hooks off), not the weights. */
  int (*ops)(const void *ctx, const pb_config *cfg, int B, int T, int training, int merged, pb_opcounts *out);
  /* optional: free anything the method allocated itself */
  int (*destroy)(void *ctx);
  /* optional (0 = the harness default 1e-3): the learning rate this method trains well with */
  double default_lr;
  /* ---- version 2 */
  const pb_method_option *options; /* n_options entries; parsed by the core when set_option is NULL */
  int n_options;
  const pb_method_refconfig *refconfigs; /* op-baseline reference configurations */
  int n_refconfigs;
  int order; /* row order of tables (1 first; 0 = after every ordered method, by name) */
  int reference; /* 1: the full fine-tuning reference the plots draw the other methods against */
} pb_method;

/* registry (methods/registry.c) */
int pb_method_count(void);
const pb_method *pb_method_at(int i);
const pb_method *pb_method_find(const char *name); /* NULL if unknown */
/* "full, lora, adapter, layerconnect" */
void pb_method_names(char *buf, size_t n);

/* A method instance: the ops table plus its allocated ctx. */
typedef struct {
  const pb_method *m;
  void *ctx;
} pb_method_inst;

/* finds `name`, allocates + inits ctx, applies "k=v" options (NULL-terminated list or NULL).
 * `name` may join registered methods with '+' ("lora+bitfit"): a composite instance
 * (methods/compose.c) whose table lives in its ctx; pb_method_destroy frees both. */
int pb_method_create(pb_method_inst *inst, const char *name, const char *const *options);
void pb_method_destroy(pb_method_inst *inst);
/* composition (methods/compose.c): pb_method_create of a spec with '+' lands here; options are
 * "key=value" (the one part declaring key) or "part.key=value"; describe prefixes every key */
int pb_method_compose_create(pb_method_inst *inst, const char *spec, const char *const *options);
/* one line for `peftbench methods`: how to compose, with an example from the registry */
void pb_method_compose_help(char *buf, size_t n);

/* descriptors (methods/options.c) */
const pb_method_option *pb_method_option_find(const pb_method *m, const char *key); /* name or alias */
/* parses `value` for option `o` into ctx; PB_ERR_ARG with one line naming the option and its range/values */
int pb_method_option_set(const pb_method *m, void *ctx, const pb_method_option *o, const char *value);
/* the generic set_option: unknown keys -> PB_ERR_ARG listing the valid keys */
int pb_method_set_option(const pb_method *m, void *ctx, const char *key, const char *value);
/* "k=v,k=v" of every declared option in declaration order (LIST values joined by '+') */
int pb_method_describe_options(const pb_method *m, const void *ctx, char *buf, size_t n);
/* "k=v,k=v" of the declared defaults (what describe gives right after init) */
int pb_method_describe_defaults(const pb_method *m, char *buf, size_t n);
/* one line: "r=INT 1..65536 (8)  alpha=FLOAT ..." (options_help when not declared, "none") */
void pb_method_options_help(const pb_method *m, char *buf, size_t n);
/* one option's line for `peftbench methods`: "r=INT in 1..65536, default 8: rank" */
void pb_method_option_line(const pb_method_option *o, char *buf, size_t n);
/* table row rank of a method name: its order, unknown/unordered names after every ordered one,
 * compositions ("a+b") after those */
int pb_method_rank(const char *name);
/* 1 when `name` is a registered method declaring itself the full fine-tuning reference */
int pb_method_is_reference(const char *name);

#endif
