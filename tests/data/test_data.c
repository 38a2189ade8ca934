/* Tiny ImageNet data: the loader, its error messages, the cache, the generator and the
 * augmentation.  Every test generates its own small tree (3 classes x 6 train images, 2
 * val images per class) in a mkdtemp directory and removes it.
 *
 * JPEG error bound.  The generator's pixels include per-pixel Gaussian noise (sigma
 * 0.03 * 255) which JPEG at quality 90 largely quantises away, so the decoded pixels
 * differ from the generated ones by about the noise.  Measured over 7200 images
 * (seeds 3, 4, 5; 40 classes x 60 images): mean |error| per image 5.0 on average,
 * 5.42 at worst; max |error| 51 at worst.  Bound asserted per image, with margin:
 *     mean |error| <= JPEG_MEAN_BOUND (8)  and  max |error| <= JPEG_MAX_BOUND (80).
 * To show the bound discriminates, the same comparison against a different image of
 * the same class must exceed the mean bound (a loader that swapped images, channels or
 * axes would fail). */
#include <check.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <sys/stat.h>
#include <unistd.h>

#include <gsl/gsl_rng.h>
#include <jpeglib.h>
#include <zlib.h>

#include "tests/aal_check.h"
#include "sim/data/data.h"

#define JPEG_MEAN_BOUND 8.0
#define JPEG_MAX_BOUND 80
#define CLASSES 3
#define PER_CLASS 6
#define VAL_PER_CLASS 2
#define NVAL (CLASSES * VAL_PER_CLASS)

static unsigned long g_seed; /* set once in main (aal_test_seed) */

static unsigned long test_seed(void)
{
  return g_seed;
}

/* ------------------------------------------------------------------ file helpers */

static void rm_rf(const char *path)
{
  struct stat st;
  if (lstat(path, &st) != 0)
    return;
  if (S_ISDIR(st.st_mode)) {
    DIR *d = opendir(path);
    if (d != NULL) {
      const struct dirent *e;
      while ((e = readdir(d)) != NULL) {
        if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0)
          continue;
        char sub[1024];
        snprintf(sub, sizeof sub, "%s/%s", path, e->d_name);
        rm_rf(sub);
      }
      closedir(d);
    }
    rmdir(path);
  } else {
    unlink(path);
  }
}

typedef struct {
  char root[256]; /* the mkdtemp directory */
  char data[300]; /* root/tiny: the dataset */
} tree;

static void tree_make(tree *t, unsigned long seed)
{
  strcpy(t->root, "/tmp/aal-test-data-XXXXXX");
  ck_assert_ptr_nonnull(mkdtemp(t->root));
  snprintf(t->data, sizeof t->data, "%s/tiny", t->root);
  aal_error err;
  aal_error_clear(&err);
  const int rc = aal_gen_data(t->data, CLASSES, PER_CLASS, VAL_PER_CLASS, seed, NULL, &err);
  ck_assert_msg(rc == AAL_OK, "gen: %s", err.msg);
}

static void tree_free(tree *t)
{
  rm_rf(t->root);
}

static void path_of(char *buf, size_t len, const tree *t, const char *rel)
{
  snprintf(buf, len, "%s/%s", t->data, rel);
}

static long file_size(const char *path)
{
  struct stat st;
  ck_assert_int_eq(stat(path, &st), 0);
  return (long)st.st_size;
}

static unsigned char *slurp(const char *path, long *len)
{
  FILE *f = fopen(path, "rb");
  ck_assert_ptr_nonnull(f);
  fseek(f, 0, SEEK_END);
  *len = ftell(f);
  fseek(f, 0, SEEK_SET);
  unsigned char *b = malloc((size_t)*len + 1);
  ck_assert_ptr_nonnull(b);
  ck_assert_int_eq((long)fread(b, 1, (size_t)*len, f), *len);
  fclose(f);
  return b;
}

static void spit(const char *path, const void *data, long len)
{
  FILE *f = fopen(path, "wb");
  ck_assert_ptr_nonnull(f);
  ck_assert_int_eq((long)fwrite(data, 1, (size_t)len, f), len);
  ck_assert_int_eq(fclose(f), 0);
}

/* Loads t and expects failure rc with every needle in the message. */
static void expect_load_error(const tree *t, int rc, const char *needle1, const char *needle2)
{
  aal_data_set ds;
  aal_error err;
  aal_error_clear(&err);
  const int got = aal_data_read_tree(t->data, &ds, NULL, &err);
  ck_assert_msg(got == rc, "expected %s, got %s: %s", aal_status_name(rc),
                aal_status_name(got), err.msg);
  ck_assert_msg(needle1 == NULL || strstr(err.msg, needle1) != NULL,
                "message '%s' lacks '%s'", err.msg, needle1);
  ck_assert_msg(needle2 == NULL || strstr(err.msg, needle2) != NULL,
                "message '%s' lacks '%s'", err.msg, needle2);
  ck_assert_ptr_null(ds.train.pixels); /* a failed load leaves nothing to free */
  aal_data_free(&ds);
}

/* ------------------------------------------------------------------ checksums */

START_TEST(test_checksums)
{
  aal_data_crc32 *c = malloc(sizeof *c);
  ck_assert_ptr_nonnull(c);
  aal_data_crc32_init(c);
  aal_data_crc32_update(c, "123456789", 9);
  ck_assert_uint_eq(c->crc, 0xCBF43926u); /* the standard CRC-32 check value */
  /* split updates (odd lengths, across the 8-byte blocks) give the one-shot CRC */
  unsigned char buf[1000];
  for (int i = 0; i < 1000; i++)
    buf[i] = (unsigned char)(i * 37 + 11);
  c->crc = 0;
  aal_data_crc32_update(c, buf, sizeof buf);
  const uint32_t whole = c->crc;
  c->crc = 0;
  aal_data_crc32_update(c, buf, 3);
  aal_data_crc32_update(c, buf + 3, 500);
  aal_data_crc32_update(c, buf + 503, 497);
  ck_assert_uint_eq(c->crc, whole);
  free(c);
  ck_assert(aal_data_fnv1a64(AAL_FNV1A64_INIT, "", 0) == UINT64_C(0xcbf29ce484222325));
  ck_assert(aal_data_fnv1a64(AAL_FNV1A64_INIT, "a", 1) == UINT64_C(0xaf63dc4c8601ec8c));
  ck_assert(aal_data_fnv1a64(AAL_FNV1A64_INIT, "foobar", 6) == UINT64_C(0x85944171f73967e8));
}
END_TEST

/* ------------------------------------------------------------------ loading */

typedef struct {
  double mean;
  int max;
} cmp_result;

static cmp_result compare(const uint8_t *a, const uint8_t *b)
{
  long s = 0;
  int mx = 0;
  for (size_t k = 0; k < AAL_TINY_IMAGE_BYTES; k++) {
    const int d = abs((int)a[k] - (int)b[k]);
    s += d;
    mx = d > mx ? d : mx;
  }
  return (cmp_result){(double)s / AAL_TINY_IMAGE_BYTES, mx};
}

/* Components in a JPEG file's frame header (1 for grayscale). */
static int jpeg_components(const char *path)
{
  FILE *f = fopen(path, "rb");
  ck_assert_ptr_nonnull(f);
  struct jpeg_decompress_struct d;
  struct jpeg_error_mgr e;
  d.err = jpeg_std_error(&e);
  jpeg_create_decompress(&d);
  jpeg_stdio_src(&d, f);
  jpeg_read_header(&d, TRUE);
  const int n = d.num_components;
  jpeg_destroy_decompress(&d);
  fclose(f);
  return n;
}

