/* The CPU reference backend: FP32 activations, weights in their stored type
 * (dequantized row by row inside the products), KV cache in blocks of F32 or
 * F16 (cpu_kv.c), multithreaded with the threadpool. A batch is processed
 * layer by layer: Q/K/V of every entry, K/V stored, then attention per
 * entry, so an entry sees the K/V of the entries before it in the same batch. */
#include <math.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>

#include "cpu_internal.h"
#include "err.h"
#include "quant.h"

static void *xcalloc(size_t n, size_t size, uint64_t *acct) {
    void *p = calloc(n, size);
    if (p && acct) *acct += (uint64_t)n * size;
    return p;
}

static int load_norm(const model_tensor *t, float *dst, int n) {
    int rc = quant_dequantize_row(t->type, t->data, dst, n);
    if (rc) return err_prefix(rc, "cpu backend: tensor %s", t->name);
    return M40LLM_OK;
}

/* Runs entries that hold each sequence's positions in increasing order. */
static int forward_run(cpu_backend *cb, const backend_entry *e, int n, float *logits) {
    const model *m = cb->base.model;
    const model_config *c = &m->cfg;
    const int E = c->n_embd;
    int rc;
    if ((rc = cpu_kv_reserve(cb, e, n))) return rc;
    for (int i = 0; i < n; i++) {
        const uint8_t *row =
            (const uint8_t *)m->tok_embd.data + (size_t)e[i].token * m->tok_embd.row_bytes;
        rc = quant_dequantize_row(m->tok_embd.type, row, cb->x + (size_t)i * E, E);
        if (rc) return err_prefix(rc, "cpu backend: embedding row %d", e[i].token);
    }
    cpu_rope_table(cb, e, n);
    for (int il = 0; il < c->n_layer; il++) {
        if (cb->base.abort_fn && cb->base.abort_fn(cb->base.abort_ctx))
            return err_set(M40LLM_ERR_CANCELLED, "cpu backend: forward abandoned at layer %d", il);
        const model_layer *L = &m->layers[il];
        const float *an = cb->norms + (size_t)il * 2 * E, *fn = an + E;
        for (int i = 0; i < n; i++)
            cpu_rmsnorm(cb->xb + (size_t)i * E, cb->x + (size_t)i * E, an, E, c->rms_eps);
        if ((rc = cpu_matmul_qkv(cb, L, cb->xb, n))) return rc;
        cpu_rope(cb, n);
        cpu_kv_store(cb, e, n, il);
        cpu_attention(cb, e, n, il);
        if ((rc = cpu_matmul(cb, &L->wo, cb->att, cb->q_dim, n, cb->x, E, CPU_MM_ADD))) return rc;
        for (int i = 0; i < n; i++)
            cpu_rmsnorm(cb->xb + (size_t)i * E, cb->x + (size_t)i * E, fn, E, c->rms_eps);
        if ((rc = cpu_matmul_ffn_in(cb, L, cb->xb, n))) return rc;
        if ((rc = cpu_matmul(cb, &L->w_down, cb->hb, c->n_ff, n, cb->x, E, CPU_MM_ADD))) return rc;
    }
    for (int i = 0; i < n; i++) {
        cpu_seq *s = &cb->seqs[e[i].seq];
        s->len = e[i].pos + 1; /* an earlier position truncates */
    }
    /* final norm of the entries that want logits, packed, then the LM head */
    int n_out = 0;
    const float *on = cb->norms + (size_t)c->n_layer * 2 * E;
    for (int i = 0; i < n; i++)
        if (e[i].logits)
            cpu_rmsnorm(cb->xb + (size_t)n_out++ * E, cb->x + (size_t)i * E, on, E, c->rms_eps);
    if (n_out == 0) return M40LLM_OK;
    return cpu_matmul(cb, &m->output, cb->xb, E, n_out, logits, c->n_vocab, CPU_MM_STORE);
}

