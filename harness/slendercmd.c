#include "harness/slendercmd.h"

#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "backbone/checkpoint.h"
#include "backbone/slender.h"
#include "harness/cli.h"
#include "harness/encode.h"
#include "harness/glue.h"
#include "harness/setup.h"
#include "harness/taskmodel.h"
#include "methods/method.h"
#include "util/fileio.h"
#include "util/rng.h"
#include "util/status.h"

static const char *USAGE =
    "usage: peftbench slenderize --task TASK --out DIR --heads N --ffn F --word-rank R [options]\n"
    "  COST-EFF slenderization: first-order Taylor importance of every attention head and FFN\n"
    "  neuron over K training batches (the model's current head, dropout off), the N heads and F\n"
    "  neurons of highest importance kept per layer, the word embeddings factorised by SVD at rank R\n"
    "  (0: not factorised); writes an HF-style folder (config.json, model.safetensors, vocab.txt)\n"
    "  --batches K (8)  --batch B (32)  --max-len N (128)  --seed N (0: batch order)\n"
    "  --model DIR  --shape L,H,A,F  --vocab FILE  --lower-case auto|yes|no  --data-dir DIR  as `run`\n"
    "  --from TASKFILE   slenderize a fine-tuned model instead (COST-EFF prunes the fine-tuned one): a task file\n"
    "                    of `run --method full` on TASK; its backbone and head are loaded, the importance is\n"
    "                    that of its fine-tuned head, and the written folder holds its fine-tuned values\n";

enum { O_TASK = 256, O_OUT, O_HEADS, O_FFN, O_RANK, O_BATCHES, O_BATCH, O_MAXLEN, O_SEED, O_MODEL, O_SHAPE, O_VOCAB,
       O_LOWER, O_DATA, O_FROM };

typedef struct {
  pb_slender_imp imp;
  int whole;       /* --from: every backbone tensor stored (and trainable), as `full`'s task file holds them */
} imp_ctx;

static int imp_init(void *ctx) { return PB_OK; }
static int imp_describe(const void *ctx, char *buf, size_t n) {
  snprintf(buf, n, "importance");
  return PB_OK;
}
static int imp_attach(void *ctx, pb_model *m) {
  if (((imp_ctx *)ctx)->whole) pb_params_train_owner(&m->params, PB_OWNER_BACKBONE);
  return pb_slender_imp_attach(m, &((imp_ctx *)ctx)->imp);
}
/* the importance hook as a method the model builder attaches (not in the registry) */
static const pb_method imp_method = {.version = PB_METHOD_VERSION, .name = "slender-importance",
                                     .summary = "Taylor importance (slenderize)", .ctx_size = sizeof(imp_ctx),
                                     .init = imp_init, .describe = imp_describe, .attach = imp_attach};

static int copy_file(const char *from, const char *to) {
  char *data;
  size_t n;
  int rc = pb_read_file(from, &data, &n);
  if (rc) return rc;
  rc = pb_write_file_atomic(to, data, n);
  free(data);
  return rc;
}

