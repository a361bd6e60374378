/* Every CUDA kernel against a CPU reference.
 * Tolerances: repack/dequantize/row lookup are bit-exact with
 * quant_dequantize_row (same float operations); products and attention are
 * FP32 against float64 references: |err| <= 2e-5 * sum|terms| + 1e-6. */
#include <string.h>

#include "gpu_weights.h"

static const int k_types[] = {QT_F32,  QT_F16,  QT_BF16, QT_Q4_0, QT_Q4_1, QT_Q5_0, QT_Q5_1,
                              QT_Q8_0, QT_Q2_K, QT_Q3_K, QT_Q4_K, QT_Q5_K, QT_Q6_K};

static void test_layout(host_w *h) {
    const char *name = quant_info(h->type)->name;
    size_t n = (size_t)h->rows * h->cols;
    float *got = malloc(n * sizeof(float));
    float *dd = gt_dev(n * 4);
    GT_OK(launch_dequant(&h->m, dd, 0, 0));
    gt_down(got, dd, n * 4);
    size_t bad = 0;
    for (size_t i = 0; i < n; i++) bad += memcmp(&got[i], &h->deq[i], 4) != 0;
    CHECKF(bad == 0, "%s dequant f32: %zu of %zu values differ from quant_dequantize_row", name,
           bad, n);
    uint16_t *g16 = malloc(n * 2);
    GT_OK(launch_dequant(&h->m, dd, 1, 0));
    gt_down(g16, dd, n * 2);
    bad = 0;
    for (size_t i = 0; i < n; i++) bad += g16[i] != quant_f32_to_f16(h->deq[i]);
    CHECKF(bad == 0, "%s dequant f16: %zu differ", name, bad);
    int32_t ids[4] = {3, 0, (int32_t)h->rows - 1, 17};
    int32_t *di = gt_up(ids, sizeof ids);
    GT_OK(launch_get_rows(&h->m, di, 4, dd, 0));
    gt_down(got, dd, 4 * h->cols * 4);
    bad = 0;
    for (int i = 0; i < 4; i++)
        bad += memcmp(got + i * h->cols, h->deq + ids[i] * h->cols, h->cols * 4) != 0;
    CHECKF(bad == 0, "%s get_rows: %zu rows differ", name, bad);
    cudaFree(di);
    cudaFree(dd);
    free(g16);
    free(got);
}

/* the gated activation of the SwiGLU tests: 0 SiLU, 1 tanh GELU (GeGLU) */
static int g_act = 0;
static double act_d(double g) {
    return g_act ? gt_gelu(g) : gt_silu(g);
}

