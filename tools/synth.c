/* m40-synth: writes a random-weight GGUF of any shape and weight type: a
 * dense llama, or a mixture of experts (mixtral: a llama file with experts;
 * qwen3moe).
 *
 *   m40-synth --preset mistral-7b --type q4_0 -o /tmp/mistral-q4_0.gguf
 *   m40-synth --layers 2 --embd 256 --heads 8 --kv-heads 4 --ff 512 --vocab 512 \
 *             --type q4_k_m --tied -o tiny.gguf
 *   m40-synth --preset qwen3-30b-a3b --type q4_k_m -o /tmp/qwen3-30b-a3b-q4_k_m.gguf
 *   m40-synth --arch qwen3moe --experts 8 --experts-used 2 --ff-exp 64 -o tiny-moe.gguf
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "fileio.h"
#include "m40llm.h"
#include "quant.h"
#include "synth.h"

static void usage(FILE *f) {
    fprintf(f,
            "usage: m40-synth [options] -o OUT.gguf\n"
            "  --preset NAME     mistral-7b | smollm2-135m | tiny | mixtral-8x7b | qwen3-30b-a3b\n"
            "                    (default shape: tiny)\n"
            "  --arch A          llama (dense, default) | mixtral (llama file with experts) |\n"
            "                    qwen3moe (q/k norms, NeoX RoPE)\n"
            "  --layers N --embd N --heads N --kv-heads N --ff N --vocab N --ctx N\n"
            "  --head-dim N      head size (attention.key_length; default embd / heads)\n"
            "  --experts N --experts-used K   mixture of experts: K of N per token\n"
            "  --ff-exp N        qwen3moe: one expert's FFN width (default: --ff)\n"
            "  --rope-base X     rope frequency base      --eps X   RMSNorm epsilon\n"
            "  --type T          f32 f16 bf16 q8_0 q4_0 q4_1 q5_0 q5_1 q2_k q3_k q4_k q5_k q6_k\n"
            "                    q4_k_m q5_k_m (llama.cpp mixes)   (default f32)\n"
            "  --tied            no output.weight (logits use token_embd.weight)\n"
            "  --untied          output.weight present (default, except smollm2-135m)\n"
            "  --seed N          (default 1)     --std X   weight std (default 0.02)\n"
            "  --name S          general.name    --threads N (default: all CPUs)\n"
            "  -q, --quiet       no progress\n");
}

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec * 1e-9;
}

static int parse_int(const char *opt, const char *v, long min, long max, int *out) {
    char *end;
    errno = 0;
    long x = v ? strtol(v, &end, 10) : 0;
    if (!v || errno || end == v || *end || x < min || x > max) {
        fprintf(stderr, "m40-synth: %s: '%s' is not an integer in %ld..%ld\n", opt,
                v ? v : "(missing)", min, max);
        return -1;
    }
    *out = (int)x;
    return 0;
}

static int parse_float(const char *opt, const char *v, float *out) {
    char *end;
    float x = v ? strtof(v, &end) : 0.0f;
    if (!v || end == v || *end) {
        fprintf(stderr, "m40-synth: %s: '%s' is not a number\n", opt, v ? v : "(missing)");
        return -1;
    }
    *out = x;
    return 0;
}

typedef struct progress_state {
    double t0;
    bool quiet;
    bool tty;     /* redraw one line; otherwise a line per 10% */
    int next_pct; /* next 10% step to report when not a tty */
} progress_state;

static void on_progress(void *ctx, int index, int count, const char *tensor, int type,
                        uint64_t done, uint64_t total) {
    progress_state *p = ctx;
    if (p->quiet) return;
    double dt = now_s() - p->t0;
    double pct = total ? 100.0 * (double)done / (double)total : 100.0;
    if (!p->tty) {
        if (pct < p->next_pct && index != count) return;
        while (p->next_pct <= pct) p->next_pct += 10;
    }
    fprintf(stderr, "%s[%4d/%4d] %6.1f%% %7.2f GiB  %6.1f s  %-28s %-5s%s", p->tty ? "\r" : "",
            index, count, pct, (double)done / (1 << 30), dt, tensor,
            quant_info(type) ? quant_info(type)->name : "?", p->tty ? "" : "\n");
    if (p->tty && index == count) fputc('\n', stderr);
    fflush(stderr);
}

