/* The data sets: Tiny ImageNet (the loader: JPEG tree -> memory, with a binary cache, and
 * a generator of miniature datasets in the same layout), Fashion-MNIST (the IDX reader),
 * and batch assembly with the training augmentation of SPEC section 6, for any image
 * geometry.
 *
 * The Tiny ImageNet layout on disk (that of the real Tiny ImageNet, tiny-imagenet-200/):
 *   DIR/wnids.txt                 one wnid per line; class index = line order
 *   DIR/words.txt                 optional: wnid<TAB>words
 *   DIR/train/<wnid>/images/NAME.JPEG
 *   DIR/val/images/NAME.JPEG
 *   DIR/val/val_annotations.txt   filename<TAB>wnid<TAB>x0<TAB>y0<TAB>x1<TAB>y1
 *
 * The Fashion-MNIST layout (Debian's dataset-fashion-mnist, /usr/share/datasets/fashion-mnist):
 *   DIR/train-images-idx3-ubyte.gz  DIR/train-labels-idx1-ubyte.gz   (60000 images)
 *   DIR/t10k-images-idx3-ubyte.gz   DIR/t10k-labels-idx1-ubyte.gz    (10000: the val split)
 *
 * In memory an image is uint8 [channels][size][size] (CHW) as the set's geometry says
 * (ds->geom): [3][64][64] RGB for Tiny ImageNet, [1][32][32] for Fashion-MNIST (28x28
 * padded with 2 zero pixels on every side).  A split holds n of them back to back, with
 * an int label per image.  Within a split the order is deterministic: Tiny ImageNet's
 * train by class index, then file name (strcmp order), val by file name; Fashion-MNIST's
 * as in the files. */
#ifndef AAL_DATA_H
#define AAL_DATA_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include <gsl/gsl_rng.h>

#include "sim/core/error.h"
#include "sim/core/tensor.h"

/* Tiny ImageNet's geometry: the JPEG reader, the cache and the generator work in it */
#define AAL_TINY_SIZE 64 /* height = width */
#define AAL_TINY_CHANNELS 3
#define AAL_TINY_IMAGE_BYTES (AAL_TINY_CHANNELS * AAL_TINY_SIZE * AAL_TINY_SIZE)
#define AAL_DATA_WNID_MAX 32 /* including the NUL */
#define AAL_DATA_MAX_CHANNELS 3
/* Fashion-MNIST's geometry: 28x28 gray images padded with 2 zero pixels on every side to
 * 32x32, so that the ResNet's stride-2 stem and three stride-2 stages halve it evenly
 * (16, 8, 4, 2) */
#define AAL_FMNIST_SIDE 28
#define AAL_FMNIST_BORDER 2
#define AAL_FMNIST_SIZE (AAL_FMNIST_SIDE + 2 * AAL_FMNIST_BORDER)
#define AAL_FMNIST_CLASSES 10

/* ------------------------------------------------------------ image geometry */

/* A data set's images and their normalisation: an image is uint8 [channels][size][size]
 * (CHW); channel c normalises as x = (v/255 - mean[c]) / std[c], with mean and std given
 * exactly in units of 1e-4 (0.4802 is 4802), so that the normalisation is one correctly
 * rounded division (aal_augment_normalise). */
typedef struct {
  int channels;                        /* 1..AAL_DATA_MAX_CHANNELS */
  int size;                            /* height = width, 1..4096 */
  int border;                          /* zero pixels the reader added on every side
                                          (Fashion-MNIST: 2); the source's pixels, over
                                          which mean and std were measured, are the
                                          inner (size - 2 border)^2; 0..(size-1)/2 */
  long mean_e4[AAL_DATA_MAX_CHANNELS]; /* 0..10000 */
  long std_e4[AAL_DATA_MAX_CHANNELS];  /* 1..10000 */
} aal_data_geom;

