/* The dnnl backend's linear layer: cpu32's (kernels/cpu/linear.c) with oneDNN's sgemm in
 * place of OpenBLAS's.  Why: the step's other parallel work runs on OpenMP's threads,
 * which spin for a while after each region; OpenBLAS's own threads, woken for the fc's
 * small GEMMs, then competed with them for the two cores (2-thread profile: the fc's
 * forward and backward took 4.5 ms a step, 0.3 ms at one thread).  dnnl_sgemm runs on
 * the same OpenMP threads.  The same sums of products (the harness's linear bound). */
#include <config.h>

#include "kernels/dnnl/dnnl_internal.h"

static int sgemm_onednn(int trans_a, int trans_b, int m, int n, int k, const float *a, int lda,
                     const float *b, int ldb, float beta, float *c, int ldc, const char *op,
                     aal_error *err)
{
  aal_dnnl_threads();
  DNNL_TRY(dnnl_sgemm(trans_a ? 'T' : 'N', trans_b ? 'T' : 'N', m, n, k, 1.0f, a, lda, b, ldb,
                      beta, c, ldc));
  return AAL_OK;
}

/* A write of a backend buffer: the epoch moves (kernels/dnnl/track.c). */
static void bump(const aal_backend *be)
{
  aal_dnnl_state *st = aal_dnnl_state_of(be, "dnnl linear", NULL);
  if (st != NULL)
    st->epoch++;
}

int aal_dnnl_linear_forward(const aal_backend *be, int n, int in, int out, const void *x,
                            const void *w, const void *b, void *y, aal_error *err)
{
  bump(be);
  return aal_cpu32_linear_forward_with(sgemm_onednn, "dnnl linear_forward", n, in, out, x, w, b,
                                       y, err);
}

int aal_dnnl_linear_backward(const aal_backend *be, int n, int in, int out, const void *dy,
                             const void *x, const void *w, void *dx, void *dw, void *db,
                             aal_error *err)
{
  bump(be);
  return aal_cpu32_linear_backward_with(sgemm_onednn, "dnnl linear_backward", n, in, out, dy, x,
                                        w, dx, dw, db, err);
}
