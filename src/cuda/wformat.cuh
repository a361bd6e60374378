/* Per-type decoders of the device weight layout (cuda_internal.h): each
 * turns one 32-element sub-block of a row into 32 floats in registers,
 * with the same float operations as ggml's dequantization (bit-exact: the
 * multiply-adds are kept unfused with __fmul_rn/__fadd_rn). */
#ifndef M40_WFORMAT_CUH
#define M40_WFORMAT_CUH

#include <type_traits>

#include "cuda_internal.h"
#include "dev_common.cuh"
extern "C" {
#include "quant.h"
}

/* K-quant block strides in the device layout (16-byte multiples) */
#define M40_Q2K_STRIDE 96
#define M40_Q3K_STRIDE 112
#define M40_Q5K_STRIDE 176

/* small unsigned int (< 2^23) to float without the conversion unit:
 * 2^23 + v built from bits, minus 2^23, exact */
static __device__ __forceinline__ float dev_u2f(uint32_t v) {
    return __int_as_float(0x4B000000 | v) - 8388608.0f;
}

/* byte j (0..15) of a 16-byte vector; j must fold to a constant */
#define U4_BYTE(u, j) ((dev_word((u), (j) >> 2) >> (((j)&3) * 8)) & 0xffu)

template <int T> struct wdec;

template <> struct wdec<QT_F32> {
    static __device__ __forceinline__ void get(const gpu_matrix &m, int64_t r, int64_t sb,
                                               float *w) {
        const float *p = (const float *)(m.q + r * m.q_row) + sb * 32;
#pragma unroll
        for (int i = 0; i < 8; i++) {
            uint4 u = dev_ld128(p + 4 * i);
            w[4 * i + 0] = __uint_as_float(u.x);
            w[4 * i + 1] = __uint_as_float(u.y);
            w[4 * i + 2] = __uint_as_float(u.z);
            w[4 * i + 3] = __uint_as_float(u.w);
        }
    }
};

template <bool BF> static __device__ __forceinline__ void dec_half32(const uint16_t *p, float *w) {
#pragma unroll
    for (int i = 0; i < 4; i++) {
        uint4 u = dev_ld128(p + 8 * i);
#pragma unroll
        for (int k = 0; k < 4; k++) {
            uint32_t v = dev_word(u, k);
            w[8 * i + 2 * k] =
                BF ? dev_bf16((uint16_t)(v & 0xffff)) : dev_f16((uint16_t)(v & 0xffff));
            w[8 * i + 2 * k + 1] =
                BF ? dev_bf16((uint16_t)(v >> 16)) : dev_f16((uint16_t)(v >> 16));
        }
    }
}

template <> struct wdec<QT_F16> {
    static __device__ __forceinline__ void get(const gpu_matrix &m, int64_t r, int64_t sb,
                                               float *w) {
        dec_half32<false>((const uint16_t *)(m.q + r * m.q_row) + sb * 32, w);
    }
};

template <> struct wdec<QT_BF16> {
    static __device__ __forceinline__ void get(const gpu_matrix &m, int64_t r, int64_t sb,
                                               float *w) {
        dec_half32<true>((const uint16_t *)(m.q + r * m.q_row) + sb * 32, w);
    }
};

template <> struct wdec<QT_Q4_0> {
    static __device__ __forceinline__ void get(const gpu_matrix &m, int64_t r, int64_t sb,
                                               float *w) {
        int64_t i = r * m.nsb + sb;
        uint4 u = dev_ld128(m.q + i * 16);
        float d = dev_f16(dev_ld16(m.s + i * 2));
#pragma unroll
        for (int j = 0; j < 16; j++) {
            uint32_t b = U4_BYTE(u, j);
            w[j] = __fmul_rn(dev_u2f(b & 15) - 8.0f, d);
            w[j + 16] = __fmul_rn(dev_u2f(b >> 4) - 8.0f, d);
        }
    }
};

template <> struct wdec<QT_Q4_1> {
    static __device__ __forceinline__ void get(const gpu_matrix &m, int64_t r, int64_t sb,
                                               float *w) {
        int64_t i = r * m.nsb + sb;
        uint4 u = dev_ld128(m.q + i * 16);
        uint32_t dm = dev_ld32(m.s + i * 4);
        float d = dev_f16((uint16_t)(dm & 0xffff)), mn = dev_f16((uint16_t)(dm >> 16));
#pragma unroll
        for (int j = 0; j < 16; j++) {
            uint32_t b = U4_BYTE(u, j);
            w[j] = __fadd_rn(__fmul_rn(dev_u2f(b & 15), d), mn);
            w[j + 16] = __fadd_rn(__fmul_rn(dev_u2f(b >> 4), d), mn);
        }
    }
};

