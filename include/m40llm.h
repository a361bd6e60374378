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
    M40LLM_ERR_BUSY = -14, /* a queue or pool is full: try again later */
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
int m40llm_kv_append_token(M40llmCudaContext *ctx, M40llmKVCache *kv, int layer, const float *k_dev,
                           const float *v_dev);
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
    int cc_major, cc_minor; /* compute capability */
    int sm_count;
    uint64_t mem_total;                      /* bytes */
    uint64_t mem_free;                       /* bytes */
    int have_nvml;                           /* 1 when the fields below come from NVML */
    int temperature_c;                       /* -1 if unknown */
    int sm_clock_mhz, mem_clock_mhz;         /* current; -1 if unknown */
    int sm_clock_max_mhz, mem_clock_max_mhz; /* -1 if unknown */
    int power_mw;                            /* current power draw in milliwatts; -1 if unknown */
    char nvml_error[128];                    /* why NVML data is absent */
} m40llm_gpu_info;

/* Number of usable GPUs (0 when none or the driver is missing/too old). */
int m40llm_gpu_count(int *count);
int m40llm_gpu_query(int device, m40llm_gpu_info *out);
/* Device-to-device copy bandwidth in GB/s (bytes read + written / time). */
int m40llm_gpu_copy_bandwidth(int device, double *gbps);

/* ===================================================================== *
 * Engine API: a model, an engine serving it, requests.
 *
 * An engine owns a backend (GPU or CPU), a paged KV cache and one scheduler
 * thread. Requests are submitted from any thread; each step the scheduler
 * runs one batched forward holding one decode token of every running
 * request plus chunks of waiting prompts (continuous batching with chunked
 * prefill). Prompts that share a prefix with earlier ones reuse its cached
 * KV blocks. Output reaches the caller through a callback (called on the
 * engine thread: it must be quick and must not call back into the engine,
 * except m40llm_request_cancel) and/or by polling the request.
 * ===================================================================== */
typedef struct m40llm_model m40llm_model;     /* weights, tokenizer, chat template */
typedef struct m40llm_engine m40llm_engine;   /* backend + KV pool + scheduler thread */
typedef struct m40llm_request m40llm_request; /* one generation */

/* Loads a GGUF file: weights (memory-mapped), tokenizer, chat template. */
int m40llm_model_load(const char *path, m40llm_model **out);
void m40llm_model_free(m40llm_model *m); /* NULL is fine; after every engine over it */

typedef struct m40llm_model_info {
    const char *name;          /* general.name, or the file name */
    const char *path;          /* the file loaded */
    const char *arch;          /* general.architecture */
    const char *quant;         /* the main weight type, e.g. "Q4_K_M" */
    const char *chat_template; /* the model's template source; NULL when it has none */
    uint64_t n_params;         /* parameters */
    uint64_t file_bytes;       /* size of the GGUF file */
    uint64_t weight_bytes;     /* bytes of the weight tensors */
    int n_ctx_train;           /* trained context length */
    int n_vocab, n_embd, n_layer, n_head, n_head_kv;
    /* mixture of experts (n_expert 0: a dense model, the active figures are the totals) */
    int n_expert, n_expert_used;  /* experts per MoE layer, experts a token is routed to */
    uint64_t n_params_active;     /* parameters one token uses */
    uint64_t active_weight_bytes; /* weight bytes less the experts a token is not routed to
                                   * (the whole embedding table counted) */
    uint64_t expert_bytes;        /* bytes of all expert tensors */
} m40llm_model_info;
/* Strings stay valid as long as the model. */
void m40llm_model_get_info(const m40llm_model *m, m40llm_model_info *out);
/* Chats with this template (Jinja source, as tokenizer.chat_template holds)
 * instead of the model's own. A template the engine cannot run, or that
 * raises on one user message, is refused (M40LLM_ERR_UNSUPPORTED or
 * M40LLM_ERR_INVALID_ARG, the model unchanged). Set it before any engine or
 * thread uses the model: the chat_template string an earlier
 * m40llm_model_get_info gave is freed (call it again). */
