/* `aal train`: the training loop on Tiny ImageNet, Fashion-MNIST or the built-in
 * generated set, metrics, checkpoints and resume. */
#include "sim/train/train.h"

#include <errno.h>
#include <limits.h>
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cblas.h>
#include <gsl/gsl_rng.h>

#include "sim/train/checkpoint.h"
#include "sim/data/data.h"
#include "sim/model/resnet.h"
#include "sim/train/train_internal.h"

void aal_train_opts_default(aal_train_opts *o)
{
  memset(o, 0, sizeof *o);
  o->rule = "bp";
  o->out_dir = "runs/train";
  o->epochs = 1.0;
  o->batch = 32;
  o->lr = 0;
  o->warmup = -1;
  o->momentum = 0.9;
  o->weight_decay = 1e-4;
  o->width = 1.0;
  o->model = "resnet18";
  o->stem = "tiny";
  o->blocks = NULL;
  o->seed = 1;
  o->progress = -1;
  o->backend = "ref";
  o->ranks = 1;
}

unsigned long aal_mix_seed(unsigned long seed, unsigned long what, unsigned long index)
{
  uint64_t z = (uint64_t)seed + 0x9E3779B97F4A7C15ull * (what + 1) +
               0xD1B54A32D192ED03ull * (uint64_t)index;
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  z ^= z >> 31;
  return (unsigned long)(z & 0xffffffffu);  /* mt19937 takes a 32-bit seed */
}

/* ---------------------------------------------------------------- the run's state */

int aal_mkdir_p(const char *path, aal_error *err)
{
  char buf[PATH_MAX];
  if (snprintf(buf, sizeof buf, "%s", path) >= (int)sizeof buf)
    return aal_fail(err, AAL_EINVAL, "path too long: %s", path);
  for (char *p = buf + 1; *p; p++) {
    if (*p != '/')
      continue;
    *p = '\0';
    if (mkdir(buf, 0777) != 0 && errno != EEXIST)
      return aal_fail(err, AAL_EIO, "cannot create directory %s: %s", buf, strerror(errno));
    *p = '/';
  }
  if (mkdir(buf, 0777) != 0 && errno != EEXIST)
    return aal_fail(err, AAL_EIO, "cannot create directory %s: %s", buf, strerror(errno));
  return AAL_OK;
}

int aal_train_path(char *buf, size_t len, const char *dir, const char *name, aal_error *err)
{
  if (snprintf(buf, len, "%s/%s", dir, name) >= (int)len)
    return aal_fail(err, AAL_EINVAL, "path too long: %s/%s", dir, name);
  return AAL_OK;
}

static long resolve_total_steps(const aal_train_opts *o, long steps_per_epoch)
{
  if (o->steps > 0)
    return o->steps;
  return (long)ceil(o->epochs * (double)steps_per_epoch);
}

double aal_train_lr(const aal_train_run *r, long step)
{
  if (step < r->warmup)
    return r->lr * (double)(step + 1) / (double)r->warmup;
  const long span = r->total_steps - r->warmup;
  if (span <= 0)
    return r->lr;
  const double progress = (double)(step - r->warmup) / (double)span;
  const double pi = 3.14159265358979323846;
  return r->lr * 0.5 * (1.0 + cos(pi * progress));
}

static int check_opts(const aal_train_opts *o, aal_error *err)
{
  if (o->batch < 2 || o->batch > 65536)
    return aal_fail(err, AAL_EINVAL, "--batch %d must be in 2..65536", o->batch);
  if (o->steps < 0)
    return aal_fail(err, AAL_EINVAL, "--steps %ld must be >= 0", o->steps);
  if (o->steps == 0 && !(o->epochs > 0 && o->epochs <= 1e6))
    return aal_fail(err, AAL_EINVAL, "--epochs %g must be in (0, 1e6]", o->epochs);
  if (!(o->lr >= 0 && o->lr < 1e3))
    return aal_fail(err, AAL_EINVAL, "--lr %g must be in [0, 1000) (0: 0.05*batch/512)",
                    o->lr);
  if (!(o->momentum >= 0 && o->momentum < 1))
    return aal_fail(err, AAL_EINVAL, "--momentum %g must be in [0, 1)", o->momentum);
  if (!(o->weight_decay >= 0 && o->weight_decay < 1))
    return aal_fail(err, AAL_EINVAL, "--weight-decay %g must be in [0, 1)", o->weight_decay);
  if (o->warmup < -1)
    return aal_fail(err, AAL_EINVAL, "--warmup %ld must be >= 0 (or -1: 5%% of the steps)",
                    o->warmup);
  if (o->stop_after < 0)
    return aal_fail(err, AAL_EINVAL, "--stop-after %ld must be >= 0 (0: run to the end)",
                    o->stop_after);
  if (o->eval_every < 0 || o->checkpoint_every < 0 || o->li_every < 0)
    return aal_fail(err, AAL_EINVAL, "--eval-every, --checkpoint-every and --li-every must "
                    "be >= 0");
  return AAL_OK;
}

