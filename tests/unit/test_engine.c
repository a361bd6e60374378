/* The serving engine (include/m40llm.h) on the CPU backend with a tiny
 * synthetic model: one request gives what the single-sequence generation
 * loop gives; many concurrent requests give exactly what each gives alone
 * (batching, chunked prefill, queueing, preemption with a tiny KV pool,
 * prefix reuse); cancellation, queue limits, bad requests, stop strings,
 * log-probabilities, shutdown with requests in flight; KV blocks all back
 * when idle. The batching cases again with a mixture-of-experts model (the
 * qwen3moe fixture of tests/fixtures/arch). */
#include <pthread.h>
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
#include "tokenizer.h"

#define MAXTOK 256

static char g_path[512];
static m40llm_model *g_mm;

typedef struct out {
    int32_t toks[MAXTOK];
    int n;
    char text[8192];
    size_t len;
    int finals; /* final events seen (must be 1) */
    m40llm_finish_reason finish;
    int cancel_after; /* > 0: return 0 at this token */
    float lp[MAXTOK]; /* chosen logprob */
    int top_ok;       /* top lists sorted, chosen within */
    int n_top_seen;
} out;

static int on_event(void *user, const m40llm_event *ev) {
    out *o = user;
    if (ev->text_len && o->len + ev->text_len < sizeof o->text) {
        memcpy(o->text + o->len, ev->text, ev->text_len);
        o->len += ev->text_len;
        o->text[o->len] = '\0';
    }
    if (ev->finish != M40LLM_FINISH_NONE) {
        o->finals++;
        o->finish = ev->finish;
        return 1;
    }
    if (o->n < MAXTOK) {
        o->lp[o->n] = ev->chosen.logprob;
        o->toks[o->n++] = ev->token;
    }
    if (ev->n_top > 0) {
        o->n_top_seen = ev->n_top;
        bool sorted = true;
        for (int i = 1; i < ev->n_top; i++) sorted &= ev->top[i - 1].logprob >= ev->top[i].logprob;
        o->top_ok +=
            sorted && ev->chosen.logprob <= ev->top[0].logprob + 1e-6f && ev->top[0].logprob <= 0;
    }
    return !(o->cancel_after > 0 && o->n >= o->cancel_after);
}

static void make_prompt(int32_t *p, int n, uint32_t seed) {
    for (int i = 0; i < n; i++) {
        seed = seed * 1664525u + 1013904223u;
        p[i] = 259 + (int32_t)((seed >> 8) % 250);
    }
}

static m40llm_engine *make_engine(int max_seqs, int max_batch, uint64_t kv_bytes, int n_ctx) {
    m40llm_engine_params p;
    m40llm_engine_default_params(&p);
    p.device = "cpu";
    p.n_threads = 2;
    p.n_ctx = n_ctx;
    p.max_seqs = max_seqs;
    p.max_batch_tokens = max_batch;
    p.kv_type = M40LLM_KV_F32;
    p.kv_bytes = kv_bytes;
    m40llm_engine *e = NULL;
    int rc = m40llm_engine_create(g_mm, &p, &e);
    CHECKF(rc == M40LLM_OK, "engine_create: %s", m40llm_last_error());
    return e;
}

/* Two sequences of 256 positions, no prefix cache: what an answer is
 * without reuse. */
static m40llm_engine *make_uncached_engine(void) {
    m40llm_engine_params ep;
    m40llm_engine_default_params(&ep);
    ep.device = "cpu";
    ep.n_threads = 2;
    ep.n_ctx = 256;
    ep.max_seqs = 2;
    ep.kv_type = M40LLM_KV_F32;
    ep.no_prefix_cache = 1;
    m40llm_engine *e = NULL;
    CHECK(m40llm_engine_create(g_mm, &ep, &e) == M40LLM_OK);
    return e;
}

static m40llm_request_params greedy(const int32_t *prompt, int n, int max_tokens, out *o) {
    m40llm_request_params p;
    m40llm_request_default_params(&p);
    p.prompt = prompt;
    p.n_prompt = (size_t)n;
    p.sampling.temperature = 0;
    p.max_tokens = max_tokens;
    p.on_event = on_event;
    p.user = o;
    return p;
}

