/* Alternative activations r with a settable or natural LI (see theory/theory.h).
 *
 * Closed forms (||h|| > 0), all from LI = r^T(2h - r)/||h||^2:
 *   r = alpha h:        LI = 2 alpha - alpha^2; for a target t <= 1 the roots are
 *                       alpha = 1 -+ sqrt(1 - t) (both give the same LI).
 *   r = h + e (any e):  r^T(2h - r) = (h + e)^T (h - e) = ||h||^2 - ||e||^2, so
 *                       LI = 1 - ||e||^2/||h||^2 whatever the direction of e.  ORTHO
 *                       takes e _|_ h (then r^T h = ||h||^2, c = 1), STALE a random e.
 *   r = eps s, h = x + eps s (ASA, s = +-1): r^T(2h - r) = 2 eps s^T x + eps^2 n
 *                       = 2 eps ||x||_1 + eps^2 n  (s^T x = ||x||_1).
 *   With lr_expansion k, r = k eps s (decoding d), h = x + eps b (b the forward bits):
 *                       r^T h = k eps (||x||_1 + eps nnz(x)) for all three decodings
 *                       (where x = 0 after a ReLU, h = 0), ||r||^2 = k^2 eps^2 times n
 *                       (PM1, MIXED) or nnz(x) (01).  So the new loss of a one-sample
 *                       step, which depends on r only through c = r^T h/||h||^2, is the
 *                       same for 01 and MIXED, while MIXED's LI is lower by
 *                       k^2 eps^2 (n - nnz)/||h||^2 (SPEC section 4).
 *   r Gaussian, ||r|| = ||h||:  LI = 2 r^T h/||h||^2 - 1, mean -1.
 *   r = -h:             LI = -3. */
#include <math.h>
#include <string.h>

#include <gsl/gsl_randist.h>

#include "theory/theory_internal.h"

static const char *const family_names[AAL_THEORY_NFAMILIES] = {
    "parallel", "parallel_hi", "ortho", "stale", "sign", "noise", "flip"};

const char *aal_theory_family_name(aal_theory_family f)
{
  return (unsigned)f < AAL_THEORY_NFAMILIES ? family_names[f] : "?";
}

int aal_theory_family_parse(const char *name, aal_theory_family *f)
{
  for (int i = 0; i < AAL_THEORY_NFAMILIES; i++)
    if (strcmp(name, family_names[i]) == 0) {
      *f = (aal_theory_family)i;
      return 1;
    }
  return 0;
}

int aal_theory_family_has_target(aal_theory_family f)
{
  return f == AAL_THEORY_PARALLEL || f == AAL_THEORY_PARALLEL_HI || f == AAL_THEORY_ORTHO ||
         f == AAL_THEORY_STALE;
}

/* A Gaussian vector of Euclidean norm `norm`, optionally orthogonal to h (hh = ||h||^2 >
 * 0).  Orthogonalised twice (classical Gram-Schmidt loses orthogonality when z is
 * nearly parallel to h; the second pass restores it to rounding level). */
static int random_direction(gsl_rng *rng, const double *h, double hh, int orthogonal, size_t n,
                            double norm, double *out, aal_error *err)
{
  for (int attempt = 0; attempt < 100; attempt++) {
    for (size_t i = 0; i < n; i++)
      out[i] = gsl_ran_gaussian_ziggurat(rng, 1.0);
    if (orthogonal)
      for (int pass = 0; pass < 2; pass++) {
        const double k = aal_theory_dot(out, h, n) / hh;
        for (size_t i = 0; i < n; i++)
          out[i] -= k * h[i];
      }
    const double zz = aal_theory_norm2(out, n);
    /* A draw (almost) inside span(h) has no usable direction: draw again. */
    if (zz > 1e-6 * (double)n) {
      const double k = norm / sqrt(zz);
      for (size_t i = 0; i < n; i++)
        out[i] *= k;
      return AAL_OK;
    }
  }
  return aal_fail(err, AAL_ENUMERIC, "make_r: no random direction found in 100 draws (n=%zu)", n);
}

