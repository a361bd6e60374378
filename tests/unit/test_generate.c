/* The generation loop on a tiny synthetic model (SentencePiece vocab, random
 * weights): token budget, cancellation (flag and callback), prefix reuse
 * giving the same tokens as a fresh run, chunked prefill, stop strings,
 * context limits and bad prompts. */
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "backend.h"
#include "check.h"
#include "generate.h"
#include "m40llm.h"
#include "model.h"
#include "synth.h"
#include "tokenizer.h"

static model *g_model;
static tokenizer *g_tok;

typedef struct collect {
    char text[8192]; /* everything emitted */
    size_t len;
    int pieces;
    int stop_after;   /* > 0: return false at this piece */
    int cancel_after; /* > 0: set *cancel at this piece */
    volatile sig_atomic_t *cancel;
} collect;

static bool on_text(void *ctx, const char *t, size_t n) {
    collect *c = ctx;
    if (c->len + n < sizeof c->text) {
        memcpy(c->text + c->len, t, n);
        c->len += n;
        c->text[c->len] = '\0';
    }
    c->pieces++;
    if (c->cancel_after > 0 && c->pieces == c->cancel_after) *c->cancel = 1;
    return !(c->stop_after > 0 && c->pieces == c->stop_after);
}

static backend *make_backend(int n_ctx, int n_batch) {
    backend_params p = {.n_ctx = n_ctx,
                        .n_seq_max = 1,
                        .n_batch_max = n_batch,
                        .n_threads = 1,
                        .kv_type = BACKEND_KV_F32};
    backend *b = NULL;
    int rc = backend_cpu_create(g_model, &p, &b);
    CHECKF(rc == M40LLM_OK, "backend_cpu_create: %s", m40llm_last_error());
    return b;
}

/* A fixed prompt of ordinary pieces (ids past the control and byte tokens). */
static void make_prompt(int32_t *p, int n, uint32_t seed) {
    for (int i = 0; i < n; i++) {
        seed = seed * 1664525u + 1013904223u;
        p[i] = 259 + (int32_t)((seed >> 8) % 250);
    }
}

static gen_params greedy(int max_tokens) {
    gen_params p = gen_default_params();
    p.sampling.temp = 0;
    p.max_tokens = max_tokens;
    return p;
}

/* Generated tokens = history after the prompt, plus nothing for the last
 * sampled one (not evaluated); compare histories instead. */
static int run_fresh(int n_batch, const int32_t *prompt, int n, int max, int32_t *hist_out,
                     gen_stats *st, collect *c) {
    backend *b = make_backend(256, n_batch);
    gen_session *s = NULL;
    CHECK(gen_session_create(b, g_tok, 0, &s) == M40LLM_OK);
    gen_params p = greedy(max);
    int rc = gen_generate(s, prompt, n, &p, on_text, c, st);
    int nh = 0;
    const int32_t *h = gen_session_tokens(s, &nh);
    memcpy(hist_out, h, (size_t)nh * sizeof *h);
    gen_session_free(s);
    backend_destroy(b);
    return rc == M40LLM_OK ? nh : -1;
}

static void test_budget_and_chunks(void) {
    int32_t prompt[20], h1[256], h2[256];
    make_prompt(prompt, 20, 7);
    gen_stats s1, s2;
    collect c1 = {0}, c2 = {0};
    int n1 = run_fresh(64, prompt, 20, 10, h1, &s1, &c1);
    int n2 = run_fresh(8, prompt, 20, 10, h2, &s2, &c2); /* prefill in 3 chunks */
    CHECKF(s1.reason == GEN_STOP_LENGTH && s1.n_gen == 10, "reason %s n_gen %d",
           gen_stop_reason_str(s1.reason), s1.n_gen);
    CHECK(s1.n_prompt == 20 && s1.n_prompt_eval == 20 && s1.n_reused == 0);
    CHECK(n1 == 20 + 9); /* the 10th token is sampled, not evaluated */
    CHECK(n1 == n2 && !memcmp(h1, h2, (size_t)n1 * sizeof *h1));
    CHECK(c1.len == c2.len && !strcmp(c1.text, c2.text));
    CHECK(c1.len > 0);
    CHECK(s1.ttft_s > 0 && s1.prompt_tps > 0 && s1.gen_tps > 0);
    CHECK(!strcmp(gen_finish_reason(s1.reason), "length"));
}

