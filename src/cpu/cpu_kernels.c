/* Vector helpers of the CPU backend. Without -ffast-math a compiler may not
 * reorder a float sum, so reductions keep 32 independent partial sums that
 * map onto SIMD lanes; the result is identical whatever the vector width. */
#include <math.h>

#include "cpu_internal.h"

#define LANES 32

/* The build targets baseline x86-64 (SSE2); an AVX2 clone is picked at load
 * time where the CPU has it. Same lanes, same order: identical results. */
/* (not under ThreadSanitizer: its runtime is not ready when the loader runs
 * the ifunc resolver) */
#if defined(__x86_64__) && defined(__has_attribute) && !defined(__SANITIZE_THREAD__)
#if __has_attribute(target_clones)
#define CPU_CLONES __attribute__((target_clones("avx2", "default")))
#endif
#endif
#ifndef CPU_CLONES
#define CPU_CLONES
#endif

CPU_CLONES float cpu_dot(const float *a, const float *b, int n) {
    float acc[LANES] = {0};
    int i = 0;
    for (; i + LANES <= n; i += LANES)
        for (int l = 0; l < LANES; l++) acc[l] += a[i + l] * b[i + l];
    for (int l = 0; i < n; i++, l++) acc[l] += a[i] * b[i];
    /* pairwise fold: fixed order */
    for (int w = LANES / 2; w > 0; w /= 2)
        for (int l = 0; l < w; l++) acc[l] += acc[l + w];
    return acc[0];
}

void cpu_rmsnorm(float *y, const float *x, const float *w, int n, float eps) {
    float ss = cpu_dot(x, x, n);
    float scale = (float)(1.0 / sqrt((double)ss / n + (double)eps));
    for (int i = 0; i < n; i++) y[i] = x[i] * scale * w[i];
}

float cpu_silu(float x) {
    return x / (1.0f + expf(-x));
}
