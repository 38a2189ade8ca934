/* `aal gen-data` and `aal data-info`. */
#include "sim/cli/commands.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>

#include "sim/data/data.h"
#include "sim/cli/cli.h"

int aal_cmd_gen_data(int argc, char **argv)
{
  const char *out = NULL;
  int classes = 10, per_class = 100, val_per_class = 20;
  unsigned long seed = 1;
  const cli_option opts[] = {
      {"out", CLI_STRING, &out, "output directory, new or empty (required)"},
      {"classes", CLI_INT, &classes, "classes (default 10)"},
      {"per-class", CLI_INT, &per_class, "train images per class (default 100)"},
      {"val-per-class", CLI_INT, &val_per_class, "val images per class (default 20)"},
      {"seed", CLI_ULONG, &seed, "random seed (default 1)"},
      {0}};
  int rc = cli_parse("gen-data", "--out DIR [options]\n\nWrites a synthetic dataset in the "
                     "Tiny ImageNet layout (wnids.txt, words.txt,\ntrain/WNID/images/*.JPEG, "
                     "val/images/*.JPEG, val/val_annotations.txt):\nprocedural 64x64 images "
                     "(class-specific grating, colour and shape, with noise).\nThe same "
                     "arguments give byte-identical files.",
                     opts, argc, argv, 2);
  if (rc != CLI_RUN)
    return rc;
  if (cli_require("gen-data", out, "--out DIR") != 0)
    return 2;
  aal_error err;
  aal_error_clear(&err);
  rc = aal_gen_data(out, classes, per_class, val_per_class, seed, stderr, &err);
  if (rc == AAL_EINVAL) { /* a bad count or a non-empty directory: a usage error */
    fprintf(stderr, "aal gen-data: %s\n", err.msg);
    return 2;
  }
  if (rc == AAL_OK)
    printf("gen-data: %d classes, %d train + %d val images per class in %s (seed %lu)\n",
           classes, per_class, val_per_class, out, seed);
  return cli_report("gen-data", rc, &err);
}

/* Per-channel mean and standard deviation of the pixels (in [0, 1]), over a split. */
static void channel_stats(const aal_data_split *sp, double mean[3], double sd[3])
{
  const size_t plane = (size_t)AAL_DATA_SIZE * AAL_DATA_SIZE;
  for (int c = 0; c < 3; c++) {
    /* integer sums are exact: at most 255^2 * 4096 * n, far below 2^64 for any n here */
    unsigned long long s = 0, s2 = 0;
    for (size_t i = 0; i < sp->n; i++) {
      const uint8_t *p = sp->pixels + i * AAL_DATA_IMAGE_BYTES + (size_t)c * plane;
      for (size_t k = 0; k < plane; k++) {
        s += p[k];
        s2 += (unsigned long long)p[k] * p[k];
      }
    }
    const double n = (double)sp->n * (double)plane;
    const double m = (double)s / n;
    const double var = (double)s2 / n - m * m;
    mean[c] = m / 255.0;
    sd[c] = sqrt(var > 0 ? var : 0) / 255.0;
  }
}

int aal_cmd_data_info(int argc, char **argv)
{
  const char *dir = NULL, *cache = NULL;
  const cli_option opts[] = {
      {"data", CLI_STRING, &dir, "dataset directory in the Tiny ImageNet layout (required)"},
      {"cache", CLI_STRING, &cache, "cache file (default DATA/.aal-cache.bin)"},
      {0}};
  int rc = cli_parse("data-info", "--data DIR [options]\n\nLoads a Tiny ImageNet tree "
                     "(through its cache, which it builds or rebuilds\nwhen needed) and "
                     "prints counts, classes, the cache status and the\nper-channel pixel "
                     "mean and standard deviation.",
                     opts, argc, argv, 2);
  if (rc != CLI_RUN)
    return rc;
  if (cli_require("data-info", dir, "--data DIR") != 0)
    return 2;
  aal_error err;
  aal_error_clear(&err);
  aal_data_set ds;
  rc = aal_data_load(dir, cache, &ds, stderr, &err);
  if (rc != AAL_OK)
    return cli_report("data-info", rc, &err);
  printf("data: %s\n", dir);
  printf("classes: %d\n", ds.classes);
  printf("train images: %zu\n", ds.train.n);
  printf("val images: %zu\n", ds.val.n);
  printf("fingerprint: %016llx\n", (unsigned long long)ds.fingerprint);
  printf("cache: %s%s\n", aal_data_cache_status_name(ds.cache_status),
         ds.cache_rebuilt && !ds.cache_written ? " (cache not written, see above)" : "");
  const int show = ds.classes < 5 ? ds.classes : 5;
  for (int k = 0; k < show; k++)
    printf("class %d: %s %s\n", k, ds.wnids[k], ds.words[k]);
  if (ds.classes > show)
    printf("... %d more classes\n", ds.classes - show);
  const aal_data_split *splits[2] = {&ds.train, &ds.val};
  const char *names[2] = {"train", "val"};
  for (int s = 0; s < 2; s++) {
    double m[3], sd[3];
    channel_stats(splits[s], m, sd);
    printf("%s pixel mean (R, G, B): %.4f %.4f %.4f  std: %.4f %.4f %.4f\n", names[s], m[0],
           m[1], m[2], sd[0], sd[1], sd[2]);
  }
  aal_data_free(&ds);
  return EXIT_SUCCESS;
}
