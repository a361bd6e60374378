/* JSON mode's automaton and token gate: documents accepted byte by byte
 * exactly when they are RFC 8259 JSON with an object at the root (cases,
 * then random documents and their one-byte mutations against a
 * recursive-descent validator written independently here); nesting and
 * whitespace bounds; a refused byte leaves the state as it was; the gate
 * over a small SPM vocabulary: which tokens it allows, the masked row,
 * control and end-of-generation tokens never, done when the object closes. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../../src/engine/json_gate.h"
#include "check.h"
#include "m40llm.h"

/* ---- the reference: recursive descent over the whole text ---- */
typedef struct rd {
    const unsigned char *p, *end;
    int depth;
} rd;

static void rd_ws(rd *r) {
    while (r->p < r->end && (*r->p == ' ' || *r->p == '\t' || *r->p == '\n' || *r->p == '\r'))
        r->p++;
}
static int rd_peek(rd *r) {
    return r->p < r->end ? *r->p : -1;
}
static int rd_value(rd *r);

/* four hex digits as a number, or -1 */
static long rd_hex4(rd *r) {
    long v = 0;
    for (int i = 0; i < 4; i++, r->p++) {
        if (r->p >= r->end || !*r->p || !strchr("0123456789abcdefABCDEF", *r->p)) return -1;
        const int c = *r->p;
        v = v * 16 + (c <= '9' ? c - '0' : (c | 0x20) - 'a' + 10);
    }
    return v;
}

static int rd_string(rd *r) {
    r->p++; /* '"' */
    while (r->p < r->end) {
        unsigned c = *r->p++;
        if (c == '"') return 1;
        if (c < 0x20) return 0;
        if (c == '\\') {
            if (r->p >= r->end) return 0;
            unsigned e = *r->p++;
            if (e == 'u') {
                /* a surrogate pair, or a code point that is not a surrogate */
                long u = rd_hex4(r);
                if (u < 0 || (u >= 0xDC00 && u <= 0xDFFF)) return 0;
                if (u >= 0xD800 && u <= 0xDBFF) {
                    if (r->end - r->p < 2 || r->p[0] != '\\' || r->p[1] != 'u') return 0;
                    r->p += 2;
                    long lo = rd_hex4(r);
                    if (lo < 0xDC00 || lo > 0xDFFF) return 0;
                }
            } else if (!e || !strchr("\"\\/bfnrt", (int)e)) {
                return 0;
            }
            continue;
        }
        if (c < 0x80) continue;
        /* UTF-8: the code point must be minimal, not a surrogate, <= U+10FFFF */
        int n = c >= 0xF0 ? 3 : c >= 0xE0 ? 2 : c >= 0xC0 ? 1 : -1;
        if (n < 0 || c > 0xF4) return 0;
        unsigned cp = c & (0x3F >> n);
        for (int i = 0; i < n; i++) {
            if (r->p >= r->end || (*r->p & 0xC0) != 0x80) return 0;
            cp = cp << 6 | (*r->p++ & 0x3F);
        }
        const unsigned min[4] = {0, 0x80, 0x800, 0x10000};
        if (cp < min[n] || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) return 0;
    }
    return 0;
}

static int rd_digits(rd *r) {
    const unsigned char *s = r->p;
    while (r->p < r->end && *r->p >= '0' && *r->p <= '9') r->p++;
    return r->p > s;
}

static int rd_number(rd *r) {
    if (rd_peek(r) == '-') r->p++;
    if (rd_peek(r) == '0')
        r->p++;
    else if (!rd_digits(r))
        return 0;
    if (rd_peek(r) == '.') {
        r->p++;
        if (!rd_digits(r)) return 0;
    }
    if (rd_peek(r) == 'e' || rd_peek(r) == 'E') {
        r->p++;
        if (rd_peek(r) == '+' || rd_peek(r) == '-') r->p++;
        if (!rd_digits(r)) return 0;
    }
    return 1;
}

