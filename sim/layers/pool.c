/* Global average pool, double precision.
 *   x, dx [N, C, H, W];  y, dy [N, C];  y[n,c] = (1/(H*W)) sum_{h,w} x[n,c,h,w].
 * Backward spreads dy[n,c] / (H*W) over the H*W positions; nothing is saved but the
 * shape of x, which dx carries. */
#include "sim/layers/layers.h"

/* The pooled tensor p [N, C] must match the first two sizes of the map m [N, C, H, W]. */
static int require_pooled(const aal_tensor *p, const aal_tensor *m, const char *op,
                          const char *p_name, const char *m_name, aal_error *err)
{
  if (p->shape[0] != m->shape[0] || p->shape[1] != m->shape[1]) {
    char sp[64], sm[64];
    aal_tensor_shape_str(p, sp, sizeof sp);
    aal_tensor_shape_str(m, sm, sizeof sm);
    return aal_fail(err, AAL_ESHAPE, "%s: %s has shape %s, expected %zux%zu (N x C of %s %s)",
                    op, p_name, sp, m->shape[0], m->shape[1], m_name, sm);
  }
  return AAL_OK;
}

int aal_avgpool_forward_args(const char *op, const aal_tensor *x, const aal_tensor *y,
                             aal_error *err)
{
  int rc;
  if ((rc = aal_tensor_check(x, AAL_F64, 4, NULL, op, "x", NULL, err)) != AAL_OK ||
      (rc = aal_tensor_check(y, AAL_F64, 2, NULL, op, "y", NULL, err)) != AAL_OK)
    return rc;
  return require_pooled(y, x, op, "y", "x", err);
}

int aal_avgpool_backward_args(const char *op, const aal_tensor *dy, const aal_tensor *dx,
                              aal_error *err)
{
  int rc;
  if ((rc = aal_tensor_check(dy, AAL_F64, 2, NULL, op, "dy", NULL, err)) != AAL_OK ||
      (rc = aal_tensor_check(dx, AAL_F64, 4, NULL, op, "dx", NULL, err)) != AAL_OK)
    return rc;
  return require_pooled(dy, dx, op, "dy", "dx", err);
}

int aal_avgpool_forward(const aal_tensor *x, aal_tensor *y, aal_error *err)
{
  int rc = aal_avgpool_forward_args("avgpool forward", x, y, err);
  if (rc != AAL_OK)
    return rc;
  const size_t planes = x->shape[0] * x->shape[1], hw = x->shape[2] * x->shape[3];
  for (size_t p = 0; p < planes; p++) {
    const double *px = x->data + p * hw;
    double s = 0.0;
    for (size_t k = 0; k < hw; k++)
      s += px[k];
    y->data[p] = s / (double)hw;
  }
  return AAL_OK;
}

int aal_avgpool_backward(const aal_tensor *dy, aal_tensor *dx, aal_error *err)
{
  int rc = aal_avgpool_backward_args("avgpool backward", dy, dx, err);
  if (rc != AAL_OK)
    return rc;
  const size_t planes = dx->shape[0] * dx->shape[1], hw = dx->shape[2] * dx->shape[3];
  for (size_t p = 0; p < planes; p++) {
    const double g = dy->data[p] / (double)hw;
    double *pdx = dx->data + p * hw;
    for (size_t k = 0; k < hw; k++)
      pdx[k] = g;
  }
  return AAL_OK;
}
