/* The GEMM rates every benchmark is measured against, in the same run (machines differ
 * from session to session; ratios measured together do not). */
#include <cblas.h>
#include <stdint.h>
#include <stdlib.h>

#include "sim/bench/bench.h"
#include "sim/core/clock.h"

/* A cheap deterministic fill in [-1, 1): the values do not matter for the time, but
 * zeros might (a GEMM is never timed on zeros). */
static double fill_value(unsigned long *z)
{
  *z = *z * 6364136223846793005ul + 1442695040888963407ul;
  return (double)(*z >> 11) / 9007199254740992.0 * 2.0 - 1.0;
}

/* Best of `repeats` timed runs after one warm-up (threads started, pages touched). */
#define BENCH_GEMM(NAME, T, GEMM, ONE, ZERO)                                                 \
  int NAME(int n, int repeats, unsigned long seed, double *gflops, aal_error *err)          \
  {                                                                                         \
    if (n < 1 || repeats < 1 || gflops == NULL)                                             \
      return aal_fail(err, AAL_EINVAL, "bench " #GEMM ": n %d and repeats %d must be >= 1", \
                      n, repeats);                                                          \
    const size_t nn = (size_t)n * (size_t)n;                                                \
    if (nn > SIZE_MAX / sizeof(T))                                                          \
      return aal_fail(err, AAL_ENOMEM, "bench " #GEMM ": n = %d overflows", n);             \
    T *a = malloc(nn * sizeof(T)), *b = malloc(nn * sizeof(T)), *c = malloc(nn * sizeof(T)); \
    int rc = AAL_OK;                                                                        \
    if (a == NULL || b == NULL || c == NULL)                                                \
      rc = aal_fail(err, AAL_ENOMEM, "bench " #GEMM ": cannot allocate 3 %dx%d matrices", n, \
                    n);                                                                     \
    if (rc == AAL_OK) {                                                                     \
      unsigned long z = seed * 2862933555777941757ul + 3037000493ul;                        \
      for (size_t i = 0; i < nn; i++) {                                                     \
        a[i] = (T)fill_value(&z);                                                           \
        b[nn - 1 - i] = a[i];                                                               \
      }                                                                                     \
      double best = 0;                                                                      \
      for (int i = 0; i <= repeats; i++) {                                                  \
        const double t0 = aal_clock_now();                                                  \
        GEMM(CblasRowMajor, CblasNoTrans, CblasNoTrans, n, n, n, ONE, a, n, b, n, ZERO, c,  \
             n);                                                                            \
        const double t = aal_clock_now() - t0;                                              \
        if (i == 1 || (i > 1 && t < best))                                                  \
          best = t;                                                                         \
      }                                                                                     \
      *gflops = 2.0 * (double)n * (double)n * (double)n / best * 1e-9;                      \
    }                                                                                       \
    free(a);                                                                                \
    free(b);                                                                                \
    free(c);                                                                                \
    return rc;                                                                              \
  }

BENCH_GEMM(aal_bench_dgemm_gflops, double, cblas_dgemm, 1.0, 0.0)
BENCH_GEMM(aal_bench_sgemm_gflops, float, cblas_sgemm, 1.0f, 0.0f)
