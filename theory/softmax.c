/* Softmax regression (cross-entropy over C = m classes):
 *   l_b(z) = log sum_c exp(z_c) - z_{y_b},  z = W h_b,  f(W) = 1/B sum_b l_b(W h_b),
 *   delta_b = softmax(z) - e_{y_b},  grad f = 1/B sum_b delta_b h_b^T.
 *
 * The bound on L.  The Hessian of l w.r.t. z is S = diag(p) - p p^T (p = softmax(z)).
 * For a unit vector v, v^T S v = sum_c p_c v_c^2 - (sum_c p_c v_c)^2 is the variance
 * of a random variable taking the value v_c with probability p_c; by Popoviciu's
 * inequality it is <= (max_c v_c - min_c v_c)^2 / 4 <= (|v_i| + |v_j|)^2 / 4
 * <= 2 (v_i^2 + v_j^2) / 4 <= 1/2.  So 0 <= S <= 1/2 I (tight for C >= 2: p uniform
 * on two classes, v = (e_1 - e_2)/sqrt 2).  The Hessian of f w.r.t. vec(W) (row-major,
 * W_ij at i*n + j) is 1/B sum_b S_b (x) h_b h_b^T, and
 *   D : Hess : D = 1/B sum_b (D h_b)^T S_b (D h_b) <= 1/(2B) sum_b ||D h_b||^2
 *               = 1/(2B) ||D H^T||_F^2 <= lambda_max(H^T H)/(2B) ||D||_F^2.
 * A C^2 function whose Hessian is bounded by L in operator norm has an L-Lipschitz
 * gradient, so L = lambda_max(H^T H)/(2B) is valid (an upper bound, not always
 * attained: the descent lemma is then conservative). */
#include <math.h>

#include "theory/theory_internal.h"

void aal_theory_softmax_loss(const aal_theory_problem *p, const double *W, double *f,
                             double *delta, double *scale)
{
  const size_t C = p->m, n = p->n, B = p->batch;
  const double wnorm = sqrt(aal_theory_norm2(W, C * n));
  double sum = 0.0, mag = 0.0;
  for (size_t b = 0; b < B; b++) {
    const double *h = p->H + b * n;
    const int y = p->labels[b];
    /* z_c is recomputed where needed rather than stored: the same loop gives the same
     * bits every time, and the loss needs no workspace. */
    double zmax = -INFINITY;
    for (size_t c = 0; c < C; c++) {
      const double z = aal_theory_dot(W + c * n, h, n);
      if (z > zmax)
        zmax = z;
    }
    /* log-sum-exp shifted by the max: every exp argument <= 0, the sum is in [1, C]. */
    double se = 0.0;
    for (size_t c = 0; c < C; c++)
      se += exp(aal_theory_dot(W + c * n, h, n) - zmax);
    const double lse = zmax + log(se);
    const double zy = aal_theory_dot(W + (size_t)y * n, h, n);
    const double l = lse - zy;
    double dd = 0.0;
    for (size_t c = 0; c < C; c++) {
      const double pc = exp(aal_theory_dot(W + c * n, h, n) - zmax) / se;
      const double d = pc - ((int)c == y ? 1.0 : 0.0);
      if (delta != NULL)
        delta[b * C + c] = d;
      dd += d * d;
    }
    sum += l;
    /* first-order error of l: delta . (error of z) + the roundings of lse and z_y */
    mag += sqrt(dd) * wnorm * sqrt(aal_theory_norm2(h, n)) + fabs(lse) + fabs(zy) + fabs(l);
  }
  *f = sum / (double)B;
  if (scale != NULL)
    *scale = mag / (double)B;
}
