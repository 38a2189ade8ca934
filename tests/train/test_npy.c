/* The .npy reader (sim/train/npy.h) against files numpy wrote: the header text of each
 * (verbatim from numpy 1.24's np.save, or np.lib.format.write_array(..., version=(2, 0))),
 * padded as numpy pads it (spaces and '\n' to a multiple of 64 bytes), then numpy's data
 * bytes; every decoded element is compared with the value the array held.  Then the
 * writers' files read back, and every refusal (bad magic, version 3.0, Fortran order,
 * big-endian and unknown dtypes, a header that is not a dict, (N) for (N,), truncated
 * data, trailing bytes, overflowing shapes, a missing file, a directory) with a message
 * that names the file. */
#include <check.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "sim/train/checkpoint.h"
#include "sim/train/npy.h"
#include "tests/aal_check.h"
#include "tests/npy_bytes.h"

static char root[256];


static void write_bytes(const char *path, const void *b, size_t n)
{
  FILE *f = fopen(path, "wb");
  ck_assert_ptr_nonnull(f);
  ck_assert_uint_eq(fwrite(b, 1, n, f), n);
  ck_assert_int_eq(fclose(f), 0);
}

/* Parses the numpy file (version, header, data) through a file on disk. */
static int read_numpy(int version, const char *header, const char *data, size_t ndata,
                      aal_npy_array *a, aal_error *err)
{
  unsigned char buf[512];
  const size_t n = aal_test_npy_bytes(buf, version, header, data, ndata);
  char path[300];
  snprintf(path, sizeof path, "%s/numpy.npy", root);
  write_bytes(path, buf, n);
  return aal_npy_read(path, a, err);
}

