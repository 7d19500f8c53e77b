/* `peftbench autoencoder` (train an autoencoder, or a PCA, on the hidden states of layer k over
 * the GLUE training text) and `peftbench compress` (write a compressed backbone folder: layers
 * 1..k, the encoder half, layers k+1..L at width d'). See README "Latent-space compression". */
#include "harness/latentcmd.h"

#include <getopt.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "backbone/autoenc.h"
#include "backbone/checkpoint.h"
#include "backbone/latent.h"
#include "backbone/ops.h"
#include "harness/cli.h"
#include "harness/corpus.h"
#include "harness/glue.h"
#include "harness/setup.h"
#include "util/fileio.h"
#include "util/rng.h"
#include "util/status.h"

enum { O_LAYER = 256, O_WIDTHS, O_FORM, O_STEPS, O_BATCH, O_LR, O_SEED, O_SEQS, O_MAXLEN, O_OUT, O_MODEL, O_SHAPE,
       O_VOCAB, O_LOWER, O_DATA, O_QUIET, O_VARIANT, O_AE, O_HEADS, O_FFN, O_INIT };

#define BACKBONE_OPTS                                                                              \
  {"model", required_argument, 0, O_MODEL}, {"shape", required_argument, 0, O_SHAPE},              \
      {"vocab", required_argument, 0, O_VOCAB}, {"lower-case", required_argument, 0, O_LOWER},     \
      {"data-dir", required_argument, 0, O_DATA}

/* "192,128" -> widths[1..] after d (widths[0] is the caller's); returns the count or -1 */
static int parse_widths(const char *s, int *w, int max) {
  int n = 0;
  char *end;
  for (const char *p = s; *p; p = *end == ',' ? end + 1 : end) {
    const long v = strtol(p, &end, 10);
    if (end == p || v < 1 || v > 1 << 20 || (*end && *end != ',') || n == max) return -1;
    w[n++] = (int)v;
    if (*end == ',' && !end[1]) return -1;
  }
  return n;
}

static int usage_error(const char *cmd, const char *msg) {
  fprintf(stderr, "peftbench %s: %s\n", cmd, msg);
  return 2;
}

/* hidden states of layer k (output of step k-1) at every real token of `nseq` corpus sequences
 * drawn with `seed`; rows [N,d] in *X; the first *n_train rows come from the first 90% of the
 * drawn sequences, the rest are held out */
static int collect_states(pb_model *m, const pb_corpus *cp, int k, int nseq, int batch, uint64_t seed, float **X,
                          int *N, int *n_train) {
  const int T = cp->T, d = m->cfg.hidden;
  if (nseq > cp->n_seq) nseq = cp->n_seq;
  int *pick = malloc(sizeof(int) * (size_t)cp->n_seq), *mask = malloc(sizeof(int) * (size_t)batch * T);
  long rows = 0;
  if (!pick || !mask) {
    free(pick), free(mask);
    return pb_set_error(PB_ERR_NOMEM, "autoencoder: out of memory");
  }
  for (int i = 0; i < cp->n_seq; i++) pick[i] = i;
  pb_rng r;
  pb_rng_seed(&r, seed);
  for (int i = 0; i < nseq; i++) { /* a partial Fisher-Yates: the first nseq of a random order */
    const int j = i + (int)pb_rng_below(&r, (uint64_t)(cp->n_seq - i)), t = pick[i];
    pick[i] = pick[j], pick[j] = t;
  }
  for (int i = 0; i < nseq; i++) rows += cp->len[pick[i]];
  float *x = malloc(sizeof(float) * (size_t)rows * d);
  int *ids = malloc(sizeof(int) * (size_t)batch * T);
  int rc = PB_OK;
  if (!x || !ids) rc = pb_set_error(PB_ERR_NOMEM, "autoencoder: %ld hidden-state rows do not fit in memory", rows);
  const int split = nseq - nseq / 10;
  long at = 0;
  for (int s = 0; !rc && s < nseq; s += batch) {
    const int B = nseq - s < batch ? nseq - s : batch;
    for (int b = 0; b < B; b++) {
      memcpy(ids + (size_t)b * T, cp->ids + (size_t)pick[s + b] * T, sizeof(int) * T);
      for (int t = 0; t < T; t++) mask[(size_t)b * T + t] = t < cp->len[pick[s + b]];
    }
    if ((rc = pb_forward(m, ids, NULL, mask, B, T, NULL, NULL, 0, 0, NULL))) break;
    const float *h = m->acts.layer[k - 1].out;
    for (int b = 0; b < B; b++) {
      if (s + b == split) *n_train = (int)at;
      const int len = cp->len[pick[s + b]];
      memcpy(x + at * d, h + (size_t)b * T * d, sizeof(float) * (size_t)len * d);
      at += len;
    }
  }
  if (split >= nseq) *n_train = (int)at;
  free(pick), free(mask), free(ids);
  if (rc) {
    free(x);
    return rc;
  }
  *X = x;
  *N = (int)at;
  return PB_OK;
}

