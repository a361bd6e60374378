/* One scheduling step of the engine: continuous batching with chunked
 * prefill over the paged KV cache.
 *
 * A running request wants to compute tokens[n_computed .. n_tokens): one
 * token while decoding, a prompt (or a recomputation after preemption)
 * otherwise; the last one gives the logits for its next token. Each step
 * fills a batch of at most max_batch_tokens entries:
 *   1. one token for every decoding request, oldest first;
 *   2. prompt chunks of running requests still in prefill, oldest first;
 *   3. new (or preempted) requests in FIFO order while a sequence slot, the
 *      token budget and blocks for their whole remaining prompt are free.
 * Blocks are taken as positions are reached. When none is left, the
 * youngest running request not yet in the batch is preempted: its blocks
 * go back (they stay in the prefix cache, the last one part way) and it
 * waits at the head of the queue to be recomputed, its output so far kept. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine_int.h"
#include "err.h"

static void remove_at(m40llm_request **a, int *n, int i) {
    memmove(a + i, a + i + 1, (size_t)(*n - i - 1) * sizeof *a);
    (*n)--;
}

static int index_of(m40llm_request **a, int n, const m40llm_request *r) {
    for (int i = 0; i < n; i++)
        if (a[i] == r) return i;
    return -1;
}

static void release_blocks(m40llm_engine *e, m40llm_request *r) {
    const int bs = e->pool.block, part = r->n_computed - r->n_hashed * bs;
    /* the block after the registered full ones, filled part way: cached
     * too, for a prompt that goes on from there (the next turn of a chat) */
    if (!e->p.no_prefix_cache && part > 0 && part < bs && r->n_hashed < r->n_blocks)
        kv_pool_register_partial(&e->pool, r->blocks[r->n_hashed], r->last_hash,
                                 r->tokens + (size_t)r->n_hashed * bs, part);
    for (int i = 0; i < r->n_blocks; i++) kv_pool_release(&e->pool, r->blocks[i]);
    r->n_blocks = 0;
    r->n_hashed = 0;
    r->last_hash = 0;
    r->n_computed = 0;
}

/* Takes a running request off its backend sequence. */
static void unschedule(m40llm_engine *e, m40llm_request *r) {
    int i = index_of(e->running, e->n_running, r);
    if (i >= 0) remove_at(e->running, &e->n_running, i);
    if (r->slot >= 0) {
        e->b->ops->seq_clear(e->b, r->slot);
        e->free_slots[e->n_free_slots++] = r->slot;
        r->slot = -1;
    }
}

static void finish_running(m40llm_engine *e, m40llm_request *r, m40llm_finish_reason why,
                           const char *error) {
    engine_request_finish(e, r, why, error);
    release_blocks(e, r);
    unschedule(e, r);
    engine_request_unref(r);
}

static void finish_waiting(m40llm_engine *e, int i, m40llm_finish_reason why, const char *error) {
    m40llm_request *r = e->waiting[i];
    remove_at(e->waiting, &e->n_waiting, i);
    if (!r->admitted_once) {
        pthread_mutex_lock(&e->mu);
        e->n_queued--;
        pthread_mutex_unlock(&e->mu);
    }
    engine_request_finish(e, r, why, error);
    release_blocks(e, r);
    engine_request_unref(r);
}

static void preempt(m40llm_engine *e, m40llm_request *r) {
    release_blocks(e, r);
    unschedule(e, r);
    r->state = REQ_WAITING;
    r->table_dirty = true;
    memmove(e->waiting + 1, e->waiting, (size_t)e->n_waiting * sizeof *e->waiting);
    e->waiting[0] = r;
    e->n_waiting++;
    pthread_mutex_lock(&r->mu);
    r->res.n_preempted++;
    pthread_mutex_unlock(&r->mu);
    e->st.preemptions++;
}

/* The youngest running request not in this step's batch (r included). */
static m40llm_request *victim(m40llm_engine *e, uint64_t step) {
    for (int i = e->n_running - 1; i >= 0; i--)
        if (e->running[i]->sched_step != step) return e->running[i];
    return NULL;
}

/* Blocks so that positions < upto are covered; false when the pool is out. */
static bool grow(m40llm_engine *e, m40llm_request *r, int upto) {
    while (r->n_blocks * e->pool.block < upto) {
        int b = kv_pool_alloc(&e->pool);
        if (b < 0) return false;
        r->blocks[r->n_blocks++] = b;
        r->table_dirty = true;
    }
    return true;
}

