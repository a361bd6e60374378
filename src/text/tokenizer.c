/* Tokenizer construction, special tokens and the encode entry point. */
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "err.h"
#include "tokenizer_int.h"

void tokenizer_vocab_init(tokenizer_vocab *v) {
    memset(v, 0, sizeof *v);
    v->bos = v->eos = v->eot = v->eom = v->unk = v->pad = -1;
    v->add_bos = v->add_eos = v->add_space_prefix = -1;
}

void tokenizer_free(tokenizer *t) {
    if (!t) return;
    free(t->pool);
    free(t->text);
    free(t->len);
    free(t->score);
    free(t->ttype);
    free(t->attr);
    tok_strmap_free(&t->vocab);
    free(t->merge_pool);
    free(t->merge);
    free(t->merge_len);
    tok_strmap_free(&t->merges);
    tok_index_free(t);
    free(t->special);
    free(t->eog);
    tok_pre_free(t->pre);
    free(t);
}

/* Copies n strings into one NUL-separated pool; empty token texts become
 * "[EMPTY_i]" so every token stays addressable by text (llama.cpp does the same). */
static int tok_copy_strings(const char *const *src, const uint32_t *lens, int32_t n,
                            bool fill_empty, char **pool, const char ***ptr, uint32_t **len) {
    size_t total = 0;
    *pool = NULL;
    *ptr = calloc((size_t)n, sizeof **ptr);
    *len = calloc((size_t)n, sizeof **len);
    if (!*ptr || !*len) return err_set(M40LLM_ERR_OOM, "tokenizer: out of memory");
    for (int32_t i = 0; i < n; i++) {
        if (!src[i]) return err_set(M40LLM_ERR_INVALID_ARG, "tokenizer: string %d is NULL", i);
        size_t l = lens ? lens[i] : strlen(src[i]);
        if (l > 0xFFFFFF) return err_set(M40LLM_ERR_FORMAT, "tokenizer: string %d is too long", i);
        (*len)[i] = (uint32_t)l;
        total += (l ? l : 24) + 1;
    }
    *pool = malloc(total ? total : 1);
    if (!*pool) return err_set(M40LLM_ERR_OOM, "tokenizer: out of memory (%zu bytes)", total);
    char *p = *pool;
    for (int32_t i = 0; i < n; i++) {
        size_t l = (*len)[i];
        if (l) {
            memcpy(p, src[i], l);
        } else if (fill_empty) {
            l = (size_t)snprintf(p, 24, "[EMPTY_%d]", i);
            (*len)[i] = (uint32_t)l;
        }
        p[l] = '\0';
        (*ptr)[i] = p;
        p += l + 1;
    }
    return M40LLM_OK;
}

