/* Fashion-MNIST from its four IDX files, gzip-compressed as Debian's
 * dataset-fashion-mnist ships them (or not: the names without .gz are read when the .gz
 * ones are absent).
 *
 * IDX: a big-endian magic (0x00000801: a 1-dimensional array of uint8, the labels;
 * 0x00000803: 3-dimensional, the images), then each dimension as a big-endian uint32,
 * then the data, row-major.  Everything is checked: the magic, the dimensions (28x28,
 * as many labels as images), every label (0..9), the length (a file that ends early or
 * goes on after the last image is refused) and the gzip stream itself (each member's
 * CRC-32 and length trailer, and nothing but gzip members in the file).  A failure is AAL_EFORMAT naming the file and what is wrong, or
 * AAL_EIO for a file that cannot be opened: a damaged data set is never trained on. */
#include "sim/data/data.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <zlib.h>

#define IDX_LABELS_MAGIC 0x00000801u
#define IDX_IMAGES_MAGIC 0x00000803u
/* more images than this is a corrupt header, not a data set (Fashion-MNIST has 60000) */
#define IDX_MAX_ITEMS (1u << 24)
#define SIDE AAL_FMNIST_SIDE
#define IMAGE_BYTES (AAL_FMNIST_SIZE * AAL_FMNIST_SIZE)

/* The classes in label order (Fashion-MNIST's README). */
static const char *const class_words[AAL_FMNIST_CLASSES] = {
    "T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
    "Sandal",      "Shirt",   "Sneaker",  "Bag",   "Ankle boot"};

/* One open IDX file.  A .gz file is inflated here with zlib's inflate (not gzread, which
 * silently skips whatever follows the gzip stream): one or more gzip members, each
 * checked against its CRC-32 and length trailer, and nothing after the last. */
typedef struct {
  FILE *f;
  char *path;            /* the file opened, for messages */
  uint64_t *fp;          /* FNV-1a 64 of every byte read, continued across the files */
  int gz;                /* 1: gzip data, inflated; 0: the IDX bytes as they are */
  int z_ready;           /* z is initialised (inflateEnd is due) */
  int member_done;       /* the current gzip member ended (its trailer checked) */
  z_stream z;
  unsigned char *in;     /* [IN_CHUNK] compressed bytes; z.next_in points into it */
} idx_file;

#define IN_CHUNK ((size_t)1 << 16)

static int path_exists(const char *path)
{
  struct stat st;
  return stat(path, &st) == 0;
}

/* At least k (<= IN_CHUNK) compressed bytes in z's input, unless the file ends first. */
static int fill(idx_file *x, size_t k, aal_error *err)
{
  if (x->z.avail_in >= k || feof(x->f))
    return AAL_OK;
  memmove(x->in, x->z.next_in, x->z.avail_in);
  const size_t got = fread(x->in + x->z.avail_in, 1, IN_CHUNK - x->z.avail_in, x->f);
  if (ferror(x->f))
    return aal_fail(err, AAL_EIO, "%s: read error: %s", x->path, strerror(errno));
  x->z.next_in = x->in;
  x->z.avail_in += (uInt)got;
  return AAL_OK;
}

static int is_gzip_start(const idx_file *x)
{
  return x->z.avail_in >= 2 && x->z.next_in[0] == 0x1f && x->z.next_in[1] == 0x8b;
}

/* DIR/name.gz, else DIR/name when only that exists; the .gz one must be gzip data. */
static int idx_open(const char *dir, const char *name, uint64_t *fp, idx_file *x,
                    aal_error *err)
{
  char gz_name[64];
  snprintf(gz_name, sizeof gz_name, "%s.gz", name);
  memset(x, 0, sizeof *x);
  x->fp = fp;
  x->gz = 1;
  if ((x->path = aal_data_join(dir, gz_name)) == NULL)
    return aal_fail(err, AAL_ENOMEM, "out of memory");
  char *plain = aal_data_join(dir, name);
  if (plain == NULL)
    return aal_fail(err, AAL_ENOMEM, "out of memory");
  if (!path_exists(x->path) && path_exists(plain)) {
    free(x->path);
    x->path = plain;
    x->gz = 0;
  } else {
    free(plain);
  }
  if ((x->f = fopen(x->path, "rb")) == NULL)
    return aal_fail(err, AAL_EIO, "%s: cannot open: %s", x->path, strerror(errno));
  if (!x->gz)
    return AAL_OK;
  if ((x->in = malloc(IN_CHUNK)) == NULL)
    return aal_fail(err, AAL_ENOMEM, "%s: out of memory", x->path);
  x->z.next_in = x->in;
  /* 16 + MAX_WBITS: a gzip wrapper, whose trailer inflate checks */
  if (inflateInit2(&x->z, 16 + MAX_WBITS) != Z_OK)
    return aal_fail(err, AAL_ENOMEM, "%s: cannot start zlib: %s", x->path,
                    x->z.msg != NULL ? x->z.msg : "out of memory");
  x->z_ready = 1;
  const int rc = fill(x, 2, err);
  if (rc == AAL_OK && !is_gzip_start(x))
    return aal_fail(err, AAL_EFORMAT, "%s: not gzip-compressed data", x->path);
  return rc;
}

