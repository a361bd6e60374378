/* gpu_diag_decide on simulated facts: each reason a GPU is not used gives a
 * line that says why and what to do; the test hook and the architecture
 * rules (machine code vs PTX JIT). */
#include <stdlib.h>
#include <string.h>

#include "backend_open.h"
#include "check.h"
#include "gpu_diag.h"

/* a CUDA 11.8 build for sm_52 + compute_52 PTX with one Tesla M40 */
static gpu_diag_facts m40(void) {
    gpu_diag_facts f;
    memset(&f, 0, sizeof f);
    f.cuda_build = true;
    f.runtime_version = 11080;
    f.archs = "52";
    f.driver_version = 12020;
    f.n_gpu = 1;
    snprintf(f.gpu[0].name, sizeof f.gpu[0].name, "Tesla M40 24GB");
    f.gpu[0].cc_major = 5;
    f.gpu[0].cc_minor = 2;
    f.gpu[0].mem_total = 25769803776ull;
    f.gpu[0].mem_free = 25000000000ull;
    return f;
}

#define HAS(r, s) CHECKF(strstr((r).line, s), "'%s' not in: %s", s, (r).line)

static void test_arch_rules(void) {
    CHECK(gpu_diag_arch_runs("52", 5, 2));
    CHECK(gpu_diag_arch_runs("52", 9, 0));      /* PTX JIT on a newer GPU */
    CHECK(!gpu_diag_arch_runs("52", 3, 7));     /* older: nothing runs */
    CHECK(!gpu_diag_arch_runs("52", 5, 0));     /* sm_50 is older than 5.2 */
    CHECK(gpu_diag_arch_runs("52-real", 5, 3)); /* same major, newer minor */
    CHECK(!gpu_diag_arch_runs("52-real", 6, 1));
    CHECK(gpu_diag_arch_runs("52-virtual", 8, 6));
    CHECK(gpu_diag_arch_runs("75,native", 5, 2));
    CHECK(gpu_diag_arch_runs("61;75", 7, 5));
    CHECK(!gpu_diag_arch_runs("", 5, 2));
    CHECK(!gpu_diag_needs_jit("52", 5, 2));
    CHECK(gpu_diag_needs_jit("52", 9, 0));
    CHECK(gpu_diag_needs_jit("52-virtual", 5, 2));
    char buf[128];
    CHECK(!strcmp(gpu_diag_archs_text("52", buf, sizeof buf), "sm_52 + compute_52 PTX"));
    CHECK(!strcmp(gpu_diag_archs_text("52-virtual,61-real", buf, sizeof buf),
                  "compute_52 PTX, sm_61"));
}

static void test_usable(void) {
    gpu_diag_facts f = m40();
    gpu_diag_result r;
    gpu_diag_decide(&f, -1, 1000000000ull, &r);
    CHECK(r.device == 0 && r.gpu[0] == GPU_DIAG_USABLE && r.line[0] == 0);
    /* two GPUs, the second asked for */
    f.n_gpu = 2;
    f.gpu[1] = f.gpu[0];
    gpu_diag_decide(&f, 1, 0, &r);
    CHECK(r.device == 1 && r.gpu[0] == GPU_DIAG_NOT_CHOSEN);
    /* the first cannot run this build: the second is taken */
    f.gpu[0].cc_major = 3;
    f.gpu[0].cc_minor = 7;
    gpu_diag_decide(&f, -1, 0, &r);
    CHECK(r.device == 1 && r.gpu[0] == GPU_DIAG_ARCH);
    char out[2048] = "";
    FILE *mf = fmemopen(out, sizeof out, "w");
    gpu_diag_print(mf, "m40-llm: ", &f, &r, false);
    fclose(mf);
    CHECKF(strstr(out, "GPU 0: Tesla M40 24GB, compute 3.7, driver CUDA 12.2") &&
               strstr(out, "architecture not in this build") && strstr(out, "GPU 1:") &&
               strstr(out, ": used\n") && !strstr(out, "no GPU used"),
           "%s", out);
}

