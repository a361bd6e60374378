/* The one interface both backends (CPU reference, CUDA) implement.
 *
 * A forward call takes a batch of entries (sequence id, position, token):
 * any mix of prompt chunks and single decode tokens of several sequences.
 * Each entry writes its K/V into its sequence's cache at `pos` and attends
 * over positions 0..pos of that sequence (entries earlier in the same batch
 * included). Positions of a sequence must be filled in order: an entry's
 * pos must be <= the sequence's current length (pos < length overwrites
 * and truncates the sequence to pos). An entry that goes back to or before
 * an earlier entry's position of the same sequence in one batch sees the
 * cache as the entries before it left it (as if the batch were split there).
 * Logits depend only on the tokens and positions, not on how a sequence is
 * split into batches or mixed with others (the CPU backend's are identical
 * bit for bit).
 *
 * KV memory is a pool of blocks of kv_block positions (K and V of every
 * layer). In the fixed layout (the default) sequence s owns its own
 * ceil(n_ctx / kv_block) blocks. In paged mode the blocks of all sequences
 * come from one pool and the caller (the engine) hands each sequence its
 * blocks with seq_set_blocks: vLLM-style paging, blocks shared between
 * sequences for a common prefix. The logits do not depend on the layout or
 * on which blocks a sequence holds. */
#ifndef M40_BACKEND_H
#define M40_BACKEND_H

#include <stdbool.h>
#include <stdint.h>

#include "model.h"

typedef struct backend_entry {
    int32_t seq;   /* 0 .. n_seq_max-1 */
    int32_t pos;   /* 0 .. n_ctx-1 */
    int32_t token; /* 0 .. n_vocab-1 */
    bool logits;   /* return the logits after this entry */
} backend_entry;

typedef enum backend_kv_type { BACKEND_KV_F32 = 0, BACKEND_KV_F16 = 1 } backend_kv_type;

/* Prefill GEMM operands: f16 where tensor cores exist (sm_70+), f32 on
 * Maxwell (AUTO), or forced. */
typedef enum backend_gemm {
    BACKEND_GEMM_AUTO = 0,
    BACKEND_GEMM_F16 = 1,
    BACKEND_GEMM_F32 = 2
} backend_gemm;

typedef struct backend_params {
    int n_ctx;       /* positions per sequence */
    int n_seq_max;   /* sequences held at once */
    int n_batch_max; /* entries per forward call */
    int n_threads;   /* CPU threads (CPU backend) */
    int device;      /* GPU index (CUDA backend) */
    backend_kv_type kv_type;
    int kv_block;    /* positions per KV block; 0: the backend's default (CPU 16; CUDA M40_KV_PAGE,
                      * 64). CPU: any >= 1; CUDA: a power of two from 16 to 64, else
                      * M40LLM_ERR_UNSUPPORTED. create writes back the value used (in b->params) */
    bool paged;      /* false: fixed layout, each sequence owns ceil(n_ctx/kv_block) blocks (as
                      * before). true: one pool shared by all sequences; a sequence's blocks are
                      * set by seq_set_blocks */
    int n_kv_blocks; /* paged: blocks in the pool; 0: from kv_bytes (or kv_fraction), else
                      * n_seq_max * ceil(n_ctx/kv_block). create writes back the count */
    uint64_t kv_bytes;  /* paged, n_kv_blocks == 0: pool size in bytes (K and V of all
                         * layers), rounded down to whole blocks; 0: see n_kv_blocks */
    double kv_fraction; /* CUDA, paged, n_kv_blocks == 0 and kv_bytes == 0: the pool takes
                         * this fraction (0..1] of the device memory free once the weights
                         * and every other buffer are allocated (cuBLAS may still take its
                         * workspace at the first prompt: leave room). 0: not given. The
                         * CPU backend ignores it */
    /* a stage of a layer split (backend_pipe.c): this backend holds and runs
     * layers [layer_begin, layer_end) only, their weights and KV cache; the
     * first stage (begin 0) also embeds the tokens, the last (end n_layer)
     * has the output head. 0, 0: every layer (not a stage) */
    int layer_begin, layer_end;
    /* CUDA developer switches (the CPU backend ignores them); the programs
     * take them from the environment with backend_params_env */
    backend_gemm prefill_gemm; /* operand type of the prefill GEMMs */
    bool no_graphs;            /* decode steps launched kernel by kernel, not as CUDA graphs */
    bool profile; /* synchronize after each kernel group, print the times at destroy (no graphs) */
    int gemv_kernel; /* decode GEMV kernel: 0 chosen by shape, else forced (the workbench's
                      * comparisons: backend_gemv_kernel_from_name; rows4 for 2..8 vectors) */
    bool dup_gpus;   /* a card may be named twice in --gpus (tests: two stages on one card) */
    /* steps of more than 8 entries (batched decode, prompts): the share (0..1,
     * at most 0.9 used) of the device memory free before the KV pool (less
     * room for one whole context where kv_fraction sizes the pool) that may
     * keep a dense copy of each matrix not already in the GEMM operand type,
     * made once at create instead of at every step (same results); a kv_fraction
     * pool then takes its fraction of what is left, and the server's memory
     * estimates do not count it. 0: none; < 0: BACKEND_GEMM_CACHE_DEFAULT where
     * the GEMM operands are f16 (tensor cores: H100, 7B Q4_0, 32 streams 1648 ->
     * 3968 tok/s), none on FP32 cards (Maxwell: copies 7x a Q4 model, not
     * measured). A layer-split stage never has one (it cannot see what the
     * later stages on its card need) */
    double gemm_cache;
} backend_params;

