/* lambda_max of a Gram matrix, the Lipschitz constant of the least-squares testbeds. */
#include "theory/theory.h"

#include <math.h>
#include <stdlib.h>

#include <gsl/gsl_eigen.h>
#include <gsl/gsl_matrix.h>

int aal_theory_gram_lambda_max(const double *H, size_t B, size_t n, double *lambda,
                               aal_error *err)
{
  if (H == NULL || lambda == NULL || B == 0 || n == 0)
    return aal_fail(err, AAL_EINVAL, "gram_lambda_max: empty or NULL argument (B=%zu, n=%zu)",
                    B, n);
  /* H^T H (n x n) and H H^T (B x B) share their non-zero eigenvalues; the smaller one
   * is cheaper and has fewer structural zeros. */
  const int small_is_rows = B <= n;
  const size_t k = small_is_rows ? B : n;
  gsl_matrix *A = gsl_matrix_alloc(k, k);
  gsl_vector *ev = gsl_vector_alloc(k);
  gsl_eigen_symm_workspace *ws = gsl_eigen_symm_alloc(k);
  if (A == NULL || ev == NULL || ws == NULL) {
    gsl_matrix_free(A);
    gsl_vector_free(ev);
    gsl_eigen_symm_free(ws);
    return aal_fail(err, AAL_ENOMEM, "gram_lambda_max: %zu x %zu workspace", k, k);
  }
  for (size_t i = 0; i < k; i++)
    for (size_t j = 0; j <= i; j++) {
      double s = 0.0;
      if (small_is_rows)
        for (size_t t = 0; t < n; t++)
          s += H[i * n + t] * H[j * n + t];
      else
        for (size_t t = 0; t < B; t++)
          s += H[t * n + i] * H[t * n + j];
      gsl_matrix_set(A, i, j, s);
      gsl_matrix_set(A, j, i, s);
    }
  const int rc = gsl_eigen_symm(A, ev, ws); /* destroys A; eigenvalues unordered */
  double lmax = -INFINITY;
  for (size_t i = 0; i < k; i++)
    if (gsl_vector_get(ev, i) > lmax)
      lmax = gsl_vector_get(ev, i);
  gsl_matrix_free(A);
  gsl_vector_free(ev);
  gsl_eigen_symm_free(ws);
  if (rc != 0 || !isfinite(lmax))
    return aal_fail(err, AAL_ENUMERIC, "gram_lambda_max: eigen solver failed (gsl %d, %g)", rc,
                    lmax);
  *lambda = lmax;
  return AAL_OK;
}