START_TEST(test_load_counts_labels_pixels)
{
  const unsigned long seed = test_seed();
  tree t;
  tree_make(&t, seed);
  aal_data_set ds;
  aal_error err;
  aal_error_clear(&err);
  ck_assert_msg(aal_data_read_tree(t.data, &ds, NULL, &err) == AAL_OK, "%s", err.msg);
  ck_assert_int_eq(ds.classes, CLASSES);
  ck_assert_uint_eq(ds.train.n, CLASSES * PER_CLASS);
  ck_assert_uint_eq(ds.val.n, NVAL);
  ck_assert_str_eq(ds.wnids[0], "n90000000");
  ck_assert_str_eq(ds.wnids[2], "n90000002");
  ck_assert(strstr(ds.words[1], "synthetic class 1") != NULL);
  ck_assert_int_eq(ds.cache_status, AAL_DATA_CACHE_NONE);
  ck_assert_int_eq(ds.cache_rebuilt, 1);

  uint8_t gen[AAL_TINY_IMAGE_BYTES], other[AAL_TINY_IMAGE_BYTES];
  const size_t plane = (size_t)AAL_TINY_SIZE * AAL_TINY_SIZE;
  double worst_mean = 0, min_other = 1e9;
  int worst_max = 0, grays = 0, colour_seen = 0;
  /* train: by class, then name; names n9000000c_0 .. _5 sort in index order */
  for (size_t n = 0; n < ds.train.n; n++) {
    const int c = (int)(n / PER_CLASS), i = (int)(n % PER_CLASS);
    ck_assert_int_eq(ds.train.labels[n], c);
    int gray = 0;
    ck_assert_int_eq(aal_gen_image(seed, CLASSES, AAL_GEN_TRAIN, c, i, gen, &gray, &err),
                     AAL_OK);
    const uint8_t *dec = ds.train.pixels + n * AAL_TINY_IMAGE_BYTES;
    const cmp_result r = compare(dec, gen);
    ck_assert_msg(r.mean <= JPEG_MEAN_BOUND && r.max <= JPEG_MAX_BOUND,
                  "train class %d image %d: mean |err| %.3f, max %d", c, i, r.mean, r.max);
    worst_mean = r.mean > worst_mean ? r.mean : worst_mean;
    worst_max = r.max > worst_max ? r.max : worst_max;
    ck_assert_int_eq(aal_gen_image(seed, CLASSES, AAL_GEN_TRAIN, c, (i + 1) % PER_CLASS,
                                   other, NULL, &err), AAL_OK);
    const double om = compare(dec, other).mean;
    min_other = om < min_other ? om : min_other;
    ck_assert_int_eq(gray, (c + i) % 17 == 5);
    char rel[128], p[512];
    snprintf(rel, sizeof rel, "train/%s/images/%s_%d.JPEG", ds.wnids[c], ds.wnids[c], i);
    path_of(p, sizeof p, &t, rel);
    ck_assert_int_eq(jpeg_components(p), gray ? 1 : 3);
    int equal = 1;
    for (size_t k = 0; k < plane; k++)
      equal &= dec[k] == dec[plane + k] && dec[k] == dec[2 * plane + k];
    if (gray) {
      grays++;
      ck_assert_msg(equal, "grayscale JPEG class %d image %d did not come back R=G=B", c, i);
    } else {
      colour_seen += !equal;
    }
  }
  ck_assert_int_eq(grays, 3); /* (0,5), (1,4), (2,3) */
  ck_assert_int_eq(colour_seen, CLASSES * PER_CLASS - 3);
  /* val: names val_0 .. val_5 sort in index order; labels from the annotations */
  for (int j = 0; j < NVAL; j++) {
    int c = -1, gray = 0;
    ck_assert_int_eq(aal_gen_val_class(seed, CLASSES, VAL_PER_CLASS, j, &c, &err), AAL_OK);
    ck_assert_int_eq(ds.val.labels[j], c);
    ck_assert_int_eq(aal_gen_image(seed, CLASSES, AAL_GEN_VAL, c, j, gen, &gray, &err), AAL_OK);
    const cmp_result r = compare(ds.val.pixels + (size_t)j * AAL_TINY_IMAGE_BYTES, gen);
    ck_assert_msg(r.mean <= JPEG_MEAN_BOUND && r.max <= JPEG_MAX_BOUND,
                  "val image %d: mean |err| %.3f, max %d", j, r.mean, r.max);
    worst_mean = r.mean > worst_mean ? r.mean : worst_mean;
    worst_max = r.max > worst_max ? r.max : worst_max;
    ck_assert_int_eq(gray, j % 17 == 5);
  }
  int per_class[CLASSES] = {0};
  for (int j = 0; j < NVAL; j++)
    per_class[ds.val.labels[j]]++;
  for (int c = 0; c < CLASSES; c++)
    ck_assert_int_eq(per_class[c], VAL_PER_CLASS);
  ck_assert_msg(min_other > JPEG_MEAN_BOUND, "a different image is within the bound (%.3f)",
                min_other);
  fprintf(stderr, "test_data: JPEG error: worst mean |err| %.3f (bound %.1f), worst max "
          "|err| %d (bound %d); a different image: mean |err| >= %.2f\n", worst_mean,
          JPEG_MEAN_BOUND, worst_max, JPEG_MAX_BOUND, min_other);
  aal_data_free(&ds);
  tree_free(&t);
}
END_TEST

START_TEST(test_corrupt_truncated)
{
  tree t;
  tree_make(&t, test_seed());
  char p[512];
  path_of(p, sizeof p, &t, "train/n90000001/images/n90000001_2.JPEG");
  long len;
  unsigned char *b = slurp(p, &len);
  spit(p, b, len / 2);
  free(b);
  uint8_t img[AAL_TINY_IMAGE_BYTES];
  aal_error err;
  aal_error_clear(&err);
  ck_assert_int_eq(aal_data_decode_jpeg(p, img, &err), AAL_EFORMAT);
  ck_assert(strstr(err.msg, "n90000001_2.JPEG") != NULL);
  expect_load_error(&t, AAL_EFORMAT, "n90000001_2.JPEG", "Premature end");
  tree_free(&t);
}
END_TEST

START_TEST(test_corrupt_garbage)
{
  tree t;
  tree_make(&t, test_seed());
  char p[512];
  gsl_rng *r = gsl_rng_alloc(gsl_rng_mt19937);
  gsl_rng_set(r, 12345);
  /* garbage in the entropy-coded data (the middle third of the file) */
  path_of(p, sizeof p, &t, "val/images/val_4.JPEG");
  long len;
  unsigned char *b = slurp(p, &len);
  for (long i = len / 3; i < 2 * len / 3; i++)
    b[i] = (unsigned char)gsl_rng_uniform_int(r, 256);
  spit(p, b, len);
  expect_load_error(&t, AAL_EFORMAT, "val_4.JPEG", "JPEG");
  /* a file of garbage from the first byte */
  for (long i = 0; i < len; i++)
    b[i] = (unsigned char)gsl_rng_uniform_int(r, 256);
  spit(p, b, len);
  expect_load_error(&t, AAL_EFORMAT, "val_4.JPEG", "Not a JPEG");
  /* an empty file */
  spit(p, b, 0);
  expect_load_error(&t, AAL_EFORMAT, "val_4.JPEG", NULL);
  free(b);
  gsl_rng_free(r);
  tree_free(&t);
}
END_TEST

/* Rewrites val_annotations.txt through fn(line number, line, out). */
static void edit_annotations(const tree *t, void (*fn)(int, const char *, FILE *))
{
  char p[512];
  path_of(p, sizeof p, t, "val/val_annotations.txt");
  long len;
  char *b = (char *)slurp(p, &len);
  b[len] = '\0';
  FILE *f = fopen(p, "wb");
  ck_assert_ptr_nonnull(f);
  int lineno = 0;
  for (char *line = strtok(b, "\n"); line != NULL; line = strtok(NULL, "\n"))
    fn(++lineno, line, f);
  fclose(f);
  free(b);
}

static void drop_val_3(int lineno, const char *line, FILE *f)
{
  (void)lineno;
  if (strncmp(line, "val_3.JPEG\t", 11) != 0)
    fprintf(f, "%s\n", line);
}

static void unknown_on_line_3(int lineno, const char *line, FILE *f)
{
  if (lineno == 3) {
    const char *tab = strchr(line, '\t');
    fprintf(f, "%.*s\tn12345678%s\n", (int)(tab - line), line, strchr(tab + 1, '\t'));
  } else {
    fprintf(f, "%s\n", line);
  }
}

START_TEST(test_annotation_errors)
{
  tree t;
  tree_make(&t, test_seed());
  edit_annotations(&t, drop_val_3);
  expect_load_error(&t, AAL_EFORMAT, "val_3.JPEG", "val_annotations.txt");
  tree_free(&t);

  tree_make(&t, test_seed());
  edit_annotations(&t, unknown_on_line_3);
  expect_load_error(&t, AAL_EFORMAT, "line 3", "n12345678");
  tree_free(&t);

  /* an annotation whose image is missing */
  tree_make(&t, test_seed());
  char p[512];
  path_of(p, sizeof p, &t, "val/images/val_1.JPEG");
  ck_assert_int_eq(unlink(p), 0);
  expect_load_error(&t, AAL_EIO, "val_1.JPEG", "line 2");
  tree_free(&t);
}
END_TEST

START_TEST(test_missing_files)
{
  tree t;
  tree_make(&t, test_seed());
  char p[512];
  path_of(p, sizeof p, &t, "wnids.txt");
  ck_assert_int_eq(unlink(p), 0);
  expect_load_error(&t, AAL_EIO, "wnids.txt", NULL);
  tree_free(&t);

  tree_make(&t, test_seed());
  path_of(p, sizeof p, &t, "val/val_annotations.txt");
  ck_assert_int_eq(unlink(p), 0);
  expect_load_error(&t, AAL_EIO, "val_annotations.txt", NULL);
  tree_free(&t);

  /* words.txt is optional */
  tree_make(&t, test_seed());
  path_of(p, sizeof p, &t, "words.txt");
  ck_assert_int_eq(unlink(p), 0);
  aal_data_set ds;
  aal_error err;
  ck_assert_int_eq(aal_data_read_tree(t.data, &ds, NULL, &err), AAL_OK);
  ck_assert_str_eq(ds.words[0], "");
  aal_data_free(&ds);

  /* an empty class directory */
  for (int i = 0; i < PER_CLASS; i++) {
    char rel[128];
    snprintf(rel, sizeof rel, "train/n90000001/images/n90000001_%d.JPEG", i);
    path_of(p, sizeof p, &t, rel);
    ck_assert_int_eq(unlink(p), 0);
  }
  expect_load_error(&t, AAL_EFORMAT, "n90000001/images", "no JPEG");
  /* a class directory that does not exist */
  path_of(p, sizeof p, &t, "train/n90000001/images");
  ck_assert_int_eq(rmdir(p), 0);
  expect_load_error(&t, AAL_EIO, "n90000001/images", NULL);
  tree_free(&t);

  /* a duplicated wnid */
  tree_make(&t, test_seed());
  path_of(p, sizeof p, &t, "wnids.txt");
  const char dup[] = "n90000000\nn90000001\nn90000000\n";
  spit(p, dup, (long)strlen(dup));
  expect_load_error(&t, AAL_EFORMAT, "line 3", "repeats line 1");
  tree_free(&t);
}
END_TEST

/* A plain RGB JPEG of w x h, grey. */
static void write_jpeg(const char *path, int w, int h)
{
  FILE *f = fopen(path, "wb");
  ck_assert_ptr_nonnull(f);
  struct jpeg_compress_struct c;
  struct jpeg_error_mgr e;
  c.err = jpeg_std_error(&e);
  jpeg_create_compress(&c);
  jpeg_stdio_dest(&c, f);
  c.image_width = (JDIMENSION)w;
  c.image_height = (JDIMENSION)h;
  c.input_components = 3;
  c.in_color_space = JCS_RGB;
  jpeg_set_defaults(&c);
  jpeg_start_compress(&c, TRUE);
  JSAMPLE *row = malloc((size_t)w * 3);
  ck_assert_ptr_nonnull(row);
  memset(row, 128, (size_t)w * 3);
  while (c.next_scanline < c.image_height)
    jpeg_write_scanlines(&c, &row, 1);
  jpeg_finish_compress(&c);
  jpeg_destroy_compress(&c);
  free(row);
  fclose(f);
}

