/* m40-llm tokenize MODEL (TEXT | -) [--add-special] [--parse-special] [--pieces]
 * Prints the token ids on one line, space-separated. Without options: no
 * BOS/EOS and special-token text is not recognised (like the .out vectors).
 * "-" reads the text from stdin, byte for byte (a trailing newline is text). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "cli_backend.h"
#include "fileio.h"
#include "gguf.h"
#include "tokenizer.h"

static int tokenize_usage(FILE *f) {
    fprintf(f, "usage: m40-llm tokenize MODEL (TEXT | -) [--add-special] [--parse-special] "
               "[--pieces]\n");
    return f == stdout ? 0 : 2;
}

/* A piece quoted on one line: control bytes, C1 controls and bytes that are
 * only part of a UTF-8 character are escaped (cli_put_escaped). */
static void tokenize_print_piece(const char *p, size_t n) {
    putchar('\'');
    cli_put_escaped(stdout, p, n, '\'');
    putchar('\'');
}

int cmd_tokenize(int argc, char **argv) {
    const char *model_name = NULL, *text_arg = NULL;
    unsigned flags = 0;
    bool pieces = false;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--add-special"))
            flags |= TOKENIZER_ADD_SPECIAL;
        else if (!strcmp(argv[i], "--parse-special"))
            flags |= TOKENIZER_PARSE_SPECIAL;
        else if (!strcmp(argv[i], "--pieces"))
            pieces = true;
        else if (!strcmp(argv[i], "-h") || !strcmp(argv[i], "--help"))
            return tokenize_usage(stdout);
        else if (argv[i][0] == '-' && argv[i][1] != '\0') {
            fprintf(stderr, "m40-llm tokenize: unknown option '%s'\n", argv[i]);
            return tokenize_usage(stderr);
        } else if (!model_name)
            model_name = argv[i];
        else if (!text_arg)
            text_arg = argv[i];
        else
            return tokenize_usage(stderr);
    }
    if (!model_name || !text_arg) return tokenize_usage(stderr);

    char *text = NULL;
    size_t len;
    if (!strcmp(text_arg, "-")) {
        int rc = cli_read_stdin(FILEIO_CAP_TEXT, "text to tokenize", &text, &len);
        if (rc) return cli_fail("tokenize", rc);
    } else {
        len = strlen(text_arg);
    }
    gguf_file *f = NULL;
    tokenizer *tok = NULL;
    int32_t *ids = NULL;
    size_t n = 0;
    char path[1024];
    /* MODEL: a path or a name in the model store, as for run */
    int ret = 0, rc = cli_resolve_model(model_name, path, sizeof path);
    if (!rc) rc = gguf_open(path, &f);
    if (rc) { /* the message names the file already */
        ret = cli_fail("tokenize", rc);
        goto done;
    }
    rc = tokenizer_load(f, &tok);
    if (rc) {
        ret = cli_fail("tokenize", rc);
        goto done;
    }
    rc = tokenizer_encode(tok, text ? text : text_arg, len, flags, &ids, &n);
    if (rc) {
        ret = cli_fail("tokenize", rc);
        goto done;
    }
    if (pieces) {
        for (size_t i = 0; i < n; i++) {
            size_t pl = 0;
            rc = tokenizer_token_piece(tok, ids[i], true, NULL, 0, &pl); /* size query */
            char *buf = rc ? NULL : malloc(pl + 1);
            if (!rc && buf) rc = tokenizer_token_piece(tok, ids[i], true, buf, pl, &pl);
            if (rc || !buf) {
                free(buf);
                ret = rc ? cli_fail("tokenize", rc) : 1;
                goto done;
            }
            printf("%d ", ids[i]);
            tokenize_print_piece(buf, pl);
            putchar('\n');
            free(buf);
        }
    } else {
        for (size_t i = 0; i < n; i++) printf(i ? " %d" : "%d", ids[i]);
        putchar('\n');
    }
    if (!cli_flush_stdout()) ret = 1; /* main reports why */
done:
    free(ids);
    tokenizer_free(tok);
    gguf_close(f);
    free(text);
    return ret;
}
