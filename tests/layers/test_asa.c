/* The ASA reference (sim/layers/asa.c) against its closed form, element by element:
 * bit = (x > 0), h = x + eps*bit, decode = eps*bit, exactly (one rounding each, the same
 * one the closed form makes); the published decoding (decode=pm1) = +eps where the bit is
 * 1 and -eps where it is 0, exactly, and its LI (aal_li_batch on h and that r) against
 * SPEC section 4's closed form, negative for a sparse input.  Inputs from the printed
 * seed, with exact zeros mixed in (the one place a sign bit can go wrong) and a size that
 * leaves a partial last word. */
#include <check.h>
#include <float.h>
#include <gsl/gsl_rng.h>
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "tests/aal_check.h"
#include "sim/layers/layers.h"
#include "sim/layers/li.h"

static unsigned long seed;

/* x >= 0: a third exact zeros, the rest uniform on [2^-10, 4) */
static void fill_relu_output(aal_tensor *x, gsl_rng *rng)
{
  for (size_t i = 0; i < x->size; i++)
    x->data[i] = gsl_rng_uniform_int(rng, 3) == 0 ? 0.0
                                                  : 0x1p-10 + 4.0 * gsl_rng_uniform(rng);
}

START_TEST(test_input_and_decode_closed_form)
{
  static const long shapes[][4] = {{2, 3, 5, 7}, {1, 1, 1, 131}, {3, 64, 2, 2}};
  const double eps = 0.0123456789;
  gsl_rng *rng = gsl_rng_alloc(gsl_rng_mt19937);
  gsl_rng_set(rng, seed + (unsigned long)_i);
  aal_error err;
  const long *s = shapes[_i];
  aal_tensor *x = aal_tensor_new(4, s, &err), *h = aal_tensor_new(4, s, &err);
  aal_tensor *out = aal_tensor_new(4, s, &err), *bits = aal_tensor_new_bits(4, s, &err);
  ck_assert(x && h && out && bits);
  fill_relu_output(x, rng);
  aal_tensor_fill(h, NAN);
  aal_tensor_fill(out, NAN);
  ck_assert_int_eq(aal_asa_input(x, eps, h, bits, &err), AAL_OK);
  ck_assert_int_eq(aal_asa_decode(bits, eps, out, &err), AAL_OK);
  size_t zeros = 0;
  for (size_t i = 0; i < x->size; i++) {
    const int want = x->data[i] > 0;
    zeros += !want;
    ck_assert_msg(aal_bit_get(bits->bits, i) == want, "bit %zu of %zu: x = %g", i, x->size,
                  x->data[i]);
    ck_assert_msg(h->data[i] == x->data[i] + (want ? eps : 0.0), "h[%zu] = %.17g, x = %.17g",
                  i, h->data[i], x->data[i]);
    ck_assert_msg(out->data[i] == (want ? eps : 0.0), "decode[%zu] = %.17g", i,
                  out->data[i]);
  }
  ck_assert_uint_gt(zeros, 0); /* the zeros were really asked about */
  aal_tensor_release(x);
  aal_tensor_release(h);
  aal_tensor_release(out);
  aal_tensor_release(bits);
  gsl_rng_free(rng);
}
END_TEST

START_TEST(test_input_refuses_what_no_relu_makes)
{
  aal_error err;
  const long s[1] = {70};
  aal_tensor *x = aal_tensor_new(1, s, &err), *h = aal_tensor_new(1, s, &err);
  aal_tensor *bits = aal_tensor_new_bits(1, s, &err);
  const long s2[1] = {71};
  aal_tensor *h2 = aal_tensor_new(1, s2, &err);
  ck_assert(x && h && bits && h2);
  aal_tensor_fill(x, 1.0);
  x->data[65] = -0x1p-30;
  ck_assert_int_eq(aal_asa_input(x, 0.01, h, bits, &err), AAL_EINVAL);
  ck_assert_ptr_nonnull(strstr(err.msg, "element 65"));
  x->data[65] = NAN;
  ck_assert_int_eq(aal_asa_input(x, 0.01, h, bits, &err), AAL_EINVAL);
  x->data[65] = 1.0;
  ck_assert_int_eq(aal_asa_input(x, 0.01, h2, bits, &err), AAL_ESHAPE);
  ck_assert_int_eq(aal_asa_input(x, 0.01, h, h, &err), AAL_EINVAL); /* bits must be BITS */
  ck_assert_int_eq(aal_asa_input(NULL, 0.01, h, bits, &err), AAL_EINVAL);
  aal_tensor_release(x);
  aal_tensor_release(h);
  aal_tensor_release(h2);
  aal_tensor_release(bits);
}
END_TEST

