/* The ASA reference (sim/layers/asa.c) against its closed form, element by element:
 * bit = (x > 0), h = x + eps*bit, decode = eps*bit, exactly (one rounding each, the same
 * one the closed form makes).  Inputs from the printed seed, with exact zeros mixed in
 * (the one place a sign bit can go wrong) and a size that leaves a partial last word. */
#include <check.h>
#include <gsl/gsl_rng.h>
#include <math.h>
#include <string.h>

#include "tests/aal_check.h"
#include "sim/layers/layers.h"

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

static Suite *asa_suite(void)
{
  Suite *s = suite_create("asa");
  TCase *tc = tcase_create("reference");
  tcase_add_loop_test(tc, test_input_and_decode_closed_form, 0, 3);
  tcase_add_test(tc, test_input_refuses_what_no_relu_makes);
  suite_add_tcase(s, tc);
  return s;
}

int main(void)
{
  seed = aal_test_seed();
  return aal_check_run(asa_suite());
}
