/* A Jinja2-subset template engine for Hugging Face chat templates.
 *
 * Renders `tokenizer.chat_template` sources the way transformers does:
 * ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True,
 * extensions=[loopcontrols]), keep_trailing_newline=False, default Undefined,
 * autoescape off, and tojson as json.dumps(ensure_ascii=False).
 *
 * Errors:
 *   M40LLM_ERR_UNSUPPORTED  syntax error or a construct the engine does not know
 *                           (unknown tag, filter or test at compile time; a call of
 *                           a function or method that does not exist at render
 *                           time); the message names it. Callers may fall back to
 *                           another template.
 *   M40LLM_ERR_INVALID_ARG  the template called raise_exception(msg); the message is msg.
 *   M40LLM_ERR_FORMAT       any other render-time error (undefined value used,
 *                           type mismatch, division by zero, ...). */
#ifndef M40_JINJA_H
#define M40_JINJA_H

#include <stddef.h>
#include <stdint.h>

#include <cjson/cJSON.h>

#include "m40llm.h"

/* A compiled template is read-only while rendering: one may be rendered by
 * several threads at once (each render has its own memory). */
typedef struct jinja_template jinja_template;

/* Compiles `len` bytes of template source. On error *out is NULL and the
 * message says "line N: ..." and what is wrong. */
int jinja_parse(const char *src, size_t len, jinja_template **out);
void jinja_free(jinja_template *t);

typedef struct jinja_render_opts {
    /* Seconds since the epoch that strftime_now() formats (local time);
     * 0 = the current time. Tests pin it for reproducible output. */
    int64_t now;
    /* Loop iterations allowed in one render before it fails (a template from
     * a model file is not trusted to terminate); 0 = 1,000,000. */
    uint64_t max_loop_iterations;
} jinja_render_opts;

/* Renders with the members of the JSON object `vars` as template variables
 * (objects become dicts keeping key order; null becomes none). Globals
 * raise_exception, strftime_now, range, namespace, dict are always defined.
 * On success *out is a malloc'd NUL-terminated string (free() it); the output
 * may contain NUL bytes only if the variables do, so *out_len gives its length
 * (out_len may be NULL). opts may be NULL. */
int jinja_render(const jinja_template *t, const cJSON *vars, const jinja_render_opts *opts,
                 char **out, size_t *out_len);

#endif
