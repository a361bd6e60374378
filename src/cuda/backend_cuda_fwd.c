/* The CUDA forward pass over one batch part: the transformer block written
 * once against the model description (model.h) in block_kernels, each of
 * its steps in two executions:
 *
 * Up to 8 entries (decode, batched decode): matrix-vector kernels that read
 * each weight once for all entries, with RMSNorm, rope + KV store (plain
 * layers), SwiGLU/GeGLU and the residual adds fused into them; the whole
 * step is captured once per batch shape as a CUDA graph and replayed. More
 * entries (prefill): RMSNorm, dequantized weights and cuBLAS GEMMs with
 * FP32 accumulation, the residual added by the GEMM (beta = 1). Both take
 * the variants' extra steps where a layer has them: QKV biases, q/k norms
 * and NeoX RoPE in launch_rope_store after the product; an output bias or
 * post-norm through launch_residual; the embedding scale; windowed and
 * soft-capped attention; final soft-capping. A mixture-of-experts FFN
 * runs the same kernels at every batch size (moe_ffn, moe.cu): routing,
 * grouping and the expert products all on the GPU. Logits only for the
 * entries that ask, argmax on the GPU. */
#include <math.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "cuda_backend.h"
#include "cuda_gemm.h"
#include "quant.h"

/* ---- optional profile: synchronize after each group and add its time ---- */
enum { PG_EMBD, PG_GEMV, PG_DEQUANT, PG_GEMM, PG_ATTN, PG_ELEM, PG_HEAD, PG_N };
static const char *pg_names[PG_N] = {
    "embedding", "gemv", "dequantize", "gemm", "attention", "norm/rope/swiglu", "lm head+argmax"};

static double prof_now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1e9 + ts.tv_nsec;
}

/* wraps a launcher call: t0 is taken before, the group gets the time after a sync */
#define PROF(cb, group, call)                                                                      \
    ((cb)->profile ? ((cb)->prof_t0 = prof_now(), (cb)->prof_rc = (call),                          \
                      prof_run((cb), (group), (cb)->prof_t0, (cb)->prof_rc))                       \
                   : (call))

static int prof_run(cuda_backend *cb, int group, double t0, int rc) {
    cudaStreamSynchronize(cb->st);
    cb->prof_ns[group] += prof_now() - t0;
    cb->prof_calls[group]++;
    return rc;
}

void cuda_profile_report(const cuda_backend *cb) {
    double tot = 0;
    for (int i = 0; i < PG_N; i++) tot += cb->prof_ns[i];
    fprintf(stderr, "cuda profile (synchronized per launch):\n");
    for (int i = 0; i < PG_N; i++)
        if (cb->prof_calls[i])
            fprintf(stderr, "  %-18s %9.3f ms %7ld calls %7.1f us/call %5.1f%%\n", pg_names[i],
                    cb->prof_ns[i] / 1e6, cb->prof_calls[i],
                    cb->prof_ns[i] / 1e3 / cb->prof_calls[i],
                    100 * cb->prof_ns[i] / (tot > 0 ? tot : 1));
}

static qkv_out layer_qkv(cuda_backend *cb, int l) {
    const model_config *c = &cb->base.model->cfg;
    const cuda_layer *L = &cb->layers[l];
    qkv_out o;
    memset(&o, 0, sizeof o);
    const size_t lk = (size_t)(l - cb->l0); /* a stage holds its own layers' K and V */
    o.kv.k = cb->kv + lk * 2 * cb->kv_layer_bytes;
    o.kv.v = cb->kv + (lk * 2 + 1) * cb->kv_layer_bytes;
    o.kv.page_table = cb->page_table;
    o.kv.pages_per_seq = cb->pages_per_seq;
    o.kv.n_kv = c->n_head_kv;
    o.kv.hd = c->head_dim;
    o.kv.f16 = cb->base.params.kv_type == BACKEND_KV_F16;
    o.kv.page_shift = cb->page_shift;
    o.rope = L->rope;
    int B = cb->base.params.n_batch_max;
    o.seq = cb->d_in + B;
    o.pos = cb->d_in + 2 * B;
    o.q = cb->q;
    o.ldq = cb->nq;
    o.bias = L->bqkv;
    o.q_norm = L->q_norm;
    o.k_norm = L->k_norm;
    o.eps = c->rms_eps;
    return o;
}

