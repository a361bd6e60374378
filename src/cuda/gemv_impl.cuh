/* The decode matrix-vector kernel template (see gemv.cu), instantiated per
 * weight type in gemv_f.cu / gemv_q.cu / gemv_k.cu so they build in parallel. */
#ifndef M40_GEMV_IMPL_CUH
#define M40_GEMV_IMPL_CUH

#include <stdlib.h>
#include <string.h>

#include "rope_kv.cuh"
#include "wformat.cuh"

#define GV_WARPS   4
#define GV_NR      4
#define GV_THREADS (GV_WARPS * 32)

/* x chunk (elements) per staging round: 4096 / B rounded to whole warp passes */
template <int B> struct gv_chunk { static const int elems = B <= 4 ? 4096 / B : 1024; };
/* kernel variants: PLAIN covers GEMV_STORE and GEMV_ADD (a runtime flag) */
#define GV_PLAIN 0
static __host__ __device__ __forceinline__ int gv_padded(int elems) {
    return elems + (elems >> 5) * 4;
}

template <int T, int B, int MODE>
__global__ void __launch_bounds__(GV_THREADS, 1)
    k_gemv(gpu_matrix w, gpu_matrix w2, const float *x, int64_t ldx, int nb, const float *gamma,
           float eps, float *y, int64_t ldy, int add, qkv_out qo, int64_t row0, int64_t kspan) {
    const int CH = gv_chunk<B>::elems, CHP = gv_padded(CH);
    extern __shared__ float xs[]; /* [B][CHP] */
    __shared__ float red[32];
    int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
    const int64_t K = w.cols;
    /* split-K (residual adds only): this block's slice of the inputs */
    const int64_t kbeg = (int64_t)blockIdx.y * kspan;
    const int64_t kend = kbeg + kspan < K ? kbeg + kspan : K;
    const int rows_per_block = MODE == GEMV_SWIGLU ? GV_WARPS * 2 : GV_WARPS * GV_NR;
    const int rows_per_warp = MODE == GEMV_SWIGLU ? 2 : GV_NR;
    int64_t rbase = (int64_t)blockIdx.x * rows_per_block + warp * rows_per_warp;

    /* ask for every byte this warp will read before the x staging, so the
     * DRAM reads overlap it and the decode loop finds them in L2: the loop
     * itself keeps too few loads in flight to cover DRAM latency */
#pragma unroll
    for (int r = 0; r < GV_NR; r++) {
        int64_t row = MODE == GEMV_SWIGLU ? rbase + (r & 1) : rbase + r;
        if (row >= w.rows) continue;
        const gpu_matrix &m = MODE == GEMV_SWIGLU && r >= 2 ? w2 : w;
        const uint8_t *q = m.q + row * m.q_row;
        size_t ob = m.q_row * (size_t)(kbeg >> 5) / (size_t)m.nsb,
               oe = m.q_row * (size_t)(kend >> 5) / (size_t)m.nsb;
        for (size_t off = ob + (size_t)lane * 128; off < oe; off += 32 * 128)
            dev_prefetch_l2(q + off);
        if (m.s && lane == 0)
            dev_prefetch_l2(m.s + row * m.nsb * (T == QT_Q4_1 || T == QT_Q5_1 ? 4 : 2));
        if (m.h && lane == 1) dev_prefetch_l2(m.h + row * m.nsb * 4);
    }

    float acc[GV_NR][B], ssq[B];
#pragma unroll
    for (int b = 0; b < B; b++) {
        ssq[b] = 0.0f;
#pragma unroll
        for (int r = 0; r < GV_NR; r++) acc[r][b] = 0.0f;
    }

    for (int64_t k0 = kbeg; k0 < kend; k0 += CH) {
        int kc = (int)(kend - k0 < CH ? kend - k0 : CH);
        __syncthreads(); /* previous chunk fully consumed */
        /* stage x (times the norm gain) with 16-byte loads, several in flight;
         * the RMSNorm scale itself is a per-vector factor applied at the end */
        const int kc4 = kc >> 2;
#pragma unroll
        for (int b = 0; b < B; b++) {
            const float4 *xb = (const float4 *)(x + b * ldx + k0);
            const float4 *gb = (const float4 *)(gamma + k0);
#pragma unroll 4
            for (int i = threadIdx.x; i < kc4; i += GV_THREADS) {
                float4 v = make_float4(0.0f, 0.0f, 0.0f, 0.0f);
                if (b < nb) {
                    v = __ldg(xb + i);
                    if (gamma) {
                        ssq[b] += v.x * v.x + v.y * v.y + v.z * v.z + v.w * v.w;
                        float4 g = __ldg(gb + i);
                        v.x *= g.x, v.y *= g.y, v.z *= g.z, v.w *= g.w;
                    }
                }
                int k = 4 * i;
                *(float4 *)(xs + b * CHP + k + (k >> 5) * 4) = v;
            }
        }
        __syncthreads();
        int nsc = kc >> 5;
        int64_t sb0 = k0 >> 5;
        for (int s = lane; s < nsc; s += 32) {
            if (B == 1) { /* one vector: hold its 32 values, reuse for every row */
                float xr[32];
                const float4 *xp = (const float4 *)(xs + s * 36);
#pragma unroll
                for (int q = 0; q < 8; q++) {
                    float4 xv = xp[q];
                    xr[4 * q] = xv.x, xr[4 * q + 1] = xv.y, xr[4 * q + 2] = xv.z,
                           xr[4 * q + 3] = xv.w;
                }
                float sx = 0.0f;
                if (wdot<T>::fast) {
#pragma unroll
                    for (int l = 0; l < 32; l++) sx += xr[l];
                }
#pragma unroll
                for (int r = 0; r < GV_NR; r++) {
                    int64_t row = MODE == GEMV_SWIGLU ? rbase + (r & 1) : rbase + r;
                    if (row >= w.rows) continue;
                    const gpu_matrix &m = MODE == GEMV_SWIGLU && r >= 2 ? w2 : w;
                    if (wdot<T>::fast) {
                        acc[r][0] += wdot<T>::dot(m, row, sb0 + s, xr, sx);
                        continue;
                    }
                    float wv[32];
                    wdec<T>::get(m, row, sb0 + s, wv);
                    float a0 = 0.0f, a1 = 0.0f;
#pragma unroll
                    for (int l = 0; l < 32; l += 2) {
                        a0 = fmaf(wv[l], xr[l], a0);
                        a1 = fmaf(wv[l + 1], xr[l + 1], a1);
                    }
                    acc[r][0] += a0 + a1;
                }
                continue;
            }
#pragma unroll
            for (int r = 0; r < GV_NR; r++) {
                int64_t row = MODE == GEMV_SWIGLU ? rbase + (r & 1) : rbase + r;
                if (row >= w.rows) continue;
                float wv[32];
                if (MODE == GEMV_SWIGLU && r >= 2)
                    wdec<T>::get(w2, row, sb0 + s, wv);
                else
                    wdec<T>::get(w, row, sb0 + s, wv);
#pragma unroll
                for (int b = 0; b < B; b++) {
                    const float4 *xp = (const float4 *)(xs + b * CHP + s * 36);
                    float a = 0.0f;
#pragma unroll
                    for (int q = 0; q < 8; q++) {
                        float4 xv = xp[q];
                        a = fmaf(wv[4 * q], xv.x, a);
                        a = fmaf(wv[4 * q + 1], xv.y, a);
                        a = fmaf(wv[4 * q + 2], xv.z, a);
                        a = fmaf(wv[4 * q + 3], xv.w, a);
                    }
                    acc[r][b] += a;
                }
            }
        }
    }
    if (gamma) { /* RMSNorm: W (x * g * s) = s * W (x * g) */
#pragma unroll
        for (int b = 0; b < B; b++) {
            float ss = dev_block_sum(ssq[b], red);
            float sc = 1.0f / sqrtf(ss / (float)K + eps);
#pragma unroll
            for (int r = 0; r < GV_NR; r++) acc[r][b] *= sc;
        }
    }
#pragma unroll
    for (int r = 0; r < GV_NR; r++)
#pragma unroll
        for (int b = 0; b < B; b++) acc[r][b] = dev_warp_sum(acc[r][b]);

    /* epilogues: every lane holds every sum; lane i writes output i */
    if (MODE == GEMV_SWIGLU) {
#pragma unroll
        for (int r = 0; r < 2; r++)
#pragma unroll
            for (int b = 0; b < B; b++)
                if (lane == r * B + b && b < nb && rbase + r < w.rows)
                    y[b * ldy + rbase + r] = dev_silu(acc[r][b]) * acc[r + 2][b];
    } else if (MODE == GEMV_QKV) {
#pragma unroll
        for (int p = 0; p < 2; p++)
#pragma unroll
            for (int b = 0; b < B; b++)
                if (lane == p * B + b && b < nb && rbase + 2 * p + 1 < w.rows)
                    qkv_epilogue(qo, row0 + rbase + 2 * p, b, acc[2 * p][b], acc[2 * p + 1][b]);
    } else {
#pragma unroll
        for (int r = 0; r < GV_NR; r++)
#pragma unroll
            for (int b = 0; b < B; b++)
                if (lane == (r * B + b) % 32 && b < nb && rbase + r < w.rows) {
                    if (gridDim.y > 1)
                        atomicAdd(&y[b * ldy + rbase + r], acc[r][b]);
                    else if (add)
                        y[b * ldy + rbase + r] += acc[r][b];
                    else
                        y[b * ldy + rbase + r] = acc[r][b];
                }
    }
}

