/* conv2d in float32 through oneDNN: forward, backward-data and backward-filter as
 * oneDNN convolution primitives (the dnnl backend's three conv ops).
 *
 *   x [N, C, H, W]   w [K, C, R, S]   y [N, K, P, Q]     (the table's NCHW / OIHW buffers)
 *
 *   forward          y  = conv(x, w)            primitive args SRC, WEIGHTS -> DST
 *   backward data    dx = conv^T(dy, w)         DIFF_DST, WEIGHTS -> DIFF_SRC
 *   backward filter  dw = sum_n dy (*) x        SRC, DIFF_DST -> DIFF_WEIGHTS
 *
 * The algorithm is pinned to dnnl_convolution_direct, never Winograd or "auto": every
 * output element is then a sum of C*R*S (forward), K*R*S (backward data) or N*P*Q
 * (backward filter) float32 products, accumulated in float32 in some order, which is
 * what the harness's conv bound covers (docs/KERNELS.md).  oneDNN's "direct" family
 * includes its JIT kernels, its own im2col + GEMM and a reference loop; all sum the same
 * products.
 *
 * Layouts: the primitives are created with format "any", so oneDNN chooses its blocked
 * layouts (on AVX-512: nChw16c activations, OIhw16i16o weights); a call reorders each
 * input from the caller's plain buffer into a workspace slot, runs the primitive there
 * and reorders the output back.  An argument whose chosen layout is the plain one (the
 * stem's 3-channel input) is used in place.  Reorders copy values exactly.
 *
 * Cache: an entry per (direction, geometry, thread count) holds the primitive, its
 * memory objects and its reorders, so that a steady-state training step creates
 * nothing (tests/dnnl/test_dnnl.c counts it); at most AAL_DNNL_CACHE_ENTRIES, the least
 * recently used destroyed first.  The workspace is shared by all entries and grows to
 * the largest tensor seen; it has three slots, by the role of the tensor (x or dx, w or
 * dw, y or dy).
 *
 * Reuse: the model calls backward-filter (x, dy) and backward-data (dy, w) of a conv
 * one after the other, with the same dy, which both reorder into the same layout and
 * slot.  A slot's tag says which caller buffer it holds, in which layout, as of which
 * write epoch; an input whose tag matches (same buffer, same layout, same epoch) is not
 * reordered again.  The epoch counts every call of the table that may write a backend
 * buffer (every op but the convs, alloc, release, the uploads: kernels/dnnl/track.c),
 * and a conv clears the tags of its output's slot and of any slot holding a buffer its
 * output overlaps; so a tag is only trusted while nothing can have written the buffer.
 * (Code outside the table must not write a backend buffer - the table's contract -
 * or the tag would not know.)
 *
 * Threads: --threads sets OpenBLAS's thread count (sim/cli/cli.c), and oneDNN's OpenMP
 * runs with the same number: every call sets it from openblas_get_num_threads()
 * (kernels/dnnl/omp.c), so OMP_NUM_THREADS does not apply.
 *
 * One thread calls the ops of a backend at a time (as for cpu32: its team is shared). */
#include <config.h>

#include "kernels/dnnl/dnnl_internal.h"
#include "kernels/backend_check.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *const DIR_OPS[3] = {"dnnl conv_forward", "dnnl conv_backward_data",
                                       "dnnl conv_backward_filter"};

/* ---------------------------------------------------------------- entries */

static void arg_destroy(aal_dnnl_arg *a)
{
  if (a->reorder != NULL)
    dnnl_primitive_destroy(a->reorder);
  if (a->inner != NULL)
    dnnl_memory_destroy(a->inner);
  if (a->user != NULL)
    dnnl_memory_destroy(a->user);
  memset(a, 0, sizeof *a);
}

static void entry_destroy(aal_dnnl_entry *e)
{
  for (int i = 0; i < 3; i++)
    arg_destroy(&e->arg[i]);
  if (e->prim != NULL)
    dnnl_primitive_destroy(e->prim);
  if (e->pd != NULL)
    dnnl_primitive_desc_destroy(e->pd);
  if (e->hint != NULL)
    dnnl_primitive_desc_destroy(e->hint);
  memset(e, 0, sizeof *e);
}

/* Argument a of primitive pd: the plain memory over the caller's buffer and, if oneDNN
 * wants another layout, the workspace memory and the reorder between them. */
