/* What a model's description asks of a backend beyond the plain llama
 * block, as bits (the CUDA backend refuses what it lacks) and as one line
 * for `m40-llm show`. */
#include <math.h>
#include <stdarg.h>
#include <stdio.h>

#include "model.h"

uint32_t model_features(const model *m) {
    const model_config *c = &m->cfg;
    uint32_t f = 0;
    for (int il = 0; il < c->n_layer; il++) {
        const model_layer *L = &m->layers[il];
        if (model_has(&L->bq)) f |= MODEL_FEAT_QKV_BIAS;
        if (model_has(&L->bo)) f |= MODEL_FEAT_O_BIAS;
        if (model_has(&L->q_norm)) f |= MODEL_FEAT_QK_NORM;
        if (model_has(&L->post_attn_norm)) f |= MODEL_FEAT_POST_NORMS;
        if (L->n_swa) f |= MODEL_FEAT_SWA;
        if (model_layer_moe(L)) f |= MODEL_FEAT_MOE;
        if (L->rope_factors) f |= MODEL_FEAT_ROPE_FACTORS;
        if (L->rope_base != c->rope_freq_base || L->rope_freq_scale != c->rope_freq_scale)
            f |= MODEL_FEAT_LAYER_ROPE;
    }
    if (c->rope_scaling == MODEL_ROPE_SCALING_YARN) f |= MODEL_FEAT_ROPE_YARN;
    if (c->norm_w_offset != 0.0f) f |= MODEL_FEAT_NORM_OFFSET;
    if (c->act != MODEL_ACT_SILU) f |= MODEL_FEAT_GELU;
    if (c->rope_kind != MODEL_ROPE_NORM) f |= MODEL_FEAT_ROPE_NEOX;
    if (c->embd_scale != 1.0f) f |= MODEL_FEAT_EMBD_SCALE;
    if (c->attn_scale != (float)(1.0 / sqrt((double)c->head_dim))) f |= MODEL_FEAT_ATTN_SCALE;
    if (c->attn_softcap > 0.0f) f |= MODEL_FEAT_ATTN_SOFTCAP;
    if (c->final_softcap > 0.0f) f |= MODEL_FEAT_FINAL_SOFTCAP;
    if ((int64_t)c->n_head * c->head_dim != c->n_embd) f |= MODEL_FEAT_WIDE_ATTN;
    return f;
}

const char *model_feature_name(uint32_t bit) {
    switch (bit) {
    case MODEL_FEAT_QKV_BIAS:
        return "q/k/v biases";
    case MODEL_FEAT_O_BIAS:
        return "an attention output bias";
    case MODEL_FEAT_QK_NORM:
        return "q/k norms";
    case MODEL_FEAT_POST_NORMS:
        return "post-attention/FFN norms";
    case MODEL_FEAT_NORM_OFFSET:
        return "norm weight offset";
    case MODEL_FEAT_GELU:
        return "GeGLU (tanh GELU)";
    case MODEL_FEAT_ROPE_NEOX:
        return "NeoX RoPE";
    case MODEL_FEAT_ROPE_FACTORS:
        return "RoPE frequency factors (rope_freqs)";
    case MODEL_FEAT_LAYER_ROPE:
        return "per-layer RoPE bases";
    case MODEL_FEAT_SWA:
        return "sliding-window attention";
    case MODEL_FEAT_EMBD_SCALE:
        return "embedding scale";
    case MODEL_FEAT_ATTN_SCALE:
        return "an attention scale override";
    case MODEL_FEAT_ATTN_SOFTCAP:
        return "attention soft-capping";
    case MODEL_FEAT_FINAL_SOFTCAP:
        return "final logit soft-capping";
    case MODEL_FEAT_WIDE_ATTN:
        return "n_head * head_dim != n_embd";
    case MODEL_FEAT_MOE:
        return "mixture of experts";
    default:
        return "an unknown feature";
    }
}

typedef struct feat_buf {
    char *buf;
    size_t size, at;
} feat_buf;

static void add(feat_buf *b, const char *fmt, ...) {
    if (b->at >= b->size) return;
    if (b->at) b->at += (size_t)snprintf(b->buf + b->at, b->size - b->at, ", ");
    if (b->at >= b->size) return;
    va_list ap;
    va_start(ap, fmt);
    b->at += (size_t)vsnprintf(b->buf + b->at, b->size - b->at, fmt, ap);
    va_end(ap);
}

void model_describe_features(const model *m, char *buf, size_t size) {
    const model_config *c = &m->cfg;
    feat_buf b = {buf, size, 0};
    if (size) buf[0] = 0;
    const uint32_t f = model_features(m);
    if (f & MODEL_FEAT_MOE)
        add(&b, "mixture of experts: %d of %d per token%s, expert FFN %d", c->n_expert_used,
            c->n_expert, c->expert_norm ? " (weights renormalised)" : "", c->n_ff_exp);
    if (f & MODEL_FEAT_SWA)
        add(&b, "sliding window %d on %d of %d layers", c->n_swa, c->n_swa_layers, c->n_layer);
    if (f & (MODEL_FEAT_ATTN_SOFTCAP | MODEL_FEAT_FINAL_SOFTCAP))
        add(&b, "soft-cap %g/%g", c->attn_softcap, c->final_softcap);
    if (f & MODEL_FEAT_LAYER_ROPE) {
        float lo = c->rope_freq_base;
        for (int il = 0; il < c->n_layer; il++)
            if (m->layers[il].rope_base != c->rope_freq_base) lo = m->layers[il].rope_base;
        add(&b, "RoPE base %g (global) / %g (local)", c->rope_freq_base, lo);
    }
    if (c->rope_scaling == MODEL_ROPE_SCALING_LINEAR)
        add(&b, "linear RoPE scaling x%g", 1.0 / c->rope_freq_scale);
    if (f & MODEL_FEAT_ROPE_YARN)
        add(&b, "YaRN RoPE scaling x%g from %d", 1.0 / c->rope_freq_scale, c->yarn_orig_ctx);
    if (c->rope_scaling == MODEL_ROPE_SCALING_LONGROPE)
        add(&b, "LongRoPE from %d (attention factor %.4g)", c->rope_orig_ctx, c->rope_attn_factor);
    else if (f & MODEL_FEAT_ROPE_FACTORS)
        add(&b, "RoPE frequency factors");
    if (f & MODEL_FEAT_ROPE_NEOX) add(&b, "NeoX RoPE");
    if (f & MODEL_FEAT_QKV_BIAS) add(&b, "q/k/v biases");
    if (f & MODEL_FEAT_O_BIAS) add(&b, "output bias");
    if (f & MODEL_FEAT_QK_NORM) add(&b, "q/k norms");
    if (f & MODEL_FEAT_POST_NORMS) add(&b, "post-norms");
    if (f & MODEL_FEAT_NORM_OFFSET) add(&b, "norm weight +%g", c->norm_w_offset);
    if (f & MODEL_FEAT_GELU) add(&b, "GeGLU");
    if (f & MODEL_FEAT_EMBD_SCALE) add(&b, "embedding scale %.4g", c->embd_scale);
    if (f & MODEL_FEAT_ATTN_SCALE) add(&b, "attention scale %.4g", c->attn_scale);
    if (f & MODEL_FEAT_WIDE_ATTN)
        add(&b, "attention width %d (%d heads of %d)", c->n_head * c->head_dim, c->n_head,
            c->head_dim);
    if (!b.at && size) snprintf(buf, size, "none");
}
