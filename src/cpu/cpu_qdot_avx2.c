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
        __m256 acc[CPU_QX];                                                                        \
        float ms[CPU_QX];                                                                          \
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
        switch (nx) {                                                                              \
        case 1:                                                                                    \
            NAME##_nx(w, x, ldx, xs, ldxs, 1, n, out);                                             \
            break;                                                                                 \
        case 2:                                                                                    \
            NAME##_nx(w, x, ldx, xs, ldxs, 2, n, out);                                             \
            break;                                                                                 \
        case 3:                                                                                    \
            NAME##_nx(w, x, ldx, xs, ldxs, 3, n, out);                                             \
            break;                                                                                 \
        default:                                                                                   \
            NAME##_nx(w, x, ldx, xs, ldxs, CPU_QX, n, out);                                        \
            break;                                                                                 \
        }                                                                                          \
    }

QDOT_LEGACY(q4_0, dec_q4_0, 18, 0)
QDOT_LEGACY(q4_1, dec_q4_1, 20, 1)
QDOT_LEGACY(q5_0, dec_q5_0, 22, 0)
QDOT_LEGACY(q5_1, dec_q5_1, 24, 1)
QDOT_LEGACY(q8_0, dec_q8_0, 34, 0)

#endif