START_TEST(test_numpy_files)
{
  aal_npy_array a;
  aal_error err;
  /* np.array([[1.5, -2.0, 3.25], [0.0, -0.0, 1e-3]], dtype='<f4') */
  ck_assert_msg(read_numpy(1, "{'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), }",
                           "\x00\x00\xc0\x3f\x00\x00\x00\xc0\x00\x00\x50\x40\x00\x00\x00\x00"
                           "\x00\x00\x00\x80\x6f\x12\x83\x3a", 24, &a, &err) == AAL_OK,
                "%s", err.msg);
  ck_assert(a.dtype == AAL_NPY_F32 && a.ndim == 2 && a.shape[0] == 2 && a.shape[1] == 3 &&
            a.count == 6);
  const float *f = a.data;
  ck_assert(f[0] == 1.5f && f[1] == -2.0f && f[2] == 3.25f && f[3] == 0.0f && !signbit(f[3]));
  ck_assert(f[4] == 0.0f && signbit(f[4]) && f[5] == 1e-3f);
  aal_npy_free(&a);
  /* np.array([1.0, -0.5, 65504.0, 6e-8], dtype='<f2'): bit patterns */
  ck_assert(read_numpy(1, "{'descr': '<f2', 'fortran_order': False, 'shape': (4,), }",
                       "\x00\x3c\x00\xb8\xff\x7b\x01\x00", 8, &a, &err) == AAL_OK);
  const uint16_t *h = a.data;
  ck_assert(a.dtype == AAL_NPY_F16 && a.ndim == 1 && a.count == 4);
  ck_assert(h[0] == 0x3c00 && h[1] == 0xb800 && h[2] == 0x7bff && h[3] == 0x0001);
  aal_npy_free(&a);
  /* version 2.0: np.lib.format.write_array(f, np.array([[[1.0, -2.5]]]), version=(2, 0)) */
  ck_assert(read_numpy(2, "{'descr': '<f8', 'fortran_order': False, 'shape': (1, 1, 2), }",
                       "\x00\x00\x00\x00\x00\x00\xf0\x3f\x00\x00\x00\x00\x00\x00\x04\xc0", 16,
                       &a, &err) == AAL_OK);
  ck_assert(a.dtype == AAL_NPY_F64 && a.ndim == 3 && a.count == 2);
  ck_assert(((double *)a.data)[0] == 1.0 && ((double *)a.data)[1] == -2.5);
  aal_npy_free(&a);
  /* np.array([True, False, True]); np.array([0, 1, 255], dtype=np.uint8) */
  ck_assert(read_numpy(1, "{'descr': '|b1', 'fortran_order': False, 'shape': (3,), }",
                       "\x01\x00\x01", 3, &a, &err) == AAL_OK);
  ck_assert(a.dtype == AAL_NPY_BOOL && ((uint8_t *)a.data)[0] == 1 &&
            ((uint8_t *)a.data)[1] == 0 && ((uint8_t *)a.data)[2] == 1);
  aal_npy_free(&a);
  ck_assert(read_numpy(1, "{'descr': '|u1', 'fortran_order': False, 'shape': (3,), }",
                       "\x00\x01\xff", 3, &a, &err) == AAL_OK);
  ck_assert(a.dtype == AAL_NPY_U8 && ((uint8_t *)a.data)[2] == 255);
  aal_npy_free(&a);
  /* np.array(-7, dtype='<i8'): a scalar */
  ck_assert(read_numpy(1, "{'descr': '<i8', 'fortran_order': False, 'shape': (), }",
                       "\xf9\xff\xff\xff\xff\xff\xff\xff", 8, &a, &err) == AAL_OK);
  ck_assert(a.dtype == AAL_NPY_I64 && a.ndim == 0 && a.count == 1 &&
            ((int64_t *)a.data)[0] == -7);
  aal_npy_free(&a);
  /* np.array([0x3f80, 0xc000], dtype='<u2') (bfloat16 1.0 and -2.0 as bit patterns) */
  ck_assert(read_numpy(1, "{'descr': '<u2', 'fortran_order': False, 'shape': (2,), }",
                       "\x80\x3f\x00\xc0", 4, &a, &err) == AAL_OK);
  ck_assert(a.dtype == AAL_NPY_U16 && ((uint16_t *)a.data)[0] == 0x3f80 &&
            ((uint16_t *)a.data)[1] == 0xc000);
  aal_npy_free(&a);
  /* np.zeros((2, 0, 3)): no data */
  ck_assert(read_numpy(1, "{'descr': '<f8', 'fortran_order': False, 'shape': (2, 0, 3), }", "",
                       0, &a, &err) == AAL_OK);
  ck_assert(a.ndim == 3 && a.count == 0 && a.data != NULL);
  aal_npy_free(&a);
  /* keys in another order, other spacing, no trailing comma */
  ck_assert(read_numpy(1, "{\"shape\":(2,),\"fortran_order\":False,\"descr\":\"<f8\"}",
                       "\x00\x00\x00\x00\x00\x00\xf0\x3f\x00\x00\x00\x00\x00\x00\x04\xc0", 16,
                       &a, &err) == AAL_OK);
  ck_assert(a.ndim == 1 && a.shape[0] == 2 && ((double *)a.data)[1] == -2.5);
  aal_npy_free(&a);
}
END_TEST

