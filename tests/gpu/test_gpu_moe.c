/* The mixture-of-experts kernels (moe.cu) against CPU references:
 *   routing: the experts exactly those of the CPU's cpu_moe_route (ties to
 *     the lower id, NaN last), weights within 1e-6 relative;
 *   grouping: the counting sort of cpu_moe_ffn (experts in increasing id,
 *     pairs in increasing order), items of at most b pairs;
 *   expert products (store and SwiGLU/GeGLU, every weight type): FP32
 *     against float64, |err| <= 2e-5 * sum|terms| + 1e-6, and bit-identical
 *     whether a pair's item holds 1 or 8 pairs (batch invariance);
 *   combine: the k slots in increasing expert id, bit for bit. */
#include <string.h>

#include "cpu/cpu_internal.h"
#include "gpu_weights.h"

static const int k_types[] = {QT_F32,  QT_F16,  QT_BF16, QT_Q4_0, QT_Q4_1, QT_Q5_0, QT_Q5_1,
                              QT_Q8_0, QT_Q2_K, QT_Q3_K, QT_Q4_K, QT_Q5_K, QT_Q6_K};

static void test_route(int n, int X, int k, int norm) {
    float *lg = malloc(sizeof(float) * n * X);
    gt_fill(lg, (size_t)n * X, 4.0f);
    for (int t = 0; t < n; t++) {
        float *l = lg + (size_t)t * X;
        if (t % 3 == 0) /* ties: a run of equal logits among the largest */
            for (int e = 1; e < X && e < 2 * k; e += 2) l[e] = 9.0f;
        if (t % 5 == 1) l[t % X] = NAN; /* NaN ranks after every number */
        if (t % 7 == 2) l[(t + 1) % X] = 50.0f;
    }
    int32_t *ids = malloc(sizeof(int32_t) * n * k), *rid = malloc(sizeof(int32_t) * n * k);
    float *w = malloc(sizeof(float) * n * k), *rw = malloc(sizeof(float) * n * k);
    cpu_moe_cand *cand = malloc(sizeof *cand * X);
    for (int t = 0; t < n; t++)
        cpu_moe_route(lg + (size_t)t * X, X, k, norm, cand, rid + (size_t)t * k,
                      rw + (size_t)t * k);
    float *dl = gt_up(lg, sizeof(float) * n * X);
    int32_t *did = gt_dev(sizeof(int32_t) * n * k);
    float *dw = gt_dev(sizeof(float) * n * k);
    GT_OK(launch_moe_route(dl, X, n, X, k, norm, did, dw, 0));
    gt_down(ids, did, sizeof(int32_t) * n * k);
    gt_down(w, dw, sizeof(float) * n * k);
    int same = !memcmp(ids, rid, sizeof(int32_t) * n * k);
    double worst = 0;
    for (int i = 0; i < n * k; i++) {
        if (isnan(rw[i]) && isnan(w[i])) continue;
        gt_worst(&worst, fabs((double)w[i] - rw[i]) / (1e-6 * fabs(rw[i]) + 1e-30));
    }
    CHECKF(same, "route %d entries, top %d of %d (norm %d): experts differ from the CPU's", n, k, X,
           norm);
    CHECKF(worst <= 1.0, "route %d x top %d of %d (norm %d): weights off by %.3g x 1e-6", n, k, X,
           norm, worst);
    cudaFree(dl), cudaFree(did), cudaFree(dw);
    free(lg), free(ids), free(rid), free(w), free(rw), free(cand);
}

/* grouping: pairs of random experts (some experts unused, one crowded) */
static void test_group(int P, int X, int b) {
    int32_t *ids = malloc(sizeof(int32_t) * P), *order = malloc(sizeof(int32_t) * P);
    for (int p = 0; p < P; p++) ids[p] = p % 4 == 0 ? X / 2 : (int32_t)(gt_u32() % (uint32_t)X);
    const int mi = moe_max_items(P, X, b);
    moe_item *items = malloc(sizeof *items * mi);
    int32_t *did = gt_up(ids, sizeof(int32_t) * P), *dord = gt_dev(sizeof(int32_t) * P),
            *dn = gt_dev(4);
    moe_item *dit = gt_dev(sizeof *items * mi);
    GT_OK(launch_moe_group(did, P, X, b, dord, dit, dn, 0));
    int32_t n_items = -1;
    gt_down(&n_items, dn, 4);
    gt_down(order, dord, sizeof(int32_t) * P);
    gt_down(items, dit, sizeof *items * mi);
    /* the reference: experts in increasing id, pairs in increasing order */
    int ok = n_items >= 1 && n_items <= mi, at = 0, it = 0;
    for (int e = 0; e < X && ok; e++) {
        int first = at;
        for (int p = 0; p < P && ok; p++)
            if (ids[p] == e) ok = order[at++] == p;
        for (int j = first; j < at && ok; j += b, it++) {
            const int nn = at - j < b ? at - j : b;
            ok = it < n_items && items[it].expert == e && items[it].start == j && items[it].n == nn;
        }
    }
    ok = ok && it == n_items && at == P;
    CHECKF(ok, "group %d pairs over %d experts, items of %d: %d items (bound %d)", P, X, b, n_items,
           mi);
    cudaFree(did), cudaFree(dord), cudaFree(dn), cudaFree(dit);
    free(ids), free(order), free(items);
}

