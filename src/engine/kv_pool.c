/* KV block manager and prefix cache (see kv_pool.h). */
#include "kv_pool.h"

#include <stdlib.h>
#include <string.h>

#include "err.h"

#define HT_EMPTY   (-1)
#define HT_DELETED (-2)

static uint64_t mix64(uint64_t x) { /* splitmix64 finalizer */
    x ^= x >> 30;
    x *= 0xbf58476d1ce4e5b9ULL;
    x ^= x >> 27;
    x *= 0x94d049bb133111ebULL;
    x ^= x >> 31;
    return x;
}

uint64_t kv_pool_hash(uint64_t parent, const int32_t *tokens, int n) {
    uint64_t h = mix64(parent ^ 0x9e3779b97f4a7c15ULL);
    for (int i = 0; i < n; i++)
        h = mix64(h ^ ((uint64_t)(uint32_t)tokens[i] + 0x632be59bd9b4e019ULL));
    return h ? h : 1;
}

/* ---- LRU list of unreferenced blocks ---- */
static void lru_unlink(kv_pool *p, int b) {
    int pr = p->prev[b], nx = p->next[b];
    if (pr >= 0)
        p->next[pr] = nx;
    else
        p->lru_head = nx;
    if (nx >= 0)
        p->prev[nx] = pr;
    else
        p->lru_tail = pr;
    p->prev[b] = p->next[b] = -1;
    p->n_unref--;
    if (p->hash[b]) p->n_cached--;
}

static void lru_push_front(kv_pool *p, int b) {
    p->prev[b] = -1;
    p->next[b] = p->lru_head;
    if (p->lru_head >= 0)
        p->prev[p->lru_head] = b;
    else
        p->lru_tail = b;
    p->lru_head = b;
    p->n_unref++;
    if (p->hash[b]) p->n_cached++;
}

static void lru_push_back(kv_pool *p, int b) {
    p->next[b] = -1;
    p->prev[b] = p->lru_tail;
    if (p->lru_tail >= 0)
        p->next[p->lru_tail] = b;
    else
        p->lru_head = b;
    p->lru_tail = b;
    p->n_unref++;
    if (p->hash[b]) p->n_cached++;
}

/* ---- hash table ---- */
static size_t ht_slot(const kv_pool *p, uint64_t h) {
    return (size_t)(mix64(h) & (uint64_t)(p->ht_cap - 1));
}

static void ht_remove(kv_pool *p, int b) {
    for (size_t i = ht_slot(p, p->hash[b]), k = 0; k < (size_t)p->ht_cap;
         i = (i + 1) & (size_t)(p->ht_cap - 1), k++) {
        if (p->ht[i] == HT_EMPTY) return;
        if (p->ht[i] == b) {
            p->ht[i] = HT_DELETED;
            return;
        }
    }
}

static int ht_find(const kv_pool *p, uint64_t h, uint64_t parent, const int32_t *tokens) {
    for (size_t i = ht_slot(p, h), k = 0; k < (size_t)p->ht_cap;
         i = (i + 1) & (size_t)(p->ht_cap - 1), k++) {
        int b = p->ht[i];
        if (b == HT_EMPTY) return -1;
        if (b >= 0 && p->hash[b] == h && p->parent[b] == parent &&
            !memcmp(p->tokens + (size_t)b * p->block, tokens, (size_t)p->block * sizeof *tokens))
            return b;
    }
    return -1;
}

static void ht_insert(kv_pool *p, int b) {
    /* deleted slots are reused; at most n_blocks slots hold blocks, so with
     * ht_cap >= 2 n_blocks and tombstones bounded a free slot is always near */
    for (size_t i = ht_slot(p, p->hash[b]), k = 0; k < (size_t)p->ht_cap;
         i = (i + 1) & (size_t)(p->ht_cap - 1), k++) {
        if (p->ht[i] < 0) {
            p->ht[i] = b;
            return;
        }
    }
}

/* Drops tombstones. */
static void ht_rebuild(kv_pool *p) {
    p->n_tomb = 0;
    for (int i = 0; i < p->ht_cap; i++) p->ht[i] = HT_EMPTY;
    for (int b = 0; b < p->n_blocks; b++)
        if (p->hash[b] && p->n_valid[b] == p->block) ht_insert(p, b);
}

