/* Fused dequantize + dot kernels for x86-64 with AVX-512 (F, BW, VL): each
 * 32-element group of a weight row is decoded into two 16-lane registers
 * holding exactly the floats quant_dequantize_row gives (same operations),
 * then multiplied with up to CPU_QX activation rows at once.
 *
 * 4-bit types decode through a 16- or 32-entry float table built per
 * (sub-)block (q*d + m for each q), indexed by the nibbles with a lane
 * permute: no integer-to-float conversion per element.
 *
 * Every token's sum is formed by the same operations in the same order
 * whatever the group size (1..CPU_QX): two 16-lane accumulators (low and
 * high half of each group) of fused multiply-adds, folded in a fixed order
 * at the end. A row's result does not depend on the batching. */
#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))

#include <immintrin.h>
#include <string.h>

#include "cpu_internal.h"
#include "quant.h"

#define AVX512 __attribute__((target("avx512f,avx512bw,avx512vl,avx2,fma,f16c")))
#define INLINE static inline __attribute__((always_inline))

typedef struct w32 {
    __m512 lo, hi; /* elements 0..15, 16..31 of the group */
} w32;

AVX512 INLINE float half(const uint8_t *p) {
    uint16_t h;
    memcpy(&h, p, 2);
    return _cvtsh_ss(h);
}

AVX512 INLINE __m512 iota16(void) {
    return _mm512_setr_ps(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15);
}

/* 16 bytes zero-extended to 16 lanes (a lane permute reads its low bits). */
AVX512 INLINE __m512i bytes16(const uint8_t *p) {
    return _mm512_cvtepu8_epi32(_mm_loadu_si128((const __m128i *)(const void *)p));
}

AVX512 INLINE __m512 sbytes16_f(const uint8_t *p) {
    return _mm512_cvtepi32_ps(
        _mm512_cvtepi8_epi32(_mm_loadu_si128((const __m128i *)(const void *)p)));
}

/* ---- legacy 32-element blocks (one group per block) ---- */

AVX512 INLINE w32 dec_q4_0(const uint8_t *b, int g) {
    (void)g;
    const __m512 d = _mm512_set1_ps(half(b));
    const __m512 t = _mm512_mul_ps(_mm512_sub_ps(iota16(), _mm512_set1_ps(8.0f)), d);
    const __m512i q = bytes16(b + 2);
    return (w32){_mm512_permutexvar_ps(q, t), _mm512_permutexvar_ps(_mm512_srli_epi32(q, 4), t)};
}

AVX512 INLINE w32 dec_q4_1(const uint8_t *b, int g) {
    (void)g;
    const __m512 d = _mm512_set1_ps(half(b)), m = _mm512_set1_ps(half(b + 2));
    const __m512 t = _mm512_add_ps(_mm512_mul_ps(iota16(), d), m);
    const __m512i q = bytes16(b + 4);
    return (w32){_mm512_permutexvar_ps(q, t), _mm512_permutexvar_ps(_mm512_srli_epi32(q, 4), t)};
}

/* 5-bit values: nibble | 16 * (bit of qh); a 32-entry table (t0: 0..15,
 * t1: 16..31) read with a two-register permute. */
AVX512 INLINE w32 dec_5bit(const uint8_t *qh4, const uint8_t *qs, __m512 t0, __m512 t1) {
    uint32_t qh;
    memcpy(&qh, qh4, 4);
    const __m512i q = bytes16(qs), m4 = _mm512_set1_epi32(15), s16 = _mm512_set1_epi32(16);
    __m512i lo = _mm512_and_si512(q, m4), hi = _mm512_and_si512(_mm512_srli_epi32(q, 4), m4);
    lo = _mm512_mask_or_epi32(lo, (__mmask16)(qh & 0xFFFFu), lo, s16);
    hi = _mm512_mask_or_epi32(hi, (__mmask16)(qh >> 16), hi, s16);
    return (w32){_mm512_permutex2var_ps(t0, lo, t1), _mm512_permutex2var_ps(t0, hi, t1)};
}

AVX512 INLINE w32 dec_q5_0(const uint8_t *b, int g) {
    (void)g;
    const __m512 d = _mm512_set1_ps(half(b));
    const __m512 t0 = _mm512_mul_ps(_mm512_sub_ps(iota16(), _mm512_set1_ps(16.0f)), d);
    const __m512 t1 = _mm512_mul_ps(iota16(), d);
    return dec_5bit(b + 2, b + 6, t0, t1);
}

