/* `run --teacher TASKFILE`: knowledge distillation from a fine-tuned teacher (COST-EFF's
 * prediction and representation distillation; any method can be the student).
 *
 * The teacher is the task file's model (harness/taskmodel.h), rebuilt for the run's batches
 * and frozen. Before every training forward of the student the teacher runs a forward of the
 * same batch (inference: no dropout, no labels; a teacher with exits never leaves early), and
 * the student's loss gets the terms of backbone/bert.h pb_kd:
 *   every head of the student (its own and every exit's): (1 - alpha) * task loss + alpha * KD,
 *     KD = tau^2 * soft cross-entropy of softmax(teacher logits / tau) (MSE for regression);
 *   beta * MSE(student step l's output, teacher step g(l)'s output) over all B*T*d values, with
 *     g(l) = floor((l + 1) * S_t / S_s) - 1 (TinyBERT's uniform map: equal depths map 1:1; a step
 *     with g(l) < 0 gets no term), when beta > 0.
 * The teacher must be of the run's task, with the student's vocabulary (same SHA-256) and
 * casing; with beta > 0 each mapped pair of steps must have the same width. */
#ifndef PB_DISTILL_H
#define PB_DISTILL_H

#include <cjson/cJSON.h>

#include "counters/opcount.h"
#include "harness/taskmodel.h"
#include "harness/trainer.h"

typedef struct {
  const char *path;        /* the teacher's task file */
  double alpha, tau, beta; /* --kd-alpha, --kd-temp, --kd-hidden */
} pb_distill_opts;

typedef struct {
  pb_distill_opts o;
  pb_task_model tm;        /* the teacher */
  pb_model *student;       /* borrowed */
  int S;                   /* student steps */
  int *map;                /* [S] teacher step of student step l (-1: none; all -1 when beta = 0) */
  const float **hidden;    /* [S] the teacher's output of step map[l] (NULL: none) */
  char sha256[65];         /* of the teacher file's bytes */
  pb_opcounts fwd;         /* one teacher forward at B x T (counting-only) */
  int B, T;
  long forwards;           /* teacher forwards run */
} pb_distill;

/* Builds the teacher for batches of B x T, checks it against the student (task, vocabulary,
 * casing, widths) and sets the student's pb_kd. Errors name the teacher file; PB_ERR_ARG for
 * options out of range (alpha in [0,1], tau > 0, beta >= 0, alpha or beta > 0). */
int pb_distill_setup(pb_distill *d, const pb_distill_opts *o, const pb_task *task, pb_model *student,
                     const pb_backbone_info *sinfo, int B, int T);
/* the teacher's forward of the batch the student trains on next */
int pb_distill_teacher_forward(pb_distill *d, const pb_batch *b);
/* the training configuration's "distill" object (part of the config id) */
cJSON *pb_distill_config_json(const pb_distill *d);
/* the record's "distill" block: the configuration, the teacher (file, method, task, config id,
 * backbone), the layer map and the teacher's forward cost per step (ops, B x T) */
cJSON *pb_distill_record_json(const pb_distill *d);
/* the student's pb_kd off, the teacher freed */
void pb_distill_free(pb_distill *d);

#endif
