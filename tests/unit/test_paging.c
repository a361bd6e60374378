/* Paged KV cache of the CPU backend: a sequence's logits are bit-identical
 * whatever blocks of the pool it holds (permuted, shared with another
 * sequence for a common prefix, or a copy of another's block made with
 * block_copy), whatever the block size and KV type; a
 * position past a sequence's blocks is rejected before anything is written;
 * seq_set_blocks checks its arguments; seq_clear leaves the pool's contents;
 * the abort hook cuts back as in the fixed layout; blocks cost memory only
 * once written. */
#include <stdint.h>
#include <string.h>

#include "backend.h"
#include "check.h"
#include "model.h"

#define CTX   64 /* n_ctx of every backend here */
#define SHARE 40 /* tokens B has in common with A */

static model *g_model;
static int V;
static int tok_a[CTX], tok_b[CTX];
static float *ref_a[2], *ref_b[2]; /* [kv type] [CTX][V] from the fixed layout */

static backend *mk(int kv, bool paged, int kv_block, int n_pool, uint64_t kv_bytes, int n_seq) {
    backend_params p = {.n_ctx = CTX,
                        .n_seq_max = n_seq,
                        .n_batch_max = CTX,
                        .n_threads = 2,
                        .kv_type = kv,
                        .kv_block = kv_block,
                        .paged = paged,
                        .n_kv_blocks = n_pool,
                        .kv_bytes = kv_bytes};
    backend *b = NULL;
    int st = backend_cpu_create(g_model, &p, &b);
    CHECKF(st == 0, "create (kv %d, paged %d, block %d, pool %d): %s", kv, paged, kv_block, n_pool,
           m40llm_last_error());
    return st ? NULL : b;
}

/* Feeds positions from..to-1 of seq in chunks of `chunk`; out rows by position. */
static int feed(backend *b, int seq, const int *tok, int from, int to, int chunk, float *out) {
    backend_entry e[CTX];
    for (int p = from; p < to; p += chunk) {
        int n = to - p < chunk ? to - p : chunk;
        for (int i = 0; i < n; i++) e[i] = (backend_entry){seq, p + i, tok[p + i], true};
        int st = backend_forward(b, e, n, out + (size_t)p * V);
        if (st) return st;
    }
    return 0;
}

static bool same_rows(const float *a, const float *b, int from, int to) {
    return !memcmp(a + (size_t)from * V, b + (size_t)from * V, (size_t)(to - from) * V * 4);
}

static uint32_t rng = 12345;
static int rnd(int n) {
    rng = rng * 1664525u + 1013904223u;
    return (int)((rng >> 8) % (uint32_t)n);
}

/* A random permutation of 0..n-1 (Fisher-Yates). */
static void permute(int32_t *p, int n) {
    for (int i = 0; i < n; i++) p[i] = i;
    for (int i = n - 1; i > 0; i--) {
        int j = rnd(i + 1);
        int32_t t = p[i];
        p[i] = p[j];
        p[j] = t;
    }
}

/* Permuted blocks, then B sharing A's first full blocks, for one KV type
 * and block size. */