/* y = W x for nb vectors in every mode, against float64 */
static void test_gemv(host_w *h, host_w *h2, int nb, int mode, int norm) {
    const char *name = quant_info(h->type)->name;
    int64_t R = h->rows, K = h->cols, ldx = K + 32, ldy = R + 8;
    float *x = calloc((size_t)nb * ldx, 4), *gamma = malloc(K * 4),
          *y0 = malloc((size_t)nb * ldy * 4);
    gt_fill(x, (size_t)nb * ldx, 1.0f);
    gt_fill(gamma, K, 1.0f);
    gt_fill(y0, (size_t)nb * ldy, 1.0f);
    if (nb < 1 || R < 1) return;
    size_t nref = (size_t)nb * (size_t)R;
    double *ref = malloc(sizeof(double) * nref), *mag = malloc(sizeof(double) * nref);
    gemv_ref(h, h2, x, ldx, nb, norm ? gamma : NULL, mode, g_act, y0, ldy, ref, mag);
    float *dx = gt_up(x, (size_t)nb * ldx * 4), *dg = gt_up(gamma, K * 4),
          *dy = gt_dev((size_t)nb * ldy * 4);
    float *y = malloc((size_t)nb * ldy * 4);
    /* one vector: every single-vector kernel (warp-staged, block-staged,
     * persistent with its own grid and with one block, whose warps then
     * walk many row groups) */
    const int kcs[] = {GEMV_KERNEL_WARP, GEMV_KERNEL_STAGED, GEMV_KERNEL_PERSIST,
                       GEMV_KERNEL_PERSIST};
    for (int ki = 0; ki < (nb == 1 ? 4 : 1); ki++) {
        int kc = nb == 1 ? kcs[ki] : GEMV_KERNEL_AUTO;
        cudaMemcpy(dy, y0, (size_t)nb * ldy * 4, cudaMemcpyHostToDevice);
        gemv_args a = gt_gemv_args(h, h2, dx, ldx, nb, norm ? dg : NULL, dy, ldy, mode, g_act, kc);
        a.persist_max_blocks = ki == 3 ? 1 : 0;
        GT_OK(launch_gemv(&a, 0));
        gt_down(y, dy, (size_t)nb * ldy * 4);
        double worst = 0;
        int untouched_ok = 1;
        for (int b = 0; b < nb; b++) {
            for (int64_t r = 0; r < R; r++) {
                gt_worst(&worst,
                         fabs(y[b * ldy + r] - ref[b * R + r]) / (2e-5 * mag[b * R + r] + 1e-6));
            }
            for (int64_t r = R; r < ldy; r++) untouched_ok &= y[b * ldy + r] == y0[b * ldy + r];
        }
        CHECKF(worst <= 1.0,
               "%s %lldx%lld gemv kernel %d%s nb=%d mode=%d act=%d norm=%d: error %.3g x tolerance",
               name, (long long)R, (long long)K, kc, ki == 3 ? " (1 block)" : "", nb, mode, g_act,
               norm, worst);
        CHECKF(untouched_ok, "%s gemv nb=%d: wrote past the rows", name, nb);
    }
    cudaFree(dx);
    cudaFree(dg);
    cudaFree(dy);
    free(x), free(gamma), free(y0), free(ref), free(mag), free(y);
}

/* ---- rope + KV store: QKV epilogue of the GEMV and the prefill kernel ---- */
static void rope_ref(double *v, int n_heads, int hd, int n_rot, int pos, double base,
                     double scale) {
    for (int h = 0; h < n_heads; h++)
        for (int d = 0; d < n_rot; d += 2) {
            double th = pos * scale * pow(base, -(double)d / n_rot);
            double a = v[h * hd + d], b = v[h * hd + d + 1];
            v[h * hd + d] = a * cos(th) - b * sin(th);
            v[h * hd + d + 1] = a * sin(th) + b * cos(th);
        }
}

/* KV page size of the cache tests (a runtime value of the kernels) */
static int g_page_shift = M40_KV_PAGE_SHIFT;
#define PG (1 << g_page_shift)

/* via_gemv: 0 = the prefill rope kernel; 1 = the GEMV epilogue, 3 vectors
 * at once; 2 = the GEMV epilogue one vector at a time, with kernel choice kc
 * (and at most max_blocks blocks of the persistent kernel, 0: its own
 * grid) and weights of type wt, K wide */
