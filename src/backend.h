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
 * bit for bit). */
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

typedef struct backend_params {
    int n_ctx;       /* positions per sequence */
    int n_seq_max;   /* sequences held at once */
    int n_batch_max; /* entries per forward call */
    int n_threads;   /* CPU threads (CPU backend) */
    int device;      /* GPU index (CUDA backend) */
    backend_kv_type kv_type;
} backend_params;

typedef struct backend backend;

typedef struct backend_ops {
    const char *name; /* "cpu", "cuda" */
    /* logits: [n_out][n_vocab] rows in entry order for entries with .logits */
    int (*forward)(backend *b, const backend_entry *entries, int n, float *logits);
    /* Greedy helper: argmax of each logits row, computed where the logits
     * are (the GPU backend avoids copying them). May be NULL. */
    int (*forward_argmax)(backend *b, const backend_entry *entries, int n, int32_t *ids);
    /* Forgets a sequence's cache (length 0). */
    int (*seq_clear)(backend *b, int seq);
    /* Current length of a sequence's cache. */
    int (*seq_len)(const backend *b, int seq);
    /* Bytes of device (or host) memory the backend holds. */
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
};

/* Checks a batch against the params and the sequences' lengths. */
int backend_validate_batch(const backend *b, const backend_entry *entries, int n);

int backend_cpu_create(const model *m, const backend_params *p, backend **out);
/* M40LLM_ERR_NO_DEVICE when built without CUDA or no GPU is usable. */
int backend_cuda_create(const model *m, const backend_params *p, backend **out);

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