/* Tiny ImageNet: 3x64x64, SPEC section 6's mean and std (AAL_AUGMENT_MEAN_R, ...). */
void aal_data_geom_tiny(aal_data_geom *g);
/* Fashion-MNIST: 1x32x32 (28x28 padded), mean AAL_FMNIST_MEAN, std AAL_FMNIST_STD. */
void aal_data_geom_fmnist(aal_data_geom *g);
/* AAL_EINVAL naming the member when g is outside the ranges above. */
int aal_data_geom_check(const aal_data_geom *g, aal_error *err);
/* Bytes of one image: channels * size * size. */
size_t aal_data_geom_bytes(const aal_data_geom *g);

/* Where a data set came from. */
enum aal_data_format {
  AAL_DATA_NONE = 0,
  AAL_DATA_TINY_IMAGENET = 1, /* a JPEG tree in the Tiny ImageNet layout */
  AAL_DATA_FASHION_MNIST = 2  /* the four IDX files of Fashion-MNIST */
};

/* "tiny-imagenet", "fashion-mnist" (for messages and data-info). */
const char *aal_data_format_name(enum aal_data_format f);

/* ------------------------------------------------------------------ the dataset */

typedef struct {
  size_t n;
  uint8_t *pixels; /* [n][channels][size][size] (the set's geom) */
  int *labels;     /* [n], each in 0..classes-1 */
} aal_data_split;

/* How aal_data_load obtained the pixels. */
enum aal_data_cache_status {
  AAL_DATA_CACHE_NONE = 0,  /* decoded without a cache (aal_data_read_tree) */
  AAL_DATA_CACHE_HIT = 1,   /* read from a cache whose fingerprint and checksum matched */
  AAL_DATA_CACHE_NEW = 2,   /* no cache file: decoded, cache written */
  AAL_DATA_CACHE_STALE = 3, /* the tree changed (fingerprint or format version differs):
                               decoded again, cache rewritten */
  AAL_DATA_CACHE_CORRUPT = 4 /* the cache failed its checksum or was malformed or
                               truncated: never trusted, decoded again, rewritten */
};

typedef struct {
  enum aal_data_format format;
  aal_data_geom geom;               /* of every image of both splits */
  int classes;
  char (*wnids)[AAL_DATA_WNID_MAX]; /* [classes]; Fashion-MNIST: the labels "0".."9" */
  char **words;                     /* [classes]; "" where words.txt has no entry */
  aal_data_split train, val;
  uint64_t fingerprint;             /* of the source: aal_data_fingerprint for a tree,
                                       FNV-1a 64 of the IDX files' content for
                                       Fashion-MNIST */
  enum aal_data_cache_status cache_status;
  int cache_rebuilt; /* 1 when the JPEGs were decoded (status NONE, NEW, STALE,
                        CORRUPT), 0 when the pixels came from the cache */
  int cache_written; /* 1 when this call wrote the cache file; 0 on a hit or when
                        writing failed (the load still succeeds; the log says why) */
} aal_data_set;

/* Zeroes ds (call before a load, or rely on the loads doing it). */
void aal_data_init(aal_data_set *ds);
/* Frees everything ds owns and zeroes it; safe on a zeroed or half-filled set. */
void aal_data_free(aal_data_set *ds);

/* Reads DIR by decoding every JPEG (no cache).  Errors: AAL_EIO (a file or directory is
 * missing or unreadable), AAL_EFORMAT (bad text file line, unknown wnid, a val image
 * without annotation, a corrupt JPEG, an image not 64x64, an empty class directory),
 * AAL_ENOMEM.  Messages name the file (and line).  Progress goes to log (may be NULL)
 * every few seconds. */
int aal_data_read_tree(const char *dir, aal_data_set *ds, FILE *log, aal_error *err);

/* Like aal_data_read_tree but through a cache file: cache_path NULL means
 * DIR/.aal-cache.bin.  A cache is used only when its format version, its fingerprint
 * (equal to the tree's current one) and its checksums all verify; otherwise the tree is
 * decoded and the cache rewritten atomically (temp file in the same directory, fsync,
 * rename).  The reason for a rebuild is written to log.  Failing to write the cache is
 * not an error (ds->cache_written says so).  An existing cache_path is replaced only when
 * it is a regular file beginning with the cache's magic: any other file (the tree's
 * wnids.txt given as --cache, say) is left as it is, with a warning naming it. */