static void test_qkv(int f16kv, int n_rot, int via_gemv, int kc, int max_blocks, int wt, int K) {
    const int nh = 4, nkv = 2, hd = 32, nb = 3, n_ctx = 128, n_seq = 3;
    const int rows = (nh + 2 * nkv) * hd, pps = n_ctx / PG;
    host_w w;
    make_w(&w, via_gemv == 2 ? wt : QT_F32, rows, K);
    float *x = malloc(sizeof(float) * nb * K);
    gt_fill(x, (size_t)nb * K, 1.0f);
    int32_t seqpos[6] = {0, 1, 2, 5, 70, 0};
    double vals[3][512], mag[3][512]; /* products, and the sums of their terms' magnitudes */
    for (int b = 0; b < nb; b++)
        for (int r = 0; r < rows; r++) {
            double a = 0, m = 0;
            for (int k = 0; k < K; k++) {
                a += (double)w.deq[(size_t)r * K + k] * x[b * K + k];
                m += fabs((double)w.deq[(size_t)r * K + k] * x[b * K + k]);
            }
            vals[b][r] = a, mag[b][r] = m;
        }
    float *xin = malloc(sizeof(float) * nb * rows); /* the prefill kernel reads products */
    for (int b = 0; b < nb; b++)
        for (int r = 0; r < rows; r++) xin[b * rows + r] = (float)vals[b][r];
    size_t elt = f16kv ? 2 : 4, layer = (size_t)n_seq * pps * nkv * PG * hd;
    void *dk = gt_dev(layer * elt), *dv = gt_dev(layer * elt);
    GT_CUDA(cudaMemset(dk, 0, layer * elt));
    GT_CUDA(cudaMemset(dv, 0, layer * elt));
    int32_t *pt = gt_dev(n_seq * pps * 4), *dsp = gt_up(seqpos, sizeof seqpos);
    GT_OK(launch_iota(pt, n_seq * pps, 0, 0));
    float *dq = gt_dev(nb * nh * hd * 4),
          *dx = gt_up(via_gemv ? x : xin, sizeof(float) * nb * (via_gemv ? K : rows));
    qkv_out o;
    memset(&o, 0, sizeof o);
    o.kv = (kv_view){dk, dv, pt, pps, nkv, hd, f16kv, g_page_shift};
    o.rope = (rope_cfg){nh, nkv, hd, n_rot, 10000.0f, 0.5f};
    o.seq = dsp;
    o.pos = dsp + 3;
    o.q = dq;
    o.ldq = nh * hd;
    if (via_gemv == 1) {
        gemv_args a;
        memset(&a, 0, sizeof a);
        a.w = &w.m;
        a.x = dx;
        a.ldx = K;
        a.nb = nb;
        a.mode = GEMV_QKV;
        a.qkv = &o;
        a.kernel = kc;
        GT_OK(launch_gemv(&a, 0));
    } else if (via_gemv == 2) {
        for (int b = 0; b < nb; b++) {
            qkv_out ob = o;
            ob.seq = dsp + b;
            ob.pos = dsp + 3 + b;
            ob.q = dq + b * nh * hd;
            gemv_args a;
            memset(&a, 0, sizeof a);
            a.w = &w.m;
            a.x = dx + b * K;
            a.ldx = K;
            a.nb = 1;
            a.mode = GEMV_QKV;
            a.qkv = &ob;
            a.kernel = kc;
            a.persist_max_blocks = max_blocks;
            GT_OK(launch_gemv(&a, 0));
        }
    } else {
        GT_OK(launch_rope_store(dx, rows, nb, &o, 0));
    }
    float q[3 * 128];
    gt_down(q, dq, sizeof q);
    uint8_t *hk = malloc(layer * elt), *hv = malloc(layer * elt);
    gt_down(hk, dk, layer * elt);
    gt_down(hv, dv, layer * elt);
    /* each error over its tolerance: q and f32 K/V 1e-4 + 2e-6 x the
     * magnitudes of the terms of its rope pair (sincos, FP32 products);
     * f16 K/V that plus f16 rounding (1e-3 relative) */
    double worst = 0;
    for (int b = 0; b < nb; b++) {
        int seq = seqpos[b], pos = seqpos[3 + b];
        rope_ref(vals[b], nh + nkv, hd, n_rot, pos, 10000.0,
                 0.5); /* q and k heads are contiguous */
        for (int i = 0; i < nh * hd; i++) {
            gt_worst(&worst, fabs(q[b * nh * hd + i] - vals[b][i]) /
                                 (1e-4 + 2e-6 * (mag[b][i] + mag[b][i ^ 1])));
        }
        for (int h = 0; h < nkv; h++)
            for (int d = 0; d < hd; d++) {
                size_t off = (((size_t)(seq * pps + pos / PG) * nkv + h) * PG + pos % PG) * hd + d;
                double kg = f16kv ? quant_f16_to_f32(((uint16_t *)hk)[off]) : ((float *)hk)[off];
                double vg = f16kv ? quant_f16_to_f32(((uint16_t *)hv)[off]) : ((float *)hv)[off];
                int ki = nh * hd + h * hd + d, vi = (nh + nkv) * hd + h * hd + d;
                double kr = vals[b][ki], vr = vals[b][vi];
                double tk =
                    1e-4 + 2e-6 * (mag[b][ki] + mag[b][ki ^ 1]) + (f16kv ? fabs(kr) * 1e-3 : 0.0);
                double tv = 1e-4 + 2e-6 * mag[b][vi] + (f16kv ? fabs(vr) * 1e-3 : 0.0);
                gt_worst(&worst, fabs(kg - kr) / tk);
                gt_worst(&worst, fabs(vg - vr) / tv);
            }
    }
    CHECKF(worst <= 1.0,
           "qkv %s (kernel %d, %d blocks, type %d, K %d), kv f16=%d, n_rot=%d: error %.3g x "
           "tolerance",
           via_gemv ? "gemv epilogue" : "rope_store", kc, max_blocks, wt, K, f16kv, n_rot, worst);
    free_w(&w);
    free(x), free(xin), free(hk), free(hv);
    cudaFree(dk), cudaFree(dv), cudaFree(pt), cudaFree(dsp), cudaFree(dq), cudaFree(dx);
}

