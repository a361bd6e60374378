/* The public CUDA API in a build without CUDA: every call reports that no
 * GPU is usable, so programs link and fall back. */
#include <string.h>

#include "err.h"
#include "gpu_diag.h"
#include "m40llm.h"

static int no_cuda(void) {
    return err_set(M40LLM_ERR_NO_DEVICE, "this build has no CUDA support");
}

int m40llm_create_context(int device, M40llmCudaContext **out) {
    (void)device;
    *out = 0;
    return no_cuda();
}
void m40llm_destroy_context(M40llmCudaContext *ctx) {
    (void)ctx;
}
int m40llm_synchronize(M40llmCudaContext *ctx) {
    (void)ctx;
    return no_cuda();
}
int m40llm_device_malloc(M40llmCudaContext *ctx, size_t bytes, void **out) {
    (void)ctx;
    (void)bytes;
    *out = 0;
    return no_cuda();
}
int m40llm_device_free(M40llmCudaContext *ctx, void *p) {
    (void)ctx;
    return p ? no_cuda() : M40LLM_OK;
}
int m40llm_host_to_device_f16(M40llmCudaContext *ctx, void *dst, const uint16_t *src, size_t n) {
    (void)ctx, (void)dst, (void)src, (void)n;
    return no_cuda();
}
int m40llm_device_to_host_f32(M40llmCudaContext *ctx, float *dst, const float *src, size_t n) {
    (void)ctx, (void)dst, (void)src, (void)n;
    return no_cuda();
}
int m40llm_gemm_f16_storage_f32_compute(M40llmCudaContext *ctx, const void *a, const void *b,
                                        float *c, int m, int n, int k) {
    (void)ctx, (void)a, (void)b, (void)c, (void)m, (void)n, (void)k;
    return no_cuda();
}
int m40llm_alloc_kvcache(M40llmCudaContext *ctx, int n_layer, int n_kv_head, int head_dim,
                         int max_tokens, M40llmKVCache **out) {
    (void)ctx, (void)n_layer, (void)n_kv_head, (void)head_dim, (void)max_tokens;
    *out = 0;
    return no_cuda();
}
void m40llm_free_kvcache(M40llmCudaContext *ctx, M40llmKVCache *kv) {
    (void)ctx, (void)kv;
}
int m40llm_kv_append_token(M40llmCudaContext *ctx, M40llmKVCache *kv, int layer, const float *k,
                           const float *v) {
    (void)ctx, (void)kv, (void)layer, (void)k, (void)v;
    return no_cuda();
}
int m40llm_kv_length(const M40llmKVCache *kv, int layer) {
    (void)kv, (void)layer;
    return -1;
}
int m40llm_attention_last_token(M40llmCudaContext *ctx, const M40llmKVCache *kv, int layer,
                                const float *q, int n_head, float *out) {
    (void)ctx, (void)kv, (void)layer, (void)q, (void)n_head, (void)out;
    return no_cuda();
}
int m40llm_rmsnorm_f16_f32gamma(M40llmCudaContext *ctx, const void *x, const float *gamma,
                                float *out, int n, int dim, float eps) {
    (void)ctx, (void)x, (void)gamma, (void)out, (void)n, (void)dim, (void)eps;
    return no_cuda();
}
int m40llm_mlp_swiglu_f32_f16w(M40llmCudaContext *ctx, const float *x, const void *wg,
                               const void *wu, const void *wd, float *out, int n, int dim, int ff) {
    (void)ctx, (void)x, (void)wg, (void)wu, (void)wd, (void)out, (void)n, (void)dim, (void)ff;
    return no_cuda();
}
int m40llm_gpu_count(int *count) {
    *count = 0;
    return M40LLM_OK;
}
int m40llm_gpu_query(int device, m40llm_gpu_info *out) {
    (void)device;
    memset(out, 0, sizeof *out); /* "unknown" in every field, as the CUDA build does */
    out->temperature_c = out->sm_clock_mhz = out->mem_clock_mhz = -1;
    out->sm_clock_max_mhz = out->mem_clock_max_mhz = out->power_mw = -1;
    return no_cuda();
}
int m40llm_gpu_copy_bandwidth(int device, double *gbps) {
    (void)device;
    *gbps = 0;
    return no_cuda();
}

void gpu_diag_build_facts(gpu_diag_facts *f) {
    f->cuda_build = false;
    f->runtime_version = 0;
    f->archs = "";
}
void gpu_diag_probe_devices(gpu_diag_facts *f) {
    (void)f;
}
