/* Model lookup and backend creation for the commands that run a model. */
#include "cli_backend.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cli.h"
#include "err.h"
#include "backend_pipe.h"
#include "backend_split.h"
#include "gpu_diag.h"
#include "m40llm.h"
#include "store/store.h"

int cli_resolve_model(const char *name, char *path, size_t size) {
    store_model *m = calloc(1, sizeof *m); /* large (split parts) */
    if (!m) return err_set(M40LLM_ERR_OOM, "out of memory");
    int rc = store_resolve(name, m);
    if (rc == M40LLM_OK) rc = store_check_single_file(m);
    /* a shortened path would name another file */
    if (rc == M40LLM_OK && (size_t)snprintf(path, size, "%s", m->path) >= size)
        rc = err_set(M40LLM_ERR_INVALID_ARG, "model path is longer than %zu bytes: %.60s...",
                     size - 1, m->path);
    free(m);
    return rc;
}

int cli_default_threads(void) {
    long n = sysconf(_SC_NPROCESSORS_ONLN);
    return n < 1 ? 1 : n > 256 ? 256 : (int)n;
}

int cli_check_device(const char *device) {
    if (!device || !strcmp(device, "auto") || !strcmp(device, "cpu") || !strcmp(device, "cuda"))
        return 0;
    if (!strncmp(device, "cuda:", 5) && cli_parse_long("--device", device + 5, 0, 64) >= 0)
        return 0;
    fprintf(stderr, "m40-llm: --device: '%s' is not cpu, cuda or cuda:N\n", device);
    return -1;
}

int cli_gpu_option(const char *cmd, const char *a, const char *v, backend_gpus *g) {
    const char **slot = !strcmp(a, "--gpus")           ? &g->list
                        : !strcmp(a, "--split")        ? &g->split
                        : !strcmp(a, "--tensor-split") ? &g->tensor_split
                                                       : NULL;
    if (!slot) return 0;
    if (!v || !*v) {
        fprintf(stderr, "m40-llm %s: %s needs a value\n", cmd, a);
        return -1;
    }
    *slot = v;
    const backend_gpus only = {slot == &g->list ? v : "0", slot == &g->split ? v : NULL, NULL};
    if (backend_gpus_check(&only)) {
        fprintf(stderr, "m40-llm %s: %s\n", cmd, m40llm_last_error());
        return -1;
    }
    return 1;
}

/* each card's share of a split: layers, weight bytes, KV blocks */
static void print_shares(const model *m, const backend *b) {
    const backend *st[BACKEND_PIPE_MAX_STAGES];
    const int n = backend_pipe_stages(b, st);
    for (int i = 0; i < n; i++) {
        const backend_params *sp = &st[i]->params;
        fprintf(stderr,
                "m40-llm: GPU %d: layers %d..%d of %d, %.2f GB of weights, %d KV blocks of %d "
                "positions\n",
                sp->device, sp->layer_begin, sp->layer_end - 1, m->cfg.n_layer,
                backend_stage_weight_bytes(m, sp->layer_begin, sp->layer_end) / 1e9,
                sp->n_kv_blocks, sp->kv_block);
    }
}

int cli_create_backend(const model *m, const char *device, const backend_gpus *g, backend_params *p,
                       backend **out) {
    *out = NULL;
    p->gemm_cache = BACKEND_GEMM_CACHE_AUTO;
    backend_params_env(p);                               /* the developer switches (backend.h) */
    if (g && (g->list || g->split || g->tensor_split)) { /* named cards: no CPU fallback */
        if (device && strcmp(device, "auto") && strncmp(device, "cuda", 4))
            return err_set(M40LLM_ERR_INVALID_ARG, "--device %s with --gpus: the cards are GPUs",
                           device);
        backend_gpus gd = *g; /* --split/--tensor-split alone: the card of --device */
        if (!gd.list && device && !strncmp(device, "cuda:", 5)) gd.list = device + 5;
        int rc = backend_create_gpus(m, p, &gd, out);
        if (!rc) print_shares(m, *out);
        return rc;
    }
    bool want_cpu = device && !strcmp(device, "cpu");
    bool explicit_cuda = device && !strncmp(device, "cuda", 4);
    if (!want_cpu) {
        /* every GPU and the one used, or why none: never a silent CPU run */
        int want = explicit_cuda && device[4] == ':' ? atoi(device + 5) : -1;
        gpu_diag_facts f;
        gpu_diag_result r;
        gpu_diag_probe(&f);
        gpu_diag_decide(&f, want, backend_model_gpu_bytes(m, p), &r);
        gpu_diag_print(stderr, "m40-llm: ", &f, &r, false);
        if (r.device >= 0) { /* one card, or a split when no one card holds it */
            char list[64];
            const bool split = r.n_split > 1;
            int rc;
            if (split) { /* the default of --gpus */
                const backend_gpus gd = {gpu_diag_split_list(&r, list, sizeof list), NULL, NULL};
                rc = backend_create_gpus(m, p, &gd, out);
            } else {
                snprintf(list, sizeof list, "%d", r.device);
                p->device = r.device;
                rc = backend_cuda_create(m, p, out);
            }
            if (rc == M40LLM_OK) {
                if (split) print_shares(m, *out);
                if (backend_cuda_note()[0])
                    fprintf(stderr, "m40-llm: note: %s\n", backend_cuda_note());
                return rc;
            }
            /* what the GPUs cannot run (a model the GPU block cannot run yet)
             * or hold, the CPU runs, unless a GPU was asked for by name */
            if (rc == M40LLM_ERR_UNSUPPORTED ? explicit_cuda
                                             : rc != M40LLM_ERR_NO_DEVICE && rc != M40LLM_ERR_OOM)
                return rc;
            fprintf(stderr, "m40-llm: GPU%s %s: %s; running on the CPU\n", split ? "s" : "", list,
                    m40llm_last_error());
        }
    }
    return backend_cpu_create(m, p, out);
}

void cli_warn_ctx(const model *m, long n_ctx) {
    if (m->cfg.n_ctx_train > 0 && n_ctx > m->cfg.n_ctx_train)
        fprintf(stderr,
                "m40-llm: warning: a context of %ld tokens is beyond the %d the model was trained "
                "on; expect worse output past %d\n",
                n_ctx, m->cfg.n_ctx_train, m->cfg.n_ctx_train);
}

int cli_open(const char *name, const char *device, const backend_gpus *g, backend_params *p,
             model **m, backend **b) {
    char path[1024];
    *m = NULL;
    *b = NULL;
    int rc = cli_resolve_model(name, path, sizeof path);
    if (rc) return cli_fail("model", rc);
    rc = model_load(path, m);
    if (rc) return cli_fail("loading model", rc);
    rc = cli_create_backend(*m, device, g, p, b);
    if (rc) {
        model_free(*m);
        *m = NULL;
        return cli_fail("creating backend", rc);
    }
    return 0;
}
