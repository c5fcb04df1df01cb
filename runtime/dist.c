/* dist.c — the process group of a data-parallel run (see dist.h): MPI when the build has
 * it and a launcher started the process, else a group of one. The collectives are point
 * to point messages that this file orders itself (deterministic sums) and waits for with
 * a deadline (a dead or hung rank is named, never waited for forever). */
#include "dist.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#ifdef DARTSC_HAVE_MPI
#include <mpi.h>
#endif

#include "dist_nccl.h"

static struct {
    int rank, size, local_rank, local; /* local: collectives on this process alone */
    int mpi;                           /* MPI_Init was called */
    double timeout_s, comm_s;
    float *tmp;                        /* all-reduce slots (size * chunk floats) */
    size_t tmp_n;
    double *gath;                      /* allgather result */
    size_t gath_n;
    float *stage;                      /* host copy of a device buffer */
    size_t stage_n;
    kbn_sync bn;
#ifdef DARTSC_HAVE_MPI
    MPI_Request *rq;                   /* 2 * size requests and their peers */
    int *peer;
#endif
    dist_nccl *nccl;
    int nccl_tried;
} G = {.size = 1, .timeout_s = 300};

static double now_s(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

static int env_int(const char *name, int dflt) {
    const char *s = getenv(name);
    return s && *s ? atoi(s) : dflt;
}

int rt_dist_rank(void) { return G.local ? 0 : G.rank; }
int rt_dist_size(void) { return G.local ? 1 : G.size; }
int rt_dist_local_rank(void) { return G.local_rank; }
void rt_dist_set_local(int on) { G.local = on; }
double rt_dist_comm_seconds(void) { return G.comm_s; }

int rt_dist_have_mpi(void) {
#ifdef DARTSC_HAVE_MPI
    return 1;
#else
    return 0;
#endif
}

int rt_dist_have_nccl(void) { return dist_nccl_available(); }

/* A launcher's environment: Open MPI's mpirun, PMIx (Slurm's srun --mpi=pmix, PRRTE),
 * PMI-1/2 (MPICH, srun --mpi=pmi2). Without one the process runs alone and MPI is never
 * started, so a plain `dartsc search` needs no MPI runtime. */
static int launched(void) {
    const char *v[] = {"OMPI_COMM_WORLD_SIZE", "PMIX_RANK", "PMI_SIZE", "PMI_RANK"};
    for (size_t i = 0; i < sizeof v / sizeof *v; i++)
        if (getenv(v[i])) return 1;
    return 0;
}

int rt_dist_init(int *argc, char ***argv, char *err, size_t errlen) {
    const char *t = getenv("DARTSC_DIST_TIMEOUT");
    if (t && *t) {
        char *end;
        double v = strtod(t, &end);
        if (*end || !(v > 0)) {
            snprintf(err, errlen, "DARTSC_DIST_TIMEOUT: '%s' is not a positive number of seconds", t);
            return -1;
        }
        G.timeout_s = v;
    }
    if (!launched()) return 0;
#ifdef DARTSC_HAVE_MPI
    if (MPI_Init(argc, argv) != MPI_SUCCESS) {
        snprintf(err, errlen, "MPI_Init failed");
        return -1;
    }
    G.mpi = 1;
    MPI_Comm_rank(MPI_COMM_WORLD, &G.rank);
    MPI_Comm_size(MPI_COMM_WORLD, &G.size);
    MPI_Comm node;
    if (MPI_Comm_split_type(MPI_COMM_WORLD, MPI_COMM_TYPE_SHARED, G.rank, MPI_INFO_NULL, &node) == MPI_SUCCESS) {
        MPI_Comm_rank(node, &G.local_rank);
        MPI_Comm_free(&node);
    }
    G.rq = calloc((size_t)2 * G.size, sizeof *G.rq);
    G.peer = calloc((size_t)2 * G.size, sizeof *G.peer);
    if (!G.rq || !G.peer) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    return 0;
#else
    (void)argc;
    (void)argv;
    if (env_int("OMPI_COMM_WORLD_SIZE", 1) > 1 || env_int("PMI_SIZE", 1) > 1) {
        snprintf(err, errlen, "started by an MPI launcher with several processes, but this dartsc was built without MPI "
                              "(install libopenmpi-dev and rebuild; docs/SCALING.md)");
        return -1;
    }
    return 0;
#endif
}

void rt_dist_finalize(void) {
    dist_nccl_free(G.nccl);
    G.nccl = NULL;
    free(G.tmp);
    free(G.gath);
    free(G.stage);
#ifdef DARTSC_HAVE_MPI
    if (G.mpi) MPI_Finalize();
    free(G.rq);
    free(G.peer);
#endif
    G.mpi = 0;
}

void rt_dist_abort(int code) {
    fflush(stdout);
    fflush(stderr);
#ifdef DARTSC_HAVE_MPI
    if (G.mpi) MPI_Abort(MPI_COMM_WORLD, code);
#endif
    exit(code);
}

static void *grow(void *p, size_t *have, size_t want, size_t elem) {
    if (*have >= want) return p;
    void *q = realloc(p, want * elem);
    if (!q) {
        fprintf(stderr, "dartsc: rank %d: out of memory for a collective (%zu bytes)\n", G.rank, want * elem);
        rt_dist_abort(1);
    }
    *have = want;
    return q;
}

#ifdef DARTSC_HAVE_MPI
/* Waits for the n requests, polling; past the deadline names the ranks (peer[i]) whose
 * requests have not completed and stops the job. */
static void wait_all(MPI_Request *rq, const int *peer, int n, const char *what) {
    double t0 = now_s(), deadline = t0 + G.timeout_s;
    long spins = 0;
    for (;;) {
        int done = 0;
        MPI_Testall(n, rq, &done, MPI_STATUSES_IGNORE);
        if (done) break;
        if (++spins > 2000) {
            struct timespec ts = {0, spins > 200000 ? 1000000 : 50000}; /* 50 us, then 1 ms */
            nanosleep(&ts, NULL);
        }
        if (spins % 64 == 0 && now_s() > deadline) {
            char who[256] = "";
            size_t o = 0;
            int last = -1; /* a peer's requests are adjacent */
            for (int i = 0; i < n; i++) {
                int flag = 1;
                if (rq[i] != MPI_REQUEST_NULL) MPI_Test(&rq[i], &flag, MPI_STATUS_IGNORE);
                if (!flag && peer[i] != last && o + 16 < sizeof who) {
                    o += (size_t)snprintf(who + o, sizeof who - o, "%s%d", o ? ", " : "", peer[i]);
                    last = peer[i];
                }
            }
            fprintf(stderr,
                    "dartsc: rank %d of %d: rank %s did not take part in the %s within %g s (it died or hangs; "
                    "DARTSC_DIST_TIMEOUT sets the limit); stopping the job\n",
                    G.rank, G.size, who[0] ? who : "?", what, G.timeout_s);
            rt_dist_abort(1);
        }
    }
    G.comm_s += now_s() - t0;
}
#endif

void rt_dist_chunk(int64_t n, int r, int size, int64_t *lo, int64_t *hi) {
    int64_t c = (n + size - 1) / size;
    *lo = c * r < n ? c * r : n;
    *hi = c * (r + 1) < n ? c * (r + 1) : n;
}

void rt_dist_allreduce_f32(float *buf, int64_t n) {
    if (rt_dist_size() == 1 || n <= 0) return;
#ifdef DARTSC_HAVE_MPI
    const int P = G.size, me = G.rank;
    int64_t mlo, mhi;
    rt_dist_chunk(n, me, P, &mlo, &mhi);
    const int64_t mc = mhi - mlo;
    G.tmp = grow(G.tmp, &G.tmp_n, (size_t)P * (size_t)(mc > 0 ? mc : 1), sizeof(float));
    MPI_Request *rq = G.rq;
    int *peer = G.peer, k = 0;
    /* 1. chunk q of every rank to rank q */
    for (int q = 0; q < P; q++) {
        if (q == me) continue;
        int64_t lo, hi;
        rt_dist_chunk(n, q, P, &lo, &hi);
        peer[k] = q;
        MPI_Isend(buf + lo, (int)(hi - lo), MPI_FLOAT, q, 71, MPI_COMM_WORLD, &rq[k++]);
        peer[k] = q;
        MPI_Irecv(G.tmp + (size_t)q * mc, (int)mc, MPI_FLOAT, q, 71, MPI_COMM_WORLD, &rq[k++]);
    }
    wait_all(rq, peer, k, "all-reduce");
    /* 2. this rank's chunk: the ranks' copies added in rank order */
    memcpy(G.tmp + (size_t)me * mc, buf + mlo, (size_t)mc * sizeof(float));
    for (int64_t i = 0; i < mc; i++) {
        float s = G.tmp[i];
        for (int q = 1; q < P; q++) s += G.tmp[(size_t)q * mc + i];
        buf[mlo + i] = s;
    }
    /* 3. every chunk's sum to every rank */
    k = 0;
    for (int q = 0; q < P; q++) {
        if (q == me) continue;
        int64_t lo, hi;
        rt_dist_chunk(n, q, P, &lo, &hi);
        peer[k] = q;
        MPI_Isend(buf + mlo, (int)mc, MPI_FLOAT, q, 72, MPI_COMM_WORLD, &rq[k++]);
        peer[k] = q;
        MPI_Irecv(buf + lo, (int)(hi - lo), MPI_FLOAT, q, 72, MPI_COMM_WORLD, &rq[k++]);
    }
    wait_all(rq, peer, k, "all-reduce");
#endif
}

const double *rt_dist_allgather_f64(const double *in, int n) {
    const int P = rt_dist_size();
    G.gath = grow(G.gath, &G.gath_n, (size_t)P * (size_t)(n > 0 ? n : 1), sizeof(double));
    memcpy(G.gath + (size_t)rt_dist_rank() * n, in, (size_t)n * sizeof(double));
#ifdef DARTSC_HAVE_MPI
    if (P > 1) {
        const int me = G.rank;
        MPI_Request *rq = G.rq;
        int *peer = G.peer, k = 0;
        for (int q = 0; q < P; q++) {
            if (q == me) continue;
            peer[k] = q;
            MPI_Isend(in, n, MPI_DOUBLE, q, 73, MPI_COMM_WORLD, &rq[k++]);
            peer[k] = q;
            MPI_Irecv(G.gath + (size_t)q * n, n, MPI_DOUBLE, q, 73, MPI_COMM_WORLD, &rq[k++]);
        }
        wait_all(rq, peer, k, "all-gather");
    }
#endif
    return G.gath;
}

void rt_dist_allreduce_f64(double *buf, int64_t n) {
    const int P = rt_dist_size();
    if (P == 1 || n <= 0) return;
    for (int64_t o = 0; o < n; o += 1 << 20) { /* in slices: the gather holds P copies */
        int m = (int)(n - o < (1 << 20) ? n - o : (1 << 20));
        const double *all = rt_dist_allgather_f64(buf + o, m);
        for (int i = 0; i < m; i++) {
            double s = all[i];
            for (int q = 1; q < P; q++) s += all[(size_t)q * m + i];
            buf[o + i] = s;
        }
    }
}

int rt_dist_sum_int(int v) {
    double d = v;
    rt_dist_allreduce_f64(&d, 1);
    return (int)d;
}

void rt_dist_barrier(void) { (void)rt_dist_sum_int(0); }

void rt_dist_barrier_within(double seconds) {
    double keep = G.timeout_s;
    G.timeout_s = seconds;
    rt_dist_barrier();
    G.timeout_s = keep;
}

void rt_dist_bcast(void *buf, size_t bytes, int root) {
    if (rt_dist_size() == 1 || bytes == 0) return;
#ifdef DARTSC_HAVE_MPI
    const int P = G.size, me = G.rank;
    const size_t slice = (size_t)1 << 30;
    for (size_t o = 0; o < bytes; o += slice) {
        int m = (int)(bytes - o < slice ? bytes - o : slice);
        MPI_Request *rq = G.rq;
        int *peer = G.peer, k = 0;
        if (me == root) {
            for (int q = 0; q < P; q++) {
                if (q == root) continue;
                peer[k] = q;
                MPI_Isend((char *)buf + o, m, MPI_BYTE, q, 74, MPI_COMM_WORLD, &rq[k++]);
            }
        } else {
            peer[k] = root;
            MPI_Irecv((char *)buf + o, m, MPI_BYTE, root, 74, MPI_COMM_WORLD, &rq[k++]);
        }
        wait_all(rq, peer, k, "broadcast");
    }
#else
    (void)buf;
    (void)root;
#endif
}

/* ---- backend memory --------------------------------------------------------------------- */

static int is_cuda(rt_backend *be) { return be && be->name && !strcmp(be->name, "cuda"); }

static dist_nccl *nccl_for(rt_backend *be) {
    if (!is_cuda(be) || rt_dist_size() == 1 || !dist_nccl_available()) return NULL;
    if (!G.nccl_tried) {
        G.nccl_tried = 1;
        if (env_int("DARTSC_DIST_NCCL", 1)) G.nccl = dist_nccl_new(G.rank, G.size);
    }
    return G.nccl;
}

void rt_dist_allreduce_be(rt_backend *be, float *buf, int64_t n) {
    if (rt_dist_size() == 1 || n <= 0) return;
    dist_nccl *nc = nccl_for(be);
    if (nc) {
        double t0 = now_s();
        dist_nccl_allreduce(nc, be, buf, n, G.timeout_s);
        G.comm_s += now_s() - t0;
        return;
    }
    if (!is_cuda(be)) {
        be->synchronize(be);
        rt_dist_allreduce_f32(buf, n);
        return;
    }
    G.stage = grow(G.stage, &G.stage_n, (size_t)n, sizeof(float));
    be->download(be, G.stage, buf, (size_t)n * sizeof(float));
    rt_dist_allreduce_f32(G.stage, n);
    be->upload(be, buf, G.stage, (size_t)n * sizeof(float));
}

void rt_dist_bcast_be(rt_backend *be, float *buf, int64_t n, int root) {
    if (rt_dist_size() == 1 || n <= 0) return;
    if (!is_cuda(be)) {
        be->synchronize(be);
        rt_dist_bcast(buf, (size_t)n * sizeof(float), root);
        return;
    }
    G.stage = grow(G.stage, &G.stage_n, (size_t)n, sizeof(float));
    be->download(be, G.stage, buf, (size_t)n * sizeof(float));
    rt_dist_bcast(G.stage, (size_t)n * sizeof(float), root);
    be->upload(be, buf, G.stage, (size_t)n * sizeof(float));
}

/* ---- sync_bn ------------------------------------------------------------------------------ */

static const double *bn_gather(void *ctx, const double *in, int n) {
    (void)ctx;
    return rt_dist_allgather_f64(in, n);
}

const kbn_sync *rt_dist_bn_sync(void) {
    if (rt_dist_size() == 1) return NULL;
    G.bn.size = G.size;
    G.bn.gather = bn_gather;
    G.bn.ctx = NULL;
    return &G.bn;
}
