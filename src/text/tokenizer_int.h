/* Internals shared by the tokenizer's source files (not a public interface). */
#ifndef M40_TOKENIZER_INT_H
#define M40_TOKENIZER_INT_H

#include "tokenizer.h"

/* Token attribute bits (token type plus strip flags used by special matching). */
#define TOK_ATTR_LSTRIP 0x01u /* eat whitespace to the left when matched as special text */
#define TOK_ATTR_RSTRIP 0x02u /* eat whitespace to the right */
#define TOK_ATTR_MARKUP 0x04u /* user-defined, 2+ bytes with <>[]{}| : special text */

/* String -> int32 map, open addressing; keys point into a pool owned elsewhere.
 * The hash is a polynomial one (tok_hash_*), so the hash of a concatenation
 * follows from its parts': the encoders look up merged symbols without
 * rereading their bytes (only a tag match is checked byte by byte). */
typedef struct tok_slot {
    const char *key; /* the key's bytes: one memory access less on a match */
    uint32_t tag;    /* 24 bits of the mixed hash, then the length (255: longer) */
    int32_t id;      /* value index, -1 = empty */
} tok_slot;
typedef struct tok_strmap {
    uint32_t cap;       /* power of two (0 = empty map) */
    tok_slot *slot;     /* [cap] */
    const char **key;   /* [n] key bytes, by value index */
    const uint32_t *kl; /* [n] key lengths */
} tok_strmap;

/* Polynomial hash: h(s) = sum s[i] * B^(n-1-i) mod 2^64, so
 * h(a b) = h(a) * B^|b| + h(b); tok_hash_pow gives B^n. */
#define TOK_HASH_B 0x9E3779B97F4A7C15ull
static inline uint64_t tok_hash_more(uint64_t h, const char *s, size_t n) {
    for (size_t i = 0; i < n; i++) h = h * TOK_HASH_B + (unsigned char)s[i];
    return h;
}
static inline uint64_t tok_hash_pow(size_t n) {
    uint64_t r = 1, b = TOK_HASH_B;
    for (; n; n >>= 1, b *= b)
        if (n & 1) r *= b;
    return r;
}

/* keep_first: on duplicate keys keep the lowest index, else the highest. */
int tok_strmap_build(tok_strmap *m, const char **keys, const uint32_t *lens, int32_t n,
                     bool keep_first);
int32_t tok_strmap_get(const tok_strmap *m, const char *s, size_t len);
/* The same with h = tok_hash_more(0, s, len) already known. */
int32_t tok_strmap_get_h(const tok_strmap *m, uint64_t h, const char *s, size_t len);
/* Key a + " " + b (a BPE merge) with h its hash. */
int32_t tok_strmap_get_pair(const tok_strmap *m, uint64_t h, const char *a, size_t na,
                            const char *b, size_t nb);
void tok_strmap_free(tok_strmap *m);

/* Growable byte / id buffers (encode scratch). */
typedef struct tok_buf {
    char *p;
    size_t n, cap;
} tok_buf;
typedef struct tok_ids {
    int32_t *p;
    size_t n, cap;
} tok_ids;
int tok_buf_put(tok_buf *b, const void *src, size_t n);
int tok_buf_resize(tok_buf *b, size_t n); /* sets b->n = n; new bytes are unset */
int tok_ids_push(tok_ids *v, int32_t id);

/* Memo of one encode call: the tokens of a word (BPE) or segment (SPM)
 * depend only on its bytes and on whether they are trusted, so a repeated
 * word copies the ids it gave the first time (they stay in out). */
typedef struct tok_memo_ent {
    uint64_t h;    /* tok_hash_more of the bytes */
    size_t key;    /* offset of the bytes in tok_memo.keys */
    size_t first;  /* index of the first id in out */
    uint32_t len;  /* bytes */
    int32_t n_ids; /* -1 = empty slot */
    bool untrusted;
} tok_memo_ent;
typedef struct tok_memo {
    tok_memo_ent *e;
    uint32_t cap, n; /* cap: power of two, kept at least twice n */
    tok_buf keys;    /* copies of the words' bytes */
} tok_memo;
/* The entry of s[0..len) seen before, or NULL. */
const tok_memo_ent *tok_memo_find(const tok_memo *m, uint64_t h, const char *s, size_t len,
                                  bool untrusted);
/* Records s[0..len) as out[first..out->n) (best effort: no error, a word not
 * recorded is only encoded again). */
void tok_memo_add(tok_memo *m, uint64_t h, const char *s, size_t len, bool untrusted, size_t first,
                  const tok_ids *out);
void tok_memo_free(tok_memo *m);
/* Appends out[first..first+n) again. */
int tok_ids_repeat(tok_ids *out, size_t first, size_t n);

/* Compiled pre-tokenizer: regexes applied in sequence (tokenizer_pre.c). */
typedef struct tok_pre tok_pre;
int tok_pre_create(const char *name, tok_pre **out, bool *ignore_merges);
void tok_pre_free(tok_pre *p);
/* Splits text[0..len) into words; *offs receives n_words+1 boundaries
 * (malloc'd). text must be valid UTF-8. */
int tok_pre_split(const tok_pre *p, const char *text, size_t len, size_t **offs, size_t *n_words);

