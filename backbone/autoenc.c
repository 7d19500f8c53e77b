/* Autoencoders on hidden states and their PCA (see autoenc.h). */
#include "backbone/autoenc.h"

#include <cblas.h>
#include <lapacke.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "backbone/ops.h"
#include "util/rng.h"
#include "util/status.h"

static int check_widths(int n, const int *w, int form) {
  if (n < 1 || n > PB_LATENT_MAX_MAPS)
    return pb_set_error(PB_ERR_ARG, "autoencoder: %d layers per half (1..%d)", n, PB_LATENT_MAX_MAPS);
  if (form != PB_LATENT_LINEAR && form != PB_LATENT_NONLINEAR)
    return pb_set_error(PB_ERR_ARG, "autoencoder: unknown form %d", form);
  for (int i = 1; i <= n; i++)
    if (w[i] < 1 || w[i] >= w[i - 1])
      return pb_set_error(PB_ERR_ARG, "autoencoder: widths must decrease strictly (width %d after %d)", w[i], w[i - 1]);
  return PB_OK;
}

/* declares the 4n tensors (no memory) */
static int declare(pb_autoenc *a, int cut, int n, const int *widths, int form) {
  memset(a, 0, sizeof *a);
  int rc = check_widths(n, widths, form);
  if (rc) return rc;
  a->cut = cut, a->n = n, a->form = form;
  for (int i = 0; i <= n; i++) a->widths[i] = widths[i], a->dwidths[i] = widths[n - i];
  for (int i = 0; i < n; i++) {
    a->eact[i] = pb_latent_act(form, i, n);
    a->dact[i] = form == PB_LATENT_LINEAR || i == n - 1 ? PB_ACT_IDENTITY : PB_ACT_RELU;
  }
  for (int half = 0; half < 2; half++)
    for (int i = 0; i < n; i++) {
      const int *w = half ? a->dwidths : a->widths;
      const int sh[2] = {w[i + 1], w[i]};
      char name[64];
      snprintf(name, sizeof name, "%s.%d.weight", half ? "decoder" : "encoder", i);
      int wi = pb_params_add(&a->params, name, PB_OWNER_METHOD, 2, sh, PB_INIT_NORMAL, (float)(1.0 / sqrt(w[i])));
      snprintf(name, sizeof name, "%s.%d.bias", half ? "decoder" : "encoder", i);
      int bi = pb_params_add(&a->params, name, PB_OWNER_METHOD, 1, sh, PB_INIT_ZERO, 0);
      if (wi < 0 || bi < 0) return wi < 0 ? wi : bi;
      a->params.t[wi].trainable = a->params.t[bi].trainable = 1;
      if (half) a->dw[i] = wi, a->db[i] = bi;
      else a->ew[i] = wi, a->eb[i] = bi;
    }
  return PB_OK;
}

int pb_autoenc_create(pb_autoenc *a, int cut, int n, const int *widths, int form, uint64_t seed) {
  int rc = declare(a, cut, n, widths, form);
  if (!rc) rc = pb_params_alloc(&a->params);
  if (rc) {
    pb_params_free(&a->params);
    return rc;
  }
  pb_rng r;
  pb_rng_seed(&r, seed);
  pb_params_init(&a->params, &r);
  return PB_OK;
}

void pb_autoenc_free(pb_autoenc *a) {
  pb_params_free(&a->params);
  memset(a, 0, sizeof *a);
}

/* the two halves as dense stacks */
typedef struct {
  float *W[PB_LATENT_MAX_MAPS], *b[PB_LATENT_MAX_MAPS], *dW[PB_LATENT_MAX_MAPS], *db[PB_LATENT_MAX_MAPS];
} stack_ptrs;
static pb_mlp half(pb_autoenc *a, int dec, stack_ptrs *p) {
  for (int i = 0; i < a->n; i++) {
    pb_tensor *tw = &a->params.t[dec ? a->dw[i] : a->ew[i]], *tb = &a->params.t[dec ? a->db[i] : a->eb[i]];
    p->W[i] = tw->data, p->b[i] = tb->data, p->dW[i] = tw->grad, p->db[i] = tb->grad;
  }
  return (pb_mlp){.n = a->n, .w = dec ? a->dwidths : a->widths, .act = dec ? a->dact : a->eact, .W = p->W,
                  .b = p->b, .dW = p->dW, .db = p->db};
}

