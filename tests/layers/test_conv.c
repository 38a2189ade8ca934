/* Tests of the convolution (sim/layers/conv.h): im2col + dgemm against the direct
 * oracle, both backwards against finite differences (GSL), and argument validation.
 *
 * Agreement bound (tests a): each output element is a sum of at most L products, and
 * every summation order satisfies |fl(sum) - sum| <= gamma_L (|A||B|) with
 * gamma_L = L u / (1 - L u), u = DBL_EPSILON / 2.  Two such results therefore differ
 * by at most 2 gamma_L (|A||B|) ~= L * DBL_EPSILON * (|A||B|).  We test
 *      |im2col - direct| <= BOUND_C * L * DBL_EPSILON * (|A||B|)_direct,   BOUND_C = 2
 * (a factor 2 above the worst-case bound, to cover the rounding of the (|A||B|)
 * reference itself), with L = C*R*S (forward), K*R*S (backward data: at most K*R*S
 * taps reach one input element), N*P*Q (backward filter), and (|A||B|) the same
 * operation computed by the direct oracle on the absolute values of the inputs.
 * The comparison fails on NaN (it is written as "pass iff err <= bound") and every
 * output is poisoned with NaN first, so that an unwritten element fails. */
#include <check.h>
#include <float.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <gsl/gsl_rng.h>

#include "tests/aal_check.h"
#include "sim/layers/conv.h"
#include "sim/layers/conv_check.h"
#include "tests/fdcheck.h"

#define BOUND_C 2.0

/* Step of the finite differences.  conv is linear in x and in w, so a central
 * difference has no truncation error at any step, and a large step keeps the
 * round-off (which grows like eps |F| / step) far below the 64 eps floor of the pass
 * criterion.  (With a small step, fl(v_j + t) - v_j != t matters: fdcheck
 * differentiates at t = 0, so GSL's round-off estimate does not see |v_j|.) */
#define FD_STEP 0.5

static unsigned long g_seed;

typedef int (*conv_fn)(const aal_tensor *a, const aal_tensor *b, int stride, int pad,
                       aal_tensor *out, aal_error *err);

/* The two implementations, each as forward / backward data / backward filter. */
typedef struct {
  const char *name;
  conv_fn fwd, bwd_data, bwd_filter;
} impl;

static const impl IMPLS[2] = {
    {"im2col", aal_conv2d_forward, aal_conv2d_backward_data, aal_conv2d_backward_filter},
    {"direct", aal_conv2d_direct_forward, aal_conv2d_direct_backward_data,
     aal_conv2d_direct_backward_filter},
};

/* ---------------------------------------------------------------- helpers */

static gsl_rng *rng_new(unsigned long salt)
{
  gsl_rng *rng = gsl_rng_alloc(gsl_rng_mt19937);
  ck_assert_ptr_nonnull(rng);
  gsl_rng_set(rng, g_seed + salt);
  return rng;
}

static aal_tensor *new4(size_t n, size_t c, size_t h, size_t w)
{
  aal_error e;
  aal_tensor *t = aal_tensor_new4((long)n, (long)c, (long)h, (long)w, &e);
  ck_assert_msg(t != NULL, "aal_tensor_new4: %s", e.msg);
  return t;
}

/* Uniform in [-1, 1).  fdcheck.h declares its generator as `struct gsl_rng *`, which
 * is not the type of GSL's typedef (an untagged struct); going through void * passes
 * the same pointer without a diagnostic. */
static void fill_uniform(gsl_rng *rng, double *x, size_t n)
{
  void *r = rng;
  fd_fill_uniform(r, x, n, -1.0, 1.0);
}

/* Uniform in [-1, 1): never zeros, never structured. */
static aal_tensor *rand4(gsl_rng *rng, size_t n, size_t c, size_t h, size_t w)
{
  aal_tensor *t = new4(n, c, h, w);
  fill_uniform(rng, t->data, t->size);
  return t;
}

static aal_tensor *abs_copy(const aal_tensor *t)
{
  aal_error e;
  aal_tensor *a = aal_tensor_copy(t, &e);
  ck_assert_msg(a != NULL, "aal_tensor_copy: %s", e.msg);
  for (size_t i = 0; i < a->size; i++)
    a->data[i] = fabs(a->data[i]);
  return a;
}

