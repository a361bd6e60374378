/* JSON mode's token gate (see json_gate.h). */
#include "json_gate.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "err.h"
#include "json_sa.h"

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
        json_sa_copy(&t->sa, &g->sa);
    else
        t->p = g->p;
}

static void gs_copy(const json_gate *g, gate_state *dst, const gate_state *src) {
    if (g->schema)
        json_sa_copy(&dst->sa, &src->sa);
    else
        dst->p = src->p;
}

/* Feeds t in place (a scratch state: unusable after false). */
static bool gs_try(const json_gate *g, gate_state *t, const uint8_t *b, size_t n) {
    return g->schema ? json_sa_try(&t->sa, b, n) : json_pda_feed_all(&t->p, b, n);
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
    return gs_try(g, &t, v->bytes + v->off[id], v->off[id + 1] - v->off[id]);
}

int json_gate_mask(const json_gate *g, const float *row, float *masked, int n) {
    const json_vocab *v = g->v;
    for (int i = 0; i < n; i++) masked[i] = -INFINITY;
    int allowed = 0;
    gate_state t, u;
    for (int b = 0; b < 256; b++) {
        if (v->first[b] == v->first[b + 1]) continue;
        gs_get(g, &t);
        const uint8_t byte = (uint8_t)b;
        if (!gs_try(g, &t, &byte, 1)) continue; /* the whole group starts with a refused byte */
        for (int k = v->first[b]; k < v->first[b + 1]; k++) {
            const int32_t id = v->order[k];
            if (id >= n || isnan(row[id]) || row[id] == -INFINITY) continue;
            const uint32_t o = v->off[id], len = v->off[id + 1] - o;
            if (len > 1) gs_copy(g, &u, &t);
            if (len == 1 || gs_try(g, &u, v->bytes + o + 1, len - 1)) {
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
