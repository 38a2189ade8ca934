/* Tests of the reference 2-d max pooling (sim/layers/pool.c, sim/layers/layers.h):
 *
 *  a. forward against a naive, independent computation (an explicitly padded plane of
 *     -infinity, the window's maximum by fmax, then the first position holding it) on
 *     random inputs, at the ResNet stem's geometry (k 3, stride 2, pad 1) and odd ones;
 *  b. backward against central finite differences of sum(w * y) for random w, every
 *     element of dx (GSL's gsl_deriv_central through tests/fdcheck.c); the inputs are
 *     distinct multiples of 2^-10 spaced 2^-9 apart and the step is 2^-12, so no
 *     perturbation changes a winner and every evaluation is exact;
 *  c. the tie rule: a window of equal values sends its whole gradient to its first
 *     element; the first of several equal maxima wins; a NaN wins (and no number
 *     displaces it); padding never wins (all-negative inputs with pad 1; a window of
 *     -infinity gives -infinity, at its first input position); overlapping windows
 *     accumulate into the element they share;
 *  d. bad arguments (k, stride, pad > k/2, shapes, aliasing) return an error code and a
 *     message naming the op and the argument, never crash.
 *
 * Inputs come from a GSL mt19937 stream seeded from the suite's seed (printed; set
 * AAL_TEST_SEED to change), one salt per test.  Outputs are poisoned with NaN before
 * every call.  Comparisons are written so that NaN fails (!(err <= bound)) and report
 * the worst element. */
#include <check.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <gsl/gsl_rng.h>

#include "tests/aal_check.h"
#include "tests/tensors.h"
#include "sim/layers/layers.h"
#include "tests/fdcheck.h"

static unsigned long g_seed;

/* ------------------------------------------------------------------ helpers */

static void *xmalloc(size_t n)
{
  void *p = malloc(n > 0 ? n : 1);
  ck_assert_ptr_nonnull(p);
  return p;
}

/* The geometry of one case: x [n, c, h, w], window k, stride s, pad p. */
typedef struct {
  long n, c, h, w;
  int k, s, p;
} geom;

static long out_size(long in, int k, int s, int p)
{
  return aal_maxpool2d_output_size(in, k, s, p);
}

/* x, y, dy, dx of a geometry (y and dy [n, c, Ho, Wo]). */
typedef struct {
  geom g;
  long ho, wo;
  aal_tensor *x, *y, *dy, *dx;
} pool_bufs;

static void bufs_new(pool_bufs *b, geom g)
{
  b->g = g;
  b->ho = out_size(g.h, g.k, g.s, g.p);
  b->wo = out_size(g.w, g.k, g.s, g.p);
  ck_assert_msg(b->ho >= 1 && b->wo >= 1, "geometry %ldx%ld k%d s%d p%d has no output", g.h,
                g.w, g.k, g.s, g.p);
  b->x = aal_test_tensor4(g.n, g.c, g.h, g.w);
  b->dx = aal_test_tensor4(g.n, g.c, g.h, g.w);
  b->y = aal_test_tensor4(g.n, g.c, b->ho, b->wo);
  b->dy = aal_test_tensor4(g.n, g.c, b->ho, b->wo);
}

static void bufs_free(pool_bufs *b)
{
  aal_tensor_release(b->x);
  aal_tensor_release(b->y);
  aal_tensor_release(b->dy);
  aal_tensor_release(b->dx);
}

static void forward(pool_bufs *b)
{
  aal_error err;
  aal_tensor_fill(b->y, NAN);
  const int rc = aal_maxpool2d_forward(b->x, b->g.k, b->g.s, b->g.p, b->y, &err);
  ck_assert_msg(rc == AAL_OK, "maxpool forward: %s", err.msg);
}

static void backward(pool_bufs *b)
{
  aal_error err;
  aal_tensor_fill(b->dx, NAN);
  const int rc = aal_maxpool2d_backward(b->dy, b->x, b->g.k, b->g.s, b->g.p, b->dx, &err);
  ck_assert_msg(rc == AAL_OK, "maxpool backward: %s", err.msg);
}

