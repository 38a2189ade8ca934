/* The oracle: convolution straight from the formula in sim/layers/conv.h,
 *   y[n,k,p,q] = sum_{c,r,s} w[k,c,r,s] * x[n, c, p*stride - pad + r, q*stride - pad + s],
 * with plain loops, no BLAS and no cleverness.  Slow on purpose; used by the tests. */
#include "sim/layers/conv.h"

#include <string.h>

#include "sim/layers/conv_check.h"

/* The input row (or column) read by output position o and kernel tap t, or -1 when it
 * falls in the zero padding.  `len` is H (or W). */
static long tap(const aal_conv2d_dims *d, size_t o, size_t t, size_t len)
{
  const long i = (long)(o * d->stride + t) - (long)d->pad;
  return (i >= 0 && i < (long)len) ? i : -1;
}

int aal_conv2d_direct_forward(const aal_tensor *x, const aal_tensor *w, int stride, int pad,
                              aal_tensor *y, aal_error *err)
{
  aal_conv2d_dims d;
  const int rc = aal_conv2d_check_forward("conv2d_direct forward", x, w, stride, pad, y, &d,
                                          err);
  if (rc != AAL_OK)
    return rc;
  for (size_t n = 0; n < d.n; n++)
    for (size_t k = 0; k < d.k; k++)
      for (size_t p = 0; p < d.p; p++)
        for (size_t q = 0; q < d.q; q++) {
          double sum = 0.0;
          for (size_t c = 0; c < d.c; c++)
            for (size_t r = 0; r < d.r; r++)
              for (size_t s = 0; s < d.s; s++) {
                const long h = tap(&d, p, r, d.h), v = tap(&d, q, s, d.w);
                if (h >= 0 && v >= 0)
                  sum += w->data[aal_idx4(w, k, c, r, s)] *
                         x->data[aal_idx4(x, n, c, (size_t)h, (size_t)v)];
              }
          y->data[aal_idx4(y, n, k, p, q)] = sum;
        }
  return AAL_OK;
}

/* dx[n,c,h,v] = sum over every (k,p,q,r,s) whose tap reads x[n,c,h,v] of
 * w[k,c,r,s] * dy[n,k,p,q]: the forward loops with the product scattered back. */
int aal_conv2d_direct_backward_data(const aal_tensor *dy, const aal_tensor *w, int stride,
                                    int pad, aal_tensor *dx, aal_error *err)
{
  aal_conv2d_dims d;
  const int rc = aal_conv2d_check_backward_data("conv2d_direct backward_data", dy, w, stride,
                                                pad, dx, &d, err);
  if (rc != AAL_OK)
    return rc;
  memset(dx->data, 0, dx->size * sizeof(double));
  for (size_t n = 0; n < d.n; n++)
    for (size_t k = 0; k < d.k; k++)
      for (size_t p = 0; p < d.p; p++)
        for (size_t q = 0; q < d.q; q++)
          for (size_t c = 0; c < d.c; c++)
            for (size_t r = 0; r < d.r; r++)
              for (size_t s = 0; s < d.s; s++) {
                const long h = tap(&d, p, r, d.h), v = tap(&d, q, s, d.w);
                if (h >= 0 && v >= 0)
                  dx->data[aal_idx4(dx, n, c, (size_t)h, (size_t)v)] +=
                      w->data[aal_idx4(w, k, c, r, s)] * dy->data[aal_idx4(dy, n, k, p, q)];
              }
  return AAL_OK;
}

/* dw[k,c,r,s] = sum_{n,p,q} dy[n,k,p,q] * x[n, c, p*stride - pad + r, q*stride - pad + s]. */
int aal_conv2d_direct_backward_filter(const aal_tensor *x, const aal_tensor *dy, int stride,
                                      int pad, aal_tensor *dw, aal_error *err)
{
  aal_conv2d_dims d;
  const int rc = aal_conv2d_check_backward_filter("conv2d_direct backward_filter", x, dy,
                                                  stride, pad, dw, &d, err);
  if (rc != AAL_OK)
    return rc;
  for (size_t k = 0; k < d.k; k++)
    for (size_t c = 0; c < d.c; c++)
      for (size_t r = 0; r < d.r; r++)
        for (size_t s = 0; s < d.s; s++) {
          double sum = 0.0;
          for (size_t n = 0; n < d.n; n++)
            for (size_t p = 0; p < d.p; p++)
              for (size_t q = 0; q < d.q; q++) {
                const long h = tap(&d, p, r, d.h), v = tap(&d, q, s, d.w);
                if (h >= 0 && v >= 0)
                  sum += dy->data[aal_idx4(dy, n, k, p, q)] *
                         x->data[aal_idx4(x, n, c, (size_t)h, (size_t)v)];
              }
          dw->data[aal_idx4(dw, k, c, r, s)] = sum;
        }
  return AAL_OK;
}