/* mean over columns of the column variances of x [N,d] (the MSE of predicting the mean) */
static double mean_variance(const float *x, int N, int d) {
  double tot = 0;
  for (int j = 0; j < d; j++) {
    double s = 0, s2 = 0;
    for (int i = 0; i < N; i++) s += x[(size_t)i * d + j];
    const double mu = s / N;
    for (int i = 0; i < N; i++) s2 += (x[(size_t)i * d + j] - mu) * (x[(size_t)i * d + j] - mu);
    tot += s2 / N;
  }
  return tot / d;
}

static const char *AE_USAGE =
    "usage: peftbench autoencoder --layer K --widths W1,...,D' --out FILE [options]\n"
    "  trains an autoencoder on the hidden states of layer K (the output of the first K layers) at every\n"
    "  real token of GLUE training text (pretrain's corpus), reports its reconstruction error and saves it\n"
    "  --form linear|nonlinear|pca (nonlinear: ReLU between the layers, tanh on the code; pca: the top D'\n"
    "         principal components, one width, the variance kept reported)\n"
    "  --steps N (3000)  --batch B (256 rows)  --lr X (1e-3)  --seed N (0)\n"
    "  --sequences N (400: corpus sequences drawn, 10% held out)  --max-len N (64)\n"
    "  --model DIR  --shape L,H,A,F  --vocab FILE  --lower-case auto|yes|no  --data-dir DIR  as `run`\n";

