/* Device weight layout: sizes, repacking from GGUF blocks, dequantization to
 * dense f32/f16 (prefill GEMM operands) and row lookup (embeddings). */
#include "wformat.cuh"

static size_t align256(size_t n) {
    return (n + 255) & ~(size_t)255;
}

extern "C" size_t gpu_matrix_layout(gpu_matrix *m, int type, int64_t rows, int64_t cols,
                                    size_t *q_bytes, size_t *s_bytes, size_t *h_bytes) {
    size_t qr = 0, sb = 0, hb = 0, hblk = 0; /* hblk: h bytes per 256-element block */
    if (rows <= 0 || cols <= 0 || cols % 32) return 0;
    int64_t nsb = cols / 32;
    switch (type) {
    case QT_F32:
        qr = (size_t)cols * 4;
        break;
    case QT_F16:
    case QT_BF16:
        qr = (size_t)cols * 2;
        break;
    case QT_Q4_0:
        qr = nsb * 16;
        sb = 2;
        break;
    case QT_Q4_1:
        qr = nsb * 16;
        sb = 4;
        break;
    case QT_Q5_0:
        qr = nsb * 16;
        sb = 2;
        hb = 4;
        break;
    case QT_Q5_1:
        qr = nsb * 16;
        sb = 4;
        hb = 4;
        break;
    case QT_Q8_0:
        qr = nsb * 32;
        sb = 2;
        break;
    case QT_Q2_K:
        if (cols % 256) return 0;
        qr = (cols / 256) * M40_Q2K_STRIDE;
        break;
    case QT_Q3_K:
        if (cols % 256) return 0;
        qr = (cols / 256) * M40_Q3K_STRIDE;
        break;
    case QT_Q4_K:
        if (cols % 256) return 0;
        qr = nsb * 16;
        sb = 2;
        hblk = 4;
        break;
    case QT_Q5_K:
        if (cols % 256) return 0;
        qr = (cols / 256) * M40_Q5K_STRIDE;
        break;
    case QT_Q6_K:
        if (cols % 256) return 0;
        qr = nsb * 16;
        sb = 4;
        hb = 8;
        break;
    default:
        return 0;
    }
    m->type = type;
    m->rows = rows;
    m->cols = cols;
    m->nsb = nsb;
    m->q_row = qr;
    m->q = m->s = m->h = NULL;
    m->dense = NULL;
    *q_bytes = align256(qr * (size_t)rows);
    *s_bytes = align256(sb * (size_t)rows * nsb);
    *h_bytes = align256(hb * (size_t)rows * nsb + hblk * (size_t)rows * (nsb / 8));
    return *q_bytes + *s_bytes + *h_bytes;
}

extern "C" void gpu_matrix_place(gpu_matrix *m, void *base, size_t q_bytes, size_t s_bytes) {
    uint8_t *b = (uint8_t *)base;
    m->q = b;
    int t = m->type;
    bool has_s = t == QT_Q4_0 || t == QT_Q4_1 || t == QT_Q5_0 || t == QT_Q5_1 || t == QT_Q8_0 ||
                 t == QT_Q4_K || t == QT_Q6_K;
    bool has_h = t == QT_Q5_0 || t == QT_Q5_1 || t == QT_Q4_K || t == QT_Q6_K;
    m->s = has_s ? b + q_bytes : NULL;
    m->h = has_h ? b + q_bytes + s_bytes : NULL;
}

/* ---- repack: one thread per GGUF block ---- */
static __device__ __forceinline__ uint16_t rd16(const uint8_t *p) {
    return (uint16_t)(p[0] | (p[1] << 8));
}
static __device__ __forceinline__ uint32_t rd32(const uint8_t *p) {
    return (uint32_t)p[0] | ((uint32_t)p[1] << 8) | ((uint32_t)p[2] << 16) | ((uint32_t)p[3] << 24);
}

