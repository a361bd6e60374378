/* The CPU backend's KV memory: one pool of blocks of kv_block positions
 * (K and V of every layer), each allocated when a forward call first writes
 * it, so a large pool costs memory only as it fills. A sequence reaches its
 * positions through its block table: the identity in the fixed layout, set
 * by the engine with seq_set_blocks in paged mode. */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "cpu_internal.h"
#include "err.h"

/* Positions per block by default: short enough that a shared prefix wastes
 * little, long enough that the attention loops run over whole rows. */
#define CPU_KV_BLOCK_DEFAULT 16

int cpu_kv_init(cpu_backend *cb) {
    backend_params *p = &cb->base.params;
    const model_config *c = &cb->base.model->cfg;
    if (p->kv_block == 0) p->kv_block = CPU_KV_BLOCK_DEFAULT;
    if (p->kv_block < 0)
        return err_set(M40LLM_ERR_INVALID_ARG, "cpu backend: KV block of %d positions",
                       p->kv_block);
    const uint64_t bb = backend_kv_block_bytes(cb->base.model, p->kv_type, p->kv_block);
    if (bb == 0 || bb > PTRDIFF_MAX)
        return err_set(M40LLM_ERR_OOM,
                       "cpu backend: one KV cache block (%d layers x %d positions x %d values x "
                       "2) does not fit in memory",
                       c->n_layer, p->kv_block, c->n_head_kv * c->head_dim);
    const int64_t bps = ((int64_t)p->n_ctx + p->kv_block - 1) / p->kv_block;
    const int64_t identity = (int64_t)p->n_seq_max * bps; /* blocks of the fixed layout */
    int64_t n = identity;
    if (p->paged && p->n_kv_blocks < 0)
        return err_set(M40LLM_ERR_INVALID_ARG, "cpu backend: a pool of %d KV blocks",
                       p->n_kv_blocks);
    if (p->paged && p->n_kv_blocks > 0) {
        n = p->n_kv_blocks;
    } else if (p->paged && p->kv_bytes > 0) {
        uint64_t nb = p->kv_bytes / bb;
        if (nb == 0)
            return err_set(M40LLM_ERR_INVALID_ARG,
                           "cpu backend: kv_bytes %llu hold no KV block of %llu bytes",
                           (unsigned long long)p->kv_bytes, (unsigned long long)bb);
        n = nb > INT32_MAX ? (int64_t)INT32_MAX + 1 : (int64_t)nb;
    }
    if (n > INT32_MAX || identity > INT32_MAX)
        return err_set(M40LLM_ERR_OOM,
                       "cpu backend: the KV cache needs %lld blocks (pool) or %lld (tables), more "
                       "than 2^31 - 1",
                       (long long)n, (long long)identity);
    cb->kv_block = p->kv_block;
    cb->blocks_per_seq = (int)bps;
    cb->n_pool = (int)n;
    cb->block_bytes = (size_t)bb;
    p->n_kv_blocks = (int)n;
    cb->seqs = calloc((size_t)p->n_seq_max, sizeof *cb->seqs);
    cb->kv_pool = calloc((size_t)n, sizeof *cb->kv_pool);
    cb->tables = calloc((size_t)identity, sizeof *cb->tables);
    if (!cb->seqs || !cb->kv_pool || !cb->tables)
        return err_set(M40LLM_ERR_OOM, "cpu backend: no memory for the tables of %lld KV blocks",
                       (long long)n);
    cb->scratch_bytes += (uint64_t)p->n_seq_max * sizeof *cb->seqs +
                         (uint64_t)n * sizeof *cb->kv_pool +
                         (uint64_t)identity * sizeof *cb->tables;
    for (int s = 0; s < p->n_seq_max; s++) {
        cpu_seq *q = &cb->seqs[s];
        q->blocks = cb->tables + (size_t)s * bps;
        q->len = 0;
        q->n_blocks = 0;
        if (p->paged) continue;
        for (int i = 0; i < (int)bps; i++) q->blocks[i] = (int32_t)(s * bps + i);
        q->n_blocks = (int)bps;
    }
    return M40LLM_OK;
}

