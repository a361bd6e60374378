/* Stop strings over streamed text; end-of-generation tokens and the token
 * budget.
 *
 * Text arrives in arbitrary chunks (token pieces), so a stop string may span
 * several of them. The matcher holds back the longest tail of the text that is
 * a proper prefix of some stop string, and emits everything before it. When a
 * stop string appears, the text before its earliest occurrence is emitted and
 * the rest is dropped. It also holds back an incomplete UTF-8 sequence at the
 * end of the safe text, so every emitted piece is whole characters (tokens of
 * byte-level vocabularies split characters). */
#include "sampler.h"

#include <stdlib.h>
#include <string.h>

#include "err.h"

struct stop_matcher {
    char **stops;     /* [n_stops] NUL-terminated copies; empty strings dropped */
    size_t *stop_len; /* [n_stops] */
    int n_stops;
    size_t max_len; /* longest stop string */

    char *buf;    /* [cap] held text; buf[0..drop) was emitted by the previous call */
    size_t len;   /* bytes in buf */
    size_t cap;   /* allocated bytes */
    size_t drop;  /* bytes to discard at the start of the next call */
    bool stopped; /* a stop string matched: nothing more is emitted */
};

int stop_matcher_create(const char *const *stops, int n_stops, stop_matcher **out) {
    if (!out) return err_set(M40LLM_ERR_INVALID_ARG, "stop_matcher_create: out is NULL");
    *out = NULL;
    if (n_stops < 0 || (n_stops > 0 && !stops))
        return err_set(M40LLM_ERR_INVALID_ARG, "stop_matcher_create: %d stop strings at %p",
                       n_stops, (const void *)stops);
    stop_matcher *m = calloc(1, sizeof *m);
    if (!m) return err_set(M40LLM_ERR_OOM, "stop_matcher_create: out of memory");
    if (n_stops > 0) {
        m->stops = calloc((size_t)n_stops, sizeof *m->stops);
        m->stop_len = calloc((size_t)n_stops, sizeof *m->stop_len);
        if (!m->stops || !m->stop_len) goto oom;
    }
    for (int i = 0; i < n_stops; i++) {
        if (!stops[i]) {
            stop_matcher_free(m);
            return err_set(M40LLM_ERR_INVALID_ARG, "stop_matcher_create: stop string %d is NULL",
                           i);
        }
        size_t l = strlen(stops[i]);
        if (l == 0) continue; /* an empty stop would match before any text */
        char *copy = malloc(l + 1);
        if (!copy) goto oom;
        memcpy(copy, stops[i], l + 1);
        m->stops[m->n_stops] = copy;
        m->stop_len[m->n_stops++] = l;
        if (l > m->max_len) m->max_len = l;
    }
    m->cap = m->max_len + 64;
    m->buf = malloc(m->cap);
    if (!m->buf) goto oom;
    *out = m;
    return M40LLM_OK;
oom:
    stop_matcher_free(m);
    return err_set(M40LLM_ERR_OOM, "stop_matcher_create: out of memory");
}

void stop_matcher_free(stop_matcher *m) {
    if (!m) return;
    if (m->stops)
        for (int i = 0; i < m->n_stops; i++) free(m->stops[i]);
    free(m->stops);
    free(m->stop_len);
    free(m->buf);
    free(m);
}

/* Bytes of a UTF-8 sequence announced by its lead byte; 1 for ASCII and for
 * bytes that cannot start a sequence (emitted as they are). */
static size_t utf8_seq_len(unsigned char c) {
    if (c >= 0xF0 && c <= 0xF4) return 4;
    if (c >= 0xE0) return c <= 0xEF ? 3 : 1;
    if (c >= 0xC2) return 2;
    return 1;
}

/* Largest e' <= e such that buf[0..e') does not end inside a UTF-8 sequence. */
static size_t utf8_safe_end(const char *buf, size_t e) {
    for (size_t back = 1; back <= 3 && back <= e; back++) {
        unsigned char c = (unsigned char)buf[e - back];
        if ((c & 0xC0) == 0x80) continue; /* continuation byte: look further back */
        size_t need = utf8_seq_len(c);
        return need > back ? e - back : e;
    }
    return e;
}

