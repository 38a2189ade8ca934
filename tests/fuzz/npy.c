/* Fuzzes the npy writer (sim/train/npy.c; the project has no npy reader, so the file is
 * read back here, by a parser written from numpy's format description).
 *
 * Input: byte 0 = ndim (mod 10: 9 must be refused), byte 1 bit 0 = type (<f8 or <i8),
 * then each dimension as one byte when below 0xF0, else as the next 8 bytes (u64,
 * little-endian), then the data.  The exact element and byte counts are computed here
 * in 128 bits (a dimension of 0 makes the count 0, whatever the others):
 *   - a count or byte count (plus 4096 of header room) beyond SIZE_MAX must be refused
 *     with AAL_EINVAL naming the file, before the data is read;
 *   - a shape whose data the input holds must be written, and the file must read back:
 *     "\x93NUMPY" 1.0, a header length that puts the data at a multiple of 64, the dict
 *     numpy writes ({'descr': '<f8', 'fortran_order': False, 'shape': (2, 3), }, a 1-tuple
 *     with its comma) padded with spaces and '\n', then exactly the data bytes;
 *   - other shapes (more data than the input holds) are not written.
 *
 * FUZZ_WRITE_SEEDS=DIR writes a few inputs in this encoding and exits. */
#include "tests/fuzz/fuzz.h"

#include <inttypes.h>

#include "sim/train/npy.h"

static char out_path[4300];

/* The expected dict text for the shape (numpy's repr of the tuple). */
static size_t expected_dict(char *buf, size_t len, int f64, int ndim, const size_t *shape)
{
  size_t n = (size_t)snprintf(buf, len, "{'descr': '%s', 'fortran_order': False, 'shape': (",
                              f64 ? "<f8" : "<i8");
  for (int d = 0; d < ndim; d++)
    n += (size_t)snprintf(buf + n, len - n, "%s%zu", d > 0 ? ", " : "", shape[d]);
  if (ndim == 1)
    n += (size_t)snprintf(buf + n, len - n, ",");
  n += (size_t)snprintf(buf + n, len - n, "), }");
  return n;
}