/* The naive pooling, independent of the layer's code: the plane is copied into a
 * (h + 2p) x (w + 2p) array of -infinity, each window's maximum is found with fmax
 * over all k*k positions (padding included), then the winner is the first position
 * (row-major) holding that maximum.  Inputs without NaN.  For every output: the
 * winner's index in x (win) and, with dy, the gathered gradient dx. */
static void naive(const geom *g, const double *x, const double *dy, long ho, long wo,
                  double *y, double *dx)
{
  const long hp = g->h + 2L * g->p, wp = g->w + 2L * g->p;
  double *pad = xmalloc((size_t)(hp * wp) * sizeof *pad);
  if (dx != NULL)
    for (long i = 0; i < g->n * g->c * g->h * g->w; i++)
      dx[i] = 0.0;
  for (long pl = 0; pl < g->n * g->c; pl++) {
    for (long i = 0; i < hp * wp; i++)
      pad[i] = -INFINITY;
    for (long ih = 0; ih < g->h; ih++)
      for (long iw = 0; iw < g->w; iw++)
        pad[(ih + g->p) * wp + iw + g->p] = x[(pl * g->h + ih) * g->w + iw];
    for (long oh = 0; oh < ho; oh++)
      for (long ow = 0; ow < wo; ow++) {
        double m = -INFINITY;
        for (int a = 0; a < g->k; a++)
          for (int b = 0; b < g->k; b++)
            m = fmax(m, pad[(oh * g->s + a) * wp + ow * g->s + b]);
        long wh = -1, ww = -1;
        for (int a = 0; a < g->k && wh < 0; a++)
          for (int b = 0; b < g->k && wh < 0; b++)
            if (pad[(oh * g->s + a) * wp + ow * g->s + b] == m) {
              wh = oh * g->s + a - g->p;
              ww = ow * g->s + b - g->p;
            }
        ck_assert_msg(wh >= 0 && wh < g->h && ww >= 0 && ww < g->w,
                      "naive: the winner (%ld, %ld) of window (%ld, %ld) is padding", wh, ww,
                      oh, ow);
        const long o = (pl * ho + oh) * wo + ow;
        if (y != NULL)
          y[o] = m;
        if (dx != NULL)
          dx[(pl * g->h + wh) * g->w + ww] += dy[o];
      }
  }
  free(pad);
}

/* got[i] must equal want[i] within bound (0: exactly); NaN fails.  Reports the worst. */
static void expect_equal(const char *what, const double *got, const double *want, size_t n,
                         double bound)
{
  size_t worst = 0, bad = 0;
  double worst_err = -1.0;
  for (size_t i = 0; i < n; i++) {
    const double e = fabs(got[i] - want[i]);
    if (!(e <= bound))
      bad++;
    if (!(e <= worst_err)) { /* NaN becomes the worst */
      worst_err = e;
      worst = i;
    }
  }
  ck_assert_msg(bad == 0,
                "%s: %zu of %zu elements differ; worst [%zu] got %.17g want %.17g (bound %g, "
                "seed %lu)",
                what, bad, n, worst, got[worst], want[worst], bound, g_seed);
}

/* Uniform in [lo, hi) from r, never exactly zero. */
static double nonzero_uniform(gsl_rng *r, double lo, double hi)
{
  double v;
  do
    v = lo + (hi - lo) * gsl_rng_uniform(r);
  while (v == 0.0);
  return v;
}

static const geom cases[] = {
    {2, 3, 17, 17, 3, 2, 1}, /* the ImageNet stem's pooling, small */
    {2, 5, 18, 18, 3, 2, 1}, /* even size: the last window reaches into the padding */
    {1, 8, 18, 17, 3, 2, 1},
    {2, 3, 9, 8, 2, 2, 0},   /* PyTorch's common 2x2 */
    {2, 2, 7, 9, 3, 1, 1},   /* stride 1, "same" size, heavy overlap */
    {1, 3, 10, 11, 4, 3, 2}, /* even k, pad k/2 */
    {3, 2, 5, 6, 5, 2, 2},
    {2, 2, 6, 5, 1, 1, 0},   /* identity */
    {1, 1, 1, 1, 1, 1, 0},
    {1, 2, 2, 3, 3, 2, 1},   /* tiny input: windows mostly padding */
};
#define NCASES (sizeof cases / sizeof cases[0])

