/* A small team of helper threads for the memory-bound loops of the cpu32 kernels
 * (im2col, col2im, NCHW <-> [K, m*PQ] copies, batch norm, ReLU, add, SGD, ASA bits),
 * ported from sim/layers/conv.c.
 *
 * aal_team_par_for cuts a range of independent items into contiguous chunks, which the
 * calling thread and the helpers claim one at a time; every output element is written
 * by exactly one item and every item does the same arithmetic in the same order as a
 * single-threaded run, so results are bit-identical for any thread count and any
 * assignment of chunks to threads.
 *
 * Claiming (rather than one fixed block per thread) matters on a machine where every
 * core is taken: OpenBLAS's idle workers spin in sched_yield for a long time after each
 * GEMM, so a woken helper is often queued behind the caller on the caller's core.  With
 * fixed blocks the caller would finish its block and then wait for the helper to run
 * its own (the loop serialised, plus two context switches); with claiming, the caller
 * takes the chunks no helper has taken, waits only for chunks a helper is running, and
 * closes the job so that a helper that wakes later does nothing.
 *
 * A backend owns one team (kernels/cpu/backend.c: created with the backend, stopped by its destroy;
 * no pool, no global state); its helpers sleep on a condition variable between loops,
 * e.g. while the GEMMs run.  Creating a thread per loop would cost ~50 us each on the
 * 2-core VM this was tuned on.  If a helper cannot be created, the team is smaller
 * (possibly empty) and the calling thread does all the chunks. */
#include "sim/core/team.h"

#include <cblas.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static size_t min_size(size_t a, size_t b)
{
  return a < b ? a : b;
}

/* A pthread call that cannot fail on a correctly used, initialised object did: the
 * team's state is then unknown, and continuing could deadlock or corrupt results. */
static void team_die(const char *what, int rc)
{
  fprintf(stderr, "aal cpu32 team: %s failed: %s\n", what, strerror(rc));
  abort();
}

static void lock(pthread_mutex_t *mu)
{
  const int rc = pthread_mutex_lock(mu);
  if (rc != 0)
    team_die("pthread_mutex_lock", rc);
}

static void unlock(pthread_mutex_t *mu)
{
  const int rc = pthread_mutex_unlock(mu);
  if (rc != 0)
    team_die("pthread_mutex_unlock", rc);
}

static void wait_on(pthread_cond_t *cv, pthread_mutex_t *mu)
{
  const int rc = pthread_cond_wait(cv, mu);
  if (rc != 0)
    team_die("pthread_cond_wait", rc);
}

/* Chunk b of nchunks over [0, items): [*lo, *hi). */
static void chunk_range(size_t items, size_t nchunks, size_t b, size_t *lo, size_t *hi)
{
  *lo = items * b / nchunks;
  *hi = items * (b + 1) / nchunks;
}

/* Runs chunks of the job until none is left. */
static void run_chunks(aal_team *tm, aal_team_range_fn fn, const void *ctx,
                       size_t items, size_t chunks)
{
  for (;;) {
    const size_t b = atomic_fetch_add(&tm->next, 1);
    if (b >= chunks)
      return;
    size_t lo, hi;
    chunk_range(items, chunks, b, &lo, &hi);
    fn(ctx, lo, hi);
  }
}

static void *helper_main(void *p)
{
  aal_team *tm = p;
  unsigned long seen = 0;
  lock(&tm->mu);
  for (;;) {
    while (!tm->quit && tm->gen == seen)
      wait_on(&tm->go, &tm->mu);
    if (tm->quit)
      break;
    seen = tm->gen;
    if (!tm->open)
      continue;  /* woke after the caller had run the whole job */
    tm->active++;
    const aal_team_range_fn fn = tm->fn;
    const void *ctx = tm->ctx;
    const size_t items = tm->items, chunks = tm->chunks;
    unlock(&tm->mu);
    run_chunks(tm, fn, ctx, items, chunks);
    lock(&tm->mu);
    if (--tm->active == 0 && !tm->open) {
      const int rc = pthread_cond_signal(&tm->done);
      if (rc != 0)
        team_die("pthread_cond_signal", rc);
    }
  }
  unlock(&tm->mu);
  return NULL;
}

size_t aal_team_max_threads(void)
{
  const int blas = openblas_get_num_threads();
  return blas < 1 ? 1 : min_size((size_t)blas, AAL_TEAM_MAX_THREADS);
}