static void test_no_cuda_build(void) {
    gpu_diag_facts f = m40();
    f.cuda_build = false;
    gpu_diag_result r;
    gpu_diag_decide(&f, -1, 0, &r);
    CHECK(r.device < 0 && r.why == GPU_DIAG_NO_CUDA_BUILD);
    HAS(r, "built without CUDA");
    HAS(r, "running on the CPU");
}

static void test_no_driver(void) {
    gpu_diag_facts f = m40();
    f.driver_version = 0;
    f.n_gpu = 0;
    gpu_diag_result r;
    gpu_diag_decide(&f, -1, 0, &r);
    CHECK(r.device < 0 && r.why == GPU_DIAG_NO_DRIVER);
    HAS(r, "no NVIDIA driver found");
    HAS(r, "install NVIDIA driver 520 or newer (CUDA 11.8)");
    /* driver, no GPU */
    f = m40();
    f.n_gpu = 0;
    gpu_diag_decide(&f, -1, 0, &r);
    CHECK(r.why == GPU_DIAG_NO_GPU);
    HAS(r, "reports no GPU");
    HAS(r, "CUDA_VISIBLE_DEVICES");
}

static void test_old_driver(void) {
    /* older than the runtime's major version: the runtime refuses it */
    gpu_diag_facts f = m40();
    f.driver_version = 10020;
    gpu_diag_result r;
    gpu_diag_decide(&f, -1, 0, &r);
    CHECK(r.device < 0 && r.why == GPU_DIAG_OLD_DRIVER);
    HAS(r, "the driver supports CUDA 10.2");
    HAS(r, "needs at least 11.0");
    HAS(r, "Install NVIDIA driver 520 or newer");
    /* minor version compatibility: 11.4 runs sm_52 machine code */
    f.driver_version = 11040;
    gpu_diag_decide(&f, -1, 0, &r);
    CHECK(r.device == 0);
    /* ... but cannot compile 11.8's PTX for a newer GPU */
    f.gpu[0].cc_major = 8;
    f.gpu[0].cc_minor = 6;
    gpu_diag_decide(&f, -1, 0, &r);
    CHECK(r.device < 0 && r.why == GPU_DIAG_OLD_DRIVER && r.min_driver[0] == 11080);
    HAS(r, "PTX");
    HAS(r, "CUDA 11.8 or newer, this one supports CUDA 11.4");
    f.driver_version = 12020;
    gpu_diag_decide(&f, -1, 0, &r);
    CHECK(r.device == 0);
}

static void test_arch_mismatch(void) {
    gpu_diag_facts f = m40();
    f.gpu[0].cc_major = 3;
    f.gpu[0].cc_minor = 7;
    gpu_diag_result r;
    gpu_diag_decide(&f, -1, 0, &r);
    CHECK(r.device < 0 && r.why == GPU_DIAG_ARCH);
    HAS(r, "compute capability 3.7, not in this build's architectures (sm_52 + compute_52 PTX)");
    HAS(r, "-DM40LLM_CUDA_ARCHS=37");
    /* a machine-code-only build does not run on a newer GPU */
    f = m40();
    f.archs = "52-real";
    f.gpu[0].cc_major = 9;
    f.gpu[0].cc_minor = 0;
    gpu_diag_decide(&f, 0, 0, &r);
    CHECK(r.why == GPU_DIAG_ARCH);
    HAS(r, "GPU 0 has compute capability 9.0");
}

static void test_memory(void) {
    gpu_diag_facts f = m40();
    f.gpu[0].mem_free = 1000000000ull;
    gpu_diag_result r;
    gpu_diag_decide(&f, -1, 4500000000ull, &r);
    CHECK(r.device < 0 && r.why == GPU_DIAG_MEMORY);
    HAS(r, "has 1000000000 bytes free");
    HAS(r, "the model needs 4500000000 bytes");
    HAS(r, "smaller");
    gpu_diag_decide(&f, -1, 900000000ull, &r);
    CHECK(r.device == 0);
}

/* The default of --gpus: a model no one card holds goes over the usable
 * cards short of memory, when together they have room. */
