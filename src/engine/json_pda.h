/* JSON mode's automaton: json_pda is a byte-level pushdown automaton for
 * RFC 8259 with an object at the root (or, for a part of a bigger
 * document, one value of any kind): it takes the answer's bytes one at a
 * time and refuses the first one that no valid document could continue
 * with (UTF-8 checked inside strings; nesting at most JSON_PDA_MAX_DEPTH;
 * at most JSON_PDA_MAX_WS whitespace bytes in a row outside strings, so a
 * model cannot pad forever). json_gate.h applies it to tokens; the schema
 * automaton (json_schema.h) shares its string and number parts. */
#ifndef M40_JSON_PDA_H
#define M40_JSON_PDA_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define JSON_PDA_MAX_DEPTH 64
#define JSON_PDA_MAX_WS    64

typedef struct json_pda {
    uint8_t mode;                      /* what the next byte may be (json_pda.c) */
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

#endif
