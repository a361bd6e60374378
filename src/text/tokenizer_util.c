/* Tokenizer support: string map, buffers, UTF-8 helpers, byte-level alphabet,
 * merge heap. */
#include <stdlib.h>
#include <string.h>

#include "err.h"
#include "tokenizer_int.h"

/* ---- string map ---- */

/* Spreads the polynomial hash over all bits (it is weak in the low ones). */
static inline uint64_t tok_hash_mix(uint64_t h) {
    h ^= h >> 31;
    h *= 0x7FB5D329728EA185ull;
    h ^= h >> 27;
    h *= 0x81DADEF4BC2DD44Dull;
    return h ^ (h >> 33);
}

static inline uint32_t tok_slot_tag(uint64_t mixed, size_t len) {
    return (uint32_t)(mixed >> 40) << 8 | (uint32_t)(len < 255 ? len : 255);
}

/* a == b for n bytes; keys are short, a loop beats a call */
static inline bool tok_bytes_eq(const char *a, const char *b, size_t n) {
    if (n > 16) return !memcmp(a, b, n);
    for (size_t i = 0; i < n; i++)
        if (a[i] != b[i]) return false;
    return true;
}

int tok_strmap_build(tok_strmap *m, const char **keys, const uint32_t *lens, int32_t n,
                     bool keep_first) {
    uint32_t cap = 16;
    while (cap < (uint32_t)n * 2u) cap <<= 1;
    m->slot = malloc(sizeof *m->slot * cap);
    if (!m->slot) return err_set(M40LLM_ERR_OOM, "tokenizer: out of memory for a %u-slot map", cap);
    for (uint32_t j = 0; j < cap; j++) m->slot[j] = (tok_slot){NULL, 0, -1};
    m->cap = cap;
    m->key = keys;
    m->kl = lens;
    for (int32_t i = 0; i < n; i++) {
        uint64_t h = tok_hash_mix(tok_hash_more(0, keys[i], lens[i]));
        uint32_t j = (uint32_t)h & (cap - 1), tag = tok_slot_tag(h, lens[i]);
        while (m->slot[j].id >= 0) {
            int32_t o = m->slot[j].id;
            if (m->slot[j].tag == tag && m->kl[o] == lens[i] &&
                !memcmp(m->key[o], keys[i], lens[i]))
                break;
            j = (j + 1) & (cap - 1);
        }
        if (m->slot[j].id < 0 || !keep_first) m->slot[j] = (tok_slot){keys[i], tag, i};
    }
    return M40LLM_OK;
}

int32_t tok_strmap_get_h(const tok_strmap *m, uint64_t h, const char *s, size_t len) {
    if (!m->cap) return -1;
    h = tok_hash_mix(h);
    uint32_t j = (uint32_t)h & (m->cap - 1), tag = tok_slot_tag(h, len);
    for (;; j = (j + 1) & (m->cap - 1)) {
        const tok_slot *sl = &m->slot[j];
        if (sl->id < 0) return -1;
        if (sl->tag == tag && (len < 255 || m->kl[sl->id] == len) && tok_bytes_eq(sl->key, s, len))
            return sl->id;
    }
}

int32_t tok_strmap_get(const tok_strmap *m, const char *s, size_t len) {
    return tok_strmap_get_h(m, tok_hash_more(0, s, len), s, len);
}

int32_t tok_strmap_get_pair(const tok_strmap *m, uint64_t h, const char *a, size_t na,
                            const char *b, size_t nb) {
    if (!m->cap) return -1;
    h = tok_hash_mix(h);
    size_t len = na + 1 + nb;
    uint32_t j = (uint32_t)h & (m->cap - 1), tag = tok_slot_tag(h, len);
    for (;; j = (j + 1) & (m->cap - 1)) {
        const tok_slot *sl = &m->slot[j];
        if (sl->id < 0) return -1;
        if (sl->tag == tag && (len < 255 || m->kl[sl->id] == len) && tok_bytes_eq(sl->key, a, na) &&
            sl->key[na] == ' ' && tok_bytes_eq(sl->key + na + 1, b, nb))
            return sl->id;
    }
}

