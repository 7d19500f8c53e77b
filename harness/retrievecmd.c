/* `peftbench retrieve`: the CLI of the retrieval run (retrieve.h). */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "harness/cli.h"
#include "harness/results.h"
#include "harness/retrieve.h"
#include "harness/trainer.h"
#include "util/status.h"

static const char *USAGE =
    "usage: peftbench retrieve --method bm25|METHOD [options]\n"
    "  Retrieval on Cranfield (1,400 documents, 225 queries; split by query position: 1-150 train,\n"
    "  151-175 dev, 176-225 test). bm25: the lexical baseline. METHOD (full, lora, adapter, layerconnect,\n"
    "  ..., or A+B): COIL over the backbone with that method, trained on the train queries, every\n"
    "  document indexed, full retrieval for the dev and test queries; one result record per run.\n"
    "  -o, --opt KEY=VALUE   method option (repeatable; see `peftbench methods`)\n"
    "  --data-dir DIR        the collection (default: $PEFTBENCH_DATA/cranfield, else ../shared/data/cranfield)\n"
    "  --fold K (0)          0: the fixed split; 1..5: cross-validation fold K (test: positions p with\n"
    "                        (p-1) %% 5 == K-1, 45 queries; dev: every 9th of the rest, 20; train: 160)\n"
    "  --k1 X (1.2)  --b X (0.75)   BM25 parameters (also for the hard negatives)\n"
    "  --model DIR  --shape L,H,A,F  --vocab FILE  --lower-case auto|yes|no   the backbone, as `run`\n"
    "  --query-len N (32)  --doc-len N (128)   WordPiece lengths with [CLS] and [SEP] (longer texts are cut)\n"
    "  --token-dim N (32)  --cls-dim N (hidden size)   COIL projections\n"
    "  --score-sep           score the query's [SEP] token too\n"
    "  --token-act none|relu|layernorm (none)   after the token projection (layernorm: trainable, stored)\n"
    "  --group N (8)         documents per query: 1 positive + N-1 negatives\n"
    "  --queries N (4)       queries per training step\n"
    "  --hard-negatives N (100)  negatives from the BM25 top N not judged relevant (0: random)\n"
    "  --no-in-batch         each query's softmax over its own group only (default: every document of the step)\n"
    "  --epochs N (3)  --steps N (overrides)  --lr X (method default)  --warmup RATIO (0.1)\n"
    "  --weight-decay X (0.01)  --max-grad-norm X (1.0)  --dropout P (config)  --seed N (0)\n"
    "  --eval-batch N (32)   texts per encoding batch when indexing and querying\n"
    "  --from TASKFILE       evaluate a COIL task file of an earlier run (no training): its method, options,\n"
    "                        projections, lengths and backbone come from the file\n"
    "  --threads N  --events LIST  --results FILE.jsonl  --out DIR (out)  --json  --quiet\n";

static void summary(const cJSON *r) {
  printf("cranfield / %s (%s)\n", cJSON_GetObjectItem(r, "method")->valuestring,
         cJSON_GetObjectItem(r, "method_desc")->valuestring);
  const cJSON *sp = cJSON_GetObjectItem(cJSON_GetObjectItem(r, "metrics"), "splits"), *s;
  cJSON_ArrayForEach(s, sp) {
    const cJSON *v;
    printf("  %s:", s->string);
    cJSON_ArrayForEach(v, s) {
      if (strcmp(v->string, "queries") == 0) printf(" (%d queries)", v->valueint);
      else printf(" %s %.4f", v->string, v->valuedouble);
    }
    printf("\n");
  }
  const cJSON *st = cJSON_GetObjectItem(r, "storage"), *p = cJSON_GetObjectItem(st, "path");
  if (cJSON_IsString(p)) printf("  task file %s: %.0f bytes\n", p->valuestring, cJSON_GetObjectItem(st, "file_bytes")->valuedouble);
  printf("  index: %.0f bytes\n", cJSON_GetObjectItem(st, "index_bytes")->valuedouble);
  const cJSON *ops = cJSON_GetObjectItem(r, "ops");
  const cJSON *qe = cJSON_GetObjectItem(ops, "query_encode_per_query");
  if (qe)
    printf("  FLOPs: query encoding %.4g (mean %.1f tokens), document encoding %.4g (mean %.1f tokens), search %.4g per query\n",
           cJSON_GetObjectItem(cJSON_GetObjectItem(qe, "flops"), "total")->valuedouble,
           cJSON_GetObjectItem(ops, "query_mean_tokens")->valuedouble,
           cJSON_GetObjectItem(cJSON_GetObjectItem(cJSON_GetObjectItem(ops, "doc_encode_per_doc"), "flops"), "total")->valuedouble,
           cJSON_GetObjectItem(ops, "doc_mean_tokens")->valuedouble,
           cJSON_GetObjectItem(cJSON_GetObjectItem(cJSON_GetObjectItem(ops, "search_per_query"), "flops"), "total")->valuedouble);
  const cJSON *pr = cJSON_GetObjectItem(r, "predictions"), *pf;
  cJSON_ArrayForEach(pf, pr) printf("  per-query metrics (%s): %s\n", pf->string, pf->valuestring);
  const cJSON *ru = cJSON_GetObjectItem(r, "runs");
  cJSON_ArrayForEach(pf, ru) printf("  run (%s): %s\n", pf->string, pf->valuestring);
}

