/* launch_gemv's several-vector kernels, the row-parallel one (its choice
 * for plain products and SwiGLU, gemvr_impl.cuh), its 4-stream form
 * (GEMV_KERNEL_ROWS4: the same sums, bit for bit, outside split-K adds)
 * and the block-staged one (GEMV_KERNEL_STAGED), against float64 for every weight type, 2, 5 and 8
 * vectors, store, residual add (also split over K, on long rows), SwiGLU
 * and GeGLU, with and without the fused RMSNorm: |err| <= 2e-5 * sum|terms|
 * + 1e-6, as test_gpu_kernels holds the one-vector kernels; rows past the
 * end and vectors past nb untouched (also for odd row counts); the same
 * sums for a vector whichever the vector count. */
#include <string.h>

#include "gpu_weights.h"

static const int k_types[] = {QT_F32,  QT_F16,  QT_BF16, QT_Q4_0, QT_Q4_1, QT_Q5_0, QT_Q5_1,
                              QT_Q8_0, QT_Q2_K, QT_Q3_K, QT_Q4_K, QT_Q5_K, QT_Q6_K};

static const int k_kernels[] = {GEMV_KERNEL_AUTO, GEMV_KERNEL_ROWS4, GEMV_KERNEL_STAGED};
static const char *const k_kernel_names[] = {"rows", "rows4", "staged"};

static void check_products(host_w *h, host_w *h2, int nb, int mode, int act, int norm) {
    float *rows_y = NULL;         /* the rows kernel's output, which rows4 must equal */
    const uint64_t seed = gt_rng; /* every kernel gets the same inputs */
    for (int kernel = 0; kernel < 3; kernel++) {
        gt_rng = seed;
        const char *name = quant_info(h->type)->name;
        const int64_t R = h->rows, K = h->cols, ldx = K + 32, ldy = R + 8;
        float *x = malloc(sizeof(float) * nb * ldx), *gamma = malloc(sizeof(float) * K),
              *y0 = malloc(sizeof(float) * 8 * ldy), *y = malloc(sizeof(float) * 8 * ldy);
        gt_fill(x, (size_t)nb * ldx, 1.0f);
        gt_fill(gamma, (size_t)K, 1.0f);
        gt_fill(y0, (size_t)8 * ldy, 1.0f); /* 8 vectors' rows: those past nb stay untouched */
        float *dx = gt_up(x, sizeof(float) * nb * ldx), *dg = gt_up(gamma, sizeof(float) * K),
              *dy = gt_up(y0, sizeof(float) * 8 * ldy);
        const gemv_args a = gt_gemv_args(h, h2, dx, ldx, nb, norm ? dg : NULL, dy, ldy, mode, act,
                                         k_kernels[kernel]);
        GT_OK(launch_gemv(&a, 0));
        gt_down(y, dy, sizeof(float) * 8 * ldy);
        const char *kn = k_kernel_names[kernel];
        if (kernel == 0) {
            rows_y = malloc(sizeof(float) * 8 * ldy);
            memcpy(rows_y, y, sizeof(float) * 8 * ldy);
        } else if (kernel == 1 && (mode != GEMV_ADD || norm || K < 2048)) {
            /* (split-K adds, only without the norm on long rows: atomics, any order) */
            CHECKF(!memcmp(rows_y, y, sizeof(float) * 8 * ldy),
                   "%s %lldx%lld nb=%d mode=%d: rows4 differs from rows", name, (long long)R,
                   (long long)K, nb, mode);
        }
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
        for (int64_t i = (int64_t)nb * ldy; i < 8 * ldy; i++) untouched &= y[i] == y0[i];
        free(ref);
        free(mag);
        CHECKF(worst <= 1.0,
               "%s %lldx%lld %s kernel nb=%d mode=%d act=%d norm=%d: %.3g x tolerance", name,
               (long long)R, (long long)K, kn, nb, mode, act, norm, worst);
        CHECKF(untouched, "%s %s kernel nb=%d mode=%d: wrote past the rows or vectors", name, kn,
               nb, mode);
        cudaFree(dx), cudaFree(dg), cudaFree(dy);
        free(x), free(gamma), free(y0), free(y);
    }
    free(rows_y);
}

/* a vector's sums do not depend on how many vectors run with it (the
 * serving engine's steps vary in size): nb 3 and nb 8 over the same first
 * 3 vectors give the same bits, for each kernel */
static void check_nb_invariant(host_w *h, host_w *h2, int mode) {
    const int64_t R = h->rows, K = h->cols;
    float *x = malloc(sizeof(float) * 8 * K), *gamma = malloc(sizeof(float) * K),
          *y[2] = {malloc(sizeof(float) * 8 * R), malloc(sizeof(float) * 8 * R)};
    gt_fill(x, (size_t)8 * K, 1.0f);
    gt_fill(gamma, (size_t)K, 1.0f);
    float *dx = gt_up(x, sizeof(float) * 8 * K), *dg = gt_up(gamma, sizeof(float) * K),
          *dy = gt_dev(sizeof(float) * 8 * R);
    for (int kernel = 0; kernel < 3; kernel++) {
        for (int v = 0; v < 2; v++) {
            const gemv_args a =
                gt_gemv_args(h, h2, dx, K, v ? 8 : 3, dg, dy, R, mode, 0, k_kernels[kernel]);
            GT_OK(launch_gemv(&a, 0));
            gt_down(y[v], dy, sizeof(float) * 8 * R);
        }
        CHECKF(!memcmp(y[0], y[1], sizeof(float) * 3 * R), "%s %s kernel mode=%d: nb 3 != nb 8",
               quant_info(h->type)->name, k_kernel_names[kernel], mode);
    }
    cudaFree(dx), cudaFree(dg), cudaFree(dy);
    free(x), free(gamma), free(y[0]), free(y[1]);
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
        check_nb_invariant(&w, NULL, GEMV_STORE);
        check_nb_invariant(&w, &w2, GEMV_SWIGLU);
        free_w(&w);
        free_w(&w2);
    }
    /* an odd row count (a pair's second row past the end); a residual add
     * with the fused RMSNorm (never split over K) */
    for (int t = 0; t < 2; t++) {
        host_w wo, wo2;
        make_w(&wo, t ? QT_Q4_K : QT_Q8_0, 45, 256);
        make_w(&wo2, t ? QT_Q4_K : QT_Q8_0, 45, 256);
        check_products(&wo, NULL, 7, GEMV_STORE, 0, 1);
        check_products(&wo, NULL, 4, GEMV_ADD, 0, 1);
        check_products(&wo, &wo2, 6, GEMV_SWIGLU, t, 0);
        free_w(&wo);
        free_w(&wo2);
    }
    /* long rows: x in several chunks; a residual add split over K */
    host_w wl;
    make_w(&wl, QT_Q4_0, 20, 9216);
    check_products(&wl, NULL, 8, GEMV_STORE, 0, 1);
    check_products(&wl, NULL, 8, GEMV_ADD, 0, 0);
    free_w(&wl);
    return check_summary("test_gpu_gemv_rows");
}