static void test_prefix_reuse(void) {
    int32_t prompt[40], fresh_h[256];
    make_prompt(prompt, 16, 11);
    backend *b = make_backend(256, 64);
    gen_session *s = NULL;
    CHECK(gen_session_create(b, g_tok, 0, &s) == M40LLM_OK);
    gen_params p = greedy(6);
    gen_stats st;
    collect c = {0};
    CHECK(gen_generate(s, prompt, 16, &p, on_text, &c, &st) == M40LLM_OK);
    int nh = 0;
    const int32_t *h = gen_session_tokens(s, &nh);
    CHECK(nh == 16 + 5);
    /* Second turn: the whole history, then new tokens. */
    int32_t turn2[64];
    memcpy(turn2, h, (size_t)nh * sizeof *h);
    make_prompt(turn2 + nh, 7, 99);
    int n2 = nh + 7;
    collect c2 = {0}, c3 = {0};
    CHECK(gen_generate(s, turn2, n2, &p, on_text, &c2, &st) == M40LLM_OK);
    CHECKF(st.n_reused == nh && st.n_prompt_eval == 7, "reused %d evaluated %d", st.n_reused,
           st.n_prompt_eval);
    const int32_t *h2 = gen_session_tokens(s, &nh);
    int32_t reuse_h[256];
    memcpy(reuse_h, h2, (size_t)nh * sizeof *h2);
    gen_stats fs;
    int fn = run_fresh(64, turn2, n2, 6, fresh_h, &fs, &c3);
    CHECK(fn == nh && !memcmp(fresh_h, reuse_h, (size_t)nh * sizeof *reuse_h));
    CHECKF(!strcmp(c2.text, c3.text), "reuse '%s' fresh '%s'", c2.text, c3.text);

    /* The same prompt again: only the last token is evaluated again. */
    CHECK(gen_generate(s, turn2, n2, &p, NULL, NULL, &st) == M40LLM_OK);
    CHECK(st.n_reused == n2 - 1 && st.n_prompt_eval == 1);
    /* A prompt diverging early: the cache is truncated at the divergence. */
    turn2[3] = turn2[3] == 300 ? 301 : 300;
    CHECK(gen_generate(s, turn2, n2, &p, NULL, NULL, &st) == M40LLM_OK);
    CHECK(st.n_reused == 3 && st.n_prompt_eval == n2 - 3);
    /* Reset forgets everything. */
    gen_session_reset(s);
    CHECK(gen_generate(s, turn2, n2, &p, NULL, NULL, &st) == M40LLM_OK);
    CHECK(st.n_reused == 0 && st.n_prompt_eval == n2);
    gen_session_free(s);
    backend_destroy(b);
}

static void test_cancel(void) {
    int32_t prompt[12];
    make_prompt(prompt, 12, 3);
    backend *b = make_backend(256, 64);
    gen_session *s = NULL;
    CHECK(gen_session_create(b, g_tok, 0, &s) == M40LLM_OK);
    volatile sig_atomic_t flag = 0;
    gen_params p = greedy(50);
    p.cancel = &flag;
    gen_stats st;
    /* The flag set while the third piece is shown: stops before the next token. */
    collect c = {0};
    c.cancel = &flag;
    c.cancel_after = 3;
    CHECK(gen_generate(s, prompt, 12, &p, on_text, &c, &st) == M40LLM_OK);
    CHECKF(st.reason == GEN_STOP_CANCELLED && st.n_gen <= 4, "reason %s n_gen %d",
           gen_stop_reason_str(st.reason), st.n_gen);
    /* Already set: nothing is evaluated. */
    CHECK(gen_generate(s, prompt, 12, &p, on_text, &c, &st) == M40LLM_OK);
    CHECK(st.reason == GEN_STOP_CANCELLED && st.n_gen == 0);
    flag = 0;
    /* The callback refusing the second piece. */
    collect c2 = {0};
    c2.stop_after = 2;
    CHECK(gen_generate(s, prompt, 12, &p, on_text, &c2, &st) == M40LLM_OK);
    CHECK(st.reason == GEN_STOP_CANCELLED && c2.pieces == 2 && st.n_gen < 50);
    gen_session_free(s);
    backend_destroy(b);
}