static int gv(cuda_backend *cb, const gpu_matrix *w, const gpu_matrix *w2, const float *x,
              int64_t ldx, int nb, const float *gamma, float *y, int64_t ldy, int mode,
              const qkv_out *qo, int64_t row0) {
    gemv_args a;
    memset(&a, 0, sizeof a);
    a.act = cb->base.model->cfg.act == MODEL_ACT_GELU_TANH;
    a.kernel = cb->gemv_kernel;
    a.w = w;
    a.w2 = w2;
    a.x = x;
    a.ldx = ldx;
    a.nb = nb;
    a.gamma = gamma;
    a.eps = cb->base.model->cfg.rms_eps;
    a.y = y;
    a.ldy = ldy;
    a.mode = mode;
    a.qkv = qo;
    a.row0 = row0;
    return PROF(cb, PG_GEMV, launch_gemv(&a, cb->st));
}

/* weight operand of a prefill GEMM: in place when its type is the operand
 * type, its cached dense copy, else dequantized now into the scratch */
static int gemm_w(cuda_backend *cb, const gpu_matrix *w, const void **out) {
    int t = w->type;
    if ((t == QT_F16 && cb->gemm_f16) || (t == QT_F32 && !cb->gemm_f16)) {
        *out = w->q;
        return M40LLM_OK;
    }
    if (w->dense) {
        *out = w->dense;
        return M40LLM_OK;
    }
    *out = cb->wscratch;
    return PROF(cb, PG_DEQUANT, launch_dequant(w, cb->wscratch, cb->gemm_f16, cb->st));
}

/* y[n][ldy] (+)= act[n][K] . W^T */
static int gemm(cuda_backend *cb, const gpu_matrix *w, const void *act, int n, float *y,
                int64_t ldy, float beta) {
    const void *wp;
    int rc = gemm_w(cb, w, &wp);
    if (!rc)
        rc = PROF(cb, PG_GEMM,
                  gemm_rows(cb->cublas, cb->st, cb->gemm_f16, wp, w->rows, act, n, w->cols, y, ldy,
                            beta));
    return rc;
}

/* After the LM head: soft-capping, then argmax on the GPU when asked. */
static int logits_tail(cuda_backend *cb, int n_out, int argmax) {
    const model_config *c = &cb->base.model->cfg;
    const int V = c->n_vocab;
    int rc = M40LLM_OK;
    if (c->final_softcap > 0.0f)
        rc = PROF(cb, PG_HEAD, launch_softcap(cb->logits, V, n_out, V, c->final_softcap, cb->st));
    if (!rc && argmax)
        rc = PROF(cb, PG_HEAD, launch_argmax(cb->logits, V, n_out, V, cb->d_ids, cb->st));
    return rc;
}

/* ---- the block's steps, each in its two executions ----
 * gemv (n <= 8 entries: decode): matrix-vector kernels reading each weight
 * once for all entries, the input's RMSNorm and the epilogues fused in;
 * otherwise (prefill): the input normalized once into the GEMM operand
 * (f32 xn or f16 a16), dequantized weights, cuBLAS. */
typedef struct step {
    cuda_backend *cb;
    int n;     /* entries */
    bool gemv; /* matrix-vector kernels, else GEMMs */
} step;

/* The input of one or more products: x (ld elements apart, k wide) with an
 * optional RMSNorm gain; op is the GEMM operand made from it. */
typedef struct proj_in {
    const float *x;
    int64_t ldx;
    int k;
    const float *gamma;
    const void *op; /* GEMM: [n][k] f32 or f16 */
} proj_in;