static void test_split_default(void) {
    gpu_diag_facts f = m40();
    f.n_gpu = 4;
    for (int i = 1; i < 4; i++) f.gpu[i] = f.gpu[0];
    f.gpu[0].mem_free = f.gpu[1].mem_free = f.gpu[3].mem_free = 10000000000ull;
    f.gpu[2].cc_major = 3; /* cannot run this build: never part of the split */
    f.gpu[2].cc_minor = 7;
    gpu_diag_result r;
    const uint64_t need = 25000000000ull; /* more than one card, less than 0, 1 and 3 */
    gpu_diag_decide(&f, -1, need, &r);
    char list[64];
    CHECKF(r.n_split == 3 && r.device == 0 && r.split[1] == 1 && r.split[2] == 3,
           "n_split %d device %d", r.n_split, r.device);
    CHECK(!strcmp(gpu_diag_split_list(&r, list, sizeof list), "0,1,3"));
    CHECK(r.gpu[0] == GPU_DIAG_USABLE && r.gpu[1] == GPU_DIAG_USABLE &&
          r.gpu[3] == GPU_DIAG_USABLE && r.gpu[2] == GPU_DIAG_ARCH);
    HAS(r, "split over GPUs 0,1,3");
    HAS(r, "--gpus");
    char out[2048] = "";
    FILE *mf = fmemopen(out, sizeof out, "w");
    gpu_diag_print(mf, "", &f, &r, false);
    fclose(mf);
    CHECKF(
        strstr(out, "GPU 1: Tesla M40 24GB, compute 5.2, driver CUDA 12.2, 9.31 GiB free: used") &&
            strstr(out, "GPU 3:") && strstr(out, "split over GPUs 0,1,3") &&
            !strstr(out, "no GPU used"),
        "%s", out);
    /* one card with room: that one alone, even the second */
    f.gpu[1].mem_free = 25000000000ull + 1;
    gpu_diag_decide(&f, -1, need, &r);
    CHECK(r.n_split == 0 && r.device == 1 && r.gpu[0] == GPU_DIAG_MEMORY);
    CHECK(!strcmp(gpu_diag_split_list(&r, list, sizeof list), ""));
    /* together short of the need plus the slack per extra card: none */
    f.gpu[1].mem_free = 10000000000ull;
    gpu_diag_decide(&f, -1, 30000000000ull - 2 * GPU_DIAG_SPLIT_SLACK + 1, &r);
    CHECK(r.device < 0 && r.n_split == 0 && r.why == GPU_DIAG_MEMORY);
    HAS(r, "no GPU fits");
    gpu_diag_decide(&f, -1, 30000000000ull - 2 * GPU_DIAG_SPLIT_SLACK, &r);
    CHECK(r.n_split == 3);
    /* a card with less than the slack free takes no share */
    f.gpu[3].mem_free = GPU_DIAG_SPLIT_SLACK - 1;
    gpu_diag_decide(&f, -1, 19000000000ull, &r);
    CHECK(r.n_split == 2 && r.split[0] == 0 && r.split[1] == 1 && r.gpu[3] == GPU_DIAG_MEMORY);
    f.gpu[3].mem_free = 10000000000ull;
    /* a card asked for by name is never split */
    gpu_diag_decide(&f, 0, need, &r);
    CHECK(r.device < 0 && r.n_split == 0 && r.why == GPU_DIAG_MEMORY);
    /* one card short of memory alone: nothing to split over */
    f.n_gpu = 1;
    gpu_diag_decide(&f, -1, need, &r);
    CHECK(r.device < 0 && r.n_split == 0);
}

