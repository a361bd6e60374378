/* Checks on untrusted JSON text (messages files now, request bodies of the
 * HTTP server later) that cJSON cannot make, run before cJSON_Parse:
 *   - a NUL byte, or a "\u0000" escape (cJSON would end the string there,
 *     cutting it silently);
 *   - nesting deeper than cJSON's limit (CJSON_NESTING_LIMIT), named rather
 *     than reported as a syntax error;
 *   - more values than a limit: cJSON takes about 64 bytes a value, so
 *     64 MiB of "0," would need 4 GiB; counted in one pass without
 *     allocating. */
#ifndef M40_JSON_CHECK_H
#define M40_JSON_CHECK_H

#include <stddef.h>

/* Values a messages JSON may hold by default (a long conversation has a
 * few thousand). */
#define JSON_CHECK_MAX_VALUES 1000000

/* Checks len bytes of text (which may hold NUL bytes; the text need not be
 * NUL-terminated) for the above, counting values (each array or object, each
 * element and member) and refusing more than max_values (0 =
 * JSON_CHECK_MAX_VALUES). The text is not otherwise validated: cJSON reports
 * syntax errors. M40LLM_OK, or M40LLM_ERR_FORMAT with a message that starts
 * with name (e.g. the file's path) and gives the byte offset and the limit. */
int json_check(const char *text, size_t len, const char *name, size_t max_values);

#endif
