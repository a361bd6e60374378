/* m40-llm pull MODEL [--name NAME] [--force] [--quiet] | pull --aliases
 * Downloads a model into the store (src/store/pull.h) with a progress bar
 * on a terminal, or a plain line every few seconds otherwise. */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "cli.h"
#include "err.h"
#include "store/pull.h"

#define PULL_LINE_EVERY 5.0 /* seconds between plain progress lines */

typedef struct pull_view {
    bool tty, quiet;
    double last;
    char file[256];
    bool open_line; /* a \r line is on the terminal */
} pull_view;

static double mono(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

void cli_human_bytes(uint64_t b, char *out, size_t n) {
    const char *u[] = {"B", "KB", "MB", "GB", "TB"};
    double v = (double)b;
    int i = 0;
    while (v >= 1000 && i < 4) {
        v /= 1000;
        i++;
    }
    snprintf(out, n, i ? "%.1f %s" : "%.0f %s", v, u[i]);
}

static int on_progress(void *user, const pull_progress *p) {
    pull_view *v = user;
    if (v->quiet) return 0;
    if (!p->file) {
        if (v->open_line) fputc('\n', stderr);
        v->open_line = false;
        fprintf(stderr, "%s\n", p->status);
        return 0;
    }
    double t = mono();
    bool new_file = strcmp(v->file, p->file) != 0;
    if (new_file) snprintf(v->file, sizeof v->file, "%s", p->file);
    if (!v->tty && !new_file && !p->done && t - v->last < PULL_LINE_EVERY) return 0;
    if (v->tty && !p->done && !new_file && t - v->last < 0.1) return 0;
    v->last = t;
    char done[32], total[32], speed[32];
    cli_human_bytes(p->completed, done, sizeof done);
    cli_human_bytes(p->total, total, sizeof total);
    cli_human_bytes((uint64_t)p->speed, speed, sizeof speed);
    int pct = p->total ? (int)(100.0 * (double)p->completed / (double)p->total) : 0;
    double eta =
        p->speed > 0 && p->total > p->completed ? (double)(p->total - p->completed) / p->speed : 0;
    char part[32] = "";
    if (p->n_parts > 1) snprintf(part, sizeof part, " [%d/%d]", p->part, p->n_parts);
    if (v->tty) {
        char bar[41];
        int fill = p->total ? pct * 40 / 100 : 0;
        for (int i = 0; i < 40; i++) bar[i] = i < fill ? '#' : ' ';
        bar[40] = '\0';
        fputs("\r\033[K", stderr);
        cli_put_escaped(stderr, p->file, strlen(p->file), 0);
        fprintf(stderr, "%s %3d%% [%s] %s/%s %s/s", part, pct, bar, done, total, speed);
        if (eta > 0) fprintf(stderr, " ETA %ds", (int)eta);
        v->open_line = true;
        if (p->done) {
            fputc('\n', stderr);
            v->open_line = false;
        }
    } else {
        fputs("pulling ", stderr);
        cli_put_escaped(stderr, p->file, strlen(p->file), 0);
        fprintf(stderr, "%s: %s of %s (%d%%), %s/s\n", part, done, total, pct, speed);
    }
    return 0;
}

static int usage(FILE *f) {
    fprintf(
        f, "usage: m40-llm pull MODEL [--name NAME] [--force] [--quiet]\n"
           "       m40-llm pull --aliases\n"
           "  MODEL: an alias (--aliases lists them), hf.co/OWNER/REPO[:QUANT] (Q4_K_M by\n"
           "         default; every part of a split model), hf.co/OWNER/REPO/FILE.gguf, or an\n"
           "         https:// URL of a GGUF file\n"
           "  --name NAME  register the model under NAME (default: the alias, "
           "hf.co/owner/repo:quant,\n"
           "               or the URL's file name)\n"
           "  --force      pull an alias whose architecture this engine cannot run yet\n"
           "  --quiet      no progress\n"
           "  The store is $M40LLM_HOME (default ~/.m40llm). An interrupted pull resumes when run\n"
           "  again. Hugging Face: HF_TOKEN for gated models; M40LLM_HF_ENDPOINT or HF_ENDPOINT\n"
           "  for a mirror. M40LLM_PULL_RETRIES (default 4), M40LLM_PULL_STALL_S (default 30).\n");
    return f == stdout ? 0 : 2;
}

static int list_aliases(void) {
    printf("%-14s %-8s %-44s %s\n", "ALIAS", "ARCH", "HUGGING FACE REPOSITORY", "FILE");
    for (const pull_alias *a = pull_aliases(); a->name; a++)
        printf("%-14s %-8s %-44s %s%s\n", a->name, a->arch, a->repo, a->file,
               pull_arch_supported(a->arch) ? "" : "  (architecture not supported yet)");
    return cli_flush_stdout() ? 0 : 1;
}

int cmd_pull(int argc, char **argv) {
    const char *spec = NULL;
    pull_opts o = {0};
    pull_view v = {.tty = isatty(2) == 1};
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "-h") || !strcmp(argv[i], "--help")) return usage(stdout);
        if (!strcmp(argv[i], "--aliases")) return list_aliases();
        if (!strcmp(argv[i], "--force")) {
            o.force = true;
        } else if (!strcmp(argv[i], "--quiet") || !strcmp(argv[i], "-q")) {
            v.quiet = true;
        } else if (!strcmp(argv[i], "--name")) {
            if (++i >= argc) {
                fprintf(stderr, "m40-llm: pull: --name needs a value\n");
                return 2;
            }
            o.name = argv[i];
        } else if (argv[i][0] == '-' || spec) {
            fprintf(stderr, "m40-llm: pull: unexpected argument '");
            cli_put_escaped(stderr, argv[i], strlen(argv[i]), 0);
            fprintf(stderr, "'\n");
            return usage(stderr);
        } else {
            spec = argv[i];
        }
    }
    if (!spec) return usage(stderr);
    o.progress = on_progress;
    o.user = &v;
    pull_result r;
    int rc = pull_model(spec, &o, &r);
    if (v.open_line) fputc('\n', stderr);
    if (rc) return cli_fail("pull", rc);
    char sz[32];
    cli_human_bytes(r.size, sz, sizeof sz);
    printf("%s: %s, %s (%" PRIu64 " bytes downloaded)\n", r.name, sz,
           r.already ? "already up to date" : "pulled", r.downloaded);
    return cli_flush_stdout() ? 0 : 1;
}