static aal_tensor *nan_like(const aal_tensor *t)
{
  aal_tensor *o = new4(t->shape[0], t->shape[1], t->shape[2], t->shape[3]);
  aal_tensor_fill(o, NAN);
  return o;
}

static void run_ok(const char *what, conv_fn fn, const aal_tensor *a, const aal_tensor *b,
                   int stride, int pad, aal_tensor *out)
{
  aal_error e;
  aal_error_clear(&e);
  const int rc = fn(a, b, stride, pad, out, &e);
  ck_assert_msg(rc == AAL_OK, "%s failed (%d): %s", what, rc, e.msg);
}

static double dot(const double *a, const double *b, size_t n)
{
  double s = 0.0;
  for (size_t i = 0; i < n; i++)
    s += a[i] * b[i];
  return s;
}

/* ------------------------------------------------ (a) im2col vs direct oracle */

/* Pass iff |got - ref| <= BOUND_C * terms * DBL_EPSILON * absref elementwise (NaN
 * fails).  Prints the worst element; returns its err/bound (inf on failure by NaN). */
static double compare(const char *what, const aal_tensor *ref, const aal_tensor *got,
                      const aal_tensor *absref, size_t terms, int *ok)
{
  double worst = -1.0;
  size_t wi = 0, failed = 0;
  for (size_t i = 0; i < ref->size; i++) {
    const double err = fabs(got->data[i] - ref->data[i]);
    const double bound = BOUND_C * (double)terms * DBL_EPSILON * absref->data[i];
    const int pass = err <= bound;
    double ratio = bound > 0 ? err / bound : (err == 0 ? 0.0 : INFINITY);
    if (!pass) {
      failed++;
      if (!(ratio > 1.0))
        ratio = INFINITY; /* NaN somewhere */
    }
    if (ratio > worst) {
      worst = ratio;
      wi = i;
    }
  }
  const size_t W = ref->shape[3], H = ref->shape[2], C = ref->shape[1];
  fprintf(stderr,
          "%-44s %s: worst [%zu,%zu,%zu,%zu] ref %.17g got %.17g err %.3g bound %.3g "
          "err/bound %.3g (%zu of %zu failed)\n",
          what, failed ? "FAIL" : "ok", wi / (W * H * C), wi / (W * H) % C, wi / W % H, wi % W,
          ref->data[wi], got->data[wi], fabs(got->data[wi] - ref->data[wi]),
          BOUND_C * (double)terms * DBL_EPSILON * absref->data[wi], worst, failed, ref->size);
  if (failed)
    *ok = 0;
  return worst;
}

typedef struct {
  size_t n, c, h, w, k, r, s;
  int stride, pad;
} conv_shape;

static void shape_str(const conv_shape *sh, char *buf, size_t len)
{
  snprintf(buf, len, "x %zux%zux%zux%zu w %zux%zux%zux%zu s%d p%d", sh->n, sh->c, sh->h,
           sh->w, sh->k, sh->c, sh->r, sh->s, sh->stride, sh->pad);
}

/* Runs all three directions of both implementations on one shape; returns the worst
 * err/bound and clears *ok on any failure. */