/* gemm_cache < 0, what run, bench, perplexity and the engine (serve, bench
 * --batch) pass unless M40LLM_GEMM_CACHE says: this share on tensor-core
 * cards, none on FP32 ones. */
#define BACKEND_GEMM_CACHE_DEFAULT 0.5
#define BACKEND_GEMM_CACHE_AUTO    (-1.0)

/* Fills the developer switches of p from the environment:
 *   M40LLM_PREFILL_GEMM=f16|f32   prefill_gemm (default: f16 where tensor cores exist)
 *   M40LLM_CUDA_GRAPHS=0          no_graphs
 *   M40LLM_PROFILE=1              profile
 *   M40LLM_GEMV=auto|warp|staged|persist|rows4   gemv_kernel
 *   M40LLM_DUP_GPUS=1             dup_gpus
 *   M40LLM_GEMM_CACHE=F           gemm_cache (0 <= F <= 1; 0: none)
 * Unset or unknown values leave the field as it is. */
void backend_params_env(backend_params *p);
/* "auto", "warp", "staged", "persist", "rows4" -> 0..4 (the CUDA module's
 * GEMV_KERNEL_*); -1 if unknown. */
int backend_gemv_kernel_from_name(const char *name);

typedef struct backend backend;

typedef struct backend_ops {
    const char *name; /* "cpu", "cuda" */
    /* logits: [n_out][n_vocab] rows in entry order for entries with .logits */
    int (*forward)(backend *b, const backend_entry *entries, int n, float *logits);
    /* Greedy helper: argmax of each logits row, computed where the logits
     * are (the GPU backend avoids copying them). May be NULL. */
    int (*forward_argmax)(backend *b, const backend_entry *entries, int n, int32_t *ids);
    /* Forgets a sequence's cache (length 0); paged: also its block table. */
    int (*seq_clear)(backend *b, int seq);
    /* Current length of a sequence's cache. */
    int (*seq_len)(const backend *b, int seq);
    /* Paged mode: installs sequence seq's block table: blocks[0..n_blocks) are
     * pool indices (< n_kv_blocks, n_blocks <= ceil(n_ctx / kv_block)), and the
     * K/V of positions 0..len-1 are already in them (a prefix shared with other
     * sequences, or the sequence's own earlier positions); len <= n_blocks * kv_block.
     * Sets the sequence's length to len. Blocks may be shared between sequences;
     * the caller guarantees that no sequence writes a block another one reads
     * (forward writes positions >= the length). Fixed layout: M40LLM_ERR_INVALID_ARG.
     * Bad arguments (index out of range, an index twice in one table, len out of
     * bounds; CPU: a block under len it never wrote) are M40LLM_ERR_INVALID_ARG
     * and leave the sequence as it was. The backend does not track sharing.
     * Paged seq_clear empties the table (length 0) and never touches the pool's
     * contents, since its blocks may be shared. */
    int (*seq_set_blocks)(backend *b, int seq, const int32_t *blocks, int n_blocks, int len);
    /* Paged mode: pool block dst takes the K/V of block src (every position
     * and layer the backend holds), ordered before any later forward call,
     * so a sequence can reuse the first positions of a block another one
     * filled and write on past them. src must hold K/V (CPU: written); no
     * table may read dst's old contents. Bad indices or the fixed layout:
     * M40LLM_ERR_INVALID_ARG. NULL where the backend cannot copy. */
    int (*block_copy)(backend *b, int src, int dst);
    /* Positions a sequence can hold now: n_ctx in the fixed layout; in paged
     * mode min(n_ctx, n_blocks * kv_block) of its table. forward rejects an
     * entry at or past it with M40LLM_ERR_CONTEXT_FULL (set more blocks first). */
    int (*seq_capacity)(const backend *b, int seq);
    /* A stage's forward over one part (no position revisited:
     * backend_batch_part): x_in [n][n_embd] is the residual stream entering
     * layer_begin (NULL for the first stage: the tokens' embeddings); a
     * stage that is not the last writes the stream after its last layer to
     * x_out [n][n_embd], the last one logits or ids as forward /
     * forward_argmax (one of them, for the entries that want logits). Host
     * memory. Sequence lengths advance as in forward; on failure the
     * sequences of the call are cut back as in forward. */
    int (*forward_stage)(backend *b, const backend_entry *entries, int n, const float *x_in,
                         float *x_out, float *logits, int32_t *ids);
    /* Cuts a sequence back to len positions (0 <= len <= its length): the
     * positions past len are forgotten, its blocks stay. */
    int (*seq_cut)(backend *b, int seq, int len);
    /* Bytes of device (or host) memory the backend holds (CPU: KV blocks
     * count once first written). */
    uint64_t (*mem_used)(const backend *b);
    void (*destroy)(backend *b);
} backend_ops;