template <> struct wdec<QT_Q5_0> {
    static __device__ __forceinline__ void get(const gpu_matrix &m, int64_t r, int64_t sb,
                                               float *w) {
        int64_t i = r * m.nsb + sb;
        uint4 u = dev_ld128(m.q + i * 16);
        float d = dev_f16(dev_ld16(m.s + i * 2));
        uint32_t qh = dev_ld32(m.h + i * 4);
#pragma unroll
        for (int j = 0; j < 16; j++) {
            uint32_t b = U4_BYTE(u, j);
            uint32_t lo = (b & 15) | (((qh >> j) << 4) & 0x10);
            uint32_t hi = (b >> 4) | ((qh >> (j + 12)) & 0x10);
            w[j] = __fmul_rn(dev_u2f(lo) - 16.0f, d);
            w[j + 16] = __fmul_rn(dev_u2f(hi) - 16.0f, d);
        }
    }
};

template <> struct wdec<QT_Q5_1> {
    static __device__ __forceinline__ void get(const gpu_matrix &m, int64_t r, int64_t sb,
                                               float *w) {
        int64_t i = r * m.nsb + sb;
        uint4 u = dev_ld128(m.q + i * 16);
        uint32_t dm = dev_ld32(m.s + i * 4);
        float d = dev_f16((uint16_t)(dm & 0xffff)), mn = dev_f16((uint16_t)(dm >> 16));
        uint32_t qh = dev_ld32(m.h + i * 4);
#pragma unroll
        for (int j = 0; j < 16; j++) {
            uint32_t b = U4_BYTE(u, j);
            uint32_t lo = (b & 15) | (((qh >> j) << 4) & 0x10);
            uint32_t hi = (b >> 4) | ((qh >> (j + 12)) & 0x10);
            w[j] = __fadd_rn(__fmul_rn(dev_u2f(lo), d), mn);
            w[j + 16] = __fadd_rn(__fmul_rn(dev_u2f(hi), d), mn);
        }
    }
};

template <> struct wdec<QT_Q8_0> {
    static __device__ __forceinline__ void get(const gpu_matrix &m, int64_t r, int64_t sb,
                                               float *w) {
        int64_t i = r * m.nsb + sb;
        uint4 u0 = dev_ld128(m.q + i * 32), u1 = dev_ld128(m.q + i * 32 + 16);
        float d = dev_f16(dev_ld16(m.s + i * 2));
#pragma unroll
        for (int j = 0; j < 16; j++) {
            /* int8 -> biased 0..255 -> float, minus the bias */
            w[j] = __fmul_rn(dev_u2f(U4_BYTE(u0, j) ^ 0x80) - 128.0f, d);
            w[j + 16] = __fmul_rn(dev_u2f(U4_BYTE(u1, j) ^ 0x80) - 128.0f, d);
        }
    }
};

/* 32 bytes at p (16-byte aligned) as two vectors */
#define LD32B(p, a, b)                                                                             \
    uint4 a = dev_ld128(p);                                                                        \
    uint4 b = dev_ld128((p) + 16)
#define BYTE32(a, b, l) ((l) < 16 ? U4_BYTE(a, (l)) : U4_BYTE(b, (l)-16))

template <> struct wdec<QT_Q2_K> {
    static __device__ __forceinline__ void get(const gpu_matrix &m, int64_t r, int64_t sb,
                                               float *w) {
        const uint8_t *blk = m.q + r * m.q_row + (sb >> 3) * M40_Q2K_STRIDE;
        int j = (int)(sb & 7), n = j >> 2, jj = j & 3;
        LD32B(blk + 16 + 32 * n, qa, qb);
        uint4 sc4 = dev_ld128(blk);
        uint32_t dd = dev_ld32(blk + 80);
        float d = dev_f16((uint16_t)(dd & 0xffff)), dmin = dev_f16((uint16_t)(dd >> 16));
        int is = 8 * n + 2 * jj;
        uint32_t scw = dev_word(sc4, is >> 2) >> ((is & 3) * 8); /* bytes is, is+1 */
        uint32_t sc0 = scw & 0xff, sc1 = (scw >> 8) & 0xff;
        float dl0 = __fmul_rn(d, dev_u2f(sc0 & 15)), ml0 = __fmul_rn(dmin, dev_u2f(sc0 >> 4));
        float dl1 = __fmul_rn(d, dev_u2f(sc1 & 15)), ml1 = __fmul_rn(dmin, dev_u2f(sc1 >> 4));
        int sh = 2 * jj;
#pragma unroll
        for (int l = 0; l < 32; l++) {
            uint32_t q = (BYTE32(qa, qb, l) >> sh) & 3;
            w[l] = l < 16 ? __fsub_rn(__fmul_rn(dl0, dev_u2f(q)), ml0)
                          : __fsub_rn(__fmul_rn(dl1, dev_u2f(q)), ml1);
        }
    }
};

/* 16 6-bit Q3_K scales (as stored, before the -32), from 12 bytes */
static __device__ __forceinline__ int q3k_scale(const uint8_t *sc12, int is) {
    uint32_t a0 = dev_ld32(sc12), a1 = dev_ld32(sc12 + 4), t = dev_ld32(sc12 + 8);
    uint32_t aux;
    const uint32_t k1 = 0x03030303u, k2 = 0x0f0f0f0fu;
    switch (is >> 2) {
    case 0:
        aux = (a0 & k2) | (((t >> 0) & k1) << 4);
        break;
    case 1:
        aux = (a1 & k2) | (((t >> 2) & k1) << 4);
        break;
    case 2:
        aux = ((a0 >> 4) & k2) | (((t >> 4) & k1) << 4);
        break;
    default:
        aux = ((a1 >> 4) & k2) | (((t >> 6) & k1) << 4);
        break;
    }
    return (int)(int8_t)((aux >> ((is & 3) * 8)) & 0xff);
}

