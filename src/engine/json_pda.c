/* JSON mode's automaton (see json_pda.h). */
#include "json_pda.h"

#include <string.h>

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
/* string sub-states: after '\' (S_ESC); in "\uXXXX" the digit expected
 * (U_1..U_4; U_2D: the first was D, so the second tells a surrogate);
 * after a high surrogate's first digits (U_3H, U_4H), the low one it needs
 * ('\', 'u', D, C..F, two more: U_BS .. L_4). A low surrogate alone is
 * refused: cJSON and others reject it. */
enum { S_PLAIN, S_ESC, U_1, U_2, U_2D, U_3, U_4, U_3H, U_4H, U_BS, U_U, L_1, L_2, L_3, L_4 };

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
    switch (*sub) {
    case S_ESC:
        if (c == 'u') {
            *sub = U_1;
            return 0;
        }
        if (!c || !strchr("\"\\/bfnrt", c)) return -1;
        *sub = S_PLAIN;
        return 0;
    case U_BS:
        *sub = U_U;
        return c == '\\' ? 0 : -1;
    case U_U:
        *sub = L_1;
        return c == 'u' ? 0 : -1;
    case L_1:
        *sub = L_2;
        return c == 'd' || c == 'D' ? 0 : -1;
    case L_2:
        *sub = L_3;
        return (c >= 'c' && c <= 'f') || (c >= 'C' && c <= 'F') ? 0 : -1;
    case U_1:
    case U_2:
    case U_2D:
    case U_3:
    case U_4:
    case U_3H:
    case U_4H:
    case L_3:
    case L_4:
        if (!is_hex(c)) return -1;
        switch (*sub) {
        case U_1:
            *sub = c == 'd' || c == 'D' ? U_2D : U_2;
            break;
        case U_2D: {
            const int hi =
                (c >= '8' && c <= '9') || (c >= 'a' && c <= 'b') || (c >= 'A' && c <= 'B');
            if (!hi && !is_digit(c)) return -1; /* DC00..DFFF: a low surrogate alone */
            *sub = hi ? U_3H : U_3;
            break;
        }
        case U_2:
            *sub = U_3;
            break;
        case U_3:
            *sub = U_4;
            break;
        case U_3H:
            *sub = U_4H;
            break;
        case U_4H:
            *sub = U_BS;
            break;
        case L_3:
            *sub = L_4;
            break;
        default: /* U_4, L_4 */
            *sub = S_PLAIN;
        }
        return 0;
    default:
        break;
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