void tok_strmap_free(tok_strmap *m) {
    free(m->slot);
    memset(m, 0, sizeof *m);
}

/* ---- buffers ---- */

int tok_buf_put(tok_buf *b, const void *src, size_t n) {
    if (b->n + n + 1 > b->cap) {
        size_t cap = b->cap ? b->cap : 64;
        while (cap < b->n + n + 1) cap *= 2;
        char *p = realloc(b->p, cap);
        if (!p) return err_set(M40LLM_ERR_OOM, "tokenizer: out of memory (%zu bytes)", cap);
        b->p = p;
        b->cap = cap;
    }
    if (n) memcpy(b->p + b->n, src, n);
    b->n += n;
    b->p[b->n] = '\0';
    return M40LLM_OK;
}

int tok_buf_resize(tok_buf *b, size_t n) {
    if (n + 1 > b->cap) {
        size_t cap = b->cap ? b->cap : 64;
        while (cap < n + 1) cap *= 2;
        char *p = realloc(b->p, cap);
        if (!p) return err_set(M40LLM_ERR_OOM, "tokenizer: out of memory (%zu bytes)", cap);
        b->p = p;
        b->cap = cap;
    }
    b->n = n;
    b->p[n] = '\0';
    return M40LLM_OK;
}

int tok_ids_push(tok_ids *v, int32_t id) {
    if (v->n == v->cap) {
        size_t cap = v->cap ? v->cap * 2 : 64;
        int32_t *p = realloc(v->p, cap * sizeof *p);
        if (!p) return err_set(M40LLM_ERR_OOM, "tokenizer: out of memory (%zu ids)", cap);
        v->p = p;
        v->cap = cap;
    }
    v->p[v->n++] = id;
    return M40LLM_OK;
}

int tok_ids_repeat(tok_ids *v, size_t first, size_t n) {
    if (!n) return M40LLM_OK; /* a word may give no ids (dropped bytes) */
    if (v->n + n > v->cap) {
        size_t cap = v->cap ? v->cap : 64;
        while (cap < v->n + n) cap *= 2;
        int32_t *p = realloc(v->p, cap * sizeof *p);
        if (!p) return err_set(M40LLM_ERR_OOM, "tokenizer: out of memory (%zu ids)", cap);
        v->p = p;
        v->cap = cap;
    }
    memcpy(v->p + v->n, v->p + first, n * sizeof *v->p);
    v->n += n;
    return M40LLM_OK;
}

/* ---- per-call memo of encoded words ---- */

static uint32_t tok_memo_slot(uint64_t h, bool untrusted, uint32_t cap) {
    uint64_t x = (h ^ (untrusted ? 0x5851F42D4C957F2Dull : 0)) * 0x9FB21C651E98DF25ull;
    return (uint32_t)(x >> 40) & (cap - 1);
}

const tok_memo_ent *tok_memo_find(const tok_memo *m, uint64_t h, const char *s, size_t len,
                                  bool untrusted) {
    for (uint32_t j = m->cap ? tok_memo_slot(h, untrusted, m->cap) : 0; m->cap;
         j = (j + 1) & (m->cap - 1)) {
        const tok_memo_ent *e = &m->e[j];
        if (e->n_ids < 0) return NULL;
        if (e->h == h && e->len == len && e->untrusted == untrusted &&
            !memcmp(m->keys.p + e->key, s, len))
            return e;
    }
    return NULL;
}

void tok_memo_add(tok_memo *m, uint64_t h, const char *s, size_t len, bool untrusted, size_t first,
                  const tok_ids *out) {
    if (len > 0xFFFFFFFFu || out->n - first > 0x7FFFFFFF || m->n >= (1u << 22)) return;
    if (2 * (m->n + 1) > m->cap) { /* grow (rehash) */
        uint32_t cap = m->cap ? 2 * m->cap : 256;
        tok_memo_ent *e = malloc(sizeof *e * cap);
        if (!e) return;
        for (uint32_t j = 0; j < cap; j++) e[j].n_ids = -1;
        for (uint32_t i = 0; i < m->cap; i++) {
            if (m->e[i].n_ids < 0) continue;
            uint32_t j = tok_memo_slot(m->e[i].h, m->e[i].untrusted, cap);
            while (e[j].n_ids >= 0) j = (j + 1) & (cap - 1);
            e[j] = m->e[i];
        }
        free(m->e);
        m->e = e;
        m->cap = cap;
    }
    size_t key = m->keys.n;
    if (tok_buf_put(&m->keys, s, len)) return;
    uint32_t j = tok_memo_slot(h, untrusted, m->cap);
    while (m->e[j].n_ids >= 0) j = (j + 1) & (m->cap - 1);
    m->e[j] = (tok_memo_ent){h, key, first, (uint32_t)len, (int32_t)(out->n - first), untrusted};
    m->n++;
}

