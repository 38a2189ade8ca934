/* The run's config file: every option that determines the run, written at the start and
 * read back by --resume. */
#include <errno.h>
#include <limits.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <cblas.h>

#include "sim/train/checkpoint.h"
#include "sim/train/train_internal.h"

#define BLAS_THREADS_MAX 4096 /* above any OpenBLAS build's MAX_CPU_NUMBER */

int aal_train_config_text(const aal_train_run *r, char *text, size_t len, aal_error *err)
{
  const aal_train_opts *o = &r->o;
  int n = snprintf(text, len,
                   "# aal train run; --resume reads this file\n"
                   "rule = %s\ndata = %s\nsteps = %ld\nbatch = %d\nlr = %.17g\n"
                   "warmup = %ld\nmomentum = %.17g\nweight_decay = %.17g\neval_every = %ld\n"
                   "checkpoint_every = %ld\nli_every = %ld\nwidth = %.17g\nblocks = %s\n"
                   "seed = %lu\nbackend = %s\nblas_threads = %d\nmodel = %s\nstem = %s\n"
                   "ranks = %d\n"
                   "# derived, for the reader\nclasses = %d\ntrain_images = %zu\n"
                   "val_images = %zu\nsteps_per_epoch = %ld\ndata_fingerprint = %016llx\n",
                   r->rule_text, r->data_dir, r->total_steps, o->batch, r->lr, r->warmup,
                   o->momentum, o->weight_decay, o->eval_every, o->checkpoint_every,
                   o->li_every, o->width, r->blocks, o->seed, r->backend, o->blas_threads,
                   o->model, o->stem, r->ranks,
                   r->ds.classes, r->ds.train.n, r->ds.val.n, r->steps_per_epoch,
                   (unsigned long long)r->ds.fingerprint);
  if (n < 0 || (size_t)n >= len)
    return aal_fail(err, AAL_EINVAL, "config too long");
  return AAL_OK;
}

