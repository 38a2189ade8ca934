/* Internal to the dnnl backend (kernels/dnnl/backend.c, conv.c): the state in be->ctx,
 * the primitive cache and the checked-call macro.
 *
 * Glossary (as in sim/): N batch, C input channels, H W input size, K output channels,
 * R S filter size, P Q output size.  The table's buffers are float32 NCHW activations
 * and OIHW weights; oneDNN computes in its own blocked layouts (nChw16c, ...) held in
 * the state's workspace. */
#ifndef AAL_DNNL_INTERNAL_H
#define AAL_DNNL_INTERNAL_H

#include <dnnl.h>

#include "kernels/cpu/cpu32.h"
#include "kernels/dnnl/dnnl.h"

/* One argument of a cached convolution: the caller's buffer in the plain layout and,
 * where oneDNN wants another layout, the same tensor in a workspace slot and the
 * reorder between the two (caller -> workspace for an input, back for the output). */
typedef struct {
  int dnnl_arg;              /* DNNL_ARG_SRC, DNNL_ARG_DIFF_DST, ... */
  int is_output;
  int slot;                  /* workspace slot: by role, AAL_DNNL_SLOT_X / _W / _Y */
  dnnl_memory_t user;        /* plain layout; its handle is set to the caller's buffer */
  size_t user_bytes;         /* the caller's buffer */
  dnnl_memory_t inner;       /* oneDNN's layout over the workspace; NULL if plain */
  dnnl_memory_desc_t inner_md;
  dnnl_primitive_t reorder;  /* NULL if plain */
  size_t bytes;              /* inner's size */
} aal_dnnl_arg;

/* Workspace slots by the role of the tensor: activations x / dx, weights w / dw,
 * outputs y / dy.  So the dy of backward-filter and backward-data, called one after
 * the other, lands in the same slot (kernels/dnnl/conv.c, "Reuse"). */
enum { AAL_DNNL_SLOT_X = 0, AAL_DNNL_SLOT_W = 1, AAL_DNNL_SLOT_Y = 2 };

/* What a workspace slot holds: the caller's buffer ptr (bytes long) reordered into
 * layout md while the backend's write epoch was epoch (valid 0: nothing known). */
typedef struct {
  int valid;
  const void *ptr;
  size_t bytes;
  dnnl_memory_desc_t md;
  unsigned long epoch;
} aal_dnnl_tag;

/* What a primitive is cached by: the direction, the geometry and the thread count (a
 * primitive is built for the threads it will run on). */
typedef struct {
  int dir;
  int n, c, h, w, k, r, s, stride, pad;
  int threads;
} aal_dnnl_key;

typedef struct {
  int used;
  unsigned long last_use;
  aal_dnnl_key key;
  dnnl_primitive_desc_t hint; /* the forward descriptor a backward one was built from */
  dnnl_primitive_desc_t pd;
  dnnl_primitive_t prim;
  aal_dnnl_arg arg[3];        /* in the order of the table's call: two inputs, the output */
} aal_dnnl_entry;

/* be->ctx.  The first member is cpu32's state, so that cpu32's ops, which the table
 * keeps for everything but the convolutions, find their thread team through be->ctx. */
typedef struct {
  aal_cpu32_state cpu;
  aal_backend base;           /* cpu32's table, which the tracked members call */
  unsigned long epoch;        /* +1 at every call that may write a buffer, convs aside */
  aal_dnnl_tag tags[3];       /* per workspace slot */
  dnnl_engine_t engine;
  dnnl_stream_t stream;
  aal_dnnl_entry cache[AAL_DNNL_CACHE_ENTRIES];
  unsigned long clock;        /* last_use stamps */
  void *ws[3];                /* workspace slots, one per argument position */
  size_t ws_bytes[3];
  aal_dnnl_stats stats;
} aal_dnnl_state;

/* The state of a dnnl backend, or NULL (and an error naming op) for any other table. */
aal_dnnl_state *aal_dnnl_state_of(const aal_backend *be, const char *op, aal_error *err);

/* Records "op: file:line: call: status" and returns the aal status: AAL_ENOMEM for
 * dnnl_out_of_memory, AAL_EINVAL for invalid arguments and unimplemented cases,
 * AAL_EIO otherwise. */
int aal_dnnl_fail(aal_error *err, dnnl_status_t s, const char *op, const char *file, int line,
                  const char *call);

/* Every oneDNN call of the backend goes through this (a local `op` naming the
 * operation and `err` must be in scope); it returns from the function on failure. */
#define DNNL_TRY(call)                                                                   \
  do {                                                                                   \
    const dnnl_status_t s_ = (call);                                                     \
    if (s_ != dnnl_success)                                                              \
      return aal_dnnl_fail(err, s_, op, __FILE__, __LINE__, #call);                      \
  } while (0)

/* kernels/dnnl/omp.c: the thread count of a call, OpenBLAS's, given to oneDNN's
 * OpenMP (omp_set_num_threads; so OMP_NUM_THREADS does not apply); and the runner of
 * the backend team's loops on the same OpenMP threads (sim/core/team.h). */
int aal_dnnl_threads(void);
void aal_dnnl_omp_for(void *rctx, aal_team_range_fn fn, const void *ctx, size_t items);

/* kernels/dnnl/conv.c: the table's three convolutions */
int aal_dnnl_conv_forward(const aal_backend *be, const aal_conv_shape *cs, const void *x,
                          const void *w, void *y, aal_error *err);
int aal_dnnl_conv_backward_data(const aal_backend *be, const aal_conv_shape *cs, const void *dy,
                                const void *w, void *dx, aal_error *err);
int aal_dnnl_conv_backward_filter(const aal_backend *be, const aal_conv_shape *cs,
                                  const void *x, const void *dy, void *dw, aal_error *err);
/* kernels/dnnl/track.c: every member of the table that may write a backend buffer
 * (all but the convs and downloads), as cpu32's behind a bump of st->epoch */
void aal_dnnl_track(aal_backend *be);

/* kernels/dnnl/linear.c: cpu32's linear layer on oneDNN's sgemm (also bumps the epoch) */
int aal_dnnl_linear_forward(const aal_backend *be, int n, int in, int out, const void *x,
                            const void *w, const void *b, void *y, aal_error *err);
int aal_dnnl_linear_backward(const aal_backend *be, int n, int in, int out, const void *dy,
                             const void *x, const void *w, void *dx, void *dw, void *db,
                             aal_error *err);
/* Destroys every cache entry and frees the workspace (the backend's destroy). */
void aal_dnnl_cache_clear(aal_dnnl_state *st);

#endif
