/* m40-llm cp SRC DST: a second name for a model of the store (a new
 * manifest over the same blobs; DST is replaced when it exists). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cli.h"
#include "err.h"
#include "store/store.h"

int cmd_cp(int argc, char **argv) {
    if (argc == 2 && (!strcmp(argv[1], "-h") || !strcmp(argv[1], "--help"))) {
        printf("usage: m40-llm cp SRC DST\n"
               "  gives the store model SRC a second name DST (no file is copied)\n");
        return 0;
    }
    if (argc != 3) {
        fprintf(stderr, "usage: m40-llm cp SRC DST\n");
        return 2;
    }
    char home[STORE_PATH_MAX], src[STORE_NAME_MAX + 16], dst[STORE_NAME_MAX + 16];
    int rc = store_home(home, sizeof home);
    if (rc == M40LLM_OK) rc = store_name_normalize(argv[1], src, sizeof src);
    if (rc == M40LLM_OK) rc = store_name_normalize(argv[2], dst, sizeof dst);
    if (rc) return cli_fail("cp", rc);
    store_model *m = calloc(1, sizeof *m);
    if (!m) return cli_fail("cp", err_set(M40LLM_ERR_OOM, "out of memory"));
    int lk = -1;
    rc = store_lock(home, "store", &lk); /* rm does not collect the blobs meanwhile */
    if (rc == M40LLM_OK) {
        rc = store_manifest_read(home, src, m);
        if (rc == M40LLM_ERR_NOT_FOUND)
            rc = err_set(M40LLM_ERR_NOT_FOUND, "model '%s' is not in the store (%s)", src, home);
    }
    if (rc == M40LLM_OK) {
        snprintf(m->name, sizeof m->name, "%s", dst);
        m->modified = (long long)time(NULL);
        rc = store_manifest_write(home, m);
    }
    store_unlock(lk);
    free(m);
    if (rc) return cli_fail("cp", rc);
    printf("copied '%s' to '%s'\n", src, dst);
    return cli_flush_stdout() ? 0 : 1;
}
