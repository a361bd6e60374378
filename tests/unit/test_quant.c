/* Quantized formats: conversions, hand-made blocks with known values,
 * quantize -> dequantize error bounds, dot products, bad arguments. */
#include <stdint.h>

#include "check.h"
#include "m40llm.h"
#include "quant.h"

static const int all_types[] = {QT_F32,  QT_F16,  QT_BF16, QT_Q4_0, QT_Q4_1, QT_Q5_0, QT_Q5_1,
                                QT_Q8_0, QT_Q2_K, QT_Q3_K, QT_Q4_K, QT_Q5_K, QT_Q6_K};
#define N_TYPES (int)(sizeof all_types / sizeof all_types[0])

static uint32_t rng_state = 12345;
static float rnd_uniform(void) { /* xorshift32 -> [0,1) */
    rng_state ^= rng_state << 13;
    rng_state ^= rng_state >> 17;
    rng_state ^= rng_state << 5;
    return (float)(rng_state >> 8) / 16777216.0f;
}
static float rnd_normal(void) { /* Box-Muller */
    float u = rnd_uniform() + 1e-7f, v = rnd_uniform();
    return sqrtf(-2.0f * logf(u)) * cosf(6.2831853f * v);
}

static uint32_t fbits(float f) {
    uint32_t u;
    memcpy(&u, &f, 4);
    return u;
}
static void put16(uint8_t *p, uint16_t v) {
    p[0] = (uint8_t)v;
    p[1] = (uint8_t)(v >> 8);
}

static void test_sizes(void) {
    CHECK(quant_row_size(QT_F32, 10) == 40);
    CHECK(quant_row_size(QT_F16, 10) == 20);
    CHECK(quant_row_size(QT_BF16, 3) == 6);
    CHECK(quant_row_size(QT_Q4_0, 64) == 36);
    CHECK(quant_row_size(QT_Q4_1, 32) == 20);
    CHECK(quant_row_size(QT_Q5_0, 32) == 22);
    CHECK(quant_row_size(QT_Q5_1, 32) == 24);
    CHECK(quant_row_size(QT_Q8_0, 4096) == 4096 / 32 * 34);
    CHECK(quant_row_size(QT_Q2_K, 512) == 168);
    CHECK(quant_row_size(QT_Q3_K, 256) == 110);
    CHECK(quant_row_size(QT_Q4_K, 256) == 144);
    CHECK(quant_row_size(QT_Q5_K, 256) == 176);
    CHECK(quant_row_size(QT_Q6_K, 256) == 210);
    CHECK(quant_row_size(QT_Q4_0, 33) == 0);
    CHECK(quant_row_size(QT_Q4_K, 128) == 0);
    CHECK(quant_row_size(5, 32) == 0); /* unused id */
    CHECK(quant_row_size(QT_F32, -1) == 0);
    CHECK(quant_type_from_name("q4_k") == QT_Q4_K);
    CHECK(quant_type_from_name("BF16") == QT_BF16);
    CHECK(quant_type_from_name("Q7_0") == -1);
    for (int i = 0; i < N_TYPES; i++) {
        const quant_type_info *q = quant_info(all_types[i]);
        CHECKF(q && q->can_dequant && q->can_quantize, "type %d", all_types[i]);
    }
}