template <> struct wdec<QT_Q3_K> {
    static __device__ __forceinline__ void get(const gpu_matrix &m, int64_t r, int64_t sb,
                                               float *w) {
        const uint8_t *blk = m.q + r * m.q_row + (sb >> 3) * M40_Q3K_STRIDE;
        int j = (int)(sb & 7), n = j >> 2, jj = j & 3;
        LD32B(blk, ha, hb);               /* hmask */
        LD32B(blk + 32 + 32 * n, qa, qb); /* qs */
        float d = dev_f16(dev_ld16(blk + 108));
        int is = 8 * n + 2 * jj;
        float dl0 = __fmul_rn(d, (float)(q3k_scale(blk + 96, is) - 32));
        float dl1 = __fmul_rn(d, (float)(q3k_scale(blk + 96, is + 1) - 32));
        int sh = 2 * jj, hb_bit = 4 * n + jj;
#pragma unroll
        for (int l = 0; l < 32; l++) {
            uint32_t q = (BYTE32(qa, qb, l) >> sh) & 3;
            uint32_t h = (BYTE32(ha, hb, l) >> hb_bit) & 1;
            /* q - (h ? 0 : 4), as a float: exact small integers */
            float v = dev_u2f(q + 4 * h) - 4.0f;
            w[l] = __fmul_rn(l < 16 ? dl0 : dl1, v);
        }
    }
};

/* ggml's get_scale_min_k4 on the 12 scale bytes at p (4-byte aligned) */
static __device__ __forceinline__ void k4_scale_min(const uint8_t *p, int j, uint32_t *sc,
                                                    uint32_t *mn) {
    uint32_t w0 = dev_ld32(p), w1 = dev_ld32(p + 4), w2 = dev_ld32(p + 8);
    uint32_t q[12];
#pragma unroll
    for (int i = 0; i < 4; i++) {
        q[i] = (w0 >> (8 * i)) & 0xff;
        q[4 + i] = (w1 >> (8 * i)) & 0xff;
        q[8 + i] = (w2 >> (8 * i)) & 0xff;
    }
    /* j is a runtime value: select with a switch so q stays in registers */
    uint32_t a = 0, b = 0;
#pragma unroll
    for (int t = 0; t < 8; t++) {
        if (t == j) {
            if (t < 4) {
                a = q[t] & 63;
                b = q[t + 4] & 63;
            } else {
                a = (q[t + 4] & 0xF) | ((q[t - 4] >> 6) << 4);
                b = (q[t + 4] >> 4) | ((q[t] >> 6) << 4);
            }
        }
    }
    *sc = a;
    *mn = b;
}

template <> struct wdec<QT_Q4_K> {
    static __device__ __forceinline__ void get(const gpu_matrix &m, int64_t r, int64_t sb,
                                               float *w) {
        const int64_t si = r * m.nsb + sb;
        uint32_t dd = dev_ld32(m.h + (si >> 3) * 4), scm = dev_ld16(m.s + si * 2);
        float d = dev_f16((uint16_t)(dd & 0xffff)), dmin = dev_f16((uint16_t)(dd >> 16));
        float d1 = __fmul_rn(d, dev_u2f(scm & 0xff)), m1 = __fmul_rn(dmin, dev_u2f(scm >> 8));
        uint4 u = dev_ld128(m.q + r * m.q_row + sb * 16);
#pragma unroll
        for (int l = 0; l < 32; l++) {
            uint32_t q = (dev_word(u, (l & 15) >> 2) >> (8 * (l & 3) + (l >> 4) * 4)) & 15;
            w[l] = __fsub_rn(__fmul_rn(d1, dev_u2f(q)), m1);
        }
    }
};

template <> struct wdec<QT_Q5_K> {
    static __device__ __forceinline__ void get(const gpu_matrix &m, int64_t r, int64_t sb,
                                               float *w) {
        const uint8_t *blk = m.q + r * m.q_row + (sb >> 3) * M40_Q5K_STRIDE;
        int j = (int)(sb & 7), c = j >> 1;
        uint32_t dd = dev_ld32(blk);
        float d = dev_f16((uint16_t)(dd & 0xffff)), dmin = dev_f16((uint16_t)(dd >> 16));
        uint32_t sc, mn;
        k4_scale_min(blk + 4, j, &sc, &mn);
        float d1 = __fmul_rn(d, dev_u2f(sc)), m1 = __fmul_rn(dmin, dev_u2f(mn));
        LD32B(blk + 16, ha, hb);          /* qh */
        LD32B(blk + 48 + 32 * c, qa, qb); /* qs */
        int sh = (j & 1) * 4;
#pragma unroll
        for (int l = 0; l < 32; l++) {
            uint32_t q = ((BYTE32(qa, qb, l) >> sh) & 15) | (((BYTE32(ha, hb, l) >> j) & 1) << 4);
            w[l] = __fsub_rn(__fmul_rn(d1, dev_u2f(q)), m1);
        }
    }
};

