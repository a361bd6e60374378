/* Causal GQA attention over the paged KV cache, split along the sequence
 * (flash-decoding): block (kv head, split, entry) scores its chunk of
 * positions for all query heads of that KV head (K/V read once per group),
 * keeps the chunk's max and sum, and a second kernel merges the splits.
 * Prefill entries run through the same path, one query row each, so no
 * n x n score matrix ever exists in global memory. */
#include "cuda_internal.h"
#include "dev_common.cuh"

#define AT_THREADS 128
#define AT_GMAX    16 /* query heads per KV head */

static size_t attn_smem(int g, int hd, int chunk) {
    return (size_t)g * (hd + chunk + AT_THREADS) * sizeof(float) + (size_t)chunk * sizeof(int64_t);
}

extern "C" int attention_plan(int n_head, int n_kv, int hd, int n_ctx, int max_splits,
                              attn_plan *p) {
    if (n_kv <= 0 || n_head % n_kv || hd <= 0 || hd > 256 || hd % 8 || n_ctx <= 0)
        return err_set(M40LLM_ERR_UNSUPPORTED, "attention: %d heads, %d KV heads, head dim %d",
                       n_head, n_kv, hd);
    int g = n_head / n_kv;
    if (g > AT_GMAX)
        return err_set(M40LLM_ERR_UNSUPPORTED, "attention: %d query heads per KV head (max %d)", g,
                       AT_GMAX);
    /* decode (few queries) wants many short splits to fill the GPU; prefill
     * (many queries) fewer, longer ones: the caller bounds the split count */
    int chunk = 32;
    if (max_splits < 1) max_splits = 1;
    while ((n_ctx + chunk - 1) / chunk > max_splits) chunk *= 2;
    size_t smem = attn_smem(g, hd, chunk);
    while (smem > 40 * 1024 && chunk > 32) {
        chunk /= 2;
        smem = attn_smem(g, hd, chunk);
    }
    if (smem > 40 * 1024)
        return err_set(M40LLM_ERR_UNSUPPORTED, "attention: shape needs too much shared memory");
    p->n_head = n_head;
    p->n_kv = n_kv;
    p->hd = hd;
    p->chunk = chunk;
    p->n_split = (n_ctx + chunk - 1) / chunk;
    return M40LLM_OK;
}

extern "C" size_t attention_partial_floats(const attn_plan *p, int n) {
    return (size_t)n * p->n_head * p->n_split * (p->hd + 2);
}

template <int F16> static __device__ __forceinline__ float kv_at(const void *base, int64_t i) {
    return F16 ? dev_f16(((const uint16_t *)base)[i]) : ((const float *)base)[i];
}

/* 8 consecutive cache elements (16 B of f16 or 2 x 16 B of f32) as floats */
template <int F16>
static __device__ __forceinline__ void kv_load8(const void *base, int64_t i, float *o) {
    if (F16) {
        uint4 u = dev_ld128((const uint16_t *)base + i);
        uint32_t w[4] = {u.x, u.y, u.z, u.w};
#pragma unroll
        for (int j = 0; j < 4; j++) {
            o[2 * j] = dev_f16((uint16_t)(w[j] & 0xffff));
            o[2 * j + 1] = dev_f16((uint16_t)(w[j] >> 16));
        }
    } else {
        float4 a = __ldg((const float4 *)((const float *)base + i));
        float4 b = __ldg((const float4 *)((const float *)base + i) + 1);
        o[0] = a.x, o[1] = a.y, o[2] = a.z, o[3] = a.w, o[4] = b.x, o[5] = b.y, o[6] = b.z,
        o[7] = b.w;
    }
}

