/* Sampler and stop-string tests: every filter on hand-made distributions
 * (only allowed ids appear; frequencies match the expected probabilities),
 * penalties, seed determinism, and stop strings across chunk boundaries. */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "m40llm.h"
#include "sampler.h"

static sampler_params plain_params(void) {
    sampler_params p = sampler_default_params();
    p.temp = 1.0f;
    p.top_k = 0;
    p.top_p = 1.0f;
    p.min_p = 0.0f;
    p.repeat_penalty = 1.0f;
    p.penalty_last_n = 64;
    p.seed = 42;
    return p;
}

static sampler *make(const sampler_params *p, int n_vocab) {
    sampler *s = NULL;
    int rc = sampler_create(p, n_vocab, &s);
    CHECKF(rc == M40LLM_OK && s, "sampler_create: %s", m40llm_last_error());
    return s;
}

/* logits = log(probs) */
static void log_probs(const double *pr, float *lg, int n) {
    for (int i = 0; i < n; i++) lg[i] = pr[i] > 0 ? (float)log(pr[i]) : -INFINITY;
}

/* Samples `draws` times and compares the frequency of each id with expect[]
 * (0 = must never appear). */
static void check_freq(const char *what, sampler *s, const float *lg, int n, const double *expect,
                       int draws, double tol) {
    int *hits = calloc((size_t)n, sizeof *hits);
    for (int d = 0; d < draws; d++) {
        int32_t t = sampler_sample(s, lg);
        CHECKF(t >= 0 && t < n, "%s: id %d out of range", what, t);
        if (t >= 0 && t < n) hits[t]++;
    }
    for (int i = 0; i < n; i++) {
        double f = (double)hits[i] / draws;
        if (expect[i] == 0.0)
            CHECKF(hits[i] == 0, "%s: id %d is filtered out but was drawn %d times", what, i,
                   hits[i]);
        else
            CHECKF(fabs(f - expect[i]) <= tol, "%s: id %d frequency %.4f, expected %.4f", what, i,
                   f, expect[i]);
    }
    free(hits);
}

static void test_greedy(void) {
    const float lg[] = {1.0f, 3.0f, 3.0f, 2.0f, -5.0f};
    CHECK(sampler_argmax(lg, 5) == 1);
    sampler_params p = plain_params();
    p.temp = 0.0f;
    sampler *s = make(&p, 5);
    for (int i = 0; i < 5; i++) CHECK(sampler_sample(s, lg) == 1);
    sampler_free(s);

    /* top_k = 1 at any temperature is greedy, ties to the lowest id */
    p = plain_params();
    p.temp = 1.5f;
    p.top_k = 1;
    enum { NV = 1000 };
    float *big = malloc(NV * sizeof *big);
    s = make(&p, NV);
    uint64_t x = 7;
    for (int round = 0; round < 50; round++) {
        for (int i = 0; i < NV; i++) {
            x = x * 6364136223846793005ull + 1442695040888963407ull;
            big[i] = (float)((x >> 40) % 64) * 0.25f; /* coarse values: many ties */
        }
        CHECK(sampler_sample(s, big) == sampler_argmax(big, NV));
    }
    sampler_free(s);
    free(big);
}

static void test_temperature(void) {
    const double pr[] = {0.5, 0.3, 0.2};
    float lg[3];
    log_probs(pr, lg, 3);
    sampler_params p = plain_params();
    sampler *s = make(&p, 3);
    check_freq("temp 1", s, lg, 3, pr, 20000, 0.015);
    sampler_free(s);
    /* temp 0.5 squares the probabilities */
    p.temp = 0.5f;
    s = make(&p, 3);
    double z = 0.25 + 0.09 + 0.04, ex[] = {0.25 / z, 0.09 / z, 0.04 / z};
    check_freq("temp 0.5", s, lg, 3, ex, 20000, 0.015);
    sampler_free(s);
}

