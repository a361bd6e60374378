/* Internals of the CPU reference backend, shared by its files:
 * cpu_backend.c (create, forward driver), cpu_kv.c (the KV block pool and
 * block tables), cpu_matmul.c (weight products), cpu_attention.c (RoPE +
 * causal GQA attention), cpu_moe.c (mixture-of-experts FFN), cpu_kernels.c
 * (vector helpers). */
#ifndef M40_CPU_INTERNAL_H
#define M40_CPU_INTERNAL_H

#include <stdbool.h>
#include <stdint.h>
#include <string.h>

#include "backend.h"
#include "threadpool.h"

/* Weight rows dequantized together in one tile of a batched product: the
 * activations of one token are then reused from L1 for all rows of a tile. */
#define CPU_MM_TILE 8
/* Chunks per thread of a product's rows, claimed by whichever thread is
 * free: a descheduled thread (shared machine) holds up less of a token. */
#define CPU_MM_CHUNKS 8
/* Activation rows (tokens) a fused kernel takes per decoded weight block. */
#define CPU_QX 8
/* Elements per block of the fused kernels (and per activation sum). */
#define CPU_QBLK 32

/* A sequence's view of the KV pool: position pos lives in pool block
 * blocks[pos / kv_block], slot pos % kv_block. */
typedef struct cpu_seq {
    int len;         /* positions held */
    int n_blocks;    /* entries of blocks in use */
    int32_t *blocks; /* [blocks_per_seq] pool indices (a row of cpu_backend.tables) */
} cpu_seq;

/* A layer's vectors as floats, dequantized at create; NULL where the model
 * has no such tensor. */
typedef struct cpu_layer_vecs {
    float *attn_norm, *ffn_norm;           /* [n_embd] (+ norm_w_offset) */
    float *post_attn_norm, *post_ffn_norm; /* [n_embd] */
    float *q_norm, *k_norm;                /* [head_dim] */
    float *bq, *bk, *bv;                   /* [q_dim], [kv_dim], [kv_dim] */
    float *bo;                             /* [n_embd] */
    int rope_set;                          /* which table of cpu_backend.rope */
} cpu_layer_vecs;

typedef struct cpu_backend {
    backend base;
    threadpool *pool;
    int n_threads;
    int q_dim;          /* n_head * head_dim */
    int kv_dim;         /* n_head_kv * head_dim */
    int max_in;         /* longest weight row (elements) */
    int ffn_width;      /* widest FFN hidden layer: n_ff (dense), n_ff_exp (MoE) */
    size_t kv_elt;      /* 4 (F32) or 2 (F16) */
    float *vecs;        /* arena of the float vectors below and output_norm */
    cpu_layer_vecs *lv; /* [n_layer] */
    float *output_norm; /* [n_embd] */
    float *rope_freqs;  /* [n_rot / 2] frequency divisors, or NULL */
    int n_rope_sets;    /* distinct (base, scale, factors) of the layers */
    cpu_seq *seqs;      /* [n_seq_max] */
    /* KV pool: block b is [n_layer][K, V][kv_block][kv_dim] of float or
     * uint16 (F16), allocated when first written. The fixed layout is the
     * pool with the identity tables (sequence s: blocks s * bps ..). */
    int kv_block;       /* positions per block */
    int blocks_per_seq; /* ceil(n_ctx / kv_block): the longest table */
    int n_pool;         /* blocks in the pool */
    size_t block_bytes; /* K and V of one block, all layers */
    void **kv_pool;     /* [n_pool] NULL until first written */
    int32_t *tables;    /* [n_seq_max][blocks_per_seq] */
    /* activations for one forward call, [n_batch_max] rows each */
    float *x;    /* [n][n_embd] residual stream */
    float *xb;   /* [n][n_embd] normalised input of a sub-block */
    float *q;    /* [n][q_dim] */
    float *k;    /* [n][kv_dim] */
    float *v;    /* [n][kv_dim] */
    float *att;  /* [n][q_dim] attention output (heads concatenated) */
    float *hb;   /* [n][ffn_width] act(gate) * up */
    float *rope; /* [n_rope_sets][n][n_rot] (cos, sin) pairs per entry */
    /* mixture of experts (cpu_moe.c); NULL for a dense model */
    float *moe_logits;             /* [n][n_expert] router logits */
    struct cpu_moe_cand *moe_cand; /* [n_expert] routing scratch */
    int32_t *moe_ids;              /* [n][n_expert_used] each entry's experts */
    float *moe_w;                  /* [n][n_expert_used] their weights */
    int32_t *moe_count;            /* [n_expert + 1] pairs per expert, then their ends */
    int32_t *moe_order;            /* [n * n_expert_used] entry * k + slot, by expert */
    float *moe_x;                  /* [n][n_embd] inputs of one expert's entries, gathered */
    float *moe_y;                  /* [n][n_embd] that expert's outputs */
    float *moe_out;                /* [n][n_embd] weighted sum of each entry's experts */
    uint64_t *moe_hits;            /* [n_layer][n_expert] entries routed, since create */
    /* per thread */
    float *wbuf;   /* [n_threads][2 * CPU_MM_TILE][max_in] dequantized weight rows */
    float *xsum;   /* [n_batch_max][max_in / CPU_QBLK] block sums of a product's input */
    float *scores; /* [n_threads][n_ctx] attention weights */
    float *kvrow;  /* [n_threads][2][head_dim] F16 K/V rows converted to F32 */
    uint64_t scratch_bytes;
    uint64_t kv_bytes; /* KV memory allocated so far */
} cpu_backend;

