/* GPU diagnostics: the decision (pure), the printed lines and the probe's
 * test hook. See gpu_diag.h. */
#include "gpu_diag.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

/* The oldest Linux driver branch that supports a CUDA version (NVIDIA's CUDA
 * release notes, table 3), for "install driver R___ or newer". */
static int driver_branch(int cuda_version) {
    static const struct {
        int cuda, branch;
    } t[] = {{11000, 450}, {11010, 455}, {11020, 460}, {11030, 465}, {11040, 470},
             {11050, 495}, {11060, 510}, {11070, 515}, {11080, 520}, {12000, 525},
             {12010, 530}, {12020, 535}, {12030, 545}, {12040, 550}, {12050, 555},
             {12060, 560}, {12080, 570}, {12090, 575}, {13000, 580}};
    int b = 0;
    for (size_t i = 0; i < sizeof t / sizeof t[0]; i++)
        if (t[i].cuda <= cuda_version) b = t[i].branch;
    return b;
}

/* Calls fn(number, sass, ptx, ctx) for each entry of a CMake architecture
 * list; "all", "all-major" and "native" give number 0 (runs anywhere this
 * build was meant for). */
static bool archs_any(const char *archs, int cc, bool want_sass, bool want_ptx) {
    if (!archs) return false;
    const char *s = archs;
    while (*s) {
        size_t n = strcspn(s, ";, ");
        char tok[32];
        if (n > 0 && n < sizeof tok) {
            memcpy(tok, s, n);
            tok[n] = 0;
            if (!strncmp(tok, "all", 3) || !strcmp(tok, "native")) return true;
            char *end;
            long a = strtol(tok, &end, 10);
            bool sass = strcmp(end, "-virtual") != 0, ptx = strcmp(end, "-real") != 0;
            if (end != tok && a > 0) {
                /* machine code runs on the same major version, same or newer minor */
                if (want_sass && sass && a / 10 == cc / 10 && a <= cc) return true;
                if (want_ptx && ptx && a <= cc) return true;
            }
        }
        s += n;
        while (*s == ';' || *s == ',' || *s == ' ') s++;
    }
    return false;
}

bool gpu_diag_arch_runs(const char *archs, int cc_major, int cc_minor) {
    return archs_any(archs, cc_major * 10 + cc_minor, true, true);
}

bool gpu_diag_needs_jit(const char *archs, int cc_major, int cc_minor) {
    int cc = cc_major * 10 + cc_minor;
    return !archs_any(archs, cc, true, false) && archs_any(archs, cc, false, true);
}

const char *gpu_diag_archs_text(const char *archs, char *buf, size_t size) {
    size_t len = 0;
    buf[0] = 0;
    const char *s = archs ? archs : "";
    while (*s && len + 1 < size) {
        size_t n = strcspn(s, ";, ");
        char tok[32] = "";
        if (n > 0 && n < sizeof tok) memcpy(tok, s, n);
        char *end;
        long a = strtol(tok, &end, 10);
        int w;
        const char *sep = len ? ", " : "";
        if (end == tok || a <= 0)
            w = snprintf(buf + len, size - len, "%s%s", sep, tok);
        else if (!strcmp(end, "-virtual"))
            w = snprintf(buf + len, size - len, "%scompute_%ld PTX", sep, a);
        else if (!strcmp(end, "-real"))
            w = snprintf(buf + len, size - len, "%ssm_%ld", sep, a);
        else
            w = snprintf(buf + len, size - len, "%ssm_%ld + compute_%ld PTX", sep, a, a);
        if (w < 0 || (size_t)w >= size - len) break;
        len += (size_t)w;
        s += n;
        while (*s == ';' || *s == ',' || *s == ' ') s++;
    }
    return buf;
}

static void version_text(int v, char *buf, size_t size) {
    snprintf(buf, size, "%d.%d", v / 1000, v % 1000 / 10);
}

/* "install driver R520 or newer (CUDA 11.8)" */
static void driver_advice(int need, char *buf, size_t size) {
    char vs[16];
    version_text(need, vs, sizeof vs);
    int b = driver_branch(need);
    if (b)
        snprintf(buf, size, "install NVIDIA driver %d or newer (CUDA %s)", b, vs);
    else
        snprintf(buf, size, "install an NVIDIA driver that supports CUDA %s", vs);
}

/* No usable GPU holds the model alone: the ones short only of memory (and
 * with at least GPU_DIAG_SPLIT_SLACK free: a card another process fills
 * would fail its share), together, if they have room (gpu_diag_decide). */
