/* Paged KV cache of the CUDA backend, against the CPU backend's fixed
 * layout (same KV type; max |d| 5e-4 with an F32 cache and FP32 GEMM
 * operands, 5e-3 with F16, as the long decode of test_gpu_forward) and
 * against its own fixed layout (greedy ids identical, logits within 1e-5):
 * permuted pages of 16, 32 and 64 positions through prefill (GEMM path)
 * and decode (graphs) across page boundaries; a sequence on another's
 * pages for a shared prefix; a sequence moved to other pages while its
 * decode graph is cached; a sequence on a copy of another's page
 * (block_copy) writing on past the shared positions; positions past the
 * pages refused; seq_set_blocks
 * checks; seq_clear keeps the pages; page sizes the kernels do not take;
 * the pool sized by kv_fraction of the free memory. */
#include <string.h>

#include "backend.h"
#include "gpu_test.h"
#include "model.h"

#define CTX   128
#define T     100 /* positions fed */
#define SHARE 70  /* tokens B has in common with A */
#define NB    32  /* n_batch_max: prompt chunks take the GEMM path */

static model *g_m;
static int V;
static int tok_a[CTX], tok_b[CTX];
static float *cpu_a[2], *cpu_b[2]; /* [kv type] [T][V], CPU fixed layout */
static const double tol[2] = {5e-4, 5e-3};

static backend *mk(int kv, bool paged, int kb, int n_pool, int n_seq, int n_batch) {
    backend_params p = {.prefill_gemm = kv == BACKEND_KV_F32 ? BACKEND_GEMM_F32 : BACKEND_GEMM_F16,
                        .n_ctx = CTX,
                        .n_seq_max = n_seq,
                        .n_batch_max = n_batch,
                        .n_threads = 1,
                        .device = 0,
                        .kv_type = kv,
                        .kv_block = kb,
                        .paged = paged,
                        .n_kv_blocks = n_pool};
    backend *b = NULL;
    int rc = backend_cuda_create(g_m, &p, &b);
    CHECKF(rc == 0, "cuda create (kv %d, paged %d, block %d, pool %d): %s", kv, paged, kb, n_pool,
           m40llm_last_error());
    return rc ? NULL : b;
}

/* positions from..to-1 of seq in chunks of `chunk` (<= NB), rows by position */
static int feed(backend *b, int seq, const int *tok, int from, int to, int chunk, float *out) {
    backend_entry e[NB];
    for (int p = from; p < to; p += chunk) {
        int n = to - p < chunk ? to - p : chunk;
        for (int i = 0; i < n; i++) e[i] = (backend_entry){seq, p + i, tok[p + i], true};
        int st = backend_forward(b, e, n, out + (size_t)p * V);
        if (st) return st;
    }
    return 0;
}

static double maxd(const float *a, const float *b, int from, int to) {
    double m = 0;
    for (size_t i = (size_t)from * V; i < (size_t)to * V; i++) {
        double d = fabs((double)a[i] - b[i]);
        if (!(d <= m)) m = isnan(d) ? INFINITY : d;
    }
    return m;
}

static void permute(int32_t *p, int n) {
    for (int i = 0; i < n; i++) p[i] = i;
    for (int i = n - 1; i > 0; i--) {
        int j = (int)(gt_u32() % (uint32_t)(i + 1));
        int32_t t = p[i];
        p[i] = p[j];
        p[j] = t;
    }
}

/* greedy ids of seq after position T-1 (re-run) */
static int greedy(backend *b, int seq, int32_t *ids, int n) {
    int32_t tok = 0;
    backend_entry e = {seq, T - 1, tok_a[T - 1], true};
    if (b->ops->forward_argmax(b, &e, 1, &tok)) return -1;
    for (int i = 0; i < n; i++) {
        ids[i] = tok;
        e = (backend_entry){seq, T + i, tok, true};
        if (b->ops->forward_argmax(b, &e, 1, &tok)) return -1;
    }
    return 0;
}

