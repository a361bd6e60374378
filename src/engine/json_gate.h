/* JSON mode: keeps a request's answer one JSON object (OpenAI's
 * response_format json_object, Ollama's format "json"), or an instance of a
 * schema (json_schema.h).
 *
 * json_vocab holds every token's bytes (as the detokenizer emits them),
 * grouped by first byte; json_gate applies the automaton (json_pda.h, or the
 * schema's) to a row of logits: a sampled token is kept when all its bytes
 * are accepted, else the row is masked to the tokens that are and sampled
 * again. Control tokens (end of generation included) are never allowed:
 * the engine ends the answer when the root object closes. */
#ifndef M40_JSON_GATE_H
#define M40_JSON_GATE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "json_pda.h"
#include "tokenizer.h"

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