AVX512 INLINE w32 dec_q5_1(const uint8_t *b, int g) {
    (void)g;
    const __m512 d = _mm512_set1_ps(half(b)), m = _mm512_set1_ps(half(b + 2));
    const __m512 t0 = _mm512_add_ps(_mm512_mul_ps(iota16(), d), m);
    const __m512 t1 =
        _mm512_add_ps(_mm512_mul_ps(_mm512_add_ps(iota16(), _mm512_set1_ps(16.0f)), d), m);
    return dec_5bit(b + 4, b + 8, t0, t1);
}

AVX512 INLINE w32 dec_q8_0(const uint8_t *b, int g) {
    (void)g;
    const __m512 d = _mm512_set1_ps(half(b));
    return (w32){_mm512_mul_ps(sbytes16_f(b + 2), d), _mm512_mul_ps(sbytes16_f(b + 18), d)};
}

/* ---- K-quant 256-element super-blocks (eight groups of 32) ---- */

/* 6-bit scale and min of sub-block j (packed as ggml packs them). */
AVX512 INLINE void k4_scale_min(int j, const uint8_t *q, int *sc, int *mn) {
    if (j < 4) {
        *sc = q[j] & 63;
        *mn = q[j + 4] & 63;
    } else {
        *sc = (q[j + 4] & 0xF) | ((q[j - 4] >> 6) << 4);
        *mn = (q[j + 4] >> 4) | ((q[j] >> 6) << 4);
    }
}

/* Q4_K group g: nibbles (low for even g, high for odd) of bytes 32*(g/2)..;
 * value d*sc*q - dmin*mn. */
AVX512 INLINE w32 dec_q4_K(const uint8_t *b, int g) {
    int sc, mn;
    k4_scale_min(g, b + 4, &sc, &mn);
    const float d1 = half(b) * (float)sc, m1 = half(b + 2) * (float)mn;
    const __m512 t = _mm512_sub_ps(_mm512_mul_ps(iota16(), _mm512_set1_ps(d1)), _mm512_set1_ps(m1));
    const uint8_t *q = b + 16 + 32 * (g / 2);
    __m512i a = bytes16(q), c = bytes16(q + 16);
    if (g & 1) {
        a = _mm512_srli_epi32(a, 4);
        c = _mm512_srli_epi32(c, 4);
    }
    return (w32){_mm512_permutexvar_ps(a, t), _mm512_permutexvar_ps(c, t)};
}

/* Q5_K group g: as Q4_K plus bit g of qh[l] as the 5th bit of element l. */
AVX512 INLINE w32 dec_q5_K(const uint8_t *b, int g) {
    int sc, mn;
    k4_scale_min(g, b + 4, &sc, &mn);
    const float d1 = half(b) * (float)sc, m1 = half(b + 2) * (float)mn;
    const __m512 dv = _mm512_set1_ps(d1), mv = _mm512_set1_ps(m1);
    const __m512 t0 = _mm512_sub_ps(_mm512_mul_ps(iota16(), dv), mv);
    const __m512 t1 =
        _mm512_sub_ps(_mm512_mul_ps(_mm512_add_ps(iota16(), _mm512_set1_ps(16.0f)), dv), mv);
    const uint8_t *qh = b + 16, *q = b + 48 + 32 * (g / 2);
    const __mmask32 hb = _mm256_test_epi8_mask(
        _mm256_loadu_si256((const __m256i *)(const void *)qh), _mm256_set1_epi8((char)(1 << g)));
    const __m512i m4 = _mm512_set1_epi32(15), s16 = _mm512_set1_epi32(16);
    __m512i a = bytes16(q), c = bytes16(q + 16);
    if (g & 1) {
        a = _mm512_srli_epi32(a, 4);
        c = _mm512_srli_epi32(c, 4);
    }
    a = _mm512_and_si512(a, m4);
    c = _mm512_and_si512(c, m4);
    a = _mm512_mask_or_epi32(a, (__mmask16)(hb & 0xFFFFu), a, s16);
    c = _mm512_mask_or_epi32(c, (__mmask16)(hb >> 16), c, s16);
    return (w32){_mm512_permutex2var_ps(t0, a, t1), _mm512_permutex2var_ps(t0, c, t1)};
}

/* Q6_K group g = 4n + k of half n: 4 low bits from ql (bytes 64n + 32(k&1),
 * high nibble when k >= 2), 2 high bits from qh (bytes 32n, bits 2k);
 * value (d*scale)*(q - 32), one scale per 16 elements. */
