#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "gpu_diag.h"
#include "m40llm.h"

typedef struct cli_command {
    const char *name;
    int (*fn)(int argc, char **argv);
    const char *usage;
} cli_command;

static const cli_command cli_commands[] = {
    {"pull", cmd_pull,
     "pull MODEL [--name NAME] [--force]   download a model into the store (--aliases)"},
    {"list", cmd_list,
     "list [--json]                 models of the store, Ollama and the HF / llama.cpp caches"},
    {"rm", cmd_rm, "rm MODEL...                   remove models from the store"},
    {"cp", cmd_cp, "cp SRC DST                    a second name for a model of the store"},
    {"show", cmd_show, "show FILE|MODEL [--json] [--full]   metadata and tensor table of a GGUF"},
    {"perplexity", cmd_perplexity,
     "perplexity MODEL (TEXTFILE | --tokens FILE) [--ctx N] [--threads N] [--device D]"},
    {"bench", cmd_bench,
     "bench MODEL [-p 512] [-n 128] [-r 3] [--threads N] [--device D] [--ctx N] [--kv f32|f16] "
     "[--json]"},
    {"info", cmd_info, "info [--no-bandwidth]        GPUs: memory, temperature, clocks, bandwidth"},
    {"dump-tensor", cmd_dump_tensor,
     "dump-tensor FILE OUT [NAME...]   dequantized FP32 values (raw LE float32)"},
    {"tokenize", cmd_tokenize,
     "tokenize MODEL (TEXT | -) [--add-special] [--parse-special] [--pieces]"},
    {"run", cmd_run,
     "run MODEL [PROMPT] [-n N] [--temp T] [--raw] [--system TEXT] [--stop STR] ...  (--help)"},
    {"ps", cmd_ps, "ps [--host URL] [--json]      models a running server has loaded"},
    {"stop", cmd_stop, "stop MODEL [--host URL]       unload a model from a running server"},
    {"serve", cmd_serve,
     "serve [--addr 127.0.0.1:8080] [--model MODEL] [--api-key KEY] [--ctx N] [--max-seqs N] "
     "...  (--help)"},
    {"template", cmd_template,
     "template TEMPLATE MESSAGES_JSON [--add-generation-prompt] [--bos TEXT] [--eos TEXT]"},
};

static void cli_usage(FILE *f) {
    fprintf(f, "usage: m40-llm COMMAND [ARGS]\n\ncommands:\n");
    for (size_t i = 0; i < sizeof cli_commands / sizeof cli_commands[0]; i++)
        fprintf(f, "  %s\n", cli_commands[i].usage);
    fprintf(f, "  version\n\n'm40-llm COMMAND --help' describes a command.\n");
}

int cli_fail(const char *what, int status) {
    const char *msg = m40llm_last_error();
    if (!msg || !*msg) msg = m40llm_status_str(status);
    /* messages quote names from model files: escape what could drive the terminal */
    fputs("m40-llm: ", stderr);
    cli_put_escaped(stderr, what, strlen(what), 0);
    fputs(": ", stderr);
    cli_put_escaped(stderr, msg, strlen(msg), 0);
    fputc('\n', stderr);
    return 1;
}

long cli_parse_long(const char *opt, const char *val, long min, long max) {
    char *end = NULL;
    if (!val) {
        fprintf(stderr, "m40-llm: %s needs a value\n", opt);
        return -1;
    }
    long v = strtol(val, &end, 10);
    if (end == val || *end != '\0' || v < min || v > max) {
        fprintf(stderr, "m40-llm: %s: '%s' is not a number in %ld..%ld\n", opt, val, min, max);
        return -1;
    }
    return v;
}

bool cli_parse_u64(const char *s, uint64_t *out) {
    /* strtoull alone takes "-1" (as 2^64-1) and leading blanks */
    if (!s || !isdigit((unsigned char)s[0])) return false;
    char *end = NULL;
    errno = 0;
    unsigned long long v = strtoull(s, &end, 10);
    if (*end || errno == ERANGE) return false;
    *out = (uint64_t)v;
    return true;
}

static int cli_main(int argc, char **argv) {
    if (argc < 2 || !strcmp(argv[1], "-h") || !strcmp(argv[1], "--help") ||
        !strcmp(argv[1], "help")) {
        cli_usage(argc < 2 ? stderr : stdout);
        return argc < 2 ? 2 : 0;
    }
    if (!strcmp(argv[1], "version") || !strcmp(argv[1], "--version")) {
        printf("m40-llm %s\n", m40llm_version());
        gpu_diag_facts f = {0};
        gpu_diag_build_facts(&f);
        char archs[160];
        if (f.cuda_build)
            printf("CUDA runtime %d.%d, architectures %s (%s)\n", f.runtime_version / 1000,
                   f.runtime_version % 1000 / 10, f.archs,
                   gpu_diag_archs_text(f.archs, archs, sizeof archs));
        else
            printf("built without CUDA (CPU backend only)\n");
        return 0;
    }
    if (!strcmp(argv[1], "ls")) argv[1] = (char *)"list"; /* as ollama ls */
    for (size_t i = 0; i < sizeof cli_commands / sizeof cli_commands[0]; i++)
        if (!strcmp(argv[1], cli_commands[i].name)) return cli_commands[i].fn(argc - 1, argv + 1);
    fprintf(stderr, "m40-llm: unknown command '%s'\n", argv[1]);
    cli_usage(stderr);
    return 2;
}

int main(int argc, char **argv) {
    /* every command's output is checked here once: a full disk or a closed
     * stdout is an error, never a silent exit 0 */
    return cli_finish_output(cli_main(argc, argv));
}