/* y[p] = expert ids[p]'s product of x[p / xdiv] (store), or act(gate) * up
 * (w2 given), through launch_moe_group's items of 8 and of 1; and the
 * items-free form (every pair of matrix 0) with 8 and 1 per item. */
static void test_products(int type, int act) {
    /* K: several x chunks for items of 8 (1024 wide) and of 1 (4096), the
     * last partial, so that their sums' order is really compared */
    const int X = 5, R = 44, K = 5376, n = 24, k = 2, P = n * k;
    host_w w, w2;
    make_w(&w, type, (int64_t)X * R, K);
    make_w(&w2, type, (int64_t)X * R, K);
    const char *name = quant_info(type)->name;
    const int64_t ldx = K + 32, ldy = R + 4;
    float *x = malloc(sizeof(float) * n * ldx);
    gt_fill(x, (size_t)n * ldx, 1.0f);
    /* expert 1 takes 14 pairs (two items of 8), the last expert some */
    int32_t ids[P];
    for (int t = 0; t < n; t++) {
        ids[t * k] = t < 14 ? 1 : t % X;
        ids[t * k + 1] = (t * 3 + 2) % X == ids[t * k] ? (t * 3 + 3) % X : (t * 3 + 2) % X;
    }
    float *dx = gt_up(x, sizeof(float) * n * ldx), *dy = gt_dev(sizeof(float) * P * ldy);
    int32_t *did = gt_up(ids, sizeof ids), *dord = gt_dev(sizeof(int32_t) * P), *dn = gt_dev(4);
    moe_item *dit = gt_dev(sizeof(moe_item) * moe_max_items(P, X, 1));
    float *y8 = malloc(sizeof(float) * P * ldy), *y1 = malloc(sizeof(float) * P * ldy);
    for (int mode = 0; mode < 3; mode++) { /* 0 store, 1 SwiGLU, 2 store without items */
        const bool glu = mode == 1, items = mode != 2;
        const int np = items ? P : n, xdiv = items ? k : 1;
        for (int bi = 0; bi < 2; bi++) {
            const int b = bi ? 1 : 8;
            if (items) GT_OK(launch_moe_group(did, P, X, b, dord, dit, dn, 0));
            GT_CUDA(cudaMemset(dy, 0xff, sizeof(float) * P * ldy)); /* NaN: unwritten shows */
            moe_gemv_args a;
            memset(&a, 0, sizeof a);
            a.w = &w.m;
            a.w2 = glu ? &w2.m : NULL;
            a.rows = R;
            a.x = dx;
            a.ldx = ldx;
            a.xdiv = xdiv;
            a.items = items ? dit : NULL;
            a.order = dord;
            a.n_items = dn;
            a.max_items = moe_max_items(P, X, b);
            a.n_pairs = np;
            a.b = b;
            a.y = dy;
            a.ldy = ldy;
            a.mode = glu ? GEMV_SWIGLU : GEMV_STORE;
            a.act = act;
            GT_OK(launch_moe_gemv(&a, 0));
            gt_down(bi ? y1 : y8, dy, sizeof(float) * P * ldy);
        }
        double worst = 0;
        for (int p = 0; p < np; p++) {
            const int e = items ? ids[p] : 0;
            const float *xv = x + (size_t)(p / xdiv) * ldx;
            for (int r = 0; r < R; r++) {
                const float *wr = w.deq + ((size_t)e * R + r) * K,
                            *ur = w2.deq + ((size_t)e * R + r) * K;
                double g = 0, u = 0, m = 0;
                for (int c = 0; c < K; c++) {
                    g += (double)wr[c] * xv[c];
                    m += fabs((double)wr[c] * xv[c]);
                    if (glu) u += (double)ur[c] * xv[c], m += fabs((double)ur[c] * xv[c]);
                }
                const double ref = glu ? (act ? gt_gelu(g) : gt_silu(g)) * u : g;
                const double mag = glu ? m * (fabs(u) + fabs(g)) + 1 : m;
                gt_worst(&worst, fabs(y8[(size_t)p * ldy + r] - ref) / (2e-5 * mag + 1e-6));
            }
        }
        int same = 1, untouched = 1;
        for (int p = 0; p < np; p++) {
            same &= !memcmp(y8 + (size_t)p * ldy, y1 + (size_t)p * ldy, sizeof(float) * R);
            const unsigned char *pad = (const unsigned char *)(y8 + (size_t)p * ldy + R);
            for (size_t i = 0; i < sizeof(float) * (ldy - R); i++) untouched &= pad[i] == 0xff;
        }
        CHECKF(untouched, "%s moe gemv mode %d: wrote past the rows", name, mode);
        CHECKF(worst <= 1.0, "%s moe gemv mode %d act %d: error %.3g x tolerance", name, mode, act,
               worst);
        CHECKF(same, "%s moe gemv mode %d: items of 8 and of 1 give different bits", name, mode);
    }
    cudaFree(dx), cudaFree(dy), cudaFree(did), cudaFree(dord), cudaFree(dn), cudaFree(dit);
    free(x), free(y8), free(y1);
    free_w(&w);
    free_w(&w2);
}