/* Abandons a forward call on the `after`-th poll (polls come before each layer). */
typedef struct abort_count {
    int polls, after;
} abort_count;
static bool abort_after(void *ctx) {
    abort_count *a = ctx;
    return ++a->polls >= a->after;
}

/* A forward abandoned between layers (Ctrl-C during a long prefill chunk)
 * returns CANCELLED and leaves the cache as it was before the positions it
 * overwrote: continuing from there gives the logits of an uninterrupted run. */
static void test_abort_between_layers(void) {
    const int V = g_model->cfg.n_vocab;
    int32_t prompt[40];
    make_prompt(prompt, 40, 5);
    backend_entry e[40];
    for (int i = 0; i < 40; i++) e[i] = (backend_entry){0, i, prompt[i], i == 39};
    float *want = malloc((size_t)V * sizeof *want), *got = malloc((size_t)V * sizeof *got);
    backend *ref = make_backend(256, 64), *b = make_backend(256, 64);
    CHECK(backend_forward(ref, e, 40, want) == M40LLM_OK);

    CHECK(backend_forward(b, e, 30, NULL) == M40LLM_OK); /* 0..29 cached */
    abort_count a = {0, 2};                              /* after layer 0 wrote */
    backend_set_abort(b, abort_after, &a);
    /* a rewind to 20 with other tokens: layer 0 overwrites 20..39 */
    backend_entry alt[20];
    for (int i = 0; i < 20; i++) alt[i] = (backend_entry){0, 20 + i, prompt[i], i == 19};
    int rc = backend_forward(b, alt, 20, got);
    CHECKF(rc == M40LLM_ERR_CANCELLED, "rc %d: %s", rc, m40llm_last_error());
    CHECK(a.polls == 2);
    CHECKF(b->ops->seq_len(b, 0) == 20, "seq_len %d", b->ops->seq_len(b, 0));
    /* appending at the end: nothing is cut */
    a = (abort_count){0, 1};
    CHECK(backend_forward(b, e + 20, 5, NULL) == M40LLM_ERR_CANCELLED);
    CHECK(b->ops->seq_len(b, 0) == 20);
    backend_set_abort(b, NULL, NULL);
    CHECK(backend_forward(b, e + 20, 20, got) == M40LLM_OK);
    CHECK(!memcmp(want, got, (size_t)V * sizeof *got)); /* the CPU backend is bit-exact */
    /* a batch that rewinds inside itself runs in two parts (35..39, then
     * 37..41): abandoned in the second, the cut reaches back to the call's
     * first position, 35, not the second part's */
    backend_entry two[10];
    for (int i = 0; i < 5; i++) two[i] = (backend_entry){0, 35 + i, prompt[i], false};
    for (int i = 0; i < 5; i++) two[5 + i] = (backend_entry){0, 37 + i, prompt[i], false};
    a = (abort_count){0, 2 + 2}; /* both layers of part one, layer 0 of part two */
    backend_set_abort(b, abort_after, &a);
    CHECK(backend_forward(b, two, 10, NULL) == M40LLM_ERR_CANCELLED);
    CHECKF(b->ops->seq_len(b, 0) == 35, "seq_len %d", b->ops->seq_len(b, 0));
    backend_set_abort(b, NULL, NULL);
    CHECK(backend_forward(b, e + 35, 5, got) == M40LLM_OK);
    CHECK(!memcmp(want, got, (size_t)V * sizeof *got));
    backend_destroy(ref);
    backend_destroy(b);
    free(want);
    free(got);
}

