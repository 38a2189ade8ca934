/* Per-sample learning indicator in float32.
 *   li: h, r [n, per] -> li [n] = (2 r.h - r.r) / h.h, the three dot products in double
 *       (products of floats are exact in double, and a float's square cannot overflow or
 *       underflow one, so no scaling is needed); h = 0 gives NaN. */
#include "kernels/cpu/cpu32.h"
#include "kernels/backend_check.h"

#include <math.h>

int aal_cpu32_li_reduce(const aal_backend *be, int n, size_t per, const void *h, const void *r,
                        void *li, aal_error *err)
{
  (void)be;
  static const char op[] = "cpu32 li_reduce";
  int rc;
  if ((rc = aal_be_check_pos(op, "n", n, err)) != AAL_OK ||
      (rc = aal_be_check_count(op, per, sizeof(float), err)) != AAL_OK ||
      (rc = aal_be_check_ptrs(op, "h, r, li", err, 3, h, r, li)) != AAL_OK)
    return rc;
  float *pl = li;
  for (int s = 0; s < n; s++) {
    const float *hs = (const float *)h + (size_t)s * per, *rs = (const float *)r + (size_t)s * per;
    double hh = 0.0, rh = 0.0, rr = 0.0;
    for (size_t i = 0; i < per; i++) {
      const double hv = hs[i], rv = rs[i];
      hh += hv * hv;
      rh += rv * hv;
      rr += rv * rv;
    }
    if (!isfinite(hh) || !isfinite(rh) || !isfinite(rr))
      return aal_fail(err, AAL_ENUMERIC, "%s: sample %d has a non-finite h or r", op, s);
    pl[s] = hh > 0.0 ? (float)(2.0 * (rh / hh) - rr / hh) : NAN;
  }
  return AAL_OK;
}
