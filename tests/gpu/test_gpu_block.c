/* The block steps of the model variants (src/cuda/block_ops.cu) against
 * float64 references written from the CPU backend's definitions: the QKV
 * post-processing (bias, q/k RMSNorm, adjacent-pair or NeoX RoPE with
 * linear scaling, frequency factors or YaRN, partial rotation, KV store in
 * f32 or f16), the residual add with bias and post-norm, the embedding
 * scale and soft-capping.
 * Tolerance: |err| <= 1e-4 (1 + |ref|), plus f16 rounding (1e-3 |ref|) for
 * an f16 cache. */
#include <string.h>

#include "cuda/cuda_internal.h"
#include "gpu_test.h"
#include "quant.h"

enum { NH = 4, NKV = 2, NB = 3, PAGE_SHIFT = 4, PAGE = 1 << PAGE_SHIFT, CTX = 128 };

typedef struct qkv_case {
    int hd, n_rot, neox, bias, norm, factors, yarn, f16kv;
} qkv_case;

/* pair i's angle as the CPU backend's cpu_rope_table computes it */
static void ref_sincos(const qkv_case *c, const float *ff, double base, double scale, double lo,
                       double hi, double mscale, int pos, int i, double *sn, double *cs) {
    double ex = (double)pos * pow(base, -2.0 * i / c->n_rot), theta, m = 1.0;
    if (c->yarn) {
        double ramp = (i - lo) / (hi - lo > 0.001 ? hi - lo : 0.001);
        double mix = 1.0 - (ramp < 0 ? 0 : ramp > 1 ? 1 : ramp);
        theta = ex * scale * (1 - mix) + ex * mix;
        m = mscale;
    } else {
        theta = ex * scale;
        if (ff) theta /= ff[i], m = mscale; /* LongRoPE: factors and the attention factor */
    }
    *sn = sin(theta) * m;
    *cs = cos(theta) * m;
}

