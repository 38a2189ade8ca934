/* Opening a table by backend name (sim/ops/ops.h): the reference table for "ref", else
 * the backend and its adapter (sim/ops/adapter.c). */
#include "sim/ops/ops.h"

#include <stdlib.h>
#include <string.h>

#include "kernels/backend.h"

int aal_ops_open(const char *name, aal_ops_handle *h, aal_error *err)
{
  memset(h, 0, sizeof *h);
  if (name == NULL || strcmp(name, "ref") == 0) {
    h->table = aal_ops_ref();
    return AAL_OK;
  }
  if ((h->be = calloc(1, sizeof *h->be)) == NULL)
    return aal_fail(err, AAL_ENOMEM, "ops: backend %s", name);
  int rc = aal_backend_open(name, h->be, err);
  if (rc != AAL_OK) {
    free(h->be);
    h->be = NULL;
    return rc;
  }
  rc = aal_ops_from_backend(h->be, &h->ops, err);
  if (rc != AAL_OK) {
    aal_ops_close(h);
    return rc;
  }
  h->table = &h->ops;
  return AAL_OK;
}

void aal_ops_close(aal_ops_handle *h)
{
  if (h == NULL)
    return;
  aal_ops_free(&h->ops);
  if (h->be != NULL) {
    h->be->destroy(h->be);
    free(h->be);
  }
  memset(h, 0, sizeof *h);
}
