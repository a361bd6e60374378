/* Tokenizer built from a GGUF vocab: SentencePiece-style BPE ("llama") and
 * byte-level BPE ("gpt2") with the pre-tokenizer named by tokenizer.ggml.pre.
 * Behaviour follows llama.cpp's tokenizer so ids match models converted by it.
 *
 * Text input: invalid UTF-8 is never rejected; each maximal invalid subpart is
 * replaced by U+FFFD before tokenizing (so encode never fails on bad bytes).
 * Special-token text (control tokens such as <|im_start|>, and user-defined
 * tokens that look like markup: text of two bytes or more containing any of
 * <>[]{}| such as <|User|> or <|EOT|>) is only recognised with
 * TOKENIZER_PARSE_SPECIAL, so untrusted text can never inject a turn marker;
 * tokenizer_encode_masked recognises it only in the trusted bytes of a mixed
 * text (a chat prompt whose message contents are untrusted). Other
 * user-defined tokens (whitespace runs, single characters even such as "{")
 * are plain vocabulary pieces and, as in llama.cpp, are always matched as
 * whole strings.
 *
 * A tokenizer is immutable after creation: every function taking a const
 * tokenizer may be called from several threads at once. */
#ifndef M40_TOKENIZER_H
#define M40_TOKENIZER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "gguf.h"
#include "m40llm.h"

typedef struct tokenizer tokenizer;

typedef enum tokenizer_type {
    TOKENIZER_SPM = 1, /* tokenizer.ggml.model = "llama" */
    TOKENIZER_BPE = 2, /* tokenizer.ggml.model = "gpt2" */
} tokenizer_type;

/* Token types as stored in tokenizer.ggml.token_type. */
typedef enum tokenizer_token_type {
    TOKEN_TYPE_UNDEFINED = 0,
    TOKEN_TYPE_NORMAL = 1,
    TOKEN_TYPE_UNKNOWN = 2,
    TOKEN_TYPE_CONTROL = 3,
    TOKEN_TYPE_USER_DEFINED = 4,
    TOKEN_TYPE_UNUSED = 5,
    TOKEN_TYPE_BYTE = 6,
} tokenizer_token_type;

/* An in-memory vocab (what tokenizer_load reads from GGUF). Everything is
 * copied by tokenizer_create; the caller keeps ownership. */
typedef struct tokenizer_vocab {
    tokenizer_type type;
    const char *pre;            /* BPE pre-tokenizer name, NULL/"" = "default" */
    const char *model_name;     /* general.name (model-specific token flags), may be NULL */
    int32_t n_tokens;           /* > 0 */
    const char *const *tokens;  /* [n_tokens] token texts (UTF-8) */
    const uint32_t *token_lens; /* [n_tokens] byte lengths, NULL = strlen */
    const float *scores;        /* [n_tokens] SPM merge scores, NULL = all 0 */
    const int32_t *token_types; /* [n_tokens] tokenizer_token_type, NULL = all NORMAL */
    int32_t n_merges;           /* BPE only */
    const char *const *merges;  /* [n_merges] "left right", rank = index */
    const uint32_t *merge_lens; /* [n_merges] byte lengths, NULL = strlen */
    /* Special ids, -1 = absent / model default. */
    int32_t bos, eos, eot, eom, unk, pad;
    /* -1 = model default (SPM: add_bos 1, add_space_prefix 1; BPE: 0, 0), else 0/1 */
    int add_bos, add_eos, add_space_prefix;
    /* true: every USER_DEFINED token is a vocabulary piece, matched in raw
     * text without TOKENIZER_PARSE_SPECIAL and in untrusted text, as the
     * reference tokenizers do (vocabularies whose turn markers are CONTROL:
     * gemma); false: markup-looking ones (<|User|>) are guarded like control
     * tokens. tokenizer_load sets it from the architecture layer. */
    bool plain_user_defined;
} tokenizer_vocab;

/* Fills v with "no value" defaults (ids -1, flags -1). */
void tokenizer_vocab_init(tokenizer_vocab *v);

int tokenizer_create(const tokenizer_vocab *v, tokenizer **out);
/* Reads tokenizer.ggml.* (model, pre, tokens, scores, token_type, merges,
 * bos/eos/eot/eom/unknown/padding ids, add_bos/add_eos/add_space_prefix). */
int tokenizer_load(const gguf_file *f, tokenizer **out);
void tokenizer_free(tokenizer *t);

/* encode flags */
#define TOKENIZER_ADD_SPECIAL   1u /* add BOS/EOS as the model asks (add_bos/add_eos) */
#define TOKENIZER_PARSE_SPECIAL 2u /* recognise control-token text (trusted text only) */

/* Encodes len bytes of text. *ids is malloc'd (free()); *n_ids its length.
 * Empty text gives zero ids (plus BOS/EOS with TOKENIZER_ADD_SPECIAL).
 * Without TOKENIZER_PARSE_SPECIAL no control or markup user-defined id ever
 * comes out (not even through merges); with it, only from their exact text. */