size_t pb_autoenc_work_floats(const pb_autoenc *a, int N) {
  size_t per = 0;
  for (int i = 1; i <= a->n; i++) per += (size_t)a->widths[i] + (size_t)a->dwidths[i];
  return (size_t)N * (per + 3 * (size_t)a->widths[0] + (size_t)a->widths[a->n]);
}

typedef struct {
  float *ez[PB_LATENT_MAX_MAPS], *dz[PB_LATENT_MAX_MAPS], *scr[2], *g, *dcode;
} work_layout;
static work_layout layout(const pb_autoenc *a, float *w, int N) {
  work_layout l;
  size_t off = 0;
  for (int i = 0; i < a->n; i++) l.ez[i] = w + off, off += (size_t)N * a->widths[i + 1];
  for (int i = 0; i < a->n; i++) l.dz[i] = w + off, off += (size_t)N * a->dwidths[i + 1];
  for (int k = 0; k < 2; k++) l.scr[k] = w + off, off += (size_t)N * a->widths[0];
  l.g = w + off, off += (size_t)N * a->widths[0];
  l.dcode = w + off;
  return l;
}

static double forward(pb_autoenc *a, const float *x, int N, work_layout *l) {
  stack_ptrs pe, pd;
  const pb_mlp e = half(a, 0, &pe), d = half(a, 1, &pd);
  pb_mlp_fwd(&e, x, l->ez, N);
  pb_mlp_fwd(&d, l->ez[a->n - 1], l->dz, N);
  return pb_mse_pair_fwd(l->dz[a->n - 1], x, (size_t)N * a->widths[0]);
}

double pb_autoenc_forward(pb_autoenc *a, const float *x, float *y, int N, float *work) {
  work_layout l = layout(a, work, N);
  const double mse = forward(a, x, N, &l);
  if (y) memcpy(y, l.dz[a->n - 1], (size_t)N * a->widths[0] * sizeof(float));
  return mse;
}

double pb_autoenc_loss_grad(pb_autoenc *a, const float *x, int N, float *work) {
  work_layout l = layout(a, work, N);
  const double mse = forward(a, x, N, &l);
  const size_t nd = (size_t)N * a->widths[0];
  memset(l.g, 0, nd * sizeof(float));
  memset(l.dcode, 0, (size_t)N * a->widths[a->n] * sizeof(float));
  pb_mse_pair_bwd(l.g, l.dz[a->n - 1], x, nd, 1.0f);
  stack_ptrs pe, pd;
  const pb_mlp e = half(a, 0, &pe), d = half(a, 1, &pd);
  pb_mlp_bwd(&d, l.ez[a->n - 1], l.dz, l.g, l.dcode, l.scr, N);
  pb_mlp_bwd(&e, x, l.ez, l.dcode, NULL, l.scr, N);
  return mse;
}

double pb_autoenc_mse(pb_autoenc *a, const float *x, int N) {
  const int chunk = 1024;
  float *w = malloc(pb_autoenc_work_floats(a, chunk) * sizeof(float));
  if (!w) return NAN;
  double sum = 0;
  for (int s = 0; s < N; s += chunk) {
    const int n = N - s < chunk ? N - s : chunk;
    sum += pb_autoenc_forward(a, x + (size_t)s * a->widths[0], NULL, n, w) * n;
  }
  free(w);
  return N ? sum / N : 0.0;
}

