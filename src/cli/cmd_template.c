/* m40-llm template TEMPLATE MESSAGES_JSON [--add-generation-prompt] [--bos TEXT] [--eos TEXT]
 * Renders a chat template and prints the result exactly. TEMPLATE is a GGUF
 * model (its own template and BOS/EOS texts), a template file, or a built-in
 * name; MESSAGES_JSON is a file holding a JSON list of {role, content}
 * ("-" reads standard input). */
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "chat.h"
#include "cli.h"
#include "err.h"
#include "fileio.h"
#include "gguf.h"
#include "store/store.h"

/* True for a regular file starting with the GGUF magic; anything else
 * (absent, a FIFO) goes to chat_template_for, which says what is wrong. */
static bool is_gguf(const char *path) {
    int fd;
    if (fileio_open_read(path, &fd, NULL) != M40LLM_OK) return false;
    char magic[4] = {0};
    bool yes = read(fd, magic, 4) == 4 && !memcmp(magic, "GGUF", 4);
    close(fd);
    return yes;
}

static int usage(FILE *f) {
    fprintf(f,
            "usage: m40-llm template TEMPLATE MESSAGES_JSON [--add-generation-prompt] "
            "[--bos TEXT] [--eos TEXT]\n"
            "  TEMPLATE: a GGUF model (path or MODEL name), a .jinja file, or one of: %s\n",
            chat_builtin_names());
    return 2;
}

int cmd_template(int argc, char **argv) {
    const char *tpath = NULL, *mpath = NULL, *bos_arg = NULL, *eos_arg = NULL;
    bool agp = false;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--add-generation-prompt")) {
            agp = true;
        } else if (!strcmp(argv[i], "--bos") || !strcmp(argv[i], "--eos")) {
            if (i + 1 >= argc) {
                fprintf(stderr, "m40-llm: %s needs a value\n", argv[i]);
                return 2;
            }
            *(argv[i][2] == 'b' ? &bos_arg : &eos_arg) = argv[i + 1];
            i++;
        } else if (!strcmp(argv[i], "-h") || !strcmp(argv[i], "--help")) {
            usage(stdout);
            return 0;
        } else if (argv[i][0] == '-' && argv[i][1] != '\0') {
            fprintf(stderr, "m40-llm: template: unknown option '%s'\n", argv[i]);
            return usage(stderr);
        } else if (!tpath) {
            tpath = argv[i];
        } else if (!mpath) {
            mpath = argv[i];
        } else {
            return usage(stderr);
        }
    }
    if (!tpath || !mpath) return usage(stderr);

    char *tmpl = NULL, *bos = NULL, *eos = NULL;
    int rc;
    /* a model name (store, ollama:, hf:) stands for its GGUF; a file or a
     * built-in template name is taken as it is */
    struct stat st;
    store_model *sm = stat(tpath, &st) != 0 ? calloc(1, sizeof *sm) : NULL;
    if (sm && store_resolve(tpath, sm) == M40LLM_OK && sm->origin != STORE_PATH &&
        is_gguf(sm->path))
        tpath = sm->path;
    if (is_gguf(tpath)) {
        gguf_file *g = NULL;
        rc = gguf_open(tpath, &g);
        if (rc != M40LLM_OK) {
            free(sm);
            return cli_fail("template", rc); /* the message names the file */
        }
        rc = chat_model_template(g, &tmpl, &bos, &eos);
        gguf_close(g);
        if (rc != M40LLM_OK) {
            rc = cli_fail(tpath, rc);
            free(sm);
            return rc;
        }
        if (!tmpl) {
            fprintf(stderr, "m40-llm: warning: %s has no chat template; using ChatML\n", tpath);
            tmpl = strdup(chat_template_chatml);
        }
    } else {
        rc = chat_template_for(tpath, &tmpl);
        if (rc != M40LLM_OK) {
            free(sm);
            return cli_fail("template", rc);
        }
    }

    char *mtext = NULL;
    size_t mlen = 0;
    rc = strcmp(mpath, "-")
             ? fileio_read_file(mpath, FILEIO_CAP_JSON, "a messages JSON file", &mtext, &mlen)
             : cli_read_stdin(FILEIO_CAP_JSON, "messages JSON", &mtext, &mlen);
    const char *mname = strcmp(mpath, "-") ? mpath : "standard input";
    /* NUL characters are refused: cJSON would silently end a string there */
    if (rc == M40LLM_OK) rc = cli_json_check(mtext, mlen, mname);
    const char *json_end = NULL;
    cJSON *messages = rc == M40LLM_OK ? cJSON_ParseWithOpts(mtext, &json_end, true) : NULL;
    int status = 1;
    if (rc != M40LLM_OK) {
        cli_fail("template", rc);
    } else if (!messages) {
        /* json_end points where parsing stopped */
        size_t at = json_end && json_end >= mtext ? (size_t)(json_end - mtext) : 0;
        fprintf(stderr, "m40-llm: template: %s: invalid JSON near byte %zu\n", mname, at);
    } else if (!cJSON_IsArray(messages)) {
        fprintf(stderr, "m40-llm: template: %s: expected a JSON list of {role, content} objects\n",
                mname);
    } else if (!tmpl) {
        fprintf(stderr, "m40-llm: template: out of memory\n");
    } else {
        char *out = NULL;
        rc = chat_render(tmpl, messages, agp,
                         bos_arg ? bos_arg
                         : bos   ? bos
                                 : "",
                         eos_arg ? eos_arg
                         : eos   ? eos
                                 : "",
                         &out);
        if (rc == M40LLM_OK) {
            size_t n = strlen(out);
            cli_put_text(stdout, out, n);
            status = cli_flush_stdout() ? 0 : 1; /* main reports a failed write */
            free(out);
        } else {
            status = cli_fail("template", rc);
        }
    }
    cJSON_Delete(messages);
    free(mtext);
    free(tmpl);
    free(bos);
    free(eos);
    free(sm);
    return status;
}