static double agree_one(gsl_rng *rng, const conv_shape *sh, int *ok)
{
  aal_tensor *x = rand4(rng, sh->n, sh->c, sh->h, sh->w);
  aal_tensor *w = rand4(rng, sh->k, sh->c, sh->r, sh->s);
  long ys[4];
  aal_error e;
  ck_assert_msg(aal_conv2d_output_shape(x, w, sh->stride, sh->pad, ys, &e) == AAL_OK, "%s",
                e.msg);
  aal_tensor *dy = rand4(rng, (size_t)ys[0], (size_t)ys[1], (size_t)ys[2], (size_t)ys[3]);
  aal_tensor *ax = abs_copy(x), *aw = abs_copy(w), *ady = abs_copy(dy);
  const aal_tensor *in_a[3] = {x, dy, x}, *in_b[3] = {w, w, dy};
  const aal_tensor *abs_a[3] = {ax, ady, ax}, *abs_b[3] = {aw, aw, ady};
  const aal_tensor *like[3] = {dy, x, w};
  const size_t terms[3] = {sh->c * sh->r * sh->s, sh->k * sh->r * sh->s,
                           sh->n * (size_t)ys[2] * (size_t)ys[3]};
  const char *dir[3] = {"forward", "backward_data", "backward_filter"};
  double worst = 0.0;
  char desc[160], what[200];
  shape_str(sh, desc, sizeof desc);
  for (int op = 0; op < 3; op++) {
    const conv_fn f_new = op == 0 ? IMPLS[0].fwd : op == 1 ? IMPLS[0].bwd_data : IMPLS[0].bwd_filter;
    const conv_fn f_ref = op == 0 ? IMPLS[1].fwd : op == 1 ? IMPLS[1].bwd_data : IMPLS[1].bwd_filter;
    aal_tensor *got = nan_like(like[op]), *ref = nan_like(like[op]), *absr = nan_like(like[op]);
    snprintf(what, sizeof what, "%s %s", desc, dir[op]);
    run_ok(what, f_new, in_a[op], in_b[op], sh->stride, sh->pad, got);
    run_ok(what, f_ref, in_a[op], in_b[op], sh->stride, sh->pad, ref);
    run_ok(what, f_ref, abs_a[op], abs_b[op], sh->stride, sh->pad, absr);
    worst = fmax(worst, compare(what, ref, got, absr, terms[op], ok));
    aal_tensor_release(got);
    aal_tensor_release(ref);
    aal_tensor_release(absr);
  }
  aal_tensor *all[6] = {x, w, dy, ax, aw, ady};
  for (int i = 0; i < 6; i++)
    aal_tensor_release(all[i]);
  return worst;
}

static const conv_shape AGREE_SHAPES[] = {
    /* n  c  h   w   k  r  s  stride pad */
    {1, 1, 1, 1, 1, 1, 1, 1, 0},      /* a single product */
    {1, 1, 3, 3, 1, 3, 3, 1, 0},      /* P = Q = 1 */
    {2, 3, 5, 5, 4, 3, 3, 1, 1},
    {2, 3, 5, 5, 4, 3, 3, 2, 1},
    {2, 3, 7, 6, 5, 3, 3, 3, 2},      /* stride 3, pad 2, H != W */
    {1, 2, 5, 7, 3, 5, 3, 1, 2},      /* R != S */
    {3, 4, 9, 8, 2, 3, 5, 2, 0},      /* R != S, stride 2, no pad */
    {2, 3, 6, 6, 4, 1, 1, 1, 0},      /* 1x1 */
    {2, 3, 7, 7, 4, 1, 1, 2, 0},      /* 1x1 stride 2 (projection) */
    {2, 3, 5, 5, 2, 1, 1, 3, 2},      /* pad > kernel: border outputs are exactly 0 */
    {1, 5, 4, 4, 3, 3, 3, 1, 2},      /* pad 2 with 3x3 */
    {2, 3, 3, 3, 2, 5, 5, 1, 1},      /* kernel larger than the unpadded input */
    {2, 2, 11, 13, 3, 3, 3, 3, 1},    /* stride 3 with odd sizes: untouched dx pixels */
    {1, 3, 16, 16, 8, 3, 3, 2, 1},    /* stem-like, batch 1 */
    {2, 64, 8, 8, 64, 3, 3, 1, 1},    /* ResNet-18 layer */
    {2, 64, 8, 8, 128, 3, 3, 2, 1},   /* ResNet-18 downsampling */
    {2, 64, 8, 8, 128, 1, 1, 2, 0},   /* ResNet-18 projection */
    {3, 16, 4, 4, 32, 3, 3, 1, 1},    /* late-layer-like 4x4 spatial */
    {2, 8, 2, 2, 8, 3, 3, 1, 1},      /* 2x2 spatial */
};

START_TEST(test_agree_direct)
{
  gsl_rng *rng = rng_new(1);
  int ok = 1;
  double worst = 0.0;
  for (size_t i = 0; i < sizeof AGREE_SHAPES / sizeof AGREE_SHAPES[0]; i++)
    worst = fmax(worst, agree_one(rng, &AGREE_SHAPES[i], &ok));
  fprintf(stderr, "agreement: worst err/bound over all shapes %.3g (bound c = %g)\n", worst,
          BOUND_C);
  gsl_rng_free(rng);
  ck_assert_msg(ok, "im2col and direct disagree beyond the bound (see stderr)");
}
END_TEST

/* The batch split into chunks (forced small workspace): 1 image per chunk, and chunks
 * of 2 with a ragged last chunk of 1. */
