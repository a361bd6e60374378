/* Fused dequantize + dot kernels of the CPU backend: a row's result is the
 * same bits whatever group of tokens it is computed in, and matches the
 * dequantized row's exact dot product; models of every type with a kernel
 * give bit-identical logits for one batch and token by token. */
#include "backend.h"
#include "check.h"
#include "cpu/cpu_internal.h"
#include "model.h"
#include "quant.h"

#define N_IN  768 /* three K-quant super-blocks, 24 legacy blocks */
#define ROWS  5
#define TOKS  11
#define T_SEQ 20

static uint32_t rng = 12345;
static float frand(void) {
    rng = rng * 1664525u + 1013904223u;
    return (float)((rng >> 8) & 0xFFFF) / 32768.0f - 1.0f;
}

static const char *isa_name[] = {"none", "avx2", "avx512"};

static void check_type(int type, cpu_isa isa) {
    const quant_type_info *qi = quant_info(type);
    bool need;
    cpu_qdot_fn fn = cpu_qdot_lookup_isa(type, isa, &need);
    if (!fn) {
        printf("%-6s %-5s no fused kernel\n", isa_name[isa], qi->name);
        return;
    }
    const size_t rb = quant_row_size(type, N_IN);
    uint8_t *w = malloc(rb * ROWS);
    float *wf = malloc(sizeof(float) * N_IN * ROWS), *x = malloc(sizeof(float) * N_IN * TOKS);
    float xs[TOKS][N_IN / CPU_QBLK];
    for (int i = 0; i < N_IN * ROWS; i++) wf[i] = frand() * (1 + i % 7) + (i % 5 == 0 ? 0.3f : 0);
    for (int i = 0; i < N_IN * TOKS; i++) x[i] = frand();
    for (int r = 0; r < ROWS; r++) {
        CHECK(quant_quantize_row(type, wf + r * N_IN, w + r * rb, N_IN) == 0);
        CHECK(quant_dequantize_row(type, w + r * rb, wf + r * N_IN, N_IN) == 0);
    }
    for (int t = 0; t < TOKS; t++) cpu_block_sums(x + t * N_IN, N_IN, xs[t]);
    double worst = 0;
    for (int r = 0; r < ROWS; r++) {
        float single[TOKS], grouped[TOKS];
        for (int t = 0; t < TOKS; t++)
            fn(w + r * rb, x + t * N_IN, N_IN, xs[t], N_IN / CPU_QBLK, 1, N_IN, single + t);
        /* groups of every size 1..CPU_QX, in several splits */
        for (int g = 2; g <= CPU_QX; g++) {
            for (int t0 = 0; t0 < TOKS; t0 += g) {
                int nx = TOKS - t0 < g ? TOKS - t0 : g;
                fn(w + r * rb, x + t0 * N_IN, N_IN, xs[t0], N_IN / CPU_QBLK, nx, N_IN,
                   grouped + t0);
            }
            CHECKF(memcmp(single, grouped, sizeof single) == 0, "%s row %d: groups of %d differ",
                   qi->name, r, g);
        }
        for (int t = 0; t < TOKS; t++) {
            double ref = 0, mag = 0;
            for (int i = 0; i < N_IN; i++) {
                ref += (double)wf[r * N_IN + i] * x[t * N_IN + i];
                mag += fabs((double)wf[r * N_IN + i] * x[t * N_IN + i]);
            }
            double rel = fabs(single[t] - ref) / (mag + 1e-30);
            if (rel > worst) worst = rel;
        }
    }
    printf("%-6s %-5s max |kernel - exact| / sum|w*x| = %.3e\n", isa_name[isa], qi->name, worst);
    CHECKF(worst < 2e-6, "%s: kernel far from the dequantized row's dot", qi->name);
    free(w);
    free(wf);
    free(x);
}

/* Logits of T_SEQ tokens fed as one batch, token by token, and in chunks. */
static void check_model(const char *rel) {
    char path[512];
    model *m = NULL;
    check_fixture(rel, path, sizeof path);
    if (model_load(path, &m)) {
        printf("%s: cannot load (%s): skipped\n", rel, m40llm_last_error());
        return;
    }
    const int V = m->cfg.n_vocab;
    backend_params p = {.n_ctx = 64,
                        .n_seq_max = 1,
                        .n_batch_max = T_SEQ,
                        .n_threads = 2,
                        .kv_type = BACKEND_KV_F32};
    backend *b = NULL;
    CHECKF(backend_cpu_create(m, &p, &b) == 0, "create: %s", m40llm_last_error());
    if (!b) {
        model_free(m);
        return;
    }
    float *out[3];
    const int chunks[3][T_SEQ] = {
        {T_SEQ}, {1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1}, {3, 6, 1, 5, 2, 3}};
    const int n_chunks[3] = {1, T_SEQ, 6};
    for (int v = 0; v < 3; v++) {
        out[v] = calloc((size_t)T_SEQ * V, sizeof(float));
        CHECK(b->ops->seq_clear(b, 0) == 0);
        int pos = 0;
        for (int c = 0; c < n_chunks[v]; c++) {
            backend_entry e[T_SEQ];
            for (int i = 0; i < chunks[v][c]; i++)
                e[i] = (backend_entry){0, pos + i, 1 + (pos + i) * 37 % (V - 1), true};
            CHECK(backend_forward(b, e, chunks[v][c], out[v] + (size_t)pos * V) == 0);
            pos += chunks[v][c];
        }
    }
    size_t n = (size_t)T_SEQ * V;
    bool same = !memcmp(out[0], out[1], n * 4) && !memcmp(out[0], out[2], n * 4);
    printf("%s: one batch vs token by token vs chunks: %s\n", rel, same ? "identical" : "DIFFER");
    CHECKF(same, "%s: logits depend on batching", rel);
    for (int v = 0; v < 3; v++) free(out[v]);
    backend_destroy(b);
    model_free(m);
}

int main(void) {
    const int types[] = {QT_Q4_0, QT_Q4_1, QT_Q5_0, QT_Q5_1, QT_Q8_0,
                         QT_Q4_K, QT_Q5_K, QT_Q6_K, QT_F16,  QT_F32};
    /* every kernel set this CPU runs, not only the one the backend picks */
    for (int isa = CPU_ISA_AVX2; isa <= (int)cpu_isa_best(); isa++)
        for (size_t i = 0; i < sizeof types / sizeof *types; i++)
            check_type(types[i], (cpu_isa)isa);
    const char *models[] = {"reference/synth-q4_0.gguf", "reference/synth-q4_1.gguf",
                            "reference/synth-q5_0.gguf", "reference/synth-q5_1.gguf",
                            "reference/synth-q8_0.gguf", "reference/synth-q5_k_m.gguf",
                            "reference/synth-q6_k.gguf", "reference/synth-f16.gguf"};
    for (size_t i = 0; i < sizeof models / sizeof *models; i++) check_model(models[i]);
    return check_summary("test_cpu_qdot");
}
