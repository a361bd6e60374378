/* m40-llm info: the GPUs this build can use, their memory, temperature and
 * clocks, and the device copy bandwidth that bounds decode speed. */
#include <stdio.h>
#include <string.h>

#include "cli.h"
#include "gpu_diag.h"
#include "m40llm.h"

int cmd_info(int argc, char **argv) {
    int measure = 1;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--no-bandwidth")) {
            measure = 0;
        } else if (!strcmp(argv[i], "-h") || !strcmp(argv[i], "--help")) {
            printf("usage: m40-llm info [--no-bandwidth]\n");
            return 0;
        } else {
            fprintf(stderr, "usage: m40-llm info [--no-bandwidth]\n");
            return 2;
        }
    }
    printf("m40-llm %s\n", m40llm_version());
    /* every GPU with its compute capability, the driver and whether this
     * build can use it; when none, why and what to do (the same lines and
     * decision as run/bench print) */
    gpu_diag_facts f;
    gpu_diag_result r;
    gpu_diag_probe(&f);
    gpu_diag_decide(&f, -1, 0, &r);
    gpu_diag_print(stdout, "", &f, &r, true);
    if (r.device < 0) return 0; /* the line said why and that the CPU runs */
    int n = 0;
    m40llm_gpu_count(&n);
    for (int d = 0; d < n; d++) {
        if (d < GPU_DIAG_MAX && r.gpu[d] != GPU_DIAG_USABLE && r.gpu[d] != GPU_DIAG_NOT_CHOSEN)
            continue;
        m40llm_gpu_info g;
        int rc = m40llm_gpu_query(d, &g);
        if (rc) {
            fprintf(stderr, "m40-llm: GPU %d: %s\n", d, m40llm_last_error());
            continue;
        }
        printf("cuda:%d  %s\n", d, g.name);
        printf("  compute capability  %d.%d (%d multiprocessors)%s\n", g.cc_major, g.cc_minor,
               g.sm_count, g.cc_major == 5 && g.cc_minor == 2 ? "  [Maxwell sm_52]" : "");
        printf("  memory              %.2f GiB total, %.2f GiB free\n", g.mem_total / 1073741824.0,
               g.mem_free / 1073741824.0);
        if (g.have_nvml) {
            printf("  temperature         %d C\n", g.temperature_c);
            printf("  clocks              SM %d MHz (max %d), memory %d MHz (max %d)\n",
                   g.sm_clock_mhz, g.sm_clock_max_mhz, g.mem_clock_mhz, g.mem_clock_max_mhz);
        } else {
            printf("  temperature/clocks  unavailable: %s\n", g.nvml_error);
        }
        if (measure) {
            double bw = 0;
            if (m40llm_gpu_copy_bandwidth(d, &bw))
                printf("  copy bandwidth      failed: %s\n", m40llm_last_error());
            else
                printf("  copy bandwidth      %.1f GB/s (device-to-device, read + write)\n", bw);
        }
    }
    return 0;
}
