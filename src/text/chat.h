/* Chat layer: renders a conversation with a model's chat template (the
 * Jinja2-subset engine in jinja.h), with ChatML as the fallback and a few
 * built-in templates selectable by name (--chat-template NAME|FILE). */
#ifndef M40_CHAT_H
#define M40_CHAT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <cjson/cJSON.h>

#include "gguf.h"
#include "m40llm.h"

/* The ChatML template used when a model carries none. */
extern const char chat_template_chatml[];

/* Renders `messages` (a JSON array of {"role", "content"} objects) with the
 * template source. Variables: messages, add_generation_prompt, bos_token,
 * eos_token (NULL = ""), tools = none. On success *out is malloc'd.
 * Errors as jinja.h: M40LLM_ERR_UNSUPPORTED for a template the engine cannot
 * handle, M40LLM_ERR_INVALID_ARG when the template raised (message = its text). */
int chat_render(const char *template_text, const cJSON *messages, bool add_generation_prompt,
                const char *bos_token, const char *eos_token, char **out);

/* chat_render with the time that strftime_now() formats pinned
 * (seconds since the epoch; 0 = now). */
int chat_render_at(const char *template_text, const cJSON *messages, bool add_generation_prompt,
                   const char *bos_token, const char *eos_token, int64_t now, char **out);

/* chat_render, but when template_text is NULL/empty or uses something the
 * engine does not support (M40LLM_ERR_UNSUPPORTED), renders ChatML instead and
 * sets *fell_back (the reason stays in m40llm_last_error() for a warning).
 * A template that raises is an error, not a fallback. */
int chat_render_or_fallback(const char *template_text, const cJSON *messages,
                            bool add_generation_prompt, const char *bos_token,
                            const char *eos_token, char **out, bool *fell_back);

/* A rendered prompt and which of its bytes came from the conversation. */
typedef struct chat_prompt {
    char *text; /* [len] bytes + NUL, malloc'd */
    size_t len;
    uint8_t *untrusted; /* [len] 1 = byte from a message field (never special-token text),
                           NULL = none; malloc'd */
} chat_prompt;

/* Renders like chat_render_or_fallback (fell_back may be NULL: then no
 * fallback, errors returned), with the time strftime_now() formats pinned
 * (`now`, 0 = now). The strings of messages (and tools) are untrusted: every
 * output byte derived from them is marked in out->untrusted, the template's
 * own text (and bos/eos tokens) never, so a tokenizer can parse special-token
 * text in unmarked bytes only. The chat_render* functions above are this
 * without the mask. On error *out is empty. */
int chat_render_prompt(const char *template_text, const cJSON *messages, bool add_generation_prompt,
                       const char *bos_token, const char *eos_token, int64_t now, chat_prompt *out,
                       bool *fell_back);
void chat_prompt_free(chat_prompt *p); /* frees its buffers; p may be NULL */

/* Source of a built-in template by name (chatml, llama2, llama3, mistral,
 * phi3, gemma, zephyr), or NULL. */
const char *chat_builtin_template(const char *name);
/* Comma-separated list of the built-in names, for messages. */
const char *chat_builtin_names(void);

/* Resolves --chat-template NAME|FILE: a built-in name, else the path of a
 * template file. *out is malloc'd. M40LLM_ERR_NOT_FOUND names both options. */
int chat_template_for(const char *name_or_path, char **out);

/* A model's own template and special-token texts from GGUF metadata
 * (tokenizer.chat_template, tokenizer.ggml.{bos,eos}_token_id into
 * tokenizer.ggml.tokens). Each output is malloc'd, or NULL when the model
 * does not record it; any output pointer may be NULL if not wanted. */
int chat_model_template(const gguf_file *f, char **tmpl, char **bos, char **eos);

#endif
