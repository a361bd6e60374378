/* llama: Llama 2/3/3.x, Mistral, TinyLlama, SmolLM2. The reference block:
 * RMSNorm, adjacent-pair RoPE, SwiGLU; llama3 frequency factors arrive as
 * the rope_freqs tensor (model.c); Mistral's sliding window where the file
 * sets llama.attention.sliding_window (every layer). */
#include "model/arch/arch.h"

static int llama_config(const gguf_file *g, model_config *c) {
    (void)g;
    (void)c;
    return 0; /* the common keys and the default switches are the llama block */
}

static int llama_layer(const gguf_file *g, model *m, int il, model_layer *L) {
    int window = 0;
    int rc = arch_key_int(g, "llama", "attention.sliding_window", false, &window);
    if (rc) return rc;
    arch_set_swa(&m->cfg, L, il, window, 1);
    return arch_bind_layer(g, &m->cfg, il, 0, L);
}

static const char *const llama_required[] = {
    "attn_norm.weight", "attn_q.weight",   "attn_k.weight", "attn_v.weight",   "attn_output.weight",
    "ffn_norm.weight",  "ffn_gate.weight", "ffn_up.weight", "ffn_down.weight", NULL};

const arch_def arch_llama = {"llama",        llama_config, llama_layer,
                             llama_required, false,        &arch_mixtral};