int pb_cmd_retrieve(int argc, char **argv) {
  enum { O_MODEL = 256, O_SHAPE, O_VOCAB, O_LOWER, O_DATA, O_K1, O_B, O_QLEN, O_DLEN, O_TOKDIM, O_CLSDIM, O_SEP,
         O_GROUP, O_QUERIES, O_HARD, O_NOINB, O_EPOCHS, O_STEPS, O_LR, O_WARMUP, O_WD, O_MAXGN, O_DROPOUT, O_SEED,
         O_EVALB, O_THREADS, O_EVENTS, O_RESULTS, O_OUT, O_JSON, O_QUIET, O_FROM, O_FOLD, O_ACT };
  static const struct option opts[] = {
      {"method", required_argument, 0, 'm'},       {"opt", required_argument, 0, 'o'},
      {"model", required_argument, 0, O_MODEL},    {"shape", required_argument, 0, O_SHAPE},
      {"vocab", required_argument, 0, O_VOCAB},    {"lower-case", required_argument, 0, O_LOWER},
      {"data-dir", required_argument, 0, O_DATA},  {"k1", required_argument, 0, O_K1},
      {"b", required_argument, 0, O_B},            {"query-len", required_argument, 0, O_QLEN},
      {"doc-len", required_argument, 0, O_DLEN},   {"token-dim", required_argument, 0, O_TOKDIM},
      {"cls-dim", required_argument, 0, O_CLSDIM}, {"score-sep", no_argument, 0, O_SEP},
      {"group", required_argument, 0, O_GROUP},    {"queries", required_argument, 0, O_QUERIES},
      {"hard-negatives", required_argument, 0, O_HARD}, {"no-in-batch", no_argument, 0, O_NOINB},
      {"epochs", required_argument, 0, O_EPOCHS},  {"steps", required_argument, 0, O_STEPS},
      {"lr", required_argument, 0, O_LR},          {"warmup", required_argument, 0, O_WARMUP},
      {"weight-decay", required_argument, 0, O_WD}, {"max-grad-norm", required_argument, 0, O_MAXGN},
      {"dropout", required_argument, 0, O_DROPOUT}, {"seed", required_argument, 0, O_SEED},
      {"eval-batch", required_argument, 0, O_EVALB}, {"threads", required_argument, 0, O_THREADS},
      {"events", required_argument, 0, O_EVENTS},  {"results", required_argument, 0, O_RESULTS},
      {"out", required_argument, 0, O_OUT},        {"json", no_argument, 0, O_JSON},
      {"quiet", no_argument, 0, O_QUIET},          {"from", required_argument, 0, O_FROM},
      {"fold", required_argument, 0, O_FOLD},      {"token-act", required_argument, 0, O_ACT},
      {"help", no_argument, 0, 'h'},
      {0, 0, 0, 0}};
  pb_retrieve_opts o;
  pb_retrieve_defaults(&o);
  const char *mopts[65];
  int nm = 0, json = 0, c;
  long iv;
  double dv;
  opterr = 0;
  while ((c = getopt_long(argc, argv, ":m:o:h", opts, NULL)) != -1) {
    switch (c) {
      case 'm': o.method = optarg; break;
      case 'o':
        if (nm >= 64) {
          fprintf(stderr, "peftbench retrieve: too many --opt (max 64)\n");
          return 2;
        }
        mopts[nm++] = optarg;
        break;
      case O_MODEL: o.bb.model_dir = optarg; break;
      case O_SHAPE: o.bb.shape = optarg; break;
      case O_VOCAB: o.bb.vocab = optarg; break;
      case O_LOWER: if (!pb_cli_lower_case(optarg, &o.bb.lower_case)) return 2; break;
      case O_DATA: o.data_dir = optarg; break;
      case O_K1: if (!pb_cli_num("--k1", optarg, 0, 100, &dv)) return 2; o.k1 = dv; break;
      case O_B: if (!pb_cli_num("--b", optarg, 0, 1, &dv)) return 2; o.b = dv; break;
      case O_QLEN: if (!pb_cli_int("--query-len", optarg, 3, 512, &iv)) return 2; o.query_len = (int)iv; break;
      case O_DLEN: if (!pb_cli_int("--doc-len", optarg, 3, 512, &iv)) return 2; o.doc_len = (int)iv; break;
      case O_TOKDIM: if (!pb_cli_int("--token-dim", optarg, 1, 4096, &iv)) return 2; o.tok_dim = (int)iv; break;
      case O_CLSDIM: if (!pb_cli_int("--cls-dim", optarg, 1, 4096, &iv)) return 2; o.cls_dim = (int)iv; break;
      case O_SEP: o.score_sep = 1; break;
      case O_GROUP: if (!pb_cli_int("--group", optarg, 2, 64, &iv)) return 2; o.group = (int)iv; break;
      case O_QUERIES: if (!pb_cli_int("--queries", optarg, 1, 256, &iv)) return 2; o.queries_per_step = (int)iv; break;
      case O_HARD: if (!pb_cli_int("--hard-negatives", optarg, 0, 1400, &iv)) return 2; o.hard_depth = (int)iv; break;
      case O_NOINB: o.in_batch = 0; break;
      case O_EPOCHS: if (!pb_cli_int("--epochs", optarg, 0, 1000, &iv)) return 2; o.epochs = (int)iv; break;
      case O_STEPS: if (!pb_cli_int("--steps", optarg, 0, 100000000, &iv)) return 2; o.steps = (int)iv; break;
      case O_LR: if (!pb_cli_num("--lr", optarg, 1e-9, 10, &dv)) return 2; o.lr = dv; break;
      case O_WARMUP: if (!pb_cli_num("--warmup", optarg, 0, 1, &dv)) return 2; o.warmup_ratio = dv; break;
      case O_WD: if (!pb_cli_num("--weight-decay", optarg, 0, 10, &dv)) return 2; o.weight_decay = dv; break;
      case O_MAXGN: if (!pb_cli_num("--max-grad-norm", optarg, 0, 1e6, &dv)) return 2; o.max_grad_norm = dv; break;
      case O_DROPOUT:
        if (!pb_cli_num("--dropout", optarg, 0, 0.99, &dv)) return 2;
        o.bb.hidden_dropout = o.bb.attn_dropout = (float)dv;
        break;
      case O_SEED: if (!pb_cli_int("--seed", optarg, 0, 2147483647L, &iv)) return 2; o.seed = (unsigned long long)iv; break;
      case O_EVALB: if (!pb_cli_int("--eval-batch", optarg, 1, 1024, &iv)) return 2; o.eval_batch = (int)iv; break;
      case O_THREADS: if (!pb_cli_int("--threads", optarg, 1, 256, &iv)) return 2; o.threads = (int)iv; break;
      case O_EVENTS: o.events = optarg; break;
      case O_RESULTS: o.results = optarg; break;
      case O_OUT: o.out_dir = optarg; break;
      case O_JSON: json = 1; break;
      case O_QUIET: o.quiet = 1; break;
      case O_FROM: o.from = optarg; break;
      case O_ACT:
        if (!strcmp(optarg, "none")) o.token_act = 0;
        else if (!strcmp(optarg, "relu")) o.token_act = 1;
        else if (!strcmp(optarg, "layernorm")) o.token_act = 2;
        else {
          fprintf(stderr, "peftbench retrieve: --token-act '%s': expected none, relu or layernorm\n", optarg);
          return 2;
        }
        break;
      case O_FOLD: if (!pb_cli_int("--fold", optarg, 0, 5, &iv)) return 2; o.fold = (int)iv; break;
      case 'h': fputs(USAGE, stdout); return 0;
      default: return pb_cli_bad_option("retrieve", argc, argv, opts);
    }
  }
  if (optind < argc) {
    fprintf(stderr, "peftbench retrieve: unexpected argument '%s' (see --help)\n", argv[optind]);
    return 2;
  }
  if (!o.method && !o.from) {
    fprintf(stderr, "peftbench retrieve: --method is required (bm25, or a method of `peftbench methods`)\n");
    return 2;
  }
  mopts[nm] = NULL;
  o.method_opts = nm ? mopts : NULL;
  pb_train_signals_install(NULL, 1);
  cJSON *r = NULL;
  int rc = pb_retrieve(&o, &r);
  if (rc) {
    fprintf(stderr, "peftbench retrieve: %s\n", pb_last_error());
    return rc == PB_ERR_ARG ? 2 : 1;
  }
  if (json) {
    char *s = pb_json_print_exact(r, 1);
    puts(s);
    free(s);
  } else {
    summary(r);
    if (o.results) printf("  result appended to %s\n", o.results);
  }
  cJSON_Delete(r);
  return 0;
}
