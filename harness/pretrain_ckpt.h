/* The files of `pretrain` (harness/pretrain.h): its resumable checkpoint and the final
 * Hugging Face-style folder.
 *
 * checkpoint.safetensors: every tensor of the table by its name, the AdamW moments of each
 * trainable one ("optim.m/NAME", "optim.v/NAME"), the loss windows ("pretrain.loss_window",
 * with --nsp "pretrain.nsp_window", [PB_TRAIN_WINDOW]) and metadata (format
 * PB_PRETRAIN_CKPT_FORMAT, step, options, corpus, times; written by harness/pretrain.c). */
#ifndef PB_PRETRAIN_CKPT_H
#define PB_PRETRAIN_CKPT_H

#include "backbone/bert.h"
#include "backbone/safetensors.h"

#define PB_PRETRAIN_CKPT_FORMAT "peftbench-pretrain-checkpoint"

/* Writes path: the table's tensors and AdamW state, window and (nwindow != NULL) the
 * next-sentence window, meta as the metadata. */
int pb_pretrain_ckpt_write(const char *path, const pb_params *p, const pb_kv *meta, int n_meta, const float *window,
                           const float *nwindow);
/* Fills every tensor, its AdamW state, window and (nwindow != NULL) nwindow from an open
 * checkpoint. */
int pb_pretrain_ckpt_read(const pb_st_file *f, pb_params *p, float *window, float *nwindow);

/* The final folder dir: config.json (BertForMaskedLM, or BertForPreTraining when the
 * metadata's opt.nsp is set; dropout 0.1 for fine-tuning whatever pretraining used),
 * model.safetensors (bert.* + cls.*, no classifier; F16 with fp16), vocab.txt (a copy of
 * vocab_path) and pretrain.json (from the checkpoint-style metadata kv). */
int pb_pretrain_export(pb_model *m, const char *dir, int fp16, const char *vocab_path, const pb_kv *kv, int n);

#endif
