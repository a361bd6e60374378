/* JSON mode's automaton over a compiled schema (see json_sa.h). */
#include <stddef.h>
#include <string.h>

#include "json_sa.h"
#include "json_schema_int.h"

enum {
    ST_START, /* a value of the frame's node */
    O_OPEN,   /* after '{' */
    O_KEY,    /* a key, against the candidates */
    O_COLON,
    O_AFTER, /* after a property's value */
    O_COMMA, /* after ',' */
    A_OPEN,  /* after '[' */
    A_AFTER, /* after an item */
    A_ITEM,  /* after ',' */
    T_STR,
    T_NUM,
    T_ENUM, /* against the enum's texts */
    T_ANY,  /* a free value (any) */
};

void json_sa_init(json_sa *a, const json_schema *s) {
    memset(a, 0, sizeof *a);
    a->s = s;
    a->depth = 1;
    a->f[0] = (json_sa_frame){s->root, ST_START, 0, -1};
}

bool json_sa_done(const json_sa *a) {
    return a->done;
}

static bool sa_is_ws(uint8_t c) {
    return c == ' ' || c == '\t' || c == '\n' || c == '\r';
}

static bool sa_ws(json_sa *a) {
    if (a->ws >= JSON_PDA_MAX_WS) return false;
    a->ws++;
    return true;
}

static bool sa_push(json_sa *a, int node) {
    if (a->depth == JSON_SA_MAX_DEPTH) return false;
    a->f[a->depth++] = (json_sa_frame){node, ST_START, 0, -1};
    return true;
}

static void sa_pop(json_sa *a) {
    if (--a->depth == 0) a->done = true;
}

/* The properties that may come after property last: the next ones up to and
 * including the first required one. False when none may. */
static bool sa_keys(json_sa *a, const js_node *nd, int last) {
    memset(a->alive, 0, sizeof a->alive);
    bool any = false;
    for (int j = last + 1; j < nd->n; j++) {
        a->alive[j >> 6] |= 1ull << (j & 63);
        any = true;
        if (nd->required[j]) break;
    }
    a->pos = 1; /* the opening quote */
    return any;
}

static bool sa_can_close(const js_node *nd, int last) {
    for (int j = last + 1; j < nd->n; j++)
        if (nd->required[j]) return false;
    return true;
}

/* Keeps the candidates whose text goes on with c at pos; false if none. */
static bool sa_narrow(json_sa *a, const js_node *nd, uint8_t c) {
    bool any = false;
    for (int w = 0; w < JSON_SCHEMA_MAX_SET / 64; w++)
        for (uint64_t m = a->alive[w]; m; m &= m - 1) {
            const int k = w * 64 + __builtin_ctzll(m);
            if (nd->len[k] > a->pos && (uint8_t)nd->text[k][a->pos] == c)
                any = true;
            else
                a->alive[w] &= ~(1ull << (k & 63));
        }
    return any;
}

/* A candidate fully matched (-1 none). */
static int sa_complete(const json_sa *a, const js_node *nd) {
    for (int w = 0; w < JSON_SCHEMA_MAX_SET / 64; w++)
        for (uint64_t m = a->alive[w]; m; m &= m - 1) {
            const int k = w * 64 + __builtin_ctzll(m);
            if (nd->len[k] == a->pos) return k;
        }
    return -1;
}

