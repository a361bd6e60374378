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
#include "model_rope.h"
#include "err.h"
#include "quant.h"

static void *xcalloc(size_t n, size_t size, uint64_t *acct) {
    void *p = calloc(n, size);
    if (p && acct) *acct += (uint64_t)n * size;
    return p;
}

/* A model vector as floats (+ offset: gemma's (1 + w) norms). */
static int load_vec(const model_tensor *t, float *dst, int n, float offset) {
    int rc = quant_dequantize_row(t->type, t->data, dst, n);
    if (rc) return err_prefix(rc, "cpu backend: tensor %s", t->name);
    for (int i = 0; offset != 0.0f && i < n; i++) dst[i] += offset;
    return M40LLM_OK;
}

static void rmsnorm_rows(float *y, const float *x, const float *w, int n, int E, float eps) {
    for (int i = 0; i < n; i++) cpu_rmsnorm(y + (size_t)i * E, x + (size_t)i * E, w, E, eps);
}

/* x += y (+ bias), after y's own norm where the model has a post-norm.
 * The plain llama block never comes here: its products add into x. */
static void residual_add(float *x, float *y, const float *post, const float *bias, int n, int E,
                         float eps) {
    for (int i = 0; i < n; i++) {
        float *yi = y + (size_t)i * E, *xi = x + (size_t)i * E;
        if (bias)
            for (int d = 0; d < E; d++) yi[d] += bias[d];
        if (post) cpu_rmsnorm(yi, yi, post, E, eps);
        for (int d = 0; d < E; d++) xi[d] += yi[d];
    }
}

/* The transformer block, written once against the model description:
 * norm -> QKV (+bias) -> q/k norm -> RoPE -> KV store; attention (window,
 * soft-cap, scale); output projection (+bias, + post-norm) + residual;
 * norm -> gate/up -> activation; down (+ post-norm) + residual, or on a
 * mixture-of-experts layer the routed experts' weighted sum (cpu_moe.c) +
 * residual. Runs entries that hold each sequence's positions in increasing
 * order. */
