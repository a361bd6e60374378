/* CUDA backend: creation (weights repacked onto the device, KV cache,
 * activation buffers) and the backend_ops glue. The forward pass itself is
 * in backend_cuda_fwd.c. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cuda_backend.h"
#include "model_rope.h"
#include "quant.h"

/* backend_gemv_kernel_from_name's numbers are the GEMV_KERNEL_* values */
_Static_assert(GEMV_KERNEL_AUTO == 0 && GEMV_KERNEL_WARP == 1 && GEMV_KERNEL_STAGED == 2 &&
                   GEMV_KERNEL_PERSIST == 3 && GEMV_KERNEL_ROWS4 == 4,
               "backend.c's GEMV kernel names");

static int cb_alloc(cuda_backend *cb, size_t bytes, const char *what, void **out) {
    *out = NULL;
    if (bytes == 0) bytes = 256;
    if (cb->n_allocs == cb->cap_allocs) {
        int cap = cb->cap_allocs ? cb->cap_allocs * 2 : 64;
        void **a = realloc(cb->allocs, (size_t)cap * sizeof *a);
        if (!a) return err_set(M40LLM_ERR_OOM, "out of host memory");
        cb->allocs = a;
        cb->cap_allocs = cap;
    }
    void *p = NULL;
    cudaError_t e = cudaMalloc(&p, bytes);
    if (e != cudaSuccess) {
        cudaGetLastError();
        size_t fr = 0, tot = 0;
        cudaMemGetInfo(&fr, &tot);
        return err_set(M40LLM_ERR_OOM,
                       "%s:%d: out of GPU memory for %s: %zu bytes asked, %zu of %zu free "
                       "(%llu already held by this model)",
                       __FILE__, __LINE__, what, bytes, fr, tot, (unsigned long long)cb->mem);
    }
    cb->allocs[cb->n_allocs++] = p;
    cb->mem += bytes;
    *out = p;
    return M40LLM_OK;
}

static void cuda_destroy(backend *b) {
    cuda_backend *cb = (cuda_backend *)b;
    if (!cb) return;
    if (cb->ctx) {
        cudaSetDevice(cb->device);
        cudaStreamSynchronize(cb->st);
    }
    if (cb->profile) cuda_profile_report(cb);
    for (int i = 0; i < cb->n_graphs; i++) cudaGraphExecDestroy(cb->graphs[i].exec);
    for (int i = 0; i < cb->n_allocs; i++) cudaFree(cb->allocs[i]);
    if (cb->h_in) cudaFreeHost(cb->h_in);
    if (cb->h_ids) cudaFreeHost(cb->h_ids);
    if (cb->h_logits) cudaFreeHost(cb->h_logits);
    if (cb->h_x) cudaFreeHost(cb->h_x);
    free(cb->allocs);
    free(cb->layers);
    free(cb->seq_len);
    free(cb->seq_pages);
    free(cb->h_table);
    m40llm_destroy_context(cb->ctx);
    free(cb);
}

/* ---- weights ---- */
typedef struct uploader {
    cuda_backend *cb;
    void *staging; /* device copy of one raw tensor */
    size_t staging_bytes;
} uploader;

/* rows of a tensor as a matrix: an expert tensor's matrices stacked */
static int64_t tensor_rows(const model_tensor *t) {
    return t->ne[1] * (t->ne[2] > 1 ? t->ne[2] : 1);
}

static int up_matrix(uploader *u, gpu_matrix *m, const model_tensor **parts, int n_parts) {
    cuda_backend *cb = u->cb;
    int64_t rows = 0, cols = parts[0]->ne[0];
    for (int i = 0; i < n_parts; i++) rows += tensor_rows(parts[i]);
    size_t qb, sb, hb;
    size_t bytes = gpu_matrix_layout(m, parts[0]->type, rows, cols, &qb, &sb, &hb);
    if (!bytes)
        return err_set(M40LLM_ERR_UNSUPPORTED, "%s: type %s with %lld columns has no GPU layout",
                       parts[0]->name,
                       quant_info(parts[0]->type) ? quant_info(parts[0]->type)->name : "?",
                       (long long)cols);
    void *mem;
    int rc = cb_alloc(cb, bytes, parts[0]->name, &mem);
    if (rc) return rc;
    gpu_matrix_place(m, mem, qb, sb);
    int64_t r0 = 0;
    for (int i = 0; i < n_parts; i++) {
        const model_tensor *t = parts[i];
        /* on the stream the repack runs on: a synchronous copy from pageable
         * memory may return before its data has landed on the device */
        CUDA_TRY(cudaMemcpyAsync(u->staging, t->data, t->nbytes, cudaMemcpyHostToDevice, cb->st));
        rc = launch_repack(m, r0, u->staging, tensor_rows(t), cb->st);
        if (rc) return err_prefix(rc, "%s", t->name);
        CUDA_TRY(cudaStreamSynchronize(cb->st)); /* staging is reused next */
        r0 += tensor_rows(t);
    }
    return M40LLM_OK;
}

static int up_one(uploader *u, gpu_matrix *m, const model_tensor *t) {
    return up_matrix(u, m, &t, 1);
}

/* Vectors (norm gains, biases) as one f32 array on the device: the parts
 * end to end, each + offset (gemma's (1 + w) norms). *dst stays NULL when
 * the first part is absent (an optional vector). */
