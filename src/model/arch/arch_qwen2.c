/* qwen2: Qwen2, Qwen2.5, DeepSeek-R1-Distill-Qwen. The llama block with
 * biases on Q, K and V and NeoX (split-halves) RoPE. */
#include "model/arch/arch.h"

static int qwen2_config(const gguf_file *g, model_config *c) {
    (void)g;
    c->rope_kind = MODEL_ROPE_NEOX;
    return 0;
}

static int qwen2_layer(const gguf_file *g, model *m, int il, model_layer *L) {
    return arch_bind_layer(g, &m->cfg, il, ARCH_QKV_BIAS, L);
}

static const char *const qwen2_required[] = {"attn_norm.weight",
                                             "attn_q.weight",
                                             "attn_k.weight",
                                             "attn_v.weight",
                                             "attn_q.bias",
                                             "attn_k.bias",
                                             "attn_v.bias",
                                             "attn_output.weight",
                                             "ffn_norm.weight",
                                             "ffn_gate.weight",
                                             "ffn_up.weight",
                                             "ffn_down.weight",
                                             NULL};

const arch_def arch_qwen2 = {"qwen2", qwen2_config, qwen2_layer, qwen2_required, false, NULL};