static int proj_input(const step *s, const float *x, int64_t ldx, int k, const float *gamma,
                      proj_in *in) {
    cuda_backend *cb = s->cb;
    *in = (proj_in){x, ldx, k, gamma, x};
    if (s->gemv) return M40LLM_OK;
    if (gamma) {
        in->op = cb->gemm_f16 ? (const void *)cb->a16 : (const void *)cb->xn;
        return PROF(cb, PG_ELEM,
                    launch_rmsnorm(x, NULL, ldx, gamma, cb->base.model->cfg.rms_eps, s->n, k,
                                   cb->gemm_f16 ? NULL : cb->xn, cb->gemm_f16 ? cb->a16 : NULL, k,
                                   cb->st));
    }
    if (!cb->gemm_f16) /* x itself, rows k apart */
        return ldx == k ? M40LLM_OK
                        : err_set(M40LLM_ERR_INVALID_ARG, "GEMM operand: rows %lld apart, %d wide",
                                  (long long)ldx, k);
    in->op = cb->a16;
    return PROF(cb, PG_ELEM, launch_to_f16(x, ldx, s->n, k, cb->a16, k, cb->st));
}

/* y[n][ldy] = (or +=) in . W^T */
static int proj(const step *s, const proj_in *in, const gpu_matrix *w, float *y, int64_t ldy,
                bool add) {
    if (s->gemv)
        return gv(s->cb, w, NULL, in->x, in->ldx, s->n, in->gamma, y, ldy,
                  add ? GEMV_ADD : GEMV_STORE, NULL, 0);
    return gemm(s->cb, w, in->op, s->n, y, ldy, add ? 1.0f : 0.0f);
}

/* The residual stream x += the product, through y and launch_residual when
 * the layer has an output bias or a post-norm there. */
static int proj_residual(const step *s, const proj_in *in, const gpu_matrix *w, const float *bias,
                         const float *post) {
    cuda_backend *cb = s->cb;
    const int E = cb->base.model->cfg.n_embd;
    if (!bias && !post) return proj(s, in, w, cb->x, E, true);
    int rc = proj(s, in, w, cb->y, E, false);
    return rc ? rc
              : PROF(cb, PG_ELEM,
                     launch_residual(cb->x, E, cb->y, E, bias, post, cb->base.model->cfg.rms_eps,
                                     s->n, E, cb->st));
}

/* Q, K, V of the normalized input, then rope and the KV store: the GEMV's
 * epilogue where the layer is plain, else launch_rope_store (biases, q/k
 * norms, NeoX). */
static int proj_qkv(const step *s, const proj_in *in, const cuda_layer *L, const qkv_out *o) {
    cuda_backend *cb = s->cb;
    const int ld = cb->nq + 2 * cb->nkv;
    const gpu_matrix *ws[3] = {&L->wq, &L->wk, &L->wv};
    const int64_t at[3] = {0, cb->nq, cb->nq + cb->nkv};
    const int nw = L->qkv_fused ? 1 : 3;
    if (L->qkv_fused) ws[0] = &L->wqkv;
    int rc = M40LLM_OK;
    for (int i = 0; i < nw && !rc; i++) {
        if (s->gemv && L->qkv_epilogue)
            rc = gv(cb, ws[i], NULL, in->x, in->ldx, s->n, in->gamma, NULL, 0, GEMV_QKV, o, at[i]);
        else
            rc = proj(s, in, ws[i], cb->qkv + at[i], ld, false);
    }
    if (!rc && !(s->gemv && L->qkv_epilogue))
        rc = PROF(cb, PG_ELEM, launch_rope_store(cb->qkv, ld, s->n, o, cb->st));
    return rc;
}

/* Attention of the entries' queries over their sequences' caches; its
 * output as the next product's input. */
