/* MPI behind aal_comm: the fixed-order sum, gather, bcast and abort. */
#include "sim/dist/dist.h"

#include <limits.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <config.h>

#ifdef AAL_HAVE_MPI
#include <mpi.h>
#endif

static const char *const launcher_vars[] = {"OMPI_COMM_WORLD_SIZE", "PMIX_RANK", "PMI_SIZE"};

int aal_dist_env_size(void)
{
  const char *v = getenv("OMPI_COMM_WORLD_SIZE");
  if (v == NULL)
    v = getenv("PMI_SIZE");
  const long n = v != NULL ? strtol(v, NULL, 10) : 1;
  return n >= 1 && n <= INT_MAX ? (int)n : 1;
}

static int launched(void)
{
  for (size_t i = 0; i < sizeof launcher_vars / sizeof launcher_vars[0]; i++)
    if (getenv(launcher_vars[i]) != NULL)
      return 1;
  return 0;
}

#ifdef AAL_HAVE_MPI

int aal_dist_available(void) { return 1; }

/* MPI counts are int: vectors move in segments of at most this many doubles. */
#define SEGMENT ((size_t)1 << 26)

static int mpi_fail(aal_error *err, int mrc, const char *what)
{
  char msg[MPI_MAX_ERROR_STRING];
  int len = 0;
  if (MPI_Error_string(mrc, msg, &len) != MPI_SUCCESS)
    snprintf(msg, sizeof msg, "error %d", mrc);
  return aal_fail(err, AAL_EIO, "MPI: %s failed: %s", what, msg);
}

/* Slice k of n elements over p processes: [n k / p, n (k+1) / p). */
static size_t slice_lo(size_t n, int p, int k)
{
  return n * (size_t)k / (size_t)p; /* n <= SEGMENT: no overflow */
}

static int sum_segment(const aal_comm *c, double *v, size_t n, double *tmp, int *counts,
                       int *displs, int *rcounts, int *rdispls, aal_error *err)
{
  const int p = c->size, me = c->rank;
  const size_t lo = slice_lo(n, p, me), len = slice_lo(n, p, me + 1) - lo;
  for (int k = 0; k < p; k++) {
    counts[k] = (int)(slice_lo(n, p, k + 1) - slice_lo(n, p, k));
    displs[k] = (int)slice_lo(n, p, k);
    rcounts[k] = (int)len;
    rdispls[k] = (int)((size_t)k * len);
  }
  int mrc = MPI_Alltoallv(v, counts, displs, MPI_DOUBLE, tmp, rcounts, rdispls, MPI_DOUBLE,
                          MPI_COMM_WORLD);
  if (mrc != MPI_SUCCESS)
    return mpi_fail(err, mrc, "the sum's Alltoallv");
  for (size_t i = 0; i < len; i++) {
    double s = tmp[i];
    for (int k = 1; k < p; k++)
      s += tmp[(size_t)k * len + i];
    v[lo + i] = s;
  }
  mrc = MPI_Allgatherv(MPI_IN_PLACE, 0, MPI_DATATYPE_NULL, v, counts, displs, MPI_DOUBLE,
                       MPI_COMM_WORLD);
  return mrc == MPI_SUCCESS ? AAL_OK : mpi_fail(err, mrc, "the sum's Allgatherv");
}

static void count(const aal_comm *c, double t0, double bytes)
{
  c->stats->seconds += MPI_Wtime() - t0;
  c->stats->bytes_sent += bytes;
  c->stats->calls++;
}

/* A short vector (batch norm's per-channel sums, the loss): recursive doubling, log2 N
 * rounds of n doubles each instead of the N messages of an Alltoallv.  With P the largest
 * power of two <= N, rank P + j first hands its vector to rank j (which adds it after its
 * own); the P ranks then pair at distances 1, 2, 4, ..., each pair forming the sum of
 * the lower block and the upper block (a + b: both partners get the same bits, IEEE
 * addition being commutative); rank j finally hands the result back to rank P + j.  The
 * association is a fixed binary tree over the ranks, chosen by this code alone. */
