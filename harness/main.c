/* peftbench: the command-line entry point. Each subcommand parses its own options; errors are
 * one line on stderr and a non-zero exit (2 for usage errors, 1 for failures). */
#include <getopt.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "backbone/checkpoint.h"
#include "backbone/ops.h"
#include "util/status.h"
#include "harness/cli.h"
#include "harness/compare.h"
#include "harness/encode.h"
#include "harness/evalcmd.h"
#include "harness/glue.h"
#include "harness/opscmd.h"
#include "harness/plot.h"
#include "harness/pretrain.h"
#include "harness/submit.h"
#include "harness/table.h"
#include "harness/trainer.h"
#include "harness/results.h"
#include "harness/retrieve.h"
#include "harness/run.h"
#include "harness/slendercmd.h"
#include "harness/sweepcmd.h"
#include "harness/latentcmd.h"
#include "methods/method.h"

/* ---------------------------------------------------------------- run */

static const char *RUN_USAGE =
    "usage: peftbench run --task TASK --method METHOD [options]\n"
    "                        METHOD: one method, or several joined by '+' (composition)\n"
    "  -o, --opt KEY=VALUE   method option (repeatable; see `peftbench methods`); NAME.KEY=VALUE\n"
    "                        addresses one method of a composition\n"
    "  --model DIR           HF BERT folder (config.json, model.safetensors, vocab.txt);\n"
    "                        default: the embedded default backbone (models/default)\n"
    "  --shape L,H,A,F       random-initialised backbone of this shape instead (tests, ablations)\n"
    "  --vocab FILE          WordPiece vocabulary (default: DIR/vocab.txt, else the shared bert-base one)\n"
    "  --data-dir DIR        GLUE folder (default: $PEFTBENCH_DATA, else ../shared/data/glue)\n"
    "  --epochs N (3)  --steps N (overrides epochs)  --batch N (32)  --max-len N (128)\n"
    "  --lr X (method default)  --warmup RATIO (0.06)  --weight-decay X (0.01)  --dropout P (config)\n"
    "  --max-grad-norm X (1.0)  clip the global gradient norm as HF's Trainer (0 = off)\n"
    "  --max-train N  --max-eval N   deterministic subsamples (0 = all)\n"
    "  --seed N (0)          initialisation, batch order, dropout\n"
    "  --data-seed N (0)     the --max-train subsample (fixed across --seed)\n"
    "  --threads N (all cores)\n"
    "  --precision fp32|bf16 (fp32)  bf16: the matrix products (linear layers, attention) in bf16 on AMX\n"
    "                        (oneDNN), fp32 accumulation; fp32 master weights, optimizer, LayerNorm, softmax,\n"
    "                        GELU, losses (README, \"bf16\")\n"
    "  --lower-case auto|yes|no  tokenizer casing (auto: tokenizer_config.json, else the vocab's convention)\n"
    "  --new-head            train a fresh head even if the checkpoint has one (required when its shape differs)\n"
    "  --test                also write predictions for the task's unlabelled test split(s)\n"
    "  --results FILE.jsonl  append the result record (atomic)\n"
    "  --skip-done           exit 0 without training when --results already has a record of this\n"
    "                        task, configuration (config id) and seed: sweeps resume where they stopped\n"
    "  --out DIR (out)       where the task file and the prediction files are written\n"
    "                        (TASK-METHOD-CONFIGID-sSEED[-K]: never an existing name)\n"
    "  --events LIST         PAPI events (default: DESIGN.md list; software events always added)\n"
    "  --merge               evaluate with the method merged into the backbone (LoRA)\n"
    "  --teacher TASKFILE    distil from this fine-tuned task file (same task and vocabulary): every head's\n"
    "                        loss = (1-A) task loss + A * tau^2 soft cross-entropy of the teacher's logits\n"
    "  --kd-alpha A (0.5)    weight of prediction distillation (0..1)\n"
    "  --kd-temp TAU (1)     its temperature (> 0)\n"
    "  --kd-hidden BETA (0)  + BETA * MSE of each step's hidden states against the teacher's (uniform layer map)\n"
    "  --json                print the result record on stdout\n"
    "  --quiet               no progress output\n";

