/* Multi-head scaled dot-product attention, double precision, as a composition of matrix
 * products (cblas_dgemm on strided slices) and the softmax layer (softmax.c), so that
 * what backward reads is what a tape holds: q, k, v and P.
 *   q, k, v, o, dout, dq, dk, dv [B, T, E], E = H dh, head h in columns h dh .. h dh + dh - 1
 *   (the slices Q, K, V [T, dh] with row stride E);  p [B, H, T, T].
 * Forward per (b, h):  S = Q K^T / sqrt(dh) (written into p),  then P = softmax(S) for all
 *   (b, h) at once (aal_softmax_forward in place on p),  O = P V.
 * Backward per (b, h):  dP = dO V^T,  dS = P (dP - rowsum(dP P)) (aal_softmax_backward, in
 *   place on a scratch [B, H, T, T]),  dQ = dS K / sqrt(dh),  dK = dS^T Q / sqrt(dh),
 *   dV = P^T dO.
 * Outputs are zeroed before every beta = 0 product, so that a poisoned (NaN) buffer cannot
 * leak through a BLAS that scales C by beta instead of overwriting it (linear.c). */
#include "sim/layers/transformer.h"

#include <cblas.h>
#include <limits.h>
#include <math.h>
#include <string.h>

/* q-shaped tensor: [B, T, E] with heads | E; the sizes fit CBLAS's int. */
static int require_qkv(const aal_tensor *t, const aal_tensor *q, const char *op,
                       const char *name, aal_error *err)
{
  return aal_tensor_check(t, AAL_F64, 3, q, op, name, q != NULL ? "q" : NULL, err);
}

/* The shared part of both contracts: q [B, T, E], k, v of q's shape, heads | E, p
 * [B, H, T, T], sizes within CBLAS's int. */
static int attention_geometry(const char *op, const aal_tensor *q, const aal_tensor *k,
                              const aal_tensor *v, int heads, const aal_tensor *p,
                              aal_error *err)
{
  int rc;
  if ((rc = require_qkv(q, NULL, op, "q", err)) != AAL_OK ||
      (rc = require_qkv(k, q, op, "k", err)) != AAL_OK ||
      (rc = require_qkv(v, q, op, "v", err)) != AAL_OK ||
      (rc = aal_tensor_check(p, AAL_F64, 4, NULL, op, "p", NULL, err)) != AAL_OK)
    return rc;
  const size_t b = q->shape[0], t = q->shape[1], e = q->shape[2];
  if (heads < 1 || e % (size_t)heads != 0)
    return aal_fail(err, AAL_EINVAL, "%s: heads is %d, must be >= 1 and divide E = %zu (the "
                    "last size of q)", op, heads, e);
  if (t > INT_MAX || e > INT_MAX)
    return aal_fail(err, AAL_EINVAL, "%s: T = %zu or E = %zu exceeds the CBLAS int range", op,
                    t, e);
  if (p->shape[0] != b || p->shape[1] != (size_t)heads || p->shape[2] != t || p->shape[3] != t) {
    char sp[64];
    aal_tensor_shape_str(p, sp, sizeof sp);
    return aal_fail(err, AAL_ESHAPE, "%s: p has shape %s, expected %zux%dx%zux%zu ([B, H, T, T])",
                    op, sp, b, heads, t, t);
  }
  return AAL_OK;
}

/* out must not share storage with any of the n inputs. */
static int require_apart(const char *op, const aal_tensor *out, const char *out_name,
                         const aal_tensor *const *in, int n, aal_error *err)
{
  for (int i = 0; i < n; i++)
    if (aal_tensor_shares(out, in[i]))
      return aal_fail(err, AAL_EINVAL, "%s: %s must not share storage with an input", op,
                      out_name);
  return AAL_OK;
}

int aal_attention_forward_args(const char *op, const aal_tensor *q, const aal_tensor *k,
                               const aal_tensor *v, int heads, const aal_tensor *p,
                               const aal_tensor *o, aal_error *err)
{
  int rc;
  if ((rc = attention_geometry(op, q, k, v, heads, p, err)) != AAL_OK ||
      (rc = require_qkv(o, q, op, "o", err)) != AAL_OK)
    return rc;
  const aal_tensor *in[3] = {q, k, v};
  if ((rc = require_apart(op, p, "p", in, 3, err)) != AAL_OK ||
      (rc = require_apart(op, o, "o", in, 3, err)) != AAL_OK)
    return rc;
  return aal_tensor_shares(o, p)
             ? aal_fail(err, AAL_EINVAL, "%s: o must not share storage with p", op)
             : AAL_OK;
}

