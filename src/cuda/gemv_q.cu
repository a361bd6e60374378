/* Decode GEMV (and mixture-of-experts product) instances for Q4_0, Q4_1, Q5_0, Q5_1, Q8_0 weights.
 */
#include "gemv_impl.cuh"
#include "moe_gemv_impl.cuh"

extern "C" int gemv_run_q32(const gemv_args *a, cudaStream_t st) {
    switch (a->w->type) {
    case QT_Q4_0:
        return gemv_run_type<QT_Q4_0>(a, st);
    case QT_Q4_1:
        return gemv_run_type<QT_Q4_1>(a, st);
    case QT_Q5_0:
        return gemv_run_type<QT_Q5_0>(a, st);
    case QT_Q5_1:
        return gemv_run_type<QT_Q5_1>(a, st);
    case QT_Q8_0:
        return gemv_run_type<QT_Q8_0>(a, st);
    default:
        return err_set(M40LLM_ERR_UNSUPPORTED, "gemv: type %d not in this group", a->w->type);
    }
}

extern "C" int moe_gemv_run_q32(const moe_gemv_args *a, cudaStream_t st) {
    switch (a->w->type) {
    case QT_Q4_0:
        return moe_gemv_run_type<QT_Q4_0>(a, st);
    case QT_Q4_1:
        return moe_gemv_run_type<QT_Q4_1>(a, st);
    case QT_Q5_0:
        return moe_gemv_run_type<QT_Q5_0>(a, st);
    case QT_Q5_1:
        return moe_gemv_run_type<QT_Q5_1>(a, st);
    case QT_Q8_0:
        return moe_gemv_run_type<QT_Q8_0>(a, st);
    default:
        return err_set(M40LLM_ERR_UNSUPPORTED, "moe gemv: type %d not in this group", a->w->type);
    }
}
