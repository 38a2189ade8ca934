/* Elementwise add in float32: y = a + b (n elements). */
#include "kernels/cpu/cpu32.h"
#include "kernels/backend_check.h"

typedef struct {
  const float *a, *b;
  float *y;
} add_ctx;

static void add_elements(const void *arg, size_t lo, size_t hi)
{
  const add_ctx *c = arg;
  for (size_t i = lo; i < hi; i++)
    c->y[i] = c->a[i] + c->b[i];
}

/* Split over elements by the backend's team (each y[i] written by one thread). */
int aal_cpu32_add(const aal_backend *be, size_t n, const void *a, const void *b, void *y,
                  aal_error *err)
{
  int rc = aal_be_check_count("cpu32 add", n, sizeof(float), err);
  if (rc == AAL_OK)
    rc = aal_be_check_ptrs("cpu32 add", "a, b, y", err, 3, a, b, y);
  if (rc != AAL_OK)
    return rc;
  const add_ctx c = {a, b, y};
  aal_team_par_for(aal_cpu32_be_team(be), add_elements, &c, n, n * sizeof(float));
  return AAL_OK;
}
