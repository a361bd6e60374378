/* JSON mode's automaton and token gate (see json_gate.h). */
#include "json_gate.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "err.h"

enum {
    M_ROOT,      /* before the document: '{' */
    M_VALUE,     /* a value (after ':' or an array's ',') */
    M_OBJ_FIRST, /* after '{': a key or '}' */
    M_OBJ_KEY,   /* after an object's ',': a key */
    M_COLON,     /* after a key: ':' */
    M_ARR_FIRST, /* after '[': a value or ']' */
    M_AFTER,     /* after a value in a container: ',' or its closer */
    M_STRING,    /* inside a string */
    M_NUMBER,    /* inside a number (sub: N_*) */
    M_LITERAL,   /* inside true / false / null */
    M_DONE,      /* the root object closed */
};

enum { N_MINUS, N_ZERO, N_INT, N_DOT, N_FRAC, N_E, N_ESIGN, N_EXP };
/* string sub-states: S_PLAIN, S_ESC (after '\'), then S_HEX + k: k hex digits left */
enum { S_PLAIN, S_ESC, S_HEX };

static const char *const lit_text[3] = {"true", "false", "null"};

static bool is_ws(uint8_t c) {
    return c == ' ' || c == '\t' || c == '\n' || c == '\r';
}

static bool is_digit(uint8_t c) {
    return c >= '0' && c <= '9';
}

static bool is_hex(uint8_t c) {
    return is_digit(c) || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F');
}

void json_pda_init(json_pda *s) {
    memset(s, 0, sizeof *s);
    s->mode = M_ROOT;
}

bool json_pda_done(const json_pda *s) {
    return s->mode == M_DONE;
}

/* A value ended: the container's next thing, or the end of the document. */
static void value_done(json_pda *s) {
    s->mode = s->depth == 0 ? M_DONE : M_AFTER;
}

static bool open(json_pda *s, uint8_t c) {
    if (s->depth >= JSON_PDA_MAX_DEPTH) return false;
    s->stack[s->depth++] = c;
    s->mode = c == '{' ? M_OBJ_FIRST : M_ARR_FIRST;
    return true;
}

/* The first byte of a value. */
static bool value_start(json_pda *s, uint8_t c) {
    switch (c) {
    case '{':
    case '[':
        return open(s, c);
    case '"':
        s->mode = M_STRING;
        s->sub = S_PLAIN;
        s->pos = 0;
        s->key = 0;
        return true;
    case '-':
        s->mode = M_NUMBER;
        s->sub = N_MINUS;
        return true;
    case 't':
    case 'f':
    case 'n':
        s->mode = M_LITERAL;
        s->sub = c == 't' ? 0 : c == 'f' ? 1 : 2;
        s->pos = 1;
        return true;
    default:
        if (!is_digit(c)) return false;
        s->mode = M_NUMBER;
        s->sub = c == '0' ? N_ZERO : N_INT;
        return true;
    }
}

/* A string byte (UTF-8 checked: no overlong forms, surrogates or code
 * points past U+10FFFF; control bytes only escaped). */
static bool string_byte(json_pda *s, uint8_t c) {
    if (s->pos > 0) { /* a continuation byte due; sub: the lead byte while it bounds the first */
        uint8_t lo = 0x80, hi = 0xBF;
        if (s->sub == 0xE0) lo = 0xA0;
        if (s->sub == 0xED) hi = 0x9F;
        if (s->sub == 0xF0) lo = 0x90;
        if (s->sub == 0xF4) hi = 0x8F;
        if (c < lo || c > hi) return false;
        s->sub = S_PLAIN;
        s->pos--;
        return true;
    }
    if (s->sub == S_ESC) {
        if (c == 'u') {
            s->sub = S_HEX + 4;
            return true;
        }
        if (!strchr("\"\\/bfnrt", c) || !c) return false;
        s->sub = S_PLAIN;
        return true;
    }
    if (s->sub >= S_HEX) {
        if (!is_hex(c)) return false;
        s->sub = s->sub == S_HEX + 1 ? S_PLAIN : s->sub - 1;
        return true;
    }
    if (c == '"') {
        if (s->key) {
            s->mode = M_COLON;
            s->key = 0;
        } else {
            value_done(s);
        }
        return true;
    }
    if (c == '\\') {
        s->sub = S_ESC;
        return true;
    }
    if (c < 0x20) return false;
    if (c < 0x80) return true;
    if (c >= 0xC2 && c <= 0xDF) {
        s->pos = 1;
    } else if (c >= 0xE0 && c <= 0xEF) {
        s->pos = 2;
        if (c == 0xE0 || c == 0xED) s->sub = c;
    } else if (c >= 0xF0 && c <= 0xF4) {
        s->pos = 3;
        if (c == 0xF0 || c == 0xF4) s->sub = c;
    } else {
        return false;
    }
    return true;
}

