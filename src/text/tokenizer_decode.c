/* Token pieces, whole-sequence decoding and the streaming detokenizer. */
#include <stdlib.h>
#include <string.h>

#include "err.h"
#include "tokenizer_int.h"

/* Appends the piece of id to b. */
static int tok_piece_append(const tokenizer *t, int32_t id, bool special, tok_buf *b) {
    const char *s = t->text[id];
    size_t n = t->len[id];
    switch (t->ttype[id]) {
    case TOKEN_TYPE_CONTROL:
    case TOKEN_TYPE_UNKNOWN:
        return special ? tok_buf_put(b, s, n) : M40LLM_OK;
    case TOKEN_TYPE_USER_DEFINED:
        return tok_buf_put(b, s, n);
    case TOKEN_TYPE_BYTE:
        if (n == 6 && s[0] == '<' && s[1] == '0' && s[2] == 'x' && s[5] == '>') {
            char hex[3] = {s[3], s[4], 0}, *end;
            unsigned long v = strtoul(hex, &end, 16);
            if (*end == '\0') {
                char c = (char)v;
                return tok_buf_put(b, &c, 1);
            }
        }
        return tok_buf_put(b, s, n);
    case TOKEN_TYPE_NORMAL:
        break;
    default: /* unused / undefined tokens print nothing */
        return M40LLM_OK;
    }
    int rc = M40LLM_OK;
    if (t->type == TOKENIZER_SPM) { /* U+2581 -> space */
        size_t i = 0, run = 0;
        while (!rc && i < n) {
            if (i + 3 <= n && !memcmp(s + i, "\xE2\x96\x81", 3)) {
                rc = tok_buf_put(b, s + i - run, run);
                if (!rc) rc = tok_buf_put(b, " ", 1);
                run = 0;
                i += 3;
            } else {
                i++;
                run++;
            }
        }
        return rc ? rc : tok_buf_put(b, s + n - run, run);
    }
    /* byte-level: each character of the alphabet is one byte; a character
     * outside it is copied as is */
    for (size_t i = 0; !rc && i < n;) {
        int k = tok_utf8_check((const unsigned char *)s + i, n - i);
        if (k <= 0) {
            rc = tok_buf_put(b, s + i, 1);
            i++;
            continue;
        }
        const unsigned char *u = (const unsigned char *)s + i;
        uint32_t cp = k == 1   ? u[0]
                      : k == 2 ? ((u[0] & 0x1Fu) << 6) | (u[1] & 0x3Fu)
                      : k == 3 ? ((u[0] & 0x0Fu) << 12) | ((u[1] & 0x3Fu) << 6) | (u[2] & 0x3Fu)
                               : ((u[0] & 0x07u) << 18) | ((u[1] & 0x3Fu) << 12) |
                                     ((u[2] & 0x3Fu) << 6) | (u[3] & 0x3Fu);
        int byte = tok_cp_to_byte(cp);
        if (byte >= 0) {
            char c = (char)byte;
            rc = tok_buf_put(b, &c, 1);
        } else {
            rc = tok_buf_put(b, s + i, (size_t)k);
        }
        i += (size_t)k;
    }
    return rc;
}

int tokenizer_token_piece(const tokenizer *t, int32_t id, bool special, char *buf, size_t cap,
                          size_t *len) {
    if (!t || !len || (cap && !buf))
        return err_set(M40LLM_ERR_INVALID_ARG, "tokenizer_token_piece: NULL argument");
    if (id < 0 || id >= t->n_vocab)
        return err_set(M40LLM_ERR_INVALID_ARG, "token id %d is outside the vocab (%d tokens)", id,
                       t->n_vocab);
    tok_buf b = {0};
    int rc = tok_piece_append(t, id, special, &b);
    if (!rc) {
        *len = b.n;
        if (cap) memcpy(buf, b.p ? b.p : "", b.n < cap ? b.n : cap);
    }
    free(b.p);
    return rc;
}

int tokenizer_decode(const tokenizer *t, const int32_t *ids, size_t n_ids, unsigned flags,
                     char **text, size_t *len) {
    if (!t || (!ids && n_ids) || !text || !len)
        return err_set(M40LLM_ERR_INVALID_ARG, "tokenizer_decode: NULL argument");
    *text = NULL;
    *len = 0;
    tok_buf b = {0};
    int rc = tok_buf_put(&b, "", 0);
    size_t i = 0;
    bool strip = (flags & TOKENIZER_DECODE_STRIP_SPACE) != 0;
    if (strip && n_ids && ids[0] == t->bos && t->bos >= 0) i = 1;
    for (size_t first = i; !rc && i < n_ids; i++) {
        if (ids[i] < 0 || ids[i] >= t->n_vocab) {
            rc = err_set(M40LLM_ERR_INVALID_ARG,
                         "tokenizer_decode: token %zu has id %d outside "
                         "the vocab (%d tokens)",
                         i, ids[i], t->n_vocab);
            break;
        }
        size_t at = b.n;
        rc = tok_piece_append(t, ids[i], (flags & TOKENIZER_DECODE_SPECIAL) != 0, &b);
        /* the dummy prefix added one space in front of the text */
        if (!rc && strip && i == first && t->add_space_prefix && b.n > at && b.p[at] == ' ') {
            memmove(b.p + at, b.p + at + 1, b.n - at);
            b.n--;
        }
    }
    if (rc) {
        free(b.p);
        return rc;
    }
    *text = b.p;
    *len = b.n;
    return M40LLM_OK;
}