int pb_cmd_autoencoder(int argc, char **argv) {
  static const struct option opts[] = {
      {"layer", required_argument, 0, O_LAYER}, {"widths", required_argument, 0, O_WIDTHS},
      {"form", required_argument, 0, O_FORM},   {"steps", required_argument, 0, O_STEPS},
      {"batch", required_argument, 0, O_BATCH}, {"lr", required_argument, 0, O_LR},
      {"seed", required_argument, 0, O_SEED},   {"sequences", required_argument, 0, O_SEQS},
      {"max-len", required_argument, 0, O_MAXLEN}, {"out", required_argument, 0, O_OUT},
      {"quiet", no_argument, 0, O_QUIET},       BACKBONE_OPTS,
      {"help", no_argument, 0, 'h'},            {0, 0, 0, 0}};
  pb_backbone_opts bb;
  memset(&bb, 0, sizeof bb);
  bb.hidden_dropout = bb.attn_dropout = -1;
  bb.num_labels = 2;
  const char *out = NULL, *data = NULL, *widths = NULL, *form = "nonlinear";
  long layer = -1, steps = 3000, batch = 256, seed = 0, nseq = 400, max_len = 64;
  double lr = 1e-3;
  int quiet = 0, c;
  opterr = 0;
  optind = 1;
  while ((c = getopt_long(argc, argv, ":h", opts, NULL)) != -1) {
    switch (c) {
      case O_LAYER: if (!pb_cli_int("--layer", optarg, 0, 4096, &layer)) return 2; break;
      case O_WIDTHS: widths = optarg; break;
      case O_FORM: form = optarg; break;
      case O_STEPS: if (!pb_cli_int("--steps", optarg, 1, 100000000, &steps)) return 2; break;
      case O_BATCH: if (!pb_cli_int("--batch", optarg, 1, 1 << 20, &batch)) return 2; break;
      case O_LR: if (!pb_cli_num("--lr", optarg, 1e-8, 10, &lr)) return 2; break;
      case O_SEED: if (!pb_cli_int("--seed", optarg, 0, 2147483647L, &seed)) return 2; break;
      case O_SEQS: if (!pb_cli_int("--sequences", optarg, 2, 100000000, &nseq)) return 2; break;
      case O_MAXLEN: if (!pb_cli_int("--max-len", optarg, 3, 4096, &max_len)) return 2; break;
      case O_OUT: out = optarg; break;
      case O_QUIET: quiet = 1; break;
      case O_MODEL: bb.model_dir = optarg; break;
      case O_SHAPE: bb.shape = optarg; break;
      case O_VOCAB: bb.vocab = optarg; break;
      case O_LOWER: if (!pb_cli_lower_case(optarg, &bb.lower_case)) return 2; break;
      case O_DATA: data = optarg; break;
      case 'h': fputs(AE_USAGE, stdout); return 0;
      default: return pb_cli_bad_option("autoencoder", argc, argv, opts);
    }
  }
  if (optind < argc || layer < 0 || !widths || !out)
    return usage_error("autoencoder", "--layer, --widths and --out are required (see --help)");
  const int fm = strcmp(form, "linear") == 0 ? PB_LATENT_LINEAR : strcmp(form, "nonlinear") == 0 ? PB_LATENT_NONLINEAR
                 : strcmp(form, "pca") == 0 ? 2 : -1;
  if (fm < 0) return usage_error("autoencoder", "--form must be linear, nonlinear or pca");
  int w[PB_LATENT_MAX_MAPS + 1];
  const int n = parse_widths(widths, w + 1, PB_LATENT_MAX_MAPS);
  if (n < 1)
    return usage_error("autoencoder", "--widths: expected 1..6 positive integers separated by commas (after d), "
                                      "e.g. 192,128");
  if (fm == 2 && n != 1) return usage_error("autoencoder", "--form pca takes one width (the components kept)");
  pb_model m;
  memset(&m, 0, sizeof m);
  pb_backbone_info info;
  pb_tokenizer *tk = NULL;
  pb_corpus cp;
  memset(&cp, 0, sizeof cp);
  pb_autoenc ae;
  memset(&ae, 0, sizeof ae);
  float *X = NULL;
  int rc, built = 0, N = 0, ntr = 0;
  pb_config cfg;
  char data_dir[1024];
  if ((rc = pb_backbone_config(&bb, &cfg, &info))) goto done;
  w[0] = cfg.hidden;
  if (layer < 1 || layer > cfg.layers - 1) {
    rc = pb_set_error(PB_ERR_ARG, "--layer %ld outside 1..%d (the backbone has %d layers)", layer, cfg.layers - 1,
                      cfg.layers);
    goto done;
  }
  for (int i = 1; i <= n; i++)
    if (w[i] >= w[i - 1]) {
      rc = pb_set_error(PB_ERR_ARG, "--widths: %d after %d; the widths must decrease strictly from d = %d", w[i],
                        w[i - 1], cfg.hidden);
      goto done;
    }
  if ((rc = pb_glue_data_dir(data, data_dir, sizeof data_dir))) goto done;
  if ((rc = pb_build_model(&bb, NULL, 32, (int)max_len, 0, &m, &info))) goto done;
  built = 1;
  if (pb_model_latent(&m)) {
    rc = pb_set_error(PB_ERR_ARG, "%s is a compressed model already; train on an uncompressed backbone", info.source);
    goto done;
  }
  if ((rc = pb_load_vocab(&bb, &m.cfg, &tk, &info))) goto done;
  if ((rc = pb_corpus_build(&cp, tk, data_dir, (int)max_len, NULL, quiet))) goto done;
  if ((rc = collect_states(&m, &cp, (int)layer, (int)nseq, 32, (uint64_t)seed, &X, &N, &ntr))) goto done;
  const int d = cfg.hidden, nho = N - ntr;
  const double var_tr = mean_variance(X, ntr, d), var_ho = nho > 0 ? mean_variance(X + (size_t)ntr * d, nho, d) : 0;
  double mse_tr = 0, mse_ho = 0, kept = -1;
  if (fm == 2) {
    float *mean = malloc(sizeof(float) * d), *comps = malloc(sizeof(float) * (size_t)w[1] * d);
    if (!mean || !comps) rc = pb_set_error(PB_ERR_NOMEM, "pca: out of memory");
    if (!rc) rc = pb_pca(X, ntr, d, w[1], mean, comps, NULL, &kept);
    if (!rc) rc = pb_autoenc_from_pca(&ae, (int)layer, d, w[1], mean, comps);
    free(mean), free(comps);
    if (rc) goto done;
    mse_tr = pb_autoenc_mse(&ae, X, ntr);
  } else {
    if ((rc = pb_autoenc_create(&ae, (int)layer, n, w, fm, (uint64_t)seed + 1))) goto done;
    const pb_autoenc_train_opts to = {.steps = (int)steps, .batch = (int)batch, .lr = (float)lr,
                                      .seed = (uint64_t)seed, .quiet = quiet};
    if ((rc = pb_autoenc_train(&ae, X, ntr, &to, &mse_tr))) goto done;
  }
  if (nho > 0) mse_ho = pb_autoenc_mse(&ae, X + (size_t)ntr * d, nho);
  char buf[9][64];
  snprintf(buf[0], 64, "%.6g", mse_tr);
  snprintf(buf[1], 64, "%.6g", mse_ho);
  snprintf(buf[2], 64, "%.6g", mse_tr / var_tr);
  snprintf(buf[3], 64, "%.6g", nho > 0 ? mse_ho / var_ho : 0);
  snprintf(buf[4], 64, "%d", ntr);
  snprintf(buf[5], 64, "%d", nho);
  snprintf(buf[6], 64, "%ld", fm == 2 ? 0 : steps);
  snprintf(buf[7], 64, "%.6g", kept);
  /* variance_kept (last) only for a PCA */
  const pb_kv extra[] = {{"backbone_fingerprint", info.fingerprint}, {"backbone", info.source},
                         {"mse_train", buf[0]}, {"mse_heldout", buf[1]}, {"rel_err_train", buf[2]},
                         {"rel_err_heldout", buf[3]}, {"rows_train", buf[4]}, {"rows_heldout", buf[5]},
                         {"steps", buf[6]}, {"variance_kept", buf[7]}};
  if ((rc = pb_autoenc_save(&ae, out, extra, fm == 2 ? 10 : 9))) goto done;
  printf("autoencoder: layer %ld of %d, widths %d", layer, cfg.layers, w[0]);
  for (int i = 1; i <= n; i++) printf(",%d", w[i]);
  printf(" (%s), %d training rows, %d held out\n", form, ntr, nho);
  printf("  reconstruction MSE train %.6g, held-out %.6g; relative to the variance %.4f / %.4f", mse_tr, mse_ho,
         mse_tr / var_tr, nho > 0 ? mse_ho / var_ho : 0.0);
  if (fm == 2) printf("; variance kept %.4f", kept);
  printf("\n  written %s\n", out);
done:
  if (rc) fprintf(stderr, "peftbench autoencoder: %s\n", pb_last_error());
  free(X);
  pb_autoenc_free(&ae);
  pb_corpus_free(&cp);
  pb_tok_free(tk);
  if (built) pb_model_free(&m);
  return rc == PB_ERR_ARG ? 2 : rc ? 1 : 0;
}