int aal_data_load(const char *dir, const char *cache_path, aal_data_set *ds, FILE *log,
                  aal_error *err);

/* The data set in dir, whatever its format: Fashion-MNIST when dir holds its IDX files
 * (aal_fmnist_detect; read without a cache, so cache_path must be NULL, else
 * AAL_EINVAL), else a Tiny ImageNet tree through its cache (aal_data_load). */
int aal_data_open(const char *dir, const char *cache_path, aal_data_set *ds, FILE *log,
                  aal_error *err);

/* "hit", "new", ... for messages. */
const char *aal_data_cache_status_name(enum aal_data_cache_status s);

/* Decodes one JPEG into out [3][64][64] (RGB; a grayscale JPEG is expanded to R=G=B by
 * libjpeg).  Any libjpeg error, and any libjpeg warning about corrupt data (a truncated
 * file is only a warning to libjpeg), is AAL_EFORMAT naming path; a size other than
 * 64x64 is AAL_EFORMAT naming the size. */
int aal_data_decode_jpeg(const char *path, uint8_t *out, aal_error *err);

/* Fingerprint of the tree: FNV-1a 64 over, in a fixed order, the content of wnids.txt,
 * words.txt (or a marker that it is absent) and val/val_annotations.txt, then for every
 * image (train by class and name, then val by name) its path relative to DIR, its size,
 * its modification time and its status-change time (ctime), both in nanoseconds.  The
 * ctime catches an image rewritten with the same size and its old mtime put back
 * (utimensat, touch -r, tar -x): the kernel moves it on every write and no call sets it
 * back.  It also moves on chmod, chown, a new hard link, and when the tree is copied
 * (cp -a, rsync), so those rebuild the cache once.  Validates the text files like the
 * loader. */
int aal_data_fingerprint(const char *dir, uint64_t *fingerprint, aal_error *err);

/* FNV-1a 64 (offset basis 14695981039346656037, prime 1099511628211), continuing from h;
 * start with AAL_FNV1A64_INIT. */
#define AAL_FNV1A64_INIT UINT64_C(14695981039346656037)
uint64_t aal_data_fnv1a64(uint64_t h, const void *data, size_t len);

/* CRC-32 as in zlib/PNG/Ethernet (reflected polynomial 0xEDB88320, initial value and
 * final xor 0xFFFFFFFF; check value of "123456789" is 0xCBF43926), computed with
 * slicing-by-8 tables that live in the caller's aal_data_crc32 (no global state).
 * Usage: aal_data_crc32_init(&c); aal_data_crc32_update(&c, p, n) ...; c.crc is the
 * CRC of everything so far. */
typedef struct {
  uint32_t table[8][256];
  uint32_t crc;
} aal_data_crc32;
void aal_data_crc32_init(aal_data_crc32 *c);
void aal_data_crc32_update(aal_data_crc32 *c, const void *data, size_t len);

/* --------------------------------------------------------------- Fashion-MNIST */

/* 1 when dir holds train-images-idx3-ubyte.gz (or train-images-idx3-ubyte): the layout
 * of Fashion-MNIST (and of MNIST). */
int aal_fmnist_detect(const char *dir);

/* Reads DIR/{train,t10k}-{labels-idx1,images-idx3}-ubyte.gz (each name without .gz
 * when only that file exists; the .gz ones must be gzip data) into ds, no cache:
 * format AAL_DATA_FASHION_MNIST, geometry aal_data_geom_fmnist (each 28x28 image in the
 * middle of a zeroed 32x32), 10 classes (wnids "0".."9", words "T-shirt/top",
 * "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag", "Ankle
 * boot"), train from train-*, val from t10k-* (the test set), both in file order;
 * fingerprint: FNV-1a 64 of the decompressed bytes of the four files in that order.
 * Errors: AAL_EIO (a file missing or unreadable), AAL_EFORMAT (a bad magic, dimensions
 * other than 28x28, a count of 0 or above 2^24, images and labels of different counts,
 * a label outside 0..9, data that ends early or goes on after the last item, a
 * truncated or corrupt gzip stream), AAL_ENOMEM; every message names the file.  One line
 * to log (may be NULL) when done. */
