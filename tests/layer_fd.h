/* A layer as a finite-difference problem (tests/fdcheck.h), shared by the layer tests
 * (tests/layers/test_layers.c, test_transformer_layers.c): the variable vector v as the
 * concatenation of some tensors' data, the full Jacobian check and the check along one
 * direction.  Each failure names what was checked and the suite's seed. */
#ifndef AAL_TESTS_LAYER_FD_H
#define AAL_TESTS_LAYER_FD_H

#include <check.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sim/core/tensor.h"
#include "tests/fdcheck.h"

static inline void *aal_test_xmalloc(size_t n)
{
  void *p = malloc(n > 0 ? n : 1);
  ck_assert_ptr_nonnull(p);
  return p;
}

/* v = the concatenation of the parts' data */
typedef struct {
  aal_tensor *part[3];
  size_t nparts;
} var_split;

static inline size_t split_size(const var_split *s)
{
  size_t n = 0;
  for (size_t k = 0; k < s->nparts; k++)
    n += s->part[k]->size;
  return n;
}

static inline void split_load(const var_split *s, const double *v)
{
  for (size_t k = 0; k < s->nparts; k++) {
    memcpy(s->part[k]->data, v, s->part[k]->size * sizeof(double));
    v += s->part[k]->size;
  }
}

static inline void split_store(const var_split *s, double *v)
{
  for (size_t k = 0; k < s->nparts; k++) {
    memcpy(v, s->part[k]->data, s->part[k]->size * sizeof(double));
    v += s->part[k]->size;
  }
}

/* y's values, or NaN everywhere when the forward failed (so that FD fails loudly) */
static inline void copy_or_nan(int rc, const aal_tensor *y, double *out)
{
  for (size_t i = 0; i < y->size; i++)
    out[i] = rc == AAL_OK ? y->data[i] : NAN;
}

/* F(v) through `forward`; J^T c through `vjp` (which runs the forward at v itself, so
 * that what backward reads is that of v, then the backward). */
typedef struct {
  double *var;
  size_t nvar, ny;
  fd_forward_fn forward;
  void (*vjp)(void *ctx, const double *c, double *g);
  void *ctx;
} layer_fd;

/* The full Jacobian by rows (row i = J^T e_i) against central differences. */
static inline void layer_fd_check_jacobian(const layer_fd *L, double step, const char *what,
                                           unsigned long seed)
{
  double *jac = aal_test_xmalloc(L->ny * L->nvar * sizeof(double));
  double *c = calloc(L->ny ? L->ny : 1, sizeof(double));
  ck_assert_ptr_nonnull(c);
  for (size_t i = 0; i < L->ny; i++) {
    c[i] = 1.0;
    L->vjp(L->ctx, c, jac + i * L->nvar);
    c[i] = 0.0;
  }
  const fd_problem p = {L->var, L->nvar, L->ny, L->forward, L->ctx, step};
  fd_report rep;
  const int ok = fd_check_jacobian(&p, jac, what, &rep);
  free(jac);
  free(c);
  fprintf(stderr, "  %s: %zu entries, worst err/scale %.3g (seed %lu)\n", what, rep.checked,
          rep.worst_rel, seed);
  ck_assert_msg(ok, "%s: %zu of %zu Jacobian entries fail (worst rel %.3g at (%zu,%zu): "
                "analytic %.17g, fd %.17g; seed %lu)", what, rep.failed, rep.checked,
                rep.worst_rel, rep.worst_i, rep.worst_j, rep.worst_analytic, rep.worst_fd,
                seed);
}

/* Along one direction d (dyadic) with output weights c: analytic = (J^T c) . d against
 * the central difference; scale floor sum_j |g_j| |d_j|, the size of the terms whose
 * cancellation could make the value small (an elementwise relative error delta in g
 * moves the dot product by at most delta * floor). */
static inline void layer_fd_check_direction(const layer_fd *L, const double *c, const double *d,
                                            double step, const char *what, unsigned long seed)
{
  double *g = aal_test_xmalloc(L->nvar * sizeof(double));
  L->vjp(L->ctx, c, g);
  double analytic = 0.0, floor_abs = 0.0;
  for (size_t j = 0; j < L->nvar; j++) {
    analytic += g[j] * d[j];
    floor_abs += fabs(g[j]) * fabs(d[j]);
  }
  free(g);
  const fd_problem p = {L->var, L->nvar, L->ny, L->forward, L->ctx, step};
  fd_report rep;
  memset(&rep, 0, sizeof rep);
  const int ok = fd_check_direction(&p, c, d, analytic, floor_abs, what, &rep);
  fprintf(stderr, "  %s: direction err/scale %.3g (seed %lu)\n", what, rep.worst_rel, seed);
  ck_assert_msg(ok, "%s: directional derivative %.17g vs fd %.17g (rel %.3g; seed %lu)", what,
                rep.worst_analytic, rep.worst_fd, rep.worst_rel, seed);
}

#endif
