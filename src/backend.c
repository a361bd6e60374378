#include "backend.h"

#include <stdlib.h>
#include <string.h>

#include "err.h"

int backend_validate_batch(const backend *b, const backend_entry *entries, int n) {
    if (n <= 0 || !entries) return err_set(M40LLM_ERR_INVALID_ARG, "empty batch");
    if (n > b->params.n_batch_max)
        return err_set(M40LLM_ERR_INVALID_ARG, "batch of %d entries exceeds n_batch_max %d", n,
                       b->params.n_batch_max);
    const model_config *c = &b->model->cfg;
    for (int i = 0; i < n; i++) {
        const backend_entry *e = &entries[i];
        if (e->seq < 0 || e->seq >= b->params.n_seq_max)
            return err_set(M40LLM_ERR_INVALID_ARG, "entry %d: sequence %d outside 0..%d", i, e->seq,
                           b->params.n_seq_max - 1);
        if (e->token < 0 || e->token >= c->n_vocab)
            return err_set(M40LLM_ERR_INVALID_ARG, "entry %d: token %d outside vocab of %d", i,
                           e->token, c->n_vocab);
        if (e->pos < 0)
            return err_set(M40LLM_ERR_INVALID_ARG, "entry %d: negative position %d", i, e->pos);
        if (e->pos >= b->params.n_ctx)
            return err_set(M40LLM_ERR_CONTEXT_FULL,
                           "entry %d: position %d does not fit the context of %d tokens", i, e->pos,
                           b->params.n_ctx);
        if (b->params.paged && b->ops->seq_capacity) {
            int cap = b->ops->seq_capacity(b, e->seq);
            if (e->pos >= cap)
                return err_set(M40LLM_ERR_CONTEXT_FULL,
                               "entry %d: position %d is past the KV blocks of sequence %d (%d "
                               "positions): seq_set_blocks gives it more",
                               i, e->pos, e->seq, cap);
        }
        /* positions of a sequence: contiguous from at most its current length */
        int expect = b->ops->seq_len(b, e->seq);
        for (int j = i - 1; j >= 0; j--) {
            if (entries[j].seq == e->seq) {
                expect = entries[j].pos + 1;
                break;
            }
        }
        if (e->pos > expect)
            return err_set(M40LLM_ERR_INVALID_ARG,
                           "entry %d: sequence %d position %d leaves a gap (next is %d)", i, e->seq,
                           e->pos, expect);
    }
    return M40LLM_OK;
}

uint64_t backend_kv_block_bytes(const model *m, backend_kv_type t, int kv_block) {
    if (!m || kv_block < 1) return 0;
    const model_config *c = &m->cfg;
    uint64_t elt = t == BACKEND_KV_F16 ? 2 : 4, r;
    if (c->n_layer < 0 || c->n_head_kv < 0 || c->head_dim < 0) return 0;
    if (__builtin_mul_overflow((uint64_t)c->n_layer * 2u, (uint64_t)kv_block, &r) ||
        __builtin_mul_overflow(r, (uint64_t)c->n_head_kv * (uint64_t)c->head_dim, &r) ||
        __builtin_mul_overflow(r, elt, &r))
        return 0;
    return r;
}

int backend_check_copy(const backend *b, int src, int dst) {
    const backend_params *p = &b->params;
    if (!p->paged)
        return err_set(M40LLM_ERR_INVALID_ARG,
                       "block_copy: the backend has the fixed KV layout (paged is off)");
    if (src < 0 || src >= p->n_kv_blocks || dst < 0 || dst >= p->n_kv_blocks || src == dst)
        return err_set(M40LLM_ERR_INVALID_ARG,
                       "block_copy: blocks %d -> %d (two distinct blocks of the pool's 0..%d)", src,
                       dst, p->n_kv_blocks - 1);
    return M40LLM_OK;
}

static int cmp_i32(const void *a, const void *b) {
    int32_t x = *(const int32_t *)a, y = *(const int32_t *)b;
    return (x > y) - (x < y);
}

