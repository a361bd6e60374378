/* K-quant 256-element super-blocks (Q2_K, Q3_K, Q4_K, Q5_K, Q6_K):
 * dequantization and FP32-activation dot products. Each sub-block value is
 * (d*scale)*q - (dmin*min) with d*scale and dmin*min formed first, exactly
 * ggml's operation order, so rows dequantize bit-identically. */
#include "err.h"
#include "quant_internal.h"

static inline float k_half(const uint8_t *p) {
    return quant_h2f((uint16_t)(p[0] | p[1] << 8));
}

/* Q2_K: scales[16] (low nibble scale, high nibble min), qs[64], d, dmin.
 * Each 128-element half uses 32 bytes of qs: four 2-bit planes, each plane
 * two 16-element sub-blocks with their own scale. */
static inline void deq_q2_K(const uint8_t *b, float *y) {
    const uint8_t *sc = b, *q = b + 16;
    const float d = k_half(b + 80), dmin = k_half(b + 82);
    /* 2-bit values first (byte ops), then one scale/min per 16 */
    uint8_t v[QK_K];
    for (int n = 0; n < 2; n++)
        for (int p = 0; p < 4; p++)
            for (int l = 0; l < 32; l++) v[128 * n + 32 * p + l] = (q[32 * n + l] >> (2 * p)) & 3;
    for (int is = 0; is < 16; is++) {
        const float dl = d * (float)(sc[is] & 0xF);
        const float ml = dmin * (float)(sc[is] >> 4);
        for (int l = 0; l < 16; l++) y[16 * is + l] = dl * (float)v[16 * is + l] - ml;
    }
}

/* Q3_K: hmask[32], qs[64], scales[12] (16 6-bit scales, offset 32), d.
 * A clear hmask bit subtracts 4 from the 2-bit value. */
static inline void q3_K_scales(const uint8_t *s12, int8_t *out) {
    const uint32_t a0 = quant_le32(s12), a1 = quant_le32(s12 + 4), t = quant_le32(s12 + 8);
    const uint32_t k1 = 0x03030303u, k2 = 0x0f0f0f0fu;
    const uint32_t aux[4] = {
        (a0 & k2) | (((t >> 0) & k1) << 4),
        (a1 & k2) | (((t >> 2) & k1) << 4),
        ((a0 >> 4) & k2) | (((t >> 4) & k1) << 4),
        ((a1 >> 4) & k2) | (((t >> 6) & k1) << 4),
    };
    for (int i = 0; i < 16; i++) out[i] = (int8_t)((aux[i / 4] >> (8 * (i % 4))) & 0xFF);
}

static inline void deq_q3_K(const uint8_t *b, float *y) {
    const uint8_t *hm = b, *q = b + 32;
    const float d_all = k_half(b + 108);
    int8_t scales[16];
    q3_K_scales(b + 96, scales);
    int is = 0;
    uint8_t m = 1;
    for (int n = 0; n < QK_K; n += 128) {
        for (int shift = 0; shift < 8; shift += 2) {
            for (int h = 0; h < 2; h++) {
                const float dl = d_all * (float)(scales[is++] - 32);
                for (int l = 16 * h; l < 16 * h + 16; l++)
                    *y++ = dl * (float)(((q[l] >> shift) & 3) - ((hm[l] & m) ? 0 : 4));
            }
            m = (uint8_t)(m << 1);
        }
        q += 32;
    }
}

/* 6-bit scale and min j (0..7) of Q4_K/Q5_K's 12-byte packing: the first
 * four pairs sit in the low 6 bits of bytes 0..7; the last four are split
 * into a nibble in bytes 8..11 and the top 2 bits of bytes 0..7. */
static inline void k4_scale_min(int j, const uint8_t *q, int *sc, int *mn) {
    if (j < 4) {
        *sc = q[j] & 63;
        *mn = q[j + 4] & 63;
    } else {
        *sc = (q[j + 4] & 0xF) | ((q[j - 4] >> 6) << 4);
        *mn = (q[j + 4] >> 4) | ((q[j] >> 6) << 4);
    }
}

/* Q4_K: d, dmin, scales[12], qs[128]; each 64 elements share 32 bytes
 * (low nibbles: first 32, high nibbles: next 32). */
static inline void deq_q4_K(const uint8_t *b, float *y) {
    const float d = k_half(b), dmin = k_half(b + 2);
    const uint8_t *s = b + 4, *q = b + 16;
    for (int j = 0; j < 8; j += 2) {
        int sc, mn;
        k4_scale_min(j, s, &sc, &mn);
        const float d1 = d * (float)sc, m1 = dmin * (float)mn;
        k4_scale_min(j + 1, s, &sc, &mn);
        const float d2 = d * (float)sc, m2 = dmin * (float)mn;
        uint8_t v[64]; /* low nibbles of q[0..31], then high nibbles */
        quant_nibbles16(q, v, v + 32);
        quant_nibbles16(q + 16, v + 16, v + 48);
        for (int l = 0; l < 32; l++) *y++ = d1 * (float)v[l] - m1;
        for (int l = 0; l < 32; l++) *y++ = d2 * (float)v[l + 32] - m2;
        q += 32;
    }
}

/* Q5_K: Q4_K plus qh[32]: bit pair (2i, 2i+1) of qh[l] is the 5th bit of
 * the two 32-element halves of 64-element group i. */