static void test_top_k(void) {
    const double pr[] = {0.1, 0.4, 0.2, 0.3};
    float lg[4];
    log_probs(pr, lg, 4);
    sampler_params p = plain_params();
    p.top_k = 2;
    sampler *s = make(&p, 4);
    const double ex[] = {0.0, 0.4 / 0.7, 0.0, 0.3 / 0.7};
    check_freq("top-k 2", s, lg, 4, ex, 20000, 0.015);
    sampler_free(s);
}

static void test_top_p(void) {
    const double pr[] = {0.15, 0.5, 0.05, 0.3};
    float lg[4];
    log_probs(pr, lg, 4);
    sampler_params p = plain_params();
    p.top_p = 0.75f; /* 0.5 + 0.3 reaches it */
    sampler *s = make(&p, 4);
    const double ex[] = {0.0, 0.5 / 0.8, 0.0, 0.3 / 0.8};
    check_freq("top-p 0.75", s, lg, 4, ex, 20000, 0.015);
    sampler_free(s);
    /* a tiny top_p keeps exactly one token */
    p.top_p = 0.01f;
    s = make(&p, 4);
    const double one[] = {0.0, 1.0, 0.0, 0.0};
    check_freq("top-p 0.01", s, lg, 4, one, 2000, 0.0);
    sampler_free(s);
    /* top-p applies after temperature 1 filtering: temp does not change the set */
    p.top_p = 0.75f;
    p.temp = 3.0f;
    s = make(&p, 4);
    double a = pow(0.5, 1.0 / 3.0), b = pow(0.3, 1.0 / 3.0);
    const double ext[] = {0.0, a / (a + b), 0.0, b / (a + b)};
    check_freq("top-p then temp 3", s, lg, 4, ext, 20000, 0.015);
    sampler_free(s);
}

static void test_min_p(void) {
    const double pr[] = {0.06, 0.4, 0.04, 0.3, 0.2};
    float lg[5];
    log_probs(pr, lg, 5);
    sampler_params p = plain_params();
    p.min_p = 0.12f; /* threshold 0.048: drops only id 2 */
    sampler *s = make(&p, 5);
    const double ex[] = {0.06 / 0.96, 0.4 / 0.96, 0.0, 0.3 / 0.96, 0.2 / 0.96};
    check_freq("min-p 0.12", s, lg, 5, ex, 20000, 0.015);
    sampler_free(s);
}

/* Reference chain over the whole vocabulary with a full sort: the set of ids
 * that top-k -> top-p -> min-p keeps. */
static const float *cmp_lg;
static int cmp_rank(const void *a, const void *b) {
    int32_t x = *(const int32_t *)a, y = *(const int32_t *)b;
    if (cmp_lg[x] != cmp_lg[y]) return cmp_lg[x] > cmp_lg[y] ? -1 : 1;
    return x < y ? -1 : 1;
}
static int reference_set(const float *lg, int n, int top_k, float top_p, float min_p,
                         unsigned char *allowed) {
    int32_t *ids = malloc((size_t)n * sizeof *ids);
    for (int i = 0; i < n; i++) ids[i] = i;
    cmp_lg = lg;
    qsort(ids, (size_t)n, sizeof *ids, cmp_rank);
    int m = top_k > 0 && top_k < n ? top_k : n;
    double z = 0, mx = lg[ids[0]];
    for (int i = 0; i < m; i++) z += exp(lg[ids[i]] - mx);
    if (top_p < 1.0f) {
        double cum = 0;
        for (int i = 0; i < m; i++) {
            cum += exp(lg[ids[i]] - mx) / z;
            if (cum >= top_p) {
                m = i + 1;
                break;
            }
        }
    }
    int kept = 0;
    memset(allowed, 0, (size_t)n);
    for (int i = 0; i < m; i++)
        if (min_p <= 0.0f || exp(lg[ids[i]] - mx) >= min_p) {
            allowed[ids[i]] = 1;
            kept++;
        }
    free(ids);
    return kept;
}