static bool split_over(const gpu_diag_facts *f, int listed, uint64_t need, gpu_diag_result *r) {
    double room = 0; /* (a double: the sum of 16 cards' bytes cannot wrap) */
    int k = 0;
    for (int i = 0; i < listed; i++)
        if (r->gpu[i] == GPU_DIAG_MEMORY && f->gpu[i].mem_free >= GPU_DIAG_SPLIT_SLACK) {
            room += (double)f->gpu[i].mem_free;
            r->split[k++] = i;
        }
    if (k < 2 || room < (double)need + (double)(k - 1) * GPU_DIAG_SPLIT_SLACK) {
        memset(r->split, 0, sizeof r->split);
        return false;
    }
    r->n_split = k;
    r->device = r->split[0];
    for (int j = 0; j < k; j++) r->gpu[r->split[j]] = GPU_DIAG_USABLE;
    char list[64];
    snprintf(r->line, sizeof r->line,
             "the model needs %.2f GiB, more than any one GPU has free: its layers are split "
             "over GPUs %s (choose with --gpus)",
             need / 1073741824.0, gpu_diag_split_list(r, list, sizeof list));
    return true;
}

const char *gpu_diag_split_list(const gpu_diag_result *r, char *buf, size_t size) {
    if (!size) return buf;
    buf[0] = '\0';
    size_t len = 0;
    for (int j = 0; r->n_split > 1 && j < r->n_split && j < GPU_DIAG_MAX; j++) {
        int w = snprintf(buf + len, size - len, "%s%d", j ? "," : "", r->split[j]);
        if (w < 0 || (size_t)w >= size - len) break;
        len += (size_t)w;
    }
    return buf;
}