static void test_combine(int add) {
    const int n = 5, k = 3, dim = 300, ldd = 304, ldo = 310;
    float *d = malloc(sizeof(float) * n * k * ldd), *wt = malloc(sizeof(float) * n * k),
          *o0 = malloc(sizeof(float) * n * ldo), *o = malloc(sizeof(float) * n * ldo);
    int32_t ids[15];
    gt_fill(d, (size_t)n * k * ldd, 1.0f);
    gt_fill(wt, (size_t)n * k, 1.0f);
    gt_fill(o0, (size_t)n * ldo, 1.0f);
    for (int p = 0; p < n * k; p++) ids[p] = (int32_t)((p * 5 + 3) % 8); /* not in slot order */
    float *dd = gt_up(d, sizeof(float) * n * k * ldd), *dw = gt_up(wt, sizeof(float) * n * k),
          *dout = gt_up(o0, sizeof(float) * n * ldo);
    int32_t *did = gt_up(ids, sizeof ids);
    GT_OK(launch_moe_combine(dd, ldd, did, dw, n, k, dim, dout, ldo, add, 0));
    gt_down(o, dout, sizeof(float) * n * ldo);
    /* the reference in the kernel's order: slots by increasing expert id,
     * fused multiply-adds from 0 (so the order shows in the bits) */
    int bad = 0, untouched = 1;
    for (int t = 0; t < n; t++) {
        int sl[3] = {0, 1, 2};
        for (int a = 0; a < k; a++)
            for (int b = a + 1; b < k; b++)
                if (ids[t * k + sl[b]] < ids[t * k + sl[a]]) {
                    int tmp = sl[a];
                    sl[a] = sl[b], sl[b] = tmp;
                }
        for (int c = 0; c < dim; c++) {
            float s = 0.0f;
            for (int j = 0; j < k; j++) {
                const int p = t * k + sl[j];
                s = fmaf(wt[p], d[(size_t)p * ldd + c], s);
            }
            const float ref = add ? o0[(size_t)t * ldo + c] + s : s;
            bad += o[(size_t)t * ldo + c] != ref;
        }
        for (int c = dim; c < ldo; c++)
            untouched &= o[(size_t)t * ldo + c] == o0[(size_t)t * ldo + c];
    }
    CHECKF(bad == 0, "moe combine add %d: %d values differ from the slots in expert order", add,
           bad);
    CHECKF(untouched, "moe combine add %d: wrote past dim", add);
    cudaFree(dd), cudaFree(dw), cudaFree(dout), cudaFree(did);
    free(d), free(wt), free(o0), free(o);
}

static void test_refusals(void) {
    moe_gemv_args a;
    memset(&a, 0, sizeof a);
    CHECK(launch_moe_gemv(&a, 0) == M40LLM_ERR_INVALID_ARG);
    CHECK(launch_moe_route(NULL, 8, 1, 8, 2, 1, NULL, NULL, 0) == M40LLM_ERR_INVALID_ARG);
    float *l = gt_dev(64);
    int32_t *i = gt_dev(64);
    CHECK(launch_moe_route(l, 8, 1, 8, 9, 1, i, l, 0) == M40LLM_ERR_INVALID_ARG); /* k > X */
    CHECK(launch_moe_group(i, 0, 8, 8, i, (moe_item *)i, i, 0) == M40LLM_ERR_INVALID_ARG);
    CHECK(launch_moe_combine(l, 4, i, l, 1, 0, 4, l, 4, 0, 0) == M40LLM_ERR_INVALID_ARG);
    cudaFree(l), cudaFree(i);
}

int main(void) {
    gpu_test_require_device();
    const struct { int n, X, k; } routes[] = {{37, 8, 2}, {37, 128, 8}, {9, 160, 8}, {3, 6, 6}};
    for (size_t i = 0; i < sizeof routes / sizeof routes[0]; i++)
        for (int norm = 0; norm < 2; norm++)
            test_route(routes[i].n, routes[i].X, routes[i].k, norm);
    test_group(8, 128, 1);
    test_group(96, 8, 8);
    test_group(4096, 128, 8);
    test_group(300, 1000, 8);
    for (size_t i = 0; i < sizeof k_types / sizeof k_types[0]; i++)
        test_products(k_types[i], (int)(i % 2));
    test_products(QT_Q4_0, 1);
    test_combine(0);
    test_combine(1);
    test_refusals();
    return check_summary("test_gpu_moe");
}