static void scenario(int kv, int kb) {
    const int pps = (CTX + kb - 1) / kb, n_pool = 2 * pps + 3;
    float *fixed = malloc(sizeof(float) * CTX * V), *paged = malloc(sizeof(float) * CTX * V);
    int32_t g_fixed[16], g_paged[16];
    backend *f = mk(kv, false, kb, 0, 1, NB);
    int ok_f =
        f && feed(f, 0, tok_a, 0, 20, 20, fixed) == 0 && feed(f, 0, tok_a, 20, T, 1, fixed) == 0;
    CHECKF(ok_f, "kv %d page %d: fixed layout: %s", kv, kb, m40llm_last_error());
    if (ok_f) CHECK(greedy(f, 0, g_fixed, 16) == 0);
    backend_destroy(f);
    backend *b = mk(kv, true, kb, n_pool, 2, NB);
    if (!b || !ok_f) {
        backend_destroy(b);
        free(fixed), free(paged);
        return;
    }
    CHECK(b->params.kv_block == kb && b->params.n_kv_blocks == n_pool);
    int32_t perm[2 * CTX + 3];
    permute(perm, n_pool);
    CHECK(b->ops->seq_set_blocks(b, 0, perm, pps, 0) == 0);
    int ok = feed(b, 0, tok_a, 0, 20, 20, paged) == 0 && feed(b, 0, tok_a, 20, T, 1, paged) == 0;
    CHECKF(ok, "kv %d page %d: paged: %s", kv, kb, m40llm_last_error());
    double d_cpu = maxd(paged, cpu_a[kv], 0, T), d_fixed = maxd(paged, fixed, 0, T);
    printf("  kv %s page %2d: permuted pages vs CPU max |d| %.2e, vs CUDA fixed %.2e\n",
           kv ? "f16" : "f32", kb, d_cpu, d_fixed);
    CHECKF(d_cpu <= tol[kv], "kv %d page %d: paged vs CPU %.3g", kv, kb, d_cpu);
    CHECKF(d_fixed <= 1e-5, "kv %d page %d: paged vs fixed %.3g", kv, kb, d_fixed);

    /* B on A's first full pages (len S), its own after; one batch mixes
     * B's prompt with a rewind of A */
    const int S = SHARE / kb * kb, shared = S / kb;
    int32_t tb[CTX];
    for (int i = 0; i < pps; i++) tb[i] = i < shared ? perm[i] : perm[pps + i];
    CHECK(b->ops->seq_set_blocks(b, 1, tb, pps, S) == 0 && b->ops->seq_len(b, 1) == S);
    backend_entry e[NB];
    int n = 0;
    for (int i = 0; i < 10; i++) e[n++] = (backend_entry){1, S + i, tok_b[S + i], true};
    for (int p = T - 4; p < T; p++) e[n++] = (backend_entry){0, p, tok_a[p], true};
    float *mix = malloc(sizeof(float) * NB * V);
    ok = backend_forward(b, e, n, mix) == 0;
    CHECKF(ok, "shared batch: %s", m40llm_last_error());
    double d_b = 0, d_a = 0;
    for (int i = 0; i < 10 && ok; i++) {
        double d = maxd(mix + (size_t)i * V, cpu_b[kv] + (size_t)(S + i) * V, 0, 1);
        if (!(d <= d_b)) d_b = d;
    }
    for (int i = 0; i < 4 && ok; i++) {
        double d = maxd(mix + (size_t)(10 + i) * V, cpu_a[kv] + (size_t)(T - 4 + i) * V, 0, 1);
        if (!(d <= d_a)) d_a = d;
    }
    ok = ok && feed(b, 1, tok_b, S + 10, T, 1, paged) == 0; /* decode: graphs replayed */
    double d_rest = ok ? maxd(paged, cpu_b[kv], S + 10, T) : INFINITY;
    printf("  kv %s page %2d: B on %d shared positions %.2e, rest %.2e; A beside it %.2e\n",
           kv ? "f16" : "f32", kb, S, d_b, d_rest, d_a);
    CHECKF(d_b <= tol[kv] && d_rest <= tol[kv] && d_a <= tol[kv],
           "kv %d page %d: sharing: B %.3g, rest %.3g, A %.3g", kv, kb, d_b, d_rest, d_a);

    /* sequence 0 moved onto B's pages while its decode graph is cached:
     * the graph reads the new table */
    CHECK(b->ops->seq_clear(b, 1) == 0);
    CHECK(b->ops->seq_set_blocks(b, 0, tb, pps, T) == 0);
    backend_entry last = {0, T - 1, tok_b[T - 1], true};
    ok = backend_forward(b, &last, 1, mix) == 0;
    double d_move = ok ? maxd(mix, cpu_b[kv] + (size_t)(T - 1) * V, 0, 1) : INFINITY;
    CHECKF(d_move <= tol[kv], "kv %d page %d: sequence moved to other pages: %.3g", kv, kb, d_move);
    /* greedy after A again, on A's pages: the same ids as the fixed layout */
    CHECK(b->ops->seq_set_blocks(b, 0, perm, pps, T) == 0);
    CHECK(greedy(b, 0, g_paged, 16) == 0);
    CHECKF(!memcmp(g_fixed, g_paged, sizeof g_paged), "kv %d page %d: greedy paged != fixed", kv,
           kb);

    /* B on A's full pages and a copy of the page A's positions S..SHARE-1
     * are in (block_copy), writing on past them in the copy: A's page is
     * left as it was for A */
    int32_t tc[CTX];
    for (int i = 0; i < pps; i++) tc[i] = i < shared ? perm[i] : perm[pps + i];
    tc[shared] = perm[2 * pps];
    CHECK(b->ops->block_copy(b, perm[shared], perm[shared]) == M40LLM_ERR_INVALID_ARG);
    CHECK(b->ops->block_copy(b, perm[shared], n_pool) == M40LLM_ERR_INVALID_ARG);
    CHECK(b->ops->block_copy(b, -1, perm[shared]) == M40LLM_ERR_INVALID_ARG);
    ok = b->ops->block_copy(b, perm[shared], tc[shared]) == 0 &&
         b->ops->seq_set_blocks(b, 1, tc, pps, SHARE) == 0 &&
         feed(b, 1, tok_b, SHARE, SHARE + 10, 10, paged) == 0 &&
         feed(b, 1, tok_b, SHARE + 10, T, 1, paged) == 0;
    CHECKF(ok, "kv %d page %d: B on a copied page: %s", kv, kb, m40llm_last_error());
    double d_copy = ok ? maxd(paged, cpu_b[kv], SHARE, T) : INFINITY;
    ok = feed(b, 0, tok_a, T - 4, T, 4, paged) == 0;
    double d_orig = ok ? maxd(paged, cpu_a[kv], T - 4, T) : INFINITY;
    printf("  kv %s page %2d: B on a copy of the page of positions %d..%d: %.2e; A after: %.2e\n",
           kv ? "f16" : "f32", kb, S, SHARE - 1, d_copy, d_orig);
    CHECKF(d_copy <= tol[kv] && d_orig <= tol[kv], "kv %d page %d: copied page %.3g, A %.3g", kv,
           kb, d_copy, d_orig);
    free(mix);
    backend_destroy(b);
    free(fixed), free(paged);
}