int m40llm_model_set_chat_template(m40llm_model *m, const char *source);

/* Tokenizes text (add_special: BOS etc. as the model wants; parse_special:
 * control-token texts in `text` become their ids). *ids is malloc'd. */
int m40llm_tokenize(const m40llm_model *m, const char *text, size_t len, int add_special,
                    int parse_special, int32_t **ids, size_t *n);
/* Text of ids (special: control tokens' text included). *text is malloc'd,
 * NUL-terminated, valid UTF-8 (broken sequences replaced). */
int m40llm_detokenize(const m40llm_model *m, const int32_t *ids, size_t n, int special, char **text,
                      size_t *len);
/* Prompt ids for an OpenAI-style messages array given as JSON text
 * ([{"role":"system"|"user"|"assistant","content":"..."}...]), rendered
 * with the model's chat template (ChatML when it cannot be used) and the
 * generation prompt; message text never becomes control tokens. n_ctx > 0
 * limits the length (M40LLM_ERR_CONTEXT_FULL naming both lengths).
 * M40LLM_ERR_TYPE / INVALID_ARG name the offending message. */
int m40llm_chat_tokens(const m40llm_model *m, const char *messages_json, size_t len, int n_ctx,
                       int32_t **ids, size_t *n);

typedef enum m40llm_kv_type { M40LLM_KV_F16 = 0, M40LLM_KV_F32 = 1 } m40llm_kv_type;

typedef struct m40llm_engine_params {
    const char *device;     /* "auto" (NULL), "cpu", "cuda", "cuda:N" */
    int n_threads;          /* CPU backend threads; 0: all cores */
    int n_ctx;              /* positions per sequence; 0: min(4096, trained) */
    int max_seqs;           /* sequences running at once; 0: 128 */
    int max_batch_tokens;   /* entries per forward step; 0: max(512, max_seqs) */
    int max_queue;          /* requests waiting; 0: 1024. Beyond: M40LLM_ERR_BUSY */
    m40llm_kv_type kv_type; /* default F16 */
    int kv_block;           /* positions per KV block; 0: the backend's default */
    uint64_t kv_bytes;      /* KV pool size; 0: kv_fraction */
    double kv_fraction;     /* GPU: fraction of the memory left after the weights (and,
                             * on tensor-core cards, the GEMM weight cache: backend.h);
                             * 0: 0.9. CPU without kv_bytes: room for every sequence */
    int no_prefix_cache;    /* 1: do not reuse KV blocks across requests */
    /* several GPUs (device auto or cuda): the layers split over these cards */
    const char *gpus;         /* "0,1" or "all"; NULL: the one card of device */
    const char *split;        /* "layer" (NULL); "row" is not implemented yet */
    const char *tensor_split; /* "3,1": each card's share of the layers; NULL: free memory */
} m40llm_engine_params;
void m40llm_engine_default_params(m40llm_engine_params *p);

/* Creates the backend (fallback to the CPU only for device "auto") and starts
 * the scheduler thread. The model must outlive the engine. */
int m40llm_engine_create(m40llm_model *m, const m40llm_engine_params *p, m40llm_engine **out);
/* Cancels whatever still runs, stops the thread, frees the backend. Requests
 * not yet freed stay valid (finished, reason CANCELLED) until freed. */
void m40llm_engine_free(m40llm_engine *e); /* NULL is fine */

/* One GPU's part of a model (a layer split has one per card). */
#define M40LLM_MAX_CARDS 16
typedef struct m40llm_card_share {
    int device;                 /* GPU index */
    int layer_begin, layer_end; /* its layers: [begin, end) */
    uint64_t weight_bytes;      /* their weights (and the embedding / head where it holds them) */
    uint64_t mem_used;          /* bytes it holds: weights, KV blocks, buffers */
} m40llm_card_share;

