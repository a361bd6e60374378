/* The real Gemma 3 270M on the CPU backend against transformers (see
 * gemma3_check.h). */
#include "gemma3_check.h"

/* measured 6.5e-5 / 5.6e-5 and 0.000% (FP32 activations against float64):
 * bounds well above that, far below what a wrong block gives */
int main(void) {
    const g3_target cpu = {"cpu", backend_cpu_create, 5e-4, 5e-4, 0.005};
    return g3_main(&cpu, "test_gemma3", BACKEND_KV_F32, BACKEND_GEMM_AUTO);
}
