/* The Tiny ImageNet loader: scanning the tree (text files, file lists, fingerprint) and
 * decoding the JPEGs with libjpeg.  The cache (sim/data/cache.c) sits on top of the scan.
 *
 * libjpeg's default error handler calls exit(), and it reports a truncated file or
 * corrupt entropy data only as a warning (it pads the image with grey and carries on).
 * Both are routed here to a longjmp back into aal_data_decode_jpeg, which returns
 * AAL_EFORMAT naming the file: a dataset with a damaged image is refused, never
 * silently trained on. */
#include "sim/data/data.h"

#include <dirent.h>
#include <errno.h>
#include <inttypes.h>
#include <setjmp.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <time.h>

#include <jerror.h>
#include <jpeglib.h>

/* Text files larger than this are refused (the real words.txt is 2.6 MB). */
#define TEXT_MAX_BYTES ((size_t)256 << 20)

/* ------------------------------------------------------------------ hashing */

uint64_t aal_data_fnv1a64(uint64_t h, const void *data, size_t len)
{
  const unsigned char *p = data;
  for (size_t i = 0; i < len; i++) {
    h ^= p[i];
    h *= UINT64_C(1099511628211);
  }
  return h;
}

static uint64_t fnv_u64(uint64_t h, uint64_t v)
{
  unsigned char b[8]; /* little-endian, so the fingerprint does not depend on the host */
  for (int i = 0; i < 8; i++)
    b[i] = (unsigned char)(v >> (8 * i));
  return aal_data_fnv1a64(h, b, sizeof b);
}

static uint64_t fnv_str(uint64_t h, const char *s)
{
  return aal_data_fnv1a64(h, s, strlen(s) + 1); /* with the NUL, so "ab"+"c" != "a"+"bc" */
}

/* ------------------------------------------------------------------ helpers */

