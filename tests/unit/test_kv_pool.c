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

/* Partial blocks: the longest leading run among a parent's cached blocks,
 * full or partial; a partial block taken back by its only user; eviction
 * and clearing drop the parent index too. */
static void test_partial(void) {
    kv_pool p;
    CHECK(kv_pool_init(&p, 6, BS) == M40LLM_OK);
    int32_t t0[BS] = {1, 2, 3, 4}, t1[BS] = {5, 6, 7, 8};
    const uint64_t h0 = kv_pool_hash(0, t0, BS);
    int a = kv_pool_alloc(&p), b = kv_pool_alloc(&p), c = kv_pool_alloc(&p);
    kv_pool_register(&p, a, h0, 0, t0);
    kv_pool_register(&p, b, kv_pool_hash(h0, t1, BS), h0, t1); /* full child of a */
    int32_t part[BS] = {5, 6, 9, 0};
    kv_pool_register_partial(&p, c, h0, part, 3); /* partial child: 5 6 9 */
    CHECK(p.hash[c] != 0 && p.n_valid[c] == 3 && p.n_valid[b] == BS);
    /* partial blocks are not found as full ones */
    CHECK(kv_pool_lookup(&p, kv_pool_hash(h0, part, BS), h0, part) == -1);
    kv_pool_register_partial(&p, c, h0, part, 3); /* hashed already: no change */
    CHECK(p.n_valid[c] == 3);
    for (int i = 0; i < 3; i++) kv_pool_release(&p, i == 0 ? a : i == 1 ? b : c);
    check_counts(&p);
    CHECK(p.n_cached == 3);
    int run = -1;
    int32_t q1[BS] = {5, 6, 7, 1};
    CHECK(kv_pool_lookup_partial(&p, h0, q1, 4, &run) == b && run == 3 && p.ref[b] == 1);
    CHECK(!kv_pool_take(&p, a)); /* unreferenced: not the caller's */
    int32_t q2[BS] = {5, 6, 9, 9};
    int hit = kv_pool_lookup_partial(&p, h0, q2, 4, &run);
    CHECK(hit == c && run == 3 && p.ref[c] == 1);
    /* a second user: not taken; then taken by the last one */
    CHECK(kv_pool_lookup_partial(&p, h0, q2, 2, &run) == c && run == 2 && p.ref[c] == 2);
    CHECK(!kv_pool_take(&p, c));
    kv_pool_release(&p, c);
    CHECK(kv_pool_take(&p, c) && p.hash[c] == 0 && p.n_valid[c] == 0);
    /* now b's 5 6 is the longest run for 5 6 9 9 */
    CHECK(kv_pool_lookup_partial(&p, h0, q2, 4, &run) == b && run == 2 && p.ref[b] == 2);
    kv_pool_release(&p, b);
    /* a run of none, another parent, n < 1 */
    int32_t q3[BS] = {7, 7, 7, 7};
    CHECK(kv_pool_lookup_partial(&p, h0, q3, 4, &run) == -1 && run == 0);
    CHECK(kv_pool_lookup_partial(&p, 12345, q1, 4, &run) == -1);
    CHECK(kv_pool_lookup_partial(&p, h0, q1, 0, &run) == -1);
    /* a partial block already covered by a cached block is not cached again */
    int d = kv_pool_alloc(&p);
    kv_pool_register_partial(&p, d, h0, t1, 2); /* 5 6: b starts with them */
    CHECK(p.hash[d] == 0);
    kv_pool_register_partial(&p, d, h0, t1, BS); /* n must be under the block */
    CHECK(p.hash[d] == 0);
    kv_pool_release(&p, d);
    kv_pool_release(&p, b);
    kv_pool_release(&p, c);
    check_counts(&p);
    /* evicting b (cached) drops it from its parent's list */
    kv_pool_release(&p, kv_pool_lookup_partial(&p, h0, q1, 4, &run)); /* b most recent */
    int got[6], n = 0;
    while (n < 6 && (got[n] = kv_pool_alloc(&p)) >= 0) n++;
    CHECK(kv_pool_alloc(&p) == -1);
    CHECK(n == 6 && p.n_cached == 0);
    CHECK(kv_pool_lookup_partial(&p, h0, q1, 4, &run) == -1);
    /* clear_cache with a partial block cached */
    kv_pool_register_partial(&p, got[0], h0, part, 2);
    for (int i = 0; i < n; i++) kv_pool_release(&p, got[i]);
    CHECK(p.n_cached == 1 && kv_pool_lookup_partial(&p, h0, part, 3, &run) == got[0] && run == 2);
    kv_pool_release(&p, got[0]);
    kv_pool_clear_cache(&p);
    CHECK(p.n_cached == 0 && kv_pool_lookup_partial(&p, h0, part, 3, &run) == -1);
    check_counts(&p);
    kv_pool_free(&p);
}