/* One process: the slice is the whole batch. */
static int open_whole(aal_train_run *r)
{
  r->x_local = aal_tensor_retain(r->x);
  r->labels_local = r->labels;
  return AAL_OK;
}

/* Data parallel: the slice's buffers, and one for every parameter gradient. */
static int open_slice(aal_train_run *r, aal_error *err)
{
  r->x_local = aal_tensor_new4(r->local_batch, r->ds.geom.channels, r->ds.geom.size,
                               r->ds.geom.size, err);
  r->labels_local = malloc((size_t)r->local_batch * sizeof *r->labels_local);
  for (int i = 0; i < r->net.nparams; i++)
    if (r->net.params[i].grad != NULL)
      r->ngrads += r->net.params[i].grad->size;
  r->grads = malloc(r->ngrads * sizeof *r->grads);
  if (r->x_local == NULL || r->labels_local == NULL || r->grads == NULL)
    return aal_fail(err, AAL_ENOMEM, "cannot allocate the slice's buffers (%zu gradients)",
                    r->ngrads);
  return AAL_OK;
}

/* Loads the data, builds the network and fills the derived settings. */
int aal_train_run_open(aal_train_run *r, const aal_train_opts *o, FILE *log, aal_error *err)
{
  memset(r, 0, sizeof *r);
  r->o = *o;
  r->o.blas_threads = openblas_get_num_threads(); /* what the run's config records */
  r->log = log;
  r->order_epoch = -1;
  aal_data_init(&r->ds);
  int rc = check_opts(o, err);
  if (rc == AAL_OK)
    rc = aal_rule_parse(o->rule, &r->rule, err);
  if (rc != AAL_OK)
    return rc;
  aal_rule_format(&r->rule, r->rule_text, sizeof r->rule_text);
  const char *backend = o->backend != NULL ? o->backend : "ref";
  if (snprintf(r->backend, sizeof r->backend, "%s", backend) >= (int)sizeof r->backend)
    return aal_fail(err, AAL_EINVAL, "--backend '%s': unknown (ref, cpu32, dnnl, cuda)", backend);
  r->o.backend = r->backend;
  r->comm = o->comm;
  r->rank = aal_comm_rank(o->comm);
  r->ranks = aal_comm_size(o->comm);
  if (r->ranks > 1 && !aal_train_backend_is_ref(backend))
    return aal_fail(err, AAL_EINVAL, "--backend %s: data-parallel training (%d processes) runs "
                    "the ref backend only (the backends' batch norm does not split its sums)",
                    backend, r->ranks);
  if (o->batch % r->ranks != 0)
    return aal_fail(err, AAL_EINVAL, "--batch %d is not a multiple of the %d processes (each "
                    "trains on batch/%d samples of every step)", o->batch, r->ranks, r->ranks);
  r->local_batch = o->batch / r->ranks;
  aal_ops_sync_init(&r->sync, r->comm);
  if ((rc = aal_ops_open(r->backend, &r->ops, err)) != AAL_OK)
    return rc;
  r->ops_ready = 1;
  if (o->data_dir == NULL)
    rc = aal_default_data(o->cache_dir, r->data_dir, sizeof r->data_dir, log, err);
  else if (snprintf(r->data_dir, sizeof r->data_dir, "%s", o->data_dir) >=
           (int)sizeof r->data_dir)
    rc = aal_fail(err, AAL_EINVAL, "--data path too long");
  if (rc == AAL_OK)
    rc = aal_data_open(r->data_dir, NULL, &r->ds, log, err);
  if (rc != AAL_OK)
    return rc;
  if (r->ds.train.n < (size_t)o->batch)
    return aal_fail(err, AAL_EINVAL, "%s has %zu training images, fewer than --batch %d",
                    r->data_dir, r->ds.train.n, o->batch);
  aal_resnet_config cfg;
  aal_resnet_config_default(&cfg);
  rc = aal_resnet_config_set_model(&cfg, o->model, err);
  if (rc == AAL_OK)
    rc = aal_resnet_config_set_stem(&cfg, o->stem, err);
  if (rc == AAL_OK)
    rc = aal_resnet_config_set_width(&cfg, o->width, err);
  if (rc == AAL_OK && o->blocks != NULL)
    rc = aal_resnet_config_set_blocks(&cfg, o->blocks, err);
  snprintf(r->blocks, sizeof r->blocks, "%d,%d,%d,%d", cfg.blocks[0], cfg.blocks[1],
           cfg.blocks[2], cfg.blocks[3]);
  cfg.classes = r->ds.classes;
  cfg.in_channels = r->ds.geom.channels; /* the stem takes the data set's images */
  cfg.in_size = r->ds.geom.size;
  if (rc == AAL_OK && cfg.classes < 2)
    rc = aal_fail(err, AAL_EINVAL, "%s has %d class; at least 2 are needed", r->data_dir,
                  cfg.classes);
  if (rc == AAL_OK)
    rc = aal_resnet_init(&r->net, &cfg, o->seed, err);
  if (rc != AAL_OK)
    return rc;
  r->net_ready = 1;
  r->steps_per_epoch = (long)(r->ds.train.n / (size_t)o->batch);
  r->total_steps = resolve_total_steps(o, r->steps_per_epoch);
  r->lr = o->lr > 0 ? o->lr : 0.05 * o->batch / 512.0;
  r->warmup = o->warmup >= 0 ? o->warmup : r->total_steps / 20;
  r->order = malloc(r->ds.train.n * sizeof *r->order);
  r->labels = malloc((size_t)o->batch * sizeof *r->labels);
  r->rng = gsl_rng_alloc(gsl_rng_mt19937);
  r->x = aal_tensor_new4(o->batch, r->ds.geom.channels, r->ds.geom.size, r->ds.geom.size, err);
  if (r->order == NULL || r->labels == NULL || r->rng == NULL || r->x == NULL)
    return aal_fail(err, AAL_ENOMEM, "cannot allocate the training buffers");
  return r->ranks > 1 ? open_slice(r, err) : open_whole(r);
}