/* A residual add with few rows leaves SMs idle: split K over enough blocks
 * to reach about `target` of them (whole 1024-element passes; the kernels add
 * the parts atomically). Returns the number of K slices, *kspan their width. */
static unsigned gemv_split_k(const gemv_args *a, unsigned blocks, unsigned target, int64_t *kspan) {
    int64_t K = a->w->cols;
    *kspan = K;
    if (a->mode != GEMV_ADD || a->gamma || blocks >= target || K < 2048) return 1;
    int64_t passes = (K + 1023) / 1024;
    int64_t want = (target + blocks - 1) / blocks;
    if (want > passes) want = passes;
    *kspan = ((passes + want - 1) / want) * 1024;
    return (unsigned)((K + *kspan - 1) / *kspan);
}

template <int T, int B, int MODE> static int gemv_launch_tbm(const gemv_args *a, cudaStream_t st) {
    const int CH = gv_chunk<B>::elems;
    size_t smem = (size_t)B * gv_padded(CH) * sizeof(float);
    int rpb = MODE == GEMV_SWIGLU ? GV_WARPS * 2 : GV_WARPS * GV_NR;
    unsigned blocks = (unsigned)((a->w->rows + rpb - 1) / rpb);
    int64_t kspan;
    unsigned ksplit = gemv_split_k(a, blocks, 512, &kspan);
    dim3 grid(blocks, ksplit);
    qkv_out qo;
    memset(&qo, 0, sizeof qo);
    if (a->qkv) qo = *a->qkv;
    gpu_matrix w2 = a->w2 ? *a->w2 : *a->w;
    k_gemv<T, B, MODE><<<grid, GV_THREADS, smem, st>>>(*a->w, w2, a->x, a->ldx, a->nb, a->gamma,
                                                       a->eps, a->y, a->ldy, a->mode == GEMV_ADD,
                                                       qo, a->row0, kspan);
    CUDA_LAUNCHED("k_gemv");
    return M40LLM_OK;
}

