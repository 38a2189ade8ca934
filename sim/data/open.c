/* A data directory, whatever its format: the one place that tells Fashion-MNIST's IDX
 * files from a Tiny ImageNet tree. */
#include "sim/data/data.h"

int aal_data_open(const char *dir, const char *cache_path, aal_data_set *ds, FILE *log,
                  aal_error *err)
{
  aal_data_init(ds);
  if (dir == NULL || *dir == '\0')
    return aal_fail(err, AAL_EINVAL, "data directory not given");
  if (!aal_fmnist_detect(dir))
    return aal_data_load(dir, cache_path, ds, log, err);
  if (cache_path != NULL)  /* it loads in about a second: a cache would not pay */
    return aal_fail(err, AAL_EINVAL, "%s holds Fashion-MNIST (IDX files), which is read "
                    "without a cache; --cache %s does not apply", dir, cache_path);
  return aal_fmnist_read(dir, ds, log, err);
}