/* ------------------------------------------------------------------ a. forward */

START_TEST(output_size)
{
  static const struct {
    long in;
    int k, s, p;
    long want;
  } t[] = {{64, 3, 2, 1, 32}, {32, 3, 2, 1, 16}, {112, 3, 2, 1, 56}, {17, 3, 2, 1, 9},
           {18, 3, 2, 1, 9},  {5, 2, 2, 0, 2},   {7, 3, 1, 1, 7},    {10, 4, 3, 2, 4},
           {1, 1, 1, 0, 1},   {1, 3, 2, 1, 1},   {2, 3, 3, 1, 1},
           /* invalid: 0 */
           {0, 3, 2, 1, 0},   {5, 0, 1, 0, 0},   {5, 3, 0, 1, 0},    {5, 3, 2, 2, 0},
           {5, 3, 2, -1, 0},  {1, 4, 1, 1, 0},   {2, 5, 1, 1, 0}};
  for (size_t i = 0; i < sizeof t / sizeof t[0]; i++) {
    const long got = aal_maxpool2d_output_size(t[i].in, t[i].k, t[i].s, t[i].p);
    ck_assert_msg(t[i].want > 0 ? got == t[i].want : got <= 0,
                  "output size (in %ld, k %d, stride %d, pad %d) = %ld, want %ld", t[i].in,
                  t[i].k, t[i].s, t[i].p, got, t[i].want);
  }
}
END_TEST

START_TEST(forward_naive)
{
  gsl_rng *r = aal_test_rng(g_seed + 301);
  fprintf(stderr, "maxpool forward against the naive pooling: seed %lu\n", g_seed);
  for (size_t ci = 0; ci < NCASES; ci++) {
    pool_bufs b;
    bufs_new(&b, cases[ci]);
    for (size_t i = 0; i < b.x->size; i++)
      b.x->data[i] = nonzero_uniform(r, -1.0, 1.0);
    forward(&b);
    double *want = xmalloc(b.y->size * sizeof *want);
    naive(&b.g, b.x->data, NULL, b.ho, b.wo, want, NULL);
    char what[96];
    snprintf(what, sizeof what, "forward %ldx%ldx%ldx%ld k%d s%d p%d", b.g.n, b.g.c, b.g.h,
             b.g.w, b.g.k, b.g.s, b.g.p);
    expect_equal(what, b.y->data, want, b.y->size, 0.0);
    /* backward on the same random input against the naive gather (no ties: distinct
     * doubles), exact: the sums are formed in the same (output) order */
    for (size_t i = 0; i < b.dy->size; i++)
      b.dy->data[i] = nonzero_uniform(r, -1.0, 1.0);
    backward(&b);
    double *dx = xmalloc(b.dx->size * sizeof *dx);
    naive(&b.g, b.x->data, b.dy->data, b.ho, b.wo, NULL, dx);
    snprintf(what, sizeof what, "backward %ldx%ldx%ldx%ld k%d s%d p%d", b.g.n, b.g.c, b.g.h,
             b.g.w, b.g.k, b.g.s, b.g.p);
    expect_equal(what, b.dx->data, dx, b.dx->size, 0.0);
    free(want);
    free(dx);
    bufs_free(&b);
  }
  gsl_rng_free(r);
}
END_TEST

/* ------------------------------------------------------------------ b. finite differences */

/* F(x) = sum_o w_o y_o. */
typedef struct {
  pool_bufs *b;
  const double *wt;
} fd_ctx;

