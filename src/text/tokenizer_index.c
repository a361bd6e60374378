/* Encode short cuts derived from the vocab once, at tokenizer_create: the
 * token of each one-byte character, where SPM text may be cut into segments,
 * and an index of special-token texts so that encode searches the text only
 * for the specials that occur in it (a vocab such as gemma's has thousands). */
#include <stdlib.h>
#include <string.h>

#include "err.h"
#include "tokenizer_int.h"

int tok_index_build(tokenizer *t) {
    for (int b = 0; b < 256; b++) {
        char u[4];
        size_t k = 1;
        if (t->type == TOKENIZER_BPE)
            k = tok_utf8_put(tok_byte_to_cp((uint8_t)b), u);
        else
            u[0] = (char)b;
        t->char_id[b] = t->type == TOKENIZER_BPE || b < 0x80 ? tok_strmap_get(&t->vocab, u, k) : -1;
    }
    /* SPM: bytes that some token has in front of an inner U+2581 */
    for (int32_t i = 0; t->type == TOKENIZER_SPM && i < t->n_vocab; i++) {
        const unsigned char *s = (const unsigned char *)t->text[i];
        for (uint32_t j = 1; j + 3 <= t->len[i]; j++)
            if (s[j] == 0xE2 && s[j + 1] == 0x96 && s[j + 2] == 0x81) t->spm_glue[s[j - 1]] = 1;
    }

    int32_t n = t->n_special;
    t->spec_text = malloc(sizeof *t->spec_text * (size_t)(n ? n : 1));
    t->spec_len = malloc(sizeof *t->spec_len * (size_t)(n ? n : 1));
    t->spec_next = malloc(sizeof *t->spec_next * (size_t)(n ? n : 1));
    if (!t->spec_text || !t->spec_len || !t->spec_next)
        return err_set(M40LLM_ERR_OOM, "tokenizer: out of memory");
    for (int32_t k = 0; k < n; k++) {
        int32_t id = t->special[k];
        t->spec_text[k] = t->text[id];
        t->spec_len[k] = t->len[id];
        t->spec_next[k] = -1;
        const unsigned char *s = (const unsigned char *)t->text[id];
        uint32_t l = t->len[id]; /* >= 1: empty texts were renamed */
        t->spec_lens[s[0]] |= l < 64 ? 1ull << (l - 1) : 1ull << 63;
        if (l >= 2) t->spec_pair[(s[0] << 8 | s[1]) >> 6] |= 1ull << (s[1] & 63);
    }
    if (!n) return M40LLM_OK;
    int rc = tok_strmap_build(&t->spec_map, t->spec_text, t->spec_len, n, true);
    for (int32_t k = 0; !rc && k < n; k++) { /* duplicates chain from the first */
        int32_t r = tok_strmap_get(&t->spec_map, t->spec_text[k], t->spec_len[k]);
        if (r == k) continue;
        while (t->spec_next[r] >= 0) r = t->spec_next[r];
        t->spec_next[r] = k;
    }
    return rc;
}

void tok_index_free(tokenizer *t) {
    tok_strmap_free(&t->spec_map);
    free(t->spec_text);
    free(t->spec_len);
    free(t->spec_next);
}

static int tok_index_cmp(const void *a, const void *b) {
    int32_t x = *(const int32_t *)a, y = *(const int32_t *)b;
    return x < y ? -1 : x > y;
}

int tok_index_specials(const tokenizer *t, const char *text, size_t len, tok_ids *cand) {
    if (!t->n_special || !len) return M40LLM_OK;
    uint8_t *occ = calloc((size_t)t->n_special, 1);
    if (!occ) return err_set(M40LLM_ERR_OOM, "tokenizer: out of memory");
    const unsigned char *s = (const unsigned char *)text;
    bool long_seen = false;
    size_t run_end = 0; /* end of the run of equal bytes that holds i */
    int rc = M40LLM_OK;
    for (size_t i = 0; !rc && i < len; i++) {
        uint64_t m = t->spec_lens[s[i]];
        if (!m) continue;
        if (i + 1 == len ||
            !(t->spec_pair[(s[i] << 8 | s[i + 1]) >> 6] & (1ull << (s[i + 1] & 63))))
            m &= 1; /* no special of 2+ bytes starts with these two */
        long_seen |= (m >> 63) != 0;
        m &= ~(1ull << 63);
        if (!m) continue;
        /* in a run of one byte (a long stretch of spaces) the windows at i are
         * those at i - 1 while the run lasts past the longest: nothing new */
        if (i >= run_end)
            for (run_end = i + 1; run_end < len && s[run_end] == s[i];) run_end++;
        size_t longest = 64 - (size_t)__builtin_clzll(m);
        if (i > 0 && s[i - 1] == s[i] && run_end >= i + longest) continue;
        uint64_t h = 0;
        size_t done = 0; /* bytes hashed into h */
        for (; m && !rc; m &= m - 1) {
            size_t l = (size_t)__builtin_ctzll(m) + 1;
            if (l > len - i) break;
            h = tok_hash_more(h, text + i + done, l - done);
            done = l;
            int32_t k = tok_strmap_get_h(&t->spec_map, h, text + i, l);
            if (k >= 0 && !occ[k]) {
                occ[k] = 1;
                rc = tok_ids_push(cand, k);
            }
        }
    }
    for (int32_t k = 0; !rc && long_seen && k < t->n_special; k++)
        if (t->spec_len[k] >= 64 && memmem(text, len, t->spec_text[k], t->spec_len[k]) &&
            tok_strmap_get(&t->spec_map, t->spec_text[k], t->spec_len[k]) == k)
            rc = tok_ids_push(cand, k); /* the first of its text (the chain adds the rest) */
    for (size_t j = 0, n = cand->n; !rc && j < n; j++) /* texts shared by several specials */
        for (int32_t k = t->spec_next[cand->p[j]]; !rc && k >= 0; k = t->spec_next[k])
            rc = tok_ids_push(cand, k);
    free(occ);
    if (!rc && cand->n > 1) qsort(cand->p, cand->n, sizeof *cand->p, tok_index_cmp);
    return rc;
}
