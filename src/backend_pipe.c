/* A layer split (pipeline): one model over several backends, each a stage
 * that holds and runs a contiguous range of the layers (their weights and
 * KV cache), the first embedding the tokens and the last holding the output
 * head. A forward call runs each part of the batch (backend_batch_part)
 * through the stages in order, the residual stream passing between them in
 * host memory. Every stage sees the same entries, so the sequences' lengths
 * and block tables move in step; the stages' KV pools hold the same number
 * of blocks (for a fraction of free memory: the most every card can give
 * its stages, pipe_pool_blocks).
 *
 * The stages are CUDA backends on the cards of --gpus (two on one card
 * in the tests, "0,0"), or CPU backends: the same mechanism on a machine
 * without a GPU, whose logits equal the unsplit backend's bit for bit. */
#include "backend_pipe.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "backend_split.h"
#include "err.h"
#include "m40llm.h"

typedef struct pipe_backend {
    backend base;
    int n;                                /* stages */
    backend *st[BACKEND_PIPE_MAX_STAGES]; /* [n] in layer order */
    float *xa, *xb;                       /* [n_batch_max][n_embd] the stream between stages */
} pipe_backend;

static pipe_backend *as_pipe(const backend *b) {
    return (pipe_backend *)b;
}

/* every stage's sequences of the call cut back to their first position in
 * it (as a single backend's failed call leaves them) */
static void pipe_cut_back(pipe_backend *pb, const backend_entry *e, int n) {
    for (int s = 0; s < pb->n; s++) {
        backend *st = pb->st[s];
        for (int i = 0; i < n; i++)
            if (e[i].pos < st->ops->seq_len(st, e[i].seq)) st->ops->seq_cut(st, e[i].seq, e[i].pos);
    }
}

static int pipe_run(backend *b, const backend_entry *e, int n, float *logits, int32_t *ids) {
    pipe_backend *pb = as_pipe(b);
    int rc = backend_validate_batch(b, e, n);
    if (rc) return rc;
    int n_out = 0;
    for (int i = 0; i < n; i++) n_out += e[i].logits;
    if (n_out && !logits && !ids)
        return err_set(M40LLM_ERR_INVALID_ARG,
                       "layer split: %d entries want logits but the output buffer is NULL", n_out);
    for (int s = 0; s < pb->n; s++) backend_set_abort(pb->st[s], b->abort_fn, b->abort_ctx);
    const int V = b->model->cfg.n_vocab;
    for (int start = 0; start < n;) {
        const int end = backend_batch_part(e, start, n, b->max_part > 0 ? b->max_part : n);
        const float *x_in = NULL;
        for (int s = 0; s < pb->n && !rc; s++) {
            if (s > 0 && b->abort_fn && b->abort_fn(b->abort_ctx)) { /* (a GPU stage polls not) */
                rc = err_set(M40LLM_ERR_CANCELLED, "layer split: abandoned before stage %d", s + 1);
                break;
            }
            const bool last = s == pb->n - 1;
            float *x_out = last ? NULL : s % 2 ? pb->xb : pb->xa;
            backend *st = pb->st[s];
            rc = st->ops->forward_stage(st, e + start, end - start, x_in, x_out,
                                        last ? logits : NULL, last ? ids : NULL);
            if (rc)
                rc = err_prefix(rc, "stage %d of %d (layers %d..%d)", s + 1, pb->n,
                                st->params.layer_begin, st->params.layer_end - 1);
            x_in = x_out;
        }
        if (rc) {
            pipe_cut_back(pb, e, n);
            return rc;
        }
        for (int i = start; i < end; i++)
            if (e[i].logits) {
                if (logits) logits += V;
                if (ids) ids++;
            }
        start = end;
    }
    return M40LLM_OK;
}

static int pipe_forward(backend *b, const backend_entry *e, int n, float *logits) {
    return pipe_run(b, e, n, logits, NULL);
}

static int pipe_forward_argmax(backend *b, const backend_entry *e, int n, int32_t *ids) {
    return pipe_run(b, e, n, NULL, ids);
}

static int pipe_seq_clear(backend *b, int seq) {
    pipe_backend *pb = as_pipe(b);
    int rc = M40LLM_OK;
    for (int s = 0; s < pb->n && !rc; s++) rc = pb->st[s]->ops->seq_clear(pb->st[s], seq);
    return rc;
}

static int pipe_seq_len(const backend *b, int seq) {
    const backend *st = as_pipe(b)->st[0];
    return st->ops->seq_len(st, seq);
}

