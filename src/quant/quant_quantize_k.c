/* Reference (non-imatrix) quantizers for the K-quant types. Each 256-value
 * super-block is cut into sub-blocks; each sub-block gets its best scale
 * (and min) by a small search that minimises the weighted squared error,
 * then the sub-block scales are themselves quantized to 4, 6 or 8 bits
 * against one FP16 super-scale, and the values re-rounded against the
 * scales as stored. Same algorithms and constants as ggml's
 * quantize_row_*_ref, so the blocks match what llama-quantize writes. */
#include <math.h>

#include "err.h"
#include "quant_internal.h"

#define GROUP_MAX_EPS 1e-15f
#define KQ_MAXN       32 /* longest sub-block any K-quant searches */

static int kclamp(int v, int lo, int hi) {
    return v < lo ? lo : v > hi ? hi : v;
}

static uint16_t khalf(float v) {
    return quant_f32_to_f16(v);
}

static void kput_half(uint8_t *p, uint16_t h) {
    p[0] = (uint8_t)h;
    p[1] = (uint8_t)(h >> 8);
}

/* Asymmetric grid 0..nmax with scale and min (x ~ scale*L - the_min):
 * start from the min/max fit, then try nstep slightly different grid
 * widths and keep the weighted least-squares (scale, min) with the lowest
 * error. use_mad weighs absolute instead of squared errors. n <= KQ_MAXN. */
static float kq_qkx2(int n, int nmax, const float *x, const float *weights, uint8_t *L,
                     float *the_min, uint8_t *Laux, float rmin, float rdelta, int nstep,
                     bool use_mad) {
    float min = x[0], max = x[0];
    float sum_w = weights[0], sum_x = sum_w * x[0];
    for (int i = 1; i < n; i++) {
        if (x[i] < min) min = x[i];
        if (x[i] > max) max = x[i];
        float w = weights[i];
        sum_w += w;
        sum_x += w * x[i];
    }
    if (min > 0) min = 0;
    if (max == min) {
        for (int i = 0; i < n; i++) L[i] = 0;
        *the_min = -min;
        return 0.0f;
    }
    float iscale = nmax / (max - min);
    float scale = 1 / iscale;
    float best_mad = 0;
    for (int i = 0; i < n; i++) {
        int l = quant_nearest_int(iscale * (x[i] - min));
        L[i] = (uint8_t)kclamp(l, 0, nmax);
        float diff = scale * L[i] + min - x[i];
        diff = use_mad ? fabsf(diff) : diff * diff;
        best_mad += weights[i] * diff;
    }
    if (nstep < 1) {
        *the_min = -min;
        return scale;
    }
    /* Per-element products are formed in vectorizable loops; the sums stay
     * strictly sequential, so the result is the same float for float. */
    /* min (and so the grid origin) changes whenever a better fit is found */
    float wl[KQ_MAXN], wll[KQ_MAXN], wlx[KQ_MAXN];
    for (int is = 0; is <= nstep; is++) {
        iscale = (rmin + rdelta * is + nmax) / (max - min);
        for (int i = 0; i < n; i++) {
            int l = kclamp(quant_nearest_int(iscale * (x[i] - min)), 0, nmax);
            Laux[i] = (uint8_t)l;
            wl[i] = weights[i] * (float)l;
            wll[i] = wl[i] * (float)l;
            wlx[i] = wl[i] * x[i];
        }
        float sum_l = 0, sum_l2 = 0, sum_xl = 0;
        for (int i = 0; i < n; i++) {
            sum_l += wl[i];
            sum_l2 += wll[i];
            sum_xl += wlx[i];
        }
        float D = sum_w * sum_l2 - sum_l * sum_l;
        if (D > 0) {
            float this_scale = (sum_w * sum_xl - sum_x * sum_l) / D;
            float this_min = (sum_l2 * sum_x - sum_l * sum_xl) / D;
            if (this_min > 0) {
                this_min = 0;
                this_scale = sum_xl / sum_l2;
            }
            for (int i = 0; i < n; i++) {
                float diff = this_scale * (float)Laux[i] + this_min - x[i];
                diff = use_mad ? fabsf(diff) : diff * diff;
                wl[i] = weights[i] * diff;
            }
            float mad = 0;
            for (int i = 0; i < n; i++) mad += wl[i];
            if (mad < best_mad) {
                for (int i = 0; i < n; i++) L[i] = Laux[i];
                best_mad = mad;
                scale = this_scale;
                min = this_min;
            }
        }
    }
    *the_min = -min;
    return scale;
}

