/* Synchronised batch norm (sim/layers/batchnorm.c: aal_bn2d_forward_train_sync,
 * aal_bn2d_backward_sync) without MPI: the batch is split over P threads, each a
 * "process" with an aal_comm whose sum adds every thread's vector in rank order
 * (a barrier, the rank-order add, a barrier), and the result is held to the
 * one-process reference on the whole batch (aal_bn2d_forward_train, aal_bn2d_backward):
 *
 *  a. forward: the inputs are multiples of 2^-8 in [-4, 4) and each channel has
 *     M = N*H*W = 32 or 64 values (a power of two), so every sum of the corrected
 *     two-pass (sum x, then sum d and sum d^2 with d = x - sum/M) is exact in double in
 *     any order: the split batch must give y, mean, invstd and the running statistics
 *     bit for bit;
 *  b. backward: sum dy is exact (dy dyadic), sum dy*xhat is not (invstd is irrational):
 *     the split and the whole sums differ only in association, each within
 *     gamma_{M-1} sum|dy xhat| of the exact sum, so |dS2| <= 2 gamma_{M-1} sum|dy xhat|,
 *     and dx_i, computed as k (dy_i - S1/M - xhat_i S2/M) with k = gamma invstd, differs
 *     by at most |k| |xhat_i| |dS2| / M plus the two evaluations' own roundings,
 *     2 * 4u |k| (|dy_i| + |S1|/M + |xhat_i| |S2|/M) (four operations each);
 *     dbeta (the sum of the threads' parts) is exact, dgamma within |dS2|;
 *  c. P = 2 and P = 4, so that a rank order of more than two parts is exercised;
 *     NULL comm is the reference itself (the same code), not tested again here.
 * Inputs from an mt19937 seeded from the suite's seed (printed; AAL_TEST_SEED changes
 * it); outputs poisoned with NaN; comparisons NaN-safe, the worst element reported. */
#include <check.h>
#include <float.h>
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <gsl/gsl_rng.h>

#include "sim/core/comm.h"
#include "sim/layers/layers.h"
#include "tests/aal_check.h"
#include "tests/tensors.h"

static unsigned long g_seed;

#define MAXP 4

/* ---------------------------------------------------------------- threads as ranks */

typedef struct {
  pthread_barrier_t barrier;
  double *slot[MAXP];
  int size;
} shared;

static int thread_sum(const aal_comm *c, double *v, size_t n, aal_error *err)
{
  shared *sh = c->ctx;
  double *tmp = malloc((n ? n : 1) * sizeof *tmp);
  if (tmp == NULL)
    return aal_fail(err, AAL_ENOMEM, "thread sum");
  sh->slot[c->rank] = v;
  pthread_barrier_wait(&sh->barrier);
  for (size_t i = 0; i < n; i++) {
    double s = sh->slot[0][i];
    for (int k = 1; k < sh->size; k++)
      s += sh->slot[k][i];
    tmp[i] = s;
  }
  pthread_barrier_wait(&sh->barrier); /* every thread has read every v */
  memcpy(v, tmp, n * sizeof *tmp);
  free(tmp);
  return AAL_OK;
}

static void thread_abort(const aal_comm *c, int code)
{
  (void)c;
  ck_abort_msg("a thread aborted with %d", code);
}

/* one rank's slice of the batch and its outputs */
typedef struct {
  aal_comm comm;
  aal_tensor *x, *dy, *y, *dx, *gamma, *beta, *rmean, *rvar, *mean, *invstd, *dgamma, *dbeta;
  int rc_fwd, rc_bwd;
  aal_error err;
} rank_job;

static void *run_rank(void *arg)
{
  rank_job *j = arg;
  j->rc_fwd = aal_bn2d_forward_train_sync(&j->comm, j->x, j->gamma, j->beta, j->rmean, j->rvar,
                                          AAL_BN_MOMENTUM, AAL_BN_EPS, j->y, j->mean, j->invstd,
                                          &j->err);
  if (j->rc_fwd == AAL_OK)
    j->rc_bwd = aal_bn2d_backward_sync(&j->comm, j->dy, j->x, j->gamma, j->mean, j->invstd,
                                       j->dx, j->dgamma, j->dbeta, &j->err);
  return NULL;
}

/* ---------------------------------------------------------------- helpers */

static aal_tensor *vec(long n)
{
  aal_error err;
  aal_tensor *t = aal_tensor_new1(n, &err);
  ck_assert_msg(t != NULL, "%s", err.msg);
  return t;
}

static void poison(aal_tensor *t)
{
  for (size_t i = 0; i < t->size; i++)
    t->data[i] = NAN;
}

/* multiples of 2^-8 in [-4, 4) */
static void fill_dyadic(gsl_rng *r, aal_tensor *t)
{
  for (size_t i = 0; i < t->size; i++)
    t->data[i] = ldexp(floor(gsl_rng_uniform(r) * 2048.0) - 1024.0, -8);
}

