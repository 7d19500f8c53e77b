/* Distillation from a teacher task file (distill.h). */
#include "harness/distill.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "util/digest.h"
#include "util/status.h"
#include "harness/exitstats.h"
#include "harness/results.h"

int pb_distill_setup(pb_distill *d, const pb_distill_opts *o, const pb_task *task, pb_model *student,
                     const pb_backbone_info *sinfo, int B, int T) {
  memset(d, 0, sizeof *d);
  d->o = *o;
  if (!(o->alpha >= 0 && o->alpha <= 1))
    return pb_set_error(PB_ERR_ARG, "--kd-alpha %g: must be in [0,1]", o->alpha);
  if (!(o->tau > 0) || !isfinite(o->tau)) return pb_set_error(PB_ERR_ARG, "--kd-temp %g: must be > 0", o->tau);
  if (!(o->beta >= 0) || !isfinite(o->beta)) return pb_set_error(PB_ERR_ARG, "--kd-hidden %g: must be >= 0", o->beta);
  if (!(o->alpha > 0) && !(o->beta > 0))
    return pb_set_error(PB_ERR_ARG, "--teacher with --kd-alpha 0 and --kd-hidden 0 distils nothing");
  int rc = pb_sha256_file(o->path, d->sha256);
  if (rc) return rc;
  pb_backbone_opts bb;
  memset(&bb, 0, sizeof bb);
  bb.hidden_dropout = bb.attn_dropout = -1;
  if ((rc = pb_task_model_build(o->path, &bb, task->name, B, T, &d->tm))) return rc;
  pb_model *tm = &d->tm.m;
  if (strcmp(d->tm.info.vocab_sha256, sinfo->vocab_sha256) != 0)
    return pb_set_error(PB_ERR_ARG, "--teacher %s: its vocabulary (SHA-256 %.12s...) is not the student's (%.12s...): "
                        "token ids would differ", o->path, d->tm.info.vocab_sha256, sinfo->vocab_sha256);
  if (d->tm.info.lower_case != sinfo->lower_case)
    return pb_set_error(PB_ERR_ARG, "--teacher %s: it was trained %s, the student is %s", o->path,
                        d->tm.info.lower_case ? "lower-cased" : "cased", sinfo->lower_case ? "lower-cased" : "cased");
  if (pb_exits_model_has(tm) && (rc = pb_exits_set_threshold(&d->tm.mi, 0))) return rc; /* no row leaves early */
  d->student = student;
  d->B = B;
  d->T = T;
  d->S = pb_model_steps(student);
  d->map = malloc(sizeof(int) * (size_t)d->S);
  d->hidden = calloc((size_t)d->S, sizeof *d->hidden);
  if (!d->map || !d->hidden) return pb_set_error(PB_ERR_NOMEM, "--teacher: out of memory");
  const int St = pb_model_steps(tm);
  for (int l = 0; l < d->S; l++) {
    d->map[l] = o->beta > 0 ? (int)(((long)(l + 1) * St) / d->S) - 1 : -1;
    if (d->map[l] < 0) continue;
    const int ws = pb_model_step_width(student, l).hidden, wt = pb_model_step_width(tm, d->map[l]).hidden;
    if (ws != wt)
      return pb_set_error(PB_ERR_SHAPE, "--kd-hidden: student step %d has width %d but teacher step %d of %s has %d "
                          "(representation distillation needs equal widths; use --kd-hidden 0)", l + 1, ws,
                          d->map[l] + 1, o->path, wt);
    d->hidden[l] = tm->acts.layer[d->map[l]].out;
  }
  if ((rc = pb_model_count(tm, B, T, PB_COUNT_INFER, &d->fwd))) return rc;
  const pb_kd kd = {.alpha = (float)o->alpha, .tau = (float)o->tau, .beta = (float)o->beta,
                    .logits = tm->acts.logits, .hidden = d->hidden};
  return pb_model_set_kd(student, &kd);
}

int pb_distill_teacher_forward(pb_distill *d, const pb_batch *b) {
  if (b->B > d->B || b->T > d->T)
    return pb_set_error(PB_ERR_ARG, "teacher: batch %d x %d exceeds its %d x %d", b->B, b->T, d->B, d->T);
  d->forwards++;
  return pb_forward(&d->tm.m, b->ids, b->types, b->mask, b->B, b->T, NULL, NULL, 0, 0, NULL);
}

cJSON *pb_distill_config_json(const pb_distill *d) {
  cJSON *j = cJSON_CreateObject();
  cJSON_AddStringToObject(j, "teacher_sha256", d->sha256);
  cJSON_AddNumberToObject(j, "alpha", d->o.alpha);
  cJSON_AddNumberToObject(j, "temperature", d->o.tau);
  cJSON_AddNumberToObject(j, "beta", d->o.beta);
  return j;
}

cJSON *pb_distill_record_json(const pb_distill *d) {
  cJSON *j = pb_distill_config_json(d);
  const pb_task_model *t = &d->tm;
  cJSON *jt = cJSON_AddObjectToObject(j, "teacher");
  cJSON_AddStringToObject(jt, "file", d->o.path);
  const char *keys[] = {"method", "method_config", "task", "config_id", "seed"};
  for (size_t k = 0; k < sizeof keys / sizeof keys[0]; k++) {
    const char *v = pb_kv_get(t->meta, t->nmeta, keys[k]);
    if (v) cJSON_AddStringToObject(jt, keys[k], v);
    else cJSON_AddNullToObject(jt, keys[k]);
  }
  cJSON_AddStringToObject(jt, "backbone", t->info.source);
  cJSON_AddStringToObject(jt, "fingerprint", t->info.fingerprint);
  cJSON_AddNumberToObject(jt, "steps", pb_model_steps(&t->m));
  cJSON *jm = cJSON_AddArrayToObject(j, "layer_map"); /* 1-based teacher step of each student step (null: none) */
  for (int l = 0; l < d->S; l++) {
    if (d->map[l] < 0) cJSON_AddItemToArray(jm, cJSON_CreateNull());
    else cJSON_AddItemToArray(jm, cJSON_CreateNumber(d->map[l] + 1));
  }
  cJSON_AddNumberToObject(j, "teacher_forwards", (double)d->forwards);
  cJSON *jf = cJSON_AddObjectToObject(j, "teacher_forward_per_step");
  cJSON_AddNumberToObject(jf, "batch", d->B);
  cJSON_AddNumberToObject(jf, "seq_len", d->T);
  cJSON_AddItemToObject(jf, "ops", pb_ops_json(&d->fwd, 1));
  return j;
}

void pb_distill_free(pb_distill *d) {
  if (d->student) pb_model_set_kd(d->student, NULL);
  pb_task_model_free(&d->tm);
  free(d->map);
  free(d->hidden);
  memset(d, 0, sizeof *d);
}
