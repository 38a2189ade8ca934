/* SGD with momentum and weight decay, PyTorch's formula, the one reference of the
 * update (the reference op table, the ref backend and the trainer all run this loop):
 *   d = g + wd w;  buf = first ? d : momentum buf + d;  w -= lr buf
 * (without a momentum buffer: w -= lr d). */
#include "sim/layers/layers.h"

void aal_sgd_update_array(size_t n, double *w, const double *g, double *buf, double lr,
                          double momentum, double weight_decay, int first)
{
  for (size_t k = 0; k < n; k++) {
    double d = g[k] + weight_decay * w[k];
    if (buf != NULL) {
      buf[k] = first ? d : momentum * buf[k] + d;
      d = buf[k];
    }
    w[k] -= lr * d;
  }
}

int aal_sgd_args(const char *op, const aal_tensor *w, const aal_tensor *g,
                 const aal_tensor *buf, double lr, double momentum, double weight_decay,
                 aal_error *err)
{
  if (w == NULL || g == NULL)
    return aal_fail(err, AAL_EINVAL, "%s: NULL parameter or gradient", op);
  if (w->dtype != AAL_F64 || g->dtype != AAL_F64 || w->size != g->size ||
      (buf != NULL && (buf->dtype != AAL_F64 || buf->size != w->size)))
    return aal_fail(err, AAL_ESHAPE, "%s: parameter, gradient and momentum buffer differ in "
                    "size or type", op);
  if (!(lr >= 0) || !(momentum >= 0 && momentum < 1) || !(weight_decay >= 0))
    return aal_fail(err, AAL_EINVAL, "%s: lr %g, momentum %g, weight decay %g out of range",
                    op, lr, momentum, weight_decay);
  return AAL_OK;
}

int aal_sgd_update(aal_tensor *w, const aal_tensor *g, aal_tensor *buf, double lr,
                   double momentum, double weight_decay, int first, aal_error *err)
{
  int rc = aal_sgd_args("sgd update", w, g, buf, lr, momentum, weight_decay, err);
  if (rc != AAL_OK)
    return rc;
  aal_sgd_update_array(w->size, w->data, g->data, buf ? buf->data : NULL, lr, momentum,
                       weight_decay, first);
  return AAL_OK;
}
