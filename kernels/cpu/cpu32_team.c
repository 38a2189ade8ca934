/* A small team of helper threads for the memory-bound loops of the cpu32 kernels
 * (im2col, col2im, NCHW <-> [K, m*PQ] copies), ported from sim/conv2d.c.
 *
 * aal_cpu32_par_for splits a range of independent items into contiguous blocks, one per
 * thread; every output element is written by exactly one item and every item does the
 * same arithmetic in the same order as a single-threaded run, so results are
 * bit-identical for any thread count.
 *
 * A team belongs to one kernel call (it lives on the caller's stack: no pool, no global
 * state); its helpers sleep on a condition variable between loops, e.g. while the GEMMs
 * run.  Creating a thread per loop would cost ~50 us each on the 2-core VM this was
 * tuned on, and a fresh thread is often not yet running on the other core when the
 * loop, a few hundred microseconds long, is over.  If a helper cannot be created, the
 * team is smaller (possibly empty) and the calling thread does the remaining blocks. */
#include "cpu32_internal.h"

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

/* Block b of nblocks over [0, items): [*lo, *hi). */
static void block_range(size_t items, size_t nblocks, size_t b, size_t *lo, size_t *hi)
{
  *lo = items * b / nblocks;
  *hi = items * (b + 1) / nblocks;
}

static void *helper_main(void *p)
{
  const aal_cpu32_helper_arg *a = p;
  aal_cpu32_team *tm = a->tm;
  unsigned long seen = 0;
  lock(&tm->mu);
  for (;;) {
    while (!tm->quit && tm->gen == seen)
      wait_on(&tm->go, &tm->mu);
    if (tm->quit)
      break;
    seen = tm->gen;
    const aal_cpu32_range_fn fn = tm->fn;
    const void *ctx = tm->ctx;
    const size_t items = tm->items, nblocks = tm->nblocks;
    unlock(&tm->mu);
    if (a->index < nblocks) {
      size_t lo, hi;
      block_range(items, nblocks, a->index, &lo, &hi);
      fn(ctx, lo, hi);
    }
    lock(&tm->mu);
    if (--tm->pending == 0) {
      const int rc = pthread_cond_signal(&tm->done);
      if (rc != 0)
        team_die("pthread_cond_signal", rc);
    }
  }
  unlock(&tm->mu);
  return NULL;
}

size_t aal_cpu32_team_threads(size_t work_bytes)
{
  if (work_bytes < AAL_CPU32_PAR_MIN_BYTES)
    return 1;
  const int blas = openblas_get_num_threads();
  return blas < 1 ? 1 : min_size((size_t)blas, AAL_CPU32_MAX_THREADS);
}

void aal_cpu32_team_start(aal_cpu32_team *tm, size_t nthreads)
{
  memset(tm, 0, sizeof *tm);
  nthreads = min_size(nthreads, AAL_CPU32_MAX_THREADS);
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
    tm->arg[tm->helpers] = (aal_cpu32_helper_arg){tm, tm->helpers + 1};
    if (pthread_create(&tm->tid[tm->helpers], NULL, helper_main, &tm->arg[tm->helpers]) != 0)
      break;
    tm->helpers++;
  }
}

void aal_cpu32_team_stop(aal_cpu32_team *tm)
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

void aal_cpu32_par_for(aal_cpu32_team *tm, aal_cpu32_range_fn fn, const void *ctx,
                       size_t items, size_t bytes)
{
  const size_t nblocks = min_size(tm->helpers + 1, items);
  if (nblocks < 2 || bytes < AAL_CPU32_PAR_MIN_BYTES) {
    fn(ctx, 0, items);
    return;
  }
  lock(&tm->mu);
  tm->fn = fn;
  tm->ctx = ctx;
  tm->items = items;
  tm->nblocks = nblocks;
  tm->pending = tm->helpers;
  tm->gen++;
  const int rc = pthread_cond_broadcast(&tm->go);
  if (rc != 0)
    team_die("pthread_cond_broadcast", rc);
  unlock(&tm->mu);
  size_t lo, hi;
  block_range(items, nblocks, 0, &lo, &hi);
  fn(ctx, lo, hi);
  lock(&tm->mu);
  while (tm->pending != 0)
    wait_on(&tm->done, &tm->mu);
  unlock(&tm->mu);
}