static void test_stop_string(void) {
    int32_t prompt[10], h[256];
    make_prompt(prompt, 10, 5);
    gen_stats st;
    collect full = {0};
    run_fresh(64, prompt, 10, 24, h, &st, &full);
    /* A stop string taken from the middle of the unstopped output. */
    CHECKF(full.len >= 6, "output '%s' too short", full.text);
    if (full.len < 6) return;
    size_t at = full.len / 2;
    while (at > 0 && ((unsigned char)full.text[at] & 0xC0) == 0x80) at--;
    char stop[4] = {0};
    size_t sl = 0;
    while (sl < 2 && at + sl < full.len) {
        stop[sl] = full.text[at + sl];
        sl++;
    }
    while (at + sl < full.len && ((unsigned char)full.text[at + sl] & 0xC0) == 0x80 && sl < 3) {
        stop[sl] = full.text[at + sl];
        sl++;
    }
    const char *first = strstr(full.text, stop);
    size_t want = (size_t)(first - full.text);
    backend *b = make_backend(256, 64);
    gen_session *s = NULL;
    CHECK(gen_session_create(b, g_tok, 0, &s) == M40LLM_OK);
    gen_params p = greedy(24);
    const char *stops[] = {"no such text \x01", stop};
    p.stops = stops;
    p.n_stops = 2;
    collect c = {0};
    CHECK(gen_generate(s, prompt, 10, &p, on_text, &c, &st) == M40LLM_OK);
    CHECKF(st.reason == GEN_STOP_STRING, "reason %s", gen_stop_reason_str(st.reason));
    CHECKF(c.len == want && !memcmp(c.text, full.text, want), "got '%s' want %zu bytes of '%s'",
           c.text, want, full.text);
    CHECK(!strstr(c.text, stop));
    gen_session_free(s);
    backend_destroy(b);
}

static void test_context(void) {
    int32_t prompt[40];
    make_prompt(prompt, 40, 9);
    backend *b = make_backend(32, 16);
    gen_session *s = NULL;
    CHECK(gen_session_create(b, g_tok, 0, &s) == M40LLM_OK);
    gen_params p = greedy(-1);
    gen_stats st;
    int rc = gen_generate(s, prompt, 40, &p, NULL, NULL, &st);
    const char *msg = m40llm_last_error();
    CHECKF(rc == M40LLM_ERR_CONTEXT_FULL && strstr(msg, "40") && strstr(msg, "32"), "rc %d '%s'",
           rc, msg);
    /* 30 tokens in a 32-token context: three tokens, then "context". */
    rc = gen_generate(s, prompt, 30, &p, NULL, NULL, &st);
    CHECK(rc == M40LLM_OK);
    CHECKF(st.reason == GEN_STOP_CONTEXT && st.n_gen == 3, "reason %s n_gen %d",
           gen_stop_reason_str(st.reason), st.n_gen);
    CHECK(!strcmp(gen_finish_reason(st.reason), "length"));
    /* A full-context prompt still yields one token. */
    rc = gen_generate(s, prompt, 32, &p, NULL, NULL, &st);
    CHECK(rc == M40LLM_OK && st.reason == GEN_STOP_CONTEXT && st.n_gen == 1);
    /* Bad prompts. */
    CHECK(gen_generate(s, prompt, 0, &p, NULL, NULL, &st) == M40LLM_ERR_INVALID_ARG);
    int32_t bad[2] = {5, 100000};
    CHECK(gen_generate(s, bad, 2, &p, NULL, NULL, &st) == M40LLM_ERR_INVALID_ARG);
    gen_session_free(s);
    backend_destroy(b);
}