static void test_permuted_and_shared(int kv, int kb, float *out) {
    const int bps = (CTX + kb - 1) / kb, n_pool = 2 * bps + 3;
    backend *b = mk(kv, true, kb, n_pool, 0, 2);
    if (!b) return;
    CHECK(b->params.kv_block == kb && b->params.n_kv_blocks == n_pool);
    int32_t perm[2 * CTX + 3];
    permute(perm, n_pool);
    CHECK(b->ops->seq_capacity(b, 0) == 0);
    CHECK(b->ops->seq_set_blocks(b, 0, perm, bps, 0) == 0);
    CHECK(b->ops->seq_capacity(b, 0) == CTX);
    /* a prompt chunk, then decode steps across block boundaries */
    CHECK(feed(b, 0, tok_a, 0, 10, 10, out) == 0);
    CHECK(feed(b, 0, tok_a, 10, CTX, 1, out) == 0);
    CHECKF(same_rows(out, ref_a[kv], 0, CTX), "kv %d block %d: permuted != fixed layout", kv, kb);
    CHECK(b->ops->seq_len(b, 0) == CTX);

    /* B: A's first full blocks with their K/V (len S), then its own */
    const int shared = SHARE / kb, S = shared * kb;
    int32_t tb[CTX];
    for (int i = 0; i < bps; i++) tb[i] = i < shared ? perm[i] : perm[bps + i];
    CHECK(b->ops->seq_set_blocks(b, 1, tb, bps, S) == 0);
    CHECK(b->ops->seq_len(b, 1) == S);
    /* one batch: part of B's prompt and a rewind of A's last positions */
    backend_entry e[CTX];
    int n = 0, nb = CTX - S < 10 ? CTX - S : 10;
    for (int i = 0; i < nb; i++) e[n++] = (backend_entry){1, S + i, tok_b[S + i], true};
    for (int p = CTX - 4; p < CTX; p++) e[n++] = (backend_entry){0, p, tok_a[p], true};
    float *mix = out + (size_t)CTX * V;
    CHECK(backend_forward(b, e, n, mix) == 0);
    CHECKF(!memcmp(mix, ref_b[kv] + (size_t)S * V, (size_t)nb * V * 4),
           "kv %d block %d: B on shared blocks != B from scratch", kv, kb);
    CHECKF(!memcmp(mix + (size_t)nb * V, ref_a[kv] + (size_t)(CTX - 4) * V, (size_t)4 * V * 4),
           "kv %d block %d: A after B shared its blocks", kv, kb);
    CHECK(feed(b, 1, tok_b, S + nb, CTX, 7, out) == 0);
    CHECKF(same_rows(out, ref_b[kv], S + nb, CTX), "kv %d block %d: rest of B", kv, kb);

    /* B again, on A's full blocks and a copy of the block A's positions
     * S..SHARE-1 are in, writing on past them: bit-identical, and A's
     * block is left as it was */
    if (SHARE > S) {
        int32_t tc[CTX];
        memcpy(tc, tb, sizeof tc);
        tc[shared] = perm[2 * bps];
        CHECK(b->ops->seq_clear(b, 1) == 0);
        CHECK(b->ops->block_copy(b, perm[shared], tc[shared]) == 0);
        CHECK(b->ops->seq_set_blocks(b, 1, tc, bps, SHARE) == 0);
        CHECK(feed(b, 1, tok_b, SHARE, CTX, 5, out) == 0);
        CHECKF(same_rows(out, ref_b[kv], SHARE, CTX), "kv %d block %d: B on a copied block", kv,
               kb);
        CHECK(feed(b, 0, tok_a, CTX - 4, CTX, 4, out) == 0);
        CHECKF(same_rows(out, ref_a[kv], CTX - 4, CTX), "kv %d block %d: A after the copy", kv, kb);
    }
    /* bad copies: the same block, outside the pool, a block never written */
    CHECK(b->ops->block_copy(b, perm[0], perm[0]) == M40LLM_ERR_INVALID_ARG);
    CHECK(b->ops->block_copy(b, perm[0], n_pool) == M40LLM_ERR_INVALID_ARG);
    CHECK(b->ops->block_copy(b, -1, perm[0]) == M40LLM_ERR_INVALID_ARG);
    CHECK(b->ops->block_copy(b, perm[2 * bps + 2], perm[0]) == M40LLM_ERR_INVALID_ARG);
    backend_destroy(b);
}