static int arg_create(const aal_dnnl_state *st, dnnl_primitive_desc_t pd, int dnnl_arg,
                      int is_output, int slot, const dnnl_memory_desc_t *plain,
                      aal_dnnl_arg *a, const char *op, aal_error *err)
{
  a->dnnl_arg = dnnl_arg;
  a->is_output = is_output;
  a->slot = slot;
  a->user_bytes = dnnl_memory_desc_get_size(plain);
  const dnnl_memory_desc_t *want = dnnl_primitive_desc_query_md(pd, dnnl_query_exec_arg_md,
                                                                dnnl_arg);
  if (want == NULL)
    return aal_fail(err, AAL_EIO, "%s: %s:%d: oneDNN reports no memory for argument %d", op,
                    __FILE__, __LINE__, dnnl_arg);
  DNNL_TRY(dnnl_memory_create(&a->user, plain, st->engine, DNNL_MEMORY_NONE));
  if (dnnl_memory_desc_equal(plain, want))
    return AAL_OK;
  a->bytes = dnnl_memory_desc_get_size(want);
  a->inner_md = *want;
  DNNL_TRY(dnnl_memory_create(&a->inner, want, st->engine, DNNL_MEMORY_NONE));
  dnnl_primitive_desc_t rpd;
  if (is_output)
    DNNL_TRY(dnnl_reorder_primitive_desc_create(&rpd, want, st->engine, plain, st->engine,
                                                NULL));
  else
    DNNL_TRY(dnnl_reorder_primitive_desc_create(&rpd, plain, st->engine, want, st->engine,
                                                NULL));
  const dnnl_status_t s = dnnl_primitive_create(&a->reorder, rpd);
  dnnl_primitive_desc_destroy(rpd);
  DNNL_TRY(s);
  return AAL_OK;
}

/* The three plain descriptors of a geometry: x (NCHW), w (OIHW), y (NCHW). */
static int plain_descs(const aal_dnnl_key *k, dnnl_format_tag_t act, dnnl_format_tag_t wei,
                       dnnl_memory_desc_t *x, dnnl_memory_desc_t *w, dnnl_memory_desc_t *y,
                       const char *op, aal_error *err)
{
  const int p = (k->h + 2 * k->pad - k->r) / k->stride + 1;
  const int q = (k->w + 2 * k->pad - k->s) / k->stride + 1;
  const dnnl_dims_t xd = {k->n, k->c, k->h, k->w}, wd = {k->k, k->c, k->r, k->s},
                    yd = {k->n, k->k, p, q};
  DNNL_TRY(dnnl_memory_desc_init_by_tag(x, 4, xd, dnnl_f32, act));
  DNNL_TRY(dnnl_memory_desc_init_by_tag(w, 4, wd, dnnl_f32, wei));
  DNNL_TRY(dnnl_memory_desc_init_by_tag(y, 4, yd, dnnl_f32, act));
  return AAL_OK;
}

/* The primitive descriptor of e's direction (formats "any", algorithm direct); a
 * backward one is built from the forward one, kept in e->hint. */
static int entry_pd(const aal_dnnl_state *st, aal_dnnl_entry *e, const char *op,
                    aal_error *err)
{
  const aal_dnnl_key *k = &e->key;
  dnnl_memory_desc_t x, w, y;
  int rc = plain_descs(k, dnnl_format_tag_any, dnnl_format_tag_any, &x, &w, &y, op, err);
  if (rc != AAL_OK)
    return rc;
  const dnnl_dims_t strides = {k->stride, k->stride}, pad = {k->pad, k->pad};
  dnnl_convolution_desc_t d;
  DNNL_TRY(dnnl_convolution_forward_desc_init(&d, dnnl_forward_training,
                                              dnnl_convolution_direct, &x, &w, NULL, &y,
                                              strides, pad, pad));
  DNNL_TRY(dnnl_primitive_desc_create(&e->hint, &d, NULL, st->engine, NULL));
  if (k->dir == AAL_DNNL_FORWARD) {
    e->pd = e->hint;
    e->hint = NULL;
    return AAL_OK;
  }
  if (k->dir == AAL_DNNL_BACKWARD_DATA)
    DNNL_TRY(dnnl_convolution_backward_data_desc_init(&d, dnnl_convolution_direct, &x, &w, &y,
                                                      strides, pad, pad));
  else
    DNNL_TRY(dnnl_convolution_backward_weights_desc_init(&d, dnnl_convolution_direct, &x, &w,
                                                         NULL, &y, strides, pad, pad));
  DNNL_TRY(dnnl_primitive_desc_create(&e->pd, &d, NULL, st->engine, e->hint));
  return AAL_OK;
}

