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

/* 8 lanes per key (one AVX2 register), folded in a fixed order. */
CPU_CLONES void cpu_attn_scores(const float *q, const float *k, size_t ks, int n, int hd,
                                float scale, float *out) {
    for (int t = 0; t < n; t++) {
        const float *kt = k + (size_t)t * ks;
        float acc[8] = {0};
        int d = 0;
        for (; d + 8 <= hd; d += 8)
            for (int l = 0; l < 8; l++) acc[l] += q[d + l] * kt[d + l];
        for (; d < hd; d++) acc[d & 7] += q[d] * kt[d];
        out[t] =
            (((acc[0] + acc[4]) + (acc[1] + acc[5])) + ((acc[2] + acc[6]) + (acc[3] + acc[7]))) *
            scale;
    }
}

CPU_CLONES void cpu_attn_accum(float *out, const float *v, size_t vs, const float *p, int n,
                               int hd) {
    for (int t = 0; t < n; t++) {
        const float *vt = v + (size_t)t * vs;
        const float pt = p[t];
        for (int d = 0; d < hd; d++) out[d] += pt * vt[d];
    }
}

void cpu_rmsnorm(float *y, const float *x, const float *w, int n, float eps) {
    float ss = cpu_dot(x, x, n);
    float scale = (float)(1.0 / sqrt((double)ss / n + (double)eps));
    for (int i = 0; i < n; i++) y[i] = x[i] * scale * w[i];
}

float cpu_silu(float x) {
    return x / (1.0f + expf(-x));
}

float cpu_gelu_tanh(float x) {
    /* 0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3))) */
    const float k = 0.7978845608028654f;
    return 0.5f * x * (1.0f + tanhf(k * (x + 0.044715f * x * x * x)));
}
