/* Time per op of a backend table (`aal bench step --profile`): a copy of the table whose
 * ops time each call of the backend's own op into the selected slot (one per rule).
 * Wall time on the calling thread, so it is what the step waits for: exact for the CPU
 * backends (whose ops return when done), the launch time only for cuda's asynchronous
 * kernels.  Memory functions (alloc, upload, download) are not wrapped. */
#ifndef AAL_BENCH_PROFILE_H
#define AAL_BENCH_PROFILE_H

#include <stdio.h>

#include "kernels/backend.h"

typedef struct aal_prof aal_prof;

/* Opens backend `name` (aal_backend_open) and the timed table over it, with `slots`
 * slots (1..64); nothing is timed until aal_prof_select. */
int aal_prof_open(const char *name, int slots, aal_prof **p, aal_error *err);
/* The table to build the adapter on (aal_ops_from_backend); it lives as long as p. */
const aal_backend *aal_prof_table(const aal_prof *p);
/* Later calls are timed into slot (0..slots-1), or not at all (-1). */
void aal_prof_select(aal_prof *p, int slot);
/* Slot's ops, one row each (calls, ms and share per step, over `steps` steps whose wall
 * time was step_seconds in all), then the time outside the ops. */
void aal_prof_print(const aal_prof *p, int slot, long steps, double step_seconds, FILE *out);
/* Destroys the backend and frees p (NULL is fine). */
void aal_prof_close(aal_prof *p);

#endif
