/* linear.cu — CUDA fully connected layer (cuBLAS), embedding lookup and softmax
 * cross-entropy: the twin of kernels/cpu/linear.c. Bias gradients and the embedding
 * gradient are serial per output column (no atomics); the CE loss and correct count are
 * reduced by one block in a fixed tree and stay on the device. */
#include <math.h>

#include "kcuda_internal.cuh"

__global__ static void bias_add_k(float *y, const float *b, int N, int O) {
    KCUDA_GRID_STRIDE(i, (int64_t)N * O) y[i] += b[i % O];
}
__global__ static void bias_grad_k(float *db, const float *dy, int N, int O) {
    KCUDA_GRID_STRIDE(o, O) {
        double s = 0.0;
        for (int n = 0; n < N; n++) s += dy[(int64_t)n * O + o];
        db[o] += (float)s;
    }
}

extern "C" void kcuda_linear_forward(float *y, const float *x, const float *w, const float *b, int N, int I, int O,
                                     cudaStream_t s) {
    if (N <= 0 || O <= 0) return;
    if (I <= 0) {
        kcuda_fill(y, 0.0f, (int64_t)N * O, s);
    } else {
        /* y (N,O) = x w^T; column-major: y^T (O,N) = w (O,I) x^T (I,N) */
        const float one = 1.0f, zero = 0.0f;
        cublasCheck(cublasSetStream(kcuda_g.blas, s));
        cublasCheck(cublasSgemm(kcuda_g.blas, CUBLAS_OP_T, CUBLAS_OP_N, O, N, I, &one, w, I, x, I, &zero, y, O));
    }
    if (b) {
        bias_add_k<<<kcuda_blocks((int64_t)N * O), KCUDA_THREADS, 0, s>>>(y, b, N, O);
        launchCheck();
    }
}

extern "C" void kcuda_linear_backward(float *dx, float *dw, float *db, const float *dy, const float *x, const float *w,
                                      int N, int I, int O, cudaStream_t s) {
    if (N <= 0 || O <= 0) return;
    const float one = 1.0f;
    if ((dx || dw) && I > 0) cublasCheck(cublasSetStream(kcuda_g.blas, s));
    if (dx && I > 0) /* dx (N,I) += dy (N,O) w (O,I); column-major: dx^T (I,N) += w^T (I,O) dy^T (O,N) */
        cublasCheck(cublasSgemm(kcuda_g.blas, CUBLAS_OP_N, CUBLAS_OP_N, I, N, O, &one, w, I, dy, O, &one, dx, I));
    if (dw && I > 0) /* dw (O,I) += dy^T x; column-major: dw^T (I,O) += x^T (I,N) dy (N,O) */
        cublasCheck(cublasSgemm(kcuda_g.blas, CUBLAS_OP_N, CUBLAS_OP_T, I, O, N, &one, x, I, dy, O, &one, dw, I));
    if (db) {
        bias_grad_k<<<kcuda_blocks(O), KCUDA_THREADS, 0, s>>>(db, dy, N, O);
        launchCheck();
    }
}

__global__ static void embedding_fwd_k(float *y, const int32_t *ids, const float *table, int N, int V, int D) {
    KCUDA_GRID_STRIDE(i, (int64_t)N * D) {
        const int32_t id = ids[i / D];
        y[i] = (id < 0 || id >= V) ? 0.0f : table[(int64_t)id * D + i % D]; /* out of range: zeros */
    }
}
/* One thread per column j walks the rows in order: repeated ids accumulate into one
 * table row in the CPU's order, and no two threads touch one element. */
__global__ static void embedding_bwd_k(float *dtable, const float *dy, const int32_t *ids, int N, int V, int D) {
    KCUDA_GRID_STRIDE(j, D) {
        for (int n = 0; n < N; n++) {
            const int32_t id = ids[n];
            if (id < 0 || id >= V) continue;
            dtable[(int64_t)id * D + j] += dy[(int64_t)n * D + j];
        }
    }
}

extern "C" void kcuda_embedding_forward(float *y, const int32_t *ids, const float *table, int N, int V, int D,
                                        cudaStream_t s) {
    if (N <= 0 || D <= 0) return;
    embedding_fwd_k<<<kcuda_blocks((int64_t)N * D), KCUDA_THREADS, 0, s>>>(y, ids, table, N, V, D);
    launchCheck();
}
extern "C" void kcuda_embedding_backward(float *dtable, const float *dy, const int32_t *ids, int N, int V, int D,
                                         cudaStream_t s) {
    if (!dtable || N <= 0 || D <= 0) return;
    embedding_bwd_k<<<kcuda_blocks(D), KCUDA_THREADS, 0, s>>>(dtable, dy, ids, N, V, D);
    launchCheck();
}

/* One block: thread t takes rows t, t+blockDim, ...; each row as kcpu_softmax_ce_forward;
 * loss and correct count combined by a fixed tree. */
__global__ static void softmax_ce_fwd_k(float *loss, float *probs, const float *logits, const int32_t *labels, int N,
                                        int K, float *correct) {
    __shared__ double sh[KCUDA_THREADS];
    double ls = 0.0, cc = 0.0;
    for (int n = threadIdx.x; n < N; n += blockDim.x) {
        const float *xr = logits + (int64_t)n * K;
        float *pr = probs + (int64_t)n * K;
        float m = -INFINITY;
        int am = 0;
        for (int k = 0; k < K; k++)
            if (xr[k] > m) {
                m = xr[k];
                am = k;
            }
        double s = 0.0;
        for (int k = 0; k < K; k++) {
            pr[k] = expf(xr[k] - m);
            s += pr[k];
        }
        const float inv = (float)(1.0 / s);
        for (int k = 0; k < K; k++) pr[k] *= inv;
        const int32_t lab = labels[n];
        if (lab >= 0 && lab < K) {
            ls += -((double)xr[lab] - (double)m - log(s));
            if (am == lab) cc += 1.0;
        }
    }
    ls = kcuda_block_sum(ls, sh);
    cc = kcuda_block_sum(cc, sh);
    if (threadIdx.x == 0) {
        loss[0] = N > 0 ? (float)(ls / N) : 0.0f;
        if (correct) correct[0] = (float)cc;
    }
}

__global__ static void softmax_ce_bwd_k(float *dlogits, const float *dloss, const float *probs, const int32_t *labels,
                                        int N, int K) {
    const float s = dloss[0] / (float)N;
    KCUDA_GRID_STRIDE(i, (int64_t)N * K) {
        const int k = (int)(i % K);
        dlogits[i] += s * (probs[i] - (k == labels[i / K] ? 1.0f : 0.0f));
    }
}

extern "C" void kcuda_softmax_ce_forward(float *loss, float *probs, const float *logits, const int32_t *labels, int N,
                                         int K, float *correct, cudaStream_t s) {
    softmax_ce_fwd_k<<<1, KCUDA_THREADS, 0, s>>>(loss, probs, logits, labels, N < 0 ? 0 : N, K, correct);
    launchCheck();
}
extern "C" void kcuda_softmax_ce_backward(float *dlogits, const float *dloss, const float *probs, const int32_t *labels,
                                          int N, int K, cudaStream_t s) {
    if (!dlogits || N <= 0 || K <= 0) return;
    softmax_ce_bwd_k<<<kcuda_blocks((int64_t)N * K), KCUDA_THREADS, 0, s>>>(dlogits, dloss, probs, labels, N, K);
    launchCheck();
}