int tokenizer_encode(const tokenizer *t, const char *text, size_t len, unsigned flags,
                     int32_t **ids, size_t *n_ids);

/* tokenizer_encode, but special-token text (control tokens and markup
 * user-defined tokens) is recognised, with TOKENIZER_PARSE_SPECIAL, only where
 * none of its bytes is marked in untrusted[len] (nonzero = untrusted), and
 * untrusted bytes never yield such an id through merges either: for a chat
 * prompt, mark the bytes that came from message contents. Text between the
 * accepted special tokens is tokenized as by tokenizer_encode. A U+FFFD that
 * replaces invalid UTF-8 is untrusted if any byte it replaces is.
 * untrusted NULL = tokenizer_encode; without TOKENIZER_PARSE_SPECIAL the mask
 * changes nothing (all text is then untrusted). */
int tokenizer_encode_masked(const tokenizer *t, const char *text, size_t len,
                            const uint8_t *untrusted, unsigned flags, int32_t **ids, size_t *n_ids);

/* decode flags */
#define TOKENIZER_DECODE_SPECIAL 1u /* render control/unknown tokens' text */
#define TOKENIZER_DECODE_STRIP_SPACE                                                               \
    2u /* SPM with a dummy prefix: skip a leading BOS and the                                      \
        * one space the prefix added, so decode(encode(x)) == x */

/* Bytes of one token's piece (byte-level and <0xXX> mapped back to bytes,
 * SPM "▁" to space). Control tokens give "" unless special. Writes at most cap
 * bytes (no NUL) and sets *len to the full length; returns INVALID_ARG for a
 * bad id. A piece may be part of a UTF-8 character. */
int tokenizer_token_piece(const tokenizer *t, int32_t id, bool special, char *buf, size_t cap,
                          size_t *len);
/* The raw vocab text of a token (as stored, e.g. "Ġhello", "▁the"); NULL for a bad id. */
const char *tokenizer_token_text(const tokenizer *t, int32_t id, size_t *len);

/* Concatenated pieces; *text is malloc'd and NUL-terminated (free()); the bytes
 * are exactly the pieces (no UTF-8 repair), *len their count. */
int tokenizer_decode(const tokenizer *t, const int32_t *ids, size_t n_ids, unsigned flags,
                     char **text, size_t *len);

/* Exact token for a string (any type), or -1. */
int32_t tokenizer_find(const tokenizer *t, const char *text, size_t len);

int32_t tokenizer_n_vocab(const tokenizer *t);
tokenizer_type tokenizer_get_type(const tokenizer *t);
const char *tokenizer_pre_name(const tokenizer *t); /* "" for SPM */
int32_t tokenizer_bos(const tokenizer *t);          /* -1 if none */
int32_t tokenizer_eos(const tokenizer *t);
int32_t
tokenizer_eot(const tokenizer *t); /* from metadata or detected (<|im_end|>, <|eot_id|>...) */
int32_t tokenizer_pad(const tokenizer *t);
int32_t tokenizer_unk(const tokenizer *t);
bool tokenizer_add_bos(const tokenizer *t);
bool tokenizer_add_eos(const tokenizer *t);
tokenizer_token_type tokenizer_token_get_type(const tokenizer *t, int32_t id);
/* End of generation: EOS, EOT, EOM and end-of-turn tokens such as <|im_end|>,
 * <|eot_id|>, <|end|>, <|endoftext|>, <end_of_turn>. */
bool tokenizer_is_eog(const tokenizer *t, int32_t id);
/* Control, unknown or user-defined (text a template may contain). */
bool tokenizer_is_special(const tokenizer *t, int32_t id);

/* Streaming detokenizer: push token ids, get back text that always ends on a
 * UTF-8 character boundary. Bytes of a character split across tokens are held
 * until complete; bytes that can never form a valid character are emitted as
 * U+FFFD at once, and an incomplete tail as U+FFFD by flush. */
typedef struct tokenizer_stream tokenizer_stream;
int tokenizer_stream_create(const tokenizer *t, unsigned decode_flags, tokenizer_stream **out);
/* *text (not NUL-terminated) stays valid until the next call on s. */
int tokenizer_stream_push(tokenizer_stream *s, int32_t id, const char **text, size_t *len);
int tokenizer_stream_flush(tokenizer_stream *s, const char **text, size_t *len);
void tokenizer_stream_reset(tokenizer_stream *s);
void tokenizer_stream_free(tokenizer_stream *s);

/* Replaces each maximal invalid UTF-8 subpart of src by U+FFFD. *dst is
 * malloc'd (NUL-terminated); *n_bad counts the replacements. */
int tokenizer_utf8_sanitize(const char *src, size_t len, char **dst, size_t *dst_len,
                            size_t *n_bad);

#endif
