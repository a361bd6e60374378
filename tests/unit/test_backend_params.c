/* The developer switches of backend_params and the environment variables
 * the programs read them from (backend_params_env): each value it knows is
 * taken, an unknown or unset one leaves the field as it was. */
#include <stdlib.h>

#include "backend.h"
#include "check.h"

static void clear_env(void) {
    unsetenv("M40LLM_PREFILL_GEMM");
    unsetenv("M40LLM_CUDA_GRAPHS");
    unsetenv("M40LLM_PROFILE");
    unsetenv("M40LLM_GEMV");
    unsetenv("M40LLM_DUP_GPUS");
    unsetenv("M40LLM_GEMM_CACHE");
}

int main(void) {
    /* the names of the GEMV kernels (the CUDA module's GEMV_KERNEL_*) */
    CHECK(backend_gemv_kernel_from_name("auto") == 0);
    CHECK(backend_gemv_kernel_from_name("warp") == 1);
    CHECK(backend_gemv_kernel_from_name("staged") == 2);
    CHECK(backend_gemv_kernel_from_name("persist") == 3);
    CHECK(backend_gemv_kernel_from_name("rows4") == 4);
    CHECK(backend_gemv_kernel_from_name("staged2") == -1);
    CHECK(backend_gemv_kernel_from_name("") == -1);
    CHECK(backend_gemv_kernel_from_name(NULL) == -1);

    /* nothing set: nothing changes */
    clear_env();
    backend_params p = {.n_ctx = 7, .gemv_kernel = 2, .prefill_gemm = BACKEND_GEMM_F32};
    backend_params_env(&p);
    CHECK(p.n_ctx == 7 && p.gemv_kernel == 2 && p.prefill_gemm == BACKEND_GEMM_F32);
    CHECK(!p.no_graphs && !p.profile && !p.dup_gpus && p.gemm_cache == 0);

    /* every switch */
    setenv("M40LLM_PREFILL_GEMM", "f16", 1);
    setenv("M40LLM_CUDA_GRAPHS", "0", 1);
    setenv("M40LLM_PROFILE", "1", 1);
    setenv("M40LLM_GEMV", "persist", 1);
    setenv("M40LLM_DUP_GPUS", "1", 1);
    setenv("M40LLM_GEMM_CACHE", "0.25", 1);
    backend_params q = {0};
    backend_params_env(&q);
    CHECK(q.prefill_gemm == BACKEND_GEMM_F16 && q.no_graphs && q.profile && q.gemv_kernel == 3 &&
          q.dup_gpus && q.gemm_cache == 0.25);
    setenv("M40LLM_PREFILL_GEMM", "f32", 1);
    backend_params_env(&q);
    CHECK(q.prefill_gemm == BACKEND_GEMM_F32);

    /* unknown values are ignored, as unset ones */
    setenv("M40LLM_PREFILL_GEMM", "bf16", 1);
    setenv("M40LLM_CUDA_GRAPHS", "1", 1);
    setenv("M40LLM_PROFILE", "yes", 1);
    setenv("M40LLM_GEMV", "staged4", 1);
    setenv("M40LLM_DUP_GPUS", "0", 1);
    setenv("M40LLM_GEMM_CACHE", "1.5", 1);
    backend_params r = {.prefill_gemm = BACKEND_GEMM_F16, .gemv_kernel = 1};
    backend_params_env(&r);
    CHECK(r.prefill_gemm == BACKEND_GEMM_F16 && !r.no_graphs && !r.profile && r.gemv_kernel == 1 &&
          !r.dup_gpus && r.gemm_cache == 0);
    /* the cache share: only 0 <= F <= 1 (0: none) */
    const char *bad[] = {"-0.5", "x", "0.5x", "nan", ""};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        setenv("M40LLM_GEMM_CACHE", bad[i], 1);
        backend_params g = {.gemm_cache = 0.5};
        backend_params_env(&g);
        CHECKF(g.gemm_cache == 0.5, "M40LLM_GEMM_CACHE=%s gave %g", bad[i], g.gemm_cache);
    }
    setenv("M40LLM_GEMM_CACHE", "0", 1);
    backend_params g0 = {.gemm_cache = BACKEND_GEMM_CACHE_DEFAULT};
    backend_params_env(&g0);
    CHECK(g0.gemm_cache == 0);
    setenv("M40LLM_GEMM_CACHE", "1", 1);
    backend_params g1 = {0};
    backend_params_env(&g1);
    CHECK(g1.gemm_cache == 1);
    clear_env();
    return check_summary("test_backend_params");
}