/* ------------------------------------------------------------------ compress */

static const char *CMP_USAGE =
    "usage: peftbench compress --variant ae|aes|ll|pca --out DIR [options]\n"
    "  writes a compressed backbone (HF-style folder): the first K layers, the encoder half of an autoencoder\n"
    "  (width d -> d'), then layers K+1..L and the pooler at width d'; `run --model DIR` trains any method on it\n"
    "  --variant ae   the encoder half of `peftbench autoencoder` (--ae FILE), frozen\n"
    "            pca  the PCA map of `peftbench autoencoder --form pca` (--ae FILE), frozen\n"
    "            aes  an autoencoder's encoder half of --widths, fresh, trained jointly with the task\n"
    "            ll   one linear map d -> d' (--widths D'), fresh, trained jointly with the task\n"
    "  --layer K (aes, ll; ae/pca: the file's)  --widths W1,...,D'  --form linear|nonlinear (aes: nonlinear)\n"
    "  --heads A (the backbone's)  --ffn F (the backbone's F * d'/d)\n"
    "  --init fresh|project (fresh): the layers above the cut and the pooler: BERT's random init, or the\n"
    "         original layers projected through a linear map (pca, or ae of form linear; needs --ffn F)\n"
    "  --seed N (0)  --model DIR  --shape L,H,A,F  --vocab FILE  --lower-case auto|yes|no  as `run`\n";