/* ---- cached blocks by parent: chained buckets (a parent may have many) ---- */
static size_t kid_slot(const kv_pool *p, uint64_t parent) {
    return (size_t)(mix64(parent ^ 0x2545f4914f6cdd1dULL) & (uint64_t)(p->ht_cap - 1));
}

static void kid_insert(kv_pool *p, int b) {
    size_t s = kid_slot(p, p->parent[b]);
    p->kid_prev[b] = -1;
    p->kid_next[b] = p->kid_head[s];
    if (p->kid_head[s] >= 0) p->kid_prev[p->kid_head[s]] = b;
    p->kid_head[s] = b;
}

static void kid_remove(kv_pool *p, int b) {
    int pr = p->kid_prev[b], nx = p->kid_next[b];
    if (pr >= 0)
        p->kid_next[pr] = nx;
    else
        p->kid_head[kid_slot(p, p->parent[b])] = nx;
    if (nx >= 0) p->kid_prev[nx] = pr;
    p->kid_prev[b] = p->kid_next[b] = -1;
}

/* Takes b out of the cache (the LRU counts are the caller's). */
static void uncache(kv_pool *p, int b) {
    const bool full = p->n_valid[b] == p->block;
    if (full) ht_remove(p, b);
    kid_remove(p, b);
    p->hash[b] = 0;
    p->n_valid[b] = 0;
    /* tombstones lengthen every probe that passes them */
    if (full && ++p->n_tomb > p->ht_cap / 4) ht_rebuild(p);
}

/* Leading tokens a and b share, of n. */
static int common_run(const int32_t *a, const int32_t *b, int n) {
    int i = 0;
    while (i < n && a[i] == b[i]) i++;
    return i;
}

int kv_pool_init(kv_pool *p, int n_blocks, int block) {
    memset(p, 0, sizeof *p);
    if (n_blocks < 1 || block < 1)
        return err_set(M40LLM_ERR_INVALID_ARG, "kv pool: %d blocks of %d positions", n_blocks,
                       block);
    p->n_blocks = n_blocks;
    p->block = block;
    p->ht_cap = 16;
    while (p->ht_cap < 2 * n_blocks) p->ht_cap *= 2;
    p->ref = calloc((size_t)n_blocks, sizeof *p->ref);
    p->hash = calloc((size_t)n_blocks, sizeof *p->hash);
    p->parent = calloc((size_t)n_blocks, sizeof *p->parent);
    p->n_valid = calloc((size_t)n_blocks, sizeof *p->n_valid);
    p->kid_head = malloc((size_t)p->ht_cap * sizeof *p->kid_head);
    p->kid_prev = malloc((size_t)n_blocks * sizeof *p->kid_prev);
    p->kid_next = malloc((size_t)n_blocks * sizeof *p->kid_next);
    p->tokens = malloc((size_t)n_blocks * block * sizeof *p->tokens);
    p->prev = malloc((size_t)n_blocks * sizeof *p->prev);
    p->next = malloc((size_t)n_blocks * sizeof *p->next);
    p->ht = malloc((size_t)p->ht_cap * sizeof *p->ht);
    if (!p->ref || !p->hash || !p->parent || !p->n_valid || !p->kid_head || !p->kid_prev ||
        !p->kid_next || !p->tokens || !p->prev || !p->next || !p->ht) {
        kv_pool_free(p);
        return err_set(M40LLM_ERR_OOM, "kv pool: out of memory for %d blocks", n_blocks);
    }
    for (int i = 0; i < p->ht_cap; i++) p->ht[i] = p->kid_head[i] = -1;
    for (int b = 0; b < n_blocks; b++) p->kid_prev[b] = p->kid_next[b] = -1;
    p->lru_head = p->lru_tail = -1;
    for (int b = 0; b < n_blocks; b++) lru_push_back(p, b);
    return M40LLM_OK;
}

void kv_pool_free(kv_pool *p) {
    free(p->ref);
    free(p->hash);
    free(p->parent);
    free(p->n_valid);
    free(p->kid_head);
    free(p->kid_prev);
    free(p->kid_next);
    free(p->tokens);
    free(p->prev);
    free(p->next);
    free(p->ht);
    memset(p, 0, sizeof *p);
}

