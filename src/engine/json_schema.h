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
 * json_sa.h is the byte-level automaton over a compiled schema. */
#ifndef M40_JSON_SCHEMA_H
#define M40_JSON_SCHEMA_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define JSON_SCHEMA_MAX_SET 256 /* properties of an object, values of an enum */

typedef struct json_schema json_schema;

/* Compiles schema text (JSON). M40LLM_ERR_INVALID_ARG naming the place
 * (a JSON pointer) and the keyword for what is not supported or wrong. */
int json_schema_compile(const char *text, size_t len, json_schema **out);
void json_schema_free(json_schema *s);

#endif