template <int F16>
__global__ void __launch_bounds__(AT_THREADS)
    k_attn_split(attn_plan pl, const float *q, kv_view kv, const int32_t *seqs, const int32_t *poss,
                 float scale, float *partial) {
    extern __shared__ float sm[];
    const int G = pl.n_head / pl.n_kv, hd = pl.hd, chunk = pl.chunk;
    float *qs = sm;                                      /* [G][hd] */
    float *sc = qs + G * hd;                             /* [G][chunk] */
    float *red = sc + G * chunk;                         /* [G][AT_THREADS] */
    int64_t *rowoff = (int64_t *)(red + G * AT_THREADS); /* [chunk] cache offset of each position */
    __shared__ float ms[AT_GMAX], ls[AT_GMAX];
    int kvh = blockIdx.x, split = blockIdx.y, e = blockIdx.z;
    int tid = threadIdx.x, lane = tid & 31, warp = tid >> 5;
    int len = poss[e] + 1, seq = seqs[e];
    int s0 = split * chunk;
    size_t pstride = (size_t)hd + 2;
    float *pout = partial + ((size_t)e * pl.n_head + (size_t)kvh * G) * pl.n_split * pstride +
                  (size_t)split * pstride;
    if (s0 >= len) { /* beyond this entry's length: an empty split */
        if (tid < G) {
            pout[(size_t)tid * pl.n_split * pstride + hd] = -INFINITY;
            pout[(size_t)tid * pl.n_split * pstride + hd + 1] = 0.0f;
        }
        return;
    }
    int L = min(len - s0, chunk);
    const float *qe = q + (size_t)e * pl.n_head * hd + (size_t)kvh * G * hd;
    for (int i = tid; i < G * hd; i += AT_THREADS) qs[i] = qe[i] * scale;
    const int32_t *pt = kv.page_table + (int64_t)seq * kv.pages_per_seq;
    for (int p = tid; p < L; p += AT_THREADS) {
        int pos = s0 + p;
        rowoff[p] =
            (((int64_t)pt[pos / M40_KV_PAGE] * kv.n_kv + kvh) * M40_KV_PAGE + pos % M40_KV_PAGE) *
            hd;
    }
    __syncthreads();

    /* ask for this chunk's K and V rows now: the score loop below walks
     * each K row serially and would otherwise wait on DRAM per 16 bytes */
    const int nl = (hd * (F16 ? 2 : 4) + 127) / 128; /* 128-byte lines per row */
    for (int i = tid; i < L * nl; i += AT_THREADS) {
        int64_t o = rowoff[i / nl] * (F16 ? 2 : 4) + 128 * (i % nl);
        dev_prefetch_l2((const char *)kv.k + o);
        dev_prefetch_l2((const char *)kv.v + o);
    }

    /* scores: one thread per position, its K row in 16-byte loads */
    for (int p = tid; p < L; p += AT_THREADS) {
        int64_t row = rowoff[p];
        float part[AT_GMAX];
#pragma unroll
        for (int g = 0; g < AT_GMAX; g++) part[g] = 0.0f;
#pragma unroll 2
        for (int d0 = 0; d0 < hd; d0 += 8) {
            float kd[8];
            kv_load8<F16>(kv.k, row + d0, kd);
#pragma unroll
            for (int g = 0; g < AT_GMAX; g++)
                if (g < G) {
#pragma unroll
                    for (int j = 0; j < 8; j++) part[g] = fmaf(qs[g * hd + d0 + j], kd[j], part[g]);
                }
        }
#pragma unroll
        for (int g = 0; g < AT_GMAX; g++)
            if (g < G) sc[g * chunk + p] = part[g];
    }
    __syncthreads();
    /* softmax numerators within the chunk: one warp per query head */
    for (int g = warp; g < G; g += AT_THREADS / 32) {
        float m = -INFINITY;
        for (int p = lane; p < L; p += 32) m = fmaxf(m, sc[g * chunk + p]);
        m = dev_warp_max(m);
        float l = 0.0f;
        for (int p = lane; p < L; p += 32) {
            float ev = expf(sc[g * chunk + p] - m);
            sc[g * chunk + p] = ev;
            l += ev;
        }
        l = dev_warp_sum(l);
        if (lane == 0) {
            ms[g] = m;
            ls[g] = l;
        }
    }
    __syncthreads();
    /* weighted sum of V: thread -> (position group, dim); independent loads in flight */
    int pg_n = hd >= AT_THREADS ? 1 : AT_THREADS / hd;
    for (int base = 0; base < hd; base += AT_THREADS) {
        int d = base + (hd >= AT_THREADS ? tid : tid % hd);
        int pg = hd >= AT_THREADS ? 0 : tid / hd;
        float acc[AT_GMAX];
#pragma unroll
        for (int g = 0; g < AT_GMAX; g++) acc[g] = 0.0f;
        bool active = d < hd && pg < pg_n;
        if (active) {
#pragma unroll 8
            for (int p = pg; p < L; p += pg_n) {
                float vd = kv_at<F16>(kv.v, rowoff[p] + d);
#pragma unroll
                for (int g = 0; g < AT_GMAX; g++)
                    if (g < G) acc[g] = fmaf(sc[g * chunk + p], vd, acc[g]);
            }
        }
#pragma unroll
        for (int g = 0; g < AT_GMAX; g++)
            if (g < G) red[g * AT_THREADS + tid] = active ? acc[g] : 0.0f;
        __syncthreads();
        for (int i = tid; i < G * AT_THREADS; i += AT_THREADS) {
            int g = i / AT_THREADS, j = i % AT_THREADS;
            int dd = hd >= AT_THREADS ? base + j : j;
            if (dd >= hd || (hd < AT_THREADS && j >= hd)) continue;
            float sum = 0.0f;
            if (hd >= AT_THREADS) {
                sum = red[g * AT_THREADS + j];
            } else {
                for (int k = 0; k < pg_n; k++) sum += red[g * AT_THREADS + k * hd + j];
            }
            pout[(size_t)g * pl.n_split * pstride + dd] = sum;
        }
        __syncthreads();
    }
    if (tid < G) {
        pout[(size_t)tid * pl.n_split * pstride + hd] = ms[tid];
        pout[(size_t)tid * pl.n_split * pstride + hd + 1] = ls[tid];
    }
}