static void test_qkv_post(const qkv_case *c) {
    const int hd = c->hd, rows = (NH + 2 * NKV) * hd, ld = rows + 8, pps = CTX / PAGE;
    const int n_seq = 2;
    const double base = 10000.0, scale = 0.5, lo = 3, hi = 9, mscale = 1.1386;
    float *x = malloc(sizeof(float) * NB * ld), *bias = malloc(sizeof(float) * rows);
    float qn[256], kn[256], ff[128];
    gt_fill(x, (size_t)NB * ld, 2.0f);
    gt_fill(bias, rows, 0.5f);
    for (int d = 0; d < hd; d++) qn[d] = 1.0f + 0.5f * gt_uniform(), kn[d] = 1.0f + gt_uniform();
    for (int i = 0; i < c->n_rot / 2; i++) ff[i] = 1.0f + 7.0f * (gt_uniform() + 1.0f);
    int32_t sp[2 * NB] = {0, 1, 0, 3, 70, 127}; /* seq[b], then pos[b] */
    size_t layer = (size_t)n_seq * pps * NKV * PAGE * hd, elt = c->f16kv ? 2 : 4;
    void *dk = gt_dev(layer * elt), *dv = gt_dev(layer * elt);
    GT_CUDA(cudaMemset(dk, 0, layer * elt));
    GT_CUDA(cudaMemset(dv, 0, layer * elt));
    int32_t *pt = gt_dev((size_t)n_seq * pps * 4), *dsp = gt_up(sp, sizeof sp);
    GT_OK(launch_iota(pt, n_seq * pps, 0, 0));
    float *dx = gt_up(x, sizeof(float) * NB * ld), *dq = gt_dev(sizeof(float) * NB * NH * hd);
    float *db = gt_up(bias, sizeof(float) * rows), *dqn = gt_up(qn, sizeof qn),
          *dkn = gt_up(kn, sizeof kn), *dff = gt_up(ff, sizeof ff);
    qkv_out o;
    memset(&o, 0, sizeof o);
    o.kv = (kv_view){dk, dv, pt, pps, NKV, hd, c->f16kv, PAGE_SHIFT};
    o.rope = (rope_cfg){
        NH,          NKV,          hd,        c->n_rot,
        (float)base, (float)scale, c->neox,   c->factors ? dff : NULL,
        c->yarn,     (float)lo,    (float)hi, c->yarn || c->factors ? (float)mscale : 0.0f};
    o.seq = dsp;
    o.pos = dsp + NB;
    o.q = dq;
    o.ldq = NH * hd;
    o.bias = c->bias ? db : NULL;
    o.q_norm = c->norm ? dqn : NULL;
    o.k_norm = c->norm ? dkn : NULL;
    o.eps = 1e-6f;
    GT_OK(launch_rope_store(dx, ld, NB, &o, 0));
    float *q = malloc(sizeof(float) * NB * NH * hd);
    uint8_t *hk = malloc(layer * elt), *hv = malloc(layer * elt);
    gt_down(q, dq, sizeof(float) * NB * NH * hd);
    gt_down(hk, dk, layer * elt);
    gt_down(hv, dv, layer * elt);
    double worst = 0, v[256];
    for (int b = 0; b < NB; b++) {
        const int seq = sp[b], pos = sp[NB + b];
        for (int h = 0; h < NH + 2 * NKV; h++) {
            const int region = h < NH ? 0 : h < NH + NKV ? 1 : 2;
            const int head = region == 0 ? h : region == 1 ? h - NH : h - NH - NKV;
            for (int d = 0; d < hd; d++)
                v[d] = (double)x[b * ld + h * hd + d] + (c->bias ? bias[h * hd + d] : 0.0);
            if (c->norm && region < 2) {
                double ss = 0;
                for (int d = 0; d < hd; d++) ss += v[d] * v[d];
                double s = 1.0 / sqrt(ss / hd + 1e-6);
                for (int d = 0; d < hd; d++) v[d] *= s * (region == 0 ? qn[d] : kn[d]);
            }
            if (region < 2) {
                const int half = c->n_rot / 2;
                for (int i = 0; i < half; i++) {
                    int a = c->neox ? i : 2 * i, e = c->neox ? i + half : 2 * i + 1;
                    double sn, cs;
                    ref_sincos(c, c->factors ? ff : NULL, base, scale, lo, hi, mscale, pos, i, &sn,
                               &cs);
                    double x0 = v[a], x1 = v[e];
                    v[a] = x0 * cs - x1 * sn;
                    v[e] = x0 * sn + x1 * cs;
                }
            }
            for (int d = 0; d < hd; d++) {
                double got, tol = 1e-4 * (1.0 + fabs(v[d]));
                if (region == 0) {
                    got = q[(size_t)b * NH * hd + h * hd + d];
                } else {
                    size_t off =
                        ((((size_t)seq * pps + pos / PAGE) * NKV + head) * PAGE + pos % PAGE) * hd +
                        d;
                    const uint8_t *src = region == 1 ? hk : hv;
                    got = c->f16kv ? quant_f16_to_f32(((const uint16_t *)src)[off])
                                   : ((const float *)src)[off];
                    if (c->f16kv) tol += 1e-3 * fabs(v[d]);
                }
                gt_worst(&worst, fabs(got - v[d]) / tol);
            }
        }
    }
    CHECKF(
        worst <= 1.0,
        "qkv post hd %d n_rot %d neox %d bias %d norm %d factors %d yarn %d f16 %d: error %.3g x "
        "tolerance",
        hd, c->n_rot, c->neox, c->bias, c->norm, c->factors, c->yarn, c->f16kv, worst);
    free(x), free(bias), free(q), free(hk), free(hv);
    cudaFree(dk), cudaFree(dv), cudaFree(pt), cudaFree(dsp), cudaFree(dx), cudaFree(dq);
    cudaFree(db), cudaFree(dqn), cudaFree(dkn), cudaFree(dff);
}