static int rd_container(rd *r, int close) {
    if (++r->depth > JSON_PDA_MAX_DEPTH) return 0;
    r->p++;
    rd_ws(r);
    if (rd_peek(r) == close) {
        r->p++;
        r->depth--;
        return 1;
    }
    for (;;) {
        if (close == '}') {
            if (rd_peek(r) != '"' || !rd_string(r)) return 0;
            rd_ws(r);
            if (rd_peek(r) != ':') return 0;
            r->p++;
            rd_ws(r);
        }
        if (!rd_value(r)) return 0;
        rd_ws(r);
        int c = rd_peek(r);
        r->p++;
        if (c == close) break;
        if (c != ',') return 0;
        rd_ws(r);
    }
    r->depth--;
    return 1;
}

static int rd_value(rd *r) {
    int c = rd_peek(r);
    if (c == '{') return rd_container(r, '}');
    if (c == '[') return rd_container(r, ']');
    if (c == '"') return rd_string(r);
    for (int i = 0; i < 3; i++) {
        const char *lit = i == 0 ? "true" : i == 1 ? "false" : "null";
        size_t n = strlen(lit);
        if ((size_t)(r->end - r->p) >= n && !memcmp(r->p, lit, n)) {
            r->p += n;
            return 1;
        }
    }
    return (c == '-' || (c >= '0' && c <= '9')) && rd_number(r);
}

/* whole text a valid document with an object root (whitespace runs not bounded here) */
static int rd_doc(const unsigned char *s, size_t n) {
    rd r = {s, s + n, 0};
    rd_ws(&r);
    if (rd_peek(&r) != '{' || !rd_value(&r)) return 0;
    rd_ws(&r);
    return r.p == r.end;
}

/* the automaton over the whole text: every byte taken and done */
static int pda_doc(const unsigned char *s, size_t n) {
    json_pda p;
    json_pda_init(&p);
    for (size_t i = 0; i < n; i++)
        if (!json_pda_feed(&p, s[i])) return 0;
    return json_pda_done(&p);
}

static void test_cases(void) {
    static const char *ok[] = {
        "{}",
        " \n{ } \t",
        "{\"a\":1}",
        "{\"\":\"\"}",
        "{\"a\":[1,2.5,-3e10,0,-0.0,1E+2,2e-3,true,false,null,\"x\\u00e9\\n\\\"\\\\\\/\",{}]}",
        "{\"k\" : { \"n\" : [ [ ] , [ { } ] ] } }",
        "{\"u\":\"\xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80\xed\x9f\xbf\xf4\x8f\xbf\xbf\"}",
        "{\"n\":-0,\"m\":10,\"f\":0.125e1}",
        "{\"s\":\"\\uD83D\\uDE00\\ud7ff\\uE000\\udbff\\udfff\"}",
    };
    static const char *bad[] = {
        "[]",
        "\"a\"",
        "1",
        "{\"a\"}",
        "{\"a\":}",
        "{\"a\":01}",
        "{\"a\":1.}",
        "{\"a\":.5}",
        "{\"a\":+1}",
        "{\"a\":tru}",
        "{\"a\":nul}",
        "{\"a\":\"\x01\"}",
        "{\"a\":\"\\q\"}",
        "{\"a\":\"\\u12G4\"}",
        "{,}",
        "{\"a\":1,}",
        "{\"a\":[1,]}",
        "{\"a\" 1}",
        "{}}",
        "{} x",
        "{\"a\":\"\xc0\x80\"}",
        "{\"a\":\"\xed\xa0\x80\"}",
        "{\"a\":\"\xf5\x80\x80\x80\"}",
        "{\"a\":\"\xe0\x80\x80\"}",
        "{\"a\":\"\xe2\x82\"}",
        "{\"a\":\"\xf4\x90\x80\x80\"}",
        "{\"a\":-}",
        "{\"a\":1e}",
        "{\"a\":1e+}",
        "{'a':1}",
        "{\"a\":[}",
        "{\"a\":]}",
        "{",
        "{\"a\":\"\\uD83D\"}",
        "{\"a\":\"\\uDE00\"}",
        "{\"a\":\"\\uD83Dx\"}",
        "{\"a\":\"\\uD83D\\u0041\"}",
        "{\"a\":\"\\ud83d\\n\"}",
        "{\"a\":1",
        "{\"a\":\"x",
    };
    for (size_t i = 0; i < sizeof ok / sizeof *ok; i++) {
        const unsigned char *s = (const unsigned char *)ok[i];
        CHECKF(pda_doc(s, strlen(ok[i])) && rd_doc(s, strlen(ok[i])), "valid %zu: %s", i, ok[i]);
    }
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        const unsigned char *s = (const unsigned char *)bad[i];
        CHECKF(!pda_doc(s, strlen(bad[i])) && !rd_doc(s, strlen(bad[i])), "invalid %zu: %s", i,
               bad[i]);
    }
    /* a refused byte leaves the state as it was */
    json_pda p, q;
    json_pda_init(&p);
    CHECK(json_pda_feed_all(&p, (const uint8_t *)"{\"a\":1", 6));
    q = p;
    CHECK(!json_pda_feed(&p, 'x') && !memcmp(&p, &q, sizeof p));
    CHECK(!json_pda_feed_all(&p, (const uint8_t *)"2,x", 3) && !memcmp(&p, &q, sizeof p));
    CHECK(json_pda_feed_all(&p, (const uint8_t *)"2}", 2) && json_pda_done(&p));
}

