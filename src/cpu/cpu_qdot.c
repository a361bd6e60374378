/* Selection of the fused dequantize + dot kernels (cpu_qdot_avx512.c,
 * cpu_qdot_avx2.c) by the CPU's instruction set, and the per-block
 * activation sums the AVX2 ones use for types with an offset (w = q*d + m:
 * sum w*x = d * sum q*x + m * sum x). */
#include <stdlib.h>
#include <string.h>

#include "cpu_internal.h"
#include "quant.h"

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#define CPU_HAVE_X86_KERNELS 1
#define DECL(NAME, ISA)                                                                            \
    void cpu_qdot_##NAME##_##ISA(const uint8_t *w, const float *x, int ldx, const float *xs,       \
                                 int ldxs, int nx, int n, float *out);
DECL(q4_0, avx2)
DECL(q4_1, avx2)
DECL(q5_0, avx2)
DECL(q5_1, avx2)
DECL(q8_0, avx2)
DECL(q4_K, avx2)
DECL(q5_K, avx2)
DECL(q6_K, avx2)
DECL(f16, avx2)
DECL(f32, avx2)
DECL(q4_0, avx512)
DECL(q4_1, avx512)
DECL(q5_0, avx512)
DECL(q5_1, avx512)
DECL(q8_0, avx512)
DECL(q4_K, avx512)
DECL(q5_K, avx512)
DECL(q6_K, avx512)
DECL(f16, avx512)
DECL(f32, avx512)
#endif

static cpu_isa isa_detect(void) {
    cpu_isa best = CPU_ISA_NONE;
#ifdef CPU_HAVE_X86_KERNELS
    __builtin_cpu_init();
    if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma") &&
        __builtin_cpu_supports("f16c")) {
        best = CPU_ISA_AVX2;
        if (__builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
            __builtin_cpu_supports("avx512vl"))
            best = CPU_ISA_AVX512;
    }
#endif
    /* M40LLM_CPU_ISA=none|avx2|avx512 caps the choice (comparisons, tests) */
    const char *env = getenv("M40LLM_CPU_ISA");
    if (env) {
        cpu_isa cap = !strcmp(env, "none")   ? CPU_ISA_NONE
                      : !strcmp(env, "avx2") ? CPU_ISA_AVX2
                                             : CPU_ISA_AVX512;
        if (cap < best) best = cap;
    }
    return best;
}

cpu_isa cpu_isa_best(void) {
    static int cached = -1; /* benign race: every thread computes the same value */
    if (cached < 0) cached = (int)isa_detect();
    return (cpu_isa)cached;
}

cpu_qdot_fn cpu_qdot_lookup_isa(int type, cpu_isa isa, bool *needs_xsum) {
    *needs_xsum = false;
#ifdef CPU_HAVE_X86_KERNELS
    if (isa == CPU_ISA_AVX512) {
        switch (type) {
        case QT_Q4_0:
            return cpu_qdot_q4_0_avx512;
        case QT_Q4_1:
            return cpu_qdot_q4_1_avx512;
        case QT_Q5_0:
            return cpu_qdot_q5_0_avx512;
        case QT_Q5_1:
            return cpu_qdot_q5_1_avx512;
        case QT_Q8_0:
            return cpu_qdot_q8_0_avx512;
        case QT_Q4_K:
            return cpu_qdot_q4_K_avx512;
        case QT_Q5_K:
            return cpu_qdot_q5_K_avx512;
        case QT_Q6_K:
            return cpu_qdot_q6_K_avx512;
        case QT_F16:
            return cpu_qdot_f16_avx512;
        case QT_F32:
            return cpu_qdot_f32_avx512;
        default:
            return NULL;
        }
    }
    if (isa == CPU_ISA_AVX2) {
        *needs_xsum = type == QT_Q4_1 || type == QT_Q5_1;
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
        case QT_Q4_K:
            return cpu_qdot_q4_K_avx2;
        case QT_Q5_K:
            return cpu_qdot_q5_K_avx2;
        case QT_Q6_K:
            return cpu_qdot_q6_K_avx2;
        case QT_F16:
            return cpu_qdot_f16_avx2;
        case QT_F32:
            return cpu_qdot_f32_avx2;
        default:
            *needs_xsum = false;
            return NULL;
        }
    }
#else
    (void)type;
    (void)isa;
#endif
    return NULL;
}

cpu_qdot_fn cpu_qdot_lookup(int type, bool *needs_xsum) {
    return cpu_qdot_lookup_isa(type, cpu_isa_best(), needs_xsum);
}

void cpu_block_sums(const float *x, int n, float *out) {
    for (int b = 0; b < n / CPU_QBLK; b++) {
        float s = 0.0f;
        for (int i = 0; i < CPU_QBLK; i++) s += x[b * CPU_QBLK + i];
        out[b] = s;
    }
}