static int up_vecs(uploader *u, float **dst, const model_tensor *const *parts, int n_parts,
                   float offset) {
    *dst = NULL;
    if (!model_has(parts[0])) return M40LLM_OK;
    int64_t n = 0;
    for (int i = 0; i < n_parts; i++) n += parts[i]->ne[0];
    float *tmp = malloc((size_t)n * sizeof(float));
    if (!tmp) return err_set(M40LLM_ERR_OOM, "out of host memory");
    int rc = M40LLM_OK;
    for (int i = 0, at = 0; i < n_parts && !rc; at += (int)parts[i]->ne[0], i++) {
        rc = quant_dequantize_row(parts[i]->type, parts[i]->data, tmp + at, parts[i]->ne[0]);
        if (rc) err_prefix(rc, "%s", parts[i]->name);
    }
    for (int64_t i = 0; offset != 0.0f && i < n; i++) tmp[i] += offset;
    if (!rc) rc = cb_alloc(u->cb, (size_t)n * sizeof(float), parts[0]->name, (void **)dst);
    if (!rc) {
        cudaError_t e = cudaMemcpyAsync(*dst, tmp, (size_t)n * sizeof(float),
                                        cudaMemcpyHostToDevice, u->cb->st);
        if (e == cudaSuccess) e = cudaStreamSynchronize(u->cb->st); /* tmp is freed next */
        if (e != cudaSuccess) rc = cuda_fail(e, "copy of a vector", __FILE__, __LINE__);
    }
    free(tmp);
    return rc;
}

static int up_vec(uploader *u, float **dst, const model_tensor *t, float offset) {
    return up_vecs(u, dst, &t, 1, offset);
}

/* A layer's RoPE and attention settings from the model description. */
static void layer_settings(cuda_backend *cb, const model_layer *L, cuda_layer *G) {
    const model_config *c = &cb->base.model->cfg;
    rope_cfg *r = &G->rope;
    memset(r, 0, sizeof *r);
    r->n_head = c->n_head;
    r->n_kv = c->n_head_kv;
    r->hd = c->head_dim;
    r->n_rot = c->n_rot;
    r->base = L->rope_base;
    r->scale = L->rope_freq_scale;
    r->neox = c->rope_kind == MODEL_ROPE_NEOX;
    r->factors = L->rope_factors ? cb->rope_freqs : NULL;
    if (c->rope_scaling == MODEL_ROPE_SCALING_YARN) {
        r->yarn = 1;
        r->factors = NULL; /* the CPU's YaRN angle has no factors either */
        double lo, hi;
        model_yarn_range(c, L->rope_base, &lo, &hi);
        r->yarn_lo = (float)lo;
        r->yarn_hi = (float)hi;
    }
    r->mscale = model_rope_mscale(c); /* YaRN's, LongRoPE's attention factor; else 1 */
    G->att = (attn_mods){c->attn_scale, c->attn_softcap, L->n_swa};
    G->qkv_epilogue = !G->bqkv && !G->q_norm && !r->neox;
}

static size_t max_sz(size_t a, size_t b) {
    return a > b ? a : b;
}

static int upload_weights(cuda_backend *cb) {
    const model *m = cb->base.model;
    const model_config *c = &m->cfg;
    uploader u = {cb, NULL, 0};
    size_t big =
        max_sz(cb->first || cb->last ? m->tok_embd.nbytes : 0, cb->last ? m->output.nbytes : 0);
    for (int l = cb->l0; l < cb->l1; l++) {
        const model_layer *L = &m->layers[l];
        const model_tensor *ts[] = {&L->wq,        &L->wk,      &L->wv,       &L->wo,
                                    &L->w_gate,    &L->w_up,    &L->w_down,   &L->router,
                                    &L->gate_exps, &L->up_exps, &L->down_exps};
        for (size_t i = 0; i < sizeof ts / sizeof ts[0]; i++) big = max_sz(big, ts[i]->nbytes);
    }
    int rc = cb_alloc(cb, big, "weight staging", &u.staging);
    if (rc) return rc;
    /* a stage holds the embedding when it embeds (or its output is tied
     * to it) and the head when it is the last */
    if (cb->first || (cb->last && m->tied_output)) rc = up_one(&u, &cb->tok_embd, &m->tok_embd);
    if (!rc && cb->last && !m->tied_output) rc = up_one(&u, &cb->output, &m->output);
    if (!rc && cb->last && m->tied_output) cb->output = cb->tok_embd;
    const float off = c->norm_w_offset;
    if (!rc && cb->last) rc = up_vec(&u, &cb->output_norm, &m->output_norm, off);
    const model_tensor *factors = model_rope_factors(m, cb->base.params.n_ctx);
    if (!rc && factors) rc = up_vec(&u, &cb->rope_freqs, factors, 0.0f);
    for (int l = cb->l0; l < cb->l1 && !rc; l++) {
        const model_layer *L = &m->layers[l];
        cuda_layer *G = &cb->layers[l];
        G->qkv_fused = L->wq.type == L->wk.type && L->wq.type == L->wv.type;
        if (G->qkv_fused) {
            const model_tensor *p[3] = {&L->wq, &L->wk, &L->wv};
            rc = up_matrix(&u, &G->wqkv, p, 3);
        } else {
            rc = up_one(&u, &G->wq, &L->wq);
            if (!rc) rc = up_one(&u, &G->wk, &L->wk);
            if (!rc) rc = up_one(&u, &G->wv, &L->wv);
        }
        if (!rc) rc = up_one(&u, &G->wo, &L->wo);
        G->moe = model_layer_moe(L);
        if (G->moe) {
            if (!rc) rc = up_one(&u, &G->router, &L->router);
            if (!rc) rc = up_one(&u, &G->gate_exps, &L->gate_exps);
            if (!rc) rc = up_one(&u, &G->up_exps, &L->up_exps);
            if (!rc) rc = up_one(&u, &G->down_exps, &L->down_exps);
        } else {
            if (!rc) rc = up_one(&u, &G->w_gate, &L->w_gate);
            if (!rc) rc = up_one(&u, &G->w_up, &L->w_up);
            if (!rc) rc = up_one(&u, &G->w_down, &L->w_down);
        }
        if (!rc) rc = up_vec(&u, &G->attn_norm, &L->attn_norm, off);
        if (!rc) rc = up_vec(&u, &G->ffn_norm, &L->ffn_norm, off);
        if (!rc) rc = up_vec(&u, &G->post_attn_norm, &L->post_attn_norm, off);
        if (!rc) rc = up_vec(&u, &G->post_ffn_norm, &L->post_ffn_norm, off);
        if (!rc) rc = up_vec(&u, &G->q_norm, &L->q_norm, off);
        if (!rc) rc = up_vec(&u, &G->k_norm, &L->k_norm, off);
        if (!rc) rc = up_vec(&u, &G->bo, &L->bo, 0.0f);
        if (!rc) {
            const model_tensor *b[3] = {&L->bq, &L->bk, &L->bv};
            rc = up_vecs(&u, &G->bqkv, b, 3, 0.0f);
        }
        if (!rc && (!G->q_norm) != (!G->k_norm))
            rc = err_set(M40LLM_ERR_UNSUPPORTED, "layer %d: a q norm without a k norm", l);
        if (!rc) layer_settings(cb, L, G);
    }
    /* the staging buffer goes back now: it is the size of the largest tensor */
    if (u.staging) {
        cudaFree(u.staging);
        for (int i = 0; i < cb->n_allocs; i++)
            if (cb->allocs[i] == u.staging) {
                cb->allocs[i] = cb->allocs[--cb->n_allocs];
                cb->mem -= big;
                break;
            }
    }
    return rc;
}