static int attend(const step *s, const cuda_layer *L, const qkv_out *o, proj_in *out) {
    cuda_backend *cb = s->cb;
    /* decode at short contexts: one split of a 128-thread block, no merge
     * (512 threads cost ~1 us a layer more there: H200, 7B Q4_0 tg16) */
    const attn_plan *pl = !s->gemv ? &cb->plan
                          : cb->att_max_pos >= 0 && cb->att_max_pos < cb->plan_dec1.chunk
                              ? &cb->plan_dec1
                              : &cb->plan_dec;
    int rc = PROF(cb, PG_ATTN,
                  launch_attention(pl, cb->q, &o->kv, o->seq, o->pos, s->n, &L->att, cb->partial,
                                   cb->att_count, cb->att, cb->att_max_pos, cb->st));
    return rc ? rc : proj_input(s, cb->att, cb->nq, cb->nq, NULL, out);
}

/* act(gate) * up of the normalized input into h (f32) or, for a GEMM
 * operand in f16, a16; the down product's input. */
static int proj_glu(const step *s, const proj_in *in_, const cuda_layer *L, proj_in *out) {
    cuda_backend *cb = s->cb;
    const int F = cb->base.model->cfg.n_ff;
    const int act = cb->base.model->cfg.act == MODEL_ACT_GELU_TANH;
    const proj_in in = *in_; /* (out may be the same struct) */
    int rc;
    *out = (proj_in){cb->h, F, F, NULL, cb->h};
    if (s->gemv && L->w_gate.type == L->w_up.type) /* one kernel for both, the gate fused */
        return gv(cb, &L->w_gate, &L->w_up, in.x, in.ldx, s->n, in.gamma, cb->h, F, GEMV_SWIGLU,
                  NULL, 0);
    /* two products (mixed types, or GEMMs), then the gate */
    float *g = s->gemv ? cb->xn : cb->gu, *u = s->gemv ? cb->h : cb->gu + F;
    const int64_t ld = s->gemv ? F : 2 * F;
    rc = proj(s, &in, &L->w_gate, g, ld, false);
    if (!rc) rc = proj(s, &in, &L->w_up, u, ld, false);
    const bool f16 = !s->gemv && cb->gemm_f16;
    if (f16) out->op = cb->a16;
    return rc ? rc
              : PROF(cb, PG_ELEM,
                     launch_swiglu(g, u, ld, s->n, F, act, f16 ? NULL : cb->h, f16 ? cb->a16 : NULL,
                                   F, cb->st));
}

/* A mixture-of-experts FFN on x (the residual stream): RMSNorm into xn,
 * router logits, top-k routes, pairs grouped by expert, gate/up + act and
 * down over the groups, the weighted sum added to x (through y and
 * launch_residual where the layer has a post-norm). The same kernels for
 * every batch size: an entry's result never depends on its batch. */