static void print_summary(const cJSON *r) {
  const cJSON *m = cJSON_GetObjectItem(r, "metrics"), *sp = cJSON_GetObjectItem(m, "splits"), *s;
  printf("%s / %s (%s)\n", cJSON_GetObjectItem(r, "task")->valuestring, cJSON_GetObjectItem(r, "method")->valuestring,
         cJSON_GetObjectItem(r, "method_desc")->valuestring);
  cJSON_ArrayForEach(s, sp) {
    const cJSON *v;
    printf("  %s:", s->string);
    cJSON_ArrayForEach(v, s) printf(" %s %.4f", v->string, v->valuedouble);
    printf("\n");
  }
  const cJSON *maj = cJSON_GetObjectItem(m, "majority_baseline");
  printf("  score %.4f", cJSON_GetObjectItem(m, "score")->valuedouble);
  if (cJSON_IsNumber(maj)) printf(" (majority-class baseline %.4f)", maj->valuedouble);
  printf("\n  %s\n", cJSON_GetObjectItem(cJSON_GetObjectItem(r, "params"), "report")->valuestring);
  const cJSON *st = cJSON_GetObjectItem(r, "storage");
  printf("  task file %s: %.0f bytes\n", cJSON_GetObjectItem(st, "path")->valuestring,
         cJSON_GetObjectItem(st, "file_bytes")->valuedouble);
  const cJSON *pr = cJSON_GetObjectItem(r, "predictions"), *pf;
  cJSON_ArrayForEach(pf, pr) printf("  predictions (%s): %s\n", pf->string, pf->valuestring);
  const cJSON *ops = cJSON_GetObjectItem(r, "ops");
  const cJSON *pe = cJSON_GetObjectItem(cJSON_GetObjectItem(ops, "inference_per_example"), "flops");
  const cJSON *pt = cJSON_GetObjectItem(cJSON_GetObjectItem(ops, "per_token_T128"), "flops");
  printf("  inference FLOPs per example (mean %.1f tokens): %.4g (method adds %.4g); per token at T=128: method adds "
         "%.4g\n",
         cJSON_GetObjectItem(ops, "mean_tokens")->valuedouble, cJSON_GetObjectItem(pe, "total")->valuedouble,
         cJSON_GetObjectItem(pe, "method")->valuedouble, cJSON_GetObjectItem(pt, "method")->valuedouble);
  const cJSON *ctr = cJSON_GetObjectItem(r, "counters"), *ev;
  const cJSON *ph = cJSON_GetObjectItem(cJSON_GetObjectItem(ctr, "phases"), "train");
  int n_na = 0;
  printf("  PAPI (train phase):");
  cJSON_ArrayForEach(ev, ph) {
    if (cJSON_IsNumber(ev)) printf(" %s %.0f", ev->string, ev->valuedouble);
    else n_na++;
  }
  if (n_na) printf(" | %d events not countable here (reasons in the record's counters.unavailable)", n_na);
  printf("\n");
  const cJSON *tm = cJSON_GetObjectItem(r, "timings");
  printf("  time: train %.1f s, eval %.1f s; peak RSS %.0f MB\n",
         cJSON_GetObjectItem(cJSON_GetObjectItem(tm, "train"), "wall_s")->valuedouble,
         cJSON_GetObjectItem(cJSON_GetObjectItem(tm, "eval"), "wall_s")->valuedouble,
         cJSON_GetObjectItem(cJSON_GetObjectItem(r, "memory"), "peak_rss_kb")->valuedouble / 1024.0);
}

