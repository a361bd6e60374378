/* m40-llm perplexity MODEL (TEXTFILE | --tokens FILE) [--ctx N] [--threads N] [--device D]
 *
 * llama.cpp's method: the token stream is cut into non-overlapping chunks of
 * n_ctx tokens, the first token of each chunk is replaced by BOS, and only
 * the second half of each chunk is scored (logits at positions n_ctx/2 ..
 * n_ctx-2 predicting the next token), so every scored token has at least
 * n_ctx/2 tokens of context. At least one full chunk is required (llama.cpp
 * asks for two). TEXTFILE goes through the model's tokenizer (BOS added as
 * the model asks); --tokens FILE takes whitespace-separated ids instead.
 * The last line of output is "PPL = X +/- E". */
#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cli.h"
#include "cli_backend.h"
#include "err.h"
#include "fileio.h"
#include "tokenizer.h"

#define PPL_BATCH 512

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec * 1e-9;
}

/* Whitespace-separated decimal ids, each checked against the vocabulary. */
static int read_token_file(const char *path, int n_vocab, int32_t **out, int64_t *n_out) {
    char *text = NULL;
    size_t len = 0;
    int rc = fileio_read_file(path, FILEIO_CAP_TEXT, "a token file", &text, &len);
    if (rc) return rc;
    int64_t n = 0, cap = 4096;
    int32_t *t = malloc((size_t)cap * sizeof *t);
    if (!t) rc = err_set(M40LLM_ERR_OOM, "out of memory");
    for (size_t i = 0; rc == M40LLM_OK && i < len;) {
        if (isspace((unsigned char)text[i])) {
            i++;
            continue;
        }
        size_t w = i;
        while (w < len && !isspace((unsigned char)text[w]) && text[w]) w++;
        if (w == i) w++; /* a NUL byte: not a digit, reported below */
        char word[32];
        snprintf(word, sizeof word, "%.*s", (int)(w - i), text + i);
        long v = -1;
        bool ok = w - i < sizeof word && isdigit((unsigned char)word[0]);
        if (ok) {
            char *end = NULL;
            errno = 0;
            v = strtol(word, &end, 10);
            ok = !*end && errno == 0 && v < n_vocab;
        }
        if (!ok) {
            rc = err_set(M40LLM_ERR_FORMAT, "%s: item %lld '%s' is not a token id in 0..%d", path,
                         (long long)n + 1, word, n_vocab - 1);
            break;
        }
        if (n == cap) {
            int32_t *nt = realloc(t, (size_t)(cap *= 2) * sizeof *t);
            if (!nt) {
                rc = err_set(M40LLM_ERR_OOM, "out of memory reading %s", path);
                break;
            }
            t = nt;
        }
        t[n++] = (int32_t)v;
        i = w;
    }
    free(text);
    if (rc) {
        free(t);
        return rc;
    }
    *out = t;
    *n_out = n;
    return M40LLM_OK;
}

/* The whole text file through the model's tokenizer, BOS added as the
 * model asks (as llama.cpp's perplexity tool does). The text is bytes: a
 * NUL byte is tokenized like any other. */
static int tokenize_file(const model *m, const char *path, int32_t **out, int64_t *n_out) {
    size_t len = 0;
    char *buf = NULL;
    int rc = fileio_read_file(path, FILEIO_CAP_TEXT, "a text file", &buf, &len);
    if (rc) return rc;
    tokenizer *tk = NULL;
    rc = tokenizer_load(m->gguf, &tk);
    size_t n = 0;
    if (rc == M40LLM_OK) rc = tokenizer_encode(tk, buf, len, TOKENIZER_ADD_SPECIAL, out, &n);
    tokenizer_free(tk);
    free(buf);
    if (rc) return err_prefix(rc, "tokenizing %s", path);
    *n_out = (int64_t)n;
    return M40LLM_OK;
}

/* -log softmax(l)[target], in double. */
static double token_nll(const float *l, int n, int target) {
    float mx = l[0];
    for (int i = 1; i < n; i++)
        if (l[i] > mx) mx = l[i];
    double s = 0;
    for (int i = 0; i < n; i++) s += exp((double)l[i] - mx);
    return log(s) + mx - l[target];
}

static int usage(FILE *f) {
    fprintf(f, "usage: m40-llm perplexity MODEL (TEXTFILE | --tokens FILE) [--ctx N] "
               "[--threads N] [--device cpu|cuda[:N]]\n"
               "       [--gpus LIST [--split layer] [--tensor-split L]]\n");
    return f == stdout ? 0 : 2;
}