/* samples [first, first + count) of a 4-d tensor */
static aal_tensor *slice(const aal_tensor *t, size_t first, size_t count)
{
  aal_tensor *s = aal_test_tensor4((long)count, (long)t->shape[1], (long)t->shape[2],
                                   (long)t->shape[3]);
  const size_t per = t->size / t->shape[0];
  memcpy(s->data, t->data + first * per, count * per * sizeof(double));
  return s;
}

static void expect_equal(const char *what, const double *got, const double *want, size_t n)
{
  for (size_t i = 0; i < n; i++)
    ck_assert_msg(got[i] == want[i],
                  "%s[%zu]: %.17g, want %.17g bit for bit (seed %lu)", what, i, got[i], want[i],
                  g_seed);
}

/* |got - want| <= bound[i]; the worst ratio printed; NaN fails */
static void expect_within(const char *what, const double *got, const double *want,
                          const double *bound, size_t n)
{
  double worst = 0;
  size_t wi = 0;
  for (size_t i = 0; i < n; i++) {
    const double e = fabs(got[i] - want[i]);
    ck_assert_msg(e <= bound[i], "%s[%zu]: %.17g, want %.17g within %.3g (seed %lu)", what, i,
                  got[i], want[i], bound[i], g_seed);
    if (bound[i] > 0 && e / bound[i] > worst) {
      worst = e / bound[i];
      wi = i;
    }
  }
  fprintf(stderr, "  %s: worst err/bound %.3g at [%zu]\n", what, worst, wi);
}

/* ---------------------------------------------------------------- the test */

