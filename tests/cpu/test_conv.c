/* The float32 CPU conv (kernels/cpu/conv.c), chunked im2col + sgemm:
 *
 *  a. each direction matches a direct double conv of the same float inputs within the
 *     float rounding bound gamma_t * sum |terms| (t terms per output), at the default
 *     workspace and at caps that force one image per chunk and uneven chunks (the last
 *     chunk shorter), on shapes with stride 2, padding wider than the kernel edge,
 *     1x1 kernels and non-square images;
 *  b. it is deterministic: the same call twice gives bit-identical outputs (memcmp),
 *     also with several chunks (backward-filter's beta = 1 path);
 *  c. bad arguments fail with a message naming the op.
 *
 * The seed is $AAL_TEST_SEED (default 20261128), printed. */
#include <check.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tests/aal_check.h"
#include "kernels/cpu/cpu32.h"

static unsigned long g_seed;

/* A small deterministic generator (the values only need to be nonzero and varied). */
static float next_uniform(unsigned long *z)
{
  *z = *z * 6364136223846793005ul + 1442695040888963407ul;
  return (float)((double)(*z >> 11) / 9007199254740992.0 * 2.0 - 1.0);
}

static float *random_floats(size_t n, unsigned long *z)
{
  float *f = malloc(n * sizeof *f);
  ck_assert_ptr_nonnull(f);
  for (size_t i = 0; i < n; i++)
    f[i] = next_uniform(z);
  return f;
}

static float *floats(size_t n)
{
  float *f = malloc(n * sizeof *f);
  ck_assert_ptr_nonnull(f);
  return f;
}

/* The direct conv in double: for each output, the exact-ish value and the sum of the
 * absolute values of its terms (for the rounding bound).  dir 0: y from x, w;
 * 1: dx from dy, w; 2: dw from x, dy. */
static void direct(const aal_conv_shape *cs, int dir, const float *a, const float *b,
                   double *out, double *mag)
{
  const size_t nout = dir == 0   ? (size_t)cs->n * cs->k * cs->p * cs->q
                      : dir == 1 ? (size_t)cs->n * cs->c * cs->h * cs->w
                                 : (size_t)cs->k * cs->c * cs->r * cs->s;
  memset(out, 0, nout * sizeof *out);
  memset(mag, 0, nout * sizeof *mag);
  for (int n = 0; n < cs->n; n++)
    for (int k = 0; k < cs->k; k++)
      for (int p = 0; p < cs->p; p++)
        for (int q = 0; q < cs->q; q++)
          for (int c = 0; c < cs->c; c++)
            for (int r = 0; r < cs->r; r++)
              for (int s = 0; s < cs->s; s++) {
                const int ih = p * cs->stride - cs->pad + r, iw = q * cs->stride - cs->pad + s;
                if (ih < 0 || ih >= cs->h || iw < 0 || iw >= cs->w)
                  continue;
                const size_t xi = (((size_t)n * cs->c + c) * cs->h + ih) * cs->w + iw;
                const size_t wi = (((size_t)k * cs->c + c) * cs->r + r) * cs->s + s;
                const size_t yi = (((size_t)n * cs->k + k) * cs->p + p) * cs->q + q;
                size_t oi;
                double t;
                if (dir == 0) {
                  oi = yi;
                  t = (double)a[xi] * b[wi];
                } else if (dir == 1) {
                  oi = xi;
                  t = (double)a[yi] * b[wi];
                } else {
                  oi = wi;
                  t = (double)a[xi] * b[yi];
                }
                out[oi] += t;
                mag[oi] += fabs(t);
              }
}

/* got must be within gamma_t * mag + a float ulp of the output's rounding, where t is
 * the number of terms per output (any summation order). */