static void idx_close(idx_file *x)
{
  if (x->z_ready)
    inflateEnd(&x->z);
  if (x->f != NULL)
    fclose(x->f);
  free(x->in);
  free(x->path);
  memset(x, 0, sizeof *x);
}

/* After a member's end: the next member, or the end of the file (*end = 1); anything
 * else is trailing garbage. */
static int next_member(idx_file *x, int *end, const char *what, aal_error *err)
{
  int rc = fill(x, 2, err);
  if (rc != AAL_OK)
    return rc;
  *end = x->z.avail_in == 0;
  if (*end)
    return AAL_OK;
  if (!is_gzip_start(x))
    return aal_fail(err, AAL_EFORMAT, "%s: trailing bytes after the gzip stream (reading %s)",
                    x->path, what);
  if (inflateReset(&x->z) != Z_OK)
    return aal_fail(err, AAL_EFORMAT, "%s: zlib cannot restart after a gzip member", x->path);
  x->member_done = 0;
  return AAL_OK;
}

/* Inflates up to n bytes into buf; *got < n only at the clean end of the gzip data. */
static int inflate_some(idx_file *x, unsigned char *buf, size_t n, size_t *got,
                        const char *what, aal_error *err)
{
  x->z.next_out = buf;
  x->z.avail_out = (uInt)n;  /* n <= UINT_MAX: callers read at most an image or a header */
  int rc = AAL_OK;
  while (x->z.avail_out > 0 && rc == AAL_OK) {
    if (x->member_done) {
      int end = 0;
      rc = next_member(x, &end, what, err);
      if (rc != AAL_OK || end)
        break;
    }
    if ((rc = fill(x, 1, err)) != AAL_OK)
      break;
    const int z = inflate(&x->z, Z_NO_FLUSH);
    if (z == Z_STREAM_END)
      x->member_done = 1;
    else if (z == Z_BUF_ERROR && x->z.avail_in == 0 && feof(x->f))
      rc = aal_fail(err, AAL_EFORMAT, "%s: truncated gzip stream (unexpected end of file) "
                    "while reading %s", x->path, what);
    else if (z != Z_OK && z != Z_BUF_ERROR)
      rc = aal_fail(err, AAL_EFORMAT, "%s: corrupt gzip data (%s) while reading %s", x->path,
                    x->z.msg != NULL ? x->z.msg : zError(z), what);
  }
  *got = n - x->z.avail_out;
  return rc;
}

/* Up to n bytes of the IDX data; *got < n only where the data ends. */
static int idx_pull(idx_file *x, void *buf, size_t n, size_t *got, const char *what,
                    aal_error *err)
{
  if (x->gz)
    return inflate_some(x, buf, n, got, what, err);
  *got = fread(buf, 1, n, x->f);
  if (ferror(x->f))
    return aal_fail(err, AAL_EIO, "%s: read error: %s", x->path, strerror(errno));
  return AAL_OK;
}

/* Exactly n bytes, or an error saying what was being read. */
static int idx_read(idx_file *x, void *buf, size_t n, const char *what, aal_error *err)
{
  size_t got = 0;
  const int rc = idx_pull(x, buf, n, &got, what, err);
  if (rc != AAL_OK)
    return rc;
  if (got < n)
    return aal_fail(err, AAL_EFORMAT, "%s: truncated: the data ends in %s (%zu of %zu bytes)",
                    x->path, what, got, n);
  *x->fp = aal_data_fnv1a64(*x->fp, buf, n);
  return AAL_OK;
}

