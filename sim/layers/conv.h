/* 2-d convolution, NCHW activations and OIHW weights, no bias.
 *
 *   x  [N, C, H, W]      w  [K, C, R, S]      y  [N, K, P, Q]
 *   P = (H + 2*pad - R) / stride + 1,  Q = (W + 2*pad - S) / stride + 1
 *   y[n,k,p,q] = sum_{c,r,s} w[k,c,r,s] * x[n, c, p*stride - pad + r, q*stride - pad + s]
 *   (x is zero outside its bounds)
 *
 * Two independent implementations with identical signatures:
 *   aal_conv2d_*         im2col + cblas_dgemm: what the trainer uses;
 *   aal_conv2d_direct_*  plain loops straight from the formula: the oracle.
 * Outputs are allocated by the caller with the exact shape and are overwritten
 * (never accumulated into).  Every function validates shapes, stride >= 1,
 * pad >= 0 and P, Q >= 1, and returns an aal_status with a message in err. */
#ifndef AAL_CONV2D_H
#define AAL_CONV2D_H

#include "sim/core/tensor.h"

/* Output shape {N, K, P, Q} of conv(x, w) or an error naming the bad size. */
int aal_conv2d_output_shape(const aal_tensor *x, const aal_tensor *w, int stride, int pad,
                            long y_shape[4], aal_error *err);

int aal_conv2d_forward(const aal_tensor *x, const aal_tensor *w, int stride, int pad,
                       aal_tensor *y, aal_error *err);
/* dx = dL/dx given dy = dL/dy; dx has x's shape. */
int aal_conv2d_backward_data(const aal_tensor *dy, const aal_tensor *w, int stride, int pad,
                             aal_tensor *dx, aal_error *err);
/* dw = dL/dw given the layer input x (or the alternative activation r that a
 * learning rule substitutes for it) and dy. */
int aal_conv2d_backward_filter(const aal_tensor *x, const aal_tensor *dy, int stride, int pad,
                               aal_tensor *dw, aal_error *err);

int aal_conv2d_direct_forward(const aal_tensor *x, const aal_tensor *w, int stride, int pad,
                              aal_tensor *y, aal_error *err);
int aal_conv2d_direct_backward_data(const aal_tensor *dy, const aal_tensor *w, int stride,
                                    int pad, aal_tensor *dx, aal_error *err);
int aal_conv2d_direct_backward_filter(const aal_tensor *x, const aal_tensor *dy, int stride,
                                      int pad, aal_tensor *dw, aal_error *err);

#endif