/* Shared start of the symmetric searches: the largest-magnitude value maps
 * to -nmax; L[i] = level + offset; returns false (L zeroed) for an all-tiny
 * group. max is that value, sumlx and suml2 the x^2-weighted sums. */
static bool kq_max_fit(int n, int nmax, const float *x, int8_t *L, int offset, float *max_out,
                       float *sumlx_out, float *suml2_out) {
    float max = 0, amax = 0;
    for (int i = 0; i < n; i++) {
        float ax = fabsf(x[i]);
        if (ax > amax) {
            amax = ax;
            max = x[i];
        }
    }
    if (amax < GROUP_MAX_EPS) {
        for (int i = 0; i < n; i++) L[i] = 0;
        return false;
    }
    float iscale = -nmax / max;
    float sumlx = 0, suml2 = 0;
    for (int i = 0; i < n; i++) {
        int l = kclamp(quant_nearest_int(iscale * x[i]), -nmax, nmax - 1);
        L[i] = (int8_t)(l + offset);
        float w = x[i] * x[i];
        sumlx += w * x[i] * l;
        suml2 += w * l * l;
    }
    *max_out = max;
    *sumlx_out = sumlx;
    *suml2_out = suml2;
    return true;
}

/* Symmetric grid -nmax..nmax-1 (stored +nmax): the largest-magnitude value
 * maps to -nmax; 18 nearby grid widths are tried, keeping the one that
 * maximises the weighted correlation (weights x^2, rmse_type 1). */
static float kq_qx(int n, int nmax, const float *x, int8_t *L) {
    float max, sumlx, suml2;
    if (!kq_max_fit(n, nmax, x, L, nmax, &max, &sumlx, &suml2)) return 0.0f;
    float scale = suml2 ? sumlx / suml2 : 0.0f;
    float best = scale * sumlx;
    for (int is = -9; is <= 9; is++) {
        if (is == 0) continue;
        const float iscale = -(nmax + 0.1f * is) / max;
        /* products vectorized, sums sequential (same floats as one loop) */
        float tlx[KQ_MAXN], tl2[KQ_MAXN];
        for (int i = 0; i < n; i++) {
            const float l = (float)kclamp(quant_nearest_int(iscale * x[i]), -nmax, nmax - 1);
            const float w = x[i] * x[i];
            tlx[i] = w * x[i] * l;
            tl2[i] = w * l * l;
        }
        sumlx = suml2 = 0;
        for (int i = 0; i < n; i++) {
            sumlx += tlx[i];
            suml2 += tl2[i];
        }
        if (suml2 > 0 && sumlx * sumlx > best * suml2) {
            for (int i = 0; i < n; i++) {
                int l = quant_nearest_int(iscale * x[i]);
                L[i] = (int8_t)(nmax + kclamp(l, -nmax, nmax - 1));
            }
            scale = sumlx / suml2;
            best = scale * sumlx;
        }
    }
    return scale;
}

/* Symmetric grid for Q3_K: start from the max fit, then move single values
 * to the level that lowers the x^2-weighted error (up to 5 passes). */
static float kq_q3(int n, int nmax, const float *x, int8_t *L) {
    float max, sumlx, suml2;
    if (!kq_max_fit(n, nmax, x, L, 0, &max, &sumlx, &suml2)) return 0.0f;
    for (int itry = 0; itry < 5; itry++) {
        int n_changed = 0;
        for (int i = 0; i < n; i++) {
            float w = x[i] * x[i];
            float slx = sumlx - w * x[i] * L[i];
            if (slx > 0) {
                float sl2 = suml2 - w * L[i] * L[i];
                int new_l = kclamp(quant_nearest_int(x[i] * sl2 / slx), -nmax, nmax - 1);
                if (new_l != L[i]) {
                    slx += w * x[i] * new_l;
                    sl2 += w * new_l * new_l;
                    if (sl2 > 0 && slx * slx * suml2 > sumlx * sumlx * sl2) {
                        L[i] = (int8_t)new_l;
                        sumlx = slx;
                        suml2 = sl2;
                        n_changed++;
                    }
                }
            }
        }
        if (!n_changed) break;
    }
    for (int i = 0; i < n; i++) L[i] = (int8_t)(L[i] + nmax);
    return suml2 > 0 ? sumlx / suml2 : 0.0f;
}

