/* Decode matrix-vector products for every weight type: y = W x for up to
 * 8 vectors at once, each weight read once (128-bit loads of the device
 * layout), dequantized in registers, FP32 accumulate.
 *
 * One vector (the decode step) mostly runs the persistent kernel
 * (gemvp_impl.cuh): a grid no larger than the GPU holds, each block
 * staging x once, each warp walking row groups with the next step's
 * weights in flight. Types whose dot has no split form run the
 * block-staged kernel (gemv_impl.cuh: 4 warps of 4 row streams, x staged
 * in chunks per block), or the warp kernel (gemv1_impl.cuh) where K <=
 * 2048. Batches of 2..8 vectors run the row-parallel kernel
 * (gemvr_impl.cuh; QKV the block-staged one), each row decoded once for
 * all of them. All take an optional fused RMSNorm of x
 * and the epilogues: store, residual add, SwiGLU, rope + KV-cache store. */

#include <stdlib.h>
#include <string.h>

#include "cuda_internal.h"
#include "quant.h"

int gemv_run_float(const gemv_args *a, cudaStream_t st);
int gemv_run_q32(const gemv_args *a, cudaStream_t st);
int gemv_run_kq(const gemv_args *a, cudaStream_t st);

int launch_gemv(const gemv_args *a, cudaStream_t st) {
    if (!a || !a->w || !a->x || a->nb < 1 || a->nb > M40_GEMV_MAX_B)
        return err_set(M40LLM_ERR_INVALID_ARG, "gemv: %d vectors (1..%d)", a ? a->nb : 0,
                       M40_GEMV_MAX_B);
    if (a->kernel < GEMV_KERNEL_AUTO || a->kernel > GEMV_KERNEL_ROWS4 || a->act < 0 || a->act > 1)
        return err_set(M40LLM_ERR_INVALID_ARG, "gemv: kernel %d, activation %d", a->kernel, a->act);
    if (a->ldx % 4 || (uintptr_t)a->x % 16 || (a->gamma && (uintptr_t)a->gamma % 16))
        return err_set(M40LLM_ERR_INVALID_ARG, "gemv: x rows must be 16-byte aligned (ldx %lld)",
                       (long long)a->ldx);
    if (a->mode == GEMV_SWIGLU) {
        if (!a->w2 || a->w2->type != a->w->type || a->w2->rows != a->w->rows ||
            a->w2->cols != a->w->cols)
            return err_set(M40LLM_ERR_INVALID_ARG,
                           "gemv: SwiGLU needs gate and up of one type and shape");
    }
    if (a->mode == GEMV_QKV) {
        if (!a->qkv) return err_set(M40LLM_ERR_INVALID_ARG, "gemv: QKV epilogue without outputs");
        if (a->qkv->rope.hd % 2 || a->row0 % 4 || a->w->rows % 4)
            return err_set(M40LLM_ERR_UNSUPPORTED, "gemv: QKV rows must come in groups of 4");
    } else if (!a->y) {
        return err_set(M40LLM_ERR_INVALID_ARG, "gemv: no output");
    }
    switch (a->w->type) {
    case QT_F32:
    case QT_F16:
    case QT_BF16:
        return gemv_run_float(a, st);
    case QT_Q4_0:
    case QT_Q4_1:
    case QT_Q5_0:
    case QT_Q5_1:
    case QT_Q8_0:
        return gemv_run_q32(a, st);
    case QT_Q2_K:
    case QT_Q3_K:
    case QT_Q4_K:
    case QT_Q5_K:
    case QT_Q6_K:
        return gemv_run_kq(a, st);
    default:
        return err_set(M40LLM_ERR_UNSUPPORTED, "gemv: weight type %d has no GPU kernel",
                       a->w->type);
    }
}
