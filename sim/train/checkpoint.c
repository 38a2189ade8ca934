#include "sim/train/checkpoint.h"
#include "sim/ops/ops.h"

#include "sim/data/data.h"

#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define MAGIC "AALCKPT"
#define VERSION 1u

static int fsync_parent(const char *path, aal_error *err)
{
  char *copy = strdup(path);
  if (copy == NULL)
    return aal_fail(err, AAL_ENOMEM, "out of memory");
  int fd = open(dirname(copy), O_RDONLY);
  int rc = AAL_OK;
  if (fd < 0 || fsync(fd) != 0)
    rc = aal_fail(err, AAL_EIO, "%s: cannot sync its directory: %s", path, strerror(errno));
  if (fd >= 0)
    close(fd);
  free(copy);
  return rc;
}

int aal_write_atomic(const char *path, const void *data, size_t len, aal_error *err)
{
  const size_t n = strlen(path) + 16;
  char *tmp = malloc(n);
  if (tmp == NULL)
    return aal_fail(err, AAL_ENOMEM, "out of memory");
  snprintf(tmp, n, "%s.tmp.XXXXXX", path);
  int fd = mkstemp(tmp);
  if (fd < 0) {
    int rc = aal_fail(err, AAL_EIO, "%s: cannot create a temporary file: %s", path,
                      strerror(errno));
    free(tmp);
    return rc;
  }
  const unsigned char *p = data;
  size_t done = 0;
  while (done < len) {
    ssize_t w = write(fd, p + done, len - done);
    if (w < 0 && errno == EINTR)
      continue;
    if (w <= 0)
      break;
    done += (size_t)w;
  }
  int rc = AAL_OK;
  if (done != len || fsync(fd) != 0)
    rc = aal_fail(err, AAL_EIO, "%s: write failed: %s", tmp, strerror(errno));
  if (close(fd) != 0 && rc == AAL_OK)
    rc = aal_fail(err, AAL_EIO, "%s: close failed: %s", tmp, strerror(errno));
  if (rc == AAL_OK && rename(tmp, path) != 0)
    rc = aal_fail(err, AAL_EIO, "%s: cannot rename %s into place: %s", path, tmp,
                  strerror(errno));
  if (rc != AAL_OK)
    unlink(tmp);
  else
    rc = fsync_parent(path, err);
  free(tmp);
  return rc;
}

/* ---------------------------------------------------------------- a growable buffer */

typedef struct {
  unsigned char *data;
  size_t len, cap;
  int failed;
} buffer;

static void put(buffer *b, const void *p, size_t n)
{
  if (b->failed)
    return;
  if (b->len + n > b->cap) {
    size_t cap = b->cap ? b->cap : 4096;
    while (cap < b->len + n)
      cap *= 2;
    unsigned char *d = realloc(b->data, cap);
    if (d == NULL) {
      b->failed = 1;
      return;
    }
    b->data = d;
    b->cap = cap;
  }
  memcpy(b->data + b->len, p, n);
  b->len += n;
}

static void put_u32(buffer *b, uint32_t v) { put(b, &v, sizeof v); }
static void put_u64(buffer *b, uint64_t v) { put(b, &v, sizeof v); }

int aal_checkpoint_save(const aal_resnet *net, uint64_t step, const char *path, aal_error *err)
{
  if (net == NULL || path == NULL)
    return aal_fail(err, AAL_EINVAL, "checkpoint save: NULL argument");
  int rc = AAL_OK;
  buffer b = {0};
  put(&b, MAGIC, 8);
  put_u32(&b, VERSION);
  put_u64(&b, step);
  put_u32(&b, (uint32_t)net->nparams);
  for (int i = 0; i < net->nparams; i++) {
    const aal_param *p = &net->params[i];
    const uint32_t name_len = (uint32_t)strlen(p->name);
    put_u32(&b, name_len);
    put(&b, p->name, name_len);
    put_u32(&b, (uint32_t)p->value->ndim);
    for (int d = 0; d < p->value->ndim; d++)
      put_u64(&b, p->value->shape[d]);
    const unsigned char has_momentum = p->momentum != NULL;
    put(&b, &has_momentum, 1);
    /* the values, wherever they live (a copy from a backend's buffers) */
    const aal_tensor *t[2] = {p->value, p->momentum};
    for (int k = 0; k < 1 + has_momentum && rc == AAL_OK; k++) {
      aal_tensor *h = aal_tensor_host_view(t[k], err);
      if (h == NULL)
        rc = AAL_ENOMEM;
      else
        put(&b, h->data, h->size * sizeof(double));
      aal_tensor_release(h);
    }
  }
  if (rc != AAL_OK) {
    free(b.data);
    return rc;
  }
  put_u64(&b, aal_data_fnv1a64(AAL_FNV1A64_INIT, b.data, b.len));
  rc = b.failed ? aal_fail(err, AAL_ENOMEM, "%s: cannot build the checkpoint in memory", path)
                    : aal_write_atomic(path, b.data, b.len, err);
  free(b.data);
  return rc;
}

