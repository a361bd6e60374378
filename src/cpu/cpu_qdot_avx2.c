/* Fused dequantize + dot kernels for x86-64 with AVX2, FMA and F16C: each
 * 32-element (sub-)block of a weight row is decoded into four 8-lane float
 * registers and multiplied with up to CPU_QX activation rows at once, so a
 * block is decoded once per group of tokens and never stored as floats.
 *
 * Every token's sum is formed by the same operations in the same order
 * whatever the group size (1..CPU_QX) it is computed in: a row's result does
 * not depend on how a sequence is batched. Per 32 elements:
 *   t = f0*x0 + f1*x1 + f2*x2 + f3*x3   (8 lanes, fused multiply-adds)
 *   acc = t * scale + acc               (8 lanes)
 *   ms  = min * xsum[block] + ms        (scalar; types with an offset)
 * result = lane fold of acc (fixed order) + ms.
 * K-quant and float rows are decoded to exactly the floats
 * quant_dequantize_row gives (same operations) and accumulated in two
 * 8-lane sums per token (quarters 0 and 2, 1 and 3 of each group).
 * Built only where the compiler targets x86-64; selected at run time when
 * the CPU has the three extensions (cpu_qdot.c). */
#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))

#include <immintrin.h>
#include <string.h>

#include "cpu_internal.h"
#include "quant.h"

#define AVX2   __attribute__((target("avx2,fma,f16c")))
#define INLINE static inline __attribute__((always_inline))

AVX2 INLINE float half(const uint8_t *p) {
    uint16_t h;
    memcpy(&h, p, 2);
    return _cvtsh_ss(h);
}

/* 16 bytes -> 16 epi8 in two 8-byte halves -> 2 x 8 floats (unsigned). */
AVX2 INLINE void u8x16_to_f(__m128i v, __m256 *f) {
    f[0] = _mm256_cvtepi32_ps(_mm256_cvtepu8_epi32(v));
    f[1] = _mm256_cvtepi32_ps(_mm256_cvtepu8_epi32(_mm_unpackhi_epi64(v, v)));
}

AVX2 INLINE void i8x16_to_f(__m128i v, __m256 *f) {
    f[0] = _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(v));
    f[1] = _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(_mm_unpackhi_epi64(v, v)));
}

/* 16 bytes of nibbles: low nibbles are elements 0..15, high 16..31. */
AVX2 INLINE void nibbles(const uint8_t *qs, __m128i *lo, __m128i *hi) {
    const __m128i m4 = _mm_set1_epi8(0x0F);
    const __m128i q = _mm_loadu_si128((const __m128i *)(const void *)qs);
    *lo = _mm_and_si128(q, m4);
    *hi = _mm_and_si128(_mm_srli_epi16(q, 4), m4);
}

/* 0x10 in each byte j (0..15) whose bit j of the 16-bit mask is set. */
AVX2 INLINE __m128i bits16(uint32_t m16) {
    const __m128i sel = _mm_setr_epi8(0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 1, 1, 1, 1);
    const __m128i bit =
        _mm_setr_epi8(1, 2, 4, 8, 16, 32, 64, (char)128, 1, 2, 4, 8, 16, 32, 64, (char)128);
    __m128i v = _mm_shuffle_epi8(_mm_cvtsi32_si128((int)m16), sel);
    v = _mm_cmpeq_epi8(_mm_and_si128(v, bit), bit);
    return _mm_and_si128(v, _mm_set1_epi8(0x10));
}

/* f0*x0 + f1*x1 + f2*x2 + f3*x3 over one 32-element block of x. */
AVX2 INLINE __m256 dot32(const __m256 *f, const float *x) {
    __m256 t = _mm256_mul_ps(f[0], _mm256_loadu_ps(x));
    t = _mm256_fmadd_ps(f[1], _mm256_loadu_ps(x + 8), t);
    t = _mm256_fmadd_ps(f[2], _mm256_loadu_ps(x + 16), t);
    return _mm256_fmadd_ps(f[3], _mm256_loadu_ps(x + 24), t);
}

AVX2 INLINE float hsum(__m256 a) {
    __m128 s = _mm_add_ps(_mm256_castps256_ps128(a), _mm256_extractf128_ps(a, 1));
    s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    s = _mm_add_ss(s, _mm_movehdup_ps(s));
    return _mm_cvtss_f32(s);
}

