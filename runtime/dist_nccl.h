/* dist_nccl.h — the GPU side of runtime/dist.c: a NCCL communicator over the ranks of the
 * MPI group (its unique id broadcast through MPI) and the deterministic all-reduce of a
 * device buffer (dist.h: chunks exchanged with ncclSend/ncclRecv, added in rank order on
 * the device by the backend's axpy, gathered with ncclAllGather: the MPI path's bits).
 * Stubs where the build has no NCCL (DARTSC_HAVE_NCCL). */
#ifndef DARTSC_RT_DIST_NCCL_H
#define DARTSC_RT_DIST_NCCL_H

#include <stdint.h>

#include "backend.h"

typedef struct dist_nccl dist_nccl;

int dist_nccl_available(void);
/* Every rank of the group calls it together; NULL on every rank where any rank could not
 * make its communicator (the reason on stderr; the caller then goes through the host). */
dist_nccl *dist_nccl_new(int rank, int size);
/* buf: n floats of the CUDA backend be; in place. A collective that does not finish within
 * timeout_s seconds aborts the communicator and stops the job with a message. */
void dist_nccl_allreduce(dist_nccl *nc, rt_backend *be, float *buf, int64_t n, double timeout_s);
void dist_nccl_free(dist_nccl *nc);

#endif
