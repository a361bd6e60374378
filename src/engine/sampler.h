/* Token sampling: greedy, temperature, top-k, top-p, min-p, repetition /
 * frequency / presence penalties over a window, seeded RNG; end-of-generation
 * tokens, token budget and text stop sequences.
 *
 * The chain is llama.cpp's default order:
 *   penalties -> top-k -> top-p -> min-p -> temperature -> draw
 * so the filters see the distribution at temperature 1 and temperature only
 * reshapes what survives. The same seed and the same logits (and accepted
 * tokens) give the same tokens. */
#ifndef M40_SAMPLER_H
#define M40_SAMPLER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct sampler_params {
    float temp;             /* <= 0: greedy (argmax, lowest id on ties) */
    int top_k;              /* <= 0: off */
    float top_p;            /* >= 1: off */
    float min_p;            /* <= 0: off */
    float repeat_penalty;   /* 1: off; llama.cpp semantics (divide positive, multiply negative) */
    float freq_penalty;     /* 0: off; subtract freq_penalty * count */
    float presence_penalty; /* 0: off; subtract presence_penalty if count > 0 */
    int penalty_last_n; /* window of recent tokens for the penalties; 0 = off, -1 = whole history */
    uint64_t seed;
} sampler_params;

/* temp 0.8, top_k 40, top_p 0.95, min_p 0.05, repeat 1.0, window 64, seed 0 */
sampler_params sampler_default_params(void);

typedef struct sampler sampler;

/* Allocates every buffer once (about 20 bytes per vocabulary entry); sampling
 * itself never allocates. */
int sampler_create(const sampler_params *p, int n_vocab, sampler **out);
void sampler_free(sampler *s);
/* Records a token (prompt or generated) in the penalty history; ids outside
 * the vocabulary are ignored. Feed the prompt too, as llama.cpp does. */
void sampler_accept(sampler *s, int32_t token);
void sampler_reset(sampler *s); /* clears history, reseeds */
/* Picks the next token from logits [n_vocab] (not modified; NaN counts as
 * -inf). Does not accept it: call sampler_accept with the token kept. */
int32_t sampler_sample(sampler *s, const float *logits);

/* Greedy argmax, lowest id on ties. */
int32_t sampler_argmax(const float *logits, int n);

/* ---- stopping ---- */

typedef enum sampler_stop_reason {
    SAMPLER_CONTINUE = 0,
    SAMPLER_STOP_EOG,    /* an end-of-generation token (EOS, EOT, ...): not shown */
    SAMPLER_STOP_LENGTH, /* the token budget is spent (OpenAI finish_reason "length") */
    SAMPLER_STOP_STRING, /* a stop string matched (stop_matcher) */
} sampler_stop_reason;

/* The end-of-generation ids (from the tokenizer) and the token budget. */
typedef struct sampler_limits {
    const int32_t *eog; /* [n_eog] */
    int n_eog;
    int max_tokens; /* <= 0: unlimited */
} sampler_limits;

/* Whether to stop after generating `token` as the n_generated-th token
 * (counting it). EOG wins over the budget. */
sampler_stop_reason sampler_check_stop(const sampler_limits *l, int32_t token, int n_generated);
/* "stop" or "length" (OpenAI finish_reason); NULL for SAMPLER_CONTINUE. */
const char *sampler_stop_reason_str(sampler_stop_reason r);

/* Detects stop strings in streamed text without ever emitting a stop string
 * or a prefix of one that may still complete. */
typedef struct stop_matcher stop_matcher;

int stop_matcher_create(const char *const *stops, int n_stops, stop_matcher **out);
void stop_matcher_free(stop_matcher *m);
/* Feeds text. Writes to *emit and *emit_len the text that is now safe to show
 * (valid until the next call) and returns true once a stop string matched
 * (the text before it is emitted, the stop string is not). */
bool stop_matcher_feed(stop_matcher *m, const char *text, size_t len, const char **emit,
                       size_t *emit_len);
/* Text held back at end of generation (no stop matched): flush it. */
void stop_matcher_flush(stop_matcher *m, const char **emit, size_t *emit_len);

#endif
