/* Autoencoders on a backbone's hidden states (latent-space compression, backbone/latent.h), and
 * PCA of the same states.
 *
 * An autoencoder of widths d = w[0] > ... > w[n] = d' is the encoder half of latent.h (tensors
 * "encoder.I.weight" [w[i+1], w[i]] and ".bias") and a mirrored decoder ("decoder.I.weight"
 * [w[n-i-1], w[n-i]] and ".bias"; ReLU between its layers in the nonlinear form, identity on its
 * last). Loss: the reconstruction MSE, mean over rows and columns of (dec(enc(x)) - x)^2.
 * Training: AdamW (no weight decay) on minibatches of rows drawn without replacement per epoch.
 *
 * File (safetensors, F32): the 4n tensors and metadata format "peftbench-autoencoder",
 * format_version "1", cut (the layer whose output it encodes), widths "256,192,128", form
 * (linear | nonlinear), variant (ae | pca), and the caller's pairs (backbone fingerprint,
 * reconstruction errors, ...). */
#ifndef PB_AUTOENC_H
#define PB_AUTOENC_H

#include <stdint.h>

#include "backbone/latent.h"
#include "backbone/params.h"
#include "backbone/safetensors.h"

#define PB_AUTOENC_FORMAT "peftbench-autoencoder"

typedef struct {
  int cut;                                /* k: it encodes the output of layer k (1-based count of layers kept) */
  int n;                                  /* layers per half */
  int widths[PB_LATENT_MAX_MAPS + 1];     /* [n+1] d ... d' */
  int dwidths[PB_LATENT_MAX_MAPS + 1];    /* [n+1] decoder: d' ... d */
  int form;                               /* PB_LATENT_LINEAR | PB_LATENT_NONLINEAR */
  int pca;                                /* made by pb_autoenc_from_pca (variant "pca") */
  int eact[PB_LATENT_MAX_MAPS], dact[PB_LATENT_MAX_MAPS];
  pb_params params;                       /* all 4n tensors, trainable */
  int ew[PB_LATENT_MAX_MAPS], eb[PB_LATENT_MAX_MAPS], dw[PB_LATENT_MAX_MAPS], db[PB_LATENT_MAX_MAPS];
} pb_autoenc;

/* Declares, allocates and initialises (weights normal(0, 1/sqrt(in)), biases 0; seed).
 * PB_ERR_ARG: n outside 1..PB_LATENT_MAX_MAPS, widths not strictly decreasing, bad form. */
int pb_autoenc_create(pb_autoenc *a, int cut, int n, const int *widths, int form, uint64_t seed);
void pb_autoenc_free(pb_autoenc *a);

/* Reconstruction: y [N,d] = dec(enc(x)); work: pb_autoenc_work_floats(a, N) floats. Returns the
 * MSE when loss != 0 (else 0). */
size_t pb_autoenc_work_floats(const pb_autoenc *a, int N);
double pb_autoenc_forward(pb_autoenc *a, const float *x, float *y, int N, float *work);
/* one forward + backward of the MSE on x [N,d]: gradients += (zero them first); returns the MSE */
double pb_autoenc_loss_grad(pb_autoenc *a, const float *x, int N, float *work);
/* MSE over all rows in chunks (no gradients) */
double pb_autoenc_mse(pb_autoenc *a, const float *x, int N);

typedef struct {
  int steps;          /* AdamW steps */
  int batch;          /* rows per step */
  float lr;           /* constant after a 5% linear warm-up */
  uint64_t seed;      /* row order */
  int quiet;          /* no progress on stderr */
} pb_autoenc_train_opts;
/* trains on x [N,d]; *final_mse: the MSE over all N rows afterwards */
int pb_autoenc_train(pb_autoenc *a, const float *x, int N, const pb_autoenc_train_opts *o, double *final_mse);

/* PCA of x [N,d] (double precision covariance (1/N) sum (x - mu)(x - mu)^T, LAPACKE_dsyevd):
 * mean [d], comps [k,d] the top-k eigenvectors as rows (descending eigenvalue; each with its
 * largest-magnitude entry positive), eig [d] all eigenvalues descending (may be NULL);
 * *kept = sum of the top k / sum of all (the variance kept). */
int pb_pca(const float *x, int N, int d, int k, float *mean, float *comps, double *eig, double *kept);
/* a linear autoencoder from a PCA: encoder W = comps, b = -comps mean; decoder W = comps^T,
 * b = mean (reconstruction = the projection onto the top-k subspace) */
int pb_autoenc_from_pca(pb_autoenc *a, int cut, int d, int k, const float *mean, const float *comps);

/* writes the autoencoder (metadata above plus extra [n_extra]; atomically, replacing) */
int pb_autoenc_save(const pb_autoenc *a, const char *path, const pb_kv *extra, int n_extra);
/* reads one; *meta (may be NULL) receives every metadata pair (pb_kv_free). Errors name the
 * file: not an autoencoder file, malformed widths/cut/form, missing or mis-shaped tensor. */
int pb_autoenc_load(pb_autoenc *a, const char *path, pb_kv **meta, int *n_meta);

#endif