/* merge the splits: block (head, entry); weights[s] in dynamic shared memory */
__global__ void k_attn_combine(attn_plan pl, const float *partial, const int32_t *poss,
                               float *out) {
    extern __shared__ float wsm[]; /* [n_split] */
    __shared__ float red[32];
    int h = blockIdx.x, e = blockIdx.y, hd = pl.hd;
    size_t pstride = (size_t)hd + 2;
    const float *pp = partial + ((size_t)e * pl.n_head + h) * pl.n_split * pstride;
    int ns = (poss[e] + pl.chunk) / pl.chunk; /* splits holding positions 0..pos */
    if (ns > pl.n_split) ns = pl.n_split;
    float m = -INFINITY;
    for (int s = threadIdx.x; s < ns; s += blockDim.x) m = fmaxf(m, pp[s * pstride + hd]);
    float M = dev_block_max(m, red);
    float den = 0.0f;
    for (int s = threadIdx.x; s < ns; s += blockDim.x) {
        float wgt = expf(pp[s * pstride + hd] - M);
        wsm[s] = wgt;
        den += wgt * pp[s * pstride + hd + 1];
    }
    den = dev_block_sum(den, red); /* its barriers also publish wsm */
    float inv = 1.0f / den;
    for (int d = threadIdx.x; d < hd; d += blockDim.x) {
        float a = 0.0f;
#pragma unroll 4
        for (int s = 0; s < ns; s++) a = fmaf(wsm[s], pp[s * pstride + d], a);
        out[((size_t)e * pl.n_head + h) * hd + d] = a * inv;
    }
}

extern "C" int launch_attention(const attn_plan *p, const float *q, const kv_view *kv,
                                const int32_t *seq, const int32_t *pos, int n, float scale,
                                float *partial, float *out, int max_pos, cudaStream_t st) {
    if (n <= 0) return M40LLM_OK;
    if (n > 65535) return err_set(M40LLM_ERR_INVALID_ARG, "attention: %d entries > 65535", n);
    if (kv->n_kv != p->n_kv || kv->hd != p->hd)
        return err_set(M40LLM_ERR_INVALID_ARG, "attention: cache has %d x %d, plan %d x %d",
                       kv->n_kv, kv->hd, p->n_kv, p->hd);
    int g = p->n_head / p->n_kv;
    size_t smem = attn_smem(g, p->hd, p->chunk);
    /* splits past the longest entry would only write empty results */
    int nl = p->n_split;
    if (max_pos >= 0 && max_pos / p->chunk + 1 < nl) nl = max_pos / p->chunk + 1;
    dim3 grid((unsigned)p->n_kv, (unsigned)nl, (unsigned)n);
    if (kv->f16)
        k_attn_split<1><<<grid, AT_THREADS, smem, st>>>(*p, q, *kv, seq, pos, scale, partial);
    else
        k_attn_split<0><<<grid, AT_THREADS, smem, st>>>(*p, q, *kv, seq, pos, scale, partial);
    CUDA_LAUNCHED("k_attn_split");
    dim3 g2((unsigned)p->n_head, (unsigned)n);
    k_attn_combine<<<g2, AT_THREADS, (size_t)p->n_split * sizeof(float), st>>>(*p, partial, pos,
                                                                               out);
    CUDA_LAUNCHED("k_attn_combine");
    return M40LLM_OK;
}
