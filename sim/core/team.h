/* A small team of helper threads (see below); shared by the reference convolution and
 * the float32 CPU backend. */
#ifndef AAL_TEAM_H
#define AAL_TEAM_H

#include <pthread.h>
#include <stdatomic.h>
#include <stddef.h>

/* Helper threads for memory-bound loops (im2col, col2im, layout copies, elementwise
 * ops) that would otherwise run on one core between multi-threaded GEMMs.  The
 * reference convolution (sim/layers/conv.c) starts a team per call; the cpu32 backend keeps
 * one per backend (its ctx), and its conv *_ws test entry points start one per call.
 * fn(ctx, lo, hi) handles items [lo, hi); items must be independent (each output
 * element written by one item), so results do not depend on the thread count. */
#define AAL_TEAM_MAX_THREADS 2    /* the calling thread included */
/* Below this many bytes written, waking a helper costs more than it saves. */
#define AAL_TEAM_PAR_MIN_BYTES ((size_t)128 << 10)

typedef void (*aal_team_range_fn)(const void *ctx, size_t lo, size_t hi);

/* An outside thread pool that runs a team's loops in place of its helpers:
 * run(rctx, fn, ctx, items) must call fn on disjoint ranges covering [0, items), in
 * any order and on any threads, and return when all are done.  The dnnl backend gives
 * OpenMP's pool (kernels/dnnl/omp.c): oneDNN's OpenMP threads, which spin for a while
 * after each primitive, then run the memory-bound loops too instead of competing with
 * helpers for the cores. */
typedef void (*aal_team_runner)(void *rctx, aal_team_range_fn fn, const void *ctx,
                                size_t items);

/* A loop is cut into AAL_TEAM_CHUNKS_PER_THREAD chunks per thread, claimed one at a
 * time by whichever thread is running (results do not depend on who runs a chunk). */
#define AAL_TEAM_CHUNKS_PER_THREAD 8

typedef struct aal_team {
  pthread_mutex_t mu;
  pthread_cond_t go, done;
  int sync_ok;     /* mu, go and done are initialised */
  size_t helpers;  /* helper threads running */
  pthread_t tid[AAL_TEAM_MAX_THREADS];
  /* The current job, guarded by mu (next: claimed without it). */
  int busy;           /* a par_for owns the team (another caller runs its loop alone) */
  int open;           /* helpers may still join the job */
  aal_team_range_fn fn;
  const void *ctx;
  size_t items, chunks;
  atomic_size_t next; /* the next unclaimed chunk */
  unsigned long gen;  /* incremented for each job */
  size_t active;      /* helpers working on the job */
  int quit;
  aal_team_runner runner; /* when set, loops run there (aal_team_set_runner) */
  void *runner_ctx;
} aal_team;

/* min(AAL_TEAM_MAX_THREADS, OpenBLAS's threads): the team size of a backend. */
size_t aal_team_max_threads(void);
/* Threads worth using for a call whose largest loop writes work_bytes:
 * aal_team_max_threads(), or 1 below AAL_TEAM_PAR_MIN_BYTES. */
size_t aal_team_threads(size_t work_bytes);
/* Starts up to nthreads - 1 helpers (fewer if creating one fails: never an error).
 * The team must stay at this address until aal_team_stop (helpers point to it). */
void aal_team_start(aal_team *tm, size_t nthreads);
void aal_team_stop(aal_team *tm);
/* Hands the team's loops to an outside pool that runs on OpenBLAS's thread count (the
 * caller's thread included); call after aal_team_start (which clears it).  A team with
 * a runner needs no helpers: start it with 1 thread. */
void aal_team_set_runner(aal_team *tm, aal_team_runner run, void *rctx);
/* Threads of the team, the calling thread included (1 for a NULL team; OpenBLAS's
 * thread count for a team with a runner). */
size_t aal_team_size(const aal_team *tm);
/* fn over [0, items) split among the team (or its runner); bytes (memory written or,
 * for loops that write little, read) decides whether waking the helpers is worth it.
 * tm may be NULL (single-threaded).  If another thread's par_for holds the team, this
 * one runs alone (same results). */
void aal_team_par_for(aal_team *tm, aal_team_range_fn fn, const void *ctx,
                       size_t items, size_t bytes);

#endif
