/* Fuzzes the .npy reader (sim/train/npy.c, aal_npy_parse and aal_npy_read).
 *
 * The input is the file.  Properties: the bytes and the same bytes as a file give the
 * same answer; a refusal is AAL_EFORMAT naming the file (the bytes can never make the
 * reader allocate more than the file's length); an accepted array has at most 8
 * dimensions, an element count equal to the product of its shape (0 when a dimension is
 * 0), a known dtype, and data of exactly count elements (read here in full, under ASan);
 * a float64 or int64 array written again with the project's writer reads back with the
 * same shape and the same bytes, and a bool array holds only 0 and 1.
 *
 * FUZZ_WRITE_SEEDS=DIR writes the seed corpus (files of the writer, files numpy wrote,
 * and damaged ones) and exits. */
#include "tests/fuzz/fuzz.h"

#include "sim/train/npy.h"
#include "tests/npy_bytes.h"

static char in_path[4300], out_path[4300];

static void check_array(const aal_npy_array *a)
{
  FUZZ_REQUIRE(a->ndim >= 0 && a->ndim <= AAL_NPY_MAXDIM, "ndim %d", a->ndim);
  FUZZ_REQUIRE(a->data != NULL, "no data buffer");
  FUZZ_REQUIRE(aal_npy_dtype_size(a->dtype) > 0, "dtype %d", (int)a->dtype);
  unsigned __int128 count = 1;
  for (int d = 0; d < a->ndim; d++)
    count *= a->shape[d];
  FUZZ_REQUIRE(count == a->count, "count %zu, shape product %llu", a->count,
               (unsigned long long)count);
  const unsigned char *p = a->data;
  unsigned sum = 0;
  for (size_t i = 0; i < a->count * aal_npy_dtype_size(a->dtype); i++)
    sum += p[i];
  (void)sum;
  if (a->dtype == AAL_NPY_BOOL)
    for (size_t i = 0; i < a->count; i++)
      FUZZ_REQUIRE(p[i] <= 1, "bool element %zu is %u", i, p[i]);
}

/* float64 and int64 arrays through the writer and back. */
static void rewrite(const aal_npy_array *a)
{
  if (a->dtype != AAL_NPY_F64 && a->dtype != AAL_NPY_I64)
    return;
  aal_error err;
  const int rc = a->dtype == AAL_NPY_F64
                     ? aal_npy_write_f64(out_path, a->ndim, a->shape, a->data, &err)
                     : aal_npy_write_i64(out_path, a->ndim, a->shape, a->data, &err);
  FUZZ_REQUIRE(rc == AAL_OK, "the writer refused an array the reader gave: %s", err.msg);
  aal_npy_array b;
  FUZZ_REQUIRE(aal_npy_read(out_path, &b, &err) == AAL_OK, "the writer's file: %s", err.msg);
  FUZZ_REQUIRE(b.dtype == a->dtype && b.ndim == a->ndim && b.count == a->count,
               "read back as another array");
  FUZZ_REQUIRE(memcmp(b.shape, a->shape, (size_t)a->ndim * sizeof(size_t)) == 0,
               "read back with another shape");
  FUZZ_REQUIRE(memcmp(b.data, a->data, a->count * 8) == 0, "read back with other data");
  aal_npy_free(&b);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
  aal_npy_array a, f;
  aal_error err, ferr;
  const int rc = aal_npy_parse(data, size, "fuzz.npy", &a, &err);
  fuzz_write(in_path, data, size);
  const int frc = aal_npy_read(in_path, &f, &ferr);
  FUZZ_REQUIRE(rc == frc, "bytes gave %d, the file %d (%s)", rc, frc, ferr.msg);
  if (rc != AAL_OK) {
    FUZZ_REQUIRE(rc == AAL_EFORMAT && strstr(err.msg, "fuzz.npy") != NULL,
                 "refused with %d: %s", rc, err.msg);
    FUZZ_REQUIRE(strstr(ferr.msg, in_path) != NULL, "the file's message: %s", ferr.msg);
    FUZZ_REQUIRE(a.data == NULL && f.data == NULL, "a refused array holds data");
    return 0;
  }
  check_array(&a);
  FUZZ_REQUIRE(f.count == a.count && f.dtype == a.dtype &&
               memcmp(f.data, a.data, a.count * aal_npy_dtype_size(a.dtype)) == 0,
               "the file and the bytes differ");
  rewrite(&a);
  aal_npy_free(&a);
  aal_npy_free(&f);
  return 0;
}

/* numpy's layout: magic, version, header length, header padded to 64, data. */
static void seed(const char *dir, const char *name, int version, const char *header,
                 const void *data, size_t ndata, size_t cut)
{
  unsigned char buf[1024];
  const size_t len = aal_test_npy_bytes(buf, version, header, data, ndata);
  char path[4300];
  fuzz_path(path, sizeof path, dir, name);
  fuzz_write(path, buf, len - cut);
}

static void write_seeds(const char *dir)
{
  char path[4300];
  aal_error err;
  const size_t shape[2] = {2, 3};
  const double v[6] = {1.0, -0.0, 0.5, 1e-300, -3.5, 2.0};
  fuzz_path(path, sizeof path, dir, "writer-f8");
  FUZZ_SETUP(aal_npy_write_f64(path, 2, shape, v, &err) == AAL_OK, "writer");
  const int64_t l[1] = {-7};
  fuzz_path(path, sizeof path, dir, "writer-i8-scalar");
  FUZZ_SETUP(aal_npy_write_i64(path, 0, NULL, l, &err) == AAL_OK, "writer");
  /* numpy's files (tests/train/test_npy.c has their origin) */
  seed(dir, "numpy-f4", 1, "{'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), }",
       "\x00\x00\xc0\x3f\x00\x00\x00\xc0\x00\x00\x50\x40\x00\x00\x00\x00\x00\x00\x00\x80"
       "\x6f\x12\x83\x3a", 24, 0);
  seed(dir, "numpy-f2", 1, "{'descr': '<f2', 'fortran_order': False, 'shape': (4,), }",
       "\x00\x3c\x00\xb8\xff\x7b\x01\x00", 8, 0);
  seed(dir, "numpy-v2-f8", 2, "{'descr': '<f8', 'fortran_order': False, 'shape': (1, 1, 2), }",
       "\x00\x00\x00\x00\x00\x00\xf0\x3f\x00\x00\x00\x00\x00\x00\x04\xc0", 16, 0);
  seed(dir, "numpy-b1", 1, "{'descr': '|b1', 'fortran_order': False, 'shape': (3,), }",
       "\x01\x00\x01", 3, 0);
  seed(dir, "numpy-u2", 1, "{'descr': '<u2', 'fortran_order': False, 'shape': (2,), }",
       "\x80\x3f\x00\xc0", 4, 0);
  seed(dir, "numpy-fortran", 1, "{'descr': '<f8', 'fortran_order': True, 'shape': (1, 1), }",
       "\x00\x00\x00\x00\x00\x00\xf0\x3f", 8, 0);
  seed(dir, "numpy-bigendian", 1, "{'descr': '>f8', 'fortran_order': False, 'shape': (1,), }",
       "\x3f\xf0\x00\x00\x00\x00\x00\x00", 8, 0);
  seed(dir, "truncated", 1, "{'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), }",
       "\x00\x00\xc0\x3f\x00\x00\x00\xc0", 8, 3);
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
  const char *root = fuzz_tmpdir("npyread");
  fuzz_path(in_path, sizeof in_path, root, "in.npy");
  fuzz_path(out_path, sizeof out_path, root, "out.npy");
  return 0;
}
