/* Internal interface of the CUDA module: error checking, the device weight
 * layout, the KV-cache view and one launcher per kernel. The launchers own
 * the grid math and check the launch; they are C-callable so the backend,
 * the public m40llm_* API and the GPU tests share them. */
#ifndef M40_CUDA_INTERNAL_H
#define M40_CUDA_INTERNAL_H

#include <stddef.h>
#include <stdint.h>

#include <cuda_runtime_api.h>

#ifdef __cplusplus
extern "C" {
#endif

#include "err.h" /* C declarations, also for the .cu files */

/* Turns a CUDA error into an m40llm status with "file:line: call: reason".
 * Allocation failures map to M40LLM_ERR_OOM, the rest to M40LLM_ERR_CUDA. */
int cuda_fail(cudaError_t e, const char *what, const char *file, int line);

#define CUDA_TRY(call)                                                                             \
    do {                                                                                           \
        cudaError_t e_ = (call);                                                                   \
        if (e_ != cudaSuccess) return cuda_fail(e_, #call, __FILE__, __LINE__);                    \
    } while (0)

/* After a <<<>>> launch: a bad configuration surfaces here as an error code. */
#define CUDA_LAUNCHED(name)                                                                        \
    do {                                                                                           \
        cudaError_t e_ = cudaGetLastError();                                                       \
        if (e_ != cudaSuccess) return cuda_fail(e_, "launch of " name, __FILE__, __LINE__);        \
    } while (0)

/* ---- weights on the device ----
 * A matrix of `rows` output rows with `cols` inputs each (GGUF ne = {cols, rows}),
 * repacked at load time so that every 32-element sub-block starts on a
 * 16-byte boundary (128-bit loads):
 *   F32/F16/BF16: q = rows x cols elements, unchanged
 *   Q4_0/Q4_1/Q5_0/Q5_1: q = [rows][cols/32][16] nibbles, s = per-block d
 *     (u16) or d|m<<16 (u32), h = Q5 high bits (u32)
 *   Q8_0: q = [rows][cols/32][32] int8, s = d (u16)
 *   Q4_K: q = [rows][cols/32][16] nibbles in Q4_0's order (element l low,
 *     l + 16 high), s = per-sub-block scale | min << 8 (u16, 6 bits each),
 *     h = per-256-block d | dmin << 16 (u32): 148 bytes per 256 weights
 *     against GGUF's 144, and the nibble types' dot
 *   Q6_K: q = [rows][cols/32][16], h = [rows][cols/32][8]: a sub-block's
 *     32 six-bit values in six words (q6_top), s = its two int8 scales | d
 *     << 16 (u32): 224 bytes per 256 weights against 210
 *   other K-quants: q = [rows][cols/256][GGUF block padded to a multiple of
 *     16 B] (Q2_K 84->96, Q3_K 110->112; Q5_K unchanged). */
typedef struct gpu_matrix {
    int type;     /* quant_type */
    int64_t rows; /* output rows */
    int64_t cols; /* inputs per row, a multiple of 32 */
    int64_t nsb;  /* 32-element sub-blocks per row (cols / 32) */
    size_t q_row; /* bytes of one row in q */
    uint8_t *q;   /* [rows][q_row] */
    uint8_t *s;   /* [rows][nsb] scales, or NULL */
    uint8_t *h;   /* [rows][nsb] Q5 high bits, or NULL */
    void *dense;  /* [rows][cols] dequantized once in the GEMM operand type (f16 or f32), for
                   * the steps of more than 8 entries (backend_params.gemm_cache), or NULL */
} gpu_matrix;

/* Layout sizes for a type; 0 = type unsupported or cols not a multiple of
 * the block size. Sets m->type/rows/cols/nsb/q_row and the three byte counts. */
size_t gpu_matrix_layout(gpu_matrix *m, int type, int64_t rows, int64_t cols, size_t *q_bytes,
                         size_t *s_bytes, size_t *h_bytes);
/* Places q/s/h inside one allocation of gpu_matrix_layout() bytes. */
void gpu_matrix_place(gpu_matrix *m, void *base, size_t q_bytes, size_t s_bytes);

/* Repacks `n` raw GGUF rows (device copy at src) into rows r0.. of m. */
int launch_repack(const gpu_matrix *m, int64_t r0, const void *src, int64_t n, cudaStream_t st);
/* dst[r][c] = W[r][c] as f32 (dst_f16 = 0) or f16 bits (dst_f16 = 1). */
int launch_dequant(const gpu_matrix *m, void *dst, int dst_f16, cudaStream_t st);
/* dst[i][:] = row ids[i] of m as f32 (embedding lookup). ids in device memory. */
int launch_get_rows(const gpu_matrix *m, const int32_t *ids, int n, float *dst, cudaStream_t st);

/* ---- KV cache view for one layer ----
 * Paged: page p holds PAGE = 1 << page_shift positions of every KV head,
 * [n_kv][PAGE][hd]; position pos of sequence seq lives in page
 * page_table[seq * pages_per_seq + pos / PAGE]. The kernels read the table
 * only for positions up to an entry's pos. The page size is a runtime
 * power of two (shifts and masks, as cheap as a constant); 64 is the
 * default until other sizes are measured on a GPU. */
#define M40_KV_PAGE_SHIFT 6
#define M40_KV_PAGE       (1 << M40_KV_PAGE_SHIFT)
#define M40_KV_PAGE_MIN   16 /* smallest page the backend accepts */
typedef struct kv_view {
    void *k, *v;               /* [n_pages][n_kv][PAGE][hd], f16 bits or f32 */
    const int32_t *page_table; /* [n_seq][pages_per_seq], device */
    int pages_per_seq;
    int n_kv, hd;
    int f16;        /* element type: 1 = f16, 0 = f32 */
    int page_shift; /* log2 of PAGE, positions per page */
} kv_view;

/* One layer's rotary embedding: pair i of the first n_rot dims of a head
 * turns by pos * scale * base^(-2i/n_rot) [/ factors[i]]; with YaRN the
 * angle mixes interpolated and extrapolated by pair (ramp from yarn_lo to
 * yarn_hi). cos/sin are multiplied by mscale (YaRN, LongRoPE) unless it is
 * 0 or 1. */
typedef struct rope_cfg {
    int n_head, n_kv, hd, n_rot;
    float base;           /* rope freq base of this layer */
    float scale;          /* linear position scale (1 = none) */
    int neox;             /* pairs (i, i + n_rot/2) instead of (2i, 2i+1) */
    const float *factors; /* [n_rot/2] frequency divisors (llama3, longrope), device, or NULL */
    int yarn;             /* YaRN: yarn_lo, yarn_hi, mscale apply */
    float yarn_lo, yarn_hi, mscale;
} rope_cfg;

/* Where q/k/v rows go after a QKV projection: q (roped) to q[b][n_head*hd],
 * k (roped) and v into the cache at (seq[b], pos[b]). Before the rotation,
 * optionally: a bias on the [q | k | v] row, an RMSNorm of each q and k
 * head (launch_rope_store only; the fused GEMV epilogue has neither). */
typedef struct qkv_out {
    kv_view kv;
    rope_cfg rope;
    const int32_t *seq, *pos; /* [nb], device */
    float *q;                 /* [nb][ldq] */
    int64_t ldq;
    const float *bias;            /* [n_head*hd + 2*n_kv*hd] q|k|v bias, device, or NULL */
    const float *q_norm, *k_norm; /* [hd] per-head RMSNorm gains, device, or NULL */
    float eps;                    /* their epsilon */
} qkv_out;

typedef enum gemv_mode {
    GEMV_STORE = 0,  /* y[b][r] = W x */
    GEMV_ADD = 1,    /* y[b][r] += W x (residual) */
    GEMV_SWIGLU = 2, /* y[b][r] = act(Wg x) * (Wu x), act SiLU or tanh GELU (gemv_args.act) */
    GEMV_QKV = 3,    /* rope + KV store epilogue (qkv_out) */
} gemv_mode;

typedef struct gemv_args {
    const gpu_matrix *w;  /* [rows][K] */
    const gpu_matrix *w2; /* up matrix for GEMV_SWIGLU (same type and shape as w) */
    const float *x;       /* [nb][ldx] */
    int64_t ldx;
    int nb;             /* 1..M40_GEMV_MAX_B */
    const float *gamma; /* fused RMSNorm of x with this gain [K], or NULL */
    float eps;          /* RMSNorm epsilon */
    float *y;           /* [nb][ldy] */
    int64_t ldy;
    int mode;               /* gemv_mode */
    int act;                /* GEMV_SWIGLU: 0 SiLU (SwiGLU), 1 tanh GELU (GeGLU) */
    const qkv_out *qkv;     /* GEMV_QKV */
    int64_t row0;           /* GEMV_QKV: index of w's row 0 within [q | k | v] rows */
    int kernel;             /* GEMV_KERNEL_* (AUTO: by shape, type and vector count) */
    int persist_max_blocks; /* caps the persistent kernel's grid (0: none), so that tests can
                             * give each warp many row groups */
} gemv_args;

#define M40_GEMV_MAX_B 8
/* Matrix-vector products for decode: each weight read once for all nb vectors. */
int launch_gemv(const gemv_args *a, cudaStream_t st);
/* The kernel launch_gemv uses (gemv_args.kernel, to compare them in tests
 * and the workbench). One vector: AUTO picks by shape and type; WARP the
 * warp kernel, STAGED the block-staged kernel (4 row streams per warp),
 * PERSIST the persistent kernel (types without a split dot, and wide x
 * outside a residual add, fall back to STAGED; ROWS4 as AUTO). 2..8
 * vectors: AUTO the row-parallel kernel (gemvr_impl.cuh; 4 row streams a
 * lane where its grid stays large, else 2) but for QKV, ROWS4 it with 4
 * always, WARP and PERSIST it with 2, STAGED the block-staged one for every
 * mode. The numbers are
 * those of backend_gemv_kernel_from_name (backend_params.gemv_kernel). */
enum {
    GEMV_KERNEL_AUTO = 0,
    GEMV_KERNEL_WARP = 1,
    GEMV_KERNEL_STAGED = 2,
    GEMV_KERNEL_PERSIST = 3,
    GEMV_KERNEL_ROWS4 = 4 /* 2..8 vectors: the row-parallel kernel with 4 row streams a lane */
};

/* ---- mixture of experts (moe.cu) ----
 * Per step: router logits of the normalized inputs (launch_moe_gemv over
 * the router as one matrix), launch_moe_route (top k per entry), then
 * launch_moe_group sorts the n x k (entry, slot) pairs by expert into work
 * items on the GPU, gate/up and down run as launch_moe_gemv over the items,
 * and launch_moe_combine adds each entry's weighted expert outputs. Pair p
 * is entry p / k, slot p % k. Nothing goes back to the host: a decode step
 * stays one CUDA graph. */
typedef struct moe_item {
    int32_t expert; /* matrix index in the stacked expert tensor */
    int32_t start;  /* its pairs: order[start .. start + n) */
    int32_t n;      /* 1..B */
} moe_item;

typedef struct moe_gemv_args {
    const gpu_matrix *w;  /* [n_matrices * rows][K]: matrices stacked by rows */
    const gpu_matrix *w2; /* GEMV_SWIGLU: up, same type and shape as w */
    int64_t rows;         /* rows of one matrix */
    const float *x;       /* pair p reads row p / xdiv (ldx floats apart) */
    int64_t ldx;
    int xdiv;
    const moe_item *items; /* device [max_items], count in *n_items; NULL: item i is pairs
                            * i*b .. of matrix 0 (n_pairs of them) */
    const int32_t *order;  /* device: the items' pair ids */
    const int32_t *n_items;
    int max_items; /* grid bound (launch_moe_group's) */
    int n_pairs;   /* items == NULL */
    int b;         /* pairs per item: 1 or 8 */
    float *y;      /* pair p writes row p (ldy floats apart) */
    int64_t ldy;
    int mode; /* GEMV_STORE or GEMV_SWIGLU */
    int act;  /* GEMV_SWIGLU: 0 SiLU, 1 tanh GELU */
} moe_gemv_args;

int launch_moe_gemv(const moe_gemv_args *a, cudaStream_t st);
/* Per entry: the k experts of largest logit (NaN after every number, the
 * lower id first among equals), weights softmax over all n_expert logits
 * or, norm, over the k chosen (in double, as the CPU's cpu_moe_route). */
int launch_moe_route(const float *logits, int64_t ld, int n, int n_expert, int k, int norm,
                     int32_t *ids, float *wts, cudaStream_t st);
/* Work items of at most b pairs of one expert, experts in increasing id,
 * pairs in increasing order within one: order [n_pairs], items
 * [moe_max_items()], *n_items. */
int launch_moe_group(const int32_t *ids, int n_pairs, int n_expert, int b, int32_t *order,
                     moe_item *items, int32_t *n_items, cudaStream_t st);
int moe_max_items(int n_pairs, int n_expert, int b);
/* out[i] (+)= sum over entry i's k slots, in increasing expert id, of
 * wts[p] * d[p] (d rows ldd apart); add 0 stores. */
int launch_moe_combine(const float *d, int64_t ldd, const int32_t *ids, const float *wts, int n,
                       int k, int dim, float *out, int64_t ldo, int add, cudaStream_t st);

/* out[i][:] = x[i] / sqrt(mean(x[i]^2) + eps) * gamma, for n rows of dim;
 * out32 and/or out16 (f16 bits) may be NULL. x16 (f16 input) replaces x when set. */
int launch_rmsnorm(const float *x, const uint16_t *x16, int64_t ldx, const float *gamma, float eps,
                   int n, int dim, float *out32, uint16_t *out16, int64_t ldo, cudaStream_t st);
/* qkv[b] = [q | k | v] rows of n entries (ld elements apart) -> (bias, q/k
 * norms,) roped q into o->q, k/v into the cache. */
int launch_rope_store(const float *qkv, int64_t ld, int n, const qkv_out *o, cudaStream_t st);
/* y[i][j] = act(g[i][j]) * u[i][j], act SiLU (act 0) or tanh GELU (act 1);
 * y32 or y16 output (the other NULL). */
int launch_swiglu(const float *g, const float *u, int64_t ldi, int n, int dim, int act, float *y32,
                  uint16_t *y16, int64_t ldo, cudaStream_t st);
/* x[i] += post(y[i] + bias): the residual add of a block part whose output
 * has a bias and/or its own RMSNorm (post: gain [dim], or NULL); y is
 * left holding y + bias. */
int launch_residual(float *x, int64_t ldx, float *y, int64_t ldy, const float *bias,
                    const float *post, float eps, int n, int dim, cudaStream_t st);
/* x[i][j] *= s (embedding scale). */
int launch_scale(float *x, int64_t ldx, int n, int dim, float s, cudaStream_t st);
/* x[i][j] = cap * tanh(x[i][j] / cap) (final logit soft-capping). */
int launch_softcap(float *x, int64_t ldx, int n, int dim, float cap, cudaStream_t st);
/* y16[i] = f16(x[i]) for rows of dim; ld in elements. */
int launch_to_f16(const float *x, int64_t ldx, int n, int dim, uint16_t *y, int64_t ldy,
                  cudaStream_t st);
/* dst[i][:] = src[idx[i]][:] */
int launch_gather_rows(const float *src, int64_t lds, const int32_t *idx, int n, int dim,
                       float *dst, int64_t ldd, cudaStream_t st);
/* ids[i] = argmax over logits[i][0..n_vocab) (lowest index on ties). */
int launch_argmax(const float *logits, int64_t ld, int n, int n_vocab, int32_t *ids,
                  cudaStream_t st);

/* ---- attention ----
 * Causal GQA attention of n query entries (q [n][n_head*hd]) over their
 * sequences' cache positions 0..pos[i]; the sequence is cut into splits of
 * `chunk` positions computed by separate blocks and merged (flash-decoding).
 * partial: attention_partial_floats() floats. out: [n][n_head*hd].
 * max_pos: the largest pos[i] (host-known; only the splits up to it are
 * launched), or -1 for all n_split (graph replays with changing positions). */
typedef struct attn_plan {
    int n_head, n_kv, hd;
    int chunk;   /* positions per split */
    int n_split; /* splits launched (covers n_ctx) */
    int threads; /* per block: 128, or 512 (decode) */
} attn_plan;
/* max_splits bounds the number of splits (chunk = threads / 4 positions,
 * one pass of the scores, doubled until it fits): ~256 for decode, ~32 for
 * prefill batches. threads: 128, or 512 for decode: 128-position splits in
 * one pass, so contexts under 128 need no merge of splits (H200, 7B Q4_0
 * tg128 513 -> 531 tok/s). */
int attention_plan(int n_head, int n_kv, int hd, int n_ctx, int max_splits, int threads,
                   attn_plan *p);
size_t attention_partial_floats(const attn_plan *p, int n);
/* counters: attention_counters() unsigned ints, zero before the first
 * launch; each launch leaves them zero again. */
size_t attention_counters(const attn_plan *p, int n);
/* A layer's attention variants: q.k scale, soft-capping of the scores
 * (softcap > 0: c * tanh(s / c)), sliding window (window > 0: keys
 * pos - window + 1 .. pos). */
typedef struct attn_mods {
    float scale;
    float softcap;
    int window;
} attn_mods;
int launch_attention(const attn_plan *p, const float *q, const kv_view *kv, const int32_t *seq,
                     const int32_t *pos, int n, const attn_mods *md, float *partial,
                     unsigned *counters, float *out, int max_pos, cudaStream_t st);

/* Fills n int32 with v0, v0+1, ... (identity page tables). */
int launch_iota(int32_t *dst, int n, int32_t v0, cudaStream_t st);

#ifdef __cplusplus
}
#endif
#endif
