/* The processes of `mpirun -np N aal train`: an aal_comm (sim/core/comm.h) over MPI.
 *
 * aal_dist_open joins the MPI job when this process was started by an MPI launcher (the
 * environment says so: Open MPI's OMPI_COMM_WORLD_SIZE, PMIx's PMIX_RANK, or PMI_SIZE)
 * and the build has MPI (configure --with-mpi); otherwise *comm is NULL, the one-process
 * run, and MPI is never initialised.  Started by a launcher with more than one process in
 * a build without MPI, it fails (AAL_EINVAL, saying so) rather than let N processes each
 * train alone.
 *
 * The sum is fixed-order: a reduce-scatter written as MPI_Alltoallv (each process
 * receives its slice of every process's vector), the slice added in rank order by its
 * owner, then MPI_Allgatherv.  Only data moves inside MPI, so the result does not depend
 * on which algorithm the library picks; each element crosses the network 2 (N-1)/N times,
 * as in a ring all-reduce.  A short vector (n <= 8192 doubles: batch norm's sums, the
 * loss) goes by recursive doubling instead (log2 N rounds rather than N messages), its
 * association a fixed binary tree over the ranks (dist.c, sum_short). */
#ifndef AAL_DIST_H
#define AAL_DIST_H

#include "sim/core/comm.h"

/* 1 when libaal was built with MPI. */
int aal_dist_available(void);
/* The process count the launcher announced in the environment (1 when none). */
int aal_dist_env_size(void);
/* *comm: the job's comm, or NULL (one process).  Close it with aal_dist_close, which
 * finalises MPI. */
int aal_dist_open(aal_comm **comm, aal_error *err);
void aal_dist_close(aal_comm *comm);

#endif