static void test_large_vocab_chain(void) {
    enum { NV = 151936 };
    float *lg = malloc(NV * sizeof *lg);
    unsigned char *allowed = malloc(NV);
    unsigned char *drawn = calloc(NV, 1);
    uint64_t x = 99;
    for (int i = 0; i < NV; i++) {
        x = x * 6364136223846793005ull + 1442695040888963407ull;
        double u1 = ((x >> 11) + 1) * 0x1.0p-53;
        x = x * 6364136223846793005ull + 1442695040888963407ull;
        double u2 = (x >> 11) * 0x1.0p-53;
        lg[i] = (float)(3.0 * sqrt(-2 * log(u1)) * cos(6.283185307179586 * u2));
    }
    struct {
        int k;
        float p, mp;
    } cases[] = {{40, 0.95f, 0.05f}, {0, 0.9f, 0.0f},    {0, 0.5f, 0.0f},
                 {0, 1.0f, 0.2f},    {1000, 0.8f, 0.0f}, {0, 0.99f, 0.01f}};
    for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
        sampler_params p = plain_params();
        p.top_k = cases[c].k;
        p.top_p = cases[c].p;
        p.min_p = cases[c].mp;
        p.temp = 4.0f; /* flatten, so many of the allowed ids get drawn */
        int kept = reference_set(lg, NV, p.top_k, p.top_p, p.min_p, allowed);
        sampler *s = make(&p, NV);
        int bad = 0, distinct = 0;
        memset(drawn, 0, NV);
        for (int d = 0; d < 400; d++) {
            int32_t t = sampler_sample(s, lg);
            if (t < 0 || t >= NV || !allowed[t])
                bad++;
            else if (!drawn[t]++)
                distinct++;
        }
        CHECKF(bad == 0, "case %zu (k %d p %g min_p %g): %d draws outside the %d allowed ids", c,
               p.top_k, p.top_p, p.min_p, bad, kept);
        /* the filters must not be stricter than the reference either */
        CHECKF(distinct >= (kept < 200 ? kept * 9 / 10 : 150),
               "case %zu: only %d distinct ids of %d allowed were drawn", c, distinct, kept);
        sampler_free(s);
    }
    free(lg);
    free(allowed);
    free(drawn);
}

static void test_penalties(void) {
    sampler_params p = plain_params();
    p.temp = 0.0f;

    /* repetition: positive logit divided */
    p.repeat_penalty = 1.5f;
    sampler *s = make(&p, 4);
    const float a[] = {2.0f, 1.9f, -1.0f, -0.5f};
    CHECK(sampler_sample(s, a) == 0);
    sampler_accept(s, 0);
    CHECK(sampler_sample(s, a) == 1); /* 2.0 / 1.5 = 1.33 < 1.9 */
    sampler_reset(s);
    CHECK(sampler_sample(s, a) == 0);
    sampler_free(s);

    /* repetition: negative logit multiplied */
    p.repeat_penalty = 1.2f;
    s = make(&p, 2);
    const float b[] = {-1.0f, -1.1f};
    sampler_accept(s, 0);
    CHECK(sampler_sample(s, b) == 1); /* -1.2 < -1.1 */
    sampler_free(s);

    /* frequency: count times penalty */
    p.repeat_penalty = 1.0f;
    p.freq_penalty = 0.3f;
    const float c[] = {2.0f, 1.5f};
    s = make(&p, 2);
    sampler_accept(s, 0);
    CHECK(sampler_sample(s, c) == 0); /* 1.7 */
    sampler_accept(s, 0);
    CHECK(sampler_sample(s, c) == 1); /* 1.4 */
    sampler_free(s);

    /* presence: once, whatever the count */
    p.freq_penalty = 0.0f;
    p.presence_penalty = 0.4f;
    s = make(&p, 2);
    for (int i = 0; i < 5; i++) sampler_accept(s, 0);
    CHECK(sampler_sample(s, c) == 0); /* 1.6 */
    sampler_free(s);
    p.presence_penalty = 0.6f;
    s = make(&p, 2);
    sampler_accept(s, 0);
    CHECK(sampler_sample(s, c) == 1); /* 1.4 */
    sampler_free(s);

    /* window: the token leaves the last-2 window */
    p.presence_penalty = 0.0f;
    p.repeat_penalty = 1.5f;
    p.penalty_last_n = 2;
    s = make(&p, 4);
    sampler_accept(s, 0);
    sampler_accept(s, 3);
    CHECK(sampler_sample(s, a) == 1);
    sampler_accept(s, 3);
    CHECK(sampler_sample(s, a) == 0);
    sampler_free(s);
    /* whole history */
    p.penalty_last_n = -1;
    s = make(&p, 4);
    sampler_accept(s, 0);
    for (int i = 0; i < 500; i++) sampler_accept(s, 3);
    CHECK(sampler_sample(s, a) == 1);
    sampler_free(s);
    /* window 0: off */
    p.penalty_last_n = 0;
    s = make(&p, 4);
    sampler_accept(s, 0);
    CHECK(sampler_sample(s, a) == 0);
    sampler_free(s);

    /* exact values through the distribution: logits {0,0}, token 0 seen twice,
     * freq 0.25 and presence 0.5 -> logit0 = -1 */
    p = plain_params();
    p.freq_penalty = 0.25f;
    p.presence_penalty = 0.5f;
    s = make(&p, 2);
    sampler_accept(s, 0);
    sampler_accept(s, 0);
    const float z[] = {0.0f, 0.0f};
    double e = exp(-1.0) / (1.0 + exp(-1.0));
    const double ex[] = {e, 1.0 - e};
    check_freq("freq+presence", s, z, 2, ex, 20000, 0.015);
    sampler_free(s);

    /* the caller's logits are never modified */
    p.temp = 0.0f;
    p.repeat_penalty = 2.0f;
    s = make(&p, 4);
    float d[] = {2.0f, 1.9f, -1.0f, -0.5f};
    sampler_accept(s, 0);
    sampler_accept(s, 2);
    (void)sampler_sample(s, d);
    CHECK(d[0] == 2.0f && d[2] == -1.0f);
    sampler_free(s);
}

