/* JSON mode's automaton over a compiled schema (json_schema.h), used like
 * json_pda (json_pda.h): it takes an answer's bytes one at a time and
 * refuses the first one no instance of the schema, written as json_schema.h
 * says, could continue with. */
#ifndef M40_JSON_SA_H
#define M40_JSON_SA_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "json_pda.h"
#include "json_schema.h"

#define JSON_SA_MAX_DEPTH 48 /* nesting of an answer */

typedef struct json_sa_frame {
    int32_t node;   /* schema node */
    uint8_t st;     /* where in it (json_sa.c) */
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
