/* The `aal` command: the table of commands, --help and --version, and the dispatch to
 * the command's file (sim/cli/commands.h).  Every command has --help; bad input prints
 * a message naming the option and exits with status 2. */
#include <config.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#ifdef __GLIBC__
#include <malloc.h>
#endif

#include "sim/cli/cli.h"
#include "sim/cli/commands.h"

static const cli_command commands[] = {
    {"smoke", aal_cmd_smoke, "train a small residual net of the reference layers (smoke run)"},
    {"train", aal_cmd_train, "train the ResNet with a learning rule (Tiny ImageNet or built-in data)"},
    {"dump", aal_cmd_dump, "one training step's input, parameters and gradients as .npy files"},
    {"gen-data", aal_cmd_gen_data, "write a miniature data set in the Tiny ImageNet layout"},
    {"data-info", aal_cmd_data_info, "load a data set (through its cache) and describe it"},
    {"theorem", aal_cmd_theorem, "Theorem 1 on convex problems: descent checks and LI sweep"},
    {"kcheck", aal_cmd_kcheck, "cross-check a kernel backend (cpu32, dnnl, cuda) against the reference"},
    {"plot", aal_cmd_plot, "draw a run's figures (loss, LI histogram, LI over steps) with gnuplot"},
    {"memory", aal_cmd_memory, "tape bytes per layer of a rule, beside BP's"},
    {"bench", aal_cmd_bench, "benchmarks: aal bench conv | step | kernels"},
    {"devices", aal_cmd_devices, "list CUDA devices"},
};

static void usage(FILE *out)
{
  fprintf(out, "usage: aal COMMAND [options]\n\nAuxiliary activation learning: a "
               "double-precision reference simulator\nand verification suite.\n\n"
               "commands:\n");
  cli_list(out, commands, sizeof commands / sizeof commands[0], 10);
  fprintf(out, "\nSee aal COMMAND --help.  aal --version prints the version.\n");
}

/* A training step allocates and frees hundreds of MiB of activations; glibc would hand
 * each large block back to the kernel and fault it in again on the next step (about 6%
 * of a ResNet-18 step here).  Keep freed memory in the heap instead. */
static void keep_freed_memory(void)
{
#ifdef __GLIBC__
  mallopt(M_MMAP_THRESHOLD, 1 << 30);
  mallopt(M_TRIM_THRESHOLD, 1 << 30);
#endif
}

int main(int argc, char **argv)
{
  keep_freed_memory();
  if (argc > 1 && strcmp(argv[1], "help") == 0) {
    usage(stdout);
    return EXIT_SUCCESS;
  }
  if (argc > 1 && strcmp(argv[1], "--version") == 0) {
    printf("aal %s\n", PACKAGE_VERSION);
    return EXIT_SUCCESS;
  }
  return cli_dispatch("aal", "command", commands, sizeof commands / sizeof commands[0], usage,
                      stderr, argc, argv, 1);
}
