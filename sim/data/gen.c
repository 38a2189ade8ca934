/* A generator of miniature datasets in the Tiny ImageNet layout, for tests and for
 * runs that should not depend on the real download.
 *
 * An image of class c is a 64x64 RGB picture made of
 *   - a background of the class's mean colour (jittered per image), modulated by an
 *     oriented sinusoidal grating with the class's orientation and frequency (both
 *     jittered per image, random phase);
 *   - a shape (circle, square or triangle, chosen per class) in the class's shape
 *     colour, random position and size, carrying a fainter copy of the grating;
 *   - a random brightness factor and per-pixel Gaussian noise.
 * The class is thus in several weak cues (orientation, frequency, two colours, shape)
 * of which none is clean: the jitter makes neighbouring classes overlap, so that a
 * classifier must combine them; it is learnable, not trivial.
 *
 * Randomness: every image has its own mt19937 stream, seeded with
 * (base(seed, split) + serial) mod 2^32 where serial is unique within the dataset
 * (train: class * 2^17 + i; val: j), so that one image can be regenerated on its own
 * (aal_gen_image) and no two images of a dataset share a stream.  Class parameters come
 * from a stream seeded with base(seed, "class") + c.  The output is deterministic on a
 * given host (same libm, same libjpeg). */
#include "sim/data/data.h"

#include <dirent.h>
#include <errno.h>
#include <math.h>
#include <setjmp.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <gsl/gsl_randist.h>
#include <gsl/gsl_rng.h>
#include <jpeglib.h>

#define GEN_QUALITY 90
#define GEN_MAX_CLASSES 10000
#define GEN_MAX_PER_CLASS 100000 /* < 2^17, so the train serial is unique */
#define WNID_BASE 90000000L

static const double gen_pi = 3.14159265358979323846;

enum { TAG_CLASS = 1, TAG_TRAIN = 2, TAG_VAL = 3, TAG_SHUFFLE = 4 };

static uint64_t splitmix64(uint64_t x)
{
  x += UINT64_C(0x9E3779B97F4A7C15);
  x = (x ^ (x >> 30)) * UINT64_C(0xBF58476D1CE4E5B9);
  x = (x ^ (x >> 27)) * UINT64_C(0x94D049BB133111EB);
  return x ^ (x >> 31);
}

static uint32_t stream_base(unsigned long seed, int tag)
{
  return (uint32_t)(splitmix64(splitmix64((uint64_t)seed) ^ (uint64_t)tag) >> 32);
}

typedef struct {
  double theta, freq, amp;  /* grating: orientation (rad), cycles per pixel, amplitude */
  double mean[3];           /* background colour in [0, 1] */
  double shape_col[3];
  int shape;                /* 0 circle, 1 square, 2 triangle */
} class_params;

static void class_params_get(unsigned long seed, int c, gsl_rng *r, class_params *p)
{
  gsl_rng_set(r, (unsigned long)(uint32_t)(stream_base(seed, TAG_CLASS) + (uint32_t)c));
  p->theta = gen_pi * gsl_rng_uniform(r);
  p->freq = 0.05 + 0.20 * gsl_rng_uniform(r);
  p->amp = 0.10 + 0.15 * gsl_rng_uniform(r);
  for (int k = 0; k < 3; k++)
    p->mean[k] = 0.25 + 0.5 * gsl_rng_uniform(r);
  for (int k = 0; k < 3; k++)
    p->shape_col[k] = gsl_rng_uniform(r);
  p->shape = (int)gsl_rng_uniform_int(r, 3);
}

static int is_gray(enum aal_gen_split split, int cls, int index)
{
  return split == AAL_GEN_TRAIN ? (cls + index) % 17 == 5 : index % 17 == 5;
}

static double clamp01(double v)
{
  return v < 0 ? 0 : v > 1 ? 1 : v;
}

static int in_shape(int shape, double dx, double dy, double rad)
{
  if (shape == 0)
    return dx * dx + dy * dy <= rad * rad;
  if (shape == 1)
    return fabs(dx) <= 0.8 * rad && fabs(dy) <= 0.8 * rad;
  /* triangle, apex up: half-width grows from 0 at the top to rad at the bottom */
  return dy >= -rad && dy <= rad && fabs(dx) <= 0.5 * (dy + rad);
}