START_TEST(test_wrong_size)
{
  tree t;
  tree_make(&t, test_seed());
  char p[512];
  path_of(p, sizeof p, &t, "train/n90000002/images/n90000002_9.JPEG");
  write_jpeg(p, 48, 32);
  expect_load_error(&t, AAL_EFORMAT, "n90000002_9.JPEG", "48x32");
  tree_free(&t);
}
END_TEST

/* ------------------------------------------------------------------ the cache */

static int load_cached(const tree *t, const char *cache, aal_data_set *ds, char *logbuf,
                       size_t loglen)
{
  char *text = NULL;
  size_t len = 0;
  FILE *log = open_memstream(&text, &len);
  ck_assert_ptr_nonnull(log);
  aal_error err;
  aal_error_clear(&err);
  const int rc = aal_data_load(t->data, cache, ds, log, &err);
  fclose(log);
  snprintf(logbuf, loglen, "%s", text != NULL ? text : "");
  free(text);
  ck_assert_msg(rc == AAL_OK, "load: %s", err.msg);
  return rc;
}

static void flip_byte(const char *path, long offset)
{
  long len;
  unsigned char *b = slurp(path, &len);
  ck_assert(offset < len);
  b[offset] ^= 0x01;
  spit(path, b, len);
  free(b);
}

START_TEST(test_cache)
{
  tree t;
  tree_make(&t, test_seed());
  char cache[512], log[1024], p[512];
  path_of(cache, sizeof cache, &t, ".aal-cache.bin");
  aal_data_set ref, ds;
  aal_error err;
  ck_assert_int_eq(aal_data_read_tree(t.data, &ref, NULL, &err), AAL_OK);

  /* first load: no cache, decoded, written to the default path */
  load_cached(&t, NULL, &ds, log, sizeof log);
  ck_assert_int_eq(ds.cache_status, AAL_DATA_CACHE_NEW);
  ck_assert_int_eq(ds.cache_rebuilt, 1);
  ck_assert_int_eq(ds.cache_written, 1);
  ck_assert_int_eq(access(cache, R_OK), 0);
  ck_assert(ds.fingerprint == ref.fingerprint);
  aal_data_free(&ds);
  /* 72-byte header + per image a 4-byte label and 12288 pixel bytes */
  ck_assert_int_eq(file_size(cache), 72 + (CLASSES * PER_CLASS + NVAL) * (4 + 12288));

  /* second load: from the cache, the same data as decoding */
  load_cached(&t, NULL, &ds, log, sizeof log);
  ck_assert_int_eq(ds.cache_status, AAL_DATA_CACHE_HIT);
  ck_assert_int_eq(ds.cache_rebuilt, 0);
  ck_assert_int_eq(ds.cache_written, 0);
  ck_assert_uint_eq(ds.train.n, ref.train.n);
  ck_assert_uint_eq(ds.val.n, ref.val.n);
  ck_assert(memcmp(ds.train.pixels, ref.train.pixels, ref.train.n * AAL_TINY_IMAGE_BYTES) == 0);
  ck_assert(memcmp(ds.val.pixels, ref.val.pixels, ref.val.n * AAL_TINY_IMAGE_BYTES) == 0);
  ck_assert(memcmp(ds.val.labels, ref.val.labels, ref.val.n * sizeof(int)) == 0);
  ck_assert(strstr(log, "from the cache") != NULL);
  aal_data_free(&ds);

  /* touching a file (a new mtime) changes the fingerprint: rebuilt, then a hit again */
  path_of(p, sizeof p, &t, "train/n90000000/images/n90000000_3.JPEG");
  const struct timespec times[2] = {{1000000000, 0}, {1000000000, 123}};
  ck_assert_int_eq(utimensat(AT_FDCWD, p, times, 0), 0);
  load_cached(&t, NULL, &ds, log, sizeof log);
  ck_assert_int_eq(ds.cache_status, AAL_DATA_CACHE_STALE);
  ck_assert_int_eq(ds.cache_rebuilt, 1);
  ck_assert(strstr(log, "stale") != NULL);
  aal_data_free(&ds);
  load_cached(&t, NULL, &ds, log, sizeof log);
  ck_assert_int_eq(ds.cache_status, AAL_DATA_CACHE_HIT);
  aal_data_free(&ds);

  /* adding a file: rebuilt, with one more image */
  long len;
  unsigned char *b = slurp(p, &len);
  path_of(p, sizeof p, &t, "train/n90000000/images/n90000000_extra.JPEG");
  spit(p, b, len);
  free(b);
  load_cached(&t, NULL, &ds, log, sizeof log);
  ck_assert_int_eq(ds.cache_status, AAL_DATA_CACHE_STALE);
  ck_assert_uint_eq(ds.train.n, CLASSES * PER_CLASS + 1);
  aal_data_free(&ds);

  /* a flipped payload byte (a pixel) fails the CRC: never trusted, rebuilt */
  flip_byte(cache, 72 + (CLASSES * PER_CLASS + 1) * 4 + 5000);
  load_cached(&t, NULL, &ds, log, sizeof log);
  ck_assert_int_eq(ds.cache_status, AAL_DATA_CACHE_CORRUPT);
  ck_assert_int_eq(ds.cache_rebuilt, 1);
  ck_assert_int_eq(ds.cache_written, 1);
  ck_assert_msg(strstr(log, "corrupt") != NULL && strstr(log, "CRC") != NULL, "log: %s", log);
  aal_data_free(&ds);
  load_cached(&t, NULL, &ds, log, sizeof log);
  ck_assert_int_eq(ds.cache_status, AAL_DATA_CACHE_HIT);
  aal_data_free(&ds);

  /* a flipped header byte (a count), a flipped label, a truncated file */
  flip_byte(cache, 33);
  load_cached(&t, NULL, &ds, log, sizeof log);
  ck_assert_int_eq(ds.cache_status, AAL_DATA_CACHE_CORRUPT);
  aal_data_free(&ds);
  flip_byte(cache, 72 + 4 * 7);
  load_cached(&t, NULL, &ds, log, sizeof log);
  ck_assert_int_eq(ds.cache_status, AAL_DATA_CACHE_CORRUPT);
  aal_data_free(&ds);
  ck_assert_int_eq(truncate(cache, file_size(cache) - 100), 0);
  load_cached(&t, NULL, &ds, log, sizeof log);
  ck_assert_int_eq(ds.cache_status, AAL_DATA_CACHE_CORRUPT);
  aal_data_free(&ds);

  /* an explicit cache path elsewhere; no temp files are left behind */
  char other[512];
  snprintf(other, sizeof other, "%s/elsewhere.bin", t.root);
  load_cached(&t, other, &ds, log, sizeof log);
  ck_assert_int_eq(ds.cache_status, AAL_DATA_CACHE_NEW);
  aal_data_free(&ds);
  load_cached(&t, other, &ds, log, sizeof log);
  ck_assert_int_eq(ds.cache_status, AAL_DATA_CACHE_HIT);
  aal_data_free(&ds);
  DIR *d = opendir(t.root);
  ck_assert_ptr_nonnull(d);
  const struct dirent *e;
  while ((e = readdir(d)) != NULL)
    ck_assert_msg(strstr(e->d_name, ".tmp") == NULL, "temp file %s left", e->d_name);
  closedir(d);

  /* an unwritable cache location: the load still succeeds */
  snprintf(other, sizeof other, "%s/no-such-dir/cache.bin", t.root);
  load_cached(&t, other, &ds, log, sizeof log);
  ck_assert_int_eq(ds.cache_written, 0);
  ck_assert(strstr(log, "warning") != NULL);
  aal_data_free(&ds);

  /* a cache path naming a file that is not a cache (the tree's own wnids.txt): the load
   * succeeds, the file is left as it was, and the warning names it */
  path_of(p, sizeof p, &t, "wnids.txt");
  long before_len, after_len;
  unsigned char *before = slurp(p, &before_len);
  load_cached(&t, p, &ds, log, sizeof log);
  ck_assert_int_eq(ds.cache_written, 0);
  ck_assert_msg(strstr(log, p) && strstr(log, "not an aal data cache"), "log: %s", log);
  aal_data_free(&ds);
  unsigned char *after = slurp(p, &after_len);
  ck_assert_int_eq(before_len, after_len);
  ck_assert(memcmp(before, after, (size_t)before_len) == 0);
  free(before);
  free(after);

  aal_data_free(&ref);
  tree_free(&t);
}
END_TEST

/* An image rewritten in place with other pixels, the same byte size and its old mtime
 * put back (utimensat) must not be read from the cache: its ctime changed (issue 15,
 * finding 7).  The new content is another image of the tree (a smaller one) padded to
 * the target's size with a JPEG comment segment (FF FE, length) after SOI, which libjpeg
 * skips, so its decoded pixels are exactly the donor's. */