static void test_bounds(void) {
    /* nesting: the root and 63 arrays inside it, not 64 */
    char doc[200];
    int n = sprintf(doc, "{\"a\":");
    for (int i = 0; i < JSON_PDA_MAX_DEPTH - 1; i++) doc[n++] = '[';
    for (int i = 0; i < JSON_PDA_MAX_DEPTH - 1; i++) doc[n++] = ']';
    doc[n++] = '}';
    CHECK(pda_doc((unsigned char *)doc, (size_t)n) && rd_doc((unsigned char *)doc, (size_t)n));
    json_pda p;
    json_pda_init(&p);
    CHECK(json_pda_feed_all(&p, (const uint8_t *)doc, 5 + JSON_PDA_MAX_DEPTH - 1));
    CHECK(!json_pda_feed(&p, '['));
    /* whitespace: JSON_PDA_MAX_WS in a row, not one more; a value resets */
    json_pda_init(&p);
    for (int i = 0; i < JSON_PDA_MAX_WS; i++) CHECK(json_pda_feed(&p, i % 2 ? ' ' : '\n'));
    CHECK(!json_pda_feed(&p, ' '));
    CHECK(json_pda_feed(&p, '{'));
    for (int i = 0; i < JSON_PDA_MAX_WS; i++) CHECK(json_pda_feed(&p, '\t'));
    CHECK(!json_pda_feed(&p, '\t'));
    CHECK(json_pda_feed_all(&p, (const uint8_t *)"\"s    \"", 7)); /* inside strings: any */
}

/* ---- random documents ---- */
static uint32_t g_seed = 12345;
static uint32_t rnd(uint32_t n) {
    g_seed = g_seed * 1664525u + 1013904223u;
    return (g_seed >> 8) % n;
}