static int cmd_run(int argc, char **argv) {
  pb_run_opts o;
  pb_run_defaults(&o);
  int json = 0;
  enum { O_MODEL = 256, O_SHAPE, O_VOCAB, O_DATA, O_EPOCHS, O_STEPS, O_BATCH, O_MAXLEN, O_LR, O_WARMUP, O_WD,
         O_DROPOUT, O_MAXTRAIN, O_MAXEVAL, O_SEED, O_THREADS, O_RESULTS, O_OUT, O_EVENTS, O_MERGE, O_JSON, O_QUIET,
         O_DATASEED, O_TEST, O_NEWHEAD, O_LOWER, O_SKIPDONE, O_MAXGN, O_TEACHER, O_KDALPHA, O_KDTEMP, O_KDHIDDEN, O_PREC };
  int kd_set = 0;
  static const struct option opts[] = {
      {"task", required_argument, 0, 't'},      {"method", required_argument, 0, 'm'},
      {"opt", required_argument, 0, 'o'},       {"model", required_argument, 0, O_MODEL},
      {"shape", required_argument, 0, O_SHAPE}, {"vocab", required_argument, 0, O_VOCAB},
      {"data-dir", required_argument, 0, O_DATA}, {"epochs", required_argument, 0, O_EPOCHS},
      {"steps", required_argument, 0, O_STEPS}, {"batch", required_argument, 0, O_BATCH},
      {"max-len", required_argument, 0, O_MAXLEN}, {"lr", required_argument, 0, O_LR},
      {"warmup", required_argument, 0, O_WARMUP}, {"weight-decay", required_argument, 0, O_WD},
      {"dropout", required_argument, 0, O_DROPOUT}, {"max-train", required_argument, 0, O_MAXTRAIN},
      {"max-eval", required_argument, 0, O_MAXEVAL}, {"seed", required_argument, 0, O_SEED},
      {"threads", required_argument, 0, O_THREADS}, {"results", required_argument, 0, O_RESULTS},
      {"out", required_argument, 0, O_OUT},     {"events", required_argument, 0, O_EVENTS},
      {"merge", no_argument, 0, O_MERGE},       {"json", no_argument, 0, O_JSON},
      {"quiet", no_argument, 0, O_QUIET},       {"data-seed", required_argument, 0, O_DATASEED},
      {"test", no_argument, 0, O_TEST},         {"new-head", no_argument, 0, O_NEWHEAD},
      {"lower-case", required_argument, 0, O_LOWER}, {"skip-done", no_argument, 0, O_SKIPDONE}, {"max-grad-norm", required_argument, 0, O_MAXGN},
      {"teacher", required_argument, 0, O_TEACHER}, {"kd-alpha", required_argument, 0, O_KDALPHA},
      {"kd-temp", required_argument, 0, O_KDTEMP}, {"kd-hidden", required_argument, 0, O_KDHIDDEN},
      {"precision", required_argument, 0, O_PREC},
      {"help", no_argument, 0, 'h'},
      {0, 0, 0, 0}};
  int c;
  long iv;
  double dv;
  opterr = 0;
  while ((c = getopt_long(argc, argv, ":t:m:o:h", opts, NULL)) != -1) {
    switch (c) {
      case 't': o.task = optarg; break;
      case 'm': o.method = optarg; break;
      case 'o':
        if (o.n_method_opts >= PB_MAX_METHOD_OPTS) {
          fprintf(stderr, "peftbench: too many --opt (max %d)\n", PB_MAX_METHOD_OPTS);
          return 2;
        }
        o.method_opts[o.n_method_opts++] = optarg;
        break;
      case O_MODEL: o.bb.model_dir = optarg; break;
      case O_SHAPE: o.bb.shape = optarg; break;
      case O_VOCAB: o.bb.vocab = optarg; break;
      case O_DATA: o.data_dir = optarg; break;
      case O_EPOCHS: if (!pb_cli_int("--epochs", optarg, 0, 1000, &iv)) return 2; o.epochs = (int)iv; break;
      case O_STEPS: if (!pb_cli_int("--steps", optarg, 0, 100000000, &iv)) return 2; o.steps = (int)iv; break;
      case O_BATCH: if (!pb_cli_int("--batch", optarg, 1, 4096, &iv)) return 2; o.batch = (int)iv; break;
      case O_MAXLEN: if (!pb_cli_int("--max-len", optarg, 3, 4096, &iv)) return 2; o.max_len = (int)iv; break;
      case O_LR: if (!pb_cli_num("--lr", optarg, 1e-9, 10, &dv)) return 2; o.lr = dv; break;
      case O_WARMUP: if (!pb_cli_num("--warmup", optarg, 0, 1, &dv)) return 2; o.warmup_ratio = dv; break;
      case O_WD: if (!pb_cli_num("--weight-decay", optarg, 0, 10, &dv)) return 2; o.weight_decay = dv; break;
      case O_DROPOUT:
        if (!pb_cli_num("--dropout", optarg, 0, 0.99, &dv)) return 2;
        o.bb.hidden_dropout = o.bb.attn_dropout = (float)dv;
        break;
      case O_MAXTRAIN: if (!pb_cli_int("--max-train", optarg, 0, 100000000, &iv)) return 2; o.max_train = (int)iv; break;
      case O_MAXEVAL: if (!pb_cli_int("--max-eval", optarg, 0, 100000000, &iv)) return 2; o.max_eval = (int)iv; break;
      case O_SEED: if (!pb_cli_int("--seed", optarg, 0, 2147483647L, &iv)) return 2; o.seed = (unsigned long long)iv; break;
      case O_THREADS: if (!pb_cli_int("--threads", optarg, 1, 256, &iv)) return 2; o.threads = (int)iv; break;
      case O_RESULTS: o.results = optarg; break;
      case O_OUT: o.out_dir = optarg; break;
      case O_EVENTS: o.events = optarg; break;
      case O_MERGE: o.merge_eval = 1; break;
      case O_JSON: json = 1; break;
      case O_QUIET: o.quiet = 1; break;
      case O_DATASEED:
        if (!pb_cli_int("--data-seed", optarg, 0, 2147483647L, &iv)) return 2;
        o.data_seed = (unsigned long long)iv;
        break;
      case O_TEST: o.predict_test = 1; break;
      case O_NEWHEAD: o.new_head = 1; break;
      case O_SKIPDONE: o.skip_done = 1; break;
      case O_LOWER: if (!pb_cli_lower_case(optarg, &o.bb.lower_case)) return 2; break;
      case O_MAXGN: if (!pb_cli_num("--max-grad-norm", optarg, 0, 1e6, &dv)) return 2; o.max_grad_norm = dv; break;
      case O_TEACHER: o.teacher = optarg; break;
      case O_KDALPHA: if (!pb_cli_num("--kd-alpha", optarg, 0, 1, &dv)) return 2; o.kd_alpha = dv; kd_set = 1; break;
      case O_KDTEMP: if (!pb_cli_num("--kd-temp", optarg, 1e-3, 1e3, &dv)) return 2; o.kd_temp = dv; kd_set = 1; break;
      case O_PREC: if (!pb_cli_precision(optarg, &o.precision)) return 2; break;
      case O_KDHIDDEN: if (!pb_cli_num("--kd-hidden", optarg, 0, 1e6, &dv)) return 2; o.kd_beta = dv; kd_set = 1; break;
      case 'h': fputs(RUN_USAGE, stdout); return 0;
      default: return pb_cli_bad_option("run", argc, argv, opts);
    }
  }
  if (optind < argc) {
    fprintf(stderr, "peftbench run: unexpected argument '%s' (see --help)\n", argv[optind]);
    return 2;
  }
  if (!o.task || !o.method) {
    fprintf(stderr, "peftbench run: --task and --method are required (see `peftbench tasks`, `peftbench methods`)\n");
    return 2;
  }
  if (kd_set && !o.teacher) {
    fprintf(stderr, "peftbench run: --kd-alpha, --kd-temp and --kd-hidden need --teacher TASKFILE\n");
    return 2;
  }
  o.method_opts[o.n_method_opts] = NULL;
  pb_train_signals_install(NULL, 1); /* a second Ctrl-C stops at once: results are appended atomically */
  cJSON *r = NULL;
  int rc = pb_run(&o, &r);
  if (rc == PB_RUN_SKIPPED) {
    if (!o.quiet) fprintf(stderr, "peftbench run: %s\n", pb_last_error());
    return 0;
  }
  if (rc) {
    fprintf(stderr, "peftbench run: %s\n", pb_last_error());
    return rc == PB_ERR_ARG ? 2 : 1; /* 2 only for usage errors: a bad file is 1 */
  }
  if (json) {
    char *s = pb_json_print_exact(r, 1);
    puts(s);
    free(s);
  } else {
    print_summary(r);
    if (o.results) printf("  result appended to %s\n", o.results);
  }
  cJSON_Delete(r);
  return 0;
}