/* x += post(y + bias), and y left holding y + bias */
static void test_residual(int with_bias, int with_post) {
    const int n = 5, dim = 640, ldx = 648, ldy = 656;
    float *x = malloc(sizeof(float) * n * ldx), *y = malloc(sizeof(float) * n * ldy);
    float *bias = malloc(sizeof(float) * dim), *g = malloc(sizeof(float) * dim);
    gt_fill(x, (size_t)n * ldx, 1.0f);
    gt_fill(y, (size_t)n * ldy, 3.0f);
    gt_fill(bias, dim, 0.5f);
    gt_fill(g, dim, 1.0f);
    float *dx = gt_up(x, sizeof(float) * n * ldx), *dy = gt_up(y, sizeof(float) * n * ldy);
    float *db = gt_up(bias, sizeof(float) * dim), *dg = gt_up(g, sizeof(float) * dim);
    GT_OK(launch_residual(dx, ldx, dy, ldy, with_bias ? db : NULL, with_post ? dg : NULL, 1e-6f, n,
                          dim, 0));
    float *ox = malloc(sizeof(float) * n * ldx), *oy = malloc(sizeof(float) * n * ldy);
    gt_down(ox, dx, sizeof(float) * n * ldx);
    gt_down(oy, dy, sizeof(float) * n * ldy);
    double worst = 0;
    int untouched = 1;
    for (int r = 0; r < n; r++) {
        double t[640], ss = 0;
        for (int i = 0; i < dim; i++) {
            t[i] = (double)y[r * ldy + i] + (with_bias ? bias[i] : 0.0);
            ss += t[i] * t[i];
        }
        double s = with_post ? 1.0 / sqrt(ss / dim + 1e-6) : 1.0;
        for (int i = 0; i < dim; i++) {
            double ref = x[r * ldx + i] + t[i] * s * (with_post ? g[i] : 1.0);
            gt_worst(&worst, fabs(ox[r * ldx + i] - ref) / (1e-5 * (1.0 + fabs(ref))));
            gt_worst(&worst, fabs(oy[r * ldy + i] - t[i]) / (1e-5 * (1.0 + fabs(t[i]))));
        }
        for (int i = dim; i < ldx; i++) untouched &= ox[r * ldx + i] == x[r * ldx + i];
    }
    CHECKF(worst <= 1.0, "residual bias %d post %d: error %.3g x tolerance", with_bias, with_post,
           worst);
    CHECKF(untouched, "residual: wrote past the row");
    free(x), free(y), free(bias), free(g), free(ox), free(oy);
    cudaFree(dx), cudaFree(dy), cudaFree(db), cudaFree(dg);
}

