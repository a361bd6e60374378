/* Private helpers shared by the quant_*.c files: little-endian loads, the
 * per-block dequantizers (static inline so that dot products inline them and
 * vectorize) and the per-family row entry points. */
#ifndef M40_QUANT_INTERNAL_H
#define M40_QUANT_INTERNAL_H

#include <stdint.h>
#include <string.h>

#include "quant.h"

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
    uint32_t r = sign | (two_w < (1u << 27) ? dbits : nbits);
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

/* K-quant 256-element super-blocks (quant_k.c). */
int quant_k_dequantize(int type, const void *src, float *dst, int64_t n);
float quant_k_dot(int type, const void *w, const float *x, int64_t n);

/* Quantizers (quant_quantize.c: float and legacy types; quant_quantize_k.c: K-quants). */
int quant_legacy_quantize(int type, const float *src, void *dst, int64_t n);
int quant_k_quantize(int type, const float *src, void *dst, int64_t n);

/* Multiply-add into 8 independent partial sums, so the compiler keeps
 * vector accumulators in flight across blocks; n is a multiple of 8. */
static inline void quant_dot_acc(float acc[8], const float *a, const float *b, int n) {
    for (int i = 0; i < n; i += 8)
        for (int k = 0; k < 8; k++) acc[k] += a[i + k] * b[i + k];
}

static inline float quant_acc_sum(const float acc[8]) {
    return ((acc[0] + acc[4]) + (acc[1] + acc[5])) + ((acc[2] + acc[6]) + (acc[3] + acc[7]));
}

#endif