static void limits(void) {
    float *out = malloc(sizeof(float) * CTX * V);
    backend *b = mk(BACKEND_KV_F16, true, 16, 3, 2, 8);
    if (b) {
        CHECK(b->ops->seq_set_blocks(b, 0, (int32_t[]){2, 0}, 2, 0) == 0);
        CHECK(b->ops->seq_capacity(b, 0) == 32);
        CHECK(feed(b, 0, tok_a, 0, 32, 8, out) == 0);
        backend_entry e[3] = {{0, 30, 7, true}, {0, 31, 8, true}, {0, 32, 9, true}};
        CHECK(backend_forward(b, e + 2, 1, out) == M40LLM_ERR_CONTEXT_FULL);
        CHECK(backend_forward(b, e, 3, out) == M40LLM_ERR_CONTEXT_FULL);
        CHECK(b->ops->seq_len(b, 0) == 32);
        CHECK(feed(b, 0, tok_a, 31, 32, 1, out) == 0); /* nothing was written */
        CHECK(maxd(out, cpu_a[1], 31, 32) <= tol[1]);
        /* argument checks */
        CHECK(b->ops->seq_set_blocks(b, 1, (int32_t[]){1, 1}, 2, 0) == M40LLM_ERR_INVALID_ARG);
        CHECK(b->ops->seq_set_blocks(b, 1, (int32_t[]){3}, 1, 0) == M40LLM_ERR_INVALID_ARG);
        CHECK(b->ops->seq_set_blocks(b, 1, (int32_t[]){1}, 1, 17) == M40LLM_ERR_INVALID_ARG);
        CHECK(b->ops->seq_set_blocks(b, 2, (int32_t[]){1}, 1, 0) == M40LLM_ERR_INVALID_ARG);
        CHECK(b->ops->seq_len(b, 0) == 32 && b->ops->seq_capacity(b, 1) == 0);
        /* seq_clear: the table goes, the pages' contents stay */
        CHECK(b->ops->seq_clear(b, 0) == 0 && b->ops->seq_capacity(b, 0) == 0);
        CHECK(backend_forward(b, e, 1, out) == M40LLM_ERR_CONTEXT_FULL);
        CHECK(b->ops->seq_set_blocks(b, 0, (int32_t[]){2, 0}, 2, 31) == 0);
        CHECK(feed(b, 0, tok_a, 31, 32, 1, out) == 0);
        CHECK(maxd(out, cpu_a[1], 31, 32) <= tol[1]);
        backend_destroy(b);
    }
    b = mk(BACKEND_KV_F16, false, 0, 0, 1, 8);
    if (b) {
        CHECK(b->params.kv_block == 64 && b->params.n_kv_blocks == CTX / 64);
        CHECK(b->ops->seq_set_blocks(b, 0, (int32_t[]){0}, 1, 0) == M40LLM_ERR_INVALID_ARG);
        CHECK(b->ops->seq_capacity(b, 0) == CTX);
        backend_destroy(b);
    }
    const int unsupported[] = {8, 48, 128, -64};
    for (int i = 0; i < 4; i++) {
        backend_params p = {.n_ctx = CTX,
                            .n_seq_max = 1,
                            .n_batch_max = 8,
                            .kv_type = BACKEND_KV_F16,
                            .kv_block = unsupported[i]};
        b = NULL;
        int rc = backend_cuda_create(g_m, &p, &b);
        CHECKF(rc == M40LLM_ERR_UNSUPPORTED && !b && strstr(m40llm_last_error(), "16 to 64"),
               "page of %d: rc %d: %s", unsupported[i], rc, m40llm_last_error());
    }
    free(out);
}

