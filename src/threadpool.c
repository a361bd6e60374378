/* Parallel-for over a fixed set of pthreads. Workers sleep on a condition
 * variable between jobs; a job is published by bumping a generation counter
 * under the mutex, and the caller waits until every worker has finished its
 * chunk. The caller runs chunk 0 itself, so a pool of 1 never touches a lock. */
#include "threadpool.h"

#include <pthread.h>
#include <stdlib.h>

#include "err.h"

struct threadpool {
    int n_threads; /* workers + the calling thread */
    pthread_t *workers;
    pthread_mutex_t mu;
    pthread_cond_t wake; /* a new job (or shutdown) */
    pthread_cond_t done; /* the last worker finished */
    /* current job, valid while pending > 0 */
    threadpool_fn fn;
    void *ctx;
    int64_t n;
    int n_chunks;
    uint64_t generation;
    int pending; /* workers that still have to finish this job */
    int stop;
};

typedef struct worker_arg {
    threadpool *pool;
    int index; /* 1 .. n_threads-1 */
} worker_arg;

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
    pthread_mutex_lock(&pool->mu);
    for (;;) {
        while (!pool->stop && pool->generation == seen) pthread_cond_wait(&pool->wake, &pool->mu);
        if (pool->stop) break;
        seen = pool->generation;
        threadpool_fn fn = pool->fn;
        void *ctx = pool->ctx;
        int64_t n = pool->n;
        int n_chunks = pool->n_chunks;
        pthread_mutex_unlock(&pool->mu);
        if (idx < n_chunks) {
            int64_t b, e;
            chunk_bounds(n, n_chunks, idx, &b, &e);
            if (b < e) fn(ctx, b, e, idx);
        }
        pthread_mutex_lock(&pool->mu);
        if (--pool->pending == 0) pthread_cond_signal(&pool->done);
    }
    pthread_mutex_unlock(&pool->mu);
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
    p->stop = 1;
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
    int n_workers = p->n_threads - 1;
    pthread_mutex_lock(&p->mu);
    p->fn = fn;
    p->ctx = ctx;
    p->n = n;
    p->n_chunks = n_chunks;
    p->pending = n_workers;
    p->generation++;
    pthread_cond_broadcast(&p->wake);
    pthread_mutex_unlock(&p->mu);

    int64_t b, e;
    chunk_bounds(n, n_chunks, 0, &b, &e);
    if (b < e) fn(ctx, b, e, 0);

    pthread_mutex_lock(&p->mu);
    while (p->pending > 0) pthread_cond_wait(&p->done, &p->mu);
    pthread_mutex_unlock(&p->mu);
}
