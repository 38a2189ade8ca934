/* kcheck's attention cases (shape a = B, b = T, c = heads, len = dh; q, k, v, o [B, T, E],
 * E = heads dh, p [B, heads, T, T]).
 *
 * Inputs: q, k kc_sym(2) (scores up to 4 sqrt(dh): softmax rows far from uniform), v and
 * dout kc_sym(1); backward's p is the softmax of the scores of its q and k, computed in
 * double and rounded to float (what a forward saves).
 *
 * Bounds per (b, head), with scale = 1/sqrt(dh) (rounded once, u), S = scale Q K^T,
 * Sa = scale |Q| |K|^T (the scores' terms' magnitudes), every sum of L terms in any order
 * within kc_gamma(L) of its terms' magnitudes (c = 2 where deterministic), other
 * roundings counted at u and doubled (c = 2):
 * Forward.
 *   eS_ij = kc_gamma(dh + 1) Sa_ij   (dh products, the sum, the scale);
 *   P: softmax of S with S's error: relative rel_ij = eS_ij + max_k eS_ik (the argument
 *      of exp and the row's max) + u (D_ij + max_k D_ik) + (T + 5) u (the softmax case's
 *      own: exp's argument rounding with D = max S - S, expf 2u, the sum, the division):
 *      |P - P_ref| <= 2 P_ref rel;
 *   O = P V: |O - O_ref|_ic <= 2 (sum_j P_ij rel_ij |V_jc| + kc_gamma(T) sum_j P_ij |V_jc|).
 * Backward (P exact, an input):
 *   dP = dO V^T, magnitudes A = |dO| |V|^T, error kc_gamma(dh) A;
 *   s_i = sum_j dP_ij P_ij, error (kc_gamma(dh) + kc_gamma(T)) sum_j A_ij P_ij + u |s|;
 *   dS = P (dP - s): magnitudes G_ij = P_ij (A_ij + sum_k A_ik P_ik), error
 *      f G_ij with f = kc_gamma(dh) + kc_gamma(T + 1) + 4u;
 *   dQ = scale dS K:   |err| <= 2 scale (f + kc_gamma(T + 1) + u) (G |K|)_ic;
 *   dK = scale dS^T Q: |err| <= 2 scale (f + kc_gamma(T + 1) + u) (G^T |Q|)_jc;
 *   dV = P^T dO:       |err| <= 2 kc_gamma(T) (P^T |dO|)_jc. */
#include "kernels/check/kcheck_internal.h"

#include <math.h>
#include <stdlib.h>

typedef struct {
  int b, t, h, dh, e;
} att_geom;

static att_geom geom(const kc_shape *sh)
{
  return (att_geom){sh->a, sh->b, sh->c, (int)sh->len, sh->c * (int)sh->len};
}

/* element (bb, i, head, c) of a [B, T, E] tensor */
static size_t at3(const att_geom *g, int bb, int i, int h, int c)
{
  return ((size_t)bb * g->t + i) * g->e + (size_t)h * g->dh + c;
}

static size_t at4(const att_geom *g, int bb, int h, int i, int j)
{
  return (((size_t)bb * g->h + h) * g->t + i) * g->t + j;
}

/* S and Sa of head (bb, h) into s, sa [T, T]. */
static void scores(const att_geom *g, const double *q, const double *k, int bb, int h,
                   double *s, double *sa)
{
  const double scale = 1.0 / sqrt((double)g->dh);
  for (int i = 0; i < g->t; i++)
    for (int j = 0; j < g->t; j++) {
      double acc = 0.0, mag = 0.0;
      for (int c = 0; c < g->dh; c++) {
        acc += q[at3(g, bb, i, h, c)] * k[at3(g, bb, j, h, c)];
        mag += fabs(q[at3(g, bb, i, h, c)] * k[at3(g, bb, j, h, c)]);
      }
      s[(size_t)i * g->t + j] = scale * acc;
      if (sa != NULL)
        sa[(size_t)i * g->t + j] = scale * mag;
    }
}

static int att_forward_call(const aal_backend *be, int v, kc_case *k, aal_error *err)
{
  const att_geom g = geom(k->sh);
  return be->attention_forward(be, g.b, g.t, g.h, g.dh, KC_DEV(k, 0, v), KC_DEV(k, 1, v),
                               KC_DEV(k, 2, v), KC_DEV(k, 3, v), KC_DEV(k, 4, v), err);
}

static int att_backward_call(const aal_backend *be, int v, kc_case *k, aal_error *err)
{
  const att_geom g = geom(k->sh);
  return be->attention_backward(be, g.b, g.t, g.h, g.dh, KC_DEV(k, 0, v), KC_DEV(k, 1, v),
                                KC_DEV(k, 2, v), KC_DEV(k, 3, v), KC_DEV(k, 4, v),
                                KC_DEV(k, 5, v), KC_DEV(k, 6, v), KC_DEV(k, 7, v), err);
}

