/* backend_cuda.h — what the CUDA backend adds to runtime/backend.h.
 *
 * rt_backend_cuda_new() (declared in backend.h) returns NULL with a message when CUDA is
 * not compiled in, when cudaGetDeviceCount fails or finds no device, or when a CUDA
 * backend already exists in this process (the kernels' library state is per process).
 *
 * Library code never exits: a failing CUDA/cuDNN/cuBLAS call or launch is printed with
 * file:line and the first one is kept; the runtime or a test asks for it here after a
 * step (device errors are asynchronous: call be->synchronize first to be sure).
 *
 * Usage:
 *   char err[256];
 *   rt_backend *be = rt_backend_cuda_new(err, sizeof err);
 *   if (!be) { fprintf(stderr, "%s\n", err); return; }
 *   ... rt_forward(plan, 1); be->synchronize(be);
 *   if (rt_cuda_last_error()) fprintf(stderr, "%s\n", rt_cuda_last_error());
 */
#ifndef DARTSC_RT_BACKEND_CUDA_H
#define DARTSC_RT_BACKEND_CUDA_H

#ifdef __cplusplus
extern "C" {
#endif

/* First CUDA/cuDNN/cuBLAS error recorded since start ("file:line: call: message"), or NULL. */
const char *rt_cuda_last_error(void);

#ifdef __cplusplus
}
#endif

#endif
