/* ckpt_cmp A B BOUND: compares two checkpoints (sim/train/checkpoint.h's format, read
 * here independently of the loader) tensor by tensor, values and momentum buffers.  The
 * error of an element is |a - b| / max|a| over its tensor (a tensor of zeros: |a - b|).
 * Prints the worst element; exits 0 when it is <= BOUND (NaN fails), 1 when not, 2 when
 * a file is malformed or the two hold different tensors. */
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sim/data/data.h"

typedef struct {
  char name[256];
  uint64_t size;
  const double *value, *momentum; /* momentum NULL when absent */
} entry;

typedef struct {
  unsigned char *bytes;
  size_t len, at;
  const char *path;
} reader;

static int take(reader *r, void *out, size_t n)
{
  if (r->len - r->at < n)
    return fprintf(stderr, "ckpt_cmp: %s: truncated at byte %zu\n", r->path, r->at), -1;
  memcpy(out, r->bytes + r->at, n);
  r->at += n;
  return 0;
}

static int load(const char *path, reader *r, entry **out, uint32_t *count, uint64_t *step)
{
  FILE *f = fopen(path, "rb");
  if (f == NULL)
    return fprintf(stderr, "ckpt_cmp: cannot open %s\n", path), -1;
  fseek(f, 0, SEEK_END);
  const long len = ftell(f);
  fseek(f, 0, SEEK_SET);
  r->bytes = malloc(len > 0 ? (size_t)len : 1);
  r->len = len > 0 ? (size_t)len : 0;
  r->at = 0;
  r->path = path;
  const int got = r->bytes != NULL && fread(r->bytes, 1, r->len, f) == r->len;
  fclose(f);
  if (!got || r->len < 8 + 8 || memcmp(r->bytes, "AALCKPT\0", 8) != 0)
    return fprintf(stderr, "ckpt_cmp: %s: not a checkpoint\n", path), -1;
  uint64_t sum;
  memcpy(&sum, r->bytes + r->len - 8, 8);
  if (aal_data_fnv1a64(AAL_FNV1A64_INIT, r->bytes, r->len - 8) != sum)
    return fprintf(stderr, "ckpt_cmp: %s: bad checksum\n", path), -1;
  r->len -= 8;
  r->at = 8;
  uint32_t version;
  if (take(r, &version, 4) || take(r, step, 8) || take(r, count, 4))
    return -1;
  entry *e = calloc(*count ? *count : 1, sizeof *e);
  if (e == NULL)
    return -1;
  for (uint32_t i = 0; i < *count; i++) {
    uint32_t nlen, ndim;
    if (take(r, &nlen, 4) || nlen >= sizeof e[i].name || take(r, e[i].name, nlen) ||
        take(r, &ndim, 4) || ndim > 8)
      return fprintf(stderr, "ckpt_cmp: %s: bad entry %u\n", path, i), -1;
    e[i].size = 1;
    for (uint32_t d = 0; d < ndim; d++) {
      uint64_t s;
      if (take(r, &s, 8))
        return -1;
      e[i].size *= s;
    }
    unsigned char has_m;
    if (take(r, &has_m, 1) || r->len - r->at < e[i].size * 8 * (has_m ? 2 : 1))
      return fprintf(stderr, "ckpt_cmp: %s: %s truncated\n", path, e[i].name), -1;
    e[i].value = (const double *)(r->bytes + r->at); /* the file's doubles, unaligned-safe
                                                        reads below copy them */
    r->at += e[i].size * 8;
    e[i].momentum = has_m ? (const double *)(r->bytes + r->at) : NULL;
    r->at += has_m ? e[i].size * 8 : 0;
  }
  *out = e;
  return 0;
}

static double at(const double *p, uint64_t i)
{
  double v;
  memcpy(&v, (const unsigned char *)p + i * 8, 8);
  return v;
}

typedef struct {
  double err, a, b;
  const char *name, *what;
  uint64_t index;
} worst;

static void compare(const entry *x, const double *pa, const double *pb,
                    const char *what, worst *w)
{
  double scale = 0;
  for (uint64_t i = 0; i < x->size; i++)
    scale = fmax(scale, fabs(at(pa, i)));
  for (uint64_t i = 0; i < x->size; i++) {
    const double a = at(pa, i), b = at(pb, i);
    const double e = scale > 0 ? fabs(a - b) / scale : fabs(a - b);
    /* a NaN becomes the worst and stays it */
    if (w->name == NULL || (!isnan(w->err) && (isnan(e) || e > w->err)))
      *w = (worst){e, a, b, x->name, what, i};
  }
}

int main(int argc, char **argv)
{
  if (argc != 4) {
    fprintf(stderr, "usage: ckpt_cmp A B BOUND\n");
    return 2;
  }
  const double bound = strtod(argv[3], NULL);
  reader ra, rb;
  entry *a, *b;
  uint32_t na, nb;
  uint64_t sa, sb;
  if (load(argv[1], &ra, &a, &na, &sa) || load(argv[2], &rb, &b, &nb, &sb))
    return 2;
  if (na != nb || sa != sb) {
    fprintf(stderr, "ckpt_cmp: %u tensors at step %" PRIu64 " against %u at step %" PRIu64
            "\n", na, sa, nb, sb);
    return 2;
  }
  worst w = {0, 0, 0, NULL, NULL, 0};
  for (uint32_t i = 0; i < na; i++) {
    const entry *y = NULL;
    for (uint32_t j = 0; j < nb && y == NULL; j++)
      if (strcmp(a[i].name, b[j].name) == 0)
        y = &b[j];
    if (y == NULL || y->size != a[i].size || (y->momentum == NULL) != (a[i].momentum == NULL)) {
      fprintf(stderr, "ckpt_cmp: %s differs in presence or shape\n", a[i].name);
      return 2;
    }
    compare(&a[i], a[i].value, y->value, "value", &w);
    if (a[i].momentum != NULL)
      compare(&a[i], a[i].momentum, y->momentum, "momentum", &w);
  }
  printf("ckpt_cmp: %u tensors at step %" PRIu64 "; worst relative difference %.3g at %s %s[%"
         PRIu64 "] (%.17g vs %.17g); bound %g\n", na, sa, w.err, w.name ? w.name : "-",
         w.what ? w.what : "", w.index, w.a, w.b, bound);
  free(a);
  free(b);
  free(ra.bytes);
  free(rb.bytes);
  return w.err <= bound ? 0 : 1;
}
