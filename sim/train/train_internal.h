/* Shared by the files of the trainer; not installed. */
#ifndef AAL_TRAIN_INTERNAL_H
#define AAL_TRAIN_INTERNAL_H

#include <limits.h>
#include <stdio.h>

#include <gsl/gsl_rng.h>

#include "sim/data/data.h"
#include "sim/ops/ops.h"
#include "sim/model/resnet.h"
#include "sim/train/train.h"

#ifndef PATH_MAX
#define PATH_MAX 4096
#endif

typedef struct {
  aal_train_opts o;           /* string members point into the buffers below */
  char rule_text[160], data_dir[PATH_MAX], out_dir[PATH_MAX], blocks[64], backend[16];
  aal_ops_handle ops;         /* the backend's op table (ops.table; never moved) */
  int ops_ready;
  aal_rule rule;
  aal_data_set ds;
  aal_resnet net;
  int net_ready;
  long steps_per_epoch, total_steps, warmup;
  double lr;
  size_t *order;              /* the current epoch's order of training images */
  long order_epoch;
  gsl_rng *rng;
  aal_tensor *x;              /* [batch, C, S, S]: the data set's geometry (ds.geom) */
  int *labels;                /* [batch] */
  FILE *metrics, *log;
  FILE *li, *li_summary, *align;
  /* data parallel (o.comm): this process's slice of every batch */
  const aal_comm *comm;
  int rank, ranks;            /* 0 and 1 for one process */
  int local_batch;            /* o.batch / ranks */
  aal_tensor *x_local;        /* [local_batch, C, S, S]; x itself when ranks == 1 */
  int *labels_local;
  aal_ops_sync sync;          /* the reference with synchronised batch norm */
  double *grads;              /* every parameter gradient, packed for the sum */
  size_t ngrads;
} aal_train_run;

unsigned long aal_mix_seed(unsigned long seed, unsigned long what, unsigned long index);
int aal_mkdir_p(const char *path, aal_error *err);
int aal_train_path(char *buf, size_t len, const char *dir, const char *name, aal_error *err);
double aal_train_lr(const aal_train_run *r, long step);
int aal_train_run_open(aal_train_run *r, const aal_train_opts *o, FILE *log, aal_error *err);
void aal_train_run_close(aal_train_run *r);
int aal_train_batch(aal_train_run *r, long step, aal_error *err);
int aal_train_pass(aal_train_run *r, long step, aal_resnet_pass *pass, aal_error *err);

/* Locks run_dir/.lock for this process (the fd into *fd, -1 on failure); a directory another
 * writer holds is an error naming it.  Once locked, removes the NAME.tmp.XXXXXX files a
 * killed writer left beside the run's files.  aal_run_unlock(fd) releases it (-1: nothing). */
int aal_run_lock(const char *run_dir, int *fd, aal_error *err);
void aal_run_unlock(int fd);

/* run_dir/config: "key = value" lines; read back names the file and line of an error.
 * aal_train_config_text writes the file's text into text[len] (AAL_CONFIG_MAX holds it). */
#define AAL_CONFIG_MAX 8192
int aal_train_config_text(const aal_train_run *r, char *text, size_t len, aal_error *err);
int aal_train_config_write(const aal_train_run *r, aal_error *err);
int aal_train_config_read(const char *run_dir, aal_train_opts *o, char *strings,
                          size_t strings_len, aal_error *err);
/* 1 for the ref backend (NULL: a config from before backends, which ran on ref). */
int aal_train_backend_is_ref(const char *backend);
/* Before a resume: on a backend other than ref, sets OpenBLAS to the run's recorded
 * o->blas_threads (nothing when 0: not recorded); AAL_EINVAL naming both counts when
 * OpenBLAS does not take it. */
int aal_train_blas_threads_apply(const char *run_dir, const aal_train_opts *o,
                                 aal_error *err);

#endif
