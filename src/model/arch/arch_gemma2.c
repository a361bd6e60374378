/* gemma2: GeGLU (tanh GELU), embeddings scaled by sqrt(n_embd), NeoX RoPE,
 * norms after the attention and the FFN as well as before, attention and
 * final logit soft-capping, a sliding window on every other layer (even
 * layers). llama.cpp's converter stores the norms as (1 + w) already, so the
 * norm is a plain RMSNorm here. */
#include <math.h>

#include "model/arch/arch.h"

static int gemma2_config(const gguf_file *g, model_config *c) {
    int rc;
    c->act = MODEL_ACT_GELU_TANH;
    c->rope_kind = MODEL_ROPE_NEOX;
    c->embd_scale = sqrtf((float)c->n_embd);
    if ((rc = arch_key_float(g, "gemma2", "attn_logit_softcapping", false, &c->attn_softcap)))
        return rc;
    if ((rc = arch_key_float(g, "gemma2", "final_logit_softcapping", false, &c->final_softcap)))
        return rc;
    /* query_pre_attn_scalar is not in the file: 27B (46 layers) scales by
     * n_embd / n_head, the others by the head size, as llama.cpp does */
    if (!gguf_find_kv(g, "gemma2.attention.scale") && c->n_layer == 46)
        c->attn_scale = (float)(1.0 / sqrt((double)c->n_embd / c->n_head));
    return 0;
}

static int gemma2_layer(const gguf_file *g, model *m, int il, model_layer *L) {
    int window = 0;
    int rc = arch_key_int(g, "gemma2", "attention.sliding_window", false, &window);
    if (rc) return rc;
    arch_set_swa(&m->cfg, L, il, window, 2);
    return arch_bind_layer(g, &m->cfg, il, ARCH_POST_NORMS, L);
}

static const char *const gemma2_required[] = {"attn_norm.weight",
                                              "attn_q.weight",
                                              "attn_k.weight",
                                              "attn_v.weight",
                                              "attn_output.weight",
                                              "ffn_norm.weight",
                                              "post_attention_norm.weight",
                                              "ffn_gate.weight",
                                              "ffn_up.weight",
                                              "ffn_down.weight",
                                              "post_ffw_norm.weight",
                                              NULL};

const arch_def arch_gemma2 = {"gemma2", gemma2_config, gemma2_layer, gemma2_required, true, NULL};