/* bytes of one KV page of one layer (K or V) */
static size_t kv_page_bytes(const cuda_backend *cb) {
    const model_config *c = &cb->base.model->cfg;
    const size_t elt = cb->base.params.kv_type == BACKEND_KV_F16 ? 2 : 4;
    return ((size_t)c->n_head_kv * c->head_dim * elt) << cb->page_shift;
}

/* the matrices of a layer that the GEMM steps multiply by (those the layer
 * lacks have no q) */
#define GEMM_LAYER_MATS 8
static void gemm_layer_mats(cuda_layer *G, gpu_matrix *ms[GEMM_LAYER_MATS]) {
    gpu_matrix *all[GEMM_LAYER_MATS] = {&G->wqkv, &G->wq,     &G->wk,   &G->wv,
                                        &G->wo,   &G->w_gate, &G->w_up, &G->w_down};
    memcpy(ms, all, sizeof all);
}

/* bytes of the largest dense copy a prefill GEMM needs */
static size_t dense_bytes(const gpu_matrix *m, int f16) {
    int t = m->type;
    if ((t == QT_F16 && f16) || (t == QT_F32 && !f16)) return 0; /* used in place */
    return (size_t)m->rows * m->cols * (f16 ? 2 : 4);
}

/* m's dense copy, when it needs one and it fits in budget with *used */
static int cache_dense(cuda_backend *cb, gpu_matrix *m, size_t budget, size_t *used) {
    const size_t b = m->q && !m->dense ? dense_bytes(m, cb->gemm_f16) : 0;
    if (!b || *used + b > budget) return M40LLM_OK;
    int rc = cb_alloc(cb, b, "GEMM weight cache", &m->dense);
    if (!rc) rc = launch_dequant(m, m->dense, cb->gemm_f16, cb->st);
    if (!rc) *used += b;
    return rc;
}

/* Dense copies of the matrices for the GEMM steps, made once here instead
 * of at every step (a 32-entry decode step of a 7B Q4_0 spent 37% of its
 * time dequantizing on an H100): each matrix in layer order that still
 * fits in gemm_cache (at most 0.9) of the memory free now, less a KV pool
 * of a fixed size (or room for one whole context in a kv_fraction pool),
 * the page table and 256 MiB for cuBLAS's workspace. The
 * same dequantization kernel makes them, so results do not change. */
static int alloc_gemm_cache(cuda_backend *cb) {
    const backend_params *p = &cb->base.params;
    /* the default where it was measured: f16 copies for tensor cores (sm_70+;
     * 3.6x a Q4_0 model); Maxwell's FP32 copies (7x) would take KV room */
    double share =
        p->gemm_cache < 0 ? (cb->gemm_f16 ? BACKEND_GEMM_CACHE_DEFAULT : 0) : p->gemm_cache;
    if (share > 0.9) share = 0.9;
    if (!(share > 0) || p->layer_end > p->layer_begin) return M40LLM_OK; /* (stages: none) */
    size_t fr = 0, tot = 0;
    CUDA_TRY(cudaMemGetInfo(&fr, &tot));
    const size_t page_kv =
        kv_page_bytes(cb) * 2 * (size_t)(cb->l1 - cb->l0); /* K + V, all layers */
    size_t pool = 0;                                       /* what the KV pool needs first: */
    if (cb->n_pages > 0)                                   /* a pool of a fixed size */
        pool = page_kv * (size_t)cb->n_pages;
    else if (p->kv_fraction > 0) /* a pool from kv_fraction: room for one whole context */
        pool = (size_t)((double)(page_kv * (size_t)cb->pages_per_seq) / p->kv_fraction);
    fr = fr > pool ? fr - pool : 0;
    const size_t reserve = (size_t)p->n_seq_max * cb->pages_per_seq * 4 + (256u << 20);
    fr = fr > reserve ? fr - reserve : 0;
    const size_t budget = (size_t)((double)fr * share);
    size_t used = 0;
    for (int l = cb->l0; l < cb->l1; l++) {
        gpu_matrix *ms[GEMM_LAYER_MATS];
        gemm_layer_mats(&cb->layers[l], ms);
        for (int i = 0; i < GEMM_LAYER_MATS; i++) {
            int rc = cache_dense(cb, ms[i], budget, &used);
            if (rc) return rc;
        }
    }
    if (cb->last) { /* the LM head, for steps with many logits rows */
        int rc = cache_dense(cb, &cb->output, budget, &used);
        if (rc) return rc;
    }
    cb->gemm_cache_bytes = used;
    CUDA_TRY(cudaStreamSynchronize(cb->st));
    return M40LLM_OK;
}