START_TEST(test_cache_same_size_mtime)
{
  tree t;
  tree_make(&t, test_seed());
  aal_data_set ref, ds;
  aal_error err;
  aal_error_clear(&err);
  ck_assert_msg(aal_data_read_tree(t.data, &ref, NULL, &err) == AAL_OK, "%s", err.msg);
  char log[1024], pa[512], pb[512], rel[128];
  load_cached(&t, NULL, &ds, log, sizeof log);
  ck_assert_int_eq(ds.cache_status, AAL_DATA_CACHE_NEW);
  aal_data_free(&ds);

  /* the target: the largest train image; the donor: one at least 4 bytes smaller */
  long size[CLASSES * PER_CLASS], target = -1, donor = -1;
  for (int n = 0; n < CLASSES * PER_CLASS; n++) {
    const int c = n / PER_CLASS, i = n % PER_CLASS;
    snprintf(rel, sizeof rel, "train/n9000000%d/images/n9000000%d_%d.JPEG", c, c, i);
    path_of(pa, sizeof pa, &t, rel);
    size[n] = file_size(pa);
    if (target < 0 || size[n] > size[target])
      target = n;
  }
  for (int n = 0; n < CLASSES * PER_CLASS && donor < 0; n++)
    if (size[n] + 4 <= size[target] && size[target] - size[n] - 2 <= 65535)
      donor = n;
  ck_assert_msg(donor >= 0, "no train image 4..65537 bytes smaller than %ld", size[target]);
  snprintf(rel, sizeof rel, "train/n9000000%ld/images/n9000000%ld_%ld.JPEG",
           target / PER_CLASS, target / PER_CLASS, target % PER_CLASS);
  path_of(pa, sizeof pa, &t, rel);
  snprintf(rel, sizeof rel, "train/n9000000%ld/images/n9000000%ld_%ld.JPEG",
           donor / PER_CLASS, donor / PER_CLASS, donor % PER_CLASS);
  path_of(pb, sizeof pb, &t, rel);
  const size_t img = AAL_TINY_IMAGE_BYTES;
  ck_assert_msg(memcmp(ref.train.pixels + (size_t)target * img,
                       ref.train.pixels + (size_t)donor * img, img) != 0,
                "images %ld and %ld decode alike", target, donor);
  struct stat before, after;
  ck_assert_int_eq(stat(pa, &before), 0);

  long lb;
  unsigned char *b = slurp(pb, &lb);
  const long com = size[target] - lb - 2; /* the comment's length field (itself included) */
  unsigned char *out = malloc((size_t)size[target]);
  ck_assert_ptr_nonnull(out);
  memcpy(out, b, 2); /* SOI */
  out[2] = 0xFF;
  out[3] = 0xFE;
  out[4] = (unsigned char)(com >> 8);
  out[5] = (unsigned char)(com & 0xff);
  memset(out + 6, 'x', (size_t)com - 2);
  memcpy(out + 4 + com, b + 2, (size_t)lb - 2);
  spit(pa, out, size[target]); /* in place: same inode, truncated and written */
  free(out);
  free(b);
  /* the old mtime back; ctime moves with every change, utimensat's own included (retry
   * on a clock that has not ticked since the tree was written) */
  const struct timespec times[2] = {before.st_atim, before.st_mtim};
  for (int tries = 0; tries < 200; tries++) {
    ck_assert_int_eq(utimensat(AT_FDCWD, pa, times, 0), 0);
    ck_assert_int_eq(stat(pa, &after), 0);
    if (after.st_ctim.tv_sec != before.st_ctim.tv_sec ||
        after.st_ctim.tv_nsec != before.st_ctim.tv_nsec)
      break;
    struct timespec ms10 = {0, 10000000};
    nanosleep(&ms10, NULL);
  }
  ck_assert_int_eq(after.st_size, before.st_size);
  ck_assert_int_eq(after.st_mtim.tv_sec, before.st_mtim.tv_sec);
  ck_assert_int_eq(after.st_mtim.tv_nsec, before.st_mtim.tv_nsec);
  ck_assert_int_eq(after.st_ino, before.st_ino);

  /* stale: decoded again, and the target now holds the donor's pixels */
  load_cached(&t, NULL, &ds, log, sizeof log);
  ck_assert_msg(ds.cache_status == AAL_DATA_CACHE_STALE, "status %s, want stale; log: %s",
                aal_data_cache_status_name(ds.cache_status), log);
  ck_assert(memcmp(ds.train.pixels + (size_t)target * img,
                   ref.train.pixels + (size_t)donor * img, img) == 0);
  ck_assert(ds.fingerprint != ref.fingerprint);
  aal_data_free(&ds);
  load_cached(&t, NULL, &ds, log, sizeof log);
  ck_assert_int_eq(ds.cache_status, AAL_DATA_CACHE_HIT);
  ck_assert(memcmp(ds.train.pixels + (size_t)target * img,
                   ref.train.pixels + (size_t)donor * img, img) == 0);
  fprintf(stderr, "test_data: image %ld (%ld bytes) rewritten with image %ld (%ld bytes + "
          "a %ld-byte comment), mtime kept: %s\n", target, size[target], donor, lb, com + 2,
          "stale, decoded again");
  aal_data_free(&ds);
  aal_data_free(&ref);
  tree_free(&t);
}
END_TEST

/* ------------------------------------------------------------------ the generator */

/* Compares every file under a with the same relative path under b; returns the count. */
static int compare_trees(const char *a, const char *b)
{
  DIR *d = opendir(a);
  ck_assert_ptr_nonnull(d);
  int files = 0;
  const struct dirent *e;
  while ((e = readdir(d)) != NULL) {
    if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0)
      continue;
    char pa[1024], pb[1024];
    snprintf(pa, sizeof pa, "%s/%s", a, e->d_name);
    snprintf(pb, sizeof pb, "%s/%s", b, e->d_name);
    struct stat st;
    ck_assert_int_eq(lstat(pa, &st), 0);
    if (S_ISDIR(st.st_mode)) {
      files += compare_trees(pa, pb);
      continue;
    }
    long la, lb;
    unsigned char *ba = slurp(pa, &la), *bb = slurp(pb, &lb);
    ck_assert_msg(la == lb && memcmp(ba, bb, (size_t)la) == 0, "%s and %s differ", pa, pb);
    free(ba);
    free(bb);
    files++;
  }
  closedir(d);
  return files;
}

START_TEST(test_gen_deterministic)
{
  const unsigned long seed = test_seed();
  tree t1, t2, t3;
  tree_make(&t1, seed);
  tree_make(&t2, seed);
  tree_make(&t3, seed + 1);
  /* wnids, words, annotations, 3 boxes files, 18 + 6 JPEGs; both directions */
  ck_assert_int_eq(compare_trees(t1.data, t2.data), 3 + 3 + CLASSES * PER_CLASS + NVAL);
  ck_assert_int_eq(compare_trees(t2.data, t1.data), 3 + 3 + CLASSES * PER_CLASS + NVAL);
  char p1[512], p3[512];
  path_of(p1, sizeof p1, &t1, "train/n90000000/images/n90000000_0.JPEG");
  path_of(p3, sizeof p3, &t3, "train/n90000000/images/n90000000_0.JPEG");
  long l1, l3;
  unsigned char *b1 = slurp(p1, &l1), *b3 = slurp(p3, &l3);
  ck_assert(l1 != l3 || memcmp(b1, b3, (size_t)l1) != 0);
  free(b1);
  free(b3);
  tree_free(&t1);
  tree_free(&t2);
  tree_free(&t3);
}
END_TEST

START_TEST(test_gen_bad_args)
{
  tree t;
  tree_make(&t, test_seed());
  aal_error err;
  aal_error_clear(&err);
  /* a non-empty directory is refused */
  ck_assert_int_eq(aal_gen_data(t.data, 2, 2, 1, 1, NULL, &err), AAL_EINVAL);
  ck_assert(strstr(err.msg, "not empty") != NULL);
  char p[512];
  snprintf(p, sizeof p, "%s/new", t.root);
  ck_assert_int_eq(aal_gen_data(p, 0, 2, 1, 1, NULL, &err), AAL_EINVAL);
  ck_assert(strstr(err.msg, "classes") != NULL);
  ck_assert_int_eq(aal_gen_data(p, 2, 0, 1, 1, NULL, &err), AAL_EINVAL);
  ck_assert_int_eq(aal_gen_data(p, 2, 2, 0, 1, NULL, &err), AAL_EINVAL);
  uint8_t img[AAL_TINY_IMAGE_BYTES];
  ck_assert_int_eq(aal_gen_image(1, 3, AAL_GEN_TRAIN, 3, 0, img, NULL, &err), AAL_EINVAL);
  int c;
  ck_assert_int_eq(aal_gen_val_class(1, 3, 2, 6, &c, &err), AAL_EINVAL);
  tree_free(&t);
}
END_TEST

/* ------------------------------------------------------------------ Fashion-MNIST */

/* A miniature Fashion-MNIST written here with zlib, in IDX as the format defines it:
 * 5 train and 3 test images of 28x28 with pixels drawn from the test seed (never all
 * zero), and labels drawn from 0..9. */
enum { FX_TRAIN = 5, FX_TEST = 3, FX_SIDE = 28, FX_PIXELS = FX_SIDE * FX_SIDE };

typedef struct {
  char dir[256];
  uint8_t train_px[FX_TRAIN][FX_PIXELS], test_px[FX_TEST][FX_PIXELS];
  uint8_t train_lab[FX_TRAIN], test_lab[FX_TEST];
} idx_fixture;

static void put_be32(unsigned char *p, uint32_t v)
{
  p[0] = (unsigned char)(v >> 24);
  p[1] = (unsigned char)(v >> 16);
  p[2] = (unsigned char)(v >> 8);
  p[3] = (unsigned char)v;
}

static void write_gz(const char *path, const void *data, size_t len)
{
  gzFile f = gzopen(path, "wb");
  ck_assert_ptr_nonnull(f);
  ck_assert_int_eq(gzwrite(f, data, (unsigned)len), (int)len);
  ck_assert_int_eq(gzclose(f), Z_OK);
}

/* An IDX images file: magic, count, rows, cols, then the pixels (rows x cols each). */
static unsigned char *idx_images(uint32_t magic, uint32_t n, uint32_t rows, uint32_t cols,
                                 const uint8_t *pixels, size_t npixels, size_t *len)
{
  *len = 16 + npixels;
  unsigned char *b = malloc(*len);
  ck_assert_ptr_nonnull(b);
  put_be32(b, magic);
  put_be32(b + 4, n);
  put_be32(b + 8, rows);
  put_be32(b + 12, cols);
  memcpy(b + 16, pixels, npixels);
  return b;
}