static void forward_bounds(kc_run *run, kc_case *k, double *bp, double *bo, double *s,
                           double *sa, double *rel)
{
  const att_geom g = geom(k->sh);
  const double u = run->u, *q = k->buf[0].val[KC_REF], *kk = k->buf[1].val[KC_REF];
  const double *v = k->buf[2].val[KC_REF], *p = k->buf[3].val[KC_REF];
  const double gs = kc_gamma(run, g.dh + 1), gt = kc_gamma(run, g.t);
  for (int bb = 0; bb < g.b; bb++)
    for (int h = 0; h < g.h; h++) {
      scores(&g, q, kk, bb, h, s, sa);
      for (int i = 0; i < g.t; i++) {
        const double *si = s + (size_t)i * g.t, *sai = sa + (size_t)i * g.t;
        double mx = -INFINITY, emax = 0.0, dmax = 0.0;
        for (int j = 0; j < g.t; j++) {
          mx = fmax(mx, si[j]);
          emax = fmax(emax, gs * sai[j]);
        }
        for (int j = 0; j < g.t; j++)
          dmax = fmax(dmax, mx - si[j]);
        for (int j = 0; j < g.t; j++) {
          rel[(size_t)i * g.t + j] =
              gs * sai[j] + emax + u * ((mx - si[j]) + dmax) + (g.t + 5) * u;
          bp[at4(&g, bb, h, i, j)] = 2 * p[at4(&g, bb, h, i, j)] * rel[(size_t)i * g.t + j];
        }
      }
      for (int i = 0; i < g.t; i++)
        for (int c = 0; c < g.dh; c++) {
          double a = 0.0, mag = 0.0;
          for (int j = 0; j < g.t; j++) {
            const double pv = p[at4(&g, bb, h, i, j)] * fabs(v[at3(&g, bb, j, h, c)]);
            a += pv * rel[(size_t)i * g.t + j];
            mag += pv;
          }
          bo[at3(&g, bb, i, h, c)] = 2 * (a + gt * mag);
        }
    }
}

int kc_attention_forward_case(kc_run *run, const kc_shape *sh, kc_row *row)
{
  const att_geom g = geom(sh);
  const size_t nq = (size_t)g.b * g.t * g.e, np = (size_t)g.b * g.h * g.t * g.t;
  const size_t tt = (size_t)g.t * g.t;
  kc_case k = {.sh = sh};
  kc_add(&k, "q", KC_IN, nq, 0);
  kc_add(&k, "k", KC_IN, nq, 0);
  kc_add(&k, "v", KC_IN, nq, 0);
  kc_add(&k, "p", KC_OUT, np, 0);
  kc_add(&k, "o", KC_OUT, nq, 0);
  double *bp = NULL, *bo = NULL, *s = NULL, *sa = NULL, *rel = NULL;
  int ran = 0, rc = kc_alloc(run, &k);
  if (rc == AAL_OK && ((bp = kc_bounds(run, np)) == NULL || (bo = kc_bounds(run, nq)) == NULL ||
                       (s = kc_bounds(run, tt)) == NULL || (sa = kc_bounds(run, tt)) == NULL ||
                       (rel = kc_bounds(run, tt)) == NULL))
    rc = AAL_ENOMEM;
  if (rc == AAL_OK) {
    kc_fill_sym(run, &k.buf[0], 2.0);
    kc_fill_sym(run, &k.buf[1], 2.0);
    kc_fill_sym(run, &k.buf[2], 1.0);
    rc = kc_execute(run, &k, att_forward_call, 0, row, &ran);
  }
  if (rc == AAL_OK && ran) {
    forward_bounds(run, &k, bp, bo, s, sa, rel);
    kc_check_bound(row, &k.buf[3], bp, 0);
    kc_check_bound(row, &k.buf[4], bo, 0);
  }
  free(bp);
  free(bo);
  free(s);
  free(sa);
  free(rel);
  kc_free(run, &k);
  return rc;
}

