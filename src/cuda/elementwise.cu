/* Small per-row kernels: RMSNorm, SwiGLU/GeGLU, f16 conversion, row
 * gather, argmax, iota. (The block's other steps: block_ops.cu.) */
#include "cuda_internal.h"
#include "dev_common.cuh"

/* ---- RMSNorm: one block per row ---- */
__global__ void k_rmsnorm(const float *x, const uint16_t *x16, int64_t ldx, const float *gamma,
                          float eps, int dim, float *o32, uint16_t *o16, int64_t ldo) {
    __shared__ float red[32];
    int64_t row = blockIdx.x;
    float ss = 0.0f;
    for (int i = threadIdx.x; i < dim; i += blockDim.x) {
        float v = x16 ? dev_f16(x16[row * ldx + i]) : x[row * ldx + i];
        ss += v * v;
    }
    ss = dev_block_sum(ss, red);
    float sc = 1.0f / sqrtf(ss / (float)dim + eps);
    for (int i = threadIdx.x; i < dim; i += blockDim.x) {
        float v = x16 ? dev_f16(x16[row * ldx + i]) : x[row * ldx + i];
        float r = v * sc * gamma[i];
        if (o32) o32[row * ldo + i] = r;
        if (o16) o16[row * ldo + i] = dev_to_f16(r);
    }
}

extern "C" int launch_rmsnorm(const float *x, const uint16_t *x16, int64_t ldx, const float *gamma,
                              float eps, int n, int dim, float *out32, uint16_t *out16, int64_t ldo,
                              cudaStream_t st) {
    if (n <= 0) return M40LLM_OK;
    if (dim <= 0 || (!x && !x16) || !gamma || (!out32 && !out16))
        return err_set(M40LLM_ERR_INVALID_ARG, "rmsnorm: bad arguments (dim %d)", dim);
    k_rmsnorm<<<n, 256, 0, st>>>(x, x16, ldx, gamma, eps, dim, out32, out16, ldo);
    CUDA_LAUNCHED("k_rmsnorm");
    return M40LLM_OK;
}

/* ---- SwiGLU / GeGLU ---- */
__global__ void k_swiglu(const float *g, const float *u, int64_t ldi, int dim, int act, float *y32,
                         uint16_t *y16, int64_t ldo) {
    int64_t row = blockIdx.y;
    for (int i = blockIdx.x * blockDim.x + threadIdx.x; i < dim; i += gridDim.x * blockDim.x) {
        float v = dev_act(g[row * ldi + i], act) * u[row * ldi + i];
        if (y32)
            y32[row * ldo + i] = v;
        else
            y16[row * ldo + i] = dev_to_f16(v);
    }
}

extern "C" int launch_swiglu(const float *g, const float *u, int64_t ldi, int n, int dim, int act,
                             float *y32, uint16_t *y16, int64_t ldo, cudaStream_t st) {
    if (n <= 0) return M40LLM_OK;
    if (n > 65535 || (!y32 && !y16) || (act != 0 && act != 1))
        return err_set(M40LLM_ERR_INVALID_ARG, "swiglu: bad arguments");
    dim3 grid((unsigned)((dim + 255) / 256), (unsigned)n);
    k_swiglu<<<grid, 256, 0, st>>>(g, u, ldi, dim, act, y32, y16, ldo);
    CUDA_LAUNCHED("k_swiglu");
    return M40LLM_OK;
}

/* ---- f32 -> f16 ---- */
__global__ void k_to_f16(const float *x, int64_t ldx, int dim, uint16_t *y, int64_t ldy) {
    int64_t row = blockIdx.y;
    for (int i = blockIdx.x * blockDim.x + threadIdx.x; i < dim; i += gridDim.x * blockDim.x)
        y[row * ldy + i] = dev_to_f16(x[row * ldx + i]);
}