static void test_scale_softcap(void) {
    const int n = 3, dim = 70000, ld = 70016; /* wider than one grid row of blocks covers */
    float *x = malloc(sizeof(float) * n * ld), *o = malloc(sizeof(float) * n * ld);
    gt_fill(x, (size_t)n * ld, 100.0f);
    float *dx = gt_up(x, sizeof(float) * n * ld);
    GT_OK(launch_scale(dx, ld, n, dim, 25.29822f, 0));
    gt_down(o, dx, sizeof(float) * n * ld);
    double w1 = 0;
    for (int r = 0; r < n; r++)
        for (int i = 0; i < ld; i++) {
            double ref = i < dim ? (double)x[r * ld + i] * 25.29822f : x[r * ld + i];
            gt_worst(&w1, fabs(o[r * ld + i] - ref) / (1e-6 * (1.0 + fabs(ref))));
        }
    CHECKF(w1 <= 1.0, "scale: error %.3g x tolerance", w1);
    GT_CUDA(cudaMemcpy(dx, x, sizeof(float) * n * ld, cudaMemcpyHostToDevice));
    GT_OK(launch_softcap(dx, ld, n, dim, 30.0f, 0));
    gt_down(o, dx, sizeof(float) * n * ld);
    double w2 = 0;
    for (int r = 0; r < n; r++)
        for (int i = 0; i < ld; i++) {
            double ref = i < dim ? 30.0 * tanh(x[r * ld + i] / 30.0) : x[r * ld + i];
            gt_worst(&w2, fabs(o[r * ld + i] - ref) / (1e-5 * (1.0 + fabs(ref))));
        }
    CHECKF(w2 <= 1.0, "softcap: error %.3g x tolerance", w2);
    CHECK(launch_softcap(dx, ld, n, dim, 0.0f, 0) != 0); /* no cap is a caller's error */
    /* the launchers refuse what they cannot do, with an error code */
    CHECK(launch_residual(dx, dim - 1, dx, ld, NULL, NULL, 1e-6f, n, dim, 0) ==
          M40LLM_ERR_INVALID_ARG);
    CHECK(launch_swiglu(dx, dx, ld, n, 16, 2, dx, NULL, ld, 0) == M40LLM_ERR_INVALID_ARG);
    qkv_out qo;
    memset(&qo, 0, sizeof qo);
    qo.rope = (rope_cfg){1, 1, 512, 0, 10000.0f, 1.0f, 1, NULL, 0, 0.0f, 0.0f, 0.0f};
    qo.q = dx;
    CHECK(launch_rope_store(dx, ld, 1, &qo, 0) == M40LLM_ERR_UNSUPPORTED); /* NeoX, head dim 512 */
    CHECK(launch_rope_store(NULL, ld, 1, &qo, 0) == M40LLM_ERR_INVALID_ARG);
    gpu_matrix wm; /* never read: the kernel choice is refused first */
    memset(&wm, 0, sizeof wm);
    gemv_args a;
    memset(&a, 0, sizeof a);
    a.w = &wm;
    a.x = dx;
    a.y = dx;
    a.nb = 1;
    a.kernel = 9;
    CHECK(launch_gemv(&a, 0) == M40LLM_ERR_INVALID_ARG);
    CHECKF(strstr(m40llm_last_error(), "kernel 9") != NULL, "%s", m40llm_last_error());
    free(x), free(o);
    cudaFree(dx);
}

int main(void) {
    gpu_test_require_device();
    const int hds[] = {32, 128, 256};
    for (int f16 = 0; f16 < 2; f16++)
        for (int hi = 0; hi < 3; hi++) {
            const int hd = hds[hi];
            /* every switch alone, then the architectures' combinations */
            const qkv_case cs[] = {
                {hd, hd, 1, 0, 0, 0, 0, f16}, /* NeoX alone */
                {hd, hd, 0, 1, 0, 0, 0, f16}, /* bias, adjacent pairs */
                {hd, hd, 0, 0, 1, 0, 0, f16}, /* q/k norm */
                {hd, hd, 0, 0, 0, 1, 0, f16}, /* factors, plain kernel (llama3) */
                {hd, hd, 0, 0, 0, 0, 1, f16}, /* YaRN, plain kernel */
                {hd, hd, 1, 1, 0, 0, 0, f16}, /* qwen2 */
                {hd, hd, 1, 1, 0, 0, 1, f16}, /* qwen2 + YaRN */
                {hd, hd, 1, 0, 1, 0, 0, f16}, /* qwen3, gemma3 */
                {hd, hd / 2, 1, 0, 0, 1, 0,
                 f16}, /* phi3: partial rotation, LongRoPE-like factors */
                {hd, hd / 2, 0, 1, 1, 1, 0, f16}, /* everything at once */
            };
            for (size_t i = 0; i < sizeof cs / sizeof cs[0]; i++) test_qkv_post(&cs[i]);
        }
    for (int b = 0; b < 2; b++)
        for (int p = 0; p < 2; p++) test_residual(b, p);
    test_scale_softcap();
    return check_summary("test_gpu_block");
}