START_TEST(test_agree_chunked)
{
  gsl_rng *rng = rng_new(2);
  const conv_shape shapes[] = {{5, 3, 6, 6, 4, 3, 3, 1, 1}, {5, 4, 7, 7, 6, 3, 3, 2, 1},
                               {5, 4, 6, 6, 6, 1, 1, 2, 0}};
  int ok = 1;
  double worst = 0.0;
  for (size_t i = 0; i < sizeof shapes / sizeof shapes[0]; i++) {
    const conv_shape *sh = &shapes[i];
    const size_t p = ((size_t)(sh->h + 2 * sh->pad) - sh->r) / (size_t)sh->stride + 1;
    const size_t per_image = (sh->c * sh->r * sh->s + sh->k) * p * p * sizeof(double);
    const size_t limits[2] = {1, 2 * per_image + per_image / 2};
    for (int l = 0; l < 2; l++) {
      aal_conv2d_set_workspace_limit(limits[l]);
      worst = fmax(worst, agree_one(rng, sh, &ok));
    }
  }
  aal_conv2d_set_workspace_limit(0);
  fprintf(stderr, "chunked agreement: worst err/bound %.3g\n", worst);
  gsl_rng_free(rng);
  ck_assert_msg(ok, "chunked im2col disagrees with direct beyond the bound (see stderr)");
}
END_TEST

/* Same inputs -> bit-identical outputs (run twice, compare bytes). */
START_TEST(test_deterministic)
{
  gsl_rng *rng = rng_new(3);
  aal_tensor *x = rand4(rng, 4, 64, 8, 8), *w = rand4(rng, 64, 64, 3, 3);
  aal_tensor *dy = rand4(rng, 4, 64, 8, 8);
  const aal_tensor *in_a[3] = {x, dy, x}, *in_b[3] = {w, w, dy}, *like[3] = {dy, x, w};
  const conv_fn fn[3] = {aal_conv2d_forward, aal_conv2d_backward_data,
                         aal_conv2d_backward_filter};
  for (int op = 0; op < 3; op++) {
    aal_tensor *a = nan_like(like[op]), *b = nan_like(like[op]);
    run_ok("determinism", fn[op], in_a[op], in_b[op], 1, 1, a);
    run_ok("determinism", fn[op], in_a[op], in_b[op], 1, 1, b);
    ck_assert_msg(memcmp(a->data, b->data, a->size * sizeof(double)) == 0,
                  "direction %d is not bit-reproducible", op);
    aal_tensor_release(a);
    aal_tensor_release(b);
  }
  aal_tensor_release(x);
  aal_tensor_release(w);
  aal_tensor_release(dy);
  gsl_rng_free(rng);
}
END_TEST

/* ------------------------------------------- (b), (c) finite-difference checks */

/* F(v) = conv(x, w) with v = x->data or w->data (perturbed in place by fdcheck). */
typedef struct {
  const impl *im;
  aal_tensor *x, *w, *y;
  int stride, pad;
} fd_ctx;

static void fd_forward(void *ctx, double *out)
{
  fd_ctx *c = ctx;
  aal_error e;
  const int rc = c->im->fwd(c->x, c->w, c->stride, c->pad, c->y, &e);
  if (rc != AAL_OK) { /* poison: the check then fails */
    for (size_t i = 0; i < c->y->size; i++)
      out[i] = NAN;
    return;
  }
  memcpy(out, c->y->data, c->y->size * sizeof(double));
}

/* The gradient wrt x (wrt_w = 0) or w of <dy, conv(x, w)>, i.e. J^T dy, into g. */
static void fd_grad(const fd_ctx *c, int wrt_w, const aal_tensor *dy, aal_tensor *g)
{
  if (wrt_w)
    run_ok("backward_filter", c->im->bwd_filter, c->x, dy, c->stride, c->pad, g);
  else
    run_ok("backward_data", c->im->bwd_data, dy, c->w, c->stride, c->pad, g);
}

static void fd_ctx_init(fd_ctx *c, const impl *im, aal_tensor *x, aal_tensor *w, int stride,
                        int pad)
{
  long ys[4];
  aal_error e;
  ck_assert_msg(aal_conv2d_output_shape(x, w, stride, pad, ys, &e) == AAL_OK, "%s", e.msg);
  c->im = im;
  c->x = x;
  c->w = w;
  c->y = new4((size_t)ys[0], (size_t)ys[1], (size_t)ys[2], (size_t)ys[3]);
  c->stride = stride;
  c->pad = pad;
}