/* ---- kernels (cpu_kernels.c); loops written for auto-vectorisation ---- */
float cpu_dot(const float *a, const float *b, int n);
/* y = x / sqrt(mean(x^2) + eps) * w */
void cpu_rmsnorm(float *y, const float *x, const float *w, int n, float eps);
float cpu_silu(float x);
/* GELU, tanh approximation (PyTorch's approximate="tanh") */
float cpu_gelu_tanh(float x);
/* out[t] = (q . k_t) * scale for n keys k_t = k + t * ks of hd floats. */
void cpu_attn_scores(const float *q, const float *k, size_t ks, int n, int hd, float scale,
                     float *out);
/* out[d] += p[t] * v_t[d] for n rows v_t = v + t * vs of hd floats, t in order. */
void cpu_attn_accum(float *out, const float *v, size_t vs, const float *p, int n, int hd);

/* F16 bits -> F32 without a call or table: vectorizable. */
static inline float cpu_f16_to_f32(uint16_t h) {
    union {
        uint32_t u;
        float f;
    } o;
    o.u = (uint32_t)(h & 0x7fffu) << 13;
    o.f *= 0x1.0p+112f; /* rebias the exponent; subnormal halves become normal floats */
    if (o.f >= 65536.0f) o.u |= 255u << 23; /* inf / nan */
    o.u |= (uint32_t)(h & 0x8000u) << 16;
    return o.f;
}

/* ---- fused dequantize + dot kernels (cpu_qdot.c, cpu_qdot_avx2.c) ---- */
/* out[j] = W . x[j] for nx (1..CPU_QX) activation rows of stride ldx, n a
 * multiple of CPU_QBLK (float types too); xs holds
 * their per-block sums (stride ldxs) for types that need them. A row's
 * result is the same whatever nx it was computed in. */
typedef void (*cpu_qdot_fn)(const uint8_t *w, const float *x, int ldx, const float *xs, int ldxs,
                            int nx, int n, float *out);
typedef enum cpu_isa { CPU_ISA_NONE, CPU_ISA_AVX2, CPU_ISA_AVX512 } cpu_isa;
/* Best kernel set this CPU runs (env M40LLM_CPU_ISA=none|avx2|avx512 caps it). */
cpu_isa cpu_isa_best(void);
/* The kernel for a weight type in a kernel set, or NULL (then rows are
 * dequantized and dotted with cpu_dot). The caller checks the CPU has isa. */
cpu_qdot_fn cpu_qdot_lookup_isa(int type, cpu_isa isa, bool *needs_xsum);
/* Same, for cpu_isa_best(). */
cpu_qdot_fn cpu_qdot_lookup(int type, bool *needs_xsum);
/* out[b] = sum of x[b*CPU_QBLK .. +CPU_QBLK), b < n / CPU_QBLK. */
void cpu_block_sums(const float *x, int n, float *out);

