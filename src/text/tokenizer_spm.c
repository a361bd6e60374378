/* SentencePiece-style BPE ("llama" vocabs): start from single UTF-8
 * characters, repeatedly merge the adjacent pair whose concatenation is the
 * highest-scoring token (ties: leftmost), then map each final symbol to its
 * token, or to <0xXX> byte tokens when the symbol is not in the vocab.
 * The caller has already replaced spaces with U+2581 and added the dummy prefix,
 * and the text is valid UTF-8 (sanitized).
 * Untrusted bytes are encoded as if turn-marker tokens were not in the vocab:
 * no merge into one, and a single character that is one takes the byte path.
 *
 * Speed: a merge can only form a token, so a position no token can span is a
 * wall no merge crosses, and the text splits there into segments merged on
 * their own with the same result (each segment's merges come in the same
 * order as in the whole text). Before a "▁" is such a wall unless the byte
 * in front of it precedes an inner "▁" in some token (tokenizer.spm_glue):
 * segments are then about one word, and the merge queue stays small. Symbols
 * carry their token id and a polynomial hash, so a pair is looked up without
 * rehashing its bytes. */
#include <stdlib.h>

#include "err.h"
#include "tokenizer_int.h"

typedef struct tok_sym {
    int32_t prev, next;
    uint32_t off, n; /* bytes of the symbol in the text; n = 0 once merged away */
    uint64_t h, p;   /* tok_hash_more of its bytes, TOK_HASH_B^n */
    int32_t id;      /* its token, -1 if none */
} tok_sym;

typedef struct tok_spm_ctx {
    const tokenizer *t;
    const char *text;
    const uint8_t *untrusted; /* NULL = all trusted */
    tok_sym *sym;
    size_t cap; /* symbols sym holds */
    tok_heap heap;
} tok_spm_ctx;

static int tok_spm_try_pair(tok_spm_ctx *c, int32_t left, int32_t right) {
    if (left < 0 || right < 0) return M40LLM_OK;
    const tok_sym *l = &c->sym[left], *r = &c->sym[right];
    const tokenizer *t = c->t;
    size_t n = l->n + r->n;
    int32_t id = tok_strmap_get_h(&t->vocab, l->h * r->p + r->h, c->text + l->off, n);
    if (id < 0) return M40LLM_OK;
    if (c->untrusted && tok_guarded(t, id) && tok_any_untrusted(c->untrusted + l->off, n))
        return M40LLM_OK;
    return tok_heap_push(&c->heap, (tok_bigram){left, right, t->score[id], (uint32_t)n, id});
}