void aal_train_run_close(aal_train_run *r)
{
  FILE *files[] = {r->metrics, r->li, r->li_summary, r->align};
  for (int i = 0; i < 4; i++)
    if (files[i] != NULL)
      fclose(files[i]);
  if (r->net_ready)
    aal_resnet_free(&r->net);
  if (r->ops_ready)
    aal_ops_close(&r->ops);
  aal_data_free(&r->ds);
  free(r->order);
  if (r->rng != NULL)
    gsl_rng_free(r->rng);
  aal_tensor_release(r->x);
  aal_tensor_release(r->x_local);
  if (r->labels_local != r->labels)
    free(r->labels_local);
  free(r->labels);
  free(r->grads);
  memset(r, 0, sizeof *r);
}

/* The batch of step s: epoch s / steps_per_epoch in the order drawn for that epoch,
 * augmented with the generator of step s. */
int aal_train_batch(aal_train_run *r, long step, aal_error *err)
{
  const long epoch = step / r->steps_per_epoch, pos = step % r->steps_per_epoch;
  if (epoch != r->order_epoch) {
    gsl_rng_set(r->rng, aal_mix_seed(r->o.seed, 1, (unsigned long)epoch));
    int rc = aal_augment_epoch_order(r->ds.train.n, r->rng, r->order, err);
    if (rc != AAL_OK)
      return rc;
    r->order_epoch = epoch;
  }
  gsl_rng_set(r->rng, aal_mix_seed(r->o.seed, 2, (unsigned long)step));
  int rc = aal_augment_train_batch(&r->ds.geom, r->ds.train.pixels, r->ds.train.labels,
                                   r->ds.train.n, r->order + pos * r->o.batch,
                                   (size_t)r->o.batch, r->rng, r->x, r->labels, err);
  if (rc != AAL_OK || r->ranks == 1)
    return rc;
  /* this process's slice: samples [rank * local_batch, (rank + 1) * local_batch) */
  const size_t per = r->x->size / (size_t)r->o.batch, first = (size_t)r->rank * r->local_batch;
  memcpy(r->x_local->data, r->x->data + first * per, r->x_local->size * sizeof(double));
  memcpy(r->labels_local, r->labels + first, (size_t)r->local_batch * sizeof *r->labels);
  return AAL_OK;
}

