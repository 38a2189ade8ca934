/* The Check runner every suite ends with: runs it (forking per test unless CK_FORK=no)
 * and turns the failure count into the process's exit status. */
#ifndef AAL_TESTS_CHECK_H
#define AAL_TESTS_CHECK_H

#include <check.h>
#include <stdio.h>
#include <stdlib.h>

static inline int aal_check_run(Suite *s)
{
  SRunner *sr = srunner_create(s);
  srunner_run_all(sr, CK_NORMAL);
  const int failed = srunner_ntests_failed(sr);
  srunner_free(sr);
  return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}

/* The suite's seed: $AAL_TEST_SEED if set, else a fixed default; printed once so that a
 * failure can be replayed.  A malformed value stops the suite (exit 2). */
static inline unsigned long aal_test_seed(void)
{
  const char *s = getenv("AAL_TEST_SEED");
  unsigned long seed = 20261128UL;
  if (s != NULL && *s != '\0') {
    char *end;
    seed = strtoul(s, &end, 10);
    if (*end != '\0') {
      fprintf(stderr, "AAL_TEST_SEED=%s is not a decimal integer\n", s);
      exit(2);
    }
  }
  fprintf(stderr, "test seed: %lu (set AAL_TEST_SEED to change)\n", seed);
  return seed;
}

#endif