/* Full Jacobian of conv wrt x or w; row i is J^T e_i from the backward pass. */
static int jacobian_one(gsl_rng *rng, const impl *im, int wrt_w, int stride, int pad)
{
  aal_tensor *x = rand4(rng, 2, 3, 5, 5), *w = rand4(rng, 3, 3, 3, 3);
  fd_ctx c;
  fd_ctx_init(&c, im, x, w, stride, pad);
  aal_tensor *var = wrt_w ? w : x;
  const size_t ny = c.y->size, nvar = var->size;
  double *jac = malloc(ny * nvar * sizeof(double));
  ck_assert_ptr_nonnull(jac);
  aal_tensor *dy = nan_like(c.y), *g = nan_like(var);
  for (size_t i = 0; i < ny; i++) {
    aal_tensor_fill(dy, 0.0);
    dy->data[i] = 1.0;
    aal_tensor_fill(g, NAN);
    fd_grad(&c, wrt_w, dy, g);
    memcpy(jac + i * nvar, g->data, nvar * sizeof(double));
  }
  fd_problem p = {var->data, nvar, ny, fd_forward, &c, FD_STEP};
  char what[128];
  snprintf(what, sizeof what, "jacobian %s wrt %s stride %d pad %d", im->name,
           wrt_w ? "w" : "x", stride, pad);
  fd_report rep;
  const int ok = fd_check_jacobian(&p, jac, what, &rep);
  free(jac);
  aal_tensor *all[5] = {x, w, c.y, dy, g};
  for (int i = 0; i < 5; i++)
    aal_tensor_release(all[i]);
  return ok;
}

START_TEST(test_fd_jacobian)
{
  gsl_rng *rng = rng_new(4);
  int ok = 1;
  for (int im = 0; im < 2; im++)
    for (int wrt_w = 0; wrt_w < 2; wrt_w++)
      for (int stride = 1; stride <= 2; stride++)
        for (int pad = 0; pad <= 1; pad++)
          ok &= jacobian_one(rng, &IMPLS[im], wrt_w, stride, pad);
  gsl_rng_free(rng);
  ck_assert_msg(ok, "a Jacobian disagrees with finite differences (see stderr)");
}
END_TEST

/* d/dt <dy, conv(v + t d)> against <J^T dy, d>.  Because conv is linear in x and in w,
 * the scale floor is the same directional derivative on absolute values,
 * <|dy|, conv(|d|, |w|)> (wrt x) or <|dy|, conv(|x|, |d|)> (wrt w): an upper bound on
 * the sum of the magnitudes of the terms, so cancellation in the analytic value
 * cannot make the check stricter than rounding allows. */
static int direction_one(gsl_rng *rng, const impl *im, int wrt_w, const conv_shape *sh)
{
  aal_tensor *x = rand4(rng, sh->n, sh->c, sh->h, sh->w);
  aal_tensor *w = rand4(rng, sh->k, sh->c, sh->r, sh->s);
  fd_ctx c;
  fd_ctx_init(&c, im, x, w, sh->stride, sh->pad);
  aal_tensor *var = wrt_w ? w : x;
  aal_tensor *dy = nan_like(c.y), *g = nan_like(var), *d = nan_like(var);
  fill_uniform(rng, dy->data, dy->size);
  fill_uniform(rng, d->data, d->size);
  fd_grad(&c, wrt_w, dy, g);
  const double analytic = dot(g->data, d->data, g->size);
  aal_tensor *ad = abs_copy(d), *ady = abs_copy(dy), *ax = abs_copy(x), *aw = abs_copy(w);
  aal_tensor *ay = nan_like(c.y);
  run_ok("abs forward", aal_conv2d_direct_forward, wrt_w ? ax : ad, wrt_w ? ad : aw,
         sh->stride, sh->pad, ay);
  const double floor = dot(ady->data, ay->data, ay->size);
  fd_problem p = {var->data, var->size, c.y->size, fd_forward, &c, FD_STEP};
  char what[200], desc[160];
  shape_str(sh, desc, sizeof desc);
  snprintf(what, sizeof what, "direction %s wrt %s %s", im->name, wrt_w ? "w" : "x", desc);
  fd_report rep;
  memset(&rep, 0, sizeof rep);
  const int ok = fd_check_direction(&p, dy->data, d->data, analytic, floor, what, &rep);
  aal_tensor *all[10] = {x, w, c.y, dy, g, d, ad, ady, ax, aw};
  for (int i = 0; i < 10; i++)
    aal_tensor_release(all[i]);
  aal_tensor_release(ay);
  return ok;
}

