/* Batch semantics of the CPU backend: the logits of a sequence do not depend
 * on how it is split into forward calls, on other sequences sharing a batch,
 * on the thread count, or on a cleared cache's history; invalid batches are
 * rejected with the right status. */
#include <string.h>

#include "backend.h"
#include "check.h"
#include "model.h"

#define T     48
#define V_MAX 512

static model *g_model;
static int V;

static backend *make(int n_threads, int n_seq) {
    backend_params p = {.n_ctx = 64,
                        .n_seq_max = n_seq,
                        .n_batch_max = 2 * T,
                        .n_threads = n_threads,
                        .kv_type = BACKEND_KV_F32};
    backend *b = NULL;
    int st = backend_cpu_create(g_model, &p, &b);
    CHECKF(st == 0, "create: %s", m40llm_last_error());
    return b;
}

/* Feeds tokens[0..T) of sequence seq in chunks; out gets [T][V] logits. */
static int feed_chunks(backend *b, int seq, const int *tokens, const int *chunks, int n_chunks,
                       float *out) {
    backend_entry e[T];
    int pos = 0;
    for (int c = 0; c < n_chunks; c++) {
        for (int i = 0; i < chunks[c]; i++)
            e[i] = (backend_entry){seq, pos + i, tokens[pos + i], true};
        int st = backend_forward(b, e, chunks[c], out + (size_t)pos * V);
        if (st) return st;
        pos += chunks[c];
    }
    return pos == T ? 0 : -1;
}

static double max_diff(const float *a, const float *b, size_t n) {
    double m = 0;
    for (size_t i = 0; i < n; i++) {
        double d = fabs((double)a[i] - b[i]);
        if (d > m || d != d) m = d;
    }
    return m;
}

