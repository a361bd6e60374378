/* BPE pre-tokenizers: the regex list each tokenizer.ggml.pre name stands for
 * (the same lists llama.cpp uses), compiled with PCRE2 in UTF + UCP mode.
 *
 * Splitting semantics: the regexes are applied one after another. Each regex
 * runs over every piece produced so far (the piece is the whole subject, so
 * lookaheads and `$` stop at its end); a piece is replaced by its matches and
 * the unmatched gaps between them, in order. A text is thus never dropped:
 * concatenating the words gives the input back. */
#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>
#include <stdlib.h>
#include <string.h>

#include "err.h"
#include "tokenizer_int.h"

#define TOK_PRE_MAX_RE 6

/* Frequently shared patterns. */
#define RE_GPT2 "'s|'t|'re|'ve|'m|'ll|'d| ?\\p{L}+| ?\\p{N}+| ?[^\\s\\p{L}\\p{N}]+|\\s+(?!\\S)"
#define RE_LLAMA3                                                                                  \
    "(?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|"     \
    "\\p{N}{1,3}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+"
#define RE_QWEN2                                                                                   \
    "(?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|"     \
    "\\p{N}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+"
#define RE_CJK  "[\\x{4e00}-\\x{9fa5}\\x{800}-\\x{4e00}\\x{ac00}-\\x{d7ff}]+"
#define RE_PORO " ?[^(\\s|.,!?\\x{2026}\\x{3002}\\x{ff0c}\\x{3001}\\x{964}\\x{6d4}\\x{60c})]+"

typedef struct tok_pre_def {
    const char *names; /* '|'-separated tokenizer.ggml.pre values */
    bool ignore_merges;
    const char *re[TOK_PRE_MAX_RE];
} tok_pre_def;