/* The page table and the KV pool (cb->n_pages pages, or 0: from kv_fraction). */
static int alloc_kv(cuda_backend *cb) {
    backend_params *p = &cb->base.params;
    const int npt = p->n_seq_max * cb->pages_per_seq;
    int rc = cb_alloc(cb, (size_t)npt * 4, "page table", (void **)&cb->page_table);
    if (rc) return rc;
    if (!p->paged) {
        if ((rc = launch_iota(cb->page_table, npt, 0, cb->st))) return rc;
    } else {
        /* rows are set by seq_set_blocks; entries past a sequence's pages
         * point at page 0, a valid page that is never read */
        cb->h_table = calloc((size_t)npt, sizeof *cb->h_table);
        if (!cb->h_table) return err_set(M40LLM_ERR_OOM, "out of host memory");
        CUDA_TRY(cudaMemsetAsync(cb->page_table, 0, (size_t)npt * 4, cb->st));
    }
    const size_t page_bytes = kv_page_bytes(cb);
    if (cb->n_pages == 0) {
        size_t fr = 0, tot = 0;
        CUDA_TRY(cudaMemGetInfo(&fr, &tot));
        const int nl = cb->l1 - cb->l0; /* a stage holds its layers' K and V only */
        double n = floor((double)fr * p->kv_fraction / ((double)page_bytes * 2 * nl));
        if (n < 1)
            return err_set(M40LLM_ERR_OOM,
                           "KV pool: kv_fraction %g of the %zu bytes free holds no block of %zu "
                           "bytes",
                           p->kv_fraction, fr, page_bytes * 2 * nl);
        cb->n_pages = n > INT32_MAX ? INT32_MAX : (int)n;
    }
    p->n_kv_blocks = cb->n_pages;
    cb->kv_layer_bytes = (size_t)cb->n_pages * page_bytes;
    return cb_alloc(cb, cb->kv_layer_bytes * 2 * (size_t)(cb->l1 - cb->l0), "the KV cache",
                    (void **)&cb->kv);
}

/* The mixture-of-experts step buffers: B entries x k slots. */
static int alloc_moe(cuda_backend *cb) {
    const model_config *c = &cb->base.model->cfg;
    const size_t B = (size_t)cb->base.params.n_batch_max, X = (size_t)c->n_expert;
    const size_t P = B * (size_t)c->n_expert_used, F = (size_t)c->n_ff_exp;
    if (P > INT32_MAX / 2)
        return err_set(M40LLM_ERR_INVALID_ARG, "cuda backend: %zu expert pairs in a batch", P);
    if (c->n_expert > 1024 || c->n_expert_used > 64) /* the routing kernel's bounds */
        return err_set(M40LLM_ERR_UNSUPPORTED,
                       "cuda backend: %d experts, %d per token (at most 1024 and 64)", c->n_expert,
                       c->n_expert_used);
    bool mixed = false; /* gate and up of different types need a buffer for the gate */
    for (int l = cb->l0; l < cb->l1; l++)
        mixed |= cb->layers[l].moe && cb->layers[l].gate_exps.type != cb->layers[l].up_exps.type;
    const int items = moe_max_items((int)P, c->n_expert, 8);
    struct {
        void **dst;
        size_t bytes;
    } bufs[] = {
        {(void **)&cb->moe_logits, B * X * 4},
        {(void **)&cb->moe_ids, P * 4},
        {(void **)&cb->moe_w, P * 4},
        {(void **)&cb->moe_order, P * 4},
        {(void **)&cb->moe_items, (size_t)items * sizeof(moe_item)},
        {(void **)&cb->moe_nitems, 4},
        {(void **)&cb->moe_g, (mixed ? P : 1) * F * 4},
        {(void **)&cb->moe_h, P * F * 4},
        {(void **)&cb->moe_d, P * (size_t)c->n_embd * 4},
    };
    for (size_t i = 0; i < sizeof bufs / sizeof bufs[0]; i++) {
        int rc = cb_alloc(cb, bufs[i].bytes, "mixture-of-experts activations", bufs[i].dst);
        if (rc) return rc;
    }
    return M40LLM_OK;
}

