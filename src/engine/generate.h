/* Text generation over one sequence of a backend: prefill the prompt (in
 * chunks of n_batch_max), sample, stream the new text through a callback,
 * stop at an end-of-generation token, a stop string, the token budget, a full
 * context or cancellation.
 *
 * A session remembers the tokens whose K/V are in its sequence's cache. A new
 * prompt that starts with (part of) that history only prefills what follows
 * the longest common prefix, so a multi-turn chat re-rendered each turn does
 * not evaluate the earlier turns again. */
#ifndef M40_GENERATE_H
#define M40_GENERATE_H

#include <signal.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "backend.h"
#include "sampler.h"
#include "tokenizer.h"

typedef enum gen_stop_reason {
    GEN_STOP_NONE = 0,
    GEN_STOP_EOG,       /* an end-of-generation token (not shown) */
    GEN_STOP_STRING,    /* a stop string matched (not shown) */
    GEN_STOP_LENGTH,    /* max_tokens generated */
    GEN_STOP_CONTEXT,   /* the sequence filled the context */
    GEN_STOP_CANCELLED, /* the cancel flag was set or the callback returned false */
} gen_stop_reason;

/* "eos", "stop", "length", "context", "cancelled" ("" for NONE). */
const char *gen_stop_reason_str(gen_stop_reason r);
/* OpenAI finish_reason: "stop" (EOG, stop string, cancelled) or "length"
 * (token budget, context full). */
const char *gen_finish_reason(gen_stop_reason r);

/* Receives each new piece of text: whole UTF-8 characters, never a stop
 * string or a prefix of one still being matched. Return false to stop. */
typedef bool (*gen_text_fn)(void *ctx, const char *text, size_t len);

typedef struct gen_params {
    sampler_params sampling;
    int max_tokens;           /* <= 0: until EOG, a stop string or a full context */
    const char *const *stops; /* [n_stops] stop strings, may be NULL */
    int n_stops;
    /* Checked before every forward call (each prefill chunk, each token);
     * nonzero stops with GEN_STOP_CANCELLED. A signal handler may set it. */
    const volatile sig_atomic_t *cancel;
    bool special; /* render control tokens' text in the output (EOG never shown) */
} gen_params;

/* sampling = sampler_default_params(), max_tokens -1, no stops, no cancel. */
gen_params gen_default_params(void);

typedef struct gen_stats {
    int n_prompt;      /* prompt tokens given */
    int n_reused;      /* of them, already in the cache (common prefix) */
    int n_prompt_eval; /* of them, evaluated now (n_prompt - n_reused) */
    int n_gen;         /* tokens generated (the EOG token not counted) */
    double t_prompt_s; /* prefill time (evaluation of n_prompt_eval tokens) */
    double t_gen_s;    /* evaluation + sampling of the generated tokens after the first */
    double ttft_s;     /* call start to the first generated token sampled */
    double prompt_tps; /* n_prompt_eval / t_prompt_s (0 if nothing evaluated) */
    double gen_tps;    /* generated tokens per second after the first */
    gen_stop_reason reason;
} gen_stats;

typedef struct gen_session gen_session;

/* A session for sequence `seq` of backend b (which stays owned by the caller
 * and must outlive the session). The sequence's cache is cleared. */
int gen_session_create(backend *b, const tokenizer *t, int seq, gen_session **out);
void gen_session_free(gen_session *s);
/* Forgets the history and clears the sequence's cache. */
void gen_session_reset(gen_session *s);
/* The tokens whose K/V the cache holds, in order; *n gets their count. */
const int32_t *gen_session_tokens(const gen_session *s, int *n);
int gen_session_n_ctx(const gen_session *s);

/* Generates a continuation of `prompt` (the whole sequence so far: earlier
 * turns included; at least one token). Text goes to cb (may be NULL) as it is
 * produced; *stats (may be NULL) gets counts, timings and the stop reason.
 * Errors: M40LLM_ERR_CONTEXT_FULL when the prompt is longer than the context
 * (nothing is evaluated then), backend errors as they come. Running out of
 * context while generating is not an error: it stops with GEN_STOP_CONTEXT. */
int gen_generate(gen_session *s, const int32_t *prompt, int n_prompt, const gen_params *p,
                 gen_text_fn cb, void *cb_ctx, gen_stats *stats);

/* Length of the longest common prefix of two token arrays. */
int gen_common_prefix(const int32_t *a, int na, const int32_t *b, int nb);

#endif
