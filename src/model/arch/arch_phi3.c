/* phi3: Phi-3, Phi-3.5, Phi-4-mini. Fused QKV (attn_qkv) and gate|up
 * (ffn_up, gate first) tensors, split into views; NeoX RoPE over
 * rope.dimension_count dims; a sliding window on every layer where the file
 * sets one. LongRoPE (Phi-3.5, Phi-4-mini: rope_factors_long/short) with
 * the factor set chosen by the context asked for (model_rope_factors). */
#include "model/arch/arch.h"

#include "err.h"

static int phi3_config(const gguf_file *g, model_config *c) {
    c->rope_kind = MODEL_ROPE_NEOX;
    /* LongRoPE factor tensors in a file that does not name the scaling */
    if (c->rope_scaling != MODEL_ROPE_SCALING_LONGROPE &&
        (gguf_find_tensor(g, "rope_factors_long.weight") ||
         gguf_find_tensor(g, "rope_factors_short.weight")))
        return arch_read_longrope(g, "phi3", c);
    return 0;
}

static int phi3_layer(const gguf_file *g, model *m, int il, model_layer *L) {
    int window = 0;
    int rc = arch_key_int(g, "phi3", "attention.sliding_window", false, &window);
    if (rc) return rc;
    arch_set_swa(&m->cfg, L, il, window, 1);
    return arch_bind_layer(g, &m->cfg, il, ARCH_FUSED_QKV | ARCH_FUSED_GATE_UP, L);
}

static const char *const phi3_required[] = {"attn_norm.weight",
                                            "attn_qkv.weight",
                                            "attn_output.weight",
                                            "ffn_norm.weight",
                                            "ffn_up.weight",
                                            "ffn_down.weight",
                                            NULL};

const arch_def arch_phi3 = {"phi3", phi3_config, phi3_layer, phi3_required, false, NULL};
