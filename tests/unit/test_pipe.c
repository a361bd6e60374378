/* The layer split (backend_pipe.c) with CPU stages: on every architecture
 * fixture kind (dense llama, post-norms and soft-caps, fused phi3, mixture
 * of experts) a split into 2 and into one stage per layer gives logits
 * bit-identical to the unsplit CPU backend, for decode, a prompt chunk, a
 * batch mixing sequences, a batch that revisits a position, forward_argmax
 * and the paged layout; a failing or abandoned call leaves every stage's
 * sequences cut back alike; bad stage lists are refused; and the engine
 * runs over a split backend with the answers of the unsplit one. */
#include <string.h>

#include "backend.h"
#include "backend_pipe.h"
#include "check.h"
#include "engine/engine.h"
#include "model.h"
#include "pipe_script.h"

static backend_params params(bool paged) {
    backend_params p = {.n_ctx = CTX,
                        .n_seq_max = NSEQ,
                        .n_batch_max = NB,
                        .n_threads = 2,
                        .kv_type = BACKEND_KV_F32,
                        .paged = paged};
    return p;
}

static void same_as_unsplit(const char *rel) {
    char path[1024];
    check_fixture(rel, path, sizeof path);
    model *m = NULL;
    if (model_load(path, &m)) {
        CHECKF(0, "%s: %s", path, m40llm_last_error());
        return;
    }
    const int V = m->cfg.n_vocab, L = m->cfg.n_layer;
    float *ref = malloc(sizeof(float) * 16 * V);
    int32_t rid[NSEQ];
    for (int paged = 0; paged < 2; paged++) {
        backend_params p = params(paged);
        backend *one = NULL;
        CHECK(backend_cpu_create(m, &p, &one) == M40LLM_OK);
        const int rows = script(one, V, ref, rid);
        for (int ns = 2;; ns = L) { /* two halves, then a stage per layer */
            backend_stage st[BACKEND_PIPE_MAX_STAGES];
            script_stages(L, ns, -1, st);
            backend *b = NULL;
            CHECKF(backend_pipe_create(m, &p, st, ns, &b) == M40LLM_OK, "pipe of %d: %s", ns,
                   m40llm_last_error());
            if (b) {
                char what[160];
                snprintf(what, sizeof what, "%s, %d stages%s", rel, ns, paged ? ", paged" : "");
                script_check(b, one, V, ref, rid, rows, what);
                CHECK(backend_pipe_stages(b, NULL) == ns);
                backend_destroy(b);
            }
            if (ns >= L) break;
        }
        backend_destroy(one);
    }
    printf("  %-28s %d layers: 2 and %d stages = unsplit\n", rel, L, L);
    free(ref);
    model_free(m);
}

static int g_calls;
static bool abort_third(void *ctx) {
    (void)ctx;
    return ++g_calls == 2; /* at the second stage's layer */
}

