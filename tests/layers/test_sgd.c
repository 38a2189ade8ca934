/* The one SGD reference (sim/layers/sgd.c) against PyTorch's formula written out here,
 * element by element and exactly (the same operations in the same order), over two
 * steps (the first initialises the momentum buffer), with and without momentum; and the
 * argument contract. Inputs from the printed seed. */
#include <check.h>
#include <gsl/gsl_rng.h>
#include <math.h>
#include <string.h>

#include "tests/aal_check.h"
#include "sim/layers/layers.h"

static unsigned long seed;

static void fill(aal_tensor *t, gsl_rng *rng)
{
  for (size_t i = 0; i < t->size; i++)
    t->data[i] = (gsl_rng_uniform(rng) < 0.5 ? -1 : 1) * (0x1p-10 + gsl_rng_uniform(rng));
}

START_TEST(test_two_steps_as_pytorch)
{
  const double lr = 0.05, mom = 0.9, wd = 1e-4;
  gsl_rng *rng = gsl_rng_alloc(gsl_rng_mt19937);
  gsl_rng_set(rng, seed);
  aal_error err;
  aal_tensor *w = aal_tensor_new2(7, 13, &err), *g = aal_tensor_new2(7, 13, &err);
  aal_tensor *buf = aal_tensor_new2(7, 13, &err), *w_plain = aal_tensor_new2(7, 13, &err);
  ck_assert(w && g && buf && w_plain);
  fill(w, rng);
  memcpy(w_plain->data, w->data, w->size * sizeof(double));
  double want[91], want_buf[91], want_plain[91];
  memcpy(want, w->data, sizeof want);
  memcpy(want_plain, w->data, sizeof want_plain);
  for (int step = 0; step < 2; step++) {
    fill(g, rng);
    aal_tensor_fill(buf, step == 0 ? NAN : 0.0); /* first: buf is written, never read */
    if (step == 1)
      memcpy(buf->data, want_buf, sizeof want_buf);
    for (size_t i = 0; i < w->size; i++) {
      const double d = g->data[i] + wd * want[i];
      want_buf[i] = step == 0 ? d : mom * want_buf[i] + d;
      want[i] -= lr * want_buf[i];
      want_plain[i] -= lr * (g->data[i] + wd * want_plain[i]);
    }
    ck_assert_int_eq(aal_sgd_update(w, g, buf, lr, mom, wd, step == 0, &err), AAL_OK);
    ck_assert_int_eq(aal_sgd_update(w_plain, g, NULL, lr, mom, wd, step == 0, &err), AAL_OK);
    for (size_t i = 0; i < w->size; i++) {
      ck_assert_msg(w->data[i] == want[i] && buf->data[i] == want_buf[i],
                    "step %d element %zu: w %.17g want %.17g, buf %.17g want %.17g", step, i,
                    w->data[i], want[i], buf->data[i], want_buf[i]);
      ck_assert_msg(w_plain->data[i] == want_plain[i], "no momentum, step %d element %zu",
                    step, i);
    }
  }
  aal_tensor_release(w);
  aal_tensor_release(g);
  aal_tensor_release(buf);
  aal_tensor_release(w_plain);
  gsl_rng_free(rng);
}
END_TEST

START_TEST(test_contract)
{
  aal_error err;
  aal_tensor *w = aal_tensor_new1(5, &err), *g = aal_tensor_new1(5, &err);
  aal_tensor *g6 = aal_tensor_new1(6, &err);
  ck_assert(w && g && g6);
  ck_assert_int_eq(aal_sgd_update(w, g6, NULL, 0.1, 0.9, 0, 1, &err), AAL_ESHAPE);
  ck_assert_int_eq(aal_sgd_update(w, g, g6, 0.1, 0.9, 0, 1, &err), AAL_ESHAPE);
  ck_assert_int_eq(aal_sgd_update(w, g, NULL, NAN, 0.9, 0, 1, &err), AAL_EINVAL);
  ck_assert_int_eq(aal_sgd_update(w, g, NULL, 0.1, 1.0, 0, 1, &err), AAL_EINVAL);
  ck_assert_int_eq(aal_sgd_update(w, g, NULL, 0.1, 0.9, -1e-4, 1, &err), AAL_EINVAL);
  ck_assert_int_eq(aal_sgd_update(NULL, g, NULL, 0.1, 0.9, 0, 1, &err), AAL_EINVAL);
  aal_tensor_release(w);
  aal_tensor_release(g);
  aal_tensor_release(g6);
}
END_TEST

static Suite *sgd_suite(void)
{
  Suite *s = suite_create("sgd");
  TCase *tc = tcase_create("reference");
  tcase_add_test(tc, test_two_steps_as_pytorch);
  tcase_add_test(tc, test_contract);
  suite_add_tcase(s, tc);
  return s;
}

int main(void)
{
  seed = aal_test_seed();
  return aal_check_run(sgd_suite());
}