/* Renders image (split, cls, index) into out [3][64][64]; box = x0, y0, x1, y1 of the
 * shape.  r is reseeded here. */
static void render(unsigned long seed, enum aal_gen_split split, int cls, int index,
                   gsl_rng *r, uint8_t *out, int box[4])
{
  class_params p;
  class_params_get(seed, cls, r, &p);
  const uint32_t serial = split == AAL_GEN_TRAIN ? ((uint32_t)cls << 17) + (uint32_t)index
                                                 : (uint32_t)index;
  gsl_rng_set(r, (unsigned long)(uint32_t)(stream_base(seed, split == AAL_GEN_TRAIN ? TAG_TRAIN
                                                                                 : TAG_VAL) +
                                           serial));
  const double theta = p.theta + gsl_ran_gaussian(r, 0.15);
  const double freq = p.freq * (1.0 + gsl_ran_gaussian(r, 0.10));
  const double phase = 2.0 * gen_pi * gsl_rng_uniform(r);
  double bg[3], fg[3];
  for (int k = 0; k < 3; k++)
    bg[k] = p.mean[k] + gsl_ran_gaussian(r, 0.06);
  for (int k = 0; k < 3; k++)
    fg[k] = p.shape_col[k] + gsl_ran_gaussian(r, 0.08);
  const double rad = 8.0 + 8.0 * gsl_rng_uniform(r);
  const double cx = rad + (63.0 - 2.0 * rad) * gsl_rng_uniform(r);
  const double cy = rad + (63.0 - 2.0 * rad) * gsl_rng_uniform(r);
  const double bright = 0.75 + 0.5 * gsl_rng_uniform(r);
  const double ct = cos(theta), st = sin(theta);
  const size_t plane = (size_t)AAL_TINY_SIZE * AAL_TINY_SIZE;
  for (int y = 0; y < AAL_TINY_SIZE; y++)
    for (int x = 0; x < AAL_TINY_SIZE; x++) {
      const double g = sin(2.0 * gen_pi * freq * (x * ct + y * st) + phase);
      /* shape coverage from 4x4 subsamples: soft edges, as a camera would see them */
      int inside = 0;
      for (int sy = 0; sy < 4; sy++)
        for (int sx = 0; sx < 4; sx++)
          inside += in_shape(p.shape, x + (sx - 1.5) / 4.0 - cx, y + (sy - 1.5) / 4.0 - cy, rad);
      const double alpha = inside / 16.0;
      for (int k = 0; k < 3; k++) {
        const double v = alpha * (fg[k] + 0.4 * p.amp * g) + (1.0 - alpha) * (bg[k] + p.amp * g);
        const double n = gsl_ran_gaussian_ziggurat(r, 0.03);
        out[k * plane + (size_t)y * AAL_TINY_SIZE + (size_t)x] =
            (uint8_t)lround(255.0 * clamp01(bright * v + n));
      }
    }
  if (is_gray(split, cls, index))
    for (size_t i = 0; i < plane; i++) { /* ITU-R BT.601 luma */
      const long yv = lround(0.299 * out[i] + 0.587 * out[plane + i] + 0.114 * out[2 * plane + i]);
      out[i] = out[plane + i] = out[2 * plane + i] = (uint8_t)(yv > 255 ? 255 : yv);
    }
  const double h = p.shape == 1 ? 0.8 * rad : rad;
  const double bx[4] = {floor(cx - h), floor(cy - h), ceil(cx + h), ceil(cy + h)};
  for (int k = 0; k < 4; k++)
    box[k] = bx[k] < 0 ? 0 : bx[k] > 63 ? 63 : (int)bx[k];
}

static int check_args(int classes, enum aal_gen_split split, int cls, int index,
                      aal_error *err)
{
  if (classes < 1 || classes > GEN_MAX_CLASSES)
    return aal_fail(err, AAL_EINVAL, "classes %d must be in 1..%d", classes, GEN_MAX_CLASSES);
  if (cls < 0 || cls >= classes)
    return aal_fail(err, AAL_EINVAL, "class %d must be in 0..%d", cls, classes - 1);
  if (split != AAL_GEN_TRAIN && split != AAL_GEN_VAL)
    return aal_fail(err, AAL_EINVAL, "split %d is neither train nor val", (int)split);
  const long max = split == AAL_GEN_TRAIN ? GEN_MAX_PER_CLASS
                                          : (long)GEN_MAX_CLASSES * GEN_MAX_PER_CLASS;
  if (index < 0 || index >= max)
    return aal_fail(err, AAL_EINVAL, "image index %d must be in 0..%ld", index, max - 1);
  return AAL_OK;
}