typedef struct m40llm_engine_info {
    const char *backend; /* "cpu" or "cuda" */
    int device;          /* GPU index, -1 on the CPU */
    int n_ctx, max_seqs, max_batch_tokens, max_queue;
    int kv_block, kv_blocks_total;
    m40llm_kv_type kv_type;
    uint64_t kv_pool_bytes; /* bytes the KV pool may use */
    uint64_t mem_used;      /* bytes the backend holds (weights, KV, buffers) */
    int n_cards;            /* GPUs the model is on (0: the CPU) */
    m40llm_card_share cards[M40LLM_MAX_CARDS];
} m40llm_engine_info;
void m40llm_engine_get_info(const m40llm_engine *e, m40llm_engine_info *out);

typedef struct m40llm_engine_stats {
    int running, waiting;      /* requests */
    int kv_blocks_used;        /* held by running requests */
    int kv_blocks_cached;      /* unreferenced, kept for prefix reuse (evictable) */
    int kv_blocks_free;        /* never used or evicted */
    uint64_t prefix_queries;   /* prompt tokens looked up in the prefix cache */
    uint64_t prefix_hits;      /* of them, found */
    uint64_t prompt_tokens;    /* prompt tokens of finished + running requests */
    uint64_t generated_tokens; /* tokens generated */
    uint64_t preemptions;      /* sequences preempted (blocks freed, recomputed later) */
    uint64_t steps;            /* forward steps run */
    uint64_t finished[6];      /* requests finished, by m40llm_finish_reason */
} m40llm_engine_stats;
void m40llm_engine_get_stats(m40llm_engine *e, m40llm_engine_stats *out);
/* Forgets every cached prefix (before the next request is scheduled);
 * blocks in use stay with their requests. */
void m40llm_engine_clear_prefix_cache(m40llm_engine *e);

typedef enum m40llm_finish_reason {
    M40LLM_FINISH_NONE = 0,  /* still running */
    M40LLM_FINISH_STOP,      /* an end-of-generation token or a stop string */
    M40LLM_FINISH_LENGTH,    /* max_tokens reached */
    M40LLM_FINISH_CONTEXT,   /* the sequence filled its context (OpenAI: "length") */
    M40LLM_FINISH_CANCELLED, /* cancelled by the caller, or the engine shut down */
    M40LLM_FINISH_ERROR,     /* the backend failed (m40llm_request_result.error) */
} m40llm_finish_reason;
/* "stop", "length" (also for CONTEXT), "cancelled", "error", "" */
const char *m40llm_finish_reason_str(m40llm_finish_reason r);

#define M40LLM_MAX_LOGPROBS 20

typedef struct m40llm_token_logprob {
    int32_t token;
    float logprob; /* natural log of the model's probability (temperature 1, no filters) */
} m40llm_token_logprob;

/* One event of a request, on the engine thread. */
typedef struct m40llm_event {
    const char *text; /* new text (whole UTF-8 characters, never a stop string
                       * or a held prefix of one); may be "" */
    size_t text_len;
    int32_t token;                   /* the token generated (-1 on the final event) */
    m40llm_token_logprob chosen;     /* when logprobs were asked */
    const m40llm_token_logprob *top; /* [n_top] most likely, best first */
    int n_top;
    m40llm_finish_reason finish; /* != NONE: the last event */
} m40llm_event;
/* Return 0 to cancel the request (e.g. the client went away). */
typedef int (*m40llm_event_fn)(void *user, const m40llm_event *ev);

typedef struct m40llm_sampling {
    float temperature;       /* <= 0: greedy. default 0.8 */
    int top_k;               /* <= 0: off. default 40 */
    float top_p;             /* >= 1: off. default 0.95 */
    float min_p;             /* <= 0: off. default 0.05 */
    float repeat_penalty;    /* 1: off (default) */
    float presence_penalty;  /* 0: off */
    float frequency_penalty; /* 0: off */
    int penalty_last_n;      /* window; -1: whole history. default 64 */
    uint64_t seed;           /* same seed, same prompt: same tokens */
} m40llm_sampling;

#define M40LLM_MAX_LOGIT_BIAS 1024
typedef struct m40llm_logit_bias {
    int32_t token;
    float bias; /* -100..100 */
} m40llm_logit_bias;

