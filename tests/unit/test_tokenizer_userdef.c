/* USER_DEFINED tokens of a vocabulary whose turn markers are CONTROL
 * (gemma: HTML tags, whitespace runs) are plain pieces: matched in raw text
 * without special-token parsing and in untrusted text, as the reference
 * tokenizers do, while CONTROL text still needs trusted special parsing.
 * Elsewhere (plain_user_defined false) markup-looking USER_DEFINED tokens
 * stay guarded. A small SPM vocab built here, the GGUF flag through the
 * architecture layer, and the real Gemma 3 vocab where M40LLM_GEMMA3 names
 * it (that part skipped with a message otherwise). */
#include <stdint.h>
#include <string.h>

#include "check.h"
#include "gguf.h"
#include "tokenizer.h"

static bool has_id(const tokenizer *t, const char *s, const uint8_t *mask, unsigned flags,
                   int32_t id, size_t *n_out) {
    int32_t *ids = NULL;
    size_t n = 0;
    if (tokenizer_encode_masked(t, s, strlen(s), mask, flags, &ids, &n)) return false;
    bool found = false;
    for (size_t i = 0; i < n; i++) found |= ids[i] == id;
    free(ids);
    if (n_out) *n_out = n;
    return found;
}

/* 0 <unk>, 1 <s>, 2 </s> (control), 3 <start_of_turn> (control), 4 <table>
 * (user-defined), 5 </s> HTML-like user-defined "<b>", then single bytes. */
static tokenizer *make_vocab(bool plain) {
    static const char *toks[] = {"<unk>",
                                 "<s>",
                                 "</s>",
                                 "<start_of_turn>",
                                 "<table>",
                                 "<b>",
                                 "\xE2\x96\x81",
                                 "a",
                                 "b",
                                 "<",
                                 ">",
                                 "t",
                                 "l",
                                 "e",
                                 "s",
                                 "r",
                                 "_",
                                 "o",
                                 "f",
                                 "u",
                                 "n"};
    static int32_t types[21];
    for (int i = 0; i < 21; i++) types[i] = 1;
    types[0] = 2;
    types[1] = types[2] = types[3] = 3;
    types[4] = types[5] = 4;
    tokenizer_vocab v;
    tokenizer_vocab_init(&v);
    v.type = TOKENIZER_SPM;
    v.n_tokens = 21;
    v.tokens = toks;
    v.token_types = types;
    v.add_bos = 0;
    v.add_space_prefix = 0;
    v.plain_user_defined = plain;
    tokenizer *t = NULL;
    CHECKF(tokenizer_create(&v, &t) == M40LLM_OK, "%s", m40llm_last_error());
    return t;
}

static void test_synthetic(void) {
    tokenizer *plain = make_vocab(true), *guarded = make_vocab(false);
    if (!plain || !guarded) return;
    const char *s = "a<table>b<b>";
    size_t n = 0;
    /* plain: whole tokens in raw text, with or without special parsing */
    CHECK(has_id(plain, s, NULL, 0, 4, &n));
    CHECK(has_id(plain, s, NULL, 0, 5, NULL));
    CHECKF(n == 4, "a <table> b <b>: %zu ids", n);
    /* and from untrusted (message) text under special parsing */
    uint8_t all[12];
    memset(all, 1, sizeof all);
    CHECK(has_id(plain, s, all, TOKENIZER_PARSE_SPECIAL, 4, NULL));
    /* guarded: markup user-defined text is split into pieces unless trusted */
    CHECK(!has_id(guarded, s, NULL, 0, 4, NULL));
    CHECK(!has_id(guarded, s, all, TOKENIZER_PARSE_SPECIAL, 4, NULL));
    CHECK(has_id(guarded, s, NULL, TOKENIZER_PARSE_SPECIAL, 4, NULL));
    /* control text: never from raw or untrusted text, in either vocab */
    const char *c = "a<start_of_turn>";
    uint8_t cm[16];
    memset(cm, 1, sizeof cm);
    CHECK(!has_id(plain, c, NULL, 0, 3, NULL));
    CHECK(!has_id(plain, c, cm, TOKENIZER_PARSE_SPECIAL, 3, NULL));
    CHECK(has_id(plain, c, NULL, TOKENIZER_PARSE_SPECIAL, 3, NULL));
    tokenizer_free(plain);
    tokenizer_free(guarded);
}

/* The real Gemma 3 vocab: tokenizer_load sets the flag from the file's
 * architecture; HTML tags are single tokens in raw text, turn markers are
 * not. */
static void test_gemma3(void) {
    const char *path = getenv("M40LLM_GEMMA3");
    if (!path || !*path) {
        printf("SKIP Gemma 3 part: model not found (set M40LLM_GEMMA3; "
               "scripts/fetch-model.sh gemma3)\n");
        return;
    }
    gguf_file *f = NULL;
    tokenizer *t = NULL;
    int rc = gguf_open(path, &f);
    CHECKF(rc == 0, "%s: %s", path, m40llm_last_error());
    if (rc) return;
    rc = tokenizer_load(f, &t);
    gguf_close(f);
    CHECKF(rc == 0, "%s", m40llm_last_error());
    if (rc) return;
    int32_t table = tokenizer_find(t, "<table>", 7), sot = tokenizer_find(t, "<start_of_turn>", 15);
    int32_t strike = tokenizer_find(t, "</s>", 4);
    CHECK(table >= 0 && tokenizer_token_get_type(t, table) == TOKEN_TYPE_USER_DEFINED);
    CHECK(sot >= 0 && tokenizer_token_get_type(t, sot) == TOKEN_TYPE_CONTROL);
    CHECK(has_id(t, "x <table> y", NULL, 0, table, NULL));
    CHECK(has_id(t, "<s>a</s>", NULL, 0, strike, NULL));
    CHECK(!has_id(t, "x <start_of_turn> y", NULL, 0, sot, NULL));
    CHECK(has_id(t, "x <start_of_turn> y", NULL, TOKENIZER_PARSE_SPECIAL, sot, NULL));
    /* the 31-space run is one user-defined token */
    int32_t run = tokenizer_find(t, "                               ", 31);
    CHECK(run >= 0 && has_id(t, "a                               b", NULL, 0, run, NULL));
    tokenizer_free(t);
}

int main(void) {
    test_synthetic();
    test_gemma3();
    return check_summary("test_tokenizer_userdef");
}