static int cpu_forward(backend *b, const backend_entry *e, int n, float *logits) {
    cpu_backend *cb = (cpu_backend *)b;
    int rc = backend_validate_batch(b, e, n);
    if (rc) return rc;
    int n_out = 0;
    for (int i = 0; i < n; i++) n_out += e[i].logits;
    if (n_out && !logits)
        return err_set(M40LLM_ERR_INVALID_ARG,
                       "cpu backend: %d entries want logits but the "
                       "output buffer is NULL",
                       n_out);
    /* A sequence revisiting a position inside one batch (a rewind) must see
     * the cache as it was after the entries before it: split the batch there
     * and run the parts in order. Ordinary batches are one part. */
    int start = 0;
    while (start < n) {
        int end = start + 1;
        for (; end < n; end++) {
            int j = end - 1;
            while (j >= start && e[j].seq != e[end].seq) j--;
            if (j >= start && e[end].pos <= e[j].pos) break;
        }
        if ((rc = forward_run(cb, e + start, end - start, logits))) {
            /* abandoned or failed part way (any part, any layer): K/V may be
             * overwritten from each entry's position on, so every sequence of
             * the call is cut back to its first position in it */
            for (int i = 0; i < n; i++) {
                cpu_seq *s = &cb->seqs[e[i].seq];
                if (e[i].pos < s->len) s->len = e[i].pos;
            }
            return rc;
        }
        for (int i = start; i < end; i++)
            if (e[i].logits) logits += b->model->cfg.n_vocab;
        start = end;
    }
    return M40LLM_OK;
}

static int cpu_forward_argmax(backend *b, const backend_entry *e, int n, int32_t *ids) {
    int n_out = 0;
    for (int i = 0; i < n && i < b->params.n_batch_max; i++) n_out += e[i].logits;
    const int V = b->model->cfg.n_vocab;
    float *lg = NULL;
    if (n_out) {
        lg = malloc((size_t)n_out * V * sizeof(float));
        if (!lg) return err_set(M40LLM_ERR_OOM, "cpu backend: no memory for %d logits rows", n_out);
    }
    int rc = cpu_forward(b, e, n, lg);
    if (rc == M40LLM_OK) {
        for (int r = 0; r < n_out; r++) {
            const float *l = lg + (size_t)r * V;
            int best = 0;
            for (int t = 1; t < V; t++)
                if (l[t] > l[best]) best = t; /* strict: lowest id wins ties */
            ids[r] = best;
        }
    }
    free(lg);
    return rc;
}

static int cpu_seq_len(const backend *b, int seq) {
    const cpu_backend *cb = (const cpu_backend *)b;
    if (seq < 0 || seq >= b->params.n_seq_max) return 0;
    return cb->seqs[seq].len;
}

static uint64_t cpu_mem_used(const backend *b) {
    const cpu_backend *cb = (const cpu_backend *)b;
    return cb->scratch_bytes + cb->kv_bytes;
}

static void cpu_destroy(backend *b) {
    cpu_backend *cb = (cpu_backend *)b;
    if (!cb) return;
    threadpool_free(cb->pool);
    cpu_kv_free(cb);
    free(cb->seqs);
    free(cb->norms);
    free(cb->x);
    free(cb->xb);
    free(cb->q);
    free(cb->k);
    free(cb->v);
    free(cb->att);
    free(cb->hb);
    free(cb->rope);
    free(cb->wbuf);
    free(cb->xsum);
    free(cb->scores);
    free(cb->kvrow);
    free(cb);
}

static const backend_ops cpu_ops = {
    .name = "cpu",
    .forward = cpu_forward,
    .forward_argmax = cpu_forward_argmax,
    .seq_clear = cpu_seq_clear,
    .seq_len = cpu_seq_len,
    .seq_set_blocks = cpu_seq_set_blocks,
    .seq_capacity = cpu_seq_capacity,
    .mem_used = cpu_mem_used,
    .destroy = cpu_destroy,
};

