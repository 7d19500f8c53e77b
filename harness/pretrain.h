/* Masked-language-model pretraining of the backbone (`peftbench pretrain`).
 *
 * Corpus: the unlabeled sentences (a, and b for pair tasks) of the GLUE TRAINING splits found
 * in the data folder (never dev/test text), in GLUE task order, each task's rows in file
 * order; tasks without a train file are skipped (and said so). Each sentence is WordPiece-
 * tokenised (bert-base-uncased vocab) and truncated to max_len - 2 tokens. Packing:
 * consecutive sentences are concatenated as [CLS] s1 [SEP] s2 [SEP] ... [SEP] while they fit
 * in max_len (a pair's a and b therefore usually share a sequence), token types all 0, the
 * rest padded. --extra-text adds English text from installed Debian packages after the GLUE
 * text (harness/corpus.h: WordNet glosses, fortune cookies), packed the same way. A fixed 1% of
 * the GLUE sequences (at most 512, at least 1 when there are >= 20; chosen by a seeded shuffle
 * of the GLUE sequences only, so the same set with or without extra text) is held out as a
 * validation set for the MLM loss (still GLUE train text); the rest, and all extra text, is
 * the training set.
 *
 * --nsp adds next-sentence prediction (BertForPreTraining's cls.seq_relationship over the
 * pooled [CLS]; the pooler trains): each training row is cut at its inner [SEP] closest to
 * the middle (a one-sentence row in the middle of its tokens) into [CLS] A [SEP] B [SEP],
 * token types 0 then 1; with probability 1/2 (seeded per step) B is replaced by the B part of
 * another training sequence (label 1, else 0); the loss is MLM + NSP. The validation MLM loss
 * is always over the plain packed rows (comparable with and without --nsp); the NSP loss and
 * accuracy over fixed pair rows. --wwm masks whole words (backbone/mlm.h pb_mlm_mask_wwm).
 * --init-from DIR starts from an HF folder's weights instead of random ones (fresh AdamW).
 * --dropout sets the pretraining dropout (the exported config.json says 0.1 for fine-tuning).
 *
 * Training: full training of every backbone tensor (the pooler only with --nsp) + the MLM head
 * (backbone/mlm.h), dropout 0.1 (--dropout), AdamW (betas 0.9/0.999, eps 1e-6, weight decay 0.01, no decay on biases/LayerNorm),
 * linear warmup then linear decay to 0 at --steps, gradient clipping at global norm 1.0.
 * Step s (1-based) takes the sequences (s-1)*B .. s*B-1 of an endless stream made of
 * per-epoch seeded shuffles of the training set; its masking and dropout seeds are hashes of
 * (seed, s). Everything a step does is therefore a function of (options, s, weights,
 * optimizer state), which is what makes --resume exact.
 *
 * Files in --out DIR:
 *   checkpoint.safetensors  all tensors + AdamW m/v ("optim.m/NAME", "optim.v/NAME") + the
 *                           loss window, metadata: step, options, corpus sizes, elapsed time
 *   log.tsv                 step, loss, lr, grad norm, tokens/s (one line per step)
 *   config.json, model.safetensors, vocab.txt, pretrain.json   the final HF-style folder
 *                           (BertForMaskedLM tensors: bert.* + cls.predictions.*; with --nsp
 *                           BertForPreTraining: + cls.seq_relationship.*; no classifier),
 *                           written at the end, at --time-limit, or by --export.
 * log.tsv has a nsp_loss column (before tokens_per_s) with --nsp. */
#ifndef PB_PRETRAIN_H
#define PB_PRETRAIN_H

#include <stdint.h>

#include "harness/trainer.h"

#define PB_PRETRAIN_PATH_MAX 1024

