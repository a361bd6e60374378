/* The backend for the cards a user names (--gpus, --split, --tensor-split):
 * one card, or a layer split over several (backend_pipe.c). */
#ifndef M40_BACKEND_OPEN_H
#define M40_BACKEND_OPEN_H

#include "backend.h"

typedef struct backend_gpus {
    const char *list;         /* --gpus: "0,1" or "all" (backend_parse_gpus); NULL: one card */
    const char *split;        /* --split: "layer" (NULL) or "row" */
    const char *tensor_split; /* --tensor-split "3,1": each card's share; NULL: by free memory */
} backend_gpus;

/* Checks the option values without looking at the machine: --split is
 * layer or row, --tensor-split only with --gpus (M40LLM_ERR_INVALID_ARG,
 * naming the value). */
int backend_gpus_check(const backend_gpus *g);
/* A CUDA backend on the one card of g->list (p->device set), or a layer
 * split over its cards: each card a contiguous range of layers in
 * proportion to --tensor-split or its free memory (a card named twice
 * shares it), its KV share likewise (backend_pipe_create). A card named
 * twice needs p->dup_gpus (tests). --split row is
 * M40LLM_ERR_UNSUPPORTED. Errors name the card, everything freed. */
int backend_create_gpus(const model *m, backend_params *p, const backend_gpus *g, backend **out);

/* Device bytes a model needs at least: its weights and the KV cache of
 * n_seq_max sequences of n_ctx positions; in paged mode one sequence, or
 * the pool's given size (kv_bytes, n_kv_blocks). What gpu_diag_decide
 * weighs a card's free memory against. */
uint64_t backend_model_gpu_bytes(const model *m, const backend_params *p);

/* The backend of "auto" or "cuda" with no --gpus, without messages (the
 * engine): the first card with room for the model (paged: a whole
 * context), a layer split over the usable cards when only together they
 * have room (gpu_diag_decide), else M40LLM_ERR_NO_DEVICE or M40LLM_ERR_OOM
 * saying why. */
int backend_create_default_gpu(const model *m, backend_params *p, backend **out);

#endif
