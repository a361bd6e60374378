/* JSON mode with a schema (OpenAI's response_format json_schema, Ollama's
 * "format": {schema}): the answer is an instance of the schema.
 *
 * json_schema_compile reads the subset structured-output clients send
 * (what Pydantic and zod emit): type (one or a list), properties +
 * required, items + minItems / maxItems, enum, const, anyOf / oneOf whose
 * alternatives start with different bytes (an object or null, a string or
 * a number, ...), nullable, $ref into $defs / definitions (recursion
 * included). Annotations are ignored (title, description, default,
 * examples, format, ...); a keyword that constrains values in a way this
 * cannot enforce (pattern, minLength, minimum, ...) is refused with its
 * name, never silently dropped. The root must be an object.
 *
 * The answer is written with the object's properties in the schema's order
 * (optional ones may be left out), no other properties, enum values in
 * their compact form; anything a schema leaves open (no properties, no
 * items, {}) is any JSON.
 *
 * json_sa is the byte-level automaton over a compiled schema, used like
 * json_pda (json_pda.h). */
#ifndef M40_JSON_SCHEMA_H
#define M40_JSON_SCHEMA_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "json_pda.h"

#define JSON_SA_MAX_DEPTH   48  /* nesting of an answer */
#define JSON_SCHEMA_MAX_SET 256 /* properties of an object, values of an enum */

typedef struct json_schema json_schema;

/* Compiles schema text (JSON). M40LLM_ERR_INVALID_ARG naming the place
 * (a JSON pointer) and the keyword for what is not supported or wrong. */
int json_schema_compile(const char *text, size_t len, json_schema **out);
void json_schema_free(json_schema *s);

typedef struct json_sa_frame {
    int32_t node;   /* schema node */
    uint8_t st;     /* where in it (json_schema.c) */
    uint16_t count; /* array: items so far */
    int16_t last;   /* object: the last property written, -1 none */
} json_sa_frame;

typedef struct json_sa {
    const json_schema *s;
    int depth; /* open frames; 0 with done: the answer is complete */
    bool done;
    uint8_t ws;                               /* whitespace bytes in a row */
    uint64_t alive[JSON_SCHEMA_MAX_SET / 64]; /* the top frame's candidates (keys, enum values) */
    uint16_t pos;                             /* bytes of them matched */
    uint8_t sub, spos;                        /* the top frame's string / number state */
    json_pda any;                             /* the top frame's free JSON value */
    json_sa_frame f[JSON_SA_MAX_DEPTH];
} json_sa;

void json_sa_init(json_sa *a, const json_schema *s);
/* Takes one byte; false (state unchanged) when no instance continues so. */
bool json_sa_feed(json_sa *a, uint8_t c);
bool json_sa_feed_all(json_sa *a, const uint8_t *b, size_t n);
/* Feeds n bytes in place, with no copy to fall back on: false leaves a
 * unusable (for trials on a scratch copy). */
bool json_sa_try(json_sa *a, const uint8_t *b, size_t n);
/* Copies the part of src in use (the open frames, not all of f). */
void json_sa_copy(json_sa *dst, const json_sa *src);
bool json_sa_done(const json_sa *a);

#endif
