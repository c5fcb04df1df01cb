/* device.c — choosing a backend by name: "cpu", "cuda", or "auto" (the default of the
 * commands that search, train and evaluate): CUDA where it is compiled in and a device is
 * usable, else the CPU. One place for the choice, so every stage of a run resolves it
 * the same way and can say which it took. */
#include <stdio.h>
#include <string.h>

#include "backend.h"
#include "dist.h"

rt_backend *rt_backend_open(const char *device, char *err, size_t errlen) {
    rt_cuda_set_device_index(rt_dist_local_rank()); /* data-parallel: one GPU per process of a host */
    if (!device || !strcmp(device, "auto")) {
        rt_backend *be = rt_backend_cuda_new(NULL, 0);
        return be ? be : rt_backend_cpu_new();
    }
    if (!strcmp(device, "cpu")) return rt_backend_cpu_new();
    if (!strcmp(device, "cuda")) return rt_backend_cuda_new(err, errlen);
    if (err && errlen) snprintf(err, errlen, "unknown device '%s' (cpu, cuda or auto)", device);
    return NULL;
}

const char *rt_device_resolve(const char *device) {
    if (device && strcmp(device, "auto")) return device;
    rt_backend *be = rt_backend_cuda_new(NULL, 0);
    if (!be) return "cpu";
    be->destroy(be);
    return "cuda";
}
