/* Conversation: the one path from messages to prompt token ids, shared by
 * `m40-llm run` (history kept turn by turn) and the server (a whole messages
 * array per request, no history). It renders the chat template
 * (chat_render_prompt, ChatML when the template cannot be used), tokenizes
 * with special-token parsing in the template's bytes only (message text is
 * untrusted), drops a doubled BOS, and checks the prompt against the
 * context. Raw mode (no template) keeps a transcript instead: the user's
 * text as written (trusted) and the model's answers (untrusted).
 * Functions return an m40llm status with the message in m40llm_last_error();
 * nothing here prints or exits. */
#ifndef M40_CONVERSATION_H
#define M40_CONVERSATION_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <cjson/cJSON.h>

#include "tokenizer.h"

typedef struct conv conv;

/* Which step of conv_prompt / conv_render_messages failed. */
typedef enum conv_step {
    CONV_OK = 0,
    CONV_FAIL_INPUT,    /* the messages (or the call) are invalid */
    CONV_FAIL_RENDER,   /* the template raised, or out of memory building the text */
    CONV_FAIL_TOKENIZE, /* the tokenizer failed */
    CONV_FAIL_EMPTY,    /* no tokens (M40LLM_ERR_INVALID_ARG, "the prompt is empty") */
    CONV_FAIL_TOO_LONG, /* more tokens than n_ctx (M40LLM_ERR_CONTEXT_FULL, both lengths) */
} conv_step;

/* tmpl: template source, NULL = raw mode; bos/eos: special-token texts for
 * the template (NULL = ""). The strings are copied; tok is borrowed and must
 * outlive the conversation. */
int conv_create(const tokenizer *tok, const char *tmpl, const char *bos, const char *eos,
                conv **out);
void conv_free(conv *c); /* c may be NULL */

bool conv_is_raw(const conv *c);
/* Sets the system message (NULL/"" removes it), kept first in the messages.
 * In raw mode it is only stored (conv_system shows it); it is never sent. */
int conv_set_system(conv *c, const char *text);
const char *conv_system(const conv *c); /* NULL when none */
/* Forgets the conversation (messages or transcript); the system message stays. */
void conv_clear(conv *c);

/* Adds the user's next message (one at a time: INVALID_ARG while an earlier
 * one waits for its answer). */
int conv_add_user(conv *c, const char *text);
/* Token ids of the prompt for the next answer: the whole conversation
 * rendered with add_generation_prompt (raw: transcript + user text),
 * tokenized with ADD_SPECIAL | PARSE_SPECIAL over the untrusted mask, a
 * doubled BOS dropped. n_ctx > 0 limits its length. *ids is malloc'd;
 * failed (may be NULL) names the step on error. The state is unchanged. */
int conv_prompt(conv *c, int n_ctx, int32_t **ids, size_t *n, conv_step *failed);
/* Records the model's answer to the waiting user message. */
int conv_add_assistant(conv *c, const char *text);
/* Forgets the user message that waits for its answer (after a failed
 * turn): the next conv_prompt gives the ids it gave before conv_add_user. */
int conv_undo_user(conv *c);

/* When the last render could not use the template and used ChatML: the
 * reason (for a warning); NULL otherwise. Valid until the next render. */
const char *conv_fallback(const conv *c);

/* Stateless: the prompt ids for a whole messages array (an OpenAI request:
 * objects with role "system", "user" or "assistant" and a string content;
 * other fields ignored), with c's template and tokenizer; c's history is
 * neither used nor changed. Bad shapes fail with CONV_FAIL_INPUT naming the
 * item (M40LLM_ERR_TYPE for a wrong JSON type, M40LLM_ERR_INVALID_ARG for an
 * unknown role, an empty array, or raw mode). Otherwise as conv_prompt. */
int conv_render_messages(conv *c, const cJSON *messages, int n_ctx, int32_t **ids, size_t *n,
                         conv_step *failed);

#endif