static int pipe_seq_set_blocks(backend *b, int seq, const int32_t *blocks, int n_blocks, int len) {
    pipe_backend *pb = as_pipe(b);
    /* the same checks as every stage makes, first, so that no stage takes
     * a table another refuses */
    int rc = backend_check_blocks(b, seq, blocks, n_blocks, len);
    for (int s = 0; s < pb->n && !rc; s++)
        rc = pb->st[s]->ops->seq_set_blocks(pb->st[s], seq, blocks, n_blocks, len);
    return rc;
}

static int pipe_block_copy(backend *b, int src, int dst) {
    pipe_backend *pb = as_pipe(b);
    int rc = backend_check_copy(b, src, dst);
    for (int s = 0; s < pb->n && !rc; s++)
        rc = pb->st[s]->ops->block_copy
                 ? pb->st[s]->ops->block_copy(pb->st[s], src, dst)
                 : err_set(M40LLM_ERR_UNSUPPORTED, "block_copy: stage %d cannot copy blocks", s);
    return rc;
}

static int pipe_seq_capacity(const backend *b, int seq) {
    const pipe_backend *pb = as_pipe(b);
    int cap = b->params.n_ctx;
    for (int s = 0; s < pb->n; s++) {
        const int c = pb->st[s]->ops->seq_capacity(pb->st[s], seq);
        if (c < cap) cap = c;
    }
    return cap;
}

static int pipe_seq_cut(backend *b, int seq, int len) {
    pipe_backend *pb = as_pipe(b);
    int rc = M40LLM_OK;
    for (int s = 0; s < pb->n && !rc; s++) rc = pb->st[s]->ops->seq_cut(pb->st[s], seq, len);
    return rc;
}

static uint64_t pipe_mem_used(const backend *b) {
    const pipe_backend *pb = as_pipe(b);
    uint64_t m = 0;
    for (int s = 0; s < pb->n; s++) m += pb->st[s]->ops->mem_used(pb->st[s]);
    return m;
}

static void pipe_destroy(backend *b) {
    pipe_backend *pb = as_pipe(b);
    if (!pb) return;
    for (int s = 0; s < pb->n; s++) backend_destroy(pb->st[s]);
    free(pb->xa);
    free(pb->xb);
    free(pb);
}

static const backend_ops pipe_ops = {
    .name = "split",
    .forward = pipe_forward,
    .forward_argmax = pipe_forward_argmax,
    .seq_clear = pipe_seq_clear,
    .seq_len = pipe_seq_len,
    .seq_set_blocks = pipe_seq_set_blocks,
    .block_copy = pipe_block_copy,
    .seq_capacity = pipe_seq_capacity,
    .seq_cut = pipe_seq_cut,
    .mem_used = pipe_mem_used,
    .destroy = pipe_destroy,
};

/* A paged pool sized by kv_fraction over GPU stages: the most blocks every
 * card holds for its stages' layers out of kv_fraction of its free memory
 * less their weights (measured before any stage loads: a stage sizing its
 * own pool would leave the next one on its card without room). */
static int pipe_pool_blocks(const model *m, const backend_params *p, const backend_stage *st, int n,
                            int *blocks) {
    const int kb = p->kv_block ? p->kv_block : 64; /* (the CUDA backend's default) */
    const double per_layer = (double)backend_kv_block_bytes(m, p->kv_type, kb) /
                             (m->cfg.n_layer > 0 ? m->cfg.n_layer : 1);
    double best = -1;
    for (int s = 0; s < n; s++) {
        bool seen = false;
        for (int t = 0; t < s; t++) seen |= st[t].device == st[s].device;
        if (seen) continue;
        m40llm_gpu_info gi;
        int rc = m40llm_gpu_query(st[s].device, &gi);
        if (rc) return err_prefix(rc, "GPU %d", st[s].device);
        double weights = 0, layers = 0;
        for (int t = 0; t < n; t++)
            if (st[t].device == st[s].device) {
                weights +=
                    (double)backend_stage_weight_bytes(m, st[t].layer_begin, st[t].layer_end);
                layers += st[t].layer_end - st[t].layer_begin;
            }
        const double room = (double)gi.mem_free - weights;
        const double b = room > 0 ? floor(room * p->kv_fraction / (layers * per_layer)) : 0;
        if (b < 1)
            return err_set(M40LLM_ERR_OOM,
                           "GPU %d: %llu bytes free, %.0f of them for its layers' weights: no room "
                           "for a KV block of %.0f bytes",
                           st[s].device, (unsigned long long)gi.mem_free, weights,
                           layers * per_layer);
        if (best < 0 || b < best) best = b;
    }
    *blocks = best > INT32_MAX ? INT32_MAX : (int)best;
    return M40LLM_OK;
}

