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
/* Nibbles are unpacked to bytes first (low nibbles are elements 0..15,
 * high nibbles 16..31), then converted in one contiguous pass. */
static inline void deq_q4_0(const uint8_t *b, float *y) {
    const float d = legacy_half(b);
    uint8_t v[32];
    quant_nibbles16(b + 2, v, v + 16);
    for (int j = 0; j < 32; j++) y[j] = (float)(v[j] - 8) * d;
}

static inline void deq_q4_1(const uint8_t *b, float *y) {
    const float d = legacy_half(b), m = legacy_half(b + 2);
    uint8_t v[32];
    quant_nibbles16(b + 4, v, v + 16);
    for (int j = 0; j < 32; j++) y[j] = (float)v[j] * d + m;
}

/* qh bit j is the 5th bit of element j (0..31). Tested through a table of
 * bit masks rather than a per-element shift count, which SSE2 cannot
 * vectorize. */
static const uint32_t legacy_bit[32] = {
    1u << 0,  1u << 1,  1u << 2,  1u << 3,  1u << 4,  1u << 5,  1u << 6,  1u << 7,
    1u << 8,  1u << 9,  1u << 10, 1u << 11, 1u << 12, 1u << 13, 1u << 14, 1u << 15,
    1u << 16, 1u << 17, 1u << 18, 1u << 19, 1u << 20, 1u << 21, 1u << 22, 1u << 23,
    1u << 24, 1u << 25, 1u << 26, 1u << 27, 1u << 28, 1u << 29, 1u << 30, 1u << 31};

static inline void deq_5bit(const uint8_t *qh4, const uint8_t *qs, int *v) {
    const uint32_t qh = quant_le32(qh4);
    uint8_t n[32];
    quant_nibbles16(qs, n, n + 16);
    for (int j = 0; j < 32; j++) v[j] = n[j] | ((qh & legacy_bit[j]) ? 0x10 : 0);
}

static inline void deq_q5_0(const uint8_t *b, float *y) {
    const float d = legacy_half(b);
    int v[32];
    deq_5bit(b + 2, b + 6, v);
    for (int j = 0; j < 32; j++) y[j] = (float)(v[j] - 16) * d;
}

static inline void deq_q5_1(const uint8_t *b, float *y) {
    const float d = legacy_half(b), m = legacy_half(b + 2);
    int v[32];
    deq_5bit(b + 4, b + 8, v);
    for (int j = 0; j < 32; j++) y[j] = (float)v[j] * d + m;
}

static inline void deq_q8_0(const uint8_t *b, float *y) {
    const float d = legacy_half(b);
    const int8_t *qs = (const int8_t *)(b + 2);
    for (int j = 0; j < 32; j++) y[j] = (float)qs[j] * d;
}

QUANT_DEFINE_DEQ(q4_0, deq_q4_0, 32, 18)
QUANT_DEFINE_DEQ(q4_1, deq_q4_1, 32, 20)
QUANT_DEFINE_DEQ(q5_0, deq_q5_0, 32, 22)
QUANT_DEFINE_DEQ(q5_1, deq_q5_1, 32, 24)
QUANT_DEFINE_DEQ(q8_0, deq_q8_0, 32, 34)

int quant_legacy_dequantize(int type, const void *src, float *dst, int64_t n) {
    switch (type) {
    case QT_Q4_0:
        q4_0_deq(src, dst, n);
        break;
    case QT_Q4_1:
        q4_1_deq(src, dst, n);
        break;
    case QT_Q5_0:
        q5_0_deq(src, dst, n);
        break;
    case QT_Q5_1:
        q5_1_deq(src, dst, n);
        break;
    case QT_Q8_0:
        q8_0_deq(src, dst, n);
        break;
    default:
        return err_set(M40LLM_ERR_UNSUPPORTED, "quant: type %d is not a 32-block type", type);
    }
    return M40LLM_OK;
}

/* One loop per type with the block function inlined: dequantize a block to
 * the stack, then a vectorizable multiply-add against the activations. */
QUANT_DEFINE_DOT(dot_q4_0, deq_q4_0, 32, 18)
QUANT_DEFINE_DOT(dot_q4_1, deq_q4_1, 32, 20)
QUANT_DEFINE_DOT(dot_q5_0, deq_q5_0, 32, 22)
QUANT_DEFINE_DOT(dot_q5_1, deq_q5_1, 32, 24)
QUANT_DEFINE_DOT(dot_q8_0, deq_q8_0, 32, 34)

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

void quant_legacy_dot_rows(int type, const void *w, const float *x, int64_t xs, int nx, int64_t n,
                           float *out) {
    switch (type) {
    case QT_Q4_0:
        dot_q4_0_rows(w, x, xs, nx, n, out);
        break;
    case QT_Q4_1:
        dot_q4_1_rows(w, x, xs, nx, n, out);
        break;
    case QT_Q5_0:
        dot_q5_0_rows(w, x, xs, nx, n, out);
        break;
    case QT_Q5_1:
        dot_q5_1_rows(w, x, xs, nx, n, out);
        break;
    case QT_Q8_0:
        dot_q8_0_rows(w, x, xs, nx, n, out);
        break;
    default:
        break;
    }
}