/* c [r,q] = a [r,p] b [p,q] (row-major, plain loops: init-time only) */
static void matmul(float *c, const float *a, const float *b, int r, int p, int q) {
  for (int i = 0; i < r; i++)
    for (int j = 0; j < q; j++) {
      double s = 0;
      for (int k = 0; k < p; k++) s += (double)a[(size_t)i * p + k] * b[(size_t)k * q + j];
      c[(size_t)i * q + j] = (float)s;
    }
}

/* dst tensor `name` = E src W D (E [d',d], W [d,d], D [d,d']), or one side only */
static int project(pb_model *dst, const pb_model *src, const char *name, const float *E, const float *D, int d,
                   int dp, int left, int right) {
  const int si = pb_params_find(&src->params, name), di = pb_params_find(&dst->params, name);
  if (si < 0 || di < 0) return pb_set_error(PB_ERR_NOTFOUND, "compress: tensor %s missing", name);
  const pb_tensor *s = &src->params.t[si];
  pb_tensor *t = &dst->params.t[di];
  const int rows = s->shape[0], cols = s->ndim == 2 ? s->shape[1] : 1;
  float *tmp = malloc(sizeof(float) * (size_t)dp * cols);
  if (!tmp) return pb_set_error(PB_ERR_NOMEM, "compress: out of memory");
  const float *cur = s->data;
  int r = rows;
  float *buf = tmp;
  if (left) { /* E [dp, rows] @ cur [rows, cols] */
    matmul(buf, E, cur, dp, rows, cols);
    cur = buf, r = dp;
  }
  if (right) /* cur [r, d] @ D [d, dp] */
    matmul(t->data, cur, D, r, cols, dp);
  else
    memcpy(t->data, cur, sizeof(float) * (size_t)r * cols);
  free(tmp);
  return PB_OK;
}

/* LayerNorm gain in the new basis: the diagonal of E diag(g) D */
static int project_gain(pb_model *dst, const pb_model *src, const char *name, const float *E, const float *D, int d, int dp) {
  const int si = pb_params_find(&src->params, name), di = pb_params_find(&dst->params, name);
  if (si < 0 || di < 0) return pb_set_error(PB_ERR_NOTFOUND, "compress: tensor %s missing", name);
  const float *g = src->params.t[si].data;
  float *o = dst->params.t[di].data;
  for (int i = 0; i < dp; i++) {
    double s = 0;
    for (int j = 0; j < d; j++) s += (double)E[(size_t)i * d + j] * g[j] * D[(size_t)j * dp + i];
    o[i] = (float)s;
  }
  return PB_OK;
}

