/* Fuzzes the Fashion-MNIST IDX reader (sim/data/mnist.c, aal_fmnist_read): the four IDX
 * files, gzip-compressed or plain.
 *
 * Input: byte 0's bits 0-3 say, per file, whether it is written as NAME.gz (1) or NAME
 * (0); the rest is the files' bytes separated by SEP, in the order train-labels,
 * train-images, t10k-labels, t10k-images (a file not given is absent).  Properties of a
 * read that succeeds: as many labels as images in each split, every label in 0..9, the
 * 2-pixel border of every 32x32 image zero, and for a plain file its pixels and labels
 * exactly the file's bytes.
 *
 * FUZZ_WRITE_SEEDS=DIR writes the seed corpus (small valid sets, gzip and plain, and
 * broken ones) and exits. */
#include "tests/fuzz/fuzz.h"

#include <zlib.h>

#include "sim/data/data.h"

#define SEP "\n-IDX-\n"
#define SEPLEN 7

static const char *const names[4] = {"train-labels-idx1-ubyte", "train-images-idx3-ubyte",
                                     "t10k-labels-idx1-ubyte", "t10k-images-idx3-ubyte"};
static char dir[4200];

static void check_split(const aal_data_split *sp, const uint8_t *labels, size_t llen,
                        const uint8_t *images, size_t ilen)
{
  const size_t side = AAL_FMNIST_SIZE, b = AAL_FMNIST_BORDER;
  for (size_t i = 0; i < sp->n; i++) {
    FUZZ_REQUIRE(sp->labels[i] >= 0 && sp->labels[i] <= 9, "label %d", sp->labels[i]);
    if (labels != NULL)
      FUZZ_REQUIRE(llen == 8 + sp->n && sp->labels[i] == labels[8 + i], "label %zu", i);
    const uint8_t *img = sp->pixels + i * side * side;
    for (size_t y = 0; y < side; y++)
      for (size_t x = 0; x < side; x++) {
        const int inner = y >= b && y < side - b && x >= b && x < side - b;
        if (!inner)
          FUZZ_REQUIRE(img[y * side + x] == 0, "image %zu border (%zu, %zu)", i, y, x);
        else if (images != NULL)
          FUZZ_REQUIRE(ilen == 16 + sp->n * 784 &&
                           img[y * side + x] == images[16 + i * 784 + (y - b) * 28 + (x - b)],
                       "image %zu pixel (%zu, %zu)", i, y, x);
      }
  }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
  if (size < 1)
    return 0;
  const int gz = data[0];
  const uint8_t *part[4] = {NULL, NULL, NULL, NULL};
  size_t len[4] = {0, 0, 0, 0};
  const uint8_t *p = data + 1, *end = data + size;
  for (int k = 0; k < 4 && p <= end; k++) {
    const uint8_t *sep = memmem(p, (size_t)(end - p), SEP, SEPLEN);
    part[k] = p;
    len[k] = sep != NULL ? (size_t)(sep - p) : (size_t)(end - p);
    if (sep == NULL)
      break;
    p = sep + SEPLEN;
  }
  for (int k = 0; k < 4; k++) {
    char path[4300], gzname[64];
    snprintf(gzname, sizeof gzname, "%s.gz", names[k]);
    fuzz_path(path, sizeof path, dir, names[k]);
    unlink(path);
    if (part[k] != NULL && !(gz >> k & 1))
      fuzz_write(path, part[k], len[k]);
    fuzz_path(path, sizeof path, dir, gzname);
    unlink(path);
    if (part[k] != NULL && (gz >> k & 1))
      fuzz_write(path, part[k], len[k]);
  }
  aal_data_set ds;
  aal_error err;
  if (aal_fmnist_read(dir, &ds, NULL, &err) == AAL_OK) {
    FUZZ_REQUIRE(ds.classes == 10 && ds.train.n >= 1 && ds.val.n >= 1, "%d classes, %zu, %zu",
                 ds.classes, ds.train.n, ds.val.n);
    const int plain[4] = {!(gz & 1), !(gz & 2), !(gz & 4), !(gz & 8)};
    check_split(&ds.train, plain[0] ? part[0] : NULL, len[0], plain[1] ? part[1] : NULL, len[1]);
    check_split(&ds.val, plain[2] ? part[2] : NULL, len[2], plain[3] ? part[3] : NULL, len[3]);
  } else {
    FUZZ_REQUIRE(err.msg[0] != '\0', "refused without a message");
  }
  aal_data_free(&ds);
  return 0;
}

/* ------------------------------------------------------------------ the seeds */

typedef struct {
  uint8_t *b;
  size_t n, cap;
} buf;

