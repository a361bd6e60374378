/* The single-vector decode GEMV (included by gemv_impl.cuh).
 *
 * Every warp is independent: it owns NR row streams (NR rows of W, NR/2
 * rows of Wg + the same rows of Wu for SwiGLU, NR/2 adjacent row pairs for
 * the rope epilogue) and its lanes walk the 32-element sub-blocks of K, so
 * the warp alone sees all of x: the RMSNorm sum of squares is a warp sum,
 * x is staged per warp (no block barrier), and a warp that finishes early
 * leaves room for the next block at once. Each lane has NR weight loads
 * outstanding per sub-block, and the warp's whole rows were asked into L2
 * before the first one. */
#ifndef M40_GEMV1_IMPL_CUH
#define M40_GEMV1_IMPL_CUH

#define G1_WARPS   4
#define G1_THREADS (G1_WARPS * 32)

template <int T, int MODE, int NR>
__global__ void __launch_bounds__(G1_THREADS, 1)
    k_gemv1(gpu_matrix w, gpu_matrix w2, const float *x, const float *gamma, float eps, float *y,
            int add, qkv_out qo, int64_t row0, int64_t kspan) {
    const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
    const int RPW = MODE == GEMV_SWIGLU ? NR / 2 : NR; /* output rows per warp */
    const int64_t rbase = ((int64_t)blockIdx.x * G1_WARPS + warp) * RPW;
    if (rbase >= w.rows) return; /* no barrier below: idle warps may leave */
    const int64_t K = w.cols;
    const int64_t kbeg = (int64_t)blockIdx.y * kspan;
    const int64_t kend = kbeg + kspan < K ? kbeg + kspan : K;
    const int64_t s0 = kbeg >> 5, s1 = kend >> 5;

    /* the warp's row streams (rows past the end read the last row, unwritten);
     * their bytes are asked for up front: the loop's own loads then mostly
     * hit L2, and the DRAM reads of all streams overlap */
    wrow rp[NR];
#pragma unroll
    for (int r = 0; r < NR; r++) {
        int64_t row = gv_row_in<MODE, NR>(w, rbase, r);
        const gpu_matrix &m = gv_mat<MODE, NR>(w, w2, r);
        rp[r] = wrow_at<T>(m, row);
        gv_prefetch_row<T>(m, row, s0, s1, lane);
    }

    float acc[NR], ssq = 0.0f;
#pragma unroll
    for (int r = 0; r < NR; r++) acc[r] = 0.0f;

    /* one pass = 32 sub-blocks, one per lane: the warp stages their 1024
     * x values (times the gain) with coalesced 16-byte loads into its own
     * shared slice, padded 4 floats per sub-block so the lanes' reads of
     * their own 32 values are conflict-free; only warp syncs */
    __shared__ float xs_all[G1_WARPS][32 * 36];
    float *xs = xs_all[warp];
    for (int64_t p = s0; p < s1; p += 32) {
        const int np = (int)(s1 - p < 32 ? s1 - p : 32); /* sub-blocks in this pass */
        const float4 *xp = (const float4 *)(x + p * 32);
        const float4 *gp = (const float4 *)(gamma + p * 32);
        /* this pass's weight bytes first: they travel while x is staged */
        const int64_t sb = p + lane;
        wraw<T> wr[NR];
        if (lane < np) {
#pragma unroll
            for (int r = 0; r < NR; r++) wr[r].load(rp[r], sb);
        }
        __syncwarp(); /* the previous pass's reads are done */
#pragma unroll
        for (int i = 0; i < 8; i++) {
            int f = lane + 32 * i; /* float4 index in the pass */
            if ((f >> 3) < np) {
                float4 v = __ldg(xp + f);
                if (gamma) {
                    float4 g = __ldg(gp + f);
                    ssq = fmaf(v.x, v.x, fmaf(v.y, v.y, fmaf(v.z, v.z, fmaf(v.w, v.w, ssq))));
                    v.x *= g.x, v.y *= g.y, v.z *= g.z, v.w *= g.w;
                }
                *(float4 *)(xs + (f >> 3) * 36 + (f & 7) * 4) = v;
            }
        }
        __syncwarp();
        if (lane < np) {
            float xr[32];
#pragma unroll
            for (int q = 0; q < 8; q++) {
                float4 v = *(const float4 *)(xs + lane * 36 + 4 * q);
                xr[4 * q] = v.x, xr[4 * q + 1] = v.y, xr[4 * q + 2] = v.z, xr[4 * q + 3] = v.w;
            }
            float sx = 0.0f;
            if (wraw<T>::uses_sx) {
#pragma unroll
                for (int l = 0; l < 32; l++) sx += xr[l];
            }
#pragma unroll
            for (int r = 0; r < NR; r++) {
                acc[r] += wr[r].dot(gv_mat<MODE, NR>(w, w2, r), gv_row_in<MODE, NR>(w, rbase, r),
                                    sb, xr, sx);
            }
        }
    }
    if (gamma) { /* RMSNorm: W (x * g * s) = s * W (x * g); the warp saw all of x */
        float sc = 1.0f / sqrtf(dev_warp_sum(ssq) / (float)K + eps);
#pragma unroll
        for (int r = 0; r < NR; r++) acc[r] *= sc;
    }
#pragma unroll
    for (int r = 0; r < NR; r++) acc[r] = dev_warp_sum(acc[r]);

    gv_store1<MODE, NR>(acc, lane, rbase, w.rows, y, add, gridDim.y > 1, qo, row0);
}