int aal_gen_image(unsigned long seed, int classes, enum aal_gen_split split, int cls,
                  int index, uint8_t *out, int *grayscale, aal_error *err)
{
  const int rc = check_args(classes, split, cls, index, err);
  if (rc != AAL_OK)
    return rc;
  gsl_rng *r = gsl_rng_alloc(gsl_rng_mt19937);
  if (r == NULL)
    return aal_fail(err, AAL_ENOMEM, "out of memory for a random generator");
  int box[4];
  render(seed, split, cls, index, r, out, box);
  gsl_rng_free(r);
  if (grayscale != NULL)
    *grayscale = is_gray(split, cls, index);
  return AAL_OK;
}

/* labels [classes * per_class_val]: per_class_val copies of each class, shuffled. */
static int val_classes(unsigned long seed, int classes, int per_class_val, int **labels,
                       aal_error *err)
{
  const size_t n = (size_t)classes * (size_t)per_class_val;
  *labels = NULL;
  int *v = malloc((n > 0 ? n : 1) * sizeof *v);
  gsl_rng *r = gsl_rng_alloc(gsl_rng_mt19937);
  if (v == NULL || r == NULL) {
    free(v);
    if (r != NULL)
      gsl_rng_free(r);
    return aal_fail(err, AAL_ENOMEM, "out of memory for %zu val labels", n);
  }
  gsl_rng_set(r, (unsigned long)stream_base(seed, TAG_SHUFFLE));
  for (size_t i = 0; i < n; i++)
    v[i] = (int)(i % (size_t)classes);
  for (size_t i = n; i > 1; i--) {
    const size_t j = (size_t)gsl_rng_uniform_int(r, (unsigned long)i);
    const int t = v[i - 1];
    v[i - 1] = v[j];
    v[j] = t;
  }
  gsl_rng_free(r);
  *labels = v;
  return AAL_OK;
}

static int check_counts(int classes, int per_class_train, int per_class_val, aal_error *err)
{
  if (classes < 1 || classes > GEN_MAX_CLASSES)
    return aal_fail(err, AAL_EINVAL, "classes %d must be in 1..%d", classes, GEN_MAX_CLASSES);
  if (per_class_train < 1 || per_class_train > GEN_MAX_PER_CLASS)
    return aal_fail(err, AAL_EINVAL, "train images per class %d must be in 1..%d",
                    per_class_train, GEN_MAX_PER_CLASS);
  if (per_class_val < 1 || per_class_val > GEN_MAX_PER_CLASS)
    return aal_fail(err, AAL_EINVAL, "val images per class %d must be in 1..%d",
                    per_class_val, GEN_MAX_PER_CLASS);
  if ((long long)classes * per_class_val > 0x7fffffffLL ||
      (long long)classes * per_class_train > 0x7fffffffLL)
    return aal_fail(err, AAL_EINVAL, "%d classes x %d images is too many", classes,
                    per_class_train > per_class_val ? per_class_train : per_class_val);
  return AAL_OK;
}

int aal_gen_val_class(unsigned long seed, int classes, int per_class_val, int j, int *cls,
                      aal_error *err)
{
  int rc = check_counts(classes, 1, per_class_val, err);
  if (rc != AAL_OK)
    return rc;
  if (j < 0 || (long long)j >= (long long)classes * per_class_val)
    return aal_fail(err, AAL_EINVAL, "val image %d must be in 0..%lld", j,
                    (long long)classes * per_class_val - 1);
  int *v = NULL;
  rc = val_classes(seed, classes, per_class_val, &v, err);
  if (rc == AAL_OK)
    *cls = v[j];
  free(v);
  return rc;
}

/* ------------------------------------------------------------------ files */

typedef struct {
  struct jpeg_error_mgr pub;
  jmp_buf jump;
} enc_trap;

static void enc_error_exit(j_common_ptr cinfo)
{
  longjmp(((enc_trap *)cinfo->err)->jump, 1);
}