struct tokenizer {
    tokenizer_type type;
    int32_t n_vocab;
    char *pool;          /* all token texts, NUL-separated */
    const char **text;   /* [n_vocab] into pool */
    uint32_t *len;       /* [n_vocab] */
    float *score;        /* [n_vocab] */
    uint8_t *ttype;      /* [n_vocab] tokenizer_token_type */
    uint8_t *attr;       /* [n_vocab] TOK_ATTR_* */
    tok_strmap vocab;    /* text -> id (last duplicate wins, as llama.cpp) */
    char *merge_pool;    /* merges "left right", NUL-separated */
    const char **merge;  /* [n_merges] */
    uint32_t *merge_len; /* [n_merges] */
    int32_t n_merges;
    tok_strmap merges; /* "left right" -> rank */
    int32_t *special;  /* [n_special] control/user-defined/unknown ids, longest first */
    int32_t n_special;
    int32_t *eog; /* [n_eog] sorted */
    int32_t n_eog;
    int32_t bos, eos, eot, eom, unk, pad;
    bool add_bos, add_eos, add_space_prefix;
    bool ignore_merges; /* llama3: a word that is a whole token skips merging */
    char pre_name[64];
    tok_pre *pre;            /* BPE only */
    int32_t byte_token[256]; /* SPM: id of <0xXX> (or the 1-byte token), -1 if none */
    /* Encode short cuts, derived from the vocab (tokenizer_create). */
    int32_t char_id[256];   /* id of byte b's one-character symbol: SPM the byte
                             * itself (ASCII only, else -1), BPE its byte-level character */
    uint8_t spm_glue[256];  /* SPM: 1 if some token has byte b just before a "▁"
                             * that is not its first character */
    tok_strmap spec_map;    /* special text -> its first index in special[] */
    const char **spec_text; /* [n_special] spec_map's keys */
    uint32_t *spec_len;     /* [n_special] */
    int32_t *spec_next;     /* [n_special] next index in special[] with the same text, -1 */
    uint64_t
        spec_lens[256]; /* by first byte: bit L-1 for a special of L < 64 bytes, bit 63 longer */
    uint64_t spec_pair[1024]; /* bit set of the first two bytes of specials of 2+ bytes */
};

/* Builds the encode short cuts above (tokenizer_index.c). */
int tok_index_build(tokenizer *t);
void tok_index_free(tokenizer *t);
/* Appends to *cand, in increasing order, the indices k of special[] whose text
 * occurs somewhere in text[0..len): the only ones that can split it. */
int tok_index_specials(const tokenizer *t, const char *text, size_t len, tok_ids *cand);

/* Turn-marker tokens: control and markup user-defined. Untrusted bytes never
 * produce one, whether as special text or through merges. */
static inline bool tok_guarded(const tokenizer *t, int32_t id) {
    return t->ttype[id] == TOKEN_TYPE_CONTROL ||
           (t->ttype[id] == TOKEN_TYPE_USER_DEFINED && (t->attr[id] & TOK_ATTR_MARKUP));
}
/* Whether any of m[0..n) is set (m NULL = none). */
static inline bool tok_any_untrusted(const uint8_t *m, size_t n) {
    for (size_t i = 0; m && i < n; i++)
        if (m[i]) return true;
    return false;
}
/* Whether all of m[0..n) are set (the common case of all-untrusted text). */
static inline bool tok_all_untrusted(const uint8_t *m, size_t n) {
    for (size_t i = 0; i < n; i++)
        if (!m[i]) return false;
    return true;
}

/* SPM / BPE word-level encoders (append to out; memo: of the whole encode
 * call, whose out this is). untrusted[len] marks bytes
 * (NULL = all trusted) that must not form a tok_guarded token: for them the
 * encoders act as if those tokens were absent from the vocab. */
int tok_spm_encode(const tokenizer *t, const char *text, size_t len, const uint8_t *untrusted,
                   tok_memo *memo, tok_ids *out);
int tok_bpe_encode(const tokenizer *t, const char *text, size_t len, const uint8_t *untrusted,
                   tok_memo *memo, tok_ids *out);

/* UTF-8 helpers. */
size_t tok_utf8_len(unsigned char lead);     /* 1..4 from the lead byte (llama.cpp rule) */
size_t tok_utf8_put(uint32_t cp, char *dst); /* encodes cp, returns bytes written */
/* Length of a valid sequence at s (1..4), or 0 if invalid, or -(needed) if the
 * valid prefix is cut short by the end of the buffer. */
int tok_utf8_check(const unsigned char *s, size_t n);
/* tokenizer_utf8_sanitize that also carries a byte mask (NULL = none): copied
 * bytes keep theirs, a U+FFFD gets 1 if any byte it replaces had one.
 * *dst_mask (malloc'd, 0/1) is NULL when mask is. */
int tok_utf8_sanitize_mask(const char *src, size_t len, const uint8_t *mask, char **dst,
                           size_t *dst_len, uint8_t **dst_mask, size_t *n_bad);

/* Byte-level BPE alphabet: byte -> code point and back (-1 if not in it). */
uint32_t tok_byte_to_cp(uint8_t b);
int tok_cp_to_byte(uint32_t cp);

/* A binary heap of merge candidates (both SPM and BPE). */
typedef struct tok_bigram {
    int32_t left, right; /* symbol indices */
    float score;         /* SPM: higher first; BPE: -rank */
    uint32_t size;       /* bytes of left+right when queued (stale check) */
    int32_t id;          /* SPM: the token left+right forms */
} tok_bigram;
typedef struct tok_heap {
    tok_bigram *v;
    size_t n, cap;
} tok_heap;
int tok_heap_push(tok_heap *h, tok_bigram b);
bool tok_heap_pop(tok_heap *h, tok_bigram *out);

#endif