static int alloc_buffers(cuda_backend *cb) {
    const model_config *c = &cb->base.model->cfg;
    const backend_params *p = &cb->base.params;
    size_t B = (size_t)p->n_batch_max;
    int rc;
    cb->nq = c->n_head * c->head_dim;
    cb->nkv = c->n_head_kv * c->head_dim;
    int aw = c->n_embd;
    if (c->n_ff > aw) aw = c->n_ff;
    if (cb->nq > aw) aw = cb->nq;
    cb->act_w = aw;
    if ((rc = attention_plan(c->n_head, c->n_head_kv, c->head_dim, p->n_ctx, 32, 128, &cb->plan)))
        return rc;
    if ((rc = attention_plan(c->n_head, c->n_head_kv, c->head_dim, p->n_ctx, 256, 512,
                             &cb->plan_dec)))
        return rc;
    /* one 32-position split at any context (used only while every entry
     * is in it, so it never writes partials) */
    if ((rc = attention_plan(c->n_head, c->n_head_kv, c->head_dim, p->n_ctx < 32 ? p->n_ctx : 32, 1,
                             128, &cb->plan_dec1)))
        return rc;
    size_t part = attention_partial_floats(&cb->plan, (int)B);
    size_t part_dec =
        attention_partial_floats(&cb->plan_dec, (int)(B < M40_GEMV_MAX_B ? B : M40_GEMV_MAX_B));
    size_t cnt = attention_counters(&cb->plan, (int)B);
    size_t cnt_dec =
        attention_counters(&cb->plan_dec, (int)(B < M40_GEMV_MAX_B ? B : M40_GEMV_MAX_B));
    struct {
        void **dst;
        size_t bytes;
        const char *what;
    } bufs[] = {
        {(void **)&cb->x, B * c->n_embd * 4, "activations"},
        {(void **)&cb->xn, B * aw * 4, "activations"},
        {(void **)&cb->a16, B * aw * 2, "activations"},
        {(void **)&cb->q, B * cb->nq * 4, "activations"},
        {(void **)&cb->att, B * cb->nq * 4, "activations"},
        {(void **)&cb->h, B * c->n_ff * 4, "activations"},
        {(void **)&cb->xo, B * c->n_embd * 4, "activations"},
        {(void **)&cb->logits, (cb->last ? B : 1) * c->n_vocab * 4, "logits"},
        {(void **)&cb->partial, (part > part_dec ? part : part_dec) * 4, "attention splits"},
        {(void **)&cb->att_count, (cnt > cnt_dec ? cnt : cnt_dec) * 4, "attention splits"},
        {(void **)&cb->d_in, 4 * B * 4, "batch indices"},
        {(void **)&cb->d_ids, B * 4, "batch indices"},
    };
    for (size_t i = 0; i < sizeof bufs / sizeof bufs[0]; i++)
        if ((rc = cb_alloc(cb, bufs[i].bytes, bufs[i].what, bufs[i].dst))) return rc;
    CUDA_TRY(cudaMemsetAsync(cb->att_count, 0, (cnt > cnt_dec ? cnt : cnt_dec) * 4, cb->st));
    if ((rc = cb_alloc(cb, B * (cb->nq + 2 * cb->nkv) * 4, "activations", (void **)&cb->qkv)))
        return rc;
    if ((rc = cb_alloc(cb, B * c->n_embd * 4, "activations", (void **)&cb->y))) return rc;
    if (c->n_expert > 0 && (rc = alloc_moe(cb))) return rc;
    if (p->n_batch_max > M40_GEMV_MAX_B && cb->cublas) { /* prefill GEMM path */
        if ((rc = cb_alloc(cb, B * 2 * c->n_ff * 4, "activations", (void **)&cb->gu))) return rc;
        size_t ws = cb->last ? dense_bytes(&cb->output, cb->gemm_f16) : 0;
        for (int l = cb->l0; l < cb->l1; l++) {
            gpu_matrix *ms[GEMM_LAYER_MATS];
            gemm_layer_mats(&cb->layers[l], ms);
            for (int i = 0; i < GEMM_LAYER_MATS; i++)
                if (ms[i]->q) ws = max_sz(ws, dense_bytes(ms[i], cb->gemm_f16));
        }
        cb->wscratch_bytes = ws;
        if (ws && (rc = cb_alloc(cb, ws, "prefill weight scratch", &cb->wscratch))) return rc;
        if ((rc = alloc_gemm_cache(cb))) return rc;
    }
    CUDA_TRY(cudaMallocHost((void **)&cb->h_in, 4 * B * 4));
    CUDA_TRY(cudaMallocHost((void **)&cb->h_ids, B * 4));
    /* a pageable copy of one 32000-entry row took 32 us of the step on an
     * H200 (the driver stages it), a pinned one a few */
    CUDA_TRY(
        cudaMallocHost((void **)&cb->h_logits,
                       (B < (size_t)M40_GEMV_MAX_B ? B : (size_t)M40_GEMV_MAX_B) * c->n_vocab * 4));
    if (!cb->first || !cb->last) { /* zeros: the warm-up runs on them */
        CUDA_TRY(cudaMallocHost((void **)&cb->h_x, B * c->n_embd * sizeof(float)));
        memset(cb->h_x, 0, B * c->n_embd * sizeof(float));
    }
    /* the KV pool last: kv_fraction sizes it from what everything else left */
    return alloc_kv(cb);
}

/* ---- ops ---- */
static int cuda_seq_len(const backend *b, int seq) {
    const cuda_backend *cb = (const cuda_backend *)b;
    if (seq < 0 || seq >= b->params.n_seq_max) return 0;
    return cb->seq_len[seq];
}

static int cuda_seq_clear(backend *b, int seq) {
    cuda_backend *cb = (cuda_backend *)b;
    if (seq < 0 || seq >= b->params.n_seq_max)
        return err_set(M40LLM_ERR_INVALID_ARG, "sequence %d outside 0..%d", seq,
                       b->params.n_seq_max - 1);
    cb->seq_len[seq] = 0;
    if (b->params.paged) cb->seq_pages[seq] = 0; /* the pages' contents stay: shared */
    return M40LLM_OK;
}

static int cuda_seq_capacity(const backend *b, int seq) {
    const cuda_backend *cb = (const cuda_backend *)b;
    if (seq < 0 || seq >= b->params.n_seq_max) return 0;
    if (!b->params.paged) return b->params.n_ctx;
    int64_t cap = (int64_t)cb->seq_pages[seq] << cb->page_shift;
    return cap < b->params.n_ctx ? (int)cap : b->params.n_ctx;
}