AVX512 INLINE w32 dec_q6_K(const uint8_t *b, int g) {
    const int n = g / 4, k = g % 4;
    const uint8_t *ql = b + 64 * n + 32 * (k & 1), *qh = b + 128 + 32 * n;
    const int8_t *sc = (const int8_t *)(b + 192) + 8 * n + 2 * k;
    const float d = half(b + 208);
    __m256i l = _mm256_loadu_si256((const __m256i *)(const void *)ql);
    __m256i h = _mm256_loadu_si256((const __m256i *)(const void *)qh);
    if (k >= 2) l = _mm256_srli_epi16(l, 4);
    l = _mm256_and_si256(l, _mm256_set1_epi8(0x0F));
    h = _mm256_and_si256(_mm256_srl_epi16(h, _mm_cvtsi32_si128(2 * k)), _mm256_set1_epi8(3));
    const __m256i v =
        _mm256_sub_epi8(_mm256_or_si256(l, _mm256_slli_epi16(h, 4)), _mm256_set1_epi8(32));
    const __m512 f0 = _mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(_mm256_castsi256_si128(v)));
    const __m512 f1 = _mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(_mm256_extracti128_si256(v, 1)));
    return (w32){_mm512_mul_ps(_mm512_set1_ps(d * (float)sc[0]), f0),
                 _mm512_mul_ps(_mm512_set1_ps(d * (float)sc[1]), f1)};
}

/* ---- float rows ---- */

AVX512 INLINE w32 dec_f16(const uint8_t *b, int g) {
    (void)g;
    return (w32){_mm512_cvtph_ps(_mm256_loadu_si256((const __m256i *)(const void *)b)),
                 _mm512_cvtph_ps(_mm256_loadu_si256((const __m256i *)(const void *)(b + 32)))};
}

AVX512 INLINE w32 dec_f32(const uint8_t *b, int g) {
    (void)g;
    return (w32){_mm512_loadu_ps(b), _mm512_loadu_ps(b + 64)};
}

/* Kernel of a type with GPB groups of 32 per block of BS bytes; NX is a
 * constant in each inlined copy. */
#define QDOT512(NAME, DEC, GPB, BS)                                                                \
    AVX512 INLINE void NAME##_nx(const uint8_t *w, const float *x, int ldx, const int nx, int n,   \
                                 float *out) {                                                     \
        __m512 a0[8], a1[8];                                                                       \
        for (int j = 0; j < nx; j++) a0[j] = a1[j] = _mm512_setzero_ps();                          \
        for (int gi = 0; gi < n / 32; gi++) {                                                      \
            const w32 v = DEC(w + (size_t)(gi / (GPB)) * (BS), gi % (GPB));                        \
            for (int j = 0; j < nx; j++) {                                                         \
                const float *xj = x + (size_t)j * ldx + (size_t)gi * 32;                           \
                a0[j] = _mm512_fmadd_ps(v.lo, _mm512_loadu_ps(xj), a0[j]);                         \
                a1[j] = _mm512_fmadd_ps(v.hi, _mm512_loadu_ps(xj + 16), a1[j]);                    \
            }                                                                                      \
        }                                                                                          \
        for (int j = 0; j < nx; j++) out[j] = _mm512_reduce_add_ps(_mm512_add_ps(a0[j], a1[j]));   \
    }                                                                                              \
    AVX512 void cpu_qdot_##NAME##_avx512(const uint8_t *w, const float *x, int ldx,                \
                                         const float *xs, int ldxs, int nx, int n, float *out) {   \
        (void)xs;                                                                                  \
        (void)ldxs;                                                                                \
        while (nx > 0) {                                                                           \
            const int k = nx >= 8 ? 8 : nx >= 4 ? 4 : nx;                                          \
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
            case 4:                                                                                \
                NAME##_nx(w, x, ldx, 4, n, out);                                                   \
                break;                                                                             \
            default:                                                                               \
                NAME##_nx(w, x, ldx, 8, n, out);                                                   \
                break;                                                                             \
            }                                                                                      \
            x += (size_t)k * ldx;                                                                  \
            out += k;                                                                              \
            nx -= k;                                                                               \
        }                                                                                          \
    }

QDOT512(q4_0, dec_q4_0, 1, 18)
QDOT512(q4_1, dec_q4_1, 1, 20)
QDOT512(q5_0, dec_q5_0, 1, 22)
QDOT512(q5_1, dec_q5_1, 1, 24)
QDOT512(q8_0, dec_q8_0, 1, 34)
QDOT512(q4_K, dec_q4_K, 8, 144)
QDOT512(q5_K, dec_q5_K, 8, 176)
QDOT512(q6_K, dec_q6_K, 8, 210)
QDOT512(f16, dec_f16, 1, 64)
QDOT512(f32, dec_f32, 1, 128)

#endif
