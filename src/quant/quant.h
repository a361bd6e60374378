/* Tensor element types (ggml numbering), block layouts, CPU dequantization,
 * FP32-activation dot products and quantizers.
 *
 * A row of n elements of a block type is n / block_size consecutive blocks.
 * Dequantization reproduces ggml's bit for bit (same float operations). */
#ifndef M40_QUANT_H
#define M40_QUANT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef enum quant_type {
    QT_F32 = 0,
    QT_F16 = 1,
    QT_Q4_0 = 2,
    QT_Q4_1 = 3,
    QT_Q5_0 = 6,
    QT_Q5_1 = 7,
    QT_Q8_0 = 8,
    QT_Q8_1 = 9,
    QT_Q2_K = 10,
    QT_Q3_K = 11,
    QT_Q4_K = 12,
    QT_Q5_K = 13,
    QT_Q6_K = 14,
    QT_Q8_K = 15,
    QT_BF16 = 30,
    QT_COUNT = 40 /* bound for tables indexed by type id */
} quant_type;

#define QK4_0        32
#define QK4_1        32
#define QK5_0        32
#define QK5_1        32
#define QK8_0        32
#define QK_K         256
#define K_SCALE_SIZE 12

/* Block layouts, identical to GGUF's on-disk bytes. Half floats are stored
 * as uint16_t bit patterns. */
typedef struct {
    uint16_t d;
    uint8_t qs[QK4_0 / 2];
} block_q4_0; /* 18 B */
typedef struct {
    uint16_t d, m;
    uint8_t qs[QK4_1 / 2];
} block_q4_1; /* 20 B */
typedef struct {
    uint16_t d;
    uint8_t qh[4];
    uint8_t qs[QK5_0 / 2];
} block_q5_0; /* 22 B */
typedef struct {
    uint16_t d, m;
    uint8_t qh[4];
    uint8_t qs[QK5_1 / 2];
} block_q5_1; /* 24 B */
typedef struct {
    uint16_t d;
    int8_t qs[QK8_0];
} block_q8_0; /* 34 B */
typedef struct {
    uint8_t scales[QK_K / 16]; /* 4-bit scale | 4-bit min per 16 values */
    uint8_t qs[QK_K / 4];      /* 2-bit quants */
    uint16_t d, dmin;
} block_q2_K; /* 84 B */
typedef struct {
    uint8_t hmask[QK_K / 8]; /* high bit */
    uint8_t qs[QK_K / 4];    /* low 2 bits */
    uint8_t scales[12];      /* 16 6-bit scales */
    uint16_t d;
} block_q3_K; /* 110 B */
typedef struct {
    uint16_t d, dmin;
    uint8_t scales[K_SCALE_SIZE]; /* 8 6-bit scales and mins */
    uint8_t qs[QK_K / 2];
} block_q4_K; /* 144 B */
typedef struct {
    uint16_t d, dmin;
    uint8_t scales[K_SCALE_SIZE];
    uint8_t qh[QK_K / 8];
    uint8_t qs[QK_K / 2];
} block_q5_K; /* 176 B */
typedef struct {
    uint8_t ql[QK_K / 2];     /* low 4 bits */
    uint8_t qh[QK_K / 4];     /* high 2 bits */
    int8_t scales[QK_K / 16]; /* 8-bit scales */
    uint16_t d;
} block_q6_K; /* 210 B */

typedef struct quant_type_info {
    const char *name;  /* "Q4_K", as GGUF tools print it */
    int block_size;    /* elements per block (1 for F32/F16/BF16) */
    int type_size;     /* bytes per block */
    bool can_dequant;  /* dequantize + dot implemented */
    bool can_quantize; /* quantizer implemented */
} quant_type_info;

/* NULL for an unknown type id. */
const quant_type_info *quant_info(int type);
/* Type id by name (case-insensitive, "q4_k" or "Q4_K"); -1 if unknown. */
int quant_type_from_name(const char *name);
/* Bytes for n elements; 0 if the type is unknown or n is not a multiple of the block size. */
size_t quant_row_size(int type, int64_t n);

float quant_f16_to_f32(uint16_t h);
uint16_t quant_f32_to_f16(float f); /* round to nearest even, as ggml */
float quant_bf16_to_f32(uint16_t h);
uint16_t quant_f32_to_bf16(float f); /* round to nearest even; NaN kept quiet */

/* Dequantizes n elements (n a multiple of the block size). Returns
 * M40LLM_OK or M40LLM_ERR_UNSUPPORTED / M40LLM_ERR_INVALID_ARG. */
int quant_dequantize_row(int type, const void *src, float *dst, int64_t n);
/* sum_i w[i] * x[i] over n elements of a weight row in its stored type, x in FP32.
 * The caller has checked the type with quant_info()->can_dequant. */
float quant_dot_row(int type, const void *w, const float *x, int64_t n);
/* out[j] = quant_dot_row(type, w, x + j * x_stride, n) for j < nx, bit for bit,
 * but each weight block is dequantized once per 4 activation rows: use it
 * for batches (prompt processing). */
void quant_dot_rows(int type, const void *w, const float *x, int64_t x_stride, int nx, int64_t n,
                    float *out);
/* Quantizes n FP32 values (n a multiple of the block size; all finite, else
 * M40LLM_ERR_INVALID_ARG). Same algorithms as llama.cpp's reference
 * (non-imatrix) quantizers, so the blocks are byte-identical to what
 * llama-quantize writes for the same rows (checked on the fixtures). */
int quant_quantize_row(int type, const float *src, void *dst, int64_t n);

#endif
