/* Parallel-for over a fixed set of pthreads. A job is published by bumping a
 * generation counter (release) under the mutex and broadcasting; the caller
 * runs chunk 0 itself, then waits until every worker has finished. Both
 * sides spin briefly before sleeping on a condition variable: a forward
 * pass issues a few hundred short jobs per token, and a futex sleep/wake
 * pair per job would cost more than the work of a small one. */
#include "threadpool.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>

#include "err.h"

/* Polls before sleeping: tens of microseconds, so idle workers stop
 * burning a core soon after the last job. */
#define TP_SPIN 2000

struct threadpool {
    int n_threads; /* workers + the calling thread */
    pthread_t *workers;
    pthread_mutex_t mu;
    pthread_cond_t wake; /* a new job (or shutdown) */
    pthread_cond_t done; /* the last worker finished */
    /* current job, written before generation is bumped */
    threadpool_fn fn;
    void *ctx;
    int64_t n;
    int n_chunks;
    _Atomic uint64_t generation;
    atomic_int pending; /* workers that still have to finish this job */
    atomic_int stop;
};

typedef struct worker_arg {
    threadpool *pool;
    int index; /* 1 .. n_threads-1 */
} worker_arg;

static inline void cpu_relax(void) {
#if defined(__x86_64__) || defined(__i386__)
    __builtin_ia32_pause();
#endif
}

/* Chunk c of n_chunks over [0, n): contiguous, sizes differ by at most 1. */
static void chunk_bounds(int64_t n, int n_chunks, int c, int64_t *b, int64_t *e) {
    int64_t base = n / n_chunks, rem = n % n_chunks;
    *b = c * base + (c < rem ? c : rem);
    *e = *b + base + (c < rem ? 1 : 0);
}

static void *worker_main(void *p) {
    worker_arg *a = p;
    threadpool *pool = a->pool;
    int idx = a->index;
    free(a);
    uint64_t seen = 0;
    for (;;) {
        uint64_t g = atomic_load_explicit(&pool->generation, memory_order_acquire);
        for (int i = 0; i < TP_SPIN && g == seen && !atomic_load(&pool->stop); i++) {
            cpu_relax();
            g = atomic_load_explicit(&pool->generation, memory_order_acquire);
        }
        if (g == seen) {
            pthread_mutex_lock(&pool->mu);
            while (!atomic_load(&pool->stop) &&
                   (g = atomic_load_explicit(&pool->generation, memory_order_acquire)) == seen)
                pthread_cond_wait(&pool->wake, &pool->mu);
            pthread_mutex_unlock(&pool->mu);
        }
        if (atomic_load(&pool->stop)) break;
        seen = g;
        if (idx < pool->n_chunks) {
            int64_t b, e;
            chunk_bounds(pool->n, pool->n_chunks, idx, &b, &e);
            if (b < e) pool->fn(pool->ctx, b, e, idx);
        }
        if (atomic_fetch_sub_explicit(&pool->pending, 1, memory_order_acq_rel) == 1) {
            /* under the mutex: the caller either sees pending == 0 before it
             * sleeps or is already waiting when this signal comes */
            pthread_mutex_lock(&pool->mu);
            pthread_cond_signal(&pool->done);
            pthread_mutex_unlock(&pool->mu);
        }
    }
    return NULL;
}

int threadpool_create(int n_threads, threadpool **out) {
    *out = NULL;
    if (n_threads < 1 || n_threads > 1024)
        return err_set(M40LLM_ERR_INVALID_ARG, "threadpool: %d threads (expected 1..1024)",
                       n_threads);
    threadpool *p = calloc(1, sizeof *p);
    if (!p) return err_set(M40LLM_ERR_OOM, "threadpool: out of memory");
    p->n_threads = n_threads;
    pthread_mutex_init(&p->mu, NULL);
    pthread_cond_init(&p->wake, NULL);
    pthread_cond_init(&p->done, NULL);
    if (n_threads > 1) {
        p->workers = calloc((size_t)n_threads - 1, sizeof *p->workers);
        if (!p->workers) {
            threadpool_free(p);
            return err_set(M40LLM_ERR_OOM, "threadpool: out of memory");
        }
    }
    for (int i = 1; i < n_threads; i++) {
        worker_arg *a = malloc(sizeof *a);
        int rc = -1;
        if (a) {
            a->pool = p;
            a->index = i;
            rc = pthread_create(&p->workers[i - 1], NULL, worker_main, a);
        }
        if (rc != 0) {
            free(a);
            p->n_threads = i; /* only join the ones that started */
            threadpool_free(p);
            return err_set(M40LLM_ERR_OOM, "threadpool: cannot start thread %d of %d", i,
                           n_threads);
        }
    }
    *out = p;
    return M40LLM_OK;
}

void threadpool_free(threadpool *p) {
    if (!p) return;
    pthread_mutex_lock(&p->mu);
    atomic_store(&p->stop, 1);
    pthread_cond_broadcast(&p->wake);
    pthread_mutex_unlock(&p->mu);
    for (int i = 1; i < p->n_threads; i++) pthread_join(p->workers[i - 1], NULL);
    pthread_cond_destroy(&p->wake);
    pthread_cond_destroy(&p->done);
    pthread_mutex_destroy(&p->mu);
    free(p->workers);
    free(p);
}

int threadpool_size(const threadpool *p) {
    return p ? p->n_threads : 1;
}

void threadpool_for(threadpool *p, int64_t n, int64_t grain, threadpool_fn fn, void *ctx) {
    if (n <= 0) return;
    if (grain < 1) grain = 1;
    int64_t max_chunks = n / grain; /* every chunk gets at least grain items */
    int n_chunks = p ? p->n_threads : 1;
    if (n_chunks > max_chunks) n_chunks = (int)max_chunks;
    if (n_chunks <= 1) { /* not worth waking anyone */
        fn(ctx, 0, n, 0);
        return;
    }
    /* workers are idle here (the previous job's pending reached 0) */
    p->fn = fn;
    p->ctx = ctx;
    p->n = n;
    p->n_chunks = n_chunks;
    atomic_store_explicit(&p->pending, p->n_threads - 1, memory_order_relaxed);
    pthread_mutex_lock(&p->mu);
    atomic_fetch_add_explicit(&p->generation, 1, memory_order_release);
    pthread_cond_broadcast(&p->wake);
    pthread_mutex_unlock(&p->mu);

    int64_t b, e;
    chunk_bounds(n, n_chunks, 0, &b, &e);
    if (b < e) fn(ctx, b, e, 0);

    for (int i = 0; i < TP_SPIN && atomic_load_explicit(&p->pending, memory_order_acquire) > 0; i++)
        cpu_relax();
    if (atomic_load_explicit(&p->pending, memory_order_acquire) > 0) {
        pthread_mutex_lock(&p->mu);
        while (atomic_load_explicit(&p->pending, memory_order_acquire) > 0)
            pthread_cond_wait(&p->done, &p->mu);
        pthread_mutex_unlock(&p->mu);
    }
}
