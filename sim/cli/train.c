/* `aal train`: trains the ResNet with a learning rule, or resumes a run
 * (sim/train/train.h). */
#include "sim/cli/commands.h"

#include <stdio.h>

#include "sim/dist/dist.h"
#include "sim/train/train.h"
#include "sim/cli/cli.h"

/* The options of the run given on the command line (for a resume to check). */
static unsigned resume_set(const cli_option *opts, int argc, char **argv)
{
  static const struct { const char *name; unsigned bit; } run[] = {
      {"rule", AAL_SET_RULE}, {"data", AAL_SET_DATA}, {"batch", AAL_SET_BATCH},
      {"lr", AAL_SET_LR}, {"warmup", AAL_SET_WARMUP}, {"momentum", AAL_SET_MOMENTUM},
      {"weight-decay", AAL_SET_WEIGHT_DECAY}, {"eval-every", AAL_SET_EVAL_EVERY},
      {"checkpoint-every", AAL_SET_CHECKPOINT_EVERY}, {"li-every", AAL_SET_LI_EVERY},
      {"width", AAL_SET_WIDTH}, {"blocks", AAL_SET_BLOCKS}, {"seed", AAL_SET_SEED},
      {"model", AAL_SET_MODEL}, {"stem", AAL_SET_STEM},
      {"backend", AAL_SET_BACKEND}, {"epochs", AAL_SET_EPOCHS}, {"cache", AAL_SET_CACHE},
      {"out", AAL_SET_OUT}, {"threads", AAL_SET_THREADS}};
  unsigned set = 0;
  for (size_t i = 0; i < sizeof run / sizeof run[0]; i++)
    if (cli_given(opts, argc, argv, 2, run[i].name))
      set |= run[i].bit;
  return set;
}

int aal_cmd_train(int argc, char **argv)
{
  aal_train_opts o;
  aal_train_opts_default(&o);
  const char *resume = NULL;
  int threads = 0, plain = 0, bar = 0;
  const cli_option opts[] = {
      {"rule", CLI_STRING, &o.rule, "learning rule (default bp; the forms, decode=pm1 too: "
       "aal memory --help)"},
      {"data", CLI_STRING, &o.data_dir, "Tiny ImageNet tree or Fashion-MNIST IDX directory (default: built-in generated set)"},
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
      {"model", CLI_STRING, &o.model, "resnet18 (default), resnet34, resnet50, resnet101, resnet152"},
      {"stem", CLI_STRING, &o.stem, "tiny (default: 3x3 s2 conv) or imagenet (7x7 s2 conv, 3x3 s2 max pool)"},
      {"width", CLI_DOUBLE, &o.width, "width multiplier (default 1: 64 channels in the first stage)"},
      {"blocks", CLI_STRING, &o.blocks, "blocks per stage (default: the model's, 2,2,2,2 for resnet18)"},
      {"seed", CLI_ULONG, &o.seed, "random seed (default 1)"},
      {"resume", CLI_STRING, &resume, "continue the run in this directory from its checkpoint"},
      {"cache", CLI_STRING, &o.cache_dir, "cache directory for the built-in data set"},
      {"stop-after", CLI_LONG, &o.stop_after, "stop (checkpointed) after this many steps"},
      {"threads", CLI_INT, &threads,
       "OpenBLAS threads, and oneDNN's on dnnl (default: OpenBLAS's choice)"},
      {"plain", CLI_FLAG, &plain, "progress as plain lines even on a terminal"},
      {"bar", CLI_FLAG, &bar, "progress bar even when not on a terminal"},
      {"backend", CLI_STRING, &o.backend, "ops of every step: ref (default), cpu32, dnnl, cuda"},
      {0}};
  int rc = cli_parse("train", "[options]\n\nTrains the ResNet with a learning rule; writes "
                     "RUN/config, RUN/metrics.csv,\nRUN/checkpoint.bin (atomically) and, with "
                     "--li-every, RUN/li.csv and RUN/li_summary.csv.\nOne process writes a "
                     "RUN at a time (RUN/.lock).\n\n--resume RUN continues the run as "
                     "RUN/config sets it up; it takes --steps (a new total),\n--stop-after, "
                     "--plain and --bar. Any other option of the run must agree\n"
                     "with RUN/config (a contradiction is an error naming both values); "
                     "--epochs and\n--cache are refused. RUN/config records the OpenBLAS "
                     "thread count (blas_threads):\non the ref backend (bit-identical for "
                     "any count) a resume takes any --threads;\non cpu32, dnnl and cuda, whose "
                     "results may depend on it, the resume runs with the\nrun's count and "
                     "refuses another --threads.  --threads N sets OpenBLAS's\nthreads and, "
                     "on dnnl, oneDNN's OpenMP threads (docs/KERNELS.md).\n\n`mpirun -np N aal "
                     "train ...` trains data-parallel (a build with MPI; the ref\nbackend): "
                     "each process takes batch/N images of every step, batch norm and\nthe "
                     "gradients are summed over the processes in a fixed order, and rank 0 "
                     "writes\nRUN; a resume takes as many processes (docs/DESIGN.md).", opts, argc, argv, 2);
  if (rc != CLI_RUN)
    return rc;
  if (cli_set_threads("train", threads) != 0 || cli_check_model("train", o.model, o.stem) != 0)
    return 2;
  aal_error err;
  aal_error_clear(&err);
  o.progress = bar ? 1 : plain ? 0 : -1;
  aal_comm *comm = NULL;
  if ((rc = aal_dist_open(&comm, &err)) != AAL_OK)
    return cli_report("train", rc, &err);
  o.comm = comm;
  if (resume != NULL) {
    o.blas_threads = threads;
    rc = aal_train_resume_check(resume, &o, resume_set(opts, argc, argv), &err);
    if (rc == AAL_OK)
      rc = aal_train_resume(resume, o.steps, o.stop_after, o.progress, comm, stderr, &err);
  } else {
    rc = aal_train(&o, stderr, &err);
  }
  int status;
  if (aal_comm_size(comm) > 1 && aal_comm_rank(comm) != 0) {
    char cmd[48];
    snprintf(cmd, sizeof cmd, "train (rank %d of %d)", comm->rank, comm->size);
    status = cli_report(cmd, rc, &err);
  } else {
    status = cli_report("train", rc, &err);
  }
  aal_dist_close(comm);
  return status;
}
