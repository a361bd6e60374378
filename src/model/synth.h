/* Synthetic GGUF models: random weights of any shape and weight type (plus
 * llama.cpp-style K-quant mixes), with a SentencePiece-style vocabulary so
 * other engines load the files too; a dense llama, or a mixture of experts
 * (a Mixtral-style llama file, or qwen3moe). Used by tests and speed runs.
 *
 * Weights are generated and quantized tensor by tensor while the file is
 * written (no whole model in memory), in parallel over rows; each row has its
 * own RNG stream (seed, tensor name, row), so the file is identical for any
 * thread count. */
#ifndef M40_SYNTH_H
#define M40_SYNTH_H

#include <stdbool.h>
#include <stdint.h>

typedef struct synth_config {
    const char *arch;  /* "llama" (dense), "mixtral" (a llama file with experts), "qwen3moe" */
    int n_layer;       /* <arch>.block_count */
    int n_embd;        /* <arch>.embedding_length */
    int n_head;        /* <arch>.attention.head_count */
    int n_head_kv;     /* <arch>.attention.head_count_kv (GQA) */
    int head_dim;      /* <arch>.attention.key_length; 0: n_embd / n_head */
    int n_ff;          /* <arch>.feed_forward_length (mixtral: each expert's width) */
    int n_expert;      /* <arch>.expert_count (mixtral, qwen3moe); 0 for llama */
    int n_expert_used; /* <arch>.expert_used_count: experts per token */
    int n_ff_exp;      /* qwen3moe: expert_feed_forward_length; 0: n_ff */
    int n_vocab;       /* llama.vocab_size, >= 260 (3 control + 256 byte tokens + pieces) */
    int n_ctx;         /* llama.context_length */
    float rope_base;   /* llama.rope.freq_base */
    float rms_eps;     /* llama.attention.layer_norm_rms_epsilon */
    float std;         /* weights ~ N(0, std^2) (approximately: 4-term Irwin-Hall) */
    const char *type;  /* recipe: f32 f16 bf16 q8_0 q4_0 q4_1 q5_0 q5_1 q2_k q3_k q4_k q5_k
                          q6_k (all 2D weights of that type) or q4_k_m q5_k_m (llama.cpp mixes) */
    bool tied;         /* no output.weight: logits use token_embd.weight */
    uint64_t seed;
    int n_threads;    /* <= 0: online CPUs */
    const char *name; /* general.name; NULL: "synth-llama-L..-E..-..-TYPE" */
    /* called after each tensor is written (may be NULL) */
    void (*progress)(void *ctx, int index, int count, const char *tensor, int type,
                     uint64_t bytes_done, uint64_t bytes_total);
    void *progress_ctx;
} synth_config;

/* The shape of tests/fixtures/reference: llama, 2 layers, 256 embd, 8 heads,
 * 4 KV heads, 512 ff, 512 vocab, ctx 2048, rope base 10000, eps 1e-5, std
 * 0.02, f32. */
void synth_default_config(synth_config *c);
/* Sets the architecture and shape fields of a named preset: "mistral-7b"
 * (Mistral-7B v0.2 shape), "smollm2-135m" (tied), "tiny" (the default
 * shape), "mixtral-8x7b", "qwen3-30b-a3b" (48 layers, 2048 embd, 32 heads of
 * 128, 4 KV heads, 128 experts of 768, 8 per token, 151936 vocab). Other
 * fields are left as they are. M40LLM_ERR_NOT_FOUND for an unknown name. */
int synth_preset(const char *name, synth_config *c);

/* Checks the configuration (shape divisibility, recipe name). */
int synth_validate(const synth_config *c);
/* ggml type of a weight under the config's recipe. kind is the tensor name
 * without "blk.N." ("attn_v.weight", "token_embd.weight", ...), layer is N
 * (-1 for non-layer tensors), ne0 the row length. The MoE router
 * (ffn_gate_inp) stays F32, as llama.cpp keeps it; ffn_down_exps follows
 * ffn_down's rule in the _M mixes. */
int synth_tensor_type(const synth_config *c, const char *kind, int layer, int64_t ne0,
                      int *out_type);
/* general.file_type (llama_ftype) of the recipe, -1 if unknown. */
int synth_file_type(const char *recipe);

/* Writes the model to path; *out_bytes (may be NULL) gets the file size. */
int synth_write(const synth_config *c, const char *path, uint64_t *out_bytes);

#endif