START_TEST(test_fd_direction)
{
  gsl_rng *rng = rng_new(5);
  const conv_shape shapes[] = {
      {2, 64, 8, 8, 64, 3, 3, 1, 1},   /* ResNet-18 layer */
      {2, 64, 8, 8, 128, 3, 3, 2, 1},  /* downsampling 3x3 */
      {2, 64, 8, 8, 128, 1, 1, 2, 0},  /* 1x1 projection */
  };
  int ok = 1;
  for (size_t i = 0; i < sizeof shapes / sizeof shapes[0]; i++)
    for (int im = 0; im < 2; im++)
      for (int wrt_w = 0; wrt_w < 2; wrt_w++)
        for (int trial = 0; trial < 2; trial++)
          ok &= direction_one(rng, &IMPLS[im], wrt_w, &shapes[i]);
  gsl_rng_free(rng);
  ck_assert_msg(ok, "a directional derivative disagrees with finite differences");
}
END_TEST

/* ----------------------------------------------------------- (d) bad inputs */

/* One op kind: forward (a = x, b = w, out = y), backward data (dy, w, dx),
 * backward filter (x, dy, dw), each in both implementations. */
enum { FWD, BWD_DATA, BWD_FILTER };

static conv_fn op_fn(int im, int kind)
{
  return kind == FWD ? IMPLS[im].fwd : kind == BWD_DATA ? IMPLS[im].bwd_data
                                                        : IMPLS[im].bwd_filter;
}

/* fn must return `code` with a message (also when err is NULL) and leave out alone. */
static void expect_fail(const char *label, conv_fn fn, const aal_tensor *a,
                        const aal_tensor *b, int stride, int pad, aal_tensor *out, int code)
{
  const int check_out = out != NULL && out->dtype == AAL_F64 &&
                        (a == NULL || out->data != a->data) &&
                        (b == NULL || out->data != b->data);
  if (check_out)
    aal_tensor_fill(out, 42.0);
  aal_error e;
  aal_error_clear(&e);
  const int rc = fn(a, b, stride, pad, out, &e);
  ck_assert_msg(rc == code, "%s: returned %d (%s: %s), expected %d", label, rc,
                aal_status_name(rc), e.msg, code);
  ck_assert_msg(e.code == code, "%s: err.code %d != %d", label, e.code, code);
  ck_assert_msg(e.msg[0] != '\0', "%s: empty message", label);
  ck_assert_int_eq(fn(a, b, stride, pad, out, NULL), code);
  if (check_out)
    for (size_t i = 0; i < out->size; i++)
      ck_assert_msg(out->data[i] == 42.0, "%s: output written on error", label);
}

/* The valid operands of op kind for x 2x3x5x5, w 4x3x3x3 (y 2x4x3x3 at stride 1 pad 0). */
typedef struct {
  aal_tensor *x, *w, *y;
} operands;

static void kind_args(const operands *o, int kind, const aal_tensor **a, const aal_tensor **b,
                      aal_tensor **out)
{
  *a = kind == BWD_DATA ? o->y : o->x;
  *b = kind == BWD_FILTER ? o->y : o->w;
  *out = kind == FWD ? o->y : kind == BWD_DATA ? o->x : o->w;
}

/* Each case replaces one operand of a valid call (slot 0 = a, 1 = b, 2 = out) or the
 * stride/pad, and names the code it must produce. */
static void bad_case(int im, int kind, const operands *o, int slot, aal_tensor *repl,
                     int stride, int pad, int code, const char *why)
{
  const aal_tensor *a, *b;
  aal_tensor *out;
  kind_args(o, kind, &a, &b, &out);
  aal_tensor *copy = NULL;
  if (slot == 0)
    a = repl;
  else if (slot == 1)
    b = repl;
  else if (slot == 2)
    out = repl;
  else if (out != NULL) /* keep the shared operands intact: write into a copy */
    out = copy = nan_like(out);
  char label[160];
  snprintf(label, sizeof label, "%s %s: %s", IMPLS[im].name,
           kind == FWD ? "forward" : kind == BWD_DATA ? "backward_data" : "backward_filter",
           why);
  expect_fail(label, op_fn(im, kind), a, b, stride, pad, out, code);
  aal_tensor_release(copy);
}

