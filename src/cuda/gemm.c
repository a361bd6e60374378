/* Prefill GEMMs through cuBLAS with FP32 accumulation. Row-major operands:
 * Y[n][ldy] = X[n][K] . W[rows][K]^T (+ beta * Y), i.e. every token row times
 * every weight row, which is column-major Y^T = W^T(op T) x X^T.
 *
 * cuBLAS is opened with dlopen when the first GPU context is created, not
 * linked: mapping it costs every process ~200 MB of RSS, also `--version`
 * and CPU-only runs. */
#include "cuda_gemm.h"

#include <dlfcn.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>

#include <cublas_v2.h>

/* The entry points used here, by their exported (_v2) names. */
typedef struct cublas_api {
    cublasStatus_t (*create)(cublasHandle_t *);
    cublasStatus_t (*destroy)(cublasHandle_t);
    cublasStatus_t (*set_stream)(cublasHandle_t, cudaStream_t);
    cublasStatus_t (*set_math_mode)(cublasHandle_t, cublasMath_t);
    cublasStatus_t (*sgemm)(cublasHandle_t, cublasOperation_t, cublasOperation_t, int, int, int,
                            const float *, const float *, int, const float *, int, const float *,
                            float *, int);
    cublasStatus_t (*gemm_ex)(cublasHandle_t, cublasOperation_t, cublasOperation_t, int, int, int,
                              const void *, const void *, cudaDataType, int, const void *,
                              cudaDataType, int, const void *, void *, cudaDataType, int,
                              cublasComputeType_t, cublasGemmAlgo_t);
} cublas_api;

static cublas_api cublas;
static pthread_once_t cublas_once = PTHREAD_ONCE_INIT;
static char cublas_error[512]; /* why loading failed; "" after success */

static void cublas_load(void) {
    /* the toolkit this was built with first, then the loader's search path */
    void *lib = dlopen(M40LLM_CUBLAS_DIR "/" M40LLM_CUBLAS_SONAME, RTLD_NOW | RTLD_LOCAL);
    if (!lib) lib = dlopen(M40LLM_CUBLAS_SONAME, RTLD_NOW | RTLD_LOCAL);
    if (!lib) {
        const char *why = dlerror();
        snprintf(cublas_error, sizeof cublas_error, "cannot load %s: %s", M40LLM_CUBLAS_SONAME,
                 why ? why : "not found");
        return;
    }
    static const char *const names[] = {"cublasCreate_v2",    "cublasDestroy_v2",
                                        "cublasSetStream_v2", "cublasSetMathMode",
                                        "cublasSgemm_v2",     "cublasGemmEx"};
    void **slots[] = {(void **)&cublas.create,     (void **)&cublas.destroy,
                      (void **)&cublas.set_stream, (void **)&cublas.set_math_mode,
                      (void **)&cublas.sgemm,      (void **)&cublas.gemm_ex};
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
        *slots[i] = dlsym(lib, names[i]);
        if (!*slots[i]) {
            snprintf(cublas_error, sizeof cublas_error, "%s has no symbol %s", M40LLM_CUBLAS_SONAME,
                     names[i]);
            memset(&cublas, 0, sizeof cublas);
            dlclose(lib);
            return;
        }
    }
    cublas_error[0] = '\0'; /* the library stays open for the process's life */
}

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
    if (!h) return err_set(M40LLM_ERR_CUDA, "cuBLAS: %s", cublas_error);
    if (rows > INT32_MAX || k > INT32_MAX || ldy > INT32_MAX)
        return err_set(M40LLM_ERR_INVALID_ARG, "gemm: dimension over 2^31");
    const float alpha = 1.0f;
    CUBLAS_TRY(cublas.set_stream(h, st));
    if (f16) {
        CUBLAS_TRY(cublas.gemm_ex(h, CUBLAS_OP_T, CUBLAS_OP_N, (int)rows, n, (int)k, &alpha, w,
                                  CUDA_R_16F, (int)k, x, CUDA_R_16F, (int)k, &beta, y, CUDA_R_32F,
                                  (int)ldy, CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT));
    } else {
        CUBLAS_TRY(cublas.sgemm(h, CUBLAS_OP_T, CUBLAS_OP_N, (int)rows, n, (int)k, &alpha,
                                (const float *)w, (int)k, (const float *)x, (int)k, &beta, y,
                                (int)ldy));
    }
    return M40LLM_OK;
}

int gemm_rowmajor_f16(void *handle, cudaStream_t st, const void *a, const void *b, float *c, int m,
                      int n, int k) {
    cublasHandle_t h = (cublasHandle_t)handle;
    if (!h) return err_set(M40LLM_ERR_CUDA, "cuBLAS: %s", cublas_error);
    const float alpha = 1.0f, beta = 0.0f;
    CUBLAS_TRY(cublas.set_stream(h, st));
    /* C[m][n] = A[m][k] B[k][n] row-major == C^T = B^T A^T column-major */
    CUBLAS_TRY(cublas.gemm_ex(h, CUBLAS_OP_N, CUBLAS_OP_N, n, m, k, &alpha, b, CUDA_R_16F, n, a,
                              CUDA_R_16F, k, &beta, c, CUDA_R_32F, n, CUBLAS_COMPUTE_32F,
                              CUBLAS_GEMM_DEFAULT));
    return M40LLM_OK;
}

const char *gemm_unavailable(void) {
    return cublas_error;
}

int gemm_create(void **handle) {
    pthread_once(&cublas_once, cublas_load);
    if (!cublas.create) return err_set(M40LLM_ERR_CUDA, "cuBLAS: %s", cublas_error);
    cublasHandle_t h = NULL;
    CUBLAS_TRY(cublas.create(&h));
    /* keep FP32 math exact: no TF32 or reduced-precision shortcuts */
    cublasStatus_t s = cublas.set_math_mode(h, CUBLAS_DEFAULT_MATH);
    if (s != CUBLAS_STATUS_SUCCESS) {
        cublas.destroy(h);
        return cublas_fail((int)s, "cublasSetMathMode", __FILE__, __LINE__);
    }
    *handle = h;
    return M40LLM_OK;
}

void gemm_destroy(void *handle) {
    if (handle && cublas.destroy) cublas.destroy((cublasHandle_t)handle);
}
