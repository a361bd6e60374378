/* GPU diagnostics: which GPU a command uses and, when none, one line that
 * says why and what to do. The decision (gpu_diag_decide) is a pure function
 * of probed facts so every case is unit-tested without a GPU; the probe
 * (gpu_diag_probe) fills the facts from the CUDA runtime, or from the test
 * hook $M40LLM_TEST_GPU_SIM (read only in gpu_diag_probe). */
#ifndef M40_GPU_DIAG_H
#define M40_GPU_DIAG_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#define GPU_DIAG_MAX 16

typedef struct gpu_diag_gpu {
    char name[256];               /* as cudaDeviceProp.name */
    int cc_major, cc_minor;       /* compute capability */
    uint64_t mem_free, mem_total; /* bytes */
} gpu_diag_gpu;

typedef struct gpu_diag_facts {
    /* this build */
    bool cuda_build;     /* compiled with CUDA */
    int runtime_version; /* CUDA runtime linked in, 1000 * major + 10 * minor (11080 = 11.8) */
    const char *archs;   /* CMake CUDA architectures compiled in ("52", "52-virtual", ...) */
    /* this machine */
    int driver_version; /* CUDA version the driver supports (12020 = 12.2); 0 = no driver */
    int n_gpu;          /* GPUs the runtime reports (first GPU_DIAG_MAX listed) */
    gpu_diag_gpu gpu[GPU_DIAG_MAX];
    char probe_error[160]; /* a runtime error while counting GPUs, "" when none */
} gpu_diag_facts;

typedef enum gpu_diag_reason {
    GPU_DIAG_USABLE = 0,
    GPU_DIAG_NO_CUDA_BUILD, /* built without CUDA */
    GPU_DIAG_NO_DRIVER,     /* no NVIDIA driver (libcuda) */
    GPU_DIAG_OLD_DRIVER,    /* the driver is older than this build's runtime needs */
    GPU_DIAG_NO_GPU,        /* driver present, no GPU (or the runtime failed) */
    GPU_DIAG_BAD_INDEX,     /* --device cuda:N past the last GPU */
    GPU_DIAG_ARCH,          /* compute capability not in this build's architectures */
    GPU_DIAG_MEMORY,        /* too little free memory for the model */
    GPU_DIAG_NOT_CHOSEN,    /* usable, but another one was asked for */
} gpu_diag_reason;

/* A layer split (the default when no one card holds the model, want -1):
 * each further card needs its own context, scratch and output head, so the
 * cards' free memory must exceed the model's needs by this per extra card. */
#define GPU_DIAG_SPLIT_SLACK (512ull << 20)

typedef struct gpu_diag_result {
    int device;                        /* the GPU to use (a split's first), -1 = none */
    int n_split;                       /* > 1: the layers split over split[0..n_split) */
    int split[GPU_DIAG_MAX];           /* GPU indices in layer order */
    gpu_diag_reason why;               /* when device < 0: why none */
    gpu_diag_reason gpu[GPU_DIAG_MAX]; /* per listed GPU */
    int min_driver[GPU_DIAG_MAX];      /* per GPU: the driver CUDA version it needs */
    char line[640]; /* device < 0: "no GPU used: WHY; WHAT TO DO"; a split: why and over which */
} gpu_diag_result;

/* Fills *f from this build and the CUDA runtime (or $M40LLM_TEST_GPU_SIM:
 * "none" | "no-gpu" | "old-driver:VERSION" | "arch:CC" | "mem:BYTES", one
 * simulated sm_52 GPU with the given fact changed; "mems:B0,B1,...", one GPU
 * per free size, sm_52 or the build's first architecture). Never fails. */
void gpu_diag_probe(gpu_diag_facts *f);

/* Picks the GPU: want = -1 any, else that index; need_bytes = device memory
 * the model needs (0 = unknown). want -1: the first usable GPU with room
 * for the model; when none has room alone but the usable GPUs short of
 * memory hold it together (their free bytes >= need_bytes plus
 * GPU_DIAG_SPLIT_SLACK per card after the first), all of those, in index
 * order (n_split > 1, device = split[0], each marked used); a card with
 * less than GPU_DIAG_SPLIT_SLACK free is left out. */
void gpu_diag_decide(const gpu_diag_facts *f, int want, uint64_t need_bytes, gpu_diag_result *r);

/* A split's cards as a --gpus list ("0,1") into buf; "" when r is no split. */
const char *gpu_diag_split_list(const gpu_diag_result *r, char *buf, size_t size);

/* True when code built for `archs` runs on compute capability major.minor:
 * machine code of the same major version and no newer minor, or PTX of no
 * newer version (the driver compiles it). */
bool gpu_diag_arch_runs(const char *archs, int cc_major, int cc_minor);

/* True when some GPU could run only the PTX (the driver must then be at
 * least as new as the runtime to compile it). */
bool gpu_diag_needs_jit(const char *archs, int cc_major, int cc_minor);

/* "52" -> "sm_52 + compute_52 PTX"; into buf. */
const char *gpu_diag_archs_text(const char *archs, char *buf, size_t size);

/* One line per GPU ("GPU 0: NAME, compute 5.2, driver CUDA 12.2, 22.1 GiB
 * free: used"), then r->line when none is used or a line naming the split's
 * cards; each prefixed by prefix.
 * listing (`info`): GPUs that could be used say "usable" instead. */
void gpu_diag_print(FILE *out, const char *prefix, const gpu_diag_facts *f,
                    const gpu_diag_result *r, bool listing);

/* The parts of the probe that differ between the CUDA build (src/cuda) and
 * the build without it (src/nocuda). */
void gpu_diag_build_facts(gpu_diag_facts *f);
void gpu_diag_probe_devices(gpu_diag_facts *f);

#endif
