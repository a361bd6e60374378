/* The CUDA backend against the float64 reference logits of every model in
 * tests/fixtures/reference and tests/fixtures/arch (48 prompt positions x
 * 512 logits):
 *   tier B (F16 KV cache): max |d| <= 5e-3, RMS <= 1e-3, greedy 16 == greedy_next_exact
 *   tier A (F32 KV cache, FP32 GEMM operands): max |d| <= 1e-4, RMS <= 2e-5
 * for token-by-token decode (CUDA graphs), 8 sequences decoded in one batch
 * (staggered, so each batch mixes positions) and chunked prefill (uneven
 * chunks: GEMM path and small-batch path). */
#include <cjson/cJSON.h>
#include <dirent.h>

#include "backend.h"
#include "cuda/cuda_backend.h"
#include "gpu_test.h"
#include "model.h"

#define N_GREEDY 16
#define NT       48

typedef struct ref_case {
    char name[128];
    int tokens[NT];
    int greedy[N_GREEDY];
    int n_vocab;
    float *exact; /* [NT][n_vocab] */
} ref_case;

static int int_array(const cJSON *root, const char *key, int *out, int max) {
    const cJSON *a = cJSON_GetObjectItemCaseSensitive(root, key), *it;
    int n = 0;
    if (!cJSON_IsArray(a)) return -1;
    cJSON_ArrayForEach(it, a) {
        if (n >= max || !cJSON_IsNumber(it)) return -1;
        out[n++] = it->valueint;
    }
    return n;
}

static int load_case(const char *dir, const char *json_name, ref_case *rc) {
    char path[1024];
    snprintf(path, sizeof path, "%s/%s", dir, json_name);
    char *text = check_read_file(path, NULL);
    if (!text) return -1;
    cJSON *root = cJSON_Parse(text);
    free(text);
    if (!root) return -1;
    snprintf(rc->name, sizeof rc->name, "%.*s", (int)(strlen(json_name) - strlen(".tokens.json")),
             json_name);
    int nt = int_array(root, "tokens", rc->tokens, NT);
    int ng = int_array(root, "greedy_next_exact", rc->greedy, N_GREEDY);
    const cJSON *nv = cJSON_GetObjectItemCaseSensitive(root, "n_vocab");
    rc->n_vocab = cJSON_IsNumber(nv) ? nv->valueint : -1;
    cJSON_Delete(root);
    if (nt != NT || ng != N_GREEDY || rc->n_vocab <= 0) return -1;
    snprintf(path, sizeof path, "%s/%s.exact.bin", dir, rc->name);
    FILE *f = fopen(path, "rb");
    if (!f) return -1;
    rc->exact = malloc(sizeof(float) * NT * rc->n_vocab);
    size_t got = fread(rc->exact, sizeof(float), (size_t)NT * rc->n_vocab, f);
    fclose(f);
    return got == (size_t)NT * rc->n_vocab ? 0 : -1;
}

static void compare(const ref_case *rc, const float *got, const char *what, double tmax,
                    double trms) {
    double mx = 0, ss = 0;
    size_t n = (size_t)NT * rc->n_vocab;
    for (size_t i = 0; i < n; i++) {
        double d = fabs((double)got[i] - rc->exact[i]);
        if (!(d <= mx)) mx = isnan(d) ? INFINITY : d;
        ss += d * d;
    }
    double rms = sqrt(ss / n);
    printf("  %-16s %-34s max %.2e  rms %.2e\n", rc->name, what, mx, rms);
    CHECKF(mx <= tmax && rms <= trms, "%s %s: max %.3g (<= %.0e), rms %.3g (<= %.0e)", rc->name,
           what, mx, tmax, rms, trms);
}

