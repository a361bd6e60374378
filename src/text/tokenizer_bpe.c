/* Byte-level BPE ("gpt2" vocabs): pre-tokenize into words, map each word's
 * bytes to the byte-level alphabet, then repeatedly merge the adjacent pair
 * with the lowest merge rank (ties: leftmost). Untrusted bytes are encoded as if
 * turn-marker tokens were not in the vocab: a symbol that would be one is
 * emitted as its characters' tokens instead. */
#include <stdlib.h>
#include <string.h>

#include "err.h"
#include "tokenizer_int.h"

typedef struct tok_sym {
    int32_t prev, next;
    uint32_t off, n; /* bytes in the encoded word; n = 0 once merged away */
    uint64_t h, p;   /* tok_hash_more of its bytes, TOK_HASH_B^n */
    int32_t id;      /* its token, -1 if none, -2 not looked up yet */
} tok_sym;

typedef struct tok_bpe_ctx {
    const tokenizer *t;
    const char *w;     /* byte-level encoded word */
    const uint8_t *wu; /* untrusted flag of each byte of w, NULL = all trusted */
    tok_sym *sym;
    size_t cap; /* symbols sym holds */
    tok_heap heap;
} tok_bpe_ctx;

/* The symbols carry their hashes, so the "left right" key is never built. */
static int tok_bpe_try_pair(tok_bpe_ctx *c, int32_t left, int32_t right) {
    if (left < 0 || right < 0) return M40LLM_OK;
    const tok_sym *l = &c->sym[left], *r = &c->sym[right];
    uint64_t h = (l->h * TOK_HASH_B + ' ') * r->p + r->h;
    int32_t rank = tok_strmap_get_pair(&c->t->merges, h, c->w + l->off, l->n, c->w + r->off, r->n);
    if (rank < 0) return M40LLM_OK;
    return tok_heap_push(&c->heap,
                         (tok_bigram){left, right, -(float)rank, (uint32_t)(l->n + r->n), -1});
}

/* Token of w[off..off+n), or -1 when absent or a turn marker from untrusted bytes. */
static int32_t tok_bpe_lookup(const tok_bpe_ctx *c, size_t off, size_t n) {
    int32_t id = tok_strmap_get(&c->t->vocab, c->w + off, n);
    if (id >= 0 && c->wu && tok_guarded(c->t, id) && tok_any_untrusted(c->wu + off, n)) return -1;
    return id;
}

/* A turn marker from untrusted bytes: the tokens of its characters, else of
 * its single bytes (dropped when none, as for any symbol outside the vocab). */
static int tok_bpe_split_guarded(const tok_bpe_ctx *c, size_t off, size_t n, tok_ids *out) {
    int rc = M40LLM_OK;
    for (size_t i = 0; !rc && i < n;) {
        size_t k = tok_utf8_len((unsigned char)c->w[off + i]);
        if (k > n - i) k = n - i;
        int32_t id = tok_bpe_lookup(c, off + i, k);
        if (id >= 0) {
            rc = tok_ids_push(out, id);
        } else {
            for (size_t j = 0; !rc && j < k; j++) {
                int32_t bid = tok_bpe_lookup(c, off + i + j, 1);
                if (bid >= 0) rc = tok_ids_push(out, bid);
            }
        }
        i += k;
    }
    return rc;
}

