/* Selection of the fused dequantize + dot kernels (cpu_qdot_avx2.c) and the
 * per-block activation sums they use for types with an offset (w = q*d + m:
 * sum w*x = d * sum q*x + m * sum x). */
#include "cpu_internal.h"
#include "quant.h"

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#define CPU_HAVE_AVX2_KERNELS 1
#define DECL(NAME)                                                                                 \
    void cpu_qdot_##NAME##_avx2(const uint8_t *w, const float *x, int ldx, const float *xs,        \
                                int ldxs, int nx, int n, float *out);
DECL(q4_0)
DECL(q4_1)
DECL(q5_0)
DECL(q5_1)
DECL(q8_0)

static bool cpu_has_avx2(void) {
    static int cached = -1; /* benign race: every thread computes the same value */
    if (cached < 0) {
        __builtin_cpu_init();
        cached = __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma") &&
                 __builtin_cpu_supports("f16c");
    }
    return cached;
}
#endif

cpu_qdot_fn cpu_qdot_lookup(int type, bool *needs_xsum) {
    *needs_xsum = type == QT_Q4_1 || type == QT_Q5_1;
#ifdef CPU_HAVE_AVX2_KERNELS
    if (!cpu_has_avx2()) return NULL;
    switch (type) {
    case QT_Q4_0:
        return cpu_qdot_q4_0_avx2;
    case QT_Q4_1:
        return cpu_qdot_q4_1_avx2;
    case QT_Q5_0:
        return cpu_qdot_q5_0_avx2;
    case QT_Q5_1:
        return cpu_qdot_q5_1_avx2;
    case QT_Q8_0:
        return cpu_qdot_q8_0_avx2;
    default:
        return NULL;
    }
#else
    (void)type;
    return NULL;
#endif
}

void cpu_block_sums(const float *x, int n, float *out) {
    for (int b = 0; b < n / CPU_QBLK; b++) {
        float s = 0.0f;
        for (int i = 0; i < CPU_QBLK; i++) s += x[b * CPU_QBLK + i];
        out[b] = s;
    }
}
