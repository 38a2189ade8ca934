/* Multi-head scaled dot-product attention in float32 (sim/layers/attention.c), the same
 * composition: per (b, h) cblas_sgemm on strided head slices and the softmax rows of
 * kernels/cpu/softmax.c.
 *   q, k, v, o, dout, dq, dk, dv [b, t, e], e = heads dh;  p [b, heads, t, t].
 * Forward: S = scale Q K^T into p (scale = 1/sqrt(dh) rounded to float), P = softmax(S)
 *   in place, O = P V.
 * Backward: dP = dO V^T into a scratch [b, heads, t, t] (allocated per call), dS =
 *   P (dP - rowsum(dP P)) in place, dQ = scale dS K, dK = scale dS^T Q, dV = P^T dO.
 * Threads: OpenBLAS's own inside each sgemm; the softmax rows on the team. */
#include "kernels/cpu/cpu32.h"
#include "kernels/backend_check.h"

#include <cblas.h>
#include <limits.h>
#include <math.h>
#include <stdlib.h>

static int att_sizes(const char *op, int b, int t, int heads, int dh, aal_error *err)
{
  int rc;
  if ((rc = aal_be_check_pos(op, "b", b, err)) != AAL_OK ||
      (rc = aal_be_check_pos(op, "t", t, err)) != AAL_OK ||
      (rc = aal_be_check_pos(op, "heads", heads, err)) != AAL_OK ||
      (rc = aal_be_check_pos(op, "dh", dh, err)) != AAL_OK)
    return rc;
  if ((long long)heads * dh > INT_MAX)
    return aal_fail(err, AAL_EINVAL, "%s: heads %d x dh %d exceeds the int range", op, heads,
                    dh);
  const size_t planes = (size_t)b * (size_t)heads;
  if ((rc = aal_be_check_count(op, planes * (size_t)t, (size_t)t * sizeof(float), err)) != AAL_OK)
    return rc;
  return aal_be_check_count(op, (size_t)b * (size_t)t, (size_t)heads * dh * sizeof(float), err);
}

typedef struct {
  size_t d;
  const float *dy, *y;
  float *x;
} rows_ctx;

static void softmax_rows_inplace(const void *arg, size_t lo, size_t hi)
{
  const rows_ctx *a = arg;
  aal_cpu32_softmax_rows(a->x, a->x, lo, hi, a->d);
}

static void softmax_backward_inplace(const void *arg, size_t lo, size_t hi)
{
  const rows_ctx *a = arg;
  aal_cpu32_softmax_backward_rows(a->x, a->y, a->x, lo, hi, a->d);
}

int aal_cpu32_attention_forward(const aal_backend *be, int b, int t, int heads, int dh,
                                const void *q, const void *k, const void *v, void *p, void *o,
                                aal_error *err)
{
  static const char op[] = "cpu32 attention_forward";
  int rc;
  if ((rc = att_sizes(op, b, t, heads, dh, err)) != AAL_OK ||
      (rc = aal_be_check_ptrs(op, "q, k, v, p, o", err, 5, q, k, v, p, o)) != AAL_OK)
    return rc;
  const int e = heads * dh;
  const size_t tt = (size_t)t * (size_t)t, te = (size_t)t * (size_t)e;
  const float scale = (float)(1.0 / sqrt((double)dh));
  const float *fq = q, *fk = k, *fv = v;
  float *fp = p, *fo = o;
  for (size_t bb = 0; bb < (size_t)b; bb++)
    for (size_t h = 0; h < (size_t)heads; h++)
      cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, t, t, dh, scale,
                  fq + bb * te + h * (size_t)dh, e, fk + bb * te + h * (size_t)dh, e, 0.0f,
                  fp + (bb * (size_t)heads + h) * tt, t);
  const rows_ctx a = {(size_t)t, NULL, NULL, fp};
  const size_t rows = (size_t)b * (size_t)heads * (size_t)t;
  aal_team_par_for(aal_cpu32_be_team(be), softmax_rows_inplace, &a, rows,
                   rows * (size_t)t * sizeof(float));
  for (size_t bb = 0; bb < (size_t)b; bb++)
    for (size_t h = 0; h < (size_t)heads; h++)
      cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, t, dh, t, 1.0f,
                  fp + (bb * (size_t)heads + h) * tt, t, fv + bb * te + h * (size_t)dh, e, 0.0f,
                  fo + bb * te + h * (size_t)dh, e);
  return AAL_OK;
}

int aal_cpu32_attention_backward(const aal_backend *be, int b, int t, int heads, int dh,
                                 const void *dout, const void *q, const void *k, const void *v,
                                 const void *p, void *dq, void *dk, void *dv, aal_error *err)
{
  static const char op[] = "cpu32 attention_backward";
  int rc;
  if ((rc = att_sizes(op, b, t, heads, dh, err)) != AAL_OK ||
      (rc = aal_be_check_ptrs(op, "dout, q, k, v, p, dq, dk, dv", err, 8, dout, q, k, v, p, dq,
                              dk, dv)) != AAL_OK)
    return rc;
  const int e = heads * dh;
  const size_t tt = (size_t)t * (size_t)t, te = (size_t)t * (size_t)e;
  const size_t rows = (size_t)b * (size_t)heads * (size_t)t;
  float *ds = malloc(rows * (size_t)t * sizeof(float));
  if (ds == NULL)
    return aal_fail(err, AAL_ENOMEM, "%s: no memory for dP [%d, %d, %d, %d]", op, b, heads, t,
                    t);
  const float scale = (float)(1.0 / sqrt((double)dh));
  const float *fdo = dout, *fq = q, *fk = k, *fv = v, *fp = p;
  float *fdq = dq, *fdk = dk, *fdv = dv;
  for (size_t bb = 0; bb < (size_t)b; bb++)
    for (size_t h = 0; h < (size_t)heads; h++) /* dP = dO V^T */
      cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, t, t, dh, 1.0f,
                  fdo + bb * te + h * (size_t)dh, e, fv + bb * te + h * (size_t)dh, e, 0.0f,
                  ds + (bb * (size_t)heads + h) * tt, t);
  const rows_ctx a = {(size_t)t, NULL, fp, ds};
  aal_team_par_for(aal_cpu32_be_team(be), softmax_backward_inplace, &a, rows,
                   2 * rows * (size_t)t * sizeof(float));
  for (size_t bb = 0; bb < (size_t)b; bb++)
    for (size_t h = 0; h < (size_t)heads; h++) {
      const size_t off = bb * te + h * (size_t)dh, po = (bb * (size_t)heads + h) * tt;
      cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, t, dh, t, scale, ds + po, t,
                  fk + off, e, 0.0f, fdq + off, e);
      cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, t, dh, t, scale, ds + po, t,
                  fq + off, e, 0.0f, fdk + off, e);
      cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, t, dh, t, 1.0f, fp + po, t,
                  fdo + off, e, 0.0f, fdv + off, e);
    }
  free(ds);
  return AAL_OK;
}
