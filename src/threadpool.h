/* A fixed pool of pthreads running parallel-for loops. The caller's thread
 * takes part, so a pool of 1 runs inline. */
#ifndef M40_THREADPOOL_H
#define M40_THREADPOOL_H

#include <stdint.h>

typedef struct threadpool threadpool;

/* fn(ctx, begin, end, thread_index) handles items [begin, end). */
typedef void (*threadpool_fn)(void *ctx, int64_t begin, int64_t end, int thread);

int threadpool_create(int n_threads, threadpool **out);
void threadpool_free(threadpool *p);
int threadpool_size(const threadpool *p);
/* Splits [0, n) into contiguous chunks (at least `grain` items each) over
 * the threads and waits for all of them. */
void threadpool_for(threadpool *p, int64_t n, int64_t grain, threadpool_fn fn, void *ctx);
/* Same visit of [0, n) in up to n_threads * per_thread chunks (each at least
 * `grain` items) claimed by whichever thread is free, the caller included: a
 * thread may run several chunks, and a late or descheduled worker does not
 * delay the others. Results must not depend on which thread runs a chunk. */
void threadpool_for_dynamic(threadpool *p, int64_t n, int64_t grain, int per_thread,
                            threadpool_fn fn, void *ctx);

#endif
