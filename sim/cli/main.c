/* The `aal` command: parses arguments and calls libaal.  Every subcommand has --help;
 * bad input prints a message naming the option and exits with status 2. */
#include <config.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#ifdef __GLIBC__
#include <malloc.h>
#endif

#include <cblas.h>

#include "sim/aal.h"
#include "sim/cli/cli.h"
#include "sim/cli/data.h"
#include "sim/cli/plot.h"
#include "sim/cli/kcheck.h"
#include "sim/cli/theorem.h"

#ifdef AAL_HAVE_CUDA
#include "kernels/cuda/cuda.h"
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
      {"dgemm-n", CLI_INT, &o.dgemm_n,
       "size of the reference dgemm (sgemm for cpu32) (default 2048)"},
      {"seed", CLI_ULONG, &o.seed, "random seed (default 1)"},
      {"threads", CLI_INT, &threads, "OpenBLAS threads (default: OpenBLAS's choice)"},
      {"backend", CLI_STRING, &o.backend,
       "ref (default): the double im2col + dgemm conv; cpu32: the float32 CPU backend"},
      {0}};
  int rc = cli_parse("bench conv", "[options]\n\nTimes the im2col + dgemm conv (forward, "
                     "backward-data, backward-filter)\non the ResNet-18 Tiny ImageNet "
                     "shapes and a large dgemm in the same run; with\n--backend cpu32, the "
                     "float32 CPU backend's convs on the same shapes against a\nlarge "
                     "cblas_sgemm (inputs uniform in [-1, 1) from --seed + 1, printed).",
                     opts, argc, argv, 3);
  if (rc != 0)
    return rc == 1 ? EXIT_SUCCESS : 2;
  if (set_threads("bench conv", threads) != 0)
    return 2;
  aal_error err;
  aal_error_clear(&err);
  return report("bench conv", aal_bench_conv(&o, stdout, &err), &err);
}

static int cmd_bench_step(int argc, char **argv)
{
  aal_bench_step_opts o;
  aal_bench_step_opts_default(&o);
  int threads = 0;
  const cli_option opts[] = {
      {"rules", CLI_STRING, &o.rules,
       "space-separated rules (default \"bp ara:2,2,2,2 asa:2,2,2,2\")"},
      {"batch", CLI_INT, &o.batch, "images per batch (default 32)"},
      {"repeats", CLI_INT, &o.repeats, "interleaved rounds, one step per rule each (default 3)"},
      {"width", CLI_DOUBLE, &o.width, "width multiplier of ResNet-18 (default 1)"},
      {"li", CLI_FLAG, &o.li, "also time each step with the learning indicator recorded"},
      {"dgemm-n", CLI_INT, &o.dgemm_n, "size of the reference dgemm (default 2048)"},
      {"seed", CLI_ULONG, &o.seed, "random seed (default 1)"},
      {"threads", CLI_INT, &threads, "OpenBLAS threads (default: OpenBLAS's choice)"},
      {"backend", CLI_STRING, &o.backend, "ops of the step: ref (default), cpu32, cuda"},
      {0}};
  int rc = cli_parse("bench step", "[options]\n\nTimes one training step (forward, backward, "
                     "SGD) of the Tiny ImageNet ResNet-18\nper rule on --backend (default: the double "
                     "reference), against a large dgemm\n(and, for a float backend, sgemm) "
                     "measured in the same run.", opts, argc, argv, 3);
  if (rc != 0)
    return rc == 1 ? EXIT_SUCCESS : 2;
  if (set_threads("bench step", threads) != 0)
    return 2;
  aal_error err;
  aal_error_clear(&err);
  return report("bench step", aal_bench_step(&o, stdout, &err), &err);
}

static int cmd_bench_kernels(int argc, char **argv)
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
  if (rc != 0)
    return rc == 1 ? EXIT_SUCCESS : 2;
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
  return report("bench kernels", aal_cuda_bench_kernels(stdout, batch, &err), &err);
#else
  return report("bench kernels", aal_fail(&err, AAL_EINVAL, "this aal was built without CUDA"),
                &err);
#endif
}

static int cmd_bench(int argc, char **argv)
{
  if (argc < 3 || strcmp(argv[2], "--help") == 0 || strcmp(argv[2], "-h") == 0) {
    printf("usage: aal bench WHAT [options]\n\nWHAT:\n  conv    the reference conv "
           "against a large dgemm\n  step    a ResNet-18 training step per rule\n  kernels every op of the CUDA backend "
           "(GPU)\n\nSee aal bench WHAT --help.\n");
    return argc < 3 ? 2 : EXIT_SUCCESS;
  }
  if (strcmp(argv[2], "conv") == 0)
    return cmd_bench_conv(argc, argv);
  if (strcmp(argv[2], "step") == 0)
    return cmd_bench_step(argc, argv);
  if (strcmp(argv[2], "kernels") == 0)
    return cmd_bench_kernels(argc, argv);
  fprintf(stderr, "aal bench: unknown benchmark '%s' (see aal bench --help)\n", argv[2]);
  return 2;
}