/* The file must end here: no byte after the data, and every gzip member whole. */
static int idx_expect_end(idx_file *x, const char *after, aal_error *err)
{
  unsigned char extra;
  size_t got = 0;
  const int rc = idx_pull(x, &extra, 1, &got, after, err);
  if (rc == AAL_OK && got > 0)
    return aal_fail(err, AAL_EFORMAT, "%s: trailing bytes after %s", x->path, after);
  return rc;
}

static uint32_t be32(const unsigned char *p)
{
  return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | (uint32_t)p[3];
}

/* The magic and the dimensions: dims[0] items of dims[1] x dims[2] (rank 3) or items
 * alone (rank 1). */
static int idx_header(idx_file *x, uint32_t magic, int rank, uint32_t *dims, aal_error *err)
{
  unsigned char h[16];
  int rc = idx_read(x, h, 4 + 4 * (size_t)rank, "the header", err);
  if (rc != AAL_OK)
    return rc;
  const uint32_t got = be32(h);
  if (got != magic)
    return aal_fail(err, AAL_EFORMAT, "%s: bad magic 0x%08x, expected 0x%08x (IDX %s)",
                    x->path, (unsigned)got, (unsigned)magic,
                    rank == 1 ? "labels: uint8, 1 dimension" : "images: uint8, 3 dimensions");
  for (int k = 0; k < rank; k++)
    dims[k] = be32(h + 4 + 4 * k);
  if (dims[0] == 0 || dims[0] > IDX_MAX_ITEMS)
    return aal_fail(err, AAL_EFORMAT, "%s: the header counts %u items (1..%u)", x->path,
                    (unsigned)dims[0], (unsigned)IDX_MAX_ITEMS);
  return AAL_OK;
}

/* DIR/<prefix>-labels-idx1-ubyte into labels (malloc'd [*n]), each checked in 0..9. */
static int read_labels(const char *dir, const char *prefix, uint64_t *fp, uint8_t **labels,
                       size_t *n, char **path, aal_error *err)
{
  char name[64];
  snprintf(name, sizeof name, "%s-labels-idx1-ubyte", prefix);
  idx_file x;
  uint32_t dims[1] = {0};
  *labels = NULL;
  int rc = idx_open(dir, name, fp, &x, err);
  if (rc == AAL_OK)
    rc = idx_header(&x, IDX_LABELS_MAGIC, 1, dims, err);
  if (rc == AAL_OK && (*labels = malloc(dims[0])) == NULL)
    rc = aal_fail(err, AAL_ENOMEM, "%s: out of memory for %u labels", x.path, (unsigned)dims[0]);
  if (rc == AAL_OK)
    rc = idx_read(&x, *labels, dims[0], "the labels", err);
  for (size_t i = 0; rc == AAL_OK && i < dims[0]; i++)
    if ((*labels)[i] >= AAL_FMNIST_CLASSES)
      rc = aal_fail(err, AAL_EFORMAT, "%s: label %u of item %zu is outside 0..%d", x.path,
                    (unsigned)(*labels)[i], i, AAL_FMNIST_CLASSES - 1);
  if (rc == AAL_OK)
    rc = idx_expect_end(&x, "the labels", err);
  if (rc == AAL_OK) {
    *n = dims[0];
    *path = x.path;  /* kept for the count check's message */
    x.path = NULL;
  } else {
    free(*labels);
    *labels = NULL;
  }
  idx_close(&x);
  return rc;
}

/* The pixels of n images 28x28, each into the middle of a zeroed 32x32. */
static int read_pixels(idx_file *x, size_t n, uint8_t *pixels, aal_error *err)
{
  uint8_t img[SIDE * SIDE];
  const size_t B = AAL_FMNIST_BORDER;
  memset(pixels, 0, n * IMAGE_BYTES);
  for (size_t i = 0; i < n; i++) {
    char what[64];
    snprintf(what, sizeof what, "image %zu", i);
    const int rc = idx_read(x, img, sizeof img, what, err);
    if (rc != AAL_OK)
      return rc;
    uint8_t *dst = pixels + i * IMAGE_BYTES;
    for (size_t y = 0; y < SIDE; y++)
      memcpy(dst + (y + B) * AAL_FMNIST_SIZE + B, img + y * SIDE, SIDE);
  }
  return AAL_OK;
}