/* Encodes out [3][64][64] to an open stream (one component when gray). */
static int encode_stream(FILE *f, const char *path, const uint8_t *img, int gray,
                         aal_error *err)
{
  struct jpeg_compress_struct cinfo;
  enc_trap trap;
  JSAMPLE row[AAL_TINY_SIZE * 3];
  cinfo.err = jpeg_std_error(&trap.pub);
  trap.pub.error_exit = enc_error_exit;
  if (setjmp(trap.jump) != 0) {
    char msg[JMSG_LENGTH_MAX];
    (*cinfo.err->format_message)((j_common_ptr)&cinfo, msg);
    jpeg_destroy_compress(&cinfo);
    return aal_fail(err, AAL_EIO, "%s: cannot write the JPEG: %s", path, msg);
  }
  jpeg_create_compress(&cinfo);
  jpeg_stdio_dest(&cinfo, f);
  cinfo.image_width = AAL_TINY_SIZE;
  cinfo.image_height = AAL_TINY_SIZE;
  cinfo.input_components = gray ? 1 : 3;
  cinfo.in_color_space = gray ? JCS_GRAYSCALE : JCS_RGB;
  jpeg_set_defaults(&cinfo);
  jpeg_set_quality(&cinfo, GEN_QUALITY, TRUE);
  /* 4:4:4 (no chroma subsampling): the shapes' colour edges then survive the JPEG well
   * enough for the tests' pixel comparison to be a tight bound */
  for (int c = 0; c < cinfo.num_components; c++)
    cinfo.comp_info[c].h_samp_factor = cinfo.comp_info[c].v_samp_factor = 1;
  cinfo.dct_method = JDCT_ISLOW;
  jpeg_start_compress(&cinfo, TRUE);
  const size_t plane = (size_t)AAL_TINY_SIZE * AAL_TINY_SIZE;
  while (cinfo.next_scanline < cinfo.image_height) {
    const size_t y = cinfo.next_scanline;
    for (size_t x = 0; x < AAL_TINY_SIZE; x++) /* CHW -> the row libjpeg wants */
      if (gray)
        row[x] = img[y * AAL_TINY_SIZE + x];
      else
        for (size_t c = 0; c < 3; c++)
          row[x * 3 + c] = img[c * plane + y * AAL_TINY_SIZE + x];
    JSAMPROW rp = row;
    jpeg_write_scanlines(&cinfo, &rp, 1);
  }
  jpeg_finish_compress(&cinfo);
  jpeg_destroy_compress(&cinfo);
  return AAL_OK;
}

/* Writing a file atomically: content goes to PATH.tmp, which is renamed to PATH once
 * closed, so that an interrupted run leaves no half-written file under a real name
 * (no fsync per file: a generated tree can be regenerated). */
static FILE *tmp_open(const char *path, char **tmp, aal_error *err)
{
  *tmp = malloc(strlen(path) + 5);
  if (*tmp == NULL) {
    aal_fail(err, AAL_ENOMEM, "out of memory");
    return NULL;
  }
  strcpy(*tmp, path);
  strcat(*tmp, ".tmp");
  FILE *f = fopen(*tmp, "wb");
  if (f == NULL) {
    aal_fail(err, AAL_EIO, "%s: cannot create: %s", *tmp, strerror(errno));
    free(*tmp);
    *tmp = NULL;
  }
  return f;
}

static int tmp_commit(FILE *f, char *tmp, const char *path, int rc, aal_error *err)
{
  const int bad = ferror(f);
  const int closed = fclose(f);
  if (rc == AAL_OK && (bad || closed != 0))
    rc = aal_fail(err, AAL_EIO, "%s: write error: %s", path, strerror(errno));
  if (rc == AAL_OK && rename(tmp, path) != 0)
    rc = aal_fail(err, AAL_EIO, "%s: cannot rename %s: %s", path, tmp, strerror(errno));
  if (rc != AAL_OK)
    remove(tmp);
  free(tmp);
  return rc;
}

static int write_jpeg(const char *path, const uint8_t *img, int gray, aal_error *err)
{
  char *tmp = NULL;
  FILE *f = tmp_open(path, &tmp, err);
  if (f == NULL)
    return err != NULL ? err->code : AAL_EIO;
  const int rc = encode_stream(f, path, img, gray, err);
  return tmp_commit(f, tmp, path, rc, err);
}

static int make_dir(const char *path, aal_error *err)
{
  if (mkdir(path, 0755) != 0 && errno != EEXIST)
    return aal_fail(err, AAL_EIO, "%s: cannot create directory: %s", path, strerror(errno));
  return AAL_OK;
}