static void test_determinism(void) {
    enum { NV = 5000, DRAWS = 300 };
    float *lg = malloc(NV * sizeof *lg);
    for (int i = 0; i < NV; i++) lg[i] = (float)sin(i * 0.37) * 2.0f;
    sampler_params p = sampler_default_params();
    p.top_k = 0;
    p.min_p = 0.0f;
    p.temp = 1.0f;
    p.seed = 1234;
    sampler *s1 = make(&p, NV), *s2 = make(&p, NV);
    p.seed = 1235;
    sampler *s3 = make(&p, NV);
    int32_t seq[DRAWS];
    int same12 = 1, diff13 = 0;
    for (int i = 0; i < DRAWS; i++) {
        int32_t a = sampler_sample(s1, lg), b = sampler_sample(s2, lg), c = sampler_sample(s3, lg);
        seq[i] = a;
        same12 &= a == b;
        diff13 += a != c;
    }
    CHECK(same12);
    CHECKF(diff13 > DRAWS / 2, "another seed differs on only %d of %d draws", diff13, DRAWS);
    sampler_reset(s1); /* reseeds: the same sequence again */
    int again = 1;
    for (int i = 0; i < DRAWS; i++) again &= sampler_sample(s1, lg) == seq[i];
    CHECK(again);
    sampler_free(s1);
    sampler_free(s2);
    sampler_free(s3);
    free(lg);
}

static void test_bad_args(void) {
    sampler_params p = plain_params();
    sampler *s = (sampler *)1;
    CHECK(sampler_create(&p, 0, &s) == M40LLM_ERR_INVALID_ARG && s == NULL);
    p.penalty_last_n = -2;
    CHECK(sampler_create(&p, 10, &s) == M40LLM_ERR_INVALID_ARG);
    p = plain_params();
    p.repeat_penalty = 0.0f;
    CHECK(sampler_create(&p, 10, &s) == M40LLM_ERR_INVALID_ARG);
    CHECK(sampler_create(NULL, 10, &s) == M40LLM_ERR_INVALID_ARG);
    /* NaN and -inf logits never win */
    p = plain_params();
    s = make(&p, 3);
    const float lg[] = {NAN, -INFINITY, 0.5f};
    for (int i = 0; i < 20; i++) CHECK(sampler_sample(s, lg) == 2);
    sampler_accept(s, -1); /* ignored */
    sampler_accept(s, 3);
    sampler_free(s);
}