/* The writer's files read back, shapes and values. */
START_TEST(test_writer_round_trip)
{
  char path[300];
  snprintf(path, sizeof path, "%s/w.npy", root);
  aal_error err;
  const size_t shape[3] = {2, 1, 3};
  const double v[6] = {1.0, -0.0, NAN, INFINITY, 1e-300, -3.5};
  ck_assert_int_eq(aal_npy_write_f64(path, 3, shape, v, &err), AAL_OK);
  aal_npy_array a;
  ck_assert_msg(aal_npy_read(path, &a, &err) == AAL_OK, "%s", err.msg);
  ck_assert(a.dtype == AAL_NPY_F64 && a.ndim == 3 && a.count == 6);
  ck_assert(memcmp(a.data, v, sizeof v) == 0); /* bit for bit: -0, NaN */
  aal_npy_free(&a);
  const int64_t l[3] = {INT64_MIN, 0, 199};
  const size_t n3 = 3;
  ck_assert_int_eq(aal_npy_write_i64(path, 1, &n3, l, &err), AAL_OK);
  ck_assert(aal_npy_read(path, &a, &err) == AAL_OK);
  ck_assert(a.dtype == AAL_NPY_I64 && memcmp(a.data, l, sizeof l) == 0);
  aal_npy_free(&a);
  /* the generic writer: float32, uint16 bit patterns, bool, a scalar float16 */
  const float f[3] = {1.5f, -0.0f, 1e-3f};
  const uint16_t h[3] = {0x3c00, 0xb800, 0x7bff};
  const uint8_t b[3] = {1, 0, 1};
  const struct { aal_npy_dtype t; const void *v; size_t bytes, n; } cases[] = {
      {AAL_NPY_F32, f, sizeof f, 3}, {AAL_NPY_U16, h, sizeof h, 3},
      {AAL_NPY_BOOL, b, sizeof b, 3}, {AAL_NPY_F16, h, 2, 0}};
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    const int ndim = cases[i].n ? 1 : 0;
    ck_assert_msg(aal_npy_write(path, cases[i].t, ndim, &cases[i].n, cases[i].v, &err) == AAL_OK,
                  "%s", err.msg);
    ck_assert_msg(aal_npy_read(path, &a, &err) == AAL_OK, "%s", err.msg);
    ck_assert(a.dtype == cases[i].t && a.ndim == ndim && a.count * aal_npy_dtype_size(a.dtype) ==
                                                             cases[i].bytes);
    ck_assert(memcmp(a.data, cases[i].v, cases[i].bytes) == 0);
    aal_npy_free(&a);
  }
}
END_TEST

/* Each damaged file is refused with AAL_EFORMAT (AAL_EIO for what cannot be read), a
 * message naming the file and the words given. */
static void refused(const unsigned char *b, size_t n, int code, const char *words)
{
  char path[300];
  snprintf(path, sizeof path, "%s/bad.npy", root);
  write_bytes(path, b, n);
  aal_npy_array a;
  aal_error err;
  aal_error_clear(&err);
  const int rc = aal_npy_read(path, &a, &err);
  ck_assert_msg(rc == code && strstr(err.msg, path) && strstr(err.msg, words),
                "want %d '%s', got %d: %s", code, words, rc, err.msg);
  ck_assert_ptr_null(a.data);
}

static void refused_header(const char *header, size_t ndata, const char *words)
{
  unsigned char buf[600];
  static const char zeros[64];
  refused(buf, aal_test_npy_bytes(buf, 1, header, zeros, ndata), AAL_EFORMAT, words);
}

