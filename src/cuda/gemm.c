/* Prefill GEMMs through cuBLAS with FP32 accumulation. Row-major operands:
 * Y[n][ldy] = X[n][K] . W[rows][K]^T (+ beta * Y), i.e. every token row times
 * every weight row, which is column-major Y^T = W^T(op T) x X^T. */
#include "cuda_gemm.h"

#include <cublas_v2.h>

static const char *cublas_reason(cublasStatus_t s) {
    switch (s) {
    case CUBLAS_STATUS_NOT_INITIALIZED:
        return "not initialized";
    case CUBLAS_STATUS_ALLOC_FAILED:
        return "allocation failed";
    case CUBLAS_STATUS_INVALID_VALUE:
        return "invalid value";
    case CUBLAS_STATUS_ARCH_MISMATCH:
        return "architecture mismatch";
    case CUBLAS_STATUS_EXECUTION_FAILED:
        return "execution failed";
    case CUBLAS_STATUS_INTERNAL_ERROR:
        return "internal error";
    case CUBLAS_STATUS_NOT_SUPPORTED:
        return "not supported";
    default:
        return "error";
    }
}

int cublas_fail(int status, const char *what, const char *file, int line) {
    return err_set(status == CUBLAS_STATUS_ALLOC_FAILED ? M40LLM_ERR_OOM : M40LLM_ERR_CUDA,
                   "%s:%d: %s: cuBLAS %s (%d)", file, line, what,
                   cublas_reason((cublasStatus_t)status), status);
}

#define CUBLAS_TRY(call)                                                                           \
    do {                                                                                           \
        cublasStatus_t s_ = (call);                                                                \
        if (s_ != CUBLAS_STATUS_SUCCESS) return cublas_fail((int)s_, #call, __FILE__, __LINE__);   \
    } while (0)

int gemm_rows(void *handle, cudaStream_t st, int f16, const void *w, int64_t rows, const void *x,
              int n, int64_t k, float *y, int64_t ldy, float beta) {
    cublasHandle_t h = (cublasHandle_t)handle;
    if (n <= 0) return M40LLM_OK;
    if (rows > INT32_MAX || k > INT32_MAX || ldy > INT32_MAX)
        return err_set(M40LLM_ERR_INVALID_ARG, "gemm: dimension over 2^31");
    const float alpha = 1.0f;
    CUBLAS_TRY(cublasSetStream(h, st));
    if (f16) {
        CUBLAS_TRY(cublasGemmEx(h, CUBLAS_OP_T, CUBLAS_OP_N, (int)rows, n, (int)k, &alpha, w,
                                CUDA_R_16F, (int)k, x, CUDA_R_16F, (int)k, &beta, y, CUDA_R_32F,
                                (int)ldy, CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT));
    } else {
        CUBLAS_TRY(cublasSgemm(h, CUBLAS_OP_T, CUBLAS_OP_N, (int)rows, n, (int)k, &alpha,
                               (const float *)w, (int)k, (const float *)x, (int)k, &beta, y,
                               (int)ldy));
    }
    return M40LLM_OK;
}

int gemm_rowmajor_f16(void *handle, cudaStream_t st, const void *a, const void *b, float *c, int m,
                      int n, int k) {
    cublasHandle_t h = (cublasHandle_t)handle;
    const float alpha = 1.0f, beta = 0.0f;
    CUBLAS_TRY(cublasSetStream(h, st));
    /* C[m][n] = A[m][k] B[k][n] row-major == C^T = B^T A^T column-major */
    CUBLAS_TRY(cublasGemmEx(h, CUBLAS_OP_N, CUBLAS_OP_N, n, m, k, &alpha, b, CUDA_R_16F, n, a,
                            CUDA_R_16F, k, &beta, c, CUDA_R_32F, n, CUBLAS_COMPUTE_32F,
                            CUBLAS_GEMM_DEFAULT));
    return M40LLM_OK;
}

int gemm_create(void **handle) {
    cublasHandle_t h = NULL;
    CUBLAS_TRY(cublasCreate(&h));
    /* keep FP32 math exact: no TF32 or reduced-precision shortcuts */
    CUBLAS_TRY(cublasSetMathMode(h, CUBLAS_DEFAULT_MATH));
    *handle = h;
    return M40LLM_OK;
}

void gemm_destroy(void *handle) {
    if (handle) cublasDestroy((cublasHandle_t)handle);
}