int aal_fmnist_read(const char *dir, aal_data_set *ds, FILE *log, aal_error *err);

/* --------------------------------------------------------------- the generator */

enum aal_gen_split { AAL_GEN_TRAIN = 0, AAL_GEN_VAL = 1 };

/* Writes a miniature dataset in the Tiny ImageNet layout into out_dir (created when
 * missing; it must be empty otherwise): classes wnids n90000000, n90000001, ...,
 * per_class_train train images per class (train/<wnid>/images/<wnid>_<i>.JPEG, and
 * train/<wnid>/<wnid>_boxes.txt as in the real tree), classes*per_class_val val images
 * val/images/val_<j>.JPEG in shuffled class order with val/val_annotations.txt (the box
 * is the shape's bounding box), words.txt.  JPEG quality 90, 4:4:4 (no chroma
 * subsampling).  Image (class c, index i) is grayscale, encoded with one component,
 * when (c + i) % 17 == 5 (train) or j % 17 == 5 (val).  Deterministic: the same arguments give byte-identical files.
 * Limits: classes 1..10000, per_class_train 1..100000, per_class_val 1..100000.
 * Progress to log (may be NULL). */
int aal_gen_data(const char *out_dir, int classes, int per_class_train, int per_class_val,
                 unsigned long seed, FILE *log, aal_error *err);

/* The exact pixels [3][64][64] the generator encoded for one image (before JPEG), so
 * that tests can compare decoded pixels.  Train: cls in 0..classes-1, index i in the
 * class.  Val: index j is the file number of val_<j>.JPEG, and cls must be its class
 * (aal_gen_val_class).  *grayscale (may be NULL) is set to 1 when the image was
 * written as a one-component JPEG (then R=G=B here). */
int aal_gen_image(unsigned long seed, int classes, enum aal_gen_split split, int cls,
                  int index, uint8_t *out, int *grayscale, aal_error *err);

/* Class of val_<j>.JPEG: a Fisher-Yates shuffle (mt19937 seeded from seed) of
 * per_class_val copies of each class. */
int aal_gen_val_class(unsigned long seed, int classes, int per_class_val, int j, int *cls,
                      aal_error *err);

/* ------------------------------------------------------------- augmentation */

/* SPEC section 6 normalisation of Tiny ImageNet: x = (v/255 - mean[c]) / std[c]. */
#define AAL_AUGMENT_MEAN_R 0.4802
#define AAL_AUGMENT_MEAN_G 0.4481
#define AAL_AUGMENT_MEAN_B 0.3975
#define AAL_AUGMENT_STD_R 0.2770
#define AAL_AUGMENT_STD_G 0.2691
#define AAL_AUGMENT_STD_B 0.2821
/* Fashion-MNIST's pixel mean and standard deviation over its 60000 training images
 * (28x28, before the padding) */
#define AAL_FMNIST_MEAN 0.2860
#define AAL_FMNIST_STD 0.3530
#define AAL_AUGMENT_PAD 4 /* zero padding of the random crop */

/* The normalised value (v/255 - mean[c]) / std[c] of uint8 v in channel c of g,
 * correctly rounded (within 0.5 ulp of the exact value with g's decimal constants). */
double aal_augment_normalise(const aal_data_geom *g, int c, uint8_t v);

/* One image of geometry g (C channels, S = g->size; g must pass aal_data_geom_check):
 * crop SxS at (oy, ox) in 0..8 from the image padded by 4 pixels of value 0 on every
 * side (the pad is uint8 0, i.e. black before normalisation, which normalises to
 * -mean/std, not to 0), then mirror left-right when flip, then normalise:
 *   crop(c, y, x) = src(c, y + oy - 4, x + ox - 4), or 0 outside the image
 *   dst(c, y, x)  = normalise(c, crop(c, y, flip ? S-1 - x : x))
 * src [C][S][S], dst [C][S][S] doubles.  oy = ox = 4, flip = 0 is the identity crop
 * (evaluation). */