/* Q6_K's six-bit values v (0..63) in the device layout (cuda_internal.h):
 * word w of a sub-block's six (q: 0..3, h: 4, 5) holds v[4w + c] at bit 6c,
 * and the top bytes of words 0-2 (3-5) hold v[24..27] (v[28..31]) the same
 * way; q6_top gathers them (bits 24..31 of its result are not used) */
static __device__ __forceinline__ uint32_t q6_top(uint32_t a, uint32_t b, uint32_t c) {
    return __byte_perm(__byte_perm(a, b, 0x0073), c, 0x0710);
}

template <> struct wdec<QT_Q6_K> {
    static __device__ __forceinline__ void get(const gpu_matrix &m, int64_t r, int64_t sb,
                                               float *w) {
        const int64_t si = r * m.nsb + sb;
        const uint4 u = dev_ld128(m.q + r * m.q_row + sb * 16);
        const uint2 hw = __ldg((const uint2 *)(m.h + si * 8));
        const uint32_t s = dev_ld32(m.s + si * 4);
        const uint32_t wd[8] = {
            u.x, u.y, u.z, u.w, hw.x, hw.y, q6_top(u.x, u.y, u.z), q6_top(u.w, hw.x, hw.y)};
        float d = dev_f16((uint16_t)(s >> 16));
        float ds0 = __fmul_rn(d, (float)(int8_t)(s & 0xff));
        float ds1 = __fmul_rn(d, (float)(int8_t)((s >> 8) & 0xff));
#pragma unroll
        for (int l = 0; l < 32; l++) {
            uint32_t q = (wd[l >> 2] >> (6 * (l & 3))) & 63;
            w[l] = __fmul_rn(l < 16 ? ds0 : ds1, dev_u2f(q) - 32.0f);
        }
    }
};

/* ---- dot products for the decode GEMV ----
 * wraw<T> splits one 32-element sub-block's dot product with x into a load
 * (its raw bytes into registers) and a dot, so that a kernel can ask for
 * the weights of every row it works on before it waits for anything
 * (x staging, other rows): more bytes in flight per lane. A row's start
 * (wrow) is computed once, so a load is one add per pointer.
 *   wrow p = wrow_at<T>(m, row); wraw<T> v; v.load(p, sb);
 *   ... acc += v.dot(m, row, sb, xr, sx);
 * with xr the 32 x values of the sub-block in registers and sx their sum
 * (used where wraw<T>::uses_sx). For the quantized "fast" types the block
 * scale and offset are factored out (d * (sum q x) - m * sx) and no weight
 * is materialized; the other types decode with wdec<T> at dot time. */

/* float value of byte k of v (k constant), v's bytes < 2^8: 2^23 + byte as bits, minus 2^23 */
#define BYTE_F(v, k) (__int_as_float(__byte_perm((v), 0x4B000000u, 0x7440u + (k))) - 8388608.0f)
/* byte k of v (< 16) as the float 0.5 + byte / 256: the byte lands in the
 * mantissa under an exponent of 2^-1, one permute and no subtraction */
#define NIB_F(v, k) __int_as_float(__byte_perm((v), 0x3F000000u, 0x7044u + ((k) << 8)))

/* a + w . x, in order (x's 4 values against 4 weights) */
static __device__ __forceinline__ float fma4(float a, float w0, float w1, float w2, float w3,
                                             const float4 &x) {
    return fmaf(w3, x.w, fmaf(w2, x.z, fmaf(w1, x.y, fmaf(w0, x.x, a))));
}

/* Part i (0..3) of a nibble sub-block's dot: word i of u (low nibbles,
 * shifted right by sh first for the K-quants) against x[4i..4i+3] (xa), and
 * its high nibbles (or, two: word i of u2) against x[16+4i..] (xb).
 * Accumulates sum (0.5 + q / 256) x = sx / 2 + (sum q x) / 256; nib_fin
 * turns that back into sum q x = 256 a - 128 sx: 2 instructions per weight
 * instead of 3. */
static __device__ __forceinline__ void nib_part(uint32_t wd, uint32_t wd2, int two, int sh,
                                                const float4 &xa, const float4 &xb, float &a0,
                                                float &a1) {
    uint32_t lo = (wd >> sh) & 0x0F0F0F0Fu;
    uint32_t hi = two ? (wd2 >> sh) & 0x0F0F0F0Fu : (wd >> 4) & 0x0F0F0F0Fu;
    a0 = fma4(a0, NIB_F(lo, 0), NIB_F(lo, 1), NIB_F(lo, 2), NIB_F(lo, 3), xa);
    a1 = fma4(a1, NIB_F(hi, 0), NIB_F(hi, 1), NIB_F(hi, 2), NIB_F(hi, 3), xb);
}

static __device__ __forceinline__ float nib_fin(float a0, float a1, float sx) {
    return fmaf(256.0f, a0 + a1, -128.0f * sx);
}

