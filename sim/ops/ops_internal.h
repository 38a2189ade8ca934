/* Private to sim/ops: the backend buffers the adapter's tensors live in and the
 * bookkeeping of one call (sim/ops/resident.c), which the backend adapter
 * (sim/ops/adapter.c) runs its calls through, and the argument contracts that the two
 * tables share (sim/ops/ref.c).  Not installed. */
#ifndef AAL_OPS_INTERNAL_H
#define AAL_OPS_INTERNAL_H

#include "sim/ops/ops.h"

/* A new, empty buffer cache over be; NULL when out of memory. */
aal_ops_cache *aal_ops_cache_new(const aal_backend *be);

/* One call of an adapter op: the buffers it binds, then the backend's op, then
 * aal_call_end.  Every tensor bound must live on this adapter (a host tensor, or one of
 * another backend, fails the call with a message naming it); scratch buffers go back
 * to the cache at the end.  The first failure is kept in rc and every later step does
 * nothing and gives NULL, so that an op binds its tensors without checking each step. */
#define AAL_CALL_BUFS 12

typedef struct {
  const aal_ops *ops;
  char op[64];        /* "ops cpu32 add": what the call's messages name */
  aal_error *err;
  int rc;             /* AAL_OK until a step fails */
  void *buf[AAL_CALL_BUFS];
  size_t n[AAL_CALL_BUFS];
  int bits[AAL_CALL_BUFS];
  int count;
  int bound;          /* tensors bound so far (named by their place in messages) */
} aal_call;

void aal_call_begin(aal_call *c, const aal_ops *ops, const char *name, aal_error *err);
/* The buffer of input t, which lives on this adapter.  NULL t: NULL (an absent optional
 * argument). */
void *aal_call_in(aal_call *c, const aal_tensor *t);
/* The buffer output t is written into (t lives on this adapter).  NULL t: NULL. */
void *aal_call_out(aal_call *c, aal_tensor *t);
/* t read and written in place: aal_call_in, then aal_call_out (the same buffer). */
void *aal_call_inout(aal_call *c, aal_tensor *t);
/* A scratch buffer of n elements (bits: n bits), contents undefined. */
void *aal_call_scratch(aal_call *c, size_t n, int bits);
/* Ends the call as described above; returns rc. */
int aal_call_end(aal_call *c);

/* Argument contracts of the ops without a sim/layers function, shared by both tables:
 * li_reduce's h and r (F64, one shape) and scale's t (F64). */
int aal_ops_li_args(const char *op, const aal_tensor *h, const aal_tensor *r, aal_error *err);
int aal_ops_scale_args(const char *op, const aal_tensor *t, aal_error *err);

#endif