static void test_half(void) {
    /* every F16 pattern: the row path (branch-free) equals the scalar path,
     * and float -> half gives the pattern back */
    static uint8_t raw[65536 * 2];
    static float out[65536];
    for (int h = 0; h < 65536; h++) put16(raw + 2 * h, (uint16_t)h);
    CHECK(quant_dequantize_row(QT_F16, raw, out, 65536) == M40LLM_OK);
    int bad_row = 0, bad_trip = 0;
    for (int h = 0; h < 65536; h++) {
        float s = quant_f16_to_f32((uint16_t)h);
        bool nan = ((h >> 10) & 31) == 31 && (h & 0x3ff);
        if (nan ? !(isnan(s) && isnan(out[h])) : fbits(s) != fbits(out[h])) bad_row++;
        if (!nan && quant_f32_to_f16(s) != h) bad_trip++;
    }
    CHECKF(bad_row == 0, "%d F16 patterns differ between row and scalar conversion", bad_row);
    CHECKF(bad_trip == 0, "%d F16 patterns do not round-trip", bad_trip);
    CHECK(quant_f16_to_f32(0x3C00) == 1.0f);
    CHECK(quant_f16_to_f32(0xC000) == -2.0f);
    CHECK(quant_f16_to_f32(0x0001) == 0x1p-24f);
    CHECK(quant_f32_to_f16(1.0f + 0x1p-11f) == 0x3C00);     /* tie -> even */
    CHECK(quant_f32_to_f16(1.0f + 3 * 0x1p-11f) == 0x3C02); /* tie -> even (up) */
    CHECK(quant_f32_to_f16(1.0f + 0x1p-11f + 0x1p-20f) == 0x3C01);
    CHECK(quant_f32_to_f16(65519.0f) == 0x7BFF);
    CHECK(quant_f32_to_f16(65520.0f) == 0x7C00); /* rounds to inf */
    CHECK(quant_f32_to_f16(0x1p-25f) == 0x0000); /* tie -> even zero */
    CHECK(quant_f32_to_f16(3 * 0x1p-26f) == 0x0001);
    CHECK(quant_f32_to_f16(-0.0f) == 0x8000);
    CHECK((quant_f32_to_f16(NAN) & 0x7C00) == 0x7C00 && (quant_f32_to_f16(NAN) & 0x3FF));

    int bad_bf = 0;
    for (int h = 0; h < 65536; h++) {
        bool nan = ((h >> 7) & 0xFF) == 0xFF && (h & 0x7F);
        if (!nan && quant_f32_to_bf16(quant_bf16_to_f32((uint16_t)h)) != h) bad_bf++;
    }
    CHECKF(bad_bf == 0, "%d BF16 patterns do not round-trip", bad_bf);
    CHECK(quant_bf16_to_f32(0x3F80) == 1.0f);
    CHECK(quant_f32_to_bf16(1.0f + 0x1p-8f) == 0x3F80);
    CHECK(quant_f32_to_bf16(1.0f + 3 * 0x1p-8f) == 0x3F82);
    CHECK(isnan(quant_bf16_to_f32(quant_f32_to_bf16(NAN))));
}

/* ---- hand-made blocks: expected values from per-element index formulas ---- */

static void rnd_bytes(uint8_t *p, int n) {
    for (int i = 0; i < n; i++) p[i] = (uint8_t)(rnd_uniform() * 256.0f);
}

static int count_diff(const float *a, const float *b, int n) {
    int bad = 0;
    for (int i = 0; i < n; i++) bad += fbits(a[i]) != fbits(b[i]);
    return bad;
}