/* ---- attention over a paged cache with several splits ----
 * entries at positions 0 and 4 fit one split (finished in place), 300 and
 * 999 are merged from several; G = nh / nkv query heads per KV head picks
 * the 4- or 8-head kernel, G > 8 runs in several head groups. window > 0:
 * keys pos - window + 1 .. pos (whole splits masked before it); softcap >
 * 0: scores c * tanh(s / c). */
static void test_attention_mods(int f16kv, int nh, int nkv, int hd, int max_splits, int threads,
                                int window, float softcap) {
    const int n_ctx = 1000, n_seq = 2, G = nh / nkv;
    attn_plan pl;
    GT_OK(attention_plan(nh, nkv, hd, n_ctx, max_splits, threads, &pl));
    CHECK(pl.n_split >= 2);
    int pps = (n_ctx + PG - 1) / PG;
    size_t layer = (size_t)n_seq * pps * nkv * PG * hd, elt = f16kv ? 2 : 4;
    float *kf = malloc(layer * 4), *vf = malloc(layer * 4);
    gt_fill(kf, layer, 1.0f);
    gt_fill(vf, layer, 1.0f);
    void *hk = malloc(layer * elt), *hv = malloc(layer * elt);
    for (size_t i = 0; i < layer; i++) {
        if (f16kv) {
            ((uint16_t *)hk)[i] = quant_f32_to_f16(kf[i]);
            ((uint16_t *)hv)[i] = quant_f32_to_f16(vf[i]);
            kf[i] = quant_f16_to_f32(((uint16_t *)hk)[i]);
            vf[i] = quant_f16_to_f32(((uint16_t *)hv)[i]);
        } else {
            ((float *)hk)[i] = kf[i];
            ((float *)hv)[i] = vf[i];
        }
    }
    /* a reversed page table: pages of a sequence need not be in order */
    int32_t *table = malloc(n_seq * pps * 4);
    for (int i = 0; i < n_seq * pps; i++) table[i] = n_seq * pps - 1 - i;
    const int n = 4;
    int32_t sp[8] = {0, 1, 0, 1, 999, 4, 0, 300};
    float *q = malloc(n * nh * hd * 4);
    gt_fill(q, n * nh * hd, 2.0f);
    void *dk = gt_up(hk, layer * elt), *dv = gt_up(hv, layer * elt);
    int32_t *dt = gt_up(table, n_seq * pps * 4), *dsp = gt_up(sp, sizeof sp);
    float *dq = gt_up(q, n * nh * hd * 4), *dout = gt_dev(n * nh * hd * 4);
    float *part = gt_dev(attention_partial_floats(&pl, n) * 4);
    size_t ncnt = attention_counters(&pl, n);
    unsigned *cnt = gt_dev(ncnt * 4);
    cudaMemset(cnt, 0, ncnt * 4);
    kv_view kv = {dk, dv, dt, pps, nkv, hd, f16kv, g_page_shift};
    float scale = 1.0f / sqrtf((float)hd);
    attn_mods md = {scale, softcap, window};
    /* twice: the split counters must be back at zero after a launch */
    float *out = malloc(n * nh * hd * 4), *out1 = malloc(n * nh * hd * 4);
    GT_OK(launch_attention(&pl, dq, &kv, dsp, dsp + n, n, &md, part, cnt, dout, -1, 0));
    gt_down(out1, dout, n * nh * hd * 4);
    GT_OK(launch_attention(&pl, dq, &kv, dsp, dsp + n, n, &md, part, cnt, dout, -1, 0));
    gt_down(out, dout, n * nh * hd * 4);
    CHECKF(!memcmp(out, out1, n * nh * hd * 4), "attention %d/%d/%d: a second launch differs", nh,
           nkv, hd);
    unsigned *hc = malloc(ncnt * 4);
    gt_down(hc, cnt, ncnt * 4);
    int nonzero = 0;
    for (size_t i = 0; i < ncnt; i++) nonzero += hc[i] != 0;
    CHECKF(nonzero == 0, "attention: %d split counters left nonzero", nonzero);
    free(hc), free(out1);
    double worst = 0;
    double *sc = malloc(sizeof(double) * n_ctx);
    for (int e = 0; e < n; e++) {
        int seq = sp[e], len = sp[n + e] + 1, lo = window > 0 && len > window ? len - window : 0;
        for (int h = 0; h < nh; h++) {
            int kh = h / G;
            double mx = -1e300, den = 0;
            for (int p = lo; p < len; p++) {
                size_t row = (((size_t)table[seq * pps + p / PG] * nkv + kh) * PG + p % PG) * hd;
                double s = 0;
                for (int d = 0; d < hd; d++) s += (double)q[(e * nh + h) * hd + d] * kf[row + d];
                sc[p] = s * scale;
                if (softcap > 0) sc[p] = softcap * tanh(sc[p] / softcap);
                if (sc[p] > mx) mx = sc[p];
            }
            for (int p = lo; p < len; p++) den += (sc[p] = exp(sc[p] - mx));
            for (int d = 0; d < hd; d++) {
                double a = 0;
                for (int p = lo; p < len; p++) {
                    size_t row =
                        (((size_t)table[seq * pps + p / PG] * nkv + kh) * PG + p % PG) * hd;
                    a += sc[p] * vf[row + d];
                }
                double err = fabs(out[(e * nh + h) * hd + d] - a / den);
                if (!(err <= worst)) worst = err;
            }
        }
    }
    CHECKF(worst <= 2e-5,
           "attention kv f16=%d heads %d/%d hd %d, %d threads, window %d, soft-cap %g: max error "
           "%.3g (tolerance 2e-5)",
           f16kv, nh, nkv, hd, threads, window, (double)softcap, worst);
    free(kf), free(vf), free(hk), free(hv), free(table), free(q), free(out), free(sc);
    cudaFree(dk), cudaFree(dv), cudaFree(dt), cudaFree(dsp), cudaFree(dq), cudaFree(dout),
        cudaFree(part), cudaFree(cnt);
}