int pb_cmd_slenderize(int argc, char **argv) {
  static const struct option opts[] = {
      {"task", required_argument, 0, O_TASK},       {"out", required_argument, 0, O_OUT},
      {"heads", required_argument, 0, O_HEADS},     {"ffn", required_argument, 0, O_FFN},
      {"word-rank", required_argument, 0, O_RANK},  {"batches", required_argument, 0, O_BATCHES},
      {"batch", required_argument, 0, O_BATCH},     {"max-len", required_argument, 0, O_MAXLEN},
      {"seed", required_argument, 0, O_SEED},       {"model", required_argument, 0, O_MODEL},
      {"shape", required_argument, 0, O_SHAPE},     {"vocab", required_argument, 0, O_VOCAB},
      {"lower-case", required_argument, 0, O_LOWER}, {"data-dir", required_argument, 0, O_DATA},
      {"from", required_argument, 0, O_FROM},       {"help", no_argument, 0, 'h'},
      {0, 0, 0, 0}};
  pb_backbone_opts bb;
  memset(&bb, 0, sizeof bb);
  bb.hidden_dropout = bb.attn_dropout = -1;
  const char *task_name = NULL, *out = NULL, *data = NULL, *from = NULL;
  long heads = -1, ffn = -1, rank = -1, K = 8, batch = 32, max_len = 128, seed = 0;
  int c;
  opterr = 0;
  optind = 1;
  while ((c = getopt_long(argc, argv, ":h", opts, NULL)) != -1) {
    switch (c) {
      case O_TASK: task_name = optarg; break;
      case O_OUT: out = optarg; break;
      case O_HEADS: if (!pb_cli_int("--heads", optarg, 1, 4096, &heads)) return 2; break;
      case O_FFN: if (!pb_cli_int("--ffn", optarg, 1, 1 << 24, &ffn)) return 2; break;
      case O_RANK: if (!pb_cli_int("--word-rank", optarg, 0, 1 << 24, &rank)) return 2; break;
      case O_BATCHES: if (!pb_cli_int("--batches", optarg, 1, 1000000, &K)) return 2; break;
      case O_BATCH: if (!pb_cli_int("--batch", optarg, 1, 4096, &batch)) return 2; break;
      case O_MAXLEN: if (!pb_cli_int("--max-len", optarg, 3, 4096, &max_len)) return 2; break;
      case O_SEED: if (!pb_cli_int("--seed", optarg, 0, 2147483647L, &seed)) return 2; break;
      case O_MODEL: bb.model_dir = optarg; break;
      case O_SHAPE: bb.shape = optarg; break;
      case O_VOCAB: bb.vocab = optarg; break;
      case O_LOWER: if (!pb_cli_lower_case(optarg, &bb.lower_case)) return 2; break;
      case O_DATA: data = optarg; break;
      case O_FROM: from = optarg; break;
      case 'h': fputs(USAGE, stdout); return 0;
      default: return pb_cli_bad_option("slenderize", argc, argv, opts);
    }
  }
  if (optind < argc || !task_name || !out || heads < 0 || ffn < 0 || rank < 0) {
    fprintf(stderr, "peftbench slenderize: --task, --out, --heads, --ffn and --word-rank are required (see --help)\n");
    return 2;
  }
  const pb_task *task = pb_task_find(task_name);
  if (!task) {
    char names[256];
    pb_task_names(names, sizeof names);
    fprintf(stderr, "peftbench slenderize: unknown task '%s' (valid: %s)\n", task_name, names);
    return 2;
  }
  bb.num_labels = task->num_labels;
  char data_dir[1024];
  pb_dataset ds;
  memset(&ds, 0, sizeof ds);
  pb_encoded enc;
  memset(&enc, 0, sizeof enc);
  pb_tokenizer *tk = NULL;
  pb_model m, dst;
  memset(&m, 0, sizeof m);
  memset(&dst, 0, sizeof dst);
  imp_ctx ictx;
  memset(&ictx, 0, sizeof ictx);
  const pb_method_inst mi = {&imp_method, &ictx};
  pb_backbone_info info;
  int *idx = NULL, *ids = NULL, *types = NULL, *mask = NULL, *labels = NULL;
  float *targets = NULL, *himp = NULL, *fimp = NULL;
  int rc, built = 0;
  pb_kv *meta = NULL;
  int nmeta = 0;
  char shape[64];
  if (from) { /* the fine-tuned model: its backbone as recorded, then its values */
    if ((rc = pb_task_read_meta(from, &meta, &nmeta))) goto done;
    const char *fm = pb_kv_get(meta, nmeta, "method"), *ft = pb_kv_get(meta, nmeta, "task");
    if (!fm || strcmp(fm, "full") != 0 || !ft || strcmp(ft, task->name) != 0) {
      rc = pb_set_error(PB_ERR_ARG, "--from %s: method %s on %s; it must be `full` on %s (a task file holding the "
                        "whole fine-tuned backbone)", from, fm ? fm : "?", ft ? ft : "?", task->name);
      goto done;
    }
    if (bb.shape && !bb.model_dir) bb.shape = NULL; /* the file says which backbone */
    if ((rc = pb_task_meta_backbone(from, meta, nmeta, &bb, shape))) goto done;
    const char *lc = pb_kv_get(meta, nmeta, "lower_case");
    if (lc && bb.lower_case == PB_LOWER_CASE_AUTO) bb.lower_case = strcmp(lc, "1") == 0 ? PB_LOWER_CASE_YES : PB_LOWER_CASE_NO;
    ictx.whole = 1;
  }
  if ((rc = pb_glue_data_dir(data, data_dir, sizeof data_dir))) goto done;
  if ((rc = pb_glue_load(task, data_dir, "train", 1, &ds))) goto done;
  if ((rc = pb_build_model(&bb, &mi, (int)batch, (int)max_len, (unsigned long long)seed, &m, &info))) goto done;
  built = 1;
  if (from) {
    const char *fp = pb_kv_get(meta, nmeta, "backbone_fingerprint");
    if (!fp || strcmp(fp, info.fingerprint) != 0) {
      rc = pb_set_error(PB_ERR_SHAPE, "--from %s was trained on backbone fingerprint %s but %s has %s", from,
                        fp ? fp : "?", info.source, info.fingerprint);
      goto done;
    }
    if ((rc = pb_task_load(&m, from, NULL, NULL))) goto done;
  }
  /* the shapes asked for, checked before any batch runs */
  if ((rc = pb_slender_declare(&m, (int)heads, (int)ffn, (int)rank, &dst))) goto done;
  pb_model_free(&dst);
  if ((rc = pb_load_vocab(&bb, &m.cfg, &tk, &info))) goto done;
  const char *vsha = from ? pb_kv_get(meta, nmeta, "vocab_sha256") : NULL;
  if (vsha && *vsha && strcmp(vsha, info.vocab_sha256) != 0) {
    rc = pb_set_error(PB_ERR_FORMAT, "--from %s was trained with a vocabulary of SHA-256 %.12s..., but %s has %.12s...",
                      from, vsha, info.vocab_path, info.vocab_sha256);
    goto done;
  }
  if ((rc = pb_encode_dataset(tk, &ds, (int)max_len, &enc))) goto done;
  if (enc.n < 1) {
    rc = pb_set_error(PB_ERR_ARG, "%s: no training examples", ds.path);
    goto done;
  }
  const size_t BT = (size_t)batch * max_len;
  idx = malloc(sizeof(int) * (size_t)enc.n);
  ids = malloc(sizeof(int) * BT), types = malloc(sizeof(int) * BT), mask = malloc(sizeof(int) * BT);
  labels = malloc(sizeof(int) * (size_t)batch), targets = malloc(sizeof(float) * (size_t)batch);
  if (!idx || !ids || !types || !mask || !labels || !targets) {
    rc = pb_set_error(PB_ERR_NOMEM, "slenderize: out of memory");
    goto done;
  }
  for (int i = 0; i < enc.n; i++) idx[i] = i;
  pb_rng r;
  pb_rng_seed(&r, (uint64_t)seed);
  for (int i = enc.n - 1; i > 0; i--) { /* Fisher-Yates: the batch order */
    const int j = (int)pb_rng_below(&r, (uint64_t)i + 1), t = idx[i];
    idx[i] = idx[j];
    idx[j] = t;
  }
  const int reg = task->is_regression;
  for (long k = 0; k < K; k++) {
    const int start = (int)((k * batch) % enc.n), Bk = (int)(batch < enc.n - start ? batch : enc.n - start);
    const int T = pb_encoded_batch(&enc, idx + start, Bk, ids, types, mask, labels, targets);
    float loss;
    if ((rc = pb_forward(&m, ids, types, mask, Bk, T, reg ? NULL : labels, reg ? targets : NULL, 0, 0, &loss)) ||
        (rc = pb_backward(&m)))
      goto done;
    fprintf(stderr, "slenderize: batch %ld/%ld loss %.4f\n", k + 1, K, (double)loss);
  }
  const int nh = pb_slender_n_heads(&m), nf = pb_slender_n_ffn(&m);
  himp = malloc(sizeof(float) * (size_t)nh), fimp = malloc(sizeof(float) * (size_t)nf);
  if (!himp || !fimp) {
    rc = pb_set_error(PB_ERR_NOMEM, "slenderize: out of memory");
    goto done;
  }
  for (int i = 0; i < nh; i++) himp[i] = (float)ictx.imp.head[i];
  for (int i = 0; i < nf; i++) fimp[i] = (float)ictx.imp.ffn[i];
  pb_slender_info si;
  if ((rc = pb_slender_prune_ex(&m, himp, fimp, (int)heads, (int)ffn, (int)rank, &dst, &si))) goto done;
  if ((rc = pb_model_save_hf(&dst, out))) goto done;
  char vpath[1200];
  snprintf(vpath, sizeof vpath, "%s/vocab.txt", out);
  if ((rc = copy_file(info.vocab_path, vpath))) goto done;
  printf("slenderize %s: %d batches; heads %d -> %ld, FFN %d -> %ld, word rank %ld", task->name, ictx.imp.batches,
         m.width[0].heads, heads, m.width[0].ffn, ffn, rank);
  if (rank > 0) printf(" (relative Frobenius error %.4f)", si.word_rel_err);
  printf("\n  parameters %zu -> %zu (%.4f); written %s\n", si.params_src, si.params_dst,
         (double)si.params_dst / (double)si.params_src, out);
done:
  if (rc) fprintf(stderr, "peftbench slenderize: %s\n", pb_last_error());
  free(idx), free(ids), free(types), free(mask), free(labels), free(targets), free(himp), free(fimp);
  pb_slender_imp_free(&ictx.imp);
  if (built) pb_model_free(&m);
  pb_model_free(&dst);
  pb_tok_free(tk);
  pb_encoded_free(&enc);
  pb_dataset_free(&ds);
  pb_kv_free(meta, nmeta);
  return rc == PB_ERR_ARG ? 2 : rc ? 1 : 0;
}