static int moe_ffn(const step *s, const cuda_layer *L) {
    cuda_backend *cb = s->cb;
    const model_config *c = &cb->base.model->cfg;
    const int E = c->n_embd, X = c->n_expert, K = c->n_expert_used, F = c->n_ff_exp;
    const int n = s->n, P = n * K, b = n == 1 ? 1 : 8; /* one entry: one pair per expert */
    int rc = PROF(
        cb, PG_ELEM,
        launch_rmsnorm(cb->x, NULL, E, L->ffn_norm, c->rms_eps, n, E, cb->xn, NULL, E, cb->st));
    moe_gemv_args a;
    memset(&a, 0, sizeof a);
    a.w = &L->router; /* every entry a pair of the one router matrix */
    a.rows = X;
    a.x = cb->xn;
    a.ldx = E;
    a.xdiv = 1;
    a.n_pairs = n;
    a.b = b;
    a.y = cb->moe_logits;
    a.ldy = X;
    a.mode = GEMV_STORE;
    if (!rc) rc = PROF(cb, PG_GEMV, launch_moe_gemv(&a, cb->st));
    if (!rc)
        rc = PROF(cb, PG_ELEM,
                  launch_moe_route(cb->moe_logits, X, n, X, K, c->expert_norm, cb->moe_ids,
                                   cb->moe_w, cb->st));
    if (!rc)
        rc = PROF(cb, PG_ELEM,
                  launch_moe_group(cb->moe_ids, P, X, b, cb->moe_order, cb->moe_items,
                                   cb->moe_nitems, cb->st));
    /* gate/up: pair p reads its entry's normalized row */
    a.items = cb->moe_items;
    a.order = cb->moe_order;
    a.n_items = cb->moe_nitems;
    a.max_items = moe_max_items(P, X, b);
    a.rows = F;
    a.xdiv = K;
    a.ldy = F;
    a.act = c->act == MODEL_ACT_GELU_TANH;
    if (L->gate_exps.type == L->up_exps.type) {
        a.w = &L->gate_exps;
        a.w2 = &L->up_exps;
        a.y = cb->moe_h;
        a.mode = GEMV_SWIGLU;
        if (!rc) rc = PROF(cb, PG_GEMV, launch_moe_gemv(&a, cb->st));
    } else { /* two products, then the gate */
        a.w = &L->gate_exps;
        a.y = cb->moe_g;
        if (!rc) rc = PROF(cb, PG_GEMV, launch_moe_gemv(&a, cb->st));
        a.w = &L->up_exps;
        a.y = cb->moe_h;
        if (!rc) rc = PROF(cb, PG_GEMV, launch_moe_gemv(&a, cb->st));
        if (!rc)
            rc = PROF(
                cb, PG_ELEM,
                launch_swiglu(cb->moe_g, cb->moe_h, F, P, F, a.act, cb->moe_h, NULL, F, cb->st));
    }
    /* down: pair p reads its own row of moe_h */
    a.w = &L->down_exps;
    a.w2 = NULL;
    a.rows = E;
    a.x = cb->moe_h;
    a.ldx = F;
    a.xdiv = 1;
    a.y = cb->moe_d;
    a.ldy = E;
    a.mode = GEMV_STORE;
    if (!rc) rc = PROF(cb, PG_GEMV, launch_moe_gemv(&a, cb->st));
    const float *post = L->post_ffn_norm;
    if (!rc)
        rc = PROF(cb, PG_ELEM,
                  launch_moe_combine(cb->moe_d, E, cb->moe_ids, cb->moe_w, n, K, E,
                                     post ? cb->y : cb->x, E, !post, cb->st));
    if (!rc && post)
        rc = PROF(cb, PG_ELEM,
                  launch_residual(cb->x, E, cb->y, E, NULL, post, c->rms_eps, n, E, cb->st));
    return rc;
}

/* The forward pass of one batch part: the block written once against the
 * model description (its variants' extra steps only where a layer has
 * them), then the LM head for the entries that want logits. For n <= 8
 * this is also what a CUDA graph captures. */