/* Merges one encoded word (of the raw bytes raw[0..rn)) and appends its tokens. */
static int tok_bpe_word(tok_bpe_ctx *c, const char *raw, size_t rn, size_t len, tok_ids *out) {
    const tokenizer *t = c->t;
    const char *w = c->w;
    if (t->ignore_merges) { /* llama3: a word that is already a token stays whole */
        int32_t id = tok_bpe_lookup(c, 0, len);
        if (id >= 0) return tok_ids_push(out, id);
    }
    if (rn > c->cap) {
        tok_sym *s = realloc(c->sym, sizeof *s * rn);
        if (!s) return err_set(M40LLM_ERR_OOM, "tokenizer: out of memory (%zu symbols)", rn);
        c->sym = s;
        c->cap = rn;
    }
    tok_sym *sym = c->sym;
    int32_t ns = (int32_t)rn; /* one character per raw byte */
    for (int32_t i = 0, off = 0; i < ns; i++) {
        uint32_t n = tok_utf8_len((unsigned char)w[off]);
        sym[i] = (tok_sym){i - 1,
                           i + 1 < ns ? i + 1 : -1,
                           (uint32_t)off,
                           n,
                           tok_hash_more(0, w + off, n),
                           tok_hash_pow(n),
                           t->char_id[(unsigned char)raw[i]]};
        off += (int32_t)n;
    }
    c->heap.n = 0;
    int rc = M40LLM_OK;
    for (int32_t i = 1; !rc && i < ns; i++) rc = tok_bpe_try_pair(c, i - 1, i);
    tok_bigram b;
    while (!rc && tok_heap_pop(&c->heap, &b)) {
        tok_sym *l = &sym[b.left], *r = &sym[b.right];
        if (!l->n || !r->n || l->n + r->n != b.size) continue; /* stale */
        l->n += r->n;
        l->h = l->h * r->p + r->h;
        l->p *= r->p;
        l->id = -2;
        r->n = 0;
        l->next = r->next;
        if (r->next >= 0) sym[r->next].prev = b.left;
        rc = tok_bpe_try_pair(c, l->prev, b.left);
        if (!rc) rc = tok_bpe_try_pair(c, b.left, l->next);
    }
    for (int32_t i = 0; !rc && ns && i >= 0; i = sym[i].next) {
        int32_t id = sym[i].id;
        if (id == -2) id = tok_strmap_get_h(&t->vocab, sym[i].h, w + sym[i].off, sym[i].n);
        if (id >= 0 && c->wu && tok_guarded(t, id) &&
            tok_any_untrusted(c->wu + sym[i].off, sym[i].n)) {
            rc = tok_bpe_split_guarded(c, sym[i].off, sym[i].n, out);
            continue;
        }
        if (id >= 0) {
            rc = tok_ids_push(out, id);
            continue;
        }
        /* not in the vocab: its single bytes if those are tokens, else dropped
         * (as llama.cpp; a complete byte-level vocab never gets here) */
        for (size_t j = 0; !rc && j < sym[i].n; j++) {
            int32_t bid = tok_strmap_get(&t->vocab, w + sym[i].off + j, 1);
            if (bid >= 0) rc = tok_ids_push(out, bid);
        }
    }
    return rc;
}

int tok_bpe_encode(const tokenizer *t, const char *text, size_t len, const uint8_t *untrusted,
                   tok_memo *memo, tok_ids *out) {
    size_t *offs = NULL, nw = 0;
    int rc = tok_pre_split(t->pre, text, len, &offs, &nw);
    if (rc) return rc;
    tok_bpe_ctx c = {.t = t};
    tok_buf word = {0}, wmask = {0};
    for (size_t i = 0; !rc && i < nw; i++) {
        /* the mask follows the encoding only for words with untrusted bytes */
        const uint8_t *wu = untrusted ? untrusted + offs[i] : NULL;
        size_t wn = offs[i + 1] - offs[i];
        bool mixed = tok_any_untrusted(wu, wn);
        /* a word seen before, all trusted or all untrusted as now: its ids again */
        bool all = mixed && tok_all_untrusted(wu, wn), memo_ok = memo && (all || !mixed);
        uint64_t h = memo_ok ? tok_hash_more(0, text + offs[i], wn) : 0;
        const tok_memo_ent *e = memo_ok ? tok_memo_find(memo, h, text + offs[i], wn, all) : NULL;
        if (e) {
            rc = tok_ids_repeat(out, e->first, (size_t)e->n_ids);
            continue;
        }
        size_t first = out->n;
        rc = tok_buf_resize(&word, 2 * wn); /* a byte's character is 1 or 2 bytes */
        size_t wl = 0;
        for (size_t j = offs[i]; !rc && j < offs[i + 1]; j++)
            wl += tok_utf8_put(tok_byte_to_cp((uint8_t)text[j]), word.p + wl);
        word.n = wl;
        if (!rc && mixed && !(rc = tok_buf_resize(&wmask, word.n))) {
            if (all) {
                memset(wmask.p, 1, word.n);
                wn = 0;
            }
            for (size_t j = 0, o = 0; j < wn; j++) { /* a byte's character is 1 or 2 bytes */
                size_t k = tok_byte_to_cp((uint8_t)text[offs[i] + j]) < 0x80 ? 1 : 2;
                memset(wmask.p + o, wu[j] != 0, k);
                o += k;
            }
        }
        if (rc || !word.n) continue;
        c.w = word.p;
        c.wu = mixed ? (const uint8_t *)wmask.p : NULL;
        rc = tok_bpe_word(&c, text + offs[i], offs[i + 1] - offs[i], word.n, out);
        if (!rc && memo_ok)
            tok_memo_add(memo, h, text + offs[i], offs[i + 1] - offs[i], all, first, out);
    }
    free(offs);
    free(word.p);
    free(wmask.p);
    free(c.sym);
    free(c.heap.v);
    return rc;
}