/* After the reused full blocks: the first positions of the next block from
 * a cached block that starts with the same tokens (full, or partial: where
 * another sequence stopped), up to avail of them. The cached block itself
 * when nobody else references it and all it holds is wanted; else a copy
 * (where the backend copies). Returns the positions reused. */
static int prefix_partial(m40llm_engine *e, m40llm_request *r, uint64_t parent, int avail) {
    kv_pool *p = &e->pool;
    const int32_t *t = r->tokens + (size_t)r->n_blocks * p->block;
    int run = 0;
    const int src = kv_pool_lookup_partial(p, parent, t, avail, &run);
    if (src < 0) return 0;
    if (run == p->n_valid[src] && run < p->block && kv_pool_take(p, src)) {
        r->blocks[r->n_blocks++] = src; /* the sequence writes on from run */
        return run;
    }
    int dst = -1;
    if (e->b->ops->block_copy && (dst = kv_pool_alloc(p)) >= 0 &&
        e->b->ops->block_copy(e->b, src, dst) != M40LLM_OK) {
        err_clear(); /* no reuse: the positions are computed instead */
        kv_pool_release(p, dst);
        dst = -1;
    }
    kv_pool_release(p, src);
    if (dst < 0) return 0;
    r->blocks[r->n_blocks++] = dst;
    return run;
}

/* Reuses cached blocks of the prompt's leading full blocks; at least one
 * token is left to compute (its logits are needed). What a cached block
 * holds of the next one is prefix_more's, once the request is admitted. */
static void prefix_lookup(m40llm_engine *e, m40llm_request *r) {
    const int bs = e->pool.block;
    int max_full = (r->n_tokens - 1) / bs;
    uint64_t h = 0;
    if (!e->p.no_prefix_cache)
        for (int i = 0; i < max_full; i++) {
            const int32_t *t = r->tokens + (size_t)i * bs;
            uint64_t nh = kv_pool_hash(h, t, bs);
            int b = kv_pool_lookup(&e->pool, nh, h, t);
            if (b < 0) break;
            r->blocks[r->n_blocks++] = b;
            h = nh;
        }
    r->n_hashed = r->n_blocks;
    r->last_hash = h;
    r->n_computed = r->n_blocks * bs;
    r->table_dirty = true;
}

/* An admitted request: the first positions of the block after its reused
 * full ones from a cached block (its block for them, which the admission
 * counted), and the counters. */
static void prefix_more(m40llm_engine *e, m40llm_request *r) {
    const int bs = e->pool.block, avail = r->n_tokens - 1 - r->n_computed;
    if (!e->p.no_prefix_cache && avail > 0)
        r->n_computed += prefix_partial(e, r, r->last_hash, avail < bs ? avail : bs);
    e->st.prefix_queries += (uint64_t)r->n_tokens;
    e->st.prefix_hits += (uint64_t)r->n_computed;
}

/* Offers the request's newly filled blocks to the prefix cache. */
static void prefix_register(m40llm_engine *e, m40llm_request *r) {
    if (e->p.no_prefix_cache) return;
    const int bs = e->pool.block;
    while ((r->n_hashed + 1) * bs <= r->n_computed) {
        const int32_t *t = r->tokens + (size_t)r->n_hashed * bs;
        uint64_t nh = kv_pool_hash(r->last_hash, t, bs);
        kv_pool_register(&e->pool, r->blocks[r->n_hashed], nh, r->last_hash, t);
        r->last_hash = nh;
        r->n_hashed++;
    }
}

typedef struct step_batch {
    int n;     /* entries */
    int n_out; /* rows with logits */
    int budget;
    uint64_t step;
    m40llm_request **reqs; /* requests in the batch */
    int n_reqs;
} step_batch;

static void add_chunk(m40llm_engine *e, step_batch *sb, m40llm_request *r, int chunk) {
    for (int i = 0; i < chunk; i++) {
        int pos = r->n_computed + i;
        bool out = pos == r->n_tokens - 1;
        e->entries[sb->n++] = (backend_entry){r->slot, pos, r->tokens[pos], out};
        if (out) {
            r->out_row = sb->n_out;
            e->entry_req[sb->n_out++] = r;
        }
    }
    r->chunk = chunk;
    r->sched_step = sb->step;
    sb->budget -= chunk;
    sb->reqs[sb->n_reqs++] = r;
}

