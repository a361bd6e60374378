/* Mixture-of-experts steps on the GPU around the expert product kernel
 * (moe_gemv_impl.cuh): top-k routing, grouping the (entry, slot) pairs by
 * expert, and the weighted sum of each entry's expert outputs. All of it
 * on the device, so that a decode step needs no host round trip and stays
 * one CUDA graph.
 *
 * Batched steps group the pairs by expert into items of up to 8 and run one
 * grid over all items (a grouped kernel, not a GEMM per expert): the number
 * of pairs per expert is only known on the device, and a grid sized for the
 * most items there can be, whose spare blocks exit at once, needs neither a
 * host synchronisation nor a launch per expert. */
#include <math.h>

#include "cuda_internal.h"
#include "dev_common.cuh"
#include "quant.h"

#define MOE_MAX_EXPERTS 1024
#define MOE_MAX_K       64

/* a ranks before b: larger logit, NaN after every number, then lower id */
static __device__ __forceinline__ bool moe_before(float a, int ia, float b, int ib) {
    const bool an = isnan(a), bn = isnan(b);
    if (an != bn) return bn;
    if (!an && a != b) return a > b;
    return ia < ib;
}

static __device__ __forceinline__ double moe_exp(float l, double mx) {
    if (isnan(l)) return 0.0;
    return (double)l == mx ? 1.0 : exp((double)l - mx);
}

/* one warp per entry */
__global__ void k_moe_route(const float *logits, int64_t ld, int n_expert, int k, int norm,
                            int32_t *ids, float *wts) {
    extern __shared__ float lg[]; /* [n_expert] logits, then [n_expert] taken flags */
    __shared__ int ch[MOE_MAX_K]; /* the chosen ids */
    unsigned char *taken = (unsigned char *)(lg + n_expert);
    const int lane = threadIdx.x, t = blockIdx.x;
    const float *l = logits + (int64_t)t * ld;
    for (int e = lane; e < n_expert; e += 32) {
        lg[e] = l[e];
        taken[e] = 0;
    }
    __syncwarp();
    int32_t *id = ids + (int64_t)t * k;
    for (int r = 0; r < k; r++) {
        float bv = 0.0f;
        int bi = -1;
        for (int e = lane; e < n_expert; e += 32)
            if (!taken[e] && (bi < 0 || moe_before(lg[e], e, bv, bi))) bv = lg[e], bi = e;
        for (int o = 16; o > 0; o >>= 1) {
            const float ov = __shfl_xor_sync(M40_FULL_MASK, bv, o);
            const int oi = __shfl_xor_sync(M40_FULL_MASK, bi, o);
            if (oi >= 0 && (bi < 0 || moe_before(ov, oi, bv, bi))) bv = ov, bi = oi;
        }
        if (lane == 0) {
            id[r] = ch[r] = bi;
            taken[bi] = 1;
        }
        __syncwarp();
    }
    /* softmax in double: over all logits, or over the k chosen (norm); a
     * NaN logit weighs 0, one equal to the largest exp(0) (as the CPU's) */
    const double mx = (double)lg[ch[0]];
    double all = 0.0;
    for (int e = lane; e < n_expert; e += 32) all += moe_exp(lg[e], mx);
    for (int o = 16; o > 0; o >>= 1) all += __shfl_xor_sync(M40_FULL_MASK, all, o);
    if (lane == 0) {
        double sel = 0.0;
        for (int r = 0; r < k; r++) sel += moe_exp(lg[ch[r]], mx);
        const double den = norm ? sel : all;
        for (int r = 0; r < k; r++)
            wts[(int64_t)t * k + r] = den > 0.0 ? (float)(moe_exp(lg[ch[r]], mx) / den) : 0.0f;
    }
}

