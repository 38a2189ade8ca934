/* The Check runner every suite ends with: runs it (forking per test unless CK_FORK=no)
 * and turns the failure count into the process's exit status. */
#ifndef AAL_TESTS_CHECK_H
#define AAL_TESTS_CHECK_H

#include <check.h>
#include <stdlib.h>

static inline int aal_check_run(Suite *s)
{
  SRunner *sr = srunner_create(s);
  srunner_run_all(sr, CK_NORMAL);
  const int failed = srunner_ntests_failed(sr);
  srunner_free(sr);
  return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}

#endif