static int tok_u64_cmp(const void *a, const void *b) {
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

static int tok_int_cmp(const void *a, const void *b) {
    int32_t x = *(const int32_t *)a, y = *(const int32_t *)b;
    return x < y ? -1 : x > y;
}

static bool tok_ascii_icontains(const char *hay, const char *needle) {
    size_t n = strlen(needle);
    for (const char *p = hay; *p; p++) {
        size_t i = 0;
        while (i < n && p[i] && tolower((unsigned char)p[i]) == needle[i]) i++;
        if (i == n) return true;
    }
    return false;
}

/* Tokens that end a turn when present, in the order used to pick the EOT id. */
static const char *const tok_eog_texts[] = {
    "<|eot_id|>",
    "<|im_end|>",
    "<|end|>",
    "<end_of_turn>",
    "<|endoftext|>",
    "<|end_of_text|>",
    "<EOT>",
    "_<EOT>",
    "<\xEF\xBD\x9C"
    "end\xE2\x96\x81"
    "of\xE2\x96\x81"
    "sentence\xEF\xBD\x9C>",
    "<end_of_utterance>",
    "<|eom_id|>",
    "<|return|>",
    "<|call|>",
};
#define TOK_N_EOG_TEXTS (sizeof tok_eog_texts / sizeof tok_eog_texts[0])

static int tok_check_id(const char *what, int32_t *id, int32_t n_vocab) {
    if (*id < -1 || *id >= n_vocab)
        return err_set(M40LLM_ERR_FORMAT,
                       "tokenizer: %s token id %d is outside the vocab (%d tokens)", what, *id,
                       n_vocab);
    return M40LLM_OK;
}

static int tok_setup_special(tokenizer *t, const tokenizer_vocab *v) {
    int32_t n = t->n_vocab;
    t->bos = v->bos;
    t->eos = v->eos;
    t->eot = v->eot;
    t->eom = v->eom;
    t->unk = v->unk;
    t->pad = v->pad;
    if (t->type == TOKENIZER_SPM) { /* SentencePiece defaults when metadata is silent */
        if (t->bos < 0 && n > 1) t->bos = 1;
        if (t->eos < 0 && n > 2) t->eos = 2;
        if (t->unk < 0) t->unk = 0;
    }
    int rc = tok_check_id("bos", &t->bos, n);
    if (!rc) rc = tok_check_id("eos", &t->eos, n);
    if (!rc) rc = tok_check_id("eot", &t->eot, n);
    if (!rc) rc = tok_check_id("eom", &t->eom, n);
    if (!rc) rc = tok_check_id("unknown", &t->unk, n);
    if (!rc) rc = tok_check_id("padding", &t->pad, n);
    if (rc) return rc;

    bool spm = t->type == TOKENIZER_SPM;
    bool llama3 = !spm && !strcmp(t->pre_name, "llama3");
    t->add_bos = v->add_bos >= 0 ? v->add_bos != 0 : (spm || llama3);
    t->add_eos = v->add_eos >= 0 ? v->add_eos != 0 : false;
    t->add_space_prefix = v->add_space_prefix >= 0 ? v->add_space_prefix != 0 : spm;
    if (t->add_bos && t->bos < 0)
        return err_set(M40LLM_ERR_FORMAT, "tokenizer: add_bos_token is set but there is no BOS id");
    if (t->add_eos && t->eos < 0)
        return err_set(M40LLM_ERR_FORMAT, "tokenizer: add_eos_token is set but there is no EOS id");

    /* End-of-generation set: EOS/EOT/EOM plus known end-of-turn texts, which
     * are forced to CONTROL so they never leak into output text. */
    int32_t eog_found[TOK_N_EOG_TEXTS];
    for (size_t k = 0; k < TOK_N_EOG_TEXTS; k++) {
        eog_found[k] = tok_strmap_get(&t->vocab, tok_eog_texts[k], strlen(tok_eog_texts[k]));
        if (eog_found[k] >= 0) t->ttype[eog_found[k]] = TOKEN_TYPE_CONTROL;
    }
    if (t->eot < 0)
        for (size_t k = 0; k < 9 && t->eot < 0; k++) t->eot = eog_found[k];
    t->eog = malloc(sizeof *t->eog * (TOK_N_EOG_TEXTS + 3));
    if (!t->eog) return err_set(M40LLM_ERR_OOM, "tokenizer: out of memory");
    int32_t cand[TOK_N_EOG_TEXTS + 3];
    size_t nc = 0;
    cand[nc++] = t->eos;
    cand[nc++] = t->eot;
    cand[nc++] = t->eom;
    for (size_t k = 0; k < TOK_N_EOG_TEXTS; k++) cand[nc++] = eog_found[k];
    qsort(cand, nc, sizeof cand[0], tok_int_cmp);
    for (size_t k = 0; k < nc; k++)
        if (cand[k] >= 0 && (t->n_eog == 0 || t->eog[t->n_eog - 1] != cand[k]))
            t->eog[t->n_eog++] = cand[k];

    /* Phi-3 converted vocabs: special tokens swallow following whitespace. */
    if (v->model_name && (tok_ascii_icontains(v->model_name, "phi-3") ||
                          tok_ascii_icontains(v->model_name, "phi3"))) {
        for (int32_t i = 0; i < n; i++)
            if (t->ttype[i] == TOKEN_TYPE_CONTROL || t->ttype[i] == TOKEN_TYPE_USER_DEFINED ||
                t->ttype[i] == TOKEN_TYPE_UNKNOWN)
                t->attr[i] |= TOK_ATTR_RSTRIP;
        const char *keep[] = {"<unk>", "<s>", "<|endoftext|>"};
        for (size_t k = 0; k < 3; k++) {
            int32_t id = tok_strmap_get(&t->vocab, keep[k], strlen(keep[k]));
            if (id >= 0) t->attr[id] &= (uint8_t)~TOK_ATTR_RSTRIP;
        }
        int32_t eos_txt = tok_strmap_get(&t->vocab, "</s>", 4);
        if (eos_txt >= 0) t->attr[eos_txt] |= TOK_ATTR_RSTRIP;
    }

    /* User-defined tokens that look like markup (<|User|>, <|EOT|>, </s>) act
     * as turn markers in some chat formats: they are matched only in trusted
     * text. Plain ones (whitespace runs, single characters, even "{" or "<")
     * are vocabulary pieces and are always matched, as llama.cpp does: a turn
     * marker has at least two bytes. A vocabulary whose turn markers are
     * CONTROL (plain_user_defined) has none of them. */
    for (int32_t i = 0; i < n && !v->plain_user_defined; i++)
        if (t->ttype[i] == TOKEN_TYPE_USER_DEFINED && t->len[i] >= 2 &&
            strpbrk(t->text[i], "<>[]{}|"))
            t->attr[i] |= TOK_ATTR_MARKUP;

    /* Special-text cache, longest first (a longer text wins over its prefixes),
     * then by id. Sorted through packed keys: (~len << 32) | id. */
    t->special = malloc(sizeof *t->special * (size_t)n);
    uint64_t *keys = malloc(sizeof *keys * (size_t)n);
    if (!t->special || !keys) {
        free(keys);
        return err_set(M40LLM_ERR_OOM, "tokenizer: out of memory");
    }
    for (int32_t i = 0; i < n; i++)
        if (t->ttype[i] == TOKEN_TYPE_CONTROL || t->ttype[i] == TOKEN_TYPE_USER_DEFINED ||
            t->ttype[i] == TOKEN_TYPE_UNKNOWN)
            keys[t->n_special++] = ((uint64_t)(0xFFFFFFFFu - t->len[i]) << 32) | (uint32_t)i;
    qsort(keys, (size_t)t->n_special, sizeof *keys, tok_u64_cmp);
    for (int32_t k = 0; k < t->n_special; k++) t->special[k] = (int32_t)(keys[k] & 0xFFFFFFFFu);
    free(keys);

    /* SPM byte fallback: <0xXX>, else the one-byte token. */
    for (int b = 0; b < 256; b++) {
        char hex[8];
        snprintf(hex, sizeof hex, "<0x%02X>", b);
        int32_t id = tok_strmap_get(&t->vocab, hex, 6);
        if (id < 0) {
            char c = (char)b;
            id = tok_strmap_get(&t->vocab, &c, 1);
        }
        t->byte_token[b] = id;
    }
    return M40LLM_OK;
}

int tokenizer_create(const tokenizer_vocab *v, tokenizer **out) {
    if (!v || !out) return err_set(M40LLM_ERR_INVALID_ARG, "tokenizer_create: NULL argument");
    *out = NULL;
    if (v->type != TOKENIZER_SPM && v->type != TOKENIZER_BPE)
        return err_set(M40LLM_ERR_UNSUPPORTED, "tokenizer: unknown tokenizer type %d", v->type);
    if (v->n_tokens <= 0 || !v->tokens)
        return err_set(M40LLM_ERR_FORMAT, "tokenizer: the vocab has no tokens");
    if (v->type == TOKENIZER_BPE && (v->n_merges <= 0 || !v->merges))
        return err_set(M40LLM_ERR_FORMAT, "tokenizer: a byte-level BPE vocab needs merges");
    tokenizer *t = calloc(1, sizeof *t);
    if (!t) return err_set(M40LLM_ERR_OOM, "tokenizer: out of memory");
    t->type = v->type;
    t->n_vocab = v->n_tokens;
    int32_t n = v->n_tokens;
    int rc = tok_copy_strings(v->tokens, v->token_lens, n, true, &t->pool, &t->text, &t->len);
    if (rc) goto fail;
    t->score = calloc((size_t)n, sizeof *t->score);
    t->ttype = calloc((size_t)n, 1);
    t->attr = calloc((size_t)n, 1);
    if (!t->score || !t->ttype || !t->attr) {
        rc = err_set(M40LLM_ERR_OOM, "tokenizer: out of memory");
        goto fail;
    }
    for (int32_t i = 0; i < n; i++) {
        t->score[i] = v->scores ? v->scores[i] : 0.0f;
        int32_t ty = v->token_types ? v->token_types[i] : TOKEN_TYPE_NORMAL;
        /* unknown type values behave as UNDEFINED: never matched, never printed */
        t->ttype[i] = (uint8_t)(ty >= TOKEN_TYPE_NORMAL && ty <= TOKEN_TYPE_BYTE ? ty : 0);
    }
    rc = tok_strmap_build(&t->vocab, t->text, t->len, n, false);
    if (rc) goto fail;

    if (t->type == TOKENIZER_BPE) {
        const char *pre = v->pre && *v->pre ? v->pre : "default";
        snprintf(t->pre_name, sizeof t->pre_name, "%s", pre);
        rc = tok_pre_create(pre, &t->pre, &t->ignore_merges);
        if (rc) goto fail;
        t->n_merges = v->n_merges;
        rc = tok_copy_strings(v->merges, v->merge_lens, v->n_merges, false, &t->merge_pool,
                              &t->merge, &t->merge_len);
        if (rc) goto fail;
        /* the first of duplicate merges keeps its rank */
        rc = tok_strmap_build(&t->merges, t->merge, t->merge_len, t->n_merges, true);
        if (rc) goto fail;
    }
    rc = tok_setup_special(t, v);
    if (!rc) rc = tok_index_build(t);
    if (rc) goto fail;
    *out = t;
    return M40LLM_OK;
fail:
    tokenizer_free(t);
    return rc;
}

/* ---- special-text partition ---- */

typedef struct tok_frag {
    int32_t id;      /* >= 0: a special token; -1: raw text */
    size_t off, len; /* raw text range */
} tok_frag;

typedef struct tok_frags {
    tok_frag *p;
    size_t n, cap;
} tok_frags;

static int tok_frags_push(tok_frags *v, tok_frag f) {
    if (v->n == v->cap) {
        size_t cap = v->cap ? v->cap * 2 : 16;
        tok_frag *p = realloc(v->p, cap * sizeof *p);
        if (!p) return err_set(M40LLM_ERR_OOM, "tokenizer: out of memory (fragments)");
        v->p = p;
        v->cap = cap;
    }
    v->p[v->n++] = f;
    return M40LLM_OK;
}

/* Splits raw fragments around every occurrence of special token id; with
 * trust, only occurrences none of whose bytes is set in untrusted count. */
static int tok_split_special(const tokenizer *t, int32_t id, const char *text,
                             const uint8_t *untrusted, bool trust, tok_frags *in, tok_frags *out) {
    const char *needle = t->text[id];
    size_t nl = t->len[id];
    out->n = 0;
    for (size_t i = 0; i < in->n; i++) {
        tok_frag f = in->p[i];
        int rc = M40LLM_OK;
        if (f.id >= 0 || f.len < nl) {
            if ((rc = tok_frags_push(out, f))) return rc;
            continue;
        }
        size_t a = f.off, at = f.off, end = f.off + f.len; /* a: raw text start, at: search */
        while (at < end) {
            const char *m = memmem(text + at, end - at, needle, nl);
            if (!m) break;
            size_t pos = (size_t)(m - text), left = pos - a;
            if (trust && tok_any_untrusted(untrusted ? untrusted + pos : NULL, nl)) {
                at = pos + 1; /* a later occurrence may still overlap this one */
                continue;
            }
            if (t->attr[id] & TOK_ATTR_LSTRIP)
                while (left > 0 && isspace((unsigned char)text[a + left - 1])) left--;
            if (left && (rc = tok_frags_push(out, (tok_frag){-1, a, left}))) return rc;
            if ((rc = tok_frags_push(out, (tok_frag){id, 0, 0}))) return rc;
            a = pos + nl;
            if (t->attr[id] & TOK_ATTR_RSTRIP)
                while (a < end && isspace((unsigned char)text[a])) a++;
            at = a;
        }
        if (a < end && (rc = tok_frags_push(out, (tok_frag){-1, a, end - a}))) return rc;
    }
    return M40LLM_OK;
}

int tokenizer_encode(const tokenizer *t, const char *text, size_t len, unsigned flags,
                     int32_t **ids, size_t *n_ids) {
    return tokenizer_encode_masked(t, text, len, NULL, flags, ids, n_ids);
}

int tokenizer_encode_masked(const tokenizer *t, const char *text, size_t len,
                            const uint8_t *untrusted, unsigned flags, int32_t **ids,
                            size_t *n_ids) {
    if (!t || (!text && len) || !ids || !n_ids)
        return err_set(M40LLM_ERR_INVALID_ARG, "tokenizer_encode: NULL argument");
    *ids = NULL;
    *n_ids = 0;
    if (len > ((size_t)1 << 29)) /* symbol indices are int32 and U+FFFD can triple bytes */
        return err_set(M40LLM_ERR_INVALID_ARG,
                       "tokenizer_encode: text of %zu bytes is too long "
                       "(limit 512 MiB)",
                       len);
    bool parse = (flags & TOKENIZER_PARSE_SPECIAL) != 0;
    char *clean = NULL;
    uint8_t *cmask = NULL; /* untrusted flags of clean's bytes; NULL = all trusted */
    size_t clen = 0;
    int rc = tok_utf8_sanitize_mask(text ? text : "", len, parse ? untrusted : NULL, &clean, &clen,
                                    &cmask, NULL);
    if (rc) return rc;
    if (!parse) { /* without special parsing all the text is untrusted */
        cmask = malloc(clen ? clen : 1);
        if (!cmask) {
            free(clean);
            return err_set(M40LLM_ERR_OOM, "tokenizer: out of memory (%zu bytes)", clen);
        }
        memset(cmask, 1, clen);
    }
    tok_frags fa = {0}, fb = {0};
    tok_ids out = {0}, cand = {0};
    tok_memo memo = {0}; /* words already encoded, over all fragments */
    tok_buf esc = {0}, emask = {0};
    if (clen) rc = tok_frags_push(&fa, (tok_frag){-1, 0, clen});
    /* only the specials whose text occurs in the text can split it; in order */
    if (!rc) rc = tok_index_specials(t, clean, clen, &cand);
    for (size_t c = 0; !rc && c < cand.n && fa.n; c++) {
        int32_t id = t->special[cand.p[c]];
        /* control, unknown and markup text only from trusted input; plain
         * user-defined pieces always (they are vocabulary, not turn markers) */
        bool trust = t->ttype[id] != TOKEN_TYPE_USER_DEFINED || (t->attr[id] & TOK_ATTR_MARKUP);
        if (trust && !parse) continue;
        rc = tok_split_special(t, id, clean, cmask, trust, &fa, &fb);
        tok_frags sw = fa;
        fa = fb;
        fb = sw;
    }
    bool add = (flags & TOKENIZER_ADD_SPECIAL) != 0;
    if (!rc && add && t->add_bos) rc = tok_ids_push(&out, t->bos);
    bool prev_special = true; /* SPM: the dummy prefix goes at the start and after specials */
    for (size_t i = 0; !rc && i < fa.n; i++) {
        tok_frag f = fa.p[i];
        if (f.id >= 0) {
            rc = tok_ids_push(&out, f.id);
            prev_special = true;
            continue;
        }
        const uint8_t *fm = cmask ? cmask + f.off : NULL;
        if (t->type == TOKENIZER_SPM) {
            esc.n = 0;
            size_t pre = t->add_space_prefix && prev_special ? 3 : 0;
            if (pre) rc = tok_buf_put(&esc, "\xE2\x96\x81", 3);
            for (size_t j = 0; !rc && j < f.len; j++) {
                char c = clean[f.off + j];
                rc = c == ' ' ? tok_buf_put(&esc, "\xE2\x96\x81", 3) : tok_buf_put(&esc, &c, 1);
            }
            /* the escaped text's mask (only when needed): each byte's flag over
             * its 1 or 3 bytes, the dummy prefix taking the first byte's */
            bool masked = tok_any_untrusted(fm, f.len);
            if (!rc && masked && !(rc = tok_buf_resize(&emask, esc.n))) {
                bool all = tok_all_untrusted(fm, f.len);
                memset(emask.p, fm[0], all ? esc.n : pre);
                for (size_t j = 0, o = pre; !all && j < f.len; j++) {
                    size_t k = clean[f.off + j] == ' ' ? 3 : 1;
                    memset(emask.p + o, fm[j], k);
                    o += k;
                }
            }
            if (!rc)
                rc = tok_spm_encode(t, esc.p, esc.n, masked ? (uint8_t *)emask.p : NULL, &memo,
                                    &out);
        } else {
            rc = tok_bpe_encode(t, clean + f.off, f.len, fm, &memo, &out);
        }
        prev_special = false;
    }
    if (!rc && add && t->add_eos) rc = tok_ids_push(&out, t->eos);
    free(clean);
    free(cmask);
    free(fa.p);
    free(fb.p);
    free(cand.p);
    tok_memo_free(&memo);
    free(esc.p);
    free(emask.p);
    if (rc) {
        free(out.p);
        return rc;
    }
    if (!out.p) out.p = malloc(sizeof *out.p); /* non-NULL even when empty */
    if (!out.p) return err_set(M40LLM_ERR_OOM, "tokenizer: out of memory");
    *ids = out.p;
    *n_ids = out.n;
    return M40LLM_OK;
}

/* ---- queries ---- */

int32_t tokenizer_find(const tokenizer *t, const char *text, size_t len) {
    return t && text ? tok_strmap_get(&t->vocab, text, len) : -1;
}
int32_t tokenizer_n_vocab(const tokenizer *t) {
    return t->n_vocab;
}
tokenizer_type tokenizer_get_type(const tokenizer *t) {
    return t->type;
}
const char *tokenizer_pre_name(const tokenizer *t) {
    return t->pre_name;
}
int32_t tokenizer_bos(const tokenizer *t) {
    return t->bos;
}
int32_t tokenizer_eos(const tokenizer *t) {
    return t->eos;
}
int32_t tokenizer_eot(const tokenizer *t) {
    return t->eot;
}
int32_t tokenizer_pad(const tokenizer *t) {
    return t->pad;
}
int32_t tokenizer_unk(const tokenizer *t) {
    return t->unk;
}
bool tokenizer_add_bos(const tokenizer *t) {
    return t->add_bos;
}
bool tokenizer_add_eos(const tokenizer *t) {
    return t->add_eos;
}

tokenizer_token_type tokenizer_token_get_type(const tokenizer *t, int32_t id) {
    if (id < 0 || id >= t->n_vocab) return TOKEN_TYPE_UNDEFINED;
    return (tokenizer_token_type)t->ttype[id];
}

bool tokenizer_is_eog(const tokenizer *t, int32_t id) {
    for (int32_t i = 0; i < t->n_eog; i++)
        if (t->eog[i] == id) return true;
    return false;
}

bool tokenizer_is_special(const tokenizer *t, int32_t id) {
    tokenizer_token_type ty = tokenizer_token_get_type(t, id);
    return ty == TOKEN_TYPE_CONTROL || ty == TOKEN_TYPE_UNKNOWN || ty == TOKEN_TYPE_USER_DEFINED;
}

const char *tokenizer_token_text(const tokenizer *t, int32_t id, size_t *len) {
    if (!t || id < 0 || id >= t->n_vocab) return NULL;
    if (len) *len = t->len[id];
    return t->text[id];
}