static void put(buf *o, const void *p, size_t n)
{
  if (o->n + n > o->cap) {
    o->cap = (o->n + n) * 2;
    o->b = realloc(o->b, o->cap);
    FUZZ_SETUP(o->b != NULL, "realloc");
  }
  memcpy(o->b + o->n, p, n);
  o->n += n;
}

static void put_be32(buf *o, uint32_t v)
{
  const uint8_t b[4] = {(uint8_t)(v >> 24), (uint8_t)(v >> 16), (uint8_t)(v >> 8), (uint8_t)v};
  put(o, b, 4);
}

/* IDX labels (n, label i = (i * 3 + shift) % 10) or images (n of 28x28). */
static void idx(buf *o, int images, uint32_t n, int shift)
{
  put_be32(o, images ? 0x803 : 0x801);
  put_be32(o, n);
  if (images) {
    put_be32(o, 28);
    put_be32(o, 28);
    for (uint32_t i = 0; i < n * 784; i++) {
      const uint8_t v = (uint8_t)(i * 7 + (uint32_t)shift);
      put(o, &v, 1);
    }
  } else {
    for (uint32_t i = 0; i < n; i++) {
      const uint8_t v = (uint8_t)((i * 3 + (uint32_t)shift) % 10);
      put(o, &v, 1);
    }
  }
}

/* o gzip-compressed (one member), into a new buffer. */
static buf gzip(const buf *o)
{
  buf z = {NULL, 0, 0};
  z_stream s;
  memset(&s, 0, sizeof s);
  FUZZ_SETUP(deflateInit2(&s, 9, Z_DEFLATED, 16 + MAX_WBITS, 8, Z_DEFAULT_STRATEGY) == Z_OK,
             "deflateInit2");
  const size_t cap = deflateBound(&s, (uLong)o->n) + 64;
  z.b = malloc(cap);
  FUZZ_SETUP(z.b != NULL, "malloc");
  s.next_in = o->b;
  s.avail_in = (uInt)o->n;
  s.next_out = z.b;
  s.avail_out = (uInt)cap;
  FUZZ_SETUP(deflate(&s, Z_FINISH) == Z_STREAM_END, "deflate");
  z.n = cap - s.avail_out;
  z.cap = cap;
  deflateEnd(&s);
  return z;
}

/* A seed: the mode byte, then the four files (gzip where the mode says) joined by SEP;
 * counts[k] items in file k, labels shifted by shift. */
static void seed(const char *seeds, const char *name, int mode, const uint32_t counts[4],
                 int shift, size_t cut)
{
  buf out = {NULL, 0, 0};
  const uint8_t m = (uint8_t)mode;
  put(&out, &m, 1);
  for (int k = 0; k < 4; k++) {
    buf f = {NULL, 0, 0};
    idx(&f, k % 2, counts[k], shift);
    if (mode >> k & 1) {
      buf z = gzip(&f);
      free(f.b);
      f = z;
    }
    if (k > 0)
      put(&out, SEP, SEPLEN);
    put(&out, f.b, f.n);
    free(f.b);
  }
  char path[4300];
  fuzz_path(path, sizeof path, seeds, name);
  fuzz_write(path, out.b, out.n > cut ? out.n - cut : out.n);
  free(out.b);
}

static void write_seeds(const char *seeds)
{
  const uint32_t ok[4] = {3, 3, 2, 2}, mismatch[4] = {3, 2, 2, 2};
  seed(seeds, "gzip", 15, ok, 0, 0);
  seed(seeds, "plain", 0, ok, 0, 0);
  seed(seeds, "mixed", 5, ok, 1, 0);
  seed(seeds, "truncated", 15, ok, 0, 9);
  seed(seeds, "count-mismatch", 0, mismatch, 0, 0);
  seed(seeds, "label-10", 0, ok, 0, 0); /* edited below: a label of 10 */
  char path[4300];
  size_t len;
  fuzz_path(path, sizeof path, seeds, "label-10");
  uint8_t *b = fuzz_read(path, &len);
  FUZZ_SETUP(b != NULL && len > 10, path);
  b[1 + 8] = 10; /* train label 0 */
  fuzz_write(path, b, len);
  free(b);
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
  (void)argc;
  (void)argv;
  const char *root = fuzz_tmpdir("mnist");
  fuzz_path(dir, sizeof dir, root, "fm");
  FUZZ_SETUP(mkdir(dir, 0755) == 0, dir);
  const char *seeds = getenv("FUZZ_WRITE_SEEDS");
  if (seeds != NULL && *seeds != '\0') {
    write_seeds(seeds);
    exit(0);
  }
  return 0;
}