/* ---------------------------------------------------------------- lists */

static int cmd_methods(void) {
  for (int i = 0; i < pb_method_count(); i++) {
    const pb_method *m = pb_method_at(i);
    printf("%-13s %s\n", m->name, m->summary ? m->summary : "");
    char help[1024];
    pb_method_options_help(m, help, sizeof help);
    printf("%-13s options: %s\n", "", help);
    for (int k = 0; m->version >= 2 && m->options && k < m->n_options; k++) {
      char line[1024];
      pb_method_option_line(&m->options[k], line, sizeof line);
      printf("%-13s   %s\n", "", line);
    }
  }
  char compose[512];
  pb_method_compose_help(compose, sizeof compose);
  printf("%s\n", compose);
  return 0;
}

static int cmd_tasks(void) {
  for (int i = 0; i < pb_task_count(); i++) {
    const pb_task *t = pb_task_at(i);
    printf("%-6s %-6s %s, %d %s, metrics:", t->name, t->dir, t->is_pair ? "sentence pairs" : "single sentences",
           t->num_labels, t->is_regression ? "output (regression)" : "classes");
    for (int k = 0; k < t->n_metrics; k++) printf(" %s", pb_metric_name(t->metrics[k]));
    printf("; eval:");
    for (int k = 0; k < t->n_eval; k++) printf(" %s", t->eval_splits[k]);
    printf("\n");
  }
  return 0;
}