static void fd_forward(void *ctx, double *out)
{
  fd_ctx *k = ctx;
  aal_error err;
  aal_tensor_fill(k->b->y, NAN);
  const int rc = aal_maxpool2d_forward(k->b->x, k->b->g.k, k->b->g.s, k->b->g.p, k->b->y, &err);
  double s = rc == AAL_OK ? 0.0 : NAN;
  for (size_t i = 0; i < k->b->y->size; i++)
    s += k->wt[i] * k->b->y->data[i];
  out[0] = s;
}

/* The full gradient of sum(w * y) in x, i.e. backward with dy = w, against central
 * differences in every element of x.  x: a random permutation of the distinct values
 * (j + 1/2 - size/2) 2^-9 (multiples of 2^-10, never 0, spaced 2^-9 ~ 2e-3 apart); w
 * multiples of 2^-10 in [-1, 1), nonzero; the step 2^-12 moves an element by at most
 * 2^-12 (GSL evaluates at x +- h and x +- h/2), less than half the spacing, so no
 * winner changes, F is linear there and every evaluation is exact (products of at most
 * 12 + 10 significant bits, sums far below 2^53 ulps). */
static void fd_gradient(gsl_rng *r, geom g)
{
  pool_bufs b;
  bufs_new(&b, g);
  const size_t n = b.x->size;
  size_t *perm = xmalloc(n * sizeof *perm);
  for (size_t i = 0; i < n; i++)
    perm[i] = i;
  for (size_t i = n; i > 1; i--) { /* Fisher-Yates */
    const size_t j = gsl_rng_uniform_int(r, i), t = perm[i - 1];
    perm[i - 1] = perm[j];
    perm[j] = t;
  }
  for (size_t i = 0; i < n; i++)
    b.x->data[i] = ((double)perm[i] + 0.5 - 0.5 * (double)n) * 0x1p-9;
  double *wt = xmalloc(b.y->size * sizeof *wt);
  for (size_t i = 0; i < b.y->size; i++) {
    do
      wt[i] = (double)((long)gsl_rng_uniform_int(r, 2048) - 1024) * 0x1p-10;
    while (wt[i] == 0.0);
  }
  memcpy(b.dy->data, wt, b.y->size * sizeof *wt);
  backward(&b);
  double *grad = xmalloc(n * sizeof *grad);
  memcpy(grad, b.dx->data, n * sizeof *grad);
  fd_ctx k = {&b, wt};
  const fd_problem p = {b.x->data, n, 1, fd_forward, &k, 0x1p-12};
  fd_report rep;
  char what[96];
  snprintf(what, sizeof what, "maxpool d sum(w y)/dx %ldx%ldx%ldx%ld k%d s%d p%d", g.n, g.c,
           g.h, g.w, g.k, g.s, g.p);
  const int ok = fd_check_jacobian(&p, grad, what, &rep);
  ck_assert_msg(ok, "%s: %zu of %zu entries fail; worst rel %.3g at x[%zu]: backward %.17g, "
                "fd %.17g (seed %lu)", what, rep.failed, rep.checked, rep.worst_rel,
                rep.worst_j, rep.worst_analytic, rep.worst_fd, g_seed);
  free(perm);
  free(wt);
  free(grad);
  bufs_free(&b);
}

START_TEST(backward_fd)
{
  gsl_rng *r = aal_test_rng(g_seed + 302);
  fprintf(stderr, "maxpool backward against finite differences: seed %lu\n", g_seed);
  for (size_t ci = 0; ci < NCASES; ci++)
    fd_gradient(r, cases[ci]);
  gsl_rng_free(r);
}
END_TEST

/* ------------------------------------------------------------------ c. the rules */

/* One 1x1xHxW plane with given values: y and dx (dy = 1 at every output unless given). */
static void run_plane(pool_bufs *b, const double *x, const double *dy)
{
  memcpy(b->x->data, x, b->x->size * sizeof *x);
  for (size_t i = 0; i < b->dy->size; i++)
    b->dy->data[i] = dy != NULL ? dy[i] : 1.0;
  forward(b);
  backward(b);
}