static int forward_run(cpu_backend *cb, const backend_entry *e, int n, const float *x_in,
                       float *x_out, float *logits) {
    const model *m = cb->base.model;
    const model_config *c = &m->cfg;
    const int E = c->n_embd;
    int rc, l0, l1;
    backend_layers(&cb->base, &l0, &l1);
    if ((rc = cpu_kv_reserve(cb, e, n))) return rc;
    if (x_in) /* a later stage of a layer split: the stream so far */
        memcpy(cb->x, x_in, (size_t)n * E * sizeof *cb->x);
    for (int i = 0; i < n && !x_in; i++) {
        const uint8_t *row =
            (const uint8_t *)m->tok_embd.data + (size_t)e[i].token * m->tok_embd.row_bytes;
        float *xi = cb->x + (size_t)i * E;
        rc = quant_dequantize_row(m->tok_embd.type, row, xi, E);
        if (rc) return err_prefix(rc, "cpu backend: embedding row %d", e[i].token);
        if (c->embd_scale != 1.0f)
            for (int d = 0; d < E; d++) xi[d] *= c->embd_scale;
    }
    cpu_rope_table(cb, e, n);
    for (int il = l0; il < l1; il++) {
        if (cb->base.abort_fn && cb->base.abort_fn(cb->base.abort_ctx))
            return err_set(M40LLM_ERR_CANCELLED, "cpu backend: forward abandoned at layer %d", il);
        const model_layer *L = &m->layers[il];
        const cpu_layer_vecs *lv = &cb->lv[il];
        rmsnorm_rows(cb->xb, cb->x, lv->attn_norm, n, E, c->rms_eps);
        if ((rc = cpu_matmul_qkv(cb, L, cb->xb, n))) return rc;
        cpu_qkv_post(cb, n, il);
        cpu_rope(cb, n, il);
        cpu_kv_store(cb, e, n, il);
        cpu_attention(cb, e, n, il);
        if (lv->post_attn_norm || lv->bo) { /* xb is free until the FFN norm */
            if ((rc = cpu_matmul(cb, &L->wo, cb->att, cb->q_dim, n, cb->xb, E, CPU_MM_STORE)))
                return rc;
            residual_add(cb->x, cb->xb, lv->post_attn_norm, lv->bo, n, E, c->rms_eps);
        } else if ((rc = cpu_matmul(cb, &L->wo, cb->att, cb->q_dim, n, cb->x, E, CPU_MM_ADD))) {
            return rc;
        }
        rmsnorm_rows(cb->xb, cb->x, lv->ffn_norm, n, E, c->rms_eps);
        if (model_layer_moe(L)) {
            if ((rc = cpu_moe_ffn(cb, il, cb->xb, n, cb->moe_out))) return rc;
            residual_add(cb->x, cb->moe_out, lv->post_ffn_norm, NULL, n, E, c->rms_eps);
            continue;
        }
        if ((rc = cpu_matmul_ffn_in(cb, &L->w_gate, &L->w_up, cb->xb, n))) return rc;
        if (lv->post_ffn_norm) {
            if ((rc = cpu_matmul(cb, &L->w_down, cb->hb, c->n_ff, n, cb->xb, E, CPU_MM_STORE)))
                return rc;
            residual_add(cb->x, cb->xb, lv->post_ffn_norm, NULL, n, E, c->rms_eps);
        } else if ((rc = cpu_matmul(cb, &L->w_down, cb->hb, c->n_ff, n, cb->x, E, CPU_MM_ADD))) {
            return rc;
        }
    }
    for (int i = 0; i < n; i++) {
        cpu_seq *s = &cb->seqs[e[i].seq];
        s->len = e[i].pos + 1; /* an earlier position truncates */
    }
    if (l1 < c->n_layer) { /* not the last stage: the stream goes on */
        memcpy(x_out, cb->x, (size_t)n * E * sizeof *cb->x);
        return M40LLM_OK;
    }
    /* final norm of the entries that want logits, packed, then the LM head */
    int n_out = 0;
    for (int i = 0; i < n; i++)
        if (e[i].logits)
            cpu_rmsnorm(cb->xb + (size_t)n_out++ * E, cb->x + (size_t)i * E, cb->output_norm, E,
                        c->rms_eps);
    if (n_out == 0) return M40LLM_OK;
    rc = cpu_matmul(cb, &m->output, cb->xb, E, n_out, logits, c->n_vocab, CPU_MM_STORE);
    if (rc || !(c->final_softcap > 0.0f)) return rc;
    const float cap = c->final_softcap;
    for (size_t t = 0; t < (size_t)n_out * c->n_vocab; t++)
        logits[t] = cap * tanhf(logits[t] / cap);
    return M40LLM_OK;
}

/* After a call abandoned or failed part way (any part, any layer): K/V may
 * be overwritten from each entry's position on, so every sequence of the
 * call is cut back to its first position in it. */
static void cut_back(cpu_backend *cb, const backend_entry *e, int n) {
    for (int i = 0; i < n; i++) {
        cpu_seq *s = &cb->seqs[e[i].seq];
        if (e[i].pos < s->len) s->len = e[i].pos;
    }
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
    if (b->params.layer_begin || b->params.layer_end)
        return err_set(M40LLM_ERR_INVALID_ARG, "cpu backend: a stage runs forward_stage");
    int start = 0;
    while (start < n) {
        int end = backend_batch_part(e, start, n, n);
        if ((rc = forward_run(cb, e + start, end - start, NULL, NULL, logits))) {
            cut_back(cb, e, n);
            return rc;
        }
        for (int i = start; i < end; i++)
            if (e[i].logits) logits += b->model->cfg.n_vocab;
        start = end;
    }
    return M40LLM_OK;
}

/* ids[r] = the argmax of each of n_out rows (the lowest id on ties) */
static void rows_argmax(const float *lg, int n_out, int V, int32_t *ids) {
    for (int r = 0; r < n_out; r++) {
        const float *l = lg + (size_t)r * V;
        int best = 0;
        for (int t = 1; t < V; t++)
            if (l[t] > l[best]) best = t; /* strict: lowest id wins ties */
        ids[r] = best;
    }
}

