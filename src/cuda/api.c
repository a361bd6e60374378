/* The public m40llm_* CUDA API: context (device, two streams, cuBLAS),
 * device memory, copies, GEMM, a one-sequence KV cache, attention, RMSNorm
 * and the SwiGLU MLP, all on the kernels the backend uses. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "cuda_gemm.h"
#include "m40llm.h"
#include "quant.h"

struct M40llmCudaContext {
    int device;
    cudaStream_t decode;  /* default stream of the API calls */
    cudaStream_t prefill; /* GEMMs */
    cudaEvent_t ev;       /* orders the two streams */
    void *cublas;         /* NULL when cuBLAS cannot be loaded (gemm_unavailable) */
    int32_t *idx;         /* [1] scratch: seq 0 / position for the API kernels */
    int32_t *page_table;  /* [max pages] identity, shared by this context's caches */
    int page_table_len;
    float *partial; /* attention split scratch */
    size_t partial_len;
    unsigned *att_count; /* attention split counters, kept zero between launches */
    size_t att_count_len;
};

struct M40llmKVCache {
    int n_layer, n_kv, hd, max_tokens, pages;
    void *mem;      /* one allocation: per layer K then V */
    int *len;       /* [n_layer] positions stored */
    int32_t *table; /* [pages] identity page table */
    int32_t *pos;   /* [n_layer] device scratch: position being written / last */
};

int cuda_fail(cudaError_t e, const char *what, const char *file, int line) {
    int st = e == cudaErrorMemoryAllocation                                 ? M40LLM_ERR_OOM
             : (e == cudaErrorNoDevice || e == cudaErrorInsufficientDriver) ? M40LLM_ERR_NO_DEVICE
                                                                            : M40LLM_ERR_CUDA;
    return err_set(st, "%s:%d: %s: %s (%s)", file, line, what, cudaGetErrorString(e),
                   cudaGetErrorName(e));
}

int m40llm_gpu_count(int *count) {
    int n = 0;
    cudaError_t e = cudaGetDeviceCount(&n);
    if (e != cudaSuccess) {
        cudaGetLastError();
        n = 0; /* no device / insufficient driver: no usable GPU */
    }
    *count = n;
    return M40LLM_OK;
}

