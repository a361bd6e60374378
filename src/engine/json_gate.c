/* JSON mode's automaton and token gate (see json_gate.h). */
#include "json_gate.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "err.h"
#include "json_schema.h"

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

void json_pda_init_value(json_pda *s) {
    memset(s, 0, sizeof *s);
    s->mode = M_VALUE;
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
    case 't':
    case 'f':
    case 'n':
        s->mode = M_LITERAL;
        s->sub = c == 't' ? 0 : c == 'f' ? 1 : 2;
        s->pos = 1;
        return true;
    default:
        if (!json_num_start(&s->sub, c)) return false;
        s->mode = M_NUMBER;
        return true;
    }
}

int json_str_feed(uint8_t *sub, uint8_t *pos, uint8_t c) {
    if (*pos > 0) { /* a continuation byte due; sub: the lead byte while it bounds the first */
        uint8_t lo = 0x80, hi = 0xBF;
        if (*sub == 0xE0) lo = 0xA0;
        if (*sub == 0xED) hi = 0x9F;
        if (*sub == 0xF0) lo = 0x90;
        if (*sub == 0xF4) hi = 0x8F;
        if (c < lo || c > hi) return -1;
        *sub = S_PLAIN;
        (*pos)--;
        return 0;
    }
    if (*sub == S_ESC) {
        if (c == 'u') {
            *sub = S_HEX + 4;
            return 0;
        }
        if (!c || !strchr("\"\\/bfnrt", c)) return -1;
        *sub = S_PLAIN;
        return 0;
    }
    if (*sub >= S_HEX) {
        if (!is_hex(c)) return -1;
        *sub = *sub == S_HEX + 1 ? S_PLAIN : *sub - 1;
        return 0;
    }
    if (c == '"') return 1;
    if (c == '\\') {
        *sub = S_ESC;
        return 0;
    }
    if (c < 0x20) return -1;
    if (c < 0x80) return 0;
    if (c >= 0xC2 && c <= 0xDF) {
        *pos = 1;
    } else if (c >= 0xE0 && c <= 0xEF) {
        *pos = 2;
        if (c == 0xE0 || c == 0xED) *sub = c;
    } else if (c >= 0xF0 && c <= 0xF4) {
        *pos = 3;
        if (c == 0xF0 || c == 0xF4) *sub = c;
    } else {
        return -1;
    }
    return 0;
}

/* A string byte of the document. */
static bool string_byte(json_pda *s, uint8_t c) {
    const int r = json_str_feed(&s->sub, &s->pos, c);
    if (r < 0) return false;
    if (r > 0) {
        if (s->key) {
            s->mode = M_COLON;
            s->key = 0;
        } else {
            value_done(s);
        }
    }
    return true;
}

static bool structural(json_pda *s, uint8_t c);

bool json_num_start(uint8_t *sub, uint8_t c) {
    if (c == '-')
        *sub = N_MINUS;
    else if (is_digit(c))
        *sub = c == '0' ? N_ZERO : N_INT;
    else
        return false;
    return true;
}

int json_num_feed(uint8_t *sub, uint8_t c, bool integer) {
    const bool d = is_digit(c);
    switch (*sub) {
    case N_MINUS:
        if (!d) return -1;
        *sub = c == '0' ? N_ZERO : N_INT;
        return 1;
    case N_ZERO:
    case N_INT:
    case N_FRAC:
        if (d && *sub != N_ZERO) return 1;
        if (integer) break;
        if (c == '.' && *sub != N_FRAC) {
            *sub = N_DOT;
            return 1;
        }
        if (c == 'e' || c == 'E') {
            *sub = N_E;
            return 1;
        }
        break;
    case N_DOT:
        if (!d) return -1;
        *sub = N_FRAC;
        return 1;
    case N_E:
        if (c == '+' || c == '-') {
            *sub = N_ESIGN;
            return 1;
        }
        if (!d) return -1;
        *sub = N_EXP;
        return 1;
    case N_ESIGN:
        if (!d) return -1;
        *sub = N_EXP;
        return 1;
    case N_EXP:
        if (d) return 1;
        break;
    default:
        return -1;
    }
    return 0; /* complete: c is what follows */
}