/* The index by parent holds exactly the hashed blocks, links consistent. */
static void check_index(const kv_pool *p) {
    int listed = 0, hashed = 0, bad = 0;
    for (int i = 0; i < p->ht_cap; i++)
        for (int b = p->kid_head[i], prev = -1; b >= 0; prev = b, b = p->kid_next[b]) {
            listed++;
            bad += p->hash[b] == 0 || p->kid_prev[b] != prev || listed > p->n_blocks;
            if (listed > p->n_blocks) {
                CHECKF(0, "a cycle in the parent index");
                return;
            }
        }
    for (int b = 0; b < p->n_blocks; b++) hashed += p->hash[b] != 0;
    CHECKF(listed == hashed && bad == 0, "parent index: %d listed, %d hashed, %d bad links", listed,
           hashed, bad);
}

/* Random sequences growing, sharing prefixes (whole blocks and the first
 * positions of a block) and ending: counters and the index consistent,
 * every hit holds exactly the tokens asked for. */
static void test_random(void) {
    kv_pool p;
    CHECK(kv_pool_init(&p, 64, BS) == M40LLM_OK);
    enum { NS = 12, MAXB = 16 };
    int blocks[NS][MAXB], nb[NS], fam[NS], tail_idx[NS];
    uint64_t tail_parent[NS];
    memset(nb, 0, sizeof nb);
    uint32_t seed = 1;
    int hits = 0, bad_hits = 0, part_hits = 0, taken = 0;
#define TOKS(t, f, idx)                                                                            \
    for (int k = 0; k < BS; k++) (t)[k] = (f)*1000 + (idx)*BS + k
    for (int it = 0; it < 20000; it++) {
        seed = seed * 1664525u + 1013904223u;
        int s = (int)((seed >> 8) % NS), op = (int)((seed >> 20) % 4);
        if (op == 0) { /* end the sequence, maybe leaving its last block cached part way */
            if (nb[s] > 0 && ((seed >> 3) & 1)) {
                int32_t t[BS];
                TOKS(t, fam[s], tail_idx[s]);
                kv_pool_register_partial(&p, blocks[s][nb[s] - 1], tail_parent[s], t,
                                         1 + (int)((seed >> 5) % (BS - 1)));
            }
            for (int i = 0; i < nb[s]; i++) kv_pool_release(&p, blocks[s][i]);
            nb[s] = 0;
        } else if (nb[s] == 0) { /* start: look up a prefix of tokens = f(block index, family) */
            fam[s] = (int)((seed >> 4) % 3);
            uint64_t h = 0;
            for (int i = 0; i < MAXB / 2; i++) {
                int32_t t[BS];
                TOKS(t, fam[s], i);
                uint64_t nh = kv_pool_hash(h, t, BS);
                int b = kv_pool_lookup(&p, nh, h, t);
                if (b < 0) break;
                hits++;
                bad_hits += memcmp(p.tokens + (size_t)b * BS, t, sizeof t) != 0;
                blocks[s][nb[s]++] = b;
                h = nh;
            }
            /* the first positions of the next block, from a partial one */
            int32_t t[BS];
            TOKS(t, fam[s], nb[s]);
            int run = 0, b = kv_pool_lookup_partial(&p, h, t, BS, &run);
            if (b >= 0) {
                part_hits++;
                bad_hits += run < 1 || run > p.n_valid[b] ||
                            memcmp(p.tokens + (size_t)b * BS, t, (size_t)run * sizeof *t) != 0;
                if ((seed >> 2) & 1 && kv_pool_take(&p, b)) {
                    taken++;
                    blocks[s][nb[s]++] = b; /* private now: written on, never registered */
                } else {
                    kv_pool_release(&p, b);
                }
            }
            /* then one fresh block registered for the next index */
            b = kv_pool_alloc(&p);
            if (b >= 0) {
                TOKS(t, fam[s], nb[s]);
                uint64_t nh = kv_pool_hash(h, t, BS);
                kv_pool_register(&p, b, nh, h, t);
                blocks[s][nb[s]++] = b;
                h = nh;
            }
            tail_parent[s] = h;
            tail_idx[s] = nb[s];
        } else if (nb[s] < MAXB) {
            int b = kv_pool_alloc(&p);
            if (b >= 0) blocks[s][nb[s]++] = b;
        }
        if (it % 997 == 0) {
            check_counts(&p);
            check_index(&p);
        }
    }
#undef TOKS
    int held = 0;
    for (int s = 0; s < NS; s++) held += nb[s];
    int refs = 0;
    for (int b = 0; b < p.n_blocks; b++) refs += p.ref[b];
    CHECKF(refs == held, "references %d = blocks held %d", refs, held);
    CHECKF(hits > 100 && part_hits > 100 && taken > 10 && bad_hits == 0,
           "%d hits, %d partial (%d taken), %d with other tokens", hits, part_hits, taken,
           bad_hits);
    for (int s = 0; s < NS; s++)
        for (int i = 0; i < nb[s]; i++) kv_pool_release(&p, blocks[s][i]);
    CHECK(kv_pool_used(&p) == 0);
    check_counts(&p);
    check_index(&p);
    kv_pool_free(&p);
}

int main(void) {
    test_basic();
    test_partial();
    test_random();
    return check_summary("test_kv_pool");
}