template <int T, int B> static int gemv_launch_tb(const gemv_args *a, cudaStream_t st) {
    if (a->mode == GEMV_SWIGLU) return gemv_launch_tbm<T, B, GEMV_SWIGLU>(a, st);
    if (a->mode == GEMV_QKV) return gemv_launch_tbm<T, B, GEMV_QKV>(a, st);
    return gemv_launch_tbm<T, B, GV_PLAIN>(a, st);
}

#include "gemv1_impl.cuh"

/* which single-vector kernel: 0 = by shape, 1 = always the warp kernel,
 * 2 = always the block-staged one (M40LLM_GEMV=warp|staged, to compare) */
static int gemv1_choice(void) {
    static int v = -1;
    if (v < 0) {
        const char *e = getenv("M40LLM_GEMV");
        v = e && !strcmp(e, "warp") ? 1 : e && !strcmp(e, "staged") ? 2 : 0;
    }
    return v;
}

/* The warp kernel wins where x is short (K <= 2048: SmolLM2-size layers,
 * where a block staging x for only 16 rows and idle lanes past K/32
 * dominate); on 4096+ inputs the block-staged kernel streams faster
 * (measured on an H200: 7B Q4_0 gate/up 51 us staged vs 61 us warp). */
static int gemv1_use_warp(const gemv_args *a) {
    int c = gemv1_choice();
    return c == 1 || (c == 0 && a->w->cols <= 2048);
}

/* batch sizes with their own kernels: 1 (decode: the warp kernel or the
 * block-staged one, by shape) and 8 (batched decode, block-staged);
 * 2..8 vectors run in the 8-wide kernel with the unused lanes zero */
template <int T> static int gemv_run_type(const gemv_args *a, cudaStream_t st) {
    if (a->nb == 1 && gemv1_use_warp(a)) return gemv1_run<T>(a, st);
    if (a->nb == 1) return gemv_launch_tb<T, 1>(a, st);
    return gemv_launch_tb<T, 8>(a, st);
}

#endif