/* Merges text[a..b) and appends its tokens. */
static int tok_spm_segment(tok_spm_ctx *c, size_t a, size_t b, tok_ids *out) {
    const tokenizer *t = c->t;
    const char *text = c->text;
    if (b - a > c->cap) {
        tok_sym *s = realloc(c->sym, sizeof *s * (b - a));
        if (!s) return err_set(M40LLM_ERR_OOM, "tokenizer: out of memory (%zu symbols)", b - a);
        c->sym = s;
        c->cap = b - a;
    }
    tok_sym *sym = c->sym;
    int32_t ns = 0;
    for (size_t off = a; off < b; ns++) {
        unsigned char ch = (unsigned char)text[off];
        size_t n = tok_utf8_len(ch);
        if (n > b - off) n = b - off;
        uint64_t h = tok_hash_more(0, text + off, n);
        int32_t id =
            n == 1 && ch < 0x80 ? t->char_id[ch] : tok_strmap_get_h(&t->vocab, h, text + off, n);
        sym[ns] = (tok_sym){ns - 1, -1, (uint32_t)off, (uint32_t)n, h, tok_hash_pow(n), id};
        off += n;
        if (off < b) sym[ns].next = ns + 1;
    }
    c->heap.n = 0;
    int rc = M40LLM_OK;
    for (int32_t i = 1; !rc && i < ns; i++) rc = tok_spm_try_pair(c, i - 1, i);
    tok_bigram bg;
    while (!rc && tok_heap_pop(&c->heap, &bg)) {
        tok_sym *l = &sym[bg.left], *r = &sym[bg.right];
        /* stale: one side was merged into something else since it was queued */
        if (!l->n || !r->n || l->n + r->n != bg.size) continue;
        l->n += r->n;
        l->h = l->h * r->p + r->h;
        l->p *= r->p;
        l->id = bg.id;
        r->n = 0;
        l->next = r->next;
        if (r->next >= 0) sym[r->next].prev = bg.left;
        rc = tok_spm_try_pair(c, l->prev, bg.left);
        if (!rc) rc = tok_spm_try_pair(c, bg.left, l->next);
    }
    for (int32_t i = 0; !rc && ns && i >= 0; i = sym[i].next) {
        const uint8_t *u = c->untrusted ? c->untrusted + sym[i].off : NULL;
        int32_t id = sym[i].id;
        if (id >= 0 && tok_guarded(t, id) && tok_any_untrusted(u, sym[i].n)) id = -1;
        if (id >= 0) {
            rc = tok_ids_push(out, id);
            continue;
        }
        /* merged symbols are always tokens; only single characters fall back to bytes */
        for (size_t j = 0; !rc && j < sym[i].n; j++) {
            int32_t bt = t->byte_token[(unsigned char)text[sym[i].off + j]];
            if (bt < 0 || (u && u[j] && tok_guarded(t, bt))) bt = t->unk;
            if (bt >= 0 && !(u && u[j] && tok_guarded(t, bt))) rc = tok_ids_push(out, bt);
        }
    }
    return rc;
}

/* Trust state of mask[0..n) for the memo: 0 all trusted, 1 all untrusted, -1 mixed. */
static int tok_trust_state(const uint8_t *mask, size_t n) {
    if (!mask || !tok_any_untrusted(mask, n)) return 0;
    return tok_all_untrusted(mask, n) ? 1 : -1;
}

/* text[a..b): a segment, from the memo when it was seen before. */
static int tok_spm_segment_memo(tok_spm_ctx *c, tok_memo *memo, size_t a, size_t b, tok_ids *out) {
    int st = memo ? tok_trust_state(c->untrusted ? c->untrusted + a : NULL, b - a) : -1;
    uint64_t h = st < 0 ? 0 : tok_hash_more(0, c->text + a, b - a);
    const tok_memo_ent *e = st < 0 ? NULL : tok_memo_find(memo, h, c->text + a, b - a, st);
    if (e) return tok_ids_repeat(out, e->first, (size_t)e->n_ids);
    size_t first = out->n;
    int rc = tok_spm_segment(c, a, b, out);
    if (!rc && st >= 0) tok_memo_add(memo, h, c->text + a, b - a, st, first, out);
    return rc;
}

/* Whether a segment may start at text[i] (i >= 1, i + 3 <= len). */
static inline bool tok_spm_wall(const tokenizer *t, const unsigned char *s, size_t i) {
    return s[i] == 0xE2 && s[i + 1] == 0x96 && s[i + 2] == 0x81 && !t->spm_glue[s[i - 1]];
}

int tok_spm_encode(const tokenizer *t, const char *text, size_t len, const uint8_t *untrusted,
                   tok_memo *memo, tok_ids *out) {
    tok_spm_ctx c = {.t = t, .text = text, .untrusted = untrusted};
    const unsigned char *s = (const unsigned char *)text;
    int rc = M40LLM_OK;
    size_t a = 0;
    for (size_t i = 1; !rc && i + 3 <= len; i++)
        if (tok_spm_wall(t, s, i)) {
            rc = tok_spm_segment_memo(&c, memo, a, i, out);
            a = i;
        }
    if (!rc && a < len) rc = tok_spm_segment_memo(&c, memo, a, len, out);
    free(c.heap.v);
    free(c.sym);
    return rc;
}