/* Packs 8 6-bit scales and mins into Q4_K/Q5_K's 12 bytes (see quant_k.c). */
static void k4_pack(uint8_t *s, const int *ls, const int *lm) {
    for (int j = 0; j < 12; j++) s[j] = 0;
    for (int j = 0; j < 8; j++) {
        if (j < 4) {
            s[j] = (uint8_t)ls[j];
            s[j + 4] = (uint8_t)lm[j];
        } else {
            s[j + 4] = (uint8_t)((ls[j] & 0xF) | ((lm[j] & 0xF) << 4));
            s[j - 4] |= (uint8_t)((ls[j] >> 4) << 6);
            s[j] |= (uint8_t)((lm[j] >> 4) << 6);
        }
    }
}

static void k4_unpack(int j, const uint8_t *q, int *sc, int *mn) {
    if (j < 4) {
        *sc = q[j] & 63;
        *mn = q[j + 4] & 63;
    } else {
        *sc = (q[j + 4] & 0xF) | ((q[j - 4] >> 6) << 4);
        *mn = (q[j + 4] >> 4) | ((q[j] >> 6) << 4);
    }
}

/* Shared by Q4_K (nmax 15) and Q5_K (nmax 31): 8 sub-blocks of 32 with
 * weights |x| + rms(sub-block); L receives the final levels. */
static void kq_scale_min_32(const float *x, int nmax, float rmin, int nstep, uint8_t *b,
                            uint8_t *L) {
    float weights[32], mins[8], scales[8];
    uint8_t Laux[32];
    float max_scale = 0, max_min = 0;
    for (int j = 0; j < 8; j++) {
        float sum_x2 = 0;
        for (int l = 0; l < 32; l++) sum_x2 += x[32 * j + l] * x[32 * j + l];
        float av_x = sqrtf(sum_x2 / 32);
        for (int l = 0; l < 32; l++) weights[l] = av_x + fabsf(x[32 * j + l]);
        scales[j] = kq_qkx2(32, nmax, x + 32 * j, weights, L + 32 * j, &mins[j], Laux, rmin, 0.1f,
                            nstep, false);
        if (scales[j] > max_scale) max_scale = scales[j];
        if (mins[j] > max_min) max_min = mins[j];
    }
    float inv_scale = max_scale > 0 ? 63.f / max_scale : 0.f;
    float inv_min = max_min > 0 ? 63.f / max_min : 0.f;
    int ls[8], lm[8];
    for (int j = 0; j < 8; j++) {
        ls[j] = kclamp(quant_nearest_int(inv_scale * scales[j]), 0, 63);
        lm[j] = kclamp(quant_nearest_int(inv_min * mins[j]), 0, 63);
    }
    uint16_t hd = khalf(max_scale / 63.f), hm = khalf(max_min / 63.f);
    kput_half(b, hd);
    kput_half(b + 2, hm);
    k4_pack(b + 4, ls, lm);
    /* re-round against the scales as stored (6-bit, FP16) */
    for (int j = 0; j < 8; j++) {
        int sc, mn;
        k4_unpack(j, b + 4, &sc, &mn);
        const float d = quant_f16_to_f32(hd) * sc;
        if (d == 0.0f) continue;
        const float dm = quant_f16_to_f32(hm) * mn;
        for (int ii = 0; ii < 32; ii++)
            L[32 * j + ii] = (uint8_t)kclamp(quant_nearest_int((x[32 * j + ii] + dm) / d), 0, nmax);
    }
}

static void quant_q4_K(const float *x, uint8_t *b) {
    uint8_t L[QK_K];
    kq_scale_min_32(x, 15, -1.f, 20, b, L);
    uint8_t *q = b + 16;
    for (int j = 0; j < QK_K; j += 64) {
        for (int l = 0; l < 32; l++) q[l] = (uint8_t)(L[j + l] | (L[j + l + 32] << 4));
        q += 32;
    }
}