__global__ void k_repack(gpu_matrix m, int64_t r0, const uint8_t *src, int64_t n, int bsz, int tsz,
                         int stride) {
    int64_t nbr = m.cols / bsz; /* GGUF blocks per row */
    int64_t i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x;
    if (i >= n * nbr) return;
    int64_t r = r0 + i / nbr, bi = i % nbr;
    const uint8_t *b = src + i * tsz; /* rows are consecutive blocks */
    int64_t si = r * m.nsb + bi;      /* 32-blocks: block index == sub-block index */
    switch (m.type) {
    case QT_Q4_0:
        for (int j = 0; j < 16; j++) m.q[si * 16 + j] = b[2 + j];
        ((uint16_t *)m.s)[si] = rd16(b);
        break;
    case QT_Q4_1:
        for (int j = 0; j < 16; j++) m.q[si * 16 + j] = b[4 + j];
        ((uint32_t *)m.s)[si] = rd32(b);
        break;
    case QT_Q5_0:
        for (int j = 0; j < 16; j++) m.q[si * 16 + j] = b[6 + j];
        ((uint16_t *)m.s)[si] = rd16(b);
        ((uint32_t *)m.h)[si] = rd32(b + 2);
        break;
    case QT_Q5_1:
        for (int j = 0; j < 16; j++) m.q[si * 16 + j] = b[8 + j];
        ((uint32_t *)m.s)[si] = rd32(b);
        ((uint32_t *)m.h)[si] = rd32(b + 4);
        break;
    case QT_Q8_0:
        for (int j = 0; j < 32; j++) m.q[si * 32 + j] = b[2 + j];
        ((uint16_t *)m.s)[si] = rd16(b);
        break;
    case QT_Q4_K: { /* into Q4_0's nibble order per sub-block, sc | m << 8, d | dmin << 16 */
        const uint8_t *qs = b + 16;
        for (int j = 0; j < 8; j++) {
            int64_t sj = r * m.nsb + bi * 8 + j;
            int sh = (j & 1) * 4;
            const uint8_t *c = qs + 32 * (j >> 1);
            for (int l = 0; l < 16; l++)
                m.q[sj * 16 + l] = (uint8_t)(((c[l] >> sh) & 15) | (((c[l + 16] >> sh) & 15) << 4));
            uint32_t sc, mn;
            k4_scale_min(b + 4, j, &sc, &mn);
            ((uint16_t *)m.s)[sj] = (uint16_t)(sc | (mn << 8));
        }
        ((uint32_t *)m.h)[r * (m.nsb / 8) + bi] = rd32(b);
        break;
    }
    case QT_Q6_K: { /* six-bit values packed per sub-block (q6_top), scales | d << 16 */
        const uint8_t *ql = b, *qh = b + 128, *sc = b + 192;
        for (int j = 0; j < 8; j++) {
            int64_t sj = r * m.nsb + bi * 8 + j;
            int n = j >> 2, t = j & 3;
            uint32_t v[32], wd[6] = {0, 0, 0, 0, 0, 0};
            for (int l = 0; l < 32; l++)
                v[l] = ((ql[64 * n + 32 * (t & 1) + l] >> (4 * (t >> 1))) & 15) |
                       (((qh[32 * n + l] >> (2 * t)) & 3) << 4);
            for (int l = 0; l < 24; l++) wd[l >> 2] |= v[l] << (6 * (l & 3));
            for (int g = 0; g < 2; g++) {
                uint32_t top = 0;
                for (int c = 0; c < 4; c++) top |= v[24 + 4 * g + c] << (6 * c);
                for (int k = 0; k < 3; k++) wd[3 * g + k] |= ((top >> (8 * k)) & 0xff) << 24;
            }
            uint32_t *q = (uint32_t *)(m.q + sj * 16), *h = (uint32_t *)(m.h + sj * 8);
            for (int k = 0; k < 4; k++) q[k] = wd[k];
            h[0] = wd[4], h[1] = wd[5];
            ((uint32_t *)m.s)[sj] = (uint32_t)sc[8 * n + 2 * t] |
                                    ((uint32_t)sc[8 * n + 2 * t + 1] << 8) |
                                    ((uint32_t)rd16(b + 208) << 16);
        }
        break;
    }
    default: { /* K-quants: the GGUF block into a padded slot */
        uint8_t *d = m.q + r * m.q_row + bi * stride;
        for (int j = 0; j < tsz; j++) d[j] = b[j];
        for (int j = tsz; j < stride; j++) d[j] = 0;
        break;
    }
    }
}