/* ---- streaming ---- */

struct tokenizer_stream {
    const tokenizer *t;
    unsigned flags;
    size_t n_pushed;  /* tokens pushed since create/reset */
    bool bos_skipped; /* the first was a BOS that STRIP_SPACE dropped */
    tok_buf piece;
    tok_buf out;
    unsigned char held[4]; /* incomplete UTF-8 tail from earlier tokens */
    size_t n_held;
};

int tokenizer_stream_create(const tokenizer *t, unsigned decode_flags, tokenizer_stream **out) {
    if (!t || !out)
        return err_set(M40LLM_ERR_INVALID_ARG, "tokenizer_stream_create: NULL argument");
    *out = calloc(1, sizeof **out);
    if (!*out) return err_set(M40LLM_ERR_OOM, "tokenizer: out of memory");
    (*out)->t = t;
    (*out)->flags = decode_flags;
    return M40LLM_OK;
}

void tokenizer_stream_reset(tokenizer_stream *s) {
    s->n_pushed = 0;
    s->bos_skipped = false;
    s->n_held = 0;
}

void tokenizer_stream_free(tokenizer_stream *s) {
    if (!s) return;
    free(s->piece.p);
    free(s->out.p);
    free(s);
}

/* Moves complete characters of data into s->out; keeps an incomplete tail. */
static int tok_stream_feed(tokenizer_stream *s, const unsigned char *data, size_t n) {
    int rc = M40LLM_OK;
    size_t i = 0;
    while (!rc && i < n) {
        int k = tok_utf8_check(data + i, n - i);
        if (k > 0) {
            rc = tok_buf_put(&s->out, data + i, (size_t)k);
            i += (size_t)k;
        } else if (k < 0) { /* valid so far, needs more bytes */
            memcpy(s->held, data + i, n - i);
            s->n_held = n - i;
            return M40LLM_OK;
        } else { /* can never become valid */
            size_t skip = 1;
            while (i + skip < n && skip < 4 && tok_utf8_check(data + i, skip + 1) < 0) skip++;
            rc = tok_buf_put(&s->out, "\xEF\xBF\xBD", 3);
            i += skip;
        }
    }
    return rc;
}

int tokenizer_stream_push(tokenizer_stream *s, int32_t id, const char **text, size_t *len) {
    if (!s || !text || !len)
        return err_set(M40LLM_ERR_INVALID_ARG, "tokenizer_stream_push: NULL argument");
    const tokenizer *t = s->t;
    if (id < 0 || id >= t->n_vocab)
        return err_set(M40LLM_ERR_INVALID_ARG, "token id %d is outside the vocab (%d tokens)", id,
                       t->n_vocab);
    s->out.n = 0;
    s->piece.n = 0;
    int rc = tok_buf_put(&s->out, "", 0);
    if (!rc) rc = tok_buf_put(&s->piece, s->held, s->n_held);
    size_t at = s->piece.n;
    /* as tokenizer_decode: STRIP_SPACE drops a BOS only as the very first
     * token, and one leading space of the token after it (or of the first) */
    bool strip = (s->flags & TOKENIZER_DECODE_STRIP_SPACE) != 0;
    bool skip = strip && s->n_pushed == 0 && id == t->bos && t->bos >= 0;
    bool first = s->n_pushed == (s->bos_skipped ? 1u : 0u);
    if (!rc && !skip) {
        rc = tok_piece_append(t, id, (s->flags & TOKENIZER_DECODE_SPECIAL) != 0, &s->piece);
        if (!rc && strip && first && t->add_space_prefix && s->piece.n > at &&
            s->piece.p[at] == ' ') {
            memmove(s->piece.p + at, s->piece.p + at + 1, s->piece.n - at);
            s->piece.n--;
        }
    }
    if (rc) return rc;
    s->bos_skipped |= skip;
    s->n_pushed++;
    s->n_held = 0;
    rc = tok_stream_feed(s, (const unsigned char *)s->piece.p, s->piece.n);
    *text = s->out.p;
    *len = s->out.n;
    return rc;
}

int tokenizer_stream_flush(tokenizer_stream *s, const char **text, size_t *len) {
    if (!s || !text || !len)
        return err_set(M40LLM_ERR_INVALID_ARG, "tokenizer_stream_flush: NULL argument");
    s->out.n = 0;
    int rc = tok_buf_put(&s->out, "", 0);
    if (!rc && s->n_held) rc = tok_buf_put(&s->out, "\xEF\xBF\xBD", 3);
    s->n_held = 0;
    *text = s->out.p;
    *len = s->out.n;
    return rc;
}