/* kv_fraction: the pool takes that share of the memory left free */
static void fraction(void) {
    const uint64_t bb = backend_kv_block_bytes(g_m, BACKEND_KV_F16, 64);
    int64_t pages[2] = {0, 0};
    const double fr[2] = {0.25, 0.5};
    for (int i = 0; i < 2; i++) {
        backend_params p = {.n_ctx = CTX,
                            .n_seq_max = 4,
                            .n_batch_max = 8, /* no prefill warm-up: nothing allocated later */
                            .kv_type = BACKEND_KV_F16,
                            .paged = true,
                            .kv_fraction = fr[i]};
        backend *b = NULL;
        int rc = backend_cuda_create(g_m, &p, &b);
        CHECKF(rc == 0, "kv_fraction %g: %s", fr[i], m40llm_last_error());
        if (rc) continue;
        size_t free1 = 0, tot = 0;
        GT_CUDA(cudaMemGetInfo(&free1, &tot));
        pages[i] = b->params.n_kv_blocks;
        const double pool = (double)pages[i] * bb, before = (double)free1 + pool;
        printf("  kv_fraction %.2f: %lld pages of %llu bytes (%.1f MiB) of %.1f MiB free\n", fr[i],
               (long long)pages[i], (unsigned long long)bb, pool / 1048576, before / 1048576);
        CHECKF(fabs(pool - fr[i] * before) <= bb + 64.0 * 1048576,
               "kv_fraction %g: pool %.0f bytes, %.0f free before it", fr[i], pool, before);
        CHECK(b->ops->mem_used(b) >= (uint64_t)pool);
        /* the pool's last pages work */
        int32_t t[2] = {(int32_t)pages[i] - 1, (int32_t)pages[i] - 2};
        float *out = malloc(sizeof(float) * CTX * V);
        CHECK(b->ops->seq_set_blocks(b, 3, t, 2, 0) == 0);
        CHECK(feed(b, 3, tok_a, 0, 100, 8, out) == 0);
        CHECK(maxd(out, cpu_a[1], 0, 100) <= tol[1]);
        free(out);
        backend_destroy(b);
    }
    CHECKF(pages[1] > 0 && fabs((double)pages[1] / (double)pages[0] - 2.0) < 0.1,
           "kv_fraction 0.5 vs 0.25: %lld vs %lld pages", (long long)pages[1], (long long)pages[0]);
    backend_params p = {.n_ctx = CTX,
                        .n_seq_max = 1,
                        .n_batch_max = 8,
                        .kv_type = BACKEND_KV_F16,
                        .paged = true,
                        .kv_fraction = 1.5};
    backend *b = NULL;
    CHECK(backend_cuda_create(g_m, &p, &b) == M40LLM_ERR_INVALID_ARG && !b);
}

