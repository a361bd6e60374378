/* The several-vector decode GEMV (2..8 vectors) for plain products and
 * SwiGLU/GeGLU (included by gemv_impl.cuh; the rope + KV-store products
 * keep the block-staged k_gemv, faster there: 6144 x 4096 Q4_0, 8 vectors,
 * 47 vs 52 us on an H100).
 *
 * The block-staged kernel gives each lane its own sub-block, so every
 * 128-bit read of x from shared memory has 32 different addresses and one
 * feeds 4 FMAs: with 8 vectors that read, not the weights, bounds the step.
 * Here a warp owns 16 rows (SwiGLU: 8 gate rows and the same 8 of up) and
 * lane (q, j) = (lane / 4, lane % 4) decodes rows 2q and 2q + 1 (SwiGLU:
 * gate and up of row q) at sub-blocks j, j + 4, ... of each chunk: the four
 * lanes of a pair read four consecutive sub-blocks of a row (contiguous
 * bytes), a quarter warp reads x at four sub-blocks only (the 36-float
 * padding puts them in different banks) and every x read feeds 8 FMAs. The
 * four partial sums of a row meet through two shuffles; lane j writes
 * vectors j and j + 4. H100, 7B Q4_0 shapes, 8 vectors: wo 42 -> 21 us,
 * gate+up 229 -> 153 us, down 142 -> 77 us (bench/results/README.md).
 *
 * L (row streams per lane) = 2 is that kernel. L = 4 (32 rows a warp,
 * SwiGLU 2 gate rows and the same 2 of up a lane) feeds 16 FMAs from every
 * x read instead of 8, for 64 more registers of decoded weights (the
 * 32-element formats; K-quants keep 2), and gives the same sums: launch_gemv
 * runs it where its grid stays large (gemvr_run), GEMV_KERNEL_ROWS4 always. */
#ifndef M40_GEMVR_IMPL_CUH
#define M40_GEMVR_IMPL_CUH

template <int MODE, int L> struct gvr_rows { /* output rows a warp owns */
    static const int n = MODE == GEMV_SWIGLU ? 8 * L / 2 : 8 * L;
};

template <int T, int B, int MODE, int L>
__global__ void __launch_bounds__(GV_THREADS, 1)
    k_gemv_rows(gpu_matrix w, gpu_matrix w2, const float *x, int64_t ldx, int nb,
                const float *gamma, float eps, float *y, int64_t ldy, int add, int64_t kspan) {
    const int CH = gv_chunk<B>::elems, CHP = gv_padded(CH);
    extern __shared__ float xs[]; /* [B][CHP] */
    __shared__ float red[32];
    const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, q = lane >> 2, j = lane & 3;
    const int64_t K = w.cols, rows = w.rows;
    const int64_t kbeg = (int64_t)blockIdx.y * kspan;
    const int64_t kend = kbeg + kspan < K ? kbeg + kspan : K;
    const int64_t wbase =
        (int64_t)blockIdx.x * GV_WARPS * gvr_rows<MODE, L>::n + warp * gvr_rows<MODE, L>::n;
    /* the lane's L row streams: SwiGLU, gate rows wbase + (L/2) q + h (h <
     * L/2) and the same rows of up (h >= L/2); else rows wbase + L q + h */
    const int H = MODE == GEMV_SWIGLU ? L / 2 : L;
    const int64_t r0 = wbase + (int64_t)H * q;
    int64_t rr[L]; /* each stream's row, clamped (the stores check the real one) */
#pragma unroll
    for (int h = 0; h < L; h++) {
        const int64_t r = r0 + (h % H);
        rr[h] = r < rows ? r : rows - 1;
    }
    for (int r = 0; r < gvr_rows<MODE, L>::n; r++) { /* the warp's rows on their way to L2 */
        const int64_t row = wbase + r < rows ? wbase + r : rows - 1;
        gv_prefetch_row<T>(w, row, kbeg >> 5, kend >> 5, lane);
        if (MODE == GEMV_SWIGLU) gv_prefetch_row<T>(w2, row, kbeg >> 5, kend >> 5, lane);
    }

    float acc[L][B], ssq[B];
#pragma unroll
    for (int b = 0; b < B; b++) {
        ssq[b] = 0.0f;
#pragma unroll
        for (int h = 0; h < L; h++) acc[h][b] = 0.0f;
    }

    for (int64_t k0 = kbeg; k0 < kend; k0 += CH) {
        const int kc = (int)(kend - k0 < CH ? kend - k0 : CH);
        const int nsc = kc >> 5;
        const int64_t sb0 = k0 >> 5;
        __syncthreads(); /* previous chunk fully consumed */
        const int NPT =
            (CH / 4 + GV_THREADS - 1) / GV_THREADS < 4 ? (CH / 4 + GV_THREADS - 1) / GV_THREADS : 4;
#pragma unroll
        for (int b = 0; b < B; b++)
            ssq[b] += gv_stage<GV_THREADS, NPT>(xs + b * CHP, x + b * ldx + k0,
                                                gamma ? gamma + k0 : NULL, kc, b < nb, false);
        __syncthreads();
        for (int s = j; s < nsc; s += 4) {
            float wv[L][32];
#pragma unroll
            for (int h = 0; h < L; h++)
                wdec<T>::get(MODE == GEMV_SWIGLU && h >= H ? w2 : w, rr[h], sb0 + s, wv[h]);
#pragma unroll
            for (int b = 0; b < B; b++) {
                const float4 *xp = (const float4 *)(xs + b * CHP + s * 36);
                float a[L];
#pragma unroll
                for (int h = 0; h < L; h++) a[h] = 0.0f;
#pragma unroll
                for (int t = 0; t < 8; t++) {
                    const float4 xv = xp[t];
#pragma unroll
                    for (int h = 0; h < L; h++) {
                        a[h] = fmaf(wv[h][4 * t], xv.x, a[h]);
                        a[h] = fmaf(wv[h][4 * t + 1], xv.y, a[h]);
                        a[h] = fmaf(wv[h][4 * t + 2], xv.z, a[h]);
                        a[h] = fmaf(wv[h][4 * t + 3], xv.w, a[h]);
                    }
                }
#pragma unroll
                for (int h = 0; h < L; h++) acc[h][b] += a[h];
            }
        }
    }
    if (gamma) { /* RMSNorm: W (x * g * s) = s * W (x * g) */
#pragma unroll
        for (int b = 0; b < B; b++) {
            const float sc = 1.0f / sqrtf(dev_block_sum(ssq[b], red) / (float)K + eps);
#pragma unroll
            for (int h = 0; h < L; h++) acc[h][b] *= sc;
        }
    }
#pragma unroll
    for (int b = 0; b < B; b++) /* the four lanes of a group: its rows' whole sums */
#pragma unroll
        for (int h = 0; h < L; h++) {
            acc[h][b] += __shfl_xor_sync(M40_FULL_MASK, acc[h][b], 1);
            acc[h][b] += __shfl_xor_sync(M40_FULL_MASK, acc[h][b], 2);
        }
#pragma unroll
    for (int b = 0; b < B; b++) {
        if ((b & 3) != j || b >= nb) continue;
#pragma unroll
        for (int h = 0; h < H; h++) {
            const int64_t r = r0 + h;
            if (r >= rows) continue;
            if (MODE == GEMV_SWIGLU)
                y[b * ldy + r] = dev_act(acc[h][b], add) * acc[h + H][b];
            else if (gridDim.y > 1)
                atomicAdd(&y[b * ldy + r], acc[h][b]);
            else if (add)
                y[b * ldy + r] += acc[h][b];
            else
                y[b * ldy + r] = acc[h][b];
        }
    }
}