/* ---- stop strings ---- */

typedef struct {
    char text[256];
    size_t len;
    bool stopped;
} collected;

static void feed(stop_matcher *m, collected *c, const char *t, size_t n) {
    const char *e;
    size_t el;
    bool st = stop_matcher_feed(m, t, n, &e, &el);
    CHECK(c->len + el < sizeof c->text);
    if (c->len + el < sizeof c->text) memcpy(c->text + c->len, e, el);
    c->len += el;
    c->stopped |= st;
}

static void flush(stop_matcher *m, collected *c) {
    const char *e;
    size_t el;
    stop_matcher_flush(m, &e, &el);
    memcpy(c->text + c->len, e, el);
    c->len += el;
    c->text[c->len] = 0;
}

static stop_matcher *make_stops(const char *const *stops, int n) {
    stop_matcher *m = NULL;
    CHECK(stop_matcher_create(stops, n, &m) == M40LLM_OK && m);
    return m;
}

static void test_stop_chunks(void) {
    const char *stops[] = {"\nUser:"};
    stop_matcher *m = make_stops(stops, 1);
    collected c = {0};
    const char *e;
    size_t el;
    CHECK(!stop_matcher_feed(m, "Hel", 3, &e, &el));
    CHECK(el == 3 && memcmp(e, "Hel", 3) == 0); /* no stop prefix: shown at once */
    c.len = 3;
    memcpy(c.text, "Hel", 3);
    feed(m, &c, "lo\nUser:", 8);
    CHECK(c.stopped);
    flush(m, &c);
    CHECKF(strcmp(c.text, "Hello") == 0, "got '%s'", c.text);
    /* after the stop nothing more comes out */
    CHECK(stop_matcher_feed(m, "more", 4, &e, &el) && el == 0);
    stop_matcher_free(m);

    /* a held prefix that does not complete is released */
    m = make_stops(stops, 1);
    memset(&c, 0, sizeof c);
    feed(m, &c, "Hello\nUs", 8);
    CHECK(c.len == 5 && !c.stopped);
    feed(m, &c, "ing it", 6);
    flush(m, &c);
    CHECKF(!c.stopped && strcmp(c.text, "Hello\nUsing it") == 0, "got '%s'", c.text);
    stop_matcher_free(m);

    /* a prefix held at the end of generation is flushed */
    m = make_stops(stops, 1);
    memset(&c, 0, sizeof c);
    feed(m, &c, "abc\nUse", 7);
    CHECK(c.len == 3);
    flush(m, &c);
    CHECKF(strcmp(c.text, "abc\nUse") == 0, "got '%s'", c.text);
    stop_matcher_free(m);

    /* self-overlapping stop, fed one byte at a time */
    const char *ov[] = {"aab"};
    m = make_stops(ov, 1);
    memset(&c, 0, sizeof c);
    const char *t = "xaaab tail";
    for (size_t i = 0; i < strlen(t); i++) feed(m, &c, t + i, 1);
    flush(m, &c);
    CHECKF(c.stopped && strcmp(c.text, "xa") == 0, "got '%s'", c.text);
    stop_matcher_free(m);
}

