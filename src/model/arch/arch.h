/* The architecture layer: one file per general.architecture reads its GGUF
 * keys and tensors into the normalized model description of model.h. This
 * header is the registry and the helpers they share (arch.c). Only files of
 * this folder test architecture names. */
#ifndef M40_MODEL_ARCH_H
#define M40_MODEL_ARCH_H

#include "model.h"
#include "model/arch/arch_vocab.h"

typedef struct arch_def {
    const char *name; /* general.architecture */
    /* Reads the architecture's own keys and sets the block's switches; the
     * common keys (arch_read_common) are already in c. */
    int (*config)(const gguf_file *g, model_config *c);
    /* Binds layer il's tensors and sets its per-layer fields (which hold the
     * model-wide defaults on entry). */
    int (*layer)(const gguf_file *g, model *m, int il, model_layer *L);
    /* Per-layer tensor suffixes ("attn_q") every layer must have, checked
     * for presence before any per-layer allocation; NULL-terminated. */
    const char *const *required;
    /* The vocabulary's turn markers are CONTROL tokens, so its USER_DEFINED
     * ones (gemma: HTML tags, whitespace runs) are plain pieces, matched in
     * any text as the reference tokenizers do; elsewhere markup-looking
     * USER_DEFINED tokens may be turn markers (deepseek) and stay guarded. */
    bool plain_user_defined;
    /* The architecture a file of this name is read as when it sets
     * <name>.expert_count > 0 (llama -> mixtral), or NULL. */
    const struct arch_def *moe_variant;
} arch_def;

extern const arch_def arch_llama, arch_qwen2, arch_qwen3, arch_gemma2, arch_gemma3, arch_phi3,
    arch_qwen3moe, arch_mixtral;

/* The architecture of that name, or NULL. */
const arch_def *arch_find(gguf_str name);
/* "llama, qwen2, ..." for error messages. */
const char *arch_names(void);

/* "<arch>.<suffix>" as a positive int (<= 2^30) / a positive finite float.
 * Required keys report their absence; optional ones leave *out unchanged. */
int arch_key_int(const gguf_file *g, const char *arch, const char *suffix, bool required, int *out);
int arch_key_float(const gguf_file *g, const char *arch, const char *suffix, bool required,
                   float *out);
/* <arch>.expert_count as stored: 0 when absent; a non-integer or negative
 * value is an error. */
int arch_expert_count(const gguf_file *g, const char *arch, int64_t *out);
/* The mixture-of-experts keys: expert_count, expert_used_count (1..count),
 * expert_feed_forward_length (else n_ff), expert_weights_norm (else true),
 * expert_gating_func (softmax only); shared experts are refused. */
int arch_read_experts(const gguf_file *g, const char *arch, model_config *c);

/* The keys every architecture has: sizes, heads, head size, RoPE, eps and
 * linear RoPE scaling; the switches get the llama defaults. */
int arch_read_common(const gguf_file *g, const char *arch, model_config *c);
/* LongRoPE's keys (rope.scaling.original_context_length, required;
 * attn_factor, else transformers' default); sets MODEL_ROPE_SCALING_LONGROPE.
 * For files whose factor tensors come without rope.scaling.type. */
int arch_read_longrope(const gguf_file *g, const char *arch, model_config *c);

/* Finds a tensor and checks its type is computable and its shape is exactly
 * {ne0} (ne1 == 0) or {ne0, ne1}. arch_bind_opt: absence is not an error
 * (t stays all zero). */
int arch_bind(const gguf_file *g, const char *name, int64_t ne0, int64_t ne1, model_tensor *t);
int arch_bind_opt(const gguf_file *g, const char *name, int64_t ne0, int64_t ne1, model_tensor *t);
/* An expert tensor: shape exactly {ne0, ne1, n_expert}. */
int arch_bind_experts(const gguf_file *g, const char *name, int64_t ne0, int64_t ne1,
                      int64_t n_expert, model_tensor *t);
/* Rows [row0, row0 + rows) of a bound matrix as a tensor of its own
 * (fused weights); the name is the parent's with "[tag]" appended. */
int arch_view(const model_tensor *parent, int64_t row0, int64_t rows, const char *tag,
              model_tensor *view);

/* What a layer has beyond the nine llama weights. */
enum {
    ARCH_QKV_BIAS = 1 << 0,      /* attn_q/k/v.bias required */
    ARCH_QK_NORM = 1 << 1,       /* attn_q_norm, attn_k_norm required */
    ARCH_POST_NORMS = 1 << 2,    /* post_attention_norm, post_ffw_norm required */
    ARCH_FUSED_QKV = 1 << 3,     /* attn_qkv instead of attn_q/k/v (split into views) */
    ARCH_FUSED_GATE_UP = 1 << 4, /* ffn_up holds gate then up, no ffn_gate (views) */
    ARCH_MOE = 1 << 5 /* ffn_gate_inp and ffn_gate/up/down_exps instead of the dense FFN */
};
/* Binds a layer's weights named as llama.cpp names them; optional biases
 * (attn_q/k/v/output.bias) are bound wherever present. */
int arch_bind_layer(const gguf_file *g, const model_config *c, int il, unsigned flags,
                    model_layer *L);

/* Layer il uses the sliding window when il % pattern < pattern - 1
 * (gemma2: 2, every other layer; gemma3: 6, five of six); pattern 1: all. */
void arch_set_swa(model_config *c, model_layer *L, int il, int window, int pattern);

#endif
