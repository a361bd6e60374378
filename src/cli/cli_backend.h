/* Shared by the commands that run a model (run, perplexity, bench): finding
 * the model file, loading it and creating the backend the user asked for. */
#ifndef M40_CLI_BACKEND_H
#define M40_CLI_BACKEND_H

#include <stddef.h>

#include "backend.h"
#include "backend_open.h"
#include "model.h"

/* The GGUF a MODEL argument names (store_resolve, src/store/store.h): a
 * path, a model of the store, ollama:NAME[:TAG], hf:OWNER/REPO[:QUANT],
 * llama:FILE, or NAME, NAME.gguf or the only *.gguf starting with NAME
 * (case-insensitive) in $M40LLM_MODELS or ~/.cache/m40-llm/models. */
int cli_resolve_model(const char *name, char *path, size_t size);

/* Online CPU cores (at least 1). */
int cli_default_threads(void);

/* device: "cpu", "cuda", "cuda:N" or NULL/"auto" (CUDA if usable, else CPU).
 * An explicit CUDA request that fails falls back to the CPU with a message
 * on stderr. p->device is set from "cuda:N". g (may be NULL) names the
 * cards of a layer split (--gpus): then no CPU fallback, and each card's
 * share (layers, weight bytes, KV blocks) is printed on stderr. */
int cli_create_backend(const model *m, const char *device, const backend_gpus *g, backend_params *p,
                       backend **out);

/* Resolves, loads and creates in one step; prints the error and returns
 * nonzero on failure (the caller exits with it). */
int cli_open(const char *name, const char *device, const backend_gpus *g, backend_params *p,
             model **m, backend **b);

/* Takes --gpus LIST, --split layer|row and --tensor-split LIST for command
 * cmd: 1 when a is one of them (v its value), 0 when it is not, -1 (message
 * printed) when the value is missing or malformed. */
int cli_gpu_option(const char *cmd, const char *a, const char *v, backend_gpus *g);
/* The usage lines of those options (run's column). */
#define CLI_GPU_USAGE                                                                              \
    "  --gpus LIST          several GPUs, \"0,1\" or \"all\": the layers split over them\n"        \
    "  --split layer        how (\"row\" is not implemented yet)\n"                                \
    "  --tensor-split L     each card's share of the layers, e.g. 3,1 (default: free memory)\n"

/* Warns on stderr when n_ctx exceeds the model's trained context. */
void cli_warn_ctx(const model *m, long n_ctx);

/* Validates a --device value; prints an error and returns -1 if malformed. */
int cli_check_device(const char *device);

#endif
