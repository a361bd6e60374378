/* mixtral: Mixtral 8x7B / 8x22B. llama.cpp writes them as general.architecture
 * "llama" with llama.expert_count set, so the llama entry hands such a file
 * to this one (arch_def.moe_variant): the llama block with a
 * mixture-of-experts FFN in every layer, a router over expert_count experts,
 * softmax, the top expert_used_count renormalised to sum to 1 (transformers'
 * MixtralSparseMoeBlock, llama.cpp's llama MoE), each expert a SwiGLU of
 * feed_forward_length; Mistral's sliding window where the file sets one.
 * Files from before llama.cpp merged the experts (blk.N.ffn_gate.E.weight,
 * one tensor per expert) are refused by name. */
#include "model/arch/arch.h"

#include "err.h"

static int mixtral_config(const gguf_file *g, model_config *c) {
    if (gguf_find_tensor(g, "blk.0.ffn_gate.0.weight") ||
        gguf_find_tensor(g, "blk.0.ffn_up.0.weight"))
        return err_set(M40LLM_ERR_UNSUPPORTED,
                       "llama mixture-of-experts file with one tensor per expert "
                       "(blk.0.ffn_gate.0.weight: an old conversion) is not supported; "
                       "convert it again for merged ffn_*_exps tensors");
    int rc = arch_read_experts(g, "llama", c);
    /* Mixtral's router always renormalises its top k (transformers,
     * llama.cpp): a file saying otherwise is not a Mixtral we can run */
    if (!rc && !c->expert_norm)
        rc = err_set(M40LLM_ERR_UNSUPPORTED,
                     "llama.expert_weights_norm false: a llama file with experts (Mixtral) "
                     "always renormalises its experts' weights");
    return rc;
}

static int mixtral_layer(const gguf_file *g, model *m, int il, model_layer *L) {
    int window = 0;
    int rc = arch_key_int(g, "llama", "attention.sliding_window", false, &window);
    if (rc) return rc;
    arch_set_swa(&m->cfg, L, il, window, 1);
    return arch_bind_layer(g, &m->cfg, il, ARCH_MOE, L);
}

static const char *const mixtral_required[] = {"attn_norm.weight",
                                               "attn_q.weight",
                                               "attn_k.weight",
                                               "attn_v.weight",
                                               "attn_output.weight",
                                               "ffn_norm.weight",
                                               "ffn_gate_inp.weight",
                                               "ffn_gate_exps.weight",
                                               "ffn_up_exps.weight",
                                               "ffn_down_exps.weight",
                                               NULL};

const arch_def arch_mixtral = {"llama",          mixtral_config, mixtral_layer,
                               mixtral_required, false,          NULL};