int aal_train_pass(aal_train_run *r, long step, aal_resnet_pass *pass, aal_error *err)
{
  int rc = aal_resnet_pass_init(pass, &r->net, &r->rule, aal_mix_seed(r->o.seed, 3, 0),
                                (unsigned long)step, err);
  pass->ops = r->ranks > 1 ? &r->sync.ops : r->ops.table;
  pass->sample_offset = (size_t)r->rank * (size_t)r->local_batch;
  /* the parameters live where the table's ops run (a no-op once they are there) */
  return rc == AAL_OK ? aal_resnet_move(&r->net, r->ops.table, err) : rc;
}

/* ---------------------------------------------------------------- the built-in data */

#define BUILTIN_CLASSES 10
#define BUILTIN_TRAIN 100
#define BUILTIN_VAL 20
#define BUILTIN_SEED 1

static int cache_root(const char *cache_dir, char *buf, size_t len, aal_error *err)
{
  const char *base = cache_dir, *suffix = "";
  if (base == NULL && (base = getenv("AAL_CACHE")) != NULL && *base == '\0')
    base = NULL;
  if (base == NULL && (base = getenv("XDG_CACHE_HOME")) != NULL && *base != '\0')
    suffix = "/aal";
  else if (base == NULL || *base == '\0') {
    base = getenv("HOME");
    suffix = "/.cache/aal";
    if (base == NULL || *base == '\0')
      base = "/tmp";
  }
  if (snprintf(buf, len, "%s%s", base, suffix) >= (int)len)
    return aal_fail(err, AAL_EINVAL, "cache directory path too long");
  return AAL_OK;
}

int aal_default_data(const char *cache_dir, char *buf, size_t len, FILE *log, aal_error *err)
{
  char root[PATH_MAX], tmp[PATH_MAX + 32], marker[PATH_MAX + 16];
  int rc = cache_root(cache_dir, root, sizeof root, err);
  if (rc != AAL_OK)
    return rc;
  if (snprintf(buf, len, "%s/gen-c%d-n%d-v%d-s%d", root, BUILTIN_CLASSES, BUILTIN_TRAIN,
               BUILTIN_VAL, BUILTIN_SEED) >= (int)len)
    return aal_fail(err, AAL_EINVAL, "cache directory path too long");
  snprintf(marker, sizeof marker, "%s/wnids.txt", buf);
  if (access(marker, R_OK) == 0)
    return AAL_OK;
  /* generate beside the final place and rename: a half-written set is never used */
  snprintf(tmp, sizeof tmp, "%s.tmp.%ld", buf, (long)getpid());
  if ((rc = aal_mkdir_p(root, err)) != AAL_OK)
    return rc;
  if (log != NULL)
    fprintf(log, "generating the built-in data set (%d classes, %d train + %d val images "
            "per class) in %s\n", BUILTIN_CLASSES, BUILTIN_TRAIN, BUILTIN_VAL, buf);
  rc = aal_gen_data(tmp, BUILTIN_CLASSES, BUILTIN_TRAIN, BUILTIN_VAL, BUILTIN_SEED, log, err);
  if (rc == AAL_OK && rename(tmp, buf) != 0 && access(marker, R_OK) != 0)
    rc = aal_fail(err, AAL_EIO, "cannot move %s to %s: %s", tmp, buf, strerror(errno));
  return rc;
}