static const tok_pre_def tok_pre_defs[] = {
    {"default", false, {"[\\p{P}\\$\\+<=>\\^~\\|]+", RE_GPT2, "\\p{N}+", "[0-9][0-9][0-9]"}},
    {"llama3|llama-v3|llama-bpe|falcon3|falcon-h1|pixtral|midm-2.0|lfm2", true, {RE_LLAMA3}},
    {"dbrx|smaug-bpe|chatglm-bpe", false, {RE_LLAMA3}},
    {"deepseek-llm",
     false,
     {"[\r\n]",
      "\\s?[A-Za-z\\x{b5}\\x{c0}-\\x{d6}\\x{d8}-\\x{f6}\\x{f8}-\\x{1ba}\\x{1bc}-\\x{1bf}\\x{1c4"
      "}-\\x{293}\\x{295}-\\x{2af}\\x{370}-\\x{373}\\x{376}\\x{377}\\x{37b}-\\x{37d}\\x{37f}\\x"
      "{386}\\x{388}-\\x{38a}\\x{38c}\\x{38e}-\\x{3a1}\\x{3a3}-\\x{3f5}\\x{3f7}-\\x{481}\\x{48"
      "a}-\\x{52f}\\x{531}-\\x{556}\\x{10a0}-\\x{10c5}\\x{13a0}-\\x{13f5}\\x{13f8}-\\x{13fd}\\x"
      "{1c90}-\\x{1cba}\\x{1cbd}-\\x{1cbf}\\x{1d00}-\\x{1d2b}\\x{1d6b}-\\x{1d77}\\x{1d79}-\\x{1"
      "d9a}\\x{1e00}-\\x{1f15}\\x{1f18}-\\x{1f1d}\\x{1f20}-\\x{1f45}\\x{1f48}-\\x{1f4d}\\x{1f50"
      "}-\\x{1f57}\\x{1f59}\\x{1f5b}\\x{1f5d}\\x{1f5f}-\\x{1f7d}\\x{1f80}-\\x{1fb4}\\x{1fb6}-\\"
      "x{1fbc}\\x{1fbe}\\x{1fc2}-\\x{1fc4}\\x{1fc6}-\\x{1fcc}\\x{1fd0}-\\x{1fd3}\\x{1fd6}-\\x{1"
      "fdb}\\x{1fe0}-\\x{1fec}\\x{1ff2}-\\x{1ff4}\\x{1ff6}-\\x{1ffc}\\x{2102}\\x{2107}\\x{210a}"
      "-\\x{2113}\\x{2115}\\x{2119}-\\x{211d}\\x{2124}\\x{2126}\\x{2128}\\x{212a}-\\x{212d}\\x{"
      "212f}-\\x{2134}\\x{2139}\\x{213c}-\\x{213f}\\x{2145}-\\x{2149}\\x{214e}\\x{2183}\\x{2184"
      "}\\x{2c00}-\\x{2c7b}\\x{2c7e}-\\x{2ce4}\\x{2ceb}-\\x{2cee}\\x{2cf2}\\x{2cf3}\\x{a640}-\\"
      "x{a66d}\\x{a680}-\\x{a69b}\\x{a722}-\\x{a76f}\\x{a771}-\\x{a787}\\x{a78b}-\\x{a78e}\\x{a"
      "b70}-\\x{abbf}\\x{fb00}-\\x{fb06}\\x{fb13}-\\x{fb17}\\x{ff21}-\\x{ff3a}\\x{ff41}-\\x{ff5"
      "a}\\x{10400}-\\x{1044f}\\x{104b0}-\\x{104d3}\\x{104d8}-\\x{104fb}\\x{10c80}-\\x{10cb2}\\"
      "x{10cc0}-\\x{10cf2}\\x{118a0}-\\x{118df}\\x{1e900}-\\x{1e943}]+",
      "\\s?[!-/:-~\\x{ff01}-\\x{ff0f}\\x{ff1a}-\\x{ff5e}\\x{2018}-\\x{201f}\\x{3000}-\\x{3002}]+",
      "\\s+$", RE_CJK, "\\p{N}+"}},
    {"deepseek-coder", false, {"[\r\n]", "\\s?\\p{L}+", "\\s?\\p{P}+", RE_CJK, "\\p{N}"}},
    {"deepseek-v3",
     false,
     {"\\p{N}{1,3}", "[\\x{4e00}-\\x{9fa5}\\x{3040}-\\x{309f}\\x{30a0}-\\x{30ff}]+",
      "[!\"#$%&'()*+,\\-./:;<=>?@\\[\\\\\\]^_`{|}~][A-Za-z]+|[^\r\n\\p{L}\\p{P}\\p{S}]?[\\p{L}"
      "\\p{M}]+| ?[\\p{P}\\p{S}]+[\r\n]*|\\s*[\r\n]+|\\s+(?!\\S)|\\s+"}},
    {"falcon", false, {"[\\p{P}\\$\\+<=>\\^~\\|`]+", RE_GPT2, "[0-9][0-9][0-9]"}},
    {"starcoder|refact|command-r|smollm|codeshell|exaone|minerva-7b", false, {"\\p{N}", RE_GPT2}},
    {"gpt-2|phi-2|jina-es|jina-de|gigachat|jina-v1-en|jina-v2-es|jina-v2-de|jina-v2-code|"
     "roberta-bpe|mpt|olmo|jais|trillion|granite-docling|mellum|a.x-4.0",
     false,
     {RE_GPT2}},
    {"qwen2|qwen2.5|qwen-2.5|deepseek-r1-qwen|stablelm2|hunyuan|grok-2", false, {RE_QWEN2}},
    {"poro-chat|bloom|gpt3-finnish", false, {RE_PORO}},
    {"viking", false, {RE_PORO, "\\p{N}"}},
    {"tekken",
     false,
     {"[^\\r\\n\\p{L}\\p{N}]?[\\p{Lu}\\p{Lt}\\p{Lm}\\p{Lo}\\p{M}]*[\\p{Ll}\\p{Lm}\\p{Lo}\\p{M}]+|"
      "[^\\r\\n\\p{L}\\p{N}]?[\\p{Lu}\\p{Lt}\\p{Lm}\\p{Lo}\\p{M}]+[\\p{Ll}\\p{Lm}\\p{Lo}\\p{M}]*|"
      "\\p{N}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n/]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+"}},
    {"gpt-4o|minimax-m2",
     false,
     {"[^\\r\\n\\p{L}\\p{N}]?[\\p{Lu}\\p{Lt}\\p{Lm}\\p{Lo}\\p{M}]*[\\p{Ll}\\p{Lm}\\p{Lo}\\p{M}]+"
      "(?i:'s|'t|'re|'ve|'m|'ll|'d)?|[^\\r\\n\\p{L}\\p{N}]?[\\p{Lu}\\p{Lt}\\p{Lm}\\p{Lo}\\p{M}]+"
      "[\\p{Ll}\\p{Lm}\\p{Lo}\\p{M}]*(?i:'s|'t|'re|'ve|'m|'ll|'d)?|\\p{N}{1,3}| ?[^\\s\\p{L}"
      "\\p{N}]+[\\r\\n/]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+"}},
    {"seed-coder",
     false,
     {"(?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|"
      "\\p{N}{1}| ?[^\\s\\p{L}\\p{N}\\r\\n]+|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+"}},
};

struct tok_pre {
    int n_re;
    pcre2_code *re[TOK_PRE_MAX_RE];
};

static bool tok_pre_name_in(const char *names, const char *name) {
    size_t n = strlen(name);
    for (const char *p = names;;) {
        const char *bar = strchr(p, '|');
        size_t k = bar ? (size_t)(bar - p) : strlen(p);
        if (k == n && !memcmp(p, name, n)) return true;
        if (!bar) return false;
        p = bar + 1;
    }
}

void tok_pre_free(tok_pre *p) {
    if (!p) return;
    for (int i = 0; i < p->n_re; i++) pcre2_code_free(p->re[i]);
    free(p);
}

