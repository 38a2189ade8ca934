/* Elementwise add (the residual join), double precision.  a, b, y, dy, da, db: F64, any
 * rank, one shape.  Nothing needs to be saved for backward. */
#include "sim/layers/layers.h"

#include <string.h>

/* Requires t non-NULL, F64, and (when ref is non-NULL) of ref's shape. */
static int require_f64_like(const aal_tensor *t, const aal_tensor *ref, const char *op,
                            const char *name, const char *ref_name, aal_error *err)
{
  if (t == NULL)
    return aal_fail(err, AAL_EINVAL, "%s: %s is NULL", op, name);
  if (t->dtype != AAL_F64)
    return aal_fail(err, AAL_EINVAL, "%s: %s has the wrong element type (expected F64)", op,
                    name);
  if (ref != NULL && !aal_tensor_same_shape(t, ref)) {
    char st[64], sr[64];
    aal_tensor_shape_str(t, st, sizeof st);
    aal_tensor_shape_str(ref, sr, sizeof sr);
    return aal_fail(err, AAL_ESHAPE, "%s: %s has shape %s but %s has shape %s", op, name, st,
                    ref_name, sr);
  }
  return AAL_OK;
}

int aal_add_args(const char *op, const aal_tensor *a, const aal_tensor *b,
                 const aal_tensor *y, aal_error *err)
{
  int rc;
  if ((rc = require_f64_like(a, NULL, op, "a", NULL, err)) != AAL_OK ||
      (rc = require_f64_like(b, a, op, "b", "a", err)) != AAL_OK)
    return rc;
  return require_f64_like(y, a, op, "y", "a", err);
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
  if ((rc = require_f64_like(dy, NULL, op, "dy", NULL, err)) != AAL_OK)
    return rc;
  if (da != NULL && (rc = require_f64_like(da, dy, op, "da", "dy", err)) != AAL_OK)
    return rc;
  if (db != NULL && (rc = require_f64_like(db, dy, op, "db", "dy", err)) != AAL_OK)
    return rc;
  /* memmove: da or db may be dy itself. */
  if (da != NULL)
    memmove(da->data, dy->data, dy->size * sizeof(double));
  if (db != NULL)
    memmove(db->data, dy->data, dy->size * sizeof(double));
  return AAL_OK;
}
