/* Shared between the theory/ sources; not installed. */
#ifndef AAL_THEORY_INTERNAL_H
#define AAL_THEORY_INTERNAL_H

#include "theory/theory.h"

/* Per-testbed losses (lsq.c, softmax.c); arguments as aal_theory_loss, all non-NULL
 * except delta and scale. */
void aal_theory_lsq_loss(const aal_theory_problem *p, const double *W, double *f, double *delta,
                         double *scale);
void aal_theory_softmax_loss(const aal_theory_problem *p, const double *W, double *f,
                             double *delta, double *scale);

/* The sweep's totals (sweep.c), shared with the ASA sweep (asa.c). */
void aal_theory_summary_init(aal_theory_sweep_summary *sum);
void aal_theory_summary_add(aal_theory_sweep_summary *sum, const aal_theory_result *r);

double aal_theory_norm2(const double *x, size_t n);  /* sum of squares */
double aal_theory_dot(const double *x, const double *y, size_t n);

#endif