/* A plane of equal values: every window's gradient goes to its first input position
 * (its top-left one inside the image), so with k 3, stride 2, pad 1 on 5x5 the windows
 * start at rows/columns -1, 1, 3, and their first input positions are 0, 1, 3. */
START_TEST(ties_first_wins)
{
  pool_bufs b;
  bufs_new(&b, (geom){1, 1, 5, 5, 3, 2, 1});
  double x[25], dy[9];
  for (int i = 0; i < 25; i++)
    x[i] = 0.75;
  for (int i = 0; i < 9; i++)
    dy[i] = (double)(i + 1); /* tells the windows apart */
  run_plane(&b, x, dy);
  double want[25] = {0};
  static const int first[3] = {0, 1, 3};
  for (int oh = 0; oh < 3; oh++)
    for (int ow = 0; ow < 3; ow++)
      want[first[oh] * 5 + first[ow]] += dy[oh * 3 + ow];
  for (int i = 0; i < 9; i++)
    ck_assert_msg(b.y->data[i] == 0.75, "y[%d] = %.17g", i, b.y->data[i]);
  expect_equal("ties k3 s2 p1: gradient to each window's first element", b.dx->data, want, 25,
               0.0);
  bufs_free(&b);

  /* k 2 stride 1 on a constant 4x4: window (oh, ow) starts at (oh, ow) */
  bufs_new(&b, (geom){1, 1, 4, 4, 2, 1, 0});
  double x2[16], dy2[9], want2[16] = {0};
  for (int i = 0; i < 16; i++)
    x2[i] = -2.5;
  for (int i = 0; i < 9; i++)
    dy2[i] = 0.5 + i;
  run_plane(&b, x2, dy2);
  for (int oh = 0; oh < 3; oh++)
    for (int ow = 0; ow < 3; ow++)
      want2[oh * 4 + ow] = dy2[oh * 3 + ow];
  expect_equal("ties k2 s1: gradient to each window's first element", b.dx->data, want2, 16,
               0.0);
  bufs_free(&b);

  /* one window (3x3, no pad), the maximum 3 three times: the first (row 0, col 1) wins,
   * even against the later, "more central" ones */
  bufs_new(&b, (geom){1, 1, 3, 3, 3, 1, 0});
  const double x3[9] = {1, 3, -1, 2, 3, 0.5, 3, -4, 2};
  run_plane(&b, x3, NULL);
  const double want3[9] = {0, 1, 0, 0, 0, 0, 0, 0, 0};
  ck_assert(b.y->data[0] == 3.0);
  expect_equal("first of three equal maxima", b.dx->data, want3, 9, 0.0);
  bufs_free(&b);
}
END_TEST

/* A NaN wins: y is NaN and the gradient goes to the NaN; a larger number after it does
 * not displace it; of two NaNs the later one is the winner (PyTorch's rule,
 * val > maxval || isnan(val)). */
START_TEST(nan_wins)
{
  pool_bufs b;
  bufs_new(&b, (geom){1, 1, 3, 3, 3, 1, 0});
  double x[9] = {1, 2, 3, 4, NAN, 6, 7, 8, 9};
  run_plane(&b, x, NULL);
  double want[9] = {0, 0, 0, 0, 1, 0, 0, 0, 0};
  ck_assert_msg(isnan(b.y->data[0]), "y = %g, want NaN", b.y->data[0]);
  expect_equal("NaN in the middle wins over the larger numbers after it", b.dx->data, want, 9,
               0.0);

  x[4] = 5;
  x[0] = NAN; /* the first element: no later number displaces it */
  run_plane(&b, x, NULL);
  ck_assert(isnan(b.y->data[0]));
  double want0[9] = {1, 0, 0, 0, 0, 0, 0, 0, 0};
  expect_equal("NaN as the first element stays", b.dx->data, want0, 9, 0.0);

  x[7] = NAN; /* two NaNs: the later one takes over */
  run_plane(&b, x, NULL);
  ck_assert(isnan(b.y->data[0]));
  double want7[9] = {0, 0, 0, 0, 0, 0, 0, 1, 0};
  expect_equal("of two NaNs the last wins", b.dx->data, want7, 9, 0.0);
  bufs_free(&b);
}
END_TEST