int backend_pipe_create(const model *m, const backend_params *p, const backend_stage *stages, int n,
                        backend **out) {
    *out = NULL;
    if (!m || !p || !stages || n < 1 || n > BACKEND_PIPE_MAX_STAGES)
        return err_set(M40LLM_ERR_INVALID_ARG, "layer split: %d stages (1..%d)", n,
                       BACKEND_PIPE_MAX_STAGES);
    for (int s = 0; s < n; s++) {
        const int want = s == 0 ? 0 : stages[s - 1].layer_end;
        if (stages[s].layer_begin != want || stages[s].layer_end <= stages[s].layer_begin ||
            (s == n - 1 && stages[s].layer_end != m->cfg.n_layer) ||
            stages[s].layer_end > m->cfg.n_layer)
            return err_set(M40LLM_ERR_INVALID_ARG,
                           "layer split: stage %d runs layers %d..%d; the stages must cover the "
                           "%d layers in order",
                           s + 1, stages[s].layer_begin, stages[s].layer_end - 1, m->cfg.n_layer);
        if ((stages[s].device < 0) != (stages[0].device < 0))
            return err_set(M40LLM_ERR_INVALID_ARG, "layer split: CPU and GPU stages mixed");
    }
    pipe_backend *pb = calloc(1, sizeof *pb);
    if (!pb) return err_set(M40LLM_ERR_OOM, "layer split: out of memory");
    pb->base.ops = &pipe_ops;
    pb->base.model = m;
    pb->base.params = *p;
    const size_t xs = (size_t)(p->n_batch_max > 0 ? p->n_batch_max : 1) * m->cfg.n_embd;
    pb->xa = malloc(xs * sizeof *pb->xa);
    pb->xb = malloc(xs * sizeof *pb->xb);
    int rc = pb->xa && pb->xb ? M40LLM_OK : err_set(M40LLM_ERR_OOM, "layer split: out of memory");
    int pool = 0; /* blocks of a kv_fraction pool on GPUs, fixed before any stage loads */
    if (!rc && stages[0].device >= 0 && p->paged && p->n_kv_blocks == 0 && p->kv_bytes == 0 &&
        p->kv_fraction > 0)
        rc = pipe_pool_blocks(m, p, stages, n, &pool);
    for (int s = 0; s < n && !rc; s++) {
        backend_params sp = *p;
        sp.layer_begin = stages[s].layer_begin;
        sp.layer_end = stages[s].layer_end;
        sp.device = stages[s].device;
        if (pool > 0) {
            sp.n_kv_blocks = pool;
            sp.kv_fraction = 0;
        }
        if (s > 0) { /* the first stage's block size and pool for the rest */
            sp.kv_block = pb->st[0]->params.kv_block;
            if (p->paged) sp.n_kv_blocks = pb->st[0]->params.n_kv_blocks;
        }
        backend *st = NULL;
        rc = stages[s].device < 0 ? backend_cpu_create(m, &sp, &st)
                                  : backend_cuda_create(m, &sp, &st);
        if (rc) {
            rc = err_prefix(rc, "stage %d of %d (%s%d, layers %d..%d)", s + 1, n,
                            stages[s].device < 0 ? "CPU" : "GPU ",
                            stages[s].device < 0 ? s : stages[s].device, sp.layer_begin,
                            sp.layer_end - 1);
            break;
        }
        pb->st[pb->n++] = st;
        if (!st->ops->forward_stage || !st->ops->seq_cut)
            rc = err_set(M40LLM_ERR_UNSUPPORTED, "layer split: the %s backend has no stages",
                         st->ops->name);
    }
    if (rc) {
        pipe_destroy(&pb->base);
        return rc;
    }
    /* steps as the stages cut them (the unsplit backend's parts) */
    for (int s = 0; s < pb->n; s++) {
        const int mp = pb->st[s]->max_part;
        if (mp > 0 && (pb->base.max_part == 0 || mp < pb->base.max_part)) pb->base.max_part = mp;
    }
    /* the pool and block size every stage has (kv_block written back) */
    pb->base.params.kv_block = pb->st[0]->params.kv_block;
    pb->base.params.n_kv_blocks = pb->st[0]->params.n_kv_blocks;
    *out = &pb->base;
    return M40LLM_OK;
}

int backend_pipe_stages(const backend *b, const backend **stages) {
    if (!b || b->ops != &pipe_ops) return 0;
    const pipe_backend *pb = as_pipe(b);
    for (int s = 0; s < pb->n && stages; s++) stages[s] = pb->st[s];
    return pb->n;
}