/* failures leave every stage's sequences alike; bad stage lists */
static void failures(void) {
    char path[1024];
    check_fixture("reference/synth-q8_0.gguf", path, sizeof path);
    model *m = NULL;
    if (model_load(path, &m)) return;
    backend_stage two[2];
    script_stages(m->cfg.n_layer, 2, -1, two);
    backend_params p = params(false);
    backend *b = NULL;
    CHECK(backend_pipe_create(m, &p, two, 2, &b) == M40LLM_OK);
    if (b) {
        const backend *st[2];
        CHECK(backend_pipe_stages(b, st) == 2);
        backend_entry e[4];
        for (int i = 0; i < 4; i++) e[i] = (backend_entry){0, i, 20 + i, i == 3};
        float *lg = malloc(sizeof(float) * m->cfg.n_vocab);
        CHECK(backend_forward(b, e, 4, lg) == M40LLM_OK && b->ops->seq_len(b, 0) == 4);
        /* abandoned in the second stage: both stages back at position 4 */
        for (int i = 0; i < 4; i++) e[i] = (backend_entry){0, 4 + i, 30 + i, i == 3};
        g_calls = 0;
        backend_set_abort(b, abort_third, NULL);
        CHECK(backend_forward(b, e, 4, lg) == M40LLM_ERR_CANCELLED);
        CHECKF(st[0]->ops->seq_len(st[0], 0) == 4 && st[1]->ops->seq_len(st[1], 0) == 4,
               "after an abandoned call: lengths %d, %d", st[0]->ops->seq_len(st[0], 0),
               st[1]->ops->seq_len(st[1], 0));
        backend_set_abort(b, NULL, NULL);
        CHECKF(strstr(m40llm_last_error(), "stage 2") != NULL, "%s", m40llm_last_error());
        /* clear and capacity: every stage */
        CHECK(b->ops->seq_clear(b, 1) == M40LLM_OK);
        CHECK(st[0]->ops->seq_len(st[0], 1) == 0 && st[1]->ops->seq_len(st[1], 1) == 0);
        CHECK(b->ops->seq_capacity(b, 0) == st[1]->ops->seq_capacity(st[1], 0));
        /* cut: every stage */
        CHECK(b->ops->seq_cut(b, 0, 2) == M40LLM_OK && st[1]->ops->seq_len(st[1], 0) == 2);
        CHECK(b->ops->seq_cut(b, 0, 3) == M40LLM_ERR_INVALID_ARG);
        /* a bad batch is refused before any stage runs */
        e[0] = (backend_entry){0, 9, 1, true};
        CHECK(backend_forward(b, e, 1, lg) == M40LLM_ERR_INVALID_ARG);
        CHECK(st[0]->ops->seq_len(st[0], 0) == 2 && st[1]->ops->seq_len(st[1], 0) == 2);
        free(lg);
        backend_destroy(b);
    }
    /* stage lists that do not cover the layers in order */
    p = params(false);
    const backend_stage gap[2] = {{-1, 0, 1}, {-1, 1, 1}}, late[1] = {{-1, 1, 2}},
                        mixed[2] = {{-1, 0, 1}, {0, 1, 2}}, short1[1] = {{-1, 0, 1}};
    const backend_stage *bad[4] = {gap, late, mixed, short1};
    const int nbad[4] = {2, 1, 2, 1};
    for (int i = 0; i < 4; i++) {
        b = NULL;
        CHECKF(backend_pipe_create(m, &p, bad[i], nbad[i], &b) == M40LLM_ERR_INVALID_ARG && !b,
               "bad stage list %d refused", i);
    }
    /* a stage's own checks: forward on a stage, stage calls without buffers */
    p.layer_begin = 1;
    p.layer_end = 2;
    CHECK(backend_cpu_create(m, &p, &b) == M40LLM_OK);
    if (b) {
        backend_entry e = {0, 0, 3, true};
        float lg[1];
        CHECK(backend_forward(b, &e, 1, lg) == M40LLM_ERR_INVALID_ARG);
        CHECK(b->ops->forward_stage(b, &e, 1, NULL, NULL, NULL, NULL) == M40LLM_ERR_INVALID_ARG);
        backend_destroy(b);
    }
    p.layer_end = 5;
    CHECK(backend_cpu_create(m, &p, &b) == M40LLM_ERR_INVALID_ARG);
    model_free(m);
}