static int sum_short(const aal_comm *c, double *v, size_t n, aal_error *err)
{
  const int p = c->size, me = c->rank;
  int pow2 = 1;
  while (pow2 * 2 <= p)
    pow2 *= 2;
  double *w = malloc((n ? n : 1) * sizeof *w);
  if (w == NULL) { /* the others are in this sum already */
    aal_fail(err, AAL_ENOMEM, "MPI sum: %zu doubles", n);
    c->abort(c, AAL_ENOMEM);
    return AAL_ENOMEM;
  }
  const int tag = 7001;
  int mrc = MPI_SUCCESS;
  if (me >= pow2) {
    mrc = MPI_Send(v, (int)n, MPI_DOUBLE, me - pow2, tag, MPI_COMM_WORLD);
    if (mrc == MPI_SUCCESS)
      mrc = MPI_Recv(v, (int)n, MPI_DOUBLE, me - pow2, tag, MPI_COMM_WORLD, MPI_STATUS_IGNORE);
    free(w);
    return mrc == MPI_SUCCESS ? AAL_OK : mpi_fail(err, mrc, "the short sum's Send/Recv");
  }
  if (me + pow2 < p) {
    mrc = MPI_Recv(w, (int)n, MPI_DOUBLE, me + pow2, tag, MPI_COMM_WORLD, MPI_STATUS_IGNORE);
    for (size_t i = 0; mrc == MPI_SUCCESS && i < n; i++)
      v[i] += w[i];
  }
  for (int mask = 1; mrc == MPI_SUCCESS && mask < pow2; mask *= 2) {
    const int partner = me ^ mask;
    mrc = MPI_Sendrecv(v, (int)n, MPI_DOUBLE, partner, tag, w, (int)n, MPI_DOUBLE, partner, tag,
                       MPI_COMM_WORLD, MPI_STATUS_IGNORE);
    for (size_t i = 0; mrc == MPI_SUCCESS && i < n; i++)
      v[i] = me < partner ? v[i] + w[i] : w[i] + v[i];
  }
  if (mrc == MPI_SUCCESS && me + pow2 < p)
    mrc = MPI_Send(v, (int)n, MPI_DOUBLE, me + pow2, tag, MPI_COMM_WORLD);
  free(w);
  return mrc == MPI_SUCCESS ? AAL_OK : mpi_fail(err, mrc, "the short sum's Sendrecv");
}

/* Up to this many doubles a sum goes by sum_short (latency-bound: each of its rounds
 * moves the whole vector). */
#define SHORT_SUM ((size_t)8192)

static int mpi_sum(const aal_comm *c, double *v, size_t n, aal_error *err)
{
  const double t0 = MPI_Wtime();
  if (n <= SHORT_SUM) {
    int rounds = 0;
    for (int k = 1; k * 2 <= c->size; k *= 2)
      rounds++;
    const int rc = sum_short(c, v, n, err);
    /* the power-of-two ranks' rounds, or one hand-over for a rank beyond them; the
     * fold-in and hand-back where the rank has a partner beyond */
    const int extra = c->rank + (1 << rounds) < c->size;
    count(c, t0, 8.0 * (double)n * (c->rank >= (1 << rounds) ? 1 : rounds + extra));
    return rc;
  }
  const size_t p = (size_t)c->size, seg = n < SEGMENT ? n : SEGMENT;
  double *tmp = malloc((seg / p + 1) * p * sizeof *tmp);
  int *ints = malloc(4 * p * sizeof *ints);
  int rc = (tmp != NULL && ints != NULL) ? AAL_OK
                                         : aal_fail(err, AAL_ENOMEM, "MPI sum: %zu doubles", n);
  if (rc != AAL_OK) /* the others are in this sum already */
    c->abort(c, rc);
  for (size_t at = 0; rc == AAL_OK && at < n; at += SEGMENT) {
    const size_t m = n - at < SEGMENT ? n - at : SEGMENT;
    rc = sum_segment(c, v + at, m, tmp, ints, ints + p, ints + 2 * p, ints + 3 * p, err);
  }
  free(tmp);
  free(ints);
  /* Alltoallv sends all but this process's slice, Allgatherv its slice to p - 1 others */
  count(c, t0, 8.0 * (double)n * 2.0 * (double)(p - 1) / (double)p);
  return rc;
}

