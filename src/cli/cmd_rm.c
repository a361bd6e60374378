/* m40-llm rm MODEL...: removes models from the store (the manifest, then
 * every blob no other name uses). Models of Ollama, the Hugging Face cache
 * and llama.cpp's cache, and plain files, are never touched. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "cli.h"
#include "err.h"
#include "store/store.h"

/* The tool that owns a discovered model's files, or NULL. */
static const char *foreign_owner(const char *name) {
    if (!strncmp(name, "ollama:", 7)) return "Ollama ('ollama rm' removes it)";
    if (!strncmp(name, "hf:", 3)) return "the Hugging Face cache ('hf cache delete' removes it)";
    if (!strncmp(name, "llama:", 6)) return "llama.cpp's cache";
    return NULL;
}

int cmd_rm(int argc, char **argv) {
    int n = 0, failed = 0;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "-h") || !strcmp(argv[i], "--help")) {
            printf("usage: m40-llm rm MODEL...\n"
                   "  removes models from the store ($M40LLM_HOME, default ~/.m40llm): the name,\n"
                   "  then its files unless another name uses them. Models found in Ollama's\n"
                   "  store or the Hugging Face / llama.cpp caches are left alone.\n");
            return 0;
        }
    }
    char home[STORE_PATH_MAX];
    int rc = store_home(home, sizeof home);
    if (rc) return cli_fail("rm", rc);
    for (int i = 1; i < argc; i++) {
        const char *name = argv[i];
        n++;
        const char *owner = foreign_owner(name);
        struct stat st;
        if (owner) {
            store_model *m = calloc(1, sizeof *m);
            bool exists = m && store_resolve(name, m) == M40LLM_OK;
            free(m);
            err_set(M40LLM_ERR_INVALID_ARG,
                    "%s%s belongs to %s; m40-llm does not delete files it does not own", name,
                    exists ? "" : " (not found)", owner);
            rc = M40LLM_ERR_INVALID_ARG;
        } else if (name[0] != '/' && strchr(name, '/') == NULL && stat(name, &st) == 0 &&
                   !S_ISDIR(st.st_mode) && strchr(name, '.')) {
            rc = err_set(M40LLM_ERR_INVALID_ARG,
                         "'%s' is a file, not a model of the store; rm only removes store models",
                         name);
        } else {
            rc = store_remove(home, name);
        }
        if (rc) {
            cli_fail("rm", rc);
            failed++;
        } else {
            char norm[STORE_NAME_MAX + 16];
            store_name_normalize(name, norm, sizeof norm);
            printf("deleted '%s'\n", norm);
        }
    }
    if (!n) {
        fprintf(stderr, "usage: m40-llm rm MODEL...\n");
        return 2;
    }
    if (!cli_flush_stdout()) return 1;
    return failed ? 1 : 0;
}