static bool structural(json_pda *s, uint8_t c);

/* A number byte; a byte that cannot continue a complete number ends it and
 * is taken as what follows. */
static bool number_byte(json_pda *s, uint8_t c) {
    const bool d = is_digit(c);
    switch (s->sub) {
    case N_MINUS:
        if (!d) return false;
        s->sub = c == '0' ? N_ZERO : N_INT;
        return true;
    case N_ZERO:
    case N_INT:
    case N_FRAC:
        if (d && s->sub != N_ZERO) return true;
        if (c == '.' && s->sub != N_FRAC) {
            s->sub = N_DOT;
            return true;
        }
        if (c == 'e' || c == 'E') {
            s->sub = N_E;
            return true;
        }
        break;
    case N_DOT:
        if (!d) return false;
        s->sub = N_FRAC;
        return true;
    case N_E:
        if (c == '+' || c == '-') {
            s->sub = N_ESIGN;
            return true;
        }
        if (!d) return false;
        s->sub = N_EXP;
        return true;
    case N_ESIGN:
        if (!d) return false;
        s->sub = N_EXP;
        return true;
    case N_EXP:
        if (d) return true;
        break;
    default:
        return false;
    }
    value_done(s); /* a complete number (a root is an object: depth > 0) */
    return structural(s, c);
}

/* A byte between tokens of the document: whitespace, punctuation, the
 * start of a value. */
static bool structural(json_pda *s, uint8_t c) {
    if (is_ws(c)) {
        if (s->ws >= JSON_PDA_MAX_WS) return false;
        s->ws++;
        return true;
    }
    s->ws = 0;
    const uint8_t top = s->depth ? s->stack[s->depth - 1] : 0;
    switch (s->mode) {
    case M_ROOT:
        return c == '{' && open(s, c);
    case M_VALUE:
        return value_start(s, c);
    case M_ARR_FIRST:
        if (c == ']') {
            s->depth--;
            value_done(s);
            return true;
        }
        return value_start(s, c);
    case M_OBJ_FIRST:
        if (c == '}') {
            s->depth--;
            value_done(s);
            return true;
        }
        /* fall through */
    case M_OBJ_KEY:
        if (c != '"') return false;
        s->mode = M_STRING;
        s->sub = S_PLAIN;
        s->pos = 0;
        s->key = 1;
        return true;
    case M_COLON:
        if (c != ':') return false;
        s->mode = M_VALUE;
        return true;
    case M_AFTER:
        if (c == ',') {
            s->mode = top == '{' ? M_OBJ_KEY : M_VALUE;
            return true;
        }
        if ((c == '}' && top == '{') || (c == ']' && top == '[')) {
            s->depth--;
            value_done(s);
            return true;
        }
        return false;
    default: /* M_DONE: whitespace only */
        return false;
    }
}

static bool feed(json_pda *s, uint8_t c) {
    switch (s->mode) {
    case M_STRING:
        return string_byte(s, c);
    case M_NUMBER:
        return number_byte(s, c);
    case M_LITERAL: {
        const char *t = lit_text[s->sub];
        if (c != (uint8_t)t[s->pos]) return false;
        if (!t[++s->pos]) value_done(s);
        return true;
    }
    default:
        return structural(s, c);
    }
}

bool json_pda_feed(json_pda *s, uint8_t c) {
    json_pda t = *s;
    if (!feed(&t, c)) return false;
    *s = t;
    return true;
}

bool json_pda_feed_all(json_pda *s, const uint8_t *b, size_t n) {
    json_pda t = *s;
    for (size_t i = 0; i < n; i++)
        if (!feed(&t, b[i])) return false;
    *s = t;
    return true;
}

/* ---- the vocabulary's bytes ---- */

struct json_vocab {
    int n;              /* ids covered */
    uint32_t *off;      /* [n + 1] token id's bytes: bytes[off[id] .. off[id + 1]) */
    uint8_t *bytes;     /* all of them */
    int32_t *order;     /* [n_usable] usable ids by first byte */
    int32_t first[257]; /* ids with first byte b: order[first[b] .. first[b + 1]) */
};