int aal_attention_backward_args(const char *op, const aal_tensor *dout, const aal_tensor *q,
                                const aal_tensor *k, const aal_tensor *v,
                                const aal_tensor *p, int heads, const aal_tensor *dq,
                                const aal_tensor *dk, const aal_tensor *dv, aal_error *err)
{
  int rc;
  if ((rc = attention_geometry(op, q, k, v, heads, p, err)) != AAL_OK ||
      (rc = require_qkv(dout, q, op, "dout", err)) != AAL_OK ||
      (rc = require_qkv(dq, q, op, "dq", err)) != AAL_OK ||
      (rc = require_qkv(dk, q, op, "dk", err)) != AAL_OK ||
      (rc = require_qkv(dv, q, op, "dv", err)) != AAL_OK)
    return rc;
  const aal_tensor *in[5] = {dout, q, k, v, p};
  if ((rc = require_apart(op, dq, "dq", in, 5, err)) != AAL_OK ||
      (rc = require_apart(op, dk, "dk", in, 5, err)) != AAL_OK ||
      (rc = require_apart(op, dv, "dv", in, 5, err)) != AAL_OK)
    return rc;
  if (aal_tensor_shares(dq, dk) || aal_tensor_shares(dq, dv) || aal_tensor_shares(dk, dv))
    return aal_fail(err, AAL_EINVAL, "%s: dq, dk and dv must be distinct tensors", op);
  return AAL_OK;
}

int aal_attention_forward(const aal_tensor *q, const aal_tensor *k, const aal_tensor *v,
                          int heads, aal_tensor *p, aal_tensor *o, aal_error *err)
{
  static const char op[] = "attention forward";
  int rc = aal_attention_forward_args(op, q, k, v, heads, p, o, err);
  if (rc != AAL_OK)
    return rc;
  const size_t b = q->shape[0], t = q->shape[1], e = q->shape[2], dh = e / (size_t)heads;
  const int it = (int)t, ie = (int)e, idh = (int)dh;
  const double scale = 1.0 / sqrt((double)dh);
  memset(p->data, 0, p->size * sizeof(double));
  memset(o->data, 0, o->size * sizeof(double));
  for (size_t bb = 0; bb < b; bb++)
    for (size_t h = 0; h < (size_t)heads; h++) /* S = scale Q K^T [T, T] */
      cblas_dgemm(CblasRowMajor, CblasNoTrans, CblasTrans, it, it, idh, scale,
                  q->data + bb * t * e + h * dh, ie, k->data + bb * t * e + h * dh, ie, 0.0,
                  p->data + (bb * (size_t)heads + h) * t * t, it);
  if ((rc = aal_softmax_forward(p, p, err)) != AAL_OK)
    return rc;
  for (size_t bb = 0; bb < b; bb++)
    for (size_t h = 0; h < (size_t)heads; h++) /* O = P V [T, dh] */
      cblas_dgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, it, idh, it, 1.0,
                  p->data + (bb * (size_t)heads + h) * t * t, it,
                  v->data + bb * t * e + h * dh, ie, 0.0, o->data + bb * t * e + h * dh, ie);
  return AAL_OK;
}

int aal_attention_backward(const aal_tensor *dout, const aal_tensor *q, const aal_tensor *k,
                           const aal_tensor *v, const aal_tensor *p, int heads,
                           aal_tensor *dq, aal_tensor *dk, aal_tensor *dv, aal_error *err)
{
  static const char op[] = "attention backward";
  int rc = aal_attention_backward_args(op, dout, q, k, v, p, heads, dq, dk, dv, err);
  if (rc != AAL_OK)
    return rc;
  const size_t b = q->shape[0], t = q->shape[1], e = q->shape[2], dh = e / (size_t)heads;
  const int it = (int)t, ie = (int)e, idh = (int)dh;
  const double scale = 1.0 / sqrt((double)dh);
  /* dP, then dS in place: [B, H, T, T] */
  aal_tensor *ds = aal_tensor_new4((long)b, heads, (long)t, (long)t, NULL);
  if (ds == NULL)
    return aal_fail(err, AAL_ENOMEM, "%s: no memory for dP [%zu, %d, %zu, %zu]", op, b, heads,
                    t, t);
  memset(dq->data, 0, dq->size * sizeof(double));
  memset(dk->data, 0, dk->size * sizeof(double));
  memset(dv->data, 0, dv->size * sizeof(double));
  for (size_t bb = 0; bb < b; bb++)
    for (size_t h = 0; h < (size_t)heads; h++) { /* dP = dO V^T */
      const size_t off = bb * t * e + h * dh;
      cblas_dgemm(CblasRowMajor, CblasNoTrans, CblasTrans, it, it, idh, 1.0, dout->data + off,
                  ie, v->data + off, ie, 0.0, ds->data + (bb * (size_t)heads + h) * t * t, it);
    }
  rc = aal_softmax_backward(ds, p, ds, err);
  for (size_t bb = 0; rc == AAL_OK && bb < b; bb++)
    for (size_t h = 0; h < (size_t)heads; h++) {
      const size_t off = bb * t * e + h * dh, po = (bb * (size_t)heads + h) * t * t;
      /* dQ = scale dS K,  dK = scale dS^T Q,  dV = P^T dO */
      cblas_dgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, it, idh, it, scale,
                  ds->data + po, it, k->data + off, ie, 0.0, dq->data + off, ie);
      cblas_dgemm(CblasRowMajor, CblasTrans, CblasNoTrans, it, idh, it, scale, ds->data + po,
                  it, q->data + off, ie, 0.0, dk->data + off, ie);
      cblas_dgemm(CblasRowMajor, CblasTrans, CblasNoTrans, it, idh, it, 1.0, p->data + po, it,
                  dout->data + off, ie, 0.0, dv->data + off, ie);
    }
  aal_tensor_release(ds);
  return rc;
}