static int block_kernels(cuda_backend *cb, int n, int n_out, int argmax) {
    const model_config *c = &cb->base.model->cfg;
    const int E = c->n_embd, B = cb->base.params.n_batch_max, V = c->n_vocab;
    const step s = {cb, n, n <= M40_GEMV_MAX_B};
    int rc = M40LLM_OK;
    if (cb->first) {
        rc = PROF(cb, PG_EMBD, launch_get_rows(&cb->tok_embd, cb->d_in, n, cb->x, cb->st));
        if (!rc && c->embd_scale != 1.0f)
            rc = PROF(cb, PG_ELEM, launch_scale(cb->x, E, n, E, c->embd_scale, cb->st));
    } else { /* a later stage: the stream so far, from the pinned rows */
        cudaError_t ce = cudaMemcpyAsync(cb->x, cb->h_x, (size_t)n * E * sizeof(float),
                                         cudaMemcpyHostToDevice, cb->st);
        if (ce != cudaSuccess) rc = cuda_fail(ce, "stage input copy", __FILE__, __LINE__);
    }
    for (int l = cb->l0; l < cb->l1 && !rc; l++) {
        const cuda_layer *L = &cb->layers[l];
        const qkv_out o = layer_qkv(cb, l);
        proj_in in;
        rc = proj_input(&s, cb->x, E, E, L->attn_norm, &in);
        if (!rc) rc = proj_qkv(&s, &in, L, &o);
        if (!rc) rc = attend(&s, L, &o, &in);
        if (!rc) rc = proj_residual(&s, &in, &L->wo, L->bo, L->post_attn_norm);
        if (!rc && L->moe) {
            rc = moe_ffn(&s, L);
            continue;
        }
        if (!rc) rc = proj_input(&s, cb->x, E, E, L->ffn_norm, &in);
        if (!rc) rc = proj_glu(&s, &in, L, &in);
        if (!rc) rc = proj_residual(&s, &in, &L->w_down, NULL, L->post_ffn_norm);
    }
    if (!rc && !cb->last) { /* the stream goes on to the next stage */
        cudaError_t ce = cudaMemcpyAsync(cb->h_x, cb->x, (size_t)n * E * sizeof(float),
                                         cudaMemcpyDeviceToHost, cb->st);
        if (ce != cudaSuccess) rc = cuda_fail(ce, "stage output copy", __FILE__, __LINE__);
    }
    if (rc || n_out == 0) return rc;
    /* the LM head over the rows that want logits (as a GEMV for up to 8) */
    rc = PROF(cb, PG_ELEM,
              launch_gather_rows(cb->x, E, cb->d_in + 3 * B, n_out, E, cb->xo, E, cb->st));
    const step h = {cb, n_out, n_out <= M40_GEMV_MAX_B};
    proj_in in;
    if (!rc) rc = proj_input(&h, cb->xo, E, E, cb->output_norm, &in);
    if (!rc) rc = proj(&h, &in, &cb->output, cb->logits, V, false);
    return rc ? rc : logits_tail(cb, n_out, argmax);
}

static int graph_replay(cuda_backend *cb, int n, int n_out, int argmax) {
    for (int i = 0; i < cb->n_graphs; i++) {
        cuda_graph_entry *g = &cb->graphs[i];
        if (g->n == n && g->n_out == n_out && g->argmax == argmax &&
            g->att_max_pos == cb->att_max_pos) {
            CUDA_TRY(cudaGraphLaunch(g->exec, cb->st));
            return M40LLM_OK;
        }
    }
    if (cb->n_graphs == CUDA_GRAPH_CACHE) { /* full: drop the oldest */
        cudaGraphExecDestroy(cb->graphs[0].exec);
        memmove(cb->graphs, cb->graphs + 1, (CUDA_GRAPH_CACHE - 1) * sizeof cb->graphs[0]);
        cb->n_graphs--;
    }
    CUDA_TRY(cudaStreamBeginCapture(cb->st, cudaStreamCaptureModeThreadLocal));
    int rc = block_kernels(cb, n, n_out, argmax);
    cudaGraph_t graph = NULL;
    cudaError_t e = cudaStreamEndCapture(cb->st, &graph);
    if (rc) {
        if (graph) cudaGraphDestroy(graph);
        cudaGetLastError();
        return rc;
    }
    if (e != cudaSuccess) return cuda_fail(e, "cudaStreamEndCapture", __FILE__, __LINE__);
    cudaGraphExec_t exec = NULL;
    /* the WithFlags form has one signature in CUDA 11.4+ and 12 */
    e = cudaGraphInstantiateWithFlags(&exec, graph, 0);
    cudaGraphDestroy(graph);
    if (e != cudaSuccess) return cuda_fail(e, "cudaGraphInstantiate", __FILE__, __LINE__);
    cuda_graph_entry *g = &cb->graphs[cb->n_graphs++];
    g->n = n;
    g->n_out = n_out;
    g->argmax = argmax;
    g->att_max_pos = cb->att_max_pos;
    g->exec = exec;
    CUDA_TRY(cudaGraphLaunch(exec, cb->st));
    return M40LLM_OK;
}

