/* Softmax cross-entropy, double precision.
 *   logits, prob, dlogits [N, C];  labels [N] in 0..C-1;  loss scalar (mean over N).
 * Per sample, with mx = max_c logits[n, c] and s = sum_c exp(logits[n, c] - mx) (>= 1):
 *   loss_n = (mx - logits[n, label]) + log(s),   prob[n, c] = exp(logits[n, c] - mx) / s.
 * Writing loss_n this way (rather than logsumexp - logit) keeps it exact when the
 * logits are huge: for equal logits it is log(C) whatever their value. */
#include "sim/layers/layers.h"

#include <math.h>

static int check_labels(const int *labels, size_t n, size_t c, const char *op, aal_error *err)
{
  if (labels == NULL)
    return aal_fail(err, AAL_EINVAL, "%s: labels is NULL", op);
  for (size_t i = 0; i < n; i++)
    if (labels[i] < 0 || (size_t)labels[i] >= c)
      return aal_fail(err, AAL_EINVAL, "%s: sample %zu has label %d, outside 0..%zu", op, i,
                      labels[i], c - 1);
  return AAL_OK;
}

/* Validates row n (finite logits) and returns its loss term; prob row written. */
static int sample_forward(const double *z, size_t c, int label, size_t n, double *prob,
                          double *loss_n, aal_error *err)
{
  double mx = -INFINITY;
  for (size_t k = 0; k < c; k++) {
    if (!isfinite(z[k]))
      return aal_fail(err, AAL_ENUMERIC, "xent forward: sample %zu has non-finite logit %g "
                      "at class %zu", n, z[k], k);
    if (z[k] > mx)
      mx = z[k];
  }
  const double z_label = z[label]; /* read before prob is written: prob may alias z */
  double s = 0.0;
  for (size_t k = 0; k < c; k++) {
    prob[k] = exp(z[k] - mx);
    s += prob[k];
  }
  for (size_t k = 0; k < c; k++)
    prob[k] /= s;
  *loss_n = (mx - z_label) + log(s);
  return AAL_OK;
}

int aal_xent_forward_args(const char *op, const aal_tensor *logits, const int *labels,
                          const double *loss, const aal_tensor *prob, aal_error *err)
{
  int rc;
  if ((rc = aal_tensor_check(logits, AAL_F64, 2, NULL, op, "logits", NULL, err)) != AAL_OK ||
      (rc = aal_tensor_check(prob, AAL_F64, 2, logits, op, "prob", "logits", err)) != AAL_OK)
    return rc;
  if (loss == NULL)
    return aal_fail(err, AAL_EINVAL, "%s: loss is NULL", op);
  return check_labels(labels, logits->shape[0], logits->shape[1], op, err);
}

int aal_xent_backward_args(const char *op, const aal_tensor *prob, const int *labels,
                           const aal_tensor *dlogits, aal_error *err)
{
  int rc;
  if ((rc = aal_tensor_check(prob, AAL_F64, 2, NULL, op, "prob", NULL, err)) != AAL_OK ||
      (rc = aal_tensor_check(dlogits, AAL_F64, 2, prob, op, "dlogits", "prob", err)) != AAL_OK)
    return rc;
  return check_labels(labels, prob->shape[0], prob->shape[1], op, err);
}

int aal_xent_forward(const aal_tensor *logits, const int *labels, double *loss,
                     aal_tensor *prob, aal_error *err)
{
  int rc = aal_xent_forward_args("xent forward", logits, labels, loss, prob, err);
  if (rc != AAL_OK)
    return rc;
  const size_t n = logits->shape[0], c = logits->shape[1];
  double total = 0.0;
  for (size_t i = 0; i < n; i++) {
    double li = 0.0;
    rc = sample_forward(logits->data + i * c, c, labels[i], i, prob->data + i * c, &li, err);
    if (rc != AAL_OK)
      return rc;
    total += li;
  }
  *loss = total / (double)n;
  return AAL_OK;
}

int aal_xent_backward(const aal_tensor *prob, const int *labels, aal_tensor *dlogits,
                      aal_error *err)
{
  int rc = aal_xent_backward_args("xent backward", prob, labels, dlogits, err);
  if (rc != AAL_OK)
    return rc;
  const size_t n = prob->shape[0], c = prob->shape[1];
  const double dn = (double)n; /* divide, not multiply by a rounded 1/N */
  for (size_t i = 0; i < n; i++)
    for (size_t k = 0; k < c; k++) {
      const double onehot = (size_t)labels[i] == k ? 1.0 : 0.0;
      dlogits->data[i * c + k] = (prob->data[i * c + k] - onehot) / dn;
    }
  return AAL_OK;
}
