/* Helpers of the GPU tests: skip when no GPU, checked CUDA calls, random
 * data, device buffers. */
#ifndef M40_GPU_TEST_H
#define M40_GPU_TEST_H

#include <cuda_runtime_api.h>
#include <math.h>
#include <stdint.h>
#include <stdlib.h>

#include "check.h"
#include "m40llm.h"

/* exit 77 (skipped) when there is no usable GPU: none, or driver too old */
static inline void gpu_test_require_device(void) {
    int n = 0;
    cudaError_t e = cudaGetDeviceCount(&n);
    if (e != cudaSuccess || n == 0)
        SKIP("no usable CUDA device (%s)", e != cudaSuccess ? cudaGetErrorString(e) : "0 devices");
}

#define GT_CUDA(call)                                                                              \
    do {                                                                                           \
        cudaError_t e_ = (call);                                                                   \
        if (e_ != cudaSuccess) {                                                                   \
            fprintf(stderr, "%s:%d: %s: %s\n", __FILE__, __LINE__, #call, cudaGetErrorString(e_)); \
            exit(1);                                                                               \
        }                                                                                          \
    } while (0)

#define GT_OK(call)                                                                                \
    do {                                                                                           \
        int rc_ = (call);                                                                          \
        if (rc_ != 0) {                                                                            \
            fprintf(stderr, "%s:%d: %s: %s\n", __FILE__, __LINE__, #call, m40llm_last_error());    \
            exit(1);                                                                               \
        }                                                                                          \
    } while (0)

static uint64_t gt_rng = 0x9E3779B97F4A7C15ull;
static inline uint32_t gt_u32(void) {
    gt_rng ^= gt_rng << 13;
    gt_rng ^= gt_rng >> 7;
    gt_rng ^= gt_rng << 17;
    return (uint32_t)(gt_rng >> 11);
}
/* uniform in [-1, 1) */
static inline float gt_uniform(void) {
    return (float)(gt_u32() & 0xffffff) / 8388608.0f - 1.0f;
}
static inline void gt_fill(float *x, size_t n, float scale) {
    for (size_t i = 0; i < n; i++) x[i] = gt_uniform() * scale;
}

static inline void *gt_dev(size_t bytes) {
    void *p = NULL;
    GT_CUDA(cudaMalloc(&p, bytes ? bytes : 16));
    return p;
}
static inline void *gt_up(const void *h, size_t bytes) {
    void *p = gt_dev(bytes);
    GT_CUDA(cudaMemcpy(p, h, bytes, cudaMemcpyHostToDevice));
    return p;
}
static inline void gt_down(void *h, const void *d, size_t bytes) {
    GT_CUDA(cudaDeviceSynchronize());
    GT_CUDA(cudaMemcpy(h, d, bytes, cudaMemcpyDeviceToHost));
}

/* max |a-b| / (|b| + floor) over n */
static inline double gt_max_rel(const float *a, const double *b, size_t n, double floor_) {
    double m = 0;
    for (size_t i = 0; i < n; i++) {
        double d = fabs((double)a[i] - b[i]) / (fabs(b[i]) + floor_);
        if (!(d <= m)) m = isnan(d) ? INFINITY : d;
    }
    return m;
}

/* the gated FFN's activations in float64 */
static inline double gt_silu(double g) {
    return g / (1.0 + exp(-g));
}
static inline double gt_gelu(double g) {
    return 0.5 * g * (1.0 + tanh(0.7978845608028654 * (g + 0.044715 * g * g * g)));
}

/* the larger of *worst and e, a NaN counting as infinite (and staying so) */
static inline void gt_worst(double *worst, double e) {
    if (!(e <= *worst)) *worst = isnan(e) ? INFINITY : e;
}

#endif