static backend *open_backend(model *m, backend_kv_type kv, int n_seq, int n_batch,
                             const char *gemm) {
    backend_params p = {.n_ctx = 128,
                        .n_seq_max = n_seq,
                        .n_batch_max = n_batch,
                        .n_threads = 1,
                        .device = 0,
                        .kv_type = kv,
                        .prefill_gemm = strcmp(gemm, "f32") ? BACKEND_GEMM_F16 : BACKEND_GEMM_F32};
    backend *b = NULL;
    int rc = backend_cuda_create(m, &p, &b);
    CHECKF(rc == 0, "backend_cuda_create: %s", m40llm_last_error());
    return rc ? NULL : b;
}

/* greedy continuation of sequence seq after the prompt, one token a step */
static void check_greedy(backend *b, const ref_case *rc, int seq, const char *what) {
    int32_t tok = -1, ids[N_GREEDY];
    /* the first id comes from the last prompt position: re-run it */
    backend_entry e = {seq, NT - 1, rc->tokens[NT - 1], true};
    int ok = b->ops->forward_argmax(b, &e, 1, &tok) == 0;
    for (int i = 0; i < N_GREEDY && ok; i++) {
        ids[i] = tok;
        e = (backend_entry){seq, NT + i, tok, true};
        ok = b->ops->forward_argmax(b, &e, 1, &tok) == 0;
    }
    CHECKF(ok, "%s %s: forward_argmax: %s", rc->name, what, m40llm_last_error());
    int same = ok && !memcmp(ids, rc->greedy, sizeof ids);
    CHECKF(same, "%s %s: greedy continuation differs from greedy_next_exact", rc->name, what);
}

static void run_case(const char *dir, const ref_case *rc) {
    char path[1024];
    snprintf(path, sizeof path, "%s/%s.gguf", dir, rc->name);
    model *m = NULL;
    if (model_load(path, &m)) {
        CHECKF(0, "%s: %s", path, m40llm_last_error());
        return;
    }
    const int V = rc->n_vocab;
    float *got = malloc(sizeof(float) * NT * V);
    /* 1: token by token, F16 KV (graphs), then greedy */
    backend *b = open_backend(m, BACKEND_KV_F16, 1, 8, "f16");
    if (b) {
        int ok = 1;
        for (int t = 0; t < NT && ok; t++) {
            backend_entry e = {0, t, rc->tokens[t], true};
            ok = backend_forward(b, &e, 1, got + (size_t)t * V) == 0;
        }
        CHECKF(ok, "%s decode: %s", rc->name, m40llm_last_error());
        compare(rc, got, "decode, F16 KV (tier B)", 5e-3, 1e-3);
        check_greedy(b, rc, 0, "decode greedy");
        backend_destroy(b);
    }
    /* 2: token by token with an F32 cache: FP32 throughout (tier A) */
    b = open_backend(m, BACKEND_KV_F32, 1, 1, "f32");
    if (b) {
        int ok = 1;
        for (int t = 0; t < NT && ok; t++) {
            backend_entry e = {0, t, rc->tokens[t], true};
            ok = backend_forward(b, &e, 1, got + (size_t)t * V) == 0;
        }
        CHECKF(ok, "%s decode f32: %s", rc->name, m40llm_last_error());
        compare(rc, got, "decode, F32 KV (tier A)", 1e-4, 2e-5);
        backend_destroy(b);
    }
    /* 3: 8 sequences in one batch, sequence s starting at step s */
    b = open_backend(m, BACKEND_KV_F16, 8, 8, "f16");
    if (b) {
        float *all = malloc(sizeof(float) * 8 * NT * V), *step = malloc(sizeof(float) * 8 * V);
        int ok = 1;
        for (int t = 0; t < NT + 7 && ok; t++) {
            backend_entry e[8];
            int n = 0;
            for (int s = 7; s >= 0; s--) { /* reverse order: entries not sorted by sequence */
                int pos = t - s;
                if (pos < 0 || pos >= NT) continue;
                e[n++] = (backend_entry){s, pos, rc->tokens[pos], true};
            }
            ok = backend_forward(b, e, n, step) == 0;
            for (int i = 0; i < n && ok; i++)
                memcpy(all + ((size_t)e[i].seq * NT + e[i].pos) * V, step + (size_t)i * V,
                       sizeof(float) * V);
        }
        CHECKF(ok, "%s batched: %s", rc->name, m40llm_last_error());
        for (int s = 0; s < 8 && ok; s += 7) {
            char what[64];
            snprintf(what, sizeof what, "8-seq batch, seq %d (tier B)", s);
            compare(rc, all + (size_t)s * NT * V, what, 5e-3, 1e-3);
        }
        double worst = 0;
        for (int s = 1; s < 7; s++)
            for (size_t i = 0; i < (size_t)NT * V; i++) {
                double d = fabs((double)all[(size_t)s * NT * V + i] - rc->exact[i]);
                if (!(d <= worst)) worst = d;
            }
        CHECKF(worst <= 5e-3, "%s 8-seq batch seqs 1..6: max %.3g", rc->name, worst);
        check_greedy(b, rc, 3, "batched greedy (seq 3)");
        free(all);
        free(step);
        backend_destroy(b);
    }
    /* 4: chunked prefill, default GEMM operands (f16 on tensor-core GPUs) and FP32 */
    static const int chunks[] = {13, 1, 20, 6, 8};
    for (int mode = 0; mode < 2; mode++) {
        b = open_backend(m, mode ? BACKEND_KV_F32 : BACKEND_KV_F16, 1, 32, mode ? "f32" : "f16");
        if (!b) continue;
        int ok = 1, t = 0;
        for (size_t c = 0; c < sizeof chunks / sizeof chunks[0] && ok; c++) {
            backend_entry e[32];
            for (int i = 0; i < chunks[c]; i++)
                e[i] = (backend_entry){0, t + i, rc->tokens[t + i], true};
            ok = backend_forward(b, e, chunks[c], got + (size_t)t * V) == 0;
            t += chunks[c];
        }
        CHECKF(ok, "%s prefill: %s", rc->name, m40llm_last_error());
        if (mode == 0) {
            compare(rc, got, "chunked prefill f16 GEMM (tier B)", 5e-3, 1e-3);
            check_greedy(b, rc, 0, "prefill greedy");
        } else {
            compare(rc, got, "chunked prefill f32 (tier A)", 1e-4, 2e-5);
        }
        backend_destroy(b);
    }
    free(got);
    model_free(m);
}