static void test_attention(int f16kv, int nh, int nkv, int hd, int max_splits, int threads) {
    test_attention_mods(f16kv, nh, nkv, hd, max_splits, threads, 0, 0.0f);
}

static void test_small_kernels(void) {
    const int n = 5, dim = 300, ld = 320;
    float *x = malloc(n * ld * 4), *g = malloc(dim * 4);
    gt_fill(x, n * ld, 3.0f);
    gt_fill(g, dim, 1.0f);
    float *dx = gt_up(x, n * ld * 4), *dg = gt_up(g, dim * 4), *do32 = gt_dev(n * ld * 4);
    uint16_t *do16 = gt_dev(n * ld * 2);
    GT_OK(launch_rmsnorm(dx, NULL, ld, dg, 1e-5f, n, dim, do32, do16, ld, 0));
    float *o = malloc(n * ld * 4);
    uint16_t *o16 = malloc(n * ld * 2);
    gt_down(o, do32, n * ld * 4);
    gt_down(o16, do16, n * ld * 2);
    double w1 = 0;
    int bad16 = 0;
    for (int r = 0; r < n; r++) {
        double ss = 0;
        for (int i = 0; i < dim; i++) ss += (double)x[r * ld + i] * x[r * ld + i];
        double s = 1.0 / sqrt(ss / dim + 1e-5);
        for (int i = 0; i < dim; i++) {
            double ref = x[r * ld + i] * s * g[i];
            double e = fabs(o[r * ld + i] - ref) / (fabs(ref) + 1e-6);
            if (!(e <= w1)) w1 = e;
            bad16 += o16[r * ld + i] != quant_f32_to_f16(o[r * ld + i]);
        }
    }
    CHECKF(w1 <= 1e-5, "rmsnorm relative error %.3g", w1);
    CHECKF(bad16 == 0, "rmsnorm f16 output: %d differ from f16(f32 output)", bad16);
    /* swiglu, geglu */
    for (g_act = 0; g_act < 2; g_act++) {
        GT_OK(launch_swiglu(dx, dx + dim, ld, n, dim - 40 > 0 ? 20 : 1, g_act, do32, NULL, ld, 0));
        gt_down(o, do32, n * ld * 4);
        double w2 = 0;
        for (int r = 0; r < n; r++)
            for (int i = 0; i < 20; i++) {
                double ref = act_d(x[r * ld + i]) * x[r * ld + dim + i];
                double e = fabs(o[r * ld + i] - ref) / (fabs(ref) + 1e-6);
                if (!(e <= w2)) w2 = e;
            }
        CHECKF(w2 <= 1e-5, "swiglu (act %d) relative error %.3g", g_act, w2);
    }
    g_act = 0;
    /* to_f16 and gather */
    GT_OK(launch_to_f16(dx, ld, n, dim, do16, dim, 0));
    gt_down(o16, do16, n * dim * 2);
    bad16 = 0;
    for (int r = 0; r < n; r++)
        for (int i = 0; i < dim; i++) bad16 += o16[r * dim + i] != quant_f32_to_f16(x[r * ld + i]);
    CHECKF(bad16 == 0, "to_f16: %d differ", bad16);
    int32_t idx[3] = {4, 0, 2};
    int32_t *di = gt_up(idx, sizeof idx);
    GT_OK(launch_gather_rows(dx, ld, di, 3, dim, do32, dim, 0));
    gt_down(o, do32, 3 * dim * 4);
    int badg = 0;
    for (int r = 0; r < 3; r++) badg += memcmp(o + r * dim, x + idx[r] * ld, dim * 4) != 0;
    CHECKF(badg == 0, "gather: %d rows differ", badg);
    /* argmax with ties: lowest index wins */
    const int V = 5000;
    float *l = malloc(3 * V * 4);
    gt_fill(l, 3 * V, 1.0f);
    l[1234] = 7.0f;
    l[4321] = 7.0f; /* row 0: tie, 1234 */
    l[V + V - 1] = 9.0f;
    for (int i = 0; i < V; i++) l[2 * V + i] = -1.0f; /* row 2: all equal -> 0 */
    float *dl = gt_up(l, 3 * V * 4);
    int32_t *dids = gt_dev(12), ids[3];
    GT_OK(launch_argmax(dl, V, 3, V, dids, 0));
    gt_down(ids, dids, 12);
    CHECKF(ids[0] == 1234 && ids[1] == V - 1 && ids[2] == 0, "argmax: %d %d %d", ids[0], ids[1],
           ids[2]);
    free(x), free(g), free(o), free(o16), free(l);
    cudaFree(dx), cudaFree(dg), cudaFree(do32), cudaFree(do16), cudaFree(di), cudaFree(dl),
        cudaFree(dids);
}

