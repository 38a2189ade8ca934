/* Argument checks shared by the backends (kernels/backend.c): every op validates its
 * sizes and pointers the same way and names itself in the message. */
#ifndef AAL_BACKEND_CHECK_H
#define AAL_BACKEND_CHECK_H

#include <stddef.h>

#include "kernels/backend.h"

/* cs must be what aal_conv_shape_init makes (positive sizes, p and q consistent). */
int aal_be_check_conv(const aal_conv_shape *cs, const char *op, aal_error *err);
/* Each of the count pointers (variadic, const void *) must be non-NULL; names are
 * given as one comma-separated string ("x, w, y") for the message. */
int aal_be_check_ptrs(const char *op, const char *names, aal_error *err, int count, ...);
/* value must be >= 1: "op: n is 0 (must be >= 1)". */
int aal_be_check_pos(const char *op, const char *name, long value, aal_error *err);
/* n elements of elem bytes: 0 < n and n * elem does not overflow. */
int aal_be_check_count(const char *op, size_t n, size_t elem, aal_error *err);
/* Max pooling's geometry: n, c, h, w >= 1, k >= 1, stride >= 1, 0 <= pad <= k/2 and a
 * non-empty output, whose size goes to *p, *q (aal_pool_out); n*c*h*w must not
 * overflow a size_t of floats. */
int aal_be_check_pool2d(const char *op, int n, int c, int h, int w, int k, int stride, int pad,
                        int *p, int *q, aal_error *err);

#endif