/* Positions past a sequence's blocks are refused before anything runs. */
static void test_exhausted(float *out) {
    backend *b = mk(BACKEND_KV_F32, true, 16, 3, 0, 2);
    if (!b) return;
    const uint64_t bb = backend_kv_block_bytes(g_model, BACKEND_KV_F32, 16);
    CHECK(b->ops->seq_set_blocks(b, 0, (int32_t[]){2, 0}, 2, 0) == 0);
    CHECK(b->ops->seq_capacity(b, 0) == 32);
    CHECK(feed(b, 0, tok_a, 0, 32, 32, out) == 0);
    CHECK(same_rows(out, ref_a[0], 0, 32));
    const uint64_t mem = b->ops->mem_used(b);
    backend_entry past = {0, 32, tok_a[32], true};
    int rc = backend_forward(b, &past, 1, out);
    CHECKF(rc == M40LLM_ERR_CONTEXT_FULL && strstr(m40llm_last_error(), "KV blocks"), "rc %d: %s",
           rc, m40llm_last_error());
    /* a batch that ends past the blocks: nothing of it runs */
    backend_entry e[3] = {{0, 30, 7, true}, {0, 31, 8, true}, {0, 32, 9, true}};
    CHECK(backend_forward(b, e, 3, out) == M40LLM_ERR_CONTEXT_FULL);
    CHECK(b->ops->seq_len(b, 0) == 32 && b->ops->mem_used(b) == mem);
    CHECK(b->ops->seq_set_blocks(b, 1, (int32_t[]){1}, 1, 0) == 0);
    CHECK(feed(b, 1, tok_b, 0, 16, 16, out) == 0);
    CHECK(same_rows(out, ref_b[0], 0, 16));
    CHECK(b->ops->mem_used(b) == mem + bb);
    past = (backend_entry){1, 16, tok_b[16], true};
    CHECK(backend_forward(b, &past, 1, out) == M40LLM_ERR_CONTEXT_FULL);
    /* the pool has no fourth block */
    CHECK(b->ops->seq_set_blocks(b, 0, (int32_t[]){2, 0, 3}, 3, 32) == M40LLM_ERR_INVALID_ARG);
    /* the refused entries wrote nothing: A's positions read back as before */
    CHECK(feed(b, 0, tok_a, 31, 32, 1, out) == 0);
    CHECK(same_rows(out, ref_a[0], 31, 32));
    CHECK(b->ops->seq_len(b, 0) == 32 && b->ops->seq_len(b, 1) == 16);
    backend_destroy(b);
}

static void test_set_blocks_checks(float *out) {
    backend *fixed = mk(BACKEND_KV_F32, false, 0, 0, 0, 1);
    if (fixed) {
        CHECK(fixed->params.kv_block == 16 && fixed->params.n_kv_blocks == CTX / 16);
        CHECK(fixed->ops->seq_set_blocks(fixed, 0, (int32_t[]){0}, 1, 0) == M40LLM_ERR_INVALID_ARG);
        CHECK(strstr(m40llm_last_error(), "fixed") != NULL);
        CHECK(fixed->ops->seq_capacity(fixed, 0) == CTX);
        CHECK(fixed->ops->seq_clear(fixed, 0) == 0 && fixed->ops->seq_capacity(fixed, 0) == CTX);
        backend_destroy(fixed);
    }
    backend_params p = {.n_ctx = 60,
                        .n_seq_max = 2,
                        .n_batch_max = CTX,
                        .n_threads = 1,
                        .kv_type = BACKEND_KV_F32,
                        .paged = true,
                        .n_kv_blocks = 8};
    backend *b = NULL;
    CHECKF(backend_cpu_create(g_model, &p, &b) == 0, "%s", m40llm_last_error());
    if (!b) return;
    CHECK(b->ops->seq_set_blocks(b, 0, (int32_t[]){0, 1}, 2, 0) == 0);
    CHECK(feed(b, 0, tok_a, 0, 20, 20, out) == 0);
    const int32_t ok4[4] = {0, 1, 2, 3};
    struct {
        int seq;
        const int32_t *blocks;
        int n, len;
        const char *what;
    } bad[] = {
        {-1, ok4, 1, 0, "outside"},
        {2, ok4, 1, 0, "outside"},
        {0, ok4, 5, 0, "blocks"}, /* 60 positions: at most 4 */
        {0, ok4, -1, 0, "blocks"},
        {0, NULL, 1, 0, "blocks"},
        {0, (int32_t[]){8}, 1, 0, "outside the pool"},
        {0, (int32_t[]){-1}, 1, 0, "outside the pool"},
        {0, (int32_t[]){1, 2, 1}, 3, 0, "twice"},
        {0, ok4, 1, 17, "length"},
        {0, ok4, 1, -1, "length"},
        {0, ok4, 4, 61, "length"},                      /* 4 blocks hold 64, the context 60 */
        {0, (int32_t[]){0, 5}, 2, 17, "never written"}, /* block 5 holds 16 but is empty */
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        int rc = b->ops->seq_set_blocks(b, bad[i].seq, bad[i].blocks, bad[i].n, bad[i].len);
        CHECKF(rc == M40LLM_ERR_INVALID_ARG && strstr(m40llm_last_error(), bad[i].what),
               "case %zu: rc %d: %s", i, rc, m40llm_last_error());
        /* the sequence is as it was */
        CHECK(b->ops->seq_len(b, 0) == 20 && b->ops->seq_capacity(b, 0) == 32);
    }
    CHECK(b->ops->seq_set_blocks(b, 1, ok4, 4, 0) == 0 && b->ops->seq_capacity(b, 1) == 60);
    CHECK(b->ops->seq_set_blocks(b, 1, NULL, 0, 0) == 0 && b->ops->seq_capacity(b, 1) == 0);
    /* the sequence's own blocks with its length: continues as before */
    CHECK(b->ops->seq_set_blocks(b, 0, (int32_t[]){0, 1, 2}, 3, 20) == 0);
    CHECK(feed(b, 0, tok_a, 20, 40, 5, out) == 0);
    CHECK(same_rows(out, ref_a[0], 20, 40));
    backend_destroy(b);
}