extern "C" int launch_repack(const gpu_matrix *m, int64_t r0, const void *src, int64_t n,
                             cudaStream_t st) {
    const quant_type_info *qi = quant_info(m->type);
    if (!qi) return err_set(M40LLM_ERR_UNSUPPORTED, "repack: unknown type %d", m->type);
    if (r0 < 0 || n < 0 || r0 + n > m->rows)
        return err_set(M40LLM_ERR_INVALID_ARG, "repack: rows %lld+%lld outside %lld", (long long)r0,
                       (long long)n, (long long)m->rows);
    if (n == 0) return M40LLM_OK;
    if (m->type == QT_F32 || m->type == QT_F16 || m->type == QT_BF16) {
        CUDA_TRY(cudaMemcpyAsync(m->q + r0 * m->q_row, src, (size_t)n * m->q_row,
                                 cudaMemcpyDeviceToDevice, st));
        return M40LLM_OK;
    }
    int stride = 0;
    switch (m->type) {
    case QT_Q2_K:
        stride = M40_Q2K_STRIDE;
        break;
    case QT_Q3_K:
        stride = M40_Q3K_STRIDE;
        break;
    case QT_Q5_K:
        stride = M40_Q5K_STRIDE;
        break;
    default:
        break;
    }
    int64_t total = n * (m->cols / qi->block_size);
    int threads = 256;
    int64_t blocks = (total + threads - 1) / threads;
    k_repack<<<(unsigned)blocks, threads, 0, st>>>(*m, r0, (const uint8_t *)src, n, qi->block_size,
                                                   qi->type_size, stride);
    CUDA_LAUNCHED("k_repack");
    return M40LLM_OK;
}

/* ---- dequantize: one thread per 32-element sub-block ---- */
template <int T> __global__ void k_dequant(gpu_matrix m, void *dst, int f16) {
    int64_t i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x;
    if (i >= m.rows * m.nsb) return;
    int64_t r = i / m.nsb, sb = i % m.nsb;
    float w[32];
    wdec<T>::get(m, r, sb, w);
    if (f16) {
        uint4 *o = (uint4 *)((uint16_t *)dst + r * m.cols + sb * 32);
#pragma unroll
        for (int l = 0; l < 4; l++) {
            uint32_t p[4];
#pragma unroll
            for (int j = 0; j < 4; j++)
                p[j] = (uint32_t)dev_to_f16(w[8 * l + 2 * j]) |
                       ((uint32_t)dev_to_f16(w[8 * l + 2 * j + 1]) << 16);
            o[l] = make_uint4(p[0], p[1], p[2], p[3]);
        }
    } else {
        float4 *o = (float4 *)((float *)dst + r * m.cols + sb * 32);
#pragma unroll
        for (int l = 0; l < 8; l++)
            o[l] = make_float4(w[4 * l], w[4 * l + 1], w[4 * l + 2], w[4 * l + 3]);
    }
}

extern "C" int launch_dequant(const gpu_matrix *m, void *dst, int dst_f16, cudaStream_t st) {
    int64_t total = m->rows * m->nsb;
    int threads = 128;
    unsigned blocks = (unsigned)((total + threads - 1) / threads);
#define DQ_CASE(T) k_dequant<T><<<blocks, threads, 0, st>>>(*m, dst, dst_f16)
    M40_TYPE_SWITCH(m->type, DQ_CASE)
#undef DQ_CASE
    CUDA_LAUNCHED("k_dequant");
    return M40LLM_OK;
}

/* ---- row lookup: block per row, thread per sub-block ---- */
template <int T> __global__ void k_get_rows(gpu_matrix m, const int32_t *ids, float *dst) {
    int64_t r = ids[blockIdx.y];
    float *o = dst + (int64_t)blockIdx.y * m.cols;
    for (int64_t sb = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; sb < m.nsb;
         sb += (int64_t)gridDim.x * blockDim.x) {
        float w[32];
        if (r < 0 || r >= m.rows) { /* validated on the host; never read outside */
#pragma unroll
            for (int l = 0; l < 32; l++) w[l] = 0.0f;
        } else {
            wdec<T>::get(m, r, sb, w);
        }
        float4 *o4 = (float4 *)(o + sb * 32);
#pragma unroll
        for (int l = 0; l < 8; l++)
            o4[l] = make_float4(w[4 * l], w[4 * l + 1], w[4 * l + 2], w[4 * l + 3]);
    }
}

extern "C" int launch_get_rows(const gpu_matrix *m, const int32_t *ids, int n, float *dst,
                               cudaStream_t st) {
    if (n <= 0) return M40LLM_OK;
    if (n > 65535) return err_set(M40LLM_ERR_INVALID_ARG, "get_rows: %d rows > 65535", n);
    int threads = 64;
    dim3 grid((unsigned)((m->nsb + threads - 1) / threads), (unsigned)n);
#define GR_CASE(T) k_get_rows<T><<<grid, threads, 0, st>>>(*m, ids, dst)
    M40_TYPE_SWITCH(m->type, GR_CASE)
#undef GR_CASE
    CUDA_LAUNCHED("k_get_rows");
    return M40LLM_OK;
}
