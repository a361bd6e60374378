/* A decoder-only transformer model read from GGUF into one normalized
 * description: hyperparameters, the feature switches a backend's block reads
 * (norm, activation, RoPE, attention variants), and the weight tensors,
 * validated. The architecture-specific reading lives in src/model/arch/
 * (one file per general.architecture); backends never test the name.
 * Weights stay in their stored type inside the mmapped GGUF file. */
#ifndef M40_MODEL_H
#define M40_MODEL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "gguf.h"

/* The gated FFN's activation: act(gate) * up. */
typedef enum model_act {
    MODEL_ACT_SILU = 0,      /* SwiGLU: g / (1 + e^-g) */
    MODEL_ACT_GELU_TANH = 1, /* GeGLU, tanh approximation of GELU (gemma) */
} model_act;

/* Which dimensions of a head RoPE rotates together. */
typedef enum model_rope_kind {
    MODEL_ROPE_NORM = 0, /* adjacent pairs (2i, 2i+1) (llama) */
    MODEL_ROPE_NEOX = 1, /* halves (i, i + n_rot/2) (qwen, gemma, phi3) */
} model_rope_kind;

/* How the rotation frequencies are scaled for long contexts. */
typedef enum model_rope_scaling {
    MODEL_ROPE_SCALING_NONE = 0,
    MODEL_ROPE_SCALING_LINEAR = 1,   /* positions * rope_freq_scale */
    MODEL_ROPE_SCALING_FACTORS = 2,  /* frequency i divided by rope_freqs[i] (llama3, longrope) */
    MODEL_ROPE_SCALING_YARN = 3,     /* YaRN: interpolation ramped by dimension, cos/sin scaled */
    MODEL_ROPE_SCALING_LONGROPE = 4, /* phi3 LongRoPE: divisors rope_freqs (contexts beyond
                                      * rope_orig_ctx) or rope_freqs_short, cos/sin scaled */
} model_rope_scaling;

typedef struct model_config {
    char arch[32];         /* general.architecture, for display only */
    char name[128];        /* general.name, may be empty */
    int n_layer;           /* <arch>.block_count */
    int n_embd;            /* <arch>.embedding_length */
    int n_ff;              /* <arch>.feed_forward_length */
    int n_head;            /* <arch>.attention.head_count */
    int n_head_kv;         /* <arch>.attention.head_count_kv (GQA); = n_head if absent */
    int head_dim;          /* <arch>.attention.key_length; n_embd / n_head if absent */
    int n_rot;             /* <arch>.rope.dimension_count; = head_dim if absent */
    int n_vocab;           /* rows of token_embd */
    int n_ctx_train;       /* <arch>.context_length */
    float rope_freq_base;  /* <arch>.rope.freq_base; 10000 if absent (global layers) */
    float rope_freq_scale; /* 1 / rope.scaling.factor for linear scaling, else 1 */
    float rms_eps;         /* <arch>.attention.layer_norm_rms_epsilon */
    /* ---- the block's variants, set by the architecture ---- */
    model_act act;                   /* FFN activation */
    model_rope_kind rope_kind;       /* pair ordering */
    model_rope_scaling rope_scaling; /* NONE, LINEAR (rope_freq_scale), FACTORS (rope_freqs),
                                      * YARN (rope_freq_scale and the yarn_* fields) */
    int yarn_orig_ctx;               /* YaRN: rope.scaling.original_context_length */
    float yarn_beta_fast;            /* YaRN: rope.scaling.yarn_beta_fast; 32 */
    float yarn_beta_slow;            /* YaRN: rope.scaling.yarn_beta_slow; 1 */
    float yarn_attn_factor;          /* YaRN: cos/sin multiplier, 1 + 0.1 ln(factor) unless given */
    int rope_orig_ctx;               /* LongRoPE: rope.scaling.original_context_length */
    float rope_attn_factor; /* LongRoPE: cos/sin multiplier, sqrt(1 + ln(s) / ln(orig)) with
                             * s = context_length / orig, unless rope.scaling.attn_factor */
    float norm_w_offset;    /* added to every RMSNorm weight (0; 1 for a raw gemma (1 + w) file) */
    float embd_scale;       /* token embeddings multiplied by it (gemma: sqrt(n_embd)); 1 */
    float attn_scale;       /* q.k multiplier: 1 / sqrt(head_dim) unless the model says otherwise */
    float attn_softcap;     /* 0: off; else scores = c * tanh(scores / c) before the mask */
    float final_softcap;    /* 0: off; else logits = c * tanh(logits / c) */
    int n_swa;        /* sliding window (keys pos-n_swa+1 .. pos) of the layers that use one */
    int n_swa_layers; /* layers with model_layer.n_swa > 0 */
    /* ---- mixture of experts (n_expert 0: every FFN is dense) ---- */
    int n_expert;      /* <arch>.expert_count: experts of each MoE layer */
    int n_expert_used; /* <arch>.expert_used_count: experts a token is routed to (k) */
    int n_ff_exp;      /* one expert's FFN width (qwen3moe: expert_feed_forward_length; n_ff) */
    bool expert_norm;  /* the k routing weights are renormalised to sum to 1 */
    /* Routing, for every backend: logits = router . x; p = softmax over all
     * n_expert logits; the k experts of largest logit, the lower index first
     * among equal logits (torch.topk leaves that order unspecified); weight
     * p_i, or p_i / sum of the k p's when expert_norm. */
} model_config;