static int cpu_forward_stage(backend *b, const backend_entry *e, int n, const float *x_in,
                             float *x_out, float *logits, int32_t *ids) {
    cpu_backend *cb = (cpu_backend *)b;
    int rc = backend_validate_batch(b, e, n);
    if (!rc) rc = backend_check_stage(b, e, n, x_in, x_out, logits, ids);
    if (rc) return rc;
    int l0, l1, n_out = 0;
    backend_layers(b, &l0, &l1);
    for (int i = 0; i < n; i++) n_out += e[i].logits;
    const int V = b->model->cfg.n_vocab;
    float *lg = logits;
    if (l1 == b->model->cfg.n_layer && n_out && !logits) {
        lg = malloc((size_t)n_out * V * sizeof *lg);
        if (!lg) return err_set(M40LLM_ERR_OOM, "cpu backend: no memory for %d logits rows", n_out);
    }
    rc = forward_run(cb, e, n, l0 == 0 ? NULL : x_in, x_out, lg);
    if (rc)
        cut_back(cb, e, n);
    else if (lg && !logits)
        rows_argmax(lg, n_out, V, ids);
    if (lg != logits) free(lg);
    return rc;
}

static int cpu_seq_cut(backend *b, int seq, int len) {
    cpu_backend *cb = (cpu_backend *)b;
    if (seq < 0 || seq >= b->params.n_seq_max || len < 0 || len > cb->seqs[seq].len)
        return err_set(M40LLM_ERR_INVALID_ARG, "seq_cut: sequence %d to %d positions", seq, len);
    cb->seqs[seq].len = len;
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
    if (rc == M40LLM_OK) rows_argmax(lg, n_out, V, ids);
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
    free(cb->vecs);
    free(cb->lv);
    free(cb->x);
    free(cb->xb);
    free(cb->q);
    free(cb->k);
    free(cb->v);
    free(cb->att);
    free(cb->hb);
    free(cb->rope);
    free(cb->moe_logits);
    free(cb->moe_cand);
    free(cb->moe_ids);
    free(cb->moe_w);
    free(cb->moe_count);
    free(cb->moe_order);
    free(cb->moe_x);
    free(cb->moe_y);
    free(cb->moe_out);
    free(cb->moe_hits);
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
    .block_copy = cpu_block_copy,
    .seq_capacity = cpu_seq_capacity,
    .forward_stage = cpu_forward_stage,
    .seq_cut = cpu_seq_cut,
    .mem_used = cpu_mem_used,
    .destroy = cpu_destroy,
};

/* The mixture-of-experts buffers (cpu_internal.h), for a model with experts. */
static int alloc_moe(cpu_backend *cb) {
    const model_config *c = &cb->base.model->cfg;
    if (c->n_expert == 0) return M40LLM_OK;
    const size_t n = (size_t)cb->base.params.n_batch_max, X = (size_t)c->n_expert,
                 K = (size_t)c->n_expert_used, E = (size_t)c->n_embd;
    /* entry * k + slot must fit the int32 order (checked before allocating) */
    if (n * K > INT32_MAX)
        return err_set(M40LLM_ERR_UNSUPPORTED, "cpu backend: %zu entries x %zu experts", n, K);
    uint64_t *acct = &cb->scratch_bytes;
    cb->moe_logits = xcalloc(n * X, sizeof(float), acct);
    cb->moe_cand = xcalloc(X, sizeof *cb->moe_cand, acct);
    cb->moe_ids = xcalloc(n * K, sizeof(int32_t), acct);
    cb->moe_w = xcalloc(n * K, sizeof(float), acct);
    cb->moe_count = xcalloc(X + 1, sizeof(int32_t), acct);
    cb->moe_order = xcalloc(n * K, sizeof(int32_t), acct);
    cb->moe_x = xcalloc(n * E, sizeof(float), acct);
    cb->moe_y = xcalloc(n * E, sizeof(float), acct);
    cb->moe_out = xcalloc(n * E, sizeof(float), acct);
    cb->moe_hits = xcalloc((size_t)c->n_layer * X, sizeof(uint64_t), acct);
    if (!cb->moe_logits || !cb->moe_cand || !cb->moe_ids || !cb->moe_w || !cb->moe_count ||
        !cb->moe_order || !cb->moe_x || !cb->moe_y || !cb->moe_out || !cb->moe_hits)
        return err_set(M40LLM_ERR_OOM, "cpu backend: no memory for the experts' buffers");
    return M40LLM_OK;
}

