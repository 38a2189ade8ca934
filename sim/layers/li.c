#include "sim/layers/li.h"

#include <math.h>
#include <stdlib.h>

#include <gsl/gsl_sort.h>
#include <gsl/gsl_statistics_double.h>

/* Exponent e with 2^e >= max|h_i| > 2^(e-1), so that h_i 2^-e lies in (-1, 1) (and the
 * largest in [1/2, 1)): scaling by a power of two is exact, so ratios are unchanged,
 * n squares of numbers below 1 cannot overflow, and h^T h >= 1/4 cannot underflow.
 * Returns 0 when h is exactly zero. */
static int li_exponent(const double *h, size_t n, int *e)
{
  double amax = 0.0;
  for (size_t i = 0; i < n; i++) {
    const double a = fabs(h[i]);
    if (a > amax)
      amax = a;
  }
  if (amax == 0.0)
    return 0;
  (void)frexp(amax, e); /* amax = f 2^e, f in [1/2, 1) */
  return 1;
}

int aal_li_dots(const double *h, const double *r, size_t n, double *hh, double *rh,
                double *rr)
{
  int e;
  if (!li_exponent(h, n, &e))
    return 0;
  /* 2^-e as two factors, each representable even for subnormal h (e down to -1073),
   * where 2^-e alone would overflow; two multiplications by powers of two stay exact. */
  const double s1 = ldexp(1.0, -e / 2), s2 = ldexp(1.0, -e - (-e / 2));
  /* One loop, same order for all three sums: for r = +-h the products r_i h_i and
   * r_i r_i are +-h_i h_i exactly, so rh = +-hh and rr = hh bit for bit. */
  double a = 0.0, b = 0.0, c = 0.0;
  for (size_t i = 0; i < n; i++) {
    const double hi = h[i] * s1 * s2, ri = r[i] * s1 * s2;
    a += hi * hi;
    b += ri * hi;
    c += ri * ri;
  }
  *hh = a;
  *rh = b;
  *rr = c;
  return 1;
}

int aal_li_batch(const double *h, const double *r, size_t n_samples, size_t n_per_sample,
                 double *li, unsigned char *valid, size_t *zero_norm, aal_error *err)
{
  if (zero_norm == NULL)
    return aal_fail(err, AAL_EINVAL, "aal_li_batch: zero_norm is NULL");
  *zero_norm = 0;
  if (n_samples == 0)
    return AAL_OK;
  if (h == NULL || r == NULL || li == NULL || valid == NULL)
    return aal_fail(err, AAL_EINVAL, "aal_li_batch: NULL array for %zu samples", n_samples);
  if (n_per_sample == 0)
    return aal_fail(err, AAL_EINVAL, "aal_li_batch: n_per_sample is 0");
  for (size_t s = 0; s < n_samples; s++) {
    const double *hs = h + s * n_per_sample, *rs = r + s * n_per_sample;
    /* Finite inputs are required: a NaN would otherwise either poison the LI or, in h,
     * hide inside the max used for scaling. */
    for (size_t i = 0; i < n_per_sample; i++)
      if (!isfinite(hs[i]) || !isfinite(rs[i]))
        return aal_fail(err, AAL_ENUMERIC, "aal_li_batch: sample %zu element %zu: h = %g, r = %g",
                        s, i, hs[i], rs[i]);
    double hh, rh, rr;
    if (!aal_li_dots(hs, rs, n_per_sample, &hh, &rh, &rr)) {
      valid[s] = 0;
      (*zero_norm)++;
      continue;
    }
    const double v = 2.0 * (rh / hh) - rr / hh;
    if (!isfinite(v)) /* r enormous relative to h: rr/hh overflows */
      return aal_fail(err, AAL_ENUMERIC, "aal_li_batch: sample %zu: LI overflows (|r| >> |h|)", s);
    li[s] = v;
    valid[s] = 1;
  }
  return AAL_OK;
}

int aal_li_summarize(const double *li, const unsigned char *valid, size_t n,
                     aal_li_summary *out, aal_error *err)
{
  if (out == NULL || (n > 0 && li == NULL))
    return aal_fail(err, AAL_EINVAL, "aal_li_summarize: NULL argument");
  out->count = 0;
  out->zero_norm = 0;
  out->min = out->p05 = out->median = out->mean = out->max = NAN;
  size_t count = 0;
  for (size_t i = 0; i < n; i++) {
    if (valid != NULL && !valid[i])
      continue;
    if (!isfinite(li[i]))
      return aal_fail(err, AAL_ENUMERIC, "aal_li_summarize: value %zu is %g", i, li[i]);
    count++;
  }
  out->zero_norm = n - count;
  if (count == 0)
    return AAL_OK;
  double *v = malloc(count * sizeof *v);
  if (v == NULL)
    return aal_fail(err, AAL_ENOMEM, "aal_li_summarize: %zu values", count);
  size_t k = 0;
  for (size_t i = 0; i < n; i++)
    if (valid == NULL || valid[i])
      v[k++] = li[i];
  gsl_sort(v, 1, count);
  out->count = count;
  out->min = v[0];
  out->max = v[count - 1];
  out->p05 = gsl_stats_quantile_from_sorted_data(v, 1, count, 0.05);
  out->median = gsl_stats_median_from_sorted_data(v, 1, count);
  out->mean = gsl_stats_mean(v, 1, count);
  free(v);
  return AAL_OK;
}
