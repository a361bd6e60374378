/* m40-llm bench MODEL [-p 512] [-n 128] [-r 3] [--threads N] [--device D] [--ctx N] [--json]
 * (with --batch LIST: cmd_bench_batch.c, the engine's batched decode)
 *
 * Like llama-bench: pp = one batch of p random tokens (prompt processing),
 * tg = n single-token decode steps after a short untimed prompt; r timed
 * repetitions each, mean +/- stddev tokens/s. Generation also reports the
 * bandwidth it achieved: (weight bytes + KV bytes read per token) / time,
 * the weights of a mixture-of-experts model counting only the experts a
 * token is routed to (model_active_bytes). */
#include <cjson/cJSON.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cli.h"
#include "cli_backend.h"
#include "cmd_bench.h"
#include "err.h"
#include "quant.h"

#define TG_PROMPT 8 /* tokens before the timed decode steps */

typedef struct bench_test {
    char name[32];
    int n_prompt, n_gen;
    double *ns;   /* [reps] nanoseconds per repetition */
    double bytes; /* bytes read per repetition (tg only) */
    double ts_mean, ts_sd, gbs_mean;
} bench_test;

static double now_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e9 + ts.tv_nsec;
}

static uint64_t rng_next(uint64_t *s) { /* splitmix64 */
    uint64_t z = (*s += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

/* Bytes of weights one decode token reads: every matrix once (of expert
 * tensors, the n_expert_used experts it is routed to), one row of the
 * embedding (all of it when it doubles as the output matrix). */
static double weight_bytes_per_token(const model *m) {
    double b =
        (double)model_active_bytes(m) - (double)m->tok_embd.nbytes + (double)m->tok_embd.row_bytes;
    if (m->tied_output) b += (double)m->tok_embd.nbytes;
    return b;
}

/* Bytes of K and V a token at position pos reads (positions 0..pos, all layers). */
static double kv_bytes_at(const model *m, const backend_params *p, int pos) {
    double elt = p->kv_type == BACKEND_KV_F16 ? 2 : 4;
    return 2.0 * m->cfg.n_layer * (pos + 1.0) * m->cfg.n_head_kv * m->cfg.head_dim * elt;
}

static int run_pp(backend *b, int n, uint64_t *rng, double *ns, float *logits) {
    backend_entry *e = malloc((size_t)n * sizeof *e);
    if (!e) return err_set(M40LLM_ERR_OOM, "out of memory");
    for (int i = 0; i < n; i++)
        e[i] = (backend_entry){0, i, (int32_t)(rng_next(rng) % (uint64_t)b->model->cfg.n_vocab),
                               i == n - 1};
    b->ops->seq_clear(b, 0);
    double t0 = now_ns();
    int rc = backend_forward(b, e, n, logits);
    *ns = now_ns() - t0;
    free(e);
    return rc;
}

static int run_tg(backend *b, int n, uint64_t *rng, double *ns, float *logits) {
    const uint64_t V = (uint64_t)b->model->cfg.n_vocab;
    backend_entry e[TG_PROMPT];
    for (int i = 0; i < TG_PROMPT; i++)
        e[i] = (backend_entry){0, i, (int32_t)(rng_next(rng) % V), i == TG_PROMPT - 1};
    b->ops->seq_clear(b, 0);
    int rc = backend_forward(b, e, TG_PROMPT, logits);
    if (rc) return rc;
    double t0 = now_ns();
    for (int i = 0; i < n && !rc; i++) {
        backend_entry one = {0, TG_PROMPT + i, (int32_t)(rng_next(rng) % V), true};
        rc = backend_forward(b, &one, 1, logits);
    }
    *ns = now_ns() - t0;
    return rc;
}

static void stats(bench_test *t, int reps, int n_tok) {
    double s = 0, s2 = 0, g = 0;
    for (int r = 0; r < reps; r++) {
        double ts = n_tok / (t->ns[r] * 1e-9);
        s += ts;
        s2 += ts * ts;
        g += t->bytes / t->ns[r]; /* bytes per ns = GB/s */
    }
    t->ts_mean = s / reps;
    t->ts_sd = reps > 1 ? sqrt(fmax(0, (s2 - s * s / reps) / (reps - 1))) : 0;
    t->gbs_mean = g / reps;
}

static void type_mix(const model *m, char *buf, size_t size, cJSON *json) {
    size_t counts[QT_COUNT] = {0};
    const gguf_file *g = m->gguf;
    for (int64_t i = 0; i < gguf_n_tensors(g); i++) {
        int t = gguf_tensor_at(g, i)->type;
        if (t >= 0 && t < QT_COUNT) counts[t]++;
    }
    size_t o = 0;
    buf[0] = 0;
    for (int t = 0; t < QT_COUNT; t++) {
        if (!counts[t] || !quant_info(t)) continue;
        if (o < size)
            o += (size_t)snprintf(buf + o, size - o, "%s%s:%zu", o ? " " : "", quant_info(t)->name,
                                  counts[t]);
        if (json) cJSON_AddNumberToObject(json, quant_info(t)->name, (double)counts[t]);
    }
}

static double n_params(const model *m) {
    double n = 0;
    const gguf_file *g = m->gguf;
    for (int64_t i = 0; i < gguf_n_tensors(g); i++) {
        const gguf_tensor *t = gguf_tensor_at(g, i);
        n += (double)t->ne[0] * t->ne[1] * t->ne[2] * t->ne[3];
    }
    return n;
}

static int usage(FILE *f) {
    fprintf(f, "usage: m40-llm bench MODEL [-p 512] [-n 128] [-r 3] [--threads N] "
               "[--device cpu|cuda[:N]] [--ctx N] [--kv f32|f16] [--json]\n"
               "       [--gpus LIST [--split layer] [--tensor-split L]]\n"
               "       m40-llm bench MODEL --batch 1,8,32,64 [-p 128] [-n 128] ... (engine-level "
               "batched decode; --batch --help)\n");
    return f == stdout ? 0 : 2;
}

static void print_json(const model *m, const char *path, const backend *b, bench_test *tests,
                       int n_tests, int reps) {
    cJSON *root = cJSON_CreateObject();
    cJSON_AddStringToObject(root, "model", m->cfg.name[0] ? m->cfg.name : path);
    cJSON_AddStringToObject(root, "model_file", path);
    cJSON_AddNumberToObject(root, "model_bytes", (double)m->weight_bytes);
    cJSON_AddNumberToObject(root, "n_params", n_params(m));
    uint64_t total = 0, active = 0;
    model_param_counts(m, &total, &active);
    cJSON_AddNumberToObject(root, "n_params_active", (double)active);
    cJSON_AddNumberToObject(root, "weight_bytes_per_token", weight_bytes_per_token(m));
    cJSON_AddNumberToObject(root, "n_expert", m->cfg.n_expert);
    cJSON_AddNumberToObject(root, "n_expert_used", m->cfg.n_expert_used);
    char mix[256];
    type_mix(m, mix, sizeof mix, cJSON_AddObjectToObject(root, "tensor_types"));
    cJSON_AddStringToObject(root, "backend", b->ops->name);
    cJSON_AddNumberToObject(root, "n_threads", b->params.n_threads);
    cJSON_AddNumberToObject(root, "n_ctx", b->params.n_ctx);
    cJSON_AddStringToObject(root, "kv_type", b->params.kv_type == BACKEND_KV_F16 ? "f16" : "f32");
    cJSON_AddNumberToObject(root, "mem_used_bytes", (double)b->ops->mem_used(b));
    cJSON_AddNumberToObject(root, "repetitions", reps);
    cJSON *arr = cJSON_AddArrayToObject(root, "tests");
    for (int i = 0; i < n_tests; i++) {
        bench_test *t = &tests[i];
        cJSON *o = cJSON_CreateObject();
        cJSON_AddStringToObject(o, "name", t->name);
        cJSON_AddNumberToObject(o, "n_prompt", t->n_prompt);
        cJSON_AddNumberToObject(o, "n_gen", t->n_gen);
        cJSON *ns = cJSON_AddArrayToObject(o, "samples_ns");
        cJSON *ts = cJSON_AddArrayToObject(o, "samples_ts");
        int n_tok = t->n_gen ? t->n_gen : t->n_prompt;
        for (int r = 0; r < reps; r++) {
            cJSON_AddItemToArray(ns, cJSON_CreateNumber(t->ns[r]));
            cJSON_AddItemToArray(ts, cJSON_CreateNumber(n_tok / (t->ns[r] * 1e-9)));
        }
        cJSON_AddNumberToObject(o, "avg_ts", t->ts_mean);
        cJSON_AddNumberToObject(o, "stddev_ts", t->ts_sd);
        if (t->n_gen) cJSON_AddNumberToObject(o, "avg_gb_per_s", t->gbs_mean);
        cJSON_AddItemToArray(arr, o);
    }
    char *s = cJSON_Print(root);
    if (s) puts(s);
    free(s);
    cJSON_Delete(root);
}

int cmd_bench(int argc, char **argv) {
    if (bench_wants_batch(argc, argv)) return cmd_bench_batch(argc, argv);
    const char *model_name = NULL, *device = NULL;
    backend_gpus gpus = {0};
    int gi;
    long pp = 512, tg = 128, reps = 3, threads = cli_default_threads(), ctx = 0;
    bool json = false, kv16 = false;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        long *dst = !strcmp(a, "-p")                              ? &pp
                    : !strcmp(a, "-n")                            ? &tg
                    : !strcmp(a, "-r")                            ? &reps
                    : !strcmp(a, "--threads") || !strcmp(a, "-t") ? &threads
                    : !strcmp(a, "--ctx") || !strcmp(a, "-c")     ? &ctx
                                                                  : NULL;
        if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
            return usage(stdout);
        } else if (dst) {
            long lo = dst == &reps || dst == &threads ? 1 : 0;
            if ((*dst = cli_parse_long(a, v, lo, 1 << 20)) < 0) return 2;
            i++;
        } else if ((gi = cli_gpu_option("bench", a, v, &gpus)) != 0) {
            if (gi < 0) return 2;
            i++;
        } else if (!strcmp(a, "--device")) {
            if (!v || cli_check_device(v)) return 2;
            device = argv[++i];
        } else if (!strcmp(a, "--kv")) {
            if (!v || (strcmp(v, "f16") && strcmp(v, "f32"))) {
                fprintf(stderr, "m40-llm bench: --kv: '%s' is not f32 or f16\n", v ? v : "");
                return usage(stderr);
            }
            kv16 = !strcmp(argv[++i], "f16");
        } else if (!strcmp(a, "--json")) {
            json = true;
        } else if (a[0] == '-') {
            fprintf(stderr, "m40-llm bench: unknown option %s\n", a);
            return usage(stderr);
        } else if (model_name) {
            fprintf(stderr, "m40-llm bench: one MODEL only ('%s' is extra)\n", a);
            return usage(stderr);
        } else {
            model_name = a;
        }
    }
    if (!model_name) {
        fprintf(stderr, "m40-llm bench: no MODEL given\n");
        return usage(stderr);
    }
    if (pp == 0 && tg == 0) {
        fprintf(stderr, "m40-llm bench: -p 0 and -n 0 leave nothing to measure\n");
        return usage(stderr);
    }
    /* positions: the prompt test, or the short prompt plus the decode steps
     * (at least one: the warm-up) */
    long tg_need = TG_PROMPT + (tg > 0 ? tg : 1);
    int need = (int)(pp > tg_need ? pp : tg_need);
    bool ctx_given = ctx != 0;
    if (ctx == 0) ctx = need;
    if (ctx < need) {
        fprintf(stderr, "m40-llm bench: --ctx %ld is smaller than the %d positions the tests use\n",
                ctx, need);
        return 2;
    }
    backend_params p = {.n_ctx = (int)ctx,
                        .n_seq_max = 1,
                        .n_batch_max = (int)(pp > TG_PROMPT ? pp : TG_PROMPT),
                        .n_threads = (int)threads,
                        .kv_type = kv16 ? BACKEND_KV_F16 : BACKEND_KV_F32};
    char path[1024];
    int rc = cli_resolve_model(model_name, path, sizeof path);
    if (rc) return cli_fail("model", rc);
    model *m = NULL;
    backend *b = NULL;
    if (cli_open(path, device, &gpus, &p, &m, &b)) return 1;
    if (ctx_given) cli_warn_ctx(m, ctx);
    const int V = m->cfg.n_vocab;
    float *logits = malloc((size_t)V * sizeof(float));
    bench_test tests[2];
    int n_tests = 0, ret = 1;
    double *samples = calloc(2 * (size_t)reps, sizeof(double));
    if (!logits || !samples) {
        fprintf(stderr, "m40-llm bench: out of memory\n");
        goto out;
    }
    uint64_t rng = 42;
    double warm;
    /* warm-up: one token touches every weight page of the mapping */
    if ((rc = run_tg(b, 1, &rng, &warm, logits))) {
        cli_fail("warm-up", rc);
        goto out;
    }
    if (pp > 0) {
        bench_test *t = &tests[n_tests++];
        *t = (bench_test){.n_prompt = (int)pp, .ns = samples};
        snprintf(t->name, sizeof t->name, "pp%ld", pp);
        for (int r = 0; r < reps && !rc; r++) rc = run_pp(b, (int)pp, &rng, &t->ns[r], logits);
        if (rc) {
            cli_fail(t->name, rc);
            goto out;
        }
        stats(t, (int)reps, (int)pp);
    }
    if (tg > 0) {
        bench_test *t = &tests[n_tests++];
        *t = (bench_test){.n_gen = (int)tg, .ns = samples + reps};
        snprintf(t->name, sizeof t->name, "tg%ld", tg);
        for (int i = 0; i < tg; i++)
            t->bytes += weight_bytes_per_token(m) + kv_bytes_at(m, &p, TG_PROMPT + i);
        for (int r = 0; r < reps && !rc; r++) rc = run_tg(b, (int)tg, &rng, &t->ns[r], logits);
        if (rc) {
            cli_fail(t->name, rc);
            goto out;
        }
        stats(t, (int)reps, (int)tg);
    }
    if (json) {
        print_json(m, path, b, tests, n_tests, (int)reps);
    } else {
        char mix[256];
        type_mix(m, mix, sizeof mix, NULL);
        const char *name = m->cfg.name[0] ? m->cfg.name : path;
        fputs("model: ", stdout);
        cli_put_escaped(stdout, name, strlen(name), 0); /* the model's own name */
        printf(" (%s), %.1f MiB, %.1f M params\n", mix, m->weight_bytes / 1048576.0,
               n_params(m) / 1e6);
        printf("weights read per token: %.1f MiB", weight_bytes_per_token(m) / 1048576.0);
        if (m->cfg.n_expert) {
            uint64_t total = 0, active = 0;
            model_param_counts(m, &total, &active);
            printf(" (mixture of experts: %d of %d per token, %.1f M params active)",
                   m->cfg.n_expert_used, m->cfg.n_expert, active / 1e6);
        }
        putchar('\n');
        printf("backend: %s, %d threads, ctx %d, KV %s, memory used %.1f MiB\n\n", b->ops->name,
               b->params.n_threads, b->params.n_ctx,
               b->params.kv_type == BACKEND_KV_F16 ? "f16" : "f32",
               b->ops->mem_used(b) / 1048576.0);
        printf("| test   |            t/s |   GB/s |\n|--------|----------------|--------|\n");
        for (int i = 0; i < n_tests; i++) {
            char gbs[16] = "";
            if (tests[i].n_gen) snprintf(gbs, sizeof gbs, "%.2f", tests[i].gbs_mean);
            printf("| %-6s | %8.2f ± %4.2f | %6s |\n", tests[i].name, tests[i].ts_mean,
                   tests[i].ts_sd, gbs);
        }
    }
    ret = 0;
out:
    free(samples);
    free(logits);
    backend_destroy(b);
    model_free(m);
    return ret;
}