/* Decode past the attention's first splits, against the CPU backend with
 * the same (F16) KV cache: 300 positions, so the 32-position single split,
 * 128-position splits without a merge and merged ones all run, with
 * graphs and without (backend_params.no_graphs); then two sequences in one
 * batch, one short and one long. Tolerance: tier B's max |d| (5e-3); a
 * wrong split or merge is off by far more. */
#define LONG_T 300
static void long_decode(const char *path) {
    model *m = NULL;
    if (model_load(path, &m)) {
        CHECKF(0, "%s: %s", path, m40llm_last_error());
        return;
    }
    const int V = m->cfg.n_vocab;
    backend_params p = {.n_ctx = 512,
                        .n_seq_max = 2,
                        .n_batch_max = 8,
                        .n_threads = 1,
                        .device = 0,
                        .kv_type = BACKEND_KV_F16};
    backend *cpu = NULL;
    int rc = backend_cpu_create(m, &p, &cpu);
    CHECKF(rc == 0, "backend_cpu_create: %s", m40llm_last_error());
    int32_t tok[LONG_T];
    for (int t = 0; t < LONG_T; t++) tok[t] = (int32_t)(gt_u32() % (uint32_t)V);
    float *ref = malloc(sizeof(float) * LONG_T * V), *got = malloc(sizeof(float) * V);
    for (int t = 0; t < LONG_T && !rc; t++) {
        backend_entry e = {0, t, tok[t], true};
        rc = backend_forward(cpu, &e, 1, ref + (size_t)t * V);
    }
    CHECKF(rc == 0, "cpu decode: %s", m40llm_last_error());
    if (cpu) backend_destroy(cpu);
    for (int graphs = 1; graphs >= 0 && !rc; graphs--) {
        p.no_graphs = !graphs;
        backend *b = NULL;
        if (backend_cuda_create(m, &p, &b)) {
            CHECKF(0, "backend_cuda_create: %s", m40llm_last_error());
            break;
        }
        double worst = 0;
        int at = -1, ok = 1;
        for (int t = 0; t < LONG_T && ok; t++) {
            backend_entry e = {0, t, tok[t], true};
            ok = backend_forward(b, &e, 1, got) == 0;
            for (int i = 0; i < V && ok; i++) {
                double d = fabs((double)got[i] - ref[(size_t)t * V + i]);
                if (!(d <= worst)) worst = d, at = t;
            }
        }
        CHECKF(ok, "long decode: %s", m40llm_last_error());
        printf("  %s: long decode, %d positions, graphs %d: max |d| %.2e (position %d)\n", path,
               LONG_T, graphs, worst, at);
        CHECKF(worst <= 5e-3, "long decode (graphs %d): max |d| %.3g at position %d", graphs, worst,
               at);
        /* sequence 1 from the start while sequence 0 (cleared) runs again:
         * one batch mixes a short entry with a long one */
        b->ops->seq_clear(b, 0);
        worst = 0;
        float *two = malloc(sizeof(float) * 2 * V);
        for (int t = 0; t < LONG_T && ok; t++) {
            backend_entry e[2] = {{0, t, tok[t], true}, {1, t / 8, tok[t / 8], t % 8 == 0}};
            int n = t % 8 == 0 ? 2 : 1;
            ok = backend_forward(b, e, n, two) == 0;
            for (int k = 0; k < n && ok; k++) {
                const float *r = ref + (size_t)e[k].pos * V;
                for (int i = 0; i < V; i++) {
                    double d = fabs((double)two[(size_t)k * V + i] - r[i]);
                    if (!(d <= worst)) worst = d;
                }
            }
        }
        CHECKF(ok, "long decode, two sequences: %s", m40llm_last_error());
        CHECKF(worst <= 5e-3, "long decode, two sequences (graphs %d): max |d| %.3g", graphs,
               worst);
        free(two);
        backend_destroy(b);
    }
    free(ref), free(got);
    model_free(m);
}