template <int T, int MODE, int NR> static int gemv1_launch(const gemv_args *a, cudaStream_t st) {
    const int RPW = MODE == GEMV_SWIGLU ? NR / 2 : NR;
    const int64_t rpb = (int64_t)G1_WARPS * RPW;
    unsigned blocks = (unsigned)((a->w->rows + rpb - 1) / rpb);
    int64_t kspan;
    unsigned ksplit = gemv_split_k(a, blocks, 1024, &kspan);
    dim3 grid(blocks, ksplit);
    qkv_out qo;
    memset(&qo, 0, sizeof qo);
    if (a->qkv) qo = *a->qkv;
    gpu_matrix w2 = a->w2 ? *a->w2 : *a->w;
    k_gemv1<T, MODE, NR><<<grid, G1_THREADS, 0, st>>>(*a->w, w2, a->x, a->gamma, a->eps, a->y,
                                                      gemv_flag(a), qo, a->row0, kspan);
    CUDA_LAUNCHED("k_gemv1");
    return M40LLM_OK;
}

/* Streams per warp: as many as keep ~16 warps per SM busy. More streams
 * per warp stage x fewer times (x and the gain cost 8 bytes per element per
 * warp from L1, a row of Q4_0 0.56). */
template <int T, int MODE> static int gemv1_launch_m(const gemv_args *a, cudaStream_t st) {
    int64_t streams = a->w->rows * (MODE == GEMV_SWIGLU ? 2 : 1);
    /* 8 streams only for the compact quantized dots: float rows (16+
     * registers per stream in flight) and the decoded types need more */
    const int NR8 = wraw<T>::uses_sx ? 8 : 4; /* (the 8-stream kernel only exists for those) */
    if (NR8 == 8 && streams / 8 >= 2048) return gemv1_launch<T, MODE, NR8>(a, st);
    if (streams / 4 >= 1024) return gemv1_launch<T, MODE, 4>(a, st);
    return gemv1_launch<T, MODE, 2>(a, st);
}

template <int T> static int gemv1_run(const gemv_args *a, cudaStream_t st) {
    if (a->mode == GEMV_SWIGLU) return gemv1_launch_m<T, GEMV_SWIGLU>(a, st);
    if (a->mode == GEMV_QKV) return gemv1_launch_m<T, GEMV_QKV>(a, st);
    return gemv1_launch_m<T, GV_PLAIN>(a, st);
}

#endif
