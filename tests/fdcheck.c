#include "tests/fdcheck.h"

#include "tests/aal_check.h"

#include <float.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <gsl/gsl_deriv.h>
#include <gsl/gsl_rng.h>

/* gsl_deriv_central evaluates F at a handful of points v_j + t; for the full Jacobian
 * we differentiate every output i along the same coordinate j, so the outputs at each
 * t are cached and F runs only a few times per coordinate. */
#define FD_CACHE 16

typedef struct {
  const fd_problem *p;
  const double *dir;   /* NULL: coordinate j */
  size_t j;
  const double *c;     /* NULL: output i */
  size_t i;
  double *base;        /* copy of v */
  double t[FD_CACHE];
  double *y[FD_CACHE];
  int used;
  int next;
} fd_eval;

static const double *eval_at(fd_eval *e, double t)
{
  for (int k = 0; k < e->used; k++)
    if (e->t[k] == t)
      return e->y[k];
  int slot = e->next;
  e->next = (e->next + 1) % FD_CACHE;
  if (e->used < FD_CACHE)
    e->used++;
  const fd_problem *p = e->p;
  if (e->dir == NULL) {
    p->var[e->j] = t;  /* coordinate mode differentiates at t = v_j itself */
  } else {
    for (size_t k = 0; k < p->nvar; k++)
      p->var[k] = e->base[k] + t * e->dir[k];
  }
  p->forward(p->ctx, e->y[slot]);
  memcpy(p->var, e->base, p->nvar * sizeof(double));
  e->t[slot] = t;
  return e->y[slot];
}

static double scalar_output(double t, void *params)
{
  fd_eval *e = params;
  const double *y = eval_at(e, t);
  if (e->c == NULL)
    return y[e->i];
  double s = 0.0;
  for (size_t k = 0; k < e->p->ny; k++)
    s += e->c[k] * y[k];
  return s;
}

static int eval_init(fd_eval *e, const fd_problem *p)
{
  memset(e, 0, sizeof *e);
  e->p = p;
  e->base = malloc(p->nvar * sizeof(double));
  if (e->base == NULL)
    return 0;
  memcpy(e->base, p->var, p->nvar * sizeof(double));
  for (int k = 0; k < FD_CACHE; k++) {
    e->y[k] = malloc(p->ny * sizeof(double));
    if (e->y[k] == NULL)
      return 0;
  }
  return 1;
}

static void eval_free(fd_eval *e)
{
  free(e->base);
  for (int k = 0; k < FD_CACHE; k++)
    free(e->y[k]);
}

static int judge(double a, double f, double abserr, double floor, size_t i, size_t j,
                 const char *what, fd_report *rep)
{
  const double err = fabs(a - f);
  double scale = fmax(fabs(a), fabs(f));
  scale = fmax(scale, floor);
  const int ok = (err <= FD_ESTIMATE_FACTOR * abserr + 64 * DBL_EPSILON * scale) &&
                 (err <= FD_REL_TOL * scale);
  const double rel = scale > 0 ? err / scale : err;
  rep->checked++;
  if (!(rel <= rep->worst_rel) || rep->checked == 1) {
    rep->worst_rel = rel;
    rep->worst_i = i;
    rep->worst_j = j;
    rep->worst_analytic = a;
    rep->worst_fd = f;
    rep->worst_abserr = abserr;
  }
  if (!ok) {
    if (rep->failed < 5)
      fprintf(stderr,
              "%s: FAIL at (%zu,%zu): analytic %.17g fd %.17g (gsl abserr %.3g) "
              "err %.3g scale %.3g\n",
              what, i, j, a, f, abserr, err, scale);
    rep->failed++;
  }
  return ok;
}

static void print_worst(const char *what, const fd_report *rep)
{
  fprintf(stderr,
          "%s: %zu checked, %zu failed; worst rel err %.3g at (%zu,%zu): analytic %.17g "
          "fd %.17g (gsl abserr %.3g)\n",
          what, rep->checked, rep->failed, rep->worst_rel, rep->worst_i, rep->worst_j,
          rep->worst_analytic, rep->worst_fd, rep->worst_abserr);
}

int fd_check_jacobian(const fd_problem *p, const double *jacobian, const char *what,
                      fd_report *rep)
{
  memset(rep, 0, sizeof *rep);
  double floor = 0.0;
  for (size_t k = 0; k < p->nvar * p->ny; k++)
    floor = fmax(floor, fabs(jacobian[k]));
  fd_eval e;
  if (!eval_init(&e, p)) {
    eval_free(&e);
    fprintf(stderr, "%s: out of memory\n", what);
    rep->failed = 1;
    return 0;
  }
  gsl_function fn = {scalar_output, &e};
  for (size_t j = 0; j < p->nvar; j++) {
    e.j = j;
    e.used = e.next = 0;
    for (size_t i = 0; i < p->ny; i++) {
      double f, abserr;
      e.i = i;
      /* at the coordinate's own value, so that GSL's round-off estimate sees |v_j| */
      gsl_deriv_central(&fn, e.base[j], p->step, &f, &abserr);
      judge(jacobian[i * p->nvar + j], f, abserr, floor, i, j, what, rep);
    }
  }
  eval_free(&e);
  print_worst(what, rep);
  return rep->failed == 0 && rep->checked > 0;
}

int fd_check_direction(const fd_problem *p, const double *c, const double *dir,
                       double analytic, double scale_floor, const char *what,
                       fd_report *rep)
{
  fd_eval e;
  if (!eval_init(&e, p)) {
    eval_free(&e);
    fprintf(stderr, "%s: out of memory\n", what);
    rep->failed++;
    return 0;
  }
  e.dir = dir;
  e.c = c;
  gsl_function fn = {scalar_output, &e};
  double f, abserr;
  gsl_deriv_central(&fn, 0.0, p->step, &f, &abserr);
  eval_free(&e);
  fd_report one;
  memset(&one, 0, sizeof one);
  const int ok = judge(analytic, f, abserr, scale_floor, 0, 0, what, &one);
  print_worst(what, &one);
  rep->checked += one.checked;
  rep->failed += one.failed;
  if (one.worst_rel > rep->worst_rel || rep->checked == 1) {
    rep->worst_rel = one.worst_rel;
    rep->worst_analytic = one.worst_analytic;
    rep->worst_fd = one.worst_fd;
    rep->worst_abserr = one.worst_abserr;
  }
  return ok;
}

void fd_fill_uniform(gsl_rng *rng, double *x, size_t n, double lo, double hi)
{
  for (size_t k = 0; k < n; k++)
    x[k] = lo + (hi - lo) * gsl_rng_uniform(rng);
}

unsigned long fd_test_seed(void)
{
  return aal_test_seed();
}
