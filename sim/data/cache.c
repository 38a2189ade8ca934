/* The binary cache of a decoded Tiny ImageNet tree, so that the JPEGs are decoded once.
 *
 * File format (all integers little-endian):
 *   offset  size  field
 *        0     8  magic "AALDATA\n"
 *        8     4  format version (CACHE_VERSION)
 *       12     4  header bytes (72)
 *       16     4  image size (64)
 *       20     4  channels (3)
 *       24     4  classes
 *       28     4  payload CRC-32 (over all payload bytes, see aal_data_crc32)
 *       32     8  train images
 *       40     8  val images
 *       48     8  fingerprint of the source tree (aal_data_fingerprint; its definition
 *                 is part of the format: version 2 added the images' ctime)
 *       56     8  payload bytes
 *       64     4  header CRC-32 (over bytes 0..63)
 *       68     4  zero
 *       72        payload: train labels (int32 each), train pixels [n][3][64][64],
 *                 val labels (int32 each), val pixels [n][3][64][64]
 *
 * A cache is used only if everything verifies: magic, version, header CRC, image size,
 * fingerprint equal to the tree's, counts equal to the tree's, file size, payload CRC,
 * and labels equal to those the text files give.  A different version or fingerprint
 * means the tree (or the format) changed: STALE.  Anything else that fails means the
 * file is damaged: CORRUPT, never trusted.  Both rebuild it.
 *
 * The checksum is CRC-32 rather than FNV-1a because a payload is up to 1.3 GB
 * (100000 train + 10000 val images) and byte-at-a-time FNV-1a (a dependent 64-bit
 * multiply per byte) would cost seconds, while slicing-by-8 CRC-32 runs at several
 * bytes per cycle; CRC-32 also detects every burst error up to 32 bits. */
#include "sim/data/data.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define CACHE_MAGIC "AALDATA\n"
#define CACHE_VERSION 2u /* 2: the fingerprint folds in each image's ctime */
#define HEADER_BYTES 72
#define CHUNK_BYTES ((size_t)1 << 22)
#define DEFAULT_CACHE_NAME ".aal-cache.bin"

/* ------------------------------------------------------------------ CRC-32 */

void aal_data_crc32_init(aal_data_crc32 *c)
{
  for (uint32_t i = 0; i < 256; i++) {
    uint32_t r = i;
    for (int k = 0; k < 8; k++)
      r = (r & 1u) ? (r >> 1) ^ UINT32_C(0xEDB88320) : r >> 1;
    c->table[0][i] = r;
  }
  /* table[k][i]: the CRC of byte i followed by k zero bytes, for slicing-by-8 */
  for (int k = 1; k < 8; k++)
    for (int i = 0; i < 256; i++)
      c->table[k][i] = (c->table[k - 1][i] >> 8) ^ c->table[0][c->table[k - 1][i] & 0xffu];
  c->crc = 0;
}