static void quant_q5_K(const float *x, uint8_t *b) {
    uint8_t L[QK_K];
    kq_scale_min_32(x, 31, -0.5f, 15, b, L);
    uint8_t *qh = b + 16, *ql = b + 48;
    for (int j = 0; j < 32; j++) qh[j] = 0;
    uint8_t m1 = 1, m2 = 2;
    for (int n = 0; n < QK_K; n += 64) {
        for (int j = 0; j < 32; j++) {
            int l1 = L[n + j], l2 = L[n + j + 32];
            if (l1 > 15) {
                l1 -= 16;
                qh[j] |= m1;
            }
            if (l2 > 15) {
                l2 -= 16;
                qh[j] |= m2;
            }
            ql[j] = (uint8_t)(l1 | (l2 << 4));
        }
        m1 = (uint8_t)(m1 << 2);
        m2 = (uint8_t)(m2 << 2);
        ql += 32;
    }
}

/* Q2_K: 16 sub-blocks of 16, 2-bit levels, 4-bit scales and mins, weights |x|,
 * absolute-error search. */
static void quant_q2_K(const float *x, uint8_t *b) {
    uint8_t L[QK_K], Laux[16];
    float weights[16], mins[16], scales[16];
    float max_scale = 0, max_min = 0;
    for (int j = 0; j < 16; j++) {
        for (int l = 0; l < 16; l++) weights[l] = fabsf(x[16 * j + l]);
        scales[j] =
            kq_qkx2(16, 3, x + 16 * j, weights, L + 16 * j, &mins[j], Laux, -0.5f, 0.1f, 15, true);
        if (scales[j] > max_scale) max_scale = scales[j];
        if (mins[j] > max_min) max_min = mins[j];
    }
    uint8_t *sc = b, *qs = b + 16;
    uint16_t hd = 0, hm = 0;
    for (int j = 0; j < 16; j++) sc[j] = 0;
    if (max_scale > 0) {
        float iscale = 15.f / max_scale;
        for (int j = 0; j < 16; j++)
            sc[j] = (uint8_t)kclamp(quant_nearest_int(iscale * scales[j]), 0, 15);
        hd = khalf(max_scale / 15.f);
    }
    if (max_min > 0) {
        float iscale = 15.f / max_min;
        for (int j = 0; j < 16; j++)
            sc[j] |= (uint8_t)(kclamp(quant_nearest_int(iscale * mins[j]), 0, 15) << 4);
        hm = khalf(max_min / 15.f);
    }
    kput_half(b + 80, hd);
    kput_half(b + 82, hm);
    for (int j = 0; j < 16; j++) {
        const float d = quant_f16_to_f32(hd) * (sc[j] & 0xF);
        if (d == 0.0f) continue;
        const float dm = quant_f16_to_f32(hm) * (sc[j] >> 4);
        for (int ii = 0; ii < 16; ii++)
            L[16 * j + ii] = (uint8_t)kclamp(quant_nearest_int((x[16 * j + ii] + dm) / d), 0, 3);
    }
    for (int j = 0; j < QK_K; j += 128)
        for (int l = 0; l < 32; l++)
            qs[j / 4 + l] = (uint8_t)(L[j + l] | (L[j + l + 32] << 2) | (L[j + l + 64] << 4) |
                                      (L[j + l + 96] << 6));
}

/* Q3_K: 16 sub-blocks of 16, levels -4..3 (2 bits + hmask), 6-bit signed scales. */
static void quant_q3_K(const float *x, uint8_t *b) {
    int8_t L[QK_K];
    float scales[16];
    float max_scale = 0, amax = 0;
    for (int j = 0; j < 16; j++) {
        scales[j] = kq_q3(16, 4, x + 16 * j, L + 16 * j);
        if (fabsf(scales[j]) > amax) {
            amax = fabsf(scales[j]);
            max_scale = scales[j];
        }
    }
    uint8_t *hmask = b, *qs = b + 32, *s = b + 96;
    for (int j = 0; j < 12; j++) s[j] = 0;
    uint16_t hd = 0;
    if (max_scale != 0.0f) {
        float iscale = -32.f / max_scale;
        for (int j = 0; j < 16; j++) {
            int l = kclamp(quant_nearest_int(iscale * scales[j]), -32, 31) + 32;
            if (j < 8)
                s[j] = (uint8_t)(l & 0xF);
            else
                s[j - 8] |= (uint8_t)((l & 0xF) << 4);
            l >>= 4;
            s[j % 4 + 8] |= (uint8_t)(l << (2 * (j / 4)));
        }
        hd = khalf(1 / iscale);
    }
    kput_half(b + 108, hd);
    for (int j = 0; j < 16; j++) {
        int sc = j < 8 ? s[j] & 0xF : s[j - 8] >> 4;
        sc = (sc | (((s[8 + j % 4] >> (2 * (j / 4))) & 3) << 4)) - 32;
        const float d = quant_f16_to_f32(hd) * sc;
        if (d == 0.0f) continue;
        for (int ii = 0; ii < 16; ii++)
            L[16 * j + ii] = (int8_t)(kclamp(quant_nearest_int(x[16 * j + ii] / d), -4, 3) + 4);
    }
    for (int j = 0; j < 32; j++) hmask[j] = 0;
    int m = 0;
    uint8_t hm = 1;
    for (int j = 0; j < QK_K; j++) {
        if (L[j] > 3) {
            hmask[m] |= hm;
            L[j] = (int8_t)(L[j] - 4);
        }
        if (++m == QK_K / 8) {
            m = 0;
            hm = (uint8_t)(hm << 1);
        }
    }
    for (int j = 0; j < QK_K; j += 128)
        for (int l = 0; l < 32; l++)
            qs[j / 4 + l] = (uint8_t)(L[j + l] | (L[j + l + 32] << 2) | (L[j + l + 64] << 4) |
                                      (L[j + l + 96] << 6));
}