int pb_autoenc_train(pb_autoenc *a, const float *x, int N, const pb_autoenc_train_opts *o, double *final_mse) {
  if (N < 1 || o->batch < 1 || o->steps < 1)
    return pb_set_error(PB_ERR_ARG, "autoencoder: %d rows, batch %d, %d steps (all must be >= 1)", N, o->batch, o->steps);
  const int B = o->batch < N ? o->batch : N, d = a->widths[0];
  int *order = malloc(sizeof(int) * (size_t)N);
  float *xb = malloc(sizeof(float) * (size_t)B * d), *w = malloc(pb_autoenc_work_floats(a, B) * sizeof(float));
  if (!order || !xb || !w) {
    free(order), free(xb), free(w);
    return pb_set_error(PB_ERR_NOMEM, "autoencoder: out of memory");
  }
  pb_adamw opt;
  pb_adamw_defaults(&opt);
  opt.lr = o->lr;
  opt.weight_decay = 0;
  opt.warmup_steps = o->steps / 20;
  opt.total_steps = 0;
  pb_rng r;
  pb_rng_seed(&r, o->seed);
  int pos = N, rc = PB_OK;
  double ema = -1;
  for (int t = 1; t <= o->steps && !rc; t++) {
    for (int i = 0; i < B; i++) {
      if (pos == N) { /* a new epoch: Fisher-Yates */
        for (int j = 0; j < N; j++) order[j] = j;
        for (int j = N - 1; j > 0; j--) {
          const int k = (int)pb_rng_below(&r, (uint64_t)j + 1), tmp = order[j];
          order[j] = order[k], order[k] = tmp;
        }
        pos = 0;
      }
      memcpy(xb + (size_t)i * d, x + (size_t)order[pos++] * d, sizeof(float) * d);
    }
    pb_params_zero_grad(&a->params);
    const double mse = pb_autoenc_loss_grad(a, xb, B, w);
    if (!isfinite(mse)) {
      rc = pb_set_error(PB_ERR_NUMERIC, "autoencoder: training diverged at step %d (MSE %g): try a lower --lr", t, mse);
      break;
    }
    ema = ema < 0 ? mse : 0.98 * ema + 0.02 * mse;
    rc = pb_adamw_step(&a->params, &opt, t);
    if (!o->quiet && (t % 500 == 0 || t == o->steps))
      fprintf(stderr, "autoencoder: step %d/%d  MSE %.5f (running mean)\n", t, o->steps, ema);
  }
  free(order), free(xb), free(w);
  if (!rc && final_mse) *final_mse = pb_autoenc_mse(a, x, N);
  return rc;
}

/* ------------------------------------------------------------------ PCA */

int pb_pca(const float *x, int N, int d, int k, float *mean, float *comps, double *eig, double *kept) {
  if (N < 2 || d < 1 || k < 1 || k > d)
    return pb_set_error(PB_ERR_ARG, "pca: %d rows of width %d, %d components (needs 2+ rows and 1 <= k <= d)", N, d, k);
  double *mu = calloc((size_t)d, sizeof(double)), *xc = malloc(sizeof(double) * (size_t)N * d);
  double *C = calloc((size_t)d * d, sizeof(double)), *ev = malloc(sizeof(double) * (size_t)d);
  int rc = PB_OK;
  if (!mu || !xc || !C || !ev) {
    rc = pb_set_error(PB_ERR_NOMEM, "pca: out of memory");
    goto done;
  }
  for (int i = 0; i < N; i++)
    for (int j = 0; j < d; j++) mu[j] += x[(size_t)i * d + j];
  for (int j = 0; j < d; j++) mu[j] /= N;
  for (int i = 0; i < N; i++)
    for (int j = 0; j < d; j++) xc[(size_t)i * d + j] = x[(size_t)i * d + j] - mu[j];
  /* C = xc^T xc / N (upper triangle) */
  cblas_dsyrk(CblasRowMajor, CblasUpper, CblasTrans, d, N, 1.0 / N, xc, d, 0.0, C, d);
  const lapack_int info = LAPACKE_dsyevd(LAPACK_ROW_MAJOR, 'V', 'U', d, C, d, ev); /* ascending; columns */
  if (info != 0) {
    rc = pb_set_error(PB_ERR_LIB, "pca: LAPACKE_dsyevd returned %d", (int)info);
    goto done;
  }
  double total = 0, top = 0;
  for (int j = 0; j < d; j++) total += ev[j] > 0 ? ev[j] : 0;
  for (int c = 0; c < k; c++) {
    const int col = d - 1 - c;
    top += ev[col] > 0 ? ev[col] : 0;
    int big = 0; /* sign: the largest-magnitude entry positive */
    for (int j = 1; j < d; j++)
      if (fabs(C[(size_t)j * d + col]) > fabs(C[(size_t)big * d + col])) big = j;
    const double s = C[(size_t)big * d + col] < 0 ? -1.0 : 1.0;
    for (int j = 0; j < d; j++) comps[(size_t)c * d + j] = (float)(s * C[(size_t)j * d + col]);
  }
  for (int j = 0; j < d; j++) {
    mean[j] = (float)mu[j];
    if (eig) eig[j] = ev[d - 1 - j];
  }
  *kept = total > 0 ? top / total : 1.0;
done:
  free(mu), free(xc), free(C), free(ev);
  return rc;
}