/* seq_clear empties the table and leaves the blocks' contents. */
static void test_clear(float *out) {
    backend *b = mk(BACKEND_KV_F16, true, 16, 8, 0, 1);
    if (!b) return;
    const int32_t t[2] = {4, 6};
    CHECK(b->ops->seq_set_blocks(b, 0, t, 2, 0) == 0);
    CHECK(feed(b, 0, tok_a, 0, 20, 20, out) == 0);
    CHECK(b->ops->seq_clear(b, 0) == 0);
    CHECK(b->ops->seq_len(b, 0) == 0 && b->ops->seq_capacity(b, 0) == 0);
    backend_entry e0 = {0, 0, tok_a[0], true};
    CHECK(backend_forward(b, &e0, 1, out) == M40LLM_ERR_CONTEXT_FULL);
    CHECK(b->ops->seq_set_blocks(b, 0, t, 2, 20) == 0);
    CHECK(feed(b, 0, tok_a, 20, 24, 1, out) == 0);
    CHECK(same_rows(out, ref_a[1], 20, 24));
    backend_destroy(b);
}

typedef struct abort_count {
    int polls, after;
} abort_count;
static bool abort_after(void *ctx) {
    abort_count *a = ctx;
    return ++a->polls >= a->after;
}

/* The abort hook in paged mode: the cut-back works as in the fixed layout. */
static void test_abort(float *out) {
    backend *b = mk(BACKEND_KV_F32, true, 3, 40, 0, 1);
    if (!b) return;
    int32_t perm[40];
    permute(perm, 40);
    CHECK(b->ops->seq_set_blocks(b, 0, perm, (CTX + 2) / 3, 0) == 0);
    CHECK(feed(b, 0, tok_a, 0, 30, 30, out) == 0);
    abort_count a = {0, 2}; /* after layer 0 wrote */
    backend_set_abort(b, abort_after, &a);
    backend_entry alt[20];
    for (int i = 0; i < 20; i++) alt[i] = (backend_entry){0, 20 + i, tok_b[i], i == 19};
    int rc = backend_forward(b, alt, 20, out);
    CHECKF(rc == M40LLM_ERR_CANCELLED, "rc %d: %s", rc, m40llm_last_error());
    CHECKF(b->ops->seq_len(b, 0) == 20, "seq_len %d", b->ops->seq_len(b, 0));
    backend_set_abort(b, NULL, NULL);
    CHECK(feed(b, 0, tok_a, 20, 40, 20, out) == 0);
    CHECK(same_rows(out, ref_a[0], 20, 40));
    backend_destroy(b);
}

