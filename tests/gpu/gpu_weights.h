/* A weight matrix of the GPU tests: random values quantized to a type,
 * their dequantized copy (the reference) and the repacked device matrix. */
#ifndef M40_GPU_WEIGHTS_H
#define M40_GPU_WEIGHTS_H

#include <string.h>

#include "cuda/cuda_internal.h"
#include "gpu_test.h"
#include "quant.h"

typedef struct host_w {
    int type;
    int64_t rows, cols;
    uint8_t *raw; /* GGUF rows */
    float *deq;   /* quant_dequantize_row of raw */
    gpu_matrix m; /* repacked on the device */
    void *mem;
} host_w;

static inline void make_w(host_w *h, int type, int64_t rows, int64_t cols) {
    h->type = type;
    h->rows = rows;
    h->cols = cols;
    size_t rb = quant_row_size(type, cols);
    float *src = malloc(sizeof(float) * rows * cols);
    gt_fill(src, (size_t)rows * cols, 0.5f);
    h->raw = malloc(rb * rows);
    h->deq = malloc(sizeof(float) * rows * cols);
    for (int64_t r = 0; r < rows; r++) {
        GT_OK(quant_quantize_row(type, src + r * cols, h->raw + r * rb, cols));
        GT_OK(quant_dequantize_row(type, h->raw + r * rb, h->deq + r * cols, cols));
    }
    free(src);
    size_t qb, sb, hb;
    size_t bytes = gpu_matrix_layout(&h->m, type, rows, cols, &qb, &sb, &hb);
    CHECKF(bytes > 0, "layout of %s", quant_info(type)->name);
    h->mem = gt_dev(bytes);
    gpu_matrix_place(&h->m, h->mem, qb, sb);
    /* upload and repack in two parts to exercise the row offset */
    void *d = gt_up(h->raw, rb * rows);
    int64_t r1 = rows / 3;
    GT_OK(launch_repack(&h->m, 0, d, r1, 0));
    GT_OK(launch_repack(&h->m, r1, (uint8_t *)d + r1 * rb, rows - r1, 0));
    GT_CUDA(cudaDeviceSynchronize());
    cudaFree(d);
}

static inline void free_w(host_w *h) {
    cudaFree(h->mem);
    free(h->raw);
    free(h->deq);
}

/* launch_gemv's arguments for h (h2: SwiGLU's up matrix) over nb vectors x
 * (ldx apart) into y (ldy apart), the fused RMSNorm with gain gamma (eps
 * 1e-5) when given */
static inline gemv_args gt_gemv_args(const host_w *h, const host_w *h2, const float *x, int64_t ldx,
                                     int nb, const float *gamma, float *y, int64_t ldy, int mode,
                                     int act, int kernel) {
    gemv_args a;
    memset(&a, 0, sizeof a);
    a.w = &h->m;
    a.w2 = h2 ? &h2->m : NULL;
    a.x = x;
    a.ldx = ldx;
    a.nb = nb;
    a.gamma = gamma;
    a.eps = 1e-5f;
    a.y = y;
    a.ldy = ldy;
    a.mode = mode;
    a.act = act;
    a.kernel = kernel;
    return a;
}

/* The float64 reference of a GEMV over nb vectors x (ldx apart): for
 * row r of vector b, ref = W x (store), y0 + W x (add) or act(Wg x) (Wu x)
 * (SwiGLU, h2 the up matrix, act 1 = GeGLU), x first RMS-normalized with
 * gain gamma when given; mag the sum of the terms' magnitudes (the
 * tolerance's scale). ref and mag: [nb][h->rows]. */
static inline void gemv_ref(const host_w *h, const host_w *h2, const float *x, int64_t ldx, int nb,
                            const float *gamma, int mode, int act, const float *y0, int64_t ldy,
                            double *ref, double *mag) {
    const int64_t R = h->rows, K = h->cols;
    for (int b = 0; b < nb; b++) {
        double ss = 0, s = 1;
        for (int64_t k = 0; k < K; k++) ss += (double)x[b * ldx + k] * x[b * ldx + k];
        if (gamma) s = 1.0 / sqrt(ss / K + 1e-5);
        for (int64_t r = 0; r < R; r++) {
            double a = 0, a2 = 0, m = 0;
            for (int64_t k = 0; k < K; k++) {
                const double xv = x[b * ldx + k] * (gamma ? s * gamma[k] : 1.0);
                a += h->deq[r * K + k] * xv;
                m += fabs(h->deq[r * K + k] * xv);
                if (h2) a2 += h2->deq[r * K + k] * xv, m += fabs(h2->deq[r * K + k] * xv);
            }
            ref[b * R + r] = mode == GEMV_SWIGLU ? (act ? gt_gelu(a) : gt_silu(a)) * a2
                             : mode == GEMV_ADD  ? y0[b * ldy + r] + a
                                                 : a;
            mag[b * R + r] = mode == GEMV_SWIGLU ? m * (fabs(a2) + fabs(a)) + 1 : m;
        }
    }
}

#endif
