/* m40-llm public C API.
 *
 * One header for libm40llm. Every function that can fail returns an
 * m40llm_status (0 = ok, negative = error) and leaves a human-readable
 * message in m40llm_last_error() (thread-local). Nothing in the library
 * exits the process. */
#ifndef M40LLM_H
#define M40LLM_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef enum m40llm_status {
    M40LLM_OK = 0,
    M40LLM_ERR_INVALID_ARG = -1,   /* a bad argument from the caller */
    M40LLM_ERR_IO = -2,            /* open/read/write/mmap failed */
    M40LLM_ERR_FORMAT = -3,        /* malformed or truncated file */
    M40LLM_ERR_UNSUPPORTED = -4,   /* unknown architecture, tensor type, ... */
    M40LLM_ERR_OOM = -5,           /* host or device allocation failed */
    M40LLM_ERR_NOT_FOUND = -6,     /* key, tensor or file absent */
    M40LLM_ERR_TYPE = -7,          /* value has another type than asked */
    M40LLM_ERR_CUDA = -8,          /* a CUDA runtime / cuBLAS call failed */
    M40LLM_ERR_NO_DEVICE = -9,     /* no usable GPU (none, or driver too old) */
    M40LLM_ERR_CONTEXT_FULL = -10, /* sequence longer than the KV cache */
    M40LLM_ERR_CANCELLED = -11,    /* stopped by the caller */
    M40LLM_ERR_SHAPE = -12,        /* tensor shape does not match the config */
    M40LLM_ERR_INTERNAL = -13,
} m40llm_status;

/* Message of the last error raised on this thread ("" if none). */
const char *m40llm_last_error(void);
/* Short fixed name of a status code ("ok", "format error", ...). */
const char *m40llm_status_str(int status);
/* Library version string. */
const char *m40llm_version(void);


/* ===================================================================== *
 * CUDA API (the GPU building blocks under the CUDA backend).
 *
 * All pointers named *_dev are device memory from m40llm_device_malloc.
 * Matrices are row-major. Calls are asynchronous and ordered on the
 * context's streams (a decode stream; GEMMs run on a prefill stream that is
 * ordered with it); m40llm_device_to_host_f32 and m40llm_synchronize wait,
 * and report errors of the kernels that ran before them. A library built
 * without CUDA returns M40LLM_ERR_NO_DEVICE from every call.
 * ===================================================================== */
typedef struct M40llmCudaContext M40llmCudaContext; /* device, streams, cuBLAS handle */
typedef struct M40llmKVCache M40llmKVCache;         /* per-layer f16 K/V of one sequence */

/* Opens GPU `device` (0-based): M40LLM_ERR_NO_DEVICE when there is none (or
 * the driver is too old), M40LLM_ERR_INVALID_ARG for an index out of range. */
int m40llm_create_context(int device, M40llmCudaContext **out);
void m40llm_destroy_context(M40llmCudaContext *ctx); /* NULL is fine */
/* Waits for all work of the context; returns the first error of a kernel. */
int m40llm_synchronize(M40llmCudaContext *ctx);

int m40llm_device_malloc(M40llmCudaContext *ctx, size_t bytes, void **out_dev);
int m40llm_device_free(M40llmCudaContext *ctx, void *p_dev); /* NULL is fine */
/* Copies n f16 values (IEEE half bit patterns) from host to device. */
int m40llm_host_to_device_f16(M40llmCudaContext *ctx, void *dst_dev, const uint16_t *src, size_t n);
/* Copies n floats from device to host; waits for them. */
int m40llm_device_to_host_f32(M40llmCudaContext *ctx, float *dst, const float *src_dev, size_t n);

/* c[m][n] = a[m][k] . b[k][n]: a, b f16 storage, products accumulated in FP32
 * (cuBLAS GemmEx, compute type 32F); c f32. */
int m40llm_gemm_f16_storage_f32_compute(M40llmCudaContext *ctx, const void *a_dev,
                                        const void *b_dev, float *c_dev, int m, int n, int k);

/* KV cache of one sequence: n_layer layers of n_kv_head x head_dim keys and
 * values, f16, up to max_tokens positions (paged, 64 positions a page). */
int m40llm_alloc_kvcache(M40llmCudaContext *ctx, int n_layer, int n_kv_head, int head_dim,
                         int max_tokens, M40llmKVCache **out);
void m40llm_free_kvcache(M40llmCudaContext *ctx, M40llmKVCache *kv); /* NULL is fine */
/* Appends one position to `layer`: k_dev, v_dev = f32 [n_kv_head * head_dim]
 * (already rotated). M40LLM_ERR_CONTEXT_FULL when max_tokens are stored. */
int m40llm_kv_append_token(M40llmCudaContext *ctx, M40llmKVCache *kv, int layer,
                           const float *k_dev, const float *v_dev);
/* Positions stored in `layer` (-1 for a bad layer). */
int m40llm_kv_length(const M40llmKVCache *kv, int layer);
/* Attention of the newest query over all stored positions of `layer`:
 * q_dev f32 [n_head * head_dim], query head h reads KV head h / (n_head /
 * n_kv_head) (GQA), scores scaled by 1/sqrt(head_dim), softmax, weighted
 * sum of V -> out_dev f32 [n_head * head_dim]. */
int m40llm_attention_last_token(M40llmCudaContext *ctx, const M40llmKVCache *kv, int layer,
                                const float *q_dev, int n_head, float *out_dev);
/* out[i][:] = x[i] / sqrt(mean(x[i]^2) + eps) * gamma for n rows of dim:
 * x_dev f16 [n][dim], gamma_dev f32 [dim], out_dev f32 [n][dim]. */
int m40llm_rmsnorm_f16_f32gamma(M40llmCudaContext *ctx, const void *x_dev, const float *gamma_dev,
                                float *out_dev, int n, int dim, float eps);
/* SwiGLU feed-forward on n rows: out = W_down (silu(W_gate x) * (W_up x)).
 * x_dev f32 [n][dim]; w_gate, w_up f16 [ff][dim]; w_down f16 [dim][ff];
 * out_dev f32 [n][dim]; dim and ff multiples of 32. FP32 accumulation. */
int m40llm_mlp_swiglu_f32_f16w(M40llmCudaContext *ctx, const float *x_dev, const void *w_gate_dev,
                               const void *w_up_dev, const void *w_down_dev, float *out_dev, int n,
                               int dim, int ff);

/* ---- GPU inventory (`m40-llm info`) ---- */
typedef struct m40llm_gpu_info {
    char name[256];
    int cc_major, cc_minor;    /* compute capability */
    int sm_count;
    uint64_t mem_total;        /* bytes */
    uint64_t mem_free;         /* bytes */
    int have_nvml;             /* 1 when the fields below come from NVML */
    int temperature_c;         /* -1 if unknown */
    int sm_clock_mhz, mem_clock_mhz;         /* current; -1 if unknown */
    int sm_clock_max_mhz, mem_clock_max_mhz; /* -1 if unknown */
    char nvml_error[128];      /* why NVML data is absent */
} m40llm_gpu_info;

/* Number of usable GPUs (0 when none or the driver is missing/too old). */
int m40llm_gpu_count(int *count);
int m40llm_gpu_query(int device, m40llm_gpu_info *out);
/* Device-to-device copy bandwidth in GB/s (bytes read + written / time). */
int m40llm_gpu_copy_bandwidth(int device, double *gbps);

#ifdef __cplusplus
}
#endif
#endif
