/* Batch assembly (SPEC section 6): uint8 CHW images -> a double tensor [N, 3, 64, 64],
 * with random crop (4-pixel zero padding) and horizontal flip for training, and the
 * per-channel normalisation for both training and evaluation.
 *
 * The padding is uint8 0 (black) before normalisation, as torchvision's
 * RandomCrop(64, padding=4) pads the image before ToTensor/Normalize; a padded pixel
 * therefore normalises to -mean[c]/std[c], not to 0. */
#include "sim/data/data.h"

#include <string.h>

/* The SPEC's constants in units of 1e-4, exactly (AAL_AUGMENT_MEAN_R = 0.4802, ...). */
static const long aug_mean_e4[3] = {4802, 4481, 3975};
static const long aug_std_e4[3] = {2770, 2691, 2821};

/* (v/255 - m/1e4) / (s/1e4) = (1e4 v - 255 m) / (255 s): an integer over an integer,
 * both exact in double, so one IEEE division gives the correctly rounded value of the
 * normalisation with the decimal constants.  The textbook ((double)v/255 - mean)/std
 * rounds v/255 and the mean first and, where v/255 is close to the mean, the cancellation
 * turns those roundings into errors of hundreds of ulps. */
double aal_augment_normalise(int c, uint8_t v)
{
  return (double)(10000L * v - 255L * aug_mean_e4[c]) / (double)(255L * aug_std_e4[c]);
}

/* lut[c][v] = aal_augment_normalise(c, v): the same expression, so the same bits. */
typedef struct {
  double v[3][256];
} norm_lut;

static void lut_init(norm_lut *l)
{
  for (int c = 0; c < 3; c++)
    for (int v = 0; v < 256; v++)
      l->v[c][v] = aal_augment_normalise(c, (uint8_t)v);
}

static void augment_lut(const norm_lut *l, const uint8_t *src, int oy, int ox, int flip,
                        double *dst)
{
  const int S = AAL_DATA_SIZE, P = AAL_AUGMENT_PAD;
  const size_t plane = (size_t)S * S;
  for (int c = 0; c < 3; c++) {
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

void aal_augment_image(const uint8_t *src, int oy, int ox, int flip, double *dst)
{
  norm_lut l;
  lut_init(&l);
  augment_lut(&l, src, oy, ox, flip, dst);
}

static int check_batch(const uint8_t *images, const int *labels, size_t n_images,
                       const size_t *idx, size_t batch, const aal_tensor *out,
                       const int *labels_out, aal_error *err)
{
  if (images == NULL || idx == NULL)
    return aal_fail(err, AAL_EINVAL, "batch: images or indices missing");
  if (labels_out != NULL && labels == NULL)
    return aal_fail(err, AAL_EINVAL, "batch: labels requested but no labels given");
  int rc = aal_tensor_require(out, 4, AAL_F64, "batch output", err);
  if (rc != AAL_OK)
    return rc;
  if (out->shape[0] != batch || out->shape[1] != 3 || out->shape[2] != AAL_DATA_SIZE ||
      out->shape[3] != AAL_DATA_SIZE) {
    char s[64];
    aal_tensor_shape_str(out, s, sizeof s);
    return aal_fail(err, AAL_ESHAPE, "batch output is %s, expected %zux3x%dx%d", s, batch,
                    AAL_DATA_SIZE, AAL_DATA_SIZE);
  }
  for (size_t b = 0; b < batch; b++)
    if (idx[b] >= n_images)
      return aal_fail(err, AAL_EINVAL, "batch: index %zu (position %zu) is beyond the %zu "
                      "images", idx[b], b, n_images);
  return AAL_OK;
}

int aal_augment_train_batch(const uint8_t *images, const int *labels, size_t n_images,
                            const size_t *idx, size_t batch, gsl_rng *rng,
                            aal_tensor *out, int *labels_out, aal_error *err)
{
  if (rng == NULL)
    return aal_fail(err, AAL_EINVAL, "batch: no random generator");
  const int rc = check_batch(images, labels, n_images, idx, batch, out, labels_out, err);
  if (rc != AAL_OK)
    return rc;
  norm_lut l;
  lut_init(&l);
  for (size_t b = 0; b < batch; b++) {
    const int oy = (int)gsl_rng_uniform_int(rng, 2 * AAL_AUGMENT_PAD + 1);
    const int ox = (int)gsl_rng_uniform_int(rng, 2 * AAL_AUGMENT_PAD + 1);
    const int flip = (int)gsl_rng_uniform_int(rng, 2);
    augment_lut(&l, images + idx[b] * AAL_DATA_IMAGE_BYTES, oy, ox, flip,
                out->data + b * AAL_DATA_IMAGE_BYTES);
    if (labels_out != NULL)
      labels_out[b] = labels[idx[b]];
  }
  return AAL_OK;
}

int aal_augment_eval_batch(const uint8_t *images, const int *labels, size_t n_images,
                           const size_t *idx, size_t batch, aal_tensor *out,
                           int *labels_out, aal_error *err)
{
  const int rc = check_batch(images, labels, n_images, idx, batch, out, labels_out, err);
  if (rc != AAL_OK)
    return rc;
  norm_lut l;
  lut_init(&l);
  for (size_t b = 0; b < batch; b++) {
    const uint8_t *src = images + idx[b] * AAL_DATA_IMAGE_BYTES;
    double *dst = out->data + b * AAL_DATA_IMAGE_BYTES;
    for (size_t i = 0; i < AAL_DATA_IMAGE_BYTES; i++)
      dst[i] = l.v[i / ((size_t)AAL_DATA_SIZE * AAL_DATA_SIZE)][src[i]];
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