/* A number byte; a byte that cannot continue a complete number ends it and
 * is taken as what follows. */
static bool number_byte(json_pda *s, uint8_t c) {
    const int r = json_num_feed(&s->sub, c, false);
    if (r != 0) return r > 0;
    value_done(s);
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

int json_pda_feed_value(json_pda *s, uint8_t c) {
    if (s->mode == M_DONE) return 0;
    json_pda t = *s;
    if (feed(&t, c)) {
        *s = t;
        return 1;
    }
    /* a number at the top ends at the first byte that cannot go on with it */
    uint8_t sub = s->sub;
    if (s->mode == M_NUMBER && s->depth == 0 && json_num_feed(&sub, c, false) == 0) return 0;
    return -1;
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
    const json_schema *schema; /* NULL: any object (p), else its automaton (sa) */
    json_pda p;
    json_sa sa;
};

/* the state that applies, copied or fed (t: a json_pda or a json_sa) */
typedef union gate_state {
    json_pda p;
    json_sa sa;
} gate_state;

static void gs_get(const json_gate *g, gate_state *t) {
    if (g->schema)
        t->sa = g->sa;
    else
        t->p = g->p;
}

static bool gs_feed(const json_gate *g, gate_state *t, const uint8_t *b, size_t n) {
    return g->schema ? json_sa_feed_all(&t->sa, b, n) : json_pda_feed_all(&t->p, b, n);
}

int json_gate_create(const json_vocab *v, const json_schema *schema, json_gate **out) {
    *out = calloc(1, sizeof **out);
    if (!*out) return err_set(M40LLM_ERR_OOM, "out of memory");
    (*out)->v = v;
    (*out)->schema = schema;
    json_pda_init(&(*out)->p);
    if (schema) json_sa_init(&(*out)->sa, schema);
    return M40LLM_OK;
}

void json_gate_free(json_gate *g) {
    free(g);
}

bool json_gate_allows(const json_gate *g, int32_t id) {
    const json_vocab *v = g->v;
    if (id < 0 || id >= v->n || v->off[id + 1] == v->off[id]) return false;
    gate_state t;
    gs_get(g, &t);
    return gs_feed(g, &t, v->bytes + v->off[id], v->off[id + 1] - v->off[id]);
}

int json_gate_mask(const json_gate *g, const float *row, float *masked, int n) {
    const json_vocab *v = g->v;
    const size_t size = g->schema ? sizeof(json_sa) : sizeof(json_pda);
    for (int i = 0; i < n; i++) masked[i] = -INFINITY;
    int allowed = 0;
    gate_state t, u;
    for (int b = 0; b < 256; b++) {
        if (v->first[b] == v->first[b + 1]) continue;
        gs_get(g, &t);
        const uint8_t byte = (uint8_t)b;
        if (!gs_feed(g, &t, &byte, 1)) continue; /* the whole group starts with a refused byte */
        for (int k = v->first[b]; k < v->first[b + 1]; k++) {
            const int32_t id = v->order[k];
            if (id >= n || isnan(row[id]) || row[id] == -INFINITY) continue;
            const uint32_t o = v->off[id], len = v->off[id + 1] - o;
            if (len > 1) memcpy(&u, &t, size);
            if (len == 1 || gs_feed(g, &u, v->bytes + o + 1, len - 1)) {
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
    const uint8_t *b = v->bytes + v->off[id];
    const size_t n = v->off[id + 1] - v->off[id];
    if (g->schema)
        json_sa_feed_all(&g->sa, b, n);
    else
        json_pda_feed_all(&g->p, b, n);
}

bool json_gate_done(const json_gate *g) {
    return g->schema ? json_sa_done(&g->sa) : json_pda_done(&g->p);
}
