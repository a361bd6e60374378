/* The CUDA forward pass over one batch part: the transformer block written
 * once against the model description (model.h), in two executions.
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
 * soft-capped attention; final soft-capping. Logits only for the entries
 * that ask, argmax on the GPU. */
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
    o.kv.k = cb->kv + (size_t)l * 2 * cb->kv_layer_bytes;
    o.kv.v = cb->kv + ((size_t)l * 2 + 1) * cb->kv_layer_bytes;
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

/* The block's output y (bias, post-norm) added into the residual stream
 * x, when the layer has either; else the product adds into x itself. */
static int residual(cuda_backend *cb, const float *bias, const float *post, int n) {
    const int E = cb->base.model->cfg.n_embd;
    return PROF(
        cb, PG_ELEM,
        launch_residual(cb->x, E, cb->y, E, bias, post, cb->base.model->cfg.rms_eps, n, E, cb->st));
}

/* the decode step's kernels, n <= 8 entries; also what a graph captures */
static int decode_kernels(cuda_backend *cb, int n, int n_out, int argmax) {
    const model_config *c = &cb->base.model->cfg;
    const int E = c->n_embd, F = c->n_ff, B = cb->base.params.n_batch_max;
    const int ld_qkv = cb->nq + 2 * cb->nkv, act = c->act == MODEL_ACT_GELU_TANH;
    /* short contexts: one split of a 128-thread block, no merge (512
     * threads cost ~1 us a layer more there: H200, 7B Q4_0 tg16) */
    const int dec1 = cb->att_max_pos >= 0 && cb->att_max_pos < cb->plan_dec1.chunk;
    int rc = PROF(cb, PG_EMBD, launch_get_rows(&cb->tok_embd, cb->d_in, n, cb->x, cb->st));
    if (!rc && c->embd_scale != 1.0f)
        rc = PROF(cb, PG_ELEM, launch_scale(cb->x, E, n, E, c->embd_scale, cb->st));
    for (int l = 0; l < c->n_layer && !rc; l++) {
        const cuda_layer *L = &cb->layers[l];
        qkv_out o = layer_qkv(cb, l);
        /* norm + QKV (+ rope + KV store in the epilogue, or after) */
        const int mode = L->qkv_epilogue ? GEMV_QKV : GEMV_STORE;
        float *dq = L->qkv_epilogue ? NULL : cb->qkv;
        if (L->qkv_fused) {
            rc = gv(cb, &L->wqkv, NULL, cb->x, E, n, L->attn_norm, dq, ld_qkv, mode, &o, 0);
        } else {
            rc = gv(cb, &L->wq, NULL, cb->x, E, n, L->attn_norm, dq, ld_qkv, mode, &o, 0);
            if (!rc)
                rc = gv(cb, &L->wk, NULL, cb->x, E, n, L->attn_norm, dq ? dq + cb->nq : NULL,
                        ld_qkv, mode, &o, cb->nq);
            if (!rc)
                rc = gv(cb, &L->wv, NULL, cb->x, E, n, L->attn_norm,
                        dq ? dq + cb->nq + cb->nkv : NULL, ld_qkv, mode, &o, cb->nq + cb->nkv);
        }
        if (!rc && !L->qkv_epilogue)
            rc = PROF(cb, PG_ELEM, launch_rope_store(cb->qkv, ld_qkv, n, &o, cb->st));
        if (!rc)
            rc = PROF(cb, PG_ATTN,
                      launch_attention(dec1 ? &cb->plan_dec1 : &cb->plan_dec, cb->q, &o.kv, o.seq,
                                       o.pos, n, &L->att, cb->partial, cb->att_count, cb->att,
                                       cb->att_max_pos, cb->st));
        /* output projection + residual */
        if (!rc && (L->bo || L->post_attn_norm)) {
            rc = gv(cb, &L->wo, NULL, cb->att, cb->nq, n, NULL, cb->y, E, GEMV_STORE, NULL, 0);
            if (!rc) rc = residual(cb, L->bo, L->post_attn_norm, n);
        } else if (!rc) {
            rc = gv(cb, &L->wo, NULL, cb->att, cb->nq, n, NULL, cb->x, E, GEMV_ADD, NULL, 0);
        }
        if (rc) break;
        /* norm + gate/up + activation */
        if (L->w_gate.type == L->w_up.type) {
            rc = gv(cb, &L->w_gate, &L->w_up, cb->x, E, n, L->ffn_norm, cb->h, F, GEMV_SWIGLU, NULL,
                    0);
        } else { /* mixed types: two products, then the gate */
            rc = gv(cb, &L->w_gate, NULL, cb->x, E, n, L->ffn_norm, cb->xn, F, GEMV_STORE, NULL, 0);
            if (!rc)
                rc =
                    gv(cb, &L->w_up, NULL, cb->x, E, n, L->ffn_norm, cb->h, F, GEMV_STORE, NULL, 0);
            if (!rc)
                rc = PROF(cb, PG_ELEM,
                          launch_swiglu(cb->xn, cb->h, F, n, F, act, cb->h, NULL, F, cb->st));
        }
        /* down + residual */
        if (!rc && L->post_ffn_norm) {
            rc = gv(cb, &L->w_down, NULL, cb->h, F, n, NULL, cb->y, E, GEMV_STORE, NULL, 0);
            if (!rc) rc = residual(cb, NULL, L->post_ffn_norm, n);
        } else if (!rc) {
            rc = gv(cb, &L->w_down, NULL, cb->h, F, n, NULL, cb->x, E, GEMV_ADD, NULL, 0);
        }
    }
    if (rc || n_out == 0) return rc;
    rc = PROF(cb, PG_ELEM,
              launch_gather_rows(cb->x, E, cb->d_in + 3 * B, n_out, E, cb->xo, E, cb->st));
    if (!rc)
        rc = gv(cb, &cb->output, NULL, cb->xo, E, n_out, cb->output_norm, cb->logits, c->n_vocab,
                GEMV_STORE, NULL, 0);
    return rc ? rc : logits_tail(cb, n_out, argmax);
}