int main(int argc, char **argv) {
    synth_config c;
    synth_default_config(&c);
    const char *out = NULL;
    progress_state prog = {0};

    /* the preset first, so that explicit options override it wherever they appear */
    for (int i = 1; i < argc; i++)
        if (!strcmp(argv[i], "--preset")) {
            if (i + 1 >= argc || synth_preset(argv[i + 1], &c)) {
                fprintf(stderr, "m40-synth: %s\n", m40llm_last_error());
                return 2;
            }
        }
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        int bad = 0;
        if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
            usage(stdout);
            return 0;
        } else if (!strcmp(a, "--preset")) {
            i++;
        } else if (!strcmp(a, "--layers")) {
            bad = parse_int(a, v, 1, 100000, &c.n_layer), i++;
        } else if (!strcmp(a, "--embd")) {
            bad = parse_int(a, v, 1, 1 << 20, &c.n_embd), i++;
        } else if (!strcmp(a, "--heads")) {
            bad = parse_int(a, v, 1, 1 << 16, &c.n_head), i++;
        } else if (!strcmp(a, "--kv-heads")) {
            bad = parse_int(a, v, 1, 1 << 16, &c.n_head_kv), i++;
        } else if (!strcmp(a, "--ff")) {
            bad = parse_int(a, v, 1, 1 << 24, &c.n_ff), i++;
        } else if (!strcmp(a, "--arch")) {
            bad = !v;
            c.arch = v, i++;
        } else if (!strcmp(a, "--head-dim")) {
            bad = parse_int(a, v, 2, 1 << 16, &c.head_dim), i++;
        } else if (!strcmp(a, "--experts")) {
            bad = parse_int(a, v, 1, 1 << 16, &c.n_expert), i++;
        } else if (!strcmp(a, "--experts-used")) {
            bad = parse_int(a, v, 1, 1 << 16, &c.n_expert_used), i++;
        } else if (!strcmp(a, "--ff-exp")) {
            bad = parse_int(a, v, 1, 1 << 24, &c.n_ff_exp), i++;
        } else if (!strcmp(a, "--vocab")) {
            bad = parse_int(a, v, 260, 1 << 24, &c.n_vocab), i++;
        } else if (!strcmp(a, "--ctx")) {
            bad = parse_int(a, v, 1, 1 << 30, &c.n_ctx), i++;
        } else if (!strcmp(a, "--threads")) {
            bad = parse_int(a, v, 1, 256, &c.n_threads), i++;
        } else if (!strcmp(a, "--rope-base")) {
            bad = parse_float(a, v, &c.rope_base), i++;
        } else if (!strcmp(a, "--eps")) {
            bad = parse_float(a, v, &c.rms_eps), i++;
        } else if (!strcmp(a, "--std")) {
            bad = parse_float(a, v, &c.std), i++;
        } else if (!strcmp(a, "--seed")) {
            char *end;
            errno = 0;
            unsigned long long s = v ? strtoull(v, &end, 0) : 0;
            bad = !v || errno || end == v || *end;
            if (bad) fprintf(stderr, "m40-synth: --seed: '%s' is not an integer\n", v ? v : "");
            c.seed = s, i++;
        } else if (!strcmp(a, "--type")) {
            bad = !v;
            c.type = v, i++;
        } else if (!strcmp(a, "--name")) {
            bad = !v;
            c.name = v, i++;
        } else if (!strcmp(a, "-o") || !strcmp(a, "--output")) {
            bad = !v;
            out = v, i++;
        } else if (!strcmp(a, "--tied")) {
            c.tied = true;
        } else if (!strcmp(a, "--untied")) {
            c.tied = false;
        } else if (!strcmp(a, "-q") || !strcmp(a, "--quiet")) {
            prog.quiet = true;
        } else {
            fprintf(stderr, "m40-synth: unknown option '%s'\n", a);
            usage(stderr);
            return 2;
        }
        if (bad) {
            if (!v) fprintf(stderr, "m40-synth: %s needs a value\n", a);
            return 2;
        }
    }
    if (!out) {
        fprintf(stderr, "m40-synth: no output file (-o OUT.gguf)\n");
        usage(stderr);
        return 2;
    }
    /* the writer would write a device or FIFO at OUT in place (fileio_out),
     * where a failed write cannot be undone and opening a FIFO blocks until
     * a reader comes: a model belongs in a regular file, so refuse anything
     * else up front */
    struct stat st;
    if (stat(out, &st) == 0 && !S_ISREG(st.st_mode)) {
        fprintf(stderr, "m40-synth: %s: is %s, not a regular file\n", out, fileio_kind(st.st_mode));
        return 2;
    }
    if (synth_validate(&c)) {
        fprintf(stderr, "m40-synth: %s\n", m40llm_last_error());
        return 2;
    }
    c.progress = on_progress;
    c.progress_ctx = &prog;
    if (!prog.quiet)
        fprintf(stderr,
                "m40-synth: %s L%d E%d H%d KV%d FF%d V%d ctx %d rope %g eps %g, %s%s, std %g, "
                "seed %llu -> %s\n",
                c.arch, c.n_layer, c.n_embd, c.n_head, c.n_head_kv, c.n_ff, c.n_vocab, c.n_ctx,
                (double)c.rope_base, (double)c.rms_eps, c.type, c.tied ? " tied" : "",
                (double)c.std, (unsigned long long)c.seed, out);
    if (!prog.quiet && c.n_expert)
        fprintf(stderr, "m40-synth: %d experts, %d per token, expert FFN %d\n", c.n_expert,
                c.n_expert_used, c.n_ff_exp ? c.n_ff_exp : c.n_ff);
    if (!prog.quiet && c.head_dim)
        fprintf(stderr, "m40-synth: head size %d (attention %d wide)\n", c.head_dim,
                c.head_dim * c.n_head);
    prog.tty = isatty(fileno(stderr));
    prog.next_pct = 10;
    prog.t0 = now_s();
    uint64_t bytes = 0;
    int rc = synth_write(&c, out, &bytes);
    if (rc) {
        fprintf(stderr, "\nm40-synth: %s\n", m40llm_last_error());
        return 1;
    }
    double dt = now_s() - prog.t0;
    printf("%s: %llu bytes (%.2f GiB) in %.1f s\n", out, (unsigned long long)bytes,
           (double)bytes / (1 << 30), dt);
    return 0;
}