static m40llm_request_result run_one(m40llm_engine *e, const m40llm_request_params *p) {
    m40llm_request *r = NULL;
    m40llm_request_result res;
    memset(&res, 0, sizeof res);
    int rc = m40llm_submit(e, p, &r);
    CHECKF(rc == M40LLM_OK, "submit: %s", m40llm_last_error());
    if (rc) return res;
    CHECK(m40llm_request_wait(r, 60000) == 1);
    m40llm_request_get_result(r, &res);
    size_t tl = 0;
    char *t = m40llm_request_text(r, &tl);
    out *o = p->user;
    CHECKF(t && tl == o->len && !memcmp(t, o->text, tl), "poll text = streamed text");
    free(t);
    m40llm_request_free(r);
    return res;
}

static void wait_idle(m40llm_engine *e, m40llm_engine_stats *st) {
    for (int i = 0; i < 2000; i++) {
        m40llm_engine_get_stats(e, st);
        if (st->running == 0 && st->waiting == 0 && st->kv_blocks_used == 0) return;
        usleep(1000);
    }
}

/* The engine's one request = gen_generate on a fixed-layout backend. */
static void test_matches_generate(void) {
    int32_t prompt[30];
    make_prompt(prompt, 30, 3);
    /* reference: the single-sequence loop */
    model *m = NULL;
    tokenizer *tok = NULL;
    CHECK(model_load(g_path, &m) == M40LLM_OK);
    CHECK(tokenizer_load(m->gguf, &tok) == M40LLM_OK);
    backend_params bp = {
        .n_ctx = 256, .n_seq_max = 1, .n_batch_max = 64, .n_threads = 2, .kv_type = BACKEND_KV_F32};
    backend *b = NULL;
    CHECK(backend_cpu_create(m, &bp, &b) == M40LLM_OK);
    gen_session *s = NULL;
    CHECK(gen_session_create(b, tok, 0, &s) == M40LLM_OK);
    gen_params gp = gen_default_params();
    gp.sampling.temp = 0;
    gp.max_tokens = 20;
    gen_stats gs;
    CHECK(gen_generate(s, prompt, 30, &gp, NULL, NULL, &gs) == M40LLM_OK);
    int nh = 0;
    const int32_t *h = gen_session_tokens(s, &nh);

    m40llm_engine *e = make_engine(4, 64, 0, 256);
    out o = {0};
    m40llm_request_params p = greedy(prompt, 30, 20, &o);
    m40llm_request_result res = run_one(e, &p);
    CHECKF(res.finish == M40LLM_FINISH_LENGTH && res.n_generated == 20 && o.n == 20,
           "finish %d n %d", res.finish, res.n_generated);
    CHECK(o.finals == 1 && o.finish == M40LLM_FINISH_LENGTH);
    /* the loop's history holds the first 19 generated tokens (the 20th is not evaluated) */
    CHECK(nh == 30 + 19 && !memcmp(h + 30, o.toks, 19 * sizeof *h));
    CHECK(res.n_prompt == 30 && res.n_cached == 0);
    CHECK(res.ttft_s > 0 && res.total_s >= res.ttft_s && res.queue_s >= 0);
    m40llm_engine_stats st;
    wait_idle(e, &st);
    CHECKF(st.kv_blocks_used == 0 && st.running == 0, "idle: used %d running %d", st.kv_blocks_used,
           st.running);
    CHECK(st.finished[M40LLM_FINISH_LENGTH] == 1 && st.generated_tokens == 20);
    m40llm_engine_free(e);
    gen_session_free(s);
    backend_destroy(b);
    tokenizer_free(tok);
    model_free(m);
}

#define NREQ 24

typedef struct job {
    int32_t prompt[200];
    int n_prompt, max_tokens;
    out alone, batched;
    float temp;
} job;

static void make_jobs(job *jobs, int n) {
    for (int i = 0; i < n; i++) {
        job *j = &jobs[i];
        memset(j, 0, sizeof *j);
        j->n_prompt = 5 + (i * 37) % 150; /* some longer than the step budget: chunked */
        make_prompt(j->prompt, j->n_prompt, 100 + (uint32_t)i);
        if (i % 3 == 0) memcpy(j->prompt, jobs[0].prompt, 5 * sizeof(int32_t));
        j->max_tokens = 8 + (i * 5) % 24;
        j->temp = i % 4 == 3 ? 0.9f : 0; /* a few sampled with a seed */
    }
}

