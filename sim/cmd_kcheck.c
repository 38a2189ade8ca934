/* `aal kcheck --backend NAME [--op OP] [--seed S] [--shapes resnet18|random:N]
 * [--batch B]`: one row per op and shape (error/bound, worst element, PASS/FAIL). */
#include "cmd_kcheck.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../kernels/aal_kcheck.h"
#include "cli.h"

static const char usage[] =
    "--backend NAME [options]\n\n"
    "Runs every op of backend NAME (ref, cpu32, cuda) on float32-rounded random inputs\n"
    "and compares each output element with the double reference against its derived\n"
    "error bound (docs/KERNELS.md); bit outputs must match exactly, NaN or Inf fails.\n"
    "Prints one row per op and shape; exits 1 if any check fails.\n"
    "Shapes: resnet18 (the ResNet-18 Tiny ImageNet layers at --batch) or random:N\n"
    "(N random shapes per op family: odd sizes, stride 1 and 2, pad 0 and 1, batch 1).";

static void list_ops(FILE *f)
{
  fprintf(f, "ops:");
  for (int i = 0; i < aal_kcheck_op_count(); i++)
    fprintf(f, " %s", aal_kcheck_op_name(i));
  fprintf(f, "\n");
}

int aal_cmd_kcheck(int argc, char **argv)
{
  const char *backend = NULL;
  aal_kcheck_opts o;
  aal_kcheck_opts_init(&o);
  int batch = o.batch;
  const cli_option opts[] = {
      {"backend", CLI_STRING, &backend, "backend to check: ref, cpu32, cuda (required)"},
      {"op", CLI_STRING, &o.op, "one op or family (conv, bn, relu, ...); default all"},
      {"seed", CLI_ULONG, &o.seed, "random seed (default 1)"},
      {"shapes", CLI_STRING, &o.shapes, "resnet18 (default) or random:N"},
      {"batch", CLI_INT, &batch, "batch of the resnet18 shapes (default 8)"},
      {0}};
  int rc = cli_parse("kcheck", usage, opts, argc, argv, 2);
  if (rc == 1)
    list_ops(stdout);
  if (rc != 0)
    return rc == 1 ? EXIT_SUCCESS : 2;
  if (backend == NULL) {
    fprintf(stderr, "aal kcheck: --backend NAME is required (see aal kcheck --help)\n");
    return 2;
  }
  if (strcmp(backend, "ref") != 0 && strcmp(backend, "cpu32") != 0 &&
      strcmp(backend, "cuda") != 0) {
    fprintf(stderr, "aal kcheck: --backend: unknown backend '%s' (ref, cpu32, cuda)\n",
            backend);
    return 2;
  }
  if (batch < 1) {
    fprintf(stderr, "aal kcheck: --batch: %d (must be >= 1)\n", batch);
    return 2;
  }
  o.batch = batch;
  aal_error err;
  aal_error_clear(&err);
  aal_backend be;
  rc = aal_backend_open(backend, &be, &err);
  if (rc != AAL_OK) {
    fprintf(stderr, "aal kcheck: %s (%s)\n", err.msg, aal_status_name(rc));
    return EXIT_FAILURE;
  }
  aal_kcheck_summary sum;
  rc = aal_kcheck_run(&be, &o, stdout, &sum, &err);
  be.destroy(&be);
  if (rc == AAL_EINVAL) { /* a bad --op or --shapes */
    fprintf(stderr, "aal kcheck: %s\n", err.msg);
    return 2;
  }
  if (rc != AAL_OK) {
    fprintf(stderr, "aal kcheck: %s (%s)\n", err.msg, aal_status_name(rc));
    return EXIT_FAILURE;
  }
  return sum.failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