void aal_augment_image(const aal_data_geom *g, const uint8_t *src, int oy, int ox, int flip,
                       double *dst);

/* Training batch: out is F64 [batch, C, S, S] (g's geometry); image b is images[idx[b]]
 * (images [n_images][C][S][S]) augmented with, drawn from rng in this order per image
 * whatever the geometry: oy = uniform_int(9), ox = uniform_int(9), flip =
 * uniform_int(2).  labels_out (may be NULL) [batch] receives labels[idx[b]] (labels may
 * be NULL when labels_out is). */
int aal_augment_train_batch(const aal_data_geom *g, const uint8_t *images, const int *labels,
                            size_t n_images, const size_t *idx, size_t batch, gsl_rng *rng,
                            aal_tensor *out, int *labels_out, aal_error *err);

/* Evaluation batch: normalisation only (no crop, no flip). */
int aal_augment_eval_batch(const aal_data_geom *g, const uint8_t *images, const int *labels,
                           size_t n_images, const size_t *idx, size_t batch, aal_tensor *out,
                           int *labels_out, aal_error *err);

/* order[0..n) = a permutation of 0..n-1: identity, then Fisher-Yates from the top
 * (for i = n-1 .. 1: swap order[i], order[uniform_int(i + 1)]).  n must be < 2^32. */
int aal_augment_epoch_order(size_t n, gsl_rng *rng, size_t *order, aal_error *err);

/* ------------------------------------------- internal: the loader and the cache */

/* The tree as listed by the loader: classes, relative paths and labels in load order,
 * and the fingerprint.  Shared by sim/data/tinyimagenet.c and sim/data/cache.c. */
typedef struct {
  char *dir;
  int classes;
  char (*wnids)[AAL_DATA_WNID_MAX]; /* [classes] */
  char **words;                     /* [classes], "" when unknown */
  int *sorted;                      /* [classes] class indices in strcmp order of wnid */
  size_t n_train, n_val;
  char **train_paths, **val_paths;  /* relative to dir */
  int *train_labels, *val_labels;
  uint64_t fingerprint;
} aal_data_scan;

/* Reads and validates the text files, lists and stats the images. */
int aal_data_scan_tree(const char *dir, aal_data_scan **scan, aal_error *err);
void aal_data_scan_free(aal_data_scan *scan);
/* Class index of wnid, or -1. */
int aal_data_scan_find(const aal_data_scan *scan, const char *wnid);
/* Allocates ds for the scan's counts and fills classes, wnids, words, labels,
 * fingerprint (pixels uninitialised). */
int aal_data_set_from_scan(const aal_data_scan *scan, aal_data_set *ds, aal_error *err);
/* The cache reader alone (aal_data_load's first step; tests/fuzz/cache.c): reads the
 * cache at path for the tree s into ds (allocated by aal_data_set_from_scan for s) and
 * sets *status to what aal_data_load would report: HIT when every check passes, else
 * NEW (no file), STALE or CORRUPT with the reason in why; nothing is decoded or
 * written.  AAL_ENOMEM is the only error. */
int aal_data_cache_read(const char *path, const aal_data_scan *s, aal_data_set *ds,
                        enum aal_data_cache_status *status, char *why, size_t whylen,
                        aal_error *err);
/* Decodes every image of the scan into ds (allocated by aal_data_set_from_scan). */
int aal_data_decode_scan(const aal_data_scan *scan, aal_data_set *ds, FILE *log,
                         aal_error *err);
/* sp->pixels [n][image_bytes] and sp->labels [n], uninitialised; sp->n = n.  On failure
 * (AAL_ENOMEM) whatever was allocated stays in sp for aal_data_free. */
int aal_data_alloc_split(aal_data_split *sp, size_t n, size_t image_bytes, aal_error *err);
/* a + "/" + b, malloc'd; NULL when out of memory. */
char *aal_data_join(const char *a, const char *b);
/* Monotonic seconds, for progress messages. */
double aal_data_now(void);

#endif