typedef struct m40llm_request_params {
    const int32_t *prompt; /* [n_prompt] ids (copied); at least one */
    size_t n_prompt;
    m40llm_sampling sampling;
    int max_tokens;           /* <= 0: until stop or a full context */
    const char *const *stops; /* [n_stops] stop strings (copied) */
    int n_stops;
    int logprobs;             /* 0: none; 1: the chosen token's; */
    int top_logprobs;         /* 0..M40LLM_MAX_LOGPROBS most likely per token */
    int special;              /* render control tokens' text in the output */
    int ignore_eos;           /* go on past end-of-generation tokens (benchmarks) */
    m40llm_event_fn on_event; /* may be NULL (poll instead) */
    void *user;
    int format; /* M40LLM_FORMAT_TEXT (0), or M40LLM_FORMAT_JSON: the answer is one JSON
                 * object (tokens that cannot continue one are never sampled; it ends
                 * when the object closes) */
    const m40llm_logit_bias *logit_bias; /* [n_logit_bias] added to those tokens' logits
                                          * before sampling (copied); -100 bans, +100
                                          * all but forces (OpenAI's logit_bias) */
    int n_logit_bias;                    /* 0..M40LLM_MAX_LOGIT_BIAS */
    const char *json_schema;             /* with FORMAT_JSON: the answer is an instance of this JSON
                                          * schema (its text; compiled at submit, a schema it cannot
                                          * enforce refused there); NULL: any object */
} m40llm_request_params;
#define M40LLM_FORMAT_TEXT 0
#define M40LLM_FORMAT_JSON 1
void m40llm_request_default_params(m40llm_request_params *p);

/* Queues a request. Errors at once: M40LLM_ERR_INVALID_ARG (bad ids or
 * params), M40LLM_ERR_CONTEXT_FULL (prompt longer than n_ctx, both lengths
 * named), M40LLM_ERR_BUSY (queue full). *out is freed with
 * m40llm_request_free. */
int m40llm_submit(m40llm_engine *e, const m40llm_request_params *p, m40llm_request **out);
/* Queues n requests at once: the engine takes them all in the same step (a
 * batch that starts together). All or none: on an error no request is
 * queued and every out[i] is NULL. */
int m40llm_submit_many(m40llm_engine *e, const m40llm_request_params *ps, int n,
                       m40llm_request **out);
/* Asks the engine to stop the request; its blocks are freed at the next step
 * and it finishes with M40LLM_FINISH_CANCELLED (the final event is sent).
 * Safe from any thread, including inside the event callback. */
void m40llm_request_cancel(m40llm_request *r);
/* Waits until the request finished, at most timeout_ms (< 0: no limit).
 * Returns 1 when finished, 0 on timeout. */
int m40llm_request_wait(m40llm_request *r, int timeout_ms);
int m40llm_request_finished(m40llm_request *r);

typedef struct m40llm_request_result {
    m40llm_finish_reason finish;
    int n_prompt;      /* prompt tokens */
    int n_cached;      /* of them, reused from the prefix cache (first admission) */
    int n_generated;   /* tokens generated (an end-of-generation token not counted) */
    int stop_string;   /* FINISH_STOP by a stop string (else an end-of-generation token) */
    int n_preempted;   /* times preempted and recomputed */
    double queue_s;    /* submit -> first scheduled */
    double ttft_s;     /* submit -> first token */
    double prompt_s;   /* first scheduled -> first token */
    double gen_s;      /* first token -> finish */
    double total_s;    /* submit -> finish */
    const char *error; /* FINISH_ERROR: what failed */
} m40llm_request_result;
/* Counts and timings so far (final once finished). */
void m40llm_request_get_result(m40llm_request *r, m40llm_request_result *out);
/* Text generated so far (copied into a malloc'd NUL-terminated string). */
char *m40llm_request_text(m40llm_request *r, size_t *len);
/* Cancels if still running, then releases the caller's reference: no more
 * events are delivered once it returns. NULL is fine. */
void m40llm_request_free(m40llm_request *r);

#ifdef __cplusplus
}
#endif
#endif