int main(void) {
    char path[512];
    check_fixture("reference/synth-q4_k_m.gguf", path, sizeof path);
    if (model_load(path, &g_model)) SKIP("cannot load %s: %s", path, m40llm_last_error());
    V = g_model->cfg.n_vocab;
    CHECK(V <= V_MAX);
    int tok_a[T], tok_b[T];
    for (int i = 0; i < T; i++) {
        tok_a[i] = i == 0 ? 1 : 3 + (i * 37 + 11) % (V - 3);
        tok_b[i] = i == 0 ? 1 : 3 + (i * 101 + 5) % (V - 3);
    }
    size_t n = (size_t)T * V;
    float *one = calloc(n, 4), *steps = calloc(n, 4), *uneven = calloc(n, 4), *other = calloc(n, 4),
          *mix = calloc(2 * n, 4), *tmp = calloc(2 * n, 4);

    /* one batch, token by token, uneven chunks; 1 and 3 threads */
    backend *b = make(2, 2);
    int whole[] = {T}, ones[T], uneven_c[] = {5, 1, 17, 25};
    for (int i = 0; i < T; i++) ones[i] = 1;
    CHECK(feed_chunks(b, 0, tok_a, whole, 1, one) == 0);
    CHECK(b->ops->seq_len(b, 0) == T);
    CHECK(b->ops->seq_clear(b, 0) == 0 && b->ops->seq_len(b, 0) == 0);
    CHECK(feed_chunks(b, 0, tok_a, ones, T, steps) == 0);
    double d_steps = max_diff(one, steps, n);
    CHECK(b->ops->seq_clear(b, 0) == 0);
    CHECK(feed_chunks(b, 0, tok_a, uneven_c, 4, uneven) == 0);
    double d_uneven = max_diff(one, uneven, n);
    printf("one batch vs token by token: max|d| = %.3e; vs chunks 5,1,17,25: %.3e\n", d_steps,
           d_uneven);
    CHECK(d_steps <= 1e-5 && d_uneven <= 1e-5);

    /* seq_clear then the same run again: identical */
    CHECK(b->ops->seq_clear(b, 0) == 0);
    CHECK(feed_chunks(b, 0, tok_a, whole, 1, tmp) == 0);
    CHECK(max_diff(one, tmp, n) == 0.0);
    backend_destroy(b);

    backend *b3 = make(3, 1);
    CHECK(feed_chunks(b3, 0, tok_a, whole, 1, tmp) == 0);
    printf("2 threads vs 3 threads: max|d| = %.3e\n", max_diff(one, tmp, n));
    CHECK(max_diff(one, tmp, n) == 0.0);
    backend_destroy(b3);

    /* two sequences interleaved in one batch == each alone */
    b = make(2, 3);
    CHECK(feed_chunks(b, 2, tok_b, whole, 1, other) == 0);
    backend_entry e[2 * T];
    for (int i = 0; i < T; i++) {
        e[2 * i] = (backend_entry){1, i, tok_a[i], true};
        e[2 * i + 1] = (backend_entry){0, i, tok_b[i], true};
    }
    CHECK(backend_forward(b, e, 2 * T, mix) == 0);
    double d_a = 0, d_b = 0;
    for (int i = 0; i < T; i++) {
        double x = max_diff(mix + (size_t)(2 * i) * V, one + (size_t)i * V, (size_t)V);
        double y = max_diff(mix + (size_t)(2 * i + 1) * V, other + (size_t)i * V, (size_t)V);
        if (x > d_a) d_a = x;
        if (y > d_b) d_b = y;
    }
    printf("interleaved vs alone: seq A %.3e, seq B %.3e\n", d_a, d_b);
    CHECK(d_a <= 1e-5 && d_b <= 1e-5);

    /* a decode step of one sequence next to a prompt chunk of another,
     * logits only for some entries */
    CHECK(b->ops->seq_clear(b, 0) == 0 && b->ops->seq_clear(b, 1) == 0);
    CHECK(feed_chunks(b, 0, tok_a, (int[]){T}, 1, tmp) == 0);
    backend_entry m2[11];
    for (int i = 0; i < 10; i++) m2[i] = (backend_entry){1, i, tok_b[i], i == 9};
    /* rewind: sequence 0 overwrites its last position with the same token */
    m2[10] = (backend_entry){0, T - 1, tok_a[T - 1], true};
    CHECK(backend_forward(b, m2, 11, tmp) == 0);
    CHECK(max_diff(tmp, other + (size_t)9 * V, (size_t)V) <= 1e-5);
    CHECK(max_diff(tmp + V, one + (size_t)(T - 1) * V, (size_t)V) <= 1e-5);
    CHECK(b->ops->seq_len(b, 1) == 10 && b->ops->seq_len(b, 0) == T);

    /* rewind to position 20 and feed the rest again: the same logits */
    CHECK(b->ops->seq_clear(b, 0) == 0);
    CHECK(feed_chunks(b, 0, tok_a, whole, 1, tmp) == 0);
    backend_entry r[T];
    for (int i = 0; i < T - 20; i++) r[i] = (backend_entry){0, 20 + i, tok_a[20 + i], true};
    CHECK(backend_forward(b, r, T - 20, tmp) == 0);
    CHECK(max_diff(tmp, one + (size_t)20 * V, (size_t)(T - 20) * V) <= 1e-5);
    /* a batch that goes back inside itself runs its parts in order */
    backend_entry back[3] = {
        {0, T, 7, true}, {0, T - 2, tok_a[T - 2], true}, {0, T - 1, tok_a[T - 1], true}};
    CHECK(backend_forward(b, back, 3, tmp) == 0);
    CHECK(max_diff(tmp + V, one + (size_t)(T - 2) * V, 2 * (size_t)V) <= 1e-5);
    CHECK(b->ops->seq_len(b, 0) == T);

    /* invalid batches */
    CHECK(b->ops->seq_clear(b, 0) == 0);
    backend_entry bad = {0, 1, 5, true};
    CHECK(backend_forward(b, &bad, 1, tmp) == M40LLM_ERR_INVALID_ARG);
    CHECK(strstr(m40llm_last_error(), "gap") != NULL);
    bad = (backend_entry){3, 0, 5, true};
    CHECK(backend_forward(b, &bad, 1, tmp) == M40LLM_ERR_INVALID_ARG);
    bad = (backend_entry){0, 0, V, true};
    CHECK(backend_forward(b, &bad, 1, tmp) == M40LLM_ERR_INVALID_ARG);
    bad = (backend_entry){0, 0, -1, true};
    CHECK(backend_forward(b, &bad, 1, tmp) == M40LLM_ERR_INVALID_ARG);
    bad = (backend_entry){0, 64, 5, true};
    CHECK(backend_forward(b, &bad, 1, tmp) == M40LLM_ERR_CONTEXT_FULL);
    backend_entry gap2[2] = {{0, 0, 5, false}, {0, 2, 5, true}};
    CHECK(backend_forward(b, gap2, 2, tmp) == M40LLM_ERR_INVALID_ARG);
    CHECK(b->ops->seq_len(b, 0) == 0); /* a rejected batch changes nothing */
    CHECK(backend_forward(b, gap2, 0, tmp) == M40LLM_ERR_INVALID_ARG);
    CHECK(backend_forward(b, gap2, 1, NULL) == 0); /* no logits wanted, no buffer needed */
    CHECK(b->ops->seq_len(b, 0) == 1);
    CHECK(backend_forward(b, &(backend_entry){0, 1, 5, true}, 1, NULL) == M40LLM_ERR_INVALID_ARG);
    /* the context fills exactly at n_ctx */
    CHECK(b->ops->seq_clear(b, 0) == 0);
    backend_entry full[64];
    for (int i = 0; i < 64; i++) full[i] = (backend_entry){0, i, 5, false};
    CHECK(backend_forward(b, full, 32, NULL) == 0 && backend_forward(b, full + 32, 32, NULL) == 0);
    CHECK(b->ops->seq_len(b, 0) == 64);
    bad = (backend_entry){0, 64, 5, true};
    CHECK(backend_forward(b, &bad, 1, tmp) == M40LLM_ERR_CONTEXT_FULL);
    CHECK(b->ops->mem_used(b) > 0);

    /* forward_argmax agrees with the argmax of forward's logits */
    CHECK(b->ops->seq_clear(b, 1) == 0);
    int32_t ids[T];
    for (int i = 0; i < T; i++) e[i] = (backend_entry){1, i, tok_a[i], i % 7 == 0};
    CHECK(b->ops->forward_argmax(b, e, T, ids) == 0);
    int k = 0, agree = 1;
    for (int i = 0; i < T; i += 7, k++) {
        const float *l = one + (size_t)i * V;
        int best = 0;
        for (int t = 1; t < V; t++)
            if (l[t] > l[best]) best = t;
        agree &= ids[k] == best;
    }
    CHECK(agree);
    backend_destroy(b);

    /* a KV cache whose size overflows size_t is refused as out of memory,
     * naming the KV cache, before anything is allocated */
    model huge = *g_model;
    huge.cfg.n_layer = 1 << 30;
    huge.cfg.n_head = huge.cfg.n_head_kv = 1 << 15;
    huge.cfg.head_dim = 1 << 15;
    backend_params hp = {.n_ctx = 0x7fffffff,
                         .n_seq_max = 1,
                         .n_batch_max = 1,
                         .n_threads = 1,
                         .kv_type = BACKEND_KV_F32};
    b = NULL;
    CHECK(backend_cpu_create(&huge, &hp, &b) == M40LLM_ERR_OOM && b == NULL);
    CHECKF(strstr(m40llm_last_error(), "KV cache") != NULL, "%s", m40llm_last_error());

    free(one), free(steps), free(uneven), free(other), free(mix), free(tmp);
    model_free(g_model);
    return check_summary("test_batching");
}
