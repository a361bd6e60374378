/* Decode GEMV (and mixture-of-experts product) instances for F32, F16, BF16 weights. */
#include "gemv_impl.cuh"
#include "moe_gemv_impl.cuh"

extern "C" int gemv_run_float(const gemv_args *a, cudaStream_t st) {
    switch (a->w->type) {
    case QT_F32:
        return gemv_run_type<QT_F32>(a, st);
    case QT_F16:
        return gemv_run_type<QT_F16>(a, st);
    case QT_BF16:
        return gemv_run_type<QT_BF16>(a, st);
    default:
        return err_set(M40LLM_ERR_UNSUPPORTED, "gemv: type %d not in this group", a->w->type);
    }
}

extern "C" int moe_gemv_run_float(const moe_gemv_args *a, cudaStream_t st) {
    switch (a->w->type) {
    case QT_F32:
        return moe_gemv_run_type<QT_F32>(a, st);
    case QT_F16:
        return moe_gemv_run_type<QT_F16>(a, st);
    case QT_BF16:
        return moe_gemv_run_type<QT_BF16>(a, st);
    default:
        return err_set(M40LLM_ERR_UNSUPPORTED, "moe gemv: type %d not in this group", a->w->type);
    }
}
