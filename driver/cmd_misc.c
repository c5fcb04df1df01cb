/* cmd_misc.c — `dartsc version`. */
#include <stdio.h>

#include "driver.h"
#include "runtime/backend.h"
#include "runtime/dist.h"

int dartsc_cmd_version(int argc, char **argv) {
    (void)argc;
    (void)argv;
    printf("dartsc %s\n", DARTSC_VERSION);
#ifdef DARTSC_HAVE_CUDA
    printf("cuda backend: compiled in\n");
#else
    printf("cuda backend: not compiled in\n");
#endif
    printf("cpu threads: %d\n", rt_cpu_num_threads());
    printf("data-parallel: MPI %s, NCCL %s (docs/SCALING.md)\n", rt_dist_have_mpi() ? "compiled in" : "not compiled in",
           rt_dist_have_nccl() ? "compiled in" : "not compiled in");
    return 0;
}