/* Writes the sequence's row of the page table: a copy on the decode stream,
 * so it lands before the next forward's kernels (a captured graph reads the
 * table through its pointer, so replays see the new row). */
static int cuda_seq_set_blocks(backend *b, int seq, const int32_t *blocks, int n_blocks, int len) {
    cuda_backend *cb = (cuda_backend *)b;
    int rc = backend_check_blocks(b, seq, blocks, n_blocks, len);
    if (rc) return rc;
    const int pps = cb->pages_per_seq;
    int32_t *row = cb->h_table + (size_t)seq * pps;
    if (n_blocks) memmove(row, blocks, (size_t)n_blocks * sizeof *row);
    memset(row + n_blocks, 0, (size_t)(pps - n_blocks) * sizeof *row);
    CUDA_TRY(cudaSetDevice(cb->device));
    /* from pageable memory: the data is staged before the call returns,
     * so the host row may change again at once */
    CUDA_TRY(cudaMemcpyAsync(cb->page_table + (size_t)seq * pps, row, (size_t)pps * sizeof *row,
                             cudaMemcpyHostToDevice, cb->st));
    cb->seq_pages[seq] = n_blocks;
    cb->seq_len[seq] = len;
    return M40LLM_OK;
}

/* Copies on the decode stream, so the next forward's kernels see them: a
 * page is a row of each layer's K and V ([layer][K, V][page] rows
 * kv_layer_bytes apart), one 2-D copy where that pitch is within the
 * device's limit for one (memPitch, about 2 GiB), else a copy per row. */
static int cuda_block_copy(backend *b, int src, int dst) {
    cuda_backend *cb = (cuda_backend *)b;
    int rc = backend_check_copy(b, src, dst);
    if (rc) return rc;
    const size_t pb = kv_page_bytes(cb), rows = 2 * (size_t)(cb->l1 - cb->l0);
    CUDA_TRY(cudaSetDevice(cb->device));
    int max_pitch = 0;
    CUDA_TRY(cudaDeviceGetAttribute(&max_pitch, cudaDevAttrMaxPitch, cb->device));
    if (cb->kv_layer_bytes <= (size_t)max_pitch) {
        CUDA_TRY(cudaMemcpy2DAsync(cb->kv + (size_t)dst * pb, cb->kv_layer_bytes,
                                   cb->kv + (size_t)src * pb, cb->kv_layer_bytes, pb, rows,
                                   cudaMemcpyDeviceToDevice, cb->st));
        return M40LLM_OK;
    }
    for (size_t r = 0; r < rows; r++) {
        uint8_t *row = cb->kv + r * cb->kv_layer_bytes;
        CUDA_TRY(cudaMemcpyAsync(row + (size_t)dst * pb, row + (size_t)src * pb, pb,
                                 cudaMemcpyDeviceToDevice, cb->st));
    }
    return M40LLM_OK;
}

static uint64_t cuda_mem_used(const backend *b) {
    return ((const cuda_backend *)b)->mem;
}

/* forward, forward_argmax and forward_stage: the batch in parts (each as
 * one step); stage: x_in / x_out rows of a layer split's stage, or the
 * warm-up (its stream rows then absent: the step runs on whatever its
 * buffers hold, and writes nothing back). */
static int cuda_run(backend *b, const backend_entry *e, int n, const float *x_in, float *x_out,
                    float *logits, int32_t *ids, bool stage) {
    cuda_backend *cb = (cuda_backend *)b;
    int rc = backend_validate_batch(b, e, n);
    if (rc) return rc;
    if (!stage && (!cb->first || !cb->last))
        return err_set(M40LLM_ERR_INVALID_ARG, "cuda backend: a stage runs forward_stage");
    int n_out = 0;
    for (int i = 0; i < n; i++) n_out += e[i].logits;
    if (cb->last && n_out && !logits && !ids)
        return err_set(M40LLM_ERR_INVALID_ARG,
                       "cuda backend: %d entries want logits but the output buffer is NULL", n_out);
    CUDA_TRY(cudaSetDevice(cb->device));
    /* a sequence revisiting a position inside one batch must see the cache as
     * it was after the entries before it: run such a batch in parts; without
     * cuBLAS (no GEMM path) a part is at most what the GEMV kernels take */
    const int part_max = b->max_part > 0 ? b->max_part : n;
    const size_t E = (size_t)b->model->cfg.n_embd;
    int start = 0;
    while (start < n) {
        const int end = backend_batch_part(e, start, n, part_max);
        if (cb->first && cb->last)
            rc = cuda_forward_part(cb, e + start, end - start, logits, ids);
        else
            rc = cuda_forward_stage_part(cb, e + start, end - start, x_in ? x_in + start * E : NULL,
                                         x_out ? x_out + start * E : NULL, logits, ids);
        if (rc) return rc;
        for (int i = start; i < end; i++) {
            cb->seq_len[e[i].seq] = e[i].pos + 1;
            if (e[i].logits && cb->last) {
                if (logits) logits += b->model->cfg.n_vocab;
                if (ids) ids++;
            }
        }
        start = end;
    }
    return M40LLM_OK;
}

static int cuda_forward(backend *b, const backend_entry *e, int n, float *logits) {
    return cuda_run(b, e, n, NULL, NULL, logits, NULL, false);
}

static int cuda_forward_argmax(backend *b, const backend_entry *e, int n, int32_t *ids) {
    return cuda_run(b, e, n, NULL, NULL, NULL, ids, false);
}