static void test_legacy_blocks(void) {
    uint8_t b[34];
    float y[32], e[32];
    /* Q4_0, d = 0.5, low nibbles 0..15, high nibbles 15..0 */
    put16(b, 0x3800);
    for (int j = 0; j < 16; j++) b[2 + j] = (uint8_t)(j | (15 - j) << 4);
    CHECK(quant_dequantize_row(QT_Q4_0, b, y, 32) == M40LLM_OK);
    for (int j = 0; j < 16; j++) {
        CHECKF(y[j] == (j - 8) * 0.5f, "q4_0[%d] = %g", j, y[j]);
        CHECKF(y[j + 16] == (7 - j) * 0.5f, "q4_0[%d] = %g", j + 16, y[j + 16]);
    }
    /* Q4_1, d = 0.25, m = -1 */
    put16(b, 0x3400);
    put16(b + 2, 0xBC00);
    for (int j = 0; j < 16; j++) b[4 + j] = (uint8_t)(j | (15 - j) << 4);
    CHECK(quant_dequantize_row(QT_Q4_1, b, y, 32) == M40LLM_OK);
    for (int j = 0; j < 16; j++) {
        CHECKF(y[j] == j * 0.25f - 1.0f, "q4_1[%d] = %g", j, y[j]);
        CHECKF(y[j + 16] == (15 - j) * 0.25f - 1.0f, "q4_1[%d] = %g", j + 16, y[j + 16]);
    }
    /* Q5_0 / Q5_1: bit i of qh is the 5th bit of element i */
    for (int t = 0; t < 2; t++) {
        int off = t ? 4 : 2;
        rnd_bytes(b, 24);
        put16(b, 0x3C00);            /* d = 1 */
        if (t) put16(b + 2, 0x3800); /* m = 0.5 */
        uint32_t qh = (uint32_t)b[off] | (uint32_t)b[off + 1] << 8 | (uint32_t)b[off + 2] << 16 |
                      (uint32_t)b[off + 3] << 24;
        for (int i = 0; i < 32; i++) {
            int lo = i < 16 ? b[off + 4 + i] & 0xF : b[off + 4 + i - 16] >> 4;
            int q = lo | (int)((qh >> i) & 1) << 4;
            e[i] = t ? (float)q * 1.0f + 0.5f : (float)(q - 16);
        }
        CHECK(quant_dequantize_row(t ? QT_Q5_1 : QT_Q5_0, b, y, 32) == M40LLM_OK);
        CHECKF(count_diff(y, e, 32) == 0, "Q5_%d hand block", t);
    }
    /* Q8_0, d = 0.125 */
    put16(b, 0x3000);
    for (int j = 0; j < 32; j++) b[2 + j] = (uint8_t)(int8_t)(j * 7 - 100);
    CHECK(quant_dequantize_row(QT_Q8_0, b, y, 32) == M40LLM_OK);
    for (int j = 0; j < 32; j++) CHECKF(y[j] == (j * 7 - 100) * 0.125f, "q8_0[%d]", j);
}

static void k4_sm(int j, const uint8_t *q, int *sc, int *mn) {
    if (j < 4) {
        *sc = q[j] & 63;
        *mn = q[j + 4] & 63;
    } else {
        *sc = (q[j + 4] & 0xF) | ((q[j - 4] >> 6) << 4);
        *mn = (q[j + 4] >> 4) | ((q[j] >> 6) << 4);
    }
}

