/* Fuzzes the JPEG decode path (sim/data/tinyimagenet.c, aal_data_decode_jpeg): libjpeg
 * with the loader's error and warning traps.  The input is written to a file and
 * decoded twice.  Properties: an input is refused with AAL_EFORMAT naming the file, or
 * decoded; a decoded image is the same both times (no uninitialised or stale pixels).
 *
 * FUZZ_WRITE_SEEDS=DIR writes the seed corpus (a colour and a grayscale JPEG from the
 * generator, a truncated and a damaged copy, and a 48x32 one) and exits. */
#include "tests/fuzz/fuzz.h"

#include <jpeglib.h>

#include "sim/data/data.h"

static char in_path[4300];
static uint8_t a[AAL_TINY_IMAGE_BYTES], b[AAL_TINY_IMAGE_BYTES];

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
  fuzz_write(in_path, data, size);
  aal_error err;
  memset(a, 0x55, sizeof a);
  const int rc = aal_data_decode_jpeg(in_path, a, &err);
  if (rc != AAL_OK) {
    FUZZ_REQUIRE(rc == AAL_EFORMAT && strstr(err.msg, in_path) != NULL,
                 "refused with %d: %s", rc, err.msg);
    return 0;
  }
  memset(b, 0xaa, sizeof b);
  FUZZ_REQUIRE(aal_data_decode_jpeg(in_path, b, &err) == AAL_OK, "second decode: %s", err.msg);
  FUZZ_REQUIRE(memcmp(a, b, sizeof a) == 0, "two decodes of one file differ");
  return 0;
}

/* A w x h RGB JPEG (quality 75), for the wrong-size seed. */
static void write_jpeg(const char *path, int w, int h)
{
  FILE *f = fopen(path, "wb");
  FUZZ_SETUP(f != NULL, path);
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
  jpeg_set_quality(&c, 75, TRUE);
  jpeg_start_compress(&c, TRUE);
  unsigned char row[3 * 64];
  while (c.next_scanline < c.image_height) {
    for (int x = 0; x < 3 * w; x++)
      row[x] = (unsigned char)(x * 5 + (int)c.next_scanline * 3);
    JSAMPROW r = row;
    jpeg_write_scanlines(&c, &r, 1);
  }
  jpeg_finish_compress(&c);
  jpeg_destroy_compress(&c);
  fclose(f);
}

static void write_seeds(const char *dir)
{
  char tree[4300], path[4400];
  aal_error err;
  fuzz_path(tree, sizeof tree, fuzz_root, "tree");
  /* one class, 6 train images: image 5 is the generator's grayscale one */
  FUZZ_SETUP(aal_gen_data(tree, 1, 6, 1, 1, NULL, &err) == AAL_OK, err.msg);
  const char *names[2] = {"n90000000_0.JPEG", "n90000000_5.JPEG"};
  const char *seeds[2] = {"colour.jpg", "gray.jpg"};
  for (int i = 0; i < 2; i++) {
    size_t len;
    snprintf(path, sizeof path, "%s/train/n90000000/images/%s", tree, names[i]);
    uint8_t *img = fuzz_read(path, &len);
    FUZZ_SETUP(img != NULL, path);
    fuzz_path(path, sizeof path, dir, seeds[i]);
    fuzz_write(path, img, len);
    if (i == 0) {
      fuzz_path(path, sizeof path, dir, "truncated.jpg");
      fuzz_write(path, img, len * 2 / 3);
      img[len / 2] ^= 0x5a; /* in the entropy-coded data */
      fuzz_path(path, sizeof path, dir, "damaged.jpg");
      fuzz_write(path, img, len);
    }
    free(img);
  }
  fuzz_path(path, sizeof path, dir, "48x32.jpg");
  write_jpeg(path, 48, 32);
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
  (void)argc;
  (void)argv;
  const char *root = fuzz_tmpdir("jpeg");
  fuzz_path(in_path, sizeof in_path, root, "in.jpg");
  const char *seeds = getenv("FUZZ_WRITE_SEEDS");
  if (seeds != NULL && *seeds != '\0') {
    write_seeds(seeds);
    exit(0);
  }
  return 0;
}