int launch_moe_route(const float *logits, int64_t ld, int n, int n_expert, int k, int norm,
                     int32_t *ids, float *wts, cudaStream_t st) {
    if (!logits || !ids || !wts || n < 1 || n_expert < 1 || n_expert > MOE_MAX_EXPERTS || k < 1 ||
        k > n_expert || k > MOE_MAX_K || ld < n_expert)
        return err_set(M40LLM_ERR_INVALID_ARG, "moe route: %d entries, top %d of %d experts", n, k,
                       n_expert);
    const size_t smem = (size_t)n_expert * (sizeof(float) + 1);
    k_moe_route<<<n, 32, smem, st>>>(logits, ld, n_expert, k, norm, ids, wts);
    CUDA_LAUNCHED("k_moe_route");
    return M40LLM_OK;
}

int moe_max_items(int n_pairs, int n_expert, int b) {
    if (b <= 1) return n_pairs;
    const int bound = (n_pairs + b - 1) / b + (n_expert < n_pairs ? n_expert : n_pairs);
    return bound < n_pairs ? bound : n_pairs;
}

/* One block: each thread counts, then lists, the pairs of its experts
 * (pairs in increasing order); thread 0 lays the experts out one after
 * the other. */
__global__ void k_moe_group(const int32_t *ids, int n_pairs, int n_expert, int b, int32_t *order,
                            moe_item *items, int32_t *n_items) {
    extern __shared__ int32_t sh[]; /* [n_expert] count, pair start, item start */
    int32_t *cnt = sh, *pstart = sh + n_expert, *istart = sh + 2 * n_expert;
    for (int e = threadIdx.x; e < n_expert; e += blockDim.x) {
        int c = 0;
        for (int p = 0; p < n_pairs; p++) c += ids[p] == e;
        cnt[e] = c;
    }
    __syncthreads();
    if (threadIdx.x == 0) {
        int pa = 0, ia = 0;
        for (int e = 0; e < n_expert; e++) {
            pstart[e] = pa;
            istart[e] = ia;
            pa += cnt[e];
            ia += (cnt[e] + b - 1) / b;
        }
        *n_items = ia;
    }
    __syncthreads();
    for (int e = threadIdx.x; e < n_expert; e += blockDim.x) {
        const int c = cnt[e], p0 = pstart[e];
        if (c == 0) continue;
        int at = p0;
        for (int p = 0; p < n_pairs && at < p0 + c; p++)
            if (ids[p] == e) order[at++] = p;
        for (int j = 0; j * b < c; j++) {
            moe_item it;
            it.expert = e;
            it.start = p0 + j * b;
            it.n = c - j * b < b ? c - j * b : b;
            items[istart[e] + j] = it;
        }
    }
}

int launch_moe_group(const int32_t *ids, int n_pairs, int n_expert, int b, int32_t *order,
                     moe_item *items, int32_t *n_items, cudaStream_t st) {
    if (!ids || !order || !items || !n_items || n_pairs < 1 || n_expert < 1 ||
        n_expert > MOE_MAX_EXPERTS || b < 1)
        return err_set(M40LLM_ERR_INVALID_ARG, "moe group: %d pairs, %d experts, items of %d",
                       n_pairs, n_expert, b);
    k_moe_group<<<1, 256, (size_t)3 * n_expert * sizeof(int32_t), st>>>(ids, n_pairs, n_expert, b,
                                                                        order, items, n_items);
    CUDA_LAUNCHED("k_moe_group");
    return M40LLM_OK;
}

/* one block per entry: its slots in increasing expert id, then a column
 * per thread */
