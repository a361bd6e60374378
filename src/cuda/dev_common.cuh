/* Device helpers shared by every kernel file: warp/block reductions, 128-bit
 * loads through the read-only path, f16/bf16 decode. Only sm_52 features:
 * half is a storage format here (converted with cvt), never arithmetic. */
#ifndef M40_DEV_COMMON_CUH
#define M40_DEV_COMMON_CUH

#include <stdint.h>

#define M40_WARP      32
#define M40_FULL_MASK 0xffffffffu

static __device__ __forceinline__ float dev_warp_sum(float v) {
#pragma unroll
    for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(M40_FULL_MASK, v, o);
    return v;
}

static __device__ __forceinline__ float dev_warp_max(float v) {
#pragma unroll
    for (int o = 16; o > 0; o >>= 1) v = fmaxf(v, __shfl_xor_sync(M40_FULL_MASK, v, o));
    return v;
}

/* Sum over the whole block (blockDim.x a multiple of 32, <= 1024); every
 * thread gets the result. red: __shared__ float[32]. */
static __device__ __forceinline__ float dev_block_sum(float v, float *red) {
    int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, nw = blockDim.x >> 5;
    v = dev_warp_sum(v);
    __syncthreads(); /* red may still be read by a previous call */
    if (lane == 0) red[warp] = v;
    __syncthreads();
    v = lane < nw ? red[lane] : 0.0f;
    return dev_warp_sum(v);
}

static __device__ __forceinline__ float dev_block_max(float v, float *red) {
    int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, nw = blockDim.x >> 5;
    v = dev_warp_max(v);
    __syncthreads();
    if (lane == 0) red[warp] = v;
    __syncthreads();
    v = lane < nw ? red[lane] : -INFINITY;
    return dev_warp_max(v);
}

/* IEEE half bits -> float (exact), with the conversion instruction sm_52 has. */
static __device__ __forceinline__ float dev_f16(uint16_t h) {
    float f;
    asm("cvt.f32.f16 %0, %1;" : "=f"(f) : "h"(h));
    return f;
}

/* float -> half bits, round to nearest even. */
static __device__ __forceinline__ uint16_t dev_to_f16(float f) {
    uint16_t h;
    asm("cvt.rn.f16.f32 %0, %1;" : "=h"(h) : "f"(f));
    return h;
}

static __device__ __forceinline__ float dev_bf16(uint16_t h) {
    return __uint_as_float((uint32_t)h << 16);
}

/* 16 bytes through the read-only (texture) path; p must be 16-byte aligned. */
static __device__ __forceinline__ uint4 dev_ld128(const void *p) {
    return __ldg((const uint4 *)p);
}

/* word i (0..3, folding to a constant) of a 16-byte vector */
static __device__ __forceinline__ uint32_t dev_word(const uint4 &u, int i) {
    return i == 0 ? u.x : i == 1 ? u.y : i == 2 ? u.z : u.w;
}

static __device__ __forceinline__ uint32_t dev_ld32(const void *p) {
    return __ldg((const uint32_t *)p);
}

static __device__ __forceinline__ uint16_t dev_ld16(const void *p) {
    return __ldg((const unsigned short *)p);
}

/* Starts bringing a line into L2 without waiting for it (sm_20+). */
static __device__ __forceinline__ void dev_prefetch_l2(const void *p) {
    asm volatile("prefetch.global.L2 [%0];" ::"l"(p));
}

static __device__ __forceinline__ float dev_silu(float g) {
    return g / (1.0f + expf(-g));
}

/* 0.5 g (1 + tanh(sqrt(2/pi) (g + 0.044715 g^3))), as the CPU's cpu_gelu_tanh */
static __device__ __forceinline__ float dev_gelu_tanh(float g) {
    const float k = 0.7978845608028654f;
    return 0.5f * g * (1.0f + tanhf(k * (g + 0.044715f * g * g * g)));
}

/* The gated FFN's activation: SiLU (act 0) or tanh GELU (act 1). */
static __device__ __forceinline__ float dev_act(float g, int act) {
    return act ? dev_gelu_tanh(g) : dev_silu(g);
}

#endif
