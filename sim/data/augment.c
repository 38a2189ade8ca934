/* Batch assembly (SPEC section 6): uint8 CHW images of a data set's geometry -> a double
 * tensor [N, C, S, S], with random crop (4-pixel zero padding) and horizontal flip for
 * training, and the per-channel normalisation for both training and evaluation.
 *
 * The padding is uint8 0 (black) before normalisation, as torchvision's
 * RandomCrop(S, padding=4) pads the image before ToTensor/Normalize; a padded pixel
 * therefore normalises to -mean[c]/std[c], not to 0. */
#include "sim/data/data.h"

#include <string.h>

/* ------------------------------------------------------------------ geometry */

/* The constants of data.h in units of 1e-4, exactly (AAL_AUGMENT_MEAN_R = 0.4802, ...;
 * AAL_FMNIST_MEAN = 0.2860, AAL_FMNIST_STD = 0.3530). */
void aal_data_geom_tiny(aal_data_geom *g)
{
  *g = (aal_data_geom){AAL_TINY_CHANNELS, AAL_TINY_SIZE, 0, {4802, 4481, 3975},
                       {2770, 2691, 2821}};
}

void aal_data_geom_fmnist(aal_data_geom *g)
{
  *g = (aal_data_geom){1, AAL_FMNIST_SIZE, AAL_FMNIST_BORDER, {2860}, {3530}};
}

int aal_data_geom_check(const aal_data_geom *g, aal_error *err)
{
  if (g == NULL)
    return aal_fail(err, AAL_EINVAL, "image geometry missing");
  if (g->channels < 1 || g->channels > AAL_DATA_MAX_CHANNELS)
    return aal_fail(err, AAL_EINVAL, "image geometry: %d channels (1..%d)", g->channels,
                    AAL_DATA_MAX_CHANNELS);
  if (g->size < 1 || g->size > 4096)
    return aal_fail(err, AAL_EINVAL, "image geometry: size %d (1..4096)", g->size);
  if (g->border < 0 || 2 * g->border >= g->size)
    return aal_fail(err, AAL_EINVAL, "image geometry: border %d of a %dx%d image (0..%d)",
                    g->border, g->size, g->size, (g->size - 1) / 2);
  for (int c = 0; c < g->channels; c++)
    if (g->mean_e4[c] < 0 || g->mean_e4[c] > 10000 || g->std_e4[c] < 1 ||
        g->std_e4[c] > 10000)
      return aal_fail(err, AAL_EINVAL, "image geometry: channel %d has mean %ld and std %ld "
                      "(units of 1e-4: 0..10000 and 1..10000)", c, g->mean_e4[c], g->std_e4[c]);
  return AAL_OK;
}

size_t aal_data_geom_bytes(const aal_data_geom *g)
{
  return (size_t)g->channels * (size_t)g->size * (size_t)g->size;
}

/* ------------------------------------------------------------------ normalisation */

/* (v/255 - m/1e4) / (s/1e4) = (1e4 v - 255 m) / (255 s): an integer over an integer,
 * both exact in double, so one IEEE division gives the correctly rounded value of the
 * normalisation with the decimal constants.  The textbook ((double)v/255 - mean)/std
 * rounds v/255 and the mean first and, where v/255 is close to the mean, the cancellation
 * turns those roundings into errors of hundreds of ulps. */
double aal_augment_normalise(const aal_data_geom *g, int c, uint8_t v)
{
  return (double)(10000L * v - 255L * g->mean_e4[c]) / (double)(255L * g->std_e4[c]);
}

/* lut[c][v] = aal_augment_normalise(g, c, v): the same expression, so the same bits. */
typedef struct {
  double v[AAL_DATA_MAX_CHANNELS][256];
} norm_lut;

static void lut_init(norm_lut *l, const aal_data_geom *g)
{
  for (int c = 0; c < g->channels; c++)
    for (int v = 0; v < 256; v++)
      l->v[c][v] = aal_augment_normalise(g, c, (uint8_t)v);
}

static void augment_lut(const norm_lut *l, const aal_data_geom *g, const uint8_t *src, int oy,
                        int ox, int flip, double *dst)
{
  const int S = g->size, P = AAL_AUGMENT_PAD;
  const size_t plane = (size_t)S * S;
  for (int c = 0; c < g->channels; c++) {
    const double zero = l->v[c][0];
    for (int y = 0; y < S; y++) {
      const int sy = y + oy - P;
      double *drow = dst + c * plane + (size_t)y * S;
      if (sy < 0 || sy >= S) {
        for (int x = 0; x < S; x++)
          drow[x] = zero;
        continue;
      }
      const uint8_t *srow = src + c * plane + (size_t)sy * S;
      for (int x = 0; x < S; x++) {
        const int sx = (flip ? S - 1 - x : x) + ox - P;
        drow[x] = sx < 0 || sx >= S ? zero : l->v[c][srow[sx]];
      }
    }
  }
}

