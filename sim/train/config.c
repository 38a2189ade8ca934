/* The run's config file: every option that determines the run, written at the start and
 * read back by --resume. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "sim/train/checkpoint.h"
#include "sim/train/train_internal.h"

int aal_train_config_write(const aal_train_run *r, aal_error *err)
{
  char text[8192], path[PATH_MAX];
  const aal_train_opts *o = &r->o;
  int n = snprintf(text, sizeof text,
                   "# aal train run; --resume reads this file\n"
                   "rule = %s\ndata = %s\nsteps = %ld\nbatch = %d\nlr = %.17g\n"
                   "warmup = %ld\nmomentum = %.17g\nweight_decay = %.17g\neval_every = %ld\n"
                   "checkpoint_every = %ld\nli_every = %ld\nwidth = %.17g\nblocks = %s\n"
                   "seed = %lu\nbackend = %s\n"
                   "# derived, for the reader\nclasses = %d\ntrain_images = %zu\n"
                   "val_images = %zu\nsteps_per_epoch = %ld\ndata_fingerprint = %016llx\n",
                   r->rule_text, r->data_dir, r->total_steps, o->batch, r->lr, r->warmup,
                   o->momentum, o->weight_decay, o->eval_every, o->checkpoint_every,
                   o->li_every, o->width, r->blocks, o->seed, r->backend, r->ds.classes, r->ds.train.n,
                   r->ds.val.n, r->steps_per_epoch, (unsigned long long)r->ds.fingerprint);
  if (n < 0 || n >= (int)sizeof text)
    return aal_fail(err, AAL_EINVAL, "config too long");
  int rc = aal_train_path(path, sizeof path, r->out_dir, "config", err);
  return rc == AAL_OK ? aal_write_atomic(path, text, (size_t)n, err) : rc;
}

static char *trim(char *s)
{
  while (*s == ' ' || *s == '\t')
    s++;
  char *end = s + strlen(s);
  while (end > s && (end[-1] == ' ' || end[-1] == '\t' || end[-1] == '\n' || end[-1] == '\r'))
    *--end = '\0';
  return s;
}

/* Copies value into the string arena and returns it. */
static const char *keep(char **arena, size_t *left, const char *value)
{
  const size_t n = strlen(value) + 1;
  if (n > *left)
    return NULL;
  char *s = memcpy(*arena, value, n);
  *arena += n;
  *left -= n;
  return s;
}

static int parse_number(const char *path, int line, const char *key, const char *value,
                        double *out, aal_error *err)
{
  char *end;
  errno = 0;
  *out = strtod(value, &end);
  if (end == value || *end != '\0' || errno != 0)
    return aal_fail(err, AAL_EFORMAT, "%s:%d: %s = '%s' is not a number", path, line, key,
                    value);
  return AAL_OK;
}

static int set_key(aal_train_opts *o, const char *path, int line, const char *key,
                   const char *value, char **arena, size_t *left, aal_error *err)
{
  static const char *const strings[] = {"rule", "data", "blocks", "backend"};
  const char **targets[] = {&o->rule, &o->data_dir, &o->blocks, &o->backend};
  for (int i = 0; i < 4; i++)
    if (strcmp(key, strings[i]) == 0) {
      *targets[i] = keep(arena, left, value);
      return *targets[i] ? AAL_OK : aal_fail(err, AAL_EFORMAT, "%s:%d: value too long", path, line);
    }
  static const char *const derived[] = {"classes", "train_images", "val_images",
                                        "steps_per_epoch", "data_fingerprint"};
  for (size_t i = 0; i < sizeof derived / sizeof derived[0]; i++)
    if (strcmp(key, derived[i]) == 0)
      return AAL_OK;
  double v;
  int rc = parse_number(path, line, key, value, &v, err);
  if (rc != AAL_OK)
    return rc;
  if (strcmp(key, "steps") == 0) o->steps = (long)v;
  else if (strcmp(key, "batch") == 0) o->batch = (int)v;
  else if (strcmp(key, "lr") == 0) o->lr = v;
  else if (strcmp(key, "warmup") == 0) o->warmup = (long)v;
  else if (strcmp(key, "momentum") == 0) o->momentum = v;
  else if (strcmp(key, "weight_decay") == 0) o->weight_decay = v;
  else if (strcmp(key, "eval_every") == 0) o->eval_every = (long)v;
  else if (strcmp(key, "checkpoint_every") == 0) o->checkpoint_every = (long)v;
  else if (strcmp(key, "li_every") == 0) o->li_every = (long)v;
  else if (strcmp(key, "width") == 0) o->width = v;
  else if (strcmp(key, "seed") == 0) o->seed = (unsigned long)v;
  else
    return aal_fail(err, AAL_EFORMAT, "%s:%d: unknown key '%s'", path, line, key);
  return AAL_OK;
}

int aal_train_config_read(const char *run_dir, aal_train_opts *o, char *strings,
                          size_t strings_len, aal_error *err)
{
  char path[PATH_MAX], buf[PATH_MAX + 64];
  int rc = aal_train_path(path, sizeof path, run_dir, "config", err);
  if (rc != AAL_OK)
    return rc;
  FILE *f = fopen(path, "r");
  if (f == NULL)
    return aal_fail(err, AAL_EIO, "%s: cannot open: %s (is %s a run directory?)", path,
                    strerror(errno), run_dir);
  aal_train_opts_default(o);
  o->out_dir = run_dir;
  int line = 0;
  while (rc == AAL_OK && fgets(buf, sizeof buf, f) != NULL) {
    line++;
    char *s = trim(buf);
    if (*s == '#' || *s == '\0')
      continue;
    char *eq = strchr(s, '=');
    if (eq == NULL) {
      rc = aal_fail(err, AAL_EFORMAT, "%s:%d: expected 'key = value'", path, line);
      break;
    }
    *eq = '\0';
    rc = set_key(o, path, line, trim(s), trim(eq + 1), &strings, &strings_len, err);
  }
  fclose(f);
  return rc;
}