/* The masked dot (nib_dn_part, nib_dn_byte_fma): a 32-bit pattern below 2^24
 * is the float pattern x 2^-149 (subnormal, or the smallest exponent), so a
 * nibble masked in place at bit p (p <= 20; a byte: p <= 16) is the float
 * q 2^(p - 149): one AND per weight, no offset to take off again. Its x is
 * staged times 2^(149 - NIB_DN_P - p) (nib_dn_xscale), so that every
 * product is q x 2^-NIB_DN_P: exact for |x| within ~2^-70..2^43 (above, x
 * staged overflows; below, products turn subnormal). The top byte of a
 * word moves down first (nibbles: those of a word pair together, to p = 0
 * and 8, nib_dn_top; a byte: to p = 16). H200, 7B tg128: Q4_0 499/498 -> 512/507 tok/s,
 * Q8_0 372/372 -> 376/377. FFMA keeps subnormal operands: these builds
 * must not flush them to zero (-ftz=true, --use_fast_math;
 * test_gpu_kernels would fail). */
#define NIB_DN_P 64
static __device__ __forceinline__ float nib_pow2(int e) {
    return __int_as_float((127 + e) << 23);
}
/* the factor of x value c (0..3) of a staged float4 of word w of a
 * sub-block's 4 (odd: w odd), in the low (x[0..15]) or high half: kind 1
 * for the nibbles (low nibbles in the low half; the top byte of an even
 * word at p = 0, of an odd one at p = 8: nib_dn_top), 2 for the bytes of
 * Q8_0 (nib_dn_byte_fma: p = 0, 8, 16, 16) */
static __device__ __forceinline__ float4 nib_dn_xscale(int kind, bool hi, bool odd) {
    const int k = 149 - NIB_DN_P, h = kind == 1 && hi ? 4 : 0;
    if (kind == 3) /* Q6_K's six-bit fields at 0, 6, 12, 18 (wraw_q6) */
        return make_float4(nib_pow2(k), nib_pow2(k - 6), nib_pow2(k - 12), nib_pow2(k - 18));
    const int p3 = kind == 1 ? (odd ? 8 : 0) : 16;
    return make_float4(nib_pow2(k - h), nib_pow2(k - 8 - h), nib_pow2(k - 16 - h),
                       nib_pow2(k - p3 - h));
}
#define NIB_DN(v, m) __uint_as_float((v) & (m))
/* the top bytes of words 2j and 2j + 1 moved to bits 0..15 by one permute
 * (shared by the two words' parts) instead of a shift each: one instruction
 * fewer per word pair on either GPU, and shifts issue at half rate on
 * Maxwell */
static __device__ __forceinline__ uint32_t nib_dn_top(uint32_t even, uint32_t odd) {
    return __byte_perm(even, odd, 0x0073);
}
static __device__ __forceinline__ void nib_dn_part(uint32_t wd, uint32_t top, bool odd,
                                                   const float4 &xa, const float4 &xb, float &a0,
                                                   float &a1) {
    a0 = fma4(a0, NIB_DN(wd, 0xFu), NIB_DN(wd, 0xF00u), NIB_DN(wd, 0xF0000u),
              NIB_DN(top, odd ? 0xF00u : 0xFu), xa);
    a1 = fma4(a1, NIB_DN(wd, 0xF0u), NIB_DN(wd, 0xF000u), NIB_DN(wd, 0xF00000u),
              NIB_DN(top, odd ? 0xF000u : 0xF0u), xb);
}
/* the same for a word of Q8_0 bytes, biased to q + 128 (one AND with the
 * bias's XOR per weight, instead of a permute and a subtraction; the top
 * byte moves to p = 16 on its own: with nib_dn_top, ptxas recomputes the
 * permute for each word, and sm_52's wo kernel was 8 instructions shorter) */
static __device__ __forceinline__ float nib_dn_byte_fma(float a, uint32_t wd, const float4 &x) {
    const uint32_t v = wd ^ 0x80808080u, v3 = (wd >> 8) ^ 0x00808080u;
    return fma4(a, NIB_DN(v, 0xFFu), NIB_DN(v, 0xFF00u), NIB_DN(v, 0xFF0000u),
                NIB_DN(v3, 0xFF0000u), x);
}
/* which masked dot a type has (nib_dn_xscale's kind; 0: none) */
template <int T> struct nib_dn_kind {
    static const int kind = T == QT_Q4_0 || T == QT_Q4_1 || T == QT_Q4_K ? 1
                            : T == QT_Q8_0                               ? 2
                            : T == QT_Q6_K                               ? 3
                                                                         : 0;
};

/* x values i*4.. of a sub-block held in registers, as a float4 */
static __device__ __forceinline__ float4 xr4(const float *xr, int i) {
    return make_float4(xr[4 * i], xr[4 * i + 1], xr[4 * i + 2], xr[4 * i + 3]);
}

/* the start of one row: its quant bytes and its per-sub-block scales */
struct wrow {
    const uint8_t *q, *s;
    const uint8_t *h; /* Q4_K: the row's per-block d and dmin; Q6_K: its words 4, 5 */
};

