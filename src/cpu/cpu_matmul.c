/* Products of stored weights with FP32 activations. A thread owns a range of
 * output rows, taken CPU_MM_TILE at a time. Where the weight type has a fused
 * kernel (cpu_qdot.c) each row is decoded block by block in registers, once
 * per CPU_QX tokens; otherwise the tile is dequantized into the thread's
 * buffer once per call and dotted with every token. Either way a single
 * token takes the same arithmetic as a batch, so a row's result does not
 * depend on how a sequence was split into batches (bit-identical logits for
 * any batching). */
#include <stdatomic.h>

#include "cpu_internal.h"
#include "err.h"
#include "quant.h"

typedef enum mm_mode { MM_STORE, MM_ADD, MM_SWIGLU, MM_GEGLU } mm_mode;

/* Up to three weights stacked along their output rows (Q|K|V), each with its
 * own destination; or gate and up of the FFN (MM_SWIGLU / MM_GEGLU, same
 * rows). */
typedef struct mm_job {
    cpu_backend *cb;
    int n_w;
    const model_tensor *w[3];
    int64_t first[3]; /* first global row of each weight */
    float *y[3];      /* destination of each weight, [n][ld] */
    int ld[3];
    const float *x; /* [n][ldx] */
    int ldx, n, n_in;
    mm_mode mode;
    atomic_int failed; /* a status from quant_dequantize_row */
    cpu_qdot_fn fn[3]; /* fused kernel of each weight, or NULL */
    const float *xs;   /* [n][ldxs] block sums of x */
    int ldxs;
} mm_job;

static float *thread_wbuf(cpu_backend *cb, int thread) {
    return cb->wbuf + (size_t)thread * 2 * CPU_MM_TILE * (size_t)cb->max_in;
}

static int mm_which(const mm_job *j, int64_t r) {
    int k = 0;
    while (k + 1 < j->n_w && r >= j->first[k + 1]) k++;
    return k;
}

static int dequant(const model_tensor *w, int64_t row, float *dst, int n_in) {
    const uint8_t *src = (const uint8_t *)w->data + (size_t)row * w->row_bytes;
    return quant_dequantize_row(w->type, src, dst, n_in);
}

/* v[q] = row . x[i0 + q] for q < nx: the fused kernel of the row's type, or
 * its dequantized copy in wrow dotted token by token. */
static void mm_row_dot(const mm_job *j, int k, int64_t col, const float *wrow, int i0, int nx,
                       float *v) {
    const float *x = j->x + (size_t)i0 * j->ldx;
    if (j->fn[k]) {
        const uint8_t *w = (const uint8_t *)j->w[k]->data + (size_t)col * j->w[k]->row_bytes;
        j->fn[k](w, x, j->ldx, j->xs + (size_t)i0 * j->ldxs, j->ldxs, nx, j->n_in, v);
    } else {
        for (int q = 0; q < nx; q++) v[q] = cpu_dot(wrow, x + (size_t)q * j->ldx, j->n_in);
    }
}

static void mm_worker(void *ctx, int64_t begin, int64_t end, int thread) {
    mm_job *j = ctx;
    float *buf = thread_wbuf(j->cb, thread);
    const int n_in = j->n_in, mi = j->cb->max_in;
    const bool glu = j->mode == MM_SWIGLU || j->mode == MM_GEGLU;
    for (int64_t r0 = begin; r0 < end; r0 += CPU_MM_TILE) {
        int nt = (int)(end - r0 < CPU_MM_TILE ? end - r0 : CPU_MM_TILE);
        int which[CPU_MM_TILE];
        int64_t col[CPU_MM_TILE];
        for (int t = 0; t < nt; t++) {
            int64_t r = r0 + t;
            int k = glu ? 0 : mm_which(j, r);
            which[t] = k;
            col[t] = r - j->first[k];
            int rc = j->fn[k] ? 0 : dequant(j->w[k], col[t], buf + (size_t)t * mi, n_in);
            if (glu && !rc && !j->fn[1])
                rc = dequant(j->w[1], col[t], buf + (size_t)(CPU_MM_TILE + t) * mi, n_in);
            if (rc) {
                atomic_store(&j->failed, rc);
                return;
            }
        }
        /* CPU_QX tokens at a time: their activations stay in L1 over the tile */
        for (int i0 = 0; i0 < j->n; i0 += CPU_QX) {
            const int nx = j->n - i0 < CPU_QX ? j->n - i0 : CPU_QX;
            for (int t = 0; t < nt; t++) {
                const int k = which[t];
                float v[CPU_QX], u[CPU_QX];
                mm_row_dot(j, k, col[t], buf + (size_t)t * mi, i0, nx, v);
                if (glu) mm_row_dot(j, 1, col[t], buf + (size_t)(CPU_MM_TILE + t) * mi, i0, nx, u);
                for (int q = 0; q < nx; q++) {
                    float *y = j->y[k] + (size_t)(i0 + q) * j->ld[k] + col[t];
                    if (j->mode == MM_SWIGLU)
                        *y = cpu_silu(v[q]) * u[q];
                    else if (j->mode == MM_GEGLU)
                        *y = cpu_gelu_tanh(v[q]) * u[q];
                    else if (j->mode == MM_ADD)
                        *y += v[q];
                    else
                        *y = v[q];
                }
            }
        }
    }
}