typedef struct sb {
    char b[8192];
    size_t n;
} sb;
static void put(sb *s, const char *t) {
    size_t k = strlen(t);
    if (s->n + k < sizeof s->b) {
        memcpy(s->b + s->n, t, k);
        s->n += k;
    }
}
static void ws(sb *s) {
    static const char *w[] = {"", "", "", " ", "\n  ", "\t", "\r\n"};
    put(s, w[rnd(7)]);
}
static void gen_value(sb *s, int depth);
static void gen_string(sb *s) {
    static const char *parts[] = {"a",
                                  "key",
                                  " ",
                                  "\\n",
                                  "\\\"",
                                  "\\\\",
                                  "\\u00e9",
                                  "\\uD83D\\ude00",
                                  "\xc3\xa9",
                                  "\xe2\x82\xac",
                                  "\xf0\x9f\x98\x80",
                                  "/",
                                  "\\/",
                                  "\\uDBFF\\uDFFF",
                                  "\\ud7ff\\uE000"};
    put(s, "\"");
    for (uint32_t i = rnd(4); i > 0; i--) put(s, parts[rnd(15)]);
    put(s, "\"");
}
static void gen_value(sb *s, int depth) {
    uint32_t k = depth > 5 ? 2 + rnd(5) : rnd(7);
    static const char *nums[] = {"0", "-0", "12", "-3.25", "1e9", "2E-7", "0.5e+3", "7"};
    static const char *lits[] = {"true", "false", "null"};
    if (k == 0 || k == 1) {
        const int obj = k == 0;
        put(s, obj ? "{" : "[");
        for (uint32_t i = 0, n = rnd(4); i < n; i++) {
            if (i) put(s, ",");
            ws(s);
            if (obj) {
                gen_string(s);
                ws(s);
                put(s, ":");
                ws(s);
            }
            gen_value(s, depth + 1);
            ws(s);
        }
        put(s, obj ? "}" : "]");
    } else if (k == 2 || k == 3) {
        gen_string(s);
    } else if (k == 4 || k == 5) {
        put(s, nums[rnd(8)]);
    } else {
        put(s, lits[rnd(3)]);
    }
}

static void test_random(void) {
    int docs = 0, muts = 0, agree = 0, valid_muts = 0;
    for (int it = 0; it < 3000; it++) {
        sb s = {.n = 0};
        ws(&s);
        put(&s, "{");
        for (uint32_t i = 0, n = rnd(4); i < n; i++) {
            if (i) put(&s, ",");
            gen_string(&s);
            put(&s, ":");
            gen_value(&s, 1);
        }
        put(&s, "}");
        ws(&s);
        const unsigned char *u = (const unsigned char *)s.b;
        CHECKF(pda_doc(u, s.n) && rd_doc(u, s.n), "random document %d: %.*s", it, (int)s.n, s.b);
        docs++;
        /* one-byte mutations: the automaton and the reference agree */
        static const char alpha[] = "{}[]:,\"\\0123456789.-+eEtrufalsn x\n\x01\xc3\xa9\xff";
        for (int m = 0; m < 8; m++) {
            unsigned char t[8200];
            size_t n = s.n, at = rnd((uint32_t)n + 1);
            memcpy(t, u, n);
            const int op = (int)rnd(3);
            const unsigned char c = (unsigned char)alpha[rnd(sizeof alpha - 1)];
            if (op == 0 && n > 0 && at < n) { /* delete */
                memmove(t + at, t + at + 1, n - at - 1);
                n--;
            } else if (op == 1) { /* insert */
                memmove(t + at + 1, t + at, n - at);
                t[at] = c;
                n++;
            } else if (at < n) {
                t[at] = c;
            }
            const int a = pda_doc(t, n), b = rd_doc(t, n);
            CHECKF(a == b, "mutation of document %d: automaton %d, reference %d: %.*s", it, a, b,
                   (int)n, t);
            agree += a == b;
            valid_muts += b;
            muts++;
        }
    }
    printf("  %d random documents accepted; %d/%d mutations agree (%d still valid)\n", docs, agree,
           muts, valid_muts);
    CHECK(valid_muts > 100 && valid_muts < muts - 1000); /* both outcomes well exercised */
}