static unsigned char *idx_labels(uint32_t magic, uint32_t n, const uint8_t *labels,
                                 size_t nlabels, size_t *len)
{
  *len = 8 + nlabels;
  unsigned char *b = malloc(*len);
  ck_assert_ptr_nonnull(b);
  put_be32(b, magic);
  put_be32(b + 4, n);
  memcpy(b + 8, labels, nlabels);
  return b;
}

static void fx_path(char *buf, size_t len, const idx_fixture *fx, const char *name)
{
  snprintf(buf, len, "%s/%s", fx->dir, name);
}

/* Writes one of the four files of fx, gzip-compressed (name ends in .gz) or not. */
static void fx_write(const idx_fixture *fx, const char *name, const unsigned char *b, size_t len)
{
  char path[512];
  fx_path(path, sizeof path, fx, name);
  const size_t l = strlen(name);
  if (l > 3 && strcmp(name + l - 3, ".gz") == 0)
    write_gz(path, b, len);
  else
    spit(path, b, (long)len);
}

static void fx_write_split(const idx_fixture *fx, const char *prefix, const char *suffix)
{
  const int train = strcmp(prefix, "train") == 0;
  const uint32_t n = train ? FX_TRAIN : FX_TEST;
  size_t len;
  char name[64];
  unsigned char *b = idx_images(0x803, n, FX_SIDE, FX_SIDE,
                                train ? &fx->train_px[0][0] : &fx->test_px[0][0],
                                n * FX_PIXELS, &len);
  snprintf(name, sizeof name, "%s-images-idx3-ubyte%s", prefix, suffix);
  fx_write(fx, name, b, len);
  free(b);
  b = idx_labels(0x801, n, train ? fx->train_lab : fx->test_lab, n, &len);
  snprintf(name, sizeof name, "%s-labels-idx1-ubyte%s", prefix, suffix);
  fx_write(fx, name, b, len);
  free(b);
}

/* A new fixture directory with random content; gz: write the .gz names, else the plain. */
static void fx_make(idx_fixture *fx, unsigned long seed, int gz)
{
  strcpy(fx->dir, "/tmp/aal-test-idx-XXXXXX");
  ck_assert_ptr_nonnull(mkdtemp(fx->dir));
  gsl_rng *r = gsl_rng_alloc(gsl_rng_mt19937);
  ck_assert_ptr_nonnull(r);
  gsl_rng_set(r, seed);
  long nonzero = 0;
  for (int i = 0; i < FX_TRAIN; i++)
    for (int k = 0; k < FX_PIXELS; k++)
      nonzero += (fx->train_px[i][k] = (uint8_t)gsl_rng_uniform_int(r, 256)) != 0;
  for (int i = 0; i < FX_TEST; i++)
    for (int k = 0; k < FX_PIXELS; k++)
      nonzero += (fx->test_px[i][k] = (uint8_t)gsl_rng_uniform_int(r, 256)) != 0;
  for (int i = 0; i < FX_TRAIN; i++)
    fx->train_lab[i] = (uint8_t)gsl_rng_uniform_int(r, 10);
  for (int i = 0; i < FX_TEST; i++)
    fx->test_lab[i] = (uint8_t)gsl_rng_uniform_int(r, 10);
  gsl_rng_free(r);
  ck_assert_int_gt(nonzero, (FX_TRAIN + FX_TEST) * FX_PIXELS / 2);
  fx_write_split(fx, "train", gz ? ".gz" : "");
  fx_write_split(fx, "t10k", gz ? ".gz" : "");
}

/* Every loaded pixel against the written one at its padded place, the pad zero. */
static long fx_compare_split(const aal_data_split *sp, const uint8_t *px, const uint8_t *lab,
                             int n)
{
  const int S = AAL_FMNIST_SIZE, B = AAL_FMNIST_BORDER;
  long bad = sp->n != (size_t)n;
  for (int i = 0; i < n && !bad; i++) {
    const uint8_t *img = sp->pixels + (size_t)i * S * S;
    for (int y = 0; y < S; y++)
      for (int x = 0; x < S; x++) {
        const int iy = y - B, ix = x - B;
        const int inside = iy >= 0 && iy < FX_SIDE && ix >= 0 && ix < FX_SIDE;
        bad += img[y * S + x] != (inside ? px[(size_t)i * FX_PIXELS + iy * FX_SIDE + ix] : 0);
      }
    bad += sp->labels[i] != lab[i];
  }
  return bad;
}

static void fx_check_loaded(const idx_fixture *fx, const aal_data_set *ds)
{
  ck_assert_int_eq(ds->format, AAL_DATA_FASHION_MNIST);
  ck_assert_int_eq(ds->geom.channels, 1);
  ck_assert_int_eq(ds->geom.size, 32);
  ck_assert_int_eq(ds->geom.border, 2);
  ck_assert_int_eq(ds->classes, 10);
  static const char *const words[10] = {"T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
                                        "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot"};
  for (int k = 0; k < 10; k++) {
    ck_assert_str_eq(ds->words[k], words[k]);
    char w[4];
    snprintf(w, sizeof w, "%d", k);
    ck_assert_str_eq(ds->wnids[k], w);
  }
  ck_assert_int_eq(fx_compare_split(&ds->train, &fx->train_px[0][0], fx->train_lab, FX_TRAIN), 0);
  ck_assert_int_eq(fx_compare_split(&ds->val, &fx->test_px[0][0], fx->test_lab, FX_TEST), 0);
}

START_TEST(test_fmnist_read)
{
  idx_fixture fx;
  fx_make(&fx, test_seed(), 1);
  ck_assert(aal_fmnist_detect(fx.dir));
  aal_data_set ds;
  aal_error err;
  aal_error_clear(&err);
  ck_assert_msg(aal_fmnist_read(fx.dir, &ds, NULL, &err) == AAL_OK, "%s", err.msg);
  fx_check_loaded(&fx, &ds);
  const uint64_t fp = ds.fingerprint;
  aal_data_free(&ds);

  /* the same files without .gz read the same (and hash the same content) */
  idx_fixture plain;
  fx_make(&plain, test_seed(), 0);
  ck_assert(aal_fmnist_detect(plain.dir));
  ck_assert_msg(aal_fmnist_read(plain.dir, &ds, NULL, &err) == AAL_OK, "%s", err.msg);
  fx_check_loaded(&plain, &ds);
  ck_assert(ds.fingerprint == fp);
  aal_data_free(&ds);
  /* a file of two gzip members (as `cat a.gz b.gz` makes) reads as their concatenation */
  {
    char path[512];
    size_t len;
    unsigned char *b = idx_labels(0x801, FX_TRAIN, fx.train_lab, FX_TRAIN, &len);
    fx_path(path, sizeof path, &fx, "train-labels-idx1-ubyte.gz");
    write_gz(path, b, 6);
    long l1;
    unsigned char *first = slurp(path, &l1);
    write_gz(path, b + 6, len - 6);
    long l2;
    unsigned char *second = slurp(path, &l2);
    unsigned char *both = malloc((size_t)(l1 + l2));
    ck_assert_ptr_nonnull(both);
    memcpy(both, first, (size_t)l1);
    memcpy(both + l1, second, (size_t)l2);
    spit(path, both, l1 + l2);
    free(both);
    free(first);
    free(second);
    free(b);
    ck_assert_msg(aal_fmnist_read(fx.dir, &ds, NULL, &err) == AAL_OK, "%s", err.msg);
    fx_check_loaded(&fx, &ds);
    ck_assert(ds.fingerprint == fp);
    aal_data_free(&ds);
  }
  /* a different seed is different content */
  rm_rf(plain.dir);
  fx_make(&plain, test_seed() + 1, 0);
  ck_assert_msg(aal_fmnist_read(plain.dir, &ds, NULL, &err) == AAL_OK, "%s", err.msg);
  ck_assert(ds.fingerprint != fp);
  aal_data_free(&ds);
  rm_rf(plain.dir);

  /* a Tiny ImageNet tree is not Fashion-MNIST */
  tree t;
  tree_make(&t, test_seed());
  ck_assert(!aal_fmnist_detect(t.data));
  tree_free(&t);
  rm_rf(fx.dir);
}
END_TEST

/* Reads fx's directory and expects failure rc with the file name (and needle) in the
 * message, and ds left empty. */
static void fx_expect_error(const idx_fixture *fx, int rc, const char *file, const char *needle)
{
  aal_data_set ds;
  aal_error err;
  aal_error_clear(&err);
  const int got = aal_fmnist_read(fx->dir, &ds, NULL, &err);
  ck_assert_msg(got == rc, "expected %s, got %s: %s", aal_status_name(rc),
                aal_status_name(got), err.msg);
  char path[512];
  fx_path(path, sizeof path, fx, file);
  ck_assert_msg(strstr(err.msg, path) != NULL, "message lacks '%s': %s", path, err.msg);
  ck_assert_msg(needle == NULL || strstr(err.msg, needle) != NULL, "message lacks '%s': %s",
                needle, err.msg);
  ck_assert(ds.train.pixels == NULL && ds.val.pixels == NULL && ds.classes == 0);
  fprintf(stderr, "test_data: refused as expected: %s\n", err.msg);
}

