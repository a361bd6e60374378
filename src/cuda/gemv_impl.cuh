/* The decode matrix-vector kernel template (see gemv.cu), instantiated per
 * weight type in gemv_f.cu / gemv_q.cu / gemv_k.cu so they build in parallel. */
#ifndef M40_GEMV_IMPL_CUH
#define M40_GEMV_IMPL_CUH

#include <stdlib.h>
#include <string.h>

#include "rope_kv.cuh"
#include "wformat.cuh"

#define GV_WARPS   4
#define GV_THREADS (GV_WARPS * 32)

/* x chunk (elements) per staging round: 4096 / B rounded to whole warp passes */
template <int B> struct gv_chunk { static const int elems = B <= 4 ? 4096 / B : 1024; };
/* kernel variants: PLAIN covers GEMV_STORE and GEMV_ADD (a runtime flag) */
#define GV_PLAIN 0
/* The kernels' runtime flag `add`: the residual add of PLAIN, the GELU
 * activation (instead of SiLU) of SWIGLU. */
static inline int gemv_flag(const gemv_args *a) {
    return a->mode == GEMV_SWIGLU ? a->act != 0 : a->mode == GEMV_ADD;
}
static __host__ __device__ __forceinline__ int gv_padded(int elems) {
    return elems + (elems >> 5) * 4;
}

/* Row stream r of a warp owning output rows rbase..: r itself, or for
 * SwiGLU the gate rows (r < NR / 2) then the same rows of up (w2). */
template <int MODE, int NR> static __device__ __forceinline__ int64_t gv_row(int64_t rbase, int r) {
    return MODE == GEMV_SWIGLU ? rbase + (r % (NR / 2)) : rbase + r;
}

template <int MODE, int NR>
static __device__ __forceinline__ const gpu_matrix &gv_mat(const gpu_matrix &w,
                                                           const gpu_matrix &w2, int r) {
    return MODE == GEMV_SWIGLU && r >= NR / 2 ? w2 : w;
}

/* the stream's row, rows past the end clamped to the last (read, never written) */
template <int MODE, int NR>
static __device__ __forceinline__ int64_t gv_row_in(const gpu_matrix &w, int64_t rbase, int r) {
    int64_t row = gv_row<MODE, NR>(rbase, r);
    return row < w.rows ? row : w.rows - 1;
}

/* Asks L2 for the bytes of one row's sub-blocks [sb0, sb1) (and its
 * scales / high bits) without waiting: the DRAM reads of every row a warp
 * owns then overlap, and its loads later mostly hit L2. */
template <int T>
static __device__ __forceinline__ void gv_prefetch_row(const gpu_matrix &m, int64_t row,
                                                       int64_t sb0, int64_t sb1, int lane) {
    const int bps = wbytes<T>::q, sbytes = wbytes<T>::s;
    const uint8_t *q = m.q + row * m.q_row;
    for (int64_t off = sb0 * bps + lane * 128; off < sb1 * bps; off += 32 * 128)
        dev_prefetch_l2(q + off);
    for (int64_t off = lane * 128; m.s && off < (sb1 - sb0) * sbytes; off += 32 * 128)
        dev_prefetch_l2(m.s + (row * m.nsb + sb0) * sbytes + off);
    for (int64_t off = lane * 128; m.h && off < (sb1 - sb0) * 4; off += 32 * 128)
        dev_prefetch_l2(m.h + (row * m.nsb + sb0) * 4 + off);
}

/* Stages n values of x (times the gain g, when given) into xs as sub-blocks
 * of 36 floats (32 values + 4 pad: the lanes' float4 reads of their own
 * sub-block hit distinct banks), NPT 16-byte loads in flight per thread;
 * with sums, slot 32 of each sub-block gets the sum of its 32 values (from
 * the 8 threads that staged it). read false: zeros, x untouched. All NT
 * threads of the block call it (shuffles); returns this thread's part of
 * sum(x^2) where g is given (the RMSNorm scale is a per-vector factor the
 * caller applies at the end), else 0. DNX: x staged times nib_dn_xscale of
 * that kind (the sums stay those of x). */