static inline void deq_q5_K(const uint8_t *b, float *y) {
    const float d = k_half(b), dmin = k_half(b + 2);
    const uint8_t *s = b + 4, *qh = b + 16, *ql = b + 48;
    uint8_t u1 = 1, u2 = 2;
    for (int j = 0; j < 8; j += 2) {
        int sc, mn;
        k4_scale_min(j, s, &sc, &mn);
        const float d1 = d * (float)sc, m1 = dmin * (float)mn;
        k4_scale_min(j + 1, s, &sc, &mn);
        const float d2 = d * (float)sc, m2 = dmin * (float)mn;
        uint8_t v[64];
        quant_nibbles16(ql, v, v + 32);
        quant_nibbles16(ql + 16, v + 16, v + 48);
        for (int l = 0; l < 32; l++) {
            v[l] = (uint8_t)(v[l] + ((qh[l] & u1) ? 16 : 0));
            v[l + 32] = (uint8_t)(v[l + 32] + ((qh[l] & u2) ? 16 : 0));
        }
        for (int l = 0; l < 32; l++) *y++ = d1 * (float)v[l] - m1;
        for (int l = 0; l < 32; l++) *y++ = d2 * (float)v[l + 32] - m2;
        ql += 32;
        u1 = (uint8_t)(u1 << 2);
        u2 = (uint8_t)(u2 << 2);
    }
}

/* Q6_K: ql[128] (low 4 bits), qh[64] (high 2 bits), int8 scales[16], d.
 * Value = (d*scale)*(q - 32); d*scale is formed once per 16 values, which
 * is the same rounding as ggml forming it per value. */
static inline void deq_q6_K(const uint8_t *b, float *y) {
    const uint8_t *ql = b, *qh = b + 128;
    const int8_t *sc = (const int8_t *)(b + 192);
    const float d = k_half(b + 208);
    for (int n = 0; n < QK_K; n += 128) {
        for (int h = 0; h < 2; h++) { /* elements 16h..16h+15 of each 32-quarter */
            const float s1 = d * (float)sc[h], s2 = d * (float)sc[h + 2];
            const float s3 = d * (float)sc[h + 4], s4 = d * (float)sc[h + 6];
            for (int l = 16 * h; l < 16 * h + 16; l++) {
                const int q1 = ((ql[l] & 0xF) | (((qh[l] >> 0) & 3) << 4)) - 32;
                const int q2 = ((ql[l + 32] & 0xF) | (((qh[l] >> 2) & 3) << 4)) - 32;
                const int q3 = ((ql[l] >> 4) | (((qh[l] >> 4) & 3) << 4)) - 32;
                const int q4 = ((ql[l + 32] >> 4) | (((qh[l] >> 6) & 3) << 4)) - 32;
                y[l] = s1 * (float)q1;
                y[l + 32] = s2 * (float)q2;
                y[l + 64] = s3 * (float)q3;
                y[l + 96] = s4 * (float)q4;
            }
        }
        y += 128;
        ql += 64;
        qh += 32;
        sc += 8;
    }
}

QUANT_DEFINE_DEQ(q2_K, deq_q2_K, QK_K, 84)
QUANT_DEFINE_DEQ(q3_K, deq_q3_K, QK_K, 110)
QUANT_DEFINE_DEQ(q4_K, deq_q4_K, QK_K, 144)
QUANT_DEFINE_DEQ(q5_K, deq_q5_K, QK_K, 176)
QUANT_DEFINE_DEQ(q6_K, deq_q6_K, QK_K, 210)

int quant_k_dequantize(int type, const void *src, float *dst, int64_t n) {
    switch (type) {
    case QT_Q2_K:
        q2_K_deq(src, dst, n);
        break;
    case QT_Q3_K:
        q3_K_deq(src, dst, n);
        break;
    case QT_Q4_K:
        q4_K_deq(src, dst, n);
        break;
    case QT_Q5_K:
        q5_K_deq(src, dst, n);
        break;
    case QT_Q6_K:
        q6_K_deq(src, dst, n);
        break;
    default:
        return err_set(M40LLM_ERR_UNSUPPORTED, "quant: type %d is not a K-quant type", type);
    }
    return M40LLM_OK;
}

/* Dequantize one super-block to the stack (inlined), then a vectorizable
 * multiply-add against the activations. */
QUANT_DEFINE_DOT(dot_q2_K, deq_q2_K, QK_K, 84)
QUANT_DEFINE_DOT(dot_q3_K, deq_q3_K, QK_K, 110)
QUANT_DEFINE_DOT(dot_q4_K, deq_q4_K, QK_K, 144)
QUANT_DEFINE_DOT(dot_q5_K, deq_q5_K, QK_K, 176)
QUANT_DEFINE_DOT(dot_q6_K, deq_q6_K, QK_K, 210)

float quant_k_dot(int type, const void *w, const float *x, int64_t n) {
    switch (type) {
    case QT_Q2_K:
        return dot_q2_K(w, x, n);
    case QT_Q3_K:
        return dot_q3_K(w, x, n);
    case QT_Q4_K:
        return dot_q4_K(w, x, n);
    case QT_Q5_K:
        return dot_q5_K(w, x, n);
    case QT_Q6_K:
        return dot_q6_K(w, x, n);
    default:
        return 0.0f;
    }
}

void quant_k_dot_rows(int type, const void *w, const float *x, int64_t xs, int nx, int64_t n,
                      float *out) {
    switch (type) {
    case QT_Q2_K:
        dot_q2_K_rows(w, x, xs, nx, n, out);
        break;
    case QT_Q3_K:
        dot_q3_K_rows(w, x, xs, nx, n, out);
        break;
    case QT_Q4_K:
        dot_q4_K_rows(w, x, xs, nx, n, out);
        break;
    case QT_Q5_K:
        dot_q5_K_rows(w, x, xs, nx, n, out);
        break;
    case QT_Q6_K:
        dot_q6_K_rows(w, x, xs, nx, n, out);
        break;
    default:
        break;
    }
}