/* bytes per 32-element sub-block of the device layout: in q (K-quant
 * blocks hold 8 sub-blocks) and in s (d, or d and m) */
template <int T> struct wbytes {
    static const int q = T == QT_F32                   ? 128
                         : T == QT_F16 || T == QT_BF16 ? 64
                         : T == QT_Q8_0                ? 32
                         : T == QT_Q2_K                ? M40_Q2K_STRIDE / 8
                         : T == QT_Q3_K                ? M40_Q3K_STRIDE / 8
                         : T == QT_Q5_K                ? M40_Q5K_STRIDE / 8
                                                       : 16;
    static const int s = T == QT_Q4_1 || T == QT_Q5_1 || T == QT_Q6_K ? 4 : 2;
};

template <int T> static __device__ __forceinline__ wrow wrow_at(const gpu_matrix &m, int64_t r) {
    wrow p;
    p.q = m.q + r * m.q_row;
    p.s = m.s ? m.s + r * m.nsb * wbytes<T>::s : NULL;
    p.h = T == QT_Q4_K ? m.h + r * (m.nsb >> 3) * 4 : T == QT_Q6_K ? m.h + r * m.nsb * 8 : NULL;
    return p;
}

/* generic: nothing early, decode at dot time */
template <int T> struct wraw {
    static const bool uses_sx = false;
    static const bool parts = false;
    __device__ __forceinline__ void load(const wrow &, int64_t) {}
    __device__ __forceinline__ float dot(const gpu_matrix &m, int64_t r, int64_t sb,
                                         const float *xr, float) const {
        float wv[32];
        wdec<T>::get(m, r, sb, wv);
        float a0 = 0.0f, a1 = 0.0f;
#pragma unroll
        for (int l = 0; l < 32; l += 2) {
            a0 = fmaf(wv[l], xr[l], a0);
            a1 = fmaf(wv[l + 1], xr[l + 1], a1);
        }
        return a0 + a1;
    }
};

/* The "fast" types split a sub-block's dot into 4 parts (part i reads the
 * float4s xq(i, 0) and xq(i, 1) of the sub-block's x) and a final step
 * (fin), so that a kernel can walk x once for several rows; dot() is the
 * whole of it with x in registers. */
#define WRAW_PARTS_DOT                                                                             \
    __device__ __forceinline__ float dot(const gpu_matrix &, int64_t, int64_t, const float *xr,    \
                                         float sx) const {                                         \
        float a0 = 0.0f, a1 = 0.0f;                                                                \
        _Pragma("unroll") for (int i = 0; i < 4; i++)                                              \
            part(i, xr4(xr, xq(i, 0)), xr4(xr, xq(i, 1)), a0, a1);                                 \
        return fin(a0, a1, sx);                                                                    \
    }

/* nibble and byte types: part i covers x[4i..4i+3] and x[16+4i..] */
#define WRAW_XQ_SPLIT16                                                                            \
    static __device__ __forceinline__ int xq(int i, int h) {                                       \
        return h ? 4 + i : i;                                                                      \
    }

/* Q4_0 and Q4_1: 16 bytes of nibbles per sub-block, then the scale (d, or
 * d and m) of S bytes; the derived type adds fin() */
template <int S> struct wraw_q4 {
    static const bool uses_sx = true;
    static const bool parts = true;
    uint4 q;
    typename std::conditional<S == 2, uint16_t, uint32_t>::type sc;
    __device__ __forceinline__ void load(const wrow &p, int64_t sb) {
        q = dev_ld128(p.q + sb * 16);
        sc = S == 2 ? dev_ld16(p.s + sb * 2) : dev_ld32(p.s + sb * 4);
    }
    WRAW_XQ_SPLIT16
    __device__ __forceinline__ void part(int i, const float4 &xa, const float4 &xb, float &a0,
                                         float &a1) const {
        nib_part(dev_word(q, i), 0, 0, 0, xa, xb, a0, a1);
    }
    /* the same against x staged with nib_dn_xscale: a0 + a1 = 2^-NIB_DN_P sum q x */
    __device__ __forceinline__ void part_dn(int i, const float4 &xa, const float4 &xb, float &a0,
                                            float &a1) const {
        nib_dn_part(dev_word(q, i), nib_dn_top(dev_word(q, i & 2), dev_word(q, i | 1)), i & 1, xa,
                    xb, a0, a1);
    }
};

template <> struct wraw<QT_Q4_0> : wraw_q4<2> {
    __device__ __forceinline__ float fin(float a0, float a1, float sx) const {
        /* sum (q - 8) x = 256 (a0 + a1) - 128 sx - 8 sx */
        return dev_f16(sc) * fmaf(256.0f, a0 + a1, -136.0f * sx);
    }
    __device__ __forceinline__ float fin_dn(float a0, float a1, float sx) const {
        return dev_f16(sc) * fmaf(nib_pow2(NIB_DN_P), a0 + a1, -8.0f * sx);
    }
    WRAW_PARTS_DOT
};

