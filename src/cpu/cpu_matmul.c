/* Products of stored weights with FP32 activations. A thread owns a range of
 * output rows; it dequantizes CPU_MM_TILE rows at a time into its own buffer
 * (once per call, whatever the number of tokens) and dots them with every
 * token's activations, which stay in L1 across the tile. A single token takes
 * the same path, so a row's result does not depend on how a sequence was
 * split into batches (bit-identical logits for any batching). */
#include <stdatomic.h>

#include "cpu_internal.h"
#include "err.h"
#include "quant.h"

typedef enum mm_mode { MM_STORE, MM_ADD, MM_SWIGLU } mm_mode;

/* Up to three weights stacked along their output rows (Q|K|V), each with its
 * own destination; or gate and up of the FFN (MM_SWIGLU, same rows). */
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

static void mm_worker(void *ctx, int64_t begin, int64_t end, int thread) {
    mm_job *j = ctx;
    float *buf = thread_wbuf(j->cb, thread);
    const int n_in = j->n_in, mi = j->cb->max_in;
    for (int64_t r0 = begin; r0 < end; r0 += CPU_MM_TILE) {
        int nt = (int)(end - r0 < CPU_MM_TILE ? end - r0 : CPU_MM_TILE);
        int which[CPU_MM_TILE];
        int64_t col[CPU_MM_TILE];
        for (int t = 0; t < nt; t++) {
            int64_t r = r0 + t;
            int k = j->mode == MM_SWIGLU ? 0 : mm_which(j, r);
            which[t] = k;
            col[t] = r - j->first[k];
            int rc = dequant(j->w[k], col[t], buf + (size_t)t * mi, n_in);
            if (j->mode == MM_SWIGLU && !rc)
                rc = dequant(j->w[1], col[t], buf + (size_t)(CPU_MM_TILE + t) * mi, n_in);
            if (rc) {
                atomic_store(&j->failed, rc);
                return;
            }
        }
        for (int i = 0; i < j->n; i++) {
            const float *xi = j->x + (size_t)i * j->ldx;
            for (int t = 0; t < nt; t++) {
                float v = cpu_dot(buf + (size_t)t * mi, xi, n_in);
                float *y = j->y[which[t]] + (size_t)i * j->ld[which[t]] + col[t];
                if (j->mode == MM_SWIGLU) {
                    float u = cpu_dot(buf + (size_t)(CPU_MM_TILE + t) * mi, xi, n_in);
                    *y = cpu_silu(v) * u;
                } else if (j->mode == MM_ADD) {
                    *y += v;
                } else {
                    *y = v;
                }
            }
        }
    }
}

static int mm_run(mm_job *j, int64_t rows) {
    atomic_init(&j->failed, 0);
    /* enough rows per thread that a chunk is worth a wake-up */
    threadpool_for(j->cb->pool, rows, CPU_MM_TILE, mm_worker, j);
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

int cpu_matmul_ffn_in(cpu_backend *cb, const model_layer *L, const float *x, int n) {
    const model_config *c = &cb->base.model->cfg;
    mm_job j = {.cb = cb,
                .n_w = 2,
                .w = {&L->w_gate, &L->w_up},
                .first = {0, 0},
                .y = {cb->hb, cb->hb},
                .ld = {c->n_ff, c->n_ff},
                .x = x,
                .ldx = c->n_embd,
                .n = n,
                .n_in = c->n_embd,
                .mode = MM_SWIGLU};
    return mm_run(&j, c->n_ff);
}