/* Length of the longest tail of buf[0..len) that is a proper prefix of a stop. */
static size_t held_tail(const stop_matcher *m) {
    size_t kmax = m->max_len ? m->max_len - 1 : 0;
    if (kmax > m->len) kmax = m->len;
    for (size_t k = kmax; k > 0; k--) {
        const char *tail = m->buf + m->len - k;
        for (int i = 0; i < m->n_stops; i++)
            if (m->stop_len[i] > k && memcmp(tail, m->stops[i], k) == 0) return k;
    }
    return 0;
}

static void discard_emitted(stop_matcher *m) {
    if (m->drop) {
        memmove(m->buf, m->buf + m->drop, m->len - m->drop);
        m->len -= m->drop;
        m->drop = 0;
    }
}

bool stop_matcher_feed(stop_matcher *m, const char *text, size_t len, const char **emit,
                       size_t *emit_len) {
    static const char empty[1] = "";
    if (!emit || !emit_len) return true;
    *emit = empty;
    *emit_len = 0;
    if (!m) return true;
    discard_emitted(m);
    if (m->stopped) return true;
    if (len && !text) return false;
    if (m->len + len > m->cap) {
        size_t cap = (m->len + len) * 2;
        char *nb = realloc(m->buf, cap);
        if (!nb) {
            /* cannot hold the text to check it: end generation rather than leak a stop string */
            err_set(M40LLM_ERR_OOM, "stop_matcher_feed: out of memory for %zu bytes", cap);
            m->stopped = true;
            return true;
        }
        m->buf = nb;
        m->cap = cap;
    }
    /* only the new text and the last max_len-1 held bytes can start a new match */
    size_t scan_from = m->len >= m->max_len ? m->len - m->max_len + 1 : 0;
    if (len) memcpy(m->buf + m->len, text, len);
    m->len += len;

    const char *hit = NULL;
    for (int i = 0; i < m->n_stops; i++) {
        if (m->len - scan_from < m->stop_len[i]) continue;
        const char *p = memmem(m->buf + scan_from, m->len - scan_from, m->stops[i], m->stop_len[i]);
        if (p && (!hit || p < hit)) hit = p;
    }
    if (hit) {
        *emit = m->buf;
        *emit_len = (size_t)(hit - m->buf);
        m->stopped = true;
        m->drop = m->len; /* the stop string and what followed are never shown */
        return true;
    }
    size_t e = utf8_safe_end(m->buf, m->len - held_tail(m));
    *emit = m->buf;
    *emit_len = e;
    m->drop = e;
    return false;
}

void stop_matcher_flush(stop_matcher *m, const char **emit, size_t *emit_len) {
    static const char empty[1] = "";
    if (!emit || !emit_len) return;
    *emit = empty;
    *emit_len = 0;
    if (!m) return;
    discard_emitted(m);
    if (m->stopped) return;
    *emit = m->buf;
    *emit_len = m->len;
    m->drop = m->len;
}

sampler_stop_reason sampler_check_stop(const sampler_limits *l, int32_t token, int n_generated) {
    if (!l) return SAMPLER_CONTINUE;
    for (int i = 0; i < l->n_eog; i++)
        if (l->eog && l->eog[i] == token) return SAMPLER_STOP_EOG;
    if (l->max_tokens > 0 && n_generated >= l->max_tokens) return SAMPLER_STOP_LENGTH;
    return SAMPLER_CONTINUE;
}

const char *sampler_stop_reason_str(sampler_stop_reason r) {
    switch (r) {
    case SAMPLER_STOP_EOG:
    case SAMPLER_STOP_STRING:
        return "stop";
    case SAMPLER_STOP_LENGTH:
        return "length";
    default:
        return NULL;
    }
}