/* Padding never wins: on all-negative inputs with pad 1 every output is one of the
 * window's input values (negative, never the padding's 0 or -infinity), equal to the
 * naive result, and the gradient reaches input positions only (its total is sum dy). */
START_TEST(padding_never_wins)
{
  gsl_rng *r = aal_test_rng(g_seed + 303);
  static const geom g[] = {{2, 3, 17, 17, 3, 2, 1}, {1, 2, 6, 7, 3, 1, 1},
                           {1, 2, 5, 5, 2, 1, 1},   {2, 1, 4, 4, 4, 2, 2}};
  for (size_t ci = 0; ci < sizeof g / sizeof g[0]; ci++) {
    pool_bufs b;
    bufs_new(&b, g[ci]);
    for (size_t i = 0; i < b.x->size; i++)
      b.x->data[i] = -nonzero_uniform(r, 0.001, 1.0);
    for (size_t i = 0; i < b.dy->size; i++)
      b.dy->data[i] = nonzero_uniform(r, 0.5, 1.5);
    forward(&b);
    backward(&b);
    double *want = xmalloc(b.y->size * sizeof *want), *dx = xmalloc(b.dx->size * sizeof *dx);
    naive(&b.g, b.x->data, b.dy->data, b.ho, b.wo, want, dx);
    for (size_t i = 0; i < b.y->size; i++)
      ck_assert_msg(b.y->data[i] < 0.0 && isfinite(b.y->data[i]),
                    "y[%zu] = %g: the padding won (case %zu, seed %lu)", i, b.y->data[i], ci,
                    g_seed);
    expect_equal("all negative, pad: forward", b.y->data, want, b.y->size, 0.0);
    expect_equal("all negative, pad: backward", b.dx->data, dx, b.dx->size, 0.0);
    double sdy = 0.0, sdx = 0.0, adx = 0.0;
    for (size_t i = 0; i < b.dy->size; i++)
      sdy += b.dy->data[i];
    for (size_t i = 0; i < b.dx->size; i++) {
      sdx += b.dx->data[i];
      adx += fabs(b.dx->data[i]);
    }
    ck_assert_msg(fabs(sdx - sdy) <= 1e-12 * adx, "sum dx %.17g, sum dy %.17g", sdx, sdy);
    free(want);
    free(dx);
    bufs_free(&b);
  }
  /* a window whose input positions are all -infinity: y = -infinity, at the first one */
  pool_bufs b;
  bufs_new(&b, (geom){1, 1, 2, 2, 3, 2, 1});
  const double x[4] = {-INFINITY, -INFINITY, -INFINITY, -INFINITY};
  run_plane(&b, x, NULL);
  ck_assert_msg(b.y->data[0] == -INFINITY, "y = %g", b.y->data[0]);
  const double want[4] = {1, 0, 0, 0};
  expect_equal("all -infinity: the first input position", b.dx->data, want, 4, 0.0);
  bufs_free(&b);
  gsl_rng_free(r);
}
END_TEST

/* Overlapping windows accumulate: with stride 1 and pad 1 the single maximum of a 5x5
 * plane (at row 2, column 3) wins the 9 windows that contain it, and its gradient is
 * the sum of their dy; with k 3 stride 2 the element at (3, 3) is in 4 windows. */