static m40llm_request_params job_params(job *j, out *o) {
    m40llm_request_params p = greedy(j->prompt, j->n_prompt, j->max_tokens, o);
    p.sampling.temperature = j->temp;
    p.sampling.seed = 1234;
    return p;
}

/* Many requests at once (queued beyond max_seqs, chunked prefill, tiny pool
 * forcing preemption) give each exactly its output alone. */
static void test_batch_invariance(uint64_t kv_bytes, int max_seqs, const char *what) {
    static job jobs[NREQ];
    make_jobs(jobs, NREQ);
    m40llm_engine *solo = make_engine(1, 64, 0, 256);
    for (int i = 0; i < NREQ; i++) {
        m40llm_request_params p = job_params(&jobs[i], &jobs[i].alone);
        run_one(solo, &p);
    }
    m40llm_engine_free(solo);

    m40llm_engine *e = make_engine(max_seqs, 64, kv_bytes, 256);
    m40llm_request *rs[NREQ];
    for (int i = 0; i < NREQ; i++) {
        m40llm_request_params p = job_params(&jobs[i], &jobs[i].batched);
        CHECKF(m40llm_submit(e, &p, &rs[i]) == M40LLM_OK, "submit: %s", m40llm_last_error());
    }
    int same = 0;
    for (int i = 0; i < NREQ; i++) {
        CHECK(m40llm_request_wait(rs[i], 120000) == 1);
        m40llm_request_result res;
        m40llm_request_get_result(rs[i], &res);
        const out *a = &jobs[i].alone, *b = &jobs[i].batched;
        bool eq = a->n == b->n && !memcmp(a->toks, b->toks, (size_t)a->n * sizeof *a->toks) &&
                  a->len == b->len && !strcmp(a->text, b->text) && a->finish == b->finish &&
                  b->finals == 1;
        CHECKF(eq, "%s: request %d (prompt %d, temp %.1f): %d tokens alone, %d batched", what, i,
               jobs[i].n_prompt, jobs[i].temp, a->n, b->n);
        same += eq;
        m40llm_request_free(rs[i]);
    }
    m40llm_engine_stats st;
    wait_idle(e, &st);
    printf("%s: %d/%d requests identical to alone; %llu steps, %llu preemptions, prefix hits "
           "%llu/%llu tokens\n",
           what, same, NREQ, (unsigned long long)st.steps, (unsigned long long)st.preemptions,
           (unsigned long long)st.prefix_hits, (unsigned long long)st.prefix_queries);
    CHECKF(st.kv_blocks_used == 0 && st.running == 0 && st.waiting == 0,
           "%s idle: used %d running %d waiting %d", what, st.kv_blocks_used, st.running,
           st.waiting);
    if (kv_bytes) CHECKF(st.preemptions > 0, "%s: the tiny pool preempted", what);
    m40llm_engine_free(e);
}

/* A second request with the same long prefix evaluates only the rest, and
 * answers as it would without the cache. */
