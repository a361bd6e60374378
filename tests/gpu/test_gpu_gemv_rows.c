/* The workbench's row-parallel GEMV (bench/gemv_rows.cu) against float64
 * for every weight type, 2, 5 and 8 vectors, store, residual add (also
 * split over K, on long rows), SwiGLU and GeGLU, with and without the fused
 * RMSNorm: |err| <= 2e-5 * sum|terms| + 1e-6, as test_gpu_kernels holds
 * launch_gemv; the rope + KV-store epilogue against launch_gemv's (within
 * 1e-5 relative); rows past the end untouched; bad arguments refused. */
#include <string.h>

#include "gemv_rows.h"
#include "gpu_weights.h"

static const int k_types[] = {QT_F32,  QT_F16,  QT_BF16, QT_Q4_0, QT_Q4_1, QT_Q5_0, QT_Q5_1,
                              QT_Q8_0, QT_Q2_K, QT_Q3_K, QT_Q4_K, QT_Q5_K, QT_Q6_K};

static void check_products(host_w *h, host_w *h2, int nb, int mode, int act, int norm) {
    const char *name = quant_info(h->type)->name;
    const int64_t R = h->rows, K = h->cols, ldx = K + 32, ldy = R + 8;
    float *x = malloc(sizeof(float) * nb * ldx), *gamma = malloc(sizeof(float) * K),
          *y0 = malloc(sizeof(float) * nb * ldy), *y = malloc(sizeof(float) * nb * ldy);
    gt_fill(x, (size_t)nb * ldx, 1.0f);
    gt_fill(gamma, (size_t)K, 1.0f);
    gt_fill(y0, (size_t)nb * ldy, 1.0f);
    float *dx = gt_up(x, sizeof(float) * nb * ldx), *dg = gt_up(gamma, sizeof(float) * K),
          *dy = gt_up(y0, sizeof(float) * nb * ldy);
    gemv_args a;
    memset(&a, 0, sizeof a);
    a.w = &h->m;
    a.w2 = h2 ? &h2->m : NULL;
    a.x = dx;
    a.ldx = ldx;
    a.nb = nb;
    a.gamma = norm ? dg : NULL;
    a.eps = 1e-5f;
    a.y = dy;
    a.ldy = ldy;
    a.mode = mode;
    a.act = act;
    GT_OK(bench_gemv_rows(&a, 0));
    gt_down(y, dy, sizeof(float) * nb * ldy);
    double *ref = malloc(sizeof(double) * nb * R), *mag = malloc(sizeof(double) * nb * R);
    gemv_ref(h, h2, x, ldx, nb, norm ? gamma : NULL, mode, act, y0, ldy, ref, mag);
    double worst = 0;
    int untouched = 1;
    for (int b = 0; b < nb; b++) {
        for (int64_t r = 0; r < R; r++)
            gt_worst(&worst,
                     fabs(y[b * ldy + r] - ref[b * R + r]) / (2e-5 * mag[b * R + r] + 1e-6));
        for (int64_t r = R; r < ldy; r++) untouched &= y[b * ldy + r] == y0[b * ldy + r];
    }
    free(ref);
    free(mag);
    CHECKF(worst <= 1.0, "%s %lldx%lld rows kernel nb=%d mode=%d act=%d norm=%d: %.3g x tolerance",
           name, (long long)R, (long long)K, nb, mode, act, norm, worst);
    CHECKF(untouched, "%s rows kernel nb=%d mode=%d: wrote past the rows", name, nb, mode);
    cudaFree(dx), cudaFree(dg), cudaFree(dy);
    free(x), free(gamma), free(y0), free(y);
}