static void test_k_blocks(void) {
    uint8_t b[2][210]; /* two blocks so indexing across blocks is covered */
    float y[512], e[512];
    for (int rep = 0; rep < 20; rep++) {
        /* Q2_K: scales[16] qs[64] d dmin */
        for (int k = 0; k < 2; k++) {
            rnd_bytes(b[k], 84);
            put16(b[k] + 80, 0x2E66 + k); /* ~0.1 */
            put16(b[k] + 82, 0x2A00);     /* 0.046875 */
        }
        uint8_t q2[168];
        memcpy(q2, b[0], 84);
        memcpy(q2 + 84, b[1], 84);
        for (int i = 0; i < 512; i++) {
            const uint8_t *B = q2 + 84 * (i / 256);
            int r = i % 256, n = r / 128, p = (r % 128) / 32, l = r % 32;
            int sc = B[r / 16];
            float d = quant_f16_to_f32((uint16_t)(B[80] | B[81] << 8));
            float dm = quant_f16_to_f32((uint16_t)(B[82] | B[83] << 8));
            int q = (B[16 + 32 * n + l] >> (2 * p)) & 3;
            e[i] = d * (float)(sc & 0xF) * (float)q - dm * (float)(sc >> 4);
        }
        CHECK(quant_dequantize_row(QT_Q2_K, q2, y, 512) == M40LLM_OK);
        CHECKF(count_diff(y, e, 512) == 0, "Q2_K hand blocks (rep %d)", rep);

        /* Q3_K: hmask[32] qs[64] scales[12] d */
        uint8_t q3[220];
        rnd_bytes(q3, 220);
        put16(q3 + 108, 0x2E66);
        put16(q3 + 218, 0xAE66);
        for (int i = 0; i < 512; i++) {
            const uint8_t *B = q3 + 110 * (i / 256);
            int r = i % 256, n = r / 128, p = (r % 128) / 32, l = r % 32, j = r / 16;
            const uint8_t *s = B + 96;
            int lo4 = j < 8 ? s[j] & 0xF : s[j - 8] >> 4;
            int sc = (lo4 | ((s[8 + j % 4] >> (2 * (j / 4))) & 3) << 4) - 32;
            int q = (B[32 + 32 * n + l] >> (2 * p)) & 3;
            int hbit = (B[l] >> (4 * n + p)) & 1;
            float d = quant_f16_to_f32((uint16_t)(B[108] | B[109] << 8));
            e[i] = d * (float)sc * (float)(q - (hbit ? 0 : 4));
        }
        CHECK(quant_dequantize_row(QT_Q3_K, q3, y, 512) == M40LLM_OK);
        CHECKF(count_diff(y, e, 512) == 0, "Q3_K hand blocks (rep %d)", rep);

        /* Q4_K and Q5_K: d dmin scales[12] [qh[32]] qs[128] */
        for (int five = 0; five < 2; five++) {
            int bs = five ? 176 : 144, qs_off = five ? 48 : 16;
            uint8_t qk[352];
            rnd_bytes(qk, 2 * bs);
            for (int k = 0; k < 2; k++) {
                put16(qk + bs * k, 0x2E66);
                put16(qk + bs * k + 2, 0x2A00 + k);
            }
            for (int i = 0; i < 512; i++) {
                const uint8_t *B = qk + bs * (i / 256);
                int r = i % 256, g = r / 64, h = (r % 64) / 32, l = r % 32, sc, mn;
                k4_sm(2 * g + h, B + 4, &sc, &mn);
                int q = B[qs_off + 32 * g + l];
                q = h ? q >> 4 : q & 0xF;
                if (five) q += ((B[16 + l] >> (2 * g + h)) & 1) << 4;
                float d = quant_f16_to_f32((uint16_t)(B[0] | B[1] << 8));
                float dm = quant_f16_to_f32((uint16_t)(B[2] | B[3] << 8));
                e[i] = d * (float)sc * (float)q - dm * (float)mn;
            }
            CHECK(quant_dequantize_row(five ? QT_Q5_K : QT_Q4_K, qk, y, 512) == M40LLM_OK);
            CHECKF(count_diff(y, e, 512) == 0, "Q%d_K hand blocks (rep %d)", five ? 5 : 4, rep);
        }

        /* Q6_K: ql[128] qh[64] scales[16] d */
        uint8_t q6[420];
        rnd_bytes(q6, 420);
        put16(q6 + 208, 0x2E66);
        put16(q6 + 418, 0x1E66);
        for (int i = 0; i < 512; i++) {
            const uint8_t *B = q6 + 210 * (i / 256);
            int r = i % 256, n = r / 128, p = (r % 128) / 32, l = r % 32;
            int lq = B[64 * n + l + (p & 1) * 32];
            lq = p < 2 ? lq & 0xF : lq >> 4;
            int q = lq | ((B[128 + 32 * n + l] >> (2 * p)) & 3) << 4;
            float d = quant_f16_to_f32((uint16_t)(B[208] | B[209] << 8));
            e[i] = d * (float)(int8_t)B[192 + r / 16] * (float)(q - 32);
        }
        CHECK(quant_dequantize_row(QT_Q6_K, q6, y, 512) == M40LLM_OK);
        CHECKF(count_diff(y, e, 512) == 0, "Q6_K hand blocks (rep %d)", rep);
    }
    (void)b;
}

/* ---- quantize -> dequantize ---- */

#define NQ 8192