/* out_dir must be missing (it is created) or an empty directory. */
static int prepare_out_dir(const char *dir, aal_error *err)
{
  if (mkdir(dir, 0755) == 0)
    return AAL_OK;
  if (errno != EEXIST)
    return aal_fail(err, AAL_EIO, "%s: cannot create directory: %s", dir, strerror(errno));
  DIR *d = opendir(dir);
  if (d == NULL)
    return aal_fail(err, AAL_EIO, "%s: exists and is not a readable directory: %s", dir,
                    strerror(errno));
  int empty = 1;
  const struct dirent *e;
  while ((e = readdir(d)) != NULL)
    if (strcmp(e->d_name, ".") != 0 && strcmp(e->d_name, "..") != 0) {
      empty = 0;
      break;
    }
  closedir(d);
  if (!empty)
    return aal_fail(err, AAL_EINVAL, "%s: is not empty; give a new or empty directory "
                    "(the generator never mixes with existing files)", dir);
  return AAL_OK;
}

static void wnid_of(int c, char *buf, size_t len)
{
  snprintf(buf, len, "n%08ld", WNID_BASE + c);
}

static const char *shape_name(int s)
{
  return s == 0 ? "circle" : s == 1 ? "square" : "triangle";
}

/* Writes a text file atomically; lines come from fn(ctx, i, buf) for i in 0..n). */
typedef void (*text_line_fn)(const void *ctx, long i, char *buf, size_t len);

static int write_text(const char *path, long n, text_line_fn fn, const void *ctx,
                      aal_error *err)
{
  char *tmp = NULL;
  FILE *f = tmp_open(path, &tmp, err);
  if (f == NULL)
    return err != NULL ? err->code : AAL_EIO;
  char line[512];
  for (long i = 0; i < n; i++) {
    fn(ctx, i, line, sizeof line);
    fputs(line, f);
  }
  return tmp_commit(f, tmp, path, AAL_OK, err);
}

typedef struct {
  unsigned long seed;
  gsl_rng *r;
} words_ctx;

static void wnids_line(const void *ctx, long i, char *buf, size_t len)
{
  (void)ctx;
  wnid_of((int)i, buf, len - 1);
  strcat(buf, "\n");
}

static void words_line(const void *vctx, long i, char *buf, size_t len)
{
  const words_ctx *c = vctx;
  class_params p;
  class_params_get(c->seed, (int)i, c->r, &p);
  char w[16];
  wnid_of((int)i, w, sizeof w);
  snprintf(buf, len, "%s\tsynthetic class %ld: grating %.0f deg, %.3f cycles/px, %s, "
           "colour (%.2f, %.2f, %.2f)\n", w, i, p.theta * 180.0 / gen_pi, p.freq,
           shape_name(p.shape), p.mean[0], p.mean[1], p.mean[2]);
}

typedef struct {
  const char *wnid;
  const int (*boxes)[4];
  const int *labels; /* val: class of each image */
} boxes_ctx;

static void train_box_line(const void *vctx, long i, char *buf, size_t len)
{
  const boxes_ctx *c = vctx;
  const int *b = c->boxes[i];
  snprintf(buf, len, "%s_%ld.JPEG\t%d\t%d\t%d\t%d\n", c->wnid, i, b[0], b[1], b[2], b[3]);
}

static void val_annot_line(const void *vctx, long i, char *buf, size_t len)
{
  const boxes_ctx *c = vctx;
  const int *b = c->boxes[i];
  char w[16];
  wnid_of(c->labels[i], w, sizeof w);
  snprintf(buf, len, "val_%ld.JPEG\t%s\t%d\t%d\t%d\t%d\n", i, w, b[0], b[1], b[2], b[3]);
}

static void progress(FILE *log, double *last, long done, long total, int force)
{
  if (log == NULL)
    return;
  const double now = aal_data_now();
  if (force || now - *last >= 2.0) {
    fprintf(log, "aal gen-data: wrote %ld/%ld images\n", done, total);
    fflush(log);
    *last = now;
  }
}

