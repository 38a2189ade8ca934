/* The `aal` command: parses arguments and calls libaal.  Every subcommand has --help;
 * bad input prints a message naming the option and exits with status 2. */
#include <config.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cblas.h>

#include "aal.h"
#include "cli.h"

#ifdef AAL_HAVE_CUDA
#include "../kernels/cuda/aal_cuda.h"
#endif

static int report(const char *cmd, int rc, const aal_error *err)
{
  if (rc == AAL_OK)
    return EXIT_SUCCESS;
  fprintf(stderr, "aal %s: %s (%s)\n", cmd, err->msg[0] ? err->msg : "failed",
          aal_status_name(rc));
  return EXIT_FAILURE;
}

static int set_threads(const char *cmd, int threads)
{
  if (threads < 0 || threads > 256) {
    fprintf(stderr, "aal %s: --threads %d must be in 0..256 (0: OpenBLAS's default)\n", cmd,
            threads);
    return 2;
  }
  if (threads > 0)
    openblas_set_num_threads(threads);
  return 0;
}

static int cmd_smoke(int argc, char **argv)
{
  aal_smoke_opts o;
  aal_smoke_opts_default(&o);
  int threads = 0;
  const cli_option opts[] = {
      {"batch", CLI_INT, &o.batch, "images per batch (default 16)"},
      {"size", CLI_INT, &o.size, "image height and width (default 8)"},
      {"channels", CLI_INT, &o.channels, "conv channels (default 8)"},
      {"classes", CLI_INT, &o.classes, "classes (default 4)"},
      {"steps", CLI_INT, &o.steps, "SGD steps (default 30)"},
      {"lr", CLI_DOUBLE, &o.lr, "learning rate (default 0.1)"},
      {"seed", CLI_ULONG, &o.seed, "random seed (default 1)"},
      {"threads", CLI_INT, &threads, "OpenBLAS threads (default: OpenBLAS's choice)"},
      {0}};
  int rc = cli_parse("smoke", "[options]\n\nTrains a small residual net of the double "
                     "reference layers on a fixed\nsynthetic batch, backward reading only "
                     "the tape; prints loss, accuracy and\ntape bytes per step.",
                     opts, argc, argv, 2);
  if (rc != 0)
    return rc == 1 ? EXIT_SUCCESS : 2;
  if (set_threads("smoke", threads) != 0)
    return 2;
  aal_error err;
  aal_error_clear(&err);
  double first = 0, last = 0;
  rc = aal_smoke_run(&o, stdout, &first, &last, &err);
  if (rc == AAL_OK)
    printf("smoke: loss %.6f -> %.6f over %d steps\n", first, last, o.steps);
  return report("smoke", rc, &err);
}

static int cmd_bench_conv(int argc, char **argv)
{
  aal_bench_conv_opts o;
  aal_bench_conv_opts_default(&o);
  int threads = 0;
  const cli_option opts[] = {
      {"batch", CLI_INT, &o.batch, "images per batch (default 32)"},
      {"repeats", CLI_INT, &o.repeats, "timed repetitions; the best is shown (default 3)"},
      {"dgemm-n", CLI_INT, &o.dgemm_n, "size of the reference dgemm (default 2048)"},
      {"seed", CLI_ULONG, &o.seed, "random seed (default 1)"},
      {"threads", CLI_INT, &threads, "OpenBLAS threads (default: OpenBLAS's choice)"},
      {0}};
  int rc = cli_parse("bench conv", "[options]\n\nTimes the im2col + dgemm conv (forward, "
                     "backward-data, backward-filter)\non the ResNet-18 Tiny ImageNet "
                     "shapes and a large dgemm in the same run.",
                     opts, argc, argv, 3);
  if (rc != 0)
    return rc == 1 ? EXIT_SUCCESS : 2;
  if (set_threads("bench conv", threads) != 0)
    return 2;
  aal_error err;
  aal_error_clear(&err);
  return report("bench conv", aal_bench_conv(&o, stdout, &err), &err);
}

static int cmd_bench(int argc, char **argv)
{
  if (argc < 3 || strcmp(argv[2], "--help") == 0 || strcmp(argv[2], "-h") == 0) {
    printf("usage: aal bench WHAT [options]\n\nWHAT:\n  conv    the reference conv "
           "against a large dgemm\n\nSee aal bench WHAT --help.\n");
    return argc < 3 ? 2 : EXIT_SUCCESS;
  }
  if (strcmp(argv[2], "conv") == 0)
    return cmd_bench_conv(argc, argv);
  fprintf(stderr, "aal bench: unknown benchmark '%s' (see aal bench --help)\n", argv[2]);
  return 2;
}

static int cmd_devices(int argc, char **argv)
{
  const cli_option opts[] = {{0}};
  int rc = cli_parse("devices", "\n\nLists the CUDA devices (when built with CUDA).", opts,
                     argc, argv, 2);
  if (rc != 0)
    return rc == 1 ? EXIT_SUCCESS : 2;
#ifdef AAL_HAVE_CUDA
  char info[512];
  int count = aal_cuda_device_info(info, sizeof info);
  printf("%s\n", info);
  return count >= 0 ? EXIT_SUCCESS : EXIT_FAILURE;
#else
  printf("built without CUDA (configure --with-cuda=yes to enable)\n");
  return EXIT_SUCCESS;
#endif
}

typedef struct {
  const char *name;
  int (*run)(int argc, char **argv);
  const char *help;
} subcommand;

static const subcommand commands[] = {
    {"smoke", cmd_smoke, "train a small residual net of the reference layers (smoke run)"},
    {"bench", cmd_bench, "benchmarks: aal bench conv"},
    {"devices", cmd_devices, "list CUDA devices"},
};

static void usage(FILE *out)
{
  fprintf(out, "usage: aal COMMAND [options]\n\nAuxiliary activation learning: a "
               "double-precision reference simulator\nand verification suite.\n\n"
               "commands:\n");
  for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++)
    fprintf(out, "  %-10s %s\n", commands[i].name, commands[i].help);
  fprintf(out, "\nSee aal COMMAND --help.  aal --version prints the version.\n");
}

int main(int argc, char **argv)
{
  if (argc < 2) {
    usage(stderr);
    return 2;
  }
  if (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0 ||
      strcmp(argv[1], "help") == 0) {
    usage(stdout);
    return EXIT_SUCCESS;
  }
  if (strcmp(argv[1], "--version") == 0) {
    printf("aal %s\n", PACKAGE_VERSION);
    return EXIT_SUCCESS;
  }
  for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++)
    if (strcmp(argv[1], commands[i].name) == 0)
      return commands[i].run(argc, argv);
  fprintf(stderr, "aal: unknown command '%s' (see aal --help)\n", argv[1]);
  return 2;
}