static bool sa_step(json_sa *a, uint8_t c) {
    const json_schema *s = a->s;
    for (;;) { /* again when a value ends at c: c is its container's */
        if (a->done) return sa_is_ws(c) && sa_ws(a);
        json_sa_frame *f = &a->f[a->depth - 1];
        const js_node *nd = &s->nodes[f->node];
        const bool ws = sa_is_ws(c);
        switch (f->st) {
        case ST_START:
            if (ws) return sa_ws(a);
            a->ws = 0;
            while (nd->kind == K_ANYOF) { /* the alternative that starts with c */
                int pick = -1;
                for (int i = 0; i < nd->n && pick < 0; i++)
                    if (js_bs_has(s->nodes[nd->child[i]].first, c)) pick = nd->child[i];
                if (pick < 0) return false;
                f->node = pick;
                nd = &s->nodes[pick];
            }
            if (!js_bs_has(nd->first, c)) return false;
            switch (nd->kind) {
            case K_OBJECT:
                f->st = O_OPEN;
                f->last = -1;
                return true;
            case K_ARRAY:
                f->st = A_OPEN;
                f->count = 0;
                return true;
            case K_STRING:
                f->st = T_STR;
                a->sub = a->spos = 0;
                return true;
            case K_NUMBER:
            case K_INTEGER:
                f->st = T_NUM;
                return json_num_start(&a->sub, c);
            case K_ENUM:
                memset(a->alive, 0, sizeof a->alive);
                for (int k = 0; k < nd->n; k++)
                    if ((uint8_t)nd->text[k][0] == c) a->alive[k >> 6] |= 1ull << (k & 63);
                a->pos = 1; /* (a one-byte value is a digit: it ends at what follows) */
                f->st = T_ENUM;
                return true;
            default: /* K_ANY, K_ANY_OBJECT */
                json_pda_init_value(&a->any);
                f->st = T_ANY;
                return json_pda_feed_value(&a->any, c) == 1;
            }
        case O_OPEN:
        case O_COMMA:
            if (ws) return sa_ws(a);
            a->ws = 0;
            if (c == '"') {
                if (!sa_keys(a, nd, f->last)) return false;
                f->st = O_KEY;
                return true;
            }
            if (c == '}' && f->st == O_OPEN && sa_can_close(nd, -1)) {
                sa_pop(a);
                return true;
            }
            return false;
        case O_KEY: {
            if (!sa_narrow(a, nd, c)) return false;
            a->pos++;
            const int k = sa_complete(a, nd);
            if (k >= 0) {
                f->last = (int16_t)k;
                f->st = O_COLON;
            }
            return true;
        }
        case O_COLON:
            if (ws) return sa_ws(a);
            a->ws = 0;
            if (c != ':') return false;
            f->st = O_AFTER;
            return sa_push(a, nd->child[f->last]);
        case O_AFTER:
            if (ws) return sa_ws(a);
            a->ws = 0;
            if (c == ',') {
                if (!sa_keys(a, nd, f->last)) return false;
                f->st = O_COMMA;
                return true;
            }
            if (c == '}' && sa_can_close(nd, f->last)) {
                sa_pop(a);
                return true;
            }
            return false;
        case A_OPEN:
        case A_ITEM:
            if (ws) return sa_ws(a);
            a->ws = 0;
            if (c == ']' && f->st == A_OPEN && nd->min_items == 0) {
                sa_pop(a);
                return true;
            }
            if (f->count >= nd->max_items) return false;
            f->count++;
            f->st = A_AFTER;
            if (!sa_push(a, nd->child[0])) return false;
            continue; /* c starts the item */
        case A_AFTER:
            if (ws) return sa_ws(a);
            a->ws = 0;
            if (c == ',' && f->count < nd->max_items) {
                f->st = A_ITEM;
                return true;
            }
            if (c == ']' && f->count >= nd->min_items) {
                sa_pop(a);
                return true;
            }
            return false;
        case T_STR: {
            const int r = json_str_feed(&a->sub, &a->spos, c);
            if (r > 0) sa_pop(a);
            return r >= 0;
        }
        case T_NUM: {
            const int r = json_num_feed(&a->sub, c, nd->kind == K_INTEGER);
            if (r != 0) return r > 0;
            sa_pop(a); /* complete: c follows it */
            continue;
        }
        case T_ENUM: {
            uint64_t before[JSON_SCHEMA_MAX_SET / 64];
            memcpy(before, a->alive, sizeof before);
            if (sa_narrow(a, nd, c)) {
                a->pos++;
                const int k = sa_complete(a, nd);
                /* a whole value that is not a number cannot go on */
                if (k >= 0) {
                    const char last = nd->text[k][nd->len[k] - 1];
                    if (last < '0' || last > '9') sa_pop(a);
                }
                return true;
            }
            memcpy(a->alive, before, sizeof before);
            if (sa_complete(a, nd) < 0) return false;
            sa_pop(a); /* a complete number: c follows it */
            continue;
        }
        default: { /* T_ANY */
            const int r = json_pda_feed_value(&a->any, c);
            if (r < 0) return false;
            if (r == 0) {
                sa_pop(a);
                continue;
            }
            if (json_pda_done(&a->any)) sa_pop(a);
            return true;
        }
        }
    }
}

void json_sa_copy(json_sa *dst, const json_sa *src) {
    memcpy(dst, src, offsetof(json_sa, f) + (size_t)src->depth * sizeof src->f[0]);
}

bool json_sa_feed(json_sa *a, uint8_t c) {
    json_sa t;
    json_sa_copy(&t, a);
    if (!sa_step(&t, c)) return false;
    json_sa_copy(a, &t);
    return true;
}

bool json_sa_try(json_sa *a, const uint8_t *b, size_t n) {
    for (size_t i = 0; i < n; i++)
        if (!sa_step(a, b[i])) return false;
    return true;
}

bool json_sa_feed_all(json_sa *a, const uint8_t *b, size_t n) {
    json_sa t;
    json_sa_copy(&t, a);
    if (!json_sa_try(&t, b, n)) return false;
    json_sa_copy(a, &t);
    return true;
}