void aal_augment_image(const aal_data_geom *g, const uint8_t *src, int oy, int ox, int flip,
                       double *dst)
{
  norm_lut l;
  lut_init(&l, g);
  augment_lut(&l, g, src, oy, ox, flip, dst);
}

static int check_batch(const aal_data_geom *g, const uint8_t *images, const int *labels,
                       size_t n_images, const size_t *idx, size_t batch,
                       const aal_tensor *out, const int *labels_out, aal_error *err)
{
  int rc = aal_data_geom_check(g, err);
  if (rc != AAL_OK)
    return rc;
  if (images == NULL || idx == NULL)
    return aal_fail(err, AAL_EINVAL, "batch: images or indices missing");
  if (labels_out != NULL && labels == NULL)
    return aal_fail(err, AAL_EINVAL, "batch: labels requested but no labels given");
  rc = aal_tensor_require(out, 4, AAL_F64, "batch output", err);
  if (rc != AAL_OK)
    return rc;
  const size_t C = (size_t)g->channels, S = (size_t)g->size;
  if (out->shape[0] != batch || out->shape[1] != C || out->shape[2] != S || out->shape[3] != S) {
    char s[64];
    aal_tensor_shape_str(out, s, sizeof s);
    return aal_fail(err, AAL_ESHAPE, "batch output is %s, expected %zux%zux%zux%zu", s, batch,
                    C, S, S);
  }
  for (size_t b = 0; b < batch; b++)
    if (idx[b] >= n_images)
      return aal_fail(err, AAL_EINVAL, "batch: index %zu (position %zu) is beyond the %zu "
                      "images", idx[b], b, n_images);
  return AAL_OK;
}

int aal_augment_train_batch(const aal_data_geom *g, const uint8_t *images, const int *labels,
                            size_t n_images, const size_t *idx, size_t batch, gsl_rng *rng,
                            aal_tensor *out, int *labels_out, aal_error *err)
{
  if (rng == NULL)
    return aal_fail(err, AAL_EINVAL, "batch: no random generator");
  const int rc = check_batch(g, images, labels, n_images, idx, batch, out, labels_out, err);
  if (rc != AAL_OK)
    return rc;
  const size_t bytes = aal_data_geom_bytes(g);
  norm_lut l;
  lut_init(&l, g);
  for (size_t b = 0; b < batch; b++) {
    /* three draws per image in this order, whatever the geometry (reproducible runs) */
    const int oy = (int)gsl_rng_uniform_int(rng, 2 * AAL_AUGMENT_PAD + 1);
    const int ox = (int)gsl_rng_uniform_int(rng, 2 * AAL_AUGMENT_PAD + 1);
    const int flip = (int)gsl_rng_uniform_int(rng, 2);
    augment_lut(&l, g, images + idx[b] * bytes, oy, ox, flip, out->data + b * bytes);
    if (labels_out != NULL)
      labels_out[b] = labels[idx[b]];
  }
  return AAL_OK;
}

int aal_augment_eval_batch(const aal_data_geom *g, const uint8_t *images, const int *labels,
                           size_t n_images, const size_t *idx, size_t batch, aal_tensor *out,
                           int *labels_out, aal_error *err)
{
  const int rc = check_batch(g, images, labels, n_images, idx, batch, out, labels_out, err);
  if (rc != AAL_OK)
    return rc;
  const size_t bytes = aal_data_geom_bytes(g), plane = (size_t)g->size * (size_t)g->size;
  norm_lut l;
  lut_init(&l, g);
  for (size_t b = 0; b < batch; b++) {
    const uint8_t *src = images + idx[b] * bytes;
    double *dst = out->data + b * bytes;
    for (size_t i = 0; i < bytes; i++)
      dst[i] = l.v[i / plane][src[i]];
    if (labels_out != NULL)
      labels_out[b] = labels[idx[b]];
  }
  return AAL_OK;
}

int aal_augment_epoch_order(size_t n, gsl_rng *rng, size_t *order, aal_error *err)
{
  if (rng == NULL || (order == NULL && n > 0))
    return aal_fail(err, AAL_EINVAL, "epoch order: no generator or no output");
  if (n > (size_t)0xffffffffu)
    return aal_fail(err, AAL_EINVAL, "epoch order: %zu items exceed the generator's range", n);
  for (size_t i = 0; i < n; i++)
    order[i] = i;
  for (size_t i = n; i > 1; i--) {
    const size_t j = (size_t)gsl_rng_uniform_int(rng, (unsigned long)i);
    const size_t t = order[i - 1];
    order[i - 1] = order[j];
    order[j] = t;
  }
  return AAL_OK;
}
