/* The one collective built from the others: agreeing on a status. */
#include "sim/core/comm.h"

#include <stdlib.h>

int aal_comm_agree(const aal_comm *c, int rc, aal_error *err)
{
  if (c == NULL || c->size == 1)
    return rc;
  double *v = calloc((size_t)c->size, sizeof *v);
  if (v == NULL) {
    /* cannot take part: the others would wait for this process forever */
    c->abort(c, AAL_ENOMEM);
    return AAL_ENOMEM;
  }
  v[c->rank] = (double)rc;
  aal_error mine = {0};
  int sent = c->sum(c, v, (size_t)c->size, &mine);
  int k = 0;
  while (sent == AAL_OK && k < c->size && v[k] == 0.0)
    k++;
  const int status = sent != AAL_OK ? sent : k < c->size ? (int)v[k] : AAL_OK;
  free(v);
  if (sent != AAL_OK) {
    if (err != NULL)
      *err = mine;
    return sent;
  }
  if (status != AAL_OK && k != c->rank)
    return aal_fail(err, status, "stopping: rank %d of %d failed (its own message says why)", k,
                    c->size);
  return status;
}
