/* What the schema compiler (json_schema.c) hands the automaton (json_sa.c). */
#ifndef M40_JSON_SCHEMA_INT_H
#define M40_JSON_SCHEMA_INT_H

#include <stdbool.h>
#include <stdint.h>

#include "json_schema.h"

enum { K_ANY, K_ANY_OBJECT, K_OBJECT, K_ARRAY, K_STRING, K_NUMBER, K_INTEGER, K_ENUM, K_ANYOF };

typedef struct js_node {
    int kind;
    int n;             /* object: properties; enum: values; anyOf: alternatives */
    char **text;       /* [n] object: keys as JSON strings with quotes; enum: values, compact */
    uint32_t *len;     /* [n] */
    int32_t *child;    /* [n] object: property schemas; anyOf: alternatives; array: [1] items */
    uint8_t *required; /* [n] object */
    int min_items, max_items;
    uint8_t first[32];  /* bytes a value of it can start with */
    int8_t first_state; /* 0 not computed, 1 computing, 2 done */
    char where[96];     /* its JSON pointer, for messages */
} js_node;

struct json_schema {
    js_node *nodes;
    int n, cap;
    int root;
};

static inline bool js_bs_has(const uint8_t *b, unsigned c) {
    return b[c >> 3] >> (c & 7) & 1;
}

#endif
