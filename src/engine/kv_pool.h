/* The engine's KV block manager: which blocks of the backend's paged pool
 * each sequence holds, reference counts for blocks shared through the
 * prefix cache, and the cache itself.
 *
 * A full block is identified by a chain hash (the hash of the previous
 * block of the sequence and its own tokens), so equal hashes mean equal
 * prefixes up to and including the block. A sequence that ends (or is
 * preempted) in the middle of a block leaves that partial block cached too,
 * and every cached block is also found by its parent hash, so a later
 * prompt that shares only the first positions of a block reuses them (a
 * copy of the block, or the block itself when nobody else can want it).
 * Blocks no sequence references go on one LRU list: never-hashed ones at
 * the front (reused first), hashed ones at the back in the order they were
 * released; allocation takes the front, evicting a cached block only when
 * no plain one is left.
 * Not thread-safe: the scheduler thread owns it. */
#ifndef M40_KV_POOL_H
#define M40_KV_POOL_H

#include <stdbool.h>
#include <stdint.h>

typedef struct kv_pool {
    int n_blocks;      /* blocks in the backend's pool */
    int block;         /* positions per block */
    int32_t *ref;      /* [n_blocks] references by sequences */
    uint64_t *hash;    /* [n_blocks] chain hash of a cached block, 0 = none */
    int32_t *n_valid;  /* [n_blocks] positions a cached block holds: block, or fewer (partial) */
    int32_t *tokens;   /* [n_blocks][block] the tokens of a hashed block (checked on a hit) */
    uint64_t *parent;  /* [n_blocks] chain hash of the block before it (checked on a hit) */
    int32_t *kid_head; /* [ht_cap] cached blocks by parent hash: bucket -> first, -1 none */
    int32_t *kid_prev, *kid_next; /* [n_blocks] links of a bucket's list, -1 ends */
    int32_t *prev, *next;         /* [n_blocks] LRU links of unreferenced blocks, -1 ends */
    int lru_head, lru_tail;
    int n_unref;  /* blocks on the LRU list */
    int n_cached; /* of them, hashed */
    int32_t *ht;  /* [ht_cap] open-addressing table of full hashed blocks, -1 empty, -2 deleted */
    int ht_cap;   /* power of two >= 2 * n_blocks */
    int n_tomb;   /* deleted slots since the last rebuild */
} kv_pool;

int kv_pool_init(kv_pool *p, int n_blocks, int block);
void kv_pool_free(kv_pool *p);

/* Hash of a full block after the block whose chain hash is parent (0 for
 * the first block). Never 0. */
uint64_t kv_pool_hash(uint64_t parent, const int32_t *tokens, int n);

/* A block for new K/V with one reference, or -1 when every block is held. */
int kv_pool_alloc(kv_pool *p);
/* Drops one reference; an unreferenced block stays cached if hashed. */
void kv_pool_release(kv_pool *p, int blk);
/* The cached block holding this full block (same chain hash, parent and
 * tokens) with one more reference, or -1. */
int kv_pool_lookup(kv_pool *p, uint64_t hash, uint64_t parent, const int32_t *tokens);
/* Offers a block (referenced, now full) to the cache under hash. When
 * another block already holds that prefix the block stays unhashed. */
void kv_pool_register(kv_pool *p, int blk, uint64_t hash, uint64_t parent, const int32_t *tokens);
/* The cached block after the block whose chain hash is parent (full or
 * partial) that shares the longest run of leading tokens with
 * tokens[0..n) (n <= block), with one more reference; the run's length in
 * *len. -1 (and *len 0) when no such block starts with tokens[0]. */
int kv_pool_lookup_partial(kv_pool *p, uint64_t parent, const int32_t *tokens, int n, int *len);
/* Offers the partial block a sequence is letting go: its first n positions
 * (0 < n < block) hold the K/V of tokens after the block whose chain hash
 * is parent. Call while the sequence still references it, before
 * kv_pool_release. Skipped when a cached block after parent already starts
 * with these n tokens, or the block is hashed already. */
void kv_pool_register_partial(kv_pool *p, int blk, uint64_t parent, const int32_t *tokens, int n);
/* Takes a cached block that only the caller references (one reference, from
 * a lookup) out of the cache, so the caller may write into it; false, and
 * nothing changes, when another sequence references it. */
bool kv_pool_take(kv_pool *p, int blk);
/* Forgets every cached block (they become plain free blocks). */
void kv_pool_clear_cache(kv_pool *p);

static inline int kv_pool_used(const kv_pool *p) {
    return p->n_blocks - p->n_unref;
}
static inline int kv_pool_available(const kv_pool *p) { /* allocatable now */
    return p->n_unref;
}

#endif