/* ---------------------------------------------------------------- loading */

typedef struct {
  const unsigned char *data;
  size_t len, pos;
  const char *path;
} reader;

static int take(reader *r, void *out, size_t n, const char *what, aal_error *err)
{
  if (r->len - r->pos < n)
    return aal_fail(err, AAL_EFORMAT, "%s: truncated checkpoint (reading %s at byte %zu)",
                    r->path, what, r->pos);
  memcpy(out, r->data + r->pos, n);
  r->pos += n;
  return AAL_OK;
}

/* What a path that is not a regular file is, for a message. */
static const char *file_kind(mode_t mode)
{
  if (S_ISDIR(mode))
    return "a directory";
  if (S_ISFIFO(mode))
    return "a FIFO";
  if (S_ISCHR(mode) || S_ISBLK(mode))
    return "a device";
  if (S_ISSOCK(mode))
    return "a socket";
  return "not a regular file";
}

int aal_read_file(const char *path, const char *kind, unsigned char **data, size_t *len,
                  aal_error *err)
{
  *data = NULL;
  *len = 0;
  const int fd = open(path, O_RDONLY | O_NONBLOCK | O_CLOEXEC);
  if (fd < 0)
    return aal_fail(err, AAL_EIO, "%s: cannot open: %s", path, strerror(errno));
  struct stat st;
  int rc = AAL_OK;
  if (fstat(fd, &st) != 0)
    rc = aal_fail(err, AAL_EIO, "%s: cannot stat: %s", path, strerror(errno));
  else if (!S_ISREG(st.st_mode))
    rc = aal_fail(err, AAL_EIO, "%s is %s, not %s", path, file_kind(st.st_mode), kind);
  else if ((uintmax_t)st.st_size > (uintmax_t)SIZE_MAX - 1)
    rc = aal_fail(err, AAL_ENOMEM, "%s: %jd bytes cannot be held in memory", path,
                  (intmax_t)st.st_size);
  const size_t size = rc == AAL_OK ? (size_t)st.st_size : 0;
  if (rc == AAL_OK && (*data = malloc(size > 0 ? size : 1)) == NULL)
    rc = aal_fail(err, AAL_ENOMEM, "%s: cannot allocate %zu bytes", path, size);
  size_t done = 0;
  while (rc == AAL_OK && done < size) {
    const ssize_t got = read(fd, *data + done, size - done);
    if (got < 0 && errno == EINTR)
      continue;
    if (got <= 0)
      rc = aal_fail(err, AAL_EIO, "%s: read failed%s%s", path, got < 0 ? ": " : " (it shrank)",
                    got < 0 ? strerror(errno) : "");
    else
      done += (size_t)got;
  }
  close(fd);
  *len = done;
  return rc;
}