int kv_pool_alloc(kv_pool *p) {
    int b = p->lru_head;
    if (b < 0) return -1;
    lru_unlink(p, b);
    if (p->hash[b]) uncache(p, b); /* evict the least recently used cached prefix */
    p->ref[b] = 1;
    return b;
}

void kv_pool_release(kv_pool *p, int b) {
    if (b < 0 || b >= p->n_blocks || p->ref[b] <= 0) return;
    if (--p->ref[b] == 0) {
        if (p->hash[b])
            lru_push_back(p, b); /* cached: most recently used */
        else
            lru_push_front(p, b); /* plain: reused first */
    }
}

int kv_pool_lookup(kv_pool *p, uint64_t h, uint64_t parent, const int32_t *tokens) {
    int b = ht_find(p, h, parent, tokens);
    if (b < 0) return -1;
    if (p->ref[b] == 0) lru_unlink(p, b);
    p->ref[b]++;
    return b;
}

void kv_pool_register(kv_pool *p, int b, uint64_t h, uint64_t parent, const int32_t *tokens) {
    if (b < 0 || b >= p->n_blocks || p->hash[b] || p->ref[b] <= 0) return;
    const int32_t *t = tokens;
    if (ht_find(p, h, parent, t) >= 0) return; /* that prefix is cached already */
    p->hash[b] = h;
    p->parent[b] = parent;
    p->n_valid[b] = p->block;
    memcpy(p->tokens + (size_t)b * p->block, t, (size_t)p->block * sizeof *t);
    ht_insert(p, b);
    kid_insert(p, b);
}

/* The cached block after parent sharing the longest leading run with
 * tokens[0..n), without taking a reference; its run in *len. */
static int best_kid(const kv_pool *p, uint64_t parent, const int32_t *tokens, int n, int *len) {
    int best = -1, best_len = 0;
    for (int b = p->kid_head[kid_slot(p, parent)]; b >= 0; b = p->kid_next[b]) {
        if (p->parent[b] != parent) continue; /* another parent in the bucket */
        int m = n < p->n_valid[b] ? n : p->n_valid[b];
        int run = common_run(p->tokens + (size_t)b * p->block, tokens, m);
        if (run > best_len) {
            best = b;
            best_len = run;
        }
    }
    *len = best_len;
    return best;
}

int kv_pool_lookup_partial(kv_pool *p, uint64_t parent, const int32_t *tokens, int n, int *len) {
    *len = 0;
    if (n < 1) return -1;
    if (n > p->block) n = p->block;
    int b = best_kid(p, parent, tokens, n, len);
    if (b < 0) return -1;
    if (p->ref[b] == 0) lru_unlink(p, b);
    p->ref[b]++;
    return b;
}

void kv_pool_register_partial(kv_pool *p, int b, uint64_t parent, const int32_t *tokens, int n) {
    if (b < 0 || b >= p->n_blocks || p->hash[b] || p->ref[b] <= 0 || n < 1 || n >= p->block) return;
    int run = 0;
    if (best_kid(p, parent, tokens, n, &run) >= 0 && run == n) return; /* held already */
    p->hash[b] = kv_pool_hash(parent, tokens, n);
    p->parent[b] = parent;
    p->n_valid[b] = n;
    memcpy(p->tokens + (size_t)b * p->block, tokens, (size_t)n * sizeof *tokens);
    kid_insert(p, b);
}

bool kv_pool_take(kv_pool *p, int b) {
    if (b < 0 || b >= p->n_blocks || p->ref[b] != 1) return false;
    if (p->hash[b]) uncache(p, b); /* referenced: not on the LRU list, counts unchanged */
    return true;
}

void kv_pool_clear_cache(kv_pool *p) {
    for (int b = 0; b < p->n_blocks; b++) {
        if (!p->hash[b]) continue;
        if (p->ref[b] == 0) {
            lru_unlink(p, b);
            p->hash[b] = 0;
            lru_push_front(p, b);
        } else {
            p->hash[b] = 0;
        }
        p->n_valid[b] = 0;
        p->kid_prev[b] = p->kid_next[b] = -1;
    }
    for (int i = 0; i < p->ht_cap; i++) p->kid_head[i] = -1;
    ht_rebuild(p);
}
