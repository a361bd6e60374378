/* m40-gemv-bench: times the decode GEMV kernels on the matrix shapes of
 * one decoder layer, with weights that do not stay in L2 (as in a real
 * decode step), and prints the achieved DRAM bandwidth and, for several
 * vectors (--nb), FP32 TFLOP/s.
 *
 *   m40-gemv-bench [--shape 7b|smollm2] [--only qkv,down,...]
 *                  [--types q4_0,q8_0,f16,...] [--kernels auto,warp,staged,persist,rows4]
 *                  [--nb N] [--iters N] [--device N] [--hot] [--graph]
 *
 * --nb 2..8 vectors: "auto" is the row-parallel kernel launch_gemv runs
 * for plain products and SwiGLU (gemvr_impl.cuh), "staged" the
 * block-staged one (which it runs for QKV). The QKV shape runs as a plain
 * product here (no KV cache).
 *
 * Weight bytes are random (timing does not depend on the values). Each
 * launch reads the next of several copies of the layer, cycling through
 * more than 3x the L2 size. --hot reads one copy every time (it stays in
 * L2 where it fits): the kernel's speed with DRAM out of the way.
 * --graph replays the launches as one CUDA graph, as a decode step does
 * (no host launch cost between them). */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cuda_runtime_api.h>

#include "backend.h"
#include "cuda/cuda_internal.h"
#include "m40llm.h"
#include "quant.h"

typedef struct bench_shape {
    const char *name;
    int64_t rows, cols;
    int mode;  /* gemv_mode */
    int gamma; /* fused RMSNorm */
} bench_shape;

static const bench_shape k_7b[] = {
    {"qkv", 6144, 4096, GEMV_STORE, 1},
    {"wo", 4096, 4096, GEMV_ADD, 0},
    {"gate+up", 14336, 4096, GEMV_SWIGLU, 1},
    {"down", 4096, 14336, GEMV_ADD, 0},
};
static const bench_shape k_smol[] = {
    {"qkv", 960, 576, GEMV_STORE, 1},       {"wo", 576, 576, GEMV_ADD, 0},
    {"gate+up", 1536, 576, GEMV_SWIGLU, 1}, {"down", 576, 1536, GEMV_ADD, 0},
    {"head", 49152, 576, GEMV_STORE, 1},
};