static int cuda_forward_stage(backend *b, const backend_entry *e, int n, const float *x_in,
                              float *x_out, float *logits, int32_t *ids) {
    int rc = backend_check_stage(b, e, n, x_in, x_out, logits, ids);
    return rc ? rc : cuda_run(b, e, n, x_in, x_out, logits, ids, true);
}

static int cuda_seq_cut(backend *b, int seq, int len) {
    cuda_backend *cb = (cuda_backend *)b;
    if (seq < 0 || seq >= b->params.n_seq_max || len < 0 || len > cb->seq_len[seq])
        return err_set(M40LLM_ERR_INVALID_ARG, "seq_cut: sequence %d to %d positions", seq, len);
    cb->seq_len[seq] = len;
    return M40LLM_OK;
}

static const backend_ops cuda_ops = {
    .name = "cuda",
    .forward = cuda_forward,
    .forward_argmax = cuda_forward_argmax,
    .seq_clear = cuda_seq_clear,
    .seq_len = cuda_seq_len,
    .seq_set_blocks = cuda_seq_set_blocks,
    .block_copy = cuda_block_copy,
    .seq_capacity = cuda_seq_capacity,
    .forward_stage = cuda_forward_stage,
    .seq_cut = cuda_seq_cut,
    .mem_used = cuda_mem_used,
    .destroy = cuda_destroy,
};

/* Checks the KV params: the page size (its log2 in *shift) and the pool's
 * pages (0: kv_fraction decides once the rest is allocated). */
static int kv_sizes(const model *m, const backend_params *p, int *shift, int *n_pages) {
    const int kb = p->kv_block ? p->kv_block : M40_KV_PAGE;
    if (kb < M40_KV_PAGE_MIN || kb > M40_KV_PAGE || (kb & (kb - 1)))
        return err_set(M40LLM_ERR_UNSUPPORTED,
                       "cuda backend: KV blocks of %d positions (a power of two from %d to %d; "
                       "default %d)",
                       p->kv_block, M40_KV_PAGE_MIN, M40_KV_PAGE, M40_KV_PAGE);
    *shift = 0;
    while ((1 << *shift) < kb) ++*shift;
    const int64_t pps = ((int64_t)p->n_ctx + kb - 1) / kb, fixed = pps * p->n_seq_max;
    int64_t n = fixed;
    if (p->paged) {
        if (p->n_kv_blocks < 0 || p->kv_fraction < 0 || p->kv_fraction > 1 ||
            p->kv_fraction != p->kv_fraction)
            return err_set(M40LLM_ERR_INVALID_ARG,
                           "cuda backend: a KV pool of %d blocks or a fraction %g of free memory",
                           p->n_kv_blocks, p->kv_fraction);
        const uint64_t bb = backend_kv_block_bytes(m, p->kv_type, kb);
        if (p->n_kv_blocks > 0) {
            n = p->n_kv_blocks;
        } else if (p->kv_bytes > 0) {
            if (bb == 0 || p->kv_bytes / bb == 0)
                return err_set(M40LLM_ERR_INVALID_ARG,
                               "cuda backend: kv_bytes %llu hold no KV block of %llu bytes",
                               (unsigned long long)p->kv_bytes, (unsigned long long)bb);
            n = p->kv_bytes / bb > INT32_MAX ? (int64_t)INT32_MAX + 1 : (int64_t)(p->kv_bytes / bb);
        } else if (p->kv_fraction > 0) {
            n = 0;
        }
    }
    if (n > INT32_MAX || fixed > INT32_MAX)
        return err_set(M40LLM_ERR_OOM,
                       "cuda backend: the KV cache needs %lld pages (pool) or %lld (table), more "
                       "than 2^31 - 1",
                       (long long)n, (long long)fixed);
    *n_pages = (int)n;
    return M40LLM_OK;
}

/* One throw-away prefill at load: cuBLAS picks and loads its GEMM kernels
 * now rather than inside the first real prompt. Paged: sequence 0 borrows
 * the first pages of the pool (nothing is in them yet). */
static int warm_up(cuda_backend *cb) {
    const backend_params *p = &cb->base.params;
    int n = p->n_batch_max < p->n_ctx ? p->n_batch_max : p->n_ctx, rc = M40LLM_OK;
    if (p->paged) {
        int np = cb->pages_per_seq < cb->n_pages ? cb->pages_per_seq : cb->n_pages;
        int32_t *pages = malloc((size_t)np * sizeof *pages);
        if (!pages) return err_set(M40LLM_ERR_OOM, "out of host memory");
        for (int i = 0; i < np; i++) pages[i] = i;
        rc = cuda_seq_set_blocks(&cb->base, 0, pages, np, 0);
        free(pages);
        if ((int64_t)np << cb->page_shift < n) n = np << cb->page_shift;
    }
    backend_entry *e = rc ? NULL : calloc((size_t)n, sizeof *e);
    if (!rc && !e) rc = err_set(M40LLM_ERR_OOM, "out of host memory");
    for (int i = 0; i < n && e; i++) e[i] = (backend_entry){0, i, 0, false};
    if (e) rc = cuda_run(&cb->base, e, n, NULL, NULL, NULL, NULL, true);
    free(e);
    cb->seq_len[0] = 0;
    cb->seq_pages[0] = 0;
    return rc;
}

const char *backend_cuda_note(void) {
    static char note[640];
    const char *why = m40llm_cublas_unavailable();
    if (!why[0]) return "";
    snprintf(note, sizeof note,
             "%s; prompts run through the GEMV kernels, %d tokens per pass (slower prefill)", why,
             M40_GEMV_MAX_B);
    return note;
}

