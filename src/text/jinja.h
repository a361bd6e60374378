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
 *                           type mismatch, division by zero, ...), and a render
 *                           that exceeds its memory or step budget (the message
 *                           names the budget and its size).
 *
 * A template from a model file is untrusted: whatever it does, a render ends
 * within its budgets. By default those are 8 MiB and 500k steps plus 16
 * bytes and 4 steps per byte of the variables, never more than 64 MiB and
 * 5M steps (JINJA_DEFAULT_*_CAP): any render, whatever its template and
 * variables, ends well under a second holding at most 64 MiB of values.
 * Explicit budgets (jinja_render_opts) replace these. */
#ifndef M40_JINJA_H
#define M40_JINJA_H

#include <stddef.h>
#include <stdint.h>

#include <cjson/cJSON.h>

#include "m40llm.h"

/* A compiled template is read-only while rendering: one may be rendered by
 * several threads at once (each render has its own memory). */
typedef struct jinja_template jinja_template;

/* Largest source jinja_parse accepts (chat templates are a few KiB). */
#define JINJA_MAX_SOURCE (512 << 10)

/* Compiles `len` bytes of template source. On error *out is NULL and the
 * message says "line N: ..." and what is wrong; a source over
 * JINJA_MAX_SOURCE bytes is M40LLM_ERR_UNSUPPORTED. */
int jinja_parse(const char *src, size_t len, jinja_template **out);
void jinja_free(jinja_template *t);

/* Defaults of the render budgets (jinja_render_opts): a base that grows
 * with the variables, never past the ceiling (*_CAP). */
#define JINJA_DEFAULT_MEMORY     ((size_t)8 << 20)
#define JINJA_DEFAULT_MEMORY_CAP ((size_t)64 << 20)
#define JINJA_DEFAULT_STEPS      500000ull
#define JINJA_DEFAULT_STEPS_CAP  5000000ull

/* What a render used, for tests and diagnostics (jinja_render_opts.stats). */
typedef struct jinja_render_stats {
    size_t memory_peak; /* most bytes its values held at once (never above max_memory) */
    size_t max_memory;  /* the memory budget that applied */
    uint64_t steps;     /* steps done */
    uint64_t max_steps; /* the step budget that applied */
} jinja_render_stats;

typedef struct jinja_render_opts {
    /* Seconds since the epoch that strftime_now() formats (local time);
     * 0 = the current time. Tests pin it for reproducible output. */
    int64_t now;
    /* Work one render may do, in steps: an expression evaluated, a statement,
     * a loop iteration, a container item visited, a piece of text written, 16
     * bytes scanned or copied. A chat template takes about 100 per message.
     * 0 = JINJA_DEFAULT_STEPS plus 4 per byte of the variables, at most
     * JINJA_DEFAULT_STEPS_CAP (5M steps of a loop take about 0.2 s). */
    uint64_t max_steps;
    /* Bytes the values of one render may hold at once: the variables, every
     * value built, buffers, taint masks and the output.
     * 0 = JINJA_DEFAULT_MEMORY plus 16 bytes per byte of the variables
     * (their strings, and 40 bytes a value), so long conversations fit, at
     * most JINJA_DEFAULT_MEMORY_CAP. Converting the variables counts too:
     * variables that need more than the budget (or than the ceiling, when
     * max_memory is 0) fail the render with a budget error. */
    size_t max_memory;
    /* NULL-terminated names of top-level variables whose strings (and dict
     * keys, at any depth) are untrusted text; NULL = none. See jinja_render_ex. */
    const char *const *untrusted_vars;
    /* When not NULL, receives what the render used (also after an error). */
    jinja_render_stats *stats;
} jinja_render_opts;

/* Renders with the members of the JSON object `vars` as template variables
 * (objects become dicts keeping key order; null becomes none). Globals
 * raise_exception, strftime_now, range, namespace, dict are always defined.
 * On success *out is a malloc'd NUL-terminated string (free() it); the output
 * may contain NUL bytes only if the variables do, so *out_len gives its length
 * (out_len may be NULL). opts may be NULL. */
int jinja_render(const jinja_template *t, const cJSON *vars, const jinja_render_opts *opts,
                 char **out, size_t *out_len);

/* jinja_render that also says which output bytes came from untrusted text
 * (opts->untrusted_vars): *out_untrusted is a malloc'd mask of *out_len bytes,
 * 1 = the byte derives from an untrusted string, or NULL when no byte does
 * (out_untrusted may be NULL). Concatenation, join, slicing and strip keep
 * each byte's mark; any other operation on untrusted text (case mapping,
 * replace, formatting, tojson, printing a container, ...) marks its whole
 * result. The template's own text is never marked, so a caller can parse
 * special-token text in unmarked bytes only. */
int jinja_render_ex(const jinja_template *t, const cJSON *vars, const jinja_render_opts *opts,
                    char **out, size_t *out_len, uint8_t **out_untrusted);

#endif
