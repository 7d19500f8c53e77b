/* The model of a task file (what `run` saved: the method's tensors and the metadata naming its
 * backbone, method configuration, task, seed, max_len, tokenizer), rebuilt and loaded: what
 * `eval TASKFILE` evaluates and what `run --teacher TASKFILE` distils from. */
#ifndef PB_TASKMODEL_H
#define PB_TASKMODEL_H

#include "backbone/bert.h"
#include "backbone/checkpoint.h"
#include "backbone/tokenizer.h"
#include "harness/glue.h"
#include "harness/setup.h"
#include "methods/method.h"

typedef struct {
  pb_kv *meta;              /* the file's metadata */
  int nmeta;
  pb_method_inst mi;        /* the method, as configured in the file */
  pb_model m;               /* backbone + method, loaded */
  pb_tokenizer *tk;         /* the tokenizer of training (its casing and vocabulary) */
  pb_backbone_info info;
  const pb_task *task;      /* the task it was trained on */
  int max_len;              /* the file's max_len */
  char cfgbuf[2048];        /* method options (mi's option strings point here) */
  char shape[64];           /* a random-initialised backbone's --shape (bb->shape points here) */
} pb_task_model;

/* Reads path's metadata and rebuilds its model for batches of B x T (T 0: the file's max_len)
 * into tm (zeroed by the caller): the method from method/method_config, the backbone from
 * bb->model_dir when given, else the one recorded (a random-initialised one from its seed and
 * shape), the fingerprint checked, the task file loaded, the vocabulary of training (same
 * SHA-256) and its casing. bb is updated (model_dir, shape, num_labels, lower_case). want_task
 * (may be NULL) must be the file's task. Errors name the file: PB_ERR_FORMAT (metadata),
 * PB_ERR_ARG (another task), PB_ERR_SHAPE (another backbone). pb_task_model_free afterwards,
 * also after an error. */
int pb_task_model_build(const char *path, pb_backbone_opts *bb, const char *want_task, int B, int T,
                        pb_task_model *tm);
/* The backbone a task file was trained on, from its metadata, into bb unless bb->model_dir is
 * given: the recorded folder, or (a random-initialised backbone) its shape written into
 * shape[64] and bb->shape pointing there; nothing for the embedded default. PB_ERR_FORMAT naming
 * path when the metadata lacks what it needs. */
int pb_task_meta_backbone(const char *path, const pb_kv *meta, int n_meta, pb_backbone_opts *bb, char shape[64]);
void pb_task_model_free(pb_task_model *tm);

#endif