/* Polled by a forward call between layers where one call can take long (the
 * CPU backend); returning true abandons the call with M40LLM_ERR_CANCELLED.
 * A call that is abandoned or fails part way cuts every sequence it touched
 * back to its first position in the call, so the cache stays consistent.
 * The hook belongs to whoever calls forward (one thread at a time). */
typedef bool (*backend_abort_fn)(void *ctx);

struct backend {
    const backend_ops *ops;
    const model *model;
    backend_params params;
    backend_abort_fn abort_fn; /* NULL: never abandon */
    void *abort_ctx;
    int max_part; /* entries one step runs at most (CUDA without cuBLAS: 8); 0: any. A layer
                   * split cuts its batches as its stages would */
};

/* Checks a batch against the params and the sequences' lengths and
 * capacities (M40LLM_ERR_CONTEXT_FULL past n_ctx or, paged, past the
 * sequence's blocks; M40LLM_ERR_INVALID_ARG otherwise). */
int backend_validate_batch(const backend *b, const backend_entry *entries, int n);
/* K + V bytes of one block of kv_block positions over all layers; 0 when
 * kv_block < 1 or the product overflows. */
uint64_t backend_kv_block_bytes(const model *m, backend_kv_type t, int kv_block);
/* For backends: checks seq_set_blocks' arguments against b->params (paged
 * mode, seq, n_blocks, indices in range and distinct, len). */
int backend_check_blocks(const backend *b, int seq, const int32_t *blocks, int n_blocks, int len);
/* For backends: checks block_copy's arguments (paged mode, two distinct
 * indices inside the pool). */
int backend_check_copy(const backend *b, int src, int dst);
/* The end of the part of entries[start..n) that starts at start: the first
 * entry that revisits a position of its sequence already in the part (it
 * must see the cache as the entries before it left it), at most max_n
 * entries, or n. */
int backend_batch_part(const backend_entry *entries, int start, int n, int max_n);
/* The layers b runs: [*l0, *l1) (all of them unless it is a stage). */
void backend_layers(const backend *b, int *l0, int *l1);
/* Checks a forward_stage call's buffers against the stage's place: x_in
 * unless first, x_out unless last, logits or ids where entries want them
 * (M40LLM_ERR_INVALID_ARG), and that the batch is one part. */
int backend_check_stage(const backend *b, const backend_entry *entries, int n, const float *x_in,
                        const float *x_out, const float *logits, const int32_t *ids);
/* Checks p's layer range against the model (M40LLM_ERR_INVALID_ARG). */
int backend_check_layers(const model *m, const backend_params *p);

int backend_cpu_create(const model *m, const backend_params *p, backend **out);
/* M40LLM_ERR_NO_DEVICE when built without CUDA or no GPU is usable. */
int backend_cuda_create(const model *m, const backend_params *p, backend **out);
/* After a backend_cuda_create: what runs slower than it could and why (cuBLAS
 * not found: prompts go through the GEMV kernels), or "". */
const char *backend_cuda_note(void);

static inline int backend_forward(backend *b, const backend_entry *e, int n, float *logits) {
    return b->ops->forward(b, e, n, logits);
}
static inline void backend_set_abort(backend *b, backend_abort_fn fn, void *ctx) {
    b->abort_fn = fn;
    b->abort_ctx = ctx;
}
static inline void backend_destroy(backend *b) {
    if (b) b->ops->destroy(b);
}

#endif
