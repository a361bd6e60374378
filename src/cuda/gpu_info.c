/* GPU inventory for `m40-llm info`: CUDA device properties, NVML readings
 * (temperature, clocks; the library is opened at run time because the
 * driver, not the toolkit, provides it) and a measured copy bandwidth. */
#include <dlfcn.h>
#include <stdio.h>
#include <string.h>

#include "cuda_internal.h"
#include "gpu_diag.h"
#include "m40llm.h"

/* the few NVML entry points used, by their documented C signatures */
typedef int (*nvml_init_fn)(void);
typedef int (*nvml_handle_fn)(const char *pci_bus_id, void **dev);
typedef int (*nvml_temp_fn)(void *dev, int sensor, unsigned *t);
typedef int (*nvml_clock_fn)(void *dev, int type, unsigned *mhz);
typedef int (*nvml_power_fn)(void *dev, unsigned *mw);
typedef const char *(*nvml_str_fn)(int rc);
#define NVML_TEMPERATURE_GPU 0
#define NVML_CLOCK_SM        1
#define NVML_CLOCK_MEM       2

static void nvml_fill(int device, m40llm_gpu_info *g) {
    void *lib = dlopen("libnvidia-ml.so.1", RTLD_NOW | RTLD_LOCAL);
    if (!lib) lib = dlopen("libnvidia-ml.so", RTLD_NOW | RTLD_LOCAL);
    if (!lib) {
        snprintf(g->nvml_error, sizeof g->nvml_error, "NVML library not found (libnvidia-ml.so.1)");
        return;
    }
    nvml_init_fn init = (nvml_init_fn)dlsym(lib, "nvmlInit_v2");
    nvml_handle_fn by_pci = (nvml_handle_fn)dlsym(lib, "nvmlDeviceGetHandleByPciBusId_v2");
    nvml_temp_fn temp = (nvml_temp_fn)dlsym(lib, "nvmlDeviceGetTemperature");
    nvml_clock_fn clk = (nvml_clock_fn)dlsym(lib, "nvmlDeviceGetClockInfo");
    nvml_clock_fn clk_max = (nvml_clock_fn)dlsym(lib, "nvmlDeviceGetMaxClockInfo");
    nvml_str_fn estr = (nvml_str_fn)dlsym(lib, "nvmlErrorString");
    nvml_power_fn power = (nvml_power_fn)dlsym(lib, "nvmlDeviceGetPowerUsage"); /* optional */
    if (!init || !by_pci || !temp || !clk || !clk_max) {
        snprintf(g->nvml_error, sizeof g->nvml_error, "NVML library lacks needed functions");
        dlclose(lib);
        return;
    }
    int rc = init();
    if (rc) {
        snprintf(g->nvml_error, sizeof g->nvml_error, "nvmlInit: %s", estr ? estr(rc) : "error");
        dlclose(lib);
        return;
    }
    char bus[64];
    void *dev = NULL;
    /* match the CUDA device to the NVML one by PCI bus id (orders can differ) */
    if (cudaDeviceGetPCIBusId(bus, sizeof bus, device) != cudaSuccess || by_pci(bus, &dev)) {
        snprintf(g->nvml_error, sizeof g->nvml_error, "NVML has no device at PCI %s", bus);
        dlclose(lib);
        return;
    }
    unsigned v;
    g->have_nvml = 1;
    if (!temp(dev, NVML_TEMPERATURE_GPU, &v)) g->temperature_c = (int)v;
    if (!clk(dev, NVML_CLOCK_SM, &v)) g->sm_clock_mhz = (int)v;
    if (!clk(dev, NVML_CLOCK_MEM, &v)) g->mem_clock_mhz = (int)v;
    if (!clk_max(dev, NVML_CLOCK_SM, &v)) g->sm_clock_max_mhz = (int)v;
    if (!clk_max(dev, NVML_CLOCK_MEM, &v)) g->mem_clock_max_mhz = (int)v;
    if (power && !power(dev, &v)) g->power_mw = (int)v; /* not every board reports it */
    /* nvmlShutdown is skipped on purpose: other NVML users in the process may remain */
}

int m40llm_gpu_query(int device, m40llm_gpu_info *g) {
    memset(g, 0, sizeof *g);
    g->temperature_c = g->sm_clock_mhz = g->mem_clock_mhz = -1;
    g->sm_clock_max_mhz = g->mem_clock_max_mhz = -1;
    g->power_mw = -1;
    int n = 0;
    m40llm_gpu_count(&n);
    if (n == 0) {
        /* why, and what to do (m40-llm info prints this) */
        gpu_diag_facts f;
        gpu_diag_result r;
        gpu_diag_probe(&f);
        gpu_diag_decide(&f, -1, 0, &r);
        const char *why = r.line;
        if (!strncmp(why, "no GPU used: ", 13)) why += 13;
        return err_set(M40LLM_ERR_NO_DEVICE, "%s", r.device < 0 ? why : "no usable CUDA GPU");
    }
    if (device < 0 || device >= n)
        return err_set(M40LLM_ERR_INVALID_ARG, "GPU %d does not exist (%d found)", device, n);
    struct cudaDeviceProp p;
    CUDA_TRY(cudaGetDeviceProperties(&p, device));
    snprintf(g->name, sizeof g->name, "%s", p.name);
    g->cc_major = p.major;
    g->cc_minor = p.minor;
    g->sm_count = p.multiProcessorCount;
    CUDA_TRY(cudaSetDevice(device));
    size_t fr = 0, tot = 0;
    CUDA_TRY(cudaMemGetInfo(&fr, &tot));
    g->mem_total = tot;
    g->mem_free = fr;
    nvml_fill(device, g);
    return M40LLM_OK;
}