double aal_data_now(void)
{
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

char *aal_data_join(const char *a, const char *b)
{
  const size_t la = strlen(a), lb = strlen(b);
  if (la > SIZE_MAX / 2 - lb - 2)
    return NULL;
  char *p = malloc(la + lb + 2);
  if (p == NULL)
    return NULL;
  memcpy(p, a, la);
  size_t k = la;
  if (la > 0 && a[la - 1] != '/')
    p[k++] = '/';
  memcpy(p + k, b, lb + 1);
  return p;
}

/* Reads a whole text file, NUL-terminated; *len excludes the NUL. */
static int read_text(const char *path, char **text, size_t *len, aal_error *err)
{
  *text = NULL;
  *len = 0;
  FILE *f = fopen(path, "rb");
  if (f == NULL)
    return aal_fail(err, AAL_EIO, "%s: cannot open: %s", path, strerror(errno));
  size_t cap = 4096, n = 0;
  char *buf = malloc(cap);
  if (buf == NULL) {
    fclose(f);
    return aal_fail(err, AAL_ENOMEM, "%s: out of memory reading the file", path);
  }
  for (;;) {
    if (n + 1 >= cap) {
      if (cap >= TEXT_MAX_BYTES) {
        free(buf);
        fclose(f);
        return aal_fail(err, AAL_EFORMAT, "%s: larger than %zu bytes, not a text file of "
                        "the dataset", path, TEXT_MAX_BYTES);
      }
      char *nb = realloc(buf, cap * 2);
      if (nb == NULL) {
        free(buf);
        fclose(f);
        return aal_fail(err, AAL_ENOMEM, "%s: out of memory reading the file", path);
      }
      buf = nb;
      cap *= 2;
    }
    const size_t got = fread(buf + n, 1, cap - 1 - n, f);
    n += got;
    if (got == 0)
      break;
  }
  const int bad = ferror(f);
  fclose(f);
  if (bad) {
    free(buf);
    return aal_fail(err, AAL_EIO, "%s: read error", path);
  }
  if (memchr(buf, '\0', n) != NULL) {
    free(buf);
    return aal_fail(err, AAL_EFORMAT, "%s: contains a NUL byte, not a text file", path);
  }
  buf[n] = '\0';
  *text = buf;
  *len = n;
  return AAL_OK;
}

/* Splits text in place into lines (without '\n' and a trailing '\r'); calls fn on each
 * with its 1-based line number; stops at the first failure. */
typedef int (*line_fn)(void *ctx, char *line, size_t lineno, aal_error *err);

static int for_each_line(char *text, line_fn fn, void *ctx, aal_error *err)
{
  size_t lineno = 0;
  char *p = text;
  while (*p != '\0') {
    char *nl = strchr(p, '\n');
    char *next = nl != NULL ? nl + 1 : p + strlen(p);
    if (nl != NULL)
      *nl = '\0';
    const size_t l = strlen(p);
    if (l > 0 && p[l - 1] == '\r')
      p[l - 1] = '\0';
    lineno++;
    const int rc = fn(ctx, p, lineno, err);
    if (rc != AAL_OK)
      return rc;
    p = next;
  }
  return AAL_OK;
}

static char *trim(char *s)
{
  while (*s == ' ' || *s == '\t')
    s++;
  size_t l = strlen(s);
  while (l > 0 && (s[l - 1] == ' ' || s[l - 1] == '\t'))
    s[--l] = '\0';
  return s;
}

static int is_jpeg_name(const char *name)
{
  const size_t l = strlen(name);
  if (name[0] == '.')
    return 0; /* hidden files, editor and temp files */
  return (l > 5 && strcasecmp(name + l - 5, ".jpeg") == 0) ||
         (l > 4 && strcasecmp(name + l - 4, ".jpg") == 0);
}

static int cmp_str(const void *a, const void *b)
{
  return strcmp(*(char *const *)a, *(char *const *)b);
}

static void free_strs(char **v, size_t n)
{
  if (v == NULL)
    return;
  for (size_t i = 0; i < n; i++)
    free(v[i]);
  free(v);
}

/* The JPEG file names in dir, sorted by strcmp (byte order, independent of the locale). */
static int list_jpegs(const char *dir, char ***names, size_t *count, aal_error *err)
{
  *names = NULL;
  *count = 0;
  DIR *d = opendir(dir);
  if (d == NULL)
    return aal_fail(err, AAL_EIO, "%s: cannot open directory: %s", dir, strerror(errno));
  size_t n = 0, cap = 0;
  char **v = NULL;
  int rc = AAL_OK;
  for (;;) {
    errno = 0;
    const struct dirent *e = readdir(d);
    if (e == NULL) {
      if (errno != 0)
        rc = aal_fail(err, AAL_EIO, "%s: cannot read directory: %s", dir, strerror(errno));
      break;
    }
    if (!is_jpeg_name(e->d_name))
      continue;
    if (n == cap) {
      const size_t nc = cap == 0 ? 64 : cap * 2;
      char **nv = nc > SIZE_MAX / sizeof *nv ? NULL : realloc(v, nc * sizeof *nv);
      if (nv == NULL) {
        rc = aal_fail(err, AAL_ENOMEM, "%s: out of memory listing the directory", dir);
        break;
      }
      v = nv;
      cap = nc;
    }
    if ((v[n] = strdup(e->d_name)) == NULL) {
      rc = aal_fail(err, AAL_ENOMEM, "%s: out of memory listing the directory", dir);
      break;
    }
    n++;
  }
  closedir(d);
  if (rc != AAL_OK) {
    free_strs(v, n);
    return rc;
  }
  if (n > 1)
    qsort(v, n, sizeof *v, cmp_str);
  *names = v;
  *count = n;
  return AAL_OK;
}

/* ------------------------------------------------------------------ the scan */

void aal_data_scan_free(aal_data_scan *s)
{
  if (s == NULL)
    return;
  free(s->dir);
  free(s->wnids);
  free_strs(s->words, (size_t)(s->classes > 0 ? s->classes : 0));
  free(s->sorted);
  free_strs(s->train_paths, s->n_train);
  free(s->train_labels);
  free_strs(s->val_paths, s->n_val);
  free(s->val_labels);
  free(s);
}

typedef struct {
  aal_data_scan *s;
  const char *path;
  size_t *wnid_line; /* line of each wnid, for duplicate messages */
  size_t cap;
} wnid_ctx;

static int wnid_line(void *vctx, char *line, size_t lineno, aal_error *err)
{
  wnid_ctx *c = vctx;
  char *w = trim(line);
  if (*w == '\0')
    return AAL_OK;
  const size_t l = strlen(w);
  if (l >= AAL_DATA_WNID_MAX)
    return aal_fail(err, AAL_EFORMAT, "%s line %zu: wnid '%.40s...' is longer than %d "
                    "characters", c->path, lineno, w, AAL_DATA_WNID_MAX - 1);
  if (strpbrk(w, "/ \t\\") != NULL || strcmp(w, ".") == 0 || strcmp(w, "..") == 0)
    return aal_fail(err, AAL_EFORMAT, "%s line %zu: '%s' is not a valid wnid (a directory "
                    "name without '/' or blanks)", c->path, lineno, w);
  aal_data_scan *s = c->s;
  if ((size_t)s->classes == c->cap) {
    const size_t nc = c->cap == 0 ? 256 : c->cap * 2;
    if (nc > (size_t)1 << 24)
      return aal_fail(err, AAL_EFORMAT, "%s: more than %zu wnids", c->path, c->cap);
    char(*nw)[AAL_DATA_WNID_MAX] = realloc(s->wnids, nc * sizeof *nw);
    if (nw == NULL)
      return aal_fail(err, AAL_ENOMEM, "%s: out of memory", c->path);
    s->wnids = nw;
    size_t *nl = realloc(c->wnid_line, nc * sizeof *nl);
    if (nl == NULL)
      return aal_fail(err, AAL_ENOMEM, "%s: out of memory", c->path);
    c->wnid_line = nl;
    c->cap = nc;
  }
  memcpy(s->wnids[s->classes], w, l + 1);
  c->wnid_line[s->classes] = lineno;
  s->classes++;
  return AAL_OK;
}

/* s->sorted: class indices sorted by wnid, for lookups by name. */
typedef struct {
  int idx;
  const char *wnid;
} wnid_key;

static int cmp_key(const void *a, const void *b)
{
  return strcmp(((const wnid_key *)a)->wnid, ((const wnid_key *)b)->wnid);
}

int aal_data_scan_find(const aal_data_scan *s, const char *wnid)
{
  size_t lo = 0, hi = (size_t)s->classes;
  while (lo < hi) {
    const size_t mid = lo + (hi - lo) / 2;
    const int c = strcmp(s->wnids[s->sorted[mid]], wnid);
    if (c == 0)
      return s->sorted[mid];
    if (c < 0)
      lo = mid + 1;
    else
      hi = mid;
  }
  return -1;
}

static int parse_wnids(aal_data_scan *s, const char *path, char *text, aal_error *err)
{
  wnid_ctx c = {s, path, NULL, 0};
  int rc = for_each_line(text, wnid_line, &c, err);
  if (rc == AAL_OK && s->classes == 0)
    rc = aal_fail(err, AAL_EFORMAT, "%s: no wnids (the file is empty)", path);
  wnid_key *keys = NULL;
  if (rc == AAL_OK) {
    keys = malloc((size_t)s->classes * sizeof *keys);
    s->sorted = malloc((size_t)s->classes * sizeof *s->sorted);
    if (keys == NULL || s->sorted == NULL)
      rc = aal_fail(err, AAL_ENOMEM, "%s: out of memory", path);
  }
  if (rc == AAL_OK) {
    for (int i = 0; i < s->classes; i++)
      keys[i] = (wnid_key){i, s->wnids[i]};
    qsort(keys, (size_t)s->classes, sizeof *keys, cmp_key);
    for (int i = 0; i < s->classes; i++) {
      s->sorted[i] = keys[i].idx;
      if (i > 0 && strcmp(keys[i].wnid, keys[i - 1].wnid) == 0) {
        const size_t l1 = c.wnid_line[keys[i - 1].idx], l2 = c.wnid_line[keys[i].idx];
        rc = aal_fail(err, AAL_EFORMAT, "%s line %zu: wnid '%s' repeats line %zu", path,
                      l1 > l2 ? l1 : l2, keys[i].wnid, l1 > l2 ? l2 : l1);
        break;
      }
    }
  }
  free(keys);
  free(c.wnid_line);
  return rc;
}

typedef struct {
  aal_data_scan *s;
  const char *path;
} words_ctx;

static int words_line(void *vctx, char *line, size_t lineno, aal_error *err)
{
  words_ctx *c = vctx;
  if (*trim(line) == '\0')
    return AAL_OK;
  char *tab = strchr(line, '\t');
  if (tab == NULL)
    return aal_fail(err, AAL_EFORMAT, "%s line %zu: expected wnid<TAB>words", c->path,
                    lineno);
  *tab = '\0';
  const int k = aal_data_scan_find(c->s, trim(line));
  if (k < 0)
    return AAL_OK; /* the real words.txt covers all of ImageNet; keep only our classes */
  char *w = strdup(trim(tab + 1));
  if (w == NULL)
    return aal_fail(err, AAL_ENOMEM, "%s: out of memory", c->path);
  free(c->s->words[k]);
  c->s->words[k] = w;
  return AAL_OK;
}

/* One line of val_annotations.txt, kept until the val images are matched to it. */
typedef struct {
  const char *file; /* points into the annotation text */
  int label;
  size_t lineno;
  int used;
} annotation;

typedef struct {
  aal_data_scan *s;
  const char *path;
  annotation *a;
  size_t n, cap;
} annot_ctx;

static int parse_int_field(const char *t, long *v)
{
  char *end = NULL;
  errno = 0;
  *v = strtol(t, &end, 10);
  return end != t && *end == '\0' && errno == 0;
}

static int annot_line(void *vctx, char *line, size_t lineno, aal_error *err)
{
  annot_ctx *c = vctx;
  if (*trim(line) == '\0')
    return AAL_OK;
  char *f[7];
  int nf = 0;
  for (char *p = line; nf < 7;) {
    f[nf++] = p;
    char *tab = strchr(p, '\t');
    if (tab == NULL)
      break;
    *tab = '\0';
    p = tab + 1;
  }
  if (nf != 6)
    return aal_fail(err, AAL_EFORMAT, "%s line %zu: expected 6 tab-separated fields "
                    "(filename, wnid, x0, y0, x1, y1), found %s%d", c->path, lineno,
                    nf == 7 ? "more than " : "", nf == 7 ? 6 : nf);
  const char *file = trim(f[0]), *wnid = trim(f[1]);
  if (*file == '\0' || strchr(file, '/') != NULL)
    return aal_fail(err, AAL_EFORMAT, "%s line %zu: '%s' is not a file name", c->path,
                    lineno, file);
  for (int i = 2; i < 6; i++) {
    long v;
    if (!parse_int_field(trim(f[i]), &v))
      return aal_fail(err, AAL_EFORMAT, "%s line %zu: box field %d '%s' is not an integer",
                      c->path, lineno, i - 1, f[i]);
  }
  const int label = aal_data_scan_find(c->s, wnid);
  if (label < 0)
    return aal_fail(err, AAL_EFORMAT, "%s line %zu: unknown wnid '%s' (not in wnids.txt)",
                    c->path, lineno, wnid);
  if (c->n == c->cap) {
    const size_t nc = c->cap == 0 ? 1024 : c->cap * 2;
    annotation *na = nc > SIZE_MAX / sizeof *na ? NULL : realloc(c->a, nc * sizeof *na);
    if (na == NULL)
      return aal_fail(err, AAL_ENOMEM, "%s: out of memory", c->path);
    c->a = na;
    c->cap = nc;
  }
  c->a[c->n++] = (annotation){file, label, lineno, 0};
  return AAL_OK;
}

static int cmp_annot(const void *a, const void *b)
{
  return strcmp(((const annotation *)a)->file, ((const annotation *)b)->file);
}

/* Appends a file's relative path, size, mtime and ctime to the fingerprint; the file
 * must be a regular file.  The ctime is what catches a file rewritten with the same size
 * and its old mtime put back (touch -r, utimensat, an archive restored over it): the
 * kernel sets it to now on every change of content or metadata, and no call sets it
 * back. */
static int fingerprint_file(aal_data_scan *s, const char *rel, aal_error *err)
{
  char *full = aal_data_join(s->dir, rel);
  if (full == NULL)
    return aal_fail(err, AAL_ENOMEM, "out of memory");
  struct stat st;
  int rc = AAL_OK;
  if (stat(full, &st) != 0)
    rc = aal_fail(err, AAL_EIO, "%s: cannot stat: %s", full, strerror(errno));
  else if (!S_ISREG(st.st_mode))
    rc = aal_fail(err, AAL_EFORMAT, "%s: not a regular file", full);
  free(full);
  if (rc != AAL_OK)
    return rc;
  s->fingerprint = fnv_str(s->fingerprint, rel);
  s->fingerprint = fnv_u64(s->fingerprint, (uint64_t)st.st_size);
  s->fingerprint = fnv_u64(s->fingerprint, (uint64_t)st.st_mtim.tv_sec);
  s->fingerprint = fnv_u64(s->fingerprint, (uint64_t)st.st_mtim.tv_nsec);
  s->fingerprint = fnv_u64(s->fingerprint, (uint64_t)st.st_ctim.tv_sec);
  s->fingerprint = fnv_u64(s->fingerprint, (uint64_t)st.st_ctim.tv_nsec);
  return AAL_OK;
}

static int fingerprint_text(aal_data_scan *s, const char *rel, const char *text, size_t len)
{
  s->fingerprint = fnv_str(s->fingerprint, rel);
  s->fingerprint = fnv_u64(s->fingerprint, (uint64_t)len);
  s->fingerprint = aal_data_fnv1a64(s->fingerprint, text, len);
  return AAL_OK;
}

static int scan_train(aal_data_scan *s, aal_error *err)
{
  size_t cap = 0;
  int rc = AAL_OK;
  for (int k = 0; k < s->classes && rc == AAL_OK; k++) {
    char rel_dir[AAL_DATA_WNID_MAX + 32];
    snprintf(rel_dir, sizeof rel_dir, "train/%s/images", s->wnids[k]);
    char *dir = aal_data_join(s->dir, rel_dir);
    if (dir == NULL)
      return aal_fail(err, AAL_ENOMEM, "out of memory");
    char **names = NULL;
    size_t n = 0;
    rc = list_jpegs(dir, &names, &n, err);
    if (rc == AAL_OK && n == 0)
      rc = aal_fail(err, AAL_EFORMAT, "%s: no JPEG files for class %d (%s)", dir, k,
                    s->wnids[k]);
    free(dir);
    if (rc == AAL_OK && s->n_train + n > cap) {
      size_t nc = cap == 0 ? 1024 : cap;
      while (nc < s->n_train + n)
        nc *= 2;
      char **np = nc > SIZE_MAX / sizeof *np ? NULL : realloc(s->train_paths, nc * sizeof *np);
      if (np != NULL)
        s->train_paths = np;
      int *nl = np == NULL ? NULL : realloc(s->train_labels, nc * sizeof *nl);
      if (nl != NULL)
        s->train_labels = nl;
      if (np == NULL || nl == NULL)
        rc = aal_fail(err, AAL_ENOMEM, "out of memory listing the train images");
      else
        cap = nc;
    }
    for (size_t i = 0; i < n && rc == AAL_OK; i++) {
      char *rel = aal_data_join(rel_dir, names[i]);
      if (rel == NULL) {
        rc = aal_fail(err, AAL_ENOMEM, "out of memory listing the train images");
        break;
      }
      s->train_paths[s->n_train] = rel;
      s->train_labels[s->n_train] = k;
      s->n_train++;
      rc = fingerprint_file(s, rel, err);
    }
    free_strs(names, n);
  }
  return rc;
}

static int scan_val(aal_data_scan *s, char *annot_text, const char *annot_path,
                    aal_error *err)
{
  annot_ctx c = {s, annot_path, NULL, 0, 0};
  int rc = for_each_line(annot_text, annot_line, &c, err);
  if (rc == AAL_OK && c.n > 1) {
    qsort(c.a, c.n, sizeof *c.a, cmp_annot);
    for (size_t i = 1; i < c.n; i++)
      if (strcmp(c.a[i].file, c.a[i - 1].file) == 0) {
        const size_t l1 = c.a[i - 1].lineno, l2 = c.a[i].lineno;
        rc = aal_fail(err, AAL_EFORMAT, "%s line %zu: '%s' is annotated again (line %zu)",
                      annot_path, l1 > l2 ? l1 : l2, c.a[i].file, l1 > l2 ? l2 : l1);
        break;
      }
  }
  char *dir = NULL, **names = NULL;
  size_t n = 0;
  if (rc == AAL_OK) {
    dir = aal_data_join(s->dir, "val/images");
    rc = dir == NULL ? aal_fail(err, AAL_ENOMEM, "out of memory") : list_jpegs(dir, &names, &n, err);
  }
  if (rc == AAL_OK && n == 0)
    rc = aal_fail(err, AAL_EFORMAT, "%s: no JPEG files", dir);
  if (rc == AAL_OK) {
    s->val_paths = calloc(n, sizeof *s->val_paths);
    s->val_labels = calloc(n, sizeof *s->val_labels);
    if (s->val_paths == NULL || s->val_labels == NULL)
      rc = aal_fail(err, AAL_ENOMEM, "out of memory listing the val images");
  }
  for (size_t i = 0; i < n && rc == AAL_OK; i++) {
    const annotation key = {names[i], 0, 0, 0};
    annotation *a = c.n == 0 ? NULL : bsearch(&key, c.a, c.n, sizeof *c.a, cmp_annot);
    if (a == NULL) {
      rc = aal_fail(err, AAL_EFORMAT, "%s/%s: no line for this image in %s", dir, names[i],
                    annot_path);
      break;
    }
    a->used = 1;
    char *rel = aal_data_join("val/images", names[i]);
    if (rel == NULL) {
      rc = aal_fail(err, AAL_ENOMEM, "out of memory listing the val images");
      break;
    }
    s->val_paths[s->n_val] = rel;
    s->val_labels[s->n_val] = a->label;
    s->n_val++;
    rc = fingerprint_file(s, rel, err);
  }
  for (size_t i = 0; i < c.n && rc == AAL_OK; i++)
    if (!c.a[i].used)
      rc = aal_fail(err, AAL_EIO, "%s line %zu: image %s/%s not found", annot_path,
                    c.a[i].lineno, dir, c.a[i].file);
  free_strs(names, n);
  free(dir);
  free(c.a);
  return rc;
}

int aal_data_scan_tree(const char *dir, aal_data_scan **out, aal_error *err)
{
  *out = NULL;
  if (dir == NULL || *dir == '\0')
    return aal_fail(err, AAL_EINVAL, "data directory not given");
  aal_data_scan *s = calloc(1, sizeof *s);
  if (s == NULL || (s->dir = strdup(dir)) == NULL) {
    free(s);
    return aal_fail(err, AAL_ENOMEM, "out of memory");
  }
  s->fingerprint = AAL_FNV1A64_INIT;
  char *path = NULL, *text = NULL;
  size_t len = 0;
  int rc = AAL_OK;

  /* wnids.txt: the classes, in order */
  path = aal_data_join(dir, "wnids.txt");
  rc = path == NULL ? aal_fail(err, AAL_ENOMEM, "out of memory") : read_text(path, &text, &len, err);
  if (rc == AAL_OK) {
    fingerprint_text(s, "wnids.txt", text, len);
    rc = parse_wnids(s, path, text, err);
  }
  free(text);
  text = NULL;
  free(path);
  path = NULL;
  if (rc == AAL_OK) {
    s->words = calloc((size_t)s->classes, sizeof *s->words);
    if (s->words == NULL)
      rc = aal_fail(err, AAL_ENOMEM, "out of memory");
  }

  /* words.txt: optional */
  if (rc == AAL_OK) {
    path = aal_data_join(dir, "words.txt");
    if (path == NULL)
      rc = aal_fail(err, AAL_ENOMEM, "out of memory");
  }
  if (rc == AAL_OK) {
    struct stat st;
    if (stat(path, &st) != 0 && errno == ENOENT) {
      s->fingerprint = fnv_str(s->fingerprint, "words.txt:absent");
    } else {
      rc = read_text(path, &text, &len, err);
      if (rc == AAL_OK) {
        fingerprint_text(s, "words.txt", text, len);
        words_ctx wc = {s, path};
        rc = for_each_line(text, words_line, &wc, err);
      }
      free(text);
      text = NULL;
    }
  }
  for (int k = 0; rc == AAL_OK && k < s->classes; k++)
    if (s->words[k] == NULL && (s->words[k] = strdup("")) == NULL)
      rc = aal_fail(err, AAL_ENOMEM, "out of memory");
  free(path);
  path = NULL;

  if (rc == AAL_OK)
    rc = scan_train(s, err);

  /* val: annotations, then the images */
  if (rc == AAL_OK) {
    path = aal_data_join(dir, "val/val_annotations.txt");
    rc = path == NULL ? aal_fail(err, AAL_ENOMEM, "out of memory") : read_text(path, &text, &len, err);
  }
  if (rc == AAL_OK) {
    fingerprint_text(s, "val/val_annotations.txt", text, len);
    rc = scan_val(s, text, path, err);
  }
  free(text);
  free(path);
  if (rc != AAL_OK) {
    aal_data_scan_free(s);
    return rc;
  }
  *out = s;
  return AAL_OK;
}

/* ------------------------------------------------------------------ JPEG decoding */

typedef struct {
  struct jpeg_error_mgr pub; /* first, so that cinfo->err can be cast to this */
  jmp_buf jump;
} jpeg_trap;

static void trap_error_exit(j_common_ptr cinfo)
{
  longjmp(((jpeg_trap *)cinfo->err)->jump, 1);
}

static void trap_emit_message(j_common_ptr cinfo, int msg_level)
{
  if (msg_level >= 0)
    return; /* trace messages */
  const int code = cinfo->err->msg_code;
  /* Warnings that say nothing about damaged pixels; all others (premature end of
   * file, bad Huffman code, hit marker, extraneous data, ...) mean corrupt data. */
  if (code == JWRN_ADOBE_XFORM || code == JWRN_JFIF_MAJOR || code == JWRN_BOGUS_ICC) {
    cinfo->err->num_warnings++;
    return;
  }
  longjmp(((jpeg_trap *)cinfo->err)->jump, 1);
}

/* Decodes from an open stream; path is for messages.  Kept separate from fopen/fclose so
 * that nothing the longjmp skips owns a resource. */
static int decode_stream(FILE *f, const char *path, uint8_t *out, aal_error *err)
{
  struct jpeg_decompress_struct cinfo;
  jpeg_trap trap;
  JSAMPLE row[AAL_TINY_SIZE * 3];
  cinfo.err = jpeg_std_error(&trap.pub);
  trap.pub.error_exit = trap_error_exit;
  trap.pub.emit_message = trap_emit_message;
  if (setjmp(trap.jump) != 0) {
    char msg[JMSG_LENGTH_MAX];
    (*cinfo.err->format_message)((j_common_ptr)&cinfo, msg);
    jpeg_destroy_decompress(&cinfo);
    return aal_fail(err, AAL_EFORMAT, "%s: corrupt or unreadable JPEG: %s", path, msg);
  }
  jpeg_create_decompress(&cinfo);
  jpeg_stdio_src(&cinfo, f);
  jpeg_read_header(&cinfo, TRUE);
  if (cinfo.image_width != AAL_TINY_SIZE || cinfo.image_height != AAL_TINY_SIZE) {
    const unsigned w = cinfo.image_width, h = cinfo.image_height;
    jpeg_destroy_decompress(&cinfo);
    return aal_fail(err, AAL_EFORMAT, "%s: image is %ux%u, expected %dx%d", path, w, h,
                    AAL_TINY_SIZE, AAL_TINY_SIZE);
  }
  cinfo.out_color_space = JCS_RGB; /* grayscale is replicated to R=G=B */
  cinfo.dct_method = JDCT_ISLOW;   /* the accurate integer IDCT, the same on every host */
  jpeg_start_decompress(&cinfo);
  if (cinfo.output_components != 3 || cinfo.output_width != AAL_TINY_SIZE) {
    const int nc = cinfo.output_components;
    jpeg_destroy_decompress(&cinfo);
    return aal_fail(err, AAL_EFORMAT, "%s: decoded to %d components, expected RGB", path, nc);
  }
  const size_t plane = (size_t)AAL_TINY_SIZE * AAL_TINY_SIZE;
  while (cinfo.output_scanline < cinfo.output_height) {
    JSAMPROW rp = row;
    const size_t y = cinfo.output_scanline;
    if (jpeg_read_scanlines(&cinfo, &rp, 1) != 1)
      continue; /* a stdio source never suspends; kept for safety */
    for (size_t x = 0; x < AAL_TINY_SIZE; x++) /* HWC row -> CHW */
      for (size_t c = 0; c < 3; c++)
        out[c * plane + y * AAL_TINY_SIZE + x] = row[x * 3 + c];
  }
  jpeg_finish_decompress(&cinfo);
  jpeg_destroy_decompress(&cinfo);
  return AAL_OK;
}

int aal_data_decode_jpeg(const char *path, uint8_t *out, aal_error *err)
{
  FILE *f = fopen(path, "rb");
  if (f == NULL)
    return aal_fail(err, AAL_EIO, "%s: cannot open: %s", path, strerror(errno));
  const int rc = decode_stream(f, path, out, err);
  fclose(f);
  return rc;
}

/* ------------------------------------------------------------------ the dataset */

void aal_data_init(aal_data_set *ds)
{
  memset(ds, 0, sizeof *ds);
}

void aal_data_free(aal_data_set *ds)
{
  if (ds == NULL)
    return;
  free(ds->wnids);
  free_strs(ds->words, (size_t)(ds->classes > 0 ? ds->classes : 0));
  free(ds->train.pixels);
  free(ds->train.labels);
  free(ds->val.pixels);
  free(ds->val.labels);
  aal_data_init(ds);
}

const char *aal_data_cache_status_name(enum aal_data_cache_status st)
{
  switch (st) {
  case AAL_DATA_CACHE_NONE: return "no cache";
  case AAL_DATA_CACHE_HIT: return "read from the cache";
  case AAL_DATA_CACHE_NEW: return "decoded, new cache";
  case AAL_DATA_CACHE_STALE: return "tree changed: decoded, cache rebuilt";
  case AAL_DATA_CACHE_CORRUPT: return "cache corrupt: decoded, cache rebuilt";
  }
  return "unknown";
}

const char *aal_data_format_name(enum aal_data_format f)
{
  switch (f) {
  case AAL_DATA_NONE: return "none";
  case AAL_DATA_TINY_IMAGENET: return "tiny-imagenet";
  case AAL_DATA_FASHION_MNIST: return "fashion-mnist";
  }
  return "unknown";
}

int aal_data_alloc_split(aal_data_split *sp, size_t n, size_t image_bytes, aal_error *err)
{
  if (image_bytes == 0 || n > SIZE_MAX / image_bytes || n > SIZE_MAX / sizeof *sp->labels)
    return aal_fail(err, AAL_ENOMEM, "%zu images overflow the address space", n);
  sp->pixels = malloc(n * image_bytes);
  sp->labels = malloc(n * sizeof *sp->labels);
  if (sp->pixels == NULL || sp->labels == NULL)
    return aal_fail(err, AAL_ENOMEM, "out of memory for %zu images (%zu bytes)", n,
                    n * image_bytes);
  sp->n = n;
  return AAL_OK;
}

int aal_data_set_from_scan(const aal_data_scan *s, aal_data_set *ds, aal_error *err)
{
  aal_data_init(ds);
  ds->format = AAL_DATA_TINY_IMAGENET;
  aal_data_geom_tiny(&ds->geom);
  ds->classes = s->classes;
  ds->fingerprint = s->fingerprint;
  ds->wnids = malloc((size_t)s->classes * sizeof *ds->wnids);
  ds->words = calloc((size_t)s->classes, sizeof *ds->words);
  int rc = AAL_OK;
  if (ds->wnids == NULL || ds->words == NULL)
    rc = aal_fail(err, AAL_ENOMEM, "out of memory");
  for (int k = 0; rc == AAL_OK && k < s->classes; k++) {
    memcpy(ds->wnids[k], s->wnids[k], sizeof ds->wnids[k]);
    if ((ds->words[k] = strdup(s->words[k])) == NULL)
      rc = aal_fail(err, AAL_ENOMEM, "out of memory");
  }
  if (rc == AAL_OK)
    rc = aal_data_alloc_split(&ds->train, s->n_train, AAL_TINY_IMAGE_BYTES, err);
  if (rc == AAL_OK)
    rc = aal_data_alloc_split(&ds->val, s->n_val, AAL_TINY_IMAGE_BYTES, err);
  if (rc == AAL_OK) {
    memcpy(ds->train.labels, s->train_labels, s->n_train * sizeof *s->train_labels);
    memcpy(ds->val.labels, s->val_labels, s->n_val * sizeof *s->val_labels);
  } else {
    aal_data_free(ds);
  }
  return rc;
}

int aal_data_decode_scan(const aal_data_scan *s, aal_data_set *ds, FILE *log,
                         aal_error *err)
{
  const size_t total = s->n_train + s->n_val;
  double last = aal_data_now();
  for (size_t i = 0; i < total; i++) {
    const int is_train = i < s->n_train;
    const size_t j = is_train ? i : i - s->n_train;
    char *full = aal_data_join(s->dir, is_train ? s->train_paths[j] : s->val_paths[j]);
    if (full == NULL)
      return aal_fail(err, AAL_ENOMEM, "out of memory");
    uint8_t *dst = (is_train ? ds->train.pixels : ds->val.pixels) + j * AAL_TINY_IMAGE_BYTES;
    const int rc = aal_data_decode_jpeg(full, dst, err);
    free(full);
    if (rc != AAL_OK)
      return rc;
    if (log != NULL && (i & 63) == 63) {
      const double now = aal_data_now();
      if (now - last >= 2.0) {
        fprintf(log, "aal data: decoded %zu/%zu images of %s\n", i + 1, total, s->dir);
        fflush(log);
        last = now;
      }
    }
  }
  return AAL_OK;
}

int aal_data_read_tree(const char *dir, aal_data_set *ds, FILE *log, aal_error *err)
{
  aal_data_init(ds);
  aal_data_scan *s = NULL;
  int rc = aal_data_scan_tree(dir, &s, err);
  if (rc == AAL_OK)
    rc = aal_data_set_from_scan(s, ds, err);
  if (rc == AAL_OK)
    rc = aal_data_decode_scan(s, ds, log, err);
  if (rc != AAL_OK)
    aal_data_free(ds);
  else
    ds->cache_rebuilt = 1;
  aal_data_scan_free(s);
  return rc;
}

int aal_data_fingerprint(const char *dir, uint64_t *fingerprint, aal_error *err)
{
  aal_data_scan *s = NULL;
  const int rc = aal_data_scan_tree(dir, &s, err);
  if (rc == AAL_OK)
    *fingerprint = s->fingerprint;
  aal_data_scan_free(s);
  return rc;
}