template <int NT, int NPT, int DNX = 0>
static __device__ __forceinline__ float gv_stage(float *xs, const float *x, const float *g, int n,
                                                 bool read, bool sums) {
    const int n4 = n >> 2;
    const float4 *x4 = (const float4 *)x, *g4 = (const float4 *)g;
    float ssq = 0.0f;
    for (int i0 = 0; i0 < n4; i0 += NPT * NT) {
        float4 v[NPT], gv[NPT];
#pragma unroll
        for (int j = 0; j < NPT; j++) {
            int i = i0 + j * NT + threadIdx.x;
            v[j] = make_float4(0.0f, 0.0f, 0.0f, 0.0f);
            gv[j] = make_float4(1.0f, 1.0f, 1.0f, 1.0f);
            if (i < n4 && read) {
                v[j] = __ldg(x4 + i);
                if (g) gv[j] = __ldg(g4 + i);
            }
        }
#pragma unroll
        for (int j = 0; j < NPT; j++) {
            int i = i0 + j * NT + threadIdx.x; /* 8 consecutive threads: one sub-block */
            float4 u = v[j];
            if (g) {
                ssq = fmaf(u.x, u.x, fmaf(u.y, u.y, fmaf(u.z, u.z, fmaf(u.w, u.w, ssq))));
                u.x *= gv[j].x, u.y *= gv[j].y, u.z *= gv[j].z, u.w *= gv[j].w;
            }
            if (i < n4) {
                float4 us = u;
                if (DNX) { /* the masked dot's x (sums: of x itself) */
                    const float4 f = nib_dn_xscale(DNX, (i & 7) >= 4, i & 1);
                    us.x *= f.x, us.y *= f.y, us.z *= f.z, us.w *= f.w;
                }
                *(float4 *)(xs + (i >> 3) * 36 + (i & 7) * 4) = us;
            }
            if (sums) {
                float t = (u.x + u.y) + (u.z + u.w);
                t += __shfl_xor_sync(M40_FULL_MASK, t, 1);
                t += __shfl_xor_sync(M40_FULL_MASK, t, 2);
                /* (Q6_K's masked dot: the low half's sum in slot 33) */
                if (DNX == 3 && (i & 7) == 0 && i < n4) xs[(i >> 3) * 36 + 33] = t;
                t += __shfl_xor_sync(M40_FULL_MASK, t, 4);
                if ((i & 7) == 0 && i < n4) xs[(i >> 3) * 36 + 32] = t;
            }
        }
    }
    return ssq;
}

/* w[0..32) . the staged sub-block at xsb (its 32 values as 8 float4s), one
 * FMA chain in element order: the several-vector kernels' dot per
 * sub-block (how they add the sub-blocks up differs: staged and MoE by
 * lane then warp sum, rows by four lanes) */
static __device__ __forceinline__ float gv_dot_staged(const float *w, const float *xsb) {
    const float4 *xp = (const float4 *)xsb;
    float a = 0.0f;
#pragma unroll
    for (int q = 0; q < 8; q++) {
        const float4 xv = xp[q];
        a = fmaf(w[4 * q], xv.x, a);
        a = fmaf(w[4 * q + 1], xv.y, a);
        a = fmaf(w[4 * q + 2], xv.z, a);
        a = fmaf(w[4 * q + 3], xv.w, a);
    }
    return a;
}

/* one vector, 32-element block types and Q4_K: at most ~100 registers,
 * 5 blocks (20 warps) per SM; the others need more registers than that */
template <int T, int B> struct gv_min_blocks {
    static const int n = B == 1 && (T == QT_Q4_0 || T == QT_Q4_1 || T == QT_Q5_0 || T == QT_Q5_1 ||
                                    T == QT_Q8_0 || T == QT_Q4_K)
                             ? 5
                             : 1;
};