void gpu_diag_decide(const gpu_diag_facts *f, int want, uint64_t need_bytes, gpu_diag_result *r) {
    memset(r, 0, sizeof *r);
    r->device = -1;
    int listed = f->n_gpu < GPU_DIAG_MAX ? f->n_gpu : GPU_DIAG_MAX;
    char archs[160], have[16], need[16], what[160];
    gpu_diag_archs_text(f->archs, archs, sizeof archs);
    version_text(f->driver_version, have, sizeof have);
    /* the runtime refuses a driver older than its major version (minor
     * version compatibility covers the rest, but not PTX compilation) */
    int min_all = f->runtime_version / 1000 * 1000;
    if (!f->cuda_build) {
        r->why = GPU_DIAG_NO_CUDA_BUILD;
        snprintf(
            r->line, sizeof r->line,
            "no GPU used: this m40-llm was built without CUDA; running on the CPU. For the "
            "GPU, build with CUDA 11.8 (README: Building by hand) or install the CUDA package");
        return;
    }
    if (f->driver_version <= 0) {
        r->why = GPU_DIAG_NO_DRIVER;
        driver_advice(f->runtime_version, what, sizeof what);
        snprintf(r->line, sizeof r->line,
                 "no GPU used: no NVIDIA driver found (libcuda.so.1); running on the CPU. To use "
                 "a GPU, %s",
                 what);
        return;
    }
    if (f->driver_version < min_all) {
        r->why = GPU_DIAG_OLD_DRIVER;
        version_text(min_all, need, sizeof need);
        driver_advice(f->runtime_version, what, sizeof what);
        what[0] = 'I'; /* a sentence of its own */
        snprintf(r->line, sizeof r->line,
                 "no GPU used: the driver supports CUDA %s, this build's CUDA runtime needs at "
                 "least %s; running on the CPU. %s",
                 have, need, what);
        for (int i = 0; i < listed; i++) r->gpu[i] = GPU_DIAG_OLD_DRIVER;
        return;
    }
    if (f->n_gpu <= 0) {
        r->why = GPU_DIAG_NO_GPU;
        snprintf(r->line, sizeof r->line,
                 "no GPU used: the driver (CUDA %s) reports no GPU%s%s; running on the CPU. Check "
                 "nvidia-smi and CUDA_VISIBLE_DEVICES",
                 have, f->probe_error[0] ? ": " : "", f->probe_error);
        return;
    }
    if (want >= f->n_gpu) {
        r->why = GPU_DIAG_BAD_INDEX;
        snprintf(r->line, sizeof r->line,
                 "no GPU used: cuda:%d does not exist (%d GPU%s: cuda:0%s); running on the CPU. "
                 "Pick one of them with --device",
                 want, f->n_gpu, f->n_gpu == 1 ? "" : "s", f->n_gpu == 1 ? "" : " ...");
        return;
    }
    int first_bad = -1;
    for (int i = 0; i < listed; i++) {
        const gpu_diag_gpu *g = &f->gpu[i];
        gpu_diag_reason why = GPU_DIAG_USABLE;
        r->min_driver[i] = min_all;
        if (!gpu_diag_arch_runs(f->archs, g->cc_major, g->cc_minor)) {
            why = GPU_DIAG_ARCH;
        } else if (gpu_diag_needs_jit(f->archs, g->cc_major, g->cc_minor)) {
            /* PTX of this toolkit needs a driver at least as new to compile it */
            r->min_driver[i] = f->runtime_version;
            if (f->driver_version < f->runtime_version) why = GPU_DIAG_OLD_DRIVER;
        }
        if (why == GPU_DIAG_USABLE && need_bytes && g->mem_free < need_bytes) why = GPU_DIAG_MEMORY;
        if (why == GPU_DIAG_USABLE && want >= 0 && i != want) why = GPU_DIAG_NOT_CHOSEN;
        r->gpu[i] = why;
        if (why == GPU_DIAG_USABLE && r->device < 0) r->device = i;
        if (why != GPU_DIAG_USABLE && why != GPU_DIAG_NOT_CHOSEN && (first_bad < 0 || i == want))
            first_bad = i;
    }
    if (r->device >= 0) {
        /* the others usable too are merely not chosen */
        for (int i = r->device + 1; i < listed; i++)
            if (r->gpu[i] == GPU_DIAG_USABLE) r->gpu[i] = GPU_DIAG_NOT_CHOSEN;
        return;
    }
    if (want < 0 && need_bytes && split_over(f, listed, need_bytes, r)) return;
    int b = want >= 0 ? want : first_bad < 0 ? 0 : first_bad;
    const gpu_diag_gpu *g = &f->gpu[b];
    r->why = r->gpu[b];
    char which[32];
    if (want >= 0 || f->n_gpu == 1)
        snprintf(which, sizeof which, "GPU %d", b);
    else
        snprintf(which, sizeof which, "no GPU fits (GPU %d", b);
    const char *close = want >= 0 || f->n_gpu == 1 ? "" : ")";
    switch (r->why) {
    case GPU_DIAG_ARCH:
        snprintf(r->line, sizeof r->line,
                 "no GPU used: %s%s has compute capability %d.%d, not in this build's "
                 "architectures (%s); running on the CPU. Rebuild with "
                 "-DM40LLM_CUDA_ARCHS=%d%d (a toolkit that supports it)",
                 which, close, g->cc_major, g->cc_minor, archs, g->cc_major, g->cc_minor);
        break;
    case GPU_DIAG_OLD_DRIVER:
        version_text(r->min_driver[b], need, sizeof need);
        driver_advice(r->min_driver[b], what, sizeof what);
        what[0] = 'I';
        snprintf(r->line, sizeof r->line,
                 "no GPU used: %s%s (compute %d.%d) runs this build's PTX (%s) only with a driver "
                 "for CUDA %s or newer, this one supports CUDA %s; running on the CPU. %s",
                 which, close, g->cc_major, g->cc_minor, archs, need, have, what);
        break;
    case GPU_DIAG_MEMORY:
        snprintf(r->line, sizeof r->line,
                 "no GPU used: %s%s has %llu bytes free (%.2f GiB), the model needs %llu bytes "
                 "(%.2f GiB); running on the CPU. Free GPU memory (nvidia-smi) or use a smaller "
                 "quantization",
                 which, close, (unsigned long long)g->mem_free, g->mem_free / 1073741824.0,
                 (unsigned long long)need_bytes, need_bytes / 1073741824.0);
        break;
    default:
        snprintf(r->line, sizeof r->line, "no GPU used; running on the CPU");
        break;
    }
}