static void test_prefix_cache(void) {
    int32_t a[120], b2[120];
    make_prompt(a, 120, 77);
    memcpy(b2, a, 100 * sizeof *a);
    make_prompt(b2 + 100, 20, 78);
    m40llm_engine *e = make_engine(4, 64, 0, 256);
    m40llm_engine_info info;
    m40llm_engine_get_info(e, &info);
    CHECK(info.kv_block == 16 && info.kv_blocks_total >= 4 * 16);
    out oa = {0}, ob = {0}, oc = {0};
    m40llm_request_params p = greedy(a, 120, 5, &oa);
    m40llm_request_result ra = run_one(e, &p);
    CHECK(ra.n_cached == 0);
    p = greedy(b2, 120, 5, &ob);
    m40llm_request_result rb = run_one(e, &p);
    /* 6 full blocks, then 4 positions of a's 7th block (a copy: a's full
     * block stays cached for prompts that go on as a's did) */
    CHECKF(rb.n_cached == 100,
           "cached %d of the 100 shared tokens (6 full blocks of 16, 4 of "
           "the 7th)",
           rb.n_cached);
    /* the same prompt again: 7 full blocks and 7 positions of the 8th from
     * the partial block b left (12 positions: 8 prompt, 4 generated) */
    p = greedy(b2, 120, 5, &oc);
    m40llm_request_result rc2 = run_one(e, &p);
    CHECKF(rc2.n_cached == 119, "cached %d of 120 (the last token is computed)", rc2.n_cached);
    CHECK(ob.n == oc.n && !memcmp(ob.toks, oc.toks, (size_t)ob.n * sizeof *ob.toks));
    m40llm_engine_stats st;
    wait_idle(e, &st);
    CHECK(st.prefix_hits == 100 + 119 && st.prefix_queries == 360);
    CHECK(st.kv_blocks_used == 0 && st.kv_blocks_cached > 0);
    m40llm_engine_free(e);
    /* without the cache: the same answer */
    m40llm_engine *e2 = make_uncached_engine();
    out od = {0};
    p = greedy(b2, 120, 5, &od);
    m40llm_request_result rd = run_one(e2, &p);
    CHECK(rd.n_cached == 0);
    CHECK(ob.n == od.n && !memcmp(ob.toks, od.toks, (size_t)ob.n * sizeof *ob.toks));
    m40llm_engine_free(e2);
}

/* A chat's next turn: the prompt is the last one, its answer and more.
 * The partial block the first turn ended in is reused as it is (nobody
 * else holds it), and the answer equals that of an engine without the
 * cache. */
static void test_prefix_next_turn(void) {
    int32_t turn[80];
    make_prompt(turn, 40, 91);
    m40llm_engine *e = make_engine(2, 64, 0, 256);
    out o1 = {0}, o2 = {0}, o3 = {0};
    m40llm_request_params p = greedy(turn, 40, 6, &o1);
    m40llm_request_result r1 = run_one(e, &p);
    CHECK(r1.n_cached == 0 && o1.n == 6);
    /* positions 0..44 hold the prompt and the first 5 answer tokens (the
     * 6th was sampled, never computed) */
    memcpy(turn + 40, o1.toks, 6 * sizeof *turn);
    make_prompt(turn + 46, 20, 92);
    p = greedy(turn, 66, 5, &o2);
    m40llm_request_result r2 = run_one(e, &p);
    CHECKF(r2.n_cached == 45,
           "cached %d of the 45 positions the first turn computed (2 full "
           "blocks of 16 and 13 positions of the third)",
           r2.n_cached);
    m40llm_engine_stats st;
    wait_idle(e, &st);
    CHECK(st.kv_blocks_used == 0);
    m40llm_engine_free(e);
    m40llm_engine *e2 = make_uncached_engine();
    p = greedy(turn, 66, 5, &o3);
    m40llm_request_result r3 = run_one(e2, &p);
    CHECK(r3.n_cached == 0);
    CHECKF(o2.n == o3.n && !memcmp(o2.toks, o3.toks, (size_t)o2.n * sizeof *o2.toks),
           "the next turn's answer with the reused block equals the one without the cache");
    m40llm_engine_free(e2);
}