int main(void) {
    gpu_test_require_device();
    char path[1024];
    check_fixture("reference/synth-q8_0.gguf", path, sizeof path);
    if (model_load(path, &g_m)) SKIP("cannot load %s: %s", path, m40llm_last_error());
    V = g_m->cfg.n_vocab;
    for (int i = 0; i < CTX; i++) {
        tok_a[i] = (int)(gt_u32() % (uint32_t)V);
        tok_b[i] = i < SHARE ? tok_a[i] : (int)(gt_u32() % (uint32_t)V);
    }
    for (int kv = 0; kv < 2; kv++) {
        backend_params p = {
            .n_ctx = CTX, .n_seq_max = 2, .n_batch_max = NB, .n_threads = 2, .kv_type = kv};
        backend *c = NULL;
        CHECKF(backend_cpu_create(g_m, &p, &c) == 0, "cpu: %s", m40llm_last_error());
        if (!c) return check_summary("test_gpu_paging");
        cpu_a[kv] = malloc(sizeof(float) * CTX * V);
        cpu_b[kv] = malloc(sizeof(float) * CTX * V);
        CHECK(feed(c, 0, tok_a, 0, T, NB, cpu_a[kv]) == 0);
        CHECK(feed(c, 1, tok_b, 0, T, NB, cpu_b[kv]) == 0);
        backend_destroy(c);
    }
    for (int kv = 0; kv < 2; kv++)
        for (int kb = 16; kb <= 64; kb *= 2) scenario(kv, kb);
    limits();
    fraction();
    for (int kv = 0; kv < 2; kv++) free(cpu_a[kv]), free(cpu_b[kv]);
    model_free(g_m);
    return check_summary("test_gpu_paging");
}