void aal_data_crc32_update(aal_data_crc32 *c, const void *data, size_t len)
{
  const unsigned char *p = data;
  uint32_t r = ~c->crc;
  while (len >= 8) {
    /* bytes are combined explicitly, so the result does not depend on endianness */
    const uint32_t lo = r ^ ((uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 |
                             (uint32_t)p[3] << 24);
    r = c->table[7][lo & 0xffu] ^ c->table[6][(lo >> 8) & 0xffu] ^
        c->table[5][(lo >> 16) & 0xffu] ^ c->table[4][lo >> 24] ^ c->table[3][p[4]] ^
        c->table[2][p[5]] ^ c->table[1][p[6]] ^ c->table[0][p[7]];
    p += 8;
    len -= 8;
  }
  while (len-- > 0)
    r = (r >> 8) ^ c->table[0][(r ^ *p++) & 0xffu];
  c->crc = ~r;
}

/* ------------------------------------------------------------------ header */

typedef struct {
  uint32_t version, header_bytes, image_size, channels, classes, payload_crc;
  uint64_t n_train, n_val, fingerprint, payload_bytes;
  uint32_t header_crc;
} cache_header;

static void put32(unsigned char *b, uint32_t v)
{
  for (int i = 0; i < 4; i++)
    b[i] = (unsigned char)(v >> (8 * i));
}

static void put64(unsigned char *b, uint64_t v)
{
  for (int i = 0; i < 8; i++)
    b[i] = (unsigned char)(v >> (8 * i));
}

static uint32_t get32(const unsigned char *b)
{
  return (uint32_t)b[0] | (uint32_t)b[1] << 8 | (uint32_t)b[2] << 16 | (uint32_t)b[3] << 24;
}

static uint64_t get64(const unsigned char *b)
{
  return (uint64_t)get32(b) | (uint64_t)get32(b + 4) << 32;
}

static void header_encode(const cache_header *h, unsigned char *b, aal_data_crc32 *crc)
{
  memset(b, 0, HEADER_BYTES);
  memcpy(b, CACHE_MAGIC, 8);
  put32(b + 8, h->version);
  put32(b + 12, h->header_bytes);
  put32(b + 16, h->image_size);
  put32(b + 20, h->channels);
  put32(b + 24, h->classes);
  put32(b + 28, h->payload_crc);
  put64(b + 32, h->n_train);
  put64(b + 40, h->n_val);
  put64(b + 48, h->fingerprint);
  put64(b + 56, h->payload_bytes);
  crc->crc = 0;
  aal_data_crc32_update(crc, b, 64);
  put32(b + 64, crc->crc);
}

static void header_decode(const unsigned char *b, cache_header *h)
{
  h->version = get32(b + 8);
  h->header_bytes = get32(b + 12);
  h->image_size = get32(b + 16);
  h->channels = get32(b + 20);
  h->classes = get32(b + 24);
  h->payload_crc = get32(b + 28);
  h->n_train = get64(b + 32);
  h->n_val = get64(b + 40);
  h->fingerprint = get64(b + 48);
  h->payload_bytes = get64(b + 56);
  h->header_crc = get32(b + 64);
}

/* Payload bytes of a split (labels + pixels); callers have checked n against SIZE_MAX
 * when the split was allocated. */
static uint64_t split_bytes(size_t n)
{
  return (uint64_t)n * (4u + AAL_TINY_IMAGE_BYTES);
}

/* ------------------------------------------------------------------ reading */

/* Reads one split's payload into sp, checking its labels against those already in sp
 * (from the text files).  Returns 0 on success, else fills why. */
static int read_split(FILE *f, aal_data_split *sp, aal_data_crc32 *crc, char *why,
                      size_t whylen)
{
  unsigned char buf[4096];
  for (size_t i = 0; i < sp->n;) {
    const size_t m = sp->n - i < sizeof buf / 4 ? sp->n - i : sizeof buf / 4;
    if (fread(buf, 4, m, f) != m) {
      snprintf(why, whylen, "truncated or unreadable in the labels");
      return -1;
    }
    aal_data_crc32_update(crc, buf, 4 * m);
    for (size_t k = 0; k < m; k++)
      if ((int32_t)get32(buf + 4 * k) != sp->labels[i + k]) {
        snprintf(why, whylen, "label of image %zu is %d, the tree says %d", i + k,
                 (int)(int32_t)get32(buf + 4 * k), sp->labels[i + k]);
        return -1;
      }
    i += m;
  }
  const size_t total = sp->n * AAL_TINY_IMAGE_BYTES;
  for (size_t off = 0; off < total;) {
    const size_t m = total - off < CHUNK_BYTES ? total - off : CHUNK_BYTES;
    if (fread(sp->pixels + off, 1, m, f) != m) {
      snprintf(why, whylen, "truncated or unreadable in the pixels");
      return -1;
    }
    aal_data_crc32_update(crc, sp->pixels + off, m);
    off += m;
  }
  return 0;
}

/* Tries the cache; ds is allocated with the scan's counts and labels.  Returns the
 * status (HIT, NEW when there is no file, STALE, CORRUPT) and the reason in why. */
static enum aal_data_cache_status read_cache(const char *path, const aal_data_scan *s,
                                             aal_data_set *ds, aal_data_crc32 *crc,
                                             char *why, size_t whylen)
{
  FILE *f = fopen(path, "rb");
  if (f == NULL) {
    snprintf(why, whylen, "%s", strerror(errno));
    return errno == ENOENT ? AAL_DATA_CACHE_NEW : AAL_DATA_CACHE_CORRUPT;
  }
  enum aal_data_cache_status st = AAL_DATA_CACHE_CORRUPT;
  unsigned char b[HEADER_BYTES];
  cache_header h;
  struct stat sb;
  if (fread(b, 1, HEADER_BYTES, f) != HEADER_BYTES) {
    snprintf(why, whylen, "shorter than its %d-byte header", HEADER_BYTES);
    goto done;
  }
  if (memcmp(b, CACHE_MAGIC, 8) != 0) {
    snprintf(why, whylen, "bad magic, not an aal data cache");
    goto done;
  }
  header_decode(b, &h);
  crc->crc = 0;
  aal_data_crc32_update(crc, b, 64);
  if (crc->crc != h.header_crc) {
    snprintf(why, whylen, "header CRC-32 is %08x, stored %08x", (unsigned)crc->crc,
             (unsigned)h.header_crc);
    goto done;
  }
  if (h.version != CACHE_VERSION) {
    snprintf(why, whylen, "format version %u, this build writes %u", (unsigned)h.version,
             CACHE_VERSION);
    st = AAL_DATA_CACHE_STALE;
    goto done;
  }
  if (h.fingerprint != s->fingerprint) {
    snprintf(why, whylen, "built from a different tree (fingerprint %016llx, the tree's "
             "is %016llx)", (unsigned long long)h.fingerprint,
             (unsigned long long)s->fingerprint);
    st = AAL_DATA_CACHE_STALE;
    goto done;
  }
  if (h.header_bytes != HEADER_BYTES || h.image_size != AAL_TINY_SIZE ||
      h.channels != AAL_TINY_CHANNELS || h.classes != (uint32_t)s->classes ||
      h.n_train != s->n_train || h.n_val != s->n_val ||
      h.payload_bytes != split_bytes(s->n_train) + split_bytes(s->n_val)) {
    snprintf(why, whylen, "header disagrees with the tree (%llu train, %llu val, %u "
             "classes; the tree has %zu, %zu, %d)", (unsigned long long)h.n_train,
             (unsigned long long)h.n_val, (unsigned)h.classes, s->n_train, s->n_val,
             s->classes);
    goto done;
  }
  if (fstat(fileno(f), &sb) != 0 ||
      (uint64_t)sb.st_size != (uint64_t)HEADER_BYTES + h.payload_bytes) {
    snprintf(why, whylen, "file size %lld, the header says %llu",
             (long long)sb.st_size, (unsigned long long)(HEADER_BYTES + h.payload_bytes));
    goto done;
  }
  crc->crc = 0;
  if (read_split(f, &ds->train, crc, why, whylen) != 0 ||
      read_split(f, &ds->val, crc, why, whylen) != 0)
    goto done;
  if (crc->crc != h.payload_crc) {
    snprintf(why, whylen, "payload CRC-32 is %08x, stored %08x", (unsigned)crc->crc,
             (unsigned)h.payload_crc);
    goto done;
  }
  st = AAL_DATA_CACHE_HIT;
done:
  fclose(f);
  return st;
}

int aal_data_cache_read(const char *path, const aal_data_scan *s, aal_data_set *ds,
                        enum aal_data_cache_status *status, char *why, size_t whylen,
                        aal_error *err)
{
  aal_data_crc32 *crc = malloc(sizeof *crc);
  if (crc == NULL)
    return aal_fail(err, AAL_ENOMEM, "out of memory");
  aal_data_crc32_init(crc);
  *status = read_cache(path, s, ds, crc, why, whylen);
  free(crc);
  return AAL_OK;
}

/* ------------------------------------------------------------------ writing */

static int write_split(FILE *f, const aal_data_split *sp, int pass_crc, aal_data_crc32 *crc)
{
  unsigned char buf[4096];
  for (size_t i = 0; i < sp->n;) {
    const size_t m = sp->n - i < sizeof buf / 4 ? sp->n - i : sizeof buf / 4;
    for (size_t k = 0; k < m; k++)
      put32(buf + 4 * k, (uint32_t)(int32_t)sp->labels[i + k]);
    if (pass_crc)
      aal_data_crc32_update(crc, buf, 4 * m);
    else if (fwrite(buf, 4, m, f) != m)
      return -1;
    i += m;
  }
  const size_t total = sp->n * AAL_TINY_IMAGE_BYTES;
  if (pass_crc)
    aal_data_crc32_update(crc, sp->pixels, total);
  else if (total > 0 && fwrite(sp->pixels, 1, total, f) != total)
    return -1;
  return 0;
}

/* Whether path may be replaced by a cache: it does not exist, or it is a regular file
 * that begins with the cache's magic (a stale or damaged cache).  Any other file (a
 * --cache naming the tree's wnids.txt, a directory, a FIFO) is left alone. */
static int replaceable(const char *path, aal_error *err)
{
  const int fd = open(path, O_RDONLY | O_NONBLOCK | O_CLOEXEC);
  if (fd < 0)
    return errno == ENOENT ? AAL_OK
                           : aal_fail(err, AAL_EIO, "%s: cannot open: %s", path, strerror(errno));
  struct stat sb;
  unsigned char magic[8];
  int rc = AAL_OK;
  if (fstat(fd, &sb) != 0 || !S_ISREG(sb.st_mode))
    rc = aal_fail(err, AAL_EIO, "%s is not a regular file; it is not replaced by a cache",
                  path);
  else if (read(fd, magic, sizeof magic) != (ssize_t)sizeof magic ||
           memcmp(magic, CACHE_MAGIC, 8) != 0)
    rc = aal_fail(err, AAL_EIO, "%s exists and is not an aal data cache; it is left as it "
                  "is (give --cache another path)", path);
  close(fd);
  return rc;
}

/* Writes ds to path atomically: a temp file in the same directory, fwrite, fflush,
 * fsync, rename, then fsync of the directory so that the rename itself is durable. */
static int write_cache(const char *path, const aal_data_set *ds, aal_data_crc32 *crc,
                       aal_error *err)
{
  cache_header h = {CACHE_VERSION, HEADER_BYTES, AAL_TINY_SIZE, AAL_TINY_CHANNELS,
                    (uint32_t)ds->classes, 0, ds->train.n, ds->val.n, ds->fingerprint,
                    split_bytes(ds->train.n) + split_bytes(ds->val.n), 0};
  crc->crc = 0; /* first pass: the payload CRC, which the header carries */
  write_split(NULL, &ds->train, 1, crc);
  write_split(NULL, &ds->val, 1, crc);
  h.payload_crc = crc->crc;
  const int rc = replaceable(path, err);
  if (rc != AAL_OK)
    return rc;
  unsigned char b[HEADER_BYTES];
  header_encode(&h, b, crc);

  const char *suffix = ".tmp.XXXXXX";
  const size_t lp = strlen(path);
  char *tmp = malloc(lp + strlen(suffix) + 1);
  if (tmp == NULL)
    return aal_fail(err, AAL_ENOMEM, "%s: out of memory", path);
  memcpy(tmp, path, lp);
  memcpy(tmp + lp, suffix, strlen(suffix) + 1);
  const int fd = mkstemp(tmp);
  if (fd < 0) {
    const int e = errno;
    free(tmp);
    return aal_fail(err, AAL_EIO, "%s: cannot create a temp file next to it: %s", path,
                    strerror(e));
  }
  fchmod(fd, 0644); /* mkstemp makes 0600; the cache holds nothing private */
  FILE *f = fdopen(fd, "wb");
  if (f == NULL) {
    const int e = errno;
    close(fd);
    unlink(tmp);
    free(tmp);
    return aal_fail(err, AAL_EIO, "%s: %s", path, strerror(e));
  }
  int ok = fwrite(b, 1, HEADER_BYTES, f) == HEADER_BYTES &&
           write_split(f, &ds->train, 0, crc) == 0 && write_split(f, &ds->val, 0, crc) == 0 &&
           fflush(f) == 0 && fsync(fileno(f)) == 0;
  int e = errno;
  if (fclose(f) != 0 && ok) {
    ok = 0;
    e = errno;
  }
  if (ok && rename(tmp, path) != 0) {
    ok = 0;
    e = errno;
  }
  if (!ok) {
    unlink(tmp);
    free(tmp);
    return aal_fail(err, AAL_EIO, "%s: cannot write the cache: %s", path, strerror(e));
  }
  free(tmp);
  /* the directory entry: best effort (some file systems refuse fsync on a directory) */
  char *dir = malloc(lp + 2);
  if (dir != NULL) {
    memcpy(dir, path, lp + 1);
    char *slash = strrchr(dir, '/');
    if (slash == NULL)
      strcpy(dir, ".");
    else if (slash == dir)
      dir[1] = '\0';
    else
      *slash = '\0';
    const int dfd = open(dir, O_RDONLY);
    if (dfd >= 0) {
      fsync(dfd);
      close(dfd);
    }
    free(dir);
  }
  return AAL_OK;
}

/* ------------------------------------------------------------------ the load */

int aal_data_load(const char *dir, const char *cache_path, aal_data_set *ds, FILE *log,
                  aal_error *err)
{
  aal_data_init(ds);
  aal_data_scan *s = NULL;
  int rc = aal_data_scan_tree(dir, &s, err);
  if (rc != AAL_OK)
    return rc;
  char *own_path = NULL;
  if (cache_path == NULL) {
    own_path = aal_data_join(dir, DEFAULT_CACHE_NAME);
    if (own_path == NULL) {
      aal_data_scan_free(s);
      return aal_fail(err, AAL_ENOMEM, "out of memory");
    }
    cache_path = own_path;
  }
  aal_data_crc32 *crc = malloc(sizeof *crc); /* 8 KiB of tables: not on the stack */
  if (crc == NULL)
    rc = aal_fail(err, AAL_ENOMEM, "out of memory");
  else
    aal_data_crc32_init(crc);
  if (rc == AAL_OK)
    rc = aal_data_set_from_scan(s, ds, err);
  if (rc == AAL_OK) {
    char why[256] = "";
    const enum aal_data_cache_status st = read_cache(cache_path, s, ds, crc, why, sizeof why);
    if (st == AAL_DATA_CACHE_HIT) {
      ds->cache_status = st;
      if (log != NULL)
        fprintf(log, "aal data: %zu train + %zu val images from the cache %s\n", ds->train.n,
                ds->val.n, cache_path);
    } else {
      if (log != NULL) {
        if (st == AAL_DATA_CACHE_NEW)
          fprintf(log, "aal data: no cache at %s; decoding %zu images\n", cache_path,
                  s->n_train + s->n_val);
        else if (st == AAL_DATA_CACHE_STALE)
          fprintf(log, "aal data: cache %s is stale: %s; rebuilding\n", cache_path, why);
        else
          fprintf(log, "aal data: cache %s is corrupt: %s; not trusted, rebuilding\n",
                  cache_path, why);
        fflush(log);
      }
      rc = aal_data_decode_scan(s, ds, log, err);
      if (rc == AAL_OK) {
        ds->cache_status = st;
        ds->cache_rebuilt = 1;
        aal_error werr;
        aal_error_clear(&werr);
        if (write_cache(cache_path, ds, crc, &werr) == AAL_OK)
          ds->cache_written = 1;
        else if (log != NULL)
          fprintf(log, "aal data: warning: %s (continuing without a cache)\n", werr.msg);
      }
    }
  }
  if (rc != AAL_OK)
    aal_data_free(ds);
  free(crc);
  free(own_path);
  aal_data_scan_free(s);
  return rc;
}