int pb_cmd_compress(int argc, char **argv) {
  static const struct option opts[] = {
      {"variant", required_argument, 0, O_VARIANT}, {"ae", required_argument, 0, O_AE},
      {"layer", required_argument, 0, O_LAYER},     {"widths", required_argument, 0, O_WIDTHS},
      {"form", required_argument, 0, O_FORM},       {"heads", required_argument, 0, O_HEADS},
      {"ffn", required_argument, 0, O_FFN},         {"init", required_argument, 0, O_INIT},
      {"seed", required_argument, 0, O_SEED},       {"out", required_argument, 0, O_OUT},
      BACKBONE_OPTS,                                {"help", no_argument, 0, 'h'},
      {0, 0, 0, 0}};
  pb_backbone_opts bb;
  memset(&bb, 0, sizeof bb);
  bb.hidden_dropout = bb.attn_dropout = -1;
  bb.num_labels = 2;
  const char *out = NULL, *variant = NULL, *aefile = NULL, *widths = NULL, *form = NULL, *init = "fresh";
  long layer = -1, heads = -1, ffn = -1, seed = 0;
  int c;
  opterr = 0;
  optind = 1;
  while ((c = getopt_long(argc, argv, ":h", opts, NULL)) != -1) {
    switch (c) {
      case O_VARIANT: variant = optarg; break;
      case O_AE: aefile = optarg; break;
      case O_LAYER: if (!pb_cli_int("--layer", optarg, 0, 4096, &layer)) return 2; break;
      case O_WIDTHS: widths = optarg; break;
      case O_FORM: form = optarg; break;
      case O_HEADS: if (!pb_cli_int("--heads", optarg, 1, 4096, &heads)) return 2; break;
      case O_FFN: if (!pb_cli_int("--ffn", optarg, 1, 1 << 24, &ffn)) return 2; break;
      case O_INIT: init = optarg; break;
      case O_SEED: if (!pb_cli_int("--seed", optarg, 0, 2147483647L, &seed)) return 2; break;
      case O_OUT: out = optarg; break;
      case O_MODEL: bb.model_dir = optarg; break;
      case O_SHAPE: bb.shape = optarg; break;
      case O_VOCAB: bb.vocab = optarg; break;
      case O_LOWER: if (!pb_cli_lower_case(optarg, &bb.lower_case)) return 2; break;
      case O_DATA: return usage_error("compress", "--data-dir: compress reads no data (`peftbench autoencoder` does)");
      case 'h': fputs(CMP_USAGE, stdout); return 0;
      default: return pb_cli_bad_option("compress", argc, argv, opts);
    }
  }
  if (optind < argc || !variant || !out) return usage_error("compress", "--variant and --out are required (see --help)");
  const int is_file = strcmp(variant, "ae") == 0 || strcmp(variant, "pca") == 0;
  if (!is_file && strcmp(variant, "aes") && strcmp(variant, "ll"))
    return usage_error("compress", "--variant must be ae, aes, ll or pca");
  if (is_file && !aefile) return usage_error("compress", "--variant ae and pca need --ae FILE (from `peftbench autoencoder`)");
  if (!is_file && aefile) return usage_error("compress", "--ae FILE goes with --variant ae or pca; aes and ll start fresh");
  if (!is_file && (layer < 0 || !widths)) return usage_error("compress", "--variant aes and ll need --layer and --widths");
  if (is_file && (widths || form)) return usage_error("compress", "--widths and --form come from the --ae file");
  if (strcmp(init, "fresh") && strcmp(init, "project")) return usage_error("compress", "--init must be fresh or project");
  const int proj = strcmp(init, "project") == 0;
  pb_model src, dst;
  memset(&src, 0, sizeof src);
  memset(&dst, 0, sizeof dst);
  pb_autoenc ae;
  memset(&ae, 0, sizeof ae);
  pb_kv *meta = NULL;
  int nmeta = 0, rc, built = 0;
  pb_backbone_info info;
  pb_latent_spec s;
  memset(&s, 0, sizeof s);
  if ((rc = pb_build_model(&bb, NULL, 1, 8, 0, &src, &info))) goto done;
  built = 1;
  const pb_config *cfg = &src.cfg;
  const int d = cfg->hidden;
  if (pb_model_latent(&src) || !pb_model_width_uniform(&src)) {
    rc = pb_set_error(PB_ERR_ARG, "%s: the source backbone is compressed or slender already", info.source);
    goto done;
  }
  if (is_file) {
    if ((rc = pb_autoenc_load(&ae, aefile, &meta, &nmeta))) goto done;
    const char *fp = pb_kv_get(meta, nmeta, "backbone_fingerprint");
    if (!fp || strcmp(fp, info.fingerprint) != 0) {
      rc = pb_set_error(PB_ERR_FORMAT, "%s was trained on backbone fingerprint %s, but %s has %s", aefile,
                        fp ? fp : "(none)", info.source, info.fingerprint);
      goto done;
    }
    if ((strcmp(variant, "pca") == 0) != ae.pca) {
      rc = pb_set_error(PB_ERR_ARG, "--variant %s but %s holds %s", variant, aefile, ae.pca ? "a PCA" : "an autoencoder");
      goto done;
    }
    if (layer >= 0 && layer != ae.cut) {
      rc = pb_set_error(PB_ERR_ARG, "--layer %ld but %s encodes layer %d", layer, aefile, ae.cut);
      goto done;
    }
    s.cut = ae.cut, s.n = ae.n, s.form = ae.form;
    memcpy(s.widths, ae.widths, sizeof s.widths);
    if (ae.widths[0] != d) {
      rc = pb_set_error(PB_ERR_SHAPE, "%s encodes width %d, the backbone has %d", aefile, ae.widths[0], d);
      goto done;
    }
  } else {
    s.cut = (int)layer;
    s.widths[0] = d;
    s.n = parse_widths(widths, s.widths + 1, PB_LATENT_MAX_MAPS);
    if (s.n < 1) {
      rc = pb_set_error(PB_ERR_ARG, "--widths: expected 1..6 positive integers separated by commas (after d)");
      goto done;
    }
    const int ll = strcmp(variant, "ll") == 0;
    if (ll && s.n != 1) {
      rc = pb_set_error(PB_ERR_ARG, "--variant ll is one linear map: give one width (--widths D')");
      goto done;
    }
    s.form = ll ? PB_LATENT_LINEAR : PB_LATENT_NONLINEAR;
    if (form && (!ll && strcmp(form, "linear") == 0)) s.form = PB_LATENT_LINEAR;
    else if (form && strcmp(form, "nonlinear") && strcmp(form, "linear")) {
      rc = pb_set_error(PB_ERR_ARG, "--form must be linear or nonlinear");
      goto done;
    } else if (form && ll && strcmp(form, "linear")) {
      rc = pb_set_error(PB_ERR_ARG, "--variant ll is linear (--form nonlinear is aes)");
      goto done;
    }
    s.trainable = 1;
  }
  snprintf(s.variant, sizeof s.variant, "%s", variant);
  const int dp = s.widths[s.n];
  s.heads = heads > 0 ? (int)heads : cfg->heads;
  s.ffn = ffn > 0 ? (int)ffn : (int)((long)cfg->ffn * dp / d);
  if (s.ffn < 1) s.ffn = 1;
  if ((rc = pb_latent_check(&s, cfg))) goto done;
  if (proj && (!is_file || s.form != PB_LATENT_LINEAR || s.n != 1)) {
    rc = pb_set_error(PB_ERR_ARG, "--init project needs one pre-trained linear map (--variant pca, or ae of form linear "
                      "with one width)");
    goto done;
  }
  if (proj && s.ffn != cfg->ffn) {
    rc = pb_set_error(PB_ERR_ARG, "--init project keeps the FFN width: give --ffn %d (got %d)", cfg->ffn, s.ffn);
    goto done;
  }
  if ((rc = pb_model_declare(&dst, cfg)) || (rc = pb_model_set_latent(&dst, &s)) || (rc = pb_params_alloc(&dst.params)))
    goto done;
  pb_model_init_random(&dst, (uint64_t)seed);
  /* embeddings and layers 1..k: the source's values */
  for (int i = 0; i < dst.params.n; i++) {
    pb_tensor *t = &dst.params.t[i];
    int layer_no = -1;
    const int kept = strncmp(t->name, "bert.embeddings.", 16) == 0 ||
                     (sscanf(t->name, "bert.encoder.layer.%d.", &layer_no) == 1 && layer_no < s.cut);
    if (!kept) continue;
    const int j = pb_params_find(&src.params, t->name);
    if (j < 0 || src.params.t[j].numel != t->numel) {
      rc = pb_set_error(PB_ERR_SHAPE, "compress: tensor %s differs in the source", t->name);
      goto done;
    }
    memcpy(t->data, src.params.t[j].data, sizeof(float) * t->numel);
  }
  if (is_file)
    for (int i = 0; i < s.n; i++) {
      memcpy(pb_w(&dst, pb_latent_weight(&dst, i)), ae.params.t[ae.ew[i]].data,
             sizeof(float) * ae.params.t[ae.ew[i]].numel);
      memcpy(pb_w(&dst, pb_latent_bias(&dst, i)), ae.params.t[ae.eb[i]].data, sizeof(float) * ae.params.t[ae.eb[i]].numel);
    }
  if (proj) { /* W' = E W D, b' = E b, gains diag(E diag(g) D); FFN in W D, out E W */
    const float *E = ae.params.t[ae.ew[0]].data, *D = ae.params.t[ae.dw[0]].data;
    static const char *sq[] = {"attention.self.query", "attention.self.key", "attention.self.value",
                               "attention.output.dense"};
    char nm[2 * PB_NAME_MAX + 64];
    for (int l = s.cut; !rc && l < cfg->layers; l++) {
#define NM(x) (snprintf(nm, sizeof nm, "bert.encoder.layer.%d.%s", l, x), nm)
      for (int q = 0; !rc && q < 4; q++) {
        char wn[PB_NAME_MAX], bn[PB_NAME_MAX];
        snprintf(wn, sizeof wn, "%s.weight", sq[q]);
        snprintf(bn, sizeof bn, "%s.bias", sq[q]);
        if (!(rc = project(&dst, &src, NM(wn), E, D, d, dp, 1, 1))) rc = project(&dst, &src, NM(bn), E, D, d, dp, 1, 0);
      }
      if (!rc) rc = project(&dst, &src, NM("intermediate.dense.weight"), E, D, d, dp, 0, 1);
      if (!rc) rc = project(&dst, &src, NM("intermediate.dense.bias"), E, D, d, dp, 0, 0);
      if (!rc) rc = project(&dst, &src, NM("output.dense.weight"), E, D, d, dp, 1, 0);
      if (!rc) rc = project(&dst, &src, NM("output.dense.bias"), E, D, d, dp, 1, 0);
      if (!rc) rc = project_gain(&dst, &src, NM("attention.output.LayerNorm.weight"), E, D, d, dp);
      if (!rc) rc = project(&dst, &src, NM("attention.output.LayerNorm.bias"), E, D, d, dp, 1, 0);
      if (!rc) rc = project_gain(&dst, &src, NM("output.LayerNorm.weight"), E, D, d, dp);
      if (!rc) rc = project(&dst, &src, NM("output.LayerNorm.bias"), E, D, d, dp, 1, 0);
#undef NM
    }
    if (!rc) rc = project(&dst, &src, "bert.pooler.dense.weight", E, D, d, dp, 1, 1);
    if (!rc) rc = project(&dst, &src, "bert.pooler.dense.bias", E, D, d, dp, 1, 0);
    if (rc) goto done;
  }
  /* the folder holds no task head: every run initialises its own classifier at width d' */
  dst.params.t[dst.cls_w].owner = dst.params.t[dst.cls_b].owner = PB_OWNER_METHOD;
  if ((rc = pb_model_save_hf(&dst, out))) goto done;
  char vpath[1200];
  snprintf(vpath, sizeof vpath, "%s/vocab.txt", out);
  {
    char *vdata;
    size_t vn;
    pb_tokenizer *tk = NULL; /* resolves the vocabulary the source uses (and checks it fits) */
    if ((rc = pb_load_vocab(&bb, cfg, &tk, &info))) goto done;
    pb_tok_free(tk);
    if ((rc = pb_read_file(info.vocab_path, &vdata, &vn))) goto done;
    rc = pb_write_file_atomic(vpath, vdata, vn);
    free(vdata);
    if (rc) goto done;
  }
  dst.params.t[dst.cls_w].owner = dst.params.t[dst.cls_b].owner = PB_OWNER_HEAD;
  const size_t ps = pb_params_count(&src.params, -1, 0, 0), pd = pb_params_count(&dst.params, -1, 0, 0);
  pb_opcounts os = {0}, od = {0};
  if ((rc = pb_model_count(&src, 1, 128, PB_COUNT_INFER, &os)) || (rc = pb_model_count(&dst, 1, 128, PB_COUNT_INFER, &od)))
    goto done;
  const double fs = (double)pb_opcounts_flops(&os, -1), fd = (double)pb_opcounts_flops(&od, -1);
  printf("compress (%s): layers 1..%d at d = %d, map", variant, s.cut, d);
  for (int i = 0; i <= s.n; i++) printf("%s%d", i ? "," : " ", s.widths[i]);
  printf(" (%s, %s, %zu parameters), layers %d..%d at d' = %d (%d heads, FFN %d), init %s\n",
         s.form ? "nonlinear" : "linear", s.trainable ? "trained with the task" : "frozen", pb_latent_map_params(&s),
         s.cut + 1, cfg->layers, dp, s.heads, s.ffn, init);
  if (is_file) { /* what the map's file measured when it was made */
    const char *rel = pb_kv_get(meta, nmeta, "rel_err_heldout"), *kept = pb_kv_get(meta, nmeta, "variance_kept");
    printf("  %s: held-out reconstruction error %s of the variance", aefile, rel ? rel : "?");
    if (ae.pca && kept) printf(", variance kept %s", kept);
    printf("\n");
  }
  printf("  parameters %zu -> %zu (%.4f); inference FLOPs per example at T = 128: %.4g -> %.4g (%.4f)\n  written %s\n",
         ps, pd, (double)pd / (double)ps, fs, fd, fd / fs, out);
done:
  if (rc) fprintf(stderr, "peftbench compress: %s\n", pb_last_error());
  pb_autoenc_free(&ae);
  pb_kv_free(meta, nmeta);
  if (built) pb_model_free(&src);
  pb_model_free(&dst);
  return rc == PB_ERR_ARG ? 2 : rc ? 1 : 0;
}