/* Q6_K: 16 sub-blocks of 16, levels -32..31, 8-bit signed scales. */
static void quant_q6_K(const float *x, uint8_t *b) {
    int8_t L[QK_K];
    float scales[16];
    float max_scale = 0, max_abs_scale = 0;
    for (int ib = 0; ib < 16; ib++) {
        scales[ib] = kq_qx(16, 32, x + 16 * ib, L + 16 * ib);
        if (fabsf(scales[ib]) > max_abs_scale) {
            max_abs_scale = fabsf(scales[ib]);
            max_scale = scales[ib];
        }
    }
    uint8_t *ql = b, *qh = b + 128;
    int8_t *sc = (int8_t *)(b + 192);
    if (max_abs_scale < GROUP_MAX_EPS) {
        for (int i = 0; i < 210; i++) b[i] = 0;
        return;
    }
    float iscale = -128.f / max_scale;
    uint16_t hd = khalf(1 / iscale);
    kput_half(b + 208, hd);
    for (int ib = 0; ib < 16; ib++)
        sc[ib] = (int8_t)kclamp(quant_nearest_int(iscale * scales[ib]), -128, 127);
    for (int j = 0; j < 16; j++) {
        const float d = quant_f16_to_f32(hd) * sc[j];
        if (d == 0.0f) continue;
        for (int ii = 0; ii < 16; ii++)
            L[16 * j + ii] = (int8_t)(kclamp(quant_nearest_int(x[16 * j + ii] / d), -32, 31) + 32);
    }
    for (int j = 0; j < QK_K; j += 128) {
        for (int l = 0; l < 32; l++) {
            const int q1 = L[j + l] & 0xF, q2 = L[j + l + 32] & 0xF;
            const int q3 = L[j + l + 64] & 0xF, q4 = L[j + l + 96] & 0xF;
            ql[l] = (uint8_t)(q1 | (q3 << 4));
            ql[l + 32] = (uint8_t)(q2 | (q4 << 4));
            qh[l] = (uint8_t)((L[j + l] >> 4) | ((L[j + l + 32] >> 4) << 2) |
                              ((L[j + l + 64] >> 4) << 4) | ((L[j + l + 96] >> 4) << 6));
        }
        ql += 64;
        qh += 32;
    }
}

int quant_k_quantize(int type, const float *src, void *dst, int64_t n) {
    void (*fn)(const float *, uint8_t *);
    switch (type) {
    case QT_Q2_K:
        fn = quant_q2_K;
        break;
    case QT_Q3_K:
        fn = quant_q3_K;
        break;
    case QT_Q4_K:
        fn = quant_q4_K;
        break;
    case QT_Q5_K:
        fn = quant_q5_K;
        break;
    case QT_Q6_K:
        fn = quant_q6_K;
        break;
    default:
        return err_set(M40LLM_ERR_UNSUPPORTED, "quant: no quantizer for type %d", type);
    }
    for (int64_t i = 0; i < n; i++)
        if (!isfinite(src[i]))
            return err_set(M40LLM_ERR_INVALID_ARG, "quant: value %lld is not finite", (long long)i);
    const int bs = quant_info(type)->type_size;
    uint8_t *p = dst;
    for (int64_t i = 0; i < n / QK_K; i++) fn(src + i * QK_K, p + i * bs);
    return M40LLM_OK;
}