extern "C" int launch_to_f16(const float *x, int64_t ldx, int n, int dim, uint16_t *y, int64_t ldy,
                             cudaStream_t st) {
    if (n <= 0) return M40LLM_OK;
    if (n > 65535) return err_set(M40LLM_ERR_INVALID_ARG, "to_f16: %d rows", n);
    dim3 grid((unsigned)((dim + 255) / 256), (unsigned)n);
    k_to_f16<<<grid, 256, 0, st>>>(x, ldx, dim, y, ldy);
    CUDA_LAUNCHED("k_to_f16");
    return M40LLM_OK;
}

/* ---- gather rows ---- */
__global__ void k_gather(const float *src, int64_t lds, const int32_t *idx, int dim, float *dst,
                         int64_t ldd) {
    int64_t row = blockIdx.y, s = idx[row];
    for (int i = blockIdx.x * blockDim.x + threadIdx.x; i < dim; i += gridDim.x * blockDim.x)
        dst[row * ldd + i] = src[s * lds + i];
}

extern "C" int launch_gather_rows(const float *src, int64_t lds, const int32_t *idx, int n, int dim,
                                  float *dst, int64_t ldd, cudaStream_t st) {
    if (n <= 0) return M40LLM_OK;
    if (n > 65535) return err_set(M40LLM_ERR_INVALID_ARG, "gather: %d rows", n);
    dim3 grid((unsigned)((dim + 255) / 256), (unsigned)n);
    k_gather<<<grid, 256, 0, st>>>(src, lds, idx, dim, dst, ldd);
    CUDA_LAUNCHED("k_gather");
    return M40LLM_OK;
}

/* ---- argmax: one block per row, lowest index on ties ---- */
__global__ void k_argmax(const float *logits, int64_t ld, int n_vocab, int32_t *ids) {
    __shared__ float sv[32];
    __shared__ int si[32];
    const float *l = logits + (int64_t)blockIdx.x * ld;
    float best = -INFINITY;
    int bi = 0x7fffffff;
    for (int i = threadIdx.x; i < n_vocab; i += blockDim.x) {
        float v = l[i];
        if (v > best) { /* strictly greater: the first index of this thread wins */
            best = v;
            bi = i;
        }
    }
    int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
#pragma unroll
    for (int o = 16; o > 0; o >>= 1) {
        float ov = __shfl_xor_sync(M40_FULL_MASK, best, o);
        int oi = __shfl_xor_sync(M40_FULL_MASK, bi, o);
        if (ov > best || (ov == best && oi < bi)) {
            best = ov;
            bi = oi;
        }
    }
    if (lane == 0) {
        sv[warp] = best;
        si[warp] = bi;
    }
    __syncthreads();
    if (warp == 0) {
        int nw = blockDim.x >> 5;
        best = lane < nw ? sv[lane] : -INFINITY;
        bi = lane < nw ? si[lane] : 0x7fffffff;
#pragma unroll
        for (int o = 16; o > 0; o >>= 1) {
            float ov = __shfl_xor_sync(M40_FULL_MASK, best, o);
            int oi = __shfl_xor_sync(M40_FULL_MASK, bi, o);
            if (ov > best || (ov == best && oi < bi)) {
                best = ov;
                bi = oi;
            }
        }
        if (lane == 0) ids[blockIdx.x] = bi == 0x7fffffff ? 0 : bi; /* all-NaN row: 0 */
    }
}

extern "C" int launch_argmax(const float *logits, int64_t ld, int n, int n_vocab, int32_t *ids,
                             cudaStream_t st) {
    if (n <= 0) return M40LLM_OK;
    k_argmax<<<n, 256, 0, st>>>(logits, ld, n_vocab, ids);
    CUDA_LAUNCHED("k_argmax");
    return M40LLM_OK;
}

__global__ void k_iota(int32_t *d, int n, int32_t v0) {
    int i = blockIdx.x * blockDim.x + threadIdx.x;
    if (i < n) d[i] = v0 + i;
}

extern "C" int launch_iota(int32_t *dst, int n, int32_t v0, cudaStream_t st) {
    if (n <= 0) return M40LLM_OK;
    k_iota<<<(n + 255) / 256, 256, 0, st>>>(dst, n, v0);
    CUDA_LAUNCHED("k_iota");
    return M40LLM_OK;
}
