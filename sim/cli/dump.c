/* `aal dump`: one training step's input, parameters and gradients as .npy files
 * (sim/train/train.h). */
#include "sim/cli/commands.h"

#include <stdio.h>

#include "sim/train/train.h"
#include "sim/cli/cli.h"

int aal_cmd_dump(int argc, char **argv)
{
  aal_dump_opts o;
  aal_dump_opts_default(&o);
  const cli_option opts[] = {
      {"rule", CLI_STRING, &o.rule, "learning rule (default bp)"},
      {"seed", CLI_ULONG, &o.seed, "random seed (default 1)"},
      {"out", CLI_STRING, &o.out_dir, "output directory (default dump)"},
      {"checkpoint", CLI_STRING, &o.checkpoint, "start from this checkpoint (default: fresh)"},
      {"data", CLI_STRING, &o.data_dir, "Tiny ImageNet tree or Fashion-MNIST IDX directory (default: built-in)"},
      {"cache", CLI_STRING, &o.cache_dir, "cache directory for the built-in data set"},
      {"batch", CLI_INT, &o.batch, "images per batch (default 32)"},
      {"step", CLI_LONG, &o.step, "which step's batch and noise stream (default 0)"},
      {"model", CLI_STRING, &o.model, "resnet18 (default), resnet34, resnet50, resnet101, resnet152"},
      {"stem", CLI_STRING, &o.stem, "tiny (default) or imagenet"},
      {"width", CLI_DOUBLE, &o.width, "width multiplier (default 1)"},
      {"blocks", CLI_STRING, &o.blocks, "blocks per stage (default: the model's)"},
      {"backend", CLI_STRING, &o.backend, "ops of the step: ref (default), cpu32, dnnl, cuda"},
      {0}};
  int rc = cli_parse("dump", "[options]\n\nWrites one training step as numpy .npy files: "
                     "OUT/input.npy (float64 NCHW,\nafter augmentation and normalisation), "
                     "OUT/labels.npy (int64), OUT/params/NAME.npy\n(every parameter and "
                     "buffer before the step) and OUT/grads/NAME.npy, named as in PyTorch.",
                     opts, argc, argv, 2);
  if (rc != CLI_RUN)
    return rc;
  if (cli_check_model("dump", o.model, o.stem) != 0)
    return 2;
  aal_error err;
  aal_error_clear(&err);
  return cli_report("dump", aal_dump(&o, stderr, &err), &err);
}