/* Block decoders: 32 values (before scale) into f[0..3], scale *d, offset *m. */
AVX2 INLINE void dec_q4_0(const uint8_t *b, __m256 *f, float *d, float *m) {
    __m128i lo, hi;
    nibbles(b + 2, &lo, &hi);
    const __m128i e8 = _mm_set1_epi8(8);
    i8x16_to_f(_mm_sub_epi8(lo, e8), f);
    i8x16_to_f(_mm_sub_epi8(hi, e8), f + 2);
    *d = half(b);
    *m = 0.0f;
}

AVX2 INLINE void dec_q4_1(const uint8_t *b, __m256 *f, float *d, float *m) {
    __m128i lo, hi;
    nibbles(b + 4, &lo, &hi);
    u8x16_to_f(lo, f);
    u8x16_to_f(hi, f + 2);
    *d = half(b);
    *m = half(b + 2);
}

AVX2 INLINE void dec_5bit(const uint8_t *qh4, const uint8_t *qs, __m128i *lo, __m128i *hi) {
    uint32_t qh;
    memcpy(&qh, qh4, 4);
    nibbles(qs, lo, hi);
    *lo = _mm_or_si128(*lo, bits16(qh & 0xFFFFu));
    *hi = _mm_or_si128(*hi, bits16(qh >> 16));
}

AVX2 INLINE void dec_q5_0(const uint8_t *b, __m256 *f, float *d, float *m) {
    __m128i lo, hi;
    dec_5bit(b + 2, b + 6, &lo, &hi);
    const __m128i e16 = _mm_set1_epi8(16);
    i8x16_to_f(_mm_sub_epi8(lo, e16), f);
    i8x16_to_f(_mm_sub_epi8(hi, e16), f + 2);
    *d = half(b);
    *m = 0.0f;
}

AVX2 INLINE void dec_q5_1(const uint8_t *b, __m256 *f, float *d, float *m) {
    __m128i lo, hi;
    dec_5bit(b + 4, b + 8, &lo, &hi);
    u8x16_to_f(lo, f);
    u8x16_to_f(hi, f + 2);
    *d = half(b);
    *m = half(b + 2);
}

AVX2 INLINE void dec_q8_0(const uint8_t *b, __m256 *f, float *d, float *m) {
    i8x16_to_f(_mm_loadu_si128((const __m128i *)(const void *)(b + 2)), f);
    i8x16_to_f(_mm_loadu_si128((const __m128i *)(const void *)(b + 18)), f + 2);
    *d = half(b);
    *m = 0.0f;
}

/* One kernel per legacy type; NX is a constant in each inlined copy. */
#define QDOT_LEGACY(NAME, DEC, BS, HAS_MIN)                                                        \
    AVX2 INLINE void NAME##_nx(const uint8_t *w, const float *x, int ldx, const float *xs,         \
                               int ldxs, const int nx, int n, float *out) {                        \
        __m256 acc[4];                                                                             \
        float ms[4];                                                                               \
        for (int j = 0; j < nx; j++) {                                                             \
            acc[j] = _mm256_setzero_ps();                                                          \
            ms[j] = 0.0f;                                                                          \
        }                                                                                          \
        for (int b = 0; b < n / 32; b++) {                                                         \
            __m256 f[4];                                                                           \
            float d, m;                                                                            \
            DEC(w + (size_t)b * (BS), f, &d, &m);                                                  \
            const __m256 dv = _mm256_set1_ps(d);                                                   \
            for (int j = 0; j < nx; j++) {                                                         \
                acc[j] =                                                                           \
                    _mm256_fmadd_ps(dot32(f, x + (size_t)j * ldx + (size_t)b * 32), dv, acc[j]);   \
                if (HAS_MIN) ms[j] = m * xs[(size_t)j * ldxs + b] + ms[j];                         \
            }                                                                                      \
        }                                                                                          \
        for (int j = 0; j < nx; j++) out[j] = hsum(acc[j]) + ms[j];                                \
    }                                                                                              \
    AVX2 void cpu_qdot_##NAME##_avx2(const uint8_t *w, const float *x, int ldx, const float *xs,   \
                                     int ldxs, int nx, int n, float *out) {                        \
        while (nx > 0) {                                                                           \
            const int k = nx >= 4 ? 4 : nx;                                                        \
            switch (k) {                                                                           \
            case 1:                                                                                \
                NAME##_nx(w, x, ldx, xs, ldxs, 1, n, out);                                         \
                break;                                                                             \
            case 2:                                                                                \
                NAME##_nx(w, x, ldx, xs, ldxs, 2, n, out);                                         \
                break;                                                                             \
            case 3:                                                                                \
                NAME##_nx(w, x, ldx, xs, ldxs, 3, n, out);                                         \
                break;                                                                             \
            default:                                                                               \
                NAME##_nx(w, x, ldx, xs, ldxs, 4, n, out);                                         \
                break;                                                                             \
            }                                                                                      \
            x += (size_t)k * ldx;                                                                  \
            xs += (size_t)k * ldxs;                                                                \
            out += k;                                                                              \
            nx -= k;                                                                               \
        }                                                                                          \
    }