static int mpi_gather(const aal_comm *c, const void *mine, size_t bytes, void *all,
                      aal_error *err)
{
  if (bytes > INT_MAX)
    return aal_fail(err, AAL_EINVAL, "MPI gather: %zu bytes is more than one call moves",
                    bytes);
  const double t0 = MPI_Wtime();
  const int mrc = MPI_Gather(mine, (int)bytes, MPI_BYTE, all, (int)bytes, MPI_BYTE, 0,
                             MPI_COMM_WORLD);
  count(c, t0, c->rank == 0 ? 0.0 : (double)bytes);
  return mrc == MPI_SUCCESS ? AAL_OK : mpi_fail(err, mrc, "Gather");
}

static int mpi_bcast(const aal_comm *c, void *buf, size_t bytes, aal_error *err)
{
  if (bytes > INT_MAX)
    return aal_fail(err, AAL_EINVAL, "MPI bcast: %zu bytes is more than one call moves",
                    bytes);
  const double t0 = MPI_Wtime();
  const int mrc = MPI_Bcast(buf, (int)bytes, MPI_BYTE, 0, MPI_COMM_WORLD);
  count(c, t0, c->rank == 0 ? (double)bytes * (c->size - 1) : 0.0);
  return mrc == MPI_SUCCESS ? AAL_OK : mpi_fail(err, mrc, "Bcast");
}

static void mpi_abort(const aal_comm *c, int code)
{
  (void)c;
  MPI_Abort(MPI_COMM_WORLD, code != 0 ? code : 1);
}

/* The comm and its counters in one allocation (comm first: freeing it frees both). */
typedef struct {
  aal_comm comm;
  aal_comm_stats stats;
} mpi_comm;

int aal_dist_open(aal_comm **comm, aal_error *err)
{
  *comm = NULL;
  if (!launched())
    return AAL_OK;
  int inited = 0;
  MPI_Initialized(&inited);
  int mrc = inited ? MPI_SUCCESS : MPI_Init(NULL, NULL);
  if (mrc != MPI_SUCCESS)
    return aal_fail(err, AAL_EIO, "MPI_Init failed (error %d)", mrc);
  mpi_comm *m = calloc(1, sizeof *m);
  aal_comm *c = m != NULL ? &m->comm : NULL;
  if (c == NULL) {
    MPI_Finalize();
    return aal_fail(err, AAL_ENOMEM, "cannot allocate the MPI comm");
  }
  c->stats = &m->stats;
  MPI_Comm_rank(MPI_COMM_WORLD, &c->rank);
  MPI_Comm_size(MPI_COMM_WORLD, &c->size);
  c->sum = mpi_sum;
  c->gather = mpi_gather;
  c->bcast = mpi_bcast;
  c->abort = mpi_abort;
  *comm = c;
  return AAL_OK;
}

void aal_dist_close(aal_comm *comm)
{
  if (comm == NULL)
    return;
  free(comm);
  MPI_Finalize();
}

#else /* no MPI */

int aal_dist_available(void) { return 0; }

int aal_dist_open(aal_comm **comm, aal_error *err)
{
  *comm = NULL;
  if (launched() && aal_dist_env_size() > 1)
    return aal_fail(err, AAL_EINVAL,
                    "started by mpirun with %d processes, but this aal was built without MPI "
                    "(configure --with-mpi, with Debian's libopenmpi-dev): each process would "
                    "train alone", aal_dist_env_size());
  return AAL_OK;
}

void aal_dist_close(aal_comm *comm) { (void)comm; }

#endif
