/* The layer split on one GPU (issue 23, acceptance 1): the model over two
 * CUDA stages on device 0 ("--gpus 0,0": two contexts on the same card,
 * the stream passing through host memory between them) gives logits
 * bit-identical to the unsplit CUDA backend, for the calls of pipe_script.h
 * (decode steps as CUDA graphs, GEMM prompt chunks, mixed and rewinding
 * batches, greedy ids), fixed and paged, on dense, tied, post-norm, fused
 * and mixture-of-experts fixtures; and a split whose KV pool cannot fit is
 * refused naming the stage and card. */
#include <string.h>

#include "backend.h"
#include "backend_open.h"
#include "backend_pipe.h"
#include "gpu_test.h"
#include "model.h"
#include "pipe_script.h"

static backend_params gparams(bool paged) {
    backend_params p = {
        .n_ctx = CTX,
        .n_seq_max = NSEQ,
        .n_batch_max = NB,
        .n_threads = 1,
        .kv_type = BACKEND_KV_F16,
        .paged = paged,
    };
    if (paged) p.kv_block = 16;
    return p;
}

static void same_as_unsplit(const char *rel) {
    char path[1024];
    check_fixture(rel, path, sizeof path);
    model *m = NULL;
    if (model_load(path, &m)) {
        CHECKF(0, "%s: %s", path, m40llm_last_error());
        return;
    }
    const int V = m->cfg.n_vocab, L = m->cfg.n_layer;
    float *ref = malloc(sizeof(float) * 16 * V);
    int32_t rid[NSEQ];
    for (int paged = 0; paged < 2; paged++) {
        backend_params p = gparams(paged);
        backend *one = NULL;
        if (backend_cuda_create(m, &p, &one)) {
            CHECKF(0, "%s: %s", rel, m40llm_last_error());
            continue;
        }
        const int rows = script(one, V, ref, rid);
        /* two halves, then a stage per layer (middle stages: stream in and
         * out, no embedding, no head) */
        for (int ns = 2;; ns = L) {
            backend_stage st[BACKEND_PIPE_MAX_STAGES];
            script_stages(L, ns, 0, st);
            backend *b = NULL;
            CHECKF(backend_pipe_create(m, &p, st, ns, &b) == M40LLM_OK, "%s split: %s", rel,
                   m40llm_last_error());
            if (b) {
                char what[160];
                snprintf(what, sizeof what, "%s, %d stages on GPU 0%s", rel, ns,
                         paged ? ", paged" : "");
                script_check(b, one, V, ref, rid, rows, what);
                CHECK(b->params.n_kv_blocks > 0 && (!paged || b->params.kv_block == 16));
                backend_destroy(b);
            }
            if (ns >= L) break;
        }
        backend_destroy(one);
    }
    printf("  %-28s %d layers: 2 and %d stages = unsplit\n", rel, L, L);
    free(ref);
    model_free(m);
}

/* --gpus 0,0 as the engine asks: a paged pool of 0.9 of the free memory,
 * sized once for both stages on the card */
static void through_gpus_option(void) {
    char path[1024];
    check_fixture("reference/synth-q8_0.gguf", path, sizeof path);
    model *m = NULL;
    if (model_load(path, &m)) return;
    backend_params p = gparams(true);
    p.kv_fraction = 0.9;
    p.kv_block = 0;
    p.dup_gpus = true;
    const backend_gpus g = {"0,0", "layer", NULL};
    backend *b = NULL;
    int rc = backend_create_gpus(m, &p, &g, &b);
    CHECKF(rc == M40LLM_OK, "--gpus 0,0: %s", m40llm_last_error());
    const backend *st[2];
    CHECK(b && backend_pipe_stages(b, st) == 2 &&
          st[0]->params.n_kv_blocks == st[1]->params.n_kv_blocks && b->params.n_kv_blocks > 0);
    backend_destroy(b);
    p.dup_gpus = false; /* a card named twice outside the tests */
    CHECK(backend_create_gpus(m, &p, &g, &b) == M40LLM_ERR_INVALID_ARG && !b);
    model_free(m);
}

/* a KV pool far beyond the card: refused, naming the stage */
static void too_big(void) {
    char path[1024];
    check_fixture("reference/synth-q8_0.gguf", path, sizeof path);
    model *m = NULL;
    if (model_load(path, &m)) return;
    backend_params p = gparams(true);
    p.n_kv_blocks = 1 << 30;
    const backend_stage st[2] = {{0, 0, 1}, {0, 1, m->cfg.n_layer}};
    backend *b = NULL;
    int rc = backend_pipe_create(m, &p, st, 2, &b);
    CHECKF(rc != M40LLM_OK && !b && strstr(m40llm_last_error(), "stage 1 of 2") &&
               strstr(m40llm_last_error(), "GPU 0"),
           "oversized split refused: %d %s", rc, m40llm_last_error());
    model_free(m);
}

int main(void) {
    gpu_test_require_device();
    static const char *const cases[] = {"reference/synth-q8_0.gguf", "arch/qwen3-q8_0.gguf",
                                        "arch/gemma2-q8_0.gguf", "arch/phi3-q8_0.gguf",
                                        "arch/qwen3moe-q8_0.gguf"};
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) same_as_unsplit(cases[i]);
    through_gpus_option();
    too_big();
    return check_summary("test_gpu_split");
}