int cmd_perplexity(int argc, char **argv) {
    const char *model_name = NULL, *text = NULL, *tokens_path = NULL, *device = NULL;
    backend_gpus gpus = {0};
    int gi;
    long n_ctx = 512, threads = cli_default_threads();
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
            return usage(stdout);
        } else if (!strcmp(a, "--tokens")) {
            if (!v) return usage(stderr);
            tokens_path = argv[++i];
        } else if (!strcmp(a, "--ctx") || !strcmp(a, "-c")) {
            if ((n_ctx = cli_parse_long(a, v, 4, 1 << 20)) < 0) return 2;
            i++;
        } else if (!strcmp(a, "--threads") || !strcmp(a, "-t")) {
            if ((threads = cli_parse_long(a, v, 1, 1024)) < 0) return 2;
            i++;
        } else if ((gi = cli_gpu_option("perplexity", a, v, &gpus)) != 0) {
            if (gi < 0) return 2;
            i++;
        } else if (!strcmp(a, "--device")) {
            if (!v || cli_check_device(v)) return 2;
            device = argv[++i];
        } else if (a[0] == '-' && a[1]) {
            fprintf(stderr, "m40-llm perplexity: unknown option %s\n", a);
            return usage(stderr);
        } else if (!model_name) {
            model_name = a;
        } else if (!text) {
            text = a;
        } else {
            return usage(stderr);
        }
    }
    if (!model_name || (!text && !tokens_path) || (text && tokens_path)) return usage(stderr);
    /* a chunk goes in sub-batches of at most PPL_BATCH entries: bounded
     * scratch and logits memory whatever --ctx is */
    const int n_batch = n_ctx < PPL_BATCH ? (int)n_ctx : PPL_BATCH;
    backend_params p = {.n_ctx = (int)n_ctx,
                        .n_seq_max = 1,
                        .n_batch_max = n_batch,
                        .n_threads = (int)threads,
                        .kv_type = BACKEND_KV_F32};
    model *m = NULL;
    backend *b = NULL;
    if (cli_open(model_name, device, &gpus, &p, &m, &b)) return 1;
    cli_warn_ctx(m, n_ctx);
    const int V = m->cfg.n_vocab;
    int32_t *tok = NULL;
    int64_t n_tok = 0;
    int rc = tokens_path ? read_token_file(tokens_path, V, &tok, &n_tok)
                         : tokenize_file(m, text, &tok, &n_tok);
    int ret = 1;
    float *logits = NULL;
    backend_entry *e = NULL;
    if (rc) {
        cli_fail(tokens_path ? "reading tokens" : "reading text", rc);
        goto out;
    }
    uint32_t bos = 0;
    bool have_bos = gguf_get_u32(m->gguf, "tokenizer.ggml.bos_token_id", &bos) == M40LLM_OK &&
                    bos < (uint32_t)V;
    if (!have_bos)
        fprintf(stderr, "m40-llm perplexity: model has no BOS token; chunks keep their first "
                        "token\n");
    int64_t n_chunks = n_tok / n_ctx;
    if (n_chunks < 1) {
        fprintf(stderr, "m40-llm perplexity: %lld tokens, need at least --ctx %ld for one chunk\n",
                (long long)n_tok, n_ctx);
        goto out;
    }
    const int first = (int)n_ctx / 2, n_scored = (int)n_ctx - 1 - first;
    logits = malloc((size_t)n_batch * V * sizeof(float));
    e = malloc((size_t)n_ctx * sizeof *e);
    if (!logits || !e) {
        fprintf(stderr, "m40-llm perplexity: out of memory for %d logits rows\n", n_batch);
        goto out;
    }
    fprintf(stderr,
            "perplexity: %lld tokens, %lld chunks of %ld, %d scored per chunk, %s backend, "
            "%ld threads\n",
            (long long)n_tok, (long long)n_chunks, n_ctx, n_scored, b->ops->name, threads);
    double nll = 0, nll2 = 0;
    int64_t count = 0;
    double t0 = now_s();
    for (int64_t c = 0; c < n_chunks; c++) {
        const int32_t *ct = tok + c * n_ctx;
        for (int j = 0; j < n_ctx; j++)
            e[j] = (backend_entry){0, j, j == 0 && have_bos ? (int32_t)bos : ct[j],
                                   j >= first && j < n_ctx - 1};
        b->ops->seq_clear(b, 0);
        for (int s0 = 0; s0 < n_ctx; s0 += n_batch) {
            int n = n_ctx - s0 < n_batch ? (int)n_ctx - s0 : n_batch;
            if ((rc = backend_forward(b, e + s0, n, logits))) {
                cli_fail("forward", rc);
                goto out;
            }
            int row = 0;
            for (int j = s0; j < s0 + n; j++) {
                if (!e[j].logits) continue;
                double v = token_nll(logits + (size_t)row++ * V, V, ct[j + 1]);
                nll += v;
                nll2 += v * v;
                count++;
            }
        }
        if (c == 0) {
            double dt = now_s() - t0;
            fprintf(stderr, "perplexity: %.2f s per chunk, about %.1f s in all\n", dt,
                    dt * (double)n_chunks);
        }
        printf("[%lld]%.4f,", (long long)c + 1, exp(nll / count));
        if (!cli_flush_stdout()) goto out; /* main reports the write error */
    }
    double mean = nll / count, var = nll2 / count - mean * mean;
    double err = count > 1 && var > 0 ? sqrt(var / (count - 1)) : 0;
    double ppl = exp(mean);
    printf("\nPPL = %.4f +/- %.5f\n", ppl, ppl * err);
    ret = isfinite(ppl) ? 0 : 1;
out:
    free(e);
    free(logits);
    free(tok);
    backend_destroy(b);
    model_free(m);
    return ret;
}