int m40llm_create_context(int device, M40llmCudaContext **out) {
    *out = NULL;
    int n = 0;
    m40llm_gpu_count(&n);
    if (n == 0)
        return err_set(M40LLM_ERR_NO_DEVICE, "no usable CUDA GPU (none, or driver too old)");
    if (device < 0 || device >= n)
        return err_set(M40LLM_ERR_INVALID_ARG, "GPU %d does not exist (%d found)", device, n);
    M40llmCudaContext *c = calloc(1, sizeof *c);
    if (!c) return err_set(M40LLM_ERR_OOM, "out of host memory");
    c->device = device;
    int rc = M40LLM_OK;
    cudaError_t e;
#define CTX_TRY(call)                                                                              \
    do {                                                                                           \
        e = (call);                                                                                \
        if (e != cudaSuccess) {                                                                    \
            rc = cuda_fail(e, #call, __FILE__, __LINE__);                                          \
            goto fail;                                                                             \
        }                                                                                          \
    } while (0)
    CTX_TRY(cudaSetDevice(device));
    /* blocking streams: ordered after a caller's cudaMemcpy on the legacy stream */
    CTX_TRY(cudaStreamCreateWithFlags(&c->decode, cudaStreamDefault));
    CTX_TRY(cudaStreamCreateWithFlags(&c->prefill, cudaStreamDefault));
    CTX_TRY(cudaEventCreateWithFlags(&c->ev, cudaEventDisableTiming));
    CTX_TRY(cudaMalloc((void **)&c->idx, 2 * sizeof(int32_t)));
    /* without cuBLAS (an M40 box with the driver but not libcublas of this
     * CUDA version) the context still works: only the GEMM entry point
     * fails, and the backend runs prompts through its GEMV kernels */
    if (gemm_create(&c->cublas) != M40LLM_OK) c->cublas = NULL;
    *out = c;
    return M40LLM_OK;
fail:
    m40llm_destroy_context(c);
    return rc;
#undef CTX_TRY
}

void m40llm_destroy_context(M40llmCudaContext *c) {
    if (!c) return;
    cudaSetDevice(c->device);
    if (c->decode) cudaStreamSynchronize(c->decode);
    if (c->prefill) cudaStreamSynchronize(c->prefill);
    gemm_destroy(c->cublas);
    cudaFree(c->idx);
    cudaFree(c->partial);
    cudaFree(c->att_count);
    if (c->ev) cudaEventDestroy(c->ev);
    if (c->decode) cudaStreamDestroy(c->decode);
    if (c->prefill) cudaStreamDestroy(c->prefill);
    free(c);
}

int m40llm_synchronize(M40llmCudaContext *c) {
    if (!c) return err_set(M40LLM_ERR_INVALID_ARG, "no context");
    CUDA_TRY(cudaSetDevice(c->device));
    CUDA_TRY(cudaStreamSynchronize(c->prefill));
    CUDA_TRY(cudaStreamSynchronize(c->decode));
    return M40LLM_OK;
}

int m40llm_device_malloc(M40llmCudaContext *c, size_t bytes, void **out) {
    *out = NULL;
    if (!c || bytes == 0) return err_set(M40LLM_ERR_INVALID_ARG, "device_malloc: %zu bytes", bytes);
    CUDA_TRY(cudaSetDevice(c->device));
    cudaError_t e = cudaMalloc(out, bytes);
    if (e != cudaSuccess) {
        cudaGetLastError();
        size_t fr = 0, tot = 0;
        cudaMemGetInfo(&fr, &tot);
        *out = NULL;
        return err_set(M40LLM_ERR_OOM, "%s:%d: cudaMalloc of %zu bytes: %s (%zu of %zu bytes free)",
                       __FILE__, __LINE__, bytes, cudaGetErrorString(e), fr, tot);
    }
    return M40LLM_OK;
}

int m40llm_device_free(M40llmCudaContext *c, void *p) {
    if (!p) return M40LLM_OK;
    if (!c) return err_set(M40LLM_ERR_INVALID_ARG, "no context");
    CUDA_TRY(cudaSetDevice(c->device));
    CUDA_TRY(cudaFree(p));
    return M40LLM_OK;
}

int m40llm_host_to_device_f16(M40llmCudaContext *c, void *dst, const uint16_t *src, size_t n) {
    if (!c || !dst || (!src && n))
        return err_set(M40LLM_ERR_INVALID_ARG, "host_to_device_f16: NULL");
    CUDA_TRY(cudaSetDevice(c->device));
    CUDA_TRY(cudaMemcpyAsync(dst, src, n * 2, cudaMemcpyHostToDevice, c->decode));
    CUDA_TRY(cudaStreamSynchronize(c->decode)); /* src may be reused at return */
    return M40LLM_OK;
}

int m40llm_device_to_host_f32(M40llmCudaContext *c, float *dst, const float *src, size_t n) {
    if (!c || !src || (!dst && n))
        return err_set(M40LLM_ERR_INVALID_ARG, "device_to_host_f32: NULL");
    CUDA_TRY(cudaSetDevice(c->device));
    CUDA_TRY(cudaStreamSynchronize(c->prefill));
    CUDA_TRY(cudaMemcpyAsync(dst, src, n * sizeof(float), cudaMemcpyDeviceToHost, c->decode));
    CUDA_TRY(cudaStreamSynchronize(c->decode));
    return M40LLM_OK;
}

/* prefill stream work after everything queued on decode, and back */
static int ctx_enter_prefill(M40llmCudaContext *c) {
    CUDA_TRY(cudaEventRecord(c->ev, c->decode));
    CUDA_TRY(cudaStreamWaitEvent(c->prefill, c->ev, 0));
    return M40LLM_OK;
}
static int ctx_leave_prefill(M40llmCudaContext *c) {
    CUDA_TRY(cudaEventRecord(c->ev, c->prefill));
    CUDA_TRY(cudaStreamWaitEvent(c->decode, c->ev, 0));
    return M40LLM_OK;
}

int m40llm_gemm_f16_storage_f32_compute(M40llmCudaContext *c, const void *a, const void *b,
                                        float *out, int m, int n, int k) {
    if (!c || !a || !b || !out || m <= 0 || n <= 0 || k <= 0)
        return err_set(M40LLM_ERR_INVALID_ARG, "gemm: bad arguments (m %d, n %d, k %d)", m, n, k);
    CUDA_TRY(cudaSetDevice(c->device));
    int rc = ctx_enter_prefill(c);
    if (!rc) rc = gemm_rowmajor_f16(c->cublas, c->prefill, a, b, out, m, n, k);
    if (!rc) rc = ctx_leave_prefill(c);
    return rc;
}

/* ---- KV cache ---- */
static size_t kv_layer_elems(const M40llmKVCache *kv) {
    return (size_t)kv->pages * kv->n_kv * M40_KV_PAGE * kv->hd;
}

int m40llm_alloc_kvcache(M40llmCudaContext *c, int n_layer, int n_kv, int hd, int max_tokens,
                         M40llmKVCache **out) {
    *out = NULL;
    if (!c || n_layer <= 0 || n_kv <= 0 || hd <= 0 || hd % 2 || max_tokens <= 0)
        return err_set(M40LLM_ERR_INVALID_ARG,
                       "alloc_kvcache: %d layers, %d KV heads, head dim %d, %d tokens", n_layer,
                       n_kv, hd, max_tokens);
    CUDA_TRY(cudaSetDevice(c->device));
    M40llmKVCache *kv = calloc(1, sizeof *kv);
    if (!kv) return err_set(M40LLM_ERR_OOM, "out of host memory");
    kv->n_layer = n_layer;
    kv->n_kv = n_kv;
    kv->hd = hd;
    kv->max_tokens = max_tokens;
    kv->pages = (max_tokens + M40_KV_PAGE - 1) / M40_KV_PAGE;
    kv->len = calloc((size_t)n_layer, sizeof(int));
    int rc = kv->len ? M40LLM_OK : err_set(M40LLM_ERR_OOM, "out of host memory");
    size_t bytes = kv_layer_elems(kv) * 2 /* K,V */ * 2 /* f16 */ * (size_t)n_layer;
    if (!rc) rc = m40llm_device_malloc(c, bytes, &kv->mem);
    if (!rc) rc = m40llm_device_malloc(c, (size_t)kv->pages * sizeof(int32_t), (void **)&kv->table);
    if (!rc) rc = m40llm_device_malloc(c, (size_t)n_layer * sizeof(int32_t), (void **)&kv->pos);
    if (!rc) rc = launch_iota(kv->table, kv->pages, 0, c->decode);
    if (rc) {
        err_prefix(rc, "KV cache of %zu bytes", bytes);
        m40llm_free_kvcache(c, kv);
        return rc;
    }
    *out = kv;
    return M40LLM_OK;
}

void m40llm_free_kvcache(M40llmCudaContext *c, M40llmKVCache *kv) {
    if (!kv) return;
    if (c) {
        cudaSetDevice(c->device);
        cudaStreamSynchronize(c->decode);
    }
    cudaFree(kv->mem);
    cudaFree(kv->table);
    cudaFree(kv->pos);
    free(kv->len);
    free(kv);
}

int m40llm_kv_length(const M40llmKVCache *kv, int layer) {
    if (!kv || layer < 0 || layer >= kv->n_layer) return -1;
    return kv->len[layer];
}

static kv_view kv_layer(const M40llmKVCache *kv, int layer) {
    kv_view v;
    size_t e = kv_layer_elems(kv);
    uint16_t *base = (uint16_t *)kv->mem + (size_t)layer * 2 * e;
    v.k = base;
    v.v = base + e;
    v.page_table = kv->table;
    v.pages_per_seq = kv->pages;
    v.n_kv = kv->n_kv;
    v.hd = kv->hd;
    v.f16 = 1;
    v.page_shift = M40_KV_PAGE_SHIFT;
    return v;
}

/* Grows a context scratch buffer to n elements of elt bytes (zeroed when
 * asked); work still queued on the decode stream may use the old one. */
static int ctx_scratch(M40llmCudaContext *c, void **buf, size_t *len, size_t n, size_t elt,
                       int zero) {
    if (*len >= n) return M40LLM_OK;
    cudaStreamSynchronize(c->decode);
    cudaFree(*buf);
    *buf = NULL;
    *len = 0;
    int rc = m40llm_device_malloc(c, n * elt, buf);
    if (rc) return rc;
    if (zero) CUDA_TRY(cudaMemset(*buf, 0, n * elt));
    *len = n;
    return M40LLM_OK;
}

int m40llm_kv_append_token(M40llmCudaContext *c, M40llmKVCache *kv, int layer, const float *k,
                           const float *v) {
    if (!c || !kv || !k || !v || layer < 0 || layer >= kv->n_layer)
        return err_set(M40LLM_ERR_INVALID_ARG, "kv_append_token: bad arguments (layer %d)", layer);
    if (kv->len[layer] >= kv->max_tokens)
        return err_set(M40LLM_ERR_CONTEXT_FULL, "kv_append_token: layer %d holds %d of %d tokens",
                       layer, kv->len[layer], kv->max_tokens);
    CUDA_TRY(cudaSetDevice(c->device));
    int32_t pos = kv->len[layer];
    CUDA_TRY(cudaMemcpyAsync(kv->pos + layer, &pos, sizeof pos, cudaMemcpyHostToDevice, c->decode));
    /* the prefill rope kernel with rotation off (n_rot 0) stores k and v; it
     * reads [q | k | v] rows, so point "q" at zero rows before k */
    qkv_out o;
    memset(&o, 0, sizeof o);
    o.kv = kv_layer(kv, layer);
    o.rope.n_head = 0;
    o.rope.n_kv = kv->n_kv;
    o.rope.hd = kv->hd;
    o.rope.n_rot = 0;
    o.rope.base = 10000.0f;
    o.rope.scale = 1.0f;
    o.seq = c->idx; /* idx[0] = 0: the single sequence */
    o.pos = kv->pos + layer;
    o.q = NULL;
    o.ldq = 0;
    CUDA_TRY(cudaMemsetAsync(c->idx, 0, sizeof(int32_t), c->decode));
    /* k then v must be adjacent in one row: copy them into the attention scratch */
    size_t row = (size_t)2 * kv->n_kv * kv->hd;
    int rc = ctx_scratch(c, (void **)&c->partial, &c->partial_len, row, sizeof(float), 0);
    if (rc) return rc;
    size_t half = row / 2 * sizeof(float);
    CUDA_TRY(cudaMemcpyAsync(c->partial, k, half, cudaMemcpyDeviceToDevice, c->decode));
    CUDA_TRY(cudaMemcpyAsync(c->partial + row / 2, v, half, cudaMemcpyDeviceToDevice, c->decode));
    rc = launch_rope_store(c->partial, (int64_t)row, 1, &o, c->decode);
    if (rc) return rc;
    kv->len[layer]++;
    /* host pos may change before the copy runs: wait for this small step */
    CUDA_TRY(cudaStreamSynchronize(c->decode));
    return M40LLM_OK;
}

int m40llm_attention_last_token(M40llmCudaContext *c, const M40llmKVCache *kv, int layer,
                                const float *q, int n_head, float *out) {
    if (!c || !kv || !q || !out || layer < 0 || layer >= kv->n_layer || n_head <= 0)
        return err_set(M40LLM_ERR_INVALID_ARG, "attention_last_token: bad arguments");
    if (kv->len[layer] == 0)
        return err_set(M40LLM_ERR_INVALID_ARG, "attention_last_token: layer %d is empty", layer);
    attn_plan pl;
    int rc = attention_plan(n_head, kv->n_kv, kv->hd, kv->max_tokens, 256, 512, &pl);
    if (rc) return rc;
    CUDA_TRY(cudaSetDevice(c->device));
    rc = ctx_scratch(c, (void **)&c->partial, &c->partial_len, attention_partial_floats(&pl, 1),
                     sizeof(float), 0);
    if (!rc)
        rc = ctx_scratch(c, (void **)&c->att_count, &c->att_count_len, attention_counters(&pl, 1),
                         sizeof(unsigned), 1);
    if (rc) return rc;
    int32_t last[2] = {0, kv->len[layer] - 1};
    CUDA_TRY(cudaMemcpyAsync(c->idx, last, sizeof last, cudaMemcpyHostToDevice, c->decode));
    kv_view v = kv_layer(kv, layer);
    attn_mods md = {1.0f / sqrtf((float)kv->hd), 0.0f, 0};
    rc = launch_attention(&pl, q, &v, c->idx, c->idx + 1, 1, &md, c->partial, c->att_count, out,
                          kv->len[layer] - 1, c->decode);
    if (rc) return rc;
    CUDA_TRY(cudaStreamSynchronize(c->decode)); /* `last` is on this stack frame */
    return M40LLM_OK;
}

int m40llm_rmsnorm_f16_f32gamma(M40llmCudaContext *c, const void *x, const float *gamma, float *out,
                                int n, int dim, float eps) {
    if (!c || !x || !gamma || !out || n <= 0 || dim <= 0)
        return err_set(M40LLM_ERR_INVALID_ARG, "rmsnorm: bad arguments (n %d, dim %d)", n, dim);
    CUDA_TRY(cudaSetDevice(c->device));
    return launch_rmsnorm(NULL, (const uint16_t *)x, dim, gamma, eps, n, dim, out, NULL, dim,
                          c->decode);
}

static gpu_matrix f16_matrix(const void *w, int64_t rows, int64_t cols) {
    gpu_matrix m;
    size_t qb, sb, hb;
    gpu_matrix_layout(&m, QT_F16, rows, cols, &qb, &sb, &hb);
    m.q = (uint8_t *)w;
    return m;
}

int m40llm_mlp_swiglu_f32_f16w(M40llmCudaContext *c, const float *x, const void *wg, const void *wu,
                               const void *wd, float *out, int n, int dim, int ff) {
    if (!c || !x || !wg || !wu || !wd || !out || n <= 0 || dim <= 0 || ff <= 0)
        return err_set(M40LLM_ERR_INVALID_ARG, "mlp_swiglu: bad arguments");
    if (dim % 32 || ff % 32)
        return err_set(M40LLM_ERR_UNSUPPORTED,
                       "mlp_swiglu: dim %d and ff %d must be multiples of 32", dim, ff);
    CUDA_TRY(cudaSetDevice(c->device));
    gpu_matrix g = f16_matrix(wg, ff, dim), u = f16_matrix(wu, ff, dim),
               d = f16_matrix(wd, dim, ff);
    float *h = NULL;
    int rc = m40llm_device_malloc(c, (size_t)n * ff * sizeof(float), (void **)&h);
    if (rc) return rc;
    for (int i0 = 0; i0 < n && !rc; i0 += M40_GEMV_MAX_B) {
        int nb = n - i0 < M40_GEMV_MAX_B ? n - i0 : M40_GEMV_MAX_B;
        gemv_args a;
        memset(&a, 0, sizeof a);
        a.w = &g;
        a.w2 = &u;
        a.x = x + (size_t)i0 * dim;
        a.ldx = dim;
        a.nb = nb;
        a.y = h + (size_t)i0 * ff;
        a.ldy = ff;
        a.mode = GEMV_SWIGLU;
        rc = launch_gemv(&a, c->decode);
        if (rc) break;
        a.w = &d;
        a.w2 = NULL;
        a.x = h + (size_t)i0 * ff;
        a.ldx = ff;
        a.y = out + (size_t)i0 * dim;
        a.ldy = dim;
        a.mode = GEMV_STORE;
        rc = launch_gemv(&a, c->decode);
    }
    cudaError_t e = cudaStreamSynchronize(c->decode);
    cudaFree(h);
    if (!rc && e != cudaSuccess) rc = cuda_fail(e, "mlp_swiglu", __FILE__, __LINE__);
    return rc;
}

/* for the backend, which runs on a context of its own */
cudaStream_t m40llm_context_stream(M40llmCudaContext *c) {
    return c->decode;
}
void *m40llm_context_cublas(M40llmCudaContext *c) {
    return c->cublas;
}
const char *m40llm_cublas_unavailable(void) {
    return gemm_unavailable();
}
