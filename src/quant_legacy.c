/* Legacy 32-element block types (Q4_0, Q4_1, Q5_0, Q5_1, Q8_0): dequantization
 * and FP32-activation dot products. The float operations and their order are
 * ggml's (q*d, or q*d + m), so rows dequantize bit-identically. */
#include "err.h"
#include "quant_internal.h"

static inline float legacy_half(const uint8_t *p) {
    return quant_h2f((uint16_t)(p[0] | p[1] << 8));
}

/* Each block function writes 32 floats; low nibbles are elements 0..15,
 * high nibbles 16..31. */
static inline void deq_q4_0(const uint8_t *b, float *y) {
    const float d = legacy_half(b);
    const uint8_t *qs = b + 2;
    for (int j = 0; j < 16; j++) {
        y[j] = (float)((qs[j] & 0x0F) - 8) * d;
        y[j + 16] = (float)((qs[j] >> 4) - 8) * d;
    }
}

static inline void deq_q4_1(const uint8_t *b, float *y) {
    const float d = legacy_half(b), m = legacy_half(b + 2);
    const uint8_t *qs = b + 4;
    for (int j = 0; j < 16; j++) {
        y[j] = (float)(qs[j] & 0x0F) * d + m;
        y[j + 16] = (float)(qs[j] >> 4) * d + m;
    }
}

/* qh bit j is the 5th bit of element j (0..31). */
static inline void deq_q5_0(const uint8_t *b, float *y) {
    const float d = legacy_half(b);
    const uint32_t qh = quant_le32(b + 2);
    const uint8_t *qs = b + 6;
    for (int j = 0; j < 16; j++) {
        const int h0 = (int)((qh >> j) << 4) & 0x10;
        const int h1 = (int)(qh >> (j + 12)) & 0x10;
        y[j] = (float)(((qs[j] & 0x0F) | h0) - 16) * d;
        y[j + 16] = (float)(((qs[j] >> 4) | h1) - 16) * d;
    }
}

static inline void deq_q5_1(const uint8_t *b, float *y) {
    const float d = legacy_half(b), m = legacy_half(b + 2);
    const uint32_t qh = quant_le32(b + 4);
    const uint8_t *qs = b + 8;
    for (int j = 0; j < 16; j++) {
        const int h0 = (int)((qh >> j) << 4) & 0x10;
        const int h1 = (int)(qh >> (j + 12)) & 0x10;
        y[j] = (float)((qs[j] & 0x0F) | h0) * d + m;
        y[j + 16] = (float)((qs[j] >> 4) | h1) * d + m;
    }
}

static inline void deq_q8_0(const uint8_t *b, float *y) {
    const float d = legacy_half(b);
    const int8_t *qs = (const int8_t *)(b + 2);
    for (int j = 0; j < 32; j++) y[j] = (float)qs[j] * d;
}

typedef void (*legacy_block_fn)(const uint8_t *b, float *y);

static legacy_block_fn legacy_fn(int type) {
    switch (type) {
    case QT_Q4_0:
        return deq_q4_0;
    case QT_Q4_1:
        return deq_q4_1;
    case QT_Q5_0:
        return deq_q5_0;
    case QT_Q5_1:
        return deq_q5_1;
    case QT_Q8_0:
        return deq_q8_0;
    default:
        return NULL;
    }
}

int quant_legacy_dequantize(int type, const void *src, float *dst, int64_t n) {
    legacy_block_fn fn = legacy_fn(type);
    if (!fn) return err_set(M40LLM_ERR_UNSUPPORTED, "quant: type %d is not a 32-block type", type);
    const int bs = quant_info(type)->type_size;
    const uint8_t *p = src;
    for (int64_t i = 0; i < n / 32; i++) fn(p + i * bs, dst + i * 32);
    return M40LLM_OK;
}

/* One loop per type with the block function inlined: dequantize a block to
 * the stack, then a vectorizable multiply-add against the activations. */
#define LEGACY_DOT(NAME, FN, BS)                                                                   \
    static float NAME(const uint8_t *w, const float *x, int64_t n) {                               \
        float acc[8] = {0};                                                                        \
        float buf[32];                                                                             \
        for (int64_t i = 0; i < n / 32; i++) {                                                     \
            FN(w + i * (BS), buf);                                                                 \
            quant_dot_acc(acc, buf, x + i * 32, 32);                                               \
        }                                                                                          \
        return quant_acc_sum(acc);                                                                 \
    }

LEGACY_DOT(dot_q4_0, deq_q4_0, 18)
LEGACY_DOT(dot_q4_1, deq_q4_1, 20)
LEGACY_DOT(dot_q5_0, deq_q5_0, 22)
LEGACY_DOT(dot_q5_1, deq_q5_1, 24)
LEGACY_DOT(dot_q8_0, deq_q8_0, 34)

float quant_legacy_dot(int type, const void *w, const float *x, int64_t n) {
    switch (type) {
    case QT_Q4_0:
        return dot_q4_0(w, x, n);
    case QT_Q4_1:
        return dot_q4_1(w, x, n);
    case QT_Q5_0:
        return dot_q5_0(w, x, n);
    case QT_Q5_1:
        return dot_q5_1(w, x, n);
    case QT_Q8_0:
        return dot_q8_0(w, x, n);
    default:
        return 0.0f;
    }
}