/* Pass 1: decoding requests, one token each. */
static void schedule_decodes(m40llm_engine *e, step_batch *sb) {
    for (int i = 0; i < e->n_running && sb->budget > 0;) {
        m40llm_request *r = e->running[i];
        if (r->n_tokens - r->n_computed != 1) {
            i++;
            continue;
        }
        bool self = false;
        while (!grow(e, r, r->n_computed + 1)) {
            m40llm_request *v = victim(e, sb->step);
            preempt(e, v); /* v is never NULL: r itself is not in the batch */
            if (v == r) {
                self = true;
                break;
            }
        }
        if (self) continue; /* running[i] is now the next request */
        add_chunk(e, sb, r, 1);
        i++;
    }
}

/* Pass 2: running requests in prefill get chunks of what is left. */
static void schedule_prefills(m40llm_engine *e, step_batch *sb) {
    const int bs = e->pool.block;
    for (int i = 0; i < e->n_running && sb->budget > 0; i++) {
        m40llm_request *r = e->running[i];
        int rem = r->n_tokens - r->n_computed;
        if (rem <= 1 || r->sched_step == sb->step) continue;
        int chunk = rem < sb->budget ? rem : sb->budget;
        while (!grow(e, r, r->n_computed + chunk)) {
            /* make room from a younger request not in the batch, else take
             * what the blocks already held allow */
            m40llm_request *v = victim(e, sb->step);
            if (v && v != r && v->admit_seq > r->admit_seq) {
                preempt(e, v);
                continue;
            }
            chunk = r->n_blocks * bs - r->n_computed;
            break;
        }
        if (chunk > 0) add_chunk(e, sb, r, chunk);
    }
}

/* Pass 3: admissions, FIFO, while everything they need to prefill fits. */
static void schedule_admissions(m40llm_engine *e, step_batch *sb) {
    const int bs = e->pool.block;
    while (e->n_waiting > 0 && e->n_free_slots > 0 && sb->budget > 0) {
        m40llm_request *r = e->waiting[0];
        if (!r->smp) { /* first time at the head of the queue */
            int rc = engine_request_start(e, r);
            if (rc) {
                char msg[200];
                snprintf(msg, sizeof msg, "starting the request: %s", m40llm_last_error());
                finish_waiting(e, 0, M40LLM_FINISH_ERROR, msg);
                continue;
            }
        }
        prefix_lookup(e, r);
        /* blocks for the rest of the prompt and the first generated token */
        int need = (r->n_tokens + 1 + bs - 1) / bs;
        if (need > e->max_blocks) need = e->max_blocks;
        need -= r->n_blocks;
        if (need > kv_pool_available(&e->pool)) {
            release_blocks(e, r); /* looked up again next time */
            break;
        }
        prefix_more(e, r);
        remove_at(e->waiting, &e->n_waiting, 0);
        r->slot = e->free_slots[--e->n_free_slots];
        r->state = REQ_RUNNING;
        r->admit_seq = e->next_admit++;
        e->running[e->n_running++] = r;
        if (!r->admitted_once) {
            r->admitted_once = true;
            r->t_first_sched = engine_now();
            e->st.prompt_tokens += (uint64_t)r->n_tokens;
            pthread_mutex_lock(&r->mu);
            r->res.n_cached = r->n_computed;
            pthread_mutex_unlock(&r->mu);
            pthread_mutex_lock(&e->mu);
            e->n_queued--;
            pthread_mutex_unlock(&e->mu);
        }
        int rem = r->n_tokens - r->n_computed;
        int chunk = rem < sb->budget ? rem : sb->budget;
        if (!grow(e, r, r->n_computed + chunk)) chunk = r->n_blocks * bs - r->n_computed;
        if (chunk > 0) add_chunk(e, sb, r, chunk);
    }
}

static void take_cancellations(m40llm_engine *e) {
    for (int i = 0; i < e->n_running;) {
        m40llm_request *r = e->running[i];
        if (atomic_load(&r->cancel))
            finish_running(e, r, M40LLM_FINISH_CANCELLED, NULL);
        else
            i++;
    }
    for (int i = 0; i < e->n_waiting;) {
        if (atomic_load(&e->waiting[i]->cancel))
            finish_waiting(e, i, M40LLM_FINISH_CANCELLED, NULL);
        else
            i++;
    }
}

/* Copies the thread's counters where m40llm_engine_get_stats reads them. */
static void publish_stats(m40llm_engine *e) {
    pthread_mutex_lock(&e->mu);
    m40llm_engine_stats *s = &e->stats;
    *s = e->st;
    s->running = e->n_running;
    s->waiting = e->n_waiting + e->n_incoming;
    s->kv_blocks_cached = e->pool.n_cached;
    s->kv_blocks_free = e->pool.n_unref - e->pool.n_cached;
    s->kv_blocks_used = kv_pool_used(&e->pool);
    pthread_mutex_unlock(&e->mu);
}

