/* The engine's public API: creation (backend, KV pool, thread), the
 * scheduler thread's loop, submitting, cancelling, waiting for and freeing
 * requests. The scheduling itself is in engine_sched.c. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "engine.h"
#include "engine_int.h"
#include "backend_open.h"
#include "backend_pipe.h"
#include "backend_split.h"
#include "err.h"

/* set on the scheduler thread: m40llm_request_free called from inside an
 * event callback must not wait for that callback to return */
static _Thread_local bool tls_engine_thread;

double engine_now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

const char *m40llm_finish_reason_str(m40llm_finish_reason r) {
    switch (r) {
    case M40LLM_FINISH_STOP:
        return "stop";
    case M40LLM_FINISH_LENGTH:
    case M40LLM_FINISH_CONTEXT:
        return "length";
    case M40LLM_FINISH_CANCELLED:
        return "cancelled";
    case M40LLM_FINISH_ERROR:
        return "error";
    default:
        return "";
    }
}

void m40llm_engine_default_params(m40llm_engine_params *p) {
    memset(p, 0, sizeof *p);
    p->device = "auto";
    p->kv_type = M40LLM_KV_F16;
}

void m40llm_request_default_params(m40llm_request_params *p) {
    memset(p, 0, sizeof *p);
    p->sampling.temperature = 0.8f;
    p->sampling.top_k = 40;
    p->sampling.top_p = 0.95f;
    p->sampling.min_p = 0.05f;
    p->sampling.repeat_penalty = 1.0f;
    p->sampling.penalty_last_n = 64;
    p->max_tokens = -1;
}

static void *engine_main(void *arg) {
    m40llm_engine *e = arg;
    tls_engine_thread = true;
    pthread_mutex_lock(&e->mu);
    for (;;) {
        engine_take_incoming(e);
        if (e->stop) break;
        if (e->clear_cache) { /* before any request submitted after the call */
            e->clear_cache = false;
            kv_pool_clear_cache(&e->pool);
        }
        if (e->n_running == 0 && e->n_waiting == 0) {
            pthread_cond_wait(&e->cv, &e->mu);
            continue;
        }
        pthread_mutex_unlock(&e->mu);
        bool worked = engine_step(e);
        pthread_mutex_lock(&e->mu);
        if (!worked && e->n_incoming == 0 && !e->stop) {
            /* only cancelled requests were left, or nothing fits yet */
            struct timespec ts;
            clock_gettime(CLOCK_REALTIME, &ts);
            ts.tv_nsec += 5 * 1000 * 1000;
            if (ts.tv_nsec >= 1000000000L) {
                ts.tv_sec++;
                ts.tv_nsec -= 1000000000L;
            }
            pthread_cond_timedwait(&e->cv, &e->mu, &ts);
        }
    }
    pthread_mutex_unlock(&e->mu);
    engine_cancel_all(e);
    return NULL;
}

/* "auto"/NULL, "cpu", "cuda", "cuda:N" */
static int engine_backend(const m40llm_engine_params *p, const model *m, backend_params *bp,
                          backend **out) {
    const char *d = p->device;
    if (p->gpus || p->split || p->tensor_split) { /* named cards: no CPU fallback */
        if (d && strcmp(d, "auto") && strncmp(d, "cuda", 4))
            return err_set(M40LLM_ERR_INVALID_ARG, "device '%s' with --gpus: the cards are GPUs",
                           d);
        /* --split/--tensor-split alone: the card of the device */
        const char *list = p->gpus ? p->gpus : d && !strncmp(d, "cuda:", 5) ? d + 5 : NULL;
        const backend_gpus g = {list, p->split, p->tensor_split};
        return backend_create_gpus(m, bp, &g, out);
    }
    if (!d || !strcmp(d, "auto")) { /* a card that holds it, or a split over those that do */
        if (!backend_create_default_gpu(m, bp, out)) return M40LLM_OK;
        err_clear();
        return backend_cpu_create(m, bp, out);
    }
    if (!strcmp(d, "cpu")) return backend_cpu_create(m, bp, out);
    if (!strncmp(d, "cuda", 4)) {
        if (d[4] == ':') {
            char *end = NULL;
            long n = strtol(d + 5, &end, 10);
            if (end == d + 5 || *end || n < 0 || n > 64)
                return err_set(M40LLM_ERR_INVALID_ARG, "device '%s': expected cuda:N", d);
            bp->device = (int)n;
        } else if (d[4]) {
            return err_set(M40LLM_ERR_INVALID_ARG, "device '%s': expected cpu, cuda or cuda:N", d);
        } else {
            return backend_create_default_gpu(m, bp, out);
        }
        return backend_cuda_create(m, bp, out);
    }
    return err_set(M40LLM_ERR_INVALID_ARG, "device '%s': expected auto, cpu, cuda or cuda:N", d);
}

