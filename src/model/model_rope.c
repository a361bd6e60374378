#include "model_rope.h"

#include <math.h>

void model_yarn_range(const model_config *c, float base, double *lo, double *hi) {
    const double n = c->n_rot, lb = 2.0 * log((double)base), two_pi = 2.0 * 3.14159265358979323846;
    double a = floor(n * log(c->yarn_orig_ctx / (c->yarn_beta_fast * two_pi)) / lb);
    double b = ceil(n * log(c->yarn_orig_ctx / (c->yarn_beta_slow * two_pi)) / lb);
    *lo = a > 0 ? a : 0;
    *hi = b < n - 1 ? b : n - 1;
}

const model_tensor *model_rope_factors(const model *m, int n_ctx) {
    const model_config *c = &m->cfg;
    if (c->rope_scaling == MODEL_ROPE_SCALING_LONGROPE)
        return n_ctx > c->rope_orig_ctx ? &m->rope_freqs : &m->rope_freqs_short;
    return model_has(&m->rope_freqs) ? &m->rope_freqs : NULL;
}

float model_rope_mscale(const model_config *c) {
    if (c->rope_scaling == MODEL_ROPE_SCALING_YARN) return c->yarn_attn_factor;
    if (c->rope_scaling == MODEL_ROPE_SCALING_LONGROPE) return c->rope_attn_factor;
    return 1.0f;
}
