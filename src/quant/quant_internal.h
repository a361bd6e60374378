/* Private helpers shared by the quant_*.c files: little-endian loads, scalar
 * conversions, the lane-wise multiply-add, macros that build the row loops
 * around each type's (static inline) block decoder, and the per-family row
 * entry points. */
#ifndef M40_QUANT_INTERNAL_H
#define M40_QUANT_INTERNAL_H

#include <stdint.h>
#include <string.h>

#include "quant.h"

/* Bit-exactness with ggml needs every a*b+c rounded twice, never fused:
 * GCC in ISO C mode does not contract, Clang does unless told. */
#if defined(__clang__)
#pragma STDC FP_CONTRACT OFF
#endif

/* GGUF is little-endian; the blocks' uint16/uint32 fields are read through
 * these so that unaligned blocks (any offset in a mapping) are fine. */
static inline uint32_t quant_le32(const uint8_t *p) {
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

/* Half -> float without branches on the data path, so loops over F16 rows
 * vectorize: normals are rebased by an exponent shift and a power-of-two
 * multiply, subnormals built with a magic bias; both exact. */
static inline float quant_h2f(uint16_t h) {
    uint32_t w = (uint32_t)h << 16;
    uint32_t sign = w & 0x80000000u;
    uint32_t two_w = w + w;
    uint32_t nb = (two_w >> 4) + (0xE0u << 23);
    float norm;
    memcpy(&norm, &nb, 4);
    norm *= 0x1.0p-112f;
    uint32_t db = (two_w >> 17) | (126u << 23);
    float den;
    memcpy(&den, &db, 4);
    den -= 0.5f;
    uint32_t nbits, dbits;
    memcpy(&nbits, &norm, 4);
    memcpy(&dbits, &den, 4);
    uint32_t is_den = (uint32_t)0 - (uint32_t)(two_w < (1u << 27)); /* all ones if subnormal */
    uint32_t r = sign | (dbits & is_den) | (nbits & ~is_den);
    float f;
    memcpy(&f, &r, 4);
    return f;
}

static inline float quant_bf2f(uint16_t h) {
    uint32_t r = (uint32_t)h << 16;
    float f;
    memcpy(&f, &r, 4);
    return f;
}

/* Splits 16 bytes into their low and high nibbles with 16-byte vector
 * operations (the auto-vectorizer handles this pattern poorly). */
typedef uint8_t quant_u8x16 __attribute__((vector_size(16)));

static inline void quant_nibbles16(const uint8_t *qs, uint8_t *lo, uint8_t *hi) {
    quant_u8x16 q, l, h;
    memcpy(&q, qs, 16);
    l = q & 0x0F;
    h = q >> 4;
    memcpy(lo, &l, 16);
    memcpy(hi, &h, 16);
}

/* ggml's rounding for quantizers: round half to even (|v| < 2^22). */
static inline int quant_nearest_int(float v) {
    float val = v + 12582912.f;
    int32_t i;
    memcpy(&i, &val, 4);
    return (i & 0x007fffff) - 0x00400000;
}

/* Legacy 32-element blocks (quant_legacy.c). */
int quant_legacy_dequantize(int type, const void *src, float *dst, int64_t n);
float quant_legacy_dot(int type, const void *w, const float *x, int64_t n);
void quant_legacy_dot_rows(int type, const void *w, const float *x, int64_t xs, int nx, int64_t n,
                           float *out);

/* K-quant 256-element super-blocks (quant_k.c). */
int quant_k_dequantize(int type, const void *src, float *dst, int64_t n);
float quant_k_dot(int type, const void *w, const float *x, int64_t n);
void quant_k_dot_rows(int type, const void *w, const float *x, int64_t xs, int nx, int64_t n,
                      float *out);

/* Activation rows per pass of quant_dot_rows: 4 vector accumulators of 8
 * lanes stay in registers; each weight block is dequantized once per pass. */
#define QUANT_ROWS 4

/* Generates NAME##_deq(src, dst, n): a whole row through the block
 * dequantizer FN, inlined (no call per block). */
#define QUANT_DEFINE_DEQ(NAME, FN, BLK, BS)                                                        \
    static void NAME##_deq(const uint8_t *src, float *dst, int64_t n) {                            \
        for (int64_t i = 0; i < n / (BLK); i++) FN(src + i * (BS), dst + i * (BLK));               \
    }

/* Generates, for a block dequantizer FN (BLK elements, BS bytes per block):
 *   NAME(w, x, n)                  one weight row . one activation row
 *   NAME##_rows(w, x, xs, nx, n, out)  one weight row . nx activation rows
 * from one body, so that both sum in the same order and give identical bits. */
#define QUANT_DEFINE_DOT(NAME, FN, BLK, BS)                                                        \
    static inline __attribute__((always_inline)) void NAME##_n(                                    \
        const uint8_t *w, const float *x, int64_t xs, int nx, int64_t n, float *out) {             \
        quant_v8 acc[QUANT_ROWS] = {{0}};                                                          \
        float buf[BLK];                                                                            \
        for (int64_t i = 0; i < n / (BLK); i++) {                                                  \
            FN(w + i * (BS), buf);                                                                 \
            for (int j = 0; j < nx; j++) quant_dot_acc(&acc[j], buf, x + j * xs + i * (BLK), BLK); \
        }                                                                                          \
        for (int j = 0; j < nx; j++) out[j] = quant_acc_sum(&acc[j]);                              \
    }                                                                                              \
    static float NAME(const uint8_t *w, const float *x, int64_t n) {                               \
        float r;                                                                                   \
        NAME##_n(w, x, 0, 1, n, &r);                                                               \
        return r;                                                                                  \
    }                                                                                              \
    static void NAME##_rows(const uint8_t *w, const float *x, int64_t xs, int nx, int64_t n,       \
                            float *out) {                                                          \
        int j = 0;                                                                                 \
        for (; j + QUANT_ROWS <= nx; j += QUANT_ROWS)                                              \
            NAME##_n(w, x + j * xs, xs, QUANT_ROWS, n, out + j);                                   \
        for (; j < nx; j++) NAME##_n(w, x + j * xs, xs, 1, n, out + j);                            \
    }

/* Quantizers (quant_quantize.c: float and legacy types; quant_quantize_k.c: K-quants). */
int quant_legacy_quantize(int type, const float *src, void *dst, int64_t n);
int quant_k_quantize(int type, const float *src, void *dst, int64_t n);

/* 8 float lanes (GCC/Clang vector extension: two SSE registers, or one AVX
 * register where enabled). Accumulating in lanes keeps 8 independent partial
 * sums and guarantees vector multiply-adds without -ffast-math. */
typedef float quant_v8 __attribute__((vector_size(32)));

/* *acc += a[i] * b[i] lane-wise over n floats (n a multiple of 8). Passed
 * by pointer: a vector by value would change the ABI between SSE and AVX. */
static inline void quant_dot_acc(quant_v8 *acc, const float *a, const float *b, int n) {
    quant_v8 s = *acc;
    for (int i = 0; i < n; i += 8) {
        quant_v8 va, vb;
        memcpy(&va, a + i, sizeof va);
        memcpy(&vb, b + i, sizeof vb);
        s += va * vb;
    }
    *acc = s;
}

static inline float quant_acc_sum(const quant_v8 *acc) {
    const quant_v8 a = *acc;
    return ((a[0] + a[4]) + (a[1] + a[5])) + ((a[2] + a[6]) + (a[3] + a[7]));
}

#endif
