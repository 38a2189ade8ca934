/* Transpose of the last two dimensions, double precision: x [B, A, C] -> y [B, C, A],
 * y[b, c, a] = x[b, a, c].  Its own backward: dx = transpose(dy) (dy [B, C, A] ->
 * dx [B, A, C]).  MLP-Mixer's token mixing is transpose, linear over T, transpose
 * (sim/layers/transformer.h).  Nothing is saved. */
#include "sim/layers/transformer.h"

int aal_transpose_args(const char *op, const aal_tensor *x, const aal_tensor *y,
                       aal_error *err)
{
  int rc;
  if ((rc = aal_tensor_check(x, AAL_F64, 3, NULL, op, "x", NULL, err)) != AAL_OK ||
      (rc = aal_tensor_check(y, AAL_F64, 3, NULL, op, "y", NULL, err)) != AAL_OK)
    return rc;
  if (y->shape[0] != x->shape[0] || y->shape[1] != x->shape[2] || y->shape[2] != x->shape[1]) {
    char sx[64], sy[64];
    aal_tensor_shape_str(x, sx, sizeof sx);
    aal_tensor_shape_str(y, sy, sizeof sy);
    return aal_fail(err, AAL_ESHAPE, "%s: y has shape %s, expected %zux%zux%zu (x %s with its "
                    "last two sizes swapped)", op, sy, x->shape[0], x->shape[2], x->shape[1],
                    sx);
  }
  if (aal_tensor_shares(y, x))
    return aal_fail(err, AAL_EINVAL, "%s: y must not share storage with x", op);
  return AAL_OK;
}

int aal_transpose(const aal_tensor *x, aal_tensor *y, aal_error *err)
{
  int rc = aal_transpose_args("transpose", x, y, err);
  if (rc != AAL_OK)
    return rc;
  const size_t b = x->shape[0], a = x->shape[1], c = x->shape[2];
  for (size_t bb = 0; bb < b; bb++)
    for (size_t i = 0; i < a; i++)
      for (size_t j = 0; j < c; j++)
        y->data[(bb * c + j) * a + i] = x->data[(bb * a + i) * c + j];
  return AAL_OK;
}
