/* `aal kcheck --backend NAME [--op OP] [--seed S] [--shapes resnet18|random:N|boundary[:N]]
 * [--batch B]`: one row per op and shape (error/bound, worst element, PASS/FAIL).
 * `aal kcheck --npy DIR`: a candidate's tensors from .npy files (kcheck_npy.c).
 * `aal kcheck --step --backend NAME [--rule R] [--seed S] [--width W] [--batch B]`: one
 * training step on the backend against the reference (kernels/check/step_check.h). */
#include "sim/cli/commands.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kernels/check/external.h"
#include "kernels/check/kcheck.h"
#include "kernels/check/step_check.h"
#include "sim/cli/cli.h"

static const char usage[] =
    "--backend NAME [options] | --npy DIR\n\n"
    "Runs every op of backend NAME (ref, cpu32, dnnl, cuda) on float32-rounded random\n"
    "inputs and compares each output element with the double reference against its\n"
    "derived error bound (docs/KERNELS.md); bit outputs must match exactly, NaN or Inf\n"
    "fails.\n"
    "Prints one row per op and shape; exits 1 if any check fails.\n"
    "Shapes: resnet18 (the ResNet-18 Tiny ImageNet layers at --batch), random:N\n"
    "(N random shapes per op family: odd sizes, stride 1 and 2, pad 0 and 1, batch 1)\n"
    "or boundary[:N] (N per family, default 8: channels and inner dimensions at and\n"
    "across 63/64/65/128, lengths and reductions at and across multiples of 4096).\n\n"
    "With --step: one training step (forward, backward, SGD) of a small ResNet from the\n"
    "same state and batch on the reference and on NAME, for bp, ara:2,2,2,2 and\n"
    "asa:2,2,2,2 (or --rule R); compares the loss, every gradient, the LI of every rule\n"
    "conv and every parameter after the step against tol = c sqrt(2D) sqrt(K) 2^-p\n"
    "(relative, max norm per tensor; docs/KERNELS.md).  Exits 1 if any tensor fails.\n\n"
    "With --npy DIR: a kernel from outside the project.  DIR/op.txt holds `key = value`\n"
    "lines: op (below), storage and accumulation (float64, float32, float16, bfloat16:\n"
    "the candidate's tensors and its arithmetic) and the op's arguments (stride, pad,\n"
    "kernel, eps, s, lr, momentum, weight_decay, first); DIR/NAME.npy each input and\n"
    "each output the candidate gives, by the op's names (SGD's updated w and buf as\n"
    "w_new.npy, buf_new.npy): '<f8', '<f4', '<f2' in the storage format, bfloat16 as\n"
    "uint16 bit patterns ('<u2'), labels '<i8', masks and bits '|b1' or '|u1'.  The\n"
    "reference runs in double on the inputs; each output is held to the harness's\n"
    "bound for the op at that precision.  One row per output; exits 1 if one fails\n"
    "(NaN included), 2 for a missing, truncated or malformed file, a wrong dtype or\n"
    "shape, or a bad op file, naming the file.";

static void list_ops(FILE *f)
{
  fprintf(f, "ops:");
  for (int i = 0; i < aal_kcheck_op_count(); i++)
    fprintf(f, " %s", aal_kcheck_op_name(i));
  fprintf(f, "\n\n--npy ops (inputs -> outputs; arguments):\n");
  for (int i = 0; i < aal_kcheck_external_op_count(); i++) {
    const aal_kcheck_op_info *op = aal_kcheck_external_op_at(i);
    fprintf(f, "  %-21s", op->name);
    for (int j = 0; op->inputs[j] != NULL; j++)
      fprintf(f, "%s%s", j ? ", " : "", op->inputs[j]);
    fprintf(f, " ->");
    for (int j = 0; op->outputs[j] != NULL; j++)
      fprintf(f, "%s%s", j ? ", " : " ", op->outputs[j]);
    fprintf(f, "%s%s\n", op->args[0] ? "; " : "", op->args);
  }
}

/* The exit status of a check that ran (rc AAL_OK) with failed failures, or of one that
 * could not: 2 for bad input (AAL_EINVAL), else 1; the message goes to stderr. */
static int check_status(const char *cmd, int rc, const aal_error *err, int failed)
{
  if (rc == AAL_EINVAL) {
    fprintf(stderr, "aal %s: %s\n", cmd, err->msg);
    return 2;
  }
  if (rc != AAL_OK) {
    fprintf(stderr, "aal %s: %s (%s)\n", cmd, err->msg, aal_status_name(rc));
    return EXIT_FAILURE;
  }
  return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}