int cuda_forward_part(cuda_backend *cb, const backend_entry *e, int n, float *logits,
                      int32_t *ids) {
    return cuda_forward_stage_part(cb, e, n, NULL, NULL, logits, ids);
}

int cuda_forward_stage_part(cuda_backend *cb, const backend_entry *e, int n, const float *x_in,
                            float *x_out, float *logits, int32_t *ids) {
    const int B = cb->base.params.n_batch_max, V = cb->base.model->cfg.n_vocab;
    const size_t xbytes = (size_t)n * cb->base.model->cfg.n_embd * sizeof(float);
    int n_out = 0;
    for (int i = 0; i < n; i++) {
        cb->h_in[i] = e[i].token;
        cb->h_in[B + i] = e[i].seq;
        cb->h_in[2 * B + i] = e[i].pos;
        if (e[i].logits && cb->last) cb->h_in[3 * B + n_out++] = i; /* only the last has a head */
    }
    if (!cb->first && x_in) memcpy(cb->h_x, x_in, xbytes); /* (the step copies it in) */
    /* one copy of the four index arrays (pinned), ordered before the kernels */
    CUDA_TRY(cudaMemcpyAsync(cb->d_in, cb->h_in, (size_t)4 * B * sizeof(int32_t),
                             cudaMemcpyHostToDevice, cb->st));
    int argmax = ids != NULL && cb->last;
    int rc;
    /* attention launches only the splits up to the longest entry; a replayed
     * graph covers a power-of-two number of splits, so it is re-captured
     * only when the context doubles */
    int maxp = 0;
    for (int i = 0; i < n; i++)
        if (e[i].pos > maxp) maxp = e[i].pos;
    if (n <= M40_GEMV_MAX_B && maxp < cb->plan_dec1.chunk) {
        cb->att_max_pos = cb->plan_dec1.chunk - 1; /* (attend: plan_dec1) */
    } else if (n <= M40_GEMV_MAX_B) {
        const attn_plan *pl = &cb->plan_dec;
        int need = maxp / pl->chunk + 1, ns = 1;
        while (ns < need) ns *= 2;
        cb->att_max_pos = ns >= pl->n_split ? -1 : ns * pl->chunk - 1;
    } else {
        cb->att_max_pos = maxp;
    }
    if (n <= M40_GEMV_MAX_B && cb->use_graphs)
        rc = graph_replay(cb, n, n_out, argmax);
    else
        rc = block_kernels(cb, n, n_out, argmax);
    if (rc) {
        cudaStreamSynchronize(cb->st);
        return rc;
    }
    if (n_out && argmax) {
        CUDA_TRY(cudaMemcpyAsync(cb->h_ids, cb->d_ids, (size_t)n_out * sizeof(int32_t),
                                 cudaMemcpyDeviceToHost, cb->st));
    } else if (n_out && logits) {
        /* up to M40_GEMV_MAX_B rows through the pinned buffer (DMA at full speed) */
        CUDA_TRY(cudaMemcpyAsync(n_out <= M40_GEMV_MAX_B ? cb->h_logits : logits, cb->logits,
                                 (size_t)n_out * V * sizeof(float), cudaMemcpyDeviceToHost,
                                 cb->st));
    }
    CUDA_TRY(cudaStreamSynchronize(cb->st)); /* kernel faults surface here */
    if (!cb->last && x_out) memcpy(x_out, cb->h_x, xbytes);
    if (n_out && argmax)
        memcpy(ids, cb->h_ids, (size_t)n_out * sizeof(int32_t));
    else if (n_out && logits && n_out <= M40_GEMV_MAX_B)
        memcpy(logits, cb->h_logits, (size_t)n_out * V * sizeof(float));
    return M40LLM_OK;
}
