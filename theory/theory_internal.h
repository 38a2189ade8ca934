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

double aal_theory_norm2(const double *x, size_t n);  /* sum of squares */
double aal_theory_dot(const double *x, const double *y, size_t n);

#endif