int pb_autoenc_from_pca(pb_autoenc *a, int cut, int d, int k, const float *mean, const float *comps) {
  const int w[2] = {d, k};
  int rc = pb_autoenc_create(a, cut, 1, w, PB_LATENT_LINEAR, 0);
  if (rc) return rc;
  a->pca = 1;
  float *We = a->params.t[a->ew[0]].data, *be = a->params.t[a->eb[0]].data;
  float *Wd = a->params.t[a->dw[0]].data, *bd = a->params.t[a->db[0]].data;
  for (int c = 0; c < k; c++) {
    double s = 0;
    for (int j = 0; j < d; j++) {
      We[(size_t)c * d + j] = comps[(size_t)c * d + j];
      Wd[(size_t)j * k + c] = comps[(size_t)c * d + j];
      s += (double)comps[(size_t)c * d + j] * mean[j];
    }
    be[c] = (float)-s;
  }
  memcpy(bd, mean, sizeof(float) * d);
  return PB_OK;
}

/* ------------------------------------------------------------------ files */

int pb_autoenc_save(const pb_autoenc *a, const char *path, const pb_kv *extra, int n_extra) {
  char cut[16], widths[128];
  snprintf(cut, sizeof cut, "%d", a->cut);
  size_t o = 0;
  for (int i = 0; i <= a->n; i++) o += (size_t)snprintf(widths + o, sizeof widths - o, "%s%d", i ? "," : "", a->widths[i]);
  pb_kv *meta = calloc((size_t)n_extra + 6, sizeof *meta);
  pb_st_wtensor *t = calloc((size_t)a->params.n, sizeof *t);
  if (!meta || !t) {
    free(meta), free(t);
    return pb_set_error(PB_ERR_NOMEM, "%s: out of memory", path);
  }
  const char *fixed[6][2] = {{"format", PB_AUTOENC_FORMAT}, {"format_version", "1"}, {"cut", cut},
                             {"widths", widths}, {"form", a->form ? "nonlinear" : "linear"},
                             {"variant", a->pca ? "pca" : "ae"}};
  for (int i = 0; i < 6; i++) meta[i].key = (char *)fixed[i][0], meta[i].value = (char *)fixed[i][1];
  for (int i = 0; i < n_extra; i++) meta[6 + i] = extra[i];
  for (int i = 0; i < a->params.n; i++) {
    const pb_tensor *x = &a->params.t[i];
    t[i] = (pb_st_wtensor){.name = x->name, .ndim = x->ndim, .shape = x->shape, .data = x->data};
  }
  const int rc = pb_st_write(path, meta, 6 + n_extra, t, a->params.n, PB_ST_F32);
  free(meta), free(t);
  return rc;
}