/* ---- the gate over a small vocabulary ---- */
static void test_gate(void) {
    static const char *toks[] = {"<unk>", "<s>", "</s>", "{", "}",      "\"", "a",  ":", "1",
                                 "{\"",   "\":", "\"}",  " ", "<0x7B>", "x}", "}}", "]"};
    enum { NT = sizeof toks / sizeof *toks };
    int32_t types[NT];
    for (int i = 0; i < NT; i++) types[i] = 1;
    types[0] = 2;
    types[1] = types[2] = 3;
    types[13] = 6;
    tokenizer_vocab v;
    tokenizer_vocab_init(&v);
    v.type = TOKENIZER_SPM;
    v.n_tokens = NT;
    v.tokens = toks;
    v.token_types = types;
    v.bos = 1;
    v.eos = 2;
    v.unk = 0;
    v.add_bos = 0;
    v.add_space_prefix = 0;
    tokenizer *t = NULL;
    CHECKF(tokenizer_create(&v, &t) == M40LLM_OK, "%s", m40llm_last_error());
    if (!t) return;
    json_vocab *jv = NULL;
    json_gate *g = NULL;
    CHECK(json_vocab_build(t, NT, &jv) == M40LLM_OK);
    CHECK(json_gate_create(jv, NULL, &g) == M40LLM_OK);
    if (!g) {
        json_vocab_free(jv);
        tokenizer_free(t);
        return;
    }
    /* first: '{' in its three forms, and blanks */
    CHECK(json_gate_allows(g, 3) && json_gate_allows(g, 9) && json_gate_allows(g, 13));
    CHECK(json_gate_allows(g, 12) && !json_gate_allows(g, 4) && !json_gate_allows(g, 6));
    CHECK(!json_gate_allows(g, 0) && !json_gate_allows(g, 1) && !json_gate_allows(g, 2));
    CHECK(!json_gate_allows(g, -1) && !json_gate_allows(g, NT));
    float row[NT + 2], masked[NT + 2];
    for (int i = 0; i < NT + 2; i++) row[i] = (float)i;
    row[9] = NAN;                                       /* never taken */
    CHECK(json_gate_mask(g, row, masked, NT + 2) == 3); /* '{', <0x7B>, ' ' */
    CHECK(masked[3] == 3 && masked[13] == 13 && masked[12] == 12 && isinf(masked[9]) &&
          isinf(masked[2]) && isinf(masked[NT]) && isinf(masked[NT + 1]));
    /* {"a":1} in tokens */
    const int32_t seq[] = {9, 6, 10, 8, 4};
    for (int i = 0; i < 5; i++) {
        CHECKF(json_gate_allows(g, seq[i]), "token %d of {\"a\":1}", i);
        CHECK(!json_gate_done(g));
        json_gate_accept(g, seq[i]);
    }
    CHECK(json_gate_done(g));
    for (int i = 0; i < NT; i++) CHECKF(json_gate_allows(g, i) == (i == 12), "after: token %d", i);
    json_gate_free(g);
    /* a string's end and the object's in one token; never two closers */
    CHECK(json_gate_create(jv, NULL, &g) == M40LLM_OK);
    const int32_t seq2[] = {9, 6, 10, 5, 6, 11};
    for (int i = 0; i < 6; i++) {
        CHECKF(json_gate_allows(g, seq2[i]), "token %d of {\"a\":\"a\"}", i);
        json_gate_accept(g, seq2[i]);
    }
    CHECK(json_gate_done(g));
    json_gate_free(g);
    CHECK(json_gate_create(jv, NULL, &g) == M40LLM_OK);
    json_gate_accept(g, 3);
    CHECK(!json_gate_allows(g, 15) && json_gate_allows(g, 4) && !json_gate_allows(g, 16));
    json_gate_free(g);
    json_vocab_free(jv);
    tokenizer_free(t);
}

int main(void) {
    test_cases();
    test_bounds();
    test_random();
    test_gate();
    return check_summary("test_json_gate");
}
