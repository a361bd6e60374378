/* Type table and scalar conversions shared by every quant module. */
#include <math.h>
#include <string.h>
#include <strings.h>

#include "quant.h"

static const quant_type_info quant_table[QT_COUNT] = {
    [QT_F32] = {"F32", 1, 4, true, true},
    [QT_F16] = {"F16", 1, 2, true, true},
    [QT_BF16] = {"BF16", 1, 2, true, true},
    [QT_Q4_0] = {"Q4_0", QK4_0, sizeof(block_q4_0), true, true},
    [QT_Q4_1] = {"Q4_1", QK4_1, sizeof(block_q4_1), true, true},
    [QT_Q5_0] = {"Q5_0", QK5_0, sizeof(block_q5_0), true, true},
    [QT_Q5_1] = {"Q5_1", QK5_1, sizeof(block_q5_1), true, true},
    [QT_Q8_0] = {"Q8_0", QK8_0, sizeof(block_q8_0), true, true},
    /* Q8_1 and Q8_K are llama.cpp's activation formats: known sizes, no weights use them */
    [QT_Q8_1] = {"Q8_1", 32, 36, false, false},
    [QT_Q2_K] = {"Q2_K", QK_K, sizeof(block_q2_K), true, true},
    [QT_Q3_K] = {"Q3_K", QK_K, sizeof(block_q3_K), true, true},
    [QT_Q4_K] = {"Q4_K", QK_K, sizeof(block_q4_K), true, true},
    [QT_Q5_K] = {"Q5_K", QK_K, sizeof(block_q5_K), true, true},
    [QT_Q6_K] = {"Q6_K", QK_K, sizeof(block_q6_K), true, true},
    [QT_Q8_K] = {"Q8_K", QK_K, 4 + QK_K + QK_K / 16 * 2, false, false},
};

_Static_assert(sizeof(block_q4_0) == 18, "q4_0 layout");
_Static_assert(sizeof(block_q4_1) == 20, "q4_1 layout");
_Static_assert(sizeof(block_q5_0) == 22, "q5_0 layout");
_Static_assert(sizeof(block_q5_1) == 24, "q5_1 layout");
_Static_assert(sizeof(block_q8_0) == 34, "q8_0 layout");
_Static_assert(sizeof(block_q2_K) == 84, "q2_K layout");
_Static_assert(sizeof(block_q3_K) == 110, "q3_K layout");
_Static_assert(sizeof(block_q4_K) == 144, "q4_K layout");
_Static_assert(sizeof(block_q5_K) == 176, "q5_K layout");
_Static_assert(sizeof(block_q6_K) == 210, "q6_K layout");

const quant_type_info *quant_info(int type) {
    if (type < 0 || type >= QT_COUNT || !quant_table[type].name) return NULL;
    return &quant_table[type];
}

int quant_type_from_name(const char *name) {
    if (!name) return -1;
    for (int t = 0; t < QT_COUNT; t++)
        if (quant_table[t].name && !strcasecmp(quant_table[t].name, name)) return t;
    return -1;
}

size_t quant_row_size(int type, int64_t n) {
    const quant_type_info *q = quant_info(type);
    if (!q || n < 0 || n % q->block_size) return 0;
    return (size_t)(n / q->block_size) * (size_t)q->type_size;
}

float quant_f16_to_f32(uint16_t h) {
    uint32_t sign = (uint32_t)(h & 0x8000) << 16;
    uint32_t exp = (h >> 10) & 0x1f;
    uint32_t man = h & 0x3ff;
    uint32_t bits;
    if (exp == 0) {
        if (man == 0) {
            bits = sign;
        } else { /* subnormal: normalise */
            int e = -1;
            do {
                e++;
                man <<= 1;
            } while (!(man & 0x400));
            bits = sign | ((uint32_t)(127 - 15 - e) << 23) | ((man & 0x3ff) << 13);
        }
    } else if (exp == 31) {
        bits = sign | 0x7f800000u | (man << 13);
    } else {
        bits = sign | ((exp + 127 - 15) << 23) | (man << 13);
    }
    float f;
    memcpy(&f, &bits, 4);
    return f;
}

uint16_t quant_f32_to_f16(float f) {
    uint32_t x;
    memcpy(&x, &f, 4);
    uint32_t sign = (x >> 16) & 0x8000;
    uint32_t absx = x & 0x7fffffffu;
    if (absx > 0x7f800000u) return (uint16_t)(sign | 0x7e00);  /* NaN */
    if (absx >= 0x477ff000u) return (uint16_t)(sign | 0x7c00); /* overflow -> inf */
    if (absx < 0x38800000u) {                                  /* subnormal or zero */
        if (absx < 0x33000000u) return (uint16_t)sign;
        uint32_t e = absx >> 23;
        uint32_t m = (absx & 0x7fffff) | 0x800000;
        uint32_t shift = 126 - e; /* 14..24 */
        uint32_t r = m >> shift;
        uint32_t rem = m & ((1u << shift) - 1);
        uint32_t half = 1u << (shift - 1);
        if (rem > half || (rem == half && (r & 1))) r++;
        return (uint16_t)(sign | r);
    }
    uint32_t r = ((absx >> 13) - (112u << 10));
    uint32_t rem = absx & 0x1fff;
    if (rem > 0x1000 || (rem == 0x1000 && (r & 1))) r++;
    return (uint16_t)(sign | r);
}

float quant_bf16_to_f32(uint16_t h) {
    uint32_t bits = (uint32_t)h << 16;
    float f;
    memcpy(&f, &bits, 4);
    return f;
}

uint16_t quant_f32_to_bf16(float f) {
    uint32_t x;
    memcpy(&x, &f, 4);
    if ((x & 0x7fffffffu) > 0x7f800000u) return (uint16_t)((x >> 16) | 0x40); /* quiet NaN */
    x += 0x7fff + ((x >> 16) & 1);
    return (uint16_t)(x >> 16);
}
