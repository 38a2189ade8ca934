/* The dnnl backend's OpenMP pieces, the one file of the library compiled with OpenMP
 * (Makefile.am): the thread count oneDNN runs with, and the runner that hands the
 * backend team's memory-bound loops (cpu32's batch norm, ReLU, add, SGD, ...) to the
 * same OpenMP threads.
 *
 * Why a runner: oneDNN's OpenMP threads spin for a while after each primitive before
 * they sleep (libgomp's GOMP_SPINCOUNT).  With cpu32's own helper threads running the
 * loops between two convolutions, the spinning threads and the helpers compete for the
 * cores (a profile of a step: half of all samples in libgomp's wait loop).  Run by
 * OpenMP, the next loop is picked up by the spinning threads themselves, as PyTorch
 * runs its elementwise ops on the pool its oneDNN convolutions use. */
#include <config.h>

#include "kernels/dnnl/dnnl_internal.h"

#include <cblas.h>
#include <omp.h>

int aal_dnnl_threads(void)
{
  int n = openblas_get_num_threads();
  if (n < 1)
    n = 1;
  if (omp_get_max_threads() != n)
    omp_set_num_threads(n);
  return n;
}

void aal_dnnl_omp_for(void *rctx, aal_team_range_fn fn, const void *ctx, size_t items)
{
  (void)rctx;
  const int threads = aal_dnnl_threads();
  /* chunks claimed one at a time, as the team's helpers claim them (sim/core/team.c):
   * items are independent, so the split does not change results */
  size_t chunks = (size_t)threads * AAL_TEAM_CHUNKS_PER_THREAD;
  chunks = chunks < items ? chunks : items;
  if (threads == 1 || chunks < 2) {
    fn(ctx, 0, items);
    return;
  }
#pragma omp parallel for num_threads(threads) schedule(dynamic, 1)
  for (size_t b = 0; b < chunks; b++)
    fn(ctx, items * b / chunks, items * (b + 1) / chunks);
}