static void test_cancel_and_limits(void) {
    int32_t prompt[40];
    make_prompt(prompt, 40, 5);
    m40llm_engine *e = make_engine(1, 64, 0, 128);
    /* the callback refusing cancels */
    out o = {.cancel_after = 3};
    m40llm_request_params p = greedy(prompt, 40, 50, &o);
    m40llm_request_result res = run_one(e, &p);
    CHECKF(res.finish == M40LLM_FINISH_CANCELLED && o.n == 3 && o.finals == 1,
           "finish %d after %d tokens", res.finish, o.n);
    /* queue: one running (long), two waiting fill max_queue 2... use the
     * engine's queue of its own size: flood it */
    m40llm_request *rs[1100];
    int n_ok = 0, n_busy = 0;
    out sink[4];
    memset(sink, 0, sizeof sink);
    for (int i = 0; i < 1100; i++) {
        m40llm_request_params q = greedy(prompt, 40, 100, &sink[i % 4]);
        q.on_event = NULL;
        int rc = m40llm_submit(e, &q, &rs[n_ok]);
        if (rc == M40LLM_OK)
            n_ok++;
        else if (rc == M40LLM_ERR_BUSY)
            n_busy++;
    }
    CHECKF(n_busy > 0 && n_ok <= 1025, "queue bound: %d accepted, %d busy", n_ok, n_busy);
    for (int i = 0; i < n_ok; i++) m40llm_request_cancel(rs[i]);
    for (int i = 0; i < n_ok; i++) {
        CHECK(m40llm_request_wait(rs[i], 60000) == 1);
        m40llm_request_free(rs[i]);
    }
    /* bad requests fail at once */
    int32_t big[200];
    make_prompt(big, 200, 9);
    m40llm_request *r = NULL;
    out ob = {0};
    p = greedy(big, 200, 5, &ob);
    CHECK(m40llm_submit(e, &p, &r) == M40LLM_ERR_CONTEXT_FULL && !r);
    CHECKF(strstr(m40llm_last_error(), "200") && strstr(m40llm_last_error(), "128"),
           "both lengths named: %s", m40llm_last_error());
    int32_t bad[2] = {1, 999999};
    p = greedy(bad, 2, 5, &ob);
    CHECK(m40llm_submit(e, &p, &r) == M40LLM_ERR_INVALID_ARG);
    p = greedy(prompt, 0, 5, &ob);
    CHECK(m40llm_submit(e, &p, &r) == M40LLM_ERR_INVALID_ARG);
    p = greedy(prompt, 40, 5, &ob);
    p.top_logprobs = 21;
    CHECK(m40llm_submit(e, &p, &r) == M40LLM_ERR_INVALID_ARG);
    /* logit bias: +100 on one token takes every step; ids and sizes checked */
    const m40llm_logit_bias force = {prompt[3], 100.0f};
    out oforce = {0};
    p = greedy(prompt, 40, 4, &oforce);
    p.logit_bias = &force;
    p.n_logit_bias = 1;
    m40llm_request_result rforce = run_one(e, &p);
    CHECKF(rforce.n_generated == 4 && oforce.n == 4 && oforce.toks[0] == prompt[3] &&
               oforce.toks[3] == prompt[3],
           "forced token %d: got %d tokens, first %d", prompt[3], oforce.n, oforce.toks[0]);
    const m40llm_logit_bias off_vocab = {1 << 24, 1.0f}, too_big = {prompt[3], 101.0f};
    p.logit_bias = &off_vocab;
    CHECK(m40llm_submit(e, &p, &r) == M40LLM_ERR_INVALID_ARG && !r);
    p.logit_bias = &too_big;
    CHECK(m40llm_submit(e, &p, &r) == M40LLM_ERR_INVALID_ARG && !r);
    p.logit_bias = NULL;
    CHECK(m40llm_submit(e, &p, &r) == M40LLM_ERR_INVALID_ARG && !r);
    p.n_logit_bias = 0;
    /* a schema it cannot enforce, beside stop strings (their copies freed) */
    const char *stops[2] = {"x", "yy"};
    p = greedy(prompt, 40, 5, &ob);
    p.stops = stops;
    p.n_stops = 2;
    p.format = M40LLM_FORMAT_JSON;
    p.json_schema = "{\"type\": \"object\", \"pattern\": \"x\"}";
    CHECK(m40llm_submit(e, &p, &r) == M40LLM_ERR_INVALID_ARG && !r);
    CHECK(strstr(m40llm_last_error(), "pattern") != NULL);
    p.format = M40LLM_FORMAT_TEXT; /* a schema without JSON mode */
    CHECK(m40llm_submit(e, &p, &r) == M40LLM_ERR_INVALID_ARG && !r);
    /* a prompt that fills the context: one token, then "length" */
    int32_t fill[128];
    make_prompt(fill, 128, 10);
    out of = {0};
    p = greedy(fill, 128, 5, &of);
    res = run_one(e, &p);
    CHECKF(res.finish == M40LLM_FINISH_CONTEXT && of.n <= 1, "full context: finish %d, %d tokens",
           res.finish, of.n);
    m40llm_engine_stats st;
    wait_idle(e, &st);
    CHECK(st.kv_blocks_used == 0 && st.running == 0 && st.waiting == 0);
    m40llm_engine_free(e);
}