void gpu_diag_print(FILE *out, const char *prefix, const gpu_diag_facts *f,
                    const gpu_diag_result *r, bool listing) {
    int listed = f->n_gpu < GPU_DIAG_MAX ? f->n_gpu : GPU_DIAG_MAX;
    char drv[16];
    version_text(f->driver_version, drv, sizeof drv);
    for (int i = 0; i < listed; i++) {
        const gpu_diag_gpu *g = &f->gpu[i];
        const char *state;
        switch (r->gpu[i]) {
        case GPU_DIAG_USABLE:
            state = "used";
            break;
        case GPU_DIAG_NOT_CHOSEN:
            state = "not used (another GPU was chosen)";
            break;
        case GPU_DIAG_ARCH:
            state = "not used (architecture not in this build)";
            break;
        case GPU_DIAG_OLD_DRIVER:
            state = "not used (driver too old)";
            break;
        case GPU_DIAG_MEMORY:
            state = "not used (too little free memory)";
            break;
        default:
            state = "not used";
            break;
        }
        if (i == r->device || r->gpu[i] == GPU_DIAG_USABLE) state = "used";
        if (listing && (r->gpu[i] == GPU_DIAG_USABLE || r->gpu[i] == GPU_DIAG_NOT_CHOSEN))
            state = "usable"; /* `info` chooses none */
        fprintf(out, "%sGPU %d: %s, compute %d.%d, driver CUDA %s, %.2f GiB free: %s\n", prefix, i,
                g->name, g->cc_major, g->cc_minor, drv, g->mem_free / 1073741824.0, state);
    }
    if (f->n_gpu > listed) fprintf(out, "%s(%d more GPUs not listed)\n", prefix, f->n_gpu - listed);
    if (r->device < 0 || (r->n_split > 1 && !listing)) fprintf(out, "%s%s\n", prefix, r->line);
}

/* The test hook: one simulated Tesla M40 with one fact changed, or several
 * of them (mems:). */
static bool simulate(gpu_diag_facts *f, const char *sim) {
    /* a driver new enough for this build's runtime */
    f->driver_version = f->runtime_version > 12020 ? f->runtime_version : 12020;
    f->n_gpu = 1;
    gpu_diag_gpu *g = &f->gpu[0];
    snprintf(g->name, sizeof g->name, "Tesla M40 24GB (simulated)");
    g->cc_major = 5;
    g->cc_minor = 2;
    g->mem_total = 25769803776ull;
    g->mem_free = 25000000000ull;
    const char *arg = strchr(sim, ':');
    long long v = arg ? strtoll(arg + 1, NULL, 10) : 0;
    if (!strcmp(sim, "none")) {
        f->driver_version = 0;
        f->n_gpu = 0;
    } else if (!strcmp(sim, "no-gpu")) {
        f->n_gpu = 0;
    } else if (!strncmp(sim, "old-driver:", 11)) {
        f->driver_version = (int)v;
    } else if (!strncmp(sim, "arch:", 5)) {
        g->cc_major = (int)(v / 10);
        g->cc_minor = (int)(v % 10);
    } else if (!strncmp(sim, "mem:", 4)) {
        g->mem_free = (uint64_t)v;
    } else if (!strncmp(sim, "mems:", 5)) {
        /* one GPU per listed free size, of an architecture this build runs
         * (5.2, else its first one) */
        int cc = 52;
        if (!gpu_diag_arch_runs(f->archs, 5, 2) && f->archs) {
            const char *d = f->archs + strcspn(f->archs, "0123456789");
            cc = (int)strtol(d, NULL, 10);
            if (cc < 10) cc = 52;
        }
        const char *q = sim + 5;
        f->n_gpu = 0;
        do { /* 1..GPU_DIAG_MAX decimal byte counts, comma-separated */
            char *end = NULL;
            if (*q < '0' || *q > '9' || f->n_gpu == GPU_DIAG_MAX) return false;
            errno = 0;
            const unsigned long long b = strtoull(q, &end, 10);
            if (errno || (*end && *end != ',')) return false;
            gpu_diag_gpu *gi = &f->gpu[f->n_gpu++];
            *gi = *g;
            gi->cc_major = cc / 10;
            gi->cc_minor = cc % 10;
            gi->mem_free = b;
            q = *end ? end + 1 : end;
        } while (*q || q[-1] == ',');
    } else if (strcmp(sim, "m40")) {
        return false;
    }
    return true;
}

void gpu_diag_probe(gpu_diag_facts *f) {
    memset(f, 0, sizeof *f);
    gpu_diag_build_facts(f);
    /* M40LLM_TEST_GPU_SIM: the only place it is read (tests; README) */
    const char *sim = getenv("M40LLM_TEST_GPU_SIM");
    if (sim && *sim) {
        if (simulate(f, sim)) return;
        memset(f, 0, sizeof *f); /* an unknown form: the real probe, from scratch */
        gpu_diag_build_facts(f);
    }
    if (f->cuda_build) gpu_diag_probe_devices(f);
}