/* Floats of every vector the block reads (norms, biases, rope_freqs). */
static size_t vecs_floats(const model *m) {
    const model_config *c = &m->cfg;
    size_t n = (size_t)c->n_embd + (size_t)c->n_rot / 2;
    for (int il = 0; il < c->n_layer; il++) {
        model_tensor *ts[MODEL_LAYER_TENSORS];
        model_layer_tensors(&m->layers[il], ts);
        for (int k = 0; k < MODEL_LAYER_TENSORS; k++)
            if (model_has(ts[k]) && ts[k]->ne[1] == 1) n += (size_t)ts[k]->ne[0];
    }
    return n;
}

/* Distinct (RoPE base, scale, factors) of the layers, numbered in layer
 * order; writes each layer's number where lv is given. Each layer is
 * compared with the first layer of each set so far (the architectures give
 * at most two); -1 beyond CPU_ROPE_SETS. */
enum { CPU_ROPE_SETS = 8 };
static int rope_sets(const model *m, cpu_layer_vecs *lv) {
    int n = 0, first[CPU_ROPE_SETS];
    for (int il = 0; il < m->cfg.n_layer; il++) {
        const model_layer *L = &m->layers[il];
        int set = 0;
        for (; set < n; set++) {
            const model_layer *P = &m->layers[first[set]];
            if (P->rope_base == L->rope_base && P->rope_freq_scale == L->rope_freq_scale &&
                P->rope_factors == L->rope_factors)
                break;
        }
        if (set == n) {
            if (n == CPU_ROPE_SETS) return -1;
            first[n++] = il;
        }
        if (lv) lv[il].rope_set = set;
    }
    return n ? n : 1;
}