/* Blocks cost memory once written; kv_bytes sizes the pool. */
static void test_lazy(float *out) {
    const uint64_t bb = backend_kv_block_bytes(g_model, BACKEND_KV_F16, 16);
    const model_config *c = &g_model->cfg;
    CHECK(bb == 2ull * c->n_layer * 16 * c->n_head_kv * c->head_dim * 2);
    CHECK(backend_kv_block_bytes(g_model, BACKEND_KV_F32, 16) == 2 * bb);
    CHECK(backend_kv_block_bytes(g_model, BACKEND_KV_F16, 0) == 0);
    backend *b = mk(BACKEND_KV_F16, true, 0, 0, 100 * bb + bb / 2, 1);
    if (!b) return;
    CHECK(b->params.n_kv_blocks == 100 && b->params.kv_block == 16);
    const uint64_t mem0 = b->ops->mem_used(b);
    /* against a one-block pool: only the pool's table of pointers more */
    backend *one = mk(BACKEND_KV_F16, true, 16, 1, 0, 1);
    if (one) {
        uint64_t m1 = one->ops->mem_used(one);
        CHECKF(mem0 >= m1 && mem0 - m1 < bb,
               "%llu bytes held before any block is written, %llu "
               "with one block",
               (unsigned long long)mem0, (unsigned long long)m1);
        backend_destroy(one);
    }
    CHECK(b->ops->seq_set_blocks(b, 0, (int32_t[]){7, 50, 99, 3}, 4, 0) == 0);
    CHECK(b->ops->mem_used(b) == mem0);
    CHECK(feed(b, 0, tok_a, 0, 20, 20, out) == 0);
    CHECK(b->ops->mem_used(b) == mem0 + 2 * bb);
    CHECK(feed(b, 0, tok_a, 20, 33, 1, out) == 0);
    CHECK(b->ops->mem_used(b) == mem0 + 3 * bb);
    CHECK(same_rows(out, ref_a[1], 0, 33));
    backend_destroy(b);
    /* sizes that cannot make a pool */
    backend_params p = {.n_ctx = CTX,
                        .n_seq_max = 1,
                        .n_batch_max = 4,
                        .n_threads = 1,
                        .kv_type = BACKEND_KV_F16,
                        .paged = true,
                        .kv_bytes = bb - 1};
    b = NULL;
    CHECK(backend_cpu_create(g_model, &p, &b) == M40LLM_ERR_INVALID_ARG && !b);
    p.kv_bytes = 0;
    p.n_kv_blocks = -1;
    CHECK(backend_cpu_create(g_model, &p, &b) == M40LLM_ERR_INVALID_ARG && !b);
    p.n_kv_blocks = 0;
    p.kv_block = -16;
    CHECK(backend_cpu_create(g_model, &p, &b) == M40LLM_ERR_INVALID_ARG && !b);
    /* paged without a size: as many blocks as the fixed layout */
    p.kv_block = 3;
    CHECK(backend_cpu_create(g_model, &p, &b) == 0 && b);
    if (b) CHECK(b->params.n_kv_blocks == (CTX + 2) / 3);
    backend_destroy(b);
}

int main(void) {
    char path[512];
    check_fixture("reference/synth-q4_k_m.gguf", path, sizeof path);
    if (model_load(path, &g_model)) SKIP("cannot load %s: %s", path, m40llm_last_error());
    V = g_model->cfg.n_vocab;
    for (int i = 0; i < CTX; i++) {
        tok_a[i] = i == 0 ? 1 : 3 + (i * 37 + 11) % (V - 3);
        tok_b[i] = i < SHARE ? tok_a[i] : 3 + (i * 101 + 5) % (V - 3);
    }
    const size_t n = (size_t)CTX * V;
    float *out = calloc(2 * n, 4), *tmp = calloc(n, 4);
    for (int kv = 0; kv < 2; kv++) {
        ref_a[kv] = calloc(n, 4);
        ref_b[kv] = calloc(n, 4);
        backend *b = mk(kv, false, 0, 0, 0, 2);
        if (!b) return check_summary("test_paging");
        CHECK(feed(b, 0, tok_a, 0, CTX, CTX, ref_a[kv]) == 0);
        CHECK(feed(b, 1, tok_b, 0, CTX, 16, ref_b[kv]) == 0);
        backend_destroy(b);
        /* the fixed layout with other block sizes: the same bits */
        for (int kb = 1; kb <= CTX; kb *= 4) {
            b = mk(kv, false, kb == 16 ? 3 : kb, 0, 0, 1);
            if (!b) continue;
            CHECK(feed(b, 0, tok_a, 0, CTX, 13, tmp) == 0);
            CHECKF(!memcmp(tmp, ref_a[kv], n * 4), "fixed layout, kv %d block %d", kv,
                   b->params.kv_block);
            backend_destroy(b);
        }
    }
    const int blocks[] = {1, 3, 16, 64};
    for (int kv = 0; kv < 2; kv++)
        for (size_t i = 0; i < sizeof blocks / sizeof blocks[0]; i++)
            test_permuted_and_shared(kv, blocks[i], out);
    test_exhausted(out);
    test_set_blocks_checks(out);
    test_clear(out);
    test_abort(out);
    test_lazy(out);
    for (int kv = 0; kv < 2; kv++) free(ref_a[kv]), free(ref_b[kv]);
    free(out);
    free(tmp);
    model_free(g_model);
    return check_summary("test_paging");
}