START_TEST(test_decode_pm1_closed_form)
{
  static const long shapes[][4] = {{2, 3, 5, 7}, {1, 1, 1, 131}, {3, 64, 2, 2}};
  const double eps = 0.0123456789;
  gsl_rng *rng = gsl_rng_alloc(gsl_rng_mt19937);
  gsl_rng_set(rng, seed + 100 + (unsigned long)_i);
  aal_error err;
  const long *s = shapes[_i];
  aal_tensor *x = aal_tensor_new(4, s, &err), *h = aal_tensor_new(4, s, &err);
  aal_tensor *out = aal_tensor_new(4, s, &err), *bits = aal_tensor_new_bits(4, s, &err);
  ck_assert(x && h && out && bits);
  fill_relu_output(x, rng);
  aal_tensor_fill(out, NAN);
  ck_assert_int_eq(aal_asa_input(x, eps, h, bits, &err), AAL_OK);
  ck_assert_int_eq(aal_asa_decode_pm1(bits, eps, out, &err), AAL_OK);
  size_t zeros = 0;
  for (size_t i = 0; i < x->size; i++) {
    const int want = x->data[i] > 0;
    zeros += !want;
    /* -eps where x == 0: the forward added nothing there, the backward says -eps */
    ck_assert_msg(out->data[i] == (want ? eps : -eps), "decode pm1[%zu] = %.17g, x = %g", i,
                  out->data[i], x->data[i]);
  }
  ck_assert_uint_gt(zeros, 0);
  ck_assert_uint_lt(zeros, x->size);
  /* the argument contract is the decoder's */
  ck_assert_int_eq(aal_asa_decode_pm1(bits, eps, bits, &err), AAL_EINVAL);
  ck_assert_int_eq(aal_asa_decode_pm1(x, eps, out, &err), AAL_EINVAL);
  aal_tensor_release(x);
  aal_tensor_release(h);
  aal_tensor_release(out);
  aal_tensor_release(bits);
  gsl_rng_free(rng);
}
END_TEST

/* The published decoding's LI (SPEC section 4): with h = x + eps b and r = eps (2b - 1),
 *   r^T (2h - r) = sum_{x_i > 0} eps (2 x_i + eps) - sum_{x_i = 0} eps^2,
 * so LI = (eps (2 ||x||_1 + eps nnz(x)) - eps^2 (n - nnz(x))) / ||h||^2.  Samples of
 * density 1/10 with small entries (x_i <= 2 eps) have LI < 0, dense ones of entries up
 * to 4 have LI > 0; aal_li_batch on the h and r the ASA functions make must give the
 * closed form, computed here from x alone, to the bound below. */
