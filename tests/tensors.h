/* Small helpers the layer tests share: a seeded generator and a 4-d tensor, each failing
 * the test (not returning NULL) when it cannot be made. */
#ifndef AAL_TESTS_TENSORS_H
#define AAL_TESTS_TENSORS_H

#include <check.h>
#include <gsl/gsl_rng.h>

#include "sim/core/tensor.h"

/* mt19937 seeded with seed (the suite's seed plus a salt per use) */
static inline gsl_rng *aal_test_rng(unsigned long seed)
{
  gsl_rng *r = gsl_rng_alloc(gsl_rng_mt19937);
  ck_assert_ptr_nonnull(r);
  gsl_rng_set(r, seed);
  return r;
}

static inline aal_tensor *aal_test_tensor4(long n, long c, long h, long w)
{
  aal_error err;
  aal_tensor *t = aal_tensor_new4(n, c, h, w, &err);
  ck_assert_msg(t != NULL, "aal_tensor_new4: %s", err.msg);
  return t;
}

#endif