int backend_check_blocks(const backend *b, int seq, const int32_t *blocks, int n_blocks, int len) {
    const backend_params *p = &b->params;
    if (!p->paged)
        return err_set(M40LLM_ERR_INVALID_ARG,
                       "seq_set_blocks: the backend has the fixed KV layout (paged is off)");
    if (seq < 0 || seq >= p->n_seq_max)
        return err_set(M40LLM_ERR_INVALID_ARG, "seq_set_blocks: sequence %d outside 0..%d", seq,
                       p->n_seq_max - 1);
    const int per_seq = (int)(((int64_t)p->n_ctx + p->kv_block - 1) / p->kv_block);
    if (n_blocks < 0 || n_blocks > per_seq || (n_blocks > 0 && !blocks))
        return err_set(M40LLM_ERR_INVALID_ARG,
                       "seq_set_blocks: sequence %d: %d blocks (0..%d with a context of %d and "
                       "blocks of %d positions)",
                       seq, n_blocks, per_seq, p->n_ctx, p->kv_block);
    if (len < 0 || (int64_t)len > (int64_t)n_blocks * p->kv_block || len > p->n_ctx)
        return err_set(M40LLM_ERR_INVALID_ARG,
                       "seq_set_blocks: sequence %d: length %d outside 0..%lld (%d blocks of %d "
                       "positions, context %d)",
                       seq, len, (long long)n_blocks * p->kv_block, n_blocks, p->kv_block,
                       p->n_ctx);
    for (int i = 0; i < n_blocks; i++)
        if (blocks[i] < 0 || blocks[i] >= p->n_kv_blocks)
            return err_set(M40LLM_ERR_INVALID_ARG,
                           "seq_set_blocks: sequence %d: block %d is %d, outside the pool's "
                           "0..%d",
                           seq, i, blocks[i], p->n_kv_blocks - 1);
    if (n_blocks < 2) return M40LLM_OK;
    /* one block twice in a table would have two positions write one slot */
    int32_t *s = malloc((size_t)n_blocks * sizeof *s);
    if (!s) return err_set(M40LLM_ERR_OOM, "seq_set_blocks: out of host memory");
    memcpy(s, blocks, (size_t)n_blocks * sizeof *s);
    qsort(s, (size_t)n_blocks, sizeof *s, cmp_i32);
    int dup = -1;
    for (int i = 1; i < n_blocks && dup < 0; i++)
        if (s[i] == s[i - 1]) dup = s[i];
    free(s);
    if (dup >= 0)
        return err_set(M40LLM_ERR_INVALID_ARG,
                       "seq_set_blocks: sequence %d: block %d appears twice in its table", seq,
                       dup);
    return M40LLM_OK;
}

int backend_gemv_kernel_from_name(const char *name) {
    static const char *const names[] = {"auto", "warp", "staged", "persist", "rows4"};
    for (int i = 0; name && i < (int)(sizeof names / sizeof names[0]); i++)
        if (!strcmp(name, names[i])) return i;
    return -1;
}

void backend_params_env(backend_params *p) {
    const char *v = getenv("M40LLM_PREFILL_GEMM");
    if (v && !strcmp(v, "f16")) p->prefill_gemm = BACKEND_GEMM_F16;
    if (v && !strcmp(v, "f32")) p->prefill_gemm = BACKEND_GEMM_F32;
    v = getenv("M40LLM_CUDA_GRAPHS");
    if (v && !strcmp(v, "0")) p->no_graphs = true;
    v = getenv("M40LLM_PROFILE");
    if (v && !strcmp(v, "1")) p->profile = true;
    v = getenv("M40LLM_DUP_GPUS");
    if (v && !strcmp(v, "1")) p->dup_gpus = true;
    v = getenv("M40LLM_GEMM_CACHE");
    if (v) {
        char *end = NULL;
        double f = strtod(v, &end);
        if (end != v && !*end && f >= 0 && f <= 1) p->gemm_cache = f; /* 0: none */
    }
    int k = backend_gemv_kernel_from_name(getenv("M40LLM_GEMV"));
    if (k >= 0) p->gemv_kernel = k;
}

int backend_batch_part(const backend_entry *e, int start, int n, int max_n) {
    int end = start + 1;
    for (; end < n && end - start < max_n; end++) {
        int j = end - 1;
        while (j >= start && e[j].seq != e[end].seq) j--;
        if (j >= start && e[end].pos <= e[j].pos) break;
    }
    return end;
}

void backend_layers(const backend *b, int *l0, int *l1) {
    const backend_params *p = &b->params;
    const bool stage = p->layer_begin != 0 || p->layer_end != 0;
    *l0 = stage ? p->layer_begin : 0;
    *l1 = stage ? p->layer_end : b->model->cfg.n_layer;
}

int backend_check_layers(const model *m, const backend_params *p) {
    if (p->layer_begin == 0 && p->layer_end == 0) return M40LLM_OK;
    if (p->layer_begin < 0 || p->layer_end <= p->layer_begin || p->layer_end > m->cfg.n_layer)
        return err_set(M40LLM_ERR_INVALID_ARG, "layers %d..%d of a model of %d layers",
                       p->layer_begin, p->layer_end - 1, m->cfg.n_layer);
    return M40LLM_OK;
}

int backend_check_stage(const backend *b, const backend_entry *e, int n, const float *x_in,
                        const float *x_out, const float *logits, const int32_t *ids) {
    int l0, l1;
    backend_layers(b, &l0, &l1);
    const bool first = l0 == 0, last = l1 == b->model->cfg.n_layer;
    int n_out = 0;
    for (int i = 0; i < n && e; i++) n_out += e[i].logits;
    if ((!first && !x_in) || (!last && !x_out) || (last && n_out && !logits && !ids))
        return err_set(M40LLM_ERR_INVALID_ARG, "stage of layers %d..%d: missing %s buffer", l0,
                       l1 - 1,
                       !first && !x_in   ? "input"
                       : !last && !x_out ? "output"
                                         : "logits");
    if (n > 0 && e && backend_batch_part(e, 0, n, n) != n)
        return err_set(M40LLM_ERR_INVALID_ARG,
                       "stage forward: the batch revisits a position (run it in parts)");
    return M40LLM_OK;
}
