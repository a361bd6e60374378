/* A `llama`-architecture model (Llama 2/3, Mistral, TinyLlama, SmolLM2):
 * hyperparameters from GGUF metadata and the weight tensors, validated.
 * Weights stay in their stored type inside the mmapped GGUF file. */
#ifndef M40_MODEL_H
#define M40_MODEL_H

#include <stdbool.h>
#include <stdint.h>

#include "gguf.h"

typedef struct model_config {
    char arch[32];         /* general.architecture ("llama") */
    char name[128];        /* general.name, may be empty */
    int n_layer;           /* llama.block_count */
    int n_embd;            /* llama.embedding_length */
    int n_ff;              /* llama.feed_forward_length */
    int n_head;            /* llama.attention.head_count */
    int n_head_kv;         /* llama.attention.head_count_kv (GQA); = n_head if absent */
    int head_dim;          /* n_embd / n_head */
    int n_rot;             /* llama.rope.dimension_count; = head_dim if absent */
    int n_vocab;           /* rows of token_embd */
    int n_ctx_train;       /* llama.context_length */
    float rope_freq_base;  /* llama.rope.freq_base; 10000 if absent */
    float rope_freq_scale; /* 1 / llama.rope.scaling.factor for linear scaling, else 1 */
    float rms_eps;         /* llama.attention.layer_norm_rms_epsilon */
} model_config;

/* One weight as stored. ne[0] is the input (contiguous) dimension:
 * a matrix with ne = {n_in, n_out} computes y[o] = sum_i W[o][i] x[i]. */
typedef struct model_tensor {
    const char *name; /* NUL-terminated copy owned by the model */
    int type;         /* quant_type */
    int64_t ne[4];
    const void *data; /* into the mapping */
    size_t nbytes;
    size_t row_bytes; /* bytes of one ne[0] row */
} model_tensor;

typedef struct model_layer {
    model_tensor attn_norm; /* [n_embd] F32 */
    model_tensor wq;        /* [n_embd] -> [n_head * head_dim] */
    model_tensor wk;        /* [n_embd] -> [n_head_kv * head_dim] */
    model_tensor wv;        /* [n_embd] -> [n_head_kv * head_dim] */
    model_tensor wo;        /* [n_head * head_dim] -> [n_embd] */
    model_tensor ffn_norm;  /* [n_embd] F32 */
    model_tensor w_gate;    /* [n_embd] -> [n_ff] */
    model_tensor w_up;      /* [n_embd] -> [n_ff] */
    model_tensor w_down;    /* [n_ff] -> [n_embd] */
} model_layer;

typedef struct model {
    model_config cfg;
    gguf_file *gguf;          /* owns the mapping */
    model_tensor tok_embd;    /* [n_embd] x n_vocab rows */
    model_tensor output_norm; /* [n_embd] F32 */
    model_tensor output;      /* [n_embd] -> [n_vocab]; = tok_embd when tied */
    bool tied_output;         /* output.weight absent */
    model_layer *layers;      /* [n_layer] */
    uint64_t weight_bytes;    /* bytes of all weight tensors */
} model;

/* Loads and validates; on error returns a status with a message naming the
 * file, the tensor or key, and what was expected. */
int model_load(const char *path, model **out);
/* Builds a model over an already-open GGUF (takes ownership of g on success). */
int model_from_gguf(gguf_file *g, model **out);
void model_free(model *m);

#endif