void cpu_kv_free(cpu_backend *cb) {
    if (cb->kv_pool)
        for (int i = 0; i < cb->n_pool; i++) free(cb->kv_pool[i]);
    free(cb->kv_pool);
    free(cb->tables);
    cb->kv_pool = NULL;
    cb->tables = NULL;
}

int cpu_kv_reserve(cpu_backend *cb, const backend_entry *e, int n) {
    for (int i = 0; i < n; i++) {
        const cpu_seq *s = &cb->seqs[e[i].seq];
        int32_t blk = s->blocks[e[i].pos / cb->kv_block]; /* inside the table: validated */
        if (cb->kv_pool[blk]) continue;
        cb->kv_pool[blk] = malloc(cb->block_bytes);
        if (!cb->kv_pool[blk])
            return err_set(M40LLM_ERR_OOM,
                           "cpu backend: no memory for KV block %d of sequence %d (%zu bytes, "
                           "%llu held)",
                           blk, e[i].seq, cb->block_bytes, (unsigned long long)cb->kv_bytes);
        cb->kv_bytes += cb->block_bytes;
    }
    return M40LLM_OK;
}

int cpu_seq_set_blocks(backend *b, int seq, const int32_t *blocks, int n_blocks, int len) {
    cpu_backend *cb = (cpu_backend *)b;
    int rc = backend_check_blocks(b, seq, blocks, n_blocks, len);
    if (rc) return rc;
    /* positions under len are read at once: a block never written holds no
     * K/V (and is not even allocated) */
    for (int i = 0; i < (len + cb->kv_block - 1) / cb->kv_block; i++)
        if (!cb->kv_pool[blocks[i]])
            return err_set(M40LLM_ERR_INVALID_ARG,
                           "seq_set_blocks: sequence %d: block %d (pool index %d) holds positions "
                           "under the length %d but was never written",
                           seq, i, blocks[i], len);
    cpu_seq *s = &cb->seqs[seq];
    if (n_blocks) memmove(s->blocks, blocks, (size_t)n_blocks * sizeof *blocks);
    s->n_blocks = n_blocks;
    s->len = len;
    return M40LLM_OK;
}

int cpu_block_copy(backend *b, int src, int dst) {
    cpu_backend *cb = (cpu_backend *)b;
    int rc = backend_check_copy(b, src, dst);
    if (rc) return rc;
    if (!cb->kv_pool[src])
        return err_set(M40LLM_ERR_INVALID_ARG, "block_copy: block %d was never written", src);
    if (!cb->kv_pool[dst]) {
        cb->kv_pool[dst] = malloc(cb->block_bytes);
        if (!cb->kv_pool[dst])
            return err_set(M40LLM_ERR_OOM, "cpu backend: no memory for KV block %d (%zu bytes)",
                           dst, cb->block_bytes);
        cb->kv_bytes += cb->block_bytes;
    }
    memcpy(cb->kv_pool[dst], cb->kv_pool[src], cb->block_bytes);
    return M40LLM_OK;
}

int cpu_seq_clear(backend *b, int seq) {
    cpu_backend *cb = (cpu_backend *)b;
    if (seq < 0 || seq >= b->params.n_seq_max)
        return err_set(M40LLM_ERR_INVALID_ARG, "sequence %d outside 0..%d", seq,
                       b->params.n_seq_max - 1);
    cb->seqs[seq].len = 0;
    if (b->params.paged) cb->seqs[seq].n_blocks = 0; /* the blocks' contents stay: shared */
    return M40LLM_OK;
}

int cpu_seq_capacity(const backend *b, int seq) {
    const cpu_backend *cb = (const cpu_backend *)b;
    if (seq < 0 || seq >= b->params.n_seq_max) return 0;
    if (!b->params.paged) return b->params.n_ctx;
    int64_t cap = (int64_t)cb->seqs[seq].n_blocks * cb->kv_block;
    return cap < b->params.n_ctx ? (int)cap : b->params.n_ctx;
}
