/* m40-llm cp SRC DST: a second name for a model of the store (a new
 * manifest over the same blobs; DST is replaced when it exists). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

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
    rc = store_copy(home, src, dst);
    if (rc) return cli_fail("cp", rc);
    printf("copied '%s' to '%s'\n", src, dst);
    return cli_flush_stdout() ? 0 : 1;
}