int aal_train_config_write(const aal_train_run *r, aal_error *err)
{
  char text[AAL_CONFIG_MAX], path[PATH_MAX];
  int rc = aal_train_config_text(r, text, sizeof text, err);
  if (rc == AAL_OK)
    rc = aal_train_path(path, sizeof path, r->out_dir, "config", err);
  return rc == AAL_OK ? aal_write_atomic(path, text, strlen(text), err) : rc;
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

/* The keys a config must hold, in the order they are written (backend may be absent: a
 * run written before backends existed ran on ref; so may blas_threads, written since
 * issue 15: such a resume checks no thread count; and model and stem, written since
 * issue 12: such a run is a resnet18 with the tiny stem, the defaults; and ranks, written
 * since issue 14: such a run ran in one process). */
static const char *const required[] = {
    "rule", "data", "steps", "batch", "lr", "warmup", "momentum", "weight_decay",
    "eval_every", "checkpoint_every", "li_every", "width", "blocks", "seed"};
#define NREQUIRED (sizeof required / sizeof required[0])

static int key_index(const char *key)
{
  for (size_t i = 0; i < NREQUIRED; i++)
    if (strcmp(key, required[i]) == 0)
      return (int)i;
  static const char *const optional[] = {"backend", "blas_threads", "model", "stem", "ranks"};
  for (size_t i = 0; i < sizeof optional / sizeof optional[0]; i++)
    if (strcmp(key, optional[i]) == 0)
      return (int)(NREQUIRED + i);
  return -1;
}

/* A whole decimal integer in min..max (no fraction, no exponent, no rounding). */
static int parse_long(const char *path, int line, const char *key, const char *value,
                      long min, long max, long *out, aal_error *err)
{
  char *end;
  errno = 0;
  const long v = strtol(value, &end, 10);
  if (end == value || *end != '\0' || errno != 0 || v < min || v > max)
    return aal_fail(err, AAL_EFORMAT, "%s:%d: %s = '%s' is not an integer in %ld..%ld", path,
                    line, key, value, min, max);
  *out = v;
  return AAL_OK;
}

/* The seed exactly: a decimal integer in 0..ULONG_MAX (strtoull would take a sign). */
static int parse_seed(const char *path, int line, const char *value, unsigned long *out,
                      aal_error *err)
{
  char *end;
  errno = 0;
  const unsigned long long v = strtoull(value, &end, 10);
  if (!(*value >= '0' && *value <= '9') || *end != '\0' || errno != 0 || v > ULONG_MAX)
    return aal_fail(err, AAL_EFORMAT, "%s:%d: seed = '%s' is not an integer in 0..%lu", path,
                    line, value, ULONG_MAX);
  *out = (unsigned long)v;
  return AAL_OK;
}

static int set_key(aal_train_opts *o, const char *path, int line, const char *key,
                   const char *value, char **arena, size_t *left, aal_error *err)
{
  static const char *const strings[] = {"rule", "data", "blocks", "backend", "model", "stem"};
  const char **targets[] = {&o->rule, &o->data_dir, &o->blocks, &o->backend, &o->model,
                            &o->stem};
  for (int i = 0; i < 6; i++)
    if (strcmp(key, strings[i]) == 0) {
      *targets[i] = keep(arena, left, value);
      return *targets[i] ? AAL_OK : aal_fail(err, AAL_EFORMAT, "%s:%d: value too long", path, line);
    }
  static const char *const derived[] = {"classes", "train_images", "val_images",
                                        "steps_per_epoch", "data_fingerprint"};
  for (size_t i = 0; i < sizeof derived / sizeof derived[0]; i++)
    if (strcmp(key, derived[i]) == 0)
      return AAL_OK;
  static const struct { const char *key; long min, max; } integers[] = {
      {"steps", 0, LONG_MAX}, {"batch", INT_MIN, INT_MAX}, {"warmup", LONG_MIN, LONG_MAX},
      {"eval_every", 0, LONG_MAX}, {"checkpoint_every", 0, LONG_MAX},
      {"li_every", 0, LONG_MAX}};
  long *const long_targets[] = {&o->steps, NULL, &o->warmup, &o->eval_every,
                                &o->checkpoint_every, &o->li_every};
  for (size_t i = 0; i < sizeof integers / sizeof integers[0]; i++)
    if (strcmp(key, integers[i].key) == 0) {
      long v = 0;
      int rc = parse_long(path, line, key, value, integers[i].min, integers[i].max, &v, err);
      if (rc == AAL_OK && long_targets[i] != NULL)
        *long_targets[i] = v;
      else if (rc == AAL_OK)
        o->batch = (int)v;
      return rc;
    }
  if (strcmp(key, "seed") == 0)
    return parse_seed(path, line, value, &o->seed, err);
  static const struct { const char *key; long max; } counts[] = {
      {"blas_threads", BLAS_THREADS_MAX}, {"ranks", INT_MAX}};
  int *const count_targets[] = {&o->blas_threads, &o->ranks};
  for (size_t i = 0; i < sizeof counts / sizeof counts[0]; i++)
    if (strcmp(key, counts[i].key) == 0) {
      long v = 0;
      int rc = parse_long(path, line, key, value, 1, counts[i].max, &v, err);
      if (rc == AAL_OK)
        *count_targets[i] = (int)v;
      return rc;
    }
  static const char *const doubles[] = {"lr", "momentum", "weight_decay", "width"};
  double *const double_targets[] = {&o->lr, &o->momentum, &o->weight_decay, &o->width};
  for (size_t i = 0; i < sizeof doubles / sizeof doubles[0]; i++)
    if (strcmp(key, doubles[i]) == 0)
      return parse_number(path, line, key, value, double_targets[i], err);
  return aal_fail(err, AAL_EFORMAT, "%s:%d: unknown key '%s'", path, line, key);
}

/* A key given twice is an error; so is a required one never given. */
static int note_key(const char *path, int line, const char *key, unsigned *seen,
                    aal_error *err)
{
  const int i = key_index(key);
  if (i < 0)
    return AAL_OK;
  if (*seen & (1u << i))
    return aal_fail(err, AAL_EFORMAT, "%s:%d: '%s' is given twice", path, line, key);
  *seen |= 1u << i;
  return AAL_OK;
}

static int check_complete(const char *path, unsigned seen, aal_error *err)
{
  for (size_t i = 0; i < NREQUIRED; i++)
    if (!(seen & (1u << i)))
      return aal_fail(err, AAL_EFORMAT, "%s: the key '%s' is missing; a run's config must "
                      "give every setting of the run, and this one cannot be resumed as it "
                      "was set up", path, required[i]);
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
  unsigned seen = 0;
  while (rc == AAL_OK && fgets(buf, sizeof buf, f) != NULL) {
    line++;
    /* a line the buffer cannot hold would be read as two: its rest as a line of its own
     * (a key of its own), its value cut short; no config the trainer writes is this long */
    if (strchr(buf, '\n') == NULL && !feof(f)) {
      rc = aal_fail(err, AAL_EFORMAT, "%s:%d: line longer than %zu characters", path, line,
                    sizeof buf - 2);
      break;
    }
    char *s = trim(buf);
    if (*s == '#' || *s == '\0')
      continue;
    char *eq = strchr(s, '=');
    if (eq == NULL) {
      rc = aal_fail(err, AAL_EFORMAT, "%s:%d: expected 'key = value'", path, line);
      break;
    }
    *eq = '\0';
    const char *key = trim(s);
    rc = note_key(path, line, key, &seen, err);
    if (rc == AAL_OK)
      rc = set_key(o, path, line, key, trim(eq + 1), &strings, &strings_len, err);
  }
  fclose(f);
  return rc == AAL_OK ? check_complete(path, seen, err) : rc;
}

/* ------------------------------------------------------------ what a resume may be given */

typedef enum { KIND_STRING, KIND_INT, KIND_LONG, KIND_ULONG, KIND_DOUBLE } value_kind;

typedef struct {
  unsigned bit;
  const char *option;
  value_kind kind;
  size_t offset;
} run_setting;

static const run_setting settings[] = {
    {AAL_SET_DATA, "data", KIND_STRING, offsetof(aal_train_opts, data_dir)},
    {AAL_SET_BATCH, "batch", KIND_INT, offsetof(aal_train_opts, batch)},
    {AAL_SET_LR, "lr", KIND_DOUBLE, offsetof(aal_train_opts, lr)},
    {AAL_SET_WARMUP, "warmup", KIND_LONG, offsetof(aal_train_opts, warmup)},
    {AAL_SET_MOMENTUM, "momentum", KIND_DOUBLE, offsetof(aal_train_opts, momentum)},
    {AAL_SET_WEIGHT_DECAY, "weight-decay", KIND_DOUBLE, offsetof(aal_train_opts, weight_decay)},
    {AAL_SET_EVAL_EVERY, "eval-every", KIND_LONG, offsetof(aal_train_opts, eval_every)},
    {AAL_SET_CHECKPOINT_EVERY, "checkpoint-every", KIND_LONG,
     offsetof(aal_train_opts, checkpoint_every)},
    {AAL_SET_LI_EVERY, "li-every", KIND_LONG, offsetof(aal_train_opts, li_every)},
    {AAL_SET_WIDTH, "width", KIND_DOUBLE, offsetof(aal_train_opts, width)},
    {AAL_SET_BLOCKS, "blocks", KIND_STRING, offsetof(aal_train_opts, blocks)},
    {AAL_SET_MODEL, "model", KIND_STRING, offsetof(aal_train_opts, model)},
    {AAL_SET_STEM, "stem", KIND_STRING, offsetof(aal_train_opts, stem)},
    {AAL_SET_SEED, "seed", KIND_ULONG, offsetof(aal_train_opts, seed)},
    {AAL_SET_BACKEND, "backend", KIND_STRING, offsetof(aal_train_opts, backend)}};

/* The value of a setting as text (doubles so that they read back exactly). */
static void value_text(const run_setting *s, const aal_train_opts *o, char *buf, size_t len)
{
  const char *at = (const char *)o + s->offset;
  switch (s->kind) {
  case KIND_STRING: {
    const char *v = *(const char *const *)(const void *)at;
    snprintf(buf, len, "%s", v ? v : "(none)");
    break;
  }
  case KIND_INT: snprintf(buf, len, "%d", *(const int *)(const void *)at); break;
  case KIND_LONG: snprintf(buf, len, "%ld", *(const long *)(const void *)at); break;
  case KIND_ULONG: snprintf(buf, len, "%lu", *(const unsigned long *)(const void *)at); break;
  case KIND_DOUBLE: snprintf(buf, len, "%.17g", *(const double *)(const void *)at); break;
  }
}

static int contradiction(const char *run_dir, const char *option, const char *asked,
                         const char *stored, aal_error *err)
{
  return aal_fail(err, AAL_EINVAL, "--%s %s contradicts the run in %s, which has %s = %s: "
                  "a resume continues a run as it was set up (leave --%s out, or start "
                  "another run with another --out)", option, asked, run_dir, option, stored,
                  option);
}

/* The rules of both texts parsed and formatted again, so that spellings of one rule agree. */
static int check_rule(const char *run_dir, const char *asked, const char *stored,
                      aal_error *err)
{
  aal_rule a, b;
  char ta[160], tb[160];
  int rc = aal_rule_parse(asked, &a, err);
  if (rc != AAL_OK)
    return rc;
  rc = aal_rule_parse(stored, &b, err);
  if (rc != AAL_OK)
    return rc;
  aal_rule_format(&a, ta, sizeof ta);
  aal_rule_format(&b, tb, sizeof tb);
  return strcmp(ta, tb) == 0 ? AAL_OK : contradiction(run_dir, "rule", asked, stored, err);
}

/* Two names of one directory agree. */
static int same_path(const char *a, const char *b)
{
  if (a == NULL || b == NULL)
    return a == b;
  if (strcmp(a, b) == 0)
    return 1;
  struct stat sa, sb;
  return stat(a, &sa) == 0 && stat(b, &sb) == 0 && sa.st_dev == sb.st_dev &&
         sa.st_ino == sb.st_ino;
}

static int check_setting(const char *run_dir, const run_setting *s, const aal_train_opts *asked,
                         const aal_train_opts *stored, aal_error *err)
{
  char ta[PATH_MAX], tb[PATH_MAX];
  aal_train_opts resolved = *asked;
  if (s->bit == AAL_SET_LR && !(asked->lr > 0)) /* 0: the default for the run's batch */
    resolved.lr = 0.05 * stored->batch / 512.0;
  if (s->bit == AAL_SET_BLOCKS && asked->blocks == NULL) /* the model's: nothing asked */
    return AAL_OK;
  value_text(s, &resolved, ta, sizeof ta);
  value_text(s, stored, tb, sizeof tb);
  const int same = s->bit == AAL_SET_DATA ? same_path(asked->data_dir, stored->data_dir)
                                          : strcmp(ta, tb) == 0;
  return same ? AAL_OK : contradiction(run_dir, s->option, ta, tb, err);
}

int aal_train_resume_check(const char *run_dir, const aal_train_opts *asked, unsigned set,
                           aal_error *err)
{
  static const struct { unsigned bit; const char *option; } never[] = {
      {AAL_SET_EPOCHS, "epochs"}, {AAL_SET_CACHE, "cache"}};
  for (size_t i = 0; i < sizeof never / sizeof never[0]; i++)
    if (set & never[i].bit)
      return aal_fail(err, AAL_EINVAL, "--%s is not taken by a resume (the run's length "
                      "is --steps; its data is in %s/config)", never[i].option, run_dir);
  if ((set & AAL_SET_OUT) && !same_path(asked->out_dir, run_dir))
    return aal_fail(err, AAL_EINVAL, "--out %s and --resume %s: a resume writes the run's "
                    "own directory", asked->out_dir, run_dir);
  aal_train_opts stored;
  char strings[3 * PATH_MAX];
  int rc = aal_train_config_read(run_dir, &stored, strings, sizeof strings, err);
  if (rc == AAL_OK && (set & AAL_SET_RULE))
    rc = check_rule(run_dir, asked->rule, stored.rule, err);
  for (size_t i = 0; rc == AAL_OK && i < sizeof settings / sizeof settings[0]; i++)
    if (set & settings[i].bit)
      rc = check_setting(run_dir, &settings[i], asked, &stored, err);
  /* the thread count: free on ref (bit-identical for any count), the run's own on any
   * other backend; 0 asks for OpenBLAS's default, which the resume replaces with it */
  if (rc == AAL_OK && (set & AAL_SET_THREADS) && asked->blas_threads > 0 &&
      stored.blas_threads > 0 && !aal_train_backend_is_ref(stored.backend) &&
      asked->blas_threads != stored.blas_threads)
    rc = aal_fail(err, AAL_EINVAL, "--threads %d contradicts the run in %s, which has "
                  "blas_threads = %d: the %s backend's results depend on OpenBLAS's thread "
                  "count, so its resume runs with the run's count (leave --threads out)",
                  asked->blas_threads, run_dir, stored.blas_threads, stored.backend);
  return rc;
}

int aal_train_backend_is_ref(const char *backend)
{
  return backend == NULL || strcmp(backend, "ref") == 0;
}

int aal_train_blas_threads_apply(const char *run_dir, const aal_train_opts *o,
                                 aal_error *err)
{
  if (aal_train_backend_is_ref(o->backend) || o->blas_threads <= 0)
    return AAL_OK;
  const int before = openblas_get_num_threads();
  openblas_set_num_threads(o->blas_threads);
  const int got = openblas_get_num_threads();
  if (got == o->blas_threads)
    return AAL_OK;
  openblas_set_num_threads(before);
  return aal_fail(err, AAL_EINVAL, "%s/config has blas_threads = %d, but OpenBLAS here runs "
                  "at most %d: the %s backend's results depend on the count, so the run "
                  "cannot continue as it began", run_dir, o->blas_threads, got, o->backend);
}