START_TEST(overlap_accumulates)
{
  pool_bufs b;
  bufs_new(&b, (geom){1, 1, 5, 5, 3, 1, 1});
  double x[25], dy[25];
  for (int i = 0; i < 25; i++) {
    x[i] = -0.01 * (i + 1);
    dy[i] = 1.0 + 0.125 * i;
  }
  x[2 * 5 + 3] = 10.0;
  run_plane(&b, x, dy);
  double want = 0.0;
  for (int oh = 1; oh <= 3; oh++)
    for (int ow = 2; ow <= 4; ow++)
      want += dy[oh * 5 + ow];
  ck_assert_msg(b.dx->data[2 * 5 + 3] == want, "dx at the maximum %.17g, want %.17g (9 windows)",
                b.dx->data[2 * 5 + 3], want);
  bufs_free(&b);

  bufs_new(&b, (geom){1, 1, 5, 5, 3, 2, 1});
  for (int i = 0; i < 25; i++)
    x[i] = -1.0 - i;
  /* windows cover rows (and columns) -1..1, 1..3, 3..5: row 3 is in the last two */
  x[3 * 5 + 3] = 1.0;
  const double dy9[9] = {1, 2, 4, 8, 16, 32, 64, 128, 256};
  run_plane(&b, x, dy9);
  ck_assert_msg(b.dx->data[3 * 5 + 3] == 16 + 32 + 128 + 256, "dx[3,3] = %.17g (4 windows)",
                b.dx->data[3 * 5 + 3]);
  bufs_free(&b);
}
END_TEST

/* ------------------------------------------------------------------ d. bad arguments */

static void expect_status(int rc, const aal_error *err, int want, const char *call,
                          const char *needle)
{
  ck_assert_msg(rc == want, "%s returned %s, expected %s (%s)", call, aal_status_name(rc),
                aal_status_name(want), err->msg);
  ck_assert_msg(strstr(err->msg, "maxpool2d") != NULL, "%s: message '%s' names no op", call,
                err->msg);
  ck_assert_msg(needle == NULL || strstr(err->msg, needle) != NULL,
                "%s: message '%s' does not name '%s'", call, err->msg, needle);
  if (getenv("AAL_TEST_VERBOSE") != NULL)
    fprintf(stderr, "  %-10s %s\n", aal_status_name(rc), err->msg);
}