int main(void) {
    gpu_test_require_device();
    for (size_t i = 0; i < sizeof k_types / sizeof k_types[0]; i++) {
        host_w w, w2;
        make_w(&w, k_types[i], 44, 512);
        make_w(&w2, k_types[i], 44, 512);
        test_layout(&w);
        int nbs[] = {1, 3, 8};
        for (int j = 0; j < 3; j++) test_gemv(&w, NULL, nbs[j], GEMV_STORE, 0);
        test_gemv(&w, NULL, 2, GEMV_ADD, 0);
        test_gemv(&w, NULL, 1, GEMV_STORE, 1);
        test_gemv(&w, &w2, 1, GEMV_SWIGLU, 1);
        test_gemv(&w, &w2, 5, GEMV_SWIGLU, 0);
        free_w(&w);
        free_w(&w2);
    }
    /* a long row: x staged in several chunks; one vector's residual add
     * cut into K slices (the persistent kernel: 4096, 4096, 1024) */
    host_w wl;
    make_w(&wl, QT_Q4_0, 20, 9216);
    test_gemv(&wl, NULL, 1, GEMV_STORE, 1);
    test_gemv(&wl, NULL, 1, GEMV_ADD, 0);
    test_gemv(&wl, NULL, 8, GEMV_ADD, 0);
    free_w(&wl);
    /* the persistent kernel's types at a 7B layer's input width: row groups
     * past the last row, 1024-wide K slices, a whole x of 4096 staged; and
     * at 4608, the wide blocks on the general walk (a partial last step;
     * Q4_K and Q6_K: their h looked up from the clamped offsets) */
    const struct {
        int type, K;
    } wide[] = {{QT_F16, 4096},  {QT_Q4_0, 4096}, {QT_Q4_1, 4096}, {QT_Q8_0, 4096},
                {QT_Q4_K, 4096}, {QT_Q6_K, 4096}, {QT_Q4_0, 4608}, {QT_Q8_0, 4608},
                {QT_Q4_K, 4608}, {QT_Q6_K, 4608}};
    for (size_t i = 0; i < sizeof wide / sizeof wide[0]; i++) {
        host_w w, w2;
        make_w(&w, wide[i].type, 70, wide[i].K);
        make_w(&w2, wide[i].type, 70, wide[i].K);
        test_gemv(&w, NULL, 1, GEMV_ADD, 0);
        test_gemv(&w, NULL, 1, GEMV_STORE, 1);
        test_gemv(&w, &w2, 1, GEMV_SWIGLU, 1);
        free_w(&w);
        free_w(&w2);
    }
    /* GeGLU in every kernel family's epilogue (single-vector kernels and
     * the batched one) */
    g_act = 1;
    const int geglu_types[] = {QT_F16, QT_Q4_0, QT_Q8_0, QT_Q4_K, QT_Q6_K};
    for (size_t i = 0; i < sizeof geglu_types / sizeof geglu_types[0]; i++) {
        host_w w, w2;
        make_w(&w, geglu_types[i], 70, 4096);
        make_w(&w2, geglu_types[i], 70, 4096);
        test_gemv(&w, &w2, 1, GEMV_SWIGLU, 1);
        test_gemv(&w, &w2, 4, GEMV_SWIGLU, 1);
        free_w(&w);
        free_w(&w2);
    }
    g_act = 0;
    for (int f16 = 0; f16 < 2; f16++) {
        test_qkv(f16, 32, 1, GEMV_KERNEL_AUTO, 0, QT_F32, 256);
        test_qkv(f16, 16, 0, GEMV_KERNEL_AUTO, 0, QT_F32, 256);
        test_qkv(f16, 32, 2, GEMV_KERNEL_WARP, 0, QT_Q4_0, 256);
        test_qkv(f16, 32, 2, GEMV_KERNEL_STAGED, 0, QT_Q4_0, 256);
        test_qkv(f16, 32, 2, GEMV_KERNEL_PERSIST, 0, QT_Q4_0, 256);
        /* a 7B layer's width, for each of the persistent kernel's types
         * (the quantized ones: the wide blocks and the whole-step walk),
         * with its own grid and with one block (each warp then walks
         * several row groups); and a width of partial steps */
        const int qkv_types[] = {QT_Q4_0, QT_Q4_1, QT_Q8_0, QT_Q4_K, QT_Q6_K, QT_F16};
        for (size_t t = 0; t < sizeof qkv_types / sizeof qkv_types[0]; t++)
            for (int mb = 0; mb < 2; mb++)
                test_qkv(f16, 32, 2, GEMV_KERNEL_PERSIST, mb, qkv_types[t], 4096);
        test_qkv(f16, 32, 2, GEMV_KERNEL_PERSIST, 0, QT_Q4_0, 4608);
        /* 128-thread blocks (prefill) and 512 (decode: 128-position splits) */
        for (int nt = 128; nt <= 512; nt += 384) {
            test_attention(f16, 8, 2, 64, 8, nt);   /* 4 heads per KV head, 128-position splits */
            test_attention(f16, 9, 3, 64, 256, nt); /* SmolLM2's 3, 32 positions at 128 threads */
            test_attention(f16, 8, 1, 128, 8, nt);  /* 8 */
            test_attention(f16, 12, 1, 128, 8, nt); /* 12: groups of 8 and 4 */
            test_attention(f16, 4, 4, 256, 20, nt); /* widest head */
            /* 7 query heads a KV head (a half of the 512-thread V phase
             * with 3 of its 4), head dim 96 (dim groups past it idle) */
            test_attention(f16, 14, 2, 96, 8, nt);
        }
        /* 256-position splits of 512 threads: two passes of the scores */
        test_attention(f16, 8, 2, 64, 4, 512);
        test_attention(f16, 8, 2, 128, 4, 512);
        /* sliding windows (4: inside one split; 100: the long entries'
         * early splits wholly masked; 2000: none) and soft-capping */
        for (int nt = 128; nt <= 512; nt += 384) {
            test_attention_mods(f16, 8, 2, 64, 8, nt, 4, 0.0f);
            test_attention_mods(f16, 8, 2, 64, 256, nt, 100, 0.0f);
            test_attention_mods(f16, 9, 3, 64, 256, nt, 100, 0.5f);
            test_attention_mods(f16, 4, 1, 256, 20, nt, 2000, 50.0f);
            test_attention_mods(f16, 8, 1, 128, 8, nt, 0, 0.3f);
        }
    }
    /* 16-position pages: the stores and the attention's row offsets */
    g_page_shift = 4;
    for (int f16 = 0; f16 < 2; f16++) {
        test_qkv(f16, 32, 1, GEMV_KERNEL_AUTO, 0, QT_F32, 256);
        test_qkv(f16, 16, 0, GEMV_KERNEL_AUTO, 0, QT_F32, 256);
        test_qkv(f16, 32, 2, GEMV_KERNEL_PERSIST, 0, QT_Q4_0, 4096);
        test_attention(f16, 8, 2, 64, 8, 128);
        test_attention(f16, 9, 3, 64, 256, 512);
    }
    g_page_shift = M40_KV_PAGE_SHIFT;
    test_small_kernels();
    return check_summary("test_gpu_kernels");
}