int aal_theory_make_r(const aal_theory_rspec *spec, const double *h, size_t n, gsl_rng *rng,
                      double *r, aal_error *err)
{
  if (spec == NULL || h == NULL || r == NULL || n == 0)
    return aal_fail(err, AAL_EINVAL, "make_r: NULL or empty argument");
  const double t = spec->target_li;
  if (aal_theory_family_has_target(spec->family) && !(t <= 1.0 && isfinite(t)))
    return aal_fail(err, AAL_EINVAL, "make_r: %s: target LI %g must be finite and <= 1",
                    aal_theory_family_name(spec->family), t);
  const int needs_rng = spec->family == AAL_THEORY_ORTHO || spec->family == AAL_THEORY_STALE ||
                        spec->family == AAL_THEORY_NOISE;
  if (needs_rng && rng == NULL)
    return aal_fail(err, AAL_EINVAL, "make_r: %s needs a random generator",
                    aal_theory_family_name(spec->family));
  const double hh = aal_theory_norm2(h, n);
  switch (spec->family) {
  case AAL_THEORY_PARALLEL:
  case AAL_THEORY_PARALLEL_HI: {
    const double s = sqrt(1.0 - t);
    const double alpha = spec->family == AAL_THEORY_PARALLEL ? 1.0 - s : 1.0 + s;
    for (size_t i = 0; i < n; i++)
      r[i] = alpha * h[i];
    return AAL_OK;
  }
  case AAL_THEORY_ORTHO:
  case AAL_THEORY_STALE: {
    if (t == 1.0 || hh == 0.0) {
      memcpy(r, h, n * sizeof *r);
      return AAL_OK;
    }
    if (spec->family == AAL_THEORY_ORTHO && n < 2)
      return aal_fail(err, AAL_EINVAL, "make_r: ortho needs n >= 2 (no direction _|_ h)");
    int rc = random_direction(rng, h, hh, spec->family == AAL_THEORY_ORTHO, n,
                              sqrt((1.0 - t) * hh), r, err);
    if (rc != AAL_OK)
      return rc;
    /* ORTHO: r = h + o.  STALE: r = h - g (h = r + g as x_b = x_a + residual). */
    const double sign = spec->family == AAL_THEORY_ORTHO ? 1.0 : -1.0;
    for (size_t i = 0; i < n; i++)
      r[i] = h[i] + sign * r[i];
    return AAL_OK;
  }
  case AAL_THEORY_SIGN: {
    if (!(spec->eps > 0.0) || !isfinite(spec->eps) || !(spec->expansion > 0.0) ||
        !isfinite(spec->expansion))
      return aal_fail(err, AAL_EINVAL, "make_r: sign needs eps > 0 and expansion > 0 (%g, %g)",
                      spec->eps, spec->expansion);
    if ((unsigned)spec->decoding >= AAL_THEORY_NDECODINGS)
      return aal_fail(err, AAL_EINVAL, "make_r: unknown decoding %d", (int)spec->decoding);
    const double a = spec->expansion * spec->eps;
    /* the bit is (h_i > 0), see theory.h; what a 0 bit decodes to depends on the rule */
    const double zero_bit = spec->decoding == AAL_THEORY_DECODE_01 ? 0.0 : -a;
    for (size_t i = 0; i < n; i++)
      r[i] = h[i] > 0.0 ? a : zero_bit;
    return AAL_OK;
  }
  case AAL_THEORY_NOISE:
    if (hh == 0.0) {
      memset(r, 0, n * sizeof *r);
      return AAL_OK;
    }
    return random_direction(rng, h, hh, 0, n, sqrt(hh), r, err);
  case AAL_THEORY_FLIP:
    for (size_t i = 0; i < n; i++)
      r[i] = -h[i];
    return AAL_OK;
  }
  return aal_fail(err, AAL_EINVAL, "make_r: unknown family %d", (int)spec->family);
}