int backend_cuda_create(const model *m, const backend_params *p, backend **out) {
    *out = NULL;
    if (!m || !p) return err_set(M40LLM_ERR_INVALID_ARG, "backend_cuda_create: no model or params");
    if (p->n_ctx < 1 || p->n_seq_max < 1 || p->n_batch_max < 1)
        return err_set(M40LLM_ERR_INVALID_ARG,
                       "cuda backend: n_ctx %d, n_seq_max %d, n_batch_max %d", p->n_ctx,
                       p->n_seq_max, p->n_batch_max);
    if (p->gemv_kernel < GEMV_KERNEL_AUTO || p->gemv_kernel > GEMV_KERNEL_ROWS4 ||
        p->prefill_gemm < BACKEND_GEMM_AUTO || p->prefill_gemm > BACKEND_GEMM_F32)
        return err_set(M40LLM_ERR_INVALID_ARG, "cuda backend: gemv_kernel %d, prefill_gemm %d",
                       p->gemv_kernel, (int)p->prefill_gemm);
    if (p->n_batch_max > 65535)
        return err_set(M40LLM_ERR_INVALID_ARG, "cuda backend: n_batch_max %d > 65535",
                       p->n_batch_max);
    const model_config *c = &m->cfg;
    if (c->head_dim % 2 || c->n_rot > c->head_dim || c->n_rot % 2)
        return err_set(M40LLM_ERR_UNSUPPORTED, "cuda backend: head dim %d, rope dims %d",
                       c->head_dim, c->n_rot);
    /* a model whose description asks for more than the GPU block has is
     * refused by name (callers fall back to the CPU) */
    const uint32_t supported =
        MODEL_FEAT_QKV_BIAS | MODEL_FEAT_O_BIAS | MODEL_FEAT_QK_NORM | MODEL_FEAT_POST_NORMS |
        MODEL_FEAT_NORM_OFFSET | MODEL_FEAT_GELU | MODEL_FEAT_ROPE_NEOX | MODEL_FEAT_ROPE_FACTORS |
        MODEL_FEAT_LAYER_ROPE | MODEL_FEAT_SWA | MODEL_FEAT_EMBD_SCALE | MODEL_FEAT_ATTN_SCALE |
        MODEL_FEAT_ATTN_SOFTCAP | MODEL_FEAT_FINAL_SOFTCAP | MODEL_FEAT_WIDE_ATTN |
        MODEL_FEAT_ROPE_YARN | MODEL_FEAT_MOE;
    const uint32_t extra = model_features(m) & ~supported;
    if (extra) {
        uint32_t bit = extra & -extra;
        return err_set(M40LLM_ERR_UNSUPPORTED,
                       "cuda backend: %s (%s) is not implemented on the GPU yet", m->cfg.arch,
                       model_feature_name(bit));
    }
    int shift = 0, n_pages = 0;
    int rc = backend_check_layers(m, p);
    if (!rc) rc = kv_sizes(m, p, &shift, &n_pages);
    if (rc) return rc;
    cuda_backend *cb = calloc(1, sizeof *cb);
    if (!cb) return err_set(M40LLM_ERR_OOM, "out of host memory");
    cb->base.ops = &cuda_ops;
    cb->base.model = m;
    cb->base.params = *p;
    cb->base.params.kv_block = 1 << shift;
    cb->page_shift = shift;
    cb->pages_per_seq = (int)(((int64_t)p->n_ctx + (1 << shift) - 1) >> shift);
    cb->n_pages = n_pages;
    cb->device = p->device;
    rc = m40llm_create_context(p->device, &cb->ctx);
    if (rc) {
        free(cb);
        return rc;
    }
    backend_layers(&cb->base, &cb->l0, &cb->l1);
    cb->first = cb->l0 == 0;
    cb->last = cb->l1 == c->n_layer;
    cb->layers = calloc((size_t)c->n_layer, sizeof *cb->layers);
    cb->seq_len = calloc((size_t)p->n_seq_max, sizeof(int));
    cb->seq_pages = calloc((size_t)p->n_seq_max, sizeof(int));
    if (!cb->layers || !cb->seq_len || !cb->seq_pages) {
        cuda_destroy(&cb->base);
        return err_set(M40LLM_ERR_OOM, "out of host memory");
    }
    /* the public context's internals: its decode stream and cuBLAS handle */
    cb->st = m40llm_context_stream(cb->ctx);
    cb->cublas = m40llm_context_cublas(cb->ctx);
    cb->base.max_part = cb->cublas ? 0 : M40_GEMV_MAX_B; /* no GEMM path: GEMV-sized steps */
    struct cudaDeviceProp prop;
    if (cudaGetDeviceProperties(&prop, p->device) != cudaSuccess) prop.major = 5;
    /* f16 GEMM operands pay where tensor cores exist (sm_70+); on Maxwell both
     * run on the FP32 units, so keep the exact f32 operands there */
    cb->gemm_f16 = p->prefill_gemm == BACKEND_GEMM_AUTO ? prop.major >= 7
                                                        : p->prefill_gemm == BACKEND_GEMM_F16;
    cb->profile = p->profile;
    cb->use_graphs = !p->no_graphs && !p->profile;
    cb->gemv_kernel = p->gemv_kernel;
    rc = upload_weights(cb);
    if (!rc) rc = alloc_buffers(cb);
    if (!rc) {
        cudaError_t e = cudaStreamSynchronize(cb->st);
        if (e != cudaSuccess) rc = cuda_fail(e, "loading the model", __FILE__, __LINE__);
    }
    if (!rc && p->n_batch_max > M40_GEMV_MAX_B && cb->cublas) rc = warm_up(cb);
    if (rc) {
        err_prefix(rc, "cuda backend on GPU %d", p->device);
        cuda_destroy(&cb->base);
        return rc;
    }
    *out = &cb->base;
    return M40LLM_OK;
}