/* every case of a fixture folder; at least `expected` of them */
static void run_dir(const char *rel, int expected) {
    char dir[1024];
    check_fixture(rel, dir, sizeof dir);
    DIR *d = opendir(dir);
    if (!d) SKIP("no fixtures at %s", dir);
    struct dirent *de;
    int n = 0;
    while ((de = readdir(d))) {
        size_t l = strlen(de->d_name);
        if (l < 12 || strcmp(de->d_name + l - 12, ".tokens.json")) continue;
        ref_case rc;
        memset(&rc, 0, sizeof rc);
        if (load_case(dir, de->d_name, &rc)) {
            CHECKF(0, "bad fixture %s", de->d_name);
            continue;
        }
        run_case(dir, &rc);
        free(rc.exact);
        n++;
    }
    closedir(d);
    CHECKF(n >= expected, "found %d models in %s (expected %d)", n, rel, expected);
}

/* The GEMM weight cache (backend_params.gemm_cache) changes no result:
 * a prompt in chunks of 13 and 20 (GEMM steps) and a 9-entry decode step
 * give the same bits with the matrices dequantized at create (0.5 of the
 * free memory) and at every step (0: none). */
static void gemm_cache_same(const char *path) {
    model *m = NULL;
    if (model_load(path, &m)) {
        CHECKF(0, "%s: %s", path, m40llm_last_error());
        return;
    }
    const int V = m->cfg.n_vocab;
    float *out[2] = {malloc(sizeof(float) * 42 * V), malloc(sizeof(float) * 42 * V)};
    for (int v = 0; v < 2; v++) {
        backend_params p = {.n_ctx = 64,
                            .n_seq_max = 9,
                            .n_batch_max = 32,
                            .n_threads = 1,
                            .device = 0,
                            .kv_type = BACKEND_KV_F16,
                            .gemm_cache = v ? 0.0 : 0.5};
        backend *b = NULL;
        int rc = backend_cuda_create(m, &p, &b);
        CHECKF(rc == 0, "gemm cache %d: %s", v, m40llm_last_error());
        if (rc) break;
        const size_t cached = ((const cuda_backend *)b)->gemm_cache_bytes;
        /* without cuBLAS (a CUDA 11.8 build on a machine without libcublas.so.11)
         * there is no GEMM step, so nothing to cache */
        const bool gemm = b->max_part == 0;
        if (!gemm)
            printf("SKIP: gemm cache: no cuBLAS (%s), no dense copies\n", backend_cuda_note());
        CHECKF(v || !gemm ? cached == 0 : cached > 0, "gemm cache %d: %zu bytes of dense copies", v,
               cached);
        backend_entry e[32];
        int t = 0, ok = 1;
        for (int c = 0; c < 2 && ok; c++) { /* sequence 0: 33 prompt positions */
            const int n = c ? 20 : 13;
            for (int i = 0; i < n; i++) e[i] = (backend_entry){0, t + i, (7 * (t + i)) % V, true};
            ok = backend_forward(b, e, n, out[v] + (size_t)t * V) == 0;
            t += n;
        }
        for (int s = 0; s < 9 && ok; s++) e[s] = (backend_entry){s, s ? 0 : t, 3 + s, true};
        ok = ok && backend_forward(b, e, 9, out[v] + (size_t)t * V) == 0;
        CHECKF(ok, "gemm cache %d: forward: %s", v, m40llm_last_error());
        backend_destroy(b);
    }
    CHECKF(!memcmp(out[0], out[1], sizeof(float) * 42 * V),
           "%s: logits differ with and without the GEMM weight cache", path);
    free(out[0]);
    free(out[1]);
    model_free(m);
}

