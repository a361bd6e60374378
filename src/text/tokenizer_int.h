/* Internals shared by the tokenizer's source files (not a public interface). */
#ifndef M40_TOKENIZER_INT_H
#define M40_TOKENIZER_INT_H

#include "tokenizer.h"

/* Token attribute bits (token type plus strip flags used by special matching). */
#define TOK_ATTR_LSTRIP 0x01u /* eat whitespace to the left when matched as special text */
#define TOK_ATTR_RSTRIP 0x02u /* eat whitespace to the right */
#define TOK_ATTR_MARKUP 0x04u /* user-defined, 2+ bytes with <>[]{}| : special text */

/* String -> int32 map, open addressing; keys point into a pool owned elsewhere. */
typedef struct tok_strmap {
    uint32_t cap;       /* power of two (0 = empty map) */
    int32_t *slot;      /* [cap] value index, -1 = empty */
    const char **key;   /* [n] key bytes, by value index */
    const uint32_t *kl; /* [n] key lengths */
} tok_strmap;

/* keep_first: on duplicate keys keep the lowest index, else the highest. */
int tok_strmap_build(tok_strmap *m, const char **keys, const uint32_t *lens, int32_t n,
                     bool keep_first);
int32_t tok_strmap_get(const tok_strmap *m, const char *s, size_t len);
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
};

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

/* SPM / BPE word-level encoders (append to out). untrusted[len] marks bytes
 * (NULL = all trusted) that must not form a tok_guarded token: for them the
 * encoders act as if those tokens were absent from the vocab. */
int tok_spm_encode(const tokenizer *t, const char *text, size_t len, const uint8_t *untrusted,
                   tok_ids *out);
int tok_bpe_encode(const tokenizer *t, const char *text, size_t len, const uint8_t *untrusted,
                   tok_ids *out);

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
} tok_bigram;
typedef struct tok_heap {
    tok_bigram *v;
    size_t n, cap;
} tok_heap;
int tok_heap_push(tok_heap *h, tok_bigram b);
bool tok_heap_pop(tok_heap *h, tok_bigram *out);

#endif