static void test_sampled(void) {
    /* Temperature sampling: the same seed gives the same text. */
    int32_t prompt[8];
    make_prompt(prompt, 8, 21);
    backend *b = make_backend(128, 64);
    gen_session *s = NULL;
    CHECK(gen_session_create(b, g_tok, 0, &s) == M40LLM_OK);
    gen_params p = gen_default_params();
    p.sampling.temp = 1.0f;
    p.sampling.seed = 42;
    p.max_tokens = 12;
    collect a = {0}, c = {0};
    gen_stats st;
    CHECK(gen_generate(s, prompt, 8, &p, on_text, &a, &st) == M40LLM_OK);
    CHECK(gen_generate(s, prompt, 8, &p, on_text, &c, &st) == M40LLM_OK);
    CHECK(a.len == c.len && !strcmp(a.text, c.text));
    gen_session_free(s);
    backend_destroy(b);
}

/* A model whose embedding has more rows than the tokenizer has tokens (GGUFs
 * pad it): the padding ids have no text and are never generated, sampled or
 * greedy. The tokenizer here is a 300-token synthetic vocabulary; the model
 * has 512 rows. */
static void test_padded_vocab(void) {
    synth_config c;
    synth_default_config(&c);
    c.n_layer = 1;
    c.n_embd = 32;
    c.n_head = c.n_head_kv = 2;
    c.n_ff = 32;
    c.n_vocab = 300;
    c.n_threads = 1;
    char path[] = "/tmp/m40llm-test-generate-XXXXXX";
    int fd = mkstemp(path);
    CHECK(fd >= 0);
    if (fd < 0) return;
    close(fd);
    gguf_file *g = NULL;
    tokenizer *small = NULL;
    int rc = synth_write(&c, path, NULL);
    if (!rc) rc = gguf_open(path, &g);
    if (!rc) rc = tokenizer_load(g, &small);
    CHECKF(rc == M40LLM_OK, "small tokenizer: %s", m40llm_last_error());
    CHECK(!small || tokenizer_n_vocab(small) == 300);
    if (!rc && g_model->cfg.n_vocab > 300) {
        int32_t prompt[8];
        for (int i = 0; i < 8; i++) prompt[i] = 259 + i * 5;
        backend *b = make_backend(128, 64);
        gen_session *s = NULL;
        CHECK(gen_session_create(b, small, 0, &s) == M40LLM_OK);
        for (int pass = 0; pass < 2 && s; pass++) {
            gen_params p = gen_default_params();
            p.sampling.temp = pass ? 0.0f : 3.0f; /* flat: padding ids would come up */
            p.sampling.top_k = 0;
            p.sampling.top_p = 1.0f;
            p.sampling.min_p = 0.0f;
            p.sampling.seed = 5;
            p.max_tokens = 60;
            collect out = {0};
            gen_stats st;
            rc = gen_generate(s, prompt, 8, &p, on_text, &out, &st);
            CHECKF(rc == M40LLM_OK, "pass %d: %s", pass, m40llm_last_error());
            int n = 0, bad = 0;
            const int32_t *ids = gen_session_tokens(s, &n);
            for (int i = 0; i < n; i++) bad += ids[i] >= 300;
            CHECKF(bad == 0, "pass %d: %d generated ids outside the 300-token vocabulary", pass,
                   bad);
        }
        gen_session_free(s);
        backend_destroy(b);
    }
    tokenizer_free(small);
    gguf_close(g);
    unlink(path);
}

int main(void) {
    char path[512];
    check_fixture("reference/synth-q8_0.gguf", path, sizeof path);
    if (model_load(path, &g_model) != M40LLM_OK) SKIP("%s: %s", path, m40llm_last_error());
    int rc = tokenizer_load(g_model->gguf, &g_tok);
    CHECKF(rc == M40LLM_OK, "tokenizer_load: %s", m40llm_last_error());
    if (rc) return check_summary("test_generate");
    test_budget_and_chunks();
    test_prefix_reuse();
    test_cancel();
    test_abort_between_layers();
    test_stop_string();
    test_context();
    test_sampled();
    test_padded_vocab();
    tokenizer_free(g_tok);
    model_free(g_model);
    return check_summary("test_generate");
}
