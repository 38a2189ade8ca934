/* The processes of a data-parallel run and what they say to each other (sim/dist/dist.h
 * makes one over MPI).  Every call is collective: every process makes it, in the same
 * order, with the same n or bytes.
 *
 *   sum     afterwards every process holds, in v[n], the elementwise sum of every
 *           process's v, added in rank order (process 0's value, + 1's, + 2's, ...):
 *           the order is the code's, not the MPI library's, so every process holds the
 *           same bits and a run repeats bit for bit;
 *   gather  process 0 receives every process's `bytes` bytes in rank order into
 *           all[size * bytes] (all is unused elsewhere);
 *   bcast   every process receives process 0's `bytes` bytes;
 *   abort   stops every process of the run with exit status code (MPI_Abort): for a
 *           failure that only this process saw, after which the others would wait in a
 *           collective forever.
 *
 * A function that takes a comm takes NULL for "this process alone": nothing to add,
 * gather copies, bcast does nothing. */
#ifndef AAL_COMM_H
#define AAL_COMM_H

#include <stddef.h>
#include <string.h>

#include "sim/core/error.h"

/* What this process spent in collectives since the comm opened: wall seconds inside
 * them (waiting for the others included) and the bytes it sent. */
typedef struct {
  double seconds, bytes_sent;
  long calls;
} aal_comm_stats;

typedef struct aal_comm aal_comm;
struct aal_comm {
  int rank, size;
  aal_comm_stats *stats;  /* NULL: not counted */
  int (*sum)(const aal_comm *c, double *v, size_t n, aal_error *err);
  int (*gather)(const aal_comm *c, const void *mine, size_t bytes, void *all, aal_error *err);
  int (*bcast)(const aal_comm *c, void *buf, size_t bytes, aal_error *err);
  void (*abort)(const aal_comm *c, int code);
  void *ctx;
};

static inline int aal_comm_sum(const aal_comm *c, double *v, size_t n, aal_error *err)
{
  return c != NULL ? c->sum(c, v, n, err) : AAL_OK;
}

static inline int aal_comm_gather(const aal_comm *c, const void *mine, size_t bytes, void *all,
                                  aal_error *err)
{
  if (c != NULL)
    return c->gather(c, mine, bytes, all, err);
  memmove(all, mine, bytes);
  return AAL_OK;
}

static inline int aal_comm_bcast(const aal_comm *c, void *buf, size_t bytes, aal_error *err)
{
  return c != NULL ? c->bcast(c, buf, bytes, err) : AAL_OK;
}

static inline int aal_comm_rank(const aal_comm *c) { return c != NULL ? c->rank : 0; }
static inline int aal_comm_size(const aal_comm *c) { return c != NULL ? c->size : 1; }

/* Collective: every process learns every process's status rc.  Returns AAL_OK when all
 * are AAL_OK; else the status of the lowest failing rank k, with err untouched on rank k
 * (its own message) and set on the others to "rank k of N failed: see its message". */
int aal_comm_agree(const aal_comm *c, int rc, aal_error *err);

#endif
