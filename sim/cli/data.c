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

/* Per-channel mean and standard deviation of the pixels (in [0, 1]) over a split, within
 * the source's pixels (without the border a reader added: the window the set's
 * normalisation constants describe). */
static void channel_stats(const aal_data_geom *g, const aal_data_split *sp,
                          double mean[AAL_DATA_MAX_CHANNELS], double sd[AAL_DATA_MAX_CHANNELS])
{
  const size_t S = (size_t)g->size, plane = S * S, bytes = aal_data_geom_bytes(g);
  const size_t lo = (size_t)g->border, hi = S - (size_t)g->border;
  for (int c = 0; c < g->channels; c++) {
    /* integer sums are exact: at most 255^2 * 4096^2 * n, far below 2^64 for any n here */
    unsigned long long s = 0, s2 = 0;
    for (size_t i = 0; i < sp->n; i++) {
      const uint8_t *p = sp->pixels + i * bytes + (size_t)c * plane;
      for (size_t y = lo; y < hi; y++)
        for (size_t x = lo; x < hi; x++) {
          const unsigned long long v = p[y * S + x];
          s += v;
          s2 += v * v;
        }
    }
    const double n = (double)sp->n * (double)((hi - lo) * (hi - lo));
    const double m = (double)s / n;
    const double var = (double)s2 / n - m * m;
    mean[c] = m / 255.0;
    sd[c] = sqrt(var > 0 ? var : 0) / 255.0;
  }
}

/* The normalisation the trainer uses, then the measured statistics of both splits. */
static void print_stats(const aal_data_set *ds)
{
  const aal_data_geom *g = &ds->geom;
  const char *names = g->channels == 3 ? "(R, G, B)" : g->channels == 1 ? "(gray)" : "";
  printf("normalisation %s: mean", names);
  for (int c = 0; c < g->channels; c++)
    printf(" %.4f", (double)g->mean_e4[c] / 1e4);
  printf("  std");
  for (int c = 0; c < g->channels; c++)
    printf(" %.4f", (double)g->std_e4[c] / 1e4);
  printf("\n");
  const aal_data_split *splits[2] = {&ds->train, &ds->val};
  const char *split_names[2] = {"train", "val"};
  for (int s = 0; s < 2; s++) {
    double m[AAL_DATA_MAX_CHANNELS], sd[AAL_DATA_MAX_CHANNELS];
    channel_stats(g, splits[s], m, sd);
    printf("%s pixel mean %s:", split_names[s], names);
    for (int c = 0; c < g->channels; c++)
      printf(" %.4f", m[c]);
    printf("  std:");
    for (int c = 0; c < g->channels; c++)
      printf(" %.4f", sd[c]);
    printf("\n");
  }
}

int aal_cmd_data_info(int argc, char **argv)
{
  const char *dir = NULL, *cache = NULL;
  const cli_option opts[] = {
      {"data", CLI_STRING, &dir, "a Tiny ImageNet tree or Fashion-MNIST's IDX files (required)"},
      {"cache", CLI_STRING, &cache, "Tiny ImageNet: cache file (default DATA/.aal-cache.bin)"},
      {0}};
  int rc = cli_parse("data-info", "--data DIR [options]\n\nLoads a data set and prints "
                     "its format, image geometry, counts, classes, the\nnormalisation the "
                     "trainer uses and the per-channel pixel mean and standard\ndeviation "
                     "of each split.  DIR holding train-images-idx3-ubyte.gz is read as\n"
                     "Fashion-MNIST (four IDX files, no cache); any other DIR as a Tiny "
                     "ImageNet tree,\nthrough its cache, which it builds or rebuilds when "
                     "needed.",
                     opts, argc, argv, 2);
  if (rc != CLI_RUN)
    return rc;
  if (cli_require("data-info", dir, "--data DIR") != 0)
    return 2;
  aal_error err;
  aal_error_clear(&err);
  aal_data_set ds;
  rc = aal_data_open(dir, cache, &ds, stderr, &err);
  if (rc != AAL_OK)
    return cli_report("data-info", rc, &err);
  printf("data: %s\n", dir);
  printf("format: %s\n", aal_data_format_name(ds.format));
  printf("images: %dx%dx%d (channels x height x width", ds.geom.channels, ds.geom.size,
         ds.geom.size);
  if (ds.geom.border > 0)
    printf("; %dx%d padded with %d zero pixels on every side",
           ds.geom.size - 2 * ds.geom.border, ds.geom.size - 2 * ds.geom.border, ds.geom.border);
  printf(")\n");
  printf("classes: %d\n", ds.classes);
  printf("train images: %zu\n", ds.train.n);
  printf("val images: %zu\n", ds.val.n);
  printf("fingerprint: %016llx\n", (unsigned long long)ds.fingerprint);
  if (ds.format == AAL_DATA_TINY_IMAGENET)
    printf("cache: %s%s\n", aal_data_cache_status_name(ds.cache_status),
           ds.cache_rebuilt && !ds.cache_written ? " (cache not written, see above)" : "");
  const int show = ds.classes < 5 ? ds.classes : 5;
  for (int k = 0; k < show; k++)
    printf("class %d: %s %s\n", k, ds.wnids[k], ds.words[k]);
  if (ds.classes > show)
    printf("... %d more classes\n", ds.classes - show);
  print_stats(&ds);
  aal_data_free(&ds);
  return EXIT_SUCCESS;
}
