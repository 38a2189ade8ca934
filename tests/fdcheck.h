/* Finite-difference gradient checks for the test suites, built on GSL's
 * gsl_deriv_central (5-point central difference with an error estimate).
 *
 * A problem is a function y = F(v) of a variable vector v (owned by the caller, read by
 * `forward` through ctx) with ny outputs.  Two checks:
 *
 *  fd_check_jacobian: every entry dF_i/dv_j against the caller's analytic Jacobian
 *    (row-major, J[i*nvar + j]); for tiny shapes.
 *  fd_check_direction: the directional derivative d/dt c . F(v + t d) against the
 *    caller's analytic value (grad . d with grad = J^T c); for larger shapes.
 *
 * Pass criterion for each compared number a (analytic) vs f (finite difference, with
 * GSL's error estimate e):
 *      err = |a - f|,   scale = max(|a|, |f|, floor)
 *      pass  iff  err <= FD_ESTIMATE_FACTOR * e + 64 * DBL_EPSILON * scale
 *             and err <= FD_REL_TOL * scale
 * floor is the largest |J| entry of the whole Jacobian (resp. the 2-norm |c| |d| |J|
 * proxy given by the caller), so that entries that are exactly zero are judged on the
 * scale of the operator, not on their own.  Both inequalities are written so that NaN
 * fails.  The worst entry (largest err/scale) is reported. */
#ifndef AAL_TESTS_FDCHECK_H
#define AAL_TESTS_FDCHECK_H

#include <stddef.h>

#include <gsl/gsl_rng.h>

#define FD_REL_TOL 1e-6
#define FD_ESTIMATE_FACTOR 10.0

typedef void (*fd_forward_fn)(void *ctx, double *y);

typedef struct {
  double *var;         /* the variable; perturbed in place and restored */
  size_t nvar;
  size_t ny;
  fd_forward_fn forward;
  void *ctx;
  double step;         /* initial step for gsl_deriv_central, e.g. 1e-3 */
} fd_problem;

typedef struct {
  size_t checked;
  size_t failed;
  double worst_rel;     /* largest err/scale seen */
  size_t worst_i, worst_j;
  double worst_analytic, worst_fd, worst_abserr;
} fd_report;

/* Returns 1 when every entry passes.  Prints the worst entry (and each failure, up to
 * a few) to stderr prefixed with `what`. */
int fd_check_jacobian(const fd_problem *p, const double *jacobian, const char *what,
                      fd_report *rep);

/* c [ny], dir [nvar]; analytic = sum_j (J^T c)_j dir_j.  scale_floor as above. */
int fd_check_direction(const fd_problem *p, const double *c, const double *dir,
                       double analytic, double scale_floor, const char *what,
                       fd_report *rep);

/* Fills x with uniform numbers in [lo, hi) from a GSL mt19937 stream; the caller owns
 * the generator (seeded from a printed seed). */
void fd_fill_uniform(gsl_rng *rng, double *x, size_t n, double lo, double hi);

/* The suite's seed: $AAL_TEST_SEED if set, else a fixed default; printed once. */
unsigned long fd_test_seed(void);

#endif