/* The grid of the L-stream kernel for a: row blocks times K slices. */
template <int MODE, int L>
static unsigned gemvr_grid(const gemv_args *a, unsigned *blocks, int64_t *kspan) {
    const int rpb = GV_WARPS * gvr_rows<MODE, L>::n;
    *blocks = (unsigned)((a->w->rows + rpb - 1) / rpb);
    return *blocks * gemv_split_k(a, *blocks, 512, kspan);
}

template <int T, int B, int MODE, int L>
static int gemvr_launch_tbm(const gemv_args *a, cudaStream_t st) {
    const int CH = gv_chunk<B>::elems;
    const size_t smem = (size_t)B * gv_padded(CH) * sizeof(float);
    unsigned blocks;
    int64_t kspan;
    const unsigned ksplit = gemvr_grid<MODE, L>(a, &blocks, &kspan) / blocks;
    const gpu_matrix w2 = a->w2 ? *a->w2 : *a->w;
    k_gemv_rows<T, B, MODE, L><<<dim3(blocks, ksplit), GV_THREADS, smem, st>>>(
        *a->w, w2, a->x, a->ldx, a->nb, a->gamma, a->eps, a->y, a->ldy, gemv_flag(a), kspan);
    CUDA_LAUNCHED("k_gemv_rows");
    return M40LLM_OK;
}

/* rows4's streams a lane: 4 for the 32-element formats; the K-quants'
 * heavier decodes would spill with 4 x 32 weights live, so they keep 2 */
template <int T> struct gvr_l4 {
    static const int L =
        T == QT_Q2_K || T == QT_Q3_K || T == QT_Q4_K || T == QT_Q5_K || T == QT_Q6_K ? 2 : 4;
};

/* Plain products (store, residual add) and SwiGLU/GeGLU (the GEMV_QKV
 * epilogue never comes here). 4 streams a lane where their grid still has
 * 160 blocks or more (more than an H100's 132 SMs): H100, 7B shapes, 8
 * vectors, gate+up 14336 x 4096 Q4_0 149 -> 118 us, F16 219 -> 123, down
 * 76 -> 70 / 103 -> 67 (split over K); 2 on wo 4096 x 4096 (21 vs 26 us:
 * 128 blocks of 4 streams against 256 of 2). */
template <int T> static int gemvr_run(const gemv_args *a, cudaStream_t st) {
    unsigned blocks;
    int64_t kspan;
    const bool four =
        a->kernel == GEMV_KERNEL_ROWS4 ||
        (a->kernel == GEMV_KERNEL_AUTO &&
         (a->mode == GEMV_SWIGLU ? gemvr_grid<GEMV_SWIGLU, 4>(a, &blocks, &kspan)
                                 : gemvr_grid<GV_PLAIN, 4>(a, &blocks, &kspan)) >= 160);
    if (four)
        return a->mode == GEMV_SWIGLU ? gemvr_launch_tbm<T, 8, GEMV_SWIGLU, gvr_l4<T>::L>(a, st)
                                      : gemvr_launch_tbm<T, 8, GV_PLAIN, gvr_l4<T>::L>(a, st);
    if (a->mode == GEMV_SWIGLU) return gemvr_launch_tbm<T, 8, GEMV_SWIGLU, 2>(a, st);
    return gemvr_launch_tbm<T, 8, GV_PLAIN, 2>(a, st);
}

#endif