START_TEST(test_refusals)
{
  unsigned char buf[600];
  const char *f8 = "{'descr': '<f8', 'fortran_order': False, 'shape': (2,), }";
  const size_t n = aal_test_npy_bytes(buf, 1, f8, "\x00\x00\x00\x00\x00\x00\xf0\x3f"
                                         "\x00\x00\x00\x00\x00\x00\x04\xc0", 16);
  refused(buf, n - 1, AAL_EFORMAT, "truncated: 15 bytes of data");
  refused(buf, 30, AAL_EFORMAT, "truncated: a header");
  refused(buf, 9, AAL_EFORMAT, "no \\x93NUMPY magic");
  unsigned char copy[600];
  memcpy(copy, buf, n);
  copy[1] = 'n';
  refused(copy, n, AAL_EFORMAT, "magic");
  memcpy(copy, buf, n);
  copy[6] = 3;
  refused(copy, n, AAL_EFORMAT, "version 3.0 is not supported");
  memcpy(copy, buf, n);
  copy[n] = 0;
  refused(copy, n + 1, AAL_EFORMAT, "1 bytes after the data");
  /* numpy's own Fortran-order and big-endian files */
  refused_header("{'descr': '<f8', 'fortran_order': True, 'shape': (2, 2), }", 32,
                 "Fortran order");
  refused_header("{'descr': '>f8', 'fortran_order': False, 'shape': (2,), }", 16, "big-endian");
  refused_header("{'descr': '<f4', 'fortran_order': False, 'shape': (2, 3, 4, 5, 6, 7, 8, 9, "
                 "10), }", 0, "more than 8 dimensions");
  refused_header("{'descr': '<i4', 'fortran_order': False, 'shape': (2,), }", 8,
                 "dtype '<i4' is not supported");
  refused_header("{'descr': [('a', '<f8')], 'fortran_order': False, 'shape': (1,), }", 8,
                 "expected a quoted string");
  refused_header("{'descr': '<f8', 'fortran_order': False, 'shape': (2), }", 16, "(N,)");
  refused_header("{'descr': '<f8', 'fortran_order': False, 'shape': (-2,), }", 16,
                 "non-negative integer");
  refused_header("{'descr': '<f8', 'fortran_order': False, }", 8, "lacks 'shape'");
  refused_header("{'descr': '<f8', 'descr': '<f8', 'fortran_order': False, 'shape': (1,), }", 8,
                 "'descr' given twice");
  refused_header("{'descr': '<f8', 'fortran_order': False, 'shape': (1,), 'x': 1}", 8,
                 "unknown header key 'x'");
  refused_header("{'descr': '<f8', 'fortran_order': 0, 'shape': (1,), }", 8,
                 "neither True nor False");
  refused_header("{'descr': '<f8', 'fortran_order': False, 'shape': (1,), } x", 8,
                 "text after the dict");
  refused_header("{'descr': '<f8', 'fortran_order': False, 'shape': (99999999999999999999999,)"
                 ", }", 8, "overflows");
  refused_header("{'descr': '<f8', 'fortran_order': False, 'shape': (4611686018427387904, 4), }",
                 8, "count overflows");
  refused_header("{'descr': '|b1', 'fortran_order': False, 'shape': (2,), }", 0,
                 "truncated");
  /* a bool byte other than 0 and 1 */
  refused(buf, aal_test_npy_bytes(buf, 1, "{'descr': '|b1', 'fortran_order': False, 'shape': (2,), }",
                         "\x01\x02", 2), AAL_EFORMAT, "bool element 1 is byte 2");
  /* what cannot be read */
  aal_npy_array a;
  aal_error err;
  char path[300];
  snprintf(path, sizeof path, "%s/missing.npy", root);
  ck_assert_int_eq(aal_npy_read(path, &a, &err), AAL_EIO);
  ck_assert_msg(strstr(err.msg, path) && strstr(err.msg, "cannot open"), "%s", err.msg);
  ck_assert_int_eq(aal_npy_read(root, &a, &err), AAL_EIO);
  ck_assert_msg(strstr(err.msg, root) && strstr(err.msg, "a directory, not an .npy file"), "%s",
                err.msg);
}
END_TEST

int main(void)
{
  snprintf(root, sizeof root, "%s/aal-test-npy-XXXXXX",
           getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp");
  if (mkdtemp(root) == NULL) {
    perror("mkdtemp");
    return EXIT_FAILURE;
  }
  Suite *s = suite_create("npy");
  TCase *tc = tcase_create("npy");
  tcase_add_test(tc, test_numpy_files);
  tcase_add_test(tc, test_writer_round_trip);
  tcase_add_test(tc, test_refusals);
  suite_add_tcase(s, tc);
  const int status = aal_check_run(s);
  char cmd[300];
  snprintf(cmd, sizeof cmd, "rm -rf '%s'", root);
  if (system(cmd) != 0)
    fprintf(stderr, "could not remove %s\n", root);
  return status;
}