int main(void) {
    gpu_test_require_device();
    /* the llama block (synthetic models), then each architecture's
     * variants (transformers fixtures, issue 24) */
    run_dir("reference", 14);
    run_dir("arch", 16);
    char dir[1024], path[1024];
    check_fixture("arch", dir, sizeof dir);
    /* past the windows of gemma3 (8 positions, local/global layers) and
     * phi3 (every layer): splits wholly outside the window */
    snprintf(path, sizeof path, "%s/gemma3-q8_0.gguf", dir);
    long_decode(path);
    snprintf(path, sizeof path, "%s/phi3-q8_0.gguf", dir);
    long_decode(path);
    check_fixture("reference", dir, sizeof dir);
    snprintf(path, sizeof path, "%s/synth-q8_0.gguf", dir);
    long_decode(path);
    gemm_cache_same(path);
    snprintf(path, sizeof path, "%s/synth-q4_k_m.gguf", dir);
    gemm_cache_same(path);
    snprintf(path, sizeof path, "%s/synth-q8_0.gguf", dir);
    /* a KV cache far larger than the GPU: a clear out-of-memory error and
     * every allocation of the half-built backend returned */
    model *m = NULL;
    if (model_load(path, &m) == 0) {
        size_t free0 = 0, free1 = 0, tot = 0;
        GT_CUDA(cudaMemGetInfo(&free0, &tot));
        backend_params p = {.n_ctx = 1 << 16,
                            .n_seq_max = 1 << 16,
                            .n_batch_max = 8,
                            .n_threads = 1,
                            .device = 0,
                            .kv_type = BACKEND_KV_F16};
        backend *b = NULL;
        int rc = backend_cuda_create(m, &p, &b);
        CHECKF(rc == M40LLM_ERR_OOM && b == NULL, "huge KV cache: status %d (%s)", rc,
               m40llm_last_error());
        CHECKF(strstr(m40llm_last_error(), "KV cache") != NULL,
               "OOM message names the KV cache: %s", m40llm_last_error());
        GT_CUDA(cudaMemGetInfo(&free1, &tot));
        CHECKF(free1 + (64u << 20) >= free0, "device memory not returned: %zu -> %zu free", free0,
               free1);
        model_free(m);
    }
    return check_summary("test_gpu_forward");
}