static void test_stop_multi(void) {
    const char *stops[] = {"###", "</s>", "\n\n", ""};
    stop_matcher *m = make_stops(stops, 4);
    collected c = {0};
    feed(m, &c, "a#b<", 4);
    feed(m, &c, "/s", 2);
    feed(m, &c, "> more", 6);
    flush(m, &c);
    CHECKF(c.stopped && strcmp(c.text, "a#b") == 0, "got '%s'", c.text);
    stop_matcher_free(m);

    /* the earliest occurrence wins, whichever stop it is */
    m = make_stops(stops, 4);
    memset(&c, 0, sizeof c);
    feed(m, &c, "x\n", 2);
    feed(m, &c, "\n###</s>", 8);
    flush(m, &c);
    CHECKF(c.stopped && strcmp(c.text, "x") == 0, "got '%s'", c.text);
    stop_matcher_free(m);

    /* no stops: text passes through */
    m = make_stops(NULL, 0);
    memset(&c, 0, sizeof c);
    feed(m, &c, "plain text", 10);
    CHECK(c.len == 10);
    flush(m, &c);
    CHECK(strcmp(c.text, "plain text") == 0);
    stop_matcher_free(m);

    stop_matcher *bad = NULL;
    const char *nul[] = {"ok", NULL};
    CHECK(stop_matcher_create(nul, 2, &bad) == M40LLM_ERR_INVALID_ARG && bad == NULL);
}

/* every emitted piece must end on a character boundary */
static bool utf8_complete(const char *s, size_t n) {
    size_t i = 0;
    while (i < n) {
        unsigned char ch = (unsigned char)s[i];
        size_t l = ch < 0x80 ? 1 : ch >= 0xF0 ? 4 : ch >= 0xE0 ? 3 : 2;
        if (i + l > n) return false;
        i += l;
    }
    return true;
}

static void test_stop_utf8(void) {
    const char *stops[] = {"。", "ÿ"};
    stop_matcher *m = make_stops(stops, 2);
    collected c = {0};
    const char *t = "你好, wörld。世界";
    bool whole = true;
    for (size_t i = 0; i < strlen(t); i++) {
        const char *e;
        size_t el;
        bool st = stop_matcher_feed(m, t + i, 1, &e, &el);
        whole &= utf8_complete(e, el);
        memcpy(c.text + c.len, e, el);
        c.len += el;
        c.stopped |= st;
    }
    flush(m, &c);
    CHECK(whole);
    CHECKF(c.stopped && strcmp(c.text, "你好, wörld") == 0, "got '%s'", c.text);
    stop_matcher_free(m);

    /* a split character is held until complete, even with no stop strings */
    m = make_stops(NULL, 0);
    memset(&c, 0, sizeof c);
    feed(m, &c, "caf\xC3", 4);
    CHECK(c.len == 3);
    feed(m, &c, "\xA9!", 2);
    CHECK(c.len == 6);
    flush(m, &c);
    CHECK(strcmp(c.text, "café!") == 0);
    stop_matcher_free(m);
}

static void test_limits(void) {
    const int32_t eog[] = {2, 32007};
    sampler_limits l = {eog, 2, 5};
    CHECK(sampler_check_stop(&l, 100, 1) == SAMPLER_CONTINUE);
    CHECK(sampler_check_stop(&l, 32007, 1) == SAMPLER_STOP_EOG);
    CHECK(sampler_check_stop(&l, 100, 5) == SAMPLER_STOP_LENGTH);
    CHECK(sampler_check_stop(&l, 2, 5) == SAMPLER_STOP_EOG);
    l.max_tokens = 0;
    CHECK(sampler_check_stop(&l, 100, 1000000) == SAMPLER_CONTINUE);
    CHECK(strcmp(sampler_stop_reason_str(SAMPLER_STOP_LENGTH), "length") == 0);
    CHECK(strcmp(sampler_stop_reason_str(SAMPLER_STOP_STRING), "stop") == 0);
    CHECK(sampler_stop_reason_str(SAMPLER_CONTINUE) == NULL);
    /* +inf logit: it wins outright */
    sampler_params p = plain_params();
    sampler *s = make(&p, 3);
    const float lg[] = {1.0f, INFINITY, INFINITY};
    CHECK(sampler_sample(s, lg) == 1);
    sampler_free(s);
}

int main(void) {
    test_greedy();
    test_temperature();
    test_top_k();
    test_top_p();
    test_min_p();
    test_large_vocab_chain();
    test_penalties();
    test_determinism();
    test_bad_args();
    test_stop_chunks();
    test_stop_multi();
    test_stop_utf8();
    test_limits();
    return check_summary("test_sampler");
}