int m40llm_gpu_copy_bandwidth(int device, double *gbps) {
    *gbps = 0;
    int n = 0;
    m40llm_gpu_count(&n);
    if (n == 0) return err_set(M40LLM_ERR_NO_DEVICE, "no usable CUDA GPU");
    if (device < 0 || device >= n)
        return err_set(M40LLM_ERR_INVALID_ARG, "GPU %d does not exist (%d found)", device, n);
    CUDA_TRY(cudaSetDevice(device));
    size_t fr = 0, tot = 0;
    CUDA_TRY(cudaMemGetInfo(&fr, &tot));
    /* two buffers far larger than any L2: 1 GiB each, less on small cards */
    size_t bytes = (size_t)1 << 30;
    while (bytes > ((size_t)64 << 20) && 2 * bytes > fr / 2) bytes /= 2;
    void *a = NULL, *b = NULL;
    cudaEvent_t e0 = NULL, e1 = NULL;
    int rc = M40LLM_OK;
    cudaError_t e;
#define BW_TRY(call)                                                                               \
    do {                                                                                           \
        e = (call);                                                                                \
        if (e != cudaSuccess) {                                                                    \
            rc = cuda_fail(e, #call, __FILE__, __LINE__);                                          \
            goto done;                                                                             \
        }                                                                                          \
    } while (0)
    BW_TRY(cudaMalloc(&a, bytes));
    BW_TRY(cudaMalloc(&b, bytes));
    BW_TRY(cudaMemset(a, 1, bytes));
    BW_TRY(cudaMemset(b, 2, bytes));
    BW_TRY(cudaEventCreate(&e0));
    BW_TRY(cudaEventCreate(&e1));
    BW_TRY(cudaMemcpy(b, a, bytes, cudaMemcpyDeviceToDevice)); /* warm-up */
    float best = 1e30f;
    for (int rep = 0; rep < 5; rep++) {
        BW_TRY(cudaEventRecord(e0, 0));
        BW_TRY(
            cudaMemcpyAsync(rep & 1 ? a : b, rep & 1 ? b : a, bytes, cudaMemcpyDeviceToDevice, 0));
        BW_TRY(cudaEventRecord(e1, 0));
        BW_TRY(cudaEventSynchronize(e1));
        float ms = 0;
        BW_TRY(cudaEventElapsedTime(&ms, e0, e1));
        if (ms < best) best = ms;
    }
    *gbps = 2.0 * (double)bytes / (best * 1e-3) / 1e9; /* read + write */
done:
    if (e0) cudaEventDestroy(e0);
    if (e1) cudaEventDestroy(e1);
    cudaFree(a);
    cudaFree(b);
    return rc;
#undef BW_TRY
}

/* ---- facts for gpu_diag (src/gpu_diag.c decides) ---- */

void gpu_diag_build_facts(gpu_diag_facts *f) {
    f->cuda_build = true;
    f->runtime_version = CUDART_VERSION;
    f->archs = M40LLM_CUDA_ARCHS_STR;
}

void gpu_diag_probe_devices(gpu_diag_facts *f) {
    int v = 0;
    /* 0 without a driver: the runtime found no libcuda.so.1 */
    if (cudaDriverGetVersion(&v) != cudaSuccess) v = 0;
    f->driver_version = v;
    if (!v) return;
    int n = 0;
    cudaError_t e = cudaGetDeviceCount(&n);
    if (e != cudaSuccess) {
        cudaGetLastError(); /* not sticky: clear it for later calls */
        if (e != cudaErrorNoDevice && e != cudaErrorInsufficientDriver)
            snprintf(f->probe_error, sizeof f->probe_error, "%s", cudaGetErrorString(e));
        f->n_gpu = 0;
        return;
    }
    f->n_gpu = n;
    for (int i = 0; i < n && i < GPU_DIAG_MAX; i++) {
        gpu_diag_gpu *g = &f->gpu[i];
        struct cudaDeviceProp p;
        if (cudaGetDeviceProperties(&p, i) != cudaSuccess) {
            cudaGetLastError();
            snprintf(g->name, sizeof g->name, "(properties unavailable)");
            continue;
        }
        snprintf(g->name, sizeof g->name, "%s", p.name);
        g->cc_major = p.major;
        g->cc_minor = p.minor;
        g->mem_total = p.totalGlobalMem;
        g->mem_free = p.totalGlobalMem;
        /* free memory needs a context; a GPU whose architecture this build
         * lacks fails here, which the decision reports by architecture */
        size_t fr = 0, tot = 0;
        if (cudaSetDevice(i) == cudaSuccess && cudaMemGetInfo(&fr, &tot) == cudaSuccess)
            g->mem_free = fr;
        cudaGetLastError();
    }
    if (n > 0) cudaSetDevice(0);
}
