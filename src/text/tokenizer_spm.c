/* SentencePiece-style BPE ("llama" vocabs): start from single UTF-8
 * characters, repeatedly merge the adjacent pair whose concatenation is the
 * highest-scoring token (ties: leftmost), then map each final symbol to its
 * token, or to <0xXX> byte tokens when the symbol is not in the vocab.
 * The caller has already replaced spaces with U+2581 and added the dummy prefix.
 * Untrusted bytes are encoded as if turn-marker tokens were not in the vocab:
 * no merge into one, and a single character that is one takes the byte path. */
#include <stdlib.h>

#include "err.h"
#include "tokenizer_int.h"

typedef struct tok_sym {
    int32_t prev, next;
    size_t off, n; /* bytes of the symbol in the text; n = 0 once merged away */
} tok_sym;

static int tok_spm_try_pair(const tokenizer *t, const char *text, const uint8_t *untrusted,
                            const tok_sym *sym, int32_t left, int32_t right, tok_heap *h) {
    if (left < 0 || right < 0) return M40LLM_OK;
    size_t n = sym[left].n + sym[right].n;
    int32_t id = tok_strmap_get(&t->vocab, text + sym[left].off, n);
    if (id < 0) return M40LLM_OK;
    if (untrusted && tok_guarded(t, id) && tok_any_untrusted(untrusted + sym[left].off, n))
        return M40LLM_OK;
    return tok_heap_push(h, (tok_bigram){left, right, t->score[id], (uint32_t)n});
}

int tok_spm_encode(const tokenizer *t, const char *text, size_t len, const uint8_t *untrusted,
                   tok_ids *out) {
    if (!len) return M40LLM_OK;
    tok_sym *sym = malloc(sizeof *sym * len);
    if (!sym) return err_set(M40LLM_ERR_OOM, "tokenizer: out of memory (%zu symbols)", len);
    int32_t ns = 0;
    for (size_t off = 0; off < len; ns++) {
        size_t n = tok_utf8_len((unsigned char)text[off]);
        if (n > len - off) n = len - off;
        sym[ns] = (tok_sym){ns - 1, -1, off, n};
        off += n;
        if (off < len) sym[ns].next = ns + 1;
    }
    tok_heap h = {0};
    int rc = M40LLM_OK;
    for (int32_t i = 1; !rc && i < ns; i++)
        rc = tok_spm_try_pair(t, text, untrusted, sym, i - 1, i, &h);
    tok_bigram b;
    while (!rc && tok_heap_pop(&h, &b)) {
        tok_sym *l = &sym[b.left], *r = &sym[b.right];
        /* stale: one side was merged into something else since it was queued */
        if (!l->n || !r->n || l->n + r->n != b.size) continue;
        l->n += r->n;
        r->n = 0;
        l->next = r->next;
        if (r->next >= 0) sym[r->next].prev = b.left;
        rc = tok_spm_try_pair(t, text, untrusted, sym, l->prev, b.left, &h);
        if (!rc) rc = tok_spm_try_pair(t, text, untrusted, sym, b.left, l->next, &h);
    }
    for (int32_t i = 0; !rc && ns && i >= 0; i = sym[i].next) {
        const uint8_t *u = untrusted ? untrusted + sym[i].off : NULL;
        int32_t id = tok_strmap_get(&t->vocab, text + sym[i].off, sym[i].n);
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
    free(h.v);
    free(sym);
    return rc;
}