__global__ void k_moe_combine(const float *d, int64_t ldd, const int32_t *ids, const float *wts,
                              int k, int dim, float *out, int64_t ldo, int add) {
    __shared__ int sl[MOE_MAX_K];
    const int t = blockIdx.x;
    if (threadIdx.x == 0) { /* insertion sort of the k slots by expert id */
        const int32_t *id = ids + (int64_t)t * k;
        for (int j = 0; j < k; j++) {
            int i = j;
            while (i > 0 && id[sl[i - 1]] > id[j]) sl[i] = sl[i - 1], i--;
            sl[i] = j;
        }
    }
    __syncthreads();
    for (int c = threadIdx.x; c < dim; c += blockDim.x) {
        float s = 0.0f;
        for (int j = 0; j < k; j++) {
            const int64_t p = (int64_t)t * k + sl[j];
            s = fmaf(wts[p], d[p * ldd + c], s);
        }
        float *o = out + (int64_t)t * ldo + c;
        *o = add ? *o + s : s;
    }
}

int launch_moe_combine(const float *d, int64_t ldd, const int32_t *ids, const float *wts, int n,
                       int k, int dim, float *out, int64_t ldo, int add, cudaStream_t st) {
    if (!d || !ids || !wts || !out || n < 1 || k < 1 || k > MOE_MAX_K || dim < 1 || ldd < dim ||
        ldo < dim)
        return err_set(M40LLM_ERR_INVALID_ARG, "moe combine: %d entries, %d slots, width %d", n, k,
                       dim);
    k_moe_combine<<<n, 256, 0, st>>>(d, ldd, ids, wts, k, dim, out, ldo, add);
    CUDA_LAUNCHED("k_moe_combine");
    return M40LLM_OK;
}

extern "C" int moe_gemv_run_float(const moe_gemv_args *a, cudaStream_t st);
extern "C" int moe_gemv_run_q32(const moe_gemv_args *a, cudaStream_t st);
extern "C" int moe_gemv_run_kq(const moe_gemv_args *a, cudaStream_t st);

int launch_moe_gemv(const moe_gemv_args *a, cudaStream_t st) {
    if (!a || !a->w || !a->x || !a->y || a->rows < 1 || a->w->rows % a->rows || a->xdiv < 1 ||
        (a->b != 1 && a->b != 8) || (a->mode != GEMV_STORE && a->mode != GEMV_SWIGLU) ||
        a->act < 0 || a->act > 1)
        return err_set(M40LLM_ERR_INVALID_ARG, "moe gemv: bad arguments");
    if (a->ldx % 4 || (uintptr_t)a->x % 16 || a->ldx < a->w->cols)
        return err_set(M40LLM_ERR_INVALID_ARG,
                       "moe gemv: x rows must be 16-byte aligned (ldx %lld)", (long long)a->ldx);
    if (a->mode == GEMV_SWIGLU && (!a->w2 || a->w2->type != a->w->type ||
                                   a->w2->rows != a->w->rows || a->w2->cols != a->w->cols))
        return err_set(M40LLM_ERR_INVALID_ARG,
                       "moe gemv: SwiGLU needs gate and up of one type and shape");
    const long grid_y = a->items ? a->max_items : (a->n_pairs + a->b - 1) / a->b;
    if (a->items ? (!a->order || !a->n_items) : a->n_pairs < 1)
        return err_set(M40LLM_ERR_INVALID_ARG, "moe gemv: no pairs");
    if (grid_y < 1 || grid_y > 65535)
        return err_set(M40LLM_ERR_UNSUPPORTED, "moe gemv: %ld work items (1..65535)", grid_y);
    switch (a->w->type) {
    case QT_F32:
    case QT_F16:
    case QT_BF16:
        return moe_gemv_run_float(a, st);
    case QT_Q4_0:
    case QT_Q4_1:
    case QT_Q5_0:
    case QT_Q5_1:
    case QT_Q8_0:
        return moe_gemv_run_q32(a, st);
    case QT_Q2_K:
    case QT_Q3_K:
    case QT_Q4_K:
    case QT_Q5_K:
    case QT_Q6_K:
        return moe_gemv_run_kq(a, st);
    default:
        return err_set(M40LLM_ERR_UNSUPPORTED, "moe gemv: weight type %d has no GPU kernel",
                       a->w->type);
    }
}
