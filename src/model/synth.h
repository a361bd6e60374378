/* Synthetic `llama` GGUF models: random weights of any shape and weight type
 * (plus llama.cpp-style K-quant mixes), with a SentencePiece-style vocabulary
 * so other engines load the files too. Used by tests and speed runs.
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
    int n_layer;      /* llama.block_count */
    int n_embd;       /* llama.embedding_length */
    int n_head;       /* llama.attention.head_count */
    int n_head_kv;    /* llama.attention.head_count_kv (GQA) */
    int n_ff;         /* llama.feed_forward_length */
    int n_vocab;      /* llama.vocab_size, >= 260 (3 control + 256 byte tokens + pieces) */
    int n_ctx;        /* llama.context_length */
    float rope_base;  /* llama.rope.freq_base */
    float rms_eps;    /* llama.attention.layer_norm_rms_epsilon */
    float std;        /* weights ~ N(0, std^2) (approximately: 4-term Irwin-Hall) */
    const char *type; /* recipe: f32 f16 bf16 q8_0 q4_0 q4_1 q5_0 q5_1 q2_k q3_k q4_k q5_k
                         q6_k (all 2D weights of that type) or q4_k_m q5_k_m (llama.cpp mixes) */
    bool tied;        /* no output.weight: logits use token_embd.weight */
    uint64_t seed;
    int n_threads;    /* <= 0: online CPUs */
    const char *name; /* general.name; NULL: "synth-llama-L..-E..-..-TYPE" */
    /* called after each tensor is written (may be NULL) */
    void (*progress)(void *ctx, int index, int count, const char *tensor, int type,
                     uint64_t bytes_done, uint64_t bytes_total);
    void *progress_ctx;
} synth_config;

/* The shape of tests/fixtures/reference: 2 layers, 256 embd, 8 heads, 4 KV
 * heads, 512 ff, 512 vocab, ctx 2048, rope base 10000, eps 1e-5, std 0.02, f32. */
void synth_default_config(synth_config *c);
/* Sets the shape fields of a named preset: "mistral-7b" (Mistral-7B v0.2
 * shape), "smollm2-135m" (tied), "tiny" (the default shape). Other fields
 * are left as they are. M40LLM_ERR_NOT_FOUND for an unknown name. */
int synth_preset(const char *name, synth_config *c);

/* Checks the configuration (shape divisibility, recipe name). */
int synth_validate(const synth_config *c);
/* ggml type of a 2D weight under the config's recipe. kind is the tensor
 * name without "blk.N." ("attn_v.weight", "token_embd.weight", ...), layer
 * is N (-1 for non-layer tensors), ne0 the row length. */
int synth_tensor_type(const synth_config *c, const char *kind, int layer, int64_t ne0,
                      int *out_type);
/* general.file_type (llama_ftype) of the recipe, -1 if unknown. */
int synth_file_type(const char *recipe);

/* Writes the model to path; *out_bytes (may be NULL) gets the file size. */
int synth_write(const synth_config *c, const char *path, uint64_t *out_bytes);

#endif