static void read_back(int f64, int ndim, const size_t *shape, const uint8_t *data,
                      size_t bytes)
{
  size_t len = 0;
  uint8_t *b = fuzz_read(out_path, &len);
  FUZZ_REQUIRE(b != NULL, "%s was not written", out_path);
  FUZZ_REQUIRE(len >= 10 && memcmp(b, "\x93NUMPY\x01\x00", 8) == 0, "bad preamble");
  const size_t hlen = (size_t)b[8] | (size_t)b[9] << 8;
  FUZZ_REQUIRE((10 + hlen) % 64 == 0, "data at %zu, not a multiple of 64", 10 + hlen);
  FUZZ_REQUIRE(len == 10 + hlen + bytes, "file of %zu bytes, expected %zu", len,
               10 + hlen + bytes);
  char dict[1024];
  const size_t n = expected_dict(dict, sizeof dict, f64, ndim, shape);
  FUZZ_REQUIRE(hlen > n && memcmp(b + 10, dict, n) == 0, "header '%.*s', expected '%s'",
               (int)(hlen < 300 ? hlen : 300), (const char *)b + 10, dict);
  for (size_t i = n; i + 1 < hlen; i++)
    FUZZ_REQUIRE(b[10 + i] == ' ', "header byte %zu is 0x%02x, not padding", i, b[10 + i]);
  FUZZ_REQUIRE(b[10 + hlen - 1] == '\n', "header does not end in a newline");
  FUZZ_REQUIRE(bytes == 0 || memcmp(b + 10 + hlen, data, bytes) == 0, "data differs");
  free(b);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
  if (size < 2)
    return 0;
  const int ndim = data[0] % 10, f64 = data[1] & 1;
  size_t pos = 2, shape[9] = {0};
  for (int d = 0; d < ndim; d++) {
    if (pos >= size)
      return 0;
    if (data[pos] < 0xF0) {
      shape[d] = data[pos++];
    } else {
      if (size - pos < 9)
        return 0;
      uint64_t v = 0;
      for (int i = 0; i < 8; i++)
        v |= (uint64_t)data[pos + 1 + i] << (8 * i);
      shape[d] = (size_t)v;
      pos += 9;
    }
  }
  aal_error err;
  const int64_t dummy[1] = {0};
  if (ndim > 8) {
    const int rc = f64 ? aal_npy_write_f64(out_path, ndim, shape, (const double *)dummy, &err)
                       : aal_npy_write_i64(out_path, ndim, shape, dummy, &err);
    FUZZ_REQUIRE(rc == AAL_EINVAL, "ndim %d accepted", ndim);
    return 0;
  }
  /* the exact counts, in 128 bits */
  unsigned __int128 count = 1;
  int zero = 0, over = 0;
  for (int d = 0; d < ndim; d++)
    zero |= shape[d] == 0;
  for (int d = 0; d < ndim && !zero && !over; d++) {
    count *= shape[d];
    over = count > SIZE_MAX;
  }
  if (zero)
    count = 0;
  over = over || count * 8 > (unsigned __int128)(SIZE_MAX - 4096);
  const size_t avail = size - pos;
  unlink(out_path);
  if (over) {
    const int rc = f64 ? aal_npy_write_f64(out_path, ndim, shape, (const double *)dummy, &err)
                       : aal_npy_write_i64(out_path, ndim, shape, dummy, &err);
    FUZZ_REQUIRE(rc == AAL_EINVAL && strstr(err.msg, out_path) != NULL,
                 "a shape of more than SIZE_MAX elements or bytes gave %d: %s", rc, err.msg);
    return 0;
  }
  const size_t bytes = (size_t)count * 8;
  if (bytes > avail)
    return 0;
  /* aligned copies of the data (the writer takes typed pointers) */
  void *copy = malloc(bytes > 0 ? bytes : 1);
  FUZZ_SETUP(copy != NULL, "malloc");
  if (bytes > 0)
    memcpy(copy, data + pos, bytes);
  const int rc = f64 ? aal_npy_write_f64(out_path, ndim, shape, copy, &err)
                     : aal_npy_write_i64(out_path, ndim, shape, copy, &err);
  FUZZ_REQUIRE(rc == AAL_OK, "shape of %zu elements refused: %s", (size_t)count, err.msg);
  read_back(f64, ndim, shape, data + pos, bytes);
  free(copy);
  return 0;
}

static void write_seeds(const char *dir)
{
  static const uint8_t scalar[] = {0, 1, 0, 0, 0, 0, 0, 0, 0xf0, 0x3f};
  static const uint8_t vec[] = {1, 0, 3, 1, 0, 0, 0, 0, 0, 0, 0, 2, 0, 0, 0, 0, 0, 0, 0,
                                0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff};
  static const uint8_t mat[] = {2, 1, 2, 1, 0, 0, 0, 0, 0, 0, 0xf8, 0x7f,
                                0, 0, 0, 0, 0, 0, 0xf0, 0xbf};
  static const uint8_t zero[] = {3, 1, 0, 0xff, 0, 0, 0, 0, 0, 0, 0, 0x80, 7};
  static const uint8_t huge[] = {2, 1, 0xff, 0, 0, 0, 0, 0, 0, 0, 1, 0xff, 0, 0, 0, 0, 0, 0, 0, 1};
  static const uint8_t nine[] = {9, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1};
  const struct { const char *name; const uint8_t *b; size_t n; } s[] = {
      {"scalar", scalar, sizeof scalar}, {"vector-i64", vec, sizeof vec},
      {"matrix-f64", mat, sizeof mat},   {"zero-dim", zero, sizeof zero},
      {"overflow", huge, sizeof huge},   {"ndim9", nine, sizeof nine}};
  for (size_t i = 0; i < sizeof s / sizeof s[0]; i++) {
    char path[4300];
    fuzz_path(path, sizeof path, dir, s[i].name);
    fuzz_write(path, s[i].b, s[i].n);
  }
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
  (void)argc;
  (void)argv;
  const char *seeds = getenv("FUZZ_WRITE_SEEDS");
  if (seeds != NULL && *seeds != '\0') {
    write_seeds(seeds);
    exit(0);
  }
  const char *root = fuzz_tmpdir("npy");
  fuzz_path(out_path, sizeof out_path, root, "out.npy");
  return 0;
}