int aal_gen_data(const char *out_dir, int classes, int per_class_train, int per_class_val,
                 unsigned long seed, FILE *log, aal_error *err)
{
  if (out_dir == NULL || *out_dir == '\0')
    return aal_fail(err, AAL_EINVAL, "output directory not given");
  int rc = check_counts(classes, per_class_train, per_class_val, err);
  if (rc != AAL_OK)
    return rc;
  rc = prepare_out_dir(out_dir, err);
  if (rc != AAL_OK)
    return rc;
  const long n_val = (long)classes * per_class_val;
  const long total = (long)classes * per_class_train + n_val;
  const long max_per = per_class_train > n_val ? per_class_train : n_val;
  gsl_rng *r = gsl_rng_alloc(gsl_rng_mt19937);
  uint8_t *img = malloc(AAL_TINY_IMAGE_BYTES);
  int(*boxes)[4] = malloc((size_t)(max_per > 0 ? max_per : 1) * sizeof *boxes);
  int *vlabels = NULL;
  char *path = NULL;
  /* longest path: out_dir + "/train/" + wnid + "/images/" + wnid + "_" + index + ".JPEG" */
  const size_t path_len = strlen(out_dir) + 96;
  path = malloc(path_len);
  if (r == NULL || img == NULL || boxes == NULL || path == NULL)
    rc = aal_fail(err, AAL_ENOMEM, "out of memory");
  if (rc == AAL_OK)
    rc = val_classes(seed, classes, per_class_val, &vlabels, err);

  words_ctx wc = {seed, r};
  if (rc == AAL_OK) {
    snprintf(path, path_len, "%s/wnids.txt", out_dir);
    rc = write_text(path, classes, wnids_line, NULL, err);
  }
  if (rc == AAL_OK) {
    snprintf(path, path_len, "%s/words.txt", out_dir);
    rc = write_text(path, classes, words_line, &wc, err);
  }
  if (rc == AAL_OK) {
    snprintf(path, path_len, "%s/train", out_dir);
    rc = make_dir(path, err);
  }
  double last = aal_data_now();
  long done = 0;
  for (int c = 0; c < classes && rc == AAL_OK; c++) {
    char wnid[16];
    wnid_of(c, wnid, sizeof wnid);
    snprintf(path, path_len, "%s/train/%s", out_dir, wnid);
    rc = make_dir(path, err);
    if (rc == AAL_OK) {
      snprintf(path, path_len, "%s/train/%s/images", out_dir, wnid);
      rc = make_dir(path, err);
    }
    for (int i = 0; i < per_class_train && rc == AAL_OK; i++) {
      render(seed, AAL_GEN_TRAIN, c, i, r, img, boxes[i]);
      snprintf(path, path_len, "%s/train/%s/images/%s_%d.JPEG", out_dir, wnid, wnid, i);
      rc = write_jpeg(path, img, is_gray(AAL_GEN_TRAIN, c, i), err);
      progress(log, &last, ++done, total, 0);
    }
    if (rc == AAL_OK) {
      const boxes_ctx bc = {wnid, (const int(*)[4])boxes, NULL};
      snprintf(path, path_len, "%s/train/%s/%s_boxes.txt", out_dir, wnid, wnid);
      rc = write_text(path, per_class_train, train_box_line, &bc, err);
    }
  }
  if (rc == AAL_OK) {
    snprintf(path, path_len, "%s/val", out_dir);
    rc = make_dir(path, err);
  }
  if (rc == AAL_OK) {
    snprintf(path, path_len, "%s/val/images", out_dir);
    rc = make_dir(path, err);
  }
  for (long j = 0; j < n_val && rc == AAL_OK; j++) {
    render(seed, AAL_GEN_VAL, vlabels[j], (int)j, r, img, boxes[j]);
    snprintf(path, path_len, "%s/val/images/val_%ld.JPEG", out_dir, j);
    rc = write_jpeg(path, img, is_gray(AAL_GEN_VAL, vlabels[j], (int)j), err);
    progress(log, &last, ++done, total, 0);
  }
  if (rc == AAL_OK) {
    const boxes_ctx bc = {NULL, (const int(*)[4])boxes, vlabels};
    snprintf(path, path_len, "%s/val/val_annotations.txt", out_dir);
    rc = write_text(path, n_val, val_annot_line, &bc, err);
  }
  if (rc == AAL_OK)
    progress(log, &last, done, total, 1);
  if (r != NULL)
    gsl_rng_free(r);
  free(img);
  free(boxes);
  free(vlabels);
  free(path);
  return rc;
}