#define CK(call)                                                                                   \
    do {                                                                                           \
        cudaError_t e_ = (call);                                                                   \
        if (e_ != cudaSuccess) {                                                                   \
            fprintf(stderr, "%s:%d: %s: %s\n", __FILE__, __LINE__, #call, cudaGetErrorString(e_)); \
            exit(1);                                                                               \
        }                                                                                          \
    } while (0)

static const char *type_name(int t) {
    return quant_info(t) ? quant_info(t)->name : "?";
}

/* xorshift bytes, the same on every run */
static void fill_random(uint8_t *p, size_t n, uint64_t seed) {
    uint64_t s = seed * 0x9E3779B97F4A7C15ull + 1;
    for (size_t i = 0; i < n; i++) {
        s ^= s << 13, s ^= s >> 7, s ^= s << 17;
        p[i] = (uint8_t)(s >> 24);
    }
}

/* a matrix in the device layout, its bytes random; f16 scales kept finite */
static size_t alloc_matrix(gpu_matrix *m, int type, int64_t rows, int64_t cols, uint8_t **base) {
    size_t qb, sb, hb;
    size_t total = gpu_matrix_layout(m, type, rows, cols, &qb, &sb, &hb);
    if (!total) {
        fprintf(stderr, "type %s: %lld x %lld has no device layout\n", type_name(type),
                (long long)rows, (long long)cols);
        exit(1);
    }
    CK(cudaMalloc((void **)base, total));
    uint8_t *h = malloc(total);
    fill_random(h, total, (uint64_t)rows * 31 + (uint64_t)cols + (uint64_t)type);
    if (type == QT_F16 || type == QT_BF16) /* clear exponent MSBs: no inf/nan */
        for (size_t i = 1; i < qb; i += 2) h[i] &= 0x3b;
    for (size_t i = qb + 1; i < qb + sb; i += 2) h[i] &= 0x1b;
    CK(cudaMemcpy(*base, h, total, cudaMemcpyHostToDevice));
    free(h);
    gpu_matrix_place(m, *base, qb, sb);
    return total;
}

int main(int argc, char **argv) {
    const char *shape = "7b", *only = NULL, *types = "q4_0,q8_0,f16", *kernels = "auto,warp,staged";
    int iters = 200, dev = 0, hot = 0, graph = 0, nb = 1;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--shape") && i + 1 < argc)
            shape = argv[++i];
        else if (!strcmp(argv[i], "--only") && i + 1 < argc)
            only = argv[++i];
        else if (!strcmp(argv[i], "--types") && i + 1 < argc)
            types = argv[++i];
        else if (!strcmp(argv[i], "--kernels") && i + 1 < argc)
            kernels = argv[++i];
        else if (!strcmp(argv[i], "--iters") && i + 1 < argc)
            iters = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--device") && i + 1 < argc)
            dev = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--nb") && i + 1 < argc && atoi(argv[i + 1]) >= 1 &&
                 atoi(argv[i + 1]) <= 8)
            nb = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--hot"))
            hot = 1;
        else if (!strcmp(argv[i], "--graph"))
            graph = 1;
        else {
            fprintf(stderr,
                    "usage: %s [--shape 7b|smollm2] [--types q4_0,...] "
                    "[--kernels auto,warp,staged,persist,rows4] [--nb 1..8] [--iters N] "
                    "[--device N] "
                    "[--hot] [--graph]\n",
                    argv[0]);
            return 2;
        }
    }
    const bench_shape *shp = strcmp(shape, "smollm2") ? k_7b : k_smol;
    int nshape = strcmp(shape, "smollm2") ? 4 : 5;
    CK(cudaSetDevice(dev));
    struct cudaDeviceProp prop;
    CK(cudaGetDeviceProperties(&prop, dev));
    printf("device %s, %d SMs, L2 %d MiB\n", prop.name, prop.multiProcessorCount,
           prop.l2CacheSize >> 20);

    float *x, *g, *y;
    const int64_t maxk = 16384, maxr = 65536;
    CK(cudaMalloc((void **)&x, 8 * maxk * 4));
    CK(cudaMalloc((void **)&g, maxk * 4));
    CK(cudaMalloc((void **)&y, 8 * maxr * 4));
    {
        float *h = malloc(8 * maxk * 4);
        for (int64_t i = 0; i < 8 * maxk; i++) h[i] = (float)((i * 7919) % 2001 - 1000) * 1e-3f;
        CK(cudaMemcpy(x, h, 8 * maxk * 4, cudaMemcpyHostToDevice));
        for (int64_t i = 0; i < maxk; i++) h[i] = 1.0f + (float)(i % 17) * 0.01f;
        CK(cudaMemcpy(g, h, maxk * 4, cudaMemcpyHostToDevice));
        free(h);
    }
    CK(cudaMemset(y, 0, 8 * maxr * 4));
    cudaEvent_t e0, e1;
    CK(cudaEventCreate(&e0));
    CK(cudaEventCreate(&e1));

    char tbuf[256];
    snprintf(tbuf, sizeof tbuf, "%s", types);
    for (char *ts = strtok(tbuf, ","); ts; ts = strtok(NULL, ",")) {
        int type = quant_type_from_name(ts);
        if (type < 0) {
            fprintf(stderr, "unknown type %s\n", ts);
            return 2;
        }
        for (int si = 0; si < nshape; si++) {
            const bench_shape *b = &shp[si];
            if (only && !strstr(only, b->name)) continue;
            int nm = b->mode == GEMV_SWIGLU ? 2 : 1;
            gpu_matrix probe;
            size_t qb, sb, hb;
            size_t one = gpu_matrix_layout(&probe, type, b->rows, b->cols, &qb, &sb, &hb) * nm;
            /* copies: > 3 x L2 in all, at least 2 */
            int nc = (int)(3 * (size_t)prop.l2CacheSize / one) + 2;
            if (nc > 64) nc = 64;
            if (hot) nc = 1;
            gpu_matrix *ms = calloc((size_t)nc * nm, sizeof *ms);
            uint8_t **bases = calloc((size_t)nc * nm, sizeof *bases);
            for (int c = 0; c < nc * nm; c++)
                alloc_matrix(&ms[c], type, b->rows, b->cols, &bases[c]);
            char kbuf[128];
            snprintf(kbuf, sizeof kbuf, "%s", kernels);
            char *ksave = NULL;
            for (char *ks = strtok_r(kbuf, ",", &ksave); ks; ks = strtok_r(NULL, ",", &ksave)) {
                int kc = backend_gemv_kernel_from_name(ks);
                if (kc < 0) {
                    fprintf(stderr, "unknown kernel %s (auto, warp, staged, persist, rows4)\n", ks);
                    return 2;
                }
                gemv_args a;
                memset(&a, 0, sizeof a);
                a.kernel = kc;
                a.x = x;
                a.ldx = b->cols;
                a.nb = nb;
                a.gamma = b->gamma ? g : NULL;
                a.eps = 1e-5f;
                a.y = y;
                a.ldy = b->rows;
                a.mode = b->mode == GEMV_QKV ? GEMV_STORE : b->mode;
                int rc = 0;
                /* graph: the iters launches captured once (on a stream of
                 * their own: the legacy stream cannot capture), replayed
                 * after a warm-up replay */
                cudaStream_t cs = 0;
                cudaGraphExec_t ge = NULL;
                if (graph) {
                    CK(cudaStreamCreateWithFlags(&cs, cudaStreamNonBlocking));
                    CK(cudaStreamBeginCapture(cs, cudaStreamCaptureModeThreadLocal));
                }
                for (int it = graph ? 0 : -10; it < iters && !rc; it++) {
                    if (it == 0 && !graph) CK(cudaEventRecord(e0, 0));
                    int c = ((it % nc) + nc) % nc;
                    a.w = &ms[c * nm];
                    a.w2 = nm == 2 ? &ms[c * nm + 1] : NULL;
                    rc = launch_gemv(&a, cs);
                }
                if (graph) {
                    cudaGraph_t gr = NULL;
                    CK(cudaStreamEndCapture(cs, &gr));
                    if (!rc) CK(cudaGraphInstantiateWithFlags(&ge, gr, 0));
                    CK(cudaGraphDestroy(gr));
                }
                if (rc) {
                    fprintf(stderr, "launch_gemv: %s\n", m40llm_last_error());
                    return 1;
                }
                if (graph) {
                    CK(cudaGraphLaunch(ge, cs));
                    CK(cudaEventRecord(e0, cs));
                    CK(cudaGraphLaunch(ge, cs));
                    CK(cudaEventRecord(e1, cs));
                } else {
                    CK(cudaEventRecord(e1, 0));
                }
                CK(cudaEventSynchronize(e1));
                if (graph) {
                    CK(cudaGraphExecDestroy(ge));
                    CK(cudaStreamDestroy(cs));
                }
                float ms_total;
                CK(cudaEventElapsedTime(&ms_total, e0, e1));
                double us = ms_total * 1e3 / iters;
                printf(
                    "%-6s %-8s %6lld x %-6lld %-7s nb %d%s%s %8.2f us %8.1f GB/s %6.2f TFLOP/s\n",
                    type_name(type), b->name, (long long)b->rows, (long long)b->cols, ks, nb,
                    hot ? " hot" : "", graph ? " graph" : "", us, (double)one / (us * 1e3),
                    2.0 * nb * b->rows * b->cols * nm / (us * 1e6));
                fflush(stdout);
            }
            for (int c = 0; c < nc * nm; c++) cudaFree(bases[c]);
            free(ms);
            free(bases);
        }
    }
    return 0;
}