int tok_pre_create(const char *name, tok_pre **out, bool *ignore_merges) {
    *out = NULL;
    if (!name || !*name) name = "default";
    const tok_pre_def *d = NULL;
    for (size_t i = 0; i < sizeof tok_pre_defs / sizeof tok_pre_defs[0]; i++)
        if (tok_pre_name_in(tok_pre_defs[i].names, name)) d = &tok_pre_defs[i];
    if (!d)
        return err_set(M40LLM_ERR_UNSUPPORTED,
                       "tokenizer.ggml.pre: unknown pre-tokenizer '%s' (known: gpt-2, llama3, "
                       "llama-bpe, starcoder, smollm, qwen2, deepseek-coder, deepseek-llm, ...)",
                       name);
    tok_pre *p = calloc(1, sizeof *p);
    if (!p) return err_set(M40LLM_ERR_OOM, "tokenizer: out of memory");
    for (int i = 0; i < TOK_PRE_MAX_RE && d->re[i]; i++) {
        int ecode;
        PCRE2_SIZE eoff;
        /* DOLLAR_ENDONLY: `$` means end of the piece, as in ECMAScript regexes */
        pcre2_code *re =
            pcre2_compile((PCRE2_SPTR)d->re[i], PCRE2_ZERO_TERMINATED,
                          PCRE2_UTF | PCRE2_UCP | PCRE2_DOLLAR_ENDONLY, &ecode, &eoff, NULL);
        if (!re) {
            PCRE2_UCHAR msg[256];
            pcre2_get_error_message(ecode, msg, sizeof msg);
            tok_pre_free(p);
            return err_set(M40LLM_ERR_INTERNAL, "pre-tokenizer '%s' regex %d at %zu: %s", name, i,
                           (size_t)eoff, (const char *)msg);
        }
        pcre2_jit_compile(re, PCRE2_JIT_COMPLETE); /* optional speed-up; falls back if absent */
        p->re[p->n_re++] = re;
    }
    *ignore_merges = d->ignore_merges;
    *out = p;
    return M40LLM_OK;
}

typedef struct tok_offs {
    size_t *p;
    size_t n, cap;
} tok_offs;

static int tok_offs_push(tok_offs *v, size_t x) {
    if (v->n == v->cap) {
        size_t cap = v->cap ? v->cap * 2 : 64;
        size_t *p = realloc(v->p, cap * sizeof *p);
        if (!p) return err_set(M40LLM_ERR_OOM, "tokenizer: out of memory (pre-tokenizer)");
        v->p = p;
        v->cap = cap;
    }
    v->p[v->n++] = x;
    return M40LLM_OK;
}

/* Splits one piece [a, b) of text with re, appending the end offsets of the
 * resulting words (gaps and matches) to out. */
static int tok_pre_split_one(const pcre2_code *re, pcre2_match_data *md, const char *text, size_t a,
                             size_t b, tok_offs *out) {
    const PCRE2_SPTR subj = (PCRE2_SPTR)(text + a);
    const size_t n = b - a;
    size_t pos = 0, done = 0; /* done: end of what was already emitted */
    while (pos < n) {
        int rc = pcre2_match(re, subj, n, pos, PCRE2_NO_UTF_CHECK, md, NULL);
        if (rc == PCRE2_ERROR_NOMATCH) break;
        if (rc < 0) {
            PCRE2_UCHAR msg[256];
            pcre2_get_error_message(rc, msg, sizeof msg);
            return err_set(M40LLM_ERR_INTERNAL, "pre-tokenizer: regex match failed at byte %zu: %s",
                           a + pos, (const char *)msg);
        }
        PCRE2_SIZE *ov = pcre2_get_ovector_pointer(md);
        size_t s = ov[0], e = ov[1];
        if (e == s) { /* an empty match splits nothing: step one character */
            pos = s + tok_utf8_len((unsigned char)text[a + s]);
            continue;
        }
        int err = M40LLM_OK;
        if (s > done) err = tok_offs_push(out, a + s);
        if (!err) err = tok_offs_push(out, a + e);
        if (err) return err;
        done = pos = e;
    }
    if (done < n) return tok_offs_push(out, b);
    return M40LLM_OK;
}

int tok_pre_split(const tok_pre *p, const char *text, size_t len, size_t **offs, size_t *n_words) {
    tok_offs cur = {0}, next = {0};
    int rc = tok_offs_push(&cur, 0);
    if (!rc && len) rc = tok_offs_push(&cur, len);
    pcre2_match_data *md = NULL;
    for (int r = 0; !rc && r < p->n_re; r++) {
        if (!md) md = pcre2_match_data_create(4, NULL);
        if (!md) {
            rc = err_set(M40LLM_ERR_OOM, "tokenizer: out of memory (regex match data)");
            break;
        }
        next.n = 0;
        rc = tok_offs_push(&next, 0);
        for (size_t i = 0; !rc && i + 1 < cur.n; i++)
            rc = tok_pre_split_one(p->re[r], md, text, cur.p[i], cur.p[i + 1], &next);
        tok_offs t = cur;
        cur = next;
        next = t;
    }
    pcre2_match_data_free(md);
    free(next.p);
    if (rc) {
        free(cur.p);
        return rc;
    }
    *offs = cur.p;
    *n_words = cur.n - 1;
    return M40LLM_OK;
}