static int step_check(const char *backend, const aal_kcheck_opts *ko, const char *rule,
                      const char *model, const char *stem, double width, int batch,
                      int in_size, double c, int verbose)
{
  aal_step_check_opts o;
  aal_step_check_opts_init(&o);
  o.model = model;
  o.stem = stem;
  if (rule != NULL)
    o.rules = rule;
  o.seed = ko->seed;
  o.width = width;
  o.batch = batch;
  if (in_size > 0)
    o.in_size = in_size;
  o.c = c;
  o.verbose = verbose;
  aal_error err;
  aal_error_clear(&err);
  aal_ops_handle h;
  int rc = aal_ops_open(backend, &h, &err);
  if (rc != AAL_OK) {
    fprintf(stderr, "aal kcheck --step: %s (%s)\n", err.msg, aal_status_name(rc));
    return EXIT_FAILURE;
  }
  aal_step_check_summary sum = {0};
  rc = aal_step_check(h.table, &o, stdout, &sum, &err);
  aal_ops_close(&h);
  return check_status("kcheck --step", rc, &err, sum.failed);
}

int aal_cmd_kcheck(int argc, char **argv)
{
  const char *backend = NULL;
  aal_kcheck_opts o;
  aal_kcheck_opts_init(&o);
  int batch = o.batch, step = 0, verbose = 0, in_size = 0;
  const char *rule = NULL, *model = "resnet18", *stem = "tiny", *npy = NULL;
  double width = 0.125, c = 0;
  const cli_option opts[] = {
      {"backend", CLI_STRING, &backend, "backend to check: ref, cpu32, dnnl, cuda (required)"},
      {"op", CLI_STRING, &o.op, "one op or family (conv, bn, relu, ...); default all"},
      {"seed", CLI_ULONG, &o.seed, "random seed (default 1)"},
      {"shapes", CLI_STRING, &o.shapes, "resnet18 (default), random:N or boundary[:N]"},
      {"batch", CLI_INT, &batch, "batch of the resnet18 shapes / of the step (default 8)"},
      {"step", CLI_FLAG, &step, "compare one training step instead of single ops"},
      {"rule", CLI_STRING, &rule, "--step: one rule (default: bp, ara:2,2,2,2, asa:2,2,2,2)"},
      {"model", CLI_STRING, &model, "--step: resnet18 (default), resnet34, resnet50, resnet101, resnet152"},
      {"stem", CLI_STRING, &stem, "--step: tiny (default) or imagenet"},
      {"width", CLI_DOUBLE, &width, "--step: width multiplier (default 0.125)"},
      {"size", CLI_INT, &in_size, "--step: input size (default 64)"},
      {"tol-c", CLI_DOUBLE, &c, "--step: the tolerance constant c (default 4)"},
      {"verbose", CLI_FLAG, &verbose, "--step: a row per tensor (default: failures only)"},
      {"npy", CLI_STRING, &npy, "check a candidate's .npy tensors in DIR (DIR/op.txt)"},
      {0}};
  int rc = cli_parse("kcheck", usage, opts, argc, argv, 2);
  if (rc == EXIT_SUCCESS) /* after --help */
    list_ops(stdout);
  if (rc != CLI_RUN)
    return rc;
  if (npy != NULL) {
    for (const cli_option *opt = opts; opt->name != NULL; opt++)
      if (strcmp(opt->name, "npy") != 0 && cli_given(opts, argc, argv, 2, opt->name)) {
        fprintf(stderr, "aal kcheck: --npy takes no other option (--%s given)\n", opt->name);
        return 2;
      }
    return aal_cmd_kcheck_npy(npy);
  }
  if (cli_require("kcheck", backend, "--backend NAME") != 0 ||
      cli_check_model("kcheck", model, stem) != 0)
    return 2;
  if (strcmp(backend, "ref") != 0 && strcmp(backend, "cpu32") != 0 &&
      strcmp(backend, "dnnl") != 0 && strcmp(backend, "cuda") != 0) {
    fprintf(stderr, "aal kcheck: --backend: unknown backend '%s' (ref, cpu32, dnnl, cuda)\n",
            backend);
    return 2;
  }
  if (batch < 1) {
    fprintf(stderr, "aal kcheck: --batch: %d (must be >= 1)\n", batch);
    return 2;
  }
  if (cli_given(opts, argc, argv, 2, "size") && in_size < 8) {
    fprintf(stderr, "aal kcheck: --size %d must be >= 8 (default 64)\n", in_size);
    return 2;
  }
  if (cli_given(opts, argc, argv, 2, "tol-c") && !(c > 0)) {
    fprintf(stderr, "aal kcheck: --tol-c %g must be > 0 (default 4)\n", c);
    return 2;
  }
  o.batch = batch;
  aal_error err;
  aal_error_clear(&err);
  if (step)
    return step_check(backend, &o, rule, model, stem, width, batch, in_size, c, verbose);
  aal_backend be;
  rc = aal_backend_open(backend, &be, &err);
  if (rc != AAL_OK) {
    fprintf(stderr, "aal kcheck: %s (%s)\n", err.msg, aal_status_name(rc));
    return EXIT_FAILURE;
  }
  aal_kcheck_summary sum = {0};
  rc = aal_kcheck_run(&be, &o, stdout, &sum, &err);
  be.destroy(&be);
  return check_status("kcheck", rc, &err, sum.failed); /* EINVAL: a bad --op or --shapes */
}