/* ---- mixture of experts (cpu_moe.c) ---- */
typedef struct cpu_moe_cand {
    float logit;
    int32_t id;
} cpu_moe_cand;
/* The k experts of n_expert logits, largest first, the lower index first
 * among equal logits (NaN after every number), and their softmax weights:
 * over all n_expert logits, or over the k (norm); a NaN logit weighs 0
 * either way (0 for all when every logit is NaN). scratch: [n_expert]. */
void cpu_moe_route(const float *logits, int n_expert, int k, bool norm, cpu_moe_cand *scratch,
                   int32_t *ids, float *w);
/* out[i] = the routed, weighted sum of the experts of layer il on x[i]
 * (rows of n_embd), for n entries. */
int cpu_moe_ffn(cpu_backend *cb, int il, const float *x, int n, float *out);

/* ---- products with weights (cpu_matmul.c) ---- */
typedef enum cpu_mm_epilogue {
    CPU_MM_STORE, /* y[i][r] = W[r] . x[i] */
    CPU_MM_ADD,   /* y[i][r] += W[r] . x[i] (residual) */
} cpu_mm_epilogue;

/* y rows of stride ldy, x rows of stride ldx, n tokens. */
int cpu_matmul(cpu_backend *cb, const model_tensor *w, const float *x, int ldx, int n, float *y,
               int ldy, cpu_mm_epilogue ep);
/* Q, K and V of n tokens in one parallel pass. */
int cpu_matmul_qkv(cpu_backend *cb, const model_layer *L, const float *x, int n);
/* hb[i][r] = act(gate[r] . x[i]) * (up[r] . x[i]), act from the model; x
 * rows of n_embd, hb rows of gate's ne[1] */
int cpu_matmul_ffn_in(cpu_backend *cb, const model_tensor *gate, const model_tensor *up,
                      const float *x, int n);

/* ---- KV pool (cpu_kv.c) ---- */
/* Sizes the pool from the params (writing back kv_block and n_kv_blocks)
 * and allocates seqs and the tables; no block is allocated yet. */
int cpu_kv_init(cpu_backend *cb);
void cpu_kv_free(cpu_backend *cb);
/* Allocates the blocks n entries will write, before anything is written. */
int cpu_kv_reserve(cpu_backend *cb, const backend_entry *e, int n);
int cpu_seq_set_blocks(backend *b, int seq, const int32_t *blocks, int n_blocks, int len);
int cpu_block_copy(backend *b, int src, int dst);
int cpu_seq_clear(backend *b, int seq);
int cpu_seq_capacity(const backend *b, int seq);

/* K (kv 0) or V (kv 1) rows of layer il in a sequence's block bi: kv_block
 * rows of kv_dim elements (float or uint16), from slot 0. */
static inline void *cpu_kv_rows(const cpu_backend *cb, const cpu_seq *s, int bi, int il, int kv) {
    const size_t rows = (size_t)cb->kv_block * (size_t)cb->kv_dim;
    return (char *)cb->kv_pool[s->blocks[bi]] + ((size_t)il * 2 + (size_t)kv) * rows * cb->kv_elt;
}

/* ---- attention (cpu_attention.c) ---- */
/* cos/sin of every entry's rotation angles, per RoPE set, once per forward
 * call. */
void cpu_rope_table(cpu_backend *cb, const backend_entry *e, int n);
/* Rotates q and k of n entries in place with layer il's table (adjacent
 * pairs or NeoX halves, as the model says). */
void cpu_rope(cpu_backend *cb, int n, int il);
/* Adds the Q/K/V biases and applies the per-head q/k norms of layer il,
 * where the model has them. */
void cpu_qkv_post(cpu_backend *cb, int n, int il);
/* Stores K/V of n entries of layer il into their sequences' caches. */
void cpu_kv_store(cpu_backend *cb, const backend_entry *e, int n, int il);
/* att[i] = causal GQA attention of entry i over 0..pos of its sequence
 * (pos-n_swa+1..pos on a sliding-window layer), scores scaled by
 * attn_scale and soft-capped where the model says. */
void cpu_attention(cpu_backend *cb, const backend_entry *e, int n, int il);

#endif
