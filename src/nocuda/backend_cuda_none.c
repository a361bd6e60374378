/* Built when there is no CUDA toolchain: the GPU backend reports no device,
 * so callers fall back to the CPU backend. */
#include "backend.h"
#include "err.h"

int backend_cuda_create(const model *m, const backend_params *p, backend **out) {
    (void)m;
    (void)p;
    *out = NULL;
    return err_set(M40LLM_ERR_NO_DEVICE, "this build has no CUDA support");
}

const char *backend_cuda_note(void) {
    return "";
}