template <> struct wraw<QT_Q4_1> : wraw_q4<4> {
    __device__ __forceinline__ float fin(float a0, float a1, float sx) const {
        return dev_f16((uint16_t)(sc & 0xffff)) * nib_fin(a0, a1, sx) +
               dev_f16((uint16_t)(sc >> 16)) * sx;
    }
    __device__ __forceinline__ float fin_dn(float a0, float a1, float sx) const {
        return dev_f16((uint16_t)(sc & 0xffff)) * (nib_pow2(NIB_DN_P) * (a0 + a1)) +
               dev_f16((uint16_t)(sc >> 16)) * sx;
    }
    WRAW_PARTS_DOT
};

template <> struct wraw<QT_Q8_0> {
    static const bool uses_sx = true;
    static const bool parts = true;
    uint4 u0, u1;
    uint16_t s;
    __device__ __forceinline__ void load(const wrow &p, int64_t sb) {
        u0 = dev_ld128(p.q + sb * 32);
        u1 = dev_ld128(p.q + sb * 32 + 16);
        s = dev_ld16(p.s + sb * 2);
    }
    WRAW_XQ_SPLIT16
    /* q + 128 as floats; the bias comes off with sx */
    __device__ __forceinline__ void part(int i, const float4 &xa, const float4 &xb, float &a0,
                                         float &a1) const {
        uint32_t w0 = dev_word(u0, i) ^ 0x80808080u, w1 = dev_word(u1, i) ^ 0x80808080u;
        a0 = fma4(a0, BYTE_F(w0, 0), BYTE_F(w0, 1), BYTE_F(w0, 2), BYTE_F(w0, 3), xa);
        a1 = fma4(a1, BYTE_F(w1, 0), BYTE_F(w1, 1), BYTE_F(w1, 2), BYTE_F(w1, 3), xb);
    }
    __device__ __forceinline__ float fin(float a0, float a1, float sx) const {
        return dev_f16(s) * (a0 + a1 - 128.0f * sx);
    }
    /* against x staged with nib_dn_xscale: a0 + a1 = 2^-NIB_DN_P sum (q + 128) x */
    __device__ __forceinline__ void part_dn(int i, const float4 &xa, const float4 &xb, float &a0,
                                            float &a1) const {
        a0 = nib_dn_byte_fma(a0, dev_word(u0, i), xa);
        a1 = nib_dn_byte_fma(a1, dev_word(u1, i), xb);
    }
    __device__ __forceinline__ float fin_dn(float a0, float a1, float sx) const {
        return dev_f16(s) * fmaf(nib_pow2(NIB_DN_P), a0 + a1, -128.0f * sx);
    }
    WRAW_PARTS_DOT
};

/* Q4_K in the device layout (cuda_internal.h): Q4_0's nibbles and dot, the
 * sub-block's 6-bit scale and min from s, the block's d and dmin from h */
template <> struct wraw<QT_Q4_K> : wraw_q4<2> {
    uint32_t dd;
    __device__ __forceinline__ void load(const wrow &p, int64_t sb) {
        wraw_q4<2>::load(p, sb);
        dd = dev_ld32(p.h + (sb >> 3) * 4);
    }
    __device__ __forceinline__ float d1() const {
        return dev_f16((uint16_t)(dd & 0xffff)) * (float)(sc & 0xff);
    }
    __device__ __forceinline__ float m1() const {
        return dev_f16((uint16_t)(dd >> 16)) * (float)(sc >> 8);
    }
    __device__ __forceinline__ float fin(float a0, float a1, float sx) const {
        return d1() * nib_fin(a0, a1, sx) - m1() * sx;
    }
    __device__ __forceinline__ float fin_dn(float a0, float a1, float sx) const {
        return d1() * (nib_pow2(NIB_DN_P) * (a0 + a1)) - m1() * sx;
    }
    WRAW_PARTS_DOT
};

/* a + the four six-bit fields of w (bits 0, 6, 12, 18) . x, masked in
 * place (wraw_q6) */
static __device__ __forceinline__ float q6_dn_fma(float a, uint32_t w, const float4 &x) {
    return fma4(a, NIB_DN(w, 0x3Fu), NIB_DN(w, 0xFC0u), NIB_DN(w, 0x3F000u), NIB_DN(w, 0xFC0000u),
                x);
}

/* Q6_K for the persistent walk only (gp_raw): the masked dot of its six-bit
 * fields against x staged with nib_dn_xscale(3); part i takes word i
 * (x[4i..], scale 0) and word 4 + i or a gathered top (x[16 + 4i..], scale
 * 1). The bias of 32 comes off each half with its x sum (fin_dn2: sx0 is
 * the low half's, staged in slot 33). The other kernels keep wraw<Q6_K>,
 * the generic decode. */
