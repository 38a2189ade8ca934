/* The SGD update in float32 (PyTorch):
 *   d = g + wd w; buf = first ? d : momentum buf + d; w -= lr buf. */
#include "kernels/cpu/cpu32.h"
#include "kernels/backend_check.h"

typedef struct {
  float *w, *buf;
  const float *g;
  float lr, momentum, weight_decay;
  int first;
} sgd_ctx;

/* elements [lo, hi) of the update (each element independent) */
static void sgd_elements(const void *arg, size_t lo, size_t hi)
{
  const sgd_ctx *c = arg;
  float *pw = c->w, *pb = c->buf;
  const float *pg = c->g;
  const float flr = c->lr, fmom = c->momentum, fwd = c->weight_decay;
  if (c->first)
    for (size_t i = lo; i < hi; i++) {
      pb[i] = pg[i] + fwd * pw[i];
      pw[i] -= flr * pb[i];
    }
  else
    for (size_t i = lo; i < hi; i++) {
      pb[i] = fmom * pb[i] + (pg[i] + fwd * pw[i]);
      pw[i] -= flr * pb[i];
    }
}

/* Split over elements by the backend's team. */
int aal_cpu32_sgd_update(const aal_backend *be, size_t n, void *w, const void *g, void *buf,
                         double lr, double momentum, double weight_decay, int first,
                         aal_error *err)
{
  static const char op[] = "cpu32 sgd_update";
  int rc = aal_be_check_count(op, n, sizeof(float), err);
  if (rc == AAL_OK)
    rc = aal_be_check_ptrs(op, "w, g, buf", err, 3, w, g, buf);
  if (rc != AAL_OK)
    return rc;
  const sgd_ctx c = {w, buf, g, (float)lr, (float)momentum, (float)weight_decay, first};
  /* w and buf are written */
  aal_team_par_for(aal_cpu32_be_team(be), sgd_elements, &c, n, 2 * n * sizeof(float));
  return AAL_OK;
}
