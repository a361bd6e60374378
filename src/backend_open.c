/* The backend for the cards a user names: parse --gpus, plan the layers,
 * create one CUDA backend or a layer split. */
#include "backend_open.h"

#include <stdio.h>
#include <string.h>

#include "backend_pipe.h"
#include "backend_split.h"
#include "err.h"
#include "gpu_diag.h"
#include "m40llm.h"

int backend_gpus_check(const backend_gpus *g) {
    if (g->split && strcmp(g->split, "layer") && strcmp(g->split, "row"))
        return err_set(M40LLM_ERR_INVALID_ARG, "--split \"%.40s\": expected layer or row",
                       g->split);
    if (g->tensor_split && !g->list)
        return err_set(M40LLM_ERR_INVALID_ARG, "--tensor-split needs --gpus (the cards it shares)");
    return M40LLM_OK;
}

int backend_create_gpus(const model *m, backend_params *p, const backend_gpus *g, backend **out) {
    *out = NULL;
    int rc = backend_gpus_check(g);
    if (rc) return rc;
    if (g->split && !strcmp(g->split, "row"))
        return err_set(M40LLM_ERR_UNSUPPORTED,
                       "--split row (each card a slice of every matrix) is not implemented yet; "
                       "--split layer gives each card a range of layers");
    int n_avail = 0, devs[BACKEND_MAX_GPUS], n = 0;
    if (m40llm_gpu_count(&n_avail)) n_avail = 0;
    err_clear();
    rc = backend_parse_gpus(g->list ? g->list : "0", n_avail, p->dup_gpus, devs, &n);
    if (rc) return rc;
    double share[BACKEND_MAX_GPUS];
    if (g->tensor_split) {
        if ((rc = backend_parse_tensor_split(g->tensor_split, n, share))) return rc;
    }
    if (n == 1) {
        p->device = devs[0];
        return backend_cuda_create(m, p, out);
    }
    if (!g->tensor_split) /* by free memory; a card named twice shares its own */
        for (int i = 0; i < n; i++) {
            m40llm_gpu_info gi;
            int same = 0;
            for (int j = 0; j < n; j++) same += devs[j] == devs[i];
            if ((rc = m40llm_gpu_query(devs[i], &gi))) return err_prefix(rc, "GPU %d", devs[i]);
            share[i] = (double)gi.mem_free / same;
        }
    int begin[BACKEND_MAX_GPUS + 1];
    if ((rc = backend_plan_layers(m->cfg.n_layer, share, n, begin))) return rc;
    backend_stage st[BACKEND_MAX_GPUS];
    for (int i = 0; i < n; i++) st[i] = (backend_stage){devs[i], begin[i], begin[i + 1]};
    return backend_pipe_create(m, p, st, n, out);
}

uint64_t backend_model_gpu_bytes(const model *m, const backend_params *p) {
    const uint64_t pos_bytes = (uint64_t)m->cfg.n_layer * (uint64_t)m->cfg.n_head_kv *
                               (uint64_t)m->cfg.head_dim * 2 *
                               (p->kv_type == BACKEND_KV_F16 ? 2 : 4); /* K + V of a position */
    const uint64_t ctx = (uint64_t)(p->n_ctx > 0 ? p->n_ctx : 0);
    uint64_t kv = ctx * (p->paged || p->n_seq_max < 1 ? 1 : (uint64_t)p->n_seq_max) * pos_bytes;
    if (p->paged && p->kv_bytes) kv = p->kv_bytes; /* a pool of a given size */
    if (p->paged && !p->kv_bytes && p->n_kv_blocks > 0)
        kv = (uint64_t)p->n_kv_blocks * (uint64_t)(p->kv_block > 0 ? p->kv_block : 64) * pos_bytes;
    return m->weight_bytes + kv;
}

/* gpu_diag's line without its "running on the CPU" clause: here the
 * caller decides what runs instead */
static int no_gpu_error(const gpu_diag_result *r) {
    char line[sizeof r->line];
    snprintf(line, sizeof line, "%s", r->line);
    char *cpu = strstr(line, "; running on the CPU");
    if (cpu) memmove(cpu, cpu + 20, strlen(cpu + 20) + 1);
    return err_set(r->why == GPU_DIAG_MEMORY ? M40LLM_ERR_OOM : M40LLM_ERR_NO_DEVICE, "%s", line);
}

int backend_create_default_gpu(const model *m, backend_params *p, backend **out) {
    *out = NULL;
    gpu_diag_facts f;
    gpu_diag_result r;
    gpu_diag_probe(&f);
    /* (the engine refuses a pool of less than one whole context, so a card
     * without room for one is no use to it) */
    gpu_diag_decide(&f, -1, backend_model_gpu_bytes(m, p), &r);
    if (r.n_split > 1) {
        char list[64];
        const backend_gpus g = {gpu_diag_split_list(&r, list, sizeof list), NULL, NULL};
        return backend_create_gpus(m, p, &g, out);
    }
    if (r.device < 0) return no_gpu_error(&r);
    p->device = r.device;
    return backend_cuda_create(m, p, out);
}