int backend_cpu_create(const model *m, const backend_params *p, backend **out) {
    *out = NULL;
    if (!m || !p) return err_set(M40LLM_ERR_INVALID_ARG, "backend_cpu_create: no model or params");
    if (p->n_ctx < 1 || p->n_seq_max < 1 || p->n_batch_max < 1 || p->n_threads < 1)
        return err_set(M40LLM_ERR_INVALID_ARG,
                       "cpu backend: n_ctx %d, n_seq_max %d, n_batch_max %d, n_threads %d must all "
                       "be >= 1",
                       p->n_ctx, p->n_seq_max, p->n_batch_max, p->n_threads);
    if (p->kv_type != BACKEND_KV_F32 && p->kv_type != BACKEND_KV_F16)
        return err_set(M40LLM_ERR_UNSUPPORTED, "cpu backend: KV cache type %d", (int)p->kv_type);
    const model_config *c = &m->cfg;
    const size_t kv_elt = p->kv_type == BACKEND_KV_F16 ? 2 : 4;
    cpu_backend *cb = calloc(1, sizeof *cb);
    if (!cb) return err_set(M40LLM_ERR_OOM, "cpu backend: out of memory");
    cb->base.ops = &cpu_ops;
    cb->base.model = m;
    cb->base.params = *p;
    cb->n_threads = p->n_threads;
    cb->q_dim = c->n_head * c->head_dim;
    cb->kv_dim = c->n_head_kv * c->head_dim;
    cb->max_in = c->n_ff > c->n_embd ? c->n_ff : c->n_embd;
    if (cb->q_dim > cb->max_in) cb->max_in = cb->q_dim;
    cb->kv_elt = kv_elt;
    /* the KV sizes first: one that cannot exist is refused before the rest
     * is allocated */
    int rc = cpu_kv_init(cb);
    if (!rc) rc = threadpool_create(p->n_threads, &cb->pool);
    if (rc) {
        cpu_destroy(&cb->base);
        return rc;
    }
    const size_t n = (size_t)p->n_batch_max, E = (size_t)c->n_embd, T = (size_t)p->n_threads;
    uint64_t *acct = &cb->scratch_bytes;
    cb->norms = xcalloc(((size_t)c->n_layer * 2 + 1) * E, sizeof(float), acct);
    cb->x = xcalloc(n * E, sizeof(float), acct);
    cb->xb = xcalloc(n * E, sizeof(float), acct);
    cb->q = xcalloc(n * (size_t)cb->q_dim, sizeof(float), acct);
    cb->k = xcalloc(n * (size_t)cb->kv_dim, sizeof(float), acct);
    cb->v = xcalloc(n * (size_t)cb->kv_dim, sizeof(float), acct);
    cb->att = xcalloc(n * (size_t)cb->q_dim, sizeof(float), acct);
    cb->hb = xcalloc(n * (size_t)c->n_ff, sizeof(float), acct);
    cb->rope = xcalloc(n * (size_t)(c->n_rot > 0 ? c->n_rot : 1), sizeof(float), acct);
    cb->wbuf = xcalloc(T * 2 * CPU_MM_TILE * (size_t)cb->max_in, sizeof(float), acct);
    cb->xsum = xcalloc(n * (size_t)(cb->max_in / CPU_QBLK + 1), sizeof(float), acct);
    cb->scores = xcalloc(T * (size_t)p->n_ctx, sizeof(float), acct);
    cb->kvrow = xcalloc(T * 2 * (size_t)c->head_dim, sizeof(float), acct);
    if (!cb->norms || !cb->x || !cb->xb || !cb->q || !cb->k || !cb->v || !cb->att || !cb->hb ||
        !cb->rope || !cb->wbuf || !cb->xsum || !cb->scores || !cb->kvrow) {
        cpu_destroy(&cb->base);
        return err_set(M40LLM_ERR_OOM, "cpu backend: no memory for buffers of a %d-entry batch",
                       p->n_batch_max);
    }
    for (int il = 0; il < c->n_layer && !rc; il++) {
        rc = load_norm(&m->layers[il].attn_norm, cb->norms + (size_t)il * 2 * E, (int)E);
        if (!rc)
            rc = load_norm(&m->layers[il].ffn_norm, cb->norms + ((size_t)il * 2 + 1) * E, (int)E);
    }
    if (!rc) rc = load_norm(&m->output_norm, cb->norms + (size_t)c->n_layer * 2 * E, (int)E);
    if (rc) {
        cpu_destroy(&cb->base);
        return rc;
    }
    *out = &cb->base;
    return M40LLM_OK;
}