/* One weight as stored. ne[0] is the input (contiguous) dimension:
 * a matrix with ne = {n_in, n_out} computes y[o] = sum_i W[o][i] x[i].
 * An expert tensor holds ne[2] such matrices back to back (ne = {n_in,
 * n_out, n_expert}). An optional tensor that is absent has data == NULL and
 * name == NULL. A view (rows of a fused tensor, phi3; one expert) points
 * into its parent's data. */
typedef struct model_tensor {
    const char *name; /* NUL-terminated copy owned by the model */
    int type;         /* quant_type */
    int64_t ne[4];    /* {n_in, n_out, n_expert or 1, 1} */
    const void *data; /* into the mapping */
    size_t nbytes;
    size_t row_bytes;    /* bytes of one ne[0] row */
    size_t expert_bytes; /* bytes of one ne[0] x ne[1] matrix (= nbytes unless ne[2] > 1) */
} model_tensor;

static inline bool model_has(const model_tensor *t) {
    return t->data != NULL;
}

/* Expert e (< ne[2]) of an expert tensor as a matrix of its own: same name,
 * type and rows, ne[2] = 1, data at its slice. */
static inline model_tensor model_expert(const model_tensor *t, int e) {
    model_tensor v = *t;
    v.ne[2] = 1;
    v.data = (const unsigned char *)t->data + (size_t)e * t->expert_bytes;
    v.nbytes = t->expert_bytes;
    return v;
}

typedef struct model_layer {
    model_tensor attn_norm; /* [n_embd] */
    model_tensor wq;        /* [n_embd] -> [n_head * head_dim] */
    model_tensor wk;        /* [n_embd] -> [n_head_kv * head_dim] */
    model_tensor wv;        /* [n_embd] -> [n_head_kv * head_dim] */
    model_tensor wo;        /* [n_head * head_dim] -> [n_embd] */
    model_tensor ffn_norm;  /* [n_embd] */
    model_tensor w_gate;    /* [n_embd] -> [n_ff]; absent on a MoE layer */
    model_tensor w_up;      /* [n_embd] -> [n_ff]; absent on a MoE layer */
    model_tensor w_down;    /* [n_ff] -> [n_embd]; absent on a MoE layer */
    model_tensor router;    /* MoE layers: [n_embd] -> [n_expert] logits (ffn_gate_inp) */
    model_tensor
        gate_exps;        /* MoE: n_expert x ([n_embd] -> [n_ff_exp]), ne {E, n_ff_exp, n_expert} */
    model_tensor up_exps; /* MoE: n_expert x ([n_embd] -> [n_ff_exp]) */
    model_tensor
        down_exps;       /* MoE: n_expert x ([n_ff_exp] -> [n_embd]), ne {n_ff_exp, E, n_expert} */
    model_tensor bq;     /* optional [n_head * head_dim] (qwen2) */
    model_tensor bk;     /* optional [n_head_kv * head_dim] */
    model_tensor bv;     /* optional [n_head_kv * head_dim] */
    model_tensor bo;     /* optional [n_embd] */
    model_tensor q_norm; /* optional [head_dim] RMSNorm of each query head (qwen3, gemma3) */
    model_tensor k_norm; /* optional [head_dim] RMSNorm of each key head */
    model_tensor post_attn_norm; /* optional [n_embd] on the attention output (gemma2/3) */
    model_tensor post_ffn_norm;  /* optional [n_embd] on the FFN output (gemma2/3) */
    int n_swa;                   /* 0: full causal attention; else the sliding window */
    float rope_base;             /* this layer's RoPE base (gemma3 local layers: their own) */
    float rope_freq_scale;       /* this layer's linear scaling (1 on gemma3 local layers) */
    bool rope_factors;           /* this layer divides frequencies by model.rope_freqs */
} model_layer;

