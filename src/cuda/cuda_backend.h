/* The CUDA backend's state (backend_cuda.c, backend_cuda_fwd.c). */
#ifndef M40_CUDA_BACKEND_H
#define M40_CUDA_BACKEND_H

#include <cuda_runtime_api.h>

#include "backend.h"
#include "cuda_internal.h"
#include "m40llm.h"

/* One layer on the device: its weights, the vectors of its variants
 * (NULL where the model has none; norm gains with the model's offset
 * added) and its RoPE and attention settings. */
typedef struct cuda_layer {
    gpu_matrix wqkv;       /* [q | k | v] rows when the three share a type */
    gpu_matrix wq, wk, wv; /* otherwise separate */
    bool qkv_fused;
    /* the fused GEMV_QKV epilogue serves the layer (no bias, no q/k norm,
     * adjacent-pair RoPE); else a product into qkv, then launch_rope_store */
    bool qkv_epilogue;
    gpu_matrix wo, w_gate, w_up, w_down;
    /* mixture-of-experts FFN (moe; w_gate/w_up/w_down unused): the router
     * [n_expert][n_embd] and each expert tensor as its n_expert matrices
     * stacked by rows (expert e's row r is row e * rows + r) */
    bool moe;
    gpu_matrix router, gate_exps, up_exps, down_exps;
    float *attn_norm, *ffn_norm;           /* [n_embd] */
    float *bqkv;                           /* [nq + 2 nkv] q | k | v biases */
    float *bo;                             /* [n_embd] output bias */
    float *q_norm, *k_norm;                /* [head_dim] per-head gains */
    float *post_attn_norm, *post_ffn_norm; /* [n_embd] */
    rope_cfg rope;                         /* this layer's RoPE (base, scale, factors, YaRN) */
    attn_mods att;                         /* scale, soft-cap, window */
} cuda_layer;

#define CUDA_GRAPH_CACHE 24

typedef struct cuda_graph_entry {
    int n, n_out, argmax; /* shape key of a decode step */
    int att_max_pos;      /* attention splits launched, as their last position */
    cudaGraphExec_t exec;
} cuda_graph_entry;