void tok_memo_free(tok_memo *m) {
    free(m->e);
    free(m->keys.p);
    memset(m, 0, sizeof *m);
}

/* ---- UTF-8 ---- */

size_t tok_utf8_len(unsigned char lead) {
    /* by the high nibble; continuation bytes count as 1 (llama.cpp's rule) */
    static const uint8_t lut[16] = {1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 2, 2, 3, 4};
    return lut[lead >> 4];
}

size_t tok_utf8_put(uint32_t cp, char *d) {
    if (cp < 0x80) {
        d[0] = (char)cp;
        return 1;
    }
    if (cp < 0x800) {
        d[0] = (char)(0xC0 | (cp >> 6));
        d[1] = (char)(0x80 | (cp & 0x3F));
        return 2;
    }
    if (cp < 0x10000) {
        d[0] = (char)(0xE0 | (cp >> 12));
        d[1] = (char)(0x80 | ((cp >> 6) & 0x3F));
        d[2] = (char)(0x80 | (cp & 0x3F));
        return 3;
    }
    d[0] = (char)(0xF0 | (cp >> 18));
    d[1] = (char)(0x80 | ((cp >> 12) & 0x3F));
    d[2] = (char)(0x80 | ((cp >> 6) & 0x3F));
    d[3] = (char)(0x80 | (cp & 0x3F));
    return 4;
}

int tok_utf8_check(const unsigned char *s, size_t n) {
    unsigned char c = s[0];
    if (c < 0x80) return 1;
    int need;
    unsigned char lo = 0x80, hi = 0xBF; /* allowed range of the second byte */
    if (c >= 0xC2 && c <= 0xDF) {
        need = 2;
    } else if (c >= 0xE0 && c <= 0xEF) {
        need = 3;
        if (c == 0xE0)
            lo = 0xA0; /* no overlongs */
        else if (c == 0xED)
            hi = 0x9F; /* no surrogates */
    } else if (c >= 0xF0 && c <= 0xF4) {
        need = 4;
        if (c == 0xF0)
            lo = 0x90;
        else if (c == 0xF4)
            hi = 0x8F; /* <= U+10FFFF */
    } else {
        return 0;
    }
    for (int i = 1; i < need; i++) {
        if ((size_t)i >= n) return -need;
        unsigned char lo_i = i == 1 ? lo : 0x80, hi_i = i == 1 ? hi : 0xBF;
        if (s[i] < lo_i || s[i] > hi_i) return 0;
    }
    return need;
}