int pb_autoenc_load(pb_autoenc *a, const char *path, pb_kv **meta_out, int *n_meta_out) {
  memset(a, 0, sizeof *a);
  pb_st_file f;
  int rc = pb_st_open(&f, path);
  if (rc) return rc;
  const char *fmt = pb_kv_get(f.meta, f.n_meta, "format"), *cut = pb_kv_get(f.meta, f.n_meta, "cut");
  const char *ws = pb_kv_get(f.meta, f.n_meta, "widths"), *form = pb_kv_get(f.meta, f.n_meta, "form");
  const char *var = pb_kv_get(f.meta, f.n_meta, "variant");
  int w[PB_LATENT_MAX_MAPS + 2], n = 0, k = 0, fm = -1;
  char *end;
  if (!fmt || strcmp(fmt, PB_AUTOENC_FORMAT) != 0) {
    rc = pb_set_error(PB_ERR_FORMAT, "%s: not a peftbench autoencoder file (metadata format is %s)", path,
                      fmt ? fmt : "absent");
    goto done;
  }
  for (const char *p = ws ? ws : ""; *p && n < PB_LATENT_MAX_MAPS + 2; p = *end == ',' ? end + 1 : end) {
    const long v = strtol(p, &end, 10);
    if (end == p || v < 1 || v > 1 << 20 || (*end && *end != ',')) {
      n = -1;
      break;
    }
    w[n++] = (int)v;
  }
  k = cut ? (int)strtol(cut, &end, 10) : -1;
  if (form) fm = strcmp(form, "linear") == 0 ? PB_LATENT_LINEAR : strcmp(form, "nonlinear") == 0 ? PB_LATENT_NONLINEAR : -1;
  if (n < 2 || n > PB_LATENT_MAX_MAPS + 1 || k < 1 || fm < 0 || !var || (strcmp(var, "ae") && strcmp(var, "pca"))) {
    rc = pb_set_error(PB_ERR_FORMAT, "%s: autoencoder metadata: widths '%s', cut '%s', form '%s', variant '%s' (expected "
                      "2..%d widths, a cut >= 1, linear|nonlinear, ae|pca)", path, ws ? ws : "", cut ? cut : "",
                      form ? form : "", var ? var : "", PB_LATENT_MAX_MAPS + 1);
    goto done;
  }
  if ((rc = declare(a, k, n - 1, w, fm))) {
    rc = pb_set_error(PB_ERR_FORMAT, "%s: %s", path, pb_last_error());
    goto done;
  }
  a->pca = strcmp(var, "pca") == 0;
  if ((rc = pb_params_alloc(&a->params))) goto done;
  for (int i = 0; i < a->params.n && !rc; i++) {
    pb_tensor *t = &a->params.t[i];
    const int j = pb_st_find(&f, t->name);
    if (j < 0) {
      rc = pb_set_error(PB_ERR_NOTFOUND, "%s: missing tensor %s", path, t->name);
      break;
    }
    if (f.t[j].ndim != t->ndim || f.t[j].shape[0] != t->shape[0] || (t->ndim == 2 && f.t[j].shape[1] != t->shape[1])) {
      char s[64];
      pb_st_shape_str(&f.t[j], s, sizeof s);
      rc = pb_set_error(PB_ERR_SHAPE, "%s: tensor %s has shape %s, the widths %s need another", path, t->name, s, ws);
      break;
    }
    if ((rc = pb_st_read_f32(&f, j, t->data, t->numel))) break;
    for (size_t e = 0; e < t->numel; e++)
      if (!isfinite(t->data[e])) {
        rc = pb_set_error(PB_ERR_NUMERIC, "%s: tensor %s has a non-finite value at flat index %zu", path, t->name, e);
        break;
      }
  }
  if (!rc && meta_out) {
    *meta_out = calloc((size_t)f.n_meta + 1, sizeof **meta_out);
    if (!*meta_out) rc = pb_set_error(PB_ERR_NOMEM, "%s: out of memory", path);
    for (int i = 0; !rc && i < f.n_meta; i++) {
      (*meta_out)[i].key = strdup(f.meta[i].key), (*meta_out)[i].value = strdup(f.meta[i].value);
    }
    *n_meta_out = f.n_meta;
  }
done:
  pb_st_close(&f);
  if (rc) pb_params_free(&a->params);
  return rc;
}