struct wraw_q6 {
    static const bool uses_sx = true;
    static const bool parts = true;
    uint4 q;
    uint2 h;
    uint32_t s; /* scale 0 | scale 1 << 8 (int8) | d << 16 (f16) */
    WRAW_XQ_SPLIT16
    __device__ __forceinline__ void load(const wrow &p, int64_t sb) {
        q = dev_ld128(p.q + sb * 16);
        h = __ldg((const uint2 *)(p.h + sb * 8));
        s = dev_ld32(p.s + sb * 4);
    }
    __device__ __forceinline__ void part_dn(int i, const float4 &xa, const float4 &xb, float &a0,
                                            float &a1) const {
        const uint32_t wa = dev_word(q, i);
        const uint32_t wb = i == 0   ? h.x
                            : i == 1 ? h.y
                            : i == 2 ? q6_top(q.x, q.y, q.z)
                                     : q6_top(q.w, h.x, h.y);
        a0 = q6_dn_fma(a0, wa, xa);
        a1 = q6_dn_fma(a1, wb, xb);
    }
    __device__ __forceinline__ float fin_dn2(float a0, float a1, float sx, float sx0) const {
        const float d = dev_f16((uint16_t)(s >> 16));
        const float s0 = (float)(int8_t)(s & 0xff), s1 = (float)(int8_t)((s >> 8) & 0xff);
        const float e = nib_pow2(NIB_DN_P);
        return d * (s0 * fmaf(e, a0, -32.0f * sx0) + s1 * fmaf(e, a1, -32.0f * (sx - sx0)));
    }
};

/* half-precision rows: 64 raw bytes per sub-block */
template <bool BF> struct wraw_half {
    static const bool uses_sx = false;
    static const bool parts = true;
    uint4 u[4];
    __device__ __forceinline__ void load(const wrow &p, int64_t sb) {
        const uint16_t *h = (const uint16_t *)p.q + sb * 32;
#pragma unroll
        for (int i = 0; i < 4; i++) u[i] = dev_ld128(h + 8 * i);
    }
    static __device__ __forceinline__ float lo(uint32_t v) {
        return BF ? __uint_as_float(v << 16) : dev_f16((uint16_t)(v & 0xffff));
    }
    static __device__ __forceinline__ float hi(uint32_t v) {
        return BF ? __uint_as_float(v & 0xffff0000u) : dev_f16((uint16_t)(v >> 16));
    }
    /* part i: the 8 values of u[i], x[8i..8i+7]; even elements into a0, odd into a1 */
    static __device__ __forceinline__ int xq(int i, int h) {
        return 2 * i + h;
    }
    __device__ __forceinline__ void part(int i, const float4 &xa, const float4 &xb, float &a0,
                                         float &a1) const {
        a0 = fmaf(lo(dev_word(u[i], 0)), xa.x, a0);
        a1 = fmaf(hi(dev_word(u[i], 0)), xa.y, a1);
        a0 = fmaf(lo(dev_word(u[i], 1)), xa.z, a0);
        a1 = fmaf(hi(dev_word(u[i], 1)), xa.w, a1);
        a0 = fmaf(lo(dev_word(u[i], 2)), xb.x, a0);
        a1 = fmaf(hi(dev_word(u[i], 2)), xb.y, a1);
        a0 = fmaf(lo(dev_word(u[i], 3)), xb.z, a0);
        a1 = fmaf(hi(dev_word(u[i], 3)), xb.w, a1);
    }
    __device__ __forceinline__ float fin(float a0, float a1, float) const {
        return a0 + a1;
    }
    WRAW_PARTS_DOT
};
template <> struct wraw<QT_F16> : wraw_half<false> {};
template <> struct wraw<QT_BF16> : wraw_half<true> {};

/* Calls F<T>::run(args...) for the runtime type; returns false when unsupported. */
#define M40_TYPE_SWITCH(type, CASE)                                                                \
    switch (type) {                                                                                \
    case QT_F32:                                                                                   \
        CASE(QT_F32);                                                                              \
        break;                                                                                     \
    case QT_F16:                                                                                   \
        CASE(QT_F16);                                                                              \
        break;                                                                                     \
    case QT_BF16:                                                                                  \
        CASE(QT_BF16);                                                                             \
        break;                                                                                     \
    case QT_Q4_0:                                                                                  \
        CASE(QT_Q4_0);                                                                             \
        break;                                                                                     \
    case QT_Q4_1:                                                                                  \
        CASE(QT_Q4_1);                                                                             \
        break;                                                                                     \
    case QT_Q5_0:                                                                                  \
        CASE(QT_Q5_0);                                                                             \
        break;                                                                                     \
    case QT_Q5_1:                                                                                  \
        CASE(QT_Q5_1);                                                                             \
        break;                                                                                     \
    case QT_Q8_0:                                                                                  \
        CASE(QT_Q8_0);                                                                             \
        break;                                                                                     \
    case QT_Q2_K:                                                                                  \
        CASE(QT_Q2_K);                                                                             \
        break;                                                                                     \
    case QT_Q3_K:                                                                                  \
        CASE(QT_Q3_K);                                                                             \
        break;                                                                                     \
    case QT_Q4_K:                                                                                  \
        CASE(QT_Q4_K);                                                                             \
        break;                                                                                     \
    case QT_Q5_K:                                                                                  \
        CASE(QT_Q5_K);                                                                             \
        break;                                                                                     \
    case QT_Q6_K:                                                                                  \
        CASE(QT_Q6_K);                                                                             \
        break;                                                                                     \
    default:                                                                                       \
        return err_set(M40LLM_ERR_UNSUPPORTED, "weight type %d has no GPU kernel", (int)(type));   \
    }

#endif
