/* m40-llm dump-tensor FILE OUT [NAME...]: writes the dequantized FP32 values
 * of the named tensors (every tensor in file order if none is named) to OUT
 * as raw little-endian float32, concatenated, and prints one line per tensor
 * "name type n_elements". Used to cross-check dequantization against other
 * implementations. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "err.h"
#include "fileio.h"
#include "gguf.h"
#include "quant.h"

/* Dequantizes one tensor row by row (rows of ne[0] elements) into out. */
static int dump_one(const gguf_tensor *t, FILE *out, const char *path) {
    char name[256];
    gguf_str_escape(t->name, name, sizeof name); /* from the file: may hold NUL or controls */
    const quant_type_info *qi = quant_info(t->type);
    if (!qi || !qi->can_dequant)
        return err_set(M40LLM_ERR_UNSUPPORTED, "tensor '%s': type %d (%s) cannot be dequantized",
                       name, t->type, qi ? qi->name : "unknown");
    int64_t row = t->ne[0], nrows = 1;
    for (uint32_t d = 1; d < t->n_dims && d < GGUF_MAX_DIMS; d++) nrows *= t->ne[d];
    const size_t row_bytes = quant_row_size(t->type, row);
    if (row <= 0 || row_bytes == 0)
        return err_set(M40LLM_ERR_FORMAT,
                       "tensor '%s': row length %lld is not a multiple of %s's block size %d", name,
                       (long long)row, qi->name, qi->block_size);
    if (nrows < 0 || (uint64_t)nrows > t->nbytes / row_bytes ||
        row_bytes * (size_t)nrows != t->nbytes)
        return err_set(M40LLM_ERR_FORMAT, "tensor '%s': %zu data bytes for %lld rows of %zu bytes",
                       name, t->nbytes, (long long)nrows, row_bytes);
    float *buf = malloc((size_t)row * sizeof(float));
    if (!buf) return err_set(M40LLM_ERR_OOM, "tensor '%s': no memory for a row", name);
    const uint8_t *src = t->data;
    int rc = M40LLM_OK;
    for (int64_t r = 0; r < nrows && rc == M40LLM_OK; r++) {
        rc = quant_dequantize_row(t->type, src + (size_t)r * row_bytes, buf, row);
        if (rc) {
            err_prefix(rc, "tensor '%s' row %lld", name, (long long)r);
        } else if (fwrite(buf, sizeof(float), (size_t)row, out) != (size_t)row) {
            rc = err_set(M40LLM_ERR_IO, "%s: write failed: %s", path, strerror(errno));
        }
    }
    free(buf);
    if (rc == M40LLM_OK) {
        cli_put_escaped(stdout, t->name.data, (size_t)t->name.len, 0); /* from the file */
        printf(" %s %lld\n", qi->name, (long long)(row * nrows));
    }
    return rc;
}

static const char dump_usage[] = "usage: m40-llm dump-tensor FILE OUT [NAME...]\n";

int cmd_dump_tensor(int argc, char **argv) {
    for (int i = 1; i < argc; i++)
        if (!strcmp(argv[i], "-h") || !strcmp(argv[i], "--help")) {
            fputs(dump_usage, stdout);
            return 0;
        }
    if (argc < 3) {
        fputs(dump_usage, stderr);
        return 2;
    }
    gguf_file *f = NULL;
    int rc = gguf_open(argv[1], &f);
    if (rc) return cli_fail("dump-tensor", rc);
    /* resolve every name first so a typo writes nothing */
    for (int i = 3; i < argc; i++) {
        if (!gguf_find_tensor(f, argv[i])) {
            fprintf(stderr, "m40-llm: %s: no tensor named '%s'\n", argv[1], argv[i]);
            gguf_close(f);
            return 1;
        }
    }
    /* a temporary beside OUT, renamed over it at the end: a failed dump
     * leaves OUT as it was and removes only what it created */
    fileio_out out;
    rc = fileio_out_open(argv[2], &out);
    if (rc) {
        gguf_close(f);
        return cli_fail("dump-tensor", rc);
    }
    int64_t n = argc > 3 ? argc - 3 : gguf_n_tensors(f);
    for (int64_t i = 0; i < n && rc == M40LLM_OK; i++) {
        const gguf_tensor *t = argc > 3 ? gguf_find_tensor(f, argv[3 + i]) : gguf_tensor_at(f, i);
        rc = dump_one(t, out.f, argv[2]);
    }
    if (rc == M40LLM_OK)
        rc = fileio_out_commit(&out);
    else
        fileio_out_abort(&out);
    gguf_close(f);
    return rc ? cli_fail("dump-tensor", rc) : 0;
}