/* weight operand of a prefill GEMM: in place when its type is the operand type */
static int gemm_w(cuda_backend *cb, const gpu_matrix *w, const void **out) {
    int t = w->type;
    if ((t == QT_F16 && cb->gemm_f16) || (t == QT_F32 && !cb->gemm_f16)) {
        *out = w->q;
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

static int prefill_kernels(cuda_backend *cb, int n, int n_out, int argmax) {
    const model_config *c = &cb->base.model->cfg;
    const int E = c->n_embd, F = c->n_ff, B = cb->base.params.n_batch_max, V = c->n_vocab;
    const int ld_qkv = cb->nq + 2 * cb->nkv, act_kind = c->act == MODEL_ACT_GELU_TANH;
    const float eps = c->rms_eps;
    const void *act = cb->gemm_f16 ? (const void *)cb->a16 : (const void *)cb->xn;
    int rc = PROF(cb, PG_EMBD, launch_get_rows(&cb->tok_embd, cb->d_in, n, cb->x, cb->st));
    if (!rc && c->embd_scale != 1.0f)
        rc = PROF(cb, PG_ELEM, launch_scale(cb->x, E, n, E, c->embd_scale, cb->st));
    for (int l = 0; l < c->n_layer && !rc; l++) {
        const cuda_layer *L = &cb->layers[l];
        qkv_out o = layer_qkv(cb, l);
        rc = PROF(cb, PG_ELEM,
                  launch_rmsnorm(cb->x, NULL, E, L->attn_norm, eps, n, E,
                                 cb->gemm_f16 ? NULL : cb->xn, cb->gemm_f16 ? cb->a16 : NULL, E,
                                 cb->st));
        if (!rc && L->qkv_fused) rc = gemm(cb, &L->wqkv, act, n, cb->qkv, ld_qkv, 0.0f);
        if (!rc && !L->qkv_fused) {
            rc = gemm(cb, &L->wq, act, n, cb->qkv, ld_qkv, 0.0f);
            if (!rc) rc = gemm(cb, &L->wk, act, n, cb->qkv + cb->nq, ld_qkv, 0.0f);
            if (!rc) rc = gemm(cb, &L->wv, act, n, cb->qkv + cb->nq + cb->nkv, ld_qkv, 0.0f);
        }
        if (!rc) rc = PROF(cb, PG_ELEM, launch_rope_store(cb->qkv, ld_qkv, n, &o, cb->st));
        if (!rc)
            rc = PROF(cb, PG_ATTN,
                      launch_attention(&cb->plan, cb->q, &o.kv, o.seq, o.pos, n, &L->att,
                                       cb->partial, cb->att_count, cb->att, cb->att_max_pos,
                                       cb->st));
        if (!rc && cb->gemm_f16)
            rc = PROF(cb, PG_ELEM,
                      launch_to_f16(cb->att, cb->nq, n, cb->nq, cb->a16, cb->nq, cb->st));
        const void *att = cb->gemm_f16 ? (const void *)cb->a16 : cb->att;
        if (!rc && (L->bo || L->post_attn_norm)) {
            rc = gemm(cb, &L->wo, att, n, cb->y, E, 0.0f);
            if (!rc) rc = residual(cb, L->bo, L->post_attn_norm, n);
        } else if (!rc) {
            rc = gemm(cb, &L->wo, att, n, cb->x, E, 1.0f);
        }
        if (!rc)
            rc = PROF(cb, PG_ELEM,
                      launch_rmsnorm(cb->x, NULL, E, L->ffn_norm, eps, n, E,
                                     cb->gemm_f16 ? NULL : cb->xn, cb->gemm_f16 ? cb->a16 : NULL, E,
                                     cb->st));
        if (!rc) rc = gemm(cb, &L->w_gate, act, n, cb->gu, 2 * F, 0.0f);
        if (!rc) rc = gemm(cb, &L->w_up, act, n, cb->gu + F, 2 * F, 0.0f);
        if (!rc)
            rc = PROF(cb, PG_ELEM,
                      launch_swiglu(cb->gu, cb->gu + F, 2 * F, n, F, act_kind,
                                    cb->gemm_f16 ? NULL : cb->h, cb->gemm_f16 ? cb->a16 : NULL, F,
                                    cb->st));
        const void *hh = cb->gemm_f16 ? (const void *)cb->a16 : cb->h;
        if (!rc && L->post_ffn_norm) {
            rc = gemm(cb, &L->w_down, hh, n, cb->y, E, 0.0f);
            if (!rc) rc = residual(cb, NULL, L->post_ffn_norm, n);
        } else if (!rc) {
            rc = gemm(cb, &L->w_down, hh, n, cb->x, E, 1.0f);
        }
    }
    if (rc || n_out == 0) return rc;
    rc = PROF(cb, PG_ELEM,
              launch_gather_rows(cb->x, E, cb->d_in + 3 * B, n_out, E, cb->xo, E, cb->st));
    if (!rc && n_out <= M40_GEMV_MAX_B) {
        rc = gv(cb, &cb->output, NULL, cb->xo, E, n_out, cb->output_norm, cb->logits, V, GEMV_STORE,
                NULL, 0);
    } else if (!rc) {
        rc = PROF(cb, PG_ELEM,
                  launch_rmsnorm(cb->xo, NULL, E, cb->output_norm, eps, n_out, E,
                                 cb->gemm_f16 ? NULL : cb->xn, cb->gemm_f16 ? cb->a16 : NULL, E,
                                 cb->st));
        if (!rc) rc = gemm(cb, &cb->output, act, n_out, cb->logits, V, 0.0f);
    }
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
    int rc = decode_kernels(cb, n, n_out, argmax);
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
    const int B = cb->base.params.n_batch_max, V = cb->base.model->cfg.n_vocab;
    int n_out = 0;
    for (int i = 0; i < n; i++) {
        cb->h_in[i] = e[i].token;
        cb->h_in[B + i] = e[i].seq;
        cb->h_in[2 * B + i] = e[i].pos;
        if (e[i].logits) cb->h_in[3 * B + n_out++] = i;
    }
    /* one copy of the four index arrays (pinned), ordered before the kernels */
    CUDA_TRY(cudaMemcpyAsync(cb->d_in, cb->h_in, (size_t)4 * B * sizeof(int32_t),
                             cudaMemcpyHostToDevice, cb->st));
    int argmax = ids != NULL;
    int rc;
    /* attention launches only the splits up to the longest entry; a replayed
     * graph covers a power-of-two number of splits, so it is re-captured
     * only when the context doubles */
    int maxp = 0;
    for (int i = 0; i < n; i++)
        if (e[i].pos > maxp) maxp = e[i].pos;
    if (n <= M40_GEMV_MAX_B && maxp < cb->plan_dec1.chunk) {
        cb->att_max_pos = cb->plan_dec1.chunk - 1; /* (decode_kernels: plan_dec1) */
    } else if (n <= M40_GEMV_MAX_B) {
        const attn_plan *pl = &cb->plan_dec;
        int need = maxp / pl->chunk + 1, ns = 1;
        while (ns < need) ns *= 2;
        cb->att_max_pos = ns >= pl->n_split ? -1 : ns * pl->chunk - 1;
    } else {
        cb->att_max_pos = maxp;
    }
    if (n <= M40_GEMV_MAX_B)
        rc = cb->use_graphs ? graph_replay(cb, n, n_out, argmax)
                            : decode_kernels(cb, n, n_out, argmax);
    else
        rc = prefill_kernels(cb, n, n_out, argmax);
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
    if (n_out && argmax)
        memcpy(ids, cb->h_ids, (size_t)n_out * sizeof(int32_t));
    else if (n_out && logits && n_out <= M40_GEMV_MAX_B)
        memcpy(logits, cb->h_logits, (size_t)n_out * V * sizeof(float));
    return M40LLM_OK;
}
