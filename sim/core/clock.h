/* The one clock of the project: seconds on a monotonic clock, for progress lines and
 * benchmarks (never for results). */
#ifndef AAL_CLOCK_H
#define AAL_CLOCK_H

double aal_clock_now(void);

#endif