static int engine_check_params(const m40llm_engine_params *p) {
    if (p->n_threads < 0 || p->n_ctx < 0 || p->max_seqs < 0 || p->max_batch_tokens < 0 ||
        p->max_queue < 0 || p->kv_block < 0)
        return err_set(M40LLM_ERR_INVALID_ARG, "engine: negative size in the parameters");
    if (p->max_seqs > 4096 || p->max_batch_tokens > 65535 || p->max_queue > 1000000)
        return err_set(M40LLM_ERR_INVALID_ARG,
                       "engine: max_seqs %d (<= 4096), max_batch_tokens %d (<= 65535), max_queue "
                       "%d (<= 1000000)",
                       p->max_seqs, p->max_batch_tokens, p->max_queue);
    if (p->kv_fraction < 0 || p->kv_fraction > 1)
        return err_set(M40LLM_ERR_INVALID_ARG, "engine: kv_fraction %g outside 0..1",
                       p->kv_fraction);
    if (p->kv_type != M40LLM_KV_F16 && p->kv_type != M40LLM_KV_F32)
        return err_set(M40LLM_ERR_INVALID_ARG, "engine: unknown KV type %d", (int)p->kv_type);
    return M40LLM_OK;
}

static int engine_alloc(m40llm_engine *e) {
    const m40llm_engine_params *p = &e->p;
    e->incoming = calloc((size_t)p->max_queue, sizeof *e->incoming);
    e->cap_waiting = p->max_queue + p->max_seqs;
    e->waiting = calloc((size_t)e->cap_waiting, sizeof *e->waiting);
    e->running = calloc((size_t)p->max_seqs, sizeof *e->running);
    e->step_reqs = calloc((size_t)p->max_seqs, sizeof *e->step_reqs);
    e->free_slots = calloc((size_t)p->max_seqs, sizeof *e->free_slots);
    e->entries = calloc((size_t)p->max_batch_tokens, sizeof *e->entries);
    e->entry_req = calloc((size_t)p->max_seqs, sizeof *e->entry_req);
    e->logits = malloc((size_t)p->max_seqs * e->model->m->cfg.n_vocab * sizeof *e->logits);
    e->ids = calloc((size_t)p->max_seqs, sizeof *e->ids);
    if (!e->incoming || !e->waiting || !e->running || !e->step_reqs || !e->free_slots ||
        !e->entries || !e->entry_req || !e->logits || !e->ids)
        return err_set(M40LLM_ERR_OOM, "engine: out of host memory");
    for (int i = 0; i < p->max_seqs; i++) e->free_slots[i] = p->max_seqs - 1 - i;
    e->n_free_slots = p->max_seqs;
    return M40LLM_OK;
}

/* Fills unset sizes with their defaults. */
static void engine_defaults(const m40llm_model *mm, m40llm_engine_params *p) {
    const model_config *c = &mm->m->cfg;
    if (!p->n_ctx) p->n_ctx = c->n_ctx_train > 0 && c->n_ctx_train < 4096 ? c->n_ctx_train : 4096;
    if (!p->max_seqs) p->max_seqs = 128;
    if (!p->max_batch_tokens) p->max_batch_tokens = p->max_seqs > 512 ? p->max_seqs : 512;
    if (!p->max_queue) p->max_queue = 1024;
    if (!p->n_threads) {
        long n = sysconf(_SC_NPROCESSORS_ONLN);
        p->n_threads = n > 0 ? (int)n : 1;
    }
}

/* The GPUs the model is on, in layer order: a split's CUDA stages, or a
 * CUDA backend itself (CPU stages, in tests, are no cards). Their count. */
static int engine_cards(const backend *b, const backend **cards) {
    const backend *st[BACKEND_PIPE_MAX_STAGES];
    int n = backend_pipe_stages(b, st), k = 0;
    if (n == 0) st[n++] = b;
    for (int i = 0; i < n && k < M40LLM_MAX_CARDS; i++)
        if (!strcmp(st[i]->ops->name, "cuda")) cards[k++] = st[i];
    return k;
}