/* seen[i]: parameter i of the network was read already (a tensor twice is refused). */
static int load_tensor(reader *r, aal_resnet *net, unsigned char *seen, aal_error *err)
{
  uint32_t name_len = 0, ndim = 0;
  char name[AAL_PARAM_NAME_LEN];
  int rc = take(r, &name_len, 4, "a name length", err);
  if (rc == AAL_OK && name_len >= sizeof name)
    return aal_fail(err, AAL_EFORMAT, "%s: tensor name of %u bytes", r->path, name_len);
  if (rc == AAL_OK)
    rc = take(r, name, name_len, "a name", err);
  if (rc != AAL_OK)
    return rc;
  name[name_len] = '\0';
  aal_param *p = aal_resnet_find(net, name);
  if (p == NULL)
    return aal_fail(err, AAL_EFORMAT, "%s: tensor '%s' is not a parameter of this network",
                    r->path, name);
  if (seen[p - net->params])
    return aal_fail(err, AAL_EFORMAT, "%s: tensor '%s' appears twice (so another tensor is "
                    "missing)", r->path, name);
  seen[p - net->params] = 1;
  if ((rc = take(r, &ndim, 4, "a rank", err)) != AAL_OK)
    return rc;
  if ((int)ndim != p->value->ndim)
    return aal_fail(err, AAL_EFORMAT, "%s: '%s' has rank %u, the network's has %d", r->path,
                    name, ndim, p->value->ndim);
  for (uint32_t d = 0; d < ndim; d++) {
    uint64_t extent = 0;
    if ((rc = take(r, &extent, 8, "a shape", err)) != AAL_OK)
      return rc;
    if (extent != p->value->shape[d])
      return aal_fail(err, AAL_EFORMAT, "%s: '%s' dimension %u is %llu, the network's is %zu",
                      r->path, name, d, (unsigned long long)extent, p->value->shape[d]);
  }
  unsigned char has_momentum = 0;
  if ((rc = take(r, &has_momentum, 1, "a flag", err)) != AAL_OK)
    return rc;
  if ((rc = take(r, p->value->data, p->value->size * sizeof(double), name, err)) != AAL_OK)
    return rc;
  if (!has_momentum) {
    aal_tensor_release(p->momentum);
    p->momentum = NULL;
    return AAL_OK;
  }
  if (p->momentum == NULL && (p->momentum = aal_tensor_new_like(p->value, err)) == NULL)
    return AAL_ENOMEM;
  return take(r, p->momentum->data, p->value->size * sizeof(double), name, err);
}

static int parse(reader *r, aal_resnet *net, uint64_t *step, aal_error *err)
{
  char magic[8] = {0};
  uint32_t version = 0, count = 0;
  if (r->len < 8 + 4 + 8 + 4 + 8)
    return aal_fail(err, AAL_EFORMAT, "%s: truncated checkpoint (%zu bytes)", r->path, r->len);
  int rc = take(r, magic, 8, "the magic", err);
  if (rc != AAL_OK)
    return rc;
  if (memcmp(magic, MAGIC, 8) != 0)
    return aal_fail(err, AAL_EFORMAT, "%s: not an aal checkpoint", r->path);
  uint64_t stored;
  memcpy(&stored, r->data + (r->len - 8), 8);
  if (stored != aal_data_fnv1a64(AAL_FNV1A64_INIT, r->data, r->len - 8))
    return aal_fail(err, AAL_EFORMAT, "%s: checksum mismatch (corrupt or truncated)", r->path);
  r->len -= 8;
  if ((rc = take(r, &version, 4, "the version", err)) != AAL_OK)
    return rc;
  if (version != VERSION)
    return aal_fail(err, AAL_EFORMAT, "%s: checkpoint version %u, this build reads %u",
                    r->path, version, VERSION);
  if ((rc = take(r, step, 8, "the step", err)) != AAL_OK ||
      (rc = take(r, &count, 4, "the count", err)) != AAL_OK)
    return rc;
  if ((int)count != net->nparams)
    return aal_fail(err, AAL_EFORMAT, "%s: %u tensors, the network has %d (another "
                    "configuration?)", r->path, count, net->nparams);
  unsigned char *seen = calloc((size_t)count + 1, 1);
  if (seen == NULL)
    return aal_fail(err, AAL_ENOMEM, "%s: out of memory", r->path);
  for (uint32_t i = 0; i < count && rc == AAL_OK; i++)
    rc = load_tensor(r, net, seen, err);
  free(seen);
  if (rc == AAL_OK && r->pos != r->len)
    rc = aal_fail(err, AAL_EFORMAT, "%s: %zu unexpected bytes at the end", r->path,
                  r->len - r->pos);
  return rc;
}

int aal_checkpoint_load(aal_resnet *net, uint64_t *step, const char *path, aal_error *err)
{
  if (net == NULL || step == NULL || path == NULL)
    return aal_fail(err, AAL_EINVAL, "checkpoint load: NULL argument");
  unsigned char *data = NULL;
  size_t len = 0;
  /* the values are read into host tensors: parameters that live on a backend come home
   * first (the trainer moves them back with aal_resnet_move) */
  int rc = aal_resnet_move(net, aal_ops_ref(), err);
  if (rc == AAL_OK)
    rc = aal_read_file(path, "a checkpoint file", &data, &len, err);
  if (rc == AAL_OK) {
    reader r = {data, len, 0, path};
    rc = parse(&r, net, step, err);
  }
  free(data);
  return rc;
}