/* m40llm_submit_many: all or none; queued together, the requests run as
 * one batch from the first step, each with the output it gets alone. */
static void test_submit_many(void) {
    enum { N = 4 };
    int32_t prompts[N][12];
    out alone[N], many[N];
    memset(alone, 0, sizeof alone);
    memset(many, 0, sizeof many);
    m40llm_engine *e = make_engine(N, 256, 0, 64);
    m40llm_request_params ps[N];
    for (int i = 0; i < N; i++) {
        make_prompt(prompts[i], 12, 40 + (uint32_t)i);
        ps[i] = greedy(prompts[i], 12, 6, &alone[i]);
        run_one(e, &ps[i]);
        ps[i].user = &many[i];
    }
    m40llm_request *rs[N];
    CHECK(m40llm_submit_many(e, ps, N, rs) == M40LLM_OK);
    for (int i = 0; i < N; i++) {
        CHECK(m40llm_request_wait(rs[i], 60000) == 1);
        m40llm_request_free(rs[i]);
        CHECKF(many[i].n == 6 && many[i].len == alone[i].len &&
                   !memcmp(many[i].text, alone[i].text, alone[i].len),
               "request %d of a batch = alone", i);
    }
    /* one bad request: none is queued, every out is NULL */
    int32_t bad[2] = {1, 999999};
    out ob = {0};
    ps[2] = greedy(bad, 2, 5, &ob);
    for (int i = 0; i < N; i++) rs[i] = (m40llm_request *)1;
    CHECK(m40llm_submit_many(e, ps, N, rs) == M40LLM_ERR_INVALID_ARG);
    for (int i = 0; i < N; i++) CHECKF(rs[i] == NULL, "out %d cleared", i);
    CHECK(m40llm_submit_many(e, ps, 0, rs) == M40LLM_ERR_INVALID_ARG);
    m40llm_engine_stats st;
    wait_idle(e, &st);
    CHECKF(st.running == 0 && st.waiting == 0 && st.kv_blocks_used == 0,
           "nothing left queued: running %d waiting %d blocks %d", st.running, st.waiting,
           st.kv_blocks_used);
    m40llm_engine_free(e);
}

static void test_stops_and_logprobs(void) {
    int32_t prompt[20];
    make_prompt(prompt, 20, 21);
    m40llm_engine *e = make_engine(2, 64, 0, 256);
    out o = {0};
    m40llm_request_params p = greedy(prompt, 20, 30, &o);
    p.logprobs = 1;
    p.top_logprobs = 5;
    m40llm_request_result res = run_one(e, &p);
    CHECK(res.finish == M40LLM_FINISH_LENGTH && o.n == 30);
    CHECK(o.n_top_seen == 5 && o.top_ok == 30);
    bool lp_ok = true;
    for (int i = 0; i < o.n; i++) lp_ok &= o.lp[i] <= 0 && o.lp[i] > -100;
    CHECK(lp_ok);
    /* a stop string taken from the middle of that output ends it there */
    if (o.len > 12) {
        char stop[8];
        memcpy(stop, o.text + o.len / 2, 3);
        stop[3] = '\0';
        const char *cut = strstr(o.text, stop);
        const char *stops[] = {stop};
        out os = {0};
        p = greedy(prompt, 20, 30, &os);
        p.stops = stops;
        p.n_stops = 1;
        res = run_one(e, &p);
        CHECKF(res.finish == M40LLM_FINISH_STOP && os.len == (size_t)(cut - o.text) &&
                   !memcmp(os.text, o.text, os.len),
               "stop '%s': %zu bytes, expected %zu", stop, os.len, (size_t)(cut - o.text));
    }
    m40llm_engine_free(e);
}

