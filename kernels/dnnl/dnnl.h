/* The oneDNN backend "dnnl" (aal_backend_dnnl, kernels/backend.h): cpu32's table
 * (float32 host buffers, kernels/cpu) with conv_forward, conv_backward_data and
 * conv_backward_filter run by oneDNN convolution primitives, algorithm pinned to
 * dnnl_convolution_direct (docs/KERNELS.md, "The dnnl backend").
 *
 * What this header adds is for tests and benchmarks: what the primitive cache did and
 * which implementation oneDNN chose.  It exists only when aal is built with oneDNN
 * (AAL_HAVE_DNNL in config.h); it names no oneDNN type. */
#ifndef AAL_DNNL_H
#define AAL_DNNL_H

#include <stddef.h>

#include "kernels/backend.h"

/* Conv directions, in the order of the table's members. */
enum { AAL_DNNL_FORWARD = 0, AAL_DNNL_BACKWARD_DATA = 1, AAL_DNNL_BACKWARD_FILTER = 2 };

/* Cached primitives at most; the least recently used goes first.  ResNet-18 needs 32
 * (11 geometries, 3 directions, no backward-data for the stem), ResNet-50 about 70. */
#define AAL_DNNL_CACHE_ENTRIES 128

typedef struct {
  long created;      /* convolution primitives created since open (each entry: one) */
  long hits;         /* conv calls that found their primitive in the cache */
  long reused;       /* input reorders skipped: the workspace held that input already */
  long evicted;      /* entries destroyed to make room */
  int entries;       /* entries cached now */
  int threads;       /* OpenMP threads oneDNN ran the last conv call with */
  size_t workspace_bytes; /* the blocked-layout workspace held now */
} aal_dnnl_stats;

/* The counters of a dnnl backend; fails for a table that is not dnnl's. */
int aal_backend_dnnl_stats(const aal_backend *be, aal_dnnl_stats *stats, aal_error *err);

/* The implementation oneDNN runs for direction dir at shape cs with the current thread
 * count (its impl_info_str, e.g. "jit:avx512_core"), creating the cache entry if it is
 * not there; written into name (len bytes, truncated). */
int aal_backend_dnnl_conv_impl(const aal_backend *be, const aal_conv_shape *cs, int dir,
                               char *name, size_t len, aal_error *err);

#endif