typedef struct {
  char out_dir[PB_PRETRAIN_PATH_MAX];   /* --out (required) */
  char data_dir[PB_PRETRAIN_PATH_MAX];  /* --data-dir ("" = default resolution, harness/glue.h) */
  char vocab[PB_PRETRAIN_PATH_MAX];     /* --vocab ("" = default bert-base-uncased vocab) */
  char export_dir[PB_PRETRAIN_PATH_MAX];/* --export DIR: only write the final folder from the checkpoint */
  char eval_dev[PB_PRETRAIN_PATH_MAX];  /* --eval-dev DIR: no training; the MLM loss of the HF folder DIR
                                         * on the GLUE dev text (never pre-training text) */
  char init_from[PB_PRETRAIN_PATH_MAX]; /* --init-from DIR: start from DIR/model.safetensors (an HF BERT
                                           folder of the same shape) instead of random weights; every
                                           tensor of the table found there is loaded (F16 is fine), the
                                           rest (e.g. a new head) keeps its random init; fresh AdamW */
  int layers, hidden, heads, ffn;       /* model shape (4, 256, 4, 1024) */
  int groups;                           /* --groups G: the layers share G weight sets (0: unshared; share.h) */
  char precision[8];                    /* --precision fp32|bf16 (backbone/bf16.h; fp32) */
  char share_init[16];                  /* --share-init mean|first: a shared model from an unshared --init-from
                                           folder: each set = the mean (or first) of its group's layers */
  int random_steps;                     /* --random-steps: every step runs S' ~ U{1..S} ODE steps (step size
                                           S/S'), the step-robust pretraining of a shared backbone */
  char val_steps[64];                   /* --val-steps LIST: at the end also the validation MLM loss at each
                                           S' of the comma list (ODE steps; pretrain.json val_mlm_loss_at_steps) */
  int max_pos;                          /* max_position_embeddings (512) */
  int max_len;                          /* packed sequence length T (128) */
  char extra_text[PB_PRETRAIN_PATH_MAX];/* --extra-text LIST: more text after GLUE (harness/corpus.h; "" none) */
  int nsp;                              /* --nsp: + next-sentence prediction (trains the pooler) */
  int wwm;                              /* --wwm: whole-word masking */
  int batch;                            /* sequences per step B (32) */
  int steps;                            /* total optimizer steps (LR schedule length) */
  int warmup;                           /* warmup steps (default: 6% of steps) */
  float lr, weight_decay, clip, mask_prob;
  float dropout;                        /* --dropout: hidden + attention dropout while pretraining (0.1);
                                           the exported config.json always says 0.1 (for fine-tuning) */
  uint64_t seed;
  int save_every;                       /* checkpoint every N steps (0: only at the end/stop) */
  double time_limit_min;                /* stop cleanly after this many minutes (0: none) */
  int threads;                          /* kernel threads */
  int resume;                           /* continue from out_dir/checkpoint.safetensors */
  int fp16;                             /* final model.safetensors in F16 */
  int stop_after;                       /* testing aid: behave as if interrupted after N steps of this run */
  int quiet;                            /* no progress output */
  char command[4096];                   /* the command line, recorded in pretrain.json */
} pb_pretrain_opts;

/* Defaults above (steps 1000, lr 5e-4, seed 42, mask 0.15, clip 1, wd 0.01, threads 1). */
void pb_pretrain_defaults(pb_pretrain_opts *o);

/* The trainer's SIGINT/SIGTERM flag (harness/trainer.h; pb_cmd_pretrain installs the handlers)
 * under its old name: set, the loop finishes the current step (at least one per call), saves a
 * checkpoint and returns PB_PRETRAIN_INTERRUPTED. */
#define pb_pretrain_stop_flag pb_train_stop_flag

#define PB_PRETRAIN_INTERRUPTED 1 /* positive: stopped early with a checkpoint saved */

/* Runs (or resumes) pretraining, or only exports (export_dir set). Returns PB_OK when done
 * (also when stopped by the time limit: checkpoint and final folder written),
 * PB_PRETRAIN_INTERRUPTED after a signal or stop_after (checkpoint written), or a negative
 * status with pb_last_error() set. */
int pb_pretrain(const pb_pretrain_opts *o);

/* `peftbench pretrain [options]`: parses options (getopt_long; --help prints usage),
 * installs SIGINT/SIGTERM handlers, runs; returns the process exit status (0 ok, 1 error,
 * 2 bad usage, 3 interrupted with a checkpoint). */
int pb_cmd_pretrain(int argc, char **argv);

#endif
