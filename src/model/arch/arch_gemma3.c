/* gemma3: the gemma2 block with q/k RMSNorms per head and local/global
 * layers: five of every six layers (attention.sliding_window_pattern, else 6)
 * attend through a sliding window with
 * their own RoPE base (10000, unscaled), the sixth globally with
 * rope.freq_base and the file's scaling. No soft-capping unless the file
 * sets it. Norms are stored as (1 + w) by llama.cpp's converter. */
#include <math.h>

#include "model/arch/arch.h"

static int gemma3_config(const gguf_file *g, model_config *c) {
    int rc;
    c->act = MODEL_ACT_GELU_TANH;
    c->rope_kind = MODEL_ROPE_NEOX;
    c->embd_scale = sqrtf((float)c->n_embd);
    if ((rc = arch_key_float(g, "gemma3", "attn_logit_softcapping", false, &c->attn_softcap)))
        return rc;
    if ((rc = arch_key_float(g, "gemma3", "final_logit_softcapping", false, &c->final_softcap)))
        return rc;
    /* 27B (62 layers) scales by n_embd / n_head, as llama.cpp does */
    if (!gguf_find_kv(g, "gemma3.attention.scale") && c->n_layer == 62)
        c->attn_scale = (float)(1.0 / sqrt((double)c->n_embd / c->n_head));
    return 0;
}

static int gemma3_layer(const gguf_file *g, model *m, int il, model_layer *L) {
    int window = 0, rc;
    if ((rc = arch_key_int(g, "gemma3", "attention.sliding_window", false, &window))) return rc;
    float local_base = 10000.0f;
    if ((rc = arch_key_float(g, "gemma3", "rope.freq_base_swa", false, &local_base))) return rc;
    /* llama.cpp fixes the pattern at 6; a file may state its own */
    int pattern = 6;
    if ((rc = arch_key_int(g, "gemma3", "attention.sliding_window_pattern", false, &pattern)))
        return rc;
    arch_set_swa(&m->cfg, L, il, window, pattern);
    if (L->n_swa) {
        L->rope_base = local_base;
        L->rope_freq_scale = 1.0f;
    }
    return arch_bind_layer(g, &m->cfg, il, ARCH_QK_NORM | ARCH_POST_NORMS, L);
}

static const char *const gemma3_required[] = {"attn_norm.weight",
                                              "attn_q.weight",
                                              "attn_k.weight",
                                              "attn_v.weight",
                                              "attn_q_norm.weight",
                                              "attn_k_norm.weight",
                                              "attn_output.weight",
                                              "ffn_norm.weight",
                                              "post_attention_norm.weight",
                                              "ffn_gate.weight",
                                              "ffn_up.weight",
                                              "ffn_down.weight",
                                              "post_ffw_norm.weight",
                                              NULL};

const arch_def arch_gemma3 = {"gemma3", gemma3_config, gemma3_layer, gemma3_required, true, NULL};