static aal_tensor *new_rank3(void)
{
  aal_error e;
  const long shape[3] = {3, 5, 5};
  aal_tensor *t = aal_tensor_new(3, shape, &e);
  ck_assert_ptr_nonnull(t);
  return t;
}

START_TEST(test_bad_inputs)
{
  operands o = {new4(2, 3, 5, 5), new4(4, 3, 3, 3), new4(2, 4, 3, 3)};
  aal_tensor *rank3 = new_rank3();
  const long bshape[4] = {2, 3, 5, 5};
  aal_error e;
  aal_tensor *bits = aal_tensor_new_bits(4, bshape, &e);
  ck_assert_ptr_nonnull(bits);
  aal_tensor *w_c2 = new4(4, 2, 3, 3);       /* 2 input channels instead of 3 */
  aal_tensor *y_big = new4(2, 4, 5, 5);      /* the y of pad 1, not pad 0 */
  aal_tensor *x_c2 = new4(2, 2, 5, 5);
  aal_tensor *w_k5 = new4(4, 3, 5, 5);       /* P = 1, not 3 */
  aal_tensor *x_small = new4(2, 3, 2, 2);    /* smaller than the kernel, pad 0 */
  for (int im = 0; im < 2; im++)
    for (int kind = 0; kind < 3; kind++) {
      bad_case(im, kind, &o, -1, NULL, 0, 0, AAL_EINVAL, "stride 0");
      bad_case(im, kind, &o, -1, NULL, -2, 0, AAL_EINVAL, "stride -2");
      bad_case(im, kind, &o, -1, NULL, 1, -1, AAL_EINVAL, "pad -1");
      for (int slot = 0; slot < 3; slot++) {
        bad_case(im, kind, &o, slot, NULL, 1, 0, AAL_EINVAL, "NULL operand");
        bad_case(im, kind, &o, slot, rank3, 1, 0, AAL_ESHAPE, "rank-3 operand");
        bad_case(im, kind, &o, slot, bits, 1, 0, AAL_EINVAL, "BITS operand");
      }
    }
  for (int im = 0; im < 2; im++) {
    /* channel mismatch */
    bad_case(im, FWD, &o, 1, w_c2, 1, 0, AAL_ESHAPE, "w has 2 input channels, x 3");
    bad_case(im, BWD_DATA, &o, 1, w_c2, 1, 0, AAL_ESHAPE, "w has 2 input channels, dx 3");
    bad_case(im, BWD_DATA, &o, 2, x_c2, 1, 0, AAL_ESHAPE, "dx has 2 channels, w 3");
    bad_case(im, BWD_FILTER, &o, 2, w_c2, 1, 0, AAL_ESHAPE, "dw has 2 input channels");
    bad_case(im, BWD_FILTER, &o, 0, x_c2, 1, 0, AAL_ESHAPE, "x has 2 channels, dw 3");
    /* wrong output / gradient shape */
    bad_case(im, FWD, &o, 2, y_big, 1, 0, AAL_ESHAPE, "y 2x4x5x5 for pad 0");
    bad_case(im, FWD, &o, -1, NULL, 1, 1, AAL_ESHAPE, "y 2x4x3x3 for pad 1");
    bad_case(im, BWD_DATA, &o, 0, y_big, 1, 0, AAL_ESHAPE, "dy 2x4x5x5 for pad 0");
    bad_case(im, BWD_DATA, &o, -1, NULL, 2, 0, AAL_ESHAPE, "dy 2x4x3x3 for stride 2");
    bad_case(im, BWD_FILTER, &o, 1, y_big, 1, 0, AAL_ESHAPE, "dy 2x4x5x5 for pad 0");
    bad_case(im, BWD_FILTER, &o, 2, w_k5, 1, 0, AAL_ESHAPE, "dw 5x5 does not give dy");
    /* kernel larger than the padded input */
    bad_case(im, FWD, &o, 0, x_small, 1, 0, AAL_ESHAPE, "x 2x2 smaller than kernel 3x3");
    bad_case(im, BWD_DATA, &o, 2, x_small, 1, 0, AAL_ESHAPE, "dx 2x2 smaller than kernel");
    bad_case(im, BWD_FILTER, &o, 0, x_small, 1, 0, AAL_ESHAPE, "x 2x2 smaller than dw");
  }
  /* the message names the tensor and both shapes */
  aal_error_clear(&e);
  ck_assert_int_eq(aal_conv2d_forward(o.x, o.w, 1, 0, y_big, &e), AAL_ESHAPE);
  ck_assert_str_eq(e.msg, "conv2d forward: y has shape 2x4x5x5, expected 2x4x3x3");
  aal_error_clear(&e);
  ck_assert_int_eq(aal_conv2d_direct_forward(o.x, o.w, 1, 0, y_big, &e), AAL_ESHAPE);
  ck_assert_str_eq(e.msg, "conv2d_direct forward: y has shape 2x4x5x5, expected 2x4x3x3");
  aal_tensor *all[9] = {o.x, o.w, o.y, rank3, bits, w_c2, y_big, x_c2, w_k5};
  for (int i = 0; i < 9; i++)
    aal_tensor_release(all[i]);
  aal_tensor_release(x_small);
}
END_TEST