QDOT_LEGACY(q4_0, dec_q4_0, 18, 0)
QDOT_LEGACY(q4_1, dec_q4_1, 20, 1)
QDOT_LEGACY(q5_0, dec_q5_0, 22, 0)
QDOT_LEGACY(q5_1, dec_q5_1, 24, 1)
QDOT_LEGACY(q8_0, dec_q8_0, 34, 0)

/* ---- K-quant super-blocks and float rows: exact dequantized values ---- */

/* 32 bytes -> 4 x 8 floats. */
AVX2 INLINE void u8x32_to_f(__m256i v, __m256 *f) {
    const __m128i a = _mm256_castsi256_si128(v), b = _mm256_extracti128_si256(v, 1);
    u8x16_to_f(a, f);
    u8x16_to_f(b, f + 2);
}

AVX2 INLINE void i8x32_to_f(__m256i v, __m256 *f) {
    const __m128i a = _mm256_castsi256_si128(v), b = _mm256_extracti128_si256(v, 1);
    i8x16_to_f(a, f);
    i8x16_to_f(b, f + 2);
}

AVX2 INLINE void k4_scale_min(int j, const uint8_t *q, int *sc, int *mn) {
    if (j < 4) {
        *sc = q[j] & 63;
        *mn = q[j + 4] & 63;
    } else {
        *sc = (q[j + 4] & 0xF) | ((q[j - 4] >> 6) << 4);
        *mn = (q[j + 4] >> 4) | ((q[j] >> 6) << 4);
    }
}

/* f = d1 * f - m1 on all four registers (ggml's two roundings). */
AVX2 INLINE void scale_sub(__m256 *f, float d1, float m1) {
    const __m256 dv = _mm256_set1_ps(d1), mv = _mm256_set1_ps(m1);
    for (int i = 0; i < 4; i++) f[i] = _mm256_sub_ps(_mm256_mul_ps(dv, f[i]), mv);
}

AVX2 INLINE __m256i nib32(const uint8_t *q, int high) {
    __m256i v = _mm256_loadu_si256((const __m256i *)(const void *)q);
    if (high) v = _mm256_srli_epi16(v, 4);
    return _mm256_and_si256(v, _mm256_set1_epi8(0x0F));
}

/* Q4_K group g: nibbles (low for even g) of bytes 32*(g/2).., d*sc*q - dmin*mn. */
AVX2 INLINE void xdec_q4_K(const uint8_t *b, int g, __m256 *f) {
    int sc, mn;
    k4_scale_min(g, b + 4, &sc, &mn);
    u8x32_to_f(nib32(b + 16 + 32 * (g / 2), g & 1), f);
    scale_sub(f, half(b) * (float)sc, half(b + 2) * (float)mn);
}

/* Q5_K group g: Q4_K plus bit g of qh[l] as 16. */
AVX2 INLINE void xdec_q5_K(const uint8_t *b, int g, __m256 *f) {
    int sc, mn;
    k4_scale_min(g, b + 4, &sc, &mn);
    const __m256i bit = _mm256_set1_epi8((char)(1 << g));
    __m256i h = _mm256_loadu_si256((const __m256i *)(const void *)(b + 16));
    h = _mm256_and_si256(_mm256_cmpeq_epi8(_mm256_and_si256(h, bit), bit), _mm256_set1_epi8(16));
    u8x32_to_f(_mm256_or_si256(nib32(b + 48 + 32 * (g / 2), g & 1), h), f);
    scale_sub(f, half(b) * (float)sc, half(b + 2) * (float)mn);
}