static void backward_bounds(kc_run *run, kc_case *k, double *bq, double *bk, double *bv,
                            double *a, double *gm)
{
  const att_geom g = geom(k->sh);
  const double u = run->u, *dout = k->buf[0].val[KC_REF], *q = k->buf[1].val[KC_REF];
  const double *kk = k->buf[2].val[KC_REF], *v = k->buf[3].val[KC_REF];
  const double *p = k->buf[4].val[KC_REF];
  const double scale = 1.0 / sqrt((double)g.dh), gt = kc_gamma(run, g.t);
  const double f = kc_gamma(run, g.dh) + kc_gamma(run, g.t + 1) + 4 * u;
  const double fq = 2 * scale * (f + kc_gamma(run, g.t + 1) + u);
  for (int bb = 0; bb < g.b; bb++)
    for (int h = 0; h < g.h; h++) {
      for (int i = 0; i < g.t; i++) /* A = |dO| |V|^T */
        for (int j = 0; j < g.t; j++) {
          double acc = 0.0;
          for (int c = 0; c < g.dh; c++)
            acc += fabs(dout[at3(&g, bb, i, h, c)] * v[at3(&g, bb, j, h, c)]);
          a[(size_t)i * g.t + j] = acc;
        }
      for (int i = 0; i < g.t; i++) { /* G = P (A + sum_k A P) */
        double sap = 0.0;
        for (int j = 0; j < g.t; j++)
          sap += a[(size_t)i * g.t + j] * p[at4(&g, bb, h, i, j)];
        for (int j = 0; j < g.t; j++)
          gm[(size_t)i * g.t + j] = p[at4(&g, bb, h, i, j)] * (a[(size_t)i * g.t + j] + sap);
      }
      for (int i = 0; i < g.t; i++)
        for (int c = 0; c < g.dh; c++) {
          double sq = 0.0, sk = 0.0, sv = 0.0;
          for (int j = 0; j < g.t; j++) {
            sq += gm[(size_t)i * g.t + j] * fabs(kk[at3(&g, bb, j, h, c)]);
            sk += gm[(size_t)j * g.t + i] * fabs(q[at3(&g, bb, j, h, c)]);
            sv += p[at4(&g, bb, h, j, i)] * fabs(dout[at3(&g, bb, j, h, c)]);
          }
          bq[at3(&g, bb, i, h, c)] = fq * sq;
          bk[at3(&g, bb, i, h, c)] = fq * sk;
          bv[at3(&g, bb, i, h, c)] = 2 * gt * sv;
        }
    }
}

int kc_attention_backward_case(kc_run *run, const kc_shape *sh, kc_row *row)
{
  const att_geom g = geom(sh);
  const size_t nq = (size_t)g.b * g.t * g.e, np = (size_t)g.b * g.h * g.t * g.t;
  const size_t tt = (size_t)g.t * g.t;
  kc_case k = {.sh = sh};
  kc_add(&k, "dout", KC_IN, nq, 0);
  kc_add(&k, "q", KC_IN, nq, 0);
  kc_add(&k, "k", KC_IN, nq, 0);
  kc_add(&k, "v", KC_IN, nq, 0);
  kc_add(&k, "p", KC_IN, np, 0);
  kc_add(&k, "dq", KC_OUT, nq, 0);
  kc_add(&k, "dk", KC_OUT, nq, 0);
  kc_add(&k, "dv", KC_OUT, nq, 0);
  double *bq = NULL, *bk = NULL, *bv = NULL, *a = NULL, *gm = NULL;
  int ran = 0, rc = kc_alloc(run, &k);
  if (rc == AAL_OK && ((bq = kc_bounds(run, nq)) == NULL || (bk = kc_bounds(run, nq)) == NULL ||
                       (bv = kc_bounds(run, nq)) == NULL || (a = kc_bounds(run, tt)) == NULL ||
                       (gm = kc_bounds(run, tt)) == NULL))
    rc = AAL_ENOMEM;
  if (rc == AAL_OK) {
    kc_fill_sym(run, &k.buf[0], 1.0);
    kc_fill_sym(run, &k.buf[1], 2.0);
    kc_fill_sym(run, &k.buf[2], 2.0);
    kc_fill_sym(run, &k.buf[3], 1.0);
    for (int bb = 0; bb < g.b; bb++) /* p: the softmax of the scores, rounded to float */
      for (int h = 0; h < g.h; h++) {
        scores(&g, k.buf[1].val[KC_REF], k.buf[2].val[KC_REF], bb, h, a, NULL);
        for (int i = 0; i < g.t; i++) {
          double mx = -INFINITY, sum = 0.0;
          for (int j = 0; j < g.t; j++)
            mx = fmax(mx, a[(size_t)i * g.t + j]);
          for (int j = 0; j < g.t; j++)
            sum += exp(a[(size_t)i * g.t + j] - mx);
          for (int j = 0; j < g.t; j++)
            k.buf[4].val[KC_REF][at4(&g, bb, h, i, j)] =
                (double)(float)(exp(a[(size_t)i * g.t + j] - mx) / sum);
        }
      }
    rc = kc_execute(run, &k, att_backward_call, 0, row, &ran);
  }
  if (rc == AAL_OK && ran) {
    backward_bounds(run, &k, bq, bk, bv, a, gm);
    kc_check_bound(row, &k.buf[5], bq, 0);
    kc_check_bound(row, &k.buf[6], bk, 0);
    kc_check_bound(row, &k.buf[7], bv, 0);
  }
  free(bq);
  free(bk);
  free(bv);
  free(a);
  free(gm);
  kc_free(run, &k);
  return rc;
}