int engine_create_on(m40llm_model *mm, backend *b, const m40llm_engine_params *params,
                     m40llm_engine **out) {
    *out = NULL;
    m40llm_engine_params p;
    if (params)
        p = *params;
    else
        m40llm_engine_default_params(&p);
    int rc = engine_check_params(&p);
    if (!rc && (!b->ops->seq_set_blocks || !b->params.paged))
        rc = err_set(M40LLM_ERR_INVALID_ARG, "engine: the backend is not in paged mode");
    if (!rc && b->model != mm->m)
        rc = err_set(M40LLM_ERR_INVALID_ARG, "engine: the backend runs another model");
    m40llm_engine *e = rc ? NULL : calloc(1, sizeof *e);
    if (!rc && !e) rc = err_set(M40LLM_ERR_OOM, "out of host memory");
    if (rc) {
        backend_destroy(b);
        return rc;
    }
    const backend_params *got = &b->params;
    p.n_ctx = got->n_ctx;
    p.max_seqs = got->n_seq_max;
    p.max_batch_tokens = got->n_batch_max;
    p.n_threads = got->n_threads;
    p.kv_type = got->kv_type == BACKEND_KV_F32 ? M40LLM_KV_F32 : M40LLM_KV_F16;
    p.kv_block = got->kv_block;
    if (!p.max_queue) p.max_queue = 1024;
    e->model = mm;
    e->b = b;
    e->p = p;
    pthread_mutex_init(&e->mu, NULL);
    pthread_cond_init(&e->cv, NULL);
    e->max_blocks = (p.n_ctx + got->kv_block - 1) / got->kv_block;
    if (got->n_kv_blocks < e->max_blocks)
        rc = err_set(M40LLM_ERR_OOM,
                     "the KV pool holds %d blocks of %d positions, less than one sequence of %d "
                     "positions needs (%d): give more KV memory or a shorter context",
                     got->n_kv_blocks, got->kv_block, p.n_ctx, e->max_blocks);
    if (!rc) rc = kv_pool_init(&e->pool, got->n_kv_blocks, got->kv_block);
    if (!rc) rc = engine_alloc(e);
    if (!rc) {
        m40llm_engine_info *in = &e->info;
        /* a split: its stages' kind and first card (engine_info.cards has them all) */
        const backend *first[BACKEND_PIPE_MAX_STAGES];
        const backend *kind = backend_pipe_stages(b, first) > 0 ? first[0] : b;
        in->backend = kind->ops->name;
        in->device = strcmp(kind->ops->name, "cpu") ? kind->params.device : -1;
        in->n_ctx = p.n_ctx;
        const backend *cards[M40LLM_MAX_CARDS];
        in->n_cards = engine_cards(b, cards);
        for (int i = 0; i < in->n_cards; i++) {
            m40llm_card_share *c = &in->cards[i];
            backend_layers(cards[i], &c->layer_begin, &c->layer_end);
            c->device = cards[i]->params.device;
            c->weight_bytes = backend_stage_weight_bytes(b->model, c->layer_begin, c->layer_end);
        }
        in->max_seqs = p.max_seqs;
        in->max_batch_tokens = p.max_batch_tokens;
        in->max_queue = p.max_queue;
        in->kv_block = got->kv_block;
        in->kv_blocks_total = got->n_kv_blocks;
        in->kv_type = p.kv_type;
        in->kv_pool_bytes = (uint64_t)in->kv_blocks_total *
                            backend_kv_block_bytes(mm->m, got->kv_type, in->kv_block);
        e->stats.kv_blocks_free = in->kv_blocks_total;
        e->st.kv_blocks_free = in->kv_blocks_total;
    }
    if (!rc) {
        if (pthread_create(&e->thread, NULL, engine_main, e))
            rc = err_set(M40LLM_ERR_INTERNAL, "engine: cannot start its thread");
        else
            e->thread_started = true;
    }
    if (rc) {
        m40llm_engine_free(e);
        return rc;
    }
    *out = e;
    return M40LLM_OK;
}

/* The backend parameters an engine with these settings asks for. */
static backend_params engine_backend_params(const m40llm_engine_params *p) {
    backend_params bp = {
        .n_ctx = p->n_ctx,
        .n_seq_max = p->max_seqs,
        .n_batch_max = p->max_batch_tokens,
        .n_threads = p->n_threads,
        .kv_type = p->kv_type == M40LLM_KV_F32 ? BACKEND_KV_F32 : BACKEND_KV_F16,
        .paged = true,
        .kv_block = p->kv_block,
        .kv_bytes = p->kv_bytes,
        .kv_fraction = p->kv_bytes ? 0 : (p->kv_fraction > 0 ? p->kv_fraction : 0.9),
        .gemm_cache = BACKEND_GEMM_CACHE_AUTO,
    };
    backend_params_env(&bp); /* the developer switches (backend.h) */
    return bp;
}

