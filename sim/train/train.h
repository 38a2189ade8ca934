/* The training loop of `aal train` and the one-step dump of `aal dump`.
 *
 * Everything random is a function of (seed, what, index) so that a run is reproducible
 * and a resumed run is bit-identical to an uninterrupted one: the network's
 * initialisation uses seed; epoch e's order a generator seeded from (seed, e); step s's
 * augmentation one seeded from (seed, s); the noise rule's stream (seed, s, conv). */
#ifndef AAL_TRAIN_H
#define AAL_TRAIN_H

#include <stdio.h>

#include "sim/core/comm.h"
#include "sim/core/error.h"

typedef struct {
  const char *rule;        /* default "bp" */
  const char *data_dir;    /* a Tiny ImageNet tree or Fashion-MNIST's IDX files
                              (aal_data_open); NULL: the built-in generated set
                              (aal_default_data) */
  const char *out_dir;     /* run directory (created) */
  long steps;              /* total steps; 0: use epochs */
  double epochs;           /* total epochs when steps == 0 (default 1) */
  int batch;               /* default 32 */
  double lr;               /* peak learning rate; <= 0: 0.05 * batch / 512 (SPEC 6) */
  long warmup;             /* warm-up steps (linear from lr/warmup); < 0: 5% of steps */
  double momentum;         /* 0.9 */
  double weight_decay;     /* 1e-4 */
  long eval_every;         /* steps between evaluations; 0: only at the end */
  long checkpoint_every;   /* steps between checkpoints; 0: only at the end */
  long li_every;           /* steps between learning-indicator measurements; 0: never */
  double width;            /* width multiplier (1: ResNet-18) */
  const char *model;       /* "resnet18" (default) .. "resnet152" (aal_resnet_config_set_model) */
  const char *stem;        /* "tiny" (default) or "imagenet" */
  const char *blocks;      /* blocks per stage, "2,2,2,2"; NULL: the model's */
  unsigned long seed;      /* 1 */
  int progress;            /* -1 auto (bar on a terminal), 0 plain lines, 1 bar */
  const char *cache_dir;   /* where the built-in data set lives; NULL: the default */
  long stop_after;         /* stop (after a checkpoint) once this many steps are done,
                              as an interruption would; 0: run to the end */
  const char *backend;     /* ops of every step: "ref" (default), "cpu32", "dnnl", "cuda"
                              (sim/ops/ops.h); recorded in the config */
  int blas_threads;        /* OpenBLAS's thread count.  The run records the count it
                              runs with (blas_threads in the config); a config read back
                              gives it (0: a config written before it was recorded).
                              For aal_train_resume_check: the --threads asked for (0:
                              none, OpenBLAS's default) */
  const struct aal_comm *comm; /* data-parallel training (sim/core/comm.h; `mpirun -np N
                              aal train`); NULL: one process.  Every process of the run
                              calls aal_train with the same options and comm; see below */
  int ranks;               /* read back from a config: the process count it was trained
                              with (1 when not recorded); not an input of aal_train */
} aal_train_opts;

void aal_train_opts_default(aal_train_opts *opts);

/* Data parallel (opts->comm with N processes): every process assembles the step's whole
 * batch as one process would (same seed, same order, same augmentation) and trains on
 * its slice of batch/N samples (batch must be a multiple of N), on the reference table
 * with synchronised batch norm (sim/ops/ops.h: aal_ops_sync); the parameter gradients
 * are summed over the processes in rank order and scaled by 1/N, so that every process
 * applies the same update, the one-process step's up to the order of the sums.  Process
 * 0 alone holds the run directory (lock, config with `ranks = N`, metrics.csv, li.csv
 * with every sample of the batch, checkpoints); evaluation splits the validation batches
 * over the processes and adds their results in batch order.  The processes first agree
 * that they run the same config (rule, model, sizes, seed, data fingerprint, ...): a
 * difference is an error naming the key and both values.  A failure that every process
 * sees (a diverged loss, a bad option, a config difference, process 0's I/O) returns on
 * every process; one that only this process sees in the middle of a step (where the
 * others wait in a collective) prints "rank K of N: message" to stderr and stops every
 * process through comm->abort.  Only the ref backend runs data-parallel. */

