/* Causal GQA attention over the paged KV cache (optionally windowed and
 * soft-capped), split along the sequence
 * (flash-decoding): block (kv head, split, entry) scores its chunk of
 * positions for the query heads of that KV head (K/V read once per group)
 * and keeps the chunk's max and sum; the last split block of an entry to
 * finish merges the splits (one kernel). Prefill entries run through the
 * same path, one query row each, so no n x n score matrix ever exists in
 * global memory. */
#include "cuda_internal.h"
#include "dev_common.cuh"

#define AT_GMAX 64 /* query heads per KV head */

/* q, scores, merge weights and split denominators of gm heads, then the
 * chunk's row offsets */
static size_t attn_smem(int gm, int hd, int chunk, int n_split) {
    return (size_t)gm * (hd + chunk + 2 * n_split) * sizeof(float) +
           (size_t)chunk * sizeof(int64_t);
}

extern "C" int attention_plan(int n_head, int n_kv, int hd, int n_ctx, int max_splits, int threads,
                              attn_plan *p) {
    if (threads != 128 && threads != 512)
        return err_set(M40LLM_ERR_UNSUPPORTED, "attention: %d threads per block (128 or 512)",
                       threads);
    if (n_kv <= 0 || n_head % n_kv || hd <= 0 || hd > 256 || hd % 8 || n_ctx <= 0)
        return err_set(M40LLM_ERR_UNSUPPORTED, "attention: %d heads, %d KV heads, head dim %d",
                       n_head, n_kv, hd);
    int g = n_head / n_kv;
    if (g > AT_GMAX)
        return err_set(M40LLM_ERR_UNSUPPORTED, "attention: %d query heads per KV head (max %d)", g,
                       AT_GMAX);
    /* decode (few queries) wants many short splits to fill the GPU; prefill
     * (many queries) fewer, longer ones: the caller bounds the split count.
     * A split is at least one pass of the scores (4 threads a position). */
    const int min_chunk = threads / 4;
    int chunk = min_chunk;
    if (max_splits < 1) max_splits = 1;
    while ((n_ctx + chunk - 1) / chunk > max_splits) chunk *= 2;
    int gm = g <= 4 ? 4 : 8, ns = (n_ctx + chunk - 1) / chunk;
    size_t smem = attn_smem(gm, hd, chunk, ns);
    while (smem > 40 * 1024 && chunk > min_chunk) {
        chunk /= 2;
        ns = (n_ctx + chunk - 1) / chunk;
        smem = attn_smem(gm, hd, chunk, ns);
    }
    if (smem > 40 * 1024)
        return err_set(M40LLM_ERR_UNSUPPORTED,
                       "attention: a context of %d positions (head dim %d, %d query heads per KV "
                       "head) needs %zu bytes of shared memory per block, more than 40 KiB: use a "
                       "shorter context",
                       n_ctx, hd, g, smem);
    p->n_head = n_head;
    p->n_kv = n_kv;
    p->hd = hd;
    p->chunk = chunk;
    p->n_split = (n_ctx + chunk - 1) / chunk;
    p->threads = threads;
    return M40LLM_OK;
}

extern "C" size_t attention_partial_floats(const attn_plan *p, int n) {
    return (size_t)n * p->n_head * p->n_split * (p->hd + 2);
}

/* 8 consecutive cache elements as raw bytes: 16 B of f16 or 32 B of f32 */
template <int F16> struct kv8 {
    uint4 a, b;
    __device__ __forceinline__ void load(const void *base, int64_t i) {
        if (F16) {
            a = dev_ld128((const uint16_t *)base + i);
        } else {
            a = dev_ld128((const float *)base + i);
            b = dev_ld128((const float *)base + i + 4);
        }
    }
    __device__ __forceinline__ float at(int j) const {
        if (F16) {
            uint32_t w = dev_word(a, j >> 1);
            return dev_f16((uint16_t)(j & 1 ? w >> 16 : w & 0xffff));
        }
        return __uint_as_float(j < 4 ? dev_word(a, j) : dev_word(b, j - 4));
    }
};

/* Block (KV head and query-head group, split, entry): the chunk's scores
 * for the group's GM query heads (K rows read once for all), their softmax
 * numerators, and the weighted V sum. Then either the final output (the
 * entry has one split) or a partial (sum, max, denominator) and a count;
 * the entry's last split block to finish merges all of them, so no second
 * kernel runs. Every load of a phase is issued before its arithmetic. */
