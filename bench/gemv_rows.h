/* Workbench kernels (bench/NAME.cu, the m40bench library): candidates for
 * src/cuda until the GPU suite has measured them. */
#ifndef M40_BENCH_GEMV_ROWS_H
#define M40_BENCH_GEMV_ROWS_H

#include "cuda/cuda_internal.h"

#ifdef __cplusplus
extern "C" {
#endif

/* y = W x for 2..8 vectors with launch_gemv's modes and epilogues (store,
 * residual add, SwiGLU/GeGLU, rope + KV store), by the row-parallel kernel
 * of gemv_rows.cu. */
int bench_gemv_rows(const gemv_args *a, cudaStream_t st);

#ifdef __cplusplus
}
#endif
#endif
