/* cuBLAS wrappers (gemm.c): prefill GEMMs with FP32 accumulation. */
#ifndef M40_CUDA_GEMM_H
#define M40_CUDA_GEMM_H

#include "cuda_internal.h"

/* M40LLM_ERR_CUDA when cuBLAS cannot be loaded or started (gemm_unavailable
 * then says why); callers treat that as "no GEMM": prompts run through the
 * GEMV kernels, M40_GEMV_MAX_B rows at a time. */
int gemm_create(void **handle);
/* Why cuBLAS could not be loaded ("" after a successful gemm_create or
 * before the first one). */
const char *gemm_unavailable(void);
void gemm_destroy(void *handle);
int cublas_fail(int status, const char *what, const char *file, int line);
/* y[i][r] = sum_k x[i][k] w[r][k] + beta * y[i][r] for n rows of x and `rows` rows of w;
 * f16 = 1: w and x are f16 bits (tensor cores where the GPU has them, FP32
 * accumulation); f16 = 0: both f32 (SGEMM). */
int gemm_rows(void *handle, cudaStream_t st, int f16, const void *w, int64_t rows, const void *x,
              int n, int64_t k, float *y, int64_t ldy, float beta);
/* c[m][n] = a[m][k] b[k][n], row-major, a and b f16 bits, c f32. */
int gemm_rowmajor_f16(void *handle, cudaStream_t st, const void *a, const void *b, float *c, int m,
                      int n, int k);

#endif
