/* RoPE helpers both backends share, so their angles agree. */
#ifndef M40_MODEL_ROPE_H
#define M40_MODEL_ROPE_H

#include "model.h"

/* YaRN's correction range in dimension pairs for a layer's RoPE base: the
 * pairs that turn fewer than beta_slow / more than beta_fast times over the
 * original context, floored and ceiled and clamped to [0, n_rot - 1] as
 * llama.cpp and transformers do. Below lo a pair is extrapolated (its
 * angle unscaled), above hi interpolated. */
void model_yarn_range(const model_config *c, float base, double *lo, double *hi);

/* The frequency divisors the layers with rope_factors use for a context of
 * n_ctx positions per sequence: llama3's rope_freqs; LongRoPE's long
 * factors beyond its original context, else its short ones (as llama.cpp
 * decides, by the context asked for); NULL where the model has none. */
const model_tensor *model_rope_factors(const model *m, int n_ctx);
/* The cos/sin multiplier: YaRN's or LongRoPE's attention factor, else 1. */
float model_rope_mscale(const model_config *c);

#endif
