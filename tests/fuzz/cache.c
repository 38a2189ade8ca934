/* Fuzzes the data cache reader (sim/data/cache.c, aal_data_cache_read) against a
 * generated tree of 1 class with 1 train and 1 val image.
 *
 * Each input is read twice: as it is, and (when it holds a whole header) with the
 * tree's fingerprint and both CRC-32s (header, payload) written in, so that the fuzzer
 * gets past them into the counts, sizes and labels.  Properties: a HIT is a file of
 * exactly 72 + payload bytes whose labels are the tree's and whose pixels are the
 * file's own bytes, in order; a file shorter than the header is never a HIT.
 *
 * FUZZ_WRITE_SEEDS=DIR writes the seed corpus (the cache aal_data_load writes for the
 * tree, and damaged copies) and exits. */
#include "tests/fuzz/fuzz.h"

#include "sim/data/data.h"

#define HEADER 72

static char tree[4200], cache_path[4200];
static aal_data_scan *scan;
static aal_data_set ds;
static aal_data_crc32 crc;

static void put32(uint8_t *b, uint32_t v)
{
  for (int i = 0; i < 4; i++)
    b[i] = (uint8_t)(v >> (8 * i));
}

static void check(const uint8_t *data, size_t size)
{
  aal_error err;
  char why[256] = "";
  enum aal_data_cache_status st;
  fuzz_write(cache_path, data, size);
  FUZZ_SETUP(aal_data_cache_read(cache_path, scan, &ds, &st, why, sizeof why, &err) == AAL_OK,
             err.msg);
  if (st != AAL_DATA_CACHE_HIT)
    return;
  const size_t img = AAL_TINY_IMAGE_BYTES;
  const size_t want = HEADER + (scan->n_train + scan->n_val) * (4 + img);
  FUZZ_REQUIRE(size == want, "a hit from a file of %zu bytes, not %zu", size, want);
  const uint8_t *p = data + HEADER;
  const aal_data_split *sp[2] = {&ds.train, &ds.val};
  const int *labels[2] = {scan->train_labels, scan->val_labels};
  for (int k = 0; k < 2; k++) {
    for (size_t i = 0; i < sp[k]->n; i++, p += 4) {
      const int32_t v = (int32_t)((uint32_t)p[0] | (uint32_t)p[1] << 8 |
                                  (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24);
      FUZZ_REQUIRE(v == labels[k][i] && sp[k]->labels[i] == labels[k][i],
                   "split %d label %zu: file %d, tree %d", k, i, (int)v, labels[k][i]);
    }
    FUZZ_REQUIRE(memcmp(sp[k]->pixels, p, sp[k]->n * img) == 0, "split %d pixels differ", k);
    p += sp[k]->n * img;
  }
}

static void write_seeds(const char *dir)
{
  aal_error err;
  aal_data_set full;
  char path[4200];
  fuzz_path(path, sizeof path, dir, "valid.bin");
  FUZZ_SETUP(aal_data_load(tree, path, &full, NULL, &err) == AAL_OK, err.msg);
  FUZZ_SETUP(full.cache_written == 1, "the cache was not written");
  aal_data_free(&full);
  size_t len;
  uint8_t *b = fuzz_read(path, &len);
  FUZZ_SETUP(b != NULL, path);
  fuzz_path(path, sizeof path, dir, "truncated.bin");
  fuzz_write(path, b, 1000);
  fuzz_path(path, sizeof path, dir, "header-only.bin");
  fuzz_write(path, b, HEADER);
  put32(b + 8, 1); /* format version 1: stale */
  fuzz_path(path, sizeof path, dir, "version1-header.bin");
  fuzz_write(path, b, HEADER);
  free(b);
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
  (void)argc;
  (void)argv;
  aal_error err;
  const char *root = fuzz_tmpdir("cache");
  fuzz_path(tree, sizeof tree, root, "tree");
  fuzz_path(cache_path, sizeof cache_path, root, "cache.bin");
  FUZZ_SETUP(aal_gen_data(tree, 1, 1, 1, 1, NULL, &err) == AAL_OK, err.msg);
  const char *seeds = getenv("FUZZ_WRITE_SEEDS");
  if (seeds != NULL && *seeds != '\0') {
    write_seeds(seeds);
    exit(0);
  }
  FUZZ_SETUP(aal_data_scan_tree(tree, &scan, &err) == AAL_OK, err.msg);
  FUZZ_SETUP(aal_data_set_from_scan(scan, &ds, &err) == AAL_OK, err.msg);
  aal_data_crc32_init(&crc);
  return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
  check(data, size);
  if (size < HEADER)
    return 0;
  uint8_t *fixed = malloc(size);
  FUZZ_SETUP(fixed != NULL, "malloc");
  memcpy(fixed, data, size);
  for (int i = 0; i < 8; i++)
    fixed[48 + i] = (uint8_t)(scan->fingerprint >> (8 * i));
  crc.crc = 0;
  aal_data_crc32_update(&crc, fixed + HEADER, size - HEADER);
  put32(fixed + 28, crc.crc);
  crc.crc = 0;
  aal_data_crc32_update(&crc, fixed, 64);
  put32(fixed + 64, crc.crc);
  check(fixed, size);
  free(fixed);
  return 0;
}
