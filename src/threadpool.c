/* Parallel-for over a fixed set of pthreads. A job is a set of chunks;
 * threads claim chunks with a compare-and-swap on one word that holds the
 * job's generation, its chunk count and the next unclaimed chunk, so a
 * worker that wakes late (or for a job already finished) claims nothing and
 * never reads a job it did not claim a chunk of. The caller waits for the
 * chunks to be done, not for every worker to show up: on a loaded machine a
 * descheduled worker does not hold up a job the others can finish.
 * Both sides spin briefly before sleeping on a condition variable: a forward
 * pass issues a few hundred short jobs per token, and a futex sleep/wake
 * pair per job would cost more than the work of a small one. */
#include "threadpool.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
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
    pthread_cond_t done; /* the last chunk finished */
    /* current job: written by the caller while no chunk is claimable, read
     * by a thread only after it claimed a chunk of this job */
    threadpool_fn fn;
    void *ctx;
    int64_t n;
    _Atomic uint64_t generation;
    /* generation (low 32 bits) << 32 | n_chunks << 16 | next chunk */
    _Atomic uint64_t claim;
    atomic_int chunks_done;
    atomic_int stop;
};

#define TP_MAX_CHUNKS 0xFFFF

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

/* Runs one chunk; the thread that completes the job wakes the caller. */
static void run_chunk(threadpool *pool, int c, int n_chunks, int thread) {
    int64_t b, e;
    chunk_bounds(pool->n, n_chunks, c, &b, &e);
    if (b < e) pool->fn(pool->ctx, b, e, thread);
    if (atomic_fetch_add_explicit(&pool->chunks_done, 1, memory_order_acq_rel) + 1 == n_chunks) {
        /* under the mutex: the caller either sees the count before it
         * sleeps or is already waiting when this signal comes */
        pthread_mutex_lock(&pool->mu);
        pthread_cond_signal(&pool->done);
        pthread_mutex_unlock(&pool->mu);
    }
}

/* Claims and runs chunks of job g until none is left (or a newer job was
 * published); returns the number run. */
static int claim_chunks(threadpool *pool, uint64_t g, int thread) {
    int ran = 0;
    uint64_t c = atomic_load_explicit(&pool->claim, memory_order_acquire);
    for (;;) {
        if ((uint32_t)(c >> 32) != (uint32_t)g) return ran;
        const int n_chunks = (int)(c >> 16 & TP_MAX_CHUNKS), next = (int)(c & TP_MAX_CHUNKS);
        if (next >= n_chunks) return ran;
        if (atomic_compare_exchange_weak_explicit(&pool->claim, &c, c + 1, memory_order_acq_rel,
                                                  memory_order_acquire)) {
            run_chunk(pool, next, n_chunks, thread);
            ran++;
            c = atomic_load_explicit(&pool->claim, memory_order_acquire);
        }
    }
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
        claim_chunks(pool, g, idx);
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

/* Publishes a job of n_chunks chunks; the caller runs chunk 0 first
 * (claimed before any worker can see the job), then, when it helps, claims
 * more; it returns once every chunk is done. */
static void run_job(threadpool *p, int64_t n, int n_chunks, bool caller_helps, threadpool_fn fn,
                    void *ctx) {
    /* no chunk of the previous job is running or claimable here */
    p->fn = fn;
    p->ctx = ctx;
    p->n = n;
    atomic_store_explicit(&p->chunks_done, 0, memory_order_relaxed);
    const uint64_t g = atomic_load_explicit(&p->generation, memory_order_relaxed) + 1;
    atomic_store_explicit(&p->claim, (uint64_t)(uint32_t)g << 32 | (uint64_t)n_chunks << 16 | 1u,
                          memory_order_release);
    pthread_mutex_lock(&p->mu);
    atomic_store_explicit(&p->generation, g, memory_order_release);
    pthread_cond_broadcast(&p->wake);
    pthread_mutex_unlock(&p->mu);

    run_chunk(p, 0, n_chunks, 0);
    if (caller_helps) claim_chunks(p, g, 0);

    for (int i = 0;
         i < TP_SPIN && atomic_load_explicit(&p->chunks_done, memory_order_acquire) < n_chunks; i++)
        cpu_relax();
    if (atomic_load_explicit(&p->chunks_done, memory_order_acquire) < n_chunks) {
        pthread_mutex_lock(&p->mu);
        while (atomic_load_explicit(&p->chunks_done, memory_order_acquire) < n_chunks)
            pthread_cond_wait(&p->done, &p->mu);
        pthread_mutex_unlock(&p->mu);
    }
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
    run_job(p, n, n_chunks, false, fn, ctx);
}

void threadpool_for_dynamic(threadpool *p, int64_t n, int64_t grain, int per_thread,
                            threadpool_fn fn, void *ctx) {
    if (n <= 0) return;
    if (grain < 1) grain = 1;
    if (per_thread < 1) per_thread = 1;
    int64_t max_chunks = n / grain;
    int64_t want = (int64_t)(p ? p->n_threads : 1) * per_thread;
    if (want > TP_MAX_CHUNKS) want = TP_MAX_CHUNKS;
    int n_chunks = (int)(want < max_chunks ? want : max_chunks);
    if (!p || p->n_threads == 1 || n_chunks <= 1) {
        fn(ctx, 0, n, 0);
        return;
    }
    run_job(p, n, n_chunks, true, fn, ctx);
}