/* Freeing the engine with requests in flight finishes them (cancelled). */
static void test_shutdown(void) {
    int32_t prompt[60];
    make_prompt(prompt, 60, 31);
    m40llm_engine *e = make_engine(2, 16, 0, 256);
    m40llm_request *rs[6];
    out os[6];
    memset(os, 0, sizeof os);
    for (int i = 0; i < 6; i++) {
        m40llm_request_params p = greedy(prompt, 60, 200, &os[i]);
        CHECK(m40llm_submit(e, &p, &rs[i]) == M40LLM_OK);
    }
    usleep(20000);
    m40llm_engine_free(e);
    for (int i = 0; i < 6; i++) {
        CHECK(m40llm_request_finished(rs[i]));
        m40llm_request_result res;
        m40llm_request_get_result(rs[i], &res);
        CHECK(res.finish == M40LLM_FINISH_CANCELLED && os[i].finals == 1);
        m40llm_request_free(rs[i]);
    }
}

static void test_model_api(void) {
    m40llm_model_info mi;
    m40llm_model_get_info(g_mm, &mi);
    CHECK(mi.n_layer == 2 && mi.n_vocab == 512 && mi.n_params > 0 && mi.file_bytes > 0);
    CHECKF(!strcmp(mi.quant, "Q8_0"), "quant %s", mi.quant);
    int32_t *ids = NULL;
    size_t n = 0;
    CHECK(m40llm_tokenize(g_mm, "hello world", 11, 0, 0, &ids, &n) == M40LLM_OK && n > 0);
    char *t = NULL;
    size_t tl = 0;
    CHECK(m40llm_detokenize(g_mm, ids, n, 0, &t, &tl) == M40LLM_OK);
    CHECKF(t && strstr(t, "hello world"), "round trip: '%s'", t ? t : "");
    free(t);
    free(ids);
    const char *msgs = "[{\"role\":\"user\",\"content\":\"hi <|im_start|>\"}]";
    CHECK(m40llm_chat_tokens(g_mm, msgs, strlen(msgs), 0, &ids, &n) == M40LLM_OK && n > 4);
    free(ids);
    const char *bad = "[{\"role\":\"wizard\",\"content\":\"x\"}]";
    CHECK(m40llm_chat_tokens(g_mm, bad, strlen(bad), 0, &ids, &n) != M40LLM_OK);
    CHECK(m40llm_chat_tokens(g_mm, "[{", 2, 0, &ids, &n) != M40LLM_OK);
    CHECK(!strcmp(m40llm_finish_reason_str(M40LLM_FINISH_CONTEXT), "length"));
}

/* Bytes of one KV block of the loaded model. */
static uint64_t kv_block_bytes(void) {
    m40llm_engine_info info;
    m40llm_engine *e = make_engine(1, 64, 0, 256);
    if (!e) return 0;
    m40llm_engine_get_info(e, &info);
    m40llm_engine_free(e);
    return info.kv_pool_bytes / (uint64_t)info.kv_blocks_total;
}

int main(void) {
    check_fixture("reference/synth-q8_0.gguf", g_path, sizeof g_path);
    if (m40llm_model_load(g_path, &g_mm) != M40LLM_OK) SKIP("%s: %s", g_path, m40llm_last_error());
    test_model_api();
    test_matches_generate();
    test_batch_invariance(0, 8, "8 sequences");
    /* 24 blocks of 16 positions: far less than 8 sequences of up to 180 need */
    test_batch_invariance(kv_block_bytes() * 24, 8, "tiny pool");
    test_prefix_cache();
    test_prefix_next_turn();
    test_cancel_and_limits();
    test_stops_and_logprobs();
    test_submit_many();
    test_shutdown();
    m40llm_model_free(g_mm);
    /* continuous batching of a mixture-of-experts model: its requests go to
     * different experts in one step, and each still gets its output alone */
    check_fixture("arch/qwen3moe-q8_0.gguf", g_path, sizeof g_path);
    g_mm = NULL;
    CHECKF(m40llm_model_load(g_path, &g_mm) == M40LLM_OK, "%s: %s", g_path, m40llm_last_error());
    if (g_mm) {
        test_batch_invariance(0, 8, "MoE, 8 sequences");
        test_batch_invariance(kv_block_bytes() * 24, 8, "MoE, tiny pool");
        m40llm_model_free(g_mm);
    }
    return check_summary("test_engine");
}