int m40llm_engine_create(m40llm_model *mm, const m40llm_engine_params *params,
                         m40llm_engine **out) {
    if (!out) return err_set(M40LLM_ERR_INVALID_ARG, "m40llm_engine_create: out is NULL");
    *out = NULL;
    if (!mm) return err_set(M40LLM_ERR_INVALID_ARG, "m40llm_engine_create: no model");
    m40llm_engine_params p;
    if (params)
        p = *params;
    else
        m40llm_engine_default_params(&p);
    int rc = engine_check_params(&p);
    if (rc) return rc;
    engine_defaults(mm, &p);
    backend_params bp = engine_backend_params(&p);
    backend *b = NULL;
    rc = engine_backend(&p, mm->m, &bp, &b);
    if (rc) return rc;
    return engine_create_on(mm, b, &p, out);
}

void m40llm_engine_free(m40llm_engine *e) {
    if (!e) return;
    if (e->thread_started) {
        pthread_mutex_lock(&e->mu);
        e->stop = true;
        atomic_store(&e->stopping, true);
        pthread_cond_signal(&e->cv);
        pthread_mutex_unlock(&e->mu);
        pthread_join(e->thread, NULL);
    }
    backend_destroy(e->b);
    kv_pool_free(&e->pool);
    free(e->incoming);
    free(e->waiting);
    free(e->running);
    free(e->step_reqs);
    free(e->free_slots);
    free(e->entries);
    free(e->entry_req);
    free(e->logits);
    free(e->ids);
    json_vocab_free(e->json_vocab);
    pthread_mutex_destroy(&e->mu);
    pthread_cond_destroy(&e->cv);
    free(e);
}

void m40llm_engine_get_info(const m40llm_engine *e, m40llm_engine_info *out) {
    memset(out, 0, sizeof *out);
    if (!e) return;
    *out = e->info; /* the cards' layers and weights were set at create */
    out->mem_used = e->b->ops->mem_used(e->b);
    const backend *cards[M40LLM_MAX_CARDS];
    const int n = engine_cards(e->b, cards);
    for (int i = 0; i < n && i < out->n_cards; i++)
        out->cards[i].mem_used = cards[i]->ops->mem_used(cards[i]);
}

void m40llm_engine_get_stats(m40llm_engine *e, m40llm_engine_stats *out) {
    memset(out, 0, sizeof *out);
    if (!e) return;
    pthread_mutex_lock(&e->mu);
    *out = e->stats;
    out->waiting = e->stats.waiting > e->n_incoming ? e->stats.waiting : e->n_incoming;
    pthread_mutex_unlock(&e->mu);
}

void m40llm_engine_clear_prefix_cache(m40llm_engine *e) {
    if (!e) return;
    pthread_mutex_lock(&e->mu);
    e->clear_cache = true;
    pthread_cond_signal(&e->cv);
    pthread_mutex_unlock(&e->mu);
}

