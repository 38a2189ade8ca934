/* One run of the harness for the tests of a backend: the options from (op, shapes,
 * batch, seed), the rows on stderr when AAL_TEST_VERBOSE is set; fails the test when the
 * harness itself cannot run.  Returns the summary. */
#ifndef AAL_TESTS_KCHECK_RUN_H
#define AAL_TESTS_KCHECK_RUN_H

#include <check.h>
#include <stdio.h>
#include <stdlib.h>

#include "kernels/check/kcheck.h"

static inline aal_kcheck_summary aal_test_kcheck(const aal_backend *be, const char *op,
                                                 const char *shapes, int batch,
                                                 unsigned long seed)
{
  aal_kcheck_opts o;
  aal_kcheck_opts_init(&o);
  o.op = op;
  o.seed = seed;
  o.shapes = shapes;
  o.batch = batch;
  aal_kcheck_summary sum;
  aal_error err;
  FILE *out = getenv("AAL_TEST_VERBOSE") ? stderr : NULL;
  const int rc = aal_kcheck_run(be, &o, out, &sum, &err);
  ck_assert_msg(rc == AAL_OK, "kcheck %s %s: %s", op ? op : "all", shapes, err.msg);
  return sum;
}

#endif
