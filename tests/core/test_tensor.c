/* Tensors: shapes, sizes, bad sizes, packed bits, reference counts. */
#include <check.h>
#include <stdint.h>
#include <stdlib.h>

#include "tests/aal_check.h"
#include "sim/core/tensor.h"

START_TEST(test_new_and_bytes)
{
  aal_error err;
  aal_tensor *t = aal_tensor_new4(2, 3, 5, 7, &err);
  ck_assert_ptr_nonnull(t);
  ck_assert_uint_eq(t->size, 2 * 3 * 5 * 7);
  ck_assert_uint_eq(aal_tensor_bytes(t), 2 * 3 * 5 * 7 * 8);
  ck_assert_uint_eq(aal_tensor_bytes_f32(t), 2 * 3 * 5 * 7 * 4);
  for (size_t i = 0; i < t->size; i++)
    ck_assert(t->data[i] == 0.0);
  ck_assert_uint_eq(aal_idx4(t, 1, 2, 4, 6), t->size - 1);
  char s[64];
  aal_tensor_shape_str(t, s, sizeof s);
  ck_assert_str_eq(s, "2x3x5x7");
  aal_tensor_release(t);
}
END_TEST

START_TEST(test_bad_sizes)
{
  aal_error err;
  aal_error_clear(&err);
  ck_assert_ptr_null(aal_tensor_new4(2, 0, 5, 5, &err));
  ck_assert_int_eq(err.code, AAL_EINVAL);
  ck_assert(err.msg[0] != '\0');
  ck_assert_ptr_null(aal_tensor_new4(2, 3, -5, 5, &err));
  ck_assert_int_eq(err.code, AAL_EINVAL);
  const long huge[4] = {1L << 20, 1L << 20, 1L << 20, 1L << 20};
  ck_assert_ptr_null(aal_tensor_new(4, huge, &err));
  ck_assert_int_eq(err.code, AAL_ENOMEM);
  const long one[1] = {3};
  ck_assert_ptr_null(aal_tensor_new(0, one, &err));
  ck_assert_int_eq(err.code, AAL_EINVAL);
  ck_assert_ptr_null(aal_tensor_new(5, one, &err));
  ck_assert_ptr_null(aal_tensor_new(1, NULL, &err));
}
END_TEST

START_TEST(test_bits)
{
  aal_error err;
  const long shape[2] = {3, 43}; /* 129 bits: five words, the last holding one bit */
  aal_tensor *b = aal_tensor_new_bits(2, shape, &err);
  ck_assert_ptr_nonnull(b);
  ck_assert_uint_eq(aal_tensor_bytes(b), 17);
  ck_assert_uint_eq(aal_tensor_bytes_f32(b), 17);
  for (size_t i = 0; i < b->size; i++)
    aal_bit_set(b->bits, i, (int)(i % 3 == 0));
  for (size_t i = 0; i < b->size; i++)
    ck_assert_int_eq(aal_bit_get(b->bits, i), (int)(i % 3 == 0));
  aal_bit_set(b->bits, 128, 0);
  ck_assert_int_eq(aal_bit_get(b->bits, 128), 0);
  ck_assert_int_eq(aal_bit_get(b->bits, 126), 1);
  aal_tensor_release(b);
}
END_TEST

START_TEST(test_refcount_and_copy)
{
  aal_error err;
  aal_tensor *t = aal_tensor_new2(2, 2, &err);
  t->data[3] = 4.5;
  ck_assert_ptr_eq(aal_tensor_retain(t), t);
  ck_assert_int_eq(t->refcount, 2);
  aal_tensor_release(t);
  ck_assert_int_eq(t->refcount, 1);
  aal_tensor *c = aal_tensor_copy(t, &err);
  ck_assert(c->data[3] == 4.5);
  ck_assert(aal_tensor_same_shape(t, c));
  aal_tensor *v = aal_tensor_new1(4, &err);
  ck_assert(!aal_tensor_same_shape(t, v));
  ck_assert_int_eq(aal_tensor_require_same(t, v, "a", "b", &err), AAL_ESHAPE);
  ck_assert_int_eq(aal_tensor_require(v, 4, AAL_F64, "v", &err), AAL_ESHAPE);
  ck_assert_int_eq(aal_tensor_require(NULL, 4, AAL_F64, "v", &err), AAL_EINVAL);
  aal_tensor_release(t);
  aal_tensor_release(c);
  aal_tensor_release(v);
  aal_tensor_release(NULL);
}
END_TEST

int main(void)
{
  Suite *s = suite_create("tensor");
  TCase *tc = tcase_create("core");
  tcase_add_test(tc, test_new_and_bytes);
  tcase_add_test(tc, test_bad_sizes);
  tcase_add_test(tc, test_bits);
  tcase_add_test(tc, test_refcount_and_copy);
  suite_add_tcase(s, tc);
  return aal_check_run(s);
}