/* Largest error allowed for a value of a 32-block with extremes mn..mx and
 * amax = max |x|, for the legacy types (grid step d; the FP16 rounding of d
 * and m adds a little). */
static float legacy_bound(int type, float mn, float mx) {
    float amax = fmaxf(fabsf(mn), fabsf(mx));
    switch (type) {
    case QT_Q8_0:
        return 0.6f * amax / 127.0f; /* half a step */
    case QT_Q4_0:
        return 1.05f * amax / 8.0f; /* a full step on the side opposite the max */
    case QT_Q5_0:
        return 1.05f * amax / 16.0f;
    case QT_Q4_1:
        return 0.55f * (mx - mn) / 15.0f + fabsf(mn) * 0x1p-10f;
    case QT_Q5_1:
        return 0.55f * (mx - mn) / 31.0f + fabsf(mn) * 0x1p-10f;
    default:
        return 0.0f;
    }
}

static void test_roundtrip(void) {
    static float x[NQ], y[NQ], y2[NQ + 1];
    static uint8_t q[NQ * 4 + 1];
    /* Gaussian weights with a few outliers, as real weight rows have */
    for (int i = 0; i < NQ; i++) x[i] = 0.05f * rnd_normal() * (i % 97 == 0 ? 6.0f : 1.0f);
    double sum_x2 = 0;
    for (int i = 0; i < NQ; i++) sum_x2 += (double)x[i] * x[i];
    const double rms_x = sqrt(sum_x2 / NQ);
    /* RMS(err)/RMS(x) bounds for the K-quants, ~1.3x what these quantizers
     * reach on this data (printed below) */
    const struct {
        int type;
        double rel_rms;
    } kbound[] = {
        {QT_Q2_K, 0.40}, {QT_Q3_K, 0.22}, {QT_Q4_K, 0.12}, {QT_Q5_K, 0.06}, {QT_Q6_K, 0.03}};

    for (int t = 0; t < N_TYPES; t++) {
        const int type = all_types[t];
        const quant_type_info *qi = quant_info(type);
        size_t rs = quant_row_size(type, NQ);
        CHECK(quant_quantize_row(type, x, q, NQ) == M40LLM_OK);
        CHECK(quant_dequantize_row(type, q, y, NQ) == M40LLM_OK);
        double se = 0, maxe = 0;
        int over = 0;
        for (int i = 0; i < NQ; i++) {
            double err = fabs((double)y[i] - x[i]);
            se += err * err;
            if (err > maxe) maxe = err;
        }
        const double rel = sqrt(se / NQ) / rms_x;
        if (type == QT_F32) {
            CHECK(count_diff(x, y, NQ) == 0);
        } else if (type == QT_F16 || type == QT_BF16) {
            float ulp = type == QT_F16 ? 0x1p-11f : 0x1p-8f;
            for (int i = 0; i < NQ; i++) over += fabsf(y[i] - x[i]) > fabsf(x[i]) * ulp + 0x1p-24f;
        } else if (qi->block_size == 32) {
            for (int b = 0; b < NQ / 32; b++) {
                float mn = x[32 * b], mx = x[32 * b];
                for (int j = 0; j < 32; j++) {
                    mn = fminf(mn, x[32 * b + j]);
                    mx = fmaxf(mx, x[32 * b + j]);
                }
                float bound = legacy_bound(type, mn, mx);
                for (int j = 0; j < 32; j++) over += fabsf(y[32 * b + j] - x[32 * b + j]) > bound;
            }
        } else {
            for (size_t k = 0; k < sizeof kbound / sizeof kbound[0]; k++)
                if (kbound[k].type == type)
                    CHECKF(rel <= kbound[k].rel_rms, "%s: rms error %.4f of rms(x) > %.2f",
                           qi->name, rel, kbound[k].rel_rms);
        }
        CHECKF(over == 0, "%s: %d values beyond the error bound", qi->name, over);
        printf("%-5s %6.3f bits/weight  rms err/rms %.5f  max err %.5f\n", qi->name,
               8.0 * (double)rs / NQ, rel, maxe);

        /* unaligned source: same bits */
        memmove(q + 1, q, rs);
        CHECK(quant_dequantize_row(type, q + 1, y2 + 1, NQ) == M40LLM_OK);
        CHECKF(count_diff(y, y2 + 1, NQ) == 0, "%s: unaligned dequantization differs", qi->name);
    }

    /* all-zero and constant input */
    for (int t = 0; t < N_TYPES; t++) {
        const int type = all_types[t];
        for (int c = 0; c < 2; c++) {
            for (int i = 0; i < 512; i++) x[i] = c ? 0.75f : 0.0f;
            CHECK(quant_quantize_row(type, x, q, 512) == M40LLM_OK);
            CHECK(quant_dequantize_row(type, q, y, 512) == M40LLM_OK);
            float maxe = 0;
            for (int i = 0; i < 512; i++) maxe = fmaxf(maxe, fabsf(y[i] - x[i]));
            CHECKF(maxe <= (c ? 0.75f * 0.01f : 0.0f), "%s: constant %g -> max err %g",
                   quant_info(type)->name, x[0], maxe);
        }
    }
}