/* Dequantizes the vectors into the arena and points the layers at them. */
static int load_vecs(cpu_backend *cb) {
    const model *m = cb->base.model;
    const model_config *c = &m->cfg;
    const int E = c->n_embd;
    const float off = c->norm_w_offset;
    float *at = cb->vecs;
    int rc = M40LLM_OK;
#define VEC(dst, t, len, o)                                                                        \
    do {                                                                                           \
        if (!rc && model_has(t)) {                                                                 \
            rc = load_vec((t), at, (len), (o));                                                    \
            (dst) = at;                                                                            \
            at += (len);                                                                           \
        }                                                                                          \
    } while (0)
    for (int il = 0; il < c->n_layer && !rc; il++) {
        const model_layer *L = &m->layers[il];
        cpu_layer_vecs *lv = &cb->lv[il];
        VEC(lv->attn_norm, &L->attn_norm, E, off);
        VEC(lv->ffn_norm, &L->ffn_norm, E, off);
        VEC(lv->post_attn_norm, &L->post_attn_norm, E, off);
        VEC(lv->post_ffn_norm, &L->post_ffn_norm, E, off);
        VEC(lv->q_norm, &L->q_norm, c->head_dim, off);
        VEC(lv->k_norm, &L->k_norm, c->head_dim, off);
        VEC(lv->bq, &L->bq, cb->q_dim, 0.0f);
        VEC(lv->bk, &L->bk, cb->kv_dim, 0.0f);
        VEC(lv->bv, &L->bv, cb->kv_dim, 0.0f);
        VEC(lv->bo, &L->bo, E, 0.0f);
    }
    VEC(cb->output_norm, &m->output_norm, E, off);
    const model_tensor *factors = model_rope_factors(m, cb->base.params.n_ctx);
    if (factors) VEC(cb->rope_freqs, factors, c->n_rot / 2, 0.0f);
#undef VEC
    rope_sets(m, cb->lv);
    return rc;
}

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
    int rc = backend_check_layers(m, p);
    if (rc) return rc;
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
    cb->kv_elt = kv_elt;
    /* the KV sizes first: one that cannot exist is refused before the rest
     * is allocated */
    rc = cpu_kv_init(cb);
    if (!rc) rc = threadpool_create(p->n_threads, &cb->pool);
    if (rc) {
        cpu_destroy(&cb->base);
        return rc;
    }
    /* the FFN widths the layers use (n_ff dense, n_ff_exp MoE), once the KV
     * sizes have shown the layer count is real */
    for (int il = 0; il < c->n_layer; il++) {
        const int w = model_layer_moe(&m->layers[il]) ? c->n_ff_exp : c->n_ff;
        if (w > cb->ffn_width) cb->ffn_width = w;
    }
    cb->max_in = cb->ffn_width > c->n_embd ? cb->ffn_width : c->n_embd;
    if (cb->q_dim > cb->max_in) cb->max_in = cb->q_dim;
    const size_t n = (size_t)p->n_batch_max, E = (size_t)c->n_embd, T = (size_t)p->n_threads;
    uint64_t *acct = &cb->scratch_bytes;
    cb->vecs = xcalloc(vecs_floats(m), sizeof(float), acct);
    cb->lv = xcalloc((size_t)c->n_layer, sizeof *cb->lv, acct);
    cb->x = xcalloc(n * E, sizeof(float), acct);
    cb->xb = xcalloc(n * E, sizeof(float), acct);
    cb->q = xcalloc(n * (size_t)cb->q_dim, sizeof(float), acct);
    cb->k = xcalloc(n * (size_t)cb->kv_dim, sizeof(float), acct);
    cb->v = xcalloc(n * (size_t)cb->kv_dim, sizeof(float), acct);
    cb->att = xcalloc(n * (size_t)cb->q_dim, sizeof(float), acct);
    cb->hb = xcalloc(n * (size_t)cb->ffn_width, sizeof(float), acct);
    if ((rc = alloc_moe(cb))) {
        cpu_destroy(&cb->base);
        return rc;
    }
    cb->n_rope_sets = rope_sets(m, NULL);
    if (cb->n_rope_sets < 0) {
        cpu_destroy(&cb->base);
        return err_set(M40LLM_ERR_UNSUPPORTED,
                       "cpu backend: more than %d distinct RoPE settings across the layers",
                       CPU_ROPE_SETS);
    }
    cb->rope = xcalloc((size_t)cb->n_rope_sets * n * (size_t)(c->n_rot > 0 ? c->n_rot : 1),
                       sizeof(float), acct);
    cb->wbuf = xcalloc(T * 2 * CPU_MM_TILE * (size_t)cb->max_in, sizeof(float), acct);
    cb->xsum = xcalloc(n * (size_t)(cb->max_in / CPU_QBLK + 1), sizeof(float), acct);
    cb->scores = xcalloc(T * (size_t)p->n_ctx, sizeof(float), acct);
    cb->kvrow = xcalloc(T * 2 * (size_t)c->head_dim, sizeof(float), acct);
    if (!cb->vecs || !cb->lv || !cb->x || !cb->xb || !cb->q || !cb->k || !cb->v || !cb->att ||
        !cb->hb || !cb->rope || !cb->wbuf || !cb->xsum || !cb->scores || !cb->kvrow) {
        cpu_destroy(&cb->base);
        return err_set(M40LLM_ERR_OOM, "cpu backend: no memory for buffers of a %d-entry batch",
                       p->n_batch_max);
    }
    rc = load_vecs(cb);
    if (rc) {
        cpu_destroy(&cb->base);
        return rc;
    }
    *out = &cb->base;
    return M40LLM_OK;
}