/* Builds entry e for e->key: descriptor, primitive, arguments.  On failure the caller
 * destroys e (every member is NULL or valid). */
static int entry_create(const aal_dnnl_state *st, aal_dnnl_entry *e, aal_error *err)
{
  const char *op = DIR_OPS[e->key.dir];
  int rc = entry_pd(st, e, op, err);
  if (rc != AAL_OK)
    return rc;
  DNNL_TRY(dnnl_primitive_create(&e->prim, e->pd));
  dnnl_memory_desc_t x, w, y;
  if ((rc = plain_descs(&e->key, dnnl_nchw, dnnl_oihw, &x, &w, &y, op, err)) != AAL_OK)
    return rc;
  /* the table's argument order: (x, w -> y), (dy, w -> dx), (x, dy -> dw) */
  static const int ARGS[3][3] = {
      {DNNL_ARG_SRC, DNNL_ARG_WEIGHTS, DNNL_ARG_DST},
      {DNNL_ARG_DIFF_DST, DNNL_ARG_WEIGHTS, DNNL_ARG_DIFF_SRC},
      {DNNL_ARG_SRC, DNNL_ARG_DIFF_DST, DNNL_ARG_DIFF_WEIGHTS}};
  const dnnl_memory_desc_t *plain[3][3] = {{&x, &w, &y}, {&y, &w, &x}, {&x, &y, &w}};
  static const int SLOTS[3][3] = {{AAL_DNNL_SLOT_X, AAL_DNNL_SLOT_W, AAL_DNNL_SLOT_Y},
                                  {AAL_DNNL_SLOT_Y, AAL_DNNL_SLOT_W, AAL_DNNL_SLOT_X},
                                  {AAL_DNNL_SLOT_X, AAL_DNNL_SLOT_Y, AAL_DNNL_SLOT_W}};
  for (int i = 0; i < 3 && rc == AAL_OK; i++)
    rc = arg_create(st, e->pd, ARGS[e->key.dir][i], i == 2, SLOTS[e->key.dir][i],
                    plain[e->key.dir][i], &e->arg[i], op, err);
  return rc;
}

static int key_equal(const aal_dnnl_key *a, const aal_dnnl_key *b)
{
  return a->dir == b->dir && a->n == b->n && a->c == b->c && a->h == b->h && a->w == b->w &&
         a->k == b->k && a->r == b->r && a->s == b->s && a->stride == b->stride &&
         a->pad == b->pad && a->threads == b->threads;
}

/* The cached entry for key, created (evicting the least recently used) if absent. */
static int entry_get(aal_dnnl_state *st, const aal_dnnl_key *key, aal_dnnl_entry **out,
                     aal_error *err)
{
  aal_dnnl_entry *slot = NULL; /* a free entry, else the least recently used one */
  for (int i = 0; i < AAL_DNNL_CACHE_ENTRIES; i++) {
    aal_dnnl_entry *e = &st->cache[i];
    if (e->used && key_equal(&e->key, key)) {
      e->last_use = ++st->clock;
      st->stats.hits++;
      *out = e;
      return AAL_OK;
    }
    if (!e->used) {
      if (slot == NULL || slot->used)
        slot = e;
    } else if (slot == NULL || (slot->used && e->last_use < slot->last_use)) {
      slot = e;
    }
  }
  if (slot->used) {
    entry_destroy(slot);
    st->stats.evicted++;
    st->stats.entries--;
  }
  slot->key = *key;
  const int rc = entry_create(st, slot, err);
  if (rc != AAL_OK) {
    entry_destroy(slot);
    return rc;
  }
  slot->used = 1;
  slot->last_use = ++st->clock;
  st->stats.created++;
  st->stats.entries++;
  *out = slot;
  return AAL_OK;
}

/* ---------------------------------------------------------------- running */

/* Workspace slot i holds at least bytes (a slot that grows loses its contents, and
 * its tag). */