/* extreme magnitudes: subnormal and huge blocks quantize without undefined
 * behaviour; tiny ones dequantize to (near) zero, huge ones stay finite or
 * saturate as FP16 scales must */
static void test_extremes(void) {
    static float x[512], y[512];
    static uint8_t q[2048];
    const float scales[] = {1e-42f, 1e-39f, 1e-30f, 1e4f, 3e37f};
    for (int t = 0; t < N_TYPES; t++) {
        const int type = all_types[t];
        for (size_t s = 0; s < sizeof scales / sizeof scales[0]; s++) {
            for (int i = 0; i < 512; i++) x[i] = scales[s] * rnd_normal();
            CHECK(quant_quantize_row(type, x, q, 512) == M40LLM_OK);
            CHECK(quant_dequantize_row(type, q, y, 512) == M40LLM_OK);
            int bad = 0;
            for (int i = 0; i < 512; i++) {
                if (scales[s] < 1e-20f) bad += !(fabsf(y[i]) <= 1e-20f);
                if (scales[s] == 1e4f) bad += !(fabsf(y[i] - x[i]) <= 0.5f * fabsf(x[i]) + 2e4f);
            }
            CHECKF(bad == 0, "%s scale %g: %d values off", quant_info(type)->name, scales[s], bad);
        }
    }
}

/* ---- dot products ---- */

static void test_dot(void) {
    static float x[NQ], w[NQ], act[NQ], y[NQ];
    static uint8_t q[NQ * 4];
    for (int i = 0; i < NQ; i++) {
        w[i] = 0.05f * rnd_normal();
        act[i] = rnd_normal();
    }
    for (int t = 0; t < N_TYPES; t++) {
        const int type = all_types[t];
        const char *name = quant_info(type)->name;
        for (int n = quant_info(type)->block_size == 1 ? 8 : 256; n <= NQ; n *= 4) {
            CHECK(quant_quantize_row(type, w, q, n) == M40LLM_OK);
            CHECK(quant_dequantize_row(type, q, y, n) == M40LLM_OK);
            double ref = 0, mag = 0;
            for (int i = 0; i < n; i++) {
                ref += (double)y[i] * act[i];
                mag += fabs((double)y[i] * act[i]);
            }
            float got = quant_dot_row(type, q, act, n);
            CHECKF(fabs(got - ref) <= 1e-5 * mag, "%s n=%d: dot %.9g vs %.9g", name, n, got, ref);
        }
    }
    /* float rows whose length is not a multiple of 8 */
    for (int n = 1; n < 40; n += 3) {
        double ref = 0, mag = 0;
        for (int i = 0; i < n; i++) {
            ref += (double)w[i] * act[i];
            mag += fabs((double)w[i] * act[i]);
        }
        float got = quant_dot_row(QT_F32, w, act, n);
        CHECKF(fabs(got - ref) <= 1e-6 * mag + 1e-30, "F32 n=%d: %g vs %g", n, got, ref);
        CHECK(quant_quantize_row(QT_BF16, w, q, n) == M40LLM_OK);
        CHECK(quant_dequantize_row(QT_BF16, q, y, n) == M40LLM_OK);
        ref = 0;
        for (int i = 0; i < n; i++) ref += (double)y[i] * act[i];
        got = quant_dot_row(QT_BF16, q, act, n);
        CHECKF(fabs(got - ref) <= 1e-6 * mag + 1e-30, "BF16 n=%d: %g vs %g", n, got, ref);
    }
    (void)x;
}

