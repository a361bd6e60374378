/* Decode GEMV (and mixture-of-experts product) instances for Q2_K .. Q6_K weights. */
#include "gemv_impl.cuh"
#include "moe_gemv_impl.cuh"

extern "C" int gemv_run_kq(const gemv_args *a, cudaStream_t st) {
    switch (a->w->type) {
    case QT_Q2_K:
        return gemv_run_type<QT_Q2_K>(a, st);
    case QT_Q3_K:
        return gemv_run_type<QT_Q3_K>(a, st);
    case QT_Q4_K:
        return gemv_run_type<QT_Q4_K>(a, st);
    case QT_Q5_K:
        return gemv_run_type<QT_Q5_K>(a, st);
    case QT_Q6_K:
        return gemv_run_type<QT_Q6_K>(a, st);
    default:
        return err_set(M40LLM_ERR_UNSUPPORTED, "gemv: type %d not in this group", a->w->type);
    }
}

extern "C" int moe_gemv_run_kq(const moe_gemv_args *a, cudaStream_t st) {
    switch (a->w->type) {
    case QT_Q2_K:
        return moe_gemv_run_type<QT_Q2_K>(a, st);
    case QT_Q3_K:
        return moe_gemv_run_type<QT_Q3_K>(a, st);
    case QT_Q4_K:
        return moe_gemv_run_type<QT_Q4_K>(a, st);
    case QT_Q5_K:
        return moe_gemv_run_type<QT_Q5_K>(a, st);
    case QT_Q6_K:
        return moe_gemv_run_type<QT_Q6_K>(a, st);
    default:
        return err_set(M40LLM_ERR_UNSUPPORTED, "moe gemv: type %d not in this group", a->w->type);
    }
}
