/* JSON mode: keeps a request's answer one JSON object (OpenAI's
 * response_format json_object, Ollama's format "json").
 *
 * json_pda is a byte-level pushdown automaton for RFC 8259 with an object at
 * the root: it takes the answer's bytes one at a time and refuses the first
 * one that no valid document could continue with (UTF-8 checked inside
 * strings; nesting at most JSON_PDA_MAX_DEPTH; at most JSON_PDA_MAX_WS
 * whitespace bytes in a row outside strings, so a model cannot pad
 * forever).
 *
 * json_vocab holds every token's bytes (as the detokenizer emits them),
 * grouped by first byte; json_gate applies the automaton to a row of logits:
 * a sampled token is kept when all its bytes are accepted, else the row is
 * masked to the tokens that are and sampled again. Control tokens (end of
 * generation included) are never allowed: the engine ends the answer when
 * the root object closes. */
#ifndef M40_JSON_GATE_H
#define M40_JSON_GATE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "tokenizer.h"

#define JSON_PDA_MAX_DEPTH 64
#define JSON_PDA_MAX_WS    64

typedef struct json_pda {
    uint8_t mode;                      /* what the next byte may be (json_gate.c) */
    uint8_t sub;                       /* literal: which one; string: escape / \u progress */
    uint8_t pos;                       /* literal: bytes matched; UTF-8: continuations due */
    uint8_t ws;                        /* whitespace bytes in a row */
    uint8_t key;                       /* the open string is an object key */
    int depth;                         /* open containers */
    uint8_t stack[JSON_PDA_MAX_DEPTH]; /* '{' or '[' of each open container */
} json_pda;

/* The state before the first byte of a document whose root is an object. */
void json_pda_init(json_pda *s);
/* The state before one JSON value of any kind (a part of a bigger document:
 * see json_pda_feed_value). */
void json_pda_init_value(json_pda *s);
/* For json_pda_init_value: 1 c taken; 0 the value was complete before c (c
 * not taken: it is what follows the value, e.g. the ',' after a number);
 * -1 refused. The state changes only on 1. */
int json_pda_feed_value(json_pda *s, uint8_t c);
/* Takes one byte; false (state unchanged) when no document continues so. */
bool json_pda_feed(json_pda *s, uint8_t c);
/* Takes n bytes; false (state unchanged) at the first that is refused. */
bool json_pda_feed_all(json_pda *s, const uint8_t *b, size_t n);
/* The root object has closed. */
bool json_pda_done(const json_pda *s);

/* The string and number parts, shared with the schema automaton
 * (json_schema.c). A string's bytes after its opening quote, with sub and
 * pos 0 at the start: 1 the closing quote, 0 more to come, -1 refused. */
int json_str_feed(uint8_t *sub, uint8_t *pos, uint8_t c);
/* A number's first byte ('-' or a digit): false if it cannot start one. */
bool json_num_start(uint8_t *sub, uint8_t c);
/* A number's next byte (integer: no fraction or exponent): 1 taken, 0 the
 * number was complete and c is what follows (not taken), -1 refused. */
int json_num_feed(uint8_t *sub, uint8_t c, bool integer);

typedef struct json_vocab json_vocab;

/* The bytes of tokens [0, n_vocab) of t (n_vocab: the ids the model may
 * sample). Control and unknown tokens, and tokens of no bytes, are left out. */
int json_vocab_build(const tokenizer *t, int n_vocab, json_vocab **out);
void json_vocab_free(json_vocab *v);

typedef struct json_gate json_gate;
typedef struct json_schema json_schema;

/* A gate for one answer: any object (schema NULL) or an instance of a
 * compiled schema (json_schema.h; it must outlive the gate). */
int json_gate_create(const json_vocab *v, const json_schema *schema, json_gate **out);
void json_gate_free(json_gate *g);
/* Whether token id may come next. */
bool json_gate_allows(const json_gate *g, int32_t id);
/* Writes into masked [n] the row with every token that may not come next at
 * -inf; returns how many may (0: none can). */
int json_gate_mask(const json_gate *g, const float *row, float *masked, int n);
/* Takes the token (allowed) into the state. */
void json_gate_accept(json_gate *g, int32_t id);
/* The answer is a whole object. */
bool json_gate_done(const json_gate *g);

#endif