/* Model options shared by the commands that build a ResNet. */
typedef struct {
  double width;
  const char *blocks;
  int classes, size;
} model_args;

static void model_args_default(model_args *m)
{
  m->width = 1.0;
  m->blocks = "2,2,2,2";
  m->classes = 200;
  m->size = 64;
}

static int model_config(const char *cmd, const model_args *m, aal_resnet_config *cfg)
{
  aal_error err;
  aal_error_clear(&err);
  aal_resnet_config_default(cfg);
  int rc = aal_resnet_config_set_width(cfg, m->width, &err);
  if (rc == AAL_OK)
    rc = aal_resnet_config_set_blocks(cfg, m->blocks, &err);
  cfg->classes = m->classes;
  cfg->in_size = m->size;
  if (rc != AAL_OK) {
    fprintf(stderr, "aal %s: %s\n", cmd, err.msg);
    return 2;
  }
  return 0;
}

static int cmd_memory(int argc, char **argv)
{
  model_args m;
  model_args_default(&m);
  const char *rule_text = "ara:2,2,2,2";
  int batch = 32;
  unsigned long seed = 1;
  const cli_option opts[] = {
      {"rule", CLI_STRING, &rule_text, "learning rule (default ara:2,2,2,2)"},
      {"batch", CLI_INT, &batch, "images per batch (default 32)"},
      {"width", CLI_DOUBLE, &m.width, "width multiplier (default 1: 64 channels)"},
      {"blocks", CLI_STRING, &m.blocks, "blocks per stage (default 2,2,2,2; ResNet-34: 3,4,6,3)"},
      {"classes", CLI_INT, &m.classes, "classes (default 200)"},
      {"size", CLI_INT, &m.size, "input height and width (default 64)"},
      {"seed", CLI_ULONG, &seed, "random seed (default 1)"},
      {0}};
  int rc = cli_parse("memory", "[options]\n\nBytes on the tape at the end of the forward "
                     "pass, per layer and in total,\nat double and at float32, beside BP's "
                     "(one forward pass of each on a random batch).\nRules: bp, "
                     "ara:K1,K2,K3,K4, asa:K1,K2,K3,K4[;eps=E;lr_expansion=X], asa:all,\n"
                     "noise[:K...|:all], flip[:K...|:all].", opts, argc, argv, 2);
  if (rc != 0)
    return rc == 1 ? EXIT_SUCCESS : 2;
  aal_resnet_config cfg;
  if (model_config("memory", &m, &cfg) != 0)
    return 2;
  aal_error err;
  aal_error_clear(&err);
  aal_rule rule;
  if (aal_rule_parse(rule_text, &rule, &err) != AAL_OK) {
    fprintf(stderr, "aal memory: --rule: %s\n", err.msg);
    return 2;
  }
  if (batch < 2 || batch > 65536) {
    fprintf(stderr, "aal memory: --batch %d must be in 2..65536\n", batch);
    return 2;
  }
  return report("memory", aal_memory_report(&cfg, &rule, batch, seed, stdout, NULL, &err),
                &err);
}