/* Each damage on a fresh fixture; the message names the damaged file. */
START_TEST(test_fmnist_errors)
{
  const unsigned long seed = test_seed();
  idx_fixture fx;
  size_t len;
  unsigned char *b;
  char path[512];

  /* a bad magic (an images file with 0x00000804) */
  fx_make(&fx, seed, 1);
  b = idx_images(0x804, FX_TRAIN, FX_SIDE, FX_SIDE, &fx.train_px[0][0], sizeof fx.train_px, &len);
  fx_write(&fx, "train-images-idx3-ubyte.gz", b, len);
  free(b);
  fx_expect_error(&fx, AAL_EFORMAT, "train-images-idx3-ubyte.gz", "bad magic 0x00000804");
  rm_rf(fx.dir);

  /* the gzip file cut in half */
  fx_make(&fx, seed, 1);
  fx_path(path, sizeof path, &fx, "t10k-images-idx3-ubyte.gz");
  long flen;
  b = slurp(path, &flen);
  spit(path, b, flen / 2);
  free(b);
  fx_expect_error(&fx, AAL_EFORMAT, "t10k-images-idx3-ubyte.gz", "truncated gzip stream");
  rm_rf(fx.dir);

  /* the gzip file without its last 4 bytes (the length of the trailer): all the data is
   * there, the stream is not whole */
  fx_make(&fx, seed, 1);
  fx_path(path, sizeof path, &fx, "train-labels-idx1-ubyte.gz");
  b = slurp(path, &flen);
  spit(path, b, flen - 4);
  free(b);
  fx_expect_error(&fx, AAL_EFORMAT, "train-labels-idx1-ubyte.gz", "gzip");
  rm_rf(fx.dir);

  /* bytes after the gzip stream (zlib's gzread would skip them) */
  fx_make(&fx, seed, 1);
  fx_path(path, sizeof path, &fx, "t10k-labels-idx1-ubyte.gz");
  b = slurp(path, &flen);
  b = realloc(b, (size_t)flen + 4);
  ck_assert_ptr_nonnull(b);
  memcpy(b + flen, "JUNK", 4);
  spit(path, b, flen + 4);
  free(b);
  fx_expect_error(&fx, AAL_EFORMAT, "t10k-labels-idx1-ubyte.gz",
                  "trailing bytes after the gzip stream");
  rm_rf(fx.dir);

  /* one compressed byte changed: zlib's checks (CRC or the code itself) refuse it */
  fx_make(&fx, seed, 1);
  fx_path(path, sizeof path, &fx, "train-images-idx3-ubyte.gz");
  b = slurp(path, &flen);
  b[flen / 2] ^= 0x55;
  spit(path, b, flen);
  free(b);
  fx_expect_error(&fx, AAL_EFORMAT, "train-images-idx3-ubyte.gz", "corrupt gzip data");
  rm_rf(fx.dir);

  /* a valid gzip whose payload stops inside the last image */
  fx_make(&fx, seed, 1);
  b = idx_images(0x803, FX_TRAIN, FX_SIDE, FX_SIDE, &fx.train_px[0][0],
                 sizeof fx.train_px - FX_PIXELS / 2, &len);
  fx_write(&fx, "train-images-idx3-ubyte.gz", b, len);
  free(b);
  fx_expect_error(&fx, AAL_EFORMAT, "train-images-idx3-ubyte.gz",
                  "the data ends in image 4 (392 of 784 bytes)");
  rm_rf(fx.dir);

  /* bytes after the last image */
  fx_make(&fx, seed, 1);
  {
    uint8_t more[FX_TRAIN * FX_PIXELS + 3];
    memcpy(more, fx.train_px, sizeof fx.train_px);
    memcpy(more + sizeof fx.train_px, "abc", 3);
    b = idx_images(0x803, FX_TRAIN, FX_SIDE, FX_SIDE, more, sizeof more, &len);
  }
  fx_write(&fx, "train-images-idx3-ubyte.gz", b, len);
  free(b);
  fx_expect_error(&fx, AAL_EFORMAT, "train-images-idx3-ubyte.gz", "trailing bytes after the 5 images");
  rm_rf(fx.dir);

  /* 4 labels for 5 images: both files named */
  fx_make(&fx, seed, 1);
  b = idx_labels(0x801, FX_TRAIN - 1, fx.train_lab, FX_TRAIN - 1, &len);
  fx_write(&fx, "train-labels-idx1-ubyte.gz", b, len);
  free(b);
  fx_expect_error(&fx, AAL_EFORMAT, "train-images-idx3-ubyte.gz", "holds 5 images but");
  fx_expect_error(&fx, AAL_EFORMAT, "train-labels-idx1-ubyte.gz", "holds 4 labels");
  rm_rf(fx.dir);

  /* a label of 10 */
  fx_make(&fx, seed, 1);
  {
    uint8_t lab[FX_TEST];
    memcpy(lab, fx.test_lab, sizeof lab);
    lab[1] = 10;
    b = idx_labels(0x801, FX_TEST, lab, FX_TEST, &len);
  }
  fx_write(&fx, "t10k-labels-idx1-ubyte.gz", b, len);
  free(b);
  fx_expect_error(&fx, AAL_EFORMAT, "t10k-labels-idx1-ubyte.gz", "label 10 of item 1 is outside 0..9");
  rm_rf(fx.dir);

  /* 27x28 images (the same bytes, as 5 images of 27x28 and change) */
  fx_make(&fx, seed, 1);
  b = idx_images(0x803, FX_TRAIN, 27, FX_SIDE, &fx.train_px[0][0], (size_t)FX_TRAIN * 27 * 28, &len);
  fx_write(&fx, "train-images-idx3-ubyte.gz", b, len);
  free(b);
  fx_expect_error(&fx, AAL_EFORMAT, "train-images-idx3-ubyte.gz", "images are 27x28, expected 28x28");
  rm_rf(fx.dir);

  /* a labels file that is not gzip data under a .gz name */
  fx_make(&fx, seed, 1);
  b = idx_labels(0x801, FX_TRAIN, fx.train_lab, FX_TRAIN, &len);
  fx_path(path, sizeof path, &fx, "train-labels-idx1-ubyte.gz");
  spit(path, b, (long)len);
  free(b);
  fx_expect_error(&fx, AAL_EFORMAT, "train-labels-idx1-ubyte.gz", "not gzip-compressed");
  rm_rf(fx.dir);

  /* a header that claims no images */
  fx_make(&fx, seed, 1);
  b = idx_labels(0x801, 0, fx.test_lab, 0, &len);
  fx_write(&fx, "t10k-labels-idx1-ubyte.gz", b, len);
  free(b);
  fx_expect_error(&fx, AAL_EFORMAT, "t10k-labels-idx1-ubyte.gz", "counts 0 items");
  rm_rf(fx.dir);

  /* a missing file */
  fx_make(&fx, seed, 1);
  fx_path(path, sizeof path, &fx, "t10k-labels-idx1-ubyte.gz");
  ck_assert_int_eq(unlink(path), 0);
  fx_expect_error(&fx, AAL_EIO, "t10k-labels-idx1-ubyte.gz", "cannot open");
  rm_rf(fx.dir);
}
END_TEST

/* The real Fashion-MNIST, when Debian's dataset-fashion-mnist is installed (or
 * $AAL_FMNIST_DIR names a copy): counts, balanced classes, and the normalisation
 * constants recomputed from the 60000 training images (28x28, without the pad). */
START_TEST(test_fmnist_real)
{
  const char *dir = getenv("AAL_FMNIST_DIR");
  if (dir == NULL || *dir == '\0')
    dir = "/usr/share/datasets/fashion-mnist";
  if (!aal_fmnist_detect(dir)) {
    fprintf(stderr, "test_data: %s holds no Fashion-MNIST: its check is skipped\n", dir);
    return;
  }
  aal_data_set ds;
  aal_error err;
  aal_error_clear(&err);
  ck_assert_msg(aal_fmnist_read(dir, &ds, NULL, &err) == AAL_OK, "%s", err.msg);
  ck_assert_uint_eq(ds.train.n, 60000);
  ck_assert_uint_eq(ds.val.n, 10000);
  long count[2][10] = {{0}};
  for (size_t i = 0; i < ds.train.n; i++)
    count[0][ds.train.labels[i]]++;
  for (size_t i = 0; i < ds.val.n; i++)
    count[1][ds.val.labels[i]]++;
  for (int k = 0; k < 10; k++) {
    ck_assert_int_eq(count[0][k], 6000);
    ck_assert_int_eq(count[1][k], 1000);
  }
  /* exact integer sums over the source pixels; the pad is zero */
  const int S = AAL_FMNIST_SIZE, B = AAL_FMNIST_BORDER;
  unsigned long long s = 0, s2 = 0, pad = 0;
  for (size_t i = 0; i < ds.train.n; i++) {
    const uint8_t *img = ds.train.pixels + i * (size_t)S * S;
    for (int y = 0; y < S; y++)
      for (int x = 0; x < S; x++) {
        const unsigned long long v = img[y * S + x];
        if (y < B || y >= S - B || x < B || x >= S - B) {
          pad += v;
          continue;
        }
        s += v;
        s2 += v * v;
      }
  }
  ck_assert(pad == 0);
  const double n = 60000.0 * 28 * 28, mean = (double)s / n / 255.0;
  const double sd = sqrt((double)s2 / n / (255.0 * 255.0) - mean * mean);
  fprintf(stderr, "test_data: Fashion-MNIST train pixels: mean %.6f std %.6f (constants "
          "%.4f, %.4f)\n", mean, sd, AAL_FMNIST_MEAN, AAL_FMNIST_STD);
  ck_assert_msg(fabs(mean - AAL_FMNIST_MEAN) < 1e-3, "mean %.6f", mean);
  ck_assert_msg(fabs(sd - AAL_FMNIST_STD) < 1e-3, "std %.6f", sd);
  aal_data_free(&ds);
}
END_TEST

/* ------------------------------------------------------------------ augmentation */

/* SPEC section 6 constants in units of 1e-4: the exact normalised value of v is the
 * rational (v/255 - m/1e4) / (s/1e4) = (1e4 v - 255 m) / (255 s). */
static const long ref_mean_e4[3] = {4802, 4481, 3975};
static const long ref_std_e4[3] = {2770, 2691, 2821};