/* rope + KV store: the same q rows and cache as launch_gemv's epilogue */
static void check_qkv(int type) {
    enum { NH = 4, NKV = 2, HD = 32, NB = 5, K = 512, PS = 4, PAGE = 1 << PS };
    const int rows = (NH + 2 * NKV) * HD;
    host_w w;
    make_w(&w, type, rows, K);
    float *x = malloc(sizeof(float) * NB * K);
    gt_fill(x, (size_t)NB * K, 1.0f);
    int32_t seqpos[2 * NB] = {0, 1, 2, 3, 4, 0, 3, 17, 5, 1};
    const size_t layer = (size_t)NB * NKV * PAGE * 2 * HD; /* 2 pages a sequence */
    float *dx = gt_up(x, sizeof(float) * NB * K);
    int32_t *dsp = gt_up(seqpos, sizeof seqpos), *pt = gt_dev(sizeof(int32_t) * NB * 2);
    GT_OK(launch_iota(pt, NB * 2, 0, 0));
    float *out[2][3]; /* [kernel][q, k, v] */
    for (int kk = 0; kk < 2; kk++) {
        float *dq = gt_dev(sizeof(float) * NB * NH * HD), *dk = gt_dev(layer * 4),
              *dv = gt_dev(layer * 4);
        GT_CUDA(cudaMemset(dk, 0, layer * 4));
        GT_CUDA(cudaMemset(dv, 0, layer * 4));
        qkv_out o;
        memset(&o, 0, sizeof o);
        o.kv = (kv_view){dk, dv, pt, 2, NKV, HD, 0, PS};
        o.rope = (rope_cfg){NH, NKV, HD, HD, 10000.0f, 1.0f};
        o.seq = dsp;
        o.pos = dsp + NB;
        o.q = dq;
        o.ldq = NH * HD;
        gemv_args a;
        memset(&a, 0, sizeof a);
        a.w = &w.m;
        a.x = dx;
        a.ldx = K;
        a.nb = NB;
        a.mode = GEMV_QKV;
        a.qkv = &o;
        GT_OK(kk ? bench_gemv_rows(&a, 0) : launch_gemv(&a, 0));
        out[kk][0] = malloc(sizeof(float) * NB * NH * HD);
        out[kk][1] = malloc(layer * 4);
        out[kk][2] = malloc(layer * 4);
        gt_down(out[kk][0], dq, sizeof(float) * NB * NH * HD);
        gt_down(out[kk][1], dk, layer * 4);
        gt_down(out[kk][2], dv, layer * 4);
        cudaFree(dq), cudaFree(dk), cudaFree(dv);
    }
    double worst = 0;
    const size_t n[3] = {(size_t)NB * NH * HD, layer, layer};
    for (int t = 0; t < 3; t++)
        for (size_t i = 0; i < n[t]; i++)
            gt_worst(&worst, fabs(out[1][t][i] - out[0][t][i]) / (1e-5 * (fabs(out[0][t][i]) + 1)));
    CHECKF(worst <= 1.0, "%s rows kernel QKV epilogue vs launch_gemv: %.3g x 1e-5",
           quant_info(type)->name, worst);
    for (int kk = 0; kk < 2; kk++)
        for (int t = 0; t < 3; t++) free(out[kk][t]);
    cudaFree(dx), cudaFree(dsp), cudaFree(pt);
    free(x);
    free_w(&w);
}

int main(void) {
    gpu_test_require_device();
    for (size_t i = 0; i < sizeof k_types / sizeof k_types[0]; i++) {
        host_w w, w2;
        make_w(&w, k_types[i], 44, 512);
        make_w(&w2, k_types[i], 44, 512);
        const int nbs[] = {2, 5, 8};
        for (int j = 0; j < 3; j++) check_products(&w, NULL, nbs[j], GEMV_STORE, 0, j == 1);
        check_products(&w, NULL, 3, GEMV_ADD, 0, 0);
        check_products(&w, &w2, 8, GEMV_SWIGLU, (int)(i % 2), 1);
        check_products(&w, &w2, 2, GEMV_SWIGLU, 1 - (int)(i % 2), 0);
        free_w(&w);
        free_w(&w2);
    }
    /* long rows: x in several chunks; a residual add split over K */
    host_w wl;
    make_w(&wl, QT_Q4_0, 20, 9216);
    check_products(&wl, NULL, 8, GEMV_STORE, 0, 1);
    check_products(&wl, NULL, 8, GEMV_ADD, 0, 0);
    free_w(&wl);
    check_qkv(QT_F32);
    check_qkv(QT_Q4_0);
    /* refusals: one vector, no output, SwiGLU without its up matrix */
    host_w w;
    make_w(&w, QT_Q8_0, 16, 64);
    float *d = gt_dev(4096);
    gemv_args a;
    memset(&a, 0, sizeof a);
    a.w = &w.m;
    a.x = d;
    a.ldx = 64;
    a.y = d;
    a.ldy = 16;
    a.nb = 1;
    CHECK(bench_gemv_rows(&a, 0) == M40LLM_ERR_INVALID_ARG);
    a.nb = 2;
    a.y = NULL;
    CHECK(bench_gemv_rows(&a, 0) == M40LLM_ERR_INVALID_ARG);
    a.y = d;
    a.mode = GEMV_SWIGLU;
    CHECK(bench_gemv_rows(&a, 0) == M40LLM_ERR_INVALID_ARG);
    cudaFree(d);
    free_w(&w);
    return check_summary("test_gpu_gemv_rows");
}