int json_vocab_build(const tokenizer *t, int n_vocab, json_vocab **out) {
    *out = NULL;
    if (n_vocab < 1) return err_set(M40LLM_ERR_INVALID_ARG, "JSON mode: no vocabulary");
    json_vocab *v = calloc(1, sizeof *v);
    if (!v) return err_set(M40LLM_ERR_OOM, "out of memory");
    v->n = n_vocab;
    v->off = calloc((size_t)n_vocab + 1, sizeof *v->off);
    v->order = malloc((size_t)n_vocab * sizeof *v->order);
    size_t cap = (size_t)n_vocab * 8, len = 0;
    v->bytes = malloc(cap);
    int count[256] = {0};
    int rc = v->off && v->order && v->bytes ? M40LLM_OK : err_set(M40LLM_ERR_OOM, "out of memory");
    for (int id = 0; id < n_vocab && !rc; id++) {
        v->off[id] = (uint32_t)len;
        const tokenizer_token_type ty = tokenizer_token_get_type(t, id);
        if (ty == TOKEN_TYPE_CONTROL || ty == TOKEN_TYPE_UNKNOWN || ty == TOKEN_TYPE_UNUSED ||
            tokenizer_is_eog(t, id))
            continue;
        char buf[256];
        size_t n = 0;
        if (tokenizer_token_piece(t, id, false, buf, sizeof buf, &n) || n == 0 || n > sizeof buf)
            continue; /* no bytes (or an absurd piece): never allowed */
        if (len + n > cap || len + n > UINT32_MAX) {
            uint8_t *nb = len + n <= UINT32_MAX ? realloc(v->bytes, cap * 2 + n) : NULL;
            if (!nb) {
                rc = err_set(M40LLM_ERR_OOM, "out of memory");
                break;
            }
            v->bytes = nb;
            cap = cap * 2 + n;
        }
        memcpy(v->bytes + len, buf, n);
        len += n;
        count[(uint8_t)buf[0]]++;
    }
    if (rc) {
        json_vocab_free(v);
        return rc;
    }
    v->off[n_vocab] = (uint32_t)len;
    int next[256];
    v->first[0] = 0;
    for (int b = 0; b < 256; b++) {
        next[b] = v->first[b];
        v->first[b + 1] = v->first[b] + count[b];
    }
    for (int id = 0; id < n_vocab; id++)
        if (v->off[id + 1] > v->off[id]) v->order[next[v->bytes[v->off[id]]]++] = id;
    *out = v;
    return M40LLM_OK;
}

void json_vocab_free(json_vocab *v) {
    if (!v) return;
    free(v->off);
    free(v->bytes);
    free(v->order);
    free(v);
}

/* ---- the gate ---- */

struct json_gate {
    const json_vocab *v;
    json_pda s;
};

int json_gate_create(const json_vocab *v, json_gate **out) {
    *out = calloc(1, sizeof **out);
    if (!*out) return err_set(M40LLM_ERR_OOM, "out of memory");
    (*out)->v = v;
    json_pda_init(&(*out)->s);
    return M40LLM_OK;
}

void json_gate_free(json_gate *g) {
    free(g);
}

bool json_gate_allows(const json_gate *g, int32_t id) {
    const json_vocab *v = g->v;
    if (id < 0 || id >= v->n || v->off[id + 1] == v->off[id]) return false;
    json_pda t = g->s;
    return json_pda_feed_all(&t, v->bytes + v->off[id], v->off[id + 1] - v->off[id]);
}

int json_gate_mask(const json_gate *g, const float *row, float *masked, int n) {
    const json_vocab *v = g->v;
    for (int i = 0; i < n; i++) masked[i] = -INFINITY;
    int allowed = 0;
    for (int b = 0; b < 256; b++) {
        json_pda t = g->s;
        if (v->first[b] == v->first[b + 1] || !json_pda_feed(&t, (uint8_t)b))
            continue; /* the whole group starts with a refused byte */
        for (int k = v->first[b]; k < v->first[b + 1]; k++) {
            const int32_t id = v->order[k];
            if (id >= n || isnan(row[id]) || row[id] == -INFINITY) continue;
            json_pda u = t;
            const uint32_t o = v->off[id];
            if (json_pda_feed_all(&u, v->bytes + o + 1, v->off[id + 1] - o - 1)) {
                masked[id] = row[id];
                allowed++;
            }
        }
    }
    return allowed;
}

void json_gate_accept(json_gate *g, int32_t id) {
    const json_vocab *v = g->v;
    if (id < 0 || id >= v->n) return;
    json_pda_feed_all(&g->s, v->bytes + v->off[id], v->off[id + 1] - v->off[id]);
}

bool json_gate_done(const json_gate *g) {
    return json_pda_done(&g->s);
}
