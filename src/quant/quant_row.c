/* Row-level entry points of quant.h: argument checks, the float types
 * (F32, F16, BF16) and dispatch to the block-type families. */
#include "err.h"
#include "quant_internal.h"

static bool row_is_legacy(int t) {
    return t == QT_Q4_0 || t == QT_Q4_1 || t == QT_Q5_0 || t == QT_Q5_1 || t == QT_Q8_0;
}

static bool row_is_k(int t) {
    return t == QT_Q2_K || t == QT_Q3_K || t == QT_Q4_K || t == QT_Q5_K || t == QT_Q6_K;
}

static int row_check(const char *what, int type, const void *a, const void *b, int64_t n,
                     bool quantize) {
    const quant_type_info *q = quant_info(type);
    if (!q) return err_set(M40LLM_ERR_UNSUPPORTED, "quant: %s: unknown tensor type %d", what, type);
    if (quantize ? !q->can_quantize : !q->can_dequant)
        return err_set(M40LLM_ERR_UNSUPPORTED, "quant: %s: type %s is not supported", what,
                       q->name);
    if (n < 0 || n % q->block_size)
        return err_set(M40LLM_ERR_INVALID_ARG,
                       "quant: %s: %lld elements is not a multiple of %s's block size %d", what,
                       (long long)n, q->name, q->block_size);
    if (n > 0 && (!a || !b)) return err_set(M40LLM_ERR_INVALID_ARG, "quant: %s: NULL buffer", what);
    return M40LLM_OK;
}

int quant_dequantize_row(int type, const void *src, float *dst, int64_t n) {
    int rc = row_check("dequantize", type, src, dst, n, false);
    if (rc) return rc;
    if (type == QT_F32) {
        memcpy(dst, src, (size_t)n * 4);
    } else if (type == QT_F16) {
        const uint8_t *p = src;
        for (int64_t i = 0; i < n; i++)
            dst[i] = quant_h2f((uint16_t)(p[2 * i] | p[2 * i + 1] << 8));
    } else if (type == QT_BF16) {
        const uint8_t *p = src;
        for (int64_t i = 0; i < n; i++)
            dst[i] = quant_bf2f((uint16_t)(p[2 * i] | p[2 * i + 1] << 8));
    } else if (row_is_legacy(type)) {
        return quant_legacy_dequantize(type, src, dst, n);
    } else if (row_is_k(type)) {
        return quant_k_dequantize(type, src, dst, n);
    }
    return M40LLM_OK;
}

/* Float rows: chunks of 64 (converted to the stack for F16/BF16), then
 * multiply-add; a tail when n is not a multiple of 8 is summed separately.
 * One body for the one-row and the multi-row dot, so both give identical
 * bits. */
#define FLOAT_CHUNK 64

static inline __attribute__((always_inline)) void
dot_float_n(int type, const uint8_t *w, const float *x, int64_t xs, int nx, int64_t n, float *out) {
    quant_v8 acc[QUANT_ROWS] = {{0}};
    float buf[FLOAT_CHUNK];
    const int64_t n8 = n & ~(int64_t)7;
    for (int64_t i = 0; i < n8; i += FLOAT_CHUNK) {
        const int len = (int)(n8 - i < FLOAT_CHUNK ? n8 - i : FLOAT_CHUNK);
        const float *wf = buf;
        const uint8_t *p = w + 2 * i;
        if (type == QT_F32)
            wf = (const float *)(const void *)w + i;
        else if (type == QT_BF16)
            for (int k = 0; k < len; k++)
                buf[k] = quant_bf2f((uint16_t)(p[2 * k] | p[2 * k + 1] << 8));
        else
            for (int k = 0; k < len; k++)
                buf[k] = quant_h2f((uint16_t)(p[2 * k] | p[2 * k + 1] << 8));
        for (int j = 0; j < nx; j++) quant_dot_acc(&acc[j], wf, x + j * xs + i, len);
    }
    for (int j = 0; j < nx; j++) {
        float tail = 0.0f;
        for (int64_t i = n8; i < n; i++) {
            float wi;
            if (type == QT_F32) {
                memcpy(&wi, w + 4 * i, 4);
            } else {
                const uint16_t h = (uint16_t)(w[2 * i] | w[2 * i + 1] << 8);
                wi = type == QT_BF16 ? quant_bf2f(h) : quant_h2f(h);
            }
            tail += wi * x[j * xs + i];
        }
        out[j] = quant_acc_sum(&acc[j]) + tail;
    }
}

static float dot_float(int type, const uint8_t *w, const float *x, int64_t n) {
    float r;
    if (type == QT_F32)
        dot_float_n(QT_F32, w, x, 0, 1, n, &r);
    else if (type == QT_BF16)
        dot_float_n(QT_BF16, w, x, 0, 1, n, &r);
    else
        dot_float_n(QT_F16, w, x, 0, 1, n, &r);
    return r;
}

static void dot_float_rows(int type, const uint8_t *w, const float *x, int64_t xs, int nx,
                           int64_t n, float *out) {
    int j = 0;
    for (; j + QUANT_ROWS <= nx; j += QUANT_ROWS) {
        if (type == QT_F32)
            dot_float_n(QT_F32, w, x + j * xs, xs, QUANT_ROWS, n, out + j);
        else if (type == QT_BF16)
            dot_float_n(QT_BF16, w, x + j * xs, xs, QUANT_ROWS, n, out + j);
        else
            dot_float_n(QT_F16, w, x + j * xs, xs, QUANT_ROWS, n, out + j);
    }
    for (; j < nx; j++) out[j] = dot_float(type, w, x + j * xs, n);
}

float quant_dot_row(int type, const void *w, const float *x, int64_t n) {
    if (n <= 0) return 0.0f;
    if (type == QT_F32 || type == QT_F16 || type == QT_BF16) return dot_float(type, w, x, n);
    if (row_is_legacy(type)) return quant_legacy_dot(type, w, x, n);
    if (row_is_k(type)) return quant_k_dot(type, w, x, n);
    return 0.0f;
}

void quant_dot_rows(int type, const void *w, const float *x, int64_t x_stride, int nx, int64_t n,
                    float *out) {
    if (nx <= 0) return;
    if (n <= 0) {
        for (int j = 0; j < nx; j++) out[j] = 0.0f;
        return;
    }
    if (type == QT_F32 || type == QT_F16 || type == QT_BF16)
        dot_float_rows(type, w, x, x_stride, nx, n, out);
    else if (row_is_legacy(type))
        quant_legacy_dot_rows(type, w, x, x_stride, nx, n, out);
    else if (row_is_k(type))
        quant_k_dot_rows(type, w, x, x_stride, nx, n, out);
    else
        for (int j = 0; j < nx; j++) out[j] = 0.0f;
}

int quant_quantize_row(int type, const float *src, void *dst, int64_t n) {
    int rc = row_check("quantize", type, src, dst, n, true);
    if (rc) return rc;
    if (type == QT_F32) {
        memcpy(dst, src, (size_t)n * 4);
    } else if (type == QT_F16 || type == QT_BF16) {
        uint8_t *p = dst;
        for (int64_t i = 0; i < n; i++) {
            uint16_t h = type == QT_F16 ? quant_f32_to_f16(src[i]) : quant_f32_to_bf16(src[i]);
            p[2 * i] = (uint8_t)h;
            p[2 * i + 1] = (uint8_t)(h >> 8);
        }
    } else if (row_is_legacy(type)) {
        return quant_legacy_quantize(type, src, dst, n);
    } else if (row_is_k(type)) {
        return quant_k_quantize(type, src, dst, n);
    }
    return M40LLM_OK;
}