static void expect_close(const char *what, const float *got, const double *ref,
                         const double *mag, size_t n, double terms)
{
  const double u = ldexp(1.0, -24), gamma = (terms + 1) * u / (1 - (terms + 1) * u);
  for (size_t i = 0; i < n; i++) {
    const double bound = gamma * mag[i] + u * fabs(ref[i]) + 1e-30;
    ck_assert_msg(fabs((double)got[i] - ref[i]) <= bound,
                  "%s[%zu]: got %.9g, want %.9g (bound %.3g)", what, i, (double)got[i], ref[i],
                  bound);
  }
}

typedef int (*conv_ws_fn)(const aal_conv_shape *cs, const void *a, const void *b, void *out,
                          size_t workspace_bytes, aal_error *err);

static const conv_ws_fn FNS[3] = {aal_cpu32_conv_forward_ws, aal_cpu32_conv_backward_data_ws,
                                  aal_cpu32_conv_backward_filter_ws};
static const char *const NAMES[3] = {"forward", "backward_data", "backward_filter"};

/* Bytes of col + Y' per image, as kernels/cpu/conv.c sizes its chunks. */
static size_t per_image(const aal_conv_shape *cs)
{
  return ((size_t)cs->c * cs->r * cs->s + cs->k) * cs->p * cs->q * sizeof(float);
}

/* Every direction at workspace cap `limit`, against the direct conv, and twice. */
static void check_shape(aal_conv_shape cs, size_t limit)
{
  aal_error err;
  ck_assert_msg(aal_conv_shape_init(&cs, &err) == AAL_OK, "%s", err.msg);
  unsigned long z = g_seed * 2862933555777941757ul + (unsigned long)cs.c * 131 + cs.k;
  const size_t nx = (size_t)cs.n * cs.c * cs.h * cs.w, nw = (size_t)cs.k * cs.c * cs.r * cs.s;
  const size_t ny = (size_t)cs.n * cs.k * cs.p * cs.q;
  float *x = random_floats(nx, &z), *w = random_floats(nw, &z), *dy = random_floats(ny, &z);
  const float *in_a[3] = {x, dy, x}, *in_b[3] = {w, w, dy};
  const size_t nout[3] = {ny, nx, nw};
  /* terms per output: C*R*S, K*R*S (at most), N*P*Q */
  const double terms[3] = {(double)cs.c * cs.r * cs.s, (double)cs.k * cs.r * cs.s,
                           (double)cs.n * cs.p * cs.q};
  for (int dir = 0; dir < 3; dir++) {
    float *got = floats(nout[dir]), *again = floats(nout[dir]);
    double *ref = malloc(nout[dir] * sizeof *ref), *mag = malloc(nout[dir] * sizeof *mag);
    ck_assert(ref != NULL && mag != NULL);
    /* outputs are overwritten: start from garbage */
    memset(got, 0x7f, nout[dir] * sizeof *got);
    memset(again, 0x55, nout[dir] * sizeof *again);
    ck_assert_msg(FNS[dir](&cs, in_a[dir], in_b[dir], got, limit, &err) == AAL_OK, "%s: %s",
                  NAMES[dir], err.msg);
    ck_assert_msg(FNS[dir](&cs, in_a[dir], in_b[dir], again, limit, &err) == AAL_OK, "%s: %s",
                  NAMES[dir], err.msg);
    ck_assert_msg(memcmp(got, again, nout[dir] * sizeof *got) == 0,
                  "%s %dx%dx%dx%d k%d %dx%d s%d p%d (cap %zu): two runs differ", NAMES[dir],
                  cs.n, cs.c, cs.h, cs.w, cs.k, cs.r, cs.s, cs.stride, cs.pad, limit);
    direct(&cs, dir, in_a[dir], in_b[dir], ref, mag);
    expect_close(NAMES[dir], got, ref, mag, nout[dir], terms[dir]);
    free(got);
    free(again);
    free(ref);
    free(mag);
  }
  free(x);
  free(w);
  free(dy);
}