/* ---------------------------------------------------------------- dispatch */

static const char *USAGE =
    "usage: peftbench COMMAND [options]   (peftbench COMMAND --help for details)\n"
    "  run       train one method on one GLUE task, evaluate, append a result\n"
    "  eval      evaluate a saved task file\n"
    "  slenderize  COST-EFF slenderization: prune heads / FFN by Taylor importance, factorise the word embeddings\n"
    "  sweep     many runs from one sweep file: plan, run locally (-j N), on Slurm, collect, status\n"
    "  autoencoder  train an autoencoder (or a PCA) on the hidden states of layer K (latent compression)\n"
    "  compress  a compressed backbone: layers 1..K, an autoencoder's encoder half, the layers above at width d'\n"
    "  ops       exact operation counts of a method, without data (--check baseline)\n"
    "  table     comparison tables (md, csv, latex) from result files\n"
    "  plot      gnuplot figures from result files\n"
    "  compare   significance tests between two methods or configurations (seeds, examples)\n"
    "  pretrain  masked-language-model pre-training of a backbone\n"
    "  methods   list the methods and their options\n"
    "  tasks     list the GLUE tasks\n"
    "  submit    GLUE leaderboard files (CoLA.tsv ... AX.tsv) from test-split predictions\n"
    "  retrieve  retrieval on Cranfield: BM25, or COIL over the backbone with any method\n"
    "  ircompare paired significance tests over queries between two retrieval runs\n";

typedef int (*cmd_fn)(int, char **);
static const struct {
  const char *name;
  cmd_fn fn;
} COMMANDS[] = {
    {"run", cmd_run}, {"eval", pb_cmd_eval}, {"ops", pb_cmd_ops}, {"table", pb_cmd_table}, {"plot", pb_cmd_plot},
    {"pretrain", pb_cmd_pretrain}, {"submit", pb_cmd_submit}, {"compare", pb_cmd_compare}, {"slenderize", pb_cmd_slenderize},
    {"sweep", pb_cmd_sweep}, {"autoencoder", pb_cmd_autoencoder}, {"compress", pb_cmd_compress},
    {"retrieve", pb_cmd_retrieve}, {"ircompare", pb_cmd_ircompare}, {NULL, NULL},
};

int main(int argc, char **argv) {
  if (argc < 2 || strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0 || strcmp(argv[1], "help") == 0) {
    fputs(USAGE, argc < 2 ? stderr : stdout);
    return argc < 2 ? 2 : 0;
  }
  if (strcmp(argv[1], "methods") == 0) return cmd_methods();
  if (strcmp(argv[1], "tasks") == 0) return cmd_tasks();
  for (int i = 0; COMMANDS[i].name; i++)
    if (strcmp(argv[1], COMMANDS[i].name) == 0) return COMMANDS[i].fn(argc - 1, argv + 1);
  fprintf(stderr, "peftbench: unknown command '%s' (valid: run, eval, ops, table, plot, compare, pretrain, submit, slenderize, sweep, autoencoder, compress, retrieve, ircompare, methods, tasks)\n",
          argv[1]);
  return 2;
}
