/* The oneDNN backend "dnnl": cpu32's table (kernels/cpu: float32 host buffers, batch
 * norm, ReLU, pooling, linear, ...) with the three convolutions replaced by oneDNN
 * primitives (kernels/dnnl/conv.c).  The state (be->ctx) starts with cpu32's, so the ops
 * taken from cpu32 find their thread team there; its loops run on OpenMP's threads, the
 * ones oneDNN uses (kernels/dnnl/omp.c).  Then oneDNN's CPU engine and stream, the
 * primitive cache and the workspace. */
#include <config.h>

#include "kernels/dnnl/dnnl_internal.h"

#include <dnnl_debug.h>
#include <stdlib.h>
#include <string.h>

int aal_dnnl_fail(aal_error *err, dnnl_status_t s, const char *op, const char *file, int line,
                  const char *call)
{
  const int code = s == dnnl_out_of_memory ? AAL_ENOMEM
                   : s == dnnl_invalid_arguments || s == dnnl_unimplemented ? AAL_EINVAL
                                                                             : AAL_EIO;
  return aal_fail(err, code, "%s: %s:%d: %s: %s", op, file, line, call, dnnl_status2str(s));
}

static void dnnl_destroy(aal_backend *be);

aal_dnnl_state *aal_dnnl_state_of(const aal_backend *be, const char *op, aal_error *err)
{
  if (be == NULL || be->ctx == NULL || be->destroy != dnnl_destroy) {
    aal_fail(err, AAL_EINVAL, "%s: not a dnnl backend", op);
    return NULL;
  }
  return be->ctx;
}

/* Destroys what exists of st (any member may be missing after a failed open). */
static void state_free(aal_dnnl_state *st)
{
  aal_dnnl_cache_clear(st);
  if (st->stream != NULL)
    dnnl_stream_destroy(st->stream);
  if (st->engine != NULL)
    dnnl_engine_destroy(st->engine);
  aal_team_stop(&st->cpu.team);
  free(st);
}

/* Copies of the table share be->ctx: only the table destroy is called on frees it. */
static void dnnl_destroy(aal_backend *be)
{
  if (be == NULL)
    return;
  if (be->ctx != NULL)
    state_free(be->ctx);
  memset(be, 0, sizeof *be);
}

int aal_backend_dnnl_stats(const aal_backend *be, aal_dnnl_stats *stats, aal_error *err)
{
  const aal_dnnl_state *st = aal_dnnl_state_of(be, "dnnl stats", err);
  if (st == NULL || stats == NULL)
    return st == NULL ? AAL_EINVAL : aal_fail(err, AAL_EINVAL, "dnnl stats: NULL stats");
  *stats = st->stats;
  return AAL_OK;
}

/* oneDNN's engine and stream into st. */
static int open_engine(aal_dnnl_state *st, aal_error *err)
{
  static const char op[] = "backend dnnl";
  DNNL_TRY(dnnl_engine_create(&st->engine, dnnl_cpu, 0));
  DNNL_TRY(dnnl_stream_create(&st->stream, st->engine, dnnl_stream_default_flags));
  return AAL_OK;
}

int aal_backend_dnnl(aal_backend *be, aal_error *err)
{
  if (be == NULL)
    return aal_fail(err, AAL_EINVAL, "backend dnnl: NULL table");
  /* On the heap: the team's helpers hold its address, and the table may be copied. */
  aal_dnnl_state *st = calloc(1, sizeof *st);
  if (st == NULL)
    return aal_fail(err, AAL_ENOMEM, "backend dnnl: %s:%d: %zu bytes of state", __FILE__,
                    __LINE__, sizeof *st);
  /* cpu32's loops run on oneDNN's OpenMP threads (kernels/dnnl/omp.c): no helpers */
  aal_team_start(&st->cpu.team, 1);
  aal_team_set_runner(&st->cpu.team, aal_dnnl_omp_for, NULL);
  const int rc = open_engine(st, err);
  if (rc != AAL_OK) {
    state_free(st);
    return rc;
  }
  memset(be, 0, sizeof *be);
  aal_cpu32_table(&st->base);
  *be = st->base;
  aal_dnnl_track(be); /* every member that may write a buffer bumps the epoch */
  be->name = "dnnl";
  be->ctx = st;
  be->conv_forward = aal_dnnl_conv_forward;
  be->conv_backward_data = aal_dnnl_conv_backward_data;
  be->conv_backward_filter = aal_dnnl_conv_backward_filter;
  be->linear_forward = aal_dnnl_linear_forward;
  be->linear_backward = aal_dnnl_linear_backward;
  be->destroy = dnnl_destroy;
  return AAL_OK;
}