static void split_vs_whole(int p, long n, long c, long h, long w, unsigned long salt)
{
  gsl_rng *r = aal_test_rng(g_seed + salt);
  aal_error err;
  aal_tensor *x = aal_test_tensor4(n, c, h, w), *dy = aal_test_tensor4(n, c, h, w);
  aal_tensor *y = aal_test_tensor4(n, c, h, w), *dx = aal_test_tensor4(n, c, h, w);
  aal_tensor *gamma = vec(c), *beta = vec(c), *rmean = vec(c), *rvar = vec(c);
  aal_tensor *mean = vec(c), *invstd = vec(c), *dgamma = vec(c), *dbeta = vec(c);
  fill_dyadic(r, x);
  fill_dyadic(r, dy);
  fill_dyadic(r, gamma);
  fill_dyadic(r, beta);
  fill_dyadic(r, rmean);
  for (long k = 0; k < c; k++)
    rvar->data[k] = 1.0 + ldexp((double)k, -4);
  /* the whole batch, one process */
  aal_tensor *rmean1 = aal_tensor_copy(rmean, &err), *rvar1 = aal_tensor_copy(rvar, &err);
  poison(y);
  poison(dx);
  ck_assert_msg(aal_bn2d_forward_train(x, gamma, beta, rmean1, rvar1, AAL_BN_MOMENTUM,
                                       AAL_BN_EPS, y, mean, invstd, &err) == AAL_OK, "%s",
                err.msg);
  ck_assert_msg(aal_bn2d_backward(dy, x, gamma, mean, invstd, dx, dgamma, dbeta, &err) ==
                AAL_OK, "%s", err.msg);
  /* the batch split over p threads */
  shared sh;
  sh.size = p;
  ck_assert_int_eq(pthread_barrier_init(&sh.barrier, NULL, (unsigned)p), 0);
  rank_job job[MAXP];
  pthread_t th[MAXP];
  const size_t per = (size_t)n / (size_t)p;
  for (int k = 0; k < p; k++) {
    rank_job *j = &job[k];
    memset(j, 0, sizeof *j);
    j->comm = (aal_comm){.rank = k, .size = p, .sum = thread_sum, .abort = thread_abort,
                         .ctx = &sh};
    j->x = slice(x, (size_t)k * per, per);
    j->dy = slice(dy, (size_t)k * per, per);
    j->y = aal_tensor_new_like(j->x, &err);
    j->dx = aal_tensor_new_like(j->x, &err);
    poison(j->y);
    poison(j->dx);
    j->gamma = gamma;
    j->beta = beta;
    j->rmean = aal_tensor_copy(rmean, &err);
    j->rvar = aal_tensor_copy(rvar, &err);
    j->mean = vec(c);
    j->invstd = vec(c);
    j->dgamma = vec(c);
    j->dbeta = vec(c);
    ck_assert_int_eq(pthread_create(&th[k], NULL, run_rank, j), 0);
  }
  for (int k = 0; k < p; k++)
    pthread_join(th[k], NULL);
  pthread_barrier_destroy(&sh.barrier);
  const double u = DBL_EPSILON / 2, m_count = (double)(n * h * w);
  const double gam = (m_count - 1) * u / (1 - (m_count - 1) * u); /* gamma_{M-1} */
  double *sum_dg = calloc((size_t)c, sizeof(double)), *sum_db = calloc((size_t)c, sizeof(double));
  double *bdg = calloc((size_t)c, sizeof(double)), *bdx = malloc(x->size * sizeof(double));
  ck_assert(sum_dg && sum_db && bdg && bdx);
  /* |dS2| bound per channel, from the whole batch's terms */
  double *ds2 = calloc((size_t)c, sizeof(double)), *s1 = calloc((size_t)c, sizeof(double));
  ck_assert(ds2 && s1);
  const size_t hw = (size_t)(h * w);
  for (long ci = 0; ci < c; ci++) {
    double a = 0;
    for (long ni = 0; ni < n; ni++)
      for (size_t q = 0; q < hw; q++) {
        const size_t i = aal_idx4(x, (size_t)ni, (size_t)ci, 0, 0) + q;
        const double xhat = (x->data[i] - mean->data[ci]) * invstd->data[ci];
        a += fabs(dy->data[i] * xhat);
        s1[ci] += dy->data[i];
      }
    ds2[ci] = 2 * gam * a * (1 + 4 * u);
    bdg[ci] = ds2[ci];
  }
  for (long ni = 0; ni < n; ni++)
    for (long ci = 0; ci < c; ci++) {
      const double k = fabs(gamma->data[ci] * invstd->data[ci]);
      const double s2 = fabs(dgamma->data[ci]);
      for (size_t q = 0; q < hw; q++) {
        const size_t i = aal_idx4(x, (size_t)ni, (size_t)ci, 0, 0) + q;
        const double xhat = fabs((x->data[i] - mean->data[ci]) * invstd->data[ci]);
        bdx[i] = k * xhat * ds2[ci] / m_count +
                 2 * 4 * u * k * (fabs(dy->data[i]) + fabs(s1[ci]) / m_count +
                                  xhat * (s2 + ds2[ci]) / m_count) * (1 + 8 * u);
      }
    }
  for (int k = 0; k < p; k++) {
    rank_job *j = &job[k];
    ck_assert_msg(j->rc_fwd == AAL_OK && j->rc_bwd == AAL_OK, "rank %d: %s", k, j->err.msg);
    char what[64];
    const size_t off = (size_t)k * per * (x->size / (size_t)n);
    snprintf(what, sizeof what, "P=%d rank %d y", p, k);
    expect_equal(what, j->y->data, y->data + off, j->y->size);
    snprintf(what, sizeof what, "P=%d rank %d mean", p, k);
    expect_equal(what, j->mean->data, mean->data, (size_t)c);
    snprintf(what, sizeof what, "P=%d rank %d invstd", p, k);
    expect_equal(what, j->invstd->data, invstd->data, (size_t)c);
    snprintf(what, sizeof what, "P=%d rank %d running_mean", p, k);
    expect_equal(what, j->rmean->data, rmean1->data, (size_t)c);
    snprintf(what, sizeof what, "P=%d rank %d running_var", p, k);
    expect_equal(what, j->rvar->data, rvar1->data, (size_t)c);
    snprintf(what, sizeof what, "P=%d rank %d dx", p, k);
    expect_within(what, j->dx->data, dx->data + off, bdx + off, j->dx->size);
    for (long ci = 0; ci < c; ci++) {
      sum_dg[ci] += j->dgamma->data[ci];
      sum_db[ci] += j->dbeta->data[ci];
    }
  }
  char what[64];
  snprintf(what, sizeof what, "P=%d dbeta (sum of parts)", p);
  expect_equal(what, sum_db, dbeta->data, (size_t)c);
  snprintf(what, sizeof what, "P=%d dgamma (sum of parts)", p);
  expect_within(what, sum_dg, dgamma->data, bdg, (size_t)c);
  for (int k = 0; k < p; k++) {
    rank_job *j = &job[k];
    aal_tensor *ts[] = {j->x, j->dy, j->y, j->dx, j->rmean, j->rvar, j->mean, j->invstd,
                        j->dgamma, j->dbeta};
    for (size_t i = 0; i < sizeof ts / sizeof ts[0]; i++)
      aal_tensor_release(ts[i]);
  }
  aal_tensor *ts[] = {x, dy, y, dx, gamma, beta, rmean, rvar, mean, invstd, dgamma, dbeta,
                      rmean1, rvar1};
  for (size_t i = 0; i < sizeof ts / sizeof ts[0]; i++)
    aal_tensor_release(ts[i]);
  free(sum_dg);
  free(sum_db);
  free(bdg);
  free(bdx);
  free(ds2);
  free(s1);
  gsl_rng_free(r);
}

START_TEST(two_threads)
{
  split_vs_whole(2, 4, 3, 2, 4, 1); /* M = 32 */
  split_vs_whole(2, 8, 5, 2, 4, 2); /* M = 64 */
}
END_TEST

START_TEST(four_threads)
{
  split_vs_whole(4, 4, 3, 2, 4, 3);
  split_vs_whole(4, 8, 6, 4, 2, 4);
}
END_TEST

int main(void)
{
  g_seed = aal_test_seed();
  Suite *s = suite_create("bn_sync");
  TCase *tc = tcase_create("bn_sync");
  tcase_add_test(tc, two_threads);
  tcase_add_test(tc, four_threads);
  suite_add_tcase(s, tc);
  return aal_check_run(s);
}
