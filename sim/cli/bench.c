/* `aal bench conv | step | kernels`: the benchmarks (sim/bench/bench.h; kernels: the
 * CUDA backend's ops, kernels/cuda/cuda.h). */
#include <config.h>

#include "sim/cli/commands.h"

#include <stdio.h>
#include <string.h>

#include "sim/bench/bench.h"
#include "sim/cli/cli.h"

#ifdef AAL_HAVE_CUDA
#include "kernels/cuda/cuda.h"
#endif

int aal_cmd_bench_conv(int argc, char **argv)
{
  aal_bench_conv_opts o;
  aal_bench_conv_opts_default(&o);
  int threads = 0;
  const cli_option opts[] = {
      {"batch", CLI_INT, &o.batch, "images per batch (default 32)"},
      {"repeats", CLI_INT, &o.repeats, "timed repetitions; the best is shown (default 3)"},
      {"dgemm-n", CLI_INT, &o.dgemm_n,
       "size of the reference dgemm (sgemm for cpu32, dnnl) (default 2048)"},
      {"seed", CLI_ULONG, &o.seed, "random seed (default 1)"},
      {"threads", CLI_INT, &threads,
       "OpenBLAS threads, and oneDNN's on dnnl (default: OpenBLAS's choice)"},
      {"backend", CLI_STRING, &o.backend,
       "ref (default): the double im2col + dgemm conv; cpu32, dnnl: a float32 CPU backend"},
      {0}};
  int rc = cli_parse("bench conv", "[options]\n\nTimes the im2col + dgemm conv (forward, "
                     "backward-data, backward-filter)\non the ResNet-18 Tiny ImageNet "
                     "shapes and a large dgemm in the same run; with\n--backend cpu32 or dnnl, "
                     "that float32 CPU backend's convs on the same shapes\nagainst a large "
                     "cblas_sgemm (inputs uniform in [-1, 1) from --seed + 1, printed;\nfor "
                     "dnnl also the implementation oneDNN chose).",
                     opts, argc, argv, 3);
  if (rc != CLI_RUN)
    return rc;
  if (cli_set_threads("bench conv", threads) != 0)
    return 2;
  aal_error err;
  aal_error_clear(&err);
  return cli_report("bench conv", aal_bench_conv(&o, stdout, &err), &err);
}

int aal_cmd_bench_step(int argc, char **argv)
{
  aal_bench_step_opts o;
  aal_bench_step_opts_default(&o);
  int threads = 0;
  const cli_option opts[] = {
      {"rules", CLI_STRING, &o.rules,
       "space-separated rules (default \"bp ara:2,2,2,2 asa:2,2,2,2\")"},
      {"batch", CLI_INT, &o.batch, "images per batch (default 32)"},
      {"repeats", CLI_INT, &o.repeats, "interleaved rounds, one step per rule each (default 3)"},
      {"model", CLI_STRING, &o.model, "resnet18 (default), resnet34, resnet50, resnet101, resnet152"},
      {"stem", CLI_STRING, &o.stem, "tiny (default) or imagenet"},
      {"size", CLI_INT, &o.size, "input height and width (default 64)"},
      {"width", CLI_DOUBLE, &o.width, "width multiplier (default 1: 64 channels)"},
      {"li", CLI_FLAG, &o.li, "also time each step with the LI and gradient alignment recorded"},
      {"profile", CLI_FLAG, &o.profile,
       "also print the time per op of the timed steps (a backend: cpu32, dnnl, cuda)"},
      {"dgemm-n", CLI_INT, &o.dgemm_n, "size of the reference dgemm (default 2048)"},
      {"seed", CLI_ULONG, &o.seed, "random seed (default 1)"},
      {"threads", CLI_INT, &threads,
       "OpenBLAS threads, and oneDNN's on dnnl (default: OpenBLAS's choice)"},
      {"backend", CLI_STRING, &o.backend, "ops of the step: ref (default), cpu32, dnnl, cuda"},
      {0}};
  int rc = cli_parse("bench step", "[options]\n\nTimes one training step (forward, backward, "
                     "SGD) of a ResNet (default the Tiny ImageNet ResNet-18)\nper rule on --backend (default: the double "
                     "reference), against a large dgemm\n(and, for a float backend, sgemm) "
                     "measured in the same run.", opts, argc, argv, 3);
  if (rc != CLI_RUN)
    return rc;
  if (cli_set_threads("bench step", threads) != 0 ||
      cli_check_model("bench step", o.model, o.stem) != 0)
    return 2;
  if (o.profile && (o.backend == NULL || strcmp(o.backend, "ref") == 0)) {
    fprintf(stderr, "aal bench step: --profile times a backend's ops (--backend cpu32, dnnl "
            "or cuda), not the reference table\n");
    return 2;
  }
  aal_error err;
  aal_error_clear(&err);
  return cli_report("bench step", aal_bench_step(&o, stdout, &err), &err);
}

int aal_cmd_bench_kernels(int argc, char **argv)
{
  const char *backend = "cuda";
  int batch = 256;
  const cli_option opts[] = {
      {"backend", CLI_STRING, &backend, "backend to time (cuda)"},
      {"batch", CLI_INT, &batch, "images per batch (default 256)"},
      {0}};
  int rc = cli_parse("bench kernels", "[options]\n\nTimes every op of a GPU backend at "
                     "ResNet-18 shapes against the device's measured\ncopy bandwidth and "
                     "sgemm rate.", opts, argc, argv, 3);
  if (rc != CLI_RUN)
    return rc;
  if (strcmp(backend, "cuda") != 0) {
    fprintf(stderr, "aal bench kernels: --backend %s: only cuda is timed here (the CPU "
            "backends: aal bench conv / aal bench step)\n", backend);
    return 2;
  }
  if (batch < 1 || batch > 4096) {
    fprintf(stderr, "aal bench kernels: --batch %d must be in 1..4096\n", batch);
    return 2;
  }
  aal_error err;
  aal_error_clear(&err);
#ifdef AAL_HAVE_CUDA
  return cli_report("bench kernels", aal_cuda_bench_kernels(stdout, batch, &err), &err);
#else
  return cli_report("bench kernels",
                    aal_fail(&err, AAL_EINVAL, "this aal was built without CUDA"), &err);
#endif
}

static const cli_command benchmarks[] = {
    {"conv", aal_cmd_bench_conv, "the reference conv against a large dgemm"},
    {"step", aal_cmd_bench_step, "a ResNet-18 training step per rule"},
    {"kernels", aal_cmd_bench_kernels, "every op of the CUDA backend (GPU)"},
};

static void usage(FILE *out)
{
  fprintf(out, "usage: aal bench WHAT [options]\n\nWHAT:\n");
  cli_list(out, benchmarks, sizeof benchmarks / sizeof benchmarks[0], 7);
  fprintf(out, "\nSee aal bench WHAT --help.\n");
}

int aal_cmd_bench(int argc, char **argv)
{
  return cli_dispatch("aal bench", "benchmark", benchmarks,
                      sizeof benchmarks / sizeof benchmarks[0], usage, stdout, argc, argv, 2);
}
