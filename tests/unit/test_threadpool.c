/* threadpool_for visits every item exactly once, with chunk sizes >= grain,
 * reusing the same workers across many calls; a pool of 1 runs inline. */
#include <pthread.h>
#include <stdatomic.h>

#include "check.h"
#include "m40llm.h"
#include "threadpool.h"

typedef struct job {
    atomic_int *hits; /* [n] visits per item */
    atomic_int calls; /* chunks run */
    atomic_int small; /* chunks shorter than grain (not the only chunk) */
    int64_t grain, n;
    int max_thread;
    atomic_int bad_thread;
    pthread_t caller;
    atomic_int on_caller;
} job;

static void visit(void *ctx, int64_t b, int64_t e, int thread) {
    job *j = ctx;
    atomic_fetch_add(&j->calls, 1);
    if (e - b < j->grain && e - b != j->n) atomic_fetch_add(&j->small, 1);
    if (thread < 0 || thread > j->max_thread) atomic_fetch_add(&j->bad_thread, 1);
    if (thread == 0 && pthread_equal(pthread_self(), j->caller)) atomic_fetch_add(&j->on_caller, 1);
    for (int64_t i = b; i < e; i++) atomic_fetch_add(&j->hits[i], 1);
}

static void run(threadpool *p, int64_t n, int64_t grain) {
    static atomic_int hits[5000];
    job j = {.hits = hits,
             .grain = grain,
             .n = n,
             .max_thread = threadpool_size(p) - 1,
             .caller = pthread_self()};
    for (int64_t i = 0; i < n; i++) atomic_init(&hits[i], 0);
    threadpool_for(p, n, grain, visit, &j);
    int once = 1;
    for (int64_t i = 0; i < n; i++) once &= atomic_load(&hits[i]) == 1;
    CHECKF(once, "n=%lld grain=%lld: some item not visited exactly once", (long long)n,
           (long long)grain);
    CHECKF(atomic_load(&j.small) == 0, "n=%lld grain=%lld: chunk below grain", (long long)n,
           (long long)grain);
    CHECK(atomic_load(&j.bad_thread) == 0);
    CHECK(n == 0 || atomic_load(&j.on_caller) == 1); /* the caller runs chunk 0 */
    CHECK(atomic_load(&j.calls) <= threadpool_size(p));
}

int main(void) {
    threadpool *p = NULL;
    CHECK(threadpool_create(0, &p) == M40LLM_ERR_INVALID_ARG && p == NULL);
    for (int t = 1; t <= 4; t++) {
        CHECK(threadpool_create(t, &p) == 0 && p);
        CHECK(threadpool_size(p) == t);
        int64_t ns[] = {0, 1, 2, 3, 7, 64, 100, 4999};
        int64_t gs[] = {1, 3, 8, 1000};
        for (int rep = 0; rep < 50; rep++) /* reuse the same workers many times */
            for (size_t a = 0; a < sizeof ns / sizeof ns[0]; a++)
                for (size_t g = 0; g < sizeof gs / sizeof gs[0]; g++) run(p, ns[a], gs[g]);
        threadpool_free(p);
    }
    threadpool_free(NULL);
    return check_summary("test_threadpool");
}