static int workspace_reserve(aal_dnnl_state *st, int i, size_t bytes, const char *op,
                             aal_error *err)
{
  if (bytes <= st->ws_bytes[i])
    return AAL_OK;
  st->tags[i].valid = 0;
  free(st->ws[i]);
  st->stats.workspace_bytes -= st->ws_bytes[i];
  st->ws[i] = NULL;
  st->ws_bytes[i] = 0;
  const size_t rounded = (bytes + 63) / 64 * 64;
  void *p = NULL;
  const int rc = posix_memalign(&p, 64, rounded);
  if (rc != 0 || p == NULL)
    return aal_fail(err, AAL_ENOMEM, "%s: %s:%d: posix_memalign of %zu bytes of workspace "
                    "failed", op, __FILE__, __LINE__, rounded);
  st->ws[i] = p;
  st->ws_bytes[i] = rounded;
  st->stats.workspace_bytes += rounded;
  return AAL_OK;
}

static int run_reorder(const aal_dnnl_state *st, dnnl_primitive_t r, dnnl_memory_t from,
                       dnnl_memory_t to, const char *op, aal_error *err)
{
  const dnnl_exec_arg_t args[2] = {{DNNL_ARG_FROM, from}, {DNNL_ARG_TO, to}};
  DNNL_TRY(dnnl_primitive_execute(r, st->stream, 2, args));
  return AAL_OK;
}

/* Whether slot a->slot holds buf in a's layout as of the current epoch. */
static int tag_holds(const aal_dnnl_state *st, const aal_dnnl_arg *a, const void *buf)
{
  const aal_dnnl_tag *t = &st->tags[a->slot];
  return t->valid && t->ptr == buf && t->epoch == st->epoch &&
         dnnl_memory_desc_equal(&t->md, &a->inner_md);
}

/* Output a is about to be written into out: no slot's copy of a buffer that out
 * overlaps stays trusted, nor the output's own slot. */
static void tags_written(aal_dnnl_state *st, const aal_dnnl_arg *a, const void *out)
{
  const char *lo = out, *hi = lo + a->user_bytes;
  for (int i = 0; i < 3; i++) {
    const char *p = st->tags[i].ptr;
    if (st->tags[i].valid && p < hi && lo < p + st->tags[i].bytes)
      st->tags[i].valid = 0;
  }
  if (a->inner != NULL)
    st->tags[a->slot].valid = 0;
}

/* Input i: reordered into its slot unless the slot holds it already (Reuse, above). */
static int input_in(aal_dnnl_state *st, const aal_dnnl_arg *a, const void *buf, const char *op,
                    aal_error *err)
{
  if (a->reorder == NULL)
    return AAL_OK;
  if (tag_holds(st, a, buf)) {
    st->stats.reused++;
    return AAL_OK;
  }
  st->tags[a->slot].valid = 0;
  const int rc = run_reorder(st, a->reorder, a->user, a->inner, op, err);
  if (rc == AAL_OK)
    st->tags[a->slot] = (aal_dnnl_tag){1, buf, a->user_bytes, a->inner_md, st->epoch};
  return rc;
}

/* Binds the caller's buffers and the workspace, reorders the inputs in (or reuses
 * them), runs the primitive, reorders the output out and waits for the stream. */
static int entry_run(aal_dnnl_state *st, aal_dnnl_entry *e, const void *in0, const void *in1,
                     void *out, aal_error *err)
{
  const char *op = DIR_OPS[e->key.dir];
  void *bufs[3] = {(void *)in0, (void *)in1, out}; /* oneDNN only reads inputs */
  dnnl_exec_arg_t args[3];
  for (int i = 0; i < 3; i++) {
    aal_dnnl_arg *a = &e->arg[i];
    DNNL_TRY(dnnl_memory_set_data_handle_v2(a->user, bufs[i], st->stream));
    if (a->inner != NULL) {
      const int rc = workspace_reserve(st, a->slot, a->bytes, op, err);
      if (rc != AAL_OK)
        return rc;
      DNNL_TRY(dnnl_memory_set_data_handle_v2(a->inner, st->ws[a->slot], st->stream));
    }
    args[i] = (dnnl_exec_arg_t){a->dnnl_arg, a->inner != NULL ? a->inner : a->user};
  }
  for (int i = 0; i < 2; i++) {
    const int rc = input_in(st, &e->arg[i], bufs[i], op, err);
    if (rc != AAL_OK)
      return rc;
  }
  tags_written(st, &e->arg[2], out);
  DNNL_TRY(dnnl_primitive_execute(e->prim, st->stream, 3, args));
  if (e->arg[2].reorder != NULL) {
    const int rc = run_reorder(st, e->arg[2].reorder, e->arg[2].inner, e->arg[2].user, op,
                               err);
    if (rc != AAL_OK)
      return rc;
  }
  DNNL_TRY(dnnl_stream_wait(st->stream));
  return AAL_OK;
}