template <int F16, int GM, bool PRE, int AT_THREADS>
__global__ void __launch_bounds__(AT_THREADS)
    k_attn(attn_plan pl, const float *q, kv_view kv, const int32_t *seqs, const int32_t *poss,
           attn_mods md, float *partial, unsigned *counters, float *out) {
    extern __shared__ float sm[];
    const int G = pl.n_head / pl.n_kv, hd = pl.hd, chunk = pl.chunk, ngr = (G + GM - 1) / GM;
    const int kvh = blockIdx.x / ngr, g0 = (blockIdx.x % ngr) * GM;
    const int Gb = min(GM, G - g0);                        /* query heads of this block */
    float *qs = sm;                                        /* [GM][hd] */
    float *sc = qs + GM * hd;                              /* [GM][chunk] */
    float *wts = sc + GM * chunk;                          /* [GM][n_split] merge weights */
    float *dens = wts + GM * pl.n_split;                   /* [GM][n_split] split denominators */
    int64_t *rowoff = (int64_t *)(dens + GM * pl.n_split); /* [chunk], 8-byte aligned: GM even */
    __shared__ float ms[GM], ls[GM];
    __shared__ int last;
    int split = blockIdx.y, e = blockIdx.z;
    int tid = threadIdx.x, lane = tid & 31, warp = tid >> 5;
    int len = poss[e] + 1, seq = seqs[e];
    int s0 = split * chunk;
    if (s0 >= len) return; /* past this entry's positions: not counted */
    const int ns = min(pl.n_split, (len + chunk - 1) / chunk); /* the entry's splits */
    const int h0 = kvh * G + g0;                               /* first query head of the block */
    int L = min(len - s0, chunk);
    const float *qe = q + ((size_t)e * pl.n_head + h0) * hd;
    for (int i = tid; i < Gb * hd; i += AT_THREADS) qs[i] = qe[i] * md.scale;
    const int32_t *pt = kv.page_table + (int64_t)seq * kv.pages_per_seq;
    const int sh = kv.page_shift;
    for (int p = tid; p < L; p += AT_THREADS) {
        int pos = s0 + p;
        rowoff[p] =
            ((((int64_t)pt[pos >> sh] * kv.n_kv + kvh) << sh) + (pos & ((1 << sh) - 1))) * hd;
    }
    __syncthreads();

    /* the V phase's threads: (8-dim group dg, position slice sl); the NS
     * slices of a group are adjacent lanes, summed by shuffles at the end.
     * PRE (decode): its first VU rows are asked for now, with the K rows
     * below, so the V loads' latency overlaps the scores and the softmax
     * (one batch covers a 32-position split of 128 threads at head dim
     * 128: H200, 7B Q4_0 tg128 +1%; 512 threads cover 128 positions).
     * Prefill keeps fewer rows in flight and registers low (more blocks
     * per SM). */
    /* 512-thread blocks: two halves, each summing half of the block's
     * heads (fewer values for the slices' shuffle sums) */
    const int HG = AT_THREADS == 512 ? 2 : 1, HPT = GM / HG, TPG = AT_THREADS / HG;
    const int hg = HG == 1 ? 0 : tid / TPG, r = HG == 1 ? tid : tid % TPG;
    const int ndg = hd / 8;
    int NS = 1;
    while (NS * 2 * ndg <= TPG && NS < 32) NS *= 2;
    const int dg = r / NS, sl = r % NS;
    /* rows in flight (f32 rows take twice the registers: 2 early rows,
     * not 4, which spill on sm_52 in 512-thread blocks) */
    const int VU = F16 && PRE ? 8 : F16 ? 4 : 2;
    kv8<F16> vr[VU];
    /* the thread has V rows to sum: a dim group of the head, and in
     * decode a half with heads (with 2 or fewer query heads a KV head,
     * the second half of a 512-thread block has none; the batched
     * kernel would spill on sm_52 with the test) */
    const bool vwork = dg < ndg && (HG == 1 || !PRE || hg * HPT < Gb);
    if (PRE && vwork) {
#pragma unroll
        for (int u = 0; u < VU; u++)
            if (sl + u * NS < L) vr[u].load(kv.v, rowoff[sl + u * NS] + 8 * dg);
    }

    /* scores: 4 threads per position, each 8-element groups t, t+4, ...
     * of the K row (all loads first), summed over the quad by shuffles */
    for (int p0 = 0; p0 < L; p0 += AT_THREADS / 4) {
        int p = p0 + (tid >> 2), t = tid & 3;
        kv8<F16> kr[8];
        if (p < L) {
#pragma unroll
            for (int i = 0; i < 8; i++)
                if (t + 4 * i < ndg) kr[i].load(kv.k, rowoff[p] + 8 * (t + 4 * i));
        }
        float part[GM];
#pragma unroll
        for (int g = 0; g < GM; g++) part[g] = 0.0f;
        if (p < L) {
#pragma unroll
            for (int i = 0; i < 8; i++) {
                int d0 = 8 * (t + 4 * i);
                if (d0 >= hd) break;
#pragma unroll
                for (int g = 0; g < GM; g++)
                    if (g < Gb) {
#pragma unroll
                        for (int j = 0; j < 8; j++)
                            part[g] = fmaf(qs[g * hd + d0 + j], kr[i].at(j), part[g]);
                    }
            }
        }
#pragma unroll
        for (int g = 0; g < GM; g++) {
            part[g] += __shfl_xor_sync(M40_FULL_MASK, part[g], 1);
            part[g] += __shfl_xor_sync(M40_FULL_MASK, part[g], 2);
        }
        if (t == 0 && p < L) {
#pragma unroll
            for (int g = 0; g < GM; g++)
                if (g < Gb) sc[g * chunk + p] = part[g];
        }
    }
    __syncthreads();
    /* softmax numerators within the chunk: one warp per query head (the
     * scores soft-capped and masked outside the window first) */
    /* a sliding window's first key: positions before it are masked (a split
     * wholly before it keeps max -inf and sum 0, weight 0 in the merge) */
    const int lo = md.window > 0 && len > md.window ? len - md.window : 0;
    for (int g = warp; g < Gb; g += AT_THREADS / 32) {
        float m = -INFINITY;
        if (md.softcap > 0.0f || lo > s0) {
            for (int p = lane; p < L; p += 32) {
                float v = sc[g * chunk + p];
                if (md.softcap > 0.0f) v = md.softcap * tanhf(v / md.softcap);
                sc[g * chunk + p] = s0 + p < lo ? -INFINITY : v;
            }
            __syncwarp();
        }
        for (int p = lane; p < L; p += 32) m = fmaxf(m, sc[g * chunk + p]);
        m = dev_warp_max(m);
        float l = 0.0f;
        for (int p = lane; p < L; p += 32) {
            float ev = m == -INFINITY ? 0.0f : expf(sc[g * chunk + p] - m);
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

    /* weighted V sum (the first batch of rows is in vr already) */
    float acc[HPT][8];
#pragma unroll
    for (int g = 0; g < HPT; g++)
#pragma unroll
        for (int j = 0; j < 8; j++) acc[g][j] = 0.0f;
    if (vwork) {
        for (int pb = sl; pb < L; pb += VU * NS) {
            if (!PRE || pb != sl) {
#pragma unroll
                for (int u = 0; u < VU; u++)
                    if (pb + u * NS < L) vr[u].load(kv.v, rowoff[pb + u * NS] + 8 * dg);
            }
#pragma unroll
            for (int u = 0; u < VU; u++) {
                int p = pb + u * NS;
                if (p >= L) break;
#pragma unroll
                for (int gi = 0; gi < HPT; gi++)
                    if (hg * HPT + gi < Gb) {
                        float wgt = sc[(hg * HPT + gi) * chunk + p];
#pragma unroll
                        for (int j = 0; j < 8; j++) acc[gi][j] = fmaf(wgt, vr[u].at(j), acc[gi][j]);
                    }
            }
        }
    }
    for (int o = 1; o < NS; o <<= 1)
#pragma unroll
        for (int g = 0; g < HPT; g++)
#pragma unroll
            for (int j = 0; j < 8; j++) acc[g][j] += __shfl_xor_sync(M40_FULL_MASK, acc[g][j], o);

    size_t pstride = (size_t)hd + 2;
    if (ns == 1) { /* the whole entry in this block: normalize and finish */
        if (dg < ndg && sl == 0) {
#pragma unroll
            for (int gi = 0; gi < HPT; gi++) {
                const int g = hg * HPT + gi;
                if (g < Gb) {
                    float inv = 1.0f / ls[g];
                    float *o = out + ((size_t)e * pl.n_head + h0 + g) * hd + 8 * dg;
#pragma unroll
                    for (int j = 0; j < 8; j++) o[j] = acc[gi][j] * inv;
                }
            }
        }
        return;
    }
    /* partial [entry][head][split][hd + 2] */
    float *pbase = partial + ((size_t)e * pl.n_head + h0) * pl.n_split * pstride;
    if (dg < ndg && sl == 0) {
#pragma unroll
        for (int gi = 0; gi < HPT; gi++) {
            const int g = hg * HPT + gi;
            if (g < Gb) {
                float *o = pbase + ((size_t)g * pl.n_split + split) * pstride + 8 * dg;
#pragma unroll
                for (int j = 0; j < 8; j++) o[j] = acc[gi][j];
            }
        }
    }
    if (tid < Gb) {
        pbase[((size_t)tid * pl.n_split + split) * pstride + hd] = ms[tid];
        pbase[((size_t)tid * pl.n_split + split) * pstride + hd + 1] = ls[tid];
    }
    /* publish, then count: the block that brings the count to ns merges */
    __threadfence();
    __syncthreads();
    unsigned *cnt = counters + (size_t)e * gridDim.x + blockIdx.x;
    if (tid == 0) last = atomicAdd(cnt, 1u) == (unsigned)ns - 1;
    __syncthreads();
    if (!last) return;
    __threadfence();
    for (int i = tid; i < Gb * ns; i += AT_THREADS) { /* weights, step 1: maxima, denominators */
        int g = i / ns, s = i % ns;
        const float *ml = pbase + ((size_t)g * pl.n_split + s) * pstride + hd;
        wts[g * pl.n_split + s] = __ldcg(ml);
        dens[g * pl.n_split + s] = __ldcg(ml + 1);
    }
    __syncthreads();
    for (int g = warp; g < Gb; g += AT_THREADS / 32) { /* step 2: exp(m_s - M), the denominator */
        float m = -INFINITY;
        for (int s = lane; s < ns; s += 32) m = fmaxf(m, wts[g * pl.n_split + s]);
        m = dev_warp_max(m);
        float den = 0.0f;
        for (int s = lane; s < ns; s += 32) {
            float w = expf(wts[g * pl.n_split + s] - m);
            den += w * dens[g * pl.n_split + s];
            wts[g * pl.n_split + s] = w;
        }
        den = dev_warp_sum(den);
        __syncwarp();
        if (lane == 0) ls[g] = den;
    }
    __syncthreads();
    for (int i = tid; i < Gb * hd; i += AT_THREADS) {
        int g = i / hd, d = i % hd;
        const float *pp = pbase + (size_t)g * pl.n_split * pstride + d;
        float a = 0.0f;
#pragma unroll 4
        for (int s = 0; s < ns; s++) a = fmaf(wts[g * pl.n_split + s], __ldcg(pp + s * pstride), a);
        out[((size_t)e * pl.n_head + h0 + g) * hd + d] = a / ls[g];
    }
    if (tid == 0) *cnt = 0; /* ready for the next launch */
}

/* query heads per block: 4 (most models) or 8; more in several groups */
static int attn_gm(int g) {
    return g <= 4 ? 4 : 8;
}

extern "C" size_t attention_counters(const attn_plan *p, int n) {
    int g = p->n_head / p->n_kv, gm = attn_gm(g);
    return (size_t)n * p->n_kv * ((g + gm - 1) / gm);
}

extern "C" int launch_attention(const attn_plan *p, const float *q, const kv_view *kv,
                                const int32_t *seq, const int32_t *pos, int n, const attn_mods *md,
                                float *partial, unsigned *counters, float *out, int max_pos,
                                cudaStream_t st) {
    if (n <= 0) return M40LLM_OK;
    if (n > 65535) return err_set(M40LLM_ERR_INVALID_ARG, "attention: %d entries > 65535", n);
    if (!md || md->window < 0 || !(md->softcap >= 0.0f))
        return err_set(M40LLM_ERR_INVALID_ARG, "attention: bad window or soft-cap");
    if (kv->n_kv != p->n_kv || kv->hd != p->hd)
        return err_set(M40LLM_ERR_INVALID_ARG, "attention: cache has %d x %d, plan %d x %d",
                       kv->n_kv, kv->hd, p->n_kv, p->hd);
    int g = p->n_head / p->n_kv, gm = attn_gm(g);
    size_t smem = attn_smem(gm, p->hd, p->chunk, p->n_split);
    /* splits past the longest entry would only return at once */
    int nl = p->n_split;
    if (max_pos >= 0 && max_pos / p->chunk + 1 < nl) nl = max_pos / p->chunk + 1;
    dim3 grid((unsigned)(attention_counters(p, 1)), (unsigned)nl, (unsigned)n);
#define AT_LAUNCH(F, G, P, T)                                                                      \
    k_attn<F, G, P, T><<<grid, T, smem, st>>>(*p, q, *kv, seq, pos, *md, partial, counters, out)
#define AT_LAUNCH_T(F, G, P) (p->threads == 512 ? AT_LAUNCH(F, G, P, 512) : AT_LAUNCH(F, G, P, 128))
    const bool pre = n <= M40_GEMV_MAX_B; /* decode: the V rows asked for early */
    if (kv->f16 && gm == 4)
        pre ? AT_LAUNCH_T(1, 4, true) : AT_LAUNCH_T(1, 4, false);
    else if (kv->f16)
        pre ? AT_LAUNCH_T(1, 8, true) : AT_LAUNCH_T(1, 8, false);
    else if (gm == 4)
        pre ? AT_LAUNCH_T(0, 4, true) : AT_LAUNCH_T(0, 4, false);
    else
        pre ? AT_LAUNCH_T(0, 8, true) : AT_LAUNCH_T(0, 8, false);
#undef AT_LAUNCH_T
#undef AT_LAUNCH
    CUDA_LAUNCHED("k_attn");
    return M40LLM_OK;
}
