/* qwen3: the llama block with an RMSNorm over each query and key head
 * before RoPE (attn_q_norm / attn_k_norm), NeoX RoPE, a head size of its
 * own (attention.key_length), no biases. */
#include "model/arch/arch.h"

static int qwen3_config(const gguf_file *g, model_config *c) {
    (void)g;
    c->rope_kind = MODEL_ROPE_NEOX;
    return 0;
}

static int qwen3_layer(const gguf_file *g, model *m, int il, model_layer *L) {
    return arch_bind_layer(g, &m->cfg, il, ARCH_QK_NORM, L);
}

static const char *const qwen3_required[] = {
    "attn_norm.weight",   "attn_q.weight",      "attn_k.weight",      "attn_v.weight",
    "attn_q_norm.weight", "attn_k_norm.weight", "attn_output.weight", "ffn_norm.weight",
    "ffn_gate.weight",    "ffn_up.weight",      "ffn_down.weight",    NULL};

const arch_def arch_qwen3 = {"qwen3", qwen3_config, qwen3_layer, qwen3_required, false, NULL};