/* what the decision weighs free memory against: weights and KV cache */
static void test_model_bytes(void) {
    model m;
    memset(&m, 0, sizeof m);
    m.cfg.n_layer = 32;
    m.cfg.n_head_kv = 8;
    m.cfg.head_dim = 128;
    m.weight_bytes = 4000000000ull;
    const uint64_t pos = 32ull * 8 * 128 * 2 * 2; /* K + V of a position, f16 */
    backend_params p = {.n_ctx = 4096, .n_seq_max = 4, .kv_type = BACKEND_KV_F16};
    CHECK(backend_model_gpu_bytes(&m, &p) == m.weight_bytes + 4 * 4096 * pos);
    p.kv_type = BACKEND_KV_F32;
    CHECK(backend_model_gpu_bytes(&m, &p) == m.weight_bytes + 4 * 4096 * pos * 2);
    p.kv_type = BACKEND_KV_F16;
    p.paged = true; /* one whole context; the pool is sized later */
    CHECK(backend_model_gpu_bytes(&m, &p) == m.weight_bytes + 4096 * pos);
    p.n_kv_blocks = 100; /* a pool of a given size */
    p.kv_block = 16;
    CHECK(backend_model_gpu_bytes(&m, &p) == m.weight_bytes + 1600 * pos);
    p.kv_bytes = 123456789;
    CHECK(backend_model_gpu_bytes(&m, &p) == m.weight_bytes + 123456789);
}

static void test_bad_index(void) {
    gpu_diag_facts f = m40();
    gpu_diag_result r;
    gpu_diag_decide(&f, 3, 0, &r);
    CHECK(r.device < 0 && r.why == GPU_DIAG_BAD_INDEX);
    HAS(r, "cuda:3 does not exist");
}

static void test_hook(void) {
    /* the probe's test hook: each simulated case decided as above */
    static const struct {
        const char *sim;
        gpu_diag_reason why;
    } cases[] = {{"m40", GPU_DIAG_USABLE},    {"none", GPU_DIAG_NO_DRIVER},
                 {"no-gpu", GPU_DIAG_NO_GPU}, {"old-driver:10020", GPU_DIAG_OLD_DRIVER},
                 {"arch:37", GPU_DIAG_ARCH},  {"mem:1000", GPU_DIAG_MEMORY}};
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        setenv("M40LLM_TEST_GPU_SIM", cases[i].sim, 1);
        gpu_diag_facts f;
        gpu_diag_probe(&f);
        gpu_diag_result r;
        gpu_diag_decide(&f, -1, 1000000, &r);
        gpu_diag_reason want = cases[i].why;
        /* a build without sm_52 (CUDA 13) cannot run the simulated M40 */
        if ((want == GPU_DIAG_USABLE || want == GPU_DIAG_MEMORY) &&
            !gpu_diag_arch_runs(f.archs, 5, 2))
            want = GPU_DIAG_ARCH;
        if (!f.cuda_build) want = GPU_DIAG_NO_CUDA_BUILD;
        CHECKF(r.why == want && (r.device >= 0) == (want == GPU_DIAG_USABLE), "%s: why %d: %s",
               cases[i].sim, (int)r.why, r.line);
    }
    /* several cards, each short of room, together enough: a split */
    setenv("M40LLM_TEST_GPU_SIM", "mems:700000000,700000000,100", 1);
    gpu_diag_facts f;
    gpu_diag_probe(&f);
    gpu_diag_result r;
    gpu_diag_decide(&f, -1, 800000000, &r);
    if (f.cuda_build) {
        CHECKF(f.n_gpu == 3 && f.gpu[1].mem_free == 700000000 && f.gpu[2].mem_free == 100,
               "%d GPUs", f.n_gpu);
        CHECKF(r.n_split == 2 && r.split[0] == 0 && r.split[1] == 1, "n_split %d: %s", r.n_split,
               r.line);
    }
    /* not a list of 1..16 sizes: the real probe */
    const char *bad[] = {"mems:12x",
                         "mems:",
                         "mems:1,",
                         "mems:-1",
                         "mems:1,,2",
                         "mems:99999999999999999999999",
                         "mems:1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        setenv("M40LLM_TEST_GPU_SIM", bad[i], 1);
        gpu_diag_probe(&f);
        CHECKF(!f.cuda_build || f.n_gpu < 1 || !strstr(f.gpu[0].name, "(simulated)"),
               "%s was taken", bad[i]);
    }
    unsetenv("M40LLM_TEST_GPU_SIM");
}

int main(void) {
    test_arch_rules();
    test_usable();
    test_no_cuda_build();
    test_no_driver();
    test_old_driver();
    test_arch_mismatch();
    test_memory();
    test_split_default();
    test_model_bytes();
    test_bad_index();
    test_hook();
    return check_summary("test_gpu_diag");
}