size_t aal_team_threads(size_t work_bytes)
{
  return work_bytes < AAL_TEAM_PAR_MIN_BYTES ? 1 : aal_team_max_threads();
}

size_t aal_team_size(const aal_team *tm)
{
  if (tm == NULL)
    return 1;
  if (tm->runner != NULL) {
    const int blas = openblas_get_num_threads();
    return blas < 1 ? 1 : (size_t)blas;
  }
  return tm->helpers + 1;
}

void aal_team_set_runner(aal_team *tm, aal_team_runner run, void *rctx)
{
  tm->runner = run;
  tm->runner_ctx = rctx;
}

void aal_team_start(aal_team *tm, size_t nthreads)
{
  memset(tm, 0, sizeof *tm);
  atomic_init(&tm->next, 0);
  nthreads = min_size(nthreads, AAL_TEAM_MAX_THREADS);
  if (nthreads < 2)
    return;
  if (pthread_mutex_init(&tm->mu, NULL) != 0)
    return;
  if (pthread_cond_init(&tm->go, NULL) != 0) {
    (void)pthread_mutex_destroy(&tm->mu);
    return;
  }
  if (pthread_cond_init(&tm->done, NULL) != 0) {
    (void)pthread_cond_destroy(&tm->go);
    (void)pthread_mutex_destroy(&tm->mu);
    return;
  }
  tm->sync_ok = 1;
  /* No job is posted yet, so helpers only read gen and quit under mu: starting them
   * one by one without holding mu is safe. */
  for (size_t t = 1; t < nthreads; t++) {
    if (pthread_create(&tm->tid[tm->helpers], NULL, helper_main, tm) != 0)
      break;
    tm->helpers++;
  }
}

void aal_team_stop(aal_team *tm)
{
  if (!tm->sync_ok)
    return;
  lock(&tm->mu);
  tm->quit = 1;
  int rc = pthread_cond_broadcast(&tm->go);
  if (rc != 0)
    team_die("pthread_cond_broadcast", rc);
  unlock(&tm->mu);
  for (size_t t = 0; t < tm->helpers; t++) {
    rc = pthread_join(tm->tid[t], NULL);
    if (rc != 0)
      team_die("pthread_join", rc);
  }
  /* Destroying cannot fail once no thread uses them; a failure would only leak. */
  (void)pthread_cond_destroy(&tm->done);
  (void)pthread_cond_destroy(&tm->go);
  (void)pthread_mutex_destroy(&tm->mu);
  tm->sync_ok = 0;
  tm->helpers = 0;
}

void aal_team_par_for(aal_team *tm, aal_team_range_fn fn, const void *ctx,
                       size_t items, size_t bytes)
{
  if (tm != NULL && tm->runner != NULL && items >= 2 && bytes >= AAL_TEAM_PAR_MIN_BYTES) {
    tm->runner(tm->runner_ctx, fn, ctx, items);
    return;
  }
  if (tm == NULL || tm->helpers == 0 || items < 2 || bytes < AAL_TEAM_PAR_MIN_BYTES) {
    fn(ctx, 0, items);
    return;
  }
  lock(&tm->mu);
  if (tm->busy) {
    /* Another thread's loop has the team (two threads using one backend): rather than
     * wait for it, run this one alone; the split does not change results. */
    unlock(&tm->mu);
    fn(ctx, 0, items);
    return;
  }
  const size_t chunks = min_size(items, (tm->helpers + 1) * AAL_TEAM_CHUNKS_PER_THREAD);
  tm->busy = 1;
  tm->open = 1;
  tm->fn = fn;
  tm->ctx = ctx;
  tm->items = items;
  tm->chunks = chunks;
  atomic_store(&tm->next, 0);
  tm->gen++;
  const int rc = pthread_cond_broadcast(&tm->go);
  if (rc != 0)
    team_die("pthread_cond_broadcast", rc);
  unlock(&tm->mu);
  run_chunks(tm, fn, ctx, items, chunks);
  /* Every chunk is claimed: close the job and wait for the chunks helpers still run
   * (ctx lives on the caller's stack). */
  lock(&tm->mu);
  tm->open = 0;
  while (tm->active != 0)
    wait_on(&tm->done, &tm->mu);
  tm->busy = 0;
  unlock(&tm->mu);
}