/* The shape check of every op, the backend's state and the key of this call (which
 * sets the thread count). */
static int conv_key(const aal_backend *be, int dir, const aal_conv_shape *cs,
                    aal_dnnl_state **st, aal_dnnl_key *key, aal_error *err)
{
  const char *op = DIR_OPS[dir];
  const int rc = aal_be_check_conv(cs, op, err);
  if (rc != AAL_OK)
    return rc;
  if ((*st = aal_dnnl_state_of(be, op, err)) == NULL)
    return AAL_EINVAL;
  *key = (aal_dnnl_key){.dir = dir, .n = cs->n, .c = cs->c, .h = cs->h, .w = cs->w,
                        .k = cs->k, .r = cs->r, .s = cs->s, .stride = cs->stride,
                        .pad = cs->pad, .threads = aal_dnnl_threads()};
  return AAL_OK;
}

static int conv_run(const aal_backend *be, int dir, const aal_conv_shape *cs, const void *in0,
                    const void *in1, void *out, aal_error *err)
{
  aal_dnnl_state *st;
  aal_dnnl_key key;
  aal_dnnl_entry *e;
  int rc = conv_key(be, dir, cs, &st, &key, err);
  if (rc == AAL_OK)
    rc = aal_be_check_ptrs(DIR_OPS[dir], "input, input, output", err, 3, in0, in1, out);
  if (rc == AAL_OK)
    rc = entry_get(st, &key, &e, err);
  if (rc == AAL_OK)
    rc = entry_run(st, e, in0, in1, out, err);
  if (rc == AAL_OK)
    st->stats.threads = key.threads;
  return rc;
}

int aal_dnnl_conv_forward(const aal_backend *be, const aal_conv_shape *cs, const void *x,
                          const void *w, void *y, aal_error *err)
{
  return conv_run(be, AAL_DNNL_FORWARD, cs, x, w, y, err);
}

int aal_dnnl_conv_backward_data(const aal_backend *be, const aal_conv_shape *cs, const void *dy,
                                const void *w, void *dx, aal_error *err)
{
  return conv_run(be, AAL_DNNL_BACKWARD_DATA, cs, dy, w, dx, err);
}

int aal_dnnl_conv_backward_filter(const aal_backend *be, const aal_conv_shape *cs,
                                  const void *x, const void *dy, void *dw, aal_error *err)
{
  return conv_run(be, AAL_DNNL_BACKWARD_FILTER, cs, x, dy, dw, err);
}

int aal_backend_dnnl_conv_impl(const aal_backend *be, const aal_conv_shape *cs, int dir,
                               char *name, size_t len, aal_error *err)
{
  if (dir < 0 || dir > 2 || name == NULL || len == 0)
    return aal_fail(err, AAL_EINVAL, "dnnl conv impl: direction %d (0..2) or no name buffer",
                    dir);
  const char *op = DIR_OPS[dir];
  aal_dnnl_state *st;
  aal_dnnl_key key;
  aal_dnnl_entry *e;
  int rc = conv_key(be, dir, cs, &st, &key, err);
  if (rc == AAL_OK)
    rc = entry_get(st, &key, &e, err);
  if (rc != AAL_OK)
    return rc;
  const char *info = NULL;
  DNNL_TRY(dnnl_primitive_desc_query(e->pd, dnnl_query_impl_info_str, 0, &info));
  snprintf(name, len, "%s", info != NULL ? info : "?");
  return AAL_OK;
}

void aal_dnnl_cache_clear(aal_dnnl_state *st)
{
  for (int i = 0; i < AAL_DNNL_CACHE_ENTRIES; i++)
    if (st->cache[i].used)
      entry_destroy(&st->cache[i]);
  for (int i = 0; i < 3; i++) {
    free(st->ws[i]);
    st->ws[i] = NULL;
    st->ws_bytes[i] = 0;
    st->tags[i].valid = 0;
  }
  st->stats.entries = 0;
  st->stats.workspace_bytes = 0;
}