template <int T, int B, int MODE, int NR>
__global__ void __launch_bounds__(GV_THREADS, gv_min_blocks<T, B>::n)
    k_gemv(gpu_matrix w, gpu_matrix w2, const float *x, int64_t ldx, int nb, const float *gamma,
           float eps, float *y, int64_t ldy, int add, qkv_out qo, int64_t row0, int64_t kspan) {
    const int CH = gv_chunk<B>::elems, CHP = gv_padded(CH);
    extern __shared__ float xs[]; /* [B][CHP]: 32 values + 4 pad per sub-block */
    __shared__ float red[32];
    int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
    const int64_t K = w.cols;
    /* split-K (residual adds only): this block's slice of the inputs */
    const int64_t kbeg = (int64_t)blockIdx.y * kspan;
    const int64_t kend = kbeg + kspan < K ? kbeg + kspan : K;
    const int rows_per_warp = MODE == GEMV_SWIGLU ? NR / 2 : NR;
    const int rows_per_block = GV_WARPS * rows_per_warp;
    int64_t rbase = (int64_t)blockIdx.x * rows_per_block + warp * rows_per_warp;

    /* the warp's row streams (SwiGLU: 2 gate rows, then the same 2 of up);
     * rows past the end read the last row and are not written */
    wrow rp[NR];
#pragma unroll
    for (int r = 0; r < NR; r++) {
        int64_t row = gv_row_in<MODE, NR>(w, rbase, r);
        const gpu_matrix &m = gv_mat<MODE, NR>(w, w2, r);
        rp[r] = wrow_at<T>(m, row);
        gv_prefetch_row<T>(m, row, kbeg >> 5, kend >> 5, lane);
    }

    float acc[NR][B], ssq[B];
#pragma unroll
    for (int b = 0; b < B; b++) {
        ssq[b] = 0.0f;
#pragma unroll
        for (int r = 0; r < NR; r++) acc[r][b] = 0.0f;
    }

    for (int64_t k0 = kbeg; k0 < kend; k0 += CH) {
        int kc = (int)(kend - k0 < CH ? kend - k0 : CH);
        int nsc = kc >> 5;
        int64_t sb0 = k0 >> 5;
        __syncthreads(); /* previous chunk fully consumed */
        /* float4s per thread per round: a round's loads are all in flight at once */
        const int NPT =
            (CH / 4 + GV_THREADS - 1) / GV_THREADS < 4 ? (CH / 4 + GV_THREADS - 1) / GV_THREADS : 4;
#pragma unroll
        for (int b = 0; b < B; b++) /* one vector: sub-block sums for the quantized dots */
            ssq[b] +=
                gv_stage<GV_THREADS, NPT>(xs + b * CHP, x + b * ldx + k0, gamma ? gamma + k0 : NULL,
                                          kc, b < nb, B == 1 && wraw<T>::uses_sx);
        __syncthreads();
        for (int s = lane; s < nsc; s += 32) {
            if (B == 1) {       /* one vector: hold its 32 values, reuse for every row */
                wraw<T> wr[NR]; /* every row's bytes asked for first */
#pragma unroll
                for (int r = 0; r < NR; r++) wr[r].load(rp[r], sb0 + s);
                float xr[32];
                const float4 *xp = (const float4 *)(xs + s * 36);
#pragma unroll
                for (int q = 0; q < 8; q++) {
                    float4 xv = xp[q];
                    xr[4 * q] = xv.x, xr[4 * q + 1] = xv.y, xr[4 * q + 2] = xv.z,
                           xr[4 * q + 3] = xv.w;
                }
                const float sx = wraw<T>::uses_sx ? xs[s * 36 + 32] : 0.0f;
#pragma unroll
                for (int r = 0; r < NR; r++) {
                    acc[r][0] += wr[r].dot(gv_mat<MODE, NR>(w, w2, r),
                                           gv_row_in<MODE, NR>(w, rbase, r), sb0 + s, xr, sx);
                }
            } else { /* several vectors: decode each row once, use it for all */
#pragma unroll
                for (int r = 0; r < NR; r++) {
                    int64_t row = gv_row<MODE, NR>(rbase, r);
                    if (row >= w.rows) continue;
                    float wv[32];
                    wdec<T>::get(gv_mat<MODE, NR>(w, w2, r), row, sb0 + s, wv);
#pragma unroll
                    for (int b = 0; b < B; b++)
                        acc[r][b] += gv_dot_staged(wv, xs + b * CHP + s * 36);
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
            for (int r = 0; r < NR; r++) acc[r][b] *= sc;
        }
    }
#pragma unroll
    for (int r = 0; r < NR; r++)
#pragma unroll
        for (int b = 0; b < B; b++) acc[r][b] = dev_warp_sum(acc[r][b]);

    /* epilogues: every lane holds every sum; lane i writes output i */
    if (MODE == GEMV_SWIGLU) {
#pragma unroll
        for (int r = 0; r < NR / 2; r++)
#pragma unroll
            for (int b = 0; b < B; b++)
                if (lane == r * B + b && b < nb && rbase + r < w.rows)
                    y[b * ldy + rbase + r] = dev_act(acc[r][b], add) * acc[r + NR / 2][b];
    } else if (MODE == GEMV_QKV) {
#pragma unroll
        for (int p = 0; p < NR / 2; p++)
#pragma unroll
            for (int b = 0; b < B; b++)
                if (lane == p * B + b && b < nb && rbase + 2 * p + 1 < w.rows)
                    qkv_epilogue(qo, NULL, row0 + rbase + 2 * p, b, acc[2 * p][b],
                                 acc[2 * p + 1][b]);
    } else {
#pragma unroll
        for (int r = 0; r < NR; r++)
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

template <int T, int B, int MODE, int NR>
static int gemv_launch_tbmn(const gemv_args *a, cudaStream_t st) {
    const int CH = gv_chunk<B>::elems;
    size_t smem = (size_t)B * gv_padded(CH) * sizeof(float);
    int rpb = GV_WARPS * (MODE == GEMV_SWIGLU ? NR / 2 : NR);
    unsigned blocks = (unsigned)((a->w->rows + rpb - 1) / rpb);
    int64_t kspan;
    unsigned ksplit = gemv_split_k(a, blocks, 512, &kspan);
    dim3 grid(blocks, ksplit);
    qkv_out qo;
    memset(&qo, 0, sizeof qo);
    if (a->qkv) qo = *a->qkv;
    gpu_matrix w2 = a->w2 ? *a->w2 : *a->w;
    k_gemv<T, B, MODE, NR><<<grid, GV_THREADS, smem, st>>>(*a->w, w2, a->x, a->ldx, a->nb, a->gamma,
                                                           a->eps, a->y, a->ldy, gemv_flag(a), qo,
                                                           a->row0, kspan);
    CUDA_LAUNCHED("k_gemv");
    return M40LLM_OK;
}

/* Row streams per warp: 4. Two (more warps, more x reads per row) measured
 * slower on every 7B-shape product but F16 gate+up on an H200 (Q4_0
 * QKV 11.6 vs 11.4 us, down 22.7 vs 20.0 us: bench/results/README.md). */
template <int T, int B, int MODE> static int gemv_launch_tbm(const gemv_args *a, cudaStream_t st) {
    return gemv_launch_tbmn<T, B, MODE, 4>(a, st);
}

template <int T, int B> static int gemv_launch_tb(const gemv_args *a, cudaStream_t st) {
    if (a->mode == GEMV_SWIGLU) return gemv_launch_tbm<T, B, GEMV_SWIGLU>(a, st);
    if (a->mode == GEMV_QKV) return gemv_launch_tbm<T, B, GEMV_QKV>(a, st);
    return gemv_launch_tbm<T, B, GV_PLAIN>(a, st);
}

/* One vector's epilogue for a warp's NR finished sums (every lane holds
 * every sum; lane i writes output i): store, residual add (atomic when K
 * is split over blocks), SwiGLU/GeGLU (add: GELU), or rope + KV store. */
template <int MODE, int NR>
static __device__ __forceinline__ void
gv_store1(const float *acc, int lane, int64_t rbase, int64_t rows, float *y, int add, bool atomic,
          const qkv_out &qo, int64_t row0, const qkv_slot *sl = NULL) {
    if (MODE == GEMV_SWIGLU) {
#pragma unroll
        for (int r = 0; r < NR / 2; r++)
            if (lane == r && rbase + r < rows)
                y[rbase + r] = dev_act(acc[r], add) * acc[r + NR / 2];
    } else if (MODE == GEMV_QKV) {
#pragma unroll
        for (int p = 0; p < NR / 2; p++)
            if (lane == p && rbase + 2 * p + 1 < rows)
                qkv_epilogue(qo, sl, row0 + rbase + 2 * p, 0, acc[2 * p], acc[2 * p + 1]);
    } else {
#pragma unroll
        for (int r = 0; r < NR; r++)
            if (lane == r && rbase + r < rows) {
                if (atomic)
                    atomicAdd(&y[rbase + r], acc[r]);
                else if (add)
                    y[rbase + r] += acc[r];
                else
                    y[rbase + r] = acc[r];
            }
    }
}

#include "gemv1_impl.cuh"
#include "gemvp_impl.cuh"
#include "gemvr_impl.cuh"

/* One vector: the persistent kernel takes the types with a split dot (on
 * an H200 it streams 7B-shape products up to 1.4x and SmolLM2-shape ones up
 * to 1.8x faster than the others); of the others, the warp kernel wins
 * where x is short (K <= 2048, where a block staging x for only 16 rows
 * and idle lanes past K/32 dominate) and the block-staged one on 4096+
 * inputs (7B Q4_0 gate/up 51 us staged vs 61 us warp). */
template <int T> static int gemv_run_type(const gemv_args *a, cudaStream_t st) {
    if (a->nb > 1) { /* 2..8 vectors (the unused ones zero): rows, or staged for QKV */
        if (a->mode != GEMV_QKV && a->kernel != GEMV_KERNEL_STAGED) return gemvr_run<T>(a, st);
        return gemv_launch_tb<T, 8>(a, st);
    }
    const int c = a->kernel == GEMV_KERNEL_ROWS4 ? GEMV_KERNEL_AUTO : a->kernel; /* (2..8 only) */
    if (c == GEMV_KERNEL_PERSIST || c == GEMV_KERNEL_AUTO) {
        int rc = gemvp_entry<T>::run(a, st);
        if (rc <= 0) return rc;
    }
    if (c == GEMV_KERNEL_WARP || (c == GEMV_KERNEL_AUTO && a->w->cols <= 2048))
        return gemv1_run<T>(a, st);
    return gemv_launch_tb<T, 1>(a, st);
}

#endif
