/* The mixture-of-experts product kernel (moe.cu has the routing around it),
 * instantiated per weight type beside the decode GEMV in gemv_f.cu /
 * gemv_q.cu / gemv_k.cu. Included after gemv_impl.cuh, whose x staging it
 * shares.
 *
 * A work item is one expert and up to B (entry, slot) pairs routed to it:
 * the block stages those pairs' input rows (gathered), decodes each weight
 * row of the expert once and uses it for all of them, and writes each
 * pair's output row (scattered). Every pair's sums are formed in the same
 * order whatever B and whoever shares its item (each lane's sub-blocks in
 * increasing order, then the warp sum), so an entry's result does not
 * depend on the batch it is in. */
#ifndef M40_MOE_GEMV_IMPL_CUH
#define M40_MOE_GEMV_IMPL_CUH

#define MOE_NR 4 /* row streams per warp (SwiGLU: 2 gate rows, then the same 2 of up) */

template <int T, int B, int MODE>
__global__ void __launch_bounds__(GV_THREADS, 1)
    k_moe_gemv(gpu_matrix w, gpu_matrix w2, int64_t rows, const float *x, int64_t ldx, int xdiv,
               const moe_item *items, const int32_t *order, const int32_t *n_items, int n_pairs,
               float *y, int64_t ldy, int act) {
    const int NR = MOE_NR, CH = gv_chunk<B>::elems, CHP = gv_padded(CH);
    extern __shared__ float xs[]; /* [B][CHP] the item's input rows */
    __shared__ int pr[B];         /* the item's pair ids (registers spill on K-quants) */
    int e = 0, nb;                /* expert, pairs in the item */
    if (items) {
        if ((int)blockIdx.y >= *n_items) return;
        const moe_item it = items[blockIdx.y];
        e = it.expert;
        nb = it.n;
        if (threadIdx.x < B)
            pr[threadIdx.x] = (int)threadIdx.x < nb ? order[it.start + threadIdx.x] : 0;
    } else { /* one matrix, pairs in order */
        const int p0 = (int)blockIdx.y * B;
        nb = n_pairs - p0 < B ? n_pairs - p0 : B;
        if (threadIdx.x < B) pr[threadIdx.x] = (int)threadIdx.x < nb ? p0 + (int)threadIdx.x : 0;
    }
    const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
    const int64_t K = w.cols;
    const int rows_per_warp = MODE == GEMV_SWIGLU ? NR / 2 : NR;
    const int64_t rbase = (int64_t)blockIdx.x * GV_WARPS * rows_per_warp + warp * rows_per_warp;
    const int64_t e0 = (int64_t)e * rows; /* the expert's first row in the stacked matrix */
#pragma unroll
    for (int r = 0; r < NR; r++) { /* the warp's rows on their way to L2, all at once */
        const int64_t row = gv_row<MODE, NR>(rbase, r);
        gv_prefetch_row<T>(gv_mat<MODE, NR>(w, w2, r), e0 + (row < rows ? row : rows - 1), 0,
                           K >> 5, lane);
    }

    float acc[NR][B];
#pragma unroll
    for (int r = 0; r < NR; r++)
#pragma unroll
        for (int b = 0; b < B; b++) acc[r][b] = 0.0f;

    for (int64_t k0 = 0; k0 < K; k0 += CH) {
        const int kc = (int)(K - k0 < CH ? K - k0 : CH);
        const int nsc = kc >> 5;
        const int64_t sb0 = k0 >> 5;
        __syncthreads(); /* previous chunk fully consumed */
        const int NPT =
            (CH / 4 + GV_THREADS - 1) / GV_THREADS < 4 ? (CH / 4 + GV_THREADS - 1) / GV_THREADS : 4;
#pragma unroll
        for (int b = 0; b < B; b++)
            gv_stage<GV_THREADS, NPT>(xs + b * CHP, x + (int64_t)(pr[b] / xdiv) * ldx + k0, NULL,
                                      kc, b < nb, false);
        __syncthreads();
        for (int s = lane; s < nsc; s += 32) {
#pragma unroll
            for (int r = 0; r < NR; r++) {
                const int64_t row = gv_row<MODE, NR>(rbase, r);
                if (row >= rows) continue; /* (the branch also keeps the rows' decodes apart) */
                float wv[32];
                wdec<T>::get(gv_mat<MODE, NR>(w, w2, r), e0 + row, sb0 + s, wv);
#pragma unroll
                for (int b = 0; b < B; b++) acc[r][b] += gv_dot_staged(wv, xs + b * CHP + s * 36);
            }
        }
    }
#pragma unroll
    for (int r = 0; r < NR; r++)
#pragma unroll
        for (int b = 0; b < B; b++) acc[r][b] = dev_warp_sum(acc[r][b]);

    /* every lane holds every sum; lane i writes output i */
    if (MODE == GEMV_SWIGLU) {
#pragma unroll
        for (int r = 0; r < NR / 2; r++)
#pragma unroll
            for (int b = 0; b < B; b++)
                if (lane == r * B + b && b < nb && rbase + r < rows)
                    y[(int64_t)pr[b] * ldy + rbase + r] =
                        dev_act(acc[r][b], act) * acc[r + NR / 2][b];
    } else {
#pragma unroll
        for (int r = 0; r < NR; r++)
#pragma unroll
            for (int b = 0; b < B; b++)
                if (lane == (r * B + b) % 32 && b < nb && rbase + r < rows)
                    y[(int64_t)pr[b] * ldy + rbase + r] = acc[r][b];
    }
}

template <int T, int B, int MODE>
static int moe_launch_tbm(const moe_gemv_args *a, cudaStream_t st) {
    const int CH = gv_chunk<B>::elems;
    const size_t smem = (size_t)B * gv_padded(CH) * sizeof(float);
    const int rpb = GV_WARPS * (MODE == GEMV_SWIGLU ? MOE_NR / 2 : MOE_NR);
    const unsigned items = a->items ? (unsigned)a->max_items : (unsigned)((a->n_pairs + B - 1) / B);
    dim3 grid((unsigned)((a->rows + rpb - 1) / rpb), items);
    gpu_matrix w2 = a->w2 ? *a->w2 : *a->w;
    k_moe_gemv<T, B, MODE><<<grid, GV_THREADS, smem, st>>>(*a->w, w2, a->rows, a->x, a->ldx,
                                                           a->xdiv, a->items, a->order, a->n_items,
                                                           a->n_pairs, a->y, a->ldy, a->act);
    CUDA_LAUNCHED("k_moe_gemv");
    return M40LLM_OK;
}

/* B = 1 where every item holds one pair (a single entry's experts); else
 * 8. Either gives each pair the same sums. */
template <int T> static int moe_gemv_run_type(const moe_gemv_args *a, cudaStream_t st) {
    if (a->mode == GEMV_SWIGLU)
        return a->b == 1 ? moe_launch_tbm<T, 1, GEMV_SWIGLU>(a, st)
                         : moe_launch_tbm<T, 8, GEMV_SWIGLU>(a, st);
    return a->b == 1 ? moe_launch_tbm<T, 1, GV_PLAIN>(a, st)
                     : moe_launch_tbm<T, 8, GV_PLAIN>(a, st);
}

#endif