/* Distance in ulps of x from the exact N/D: the residual x*D - N is computed with one
 * rounding by fma (it is small, so that rounding is negligible).  Exact rationals rather
 * than long double, which valgrind evaluates at double precision. */
static double ulps_from_rational(double x, long num, long den)
{
  const double resid = fma(x, (double)den, -(double)num);
  const double u = nextafter(fabs(x), INFINITY) - fabs(x);
  return fabs(resid) / (double)den / u;
}

static void random_image(gsl_rng *r, uint8_t *img)
{
  for (size_t k = 0; k < AAL_TINY_IMAGE_BYTES; k++)
    img[k] = (uint8_t)gsl_rng_uniform_int(r, 256);
}

START_TEST(test_augment_image)
{
  aal_data_geom g;
  aal_data_geom_tiny(&g);
  ck_assert(g.channels == 3 && g.size == 64 && g.border == 0);
  gsl_rng *r = gsl_rng_alloc(gsl_rng_mt19937);
  gsl_rng_set(r, test_seed());
  uint8_t *img = malloc(AAL_TINY_IMAGE_BYTES);
  double *out = malloc(AAL_TINY_IMAGE_BYTES * sizeof *out);
  double *id = malloc(AAL_TINY_IMAGE_BYTES * sizeof *id);
  ck_assert(img != NULL && out != NULL && id != NULL);
  random_image(r, img);
  const int S = AAL_TINY_SIZE, P = 4, W = S + 2 * P;

  /* normalisation: every value within 0.5 ulp (+ slack for the residual's rounding) of
   * the exact rational; the header's double constants are those decimals */
  const double hdr_mean[3] = {AAL_AUGMENT_MEAN_R, AAL_AUGMENT_MEAN_G, AAL_AUGMENT_MEAN_B};
  const double hdr_std[3] = {AAL_AUGMENT_STD_R, AAL_AUGMENT_STD_G, AAL_AUGMENT_STD_B};
  double worst = 0;
  for (int c = 0; c < 3; c++) {
    ck_assert(hdr_mean[c] == (double)ref_mean_e4[c] / 1e4);
    ck_assert(hdr_std[c] == (double)ref_std_e4[c] / 1e4);
    for (int v = 0; v < 256; v++) {
      const double x = aal_augment_normalise(&g, c, (uint8_t)v);
      const double u = ulps_from_rational(x, 10000L * v - 255L * ref_mean_e4[c],
                                          255L * ref_std_e4[c]);
      worst = u > worst ? u : worst;
    }
  }
  ck_assert_msg(worst <= 0.5 + 1e-6, "normalisation is %.3f ulps from the exact value", worst);
  fprintf(stderr, "test_data: normalisation: worst %.3f ulps from the exact value\n", worst);

  /* the identity crop without flip is normalisation only */
  /* (mismatches are counted and asserted once: a ck_assert per pixel costs Check an
   * allocation each in no-fork mode) */
  aal_augment_image(&g, img, P, P, 0, id);
  long bad = 0;
  for (size_t k = 0; k < AAL_TINY_IMAGE_BYTES; k++)
    bad += id[k] != aal_augment_normalise(&g, (int)(k / (size_t)(S * S)), img[k]);
  ck_assert_int_eq(bad, 0);

  /* every crop offset and flip against a naive pad-crop-flip of a 72x72 uint8 image */
  uint8_t *pad = calloc((size_t)3 * W * W, 1);
  ck_assert_ptr_nonnull(pad);
  for (int c = 0; c < 3; c++)
    for (int y = 0; y < S; y++)
      for (int x = 0; x < S; x++)
        pad[((size_t)c * W + y + P) * W + x + P] = img[((size_t)c * S + y) * S + x];
  for (int oy = 0; oy <= 2 * P; oy++)
    for (int ox = 0; ox <= 2 * P; ox++)
      for (int flip = 0; flip < 2; flip++) {
        aal_augment_image(&g, img, oy, ox, flip, out);
        for (int c = 0; c < 3; c++)
          for (int y = 0; y < S; y++)
            for (int x = 0; x < S; x++) {
              const int cx = flip ? S - 1 - x : x;
              const uint8_t v = pad[((size_t)c * W + y + oy) * W + cx + ox];
              bad += out[((size_t)c * S + y) * S + x] != aal_augment_normalise(&g, c, v);
            }
        ck_assert_msg(bad == 0, "crop (%d, %d) flip %d: %ld pixels differ", oy, ox, flip, bad);
        /* the flip is an exact mirror of the unflipped crop */
        if (flip) {
          double *plain = malloc(AAL_TINY_IMAGE_BYTES * sizeof *plain);
          ck_assert_ptr_nonnull(plain);
          aal_augment_image(&g, img, oy, ox, 0, plain);
          for (int c = 0; c < 3; c++)
            for (int y = 0; y < S; y++)
              for (int x = 0; x < S; x++)
                bad += out[((size_t)c * S + y) * S + x] !=
                       plain[((size_t)c * S + y) * S + (S - 1 - x)];
          free(plain);
          ck_assert_msg(bad == 0, "crop (%d, %d): flip is not a mirror", oy, ox);
        }
      }
  /* a shift by (dy, dx) = (oy - 4, ox - 4): out(y, x) = img(y + dy, x + dx), padding 0 */
  aal_augment_image(&g, img, 1, 7, 0, out);
  ck_assert(out[0] == aal_augment_normalise(&g, 0, 0));                 /* y - 3 < 0 */
  ck_assert(out[3 * S + 0] == aal_augment_normalise(&g, 0, img[0 * S + 3])); /* (3,0) <- (0,3) */
  ck_assert(out[3 * S + 61] == aal_augment_normalise(&g, 0, 0));        /* x + 3 = 64 */
  ck_assert(out[10 * S + 60] == aal_augment_normalise(&g, 0, img[7 * S + 63]));
  free(pad);
  free(img);
  free(out);
  free(id);
  gsl_rng_free(r);
}
END_TEST

START_TEST(test_augment_batch)
{
  const unsigned long seed = test_seed();
  aal_data_geom g;
  aal_data_geom_tiny(&g);
  gsl_rng *r = gsl_rng_alloc(gsl_rng_mt19937);
  gsl_rng_set(r, seed);
  enum { NIMG = 5, B = 4 };
  uint8_t *imgs = malloc((size_t)NIMG * AAL_TINY_IMAGE_BYTES);
  ck_assert_ptr_nonnull(imgs);
  for (int i = 0; i < NIMG; i++)
    random_image(r, imgs + (size_t)i * AAL_TINY_IMAGE_BYTES);
  const int labels[NIMG] = {4, 3, 2, 1, 0};
  const size_t idx[B] = {3, 0, 3, 4};
  aal_error err;
  aal_tensor *a = aal_tensor_new4(B, 3, 64, 64, &err);
  aal_tensor *b = aal_tensor_new4(B, 3, 64, 64, &err);
  ck_assert(a != NULL && b != NULL);
  int la[B], lb[B];

  /* the same seed gives the same batch; it is the documented sequence of draws */
  gsl_rng_set(r, seed);
  ck_assert_int_eq(aal_augment_train_batch(&g, imgs, labels, NIMG, idx, B, r, a, la, &err), AAL_OK);
  gsl_rng_set(r, seed);
  ck_assert_int_eq(aal_augment_train_batch(&g, imgs, labels, NIMG, idx, B, r, b, lb, &err), AAL_OK);
  ck_assert(memcmp(a->data, b->data, a->size * sizeof(double)) == 0);
  ck_assert(memcmp(la, lb, sizeof la) == 0);
  gsl_rng_set(r, seed);
  double *one = malloc(AAL_TINY_IMAGE_BYTES * sizeof *one);
  ck_assert_ptr_nonnull(one);
  int flips = 0;
  for (int k = 0; k < B; k++) {
    const int oy = (int)gsl_rng_uniform_int(r, 9), ox = (int)gsl_rng_uniform_int(r, 9);
    const int flip = (int)gsl_rng_uniform_int(r, 2);
    flips += flip;
    aal_augment_image(&g, imgs + idx[k] * AAL_TINY_IMAGE_BYTES, oy, ox, flip, one);
    ck_assert(memcmp(one, a->data + (size_t)k * AAL_TINY_IMAGE_BYTES,
                     AAL_TINY_IMAGE_BYTES * sizeof(double)) == 0);
    ck_assert_int_eq(la[k], labels[idx[k]]);
  }
  /* a different seed gives a different batch */
  gsl_rng_set(r, seed + 1);
  ck_assert_int_eq(aal_augment_train_batch(&g, imgs, labels, NIMG, idx, B, r, b, NULL, &err), AAL_OK);
  ck_assert(memcmp(a->data, b->data, a->size * sizeof(double)) != 0);

  /* evaluation: normalisation only */
  ck_assert_int_eq(aal_augment_eval_batch(&g, imgs, labels, NIMG, idx, B, a, la, &err), AAL_OK);
  for (int k = 0; k < B; k++) {
    aal_augment_image(&g, imgs + idx[k] * AAL_TINY_IMAGE_BYTES, 4, 4, 0, one);
    ck_assert(memcmp(one, a->data + (size_t)k * AAL_TINY_IMAGE_BYTES,
                     AAL_TINY_IMAGE_BYTES * sizeof(double)) == 0);
    ck_assert_int_eq(la[k], labels[idx[k]]);
  }

  /* errors: wrong shape, index out of range, labels wanted but absent */
  aal_tensor *bad = aal_tensor_new4(B + 1, 3, 64, 64, &err);
  ck_assert_int_eq(aal_augment_eval_batch(&g, imgs, labels, NIMG, idx, B, bad, NULL, &err),
                   AAL_ESHAPE);
  const size_t far[B] = {0, 1, 5, 2};
  ck_assert_int_eq(aal_augment_train_batch(&g, imgs, labels, NIMG, far, B, r, a, NULL, &err),
                   AAL_EINVAL);
  ck_assert(strstr(err.msg, "index 5") != NULL);
  ck_assert_int_eq(aal_augment_eval_batch(&g, imgs, NULL, NIMG, idx, B, a, la, &err), AAL_EINVAL);

  aal_tensor_release(a);
  aal_tensor_release(b);
  aal_tensor_release(bad);
  free(one);
  free(imgs);
  gsl_rng_free(r);
}
END_TEST