/* One split: DIR/<prefix>-labels-idx1-ubyte, then DIR/<prefix>-images-idx3-ubyte. */
static int read_split(const char *dir, const char *prefix, uint64_t *fp, aal_data_split *sp,
                      aal_error *err)
{
  uint8_t *labels = NULL;
  size_t n = 0;
  char *labels_path = NULL, name[64];
  int rc = read_labels(dir, prefix, fp, &labels, &n, &labels_path, err);
  if (rc != AAL_OK)
    return rc;
  snprintf(name, sizeof name, "%s-images-idx3-ubyte", prefix);
  idx_file x;
  uint32_t dims[3] = {0, 0, 0};
  rc = idx_open(dir, name, fp, &x, err);
  if (rc == AAL_OK)
    rc = idx_header(&x, IDX_IMAGES_MAGIC, 3, dims, err);
  if (rc == AAL_OK && (dims[1] != SIDE || dims[2] != SIDE))
    rc = aal_fail(err, AAL_EFORMAT, "%s: images are %ux%u, expected %dx%d", x.path,
                  (unsigned)dims[1], (unsigned)dims[2], SIDE, SIDE);
  if (rc == AAL_OK && dims[0] != n)
    rc = aal_fail(err, AAL_EFORMAT, "%s holds %u images but %s holds %zu labels", x.path,
                  (unsigned)dims[0], labels_path, n);
  if (rc == AAL_OK)
    rc = aal_data_alloc_split(sp, n, IMAGE_BYTES, err);
  if (rc == AAL_OK)
    rc = read_pixels(&x, n, sp->pixels, err);
  if (rc == AAL_OK) {
    char after[64];
    snprintf(after, sizeof after, "the %zu images", n);
    rc = idx_expect_end(&x, after, err);
  }
  for (size_t i = 0; rc == AAL_OK && i < n; i++)
    sp->labels[i] = labels[i];
  idx_close(&x);
  free(labels);
  free(labels_path);
  return rc;
}

static int set_classes(aal_data_set *ds, aal_error *err)
{
  ds->wnids = calloc(AAL_FMNIST_CLASSES, sizeof *ds->wnids);
  ds->words = calloc(AAL_FMNIST_CLASSES, sizeof *ds->words);
  if (ds->wnids == NULL || ds->words == NULL)
    return aal_fail(err, AAL_ENOMEM, "out of memory");
  ds->classes = AAL_FMNIST_CLASSES;
  for (int k = 0; k < AAL_FMNIST_CLASSES; k++) {
    snprintf(ds->wnids[k], sizeof ds->wnids[k], "%d", k);
    if ((ds->words[k] = strdup(class_words[k])) == NULL)
      return aal_fail(err, AAL_ENOMEM, "out of memory");
  }
  return AAL_OK;
}

int aal_fmnist_detect(const char *dir)
{
  if (dir == NULL)
    return 0;
  int found = 0;
  const char *names[2] = {"train-images-idx3-ubyte.gz", "train-images-idx3-ubyte"};
  for (int k = 0; k < 2 && !found; k++) {
    char *p = aal_data_join(dir, names[k]);
    found = p != NULL && path_exists(p);
    free(p);
  }
  return found;
}

int aal_fmnist_read(const char *dir, aal_data_set *ds, FILE *log, aal_error *err)
{
  aal_data_init(ds);
  if (dir == NULL || *dir == '\0')
    return aal_fail(err, AAL_EINVAL, "data directory not given");
  const double t0 = aal_data_now();
  ds->format = AAL_DATA_FASHION_MNIST;
  aal_data_geom_fmnist(&ds->geom);
  ds->fingerprint = AAL_FNV1A64_INIT;
  int rc = set_classes(ds, err);
  if (rc == AAL_OK)
    rc = read_split(dir, "train", &ds->fingerprint, &ds->train, err);
  if (rc == AAL_OK)
    rc = read_split(dir, "t10k", &ds->fingerprint, &ds->val, err);
  if (rc != AAL_OK) {
    aal_data_free(ds);
    return rc;
  }
  if (log != NULL)
    fprintf(log, "aal data: Fashion-MNIST: %zu train + %zu val images of 28x28 (padded to "
            "%dx%d) from %s in %.1f s\n", ds->train.n, ds->val.n, AAL_FMNIST_SIZE,
            AAL_FMNIST_SIZE, dir, aal_data_now() - t0);
  return AAL_OK;
}