static int check_request(const m40llm_engine *e, const m40llm_request_params *p) {
    const int nv = e->model->m->cfg.n_vocab;
    if (!p->prompt || p->n_prompt < 1)
        return err_set(M40LLM_ERR_INVALID_ARG, "the prompt has no tokens");
    if (p->n_prompt > (size_t)e->p.n_ctx)
        return err_set(M40LLM_ERR_CONTEXT_FULL,
                       "the prompt is %zu tokens but the context holds only %d", p->n_prompt,
                       e->p.n_ctx);
    for (size_t i = 0; i < p->n_prompt; i++)
        if (p->prompt[i] < 0 || p->prompt[i] >= nv)
            return err_set(M40LLM_ERR_INVALID_ARG,
                           "prompt token %zu (id %d) is outside the vocabulary of %d", i,
                           p->prompt[i], nv);
    if (p->format != M40LLM_FORMAT_TEXT && p->format != M40LLM_FORMAT_JSON)
        return err_set(M40LLM_ERR_INVALID_ARG, "format %d (text 0 or JSON 1)", p->format);
    if (p->n_logit_bias < 0 || p->n_logit_bias > M40LLM_MAX_LOGIT_BIAS ||
        (p->n_logit_bias > 0 && !p->logit_bias))
        return err_set(M40LLM_ERR_INVALID_ARG, "%d logit biases (at most %d)", p->n_logit_bias,
                       M40LLM_MAX_LOGIT_BIAS);
    for (int i = 0; i < p->n_logit_bias; i++) {
        const m40llm_logit_bias *lb = &p->logit_bias[i];
        if (lb->token < 0 || lb->token >= e->model->n_text_vocab || !(lb->bias >= -100.0f) ||
            !(lb->bias <= 100.0f))
            return err_set(M40LLM_ERR_INVALID_ARG,
                           "logit bias %d: token %d (0..%d) by %g (-100..100)", i, lb->token,
                           e->model->n_text_vocab - 1, (double)lb->bias);
    }
    if (p->json_schema && p->format != M40LLM_FORMAT_JSON)
        return err_set(M40LLM_ERR_INVALID_ARG, "a JSON schema needs format JSON");
    if (p->n_stops < 0 || (p->n_stops > 0 && !p->stops) || p->n_stops > 64)
        return err_set(M40LLM_ERR_INVALID_ARG, "%d stop strings (at most 64)", p->n_stops);
    for (int i = 0; i < p->n_stops; i++)
        if (!p->stops[i] || strlen(p->stops[i]) > 1024)
            return err_set(M40LLM_ERR_INVALID_ARG, "stop string %d is missing or over 1024 bytes",
                           i);
    if (p->logprobs < 0 || p->top_logprobs < 0 || p->top_logprobs > M40LLM_MAX_LOGPROBS)
        return err_set(M40LLM_ERR_INVALID_ARG, "top_logprobs %d outside 0..%d", p->top_logprobs,
                       M40LLM_MAX_LOGPROBS);
    const m40llm_sampling *s = &p->sampling;
    if (!(s->temperature == s->temperature) || !(s->top_p == s->top_p) || !(s->min_p == s->min_p) ||
        !(s->repeat_penalty > 0) || !(s->presence_penalty == s->presence_penalty) ||
        !(s->frequency_penalty == s->frequency_penalty))
        return err_set(M40LLM_ERR_INVALID_ARG, "a sampling parameter is not a number");
    return M40LLM_OK;
}

/* *out: a checked request with its own copies of the prompt and stops;
 * refs 2 (the caller and the engine). Status. */
static int request_new(m40llm_engine *e, const m40llm_request_params *p, m40llm_request **out) {
    int rc = check_request(e, p);
    if (rc) return rc;
    m40llm_request *r = calloc(1, sizeof *r);
    if (!r) return err_set(M40LLM_ERR_OOM, "out of memory");
    pthread_mutex_init(&r->mu, NULL);
    pthread_cond_init(&r->cv, NULL);
    atomic_init(&r->refs, 2); /* the caller and the engine */
    atomic_init(&r->cancel, false);
    atomic_init(&r->detached, false);
    r->p = *p;
    r->p.prompt = NULL;
    r->p.stops = NULL;
    r->p.json_schema = NULL;
    r->p.n_stops = 0; /* counts the copies made below: unref frees only those */
    r->p.logit_bias = NULL;
    r->slot = -1;
    r->n_ctx = e->p.n_ctx;
    r->tokens = malloc(((size_t)e->p.n_ctx + 1) * sizeof *r->tokens);
    r->blocks = malloc((size_t)e->max_blocks * sizeof *r->blocks);
    r->stops = p->n_stops ? calloc((size_t)p->n_stops, sizeof *r->stops) : NULL;
    bool ok = r->tokens && r->blocks && (!p->n_stops || r->stops);
    for (int i = 0; ok && i < p->n_stops; i++, r->p.n_stops++)
        ok = (r->stops[i] = strdup(p->stops[i])) != NULL;
    if (ok && p->n_logit_bias > 0) {
        r->bias = malloc((size_t)p->n_logit_bias * sizeof *r->bias);
        if ((ok = r->bias != NULL))
            memcpy(r->bias, p->logit_bias, (size_t)p->n_logit_bias * sizeof *r->bias);
    }
    rc = ok ? M40LLM_OK : err_set(M40LLM_ERR_OOM, "out of memory");
    if (!rc && p->json_schema)
        rc = json_schema_compile(p->json_schema, strlen(p->json_schema), &r->schema);
    if (rc) {
        atomic_store(&r->refs, 1);
        engine_request_unref(r);
        return rc;
    }
    memcpy(r->tokens, p->prompt, p->n_prompt * sizeof *r->tokens);
    r->n_tokens = (int)p->n_prompt;
    r->res.n_prompt = (int)p->n_prompt;
    *out = r;
    return M40LLM_OK;
}

