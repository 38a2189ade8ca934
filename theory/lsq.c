/* Least squares, one sample or a mini-batch:
 *   f(W) = 1/(2B) sum_b ||W h_b - y_b||^2,  delta_b = W h_b - y_b,
 *   grad f = 1/B sum_b delta_b h_b^T.
 * f is quadratic in W: f(W + D) = f(W) + <grad, D> + 1/(2B) ||D H^T||_F^2, and
 * ||D H^T||_F^2 = sum_i d_i^T (H^T H) d_i <= lambda_max(H^T H) ||D||_F^2 (d_i the rows
 * of D), with equality for D = u v^T, v the top eigenvector.  So the gradient is
 * Lipschitz with exactly L = lambda_max(H^T H)/B; for one sample L = ||h||^2. */
#include <math.h>

#include "theory/theory_internal.h"

double aal_theory_norm2(const double *x, size_t n)
{
  double s = 0.0;
  for (size_t i = 0; i < n; i++)
    s += x[i] * x[i];
  return s;
}

double aal_theory_dot(const double *x, const double *y, size_t n)
{
  double s = 0.0;
  for (size_t i = 0; i < n; i++)
    s += x[i] * y[i];
  return s;
}

void aal_theory_lsq_loss(const aal_theory_problem *p, const double *W, double *f, double *delta,
                         double *scale)
{
  const size_t m = p->m, n = p->n, B = p->batch;
  const double wnorm = sqrt(aal_theory_norm2(W, m * n));
  double sum = 0.0, mag = 0.0;
  for (size_t b = 0; b < B; b++) {
    const double *h = p->H + b * n, *y = p->Y + b * m;
    double rr = 0.0;
    for (size_t i = 0; i < m; i++) {
      const double d = aal_theory_dot(W + i * n, h, n) - y[i];
      if (delta != NULL)
        delta[b * m + i] = d;
      rr += d * d;
    }
    sum += 0.5 * rr;
    mag += sqrt(rr) * (wnorm * sqrt(aal_theory_norm2(h, n)) + sqrt(aal_theory_norm2(y, m))) +
           0.5 * rr;
  }
  *f = sum / (double)B;
  if (scale != NULL)
    *scale = mag / (double)B;
}