typedef struct cuda_backend {
    backend base;
    M40llmCudaContext *ctx; /* device, streams, cuBLAS */
    int device;
    cudaStream_t st; /* the context's decode stream */
    void *cublas;
    cuda_layer *layers;          /* [n_layer]; a stage fills only its own */
    int l0, l1;                  /* the layers it runs: [l0, l1) (all, or a stage's) */
    bool first, last;            /* it embeds the tokens / has the output head */
    gpu_matrix tok_embd, output; /* output aliases tok_embd when tied */
    float *output_norm;          /* [n_embd] */
    float *rope_freqs;           /* [n_rot / 2] frequency divisors, or NULL */

    void **allocs; /* every device allocation, freed by destroy */
    int n_allocs, cap_allocs;
    uint64_t mem; /* bytes allocated on the device */

    /* KV cache: per layer K and V of a pool of n_pages pages; sequence s
     * reaches its positions through row s of the page table (fixed layout:
     * pages s * pages_per_seq ..; paged: set by seq_set_blocks) */
    uint8_t *kv;           /* [n_layer][K, V][n_pages][n_kv][page][hd] */
    size_t kv_layer_bytes; /* bytes of one layer's K (= its V) */
    int32_t *page_table;   /* device [n_seq_max][pages_per_seq] */
    int32_t *h_table;      /* host copy of page_table (paged) */
    int pages_per_seq;     /* ceil(n_ctx / page) */
    int n_pages;           /* pages in the pool */
    int page_shift;        /* log2 of the positions per page */
    int *seq_pages;        /* host [n_seq_max] pages in each sequence's table */
    int *seq_len;          /* host [n_seq_max] */
    attn_plan plan;        /* prefill batches: few long splits */
    attn_plan plan_dec;    /* decode (<= 8 entries): many 128-position splits */
    attn_plan plan_dec1;   /* decode while every entry is under 32 positions: one split */

    /* activations, sized for n_batch_max entries */
    int nq, nkv;         /* n_head * head_dim, n_head_kv * head_dim */
    int act_w;           /* max(n_embd, n_ff, nq) */
    float *x;            /* [B][n_embd] residual stream */
    float *xn;           /* [B][act_w] normalized / f32 GEMM operand */
    uint16_t *a16;       /* [B][act_w] f16 GEMM operand */
    float *q;            /* [B][nq] */
    float *att;          /* [B][nq] */
    float *h;            /* [B][n_ff] */
    float *gu;           /* [B][2 n_ff] gate | up (GEMM path) */
    float *qkv;          /* [B][nq + 2 nkv] QKV product before launch_rope_store */
    float *y;            /* [B][n_embd] a block output before its bias / post-norm */
    float *xo;           /* [B][n_embd] rows that want logits */
    float *logits;       /* [B][n_vocab] */
    float *partial;      /* attention split partials */
    unsigned *att_count; /* attention split counters (zero between launches) */
    void *wscratch;      /* dequantized weights for the GEMM path */
    size_t wscratch_bytes;
    size_t gemm_cache_bytes; /* the matrices' dense copies (gpu_matrix.dense) */
    /* mixture of experts, sized for B entries x k slots (n_expert 0: none) */
    float *moe_logits;   /* [B][n_expert] router logits */
    int32_t *moe_ids;    /* [B][k] routed experts */
    float *moe_w;        /* [B][k] their weights */
    int32_t *moe_order;  /* [B k] pairs grouped by expert */
    moe_item *moe_items; /* [moe_max_items(B k, n_expert, 8)] */
    int32_t *moe_nitems; /* [1] items of the step */
    float *moe_g;        /* [B k][n_ff_exp] gate (gate and up of different types) */
    float *moe_h;        /* [B k][n_ff_exp] act(gate) * up */
    float *moe_d;        /* [B k][n_embd] expert outputs */
    int32_t *d_in;       /* device [4][B]: token, seq, pos, out index */
    int32_t *d_ids;      /* device [B] argmax */
    int32_t *h_in;       /* pinned host [4][B] */
    int32_t *h_ids;      /* pinned host [B] */
    float *h_logits;     /* pinned host [min(B, M40_GEMV_MAX_B)][n_vocab]: logits of a batch part
                          * that asks for at most that many rows */
    float *h_x;          /* pinned host [B][n_embd]: a stage's stream in (not first) and out
                          * (not last), copied inside the step (graphs too) */
    int gemm_f16;        /* prefill GEMM operands in f16 (tensor cores) or f32 */
    int att_max_pos;     /* of the batch part being run: bounds the attention grid */
    int use_graphs;
    int profile;       /* backend_params.profile: time each kernel group (no graphs) */
    int gemv_kernel;   /* backend_params.gemv_kernel (GEMV_KERNEL_*) */
    double prof_ns[8]; /* per group, see backend_cuda_fwd.c */
    long prof_calls[8];
    double prof_t0; /* scratch of the PROF macro */
    int prof_rc;
    cuda_graph_entry graphs[CUDA_GRAPH_CACHE];
    int n_graphs;
} cuda_backend;

/* api.c: the decode stream and cuBLAS handle of a context */
cudaStream_t m40llm_context_stream(M40llmCudaContext *c);
void *m40llm_context_cublas(M40llmCudaContext *c); /* NULL: no cuBLAS */
/* Why cuBLAS could not be loaded, "" when it was (or was not tried yet). */
const char *m40llm_cublas_unavailable(void);

/* Prints the per-group kernel times gathered with M40LLM_PROFILE=1. */
void cuda_profile_report(const cuda_backend *cb);

/* backend_cuda_fwd.c: one batch part (no position revisited), inputs already in h_in */
int cuda_forward_part(cuda_backend *cb, const backend_entry *e, int n, float *logits, int32_t *ids);
/* the same for a stage of a layer split: x_in (not first) and x_out (not
 * last) are [n][n_embd] host rows */
int cuda_forward_stage_part(cuda_backend *cb, const backend_entry *e, int n, const float *x_in,
                            float *x_out, float *logits, int32_t *ids);

#endif
