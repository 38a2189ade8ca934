/* The learning indicator of SPEC section 2, per sample:
 *
 *     LI = r^T (2h - r) / ||h||^2
 *
 * for the flattened forward input h and alternative activation r of one layer.
 * A sample with h exactly zero has no LI: it is counted (zero_norm), flagged
 * invalid, and its li entry is left untouched (never divided by zero, never given
 * an epsilon-regularised value).  Used by theory/ and by the ResNet trainer, so the
 * API takes plain arrays: a batch is row-major [n_samples, n_per_sample]. */
#ifndef AAL_LI_H
#define AAL_LI_H

#include <stddef.h>

#include "sim/core/error.h"

/* Fills li[s] and valid[s] (1: li[s] is the LI; 0: h_s == 0, li[s] not written) for
 * every sample s, and *zero_norm with the number of invalid samples.
 *
 * Accuracy: h and r are scaled by the same power of two (exact) so that the sums
 * neither overflow nor underflow; then, with hh = h^T h, rh = r^T h, rr = r^T r
 * summed in one loop, LI = 2 (rh/hh) - rr/hh.  This form gives LI = 1 exactly for
 * r = h and LI = -3 exactly for r = -h (rh = -hh, rr = hh bit for bit), and an
 * absolute error of a few ulps of (2|rh| + rr)/hh in general.
 * Errors: AAL_EINVAL (NULL pointer with n_samples > 0, n_per_sample == 0),
 * AAL_ENUMERIC (a non-finite h or r, or an LI that overflows), naming the sample. */
int aal_li_batch(const double *h, const double *r, size_t n_samples, size_t n_per_sample,
                 double *li, unsigned char *valid, size_t *zero_norm, aal_error *err);

/* The three sums for one sample after the common power-of-two scaling (so only their
 * ratios are meaningful): *hh = h^T h, *rh = r^T h, *rr = r^T r.  Returns 0 when h is
 * exactly zero (nothing written), 1 otherwise.  No error checking beyond that. */
int aal_li_dots(const double *h, const double *r, size_t n, double *hh, double *rh,
                double *rr);

/* Statistics of the valid LI values of one or many batches. */
typedef struct {
  size_t count;      /* valid values summarised */
  size_t zero_norm;  /* entries flagged invalid (samples with h == 0) */
  double min, p05, median, mean, max; /* NaN when count == 0: there is nothing to report */
} aal_li_summary;

/* li[n], valid[n] (valid may be NULL: all valid).  Percentiles are GSL's
 * gsl_stats_quantile_from_sorted_data (linear interpolation between order
 * statistics).  Errors: AAL_EINVAL, AAL_ENOMEM, AAL_ENUMERIC (a valid value that is
 * not finite). */
int aal_li_summarize(const double *li, const unsigned char *valid, size_t n,
                     aal_li_summary *out, aal_error *err);

#endif
