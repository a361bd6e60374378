/* The engine's KV block manager: allocation until exhaustion, reference
 * counts, prefix-cache hits only for the same chain (parent and tokens),
 * least-recently-used eviction of cached blocks after plain free ones,
 * and its counters under a long random workload. */
#include <stdlib.h>
#include <string.h>

#include "../../src/engine/kv_pool.h"
#include "check.h"
#include "m40llm.h"

#define BS 4

static void check_counts(const kv_pool *p) {
    int unref = 0, cached = 0;
    for (int b = 0; b < p->n_blocks; b++) {
        unref += p->ref[b] == 0;
        cached += p->ref[b] == 0 && p->hash[b] != 0;
    }
    CHECKF(unref == p->n_unref && cached == p->n_cached, "counts: unref %d/%d cached %d/%d", unref,
           p->n_unref, cached, p->n_cached);
}

static void test_basic(void) {
    kv_pool p;
    CHECK(kv_pool_init(&p, 0, 4) == M40LLM_ERR_INVALID_ARG);
    CHECK(kv_pool_init(&p, 8, BS) == M40LLM_OK);
    int got[8];
    for (int i = 0; i < 8; i++) got[i] = kv_pool_alloc(&p);
    CHECK(kv_pool_alloc(&p) == -1 && kv_pool_available(&p) == 0 && kv_pool_used(&p) == 8);
    bool distinct = true;
    for (int i = 0; i < 8; i++)
        for (int j = 0; j < i; j++) distinct &= got[i] != got[j];
    CHECK(distinct);
    /* a chain of two full blocks */
    int32_t t0[BS] = {1, 2, 3, 4}, t1[BS] = {5, 6, 7, 8};
    uint64_t h0 = kv_pool_hash(0, t0, BS), h1 = kv_pool_hash(h0, t1, BS);
    CHECK(h0 != 0 && h1 != 0 && h0 != h1);
    kv_pool_register(&p, got[0], h0, 0, t0);
    kv_pool_register(&p, got[1], h1, h0, t1);
    /* a second copy of the same prefix stays unhashed */
    kv_pool_register(&p, got[2], h0, 0, t0);
    CHECK(p.hash[got[2]] == 0);
    /* hits need the same parent and tokens */
    CHECK(kv_pool_lookup(&p, h0, 0, t0) == got[0] && p.ref[got[0]] == 2);
    kv_pool_release(&p, got[0]);
    int32_t other[BS] = {1, 2, 3, 5};
    CHECK(kv_pool_lookup(&p, h0, 0, other) == -1);
    CHECK(kv_pool_lookup(&p, h1, 12345, t1) == -1);
    /* release everything: cached blocks stay findable */
    for (int i = 0; i < 8; i++) kv_pool_release(&p, got[i]);
    check_counts(&p);
    CHECK(p.n_unref == 8 && p.n_cached == 2);
    CHECK(kv_pool_lookup(&p, h1, h0, t1) == got[1] && p.n_cached == 1);
    kv_pool_release(&p, got[1]);
    /* allocation takes the 6 plain blocks before evicting a cached one */
    int plain[6];
    for (int i = 0; i < 6; i++) {
        plain[i] = kv_pool_alloc(&p);
        CHECK(plain[i] != got[0] && plain[i] != got[1]);
    }
    CHECK(p.n_cached == 2);
    /* then the least recently used cached block: got[0] (got[1] was used later) */
    int ev = kv_pool_alloc(&p);
    CHECK(ev == got[0] && p.hash[ev] == 0 && p.n_cached == 1);
    CHECK(kv_pool_lookup(&p, h0, 0, t0) == -1);
    CHECK(kv_pool_lookup(&p, h1, h0, t1) == got[1]);
    kv_pool_release(&p, got[1]);
    kv_pool_clear_cache(&p);
    CHECK(p.n_cached == 0 && kv_pool_lookup(&p, h1, h0, t1) == -1);
    check_counts(&p);
    kv_pool_free(&p);
}

/* Random sequences growing, sharing prefixes and ending: counters consistent
 * and every hit holds exactly the tokens asked for. */
static void test_random(void) {
    kv_pool p;
    CHECK(kv_pool_init(&p, 64, BS) == M40LLM_OK);
    enum { NS = 12, MAXB = 16 };
    int blocks[NS][MAXB], nb[NS];
    memset(nb, 0, sizeof nb);
    uint32_t seed = 1;
    int hits = 0, bad_hits = 0;
    for (int it = 0; it < 20000; it++) {
        seed = seed * 1664525u + 1013904223u;
        int s = (int)((seed >> 8) % NS), op = (int)((seed >> 20) % 4);
        if (op == 0) { /* end the sequence */
            for (int i = 0; i < nb[s]; i++) kv_pool_release(&p, blocks[s][i]);
            nb[s] = 0;
        } else if (nb[s] == 0) { /* start: look up a prefix of tokens = f(block index, family) */
            int fam = (int)((seed >> 4) % 3);
            uint64_t h = 0;
            for (int i = 0; i < MAXB / 2; i++) {
                int32_t t[BS];
                for (int k = 0; k < BS; k++) t[k] = fam * 1000 + i * BS + k;
                uint64_t nh = kv_pool_hash(h, t, BS);
                int b = kv_pool_lookup(&p, nh, h, t);
                if (b < 0) break;
                hits++;
                bad_hits += memcmp(p.tokens + (size_t)b * BS, t, sizeof t) != 0;
                blocks[s][nb[s]++] = b;
                h = nh;
            }
            /* then one fresh block registered for the next index */
            int b = kv_pool_alloc(&p);
            if (b >= 0) {
                int32_t t[BS];
                for (int k = 0; k < BS; k++) t[k] = fam * 1000 + nb[s] * BS + k;
                kv_pool_register(&p, b, kv_pool_hash(h, t, BS), h, t);
                blocks[s][nb[s]++] = b;
            }
        } else if (nb[s] < MAXB) {
            int b = kv_pool_alloc(&p);
            if (b >= 0) blocks[s][nb[s]++] = b;
        }
        if (it % 997 == 0) check_counts(&p);
    }
    int held = 0;
    for (int s = 0; s < NS; s++) held += nb[s];
    int refs = 0;
    for (int b = 0; b < p.n_blocks; b++) refs += p.ref[b];
    CHECKF(refs == held, "references %d = blocks held %d", refs, held);
    CHECKF(hits > 100 && bad_hits == 0, "%d hits, %d with other tokens", hits, bad_hits);
    for (int s = 0; s < NS; s++)
        for (int i = 0; i < nb[s]; i++) kv_pool_release(&p, blocks[s][i]);
    CHECK(kv_pool_used(&p) == 0);
    check_counts(&p);
    kv_pool_free(&p);
}

int main(void) {
    test_basic();
    test_random();
    return check_summary("test_kv_pool");
}