/* Trains from scratch into opts->out_dir (which must not hold a run already). */
int aal_train(const aal_train_opts *opts, FILE *log, aal_error *err);

/* Continues the run in run_dir from its checkpoint up to total_steps (0: the run's own
 * total), reading every other option from run_dir/config.  On a backend other than ref
 * (cpu32, dnnl, cuda), whose results depend on OpenBLAS's thread count, it first sets OpenBLAS
 * to the count the config records (blas_threads; AAL_EINVAL naming both counts when
 * OpenBLAS here cannot run that many); the ref backend is bit-identical for any count
 * and keeps the process's. */
int aal_train_resume(const char *run_dir, long total_steps, long stop_after, int progress,
                     const struct aal_comm *comm, FILE *log, aal_error *err);

/* The built-in data set: generated once (atomically) into cache_dir (NULL: $AAL_CACHE,
 * else $XDG_CACHE_HOME/aal, else $HOME/.cache/aal) and reused; its path into buf. */
int aal_default_data(const char *cache_dir, char *buf, size_t len, FILE *log, aal_error *err);

/* The members of aal_train_opts that a caller of aal_train_resume_check set itself (on
 * the command line: the options given). */
enum {
  AAL_SET_RULE = 1u << 0, AAL_SET_DATA = 1u << 1, AAL_SET_BATCH = 1u << 2,
  AAL_SET_LR = 1u << 3, AAL_SET_WARMUP = 1u << 4, AAL_SET_MOMENTUM = 1u << 5,
  AAL_SET_WEIGHT_DECAY = 1u << 6, AAL_SET_EVAL_EVERY = 1u << 7,
  AAL_SET_CHECKPOINT_EVERY = 1u << 8, AAL_SET_LI_EVERY = 1u << 9, AAL_SET_WIDTH = 1u << 10,
  AAL_SET_BLOCKS = 1u << 11, AAL_SET_SEED = 1u << 12, AAL_SET_BACKEND = 1u << 13,
  AAL_SET_EPOCHS = 1u << 14, AAL_SET_CACHE = 1u << 15, AAL_SET_OUT = 1u << 16,
  AAL_SET_THREADS = 1u << 17, AAL_SET_MODEL = 1u << 18, AAL_SET_STEM = 1u << 19
};

/* Before a resume of run_dir: each member of `asked` flagged in `set` must agree with the
 * run's config (the error, AAL_EINVAL, names the option and both values); epochs and
 * cache_dir, which a resume cannot take, and an out_dir other than run_dir are refused
 * whenever set.  A resume takes only the total steps, stop_after and progress, and the
 * thread count (blas_threads, AAL_SET_THREADS) where the backend is ref; for any other
 * backend a count other than the one the config records is refused (0 is taken: the
 * resume runs with the run's count), and a config without the key checks nothing. */
int aal_train_resume_check(const char *run_dir, const aal_train_opts *asked, unsigned set,
                           aal_error *err);

typedef struct {
  const char *rule;
  const char *data_dir;     /* NULL: built-in */
  const char *cache_dir;
  const char *checkpoint;   /* NULL: a fresh network from seed */
  const char *out_dir;
  int batch;
  long step;                /* which step's batch (and noise stream) to use */
  double width;
  const char *model, *stem, *blocks;  /* as aal_train_opts */
  unsigned long seed;
  const char *backend;      /* as aal_train_opts.backend (default "ref") */
} aal_dump_opts;

void aal_dump_opts_default(aal_dump_opts *opts);
/* Writes input.npy, labels.npy, params/<name>.npy (before the step) and
 * grads/<name>.npy for one training step. */
int aal_dump(const aal_dump_opts *opts, FILE *log, aal_error *err);

#endif
