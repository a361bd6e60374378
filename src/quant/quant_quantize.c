/* Reference quantizers for the legacy 32-element block types (Q4_0, Q4_1,
 * Q5_0, Q5_1, Q8_0): one scale (and min) per block from the block's extreme
 * values, then round each value to the grid. Same arithmetic as ggml's
 * quantize_row_*_ref, so the blocks match what llama.cpp would write. */
#include <math.h>

#include "err.h"
#include "quant_internal.h"

static void put_half(uint8_t *p, float v) {
    uint16_t h = quant_f32_to_f16(v);
    p[0] = (uint8_t)h;
    p[1] = (uint8_t)(h >> 8);
}

static void put_le32(uint8_t *p, uint32_t v) {
    for (int i = 0; i < 4; i++) p[i] = (uint8_t)(v >> (8 * i));
}

/* The value of largest magnitude, keeping its sign: symmetric types map it
 * to the most negative grid point (-8 or -16), which gains one level. */
static float signed_absmax(const float *x, int n) {
    float amax = 0.0f, max = 0.0f;
    for (int j = 0; j < n; j++) {
        if (fabsf(x[j]) > amax) {
            amax = fabsf(x[j]);
            max = x[j];
        }
    }
    return max;
}

static void min_max(const float *x, int n, float *mn, float *mx) {
    float lo = INFINITY, hi = -INFINITY;
    for (int j = 0; j < n; j++) {
        if (x[j] < lo) lo = x[j];
        if (x[j] > hi) hi = x[j];
    }
    *mn = lo;
    *mx = hi;
}

/* Truncates v to an integer in lo..hi, as ggml's (int8_t) cast + MIN does for
 * in-range values, but defined for any float: when the block scale is
 * subnormal its inverse overflows and v can be inf or NaN (-> lo). */
static int trunc_clamp(float v, int lo, int hi) {
    if (!(v >= (float)lo)) return lo;
    if (v >= (float)hi) return hi;
    return (int)v;
}

static void quant_q4_0(const float *x, uint8_t *b) {
    const float d = signed_absmax(x, 32) / -8.0f;
    const float id = d != 0.0f ? 1.0f / d : 0.0f;
    put_half(b, d);
    for (int j = 0; j < 16; j++) {
        const int x0 = trunc_clamp(x[j] * id + 8.5f, 0, 15);
        const int x1 = trunc_clamp(x[j + 16] * id + 8.5f, 0, 15);
        b[2 + j] = (uint8_t)(x0 | x1 << 4);
    }
}

static void quant_q4_1(const float *x, uint8_t *b) {
    float mn, mx;
    min_max(x, 32, &mn, &mx);
    const float d = (mx - mn) / 15.0f;
    const float id = d != 0.0f ? 1.0f / d : 0.0f;
    put_half(b, d);
    put_half(b + 2, mn);
    for (int j = 0; j < 16; j++) {
        const int x0 = trunc_clamp((x[j] - mn) * id + 0.5f, 0, 15);
        const int x1 = trunc_clamp((x[j + 16] - mn) * id + 0.5f, 0, 15);
        b[4 + j] = (uint8_t)(x0 | x1 << 4);
    }
}

static void quant_q5_0(const float *x, uint8_t *b) {
    const float d = signed_absmax(x, 32) / -16.0f;
    const float id = d != 0.0f ? 1.0f / d : 0.0f;
    uint32_t qh = 0;
    put_half(b, d);
    for (int j = 0; j < 16; j++) {
        const int x0 = trunc_clamp(x[j] * id + 16.5f, 0, 31);
        const int x1 = trunc_clamp(x[j + 16] * id + 16.5f, 0, 31);
        b[6 + j] = (uint8_t)((x0 & 0xF) | (x1 & 0xF) << 4);
        qh |= (uint32_t)(x0 >> 4) << j;
        qh |= (uint32_t)(x1 >> 4) << (j + 16);
    }
    put_le32(b + 2, qh);
}

static void quant_q5_1(const float *x, uint8_t *b) {
    float mn, mx;
    min_max(x, 32, &mn, &mx);
    const float d = (mx - mn) / 31.0f;
    const float id = d != 0.0f ? 1.0f / d : 0.0f;
    uint32_t qh = 0;
    put_half(b, d);
    put_half(b + 2, mn);
    for (int j = 0; j < 16; j++) {
        const int x0 = trunc_clamp((x[j] - mn) * id + 0.5f, 0, 31);
        const int x1 = trunc_clamp((x[j + 16] - mn) * id + 0.5f, 0, 31);
        b[8 + j] = (uint8_t)((x0 & 0xF) | (x1 & 0xF) << 4);
        qh |= (uint32_t)(x0 >> 4) << j;
        qh |= (uint32_t)(x1 >> 4) << (j + 16);
    }
    put_le32(b + 4, qh);
}

static void quant_q8_0(const float *x, uint8_t *b) {
    float amax = 0.0f;
    for (int j = 0; j < 32; j++) amax = fmaxf(amax, fabsf(x[j]));
    const float d = amax / 127.0f;
    const float id = d != 0.0f ? 1.0f / d : 0.0f;
    put_half(b, d);
    for (int j = 0; j < 32; j++)
        b[2 + j] = (uint8_t)(int8_t)trunc_clamp(roundf(x[j] * id), -127, 127);
}

int quant_legacy_quantize(int type, const float *src, void *dst, int64_t n) {
    void (*fn)(const float *, uint8_t *);
    switch (type) {
    case QT_Q4_0:
        fn = quant_q4_0;
        break;
    case QT_Q4_1:
        fn = quant_q4_1;
        break;
    case QT_Q5_0:
        fn = quant_q5_0;
        break;
    case QT_Q5_1:
        fn = quant_q5_1;
        break;
    case QT_Q8_0:
        fn = quant_q8_0;
        break;
    default:
        return err_set(M40LLM_ERR_UNSUPPORTED, "quant: no quantizer for type %d", type);
    }
    for (int64_t i = 0; i < n; i++)
        if (!isfinite(src[i]))
            return err_set(M40LLM_ERR_INVALID_ARG, "quant: value %lld is not finite", (long long)i);
    const int bs = quant_info(type)->type_size;
    uint8_t *p = dst;
    for (int64_t i = 0; i < n / 32; i++) fn(src + i * 32, p + i * bs);
    return M40LLM_OK;
}