/* Q6_K group g = 4n + k: see cpu_qdot_avx512.c. */
AVX2 INLINE void xdec_q6_K(const uint8_t *b, int g, __m256 *f) {
    const int n = g / 4, k = g % 4;
    const int8_t *sc = (const int8_t *)(b + 192) + 8 * n + 2 * k;
    const float d = half(b + 208);
    __m256i h = _mm256_loadu_si256((const __m256i *)(const void *)(b + 128 + 32 * n));
    h = _mm256_and_si256(_mm256_srl_epi16(h, _mm_cvtsi32_si128(2 * k)), _mm256_set1_epi8(3));
    const __m256i v = _mm256_sub_epi8(
        _mm256_or_si256(nib32(b + 64 * n + 32 * (k & 1), k >= 2), _mm256_slli_epi16(h, 4)),
        _mm256_set1_epi8(32));
    i8x32_to_f(v, f);
    const __m256 s0 = _mm256_set1_ps(d * (float)sc[0]), s1 = _mm256_set1_ps(d * (float)sc[1]);
    f[0] = _mm256_mul_ps(s0, f[0]);
    f[1] = _mm256_mul_ps(s0, f[1]);
    f[2] = _mm256_mul_ps(s1, f[2]);
    f[3] = _mm256_mul_ps(s1, f[3]);
}

AVX2 INLINE void xdec_f16(const uint8_t *b, int g, __m256 *f) {
    (void)g;
    for (int i = 0; i < 4; i++)
        f[i] = _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(const void *)(b + 16 * i)));
}

AVX2 INLINE void xdec_f32(const uint8_t *b, int g, __m256 *f) {
    (void)g;
    for (int i = 0; i < 4; i++) f[i] = _mm256_loadu_ps((const float *)(const void *)b + 8 * i);
}

#define QDOT_EXACT(NAME, DEC, GPB, BS)                                                             \
    AVX2 INLINE void NAME##_nx(const uint8_t *w, const float *x, int ldx, const int nx, int n,     \
                               float *out) {                                                       \
        __m256 a0[4], a1[4];                                                                       \
        for (int j = 0; j < nx; j++) a0[j] = a1[j] = _mm256_setzero_ps();                          \
        for (int gi = 0; gi < n / 32; gi++) {                                                      \
            __m256 f[4];                                                                           \
            DEC(w + (size_t)(gi / (GPB)) * (BS), gi % (GPB), f);                                   \
            for (int j = 0; j < nx; j++) {                                                         \
                const float *xj = x + (size_t)j * ldx + (size_t)gi * 32;                           \
                a0[j] = _mm256_fmadd_ps(f[0], _mm256_loadu_ps(xj), a0[j]);                         \
                a1[j] = _mm256_fmadd_ps(f[1], _mm256_loadu_ps(xj + 8), a1[j]);                     \
                a0[j] = _mm256_fmadd_ps(f[2], _mm256_loadu_ps(xj + 16), a0[j]);                    \
                a1[j] = _mm256_fmadd_ps(f[3], _mm256_loadu_ps(xj + 24), a1[j]);                    \
            }                                                                                      \
        }                                                                                          \
        for (int j = 0; j < nx; j++) out[j] = hsum(_mm256_add_ps(a0[j], a1[j]));                   \
    }                                                                                              \
    AVX2 void cpu_qdot_##NAME##_avx2(const uint8_t *w, const float *x, int ldx, const float *xs,   \
                                     int ldxs, int nx, int n, float *out) {                        \
        (void)xs;                                                                                  \
        (void)ldxs;                                                                                \
        while (nx > 0) {                                                                           \
            const int k = nx >= 4 ? 4 : nx;                                                        \
            switch (k) {                                                                           \
            case 1:                                                                                \
                NAME##_nx(w, x, ldx, 1, n, out);                                                   \
                break;                                                                             \
            case 2:                                                                                \
                NAME##_nx(w, x, ldx, 2, n, out);                                                   \
                break;                                                                             \
            case 3:                                                                                \
                NAME##_nx(w, x, ldx, 3, n, out);                                                   \
                break;                                                                             \
            default:                                                                               \
                NAME##_nx(w, x, ldx, 4, n, out);                                                   \
                break;                                                                             \
            }                                                                                      \
            x += (size_t)k * ldx;                                                                  \
            out += k;                                                                              \
            nx -= k;                                                                               \
        }                                                                                          \
    }

QDOT_EXACT(q4_K, xdec_q4_K, 8, 144)
QDOT_EXACT(q5_K, xdec_q5_K, 8, 176)
QDOT_EXACT(q6_K, xdec_q6_K, 8, 210)
QDOT_EXACT(f16, xdec_f16, 1, 64)
QDOT_EXACT(f32, xdec_f32, 1, 128)

#endif