static int cmd_train(int argc, char **argv)
{
  aal_train_opts o;
  aal_train_opts_default(&o);
  const char *resume = NULL;
  int threads = 0, plain = 0, bar = 0;
  const cli_option opts[] = {
      {"rule", CLI_STRING, &o.rule, "learning rule (default bp; see aal memory --help)"},
      {"data", CLI_STRING, &o.data_dir, "Tiny ImageNet directory (default: built-in generated set)"},
      {"out", CLI_STRING, &o.out_dir, "run directory (default runs/train)"},
      {"steps", CLI_LONG, &o.steps, "total steps (default: --epochs)"},
      {"epochs", CLI_DOUBLE, &o.epochs, "total epochs when --steps is not given (default 1)"},
      {"batch", CLI_INT, &o.batch, "images per batch (default 32)"},
      {"lr", CLI_DOUBLE, &o.lr, "peak learning rate (default 0.05 * batch / 512)"},
      {"warmup", CLI_LONG, &o.warmup, "linear warm-up steps before the cosine decay (default 5%)"},
      {"momentum", CLI_DOUBLE, &o.momentum, "SGD momentum (default 0.9)"},
      {"weight-decay", CLI_DOUBLE, &o.weight_decay, "weight decay (default 1e-4)"},
      {"eval-every", CLI_LONG, &o.eval_every, "steps between evaluations (default: at the end)"},
      {"checkpoint-every", CLI_LONG, &o.checkpoint_every, "steps between checkpoints (default: at the end)"},
      {"li-every", CLI_LONG, &o.li_every, "steps between learning-indicator measurements (0: never)"},
      {"width", CLI_DOUBLE, &o.width, "width multiplier (default 1: ResNet-18)"},
      {"blocks", CLI_STRING, &o.blocks, "blocks per stage (default 2,2,2,2; ResNet-34: 3,4,6,3)"},
      {"seed", CLI_ULONG, &o.seed, "random seed (default 1)"},
      {"resume", CLI_STRING, &resume, "continue the run in this directory from its checkpoint"},
      {"cache", CLI_STRING, &o.cache_dir, "cache directory for the built-in data set"},
      {"stop-after", CLI_LONG, &o.stop_after, "stop (checkpointed) after this many steps"},
      {"threads", CLI_INT, &threads, "OpenBLAS threads (default: OpenBLAS's choice)"},
      {"plain", CLI_FLAG, &plain, "progress as plain lines even on a terminal"},
      {"bar", CLI_FLAG, &bar, "progress bar even when not on a terminal"},
      {"backend", CLI_STRING, &o.backend, "ops of every step: ref (default), cpu32, cuda"},
      {0}};
  int rc = cli_parse("train", "[options]\n\nTrains the ResNet with a learning rule; writes "
                     "RUN/config, RUN/metrics.csv,\nRUN/checkpoint.bin (atomically) and, with "
                     "--li-every, RUN/li.csv and RUN/li_summary.csv.", opts, argc, argv, 2);
  if (rc != 0)
    return rc == 1 ? EXIT_SUCCESS : 2;
  if (set_threads("train", threads) != 0)
    return 2;
  aal_error err;
  aal_error_clear(&err);
  o.progress = bar ? 1 : plain ? 0 : -1;
  if (resume != NULL)
    return report("train", aal_train_resume(resume, o.steps, o.stop_after, o.progress, stderr,
                                            &err), &err);
  return report("train", aal_train(&o, stderr, &err), &err);
}

static int cmd_dump(int argc, char **argv)
{
  aal_dump_opts o;
  aal_dump_opts_default(&o);
  const cli_option opts[] = {
      {"rule", CLI_STRING, &o.rule, "learning rule (default bp)"},
      {"seed", CLI_ULONG, &o.seed, "random seed (default 1)"},
      {"out", CLI_STRING, &o.out_dir, "output directory (default dump)"},
      {"checkpoint", CLI_STRING, &o.checkpoint, "start from this checkpoint (default: fresh)"},
      {"data", CLI_STRING, &o.data_dir, "Tiny ImageNet directory (default: built-in)"},
      {"cache", CLI_STRING, &o.cache_dir, "cache directory for the built-in data set"},
      {"batch", CLI_INT, &o.batch, "images per batch (default 32)"},
      {"step", CLI_LONG, &o.step, "which step's batch and noise stream (default 0)"},
      {"width", CLI_DOUBLE, &o.width, "width multiplier (default 1)"},
      {"blocks", CLI_STRING, &o.blocks, "blocks per stage (default 2,2,2,2)"},
      {"backend", CLI_STRING, &o.backend, "ops of the step: ref (default), cpu32, cuda"},
      {0}};
  int rc = cli_parse("dump", "[options]\n\nWrites one training step as numpy .npy files: "
                     "OUT/input.npy (float64 NCHW,\nafter augmentation and normalisation), "
                     "OUT/labels.npy (int64), OUT/params/NAME.npy\n(every parameter and "
                     "buffer before the step) and OUT/grads/NAME.npy, named as in PyTorch.",
                     opts, argc, argv, 2);
  if (rc != 0)
    return rc == 1 ? EXIT_SUCCESS : 2;
  aal_error err;
  aal_error_clear(&err);
  return report("dump", aal_dump(&o, stderr, &err), &err);
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
    {"train", cmd_train, "train the ResNet with a learning rule (Tiny ImageNet or built-in data)"},
    {"dump", cmd_dump, "one training step's input, parameters and gradients as .npy files"},
    {"gen-data", aal_cmd_gen_data, "write a miniature data set in the Tiny ImageNet layout"},
    {"data-info", aal_cmd_data_info, "load a data set (through its cache) and describe it"},
    {"theorem", aal_cmd_theorem, "Theorem 1 on convex problems: descent checks and LI sweep"},
    {"kcheck", aal_cmd_kcheck, "cross-check a kernel backend (cpu32, cuda) against the reference"},
    {"plot", aal_cmd_plot, "draw a run's figures (loss, LI histogram, LI over steps) with gnuplot"},
    {"memory", cmd_memory, "tape bytes per layer of a rule, beside BP's"},
    {"bench", cmd_bench, "benchmarks: aal bench conv | step | kernels"},
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