static int mm_run(mm_job *j, int64_t rows) {
    atomic_init(&j->failed, 0);
    const int n_w = j->mode == MM_SWIGLU || j->mode == MM_GEGLU ? 2 : j->n_w;
    bool sums = false;
    for (int k = 0; k < n_w; k++) {
        bool need;
        j->fn[k] = cpu_qdot_lookup(j->w[k]->type, &need);
        /* float rows of any length: the kernels take whole 32-element groups */
        if (j->n_in % CPU_QBLK) j->fn[k] = NULL;
        sums |= j->fn[k] && need;
    }
    /* per-block input sums, once per call, for the kernels of offset types */
    j->xs = j->cb->xsum;
    j->ldxs = j->n_in / CPU_QBLK;
    if (sums)
        for (int i = 0; i < j->n; i++)
            cpu_block_sums(j->x + (size_t)i * j->ldx, j->n_in, j->cb->xsum + (size_t)i * j->ldxs);
    /* enough rows per thread that a chunk is worth a wake-up */
    threadpool_for_dynamic(j->cb->pool, rows, CPU_MM_TILE, CPU_MM_CHUNKS, mm_worker, j);
    int rc = atomic_load(&j->failed);
    if (rc) return err_prefix(rc, "cpu backend: dequantizing %s", j->w[0]->name);
    return M40LLM_OK;
}

int cpu_matmul(cpu_backend *cb, const model_tensor *w, const float *x, int ldx, int n, float *y,
               int ldy, cpu_mm_epilogue ep) {
    mm_job j = {.cb = cb,
                .n_w = 1,
                .w = {w},
                .y = {y},
                .ld = {ldy},
                .x = x,
                .ldx = ldx,
                .n = n,
                .n_in = (int)w->ne[0],
                .mode = ep == CPU_MM_ADD ? MM_ADD : MM_STORE};
    return mm_run(&j, w->ne[1]);
}

int cpu_matmul_qkv(cpu_backend *cb, const model_layer *L, const float *x, int n) {
    const int E = cb->base.model->cfg.n_embd;
    mm_job j = {.cb = cb,
                .n_w = 3,
                .w = {&L->wq, &L->wk, &L->wv},
                .first = {0, cb->q_dim, cb->q_dim + cb->kv_dim},
                .y = {cb->q, cb->k, cb->v},
                .ld = {cb->q_dim, cb->kv_dim, cb->kv_dim},
                .x = x,
                .ldx = E,
                .n = n,
                .n_in = E,
                .mode = MM_STORE};
    return mm_run(&j, (int64_t)cb->q_dim + 2 * cb->kv_dim);
}

int cpu_matmul_ffn_in(cpu_backend *cb, const model_tensor *gate, const model_tensor *up,
                      const float *x, int n) {
    const model_config *c = &cb->base.model->cfg;
    const int F = (int)gate->ne[1];
    mm_job j = {.cb = cb,
                .n_w = 2,
                .w = {gate, up},
                .first = {0, 0},
                .y = {cb->hb, cb->hb},
                .ld = {F, F},
                .x = x,
                .ldx = c->n_embd,
                .n = n,
                .n_in = c->n_embd,
                .mode = c->act == MODEL_ACT_GELU_TANH ? MM_GEGLU : MM_SWIGLU};
    return mm_run(&j, F);
}