/* A layer whose FFN is a mixture of experts (router and expert tensors
 * instead of w_gate / w_up / w_down). */
static inline bool model_layer_moe(const model_layer *L) {
    return model_has(&L->router);
}

/* Every tensor slot of a layer, for loops over them (free, byte counts). */
enum { MODEL_LAYER_TENSORS = 21 };
void model_layer_tensors(model_layer *L, model_tensor *out[MODEL_LAYER_TENSORS]);

typedef struct model {
    model_config cfg;
    gguf_file *gguf;               /* owns the mapping */
    model_tensor tok_embd;         /* [n_embd] x n_vocab rows */
    model_tensor output_norm;      /* [n_embd] */
    model_tensor output;           /* [n_embd] -> [n_vocab]; = tok_embd when tied */
    model_tensor rope_freqs;       /* optional [n_rot / 2] frequency divisors (llama3; LongRoPE's
                                    * long factors) */
    model_tensor rope_freqs_short; /* optional [n_rot / 2] LongRoPE's short factors */
    bool tied_output;              /* output.weight absent */
    model_layer *layers;           /* [n_layer] */
    uint64_t weight_bytes;         /* bytes of all weight tensors */
} model;

/* Feature bits of a model's description: what a backend must implement to
 * run it (the CUDA backend refuses the ones it lacks) and what `show` lists. */
enum {
    MODEL_FEAT_QKV_BIAS = 1u << 0,
    MODEL_FEAT_O_BIAS = 1u << 1,
    MODEL_FEAT_QK_NORM = 1u << 2,
    MODEL_FEAT_POST_NORMS = 1u << 3,
    MODEL_FEAT_NORM_OFFSET = 1u << 4,
    MODEL_FEAT_GELU = 1u << 5,
    MODEL_FEAT_ROPE_NEOX = 1u << 6,
    MODEL_FEAT_ROPE_FACTORS = 1u << 7,
    MODEL_FEAT_LAYER_ROPE = 1u << 8, /* RoPE base or scale differs between layers */
    MODEL_FEAT_SWA = 1u << 9,
    MODEL_FEAT_EMBD_SCALE = 1u << 10,
    MODEL_FEAT_ATTN_SCALE = 1u << 11, /* attention scale other than 1 / sqrt(head_dim) */
    MODEL_FEAT_ATTN_SOFTCAP = 1u << 12,
    MODEL_FEAT_FINAL_SOFTCAP = 1u << 13,
    MODEL_FEAT_WIDE_ATTN = 1u << 14, /* n_head * head_dim != n_embd */
    MODEL_FEAT_ROPE_YARN = 1u << 15,
    MODEL_FEAT_MOE = 1u << 16, /* mixture-of-experts FFN layers */
    MODEL_FEAT_COUNT = 17,
};
uint32_t model_features(const model *m);
/* Short name of one feature bit ("q/k/v biases", "sliding-window attention"). */
const char *model_feature_name(uint32_t bit);
/* One line of the special features with their values, e.g. "sliding window
 * 512 on 5 of 6 layers, soft-cap 50/30"; "none" for a plain llama block. */
void model_describe_features(const model *m, char *buf, size_t size);

/* weight_bytes less the experts a token is not routed to (n_expert -
 * n_expert_used of each expert tensor's slices); = weight_bytes for a dense
 * model. A token reads less of an untied embedding table (one row):
 * `bench` counts that (weight_bytes_per_token), this does not. */
uint64_t model_active_bytes(const model *m);
/* Parameters of all weights, and of those one token uses (the same less
 * the experts it is not routed to). Views count once, through their slots. */
void model_param_counts(const model *m, uint64_t *total, uint64_t *active);

/* Loads and validates; on error returns a status with a message naming the
 * file, the tensor or key, and what was expected. */
int model_load(const char *path, model **out);
/* Builds a model over an already-open GGUF (takes ownership of g on success). */
int model_from_gguf(gguf_file *g, model **out);
void model_free(model *m);

#endif