/* Fashion-MNIST's geometry, 1x32x32: a few random crops and flips against a naive
 * pad-crop-flip and the textbook normalisation written out here, and the batches. */
START_TEST(test_augment_fmnist)
{
  const unsigned long seed = test_seed();
  aal_data_geom g;
  aal_data_geom_fmnist(&g);
  ck_assert(g.channels == 1 && g.size == 32 && g.border == 2);
  ck_assert(g.mean_e4[0] == 2860 && g.std_e4[0] == 3530);
  ck_assert((double)g.mean_e4[0] / 1e4 == AAL_FMNIST_MEAN);
  ck_assert((double)g.std_e4[0] / 1e4 == AAL_FMNIST_STD);
  enum { S = 32, P = 4, W = S + 2 * P, NIMG = 3, B = 5 };
  gsl_rng *r = gsl_rng_alloc(gsl_rng_mt19937);
  gsl_rng_set(r, seed);
  uint8_t imgs[NIMG][S * S];
  long nonzero = 0;
  for (int i = 0; i < NIMG; i++)
    for (int k = 0; k < S * S; k++)
      nonzero += (imgs[i][k] = (uint8_t)gsl_rng_uniform_int(r, 256)) != 0;
  ck_assert_int_gt(nonzero, NIMG * S * S / 2);

  /* normalisation: within 0.5 ulp of the exact (1e4 v - 255*2860) / (255*3530), and
   * within 1e-12 of the textbook (v/255 - 0.2860) / 0.3530 */
  double worst = 0;
  for (int v = 0; v < 256; v++) {
    const double x = aal_augment_normalise(&g, 0, (uint8_t)v);
    const double u = ulps_from_rational(x, 10000L * v - 255L * 2860, 255L * 3530);
    worst = u > worst ? u : worst;
    ck_assert(fabs(x - ((double)v / 255.0 - 0.2860) / 0.3530) < 1e-12);
  }
  ck_assert_msg(worst <= 0.5 + 1e-6, "normalisation is %.3f ulps from the exact value", worst);

  /* single images: random offsets and flips against a naive 40x40 padded copy */
  static double out[S * S];
  for (int t = 0; t < 8; t++) {
    const int i = t % NIMG, oy = (int)gsl_rng_uniform_int(r, 9);
    const int ox = (int)gsl_rng_uniform_int(r, 9), flip = t % 2;
    uint8_t pad[W][W];
    memset(pad, 0, sizeof pad);
    for (int y = 0; y < S; y++)
      for (int x = 0; x < S; x++)
        pad[y + P][x + P] = imgs[i][y * S + x];
    aal_augment_image(&g, imgs[i], oy, ox, flip, out);
    long bad = 0;
    for (int y = 0; y < S; y++)
      for (int x = 0; x < S; x++) {
        const uint8_t v = pad[y + oy][(flip ? S - 1 - x : x) + ox];
        const double want = ((double)v / 255.0 - 0.2860) / 0.3530;
        bad += !(fabs(out[y * S + x] - want) < 1e-12);  /* NaN counts as a mismatch */
      }
    ck_assert_msg(bad == 0, "image %d crop (%d, %d) flip %d: %ld pixels differ", i, oy, ox,
                  flip, bad);
  }

  /* a training batch draws oy, ox, flip per image, as for any geometry */
  aal_error err;
  aal_tensor *x = aal_tensor_new4(B, 1, S, S, &err);
  ck_assert_ptr_nonnull(x);
  const int labels[NIMG] = {7, 0, 9};
  const size_t idx[B] = {2, 0, 1, 2, 0};
  int lab[B];
  gsl_rng_set(r, seed + 1);
  ck_assert_int_eq(aal_augment_train_batch(&g, &imgs[0][0], labels, NIMG, idx, B, r, x, lab,
                                           &err), AAL_OK);
  gsl_rng_set(r, seed + 1);
  for (int b = 0; b < B; b++) {
    const int oy = (int)gsl_rng_uniform_int(r, 9), ox = (int)gsl_rng_uniform_int(r, 9);
    const int flip = (int)gsl_rng_uniform_int(r, 2);
    aal_augment_image(&g, imgs[idx[b]], oy, ox, flip, out);
    ck_assert(memcmp(out, x->data + (size_t)b * S * S, sizeof out) == 0);
    ck_assert_int_eq(lab[b], labels[idx[b]]);
  }
  /* evaluation: normalisation only */
  ck_assert_int_eq(aal_augment_eval_batch(&g, &imgs[0][0], labels, NIMG, idx, B, x, lab, &err),
                   AAL_OK);
  for (int b = 0; b < B; b++)
    for (int k = 0; k < S * S; k++)
      ck_assert(x->data[(size_t)b * S * S + k] == aal_augment_normalise(&g, 0, imgs[idx[b]][k]));
  /* a batch of Tiny ImageNet's shape does not fit this geometry */
  aal_tensor *big = aal_tensor_new4(B, 3, 64, 64, &err);
  ck_assert_ptr_nonnull(big);
  ck_assert_int_eq(aal_augment_eval_batch(&g, &imgs[0][0], NULL, NIMG, idx, B, big, NULL, &err),
                   AAL_ESHAPE);
  ck_assert_msg(strstr(err.msg, "expected 5x1x32x32") != NULL, "%s", err.msg);

  /* a geometry outside its ranges is refused, naming what is wrong */
  const struct { aal_data_geom g; const char *needle; } bad_geom[] = {
      {{0, 32, 0, {0}, {1}}, "0 channels"},
      {{4, 32, 0, {0}, {1}}, "4 channels"},
      {{1, 0, 0, {0}, {1}}, "size 0"},
      {{1, 32, 16, {0}, {1}}, "border 16"},
      {{1, 32, 0, {2860}, {0}}, "std 0"},
      {{1, 32, 0, {10001}, {3530}}, "mean 10001"}};
  for (size_t k = 0; k < sizeof bad_geom / sizeof bad_geom[0]; k++) {
    ck_assert_int_eq(aal_data_geom_check(&bad_geom[k].g, &err), AAL_EINVAL);
    ck_assert_msg(strstr(err.msg, bad_geom[k].needle) != NULL, "%s", err.msg);
    ck_assert_int_eq(aal_augment_eval_batch(&bad_geom[k].g, &imgs[0][0], NULL, NIMG, idx, B, x,
                                            NULL, &err), AAL_EINVAL);
  }
  aal_tensor_release(x);
  aal_tensor_release(big);
  gsl_rng_free(r);
}
END_TEST

START_TEST(test_epoch_order)
{
  const unsigned long seed = test_seed();
  gsl_rng *r = gsl_rng_alloc(gsl_rng_mt19937);
  enum { N = 1000 };
  size_t a[N], b[N];
  int seen[N] = {0};
  aal_error err;
  gsl_rng_set(r, seed);
  ck_assert_int_eq(aal_augment_epoch_order(N, r, a, &err), AAL_OK);
  gsl_rng_set(r, seed);
  ck_assert_int_eq(aal_augment_epoch_order(N, r, b, &err), AAL_OK);
  ck_assert(memcmp(a, b, sizeof a) == 0);
  int fixed = 0;
  for (int i = 0; i < N; i++) {
    if (a[i] >= N)
      ck_abort_msg("order[%d] = %zu out of range", i, a[i]);
    seen[a[i]]++;
    fixed += a[i] == (size_t)i;
  }
  int once = 0;
  for (int i = 0; i < N; i++)
    once += seen[i] == 1;
  ck_assert_int_eq(once, N);
  ck_assert_int_lt(fixed, 10); /* a random permutation has about one fixed point */
  /* the documented algorithm */
  gsl_rng_set(r, seed);
  for (size_t i = 0; i < N; i++)
    b[i] = i;
  for (size_t i = N; i > 1; i--) {
    const size_t j = gsl_rng_uniform_int(r, i);
    const size_t tmp = b[i - 1];
    b[i - 1] = b[j];
    b[j] = tmp;
  }
  ck_assert(memcmp(a, b, sizeof a) == 0);
  ck_assert_int_eq(aal_augment_epoch_order(0, r, NULL, &err), AAL_OK);
  gsl_rng_free(r);
}
END_TEST

int main(void)
{
  g_seed = aal_test_seed();
  Suite *s = suite_create("data");
  TCase *tc = tcase_create("core");
  tcase_set_timeout(tc, 60);
  tcase_add_test(tc, test_checksums);
  tcase_add_test(tc, test_load_counts_labels_pixels);
  tcase_add_test(tc, test_corrupt_truncated);
  tcase_add_test(tc, test_corrupt_garbage);
  tcase_add_test(tc, test_annotation_errors);
  tcase_add_test(tc, test_missing_files);
  tcase_add_test(tc, test_wrong_size);
  tcase_add_test(tc, test_cache);
  tcase_add_test(tc, test_cache_same_size_mtime);
  tcase_add_test(tc, test_gen_deterministic);
  tcase_add_test(tc, test_gen_bad_args);
  tcase_add_test(tc, test_augment_image);
  tcase_add_test(tc, test_augment_batch);
  tcase_add_test(tc, test_augment_fmnist);
  tcase_add_test(tc, test_fmnist_read);
  tcase_add_test(tc, test_fmnist_errors);
  tcase_add_test(tc, test_fmnist_real);
  tcase_add_test(tc, test_epoch_order);
  suite_add_tcase(s, tc);
  return aal_check_run(s);
}