int m40llm_submit_many(m40llm_engine *e, const m40llm_request_params *ps, int n,
                       m40llm_request **out) {
    if (!out || n < 1) return err_set(M40LLM_ERR_INVALID_ARG, "m40llm_submit: no requests");
    for (int i = 0; i < n; i++) out[i] = NULL;
    if (!e || !ps) return err_set(M40LLM_ERR_INVALID_ARG, "m40llm_submit: NULL engine/params");
    int rc = M40LLM_OK;
    for (int i = 0; i < n && !rc; i++) rc = request_new(e, &ps[i], &out[i]);
    if (!rc) {
        const double t = engine_now();
        for (int i = 0; i < n; i++) out[i]->t_submit = t;
        pthread_mutex_lock(&e->mu);
        if (e->stop)
            rc = err_set(M40LLM_ERR_CANCELLED, "the engine is shutting down");
        else if (n > e->p.max_queue - e->n_queued)
            rc = err_set(M40LLM_ERR_BUSY, "the queue is full (%d requests waiting, %d more asked)",
                         e->n_queued, n);
        for (int i = 0; !rc && i < n; i++) {
            e->incoming[e->n_incoming++] = out[i];
            e->n_queued++;
        }
        if (!rc) pthread_cond_signal(&e->cv);
        pthread_mutex_unlock(&e->mu);
    }
    if (rc)
        for (int i = 0; i < n; i++) {
            if (!out[i]) continue;
            atomic_store(&out[i]->refs, 1);
            engine_request_unref(out[i]);
            out[i] = NULL;
        }
    return rc;
}

int m40llm_submit(m40llm_engine *e, const m40llm_request_params *p, m40llm_request **out) {
    if (!out) return err_set(M40LLM_ERR_INVALID_ARG, "m40llm_submit: out is NULL");
    return m40llm_submit_many(e, p, 1, out);
}

void m40llm_request_cancel(m40llm_request *r) {
    /* the engine looks at the flag every step; it is never idle while a
     * request it holds is unfinished */
    if (r) atomic_store(&r->cancel, true);
}

int m40llm_request_finished(m40llm_request *r) {
    if (!r) return 1;
    pthread_mutex_lock(&r->mu);
    int d = r->done;
    pthread_mutex_unlock(&r->mu);
    return d;
}

int m40llm_request_wait(m40llm_request *r, int timeout_ms) {
    if (!r) return 1;
    struct timespec until;
    clock_gettime(CLOCK_REALTIME, &until);
    if (timeout_ms >= 0) {
        until.tv_sec += timeout_ms / 1000;
        until.tv_nsec += (long)(timeout_ms % 1000) * 1000000L;
        if (until.tv_nsec >= 1000000000L) {
            until.tv_sec++;
            until.tv_nsec -= 1000000000L;
        }
    }
    pthread_mutex_lock(&r->mu);
    while (!r->done) {
        if (timeout_ms < 0)
            pthread_cond_wait(&r->cv, &r->mu);
        else if (pthread_cond_timedwait(&r->cv, &r->mu, &until) == ETIMEDOUT)
            break;
    }
    int d = r->done;
    pthread_mutex_unlock(&r->mu);
    return d;
}

void m40llm_request_get_result(m40llm_request *r, m40llm_request_result *out) {
    memset(out, 0, sizeof *out);
    if (!r) return;
    pthread_mutex_lock(&r->mu);
    *out = r->res;
    pthread_mutex_unlock(&r->mu);
}

char *m40llm_request_text(m40llm_request *r, size_t *len) {
    if (len) *len = 0;
    if (!r) return NULL;
    pthread_mutex_lock(&r->mu);
    char *t = malloc(r->text_len + 1);
    if (t) {
        if (r->text_len) memcpy(t, r->text, r->text_len);
        t[r->text_len] = '\0';
        if (len) *len = r->text_len;
    }
    pthread_mutex_unlock(&r->mu);
    return t;
}

void m40llm_request_free(m40llm_request *r) {
    if (!r) return;
    atomic_store(&r->cancel, true);
    pthread_mutex_lock(&r->mu);
    if (!tls_engine_thread)
        while (r->in_cb) pthread_cond_wait(&r->cv, &r->mu);
    atomic_store(&r->detached, true);
    pthread_mutex_unlock(&r->mu);
    engine_request_unref(r);
}