START_TEST(test_decode_pm1_li_closed_form)
{
  enum { SAMPLES = 6, PER = 517 };
  const double eps = 0.01;
  gsl_rng *rng = gsl_rng_alloc(gsl_rng_mt19937);
  gsl_rng_set(rng, seed + 200);
  aal_error err;
  const long s[2] = {SAMPLES, PER};
  aal_tensor *x = aal_tensor_new(2, s, &err), *h = aal_tensor_new(2, s, &err);
  aal_tensor *r = aal_tensor_new(2, s, &err), *bits = aal_tensor_new_bits(2, s, &err);
  ck_assert(x && h && r && bits);
  for (size_t smp = 0; smp < SAMPLES; smp++) {
    double *row = x->data + smp * PER;
    if (smp % 2 == 0) { /* sparse and small: LI < 0 */
      for (size_t k = 0; k < PER; k++)
        row[k] = gsl_rng_uniform_int(rng, 10) == 0 ? 0x1p-10 + 2 * eps * gsl_rng_uniform(rng)
                                                   : 0.0;
    } else {            /* a third zeros, the rest up to 4: LI > 0 */
      for (size_t k = 0; k < PER; k++)
        row[k] = gsl_rng_uniform_int(rng, 3) == 0 ? 0.0 : 0x1p-10 + 4.0 * gsl_rng_uniform(rng);
    }
  }
  ck_assert_int_eq(aal_asa_input(x, eps, h, bits, &err), AAL_OK);
  ck_assert_int_eq(aal_asa_decode_pm1(bits, eps, r, &err), AAL_OK);
  double li[SAMPLES];
  unsigned char valid[SAMPLES];
  size_t zero_norm;
  ck_assert_int_eq(aal_li_batch(h->data, r->data, SAMPLES, PER, li, valid, &zero_norm, &err),
                   AAL_OK);
  ck_assert_uint_eq(zero_norm, 0);
  for (size_t smp = 0; smp < SAMPLES; smp++) {
    const double *row = x->data + smp * PER;
    double l1 = 0, nnz = 0, hh = 0;
    for (size_t k = 0; k < PER; k++) {
      const double b = row[k] > 0;
      l1 += row[k];
      nnz += b;
      hh += (row[k] + eps * b) * (row[k] + eps * b);
    }
    ck_assert(nnz > 0 && nnz < PER);
    const double want = (eps * (2 * l1 + eps * nnz) - eps * eps * (PER - nnz)) / hh;
    /* Both sides are sums of PER rounded terms: r^T h (terms of total magnitude
     * A = eps (||x||_1 + eps nnz)), r^T r = PER eps^2 = B and h^T h, each off by at most
     * gamma_PER ~ PER u relative to its sum of magnitudes; LI = (2 rh - rr) / hh then
     * errs by at most about 3 PER u (2A + B) / hh on each side (u = DBL_EPSILON / 2).
     * The terms of either sign can cancel, so the bound is absolute, on that scale. */
    const double scale = (2 * eps * (l1 + eps * nnz) + PER * eps * eps) / hh;
    const double bound = 4.0 * PER * DBL_EPSILON * scale;
    ck_assert(valid[smp]);
    const double e = fabs(li[smp] - want);
    ck_assert_msg(e <= bound, /* fails on NaN */
                  "sample %zu: LI %.17g, closed form %.17g (|err| %.3g > %.3g)", smp, li[smp],
                  want, e, bound);
    if (smp % 2 == 0)
      ck_assert_msg(want < -bound && li[smp] < 0, "sparse sample %zu: LI %.17g, closed form "
                    "%.17g, not negative", smp, li[smp], want);
    else
      ck_assert_msg(want > bound && li[smp] > 0, "dense sample %zu: LI %.17g not positive",
                    smp, li[smp]);
    fprintf(stderr, "decode=pm1 sample %zu: nnz %g of %d, LI %.6g (closed form %.6g)\n", smp,
            nnz, PER, li[smp], want);
  }
  aal_tensor_release(x);
  aal_tensor_release(h);
  aal_tensor_release(r);
  aal_tensor_release(bits);
  gsl_rng_free(rng);
}
END_TEST

static Suite *asa_suite(void)
{
  Suite *s = suite_create("asa");
  TCase *tc = tcase_create("reference");
  tcase_add_loop_test(tc, test_input_and_decode_closed_form, 0, 3);
  tcase_add_test(tc, test_input_refuses_what_no_relu_makes);
  tcase_add_loop_test(tc, test_decode_pm1_closed_form, 0, 3);
  tcase_add_test(tc, test_decode_pm1_li_closed_form);
  suite_add_tcase(s, tc);
  return s;
}

int main(void)
{
  seed = aal_test_seed();
  return aal_check_run(asa_suite());
}