/* An output that shares storage with an input is refused. */
START_TEST(test_alias)
{
  aal_tensor *x = new4(2, 4, 5, 5), *w = new4(4, 4, 3, 3);
  for (int im = 0; im < 2; im++) {
    expect_fail("forward y = x", IMPLS[im].fwd, x, w, 1, 1, x, AAL_EINVAL);
    expect_fail("backward_data dx = dy", IMPLS[im].bwd_data, x, w, 1, 1, x, AAL_EINVAL);
  }
  aal_tensor_release(x);
  aal_tensor_release(w);
}
END_TEST

START_TEST(test_output_shape)
{
  aal_tensor *x = new4(2, 3, 7, 6), *w = new4(5, 3, 3, 2), *w_c2 = new4(5, 2, 3, 3);
  long ys[4] = {0, 0, 0, 0};
  aal_error e;
  aal_error_clear(&e);
  ck_assert_int_eq(aal_conv2d_output_shape(x, w, 2, 1, ys, &e), AAL_OK);
  /* P = (7 + 2 - 3) / 2 + 1 = 4, Q = (6 + 2 - 2) / 2 + 1 = 4 */
  ck_assert(ys[0] == 2 && ys[1] == 5 && ys[2] == 4 && ys[3] == 4);
  ck_assert_int_eq(aal_conv2d_output_shape(x, w, 3, 0, ys, &e), AAL_OK);
  ck_assert(ys[2] == 2 && ys[3] == 2); /* (7-3)/3+1, (6-2)/3+1 */
  ck_assert_int_eq(aal_conv2d_output_shape(x, w, 1, 0, NULL, &e), AAL_EINVAL);
  ck_assert_int_eq(aal_conv2d_output_shape(NULL, w, 1, 0, ys, &e), AAL_EINVAL);
  ck_assert_int_eq(aal_conv2d_output_shape(x, w_c2, 1, 0, ys, &e), AAL_ESHAPE);
  ck_assert_int_eq(aal_conv2d_output_shape(x, w, 0, 0, ys, &e), AAL_EINVAL);
  ck_assert_int_eq(aal_conv2d_output_shape(x, w, 1, -1, ys, &e), AAL_EINVAL);
  ck_assert(e.msg[0] != '\0');
  aal_tensor_release(x);
  aal_tensor_release(w);
  aal_tensor_release(w_c2);
}
END_TEST

static Suite *conv2d_suite(void)
{
  Suite *s = suite_create("conv2d");
  TCase *tc = tcase_create("core");
  /* generous: the suite is also run under valgrind */
  tcase_set_timeout(tc, 600);
  tcase_add_test(tc, test_output_shape);
  tcase_add_test(tc, test_bad_inputs);
  tcase_add_test(tc, test_alias);
  tcase_add_test(tc, test_agree_direct);
  tcase_add_test(tc, test_agree_chunked);
  tcase_add_test(tc, test_deterministic);
  tcase_add_test(tc, test_fd_jacobian);
  tcase_add_test(tc, test_fd_direction);
  suite_add_tcase(s, tc);
  return s;
}

int main(void)
{
  g_seed = fd_test_seed();
  return aal_check_run(conv2d_suite());
}