int tok_utf8_sanitize_mask(const char *src, size_t len, const uint8_t *mask, char **dst,
                           size_t *dst_len, uint8_t **dst_mask, size_t *n_bad) {
    tok_buf b = {0}, m = {0}; /* m: the mask of b's bytes, 0/1 (only with mask) */
    size_t bad = 0, i = 0, run = 0;
    const unsigned char *s = (const unsigned char *)src;
    int rc = tok_buf_put(&b, "", 0);
    if (!rc && mask) rc = tok_buf_put(&m, "", 0);
    while (rc == M40LLM_OK && i < len) {
        int k = tok_utf8_check(s + i, len - i);
        if (k > 0) {
            i += (size_t)k;
            run += (size_t)k;
            continue;
        }
        rc = tok_buf_put(&b, src + i - run, run);
        if (!rc && mask) rc = tok_buf_put(&m, mask + i - run, run);
        run = 0;
        if (rc) break;
        /* skip the maximal invalid subpart: the lead byte plus the continuation
         * bytes that were still acceptable */
        size_t skip = 1;
        if (k < 0) {
            skip = len - i; /* truncated at end of input */
        } else {
            while (i + skip < len && skip < 4 && tok_utf8_check(s + i, skip + 1) < 0) skip++;
        }
        /* U+FFFD is untrusted if any byte it replaces was */
        char flag = 0;
        for (size_t j = 0; mask && j < skip; j++) flag |= mask[i + j] != 0;
        i += skip;
        bad++;
        rc = tok_buf_put(&b, "\xEF\xBF\xBD", 3);
        if (!rc && mask) rc = tok_buf_put(&m, (char[3]){flag, flag, flag}, 3);
    }
    if (rc == M40LLM_OK) rc = tok_buf_put(&b, src + i - run, run);
    if (rc == M40LLM_OK && mask) rc = tok_buf_put(&m, mask + i - run, run);
    if (rc) {
        free(b.p);
        free(m.p);
        return rc;
    }
    /* normalise copied mask bytes to 0/1 */
    for (size_t j = 0; j < m.n; j++) m.p[j] = m.p[j] != 0;
    *dst = b.p;
    *dst_len = b.n;
    if (dst_mask)
        *dst_mask = (uint8_t *)m.p;
    else
        free(m.p);
    if (n_bad) *n_bad = bad;
    return M40LLM_OK;
}

int tokenizer_utf8_sanitize(const char *src, size_t len, char **dst, size_t *dst_len,
                            size_t *n_bad) {
    return tok_utf8_sanitize_mask(src, len, NULL, dst, dst_len, NULL, n_bad);
}

/* ---- byte-level alphabet (GPT-2): printable bytes map to themselves, the
 * rest to U+0100.. in byte order, so every byte is a visible character ---- */

static bool tok_byte_printable(int b) {
    return (b >= 0x21 && b <= 0x7E) || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE && b <= 0xFF);
}

uint32_t tok_byte_to_cp(uint8_t b) {
    if (tok_byte_printable(b)) return b;
    if (b <= 0x20) return 256u + b;                        /* 33 control/space bytes */
    if (b >= 0x7F && b <= 0xA0) return 289u + (b - 0x7Fu); /* 34 more */
    return 323u;                                           /* 0xAD, soft hyphen */
}

int tok_cp_to_byte(uint32_t cp) {
    if (cp < 256) return tok_byte_printable((int)cp) ? (int)cp : -1;
    if (cp < 289) return (int)(cp - 256);
    if (cp < 323) return (int)(0x7F + cp - 289);
    if (cp == 323) return 0xAD;
    return -1;
}

/* ---- heap: best first = higher score, then lower left index ---- */

static bool tok_bigram_before(const tok_bigram *a, const tok_bigram *b) {
    return a->score > b->score || (a->score == b->score && a->left < b->left);
}

int tok_heap_push(tok_heap *h, tok_bigram b) {
    if (h->n == h->cap) {
        size_t cap = h->cap ? h->cap * 2 : 64;
        tok_bigram *v = realloc(h->v, cap * sizeof *v);
        if (!v) return err_set(M40LLM_ERR_OOM, "tokenizer: out of memory (merge queue)");
        h->v = v;
        h->cap = cap;
    }
    size_t i = h->n++;
    while (i > 0) {
        size_t p = (i - 1) / 2;
        if (!tok_bigram_before(&b, &h->v[p])) break;
        h->v[i] = h->v[p];
        i = p;
    }
    h->v[i] = b;
    return M40LLM_OK;
}

bool tok_heap_pop(tok_heap *h, tok_bigram *out) {
    if (!h->n) return false;
    *out = h->v[0];
    tok_bigram last = h->v[--h->n];
    size_t i = 0, n = h->n;
    for (;;) {
        size_t c = 2 * i + 1;
        if (c >= n) break;
        if (c + 1 < n && tok_bigram_before(&h->v[c + 1], &h->v[c])) c++;
        if (!tok_bigram_before(&h->v[c], &last)) break;
        h->v[i] = h->v[c];
        i = c;
    }
    if (n) h->v[i] = last;
    return true;
}