#define EXPECT(want, needle, call)                                                            \
  do {                                                                                        \
    aal_error_clear(&err);                                                                    \
    const int rc_ = (call);                                                                   \
    expect_status(rc_, &err, (want), #call, (needle));                                        \
  } while (0)

START_TEST(bad_arguments)
{
  aal_error err;
  aal_tensor *x = aal_test_tensor4(2, 3, 8, 8), *y = aal_test_tensor4(2, 3, 4, 4), *dx = aal_test_tensor4(2, 3, 8, 8);
  aal_tensor *y_bad = aal_test_tensor4(2, 3, 4, 5), *y_c = aal_test_tensor4(2, 4, 4, 4), *dx_bad = aal_test_tensor4(2, 3, 8, 7);
  aal_tensor *small = aal_test_tensor4(1, 1, 1, 1), *ys = aal_test_tensor4(1, 1, 1, 1);
  long two[2] = {2, 3};
  aal_tensor *x2 = aal_tensor_new(2, two, &err), *xb = aal_tensor_new_bits(4, (long[]){2, 3, 8, 8}, &err);
  ck_assert(x2 != NULL && xb != NULL);
  for (size_t i = 0; i < x->size; i++)
    x->data[i] = (double)(i % 13) - 6.5;

  aal_error_clear(&err);
  ck_assert_int_eq(aal_maxpool2d_forward(x, 3, 2, 1, y, &err), AAL_OK);
  EXPECT(AAL_EINVAL, "pad", aal_maxpool2d_forward(x, 3, 2, 2, y, &err)); /* pad > k/2 */
  EXPECT(AAL_EINVAL, "pad", aal_maxpool2d_forward(x, 2, 2, 2, y, &err));
  EXPECT(AAL_EINVAL, "pad", aal_maxpool2d_forward(x, 3, 2, -1, y, &err));
  EXPECT(AAL_EINVAL, "stride", aal_maxpool2d_forward(x, 3, 0, 1, y, &err));
  EXPECT(AAL_EINVAL, "stride", aal_maxpool2d_forward(x, 3, -2, 1, y, &err));
  EXPECT(AAL_EINVAL, "k is", aal_maxpool2d_forward(x, 0, 1, 0, y, &err));
  EXPECT(AAL_ESHAPE, "y", aal_maxpool2d_forward(x, 3, 2, 1, y_bad, &err));
  EXPECT(AAL_ESHAPE, "y", aal_maxpool2d_forward(x, 3, 2, 1, y_c, &err));
  EXPECT(AAL_ESHAPE, "y", aal_maxpool2d_forward(x, 3, 1, 1, y, &err)); /* stride 1: 8x8 */
  EXPECT(AAL_ESHAPE, "x", aal_maxpool2d_forward(x2, 3, 2, 1, y, &err));
  EXPECT(AAL_EINVAL, "x", aal_maxpool2d_forward(NULL, 3, 2, 1, y, &err));
  EXPECT(AAL_EINVAL, "y", aal_maxpool2d_forward(x, 3, 2, 1, NULL, &err));
  EXPECT(AAL_EINVAL, "x", aal_maxpool2d_forward(xb, 3, 2, 1, y, &err));
  EXPECT(AAL_ESHAPE, "no output", aal_maxpool2d_forward(small, 4, 1, 1, ys, &err)); /* 1 + 2 < 4 */
  EXPECT(AAL_EINVAL, "share", aal_maxpool2d_forward(ys, 1, 1, 0, ys, &err));

  ck_assert_int_eq(aal_maxpool2d_backward(y, x, 3, 2, 1, dx, &err), AAL_OK);
  EXPECT(AAL_EINVAL, "pad", aal_maxpool2d_backward(y, x, 3, 2, 2, dx, &err));
  EXPECT(AAL_EINVAL, "stride", aal_maxpool2d_backward(y, x, 3, 0, 1, dx, &err));
  EXPECT(AAL_EINVAL, "k is", aal_maxpool2d_backward(y, x, -1, 1, 0, dx, &err));
  EXPECT(AAL_ESHAPE, "dy", aal_maxpool2d_backward(y_bad, x, 3, 2, 1, dx, &err));
  EXPECT(AAL_ESHAPE, "dx", aal_maxpool2d_backward(y, x, 3, 2, 1, dx_bad, &err));
  EXPECT(AAL_EINVAL, "dy", aal_maxpool2d_backward(NULL, x, 3, 2, 1, dx, &err));
  EXPECT(AAL_EINVAL, "x", aal_maxpool2d_backward(y, NULL, 3, 2, 1, dx, &err));
  EXPECT(AAL_EINVAL, "dx", aal_maxpool2d_backward(y, x, 3, 2, 1, NULL, &err));
  EXPECT(AAL_EINVAL, "share", aal_maxpool2d_backward(y, x, 3, 2, 1, x, &err));
  EXPECT(AAL_EINVAL, "share", aal_maxpool2d_backward(ys, small, 1, 1, 0, ys, &err));
  /* NULL err is allowed (the code alone) */
  ck_assert_int_eq(aal_maxpool2d_forward(x, 3, 2, 5, y, NULL), AAL_EINVAL);

  aal_tensor *all[] = {x, y, dx, y_bad, y_c, dx_bad, small, ys, x2, xb};
  for (size_t i = 0; i < sizeof all / sizeof all[0]; i++)
    aal_tensor_release(all[i]);
}
END_TEST

/* ------------------------------------------------------------------ suite */

int main(void)
{
  g_seed = fd_test_seed();
  Suite *s = suite_create("maxpool");
  TCase *tc = tcase_create("maxpool");
  tcase_add_test(tc, output_size);
  tcase_add_test(tc, forward_naive);
  tcase_add_test(tc, backward_fd);
  tcase_add_test(tc, ties_first_wins);
  tcase_add_test(tc, nan_wins);
  tcase_add_test(tc, padding_never_wins);
  tcase_add_test(tc, overlap_accumulates);
  tcase_add_test(tc, bad_arguments);
  tcase_set_timeout(tc, 120);
  suite_add_tcase(s, tc);
  return aal_check_run(s);
}
