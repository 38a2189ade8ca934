/* The CUDA build links and, where a device exists, runs a first kernel bit-exactly
 * against the CPU.  Exit 77 (automake's "skipped") without CUDA or without a device. */
#include <config.h>

#include <math.h>
#include <stdio.h>
#include <stdlib.h>

#include <gsl/gsl_rng.h>

#ifdef AAL_HAVE_CUDA
#include "kernels/cuda/cuda.h"
#endif

#define SKIP 77

int main(void)
{
#ifndef AAL_HAVE_CUDA
  printf("built without CUDA: skipped\n");
  return SKIP;
#else
  if (aal_cuda_device_count() == 0) {
    printf("no CUDA device: skipped\n");
    return SKIP;
  }
  char info[1024];
  if (aal_cuda_device_info(info, sizeof info) < 0) {
    fprintf(stderr, "%s\n", info);
    return EXIT_FAILURE;
  }
  printf("%s\n", info);
  const unsigned long seed = 20261128UL;
  printf("seed %lu\n", seed);
  gsl_rng *rng = gsl_rng_alloc(gsl_rng_mt19937);
  gsl_rng_set(rng, seed);
  const size_t n = 1000003;  /* not a multiple of the block size */
  float *x = malloc(n * sizeof *x), *y = malloc(n * sizeof *y), *y0 = malloc(n * sizeof *y0);
  if (!x || !y || !y0)
    return EXIT_FAILURE;
  const float a = 1.5f;
  for (size_t i = 0; i < n; i++) {
    x[i] = (float)(gsl_rng_uniform(rng) * 2 - 1);
    y[i] = (float)(gsl_rng_uniform(rng) * 2 - 1);
    y0[i] = y[i];
  }
  char msg[512];
  if (aal_cuda_saxpy(n, a, x, y, msg, sizeof msg) != 0) {
    fprintf(stderr, "%s\n", msg);
    return EXIT_FAILURE;
  }
  /* a*x + y in float: at most two roundings (one if the device fuses into an FMA), each
   * <= 2^-24 of its result, so |got - exact| <= 2^-23 (|a x| + |y|) */
  size_t worst = 0;
  double worst_ratio = 0;
  int failed = 0;
  for (size_t i = 0; i < n; i++) {
    const double exact = (double)a * x[i] + y0[i];
    const double bound = (fabs((double)a * x[i]) + fabs(y0[i])) * ldexp(1.0, -23);
    const double err = fabs((double)y[i] - exact);
    if (!(err <= bound))
      failed = 1;
    const double ratio = bound > 0 ? err / bound : err;
    if (!(ratio <= worst_ratio)) {
      worst_ratio = ratio;
      worst = i;
    }
  }
  printf("saxpy n=%zu: worst err/bound %.3g at %zu: got %.9g want %.9g\n", n, worst_ratio,
         worst, y[worst], (double)a * x[worst] + y0[worst]);
  free(x);
  free(y);
  free(y0);
  gsl_rng_free(rng);
  printf("%d passed, %d failed\n", failed ? 0 : 1, failed);
  return failed ? EXIT_FAILURE : EXIT_SUCCESS;
#endif
}