void engine_take_incoming(m40llm_engine *e) {
    for (int i = 0; i < e->n_incoming; i++) e->waiting[e->n_waiting++] = e->incoming[i];
    e->n_incoming = 0;
}

typedef struct step_abort {
    m40llm_engine *e;
    const step_batch *sb;
} step_abort;

/* Polled by the backend between layers: every request of the batch was
 * cancelled, or the engine is shutting down. */
static bool step_should_abort(void *ctx) {
    const step_abort *a = ctx;
    if (atomic_load(&a->e->stopping)) return true;
    for (int i = 0; i < a->sb->n_reqs; i++)
        if (!atomic_load(&a->sb->reqs[i]->cancel)) return false;
    return true;
}

/* Rows of this step are all greedy: the backend may return argmax ids. */
static bool step_argmax(m40llm_engine *e, int n_out) {
    if (!e->b->ops->forward_argmax || n_out == 0) return false;
    for (int i = 0; i < n_out; i++)
        if (!engine_request_greedy(e, e->entry_req[i])) return false;
    return true;
}

bool engine_step(m40llm_engine *e) {
    take_cancellations(e);
    if (e->n_running == 0 && e->n_waiting == 0) {
        publish_stats(e);
        return false;
    }
    step_batch sb = {.budget = e->p.max_batch_tokens, .step = ++e->st.steps, .reqs = e->step_reqs};
    schedule_decodes(e, &sb);
    schedule_prefills(e, &sb);
    schedule_admissions(e, &sb);
    if (sb.n == 0) { /* nothing fits (cannot happen while one request fits the pool alone) */
        e->st.steps--;
        publish_stats(e);
        return false;
    }
    char err[256] = "";
    int rc = M40LLM_OK;
    for (int i = 0; i < sb.n_reqs && !rc; i++) {
        m40llm_request *r = sb.reqs[i];
        if (!r->table_dirty) continue;
        rc = e->b->ops->seq_set_blocks(e->b, r->slot, r->blocks, r->n_blocks, r->n_computed);
        r->table_dirty = rc != M40LLM_OK;
    }
    const bool argmax = step_argmax(e, sb.n_out);
    if (!rc) {
        /* a long CPU prefill is abandoned between layers once nobody wants it */
        step_abort ab = {e, &sb};
        backend_set_abort(e->b, step_should_abort, &ab);
        rc = argmax ? e->b->ops->forward_argmax(e->b, e->entries, sb.n, e->ids)
                    : backend_forward(e->b, e->entries, sb.n, e->logits);
        backend_set_abort(e->b, NULL, NULL);
    }
    if (rc == M40LLM_ERR_CANCELLED) {
        /* the backend cut the sequences back to where this step started:
         * nothing advanced; the cancelled requests end in the next step */
        err_clear();
        for (int i = 0; i < sb.n_reqs; i++) sb.reqs[i]->chunk = 0;
        publish_stats(e);
        return true;
    }
    if (rc) {
        /* the backend cut the sequences back: the requests of this batch end */
        snprintf(err, sizeof err, "forward step: %s", m40llm_last_error());
        for (int i = 0; i < sb.n_reqs; i++) finish_running(e, sb.reqs[i], M40LLM_FINISH_ERROR, err);
        publish_stats(e);
        return true;
    }
    for (int i = 0; i < sb.n_reqs; i++) {
        m40llm_request *r = sb.reqs[i];
        r->n_computed += r->chunk;
        r->chunk = 0;
        prefix_register(e, r);
    }
    const size_t nv = (size_t)e->model->m->cfg.n_vocab;
    for (int i = 0; i < sb.n_out; i++) {
        m40llm_request *r = e->entry_req[i];
        m40llm_finish_reason why =
            engine_request_token(e, r, argmax ? NULL : e->logits + i * nv, argmax ? e->ids[i] : -1);
        if (why != M40LLM_FINISH_NONE)
            finish_running(e, r, why, why == M40LLM_FINISH_ERROR ? r->error : NULL);
    }
    publish_stats(e);
    return true;
}

void engine_cancel_all(m40llm_engine *e) {
    engine_take_incoming(e);
    while (e->n_running > 0) finish_running(e, e->running[0], M40LLM_FINISH_CANCELLED, NULL);
    while (e->n_waiting > 0) finish_waiting(e, 0, M40LLM_FINISH_CANCELLED, NULL);
    publish_stats(e);
}
