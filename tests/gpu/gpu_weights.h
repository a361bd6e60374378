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

#endif
