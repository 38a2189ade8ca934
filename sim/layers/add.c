/* Elementwise add (the residual join), double precision.  a, b, y, dy, da, db: F64, any
 * rank, one shape.  Nothing needs to be saved for backward. */
#include "sim/layers/layers.h"

#include <string.h>

int aal_add_args(const char *op, const aal_tensor *a, const aal_tensor *b,
                 const aal_tensor *y, aal_error *err)
{
  int rc;
  if ((rc = aal_tensor_check(a, AAL_F64, 0, NULL, op, "a", NULL, err)) != AAL_OK ||
      (rc = aal_tensor_check(b, AAL_F64, 0, a, op, "b", "a", err)) != AAL_OK)
    return rc;
  return aal_tensor_check(y, AAL_F64, 0, a, op, "y", "a", err);
}

int aal_add_forward(const aal_tensor *a, const aal_tensor *b, aal_tensor *y, aal_error *err)
{
  int rc = aal_add_args("add forward", a, b, y, err);
  if (rc != AAL_OK)
    return rc;
  for (size_t i = 0; i < a->size; i++)
    y->data[i] = a->data[i] + b->data[i];
  return AAL_OK;
}

int aal_add_backward(const aal_tensor *dy, aal_tensor *da, aal_tensor *db, aal_error *err)
{
  static const char op[] = "add backward";
  int rc;
  if ((rc = aal_tensor_check(dy, AAL_F64, 0, NULL, op, "dy", NULL, err)) != AAL_OK)
    return rc;
  if (da != NULL && (rc = aal_tensor_check(da, AAL_F64, 0, dy, op, "da", "dy", err)) != AAL_OK)
    return rc;
  if (db != NULL && (rc = aal_tensor_check(db, AAL_F64, 0, dy, op, "db", "dy", err)) != AAL_OK)
    return rc;
  /* memmove: da or db may be dy itself. */
  if (da != NULL)
    memmove(da->data, dy->data, dy->size * sizeof(double));
  if (db != NULL)
    memmove(db->data, dy->data, dy->size * sizeof(double));
  return AAL_OK;
}