/* quant_dot_rows must give exactly quant_dot_row's bits for every row */
static void test_dot_rows(void) {
    enum { N = 1024, NX = 9, XS = N + 8 };
    static float w[N], x[NX * XS], out[NX];
    static uint8_t q[N * 4];
    for (int i = 0; i < N; i++) w[i] = 0.05f * rnd_normal();
    for (int i = 0; i < NX * XS; i++) x[i] = rnd_normal();
    for (int t = 0; t < N_TYPES; t++) {
        const int type = all_types[t];
        const int lens[] = {N, quant_info(type)->block_size == 1 ? 1003 : N - 256};
        for (int li = 0; li < 2; li++) {
            const int n = lens[li];
            CHECK(quant_quantize_row(type, w, q, n) == M40LLM_OK);
            for (int nx = 1; nx <= NX; nx += 2) {
                quant_dot_rows(type, q, x, XS, nx, n, out);
                int bad = 0;
                for (int j = 0; j < nx; j++)
                    bad += fbits(out[j]) != fbits(quant_dot_row(type, q, x + j * XS, n));
                CHECKF(bad == 0, "%s n=%d nx=%d: %d rows differ from quant_dot_row",
                       quant_info(type)->name, n, nx, bad);
            }
        }
    }
}

/* ---- bad arguments ---- */

static void test_errors(void) {
    float x[64] = {0}, y[64];
    uint8_t q[256] = {0};
    CHECK(quant_dequantize_row(QT_Q4_0, q, y, 33) == M40LLM_ERR_INVALID_ARG);
    CHECK(strstr(m40llm_last_error(), "block size") != NULL);
    CHECK(quant_dequantize_row(99, q, y, 32) == M40LLM_ERR_UNSUPPORTED);
    CHECK(quant_dequantize_row(5, q, y, 32) == M40LLM_ERR_UNSUPPORTED);
    CHECK(quant_dequantize_row(QT_Q8_1, q, y, 32) == M40LLM_ERR_UNSUPPORTED);
    CHECK(quant_dequantize_row(QT_Q8_0, NULL, y, 32) == M40LLM_ERR_INVALID_ARG);
    CHECK(quant_dequantize_row(QT_Q8_0, q, y, 0) == M40LLM_OK);
    CHECK(quant_quantize_row(QT_Q8_K, x, q, 256) == M40LLM_ERR_UNSUPPORTED);
    CHECK(quant_quantize_row(QT_Q4_K, x, q, 64) == M40LLM_ERR_INVALID_ARG);
    x[3] = NAN;
    CHECK(quant_quantize_row(QT_Q4_0, x, q, 64) == M40LLM_ERR_INVALID_ARG);
    CHECK(strstr(m40llm_last_error(), "not finite") != NULL);
    x[3] = INFINITY;
    CHECK(quant_quantize_row(QT_Q6_K, x, q, 0) == M40LLM_OK);
    CHECK(quant_dot_row(QT_Q4_0, q, x, 0) == 0.0f);
}

int main(void) {
    test_sizes();
    test_half();
    test_legacy_blocks();
    test_k_blocks();
    test_roundtrip();
    test_extremes();
    test_dot();
    test_dot_rows();
    test_errors();
    return check_summary("test_quant");
}