static const aal_conv_shape SHAPES[] = {
    {.n = 5, .c = 3, .h = 9, .w = 9, .k = 4, .r = 3, .s = 3, .stride = 1, .pad = 1},
    {.n = 7, .c = 4, .h = 8, .w = 11, .k = 6, .r = 3, .s = 3, .stride = 2, .pad = 1},
    {.n = 3, .c = 5, .h = 6, .w = 6, .k = 3, .r = 1, .s = 1, .stride = 2, .pad = 0},
    {.n = 4, .c = 2, .h = 5, .w = 7, .k = 3, .r = 1, .s = 1, .stride = 1, .pad = 0},
    {.n = 3, .c = 2, .h = 4, .w = 4, .k = 2, .r = 3, .s = 2, .stride = 3, .pad = 3},
    {.n = 6, .c = 16, .h = 4, .w = 4, .k = 16, .r = 3, .s = 3, .stride = 1, .pad = 1},
    {.n = 1, .c = 3, .h = 12, .w = 10, .k = 5, .r = 5, .s = 5, .stride = 1, .pad = 2},
};

/* ------------------------------------------------------------------ a, b */

START_TEST(test_default_workspace)
{
  for (size_t i = 0; i < sizeof SHAPES / sizeof SHAPES[0]; i++)
    check_shape(SHAPES[i], 0);
}
END_TEST

START_TEST(test_one_image_per_chunk)
{
  for (size_t i = 0; i < sizeof SHAPES / sizeof SHAPES[0]; i++)
    check_shape(SHAPES[i], 1); /* below one image's workspace: nb = 1 */
}
END_TEST

START_TEST(test_uneven_chunks)
{
  for (size_t i = 0; i < sizeof SHAPES / sizeof SHAPES[0]; i++) {
    aal_conv_shape cs = SHAPES[i];
    aal_error err;
    ck_assert(aal_conv_shape_init(&cs, &err) == AAL_OK);
    /* two images per chunk: with odd N the last chunk has one */
    check_shape(SHAPES[i], 2 * per_image(&cs));
  }
}
END_TEST

/* A ResNet-like late layer whose default chunking takes several images per GEMM:
 * repeated calls stay bit-identical. */
START_TEST(test_deterministic_late_layer)
{
  aal_conv_shape cs = {.n = 9, .c = 32, .h = 4, .w = 4, .k = 32, .r = 3, .s = 3,
                       .stride = 1, .pad = 1};
  check_shape(cs, 0);
  check_shape(cs, 4 * per_image(&(aal_conv_shape){.c = 32, .r = 3, .s = 3, .k = 32,
                                                  .p = 4, .q = 4}));
}
END_TEST

/* ------------------------------------------------------------------ c. bad input */

START_TEST(test_bad_arguments)
{
  aal_conv_shape cs = {.n = 2, .c = 2, .h = 4, .w = 4, .k = 2, .r = 3, .s = 3,
                       .stride = 1, .pad = 1};
  aal_error err;
  ck_assert(aal_conv_shape_init(&cs, &err) == AAL_OK);
  float buf[256] = {0};
  for (int dir = 0; dir < 3; dir++) {
    ck_assert_int_eq(FNS[dir](&cs, buf, NULL, buf, 0, &err), AAL_EINVAL);
    ck_assert_ptr_nonnull(strstr(err.msg, NAMES[dir]));
    aal_conv_shape bad = cs;
    bad.q = 3; /* not what aal_conv_shape_init says */
    ck_assert_int_eq(FNS[dir](&bad, buf, buf, buf, 0, &err), AAL_EINVAL);
    ck_assert_ptr_nonnull(strstr(err.msg, NAMES[dir]));
  }
}
END_TEST

int main(void)
{
  g_seed = aal_test_seed();
  Suite *s = suite_create("cpu32_conv");
  TCase *tc = tcase_create("cpu32_conv");
  tcase_set_timeout(tc, 120);
  tcase_add_test(tc, test_default_workspace);
  tcase_add_test(tc, test_one_image_per_chunk);
  tcase_add_test(tc, test_uneven_chunks);
  tcase_add_test(tc, test_deterministic_late_layer);
  tcase_add_test(tc, test_bad_arguments);
  suite_add_tcase(s, tc);
  return aal_check_run(s);
}