/* the engine over a split backend: greedy answers of the unsplit one */
static void engine_over_split(void) {
    char path[1024];
    check_fixture("arch/qwen3moe-q8_0.gguf", path, sizeof path);
    char out[2][5][64];
    for (int k = 0; k < 2; k++) {
        model *m = NULL;
        m40llm_model *mm = NULL;
        if (model_load(path, &m) || engine_model_wrap(m, path, &mm)) {
            CHECKF(0, "%s: %s", path, m40llm_last_error());
            return;
        }
        backend_params p = params(true);
        p.n_batch_max = 64;
        p.n_seq_max = 4;
        backend *b = NULL;
        const backend_stage st[2] = {{-1, 0, 1}, {-1, 1, m->cfg.n_layer}};
        int rc = k ? backend_pipe_create(m, &p, st, 2, &b) : backend_cpu_create(m, &p, &b);
        m40llm_engine *e = NULL;
        if (!rc) rc = engine_create_on(mm, b, NULL, &e);
        CHECKF(rc == M40LLM_OK, "engine %d: %s", k, m40llm_last_error());
        m40llm_request_params rp[4];
        int32_t prompts[4][10];
        m40llm_request *r[4];
        for (int i = 0; i < 4; i++) {
            for (int t = 0; t < 10; t++) prompts[i][t] = 260 + (i * 37 + t * 11) % 200;
            m40llm_request_default_params(&rp[i]);
            rp[i].prompt = prompts[i];
            rp[i].n_prompt = 10;
            rp[i].sampling.temperature = 0;
            rp[i].max_tokens = 8;
            rp[i].ignore_eos = 1;
        }
        if (!rc) rc = m40llm_submit_many(e, rp, 4, r);
        for (int i = 0; i < 4 && !rc; i++) {
            m40llm_request_wait(r[i], 60000);
            size_t n = 0;
            char *t = m40llm_request_text(r[i], &n);
            snprintf(out[k][i], sizeof out[k][i], "%.*s", (int)n, t ? t : "");
            free(t);
            m40llm_request_free(r[i]);
        }
        /* request 0's prompt again: 9 positions from a copy of the block
         * request 0 filled (block_copy through every stage) */
        m40llm_request *again = NULL;
        if (!rc) rc = m40llm_submit(e, &rp[0], &again);
        if (!rc) {
            m40llm_request_wait(again, 60000);
            m40llm_request_result res;
            m40llm_request_get_result(again, &res);
            CHECKF(res.n_cached == 9, "engine %d: %d positions reused of request 0's 9", k,
                   res.n_cached);
            size_t n = 0;
            char *t = m40llm_request_text(again, &n);
            snprintf(out[k][4], sizeof out[k][4], "%.*s", (int)n, t ? t : "");
            free(t);
            m40llm_request_free(again);
        }
        m40llm_engine_free(e);
        m40llm_model_free(mm);
    }
    for (int i = 0; i < 5; i++)
        CHECKF(!strcmp(out[0][i], out[1][i]), "engine request %d: split '%s' vs '%s'", i, out[1][i],
               out[0][i]);
    CHECKF(!strcmp(out[0][0], out[0][4]), "request 0 again: '%s' vs '%s'", out[0][4], out[0][0]);
}

/* the one rule that cuts batches: at a revisited position, and at most
 * max_n entries (what a CUDA backend without cuBLAS runs in one step; a
 * split cuts as its stages would) */
static void parts(void) {
    backend_entry e[10];
    e[0] = (backend_entry){0, 5, 1, false};
    for (int i = 0; i < 8; i++) e[1 + i] = (backend_entry){1, i, 1, false};
    e[9] = (backend_entry){0, 3, 1, true};
    CHECK(backend_batch_part(e, 0, 10, 10) == 9 && backend_batch_part(e, 9, 10, 10) == 10);
    CHECK(backend_batch_part(e, 0, 10, 8) == 8 && backend_batch_part(e, 8, 10, 8) == 10);
    CHECK(backend_batch_part(e, 1, 10, 3) == 4);
}

int main(void) {
    parts();
    static const char *const cases[] = {"reference/synth-q8_0.gguf", "arch/gemma2-q8_0.gguf",
                                        "arch/phi3-q8_0.gguf", "arch/qwen3moe-q8_0.gguf",
                                        "arch/mixtral-f32.gguf"};
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) same_as_unsplit(cases[i]);
    failures();
    engine_over_split();
    return check_summary("test_pipe");
}
