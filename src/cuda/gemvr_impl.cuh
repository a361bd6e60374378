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
 * gate+up 229 -> 153 us, down 142 -> 77 us (bench/results/README.md). */
#ifndef M40_GEMVR_IMPL_CUH
#define M40_GEMVR_IMPL_CUH

template <int MODE> struct gvr_rows { /* output rows a warp owns */
    static const int n = MODE == GEMV_SWIGLU ? 8 : 16;
};

template <int T, int B, int MODE>
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
        (int64_t)blockIdx.x * GV_WARPS * gvr_rows<MODE>::n + warp * gvr_rows<MODE>::n;
    /* the lane's two row streams: gate and up of row wbase + q, or rows
     * wbase + 2q and + 1 */
    const int64_t ra = MODE == GEMV_SWIGLU ? wbase + q : wbase + 2 * q;
    const int64_t rb = MODE == GEMV_SWIGLU ? ra : ra + 1;
    const gpu_matrix &mb = MODE == GEMV_SWIGLU ? w2 : w;
    const int64_t rra = ra < rows ? ra : rows - 1, rrb = rb < rows ? rb : rows - 1;
    for (int r = 0; r < gvr_rows<MODE>::n; r++) { /* the warp's rows on their way to L2 */
        const int64_t row = wbase + r < rows ? wbase + r : rows - 1;
        gv_prefetch_row<T>(w, row, kbeg >> 5, kend >> 5, lane);
        if (MODE == GEMV_SWIGLU) gv_prefetch_row<T>(w2, row, kbeg >> 5, kend >> 5, lane);
    }

    float acc[2][B], ssq[B];
#pragma unroll
    for (int b = 0; b < B; b++) acc[0][b] = acc[1][b] = ssq[b] = 0.0f;

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
            float wa[32], wb[32];
            wdec<T>::get(w, rra, sb0 + s, wa);
            wdec<T>::get(mb, rrb, sb0 + s, wb);
#pragma unroll
            for (int b = 0; b < B; b++) {
                const float4 *xp = (const float4 *)(xs + b * CHP + s * 36);
                float a0 = 0.0f, a1 = 0.0f;
#pragma unroll
                for (int t = 0; t < 8; t++) {
                    const float4 xv = xp[t];
                    a0 = fmaf(wa[4 * t], xv.x, a0);
                    a0 = fmaf(wa[4 * t + 1], xv.y, a0);
                    a0 = fmaf(wa[4 * t + 2], xv.z, a0);
                    a0 = fmaf(wa[4 * t + 3], xv.w, a0);
                    a1 = fmaf(wb[4 * t], xv.x, a1);
                    a1 = fmaf(wb[4 * t + 1], xv.y, a1);
                    a1 = fmaf(wb[4 * t + 2], xv.z, a1);
                    a1 = fmaf(wb[4 * t + 3], xv.w, a1);
                }
                acc[0][b] += a0;
                acc[1][b] += a1;
            }
        }
    }
    if (gamma) { /* RMSNorm: W (x * g * s) = s * W (x * g) */
#pragma unroll
        for (int b = 0; b < B; b++) {
            const float sc = 1.0f / sqrtf(dev_block_sum(ssq[b], red) / (float)K + eps);
            acc[0][b] *= sc;
            acc[1][b] *= sc;
        }
    }
#pragma unroll
    for (int b = 0; b < B; b++) /* the four lanes of a pair: its rows' whole sums */
#pragma unroll
        for (int h = 0; h < 2; h++) {
            acc[h][b] += __shfl_xor_sync(M40_FULL_MASK, acc[h][b], 1);
            acc[h][b] += __shfl_xor_sync(M40_FULL_MASK, acc[h][b], 2);
        }
#pragma unroll
    for (int b = 0; b < B; b++) {
        if ((b & 3) != j || b >= nb) continue;
        if (MODE == GEMV_SWIGLU) {
            if (ra < rows) y[b * ldy + ra] = dev_act(acc[0][b], add) * acc[1][b];
        } else {
#pragma unroll
            for (int h = 0; h < 2; h++) {
                const int64_t r = h ? rb : ra;
                if (r >= rows) continue;
                if (gridDim.y > 1)
                    atomicAdd(&y[b * ldy + r], acc[h][b]);
                else if (add)
                    y[b * ldy + r] += acc[h][b];
                else
                    y[b * ldy + r] = acc[h][b];
            }
        }
    }
}

template <int T, int B, int MODE> static int gemvr_launch_tbm(const gemv_args *a, cudaStream_t st) {
    const int CH = gv_chunk<B>::elems;
    const size_t smem = (size_t)B * gv_padded(CH) * sizeof(float);
    const int rpb = GV_WARPS * gvr_rows<MODE>::n;
    const unsigned blocks = (unsigned)((a->w->rows + rpb - 1) / rpb);
    int64_t kspan;
    const unsigned ksplit = gemv_split_k(a, blocks, 512, &kspan);
    const gpu_matrix w2 = a->w2 ? *a->w2 : *a->w;
    k_gemv_rows<T, B, MODE><<<dim3(blocks, ksplit), GV_THREADS, smem, st>>>(
        *a->w, w2, a->x, a->ldx, a->nb, a->gamma, a->eps, a->y, a->ldy, gemv_flag(a), kspan);
    CUDA_LAUNCHED("k_gemv_rows");
    return M40LLM_OK;
}

/* plain products (store, residual add) and SwiGLU/GeGLU; not QKV */
template <int T> static int gemvr_run(const gemv_args *a, cudaStream_t st) {
    if (a->mode == GEMV_SWIGLU) return gemvr_launch_tbm<T, 8, GEMV_SWIGLU>(a, st);
    return gemvr_launch_tbm<T, 8, GV_PLAIN>(a, st);
}

#endif
