/* qwen3moe: Qwen3-30B-A3B, Qwen3-235B-A22B. The qwen3 attention (q/k
 * norms, NeoX RoPE, a head size of its own) with a mixture-of-experts FFN in
 * every layer: a router (ffn_gate_inp) over expert_count experts, softmax,
 * the top expert_used_count, their weights renormalised (llama.cpp's
 * qwen3moe always does; a file may say otherwise with expert_weights_norm),
 * each expert a SwiGLU of expert_feed_forward_length; no shared expert. */
#include "model/arch/arch.h"

#include "err.h"

static int qwen3moe_config(const gguf_file *g, model_config *c) {
    c->rope_kind = MODEL_ROPE_NEOX;
    /* qwen2moe-style shared experts would be ignored silently: refused */
    if (gguf_find_tensor(g, "blk.0.ffn_up_shexp.weight") ||
        gguf_find_tensor(g, "blk.0.ffn_gate_inp_shexp.weight"))
        return err_set(M40LLM_ERR_UNSUPPORTED,
                       "qwen3moe with a shared expert (blk.0.ffn_*_shexp) is not supported");
    return arch_read_experts(g, "qwen3moe", c);
}

static int qwen3moe_layer(const gguf_file *g, model *m, int il, model_layer *L) {
    return arch_bind_layer(g, &m->cfg, il, ARCH_QK_NORM | ARCH_MOE, L);
}

static const char *const qwen3moe_required[] = {"attn_norm.weight",
                                                "attn_q.weight",
                                                "attn_k.weight",
                                                "attn_v.weight",
                                                "attn_q_norm.weight",
                                                "attn_k_norm.weight",
                                                "attn_output.weight",
                                                "ffn_norm.weight",
                                                "ffn_gate_inp.weight",
                                                "ffn_gate_exps.weight",
                                                "ffn_up_exps.weight",
                                                "ffn_down_exps.weight",
                                                NULL};

const arch_def arch_qwen3moe = {"qwen3moe",        qwen3moe_config, qwen3moe_layer,
                                qwen3moe_required, false,           NULL};
