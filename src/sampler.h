/* Token sampling: greedy, temperature, top-k, top-p, min-p, repetition /
 * frequency / presence penalties over a window, seeded RNG; end-of-generation
 * tokens and text stop sequences. */
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

int sampler_create(const sampler_params *p, int n_vocab, sampler **out);
void sampler_free(sampler *s);
/* Records a token (prompt or generated) in the penalty history. */
void sampler_accept(sampler *s, int32_t token);
void sampler_reset(sampler *s); /* clears history, reseeds */
/* Picks the next token from logits [n_vocab] (not modified). */
int32_t sampler_sample(sampler *s, const float *logits);

/* Greedy argmax, lowest id on ties. */
int32_t sampler_argmax(const float *logits, int n);

/* ---- stopping ---- */

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
